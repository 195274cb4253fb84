"""Image embedding speed: the bare model against the whole pipeline (bytes → decode → letterbox → embed).

    .venv/bin/python bench/embed_model.py           # 3,000 fashion thumbnails, int8 and fp32
    .venv/bin/python bench/embed_model.py --grid    # also try batch sizes, decode threads, spinning

Reads real product thumbnails from ../shared/data/fashion/images.tar (extracted to a temporary folder).
Every figure is the median of --runs runs (the machine is shared: single runs are noisy).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tagkit.image import (  # noqa: E402
    INPUT_SIZE,
    ImageEmbedder,
    _prepare,
    letterbox,
    load_image,
)

ARCHIVE = REPO.parent / "shared" / "data" / "fashion" / "images.tar"


def extract(count: int, folder: Path) -> list[Path]:
    paths = []
    with tarfile.open(ARCHIVE) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                tar.extract(member, folder, filter="data")
                paths.append(folder / member.name)
                if len(paths) == count:
                    break
    return paths


def measure(run: Callable[[], int]) -> tuple[float, float]:
    """Run once: (images per second of wall time, milliseconds of this process's CPU time per image)."""
    wall, cpu = time.perf_counter(), time.process_time()
    n = run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, 1000 * cpu / n


def interleaved(runs: dict[str, Callable[[], int]], rounds: int) -> dict[str, tuple[float, float, list[float]]]:
    """Median wall rate, median CPU ms per image, and all rates of each run, taking turns round by round
    (so a noisy neighbour slows every variant alike)."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            rate, cpu = measure(run)
            rates[name].append(rate)
            cpus[name].append(cpu)
    return {name: (statistics.median(rates[name]), statistics.median(cpus[name]), rates[name]) for name in runs}


def session_for(embedder: ImageEmbedder, spinning: bool) -> None:
    """Give the embedder a session with spinning on or off (the embedder's own default is off)."""
    import onnxruntime as ort

    embedder._get_session()  # checks the file's checksum
    options = ort.SessionOptions()
    options.intra_op_num_threads = embedder.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    embedder._session = ort.InferenceSession(str(embedder.path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3000, help="how many thumbnails (default 3000)")
    parser.add_argument("--runs", type=int, default=3, help="rounds per figure (default 3)")
    parser.add_argument("--variants", nargs="+", default=["int8", "fp32"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--decode-threads", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--grid", action="store_true", help="try batch sizes, decode threads, spinning")
    args = parser.parse_args()
    if not ARCHIVE.exists():
        raise SystemExit(f"{ARCHIVE} is missing")

    with tempfile.TemporaryDirectory() as tmp:
        paths = extract(args.count, Path(tmp))
        datas = [p.read_bytes() for p in paths]
        sizes = [load_image(d).size for d in datas[:200]]
        print(
            f"{len(datas)} fashion thumbnails, {sum(map(len, datas)) / len(datas) / 1024:.1f} KiB each, "
            f"typical size {statistics.mode(sizes)}; medians of {args.runs} interleaved rounds; "
            f"load average {os.getloadavg()[0]:.1f}"
        )

        def decode_only() -> int:
            for data in datas:
                _prepare(data, INPUT_SIZE)
            return len(datas)

        decode = interleaved({"decode": decode_only}, args.runs)["decode"]
        print(f"decode + letterbox alone, one thread: {decode[0]:,.0f} img/s, {decode[1]:.2f} ms CPU per image")

        sample = np.stack([letterbox(load_image(d)) for d in datas[:256]])
        rows = []
        for variant in args.variants:
            embedder = ImageEmbedder(
                variant, threads=args.threads, batch_size=args.batch_size, decode_threads=args.decode_threads
            )
            session = embedder._get_session()

            def bare(embedder: ImageEmbedder = embedder) -> int:
                return sum(len(embedder.embed_arrays(sample)) for _ in range(4))

            def plain_loop(embedder: ImageEmbedder = embedder, session: Any = session) -> int:
                bs = embedder.batch_size
                for start in range(0, len(datas), bs):
                    batch = np.stack([letterbox(load_image(d)) for d in datas[start : start + bs]])
                    session.run(["embedding"], {"image": batch})
                return len(datas)

            def pipeline(embedder: ImageEmbedder = embedder) -> int:
                return sum(1 for _ in embedder.embed(enumerate(datas)))

            def from_paths(embedder: ImageEmbedder = embedder) -> int:
                return sum(1 for _ in embedder.embed(enumerate(paths)))

            bare(), pipeline()  # warm up
            got = interleaved(
                {"bare": bare, "plain loop": plain_loop, "pipeline": pipeline, "from paths": from_paths}, args.runs
            )
            rows.append((variant, got))
            print(
                f"{variant} [threads {embedder.threads}, decode threads {embedder.decode_threads}, "
                f"batch {embedder.batch_size}]: "
                + "; ".join(
                    f"{name} {rate:,.0f} img/s {[round(r) for r in all_]}" for name, (rate, _, all_) in got.items()
                )
            )

            if args.grid:
                configs: dict[str, Callable[[], int]] = {"bare": bare}
                for batch_size, decode_threads, spinning in itertools.product((16, 32, 64), (1, 2), (False, True)):
                    tuned = ImageEmbedder(
                        variant, threads=args.threads, batch_size=batch_size, decode_threads=decode_threads
                    )
                    session_for(tuned, spinning)
                    spin = "on" if spinning else "off"
                    label = f"batch {batch_size:2d}, decode threads {decode_threads}, spinning {spin}"
                    configs[label] = lambda tuned=tuned: sum(1 for _ in tuned.embed(enumerate(datas)))
                results = interleaved(configs, args.runs)
                for label, (rate, cpu, rates) in results.items():
                    print(
                        f"  {variant} {label:42s} {rate:6,.0f} img/s ({rate / results['bare'][0]:4.0%} of bare), "
                        f"{cpu:.2f} ms CPU/img {[round(r) for r in rates]}"
                    )

        print()
        print(
            "| variant | bare model | plain loop | pipeline (bytes) | pipeline / bare | pipeline (paths) | "
            "CPU ms/img bare → pipeline |"
        )
        print("|---|---|---|---|---|---|---|")
        for variant, got in rows:
            bare_rate, bare_cpu, _ = got["bare"]
            e2e_rate, e2e_cpu, _ = got["pipeline"]
            print(
                f"| {variant} | {bare_rate:,.0f} | {got['plain loop'][0]:,.0f} | {e2e_rate:,.0f} "
                f"| {e2e_rate / bare_rate:.0%} | {got['from paths'][0]:,.0f} | {bare_cpu:.2f} → {e2e_cpu:.2f} |"
            )


if __name__ == "__main__":
    main()
