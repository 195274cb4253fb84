"""A review session without the terminal: what one product's screen shows, and what each key records; and the
review queue as a sheet to fill in a spreadsheet (`write_sheet`).

The screen's state is always read back from the `feedback` table, so what is shown is what is stored: a
session that is quit, killed or crashes loses nothing, and the next one shows a half-reviewed product as it
was left. Each action records its decisions in one transaction at once and can be undone (several steps).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any

from tagkit.catalogue import safe_cell
from tagkit.feedback import Decision, decisions_for, listed_values, record, stamp, undo
from tagkit.product import Tag, format_category, parse_category
from tagkit.queue import attribute_arity, latest_prediction, load_items
from tagkit.taxonomy import stored_taxonomy
from tagkit.text import match_key

if TYPE_CHECKING:
    from tagkit.predicting import PredictedProduct
    from tagkit.store import Store
    from tagkit.taxonomy import Taxonomy

KEYS = "1234567890"  # the keys of the first ten suggestions
CHANGED = ("this product changed since it was drawn (decisions stored, or a newer prediction, meanwhile): look "
           "again, then press the key")
SHEET_COLUMNS = ("product_id", "title", "field", "kind", "predicted", "score", "decided_before", "decision",
                 "corrected", "model_id", "reviewer", "image", "written_at")


@dataclass
class Suggestion:
    """One line of the screen: a category path or a tag, shown on (chosen) or off, decided or not yet."""

    kind: str  # "category", "tag" (predicted or added) or "candidate" (a tag below its threshold)
    value: str
    score: float | None
    on: bool
    decision: str | None = None  # the stored decision about it: accept, reject, correct; None: not yet
    key: str = ""
    decided_in: Mapping[str, Any] | None = field(default=None, compare=False)  # the stored feedback row of it


@dataclass
class Screen:
    """What is shown for one product: its suggestions, with the keys that toggle them."""

    item: PredictedProduct
    suggestions: list[Suggestion]
    finished: str | None = None  # "accept" or "reject" once the product is done

    def by_key(self, key: str) -> Suggestion | None:
        return next((s for s in self.suggestions if s.key == key), None)


def screen_for(item: PredictedProduct, rows: list[dict], taxonomy: Taxonomy | None = None) -> Screen:
    """The screen of a product given the stored decisions about it (oldest first, `feedback.decisions_for`).
    Decisions made on another model version's predictions count as they do for the labels (a product half
    reviewed when a newer version predicted it comes back as it was left), but a rejection of a category or tag
    this prediction does not give is not shown. With `taxonomy` (the one `item` is held to), decisions are read in
    its names, as for the labels: a tag rejected as `رنگ: مشکی` before it named the value `سیاه` shows rejected."""
    if taxonomy is not None:
        rows = [_in_names(row, taxonomy) for row in rows]
    chosen, category_decision, category_row = item.category, None, None
    tags: dict[str, list] = {}  # tag -> [kind, score, on, decision, its feedback row]
    for tag, score in item.tags:
        tags[tag] = ["tag", score, True, None, None]
    for tag, score in item.candidates:
        tags.setdefault(tag, ["candidate", score, False, None, None])
    finished = None
    for row in rows:
        other = row["model_id"] != item.model
        if row["field"] == "category":
            if other and row["decision"] == "reject" and row["predicted"] != chosen:
                continue
            category_decision, category_row = row["decision"], row
            chosen = row["corrected"] if row["decision"] == "correct" else (
                row["predicted"] if row["decision"] == "accept" else None)
        elif row["field"] == "tag":
            if row["predicted"] and not (other and row["decision"] != "accept" and row["predicted"] not in tags):
                entry = tags.setdefault(row["predicted"], ["tag", None, False, None, None])
                entry[2] = row["decision"] == "accept"
                entry[3] = "accept" if row["decision"] == "accept" else "reject"
                entry[4] = row
            if row["decision"] == "correct" and row["corrected"]:
                entry = tags.setdefault(row["corrected"], ["tag", None, True, None, None])
                entry[2], entry[3], entry[4] = True, "correct", row
        elif row["field"] == "product":
            finished = row["decision"]
    options = [(item.category, item.category_score)] if item.category else []
    options += [(path, score) for path, score in item.alternatives if path != item.category]
    if chosen and chosen not in [path for path, _ in options]:
        options.append((chosen, None))
    suggestions = []
    for path, score in options:
        on = path == chosen
        decision = category_decision if on or (path == item.category and category_decision == "reject") else None
        suggestions.append(Suggestion("category", path, score, on, decision,
                                      decided_in=category_row if decision else None))
    for kind in ("tag", "candidate"):
        suggestions += [Suggestion(k, tag, score, on, decision, decided_in=row)
                        for tag, (k, score, on, decision, row) in tags.items() if k == kind]
    for key, suggestion in zip(KEYS, suggestions, strict=False):
        suggestion.key = key
    return Screen(item, suggestions, finished)


def _in_names(row: dict[str, Any], taxonomy: Taxonomy) -> dict[str, Any]:
    """A decision with its category paths or tags in `taxonomy`'s names."""
    def named(text: str | None) -> str | None:
        return taxonomy.canonical_text(row["field"], text) if text and row["field"] in ("category", "tag") else text

    return {**row, "predicted": named(row["predicted"]), "corrected": named(row["corrected"])}


