"""Read a catalogue: a products file (CSV/TSV, JSON Lines, JSON array) or a folder of images.

Every reader yields `Product` records and `Problem`s in file order and keeps going after a bad row.
A `Problem` says where (file, row = the line where the record starts, CSV header = line 1; field =
the column as named in the file) and what was done (`skipped`: the whole row was left out).
A `Problem` with `info` set is only information (see `note`): nothing was lost or changed.

Decisions a caller should know:
- A later row with an id already seen is yielded again, after a Problem "duplicate id X: row N
  replaces row M": consumers store products by id, so the later row wins (like an update). But a row right
  after one of the same id, with neither title nor description (a shop export's variant or extra-image rows:
  Shopify writes a product's sizes and further photos so), is more of that product: it fills in only the image,
  category and tags that the product's first row left empty, and one note per file says how many there were (a
  row left out ends such a run).
- No id column: the id is the row's image path (as written), else the file's folder and name and its line number
  (`data/test.csv:12`, so two files' rows are not one product); said once.
- Columns `Attribute N name` and `Attribute N value(s)` (WooCommerce), not mapped, are read as `name: value` tags.
- A row with an empty id is skipped (it could not be written back to the catalogue).
- A CSV row with more fields than the header is skipped (its values may sit under the wrong
  columns); one with fewer is kept with the missing ones empty. Trailing empty fields are ignored.
- Text that is not UTF-8 stops the file at the first undecodable line (one Problem).
- A carriage return inside a CSV line (not ending it) is read as a space (the csv module would reject the row),
  unless it joins whole rows (each part as wide as the header: lines of a classic Mac file pasted in).
- A lone surrogate escape in JSON (`"\\ud800"`, which no UTF-8 text can hold) becomes U+FFFD.
- An image file whose name is not UTF-8 is skipped with a Problem (its name could not be stored).
- Image paths are resolved, not opened (a missing image file is the image stage's business);
  URLs are not fetched (tagkit is offline): a web URL is the downloaded photo of its file name in the
  image folder, when there is one; else the product is kept without an image.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from functools import cached_property
from itertools import chain
from pathlib import Path, PurePath
from typing import Any, BinaryIO

from tagkit.archive import member_path
from tagkit.config import CANONICAL_FIELDS, Mapping
from tagkit.product import Problem, Product, Tag, did_you_mean, format_category, shown, split_at
from tagkit.text import DIGITS, nfc, spelling_key, strip_html

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".jpe", ".jif", ".png", ".gif", ".webp", ".avif", ".bmp",
                              ".tif", ".tiff"})
"""Image files of a folder: .jfif (what Chrome and Edge on Windows save JPEGs as), .jpe and .jif are JPEGs too."""
UNREAD_PHOTOS = {**dict.fromkeys((".heic", ".heif"), "a HEIC photo (an iPhone's default format)"),
                 **dict.fromkeys((".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"),
                                 "a camera's raw photo")}
"""Photo files of a folder that tagkit cannot read: each is told, not passed over in silence (`_unread_photo`)."""
IN_ICLOUD = ("in iCloud, not downloaded to this Mac: open the folder in Finder and choose Download Now, or turn off "
             "Optimise Mac Storage")
"""Said of a photo that iCloud Drive keeps in the cloud (Optimise Mac Storage): only its placeholder, the hidden file
`.NAME.icloud`, is in the folder (`in_icloud`)."""
WORKBOOKS = {b"PK\x03\x04": "a zip archive (a spreadsheet workbook, .xlsx, .ods or .numbers, is one; or zipped files)",
             b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls)"}
"""The first bytes of files people give as a products file that are no text: told as what they are."""
_NUMBERS_CSV = "export it as CSV (in Numbers: File > Export To > CSV…)"
IWORK = {".numbers": ("a Numbers spreadsheet", _NUMBERS_CSV),
         ".pages": ("a Pages document", f"copy its table into Numbers and {_NUMBERS_CSV}"),
         ".key": ("a Keynote presentation", f"copy its table into Numbers and {_NUMBERS_CSV}")}
"""Apple's documents, a zip file or (saved as a package) a folder: told as what they are, and how to get a CSV."""
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zX": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
SYSTEM_FOLDERS = frozenset({"$recycle.bin", "recycler", "system volume information"})
"""Folders Windows keeps on a drive or USB stick (the recycle bin, restore points): no photos of the folder's."""
JSONL_EXTENSIONS = frozenset({".jsonl", ".ndjson", ".jsonlines"})
MAX_DESCRIPTION_LENGTH = 20_000
MAX_CSV_FIELD = 64 * 2**20
"""Longest CSV cell read (characters): the csv module's default, 128 Ki, would skip rows with a long title
or description that tagkit can simply cut. Raised process-wide (csv has no per-reader setting), never lowered."""
DELIMITER_CANDIDATES = (",", "\t", ";", "|", "\u061b")  # ؛: Excel's list separator on a Persian Windows
DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "|", "\u061b": "Persian semicolon (؛)"}
_SCHEME = r"[a-zA-Z][a-zA-Z0-9+.-]*://"
_URL = re.compile(rf"(?:{_SCHEME}|//|data:)")
_SEVERAL_URLS = re.compile(rf",\s*(?={_SCHEME}|//)")  # WooCommerce `Images`: `https://…, https://…`
_ARABIC_SCRIPT = re.compile(r"[\u0600-\u06ff]{2}")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_NUL_ESCAPE = re.compile(r"\\u0000")
_PAIR_NAME = re.compile(r"(attribute\s*\d+)\s+name", re.IGNORECASE)  # WooCommerce: `Attribute 1 name`
_PAIR_VALUES = ("value(s)", "values", "value")  # ... and `Attribute 1 value(s)`

Item = Product | Problem


def note(file: str, row: int | None, field: str | None, message: str) -> Problem:
    """A Problem that is only information (nothing lost or changed): `info` is True."""
    return Problem(file, row, field, message, info=True)


def read_input(
    path: str | Path, mapping: Mapping | None = None, products: str | Path | None = None,
    ids: set[str] | None = None, labels: bool = True,
) -> Iterator[Item]:
    """Products from a file (`read_products`) or a folder of images (`read_folder`, which fills `ids`).
    Without `labels` (`predict`), label columns the mapping names but the file lacks are a note, not a problem.

    Raises FileNotFoundError for a path that is not there, ValueError for `products` with a file.
    """
    path = Path(path)
    if path.is_dir():
        return read_folder(path, products=products, mapping=mapping, ids=ids, labels=labels)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    if not path.is_file():  # read twice (its format sniffed, then read): a stream cannot be
        raise FileNotFoundError(f"{path} is a pipe or a device, not a file: save what it gives to a file first")
    if products is not None:
        raise ValueError(f"a products file ({products}) goes with a folder of images, but {path} is a file")
    return read_products(path, mapping, labels=labels)


def read_products(path: str | Path, mapping: Mapping | None = None, labels: bool = True) -> Iterator[Item]:
    """Stream the products of a CSV/TSV, JSON Lines or JSON array file, with a Problem per bad row.

    The format comes from `mapping.format`, else the extension (.csv .tsv .txt / .jsonl .ndjson /
    .json), else the first character. CSV and JSON Lines are read line by line in constant memory
    (besides the ids seen, for duplicates); a JSON array is read whole. Raises FileNotFoundError
    when the file is not there. A CSV file without a title, description or image column is not read (a
    Problem says why): its products could not be placed.
    """
    return iter(_ProductsReader(Path(path), mapping or Mapping(), labels=labels, alone=True))


