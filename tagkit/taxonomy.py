"""Taxonomies: a category tree and attributes with their allowed values, synonyms and arity, as YAML.

A team keeps one vocabulary in a YAML file. tagkit ships two, `fa-fashion` and `en-fashion` (`shipped_taxonomies`,
`find_taxonomy`: the repository's `taxonomy/` folder, installed as `tagkit/taxonomies/`)::

    name: fa-fashion                  # optional: what this vocabulary is
    language: fa                      # optional
    categories:                       # the tree: each key a category, under it its children (or nothing)
      مد و پوشاک:
        کفش:
        پیراهن:
    category_synonyms:                # optional: other paths that mean a category
      "پوشاک > کفش": "مد و پوشاک > کفش"
    attributes:
      - name: رنگ
        multi_valued: false           # at most one value per product (the default)
        open: false                   # only the listed values (the default); true: other values are allowed
                                      # too (brands, sizes, model codes), the list holds the known ones
                                      # (numbers are read as written: a size 1.10 stays 1.10)
        synonyms: [رنگ بندی]          # other names of the attribute
        values:
          - مشکی                      # a value ...
          - value: قهوه‌ای              # ... or a value with its synonyms
            synonyms: [قهوه ای سوخته, "توصیفگرها: قهوه‌ای"]

Names, values and synonyms match by `tagkit.text.match_key`, so spellings that differ only by half-space or space,
Arabic or Persian letters, Persian or Latin digits, or case need no synonym (`ویژگی ها` = `ویژگی‌ها`, `قهوه اي` =
`قهوه‌ای`); signs are not spelling (`+1.5`, `-1.5` and `1.5`, `A+` and `A-`, `10%` and `10` differ). A value synonym
written `name: value` maps that whole tag (a value filed under another attribute's name). `tagkit.vocabulary` builds
taxonomies from labelled products and suggests merges.

In the database the `taxonomy` table holds one row per category, attribute and value (`kind`, `name`,
`parent_id`: the parent category or the value's attribute, `multi_valued`, `open_values`, `synonyms` as
JSON, `position` in the file). Rows are matched by (kind, name, parent) when a taxonomy is imported again,
so ids do not change; an entry renamed with its old name kept as a synonym keeps its id, and so do the entries
under it; an entry merged into another one stays as an alias row (`canonical_id`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tagkit.config import WrittenBool, load_yaml
from tagkit.product import Problem, Product, Tag, format_category, parse_category, shown
from tagkit.text import match_key, normalize, signs_of, wordless_key

if TYPE_CHECKING:
    from tagkit.store import Store

TOP_KEYS = ("name", "language", "categories", "category_synonyms", "attributes")
ATTRIBUTE_KEYS = ("name", "multi_valued", "open", "synonyms", "values", "description")
VALUE_KEYS = ("value", "synonyms")
TAG_ALIAS = ": "  # a value synonym containing this is a whole `name: value` tag
MIN_ALLOWED_SCORE = 0.01  # an allowed category path scored less is no answer (the model chose paths outside the
# tree: no category, rather than a guess scored 0.00)
_NULL_LEAF = re.compile(r"^( +\S.*): null$", re.MULTILINE)  # `Shirts: null` -> `Shirts:` (a category leaf)
_PACKAGE = Path(__file__).resolve().parent
# Where the shipped taxonomies are: in an installed wheel (pyproject.toml maps the repository's `taxonomy/` to the
# package `tagkit.taxonomies`), else in a checkout (an editable install, or tagkit run from the source tree).
SHIPPED_FOLDERS = (_PACKAGE / "taxonomies", _PACKAGE.parent / "taxonomy")


class TaxonomyError(ValueError):
    """A taxonomy file or mapping that cannot be used; the message names the file, the entry and the fix."""


@dataclass
class Value:
    """One allowed value of an attribute and the other ways it is written."""

    name: str
    synonyms: tuple[str, ...] = ()


@dataclass
class Attribute:
    """An attribute (`رنگ`, `color`): its values, whether a product takes several, whether others are allowed."""

    name: str
    values: list[Value] = field(default_factory=list)
    multi_valued: bool = False
    open: bool = False
    synonyms: tuple[str, ...] = ()
    description: str = ""

    def value(self, text: str) -> Value | None:
        """The value written `text` (by match key, synonyms included), or None."""
        key = _key(text)
        return next((v for v in self.values if key in _keys(v.name, v.synonyms)), None)


@dataclass
class Taxonomy:
    """Categories (every node as a path, in tree order) and attributes; maps raw tags to canonical ones."""

    name: str = ""
    language: str = ""
    categories: list[tuple[str, ...]] = field(default_factory=list)
    category_synonyms: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)
    attributes: list[Attribute] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._index: _Index | None = None

    @property
    def index(self) -> _Index:
        if self._index is None:
            self._index = _Index(self)
        return self._index

    def changed(self) -> None:
        """Call after editing the lists in place: the lookup tables are rebuilt on next use."""
        self._index = None

    # -- lookups -----------------------------------------------------------------------------------

    def attribute(self, name: str) -> Attribute | None:
        """The attribute called `name` (or one of its synonyms), by match key."""
        return self.index.attributes.get(_key(name))

    def value(self, attribute: Attribute, text: str) -> Value | None:
        """The value of `attribute` written `text` (by match key, synonyms included), or None."""
        return self.index.values[attribute.name].get(_key(text))

    def canonical(self, tag: Tag) -> Tag:
        """The canonical spelling of a tag: its attribute's name and value when the taxonomy knows them.

        Unknown attributes and values (new brands, sizes) come back normalised (`tagkit.text.normalize`);
        `known` says whether a tag is in the vocabulary. A plain tag (no name) is only normalised.
        """
        if not tag.name:
            return Tag("", normalize(tag.value))
        alias = self.index.tag_aliases.get(self.index.tag_key(tag))
        if alias is not None:
            return alias
        attribute = self.attribute(tag.name)
        if attribute is None:
            return Tag(normalize(tag.name), normalize(tag.value))
        value = self.index.values[attribute.name].get(_key(tag.value))
        return Tag(attribute.name, value.name if value else normalize(tag.value))

    def canonical_tags(self, tags: Iterable[Tag]) -> tuple[Tag, ...]:
        """Each tag made canonical, duplicates dropped, order kept."""
        return tuple(dict.fromkeys(self.canonical(t) for t in tags))

    def canonical_category(self, path: Sequence[str]) -> tuple[str, ...]:
        """The taxonomy's path for a raw path: by match keys level by level, a synonym (of the path, or of a
        parent: `Apparel > Bottomwear > Jeans` under a `Bottomwear` renamed `Lowerwear`), or the last level alone
        when only one category has that name; unknown paths come back normalised."""
        key = _path_key(path)
        found = self.index.categories.get(key)
        for cut in range(len(key) - 1, 0, -1):  # the longest parent the taxonomy knows, then the rest
            if found is not None:
                break
            parent = self.index.categories.get(key[:cut])
            if parent is not None:
                found = self.index.categories.get(_path_key((*parent, *path[cut:])))
        return found if found is not None else tuple(normalize(level) for level in path)

    def canonical_text(self, field: str, text: str) -> str:
        """A category path (`field` "category") or a tag (`name: value`) written as text, in the taxonomy's names
        (`canonical_category`, `canonical`)."""
        if field == "category":
            return format_category(self.canonical_category(parse_category(text)))
        return str(self.canonical(Tag.parse(text)))

    def has_category(self, path: Sequence[str]) -> bool:
        """Whether `path` (raw or canonical) is one of the taxonomy's categories."""
        return _path_key(path) in self.index.categories

    def known(self, tag: Tag) -> bool:
        """Whether `tag` (already canonical) is allowed: a known attribute, and a listed value unless it is open."""
        attribute = self.index.by_name.get(tag.name)
        if attribute is None:
            return False
        return attribute.open or tag.value in self.index.value_names[attribute.name]

    def passes(self, tag: Tag) -> bool:
        """Whether a prediction may give `tag` (already canonical): a tag it allows, or one of an attribute it does
        not list (those pass through as the model gives them)."""
        return self.known(tag) or self.attribute(tag.name) is None

    def canonicalise(self, products: Iterable[Product]) -> None:
        """Make the products' tags and categories canonical, in place (what `tagkit import` does)."""
        for product in products:
            if product.tags:
                product.tags = self.canonical_tags(product.tags)
            if product.category:
                product.category = self.canonical_category(product.category)

    def outside(self, products: Iterable[Product], found: OutsideLabels) -> None:
        """Count into `found` the (canonical) labels of `products` that the taxonomy does not have."""
        tree = bool(self.categories)
        single = {a.name for a in self.attributes if not a.multi_valued}
        for product in products:
            if tree and product.category and not self.has_category(product.category):
                found.categories[format_category(product.category)] += 1
            for tag in product.tags:
                if not tag.name:
                    continue
                if self.index.by_name.get(tag.name) is None:
                    found.attributes[tag.name] += 1
                elif not self.known(tag):
                    found.values[str(tag)] += 1
            values = Counter(name for name, _ in {(t.name, t.value) for t in product.tags if t.name in single})
            several = [name for name, n in values.items() if n > 1]
            found.several.update(several)
            found.several_products += bool(several)

    def valid(self, scored: Iterable[tuple[Tag, float]], *, keep_unknown: bool = False) -> dict[Tag, float]:
        """Each tag the taxonomy allows, canonical, with its best score. A tag of an attribute the taxonomy does
        not know is dropped, or with `keep_unknown` kept as it is (the taxonomy has no say on it)."""
        best: dict[Tag, float] = {}
        for tag, score in scored:
            canonical = self.canonical(tag)
            if self.known(canonical):
                tag = canonical
            elif not keep_unknown or canonical.name in self.index.by_name:
                continue
            if score > best.get(tag, float("-inf")):
                best[tag] = score
        return best

    def constrain(self, scored: Iterable[tuple[Tag, float]], *, keep_unknown: bool = False,
                  single_valued: Collection[str] = ()) -> list[tuple[Tag, float]]:
        """Predicted tags made valid: canonical, allowed by the taxonomy, one value per single-valued attribute
        (the best-scoring), each tag once (its best score); best first. Tags of attributes the taxonomy does not
        know are dropped, or with `keep_unknown` kept as they are, one value each for those in `single_valued`."""
        single = {a.name for a in self.attributes if not a.multi_valued}
        single.update(name for name in single_valued if name not in self.index.by_name)
        return best_first(self.valid(scored, keep_unknown=keep_unknown), single)

    def hold_tags(self, chosen: Iterable[tuple[Tag, float]], rest: Iterable[tuple[Tag, float]],
                  single_valued: Collection[str] = (), limit: int = 10) -> tuple[list[tuple[Tag, float]],
                                                                             list[tuple[Tag, float]]]:
        """A prediction's tags held to the taxonomy: `chosen` made valid (`constrain`, tags of attributes it does
        not know kept), and the best `limit` of `rest` (all its scored tags) it allows that were not kept, as the
        candidates."""
        tags = self.constrain(chosen, keep_unknown=True, single_valued=single_valued)
        kept = {tag for tag, _ in tags}
        candidates = [(tag, score) for tag, score in best_first(self.valid(rest, keep_unknown=True)) if tag not in kept]
        return tags, candidates[:limit]

    def hold_categories(self, ranked: Iterable[tuple[Sequence[str], float]],
                        min_score: float = MIN_ALLOWED_SCORE) -> list[tuple[tuple[str, ...], float]]:
        """Scored category paths as the taxonomy's, best first: canonical, the scores of paths that become one
        added; with a category tree, only its own paths, and none at all when the best scores under `min_score`
        (the model's answer was a path outside the tree)."""
        scores: dict[tuple[str, ...], float] = {}
        for path, score in ranked:
            path = self.canonical_category(path)
            if self.categories and not self.has_category(path):
                continue
            scores[path] = scores.get(path, 0.0) + score
        held = sorted(scores.items(), key=lambda item: -item[1])
        return held if held and held[0][1] >= min_score else []

    # -- the category tree ---------------------------------------------------------------------------

    def children(self, parent: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        """The paths right under `parent` (the roots for `()`), in file order."""
        return [p for p in self.categories if len(p) == len(parent) + 1 and p[: len(parent)] == parent]

    def leaves(self) -> list[tuple[str, ...]]:
        """The category paths that have no children."""
        parents = {p[:-1] for p in self.categories}
        return [p for p in self.categories if p not in parents]


def best_first(best: Mapping[Tag, float], single_valued: Collection[str] = ()) -> list[tuple[Tag, float]]:
    """Scored tags best first (ties by tag), only the best value of each attribute in `single_valued`."""
    out: list[tuple[Tag, float]] = []
    taken: set[str] = set()
    for tag, score in sorted(best.items(), key=lambda item: (-item[1], item[0])):
        if tag.name in single_valued:
            if tag.name in taken:
                continue
            taken.add(tag.name)
        out.append((tag, score))
    return out


@dataclass
class OutsideLabels:
    """Labels a taxonomy does not have (`Taxonomy.outside`), counted, and the notes that say so."""

    categories: Counter[str] = field(default_factory=Counter)
    values: Counter[str] = field(default_factory=Counter)
    attributes: Counter[str] = field(default_factory=Counter)
    several: Counter[str] = field(default_factory=Counter)  # one-value attributes given several values: products
    several_products: int = 0  # the products with several values of one (or more) of them

    def notes(self, source: str) -> list[Problem]:
        def some(counts: Counter[str]) -> str:
            listed = ", ".join(f"{text} ×{n:,}" for text, n in counts.most_common(5))
            return listed + (f" and {len(counts) - 5:,} more" if len(counts) > 5 else "")

        said = []
        if self.categories:
            said.append(("category", f"{self.categories.total():,} products have a category the taxonomy does not "
                         f"have ({some(self.categories)}): predictions give only its paths, so products like these "
                         "get another one or none; add them to its tree, or `tagkit taxonomy map` them"))
        if self.values:
            said.append(("tags", f"{self.values.total():,} tags have a value the taxonomy does not allow "
                         f"({some(self.values)}): they are learnt but never predicted; add the values, or "
                         "`tagkit taxonomy map` them"))
        if self.attributes:
            said.append(("tags", f"{self.attributes.total():,} tags are of attributes the taxonomy does not list "
                         f"({some(self.attributes)}): kept and predicted as they are"))
        if self.several:
            said.append(("tags", f"{self.several_products:,} products have several values of an attribute the "
                         f"taxonomy gives one value ({some(self.several)}): predictions give it one, so the others "
                         "count as missed; if it takes several, say `multi_valued: true` for it in the taxonomy"))
        return [Problem(source, None, where, message, info=True) for where, message in said]


class _Index:
    """Lookup tables of a taxonomy by match key."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.attributes: dict[str, Attribute] = {}
        self.by_name: dict[str, Attribute] = {}
        self.values: dict[str, dict[str, Value]] = {}
        self.value_names: dict[str, set[str]] = {}
        self.tag_aliases: dict[tuple[str, str], Tag] = {}
        self.categories: dict[tuple[str, ...], tuple[str, ...]] = {}
        for attribute in taxonomy.attributes:
            self.by_name[attribute.name] = attribute
            for key in _keys(attribute.name, attribute.synonyms):
                self.attributes.setdefault(key, attribute)
        for attribute in taxonomy.attributes:
            values: dict[str, Value] = {}
            for value in attribute.values:
                values.setdefault(_key(value.name), value)  # a value's own name is a value, `: ` or not
                for synonym in value.synonyms:
                    if TAG_ALIAS in synonym:
                        raw = Tag.parse(synonym)
                        self.tag_aliases.setdefault(self.tag_key(raw), Tag(attribute.name, value.name))
                    else:
                        values.setdefault(_key(synonym), value)
            self.values[attribute.name] = values
            self.value_names[attribute.name] = {v.name for v in attribute.values}
        for path in taxonomy.categories:
            self.categories.setdefault(_path_key(path), path)
        for raw, path in taxonomy.category_synonyms.items():
            self.categories.setdefault(_path_key(raw), path)
        last = Counter(match_key(path[-1]) for path in taxonomy.categories)
        for path in taxonomy.categories:  # a category written by its own name alone, when no other has it
            if len(path) > 1 and last[match_key(path[-1])] == 1:
                self.categories.setdefault((match_key(path[-1]),), path)

    def tag_key(self, tag: Tag) -> tuple[str, str]:
        """A raw tag as whole-tag synonyms are looked up: its attribute by any of its names."""
        attribute = self.attributes.get(_key(tag.name))
        return _key(attribute.name if attribute is not None else tag.name), _key(tag.value)


@functools.lru_cache(maxsize=1 << 16)  # names and values repeat: a review holds 30,000 predictions to a taxonomy
def _key(text: str) -> str:
    """The key names and values are looked up by: `match_key` with the signs it drops that change a value (`+1.5`,
    `-1.5` and `1.5` are three values, `10%` is not `10`: `signs_of`), or, for text that has no word or number
    (`+`, `...`, an emoji), the text itself, normalised: such values are told apart, and none matches every other."""
    key = match_key(text)
    if not key:
        return wordless_key(text)
    signs = signs_of(text)
    return f"{key} {signs}" if signs else key


def _keys(name: str, synonyms: Iterable[str]) -> set[str]:
    return {_key(name), *(_key(s) for s in synonyms if TAG_ALIAS not in s)} - {""}


def _path_key(path: Sequence[str]) -> tuple[str, ...]:
    return tuple(_key(level) for level in path)


# ----------------------------------------------------------------------------------------------------
# YAML


def shipped_taxonomies() -> dict[str, Path]:
    """The taxonomies that come with tagkit, by name (`fa-fashion`, `en-fashion`): name -> YAML file."""
    for folder in SHIPPED_FOLDERS:
        found = {path.stem: path for path in sorted(folder.glob("*.yaml"))}
        if found:
            return found
    return {}


def find_taxonomy(name_or_path: str | Path) -> Path:
    """The taxonomy file meant by `name_or_path`: a file that exists (it always wins), else the shipped taxonomy of
    that name (`fa-fashion`, its file name `fa-fashion.yaml`, or its path in the source tree,
    `taxonomy/fa-fashion.yaml`, from any folder); TaxonomyError lists the shipped names."""
    path = Path(name_or_path)
    if path.is_dir():
        raise TaxonomyError(f"{path} is a folder, not a taxonomy file")
    if path.exists():  # a file, or a pipe (`<(...)`): read once
        return path
    shipped = shipped_taxonomies()
    name = path.name.removesuffix(".yaml")
    if name in shipped and str(path.parent) in (".", "taxonomy"):
        return shipped[name]
    names = ", ".join(shipped) or "none found"
    raise TaxonomyError(f"no file {path} and no shipped taxonomy of that name (shipped with tagkit: {names})")


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Read and check a taxonomy YAML file; TaxonomyError names the file, the entry and the fix."""
    path = Path(path)
    data = load_yaml(path, TaxonomyError, numbers_as_text=True)  # sizes and codes as written
    try:
        return parse_taxonomy(data, str(path))
    except TaxonomyError as error:
        where = str(error).removeprefix(f"{path}: ")
        line = _line_of(path.read_text("utf-8-sig"), where)
        if line is None:
            raise
        raise TaxonomyError(f"{path}, line {line}: {where}") from None


_ENTRY = re.compile(r"\b(attributes|values)\[(\d+)\]")
_NAMED = re.compile(r"^attribute '(.*?)': value '(.*?)':")  # (names as `shown` quotes them)


def _line_of(text: str, where: str) -> int | None:
    """The line of the file where the entry an error names (`attributes[4] (رنگ): values[56]: ...`, or `attribute
    'رنگ': value 'سفید': ...`) starts, by walking the YAML's nodes; None when the message names no such entry."""
    steps: list[tuple[str, str | int]] = [(key, int(index)) for key, index in _ENTRY.findall(where)]
    named = _NAMED.match(where)
    if named:
        steps = [("attributes", named.group(1)), ("values", named.group(2))]
    if not steps:
        return None
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    for key, which in steps:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((value for name, value in node.value if name.value == key), None)
        if not isinstance(node, yaml.SequenceNode):
            return None
        items = node.value
        if isinstance(which, str):  # by its name: `name:` of an attribute, `value:` or the text of a value
            found = [i for i, item in enumerate(items) if normalize(_node_name(item)) == which]
            which = found[0] if found else len(items)
        if which >= len(items):
            return None
        node = items[which]
    return node.start_mark.line + 1


def _node_name(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    if isinstance(node, yaml.MappingNode):
        return next((str(value.value) for name, value in node.value if name.value in ("name", "value")
                     and isinstance(value, yaml.ScalarNode)), "")
    return ""


def parse_taxonomy(data: Any, label: str = "taxonomy") -> Taxonomy:
    """Check already-parsed YAML and build the Taxonomy (names normalised, duplicates refused)."""
    if not isinstance(data, dict):
        raise TaxonomyError(f"{label}: expected keys like `categories:` and `attributes:` at the top, "
                            f"found {_kind(data)}")
    for key in data:
        if key not in TOP_KEYS:
            raise TaxonomyError(f"{label}: unknown key {shown(key)}; known keys: {', '.join(TOP_KEYS)}")
    taxonomy = Taxonomy(name=_text(data.get("name"), f"{label}: name", empty_ok=True),
                        language=_text(data.get("language"), f"{label}: language", empty_ok=True))
    taxonomy.categories = _parse_tree(data.get("categories"), (), f"{label}: categories")
    seen_paths: dict[tuple[str, ...], tuple[str, ...]] = {}
    for path in taxonomy.categories:
        other = seen_paths.setdefault(_path_key(path), path)
        if other != path:
            raise TaxonomyError(f"{label}: categories: {shown(format_category(path))} and "
                                f"{shown(format_category(other))} are the same category written differently; keep one")
    synonyms = data.get("category_synonyms") or {}
    if not isinstance(synonyms, dict):
        raise TaxonomyError(f"{label}: category_synonyms: expected `raw path: category path` lines, "
                            f"found {_kind(synonyms)}")
    for raw, target in synonyms.items():
        where = f"{label}: category_synonyms.{raw}"
        path = parse_category(_text(target, where))
        if _path_key(path) not in seen_paths:
            raise TaxonomyError(f"{where}: {shown(format_category(path))} is not a category of this taxonomy")
        raw_path = parse_category(normalize(_text(raw, where)))
        if _path_key(raw_path) in seen_paths:  # it would never be used: the category itself comes first
            raise TaxonomyError(f"{where}: {shown(format_category(raw_path))} is a category of this taxonomy "
                                "itself; a synonym is another way to write one")
        taxonomy.category_synonyms[raw_path] = seen_paths[_path_key(path)]
    attributes = data.get("attributes") or []
    if not isinstance(attributes, list):
        raise TaxonomyError(f"{label}: attributes: expected a list of `- name: ...` entries, found {_kind(attributes)}")
    owner: dict[str, str] = {}
    for i, item in enumerate(attributes):
        attribute = _parse_attribute(item, f"{label}: attributes[{i}]")
        for key in _keys(attribute.name, attribute.synonyms):
            if key in owner and owner[key] != attribute.name:
                raise TaxonomyError(f"{label}: attributes[{i}] ({attribute.name}): the name or synonym {shown(key)} "
                                    f"is already attribute {shown(owner[key])}")
            owner[key] = attribute.name
        if any(a.name == attribute.name for a in taxonomy.attributes):
            raise TaxonomyError(f"{label}: attributes[{i}]: attribute {shown(attribute.name)} is listed twice")
        taxonomy.attributes.append(attribute)
    whole_tags: dict[tuple[str, str], tuple[str, str]] = {}  # a whole-tag synonym's key -> its value
    for attribute in taxonomy.attributes:  # a whole-tag synonym that is a listed tag would rewrite that tag
        for value in attribute.values:
            for synonym in value.synonyms:
                raw = Tag.parse(synonym) if TAG_ALIAS in synonym else None
                if raw is not None:
                    first = whole_tags.setdefault(taxonomy.index.tag_key(raw), (attribute.name, value.name))
                    if first != (attribute.name, value.name):
                        raise TaxonomyError(f"{label}: attribute {shown(attribute.name)}: value {shown(value.name)}: "
                                            f"the synonym {shown(synonym)} is already a synonym of "
                                            f"'{first[0]}: {first[1]}': a tag means one value")
                listed = taxonomy.attribute(raw.name) if raw is not None else None
                other = taxonomy.value(listed, raw.value) if listed is not None else None
                if other is not None and other is not value:  # (itself, under another name of its attribute: fine)
                    raise TaxonomyError(f"{label}: attribute {shown(attribute.name)}: value {shown(value.name)}: "
                                        f"the synonym {shown(synonym)} is a value of this taxonomy itself: remove "
                                        "one of them")
    return taxonomy


MAX_CATEGORY_DEPTH = 30  # levels of a category path (lists and mappings inside one another: 3 times that)
MAX_CATEGORIES = 200_000  # paths of a tree (100,000 import in about 12 s), and 5 times as many YAML nodes read


def _parse_tree(node: Any, parent: tuple[str, ...], where: str, out: list[tuple[str, ...]] | None = None,
                seen: list[int] | None = None) -> list[tuple[str, ...]]:
    """The category paths of a YAML tree, in file order. Bounded: YAML aliases can make a few lines a tree of
    millions of paths (or of empty lists), or one that holds itself."""
    out = [] if out is None else out
    seen = [0, 0] if seen is None else seen  # nodes read, lists and mappings inside one another now
    seen[0] += 1
    if seen[0] > 5 * MAX_CATEGORIES or len(out) > MAX_CATEGORIES:
        raise TaxonomyError(f"{where}: more than {MAX_CATEGORIES:,} categories (YAML aliases repeating a branch?)")
    if seen[1] >= 3 * MAX_CATEGORY_DEPTH or len(parent) >= MAX_CATEGORY_DEPTH:
        raise TaxonomyError(f"{where}: the tree is more than {MAX_CATEGORY_DEPTH} levels deep (a YAML alias inside "
                            "itself?)")
    if node is None:
        return out
    if isinstance(node, str | int | float) and not isinstance(node, bool):
        node = {node: None}
    if not isinstance(node, list | dict):
        raise TaxonomyError(f"{where}: expected category names with their children under them, found {_kind(node)}")
    seen[1] += 1
    if isinstance(node, list):
        for item in node:
            _parse_tree(item, parent, where, out, seen)
    for name, children in node.items() if isinstance(node, dict) else ():
        level = _text(name, f"{where}: category name")
        if ">" in level:
            raise TaxonomyError(f"{where}: category {shown(level)}: write the levels as a tree, not with `>`")
        path = (*parent, level)
        out.append(path)
        _parse_tree(children, path, f"{where} > {level}", out, seen)
    seen[1] -= 1
    return out


def _parse_attribute(item: Any, where: str) -> Attribute:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        raise TaxonomyError(f"{where}: expected `name:`, `values:` ..., found {_kind(item)}")
    for key in item:
        if key not in ATTRIBUTE_KEYS:
            raise TaxonomyError(f"{where}: unknown key {shown(key)}; known keys: {', '.join(ATTRIBUTE_KEYS)}")
    name = _text(item.get("name"), f"{where}: name")
    where = f"{where} ({name})"
    attribute = Attribute(name=name, multi_valued=_flag(item, "multi_valued", where), open=_flag(item, "open", where),
                          synonyms=_synonyms(item.get("synonyms"), f"{where}: synonyms"),
                          description=_text(item.get("description"), f"{where}: description", empty_ok=True))
    values = item.get("values") or []
    if not isinstance(values, list):
        raise TaxonomyError(f"{where}: values: expected a list, found {_kind(values)}")
    owner: dict[str, str] = {}
    listed: set[str] = set()
    for j, raw in enumerate(values):
        at = f"{where}: values[{j}]"
        if isinstance(raw, dict):
            for key in raw:
                if key not in VALUE_KEYS:
                    quoted = (f" (a value with `: ` in it needs quotes: - \"{key}: {raw[key]}\")"
                              if len(raw) == 1 and isinstance(raw[key], str) else "")
                    raise TaxonomyError(f"{at}: unknown key {shown(key)}; known keys: {', '.join(VALUE_KEYS)}{quoted}")
            value = Value(_text(raw.get("value"), f"{at}: value"), _synonyms(raw.get("synonyms"), f"{at}: synonyms"))
        else:
            value = Value(_text(raw, at))
        for written in (value.name, *(s for s in value.synonyms if TAG_ALIAS not in s)):
            key = _key(written)
            if key in owner and owner[key] != value.name:
                raise TaxonomyError(f"{at} ({value.name}): {shown(written)} is already value {shown(owner[key])} "
                                    f"of {shown(name)}" + ("" if written == owner[key] else " (spelt otherwise: "
                                    "half-space, letters, digits, case or spacing)"))
            owner[key] = value.name
        if value.name in listed:
            raise TaxonomyError(f"{at}: value {shown(value.name)} is listed twice")
        listed.add(value.name)
        attribute.values.append(value)
    if not attribute.values and not attribute.open:  # it would allow no value at all: every tag of it dropped
        raise TaxonomyError(f"{where}: no values: list them under `values:`, indented below it, or say "
                            "`open: true` (any value allowed)")
    return attribute


def _text(value: Any, where: str, empty_ok: bool = False) -> str:
    if value is None or value == "":
        if empty_ok:
            return ""
        raise TaxonomyError(f"{where}: missing")
    if isinstance(value, bool):
        raise TaxonomyError(f"{where}: {shown(value)} is read by YAML as a true/false value; put it in quotes")
    if not isinstance(value, str | int | float):
        raise TaxonomyError(f"{where}: expected text, found {_kind(value)}")
    text = normalize(str(value))
    if not text and not empty_ok:
        raise TaxonomyError(f"{where}: empty")
    return text


def _flag(item: dict[str, Any], key: str, where: str) -> bool:
    value = item.get(key, False)
    if isinstance(value, WrittenBool):
        return value.value
    if not isinstance(value, bool):
        raise TaxonomyError(f"{where}: {key}: expected true or false, found {shown(value)}")
    return value


def _synonyms(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    return tuple(dict.fromkeys(_text(item, where) for item in items))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names = {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}
    return names.get(type(value), type(value).__name__)


def taxonomy_data(taxonomy: Taxonomy) -> dict[str, Any]:
    """The taxonomy as plain YAML-ready data (the format `parse_taxonomy` reads)."""
    data: dict[str, Any] = {}
    if taxonomy.name:
        data["name"] = taxonomy.name
    if taxonomy.language:
        data["language"] = taxonomy.language

    def tree(parent: tuple[str, ...]) -> dict[str, Any] | None:
        kids = taxonomy.children(parent)
        return {kid[-1]: tree(kid) for kid in kids} if kids else None

    data["categories"] = tree(()) or {}
    if taxonomy.category_synonyms:
        data["category_synonyms"] = {format_category(raw): format_category(path)
                                     for raw, path in taxonomy.category_synonyms.items()}
    data["attributes"] = [attribute_data(attribute) for attribute in taxonomy.attributes]
    return data


def attribute_data(attribute: Attribute) -> dict[str, Any]:
    """One attribute as plain YAML-ready data (an item of a taxonomy file's `attributes:`)."""
    entry: dict[str, Any] = {"name": attribute.name, "multi_valued": attribute.multi_valued, "open": attribute.open}
    if attribute.description:
        entry["description"] = attribute.description
    if attribute.synonyms:
        entry["synonyms"] = list(attribute.synonyms)
    entry["values"] = [{"value": v.name, "synonyms": list(v.synonyms)} if v.synonyms else v.name
                       for v in attribute.values]
    return entry


def taxonomy_fingerprint(taxonomy: Taxonomy | None) -> str:
    """A short hash of everything a taxonomy says ("" for none): stored predictions made under another one
    are made again."""
    if taxonomy is None:
        return ""
    text = json.dumps(taxonomy_data(taxonomy), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def dump_taxonomy(taxonomy: Taxonomy, header: str = "") -> str:
    """The taxonomy as YAML text (deterministic: the same taxonomy gives the same bytes)."""
    text = yaml.safe_dump(taxonomy_data(taxonomy), allow_unicode=True, sort_keys=False, width=1000,
                          default_flow_style=False)
    text = _NULL_LEAF.sub(r"\1:", text).replace("\n- name: ", "\n\n- name: ")
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines()) if header else ""
    return comment + text


# ----------------------------------------------------------------------------------------------------
# The database


@dataclass
class ImportCounts:
    """What `import_taxonomy` did to the `taxonomy` table."""

    added: int = 0
    unchanged: int = 0
    updated: int = 0
    renamed: int = 0  # of `updated`: entries that kept their id under a new name
    aliased: int = 0
    removed: int = 0
    dropped_synonyms: list[str] = field(default_factory=list)  # `RAW -> entry`: in the database, not in the file
    removed_entries: list[str] = field(default_factory=list)  # as `taxonomy map` writes them: `name: value`, paths

    def as_dict(self) -> dict[str, int]:
        return {"added": self.added, "unchanged": self.unchanged, "updated": self.updated, "renamed": self.renamed,
                "aliased": self.aliased, "removed": self.removed, "dropped_synonyms": len(self.dropped_synonyms)}


def import_taxonomy(store: Store, taxonomy: Taxonomy) -> ImportCounts:
    """Make the database's taxonomy this one, in one transaction, keeping the id of every entry already there.

    Entries are matched by (kind, name, parent). An entry renamed with its old name kept as a synonym keeps its
    id (and so do the entries under it). An entry no longer in `taxonomy` becomes an alias row (`canonical_id` =
    the entry it is now a synonym of) when it is one, else it is deleted. Synonyms of an entry that the file does
    not list (added with `tagkit taxonomy map`) go, and are listed in `dropped_synonyms`.
    """
    counts = ImportCounts()
    table = store.db.table("taxonomy")
    with store.transaction():
        rows = {(r["kind"], r["name"], r["parent_id"]): r for r in table.rows}
        by_id = {r["id"]: r for r in rows.values()}
        renamed = _renamed_entries(taxonomy, by_id)
        wanted: set[int] = set()
        ids: dict[_EntryKey, int] = {}

        def put(key: _EntryKey, name: str, parent: int | None, shown: str, **fields: Any) -> int:
            """Insert or update one entry (`shown` is how `tagkit taxonomy map` writes it)."""
            kind = key[0]
            row = {"kind": kind, "name": name, "parent_id": parent, "canonical_id": None, **fields,
                   "position": len(wanted)}
            old = rows.get((kind, name, parent))
            if (old is None or old["id"] in wanted) and renamed.get(key) not in wanted:
                old = by_id.get(renamed.get(key))
            if old is None:
                columns = ", ".join(row)
                marks = ", ".join("?" * len(row))
                row_id = int(store.db.execute(f"insert into taxonomy ({columns}) values ({marks})",
                                              list(row.values())).lastrowid)
                counts.added += 1
            else:
                row_id = int(old["id"])
                kept = {_key(text) for text in [*json.loads(row["synonyms"] or "[]"), name, shown]}  # (a swap)
                counts.dropped_synonyms += [f"{synonym} -> {shown}" for synonym in json.loads(old["synonyms"] or "[]")
                                            if _key(synonym) not in kept]
                changed = {k: v for k, v in row.items() if old.get(k) != v}
                if changed:
                    sets = ", ".join(f"{k} = ?" for k in changed)
                    store.db.execute(f"update taxonomy set {sets} where id = ?", [*changed.values(), row_id])
                if set(changed) - {"position"}:  # an entry moved down by one added above it is not changed
                    counts.updated += 1
                    counts.renamed += old["name"] != name
                else:
                    counts.unchanged += 1
            wanted.add(row_id)
            ids[key] = row_id
            return row_id

        synonyms_of: dict[tuple[str, ...], list[str]] = {}
        for raw, path in taxonomy.category_synonyms.items():
            synonyms_of.setdefault(path, []).append(format_category(raw))
        for path in taxonomy.categories:
            put(("category", path), path[-1], ids.get(("category", path[:-1])), format_category(path),
                synonyms=_json(synonyms_of.get(path, [])), multi_valued=None, open_values=None)
        for attribute in taxonomy.attributes:
            attribute_id = put(("attribute", attribute.name), attribute.name, None, attribute.name,
                               synonyms=_json(list(attribute.synonyms)), multi_valued=int(attribute.multi_valued),
                               open_values=int(attribute.open))
            for value in attribute.values:
                put(("value", (attribute.name, value.name)), value.name, attribute_id,
                    f"{attribute.name}: {value.name}", synonyms=_json(list(value.synonyms)), multi_valued=None,
                    open_values=None)
        for old in by_id.values():
            if old["id"] in wanted:
                continue
            target = ids.get(_new_entry(taxonomy, old, by_id))
            if target is not None:
                if old.get("canonical_id") != target:
                    table.update(old["id"], {"canonical_id": target})
                counts.aliased += 1
            else:
                table.delete(old["id"])
                counts.removed += 1
                counts.removed_entries.append(_written(_stored_entry(old, by_id)))
        store.set_meta("taxonomy_name", taxonomy.name)
        store.set_meta("taxonomy_language", taxonomy.language)
    return counts


_EntryKey = tuple[str, Any]  # ("category", path), ("attribute", name) or ("value", (attribute, value))


def _renamed_entries(taxonomy: Taxonomy, by_id: dict[int, dict[str, Any]]) -> dict[_EntryKey, int]:
    """The stored row each entry of `taxonomy` was renamed from: a row the file no longer has under its own
    name, whose name the file gives as the entry's synonym (the first such row, in file order, when several)."""
    listed = {("category", path) for path in taxonomy.categories}
    for attribute in taxonomy.attributes:
        listed.add(("attribute", attribute.name))
        listed.update(("value", (attribute.name, value.name)) for value in attribute.values)
    renamed: dict[_EntryKey, int] = {}
    for row in sorted(by_id.values(), key=lambda r: (r["canonical_id"] is not None, r["position"] or 0, r["id"])):
        if _stored_entry(row, by_id) in listed:
            continue
        key = _new_entry(taxonomy, row, by_id)
        if key is not None and key not in renamed:
            renamed[key] = row["id"]
    return renamed


def _stored_entry(row: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> _EntryKey:
    """A stored row's entry key, by the names it is stored under."""
    if row["kind"] == "value":
        owner = by_id.get(row["parent_id"])
        return "value", (owner["name"] if owner else None, row["name"])
    if row["kind"] == "category":
        return "category", tuple(_stored_path(row, by_id))
    return row["kind"], row["name"]


def _written(entry: _EntryKey) -> str:
    """An entry key as `tagkit taxonomy map` writes it: a category path, an attribute, `name: value`."""
    kind, name = entry
    if kind == "category":
        return format_category(name)
    return f"{name[0]}: {name[1]}" if kind == "value" else str(name)


def stored_outside(store: Store, taxonomy: Taxonomy) -> OutsideLabels:
    """The labels of the stored products (made canonical) that `taxonomy` does not have: what a new taxonomy
    leaves out of what `train` learns and `predict` gives (a category renamed without a synonym, a value removed)."""
    found = OutsideLabels()
    products = [p for p in store.iter_products("category is not null or tags is not null")]
    taxonomy.canonicalise(products)
    taxonomy.outside(products, found)
    return found


def _stored_path(row: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> list[str]:
    levels = [row["name"]]
    parent = row["parent_id"]
    while parent is not None and parent in by_id:
        levels.insert(0, by_id[parent]["name"])
        parent = by_id[parent]["parent_id"]
    return levels


def _new_entry(taxonomy: Taxonomy, row: dict[str, Any], by_id: dict[int, dict[str, Any]]) -> _EntryKey | None:
    """The entry of `taxonomy` that a stored row's name (or path) means, if any."""
    if row["kind"] == "attribute":
        found = taxonomy.attribute(row["name"])
        return ("attribute", found.name) if found else None
    if row["kind"] == "value":
        owner = by_id.get(row["parent_id"])
        attribute = taxonomy.attribute(owner["name"]) if owner else None
        value = taxonomy.value(attribute, row["name"]) if attribute else None
        return ("value", (attribute.name, value.name)) if attribute and value else None
    if row["kind"] == "category":
        path = taxonomy.index.categories.get(_path_key(_stored_path(row, by_id)))
        return ("category", path) if path else None
    return None


def stored_taxonomy(store: Store) -> Taxonomy | None:
    """The taxonomy in the database (alias rows left out), or None when none was imported."""
    rows = list(store.db.query("select * from taxonomy where canonical_id is null order by position, id"))
    if not rows:
        return None
    taxonomy = Taxonomy(name=store.meta("taxonomy_name") or "", language=store.meta("taxonomy_language") or "")
    paths: dict[int, tuple[str, ...]] = {}
    attributes: dict[int, Attribute] = {}
    for row in rows:  # in file order, so a parent comes before its children
        synonyms = tuple(json.loads(row["synonyms"] or "[]"))
        if row["kind"] == "category":
            path = (*paths.get(row["parent_id"], ()), row["name"])
            paths[row["id"]] = path
            taxonomy.categories.append(path)
            for raw in synonyms:
                taxonomy.category_synonyms[parse_category(raw)] = path
        elif row["kind"] == "attribute":
            attributes[row["id"]] = Attribute(row["name"], multi_valued=bool(row["multi_valued"]),
                                              open=bool(row["open_values"]), synonyms=synonyms)
            taxonomy.attributes.append(attributes[row["id"]])
        elif row["kind"] == "value" and row["parent_id"] in attributes:
            attributes[row["parent_id"]].values.append(Value(row["name"], synonyms))
    taxonomy.categories = _tree_order(taxonomy.categories)
    return taxonomy


def _tree_order(paths: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Paths depth-first (a child added later still comes under its parent), siblings in insertion order."""
    position = {p: i for i, p in enumerate(paths)}

    def walk(parent: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for path in sorted((p for p in paths if p[:-1] == parent), key=position.__getitem__):
            yield path
            yield from walk(path)

    return list(walk(()))


def apply_taxonomy(store: Store, taxonomy: Taxonomy) -> int:
    """Make the tags and categories of the products already stored canonical; returns how many changed."""
    changed = []
    for product in store.iter_products("tags is not null or category is not null"):
        tags, category = product.tags, product.category
        taxonomy.canonicalise([product])
        if product.tags != tags or product.category != category:
            changed.append(product)
    for start in range(0, len(changed), 500):
        store.upsert_products(changed[start : start + 500])
    return len(changed)


def taxonomy_ids(store: Store) -> dict[tuple[str, ...], int]:
    """Ids of the stored entries: ("category", *path), ("attribute", name), ("value", attribute, value)."""
    rows = {r["id"]: r for r in store.db.query("select * from taxonomy where canonical_id is null")}
    out: dict[tuple[str, ...], int] = {}
    for row_id, row in rows.items():
        if row["kind"] == "category":
            out[("category", *_stored_path(row, rows))] = row_id
        elif row["kind"] == "attribute":
            out[("attribute", row["name"])] = row_id
        elif row["kind"] == "value" and row["parent_id"] in rows:
            out[("value", rows[row["parent_id"]]["name"], row["name"])] = row_id
    return out


def add_synonym(store: Store, raw: str, canonical: str) -> str:
    """Record that `raw` means `canonical` (`tagkit taxonomy map`); returns what was mapped, for a message.

    `canonical` is a `name: value` tag (then `raw` is a value, or a whole `name: value` tag filed under
    another name), an attribute name (`raw` is another name for it) or a category path (`raw` another path).
    """
    taxonomy = stored_taxonomy(store)
    if taxonomy is None:
        raise TaxonomyError("no taxonomy in the database: import one first (`tagkit taxonomy import FILE`)")
    ids = taxonomy_ids(store)
    raw = normalize(raw)
    if not raw:
        raise TaxonomyError("RAW is empty")
    target = Tag.parse(canonical)
    if target.name:
        attribute = taxonomy.attribute(target.name)
        value = taxonomy.value(attribute, target.value) if attribute else None
        if attribute is None or value is None:
            raise TaxonomyError(f"{shown(canonical)} is not a value of the taxonomy (see `tagkit taxonomy show`)")
        raw_tag = Tag.parse(raw)
        same_attribute = raw_tag.name and taxonomy.attribute(raw_tag.name) is attribute
        synonym = raw_tag.value if same_attribute else f"{raw_tag.name}{TAG_ALIAS}{raw_tag.value}" \
            if raw_tag.name else raw
        owner = attribute if not raw_tag.name or same_attribute else taxonomy.attribute(raw_tag.name)
        other = taxonomy.value(owner, raw_tag.value if raw_tag.name else raw) if owner is not None else None
        if other is not None and (owner, other) != (attribute, value):
            written = raw_tag.value if raw_tag.name else raw
            if _key(written) != _key(other.name):  # a synonym of it, not its name
                raise TaxonomyError(f"'{raw}' is already a synonym of '{owner.name}: {other.name}': remove it from "
                                    "that value's synonyms in the taxonomy file and import it, then map it again")
            raise TaxonomyError(f"'{raw}' is already '{owner.name}: {other.name}' in the taxonomy: to merge the two, "
                                "remove one from the taxonomy file, list it as the other's synonym and import it")
        alias = taxonomy.index.tag_aliases.get(taxonomy.index.tag_key(raw_tag)) if raw_tag.name else None
        if alias is not None and alias != Tag(attribute.name, value.name):
            raise TaxonomyError(f"'{raw}' is already a synonym of '{alias}': remove it from that value's synonyms in "
                                "the taxonomy file and import it, then map it again")
        _append_synonym(store, ids[("value", attribute.name, value.name)], synonym)
        return f"{synonym} -> {attribute.name}: {value.name}"
    attribute = taxonomy.attribute(canonical)
    if attribute is not None and ">" not in canonical:
        owner = taxonomy.attribute(raw)
        if owner is not None and owner is not attribute:
            raise TaxonomyError(f"{shown(raw)} is already attribute {shown(owner.name)}")
        _append_synonym(store, ids[("attribute", attribute.name)], raw)
        return f"{raw} -> {attribute.name}"
    path = taxonomy.index.categories.get(_path_key(parse_category(canonical)))
    if path is not None:
        raw_path = parse_category(raw)
        other_path = taxonomy.index.categories.get(_path_key(raw_path))
        if other_path is not None and other_path != path:
            raise TaxonomyError(f"'{format_category(raw_path)}' is already category '{format_category(other_path)}'")
        _append_synonym(store, ids[("category", *path)], format_category(raw_path))
        return f"{format_category(raw_path)} -> {format_category(path)}"
    raise TaxonomyError(f"{shown(canonical)} is neither a `name: value` tag, an attribute nor a category of the "
                        "taxonomy (see `tagkit taxonomy show`)")


def _append_synonym(store: Store, row_id: int, synonym: str) -> None:
    table = store.db.table("taxonomy")
    with store.transaction():
        synonyms = json.loads(table.get(row_id)["synonyms"] or "[]")
        if synonym not in synonyms:
            table.update(row_id, {"synonyms": _json([*synonyms, synonym])})


def _json(items: list[str]) -> str:
    return json.dumps(items, ensure_ascii=False)
