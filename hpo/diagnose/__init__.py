"""`hpo diagnose`: the original over seeds and what fixed it, measured (diagnosis): single
changes and a greedy set from the original, the reverse from the best (ablation, changes), one
cached run at a time (runs), and the answer as text, Markdown, JSON or an MLflow run (answer)."""

import lazy_loader

# what the package offers, imported on first use (so that `hpo --help` stays light)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["ablation", "changes", "runs"],
    submod_attrs={
        "diagnosis": ["run"],
        "answer": ["Answer", "render", "log_to_mlflow"],
    },
)