def read_folder(
    folder: str | Path, products: str | Path | None = None, mapping: Mapping | None = None,
    ids: set[str] | None = None, labels: bool = True,
) -> Iterator[Item]:
    """A Product per image under `folder` (recursive, sorted, hidden files and folders and
    Windows' recycle bin and System Volume Information skipped).

    The id is the image path relative to the folder (`shoes/12.jpg`). With a `products` file, each
    of its rows is joined to an image by its image path (resolved, relative to the folder, or just
    the file name) or by its id (= relative path, file name or file name without extension); a
    joined product keeps the file's id (when the file has an id column) and gets its title,
    description, category and tags, and its `source`/`row` point at its row in the products file.
    Rows matching no image are reported and left out. The folder listing and the joined rows are
    held in memory. `ids`, when given, gets the ids of all the folder's products before the first is yielded.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: {folder}")
    if products is not None and not Path(products).is_file():
        raise FileNotFoundError(f"no such products file: {products}")
    return _read_folder(folder, None if products is None else Path(products), mapping or Mapping(),
                        set() if ids is None else ids, labels)


# -- decoding ------------------------------------------------------------------------------


READ_STOPPED = "not UTF-8: reading stopped"  # the cause of the Problem of a file read only up to a line


class _NotUtf8(Exception):
    """Line `line` of a file (`raw`, its bytes, line end kept) could not be decoded as UTF-8 from byte `position`;
    `utf8_before`: UTF-8 letters were decoded before that line."""

    def __init__(self, line: int, raw: bytes, position: int, utf8_before: bool = False) -> None:
        super().__init__(line)
        self.line = line
        self.raw = raw
        self.position = position
        self.utf8_before = utf8_before

    def reason(self) -> str:
        """Which line is not UTF-8, what the file looks saved as, and how to save it as UTF-8 (for a UTF-8 file but
        for a few bytes, where they are: a row pasted from another file, a file cut short)."""
        if self.stray:
            return self.stray
        guess = _guess_encoding(self.raw)
        byte = self.raw[self.position] if self.position < len(self.raw) else 0
        why = ("has NUL bytes between its letters" if guess == "UTF-16" else
               f"has a byte (0x{byte:02X}) that UTF-8 cannot decode")
        return (f"not UTF-8: line {self.line} {why}; the file looks saved as {guess}. Save it as UTF-8 (Excel: "
                "'CSV UTF-8'; LibreOffice: character set 'Unicode (UTF-8)') and read it again")

    @cached_property
    def stray(self) -> str | None:
        """What to say of a UTF-8 file (letters of its own decoded) but for a few bytes; None for another file."""
        if _looks_utf16(self.raw):
            return None
        text = self.raw.decode("utf-8", "surrogateescape")  # a byte UTF-8 cannot decode is a lone surrogate
        bad = sum("\udc80" <= c <= "\udcff" for c in text)
        utf8 = self.utf8_before or any("\x7f" < c < "\udc80" or c > "\udcff" for c in text)
        if not (utf8 and 0 < bad <= _STRAY_BYTES and self.position < len(self.raw)):
            return None
        before = self.raw[: self.position].decode("utf-8")
        after = f", after {shown(before[-20:].lstrip())}" if before.strip() else ""
        if _cut_short(self.raw[self.position :]):
            return (f"not UTF-8: the file ends in the middle of a character (line {self.line}{after}): cut short? "
                    "Copy or download it again")
        byte = f"one byte (0x{self.raw[self.position]:02X})" if bad == 1 else f"{bad} bytes"
        return (f"not UTF-8: {byte} of line {self.line}, at column {len(before) + 1}{after}, "
                f"{'is' if bad == 1 else 'are'} not UTF-8 in a file that is: a row pasted from a file in another "
                "encoding? Type that text again and read the file again")

    def problem(self, label: str) -> Problem:
        before = "; the rows before it were read" if self.line > 1 else ""
        why = "" if self.stray else ", since in the wrong encoding every later row would be garbled"
        return Problem(
            label, self.line, None,
            f"{self.reason()}. Reading stopped at line {self.line}{why}{before}",
            skipped=True, cause=READ_STOPPED,
        )


_STRAY_BYTES = 3  # a line UTF-8 but for this many bytes at most, in a UTF-8 file: a stray row, not another encoding


def _looks_utf16(raw: bytes) -> bool:
    """Whether a line is UTF-16: its byte-order mark, or a NUL byte beside most letters."""
    return raw.startswith((b"\xff\xfe", b"\xfe\xff")) or raw.count(b"\x00") * 4 > len(raw)


def _guess_encoding(raw: bytes) -> str:
    if _looks_utf16(raw):
        return "UTF-16"
    if _ARABIC_SCRIPT.search(raw.decode("cp1256", errors="replace")):
        return "Windows-1256 (Persian/Arabic Windows)"
    return "Windows-1252, Latin-1 or Mac OS Roman"


def _cut_short(tail: bytes) -> bool:
    """Whether `tail`, the bytes of a file from the first one UTF-8 cannot decode, is a character cut short."""
    try:
        tail.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start == 0 and error.reason == "unexpected end of data"
    return False


class _Lines:
    """The decoded lines of a binary file (BOM dropped); `count` = lines read so far. A file whose lines end in
    a carriage return alone (classic Mac OS, old Excel for Mac) is cut at those (`_raw_lines`).

    Raises _NotUtf8 at the first line that is not UTF-8. Sets `nul_seen` when a line has NUL bytes.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.count = 0
        self.nul_seen = False
        self.utf8_seen = False  # a line before had letters UTF-8 decoded (not ASCII)

    def __iter__(self) -> Iterator[str]:
        for raw in _raw_lines(self.stream):
            self.count += 1
            if self.count == 1:
                if raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                elif _looks_utf16(raw):
                    raise _NotUtf8(1, raw, 0)  # UTF-16: its NULs would pass as UTF-8
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _NotUtf8(self.count, raw, error.start, self.utf8_seen) from None
            self.utf8_seen = self.utf8_seen or not text.isascii()
            if "\x00" in text:
                self.nul_seen = True
            yield text


def _raw_lines(stream: BinaryIO) -> Iterator[bytes]:
    """The lines of a binary stream, ends kept. A stream whose first line ends in a carriage return alone (CR line
    ends: its first CR comes before any line feed, and no LF follows it) is cut at every CR, LF and CRLF: a line
    break in a quoted cell (LF, as Excel for Mac writes it) is then a line the csv module joins to its row."""
    first = stream.readline()
    cr = first.find(b"\r")
    if cr < 0 or first[cr + 1 : cr + 2] == b"\n":
        if first:
            yield first
        yield from stream
        return
    rest = first
    for chunk in iter(lambda: stream.read(2**20), b""):
        lines = (rest + chunk).splitlines(keepends=True)
        rest = lines.pop()  # (a CR at the end of a chunk may be the first half of a CRLF)
        yield from lines
    yield from rest.splitlines(keepends=True)


def decode_text(raw: bytes) -> str:
    """A whole file's text (a UTF-8 byte-order mark dropped); raises ValueError saying which line is not UTF-8, what
    the file looks saved as and how to save it as UTF-8 (as the products reader says it)."""
    try:
        return _decode_whole(raw)
    except _NotUtf8 as error:
        raise ValueError(error.reason()) from None


