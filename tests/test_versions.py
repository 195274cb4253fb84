"""Model versions over months of use: a damaged or deleted version, a rollback, a database opened through a
symbolic link. Real models trained on the demo catalogue."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tagkit.cli import main
from tagkit.exitcodes import ExitCode
from tagkit.feedback import Decision, record
from tagkit.lock import lock_path
from tagkit.queue import load_items, review_queue
from tagkit.store import Store

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def tagkit(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder whose database has two model versions (seeds 0 and 1) and nothing predicted."""
    db = tmp_path_factory.mktemp("versions") / "tagkit.db"
    for seed in ("0", "1"):
        result = tagkit(db, "-q", "train", str(DEMO / "train.csv"), "--seed", seed)
        assert result.exit_code == ExitCode.OK, result.output
    return db


@pytest.fixture
def project(two_versions: Path, tmp_path: Path) -> Path:
    """A copy of the project folder (database and models) to damage, its versions recorded where they are now (a
    copy's database otherwise falls back on the folders it recorded, the original's)."""
    shutil.copytree(two_versions.parent, tmp_path / "project")
    db = tmp_path / "project" / "tagkit.db"
    with Store(db) as store, store.transaction():
        store.db.execute("update models set path = replace(path, ?, ?)", [str(two_versions.parent), str(db.parent)])
    return db


def versions(db: Path) -> list[str]:
    return [row["id"] for row in json.loads(tagkit(db, "models", "--json").stdout)]


@pytest.mark.parametrize(("file", "damage"), [("model.joblib", "truncate"), ("version.json", "empty"),
                                              ("rerank_1.txt", "truncate"), ("rerank_0.txt", "lines")])
def test_a_damaged_version_stops_predict_and_eval_with_a_message_naming_it(project: Path, tmp_path: Path,
                                                                           file: str, damage: str):
    """It used to end in a traceback (exit 1) and, with --json, print nothing for the cron job's summary file."""
    newest = versions(project)[0]
    path = project.parent / "tagkit.db.models" / newest / file
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "lines":  # cut inside the trees: LightGBM's parser aborted the process (exit 134)
        path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:100]))
    else:
        path.write_bytes(path.read_bytes()[:300])
    for args in (["predict", str(DEMO / "new"), "--json", "-o", str(tmp_path / "out.csv")],
                 ["eval", str(DEMO / "test.csv"), "--json"]):
        result = tagkit(project, *args)
        assert result.exit_code == ExitCode.NO_MODEL, (args[0], result.output)
        error = json.loads(result.stdout)
        assert error["exit_code"] == ExitCode.NO_MODEL and newest in error["error"] and "cannot be read" in error[
            "error"], error
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.csv").exists()
    older = tagkit(project, "-q", "predict", str(DEMO / "new"), "--model", versions(project)[1])
    assert older.exit_code == ExitCode.OK, older.output


def test_a_deleted_newest_version_is_named_when_an_older_one_is_used(project: Path):
    newest, older = versions(project)
    shutil.rmtree(project.parent / "tagkit.db.models" / newest)
    result = tagkit(project, "predict", str(DEMO / "new"), "--json")
    assert result.exit_code == ExitCode.OK, result.output
    summary = json.loads(result.stdout)  # a cron job's summary file says so too
    assert summary["model"] == older and summary["passed_over"] == [newest]
    assert f"newest model version ({newest}) has no folder" in result.stderr and f"using {older}" in result.stderr
    scored = json.loads(tagkit(project, "-q", "eval", str(DEMO / "test.csv"), "--json").stdout)
    assert scored["model"] == older and scored["passed_over"] == [newest]


