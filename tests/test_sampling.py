"""The default TPE sees a pruned trial ranked by its last reported value, and local moves around
the best trial so far (hpo.search.samplers)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpo.search.moves import LocalMoves, neighbour
from hpo.search.samplers import RandomShare, RankStoppedByValue, as_ranked
from hpo.search.strategy import HyperbandAtRungs, binomial_se, make_sampler, top_share_cut

X = optuna.distributions.FloatDistribution(0.0, 1.0)


def pruned(values: dict[int, float]) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=TrialState.PRUNED,
        params={"x": 0.5},
        distributions={"x": X},
        intermediate_values=values,
    )


def test_a_pruned_trial_is_seen_complete_with_its_last_value():
    seen = as_ranked(pruned({1: 0.6, 3: 0.87, 2: 0.7}))
    assert seen.state == TrialState.COMPLETE and seen.value == 0.87


@pytest.mark.parametrize(
    "trial",
    [
        pruned({}),  # stopped before its first epoch ended: nothing to rank it by
        pruned({1: 0.7, 2: math.nan}),
        create_trial(
            state=TrialState.COMPLETE, value=0.5, params={"x": 0.1}, distributions={"x": X}
        ),
        create_trial(state=TrialState.FAIL, params={"x": 0.1}, distributions={"x": X}),
    ],
)
def test_other_trials_are_seen_as_they_are(trial):
    assert as_ranked(trial) is trial


def slow_winner(trial: optuna.Trial) -> float:
    """x > 0.8 wins (0.9) but always runs out of time after one epoch; elsewhere the trials
    complete at a plateau of 0.5-0.51, like pixel nets that never find the pixel."""
    x = trial.suggest_float("x", 0.0, 1.0)
    if x > 0.8:
        trial.report(0.9, 1)
        raise optuna.TrialPruned("trial_timeout")
    return 0.51 - 0.01 * x  # the plateau leans away from the winners


def share_in_winning_region(sampler: optuna.samplers.BaseSampler) -> float:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(slow_winner, n_trials=40)
    after_startup = [t.params["x"] for t in study.trials[8:]]
    return sum(x > 0.8 for x in after_startup) / len(after_startup)


def test_tpe_follows_pruned_winners_only_when_it_ranks_them_by_value():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ours = make_sampler("tpe", seed=3, n_startup=8)
    assert isinstance(ours, RankStoppedByValue)
    plain = make_sampler("tpe", seed=3, n_startup=8).inner  # the same TPE, unwrapped
    plain_share, our_share = share_in_winning_region(plain), share_in_winning_region(ours)
    assert our_share >= 0.5, (plain_share, our_share)
    assert our_share >= plain_share + 0.3, (plain_share, our_share)


def test_only_the_samplers_view_changes():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0, 4))
    study.optimize(slow_winner, n_trials=12)
    assert TrialState.PRUNED in {t.state for t in study.trials}  # stored states are kept ...
    assert study.best_trial.value < 0.6  # ... and best_trial still counts complete ones only


# --- local moves around the best trial (hpo.search.moves.LocalMoves) ------------------------

CAT = optuna.distributions.CategoricalDistribution(["a", "b", "c", "d"])
GRID = optuna.distributions.FloatDistribution(0.75, 1.5, step=0.25)
LOG = optuna.distributions.FloatDistribution(1e-4, 4.0, log=True)
INT = optuna.distributions.IntDistribution(128, 1024, log=True)


@pytest.mark.parametrize("dist, value", [(CAT, "b"), (GRID, 1.0), (GRID, 1.5), (LOG, 0.5)])
def test_a_neighbour_is_another_value_of_the_distribution_near_the_old_one(dist, value):
    rng = np.random.default_rng(0)
    seen = [neighbour(dist, value, rng) for _ in range(200)]
    assert all(v != value for v in seen)
    assert all(dist._contains(dist.to_internal_repr(v)) for v in seen)
    if dist is GRID:  # one step either way, sometimes two; reflected at the ends
        assert set(seen) <= {0.75, 1.25, 1.5} - {value} | ({1.0} if value == 1.5 else set())
    if dist is LOG:  # a tenth of the log range: most moves within a factor of ~3
        ratios = sorted(abs(math.log(v / value)) for v in seen)
        assert ratios[len(ratios) // 2] < math.log(3)


def test_an_int_neighbour_is_an_int_in_range():
    rng = np.random.default_rng(1)
    seen = [neighbour(INT, 512, rng) for _ in range(100)]
    assert all(isinstance(v, int) and 128 <= v <= 1024 and v != 512 for v in seen)


def ten_knobs(trial: optuna.Trial) -> float:
    """Trial 0 (enqueued) is the best, so every local move starts from it."""
    for i in range(5):
        trial.suggest_categorical(f"c{i}", ["a", "b", "c", "d"])
        trial.suggest_float(f"x{i}", 0.0, 1.0)
    return 1.0 if trial.number == 0 else 0.0


def test_a_local_move_changes_a_few_knobs_of_the_best_trial_and_keeps_the_rest():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = LocalMoves(optuna.samplers.RandomSampler(seed=0), share=1.0, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    start = {**{f"c{i}": "a" for i in range(5)}, **{f"x{i}": 0.5 for i in range(5)}}
    study.enqueue_trial(start)
    study.optimize(ten_knobs, n_trials=41)
    assert "local_move" not in study.trials[0].user_attrs  # the enqueued trial is as asked
    changed = []
    for t in study.trials[1:]:
        diff = sorted(n for n in start if t.params[n] != start[n])
        assert t.user_attrs["local_move"].startswith("trial 0 with "), t.user_attrs
        assert diff and all(n in t.user_attrs["local_move"] for n in diff)
        changed.append(len(diff))
    ones = sum(k == 1 for k in changed)  # one knob half the time, two or three a quarter each
    assert 12 <= ones <= 28 and sum(k == 3 for k in changed) >= 4 and max(changed) == 3


def conditional(trial: optuna.Trial) -> float:
    opt = trial.suggest_categorical("opt", ["adam", "sgd"])
    trial.suggest_float("lr", 1e-3, 1.0, log=True)
    if opt == "sgd":
        trial.suggest_float("momentum", 0.8, 0.95)
    return 1.0 if trial.number == 0 else 0.0


def test_a_knob_the_move_brings_in_is_drawn_in_its_range():
    sampler = LocalMoves(optuna.samplers.TPESampler(seed=0), share=1.0, seed=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"opt": "adam", "lr": 0.01})
    study.optimize(conditional, n_trials=30)
    sgd = [t for t in study.trials if t.params["opt"] == "sgd"]
    assert sgd and all(0.8 <= t.params["momentum"] <= 0.95 for t in sgd)
    only_opt = [t for t in sgd if "lr" not in t.user_attrs["local_move"]]
    assert only_opt and all(t.params["lr"] == 0.01 for t in only_opt)


def test_the_share_goes_to_the_inner_sampler_and_so_do_multi_objective_studies():
    sampler = LocalMoves(optuna.samplers.RandomSampler(seed=0), share=0.5, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(ten_knobs, n_trials=40)
    moves = sum("local_move" in t.user_attrs for t in study.trials)
    assert 10 <= moves <= 30
    multi = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    multi.optimize(lambda t: (ten_knobs(t), 0.0), n_trials=8)
    assert not any("local_move" in t.user_attrs for t in multi.trials)


TARGET = list("dcbadcbadc")


def near_a_good_start(trial: optuna.Trial) -> float:
    """Known by construction: ten 4-way knobs and ten ranges, each knob scoring on its own. The
    enqueued start has 8 of the 10 choices right and every range near its best, so the optimum
    lies a few single changes away, while a random draw gets ~2.5 of the choices right."""
    score = sum(trial.suggest_categorical(f"c{i}", list("abcd")) == TARGET[i] for i in range(10))
    score += sum(1 - abs(trial.suggest_float(f"x{i}", 0.0, 1.0) - 0.3) for i in range(10))
    return score


def best_after(sampler: optuna.samplers.BaseSampler, n: int) -> float:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    start = {f"c{i}": TARGET[i] for i in range(8)} | {"c8": "a", "c9": "d"}  # 8 of 10 right
    study.enqueue_trial(start | {f"x{i}": 0.35 for i in range(10)})
    study.optimize(near_a_good_start, n_trials=n)
    return study.best_value


def test_local_moves_improve_on_a_good_start_where_tpe_alone_does_not():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = 8 + 10 * 0.95
    local, tpe = [], []
    for seed in range(3):
        local.append(best_after(make_sampler("tpe", seed, 10, local_moves=0.5), 60))
        tpe.append(best_after(make_sampler("tpe", seed, 10), 60))
    assert all(mine > theirs for mine, theirs in zip(local, tpe, strict=True)), (local, tpe)
    assert sorted(local)[1] >= start + 0.5 > sorted(tpe)[1], (local, tpe)


# --- what a trial's sampling costs the storage -------------------------------------------------


class CountingStorage(optuna.storages.InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_all_trials(self, *args, **kwargs):
        self.reads += 1
        return super().get_all_trials(*args, **kwargs)


def grouped_knobs(trial: optuna.Trial) -> float:
    """Ten knobs, three of them only under one choice (sampled one by one, not jointly)."""
    kind = trial.suggest_categorical("kind", ["a", "b"])
    xs = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]
    if kind == "a":
        xs += [trial.suggest_float(f"a{i}", 0.0, 1.0) for i in range(3)]
    for epoch in (1, 2, 3):
        trial.report(sum(xs) * epoch / 3, epoch)
    return sum(xs)


@pytest.mark.parametrize("local_moves", [0.0, 0.5])
def test_a_trials_sampling_reads_the_study_once_behind_hyperband(local_moves):
    """Hyperband shows the sampler a new study object per knob, which defeated Optuna's cache
    of the trial list: TPE read every trial from the storage again for each knob."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = CountingStorage()
    study = optuna.create_study(
        storage=storage,
        direction="maximize",
        sampler=make_sampler("tpe", 0, 4, local_moves),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=3),
    )
    study.optimize(grouped_knobs, n_trials=8)  # past TPE's start-up
    per_trial = []
    for _ in range(6):
        trial = study.ask()
        before = storage.reads
        trial.suggest_categorical("kind", ["a", "b"])
        for name in [f"x{i}" for i in range(6)] + [f"a{i}" for i in range(3)]:
            trial.suggest_float(name, 0.0, 1.0)
        per_trial.append(storage.reads - before)
        study.tell(trial, 1.0)
    assert max(per_trial) <= 1, per_trial


