"""Batch-level image augmentation as tensor ops: random horizontal flips and padded crops.

Everything works on a whole (N, C, H, W) batch at once, on whatever device it lives on, with no
per-image Python loop and no DataLoader workers, so augmentation keeps up with a GPU that holds
the whole data set in memory. `flip_crop` does the flip, the reflect padding and the crop in one
gather; `hflip` and `crop` are the same steps one at a time, kept as its readable reference.
"""

from __future__ import annotations

import torch


def hflip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x` (N, C, H, W) with image i mirrored left-right where `mask[i]` (bool, (N,)) is True."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def crop(
    x_padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int
) -> torch.Tensor:
    """The (h, w) window of image i of `x_padded` whose top-left corner is (dy[i], dx[i]).

    `dy` and `dx` are integer (N,) tensors on the same device, with 0 <= dy <= H' - h and
    0 <= dx <= W' - w; they are not checked, because that would cost a device sync per batch.
    """
    n = x_padded.shape[0]
    device = x_padded.device
    rows = dy.view(n, 1) + torch.arange(h, device=device)
    cols = dx.view(n, 1) + torch.arange(w, device=device)
    return _gather(x_padded, rows, cols)


def flip_crop(
    x: torch.Tensor,
    pad: int = 4,
    generator: torch.Generator | None = None,
    flip: bool = True,
    crop: bool = True,
    flips: torch.Tensor | None = None,
) -> torch.Tensor:
    """Randomly flip half the images of `x` (N, C, H, W) and crop each after reflect-padding.

    Each image is flipped with probability 1/2, then padded by `pad` on every side by reflection
    and cropped back to (H, W) at a uniform random offset in [0, 2 * pad] on each axis. The
    result has the shape, dtype and device of `x`. Random numbers come from `generator`, which
    must live on x's device; the same generator state gives the same result. Equal to
    `crop(F.pad(hflip(x, mask), (pad,) * 4, mode="reflect"), dy, dx, H, W)` for the draws
    mask, dy, dx made in that order. `flips` (bool, (N,)) gives the flips instead of drawing
    them (alternating flips), and then only the crop offsets are drawn.
    """
    if x.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(x.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be non-negative, got {pad}")
    n, _, h, w = x.shape
    device = x.device
    mask = flips
    if flip and mask is None:
        mask = torch.randint(0, 2, (n,), generator=generator, device=device).bool()
    if crop and pad > 0:
        if pad >= min(h, w):
            raise ValueError(f"reflect padding needs pad < image size, got pad={pad} for {h}x{w}")
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
        # Rather than materialise the padded batch, map each window position straight to its
        # source pixel: padding by reflection is just a lookup table of indices per axis.
        rows = _reflect_index(h, pad, device)[dy.view(n, 1) + torch.arange(h, device=device)]
        cols = _reflect_index(w, pad, device)[dx.view(n, 1) + torch.arange(w, device=device)]
    elif mask is None:
        return x
    else:
        rows = torch.arange(h, device=device).expand(n, h)
        cols = torch.arange(w, device=device).expand(n, w)
    if mask is not None:
        # Reflect padding is symmetric, so flipping before padding = mirroring the source column.
        cols = torch.where(mask.view(n, 1), w - 1 - cols, cols)
    return _gather(x, rows, cols)


def _reflect_index(size: int, pad: int, device: torch.device) -> torch.Tensor:
    """For each position of an axis reflect-padded by `pad`, its index in the unpadded axis."""
    k = torch.arange(-pad, size + pad, device=device).abs()
    return torch.where(k >= size, 2 * (size - 1) - k, k)


def _gather(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """out[i, k, r, s] = x[i, k, rows[i, r], cols[i, s]] for (N, h) rows and (N, w) cols."""
    n, c, _, width = x.shape
    h, w = rows.shape[1], cols.shape[1]
    # One gather over the flattened H*W axis: about twice as fast on CPU as 4-D advanced
    # indexing, and the index is shared by all channels (expand, no copy).
    index = rows.view(n, h, 1) * width + cols.view(n, 1, w)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # Training feeds channels_last batches on CUDA: gather in that layout (a free view) and
        # hand back the same layout, instead of copying to NCHW and making the model copy back.
        flat = x.permute(0, 2, 3, 1).reshape(n, -1, c)
        out = flat.gather(1, index.view(n, h * w, 1).expand(n, h * w, c))
        return out.view(n, h, w, c).permute(0, 3, 1, 2)
    return x.flatten(2).gather(2, index.view(n, 1, h * w).expand(n, c, h * w)).view(n, c, h, w)
