"""The SQLite store: schema, WAL, transactions, the features cache."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from tagkit.product import Problem, Product, Tag
from tagkit.store import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "tagkit.db") as opened:
        yield opened


def test_schema_has_every_table_and_wal(store, tmp_path):
    conn = sqlite3.connect(tmp_path / "tagkit.db")
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    assert {"products", "features", "models", "predictions", "feedback", "taxonomy", "runs", "problems"} <= tables
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


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


def test_read_only_opens_no_new_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no database at"):
        Store(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


def test_modules_are_attributes_of_the_package():
    """`tagkit.lock.WriterLock`, as README writes it, after a plain `import tagkit` (a fresh interpreter)."""
    import subprocess
    import sys

    code = "import tagkit; print(tagkit.lock.WriterLock.__name__, tagkit.feedback.record.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["WriterLock", "record"], done.stderr