class CountingAttrs(optuna.storages.InMemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.attr_reads = 0

    def get_trial_system_attrs(self, trial_id):
        self.attr_reads += 1
        return super().get_trial_system_attrs(trial_id)


def crossing_curves(trial: optuna.Trial) -> float:
    """Curves that cross: a fast start (x) against a high end (y), so that rungs 1, 3 and 9
    each stop someone."""
    x, y = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
    value = 0.0
    for epoch in range(1, 11):
        value = x * math.exp(-epoch / 3) + y * (1 - math.exp(-epoch / 3))
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def test_hyperband_at_rungs_stops_the_same_trials_at_the_same_epochs_reading_less():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runs = {}
    for name, pruner in [
        ("plain", optuna.pruners.HyperbandPruner(min_resource=1, max_resource=10)),
        ("ours", HyperbandAtRungs(min_resource=1, max_resource=10)),
    ]:
        storage = CountingAttrs()
        study = optuna.create_study(
            storage=storage,
            study_name="same",  # Hyperband's brackets are drawn from the name
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=1),
            pruner=pruner,
        )
        study.optimize(crossing_curves, n_trials=80)
        runs[name] = ([(t.state, t.last_step) for t in study.trials], storage.attr_reads)
    (plain, plain_reads), (ours, our_reads) = runs["plain"], runs["ours"]
    # the same trials stopped at epochs 1 and 3; none at 9, past 10 / 3 (Hyperband's last rung)
    assert {step for state, step in plain if state == TrialState.PRUNED} == {1, 3, 9}
    assert {step for state, step in ours if state == TrialState.PRUNED} == {1, 3}
    early = [i for i, (state, step) in enumerate(plain) if state != TrialState.PRUNED or step < 9]
    assert [ours[i] for i in early[:30]] == [plain[i] for i in early[:30]]
    assert our_reads < plain_reads / 2, (our_reads, plain_reads)


