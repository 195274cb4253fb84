"""Text clean-up for Persian and English product titles: HTML stripping, normalisation, tokens, match keys.

`import tagkit.text` is cheap: hazm is imported lazily, the first time `normalize`/`tokens` need it.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["match_key", "normalize", "strip_html", "tokens"]

# Tags whose start or end marks a line or block break in the rendered text.
_BREAK_TAGS = frozenset(
    {"br", "p", "div", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "dt", "dd"}
    | {"section", "article", "header", "footer", "blockquote", "pre", "hr"}
)
_CELL_TAGS = frozenset({"td", "th"})
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag in _BREAK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag in _BREAK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_HSPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\s*\n\s*")


def nfc(text: str) -> str:
    """`text` in Unicode's composed form (NFC): how Excel, Windows and Linux write `آ`, where macOS writes file names
    decomposed (NFD), so the same name can be two strings. Only sequences are composed (a letter and the marks or
    Hangul vowels after it): a character NFC would swap for another on its own (the CJK compatibility ideograph
    `豈` U+F900, the Ångström sign) stays as written, as macOS leaves it, so an id holding one is still that id."""
    if text.isascii():
        return text
    composed = unicodedata.normalize("NFC", text)
    if composed == text:
        return text
    out: list[str] = []
    start = 0
    for end in range(1, len(text) + 1):
        if end == len(text) or not (unicodedata.combining(text[end]) or "\u1160" <= text[end] <= "\u11ff"):
            run = text[start:end]
            out.append(unicodedata.normalize("NFC", run) if unicodedata.normalize("NFC", run[0]) == run[0] else run)
            start = end
    return "".join(out)


MAX_MARKUP = 1_000_000  # characters of an HTML cell read (its inline `data:` images left out first)
_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)
_DANGLING_LT = re.compile(r"<(?!/?[A-Za-z!?][^<>]*>)")  # a `<` that no `>` closes before the next `<`


def strip_html(text: str) -> str:
    """Plain text from an HTML fragment: tags removed, entities decoded, `<script>`/`<style>` dropped.

    Block tags (`<br>`, `<p>`, `<li>`, ...) become line breaks; runs of spaces collapse to one space,
    runs of blank lines to one newline; the result is stripped. Text without markup comes back
    with only its entities decoded and spaces tidied.
    """
    if not text:
        return ""
    if "<" in text:
        # bounded: inline images are no text, markup past MAX_MARKUP is not read (a title or description is cut far
        # shorter), and when many a `<` starts no tag (HTMLParser scans the rest of the input again for each one:
        # `<a<a<a…` took minutes), those are text; a few, as in comments and attributes, are left to the parser
        text = _DATA_URI.sub("data:", text)[:MAX_MARKUP]
        if text.count("<") > text.count(">") + 100:
            text = _DANGLING_LT.sub("&lt;", text)
        parser = _TextExtractor()
        parser.feed(text)
        parser.close()
        out = "".join(parser.parts)
    else:
        out = html.unescape(text)
    out = out.replace("\xa0", " ")
    out = _HSPACE.sub(" ", out)
    out = _BLANK_LINES.sub("\n", out)
    return out.strip()


# ----------------------------------------------------------------------------------------------------
# Normalisation

ZWNJ = "\u200c"
# Arabic-script letters (after hazm has mapped Arabic presentation forms and variants onto the base letters).
_AR = "\u0621-\u063a\u0641-\u064a\u066e\u066f\u0671-\u06d3\u06d5\u06ee\u06ef\u06fa-\u06fc\u06ff"
# Letters and digits of any other script (Latin, digits, Cyrillic, ...): Python's \w minus `_` and Arabic.
_OTHER = r"[^\W_\u0600-\u06ff]"


def _char_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for zero in (0x06F0, 0x0660):  # Persian and Arabic-Indic digits -> 0-9
        for i in range(10):
            table[zero + i] = str(i)
    table.update({0x066B: ".", 0x066C: ",", 0x066A: "%"})  # Arabic decimal / thousands separators, percent
    for cp in (0x00A0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000, 0x0009, 0x000B, 0x000C):
        table[cp] = " "  # NBSP, thin/en/em spaces, tabs ...
    for cp in (*range(0x00, 0x09), *range(0x0E, 0x20), *range(0x7F, 0xA0)):
        table[cp] = " "  # control characters (a stray backspace in a value) are not text
    # Zero-width characters and direction marks act as (maybe stray) half-spaces, kept only inside Persian words:
    # the catalogues write `آستر\u200eدار` for `آستر‌دار`, and a zero-width joiner is the half-space's mistyped
    # twin. The marks that only say "no break here" (word joiner, a BOM inside the text, soft hyphen) go.
    for cp in (*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x061C):
        table[cp] = ZWNJ
    for cp in (0x2060, 0xFEFF, 0x00AD, *range(0x2061, 0x2066)):
        table[cp] = ""
    for cp in (*range(0x2010, 0x2016), 0x2212, 0xFE58, 0xFE63, 0xFF0D):
        table[cp] = "-"  # dashes and minus signs; keeps codes like 20224A–7 equal to 20224A-7
    table.update({0x2018: "'", 0x2019: "'", 0x201A: "'", 0x201B: "'", 0x2032: "'", 0x201C: '"', 0x201D: '"'})
    table.update({0x0640: ""})  # tatweel (kashida)
    # Arabic letter variants hazm leaves alone: teh marbuta, alef with hamza below, alef wasla.
    table.update({0x0629: "ه", 0x0625: "ا", 0x0671: "ا"})
    for cp in range(0xFF01, 0xFF5F):  # full-width ASCII
        table[cp] = chr(cp - 0xFEE0)
    table.update(zip(range(0xFB00, 0xFB07), ("ff", "fi", "fl", "ffi", "ffl", "st", "st"), strict=True))  # ligatures
    # presentation forms hazm leaves alone: lam-alef ligatures (ﻼ would split a word; إ is ا, as below), teh marbuta
    table.update(zip(range(0xFEF5, 0xFEFD), ("لآ", "لآ", "لأ", "لأ", "لا", "لا", "لا", "لا"), strict=True))
    table.update({0xFE93: "ه", 0xFE94: "ه", 0x2026: "...", 0xFE62: "+"})  # ... ellipsis, small plus
    return table


_CHARS = _char_table()
_NEWLINES = re.compile(r" ?\n[\s]*")
_ARABIC_SCRIPT = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefe]")
_ZWNJ_RUN = re.compile("\u200c{2,}")
_ZWNJ_STRAY = re.compile(f"(?<![{_AR}])\u200c|\u200c(?![{_AR}])")
_SCRIPT_GAP = re.compile(f"(?<=[{_AR}])(?={_OTHER})|(?<={_OTHER})(?=[{_AR}])")


@functools.cache
def _hazm() -> Callable[[str], str]:
    """hazm's Normalizer set up for tagkit, as a function (built on first use: hazm imports slowly)."""
    import hazm
    from hazm.constants import TRANSLATION_DST, TRANSLATION_SRC

    normalizer = hazm.Normalizer(
        correct_spacing=False,  # its tokenizer splits digits out of words: S5MF93Z8NVY -> S 5 MF 93 Z 8 NVY
        remove_diacritics=True,
        remove_specials_chars=True,  # Quranic marks, superscript alef, ...
        decrease_repeated_chars=True,  # عاااالی -> عالی (checked against hazm's lexicon)
        persian_style=False,  # would turn 2.5 into 2٫5 and "x" into «x»
        persian_numbers=False,  # would turn Latin digits into Persian ones
        unicodes_replacement=True,  # ﷼ -> ریال, لا ligatures
        seperate_mi=False,  # splits brand names: مینامی -> می‌نامی, میلنگی -> می‌لنگی
    )
    # Normalizer.normalize() rebuilds its 400-letter translation table on every call (over half of the time
    # tokens() took); these are its steps, in its order, for the options above, with the table built once.
    table = str.maketrans(dict(zip(TRANSLATION_SRC, TRANSLATION_DST, strict=True)))

    def run(text: str) -> str:
        text = text.translate(table)
        text = normalizer.remove_diacritics(text)
        text = normalizer.unicodes_replacement(text)
        text = normalizer.remove_specials_chars(text)
        return normalizer.decrease_repeated_chars(text)

    return run