def _decode_whole(raw: bytes) -> str:
    """A whole file's text; raises _NotUtf8 with the line of the first undecodable byte."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _NotUtf8(1, raw[: raw.find(b"\n") + 1 or None], 0)
    raw = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw  # the byte-order mark: not counted in the line
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line_start = raw.rfind(b"\n", 0, error.start) + 1
        line_end = raw.find(b"\n", error.start)
        line = raw[line_start : line_end + 1 if line_end >= 0 else None]
        raise _NotUtf8(raw.count(b"\n", 0, error.start) + 1, line, error.start - line_start,
                       not raw[:line_start].isascii()) from None


# -- one products file -----------------------------------------------------------------------


class _ProductsReader:
    """Reads one products file; `has_id_column` is known once the header or first record is read. `alone`: the
    file is the whole input (not the titles of a folder of images)."""

    def __init__(self, path: Path, mapping: Mapping, labels: bool = True, alone: bool = False) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        self.path = path
        self.label = str(path)
        self.mapping = mapping
        self.alone = alone
        self.builder = _RecordBuilder(self.label, path, mapping, labels, alone)

    @property
    def has_id_column(self) -> bool:
        return bool(self.builder.id_keys)

    def __iter__(self) -> Iterator[Item]:
        self.continued = _Continued(self._items(), self.builder)
        return iter(self.continued)

    def _items(self) -> Iterator[Item]:
        with self.path.open("rb") as stream:
            start = stream.read(4)
        if start in WORKBOOKS:
            iwork = IWORK.get(self.path.suffix.lower()) if start == b"PK\x03\x04" else None
            kind, advice = iwork or (WORKBOOKS[start], "save it as CSV UTF-8 (in Excel: File > Save As > CSV UTF-8)")
            yield Problem(self.label, None, None, f"this is {kind}, not a products file: tagkit reads CSV, TSV, JSON "
                          f"Lines and JSON; {advice}", skipped=True)
            return
        packed = next((name for magic, name in COMPRESSED.items() if start.startswith(magic)), None)
        if packed:
            yield Problem(self.label, None, None, f"this file is {packed}-compressed: unpack it first, then give "
                          "tagkit the file inside", skipped=True)
            return
        file_format = self.mapping.format or _detect_format(self.path)
        if file_format in ("csv", "tsv"):
            yield from self._csv(file_format)
        elif file_format == "jsonl":
            yield from self._jsonl()
        else:
            yield from self._json()

    # CSV / TSV -------------------------------------------------------------------------------

    def _csv(self, file_format: str) -> Iterator[Item]:
        label = self.label
        with self.path.open("rb") as stream:
            lines = _Lines(stream)
            line_iter = iter(lines)
            try:
                header_line = next(line_iter, None)
            except _NotUtf8 as error:
                yield error.problem(label)
                return
            hint_line, hinted = header_line, excel_delimiter(header_line) if header_line else None
            if hinted:  # Excel's `sep=;` line: the header comes after it
                try:
                    header_line = next(line_iter, None)
                except _NotUtf8 as error:
                    yield error.problem(label)
                    return
            if header_line is None or not header_line.strip():
                message = ("the file is empty: no header line, no products" if header_line is None else
                           f"line {lines.count} is empty; the first line must name the columns (id, title, ...)")
                yield Problem(label, None if header_line is None else lines.count, None, message, skipped=True)
                return
            delimiter = self.mapping.delimiter or hinted or (
                "\t" if file_format == "tsv" else sniff_delimiter(header_line))
            if csv.field_size_limit() < MAX_CSV_FIELD:
                csv.field_size_limit(MAX_CSV_FIELD)
            record_lines: list[str] = []  # the lines of the record being read (and as they were in the file)
            raw_lines: list[str] = []
            first = [hint_line, header_line] if hinted else [header_line]
            reader = csv.reader(_bare_cr_as_space(chain(first, line_iter), record_lines, raw_lines),
                                delimiter=delimiter)
            if hinted:
                next(reader)  # read, not used: the line numbers count it
            header_cells = next(reader)
            header, notes = _header(label, header_cells)
            yield from notes
            yield from self.builder.resolve(header, from_header=True)
            if self.alone and not self.builder.has_input_column:
                return  # resolve said why: nothing read, nothing stored
            width = len(header)
            header_again = [cell.strip() for cell in header_cells]
            rows = 0
            while True:
                start = reader.line_num + 1
                record_lines.clear()
                raw_lines.clear()
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except _NotUtf8 as error:
                    yield error.problem(label)
                    return
                except csv.Error as error:
                    if "field limit" in str(error):
                        yield Problem(label, start, None, f"a field is over {MAX_CSV_FIELD:,} characters long: "
                                      f"lines {start} to {reader.line_num} skipped", skipped=True)
                        continue
                    yield Problem(label, start, None, f"could not read this row ({error}): a quote (\") "
                                  f"that is never closed? Lines {start} to {reader.line_num} skipped",
                                  skipped=True)
                    continue
                if not any(value.strip() for value in row):
                    continue  # a blank line
                if [value.strip().lstrip("\ufeff") for value in row] == header_again:
                    yield note(label, start, None, "the header line again (files joined one after another?): "
                               "not a product, skipped")
                    continue
                rows += 1
                if len(row) >= width and reader.line_num > start and not _quoted_as_written(record_lines, row):
                    yield Problem(label, start, None, f"lines {start} to {reader.line_num} read as one row: a quote "
                                  "(\") opened before a line break closes in the middle of a later field, so a "
                                  f"quote that is never closed? Lines {start} to {reader.line_num} skipped",
                                  skipped=True)
                    continue
                if lines.nul_seen:
                    lines.nul_seen = False
                    yield from _remove_nul(label, start, header, row)
                joined = _rows_joined_by_cr(raw_lines, width, delimiter) if len(row) > width else None
                if joined:
                    yield note(label, start, None, f"line {start} holds {len(joined)} rows, ended by a carriage "
                               "return alone (CR, the old Mac line end) inside the file: read as rows of their own")
                    for part in joined:
                        yield from self.builder.build(dict(zip(header, map(plain_cell, part), strict=True)), start)
                    continue
                if len(row) != width:
                    problem, row = _fit_row(label, start, reader.line_num, header, row, delimiter)
                    if problem:
                        yield problem
                    if row is None:
                        continue
                # a cell tagkit's own CSV exports protected from spreadsheets (`safe_cell`) as it was
                yield from self.builder.build(dict(zip(header, map(plain_cell, row), strict=True)), start)
            if not rows:
                yield Problem(label, None, None, "the file has a header line but no products")

    # JSON Lines ------------------------------------------------------------------------------

    def _jsonl(self) -> Iterator[Item]:
        label = self.label
        resolved = False
        records = 0
        with self.path.open("rb") as stream:
            lines = _Lines(stream)
            try:
                for text in lines:
                    line = lines.count
                    if not text.strip():
                        continue
                    if lines.nul_seen:
                        lines.nul_seen = False
                        count = text.count("\x00")
                        text = text.replace("\x00", "")
                        yield Problem(label, line, None, f"{count} NUL byte(s) removed from the line")
                    record, nuls = _parse_json_line(label, line, text)
                    if nuls:
                        yield Problem(label, line, None, f"{nuls} NUL character(s) (written \\u0000) removed")
                    if isinstance(record, Problem):
                        yield record
                        continue
                    records += 1
                    if not resolved:
                        resolved = True
                        yield from self.builder.resolve(list(record), from_header=False)
                    yield from self.builder.build(record, line)
            except _NotUtf8 as error:
                yield error.problem(label)
                return
        if not records:
            yield Problem(label, None, None, "the file holds no products (no JSON object lines)")

    # JSON array ------------------------------------------------------------------------------

    def _json(self) -> Iterator[Item]:
        label = self.label
        try:
            text = _decode_whole(self.path.read_bytes())
        except _NotUtf8 as error:
            yield error.problem(label)
            return
        if "\x00" in text:
            yield Problem(label, None, None, f"{text.count(chr(0))} NUL byte(s) removed from the file")
            text = text.replace("\x00", "")
        if not text.strip():
            yield Problem(label, None, None, "the file is empty: no products", skipped=True)
            return
        try:
            data, nuls = _loads(text)
        except RecursionError:
            yield Problem(label, None, None, "not readable JSON: it is nested too deeply (lists or objects inside "
                          "one another thousands of times); nothing read from this file", skipped=True)
            return
        except json.JSONDecodeError as error:
            if error.msg == "Extra data" and text.lstrip().startswith("{"):
                yield from self._jsonl()  # one object per line, in a .json file
                return
            yield Problem(label, error.lineno, None, f"not valid JSON: {error.msg} at line {error.lineno}, "
                          f"column {error.colno}; nothing read from this file", skipped=True)
            return
        if nuls:
            yield Problem(label, None, None, f"{nuls} NUL character(s) (written \\u0000) removed from the file")
        if not isinstance(data, list):
            yield Problem(label, None, None, f"the file holds {_json_kind(data)}, not a list of products "
                          "([{...}, ...]) or one product object per line (JSON Lines)", skipped=True)
            return
        resolved = False
        for number, record in enumerate(data, 1):
            if not isinstance(record, dict):
                yield Problem(label, number, None, f"item {number} is {_json_kind(record)}, not a product "
                              "object {...}; skipped", skipped=True)
                continue
            if not resolved:
                resolved = True
                yield from self.builder.resolve(list(record), from_header=False)
            yield from self.builder.build(record, number)
        if not resolved:
            yield Problem(label, None, None, "the file holds no products (no JSON objects in the list)")


def _detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in JSONL_EXTENSIONS:
        return "jsonl"
    if suffix == ".tsv":
        return "tsv"
    if suffix in (".csv", ".txt", ".tab", ".psv"):
        return "csv"
    with path.open("rb") as stream:
        start = stream.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    if suffix == ".json" or start.startswith(b"["):
        return "json"  # a .json starting with `{` may be JSON Lines: _json() falls back
    return "jsonl" if start.startswith(b"{") else "csv"


def _bare_cr_as_space(lines: Iterable[str], seen: list[str], raw: list[str]) -> Iterator[str]:
    """The lines with each carriage return that does not end its line turned into a space; each is also appended
    to `seen`, and as it was to `raw` (the caller clears both before each record)."""
    for line in lines:
        raw.append(line)
        body = line.rstrip("\r\n")
        if "\r" in body:
            line = body.replace("\r", " ") + line[len(body):]
        seen.append(line)
        yield line


def _rows_joined_by_cr(raw: list[str], width: int, delimiter: str) -> list[list[str]] | None:
    """The rows of a one-line record that a carriage return alone (the old Mac line end) joins, when each part
    has `width` fields (a file whose rows end in CR pasted into one whose rows end otherwise); else None."""
    body = raw[0].rstrip("\r\n") if len(raw) == 1 else ""
    if "\r" not in body:
        return None
    parts = [next(csv.reader([part], delimiter=delimiter), []) for part in body.split("\r") if part.strip()]
    return parts if len(parts) > 1 and all(len(part) == width for part in parts) else None


_EXCEL_HINT = re.compile(r"sep=(.)[,;\t|\u061b]*", re.IGNORECASE | re.DOTALL)  # (empty cells after it: re-saved)


def excel_delimiter(first_line: str) -> str | None:
    """The delimiter a first line `sep=;` names (Excel writes and reads such a line), if it is one tagkit reads."""
    hint = _EXCEL_HINT.fullmatch(first_line.rstrip("\r\n").rstrip(" "))
    return hint[1] if hint and hint[1] in DELIMITER_NAMES else None


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a CSV header line: the most frequent of , tab ; | ؛ outside quotes."""
    unquoted = re.sub(r'"[^"]*"', "", header_line)
    counts = [(unquoted.count(candidate), -rank, candidate)
              for rank, candidate in enumerate(DELIMITER_CANDIDATES)]
    best = max(counts)
    return best[2] if best[0] else ","


def _header(label: str, cells: list[str]) -> tuple[list[str], list[Problem]]:
    """Column names (stripped, composed, mended where a spreadsheet mangled them; blank ones named, repeated ones
    numbered) and notes about them."""
    names: list[str] = []
    notes: list[Problem] = []
    seen: set[str] = set()
    mended: list[str] = []
    for number, cell in enumerate(cells, 1):
        name = nfc(cell.strip()) or f"column {number}"
        if (fixed := unmangled(name)) is not None:
            mended.append(f"{shown(name)} is {shown(fixed)}")
            name = fixed
        if name in seen:
            renamed = f"{name} ({number})"
            notes.append(Problem(label, 1, name, f"column {shown(name)} appears again as column {number}; "
                                 f"that one is read as {shown(renamed)}"))
            name = renamed
        seen.add(name)
        names.append(name)
    if mended:
        notes.insert(0, note(label, 1, None, "column names a spreadsheet read in a Windows or Mac code page and saved "
                             f"again, mended: {', '.join(mended)}"))
    return names, notes


def _remove_nul(label: str, row: int, header: list[str], values: list[str]) -> Iterator[Problem]:
    """Drop NUL bytes from the row's values in place, one Problem per field that had some."""
    for index, value in enumerate(values):
        if "\x00" in value:
            values[index] = value.replace("\x00", "")
            field = header[index] if index < len(header) else None
            yield Problem(label, row, field, f"{value.count(chr(0))} NUL byte(s) removed")


def _quoted_as_written(lines: list[str], row: list[str]) -> bool:
    """Whether each field of this CSV record that holds a line break is written in the record's lines as one
    quoted field. A quote left open runs on to the next quote in the file and, when that one closes in the
    middle of a field, the field read is not written anywhere as such."""
    text = "".join(lines).replace("\r\n", "\n")
    return all('"' + value.replace("\r\n", "\n").replace('"', '""') + '"' in text
               for value in row if "\n" in value or "\r" in value)


