"""Every use hpo makes of Optuna's private API, in one place. Each is tested on its own
(tests/test_optuna_private.py), so that an Optuna release that changes one fails there, loudly,
rather than somewhere in a study; pyproject.toml pins optuna to the major version tested.

- `NamedStudyCache`: Optuna's cache over an RDB storage (`_CachedStorage`), which Optuna puts on
  every RDBStorage it opens itself; hpo opens its own (behind hpo.study.storage.Patient) and
  puts it there too, teaching it to remember study ids by name, and to write what a trial
  sets (params, user attrs, the values it reports) in few transactions (`one_transaction`,
  through `write_together`, which uses RDBStorage's `_set_trial_*_without_commit` and Optuna's
  models in a session of Optuna's own `_create_scoped_session`).
- `StudyView`: samplers read the trials through `Study._get_trials`; a view of a study that
  shows them other trials must answer that call.
- `all_trials`: Hyperband shows samplers a `_BracketStudy` (one bracket's trials); the whole
  study's trials are read through its `_storage` and `_study_id`.
- `enqueued`: a trial that `Study.enqueue_trial` made carries the system attr "fixed_params".
- `set_attr_of_running`: a sampler sees a running trial as a FrozenTrial, which has no public
  way to keep an attr; its storage and its `_trial_id` have.
- `retry_of`: the trial that a running trial runs again after its worker died, read from the
  running trial's `_cached_frozen_trial` (its system attrs are not public on an optuna.Trial).
"""

from __future__ import annotations

import copy
import json as json_module
import time
import warnings
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
    distribution_to_json,
)
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
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
        self._held: list[Write] | None = None  # inside one_transaction: the writes it holds
        self._every: float | None = None
        self._written = 0.0

    def get_study_id_from_name(self, study_name: str) -> int:
        found = self._ids_by_name.get(study_name)
        if found is None:
            found = self._ids_by_name[study_name] = super().get_study_id_from_name(study_name)
        return found

    def delete_study(self, study_id: int) -> None:
        self._ids_by_name = {n: i for n, i in self._ids_by_name.items() if i != study_id}
        super().delete_study(study_id)

    @contextmanager
    def one_transaction(self, every: float | None = None) -> Iterator[None]:
        """The params a trial samples, the user attrs it sets and the values it reports inside
        are written together on the way out, in one transaction: Optuna writes each on its own
        (~35 params for a cifar10 trial, a value an epoch). With `every`, what is held is also
        written once that many seconds have passed since the last write (a long trial's
        epochs stay live). Nested blocks write at each exit. Nothing reads a running trial's
        params, attrs or values from the storage meanwhile (the trial keeps its own copy and
        gives pruners that); what was set is written even if the block fails, as it would have
        been one by one."""
        outer = self._held is None
        if outer:
            self._held = []
            self._every, self._written = every, time.monotonic()
        try:
            yield
        finally:
            self._write_held()
            if outer:
                self._held = None

    def _write_held(self) -> None:
        held, self._held, self._written = self._held, [], time.monotonic()
        if not held:
            return
        writer = getattr(self._backend, "write_together", None)  # Patient's retries
        (writer or (lambda h: write_together(self._backend, h)))(held)
        with self._lock:
            for kind, trial_id, name, _, distribution, _ in held:
                if kind == "param":
                    study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
                    known = self._studies[study_id].param_distribution
                    known.setdefault(name, distribution)

    def _hold(self, write: Write) -> None:
        self._held.append(write)
        if self._every is not None and time.monotonic() - self._written >= self._every:
            self._write_held()

    def set_trial_param(
        self, trial_id: int, name: str, value: float, distribution: BaseDistribution
    ) -> None:
        if self._held is None:
            return super().set_trial_param(trial_id, name, value, distribution)
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            known = self._studies[study_id].param_distribution.get(name)
        if known is not None:  # a clash is told now, as a single write would
            check_distribution_compatibility(known, distribution)
        self._hold(("param", trial_id, name, value, distribution, known))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if self._held is None:
            return super().set_trial_user_attr(trial_id, key, value)
        self._hold(("user_attr", trial_id, key, value, None, None))

    def set_trial_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
        if self._held is None:
            return super().set_trial_intermediate_value(trial_id, step, value)
        self._hold(("value", trial_id, step, value, None, None))