def normalize(text: str) -> str:
    """Display-quality text: Persian letters, Latin digits, one kind of space, ZWNJ only inside Persian words.

    Arabic ي/ك/ى/ة/إ become ی/ک/ی/ه/ا; Persian and Arabic-Indic digits become 0-9 (`۲٫۵` -> `2.5`);
    diacritics, tatweel and stray zero-width/bidi marks go; spaces are put between Persian letters and
    Latin letters or digits (`۱۲سانتی` -> `12 سانتی`). Case, codes (`S5MF93Z8NVY`), sizes (`XL`, `2.5`,
    `10x20`), punctuation and the writer's choice of space or half-space are kept.
    """
    return _normalize_cached(text) if len(text) <= _CACHED_LEN else _normalize(text)


def _normalize(text: str) -> str:
    if not text:
        return ""
    text = nfc(text).translate(_CHARS)  # (decomposed, a madda or hamza would be taken for a diacritic and dropped)
    if not text.isascii():
        arabic_script = _ARABIC_SCRIPT.search(text) is not None
        if arabic_script:  # hazm is only needed (and imported) for Persian/Arabic text
            text = _hazm()(text)
        if ZWNJ in text:
            text = _ZWNJ_STRAY.sub("", _ZWNJ_RUN.sub(ZWNJ, text))
        if arabic_script:
            text = _SCRIPT_GAP.sub(" ", text)
    text = _HSPACE.sub(" ", text)
    if "\n" in text:
        text = _NEWLINES.sub("\n", text)
    return text.strip()


