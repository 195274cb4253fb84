"""tagkit.yaml loading and `--map` overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagkit.config import DEFAULT_SKIP_VALUES, Config, ConfigError, Mapping, load_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tagkit.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_fashion_example_maps_the_styles_columns() -> None:
    config = load_config(EXAMPLES / "fashion.yaml")
    mapping = config.mapping
    assert mapping.id == ("id",)
    assert mapping.title == ("productDisplayName",)
    assert mapping.image == ("image",)
    assert mapping.category == ("masterCategory", "subCategory", "articleType")
    assert mapping.attributes == {"color": ("baseColour",), "usage": ("usage",)}
    assert mapping.description is None  # not set: the `description` column if there is one
    assert mapping.image_folder is None  # images are relative to the products file
    assert config.sections == {}


def test_torob_example_maps_attributes_brand_and_audience() -> None:
    mapping = load_config(EXAMPLES / "torob.yaml").mapping
    assert mapping.id == ("random_key",)
    assert mapping.title == ("title", "persian_name")
    assert mapping.category == ("product",)
    assert mapping.tags == ("attributes",)
    assert mapping.attributes == {"برند": ("brand",), "جنسیت": ("gender", "group")}
    assert "نامشخص" in mapping.skip_values


def test_empty_file_gives_the_default_mapping(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "# nothing yet\n"))
    assert config.mapping == Mapping()
    assert config.mapping.skip_values == DEFAULT_SKIP_VALUES


def test_full_input_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, """
input:
  id: sku
  title: [name, title]
  description: ~
  image: photo
  image_folder: photos
  category: path
  category_separator: /
  tags: labels
  tag_separator: ";"
  attributes: {color: [colour, color]}
  skip_values: [unknown, 0]
  max_title_length: 120
  format: TSV
  delimiter: tab
