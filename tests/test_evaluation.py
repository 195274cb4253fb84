"""`tagkit eval`'s numbers: the attribute rows agree with the per-tag rows, an id given twice is scored by its last
row however far apart, what cannot be computed is null, and how often a score is right is what `predict` exports.
Real models on the demo catalogue."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_csv

from tagkit.cli import main
from tagkit.evaluation import evaluate
from tagkit.exitcodes import ExitCode
from tagkit.models.metrics import SCORE_STEPS, confidence, per_attribute, tag_metrics
from tagkit.product import Tag
from tagkit.store import Store
from tagkit.text import match_key

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"
CHUNK = 512  # ingest.CHUNK_SIZE: rows further apart than this are in different chunks


def tagkit(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def demo_rows() -> list[dict[str, str]]:
    with (DEMO / "test.csv").open(encoding="utf-8") as f:
        return [{**row, "image": str(DEMO / row["image"]) if row["image"] else ""} for row in csv.DictReader(f)]


def summed_by_attribute(per_tag: list[dict]) -> dict[str, Counter]:
    """The per-tag rows of each attribute added up: true positives, support, predicted."""
    sums: dict[str, Counter] = {}
    for row in per_tag:
        counts = sums.setdefault(Tag.parse(row["tag"]).name, Counter())
        counts["tp"] += round(row["recall"] * row["support"])
        counts["support"] += row["support"]
        counts["predicted"] += row["predicted"]
    return sums


def assert_attribute_rows_are_sums(tags: dict, by_attribute: dict) -> None:
    sums = summed_by_attribute(tags["per_tag"])
    assert set(by_attribute) == set(sums)
    for name, counts in sums.items():
        row = by_attribute[name]
        assert (row["support"], row["predicted"]) == (counts["support"], counts["predicted"]), name
        assert row["micro_precision"] == pytest.approx(counts["tp"] / counts["predicted"] if counts["predicted"]
                                                       else 0.0), name
        assert row["micro_recall"] == pytest.approx(counts["tp"] / counts["support"] if counts["support"]
                                                    else 0.0), name
    tp = sum(c["tp"] for c in sums.values())
    assert tags["micro_precision"] == pytest.approx(tp / sum(c["predicted"] for c in sums.values()))
    assert tags["micro_recall"] == pytest.approx(tp / sum(c["support"] for c in sums.values()))


# -- tags by attribute ---------------------------------------------------------------------------------


def test_a_wrong_value_of_an_attribute_the_product_has_no_label_for_is_a_false_positive_of_it():
    red, green, blue = Tag("color", "Red"), Tag("color", "Green"), Tag("color", "Blue")
    uv, waterproof, sale = Tag("feature", "UV400"), Tag("feature", "Waterproof"), Tag("", "sale")
    truth = [[red, uv], [green], [], [blue, sale]]
    predicted = [[red, uv], [green, waterproof],  # Waterproof on a product with no feature label: wrong
                 [waterproof, red],  # a product without any tag label is not scored, here as in the per-tag rows
                 [red]]
    rows = per_attribute(truth, predicted)
    assert rows["feature"]["micro_precision"] == pytest.approx(1 / 2)  # was 1.0: Waterproof was not counted
    assert rows["feature"]["micro_recall"] == 1.0
    assert rows["feature"]["n"] == 1  # products whose labels have a feature
    assert rows["color"]["micro_precision"] == pytest.approx(2 / 3) and rows["color"]["micro_recall"] == pytest.approx(
        2 / 3)
    assert rows[""]["micro_recall"] == 0.0
    assert_attribute_rows_are_sums(tag_metrics(truth, predicted), rows)


def test_an_attribute_only_predicted_has_a_row_as_its_tags_do():
    truth = [[Tag("color", "Red")]]
    predicted = [[Tag("color", "Red"), Tag("material", "Cotton")]]
    rows = per_attribute(truth, predicted)
    assert rows["material"] == {"n": 0, "support": 0, "predicted": 1, "micro_precision": 0.0, "micro_recall": 0.0,
                                "micro_f1": 0.0}
    assert_attribute_rows_are_sums(tag_metrics(truth, predicted), rows)


def test_demo_attribute_rows_are_the_sums_of_their_per_tag_rows(demo_db: Path):
    with Store(demo_db) as store:
        result = evaluate(store, DEMO / "test.csv")
    assert result["products"] == 100
    assert_attribute_rows_are_sums(result["tags"], result["tags_by_attribute"])
    feature = result["tags_by_attribute"]["feature"]
    assert feature["predicted"] > feature["n"]  # it predicts a feature on products labelled without one


# -- an id given twice -----------------------------------------------------------------------------------


def repeated_file(path: Path, last: dict[str, str], gap: int) -> Path:
    """The demo's test products under new ids, 600 rows, then a row with the id of the first `gap` rows below it
    (`last`: what that row says)."""
    rows = [{**row, "id": f"{row['id']}-{n}"} for n in range(6) for row in demo_rows()]
    rows.insert(gap, {**rows[0], **last})
    return write_csv(path, rows)


def scores(db: Path, path: Path) -> dict:
    result = tagkit(db, "eval", str(path), "--json")
    assert result.exit_code == ExitCode.PARTIAL, result.stderr  # the duplicate id is reported
    assert "duplicate id" in result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("gap", [1, 300, 599])
def test_an_id_whose_last_row_has_no_labels_is_not_scored_however_far_apart(demo_db: Path, tmp_path: Path,
                                                                          gap: int):
    result = scores(demo_db, repeated_file(tmp_path / "dup.csv", {"category": "", "tags": ""}, gap))
    assert result["products"] == 599  # was 600 when the rows were in different chunks: scored by the first row
    assert result["category"]["n"] == result["tags"]["n"] == 599


def test_an_id_relabelled_in_another_chunk_is_scored_by_its_last_label(demo_db: Path, tmp_path: Path):
    rows = demo_rows()
    other = next(row for row in rows if row["category"] != rows[0]["category"])
    relabelled = {"category": other["category"], "tags": other["tags"]}
    near = scores(demo_db, repeated_file(tmp_path / "near.csv", relabelled, 1))
    far = scores(demo_db, repeated_file(tmp_path / "far.csv", relabelled, CHUNK + 80))
    assert far["products"] == near["products"] == 600
    for part in ("category", "tags", "tags_by_attribute"):
        assert far[part] == near[part], part
    assert {"true": other["category"], "predicted": rows[0]["category"], "count": 1} in far["category"]["confused"]


# -- nothing to score ------------------------------------------------------------------------------------


def test_nothing_to_score_is_null_in_json(demo_db: Path, tmp_path: Path):
    rows = [{"id": row["id"], "title": row["title"], "image": row["image"]} for row in demo_rows()[:5]]
    result = tagkit(demo_db, "eval", str(write_csv(tmp_path / "unlabelled.csv", rows)), "--json")
    assert result.exit_code == ExitCode.NO_MODEL
    summary = json.loads(result.stdout)
    assert summary["products"] == 0
    category, tags = summary["category"], summary["tags"]
    assert category["n"] == 0 and tags["n"] == 0
    assert category["accuracy"] is category["top3"] is category["macro_f1"] is None
    for key in ("micro_precision", "micro_recall", "micro_f1", "macro_precision", "macro_recall", "macro_f1",
                "hamming_score", "exact_match"):
        assert tags[key] is None, key


def test_categories_without_tags_leave_the_tag_scores_null_and_out_of_the_table(demo_db: Path, tmp_path: Path):
    rows = [{**row, "tags": ""} for row in demo_rows()[:30]]
    path = write_csv(tmp_path / "categories.csv", rows)
    result = tagkit(demo_db, "eval", str(path), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    summary = json.loads(result.stdout)
    assert summary["category"]["n"] == 30 and 0.0 <= summary["category"]["accuracy"] <= 1.0
    assert summary["tags"]["n"] == 0 and summary["tags"]["micro_f1"] is None
    assert summary["tags_by_attribute"] == {}
    top5 = json.loads(tagkit(demo_db, "eval", str(path), "--json", "--top-k", "5").stdout)["category"]
    assert (summary["category"]["k"], top5["k"]) == (3, 5), "one key for the top-k accuracy, whatever k is"
    assert (summary["category"]["top_k"], top5["top_k"]) == (summary["category"]["top3"], top5["top5"])
    table = tagkit(demo_db, "eval", str(path))
    assert "category accuracy" in table.stdout and "tags micro" not in table.stdout


# -- what the scores stand on -----------------------------------------------------------------------------


def test_the_table_says_how_many_were_trained_on_also_with_quiet(demo_db: Path, tmp_path: Path):
    """-q keeps warnings off stderr (cron): the table itself says that the scores are not honest."""
    train = [{**row, "image": str(DEMO / row["image"]) if row["image"] else ""}
             for row in csv.DictReader((DEMO / "train.csv").open(encoding="utf-8"))][:40]
    path = write_csv(tmp_path / "mixed.csv", [*train, *demo_rows()[:40]])
    result = CliRunner().invoke(main, ["--db", str(demo_db), "-q", "eval", str(path)], catch_exceptions=False)
    assert result.exit_code == ExitCode.OK, result.stderr
    assert result.stderr == ""
    assert "seen in training" in result.stdout and "40 products" in result.stdout
    honest = CliRunner().invoke(main, ["--db", str(demo_db), "-q", "eval", str(DEMO / "test.csv")])
    assert "seen in training" not in honest.stdout


def test_the_same_picture_trained_on_under_another_id_is_said(demo_db: Path, tmp_path: Path):
    """Leakage was seen by id only: training products under other ids (a shop's second export) scored as unseen."""
    train = [{**row, "id": "x-" + row["id"], "image": str(DEMO / row["image"]) if row["image"] else ""}
             for row in csv.DictReader((DEMO / "train.csv").open(encoding="utf-8"))][:40]
    path = write_csv(tmp_path / "again.csv", [*train, *demo_rows()[:20]])
    result = tagkit(demo_db, "eval", str(path), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    scores = json.loads(result.stdout)
    assert scores["seen_in_training"] == 0 and scores["same_picture_in_training"] == sum(bool(r["image"])
                                                                                         for r in train) > 30
    assert "have the picture of a product the model was trained on" in result.stderr
    assert json.loads(tagkit(demo_db, "eval", str(DEMO / "test.csv"), "--json").stdout)["same_picture_in_training"] == 0


def test_eval_says_how_many_products_review_decisions_label_otherwise(demo_db: Path, tmp_path: Path):
    """A reviewer corrected two products of the test file: eval scores the file's labels and train learns the
    decisions, and nothing said they disagree (the learning-loop audit's 9 "errors" were all corrected products)."""
    from tagkit.feedback import Decision, record

    rows = demo_rows()[:20]
    path = write_csv(tmp_path / "part.csv", rows)
    with Store(demo_db) as store:
        model = next(store.db.execute("select id from models"))[0]
        record(store, [Decision(rows[0]["id"], model, "category", "correct", predicted=rows[0]["category"],
                                corrected="Home > Somewhere else", reviewer="ana"),
                       Decision(rows[1]["id"], model, "category", "accept", predicted=rows[1]["category"],
                                reviewer="ana")])  # agrees with the file: not counted
    result = tagkit(demo_db, "eval", str(path), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["decided_otherwise"] == 1
    assert "1 of the 20 products have review decisions that label them otherwise" in result.stderr


def test_scoring_an_older_version_leaves_what_the_newest_learnt_from_to_learn_from(demo_db: Path, tmp_path: Path):
    """`eval --model OLDER` on a file the newest version learnt from made its products test products: the next
    `train` left them out, silently (30 of 503 in the learning-loop audit)."""
    with Store(demo_db) as store:
        older = next(store.db.execute("select id from models order by created_at desc"))[0]
    extra = write_csv(tmp_path / "extra.csv", demo_rows()[:30])
    assert tagkit(demo_db, "train", str(extra)).exit_code == ExitCode.OK
    assert tagkit(demo_db, "eval", "--model", older, str(extra)).exit_code == ExitCode.OK
    with Store(demo_db) as store:
        assert not store.held_out_ids() & {row["id"] for row in demo_rows()[:30]}
    other = write_csv(tmp_path / "other.csv", demo_rows()[30:40])  # neither version learnt these: test products
    assert tagkit(demo_db, "eval", "--model", older, str(other)).exit_code == ExitCode.OK
    with Store(demo_db) as store:
        assert {row["id"] for row in demo_rows()[30:40]} <= store.held_out_ids()


def test_categories_the_model_never_learnt_are_counted_and_named(demo_db: Path, tmp_path: Path):
    rows = demo_rows()[:30]
    unknown = "Apparel > Topwear > Kaftans"
    rows[:3] = [{**row, "category": unknown} for row in rows[:3]]
    rows[3] = {**rows[3], "category": rows[3]["category"].upper().replace(" > ", " >  ")}  # respelt, learnt
    path = write_csv(tmp_path / "unknown.csv", rows)
    result = tagkit(demo_db, "eval", str(path), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    category = json.loads(result.stdout)["category"]
    assert category["not_learnt"] == 3
    assert category["not_learnt_examples"] == [{"category": unknown, "count": 3}]
    assert "3 of the 30 products with a category have one model" in result.stderr and unknown in result.stderr
    table = tagkit(demo_db, "eval", str(path))
    assert "category not learnt" in table.stdout and "Kaftans" in table.stdout
    known = json.loads(tagkit(demo_db, "eval", str(DEMO / "test.csv"), "--json").stdout)["category"]
    assert known["not_learnt"] == 0 and known["not_learnt_examples"] == []


def test_tags_the_model_never_learnt_are_counted_and_named(demo_db: Path, tmp_path: Path):
    """A new season's colour (Teal) in the test file: eval said nothing, its F1 of 0 was the only sign (a season
    audit); a label spelt otherwise than the learnt one is learnt."""
    rows = demo_rows()[:30]
    for row in rows[:4]:
        row["tags"] = "|".join([*(t for t in row["tags"].split("|") if t and not t.startswith("color:")),
                                "color: Teal"])
    respelt = next(i for i, row in enumerate(rows[4:], 4) if "color:" in row["tags"])
    rows[respelt]["tags"] = rows[respelt]["tags"].upper()
    path = write_csv(tmp_path / "teal.csv", rows)
    result = tagkit(demo_db, "eval", str(path), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    tags = json.loads(result.stdout)["tags"]
    assert tags["not_learnt"] == 4 and tags["not_learnt_examples"] == [{"tag": "color: Teal", "count": 4}]
    assert "4 of the true tags are ones model" in result.stderr and "color: Teal (4)" in result.stderr
    assert "tags not learnt" in tagkit(demo_db, "eval", str(path)).stdout
    known = json.loads(tagkit(demo_db, "eval", str(DEMO / "test.csv"), "--json").stdout)["tags"]
    assert known["not_learnt"] == 0 and known["not_learnt_examples"] == []


def test_products_with_neither_title_nor_image_are_counted_as_no_input(demo_db: Path, tmp_path: Path):
    rows = demo_rows()[:20]
    rows[:4] = [{**row, "title": "", "description": "", "image": ""} for row in rows[:4]]
    result = tagkit(demo_db, "eval", str(write_csv(tmp_path / "bare.csv", rows)), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    scores = json.loads(result.stdout)
    assert scores["no_input"] == 4 and scores["products"] == 20
    assert scores["category"]["n"] == 20 and scores["category"]["accuracy"] <= 16 / 20, "counted wrong"
    assert "4 of the 20 products had neither a title nor a readable image" in result.stderr


def test_a_shop_export_with_variant_and_photo_rows_scores_as_the_plain_file(demo_db: Path, tmp_path: Path):
    """Shopify writes a row per further size and photo under the product's handle; each replaced the product (an
    audit: every product lost its title, category, tags and photo, and nothing was left to learn or score). Its
    photos are URLs, downloaded next to the export."""
    from test_catalogue import shopify_export

    rows = list(csv.DictReader((DEMO / "test.csv").open(encoding="utf-8")))
    for row in rows:
        if row["image"]:
            name = Path(row["image"]).name
            (tmp_path / name).symlink_to(DEMO / row["image"])
            row["image"] = f"https://cdn.shopify.com/s/files/1/0533/2089/files/{name}?v=1700000000"
    export = shopify_export(tmp_path, rows)
    config = tmp_path / "tagkit.yaml"
    config.write_text("input:\n  id: Handle\n  title: Title\n  description: Body (HTML)\n  category: Type\n"
                      "  tags: Tags\n  image: Image Src\n  tag_separator: ','\n", "utf-8")
    shop = tagkit(demo_db, "eval", str(export), "--config", str(config), "--json")
    assert shop.exit_code == ExitCode.OK, shop.stderr
    continuations = 200 + sum(1 for row in rows if row["image"])  # two sizes each, and a second photo
    assert f"{continuations} row(s) repeat the id of the row above" in shop.stderr
    assert "duplicate id" not in shop.stderr
    plain = json.loads(tagkit(demo_db, "eval", str(DEMO / "test.csv"), "--json").stdout)
    scores = json.loads(shop.stdout)
    assert scores["products"] == plain["products"] == 100
    for part in ("category", "tags"):
        assert scores[part] == plain[part], part


def test_a_folder_of_photos_with_its_products_file_is_scored_as_the_file(demo_db: Path, tmp_path: Path):
    """`eval` had no `--products` (import, train and predict have it): a team keeping photos in a folder and titles
    in a sheet could not score with the photos (a shop audit)."""
    rows = list(csv.DictReader((DEMO / "test.csv").open(encoding="utf-8")))
    photos = tmp_path / "photos"
    photos.mkdir()
    for row in rows:
        if row["image"]:
            (photos / Path(row["image"]).name).symlink_to(DEMO / row["image"])
    titles = write_csv(tmp_path / "titles.csv", [{**row, "image": Path(row["image"]).name if row["image"] else ""}
                                                 for row in rows if row["image"]])
    folder = tagkit(demo_db, "eval", str(photos), "--products", str(titles), "--json")
    assert folder.exit_code == ExitCode.OK, folder.stderr
    plain = tagkit(demo_db, "eval", str(write_csv(tmp_path / "plain.csv", [
        {**row, "image": str(DEMO / row["image"])} for row in rows if row["image"]])), "--json")
    scores, expected = json.loads(folder.stdout), json.loads(plain.stdout)
    assert scores["products"] == expected["products"] == len(list(photos.iterdir())) > 50
    for part in ("category", "tags"):
        assert scores[part] == expected[part], part
    refused = tagkit(demo_db, "eval", str(titles), "--products", str(titles))
    assert refused.exit_code == ExitCode.USAGE and "is a file" in refused.stderr


# -- spelling ----------------------------------------------------------------------------------------------


def test_a_label_written_differently_scores_as_the_same_tag(demo_db: Path, tmp_path: Path):
    """Labels spelt otherwise than the model writes the tag (case, a space for the half-space, Arabic ي and ك)
    score as the same tags, without a taxonomy: the scores equal those of the file as the model spells it."""
    def respelt(tags: str) -> str:
        return tags.upper().replace("\u200c", " ").replace("ی", "ي").replace("ک", "ك")

    rows = demo_rows()
    assert any("\u200c" in row["tags"] or "ی" in row["tags"] for row in rows)
    plain = scores_of(demo_db, write_csv(tmp_path / "plain.csv", rows))
    other = scores_of(demo_db, write_csv(tmp_path / "other.csv", [{**row, "tags": respelt(row["tags"])}
                                                                    for row in rows]))
    assert other["tags"]["micro_f1"] == plain["tags"]["micro_f1"] > 0.5
    assert other["tags"]["exact_match"] == plain["tags"]["exact_match"]
    # one product spelling a tag its own way changes nothing for the products that spell it as the model does
    one = next(i for i, row in enumerate(rows) if respelt(row["tags"]) != row["tags"])
    mixed = scores_of(demo_db, write_csv(tmp_path / "mixed.csv", [
        {**row, "tags": respelt(row["tags"])} if i == one else row for i, row in enumerate(rows)]))
    assert mixed["tags"]["micro_f1"] == plain["tags"]["micro_f1"]
    assert mixed["tags"]["macro_f1"] == plain["tags"]["macro_f1"]
    def rows(result: dict) -> list[tuple[str, int]]:  # one row per tag, however its labels spell it
        return sorted((match_key(r["tag"]), r["support"]) for r in result["tags"]["per_tag"])

    assert rows(mixed) == rows(plain)


def respelt_path(path: str) -> str:
    """A category path as another team member writes it: half-spaces for spaces inside a level, Arabic ي/ك."""
    return " > ".join(level.replace(" ", "\u200c").replace("ی", "ي").replace("ک", "ك") for level in path.split(" > "))


def test_a_category_written_differently_scores_as_the_same_category(demo_db: Path, tmp_path: Path):
    """`کیف‌پول` for `کیف پول`: counted wrong, and a row of its own in the per-category table."""
    rows = demo_rows()
    assert sum(respelt_path(row["category"]) != row["category"] for row in rows) >= 10
    plain = scores_of(demo_db, write_csv(tmp_path / "plain.csv", rows))
    other = scores_of(demo_db, write_csv(tmp_path / "other.csv", [
        {**row, "category": respelt_path(row["category"])} if i % 2 else row for i, row in enumerate(rows)]))
    assert other["category"]["accuracy"] == plain["category"]["accuracy"] > 0.8
    assert len(other["category"]["per_category"]) == len(plain["category"]["per_category"])


def test_train_learns_a_category_written_two_ways_as_one(tmp_path: Path):
    with (DEMO / "train.csv").open(encoding="utf-8") as f:
        rows = [{**row, "image": str(DEMO / row["image"]) if row["image"] else ""} for row in csv.DictReader(f)]
    respelt = [{**row, "category": respelt_path(row["category"])} if i % 3 == 0 else row for i, row in enumerate(rows)]
    assert sum(a["category"] != b["category"] for a, b in zip(rows, respelt, strict=True)) >= 20
    counts = [json.loads(tagkit(tmp_path / f"{name}.db", "train", str(write_csv(tmp_path / f"{name}.csv", data)),
                                "--json").stdout)["counts"]["categories"] for name, data in
              (("plain", rows), ("respelt", respelt))]
    assert counts[0] == counts[1] == len({row["category"] for row in rows})


def scores_of(db: Path, path: Path) -> dict:
    result = tagkit(db, "eval", str(path), "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    return json.loads(result.stdout)


# -- how often a score is right ------------------------------------------------------------------------------


def test_confidence_of_scores_that_say_how_often_they_are_right_and_of_scores_that_do_not():
    """Ten answers at 0.8 of which 8 are right are calibrated (ECE 0); the same answers all right at 0.55 are
    under-confident by 0.45. `at_least` counts the answers from each step on."""
    right = [True] * 8 + [False] * 2
    honest = confidence([0.8] * 10, right)
    assert honest["ece"] == pytest.approx(0.0, abs=1e-12) and honest["accuracy"] == 0.8
    modest = confidence([0.55] * 10, [True] * 10)
    assert modest["ece"] == pytest.approx(0.45)
    mixed = confidence([0.99, 0.96, 0.91, 0.6, 0.3], [True, True, False, True, False])
    by_step = {row["score"]: row for row in mixed["at_least"]}
    assert [row["score"] for row in mixed["at_least"]] == list(SCORE_STEPS)
    assert (by_step[0.9]["n"], by_step[0.9]["share"], by_step[0.9]["accuracy"]) == (3, 0.6, pytest.approx(2 / 3))
    assert (by_step[0.5]["n"], by_step[0.5]["accuracy"]) == (4, 0.75)
    assert confidence([], [])["ece"] is None and confidence([], [])["at_least"][0]["accuracy"] is None


def test_eval_says_how_often_scores_are_right_as_the_exported_predictions_show(demo_db: Path, tmp_path: Path):
    """`eval --json`'s confidence rows recomputed from `predict --export jsonl` of the same products and their
    labels: the answers scored at least each step, and how many of them are right."""
    result = scores_of(demo_db, DEMO / "test.csv")
    exported = tmp_path / "predictions.jsonl"
    predicted = tagkit(demo_db, "predict", str(DEMO / "test.csv"), "--export", "jsonl", "-o", str(exported))
    assert predicted.exit_code == ExitCode.OK, predicted.stderr
    labels = {row["id"]: row for row in demo_rows()}
    categories, tags = [], []
    for line in exported.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        gold = labels[row["id"]]
        categories.append((row["category_score"], row["category"] == gold["category"]))
        true_tags = {t.strip() for t in gold["tags"].split("|")}
        tags += [(score, tag in true_tags) for tag, score in row["tags"]]
    assert len(categories) == 100 and len(tags) > 100
    for part, answers in (("category", categories), ("tags", tags)):
        shown = result[part]["confidence"]
        assert shown["n"] == len(answers), part
        for step in shown["at_least"]:
            kept = [right for score, right in answers if score >= step["score"]]
            assert step["n"] == len(kept), (part, step)
            assert step["accuracy"] == pytest.approx(sum(kept) / len(kept), abs=1e-9), (part, step)
        assert 0.0 <= shown["ece"] < 0.2, part
    table = tagkit(demo_db, "eval", str(DEMO / "test.csv"))
    assert "how often a score is right" in table.stdout and "calibration error" in table.stdout


def test_persian_names_in_the_tables_keep_the_numbers_of_their_row_in_their_columns(demo_db: Path):
    """A terminal that lays out right-to-left text (GNOME Terminal, Konsole) took the numbers after a Persian tag
    into its run: the row showed its F1 under `tag` and its support under `recall` (a locale audit, checked with
    the Unicode bidi algorithm: 18 of the demo's 19 Persian rows). Each Persian name now stands between
    left-to-right marks, which take no column: the table's lines keep their widths."""
    from rich.cells import cell_len

    from tagkit.report import LRM

    text = tagkit(demo_db, "eval", str(DEMO / "test.csv")).stdout
    rows = [line for line in text.splitlines() if line.startswith("│") and any("\u0600" <= c <= "\u06ff" for c in line)]
    assert len(rows) > 10
    for line in rows:
        persian = line.split("│")[1].strip()
        assert persian.startswith(LRM) and persian.endswith(LRM), line
    widths: list[set[int]] = []
    for line in text.splitlines():  # every line of a table as wide as its others
        if line[:1] in "┏┌":
            widths.append(set())
        if line[:1] in "┏┌┃┡│└":
            widths[-1].add(cell_len(line))
    assert len(widths) >= 4 and all(len(table) == 1 for table in widths), widths
