"""The taxonomy in force: predictions of a model trained without a taxonomy held to one imported or mapped after
training (predict, its cache, eval), review edits and training labels made canonical, the review filters, and
the checks of the taxonomy and feedback commands (`map` refusals, keys given twice, dropped synonyms,
`suggest --commands`, a feedback CSV without times imported twice). On the demo catalogue's real model."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import select
import shlex
import struct
import subprocess
import sys
import termios
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import DEMO, copy_db, write_csv
from test_taxonomy import SMALL  # a small Persian taxonomy: categories, one multi-valued attribute, a colour

from tagkit.cli import main
from tagkit.config import ConfigError, load_config
from tagkit.dataset import products_dataset
from tagkit.exitcodes import ExitCode
from tagkit.feedback import Decision, apply_feedback, feedback_rows, import_csv, record
from tagkit.models import CatalogueModel, Prediction
from tagkit.predicting import PredictedProduct, embedder_for
from tagkit.product import Tag, format_category, parse_category
from tagkit.queue import load_items, matches, review_queue
from tagkit.review import Session, known_values
from tagkit.store import Store
from tagkit.tagger import Tagger
from tagkit.taxonomy import (
    TaxonomyError,
    add_synonym,
    dump_taxonomy,
    import_taxonomy,
    load_taxonomy,
    parse_taxonomy,
    stored_taxonomy,
    taxonomy_fingerprint,
    taxonomy_ids,
)
from tagkit.text import match_key
from tagkit.versions import find_version
from tagkit.vocabulary import suggest

ZWNJ = "\u200c"
TEST_CSV = DEMO / "test.csv"
TRAIN_CSV = DEMO / "train.csv"
TAGKIT = Path(sys.executable).with_name("tagkit")

FEATURE = "ویژگی"  # multi-valued in the demo labels (two values on 36 products): the model learns it so
COLOUR = "رنگ"
GREY_RAW, GREY = "طوسی", "خاکستری"  # the demo labels' spelling, and the taxonomy's value `taxonomy map` joins it to
BROWN = f"قهوه{ZWNJ}ای"
MUGS, CUPS = ("Home", "Kitchen", "Mugs"), ("Home", "Kitchen", "Cups")  # a trained path, its taxonomy name
WALLET = ("مد و پوشاک", "کیف", "کیف پول")

# Imported after the demo model was trained: ویژگی one value only; رنگ open (a value it does not list, as
# طوسی until it is mapped, passes) without طوسی; the trained path Home > Kitchen > Mugs is called Cups.
DEMO_TAXONOMY = f"""
name: demo
language: fa
categories:
  Home:
    Kitchen:
      Cups:
  مد و پوشاک:
    کیف:
      کیف پول:
      کیف دستی:
category_synonyms:
  Home > Kitchen > Mugs: Home > Kitchen > Cups
attributes:
  - name: {FEATURE}
    multi_valued: false
    values: [UV400, اورجینال, ضدآب, نخی, پلاریزه, چرم طبیعی]
  - name: {COLOUR}
    open: true
    values: [آبی, سبز, سرمه{ZWNJ}ای, سفید, {GREY}, قرمز, {BROWN}, مشکی]
"""



def tagkit(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), "-q", *args], catch_exceptions=False)


def ok(result) -> str:
    assert result.exit_code == ExitCode.OK, result.stderr or result.output
    return result.stdout


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def scored(row: dict, name: str) -> dict[str, float]:
    """The values of attribute `name` among a predicted row's tags, with their scores."""
    return {tag.value: score for tag, score in ((Tag.parse(t), s) for t, s in row["tags"]) if tag.name == name}


def tags_of(row: dict) -> set[str]:
    return {tag for tag, _ in row["tags"]}


# -- 1. predict and eval with a taxonomy imported and mapped after training ------------------------------------


@dataclass
class Flow:
    db: Path
    rows: dict[str, dict[str, dict]]  # step -> product id -> exported prediction
    summaries: dict[str, dict]  # step -> `predict --json` summary
    evaluation: dict  # `eval --json` after the map


@pytest.fixture(scope="module")
def flow(demo_predicted: Path, tmp_path_factory: pytest.TempPathFactory) -> Flow:
    """The demo model (trained with no taxonomy) predicting the 100 demo test products: before any taxonomy,
    after DEMO_TAXONOMY is imported, after `taxonomy map طوسی 'رنگ: خاکستری'`, once more unchanged; then eval."""
    folder = tmp_path_factory.mktemp("in_force")
    db = copy_db(demo_predicted, folder / "tagkit.db")
    rows: dict[str, dict[str, dict]] = {}
    summaries: dict[str, dict] = {}

    def predict(step: str) -> None:
        out = folder / f"{step}.jsonl"
        summaries[step] = json.loads(ok(tagkit(db, "predict", str(TEST_CSV), "--json", "-o", str(out))))
        rows[step] = {row["id"]: row for row in map(json.loads, out.read_text("utf-8").splitlines())}

    predict("before")
    ok(tagkit(db, "taxonomy", "import", str(write(folder / "taxonomy.yaml", DEMO_TAXONOMY))))
    predict("imported")
    ok(tagkit(db, "taxonomy", "map", GREY_RAW, f"{COLOUR}: {GREY}"))
    predict("mapped")
    predict("again")
    evaluation = json.loads(ok(tagkit(db, "eval", str(TEST_CSV), "--json")))
    return Flow(db, rows, summaries, evaluation)


def test_a_taxonomy_imported_after_training_leaves_one_value_of_a_single_valued_attribute(flow: Flow) -> None:
    before, after = flow.rows["before"], flow.rows["imported"]
    assert any(len(scored(row, FEATURE)) > 1 for row in before.values()), "the model learnt ویژگی multi-valued"
    assert before.keys() == after.keys()
    for pid, row in after.items():
        raw, kept = scored(before[pid], FEATURE), scored(row, FEATURE)
        assert len(kept) <= 1, row
        if raw:  # the best of the model's values (all of them are in the taxonomy), with its score
            [(value, score)] = kept.items()
            assert raw[value] == score == max(raw.values())
            lost = {f"{FEATURE}: {value}" for value in raw} - {f"{FEATURE}: {value}" for value in kept}
            assert lost <= {tag for tag, _ in row["candidates"]}, "a value that lost is a candidate"


def test_tags_of_attributes_the_taxonomy_does_not_know_pass_through(flow: Flow) -> None:
    known = {FEATURE, COLOUR}
    for pid, row in flow.rows["imported"].items():
        other = {(t, s) for t, s in map(tuple, row["tags"]) if Tag.parse(t).name not in known}
        assert other == {(t, s) for t, s in map(tuple, flow.rows["before"][pid]["tags"])
                         if Tag.parse(t).name not in known}


