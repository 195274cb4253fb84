"""The attribute extractor inside train → predict → eval → review (`train: extract:` in tagkit.yaml), through the
CLI, on 200 real Torob products (and 150 held out), with a taxonomy that knows only some of their attributes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tagkit.cli import main
from tagkit.dataset import Dataset
from tagkit.exitcodes import ExitCode
from tagkit.extract import SAVED_FILE
from tagkit.product import Product, Tag
from tagkit.queue import load_items, model_thresholds, threshold_for
from tagkit.store import Store
from tagkit.tagger import EXTRACTOR_FOLDER, SOURCE_OPTIONS, SOURCES_FILE, Tagger
from tagkit.taxonomy import dump_taxonomy, load_taxonomy, parse_taxonomy
from tagkit.text import match_key
from tagkit.training import MIN_SOURCE_SUPPORT, fit_extractor

REPO = Path(__file__).resolve().parent.parent
TOROB_YAML = REPO / "examples" / "torob.yaml"
KNOWN = ("رنگ", "جنس", "ویژگی‌ها", "نوع آستین", "جنسیت", "نوع کلی")  # the test taxonomy's attributes
UNKNOWN = "طرح"  # an attribute of the labels the test taxonomy does not have


def tagkit(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), "-q", *args], catch_exceptions=False)


def ok(result) -> str:
    assert result.exit_code == ExitCode.OK, result.stderr or result.output
    return result.stdout


@dataclass
class Trained:
    db: Path
    folder: Path
    test_file: Path
    off_yaml: Path
    plain: dict  # train --json of the version trained with `extract: false`
    extracting: dict  # train --json of the version trained with examples/torob.yaml (`extract: true`)
    titles: dict[str, str]


@pytest.fixture(scope="module")
def trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """One database, a taxonomy with a few Torob attributes, and two versions trained on the same 200 products:
    the first without an extractor (as every version before `extract:`), the newest with one."""
    folder = tmp_path_factory.mktemp("extract")
    lines = (shared_data / "torob_attributes" / "products.jsonl").read_text("utf-8").splitlines(keepends=True)
    (folder / "train.jsonl").write_text("".join(lines[:200]), "utf-8")
    (folder / "test.jsonl").write_text("".join(lines[200:350]), "utf-8")
    shipped = (REPO / "taxonomy" / "fa-fashion.yaml").read_text("utf-8")
    taxonomy = parse_taxonomy(yaml.load(shipped, Loader=yaml.CSafeLoader))  # libyaml: 10 times faster
    taxonomy.attributes = [a for a in taxonomy.attributes if a.name in KNOWN]
    taxonomy.categories, taxonomy.category_synonyms = [], {}
    taxonomy.changed()
    (folder / "taxonomy.yaml").write_text(dump_taxonomy(taxonomy), "utf-8")
    config = yaml.safe_load(TOROB_YAML.read_text("utf-8"))
    assert config["train"] == {"extract": True}
    (folder / "off.yaml").write_text(yaml.safe_dump({**config, "train": {"extract": False}}, allow_unicode=True),
                                     "utf-8")
    db = folder / "tagkit.db"
    ok(tagkit(db, "taxonomy", "import", str(folder / "taxonomy.yaml")))
    train = str(folder / "train.jsonl")
    plain = json.loads(ok(tagkit(db, "train", train, "--config", str(folder / "off.yaml"), "--json")))
    extracting = json.loads(ok(tagkit(db, "train", train, "--config", str(TOROB_YAML), "--json")))
    titles = {json.loads(line)["random_key"]: json.loads(line)["title"] for line in lines[200:350]}
    return Trained(db, folder, folder / "test.jsonl", folder / "off.yaml", plain, extracting, titles)


def predictions(trained: Trained, *model: str) -> dict[str, dict]:
    out = ok(tagkit(trained.db, "predict", str(trained.test_file), "--config", str(TOROB_YAML), "--export", "jsonl",
                    *model))
    return {row["id"]: row for row in map(json.loads, out.splitlines())}


def tags_of(row: dict) -> set[str]:
    return {tag for tag, _ in row["tags"]}


def written_in(title: str, tag: str) -> bool:
    return f" {match_key(Tag.parse(tag).value)} " in f" {match_key(title)} "


def test_extracted_tags_of_values_written_in_titles_reach_predict_eval_and_review(trained: Trained) -> None:
    assert trained.extracting["extractor"]["attributes"] and "extractor" not in trained.plain
    plain = predictions(trained, "--model", trained.plain["version"])
    extracting = predictions(trained)
    assert {row["model"] for row in extracting.values()} == {trained.extracting["version"]}
    added = {(pid, tag) for pid, row in extracting.items() for tag in tags_of(row) - tags_of(plain[pid])}
    in_title = {(pid, tag) for pid, tag in added if written_in(trained.titles[pid], tag)}
    assert len(in_title) >= 40, f"only {len(in_title)} extracted tags written in the titles"
    model_only = {name for name, source in trained.extracting["extractor"]["sources"]["chosen"].items()
                  if source == "model"}  # their extracted tags are candidates
    assert {Tag.parse(tag).name for _, tag in in_title} >= {"رنگ", UNKNOWN} - model_only

    csv_rows = csv.DictReader(io.StringIO(ok(tagkit(trained.db, "predict", str(trained.test_file), "--config",
                                                    str(TOROB_YAML), "--export", "csv"))))
    exported = {(row["id"], tag) for row in csv_rows for tag in row["tags"].split(" | ") if tag}
    with Store(trained.db) as store:
        stored = {(item.id, tag) for item in load_items(store) for tag, _ in item.tags}  # what review shows
    assert in_title <= stored
    assert {(pid, tag) for pid, tag in in_title if "|" not in tag} <= exported  # `|` separates tags in CSV

    def tag_scores(version: str) -> dict:
        return json.loads(ok(tagkit(trained.db, "eval", str(trained.test_file), "--config", str(TOROB_YAML), "--json",
                                    "--model", version)))["tags"]

    with_extractor, without = tag_scores(trained.extracting["version"]), tag_scores(trained.plain["version"])
    assert with_extractor["micro_recall"] > without["micro_recall"] + 0.1
    assert with_extractor["micro_f1"] > without["micro_f1"]


def test_a_single_valued_attribute_never_gets_two_values(trained: Trained) -> None:
    tagger = Tagger.load(trained.extracting["path"])
    known = {a.name for a in tagger.taxonomy.attributes}  # the taxonomy decides for these, the models for the rest
    single = {n for n in tagger.single_valued if n not in known} | \
        {a.name for a in tagger.taxonomy.attributes if not a.multi_valued}
    assert "جنسیت" in single
    for row in predictions(trained).values():
        names = Counter(Tag.parse(tag).name for tag in tags_of(row))
        assert all(names[name] <= 1 for name in single), (row["tags"], single)


def test_tags_are_canonical_for_the_taxonomy_and_unknown_attributes_pass_through(trained: Trained) -> None:
    taxonomy = load_taxonomy(trained.folder / "taxonomy.yaml")
    tags = [Tag.parse(tag) for row in predictions(trained).values() for tag in tags_of(row)]
    known = [tag for tag in tags if tag.name in KNOWN]
    assert known and all(taxonomy.known(tag) and taxonomy.canonical(tag) == tag for tag in known)
    assert not any(tag.name in ("ویژگی ها", "توصیفگرها") for tag in tags)  # read as ویژگی‌ها
    shown = tags  # not in the taxonomy: kept, not dropped (among the candidates when its tags are the model's)
    if trained.extracting["extractor"]["sources"]["chosen"].get(UNKNOWN) == "model":
        shown = [Tag.parse(tag) for row in predictions(trained).values() for tag, _ in row["candidates"]]
    assert sum(tag.name == UNKNOWN for tag in shown) >= 10


def test_extract_false_trains_no_extractor_and_such_a_version_still_predicts(trained: Trained) -> None:
    plain = Path(trained.plain["path"])
    manifest = json.loads((plain / "version.json").read_text("utf-8"))
    assert not (plain / EXTRACTOR_FOLDER).exists() and "extractor" not in manifest
    assert "extract" not in manifest["params"] and "extractor" not in manifest["metrics"]
    extracting = json.loads((Path(trained.extracting["path"]) / "version.json").read_text("utf-8"))
    assert (Path(trained.extracting["path"]) / EXTRACTOR_FOLDER / SAVED_FILE).exists()
    assert extracting["params"]["extract"] is True
    oof = extracting["extractor"]["out_of_fold"]
    assert 0 < oof["precision"] <= 1 and 0 < oof["recall"] <= 1
    assert {"support", "precision", "recall", "f1"} <= set(oof["attributes"]["رنگ"])
    assert extracting["metrics"]["extractor"] == {key: oof[key] for key in ("precision", "recall", "f1")}
    rows = predictions(trained, "--model", trained.plain["version"])
    assert len(rows) == 150 and all(row["category"] for row in rows.values())


def test_train_without_a_tagkit_yaml_keeps_the_newest_versions_train_settings(
        trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A nightly `tagkit train` from cron, in a folder without tagkit.yaml, still reads values from titles (it
    trained a version without the extractor, silently)."""
    db = tmp_path / "tagkit.db"
    with sqlite3.connect(trained.db) as source, sqlite3.connect(db) as copy:
        source.backup(copy)
    shutil.copytree(Path(trained.extracting["path"]).parent, tmp_path / "tagkit.db.models")
    monkeypatch.chdir(tmp_path)  # no tagkit.yaml here
    result = CliRunner().invoke(main, ["--db", str(db), "train", "--json"], catch_exceptions=False)
    summary = json.loads(ok(result))
    version = trained.extracting["version"]
    assert summary["settings"] == {"extract": True, "attributes": None, "from": version}
    assert summary["extractor"]["attributes"]
    assert f"training with the `train:` settings of the newest model version {version} (extract: true)" in " ".join(
        result.stderr.split())
    assert summary["version"] == version or json.loads(
        (Path(summary["path"]) / "version.json").read_text("utf-8"))["params"]["extract"] is True
    # a tagkit.yaml with only `input:` (the mapping predict needs) says nothing of training either
    config = yaml.safe_load(TOROB_YAML.read_text("utf-8"))
    for train in ({}, {"train": None}, {"train": {}}):  # none, or `extract: true` commented out of it
        (tmp_path / "tagkit.yaml").write_text(yaml.safe_dump({"input": config["input"], **train},
                                                             allow_unicode=True), "utf-8")
        result = CliRunner().invoke(main, ["--db", str(db), "train", "--json"], catch_exceptions=False)
        assert json.loads(ok(result))["settings"]["extract"] is True, train
        assert f"{'an empty' if train else 'no'} `train:` section in tagkit.yaml: training with the `train:` " \
            "settings of the newest model version" in " ".join(result.stderr.split())


