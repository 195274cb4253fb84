"""Peak memory of `tagkit predict` over 10k, 50k and 100k products, and of the nightly re-run.

    python bench/memory.py [--sizes 10000 50000 100000] [--distinct 5000] [--model-db DB]

For each size N, two `.venv/bin/tagkit` child processes; peak memory is the child's peak RSS from `os.wait4`
(MB = 2^20 bytes):

- first run   `tagkit --db FRESH -q predict products-N.csv --json -o out.csv` on a new database that holds only
              the model's row. products-N.csv lists N products (ids m000000...) with titles (the fashion titles,
              cycled, numbered by round) and images: the same `--distinct` images over and over (the first
              D fashion thumbnails, extracted once to bench/.cache/fashion/ as bench/embed.py does). So each
              run embeds exactly D images (the features cache is keyed by content: a repeated image is not
              embedded again) and predicts and writes all N products, and exports them to CSV.
- re-run      the same command on the same database, after 10 rows were pointed at 10 other images (as when
              ten photos of a shop folder change overnight): it embeds 10 images, predicts 10 products and
              reuses the N - 10 stored predictions (the export is complete all the same).

The model is the newest one of --model-db (default: bench/.cache/speed.db, the full fashion model that
bench/speed.py trains, when it is there); without one, a model is trained on the demo catalogue into
bench/.cache/memory/. Without ../shared/data/fashion the demo's 560 photos and titles are used instead.
Prints a table and writes bench/results/memory.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
TAGKIT = REPO / ".venv" / "bin" / "tagkit"
SHARED = REPO.parent / "shared" / "data" / "fashion"
FASHION_IMAGES = BENCH / ".cache" / "fashion"
WORK = BENCH / ".cache" / "memory"
RESULTS = BENCH / "results"
DEMO = REPO / "examples" / "demo"
CHANGED = 10


def images_and_titles(distinct: int) -> tuple[list[tuple[str, str]], list[str], str]:
    """(image path, title) pairs: `distinct` of them plus CHANGED spare images; and what they are."""
    if (SHARED / "styles.csv").exists():
        if not (FASHION_IMAGES / ".extracted").exists():
            print(f"extracting {SHARED / 'images.tar'} to {FASHION_IMAGES} ...", file=sys.stderr)
            FASHION_IMAGES.mkdir(parents=True, exist_ok=True)
            with tarfile.open(SHARED / "images.tar") as tar:
                tar.extractall(FASHION_IMAGES, filter="data")
            (FASHION_IMAGES / ".extracted").touch()
        with (SHARED / "styles.csv").open(encoding="utf-8", newline="") as f:
            rows = [(str(FASHION_IMAGES / row["image"]), row["productDisplayName"]) for row in csv.DictReader(f)]
        rows = [row for row in rows if Path(row[0]).exists()]
        source = "fashion thumbnails"
    else:
        rows = []
        for name in ("train.csv", "test.csv"):
            with (DEMO / name).open(encoding="utf-8") as f:
                rows += [(str(DEMO / row["image"]), row["title"]) for row in csv.DictReader(f)]
        source = "demo photos"
    if len(rows) < distinct + CHANGED:
        sys.exit(f"only {len(rows)} images: ask for at most --distinct {len(rows) - CHANGED}")
    return rows[:distinct], [path for path, _ in rows[distinct : distinct + CHANGED]], source


def write_products(path: Path, count: int, pairs: list[tuple[str, str]], swap: list[str] | None = None) -> None:
    """`count` products over the image/title pairs; with `swap`, rows 0, 1000, 2000, ... get those images."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "image"])
        for number in range(count):
            image, title = pairs[number % len(pairs)]
            if swap and number % 1000 == 0 and number // 1000 < len(swap):
                image = swap[number // 1000]
            writer.writerow([f"m{number:06d}", f"{title} #{number // len(pairs)}", image])


def model_row(model_db: Path | None) -> tuple[dict[str, Any], str]:
    """The newest model of `model_db` (or of a demo-trained database made here) as a `models` row, its folder
    copied to bench/.cache/memory/model/ (so that a later `bench/speed.py`, which deletes old versions of its
    database, cannot pull it away during the measurement)."""
    candidates = [model_db] if model_db else [BENCH / ".cache" / "speed.db"]
    for db in candidates:
        if db and db.exists():
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            conn.row_factory = sqlite3.Row
            row = conn.execute("select * from models order by id desc limit 1").fetchone()
            conn.close()
            folder = None if row is None else next((p for p in (Path(row["path"]), REPO / row["path"],
                                                                db.parent / row["path"]) if p.is_dir()), None)
            if folder is not None:
                copy = WORK / "model" / row["id"]
                if not copy.is_dir():
                    shutil.rmtree(WORK / "model", ignore_errors=True)
                    shutil.copytree(folder, copy)
                return {**dict(row), "path": str(copy)}, f"model {row['id']} of {db.name}"
    if model_db:
        sys.exit(f"no usable model in {model_db}")
    demo_db = WORK / "demo-model.db"
    if not demo_db.exists():
        print("training a model on the demo catalogue ...", file=sys.stderr)
        subprocess.run([str(TAGKIT), "--db", str(demo_db), "-q", "train", str(DEMO / "train.csv")], check=False)
    return model_row(demo_db)[0], "demo model (examples/demo/train.csv)"


def fresh_db(path: Path, model: dict[str, Any]) -> Path:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    from tagkit.store import Store

    with Store(path) as store, store.transaction():
        columns = store.db.table("models").columns_dict
        store.db.table("models").insert({k: v for k, v in model.items() if k in columns})
    return path


def run_predict(db: Path, products: Path, out: Path) -> dict[str, Any]:
    """One `tagkit predict` child: wall seconds, peak RSS (reaped with os.wait4), and its --json summary."""
    said, errors = WORK / "predict.json", WORK / "predict.err"
    started = time.perf_counter()
    with said.open("w") as stdout, errors.open("w") as stderr:
        child = subprocess.Popen([str(TAGKIT), "--db", str(db), "-q", "predict", str(products), "--json", "-o",
                                  str(out)], stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        sys.exit(f"tagkit predict failed ({code}):\n{errors.read_text()[-2000:]}")
    summary = json.loads(said.read_text())
    return {"seconds": round(seconds, 1), "peak_mb": round(usage.ru_maxrss / 1024), "products": summary["products"],
            "predicted": summary["predicted"], "unchanged": summary["unchanged"],
            "embedded": summary["import"]["images_embedded"], "exit_code": code}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--distinct", type=int, default=5_000, help="distinct images (embedded once per run)")
    parser.add_argument("--model-db", type=Path, help="take the newest model of this tagkit database")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    pairs, spare, source = images_and_titles(args.distinct)
    model, model_name = model_row(args.model_db)
    results = []
    for size in args.sizes:
        products = WORK / f"products-{size}.csv"
        write_products(products, size, pairs)
        db = fresh_db(WORK / "run.db", model)
        first = run_predict(db, products, WORK / "out.csv")
        write_products(products, size, pairs, swap=spare)
        again = run_predict(db, products, WORK / "out.csv")
        assert first["products"] == again["products"] == size, (first, again)
        results.append({"products": size, "distinct_images": len(pairs), "first": first, "rerun": again})
        print(f"{size:,} products: first run {first['seconds']} s, {first['peak_mb']:.0f} MB; "
              f"re-run {again['seconds']} s, {again['peak_mb']:.0f} MB", file=sys.stderr)
    lines = [
        f"tagkit predict, {source} ({args.distinct:,} distinct images), {model_name}, "
        f"{os.cpu_count()} cores; peak RSS (os.wait4), MB = 2^20 bytes",
        f"{'products':>9} | {'first run: s':>12} {'peak MB':>8} {'embedded':>9} {'predicted':>10} | "
        f"{'re-run, 10 images changed: s':>28} {'peak MB':>8} {'embedded':>9} {'predicted':>10}",
    ]
    for r in results:
        f, a = r["first"], r["rerun"]
        lines.append(f"{r['products']:>9,} | {f['seconds']:>12.1f} {f['peak_mb']:>8.0f} {f['embedded']:>9,} "
                     f"{f['predicted']:>10,} | {a['seconds']:>28.1f} {a['peak_mb']:>8.0f} {a['embedded']:>9,} "
                     f"{a['predicted']:>10,}")
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps({
        "images": source, "distinct_images": args.distinct, "model": model_name, "cores": os.cpu_count(),
        "machine": platform.platform(), "load_average": os.getloadavg(), "results": results, "table": lines,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
