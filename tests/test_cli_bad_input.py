"""What a user gets from `tagkit` when the input, the database or the output is not what it should be: clear
messages, the documented exit codes, and nothing stored or exported lost. Real commands on the demo data."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import pty
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import copy_db, write_csv

from tagkit.catalogue import plain_cell
from tagkit.cli import main
from tagkit.exitcodes import ExitCode
from tagkit.image import ImageError, read_image_bytes
from tagkit.predicting import store_predictions
from tagkit.queue import load_items, review_queue
from tagkit.store import Store

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"
TAGKIT = Path(sys.executable).with_name("tagkit")
F_SETPIPE_SZ = 1031  # Linux: set a pipe's buffer size


def tagkit(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def demo_rows(name: str = "test.csv") -> list[dict[str, str]]:
    with (DEMO / name).open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def absolute_images(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{**row, "image": str(DEMO / row["image"]) if row["image"] else ""} for row in rows]


def run_status(db: Path, command: str) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("select status from runs where command = ? order by id desc", [command]).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def db(demo_predicted: Path, tmp_path: Path) -> Path:
    return copy_db(demo_predicted, tmp_path / "tagkit.db")


# -- stdout carries the data, also under a progress bar ------------------------------------------------


def test_export_to_stdout_is_complete_when_stderr_is_a_terminal(db: Path):
    """The progress bar (drawn because stderr is a terminal) must not swallow what goes to stdout."""
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run([str(TAGKIT), "--db", str(db), "predict", str(DEMO / "new"), "--products",
                               str(DEMO / "new.csv"), "--export", "csv", "--force"],
                              stdout=subprocess.PIPE, stderr=secondary, timeout=300)
    finally:
        os.close(secondary)
        os.close(primary)
    assert done.returncode == ExitCode.OK
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode("utf-8"))))
    assert len(rows) == 60 and all(row["id"] and row["category"] for row in rows)


# -- eval ----------------------------------------------------------------------------------------------


def test_eval_with_bad_rows_exits_partial(db: Path, tmp_path: Path):
    path = write_csv(tmp_path / "test.csv", absolute_images(demo_rows()[:20]))
    with path.open("a", encoding="utf-8") as f:
        f.write('"unclosed,quote\n')
    result = tagkit(db, "eval", str(path), "--json")
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    assert json.loads(result.stdout)["products"] == 20
    assert run_status(db, "eval") == "partial"


def test_eval_without_labels_says_so(db: Path, tmp_path: Path):
    path = write_csv(tmp_path / "unlabelled.csv", absolute_images(demo_rows()[:5]), ["id", "title", "image"])
    result = tagkit(db, "eval", str(path))
    assert result.exit_code == ExitCode.NO_MODEL
    assert "no product with a category or tags" in result.stderr and str(path) in result.stderr


def test_an_id_repeated_in_another_chunk_is_scored_once(db: Path, tmp_path: Path):
    rows = [{"id": f"e{n:04d}", "title": row["title"], "category": row["category"], "tags": row["tags"]}
            for n, row in enumerate(demo_rows() * 6)]  # 600 rows: more than one chunk of 512
    rows[580] = {**rows[1], "title": rows[580]["title"]}  # row 582 repeats the id of row 3
    result = tagkit(db, "eval", str(write_csv(tmp_path / "dup.csv", rows)), "--json")
    assert result.exit_code == ExitCode.PARTIAL  # the duplicate is reported
    assert "replaces row 3" in result.stderr
    assert json.loads(result.stdout)["products"] == 599


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_an_id_repeated_in_another_chunk_is_exported_once(db: Path, tmp_path: Path, fmt: str):
    """It was exported twice, the replaced row first: a spreadsheet look-up found the stale prediction. In a file
    the later row's prediction takes the first one's place (as in the database); a stream still repeats it."""
    rows = [{"id": f"e{n:04d}", "title": row["title"], "category": row["category"], "tags": row["tags"]}
            for n, row in enumerate(demo_rows() * 6)]  # 600 rows: more than one chunk of 512
    rows[580] = {**rows[1], "title": "Oakrest 30L Backpack, a later row of e0001"}  # row 582 repeats e0001
    rows[2]["id"] = "=e0002"  # an id the CSV export writes as '=e0002 (the re-audit): row 592 repeats it
    rows[590] = {**rows[590], "id": "=e0002", "title": "a later row of =e0002"}
    products, out = write_csv(tmp_path / "dup.csv", rows), tmp_path / f"predictions.{fmt}"
    assert tagkit(db, "predict", str(products), "-o", str(out)).exit_code == ExitCode.PARTIAL
    text = out.read_text("utf-8")
    if fmt == "csv":
        exported = [(plain_cell(row["id"]), row["title"]) for row in csv.DictReader(io.StringIO(text, newline=""))]
    else:
        records = [json.loads(line) for line in text.splitlines()] if fmt == "jsonl" else json.loads(text)
        exported = [(record["id"], record["title"]) for record in records]
    assert [i for i, _ in exported] == [row["id"] for n, row in enumerate(rows) if n not in (580, 590)]
    assert exported[1] == ("e0001", "Oakrest 30L Backpack, a later row of e0001")
    assert exported[2] == ("=e0002", "a later row of =e0002")
    streamed = tagkit(db, "-q", "predict", str(products), "--export", "csv").stdout
    assert [row["id"] for row in csv.DictReader(io.StringIO(streamed))].count("e0001") == 2


# -- inputs that cannot be read at all ------------------------------------------------------------------


def test_unreadable_input_exits_2_and_keeps_the_last_export(db: Path, tmp_path: Path):
    out = tmp_path / "out.csv"
    assert tagkit(db, "predict", str(DEMO / "new.csv"), "-o", str(out)).exit_code == ExitCode.OK
    before = out.read_bytes()
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes((DEMO / "new.csv").read_text("utf-8").encode("utf-16-le"))
    result = tagkit(db, "predict", str(utf16), "-o", str(out))
    assert result.exit_code == ExitCode.USAGE
    assert "NUL bytes" in result.stderr and "UTF-16" in result.stderr
    assert f"nothing usable could be read from {utf16}" in result.stderr
    assert out.read_bytes() == before
    assert run_status(db, "predict") == "failed"
    assert tagkit(db, "eval", str(utf16)).exit_code == ExitCode.USAGE


def test_images_all_missing_are_summed_up_with_where_they_were_looked_for(tmp_path: Path):
    """A products file moved away from its photos: each row's problem used to be printed, 30,921 lines for the
    fashion catalogue with its tar not there. Twenty of one cause are printed, then a count, and a note says where
    image paths are read from; every problem is still in the problems table."""
    rows = [row for row in demo_rows("train.csv") if row["image"]]
    (tmp_path / "moved").mkdir()
    products = write_csv(tmp_path / "moved" / "products.csv", rows)
    result = tagkit(tmp_path / "t.db", "import", str(products))
    assert result.exit_code == ExitCode.PARTIAL, result.stderr
    shown = [line for line in result.stderr.splitlines() if "file not found" in line and "row " in line]
    assert len(shown) == 20 and shown[0].startswith(f"{products}, row 2, field 'image'")
    assert f"{len(rows) - 20:,} more problems like 'file not found' (field 'image') not shown" in result.stderr
    first = tmp_path / "moved" / rows[0]["image"]
    assert f"none of the {len(rows):,} image files was found (the first looked for: {first})" in result.stderr
    with Store(tmp_path / "t.db") as store:
        stored = store.db.execute("select count(*) from problems where message like '%file not found%'").fetchone()
    assert stored[0] == len(rows)


def test_train_on_a_file_read_only_in_part_makes_no_model(demo_db: Path, tmp_path: Path):
    """An English catalogue saved as Excel's plain 'CSV' (Windows-1252) with an `é` on row 40: reading stops there,
    and `train` made the newest model from the 38 rows before it; the nightly `predict` then used it."""
    rows = absolute_images(demo_rows("train.csv"))
    english = [row for row in rows if "".join(row.values()).isascii()][:100]
    english[38]["title"] += " – Café"
    products = tmp_path / "en1252.csv"
    body = write_csv(tmp_path / "utf8.csv", english).read_text("utf-8")
    products.write_bytes(body.encode("cp1252"))
    with Store(demo_db) as store:
        before = [v["id"] for v in store.db.query("select id from models")]
    result = tagkit(demo_db, "train", str(products), "--json")
    assert result.exit_code == ExitCode.USAGE, result.stderr
    assert "read only up to line 40" in result.stderr and "no model is trained" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 2 and summary["import"]["products_read"] == 38
    with Store(demo_db) as store:
        assert [v["id"] for v in store.db.query("select id from models")] == before
        assert store.db.execute("select count(*) from products where id = ?", [english[0]["id"]]).fetchone()[0] == 1


def test_a_device_is_not_read_as_an_image():
    with pytest.raises(ImageError, match="not a regular file"):
        read_image_bytes("/dev/zero", "/dev/zero")


def test_a_file_too_large_is_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import tagkit.image

    monkeypatch.setattr(tagkit.image, "MAX_FILE_BYTES", 100)
    with pytest.raises(ImageError, match="file too large"):
        read_image_bytes(DEMO / demo_rows()[0]["image"], "big.jpg")


# -- the database and the output file -------------------------------------------------------------------


def test_a_numbers_package_is_not_imported_as_a_folder_of_photos(tmp_path: Path):
    """A Numbers spreadsheet saved as a package (a folder of Index/, Data/, preview.jpg): its preview pictures were
    stored as products, exit 0."""
    package = tmp_path / "Pkg.numbers"
    (package / "Data").mkdir(parents=True)
    shutil.copy(DEMO / "images" / "dm-0001.jpg", package / "preview.jpg")
    shutil.copy(DEMO / "images" / "dm-0002.jpg", package / "Data" / "image-small-1234.jpg")
    result = tagkit(tmp_path / "n.db", "import", str(package), "--no-images")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "is a Numbers spreadsheet saved as a package" in result.stderr
    assert "File > Export To > CSV" in result.stderr
    with Store(tmp_path / "n.db") as store:
        assert store.product("preview.jpg") is None


def test_a_file_that_is_not_a_database(tmp_path: Path):
    fake = tmp_path / "tagkit.db"
    fake.write_text("id,title\n1,a\n", "utf-8")
    for args in (["stats"], ["models"], ["predict", str(DEMO / "new.csv")]):
        result = tagkit(fake, *args)
        assert result.exit_code == ExitCode.USAGE, args
        assert "cannot open the database" in result.stderr and "not a database" in result.stderr
    assert fake.read_text("utf-8") == "id,title\n1,a\n"


def test_models_with_a_mistyped_db_creates_nothing_and_none_trained_is_exit_4(tmp_path: Path):
    result = tagkit(tmp_path / "typo.db", "models")
    assert result.exit_code == ExitCode.USAGE and "no database" in result.stderr
    assert not (tmp_path / "typo.db").exists()
    assert tagkit(tmp_path / "empty.db", "import", str(DEMO / "new.csv")).exit_code in (ExitCode.OK,
                                                                                         ExitCode.PARTIAL)
    for args in (["models"], ["models", "--json"]):
        result = tagkit(tmp_path / "empty.db", *args)
        assert result.exit_code == ExitCode.NO_MODEL and "no trained model" in result.stderr
    assert json.loads(result.stdout)["exit_code"] == ExitCode.NO_MODEL  # an error, as README says, not []


def test_output_in_a_missing_folder_and_products_with_a_file(db: Path, tmp_path: Path):
    result = tagkit(db, "predict", str(DEMO / "new.csv"), "-o", str(tmp_path / "nosuch" / "out.csv"))
    assert result.exit_code == ExitCode.USAGE and "does not exist" in result.stderr
    result = tagkit(db, "predict", str(DEMO / "new.csv"), "--products", str(DEMO / "new.csv"))
    assert result.exit_code == ExitCode.USAGE and "is a file" in result.stderr


def test_output_that_is_an_input_is_refused(db: Path, tmp_path: Path):
    """-o naming the file being read, the --products file or the database (also through a link) is a usage error,
    and that file stays as it was."""
    products = shutil.copy(DEMO / "new.csv", tmp_path / "new.csv")
    (tmp_path / "link.csv").symlink_to(products)
    before = Path(products).read_bytes(), db.read_bytes()
    for args in (["predict", str(products), "-o", str(products)],
                 ["predict", str(products), "-o", str(tmp_path / "link.csv")],
                 ["predict", str(DEMO / "new"), "--products", str(products), "-o", str(products)],
                 ["predict", str(products), "-o", str(db)],
                 ["predict", str(products), "-o", f"{db}-wal"],
                 ["predict", str(products), "-o", f"{db}.models/20261201-000000-000/version.json"],
                 ["feedback", "export", "-o", str(db)]):
        result = tagkit(db, *args)
        assert result.exit_code == ExitCode.USAGE, args
        assert "the export would replace it" in result.stderr or "belongs to the database" in result.stderr
    assert (Path(products).read_bytes(), db.read_bytes()) == before


def test_output_onto_the_files_of_a_linked_database_is_refused(db: Path, tmp_path: Path):
    """With --db a link, the lock sits next to the link and the models next to the file it leads to (under the
    link's name): -o onto either is refused too, and the lock stays a lock."""
    linked = tmp_path / "lnk"
    linked.mkdir()
    (linked / "shop.db").symlink_to(db)
    assert tagkit(linked / "shop.db", "stats").exit_code == ExitCode.OK
    for target in (linked / "shop.db.lock", db.with_name("shop.db.models") / "x.csv", f"{db}-wal"):
        result = tagkit(linked / "shop.db", "feedback", "export", "-o", str(target))
        assert result.exit_code == ExitCode.USAGE and "belongs to the database" in result.stderr, target


def test_no_model_writes_no_export(tmp_path: Path):
    result = tagkit(tmp_path / "empty.db", "predict", str(DEMO / "new.csv"), "--export", "json")
    assert result.exit_code == ExitCode.NO_MODEL
    assert result.stdout == ""


def test_a_moved_project_keeps_its_models(demo_predicted: Path, tmp_path: Path):
    project = tmp_path / "moved"
    project.mkdir()
    db = copy_db(demo_predicted, project / "tagkit.db")
    shutil.copytree(demo_predicted.with_name("tagkit.db.models"), project / "tagkit.db.models")
    with Store(db) as store, store.transaction():  # as if trained elsewhere: the recorded folder is gone
        store.db.execute("update models set path = ?", [str(tmp_path / "gone" / "x")])
    listed = json.loads(tagkit(db, "models", "--json").stdout)
    assert listed and all(m["available"] and m["path"].startswith(str(project)) for m in listed)
    assert tagkit(db, "predict", str(DEMO / "new.csv")).exit_code == ExitCode.OK


# -- what is stored stays ------------------------------------------------------------------------------


def test_predict_keeps_the_stored_labels_of_a_product(db: Path, tmp_path: Path):
    labelled = absolute_images(demo_rows("train.csv")[:10])
    assert tagkit(db, "import", str(write_csv(tmp_path / "labelled.csv", labelled))).exit_code == ExitCode.OK
    with Store(db) as store:
        before = {p.id: (p.category, p.tags) for p in store.iter_products() if p.id in {r["id"] for r in labelled}}
    assert all(category for category, _ in before.values())
    unlabelled = write_csv(tmp_path / "new.csv", labelled, ["id", "title", "image"])
    result = tagkit(db, "predict", str(unlabelled))
    assert result.exit_code == ExitCode.OK
    with Store(db) as store:
        after = {p.id: (p.category, p.tags) for p in store.iter_products() if p.id in before}
    assert after == before


# -- misspelt columns -------------------------------------------------------------------------------------


def test_a_misspelt_column_is_named_with_the_field_it_looks_like(tmp_path: Path):
    path = tmp_path / "typo.csv"
    path.write_text("id,titel,catgory\n1,Blue jeans,Apparel\n", "utf-8")
    result = tagkit(tmp_path / "tagkit.db", "import", str(path), "--no-images")
    assert "titel (did you mean 'title'?)" in result.stderr
    assert "catgory (did you mean 'category'?)" in result.stderr
    # `train` on such a file: nothing could be read (exit 2, its problems in --json), not "nothing to learn" (4)
    trained = tagkit(tmp_path / "tagkit.db", "train", str(path), "--json")
    assert trained.exit_code == ExitCode.USAGE and "nothing could be read" in trained.stderr
    assert "no title, description or image column" in json.loads(trained.stdout)["problems"][0]["message"]


def test_a_misspelt_mapping_is_named_not_offered_as_the_fix(tmp_path: Path):
    """`--map title=titel` on a file with a `title` column: the note used to say `title (did you mean 'titel'?)`."""
    path = tmp_path / "p.csv"
    path.write_text("id,title\n1,Blue jeans\n", "utf-8")
    result = tagkit(tmp_path / "tagkit.db", "import", str(path), "--no-images", "--map", "title=titel")
    assert "column 'titel' (mapped to title) is not in the file (did you mean 'title'?)" in result.stderr
    assert "did you mean 'titel'" not in result.stderr


# -- stopped from outside -------------------------------------------------------------------------------


def wait_for_run(db: Path, process: subprocess.Popen, command: str) -> None:
    """Until `process` has recorded its run (it holds the lock and has begun the work)."""
    while True:
        assert process.poll() is None, process.communicate()
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                if conn.execute("select count(*) from runs where command = ?", [command]).fetchone()[0]:
                    return
            finally:
                conn.close()
        except sqlite3.OperationalError:
            pass  # not created yet
        time.sleep(0.02)


def test_ctrl_c_exits_130_and_records_an_interrupted_run(tmp_path: Path):
    """(The child gets SIGINT's default action back: started as a background job, `nohup pytest &` or `make test &`,
    the tests ignore SIGINT, a child inherits that, and Python then never turns it into KeyboardInterrupt.)"""
    db = tmp_path / "tagkit.db"
    process = subprocess.Popen([str(TAGKIT), "--db", str(db), "train", str(DEMO / "train.csv")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    wait_for_run(db, process, "train")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == ExitCode.INTERRUPTED == 130, stderr
    assert "interrupted (Ctrl-C)" in stderr and "Traceback" not in stderr
    assert run_status(db, "train") == "interrupted"


def test_a_ctrl_c_between_a_write_and_its_commit_still_records_the_run_interrupted(tmp_path: Path):
    """A clean-clone CI run once saw `running` after Ctrl-C: the interrupt came while a transaction was open, so the
    run's `interrupted` went into it as a savepoint and was rolled back with it when the process ended. The open
    transaction is rolled back first; what was committed stays."""
    from tagkit.cli import Context

    db = tmp_path / "tagkit.db"
    with pytest.raises(KeyboardInterrupt), Context(db, quiet=True).run("import", {}, "importing") as run:
        run.store.db.table("meta").upsert({"key": "kept", "value": "1"}, pk="key")  # committed: stays
        run.store.db.conn.commit()
        run.store.db.conn.execute("BEGIN IMMEDIATE")
        run.store.db.table("meta").upsert({"key": "half", "value": "1"}, pk="key")
        raise KeyboardInterrupt
    assert run_status(db, "import") == "interrupted"
    conn = sqlite3.connect(db)
    try:
        assert {k for (k,) in conn.execute("select key from meta where key in ('kept', 'half')")} == {"kept"}
    finally:
        conn.close()
    with Store(db) as store:
        with pytest.raises(KeyboardInterrupt), store.transaction():
            store.db.table("meta").upsert({"key": "half", "value": "1"}, pk="key")
            raise KeyboardInterrupt
        assert not store.db.conn.in_transaction


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path: Path):
    """`kill`, `timeout` and service managers send SIGTERM: the run used to die at once (exit 143, no message,
    its temporary files left and its row `running` until the next writer came)."""
    db, log = tmp_path / "tagkit.db", tmp_path / "tagkit.log"
    process = subprocess.Popen([str(TAGKIT), "--db", str(db), "--log-file", str(log), "train", str(DEMO / "train.csv"),
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_run(db, process, "train")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == ExitCode.TERMINATED == 143, stderr
    assert "stopped (SIGTERM)" in stderr and "Traceback" not in stderr
    assert json.loads(stdout) == {"error": stderr.splitlines()[-1].removeprefix("error: "), "exit_code": 143}
    assert run_status(db, "train") == "interrupted"
    assert "train interrupted: run #1" in log.read_text("utf-8")
    assert not [p for p in (tmp_path / "tagkit.db.models").glob("*")], "no half model version"


def test_json_says_why_a_command_failed(db: Path, tmp_path: Path):
    """`--json > last-run.json` in cron: a run that fails used to leave that file empty."""
    from tagkit.lock import WriterLock

    with WriterLock(db, "train"):
        locked = tagkit(db, "predict", str(DEMO / "new.csv"), "--json")
    assert locked.exit_code == ExitCode.LOCKED
    said = json.loads(locked.stdout)
    assert said["exit_code"] == 6 and "another tagkit process" in said["error"]
    missing = tagkit(tmp_path / "nowhere" / "x.db", "train", str(DEMO / "train.csv"), "--json")
    assert missing.exit_code == ExitCode.USAGE and "Usage:" not in missing.stderr, "a database problem, not usage"
    assert json.loads(missing.stdout) == {"error": missing.stderr.strip().removeprefix("error: "), "exit_code": 2}
    no_model = tagkit(tmp_path / "empty.db", "predict", str(DEMO / "new.csv"), "--json")
    assert no_model.exit_code == ExitCode.NO_MODEL and json.loads(no_model.stdout)["exit_code"] == 4
    usage = tagkit(db, "predict", str(DEMO / "new.csv"), "--json", "--export", "csv")
    assert usage.exit_code == ExitCode.USAGE and json.loads(usage.stdout)["exit_code"] == 2
    scored = tagkit(db, "eval", str(DEMO / "new.csv"), "--json")  # eval prints its own summary: once
    assert scored.exit_code == ExitCode.NO_MODEL and "error" not in json.loads(scored.stdout)
    bad = tmp_path / "bad.yaml"
    bad.write_text("attributes:\n  - {name: colour}\n", encoding="utf-8")
    refused = tagkit(db, "taxonomy", "import", str(bad), "--json")
    assert refused.exit_code == ExitCode.USAGE and "no values" in json.loads(refused.stdout)["error"]
    none = tagkit(db, "taxonomy", "show", "--json")
    assert none.exit_code == ExitCode.NO_MODEL and "no taxonomy" in json.loads(none.stdout)["error"]
    assert tagkit(db, "taxonomy", "import", "en-fashion").exit_code == ExitCode.OK
    unknown = tagkit(db, "taxonomy", "show", "--attribute", "nosuch", "--json")
    assert unknown.exit_code == ExitCode.USAGE and json.loads(unknown.stdout)["error"].startswith("no attribute")
    assert json.loads(tagkit(db, "taxonomy", "show", "--attribute", "Usage", "--json").stdout)["name"] == "usage"
    as_yaml = tagkit(db, "taxonomy", "show", "--attribute", "Usage", "--yaml").stdout
    assert as_yaml.startswith("- name: usage") and "color" not in as_yaml
    assert tagkit(db, "taxonomy", "show", "--attribute", "usage", "--tree").exit_code == ExitCode.USAGE


@contextmanager
def small_disk(target: Path, size: str):
    """A tmpfs of `size` at `target` (needs the right to mount: root on Linux)."""
    target.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True,
                          text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a small disk here: {done.stderr.strip() or done.returncode}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def test_a_full_disk_is_a_message_and_exit_1(tmp_path: Path):
    with small_disk(tmp_path / "disk", "400k") as disk:
        db = disk / "tagkit.db"
        filled = tagkit(db, "import", str(DEMO / "train.csv"), "--json")  # fills the disk part of the way
        assert filled.exit_code == ExitCode.ERROR, filled.stderr
        assert "disk is full" in filled.stderr and json.loads(filled.stdout)["exit_code"] == 1
        again = tagkit(db, "import", str(DEMO / "test.csv"))  # on a disk already full
        assert again.exit_code == ExitCode.ERROR and "Usage:" not in again.stderr, again.stderr
        assert "disk is full" in again.stderr or "No space left" in again.stderr
        with Store(db) as store:  # what was stored before is whole
            assert store.db.execute("pragma integrity_check").fetchone()[0] == "ok"


def test_a_closed_stdout_stops_predict_quietly(db: Path):
    read, write = os.pipe()
    fcntl.fcntl(write, F_SETPIPE_SZ, 4096)  # the export (about 20 kB) cannot all wait in the pipe
    process = subprocess.Popen([str(TAGKIT), "--db", str(db), "predict", str(DEMO / "new"), "--products",
                                str(DEMO / "new.csv"), "--export", "csv", "--force"],
                               stdout=write, stderr=subprocess.PIPE, text=True)
    os.close(write)
    with os.fdopen(read, "rb") as out:
        assert out.readline().startswith(b"id,title,category")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == ExitCode.OUTPUT_CLOSED == 141, stderr
    assert "output was closed" in stderr and "Traceback" not in stderr and "Exception ignored" not in stderr
    assert run_status(db, "predict") == "interrupted"


def test_stdout_and_stderr_in_one_closed_pipe_exit_141(db: Path, tmp_path: Path):
    """`tagkit ... 2>&1 | head -2`: the message about the closed output cannot be written either."""
    read, write = os.pipe()
    fcntl.fcntl(write, F_SETPIPE_SZ, 4096)
    log = tmp_path / "tagkit.log"
    process = subprocess.Popen([str(TAGKIT), "--db", str(db), "--log-file", str(log), "predict", str(DEMO / "new"),
                                "--products", str(DEMO / "new.csv"), "--export", "csv", "--force"],
                               stdout=write, stderr=write)
    os.close(write)
    with os.fdopen(read, "rb") as out:
        out.readline()
    assert process.wait(timeout=300) == ExitCode.OUTPUT_CLOSED
    assert "the output was closed" in log.read_text("utf-8")
    assert run_status(db, "predict") == "interrupted"


def test_a_row_naming_a_file_that_several_images_have_says_so(tmp_path: Path):
    photo = DEMO / demo_rows()[0]["image"]
    for sub in ("s1", "s2"):
        (tmp_path / "photos" / sub).mkdir(parents=True)
        shutil.copy(photo, tmp_path / "photos" / sub / "a.jpg")
    products = tmp_path / "products.csv"
    products.write_text("id,title,image\nx1,Blue mug,a.jpg\n", "utf-8")
    result = tagkit(tmp_path / "tagkit.db", "import", str(tmp_path / "photos"), "--products", str(products),
                    "--no-images")
    assert result.exit_code == ExitCode.USAGE  # its only row matches no one image: the folder is left alone
    assert "2 images in" in result.stderr and "s1/a.jpg, s2/a.jpg" in result.stderr


# -- round two: cron and read-only commands ------------------------------------------------------------------


def test_an_unreadable_products_file_leaves_the_stored_titles(db: Path, tmp_path: Path):
    out = tmp_path / "out.csv"
    assert tagkit(db, "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv"), "-o", str(out),
                  "--json").exit_code == ExitCode.OK
    with Store(db) as store:
        titles = {p.id: p.title for p in store.iter_products() if p.title}
    before = out.read_bytes()
    empty = tmp_path / "empty.csv"
    empty.write_text("", "utf-8")
    result = tagkit(db, "predict", str(DEMO / "new"), "--products", str(empty), "-o", str(out), "--json")
    assert result.exit_code == ExitCode.USAGE
    assert "no product could be read from it" in result.stderr
    assert json.loads(result.stdout)["problems"], "the --json summary is printed, problems included"
    with Store(db) as store:
        assert {p.id: p.title for p in store.iter_products() if p.title} == titles
    assert out.read_bytes() == before


def test_eval_json_has_the_problems(db: Path, tmp_path: Path):
    rows = absolute_images(demo_rows()[:5])
    rows[0] = {**rows[0], "image": str(tmp_path / "missing.jpg")}
    result = tagkit(db, "eval", str(write_csv(tmp_path / "test.csv", rows)), "--json")
    assert result.exit_code == ExitCode.PARTIAL
    summary = json.loads(result.stdout)
    assert summary["import"]["products_read"] == 5
    assert any("missing.jpg" in p["message"] and p["row"] == 2 for p in summary["problems"])


def test_usage_errors_go_to_the_log_file(tmp_path: Path):
    log = tmp_path / "tagkit.log"
    result = CliRunner().invoke(main, ["-q", "--log-file", str(log), "--db", str(tmp_path / "t.db"), "predict",
                                       str(tmp_path / "nonexistent.csv")])
    assert result.exit_code == ExitCode.USAGE
    assert "nonexistent.csv" in log.read_text("utf-8") and "(exit code 2)" in log.read_text("utf-8")


def test_readers_of_a_mistyped_database_create_nothing(tmp_path: Path):
    typo = tmp_path / "typo.db"
    for args in (["feedback", "export"], ["taxonomy", "show"], ["taxonomy", "suggest"], ["stats"]):
        result = tagkit(typo, *args)
        assert result.exit_code == ExitCode.USAGE and "no database at" in result.stderr, args
    assert not typo.exists()


def test_predict_and_eval_in_the_wrong_folder_create_no_database(tmp_path: Path):
    """Cron without `cd`: predict and eval need a model, so a missing database is said as such (exit 4, its full
    path), and no empty database is left behind for the next `tagkit train` to fill by mistake."""
    typo = tmp_path / "typo.db"
    for args in (["predict", str(DEMO / "test.csv")], ["eval", str(DEMO / "test.csv")]):
        result = tagkit(typo, *args)
        assert result.exit_code == ExitCode.NO_MODEL, (args, result.stderr)
        assert f"no database at {typo.absolute()}" in result.stderr, args
    assert not typo.exists() and not list(tmp_path.iterdir())


def test_a_database_copied_without_its_models_folder_says_which_folder_is_missing(demo_db: Path):
    with Store(demo_db) as store:  # as a copy on a laptop: no folder beside it, none where it was trained
        store.db.execute("update models set path = '/nowhere/tagkit.db.models/' || id")
        store.db.conn.commit()
    result = tagkit(demo_db, "predict", str(DEMO / "test.csv"))
    assert result.exit_code == ExitCode.NO_MODEL
    message = " ".join(result.stderr.split())
    assert "records 1 model version(s), but none has its folder" in message
    assert f"{demo_db.resolve()}.models/" in message and "copy that models folder beside the database" in message


def test_an_option_of_tagkit_itself_after_the_command_says_where_it_goes(tmp_path: Path):
    result = CliRunner().invoke(main, ["stats", "--db", str(tmp_path / "t.db")])
    assert result.exit_code == ExitCode.USAGE
    assert "--db is an option of tagkit itself: give it before the command (`tagkit --db ... stats ...`)" in \
        result.stderr


def test_a_read_only_store_reads_and_refuses_to_write(db: Path):
    with Store(db) as store:
        facts = store.stats()
    with Store(db, read_only=True) as store:
        assert store.stats() == facts
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.start_run("stats", {})


@contextmanager
def mounted_read_only(source: Path, target: Path):
    """`source` (a folder or a file) seen read-only at `target` (needs the right to mount: root on Linux)."""
    done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip() or done.returncode}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True, text=True)
        if remount.returncode:
            pytest.skip(f"cannot make a read-only mount here: {remount.stderr.strip()}")
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True)


