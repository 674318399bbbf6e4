"""Each use hpo makes of Optuna's private API (hpo.search.optuna_private), checked against the
Optuna installed: a release that renames or changes one fails here, by name, instead of
somewhere inside a study."""

from __future__ import annotations

import inspect
import warnings

import optuna
import pytest
from optuna.trial import TrialState

from hpo.search import optuna_private as private

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_cache_of_an_rdb_storage_is_still_there_and_remembers_ids(tmp_path):
    from optuna.storages._cached_storage import _CachedStorage

    assert issubclass(private.NamedStudyCache, _CachedStorage)
    for name in ("get_study_id_from_name", "delete_study", "create_new_trial"):
        assert callable(getattr(_CachedStorage, name)), name
    backend = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    cache = private.NamedStudyCache(backend)
    study = optuna.create_study(storage=cache, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert cache.get_study_id_from_name("s") == backend.get_study_id_from_name("s")
    assert len(optuna.load_study(study_name="s", storage=cache).trials) == 2


def _fill(trial: optuna.Trial) -> float:
    """A trial's usual writes: params of each kind, user attrs (one set twice), epochs."""
    trial.suggest_float("lr", 1e-4, 1.0, log=True)
    trial.suggest_int("depth", 1, 8)
    trial.suggest_categorical("opt", ["sgd", "adam"])
    trial.set_user_attr("config", {"a": [1, 2]})
    trial.set_user_attr("outcome", "running")
    trial.set_user_attr("outcome", "complete")
    for epoch, value in enumerate([0.5, float("inf"), 0.25], 1):
        trial.report(value, epoch)
    return 0.25


def _written(trial: optuna.trial.FrozenTrial) -> tuple:
    return (
        trial.params,
        trial.distributions,
        trial.user_attrs,
        trial.intermediate_values,
        trial.value,
        trial.state,
    )


@pytest.mark.parametrize("every", [None, 0.0])
def test_a_trials_writes_in_one_transaction_store_what_optuna_stores_one_by_one(tmp_path, every):
    """NamedStudyCache.one_transaction (write_together: Optuna's models and `_without_commit`
    writes in its own session) leaves the same trial as Optuna's own writes; every=0 writes at
    each call, as Optuna does."""
    plain = optuna.create_study(storage=f"sqlite:///{tmp_path / 'plain.db'}", study_name="s")
    cache = private.NamedStudyCache(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'b.db'}"))
    batched = optuna.create_study(storage=cache, study_name="s")
    plain.optimize(_fill, n_trials=2)

    def held(trial):
        with private.written_together(trial, every):
            return _fill(trial)

    batched.optimize(held, n_trials=2)
    for a, b in zip(plain.trials, batched.trials, strict=True):
        # the sampler draws differently in the second study's trials: compare all but values
        assert _written(a)[1:] == _written(b)[1:]
        assert set(a.params) == set(b.params)
    fresh = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'b.db'}")
    assert [_written(t) for t in fresh.trials] == [_written(t) for t in batched.trials]


