"""Which products `tagkit review` shows, and in which order.

`uncertain` puts first the products where a person's answer helps most: a small margin between the two best
categories, tag scores close to their thresholds (`uncertainty`). A product whose predicted category and title
are much like those of a product ranked above it is pushed down (`diversify`), so near-identical products do
not fill the queue. `random` is seeded; `id` sorts by product id.

The ranking works on `PredictedProduct` records, so a script can rank fresh predictions without a database:

    records = [to_record(product, prediction, "m") for product, prediction in zip(products, predictions)]
    ids = [r.id for r in rank_uncertain(records)]
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tagkit.feedback import finished
from tagkit.predicting import PredictedProduct, stored_record
from tagkit.product import Tag, format_category, parse_category
from tagkit.store import Store
from tagkit.taxonomy import MIN_ALLOWED_SCORE, stored_taxonomy, taxonomy_fingerprint
from tagkit.text import match_key
from tagkit.versions import MANIFEST as VERSION_MANIFEST
from tagkit.versions import version_folder

if TYPE_CHECKING:
    from tagkit.taxonomy import Taxonomy

ORDERS = ("uncertain", "random", "id")
_DIGITS = re.compile(r"(\d+)")
TAG_WEIGHT = 1.0  # a tag at its threshold counts as much as a tie between the two best categories (bench/active.py)
SIMILAR_TITLES = 0.6  # Jaccard similarity of title words (digits left out) from which two titles are alike
SIMILAR_PENALTY = 0.5  # the uncertainty of a product is multiplied by this for each alike product above it,
SIMILAR_MAX_PENALTIES = 3  # at most this many times: a new season's unlearnt category stays before the sure ones
SIMILAR_WINDOW = 20  # how many products ranked above, in the same category, a product is compared with

Thresholds = Mapping[str, Any]  # tag or attribute name -> threshold, or {"both"|"image"|"text": threshold}


# loading ---------------------------------------------------------------------------------------------------

# A product a person can judge: it has a title, a description or an image that could be read.
_HAS_INPUT = ("(trim(coalesce(r.title, '')) != '' or trim(coalesce(r.description, '')) != '' or exists "
              "(select 1 from features f where f.image_hash = r.image_hash and f.error is null))")
_LATEST_MODEL = ("select q.model_id from predictions q where q.product_id = p.product_id "  # a product's latest
                 "order by q.created_at desc, q.model_id desc limit 1")


def load_items(store: Store, model_id: str | None = None, product_id: str | None = None) -> list[PredictedProduct]:
    """Each product's latest predictions (the last made for it, by whichever model version: a rollback with
    `predict --model OLDER` is what is reviewed next), or those of one model version, with its title and image:
    those that predict something for a product with a title, a description or a readable image (what can be
    reviewed). `product_id`: that product's only."""
    sql = ("select p.*, r.title, r.image from predictions p join products r on r.id = p.product_id where "
           + ("p.model_id = ?" if model_id else f"p.model_id = ({_LATEST_MODEL})")
           + f" and {_HAS_INPUT}" + (" and p.product_id = ?" if product_id is not None else ""))
    rows = store.db.query(sql, [v for v in (model_id, product_id) if v is not None])
    taxonomy = stored_taxonomy(store)
    fingerprint = taxonomy_fingerprint(taxonomy)
    records = ((stored_record(row, row["title"] or "", row["image"]), row.get("taxonomy") == fingerprint)
               for row in rows)
    # predictions made before a taxonomy import or map, as predict would make them now
    items = held_records(records, taxonomy) if taxonomy is not None else (item for item, _ in records)
    return [item for item in items if not item.empty]


def latest_prediction(store: Store, product_id: str, model_id: str | None = None) -> tuple[str, str] | None:
    """The model version and time of a product's latest prediction (as `load_items` picks it; of `model_id`'s,
    when given), or None."""
    row = store.db.execute("select model_id, created_at from predictions where product_id = ?"
                           + (" and model_id = ?" if model_id else "") + " order by created_at desc, model_id desc "
                           "limit 1", [product_id, *([model_id] if model_id else [])]).fetchone()
    return (row[0], row[1]) if row else None


