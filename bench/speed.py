"""Issue 3's speed bars, measured through the real command line (each step is a `.venv/bin/tagkit` child process).

    python bench/speed.py [--runs 3] [--quick] [--only train|folder|products ...]

On the fashion catalogue of ../shared/data/fashion (styles.csv, images read from images.tar):

- train     `tagkit --db bench/.cache/speed.db train styles.csv --config examples/fashion.yaml` on all 30,921
            products, their image features already cached. Wall seconds and peak memory; bars ≤ 180 s, ≤ 3 GB.
- folder    `tagkit --db FRESH predict FOLDER --export csv -o OUT.csv` on a folder of 10,000 images (the first
            10,000 members of images.tar, extracted once to bench/.cache/speed-folder-10000/), no titles: end to
            end (start-up, decode, embed, models, database, export). Images/s; bar ≥ 250 images/s.
- products  `tagkit --db FRESH predict products.csv --export csv -o OUT.csv` on 1,000 products with titles and
            images (the last 1,000 rows of styles.csv: id, title, image; images extracted once to
            bench/.cache/speed-products-1000/). Wall seconds; bar < 5 s.

And, with no bar (issue 5's users; measured so that it stays fast), on ../shared/data/torob_attributes:

- persian   `tagkit --db FRESH predict test.jsonl --config examples/torob.yaml --export csv -o OUT.csv` on 1,000
            Persian products (titles only; the last 1,000 lines of products.jsonl) with a model trained once, not
            measured, on the first 4,000 (examples/torob.yaml: attribute extraction on; the shipped
            taxonomy/fa-fashion.yaml imported first) in bench/.cache/speed-torob.db. Wall seconds.

Each is run --runs times (default 3); the table and bench/results/speed.json give the median and every run,
with the machine's core count and load average (the machine may be shared: the load is recorded at the start,
before every run and at the end).

The training database is built once and kept (bench/.cache/speed.db): `tagkit import --no-images` stores the
products and their image hashes, the features of those hashes are copied from bench/.cache/fashion.db when it
has them for the current image model (else they are computed), and `tagkit import` then fills in whatever is
left. Each training run adds a model version; older versions of the bench database are deleted afterwards.

Fresh features for predict: every predict run gets a new, empty database (bench/.cache/speed-run/predict.db)
holding one row, the trained model's row copied from the training database's `models` table. That row's
`path` is the absolute path of the model folder (`speed.db.models/<version>/`), which is where `predict` looks
for it, so the model is found without copying it, and the `features` table is empty: every image is decoded
and embedded in the measured run. After each run the script checks that the export has a row per product and
records how many images were embedded (`embedded`).

The machine is recorded with the results, and with it a calibration: the bundled image model alone, one
thread, in milliseconds per image (`image_model_ms`; the CPU's SIMD flags beside it). The image model is most
of predict's work, so figures from two machines compare through it: 4.3 ms on the machine where the figures before
1 Dec 2026 (evening) were measured; 15.3 ms on that evening's, an AMD EPYC without VNNI instructions, where
tagkit uses onnxruntime's exact INT8 kernels (12-13 ms with the fast ones, whose sums saturate there).

Peak memory is the child's peak RSS from `os.wait4` (the largest single process, including reaped
descendants); for train, the larger of that and the peak of the summed PSS of the child's process tree, sampled
every 0.1 s (training fits models in loky worker processes). predict runs in one process and is not sampled: a
sample reads /proc of every process and the child's smaps, about 13 ms of CPU, and the samples of one 5 s predict
took 0.6 s of the 2 cores it is timed on. MB are 2^20 bytes; the 3 GB bar is 3,072 MB.

--quick uses small sizes (2,000 products for train, on a bench database of their own, 500 images, 200
products) to check the script quickly; the bars are for the full sizes, and the JSON goes to
bench/results/speed-quick.json so that the real results stay.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from common import CACHE, REPO, RESULTS, SHARED

FASHION = SHARED / "fashion"
STYLES = FASHION / "styles.csv"
ARCHIVE = FASHION / "images.tar"
CONFIG = REPO / "examples" / "fashion.yaml"
TOROB = SHARED / "torob_attributes" / "products.jsonl"
TOROB_CONFIG = REPO / "examples" / "torob.yaml"
TAGKIT = REPO / ".venv" / "bin" / "tagkit"
FEATURES_SOURCE = CACHE / "fashion.db"  # the bench database of bench/common.py: features of every fashion image
RUN_DIR = CACHE / "speed-run"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")
OK_EXIT_CODES = (0, 3)  # 3: finished, with problems in the input (listed on stderr)

FULL = {"train": 30_921, "folder": 10_000, "products": 1_000, "persian_train": 4_000, "persian": 1_000}
QUICK = {"train": 2_000, "folder": 500, "products": 200, "persian_train": 400, "persian": 200}
BARS = {"train_s": 180.0, "train_mb": 3 * 1024.0, "folder_images_per_s": 250.0, "products_s": 5.0}


# -- running a child ---------------------------------------------------------------------------------------


@dataclass
class ChildRun:
    """One tagkit process: how long it took, how much memory it used, what it said."""

    seconds: float
    exit_code: int
    peak_rss_mb: float
    peak_tree_pss_mb: float
    load_before: float
    stdout: str
    stderr: str

    @property
    def peak_mb(self) -> float:
        return max(self.peak_rss_mb, self.peak_tree_pss_mb)


class TreeMemory(threading.Thread):
    """Samples the summed PSS (RSS where PSS cannot be read) of a process and its descendants."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_kb = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.peak_kb = max(self.peak_kb, sum(_memory_kb(p) for p in _tree(self.pid)))

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak_kb / 1024