def test_a_database_restored_from_an_older_backup_keeps_the_newer_model_folders(project: Path):
    """`models --prune 5` deleted the newest versions' folders, as folders the (restored) database does not
    record; `models` never mentioned them."""
    newest = versions(project)[0]
    with Store(project) as store:  # as the backup taken before `newest` was trained
        store.db.execute("delete from models where id = ?", [newest])
        store.db.conn.commit()
    said = f"1 model folder(s) that the database does not record, newer than its oldest version, not listed and " \
        f"not pruned: {newest}"
    listed = tagkit(project, "models")
    assert listed.exit_code == ExitCode.OK and said in " ".join(listed.stderr.split())
    pruned = tagkit(project, "models", "--prune", "5", "--json")
    assert json.loads(pruned.stdout)["pruned"]["newer_unrecorded"] == [newest]
    assert tagkit(project, "-q", "train", "--force").exit_code == ExitCode.OK  # the nightly train after the restore
    for _ in range(2):  # the second prune: the versions before it are gone, and it is still kept
        pruned = tagkit(project, "models", "--prune", "1")
        assert pruned.exit_code == ExitCode.OK and said in " ".join(pruned.stderr.split())
        assert (project.parent / "tagkit.db.models" / newest).is_dir()
    with Store(project) as store:  # a backup from before the first train: no version recorded
        store.db.execute("delete from models")
        store.db.execute("delete from meta where key = 'kept_model_folders'")
        store.db.conn.commit()
    tagkit(project, "models", "--prune", "1")
    assert len(list((project.parent / "tagkit.db.models").iterdir())) >= 2, "nothing says they are stale"


def test_model_ids_that_name_nothing(project: Path):
    unknown = tagkit(project, "predict", str(DEMO / "new"), "--model", "nope")
    assert unknown.exit_code == ExitCode.NO_MODEL
    assert "no model 'nope'" in unknown.stderr and "lists its 2 versions" in unknown.stderr
    assert "run `tagkit train` first" not in unknown.stderr  # there are models
    empty = tagkit(project, "predict", str(DEMO / "new"), "--model", "")
    assert empty.exit_code == ExitCode.NO_MODEL and "empty id" in empty.stderr


def test_models_json_without_any_version_says_so_as_json(tmp_path: Path):
    db = tmp_path / "tagkit.db"
    Store(db).close()
    result = tagkit(db, "models", "--json")
    assert result.exit_code == ExitCode.NO_MODEL
    assert json.loads(result.stdout) == {"error": f"no trained model in {db} (run `tagkit train PRODUCTS`)",
                                         "exit_code": ExitCode.NO_MODEL}


def test_a_rollback_is_what_review_and_latest_predictions_show(project: Path):
    """Predicting with the older version after the newer one makes the older version's predictions the latest,
    also when they were stored before (up to date, not predicted again) and within the same second (predictions
    were dated to the second, and a tie went to the higher version id). It used to be the newest version's."""
    newest, older = versions(project)
    for version in (older, newest, older):  # the last run finds the older version's predictions up to date
        result = tagkit(project, "-q", "predict", str(DEMO / "new"), "--model", version)
        assert result.exit_code == ExitCode.OK, result.output
    with Store(project) as store:
        assert {item.model for item in load_items(store)} == {older}
        assert {row["model_id"] for row in store.db.query("select model_id from latest_predictions")} == {older}
    tagkit(project, "-q", "predict", str(DEMO / "new"))
    with Store(project) as store:
        assert {item.model for item in load_items(store)} == {newest}


def test_review_again_after_a_rollback_brings_back_nothing_reviewed_under_the_newer_version(project: Path):
    """`--again` brings back the products a newer version predicted; after a rollback it brought back every product
    reviewed under the newest version with the older version's predictions (a quick `a` would undo corrections)."""
    newest, older = versions(project)
    assert tagkit(project, "-q", "predict", str(DEMO / "new"), "--model", newest).exit_code == ExitCode.OK
    with Store(project) as store:
        items = load_items(store)
        record(store, [Decision(item.id, newest, "product", "accept") for item in items[:10]])
        assert len(review_queue(store, again=True)) == len(items) - 10
    assert tagkit(project, "-q", "predict", str(DEMO / "new"), "--model", older).exit_code == ExitCode.OK
    with Store(project) as store:
        queue = review_queue(store, again=True)
        assert {item.model for item in queue} == {older}
        assert not {item.id for item in queue} & {item.id for item in items[:10]}
        assert len(queue) == len(items) - 10