def test_hyperband_at_rungs_never_stops_a_trial_at_its_last_epoch():
    """With 3 epochs a trial (a rung), plain Hyperband stops trials that trained all 3; ours
    lets them complete, and still stops at epoch 1."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def run(pruner):
        study = optuna.create_study(study_name="last", pruner=pruner)

        def objective(trial):
            x = trial.suggest_float("x", 0.0, 1.0)
            for epoch in (1, 2, 3):
                trial.report(x * (4 - epoch), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned
            return x

        study.optimize(objective, n_trials=40)
        return [(t.state, len(t.intermediate_values)) for t in study.trials]

    plain = run(optuna.pruners.HyperbandPruner(min_resource=1, max_resource=3))
    ours = run(HyperbandAtRungs(min_resource=1, max_resource=3))
    pruned_at_3 = lambda states: sum(s == TrialState.PRUNED and n == 3 for s, n in states)  # noqa: E731
    assert pruned_at_3(plain) > 0 and pruned_at_3(ours) == 0
    assert any(s == TrialState.PRUNED and n == 1 for s, n in ours)  # rung 1 still prunes
    # at 2 epochs a trial no rung pays back: a third kept at epoch 1 trains one more, not 3x
    two = run(HyperbandAtRungs(min_resource=1, max_resource=2))
    plain_two = run(optuna.pruners.HyperbandPruner(min_resource=1, max_resource=2))
    assert any(s == TrialState.PRUNED for s, _ in plain_two)
    assert not any(s == TrialState.PRUNED for s, _ in two)


def plateau_then_climb(trial: optuna.Trial) -> float:
    """Every trial reads chance (0.5, with the sampling noise of 1,000 validation images) at
    epoch 1; those with x > 0.7 climb to 1.0 from epoch 2, the others stay at chance."""
    x = trial.suggest_float("x", 0.0, 1.0)
    noise = np.random.default_rng(trial.number)
    value = 0.5
    for epoch in range(1, 11):
        p = 0.5 if epoch == 1 or x <= 0.7 else min(1.0, 0.5 + 0.2 * (epoch - 1))
        value = noise.binomial(1000, p) / 1000
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def test_hyperband_does_not_stop_on_noise_the_validation_set_cannot_tell():
    """Plain, it stops climbers at epoch 1 on noise; told the accuracy's standard error, it
    stops one in 20 there (a 2.8-SE draw: z = 2 on the difference), and still stops the trials
    left at chance at epoch 3, beside climbers at ~0.9."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runs = {}
    for name, noise in (("plain", None), ("noise", binomial_se(1000))):
        study = optuna.create_study(
            study_name="plateau",
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=HyperbandAtRungs(min_resource=1, max_resource=10, noise=noise),
        )
        study.optimize(plateau_then_climb, n_trials=80)
        climbers = [t for t in study.trials if t.params["x"] > 0.7]
        runs[name] = (
            sum(t.state == TrialState.PRUNED and t.last_step == 1 for t in climbers),
            sum(t.state == TrialState.COMPLETE for t in climbers),
            sum(t.state == TrialState.PRUNED and t.last_step == 3 for t in study.trials),
        )
    (plain_at_1, plain_done, _), (at_1, done, at_3) = runs["plain"], runs["noise"]
    assert plain_at_1 >= 4 and at_1 <= 1, runs
    assert done > plain_done and at_3 > 0, runs


