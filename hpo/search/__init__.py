"""What a search is: the study specs (spec), the knobs as one table and a trial's config drawn
from it (space), the sampler and pruner a spec names (strategy; samplers, moves), what a study
keeps in Optuna's storage (record), and every use of Optuna's private API (optuna_private)."""

import lazy_loader

# what the package offers, imported on first use (so that `hpo --help` stays light)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["optuna_private", "record"],
    submod_attrs={
        "spec": [
            "Spec",
            "Param",
            "SpecError",
            "load_spec",
            "parse_spec",
            "default_spec_path",
            "SAMPLERS",
            "PRUNERS",
        ],
        "space": ["KNOBS", "Knob", "suggest", "help_lines"],
        "strategy": ["make_sampler", "make_pruner"],
        "samplers": ["RankStoppedByValue"],
        "moves": ["LocalMoves"],
    },
)
