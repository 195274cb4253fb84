"""Model versions: one folder per trained model next to the database, and a row in `models`.

`tagkit.db` keeps its models in `tagkit.db.models/<version>/`. A version is written into a hidden
temporary folder first and renamed into place when complete, so a crash never leaves a half model
that `predict` could pick up; the next `write_version` removes the temporary folders of dead processes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tagkit.store import Store, now, process_alive, sync_folder

MANIFEST = "version.json"


class ModelNotFound(LookupError):
    """No trained model (or not the one asked for)."""


class ModelDamaged(ModelNotFound):
    """A model version whose files cannot be read (cut short, overwritten, edited)."""

    def __init__(self, version: str, folder: Path, error: BaseException) -> None:
        super().__init__(f"model {version} cannot be read from {folder} ({type(error).__name__}: {error}): a file "
                         "cut short or damaged? Train again, or use another version with --model (`tagkit models` "
                         "lists them)")


@dataclass(frozen=True)
class ModelVersion:
    """A trained model's version id, folder and manifest (what it was trained on, how well it did)."""

    id: str
    path: Path
    manifest: dict[str, Any]
    passed_over: tuple[str, ...] = ()  # newer versions whose folders are missing (the newest was asked for)


def models_folder(store: Store) -> Path:
    """Where the database's model versions live: `<database file>.models/`, next to the file itself (through a
    symbolic link to the database, the database's folder). Absolute: rows stay valid from any working folder."""
    real = store.path.resolve()
    return real.with_name(real.name + ".models")


_VERSION_ID = re.compile(r"\d{8}-\d{6}-\d{3}")


def new_version_id(after: str = "") -> str:
    """A sortable id from the time (UTC), e.g. `20261122-013045-123`, later than `after` (the newest version's) even
    when the clock has gone back (a corrected clock, a restored snapshot): the newest version is the last trained."""
    stamp = datetime.now(UTC)
    try:
        last = datetime.strptime(after + "000", "%Y%m%d-%H%M%S-%f").replace(tzinfo=UTC)
    except ValueError:  # none yet (or not an id of tagkit's)
        last = None
    if last is not None and stamp <= last:
        stamp = last + timedelta(milliseconds=1)
    return stamp.strftime("%Y%m%d-%H%M%S-") + f"{stamp.microsecond // 1000:03d}"


def write_version(store: Store, save: Callable[[Path], None], manifest: dict[str, Any]) -> ModelVersion:
    """Save a model with `save(folder)`, add its manifest, publish it atomically, record it in `models`."""
    root = models_folder(store)
    root.mkdir(parents=True, exist_ok=True)
    remove_leftovers(root)
    ids = [row[0] for row in store.db.execute("select id from models")] + [p.name for p in root.iterdir()]
    version = new_version_id(max((i for i in ids if _VERSION_ID.fullmatch(i)), default=""))  # no folder has it
    temporary = root / f".tmp-{version}-{os.getpid()}"
    try:
        temporary.mkdir()
        try:
            save(temporary)
        except OSError:
            raise
        except Exception as error:  # a library's own write error (LightGBM's): a full disk is said as one
            if shutil.disk_usage(root).free >= 1 << 20:
                raise
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(temporary)) from error
        manifest = {"version": version, "created_at": now(), **manifest}
        (temporary / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", "utf-8")
        _sync_files(temporary)  # on the disk before the folder takes its name: a power cut leaves no empty model
        os.replace(temporary, root / version)
        sync_folder(root)
        _record(store, version, root, manifest)
    except BaseException:  # failed or stopped (SIGTERM, Ctrl-C): no folder is left without its row
        if not store.db.execute("select 1 from models where id = ?", [version]).fetchone():
            shutil.rmtree(root / version, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return ModelVersion(version, root / version, manifest)


def _sync_files(folder: Path) -> None:
    """fsync every file under `folder`, then the folders themselves."""
    for path in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)):  # files and inner folders first
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        elif path.is_dir():
            sync_folder(path)
    sync_folder(folder)


def _record(store: Store, version: str, root: Path, manifest: dict[str, Any]) -> None:
    """The `models` row of a published version."""
    with store.transaction():
        store.db.table("models").insert({
            "id": version,
            "created_at": manifest["created_at"],
            "path": str(root / version),
            "tagkit_version": manifest.get("tagkit_version"),
            "input_hash": manifest.get("input_hash"),
            "duration_s": manifest.get("duration_s"),
            "counts": json.dumps(manifest.get("counts", {}), ensure_ascii=False),
            "params": json.dumps(manifest.get("params", {}), ensure_ascii=False),
            "metrics": json.dumps(manifest.get("metrics", {}), ensure_ascii=False),
        })