@dataclass(frozen=True)
class Step:
    """One action, for undo: where it was made, the feedback rows it stored, what it did."""

    position: int
    ids: list[int]
    what: str
    finishes: bool = False


@dataclass
class Session:
    """A queue of products reviewed one at a time by one reviewer; every action is stored at once."""

    store: Store
    queue: list[PredictedProduct]
    reviewer: str | None = None
    model_id: str | None = None  # the version under review (`--model`); None: a product's latest prediction
    as_of: str = field(default_factory=stamp)  # when the queue was read: a prediction made since replaces its item
    position: int = 0
    history: list[Step] = field(default_factory=list)
    decided: int = 0  # products finished in this session
    _known: tuple[list[str], list[str]] | None = field(default=None, init=False, repr=False)
    _reloaded: dict[str, str] = field(default_factory=dict, init=False, repr=False)  # product -> prediction time

    @property
    def item(self) -> PredictedProduct | None:
        return self.queue[self.position] if self.position < len(self.queue) else None

    def screen(self) -> Screen | None:
        """The product's screen as stored (`screen_for`), of its newest prediction (`_newest`). A value chosen
        on another version's prediction (a correction, say) turns off the undecided values of its attribute when
        that takes one value, as choosing it here would have, so `a` does not accept a second one."""
        item = self._newest()
        if item is None:
            return None
        screen = screen_for(item, decisions_for(self.store, item.id, item.model), self.taxonomy)
        tags = [(s, match_key(Tag.parse(s.value).name)) for s in screen.suggestions if s.kind != "category" and s.on]
        chosen = {name for s, name in tags if s.decision}
        for s, name in tags:
            if not s.decision and name in chosen and self._multi_valued(name) is False:
                s.on = False
        return screen

    def _newest(self) -> PredictedProduct | None:
        """The product on screen, as predicted last: a prediction cron made since the queue was read (a newer
        model version's, or the same version's for a changed title or photo) replaces the one read, unless the
        session reviews one version (then only that version's again)."""
        item = self.item
        if item is None:
            return None
        latest = latest_prediction(self.store, item.id, self.model_id)
        if latest is None:
            return item
        model, made = latest
        if model > item.model or (model == item.model and _later(made, self.as_of)
                                  and self._reloaded.get(item.id) != made):
            self._reloaded[item.id] = made
            newer = load_items(self.store, model, product_id=item.id)
            if newer:
                self.queue[self.position] = item = newer[0]
        return item

    # actions: each returns a short message for the status line ------------------------------------------

    def toggle(self, key: str, seen: Screen | None = None) -> str:
        """Turn the suggestion on key `key` off if it is on, on if it is off. `seen`: the screen the reviewer
        looked at; when the product's stored state changed since (another reviewer's decisions), nothing is done."""
        screen = self.screen()
        if seen is not None and screen != seen:
            return CHANGED
        suggestion = screen.by_key(key) if screen else None
        if screen is None or suggestion is None:
            return f"no suggestion on key {key}"
        if suggestion.kind == "category":
            if suggestion.on:
                return self._do([self._category("reject", screen)], f"category rejected: {suggestion.value}")
            return self._choose_category(screen, suggestion.value)
        if suggestion.on:
            row = self._decision("tag", "reject", predicted=suggestion.value, score=suggestion.score)
            return self._do([row], f"rejected: {suggestion.value}")
        return self._accept_tag(screen, suggestion)

    def accept_all(self, seen: Screen | None = None) -> str:
        """Accept every suggestion shown on that is not decided yet, and finish the product (`seen`: as
        `toggle`)."""
        return self._finish("accept", seen)

    def reject_all(self, seen: Screen | None = None) -> str:
        """Reject every prediction not decided yet, and finish the product (`seen`: as `toggle`)."""
        return self._finish("reject", seen)

    def edit(self, text: str, seen: Screen | None = None) -> str:
        """Type a category path or a tag (`name: value`, or a known plain tag): the category is chosen, the
        tag turned on or added. A value of a single-valued attribute replaces the values on, of a multi-valued one
        is added, of an attribute of unknown arity replaces the value on when there is one. What is typed is made
        canonical by the database's taxonomy, as labels are (`seen`: as `toggle`)."""
        screen = self.screen()
        if seen is not None and screen != seen:
            return CHANGED
        path, tag = parse_category(text), Tag.parse(text)
        taxonomy = self.taxonomy
        if taxonomy is not None:
            path, tag = taxonomy.canonical_category(path) if path else path, taxonomy.canonical(tag)
        path = format_category(path)
        if screen is None or not path:
            return "nothing changed"
        categories, tags = self.known_values()
        if path not in categories and (":" in text or str(tag) in tags):
            listed = listed_values(str(tag), tags)
            return self._edit_tag(screen, str(tag)) + (f" (one value, though it lists {len(listed)} known ones: "
                                                        "type each with e on its own)" if listed else "")
        note = ("" if path in categories else " (not in the taxonomy's category tree)"
                if taxonomy is not None and taxonomy.categories else " (a new category)")
        return self._choose_category(screen, path) + note

    def skip(self) -> str:
        """Go on to the next product without a decision (it is shown again by the next session)."""
        item = self.item
        if item is None:
            return "nothing to skip"
        self.position += 1
        return f"skipped {item.id}"

    def undo(self) -> str:
        """Remove the last action's decisions and go back to its product."""
        if not self.history:
            return "nothing to undo"
        step = self.history[-1]
        undo(self.store, step.ids)  # a write that fails (the database locked) leaves the step to undo again
        self.history.pop()
        self.decided -= step.finishes
        self.position = step.position
        return f"undone: {step.what}"

    def known_values(self) -> tuple[list[str], list[str]]:
        """The category paths and tags the database knows (labels, predictions, typed values, taxonomy), for
        completion."""
        if self._known is None:
            self._known = known_values(self.store, self.taxonomy)
        return self._known

    @cached_property
    def taxonomy(self) -> Taxonomy | None:
        """The database's taxonomy (read once a session), or None."""
        return stored_taxonomy(self.store)

    # helpers ---------------------------------------------------------------------------------------------

    def _finish(self, decision: str, seen: Screen | None = None) -> str:
        screen = self.screen()
        if screen is None:
            return "nothing to decide"
        if seen is not None and screen != seen:
            return CHANGED
        rows = []
        category = next((s for s in screen.suggestions if s.kind == "category" and s.decision), None)
        if category is None and screen.item.category:
            rows.append(self._category(decision, screen))
        for s in screen.suggestions:
            if s.kind == "tag" and s.decision is None and s.on:
                rows.append(self._decision("tag", decision, predicted=s.value, score=s.score))
        what = f"{decision}ed all: {screen.item.id}" if rows else \
            f"finished {screen.item.id}: every suggestion was decided already (its key changes one)"
        rows.append(self._decision("product", decision))
        message = self._do(rows, what, finishes=True)
        self.position += 1
        self.decided += 1
        return message

    def _choose_category(self, screen: Screen, path: str) -> str:
        item = screen.item
        if path == item.category:
            return self._do([self._category("accept", screen)], f"category accepted: {path}")
        return self._do([self._category("correct", screen, corrected=path)], f"category set: {path}")

    def _edit_tag(self, screen: Screen, tag: str) -> str:
        shown = {match_key(s.value): s for s in screen.suggestions if s.kind != "category"}
        same = shown.get(match_key(tag))  # the tag on screen, however it was typed
        if same is not None:
            if same.on:
                return f"already on: {same.value}"
            return self._accept_tag(screen, same)
        name = match_key(Tag.parse(tag).name)
        on = _values_on(screen, name) if name else []
        multi = self._multi_valued(name)  # unknown: a value that is alone on is replaced
        replaced = [] if multi else on if multi is False else on if len(on) == 1 else []
        rows = [self._decision("tag", "reject", predicted=s.value, score=s.score) for s in replaced[1:]]
        first = replaced[0] if replaced else None
        rows.append(self._decision("tag", "correct", predicted=first.value if first else None, corrected=tag,
                                   score=first.score if first else None))
        return self._do(rows, f"{first.value} → {tag}" if first else f"added: {tag}")

    def _accept_tag(self, screen: Screen, suggestion: Suggestion) -> str:
        """Turn a tag on; for an attribute that takes one value, the value that was on is rejected with it."""
        name = match_key(Tag.parse(suggestion.value).name)
        others = [s for s in _values_on(screen, name) if s is not suggestion] if self._multi_valued(name) is False \
            else []
        rows = [self._decision("tag", "reject", predicted=s.value, score=s.score) for s in others]
        rows.append(self._decision("tag", "accept", predicted=suggestion.value, score=suggestion.score))
        what = f"{others[0].value} → {suggestion.value}" if len(others) == 1 else f"accepted: {suggestion.value}"
        return self._do(rows, what)

    def _multi_valued(self, name: str) -> bool | None:
        """Whether the attribute `name` (a match key) takes several values (False: one), for the taxonomy or else
        for the model version that predicted the product shown; None when neither knows it."""
        item = self.item
        return self._arity(name, item.model if item is not None else None)

    @cached_property
    def _arity(self) -> Callable[[str, str | None], bool | None]:
        return attribute_arity(self.store, self.taxonomy)

    def _category(self, decision: str, screen: Screen, corrected: str | None = None) -> Decision:
        return self._decision("category", decision, predicted=screen.item.category, corrected=corrected,
                              score=screen.item.category_score if screen.item.category else None)

    def _decision(self, field_: str, decision: str, *, predicted: str | None = None, corrected: str | None = None,
                  score: float | None = None) -> Decision:
        item = self.item
        assert item is not None
        return Decision(item.id, item.model, field_, decision, predicted=predicted, corrected=corrected,
                        score=score, reviewer=self.reviewer)

    def _do(self, decisions: list[Decision], what: str, finishes: bool = False) -> str:
        self.history.append(Step(self.position, record(self.store, decisions), what, finishes))
        typed = [d for d in decisions if d.corrected]
        if typed and self._known is not None:  # a value typed now completes on the next product
            known = {"category": dict.fromkeys(self._known[0]), "tag": dict.fromkeys(self._known[1])}
            for decision in typed:
                allowed = _as_allowed(decision.field, decision.corrected or "", self.taxonomy)
                if allowed and not any(match_key(allowed) == match_key(v) for v in known[decision.field]):
                    known[decision.field][allowed] = None
            self._known = (sorted(known["category"]), sorted(known["tag"]))
        return what


