"""Image loading and the bundled ONNX image embedder.

Loading (`load_image`) turns any product photo a shop is likely to have (JPEG, PNG, WebP, GIF, BMP,
TIFF, AVIF, JPEG 2000; CMYK, palette, 16-bit, 1-bit, with alpha, EXIF-rotated, animated, Display P3) into an
sRGB `PIL.Image`, or raises `ImageError` with a short message a person can act on. It never decodes an
image larger than `MAX_PIXELS`, never accepts a truncated file, and touches no global Pillow setting.

Embedding (`ImageEmbedder`) runs the bundled EfficientNet-Lite0 ONNX model (see
`tagkit/data/image_models.json`) over many images: several batches are worked on at once, each by one
thread that decodes and letterboxes its images and then runs the model on them; results come back in input
order, and one bad image only costs its own result. onnxruntime is imported on first use, not with this
module. An image's feature vector is the model's unit-length embedding followed, by default, by the
`tagkit.colour` features of the decoded photo: the network's features know what a product is far better
than what colour it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import itertools
import json
import os
import re
import stat
import struct
import threading
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps

from tagkit import archive, colour
from tagkit.catalogue import IN_ICLOUD, in_icloud
from tagkit.cpus import int8_sums_saturate, usable_cpus

INPUT_SIZE = 224
PAD_COLOUR = (255, 255, 255)

MAX_PIXELS = 40_000_000
"""Images with more pixels than this are refused before decoding (decompression-bomb guard)."""

MAX_FILE_BYTES = 256 * 1024 * 1024
"""Files larger than this are not read at all."""

DRAFT_FACTOR = 2
"""A large JPEG asked for at `target_size` is decoded (DCT-scaled) to at least this many times the
letterboxed size along each side: measured to change letterboxed pixels by < 1 grey level on average."""

EXACT = "+exact"
"""Part of an INT8 model's features cache key: its sums are exact on every CPU (`cpus.int8_sums_saturate`).
Features cached by a tagkit before it were wrong on x86 CPUs without VNNI instructions, so they are not reused."""
DATA_DIR = Path(__file__).resolve().parent / "data"
MANIFEST = DATA_DIR / "image_models.json"

# Formats tried, in this order, on the file's first bytes. Others (EPS, PSD, TGA, ICO, ...) are refused:
# no product photo comes in them, and some of Pillow's readers for them run external programs or
# guess from weak signatures.
_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "JPEG2000")
_PLUGINS = (
    "JpegImagePlugin",
    "PngImagePlugin",
    "WebPImagePlugin",
    "GifImagePlugin",
    "BmpImagePlugin",
    "TiffImagePlugin",
    "AvifImagePlugin",
    "Jpeg2KImagePlugin",
)
_FORMAT_NAMES = {"JPEG2000": "JPEG 2000", "WEBP": "WebP", "MPO": "JPEG"}
_plugins_lock = threading.Lock()
_plugins_ready = False

K = TypeVar("K")


class ImageError(ValueError):
    """An image that cannot be used, with a short reason a person can act on.

    `reason` is the bare reason ("truncated JPEG (the file is cut short)"); it depends only on the
    file's content (or on the path for "file not found"), so it can be cached by content hash.
    `name`, when given, is put in front of the reason in `str(error)`. `missing`: there is no such file (or
    archive member); otherwise the file is there but cannot be used (empty, unreadable, not an image...).
    """

    def __init__(self, reason: str, name: str = "", missing: bool = False) -> None:
        self.reason = reason
        self.name = name
        self.missing = missing
        super().__init__(f"{name}: {reason}" if name else reason)


class ModelError(RuntimeError):
    """The bundled image model is missing, damaged or cannot be run."""


# --------------------------------------------------------------------------------------------
# Reading and decoding


def content_hash(data: bytes) -> str:
    """The features cache key of an image's bytes: sha256, hex."""
    return hashlib.sha256(data).hexdigest()


