"""tagkit.colour: colour features of the product (not the background) of a photo, fast and deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tagkit.colour import DIM, FEATURE_NAMES, PALETTE, colour_features, shrink, srgb_to_lab

IDX = {name: i for i, name in enumerate(FEATURE_NAMES)}
N_PAL = len(PALETTE)


def product(colour, background, size=(60, 80), box=(15, 15, 45, 65)) -> Image.Image:
    """A flat-coloured rectangle (the product) on a flat background, like a catalogue thumbnail."""
    im = Image.new("RGB", size, background)
    im.paste(Image.new("RGB", (box[2] - box[0], box[3] - box[1]), colour), box[:2])
    return im


def palette_mass(f: np.ndarray) -> np.ndarray:
    """The share of the foreground in each palette anchor (the histogram is stored square-rooted)."""
    return f[:N_PAL].astype(np.float64) ** 2


def mass_where(f: np.ndarray, cond: np.ndarray) -> float:
    return float(palette_mass(f)[cond].sum())


L_, A_, B_ = PALETTE[:, 0], PALETTE[:, 1], PALETTE[:, 2]
CHROMA = np.hypot(A_, B_)
HUE = np.degrees(np.arctan2(B_, A_)) % 360
REDDISH = (CHROMA > 20) & ((HUE < 60) | (HUE > 330))
BLUISH = (CHROMA > 20) & (HUE > 240) & (HUE < 330)
WHITISH = (CHROMA == 0) & (L_ >= 65)
WHITE_ANCHOR = int(np.argmax(np.where(CHROMA == 0, L_, -1)))
BLACKISH = (CHROMA == 0) & (L_ <= 20)


def test_layout_is_fixed_and_named():
    assert len(FEATURE_NAMES) == DIM == len(set(FEATURE_NAMES))
    assert N_PAL == 79 and FEATURE_NAMES[0].startswith("pal_") and FEATURE_NAMES[N_PAL] == "hue_15"
    for im in (
        product((200, 30, 40), (255, 255, 255)),
        Image.new("RGB", (1, 1)),
        Image.new("RGB", (3000, 17)),
        Image.new("L", (40, 40), 90),
        Image.new("RGBA", (20, 30), (0, 0, 255, 128)),
        Image.new("P", (33, 9)),
        Image.new("RGB", (2, 500), (10, 200, 30)),
    ):
        f = colour_features(im)
        assert f.shape == (DIM,) and f.dtype == np.float32
        assert np.isfinite(f).all()


def test_srgb_to_lab_reference_values():
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255], [128, 128, 128]], np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.1)
    np.testing.assert_allclose(lab[3], [32.30, 79.19, -107.86], atol=0.1)
    np.testing.assert_allclose(lab[4], [53.59, 0, 0], atol=0.1)


def test_red_product_on_white_lands_in_red_bins_not_white():
    f = colour_features(product((200, 30, 40), (255, 255, 255)))
    assert mass_where(f, REDDISH) > 0.95  # measured 0.998
    assert mass_where(f, REDDISH & (CHROMA > 40)) > 0.75  # 0.82; the rest: pink edge pixels blended with white
    assert mass_where(f, WHITISH) < 0.01
    assert IDX["bg_L"] == IDX["fg_fraction"] + 1
    assert f[IDX["bg_L"]] == pytest.approx(1.0, abs=0.01)  # the white border is the background
    assert f[IDX["fg_fraction"]] == pytest.approx(30 * 50 / (60 * 80), abs=0.05)
    assert f[IDX["fallback"]] == 0
    assert f[IDX["mean_a"]] > 0.5 and f[IDX["q50_C"]] > 0.6  # strongly red and saturated
    hue = f[IDX["hue_15"] : IDX["hue_15"] + 12] ** 2
    assert hue[:2].sum() > 0.9  # the chroma sits in the 0-60° hue bins


def test_background_detection_dark_background():
    # a white shirt photographed on black: the product is the white, the black is ignored
    f = colour_features(product((245, 245, 245), (10, 10, 10)))
    assert f[IDX["bg_L"]] < 0.05
    assert np.argmax(palette_mass(f)) == WHITE_ANCHOR
    assert mass_where(f, WHITISH) > 0.75 and mass_where(f, BLACKISH) < 0.02  # the rest: edges blended with black
    assert f[IDX["q50_L"]] > 0.95 and f[IDX["share_white"]] > 0.7


def test_background_detection_light_background():
    # navy trousers on an off-white studio background, with some JPEG-like noise on both
    rng = np.random.default_rng(0)
    im = np.asarray(product((30, 35, 90), (236, 232, 226)), dtype=np.int16)
    im = np.clip(im + rng.integers(-4, 5, im.shape), 0, 255).astype(np.uint8)
    f = colour_features(Image.fromarray(im))
    assert f[IDX["bg_L"]] > 0.9
    assert BLUISH[np.argmax(palette_mass(f))]
    assert mass_where(f, BLUISH) > 0.85 and mass_where(f, WHITISH) < 0.06
    assert f[IDX["mean_b"]] < -0.2
    assert f[IDX["fg_fraction"]] == pytest.approx(0.31, abs=0.05)


def test_product_colour_not_background_colour_decides():
    # the same red product on white, black and grey backgrounds: the same red mass and median colour
    # (only the product's edge pixels, blended with the background by the shrink, differ)
    feats = [colour_features(product((200, 30, 40), bg)) for bg in ((255, 255, 255), (0, 0, 0), (128, 128, 128))]
    median = [IDX["q50_L"], IDX["q50_a"], IDX["q50_b"]]
    for f in feats:
        assert mass_where(f, REDDISH) > 0.95
        np.testing.assert_allclose(f[median], feats[0][median], atol=0.02)


def test_deterministic():
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 256, (80, 60, 3), dtype=np.uint8))
    a, b = colour_features(im), colour_features(im.copy())
    assert np.array_equal(a, b)
    assert np.array_equal(
        colour_features(product((20, 140, 60), (255, 255, 255))),
        colour_features(product((20, 140, 60), (255, 255, 255))),
    )


def test_same_results_from_threads():
    # it is meant to run inside the image-decoding threads: no shared mutable state
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(2)
    ims = [Image.fromarray(rng.integers(0, 256, (80, 60, 3), dtype=np.uint8)) for _ in range(8)]
    ims += [product((i * 30, 200 - i * 20, 90), (255, 255, 255), size=(60 + i, 80 - i)) for i in range(8)]
    expected = [colour_features(im) for im in ims]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            for got, want in zip(pool.map(colour_features, ims), expected, strict=True):
                assert np.array_equal(got, want)


@pytest.mark.parametrize("size", [(1, 1), (2, 1), (1, 7), (3, 3), (5, 4)])
def test_tiny_images_do_not_crash(size):
    for colour in ((0, 0, 0), (255, 255, 255), (200, 30, 40)):
        f = colour_features(Image.new("RGB", size, colour))
        assert f.shape == (DIM,) and np.isfinite(f).all()
        assert palette_mass(f).sum() == pytest.approx(1.0, abs=1e-3)


def test_all_white_falls_back_to_all_pixels():
    f = colour_features(Image.new("RGB", (60, 80), (255, 255, 255)))
    assert np.isfinite(f).all()
    assert f[IDX["fallback"]] == 1 and f[IDX["fg_fraction"]] == 0
    assert np.argmax(palette_mass(f)) == WHITE_ANCHOR and mass_where(f, WHITISH) > 0.98


def test_shrink_keeps_aspect_and_never_enlarges():
    assert shrink(Image.new("RGB", (60, 80))).size == (30, 40)  # the catalogue thumbnails: reduce(2) only
    assert shrink(Image.new("RGB", (60, 80)), 32).size == (24, 32)
    assert shrink(Image.new("RGB", (2400, 1200))).size == (40, 20)
    assert shrink(Image.new("RGB", (20, 10))).size == (20, 10)
    assert shrink(Image.new("L", (64, 64))).mode == "RGB"
