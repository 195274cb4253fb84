"""Image embedding speed: end to end through `import_products` against the bare model.

    python bench/embed.py [--images 5000] [--runs 3] [--variants int8 fp32]

On the fashion thumbnails of ../shared/data/fashion (images.tar is extracted once to bench/.cache/):
- bare model:  `ImageEmbedder.embed_arrays` on pre-decoded, letterboxed tensors (the limit here);
- end to end:  `import_products` on a products file with N images into a new database: read the CSV,
               hash and decode the images, embed, write products and the features cache.
Each measurement runs in its own process (so its peak memory is its own); medians of --runs runs.
With --accuracy N it also measures what each variant's features are worth: logistic regression on the
first N fashion products (by id), category (articleType path) top-1 on a fixed 80/20 split (every 5th
product by id is held out); features come from a cached bench database (bench/.cache/embed.db).
Prints a table and writes bench/results/embed.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SHARED = BENCH.parent.parent / "shared" / "data" / "fashion"
CACHE = BENCH / ".cache" / "fashion"
RESULTS = BENCH / "results"


def fashion_folder() -> Path:
    """The fashion catalogue with its images extracted (once) under bench/.cache/fashion."""
    if not (SHARED / "styles.csv").exists():
        sys.exit(f"skipped: the fashion data set is not here ({SHARED} is missing)")
    marker = CACHE / ".extracted"
    if not marker.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"extracting {SHARED / 'images.tar'} to {CACHE} ...", file=sys.stderr)
        with tarfile.open(SHARED / "images.tar") as tar:
            tar.extractall(CACHE, filter="data")
        marker.touch()
    return CACHE


def subset_csv(folder: Path, count: int, out: Path) -> Path:
    """A products file with the first `count` fashion products (image paths point into `folder`)."""
    with (SHARED / "styles.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = [row for _, row in zip(range(count), reader, strict=False)]
    with out.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "title", "image"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"id": row["id"], "title": row["productDisplayName"],
                             "image": str(folder / row["image"])})
    return out


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_bare(variant: str, count: int) -> dict[str, float]:
    """Images/s of the model alone on pre-decoded tensors, batch 32 (512 distinct images, cycled)."""
    import numpy as np

    from tagkit.image import ImageEmbedder, letterbox, load_image

    folder = fashion_folder()
    paths = sorted((folder / "images").glob("*.jpg"))[:512]
    tensors = np.stack([letterbox(load_image(p)) for p in paths])
    embedder = ImageEmbedder(variant=variant)
    embedder.embed_arrays(tensors[:32])  # warm-up: session creation
    done = 0
    started = time.perf_counter()
    while done < count:
        start = done % len(tensors)
        batch = tensors[start : start + min(32, count - done)]
        embedder.embed_arrays(batch)
        done += len(batch)
    seconds = time.perf_counter() - started
    return {"images": done, "seconds": seconds, "images_per_s": done / seconds, "peak_mb": peak_mb()}


def worker_end_to_end(variant: str, count: int) -> dict[str, float]:
    """Images/s of `import_products` (CSV → hash → decode → embed → database) into a new database."""
    from tagkit.image import ImageEmbedder
    from tagkit.ingest import import_products
    from tagkit.store import Store

    folder = fashion_folder()
    with tempfile.TemporaryDirectory() as tmp:
        products = subset_csv(folder, count, Path(tmp) / "products.csv")
        embedder = ImageEmbedder(variant=variant)
        embedder.embed_arrays(__import__("numpy").zeros((1, 3, 224, 224), "float32"))  # session creation
        with Store(Path(tmp) / "bench.db") as store:
            started = time.perf_counter()
            report = import_products(store, products, embedder=embedder)
            seconds = time.perf_counter() - started
    assert report.images_embedded + report.images_cached + report.images_unreadable == report.images, report.counts()
    return {"images": report.images, "seconds": seconds, "images_per_s": report.images / seconds,
            "peak_mb": peak_mb()}


WORKERS = {"bare": worker_bare, "end_to_end": worker_end_to_end}


def accuracy(variant: str, count: int) -> dict[str, float]:
    """Category top-1/top-3 of a logistic regression on `variant` features (first `count` products by id)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from tagkit.dataset import load_dataset
    from tagkit.image import ImageEmbedder
    from tagkit.ingest import import_products
    from tagkit.store import Store

    folder = fashion_folder()
    with (SHARED / "styles.csv").open(encoding="utf-8", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["id"]))[:count]
    products = BENCH / ".cache" / f"accuracy-{count}.csv"
    with products.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "image", "category"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"id": row["id"], "image": str(folder / row["image"]), "category":
                             f"{row['masterCategory']} > {row['subCategory']} > {row['articleType']}"})
    embedder = ImageEmbedder(variant=variant)
    with Store(BENCH / ".cache" / "embed.db") as store:
        import_products(store, products, embedder=embedder)
        data = load_dataset(store, embedder, "id in (select value from json_each(?))",
                            [json.dumps([r["id"] for r in rows])])
    order = sorted(range(len(data)), key=lambda i: int(data.ids[i]))
    test = np.zeros(len(data), bool)
    test[[i for rank, i in enumerate(order) if rank % 5 == 0]] = True
    labels = np.array([" > ".join(c) for c in data.categories])
    e = data.embeddings[:, : data.embeddings.shape[1] - data.colour_dim]  # the network part, as measured before
    model = LogisticRegression(C=10.0, max_iter=1000).fit(e[~test], labels[~test])
    proba = model.predict_proba(e[test])
    top = np.argsort(-proba, axis=1)[:, :3]
    truth = labels[test]
    return {"top1": float(np.mean(model.classes_[top[:, 0]] == truth)),
            "top3": float(np.mean([t in model.classes_[row] for t, row in zip(truth, top, strict=True)])),
            "train": int((~test).sum()), "test": int(test.sum())}


