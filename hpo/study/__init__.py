"""`hpo study`: create or resume an Optuna study and run its trials.

- options: what was asked (validated once), the spec with the flags laid over it, the summary
- queries: what the study holds, read back (also by `hpo report`, `train` and `diagnose`)
- create: sampler and pruner factories, creating or loading the study
- objective: one trial, trained over its seeds, reported to the pruner, MLflow and the console
- runner: the loop over trials, the references and the summary
- progress: the console lines
"""