def _tree(root: int) -> list[int]:
    """`root` and its descendants, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _memory_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return 0


def run_tagkit(args: list[str | Path], log: str, tree_memory: bool = False) -> ChildRun:
    """Run `tagkit ARGS` to completion; stdout and stderr go to files in RUN_DIR named after `log`.
    `tree_memory`: sample the summed PSS of the child's process tree meanwhile (costs CPU; see the docstring)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    out_path, err_path = RUN_DIR / f"{log}.stdout", RUN_DIR / f"{log}.stderr"
    load = os.getloadavg()[0]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen([str(TAGKIT), *map(str, args)], stdout=out, stderr=err, cwd=RUN_DIR)
        sampler = TreeMemory(child.pid) if tree_memory else None
        if sampler is not None:
            sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        tree_mb = sampler.stop() if sampler is not None else 0.0
    run = ChildRun(seconds, child.returncode, usage.ru_maxrss / 1024, tree_mb, load,
                   out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))
    if run.exit_code not in OK_EXIT_CODES:
        sys.exit(f"`tagkit {' '.join(map(str, args))}` failed with exit code {run.exit_code}:\n"
                 + "\n".join(run.stderr.splitlines()[-20:]))
    return run


# -- inputs ------------------------------------------------------------------------------------------------


def styles_rows() -> tuple[list[str], list[dict[str, str]]]:
    with STYLES.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def train_source(count: int) -> list[str | Path]:
    """The products file (and options) `train` reads: styles.csv itself, or its first `count` rows."""
    if count >= FULL["train"]:
        return [STYLES, "--config", CONFIG]
    subset = CACHE / f"speed-train-{count}.csv"
    if not subset.exists():
        header, rows = styles_rows()
        temporary = subset.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows[:count])
        temporary.replace(subset)
    # the image paths name members of images.tar, which is not next to the subset file: say where it is
    return [subset, "--config", CONFIG, "--map", f"image_archive={ARCHIVE}"]


def extract(members: list[tarfile.TarInfo], tar: tarfile.TarFile, folder: Path) -> None:
    for member in members:
        source = tar.extractfile(member)
        assert source is not None, member.name
        (folder / Path(member.name).name).write_bytes(source.read())