@pytest.fixture
def read_only_folder(db: Path, tmp_path: Path):
    """The database's folder mounted read-only at another place."""
    (tmp_path / "read-only").mkdir()
    with mounted_read_only(db.parent, tmp_path / "read-only") as mount:
        yield mount


def test_readers_open_a_database_in_a_read_only_folder(db: Path, read_only_folder: Path):
    shown = read_only_folder / db.name
    for args in (["stats", "--json"], ["models", "--json"], ["feedback", "export"], ["taxonomy", "suggest"]):
        result = tagkit(shown, *args)
        assert result.exit_code == ExitCode.OK, (args, result.stderr)
    assert json.loads(tagkit(shown, "stats", "--json").stdout)["tables"] == \
        json.loads(tagkit(db, "stats", "--json").stdout)["tables"]
    assert json.loads(tagkit(shown, "models", "--json").stdout)
    result = tagkit(shown, "predict", str(DEMO / "new.csv"))  # a writer says why it cannot
    assert result.exit_code == ExitCode.USAGE and "Read-only file system" in result.stderr


def test_a_read_only_copy_with_unread_changes_is_refused(db: Path, tmp_path: Path):
    """Changes still in the -wal file cannot be read without its -shm file: refused, not silently left out."""
    copy = tmp_path / "copy"
    copy.mkdir()
    writer = sqlite3.connect(db)  # holds the database open: the change stays in the -wal file
    try:
        writer.execute("pragma wal_autocheckpoint=0")
        writer.execute("insert into products (id, title) values ('late', 'added last')")
        writer.commit()
        for suffix in ("", "-wal"):
            shutil.copy(str(db) + suffix, str(copy / db.name) + suffix)
    finally:
        writer.close()
    (tmp_path / "seen").mkdir()
    with mounted_read_only(copy, tmp_path / "seen") as seen:
        result = tagkit(seen / db.name, "stats")
    assert result.exit_code == ExitCode.USAGE
    assert f"its latest changes are in {db.name}-wal" in result.stderr