def held_records(items: Iterable[tuple[PredictedProduct, bool]], taxonomy: Taxonomy) -> Iterator[PredictedProduct]:
    """`held_record` of each item that was not made under `taxonomy` (its flag: predicted with its fingerprint);
    one whose paths and tags the taxonomy already gives as they are comes back as it is, without the work."""
    single = {a.name for a in taxonomy.attributes if not a.multi_valued}
    tags_ok: dict[str, bool] = {}
    paths_ok: dict[str, bool] = {}

    def tag_ok(text: str) -> bool:
        if text not in tags_ok:
            tag = Tag.parse(text)
            tags_ok[text] = taxonomy.canonical(tag) == tag and taxonomy.passes(tag)
        return tags_ok[text]

    def path_ok(text: str) -> bool:
        if text not in paths_ok:
            path = parse_category(text)
            paths_ok[text] = taxonomy.canonical_category(path) == path and (
                not taxonomy.categories or taxonomy.has_category(path))
        return paths_ok[text]

    for item, made_under in items:
        if made_under:
            yield item
            continue
        names = [name for name in (tag.partition(": ")[0] for tag, _ in item.tags) if name in single]
        as_held = (len(names) == len(set(names)) and all(tag_ok(t) for t, _ in (*item.tags, *item.candidates))
                   and all(path_ok(p) for p, _ in item.alternatives)
                   and (item.category is None or (path_ok(item.category) and (item.category_score or 0.0)
                        >= MIN_ALLOWED_SCORE)))
        yield item if as_held else held_record(item, taxonomy)


def held_record(item: PredictedProduct, taxonomy: Taxonomy) -> PredictedProduct:
    """A stored prediction held to `taxonomy` (the one in force), as `predict` holds new ones: canonical paths and
    tags, only the tree's paths, allowed values, one value of a single-valued attribute (the others become
    candidates). A prediction made under it comes back unchanged."""
    tags, candidates = taxonomy.hold_tags(
        [(Tag.parse(tag), score) for tag, score in item.tags],
        [(Tag.parse(tag), score) for tag, score in (*item.tags, *item.candidates)])
    paths = [(parse_category(item.category), item.category_score or 0.0)] if item.category else []
    ranked = taxonomy.hold_categories([*paths, *((parse_category(p), s) for p, s in item.alternatives)])
    first, score = ranked[0] if ranked else ((), None)
    return replace(item, category=format_category(first) or None, category_score=score,
                   alternatives=[(format_category(path), s) for path, s in ranked[1:]],
                   tags=[(str(tag), s) for tag, s in tags], candidates=[(str(tag), s) for tag, s in candidates])


def predicted_model(store: Store, version: str | None = None) -> str | None:
    """The model version named by `version` (an id or a unique prefix) that has predictions, or None when
    `version` is None; LookupError when there are no predictions (of that version) or the prefix is ambiguous."""
    if not store.db.execute("select exists (select 1 from predictions)").fetchone()[0]:
        raise LookupError(f"no predictions to review in {store.path} (run `tagkit predict SOURCE` first)")
    if not version:
        return None
    found = [r[0] for r in store.db.execute(
        "select distinct model_id from predictions where substr(model_id, 1, length(?)) = ? order by 1",
        [version, version])]
    if len(found) != 1:
        raise LookupError(f"model {version!r} is ambiguous: {', '.join(found)}" if found else
                          f"no predictions of model {version!r} in {store.path} (see `tagkit models`)")
    return found[0]


REVIEW_KEYS = {"report": ("thresholds", "single_valued_attributes", "multi_valued_attributes"),
               "extractor": ("thresholds", "threshold", "attributes", "single_valued")}
"""What review needs of a model version's manifests (`_manifests`): kept in `pruned_models` when it is pruned."""


def _manifests(store: Store, model_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model version's catalogue-model report (its folder's manifest) and attribute extractor entry
    (version.json), or, for a pruned version, what `review_manifests` kept of them; {} for what cannot be read."""
    row = next(store.db.query("select path from models where id = ?", [model_id]), None)
    out: list[dict[str, Any]] = []
    if row is not None:
        folder = version_folder(store, model_id, row["path"])
        for name, key in (("manifest.json", "report"), (VERSION_MANIFEST, "extractor")):
            try:
                part = json.loads((folder / name).read_text("utf-8")).get(key) or {}
            except (OSError, ValueError, AttributeError):
                part = {}
            out.append(part if isinstance(part, dict) else {})
    if not any(out):
        pruned = next(store.db.query("select review from pruned_models where id = ?", [model_id]), None)
        kept = json.loads(pruned["review"]) if pruned else {}
        out = [kept.get("report") or {}, kept.get("extractor") or {}]
    return out[0], out[1]


def review_manifests(store: Store, model_id: str) -> dict[str, Any]:
    """What review reads of a model version's manifests (`REVIEW_KEYS`), to keep when its folder goes."""
    report, extractor = _manifests(store, model_id)
    return {part: {key: got[key] for key in keys if key in got}
            for (part, keys), got in zip(REVIEW_KEYS.items(), (report, extractor), strict=True)}


