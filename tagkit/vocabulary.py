"""Vocabularies from data: spelling variants of names and values (`suggest`), and taxonomies learnt from
labelled products (`build_taxonomy`).

Two spellings are variants when their fold keys are equal: `tagkit.text.match_key` (half-space = space, Arabic ي/ك =
Persian ی/ک, Persian digits = Latin, case) with spaces and hyphens removed and plurals reduced (Persian `ها`/`های`,
English `-s`/`-es`/`-ies`), signs kept (`+1.5` is not `-1.5`), after Latin letters typed inside a Persian word are
read as the Persian letters they sound like (`آstین` = `آستین`). Variants with equal match keys need no synonym (the
taxonomy matches them already); the others (plurals, `T-shirt`/`Tshirt`) become synonyms.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tagkit.product import Product, Tag
from tagkit.taxonomy import Attribute, Taxonomy, Value
from tagkit.text import ARABIC_LETTERS, DIGITS, ZWNJ, match_key, normalize, signs_of, spelling_key, wordless_key

_PLURAL_TOKENS = frozenset({"ها", "های", "هایی"})
_ARABIC_LETTERS = re.compile("[يكىة]")  # Arabic letters Persian writes otherwise (ی ک ی ه)
# A space before a suffix that standard Persian spelling joins with a half-space.
_SUFFIX_SPACE = re.compile(r"(?<=[\u0600-\u06ff]) (?=(?:ها|های|هایی)(?:\s|$))|(?<=ه) (?=(?:ای|اي)(?:\s|$))")


# Two or three small Latin letters between two Persian letters (not digits, not punctuation): typed with the
# keyboard in the wrong language inside a Persian word. One letter (`یقهVشکل`, V-neck) or capitals mean a letter.
_PERSIAN_LETTER = "[\u0621-\u063a\u0641-\u064a\u067e\u0686\u0698\u06a9\u06af\u06c0\u06cc]"
_LATIN_IN_PERSIAN = re.compile(rf"(?<={_PERSIAN_LETTER})[a-z]{{2,3}}(?={_PERSIAN_LETTER})")
_SOUNDS = str.maketrans({"a": "ا", "b": "ب", "c": "ک", "d": "د", "e": "", "f": "ف", "g": "گ", "h": "ه", "i": "ی",
                         "j": "ج", "k": "ک", "l": "ل", "m": "م", "n": "ن", "o": "و", "p": "پ", "q": "ق", "r": "ر",
                         "s": "س", "t": "ت", "u": "و", "v": "و", "w": "و", "x": "کس", "y": "ی", "z": "ز"})


def _persian_letters(text: str) -> str:
    """Latin letters typed inside a Persian word as the Persian letters they sound like: `نوع آstین` ->
    `نوع آستین`. Latin words of their own (`Puma`, `UV400`) stay as they are."""
    return _LATIN_IN_PERSIAN.sub(lambda m: m.group().translate(_SOUNDS), text)


def fold_key(text: str) -> str:
    """A key equal for spellings of one name or value: `ویژگی ها` = `ویژگی‌ها` = `ويژگيها`, `T-Shirts` =
    `tshirt`, `Dresses` = `dress`, `آstین` = `آستین`."""
    parts = []
    for token in match_key(_persian_letters(text)).split():
        if token in _PLURAL_TOKENS:
            continue
        if token.isascii() and token.isalpha() and len(token) > 3:
            if token.endswith("ies"):
                token = token[:-3] + "y"
            elif token.endswith(("sses", "shes", "ches", "xes")):
                token = token[:-2]
            elif token.endswith("s") and not token.endswith("ss"):
                token = token[:-1]
        parts.append(token)
    folded = "".join(parts) or match_key(_persian_letters(text)).replace(" ", "")
    return f"{folded}{signs_of(text)}" if folded else wordless_key(text)


class Spellings:
    """One spelling for each label written several ways (same `spelling_key` level by level: half-space or space,
    Arabic letters, case, digits): the most common one among `categories` and `tags`, ties to the first seen.
    Without a taxonomy, `train` learns `شلوار جین` and `شلوار‌جین`, or `Puma` and `puma`, as one class, and `eval`
    scores a prediction as the label it is."""

    def __init__(self, categories: Iterable[Sequence[str]], tags: Iterable[Tag]) -> None:
        paths = Counter(tuple(p) for p in categories if p)
        self._paths: dict[tuple[str, ...], tuple[str, ...]] = {}
        for path, _ in paths.most_common():
            self._paths.setdefault(self.path_key(path), path)
        self._path_of = {path: self._paths[self.path_key(path)] for path in paths}  # the spellings seen: at once
        tag_counts = Counter(tags)
        self._tags: dict[tuple[str, str], Tag] = {}
        for tag, _ in tag_counts.most_common():
            self._tags.setdefault(self._tag_key(tag), tag)
        self._tag_of = {tag: self._tags[self._tag_key(tag)] for tag in tag_counts}

    @staticmethod
    def path_key(path: Sequence[str]) -> tuple[str, ...]:
        """What two spellings of one category path share."""
        return tuple(spelling_key(level) for level in path)

    @staticmethod
    def _tag_key(tag: Tag) -> tuple[str, str]:
        return spelling_key(tag.name), spelling_key(tag.value)

    def path(self, path: Sequence[str]) -> tuple[str, ...]:
        path = tuple(path)
        found = self._path_of.get(path)
        if found is None:
            found = self._paths.get(self.path_key(path), path) if path else path
        return found

    def tag(self, tag: Tag) -> Tag:
        found = self._tag_of.get(tag)
        return found if found is not None else self._tags.get(self._tag_key(tag), tag)

    def tags(self, tags: Iterable[Tag]) -> tuple[Tag, ...]:
        return tuple(dict.fromkeys(self.tag(t) for t in tags))


def standard_spelling(text: str) -> str:
    """Persian suffixes joined with a half-space as the standard spelling has them (`قهوه ای` -> `قهوه‌ای`,
    `ویژگی ها` -> `ویژگی‌ها`); everything else as `normalize` gives it."""
    return _SUFFIX_SPACE.sub(ZWNJ, normalize(text))


def preferred(variants: Mapping[str, int]) -> str:
    """The spelling to keep among variants: standard Persian spelling (half-spaces, Persian letters) first,
    then the most frequent, then the first in sort order."""
    def rank(text: str) -> tuple:
        standard = standard_spelling(text)
        return (text != standard, bool(_ARABIC_LETTERS.search(text)), -variants[text], text)

    best = min(variants, key=rank)
    return standard_spelling(best)


_SPACING = re.compile(r"[\s\-_./\u200c]+")
# Ways two spellings differ, in the order they are undone.
_STEPS = (
    ("Latin letters in a Persian word", _persian_letters),
    ("Arabic letters", lambda text: text.translate(ARABIC_LETTERS)),
    ("digits", lambda text: text.translate(DIGITS)),
    ("half-space", lambda text: text.replace(ZWNJ, " ")),
    ("case", str.lower),
    ("spacing", lambda text: _SPACING.sub("", text)),
    ("spelling", lambda text: match_key(text).replace(" ", "")),
    ("plural", fold_key),
)


def _reasons(variants: Iterable[str]) -> list[str]:
    """How the spellings differ: the steps (Latin letters in a Persian word, Arabic letters, digits, half-space,
    case, spacing, other spelling, plural) that make each pair equal, in turn."""
    items = sorted(set(variants))
    reasons: set[str] = set()
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            for reason, step in _STEPS:
                if a == b:
                    break
                new_a, new_b = step(a), step(b)
                if (new_a, new_b) != (a, b):
                    reasons.add(reason)
                a, b = new_a, new_b
    return [reason for reason, _ in _STEPS if reason in reasons]


@dataclass
class Suggestion:
    """Spellings that look like one name (kind `attribute`) or one value of an attribute (kind `value`)."""

    kind: str
    canonical: str  # the spelling to keep
    variants: list[tuple[str, int]]  # every spelling seen, with its count, most frequent first
    attribute: str = ""  # for values: the attribute (its canonical name)
    reasons: list[str] = field(default_factory=list)
    in_taxonomy: bool = False  # `canonical` is already in the taxonomy

    @property
    def count(self) -> int:
        return sum(n for _, n in self.variants)

    def target(self) -> str:
        return f"{self.attribute}: {self.canonical}" if self.kind == "value" else self.canonical

    def raw(self, variant: str) -> str:
        return f"{self.attribute}: {variant}" if self.kind == "value" else variant

    def as_dict(self) -> dict:
        return {"kind": self.kind, "attribute": self.attribute, "canonical": self.canonical,
                "variants": [{"text": t, "count": n} for t, n in self.variants], "reasons": self.reasons,
                "in_taxonomy": self.in_taxonomy}


def suggest(tags: Iterable[Tag], taxonomy: Taxonomy | None = None) -> list[Suggestion]:
    """Names and values that are the same thing written differently, for a person to confirm.

    Without a taxonomy: groups of spellings of a name, and of a value within one attribute (its name
    variants merged), each with the proposed spelling (also a single spelling that standard Persian
    writes otherwise: `ویژگی ها` -> `ویژگی‌ها`). With one: also raw names and values it does not
    map yet but whose fold key equals one of its entries (`tagkit taxonomy map RAW CANONICAL` adds them).
    Biggest groups first.
    """
    counts = Counter(t for t in tags if t.name)
    names: Counter[str] = Counter()
    for tag, n in counts.items():
        names[tag.name] += n
    out: list[Suggestion] = []
    name_of: dict[str, str] = {}
    for group in _groups(names):
        canonical = preferred(dict(group))
        known = _known(taxonomy.attribute, [canonical, *(t for t, _ in group)]) if taxonomy else None
        if known is not None:
            canonical = known.name
        for text, _ in group:
            name_of[text] = canonical
        if known is not None:  # only the spellings the taxonomy does not map yet
            group = [(t, n) for t, n in group if taxonomy.attribute(t) is not known]
            if not group:
                continue
        if len(group) > 1 or group[0][0] != canonical:
            out.append(Suggestion("attribute", canonical, group, reasons=_reasons([canonical, *(t for t, _ in group)]),
                                  in_taxonomy=known is not None))
    values: dict[str, Counter[str]] = defaultdict(Counter)
    for tag, n in counts.items():
        values[name_of[tag.name]][tag.value] += n
    for attribute_name in sorted(values):
        attribute = taxonomy.attribute(attribute_name) if taxonomy else None
        for group in _groups(values[attribute_name]):
            canonical = preferred(dict(group))
            known_value = (_known(functools.partial(taxonomy.value, attribute), [canonical, *(t for t, _ in group)])
                           if taxonomy and attribute else None)
            if known_value is not None:
                canonical = known_value.name
                group = [(t, n) for t, n in group if taxonomy.value(attribute, t) is not known_value]
                if not group:
                    continue
            if len(group) > 1 or group[0][0] != canonical:
                out.append(Suggestion("value", canonical, group, attribute_name,
                                      _reasons([canonical, *(t for t, _ in group)]),
                                      in_taxonomy=known_value is not None))
    if taxonomy is not None:  # a spelling already in a group whose spelling to keep is the taxonomy's: once
        listed = {(s.kind, s.attribute, s.canonical, text) for s in out if s.in_taxonomy for text, _ in s.variants}
        out.extend(s for s in _unmapped(names, values, taxonomy, name_of)
                   if (s.kind, s.attribute, s.canonical, s.variants[0][0]) not in listed)
    out.sort(key=lambda s: (-s.count, s.kind, s.attribute, s.canonical))
    return out


def _known[T](look_up: Callable[[str], T | None], spellings: Iterable[str]) -> T | None:
    """The taxonomy entry the first of these spellings that it knows is (a group of spellings whose preferred one
    the taxonomy lacks may hold another that it has: `Navyblue`, `navy blue`)."""
    for text in spellings:
        found = look_up(text)
        if found is not None:
            return found
    return None


def _groups(counts: Mapping[str, int]) -> list[list[tuple[str, int]]]:
    """Spellings grouped by fold key; each group most frequent first."""
    by_key: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for text, n in counts.items():
        by_key[fold_key(text)].append((text, n))
    return [sorted(group, key=lambda item: (-item[1], item[0])) for _, group in sorted(by_key.items())]


def _by_fold_key[T: (Attribute, Value)](entries: Iterable[T]) -> dict[str, T]:
    """Taxonomy entries (attributes or values) by the fold key of their name and of each synonym; the first
    entry wins a shared key."""
    out: dict[str, T] = {}
    for entry in entries:
        for text in (entry.name, *entry.synonyms):
            out.setdefault(fold_key(text), entry)
    return out


def _unmapped(names: Counter[str], values: dict[str, Counter[str]], taxonomy: Taxonomy,
              name_of: dict[str, str]) -> list[Suggestion]:
    """Raw names and values the taxonomy does not map, but that fold to one of its entries."""
    out = []
    attribute_folds = _by_fold_key(taxonomy.attributes)
    for raw, n in sorted(names.items()):
        target = attribute_folds.get(fold_key(raw))
        if taxonomy.attribute(raw) is None and target is not None:
            out.append(Suggestion("attribute", target.name, [(raw, n)], reasons=_reasons([raw, target.name]),
                                  in_taxonomy=True))
    for attribute_name, counter in values.items():
        attribute = taxonomy.attribute(attribute_name)
        if attribute is None:
            continue
        value_folds = _by_fold_key(attribute.values)
        for raw, n in sorted(counter.items()):
            target_value = value_folds.get(fold_key(raw))
            if taxonomy.value(attribute, raw) is None and target_value is not None:
                out.append(Suggestion("value", target_value.name, [(raw, n)], attribute.name,
                                      _reasons([raw, target_value.name]), in_taxonomy=True))
    return out


# ----------------------------------------------------------------------------------------------------
# Building a taxonomy from labelled products


def build_taxonomy(
    products: Iterable[Product],
    *,
    name: str = "",
    language: str = "",
    attribute_synonyms: Mapping[str, Sequence[str]] | None = None,
    value_synonyms: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    skip_attributes: Sequence[str] = (),
    nest_categories: bool = False,
    open_share: float = 0.25,
    multi_share: float = 0.05,
) -> Taxonomy:
    """A taxonomy from the categories and tags of labelled products, deterministic for the same input.

    Names and values are merged by fold key (spelling variants), plus the merges a person confirmed:
    `attribute_synonyms` {canonical name: [other names]}, `value_synonyms` {attribute: {value: [others]}}.
    Each keeps its preferred spelling (`preferred`); spellings that the match key does not already join
    are kept as synonyms. An attribute is multi-valued when at least `multi_share` of the products that have it
    have two or more of its values, and open
    (new values allowed) when at least `open_share` of its occurrences are values seen once. Attributes
    and values are ordered by frequency. `nest_categories` puts one-level categories under the longest
    other category whose words start them (`شلوار جین بگ` under `شلوار جین` under `شلوار`; not a set, `X و Y`).
    """
    products = list(products)
    skip = {match_key(s) for s in skip_attributes}
    confirmed: dict[str, str] = {}  # fold key -> group key of the confirmed canonical name
    for canonical, others in (attribute_synonyms or {}).items():
        for text in (canonical, *others):
            confirmed[fold_key(text)] = fold_key(canonical)
    fixed = {fold_key(c): standard_spelling(c) for c in (attribute_synonyms or {})}
    names: Counter[str] = Counter()
    for product in products:
        for tag in product.tags:
            if tag.name and match_key(tag.name) not in skip:
                names[tag.name] += 1
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for raw, n in names.items():
        key = fold_key(raw)
        groups[confirmed.get(key, key)][raw] += n
    name_of = {raw: key for key, group in groups.items() for raw in group}
    spelling = {key: fixed.get(key) or preferred(group) for key, group in groups.items()}
    occurrences: dict[str, Counter[str]] = defaultdict(Counter)  # group key -> raw value -> count
    merged = {key: _merges((value_synonyms or {}).get(spelling[key]) or {}) for key in groups}
    having: Counter[str] = Counter()
    several: Counter[str] = Counter()
    for product in products:
        per_product: dict[str, set[str]] = defaultdict(set)
        for tag in set(product.tags):
            if tag.name in name_of:
                key = name_of[tag.name]
                occurrences[key][tag.value] += 1
                value = fold_key(tag.value)
                per_product[key].add(merged[key].get(value, value))  # one value written twice is one
        having.update(per_product.keys())
        several.update(key for key, folds in per_product.items() if len(folds) > 1)
    attributes = []
    for key in sorted(groups, key=lambda k: (-sum(occurrences[k].values()), spelling[k])):
        canonical = spelling[key]
        raw_names = [raw for raw in groups[key] if match_key(raw) != match_key(canonical)]
        values = _values(occurrences[key], (value_synonyms or {}).get(canonical) or {})
        singles = sum(n for _, n in values if n == 1)
        total = sum(n for _, n in values) or 1
        attributes.append(Attribute(
            name=canonical,
            values=[value for value, _ in values],
            multi_valued=several[key] >= max(2, multi_share * having[key]),
            open=singles / total >= open_share,
            synonyms=_as_loaded(sorted(set(raw_names), key=lambda r: (-groups[key][r], r))),
        ))
    taxonomy = Taxonomy(name=name, language=language, attributes=attributes)
    taxonomy.categories, taxonomy.category_synonyms = _categories(products, nest_categories)
    return taxonomy


def _values(counts: Counter[str], confirmed: Mapping[str, Sequence[str]]) -> list[tuple[Value, int]]:
    """Values merged by fold key and by the confirmed merges {value: [other spellings]} (which become
    synonyms even when the data does not have them; the value is the spelling kept), most frequent first, with
    their counts."""
    merge = _merges(confirmed)
    extra = {fold_key(value): [value, *others] for value, others in confirmed.items()}
    fixed = {fold_key(value): standard_spelling(value) for value in confirmed}  # the spelling a person chose
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for raw, n in counts.items():
        key = fold_key(raw)
        groups[merge.get(key, key)][raw] += n
    out = []
    for key, group in groups.items():
        canonical = fixed.get(key) or preferred(group)
        spellings = {normalize(r) for r in (*group, *extra.get(key, ()))}
        synonyms = _as_loaded(sorted((r for r in spellings if match_key(r) != match_key(canonical)),
                                     key=lambda r: (-group.get(r, 0), r)))
        out.append((Value(canonical, synonyms), sum(group.values())))
    out.sort(key=lambda item: (-item[1], item[0].name))
    return out


def _merges(confirmed: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The fold key of each confirmed other spelling -> the fold key of its value."""
    return {fold_key(other): fold_key(value) for value, others in confirmed.items() for other in others}