def _fit_row(
    label: str, start: int, end: int, header: list[str], row: list[str], delimiter: str
) -> tuple[Problem | None, list[str] | None]:
    """A row with the wrong number of fields: (the Problem, the row to use or None to skip it)."""
    width = len(header)
    span = (f" The row runs from line {start} to line {end}: a quote (\") that is never closed?"
            if end > start else "")
    if len(row) > width:
        if not any(value.strip() for value in row[width:]):
            return None, row[:width]  # trailing empty fields, e.g. `a,b,c,`
        return Problem(
            label, start, None,
            f"expected {width} fields (one per column), found {len(row)}: a value containing a "
            f"{DELIMITER_NAMES[delimiter]} that is not in quotes?{span} Row skipped, since its values "
            "may sit under the wrong columns",
            skipped=True,
        ), None
    missing = header[len(row):]
    if end > start:  # fewer fields over several lines: an open quote swallowed the rows after it
        return Problem(
            label, start, None,
            f"expected {width} fields (one per column), found {len(row)}.{span} Row skipped, since the "
            "rows after it were read as part of it",
            skipped=True,
        ), None
    return Problem(
        label, start, None,
        f"expected {width} fields (one per column), found {len(row)}: {', '.join(missing)} missing.{span} "
        "Row kept with those fields empty",
    ), row + [""] * len(missing)


def _parse_json_line(label: str, line: int, text: str) -> tuple[dict[str, Any] | Problem, int]:
    """A JSON Lines record, or the problem that skips its line; and the NULs removed from it (`_loads`)."""
    try:
        record, nuls = _loads(text)
    except RecursionError:
        return Problem(label, line, None, "not readable JSON: nested too deeply (lists or objects inside one "
                       "another thousands of times); line skipped", skipped=True), 0
    except json.JSONDecodeError as error:
        return Problem(label, line, None, f"not valid JSON: {error.msg.removesuffix(' at')} at column {error.colno}; "
                       "line skipped", skipped=True), 0
    if not isinstance(record, dict):
        return Problem(label, line, None, f"the line holds {_json_kind(record)}, not a product object "
                       "{...}; line skipped", skipped=True), nuls
    return record, nuls


def _loads(text: str) -> tuple[Any, int]:
    """`json.loads`, except that a number too long for Python's int (over 4,000 digits) stays the text it is,
    every lone surrogate (from a `\\udXXX` escape) becomes U+FFFD, and NUL characters written `\\u0000` are
    removed; returns the value and how many NULs were removed."""
    data = json.loads(text, parse_int=_json_int, parse_float=_json_float)
    if _SURROGATE_ESCAPE.search(text):
        data = _map_strings(data, lambda s: s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace"))
    removed = 0
    if _NUL_ESCAPE.search(text):
        def without_nul(value: str) -> str:
            nonlocal removed
            removed += value.count("\x00")
            return value.replace("\x00", "")

        data = _map_strings(data, without_nul)
    return data, removed


def _json_int(text: str) -> int | str:
    return int(text) if len(text) <= 4000 else text  # Python refuses to read longer ones (its 4,300-digit limit)


def _json_float(text: str) -> float | str:
    """A JSON number with a point or an exponent: a float when one holds it as written, else its text (`1e400`
    would be `inf`, and `1.0000000000000000000001` the id `1`)."""
    value = float(text)
    return value if math.isfinite(value) and len(text.lstrip("-").replace(".", "").lstrip("0")) <= 15 else text


def _map_strings(value: Any, fix: Callable[[str], str]) -> Any:
    """A parsed JSON value with `fix` applied to every string in it, keys included."""
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, list):
        return [_map_strings(item, fix) for item in value]
    if isinstance(value, dict):
        return {_map_strings(key, fix): _map_strings(item, fix) for key, item in value.items()}
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "one JSON object"
    if isinstance(value, list):
        return "a JSON list"
    if isinstance(value, str):
        return "a JSON string"
    if value is None:
        return "null"
    return f"a JSON {type(value).__name__}"


class _Continued:
    """A file's items with each continuation row (`_RecordBuilder.continuations`) merged into the product above it:
    a product is held back until the next record shows whether it continues it."""

    def __init__(self, items: Iterator[Item], builder: _RecordBuilder) -> None:
        self.items = items
        self.builder = builder
        self.further_images: list[str] = []  # the photos of continuation rows whose product has one already

    def __iter__(self) -> Iterator[Item]:
        held: list[Item] = []  # the last product (always the last item), after its problems
        waiting: list[Problem] = []  # problems of the record being read
        merged = 0
        for item in self.items:
            if isinstance(item, Problem):
                waiting.append(item)
                if item.skipped and item.row is not None:  # a row left out: the next is not "right after" one
                    self.builder.last_id = None
            elif held and item.row in self.builder.continuations and held[-1].id == item.id:
                if held[-1].image and item.image and item.image != held[-1].image:
                    self.further_images.append(item.image)
                held[-1] = _filled_in(held[-1], item)
                held[-1:-1] = waiting
                waiting = []
                merged += 1
            else:
                yield from held
                held, waiting = [*waiting, item], []
        yield from held
        yield from waiting
        if merged:
            yield note(self.builder.label, None, (self.builder.id_keys or (None,))[0],
                       f"{merged:,} row(s) repeat the id of the row above with neither title nor description (a shop "
                       "export's variant or extra-photo rows): read as more of that product, they fill in only the "
                       "image, category and tags its first row left empty")


def _filled_in(product: Product, more: Product) -> Product:
    """`product` with the image, category and tags it lacks taken from `more`, a continuation row of it."""
    filled = {name: getattr(more, name) for name in ("image", "category", "tags")
              if not getattr(product, name) and getattr(more, name)}
    return replace(product, **filled, keeps=product.keeps - set(filled)) if filled else product


# -- records to products ----------------------------------------------------------------------


