"""Unattended use: incremental runs, the writer lock, kill -9 at random points, two predicts and a review
at once, exit codes, --json, --log-file, safe exports. Real `tagkit` processes on the demo catalogue."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import copy_db
from PIL import Image

from tagkit.cli import main
from tagkit.exitcodes import ExitCode
from tagkit.lock import Locked, WriterLock, lock_path
from tagkit.store import Store, process_state
from tagkit.versions import models_folder, write_version

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"
TAGKIT = Path(sys.executable).with_name("tagkit")
KILLS = 4


def tagkit(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def catalogue(folder: Path, rows: int, distinct: int) -> Path:
    """A products CSV of `rows` products (ids c00000...) over `distinct` different images: the demo's photos,
    re-encoded at other JPEG qualities where more are needed, so each of them costs a real embedding."""
    titles = {}
    for name in ("train.csv", "test.csv"):
        with (DEMO / name).open(encoding="utf-8") as f:
            titles.update({row["image"]: row["title"] for row in csv.DictReader(f) if row["image"]})
    sources = sorted(titles)
    images = folder / "images"
    images.mkdir(exist_ok=True)
    paths = []
    for number in range(distinct):
        source = sources[number % len(sources)]
        path = images / f"v{number:05d}.jpg"
        with Image.open(DEMO / source) as image:
            image.convert("RGB").save(path, "JPEG", quality=70 + number // len(sources))
        paths.append((path, titles[source]))
    products = folder / "catalogue.csv"
    with products.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "image"])
        for number in range(rows):
            path, title = paths[number % distinct]
            writer.writerow([f"c{number:05d}", f"{title} {number // distinct}", str(path)])
    return products


def predictions(db: Path, prefix: str = "c") -> dict[str, tuple]:
    conn = sqlite3.connect(db)
    try:
        return {row[0]: row[1:] for row in conn.execute(
            "select product_id, model_id, category, category_score, alternatives, tags, tag_candidates, input_key "
            "from predictions where product_id like ? order by product_id", [prefix + "%"])}
    finally:
        conn.close()


def runs(db: Path, command: str = "predict") -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("select * from runs where command = ? order by id", [command])]
    finally:
        conn.close()


def start(db: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(TAGKIT), "--db", str(db), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_run(db: Path, process: subprocess.Popen, before: int, command: str = "predict") -> None:
    """Until `process` has recorded its run (it holds the lock and has begun the work)."""
    while len(runs(db, command)) <= before:
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)


def wait_for_predictions(db: Path, process: subprocess.Popen, count: int) -> None:
    """Until `count` products (ids c...) have predictions in the database, or the process has ended."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        while process.poll() is None and conn.execute(
                "select count(*) from predictions where product_id like 'c%'").fetchone()[0] < count:
            time.sleep(0.01)
    finally:
        conn.close()


# -- the writer lock ------------------------------------------------------------------------------


def test_second_writer_waits_then_gets_a_clear_error(tmp_path: Path):
    db = tmp_path / "tagkit.db"
    with WriterLock(db, "predict"):
        with pytest.raises(Locked) as caught:
            WriterLock(db, "import", wait=0.3).acquire()
        holder = caught.value.holder
        assert (holder["pid"], holder["command"]) == (os.getpid(), "predict")
        assert f"pid {os.getpid()}" in str(caught.value) and "`predict`" in str(caught.value)
    with WriterLock(db, "import"):  # released: the next one gets it at once
        pass
    assert lock_path(db).read_text() == "", "a released lock names nobody"


def test_a_killed_holder_never_leaves_a_stale_lock(tmp_path: Path):
    db = tmp_path / "tagkit.db"
    Store(db).close()  # a database the readers below can read
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from tagkit.lock import WriterLock; "
                               f"WriterLock({str(db)!r}, 'train').acquire(); print('held', flush=True); "
                               "time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        result = tagkit(db, "import", str(DEMO / "new.csv"), "--no-images")
        assert result.exit_code == ExitCode.LOCKED == 6
        assert f"pid {holder.pid}" in result.stderr and "`train`" in result.stderr and "--wait" in result.stderr
        readers = [tagkit(db, "models", "--json"), tagkit(db, "feedback", "export")]
        assert [r.exit_code for r in readers] == [ExitCode.NO_MODEL, 0], "readers never wait for the lock"
        assert json.loads(readers[0].stdout)["exit_code"] == ExitCode.NO_MODEL  # none trained, said as JSON
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = tagkit(db, "import", str(DEMO / "new.csv"), "--no-images")
    assert result.exit_code == ExitCode.OK, result.stderr


