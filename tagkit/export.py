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
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tagkit.catalogue import safe_cell, tags_cell
from tagkit.predicting import PredictedProduct
from tagkit.store import process_alive, sync_folder

FORMATS = ("csv", "jsonl", "json")
CSV_COLUMNS = ("id", "title", "category", "category_score", "alternatives", "tags", "tag_scores", "candidates",
               "model")
_DESCRIPTOR_NAME = re.compile(
    r"/dev/(?P<std>stdout|stderr)|/dev/fd/(?P<fd>\d+)|/proc/(?P<pid>self|\d+)/fd/(?P<proc_fd>\d+)")


def named_descriptor(path: str | Path) -> int | None:
    """The file descriptor of this process that `path` names (`/dev/stdout`, `/dev/stderr`, `/dev/fd/N`,
    `/proc/self/fd/N`, or a link to one of them), or None."""
    name = os.path.abspath(path)
    for _ in range(40):  # along the chain of links
        found = _DESCRIPTOR_NAME.fullmatch(name)
        if found:
            pid, number = found.group("pid"), found.group("fd") or found.group("proc_fd")
            if pid not in (None, "self", str(os.getpid())):
                return None
            return int(number) if number else {"stdout": 1, "stderr": 2}[found.group("std")]
        if not os.path.islink(name):
            return None
        name = os.path.join(os.path.realpath(os.path.dirname(name)), os.readlink(name))
    return None


def written_directly(path: str | Path) -> bool:
    """Whether `path` is written to as it is rather than replaced: an open file of this process (`/dev/stdout`:
    replacing the file a shell redirected it to would undo a `>>`), or what is not a regular file (a pipe, a
    device, a terminal)."""
    target = os.path.realpath(path)
    return named_descriptor(path) is not None or (os.path.exists(target) and not os.path.isfile(target))


class OutputError(ValueError):
    """An export path that must not be written (see `check_output`)."""