def read_image_bytes(path: str | Path, name: str = "") -> bytes:
    """Read an image file whole; ImageError if it is missing, unreadable, empty or far too big.

    `path` may name a member of a .tar or .zip archive (`images.tar!/images/1.jpg`, see tagkit.archive).
    """
    try:
        if archive.split(str(path)):
            data = archive.read_member(str(path), limit=MAX_FILE_BYTES)
        else:
            mode = os.stat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a device or a pipe would read without end
                raise ImageError("not a regular file (a device, pipe or socket)", name)
            with Path(path).open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > MAX_FILE_BYTES:
                    raise ImageError(
                        f"file too large for an image ({size / 2**20:.0f} MiB, limit {MAX_FILE_BYTES // 2**20} MiB)",
                        name,
                    )
                data = f.read()
    except ImageError:
        raise
    except archive.ArchiveUnavailable as e:  # the archive cannot be read where the member is: kept as if missing
        raise ImageError(str(e), name, missing=True) from None
    except archive.MemberTooLarge as e:
        raise ImageError(f"too large for an image ({e.size / 2**20:.0f} MiB unpacked, limit "
                         f"{MAX_FILE_BYTES // 2**20} MiB)", name) from None
    except FileNotFoundError:
        reason = f"the photo is {IN_ICLOUD}" if in_icloud(str(path)) else "file not found"
        raise ImageError(reason, name, missing=True) from None
    except IsADirectoryError:
        raise ImageError("is a folder, not a file", name) from None
    except PermissionError:
        raise ImageError("permission denied", name) from None
    except OSError as e:
        raise ImageError(f"could not read the file ({e.strerror or e})", name) from None
    except ValueError:  # open() refuses a path with a NUL byte
        raise ImageError("invalid file name (it holds a NUL byte)", name) from None
    if not data:
        raise ImageError("empty file (0 bytes)", name)
    return data