def test_the_category_and_alternatives_are_the_taxonomys_paths(flow: Flow) -> None:
    """Only the taxonomy's paths: a trained path it calls otherwise is renamed, one it does not have is left out
    (the next best path of the taxonomy takes its place, or none when the model has none of them, or scores them
    below MIN_ALLOWED_SCORE: an upgrade audit saw a wallet filed under backpacks at 0.00)."""
    from tagkit.taxonomy import MIN_ALLOWED_SCORE
    mugs, cups = format_category(MUGS), format_category(CUPS)
    tree = {format_category(path) for path in load_taxonomy(write(flow.db.parent / "t.yaml", DEMO_TAXONOMY)).categories}
    before = flow.rows["before"]
    assert sum(row["category"] == mugs for row in before.values()) >= 5
    assert sum(row["category"] not in tree | {mugs} for row in before.values()) >= 5, "paths outside the tree"
    for pid, row in flow.rows["imported"].items():
        base = before[pid]
        paths = [(cups if path == mugs else path, score) for path, score in
                 [(base["category"], base["category_score"]), *map(tuple, base["alternatives"])]]
        inside = [(path, score) for path, score in paths if path in tree]
        if inside and inside[0][1] >= MIN_ALLOWED_SCORE:
            assert row["category"] == inside[0][0] and row["category_score"] == pytest.approx(inside[0][1])
        else:  # one from further down the model's list, scored at least MIN_ALLOWED_SCORE, or none
            assert row["category"] is None or MIN_ALLOWED_SCORE <= row["category_score"] <= min(
                score for _, score in paths) + 1e-6
        assert row["category"] is None or row["category"] in tree
        assert all(path in tree for path, _ in row["alternatives"])
    assert sum(row["category"] is None for row in flow.rows["imported"].values()) >= 5
    treeless = sum(row["category"] is None and bool(row["tags"] or row["candidates"])
                   for row in flow.rows["imported"].values())
    assert flow.summaries["imported"]["outside_tree"] == treeless >= 5, "predict says how many (a re-audit)"
    assert flow.summaries["before"]["outside_tree"] == 0


def test_a_model_of_tags_alone_is_not_counted_outside_the_tree(tmp_path: Path) -> None:
    """A model trained on tags alone gives no category under any taxonomy: with a category tree imported,
    predict's `outside_tree` stays 0 (it counted every product with a tag, and said the tree had none of the
    model's paths)."""
    with TRAIN_CSV.open(encoding="utf-8", newline="") as f:
        rows = [{key: value for key, value in row.items() if key != "category"} for row in csv.DictReader(f)]
    tags_only = tmp_path / "tags-only.csv"
    with tags_only.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "images").symlink_to(DEMO / "images")
    db = tmp_path / "tagkit.db"
    ok(tagkit(db, "train", str(tags_only)))
    ok(tagkit(db, "taxonomy", "import", str(write(tmp_path / "taxonomy.yaml", DEMO_TAXONOMY))))
    summary = json.loads(ok(tagkit(db, "predict", str(TEST_CSV), "--json")))
    assert summary["products"] == 100 and summary["empty"] == 0
    assert summary["outside_tree"] == 0


def test_a_map_made_after_training_applies_to_the_next_predict(flow: Flow) -> None:
    raw, canonical = f"{COLOUR}: {GREY_RAW}", f"{COLOUR}: {GREY}"
    spelt_raw = {pid for pid, row in flow.rows["imported"].items() if raw in tags_of(row)}
    assert len(spelt_raw) >= 3, "رنگ is open: the raw spelling passes until it is mapped"
    mapped = flow.rows["mapped"]
    assert {pid for pid, row in mapped.items() if canonical in tags_of(row)} == spelt_raw
    assert not any(raw in tags_of(row) for row in mapped.values())
    for pid in spelt_raw:
        assert scored(mapped[pid], COLOUR)[GREY] == scored(flow.rows["imported"][pid], COLOUR)[GREY_RAW]


def test_stored_predictions_are_made_again_after_a_taxonomy_change_and_only_then(flow: Flow) -> None:
    n = len(flow.rows["before"])
    counts = {step: (s["predicted"], s["unchanged"]) for step, s in flow.summaries.items()}
    assert counts == {"before": (n, 0), "imported": (n, 0), "mapped": (n, 0), "again": (0, n)}
    assert flow.rows["again"] == flow.rows["mapped"]
    with Store(flow.db) as store:  # what `tagkit review` shows is the new prediction
        stored = {item.id: item for item in load_items(store)}
    for pid, row in flow.rows["mapped"].items():
        assert [list(tag) for tag in stored[pid].tags] == row["tags"]


def test_eval_scores_the_canonical_prediction_as_right(flow: Flow) -> None:
    per_tag = {row["tag"]: row for row in flow.evaluation["tags"]["per_tag"]}
    grey = per_tag[f"{COLOUR}: {GREY}"]  # the labels say طوسی: read canonical, as the predictions are
    assert grey["support"] >= 3 and grey["predicted"] >= 3 and grey["recall"] > 0.5
    assert f"{COLOUR}: {GREY_RAW}" not in per_tag or per_tag[f"{COLOUR}: {GREY_RAW}"]["predicted"] == 0


def test_eval_counts_true_tags_the_taxonomy_forbids_as_not_learnt(demo_db: Path, tmp_path: Path) -> None:
    """A value the taxonomy's closed attribute does not list is never predicted: eval counts its true tags as not
    learnt, as it counts categories outside the tree (a re-audit: 0, where 5 color: Grey could never be right)."""
    ok(tagkit(demo_db, "taxonomy", "import", str(write(tmp_path / "t.yaml", "attributes:\n  - name: color\n"
                                                       "    values: [Black, Blue]\n"))))
    with TEST_CSV.open(encoding="utf-8") as f:
        colours = Counter(t for row in csv.DictReader(f) for t in row["tags"].split("|") if t.startswith("color: "))
    forbidden = {tag: n for tag, n in colours.items() if tag not in ("color: Black", "color: Blue")}
    assert sum(forbidden.values()) >= 5
    tags = json.loads(ok(tagkit(demo_db, "eval", str(TEST_CSV), "--json")))["tags"]
    assert tags["not_learnt"] == sum(forbidden.values())
    assert {e["tag"]: e["count"] for e in tags["not_learnt_examples"]}.items() <= forbidden.items()


# -- 1. Tagger: predict and merge held to a taxonomy, without an extractor ---------------------------------------


@pytest.fixture(scope="module")
def demo_model(flow: Flow):
    """The demo model and the 100 demo test products as its input."""
    with Store(flow.db) as store:
        found = find_version(store)
        products = [store.product(pid) for pid in sorted(flow.rows["before"])]
        data = products_dataset(store, products, embedder_for(found))
    return CatalogueModel.load(found.path), data


CLOSED = f"""
attributes:
  - name: {FEATURE}
    multi_valued: false
    values: [اورجینال, نخی, UV400]
  - name: {COLOUR}
    values: [آبی, سبز, سرمه{ZWNJ}ای, سفید, {{value: {GREY}, synonyms: [{GREY_RAW}]}}, قرمز, {BROWN}, مشکی]
"""


