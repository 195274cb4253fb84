"""The tagkit database: one SQLite file, written through sqlite-utils.

Tables (open the file with `sqlite-utils tables tagkit.db --counts` to look around):

- `products`     one row per product id: title, description, image path and content hash, labels
                 (`category` as `A > B > C`, `tags` as a JSON list of `name: value`), where it was read;
                 `held_out` 1: a test product, scored by `tagkit eval` (`train` without SOURCE leaves it out).
- `features`     image embeddings keyed by (image content hash, model id): nothing is embedded twice.
                 A row with `error` set records an image that could not be decoded.
- `models`       trained model versions (filled by `tagkit train`).
- `predictions`  one row per (product, model version) (filled by `tagkit predict`; `models --prune` deletes
                 those of a deleted version that a later prediction of their product replaced).
- `feedback`     review decisions, one row per decision (filled by `tagkit review` and `tagkit feedback import`).
- `taxonomy`     categories, attributes and their values (filled by `tagkit taxonomy`).
- `runs`         every command that wrote to the database, with its counts and outcome (`interrupted`:
                 the process died, e.g. killed, before it could say how it ended).
- `problems`     what was wrong with the input of each run: file, row, field, message.
- `meta`         `schema_version`, the taxonomy's name and language, and the model folders the database does not
                 record that `models --prune` keeps (`kept_model_folders`).

Views (queries kept in the file, computed when read): `latest_predictions`, `review_decisions`,
`problems_with_product` (see `_VIEWS`).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import sqlite_utils

from tagkit import __version__
from tagkit.product import Problem, Product, Tag, format_category, parse_category

DEFAULT_DB = "tagkit.db"
SCHEMA_VERSION = 5

_SCHEMA: dict[str, tuple[dict[str, Any], str | tuple[str, ...]]] = {
    "products": (
        {
            "id": str,
            "title": str,
            "description": str,
            "image": str,
            "image_hash": str,
            "category": str,
            "tags": str,
            "extra": str,
            "source": str,
            "source_row": int,
            "imported_at": str,
            "updated_at": str,
            "content_key": str,
            "held_out": int,
        },
        "id",
    ),
    "features": (
        {"image_hash": str, "model": str, "dim": int, "vector": bytes, "error": str, "created_at": str},
        ("image_hash", "model"),
    ),
    "models": (
        {
            "id": str,
            "created_at": str,
            "path": str,
            "tagkit_version": str,
            "input_hash": str,
            "duration_s": float,
            "counts": str,
            "params": str,
            "metrics": str,
        },
        "id",
    ),
    "predictions": (
        {
            "product_id": str,
            "model_id": str,
            "created_at": str,
            "category": str,
            "category_score": float,
            "alternatives": str,
            "tags": str,
            "tag_candidates": str,
            "input_key": str,
            "taxonomy": str,
        },
        ("product_id", "model_id"),
    ),
    "feedback": (
        {
            "id": int,
            "product_id": str,
            "model_id": str,
            "field": str,
            "predicted": str,
            "score": float,
            "decision": str,
            "corrected": str,
            "reviewer": str,
            "created_at": str,
            "sheet": str,
        },
        "id",
    ),
    "taxonomy": (
        {
            "id": int,
            "kind": str,
            "name": str,
            "parent_id": int,
            "canonical_id": int,
            "multi_valued": int,
            "open_values": int,
            "synonyms": str,
            "position": int,
        },
        "id",
    ),
    "runs": (
        {
            "id": int,
            "command": str,
            "args": str,
            "started_at": str,
            "finished_at": str,
            "status": str,
            "counts": str,
            "pid": int,
            "host": str,
            "writer_lock": int,
        },
        "id",
    ),
    "problems": (
        {"id": int, "run_id": int, "file": str, "row": int, "field": str, "message": str, "skipped": int,
         "info": int, "product_id": str},
        "id",
    ),
    "pruned_models": ({"id": str, "pruned_at": str, "review": str}, "id"),
    "meta": ({"key": str, "value": str}, "key"),
}

_INDEXES = {
    "products": [["image_hash"]],
    # a product's latest prediction (review, exports) without sorting its predictions for each row
    "predictions": [["model_id"], ["product_id", "created_at", "model_id"]],
    # a product's decisions about one version, in order: SQLite otherwise picks model_id, every decision about it
    "feedback": [["product_id"], ["model_id"], ["product_id", "model_id", "created_at"]],
    "problems": [["run_id"]],
    "taxonomy": [["kind", "name"]],
}


_VIEWS = {
    # per product, the prediction of the newest model version that predicted it, its tags as in a CSV export
    "latest_predictions": """