def test_a_writer_that_waits_says_whom_it_waits_for(tmp_path: Path):
    """One line on stderr when the wait begins (the holder as the no-wait error names it); with -q only in the
    log file."""
    db = tmp_path / "tagkit.db"
    Store(db).close()
    log = tmp_path / "tagkit.log"
    with WriterLock(db, "predict"):
        loud = tagkit(db, "--wait", "0.3", "import", str(DEMO / "new.csv"), "--no-images")
        quiet = tagkit(db, "-q", "--wait", "0.3", "--log-file", str(log), "import", str(DEMO / "new.csv"),
                       "--no-images")
    assert loud.exit_code == quiet.exit_code == ExitCode.LOCKED
    waiting = [line for line in loud.stderr.splitlines() if line.startswith("waiting")]
    assert len(waiting) == 1, loud.stderr
    assert f"waiting up to 0.3 s for another tagkit process writing to {db}: pid {os.getpid()} on " in waiting[0]
    assert "`predict`, since 20" in waiting[0]
    assert "waiting" not in quiet.stderr
    logged = [line for line in log.read_text("utf-8").splitlines() if "waiting up to" in line]
    assert len(logged) == 1 and f"pid {os.getpid()}" in logged[0]
    assert "waiting" not in tagkit(db, "import", str(DEMO / "new.csv"), "--no-images").stderr, "no wait, no line"


def test_a_killed_run_not_yet_reaped_is_interrupted_by_the_next_run(demo_db: Path, tmp_path: Path):
    """`tagkit predict -o FILE` killed with SIGKILL and left unreaped by its parent (a zombie, which `kill -0`
    still finds) while the next run starts: that run marks it interrupted, with a finish time, and removes its
    half export."""
    out = tmp_path / "out.csv"
    before = len(runs(demo_db))
    killed = start(demo_db, "-q", "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv"), "--force",
                   "-o", str(out))
    half_export = tmp_path / f".out.csv.tmp-{killed.pid}"
    try:
        while not half_export.exists():
            assert killed.poll() is None, killed.communicate()
            time.sleep(0.005)
        killed.send_signal(signal.SIGSTOP)  # it cannot finish between here and the kill
        killed.send_signal(signal.SIGKILL)
        while process_state(killed.pid) != "Z":
            time.sleep(0.01)
        os.kill(killed.pid, 0)  # still there for `kill -0`
        rerun = subprocess.run([str(TAGKIT), "--db", str(demo_db), "-q", "predict", str(DEMO / "new"), "--products",
                                str(DEMO / "new.csv"), "-o", str(out)], capture_output=True, text=True, timeout=300)
        assert process_state(killed.pid) == "Z", "the killed run was not reaped during the rerun"
    finally:
        killed.wait()
    assert rerun.returncode == 0, rerun.stderr
    first, second = runs(demo_db)[before:]
    assert (first["pid"], first["status"]) == (killed.pid, "interrupted")
    assert first["started_at"] <= first["finished_at"] <= second["started_at"]
    assert second["status"] == "ok"
    assert not half_export.exists() and [p.name for p in tmp_path.glob(".out.csv.tmp-*")] == []
    with out.open(encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 60


# -- incremental runs -----------------------------------------------------------------------------


def test_import_again_does_only_what_changed(tmp_path: Path):
    products = catalogue(tmp_path, rows=30, distinct=30)
    db = tmp_path / "tagkit.db"
    first = json.loads(tagkit(db, "import", str(products), "--json").stdout)
    assert (first["products_new"], first["images_embedded"]) == (30, 30)
    again = json.loads(tagkit(db, "import", str(products), "--json").stdout)
    assert (again["products_unchanged"], again["products_stored"], again["images_embedded"]) == (30, 0, 0)

    images = sorted((tmp_path / "images").iterdir())
    for path in images[:3]:  # three photos retouched
        with Image.open(path) as image:
            image.rotate(90).save(path, "JPEG")
    rows = list(csv.reader(products.open(encoding="utf-8")))
    rows[10][1] = "a new title"
    with products.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    changed = json.loads(tagkit(db, "import", str(products), "--json").stdout)
    assert (changed["products_changed"], changed["products_unchanged"], changed["images_embedded"]) == (4, 26, 3)
    with Store(db) as store:
        updated = {p["id"]: p["updated_at"] for p in store.db.query("select id, updated_at from products")}
    time.sleep(1.1)  # updated_at is to the second
    forced = json.loads(tagkit(db, "import", str(products), "--json", "--force").stdout)
    assert (forced["products_changed"], forced["products_unchanged"], forced["products_stored"],
            forced["images_embedded"]) == (0, 30, 30, 30)  # all rewritten, though none changed
    with Store(db) as store:
        assert {p["id"]: p["updated_at"] for p in store.db.query("select id, updated_at from products")} == updated


def test_predict_again_predicts_only_what_changed(demo_db: Path, tmp_path: Path):
    products = catalogue(tmp_path, rows=90, distinct=45)
    first = tagkit(demo_db, "predict", str(products), "--json", "-o", str(tmp_path / "first.csv"))
    assert first.exit_code == ExitCode.OK, first.stderr
    assert json.loads(first.stdout)["predicted"] == 90
    again = tagkit(demo_db, "predict", str(products), "--json", "-o", str(tmp_path / "again.csv"))
    summary = json.loads(again.stdout)
    assert (summary["predicted"], summary["unchanged"], summary["import"]["images_embedded"]) == (0, 90, 0)
    assert (tmp_path / "again.csv").read_bytes() == (tmp_path / "first.csv").read_bytes(), \
        "an export is complete when nothing was predicted again"

    with Image.open(tmp_path / "images" / "v00000.jpg") as image:  # on rows c00000 and c00045
        image.rotate(180).save(tmp_path / "images" / "v00000.jpg", "JPEG")
    rows = list(csv.reader(products.open(encoding="utf-8")))
    rows[1 + 7][1] = "کیف پول چرم مردانه"
    with products.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    changed = json.loads(tagkit(demo_db, "predict", str(products), "--json").stdout)
    assert (changed["predicted"], changed["unchanged"], changed["import"]["images_embedded"]) == (3, 87, 1)
    forced = json.loads(tagkit(demo_db, "predict", str(products), "--json", "--force").stdout)
    assert (forced["predicted"], forced["unchanged"]) == (90, 0)
    assert "90 products" in tagkit(demo_db, "predict", str(products), "-o", str(tmp_path / "x.csv")).stderr


def test_top_k_is_part_of_what_a_prediction_is_made_from(demo_db: Path):
    again = json.loads(tagkit(demo_db, "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv"),
                              "--json").stdout)
    assert again["predicted"] == 0
    other = json.loads(tagkit(demo_db, "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv"),
                              "--json", "--top-k", "5").stdout)
    assert other["predicted"] == 60


