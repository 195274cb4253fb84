"""Write predictions as CSV, JSON Lines or a JSON array, one product at a time (streaming).

An export goes to stdout or to the one file named with `-o` (`atomic_file`: written under a temporary
name beside it and renamed when complete). No file is ever named after a product id or any other value
read from the input, so nothing can be written outside the folder the caller chose.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tagkit.predicting import PredictedProduct
from tagkit.store import process_alive

FORMATS = ("csv", "jsonl", "json")
CSV_COLUMNS = ("id", "title", "category", "category_score", "alternatives", "tags", "tag_scores", "candidates",
               "model")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula: text starting with = + - @ gets a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def written_directly(path: str | Path) -> bool:
    """Whether `path` is written to as it is rather than replaced: a pipe, a device or a terminal, or a name for
    an open file (`/dev/stdout`, `/proc/self/fd/1`, or a link to them: replacing the file they stand for would
    undo a redirect's `>>`, or fail)."""
    name = os.path.abspath(path)
    for _ in range(40):  # along the chain of links
        if name.startswith(("/dev/", "/proc/")):
            return True
        if not os.path.islink(name):
            break
        name = os.path.normpath(os.path.join(os.path.dirname(name), os.readlink(name)))
    return os.path.exists(name) and not os.path.isfile(name)


@contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[str]]:
    """A UTF-8 text file written as `.<name>.tmp-<pid>` beside `path` and renamed to `path` when the block
    ends without an error: an interrupted export never leaves a half file, nor clobbers the last one.

    A symbolic link is followed (its target is written); what is `written_directly` (a pipe, `/dev/stdout`) is
    opened for appending and written as it comes; an existing file keeps its permissions.
    """
    if written_directly(path):
        with open(path, "a", encoding="utf-8", newline="") as out:
            yield out
        return
    path = Path(os.path.realpath(path))
    for leftover in path.parent.glob(glob.escape(f".{path.name}.tmp-") + "*"):  # from a killed run
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            leftover.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as out:
            yield out
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class Exporter:
    """Writes predicted products to `out` in one of FORMATS; call `close()` at the end."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
        self.out = out
        self.fmt = fmt
        self.count = 0
        if fmt == "csv":
            self.writer = csv.writer(out)
            self.writer.writerow(CSV_COLUMNS)

    def write(self, record: PredictedProduct) -> None:
        if self.fmt == "csv":
            self.writer.writerow([safe_cell(v) for v in csv_row(record)])
        else:
            text = json.dumps(record.as_dict(), ensure_ascii=False)
            if self.fmt == "json":
                text = ("[\n" if self.count == 0 else ",\n") + text
            self.out.write(text + ("\n" if self.fmt == "jsonl" else ""))
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write("[]\n" if self.count == 0 else "\n]\n")
        self.out.flush()


def csv_row(record: PredictedProduct) -> list[Any]:
    return [
        record.id,
        record.title,
        record.category or "",
        record.category_score,
        " | ".join(f"{path} ({score:.3f})" for path, score in record.alternatives),
        " | ".join(tag for tag, _ in record.tags),
        " | ".join(f"{score:.3f}" for _, score in record.tags),
        " | ".join(f"{tag} ({score:.3f})" for tag, score in record.candidates),
        record.model,
    ]
