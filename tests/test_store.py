"""The SQLite store: schema, WAL, transactions, the features cache."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import time

import numpy as np
import pytest

from tagkit.product import Problem, Product, Tag
from tagkit.store import SCHEMA_VERSION, Store, process_alive, process_state


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "tagkit.db") as opened:
        yield opened


def test_schema_has_every_table_and_wal(store, tmp_path):
    conn = sqlite3.connect(tmp_path / "tagkit.db")
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    assert {"products", "features", "models", "predictions", "feedback", "taxonomy", "runs", "problems"} <= tables
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_a_products_decisions_and_latest_prediction_are_found_by_index(store):
    """A scale audit: with no statistics SQLite looked a product's decisions about a version up through the model_id
    index (every decision about that version: feedback import went quadratic, 2 minutes for 30,000 rows already
    there), and sorted each product's predictions for every row of review's queue."""
    def plan(sql: str, *params: str) -> str:
        return " | ".join(row[-1] for row in store.db.execute(f"explain query plan {sql}", params))

    found = plan("select * from feedback where product_id = ? and field = 'product' and model_id is ? "
                 "order by created_at desc, id desc limit 1", "p1", "m")
    assert "idx_feedback_product_id_model_id_created_at (product_id=? AND model_id=?)" in found
    found = plan("select * from feedback where product_id = ? and model_id is ? order by created_at, id", "p1", "m")
    assert "(product_id=? AND model_id=?)" in found and "TEMP B-TREE" not in found
    found = plan("select q.model_id from predictions q where q.product_id = ? order by q.created_at desc, "
                 "q.model_id desc limit 1", "p1")
    assert "COVERING INDEX idx_predictions_product_id_created_at_model_id" in found and "TEMP B-TREE" not in found


def test_products_round_trip_and_later_record_wins(store):
    first = Product("p1", title="کیف پول چرم", category=("مد و پوشاک", "کیف"), tags=(Tag("رنگ", "قهوه‌ای"),),
                    source="a.csv", row=2, image_hash="hash-a")
    store.upsert_products([first])
    imported_at = store.db.table("products").get("p1")["imported_at"]
    again = Product("p1", title="کیف پول چرم مردانه", tags=(Tag("", "اورجینال"),), source="b.csv", row=7)
    store.upsert_products([again])

    stored = store.product("p1")
    assert stored is not None
    assert stored.title == "کیف پول چرم مردانه"
    assert stored.tags == (Tag("", "اورجینال"),)
    assert (stored.source, stored.row) == ("b.csv", 7)
    row = store.db.table("products").get("p1")
    assert row["imported_at"] == imported_at, "first import time is kept on update"
    assert json.loads(row["tags"]) == ["اورجینال"]
    assert store.db.table("products").count == 1


def test_features_cache_keyed_by_hash_and_model(store):
    vector = np.linspace(-1, 1, 1280, dtype=np.float32)
    store.put_features("model-a", [("h1", vector), ("h2", "not an image file")])
    assert store.known_features("model-a", ["h1", "h2", "h3"]) == {"h1": None, "h2": "not an image file"}
    assert store.known_features("model-b", ["h1"]) == {}
    got = store.get_features("model-a", ["h1", "h2"])
    assert list(got) == ["h1"]
    np.testing.assert_array_equal(got["h1"], vector)


def test_a_failed_transaction_leaves_stored_data_alone(store):
    store.upsert_products([Product("keep", title="kept")])
    with pytest.raises(RuntimeError), store.transaction():
        store.db.table("products").insert({"id": "lost", "title": "half-way"})
        raise RuntimeError("crash half-way")
    assert [p.id for p in store.iter_products()] == ["keep"]


def test_runs_and_problems_are_recorded(store):
    run = store.start_run("import", {"source": "x.csv"})
    store.add_problems(run, [Problem("x.csv", 3, "image", "file not found", skipped=False)])
    store.finish_run(run, "partial", {"products_stored": 1})
    stats = store.stats()
    assert stats["tables"]["problems"] == 1
    assert stats["last_run"]["status"] == "partial"
    problem = next(store.db.table("problems").rows)
    assert (problem["file"], problem["row"], problem["field"]) == ("x.csv", 3, "image")


def zombie() -> subprocess.Popen:
    """A child process that has ended and is not reaped yet (`kill -0` still finds it); `wait()` it after."""
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 30
    while process_state(child.pid) != "Z":
        assert time.monotonic() < deadline, "the child did not end"
        time.sleep(0.01)
    return child


def test_a_zombie_process_has_ended():
    child = zombie()
    try:
        os.kill(child.pid, 0)  # found: the check that used to keep its run `running` for good
        assert not process_alive(child.pid)
        assert process_alive(os.getpid())
    finally:
        child.wait()
    assert not process_alive(child.pid) and process_state(child.pid) is None


def test_runs_whose_process_ended_unreaped_are_interrupted_with_a_finish_time(store):
    child = zombie()
    try:
        store.db.table("runs").insert({"command": "review", "started_at": "2026-01-01T00:00:00+00:00",
                                       "status": "running", "pid": child.pid, "host": os.uname().nodename,
                                       "writer_lock": 0})
        alive_review = store.start_run("review", {})  # no writer lock: only ended processes are interrupted
        store.start_run("stats", {})
    finally:
        child.wait()
    rows = {row["id"]: row for row in store.db.table("runs").rows}
    assert rows[1]["status"] == "interrupted" and rows[1]["finished_at"] >= rows[alive_review]["started_at"]
    assert rows[alive_review]["status"] == "running" and rows[alive_review]["finished_at"] is None


def test_a_run_under_the_writer_lock_ends_every_run_that_held_it(store):
    """The lock is free only once its holder has ended, so its run cannot still be running, whatever its pid
    (here this live process's: a pid used again by another process) or host."""
    earlier_writer = store.start_run("predict", {}, writer_lock=True)
    review = store.start_run("review", {})
    store.db.table("runs").update(earlier_writer, {"host": "another-host"})
    current = store.start_run("import", {}, writer_lock=True)
    status = {row["id"]: (row["status"], row["finished_at"]) for row in store.db.table("runs").rows}
    assert status[earlier_writer][0] == "interrupted" and status[earlier_writer][1] is not None
    assert status[review] == ("running", None), "review does not hold the lock: its live process says it runs"
    assert status[current] == ("running", None)


def test_an_older_database_gets_the_views_and_the_writer_lock_column(tmp_path):
    """A database as schema version 3 left it: no views, no `runs.writer_lock`, no `problems.product_id` (filled
    in where one stored product is of that row of that file); a run stuck at `running`."""
    path = tmp_path / "old.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    for view in ("latest_predictions", "review_decisions", "problems_with_product"):
        conn.execute(f"drop view {view}")
    conn.execute("alter table runs drop column writer_lock")
    conn.execute("alter table problems drop column product_id")
    conn.execute("update meta set value = '3' where key = 'schema_version'")
    conn.executemany("insert into runs (command, status, pid, host) values (?, 'running', ?, 'elsewhere')",
                     [("predict", os.getpid()), ("review", os.getpid())])
    conn.executemany("insert into products (id, source, source_row) values (?, ?, ?)",
                     [("a", "x/p.csv", 2), ("b", "p.csv", 3), ("c", "p.csv", 3)])  # p.csv read in two folders
    conn.executemany("insert into problems (run_id, file, row, message) values (1, ?, ?, 'empty title')",
                     [("x/p.csv", 2), ("p.csv", 3), ("x/p.csv", None)])
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert {"latest_predictions", "review_decisions", "problems_with_product"} <= set(store.db.view_names())
        assert [row["product_id"] for row in store.db.table("problems").rows] == ["a", None, None]
        assert [row["writer_lock"] for row in store.db.table("runs").rows] == [1, 0]
        store.start_run("train", {}, writer_lock=True)
        assert [row["status"] for row in store.db.table("runs").rows] == ["interrupted", "running", "running"]
        version = store.db.execute("select value from meta where key = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
        assert store._schema_is_current(), "opened again, it writes nothing"


def test_an_older_databases_test_products_are_held_out(tmp_path):
    """A database from before `held_out`: the products an old `eval` stored were learnt by every `train` without
    SOURCE after the upgrade, and every later `eval` on them was not honest (an upgrade audit). Those stored last
    from a file only `eval` read are test products; a file `train` or `import` also read is not."""
    path = tmp_path / "old.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("alter table products drop column held_out")
    conn.execute("update meta set value = '4' where key = 'schema_version'")
    conn.executemany("insert into runs (command, args, status) values (?, ?, 'ok')", [
        ("train", json.dumps({"source": "train.csv"})), ("eval", json.dumps({"source": "test.csv"})),
        ("eval", json.dumps({"source": "photos", "products": "titles.csv"})),
        ("eval", json.dumps({"source": "train.csv"})),
        ("import", json.dumps({"source": "more.csv"})), ("eval", json.dumps({"source": "more.csv"})),
        ("eval", "not json")])
    conn.executemany("insert into products (id, source) values (?, ?)", [
        ("t1", "train.csv"), ("e1", "test.csv"), ("e2", "test.csv"), ("f1", "photos"), ("f2", "titles.csv"),
        ("m1", "more.csv"), ("p1", "new")])
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.held_out_ids() == {"e1", "e2", "f1", "f2"}


def test_a_database_a_newer_tagkit_wrote_is_left_as_it_is(tmp_path):
    """An older tagkit opened a newer one's database and wrote its own, lower schema version into it (an upgrade
    audit: a team member who had not upgraded)."""
    from click.testing import CliRunner

    from tagkit.cli import main
    from tagkit.exitcodes import ExitCode
    from tagkit.store import NewerDatabase

    path = tmp_path / "tagkit.db"
    with Store(path) as store:
        store.upsert_products([Product("a", title="Blue jeans")])
        store.db.execute("update meta set value = ? where key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
        store.db.conn.commit()
    before = path.read_bytes()
    for read_only in (False, True):
        with pytest.raises(NewerDatabase, match=f"written by a newer tagkit .*schema version is {SCHEMA_VERSION + 1}"):
            Store(path, read_only=read_only)
    products = tmp_path / "products.csv"
    products.write_text("id,title\n1,Blue jeans\n", "utf-8")
    for args in (["stats"], ["import", str(products), "--no-images"]):
        result = CliRunner().invoke(main, ["--db", str(path), *args])
        assert result.exit_code == ExitCode.USAGE and "upgrade tagkit" in result.stderr, result.output
    assert path.read_bytes() == before


def test_latest_predictions_gives_no_tags_as_empty_text(store):
    """A product predicted without tags reads `tags` and `tag_scores` as empty, as in a CSV export, not NULL."""
    store.upsert_products([Product("a", title="کفش"), Product("b", title="کیف")])
    store.db.table("predictions").insert_all([
        {"product_id": "a", "model_id": "m1", "created_at": "2026-12-01T00:00:00+00:00", "category": "کفش",
         "category_score": 0.9, "tags": json.dumps([["رنگ: مشکی", 0.8], ["جنس: چرم", 0.6]], ensure_ascii=False)},
        {"product_id": "b", "model_id": "m1", "created_at": "2026-12-01T00:00:00+00:00", "category": "کیف",
         "category_score": 0.7, "tags": "[]"},
    ])
    rows = {row["product_id"]: row for row in store.db.query("select * from latest_predictions")}
    assert (rows["a"]["tags"], rows["a"]["tag_scores"]) == ("رنگ: مشکی | جنس: چرم", "0.8 | 0.6")
    assert (rows["b"]["tags"], rows["b"]["tag_scores"]) == ("", "")


def test_reopening_keeps_data(tmp_path):
    path = tmp_path / "db.sqlite"
    with Store(path) as first:
        first.upsert_products([Product("a", title="t")])
    with Store(path) as second:
        assert second.product("a").title == "t"


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Store(tmp_path / "nowhere" / "tagkit.db")


def test_a_version_that_cannot_be_recorded_leaves_no_folder(tmp_path):
    """Stopped or failed between publishing the folder and writing its row: the folder used to stay, unlisted."""
    from tagkit.versions import models_folder, write_version

    Store(tmp_path / "t.db").close()
    with Store(tmp_path / "t.db", read_only=True) as store, pytest.raises(sqlite3.OperationalError):
        write_version(store, lambda folder: (folder / "model.txt").write_text("weights", "utf-8"), {})
    with Store(tmp_path / "t.db") as store:
        assert list(models_folder(store).iterdir()) == []


def test_another_programs_database_is_refused_and_left_as_it_was(tmp_path):
    """A shop's own SQLite file named by mistake: not given tagkit's tables, columns or WAL mode."""
    from click.testing import CliRunner

    from tagkit.cli import main
    from tagkit.exitcodes import ExitCode
    from tagkit.store import NotTagkitDatabase

    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as conn:
        conn.execute("create table products (sku text primary key, price real)")
        conn.execute("insert into products values ('a-1', 9.5)")
    conn.close()
    before = shop.read_bytes()
    for read_only in (False, True):
        with pytest.raises(NotTagkitDatabase, match=re.escape("shop.db is an SQLite database, but not tagkit's "
                                                              "(its tables: products); tagkit leaves it as it is")):
            Store(shop, read_only=read_only)
    products = tmp_path / "products.csv"
    products.write_text("id,title\n1,Blue jeans\n", "utf-8")
    for args in (["import", str(products), "--no-images"], ["stats"]):
        result = CliRunner().invoke(main, ["--db", str(shop), *args])
        assert result.exit_code == ExitCode.USAGE, result.output
        assert "not tagkit's" in result.stderr
    assert shop.read_bytes() == before
    assert not (tmp_path / "shop.db-wal").exists()
    empty = tmp_path / "empty.db"  # an SQLite file with no tables yet is made a tagkit database
    sqlite3.connect(empty).close()
    with Store(empty) as store:
        assert store.db.table("products").exists()
    with Store(empty, read_only=True) as store:  # and a tagkit database is tagkit's
        assert store.db.table("meta").exists()


def test_read_only_opens_no_new_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no database at"):
        Store(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


def test_a_database_with_an_older_view_is_read_read_only(tmp_path):
    """A database whose views an older tagkit made (only the `latest_predictions` view changed, NULL tags to empty)
    was refused by the read-only readers ("written by another version of tagkit"): they read no view."""
    path = tmp_path / "t.db"
    with Store(path) as store:
        store.upsert_products([Product("a", title="کیف")])
    conn = sqlite3.connect(path)
    conn.execute("drop view latest_predictions")
    conn.execute("create view latest_predictions as select product_id, tags from predictions")
    conn.commit()
    conn.close()
    with Store(path, read_only=True) as store:
        assert store.product("a") is not None
    with Store(path) as store:  # a writer brings the view up to date
        assert "tag_scores" in {column.name for column in store.db.view("latest_predictions").columns}


def test_a_category_level_holding_a_full_width_sign_reads_back_as_stored(store):
    """`＞` splits a path as it is read from a file; a level of a stored path that holds one stays whole."""
    store.upsert_products([Product("a", title="t", category=("پوشاک", "A＞B"))])
    stored = store.product("a")
    assert stored is not None and stored.category == ("پوشاک", "A＞B")


def test_modules_are_attributes_of_the_package():
    """`tagkit.lock.WriterLock`, as README writes it, after a plain `import tagkit` (a fresh interpreter)."""
    import subprocess
    import sys

    code = "import tagkit; print(tagkit.lock.WriterLock.__name__, tagkit.feedback.record.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["WriterLock", "record"], done.stderr


def test_every_exported_name_resolves_and_the_errors_are_exceptions():
    """`from tagkit import *`, `dir(tagkit)` (a notebook's completion) and the exceptions a script catches."""
    import tagkit

    assert set(tagkit.__all__) <= set(dir(tagkit))
    for name in tagkit.__all__:
        assert getattr(tagkit, name) is not None, name
    errors = ["ConfigError", "TaxonomyError", "NothingToLearn", "ModelNotFound", "ModelDamaged", "ModelMismatch",
              "ModelError", "OutputError", "FeedbackFileError", "Locked", "ReadOnlyError", "NotTagkitDatabase",
              "NewerDatabase"]
    for name in errors:
        assert issubclass(getattr(tagkit, name), Exception) and name in tagkit.__all__, name
    assert issubclass(tagkit.ModelDamaged, tagkit.ModelNotFound)

