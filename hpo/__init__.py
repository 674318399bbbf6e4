"""hpo: hyperparameter optimisation for deep learning (Optuna studies, PyTorch, MLflow).

    import hpo
    result = hpo.run("box", trials=30)          # or a data set's path, or hpo.Task.from_arrays
    result.best.config, result.best.value, result.baseline, result.original
    result.report()                             # the leaderboard as a pandas DataFrame
    final = hpo.retrain(result)                 # test once, registered in MLflow

Lazy: `import hpo` imports neither torch nor optuna; the first use does."""

import lazy_loader

__version__ = "0.1.0"

__getattr__, __dir__, _names = lazy_loader.attach(
    __name__,
    submod_attrs={
        "api": ["Best", "Result", "retrain", "run"],
        "api.tasks": ["Task"],
        "util.errors": ["UserError"],
    },
)
__all__ = ["Best", "Result", "Task", "UserError", "__version__", "retrain", "run"]
