"""`tagkit.yaml`: which column of a products file holds which tagkit field, and `--map` overrides.

The file is YAML. Its `input:` section says how to read a products file; other top-level sections
(`taxonomy:`, `train:`, `db:`, `model:`, `output:`) are reserved for other parts of tagkit and kept
as they are in `Config.sections`. Any other top-level key is an error. Every key is optional::

    input:
      id: id                        # a column name, or a list of columns: the first non-empty one is used
      title: [title, name]          # fallbacks: `title` when it is set, else `name`
      description: ~                # `~` (empty): do not read a description even if a column is so named
      image: image                  # a file path (relative to image_folder), never a URL
      image_folder: photos          # relative to this yaml file; default: the products file's folder
      image_archive: images.tar     # image paths name members of this .tar/.zip (relative to the
                                    # products file's folder), read in place without extracting
      category: [masterCategory, subCategory, articleType]   # several columns: the levels of the path
      category_separator: ">"       # one column holding `A > B > C` is split at this
      category_paths_separator: ","  # a cell holding several paths (WooCommerce `Categories`:
                                    # `Clothing > Tshirts, Sale`) is split at this; the deepest path is used
      attributes:                   # tag name: column (or list of fallback columns)
        color: baseColour
        usage: usage
      tags: tags                    # column(s) holding several tags: `color: red | cotton` in CSV, or JSON
      tag_separator: "|"            # between tags (and between values of one attribute) in a CSV cell
      skip_values: [n/a, nan, "null", نامشخص, نامعلوم]   # values meaning "not known": dropped from tags
                                                         # and category
      max_title_length: 500         # longer titles are cut (and reported)
      format: csv                   # csv | tsv | jsonl | json; default: from the extension and content
      delimiter: ","                # CSV only; default: sniffed from the header line (, ; tab | ؛)

Fields left out of `input:` are read from the column named like the field (`id`, `title`,
`description`, `image`, `category`, `tags`; case-insensitive) when the file has one. A tags column
may hold `name: value` pairs or plain values; in JSON a list of strings or of `{name, value(s)}`
objects, or an object `{name: value | [values] | {value: score}}` (Torob `attributes`, AE-110k
`target_scores`).

On the command line, `--map KEY=VALUE` sets one key of `input:` (`--map title=productDisplayName`,
`--map category=masterCategory,subCategory`, `--map attributes.color=baseColour`, `--map description=`
to read none); commas separate the columns of a list.

The `train:` section is read by `tagkit train` (`Config.extract`, `Config.attributes`)::

    train:
      attributes: [رنگ, جنس]        # learn, predict and score only these attributes' tags (by name or a
                                    # taxonomy synonym); left out = every attribute the labels have
      extract: true                 # also learn to read attribute values from titles (tagkit.extract):
                                    # true = every attribute learnt; a list = only these
                                    # (extract: [رنگ, جنس, نوع آستین]); false or left out = off (the default)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import yaml

from tagkit.product import did_you_mean, shown

DEFAULT_CONFIG_NAME = "tagkit.yaml"
INPUT_SECTION = "input"
# Sections other parts of tagkit read; this module keeps them as they are.
RESERVED_SECTIONS = ("taxonomy", "train", "db", "model", "output")
CANONICAL_FIELDS = ("id", "title", "description", "image", "category", "tags")
FORMATS = ("csv", "tsv", "jsonl", "json")
DELIMITERS = {",": ",", ";": ";", "|": "|", "\t": "\t", "tab": "\t", "\\t": "\t", "\u061b": "\u061b"}  # ؛ Persian ;
DEFAULT_SKIP_VALUES = ("n/a", "nan", "null", "نامشخص", "نامعلوم")  # Persian "not specified", "unknown"
DEFAULT_MAX_TITLE_LENGTH = 500


class ConfigError(ValueError):
    """A tagkit.yaml or `--map` that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True)