def test_held_writes_reach_the_storage_only_on_the_way_out(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    cache = private.NamedStudyCache(optuna.storages.RDBStorage(url))
    study = optuna.create_study(storage=cache, study_name="s")
    trial = study.ask()
    elsewhere = optuna.storages.RDBStorage(url)  # another worker's view
    with private.written_together(trial):
        trial.suggest_float("x", 0, 1)
        trial.report(0.5, 1)
        trial.set_user_attr("k", 1)
        seen = elsewhere.get_trial(trial._trial_id)
        assert (seen.params, seen.intermediate_values, seen.user_attrs) == ({}, {}, {})
        assert trial.params and trial.user_attrs == {"k": 1}  # the trial's own copy has them
    seen = elsewhere.get_trial(trial._trial_id)
    assert seen.params == trial.params and seen.intermediate_values == {1: 0.5}
    assert seen.user_attrs == {"k": 1}


def test_held_writes_are_checked_as_single_ones(tmp_path):
    cache = private.NamedStudyCache(optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}"))
    study = optuna.create_study(storage=cache, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    trial = study.ask()
    with pytest.raises(ValueError, match="distribution"):  # x was a float, now a category
        with private.written_together(trial):
            trial.suggest_categorical("x", ["a", "b"])
    done = study.trials[0]
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        private.write_together(cache._backend, [("user_attr", done._trial_id, "k", 1, None, None)])


def test_samplers_read_trials_through_study_get_trials():
    """The view answers the call samplers make: Study._get_trials(deepcopy, states,
    use_cache), and TPE does make it (so a view changes what TPE sees)."""
    params = inspect.signature(optuna.Study._get_trials).parameters
    assert list(params)[1:] == ["deepcopy", "states", "use_cache"]
    seen = []
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(n_startup_trials=1, seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    view = private.StudyView(study, lambda t: seen.append(t.number) or t)
    trial = study.ask()
    study.sampler.sample_independent(
        view, trial._cached_frozen_trial, "x", optuna.distributions.FloatDistribution(0, 1)
    )
    assert seen, "TPE did not read the trials through Study._get_trials"


def test_a_bracket_study_keeps_the_studys_storage_and_id():
    """Hyperband shows samplers one bracket (a _BracketStudy); all_trials reads the whole
    study through its _storage and _study_id."""
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9)
    study = optuna.create_study(pruner=pruner)

    def objective(t: optuna.Trial) -> float:
        x = t.suggest_float("x", 0, 1)
        for step in range(1, 4):
            t.report(x * step, step)
            if t.should_prune():
                raise optuna.TrialPruned
        return x

    study.optimize(objective, n_trials=12)
    bracket = pruner._create_bracket_study(study, 0)
    assert bracket._storage is study._storage and bracket._study_id == study._study_id
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    assert len(private.all_trials(bracket, states)) == 12 > len(bracket.get_trials())


def test_an_enqueued_trial_carries_fixed_params():
    study = optuna.create_study()
    study.enqueue_trial({"x": 0.5})
    enqueued = study.ask()
    plain = study.ask()
    assert private.enqueued(enqueued._cached_frozen_trial)
    assert not private.enqueued(plain._cached_frozen_trial)


def test_a_sampler_can_write_an_attr_of_the_running_trial():
    """A sampler gets a FrozenTrial in before_trial; the attr reaches the storage and the
    objective's view of the trial."""

    class Writes(optuna.samplers.RandomSampler):
        def before_trial(self, study, trial):
            private.set_attr_of_running(study, trial, "origin", f"trial {trial.number}")

    seen = []
    study = optuna.create_study(sampler=Writes(seed=0))
    study.optimize(lambda t: seen.append(t.user_attrs.get("origin")) or 0.0, n_trials=2)
    assert seen == ["trial 0", "trial 1"]
    assert [t.user_attrs["origin"] for t in study.trials] == seen


def test_a_retried_trial_knows_the_trial_it_runs_again():
    """What the heartbeat's stale-trial callback does for a dead worker's trial: it enqueues
    the same params; the new running trial names the old one."""
    study = optuna.create_study()
    lost = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(lost, state=TrialState.FAIL)
    with warnings.catch_warnings():  # the callback is marked experimental; hpo uses it on purpose
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, study.trials[0])
    again, fresh = study.ask(), study.ask()
    assert private.retry_of(again) == lost.number == 0
    assert private.retry_of(fresh) is None
    assert again.suggest_float("x", 0, 1) == lost.params["x"]


def test_the_private_names_hpo_uses_exist():
    """One line per private name, so that the failure names it."""
    from optuna.storages import _cached_storage

    assert hasattr(_cached_storage, "_CachedStorage")
    study = optuna.create_study()
    for name in ("_storage", "_study_id", "_get_trials"):
        assert hasattr(study, name), name
    trial = study.ask()
    assert isinstance(trial._trial_id, int)
    assert trial._cached_frozen_trial.number == trial.number
    with pytest.raises(AttributeError):
        private.enqueued(object())  # a FrozenTrial's system_attrs is what it reads
