"""Which Task a command's argument names: a built-in or plugin task (a bare word), a user's data
set (a path), or the data set an existing study was made from (its name). A data set's study
records what it was read as and its content digest, so that every worker and rerun reads the
same rows the same way, and one whose data differs is refused."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna

from hpo.search import record
from hpo.study.storage import open_storage, storage_url
from hpo.tasks import all_tasks, get_task, is_path
from hpo.tasks.base import Task
from hpo.train.config import Config
from hpo.util.errors import UserError

DATA_SETTINGS = ("image_size", "split_seed")  # a data set's settings that --data may set


def recorded(name: str, storage: str | None) -> record.StudyInfo | None:
    """The record of study `name` where it exists; None without opening a storage that is not
    there yet (a local SQLite file not yet made)."""
    url = storage_url(storage)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    if url == "memory":
        return None
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:
        return None
    return record.info(study)


def open_task(
    arg: str,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    target: tuple[str, ...] = (),
    kind: str | None = None,
    skip_bad: bool = False,
    data: dict[str, Any] | None = None,
    original_config: str | None = None,
    cpu: bool = True,
    original_model: str | None = None,
) -> tuple[Task, str | None]:
    """(the task `hpo study ARG` studies, where its data lies: a data set's path or None).
    `original_model`: the user's nn.Module factory as the original, with the optimiser
    settings of --original-config, else of the task's own original, else hpo's defaults."""
    original = load_original(original_config) if original_config else None
    if is_path(arg):
        task, path = from_path(arg, storage, study_name, target, kind, skip_bad, data, cpu)
    elif arg in all_tasks():
        task, path = get_task(arg), None
    else:  # the name of a study made from a data set: its record knows where
        info = recorded(arg, storage)
        if info is None or not info.data_path:
            get_task(arg)  # the unknown task's one line
        task, path = from_path(
            info.data_path, storage, study_name or arg, target, kind, skip_bad, data, cpu
        )
    if original_model:
        from hpo.search.family import as_original

        original = as_original(original or task.original or Config(), original_model)
    if original is not None:
        source = " + ".join(filter(None, (original_model, original_config)))
        note = f"{source} ({describe_config(original)})"
        task = replace(task, original=original, original_note=note)
    return task, path


def from_path(
    path: str,
    storage: str | None,
    study_name: str | None,
    target: tuple[str, ...],
    kind: str | None,
    skip_bad: bool,
    data: dict[str, Any] | None,
    cpu: bool,
    info: record.StudyInfo | None = None,
) -> tuple[Task, str]:
    """The Task of the data set at `path`, read as its study recorded it where there is one
    (`info`: the study's record, else looked up in `storage`)."""
    from hpo.tasks.dataset.task import Request, dataset_task, name_of

    where = Path(path).expanduser()
    if not where.exists():
        raise UserError(f"no such file or folder: {path}")
    name = study_name or name_of(where)
    if name in all_tasks(warn=False):
        raise UserError(
            f"{name!r} is the name of a built-in task; give this data set its own study name "
            f"with --study-name (e.g. --study-name my-{name})"
        )
    data = dict(data or {})
    unknown = sorted(set(data) - set(DATA_SETTINGS))
    if unknown:
        raise UserError(
            f"unknown data setting(s) {', '.join(unknown)} for a data set "
            f"(known: {', '.join(DATA_SETTINGS)})"
        )
    info = info or recorded(name, storage)
    before = (info.data or {}) if info is not None else {}
    if info is not None and "digest" not in before:
        raise UserError(
            f"study {name!r} was made for task {info.task!r}, not from a data set; choose "
            "another --study-name"
        )
    request = Request(
        path=str(where.resolve()),
        target=tuple(target) or _recorded_target(before),
        kind=kind or before.get("kind"),
        skip_bad=skip_bad or bool(before.get("skip_bad")),
        image_size=_int(data.get("image_size"), "image_size") or before.get("image_size") or None,
        split_seed=_int(data.get("split_seed"), "split_seed") or before.get("split_seed") or 0,
        cpu=cpu,
    )
    task = dataset_task(request, name=name)
    if before:
        check_same(name, before, task.defaults, path)
    return task, request.path


def _recorded_target(before: dict[str, Any]) -> tuple[str, ...]:
    """The target columns a table or labels.csv was read with (the other formats have none)."""
    if before.get("format") in ("table", "image labels"):
        return tuple(before.get("target") or ())
    return ()


def _int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"--data {name} must be a whole number >= 0, got {value!r}")
    return value


def check_same(name: str, before: dict[str, Any], now: dict[str, Any], path: str) -> None:
    """A UserError saying what changed where the data at `path` is not the study's."""
    if before.get("digest") == now.get("digest") and before == {**before, **now}:
        return
    changed = [
        f"{key} {before.get(key)!r} -> {now.get(key)!r}"
        for key in ("format", "kind", "rows", "classes", "target", "image_size", "split_seed")
        if before.get(key) != now.get(key)
    ]
    if before.get("digest") != now.get("digest"):
        changed.append(f"content digest {str(before.get('digest'))[:12]} -> {now['digest'][:12]}")
    raise UserError(
        f"the data at {path} is not the data study {name!r} was made from ({'; '.join(changed)}); "
        "restore it, or study it as new data with --study-name"
    )


def load_original(path: str) -> Config:
    """The user's own net from a TOML file of Config fields (hpo.train.config): one line
    naming an unknown knob or a value outside its domain."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"--original-config: no such file: {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"--original-config {path}: not a readable TOML file: {e}") from None
    try:
        return Config.from_dict(raw)
    except (TypeError, ValueError) as e:
        raise UserError(f"--original-config {path}: {e}") from None


def describe_config(config: Config) -> str:
    """A config in a few words: 'conv 32-64-128 + dense 100, adam lr 0.01, batch 128'."""
    parts = []
    if config.conv_channels:
        parts.append("conv " + "-".join(map(str, config.conv_channels)))
    if config.dense_units:
        parts.append("dense " + "-".join(map(str, config.dense_units)))
    net = " + ".join(parts) or "linear"
    if config.model:
        from hpo.search.family import describe_family

        net = describe_family(config)
    return f"{net}, {config.optimizer} lr {config.lr:g}, batch {config.batch_size}"


def task_of_study(study: optuna.Study, fallback: str, data_path: str | None = None) -> Task:
    """The Task of a stored study: its data set's (at `data_path`, else where it was read) or
    the registered task it names (`fallback` where the record names none)."""
    info = record.info(study)
    if info.data_path or (info.data and "digest" in info.data):
        path = data_path or info.data_path
        if not path:
            raise UserError(f"study {study.study_name!r} does not record where its data lies")
        task, _ = from_path(path, None, study.study_name, (), None, False, None, True, info)
    else:
        task = get_task(info.task or fallback)
    if info.original_config:
        original = Config.from_dict(info.original_config)
        task = replace(task, original=original, original_note=describe_config(original))
    return task


def study_of(arg: str, study_name: str | None, data_path: str | None) -> tuple[str, str | None]:
    """(the study's name, the data's path here) for a command given a task, a study's name or
    a data set's path (whose study is named after it, and whose data is there)."""
    if is_path(arg):
        from hpo.tasks.dataset.task import name_of

        return study_name or name_of(arg), data_path or arg
    return study_name or arg, data_path
