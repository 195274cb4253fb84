"""`tagkit train`: learn categories and tags from labelled products, and publish a model version."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagkit import __version__
from tagkit.config import Mapping
from tagkit.dataset import Dataset, products_dataset
from tagkit.feedback import apply_feedback, feedback_rows
from tagkit.image import ImageEmbedder
from tagkit.ingest import ImportReport, embed_stored, import_products
from tagkit.product import Problem, Product
from tagkit.store import Store
from tagkit.tagger import EXTRACTOR_FOLDER, Tagger, save_sources
from tagkit.taxonomy import OutsideLabels, Taxonomy, stored_taxonomy, taxonomy_fingerprint
from tagkit.text import match_key
from tagkit.versions import ModelVersion, find_version, write_version
from tagkit.vocabulary import Spellings

if TYPE_CHECKING:
    from tagkit.extract import AttributeExtractor
    from tagkit.models import CatalogueModel


MIN_SOURCE_SUPPORT = 10  # true values of an attribute among the validation products to choose its tags' source


class NothingToLearn(ValueError):
    """No labelled products: nothing to train on. `import_report`: what reading SOURCE did, when there was one."""

    def __init__(self, message: str, import_report: ImportReport | None = None) -> None:
        super().__init__(message)
        self.import_report = import_report


class SourceReadInPart(NothingToLearn):
    """SOURCE could be read only up to a line (not UTF-8 from there on): a model of part of it is not trained, lest
    it become the newest. The rows read are stored."""


@dataclass
class TrainReport:
    """What `train` did: the new version, what it learned from, and how well it validated."""

    version: str
    path: str
    products: int
    counts: dict[str, int]
    seconds: float
    model_report: dict[str, Any] = field(default_factory=dict)
    import_report: ImportReport | None = None
    unchanged: bool = False  # nothing new: `version` is the newest one, trained on the same input and settings


def train(
    store: Store,
    source: str | Path | None = None,
    *,
    embedder: ImageEmbedder,
    mapping: Mapping | None = None,
    products_file: str | Path | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    extract: bool | Collection[str] = False,
    attributes: Collection[str] | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    run_id: int | None = None,
    force: bool = False,
) -> TrainReport:
    """Train a model version on the labelled products of `source` (imported first) and the products a review
    decision is about, or, when `source` is None, on those of the whole database; never on the test products
    `eval` scored (`Store.held_out_ids`) that no review decision is about and SOURCE has no row of (an image of
    one in a folder is not enough). The same products and seed give the same model: when the newest version was
    trained on the same products, labels and settings by this tagkit (`training_key`), no new one is made and the
    report names that one (`unchanged`), unless `force`.

    `extract` (tagkit.yaml `train: extract:`) also fits an `AttributeExtractor` on the same products, for every
    attribute of their labels (True) or for the attributes named; it is saved in the version's `extractor/`
    folder and `predict`/`eval` merge its tags with the model's (see `tagkit.tagger`), keeping for each attribute
    the source's tags `choose_sources` chose (`extractor/sources.json`). `attributes` (tagkit.yaml
    `train: attributes:`) keeps only the tags of the attributes named: the model learns, predicts and `eval`
    scores no other."""
    from tagkit.models import CatalogueModel

    started = time.monotonic()
    import_report = None
    ids: set[str] | None = None
    if source is not None:
        ids = set()
        import_report = import_products(
            store, source, mapping=mapping, products_file=products_file, embedder=embedder,
            on_problem=on_problem, on_progress=on_progress, run_id=run_id,
            on_chunk=lambda chunk: ids.update(p.id for p in chunk))
        if import_report.stopped_at is not None:
            raise SourceReadInPart(f"{source} was read only up to line {import_report.stopped_at} (not UTF-8 from "
                                   "there on): no model is trained from part of the catalogue. Mend the file as "
                                   "its problem says and train again", import_report)
    decisions = feedback_rows(store)
    taxonomy = stored_taxonomy(store)  # decisions match labels by the taxonomy's names, whatever the spelling
    stored = list(store.iter_products())
    from tagkit.queue import attribute_arity

    # review decisions override labels; a value decided of an attribute that takes one replaces the label's
    products = apply_feedback(stored, decisions, taxonomy, attribute_arity(store, taxonomy))
    reviewed = {row["product_id"] for row in decisions}
    if taxonomy is not None and on_problem is not None:  # what import says of a file's labels, said of decisions
        outside = OutsideLabels()
        taxonomy.outside(decided_labels(stored, products, reviewed, taxonomy), outside)
        for told in outside.notes("review decisions"):
            on_problem(told)
    from_review = reviewed - ids if ids is not None else set()
    if ids is not None:  # what was reviewed is learnt from, whichever catalogue it came from
        ids |= from_review
    # test products: all of them without SOURCE; with one, those it has only as images (its rows unmarked theirs)
    held_out = store.held_out_ids() - reviewed
    left_out = sum(1 for p in products if p.id in held_out and (p.category or p.tags))
    products = [p for p in products if p.id not in held_out]
    if taxonomy is not None:  # labels stored before the taxonomy was imported
        taxonomy.canonicalise(products)
    else:  # a label written several ways is one class
        spelt = Spellings((p.category for p in products), (t for p in products for t in p.tags))
        products = [replace(p, category=spelt.path(p.category), tags=spelt.tags(p.tags)) for p in products]
    chosen: dict[str, Any] = {}
    if attributes is not None:
        products, chosen = keep_attributes(products, attributes, taxonomy)
    reembedded = embed_stored(store, embedder, (p for p in products if (ids is None or p.id in ids) and (
        p.category or p.tags or p.id in reviewed)))  # stored by a tagkit with another image model
    data = labelled(products_dataset(store, products, embedder), ids)
    if not len(data):
        where = f"in {source}" if source is not None else f"in {store.path}"
        if left_out:
            where += (f" but the {left_out:,} test products `tagkit eval` read (`tagkit train FILE` learns from "
                      "a file's products)")
        raise NothingToLearn(f"no product with a category or tags {where}: nothing to learn from", import_report)
    params = dict(params or {})
    fingerprint = input_hash(data)
    key = training_key(fingerprint, embedder, seed, params, extract, attributes, taxonomy)
    same = None if force else unchanged_version(store, key)
    this_run = {"images_embedded_again": reembedded, "held_out": left_out,
                "reviewed": sum(1 for pid in data.ids if pid in reviewed)}  # learnt with their decisions
    if ids is not None:  # labelled products of the database that SOURCE does not have (another catalogue?)
        this_run["not_in_source"] = sum(1 for p in products if p.id not in ids and (p.category or p.tags))
    if ids is not None:
        this_run["from_review"] = sum(1 for pid in data.ids if pid in from_review)
    if same is not None:  # reported as `train` reported it when it made that version, but for what this run read
        found, tagger = same
        model_report = {**tagger.model.report, **{part: found.manifest[part] for part in ("extractor", "attributes")
                                                  if part in found.manifest}}
        counts = {name: value for name, value in found.manifest.get("counts", {}).items() if name != "from_review"}
        return TrainReport(found.id, str(found.path), len(data), {**counts, **this_run},
                           round(time.monotonic() - started, 3), model_report, import_report, unchanged=True)
    model = CatalogueModel(seed=seed, **params).fit(data)
    extractor, extractor_report = fit_extractor(data, extract, store, seed) if extract else (None, {})
    sources: dict[str, str] = {}
    if extractor is not None:
        started_sources = time.monotonic()
        sources, extractor_report["sources"] = choose_sources(model, extractor, data, taxonomy)
        extractor_report["sources"]["seconds"] = round(time.monotonic() - started_sources, 3)
    if chosen and extractor_report.get("not_in_labels"):  # named for extraction, but switched off
        off = [name for name in extractor_report["not_in_labels"]
               if named_attributes([name], chosen["left_out"], taxonomy)[0]]
        extractor_report["not_in_labels"] = [name for name in extractor_report["not_in_labels"] if name not in off]
        extractor_report["switched_off"] = off
    counts = dataset_counts(data)
    counts["images_not_embedded"] = not_embedded(store, products, set(data.ids), embedder)
    counts.update(this_run)
    seconds = round(time.monotonic() - started, 3)
    metrics = dict(model.report.get("validation", {}))
    if extractor is not None:
        oof = extractor_report["out_of_fold"]
        metrics["extractor"] = {key: oof[key] for key in ("precision", "recall", "f1")}
    manifest = {
        "tagkit_version": __version__,
        "image_model": embedder.model_id,
        "image_variant": embedder.variant,
        "input_hash": fingerprint,
        "training_key": key,
        "seed": seed,
        "params": {"seed": seed, **params, **({"extract": extractor_report["asked"]} if extract else {}),
                   **({"attributes": chosen["asked"]} if chosen else {})},
        "counts": counts,
        "duration_s": seconds,
        "metrics": metrics,
        **({"extractor": extractor_report} if extractor_report else {}),
        **({"attributes": chosen} if chosen else {}),
    }

    def save(folder: Path) -> None:
        model.save(folder)
        if extractor is not None:
            extractor.save(folder / EXTRACTOR_FOLDER)
            save_sources(folder / EXTRACTOR_FOLDER, sources)
        (folder / "training_ids.txt").write_text("\n".join(sorted(data.ids)) + "\n", "utf-8")

    version: ModelVersion = write_version(store, save, manifest)
    model_report = {**model.report, **({"extractor": extractor_report} if extractor_report else {}),
                    **({"attributes": chosen} if chosen else {})}
    return TrainReport(version.id, str(version.path), len(data), counts, seconds, model_report, import_report)


def fit_extractor(data: Dataset, extract: bool | Collection[str], store: Store, seed: int = 0
                  ) -> tuple[AttributeExtractor | None, dict[str, Any]]:
    """An AttributeExtractor fitted on the titled, tagged products of `data` for every attribute of their labels
    (`extract` True) or those named (by match key, or a synonym in the stored taxonomy), with its report: the
    attributes, out-of-fold precision/recall, seconds. None (and the reason in the report) when nothing is left
    to learn."""
    from tagkit.extract import AttributeExtractor

    started = time.monotonic()
    extract = [extract] if isinstance(extract, str) else extract
    taxonomy = stored_taxonomy(store)
    in_labels = {tag.name for tags in data.tags for tag in tags if tag.name}
    wanted = set(in_labels) if extract is True else set()
    missing: list[str] = []
    if extract is not True:
        wanted, missing = named_attributes(extract, in_labels, taxonomy)
    report: dict[str, Any] = {"asked": extract if isinstance(extract, bool) else list(extract),
                              "not_in_labels": missing}
    rows = [i for i, tags in enumerate(data.tags) if data.texts[i].strip() and any(t.name in wanted for t in tags)]
    if not rows:
        report["skipped"] = "no product with a title has a value of the attributes to extract"
        return None, report
    extractor = AttributeExtractor(seed=seed, skip_attributes=sorted(in_labels - wanted))
    extractor.fit(data.subset([i for i, tags in enumerate(data.tags) if data.texts[i].strip() and tags]),
                  taxonomy=taxonomy)
    report.update({**extractor.report, "folder": EXTRACTOR_FOLDER, "attributes": sorted(extractor.attribute_ids),
                   "single_valued": sorted(extractor.single_valued), "seconds": round(time.monotonic() - started, 3)})
    return extractor, report


def choose_sources(model: CatalogueModel, extractor: AttributeExtractor, data: Dataset,
                   taxonomy: Taxonomy | None, min_support: int = MIN_SOURCE_SUPPORT
                   ) -> tuple[dict[str, str], dict[str, Any]]:
    """For each attribute the extractor reads, whose tags a product keeps (`Tagger.sources`): the model's, the
    extractor's or both (merged), whichever gives the attribute the best F1 on the model's validation products
    (those with tags; a predicted value is wrong also on a product without a label of its attribute, as `eval`
    counts it): the model's predictions for them from held-out scores (`validation_predictions`), the extractor's
    out-of-fold decisions (`predict_out_of_fold`) given the model's predicted category as the product type, as
    `Tagger.predict` gives it. An attribute with fewer than `min_support` true values there, and a tie, keeps
    both. Returns the choice and a report (per attribute: support, F1 of each option, the choice; the micro-F1 of
    each option everywhere and of the choice, on the products it was made on)."""
    from tagkit.models.metrics import per_attribute, tag_metrics
    from tagkit.tagger import SOURCE_OPTIONS

    held = getattr(model, "validation_predictions", None) or {}
    rows = [i for i, pid in enumerate(data.ids) if pid in held and data.tags[i]]
    report: dict[str, Any] = {"validation_products": len(rows), "min_support": min_support}
    attributes = sorted(extractor.attribute_ids)
    if not rows:
        report.update({"chosen": {}, "skipped": "no validation product with tags"})
        return {}, report
    predictions = [held[data.ids[i]] for i in rows]
    titled = [n for n, i in enumerate(rows) if data.has_text[i]]  # Tagger.predict reads titled products only
    products = data.subset([rows[n] for n in titled])
    products = replace(products, categories=[predictions[n].category or () for n in titled])
    extractions = dict(zip(titled, extractor.predict_out_of_fold(products), strict=True))
    truth = [data.tags[i] for i in rows]

    def tags_with(sources: dict[str, str]) -> list[list]:
        tagger = Tagger(model, extractor, taxonomy, sources)
        return [[tag for tag, _ in tagger.merge(p, extractions.get(n)).tags] for n, p in enumerate(predictions)]

    outputs = {option: tags_with(dict.fromkeys(attributes, option)) for option in SOURCE_OPTIONS}
    scores = {option: per_attribute(truth, tags) for option, tags in outputs.items()}
    chosen: dict[str, str] = {}
    by_attribute: dict[str, dict[str, Any]] = {}
    for attribute in attributes:
        support = scores["both"].get(attribute, {}).get("support", 0)
        f1 = {option: round(scores[option].get(attribute, {}).get("micro_f1", 0.0), 4) for option in SOURCE_OPTIONS}
        best = max(SOURCE_OPTIONS, key=lambda option: f1[option])  # the first of equals: both
        chosen[attribute] = best if support >= min_support else "both"
        if support:
            by_attribute[attribute] = {"support": support, **f1, "chosen": chosen[attribute]}
    micro = {option: round(tag_metrics(truth, tags)["micro_f1"], 4) for option, tags in outputs.items()}
    micro["chosen"] = round(tag_metrics(truth, tags_with(chosen))["micro_f1"], 4)
    report.update({"chosen": {a: s for a, s in chosen.items() if s != "both"}, "micro_f1": micro,
                   "attributes": dict(sorted(by_attribute.items(), key=lambda item: (-item[1]["support"], item[0])))})
    return chosen, report


def named_attributes(names: Iterable[str], in_labels: Iterable[str], taxonomy: Taxonomy | None
                     ) -> tuple[set[str], list[str]]:
    """The attribute names of `in_labels` that `names` name (by match key, or a synonym in `taxonomy`), and the
    names that name none of them."""
    in_labels = set(in_labels)
    found_all: set[str] = set()
    missing: list[str] = []
    for name in names:
        known = taxonomy.attribute(name) if taxonomy is not None else None
        keys = {match_key(name), *([match_key(known.name)] if known else [])}
        found = {a for a in in_labels if match_key(a) in keys}
        found_all |= found
        missing += [] if found else [name]
    return found_all, missing


def keep_attributes(products: list[Product], names: Collection[str], taxonomy: Taxonomy | None
                    ) -> tuple[list[Product], dict[str, Any]]:
    """`products` with only the tags of the attributes `names` names (`train: attributes:`), and a report:
    the names asked, the attributes kept, the names not in the labels, the attributes left out (and tags without
    a name go too)."""
    in_labels = {tag.name for p in products for tag in p.tags}
    kept, missing = named_attributes(names, in_labels - {""}, taxonomy)
    products = [p if all(t.name in kept for t in p.tags) else replace(p, tags=tuple(t for t in p.tags
                                                                                   if t.name in kept))
                for p in products]
    return products, {"asked": list(names), "kept": sorted(kept), "not_in_labels": missing,
                      "left_out": sorted(in_labels - kept - {""})}


def labelled(data: Dataset, ids: set[str] | None = None) -> Dataset:
    """The products that carry a category or tags, or whose review was finished (`Dataset.tags_known`; and, when
    `ids` is given, are among them)."""
    known = data.tags_known
    keep = [i for i, pid in enumerate(data.ids) if (data.categories[i] or known[i]) and (ids is None or pid in ids)]
    return data.subset(keep)


def dataset_counts(data: Dataset) -> dict[str, int]:
    return {
        "products": len(data),
        "with_category": sum(1 for c in data.categories if c),
        "with_tags": sum(1 for t in data.tags if t),
        "with_image": int(data.has_image.sum()),
        "with_title": int(data.has_text.sum()),
        "categories": len({c for c in data.categories if c}),
        "tags": len({t for tags in data.tags for t in tags}),
    }


def decided_labels(stored: list[Product], relabelled: list[Product], reviewed: set[str],
                   taxonomy: Taxonomy) -> Iterator[Product]:
    """The reviewed products with only the labels their decisions gave (a category or tags the stored product does
    not have, canonical), for `Taxonomy.outside`: the stored labels were told about when their file was imported."""
    for before, after in zip(stored, relabelled, strict=True):
        if after.id in reviewed and after is not before:
            had = set(taxonomy.canonical_tags(before.tags))
            path = taxonomy.canonical_category(before.category) if before.category else ()
            yield replace(after, category=after.category if after.category != path else (),
                          tags=tuple(t for t in after.tags if t not in had))


def not_embedded(store: Store, products: list[Product], learnt: set[str], embedder: ImageEmbedder) -> int:
    """How many of the products learnt from (ids in `learnt`) have an image that was never embedded with
    `embedder` (stored by a tagkit whose features key differs, or embedded with another `--image-model`) and
    whose file no longer holds that picture (`embed_stored` embeds the others): they are learnt without it."""
    hashes = {p.id: p.image_hash for p in products if p.id in learnt and p.image_hash}
    known = store.known_features(embedder.model_id, set(hashes.values()))
    return sum(1 for image_hash in hashes.values() if image_hash not in known)


def training_key(fingerprint: str, embedder: ImageEmbedder, seed: int, params: dict[str, Any],
                 extract: bool | Collection[str], attributes: Collection[str] | None, taxonomy: Taxonomy | None) -> str:
    """What a model version is made from: the products learnt from (`input_hash` `fingerprint`), the settings, the
    taxonomy, the image model and the versions of tagkit and of the libraries that fit it. The same key, the same
    model."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return ""

    made_from = {
        "input": fingerprint, "seed": seed, "params": params, "image_model": embedder.model_id,
        "extract": extract if isinstance(extract, bool) else sorted(extract),
        "attributes": None if attributes is None else sorted(attributes),
        "taxonomy": taxonomy_fingerprint(taxonomy), "tagkit": __version__, "code": code_fingerprint(),
        "libraries": {name: installed(name) for name in ("numpy", "scipy", "scikit-learn", "lightgbm", "hazm")},
    }
    return hashlib.sha256(json.dumps(made_from, sort_keys=True, default=str).encode()).hexdigest()