def test_images_without_titles_get_nothing_from_the_extractor(trained: Trained, shared_data: Path) -> None:
    images = shared_data / "torob_attributes" / "images"

    def predict(version: str) -> dict[str, list]:
        out = ok(tagkit(trained.db, "predict", str(images), "--export", "jsonl", "--model", version))
        return {row["id"]: row["tags"] for row in map(json.loads, out.splitlines())}

    with_extractor = predict(trained.extracting["version"])
    assert len(with_extractor) >= 20
    assert with_extractor == predict(trained.plain["version"])


@pytest.mark.parametrize(("value", "message"), [
    ("maybe", "train.extract: expected true, false or a list of attribute names"),
    ("[]", "train.extract: the list is empty"),
    ("[رنگ, {جنس: 1}]", "train.extract: {'جنس': 1} is not an attribute name"),
])
def test_a_bad_extract_value_exits_2_naming_the_key(tmp_path: Path, value: str, message: str) -> None:
    config = tmp_path / "tagkit.yaml"
    config.write_text(f"input:\n  id: random_key\ntrain:\n  extract: {value}\n", "utf-8")
    result = tagkit(tmp_path / "tagkit.db", "train", str(config), "--config", str(config))
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr
    assert not (tmp_path / "tagkit.db.models").exists()


