"""Shared fixtures: paths to the real data sets in ../shared/data, skipped cleanly when absent."""

from __future__ import annotations

import csv
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


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