# Titles, names and values repeat a lot; long texts (descriptions) are not worth keeping in memory.
_CACHED_LEN = 300
_normalize_cached = functools.lru_cache(maxsize=1 << 16)(_normalize)


# ----------------------------------------------------------------------------------------------------
# Tokens


def _token_fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    # Latin letters with accents -> ASCII (Turkish and European brand names: Çanta, Kotön, İpek -> canta ...).
    for cp in (*range(0x00C0, 0x0250), *range(0x1E00, 0x1F00)):
        base = "".join(c for c in unicodedata.normalize("NFKD", chr(cp)) if not unicodedata.combining(c))
        if base and base.isascii() and base.isalpha() and base != chr(cp):
            table[cp] = base
    table.update(str.maketrans("ıøØđĐłŁ", "ioOdDlL"))  # letters without a decomposition
    table.update(str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE"}))
    return table


# Persian spelling variants folded for matching only (display keeps them): آ/أ -> ا, ؤ -> و, ئ -> ی
# (پائیزه = پاییزه, سوئیشرت = سوییشرت), ۀ -> ه, standalone hamza dropped (اعلاء = اعلا).
_FA_FOLD = str.maketrans({"آ": "ا", "أ": "ا", "ؤ": "و", "ئ": "ی", "ۀ": "ه", "ء": ""})
_LAT_FOLD = _token_fold_table()
_DIMENSION = re.compile(r"(?<=\d)(?: ?[×*] ?| x )(?=\d)")  # 45 × 40, 45*40, 45 x 40 -> 45x40 (not 203x 203)
_APOSTROPHE = re.compile(r"(?<=[a-z])'(?:s\b|(?=[a-z]))")  # men's -> men, don't -> dont
_TOKEN = re.compile(f"([{_AR}]+)|({_OTHER}+(?:[-./_,]{_OTHER}+)*)")
_CONNECTOR = re.compile(r"[-./_,]")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DIGIT = re.compile(r"\d")
_LIST_SPLIT = re.compile(r",|(?<!\d)/|/(?!\d)")
# Persian suffixes that are often glued to the word (کلاهدار, شلوارهای) instead of following a half-space.
_GLUED_SUFFIXES = ("های", "ها", "دار")


@functools.cache
def _lexicon() -> dict[str, int]:
    """hazm's word list (word -> corpus frequency), with compounds spelt with a half-space (تی‌شرت).

    Read from hazm's words file as `hazm.utils.words_list` reads it, without building its tag tuples
    (0.44 -> 0.17 s)."""
    from hazm.utils import default_words  # lazy

    lexicon: dict[str, int] = {}
    with Path(default_words).open(encoding="utf-8") as file:
        for line in file:
            fields = line.strip().split("\t")
            if len(fields) == 3:
                lexicon[fields[0]] = int(fields[1])
    return lexicon


@functools.lru_cache(maxsize=1 << 16)
def _persian_word(word: str) -> tuple[str, ...]:
    """Split a glued compound the way its half-space spelling splits, then fold spelling variants."""
    parts: tuple[str, ...] = (word,)
    lexicon = _lexicon()
    if len(word) >= 4 and lexicon.get(word, 0) == 0:
        for i in range(2, len(word) - 1):
            if lexicon.get(word[:i] + ZWNJ + word[i:], 0) > 0:  # تیشرت -> تی‌شرت is a known word
                parts = (word[:i], word[i:])
                break
        else:
            for suffix in _GLUED_SUFFIXES:
                stem = word[: -len(suffix)]
                if word.endswith(suffix) and len(stem) >= 2 and lexicon.get(stem, 0) > 0:
                    parts = (stem, suffix)
                    break
    return tuple(part.translate(_FA_FOLD) for part in parts)


def _code_token(token: str) -> list[str]:
    """Keep codes and numbers whole (`ga-2100-1a1dr`, `2.5`, `36/38`, `1,500` -> `1500`); split plain words
    (`t-shirt`, `xl/xxl`), lists (`40,42`) and slashes not between digits (`se/2`)."""
    if not _CONNECTOR.search(token):
        return [token]
    if _THOUSANDS.fullmatch(token):
        return [token.replace(",", "")]
    out: list[str] = []
    for piece in _LIST_SPLIT.split(token):
        if _DIGIT.search(piece):
            out.append(piece)
        else:
            out.extend(_CONNECTOR.split(piece))
    return [p for p in out if p]


def _tokens(text: str) -> tuple[str, ...]:
    text = _normalize(text).translate(_LAT_FOLD).lower()
    text = _DIMENSION.sub("x", text)
    if "'" in text:
        text = _APOSTROPHE.sub("", text)
    out: list[str] = []
    for persian, other in _TOKEN.findall(text):
        if persian:
            out.extend(_persian_word(persian))
        else:
            out.extend(_code_token(other))
    return tuple(t for t in out if t)


_tokens_cached = functools.lru_cache(maxsize=1 << 16)(_tokens)


def tokens(text: str) -> list[str]:
    """Lowercased word tokens for models and matching; punctuation dropped, codes and numbers kept whole.

    Persian words split at spaces and half-spaces alike (`کیف‌پول`, `کیف پول` -> `کیف`, `پول`); glued
    compounds that hazm's lexicon spells with a half-space split the same way (`تیشرت` -> `تی`, `شرت`), as
    do glued `-ها`, `-های`, `-دار`; آ/أ/ئ/ؤ are folded (`سوئیشرت` = `سوییشرت`). Latin accents are folded,
    `men's` -> `men`, `45 × 40` -> `45x40`, `S5MF93Z8NVY` -> `s5mf93z8nvy`.
    """
    return list(_tokens_cached(text) if len(text) <= _CACHED_LEN else _tokens(text))


ARABIC_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه"})  # Arabic letters Persian writes otherwise
DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "0123456789" * 2)  # Persian and Arabic-Indic digits