@dataclass
class Pruned:
    """What `prune_versions` deleted (or, dry, would delete)."""

    versions: list[str]  # model versions deleted: their rows, and their folders beside the database
    unrecorded: list[str]  # folders beside the database that no row records, older than all its versions
    kept: list[str]  # the versions kept, newest first
    bytes: int  # the size of the folders deleted
    predictions: int = 0  # predictions of deleted versions (now or before) that a later one of their product replaced
    features: int = 0  # cached image features of image models that no version left and no bundled model uses
    feature_bytes: int = 0  # their vectors' size
    newer_unrecorded: list[str] = field(default_factory=list)  # other unrecorded folders: kept, named


# Predictions of the versions in `{marks}` that are not their product's latest (the latest_predictions view's order).
_SUPERSEDED = ("from predictions where model_id in ({marks}) and exists (select 1 from predictions q where "
               "q.product_id = predictions.product_id and (q.created_at > predictions.created_at or "
               "(q.created_at = predictions.created_at and q.model_id > predictions.model_id)))")


def prune_versions(store: Store, keep: int, dry_run: bool = False) -> Pruned:
    """Delete all but the `keep` newest model versions that have their folder (those `predict` can use): the
    others' `models` rows and their folders in this database's models folder (a folder recorded elsewhere, the
    original project's for a copied database, is left alone), and the version folders there that no row records.
    A version whose folder is missing is left listed when it is newer than the oldest kept (its folder may come
    back), and deleted when older. The predictions of the deleted versions (and of versions deleted before) go too,
    but for those still their product's latest (what `review` and the exports read; they and review decisions keep
    their model ids); so do the cached image features no version left can use (`_stale_feature_models`), and the
    database file is then compacted when rows were deleted."""
    if keep < 1:
        raise ValueError("keep at least one model version")
    rows = list_versions(store)
    kept = [r["id"] for r in rows if r["available"]][:keep]
    oldest_kept = kept[-1] if kept else ""
    gone = [r["id"] for r in rows if r["id"] not in kept and (r["available"] or r["id"] < oldest_kept)]
    root = models_folder(store)
    unrecorded, newer = unrecorded_folders(store, rows)
    folders = [root / name for name in [*gone, *unrecorded] if (root / name).is_dir()]
    size = sum(f.stat().st_size for folder in folders for f in folder.rglob("*") if f.is_file())
    # predictions of these versions, and of versions deleted before (by an older tagkit), that later ones replaced
    deleted_before = [row[0] for row in store.db.execute(
        "select distinct model_id from predictions where model_id not in (select id from models)")]
    cleaned = [*gone, *deleted_before]
    superseded = sum(row[0] for row in store.select_in(f"select count(*) {_SUPERSEDED}", [], cleaned))
    stale = _stale_feature_models(store, [r for r in rows if r["id"] not in gone])
    of_stale = f"from features where model in ({', '.join('?' * len(stale))})"
    features, feature_bytes = store.db.execute(
        f"select count(*), coalesce(sum(length(vector)), 0) {of_stale}", stale).fetchone() if stale else (0, 0)
    if not dry_run:
        from tagkit.queue import review_manifests

        manifests = {v: review_manifests(store, v) for v in gone}  # read before the rows go
        with store.transaction():
            list(store.select_in(f"delete {_SUPERSEDED}", [], cleaned))
            predicted = {r[0] for r in store.select_in("select distinct model_id from predictions where model_id "
                                                       "in ({marks})", [], gone)}
            store.db.table("pruned_models").upsert_all(  # thresholds and attributes `review` reads
                [{"id": v, "pruned_at": now(), "review": json.dumps(manifests[v], ensure_ascii=False)}
                 for v in gone if v in predicted], pk="id")
            for version in gone:
                store.db.execute("delete from models where id = ?", [version])
            if stale:
                store.db.execute(f"delete {of_stale}", stale)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        with store.transaction():
            store.set_meta(_KEPT_FOLDERS, json.dumps(newer))
        if features or superseded:  # the deleted rows' space back to the disk
            store.compact()
    return Pruned(gone, unrecorded, kept, size, superseded, features, feature_bytes, newer)


def unrecorded_folders(store: Store, rows: list[dict[str, Any]] | None = None) -> tuple[list[str], list[str]]:
    """The version folders beside the database that no `models` row records: those older than every version it
    records (left by a version deleted by an older tagkit, or by hand: `prune_versions` deletes them), and the
    others (the database was restored from a backup older than its models folder, and trained since, maybe: kept,
    for a person to look at)."""
    root = models_folder(store)
    if not root.is_dir():
        return [], []
    rows = list_versions(store) if rows is None else rows
    recorded = {r["id"] for r in rows}
    oldest = min(recorded, default="")  # no version recorded: nothing says a folder is stale
    kept = _kept_folders(store)  # said kept by an earlier prune: kept also once the versions before them are gone
    found = sorted(f.name for f in root.iterdir() if f.is_dir() and not f.name.startswith(".")
                   and f.name not in recorded and (f / MANIFEST).is_file())
    stale = [name for name in found if name < oldest and name not in kept]
    return stale, [name for name in found if name not in stale]


