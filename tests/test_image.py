"""Image loading (every kind of bad or awkward file, written for real by Pillow) and the embedder.

The embedder's mechanics (order, errors in a batch, batch sizes, lazy input) run on a tiny ONNX
model written by `tiny_onnx_model` below (hand-encoded protobuf: the `onnx` package is not a
dependency); the bundled EfficientNet model is checked on real fashion thumbnails when present.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tagkit import colour
from tagkit.colour import colour_features
from tagkit.image import (
    INPUT_SIZE,
    MANIFEST,
    ImageEmbedder,
    ImageError,
    ModelError,
    content_hash,
    letterbox,
    load_image,
    load_manifest,
    read_image_bytes,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# --- files the tests write ---------------------------------------------------------------------


def photo(width: int = 120, height: int = 90, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: smooth gradients, a few shapes, some noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 128 + 100 * np.sin(x / max(width, 1) * 6 + seed)
    g = 128 + 100 * np.cos(y / max(height, 1) * 5 - seed)
    b = 255 * (x + y) / (width + height)
    pixels = np.stack([r, g, b], axis=2) + rng.normal(0, 6, (height, width, 3))
    pixels[height // 4 : height // 2, width // 3 : width // 2] = (200, 30, 40)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def jpeg(image: Image.Image | None = None, **options: object) -> bytes:
    return encode(image if image is not None else photo(), "JPEG", quality=90, **options)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def reason(source: bytes | Path, **kwargs: object) -> str:
    with pytest.raises(ImageError) as info:
        load_image(source, **kwargs)
    return info.value.reason


def pixel(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in image.getpixel((x, y)))  # type: ignore[union-attr]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(p - q) <= tolerance for p, q in zip(a, b, strict=True))


def huge_png(width: int, height: int) -> bytes:
    """A real, valid 1-bit PNG of width x height white pixels, written row by row (tiny on disk)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    rows = row * 1000
    parts = [compressor.compress(rows) for _ in range(height // 1000)]
    parts += [compressor.compress(row * (height % 1000)), compressor.flush()]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


# --- reading ----------------------------------------------------------------------------------


def test_read_image_bytes_and_content_hash(tmp_path: Path) -> None:
    data = jpeg()
    path = write(tmp_path, "a.jpg", data)
    assert read_image_bytes(path) == data
    assert read_image_bytes(str(path)) == data
    assert content_hash(data) == hashlib.sha256(data).hexdigest()
    assert len(content_hash(b"x")) == 64


def test_missing_file(tmp_path: Path) -> None:
    assert reason(tmp_path / "nope.jpg") == "file not found"
    with pytest.raises(ImageError, match="file not found"):
        read_image_bytes(tmp_path / "nope.jpg")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.jpg", b"")
    assert reason(path) == "empty file (0 bytes)"
    assert reason(b"") == "empty file (0 bytes)"
    with pytest.raises(ImageError, match=r"empty file \(0 bytes\)"):
        read_image_bytes(path)


def test_folder_instead_of_file(tmp_path: Path) -> None:
    assert reason(tmp_path) == "is a folder, not a file"


def test_image_error_is_a_value_error_and_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^shoes/1\.jpg: file not found$") as info:
        load_image(tmp_path / "nope.jpg", name="shoes/1.jpg")
    assert isinstance(info.value, ImageError)
    assert info.value.reason == "file not found"
    assert info.value.name == "shoes/1.jpg"


# --- not images -------------------------------------------------------------------------------


def test_text_file(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", "قیمت: ۲۰۰ تومان\nprice list, not a photo\n".encode())
    assert reason(path) == "not an image file (it is a text file)"


def test_non_image_with_jpg_name(tmp_path: Path) -> None:
    garbage = np.random.default_rng(3).integers(1, 256, 5000, dtype=np.uint8).tobytes()
    path = write(tmp_path, "photo.jpg", b"\x00\x01" + garbage)
    assert reason(path) == "not an image file (could not identify format)"


def test_html_page_saved_as_jpg(tmp_path: Path) -> None:
    path = write(tmp_path, "photo.jpg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>")
    assert reason(path) == "not an image file (it is an HTML page)"


def test_heic_is_named() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(100)
    assert "HEIC" in reason(heic)


def test_pdf_is_named() -> None:
    assert reason(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj") == "not an image file (it is a PDF document)"


# --- damaged images ---------------------------------------------------------------------------


def test_corrupt_jpeg_header(tmp_path: Path) -> None:
    data = jpeg()
    rng = np.random.default_rng(1)
    for start in (2, 3, 20):  # garbage over the markers right after the start-of-image marker, or later
        damaged = bytearray(data)
        damaged[start:600] = rng.integers(0, 256, 600 - start, dtype=np.uint8).tobytes()
        path = write(tmp_path, f"corrupt{start}.jpg", bytes(damaged))
        assert reason(path) == "corrupt JPEG file (damaged header)", start


def test_corrupt_jpeg_data(tmp_path: Path) -> None:
    data = bytearray(jpeg(photo(300, 200)))
    middle = len(data) // 2
    data[middle : middle + 50] = b"\xff\xd8" * 25  # start-of-image markers inside the compressed data
    message = reason(write(tmp_path, "corrupt.jpg", bytes(data)))
    assert message.startswith("corrupt JPEG file ("), message
    assert "0x" not in message  # no object addresses: the message is cached by content hash


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = jpeg(photo(400, 300))
    for cut in (len(data) // 2, len(data) - 200, 300):
        path = write(tmp_path, f"cut{cut}.jpg", data[:cut])
        assert reason(path) == "truncated JPEG (the file is cut short)", cut


def test_truncated_png_webp_gif(tmp_path: Path) -> None:
    for fmt, kind in (("PNG", "PNG"), ("WEBP", "WebP"), ("GIF", "GIF")):
        data = encode(photo(300, 200), fmt)
        for cut in (len(data) // 2, 30):
            path = write(tmp_path, f"cut{cut}.{fmt}", data[:cut])
            assert reason(path) == f"truncated {kind} (the file is cut short)", (fmt, cut)


def test_error_messages_are_stable() -> None:
    data = jpeg()[:500]
    assert reason(data) == reason(bytes(data))


# --- awkward but valid images -----------------------------------------------------------------


def test_plain_jpeg_from_bytes_and_path(tmp_path: Path) -> None:
    data = jpeg()
    path = write(tmp_path, "a.jpg", data)
    from_path, from_bytes = load_image(path), load_image(data)
    assert from_path.mode == from_bytes.mode == "RGB"
    assert from_path.size == (120, 90)
    assert np.array_equal(np.asarray(from_path), np.asarray(from_bytes))


def test_png_alpha_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((40, 60, 4), dtype=np.uint8)  # fully transparent black everywhere
    rgba[:, :20] = (255, 0, 0, 255)  # opaque red on the left
    rgba[:, 20:40] = (0, 0, 255, 128)  # half-transparent blue in the middle
    path = write(tmp_path, "alpha.png", encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    image = load_image(path)
    assert image.mode == "RGB"
    assert pixel(image, 5, 5) == RED
    assert close(pixel(image, 30, 5), (127, 127, 255), 2)
    assert pixel(image, 50, 5) == WHITE  # transparent black became white, not black


def test_grey_with_alpha_composited_on_white() -> None:
    la = Image.new("LA", (20, 10), (0, 0))
    la.paste((0, 255), (0, 0, 10, 10))
    image = load_image(encode(la, "PNG"))
    assert pixel(image, 2, 2) == (0, 0, 0)
    assert pixel(image, 15, 2) == WHITE


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    palette_image = Image.new("P", (30, 30), 0)
    palette_image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)  # index 0 black, index 1 green
    palette_image.paste(1, (0, 0, 15, 30))
    path = write(tmp_path, "p.png", encode(palette_image, "PNG", transparency=0))
    image = load_image(path)
    assert image.mode == "RGB"
    assert pixel(image, 5, 5) == GREEN
    assert pixel(image, 25, 5) == WHITE  # the transparent index, black in the palette


def test_palette_png_without_transparency() -> None:
    image = load_image(encode(photo().convert("P"), "PNG"))
    assert image.mode == "RGB"
    assert image.size == (120, 90)


def test_cmyk_jpeg(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # red ink: no cyan, full magenta and yellow
    cmyk.paste((255, 0, 0, 0), (20, 0, 40, 40))  # cyan
    path = write(tmp_path, "cmyk.jpg", encode(cmyk, "JPEG", quality=95))
    assert Image.open(path).mode == "CMYK"
    image = load_image(path)
    assert image.mode == "RGB"
    assert close(pixel(image, 5, 20), RED, 20)
    assert close(pixel(image, 35, 20), (0, 255, 255), 20)


def test_cmyk_jpeg_with_broken_icc_profile_falls_back() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    image = load_image(encode(cmyk, "JPEG", quality=95, icc_profile=b"not a profile" * 20))
    assert close(pixel(image, 8, 8), RED, 20)


# --- ICC colour profiles ---------------------------------------------------------------------------


def _s15(x: float) -> bytes:
    return struct.pack(">i", round(x * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def _icc(space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2 display profile of colour space `space` (b"RGB ", b"GRAY") with these tags."""
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (struct.pack(">I", offset + len(body)) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntr" + space + b"XYZ "
              + b"\0" * 12 + b"acsp" + b"APPL" + b"\0" * 24 + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\0" * 48)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def _description(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(raw)) + raw + b"\0" * 78


def _srgb_curve() -> bytes:
    values = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in np.linspace(0, 1, 1024)]
    return b"curv" + b"\0" * 4 + struct.pack(">I", 1024) + b"".join(struct.pack(">H", round(v * 65535)) for v in values)


def rgb_profile(name: str, red: tuple[float, ...], green: tuple[float, ...], blue: tuple[float, ...]) -> bytes:
    """A matrix RGB profile of these primaries (XYZ, D50-adapted), D65 white and the sRGB tone curve."""
    curve = _srgb_curve()
    return _icc(b"RGB ", [(b"desc", _description(name)), (b"wtpt", _xyz(0.964203, 1.0, 0.824905)),
                          (b"rXYZ", _xyz(*red)), (b"gXYZ", _xyz(*green)), (b"bXYZ", _xyz(*blue)),
                          (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)])


def display_p3() -> bytes:
    """Apple's Display P3, as iPhones and macOS Photos embed it."""
    return rgb_profile("Display P3", (0.515121, 0.241196, -0.001053), (0.291977, 0.692245, 0.041885),
                       (0.157104, 0.066574, 0.784073))


def grey_gamma_18() -> bytes:
    """A grey profile of tone curve gamma 1.8 (Photoshop's "Gray Gamma 1.8")."""
    gamma = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(1.8 * 256))
    return _icc(b"GRAY", [(b"desc", _description("Gray Gamma 1.8")), (b"wtpt", _xyz(0.964203, 1.0, 0.824905)),
                          (b"kTRC", gamma)])


def to_profile(image: Image.Image, icc: bytes) -> Image.Image:
    """`image` (sRGB) converted to the colour space of `icc`: it looks the same in a colour-managed viewer."""
    from PIL import ImageCms

    return ImageCms.profileToProfile(image, ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                     outputMode="RGB")


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


def test_display_p3_photo_is_read_in_srgb(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parent.parent / "examples" / "demo" / "new" / "IMG_4331.jpg"
    original = Image.open(demo).convert("RGB")
    srgb = Image.open(io.BytesIO(encode(original, "JPEG", quality=95))).convert("RGB")  # the same JPEG losses
    path = write(tmp_path, "p3.jpg", encode(to_profile(original, display_p3()), "JPEG", quality=95,
                                            icc_profile=display_p3()))
    raw = Image.open(path).convert("RGB")
    assert mean_difference(raw, srgb) > 3.5  # the P3 numbers read as sRGB: duller colours
    image = load_image(path)
    assert image.mode == "RGB" and image.size == original.size
    assert mean_difference(image, srgb) < 1.5
    assert mean_difference(image, srgb) < mean_difference(raw, srgb) / 3
    assert "icc_profile" not in image.info  # its pixels are sRGB now
    big = original.resize((1200, 1200), Image.Resampling.BICUBIC)  # decoded at 1/2 scale, then converted
    small = load_image(encode(to_profile(big, display_p3()), "JPEG", quality=95, icc_profile=display_p3()),
                       target_size=INPUT_SIZE)
    assert small.size == (600, 600)
    assert mean_difference(small, big.resize(small.size, Image.Resampling.BOX)) < 1.5


def test_display_p3_pure_colours() -> None:
    swatches = Image.new("RGB", (48, 16), RED)
    swatches.paste(GREEN, (16, 0, 32, 16))
    swatches.paste(WHITE, (32, 0, 48, 16))
    p3 = to_profile(swatches, display_p3())
    assert close(pixel(p3, 8, 8), (234, 51, 35), 3)  # sRGB red is well inside P3: a duller P3 red
    for fmt, options in (("PNG", {}), ("JPEG", {"quality": 100, "subsampling": 0})):
        image = load_image(encode(p3, fmt, icc_profile=display_p3(), **options))
        assert close(pixel(image, 8, 8), RED, 4)
        assert close(pixel(image, 24, 8), GREEN, 4)
        assert close(pixel(image, 40, 8), WHITE, 1)


def test_display_p3_with_transparency_and_palette() -> None:
    rgba = to_profile(Image.new("RGB", (32, 16), RED), display_p3()).convert("RGBA")
    rgba.putalpha(Image.new("L", (32, 16), 255))
    rgba.paste((0, 0, 0, 0), (16, 0, 32, 16))
    image = load_image(encode(rgba, "PNG", icc_profile=display_p3()))
    assert close(pixel(image, 8, 8), RED, 4)
    assert pixel(image, 24, 8) == WHITE  # transparency on white, and white stays white
    palette = load_image(encode(rgba.convert("RGB").convert("P"), "PNG", icc_profile=display_p3()))
    assert close(pixel(palette, 8, 8), RED, 4)


def test_grey_profile_is_applied() -> None:
    grey = Image.new("L", (8, 8), 128)
    assert pixel(load_image(encode(grey, "PNG")), 4, 4) == (128, 128, 128)
    # 128 in gamma 1.8 is 29 % light, which sRGB writes as 147
    assert close(pixel(load_image(encode(grey, "PNG", icc_profile=grey_gamma_18())), 4, 4), (147, 147, 147), 2)


def test_srgb_profile_and_no_profile_leave_pixels_as_they_are() -> None:
    from PIL import ImageCms

    data = jpeg()
    plain = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(np.asarray(load_image(data)), plain)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    # lcms's sRGB, and another sRGB profile (sRGB's primaries, another name and tone curve table): skipped alike
    other = rgb_profile("sRGB IEC61966-2.1", (0.436066, 0.222488, 0.013916), (0.385147, 0.716873, 0.097076),
                        (0.143066, 0.060608, 0.714096))
    for icc in (srgb, other):
        image = load_image(jpeg(icc_profile=icc))
        assert np.array_equal(np.asarray(image), plain)


def test_corrupt_rgb_icc_profile_keeps_the_image() -> None:
    data = jpeg()
    plain = np.asarray(load_image(data))
    broken = bytes(np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8))
    for icc in (broken, display_p3()[:200], b"not a profile" * 20):
        image = load_image(jpeg(icc_profile=icc))
        assert image.mode == "RGB" and image.size == (120, 90)
        assert np.array_equal(np.asarray(image), plain)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.zeros((8, 8), dtype=np.uint16)
    values[:, :4] = 65535
    values[:, 4:] = 32896  # 50 %
    path = write(tmp_path, "16bit.png", encode(Image.fromarray(values), "PNG"))
    assert Image.open(path).mode.startswith("I")
    image = load_image(path)
    assert pixel(image, 0, 0) == WHITE
    assert pixel(image, 6, 0) == (128, 128, 128)  # clipping would have made it 255


def test_thirty_two_bit_and_float_tiff() -> None:
    ints = np.full((6, 6), 1000, dtype=np.int32)
    ints[:, 3:] = 65535
    image = load_image(encode(Image.fromarray(ints, "I"), "TIFF"))
    assert pixel(image, 0, 0) == (4, 4, 4)
    assert pixel(image, 5, 0) == WHITE
    floats = np.full((6, 6), 100.0, dtype=np.float32)
    assert pixel(load_image(encode(Image.fromarray(floats, "F"), "TIFF")), 0, 0) == (100, 100, 100)


def test_one_bit_and_greyscale() -> None:
    bits = Image.new("1", (16, 8), 0)
    bits.paste(1, (8, 0, 16, 8))
    image = load_image(encode(bits, "PNG"))
    assert image.mode == "RGB"
    assert pixel(image, 0, 0) == (0, 0, 0)
    assert pixel(image, 12, 0) == WHITE
    grey = load_image(jpeg(photo().convert("L")))
    assert grey.mode == "RGB"
    assert grey.size == (120, 90)


def test_animated_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (RED, GREEN, BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(path).n_frames == 3
    image = load_image(path)
    assert image.mode == "RGB"
    assert pixel(image, 16, 16) == RED


def test_animated_webp_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in (GREEN, RED)]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert Image.open(path).n_frames == 2
    assert pixel(load_image(path), 16, 16) == GREEN


def test_exif_orientation_applied(tmp_path: Path) -> None:
    stored = Image.new("RGB", (80, 40), RED)
    stored.paste(BLUE, (40, 0, 80, 40))  # stored: red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored turned 90 degrees clockwise
    path = write(tmp_path, "rotated.jpg", jpeg(stored, exif=exif.tobytes()))
    image = load_image(path)
    assert image.size == (40, 80)  # portrait, as a phone shows it
    assert close(pixel(image, 20, 10), RED)  # the left side went to the top
    assert close(pixel(image, 20, 70), BLUE)


def test_other_formats() -> None:
    source = photo(64, 48)
    for fmt in ("BMP", "TIFF", "WEBP", "AVIF", "GIF", "JPEG2000"):
        image = load_image(encode(source, fmt))
        assert image.mode == "RGB"
        assert image.size == (64, 48), fmt


# --- size limits ------------------------------------------------------------------------------


def test_decompression_bomb_rejected_fast_with_its_size(tmp_path: Path) -> None:
    path = write(tmp_path, "bomb.png", huge_png(20000, 20000))
    assert path.stat().st_size < 200_000
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not be what happens
        message = reason(path)
    assert time.perf_counter() - start < 0.5
    assert message == "image too large: 20000x20000 = 400.0 Mpx, limit 40 Mpx"


def test_image_between_our_limit_and_pillows_warning_is_an_error() -> None:
    data = huge_png(10000, 10000)  # 100 Mpx: Pillow itself would only warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reason(data) == "image too large: 10000x10000 = 100.0 Mpx, limit 40 Mpx"


def test_custom_pixel_limit() -> None:
    data = jpeg(photo(100, 100))
    assert reason(data, max_pixels=9999) == "image too large: 100x100 = 0.0 Mpx, limit 0.009999 Mpx"
    assert load_image(data, max_pixels=10000).size == (100, 100)


# --- draft decoding of large JPEGs ------------------------------------------------------------


def test_target_size_decodes_large_jpegs_smaller_with_the_same_letterbox() -> None:
    big = photo(480, 360).resize((1920, 1440), Image.Resampling.BICUBIC)
    data = jpeg(big)
    full = load_image(data)
    reduced = load_image(data, target_size=INPUT_SIZE)
    assert full.size == (1920, 1440)
    assert reduced.size == (480, 360)  # 1/4 scale: still twice the 224 px it will be shrunk to
    difference = np.abs(letterbox(full) - letterbox(reduced))
    assert difference.mean() < 1.0  # grey levels, 0..255
    small = jpeg(photo(300, 200))
    assert load_image(small, target_size=INPUT_SIZE).size == (300, 200)  # too small to reduce


def test_letterbox_contract() -> None:
    tensor = letterbox(Image.new("RGB", (60, 80), RED))
    assert tensor.shape == (3, INPUT_SIZE, INPUT_SIZE)
    assert tensor.dtype == np.float32
    assert tuple(tensor[:, 112, 112]) == (255.0, 0.0, 0.0)
    assert tuple(tensor[:, 112, 2]) == (255.0, 255.0, 255.0)  # white bars left and right


# --- the embedder on a tiny model ---------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | str | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def tiny_onnx_model(channels: int = 4, kernel: int = 32, classes: int = 10) -> tuple[bytes, int]:
    """A small ONNX model with the bundled model's interface: `image` [N,3,224,224] → `embedding`
    (a strided convolution, flattened, L2-normalised) and `logits`. Protobuf written by hand."""
    rng = np.random.default_rng(0)
    dim = channels * (INPUT_SIZE // kernel) ** 2

    def tensor(name: str, array: np.ndarray) -> bytes:
        dims = b"".join(_field(1, d) for d in array.shape)
        return dims + _field(2, 1) + _field(8, name) + _field(9, array.astype("<f4").tobytes())

    def value_info(name: str, shape: list[int | str]) -> bytes:
        dims = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in shape)
        return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, dims)))

    def ints(name: str, values: list[int]) -> bytes:
        return _field(1, name) + b"".join(_field(8, v) for v in values) + _field(20, 7)

    def one_int(name: str, value: int) -> bytes:
        return _field(1, name) + _field(3, value) + _field(20, 2)

    def node(op: str, inputs: list[str], outputs: list[str], *attributes: bytes) -> bytes:
        parts = [_field(1, i) for i in inputs] + [_field(2, o) for o in outputs] + [_field(4, op)]
        return b"".join(parts + [_field(5, a) for a in attributes])

    weights = rng.normal(0, 1 / (3 * kernel * kernel) ** 0.5, (channels, 3, kernel, kernel))
    head = rng.normal(0, 1, (dim, classes))
    nodes = [
        node(
            "Conv",
            ["image", "w"],
            ["conv"],
            ints("kernel_shape", [kernel] * 2),
            ints("strides", [kernel] * 2),
        ),
        node("Flatten", ["conv"], ["flat"], one_int("axis", 1)),
        node("LpNormalization", ["flat"], ["embedding"], one_int("axis", 1), one_int("p", 2)),
        node("MatMul", ["embedding", "head"], ["logits"]),
    ]
    graph = b"".join(
        [_field(1, n) for n in nodes]
        + [_field(2, "tiny"), _field(5, tensor("w", weights)), _field(5, tensor("head", head))]
        + [_field(11, value_info("image", ["N", 3, INPUT_SIZE, INPUT_SIZE]))]
        + [_field(12, value_info("embedding", ["N", dim])), _field(12, value_info("logits", ["N", classes]))]
    )
    opset = _field(1, "") + _field(2, 17)
    return _field(1, 8) + _field(2, "tagkit-tests") + _field(7, graph) + _field(8, opset), dim


@pytest.fixture(scope="module")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    model, dim = tiny_onnx_model()
    (folder / "tiny.onnx").write_bytes(model)
    entry = {
        "file": "tiny.onnx",
        "sha256": hashlib.sha256(model).hexdigest(),
        "input": {"name": "image", "shape": ["N", 3, INPUT_SIZE, INPUT_SIZE]},
        "outputs": {"embedding": {"shape": ["N", dim]}, "logits": {"shape": ["N", 10]}},
        "dim": dim,
    }
    manifest = {"schema": 1, "default_variant": "int8", "variants": {"int8": entry, "fp32": dict(entry)}}
    (folder / "image_models.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder / "image_models.json"


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    """Twelve distinct small photos as JPEG and PNG bytes, one of them big enough to be draft-decoded."""
    out = [jpeg(photo(60 + 7 * i, 80 - 3 * i, seed=i)) for i in range(10)]
    out.append(encode(photo(50, 50, seed=20), "PNG"))
    out.append(jpeg(photo(300, 200, seed=21).resize((1200, 800))))
    return out


def reference(embedder: ImageEmbedder, data: bytes) -> np.ndarray:
    """The plain one-image path: load, letterbox, embed alone; then the colour features of the decoded photo."""
    image = load_image(data, target_size=INPUT_SIZE)
    embedding = embedder.embed_arrays(letterbox(image)[None])[0]
    return np.concatenate([embedding, colour_features(image)]) if embedder.colour else embedding


def test_embedder_identity(tiny_manifest: Path) -> None:
    model_bytes = (tiny_manifest.parent / "tiny.onnx").read_bytes()
    embedder = ImageEmbedder("int8", manifest=tiny_manifest)
    digest = hashlib.sha256(model_bytes).hexdigest()
    assert embedder.model_id == f"efficientnet-lite0-int8-letterbox224@{digest[:12]}+exact+colour{colour.VERSION}"
    assert (embedder.embedding_dim, embedder.colour_dim, embedder.dim) == (196, colour.DIM, 196 + colour.DIM)
    plain = ImageEmbedder("int8", manifest=tiny_manifest, colour=False)  # the features of models before colour
    assert plain.model_id == f"efficientnet-lite0-int8-letterbox224@{digest[:12]}+exact"
    assert (plain.colour_dim, plain.dim) == (0, 196)
    assert ImageEmbedder("fp32", manifest=tiny_manifest).model_id.startswith("efficientnet-lite0-fp32-")
    assert embedder.threads >= 1


def test_embedder_clear_errors(tiny_manifest: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown image model variant 'int4'"):
        ImageEmbedder("int4", manifest=tiny_manifest)
    with pytest.raises(ModelError, match="manifest not found"):
        ImageEmbedder(manifest=tmp_path / "none.json")
    manifest = json.loads(tiny_manifest.read_text(encoding="utf-8"))
    manifest["variants"]["int8"]["file"] = "gone.onnx"
    (tmp_path / "m.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ModelError, match="image model file missing"):
        ImageEmbedder(manifest=tmp_path / "m.json")
    (tmp_path / "gone.onnx").write_bytes(b"damaged")
    embedder = ImageEmbedder(manifest=tmp_path / "m.json")
    with pytest.raises(ModelError, match="is damaged"):
        embedder.embed_arrays(np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32))
    with pytest.raises(ValueError, match="batch_size"):
        ImageEmbedder(batch_size=0, manifest=tiny_manifest)


def test_a_fault_after_decoding_is_raised_not_stored_as_the_images(
    tiny_manifest: Path, images: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault in tagkit's own code after an image is decoded (here its colour features) stops the run. It used to
    come out as "could not decode the image", and the features cache kept every good photo as unreadable."""
    def fault(image: Image.Image) -> np.ndarray:
        raise IndexError("a bug in tagkit")

    monkeypatch.setattr(colour, "colour_features", fault)
    embedder = ImageEmbedder(batch_size=2, threads=1, manifest=tiny_manifest)
    with pytest.raises(IndexError, match="a bug in tagkit"):
        list(embedder.embed([("a", images[0]), ("b", images[1])]))


@pytest.mark.parametrize("batch_size", [1, 3, 5, 32])
def test_embed_keeps_order_and_reports_bad_images_in_place(
    tiny_manifest: Path, images: list[bytes], tmp_path: Path, batch_size: int
) -> None:
    embedder = ImageEmbedder(batch_size=batch_size, threads=2, manifest=tiny_manifest)
    good_path = write(tmp_path, "good.jpg", images[3])
    items: list[tuple[str, bytes | str | Path]] = [(f"img{i}", data) for i, data in enumerate(images)]
    items.insert(2, ("truncated", images[0][:300]))
    items.insert(4, ("text", b"hello, world\n"))
    items.insert(5, ("missing", tmp_path / "nope.jpg"))
    items.insert(9, ("path", good_path))
    items.insert(10, ("path-as-str", str(good_path)))
    items.append(("empty", b""))
    results = list(embedder.embed(iter(items)))
    assert [key for key, _ in results] == [key for key, _ in items]
    errors = {key: value.reason for key, value in results if isinstance(value, ImageError)}
    assert errors == {
        "truncated": "truncated JPEG (the file is cut short)",
        "text": "not an image file (it is a text file)",
        "missing": "file not found",
        "empty": "empty file (0 bytes)",
    }
    vectors = {key: value for key, value in results if not isinstance(value, ImageError)}
    for i, data in enumerate(images):
        vector = vectors[f"img{i}"]
        assert vector.shape == (196 + colour.DIM,)
        assert vector.dtype == np.float32
        np.testing.assert_allclose(vector, reference(embedder, data), atol=1e-5)
    np.testing.assert_allclose(vectors["path"], vectors["img3"], atol=1e-6)
    np.testing.assert_allclose(vectors["path-as-str"], vectors["img3"], atol=1e-6)
    assert len({v.tobytes() for v in vectors.values()}) == len(images)  # distinct images, distinct vectors


def test_embed_is_deterministic_across_batch_sizes(tiny_manifest: Path, images: list[bytes]) -> None:
    runs = []
    for batch_size in (4, 4, 7):
        embedder = ImageEmbedder(batch_size=batch_size, manifest=tiny_manifest)
        runs.append(np.stack([v for _, v in embedder.embed(enumerate(images))]))  # type: ignore[misc]
    assert np.array_equal(runs[0], runs[1])
    np.testing.assert_allclose(runs[0], runs[2], atol=1e-5)


def test_embed_only_errors_and_empty_input(tiny_manifest: Path) -> None:
    embedder = ImageEmbedder(batch_size=2, manifest=tiny_manifest)
    assert list(embedder.embed([])) == []
    results = list(embedder.embed([("a", b"x"), ("b", b""), ("c", b"y")]))
    assert [k for k, _ in results] == ["a", "b", "c"]
    assert all(isinstance(v, ImageError) for _, v in results)


def test_embed_reads_its_input_lazily(tiny_manifest: Path, images: list[bytes]) -> None:
    embedder = ImageEmbedder(batch_size=4, threads=2, manifest=tiny_manifest)
    pulled = 0

    def endless() -> object:
        nonlocal pulled
        for i in itertools.count():  # 100k items or more: never materialised
            pulled += 1
            yield i, images[i % len(images)]

    stream = embedder.embed(endless())  # type: ignore[arg-type]
    first = [next(stream) for _ in range(10)]
    assert [k for k, _ in first] == list(range(10))
    ahead = embedder.threads + 1  # batches being embedded or queued while one is yielded
    assert pulled <= (3 + ahead) * 4  # the three batches being yielded, plus those ahead
    stream.close()  # stops the embedding threads
    assert pulled <= (3 + ahead) * 4
    threads = [t.name for t in threading.enumerate() if t.name.startswith("tagkit-embed")]
    assert threads == []


def test_embed_arrays(tiny_manifest: Path, images: list[bytes]) -> None:
    embedder = ImageEmbedder(batch_size=3, manifest=tiny_manifest)
    batch = np.stack([letterbox(load_image(data)) for data in images[:7]])
    vectors = embedder.embed_arrays(batch)
    assert vectors.shape == (7, 196)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[4], embedder.embed_arrays(batch[4:5])[0], atol=1e-5)
    assert embedder.embed_arrays(batch[:0]).shape == (0, 196)
    with pytest.raises(ValueError, match=r"expected an array of shape \[N, 3, 224, 224\]"):
        embedder.embed_arrays(batch[0])


def test_importing_tagkit_image_does_not_import_onnxruntime() -> None:
    code = "import sys, tagkit.image; print('onnxruntime' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- the bundled model on real product photos ---------------------------------------------------


def bundled(variant: str) -> ImageEmbedder:
    if not MANIFEST.exists():
        pytest.skip(f"bundled image model not built yet: {MANIFEST} is missing")
    return ImageEmbedder(variant)


@pytest.fixture(scope="module")
def fashion_images(fashion_sample: Path) -> list[Path]:
    return sorted((fashion_sample / "images").glob("*.jpg"))[:120]


def test_bundled_model_on_real_fashion_images(fashion_images: list[Path]) -> None:
    int8, fp32 = bundled("int8"), bundled("fp32")
    assert int8.embedding_dim == fp32.embedding_dim == load_manifest()["variants"]["int8"]["dim"]
    assert int8.dim == int8.embedding_dim + colour.DIM
    assert int8.model_id.startswith("efficientnet-lite0-int8-letterbox224@")
    assert int8.model_id != fp32.model_id
    items = [(path.name, path) for path in fashion_images]
    items.insert(7, ("broken", b"not an image"))
    results = dict(int8.embed(items))
    assert isinstance(results.pop("broken"), ImageError)
    assert list(results) == [path.name for path in fashion_images]
    vectors = np.stack(list(results.values()))  # type: ignore[arg-type]
    assert vectors.shape == (len(fashion_images), int8.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, : int8.embedding_dim], axis=1), 1.0, atol=1e-4)
    for i in (0, 50):
        np.testing.assert_allclose(vectors[i], reference(int8, fashion_images[i].read_bytes()), atol=1e-4)
    again = np.stack([v for _, v in int8.embed(items[:20]) if not isinstance(v, ImageError)])
    assert np.array_equal(again, vectors[:19])
    full = np.stack([v for _, v in fp32.embed((p.name, p) for p in fashion_images[:40])])  # type: ignore[misc]
    cosine = np.sum((full * vectors[:40])[:, : int8.embedding_dim], axis=1)
    assert cosine.mean() > 0.95, cosine.mean()  # MODEL-NOTES: about 0.98


def test_embedding_sends_and_keeps_no_telemetry(tmp_path: Path) -> None:
    """tagkit is offline: onnxruntime 1.2x, left alone, keeps a device id and an event queue for Microsoft's
    telemetry under ~/.cache/Microsoft (and looks its server up) as soon as a model session is made."""
    demo = Path(__file__).resolve().parent.parent / "examples" / "demo" / "new"
    image = next(p for p in sorted(demo.rglob("*.jpg")))
    script = ("from tagkit.image import ImageEmbedder\n"
              f"[(key, vector)] = ImageEmbedder().embed([('x', {str(image)!r})])\n"
              "print(vector.shape)\n")
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"} | {"HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("(")
    assert not list(tmp_path.rglob("*")), sorted(map(str, tmp_path.rglob("*")))