select p.product_id, pr.title, p.category, p.category_score,
  coalesce((select group_concat(json_extract(t.value, '$[0]'), ' | ') from json_each(p.tags) t), '') as tags,
  coalesce((select group_concat(json_extract(t.value, '$[1]'), ' | ') from json_each(p.tags) t), '') as tag_scores,
  p.model_id, p.created_at as predicted_at, pr.image
from (
  select predictions.*, row_number() over (
    partition by predictions.product_id
    order by predictions.created_at desc, predictions.model_id desc) as newest
  from predictions
) p
left join products pr on pr.id = p.product_id
where p.newest = 1""",
    # every review decision, oldest first, with the title of its product
    "review_decisions": """
select f.id, f.created_at, f.product_id, pr.title, f.field, f.predicted, f.score, f.decision, f.corrected,
  f.reviewer, f.model_id
from feedback f left join products pr on pr.id = f.product_id""",
    # every problem with the command of its run and the title of its product (none: the row was skipped, or the
    # problem is about a whole file)
    "problems_with_product": """
select pb.id, pb.run_id, runs.command, pb.file, pb.row, pb.product_id, pr.title, pb.field, pb.message,
  pb.skipped, pb.info
from problems pb
left join runs on runs.id = pb.run_id
left join products pr on pr.id = pb.product_id""",
}


def now() -> str:
    """The current time as an ISO 8601 string in UTC, to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class ReadOnlyError(sqlite3.OperationalError):
    """A database that cannot be written cannot be read either, for the reason given."""


class NotTagkitDatabase(sqlite3.DatabaseError):
    """An SQLite database with tables of its own and no tagkit schema: tagkit neither reads nor changes it."""


class NewerDatabase(NotTagkitDatabase):
    """A database a newer tagkit wrote (a higher schema version): this tagkit neither reads nor changes it."""


def _writable_side_files(path: Path) -> None:
    """Make the database's `-wal` and `-shm` files writable again when they are not: SQLite creates them with the
    database file's mode, so a database read while it was read-only leaves them read-only, and every write after
    it is made writable again would fail ("attempt to write a readonly database")."""
    mode = stat.S_IMODE(path.stat().st_mode)
    for side in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:  # (the last connection of another program removes them when it closes: then there is nothing to do)
            if side.stat().st_mode & stat.S_IWUSR and os.access(side, os.W_OK):
                continue
            side.chmod(mode | stat.S_IWUSR)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise PermissionError(f"{side} cannot be written ({error.strerror}): make it writable, or delete it "
                                  "while no tagkit or SQLite program has the database open") from error