def spelling_key(text: str) -> str:
    """`text` with only its spelling undone: what `normalize` undoes (Arabic letters and forms, Persian digits and
    separators, diacritics, tatweel, invisible and direction marks, full-width letters), half-spaces, case and
    spacing (`دسته‌بندي` = `دسته بندی`; `مشکی` with a direction mark after it = `مشکی`). Signs, units and other
    punctuation stay (`+1.5` is not `-1.5`, `10%` is not `10`), unlike `match_key`."""
    return " ".join(normalize(text).replace(ZWNJ, " ").casefold().split())


# Signs that make one value another: a plus or a percent anywhere, a minus before a number (not a hyphen between
# words or numbers: `T-shirt`, `38-40`) or closing a word (`A-`, a blood group).
_SIGNS = re.compile(r"[+%]|(?<![\w.])-(?=\d)|(?<=\w)-(?![\w.])")


def signs_of(text: str) -> str:
    """The signs of `text` that `match_key` drops but that change what it says: `+1.5` -> `+`, `-1.5` -> `-`,
    `10%` -> `%`, `A-` -> `-`; '' for `1.5`, `T-shirt`, `38-40`."""
    written = normalize(text)
    return "".join(_SIGNS.findall(written)) if "+" in written or "-" in written or "%" in written else ""


def wordless_key(text: str) -> str:
    """A key for text with no word or number in it (`+`, `...`, an emoji), whose `match_key` is empty: the text
    itself, normalised and marked, so such texts are told apart and none is taken for a word ('' for no text)."""
    written = normalize(text)
    return f"={written}" if written else ""


def match_key(text: str) -> str:
    """A key equal for names and values written differently.

    `ویژگی ها` = `ویژگی‌ها`, `قهوه ای` = `قهوه‌ای`, `Navy Blue` = `navy  blue`; it is `" ".join(tokens(text))`.
    """
    return " ".join(_tokens_cached(text) if len(text) <= _CACHED_LEN else _tokens(text))
