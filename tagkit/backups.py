"""A consistent copy of the database and its model versions, taken while tagkit may be running (`tagkit backup`).

A plain `cp tagkit.db` while a command or a review session has the database open misses what is still in its
`tagkit.db-wal` file, and copying it back over a database whose `-wal` file was left by a killed run damages it.
`backup` copies through SQLite's online backup (one consistent snapshot, whatever writes meanwhile), then the
folders of the model versions that snapshot records into `<target>.models/`, beside it, where tagkit looks for
them: the backup is itself a working project database (`tagkit --db BACKUP ...`).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from tagkit.store import Store
from tagkit.versions import version_folder


@dataclass
class Backup:
    """What `backup` wrote."""

    path: str  # the database copy
    bytes: int  # its size
    models: str  # the folder of its model versions
    versions_copied: list[str] = field(default_factory=list)  # version folders copied now
    versions_there: list[str] = field(default_factory=list)  # already in the target's folder (a version never changes)
    versions_missing: list[str] = field(default_factory=list)  # recorded, but their folder is gone here too


def backup(store: Store, target: str | Path) -> Backup:
    """Copy the database to `target` (replacing a file there at once, never half-written) and its recorded model
    versions' folders to `<target>.models/`. Raises ValueError when `target` is the database itself."""
    target = Path(target)
    live = store.path.resolve()
    if target.resolve() in {live, *(live.with_name(live.name + end) for end in ("-wal", "-shm", ".lock"))}:
        raise ValueError(f"{target} is the database itself (or one of its files): name another file")
    if target.is_dir():
        raise ValueError(f"{target} is a folder: name the backup file (e.g. {target / store.path.name})")
    if Path(f"{target}-wal").exists():  # it would be read over the new copy when the backup is next opened
        raise ValueError(f"{target}-wal is there: a command has the backup {target} open, or was killed on it; "
                         f"let it finish (or delete {target}-wal and {target}-shm), or name another file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a part of the folder's path is a file
        raise ValueError(f"cannot make the folder {target.parent}: {error.strerror}") from error
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        copy = sqlite3.connect(partial)
        try:
            store.db.conn.backup(copy)  # one step: a snapshot consistent at one moment
            versions = [row[0] for row in copy.execute("select id from models order by id")]
        finally:
            copy.close()
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    report = Backup(str(target), target.stat().st_size, str(target.with_name(target.name + ".models")))
    folder = Path(report.models)
    recorded = {row["id"]: row["path"] for row in store.db.query("select id, path from models")}
    for version in versions:
        there, source = folder / version, version_folder(store, version, recorded.get(version))
        if there.is_dir():
            report.versions_there.append(version)
        elif not source.is_dir():
            report.versions_missing.append(version)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            partial_folder = folder / f".tmp-{version}-{os.getpid()}"  # `models --prune` removes one left by a kill
            shutil.copytree(source, partial_folder, dirs_exist_ok=True)
            os.replace(partial_folder, there)
            report.versions_copied.append(version)
    return report
