"""Screen-to-screen time of `tagkit review`, driven through a pseudo-terminal as a person would use it.

    .venv/bin/python bench/review_ui.py [--products 100] [--runs 3] [--size 120x40]

Builds a review database once (bench/.cache/review-ui/: trains on examples/demo/train.csv, predicts
examples/demo/test.csv and examples/demo/new/ — 160 products with images, most with titles), then for each
run copies it, starts the real `tagkit review --order id` in a pseudo-terminal of the given size, and
accepts --products products with the `a` key. The time of one screen is from the key press to the moment the
next product's screen has been drawn completely (its footer line has arrived). Prints the median, 90th
percentile and worst over all screens, and the start-up time to the first screen; writes
bench/results/review_ui.json. Goal: screen to screen ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / ".cache" / "review-ui"
RESULTS = REPO / "bench" / "results"
TAGKIT = str(Path(sys.executable).parent / "tagkit")
FOOTER = b"q quit"


def build(db: Path) -> None:
    demo = REPO / "examples" / "demo"
    if db.exists():
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    for args in (["train", demo / "train.csv"], ["predict", demo / "test.csv"],
                 ["predict", demo / "new", "--products", demo / "new.csv"]):
        subprocess.run([TAGKIT, "--db", db, "-q", *args], check=False, stdout=subprocess.DEVNULL)
    with sqlite3.connect(db) as conn:
        count = conn.execute("select count(*) from predictions").fetchone()[0]
    print(f"review database {db}: {count} predictions", file=sys.stderr)


def read_until(fd: int, marker: bytes, timeout: float = 10.0) -> bytes:
    """Terminal output up to and including the next `marker` (an error if it does not come)."""
    out = b""
    end = time.monotonic() + timeout
    while marker not in out:
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {marker!r} within {timeout} s; last output: {out[-300:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            out += os.read(fd, 1 << 16)
    return out


def session(db: Path, products: int, rows: int, cols: int) -> tuple[float, list[float]]:
    """Start-up seconds and the seconds of each screen change."""
    started = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real command, in the pseudo-terminal
        os.environ.update({"TERM": "xterm-256color", "COLORTERM": "truecolor"})
        os.execv(TAGKIT, [TAGKIT, "--db", str(db), "review", "--order", "id", "--limit", str(products + 1)])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    try:
        read_until(fd, FOOTER, timeout=60)
        startup = time.monotonic() - started
        times = []
        for _ in range(products):
            tick = time.monotonic()
            os.write(fd, b"a")
            read_until(fd, FOOTER)
            times.append(time.monotonic() - tick)
        os.write(fd, b"q")
        os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return startup, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="120x40", help="terminal COLSxROWS")
    args = parser.parse_args()
    cols, rows = (int(v) for v in args.size.split("x"))
    base = WORK / "review.db"
    build(base)
    startups, screens = [], []
    for run in range(args.runs):
        db = WORK / f"run-{run}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        shutil.copy(base, db)
        startup, times = session(db, args.products, rows, cols)
        with sqlite3.connect(db) as conn:
            decided = conn.execute("select count(distinct product_id) from feedback").fetchone()[0]
        startups.append(startup)
        screens += times
        print(f"run {run + 1}: start-up {startup:.2f} s, {len(times)} screens, median "
              f"{statistics.median(times) * 1000:.1f} ms, worst {max(times) * 1000:.1f} ms, "
              f"{decided} products decided in the database", file=sys.stderr)
    ms = sorted(t * 1000 for t in screens)
    result = {"terminal": f"{cols}x{rows}", "products_per_run": args.products, "runs": args.runs,
              "startup_s": [round(s, 3) for s in startups], "screen_ms_median": round(statistics.median(ms), 1),
              "screen_ms_p90": round(ms[int(0.9 * (len(ms) - 1))], 1), "screen_ms_max": round(ms[-1], 1),
              "load_average": os.getloadavg()}
    print(f"\n{'measure':<28}{'measured':>12}{'goal':>10}")
    print(f"{'screen to screen, median':<28}{result['screen_ms_median']:>9.1f} ms{'≤ 100 ms':>10}")
    print(f"{'screen to screen, p90':<28}{result['screen_ms_p90']:>9.1f} ms")
    print(f"{'screen to screen, worst':<28}{result['screen_ms_max']:>9.1f} ms")
    print(f"{'start-up to first screen':<28}{statistics.median(startups):>10.2f} s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "review_ui.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {RESULTS / 'review_ui.json'}")


if __name__ == "__main__":
    main()