def check_output(output: str | Path, db: str | Path, inputs: dict[str, Path | None] | None = None) -> None:
    """Raise OutputError when `output` cannot be written, or is one of the run's `inputs` ({what: path}), the
    database `db` or one of the database's own files (what writing `output` would replace)."""
    if written_directly(output):
        return
    for what, path in {**(inputs or {}), "the database": Path(db)}.items():
        if path is not None and _same_file(output, path):
            raise OutputError(f"{output} is {what}: the export would replace it; write it to another file")
    if _database_file(output, db):
        raise OutputError(f"{output} belongs to the database {db} (its journal or its models): write the export to "
                          "another file")
    folder = Path(os.path.realpath(output)).parent  # a link's target's folder
    if not folder.is_dir():
        raise OutputError(f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write in {folder}")


def _database_file(output: str | Path, db: str | Path) -> bool:
    """Whether `output` is one of the database's own files: its -wal, -shm, -journal or lock, or in its models
    folder (next to the path given, or to the file a linked path leads to)."""
    out = Path(os.path.realpath(output))
    given, real = Path(os.path.abspath(db)), Path(os.path.realpath(db))
    bases = {given, real, real.with_name(given.name)}
    suffixes = ("-wal", "-shm", "-journal", ".lock")
    own = {Path(os.path.realpath(b.with_name(b.name + s))) for b in bases for s in suffixes}
    models = {Path(os.path.realpath(b.with_name(b.name + ".models"))) for b in bases}
    return out in own or any(folder in out.parents for folder in models)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


@contextmanager
def atomic_file(path: str | Path, bom: bool = False) -> Iterator[IO[str]]:
    """A UTF-8 text file written as `.<name>.tmp-<pid>` beside `path` and renamed to `path` when the block
    ends without an error: an interrupted export never leaves a half file, nor clobbers the last one. `bom`: a file
    (not a stream) starts with a UTF-8 byte-order mark, so that Excel reads a CSV as UTF-8, not the system's code page.

    A symbolic link is followed (its target is written); an open file of this process (`/dev/stdout`) is written
    through its descriptor (sharing its position with what else is written there), a pipe or a device as it
    comes; an existing file keeps its permissions.
    """
    descriptor = named_descriptor(path)
    if descriptor is not None:
        with os.fdopen(os.dup(descriptor), "w", encoding="utf-8", newline="") as out:
            yield out
        return
    if written_directly(path):
        with open(path, "w", encoding="utf-8", newline="") as out:
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
            if bom:
                out.write("\ufeff")
            yield out
            out.flush()
            os.fsync(out.fileno())  # on the disk before it takes the name: a power cut leaves the old file or this
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
        sync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


class Exporter:
    """Writes predicted products to `out` in one of FORMATS; call `close()` at the end.

    A product written again (an id repeated in the input further apart than one chunk of `predict`) is, in a file,
    kept once: its last record, in the place of its first (as the database keeps it). A stream (stdout, a pipe) has
    sent the first on already, so there it is written twice."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
        self.out = out
        self.fmt = fmt
        self.count = 0
        self.repeated: set[str] = set()
        self._written: set[str] = set()
        if fmt == "csv":
            self.writer = csv.writer(out)
            self.writer.writerow(CSV_COLUMNS)

    def write(self, record: PredictedProduct) -> None:
        if record.id in self._written:
            self.repeated.add(record.id)
        self._written.add(record.id)
        if self.fmt == "csv":
            self._write([safe_cell(v) for v in csv_row(record)])
        else:
            self._write(json.dumps(record.as_dict(), ensure_ascii=False))

    def _write(self, record: list[Any] | str) -> None:
        """One record as written: a CSV row's cells, or a JSON object's text."""
        if self.fmt == "csv":
            self.writer.writerow(record)
        else:
            text = ("[\n" if self.count == 0 else ",\n") + record if self.fmt == "json" else record
            self.out.write(text + ("\n" if self.fmt == "jsonl" else ""))
        self.count += 1

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write("[]\n" if self.count == 0 else "\n]\n")
        self.out.flush()
        name = getattr(self.out, "name", None)  # a file opened by its name (not a descriptor shared with others)
        if self.repeated and isinstance(name, str) and os.path.isfile(name) and self.out.seekable():
            _keep_last_records(self.out, self.fmt, self.repeated)


def _records(lines: IO[str], fmt: str) -> Iterator[tuple[str, Any]]:
    """(id, record) of each product in an export file: a CSV row (a list of cells; the id as written, `safe_cell`)
    or a JSON object's text."""
    if fmt == "csv":
        rows = csv.reader(lines)
        next(rows, None)  # the header
        yield from ((row[0], row) for row in rows if row)
        return
    for line in lines:
        text = line.rstrip("\n")
        if fmt == "json":
            text = text.removesuffix(",")
            if text in ("[", "]", "[]", ""):
                continue
        yield json.loads(text)["id"], text


def _keep_last_records(out: IO[str], fmt: str, repeated: set[str]) -> None:
    """Rewrite the export file `out` (open for writing, at its end) with each id of `repeated` once: its last
    record, where its first was. Two passes over the file; the records of other ids are copied as they are."""
    if fmt == "csv":  # the ids as the CSV writes them (`=1` as `'=1`)
        repeated = {safe_cell(product_id) for product_id in repeated}
    last: dict[str, Any] = {}
    with open(out.name, encoding="utf-8", newline="") as lines:
        for product_id, record in _records(lines, fmt):
            if product_id in repeated:
                last[product_id] = record
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="", dir=os.path.dirname(out.name)) as kept:
        exporter = Exporter(kept, fmt)  # (beside the export: on its disk, not on a small /tmp)
        with open(out.name, encoding="utf-8", newline="") as lines:
            for product_id, record in _records(lines, fmt):
                if product_id in repeated:
                    if product_id not in last:
                        continue  # written already, in the first one's place
                    record = last.pop(product_id)
                exporter._write(record)
        exporter.close()
        kept.seek(0)
        out.seek(0)
        out.truncate()
        shutil.copyfileobj(kept, out)
        out.flush()


def csv_row(record: PredictedProduct) -> list[Any]:
    """The CSV cells of one prediction (its tags as `tags_cell` writes them)."""
    tags = [tag for tag, _ in record.tags]
    return [
        record.id,
        record.title,
        record.category or "",
        "" if record.category_score is None else record.category_score,
        " | ".join(f"{path} ({score})" for path, score in record.alternatives),  # the stored scores, as in JSON
        tags_cell(tags, " | "),
        " | ".join(str(score) for _, score in record.tags),
        " | ".join(f"{tag} ({score})" for tag, score in record.candidates),
        record.model,
    ]