PACKAGE = Path(__file__).resolve().parent  # tagkit's own folder


@functools.cache
def code_fingerprint(package: Path = PACKAGE) -> str:
    """A hash of tagkit's own source files (the `.py` files of `package`): an upgrade that changes how models are
    made changes it, even where the version number stayed the same (a development install, a fix released under
    the same number)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def unchanged_version(store: Store, key: str) -> tuple[ModelVersion, Tagger] | None:
    """The newest model version (the one `predict` uses) and its model, when it was trained with this
    `training_key` and its model can be read; else None (a damaged one is trained again)."""
    try:
        found = find_version(store)
        if found.manifest.get("training_key") != key:
            return None
        return found, Tagger.load(found.path)
    except Exception:  # no version, or one whose files cannot be read
        return None


def input_hash(data: Dataset) -> str:
    """A fingerprint of exactly what the model learns from (texts, labels, which images)."""
    digest = hashlib.sha256()
    for i in sorted(range(len(data)), key=lambda i: data.ids[i]):
        record = [data.ids[i], data.texts[i], list(data.categories[i]), sorted(map(str, data.tags[i]))]
        if data.ids[i] in data.tags_reviewed and not data.tags[i]:
            record.append("no tags")
        digest.update(json.dumps(record, ensure_ascii=False).encode())
        digest.update(data.embeddings[i].tobytes() if data.has_image[i] else b"no image")
    return digest.hexdigest()
