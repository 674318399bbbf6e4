"""MLflow, the only package that imports it: the client (client: runs, batches, the store's
first set-up), one study's log (study_log: its parent run, a run per trial, the references;
trial_run: what a trial run waits to send), the tracking server's check (server) and the
registered model (model)."""

import lazy_loader

# what the package offers, imported on first use (so that `hpo --help` stays light)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=[],
    submod_attrs={
        "client": ["Tracker"],
        "study_log": ["StudyLog"],
        "server": ["tracking_uri", "check_server"],
        "model": ["log_model"],
    },
)
