"""`hpo study`: create or resume an Optuna study and run its trials.

- session: the entry points (run, summarize) and the summary
- options: what was asked (validated once), the spec with the flags laid over it
- runner: one process's loop over trials (budget, deadline, failures, storage outages)
- objective: one trial, trained over its seeds, reported to the pruner, MLflow and the console
- create: creating or joining the study; storage: the RDB storage that rides out outages
- queries: what the study holds, read back; references: baselines and the original's replay
- progress: the console lines; workers: --workers K"""

import lazy_loader

# what the package offers, imported on first use (so that `hpo --help` stays light)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["baselines", "create", "objective", "progress", "references", "runner", "storage"],
    submod_attrs={
        "session": ["run", "summarize"],
        "options": ["Options", "Summary"],
        "queries": ["load", "best_trial", "counts"],
        "workers": ["spawn", "run_study"],
    },
)