def test_a_list_of_attributes_extracts_only_those(trained: Trained) -> None:
    products = [Product(id=r["random_key"], title=r["title"],
                        tags=tuple(Tag(name, value) for name, values in r["attributes"].items() for value in values))
                for r in map(json.loads, trained.test_file.read_text("utf-8").splitlines())]
    load_taxonomy(trained.folder / "taxonomy.yaml").canonicalise(products)  # as `tagkit import` stores them
    data = Dataset.from_products([p for p in products if p.tags], {}, 8)
    with Store(trained.db) as store:  # its taxonomy says that توصیفگرها is ویژگی‌ها
        extractor, report = fit_extractor(data, ["رنگ", "توصیفگرها", "no such attribute"], store)
    assert extractor is not None and report["attributes"] == ["رنگ", "ویژگی‌ها"]
    assert report["not_in_labels"] == ["no such attribute"]
    assert set(report["out_of_fold"]["attributes"]) == {"رنگ", "ویژگی‌ها"}


def test_review_weighs_extracted_tags_against_the_extractors_thresholds(trained: Trained) -> None:
    """`tagkit review --order uncertain` ranks a product by how near its tags are to their thresholds: for an
    attribute only the extractor fills in, that is the extractor's tuned threshold, not a default 0.5."""
    report = trained.extracting["extractor"]
    with Store(trained.db) as store:
        thresholds = model_thresholds(store, trained.extracting["version"])
        plain = model_thresholds(store, trained.plain["version"])
    extracted_only = [name for name in report["attributes"] if name not in plain]
    assert UNKNOWN in extracted_only
    tuned = {name: report["thresholds"].get(name, report["threshold"]) for name in extracted_only}
    assert {name: thresholds[name] for name in extracted_only} == tuned
    assert any(abs(value - 0.5) > 0.05 for value in tuned.values())
    name = extracted_only[0]
    assert threshold_for(f"{name}: x", "text", thresholds) == pytest.approx(tuned[name])
    assert threshold_for(f"{name}: x", "text", plain) == 0.5  # a version without an extractor: unknown


