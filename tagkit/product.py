"""The records every part of tagkit passes around: a product, a tag, a problem with the input."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tagkit.text import spelling_key

CATEGORY_SEPARATOR = " > "
_NAME_SEPARATOR = re.compile(r"(?<!\d):|:(?!\d)")  # a colon, unless a digit is on both sides of it


@dataclass(frozen=True, slots=True, order=True)
class Tag:
    """A tag: an attribute value (`color: Navy Blue`) or a plain value (`name` empty)."""

    name: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Tag:
        """Read `name: value` (split at the first colon not between two digits: `12:30`, `16:9` are values)
        or a plain value."""
        separator = _NAME_SEPARATOR.search(text)
        if separator:
            name, value = text[: separator.start()].strip(), text[separator.end() :].strip()
            if name and value:
                return cls(name, value)
        return cls("", text.strip())

    def __str__(self) -> str:
        return f"{self.name}: {self.value}" if self.name else self.value


_PERSIAN_SEMICOLON = re.compile(r"(?<!\\)\u061b")  # not after a backslash: escaped, part of the text


def split_at(text: str, separator: str) -> list[str]:
    """`text.split(separator)`, also at the separator's full-width form (`＞`, `｜`, `；`), which East Asian
    keyboards type, and `;` at `؛`, which Persian ones do (not `,` at `،`: Persian values hold it, `ست گردنبند،
    دستبند`); a separator after a backslash is part of the text (WooCommerce writes `Belts\\, Leather`)."""
    if len(separator) == 1 and "!" <= separator <= "~":
        text = text.replace(chr(ord(separator) + 0xFEE0), separator)
    if separator == ";":  # an escaped `؛` is one of the text
        return [part.replace("\\\u061b", "\u061b") for part in _split(_PERSIAN_SEMICOLON.sub(";", text), ";")]
    return _split(text, separator)


def _split(text: str, separator: str) -> list[str]:
    escaped = "\\" + separator
    if escaped not in text:
        return text.split(separator)
    return [part.replace(escaped, separator) for part in re.split(rf"(?<!\\){re.escape(separator)}", text)]


def parse_category(text: str, full_width: bool = True) -> tuple[str, ...]:
    """Split a category path `A > B > C` into its levels, dropping empty ones; also at `＞`, unless `full_width` is
    False (a stored path, whose levels may hold one)."""
    return tuple(part.strip() for part in (split_at(text, ">") if full_width else text.split(">")) if part.strip())


def format_category(levels: tuple[str, ...]) -> str:
    """Join category levels into `A > B > C`."""
    return CATEGORY_SEPARATOR.join(levels)


@dataclass(slots=True)
class Product:
    """One product as tagkit sees it, whatever file or folder it came from.

    `image` is an absolute path (or None); `source` and `row` say where the record was read
    (row = the line number where the record starts, the CSV header being line 1; for a JSON
    array, the 1-based item number; for a folder, the 1-based file number). `image_hash` is the
    sha256 of the image file's bytes, once tagkit has read it. `keeps_stored` marks an image read from a
    folder without a products row: it says nothing of its product's id, title, description or labels, so the
    stored product of that image file (if any) keeps them. `tags_reviewed` marks a product whose review was
    finished (`tagkit.feedback.relabel`): when it has no tag left, none of the tags apply (a negative to learn from).
    `keeps` names the fields (`title`, `description`, `image`, `category`) the record does not give (its file has
    no such column; for `predict`, also an empty text or image cell): a stored product of the same id keeps its
    own. For tags (`gives_tags_of`): `tags` = the record has no tags column, and gives only the attributes named
    `given:NAME` (mapped attribute columns it has); else `tags:NAME` = a mapped attribute whose column it lacks.
    """

    id: str
    title: str = ""
    description: str = ""
    image: str | None = None
    category: tuple[str, ...] = ()
    tags: tuple[Tag, ...] = ()
    source: str = ""
    row: int = 0
    extra: dict[str, str] = field(default_factory=dict)
    image_hash: str | None = None
    keeps_stored: bool = False
    tags_reviewed: bool = False
    keeps: frozenset[str] = frozenset()

    @property
    def category_path(self) -> str:
        return format_category(self.category)

    def gives_tags_of(self, attribute: str) -> bool:
        """Whether the record says which tags of this attribute the product has (see `keeps`; or it has one of
        them): a stored product keeps its tags of the attributes the record does not give, and `eval` does not
        score them."""
        if not self.keeps:
            return True
        key = spelling_key(attribute)
        if any(spelling_key(tag.name) == key for tag in self.tags):
            return True
        if "tags" in self.keeps:
            return any(k.startswith("given:") and spelling_key(k.removeprefix("given:")) == key for k in self.keeps)
        return not any(k.startswith("tags:") and spelling_key(k.removeprefix("tags:")) == key for k in self.keeps)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one input record or field, said so a person can find and fix it.

    `skipped` is True when the whole record was left out, False when the record was kept
    (without the bad field, or with the problem noted). `info` marks a note that is only
    information: nothing was lost or changed. `product_id`: the product the record was stored as, when it was.
    `cause`: the bare reason many records can share ("file not found"), by which a long run of them is summed up.
    """

    file: str
    row: int | None
    field: str | None
    message: str
    skipped: bool = False
    info: bool = False
    product_id: str | None = None
    cause: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field {shown(self.field)}")
        return f"{', '.join(where)}: {self.message}"


_ESCAPED_JOINERS = re.compile(r"(?<!\\)((?:\\\\)*)\\u(200[cd])")


def shown(value: object) -> str:
    """`repr` for messages (quoted, control characters escaped), except that the half-space (ZWNJ) and ZWJ of
    Persian text stay as they are: `'دسته‌بندی'`, not `'دسته\\u200cبندی'`."""
    if not isinstance(value, str):
        return repr(value)
    return _ESCAPED_JOINERS.sub(lambda m: m.group(1) + chr(int(m.group(2), 16)), repr(value))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'X'?)` with the choice closest to a mistyped `word`, or nothing when none is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {shown(close[0])}?)" if close else ""
