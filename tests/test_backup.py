"""`tagkit backup`: a consistent copy of the database and its model versions while tagkit has it open, usable as it
is; and a damaged database said as such (a restore over a leftover -wal file), not a traceback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from click.testing import CliRunner
from conftest import DEMO

from tagkit.cli import main
from tagkit.exitcodes import ExitCode
from tagkit.feedback import Decision, feedback_rows, record
from tagkit.store import Store


def tagkit(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def test_a_backup_taken_while_a_review_is_open_has_its_decisions_and_works_as_a_database(demo_db: Path,
                                                                                         tmp_path: Path):
    target = tmp_path / "backups" / "tagkit-monday.db"
    target.parent.mkdir()
    with Store(demo_db) as store:  # a review session: decisions committed, still in the -wal file
        pid = next(store.db.query("select product_id from predictions limit 1"))["product_id"]
        record(store, [Decision(pid, None, "tag", "correct", corrected="color: Teal", reviewer="ana")])
        assert Path(f"{demo_db}-wal").stat().st_size > 0
        result = tagkit(demo_db, "backup", str(target), "--json")
        assert result.exit_code == ExitCode.OK, result.stderr
        versions = [row["id"] for row in store.db.query("select id from models")]
    done = json.loads(result.stdout)
    assert done["path"] == str(target) and done["versions_copied"] == versions and not done["versions_missing"]
    assert sorted(os.listdir(f"{target}.models")) == versions
    with Store(target) as copy:
        assert [r["corrected"] for r in feedback_rows(copy)] == ["color: Teal"]
    listed = json.loads(tagkit(target, "models", "--json").stdout)
    assert [Path(v["path"]).parent for v in listed] == [Path(f"{target}.models").resolve()] * len(versions)
    predicted = tagkit(target, "-q", "predict", str(DEMO / "test.csv"), "--export", "jsonl")
    assert predicted.exit_code == ExitCode.OK and len(predicted.stdout.splitlines()) > 10

    again = json.loads(tagkit(demo_db, "backup", str(target), "--json").stdout)
    assert (again["versions_copied"], again["versions_there"]) == ([], versions), "a version never changes"
    for wrong in (demo_db, Path(f"{demo_db}-wal")):
        itself = tagkit(demo_db, "backup", str(wrong))
        assert itself.exit_code == ExitCode.USAGE and "is the database itself" in itself.stderr
    nested = tmp_path / "new" / "folder" / "b.db"  # a folder not made yet (a dated backups folder)
    assert tagkit(demo_db, "backup", str(nested)).exit_code == ExitCode.OK and nested.is_file()
    under_a_file = tagkit(demo_db, "backup", str(nested / "x.db"))
    assert under_a_file.exit_code == ExitCode.USAGE and f"cannot make the folder {nested}" in under_a_file.stderr
    Path(f"{target}-wal").write_bytes(b"")  # a command killed on the backup left it: it would be read over a new copy
    refused = tagkit(demo_db, "backup", str(target))
    assert refused.exit_code == ExitCode.USAGE and f"{target}-wal is there" in " ".join(refused.stderr.split())


def test_a_damaged_database_is_said_as_such(demo_db: Path, tmp_path: Path):
    damaged = tmp_path / "restored.db"
    shutil.copy(demo_db, damaged)
    size = damaged.stat().st_size
    with damaged.open("r+b") as f:  # pages overwritten, as a copy put back over a leftover -wal file leaves them
        f.seek(size // 2)
        f.write(b"\xff" * (size // 4))
    result = tagkit(damaged, "stats")
    assert result.exit_code == ExitCode.USAGE
    assert f"the database {damaged} is damaged (database disk image is malformed): restore it from a backup" in \
        " ".join(result.stderr.split())
    assert "Traceback" not in result.output
    cut = tmp_path / "cut.db"  # an interrupted transfer
    cut.write_bytes(demo_db.read_bytes()[: demo_db.stat().st_size // 3])
    result = tagkit(cut, "stats")
    assert result.exit_code == ExitCode.USAGE and "Traceback" not in result.output
    assert "damaged or cut short: copy it again, or restore a backup" in " ".join(result.stderr.split())