def held_out_products(trained: Trained) -> Dataset:
    """The 150 test products, their tags canonical as `tagkit import` stores them (no images: none were read)."""
    products = [Product(id=r["random_key"], title=r["title"],
                        tags=tuple(Tag(name, value) for name, values in r["attributes"].items() for value in values))
                for r in map(json.loads, trained.test_file.read_text("utf-8").splitlines())]
    load_taxonomy(trained.folder / "taxonomy.yaml").canonicalise(products)
    return Dataset.from_products(products, {}, 8)


def test_train_chooses_each_attributes_source_on_validation_products_and_stores_it(trained: Trained) -> None:
    report = trained.extracting["extractor"]
    sources = report["sources"]
    assert sources["validation_products"] >= 15 and sources["min_support"] == MIN_SOURCE_SUPPORT
    assert set(sources["micro_f1"]) == {*SOURCE_OPTIONS, "chosen"}
    rows = sources["attributes"]
    assert rows and set(rows) <= set(report["attributes"])
    for name, row in rows.items():
        best = max(row[option] for option in SOURCE_OPTIONS)
        if row["support"] < MIN_SOURCE_SUPPORT or row["both"] == best:
            assert row["chosen"] == "both", (name, row)
        else:
            assert row["chosen"] in SOURCE_OPTIONS and row[row["chosen"]] == best, (name, row)
    assert any(row["support"] >= MIN_SOURCE_SUPPORT for row in rows.values())
    saved = json.loads((Path(trained.extracting["path"]) / EXTRACTOR_FOLDER / SOURCES_FILE).read_text("utf-8"))
    assert set(saved["chosen"]) == set(report["attributes"])  # every attribute the extractor reads
    assert {name: s for name, s in saved["chosen"].items() if s != "both"} == sources["chosen"]
    assert Tagger.load(trained.extracting["path"]).sources == sources["chosen"]
    manifest = json.loads((Path(trained.extracting["path"]) / "version.json").read_text("utf-8"))
    assert manifest["extractor"]["sources"]["chosen"] == sources["chosen"]


