"""Tests for hpo.train.augment: batch flips and crops against independent per-image references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpo.train.augment import crop, flip_crop, hflip

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def distinct_batch(n: int = 8, c: int = 3, h: int = 12, w: int = 10, **kw) -> torch.Tensor:
    """A batch whose every value is different, so each output value names its source pixel."""
    return (
        torch.randperm(n * c * h * w, generator=torch.Generator().manual_seed(0))
        .reshape(n, c, h, w)
        .to(**kw)
    )


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_shape_dtype_device_and_values_preserved(device: str, dtype: torch.dtype) -> None:
    # Distinct small integers within each channel: exact even in bfloat16.
    g = torch.Generator().manual_seed(0)
    x = torch.stack([torch.randperm(30, generator=g) for _ in range(6)]).reshape(2, 3, 6, 5)
    x = x.to(dtype=dtype, device=device)
    out = flip_crop(x, pad=2, generator=gen(1, device))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            # Every output pixel is a pixel of the same image and channel.
            assert torch.isin(out[i, k].float(), x[i, k].float()).all()


def test_hflip_matches_torch_flip_per_image() -> None:
    x = distinct_batch(dtype=torch.float32)
    mask = torch.tensor([True, False, False, True, True, False, True, False])
    out = hflip(x, mask)
    for i in range(x.shape[0]):
        expected = torch.flip(x[i], dims=[-1]) if mask[i] else x[i]
        assert torch.equal(out[i], expected)


def test_crop_matches_numpy_reflect_pad_and_slice() -> None:
    pad, h, w = 3, 12, 10
    x = distinct_batch(n=4, h=h, w=w, dtype=torch.float32)
    dy = torch.tensor([0, 6, 2, 5])
    dx = torch.tensor([6, 0, 3, 1])
    padded = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect")
    out = crop(padded, dy, dx, h, w)
    assert out.shape == x.shape
    for i in range(x.shape[0]):
        img = np.pad(x[i].numpy(), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
        expected = img[:, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        np.testing.assert_array_equal(out[i].numpy(), expected)


def test_crop_at_centre_is_identity() -> None:
    x = distinct_batch(dtype=torch.float32)
    padded = torch.nn.functional.pad(x, (4,) * 4, mode="reflect")
    centre = torch.full((x.shape[0],), 4)
    assert torch.equal(crop(padded, centre, centre, 12, 10), x)


@pytest.mark.parametrize(
    "kw",
    [dict(flip=False, crop=False), dict(flip=False, pad=0), dict(flip=False, crop=False, pad=0)],
)
def test_no_flip_no_crop_is_identity(kw: dict) -> None:
    x = distinct_batch(dtype=torch.float32)
    assert torch.equal(flip_crop(x, generator=gen(0), **kw), x)


def test_flip_only_gives_each_image_or_its_mirror() -> None:
    x = distinct_batch(n=64, dtype=torch.float32)
    flipped_only = flip_crop(x, crop=False, generator=gen(3))
    for i in range(x.shape[0]):
        assert torch.equal(flipped_only[i], x[i]) or torch.equal(flipped_only[i], x[i].flip(-1))


@pytest.mark.parametrize(("flip", "pad"), [(True, 4), (False, 4), (True, 0), (True, 3)])
def test_flip_crop_equals_its_building_blocks(flip: bool, pad: int) -> None:
    # flip_crop fuses flip, pad and crop into one gather; replay the same draws step by step.
    x = distinct_batch(n=64, h=12, w=10, dtype=torch.float32)
    n, _, h, w = x.shape
    g = gen(11)
    expected = x
    if flip:
        expected = hflip(expected, torch.randint(0, 2, (n,), generator=g).bool())
    if pad:
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
        padded = torch.nn.functional.pad(expected, (pad,) * 4, mode="reflect")
        expected = crop(padded, dy, dx, h, w)
    assert torch.equal(flip_crop(x, pad=pad, flip=flip, generator=gen(11)), expected)


def test_channels_last_in_channels_last_out() -> None:
    x = distinct_batch(n=16, dtype=torch.float32)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    out = flip_crop(x_cl, generator=gen(9))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, flip_crop(x, generator=gen(9)))


def test_non_contiguous_and_empty_batches() -> None:
    x = distinct_batch(dtype=torch.float32).permute(0, 1, 3, 2)  # (8, 3, 10, 12), strided
    out = flip_crop(x, generator=gen(0))
    assert out.shape == x.shape
    assert flip_crop(torch.zeros(0, 3, 8, 8), generator=gen(0)).shape == (0, 3, 8, 8)


def test_reproducible_with_same_seed_and_different_with_another() -> None:
    x = distinct_batch(n=32, dtype=torch.float32)
    a = flip_crop(x, generator=gen(42))
    b = flip_crop(x, generator=gen(42))
    c = flip_crop(x, generator=gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_about_half_are_flipped() -> None:
    n = 4000
    x = distinct_batch(n=n, c=1, h=4, w=4, dtype=torch.float32)
    out = flip_crop(x, crop=False, generator=gen(7))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert bool((flipped ^ kept).all())  # each image is exactly one of the two
    assert 0.45 < flipped.float().mean().item() < 0.55


def test_every_crop_offset_occurs() -> None:
    # Pixel values encode their (row, column), so the output's centre pixel reveals the offset.
    pad, size, n = 2, 8, 2000
    rows = torch.arange(size).view(size, 1) * 100
    cols = torch.arange(size).view(1, size)
    x = (rows + cols).float().expand(n, 1, size, size).contiguous()
    out = flip_crop(x, pad=pad, flip=False, generator=gen(5))
    centre = out[:, 0, size // 2, size // 2]
    dy = centre.div(100, rounding_mode="floor") - (size // 2 - pad)
    dx = centre.remainder(100) - (size // 2 - pad)
    seen = set(zip(dy.long().tolist(), dx.long().tolist(), strict=True))
    assert seen == {(i, j) for i in range(2 * pad + 1) for j in range(2 * pad + 1)}


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        flip_crop(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError):
        flip_crop(torch.zeros(1, 3, 4, 4), pad=4)
    with pytest.raises(ValueError):
        flip_crop(torch.zeros(1, 3, 4, 4), pad=-1)
