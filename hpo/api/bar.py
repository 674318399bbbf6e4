"""hpo.run's progress bar: trials finished of the budget, with the best so far, drawn by
tqdm.auto (a widget in a notebook, a text bar elsewhere). It reads the same progress lines the
command line prints, and passes them on to the "hpo" logger."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

HEADER = re.compile(r": (\d+)/(\d+) trials finished")  # the study's first line (a resume)
ENDED = re.compile(r"^trial \d+ (COMPLETE|PRUNED|FAIL)\b")
BEST = re.compile(r"best so far (\S+) \(trial (\d+)\)")


def in_notebook() -> bool:
    """Whether this is a Jupyter kernel (where hpo.run draws a bar unless told otherwise)."""
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


class Bar:
    """A callable for hpo.run's `progress`: each line to `log` (debug), the bar moved on."""

    def __init__(self, trials: int, log: logging.Logger, file: Any = None) -> None:
        from tqdm.auto import tqdm

        self.log = log
        self.bar = tqdm(total=trials, unit="trial", desc="hpo", file=file, dynamic_ncols=True)

    def __call__(self, line: str) -> None:
        self.log.debug(line)
        header = HEADER.search(line)
        if header and self.bar.n == 0:
            self.bar.reset(total=int(header.group(2)))
            self.bar.update(int(header.group(1)))
        elif ENDED.match(line):
            self.bar.update(1)
        best = BEST.search(line)
        if best:
            self.bar.set_postfix_str(f"best {best.group(1)} (trial {best.group(2)})")

    def close(self) -> None:
        self.bar.close()
