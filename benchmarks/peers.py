"""The searches from outside hpo that benchmarks/search_quality.py runs on hpo's own space and
trainer: DEHB (`pip install dehb`, through its ask/tell API, not reimplemented).

The space is the spec's, read off the Optuna distributions that hpo.search.space.suggest asks
for (a few hundred random draws find every conditional knob), and given to the peer flat:
knobs a config does not use (a conv block's with depth 0) are simply not read. A peer's config
goes back through the same `suggest`, as an Optuna FixedTrial, so it is built, clipped and
checked exactly as a study's trial is.

    python benchmarks/peers.py [--task pixel]   # the space as a peer sees it, a row a knob
    python benchmarks/peers.py --smoke          # box's"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hpo.search.space import suggest
from hpo.search.spec import Spec
from hpo.train.config import Config


def space_of(spec: Spec, base: Config, draws: int = 400) -> dict[str, BaseDistribution]:
    """Every knob the spec's space can ask for, with its distribution (the first seen)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    found: dict[str, BaseDistribution] = {}
    for _ in range(draws):
        trial = study.ask()
        try:
            suggest(trial, spec, base)
        except ValueError:
            pass  # an invalid draw still shows the knobs it asked for
        for name, dist in trial.distributions.items():
            found.setdefault(name, dist)
        study.tell(trial, 0.0)
    return found


def configspace(space: dict[str, BaseDistribution], seed: int) -> Any:
    """The space as a ConfigSpace ConfigurationSpace (categoricals by index)."""
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer

    cs = ConfigurationSpace(seed=seed)
    for name, d in space.items():
        if isinstance(d, CategoricalDistribution):
            cs.add(Categorical(name, [str(i) for i in range(len(d.choices))]))
        elif isinstance(d, IntDistribution) and d.low < d.high:
            cs.add(Integer(name, (d.low, d.high), log=d.log))
        elif isinstance(d, FloatDistribution) and d.low < d.high:
            cs.add(Float(name, (d.low, d.high), log=d.log))
    return cs


def params_of(values: dict[str, Any], space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """A ConfigSpace configuration's values as Optuna params of `space`."""
    params = {}
    for name, d in space.items():
        if isinstance(d, CategoricalDistribution):
            params[name] = d.choices[int(values[name])]
        elif name not in values:  # a range of one value
            params[name] = d.low
        elif isinstance(d, IntDistribution):
            step = d.step or 1
            params[name] = int(d.low + round((int(values[name]) - d.low) / step) * step)
        else:
            v = float(values[name])
            if d.step is not None:
                v = d.low + round((v - d.low) / d.step) * d.step
            params[name] = min(max(v, d.low), d.high)
    return params


def config_of(params: dict[str, Any], spec: Spec, base: Config) -> Config:
    """hpo's Config for these params, built as a study's trial builds it."""
    return suggest(optuna.trial.FixedTrial(params), spec, base)


# evaluate(config, epochs) -> (value of the task's metric or None, seconds); None: failed
Evaluate = Callable[[Config, int], tuple[float | None, float]]


def dehb_search(
    spec: Spec,
    base: Config,
    evaluate: Evaluate,
    maximize: bool,
    seed: int,
    epoch_budget: int,
    stop: Callable[[], bool],
    workdir: str,
) -> None:
    """DEHB over the spec's space, fidelity = epochs (1 .. spec.epochs, eta 3), until
    `epoch_budget` epochs are spent or `stop()`. Each evaluation trains from scratch."""
    import logging

    from dehb import DEHB
    from loguru import logger

    logger.remove()  # DEHB logs every job through loguru
    logging.getLogger("distributed").setLevel(logging.ERROR)
    space = space_of(spec, base)
    optimizer = DEHB(
        cs=configspace(space, seed),
        min_fidelity=1,
        max_fidelity=spec.epochs,
        eta=3,
        n_workers=1,
        seed=seed,
        output_path=workdir,
        save_freq=None,
    )
    spent = 0
    while spent < epoch_budget and not stop():
        job = optimizer.ask()
        epochs = max(1, int(round(job["fidelity"])))
        config = config_of(params_of(dict(job["config"]), space), spec, base)
        t0 = time.monotonic()
        value, _ = evaluate(config, epochs)
        spent += epochs
        fitness = math.inf if value is None else (-value if maximize else value)
        optimizer.tell(job, {"fitness": min(fitness, 1e12), "cost": time.monotonic() - t0})


def main() -> None:
    parser = argparse.ArgumentParser(description="the space a peer searches, a row a knob")
    parser.add_argument("--task", default="box")
    parser.add_argument("--smoke", action="store_true", help="box's space")
    args = parser.parse_args()
    from hpo.study.options import Options, resolve_spec

    spec = resolve_spec("box" if args.smoke else args.task, Options(storage="memory"))
    base = Config.from_dict(spec.base) if spec.base else Config()
    space = space_of(spec, base)
    cs = configspace(space, 0)
    print(f"{spec.task}: {len(space)} knobs, {len(list(cs.values()))} searched by the peer")
    print("| knob | optuna distribution | peer's hyperparameter |")
    print("| --- | --- | --- |")
    for name, d in space.items():
        if name not in cs:
            print(f"| {name} | {type(d).__name__} | fixed |")
            continue
        h = cs[name]
        what = f"{len(h.choices)} choices" if hasattr(h, "choices") else f"{h.lower}..{h.upper}"
        what += " log" if getattr(h, "log", False) else ""
        print(f"| {name} | {type(d).__name__} | {type(h).__name__} ({what}) |")
    built = [config_of(params_of(dict(c), space), spec, base) for c in cs.sample_configuration(20)]
    print(f"\n{len(built)} random peer configs built as hpo Configs")


if __name__ == "__main__":
    main()