class _RecordBuilder:
    """Turns the records (column -> value) of one file into Products, checking each field."""

    def __init__(self, label: str, path: Path, mapping: Mapping, labels: bool = True, alone: bool = True) -> None:
        self.label = label
        self.path = path
        self.mapping = mapping
        self.labels = labels
        self.alone = alone  # False: the titles and labels of a folder of images, which gives the images
        folder = mapping.image_folder or path.parent
        self.image_base = os.path.abspath(folder)
        self.image_archive = (os.path.abspath(os.path.join(path.parent, os.path.expanduser(mapping.image_archive)))
                              if mapping.image_archive else None)
        self.skip = frozenset(value.casefold() for value in mapping.skip_values)
        self.separator = mapping.tag_separator
        self.value_separator: str | None = None  # splits one attribute's values: CSV cells only
        self.keys: dict[str, tuple[str, ...]] = {name: () for name in CANONICAL_FIELDS}
        self.attributes: list[tuple[str, tuple[str, ...]]] = []
        self.pairs: list[tuple[str, str]] = []  # (name column, values column): an attribute named per row
        self.used: set[str] = set()
        self.seen: dict[str, int] = {}
        self.has_title_column = False
        self.has_input_column = True  # a title, description or image column (known once resolved)
        self.hinted: set[str] = set()  # the tag-format notes given (`_hint_format`): once per file
        self.last_id: str | None = None  # the id of the record built last
        self.continuations: set[int] = set()  # rows that are more of the product above (`_Continued`)
        self.folders = _Listings()

    @property
    def id_keys(self) -> tuple[str, ...]:
        return self.keys["id"]

    # once per file ---------------------------------------------------------------------------

    def resolve(self, columns: list[str], from_header: bool) -> Iterator[Problem]:
        """Match the mapping to the file's columns (CSV header, or the keys of the first JSON record)."""
        label, mapping = self.label, self.mapping
        exact = set(columns)
        folded: dict[str, str] = {}
        for column in columns:
            folded.setdefault(spelling_key(column), column)  # a column name spelt otherwise is the same
        where = "the file" if from_header else "the first record"

        def find(name: str) -> str | None:
            return name if name in exact else folded.get(spelling_key(name))

        def missing(names: Iterable[str], purpose: str, needed: bool = True) -> Problem:
            names = list(names)
            quoted = ", ".join(shown(name) for name in names)
            what = (f"column {quoted} ({purpose}) is" if len(names) == 1
                    else f"columns {quoted} ({purpose}) are")
            return Problem(label, None, names[0] if len(names) == 1 else None,
                           f"{what} not in {where}{did_you_mean(names[0], columns)}; "
                           f"its columns are: {', '.join(columns)}", info=not needed)

        for name in CANONICAL_FIELDS:
            wanted, explicit = mapping.columns(name)
            found = [key for key in map(find, wanted) if key]
            if name == "category" and explicit and len(wanted) > 1:
                absent = [column for column in wanted if not find(column)]
                if absent:
                    yield missing(absent, "category levels", needed=self.labels)
            elif explicit and wanted and not found:
                # (a folder's products file needs no image column: the folder gives the images)
                yield missing(wanted, f"mapped to {name}", needed=name in ("id", "title") or (
                    name == "image" and self.alone) or (self.labels and name in ("category", "tags")))
            if not from_header and name != "id":
                # JSON records need not all have the same keys: look for the mapped ones in each
                # (whether the file has ids at all is decided by the first record)
                found = [find(column) or column for column in wanted]
            self.keys[name] = tuple(dict.fromkeys(found))
        for tag_name, wanted in mapping.attributes.items():
            found = [key for key in map(find, wanted) if key]
            if not found:
                yield missing(wanted, f"for tag {shown(tag_name)}", needed=self.labels)
            if not from_header:
                found = [find(column) or column for column in wanted]
            self.attributes.append((tag_name, tuple(dict.fromkeys(found))))
        self.value_separator = self.separator if from_header else None
        self.used = {key for keys in self.keys.values() for key in keys}
        self.used.update(key for _, keys in self.attributes for key in keys)
        yield from self._resolve_pairs(columns, find) if from_header else ()
        self.has_title_column = any(find(key) for key in self.keys["title"])
        has_image_column = any(find(key) for key in self.keys["image"])
        self.has_description_column = any(find(key) for key in self.keys["description"])
        self.has_input_column = (self.has_title_column or has_image_column or not from_header
                                 or self.has_description_column)

        if not self.keys["id"]:
            by_line = f"the file's folder and name and its line number ({line_id(self.path, 12)})"
            source = f"its image path (as written), or {by_line} when it has none" if has_image_column else by_line
            wanted, explicit = mapping.columns("id")
            if not explicit or wanted:
                yield note(label, None, None, f"no id column in {where}: each product's id is {source}. "
                           "Map an id column (--map id=COLUMN, or input.id in tagkit.yaml) to keep ids "
                           "stable")
        if not self.has_title_column:
            if has_image_column or (not self.alone and not self.has_description_column):
                yield note(label, None, None, "no title column: stored products keep their titles; new ones will "
                           "be placed by their images only")
            elif self.has_input_column and from_header:
                yield note(label, None, None, "no title column: stored products keep their titles; new ones will "
                           "be placed by their descriptions")
            else:
                yield Problem(label, None, None, f"no title, description or image column in {where}: nothing "
                              "to place the products by" + ("; nothing was read" if from_header else "")
                              + ". Map one (--map title=COLUMN, or input.title in tagkit.yaml); the columns are: "
                              f"{', '.join(columns)}")
        unused = [column for column in columns if column not in self.used]
        if unused:
            # a misspelt field name (`titel`, `catgory`) is named beside the field it was probably meant for
            unfound = [name for field in CANONICAL_FIELDS if not self.keys[field] and not mapping.columns(field)[1]
                       for name in mapping.columns(field)[0]]  # (a mapping that names no column is told above)
            yield note(label, None, None, "columns not mapped to a tagkit field, kept as extra data: "
                       + ", ".join(f"{column}{did_you_mean(column, unfound)}" for column in unused))

    def _resolve_pairs(self, columns: list[str], find: Callable[[str], str | None]) -> Iterator[Problem]:
        """Attribute columns that come in pairs, the attribute's name in one and its values in the other, as
        WooCommerce exports them (`Attribute 1 name`, `Attribute 1 value(s)`): read as `name: value` tags, unless
        mapped otherwise (then a warning: the values column holds another attribute's values row by row)."""
        for column in columns:
            match = _PAIR_NAME.fullmatch(column.strip())
            values = next((found for suffix in _PAIR_VALUES if (found := find(f"{match[1]} {suffix}"))), None) \
                if match else None
            if values is None:
                continue
            if column in self.used or values in self.used:
                yield Problem(self.label, None, values, f"column {shown(values)} holds the values of the attribute "
                              f"that {shown(column)} names, row by row (a WooCommerce export): mapped to one tag "
                              "name, it gives other attributes' values under that name. Leave both unmapped: "
                              "tagkit reads them as name: value pairs")
                continue
            self.pairs.append((column, values))
            self.used.update((column, values))
        if self.pairs:
            yield note(self.label, None, None, "attribute names and values read in pairs of columns: "
                       + ", ".join(f"{name} / {values}" for name, values in self.pairs))

    # once per record -------------------------------------------------------------------------

    def build(self, record: dict[str, Any], row: int) -> Iterator[Item]:
        """The Product of one record, after a Problem for each thing wrong with it."""
        try:
            items = list(self._build(record, row))
        except RecursionError:  # a value of lists in lists thousands deep: one bad row, not a crash
            items = [Problem(self.label, row, None, "a value is nested too deeply (lists or objects inside one "
                             "another thousands of times); row skipped", skipped=True)]
        yield from items

    def _build(self, record: dict[str, Any], row: int) -> Iterator[Item]:
        label, keys = self.label, self.keys
        problems: list[Problem] = []
        for key, value in record.items():  # the columns tagkit reads (others are kept as they are, as extra data)
            if key in self.used and key not in keys["image"]:  # (a photo's name is matched in either form)
                value = record[key] = _map_strings(value, nfc)  # text a Mac wrote decomposed (NFD) is one text
            if key in self.used and isinstance(value, str):
                read, damage, cause = spreadsheet_damage(value)
                if damage:
                    record[key] = read
                    problems.append(Problem(label, row, key, damage, info=cause is None, cause=cause))
        image_text, image_key = _first(record, keys["image"])
        if keys["id"]:
            product_id, id_key = _first(record, keys["id"])
            if not product_id:
                yield from problems
                yield Problem(label, row, keys["id"][0], "empty id: row skipped (every product needs an id "
                              "to be written back to the catalogue)", skipped=True)
                return
            if _SCIENTIFIC.fullmatch(product_id):
                yield Problem(label, row, id_key, f"id {shown(product_id)} is a number a spreadsheet wrote in "
                              "scientific notation, its last digits lost (two ids may now be one): row skipped. "
                              "Format the id column as Text and export the file again", skipped=True,
                              cause="an id in scientific notation")
                return
        else:
            product_id, id_key = image_text or line_id(self.path, row), None

        title, title_key = _first(record, keys["title"])
        title = _one_line(title)
        if len(title) > self.mapping.max_title_length:
            problems.append(Problem(label, row, title_key, f"title is {len(title):,} characters long; cut to "
                                    f"the first {self.mapping.max_title_length}"))
            title = _cut(title, self.mapping.max_title_length)
        description, description_key = _first(record, keys["description"])
        if "<" in description or "&" in description:
            description = strip_html(description)

        def absent(field: str) -> bool:  # the record has no column for it (JSON records may lack a key)
            return not any(key in record for key in keys[field])

        continues = (product_id == self.last_id and not title and not description.strip()
                     and bool(keys["title"] or keys["description"]))
        self.last_id = product_id
        if continues:
            self.continuations.add(row)

        keeps = {field for field, text in (("title", title), ("image", image_text), ("description", description))
                 if not text and (not self.labels or absent(field))}
        if not title and self.has_title_column and not continues:
            by = ("its description and image" if description.strip() and image_text else "its description only"
                  if description.strip() else "its image only" if image_text else
                  "nothing (it has no description or image either)")
            kept = "a title already stored is kept, else it is" if "title" in keeps else "to be"
            problems.append(note(label, row, keys["title"][0], f"{'no' if absent('title') else 'empty'} title: "
                                 f"product kept, {kept} placed by {by}"))
        if len(description) > MAX_DESCRIPTION_LENGTH:
            problems.append(Problem(label, row, description_key, f"description is {len(description):,} "
                                    f"characters long; cut to the first {MAX_DESCRIPTION_LENGTH:,}"))
            description = _cut(description, MAX_DESCRIPTION_LENGTH)

        image = self._image(image_text, image_key, row, problems) if image_text else None
        category = self._category(record, row, problems)
        paired = self._paired(record)
        tags = self._tags(record, row, problems, paired)
        if not category and absent("category"):
            keeps.add("category")
        given = {name: any(key in record for key in columns) for name, columns in self.attributes}
        given.update(dict.fromkeys((name for name, _ in paired), True))
        if absent("tags"):  # it gives the tags of its mapped attribute columns only
            keeps.add("tags")
            keeps.update(f"given:{name}" for name, present in given.items() if present)
        else:  # an attribute's columns missing (`--map attributes.usage=usgae`): its stored tags are kept
            keeps.update(f"tags:{name}" for name, present in given.items() if not present)
        extra = {key: _text(value) for key, value in record.items() if key not in self.used}

        previous = self.seen.get(product_id)
        if previous is not None and not continues:
            problems.append(Problem(label, row, id_key, f"duplicate id {shown(product_id)}: row {row} replaces "
                                    f"row {previous}"))
        if not continues:
            self.seen[product_id] = row
        yield from (replace(problem, product_id=product_id) for problem in problems)
        yield Product(id=product_id, title=title, description=description, image=image, category=category,
                      tags=tags, source=label, row=row, extra=extra, keeps=frozenset(keeps))

    def _image(self, text: str, key: str | None, row: int, problems: list[Problem]) -> str | None:
        unread = _unread_photo(text)
        if unread and self.alone:  # (a folder's products file: the folder's listing says it, and the row's join)
            problems.append(Problem(self.label, row, key, f"image {shown(text[:200])} {unread}; product kept "
                                    "without an image"))
            return None
        if ("/" in text[:2] or ":" in text) and _URL.match(text):
            return self._downloaded(text, key, row, problems)
        if os.sep == "/":
            if _WINDOWS_PATH.match(text):
                problems.append(self._windows_path(text, key, row))
                return None
            text = text.replace("\\", "/")
        if self.image_archive:
            return member_path(self.image_archive, os.path.normpath(text).lstrip("/"))
        if text.startswith("~"):
            text = os.path.expanduser(text)
        joined = os.path.join(self.image_base, text)
        # `..` after a linked folder is its target's parent, as the system goes: not undone as text (the photo's own
        # name stays as written, a link or not)
        folder, name = os.path.split(joined)
        path = (os.path.join(os.path.realpath(folder), name) if ".." in PurePath(text).parts
                else os.path.normpath(joined))
        if os.path.lexists(path):
            return path
        found, several = self.folders.on_disk(path)
        if several or nfc(found) != nfc(path):  # (a name written in another Unicode form: found without a word)
            where = os.path.dirname(found if not several else several[0])
            problems.append(note(self.label, row, key, f"image {shown(text[:200])} is not there as written; " + (
                f"{len(several)} files in {shown(where)} have that name but for case or a dot or space at its end, "
                f"as Windows sees names: {', '.join(shown(os.path.basename(p)) for p in several[:5])}; write the "
                "one meant" if several else f"{shown(os.path.basename(found))} in {shown(where)}, the one file "
                "with that name but for case or a dot or space at its end (as Windows sees names), is read")))
        return found

    def _windows_path(self, text: str, key: str | None, row: int) -> Problem:
        return Problem(self.label, row, key, f"image {shown(text[:200])} is a Windows path (it starts with a drive "
                       "letter or a \\\\computer\\share network name): write the paths relative to the products "
                       "file's folder, or give file names and set input.image_folder in tagkit.yaml; product kept "
                       "without an image")

    def _downloaded(self, url: str, key: str | None, row: int, problems: list[Problem]) -> str | None:
        """The file an image URL names: a `file://` URL's path; for a web URL (the first of a cell listing
        several, as WooCommerce's `Images`), the file of its name in the image folder, where a shop's photos
        are put when downloaded. A folder of photos matches it by that name, whether or not it is there."""
        from urllib.parse import unquote, urlparse

        url = _SEVERAL_URLS.split(url, maxsplit=1)[0].strip()
        parts = urlparse(url)
        if parts.scheme == "file":
            path = unquote(parts.path)
            if os.sep == "/" and (parts.netloc not in ("", "localhost") or _WINDOWS_PATH.match(path.lstrip("/"))):
                problems.append(self._windows_path(url, key, row))  # file:///C:/… or file://SHOPPC/Photos/…
                return None
            return os.path.abspath(path)
        name = unquote(parts.path).rsplit("/", 1)[-1] if parts.scheme != "data" else ""
        downloaded = os.path.join(self.image_base, name) if name and name not in (".", "..") else None
        as_wget_saves = f"{downloaded}?{parts.query}" if downloaded and parts.query else None
        if as_wget_saves and not os.path.isfile(downloaded or "") and os.path.isfile(as_wget_saves):
            return as_wget_saves
        if downloaded and (not self.alone or os.path.isfile(downloaded)):
            return downloaded
        where = (f": put the downloaded photos in {shown(self.image_base)} (its file name, {shown(name)}, is "
                 "looked up there; input.image_folder in tagkit.yaml names another folder)" if downloaded
                 else ", and names no file")
        problems.append(Problem(self.label, row, key, f"image {shown(url[:200])} is a URL: tagkit is offline and "
                                f"does not fetch images{where}; product kept without an image"))
        return None

    def _category(self, record: dict[str, Any], row: int, problems: list[Problem]) -> tuple[str, ...]:
        keys = self.keys["category"]
        if not keys:
            return ()
        if len(keys) == 1:
            value = record.get(keys[0])
            if isinstance(value, list):
                path = self._levels(_one_line(_text(level)) for level in value)
            else:
                paths = [_text(value)]
                if self.mapping.category_paths_separator:  # several paths in a cell: the deepest (the first of those)
                    paths = split_at(paths[0], self.mapping.category_paths_separator)
                path = max((self._levels(_one_line(level) for level in split_at(p, self.mapping.category_separator))
                            for p in paths), key=len, default=())
            if any(is_excel_error(level) for level in path):  # (a whole cell of one was read as empty before)
                problems.append(Problem(self.label, row, keys[0], f"category {shown(format_category(path))} holds a "
                                        "spreadsheet's error value (a formula that failed): read as empty",
                                        cause=ERROR_VALUE))
                return ()
            return path
        levels = [_one_line(_first(record, (key,))[0]) for key in keys]
        levels = ["" if level.casefold() in self.skip else level for level in levels]
        if "" in levels:
            cut = levels.index("")
            if any(levels[cut:]):
                problems.append(Problem(self.label, row, keys[cut], f"category level {cut + 1} is empty but "
                                        f"a deeper one is set; category cut to {levels[:cut]}"))
            levels = levels[:cut]
        return tuple(levels)

    def _levels(self, levels: Iterable[str]) -> tuple[str, ...]:
        """A path's levels, without the empty ones and those that mean "not known" (`skip_values`)."""
        return tuple(level for level in levels if level and level.casefold() not in self.skip)

    def _tags(self, record: dict[str, Any], row: int, problems: list[Problem],
              paired: list[tuple[str, list[Tag]]]) -> tuple[Tag, ...]:
        skip = self.skip
        tags: list[Tag] = []
        for tag_name, keys in self.attributes:
            for key in keys:
                values = [value for value in _values(record.get(key), self.value_separator)
                          if value.casefold() not in skip]
                if values:
                    tags.extend(Tag(tag_name, value) for value in values)
                    break
        tags.extend(tag for _, values in paired for tag in values)
        for key in self.keys["tags"]:
            value = record.get(key)
            if value not in (None, ""):
                listed = _tag_list(value, self.separator, self.label, row, key, problems)
                if isinstance(value, str):
                    self._hint_format(listed, row, key, problems)
                tags.extend(tag for tag in listed if tag.value and tag.value.casefold() not in skip)
        if any("?" in str(tag) or "__" in str(tag) or "#" in tag.value for tag in tags):
            tags = [tag for tag in tags if not self._damaged(tag, row, problems)]
        return tuple(dict.fromkeys(tags)) if len(tags) > 1 else tuple(tags)

    def _damaged(self, tag: Tag, row: int, problems: list[Problem]) -> bool:
        """Whether one tag of a cell is a spreadsheet's error value or letters lost to `?` or `_`
        (`spreadsheet_damage`); if so, a problem says it is left out."""
        for text in (tag.value, tag.name):
            cause = spreadsheet_damage(text)[2]
            if cause:
                why = (f" (the file was saved in a code page that has none of its letters; from the original, "
                       f"{SAVE_AS_UTF8})" if cause == LOST_LETTERS else "")
                problems.append(Problem(self.label, row, "tags", f"tag {shown(str(tag))} left out: {cause}{why}",
                                        cause=cause))
                return True
        return False

    def _paired(self, record: dict[str, Any]) -> list[tuple[str, list[Tag]]]:
        """The attribute named in each pair of columns (`pairs`) of this record, with its values as tags."""
        paired = []
        for name_key, values_key in self.pairs:
            name = _one_line(_text(record.get(name_key)))
            if name:
                values = _values(record.get(values_key), self.value_separator)
                paired.append((name, [Tag(name, v) for v in values if v.casefold() not in self.skip]))
        return paired

    def _hint_format(self, tags: list[Tag], row: int, key: str, problems: list[Problem]) -> None:
        """A note, once per file, when a cell's tags look written another way than tagkit reads them: several
        `name: value` in one tag (another separator), or `name=value`."""
        for tag in tags:
            if tag.name and _ANOTHER_TAG.search(tag.value) and "several" not in self.hinted:
                self.hinted.add("several")
                problems.append(note(self.label, row, key, f"the tag {shown(str(tag))} holds more than one "
                                     f"`name: value`: are the tags of this column separated by something other "
                                     f"than {shown(self.separator)}? Say which in tagkit.yaml (input: "
                                     "tag_separator; tagkit's own CSV exports use |)"))
            elif not tag.name and _NAME_EQUALS.fullmatch(tag.value) and "equals" not in self.hinted:
                self.hinted.add("equals")
                problems.append(note(self.label, row, key, f"the tag {shown(tag.value)} is read as a value without "
                                     "a name: tagkit reads tags written `name: value`"))
            elif not tag.name and tag.value.strip(":") != tag.value and "colon" not in self.hinted:
                self.hinted.add("colon")
                problems.append(note(self.label, row, key, f"the tag {shown(tag.value)} has nothing on one side of "
                                     "its colon: read as a value without a name (a name or a value missing?)"))