def test_a_version_saved_before_the_choice_merges_both_sources_as_before(trained: Trained, tmp_path: Path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained.extracting["path"], old)
    (old / EXTRACTOR_FOLDER / SOURCES_FILE).unlink()
    data = held_out_products(trained)
    taxonomy = load_taxonomy(trained.folder / "taxonomy.yaml")
    loaded = Tagger.load(old, taxonomy)
    assert loaded.sources == {}
    union = Tagger(loaded.model, loaded.extractor, taxonomy)  # the merge of every tag of both
    every_both = Tagger(loaded.model, loaded.extractor, taxonomy, dict.fromkeys(loaded.extractor.attribute_ids,
                                                                                 "both"))
    expected = union.predict(data)
    assert loaded.predict(data) == expected == every_both.predict(data)
    model_only = {(i, tag) for i, p in enumerate(loaded.model.predict(data)) for tag, _ in p.tags}
    merged = {(i, tag) for i, p in enumerate(expected) for tag, _ in p.tags}
    assert len(merged - model_only) >= 40  # the extractor's tags are in


@pytest.mark.parametrize("dropped", ["model", "extractor"])
def test_tags_of_the_source_not_chosen_go_to_the_candidates(trained: Trained, dropped: str) -> None:
    data = held_out_products(trained)
    taxonomy = load_taxonomy(trained.folder / "taxonomy.yaml")
    base = Tagger.load(trained.extracting["path"], taxonomy)
    attributes = ("رنگ", UNKNOWN, "جنسیت", "نوع کلی")
    kept = "extractor" if dropped == "model" else "model"
    tagger = Tagger(base.model, base.extractor, taxonomy, dict.fromkeys(attributes, kept))
    predictions = tagger.model.predict(data)
    titled = [i for i in range(len(data)) if data.has_text[i]]
    from dataclasses import replace

    extractions = base.extractor.predict(replace(data.subset(titled),
                                                 categories=[predictions[i].category or () for i in titled]))
    source = {i: (predictions[i].tags if dropped == "model" else extractions[n].tags) for n, i in enumerate(titled)}
    out = tagger.predict(data)
    checked = 0
    for i, tags in source.items():
        shown = {tag.name for tag, _ in out[i].tags}
        final = {tag for tag, _ in out[i].tags}
        candidates = dict(out[i].candidates)
        for tag, score in tags:
            if tag.name not in attributes or tag in final or not taxonomy.valid([(tag, score)], keep_unknown=True):
                continue
            tag = next(iter(taxonomy.valid([(tag, score)], keep_unknown=True)))
            checked += 1
            assert tag in candidates or (len(candidates) == 10 and min(candidates.values()) >= score), \
                (dropped, tag, out[i].candidates)
        assert not (shown & set(attributes)) - {t.name for t, _ in (extractions[titled.index(i)].tags
                                                                     if kept == "extractor" else predictions[i].tags)}
    assert checked >= 20, checked