def _values_on(screen: Screen, name: str) -> list[Suggestion]:
    """The tags shown on (predicted or candidate) whose attribute is `name` (a match key)."""
    return [s for s in screen.suggestions
            if s.kind != "category" and s.on and match_key(Tag.parse(s.value).name) == name]


def known_values(store: Store, taxonomy: Taxonomy | None = None) -> tuple[list[str], list[str]]:
    """The distinct category paths and tags of `taxonomy`, of the products' labels, of the predictions and of the
    values reviewers typed (a category new this season), sorted: each once (by match key, in the first of these
    that has it), and, with a taxonomy, in its names and only those it allows (its tree's paths, when it has one)."""
    sources = {
        "category": ("select category from products where category is not null",
                     "select category from predictions where category is not null",
                     "select corrected from feedback where field = 'category' and corrected is not null"),
        "tag": ("select j.value from products, json_each(products.tags) j where products.tags is not null",
                "select json_extract(j.value, '$[0]') from predictions, json_each(predictions.tags) j"
                " where predictions.tags is not null",
                "select corrected from feedback where field = 'tag' and corrected is not null")}
    found: dict[str, dict[str, str]] = {"category": {}, "tag": {}}
    if taxonomy is not None:
        found["category"] = {match_key(format_category(p)): format_category(p) for p in taxonomy.categories}
        found["tag"] = {match_key(str(t)): str(t) for t in (Tag(a.name, v.name) for a in taxonomy.attributes
                                                             for v in a.values)}
    for field_, queries in sources.items():
        for query in queries:
            for (text,) in store.db.execute(query):
                allowed = _as_allowed(field_, text or "", taxonomy)
                if allowed:
                    found[field_].setdefault(match_key(allowed), allowed)
    return sorted(found["category"].values()), sorted(found["tag"].values())