def test_an_older_database_in_a_read_only_folder_says_why_it_cannot_be_read(db: Path, tmp_path: Path):
    old = tmp_path / "old"
    old.mkdir()
    source = sqlite3.connect(db)
    source.execute("vacuum into ?", [str(old / "tagkit.db")])
    source.close()
    conn = sqlite3.connect(old / "tagkit.db")
    conn.execute("alter table predictions drop column input_key")  # as before that column was added
    conn.commit()
    conn.close()
    (tmp_path / "seen").mkdir()
    with mounted_read_only(old, tmp_path / "seen") as seen:
        result = tagkit(seen / "tagkit.db", "stats")
    assert result.exit_code == ExitCode.USAGE and "written by another version of tagkit" in result.stderr


def test_writers_on_a_read_only_database_file_exit_2(db: Path, tmp_path: Path):
    (tmp_path / "ro").mkdir()
    shown = tmp_path / "ro" / db.name
    shown.touch()
    with mounted_read_only(db, shown):
        result = tagkit(shown, "import", str(DEMO / "new.csv"), "--no-images")
        assert result.exit_code == ExitCode.USAGE and "cannot be written" in result.stderr
        assert tagkit(shown, "stats").exit_code == ExitCode.OK


def test_output_through_a_link_or_into_a_pipe(db: Path, tmp_path: Path):
    target = tmp_path / "real.csv"
    target.write_text("old\n", "utf-8")
    target.chmod(0o640)
    (tmp_path / "link.csv").symlink_to(target)
    assert tagkit(db, "predict", str(DEMO / "new.csv"), "-o", str(tmp_path / "link.csv")).exit_code == ExitCode.OK
    assert (tmp_path / "link.csv").is_symlink() and target.read_text("utf-8-sig").startswith("id,title")
    assert target.stat().st_mode & 0o777 == 0o640
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    assert tagkit(db, "predict", str(DEMO / "new.csv"), "-o", str(fifo)).exit_code == ExitCode.OK
    assert reader.communicate(timeout=60)[0].startswith(b"id,title") and fifo.is_fifo()


