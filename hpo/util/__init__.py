"""Small things every package uses: one-line user errors with secrets masked (errors), how a
run ends as types (outcomes), Ctrl-C held back from store calls (interrupts), the libraries'
logs kept off the terminal (logs), numbers as hpo shows them (values), process-level set-up
(process)."""

import lazy_loader

# what the package offers, imported on first use (so that `hpo --help` stays light)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["interrupts", "logs", "paths", "process"],
    submod_attrs={
        "errors": ["UserError", "first_line", "masked", "scrub"],
        "outcomes": ["Outcome", "Stop", "TrainingError", "Diverged", "OutOfTime", "SurplusTrial"],
        "values": ["finite", "sign", "duration", "fmt"],
    },
)