def image_folder(count: int) -> Path:
    """A folder with the first `count` images of images.tar (in the archive's order), extracted once."""
    folder = CACHE / f"speed-folder-{count}"
    if folder.is_dir():
        return folder
    print(f"extracting the first {count:,} images of {ARCHIVE} to {folder} ...", file=sys.stderr)
    temporary = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    with tarfile.open(ARCHIVE) as tar:
        members = []
        for member in tar:
            if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                members.append(member)
                if len(members) == count:
                    break
        extract(members, tar, temporary)
    temporary.replace(folder)
    return folder


def products_file(count: int) -> Path:
    """A products file (id, title, image) with the last `count` rows of styles.csv whose image is in
    images.tar, the images extracted next to it (once)."""
    folder = CACHE / f"speed-products-{count}"
    if (folder / "products.csv").exists():
        return folder / "products.csv"
    print(f"extracting the images of {count:,} products to {folder} ...", file=sys.stderr)
    temporary = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    (temporary / "images").mkdir(parents=True)
    _, rows = styles_rows()
    with tarfile.open(ARCHIVE) as tar:
        members = {m.name: m for m in tar if m.isfile()}
        chosen = [row for row in rows if row["image"] in members][-count:]
        extract([members[row["image"]] for row in chosen], tar, temporary / "images")
    with (temporary / "products.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "image"])
        for row in chosen:
            writer.writerow([row["id"], row["productDisplayName"], f"images/{Path(row['image']).name}"])
    temporary.replace(folder)
    return folder / "products.csv"


# -- databases ---------------------------------------------------------------------------------------------


@contextmanager
def connect(db: Path, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to `db` (URI file names allowed, for attaching read-only); committed and closed after."""
    conn = sqlite3.connect(f"file:{quote(str(db))}{'?mode=ro' if readonly else ''}", uri=True)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def uri(db: Path) -> str:
    """`db` as a read-only URI, to attach."""
    return f"file:{quote(str(db))}?mode=ro"


def image_model_id() -> str:
    from tagkit.image import ImageEmbedder

    return ImageEmbedder("int8").model_id


def missing_features(db: Path, model_id: str) -> int:
    """Products of `db` whose readable image has no cached features (or -1 when it has no products)."""
    with connect(db, readonly=True) as conn:
        if not conn.execute("select count(*) from products").fetchone()[0]:
            return -1
        return conn.execute(
            "select count(distinct p.image_hash) from products p left join features f "
            "on f.image_hash = p.image_hash and f.model = ? where p.image_hash is not null and f.image_hash is null",
            [model_id]).fetchone()[0]


def train_db(count: int) -> tuple[Path, list[str | Path]]:
    """The bench training database for `count` products, with every image's features cached."""
    db = CACHE / ("speed.db" if count >= FULL["train"] else f"speed-{count}.db")
    source = train_source(count)
    model_id = image_model_id()
    if db.exists() and missing_features(db, model_id) == 0:
        return db, source
    print(f"warm-up: importing {count:,} products into {db} ...", file=sys.stderr)
    run_tagkit(["--db", db, "import", *source, "--no-images"], "warmup-import-no-images")
    if FEATURES_SOURCE.exists():
        with connect(db) as conn:
            conn.execute("attach database ? as src", [uri(FEATURES_SOURCE)])
            copied = conn.execute(
                "insert or ignore into features select * from src.features where model = ? "
                "and image_hash in (select image_hash from products)", [model_id]).rowcount
        print(f"warm-up: {copied:,} image features copied from {FEATURES_SOURCE}", file=sys.stderr)
    print("warm-up: `tagkit import` (embeds the images still without features) ...", file=sys.stderr)
    run = run_tagkit(["--db", db, "import", *source], "warmup-import")
    print("\n".join(f"  {line}" for line in run.stdout.splitlines()), file=sys.stderr)
    return db, source


def newest_model(db: Path) -> str | None:
    with connect(db, readonly=True) as conn:
        rows = conn.execute("select id, path from models order by id desc").fetchall()
    return next((version for version, path in rows if Path(path).is_dir()), None)


def keep_newest_model(db: Path) -> None:
    """Delete every model version of the bench database but the newest (each one is tens of MB)."""
    newest = newest_model(db)
    with connect(db) as conn:
        for version, path in conn.execute("select id, path from models where id != ?", [newest]).fetchall():
            if Path(path).parent == db.with_name(db.name + ".models"):
                shutil.rmtree(path, ignore_errors=True)
            conn.execute("delete from models where id = ?", [version])


def fresh_predict_db(trained: Path) -> Path:
    """A new, empty database whose only row is the newest model of `trained` (its folder stays where it is)."""
    from tagkit.store import Store

    db = RUN_DIR / "predict.db"
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    Store(db).close()  # tagkit's own schema
    with connect(db) as conn:
        conn.execute("attach database ? as src", [uri(trained)])
        conn.execute("insert into models select * from src.models where id = ?", [newest_model(trained)])
        assert conn.execute("select count(*) from features").fetchone()[0] == 0
    return db


def embedded_count(db: Path) -> int:
    with connect(db, readonly=True) as conn:
        return conn.execute("select count(*) from features").fetchone()[0]


def exported_rows(path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


# -- measurements ------------------------------------------------------------------------------------------


def tagkit_seconds(text: str, pattern: str) -> float | None:
    """The time tagkit reports for its own work (without process start-up), when it prints one."""
    found = re.search(pattern, text)
    return float(found.group(1)) if found else None


def measure_train(count: int, runs: int) -> dict[str, Any]:
    db, source = train_db(count)
    results = []
    for i in range(runs):
        run = run_tagkit(["--db", db, "train", *source], f"train-{i + 1}", tree_memory=True)
        results.append(run)
        print(f"train run {i + 1}: {run.seconds:.1f} s, {run.peak_mb:,.0f} MB", file=sys.stderr)
    keep_newest_model(db)
    wall = [r.seconds for r in results]
    peak = [r.peak_mb for r in results]
    return {
        "products": count, "database": str(db), "command": _command(["--db", db, "train", *source]),
        "wall_s": round(statistics.median(wall), 2), "wall_s_runs": _rounded(wall, 2),
        "peak_mb": round(statistics.median(peak)), "peak_mb_runs": _rounded(peak, 0),
        "peak_rss_mb_runs": _rounded([r.peak_rss_mb for r in results], 0),
        "peak_tree_pss_mb_runs": _rounded([r.peak_tree_pss_mb for r in results], 0),
        "tagkit_s_runs": [tagkit_seconds(r.stdout, r"time\s+([\d.]+) s") for r in results],
        "exit_codes": [r.exit_code for r in results], "load_before_runs": [r.load_before for r in results],
    }


def ensure_model(count: int) -> Path:
    """The training database for `count` products, trained once (not measured) when it has no model."""
    db, source = train_db(count)
    if newest_model(db) is None:
        print(f"training a model in {db} for predict (not measured) ...", file=sys.stderr)
        run_tagkit(["--db", db, "train", *source], "train-for-predict")
    return db


def persian_model(train: int, test: int) -> tuple[Path, Path]:
    """A database with a model trained (once, not measured) on the first `train` Torob products, and a file with
    the last `test` products for predict."""
    folder = CACHE / f"speed-torob-{train}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = TOROB.read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "test.jsonl").write_text("".join(lines[-test:]), encoding="utf-8")
    db = folder / "speed-torob.db"
    if db.exists() and newest_model(db):
        return db, folder / "test.jsonl"
    (folder / "train.jsonl").write_text("".join(lines[:train]), encoding="utf-8")
    print(f"training a Persian model on {train:,} Torob products in {db} (not measured) ...", file=sys.stderr)
    run_tagkit(["--db", db, "taxonomy", "import", REPO / "taxonomy" / "fa-fashion.yaml"], "persian-taxonomy")
    run_tagkit(["--db", db, "train", folder / "train.jsonl", "--config", TOROB_CONFIG], "persian-train")
    return db, folder / "test.jsonl"


def measure_predict(trained: Path, source: Path, expected: int, runs: int, name: str,
                    options: tuple[str | Path, ...] = ()) -> dict[str, Any]:
    results, embedded = [], []
    output = RUN_DIR / f"{name}.csv"
    for i in range(runs):
        db = fresh_predict_db(trained)
        output.unlink(missing_ok=True)
        run = run_tagkit(["--db", db, "predict", source, *options, "--export", "csv", "-o", output],
                         f"{name}-{i + 1}")
        rows = exported_rows(output)
        if rows != expected:
            sys.exit(f"{name} run {i + 1}: {rows:,} rows exported, expected {expected:,}")
        embedded.append(embedded_count(db))
        results.append(run)
        print(f"{name} run {i + 1}: {run.seconds:.2f} s, {expected / run.seconds:.0f} products/s, "
              f"{embedded[-1]:,} images embedded", file=sys.stderr)
    wall = [r.seconds for r in results]
    rate = [expected / s for s in wall]
    return {
        "products": expected, "model": newest_model(trained), "trained_database": str(trained),
        "command": _command(["--db", RUN_DIR / "predict.db", "predict", source, *options, "--export", "csv",
                             "-o", output]),
        "wall_s": round(statistics.median(wall), 3), "wall_s_runs": _rounded(wall, 3),
        "per_s": round(statistics.median(rate), 1), "per_s_runs": _rounded(rate, 1),
        "embedded_runs": embedded,
        "peak_mb": round(statistics.median(r.peak_mb for r in results)),
        "tagkit_s_runs": [tagkit_seconds(r.stderr, r"predicted with model \S+ in ([\d.]+) s") for r in results],
        "exit_codes": [r.exit_code for r in results], "load_before_runs": [r.load_before for r in results],
    }


def _command(args: list[str | Path]) -> str:
    shown = [os.path.relpath(a, REPO) if isinstance(a, Path) else a for a in args]
    return " ".join(["tagkit", *map(str, shown)])


def _rounded(values: list[float], digits: int) -> list[float]:
    return [round(v, digits) for v in values]


# -- report ------------------------------------------------------------------------------------------------


CALIBRATION = """
import statistics, time, numpy as np
from tagkit.image import ImageEmbedder
embedder = ImageEmbedder()
batch = np.random.default_rng(0).uniform(0, 255, (16, 3, embedder.input_size, embedder.input_size)).astype(np.float32)
embedder.embed_arrays(batch)
times = []
for _ in range(5):
    started = time.perf_counter()
    embedder.embed_arrays(batch)
    times.append((time.perf_counter() - started) / len(batch) * 1000)
print(statistics.median(times))
"""
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def image_model_ms() -> float:
    """The bundled image model alone, one thread, batches of 16: milliseconds per image (median of 5 batches). It
    does most of predict's work, and it is what tells one machine from another: the INT8 model is about 3 times
    faster on a CPU with VNNI instructions (avx512_vnni, avx_vnni) than on one without."""
    python = TAGKIT.parent / "python"
    out = subprocess.run([str(python), "-c", CALIBRATION], capture_output=True, text=True, check=True).stdout
    return round(float(out.split()[-1]), 2)


def machine() -> dict[str, Any]:
    flags = next((set(line.split(":", 1)[1].split()) for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), set())
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), None)
    version = subprocess.run([str(TAGKIT), "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu_count": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)), "cpu": cpu,
            "cpu_flags": [flag for flag in SIMD_FLAGS if flag in flags], "image_model_ms": image_model_ms(),
            "memory_mb": memory, "platform": platform.platform(), "python": platform.python_version(),
            "tagkit": version, "pythondontwritebytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))}


def table(results: dict[str, Any], quick: bool) -> list[str]:
    rows = []
    if "train" in results:
        r = results["train"]
        rows.append((f"train, {r['products']:,} products: wall", f"{r['wall_s']:.1f} s", f"≤ {BARS['train_s']:.0f} s",
                     r["wall_s"] <= BARS["train_s"], ", ".join(f"{v:.1f}" for v in r["wall_s_runs"])))
        rows.append(("train: peak memory", f"{r['peak_mb']:,} MB", f"≤ {BARS['train_mb']:,.0f} MB",
                     r["peak_mb"] <= BARS["train_mb"], ", ".join(f"{v:,.0f}" for v in r["peak_mb_runs"])))
    if "folder" in results:
        r = results["folder"]
        rows.append((f"predict folder, {r['products']:,} images", f"{r['per_s']:.0f} images/s",
                     f"≥ {BARS['folder_images_per_s']:.0f} images/s", r["per_s"] >= BARS["folder_images_per_s"],
                     ", ".join(f"{v:.0f}" for v in r["per_s_runs"])))
    if "products" in results:
        r = results["products"]
        rows.append((f"predict {r['products']:,} products (titles+images)", f"{r['wall_s']:.2f} s",
                     f"< {BARS['products_s']:.0f} s", r["wall_s"] < BARS["products_s"],
                     ", ".join(f"{v:.2f}" for v in r["wall_s_runs"])))
    if "persian" in results:
        r = results["persian"]
        rows.append((f"predict {r['products']:,} Persian products (titles)", f"{r['wall_s']:.2f} s", "(none)", True,
                     ", ".join(f"{v:.2f}" for v in r["wall_s_runs"])))
    lines = [f"{'measure':40} {'measured':>14} {'bar':>16}  {'':8} runs",
             *(f"{m:40} {v:>14} {b:>16}  {'ok' if met else 'not met':8} {runs_}" for m, v, b, met, runs_ in rows)]
    if quick:
        lines.append("(--quick: small sizes; the bars are for the full sizes)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="measurements of each step (default 3)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--only", action="append", choices=["train", "folder", "products", "persian"],
                        help="measure only this step (repeatable)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not STYLES.exists() or not ARCHIVE.exists():
        sys.exit(f"skipped: the fashion data set is not here ({FASHION} is missing)")
    if not TAGKIT.exists():
        sys.exit(f"{TAGKIT} is missing: run `make install` first")
    sizes = QUICK if args.quick else FULL
    steps = args.only or ["train", "folder", "products", "persian"]
    started_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    load_start = os.getloadavg()
    info = machine()
    results: dict[str, Any] = {}
    if "train" in steps:
        results["train"] = measure_train(sizes["train"], args.runs)
    if "folder" in steps or "products" in steps:
        trained = ensure_model(sizes["train"])
        if "folder" in steps:
            folder = image_folder(sizes["folder"])
            results["folder"] = measure_predict(trained, folder, sizes["folder"], args.runs, "folder")
        if "products" in steps:
            products = products_file(sizes["products"])
            results["products"] = measure_predict(trained, products, sizes["products"], args.runs, "products")
    if "persian" in steps:
        if TOROB.exists():
            db, test = persian_model(sizes["persian_train"], sizes["persian"])
            results["persian"] = measure_predict(db, test, sizes["persian"], args.runs, "persian",
                                                 ("--config", TOROB_CONFIG))
        else:
            print(f"persian: skipped, {TOROB} is missing", file=sys.stderr)
    load_end = os.getloadavg()
    print(f"through `tagkit`, {info['cpu_count']} cores, median of {args.runs} runs; "
          f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end; the image model alone "
          f"{info['image_model_ms']:.1f} ms per image on one thread ({', '.join(info['cpu_flags']) or 'no AVX2'})")
    print("\n".join(table(results, args.quick)))
    RESULTS.mkdir(exist_ok=True)
    report = {"quick": args.quick, "sizes": sizes, "runs": args.runs, "bars": BARS, "started_at": started_at,
              "finished_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
              "machine": {**info, "loadavg_start": load_start, "loadavg_end": load_end}, "results": results}
    out = RESULTS / ("speed-quick.json" if args.quick else "speed.json")  # a quick check keeps the real results
    if args.only and out.exists():  # the steps not measured this time keep their last results
        earlier = json.loads(out.read_text())
        for step, result in earlier.get("results", {}).items():
            if step not in results:
                results[step] = {**result, "from_an_earlier_run": earlier.get("started_at")}
        report["results"] = results
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