""")
    mapping = load_config(path).mapping
    assert mapping.id == ("sku",)
    assert mapping.title == ("name", "title")
    assert mapping.description == ()  # explicitly not read
    assert mapping.image_folder == (tmp_path / "photos").resolve()  # relative to the yaml file
    assert mapping.category_separator == "/"
    assert mapping.tags == ("labels",)
    assert mapping.tag_separator == ";"
    assert mapping.attributes == {"color": ("colour", "color")}
    assert mapping.skip_values == ("unknown", "0")
    assert mapping.max_title_length == 120
    assert mapping.format == "tsv"
    assert mapping.delimiter == "\t"


def test_the_persian_semicolon_is_a_delimiter(tmp_path: Path) -> None:
    """Excel on a Persian Windows separates a CSV's fields with the list separator of its regional settings, `؛`;
    tagkit refused it as input.delimiter (a Windows shop audit)."""
    assert load_config(write_config(tmp_path, 'input:\n  delimiter: "؛"\n')).mapping.delimiter == "\u061b"


def test_reserved_sections_are_kept_for_their_owners(tmp_path: Path) -> None:
    path = write_config(tmp_path, "input: {title: name}\ntaxonomy: {file: cats.txt}\ntrain: {attributes: [a, b]}\n")
    config = load_config(path)
    assert isinstance(config, Config) and config.attributes == ("a", "b")
    assert config.sections == {"taxonomy": {"file": "cats.txt"}, "train": {"attributes": ["a", "b"]}}
    assert config.mapping.title == ("name",)


def test_train_extract_is_off_unless_asked(tmp_path: Path) -> None:
    assert load_config(EXAMPLES / "fashion.yaml").extract is False
    assert load_config(EXAMPLES / "torob.yaml").extract is True
    assert load_config(write_config(tmp_path, "train: {extract: false}\n")).extract is False
    config = load_config(write_config(tmp_path, "train:\n  extract: [رنگ, جنس, رنگ, 42]\n"))
    assert config.extract == ("رنگ", "جنس", "42")
    assert config.sections == {"train": {"extract": ["رنگ", "جنس", "رنگ", 42]}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inptu:\n  title: name\n", "unknown section 'inptu' (did you mean 'input'?)"),
        ("input:\n  titel: name\n", "input.titel: unknown key (did you mean 'title'?)"),
        ("input:\n  atributes: {color: c}\n", "(did you mean 'attributes'?)"),
        ("input:\n  title: yes\n", "input.title: True is read by YAML as a true/false value"),
        ("input:\n  attributes: [color]\n", "input.attributes: expected `tag name: column` lines"),
        ("input:\n  attributes: {color: ~}\n", "input.attributes.color: give the column"),
        ("input:\n  max_title_length: -3\n", "input.max_title_length: expected a whole number"),
        ("input:\n  format: xml\n", "input.format: expected one of csv, tsv, jsonl, json"),
        ("input:\n  delimiter: '#'\n", "input.delimiter: expected one of"),
        ("input:\n  skip_values: [n/a, null]\n", "input.skip_values: None is read by YAML as nothing"),
        ("input:\n  title: {a: b}\n", "input.title: expected a column name or a list of them, found a map"),
        ("input: title\n", "`input:` should hold keys like `title: column`, found text"),
        ("- input\n", "expected sections like `input:` at the top, found a list"),
        ("train: {extract: yes please}\n", "train.extract: expected true, false or a list of attribute names"),
        ("train: {extract: []}\n", "train.extract: the list is empty"),
        ("train: {extract: [رنگ, null]}\n", "train.extract: None is not an attribute name"),
        ("train: [extract]\n", "`train:` should hold keys like `extract: true`, found a list"),
        ("train: {extarct: true}\n", "train: unknown key 'extarct' (did you mean 'extract'?)"),
        ("train: {attributes: color}\n", "train.attributes: expected a list of attribute names"),
        ("train: {attributes: []}\n", "train.attributes: the list is empty"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_yaml_syntax_error_says_where(tmp_path: Path) -> None:
    path = write_config(tmp_path, "input:\n  title: [name\n  id: sku\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: not valid YAML"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")


def test_overrides_set_fields_lists_and_attributes() -> None:
    mapping = Mapping(attributes={"usage": ("usage",)}).with_overrides([
        "title=name1",
        "category=masterCategory, subCategory,articleType",
        "attributes.color=baseColour",
        "description=",
        "tag_separator=;",
        "skip_values=n/a,unknown",
    ])
    assert mapping.title == ("name1",)
    assert mapping.category == ("masterCategory", "subCategory", "articleType")
    assert mapping.attributes == {"usage": ("usage",), "color": ("baseColour",)}
    assert mapping.description == ()
    assert mapping.tag_separator == ";"
    assert mapping.skip_values == ("n/a", "unknown")
    assert mapping.id is None  # untouched


def test_override_can_remove_an_attribute() -> None:
    mapping = Mapping(attributes={"usage": ("usage",)}).with_overrides(["attributes.usage="])
    assert mapping.attributes == {}


def test_override_image_folder_is_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Mapping().with_overrides(["image_folder=pics"]).image_folder == (tmp_path / "pics").resolve()


def test_overrides_leave_the_original_alone() -> None:
    original = Mapping(title=("name",))
    original.with_overrides(["title=other"])
    assert original.title == ("name",)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("title", "expected KEY=VALUE"),
        ("=name", "expected KEY=VALUE"),
        ("titel=name", "--map titel: unknown key (did you mean 'title'?)"),
        ("attributes=x", "--map attributes: unknown key"),
        ("attributes.=x", "name the tag"),
        ("max_title_length=lots", "--map max_title_length: expected a whole number"),
        ("format=xls", "--map format: expected one of csv, tsv, jsonl, json"),
    ],
)
def test_bad_override_names_the_key(item: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Mapping().with_overrides([item])
    assert expected in str(caught.value)


def test_columns_default_to_the_field_name() -> None:
    mapping = Mapping(title=("name",), description=())
    assert mapping.columns("title") == (("name",), True)
    assert mapping.columns("id") == (("id",), False)
    assert mapping.columns("description") == ((), True)
    assert {"name", "id", "image", "category", "tags"} <= mapping.used_columns()


def test_find_config_takes_the_given_file_else_the_folders_tagkit_yaml(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from tagkit import find_config

    monkeypatch.chdir(tmp_path)
    assert find_config() == (None, None)
    assert find_config(overrides=["title=name"])[1] == Mapping(title=("name",))
    write_config(tmp_path, "input:\n  title: productDisplayName\n")
    config, mapping = find_config()
    assert config is not None and config.path == Path("tagkit.yaml")
    assert mapping is not None and mapping.title == ("productDisplayName",)
    config, mapping = find_config(EXAMPLES / "fashion.yaml", ["title=name"])
    assert config is not None and config.mapping.id == ("id",)
    assert mapping is not None and (mapping.id, mapping.title) == (("id",), ("name",))
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        find_config(overrides=["title"])


def test_a_tagkit_yaml_read_without_config_is_said_and_recorded(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The working folder's tagkit.yaml maps the columns of whatever file is read; a user importing another
    catalogue there learnt of it only from the problems of every row."""
    import json

    from click.testing import CliRunner

    from tagkit.cli import main
    from tagkit.store import Store

    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, "input:\n  title: productDisplayName\n")
    (tmp_path / "products.csv").write_text("id,productDisplayName\na,Red shirt\n", "utf-8")
    log = tmp_path / "tagkit.log"
    result = CliRunner().invoke(main, ["--log-file", str(log), "import", "products.csv", "--no-images"])
    assert result.exit_code == 0, result.output
    said = f"reading {tmp_path / 'tagkit.yaml'} (tagkit.yaml in the working folder; --config FILE reads another)"
    assert said in result.stderr
    assert f"import started: run #1 in {tmp_path / 'tagkit.db'}, " in log.read_text("utf-8")
    with Store(tmp_path / "tagkit.db") as store:
        args = json.loads(next(store.db.query("select args from runs"))["args"])
    assert args["config"] == str(tmp_path / "tagkit.yaml")


def test_a_folder_named_tagkit_yaml_is_not_a_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It was a traceback (IsADirectoryError) in every command run there."""
    from tagkit import find_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tagkit.yaml").mkdir()
    assert find_config() == (None, None)
    with pytest.raises(ConfigError, match="a folder, not a file"):
        find_config("tagkit.yaml")



def test_yaml_that_pyyaml_chokes_on_is_a_config_error(tmp_path: Path) -> None:
    """Thousands of nested brackets, and a list as a key, gave tracebacks (exit 1); YAML merge keys, valid YAML, were
    refused as invalid."""
    deep = tmp_path / "deep.yaml"
    deep.write_text("input:\n  title: " + "[" * 100_000 + "]" * 100_000 + "\n", "utf-8")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(deep)
    keyed = tmp_path / "keyed.yaml"
    keyed.write_text("input:\n  ? [a, b]\n  : title\n", "utf-8")
    with pytest.raises(ConfigError, match="unhashable key"):
        load_config(keyed)
    huge = tmp_path / "huge.yaml"
    huge.write_text("input:\n  max_title_length: " + "9" * 5000 + "\n", "utf-8")
    with pytest.raises(ConfigError, match="a number thousands of digits long"):
        load_config(huge)
    merged = tmp_path / "merged.yaml"
    merged.write_text("input:\n  <<: {title: name, description: body}\n  description: text\n", "utf-8")
    mapping = load_config(merged).mapping
    assert mapping.title == ("name",) and mapping.description == ("text",)