class Mapping:
    """How to read one products file: for each tagkit field, the column(s) it comes from.

    A column field set to None means "the column named like the field, if the file has one";
    an empty tuple means "do not read this field". For `id`, `title`, `description` and `image` a
    tuple lists fallbacks (the first non-empty value is used); for `category` it lists the levels
    of the path (one column: a path `A > B` split at `category_separator`); for `tags` it lists
    columns that each hold several tags. `attributes` maps a tag name to its fallback columns.
    """

    id: tuple[str, ...] | None = None
    title: tuple[str, ...] | None = None
    description: tuple[str, ...] | None = None
    image: tuple[str, ...] | None = None
    category: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    image_folder: Path | None = None
    image_archive: str | None = None
    category_separator: str = ">"
    category_paths_separator: str | None = None
    tag_separator: str = "|"
    skip_values: tuple[str, ...] = DEFAULT_SKIP_VALUES
    max_title_length: int = DEFAULT_MAX_TITLE_LENGTH
    format: str | None = None
    delimiter: str | None = None

    def columns(self, name: str) -> tuple[tuple[str, ...], bool]:
        """The columns for canonical field `name`, and whether the user chose them (explicit)."""
        chosen: tuple[str, ...] | None = getattr(self, name)
        return (chosen, True) if chosen is not None else ((name,), False)

    def with_overrides(self, items: Iterable[str], origin: str = "--map") -> Mapping:
        """A copy with `KEY=VALUE` items applied (`title=name1`, `attributes.color=baseColour`).

        Relative `image_folder` values are taken from the current folder.
        """
        changes: dict[str, Any] = {}
        attributes = dict(self.attributes)
        for item in items:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"{origin} {shown(item)}: expected KEY=VALUE, "
                                  "e.g. --map title=productDisplayName")
            where = f"{origin} {key}"
            if key.startswith("attributes."):
                tag_name = key.removeprefix("attributes.").strip()
                if not tag_name:
                    raise ConfigError(f"{where}: name the tag, e.g. --map attributes.color=baseColour")
                columns = _split_list(value)
                if columns:
                    attributes[tag_name] = columns
                else:
                    attributes.pop(tag_name, None)
                continue
            if key not in INPUT_KEYS or key == "attributes":
                raise ConfigError(f"{where}: unknown key{did_you_mean(key, INPUT_KEYS)}; "
                                  f"known keys: {', '.join(INPUT_KEYS)} (and attributes.NAME)")
            raw: Any = _split_list(value) if key in LIST_KEYS else value
            changes[key] = _parse_input_value(key, raw, where, base=Path.cwd())
        return replace(self, attributes=attributes, **changes)

    def used_columns(self) -> set[str]:
        """Every column name the mapping mentions (explicitly or by a field's own name)."""
        used: set[str] = set()
        for name in CANONICAL_FIELDS:
            used.update(self.columns(name)[0])
        for columns in self.attributes.values():
            used.update(columns)
        return used


@dataclass(frozen=True)
class Config:
    """A loaded tagkit.yaml: the input mapping, the `train:` keys, and the other (reserved) sections as they are."""

    path: Path | None = None
    mapping: Mapping = field(default_factory=Mapping)
    sections: dict[str, Any] = field(default_factory=dict)
    extract: bool | tuple[str, ...] = False  # train.extract: every attribute (True), these, or none (False)
    attributes: tuple[str, ...] | None = None  # train.attributes: only these (None: every attribute)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML would keep the
    last silently, losing what came under the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: keys given here override those
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):  # a list or mapping as a key: PyYAML says so
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"{shown(key)} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class WrittenBool(str):
    """A YAML true/false word (`yes`, `No`, `on`, `true`) kept as written; `value` is what YAML means by it."""

    value: bool

    def __new__(cls, text: str, value: bool) -> WrittenBool:
        written = super().__new__(cls, text)
        written.value = value
        return written


