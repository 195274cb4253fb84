"""Shared fixtures: paths to the real data sets in ../shared/data, skipped cleanly when absent."""

from __future__ import annotations

import csv
import os
import sqlite3
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO = REPO / "examples" / "demo"

# pytest-xdist's workers import GNU readline, which exports the size of the window it thinks it has (COLUMNS=80,
# LINES=24). rich takes those over a terminal's real size and cuts piped tables to them: the tests, and the tagkit
# processes they start, see the environment a shell or cron gives.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not here: {path} is missing (it lives in ../shared/data next to the repo)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public data sets (../shared/data); skips the test when it is absent."""
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def fashion_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `styles.csv` (the first 300 fashion products) and their real images in `images/`."""
    styles = _need(SHARED_DATA / "fashion" / "styles.csv")
    archive = _need(SHARED_DATA / "fashion" / "images.tar")
    out = tmp_path_factory.mktemp("fashion")
    with styles.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = [row for _, row in zip(range(300), reader, strict=False)]
        fieldnames = reader.fieldnames or []
    wanted = {row["image"] for row in rows}
    with tarfile.open(archive) as tar:
        members = [m for m in tar if m.name in wanted]
        tar.extractall(out, members=members, filter="data")
    with (out / "styles.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return out


@pytest.fixture(scope="session")
def demo_predicted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with a model trained on the demo catalogue and its predictions for the 60 new demo photos."""
    from click.testing import CliRunner

    from tagkit.cli import main
    from tagkit.exitcodes import ExitCode

    db = tmp_path_factory.mktemp("demo") / "tagkit.db"
    for args in (["train", str(DEMO / "train.csv")],
                 ["predict", str(DEMO / "new"), "--products", str(DEMO / "new.csv")]):
        result = CliRunner().invoke(main, ["--db", str(db), "-q", *args], catch_exceptions=False)
        assert result.exit_code == ExitCode.OK, result.output
    return db


@pytest.fixture
def demo_db(demo_predicted: Path, tmp_path: Path) -> Path:
    """A private copy of `demo_predicted` to write decisions into (the model files stay shared)."""
    return copy_db(demo_predicted, tmp_path / "tagkit.db")


def copy_db(source: Path, target: Path) -> Path:
    """A copy of a database (its model versions stay where they are: the copy points at them)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    """`rows` as a CSV file (the columns of the first row, or `columns`: cells of others left out), as a
    spreadsheet saves one."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or list(rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