def _connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection. A WAL database whose folder cannot be written, and that has no shared-memory file
    (`-shm`) there, is opened as immutable (nothing can write it there either), unless its write-ahead log
    (`-wal`) holds changes: those cannot be read that way."""
    uri = path.absolute().as_uri()
    try:
        return _readable(f"{uri}?mode=ro", timeout)
    except sqlite3.OperationalError:
        pass
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        raise ReadOnlyError(f"its latest changes are in {wal.name}, which cannot be read without the {path.name}-shm "
                            "file beside it (copy the database with both files, or read it where it can be written)")
    return _readable(f"{uri}?immutable=1", timeout)


def _readable(uri: str, timeout: float) -> sqlite3.Connection:
    """A connection to `uri` that has read the schema (closed again when it cannot)."""
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    try:
        conn.execute("select count(*) from sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


def default_db_path() -> Path:
    """`$TAGKIT_DB` if set, else `./tagkit.db`."""
    return Path(os.environ.get("TAGKIT_DB") or DEFAULT_DB)


class Store:
    """The tagkit database. Every write method runs in one transaction."""

    def __init__(self, path: str | Path | None = None, timeout: float = 30.0, read_only: bool = False) -> None:
        """Open (creating it, unless `read_only`) the database at `path` (default: `default_db_path()`).

        `read_only` is for a database that cannot be written (read-only folder, disk or file): nothing is
        created or upgraded, and a write raises sqlite3.OperationalError.
        """
        self.path = Path(path) if path is not None else default_db_path()
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no database at {self.path}")
        if self.path.parent and not self.path.parent.exists():
            raise FileNotFoundError(f"folder for the database does not exist: {self.path.parent}")
        if not read_only and self.path.exists():
            if not os.access(self.path, os.W_OK):
                raise PermissionError(f"the database file {self.path} cannot be written (read-only file or disk)")
            _writable_side_files(self.path)
        conn = (_connect_read_only(self.path, timeout) if read_only else
                sqlite3.connect(self.path, timeout=timeout, check_same_thread=False))
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        try:
            self._refuse_foreign()
            if read_only:
                if not self._schema_is_current(writable=False):
                    raise ReadOnlyError("it was written by another version of tagkit and can only be read once a "
                                        "command that writes has upgraded it")
            else:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._create_schema()
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """All writes inside commit together or not at all.

        The outermost one begins IMMEDIATE: it takes SQLite's write lock at once (waiting up to the busy
        timeout while another process writes), so a transaction that reads before it writes never fails
        because another process committed in between. Nested ones are savepoints.
        """
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield self.db
            return
        try:  # (a Ctrl-C right after BEGIN must not leave the transaction open)
            conn.execute("BEGIN IMMEDIATE")
            yield self.db
        except BaseException:
            if conn.in_transaction:
                self.db.rollback()
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            self.db.rollback()
            raise

    def _refuse_foreign(self) -> None:
        """NotTagkitDatabase when the file has tables but no tagkit schema version (another program's database,
        named by mistake), NewerDatabase when a newer tagkit made it: it is left as it was, not turned into WAL mode
        and given (or downgraded to) this tagkit's tables."""
        tables = [name for (name,) in self.db.execute(
            "select name from sqlite_master where type = 'table' and name not like 'sqlite%' order by name")]
        if not tables:
            return
        if "meta" in tables:
            version = None
            with suppress(sqlite3.DatabaseError):  # a `meta` table of another program's, without these columns
                version = self.meta("schema_version")
            if version is not None:
                if version.isdigit() and int(version) > SCHEMA_VERSION:
                    raise NewerDatabase(f"{self.path} was written by a newer tagkit (its schema version is "
                                        f"{version}; this tagkit {__version__} knows up to {SCHEMA_VERSION}): "
                                        "upgrade tagkit to use it; it is left as it is")
                return
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        raise NotTagkitDatabase(f"{self.path} is an SQLite database, but not tagkit's (its tables: {shown}); tagkit "
                                "leaves it as it is: name another database file")

    def _schema_is_current(self, writable: bool = True) -> bool:
        """Whether every table and column, and (when the database is `writable`) every index and view, is as this
        tagkit makes them (then opening the database writes nothing). A database that cannot be written is read
        without them: tagkit's readers need neither."""
        for name, (columns, _) in _SCHEMA.items():
            present = self.db.table(name).columns_dict if self.db.table(name).exists() else {}
            if not present or any(column not in present for column in columns):
                return False
            if writable:
                indexed = {tuple(index.columns) for index in self.db.table(name).indexes}
                if any(tuple(index) not in indexed for index in _INDEXES.get(name, [])):
                    return False
        views = dict(self.db.execute("select name, sql from sqlite_master where type = 'view'").fetchall())
        if writable and any(views.get(name) != _view_sql(name) for name in _VIEWS):
            return False
        return self.meta("schema_version") == str(SCHEMA_VERSION)

    def _create_schema(self) -> None:
        """Create missing tables; add the columns and indexes a database made by an older tagkit lacks; (re)create
        the views."""
        if self._schema_is_current():
            return
        with self.transaction():
            for name, (columns, pk) in _SCHEMA.items():
                table = self.db.table(name)
                if not table.exists():
                    table.create(columns, pk=pk, not_null=_not_null(pk))
                else:
                    present = table.columns_dict
                    for column, kind in columns.items():
                        if column not in present:
                            table.add_column(column, kind)
                            if (name, column) == ("runs", "writer_lock"):  # every command but review took it
                                self.db.execute("update runs set writer_lock = (command != 'review')")
                            elif (name, column) == ("problems", "product_id"):
                                self._problems_of_products()
                            elif (name, column) == ("products", "held_out"):
                                self._held_out_of_old_evals()
                for index in _INDEXES.get(name, []):
                    table.create_index(index, if_not_exists=True)
            for name in _VIEWS:
                self.db.execute(f"drop view if exists [{name}]")
                self.db.execute(_view_sql(name))
            self.set_meta("schema_version", str(SCHEMA_VERSION))

    def meta(self, key: str) -> str | None:
        """A value of the `meta` table (its keys are listed in the module docstring), or None."""
        row = self.db.execute("select value from meta where key = ?", [key]).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.table("meta").upsert({"key": key, "value": value}, pk="key")

    def _held_out_of_old_evals(self) -> None:
        """Test products stored before they were marked: those stored last from a file (or folder) that an `eval`
        run read and that no `train` or `import` run read (else `train` learnt them, and every later `eval` on them
        was not honest)."""
        read: dict[str, set[str]] = {"eval": set(), "learnt": set()}
        for command, args in self.db.execute("select command, args from runs where command in "
                                             "('eval', 'train', 'import')"):
            try:
                given = json.loads(args or "{}")
            except ValueError:
                continue
            sources = {given.get(k) for k in ("source", "products")} if isinstance(given, dict) else set()
            read["eval" if command == "eval" else "learnt"].update(s for s in sources if isinstance(s, str))
        tested = sorted(read["eval"] - read["learnt"])
        if tested:
            self.db.execute(f"update products set held_out = 1 where source in ({', '.join('?' * len(tested))})",
                            tested)

    def _problems_of_products(self) -> None:
        """Problems stored before they named their product: the product now stored from that row of that file,
        where one is (a file read in two folders under one name gives two: left empty)."""
        at: dict[tuple[str, int], str | None] = {}
        for product_id, source, row in self.db.execute("select id, source, source_row from products"):
            at[(source, row)] = None if (source, row) in at else product_id
        updates = [(at.get((file, row)), problem_id) for problem_id, file, row in
                   self.db.execute("select id, file, row from problems where row is not null")]
        self.db.conn.executemany("update problems set product_id = ? where id = ?",
                                 [(product_id, problem_id) for product_id, problem_id in updates if product_id])

    # products -----------------------------------------------------------------------------

    def upsert_products(self, products: Iterable[Product], force: bool = False, keep_labels: bool = False,
                        canonical: Callable[[Tag], Tag] | None = None) -> ProductWrites:
        """Insert new products and update changed ones (the later record of an id wins).

        A product whose content (`content_key`: title, description, image path and hash, labels, extra
        columns) equals the stored row's is left alone, unless `force`. With `keep_labels`, a product without
        a category (or tags) keeps the stored one (`predict` reads new products, not a catalogue's labels); without
        it, so does one whose file has no category column, and the stored tags of the attributes its record does
        not give are kept (`Product.keeps`; compared as `canonical` makes them: the taxonomy's, when there is one).
        """
        stamp = now()
        last = {p.id: p for p in products}  # the later record of an id wins
        rows = [
            {
                "id": p.id,
                "title": p.title,
                "description": p.description,
                "image": p.image,
                "image_hash": p.image_hash,
                "category": format_category(p.category) or None,
                "tags": json.dumps([str(t) for t in p.tags], ensure_ascii=False) if p.tags else None,
                "extra": json.dumps(p.extra, ensure_ascii=False) if p.extra else None,
                "source": p.source,
                "source_row": p.row,
                "updated_at": stamp,
            }
            for p in last.values()
        ]
        if not rows:
            return ProductWrites(0, 0, 0)
        keeping = {i: p for i, p in last.items() if p.keeps and not keep_labels}
        unlabelled = [row["id"] for row in rows if row["id"] in keeping
                      or (keep_labels and (row["category"] is None or row["tags"] is None))]
        if unlabelled:
            stored = {r[0]: r[1:] for r in self.select_in("select id, category, tags from products where id in "
                                                          "({marks})", [], unlabelled)}
            for row in rows:
                category, tags = stored.get(row["id"], (None, None))
                if keep_labels:
                    row["category"], row["tags"] = row["category"] or category, row["tags"] or tags
                elif row["id"] in keeping:
                    product = keeping[row["id"]]
                    if "category" in product.keeps:
                        row["category"] = row["category"] or category
                    row["tags"] = _with_kept_tags(row["tags"], tags, product, canonical)
        for row in rows:
            row["content_key"] = content_key(row)
        with self.transaction():
            sql = "select id, content_key, updated_at from products where id in ({marks})"
            existing = {r[0]: r[1:] for r in self.select_in(sql, [], [r["id"] for r in rows])}
            new = [row for row in rows if row["id"] not in existing]
            changed = [row for row in rows if row["id"] in existing and existing[row["id"]][0] != row["content_key"]]
            for row in new:
                row["imported_at"] = stamp
            written = new + changed
            if force:  # rewritten as they are: `updated_at` still says when they last changed
                same = [row for row in rows if row["id"] in existing and existing[row["id"]][0] == row["content_key"]]
                for row in same:
                    row["updated_at"] = existing[row["id"]][1]
                written += same
            if written:
                self.db.table("products").upsert_all(written, pk="id")
        return ProductWrites(len(new), len(changed), len(rows) - len(new) - len(changed), force)

    def select_in(self, sql: str, params: list[Any], values: Iterable[str]) -> Iterator[tuple[Any, ...]]:
        """Run `sql` (with an `in ({marks})` list) over `values` in chunks small enough for SQLite."""
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            yield from self.db.execute(sql.format(marks=",".join("?" * len(chunk))), [*params, *chunk])

    def product(self, product_id: str) -> Product | None:
        """One stored product, or None."""
        rows = list(self.db.query("select * from products where id = ?", [product_id]))
        return _product_from_row(rows[0]) if rows else None

    def products_by(self, column: str, values: Iterable[str]) -> dict[str, list[Product]]:
        """The stored products whose `column` (`id` or `image_hash`) is one of these values (value -> products,
        in id order)."""
        if column not in ("id", "image_hash"):
            raise ValueError(f"products are not looked up by {column!r}")
        found: dict[str, list[Product]] = {}
        cursor = self.select_in(f"select * from products where {column} in ({{marks}}) order by id", [], values)
        names = [c.name for c in self.db.table("products").columns]  # in the order of `select *`
        for row in (dict(zip(names, cells, strict=True)) for cells in cursor):
            found.setdefault(row[column], []).append(_product_from_row(row))
        return found

    def set_held_out(self, ids: Iterable[str], held_out: bool) -> None:
        """Mark these products as test products (`held_out`: `eval` does), or as products to learn from again."""
        sql = "update products set held_out = ? where coalesce(held_out, 0) != ? and id in ({marks})"
        with self.transaction():
            list(self.select_in(sql, [int(held_out), int(held_out)], ids))  # runs the update, chunk by chunk

    def held_out_ids(self) -> set[str]:
        """The ids of the test products (see `set_held_out`)."""
        return {row[0] for row in self.db.execute("select id from products where held_out = 1")}

    def iter_products(self, where: str | None = None, params: Iterable[Any] = ()) -> Iterator[Product]:
        """Stored products in id order, streamed."""
        sql = "select * from products" + (f" where {where}" if where else "") + " order by id"
        for row in self.db.query(sql, list(params)):
            yield _product_from_row(row)

    def compact(self) -> bool:
        """Give the space of deleted rows back to the disk (SQLite's VACUUM); False when another connection's
        transaction stops it (the space is then reused by later writes)."""
        try:
            self.db.execute("VACUUM")
        except sqlite3.OperationalError:
            return False
        return True

    # features -----------------------------------------------------------------------------

    def known_features(self, model: str, hashes: Iterable[str]) -> dict[str, str | None]:
        """Image hashes that already have a features row for `model`, with the row's error (None if fine)."""
        sql = "select image_hash, error from features where model = ? and image_hash in ({marks})"
        return dict(self.select_in(sql, [model], hashes))

    def put_features(self, model: str, items: Iterable[tuple[str, np.ndarray | str]]) -> int:
        """Store embeddings (float32 vectors) or decoding errors (str) for image hashes."""
        stamp = now()
        rows = []
        for image_hash, result in items:
            if isinstance(result, str):
                rows.append({"image_hash": image_hash, "model": model, "dim": None, "vector": None,
                             "error": result, "created_at": stamp})
            else:
                vector = np.asarray(result, dtype=np.float32)
                rows.append({"image_hash": image_hash, "model": model, "dim": int(vector.shape[0]),
                             "vector": vector.tobytes(), "error": None, "created_at": stamp})
        if rows:
            with self.transaction():
                self.db.table("features").upsert_all(rows, pk=("image_hash", "model"))
        return len(rows)

    def get_features(self, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored embeddings for these image hashes (those without one are left out)."""
        sql = ("select image_hash, vector from features where model = ? and vector is not null"
               " and image_hash in ({marks})")
        return {h: np.frombuffer(blob, dtype=np.float32) for h, blob in self.select_in(sql, [model], hashes)}

    # runs and problems ----------------------------------------------------------------------

    def start_run(self, command: str, args: dict[str, Any], writer_lock: bool = False) -> int:
        """Record that a command started; returns the run id. `writer_lock`: the caller holds the database's
        writer lock (tagkit.lock) for the whole run.

        Runs still `running` whose process is gone are marked `interrupted` first, with the time they were found
        so as `finished_at`: runs of this host whose process has ended (killed, or the machine went down; a
        zombie, ended but not yet reaped, counts as ended), and, when the caller holds the writer lock, every
        run that held it too (the lock is free only once its holder has ended).
        """
        host = socket.gethostname()
        stamp = now()
        with self.transaction():
            running = self.db.execute("select id, pid, host, writer_lock from runs where status = 'running'")
            dead = [run_id for run_id, pid, run_host, held_lock in running.fetchall()
                    if (writer_lock and held_lock) or (run_host == host and pid and not process_alive(pid))]
            for run_id in dead:
                self.db.table("runs").update(run_id, {"status": "interrupted", "finished_at": stamp})
            table = self.db.table("runs")
            table.insert({"command": command, "args": json.dumps(args, ensure_ascii=False, default=str),
                          "started_at": stamp, "status": "running", "pid": os.getpid(), "host": host,
                          "writer_lock": int(writer_lock)})
            return int(table.last_pk)

    def finish_run(self, run_id: int, status: str, counts: dict[str, Any]) -> None:
        with self.transaction():
            self.db.table("runs").update(run_id, {"finished_at": now(), "status": status,
                                                   "counts": json.dumps(counts, ensure_ascii=False)})

    def add_problems(self, run_id: int, problems: Iterable[Problem]) -> None:
        rows = [{"run_id": run_id, "file": p.file, "row": p.row, "field": p.field, "message": p.message,
                 "skipped": int(p.skipped), "info": int(p.info), "product_id": p.product_id} for p in problems]
        if rows:
            with self.transaction():
                self.db.table("problems").insert_all(rows)

    # summary ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the database holds: counts per table and the main facts about products and features."""
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        features_by_model = {
            model: {"embeddings": n_ok, "unreadable_images": n_err}
            for model, n_ok, n_err in self.db.execute(
                "select model, count(vector), count(error) from features group by model order by model")
        }
        last_run = next(self.db.query("select * from runs order by id desc limit 1"), None)
        if last_run is not None:  # its JSON columns as objects
            last_run.update({name: json.loads(last_run[name]) for name in ("args", "counts") if last_run[name]})
            if (last_run["status"] == "running" and last_run["host"] == socket.gethostname() and last_run["pid"]
                    and not process_alive(last_run["pid"])):  # killed: the next run that writes will record it
                last_run["status"] = "interrupted"
        return {
            "database": str(self.path),
            "size_bytes": self.path.stat().st_size if self.path.exists() else 0,
            "tables": {name: self.db.table(name).count for name in _SCHEMA if name != "meta"},
            "products": {
                "total": one("select count(*) from products"),
                "with_title": one("select count(*) from products where coalesce(title, '') != ''"),
                "with_image": one("select count(*) from products where image is not null"),
                "with_readable_image": one(
                    "select count(*) from products p where exists (select 1 from features f"
                    " where f.image_hash = p.image_hash and f.vector is not null)"),
                "with_category": one("select count(*) from products where category is not null"),
                "with_tags": one("select count(*) from products where tags is not null"),
                "held_out": one("select count(*) from products where held_out = 1"),
                "reviewed": one("select count(distinct product_id) from feedback"),
                "categories": one("select count(distinct category) from products"),
            },
            "features": features_by_model,
            "last_run": last_run,
        }


class ProductWrites(NamedTuple):
    """What `upsert_products` did with a batch of products (one per id)."""

    new: int
    changed: int
    unchanged: int  # the content equals the stored row's: not rewritten, unless `forced`
    forced: bool = False

    @property
    def written(self) -> int:
        return self.new + self.changed + (self.unchanged if self.forced else 0)


_CONTENT_COLUMNS = ("title", "description", "image", "image_hash", "category", "tags", "extra")


def _with_kept_tags(tags: str | None, stored: str | None, product: Product,
                    canonical: Callable[[Tag], Tag] | None = None) -> str | None:
    """A row's tags (JSON) with the stored tags of the attributes its record does not give
    (`Product.gives_tags_of`), made `canonical` (stored before a taxonomy was imported)."""
    if not stored:
        return tags
    own = json.loads(tags) if tags else []
    kept = (Tag.parse(t) for t in json.loads(stored))
    more = [str(t) for t in (map(canonical, kept) if canonical else kept) if not product.gives_tags_of(t.name)]
    more = [t for t in dict.fromkeys(more) if t not in own]
    return json.dumps(own + more, ensure_ascii=False) if own or more else None


def content_key(row: dict[str, Any]) -> str:
    """A fingerprint of a product row's content (not of where or when it was read)."""
    text = json.dumps([row.get(column) for column in _CONTENT_COLUMNS], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def sync_folder(folder: Path) -> None:
    """Put a folder's entries (a rename into it) on the disk; not every system can open a folder to do so."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine. A zombie (ended, not yet reaped by its parent) has
    ended: it holds no files or locks any more, and never runs again."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process
    return process_state(pid) not in ("Z", "X")


def process_state(pid: int) -> str | None:
    """A process's state letter from /proc/<pid>/stat (`R`, `S`, `Z` for a zombie...); None where it cannot be
    read (no such process, or no /proc)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text("utf-8", "replace")
    except OSError:
        return None
    fields = stat_line.rpartition(")")[2].split()  # the command name, in brackets before it, may hold anything
    return fields[0] if fields else None


def _view_sql(name: str) -> str:
    """The statement that creates one of `_VIEWS`, as SQLite keeps it in `sqlite_master`."""
    return f"CREATE VIEW [{name}] AS {_VIEWS[name].strip()}"


def _not_null(pk: str | tuple[str, ...]) -> set[str]:
    return set(pk) if isinstance(pk, tuple) else {pk}


def _product_from_row(row: dict[str, Any]) -> Product:
    return Product(
        id=row["id"],
        title=row["title"] or "",
        description=row["description"] or "",
        image=row["image"],
        category=parse_category(row["category"] or "", full_width=False),
        tags=tuple(Tag.parse(t) for t in json.loads(row["tags"] or "[]")),
        source=row["source"] or "",
        row=row["source_row"] or 0,
        extra=json.loads(row["extra"] or "{}"),
        image_hash=row["image_hash"],
    )
