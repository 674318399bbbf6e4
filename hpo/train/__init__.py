"""Training, knowing neither Optuna nor MLflow: the config (config), the data on the device
(data), the networks (models), optimisers and schedules (optim), batch augmentation (augment),
the one training loop for K seeds in lockstep (loop), evaluation (evaluate), judging a config
over seeds (seeds) and the failure labels (labels)."""

import lazy_loader

# what the package offers, imported on first use (so that `hpo --help` stays light)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["augment", "models", "optim"],
    submod_attrs={
        "config": ["Config"],
        "data": ["Split", "TaskData", "resolve_device"],
        "loop": ["train", "train_seeds", "Trainer", "TimeLimit", "Result"],
        "evaluate": ["evaluate", "metrics_for", "predict"],
        "seeds": ["aggregate", "objective_value", "seed_list"],
        "labels": ["diagnose"],
    },
)