# -- crash safety ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_at_random_points_then_a_rerun_equals_an_uninterrupted_run(demo_predicted: Path, tmp_path: Path):
    """`tagkit predict` on 2,000 products (400 images to embed) is killed with SIGKILL at random points,
    four times; the next run finishes the work. Predictions and export equal those of a run left alone."""
    products = catalogue(tmp_path, rows=2000, distinct=400)
    reference_db = copy_db(demo_predicted, tmp_path / "reference.db")
    killed_db = copy_db(demo_predicted, tmp_path / "killed.db")
    with Store(killed_db) as store:
        features_before = store.db.table("features").count

    base = len(runs(reference_db))
    reference = start(reference_db, "-q", "predict", str(products), "-o", str(tmp_path / "reference.csv"))
    wait_for_run(reference_db, reference, base)
    began = time.monotonic()
    assert reference.wait(timeout=600) == 0, reference.communicate()
    work = time.monotonic() - began

    rng = random.Random(6)
    killed, table = [], []
    for attempt in range(KILLS):
        process = start(killed_db, "-q", "predict", str(products), "-o", str(tmp_path / "killed.csv"))
        wait_for_run(killed_db, process, base + attempt)
        began = time.monotonic()
        if attempt == 0:  # early: while the first chunk's images are read and embedded
            time.sleep(rng.uniform(0.05, 0.5) * work)
        else:  # once the run has got past a random number of predictions, at a random moment after that
            done = len(predictions(killed_db))  # (halfway into what is left at most: room for the kills after it)
            if done < 1999:
                wait_for_predictions(killed_db, process, rng.randint(done + 1, done + max(1, (1999 - done) // 2)))
            time.sleep(rng.uniform(0.0, 0.3))
        delay = time.monotonic() - began
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed.append(process.returncode == -signal.SIGKILL)
        export = tmp_path / "killed.csv"
        assert not export.exists() or export.read_bytes() == (tmp_path / "reference.csv").read_bytes(), \
            "a killed export leaves no half file (only a complete one from a run that finished)"
        with Store(killed_db) as store:  # consistent after each kill: every prediction row is whole
            assert store.db.execute("pragma integrity_check").fetchone()[0] == "ok"
            one = lambda sql: store.db.execute(sql).fetchone()[0]  # noqa: E731
            assert one("select count(*) from predictions where input_key is null and product_id like 'c%'") == 0
            table.append((attempt + 1, delay, killed[-1], one("select count(*) from products where id like 'c%'"),
                          one("select count(*) from features") - features_before,
                          one("select count(*) from predictions where product_id like 'c%'")))
    assert sum(killed) >= KILLS - 1, f"most kills should land while the work goes on: {killed}"

    final = start(killed_db, "predict", str(products), "--json", "-o", str(tmp_path / "killed.csv"))
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    summary = json.loads(out)
    assert summary["products"] == 2000 and summary["predicted"] < 2000, "the re-run does only what was left"

    expected, got = predictions(reference_db), predictions(killed_db)
    assert len(got) == 2000 and got == expected
    assert (tmp_path / "killed.csv").read_bytes() == (tmp_path / "reference.csv").read_bytes()
    conn = sqlite3.connect(killed_db)
    duplicates = conn.execute("select count(*) - count(distinct product_id || '|' || model_id) from predictions")
    assert duplicates.fetchone()[0] == 0
    assert conn.execute("select count(*) from products where id like 'c%'").fetchone()[0] == 2000
    conn.close()
    # A kill that lands while a finished run's process exits leaves that run `ok`; the others are interrupted.
    statuses = [run["status"] for run in runs(killed_db)][-KILLS - 1:]
    assert statuses[-1] == "ok" and set(statuses[:-1]) <= {"interrupted", "ok"}
    assert statuses.count("interrupted") >= KILLS - 1, statuses
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name], "no temporary export file is left"
    _print_kill_table(work, table, summary)


def _print_kill_table(work: float, table: list[tuple], summary: dict) -> None:
    lines = [f"kill test: 2,000 products, 400 images; an uninterrupted run works {work:.1f} s (after start-up)",
             "attempt | killed after s | killed? | products stored | images embedded | predictions stored"]
    lines += [f"{n:>7} | {delay:>14.1f} | {'yes' if hit else 'no (done)':>7} | {products:>15,} | {features:>15,} | "
              f"{stored:>18,}" for n, delay, hit, products, features, stored in table]
    lines.append(f"final run: predicted {summary['predicted']:,}, reused {summary['unchanged']:,} of "
                 f"{summary['products']:,}; predictions and export equal the uninterrupted run's; no duplicates")
    sys.stderr.write("\n" + "\n".join(lines) + "\n")


@pytest.mark.slow
def test_train_killed_at_random_points_never_shows_a_half_model(demo_predicted: Path, tmp_path: Path):
    db = copy_db(demo_predicted, tmp_path / "train.db")
    rng = random.Random(3)
    before = len(runs(db, "train"))
    versions_before = len(json.loads(tagkit(db, "models", "--json").stdout))
    for attempt in range(2):
        process = start(db, "-q", "train", "--force", str(DEMO / "train.csv"))
        wait_for_run(db, process, before + attempt, "train")
        time.sleep(rng.uniform(0.5, 6.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        listed = json.loads(tagkit(db, "models", "--json").stdout)
        assert all(m["available"] for m in listed)
        assert all((Path(m["path"]) / "version.json").is_file() for m in listed)
    result = tagkit(db, "train", "--force", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    folder = Path(json.loads(result.stdout)["path"]).parent
    assert not list(folder.glob(".tmp-*")), "the killed runs' temporary folders are gone"
    statuses = [run["status"] for run in runs(db, "train")][before:]
    assert len(statuses) == 3 and set(statuses) <= {"interrupted", "ok"} and statuses[-1] == "ok"
    assert "interrupted" in statuses, "at least one kill landed while training"
    # Every `ok` run published its whole model version (a kill can land after that, while the process exits);
    # an interrupted one published nothing, or a whole version if the kill came after it was written.
    published = len(json.loads(tagkit(db, "models", "--json").stdout)) - versions_before
    assert statuses.count("ok") <= published <= len(statuses)


def test_review_killed_keeps_every_decision_whole(demo_db: Path):
    from test_review import Terminal

    review = Terminal(demo_db, "--order", "id")
    try:
        review.screen()
        review.press("a")
        review.press("x")
        review.proc.send_signal(signal.SIGKILL)
        review.proc.wait()
    finally:
        review.close()
    conn = sqlite3.connect(demo_db)
    finished = conn.execute("select product_id, decision from feedback where field = 'product'").fetchall()
    assert [d for _, d in finished] == ["accept", "reject"]
    for product_id, _ in finished:  # each product's decisions went in with it, in one transaction
        assert conn.execute("select count(*) from feedback where product_id = ? and field = 'category'",
                            [product_id]).fetchone()[0] == 1
    conn.close()
    again = Terminal(demo_db, "--order", "id")
    try:
        assert "product 1 of 58" in again.screen()
        assert again.quit()[0] == 0
    finally:
        again.close()
    assert [r["status"] for r in runs(demo_db, "review")] == ["interrupted", "ok"]


def test_a_model_version_appears_only_when_complete(tmp_path: Path):
    with Store(tmp_path / "tagkit.db") as store:
        root = models_folder(store)
        root.mkdir()
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (root / f".tmp-20260101-000000-000-{dead.pid}").mkdir()  # left by a killed train
        (root / f".tmp-20260101-000000-001-{os.getpid()}").mkdir()  # a train still running

        def crash(folder: Path) -> None:
            (folder / "half.bin").write_bytes(b"\0" * 100)
            raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            write_version(store, crash, {})
        assert store.db.table("models").count == 0
        assert sorted(p.name for p in root.iterdir()) == [f".tmp-20260101-000000-001-{os.getpid()}"]


# -- concurrency ----------------------------------------------------------------------------------


def test_two_predicts_and_a_review_on_one_database(demo_db: Path, tmp_path: Path):
    """An open review session; a predict starts (and is paused half-way, holding the lock); a second predict
    gives up at once with exit code 6 naming the first; a third waits; readers answer; the review goes on
    recording decisions while the first predict and then the third write. Everything ends complete."""
    from test_review import Terminal

    products = catalogue(tmp_path, rows=1200, distinct=120)
    review = Terminal(demo_db, "--order", "id")
    try:
        review.screen()
        first = start(demo_db, "predict", str(products), "--json", "-o", str(tmp_path / "first.csv"))
        wait_for_run(demo_db, first, 1)
        first.send_signal(signal.SIGSTOP)
        try:
            second = subprocess.run([str(TAGKIT), "--db", str(demo_db), "predict", str(products)],
                                    capture_output=True, text=True, timeout=120)
            assert second.returncode == ExitCode.LOCKED, second.stderr
            assert f"pid {first.pid}" in second.stderr and "`predict`" in second.stderr
            stats = subprocess.run([str(TAGKIT), "--db", str(demo_db), "stats", "--json"], capture_output=True,
                                   text=True, timeout=120)
            assert stats.returncode == 0, stats.stderr
            assert json.loads(stats.stdout)["last_run"]["status"] == "running"
            third = start(demo_db, "--wait", "600", "predict", str(products), "--json", "-o",
                          str(tmp_path / "third.csv"))
        finally:
            first.send_signal(signal.SIGCONT)
        for _ in range(3):
            review.press("a")
        code, said = review.quit()
        assert code == 0 and "3 products reviewed" in said
    finally:
        review.close()
    out_first, err_first = first.communicate(timeout=600)
    out_third, err_third = third.communicate(timeout=600)
    assert first.returncode == 0, err_first
    assert third.returncode == 0, err_third
    assert json.loads(out_first)["predicted"] == 1200
    assert (json.loads(out_third)["predicted"], json.loads(out_third)["unchanged"]) == (0, 1200), \
        "the third run waited for the first, then found everything done"
    assert (tmp_path / "first.csv").read_bytes() == (tmp_path / "third.csv").read_bytes()
    conn = sqlite3.connect(demo_db)
    assert conn.execute("select count(*) from feedback where field = 'product'").fetchone()[0] == 3
    statuses = [r[0] for r in conn.execute("select status from runs where command in ('predict', 'review')")]
    assert "running" not in statuses and statuses.count("ok") >= 3
    conn.close()


# -- output for scripts ---------------------------------------------------------------------------


def test_json_summary_lists_problems_and_log_file_has_them_even_when_quiet(demo_db: Path, tmp_path: Path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "p.csv").write_text("id,title,image\nb1,Broken,broken.jpg\nb2,No image,\n,no id,\n", "utf-8")
    log = tmp_path / "logs" / "tagkit.log"
    log.parent.mkdir()
    result = tagkit(demo_db, "-q", "--log-file", str(log), "predict", str(tmp_path / "p.csv"), "--json")
    assert result.exit_code == ExitCode.PARTIAL
    assert result.stderr == "", "-q: nothing on stderr"
    summary = json.loads(result.stdout)
    assert summary["products"] == 2 and summary["import"]["rows_skipped"] == 1
    found = {(p["row"], p["field"]) for p in summary["problems"] if not p["info"]}
    assert {(2, "image"), (4, "id")} <= found
    assert all(p["file"] == str(tmp_path / "p.csv") for p in summary["problems"])
    lines = log.read_text("utf-8").splitlines()
    assert any("predict started" in line for line in lines)
    assert any("row 2, field 'image'" in line for line in lines)
    assert any("finished: partial" in line for line in lines)
    assert all(line[:4].isdigit() and "tagkit[" in line for line in lines), "each line has a timestamp"


def test_usage_errors_and_json_with_an_export_on_stdout(demo_db: Path):
    assert tagkit(demo_db, "predict", str(DEMO / "new"), "--json", "--export", "csv").exit_code == ExitCode.USAGE
    assert tagkit(demo_db, "--wait", "-1", "stats").exit_code == ExitCode.USAGE


# -- safe exports ---------------------------------------------------------------------------------


def test_export_stays_in_its_file_whatever_the_ids_and_cells(demo_db: Path, tmp_path: Path):
    image = DEMO / "new" / "IMG_4116.jpg"
    hostile = ["../../escape.csv", "/tmp/absolute", "..\\..\\windows", "=HYPERLINK(\"http://x\",\"y\")", "+1+1",
               "-2", "@SUM(A1)", "a/../../b", "x\ty"]
    work = tmp_path / "work"
    out = work / "out"
    out.mkdir(parents=True)
    with (work / "p.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "image"])
        writer.writerows([[value, value, str(image)] for value in hostile])
    before = set(work.rglob("*"))
    result = tagkit(demo_db, "predict", str(work / "p.csv"), "-o", str(out / "predictions.csv"))
    assert result.exit_code == ExitCode.OK, result.stderr
    assert set(work.rglob("*")) - before == {out / "predictions.csv"}, "exactly one file written"
    rows = list(csv.DictReader(io.StringIO((out / "predictions.csv").read_text("utf-8-sig"))))
    assert [row["id"] for row in rows] == [v if v[0] not in "=+-@\t" else "'" + v for v in hostile]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t")) for row in rows for cell in row.values())


def test_a_failed_predict_leaves_the_last_export_alone(tmp_path: Path):
    out = tmp_path / "predictions.csv"
    out.write_text("yesterday's export\n", "utf-8")
    result = tagkit(tmp_path / "empty.db", "predict", str(DEMO / "new"), "-o", str(out))
    assert result.exit_code == ExitCode.NO_MODEL
    assert out.read_text("utf-8") == "yesterday's export\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- a hostile machine: full disks, limits, a closed output, a clock gone back ------------------------


def test_a_log_file_that_cannot_be_written_stops_logging_not_the_run(tmp_path: Path):
    """`--log-file` on a full disk (/dev/full) failed every command, even with -q, the README's cron line among
    them; stderr on a full disk likewise. Now the run goes on, says once that it logs no more, and its data comes."""
    db = tmp_path / "tagkit.db"
    args = [str(TAGKIT), "--db", str(db), "-q", "--log-file", "/dev/full", "import", str(DEMO / "test.csv"), "--json"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == ExitCode.OK, done.stderr
    assert json.loads(done.stdout)["products_stored"] == 100
    assert done.stderr.count("cannot write the log file /dev/full") == 1
    with open("/dev/full", "w") as full:  # stderr on a full disk, not quiet
        done = subprocess.run([str(TAGKIT), "--db", str(db), "stats", "--json"], stdout=subprocess.PIPE,
                              stderr=full, text=True)
    assert done.returncode == ExitCode.OK and json.loads(done.stdout)["products"]["total"] == 100


def test_a_file_size_limit_is_said_not_a_traceback(tmp_path: Path):
    """A file-size limit or quota (EFBIG, EDQUOT) ended `train` in a joblib traceback and an empty --json; now as a
    full disk: a message, exit 1, the JSON error, and the database as it was."""
    import resource

    db = tmp_path / "tagkit.db"
    assert tagkit(db, "-q", "import", str(DEMO / "train.csv")).exit_code == ExitCode.OK
    limit = db.stat().st_size + (64 << 10)  # the database may grow a little; the model's files cannot be written

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run([str(TAGKIT), "--db", str(db), "-q", "train", "--json"], capture_output=True, text=True,
                          preexec_fn=limited)
    assert done.returncode == ExitCode.ERROR, done.stderr
    assert "Traceback" not in done.stderr and "File too large" in done.stderr
    assert json.loads(done.stdout)["exit_code"] == ExitCode.ERROR
    with Store(db) as store:
        assert store.db.table("models").count == 0 and store.db.table("products").count == 400
        assert [row["status"] for row in store.db.table("runs").rows_where("command = 'train'")] == ["failed"]
    folder = models_folder_of(db)
    assert not folder.exists() or not any(folder.iterdir()), "no half-written model left"


def models_folder_of(db: Path) -> Path:
    with Store(db) as store:
        return models_folder(store)


def test_another_program_holding_sqlite_s_write_lock_is_said(tmp_path: Path):
    """sqlite-utils or a database browser in the middle of a write: tagkit waited 30 s, then printed a traceback
    (exit 1, no JSON). Now a message and exit 6, as when another tagkit holds the writer lock."""
    db = tmp_path / "tagkit.db"
    assert tagkit(db, "-q", "import", str(DEMO / "test.csv")).exit_code == ExitCode.OK
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("begin immediate")
    try:
        done = subprocess.run([str(TAGKIT), "--db", str(db), "-q", "import", str(DEMO / "train.csv"), "--json"],
                              capture_output=True, text=True)
    finally:
        other.execute("rollback")
        other.close()
    assert done.returncode == ExitCode.LOCKED, done.stderr
    assert "Traceback" not in done.stderr and "locked by another program" in done.stderr
    assert json.loads(done.stdout)["exit_code"] == ExitCode.LOCKED


# root writes read-only files: for the permissions to count, run tagkit without that capability
AS_A_USER = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"] if os.geteuid() == 0 else []


@pytest.mark.skipif(bool(AS_A_USER) and not shutil.which("setpriv"), reason="root, and no setpriv to run as a user")
def test_a_database_read_while_read_only_can_be_written_again(tmp_path: Path):
    """Reading a read-only database leaves its -wal and -shm files read-only (SQLite gives them the database's
    mode); once the database was writable again, every write failed with 'attempt to write a readonly database'."""
    db = tmp_path / "tagkit.db"
    assert tagkit(db, "-q", "import", str(DEMO / "test.csv")).exit_code == ExitCode.OK
    for side in (tmp_path / "tagkit.db-wal", tmp_path / "tagkit.db-shm"):
        side.touch()
        side.chmod(0o444)  # as a read of the read-only database left them
    done = subprocess.run([*AS_A_USER, str(TAGKIT), "--db", str(db), "-q", "import", str(DEMO / "train.csv")],
                          capture_output=True, text=True)
    assert done.returncode == ExitCode.OK, done.stderr
    for side in (tmp_path / "tagkit.db-wal", tmp_path / "tagkit.db-shm"):
        assert not side.exists() or side.stat().st_mode & 0o200


def test_the_lock_s_bookkeeping_does_not_stop_a_writer(tmp_path: Path):
    """Writing who holds the lock into `<db>.lock` failed on a full disk, so no writer could run, not even
    `models --prune`, the one that frees space. The lock file here is /dev/full."""
    db = tmp_path / "tagkit.db"
    assert tagkit(db, "-q", "import", str(DEMO / "test.csv")).exit_code == ExitCode.OK
    lock_path(db).unlink(missing_ok=True)
    lock_path(db).symlink_to("/dev/full")
    done = subprocess.run([str(TAGKIT), "--db", str(db), "-q", "import", str(DEMO / "train.csv")], capture_output=True,
                          text=True)
    assert done.returncode == ExitCode.OK, done.stderr


def test_a_version_trained_after_the_clock_went_back_is_the_newest(tmp_path: Path):
    """Version ids come from the clock, and the newest is the highest: a model trained after the clock was put
    back (a corrected clock, a restored snapshot) was ignored by predict, and `models --prune` deleted it."""
    from tagkit.versions import find_version

    def save(folder: Path) -> None:
        (folder / "model.bin").write_bytes(b"model")

    with Store(tmp_path / "tagkit.db") as store:
        ahead = write_version(store, save, {})
        store.db.execute("update models set id = '20991231-235959-999', path = replace(path, ?, "
                         "'20991231-235959-999') where id = ?", [ahead.id, ahead.id])
        store.db.conn.commit()
        (ahead.path).rename(ahead.path.with_name("20991231-235959-999"))  # trained while the clock was ahead
        latest = write_version(store, save, {})
        assert latest.id > "20991231-235959-999"
        assert find_version(store).id == latest.id


def test_a_closed_stdout_is_an_output_closed(tmp_path: Path):
    """Started with stdout closed (`>&-`), `predict --export csv` died with a TypeError and `stats` exited 0 with
    its output lost; writing data nowhere is exit 141, as a closed pipe is."""
    db = tmp_path / "tagkit.db"
    assert tagkit(db, "-q", "import", str(DEMO / "test.csv")).exit_code == ExitCode.OK
    done = subprocess.run([str(TAGKIT), "--db", str(db), "stats"], stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: os.close(1))
    assert done.returncode == ExitCode.OUTPUT_CLOSED, done.stderr
    assert "Traceback" not in done.stderr and "the output was closed" in done.stderr


@pytest.mark.skipif(bool(AS_A_USER) and not shutil.which("setpriv"), reason="root, and no setpriv to run as a user")
def test_a_read_only_lock_file_still_locks(tmp_path: Path):
    """A lock file that cannot be written (another user's, or mode 444) stopped every writer with 'cannot open the
    database' (exit 2), though the database could be written: an flock needs no write."""
    db = tmp_path / "tagkit.db"
    assert tagkit(db, "-q", "import", str(DEMO / "test.csv")).exit_code == ExitCode.OK
    lock_path(db).touch()
    lock_path(db).chmod(0o444)
    done = subprocess.run([*AS_A_USER, str(TAGKIT), "--db", str(db), "-q", "import", str(DEMO / "train.csv")],
                          capture_output=True, text=True)
    assert done.returncode == ExitCode.OK, done.stderr
    with WriterLock(db, "test", wait=0):  # and it still keeps a second writer out
        done = subprocess.run([*AS_A_USER, str(TAGKIT), "--db", str(db), "-q", "import", str(DEMO / "train.csv")],
                              capture_output=True, text=True)
    assert done.returncode == ExitCode.LOCKED, done.stderr


def test_quiet_training_on_many_rare_categories_says_nothing(shared_data: Path, tmp_path: Path):
    """`-q` is for cron, whose stderr is mailed: training on Torob products (more product types than half the
    products) printed scikit-learn's 'The number of unique classes is greater than 50%' warning."""
    lines = (shared_data / "torob_attributes" / "products.jsonl").read_text("utf-8").splitlines()[::12]  # 427 products
    products = tmp_path / "products.jsonl"
    products.write_text("\n".join(lines) + "\n", "utf-8")
    config = DEMO.parent / "torob.yaml"
    done = subprocess.run([str(TAGKIT), "--db", str(tmp_path / "tagkit.db"), "-q", "train", str(products), "--config",
                           str(config)], capture_output=True, text=True)
    assert done.returncode in (ExitCode.OK, ExitCode.PARTIAL), done.stderr
    assert done.stderr == ""


def test_the_last_prediction_made_is_the_latest_after_the_clock_went_back(demo_db: Path):
    """Predictions made after the clock was put back were dated before the older model's, so `review` and the
    `latest_predictions` view kept showing the older model's (a re-audit). Now a prediction is dated after every
    stored prediction of its product."""
    with Store(demo_db) as store:
        (old_model,) = [row["id"] for row in store.db.table("models").rows]
        with store.transaction():  # made while the clock was a year ahead
            store.db.execute("update predictions set created_at = '2099-01-01T00:00:00.000000+00:00'")
    assert tagkit(demo_db, "-q", "train", "--force").exit_code == ExitCode.OK
    assert tagkit(demo_db, "-q", "predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv")).exit_code in (
        ExitCode.OK, ExitCode.PARTIAL)
    with Store(demo_db) as store:
        latest = {row["model_id"] for row in store.db.query("select model_id from latest_predictions")}
        assert latest and old_model not in latest