def load_image(
    source: str | Path | bytes,
    name: str = "",
    *,
    target_size: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Decode an image file (a path or its bytes) into an RGB image, or raise ImageError.

    Applies the EXIF orientation; converts CMYK (through its ICC profile when it has one), palette,
    grey, 1-bit and 16-bit images to RGB, and an image with a non-sRGB RGB or grey ICC profile (Display P3,
    Adobe RGB) to sRGB (`_to_srgb`); composites transparency onto white; takes the first frame
    of an animation. Images over `max_pixels` are refused before any pixel is decoded; truncated
    and corrupt files are errors, never half-grey images.

    `target_size`: when the caller will shrink the image to fit a `target_size` square anyway
    (`letterbox`), a large JPEG is decoded at a reduced scale (libjpeg's DCT scaling, several times
    cheaper) that still keeps `DRAFT_FACTOR` times the pixels needed.
    """
    data = read_image_bytes(source, name) if isinstance(source, (str, os.PathLike)) else bytes(source)
    if not data:
        raise ImageError("empty file (0 bytes)", name)
    im, kind = _open(data, name)
    try:
        rgb = _decode(im, data, kind, name, target_size, max_pixels)
    except BaseException:
        im.close()
        raise
    if rgb is not im:
        im.close()  # frees the decoded source pixels now, not at the next garbage collection
    return rgb


def _decode(im: Any, data: bytes, kind: str, name: str, target_size: int | None, max_pixels: int) -> Image.Image:
    width, height = im.size
    if width * height > max_pixels:
        raise ImageError(
            f"image too large: {width}x{height} = {width * height / 1e6:.1f} Mpx, limit {max_pixels / 1e6:g} Mpx",
            name,
        )
    if target_size and im.format in ("JPEG", "MPO"):
        scale = target_size * DRAFT_FACTOR / max(width, height)
        if scale < 0.5:  # DCT scaling can only halve, quarter or eighth
            im.draft(None, (max(1, round(width * scale)), max(1, round(height * scale))))
    try:
        im.load()
    except Image.DecompressionBombError:
        raise ImageError("image too large (a frame is over Pillow's decompression-bomb limit)", name) from None
    except MemoryError:
        raise ImageError("image too large to decode (out of memory)", name) from None
    except Exception as e:  # Pillow's decoders raise many types; none may stop a batch
        raise ImageError(_decode_failure(kind, e, data), name) from None
    with contextlib.suppress(Exception):  # a malformed EXIF block: keep the image as stored
        ImageOps.exif_transpose(im, in_place=True)
    try:
        return _to_srgb(im, _to_rgb(im))
    except ImageError as e:
        raise ImageError(e.reason, name) from None
    except Exception as e:
        reason = f"could not convert {kind} colour mode {im.mode} to RGB ({_clean(e)})"
        raise ImageError(reason, name) from None


def _ensure_plugins() -> None:
    global _plugins_ready
    if _plugins_ready:
        return
    with _plugins_lock:
        for module in _PLUGINS:
            with contextlib.suppress(ImportError):  # a Pillow built without it: that format is not tried
                importlib.import_module(f"PIL.{module}")
        _plugins_ready = True


def _open(data: bytes, name: str) -> tuple[Any, str]:
    """Identify and open (parse the header of) an image; no pixels are decoded here.

    Works like `Image.open` restricted to `_FORMATS`, but without Pillow's global decompression-bomb
    check (we apply our own limit with the image's size in the message) and telling "a damaged JPEG"
    apart from "not an image".
    """
    _ensure_plugins()
    prefix = data[:16]
    failure = None
    for fmt in _FORMATS:
        if fmt not in Image.OPEN:
            continue
        factory, accept = Image.OPEN[fmt]
        accepted = accept(prefix) if accept else False
        if not accepted or isinstance(accepted, str):  # a str is Pillow's "looks like it, but unsupported"
            continue
        kind = _FORMAT_NAMES.get(fmt, fmt)
        try:
            return factory(io.BytesIO(data), ""), kind
        except Image.DecompressionBombError:
            failure = failure or "image too large (over Pillow's decompression-bomb limit)"
        except Exception as e:
            failure = failure or _decode_failure(kind, e, data, header=True)
    raise ImageError(failure or _not_an_image(data), name)


_TRUNCATED = re.compile(
    r"truncat|premature end|end of file|unexpected end|not enough data|incomplete|buffer is not large",
    re.IGNORECASE,
)
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82", "GIF": b"\x3b"}


def _is_cut(kind: str, data: bytes) -> bool | None:
    """Whether the file visibly ends too early (None: this format does not tell)."""
    end = _END_MARKERS.get(kind)
    if end is not None:
        return not data.rstrip(b"\0").endswith(end)
    if kind == "WebP" and len(data) >= 8:  # RIFF: the header says how long the file is
        return len(data) < struct.unpack("<I", data[4:8])[0] + 8
    return None


def _decode_failure(kind: str, e: BaseException, data: bytes, *, header: bool = False) -> str:
    """The reason for a failure to parse (`header`) or decode an image that a reader accepted."""
    cut = _is_cut(kind, data)
    ran_out = isinstance(e, EOFError) or bool(_TRUNCATED.search(str(e)))
    if cut or (cut is None and ran_out):
        return f"truncated {kind} (the file is cut short)"
    if header:
        return f"corrupt {kind} file (damaged header)"
    if ran_out:  # the file ends where it should: damaged data sent the reader past its end
        return f"corrupt {kind} file (damaged data)"
    if isinstance(e, (struct.error, zlib.error, IndexError)) or not str(e):
        return f"corrupt {kind} file"
    return f"corrupt {kind} file ({_clean(e)})"


def _clean(e: BaseException) -> str:
    """An exception's message without object addresses or paths, so it is the same in every run."""
    text = re.sub(r"\s*<[^>]* at 0x[0-9a-f]+>", "", str(e)).strip().rstrip(".")
    return text[:120] or type(e).__name__


_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
_OTHER_FORMATS = (
    (b"%PDF", "not an image file (it is a PDF document)"),
    (b"8BPS", "Photoshop (PSD) files are not supported: export a JPEG or PNG"),
    (b"%!PS", "PostScript/EPS files are not supported: export a JPEG or PNG"),
    (b"\xff\x0a", "JPEG XL images are not supported: convert to JPEG or PNG"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL images are not supported: convert to JPEG or PNG"),
    (b"PK\x03\x04", "not an image file (it is a ZIP archive)"),
    (b"\x1f\x8b", "not an image file (it is gzip-compressed)"),
)


def _not_an_image(data: bytes) -> str:
    """Say what a file that no image reader accepted seems to be."""
    if data.startswith(b"\xff\xd8"):
        return "corrupt JPEG file (damaged header)"
    if data.startswith(b"\x89PNG"):
        return "corrupt PNG file (damaged header)"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "HEIC/HEIF images are not supported: convert to JPEG or PNG"
    for magic, message in _OTHER_FORMATS:
        if data.startswith(magic):
            return message
    head = data[:4096]
    for bom in (b"\xef\xbb\xbf",):
        head = head.removeprefix(bom)
    lower = head.lstrip().lower()
    if lower.startswith((b"<!doctype html", b"<html")) or b"<html" in lower[:1024]:
        return "not an image file (it is an HTML page)"
    if b"<svg" in lower[:1024]:
        return "SVG images are not supported: convert to PNG"
    if b"\0" not in head:
        try:
            head.decode("utf-8")
            return "not an image file (it is a text file)"
        except UnicodeDecodeError as e:
            if e.start >= len(head) - 3:  # a character cut at the 4096-byte mark
                return "not an image file (it is a text file)"
    return "not an image file (could not identify format)"


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB: alpha onto white, CMYK through its ICC profile, 16 bits scaled down."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("L", "1", "YCbCr"):
        return im.convert("RGB")
    if mode == "P":
        if "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA"):
            return _on_white(im.convert("RGBA"))
        return im.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _on_white(im if mode == "RGBA" else im.convert("RGBA"))
    if mode == "CMYK":
        return _cmyk_to_rgb(im)
    if mode.startswith(("I;16", "I", "F")):
        return _wide_to_rgb(im)
    try:
        return im.convert("RGB")
    except ValueError:
        raise ImageError(f"unsupported colour mode {mode}") from None


def _on_white(rgba: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", rgba.size, PAD_COLOUR)
    canvas.paste(rgba, mask=rgba.getchannel("A"))
    return canvas


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    icc = im.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            converted = ImageCms.profileToProfile(
                im,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                renderingIntent=ImageCms.Intent.PERCEPTUAL,
                outputMode="RGB",
            )
            if converted is not None:
                return converted
        except Exception:  # a broken or non-CMYK profile: fall back to the plain formula
            pass
    return im.convert("RGB")


_SRGB_TRANSFORMS: dict[bytes, Any] = {}
"""Per ICC profile (its sha1): the transform of its pixels to sRGB, or None when there is nothing to do (an sRGB
profile, a profile of another colour space, or one ImageCms cannot read). A shop's photos share a few profiles."""
_SRGB_TRANSFORMS_MAX = 64
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def _to_srgb(im: Image.Image, rgb: Image.Image) -> Image.Image:
    """`rgb` (the RGB image `_to_rgb` made of `im`) in sRGB: converted from the colour space of the ICC profile
    `im` carries when that is another RGB (Display P3 from iPhones and macOS Photos, Adobe RGB from cameras) or a
    grey profile (Dot Gain 20 %, Gray Gamma 2.2). Photos without a profile or with an sRGB one are returned as they
    are, at the cost of a dict lookup; so are the pixels when the profile cannot be read. Runs after any JPEG draft
    scaling, on the decoded (smaller) image. CMYK was converted through its profile already (`_cmyk_to_rgb`)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode == "CMYK":
        return rgb
    transform = _srgb_transform(bytes(icc))
    if transform is None:
        return rgb
    grey, transform = transform
    if grey != (im.mode in _GREY_MODES):  # a grey profile on a colour image, or the other way round: not applied
        return rgb
    from PIL import ImageCms

    try:
        if grey:  # `rgb` is grey (transparency on white, which stays white): its one channel through the profile
            return ImageCms.applyTransform(rgb.getchannel(0), transform) or rgb
        ImageCms.applyTransform(rgb, transform, inPlace=True)  # `rgb` may be `im` itself: nobody else holds it
        rgb.info.pop("icc_profile", None)
        return rgb
    except Exception:  # as for CMYK profiles: the pixels as they are rather than no image
        return rgb


def _srgb_transform(icc: bytes) -> tuple[bool, Any] | None:
    """(grey, the ImageCms transform of `icc`'s pixels to sRGB), or None: see `_SRGB_TRANSFORMS`."""
    key = hashlib.sha1(icc).digest()
    try:
        return _SRGB_TRANSFORMS[key]
    except KeyError:
        pass
    transform = _build_srgb_transform(icc)
    if len(_SRGB_TRANSFORMS) >= _SRGB_TRANSFORMS_MAX:
        _SRGB_TRANSFORMS.clear()
    _SRGB_TRANSFORMS[key] = transform
    return transform


def _build_srgb_transform(icc: bytes) -> tuple[bool, Any] | None:
    try:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
        if space not in ("RGB", "GRAY"):
            return None
        grey = space == "GRAY"
        # Relative colorimetric: colours inside sRGB's gamut keep their exact values, those outside (P3's deeper reds
        # and greens) are clipped to its edge, as a colour-managed viewer shows the photo on an sRGB screen; the colour
        # names tagkit learns are those people see. Perceptual would shift in-gamut colours too with a LUT profile (a
        # matrix profile, as P3 and Adobe RGB are, has no perceptual table: lcms uses the same matrices for both).
        transform = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), "L" if grey else "RGB", "RGB",
                                            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
        # An sRGB profile (whatever its name: "sRGB IEC61966-2.1", "sRGB built-in", a camera's copy) changes no
        # colour by more than a level: skipped, so that its photos decode exactly as photos without a profile.
        steps = np.arange(0, 256, 15, dtype=np.uint8)  # 0, 15, ..., 255
        if grey:
            probe = steps[None, :]
            expected = np.repeat(probe[..., None], 3, axis=2)
        else:
            probe = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(1, -1, 3)
            expected = probe
        out = np.asarray(ImageCms.applyTransform(Image.fromarray(probe), transform))
        if np.abs(out.astype(np.int16) - expected).max() <= 1:
            return None
        return grey, transform
    except Exception:  # a damaged profile, or one lcms cannot use: the pixels as they are, as without a profile
        return None


def _wide_to_rgb(im: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey (I;16, I, F) to 8-bit RGB; I and F over 255 are taken as 16-bit."""
    values = np.asarray(im)
    if im.mode.startswith("I;16") or float(np.nanmax(values, initial=0)) > 255:
        values = np.clip(np.nan_to_num(values.astype(np.float64)), 0, 65535) / 257.0
    grey = np.clip(np.nan_to_num(values.astype(np.float64)), 0, 255).round().astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def letterbox_into(image: Image.Image, out: np.ndarray) -> None:
    """Letterbox an RGB image into `out` (float32 [3, size, size]): scaled so its longer side is `size`
    (bicubic), centred on white. Writes the tensor directly (no padded image in between)."""
    size = out.shape[-1]
    width, height = image.size
    scale = size / max(width, height)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
    left, top = (size - new_width) // 2, (size - new_height) // 2
    pad = np.asarray(PAD_COLOUR, dtype=np.float32)[:, None, None]
    out[:, :top], out[:, top + new_height :] = pad, pad
    out[:, :, :left], out[:, :, left + new_width :] = pad, pad
    out[:, top : top + new_height, left : left + new_width] = np.asarray(resized).transpose(2, 0, 1)


def letterbox(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """Scale an RGB image so its longer side is `size` (bicubic), centre it on a white square.

    Returns float32 [3, size, size], RGB, 0..255: the bundled model's input contract.
    Letterboxing keeps the whole product (centre-cropping cuts the top and bottom of tall photos).
    """
    out = np.empty((3, size, size), dtype=np.float32)
    letterbox_into(image, out)
    return out


# --------------------------------------------------------------------------------------------
# The embedder


def load_manifest(path: str | Path = MANIFEST) -> dict[str, Any]:
    """The image-model manifest (which ONNX file each variant is, its checksum and tensors)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"image model manifest not found: {path} (is tagkit fully installed?)") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"image model manifest {path} cannot be read: {e}") from None
    if not isinstance(manifest, dict):
        raise ModelError(f"image model manifest {path} is not a JSON object")
    return manifest


def bundled_feature_keys(manifest: str | Path = MANIFEST) -> set[str]:
    """The features keys (`ImageEmbedder.model_id`) of the image models this tagkit has: every variant, with and
    without colour features. A cached feature under another key was made by another tagkit's model."""
    keys = set()
    for variant in _variants(load_manifest(manifest)):
        with contextlib.suppress(ModelError):  # a variant whose file is not installed
            keys |= {ImageEmbedder(variant, manifest=manifest, colour=c).model_id for c in (True, False)}
    return keys


def _variants(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    variants = manifest.get("variants", manifest)
    if isinstance(variants, list):
        variants = {str(v.get("variant") or v.get("name")): v for v in variants if isinstance(v, dict)}
    return {k: v for k, v in variants.items() if isinstance(v, dict) and "file" in v}


def _tensor_name(spec: Any, default: str) -> str:
    if isinstance(spec, dict):
        return str(spec.get("name", default))
    if isinstance(spec, str):
        return spec
    return default


def session_options(threads: int = 1) -> Any:
    """onnxruntime's options for the image model: `threads` threads inside one run, all graph optimisations, and
    exact INT8 sums on a CPU whose fast INT8 kernels saturate (`cpus.int8_sums_saturate`: without that, the INT8
    features on such a CPU are far from the fp32 ones, and from those of any other CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if int8_sums_saturate():  # uint8 x uint8 kernels: exact, as on a CPU with VNNI, and slower
        options.add_session_config_entry("session.x64quantprecision", "1")
    return options


class ImageEmbedder:
    """The bundled EfficientNet-Lite0 image model: images in, unit-length feature vectors out (see README).

    `variant` is "int8" (default: about twice as fast, same accuracy) or "fp32". `threads` batches are
    worked on at once, each by one thread that decodes its images and then runs the model single-threaded
    (default: one more than the cores this process may use, so that no core waits while a batch is decoded).
    On 2 cores this embeds fashion thumbnails about 10 % faster than one model run at a time on 2 threads
    fed by 2 decoding threads.
    `manifest` points at another image_models.json (tests, experiments).
    `colour`: append the `tagkit.colour` features (`colour_dim` values) to each embedding (default).
    """

    def __init__(
        self,
        variant: str = "int8",
        threads: int | None = None,
        batch_size: int = 32,
        *,
        manifest: str | Path | None = None,
        colour: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        manifest_path = Path(manifest) if manifest is not None else MANIFEST
        info = load_manifest(manifest_path)
        variants = _variants(info)
        if variant not in variants:
            known = ", ".join(sorted(variants)) or "none"
            raise ModelError(f"unknown image model variant {variant!r} (known: {known})")
        spec = variants[variant]
        self.variant = variant
        self.path = (manifest_path.parent / spec["file"]).resolve()
        if not self.path.is_file():
            raise ModelError(
                f"image model file missing: {self.path} (variant {variant!r}; reinstall tagkit or rebuild "
                "the model with the script in tools/)"
            )
        self.sha256 = str(spec.get("sha256", "")).lower()
        self.quantized = str(spec.get("precision") or variant) == "int8"
        self.threads = threads if threads and threads > 0 else usable_cpus() + 1
        self.batch_size = batch_size
        self.input_size = INPUT_SIZE
        self._input_name = _tensor_name(spec.get("input", info.get("input")), "image")
        outputs = spec.get("outputs", info.get("outputs")) or {}
        # The output cached as an image's feature vector: the manifest's `feature_output`, else `embedding`.
        feature = str(spec.get("feature_output") or info.get("feature_output") or "embedding")
        self._output_name = feature
        self._dim: int | None = spec["dim"] if isinstance(spec.get("dim"), int) else None
        embedding_spec = outputs.get(feature) if isinstance(outputs, dict) else None
        if isinstance(embedding_spec, dict):
            self._output_name = str(embedding_spec.get("name", feature))
            shape = embedding_spec.get("shape")
            if isinstance(shape, list) and shape and isinstance(shape[-1], int):
                self._dim = shape[-1]
        model = str(spec.get("model") or info.get("model") or "efficientnet-lite0")
        self._model_name = model.lower().replace("_", "-")
        self.colour = colour
        self._session: Any = None
        self._session_lock = threading.Lock()

    # -- identity ------------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        """Names the model file and preprocessing: the features cache key next to the content hash."""
        digest = self.sha256[:12] if self.sha256 else self._file_sha256()[:12]
        suffix = (EXACT if self.quantized else "") + (f"+colour{colour.VERSION}" if self.colour else "")
        return f"{self._model_name}-{self.variant}-letterbox{self.input_size}@{digest}{suffix}"

    @property
    def embedding_dim(self) -> int:
        """Length of the network's embedding (the first part of a feature vector)."""
        if self._dim is None:
            shape = self._get_session().get_outputs()[self._output_index()].shape
            self._dim = int(shape[-1])
        return self._dim

    @property
    def colour_dim(self) -> int:
        """Length of the colour features at the end of a feature vector (0 without them)."""
        return colour.DIM if self.colour else 0

    @property
    def dim(self) -> int:
        """Length of a feature vector: the embedding, then the colour features."""
        return self.embedding_dim + self.colour_dim

    def _file_sha256(self) -> str:
        digest = hashlib.sha256()
        with self.path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    # -- onnxruntime ---------------------------------------------------------------------------

    def _get_session(self) -> Any:
        if self._session is None:
            with self._session_lock:
                if self._session is None:
                    self._session = self._make_session()
        return self._session

    def _make_session(self) -> Any:
        actual = self._file_sha256()
        if self.sha256 and actual != self.sha256:
            raise ModelError(
                f"image model file {self.path} is damaged: sha256 {actual[:12]}..., expected {self.sha256[:12]}..."
            )
        self.sha256 = actual
        import onnxruntime as ort

        try:
            # each batch runs in its own thread (see `embed`)
            session = ort.InferenceSession(str(self.path), session_options(threads=1),
                                           providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"image model {self.path} cannot be loaded by onnxruntime: {e}") from None
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if self._input_name not in inputs or self._output_name not in outputs:
            raise ModelError(
                f"image model {self.path} has inputs {inputs} and outputs {outputs}; "
                f"expected input {self._input_name!r} and output {self._output_name!r}"
            )
        return session

    def _output_index(self) -> int:
        names = [o.name for o in self._get_session().get_outputs()]
        return names.index(self._output_name)

    # -- embedding -----------------------------------------------------------------------------

    def _run(self, session: Any, tensor: np.ndarray) -> np.ndarray:
        """The feature output for a batch, each row scaled to unit length (whatever its parts' norms)."""
        vectors = session.run([self._output_name], {self._input_name: tensor})[0]
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """Embed letterboxed images: float32 [N, 3, 224, 224] RGB 0..255 → float32 [N, embedding_dim] (the
        network's part of the features only: colour features need the photo before letterboxing)."""
        batch = np.asarray(batch)
        expected = (3, self.input_size, self.input_size)
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(
                f"expected an array of shape [N, 3, {self.input_size}, {self.input_size}], got {list(batch.shape)}"
            )
        session = self._get_session()
        if len(batch) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        starts = range(0, len(batch), self.batch_size)
        with ThreadPoolExecutor(min(self.threads, len(starts)), thread_name_prefix="tagkit-embed") as pool:
            parts = list(pool.map(lambda start: self._run(session, np.ascontiguousarray(
                batch[start : start + self.batch_size], dtype=np.float32)), starts))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def embed(self, items: Iterable[tuple[K, bytes | str | Path]]) -> Iterator[tuple[K, np.ndarray | ImageError]]:
        """Embed (key, image bytes or path) pairs; yield (key, feature vector or ImageError) in input order.

        The input is cut into batches of `batch_size`; `threads` batches are worked on at once (see
        `_embed_batch`), one more is queued. The input is read lazily, a few batches ahead, so it can be a
        generator over any number of images. The model is loaded when the first batch needs it (never, for none).
        """
        source = iter(items)
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tagkit-embed")
        buffers = threading.local()  # each thread's input tensor, reused batch after batch
        queued: deque[tuple[list[K], Future[list[np.ndarray | ImageError]]]] = deque()

        def queue_batch() -> None:
            chunk = list(itertools.islice(source, self.batch_size))
            if chunk:
                images = [item for _, item in chunk]
                queued.append(([key for key, _ in chunk], pool.submit(self._embed_batch, images, buffers)))

        try:
            for _ in range(self.threads + 1):
                queue_batch()
            while queued:
                keys, future = queued.popleft()
                results = future.result()
                queue_batch()  # the other threads go on while the caller handles these results
                yield from zip(keys, results, strict=True)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _embed_batch(self, images: list[bytes | str | Path], buffers: threading.local
                     ) -> list[np.ndarray | ImageError]:
        """Decode and letterbox `images` into this thread's input tensor (and compute their colour features),
        then run the model on the good ones: a feature vector or the ImageError for each image, in order."""
        size, colour_dim = self.input_size, self.colour_dim
        if not hasattr(buffers, "tensor"):
            buffers.tensor = np.empty((self.batch_size, 3, size, size), dtype=np.float32)
            buffers.colours = np.empty((self.batch_size, colour_dim), dtype=np.float32)
        tensor, colours = buffers.tensor, buffers.colours
        errors = [_prepare_into(image, tensor[row], colours[row] if colour_dim else None)
                  for row, image in enumerate(images)]
        good = [row for row, error in enumerate(errors) if error is None]
        if not good:
            return errors  # type: ignore[return-value]
        if len(good) < len(images):
            tensor[: len(good)] = tensor[good]  # only real images go through the model
        vectors = self._run(self._get_session(), tensor[: len(good)])
        if colour_dim:
            vectors = np.hstack([vectors, colours[good]])
        rows = iter(vectors)
        return [next(rows) if error is None else error for error in errors]


def _prepare_into(item: bytes | str | Path, out: np.ndarray, colours: np.ndarray | None = None) -> ImageError | None:
    """Decode and letterbox one image into `out` (float32 [3, size, size]) and, when `colours` is given, put its
    colour features there; or say why not. Only decoding can fail for the file's sake (`load_image` turns every
    decoder's error into an ImageError): a failure after it is tagkit's, and is raised, not stored as the image's."""
    try:
        image = load_image(item, target_size=out.shape[-1])
    except ImageError as e:
        return e
    except MemoryError:
        return ImageError("image too large to decode (out of memory)")
    if colours is not None:
        colours[...] = colour.colour_features(image)
    letterbox_into(image, out)
    return None