def model_thresholds(store: Store, model_id: str) -> dict[str, Any]:
    """The tag thresholds a model version tuned, or {} when unknown: the catalogue model's (from its folder's
    manifest) and, for attributes only its attribute extractor fills in, the extractor's (from version.json); for a
    pruned version, from what `models --prune` kept (`_manifests`)."""
    report, extractor = _manifests(store, model_id)
    try:
        thresholds = report.get("thresholds", {})
        thresholds = {**thresholds, **thresholds.get("tags", {})} if isinstance(thresholds, dict) else {}
    except (AttributeError, TypeError):
        thresholds = {}
    try:
        tuned, default = extractor.get("thresholds", {}), extractor.get("threshold", 0.5)
        extracted = {name: tuned.get(name, default) for name in extractor.get("attributes", [])}
    except (AttributeError, TypeError):
        extracted = {}
    return {**extracted, **thresholds}


def model_attributes(store: Store, model_id: str) -> dict[str, bool]:
    """The attributes a model version learnt (its catalogue model's and its extractor's), by match key: True when
    it gives several values, False when one. The taxonomy's own are known to `Taxonomy`."""
    report, extractor = _manifests(store, model_id)
    single = [*(report.get("single_valued_attributes") or []), *(extractor.get("single_valued") or [])]
    multi = [*(report.get("multi_valued_attributes") or []), *(extractor.get("attributes") or [])]
    out = {match_key(name): True for name in multi if isinstance(name, str)}
    out.update({match_key(name): False for name in single if isinstance(name, str)})
    return out


def attribute_arity(store: Store, taxonomy: Taxonomy | None) -> Callable[[str, str | None], bool | None]:
    """`multi_valued(name, model)`: whether the attribute `name` (a match key) takes several values (False: one),
    for `taxonomy`, else for model version `model` (its manifests read once), else (a decision typed in a file
    without a model id) for the newest version; None when none of them knows it."""
    learnt: dict[str, dict[str, bool]] = {}

    def of(model: str) -> dict[str, bool]:
        if model not in learnt:
            learnt[model] = model_attributes(store, model)
        return learnt[model]

    def multi_valued(name: str, model: str | None) -> bool | None:
        known = taxonomy.attribute(name) if taxonomy is not None else None
        if known is not None:
            return known.multi_valued
        said = of(model).get(name) if model else None
        if said is None and "" not in learnt:  # the newest version, looked up once
            newest = next(store.db.query("select id from models order by id desc limit 1"), None)
            learnt[""] = of(newest["id"]) if newest else {}
        return said if said is not None else learnt[""].get(name)

    return multi_valued


def review_queue(store: Store, *, order: str = "uncertain", seed: int = 0, model_id: str | None = None,
                 category: str | None = None, tag: str | None = None, limit: int | None = None,
                 again: bool = False) -> list[PredictedProduct]:
    """The products to review, in order: predicted (see `load_items`), matching the filters, and never reviewed
    (`again`: not reviewed for the model version that predicted them, so a product reviewed before comes back with
    a newer model's prediction). The order is computed over all matching predictions before the reviewed ones are
    left out, so a new session carries on where the last one stopped."""
    category, tag = canonical_filters(stored_taxonomy(store), category, tag)
    items = [i for i in load_items(store, model_id) if matches(i, category, tag)]
    thresholds = {m: model_thresholds(store, m) for m in {i.model for i in items}} if order == "uncertain" else {}
    queue = unreviewed(store, order_items(items, order, seed=seed, thresholds=thresholds), again=again)
    return queue[:limit] if limit else queue


def unreviewed(store: Store, items: Iterable[PredictedProduct], again: bool = False) -> list[PredictedProduct]:
    """The items whose product was never reviewed (`again`: or only for model versions older than the one that
    predicted it; a rollback to an older version brings nothing back)."""
    done = finished(store)
    if again:
        newest: dict[str, str] = {}
        for product_id, model in done:
            newest[product_id] = max(newest.get(product_id, ""), model or "")
        return [i for i in items if i.id not in newest or i.model > newest[i.id]]
    reviewed = {product_id for product_id, _ in done}
    return [i for i in items if i.id not in reviewed]


def canonical_filters(taxonomy: Taxonomy | None, category: str | None, tag: str | None
                      ) -> tuple[str | None, str | None]:
    """The `--category` and `--tag` filters as the taxonomy names them (the held predictions are its names: a
    synonym such as `color: Navy Blue` for `color: Navy` finds them)."""
    if taxonomy is None:
        return category, tag
    if category:
        category = taxonomy.canonical_text("category", category)
    if tag and ":" in tag:
        tag = taxonomy.canonical_text("tag", tag)
    elif tag:
        known = taxonomy.attribute(tag)
        tag = known.name if known is not None else tag
    return category, tag