def test_a_reader_whose_stdout_closes_exits_141(demo_predicted: Path, tmp_path: Path):
    db = copy_db(demo_predicted, tmp_path / "tagkit.db")
    assert tagkit(db, "taxonomy", "import", str(DEMO.parent.parent / "taxonomy" / "fa-fashion.yaml")).exit_code == 0
    read, write = os.pipe()
    fcntl.fcntl(write, F_SETPIPE_SZ, 4096)
    process = subprocess.Popen([str(TAGKIT), "--db", str(db), "taxonomy", "show", "--tree"], stdout=write,
                               stderr=subprocess.PIPE, text=True)
    os.close(write)
    with os.fdopen(read, "rb") as out:
        out.readline()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == ExitCode.OUTPUT_CLOSED, stderr
    assert stderr == "", "a reader stopped by `| head` says nothing, as cat and grep (it wrote an error)"


def test_feedback_saved_with_semicolons_imports(db: Path, tmp_path: Path):
    with Store(db) as store:
        product, tags = next((p["product_id"], json.loads(p["tags"])) for p in store.db.table("predictions").rows
                             if json.loads(p["tags"]))
    sheet = tmp_path / "decisions.csv"  # as a spreadsheet in a `;` locale saves it
    sheet.write_text(f"product_id;field;predicted;decision\n{product};tag;{tags[0][0]};accept\n", "utf-8")
    first, again = tagkit(db, "feedback", "import", str(sheet)), tagkit(db, "feedback", "import", str(sheet))
    assert first.exit_code == again.exit_code == ExitCode.OK, first.stderr
    assert "1 decision added" in first.stderr
    assert "0 decisions added, 1 already there" in again.stderr


