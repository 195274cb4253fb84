"""Fast, deterministic colour features of a product photo (numpy + Pillow only).

`colour_features(image)` describes the colours of the *product*, not of the background, as a fixed-length
float32 vector meant for a linear head (StandardScaler + logistic regression) predicting a colour tag:

1. The image is shrunk with Pillow (`reduce` by an integer factor, then a box filter) to fit `SIZE` x `SIZE`.
   With SIZE = 40 a 60x80 catalogue thumbnail is just `reduce(2)`-ed to 30x40; larger photos are first
   shrunk by the decoder (`tagkit.image.load_image(..., target_size=...)`), then here.
2. sRGB → CIELAB (D65) in numpy.
3. The background is the per-channel median Lab colour of the one-pixel border; product ("foreground")
   pixels are those farther than `FG_DELTA_E` (CIE76) from it. When fewer than `MIN_FG_FRACTION` of the
   pixels (or fewer than `MIN_FG_PIXELS`) are foreground, all pixels are used instead (flat or full-bleed
   photos).
4. Statistics of the foreground pixels (table below).

Nothing is fitted on data: the palette and every threshold are fixed constants, so the function can run
anywhere (e.g. inside the image-decoding threads) and gives the same output for the same pixels.

Feature layout (`FEATURE_NAMES` names every position; `DIM` == 182):

| slice     | n  | content                                                                                   |
|-----------|----|-------------------------------------------------------------------------------------------|
| 0–78      | 79 | soft histogram over a fixed Lab palette (`PALETTE`: 7 greys + 12 hues x 2 chromas x 3 L), |
|           |    | Gaussian weights (σ = `SOFT_SIGMA`) normalised per pixel, averaged over the foreground,    |
|           |    | square-rooted                                                                             |
| 79–90     | 12 | chroma-weighted hue histogram (30° bins, soft between neighbouring bins), square-rooted   |
| 91–94     | 4  | lightness histogram of the achromatic (C < 10) foreground pixels, share of all foreground |
| 95–114    | 20 | L, a, b, C quantiles (10, 25, 50, 75, 90 %) of the foreground, / 100                      |
| 115–118   | 4  | foreground mean L, a, b, C, / 100                                                         |
| 119–122   | 4  | central-box (middle half of each side) foreground mean L, a, b, C, / 100                  |
| 123       | 1  | foreground fraction (before the fallback)                                                 |
| 124–126   | 3  | background Lab, / 100                                                                     |
| 127       | 1  | 1.0 when the all-pixels fallback was used                                                 |
| 128–133   | 6  | share of foreground pixels that are: near-black (L<22), dark (22–40), near-white (L>88,   |
|           |    | C<8), grey (C<8, 22≤L≤88), muted (8≤C<20), vivid (C≥40)                                   |
| 134–181   | 48 | 3 x 4 grid (rows top→bottom, columns left→right), per cell: foreground share of the cell, |
|           |    | foreground mean L, a, b / 100 (a cell without foreground: the overall foreground mean)    |

With the fallback, "foreground" means all pixels in everything above except `fg_fraction`. The palette and
hue histograms are square-rooted shares (Hellinger): their squares sum to 1.

Measured (bench/colour.py → bench/results/colour.json; fashion catalogue, 60x80 thumbnails): 0.39 ms CPU per
image (best pass; median 0.43) on one core of a shared, heavily loaded machine, shrink included, JPEG decoding
excluded; numpy call overhead dominates. StandardScaler + logistic regression on these features alone: 0.623
`baseColour` accuracy (46 values; test split of the image-features study), top-3 0.849.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

VERSION = 1
"""Part of the features cache key (`ImageEmbedder.model_id`): raise it whenever the features of an image change."""
SIZE = 40
"""The image is shrunk to fit SIZE x SIZE before anything else. Measured (fashion baseColour, validation split):
48 gives +0.5 points of accuracy for ~1.3x the cost; 32 gives -0.2 points and is no faster on 60x80 thumbnails
(which then need a resize after the reduce)."""
FG_DELTA_E = 12.0
MIN_FG_FRACTION = 0.03
MIN_FG_PIXELS = 4
SOFT_SIGMA = 8.0

# --- sRGB → CIELAB ------------------------------------------------------------------------------------
_LINEAR = np.array(
    [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in np.arange(256) / 255.0],
    dtype=np.float32,
)
# sRGB (linear) → XYZ, rows divided by the D65 white point so that white maps to (1, 1, 1).
_M = (
    np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
    / np.array([[0.95047], [1.0], [1.08883]])
).T.astype(np.float32)
_EPS, _KAPPA = 216 / 24389, 24389 / 27


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 sRGB [..., 3] → float32 CIELAB [..., 3] (D65; L 0..100, a and b about -128..127)."""
    xyz = _LINEAR[np.asarray(rgb, dtype=np.uint8)] @ _M
    f = np.cbrt(xyz)
    low = xyz <= _EPS  # the linear segment near black (L < 8)
    if low.any():
        f[low] = (_KAPPA * xyz[low] + 16) / 116
    lab = np.empty(f.shape, dtype=np.float32)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


