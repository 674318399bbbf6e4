"""hpo from Python: `run` a study (a task, a data set's path, or arrays through
`Task.from_arrays`) and read its `Result`; `retrain` its best config, test it once and
register it. The CLI's `hpo study` and `hpo train` take the same arguments under the same
names (hpo.api.study)."""

from hpo.api.study import Best, Result, retrain, run

__all__ = ["Best", "Result", "retrain", "run"]