def test_a_model_whose_folder_is_gone_is_named(demo_predicted: Path, tmp_path: Path):
    db = copy_db(demo_predicted, tmp_path / "tagkit.db")
    with Store(db) as store, store.transaction():
        version = store.db.execute("select id from models").fetchone()[0]
        store.db.execute("update models set path = ?", [str(tmp_path / "gone")])
    result = tagkit(db, "predict", str(DEMO / "new.csv"), "--model", version)
    assert result.exit_code == ExitCode.NO_MODEL and f"{tmp_path / 'gone'} is missing" in result.stderr


# -- round three ---------------------------------------------------------------------------------------------


def test_a_products_file_with_a_header_only_leaves_the_stored_titles(db: Path, tmp_path: Path):
    assert tagkit(db, "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv")).exit_code == ExitCode.OK
    with Store(db) as store:
        titles = {p.id: p.title for p in store.iter_products() if p.title}
    header = tmp_path / "header.csv"
    header.write_text((DEMO / "new.csv").read_text("utf-8").splitlines()[0] + "\n", "utf-8")
    for products in (header, tmp_path / "empty.json"):
        if products.suffix == ".json":
            products.write_text("[]", "utf-8")
        result = tagkit(db, "predict", str(DEMO / "new"), "--products", str(products))
        assert result.exit_code == ExitCode.USAGE, products
        with Store(db) as store:
            assert {p.id: p.title for p in store.iter_products() if p.title} == titles


