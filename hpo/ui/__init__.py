"""`hpo ui`: MLflow's UI opened on the study's runs (view), its server (server) and the server
group's guard, which ends it when `hpo ui` dies (guard)."""

import lazy_loader

# what the package offers, imported on first use (so that `hpo --help` stays light)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["guard", "server"],
    submod_attrs={
        "view": ["run"],
    },
)
