"""`hpo train`: retrain the chosen config on train + validation, test it once, register it
(retrain), after confirming the study's pick among its finalists (finalists, scores)."""

import lazy_loader

# what the package offers, imported on first use (so that `hpo --help` stays light)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=[],
    submod_attrs={
        "retrain": ["retrain_and_register"],
        "finalists": ["confirm_best"],
        "scores": ["kept"],
    },
)