def test_a_symbolic_link_to_the_database_shares_its_lock_and_models(project: Path, tmp_path: Path):
    """Through a link another process took a lock of its own (`shop.db.lock`) and wrote beside it at the same time,
    and `train` through it kept its versions in `shop.db.models`."""
    link_folder = tmp_path / "elsewhere"
    link_folder.mkdir()
    link = link_folder / "shop.db"
    link.symlink_to(project)
    assert lock_path(link) == lock_path(project) == project.with_name("tagkit.db.lock")
    result = tagkit(link, "-q", "train", str(DEMO / "train.csv"), "--json")
    assert result.exit_code == ExitCode.OK, result.output
    saved = Path(json.loads(result.stdout)["path"])
    assert saved.parent == project.with_name("tagkit.db.models")
    assert not (link_folder / "shop.db.models").exists() and not (tmp_path / "project" / "shop.db.models").exists()
    assert versions(link) == versions(project) and len(versions(project)) == 3


def test_prune_keeps_the_newest_versions_and_deletes_the_rest_and_unrecorded_folders(project: Path, tmp_path: Path):
    """A nightly `train` kept every version (4.7 MB each on the demo, about 8.5 KB per training product); there was
    no way to delete old ones but by hand, which `predict` then took for a missing newest version."""
    newest, older = versions(project)
    root = project.parent / "tagkit.db.models"
    shutil.copytree(root / older, root / "20200101-000000-000")  # left by a database restored from a backup
    (root / "notes").mkdir()  # not a model version: left alone
    dry = tagkit(project, "models", "--prune", "1", "--dry-run")
    assert dry.exit_code == ExitCode.OK and "would delete 1 model version(s)" in dry.stderr
    assert newest in dry.stdout and older not in dry.stdout, "the versions that would be left are listed"
    assert versions(project) == [newest, older] and (root / older).is_dir()
    result = tagkit(project, "models", "--prune", "1", "--json")
    assert result.exit_code == ExitCode.OK, result.output
    assert [row["id"] for row in json.loads(result.stdout)["versions"]] == [newest]
    assert f"deleted 1 model version(s) ({older}) and 1 folder(s) no row records" in result.stderr
    assert sorted(f.name for f in root.iterdir()) == [newest, "notes"]
    predicted = tagkit(project, "-q", "predict", str(DEMO / "new"), "--json")
    assert predicted.exit_code == ExitCode.OK and json.loads(predicted.stdout)["model"] == newest
    assert "no folder" not in predicted.stderr
    with Store(project) as store:
        assert store.db.execute("select command, status from runs order by id desc limit 1 offset 1").fetchone() == (
            "models", "ok")


def test_review_reads_a_pruned_versions_thresholds_and_attributes_from_the_database(project: Path):
    """Predictions of a version pruned before they were reviewed: review used to forget its tuned thresholds (the
    "most uncertain first" order fell back to 0.5) and which attributes take one value (turning a candidate colour
    on kept the other colour too), since both were read from the version's folder only."""
    from tagkit.queue import model_attributes, model_thresholds

    newest, older = versions(project)
    assert tagkit(project, "-q", "predict", str(DEMO / "new"), "--model", older).exit_code == ExitCode.OK
    with Store(project) as store:
        before = model_thresholds(store, older), model_attributes(store, older), review_queue(store)
    assert before[0] and False in before[1].values(), "tuned thresholds and a single-valued attribute to keep"
    assert tagkit(project, "models", "--prune", "1").exit_code == ExitCode.OK
    assert versions(project) == [newest] and not (project.parent / "tagkit.db.models" / older).exists()
    with Store(project) as store:
        assert (model_thresholds(store, older), model_attributes(store, older), review_queue(store)) == before
        assert [row["id"] for row in store.db.table("pruned_models").rows] == [older]