def _as_allowed(field_: str, text: str, taxonomy: Taxonomy | None) -> str | None:
    """A category path or tag as `taxonomy` names it, or None when it does not allow it (a path outside its tree,
    a value its closed attribute does not list); `text` itself without a taxonomy."""
    if taxonomy is None or not text:
        return text or None
    if field_ == "category":
        path = taxonomy.canonical_category(parse_category(text))
        return format_category(path) if not taxonomy.categories or taxonomy.has_category(path) else None
    tag = taxonomy.canonical(Tag.parse(text))
    return str(tag) if taxonomy.passes(tag) else None


def write_sheet(queue: Iterable[PredictedProduct], out: IO[str], reviewer: str | None = None,
                store: Store | None = None) -> int:
    """Write the products of a review queue as a feedback sheet, for a team that reviews in a spreadsheet; returns
    how many products it holds. Per product, in this order: a `category` row for the predicted path (kind
    `predicted`) and for each alternative (`alternative`), a `tag` row for each predicted tag (`predicted`) and for
    each tag below its threshold (`candidate`), each with its score, an empty `decision` and the time the sheet was
    written (`written_at`: a decision stored after it goes before the sheet's rows), and a `product` row
    (kind `review`) whose `accept` or `reject` finishes the product's review, and decides its predictions not
    decided otherwise, as `a` and `x` do. With `store`, `decided_before` shows the decision stored about a row
    (`reject by alice at 2026-12-02 10:15 UTC`), as the terminal's screen does, and a value chosen that the prediction
    does not give (a correction) has a row of kind `decided`. `feedback.import_csv` reads the sheet back."""
    writer = csv.writer(out)
    writer.writerow(SHEET_COLUMNS)
    count, written_at = 0, stamp()  # a decision stored after it, which the sheet did not show, is not overridden
    taxonomy = stored_taxonomy(store) if store is not None else None  # the queue's items are held to it
    for item in queue:
        rows = [("category", "predicted", item.category, item.category_score)] if item.category else []
        rows += [("category", "alternative", path, score) for path, score in item.alternatives
                 if path != item.category]
        rows += [("tag", "predicted", tag, score) for tag, score in item.tags]
        rows += [("tag", "candidate", tag, score) for tag, score in item.candidates]
        shown = {(field_, value) for field_, _, value, _ in rows}
        decided, finished = _stored_decisions(store, item, taxonomy)
        rows += [(field_, "decided", value, None) for field_, value in decided if (field_, value) not in shown]
        rows.append(("product", "review", "", None))
        for field_, kind, value, score in rows:
            before = finished if field_ == "product" else decided.get((field_, value), "")
            cells = {"product_id": item.id, "title": item.title, "field": field_, "kind": kind, "predicted": value,
                     "score": "" if score is None else round(score, 4), "decided_before": before, "decision": "",
                     "corrected": "", "model_id": item.model, "reviewer": reviewer or "", "image": item.image or "",
                     "written_at": written_at}
            writer.writerow([safe_cell(cells[c]) for c in SHEET_COLUMNS])
        count += 1
    return count