def test_top_share_cut_is_successive_halvings_rule():
    assert top_share_cut([0.1, 0.9, 0.5, 0.7, 0.3, 0.2], 3, True) == 0.7  # top 2 of 6
    assert top_share_cut([0.1, 0.9], 3, True) == 0.9  # at least the best
    assert top_share_cut([0.1, 0.9, 0.5], 3, False) == 0.1
    assert binomial_se(400)(0.5) == pytest.approx(0.025)
    assert binomial_se(400)(1.0) == 0.0


class LowEnd(optuna.samplers.BaseSampler):
    """A model that always believes in the low end of every range."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return param_distribution.low


def test_a_random_share_of_trials_ignores_the_model_and_the_rest_follow_it():
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = RandomShare(LowEnd(), 0.3, seed=3)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"x": 0.5})
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=200)
    off_model = [t.number for t in study.trials if t.params["x"] != 0.0]
    assert study.trials[0].params["x"] == 0.5  # an enqueued trial is the inner sampler's
    drawn = [t.number for t in study.trials[1:] if sampler.is_random(t)]
    assert off_model[1:] == drawn and 0.2 < len(drawn) / 200 < 0.4
    again = RandomShare(LowEnd(), 0.3, seed=3)  # a worker or a resumed run agrees
    assert [again.is_random(t) for t in study.trials] == [
        sampler.is_random(t) for t in study.trials
    ]


def test_make_sampler_puts_the_random_share_under_local_moves():
    sampler = make_sampler("tpe", 0, 6, local_moves=0.2, random_share=0.3)
    assert isinstance(sampler, LocalMoves) and isinstance(sampler.inner, RandomShare)
    assert not isinstance(make_sampler("random", 0, 6, random_share=0.3), RandomShare)


def test_the_random_share_does_not_repeat_the_inner_samplers_random_start():
    """Seeded alike, two random samplers draw alike: the share's draws must be its own."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = RandomShare(make_sampler("tpe", 5, 10), 0.5, seed=5)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=20)
    xs = [t.params["x"] for t in study.trials]
    assert len(set(xs)) == len(xs)
