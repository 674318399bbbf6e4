"""`hpo report`: the leaderboard that fits a terminal and the JSON contract (table), the
end-of-study summary (summary), and the plots (figures, importance, figure_parts)."""

import lazy_loader

# what the package offers, imported on first use (so that `hpo --help` stays light)
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["figure_parts"],
    submod_attrs={
        "table": ["build", "render"],
        "figures": ["plots", "publish", "history_figure", "curves_figure"],
        "importance": ["importances", "importance_figure", "parallel_figure"],
        "figure_parts": ["TOP_CURVES", "TOP_IMPORTANCES", "TOP_PARAMS", "TOP_TRIALS"],
        "summary": ["format_summary"],
    },
)