def measure(kind: str, variant: str, count: int) -> dict[str, float]:
    """Run one measurement in a fresh process."""
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--variants", variant, "--images", str(count)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["int8", "fp32"])
    parser.add_argument("--accuracy", type=int, default=0, metavar="N",
                        help="also measure category accuracy of each variant's features on N products")
    parser.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.variants[0], args.images)))
        return
    fashion_folder()
    rows = []
    for variant in args.variants:
        runs = {kind: [measure(kind, variant, args.images) for _ in range(args.runs)] for kind in WORKERS}
        median = {kind: statistics.median(r["images_per_s"] for r in rs) for kind, rs in runs.items()}
        rows.append({
            "variant": variant,
            "bare_images_per_s": round(median["bare"], 1),
            "end_to_end_images_per_s": round(median["end_to_end"], 1),
            "end_to_end_vs_bare": round(median["end_to_end"] / median["bare"], 3),
            "end_to_end_peak_mb": round(statistics.median(r["peak_mb"] for r in runs["end_to_end"]), 0),
            "bare_runs": [round(r["images_per_s"], 1) for r in runs["bare"]],
            "end_to_end_runs": [round(r["images_per_s"], 1) for r in runs["end_to_end"]],
            **({f"lr_{k}": v for k, v in accuracy(variant, args.accuracy).items()} if args.accuracy else {}),
        })
    header = f"{'variant':8} {'bare img/s':>11} {'end-to-end img/s':>17} {'ratio':>6} {'peak MB':>8}"
    if args.accuracy:
        header += f" {'LR top-1':>9} {'LR top-3':>9}"
    print(f"fashion thumbnails, {args.images} images, {os.cpu_count()} cores, median of {args.runs} runs")
    print(header)
    for r in rows:
        print(f"{r['variant']:8} {r['bare_images_per_s']:>11.1f} {r['end_to_end_images_per_s']:>17.1f} "
              f"{r['end_to_end_vs_bare']:>6.2f} {r['end_to_end_peak_mb']:>8.0f}"
              + (f" {r['lr_top1']:>9.3f} {r['lr_top3']:>9.3f}" if args.accuracy else ""))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "embed.json").write_text(json.dumps({"images": args.images, "cores": os.cpu_count(),
                                                    "runs": args.runs, "accuracy_products": args.accuracy,
                                                    "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