def test_tagger_without_an_extractor_holds_the_models_tags_to_the_taxonomy(demo_model) -> None:
    model, data = demo_model
    taxonomy = parse_taxonomy(yaml.safe_load(CLOSED))
    raw = Tagger(model).predict(data)
    held = Tagger(model, None, taxonomy).predict(data)
    assert any(Counter(t.name for t, _ in p.tags)[FEATURE] > 1 for p in raw)
    assert any(t == Tag(COLOUR, GREY_RAW) for p in raw for t, _ in p.tags)
    assert any(t.name == FEATURE and not taxonomy.known(t) for p in raw for t, _ in p.tags)
    for before, after in zip(raw, held, strict=True):
        assert after.category == before.category
        known = [(t, s) for t, s in after.tags if t.name in (FEATURE, COLOUR)]
        assert all(taxonomy.known(t) and taxonomy.canonical(t) == t for t, _ in known)
        assert sum(t.name == FEATURE for t, _ in after.tags) <= 1
        assert set(known) <= {(taxonomy.canonical(t), s) for t, s in before.tags}
        assert {item for item in after.tags if item[0].name not in (FEATURE, COLOUR)} == \
            {item for item in before.tags if item[0].name not in (FEATURE, COLOUR)}
        grey = dict(before.tags).get(Tag(COLOUR, GREY_RAW))
        if grey is not None:  # mapped by the taxonomy's synonym, with the model's score
            assert (Tag(COLOUR, GREY), grey) in after.tags


def test_merge_adds_the_scores_of_category_paths_that_become_one(demo_model) -> None:
    model, _ = demo_model
    tagger = Tagger(model, None, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
    watches, jeans = ("Accessories", "Watches"), ("Apparel", "Bottomwear", "Jeans")
    merged = tagger.merge(Prediction(watches, 0.45, [(MUGS, 0.3), (CUPS, 0.2), (jeans, 0.05)]))
    assert merged.category == CUPS and merged.category_score == pytest.approx(0.5)
    assert merged.alternatives == [], "Watches and Jeans are not in the taxonomy's tree"
    nothing = tagger.merge(Prediction(watches, 0.9, [(jeans, 0.1)]))
    assert (nothing.category, nothing.category_score, nothing.alternatives) == (None, 0.0, [])
    no_tree = Tagger(model, None, parse_taxonomy({"attributes": yaml.safe_load(DEMO_TAXONOMY)["attributes"]}))
    free = no_tree.merge(Prediction(watches, 0.45, [(MUGS, 0.3), (jeans, 0.05)]))  # no tree: any path
    assert [free.category, *(path for path, _ in free.alternatives)] == [watches, MUGS, jeans]
    arabic = tagger.merge(Prediction(("مد و پوشاک", "كيف", "كيف پول"), 0.4, [(WALLET, 0.35), (watches, 0.25)]))
    assert (arabic.category, arabic.category_score) == (WALLET, pytest.approx(0.75))


def test_the_category_paths_a_model_can_predict_are_the_taxonomys_names_of_those_it_learnt(demo_model) -> None:
    model, _ = demo_model
    learnt = {tuple(path) for task in model.tasks if task.is_category for path in task.classes}
    assert MUGS in learnt and WALLET in learnt and ("Accessories", "Watches") in learnt
    assert Tagger(model).category_paths() == learnt
    in_tree = Tagger(model, None, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY))).category_paths()
    assert CUPS in in_tree and WALLET in in_tree, "Mugs as the tree's Cups"
    assert MUGS not in in_tree and ("Accessories", "Watches") not in in_tree, "not in the taxonomy's tree"
    no_tree = Tagger(model, None, parse_taxonomy({"attributes": yaml.safe_load(DEMO_TAXONOMY)["attributes"]}))
    assert no_tree.category_paths() == learnt