# --- the fixed palette --------------------------------------------------------------------------------
def _palette() -> np.ndarray:
    greys = [(L, 0.0, 0.0) for L in (5, 20, 35, 50, 65, 80, 95)]
    hues = np.radians(np.arange(12) * 30 + 15)  # bin centres 15°, 45°, ... (red ≈ 30°, yellow ≈ 90°, blue ≈ 280°)
    chromatic = [(L, C * np.cos(h), C * np.sin(h)) for L in (30, 55, 80) for C in (25, 55) for h in hues]
    return np.array(greys + chromatic, dtype=np.float32)


PALETTE = _palette()
PALETTE.flags.writeable = False
"""Lab anchors of the soft histogram: 7 greys (L 5..95), then for L in (30, 55, 80), chroma in (25, 55),
12 hues (15° + 30° k): 7 + 72 = 79."""
# px [L, a, b, C, |Lab|², 1] @ _PAL_W = (2 px·anchor - |px|² - |anchor|²) / 2σ² = -|px - anchor|² / 2σ²
_PAL_W = (
    np.concatenate(
        [2 * PALETTE.T, np.zeros((1, len(PALETTE))), -np.ones((1, len(PALETTE))), -(PALETTE**2).sum(1)[None]]
    )
    / (2 * SOFT_SIGMA**2)
).astype(np.float32)
_QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90)
N_PALETTE, N_HUE, N_ACHROMATIC = len(PALETTE), 12, 4


def _names() -> list[str]:
    names = [f"pal_L{L:.0f}_a{a:.0f}_b{b:.0f}" for L, a, b in PALETTE]
    names += [f"hue_{15 + 30 * k}" for k in range(N_HUE)]
    names += [f"achromatic_L{k}" for k in range(N_ACHROMATIC)]
    names += [f"q{round(q * 100)}_{c}" for c in "LabC" for q in _QUANTILES]
    names += [f"mean_{c}" for c in "LabC"] + [f"centre_mean_{c}" for c in "LabC"]
    names += ["fg_fraction", "bg_L", "bg_a", "bg_b", "fallback"]
    names += ["share_black", "share_dark", "share_white", "share_grey", "share_muted", "share_vivid"]
    names += [f"grid{r}{c}_{x}" for r in range(3) for c in range(4) for x in ("fg", "L", "a", "b")]
    return names


FEATURE_NAMES: tuple[str, ...] = tuple(_names())
DIM = len(FEATURE_NAMES)