class _NumbersAsTextLoader(_UniqueKeyLoader):
    """`_UniqueKeyLoader` reading numbers and dates as the text they are written as: a size `1.10` stays `1.10`
    (not 1.1), `010` stays `010` (not 8), `12:30` stays `12:30` (not 750), `2024-01-01` stays text; `yes`,
    `no`, `on`, `off`, `true`, `false` are `WrittenBool`s (text that also says which truth value it means)."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, Any]]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (
            "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
        for first, resolvers in _UniqueKeyLoader.yaml_implicit_resolvers.items()
    }

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> WrittenBool:
        return WrittenBool(node.value, super().construct_yaml_bool(node))


_NumbersAsTextLoader.add_constructor("tag:yaml.org,2002:bool", _NumbersAsTextLoader.construct_yaml_bool)


def load_yaml(path: Path, error: type[Exception], numbers_as_text: bool = False) -> Any:
    """The parsed YAML of a UTF-8 file (BOM or not); `error` names the file, the place and the fix when the
    file cannot be read or parsed. `numbers_as_text`: see `_NumbersAsTextLoader`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: a folder, not a file") from None
    except OSError as reason:
        raise error(f"{path}: cannot be read ({reason.strerror or reason})") from None
    except UnicodeDecodeError as reason:
        raise error(f"{path}: not UTF-8 ({reason.reason} at byte {reason.start}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_NumbersAsTextLoader if numbers_as_text else _UniqueKeyLoader)
    except RecursionError:
        raise error(f"{path}: nested too deeply to read (thousands of levels of lists or mappings)") from None
    except ValueError:  # Python reads no integer of more than 4,300 digits
        raise error(f"{path}: holds a number thousands of digits long, which tagkit does not read") from None
    except yaml.YAMLError as reason:
        mark = getattr(reason, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise error(f"{path}:{where} not valid YAML: {getattr(reason, 'problem', None) or reason}") from None


def load_config(path: str | Path) -> Config:
    """Read and check a tagkit.yaml; raise ConfigError naming the file, key and fix when it is wrong."""
    path = Path(path)
    data = load_yaml(path, ConfigError)
    return parse_config(data, path)


def find_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> tuple[Config | None, Mapping | None]:
    """The config a command runs with: `path`, else ./tagkit.yaml when there is one, else none; and its input
    mapping with the `KEY=VALUE` overrides (`--map`) applied (None: no config and no overrides). Raise
    ConfigError when either is wrong."""
    if path is None and Path(DEFAULT_CONFIG_NAME).is_file():  # a folder of that name is not one
        path = DEFAULT_CONFIG_NAME
    config = load_config(path) if path is not None else None
    mapping = config.mapping if config else None
    overrides = list(overrides)
    if overrides:
        mapping = (mapping or Mapping()).with_overrides(overrides)
    return config, mapping


def parse_config(data: Any, path: Path | None = None) -> Config:
    """Check the already-parsed YAML `data` of a config file (at `path`, for relative folders)."""
    label = str(path) if path else "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected sections like `input:` at the top, found {_kind(data)}")
    known = (INPUT_SECTION, *RESERVED_SECTIONS)
    for key in data:
        if key not in known:
            raise ConfigError(f"{label}: unknown section {shown(key)}{did_you_mean(key, known)}; "
                              f"known sections: {', '.join(known)}")
    base = path.resolve().parent if path else Path.cwd()
    mapping = _parse_input(data.get(INPUT_SECTION), label, base)
    sections = {key: value for key, value in data.items() if key != INPUT_SECTION}
    extract, attributes = _parse_train(data.get("train"), label)
    return Config(path=path, mapping=mapping, sections=sections, extract=extract, attributes=attributes)


TRAIN_KEYS = ("attributes", "extract")


def _parse_train(section: Any, label: str) -> tuple[bool | tuple[str, ...], tuple[str, ...] | None]:
    """`train.extract` (True: every attribute, a tuple of attribute names, or False: off) and `train.attributes`
    (a tuple of attribute names, or None: every attribute)."""
    if section is None:
        return False, None
    if not isinstance(section, dict):
        raise ConfigError(f"{label}: `train:` should hold keys like `extract: true`, found {_kind(section)}")
    for key in section:
        if key not in TRAIN_KEYS:
            raise ConfigError(f"{label}: train: unknown key {shown(key)}{did_you_mean(key, TRAIN_KEYS)}; "
                              f"known keys: {', '.join(TRAIN_KEYS)}")
    extract = section.get("extract")
    where = f"{label}: train.extract"
    if isinstance(extract, list | tuple):
        extract = _attribute_names(extract, where, "write `extract: false`")
    elif not (extract is None or isinstance(extract, bool)):
        raise ConfigError(f"{where}: expected true, false or a list of attribute names (extract: [رنگ, جنس]), "
                          f"found {_kind(extract)} {shown(extract)}")
    attributes = section.get("attributes")
    if attributes is not None:
        attributes = _attribute_names(attributes, f"{label}: train.attributes", "leave `attributes:` out")
    return extract or False, attributes


def _attribute_names(value: Any, where: str, for_none: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where}: expected a list of attribute names ([رنگ, جنس]), found {_kind(value)} "
                          f"{shown(value)}")
    names: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int | float) or not str(item).strip():
            raise ConfigError(f"{where}: {shown(item)} is not an attribute name (write the names as text)")
        names.append(str(item).strip())
    if not names:
        raise ConfigError(f"{where}: the list is empty; name the attributes, or {for_none}")
    return tuple(dict.fromkeys(names))


