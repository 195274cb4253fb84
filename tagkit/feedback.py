"""Review decisions: record and undo them, read them back, turn them into labels, move them through CSV.

One row of the `feedback` table is one decision about one product's predictions from one model version:

- `field` `category`: `accept` the predicted path, `reject` it, or `correct` it (`corrected` = the right path).
- `field` `tag`: `accept` a tag (`predicted`), `reject` it, or `correct` it: `corrected` is the right tag and
  `predicted` the tag it replaces (empty when a tag is added).
- `field` `product`: the review of the product's predictions is finished (`accept` with `a`, `reject` with `x`);
  a product with such a row for a model version is not shown again for that version.

How decisions become labels (`apply_feedback`, used by `tagkit train`): for each product and field (the
category, or one tag) the latest decision wins, whoever made it and whichever model it was about; its value
replaces the catalogue label (correction > accept > catalogue label); an attribute the taxonomy gives one value
keeps the value decided last (an accepted Black replaces an earlier correction to Grey). A rejected tag leaves
the label set; a rejected category without a correction leaves the product without that category, when the
decisions before it left that category (a rejected guess of a later model keeps an earlier correction). A decision
is about a label however either is spelt: by the taxonomy's canonical names when one is given (a value renamed
after the review included), and by spelling (`tagkit.text.spelling_key`: half-space, Arabic letters, digits, case).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tagkit.catalogue import (
    ERROR_VALUE,
    cell_lines,
    decode_text,
    excel_delimiter,
    plain_cell,
    safe_cell,
    sniff_delimiter,
    spreadsheet_damage,
    tags_cell,
)
from tagkit.product import Problem, Product, Tag, format_category, parse_category, shown
from tagkit.store import now
from tagkit.taxonomy import Taxonomy
from tagkit.text import match_key, nfc, spelling_key

if TYPE_CHECKING:
    from tagkit.predicting import PredictedProduct
    from tagkit.store import Store

FIELDS = ("category", "tag", "product")
FUTURE_SLACK = timedelta(minutes=10)  # a decision's time may be this far ahead of this machine's clock
DECISIONS = ("accept", "reject", "correct")
CSV_COLUMNS = ("id", "product_id", "model_id", "field", "predicted", "score", "decision", "corrected", "reviewer",
               "created_at")
_READ = frozenset(CSV_COLUMNS) | {"written_at"}  # the columns `import_csv` reads
_CONTENT = ("product_id", "model_id", "field", "predicted", "score", "decision", "corrected", "reviewer", "created_at")


def stamp() -> str:
    """The current time in UTC to the millisecond (decisions made within one second keep their order)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Decision:
    """One review decision, as stored in a `feedback` row."""

    product_id: str
    model_id: str | None
    field: str
    decision: str
    predicted: str | None = None
    corrected: str | None = None
    score: float | None = None
    reviewer: str | None = None
    created_at: str | None = None

    def row(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "created_at": self.created_at or stamp()}


# the feedback table --------------------------------------------------------------------------------------

def record(store: Store, decisions: Iterable[Decision]) -> list[int]:
    """Store decisions in one transaction (committed on return); returns their row ids. ValueError, and nothing
    stored, when one of them is not a decision a feedback sheet could hold (`import_csv`'s checks: an unknown field
    or decision, a correction without its value, a score outside 0-1, a time that is not ISO 8601, ...)."""
    decisions = list(decisions)
    for number, decision in enumerate(decisions, 1):
        cells = {key: "" if value is None else str(value) for key, value in dataclasses.asdict(decision).items()}
        checked = _check_row(cells, "decisions", number)
        if isinstance(checked, Problem):
            raise ValueError(f"decision {number} (product {decision.product_id!r}), {checked.field}: "
                             f"{checked.message.removesuffix('; row skipped')}")
    ids = []
    with store.transaction():
        table = store.db.table("feedback")
        for decision in decisions:
            table.insert(decision.row())
            ids.append(int(table.last_pk))
    return ids


def undo(store: Store, ids: Iterable[int]) -> int:
    """Delete these decisions (an undo); returns how many rows went."""
    ids = list(ids)
    if not ids:
        return 0
    with store.transaction():
        cursor = store.db.execute(f"delete from feedback where id in ({','.join('?' * len(ids))})", ids)
        return cursor.rowcount


def decisions_for(store: Store, product_id: str, model_id: str | None) -> list[dict[str, Any]]:
    """The decisions about one product, oldest first: about its category and tags, whichever model version's
    predictions they were made on (they decide its labels so), and the finishing of its review for `model_id`."""
    return list(store.db.query(
        "select * from feedback where product_id = ? and (field != 'product' or model_id is ?) "
        "order by created_at, id", [product_id, model_id]))


def finished(store: Store) -> set[tuple[str, str | None]]:
    """(product id, model version) pairs whose review is finished (a `product` decision exists)."""
    return {(r[0], r[1]) for r in store.db.execute(
        "select distinct product_id, model_id from feedback where field = 'product'")}