def test_prune_deletes_the_pruned_versions_predictions_that_later_ones_replaced(project: Path, tmp_path: Path):
    """A season audit: predictions of pruned versions were kept forever (1,685 of 2,315 rows after nine weekly
    trains), though nothing reads one that a later prediction of its product replaced."""
    newest, older = versions(project)
    assert tagkit(project, "-q", "predict", str(DEMO / "new"), "--model", older).exit_code == ExitCode.OK
    few = tmp_path / "few"
    few.mkdir()
    for image in sorted((DEMO / "new").iterdir())[:10]:  # the same pictures: the same products
        shutil.copy(image, few / image.name)
    assert tagkit(project, "-q", "predict", str(few)).exit_code == ExitCode.OK

    def stored() -> tuple[list, list]:
        with Store(project) as store:
            rows = store.db.execute("select model_id, count(*) from predictions group by 1 order by 1").fetchall()
            return rows, list(store.db.query("select * from latest_predictions order by product_id"))

    (before, latest), queue = stored(), None
    assert dict(before) == {older: 60, newest: 10}
    with Store(project) as store:
        queue = [(item.id, item.model) for item in review_queue(store)]
    dry = tagkit(project, "-q", "models", "--prune", "1", "--dry-run", "--json")
    assert json.loads(dry.stdout)["pruned"]["predictions"] == 10 and stored() == (before, latest)
    result = tagkit(project, "models", "--prune", "1")
    assert result.exit_code == ExitCode.OK, result.output
    assert f"deleted 1 model version(s) ({older}), and 10 predictions of deleted versions that later ones " \
        "replaced" in result.stderr
    after, latest_after = stored()
    assert dict(after) == {older: 50, newest: 10} and latest_after == latest
    with Store(project) as store:
        assert [(item.id, item.model) for item in review_queue(store)] == queue
        assert [row["id"] for row in store.db.table("pruned_models").rows] == [older]
    assert tagkit(project, "-q", "predict", str(DEMO / "new")).exit_code == ExitCode.OK  # newest replaces the rest
    with Store(project) as store, store.transaction():  # a version an older tagkit's prune deleted: no models row
        store.db.execute("update predictions set model_id = '20200101-000000-000' where model_id = ?", [older])
    result = tagkit(project, "-q", "models", "--prune", "1", "--json")
    assert json.loads(result.stdout)["pruned"]["predictions"] == 50 and dict(stored()[0]) == {newest: 60}
    # the space of the deleted rows goes back to the disk (a scale audit: a titles-only shop's prune deleted
    # 92,763 predictions and left the file 46 % empty pages, as only deleted image features compacted it)
    with Store(project) as store, store.transaction():
        row = next(store.db.query("select * from predictions limit 1"))
        store.db.table("predictions").insert_all(
            {**row, "product_id": f"old-{n}", "model_id": "20200101-000000-000", "created_at": "2020-01-01",
             "tag_candidates": "x" * 2000} for n in range(500))
        store.db.table("predictions").insert_all(
            {**row, "product_id": f"old-{n}"} for n in range(500))
    size = (project.stat().st_size, os.path.getsize(f"{project}-wal") if os.path.exists(f"{project}-wal") else 0)
    result = tagkit(project, "-q", "models", "--prune", "1", "--json")
    assert json.loads(result.stdout)["pruned"]["predictions"] == 500
    with Store(project) as store:
        assert store.db.execute("pragma freelist_count").fetchone()[0] == 0
    assert project.stat().st_size < sum(size) - 500_000