def test_output_to_dev_stdout_appends_to_a_redirect(db: Path, tmp_path: Path):
    log = tmp_path / "log.txt"
    log.write_text("keep me\n", "utf-8")
    with log.open("a") as out:
        done = subprocess.run([str(TAGKIT), "--db", str(db), "-q", "predict", str(DEMO / "new.csv"), "-o",
                               "/dev/stdout"], stdout=out, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == ExitCode.OK, done.stderr
    lines = log.read_text("utf-8").splitlines()
    assert lines[0] == "keep me" and lines[1].startswith("id,title") and len(lines) > 10


def test_output_through_a_link_into_a_missing_folder(db: Path, tmp_path: Path):
    (tmp_path / "out.csv").symlink_to(tmp_path / "nosuch" / "x.csv")
    result = tagkit(db, "predict", str(DEMO / "new.csv"), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == ExitCode.USAGE and "does not exist" in result.stderr


def test_a_table_whose_stdout_closes_exits_141(db: Path):
    read, write = os.pipe()
    os.close(read)  # nobody will read
    done = subprocess.run([str(TAGKIT), "--db", str(db), "stats"], stdout=write, stderr=subprocess.PIPE, text=True,
                          timeout=120)
    os.close(write)
    assert done.returncode == ExitCode.OUTPUT_CLOSED, done.stderr
    assert done.stderr == ""


def test_a_mistyped_command_goes_to_the_log_file(tmp_path: Path):
    log = tmp_path / "tagkit.log"
    result = CliRunner().invoke(main, ["-q", "--log-file", str(log), "predcit", "x.csv"])
    assert result.exit_code == ExitCode.USAGE
    assert "No such command 'predcit'" in log.read_text("utf-8")


def test_a_products_file_for_other_images_leaves_the_stored_titles(db: Path, tmp_path: Path):
    with Store(db) as store:
        titles = {p.id: p.title for p in store.iter_products() if p.title}
    other = tmp_path / "other.csv"
    other.write_text("id,title,image\nx1,Blue mug,elsewhere/x1.jpg\n", "utf-8")
    result = tagkit(db, "predict", str(DEMO / "new"), "--products", str(other))
    assert result.exit_code == ExitCode.USAGE and "none of its rows matches an image" in result.stderr
    with Store(db) as store:
        assert {p.id: p.title for p in store.iter_products() if p.title} == titles


def test_json_and_export_both_on_a_redirected_stdout(db: Path, tmp_path: Path):
    out = tmp_path / "both.txt"
    with out.open("w") as f:
        done = subprocess.run([str(TAGKIT), "--db", str(db), "-q", "predict", str(DEMO / "new.csv"), "--json", "-o",
                               "/dev/stdout"], stdout=f, stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == ExitCode.OK, done.stderr
    text = out.read_text("utf-8")
    export, summary = text[: text.index("\n{") + 1], text[text.index("\n{") + 1 :]
    assert len(list(csv.DictReader(io.StringIO(export)))) == json.loads(summary)["products"] > 20


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm on this machine")
def test_a_regular_file_under_dev_is_replaced_as_any_file(db: Path):
    path = Path("/dev/shm") / f"tagkit-test-{os.getpid()}.csv"
    path.write_text("old\n", "utf-8")
    try:
        assert tagkit(db, "predict", str(DEMO / "new.csv"), "-o", str(path)).exit_code == ExitCode.OK
        assert path.read_text("utf-8-sig").startswith("id,title")
    finally:
        path.unlink(missing_ok=True)


def test_a_log_file_that_cannot_be_opened_is_a_usage_error(tmp_path: Path):
    result = CliRunner().invoke(main, ["--log-file", str(tmp_path / "nosuch" / "t.log"), "stats"])
    assert result.exit_code == ExitCode.USAGE and "cannot append to" in result.stderr


def test_a_run_records_the_options_it_was_given(db: Path, tmp_path: Path):
    out = tmp_path / "out.csv"
    assert tagkit(db, "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv"), "-o", str(out),
                  "--top-k", "2").exit_code == ExitCode.OK
    conn = sqlite3.connect(db)
    try:
        args = json.loads(conn.execute("select args from runs where command = 'predict' order by id desc")
                          .fetchone()[0])
    finally:
        conn.close()
    assert (args["products"], args["output"], args["top_k"]) == (str(DEMO / "new.csv"), str(out), 2)


def test_a_product_with_nothing_to_predict_from_gets_nothing(db: Path, tmp_path: Path):
    """A broken image without a title is exported with no category and no tags (not the training prior), said so,
    kept out of the review queue, and scored wrong by eval."""
    folder = tmp_path / "new"
    folder.mkdir()
    shutil.copy(DEMO / "new" / sorted(os.listdir(DEMO / "new"))[0], folder / "good.jpg")
    (folder / "broken.jpg").write_text("not a picture", "utf-8")
    out = tmp_path / "out.csv"
    result = tagkit(db, "predict", str(folder), "-o", str(out), "--json")
    assert result.exit_code == ExitCode.PARTIAL  # the broken image is a problem
    assert (json.loads(result.stdout)["no_input"], json.loads(result.stdout)["empty"]) == (1, 1)
    again = json.loads(tagkit(db, "predict", str(folder), "-o", str(tmp_path / "again.csv"), "--json").stdout)
    assert (again["unchanged"], again["no_input"], again["empty"]) == (2, 1, 1)  # told again, not predicted again
    assert "1 of them had neither a title nor a readable image: nothing was predicted" in result.stderr
    rows = {row["id"]: row for row in csv.DictReader(out.open(encoding="utf-8-sig"))}
    good = next(i for i in rows if i != "broken.jpg")  # the stored product of that picture
    assert rows[good]["category"] and float(rows[good]["category_score"]) > 0
    assert [rows["broken.jpg"][k] for k in ("category", "category_score", "alternatives", "tags", "candidates")] \
        == [""] * 5
    with Store(db) as store:
        queued = {item.id for item in review_queue(store, order="id")}
        assert good in queued and "broken.jpg" not in queued
        # a prediction stored by a tagkit that gave such products the training prior is not reviewed either
        stale = replace(next(i for i in load_items(store) if i.id == good), id="broken.jpg")
        store_predictions(store, [stale])
        assert "broken.jpg" not in {item.id for item in load_items(store)}
    labelled = tmp_path / "labelled.csv"
    write_csv(labelled, [{"id": "x1", "title": "", "image": str(folder / "broken.jpg"),
                          "category": demo_rows()[0]["category"]}])
    scored = json.loads(tagkit(db, "eval", str(labelled), "--json").stdout)
    assert scored["products"] == 1 and scored["category"]["accuracy"] == 0.0
    assert scored["category"]["confused"] == []  # no answer, not a wrong one


def test_images_without_a_products_row_keep_their_stored_titles(db: Path, tmp_path: Path):
    """An image with no row (a row that cannot be read, a file listing other images, no file at all) says nothing
    of its product's title or labels: the stored ones stay, and its prediction is made from them."""
    assert tagkit(db, "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv")).exit_code == ExitCode.OK
    with Store(db) as store:
        titles = {p.id: p.title for p in store.iter_products() if p.title}
    lines = (DEMO / "new.csv").read_bytes().splitlines(keepends=True)
    broken_id = lines[2].split(b",")[0].decode()
    broken = tmp_path / "broken.csv"  # row 3 cannot be decoded, rows 4 onwards are not there
    broken.write_bytes(lines[0] + lines[1] + lines[2].replace(b",", b"\xff,", 1))
    out = tmp_path / "out.csv"
    result = tagkit(db, "predict", str(DEMO / "new"), "--products", str(broken), "-o", str(out))
    assert result.exit_code == ExitCode.PARTIAL and "row 3" in result.stderr
    assert "each is the product stored with the same picture" in result.stderr
    exported = {row["id"]: row["title"] for row in csv.DictReader(out.open(encoding="utf-8-sig"))}
    assert exported[broken_id] == titles[broken_id]
    assert tagkit(db, "predict", str(DEMO / "new"), "-o", str(out)).exit_code == ExitCode.OK
    with Store(db) as store:
        assert {p.id: p.title for p in store.iter_products() if p.title} == titles
    assert {k: v for k, v in ((r["id"], r["title"]) for r in csv.DictReader(out.open(encoding="utf-8-sig"))) if v} \
        == {k: v for k, v in titles.items() if k in exported}


def test_an_image_without_a_row_is_the_stored_product_of_that_picture(tmp_path: Path):
    """Matched by the picture's bytes: a product stored with its own id (a SKU) is not doubled by an untitled one,
    a renamed, linked or copied folder is the same products, pictures alike in bytes go by file name, and a
    titled product wins over an untitled one of the same picture."""
    db, folder = tmp_path / "tagkit.db", tmp_path / "shop"
    folder.mkdir()
    rows = [row for row in demo_rows() if row["image"]][:3]
    for row in rows:
        shutil.copy(DEMO / row["image"], folder / Path(row["image"]).name)
    shutil.copy(DEMO / rows[0]["image"], folder / "twin.jpg")  # the same picture twice, under two SKUs
    skus = [{**row, "id": f"SKU-{n}", "image": Path(row["image"]).name} for n, row in enumerate(rows)]
    skus.append({"id": "SKU-T", "title": "Twin", "image": "twin.jpg", "category": rows[0]["category"]})
    listed = write_csv(tmp_path / "skus.csv", skus, ["id", "title", "image", "category"])
    assert tagkit(db, "import", str(folder), "--products", str(listed),
                  "--no-images").exit_code == ExitCode.OK
    expected = {sku["id"]: sku["title"] for sku in skus}

    def titles() -> dict[str, str]:
        with Store(db) as store:
            return {p.id: p.title for p in store.iter_products()}

    moved = tmp_path / "shop-2026"
    shutil.move(folder, moved)
    (tmp_path / "link").symlink_to(moved)
    shutil.copytree(moved, tmp_path / "copy")
    for path in (moved, tmp_path / "link", tmp_path / "copy", moved):
        result = tagkit(db, "import", str(path), "--no-images")
        assert result.exit_code == ExitCode.OK, result.stderr
        assert titles() == expected, path
    plain, elsewhere = tmp_path / "plain", tmp_path / "elsewhere"  # an untitled product keeps its own file
    plain.mkdir()
    elsewhere.mkdir()
    shutil.copy(DEMO / demo_rows()[-2]["image"], plain / "p.jpg")
    assert tagkit(db, "import", str(plain), "--no-images").exit_code == ExitCode.OK
    shutil.copy(plain / "p.jpg", elsewhere / "shoe.jpg")  # the same picture, titled in another folder
    other_title = write_csv(tmp_path / "other.csv", [{"id": "shoe.jpg", "title": "Running shoe"}])
    assert tagkit(db, "import", str(elsewhere), "--products", str(other_title), "--no-images").exit_code == 0
    assert tagkit(db, "import", str(plain), "--no-images").exit_code == ExitCode.OK
    with Store(db) as store:
        assert (store.product("p.jpg").image, store.product("shoe.jpg").image) == \
            (str(plain / "p.jpg"), str(elsewhere / "shoe.jpg"))
    with Store(db) as store:
        assert store.product("SKU-T").image == str(moved / "twin.jpg")
    untitled = tmp_path / "untitled"  # a picture first seen alone, then in the catalogue with a title
    untitled.mkdir()
    shutil.copy(DEMO / demo_rows()[-1]["image"], untitled / "x.jpg")
    assert tagkit(db, "import", str(untitled), "--no-images").exit_code == ExitCode.OK
    write_csv(tmp_path / "catalogue.csv", [{"id": "SKU-X", "title": "Titled", "image": str(untitled / "x.jpg")}])
    assert tagkit(db, "import", str(tmp_path / "catalogue.csv"), "--no-images").exit_code == ExitCode.OK
    assert tagkit(db, "import", str(untitled), "--no-images").exit_code == ExitCode.OK
    assert titles()["SKU-X"] == "Titled" and titles()["x.jpg"] == ""  # the image went to SKU-X: x.jpg unchanged
    with Store(db) as store:
        assert store.product("SKU-X").image == str(untitled / "x.jpg")



def test_image_problems_are_told_in_row_order(tmp_path: Path):
    """An empty file is found when the images are hashed, a file that is not a picture when they are decoded:
    the messages still come in the folder's order."""
    folder = tmp_path / "new"
    folder.mkdir()
    for name in ("a.jpg", "c.jpg"):
        (folder / name).write_text("not a picture", "utf-8")
    for name in ("b.jpg", "d.jpg"):
        (folder / name).write_bytes(b"")
    result = tagkit(tmp_path / "tagkit.db", "import", str(folder))
    assert result.exit_code == ExitCode.PARTIAL
    told = [line.split(",")[1].strip() for line in result.stderr.splitlines() if "field 'image'" in line]
    assert told == ["row 1", "row 2", "row 3", "row 4"]


def test_a_model_that_cannot_read_what_products_have_says_so(tmp_path: Path):
    """A model trained on titles only has nothing to say about photos without titles: it says so, and does not
    blame the photos."""
    db = tmp_path / "tagkit.db"
    titles_only = write_csv(tmp_path / "titles.csv", demo_rows("train.csv"), ["id", "title", "category", "tags"])
    assert tagkit(db, "train", str(titles_only)).exit_code == ExitCode.OK
    result = tagkit(db, "predict", str(DEMO / "new"), "--json", "-o", str(tmp_path / "out.csv"))
    summary = json.loads(result.stdout)
    assert summary["no_input"] == 0 and summary["empty"] == summary["products"] > 0
    assert "neither a title nor a readable image" not in result.stderr
    assert f"{summary['empty']} got no category and no tag from model" in result.stderr


def test_a_quote_never_closed_is_told_and_its_lines_skipped(db: Path, tmp_path: Path):
    """An opened quote runs on to the next quote in the file, swallowing the rows in between: those lines are
    skipped and named, in a title or a description alike. Fields with line breaks of their own are fine."""
    broken = tmp_path / "broken.csv"
    broken.write_text('id,title,description,image\n'
                      'd1,Kronix Mug,"Great mug, 300 ml,,\n'
                      'd2,Blue bottle,,\n'
                      'd3,"Leather wallet, brown",,\n'
                      'd4,Red scarf,,\n', "utf-8")
    result = tagkit(db, "import", str(broken), "--no-images", "--json")
    assert result.exit_code == ExitCode.PARTIAL
    assert "row 2: lines 2 to 4 read as one row" in result.stderr and "Lines 2 to 4 skipped" in result.stderr
    assert json.loads(result.stdout)["products_read"] == 1  # d4
    lines = (DEMO / "new.csv").read_text("utf-8").splitlines()
    lines[2] = lines[2].replace(",", ',"', 1)  # a title opens a quote that no one closes
    in_title = tmp_path / "in_title.csv"
    in_title.write_text("\n".join(lines[:8]) + "\n", "utf-8")
    result = tagkit(db, "import", str(in_title), "--no-images")
    assert result.exit_code == ExitCode.PARTIAL and "row 3: lines 3 to" in result.stderr
    fine = tmp_path / "fine.csv"
    fine.write_text('id,title,description,image\nn1,"Nike Air Max 90\nWhite, Black, Red",,\n'
                    'd1,"Best" Mug,"multi\r\nline, ""glazed""",\n', "utf-8")
    result = tagkit(db, "import", str(fine), "--no-images", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["products_read"] == 2


def test_a_file_name_used_again_for_another_picture_gets_an_id_of_its_own(tmp_path: Path):
    """A folder names its products by file name: a new picture under a name a stored product has (a camera
    counting again) is stored as NAME~HASH, said so, and the stored product (its feedback too) is left alone. An
    image whose name a products row gives to another image is left out."""
    db, inbox = tmp_path / "tagkit.db", tmp_path / "inbox"
    inbox.mkdir()
    rows = [row for row in demo_rows() if row["image"]][:2]
    shutil.copy(DEMO / rows[0]["image"], inbox / "IMG_0001.jpg")
    titled = write_csv(tmp_path / "week1.csv", [{"title": rows[0]["title"], "image": "IMG_0001.jpg"}])
    assert tagkit(db, "import", str(inbox), "--products", str(titled), "--no-images").exit_code == ExitCode.OK
    shutil.copy(DEMO / rows[1]["image"], inbox / "IMG_0001.jpg")  # week 2: another picture, the same name
    result = tagkit(db, "import", str(inbox), "--no-images", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    with Store(db) as store:
        products = {p.id: p for p in store.iter_products()}
    new_id = next(i for i in products if i.startswith("IMG_0001.jpg~"))
    assert "the picture of product 'IMG_0001.jpg' has changed" in result.stderr and repr(new_id) in result.stderr
    assert products["IMG_0001.jpg"].title == rows[0]["title"] and products[new_id].title == ""
    assert products["IMG_0001.jpg"].image_hash != products[new_id].image_hash
    again = tagkit(db, "import", str(inbox), "--no-images", "--json")  # the same picture again: the same product
    assert json.loads(again.stdout)["products_unchanged"] == 1 and "has changed" not in again.stderr
    broken = tmp_path / "broken"  # an unreadable file under a stored name leaves the product's picture alone
    broken.mkdir()
    (broken / "IMG_0001.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (broken / "fine.jpg").write_bytes((DEMO / rows[0]["image"]).read_bytes())
    result = tagkit(db, "import", str(broken), "--no-images")
    assert result.exit_code == ExitCode.OK and "keeps its stored picture" in result.stderr
    assert "product kept without image" not in result.stderr
    with Store(db) as store:
        assert store.product("IMG_0001.jpg").image_hash == products["IMG_0001.jpg"].image_hash
        assert store.product("IMG_0001.jpg").image == str(broken / "fine.jpg")  # its picture, renamed
    shutil.copy(DEMO / rows[0]["image"], inbox / "other.jpg")
    swapped = write_csv(tmp_path / "swapped.csv", [{"id": "other.jpg", "title": "Renamed", "image": new_id[:12]}],
                        ["id", "title", "image"])
    result = tagkit(db, "import", str(inbox), "--products", str(swapped), "--no-images")
    assert result.exit_code == ExitCode.PARTIAL
    assert f"other.jpg: row 2 of {swapped} gives this id to" in result.stderr


def test_persian_paths_under_a_locale_without_utf8(tmp_path: Path):
    """With Python's UTF-8 mode off in the POSIX locale (`PYTHONUTF8=0 LC_ALL=POSIX`), Persian file names reached
    tagkit as undecodable text: importing a folder `عکس` into `پایگاه.db` was a traceback (exit 1). tagkit runs
    itself in UTF-8 mode instead: the products are stored with the folder's real name. It runs itself, not a
    `tagkit.py` of the current folder (it did, as `python -m tagkit`)."""
    (tmp_path / "tagkit.py").write_text("raise SystemExit('the wrong tagkit')\n", encoding="utf-8")
    folder = tmp_path / "عکس"
    folder.mkdir()
    for image in sorted((DEMO / "new").glob("*.jpg"))[:3]:
        shutil.copy(image, folder / f"کفش {image.name}")
    env = {**os.environ, "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0", "LC_ALL": "POSIX"}
    env.pop("LANG", None)
    done = subprocess.run([str(TAGKIT), "--db", "پایگاه.db", "import", "عکس", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, encoding="utf-8")
    assert done.returncode == ExitCode.OK, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["products_stored"] == 3
    with Store(tmp_path / "پایگاه.db") as store:
        assert {(row["id"], row["source"]) for row in store.db.query("select id, source from products")} == {
            (f"کفش {image.name}", "عکس") for image in sorted((DEMO / "new").glob("*.jpg"))[:3]}


def test_a_script_can_check_an_export_path_as_predict_does(tmp_path: Path):
    """`predict -o`'s refusals (the database, its journal, lock or models, a missing folder) are a library function
    a script that exports with `tagkit.export` can call."""
    from tagkit.export import OutputError, check_output

    db = tmp_path / "tagkit.db"
    db.touch()
    products = tmp_path / "new.csv"
    products.touch()
    for output, reason in ((db, "is the database"), (tmp_path / "tagkit.db-wal", "belongs to the database"),
                           (tmp_path / "tagkit.db.lock", "belongs to the database"),
                           (tmp_path / "tagkit.db.models" / "p.csv", "belongs to the database"),
                           (products, "is the products file"), (tmp_path / "no" / "p.csv", "does not exist")):
        with pytest.raises(OutputError, match=reason):
            check_output(output, db, {"the products file": products})
    check_output(tmp_path / "predictions.csv", db, {"the products file": products})
    check_output("/dev/stdout", db)


def test_a_system_without_posix_calls_is_told_so(monkeypatch: pytest.MonkeyPatch):
    """On Windows the first command died in a traceback from `import fcntl`; it says where tagkit runs instead."""
    monkeypatch.setattr(os, "name", "nt")
    result = CliRunner().invoke(main, ["stats"])
    assert result.exit_code == ExitCode.ERROR
    assert "tagkit runs on Linux and macOS" in result.stderr and "WSL" in result.stderr


@pytest.mark.parametrize("encoding", ["ascii", "cp1256"])
def test_an_export_to_stdout_is_utf_8_whatever_the_process_encoding(demo_db: Path, encoding: str):
    """`PYTHONIOENCODING=ascii` (or latin-1, cp1256) ended `predict --export csv` at its first Persian title with a
    traceback and exit 1, and `eval` at its `∩` (a locale audit): data on stdout is UTF-8, as in files."""
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    done = subprocess.run([str(TAGKIT), "--db", str(demo_db), "-q", "predict", str(DEMO / "new.csv"), "--export",
                           "csv", "--force"], capture_output=True, env=env)
    assert done.returncode == ExitCode.OK, done.stderr.decode(errors="replace")
    rows = list(csv.DictReader(io.StringIO(done.stdout.decode("utf-8"))))
    assert len(rows) == len(demo_rows("new.csv")) and any("رنگ" in row["tags"] for row in rows)
    scored = subprocess.run([str(TAGKIT), "--db", str(demo_db), "eval", str(DEMO / "test.csv")], capture_output=True,
                            env=env)
    assert scored.returncode == ExitCode.OK and "|Y∩Z|" in scored.stdout.decode("utf-8")


def test_an_argument_not_in_utf_8_is_said_not_a_traceback(tmp_path: Path):
    """A folder whose name is Latin-1 bytes (an old Samba share): a 40-line traceback from the writer lock, exit 1
    (a locale audit). One line naming it, exit 2, and the JSON error object with --json."""
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/d\xe9p"))
    folder.mkdir()
    shutil.copy(DEMO / "new" / "IMG_4116.jpg", folder / "a.jpg")
    done = subprocess.run([str(TAGKIT), "--db", str(tmp_path / "t.db"), "import", str(folder), "--json"],
                          capture_output=True, text=True)
    assert done.returncode == ExitCode.USAGE and "Traceback" not in done.stderr
    assert "is not UTF-8" in done.stderr and "d\ufffdp" in done.stderr
    assert json.loads(done.stdout)["exit_code"] == ExitCode.USAGE
    assert not (tmp_path / "t.db").exists()
