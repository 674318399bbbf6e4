"""Every use hpo makes of Optuna's private API, in one place. Each is tested on its own
(tests/test_optuna_private.py), so that an Optuna release that changes one fails there, loudly,
rather than somewhere in a study; pyproject.toml pins optuna to the major version tested.

- `NamedStudyCache`: Optuna's cache over an RDB storage (`_CachedStorage`), which Optuna puts on
  every RDBStorage it opens itself; hpo opens its own (behind hpo.study.storage.Patient) and
  puts it there too, teaching it to remember study ids by name.
- `StudyView`: samplers read the trials through `Study._get_trials`; a view of a study that
  shows them other trials must answer that call.
- `all_trials`: Hyperband shows samplers a `_BracketStudy` (one bracket's trials); the whole
  study's trials are read through its `_storage` and `_study_id`.
- `enqueued`: a trial that `Study.enqueue_trial` made carries the system attr "fixed_params".
- `set_attr_of_running`: a sampler sees a running trial as a FrozenTrial, which has no public
  way to keep an attr; its storage and its `_trial_id` have.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Container
from typing import Any

import optuna
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import FrozenTrial, TrialState


class NamedStudyCache(_CachedStorage):
    """Optuna's cache of an RDB storage, which also remembers each study's id by name.

    Optuna asks the database for it each time it builds a Study object, and a Hyperband
    pruner builds one per bracket view: for each sampled knob and each reported epoch, ~25
    queries a cifar10 trial (benchmarks/trial_overhead.py). A study keeps its id for its life;
    one deleted through this storage is forgotten."""

    def __init__(self, backend: Any) -> None:
        super().__init__(backend)
        self._ids_by_name: dict[str, int] = {}

    def get_study_id_from_name(self, study_name: str) -> int:
        found = self._ids_by_name.get(study_name)
        if found is None:
            found = self._ids_by_name[study_name] = super().get_study_id_from_name(study_name)
        return found

    def delete_study(self, study_id: int) -> None:
        self._ids_by_name = {n: i for n, i in self._ids_by_name.items() if i != study_id}
        super().delete_study(study_id)


Transform = Callable[[FrozenTrial], FrozenTrial]


class StudyView:
    """`study` as a sampler reads it: every read of its trials goes through `transform`;
    everything else (writes included) reaches the real study. With `cache` (a list kept per
    sampled trial), the trials as the first read found them serve every later read."""

    def __init__(self, study: optuna.Study, transform: Transform, cache: list | None = None):
        self._study, self._transform, self._cache = study, transform, cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        if self._cache is None:
            trials = self._study._get_trials(deepcopy=deepcopy, states=states)
            return [self._transform(t) for t in trials]
        if not self._cache:
            self._cache.append(self._study._get_trials(deepcopy=False, states=None))
        found = self._cache[0]
        trials = [self._transform(t) for t in found if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        found = self._study.get_trials(deepcopy=deepcopy, states=states)
        return [self._transform(t) for t in found]

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


def all_trials(study: optuna.Study, states: tuple[TrialState, ...]) -> list[FrozenTrial]:
    """The trials of the whole study in these states, also where `study` is Hyperband's view
    of one bracket (a _BracketStudy: its storage and study id are the study's)."""
    return study._storage.get_all_trials(study._study_id, deepcopy=False, states=states)


def enqueued(trial: FrozenTrial) -> bool:
    """Whether `Study.enqueue_trial` made this trial (its params are fixed)."""
    return "fixed_params" in trial.system_attrs


def set_attr_of_running(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Set user attr `key` of the running `trial` in the storage, and in this FrozenTrial, which
    is the copy the trial's objective will read."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)
    trial.user_attrs[key] = value


def retry_of(trial: optuna.Trial) -> int | None:
    """The trial that `trial` runs again (the heartbeat failed it: its worker died), or None.
    RetryFailedTrialCallback writes that number into the new trial's system attrs, which a
    running optuna.Trial shows through its cached FrozenTrial only."""
    frozen = trial._cached_frozen_trial
    with warnings.catch_warnings():  # "experimental since 2.8": it is what the retry writes
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryFailedTrialCallback.retried_trial_number(frozen)