def _stored_decisions(store: Store | None, item: PredictedProduct,
                      taxonomy: Taxonomy | None) -> tuple[dict[tuple[str, str], str], str]:
    """The decisions stored about a product's values, as its screen shows them: {(field, value): `reject by alice
    at …`}, and its review's finish (`accept`, `reject` or ""). Nothing without a store."""
    if store is None:
        return {}, ""
    screen = screen_for(item, decisions_for(store, item.id, item.model), taxonomy)
    return {("category" if s.kind == "category" else "tag", s.value): _decided_before(s.decision, s.decided_in)
            for s in screen.suggestions if s.decision}, screen.finished or ""


def _later(time: str, than: str) -> bool:
    """Whether one stored time is after another (both ISO 8601, to the millisecond or the microsecond)."""
    try:
        return datetime.fromisoformat(time) > datetime.fromisoformat(than)
    except (TypeError, ValueError):
        return False


def _decided_before(decision: str, row: Mapping[str, Any] | None) -> str:
    """A stored decision for a reader: `reject by alice at 2026-12-02 10:15 UTC`."""
    when = str((row or {}).get("created_at") or "")
    when = f"{when[:10]} {when[11:16]} UTC" if when.endswith("+00:00") else when
    reviewer = (row or {}).get("reviewer")
    return decision + (f" by {reviewer}" if reviewer else "") + (f" at {when}" if when else "")