# ("param", trial id, name, value in Optuna's internal form, distribution, the study's
# distribution of that name where known), ("user_attr", trial id, key, value, None, None) or
# ("value", trial id, step, intermediate value, None, None)
Write = tuple[str, int, Any, Any, BaseDistribution | None, BaseDistribution | None]


def written_together(trial: optuna.Trial, every: float | None = None) -> Any:
    """NamedStudyCache.one_transaction for the trial's study, where its storage is one; else
    nothing changes."""
    storage = trial.study._storage
    if isinstance(storage, NamedStudyCache):
        return storage.one_transaction(every)
    return nullcontext()


def write_together(rdb: optuna.storages.RDBStorage, writes: list[Write]) -> None:
    """Trial params, user attrs and intermediate values into an RDB storage in one transaction
    and few queries (the rows as Optuna's own writes make them), checked as Optuna checks each
    on its own: the trial still running, a param's distribution against the study's earlier
    one of its name (NamedStudyCache did where it knew it). A round trip to PostgreSQL costs
    about what a row does, so the trial is looked up once and its stored attrs and values in
    one query each, not once a row."""
    by_trial: dict[int, list[Write]] = {}
    for write in writes:
        by_trial.setdefault(write[1], []).append(write)
    with _create_scoped_session(rdb.scoped_session, True) as session:
        for trial_id, mine in by_trial.items():
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
            rdb.check_trial_is_updatable(trial_id, trial.state)
            attrs = _stored(session, models.TrialUserAttributeModel, trial_id, "key", mine)
            values = _stored(session, models.TrialIntermediateValueModel, trial_id, "step", mine)
            for kind, _, name, value, distribution, known in mine:
                if kind == "param" and known is None:  # the study's earlier one looked up
                    rdb._set_trial_param_without_commit(
                        session, trial_id, name, value, distribution
                    )
                elif kind == "param":
                    json = distribution_to_json(distribution)
                    session.add(
                        models.TrialParamModel(
                            trial_id=trial_id,
                            param_name=name,
                            param_value=value,
                            distribution_json=json,
                        )
                    )
                elif kind == "user_attr":
                    row = attrs.get(name) or models.TrialUserAttributeModel(
                        trial_id=trial_id, key=name
                    )
                    row.value_json = json_module.dumps(value)
                    attrs[name] = row
                    session.add(row)
                else:
                    stored, kind_of = _stored_value(value)
                    row = values.get(name) or models.TrialIntermediateValueModel(
                        trial_id=trial_id, step=name
                    )
                    row.intermediate_value, row.intermediate_value_type = stored, kind_of
                    values[name] = row
                    session.add(row)


def _stored(session: Any, model: Any, trial_id: int, key: str, writes: list[Write]) -> dict:
    """The trial's rows of `model` already stored, by `key`, where `writes` has any to set."""
    kind = {"key": "user_attr", "step": "value"}[key]
    if not any(w[0] == kind for w in writes):
        return {}
    rows = session.query(model).filter(model.trial_id == trial_id).all()
    return {getattr(row, key): row for row in rows}


def _stored_value(value: float) -> tuple[float | None, Any]:
    return models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(value)


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
    RetryHeartbeatStaleTrialCallback writes that number into the new trial's system attrs, which a
    running optuna.Trial shows through its cached FrozenTrial only."""
    frozen = trial._cached_frozen_trial
    with warnings.catch_warnings():  # "experimental since 2.8": it is what the retry writes
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