def matches(item: PredictedProduct, category: str | None = None, tag: str | None = None) -> bool:
    """Whether the predicted category starts with the path `category` and a predicted or candidate tag is
    `tag` (a whole `name: value` tag or an attribute name), compared by match key (case, half-spaces, Arabic
    letters and digits make no difference)."""
    if category:
        prefix = [match_key(level) for level in parse_category(category)]
        if [match_key(level) for level in parse_category(item.category or "")][: len(prefix)] != prefix:
            return False
    if tag:
        wanted = match_key(tag)
        tags = [Tag.parse(t) for t, _ in [*item.tags, *item.candidates]]
        if not any(wanted in (match_key(str(t)), match_key(t.name)) for t in tags):
            return False
    return True


# ordering --------------------------------------------------------------------------------------------------

def order_items(items: Sequence[PredictedProduct], order: str, *, seed: int = 0,
                thresholds: Mapping[str, Thresholds] | None = None) -> list[PredictedProduct]:
    """`items` in review order (`order` one of ORDERS); `thresholds` per model version, for `uncertain`."""
    by_id = sorted(items, key=lambda i: (i.id, i.model))
    if order == "id":  # as a person counts: 999 before 1000, dm-2 before dm-10
        return sorted(by_id, key=lambda i: _natural(i.id))
    if order == "random":
        random.Random(seed).shuffle(by_id)
        return by_id
    if order == "uncertain":
        return rank_uncertain(by_id, thresholds)
    raise ValueError(f"unknown order {order!r} (known: {', '.join(ORDERS)})")


def _natural(text: str) -> list[tuple[int, int, str]]:
    """A sort key that orders the numbers within `text` by value."""
    return [(0, int(part), part) if _DIGITS.fullmatch(part) else (1, 0, part) for part in _DIGITS.split(text) if part]


def rank_uncertain(items: Iterable[PredictedProduct],
                   thresholds: Mapping[str, Thresholds] | None = None) -> list[PredictedProduct]:
    """Most uncertain first, alike products pushed down. `thresholds`: per model version (may be empty)."""
    thresholds = thresholds or {}
    scored = sorted(((uncertainty(i, thresholds.get(i.model)), i) for i in items), key=lambda s: (-s[0], s[1].id))
    return [item for _, item in diversify(scored)]


def uncertainty(item: PredictedProduct, thresholds: Thresholds | None = None) -> float:
    """How much a person's answer would teach: 1 - (best category's probability - the next one's), plus
    TAG_WEIGHT times the closeness (1 at the threshold, 0 at 0.5 away) of the tag nearest its threshold."""
    second = item.alternatives[0][1] if item.alternatives else 0.0
    margin = item.category_score - second if item.category else 0.0
    inputs = "both" if item.title and item.image else "text" if item.title else "image"
    closeness = [max(0.0, 1.0 - 2.0 * abs(score - threshold_for(tag, inputs, thresholds)))
                 for tag, score in [*item.tags, *item.candidates]]
    return round(1.0 - margin + TAG_WEIGHT * max(closeness, default=0.0), 6)


def threshold_for(tag: str, inputs: str, thresholds: Thresholds | None) -> float:
    """The threshold of a tag (its own, else its attribute's) for the inputs a product had; 0.5 if unknown."""
    thresholds = thresholds or {}
    value = thresholds.get(tag, thresholds.get(Tag.parse(tag).name))
    if isinstance(value, Mapping):
        value = value.get(inputs, value.get("both"))
    return float(value) if isinstance(value, int | float) else 0.5


def diversify(scored: Sequence[tuple[float, PredictedProduct]]) -> list[tuple[float, PredictedProduct]]:
    """Re-rank (score, item) pairs sorted best first: each item's score is multiplied by SIMILAR_PENALTY for
    every alike item (same predicted category, similar title words; no title: same category) among the
    SIMILAR_WINDOW ranked above it in its category, at most SIMILAR_MAX_PENALTIES times (50 ties of a category the
    model never learnt, all guessed as one category at 0.2, were halved down to 0.5 ** 20, behind products
    scored 0.99)."""
    recent: dict[str | None, deque[frozenset[str]]] = defaultdict(lambda: deque(maxlen=SIMILAR_WINDOW))
    out = []
    for rank, (score, item) in enumerate(scored):
        words = title_words(item.title)
        above = recent[item.category]
        alike = sum(1 for other in above if _similar(words, other))
        above.append(words)
        out.append((score * SIMILAR_PENALTY ** min(alike, SIMILAR_MAX_PENALTIES), rank, item))
    out.sort(key=lambda s: (-s[0], s[1]))
    return [(score, item) for score, _, item in out]


def title_words(title: str) -> frozenset[str]:
    """The words of a title, lower case, without digits (sizes and model numbers make no difference)."""
    return frozenset(w for w in re.findall(r"[^\W\d_]+", title.casefold()) if len(w) > 1)


def _similar(a: frozenset[str], b: frozenset[str]) -> bool:
    if not a or not b:
        return not a and not b
    return len(a & b) / len(a | b) >= SIMILAR_TITLES