def test_merge_keeps_the_best_value_of_a_single_valued_attribute_and_the_rest_as_candidates(demo_model) -> None:
    model, _ = demo_model
    assert FEATURE not in model.report["single_valued_attributes"]
    tagger = Tagger(model, None, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
    prediction = Prediction(MUGS, 0.9, tags=[(Tag(FEATURE, "نخی"), 0.7), (Tag("ويژگي", "اورجینال"), 0.8),
                                             (Tag("color", "Red"), 0.9), (Tag(COLOUR, GREY_RAW), 0.6)],
                            candidates=[(Tag(FEATURE, "UV400"), 0.3), (Tag(FEATURE, "ساخته نشده"), 0.2)])
    merged = tagger.merge(prediction)
    assert merged.tags == [(Tag("color", "Red"), 0.9), (Tag(FEATURE, "اورجینال"), 0.8), (Tag(COLOUR, GREY_RAW), 0.6)]
    assert merged.candidates == [(Tag(FEATURE, "نخی"), 0.7), (Tag(FEATURE, "UV400"), 0.3)]  # not allowed: dropped
    assert merged.category == CUPS


# -- 2. train: review corrections learnt as the canonical tag ---------------------------------------------------


def test_train_learns_a_correction_typed_with_arabic_letters_as_the_canonical_tag(demo_db: Path) -> None:
    from tagkit.image import ImageEmbedder
    from tagkit.training import train

    typed = "قهوه اي"  # Arabic ي, a space for the half-space
    with Store(demo_db) as store:
        import_taxonomy(store, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
        labelled = [p for p in store.iter_products() if any(t.name == COLOUR and t.value != BROWN for t in p.tags)]
        corrected = labelled[:6]  # more than the fewest a value needs to be learnt (5)
        record(store, [Decision(p.id, None, "tag", "correct", corrected=f"{COLOUR}: {typed}", reviewer="ana",
                                predicted=str(next(t for t in p.tags if t.name == COLOUR))) for p in corrected])
        before = sum(Tag(COLOUR, BROWN) in p.tags for p in store.iter_products())
        report = train(store, embedder=ImageEmbedder())
    model = CatalogueModel.load(report.path)
    colour = next(task for task in model.tasks if task.name == COLOUR)
    assert BROWN in colour.classes and typed not in colour.classes
    assert int((colour.y == colour.classes.index(BROWN)).sum()) == before + len(corrected)
    assert not any(typed in tag for tag in model.report["tags_too_rare"])


def test_train_says_which_review_decisions_the_taxonomy_does_not_have(demo_db: Path) -> None:
    """A correction to a path outside the taxonomy's tree is learnt but never predicted (predictions keep to the
    tree): train used to say nothing, as import says of a file's labels; the catalogue's own labels, told about at
    import, are not told again."""
    from tagkit.image import ImageEmbedder
    from tagkit.training import train

    with Store(demo_db) as store:
        import_taxonomy(store, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
        products = list(store.iter_products())[:4]
        record(store, [Decision(p.id, None, "category", "correct", predicted=format_category(p.category),
                                corrected="Home > Kitchen > Plates", reviewer="ana") for p in products[:3]])
        record(store, [Decision(products[3].id, None, "category", "correct", corrected=format_category(CUPS),
                                predicted=format_category(products[3].category), reviewer="ana")])
        notes = []
        train(store, embedder=ImageEmbedder(), on_problem=notes.append)
    told = [n for n in notes if n.file == "review decisions"]
    assert [(n.field, n.info) for n in told] == [("category", True)], notes
    assert told[0].message.startswith("3 products have a category the taxonomy does not have "
                                      "(Home > Kitchen > Plates ×3)"), told[0].message


# -- 3. review: what is typed is made canonical; completion knows the taxonomy --------------------------------


def latest_decision(store: Store) -> tuple:
    row = feedback_rows(store)[-1]
    return row["field"], row["decision"], row["predicted"], row["corrected"]


def test_review_holds_predictions_made_before_a_taxonomy_change_to_it(demo_db: Path, tmp_path: Path) -> None:
    """Predictions made before the taxonomy was imported are reviewed as predict would make them now (a curator
    audit: the review sheet still named the old values, and kept two values of an attribute the taxonomy had made
    single-valued); one made under the taxonomy is shown as stored."""
    from tagkit.predicting import stored_record
    from tagkit.queue import held_record, held_records

    with Store(demo_db) as store:
        before = {i.id: i for i in load_items(store)}
        assert any(sum(t.startswith(f"{FEATURE}: ") for t, _ in i.tags) > 1 for i in before.values())
        assert any(i.category == format_category(MUGS) for i in before.values())
        import_taxonomy(store, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
        taxonomy = stored_taxonomy(store)
        after = {i.id: i for i in load_items(store)}
    assert set(after) <= set(before)
    for pid, item in after.items():
        assert sum(t.startswith(f"{FEATURE}: ") for t, _ in item.tags) <= 1, "one value of a single-valued attribute"
        assert item.category is None or taxonomy.has_category(parse_category(item.category))
        assert all(taxonomy.has_category(parse_category(path)) for path, _ in item.alternatives)
        if before[pid].category == format_category(MUGS):
            assert item.category == format_category(CUPS)
            assert item.category_score == pytest.approx(before[pid].category_score)
    sheet = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(sheet)).exit_code == ExitCode.OK
    values = [r["predicted"] for r in csv.DictReader(sheet.open(encoding="utf-8-sig"))]
    assert format_category(MUGS) not in values and format_category(CUPS) in values
    out = tmp_path / "now.jsonl"  # predicted under the taxonomy: held again, unchanged
    ok(tagkit(demo_db, "predict", str(TEST_CSV), "-o", str(out)))
    with Store(demo_db) as store:
        for row in store.db.query("select * from predictions where product_id in (select id from products where "
                                  "source like '%test.csv')"):
            record = stored_record(row, "", None)
            held = held_record(record, taxonomy)

            def tied(pairs: list[tuple[str, float]]) -> list[tuple[float, str]]:  # rounded scores may tie
                return sorted((-score, tag) for tag, score in pairs)
            assert replace(held, candidates=tied(held.candidates)) == \
                replace(record, candidates=tied(record.candidates))
            assert list(held_records([(record, False)], taxonomy)) == [record], "as held: returned as it is"
            assert row["taxonomy"] == taxonomy_fingerprint(taxonomy)
        # A prediction stored with the fingerprint of the taxonomy in force is not held again (review's start-up
        # skips the taxonomy's index, and with it hazm's import); one without it (an older tagkit's) is.
        pid = row["product_id"]
        a, b = (f"{FEATURE}: {value.name}" for value in taxonomy.attribute(FEATURE).values[:2])
        two = json.dumps([[a, 0.9], [b, 0.8]], ensure_ascii=False)
        store.db.execute("update predictions set tags = ? where product_id = ? and created_at = "
                         "(select max(created_at) from predictions where product_id = ?)", [two, pid, pid])
        shown = next(i for i in load_items(store) if i.id == pid)
        assert [t for t, _ in shown.tags if t.startswith(FEATURE)] == [a, b]
        store.db.execute("update predictions set taxonomy = null where product_id = ?", [pid])
        shown = next(i for i in load_items(store) if i.id == pid)
        assert [t for t, _ in shown.tags if t.startswith(FEATURE)] == [a]


def test_a_sheets_review_row_decides_what_the_sheet_showed_under_the_taxonomy(demo_db: Path, tmp_path: Path) -> None:
    """A re-audit: the sheet showed predictions held to a taxonomy imported after them, but its review row accepted
    the stored ones: a category outside the tree the sheet did not show, both values of an attribute made
    single-valued (the sheet showed one), the old spelling of a value. It decides what the sheet showed, as `a`
    does. And a value typed on a tag row under another name of its attribute (`فام: سفید` on a `رنگ` row, `فام`
    mapped to `رنگ`) corrects that tag, not adds one beside it."""
    with Store(demo_db) as store:
        import_taxonomy(store, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
        add_synonym(store, "فام", COLOUR)
        raw = {i.id: i for i in load_items(store, None) if i.id}  # held: as the sheet shows them
        stored = {r["product_id"]: r for r in store.db.query("select * from predictions")}
    twice = next(pid for pid, r in stored.items()
                 if sum(t.startswith(f"{FEATURE}: ") for t, _ in json.loads(r["tags"])) > 1 and pid in raw)
    mugs = next(pid for pid, r in stored.items() if r["category"] == format_category(MUGS) and pid in raw)
    coloured = next(pid for pid, item in raw.items() if pid not in (twice, mugs)
                    and any(t.startswith(f"{COLOUR}: ") for t, _ in item.tags))
    sheet = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(sheet)).exit_code == ExitCode.OK
    rows = [r for r in csv.DictReader(sheet.open(encoding="utf-8-sig")) if r["product_id"] in (twice, mugs, coloured)]
    shown = {pid: {r["predicted"] for r in rows if r["product_id"] == pid and r["kind"] == "predicted"}
             for pid in (twice, mugs, coloured)}
    colour_tag = next(t for t, _ in raw[coloured].tags if t.startswith(f"{COLOUR}: "))
    for r in rows:
        if r["field"] == "product":
            r["decision"] = "accept"
        elif r["product_id"] == coloured and r["predicted"] == colour_tag:
            r["corrected"] = "فام: سفید"
    result = tagkit(demo_db, "feedback", "import", str(write_csv(sheet, rows)))
    assert result.exit_code == ExitCode.OK, result.output
    assert "another attribute" not in result.stderr
    with Store(demo_db) as store:
        decided = {pid: {(r["field"], r["decision"], r["predicted"], r["corrected"]) for r in store.db.query(
            "select * from feedback where product_id = ? and field != 'product'", [pid])} for pid in shown}
    for pid in (twice, mugs):
        assert {value for _, decision, value, _ in decided[pid] if decision == "accept"} == shown[pid]
    assert ("category", "accept", format_category(CUPS), None) in decided[mugs]
    assert ("tag", "correct", colour_tag, "فام: سفید") in decided[coloured]
    with Store(demo_db) as store:
        relabelled = {p.id: p for p in apply_feedback([store.product(twice), store.product(coloured)],
                                                      feedback_rows(store), stored_taxonomy(store))}
    assert sum(t.name == FEATURE for t in relabelled[twice].tags) == 1
    assert [str(t) for t in relabelled[coloured].tags if t.name == COLOUR] == [f"{COLOUR}: سفید"]


def test_edit_makes_a_typed_category_path_canonical(demo_db: Path) -> None:
    with Store(demo_db) as store:
        import_taxonomy(store, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
        item = next(i for i in review_queue(store, order="id")
                    if i.category not in (format_category(WALLET), format_category(CUPS)))
        session = Session(store, [item], "ana")
        assert session.edit("مد و پوشاک > كيف > كيف پول") == f"category set: {format_category(WALLET)}"
        assert latest_decision(store) == ("category", "correct", item.category, format_category(WALLET))
        assert session.edit(format_category(MUGS)) == f"category set: {format_category(CUPS)}"  # a synonym
        assert latest_decision(store) == ("category", "correct", item.category, format_category(CUPS))
        assert session.edit("Home > Teapots") == "category set: Home > Teapots (not in the taxonomy's category tree)"
        assert session.edit("Home > Teapots").endswith("(not in the taxonomy's category tree)"), "typed before"


def test_edit_makes_a_typed_tag_canonical_and_it_replaces_the_predicted_value(demo_db: Path) -> None:
    with Store(demo_db) as store:
        import_taxonomy(store, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
        item = next(i for i in review_queue(store, order="id")
                    if [Tag.parse(t).name for t, _ in i.tags].count(COLOUR) == 1
                    and f"{COLOUR}: {BROWN}" not in {t for t, _ in [*i.tags, *i.candidates]})
        predicted = next(t for t, _ in item.tags if Tag.parse(t).name == COLOUR)
        message = Session(store, [item], "ana").edit(f"{COLOUR}: قهوه اي")
        assert message == f"{predicted} → {COLOUR}: {BROWN}"
        assert latest_decision(store) == ("tag", "correct", predicted, f"{COLOUR}: {BROWN}")


def test_a_typed_tag_replaces_the_value_of_its_attribute_written_another_way(demo_db: Path) -> None:
    name = "کاربرد"
    with Store(demo_db) as store:  # no taxonomy: only the match key says كاربرد (Arabic ك) is کاربرد
        assert stored_taxonomy(store) is None
        values = {Tag.parse(t).value for t in known_values(store)[1] if Tag.parse(t).name == name}
        item = next(i for i in review_queue(store, order="id")
                    if [Tag.parse(t).name for t, _ in i.tags].count(name) == 1)
        shown = {Tag.parse(t).value for t, _ in [*item.tags, *item.candidates] if Tag.parse(t).name == name}
        value = sorted(values - shown)[0]
        predicted = next(t for t, _ in item.tags if Tag.parse(t).name == name)
        Session(store, [item], "ana").edit(f"كاربرد: {value}")
        assert latest_decision(store) == ("tag", "correct", predicted, f"كاربرد: {value}")


def test_a_shown_tag_typed_another_way_is_that_tag(demo_db: Path) -> None:
    with Store(demo_db) as store:  # no taxonomy: the match key alone says the typed tag is the one on screen
        item = next(i for i in review_queue(store, order="id") if any(ZWNJ in t for t, _ in i.tags))
        shown = next(t for t, _ in item.tags if ZWNJ in t)
        session = Session(store, [item], "ana")
        message = session.edit(shown.replace(ZWNJ, " ").replace("ی", "ي"))
        assert message == f"already on: {shown}"
        assert store.db.table("feedback").count == 0, "no correction of a tag to itself"


def test_completion_lists_include_the_taxonomys_paths_and_tags(demo_db: Path) -> None:
    with Store(demo_db) as store:
        categories, tags = known_values(store)
        import_taxonomy(store, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
        taxonomy = stored_taxonomy(store)
        item = review_queue(store, order="id")[0]
        record(store, [Decision(item.id, item.model, "tag", "correct", None, f"{FEATURE}: چیزی دیگر"),
                       Decision(item.id, item.model, "category", "correct", item.category, "Home > Teapots")])
        with_taxonomy = known_values(store, taxonomy)
        in_session = Session(store, review_queue(store, order="id"), "ana").known_values()
    assert with_taxonomy == in_session
    new_categories, new_tags = with_taxonomy
    only_taxonomy = {format_category(CUPS), "مد و پوشاک > کیف > کیف دستی", "مد و پوشاک > کیف"}
    assert only_taxonomy.isdisjoint(categories) and only_taxonomy <= set(new_categories)
    assert f"{COLOUR}: {GREY}" not in tags and f"{COLOUR}: {GREY}" in new_tags
    tree = {format_category(path) for path in taxonomy.categories}
    assert set(new_categories) == tree, "only the tree's paths (a re-audit: typed paths outside it were offered)"
    allowed = {str(taxonomy.canonical(Tag.parse(t))) for t in tags} - {
        str(t) for t in map(Tag.parse, tags) if taxonomy.attribute(t.name) is not None
        and not taxonomy.known(taxonomy.canonical(t))}
    assert allowed <= set(new_tags) and f"{FEATURE}: چیزی دیگر" not in new_tags, "typed, but forbidden: left out"
    assert len({match_key(t) for t in new_tags}) == len(new_tags), "each once, whatever its case"
    assert new_categories == sorted(new_categories) and new_tags == sorted(new_tags)


# -- 4. feedback import: rows without a time, twice -------------------------------------------------------------


@pytest.mark.parametrize("time_column", [False, True], ids=["no created_at column", "empty created_at"])
def test_a_feedback_csv_without_times_imported_twice_adds_nothing_the_second_time(
        demo_db: Path, tmp_path: Path, time_column: bool) -> None:
    with Store(demo_db) as store:
        ids = [r["product_id"] for r in store.db.query("select product_id from predictions order by 1 limit 3")]
    header = "product_id,field,decision,predicted,corrected" + (",created_at" if time_column else "")
    lines = [f"{ids[0]},category,correct,A > B,A > C", f"{ids[1]},tag,reject,{COLOUR}: مشکی,",
             f"{ids[2]},tag,accept,color: Red,", f"{ids[2]},product,accept,,"]
    sheet = write(tmp_path / "sheet.csv", "\n".join([header, *(line + ("," if time_column else "")
                                                              for line in lines)]) + "\n")
    with Store(demo_db) as store:
        first, second = import_csv(store, sheet), import_csv(store, sheet)
        stored = feedback_rows(store)
    assert first.added > len(lines) and first.already_there == 0  # the product row accepts the rest, as `a`
    assert (second.added, second.already_there) == (0, first.added)
    assert len(stored) == first.added and all(row["created_at"] for row in stored)
    third = CliRunner().invoke(main, ["--db", str(demo_db), "feedback", "import", str(sheet)])
    assert third.exit_code == ExitCode.OK and f"0 decisions added, {first.added} already there" in third.stderr


def test_feedback_import_notes_corrections_the_taxonomy_does_not_have(demo_db: Path, tmp_path: Path) -> None:
    """A correction to a value the taxonomy's closed attribute does not allow, or to a path outside its tree, is
    stored (a person's word) with a note, as import notes a file's labels (a curator audit: nothing was said until
    the next train)."""
    with Store(demo_db) as store:
        import_taxonomy(store, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
        ids = [r["product_id"] for r in store.db.query("select product_id from predictions order by 1 limit 3")]
    sheet = write(tmp_path / "sheet.csv", "product_id,field,decision,predicted,corrected\n"
                  f"{ids[0]},category,correct,A > B,Nowhere > Else\n"
                  f"{ids[1]},tag,correct,,{FEATURE}: چیزی دیگر\n"
                  f"{ids[2]},tag,correct,,{FEATURE}: نخي\n")  # allowed: نخی written with an Arabic ي
    result = tagkit(demo_db, "feedback", "import", str(sheet), "--json")
    assert result.exit_code == ExitCode.OK, result.output
    report = json.loads(result.stdout)
    assert report["added"] == 3 and report["rows_failed"] == 0
    messages = [p["message"] for p in report["problems"]]
    assert len(messages) == 2 and all(p["info"] for p in report["problems"])
    assert messages[0].startswith("1 products have a category the taxonomy does not have (Nowhere > Else ×1)")
    assert messages[1].startswith(f"1 tags have a value the taxonomy does not allow ({FEATURE}: چیزی دیگر ×1)")


def test_exported_decisions_with_the_time_column_deleted_are_already_there(demo_db: Path, tmp_path: Path) -> None:
    with Store(demo_db) as store:
        item = review_queue(store, order="id")[0]
        session = Session(store, [item], "ana")
        session.toggle(next(s.key for s in session.screen().suggestions if s.kind == "tag"))
        session.accept_all()
        n = len(feedback_rows(store))
    exported = list(csv.DictReader(io.StringIO(ok(tagkit(demo_db, "feedback", "export")))))
    assert len(exported) == n >= 2
    out = io.StringIO()
    writer = csv.DictWriter(out, [c for c in exported[0] if c != "created_at"], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(exported)
    with Store(demo_db) as store:
        report = import_csv(store, write(tmp_path / "typed.csv", out.getvalue()))
        assert (report.added, report.already_there) == (0, n)
        assert len(feedback_rows(store)) == n


# -- 5. taxonomy map refuses a RAW that is already another entry ----------------------------------------------


@pytest.fixture
def small_db(tmp_path: Path) -> Path:
    db = tmp_path / "small.db"
    ok(tagkit(db, "taxonomy", "import", str(write(tmp_path / "small.yaml", SMALL))))
    return db


@pytest.mark.parametrize(("raw", "canonical", "message"), [
    ("مشکی", f"{COLOUR}: {BROWN}", "'مشکی' is already 'رنگ: مشکی' in the taxonomy"),
    (f"{COLOUR}: مشكي", f"{COLOUR}: {BROWN}", "is already 'رنگ: مشکی' in the taxonomy"),  # Arabic ك, a whole tag
    ("قهوه ای سوخته", f"{COLOUR}: مشکی", f"is already a synonym of 'رنگ: {BROWN}': remove it from that value's "
                                          "synonyms"),  # another value's synonym (not "remove one of the two")
    ("توصیفگرها: وارداتی", f"{COLOUR}: مشکی", f"is already a synonym of 'ویژگی{ZWNJ}ها: وارداتی'"),  # a whole tag
    ("ویژگی ها: اورجینال", f"{COLOUR}: مشکی", f"is already 'ویژگی{ZWNJ}ها: اورجینال'"),  # another attribute's value
    ("مد و پوشاک > کفش", "مد و پوشاک > پیراهن", "is already category 'مد و پوشاک > کفش'"),
    ("مد و پوشاک > كفش", "مد و پوشاک > پیراهن", "is already category 'مد و پوشاک > کفش'"),
    ("کفش", "مد و پوشاک > پیراهن", "is already category 'مد و پوشاک > کفش'"),  # a leaf's name alone is that leaf
])
def test_map_refuses_a_raw_that_is_already_another_entry(small_db: Path, raw: str, canonical: str,
                                                         message: str) -> None:
    with Store(small_db) as store:
        before = dump_taxonomy(stored_taxonomy(store))
        with pytest.raises(TaxonomyError, match=re.escape(message)):
            add_synonym(store, raw, canonical)
        assert dump_taxonomy(stored_taxonomy(store)) == before
    result = tagkit(small_db, "taxonomy", "map", raw, canonical)
    assert result.exit_code == ExitCode.USAGE and message in result.stderr
    with Store(small_db) as store:
        assert dump_taxonomy(stored_taxonomy(store)) == before


def test_map_of_an_entry_to_itself_is_fine(small_db: Path) -> None:
    for raw, canonical in [("مشکی", f"{COLOUR}: مشکی"), (f"{COLOUR}: مشكي", f"{COLOUR}: مشکی"),
                           ("مد و پوشاک > کفش", "مد و پوشاک > کفش"), ("ویژگی ها", f"ویژگی{ZWNJ}ها")]:
        assert tagkit(small_db, "taxonomy", "map", raw, canonical).exit_code == ExitCode.OK, (raw, canonical)
    with Store(small_db) as store:
        taxonomy = stored_taxonomy(store)
    assert taxonomy.canonical(Tag(COLOUR, "مشکی")) == Tag(COLOUR, "مشکی")
    assert taxonomy.canonical(Tag(COLOUR, BROWN)) == Tag(COLOUR, BROWN)
    assert taxonomy.canonical_category(["مد و پوشاک", "کفش"]) == ("مد و پوشاک", "کفش")


# -- 6. a key given twice in one YAML mapping --------------------------------------------------------------------

TWICE = {
    "a category twice": ("categories:\n  مد و پوشاک:\n    کفش:\n    کیف:\n  مد و پوشاک:\n    پیراهن:\n", 5),
    "attributes twice": (f"attributes:\n  - name: {COLOUR}\n    values: [مشکی]\nattributes:\n  - name: color\n", 4),
    "a value's key twice": (f"attributes:\n  - name: {COLOUR}\n    values:\n      - value: مشکی\n"
                            "        synonyms: [سیاه]\n        synonyms: [تیره]\n", 6),
}


@pytest.mark.parametrize("case", TWICE)
def test_a_taxonomy_with_a_key_given_twice_is_refused_naming_the_line(tmp_path: Path, case: str) -> None:
    text, line = TWICE[case]
    path = write(tmp_path / "twice.yaml", text)
    with pytest.raises(TaxonomyError, match="given twice") as error:
        load_taxonomy(path)
    assert str(path) in str(error.value) and f"line {line}," in str(error.value)


def test_taxonomy_import_of_a_file_with_a_key_given_twice_exits_2_and_changes_nothing(small_db: Path,
                                                                                       tmp_path: Path) -> None:
    with Store(small_db) as store:
        ids, before = taxonomy_ids(store), dump_taxonomy(stored_taxonomy(store))
    twice = write(tmp_path / "twice.yaml", SMALL.replace("    پیراهن:\n", "    پیراهن:\n  مد و پوشاک:\n    کیف:\n"))
    result = tagkit(small_db, "taxonomy", "import", str(twice))
    assert result.exit_code == ExitCode.USAGE
    assert "twice.yaml" in result.stderr and "given twice" in result.stderr
    with Store(small_db) as store:
        assert taxonomy_ids(store) == ids and dump_taxonomy(stored_taxonomy(store)) == before


def test_a_config_with_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "tagkit.yaml", "input:\n  id: random_key\ninput:\n  title: name\n")
    with pytest.raises(ConfigError, match="given twice") as error:
        load_config(path)
    assert str(path) in str(error.value) and "line 3," in str(error.value)
    result = tagkit(tmp_path / "t.db", "import", str(TEST_CSV), "--config", str(path))
    assert result.exit_code == ExitCode.USAGE and "given twice" in result.stderr


# -- 7. re-import: synonyms added by `map` that the file lacks are reported --------------------------------------


def test_import_lists_the_mapped_synonyms_the_file_drops(tmp_path: Path) -> None:
    file = write(tmp_path / "small.yaml", SMALL)
    with Store(tmp_path / "t.db") as store:
        import_taxonomy(store, load_taxonomy(file))
        assert import_taxonomy(store, load_taxonomy(file)).dropped_synonyms == []
        add_synonym(store, "سیاه", f"{COLOUR}: مشکی")
        add_synonym(store, "پوشاک > کفش", "مد و پوشاک > کفش")
        assert stored_taxonomy(store).canonical(Tag(COLOUR, "سیاه")) == Tag(COLOUR, "مشکی")
        counts = import_taxonomy(store, load_taxonomy(file))
        dropped = counts.dropped_synonyms  # as `map` takes them
        assert sorted(dropped) == sorted(["پوشاک > کفش -> مد و پوشاک > کفش", f"سیاه -> {COLOUR}: مشکی"])
        assert counts.as_dict()["dropped_synonyms"] == 2
        assert stored_taxonomy(store).canonical(Tag(COLOUR, "سیاه")) == Tag(COLOUR, "سیاه")  # gone, as reported


def test_a_value_swapped_with_its_synonym_drops_no_synonym(tmp_path: Path) -> None:
    """`Navy Blue` (synonym `Navy`) rewritten as `Navy` (synonym `Navy Blue`): the same entry, renamed, and no
    synonym dropped (a curator audit: a note said `Navy -> color: Navy` was dropped)."""
    text = ("attributes:\n  - name: color\n    values: [{value: Navy Blue, synonyms: [Navy]}, Black]\n")
    swapped = text.replace("{value: Navy Blue, synonyms: [Navy]}", "{value: Navy, synonyms: [Navy Blue]}")
    with Store(tmp_path / "t.db") as store:
        import_taxonomy(store, load_taxonomy(write(tmp_path / "a.yaml", text)))
        ids = taxonomy_ids(store)
        counts = import_taxonomy(store, load_taxonomy(write(tmp_path / "b.yaml", swapped)))
        assert counts.dropped_synonyms == [] and counts.renamed == 1
        assert taxonomy_ids(store)[("value", "color", "Navy")] == ids[("value", "color", "Navy Blue")]


def test_cli_import_notes_the_dropped_synonyms_on_stderr(small_db: Path, tmp_path: Path) -> None:
    file = write(tmp_path / "small.yaml", SMALL)
    quiet = CliRunner().invoke(main, ["--db", str(small_db), "taxonomy", "import", str(file)])
    assert quiet.exit_code == ExitCode.OK and "note:" not in quiet.stderr
    ok(tagkit(small_db, "taxonomy", "map", "سیاه", f"{COLOUR}: مشکی"))
    result = CliRunner().invoke(main, ["--db", str(small_db), "taxonomy", "import", str(file), "--json"])
    assert result.exit_code == ExitCode.OK
    assert "note: 1 synonym in the database not in" in result.stderr and f"سیاه -> {COLOUR}: مشکی" in result.stderr
    assert json.loads(result.stdout)["dropped_synonyms"] == [f"سیاه -> {COLOUR}: مشکی"]


# -- 8. taxonomy suggest --commands: each map line once ----------------------------------------------------------


def test_suggest_commands_print_each_map_line_once(small_db: Path, tmp_path: Path) -> None:
    records = [{"id": str(i), "title": "x", "attributes": attributes} for i, attributes in enumerate([
        *[{COLOUR: [BROWN], f"ویژگی{ZWNJ}ها": ["اورجینال"]}] * 5,
        *[{COLOUR: ["قهوهای"], "ويژگيها": ["اورجینال"]}] * 2,  # no space: not the taxonomy's spelling
        {COLOUR: ["مشکی"], "ویژگی": ["وارداتی"]},
    ])]
    products = write(tmp_path / "products.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    with Store(small_db) as store:
        taxonomy = stored_taxonomy(store)
    found = suggest([Tag(name, value) for r in records for name, values in r["attributes"].items()
                     for value in values], taxonomy)
    spellings = [(s.kind, s.attribute, text) for s in found if s.in_taxonomy for text, _ in s.variants
                 if text != s.canonical]
    assert len(spellings) == len(set(spellings)) and (("value", COLOUR, "قهوهای") in spellings)
    result = tagkit(small_db, "taxonomy", "suggest", str(products), "--map", "tags=attributes", "--commands")
    lines = ok(result).splitlines()
    assert lines and all(line.startswith("tagkit taxonomy map ") for line in lines)
    assert len(lines) == len(set(lines)), lines
    assert sum("قهوهای" in line for line in lines) == 1
    for line in lines:  # each one runs, and then nothing is left to map
        raw, canonical = shlex.split(line)[3:]
        assert tagkit(small_db, "taxonomy", "map", raw, canonical).exit_code == ExitCode.OK, line
    again = tagkit(small_db, "taxonomy", "suggest", str(products), "--map", "tags=attributes", "--commands")
    assert ok(again).strip() == ""
    pattern = write(tmp_path / "pattern.jsonl", "\n".join(json.dumps(
        {"id": str(i), "title": "x", "attributes": {"طرح": [value]}}, ensure_ascii=False)
        for i, value in enumerate(["راه راه", "راه راه", f"راه{ZWNJ}راه"])))  # an attribute the taxonomy lacks
    unlisted = CliRunner().invoke(main, ["--db", str(small_db), "taxonomy", "suggest", str(pattern), "--map",
                                         "tags=attributes", "--commands"])
    assert ok(unlisted).strip() == "", "nothing to map to"
    assert "note: none of the 1 suggestions keeps a spelling the taxonomy has" in unlisted.stderr
    alone = CliRunner().invoke(main, ["--db", str(tmp_path / "none.db"), "taxonomy", "suggest", str(products),
                                      "--map", "tags=attributes", "--commands"])  # no taxonomy: a note says why
    assert ok(alone).strip() == "" and "there is no taxonomy in" in alone.stderr


# -- 9. review --tag / --category by match key, and exit 4 when nothing matches -------------------------------


def predicted(category: str, *tags: str) -> PredictedProduct:
    return PredictedProduct("p1", "کیف", None, "m", category, 0.9, [], [(t, 0.8) for t in tags], [])


def test_review_filters_compare_by_match_key() -> None:
    item = predicted("مد و پوشاک > کیف > کیف پول", f"ویژگی{ZWNJ}ها: اورجینال", f"{COLOUR}: {BROWN}")
    assert matches(item, tag="ویژگی ها: اورجینال")  # a space for the half-space
    assert matches(item, tag="ويژگي ها")  # Arabic ي, the attribute name alone
    assert matches(item, tag=f"{COLOUR}: قهوه اي")
    assert matches(item, category="مد و پوشاک > كيف")  # Arabic ك
    assert matches(item, category="مد و پوشاک > کیف > كيف پول", tag="ویژگی ها")
    assert not matches(item, tag="ویژگی ها: وارداتی")
    assert not matches(item, category="مد و پوشاک > کفش")
    assert not matches(item, category="مد و پوشاک > کیف > کیف پول > چرمی")


ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>78]|\r")


def review_on_a_terminal(db: Path, *args: str, timeout: float = 60.0) -> tuple[int, str]:
    """`tagkit review ARGS` on a pseudo-terminal: q is pressed once a screen is drawn; the exit code and all
    that was printed (escape codes removed)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 110, 0, 0))
    proc = subprocess.Popen([str(TAGKIT), "--db", str(db), "review", "--reviewer", "tester", *args],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            env={**os.environ, "TERM": "xterm-256color"})
    os.close(slave)
    raw, pressed = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.2)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the child is gone
                data = b""
            if not data:
                break
            raw += data
            if not pressed and "q quit" in ANSI.sub("", raw.decode("utf-8", "replace")):
                os.write(master, b"q")
                pressed = True
        else:
            raise AssertionError(f"review did not finish: {ANSI.sub('', raw.decode('utf-8', 'replace'))[-2000:]}")
        return proc.wait(timeout=30), ANSI.sub("", raw.decode("utf-8", "replace"))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.mark.parametrize("args", [("--tag", "no such: tag"), ("--category", "Nowhere > Else"),
                                  ("--category", "Home", "--tag", "رنگ")])
def test_review_exits_4_when_the_filter_matches_no_predicted_product(demo_db: Path, args: tuple[str, ...]) -> None:
    code, text = review_on_a_terminal(demo_db, *args)
    assert code == ExitCode.NO_MODEL == 4
    given = " and ".join(f"{flag} {value!r}" for flag, value in zip(args[::2], args[1::2], strict=True))
    assert f"error: no predicted product matches {given}" in text


def test_review_filter_written_with_arabic_letters_finds_the_products(demo_db: Path) -> None:
    with Store(demo_db) as store:
        wanted = len(review_queue(store, tag="کاربرد: روزمره"))
    assert wanted >= 2
    code, text = review_on_a_terminal(demo_db, "--order", "id", "--tag", "كاربرد: روزمره")  # Arabic ك
    assert code == ExitCode.OK
    assert f"product 1 of {wanted}:" in text


def test_review_filters_written_as_a_taxonomy_synonym_find_the_products(demo_db: Path) -> None:
    """The predictions are held to the taxonomy (its names), so a filter written with a synonym found nothing (a
    re-audit: `--tag "color: Navy Blue"` where the taxonomy calls it `color: Navy`); filters are its names too."""
    with Store(demo_db) as store:
        import_taxonomy(store, parse_taxonomy(yaml.safe_load(DEMO_TAXONOMY)))
        add_synonym(store, "فام", COLOUR)
        by_path = {i.id for i in review_queue(store, category=format_category(CUPS))}
        by_tag = {i.id for i in review_queue(store, tag=COLOUR)}
        assert len(by_path) >= 3 and len(by_tag) >= 3
        assert {i.id for i in review_queue(store, category=format_category(MUGS))} == by_path  # a path synonym
        assert {i.id for i in review_queue(store, tag="فام")} == by_tag  # an attribute's other name
        colour = next(t for i in review_queue(store, tag=COLOUR) for t, _ in i.tags if t.startswith(f"{COLOUR}: "))
        value = colour.split(": ", 1)[1]
        assert {i.id for i in review_queue(store, tag=f"فام: {value}")} == \
            {i.id for i in review_queue(store, tag=colour)}
    sheet = tagkit(demo_db, "review", "--sheet", "-", "--category", format_category(MUGS))
    assert sheet.exit_code == ExitCode.OK and format_category(CUPS) in sheet.stdout


def test_review_of_a_filter_whose_products_are_all_reviewed_is_not_an_error(demo_db: Path) -> None:
    with Store(demo_db) as store:
        counts = Counter(t for item in load_items(store) for t, _ in item.tags)
        tag = min(counts, key=lambda t: (counts[t], t))
        items = review_queue(store, tag=tag)
        record(store, [Decision(i.id, i.model, "product", "accept", reviewer="ana") for i in items])
    code, text = review_on_a_terminal(demo_db, "--tag", tag)
    assert code == ExitCode.OK
    assert "nothing left to review" in text and "error" not in text


def test_a_decision_made_before_the_taxonomy_renamed_its_value_shows_on_the_renamed_line(demo_db: Path,
                                                                                       tmp_path: Path) -> None:
    """Alice rejected `رنگ: طوسی`; `taxonomy map` has since joined that spelling to `رنگ: خاکستری`. The labels read
    her reject in the taxonomy's names, but the screen and the sheet matched it as written: `خاکستری` showed
    undecided (so `a` accepted it), with a second line for `طوسی` rejected."""
    raw, grey = f"{COLOUR}: {GREY_RAW}", f"{COLOUR}: {GREY}"
    with Store(demo_db) as store:
        item = next(i for i in load_items(store) if raw in dict(i.tags))
        record(store, [Decision(item.id, item.model, "tag", "reject", predicted=raw, reviewer="alice")])
    ok(tagkit(demo_db, "taxonomy", "import", str(write(tmp_path / "t.yaml", DEMO_TAXONOMY))))
    ok(tagkit(demo_db, "taxonomy", "map", GREY_RAW, grey))
    with Store(demo_db) as store:
        held = next(i for i in load_items(store) if i.id == item.id)
        assert grey in dict(held.tags)
        lines = {s.value: (s.on, s.decision) for s in Session(store, [held], "bob").screen().suggestions}
    assert lines[grey] == (False, "reject") and raw not in lines
    sheet = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(sheet)).exit_code == ExitCode.OK
    rows = [r for r in csv.DictReader(sheet.open(encoding="utf-8-sig")) if r["product_id"] == item.id]
    [shown] = [r for r in rows if r["predicted"] == grey]
    assert shown["kind"] == "predicted" and shown["decided_before"].startswith("reject by alice at ")
    assert not any(r["kind"] == "decided" for r in rows)
