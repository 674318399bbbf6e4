"""A user's data set as one more Task: read once (hpo.tasks.dataset.read), split once
(hpo.tasks.dataset.split), held as tensors; its metric, baselines and space follow its kind and
shape, and its settings (the digest among them) are what the study records."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hpo.tasks.base import Task
from hpo.tasks.dataset.found import Found
from hpo.tasks.dataset.read import read
from hpo.tasks.dataset.space import derived_spec
from hpo.tasks.dataset.split import Splits, make_split, standardise
from hpo.train.config import Config
from hpo.train.data import Split

# ours: what counts as solved on data no one has judged (hpo diagnose's success rate)
SUCCESS = {"classification": ("val_accuracy", 0.9), "regression": ("val_r2", 0.9)}
CPU_IMAGE_SIZE = 64  # the largest default image side on a CPU (issue 33); image_size=N sets it


@dataclass(frozen=True)
class Request:
    """How to read a data set: what the user said of it (flags, or the study's record)."""

    path: str
    target: tuple[str, ...] = ()  # table / labels.csv target columns; () = found from the file
    kind: str | None = None  # "regression" | "classification" overrides the found kind
    skip_bad: bool = False  # leave out unreadable images, counting them
    image_size: int | None = None  # None: the median size (capped on a CPU)
    split_seed: int = 0
    cpu: bool = True  # the default image size is capped at CPU_IMAGE_SIZE


@dataclass
class Prepared:
    """A data set read and split: what its loaders hand out."""

    found: Found
    splits: Splits
    scale: tuple[np.ndarray, np.ndarray] | None  # features' (mean, std) from the train split

    def split(self, part: str) -> Split:
        rows = getattr(self.splits, part)
        x = self.found.x[rows]
        if self.scale is not None:
            mean, std = self.scale
            x = ((x - mean) / std).astype(np.float32)
        y = self.found.y[rows]
        return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.copy()))


@cache
def prepare(request: Request) -> Prepared:
    """Read and split once per process (the decoded images are cached across processes)."""
    found = read(
        Path(request.path),
        target=list(request.target) or None,
        kind=request.kind,
        image_size=request.image_size,
        max_image_size=CPU_IMAGE_SIZE if request.cpu else None,
        skip_bad=request.skip_bad,
    )
    splits = make_split(found, request.split_seed)
    scale = None if found.images else standardise(found.x[splits.train])
    return Prepared(found, splits, scale)


def name_of(path: str | Path) -> str:
    """The study name a data set gets: its folder's name or its file's stem."""
    p = Path(path).expanduser().resolve()
    return p.stem if p.is_file() else p.name


def dataset_task(
    request: Request,
    name: str | None = None,
    original: Config | None = None,
    original_note: str = "",
) -> Task:
    """The Task of the data set `request` names (read and split here, once per process)."""
    prepared = prepare(request)
    found, splits = prepared.found, prepared.splits
    name = name or name_of(request.path)
    defaults = settings_of(request, prepared)

    def check(settings: dict[str, Any]) -> Prepared:
        if (settings["image_size"] or None, settings["split_seed"]) == (
            found.image_size,
            request.split_seed,
        ):
            return prepared
        size, seed = settings["image_size"] or None, settings["split_seed"]
        return prepare(dataclasses.replace(request, image_size=size, split_seed=seed))

    def load(settings: dict[str, Any]) -> tuple[Split, Split]:
        p = check(settings)
        return p.split("train"), p.split("val")

    def load_test(settings: dict[str, Any]) -> Split:
        return check(settings).split("test")

    def sizes(settings: dict[str, Any]) -> dict[str, int]:
        s = check(settings).splits
        return {"n_train": len(s.train), "n_val": len(s.val), "n_test": len(s.test)}

    classification = found.kind == "classification"
    return Task(
        name=name,
        summary=f"{found.format} at {found.path}: {found.kind}",
        kind=found.kind,
        n_outputs=found.n_outputs,
        metric="val_accuracy" if classification else "val_mse",
        direction="maximize" if classification else "minimize",
        success=SUCCESS[found.kind],
        defaults=defaults,
        original=original,
        original_note=original_note,
        baselines=baselines_for(found),
        _load=load,
        _load_test=load_test,
        sizes=sizes,
        spec=derived_spec(name, found, len(splits.train), cpu=request.cpu),
        source=str(found.path),
        dataset=mlflow_dataset(name, found, splits),
        found=describe(found, splits),
    )


def settings_of(request: Request, prepared: Prepared) -> dict[str, Any]:
    """What the study records of the data: what it was read as, and its content."""
    found = prepared.found
    return {
        "format": found.format,
        "kind": found.kind,
        "target": list(found.targets),
        "classes": list(found.classes),
        "image_size": found.image_size or 0,
        "split_seed": request.split_seed,
        "skip_bad": request.skip_bad,
        "rows": int(len(found.y)),
        "digest": found.digest,
    }


def baselines_for(found: Found) -> tuple[str, ...]:
    """scikit-learn on the flattened inputs: least squares, or logistic regression (on images
    through PCA, which keeps it to seconds on thousands of pixels)."""
    if found.kind == "regression":
        return ("linear_regression",)
    return ("pca_logistic_regression",) if found.images else ("logistic_regression",)


def shape_text(found: Found) -> str:
    if found.images:
        return "x".join(map(str, found.x.shape[1:])) + " images"
    return f"{found.x.shape[1]} features"


def describe(found: Found, splits: Splits) -> str:
    """The one line said before anything trains: kind, names, shape, splits and how."""
    if found.kind == "classification":
        names = ", ".join(found.classes[:8]) + (", ..." if len(found.classes) > 8 else "")
        what = f"classification of {len(found.classes)} classes ({names})"
    else:
        what = f"regression of {len(found.targets)} target(s) ({', '.join(found.targets)})"
    line = (
        f"{found.format} {found.path}: {what}; {shape_text(found)}; "
        f"{len(splits.train):,} train / {len(splits.val):,} val / {len(splits.test):,} test, "
        f"{splits.how}"
    )
    extra = list(found.notes) + ([f"{len(found.skipped)} skipped"] if found.skipped else [])
    if found.decode.get("images"):
        n, seconds = int(found.decode["images"]), found.decode.get("seconds", 0.0)
        extra.append(
            f"{n:,} images from the decode cache"
            if found.decode.get("cached")
            else f"{n:,} images decoded in {seconds:.1f} s ({n / max(seconds, 1e-9):,.0f}/s)"
        )
    return line + (f" ({'; '.join(extra)})" if extra else "")


def mlflow_dataset(name: str, found: Found, splits: Splits) -> dict[str, Any]:
    """What MLflow's dataset input on each run says of the data."""
    return {
        "name": name,
        "digest": found.digest[:36],
        "source": str(found.path),
        "format": found.format,
        "kind": found.kind,
        "shape": list(found.x.shape[1:]),
        "splits": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
        "classes": list(found.classes),
        "targets": list(found.targets),
    }