# -- the input section ---------------------------------------------------------------------

INPUT_KEYS = tuple(f.name for f in fields(Mapping))
LIST_KEYS = frozenset({*CANONICAL_FIELDS, "skip_values"})


def _parse_input(section: Any, label: str, base: Path) -> Mapping:
    if section is None:
        return Mapping()
    if not isinstance(section, dict):
        raise ConfigError(f"{label}: `input:` should hold keys like `title: column`, found {_kind(section)}")
    values: dict[str, Any] = {}
    for key, value in section.items():
        where = f"{label}: input.{key}"
        if key not in INPUT_KEYS:
            raise ConfigError(f"{where}: unknown key{did_you_mean(str(key), INPUT_KEYS)}; "
                              f"known keys: {', '.join(INPUT_KEYS)}")
        values[key] = _parse_input_value(key, value, where, base)
    return Mapping(**values)


def _parse_input_value(key: str, value: Any, where: str, base: Path) -> Any:
    """Check one `input:` value and turn it into the Mapping's type."""
    if key in CANONICAL_FIELDS:
        return _columns(value, where)
    if key == "attributes":
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected `tag name: column` lines, found {_kind(value)}")
        attributes: dict[str, tuple[str, ...]] = {}
        for name, columns in value.items():
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(f"{where}: tag name {shown(name)} should be text (put it in quotes)")
            parsed = _columns(columns, f"{where}.{name}")
            if not parsed:
                raise ConfigError(f"{where}.{name}: give the column the tag comes from")
            attributes[name.strip()] = parsed
        return attributes
    if key == "image_folder":
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a folder path, found {_kind(value)}")
        return (base / Path(value).expanduser()).resolve()
    if key == "image_archive":
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not value.lower().endswith((".tar", ".zip")):
            raise ConfigError(f"{where}: expected a .tar or .zip file name, found {shown(value)}")
        return value
    if key == "category_paths_separator" and value in (None, ""):
        return None
    if key in ("category_separator", "category_paths_separator", "tag_separator"):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: expected a separator like \"|\" (quoted), found {shown(value)}")
        return value.strip()
    if key == "skip_values":
        items = [] if value is None else value if isinstance(value, list | tuple) else [value]
        skip: list[str] = []
        for item in items:
            if isinstance(item, bool) or item is None:
                raise ConfigError(f"{where}: {shown(item)} is read by YAML as {_kind(item)}; put it in quotes")
            if not isinstance(item, str | int | float):
                raise ConfigError(f"{where}: expected a list of values, found {_kind(item)}")
            skip.append(str(item).strip())
        return tuple(skip)
    if key == "max_title_length":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}: expected a whole number of characters above 0, found {shown(value)}")
        return value
    if key == "format":
        if value in (None, "", "auto"):
            return None
        if not isinstance(value, str) or value.lower() not in FORMATS:
            raise ConfigError(f"{where}: expected one of {', '.join(FORMATS)}, found {shown(value)}"
                              f"{did_you_mean(str(value), FORMATS)}")
        return value.lower()
    if key == "delimiter":
        if value in (None, ""):
            return None
        if not isinstance(value, str) or value not in DELIMITERS:
            raise ConfigError(f"{where}: expected one of \",\" \";\" \"|\" tab \"\u061b\", found {shown(value)}")
        return DELIMITERS[value]
    raise ConfigError(f"{where}: unknown key")  # pragma: no cover - INPUT_KEYS and this list agree


def _columns(value: Any, where: str) -> tuple[str, ...]:
    """A column name or list of names as a tuple; None/empty means 'do not read'."""
    if value is None or value == "":
        return ()
    items = value if isinstance(value, list | tuple) else [value]
    columns: list[str] = []
    for item in items:
        if isinstance(item, bool) or item is None:
            raise ConfigError(f"{where}: {shown(item)} is read by YAML as {_kind(item)}, not a column name; "
                              "put the name in quotes")
        if isinstance(item, int | float):
            item = str(item)
        if not isinstance(item, str):
            raise ConfigError(f"{where}: expected a column name or a list of them, found {_kind(item)}")
        if not item.strip():
            raise ConfigError(f"{where}: empty column name")
        columns.append(item.strip())
    return tuple(columns)


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a true/false value ({value})"
    names = {dict: "a mapping", list: "a list", str: "text", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
