"""`tagkit import`: read a catalogue (file or image folder), store its products, cache image features."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from tagkit.catalogue import READ_STOPPED, line_id, note, read_input
from tagkit.config import Mapping
from tagkit.image import ImageEmbedder, ImageError, content_hash, read_image_bytes
from tagkit.product import Problem, Product, shown
from tagkit.store import Store
from tagkit.taxonomy import OutsideLabels, Taxonomy, stored_taxonomy

CHUNK_SIZE = 512
MAX_PROBLEMS_KEPT = 1000


@dataclass
class ImportReport:
    """What an import did. `problems` keeps the first 1,000; all of them are in the database.

    `products_read` counts the product records read (a repeated id counts each time); each is then
    `products_new`, `products_changed` (both written: `products_stored`) or `products_unchanged` (its content
    equals the stored row's: not rewritten, unless forced, when `products_stored` counts it too), except a record
    replaced by a later one of the same id within one chunk. Every product with an image path counts once in
    `images` and once in exactly one of: `images_embedded` (computed now), `images_cached` (features already
    stored, or the same picture as another product), `images_unreadable` (the file is there but cannot be used:
    empty, not an image, damaged, too large, not allowed to be read), `images_missing` (no such file).
    """

    source: str
    image_model: str | None = None
    products_read: int = 0
    products_stored: int = 0
    products_new: int = 0
    products_changed: int = 0
    products_unchanged: int = 0
    rows_skipped: int = 0
    images: int = 0
    images_missing: int = 0
    images_embedded: int = 0
    images_cached: int = 0
    images_unreadable: int = 0
    problem_count: int = 0
    note_count: int = 0
    stopped_at: int | None = None  # the line of a products file where reading stopped (not UTF-8 from there on)
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int | float | str | None]:
        """The report as plain numbers (for `--json` and the `runs` table)."""
        return {k: v for k, v in asdict(self).items() if k != "problems"}


class _Problems:
    """Collects problems: counts them all, keeps the first few, tells the caller about each."""

    def __init__(self, report: ImportReport, on_problem: Callable[[Problem], None] | None) -> None:
        self.report = report
        self.on_problem = on_problem
        self.pending: list[Problem] = []

    def add(self, problem: Problem) -> None:
        if problem.info:
            self.report.note_count += 1
        else:
            self.report.problem_count += 1
        if problem.skipped:
            self.report.rows_skipped += 1
        if problem.cause == READ_STOPPED:
            self.report.stopped_at = problem.row
        if len(self.report.problems) < MAX_PROBLEMS_KEPT:
            self.report.problems.append(problem)
        self.pending.append(problem)
        if self.on_problem:
            self.on_problem(problem)

    def take(self) -> list[Problem]:
        taken, self.pending = self.pending, []
        return taken


def import_products(
    store: Store,
    source: str | Path,
    *,
    mapping: Mapping | None = None,
    products_file: str | Path | None = None,
    embedder: ImageEmbedder | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_chunk: Callable[[list[Product]], None] | None = None,
    run_id: int | None = None,
    chunk_size: int = CHUNK_SIZE,
    force: bool = False,
    keep_labels: bool = False,
    training: bool = True,
) -> ImportReport:
    """Store every product of `source` (a products file or a folder of images) and embed its images.

    Works in chunks: each chunk's products are written in one transaction, then the images whose
    content hash has no cached features for `embedder`'s model are embedded and stored. A bad row
    or image becomes a `Problem` (also written to the `problems` table when `run_id` is given);
    the rest of the input goes on. Pass `embedder=None` to store products without features. With
    `keep_labels` (`predict`: new products), a product without a category or tags keeps those stored (see
    `Store.upsert_products`), and label columns the mapping names but the file lacks are only a note. With
    `training` (not for `predict` and `eval`), the products of the source's rows are products to learn from, test
    products `eval` scored included (`Store.set_held_out`); images without a row leave that alone. An
    image of a folder without a products row is the stored product of the same picture, if any (`_keep_stored`).
    `on_chunk` gets each chunk's products once they and their features are stored (with
    `image_hash` set where the image could be read): `predict` and `train` work from there.

    Incremental: a product whose content and image bytes are unchanged is not rewritten, and an image
    whose features are cached is not embedded again. `force` rewrites every product and embeds every
    image again. Killed at any point, the database keeps whole chunks and whole feature batches; the
    next import finishes the work.
    """
    started = time.monotonic()
    report = ImportReport(source=str(source), image_model=embedder.model_id if embedder else None)
    problems = _Problems(report, on_problem)
    folder_ids: set[str] = set()  # the ids a folder's products carry (filled by read_input)
    records = read_input(source, mapping=mapping, products=products_file, ids=folder_ids, labels=not keep_labels)
    taxonomy = stored_taxonomy(store)  # tags and categories are stored canonical when there is one
    outside = OutsideLabels()  # the labels it does not have (not for predict: new products)
    first_missing: str | None = None
    with (ThreadPoolExecutor(max_workers=8, thread_name_prefix="tagkit-hash") as pool,
          ThreadPoolExecutor(max_workers=1, thread_name_prefix="tagkit-read") as ahead):
        # The next chunk's image files are read and hashed while this one is embedded.
        for chunk, hashes in _ahead(_chunks(records, problems, chunk_size), lambda c: ahead.submit(_hashes, c, pool)):
            unreadable, missing = _set_hashes(chunk, hashes.result(), report)
            first_missing = first_missing or next((p.image for p, _ in missing), None)
            told, left_out = _keep_stored(store, chunk, folder_ids)
            told += _zeros_dropped(store, chunk)
            _older_line_ids(store, chunk)
            _keep_stored_fields(store, chunk)
            kept = _keep_stored_images(store, [(p, e) for p, e in missing if not p.image_hash])
            unreadable = [kept.get(id(problem), problem) for problem in unreadable]
            for note_ in told:
                problems.add(note_)
            if left_out:  # unreadable files of stored pictures: not a loss, the notes say why
                unreadable = [p for p in unreadable if (p.file, p.row) not in left_out]
            if taxonomy is not None:
                taxonomy.canonicalise(chunk)
                _canonical_keeps(chunk, taxonomy)
                if not keep_labels:
                    taxonomy.outside(chunk, outside)
            writes = store.upsert_products(chunk, force=force, keep_labels=keep_labels,
                                           canonical=taxonomy.canonical if taxonomy is not None else None)
            if training:
                store.set_held_out((p.id for p in chunk if not p.keeps_stored), False)
            report.products_read += len(chunk)
            report.products_stored += writes.written
            report.products_new += writes.new
            report.products_changed += writes.changed
            report.products_unchanged += writes.unchanged
            if embedder is not None:
                unreadable += _embed_missing(store, embedder, chunk, report, force)
            for problem in sorted(unreadable, key=lambda p: p.row or 0):  # in row order, whichever step found them
                problems.add(problem)
            if on_chunk:
                on_chunk(chunk)
            if run_id is not None:
                store.add_problems(run_id, problems.take())
            if on_progress:
                on_progress(report.products_read)
    for told in outside.notes(str(source)):
        problems.add(told)
    if report.images > 1 and report.images_missing == report.images:
        problems.add(note(str(source), None, "image", f"none of the {report.images:,} image files was found (the first "
                          f"looked for: {first_missing}): image paths are read from the products file's folder, or "
                          "from the config's `image_folder` or `image_archive`"))
    if run_id is not None:
        store.add_problems(run_id, problems.take())
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _chunks(records: Iterable[Product | Problem], problems: _Problems, size: int) -> Iterator[list[Product]]:
    """Products in lists of `size`; problems go to `problems` as they pass."""
    chunk: list[Product] = []
    for record in records:
        if isinstance(record, Problem):
            problems.add(record)
            continue
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ahead(chunks: Iterator[list[Product]], start: Callable[[list[Product]], Future]
           ) -> Iterator[tuple[list[Product], Future]]:
    """Each chunk with the future of `start(chunk)`, started when the chunk before it is handed out."""
    pending = None
    for chunk in chunks:
        started = (chunk, start(chunk))
        if pending is not None:
            yield pending
        pending = started
    if pending is not None:
        yield pending


def _hashes(chunk: list[Product], pool: ThreadPoolExecutor) -> list[str | ImageError]:
    """The content hash (or the ImageError) of the image of each product that names one, in order."""
    return list(pool.map(_hash_file, [p.image for p in chunk if p.image]))


def _set_hashes(chunk: list[Product], hashes: list[str | ImageError], report: ImportReport
                ) -> tuple[list[Problem], list[tuple[Product, Problem]]]:
    """Set each product's `image_hash`; left None where its image cannot be read. Returns the problems, and
    those of files not found with their products."""
    with_image = [p for p in chunk if p.image]
    report.images += len(with_image)
    unreadable, missing = [], []
    for product, result in zip(with_image, hashes, strict=True):
        if isinstance(result, ImageError):
            problem = _image_problem(product, result)
            if result.missing:
                report.images_missing += 1
                missing.append((product, problem))
            else:  # there, but empty, too large, not a regular file, not allowed to be read
                report.images_unreadable += 1
            unreadable.append(problem)
        else:
            product.image_hash = result
    return unreadable, missing


def _zeros_dropped(store: Store, chunk: list[Product]) -> list[Problem]:
    """Notes on the products whose id is a stored product's but for its leading zeros, with the same picture: a
    spreadsheet that read the id column as numbers (`00123` → `123`) makes a second product of the same one. Either
    order: the ids without zeros read now (`123`, the stored `00123`), or stored first (`00123`, the stored `123`)."""
    digits = {p.id: p for p in chunk if p.id.isdigit() and p.id[0] != "0" and p.image_hash}
    zeros = {p.id.lstrip("0"): p for p in chunk if p.id.isdigit() and p.id[0] == "0" and p.id.strip("0")
             and p.image_hash}
    if not digits and not zeros:
        return []
    twins = store.db.execute(f"select id, image_hash from products where (id glob '0[0-9]*' and ltrim(id, '0') in "
                             f"({', '.join('?' * len(digits))})) or id in ({', '.join('?' * len(zeros))})",
                             [*digits, *zeros]).fetchall()
    notes = []
    for twin, image_hash in twins:
        product = digits.get(twin.lstrip("0")) if twin[:1] == "0" else zeros.get(twin)
        if product is None or image_hash != product.image_hash:
            continue
        if twin[:1] == "0":
            told = (f"id {shown(product.id)} is the stored product {shown(twin)}'s but for its leading zeros, and has "
                    "its picture: a spreadsheet that read the ids as numbers? Read as a product of its own; format the "
                    "id column as Text and export the file again")
        else:
            told = (f"id {shown(product.id)} is the stored product {shown(twin)} with the leading zeros a spreadsheet "
                    f"dropped, and has its picture: this id is likely right, and {shown(twin)} came from a file whose "
                    "ids a spreadsheet read as numbers. Read as a product of its own, so the photo is learnt twice: "
                    f"delete the product {shown(twin)} from the database's `products` table")
        notes.append(replace(note(product.source, product.row, "id", told), product_id=product.id))
    return notes


def _older_line_ids(store: Store, chunk: list[Product]) -> None:
    """A row of a file without ids is `FOLDER/NAME:LINE` (`tagkit.catalogue`); an older tagkit called it `LINE`: a
    product stored so from this row of a file of that name keeps that id (its labels, decisions and predictions are
    under it)."""
    made = {str(p.row): p for p in chunk if p.source and p.row and p.id == line_id(p.source, p.row)}
    if not made:
        return
    for line, stored in store.products_by("id", made).items():
        product = made[line]  # the same file, however its path was typed then and now
        if any(os.path.basename(known.source or "") == os.path.basename(product.source or "") and
               known.row == product.row for known in stored):
            product.id = line


def _keep_stored_fields(store: Store, chunk: list[Product]) -> None:
    """Give each product the stored title, description and image that its record does not give (`Product.keeps`):
    a file without a title or image column (or a misspelt mapping) says nothing about them, and must not erase
    them; predictions are made from them. (Labels the file does not give are kept by `Store.upsert_products`,
    and not given to the product: `eval` scores the labels of its file only.)"""
    wanting = [p for p in chunk if p.keeps and not p.keeps_stored]
    if not wanting:
        return
    stored = {i: found[0] for i, found in store.products_by("id", (p.id for p in wanting)).items()}
    for product in wanting:
        known = stored.get(product.id)
        if known is None:
            continue
        if "title" in product.keeps and not product.title:
            product.title = known.title
        if "description" in product.keeps and not product.description:
            product.description = known.description
        if "image" in product.keeps and not product.image:
            product.image, product.image_hash = known.image, known.image_hash


def _keep_stored_images(store: Store, missing: list[tuple[Product, Problem]]) -> dict[int, Problem]:
    """A stored product whose image file is not found now (a database copied without the photos, a photo folder
    moved) keeps the image stored before, with its cached features (else it was learnt and predicted without it,
    silently). `missing`: the products whose file was not found, with their problems; returns the notes that
    replace those problems (by `id` of the problem)."""
    if not missing:
        return {}
    stored = {i: found[0] for i, found in store.products_by("id", (p.id for p, _ in missing)).items()}
    notes = {}
    for product, problem in missing:
        known = stored.get(product.id)
        if known is not None and known.image_hash:
            notes[id(problem)] = replace(problem, message=f"{problem.message.rsplit('; ', 1)[0]}; the image stored "
                                         f"before ({known.image}) is kept", info=True)
            product.image, product.image_hash = known.image, known.image_hash
    return notes


def _canonical_keeps(chunk: list[Product], taxonomy: Taxonomy) -> None:
    """The attribute names in `Product.keeps` (`given:NAME`, `tags:NAME`: a mapping's names) as the taxonomy's,
    as the stored tags they are compared with are."""
    def canonical(kept: str) -> str:
        kind, colon, name = kept.partition(":")
        found = taxonomy.attribute(name) if colon and kind in ("given", "tags") else None
        return f"{kind}:{found.name}" if found is not None else kept

    for product in chunk:
        if any(":" in kept for kept in product.keeps):
            product.keeps = frozenset(map(canonical, product.keeps))


def _keep_stored(store: Store, chunk: list[Product], taken: set[str]
                 ) -> tuple[list[Problem], set[tuple[str, int]]]:
    """Make each image read without a products row (`Product.keeps_stored`) the stored product of the same
    picture (`_same_picture`), with its id, title, description and labels, so that reading a folder again (or
    renamed, moved, copied) neither erases them nor adds a second, untitled product.

    A picture tagkit has not stored takes its file name as id, unless a stored product with that id has another
    picture (a file name used again, or the photo changed): it is then stored as `NAME~HASH` (noted), so that
    nothing stored, feedback included, is given to a picture it was not meant for. An unreadable file under the
    name of a stored product with a picture is left out of `chunk`. `taken`: the ids of the run's products.
    Returns the notes, and the (source, row) of the images left out."""
    bare = [p for p in chunk if p.keeps_stored and p.image]
    if not bare:
        return [], set()
    by_bytes = store.products_by("image_hash", (p.image_hash for p in bare if p.image_hash))
    by_id = {i: found[0] for i, found in store.products_by("id", (p.id for p in bare)).items()}
    pictured = {p.id for p in bare if by_id.get(p.id) is not None and by_id[p.id].image_hash}
    taken.difference_update(p.id for p in bare if p.id in pictured and p.image_hash != by_id[p.id].image_hash)
    notes, left_out = [], set()
    for product in bare:
        known = _same_picture(product, by_bytes.get(product.image_hash or "", []), taken)
        if known is None and product.id in pictured:
            stored = by_id[product.id]
            if product.image_hash is None:  # nothing to tell: the stored product keeps its picture
                chunk.remove(product)
                left_out.add((product.source, product.row))
                notes.append(_image_note(stored.id, product, f"product {shown(stored.id)} keeps its stored "
                                         f"picture ({stored.image}); this unreadable file is left out"))
                continue
            if product.image_hash != stored.image_hash:
                product.id = f"{product.id}~{product.image_hash[:8]}"
                taken.add(product.id)
                what = (f"the picture of product {shown(stored.id)} has changed" if stored.image == product.image else
                        f"product {shown(stored.id)} is another picture ({stored.image})")
                notes.append(_image_note(product.id, product, f"{what}: this one is stored as "
                                         f"{shown(product.id)} (if it is that product, retouched, give it a row "
                                         f"with id {shown(stored.id)} in a products file)"))
                continue
        known = known or by_id.get(product.id)
        if known is not None:
            taken.add(known.id)
            product.id, product.title, product.description = known.id, known.title, known.description
            product.category, product.tags, product.extra = known.category, known.tags, known.extra
    return notes, left_out


def _same_picture(product: Product, stored: list[Product], taken: set[str]) -> Product | None:
    """Which of `stored` (the products stored with this image's bytes) this image is: of those whose id is free
    (not `taken` by another product of the run), stored with this very file if any is, and with a title or labels
    if any has them, the one with the same id, else with the same file name, else the only one."""
    free = [p for p in stored if p.id == product.id or p.id not in taken]
    free = [p for p in free if p.image == product.image] or free  # stored with this very file, first
    told = [p for p in free if p.title or p.description or p.category or p.tags] or free
    name = os.path.basename(product.image or "")
    for group in ([p for p in told if p.id == product.id],
                  [p for p in told if p.image and os.path.basename(p.image) == name], told):
        if len(group) == 1:
            return group[0]
    return None


def embed_stored(store: Store, embedder: ImageEmbedder, products: Iterable[Product]) -> int:
    """Embed the pictures of stored products that have no features from `embedder` yet (stored by a tagkit whose
    image model or features key was another), read again from their files when these still hold the same picture
    (the same bytes); returns how many were embedded. The others stay without features."""
    paths: dict[str, str] = {}
    for product in products:
        if product.image_hash and product.image:
            paths.setdefault(product.image_hash, product.image)
    known = store.known_features(embedder.model_id, paths)
    todo = [(image_hash, path) for image_hash, path in paths.items()
            if image_hash not in known and _hash_file(path) == image_hash]
    return sum(not isinstance(result, ImageError) for _, result in _embed_into(store, embedder, todo))


def _hash_file(path: str) -> str | ImageError:
    try:
        return content_hash(read_image_bytes(path))
    except ImageError as error:
        return error


def _embed_missing(
    store: Store,
    embedder: ImageEmbedder,
    chunk: list[Product],
    report: ImportReport,
    force: bool = False,
) -> list[Problem]:
    """Embed the chunk's images that have no cached features yet (all of them with `force`); the problems of
    the images that cannot be decoded are returned."""
    products_by_hash: dict[str, list[Product]] = {}
    for product in chunk:
        if product.image_hash:
            products_by_hash.setdefault(product.image_hash, []).append(product)
    known = {} if force else store.known_features(embedder.model_id, products_by_hash)
    unreadable = []
    for image_hash, error in known.items():
        sharing = products_by_hash[image_hash]
        if error:
            report.images_unreadable += len(sharing)
            unreadable += [_image_problem(product, ImageError(error)) for product in sharing]
        else:
            report.images_cached += len(sharing)
    todo = [(h, products[0].image) for h, products in products_by_hash.items() if h not in known]
    for image_hash, result in _embed_into(store, embedder, todo):
        sharing = products_by_hash[image_hash]
        if isinstance(result, ImageError):
            report.images_unreadable += len(sharing)
            unreadable += [_image_problem(product, result) for product in sharing]
        else:
            report.images_embedded += 1
            report.images_cached += len(sharing) - 1  # the same picture under other products
    return unreadable


def _embed_into(store: Store, embedder: ImageEmbedder, todo: list[tuple[str, str | None]]
                ) -> Iterator[tuple[str, np.ndarray | ImageError]]:
    """Embed `todo` ((image hash, path) pairs) and store each result, a vector or why the image cannot be read, in
    batches; yields each result as it comes (consume them all: the last batch is stored at the end)."""
    batch: list[tuple[str, np.ndarray | str]] = []
    for image_hash, result in embedder.embed(todo):
        batch.append((image_hash, str(result) if isinstance(result, ImageError) else result))
        if len(batch) >= 256:
            store.put_features(embedder.model_id, batch)
            batch = []
        yield image_hash, result
    store.put_features(embedder.model_id, batch)


def _image_note(product_id: str, read: Product, message: str) -> Problem:
    """A note about the image of the record `read` (`tagkit.catalogue.note`), for the stored product `product_id`."""
    return replace(note(read.source, read.row, "image", message), product_id=product_id)


def _image_problem(product: Product, error: ImageError) -> Problem:
    return Problem(product.source, product.row, "image", f"{error} ({product.image}); product kept without image",
                   product_id=product.id, cause=error.reason)