def test_prune_keeps_versions_predict_can_use_when_the_newest_folder_is_missing(project: Path, tmp_path: Path):
    """It kept the newest rows whatever their folders, so with the newest folder moved away `--prune 1` deleted the
    one version `predict` could use. `--json` says what was pruned; `--dry-run` says it also with -q."""
    newest, older = versions(project)
    shutil.move(project.parent / "tagkit.db.models" / newest, tmp_path / "moved")
    dry = tagkit(project, "-q", "models", "--prune", "1", "--dry-run", "--json")
    assert dry.exit_code == ExitCode.OK, dry.output
    assert json.loads(dry.stdout)["pruned"] == {"versions": [], "unrecorded": [], "kept": [older], "bytes": 0,
                                                "predictions": 0, "features": 0, "feature_bytes": 0,
                                                "newer_unrecorded": [], "dry_run": True}
    assert "would delete 0 model version(s)" in dry.stderr
    assert tagkit(project, "models", "--prune", "1").exit_code == ExitCode.OK
    assert versions(project) == [newest, older]  # the missing one may come back; the usable one stays
    result = tagkit(project, "-q", "predict", str(DEMO / "new"), "--json")
    assert result.exit_code == ExitCode.OK and json.loads(result.stdout)["model"] == older


def test_a_copied_database_says_its_versions_are_elsewhere_and_prunes_only_its_rows(two_versions: Path,
                                                                                    tmp_path: Path):
    """A database copied without its models folder reads the original's folders (their recorded paths): `models`
    said `ok` as for its own. Pruning the copy deletes its rows only."""
    copy = tmp_path / "copy.db"
    shutil.copy(two_versions, copy)
    newest, older = versions(two_versions)
    listed = json.loads(tagkit(copy, "models", "--json").stdout)
    assert [row["beside"] for row in listed] == [False, False]  # the table says `elsewhere`, not `ok`
    assert "elsewhere" in tagkit(copy, "models").stdout and "elsewhere" not in tagkit(two_versions, "models").stdout
    result = tagkit(copy, "models", "--prune", "1")
    assert result.exit_code == ExitCode.OK, result.output
    assert versions(copy) == [newest] and versions(two_versions) == [newest, older]
    assert (two_versions.parent / "tagkit.db.models" / older).is_dir()


def test_training_on_nothing_new_keeps_the_newest_version(demo_db: Path):
    """A season audit: a weekly `train` with no new product or decision wrote a new, identical version (23 MB), the
    next `predict` predicted every product again, and `--prune` pushed out the versions that differed."""
    newest = versions(demo_db)
    again = tagkit(demo_db, "train", str(DEMO / "train.csv"), "--json")
    assert again.exit_code == ExitCode.OK, again.output
    summary = json.loads(again.stdout)
    assert summary["unchanged"] is True and summary["version"] == newest[0] and versions(demo_db) == newest
    assert summary["counts"]["products"] == 400 and summary["validation"]
    assert "nothing new to learn" in again.stderr and "--force" in again.stderr
    table = tagkit(demo_db, "-q", "train", str(DEMO / "train.csv"))
    assert "(unchanged: the newest, trained on the same input)" in table.stdout
    forced = json.loads(tagkit(demo_db, "-q", "train", "--force", str(DEMO / "train.csv"), "--json").stdout)
    assert "unchanged" not in forced and versions(demo_db) == [forced["version"], *newest]
    (Path(forced["path"]) / "model.joblib").write_bytes(b"")  # damaged: trained again, not kept
    mended = json.loads(tagkit(demo_db, "-q", "train", str(DEMO / "train.csv"), "--json").stdout)
    assert "unchanged" not in mended and versions(demo_db)[0] == mended["version"] != forced["version"]
    other_seed = json.loads(tagkit(demo_db, "-q", "train", str(DEMO / "train.csv"), "--seed", "1", "--json").stdout)
    assert "unchanged" not in other_seed