_KEPT_FOLDERS = "kept_model_folders"  # meta key: the unrecorded folders `prune_versions` kept


def _kept_folders(store: Store) -> set[str]:
    value = store.meta(_KEPT_FOLDERS)
    try:
        return set(json.loads(value)) if value else set()
    except (TypeError, ValueError):
        return set()


def _stale_feature_models(store: Store, remaining: list[dict[str, Any]]) -> list[str]:
    """The image models of cached features that neither a model version left (its `image_model`) nor one of this
    tagkit's image models uses: features an older tagkit or another `--image-model` made (after an upgrade, as
    large as the first). None when a version left cannot say which it used (its folder missing or damaged)."""
    from tagkit.image import bundled_feature_keys

    used = bundled_feature_keys()
    for row in remaining:
        try:
            manifest = json.loads((Path(row["path"]) / MANIFEST).read_text("utf-8"))
            used.add(str(manifest["image_model"]))
        except (OSError, ValueError, TypeError, KeyError):
            return []
    return [m for (m,) in store.db.execute("select distinct model from features") if m not in used]


def remove_leftovers(root: Path) -> list[Path]:
    """Delete the temporary folders (`.tmp-<version>-<pid>`) that a killed `train` left; returns them."""
    removed = []
    for folder in root.glob(".tmp-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def version_folder(store: Store, version: str, recorded: str | None = None) -> Path:
    """A version's folder: the one beside the database (so a project folder that was moved or copied, with
    its database and models, keeps its models), else the path recorded when it was trained."""
    beside = models_folder(store) / version
    return beside if beside.is_dir() or not recorded else Path(recorded)


def list_versions(store: Store) -> list[dict[str, Any]]:
    """Every recorded model version, newest first, with its counts and validation metrics."""
    rows = list(store.db.query("select * from models order by id desc"))
    root = models_folder(store)
    for row in rows:
        for key in ("counts", "params", "metrics"):
            row[key] = json.loads(row[key] or "{}")
        row["path"] = str(version_folder(store, row["id"], row["path"]))
        row["available"] = Path(row["path"]).is_dir()
        row["beside"] = Path(row["path"]).parent == root  # False: another project's folder
    return rows


def train_settings(store: Store) -> tuple[str, dict[str, Any]] | None:
    """The newest version's id and the tagkit.yaml `train:` settings it was trained with (`extract`,
    `attributes`), or None when there is no version or it had none of them."""
    row = next(store.db.query("select id, params from models order by id desc limit 1"), None)
    if row is None:
        return None
    try:
        params = json.loads(row["params"] or "{}")
    except ValueError:
        return None
    settings = {key: params[key] for key in ("extract", "attributes") if isinstance(params, dict) and params.get(key)}
    return (row["id"], settings) if settings else None


def find_version(store: Store, version: str | None = None) -> ModelVersion:
    """The newest model version whose folder exists, or the one named (an id or a unique prefix)."""
    rows = list_versions(store)
    candidates = [row for row in rows if row["available"]]
    if version is not None and not version.strip():
        raise ModelNotFound("--model names no version (an empty id); `tagkit models` lists them")
    if version:
        candidates = [row for row in candidates if row["id"].startswith(version)]
        if len(candidates) > 1:
            raise ModelNotFound(f"model {version!r} is ambiguous: {', '.join(r['id'] for r in candidates)}")
        gone = [row for row in rows if row["id"].startswith(version) and not row["available"]]
        if not candidates and len(gone) == 1:
            raise ModelNotFound(f"model {gone[0]['id']}'s folder {gone[0]['path']} is missing (moved or deleted?); "
                                "`tagkit models` lists the others")
    if not candidates:
        if version and rows:
            raise ModelNotFound(f"no model {version!r} in {store.path}: `tagkit models` lists its {len(rows)} "
                                "versions")
        if rows and not version:  # a database copied without its models folder
            raise ModelNotFound(f"{store.path} records {len(rows)} model version(s), but none has its folder: "
                                f"they are looked for in {models_folder(store)}/ (then where they were trained, "
                                f"e.g. {rows[0]['path']}); copy that models folder beside the database, or train "
                                "again")
        which = f"model {version!r}" if version else "trained model"
        raise ModelNotFound(f"no {which} in {store.path} (run `tagkit train` first; `tagkit models` lists them)")
    chosen = candidates[0]
    path = Path(chosen["path"])
    try:
        manifest = json.loads((path / MANIFEST).read_text("utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError(f"{MANIFEST} holds no JSON object")
    except (OSError, ValueError) as error:
        raise ModelDamaged(chosen["id"], path, error) from error
    passed_over = () if version else tuple(row["id"] for row in rows if row["id"] > chosen["id"])
    return ModelVersion(chosen["id"], path, manifest, passed_over)