# --- features -----------------------------------------------------------------------------------------
def shrink(image: Image.Image, size: int = SIZE) -> Image.Image:
    """`image` as RGB, shrunk (never enlarged) to fit size x size: integer `reduce`, then a box filter."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    w, h = image.size
    factor = max(w, h) // size
    if factor >= 2:
        image = image.reduce(factor)
        w, h = image.size
    if max(w, h) > size:
        s = size / max(w, h)
        image = image.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
    return image


def colour_features(image: Image.Image, size: int = SIZE) -> np.ndarray:
    """Colour features of the product in `image`: float32 [DIM] (layout: module doc).

    `image` is best the RGB image of `tagkit.image.load_image` (transparency already flattened on white); other
    modes are converted with Pillow's `convert("RGB")`. Thread-safe; no state is kept between calls.
    """
    rgb = np.asarray(shrink(image, size))
    if rgb.size == 0:
        rgb = np.full((1, 1, 3), 255, dtype=np.uint8)
    return _features(srgb_to_lab(rgb))


def _features(lab: np.ndarray) -> np.ndarray:
    h, w, _ = lab.shape
    flat = lab.reshape(-1, 3)
    border = np.concatenate([lab[0], lab[-1], lab[1:-1, 0], lab[1:-1, -1]]) if h > 2 and w > 2 else flat
    k = len(border) // 2
    bg = np.partition(border, k, axis=0)[k]  # per-channel (upper) median
    diff = flat - bg
    fg = np.einsum("ij,ij->i", diff, diff) > FG_DELTA_E**2
    n_fg = int(np.count_nonzero(fg))
    fallback = n_fg < max(MIN_FG_PIXELS, MIN_FG_FRACTION * fg.size)
    if fallback:
        fg[:] = True
    n = n_fg if not fallback else fg.size
    # per foreground pixel: L, a, b, C, |Lab|², 1 (the last two let one matrix product give palette distances)
    px = np.empty((n, 6), dtype=np.float32)
    px[:, :3] = flat[fg]
    L, A, B = px[:, 0], px[:, 1], px[:, 2]
    C = np.hypot(A, B, out=px[:, 3])
    np.multiply(L, L, out=px[:, 4])
    px[:, 4] += C * C
    px[:, 5] = 1

    out = np.empty(DIM, dtype=np.float32)
    # soft palette histogram: Gaussian weights exp(-|px - anchor|² / 2σ²), normalised per pixel, averaged
    wgt = px @ _PAL_W  # = -|px - anchor|² / 2σ²
    np.exp(wgt, out=wgt)
    norm = wgt.sum(1)
    np.maximum(norm, 1e-30, out=norm)  # (only a pixel > 100 ΔE from every anchor could underflow to 0)
    np.divide(1 / n, norm, out=norm)
    out[:_O_HUE] = norm @ wgt
    # chroma-weighted hue histogram, linear interpolation between the two nearest 30° bins
    hue = np.arctan2(B, A) * (6 / np.pi) + 11.5  # in bins (centre of bin k at k), shifted positive
    lo = hue.astype(np.intp)
    frac = hue - lo
    wc = C * frac
    hh = np.bincount(lo % N_HUE, C - wc, N_HUE) + np.bincount((lo + 1) % N_HUE, wc, N_HUE)
    out[_O_HUE:_O_ACH] = hh * (1 / (C.sum() + 1e-6))
    np.sqrt(out[:_O_ACH], out=out[:_O_ACH])
    # achromatic lightness histogram
    out[_O_ACH:_O_Q] = np.bincount((L[C < 10] * 0.04).astype(np.intp).clip(0, 3), None, 4) * (1 / n)
    # quantiles, means
    srt = np.sort(px[:, :4], axis=0)
    out[_O_Q:_O_MEAN] = srt[np.minimum(_QI * n, n - 1).astype(np.intp)].T.reshape(-1)
    # sums of L, a, b, C and pixel counts over the 12 grid cells, the central box and all foreground at once
    sums = _regions(h, w)[:, fg] @ px  # [14, 6]
    cnt = sums[:, 5]
    means = sums[:, :4] / np.maximum(cnt, 1)[:, None]
    out[_O_MEAN:_O_CENTRE] = means[_ALL]
    out[_O_CENTRE:_O_FG] = means[_CENTRE] if cnt[_CENTRE] else means[_ALL]
    out[_O_Q:_O_FG] *= 0.01
    out[_O_FG] = n_fg / fg.size
    out[_O_FG + 1 : _O_FG + 4] = bg * 0.01
    out[_O_FG + 4] = float(fallback)
    # shares of coarse lightness / chroma classes (counts from the sorted columns)
    n_l22, n_l40 = np.searchsorted(srt[:, 0], _L_CUTS)
    n_c8, n_c20, n_c40 = np.searchsorted(srt[:, 3], _C_CUTS)
    l_grey = L[C < 8]
    n_white = np.count_nonzero(l_grey > 88)
    out[_O_SHARE:_O_GRID] = (
        n_l22,  # black: L < 22
        n_l40 - n_l22,  # dark: 22 <= L < 40
        n_white,  # white: L > 88, C < 8
        n_c8 - n_white - np.count_nonzero(l_grey < 22),  # grey: 22 <= L <= 88, C < 8
        n_c20 - n_c8,  # muted: 8 <= C < 20
        n - n_c40,  # vivid: C >= 40
    )
    out[_O_SHARE:_O_GRID] *= 1 / n
    # 3 x 4 grid: per cell, foreground share and foreground mean L, a, b (cells without any: the overall mean)
    grid = out[_O_GRID:].reshape(_GRID, 4)
    grid[:, 0] = cnt[:_GRID] / _cell_sizes(h, w)
    grid[:, 1:] = means[:_GRID, :3] * 0.01
    empty = cnt[:_GRID] == 0
    if empty.any():
        grid[empty, 1:] = out[_O_MEAN : _O_MEAN + 3]
    return out


_O_HUE = N_PALETTE
_O_ACH = _O_HUE + N_HUE
_O_Q = _O_ACH + N_ACHROMATIC
_O_MEAN = _O_Q + 20
_O_CENTRE = _O_MEAN + 4
_O_FG = _O_CENTRE + 4
_O_SHARE = _O_FG + 5
_O_GRID = _O_SHARE + 6
_GRID_ROWS, _GRID_COLS = 3, 4
_GRID = _GRID_ROWS * _GRID_COLS
_QI = np.array(_QUANTILES, dtype=np.float32)
_L_CUTS = np.array([22, 40], dtype=np.float32)
_C_CUTS = np.array([8, 20, 40], dtype=np.float32)


_CENTRE, _ALL = _GRID, _GRID + 1


@functools.lru_cache(maxsize=64)
def _regions(h: int, w: int) -> np.ndarray:
    """float32 [14, h*w] indicators of the pixels (row-major) in each 3 x 4 grid cell, the central box (the middle
    half of each side) and the whole image: one matrix product then sums any per-pixel values over each region."""
    rows = np.arange(h) * _GRID_ROWS // h
    cols = np.arange(w) * _GRID_COLS // w
    cells = (rows[:, None] * _GRID_COLS + cols[None, :]).reshape(-1)
    ind = np.zeros((_GRID + 2, h * w), dtype=np.float32)
    ind[cells, np.arange(h * w)] = 1
    centre = np.zeros((h, w), dtype=bool)
    centre[h // 4 : h - h // 4, w // 4 : w - w // 4] = True
    ind[_CENTRE] = centre.reshape(-1)
    ind[_ALL] = 1
    ind.flags.writeable = False
    return ind


@functools.lru_cache(maxsize=64)
def _cell_sizes(h: int, w: int) -> np.ndarray:
    size = np.maximum(_regions(h, w)[:_GRID].sum(1), 1)
    size.flags.writeable = False
    return size