_WINDOWS_PATH = re.compile(r"[A-Za-z]:[\\/]|\\\\[^\\/]")  # C:\… or C:/…, or a network share: \\SHOPPC\Photos
_SCIENTIFIC = re.compile(r"[0-9][.,][0-9]+E\+[0-9]+", re.IGNORECASE)  # a barcode as Excel shows it: 4.00638E+12
_ANOTHER_TAG = re.compile(r"[|;؛،,/]\s*[^\s:|;؛،,/][^:|;؛،,/]{0,40}:\s*\S")  # `...; برند: X` inside one value
_NAME_EQUALS = re.compile(r"[^=:]{1,40}=[^=]+")


# -- field helpers ----------------------------------------------------------------------------


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula: text starting with = + - @ gets a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def tags_cell(tags: list[str], joiner: str = "|") -> str:
    """A CSV tags cell that `import` reads back as these tags: `joiner`-separated, or a JSON list when a tag holds a
    `|` itself (the Torob brand `تام پاپ | TAMPAP`)."""
    return json.dumps(tags, ensure_ascii=False) if any("|" in tag for tag in tags) else joiner.join(tags)


def plain_cell(value: str) -> str:
    """The text a `safe_cell` was made from (a spreadsheet keeps the leading ' of a cell typed in it)."""
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_STARTS) else value


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# What a spreadsheet leaves in a cell: an error value where a formula failed (VLOOKUP's `#N/A`), `?` for each letter
# a file saved in a code page without them lost, UTF-8 read in a Windows or Mac code page and saved again
# ("mojibake").
EXCEL_ERRORS = frozenset({"#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NAME?", "#NUM!", "#NULL!", "#SPILL!", "#CALC!",
                          "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!", "#GETTING_DATA"})
_MANGLING_CODE_PAGES = ("cp1256", "cp1252", "mac_roman")  # Persian/Arabic Windows, Western Windows, Mac
SAVE_AS_UTF8 = "save the file as 'CSV UTF-8' (Excel: File > Save As > CSV UTF-8)"
ERROR_VALUE = "a spreadsheet's error value"  # the `Problem.cause` of each value a spreadsheet lost
LOST_LETTERS = "letters lost to question marks or underscores"


def is_excel_error(value: str) -> bool:
    """Whether a cell holds a spreadsheet's error value (`#N/A`, `#VALUE!`, ...) instead of a value."""
    value = value.strip()
    return value[:1] == "#" and value.upper() in EXCEL_ERRORS


def lost_letters(value: str) -> str | None:
    """`?` or `_` when text is mostly that sign: letters lost by a save in a code page that has none of them
    (Persian saved as Excel's plain 'CSV' on a Windows set to another language: `?`; on a Mac: `_`), else None."""
    for mark in "?_":
        if mark * 2 in value:
            marks = value.count(mark)
            if marks >= 3 and marks >= 2 * sum(not c.isspace() and c != mark for c in value):  # (not `Why???`)
                return mark
    return None