def test_nothing_new_to_learn_reports_what_this_run_left_out_and_took_from_review(demo_db: Path):
    """A `train` that keeps the newest version says what this run read: the test products it left out and the
    reviewed products not in SOURCE (a season audit: it gave the counts of the run that made the version, 0 and
    nothing, where 100 test products were left out and a reviewed product learnt)."""
    assert tagkit(demo_db, "-q", "eval", str(DEMO / "test.csv")).exit_code == ExitCode.OK
    kept = json.loads(tagkit(demo_db, "-q", "train", "--json").stdout)
    assert kept["unchanged"] is True and kept["counts"]["held_out"] == 100
    with Store(demo_db) as store:
        item = next(i for i in load_items(store) if i.category)
        record(store, [Decision(item.id, item.model, "category", "correct", item.category, "Home > Kitchen > Cups")])
    assert json.loads(tagkit(demo_db, "stats", "--json").stdout)["products"]["reviewed"] == 1
    made = json.loads(tagkit(demo_db, "-q", "train", "--json").stdout)
    assert "unchanged" not in made and "from_review" not in made["counts"], "without SOURCE, all is learnt"
    assert made["counts"]["reviewed"] == 1, "without SOURCE too, train says how many it learnt reviewed"
    assert "1 with review decisions)" in tagkit(demo_db, "-q", "train").stdout
    again = tagkit(demo_db, "train", str(DEMO / "train.csv"), "--json")
    summary = json.loads(again.stdout)
    assert summary["unchanged"] is True and summary["version"] == made["version"]
    assert summary["counts"]["from_review"] == 1 and summary["counts"]["products"] == 401
    table = tagkit(demo_db, "-q", "train", str(DEMO / "train.csv")).stdout
    assert "401 (" in table and "1 with review decisions, 1 of them not in SOURCE" in table


def test_an_upgrade_under_the_same_version_number_is_not_nothing_new(tmp_path: Path):
    """`training_key` held tagkit's version number, which a development install or a fix released under the same
    number keeps (an upgrade audit): a `train` after such an upgrade said "nothing new to learn" and kept the model
    the old code made. The key holds a hash of tagkit's source files."""
    import shutil

    from tagkit.training import PACKAGE, code_fingerprint

    copy = tmp_path / "tagkit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "data"))
    assert code_fingerprint(copy) == code_fingerprint(PACKAGE)
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.pyc").write_bytes(b"compiled")  # not source
    assert code_fingerprint.__wrapped__(copy) == code_fingerprint(PACKAGE)
    model_code = copy / "models" / "catalogue.py"
    model_code.write_text(model_code.read_text("utf-8") + "\n# a fix\n", "utf-8")
    assert code_fingerprint.__wrapped__(copy) != code_fingerprint(PACKAGE)


def test_prune_deletes_the_image_features_no_version_left_uses(project: Path):
    """After an upgrade that changed the features key, the old features stayed for good beside the new ones (an
    upgrade audit: the demo's database went from 5.2 to 10.1 MB; 250 MB more for 30,000 products)."""
    newest, older = versions(project)
    folder = project.parent / "tagkit.db.models" / older
    manifest = json.loads((folder / "version.json").read_text("utf-8"))
    old_key = manifest["image_model"].replace("+exact", "")  # as a tagkit before the exact kernels named them
    manifest["image_model"] = old_key
    (folder / "version.json").write_text(json.dumps(manifest), "utf-8")
    with Store(project) as store, store.transaction():
        store.db.execute("insert into features select image_hash, ?, dim, vector, error, created_at from features",
                         [old_key])
        counts = dict(store.db.execute("select model, count(*) from features group by model").fetchall())
    assert counts[old_key] > 300
    kept = tagkit(project, "models", "--prune", "2", "--json")
    assert json.loads(kept.stdout)["pruned"]["features"] == 0, "the older version still uses them"
    size = project.stat().st_size
    result = tagkit(project, "models", "--prune", "1", "--json")
    assert result.exit_code == ExitCode.OK, result.output
    pruned = json.loads(result.stdout)["pruned"]
    assert pruned["features"] == counts[old_key] and pruned["feature_bytes"] > 1e6
    assert f"{counts[old_key]:,} cached image features" in result.stderr
    with Store(project) as store:
        left = dict(store.db.execute("select model, count(*) from features group by model").fetchall())
    assert left == {key: n for key, n in counts.items() if key != old_key}
    assert project.stat().st_size < size - 1e6, "the file gave the space back"
    predicted = tagkit(project, "-q", "predict", str(DEMO / "new"), "--json")
    assert predicted.exit_code == ExitCode.OK and json.loads(predicted.stdout)["model"] == newest