def _as_loaded(synonyms: Iterable[str]) -> tuple[str, ...]:
    """Synonyms as loading the taxonomy file gives them back (`normalize`d), each once, in order."""
    return tuple(dict.fromkeys(normalize(s) for s in synonyms))


def _categories(products: Sequence[Product], nest: bool
                ) -> tuple[list[tuple[str, ...]], dict[tuple[str, ...], tuple[str, ...]]]:
    """The category tree of the products' paths (spelling variants merged), biggest branches first, and the
    raw paths that the match key does not join to their category."""
    counts: Counter[tuple[str, ...]] = Counter(p.category for p in products if p.category)
    groups: dict[tuple[str, ...], Counter[tuple[str, ...]]] = defaultdict(Counter)
    for path, n in counts.items():
        groups[tuple(fold_key(level) for level in path)][path] += n
    chosen: dict[tuple[str, ...], tuple[str, ...]] = {}
    for key, group in groups.items():
        chosen[key] = tuple(preferred(Counter({p[i]: n for p, n in group.items()})) for i in range(len(key)))
    full_of = _nest(set(chosen.values())) if nest else {}
    weight: Counter[tuple[str, ...]] = Counter()
    synonyms: dict[tuple[str, ...], tuple[str, ...]] = {}
    for key, levels in chosen.items():
        full = full_of.get(levels, levels)
        for i in range(1, len(full) + 1):
            weight[full[:i]] += sum(groups[key].values())
        for raw in groups[key]:
            if tuple(map(match_key, raw)) != tuple(map(match_key, levels)):
                synonyms[raw] = full

    def walk(parent: tuple[str, ...]) -> list[tuple[str, ...]]:
        kids = sorted((p for p in weight if p[:-1] == parent), key=lambda p: (-weight[p], p))
        return [q for kid in kids for q in (kid, *walk(kid))]

    return walk(()), dict(sorted(synonyms.items()))


def _nest(paths: set[tuple[str, ...]]) -> dict[tuple[str, ...], tuple[str, ...]]:
    """The full path of each one-level path put under the longest other one-level path whose words start it."""
    flat = {match_key(p[0]): p[0] for p in paths if len(p) == 1}
    parent: dict[str, str] = {}
    for key in flat:
        words = key.split()
        for i in range(len(words) - 1, 0, -1):
            prefix = " ".join(words[:i])
            if prefix in flat and words[i] != "و":  # a set (`کت و شلوار`) is not a kind of its first item
                parent[key] = prefix
                break

    def full(key: str) -> tuple[str, ...]:
        return (*full(parent[key]), flat[key]) if key in parent else (flat[key],)

    return {(flat[key],): full(key) for key in flat}