def unmangled(text: str) -> str | None:
    """The text that UTF-8 read as Windows-1256, Windows-1252 or Mac OS Roman and saved again turned `text` into
    (`ط¹غŒظ†ع©`, `Ø¹ÛŒÙ†Ú©` or `ÿπ€åŸÜ⁄©` for `عینک`), or None when it is not such text. Persian written in such a code
    page does not pass for UTF-8 (`ی` is in none of them, and their letters do not follow UTF-8's byte patterns)."""
    if text.isascii():
        return None
    for code_page in _MANGLING_CODE_PAGES:
        raw = _code_page_bytes(text, code_page)
        if raw is None:
            continue
        try:
            fixed = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        letters = [char for char in fixed if not char.isascii()]
        if (len(letters) > 1 or letters[0] <= "\u017f" or _PUNCTUATION.match(letters[0])) and all(
                _PLAUSIBLE.match(char) for char in letters):
            return fixed
    return None


def _code_page_bytes(text: str, code_page: str) -> bytes | None:
    """The bytes `text` is in `code_page`, as Windows reads them (it maps the five bytes cp1252 leaves undefined,
    0x81, 0x8D, ..., to U+0081, U+008D, ...), or None when a character is not in it."""
    try:
        return text.encode(code_page)
    except UnicodeEncodeError:
        if code_page != "cp1252":
            return None
    raw = bytearray()
    for char in text:
        try:
            raw += char.encode(code_page)
        except UnicodeEncodeError:
            if ord(char) > 0xFF:
                return None
            raw.append(ord(char))
    return bytes(raw)


# The letters and signs mended text may hold: Latin-1 and Latin Extended-A, Arabic and Persian, joiners, marks and
# punctuation. A short Persian word can pass for UTF-8 in Windows-1256 (`بژ` reads as `Ȏ`), never into these.
_PLAUSIBLE = re.compile("[\u00a0-\u017f\u060c\u061b\u061f\u0621-\u063a\u0640-\u06ff\u200c-\u200f\u2010-\u206f"
                        "\u20ac\u2122\ufb50-\ufeff]")
# (not U+0620 and the other rare letters before U+0621: `Ø` and a no-break space, a diameter, reads as U+0620)
_PUNCTUATION = re.compile("[\u2010-\u206f\u20ac\u2122]")  # `’` `–` `€` alone: `Menâ€™s`, `6â€“8`


def spreadsheet_damage(value: str) -> tuple[str, str | None, str | None]:
    """A cell's text as it should be read, with what a spreadsheet did to it (None: nothing), and, when the value
    is lost (then read as empty) rather than mended, the short cause (`ERROR_VALUE`, `LOST_LETTERS`)."""
    if value.isascii() and "?" not in value and "#" not in value and "__" not in value:  # (most cells: nothing)
        return value, None, None
    if is_excel_error(value):
        return "", (f"{shown(value.strip())} is a spreadsheet's error value (a formula that failed, as VLOOKUP "
                    "finding nothing): read as empty"), ERROR_VALUE
    if mark := lost_letters(value):
        return "", (f"the text is {'question marks' if mark == '?' else 'underscores'} ({shown(value[:60])}): the "
                    "file was saved in a code page that has none of its letters, so they are lost; read as empty. "
                    f"From the original, {SAVE_AS_UTF8}"), LOST_LETTERS
    fixed = unmangled(value)
    if fixed is not None:
        return fixed, (f"UTF-8 text a spreadsheet read in a Windows or Mac code page and saved again, mended: "
                       f"{shown(value[:40])} is {shown(fixed[:40])}"), None
    return value, None, None


def _text(value: Any) -> str:
    """A record value as stripped text (numbers without a needless `.0`, lists/objects as JSON)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _first(record: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, str | None]:
    """The first non-empty value among `keys` and the key it came from."""
    for key in keys:
        value = record.get(key)
        text = value.strip() if type(value) is str else _text(value)
        if text:
            return text, key
    return "", keys[0] if keys else None


def _one_line(text: str) -> str:
    """Markup removed and all whitespace collapsed to single spaces."""
    if "<" in text or "&" in text:
        text = strip_html(text)
    return " ".join(text.split())


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a space when there is one near the end."""
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space].rstrip() if space > limit * 0.8 else cut


def cell_lines(text: str) -> list[str]:
    """The lines typed in one cell (a spreadsheet's Alt+Enter), each a tag or value of its own; a line ending in
    `:` (a name whose value was wrapped onto the next line) is joined to the next."""
    lines: list[str] = []
    for line in text.splitlines():
        if lines and lines[-1].rstrip().endswith(":"):
            lines[-1] += " " + line
        elif line.strip():
            lines.append(line)
    return lines