def feedback_rows(store: Store) -> list[dict[str, Any]]:
    """Every decision, oldest first."""
    return list(store.db.query("select * from feedback order by created_at, id"))


# decisions → labels --------------------------------------------------------------------------------------

Arity = Callable[[str, str | None], bool | None]  # (attribute's match key, model version) -> takes several?


def apply_feedback(products: Iterable[Product], rows: Iterable[Mapping[str, Any]],
                   taxonomy: Taxonomy | None = None, arity: Arity | None = None) -> list[Product]:
    """The products with their labels as the review decisions say (see the module docstring); with a
    `taxonomy`, labels and decisions are made canonical first. `arity` (`queue.attribute_arity`) says which
    attributes take one value, by the taxonomy or else by the model version a decision was made on: a value
    decided of one replaces the product's other value of it (a catalogue label included)."""
    by_product: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (r["created_at"] or "", r.get("id") or 0)):
        by_product[row["product_id"]].append(row)
    return [relabel(p, by_product[p.id], taxonomy, arity) if p.id in by_product else p for p in products]


def relabel(product: Product, rows: Iterable[Mapping[str, Any]], taxonomy: Taxonomy | None = None,
            arity: Arity | None = None) -> Product:
    """One product with its decisions (oldest first) applied to its category and tags."""
    def tag(text: str | None) -> Tag | None:
        raw = Tag.parse(text) if text and text.strip() else None
        return taxonomy.canonical(raw) if taxonomy is not None and raw is not None else raw

    def path(text: str | None) -> tuple[str, ...]:
        raw = parse_category(text or "")
        return taxonomy.canonical_category(raw) if taxonomy is not None and raw else raw

    def key(label: Tag) -> tuple[str, str]:
        return spelling_key(label.name), spelling_key(label.value)

    def single_valued(name: str, model: str | None) -> bool:
        if not name:
            return False
        if arity is not None:
            return arity(match_key(name), model) is False
        attribute = taxonomy.attribute(name) if taxonomy is not None else None
        return attribute is not None and not attribute.multi_valued

    def same(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
        return [spelling_key(level) for level in a] == [spelling_key(level) for level in b]

    own = taxonomy.canonical_tags(product.tags) if taxonomy is not None else product.tags
    tags = {key(t): t for t in own}
    category = (taxonomy.canonical_category(product.category) if taxonomy is not None and product.category
                else product.category)
    reviewed = product.tags_reviewed
    for row in rows:
        if row["field"] == "category":  # each decision on the label the earlier ones left
            predicted = path(row["predicted"])
            if row["decision"] == "accept" and predicted:
                category = predicted
            elif row["decision"] == "correct":
                category = path(row["corrected"])
            elif row["decision"] == "reject" and predicted and same(predicted, category):
                category = ()
        elif row["field"] == "tag":
            predicted, corrected = tag(row["predicted"]), tag(row["corrected"])
            given = predicted if row["decision"] == "accept" else corrected if row["decision"] == "correct" else None
            if row["decision"] in ("reject", "correct") and predicted:
                tags.pop(key(predicted), None)
            if given:
                if single_valued(given.name, row.get("model_id")):  # it replaces the value earlier labels gave
                    tags = {k: t for k, t in tags.items() if k[0] != key(given)[0]}
                tags[key(given)] = given
        elif row["field"] == "product":  # its review finished (a or x): every tag shown on it was judged
            reviewed = True
    return dataclasses.replace(product, category=category, tags=tuple(tags.values()), tags_reviewed=reviewed)


# CSV -----------------------------------------------------------------------------------------------------

def export_csv(store: Store, out: IO[str]) -> int:
    """Write every decision, oldest first, as CSV (cells a spreadsheet would run as formulas get a `'`)."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in feedback_rows(store):
        writer.writerow([safe_cell(row[c]) for c in CSV_COLUMNS])
        count += 1
    return count


LABEL_COLUMNS = ("id", "title", "image", "category", "tags", "decided_at")


def export_labels(store: Store, out: IO[str]) -> int:
    """Write, for each product with a review decision, its labels as the decisions leave them (what `train` learns
    from it: the catalogue's labels overridden, canonical for the taxonomy) as CSV in the products-file layout (tags
    as `catalogue.tags_cell` writes them), with the time of its latest decision; returns how many products. The file
    a shop's catalogue is updated from, and one `tagkit import` reads back."""
    from tagkit.queue import attribute_arity
    from tagkit.taxonomy import stored_taxonomy

    rows = feedback_rows(store)
    taxonomy = stored_taxonomy(store)
    latest: dict[str, str] = {}
    for row in rows:
        latest[row["product_id"]] = max(latest.get(row["product_id"], ""), row["created_at"] or "")
    products = apply_feedback(store.iter_products("id in (select product_id from feedback)"), rows, taxonomy,
                              attribute_arity(store, taxonomy))
    writer = csv.writer(out)
    writer.writerow(LABEL_COLUMNS)
    for product in products:
        cells = {"id": product.id, "title": product.title, "image": product.image or "",
                 "category": format_category(product.category) if product.category else "",
                 "tags": tags_cell([str(tag) for tag in product.tags]), "decided_at": latest.get(product.id, "")}
        writer.writerow([safe_cell(cells[c]) for c in LABEL_COLUMNS])
    return len(products)


@dataclass
class FeedbackImport:
    """What `import_csv` did."""

    file: str
    added: int = 0
    already_there: int = 0
    undecided: int = 0  # rows of a review sheet left without a decision (and not decided by its product's review row)
    decided_since: int = 0  # rows (without a time) left out: a decision stored after the sheet was written goes against
    problems: list[Problem] = field(default_factory=list)  # rows left out, and notes (`info`) on rows read

    @property
    def rows_failed(self) -> int:
        return sum(1 for problem in self.problems if not problem.info)

    def counts(self) -> dict[str, int]:
        return {"added": self.added, "already_there": self.already_there, "undecided": self.undecided,
                "decided_since": self.decided_since, "rows_failed": self.rows_failed}


class FeedbackFileError(ValueError):
    """The file cannot be read as a feedback CSV at all (missing, not UTF-8, no required columns)."""


def import_csv(store: Store, path: str | Path) -> FeedbackImport:
    """Add the decisions of a CSV file (as written by `export_csv`, or made in a spreadsheet).

    A bad row is reported (file, row, field) and left out; the others go in, in one transaction. A row with an
    empty `decision` is read as a review sheet's (`_sheet_decisions`). Rows already in the database are not added
    twice, so importing a file again changes nothing:

    - a row with a `created_at` (an exported one) is there when a decision with the same content and time is;
    - a row without one (typed in a spreadsheet; it gets the time of the import) is the sheet's word on its
      labels (`_labels`). When a later row of the same file speaks for all of them, it is there when the same
      decision is, made at any time; otherwise it is there only when it equals the latest stored decision on
      its labels, and within one file the later row wins. It speaks as of when its review sheet was written
      (`written_at`), or, without that column, when the file was last saved: when the latest stored decision on
      its labels was made after that and goes against it (another reviewer's, meanwhile), that decision is kept
      and the row left out with a note (`decided_since`); a file without `written_at` saved again after a change
      of mind is added and wins (the latest decision wins in `apply_feedback`).
    """
    path = Path(path)
    report = FeedbackImport(str(path))
    try:
        text = decode_text(path.read_bytes())
    except OSError as error:
        raise FeedbackFileError(f"cannot read {path}: {error.strerror or error}") from error
    except ValueError as error:  # not UTF-8: which line, what it looks saved as, how to save it
        raise FeedbackFileError(f"{path}: {error}; nothing was imported") from error
    try:
        with io.StringIO(text, newline="") as f:
            hinted = excel_delimiter(f.readline())  # Excel's `sep=;` line: the header comes after it
            if not hinted:
                f.seek(0)
            header = f.tell()
            hint_lines = 1 if hinted else 0  # the line numbers are the file's
            delimiter = hinted or sniff_delimiter(f.readline())  # a spreadsheet may save with ; or tabs
            f.seek(header)
            reader = csv.DictReader(f, delimiter=delimiter)
            missing = {"product_id", "field", "decision"} - set(reader.fieldnames or ())
            if missing:
                raise FeedbackFileError(f"{path}: no column {', '.join(sorted(missing))} (the header must name "
                                        f"at least product_id, field and decision; see `tagkit feedback export`)")
            records: list[tuple[dict[Any, Any], int]] = []
            line = 2 + hint_lines  # where the record starts: the header is line 1 (2 after a `sep=` line)
            for raw in reader:
                records.append((raw, line))
                line = reader.line_num + 1 + hint_lines
    except csv.Error as error:
        raise FeedbackFileError(f"{path}: not a readable CSV file ({error})") from error
    _mend_cells(records, path, report)
    from tagkit.taxonomy import stored_taxonomy

    taxonomy = stored_taxonomy(store)
    rows: list[tuple[dict[str, Any], int]] = []
    blank: set[tuple[str, str, str]] = set()  # (product, field, predicted) of the rows without a decision
    unread: list[tuple[int, str]] = []  # rows whose `written_at` (a review sheet's) cannot be read, and the value
    for raw, line in _sheet_decisions(records, report, blank):
        checked = _check_row(raw, str(path), line)
        if not isinstance(checked, Problem) and not checked["created_at"] and ("written_at" in raw or "kind" in raw) \
                and (not checked["written_at"] or not _zoned(raw["written_at"])):
            unread.append((line, str(raw.get("written_at") or "")))
        if isinstance(checked, Problem):
            report.problems.append(dataclasses.replace(checked, product_id=plain_cell(
                (raw.get("product_id") or "").strip()) or None))
        else:
            rows.append((checked, line))
            moved = checked.get("moved_from")
            if moved and taxonomy is not None and taxonomy.canonical(Tag.parse(moved)).name == \
                    taxonomy.canonical(Tag.parse(checked["corrected"])).name:  # another name of its attribute
                checked["predicted"] = moved
                del checked["moved_from"]
            if checked.get("moved_from"):
                report.problems.append(Problem(
                    str(path), line, "corrected", f"{shown(checked['corrected'])} is a tag of another attribute "
                    f"than the row's {shown(checked['moved_from'])}: added as a tag of its own, and "
                    f"{shown(checked['moved_from'])} left undecided", info=True, product_id=checked["product_id"]))
    if unread:
        report.problems.append(Problem(
            str(path), unread[0][0], "written_at", f"{len(unread):,} rows of a review sheet have no full time in "
            f"written_at (this one: {shown(unread[0][1])}; the column deleted, or a spreadsheet rewrote it: tagkit "
            "writes a date, a time and its zone): a time without a zone is read as UTC; without a time, they speak "
            "as of when the file was last saved, so decisions stored between the writing of the sheet and that are "
            "not noticed", info=True))
    known = _known_products(store, [r["product_id"] for r, _ in rows])
    for row, line in rows:
        if row["product_id"] not in known:
            report.problems.append(Problem(str(path), line, "product_id",
                                           f"no product {shown(row['product_id'])} in the database; row skipped",
                                           skipped=True))
    rows = _finish_reviews(store, [(row, line) for row, line in rows if row["product_id"] in known], report, blank,
                           taxonomy)
    rows = _one_value(store, rows, taxonomy)
    # A row without a time whose labels later rows of the file all speak for is not the sheet's last word.
    superseded, later = [False] * len(rows), set()
    for i in reversed(range(len(rows))):
        if not rows[i][0]["created_at"]:
            labels = _labels(rows[i][0])
            superseded[i] = labels <= later
            later |= labels
    now = stamp()  # one time for the rows without one: they keep the file's order (by id)
    saved = _saved_at(path)
    left_out: dict[int, dict[str, Any]] = {}  # the lines whose value a later decision kept out (`_one_value`)
    seen: dict[tuple[Any, ...], int] = defaultdict(int)
    insert = f"insert into feedback ({', '.join(_CONTENT)}, sheet) values ({', '.join('?' * (len(_CONTENT) + 1))})"
    with store.transaction():
        for (row, line), is_superseded in zip(rows, superseded, strict=True):
            if row["created_at"] or is_superseded:
                # the n-th such row of the file is there when the database holds n decisions like it (rows
                # added by this import count: they are the first ones of the file)
                columns = _CONTENT if row["created_at"] else _CONTENT[:-1]
                key = tuple(row[c] for c in columns)
                seen[key] += 1
                there = seen[key] <= _count_same(store, row, columns)
            else:
                there, later = _against_stored(store, row, saved, now)
                making_room = row.get("for_line") is not None  # a value `_one_value` rejects for the row's
                if later and making_room:  # chosen after the sheet was written: it stays, and the row's value out
                    left_out[line] = later
                    continue
                if later or (line in left_out and not making_room):
                    report.problems.append(_decided_since(row, line, left_out.pop(line, later), path))
                    report.decided_since += 1
                    continue
            if there:
                report.already_there += 1
            else:
                store.db.execute(insert, [row[c] for c in _CONTENT[:-1]] + [row["created_at"] or now, _sheet(row)])
                report.added += row.get("for_line") is None  # the rejects made for a row's value are its own
    report.problems += _typed_outside(taxonomy, [row for row, _ in rows], str(path))
    report.problems += _typed_lists(store, taxonomy, rows, str(path))
    return report


def _against_stored(store: Store, row: dict[str, Any], saved: datetime | None,
                    now: str) -> tuple[bool, dict[str, Any] | None]:
    """A row without a time against the latest stored decision on its labels: whether that decision is the same
    (the row is there), and that decision when it goes before the row (made after the row's word: after its
    review sheet was written, or, against the decisions an import of this very sheet stored (imported, then
    corrected: the reviewer's re-edit), after the file was `saved`), else None."""
    latest = _latest(store, row)
    if latest is None:
        return False, None
    if all(latest[c] == row[c] for c in _CONTENT[:-1]):
        return True, None
    own = bool(_sheet(row)) and latest.get("sheet") == _sheet(row)
    as_of = row.get("written_at") if row.get("written_at") and not own else saved
    return False, latest if latest["created_at"] != now and _after(latest, as_of) else None


def _sheet(row: Mapping[str, Any]) -> str | None:
    """The review sheet a row came from, as stored with its decision (`feedback.sheet`): its `written_at`."""
    written = row.get("written_at")
    return written.isoformat() if isinstance(written, datetime) else None


def _saved_at(path: Path) -> datetime | None:
    """When the file was last saved (its modification time), or None when unknown."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except (OSError, ValueError, OverflowError):
        return None


def _after(decision: Mapping[str, Any], saved: datetime | None) -> bool:
    """Whether a stored decision was made after `saved` (False when either time is unknown)."""
    try:
        made = datetime.fromisoformat(decision["created_at"] or "")
    except (TypeError, ValueError):
        return False
    return saved is not None and (made if made.tzinfo else made.replace(tzinfo=UTC)) > saved


def _decided_since(row: dict[str, Any], line: int, latest: dict[str, Any], path: Path) -> Problem:
    """The note on a sheet row (without a time) that a decision stored after the sheet was written (a review
    sheet's `written_at`; else when the file was last saved) goes against: the later decision is kept (a sheet
    imported again, or filled in without showing it, undoes nothing)."""
    what = latest["corrected"] or latest["predicted"] or "the review"
    who = f" by {latest['reviewer']}" if latest["reviewer"] else ""
    after, again = (("this sheet was written", "decide it again, in the terminal or a new sheet") if row.get(
        "written_at") else ("this file was last saved", "save the file again"))
    return Problem(str(path), line, "decision", f"{shown(what)} was decided ({latest['decision']}){who} at "
                   f"{latest['created_at']}, after {after}: that decision is kept, this row left out ({again} to "
                   "make it the latest)", info=True, product_id=row["product_id"])


def listed_values(tag: str, known: Iterable[str]) -> list[str]:
    """The tags a typed tag lists when each is one its attribute has already (`رنگ: آبی، سفید` with `رنگ: آبی` and
    `رنگ: سفید` among the `known` tags): several values typed in one cell, which is stored as one value. [] when
    it lists none, or a value not known (a brand `تام پاپ | TAMPAP` is one value)."""
    parsed = Tag.parse(tag)
    parts = [part for part in _LIST.split(parsed.value) if part]
    if not parsed.name or len(parts) < 2:
        return []
    keys = {match_key(t) for t in known}
    listed = [str(Tag(parsed.name, part)) for part in parts]
    return listed if all(match_key(t) in keys for t in listed) else []


_LIST = re.compile(r"\s*[|،؛;,]\s*")


def _typed_lists(store: Store, taxonomy: Taxonomy | None, rows: list[tuple[dict[str, Any], int]],
                 file: str) -> list[Problem]:
    """Notes on the tag corrections of `rows` that list several known values in one cell (`listed_values`)."""
    typed = [(row, line) for row, line in rows if row["field"] == "tag" and row["decision"] == "correct"
             and _LIST.search(Tag.parse(row["corrected"] or "").value)]
    if not typed:
        return []
    from tagkit.review import known_values

    known = known_values(store, taxonomy)[1]
    return [Problem(file, line, "corrected", f"{shown(row['corrected'])} is stored as one value, though it lists "
                    f"values its attribute has ({', '.join(listed)}): to give several, write each on a row of its "
                    "own", info=True, product_id=row["product_id"])
            for row, line in typed if (listed := listed_values(row["corrected"], known))]


def _typed_outside(taxonomy: Taxonomy | None, rows: list[dict[str, Any]], file: str) -> list[Problem]:
    """Notes on the corrections of `rows` that `taxonomy` does not have (a category outside its tree, a value a
    closed attribute does not allow), as `tagkit import` says of a file's labels."""
    from tagkit.taxonomy import OutsideLabels

    typed = [Product(id=row["product_id"], category=parse_category(row["corrected"]) if row["field"] == "category"
                     else (), tags=(Tag.parse(row["corrected"]),) if row["field"] == "tag" else ())
             for row in rows if row["decision"] == "correct" and row["corrected"]]
    if taxonomy is None or not typed:
        return []
    taxonomy.canonicalise(typed)
    found = OutsideLabels()
    taxonomy.outside(typed, found)
    return found.notes(file)


def _mend_cells(records: list[tuple[dict[Any, Any], int]], path: Path, report: FeedbackImport) -> None:
    """Undo in place what a spreadsheet did to the cells (`spreadsheet_damage`): text mangled by a code page is
    mended (one note), an error value (`#N/A`) is read as empty (a problem). Letters lost to `?` stop the import:
    the sheet's corrections are gone, and its `accept` rows would accept what they corrected."""
    mended: list[int] = []
    for raw, line in records:
        for column, value in raw.items():
            if column not in _READ or not isinstance(value, str):  # (a reviewer's own column is theirs)
                continue
            value = raw[column] = nfc(value)  # ids and values a Mac wrote decomposed (NFD) are the stored ones
            read, damage, cause = spreadsheet_damage(value)
            if damage and cause is None:
                raw[column] = read
                mended.append(line)
            elif cause == ERROR_VALUE:
                raw[column] = read
                report.problems.append(Problem(str(path), line, column, damage))
            elif damage:
                raise FeedbackFileError(f"{path}, row {line}, field {shown(column)}: {damage}; nothing was imported")
    if mended:
        report.problems.append(Problem(
            str(path), mended[0], None, f"{len(mended):,} cells of UTF-8 text that a spreadsheet read in a Windows or "
            f"Mac code page and saved again (rows {mended[0]} to {mended[-1]}), mended", info=True))


def _sheet_decisions(records: list[tuple[dict[Any, Any], int]], report: FeedbackImport,
                     blank: set[tuple[str, str, str]]) -> Iterator[tuple[dict[Any, Any], int]]:
    """The records that decide something: a row with an empty `decision` (a review sheet's, `review.write_sheet`) is
    a correction when it has a `corrected` value, else undecided (counted in `report`, left out; its product, field
    and predicted value go into `blank`)."""
    for raw, line in records:
        if None in raw or (raw.get("decision") or "").strip():
            yield raw, line
        elif (raw.get("corrected") or "").strip():
            yield {**raw, "decision": "correct"}, line
        else:
            report.undecided += 1
            pid, field_, value = (plain_cell((raw.get(c) or "").strip()) for c in ("product_id", "field", "predicted"))
            blank.add((pid, field_.lower(), value))


def _finish_reviews(store: Store, rows: list[tuple[dict[str, Any], int]], report: FeedbackImport,
                    blank: set[tuple[str, str, str]], taxonomy: Taxonomy | None) -> list[tuple[dict[str, Any], int]]:
    """A sheet's `product` rows without a time (typed in a spreadsheet; an exported one was written after the rows of
    what it decided) as `a` and `x` in the terminal: the product's predicted category and tags (its stored
    prediction by that model version, else its latest, held to `taxonomy` as the sheet shows it) that neither a row
    of the sheet nor a stored decision (another reviewer's, meanwhile) decides are accepted (or rejected) with it,
    put just before it (`_undecided`; a row of `blank` so decided is no longer counted undecided). A product with a
    row left out (a problem) is not finished: its `product` rows are left out too, with a problem, so it is asked
    again."""
    from tagkit.queue import attribute_arity

    failed = {p.product_id for p in report.problems if p.product_id and not p.info}
    multi_valued = attribute_arity(store, taxonomy)

    def single_valued(name: str, model: str) -> bool:
        return multi_valued(name, model) is False

    others: dict[str, list[dict[str, Any]]] = defaultdict(list)  # a product's rows but its review rows
    for row, _ in rows:
        if row["field"] != "product":
            others[row["product_id"]].append(row)
    out: list[tuple[dict[str, Any], int]] = []
    for row, line in rows:
        pid = row["product_id"]
        if row["field"] == "product" and pid in failed:
            report.problems.append(Problem(report.file, line, "decision", f"the review of product {shown(pid)} is "
                                           "not finished: a row of it was left out (above); row skipped",
                                           skipped=True, product_id=pid))
            continue
        typed = row["field"] == "product" and not row["created_at"]  # an exported one decided its rows itself
        prediction = _stored_prediction(store, pid, row["model_id"], taxonomy) if typed else None
        if prediction is not None:
            stored = [r for r in decisions_for(store, pid, None) if r["field"] != "product"
                      and not (_sheet(row) and r.get("sheet") == _sheet(row))]  # not this very sheet's word
            for decided in _undecided(row, others[pid], prediction, single_valued, taxonomy, stored):
                out.append((decided, line))
                report.undecided -= (pid, decided["field"], decided["predicted"]) in blank
        out.append((row, line))
    return out


def _one_value(store: Store, rows: list[tuple[dict[str, Any], int]], taxonomy: Taxonomy | None
               ) -> list[tuple[dict[str, Any], int]]:
    """A sheet's accepted or corrected value (a row without a time) of an attribute that takes one value, on a
    product that has another value of it chosen in a stored decision (one made on an older version's prediction,
    which the sheet does not show): that one is rejected with it, put just before it, as turning the value on in
    the terminal does (the product got both)."""
    from tagkit.queue import attribute_arity

    multi_valued = attribute_arity(store, taxonomy)

    def same(tag: str) -> str:
        written = Tag.parse(tag)
        return spelling_key(str(taxonomy.canonical(written) if taxonomy is not None else written))

    named = {(row["product_id"], same(v)) for row, _ in rows if row["field"] == "tag"
             for v in (row["predicted"], row["corrected"]) if v}  # what the sheet decides itself
    out: list[tuple[dict[str, Any], int]] = []
    chosen_by_product: dict[str, dict[str, bool]] = {}  # each stored tag: whether its latest decision chose it
    for row, line in rows:
        value = _chosen(row) if row["field"] == "tag" and not row["created_at"] else None
        name = _attribute_key(value, taxonomy) if value else ""
        if value and name and multi_valued(name, row["model_id"]) is False:
            pid = row["product_id"]
            if pid not in chosen_by_product:
                chosen_by_product[pid] = {tag: tag == _chosen(stored) for stored in decisions_for(store, pid, None)
                                          if stored["field"] == "tag"
                                          for tag in (stored["predicted"], stored["corrected"]) if tag}
            for tag, chosen in chosen_by_product[pid].items():
                if chosen and _attribute_key(tag, taxonomy) == name and same(tag) != same(value) \
                        and (pid, same(tag)) not in named:
                    out.append(({**row, "field": "tag", "decision": "reject", "predicted": tag, "corrected": None,
                                 "score": None, "for_line": line}, line))
                    chosen_by_product[pid][tag] = False
        out.append((row, line))
    return out


def _chosen(row: Mapping[str, Any]) -> str | None:
    """The category or tag a decision makes a label (the one it accepts, or the correction), if any."""
    return row["corrected"] if row["decision"] == "correct" else row["predicted"] if row["decision"] == "accept" \
        else None


def _attribute_key(tag: str, taxonomy: Taxonomy | None) -> str:
    """The match key of a tag's attribute, as the taxonomy names it (and as a model version's arity is keyed)."""
    written = Tag.parse(tag)
    return match_key((taxonomy.canonical(written) if taxonomy is not None else written).name)


def _undecided(finish: dict[str, Any], mine: list[dict[str, Any]], prediction: PredictedProduct,
               single_valued: Callable[[str, str], bool], taxonomy: Taxonomy | None = None,
               stored: Iterable[dict[str, Any]] = ()) -> Iterator[dict[str, Any]]:
    """The decisions a `product` row `finish` makes on the predictions that the product's other rows (`mine`) and
    its `stored` decisions (another reviewer's: left as they are, as `a` and `x` leave them; one the same as the
    row's is made again, and is already there) leave undecided: the predicted category, unless another was
    chosen; each predicted tag, rejected when accepting it would give an attribute that takes one value a second
    value. Values and attribute names are compared as the taxonomy writes them, when there is one."""
    def key(field_: str, value: str) -> tuple[str, str]:
        return field_, match_key(taxonomy.canonical_text(field_, value) if taxonomy is not None else value)

    verdict = finish["decision"]
    stored = list(stored)
    decided = {key(r["field"], v) for r in mine for v in (r["predicted"], r["corrected"]) if v}
    before = {key(r["field"], v): r["decision"] for r in stored for v in (r["predicted"], r["corrected"]) if v}
    category = prediction.category
    chosen = {key("category", c) for r in [*mine, *stored] if r["field"] == "category" and (c := _chosen(r))}
    given = {(_attribute_key(t, taxonomy), key("tag", t)) for r in [*mine, *stored]
             if r["field"] == "tag" and (t := _chosen(r))}
    model = finish["model_id"] or prediction.model
    out = []
    if category and key("category", category) not in decided and not (
            verdict == "accept" and chosen - {key("category", category)}):
        out.append({**finish, "field": "category", "predicted": category, "score": prediction.category_score,
                    "model_id": model})
    for tag, score in prediction.tags:
        if key("tag", tag) in decided:
            continue
        name = _attribute_key(tag, taxonomy)
        second = verdict == "accept" and bool(name) and single_valued(name, model) and any(
            a == name and k != key("tag", tag) for a, k in given)
        out.append({**finish, "field": "tag", "predicted": tag, "score": score,
                    "decision": "reject" if second else verdict, "model_id": model})
    for row in out:  # a stored decision otherwise stays (one the same is made again: it is already there)
        if before.get(key(row["field"], row["predicted"]), row["decision"]) == row["decision"]:
            yield row


def _stored_prediction(store: Store, product_id: str, model_id: str | None,
                       taxonomy: Taxonomy | None = None) -> PredictedProduct | None:
    """The prediction of a product by a model version (None: its latest), held to `taxonomy` as review and the
    review sheet show it (`queue.held_record`)."""
    from tagkit.predicting import stored_record
    from tagkit.queue import held_record

    sql = "select * from predictions where product_id = ?" + (" and model_id = ?" if model_id else "")
    found = list(store.db.query(sql + " order by created_at desc, model_id desc limit 1",
                                [product_id, model_id] if model_id else [product_id]))
    if not found:
        return None
    record = stored_record(found[0], "", None)
    return held_record(record, taxonomy) if taxonomy is not None else record


def _check_row(raw: dict[Any, Any], file: str, line: int) -> dict[str, Any] | Problem:
    """A CSV record as a feedback row, or the first thing wrong with it."""
    def bad(column: str, message: str) -> Problem:
        return Problem(file, line, column, f"{message}; row skipped", skipped=True)

    if None in raw:
        return bad("", "more cells than the header has columns")
    cell = {c: plain_cell((raw.get(c) or "").strip()) for c in CSV_COLUMNS}
    cell["field"], cell["decision"] = cell["field"].lower(), cell["decision"].lower()  # a spreadsheet's `Accept`
    if not cell["product_id"]:
        return bad("product_id", "empty product id")
    if cell["field"] not in FIELDS:
        return bad("field", f"unknown field {shown(cell['field'])} (category, tag or product)")
    if cell["decision"] not in DECISIONS:
        return bad("decision", f"unknown decision {shown(cell['decision'])} (accept, reject or correct)")
    if cell["field"] == "product" and cell["decision"] == "correct":
        return bad("decision", "a product row is accept or reject; type a correction on a category or tag row "
                   "(a row of its own, field category or tag)")
    if cell["decision"] == "correct" and not cell["corrected"]:
        return bad("corrected", "a correction needs the corrected value")
    if cell["decision"] != "correct" and cell["corrected"]:
        return bad("corrected", f"a corrected value goes with decision 'correct', not {shown(cell['decision'])}")
    if cell["field"] != "product" and cell["decision"] != "correct" and not cell["predicted"]:
        return bad("predicted", f"{cell['decision']} of which {cell['field']}? predicted is empty")
    for column in ("predicted", "corrected"):
        if "\n" in cell[column] or "\r" in cell[column]:  # lines typed in one cell (Alt+Enter): a list, as `a | b`
            cell[column] = " | ".join(" ".join(line.split()) for line in cell_lines(cell[column]))
        if cell[column] and cell["field"] == "category":
            cell[column] = format_category(parse_category(cell[column]))
        elif cell[column] and cell["field"] == "tag":
            cell[column] = str(Tag.parse(cell[column]))
    if cell["field"] == "tag" and cell["corrected"] and cell["predicted"]:  # `Blue` typed on the `color: Grey` row
        typed, named = Tag.parse(cell["corrected"]), Tag.parse(cell["predicted"])
        if not typed.name and named.name:
            cell["corrected"] = str(Tag(named.name, typed.value))
        elif typed.name and named.name and spelling_key(typed.name) != spelling_key(named.name):
            cell["predicted"], cell["moved_from"] = "", str(named)  # `color: Teal` on the `usage: Casual` row
    score = None
    if cell["score"]:
        try:
            score = float(cell["score"].replace(",", ".") if cell["score"].count(",") == 1 and "." not in
                          cell["score"] else cell["score"])  # a decimal comma, as a European spreadsheet writes
        except ValueError:
            return bad("score", f"not a number: {shown(cell['score'])}")
        if not 0.0 <= score <= 1.0:
            return bad("score", f"{score} is not between 0 and 1")
    created = None
    if cell["created_at"]:
        try:
            when = datetime.fromisoformat(cell["created_at"])
        except ValueError:
            return bad("created_at", f"not a date and time: {shown(cell['created_at'])} (ISO 8601, e.g. "
                                     "2026-01-31T14:05:00+00:00)")
        when = when.astimezone(UTC)  # without a zone: this machine's clock, as a person typing it here reads it
        if when > datetime.now(UTC) + FUTURE_SLACK:  # (it would win over every decision made until then)
            return bad("created_at", f"{shown(cell['created_at'])} is later than now ({now()}): a wrong clock or "
                                     "time zone? Write the zone (+03:30) or leave it empty (now)")
        created = when.isoformat(timespec="milliseconds" if "." in cell["created_at"] else "seconds")
    moved = {"moved_from": cell["moved_from"]} if cell.get("moved_from") else {}
    return {**{c: cell[c] or None for c in _CONTENT}, "score": score, "created_at": created, **moved,
            "written_at": _written_at(raw.get("written_at"))}


def _zoned(text: Any) -> bool:
    """Whether a `written_at` value says its time zone."""
    try:
        return datetime.fromisoformat(plain_cell(str(text or "").strip())).tzinfo is not None
    except ValueError:
        return False


def _written_at(text: Any) -> datetime | None:
    """A review sheet's `written_at` (when `tagkit review --sheet` wrote it: a date, a time and its zone; a time
    without a zone is read as UTC), or None (not a sheet's, a date alone, or unreadable, as a spreadsheet may
    rewrite it: the file's modification time stands in). `import_csv` says which rows had neither."""
    written = plain_cell(str(text or "").strip())
    try:
        when = datetime.fromisoformat(written)
    except ValueError:
        return None
    return when.replace(tzinfo=when.tzinfo or UTC) if len(written) > 10 else None  # a date alone: which time?


def _known_products(store: Store, ids: list[str]) -> set[str]:
    sql = "select id from products where id in (select value from json_each(?))"
    return {r[0] for r in store.db.execute(sql, [json.dumps(sorted(set(ids)), ensure_ascii=False)])}


def _count_same(store: Store, row: dict[str, Any], columns: tuple[str, ...]) -> int:
    where = " and ".join(f"{c} is ?" for c in columns)
    return store.db.execute(f"select count(*) from feedback where {where}", [row[c] for c in columns]).fetchone()[0]


def _labels(row: dict[str, Any]) -> set[tuple[str | None, ...]]:
    """What a decision decides (as `relabel` reads it): the product's category, the tags it names (`predicted`
    and `corrected`), or the product's review for that model version."""
    if row["field"] == "tag":
        return {(row["product_id"], "tag", t) for t in (row["predicted"], row["corrected"]) if t}
    if row["field"] == "category":
        return {(row["product_id"], "category")}
    return {(row["product_id"], "product", row["model_id"])}


def _latest(store: Store, row: dict[str, Any]) -> dict[str, Any] | None:
    """The latest stored decision on any of the row's labels (in `apply_feedback`'s order), if any."""
    sql, args = "select * from feedback where product_id = ? and field = ?", [row["product_id"], row["field"]]
    if row["field"] == "tag":
        tags = json.dumps(sorted(t for _, _, t in _labels(row)), ensure_ascii=False)
        sql += " and (predicted in (select value from json_each(?)) or corrected in (select value from json_each(?)))"
        args += [tags, tags]
    elif row["field"] == "product":
        sql += " and model_id is ?"
        args.append(row["model_id"])
    found = list(store.db.query(sql + " order by created_at desc, id desc limit 1", args))
    return found[0] if found else None

