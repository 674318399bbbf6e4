"""scikit-learn baselines on the same train/validation splits as the search."""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge

from hpo.train.data import Split, TaskData
from hpo.train.loop import metrics_for


def _features(split: Split, grey: bool) -> np.ndarray:
    """Images as pixels / 255 (grey: the channels' mean), features (a table) as they are."""
    x = split.x.cpu()
    if x.dtype != torch.uint8:  # standardised features already
        return x.float().reshape(x.shape[0], -1).numpy()
    x = x.float().mean(dim=1) if grey else x.float()  # grey: one value per pixel
    return (x.reshape(x.shape[0], -1) / 255.0).numpy()


def linear_regression(data: TaskData) -> dict[str, float]:
    """Least squares on grey pixels (docs/scenarios.md §1: the problem is linear; R2 ~ 1.0), in
    closed form: the normal equations solved by Cholesky (scikit-learn's Ridge), with a penalty
    (1e-6) that only keeps the solve well-posed where a corner pixel is rarely covered. Measured
    here on box's 10,000 x 4,096 pixels: 3.8 s, where LinearRegression's SVD-based solver took
    9.2 s (28 s on a loaded machine) for the same val R2 1.0.

    Grey, because a white square sets all three channels alike: same information, and 3x
    fewer features than samples keeps least squares well-posed at the default sizes.
    """
    t0 = time.monotonic()
    x = _features(data.train, True).astype(np.float64)  # scikit-learn's float32 path: 30 s
    model = Ridge(alpha=1e-6, solver="cholesky").fit(x, data.train.y.cpu().numpy())
    pred = model.predict(_features(data.val, True).astype(np.float64))
    pred = pred.reshape(len(pred), -1)  # one target: scikit-learn gives (N,), the net (N, 1)
    out = metrics_for("regression", _tensor(pred), data.val.y.cpu(), "val")
    return out | {"fit_seconds": time.monotonic() - t0}


def logistic_regression(data: TaskData) -> dict[str, float]:
    """LogisticRegression (L2) on raw pixels (float32 to halve memory at 224x224x3)."""
    t0 = time.monotonic()
    return _classifier(LogisticRegression(max_iter=200), data, _pixels, t0)


def _pixels(split: Split) -> np.ndarray:
    return _features(split, False).astype(np.float32)


def sparse_logistic_regression(data: TaskData, keep: int = 1_000) -> dict[str, float]:
    """Screening + lasso: the `keep` pixel values with the largest ANOVA F score against the
    label, then L1-penalised LogisticRegression on them (C=0.1).

    pixel: 3,000 images x 150,528 noise features, one pixel informative. An L2 model can fit
    the training labels with the noise alone (n << d) and generalises poorly; L1 keeps the few
    weights on the informative pixel. Screening first (Fan & Lv's sure independence screening)
    keeps memory small: liblinear on all 150,528 columns peaked at 16.8 GB, here ~2 GB.
    """
    t0 = time.monotonic()
    x = data.train.x.cpu().reshape(len(data.train), -1)  # uint8: no full float copy
    y = data.train.y.cpu()
    scores = np.concatenate(
        [_f_scores(x[:, i : i + 16_384], y) for i in range(0, x.shape[1], 16_384)]
    )
    cols = np.sort(np.argsort(-scores, kind="stable")[: min(keep, x.shape[1])])

    def features(split: Split) -> np.ndarray:
        flat = split.x.cpu().reshape(len(split), -1)[:, cols]
        return flat.numpy().astype(np.float32) / 255.0

    model = LogisticRegression(l1_ratio=1.0, C=0.1, solver="liblinear")
    return _classifier(model, data, features, t0)


def _f_scores(x, y) -> np.ndarray:
    """ANOVA F (between- over within-class variance) per column, two-pass so that a column
    that the label determines exactly scores high instead of 0/0 (sklearn's f_classif
    cancels catastrophically there in float32)."""
    x = x.double()
    mean = x.mean(0)
    between = torch.zeros_like(mean)
    within = torch.zeros_like(mean)
    for k in y.unique():
        xk = x[y == k]
        mk = xk.mean(0)
        between += len(xk) * (mk - mean) ** 2
        within += ((xk - mk) ** 2).sum(0)
    return (between / (within + 1e-9 * len(x))).numpy()


def _classifier(model, data: TaskData, features, t0: float) -> dict[str, float]:
    """Fit `model` on features(train), score on features(val); fit_seconds counts from t0."""
    model.fit(features(data.train), data.train.y.cpu().numpy())
    proba = model.predict_proba(features(data.val))
    out = metrics_for(
        "classification", _tensor(np.log(np.clip(proba, 1e-12, 1))), data.val.y.cpu(), "val"
    )
    return out | {"fit_seconds": time.monotonic() - t0}


def pca_logistic_regression(data: TaskData, components: int = 100) -> dict[str, float]:
    """PCA to `components` dimensions, then LogisticRegression (cifar10: 45,000 x 3,072 pixels).

    On raw CIFAR-10 pixels LogisticRegression costs ~0.3 s per L-BFGS iteration on one core
    and hits its iteration limit; 100 principal components keep most of the pixel variance of
    natural images and fit in seconds, which is all a linear reference line needs.
    """
    t0 = time.monotonic()
    x = _features(data.train, False).astype(np.float32, copy=False)
    k = max(1, min(components, x.shape[0] - 1, x.shape[1]))  # tiny data sets: fewer rows
    pca = PCA(n_components=k, svd_solver="randomized", random_state=0).fit(x)
    model = LogisticRegression(max_iter=500).fit(pca.transform(x), data.train.y.cpu().numpy())
    val = pca.transform(_features(data.val, False).astype(np.float32, copy=False))
    # a small --subset may miss a class: give the classes it never saw ~zero probability
    proba = np.full((val.shape[0], data.n_outputs), 1e-12)
    proba[:, model.classes_] = model.predict_proba(val)
    out = metrics_for(
        "classification", _tensor(np.log(np.clip(proba, 1e-12, 1))), data.val.y.cpu(), "val"
    )
    return out | {"fit_seconds": time.monotonic() - t0}


def _tensor(a: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


BASELINES = {
    "linear_regression": linear_regression,
    "logistic_regression": logistic_regression,
    "sparse_logistic_regression": sparse_logistic_regression,
    "pca_logistic_regression": pca_logistic_regression,
}


def run_baselines(names: tuple[str, ...], data: TaskData) -> dict[str, dict[str, float]]:
    """{name: metrics} for each named baseline."""
    return {name: BASELINES[name](data) for name in names}