def _values(value: Any, separator: str | None) -> list[str]:
    """The values in one attribute cell: text split at `separator`, a list, or {value: score} keys."""
    if value is None:
        return []
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{"):
            try:
                return _values(json.loads(stripped), None)
            except (ValueError, RecursionError):  # a JSON error, or a number Python will not read
                pass
        return [part for part in (_one_line(part) for line in cell_lines(stripped)
                                  for part in (split_at(line, separator) if separator else [line])) if part]
    if isinstance(value, list):
        return [part for item in value for part in _values(item, separator) if part]
    if isinstance(value, dict):
        return [_one_line(str(key)) for key in value if str(key).strip()]
    return [_text(value)]


def _tag_list(
    value: Any, separator: str, label: str, row: int, key: str, problems: list[Problem]
) -> list[Tag]:
    """Tags from a cell: `a: b | c` text, a JSON list of strings, of {name, value(s)} or of [tag, score] pairs (a
    JSON export's), or {name: values}."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{"):
            try:
                return _tag_list(json.loads(stripped), separator, label, row, key, problems)
            except (ValueError, RecursionError):  # a JSON error, or a number Python will not read
                pass
        return [Tag.parse(_one_line(part)) for line in cell_lines(stripped) for part in split_at(line, separator)
                if part.strip()]
    if isinstance(value, dict):
        return [Tag(_one_line(str(name)), item) for name, values in value.items()
                for item in _values(values, None)]
    if isinstance(value, list):
        tags: list[Tag] = []
        for number, item in enumerate(value, 1):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                values = item["values"] if "values" in item else item.get("value")
                tags.extend(Tag(_one_line(item["name"]), part) for part in _values(values, None))
            elif isinstance(item, str | int | float) and not isinstance(item, bool):
                tags.append(Tag.parse(_one_line(_text(item))))
            elif (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                  and isinstance(item[1], int | float) and not isinstance(item[1], bool)):
                tags.append(Tag.parse(_one_line(item[0])))  # [tag, score], as predict's JSON exports write them
            else:
                problems.append(Problem(label, row, key, f"tag {number} ({_text(item)[:100]}) is neither a "
                                        "value nor a {name, value} object; left out"))
        return tags
    return [Tag.parse(_text(value))]


# -- folders of images ------------------------------------------------------------------------


def _list_images(folder: Path) -> tuple[list[str], list[str]]:
    """Image paths under `folder`, relative with `/` separators, sorted, and those of photos tagkit cannot read
    (`UNREAD_PHOTOS`, and photos iCloud Drive has not downloaded: `in_icloud`); hidden entries and Windows' system
    folders (`SYSTEM_FOLDERS`) skipped."""
    found: list[str] = []
    unread: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".") and name.casefold() not in SYSTEM_FOLDERS]
        for name in files:
            photo = _icloud_photo(name)
            if photo and photo not in files:  # (downloaded: the photo is listed itself)
                unread.append(PurePath(os.path.relpath(os.path.join(root, photo), folder)).as_posix())
                continue
            extension = os.path.splitext(name)[1].lower()
            if not name.startswith(".") and (extension in IMAGE_EXTENSIONS or extension in UNREAD_PHOTOS):
                path = PurePath(os.path.relpath(os.path.join(root, name), folder)).as_posix()
                (found if extension in IMAGE_EXTENSIONS else unread).append(path)
    return sorted(found), sorted(unread)


def line_id(path: str | Path, row: int) -> str:
    """The id of a row of a file without ids: its folder's name, its name and its line number (`data/p.csv:12`), so
    that the rows of train/p.csv and test/p.csv are other products."""
    path = Path(path)
    return f"{path.parent.name}/{path.name}:{row}" if path.parent.name else f"{path.name}:{row}"


def _unread_photo(path: str, icloud: bool = False) -> str | None:
    """What is said of a photo tagkit cannot read (`UNREAD_PHOTOS`), or of one only in iCloud (`icloud`, see
    `in_icloud`), after its name; None for any other file."""
    kind = UNREAD_PHOTOS.get(os.path.splitext(path)[1].lower())
    unread = f"{kind}, which tagkit cannot read: save it as JPEG" if kind else None
    if icloud:
        return f"is {IN_ICLOUD}" + (f"; it is also {unread}" if unread else "")
    return f"is {unread}" if unread else None


def _icloud_photo(name: str) -> str | None:
    """The name of the photo (an image tagkit reads, or one of `UNREAD_PHOTOS`) whose iCloud Drive placeholder is the
    file `name` (`.IMG_4.jpg.icloud`: IMG_4.jpg); None for any other name."""
    if not (name.startswith(".") and name.lower().endswith(".icloud")):
        return None
    photo = name[1 : -len(".icloud")]
    extension = os.path.splitext(photo)[1].lower()
    return photo if extension in IMAGE_EXTENSIONS or extension in UNREAD_PHOTOS else None


def in_icloud(path: str) -> bool:
    """Whether the photo `path` is not there but iCloud Drive's placeholder of it is (`.NAME.icloud` beside it: a
    folder kept in iCloud with Optimise Mac Storage, the photo not downloaded)."""
    folder, name = os.path.split(path)
    return (_icloud_photo(f".{name}.icloud") is not None and not os.path.lexists(path)
            and os.path.lexists(os.path.join(folder, f".{name}.icloud")))


def _is_utf8(name: str) -> bool:
    """Whether a file name from the file system is proper text (not bytes smuggled in as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _loose(name: str) -> str:
    """A file name as Windows tells names apart: composed, case-blind, without dots and spaces at its end (which
    Windows drops)."""
    return nfc(name).casefold().rstrip(". ")


class _Listings:
    """Folder listings, each read once and only for a path that is not there as written: the file whose name a
    products file writes in another Unicode form, or (as Windows, which tells no case apart, finds it) in another
    case or with a dot or space at its end."""

    def __init__(self) -> None:
        self.names: dict[str, dict[str, str]] = {}  # folder -> composed name -> entry
        self.loose: dict[str, dict[str, list[str]]] = {}  # folder -> `_loose` name -> entries

    def on_disk(self, path: str) -> tuple[str, list[str]]:
        """`path`, with each part that is not there as written replaced by the entry of its folder of the same
        composed name, else by the one entry whose name differs only as Windows does not tell (`_loose`); `path`
        unchanged when there is none. Second: the entries of a part that several such names match (else [])."""
        parent, name = os.path.split(path)
        if not name:
            return path, []
        if not os.path.lexists(parent):
            parent, several = self.on_disk(parent)
            if several:
                return path, several
        joined = os.path.join(parent, name)
        if parent != os.path.dirname(path) and os.path.lexists(joined):
            return joined, []
        if parent not in self.names:
            try:
                entries = os.listdir(parent)
            except OSError:
                entries = []
            self.names[parent] = {nfc(entry): entry for entry in entries}
            self.loose[parent] = {}
            for entry in entries:
                self.loose[parent].setdefault(_loose(entry), []).append(entry)
        found = self.names[parent].get(nfc(name))
        if found is not None:
            return os.path.join(parent, found), []
        alike = self.loose[parent].get(_loose(name), [])
        if len(alike) == 1:
            return os.path.join(parent, alike[0]), []
        return joined, [os.path.join(parent, entry) for entry in sorted(alike)]


class _ImageIndex:
    """Finds an image of the folder by absolute path, relative path, file name or name without extension."""

    def __init__(self, folder: Path, images: list[str]) -> None:
        self.base = os.path.abspath(folder)
        self.by_path = {nfc(path): index for index, path in enumerate(images)}  # names as typed: composed
        self.by_name: dict[str, int | None] = {}
        self.by_stem: dict[str, int | None] = {}
        self.by_digits: dict[str, int | None] = {}  # the stem with Persian and Arabic digits as Latin ones
        self.shared: dict[str, list[str]] = {}  # a name or stem that several images have: their paths
        self.by_loose: dict[str, int | None] = {}  # paths and names as Windows tells them apart (`_loose`)
        for index, path in enumerate(images):
            for key in {_loose(path), _loose(path.rsplit("/", 1)[-1])}:
                self.by_loose[key] = None if key in self.by_loose else index
            name = nfc(path.rsplit("/", 1)[-1])
            stem = os.path.splitext(name)[0]
            for table, key in ((self.by_name, name), (self.by_stem, stem)):
                if key in table:  # None: several images share it
                    self.shared.setdefault(key, [images[table[key]]] if table[key] is not None else []).append(path)
                table[key] = None if key in table else index
            digits = stem.translate(DIGITS)
            self.by_digits[digits] = None if digits in self.by_digits else index

    def match(self, product: Product, by_id: bool) -> int | None:
        if product.image:
            relative = os.path.relpath(nfc(product.image), nfc(self.base))
            if not relative.startswith(".."):
                found = self.by_path.get(PurePath(relative).as_posix())
                if found is not None:
                    return found
            parts = PurePath(nfc(product.image)).parts
            for start in range(1, len(parts)):  # the longest tail that is a path in the folder
                found = self.by_path.get("/".join(parts[start:]))
                if found is not None:
                    return found
            found = self.by_name.get(parts[-1])
            if found is not None:
                return found
        if by_id:
            for table in (self.by_path, self.by_name, self.by_stem):
                found = table.get(nfc(product.id))
                if found is not None:
                    return found
            found = self.by_digits.get(nfc(product.id).translate(DIGITS))  # id ۱۰۰۱ in a sheet, photo 1001.jpg
            if found is not None:
                return found
        if product.image:  # `img_01.jpg` or `b.jpg.` written on Windows for IMG_01.JPG, b.jpg: one image only
            relative = os.path.relpath(nfc(product.image), nfc(self.base))
            for key in (PurePath(relative).as_posix(), PurePath(product.image).name):
                found = self.by_loose.get(_loose(key))
                if found is not None:
                    return found
        return None

    def several(self, product: Product, by_id: bool) -> list[str]:
        """The images that all have the file name (or name without extension) the product names."""
        keys = [nfc(PurePath(product.image).name)] if product.image else []
        keys += [nfc(product.id)] if by_id else []
        return next((self.shared[key] for key in keys if key in self.shared), [])


def _read_folder(folder: Path, products: Path | None, mapping: Mapping, ids: set[str], labels: bool
                 ) -> Iterator[Item]:
    label = str(folder)
    iwork = IWORK.get(Path(os.path.abspath(folder)).suffix.lower())
    if iwork:  # a document saved as a package: its preview pictures are no products
        yield Problem(label, None, None, f"this is {iwork[0]} saved as a package (a folder), not a folder of photos "
                      f"or a products file: tagkit reads CSV, TSV, JSON Lines and JSON; {iwork[1]}", skipped=True)
        return
    images, unread = _list_images(folder)
    icloud = {path for path in unread if in_icloud(os.path.join(folder, path))}
    for path in unread:
        yield Problem(label, None, "image", f"{shown(path)} {_unread_photo(path, path in icloud)}; image skipped",
                      skipped=True)
    icloud_names = {nfc(PurePath(path).name) for path in icloud}
    for path in [path for path in images if not _is_utf8(path)]:
        images.remove(path)
        name = os.fsencode(path).decode("utf-8", "replace")
        yield Problem(label, None, "image", f"file name {shown(name)} is not UTF-8 (saved on another system?); "
                      "image skipped: rename it", skipped=True)
    base = os.path.abspath(folder)
    joined: dict[int, Product] = {}
    if products is not None:
        index = _ImageIndex(folder, images)
        reader = _ProductsReader(products, mapping, labels)
        rows = 0
        for item in reader:
            if isinstance(item, Problem):
                yield item
                continue
            rows += 1
            found = index.match(item, by_id=reader.has_id_column)
            if found is None:
                what = f"id {shown(item.id)}" + (f", image {item.image}" if item.image else "")
                several = index.several(item, by_id=reader.has_id_column)
                unread = _unread_photo(item.image or "", nfc(os.path.basename(item.image or "")) in icloud_names)
                why = (f"{len(several)} images in {folder} match this row ({what}): {', '.join(several[:3])}"
                       f"{' ...' if len(several) > 3 else ''}; keep one photo of that name in the folder, or write "
                       f"the path of one in the row's image cell ({several[0]})" if several else
                       f"its image {shown(os.path.basename(item.image or ''))} {unread}" if unread else
                       f"no image in {folder} matches this row ({what})")
                yield Problem(reader.label, item.row, None, f"{why}; row left out", skipped=True)
                continue
            previous = joined.get(found)
            if previous is not None and previous.id != item.id:  # equal ids: already said "duplicate id"
                yield Problem(reader.label, item.row, None, f"rows {previous.row} and {item.row} both match "
                              f"image {images[found]}; row {item.row} (the later) is used")
            joined[found] = replace(item, id=item.id if reader.has_id_column else nfc(images[found]),
                                    image=os.path.join(base, images[found]))
        if not joined:  # the images alone would replace the titles stored from the last good file
            why = "no product could be read from it" if not rows else f"none of its rows matches an image of {folder}"
            yield Problem(str(products), None, None, f"{why}: the images of {folder} are left as they are",
                          skipped=True)
            return
    further: set[int] = set()  # the photos of continuation rows (a product's second photo): no products of their own
    if products is not None:
        further = {found for image in reader.continued.further_images
                   if (found := index.match(Product(id="", image=image), by_id=False)) is not None} - set(joined)
    ids.update(joined.get(number, Product(id=nfc(path))).id for number, path in enumerate(images)
               if number not in further)
    row_ids = {product.id: product for product in joined.values()}
    for number, path in enumerate(images, 1):
        if number - 1 in further:
            continue
        product = joined.get(number - 1)
        if product is None and nfc(path) in row_ids:  # a row gives this image's name to another image
            other = row_ids[nfc(path)]
            yield Problem(label, number, "image", f"{path}: row {other.row} of {products} gives this id to "
                          f"{other.image}; this image is left out (give it a row with an id of its own)", skipped=True)
            continue
        yield product or Product(id=nfc(path), image=os.path.join(base, path), source=label, row=number,
                                 keeps_stored=True)  # the id as typed: composed, also of a name macOS decomposed
    if further:
        yield note(label, None, None, f"{len(further):,} images are further photos of products in {products} (rows "
                   "that continue a product's row): not products of their own")
    if products is not None and len(joined) + len(further) < len(images):
        yield note(label, None, None, f"{len(images) - len(joined) - len(further):,} of {len(images):,} images have "
                   f"no row in {products}; each is the product stored with the same picture, if any (its id, title and "
                   "labels kept), else a product without title or labels")
    if not images:
        yield Problem(label, None, None, "no image files " + ("it can read " if unread else "") + "in the folder "
                      f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))}; hidden files and folders, and Windows' "
                      "recycle bin and System Volume Information, skipped)")
