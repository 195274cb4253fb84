"""Review decisions: how they become labels, their CSV round trip, and a correction changing the next model."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import sqlite3
import time
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_csv

from tagkit.cli import main
from tagkit.exitcodes import ExitCode
from tagkit.feedback import Decision, apply_feedback, feedback_rows, record
from tagkit.product import Product, Tag
from tagkit.store import Store

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


def tagkit(db: Path, *args: str):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def row(field: str, decision: str, predicted: str | None = None, corrected: str | None = None, at: str = "",
        product: str = "p1") -> dict:
    return {"product_id": product, "field": field, "decision": decision, "predicted": predicted,
            "corrected": corrected, "created_at": at, "id": 0}


SHOE = Product("p1", "Runner", category=("Shoes", "Sports"), tags=(Tag("color", "Red"), Tag("usage", "Sports")))


def test_decisions_override_catalogue_labels():
    [p] = apply_feedback([SHOE], [
        row("category", "correct", "Shoes > Sports", "Shoes > Running", at="2026-01-01T10:00:00+00:00"),
        row("tag", "reject", "color: Red", at="2026-01-01T10:00:01+00:00"),
        row("tag", "correct", None, "color: Blue", at="2026-01-01T10:00:02+00:00"),
        row("tag", "accept", "feature: Waterproof", at="2026-01-01T10:00:03+00:00"),
    ])
    assert p.category == ("Shoes", "Running")
    assert set(map(str, p.tags)) == {"usage: Sports", "color: Blue", "feature: Waterproof"}
    assert p.title == "Runner"


def test_latest_decision_per_field_wins():
    rows = [row("category", "correct", "Shoes > Sports", "Shoes > Running", at="2026-01-01T10:00:05+00:00"),
            row("category", "accept", "Bags", at="2026-01-01T10:00:09+00:00"),
            row("tag", "accept", "color: Green", at="2026-01-01T10:00:01+00:00"),
            row("tag", "reject", "color: Green", at="2026-01-01T10:00:02+00:00"),
            row("tag", "correct", "usage: Sports", "usage: Casual", at="2026-01-01T10:00:03+00:00")]
    [p] = apply_feedback([SHOE], reversed(rows))  # the order given does not matter, the time does
    assert p.category == ("Bags",)
    assert set(map(str, p.tags)) == {"color: Red", "usage: Casual"}


def test_a_decision_is_about_a_label_however_either_is_spelt(tmp_path: Path):
    """A sheet typed with a space for the half-space, a value renamed by the taxonomy after the review: the
    decision used to miss the label, leaving two values of a single-valued attribute."""
    from tagkit.taxonomy import load_taxonomy

    product = Product("p1", "پیراهن", category=("پوشاک", "پیراهن"), tags=(Tag("رنگ", "سرمه‌ای"), Tag("جنس", "نخ")))
    [p] = apply_feedback([product], [row("tag", "correct", "رنگ: سرمه ای", "رنگ: مشکی", at="2026-01-01"),
                                     row("tag", "reject", "جنس: نخ", at="2026-01-02"),
                                     row("category", "reject", "پوشاك > پيراهن", at="2026-01-03")])
    assert set(p.tags) == {Tag("رنگ", "مشکی")} and p.category == ()
    lens = Product("p3", "عدسی", tags=(Tag("نمره", "-1.5"),))  # a sign is not spelling
    assert apply_feedback([lens], [row("tag", "reject", "نمره: +1.5", at="2026-01-01", product="p3")]) == [lens]
    path = tmp_path / "t.yaml"
    path.write_text("attributes:\n  - name: رنگ\n    values: [{value: خاکستری, synonyms: [طوسی]}, زرد]\n", "utf-8")
    taxonomy = load_taxonomy(path)
    renamed = Product("p2", "پیراهن", tags=(Tag("رنگ", "خاکستری"),))  # stored as طوسی, renamed with --apply
    [q] = apply_feedback([renamed], [row("tag", "correct", "رنگ: طوسی", "رنگ: زرد", at="2026-01-01",
                                         product="p2")], taxonomy)
    assert q.tags == (Tag("رنگ", "زرد"),)


def test_rejected_category_without_correction():
    [same] = apply_feedback([SHOE], [row("category", "reject", "Shoes > Sports", at="2026-01-01")])
    assert same.category == (), "the rejected path is no label"
    [other] = apply_feedback([SHOE], [row("category", "reject", "Bags", at="2026-01-01")])
    assert other.category == ("Shoes", "Sports"), "rejecting another path says nothing about the catalogue's"
    untouched = Product("p2", "Bag", category=("Bags",))
    assert apply_feedback([untouched], [row("category", "reject", "Bags", at="x")]) == [untouched]


def test_a_later_models_rejected_guess_keeps_an_earlier_correction():
    """Corrected to Running with one model; a later model guessed Sports again, and the reviewer rejected it (`x`
    on `review --again`): the product used to teach no category at all, since the rejection was compared with the
    catalogue's label, not with the correction."""
    corrected = row("category", "correct", "Shoes > Sports", "Shoes > Running", at="2026-01-01T10:00:00+00:00")
    [p] = apply_feedback([SHOE], [corrected, row("category", "reject", "Shoes > Sports", at="2026-02-01")])
    assert p.category == ("Shoes", "Running")
    [q] = apply_feedback([SHOE], [corrected, row("category", "reject", "Shoes > Running", at="2026-02-01")])
    assert q.category == (), "rejecting the corrected path itself leaves none"
    [r] = apply_feedback([SHOE], [row("category", "reject", "Shoes > Sports", at="2026-01-01"),
                                  row("category", "accept", "Shoes > Sports", at="2026-02-01")])
    assert r.category == ("Shoes", "Sports"), "a later accept wins over an earlier reject"


def test_a_value_decided_later_replaces_the_earlier_one_of_a_single_valued_attribute(tmp_path: Path):
    """Brown corrected to Grey with one model, Black accepted with a later one (Grey not on its screen): the product
    used to teach both colours, which a single-valued attribute learns as nothing."""
    from tagkit.taxonomy import load_taxonomy

    path = tmp_path / "t.yaml"
    path.write_text("attributes:\n  - {name: color, open: true}\n  - {name: feature, multi_valued: true, open: true}\n",
                    "utf-8")
    taxonomy = load_taxonomy(path)
    rows = [row("tag", "correct", "color: Red", "color: Grey", at="2026-01-01"),
            row("tag", "accept", "color: Black", at="2026-02-01"),
            row("tag", "accept", "feature: Waterproof", at="2026-02-01"),
            row("tag", "accept", "feature: Breathable", at="2026-03-01")]
    [p] = apply_feedback([SHOE], rows, taxonomy)
    assert set(map(str, p.tags)) == {"color: Black", "usage: Sports", "feature: Waterproof", "feature: Breathable"}
    [q] = apply_feedback([SHOE], rows)  # without a taxonomy nothing says how many values an attribute takes
    assert {str(t) for t in q.tags if t.name == "color"} == {"color: Grey", "color: Black"}


def test_an_accepted_value_replaces_the_catalogues_of_an_attribute_the_model_gives_one(demo_db: Path,
                                                                                        tmp_path: Path):
    """No taxonomy: `a` on a product whose catalogue says `color: Brown` accepted the model's `color: Red` beside it,
    and two such products made colour multi-valued for the whole next model, silently (the learning-loop audit)."""
    from tagkit.queue import attribute_arity, model_attributes

    with Store(demo_db) as store:
        pid, model, tags = next(store.db.execute("select product_id, model_id, tags from predictions where tags "
                                                 "like '%color: %' order by product_id"))
        assert model_attributes(store, model)["color"] is False, "the demo model gives one colour"
        given = next(t for t, _ in json.loads(tags) if t.startswith("color: "))
        other = "color: Brown" if given != "color: Brown" else "color: Red"
        [product] = store.iter_products("id = ?", [pid])
        store.upsert_products([Product(pid, product.title, image=product.image, category=("Home", "Mugs"),
                                       tags=(Tag.parse(other), Tag("usage", "Casual")))])
        record(store, [Decision(pid, model, "tag", "accept", predicted=given, score=0.9, reviewer="ana")])
        [product] = store.iter_products("id = ?", [pid])
        [relabelled] = apply_feedback([product], feedback_rows(store), None, attribute_arity(store, None))
    assert {str(t) for t in relabelled.tags} == {given, "usage: Casual"}
    exported = tmp_path / "labels.csv"
    assert tagkit(demo_db, "feedback", "export", "--labels", "-o", str(exported)).exit_code == 0
    assert other not in exported.read_text("utf-8-sig") and given in exported.read_text("utf-8-sig")


@pytest.mark.parametrize("sheet", ["product_id,field,predicted,decision\n{pid},tag,{tag},accept\n",
                                   "product_id,field,predicted,decision,corrected\n{pid},tag,,correct,{tag}\n"])
def test_a_decision_typed_without_a_model_replaces_the_value_of_an_attribute_that_takes_one(
        demo_db: Path, tmp_path: Path, sheet: str):
    """A corrections file of only `product_id, field, decision` (all the README asks for): its `color: Red` was
    added beside the catalogue's `color: Grey`, as the newest model's one-colour rule was not looked up without a
    model id (a re-audit)."""
    rows = list(csv.DictReader((DEMO / "train.csv").open(encoding="utf-8")))
    pid, tags = next((r["id"], r["tags"]) for r in rows if "color: " in r["tags"] and "color: Red" not in r["tags"])
    file = tmp_path / "sheet.csv"
    file.write_text(sheet.format(pid=pid, tag="color: Red"), "utf-8")
    assert tagkit(demo_db, "feedback", "import", str(file)).exit_code == ExitCode.OK
    labels = {r["id"]: r["tags"] for r in csv.DictReader(io.StringIO(tagkit(demo_db, "feedback", "export",
                                                                            "--labels").stdout))}
    assert [t for t in labels[pid].split("|") if t.startswith("color: ")] == ["color: Red"], tags


def test_question_marks_in_a_column_of_the_reviewer_s_own_do_not_stop_the_import(demo_db: Path, tmp_path: Path):
    """`???` typed in a `comment` column a reviewer added stopped the import of a good UTF-8 sheet with "the file was
    saved in a code page that has none of its letters" (a re-audit): only the columns import reads are looked at."""
    pid = next(r["id"] for r in csv.DictReader((DEMO / "train.csv").open(encoding="utf-8")))
    file = tmp_path / "sheet.csv"
    file.write_text(f"product_id,field,predicted,decision,comment\n{pid},tag,color: Red,accept,???\n", "utf-8")
    done = tagkit(demo_db, "feedback", "import", str(file))
    assert done.exit_code == ExitCode.OK and "1 decision added" in done.stderr, done.stderr


def test_record_refuses_what_a_feedback_sheet_could_not_hold(tmp_path: Path):
    """`record` from a script stored anything: a decision 'maybe', a time 'yesterday' (which then sorted after every
    real time, the latest decision for good), a correction without its value; export then wrote rows that import
    refused."""
    import pytest

    good = Decision("p1", "m1", "tag", "accept", predicted="color: Red", score=0.5, created_at="2026-01-01T00:00:00")
    bad = {"decision 'maybe'": Decision("p1", "m1", "tag", "maybe", predicted="color: Red"),
           "not a date and time: 'yesterday'": Decision("p1", "m1", "tag", "accept", predicted="color: Red",
                                                         created_at="yesterday"),
           "a correction needs the corrected value": Decision("p1", "m1", "category", "correct", predicted="A"),
           "is not between 0 and 1": Decision("p1", "m1", "tag", "reject", predicted="color: Red", score=3.0),
           "unknown field 'colour'": Decision("p1", "m1", "colour", "accept", predicted="Red")}
    with Store(tmp_path / "t.db") as store:
        for message, decision in bad.items():
            with pytest.raises(ValueError, match=re.escape(message)):
                record(store, [good, decision])
        assert feedback_rows(store) == [], "nothing of a refused batch is stored"
        assert len(record(store, [good])) == 1


def test_export_import_round_trip(demo_db: Path, tmp_path: Path):
    with Store(demo_db) as store:
        ids = [r["product_id"] for r in store.db.query("select product_id from predictions order by 1 limit 2")]
        record(store, [
            Decision(ids[0], "m1", "category", "correct", predicted="A > B", corrected="=C > D", score=0.5,
                     reviewer="ana"),
            Decision(ids[0], "m1", "tag", "accept", predicted="color: Red", score=0.25, reviewer="ana"),
            Decision(ids[0], "m1", "tag", "reject", predicted="color: Red", score=0.25, reviewer="ana"),
            Decision(ids[0], "m1", "tag", "accept", predicted="color: Red", score=0.25, reviewer="ana"),
            Decision(ids[1], "m1", "product", "reject", reviewer="بهار"),
        ])
    exported = tmp_path / "feedback.csv"
    assert tagkit(demo_db, "feedback", "export", "-o", str(exported)).exit_code == 0
    assert "'=C > D" in exported.read_text("utf-8"), "a cell a spreadsheet would run is neutralised"
    fresh = tmp_path / "fresh.db"
    with Store(fresh) as store:
        store.upsert_products([Product(i, "x") for i in ids])
    result = tagkit(fresh, "feedback", "import", str(exported))
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "5 decisions added" in result.stderr

    def content(db: Path) -> list[dict]:
        with Store(db) as store:
            return [{k: v for k, v in r.items() if k != "id"} for r in feedback_rows(store)]

    assert content(fresh) == content(demo_db)
    assert content(fresh)[0]["corrected"] == "=C > D" and content(fresh)[4]["reviewer"] == "بهار"
    again = tagkit(fresh, "feedback", "import", str(exported))
    assert again.exit_code == ExitCode.OK and "0 decisions added, 5 already there" in again.stderr
    assert tagkit(fresh, "feedback", "export").stdout == tagkit(demo_db, "feedback", "export").stdout


def test_import_reports_bad_rows_and_keeps_the_rest(demo_db: Path, tmp_path: Path):
    with Store(demo_db) as store:
        pid = next(store.db.query("select product_id from predictions limit 1"))["product_id"]
    lines = [
        "product_id,field,decision,predicted,corrected,created_at",
        f"{pid},category,correct,A > B,A > C,2026-01-02T03:04:05+00:00",
        f"{pid},colour,accept,color: Red,,",
        f"{pid},tag,maybe,color: Red,,",
        "no-such-product,tag,accept,color: Red,,",
        f"{pid},tag,correct,color: Red,,",
        f"{pid},tag,accept,color: Red,,yesterday",
        f"{pid},tag,reject,\"usage:\nSports\",,",
    ]
    file = tmp_path / "sheet.csv"
    file.write_text("\n".join(lines) + "\n", "utf-8")
    result = tagkit(demo_db, "feedback", "import", str(file))
    assert result.exit_code == ExitCode.PARTIAL == 3
    err = result.stderr
    assert f"{file}, row 3, field 'field': unknown field 'colour'" in err
    assert "row 4, field 'decision': unknown decision 'maybe'" in err
    assert "row 5, field 'product_id': no product 'no-such-product'" in err
    assert "row 6, field 'corrected': a correction needs the corrected value" in err
    assert "row 7, field 'created_at': not a date and time: 'yesterday'" in err
    assert "2 decisions added" in err
    with Store(demo_db) as store:
        stored = [(r["field"], r["decision"], r["predicted"], r["corrected"]) for r in feedback_rows(store)]
        problems = list(store.db.query("select row, field from problems where run_id = "
                                       "(select max(id) from runs) order by row"))
    assert stored == [("category", "correct", "A > B", "A > C"), ("tag", "reject", "usage: Sports", None)]
    assert [(p["row"], p["field"]) for p in problems] == [(3, "field"), (4, "decision"), (5, "product_id"),
                                                          (6, "corrected"), (7, "created_at")]
    missing = tmp_path / "missing.csv"
    missing.write_text("id,title\n1,x\n", "utf-8")
    bad = tagkit(demo_db, "feedback", "import", str(missing))
    assert bad.exit_code == ExitCode.USAGE and "no column decision, field, product_id" in bad.stderr


def test_an_older_database_gets_the_new_columns(tmp_path: Path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table feedback (id integer primary key, product_id text, model_id text, field text,"
                     " predicted text, decision text, corrected text, reviewer text, created_at text)")
        conn.execute("create table meta (key text primary key, value text)")  # every tagkit database has it
        conn.execute("insert into meta values ('schema_version', '1')")
    conn.close()
    with Store(db) as store:
        assert "score" in store.db.table("feedback").columns_dict
        assert "tag_candidates" in store.db.table("predictions").columns_dict


def test_a_correction_changes_the_next_model(demo_db: Path):
    from tagkit.dataset import products_dataset
    from tagkit.image import ImageEmbedder
    from tagkit.predicting import embedder_for, load_model, predict_records
    from tagkit.training import train

    def predicted_category(store: Store, product: Product) -> str | None:
        found, model = load_model(store)
        data = products_dataset(store, [product], embedder_for(found))
        return predict_records(model, data, [product], found.id, 3)[0].category

    with Store(demo_db) as store:
        product = store.product("dm-0001")
        assert product is not None
        before = predicted_category(store, product)
        assert before == product.category_path
        target = next(r["category"] for r in store.db.query(
            "select distinct category from products where category is not null order by 1")
            if r["category"] != before)
        record(store, [Decision(product.id, None, "category", "correct", predicted=before, corrected=target,
                                reviewer="ana")])
        report = train(store, embedder=ImageEmbedder())
        assert report.counts["products"] >= 300
        assert predicted_category(store, product) == target
        assert store.product("dm-0001").category_path == before, "the catalogue itself is not rewritten"


def test_rejecting_every_prediction_of_a_product_is_learnt(demo_db: Path):
    """`x` on a product (its category and every tag rejected, none added) keeps it in the training data, as a
    product none of whose tags apply: the next model gives the rejected tag lower scores there. It was left out
    of training (no category and no tag left), so the decisions changed nothing."""
    from collections import Counter

    from tagkit.image import ImageEmbedder
    from tagkit.queue import load_items
    from tagkit.training import train

    with Store(demo_db) as store:
        items = load_items(store)
        tag = Counter(t for i in items for t, _ in i.tags).most_common(1)[0][0]
        rejected = [i for i in items if tag in dict(i.tags)][:20]
        assert len(rejected) >= 5
        before = train(store, embedder=ImageEmbedder())
        record(store, [d for i in rejected for d in [
            Decision(i.id, i.model, "category", "reject", predicted=i.category),
            *(Decision(i.id, i.model, "tag", "reject", predicted=t) for t, _ in i.tags),
            Decision(i.id, i.model, "product", "reject")]])
        after = train(store, embedder=ImageEmbedder())
        assert after.counts["products"] == before.counts["products"] + len(rejected)

        def scores(report) -> list[float]:
            from tagkit.dataset import products_dataset
            from tagkit.models import CatalogueModel
            from tagkit.predicting import embedder_for
            from tagkit.versions import find_version

            found = find_version(store, report.version)
            model = CatalogueModel.load(report.path)
            data = products_dataset(store, [store.product(i.id) for i in rejected], embedder_for(found))
            return [dict([*p.tags, *p.candidates]).get(Tag.parse(tag), 0.0) for p in model.predict(data)]

        old, new = scores(before), scores(after)
    assert sum(new) < 0.5 * sum(old), (old, new)


def test_train_source_also_learns_the_reviewed_products(demo_db: Path):
    """`tagkit train SOURCE` (the README's command) learns from the products of SOURCE and from every reviewed
    product, a predicted one not in SOURCE too; it used to leave out every decision on predicted products."""
    from tagkit.queue import load_items

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo"
    with Store(demo_db) as store:
        item = next(i for i in load_items(store) if i.id.startswith("IMG_"))
        record(store, [Decision(item.id, item.model, "category", "accept", predicted=item.category),
                       Decision(item.id, item.model, "product", "accept")])
        half = next(i for i in load_items(store) if i.id.startswith("IMG_") and i.id != item.id and i.tags)
        record(store, [Decision(half.id, half.model, "tag", "reject", predicted=half.tags[0][0])])
    result = CliRunner().invoke(main, ["--db", str(demo_db), "train", str(demo / "train.csv"), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == ExitCode.OK, result.output
    summary = json.loads(result.stdout)
    # a product whose review is not finished, with one tag rejected, teaches nothing: not "no tags at all"
    assert summary["counts"]["from_review"] == 1
    trained = (Path(summary["path"]) / "training_ids.txt").read_text("utf-8").split()
    assert item.id in trained and not any(pid.startswith("IMG_") and pid != item.id for pid in trained)


def test_train_without_source_leaves_out_the_products_eval_read(demo_db: Path, tmp_path: Path):
    """`tagkit eval test.csv` stores the test products with their labels; `tagkit train` (no SOURCE) used to learn
    from them, so the next eval on the same file scored products the model was trained on."""
    demo = Path(__file__).resolve().parent.parent / "examples" / "demo"
    test_ids = [line.split(",", 1)[0] for line in (demo / "test.csv").read_text("utf-8").splitlines()[1:]]
    # stored by predict first (with their labels), then scored: eval marks what it scores, whoever stored it
    assert tagkit(demo_db, "predict", str(demo / "test.csv"), "-o", str(tmp_path / "p.csv")).exit_code == 0
    first = json.loads(tagkit(demo_db, "eval", str(demo / "test.csv"), "--json").stdout)
    assert first["seen_in_training"] == 0 and first["products"] == len(test_ids)
    with Store(demo_db) as store:
        assert store.held_out_ids() == set(test_ids)
    tagkit(demo_db, "eval", str(demo / "train.csv"))  # products the model was trained on stay training products
    tagkit(demo_db, "import", str(demo / "images"))  # images without a row change no product's role
    with Store(demo_db) as store:
        assert store.held_out_ids() == set(test_ids)
    reviewed = test_ids[0]  # a reviewed test product is learnt from: someone said what it is
    assert tagkit(demo_db, "feedback", "import", sheet(tmp_path / "s.csv", f"{reviewed},,product,accept,,")
                  ).exit_code == ExitCode.OK

    result = tagkit(demo_db, "train", "--json")
    assert result.exit_code == ExitCode.OK, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["held_out"] == len(test_ids) - 1
    assert "left out" in tagkit(demo_db, "train").stdout
    trained = set((Path(summary["path"]) / "training_ids.txt").read_text("utf-8").split())
    assert trained & set(test_ids) == {reviewed}
    assert {f"dm-{i:04d}" for i in range(1, 5)} <= trained  # train.csv's products are learnt from as before
    again = tagkit(demo_db, "eval", str(demo / "test.csv"), "--json")
    assert json.loads(again.stdout)["seen_in_training"] == 1, "only the reviewed one"
    # a folder of images: those of test products bring their stored labels, not a row that makes them training data
    folder = json.loads(tagkit(demo_db, "train", str(demo / "images"), "--json").stdout)
    assert folder["counts"]["held_out"] == len(test_ids) - 1
    assert set((Path(folder["path"]) / "training_ids.txt").read_text("utf-8").split()) & set(test_ids) == {reviewed}

    # imported or given to train, test products are training data from then on, rows unchanged since eval too
    head = "\n".join((demo / "test.csv").read_text("utf-8").splitlines()[:11]) + "\n"
    (tmp_path / "images").symlink_to(demo / "images")
    (tmp_path / "head.csv").write_text(head, "utf-8")
    assert tagkit(demo_db, "import", str(tmp_path / "head.csv")).exit_code == ExitCode.OK
    with Store(demo_db) as store:
        assert store.held_out_ids() == set(test_ids[10:])
    assert tagkit(demo_db, "train", str(demo / "test.csv")).exit_code == ExitCode.OK
    with Store(demo_db) as store:
        assert store.held_out_ids() == set() and store.stats()["products"]["held_out"] == 0


def test_train_with_nothing_but_test_products_says_so(demo_db: Path):
    from tagkit.image import ImageEmbedder
    from tagkit.training import NothingToLearn, train

    with Store(demo_db) as store:
        store.set_held_out([p.id for p in store.iter_products()], True)
        store.db.execute("delete from feedback")
        store.db.conn.commit()
        try:
            train(store, embedder=ImageEmbedder())
        except NothingToLearn as error:
            assert "test products `tagkit eval` read" in str(error)
        else:
            raise AssertionError("trained on test products")


def sheet(path: Path, *rows: str) -> str:
    path.write_text("\n".join(["product_id,model_id,field,decision,predicted,corrected", *rows]) + "\n", "utf-8")
    return str(path)


def labels(db: Path, pid: str) -> tuple[str, set[str]]:
    with Store(db) as store:
        product = store.product(pid)
        assert product is not None
        [p] = apply_feedback([product], feedback_rows(store))
    return p.category_path, set(map(str, p.tags))


def saved_now(path: str) -> str:
    """The file saved again (a person went back to it): its modification time is now (after a pause longer than
    the tick of the kernel's file clock, which may lag the decisions' times by a few milliseconds)."""
    time.sleep(0.05)
    os.utime(path)
    return path


def test_a_sheet_saved_after_a_change_of_mind_is_added(demo_db: Path, tmp_path: Path):
    """A sheet without times is the word of when it was last saved: saved again after a later decision on its
    labels, it is added and wins; imported again unchanged (a cron job, a second import by someone else), it
    undoes nothing, and says so."""
    with Store(demo_db) as store:
        pid = next(store.db.query("select product_id from predictions order by 1 limit 1"))["product_id"]
    accept, reject = (sheet(tmp_path / f"{d}.csv", f"{pid},,tag,{d},color: Red,") for d in ("accept", "reject"))
    runs = [tagkit(demo_db, "feedback", "import", saved_now(f)).stderr for f in (accept, reject, accept)]
    assert all("1 decision added, 0 already there" in r for r in runs), runs
    assert "color: Red" in labels(demo_db, pid)[1], "the sheet's accept is the latest decision"
    again = tagkit(demo_db, "feedback", "import", accept)
    assert again.exit_code == ExitCode.OK and "0 decisions added, 1 already there" in again.stderr

    stale = tagkit(demo_db, "feedback", "import", reject)  # saved before the accept was stored
    assert stale.exit_code == ExitCode.OK
    assert "0 decisions added, 0 already there, 1 row decided otherwise since the sheet was written or saved" \
        in stale.stderr
    assert "'color: Red' was decided (accept) at " in stale.stderr and "that decision is kept" in stale.stderr
    assert "color: Red" in labels(demo_db, pid)[1]

    to_a, to_b = (sheet(tmp_path / f"{c}.csv", f"{pid},m1,category,correct,X > Y,{c} > Z") for c in "AB")
    for f, added in ((to_a, 1), (to_b, 1), (to_a, 1)):
        assert f"{added} decision added" in tagkit(demo_db, "feedback", "import", saved_now(f)).stderr
    assert "0 decisions added" in tagkit(demo_db, "feedback", "import", to_a).stderr
    assert labels(demo_db, pid)[0] == "A > Z"
    # the category is one label whatever path was predicted: accepting A again after B was accepted counts
    accept_a, accept_b = (sheet(tmp_path / f"a{c}.csv", f"{pid},m2,category,accept,{c},") for c in "AB")
    for f in (accept_a, accept_b, accept_a):
        assert "1 decision added" in tagkit(demo_db, "feedback", "import", saved_now(f)).stderr
    assert labels(demo_db, pid)[0] == "A"
    # a tag is touched by a correction to it too: rejecting it again after it was added counts
    reject_blue = sheet(tmp_path / "rb.csv", f"{pid},,tag,reject,color: Blue,")
    add_blue = sheet(tmp_path / "ab.csv", f"{pid},,tag,correct,,color: Blue")
    for f in (reject_blue, add_blue, reject_blue):
        assert "1 decision added" in tagkit(demo_db, "feedback", "import", saved_now(f)).stderr
    assert "color: Blue" not in labels(demo_db, pid)[1]


def test_a_later_row_of_the_same_sheet_wins(demo_db: Path, tmp_path: Path):
    with Store(demo_db) as store:
        pid = next(store.db.query("select product_id from predictions order by 1 limit 1"))["product_id"]
    rows = [f"{pid},,tag,accept,color: Red,", f"{pid},,category,accept,A,",
            f"{pid},,tag,reject,color: Red,", f"{pid},,category,correct,A,B"]
    first = tagkit(demo_db, "feedback", "import", sheet(tmp_path / "s.csv", *rows))
    assert "4 decisions added" in first.stderr
    category, tags = labels(demo_db, pid)
    assert category == "B" and "color: Red" not in tags, "the sheet's later rows win"
    again = tagkit(demo_db, "feedback", "import", str(tmp_path / "s.csv"))
    assert "0 decisions added, 4 already there" in again.stderr, "the same sheet twice adds nothing"
    # the sheet, with a change of mind back appended: only that row is new, and it wins
    longer = sheet(tmp_path / "longer.csv", *rows, f"{pid},,tag,accept,color: Red,")
    assert "1 decision added, 4 already there" in tagkit(demo_db, "feedback", "import", longer).stderr
    assert "color: Red" in labels(demo_db, pid)[1]
    assert "0 decisions added, 5 already there" in tagkit(demo_db, "feedback", "import", longer).stderr
    # the same sheet into a database whose latest decision differs: its last word is left out while the file is
    # older than that decision (another reviewer's, say), and added again, winning, once the file is saved again
    flip = sheet(tmp_path / "flip.csv", f"{pid},,tag,reject,color: Red,")
    assert "1 decision added" in tagkit(demo_db, "feedback", "import", flip).stderr
    assert "0 decisions added, 4 already there, 1 row decided otherwise since" in tagkit(
        demo_db, "feedback", "import", longer).stderr
    assert "color: Red" not in labels(demo_db, pid)[1]
    assert "1 decision added, 4 already there" in tagkit(demo_db, "feedback", "import", saved_now(longer)).stderr
    assert "color: Red" in labels(demo_db, pid)[1]


def test_a_sheets_review_row_leaves_what_another_reviewer_decided_meanwhile(demo_db: Path, tmp_path: Path):
    """Alice rejects a tag in the terminal while Bob has the review sheet open; Bob's `accept` in the product's
    review row accepts what nobody decided, as `a` does, not the tag Alice rejected (it did, silently)."""
    import csv

    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path), "--limit", "1", "--order", "id").exit_code == 0
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    pid, model = rows[0]["product_id"], rows[0]["model_id"]
    tags = [r["predicted"] for r in rows if r["field"] == "tag" and r["kind"] == "predicted"]
    assert len(tags) >= 2
    with Store(demo_db) as store:
        record(store, [Decision(pid, model, "tag", "reject", predicted=tags[0], reviewer="alice")])
    for r in rows:
        r["decision"] = "accept" if r["field"] == "product" else ""
    result = tagkit(demo_db, "feedback", "import", str(write_csv(path, rows)))
    assert result.exit_code == ExitCode.OK, result.stderr
    _, labelled = labels(demo_db, pid)
    assert tags[0] not in labelled and set(tags[1:]) <= labelled
    with Store(demo_db) as store:
        assert [r["reviewer"] for r in feedback_rows(store) if r["predicted"] == tags[0]] == ["alice"]
    # Bob accepts that tag in a row of his own, in the sheet written before Alice's decision, saved after it: the
    # sheet never showed it, so hers is kept, with a note; a copy of the file (a new modification time) the same
    for r in rows:
        r["decision"] = "accept" if r["predicted"] == tags[0] else ""
    write_csv(path, rows)
    for sheet_file in (path, Path(shutil.copy(path, tmp_path / "copy.csv"))):
        result = tagkit(demo_db, "feedback", "import", str(sheet_file))
        assert result.exit_code == ExitCode.OK, result.stderr
        said = " ".join(result.stderr.split())
        assert "0 decisions added" in said and "1 row decided otherwise since" in said
        assert f"'{tags[0]}' was decided (reject) by alice at " in said and "after this sheet was written" in said
    assert tags[0] not in labels(demo_db, pid)[1]


def test_a_sheet_corrected_by_its_reviewer_after_its_import_is_imported_again(demo_db: Path, tmp_path: Path):
    """Alice imports her sheet, sees a mistake, corrects the row and imports it again: her own decisions of the
    first import do not go before her fix (a teammate's would, as above), and an unreadable written_at is said."""
    import csv

    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path), "--limit", "1", "--order", "id", "--reviewer",
                  "alice").exit_code == 0
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    pid = rows[0]["product_id"]
    tag = next(r for r in rows if r["field"] == "tag" and r["kind"] == "predicted")
    fixed = f"{tag['predicted'].split(': ')[0]}: Brand New"
    for r in rows:
        r["decision"] = "accept" if r["field"] == "product" else ""
    assert "decisions added" in tagkit(demo_db, "feedback", "import", str(write_csv(path, rows))).stderr
    time.sleep(0.05)  # the kernel's file clock may lag the decisions' times by a tick
    tag["decision"], tag["corrected"] = "correct", fixed
    result = tagkit(demo_db, "feedback", "import", str(write_csv(path, rows)))
    assert "1 decision added" in result.stderr and "decided otherwise" not in result.stderr
    assert fixed in labels(demo_db, pid)[1] and tag["predicted"] not in labels(demo_db, pid)[1]
    for r in rows:
        r["written_at"] = "12/2/2026 9:02"  # as a spreadsheet may save it
    result = tagkit(demo_db, "feedback", "import", str(write_csv(path, rows)))
    assert "rows of a review sheet have no full time in written_at (this one: '12/2/2026 9:02';" in " ".join(
        result.stderr.split())
    columns = [c for c in rows[0] if c != "written_at"]  # the column deleted
    result = tagkit(demo_db, "feedback", "import", str(write_csv(path, rows, columns)))
    assert "rows of a review sheet have no full time in written_at (this one: '';" in " ".join(result.stderr.split())


def test_a_sheets_value_of_a_single_valued_attribute_replaces_the_one_chosen_before(demo_db: Path, tmp_path: Path):
    """Bob corrected the usage in the terminal; a sheet, which shows the prediction and not his correction, accepts
    the predicted usage: the product got both (the terminal turns the other value off)."""
    import csv

    from tagkit.queue import model_attributes, review_queue

    with Store(demo_db) as store:
        item = next(i for i in review_queue(store, order="id") if any(t.startswith("usage: ") for t, _ in i.tags))
        assert model_attributes(store, item.model)["usage"] is False
        predicted = next(t for t, _ in item.tags if t.startswith("usage: "))
        record(store, [Decision(item.id, item.model, "tag", "correct", predicted=predicted,
                                corrected="usage: Brand New", reviewer="bob")])
    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path), "--again", "--reviewer", "ana").exit_code == 0
    rows = [r for r in csv.DictReader(path.open(encoding="utf-8-sig")) if r["product_id"] == item.id]
    for r in rows:
        r["decision"] = "accept" if r["predicted"] == predicted else ""
    result = tagkit(demo_db, "feedback", "import", str(write_csv(path, rows)))
    assert result.exit_code == ExitCode.OK, result.stderr
    assert [t for t in labels(demo_db, item.id)[1] if t.startswith("usage: ")] == [predicted]


def fill(path: Path, decide) -> Path:
    """The review sheet at `path` with `decide(row)` (a decision, or "") written in each row, saved again."""
    import csv

    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    for r in rows:
        r["decision"] = decide(r)
    time.sleep(0.05)  # saved after the decisions stored before (the kernel's file clock may lag them by a tick)
    return write_csv(path, rows)


def test_sheets_of_two_people_with_one_reviewer_name_are_told_apart(demo_db: Path, tmp_path: Path):
    """Two people on one login (the reviewer name defaults to it): a teammate's decision stored after the sheet was
    written went in as if it were the sheet's own reviewer's, and was overridden without a note."""
    first, second = tmp_path / "a.csv", tmp_path / "d.csv"
    for sheet_file in (first, second):
        assert tagkit(demo_db, "review", "--sheet", str(sheet_file), "--limit", "1", "--order", "id",
                      "--reviewer", "root").exit_code == 0
    import csv

    tag = next(r for r in csv.DictReader(first.open(encoding="utf-8-sig")) if r["field"] == "tag")
    pid, value = tag["product_id"], tag["predicted"]
    tagkit(demo_db, "feedback", "import", str(fill(second, lambda r: "reject" if r["predicted"] == value else "")))
    result = tagkit(demo_db, "feedback", "import", str(fill(first, lambda r: "accept" if r["predicted"] == value
                                                            else "")))
    assert "1 row decided otherwise since" in result.stderr and value not in labels(demo_db, pid)[1]


def test_a_sheets_review_row_changed_by_its_reviewer_decides_again(demo_db: Path, tmp_path: Path):
    """`accept` in a product's review row, imported; then `reject` there instead, imported again: the tags her own
    first import accepted are rejected (only the product row went in, silently)."""
    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path), "--limit", "1", "--order", "id").exit_code == 0
    import csv

    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    pid = rows[0]["product_id"]
    tags = {r["predicted"] for r in rows if r["field"] == "tag" and r["kind"] == "predicted"}
    tagkit(demo_db, "feedback", "import", str(fill(path, lambda r: "accept" if r["field"] == "product" else "")))
    assert tags <= labels(demo_db, pid)[1]
    result = tagkit(demo_db, "feedback", "import", str(fill(path, lambda r: "reject" if r["field"] == "product"
                                                           else "")))
    assert result.exit_code == ExitCode.OK and "decided otherwise" not in result.stderr
    assert not tags & labels(demo_db, pid)[1]


def test_a_sheets_value_stays_out_when_a_teammate_chose_another_after_the_sheet_was_written(
        demo_db: Path, tmp_path: Path):
    """Alice accepts a candidate usage in her sheet; Bob corrected the usage after her sheet was written: Bob's
    stays, Alice's row is left out with a note (the product got both)."""
    from tagkit.queue import review_queue

    with Store(demo_db) as store:
        item = next(i for i in review_queue(store, order="id") if any(t.startswith("usage: ") for t, _ in i.tags)
                    and any(t.startswith("usage: ") for t, _ in i.candidates))
    predicted = next(t for t, _ in item.tags if t.startswith("usage: "))
    candidate = next(t for t, _ in item.candidates if t.startswith("usage: "))
    alice, bob = tmp_path / "alice.csv", tmp_path / "bob.csv"
    for name, sheet_file in (("alice", alice), ("bob", bob)):
        assert tagkit(demo_db, "review", "--sheet", str(sheet_file), "--reviewer", name).exit_code == 0
    import csv

    rows = list(csv.DictReader(bob.open(encoding="utf-8-sig")))
    for r in rows:
        r["decision"], r["corrected"] = ("correct", "usage: Brand New") if (
            r["product_id"], r["predicted"]) == (item.id, predicted) else ("", "")
    time.sleep(0.05)
    tagkit(demo_db, "feedback", "import", str(write_csv(bob, rows)))
    result = tagkit(demo_db, "feedback", "import", str(fill(alice, lambda r: "accept" if (
        r["product_id"], r["predicted"]) == (item.id, candidate) else "")))
    said = " ".join(result.stderr.split())
    assert "0 decisions added" in said and "'usage: Brand New' was decided (correct) by bob" in said
    assert [t for t in labels(demo_db, item.id)[1] if t.startswith("usage: ")] == ["usage: Brand New"]


def test_a_review_sheet_filled_in_a_spreadsheet_is_learnt(demo_db: Path, tmp_path: Path):
    """`review --sheet`: the review queue as a CSV to decide in a spreadsheet (review without a terminal used to
    be exit 5 and a hand-made sheet). A product's review row accepted accepts its predictions not decided (as `a`);
    other rows left undecided are left out of the import, counted."""
    import csv

    from tagkit.queue import review_queue

    with Store(demo_db) as store:
        queue = review_queue(store, limit=4)
    path = tmp_path / "sheet.csv"
    result = tagkit(demo_db, "review", "--sheet", str(path), "--limit", "4", "--reviewer", "ana")
    assert result.exit_code == ExitCode.OK, result.output
    assert "4 products to review written" in result.stderr
    assert path.read_bytes().startswith(b"\xef\xbb\xbfproduct_id,"), "Excel reads Persian titles as UTF-8"
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    assert list(dict.fromkeys(r["product_id"] for r in rows)) == [item.id for item in queue]
    first, second, third = queue[0], queue[1], queue[2]
    assert third.alternatives, "the demo's products have alternative categories"
    mine = [r for r in rows if r["product_id"] == first.id]
    assert (mine[0]["field"], mine[0]["kind"], mine[0]["decision"]) == ("category", "predicted", "")
    assert [r["predicted"] for r in mine if r["kind"] == "predicted" and r["field"] == "tag"] == [
        t for t, _ in first.tags]
    assert mine[-1]["field"] == "product" and {r["reviewer"] for r in rows} == {"ana"}
    assert len(first.tags) >= 2, "the demo's first product to review has tags to decide"
    rejected, kept = first.tags[0][0], first.tags[1][0]
    others = sorted({r["category"] for r in Store(demo_db).db.query(
        "select category from products where category is not null")} - {second.category})
    for r in rows:  # what a person types in the spreadsheet
        if r["product_id"] == first.id:
            typed = {("tag", rejected): "reject", ("product", ""): "accept"}  # the rest is accepted with the product
            r["decision"] = typed.get((r["field"], r["predicted"]), "")
        elif r["product_id"] == second.id and r["kind"] == "predicted" and r["field"] == "category":
            r["corrected"] = others[0]  # the right category typed, the decision cell left empty
        elif r["product_id"] == third.id:  # an alternative chosen, the rest accepted with the product
            r["decision"] = "accept" if r["field"] == "product" or r["predicted"] == third.alternatives[0][0] else ""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")  # as a spreadsheet may save it
        writer.writeheader()
        writer.writerows(rows)
    result = tagkit(demo_db, "feedback", "import", str(path))
    assert result.exit_code == ExitCode.OK, result.output
    added = len(first.tags) + 3 + len(third.tags) + 2  # + the second's correction; the third's alternative
    assert f"{added} decisions added, 0 already there, {len(rows) - added:,} rows without a decision" in result.stderr
    category, tags = labels(demo_db, first.id)
    assert category == first.category and kept in tags and rejected not in tags
    assert labels(demo_db, second.id)[0] == others[0]
    assert labels(demo_db, third.id) == (third.alternatives[0][0], {t for t, _ in third.tags})
    again = tagkit(demo_db, "feedback", "import", str(path))
    assert f"0 decisions added, {added} already there" in again.stderr
    result = tagkit(demo_db, "review", "--sheet", "-", "--limit", "4")
    ids = {r["product_id"] for r in csv.DictReader(result.stdout.splitlines())}
    assert first.id not in ids and second.id in ids, "a finished product is not asked again, a half-done one is"


def test_a_review_sheet_as_a_person_fills_it_decides_as_the_terminal_would(demo_db: Path, tmp_path: Path):
    """A re-audit of `review --sheet`, each as a person did it in a spreadsheet: the `kind` column deleted (the review
    row then finished products with no labels: "none of the tags apply"), scores with decimal commas (the whole row
    refused, the review row still finishing the product), `Accept`, a candidate colour accepted beside the predicted
    one (both kept; `a` swaps them), an alternative category rejected (the predicted one lost), a plain value typed
    on a `color: Grey` row (stored as a tag without its attribute)."""
    import csv

    from tagkit.feedback import finished
    from tagkit.queue import model_attributes, review_queue

    with Store(demo_db) as store:
        queue = review_queue(store)
        single = {name for name, multi in model_attributes(store, queue[0].model).items() if not multi}

    def attribute(tag: str) -> str:
        return Tag.parse(tag).name

    swap = next(i for i in queue if any(attribute(c) in single and attribute(c) in {attribute(t) for t, _ in i.tags}
                                        for c, _ in i.candidates))
    candidate = next(c for c, _ in swap.candidates if attribute(c) in single and attribute(c) in
                     {attribute(t) for t, _ in swap.tags})
    replaced = next(t for t, _ in swap.tags if attribute(t) == attribute(candidate))
    rest = [i for i in queue if i is not swap and i.alternatives and any(attribute(t) in single for t, _ in i.tags)]
    alternative, typed, broken = rest[:3]
    retyped = next(t for t, _ in typed.tags if attribute(t) in single)
    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path)).exit_code == ExitCode.OK
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    for r in rows:
        r["score"] = r["score"].replace(".", ",")
        pid, value = r["product_id"], r["predicted"]
        finishing = r["field"] == "product" and pid in (swap.id, alternative.id, typed.id, broken.id)
        if finishing or (pid == swap.id and value == candidate):
            r["decision"] = "Accept"
        elif pid == alternative.id and value == alternative.alternatives[0][0]:
            r["decision"] = "reject"
        elif pid == typed.id and value == retyped:
            r["corrected"] = "Zzz"
        elif pid == broken.id and r["field"] == "category":
            r["decision"] = "maybe"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[c for c in rows[0] if c != "kind"], delimiter=";",
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    result = tagkit(demo_db, "feedback", "import", str(path))
    assert result.exit_code == ExitCode.PARTIAL, result.output
    assert "unknown decision 'maybe'" in result.stderr and f"the review of product '{broken.id}' is not finished" \
        in result.stderr and "not a number" not in result.stderr
    with Store(demo_db) as store:
        done = {pid for pid, _ in finished(store)}
    assert {swap.id, alternative.id, typed.id} <= done and broken.id not in done
    category, tags = labels(demo_db, swap.id)
    assert category == swap.category and candidate in tags and replaced not in tags
    assert {t for t, _ in swap.tags} - {replaced} <= tags
    assert labels(demo_db, alternative.id) == (alternative.category, {t for t, _ in alternative.tags})
    category, tags = labels(demo_db, typed.id)
    assert f"{attribute(retyped)}: Zzz" in tags and retyped not in tags and "Zzz" not in tags
    with Store(demo_db) as store:
        assert not store.db.execute("select count(*) from feedback where product_id = ?", [broken.id]).fetchone()[0]


def test_a_tag_of_another_attribute_typed_on_a_tag_row_is_added_beside_it(demo_db: Path, tmp_path: Path):
    """A reviewer adds a missing value on whichever row is at hand: `fabric: Linen` typed in `corrected` on the
    `usage: …` row. It is added as a tag of its own and the row's tag is left to the review row, with a note (it
    replaced the usage label, silently). `feedback import --json` gives the counts and the note on stdout."""
    import csv

    from tagkit.queue import review_queue

    with Store(demo_db) as store:
        item = next(i for i in review_queue(store) if any(t.startswith("usage: ") for t, _ in i.tags))
    usage = next(t for t, _ in item.tags if t.startswith("usage: "))
    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path)).exit_code == ExitCode.OK
    rows = [r for r in csv.DictReader(path.open(encoding="utf-8-sig")) if r["product_id"] == item.id]
    for r in rows:
        if r["predicted"] == usage:
            r["corrected"] = "fabric: Linen"
        elif r["field"] == "product":
            r["decision"] = "accept"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = tagkit(demo_db, "feedback", "import", str(path), "--json")
    assert result.exit_code == ExitCode.OK, result.output
    report = json.loads(result.stdout)
    assert report["rows_failed"] == 0 and report["added"] >= 3
    [note] = report["problems"]
    assert note["info"] and note["field"] == "corrected" and note["product_id"] == item.id
    assert f"'fabric: Linen' is a tag of another attribute than the row's '{usage}'" in note["message"]
    category, tags = labels(demo_db, item.id)
    assert category == item.category and {"fabric: Linen", usage} <= tags


def test_feedback_export_labels_gives_the_reviewed_products_labels_as_the_decisions_leave_them(
        demo_db: Path, tmp_path: Path):
    """A season audit: nothing exported the outcome of a review (the prediction with the decisions applied), so a
    team merged `feedback export` into the predictions by hand to update its shop. `--labels` writes them in the
    products-file layout, which `tagkit import` reads back."""
    import csv

    from tagkit.queue import review_queue

    with Store(demo_db) as store:
        first, second = [i for i in review_queue(store) if i.category and i.tags][:2]
    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path)).exit_code == ExitCode.OK
    rows = [r for r in csv.DictReader(path.open(encoding="utf-8-sig")) if r["product_id"] in (first.id, second.id)]
    for r in rows:
        if r["field"] == "product":
            r["decision"] = "accept"
        elif r["product_id"] == second.id and r["field"] == "category" and r["kind"] == "predicted":
            r["corrected"] = "Home > Kitchen > Mugs"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert tagkit(demo_db, "feedback", "import", str(path)).exit_code == ExitCode.OK
    out = tmp_path / "labels.csv"
    result = tagkit(demo_db, "feedback", "export", "--labels", "-o", str(out))
    assert result.exit_code == ExitCode.OK and "2 products exported" in result.stderr
    exported = {r["id"]: r for r in csv.DictReader(out.open(encoding="utf-8-sig"))}
    assert list(next(csv.reader(out.open(encoding="utf-8-sig")))) == ["id", "title", "image", "category", "tags",
                                                                  "decided_at"]
    assert exported.keys() == {first.id, second.id}
    assert exported[first.id]["category"] == first.category
    assert set(exported[first.id]["tags"].split("|")) == {t for t, _ in first.tags}
    assert exported[second.id]["category"] == "Home > Kitchen > Mugs"
    assert all(r["decided_at"] for r in exported.values())
    for pid in exported:
        assert labels(demo_db, pid) == (exported[pid]["category"], set(exported[pid]["tags"].split("|")))
    fresh = tmp_path / "fresh.db"
    assert tagkit(fresh, "import", str(out), "--no-images").exit_code == ExitCode.OK
    with Store(fresh) as store:
        back = {p.id: (p.category_path, {str(t) for t in p.tags}) for p in store.iter_products()}
    assert back == {pid: labels(demo_db, pid) for pid in exported}


def test_a_review_sheet_shows_the_decisions_stored_about_its_products(demo_db: Path, tmp_path: Path):
    """Alice half reviews a product in the terminal (rejects a tag, types another category); the sheet Bob then
    fills in showed neither, so his `accept` of that tag went in after hers, unseen. Now `decided_before` says who
    decided what, the typed category has a row of its own (kind `decided`), and importing the sheet untouched
    changes nothing."""
    import csv

    from tagkit.queue import review_queue

    with Store(demo_db) as store:
        item = review_queue(store, order="id")[0]
        rejected = item.tags[0][0]
        typed = "Typed > By > Alice"
        record(store, [Decision(item.id, item.model, "tag", "reject", predicted=rejected, reviewer="alice"),
                       Decision(item.id, item.model, "category", "correct", predicted=item.category, corrected=typed,
                                reviewer="alice")])
    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path), "--order", "id", "--limit", "2").exit_code == 0
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    shown = {(r["field"], r["kind"], r["predicted"]): r["decided_before"] for r in rows if r["product_id"] == item.id}
    assert re.fullmatch(r"reject by alice at \d{4}-\d\d-\d\d \d\d:\d\d UTC", shown[("tag", "predicted", rejected)])
    assert shown[("category", "decided", typed)].startswith("correct by alice at ")
    assert shown[("category", "predicted", item.category)] == ""  # replaced, not rejected: as the terminal shows it
    assert all(not before for (field_, _, value), before in shown.items()
               if (field_, value) not in {("tag", rejected), ("category", typed)})
    assert not any(r["decided_before"] for r in rows if r["product_id"] != item.id)
    result = tagkit(demo_db, "feedback", "import", str(path))
    assert result.exit_code == ExitCode.OK and "0 decisions added" in result.stderr, result.stderr


def test_labels_export_keeps_a_tag_holding_a_bar_whole(demo_db: Path, tmp_path: Path):
    """A Torob brand is `تام پاپ | TAMPAP`: `feedback export --labels` joined the tags with `|` as they were, so
    `tagkit import` of that file cut the brand short and added a tag `TAMPAP`. It writes a JSON list then, as
    `predict --export csv` does."""
    import csv

    from tagkit.queue import review_queue

    brand = "برند: تام پاپ | TAMPAP"
    with Store(demo_db) as store:
        item = review_queue(store, order="id")[0]
        record(store, [Decision(item.id, item.model, "tag", "correct", corrected=brand, reviewer="ana")])
    out = tmp_path / "labels.csv"
    assert tagkit(demo_db, "feedback", "export", "--labels", "-o", str(out)).exit_code == ExitCode.OK
    [exported] = csv.DictReader(out.open(encoding="utf-8-sig"))
    assert json.loads(exported["tags"]) and brand in json.loads(exported["tags"])
    fresh = tmp_path / "fresh.db"
    assert tagkit(fresh, "import", str(out), "--no-images").exit_code == ExitCode.OK
    with Store(fresh) as store:
        [product] = store.iter_products()
    assert {str(t) for t in product.tags} == labels(demo_db, item.id)[1] and brand in labels(demo_db, item.id)[1]


def test_several_known_values_typed_in_one_cell_are_named(demo_db: Path, tmp_path: Path):
    """`رنگ: آبی، سفید` typed in a sheet's `corrected` (or with `e` in the terminal) is stored as one value, which
    nothing said; now a note does when each part is a value its attribute has. A value that only holds a separator
    (the brand `تام پاپ | TAMPAP`) gets none."""
    import csv

    from tagkit.queue import review_queue
    from tagkit.review import Session, known_values

    with Store(demo_db) as store:
        tags = known_values(store)[1]
        item = next(i for i in review_queue(store, order="id") if i.tags)
    name = Tag.parse(item.tags[0][0]).name
    values = [Tag.parse(t).value for t in tags if Tag.parse(t).name == name][:2]
    assert len(values) == 2
    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path), "--order", "id", "--limit", "1").exit_code == 0
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    typed = f"{name}: {values[0]}، {values[1]}"
    rows[[r["predicted"] for r in rows].index(item.tags[0][0])]["corrected"] = typed
    if len(item.tags) > 1:
        rows[[r["predicted"] for r in rows].index(item.tags[1][0])]["corrected"] = f"{name}: {values[0]} | TAMPAP"
    result = tagkit(demo_db, "feedback", "import", str(write_csv(path, rows)))
    assert result.exit_code == ExitCode.OK, result.stderr
    said = " ".join(result.stderr.split())
    assert f"'{typed}' is stored as one value, though it lists values its attribute has" in said
    assert said.count("is stored as one value") == 1
    with Store(demo_db) as store:
        message = Session(store, [item], "ana").edit(f"{name}: {values[1]} | {values[0]}")
    assert message.endswith("(one value, though it lists 2 known ones: type each with e on its own)"), message


def test_a_sheet_a_spreadsheet_saved_in_a_code_page(demo_db: Path, tmp_path: Path):
    """A review sheet opened in Excel and saved again: read in Windows-1256 and saved as UTF-8, its Persian rows were
    decisions on garbage; saved as plain 'CSV' on a Windows set to English, its letters are `?`, and the reviewer's
    correction was lost while the product's `accept` row accepted the very tag corrected."""
    import csv

    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path), "--order", "id").exit_code == 0
    assert path.read_bytes().startswith(b"\xef\xbb\xbf"), "Excel reads a file with a byte-order mark as UTF-8"
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    persian = next(r for r in rows if r["field"] == "tag" and r["kind"] == "predicted" and not r["predicted"].isascii())
    pid = persian["product_id"]
    for r in rows:
        if r["product_id"] == pid:
            r["decision"] = "accept" if r["field"] == "product" else ""
    persian.update(decision="correct", corrected=persian["predicted"].split(":")[0] + ": سفید\nمشکی")
    clean = write_csv(tmp_path / "clean.csv", rows).read_text("utf-8")
    mangled = tmp_path / "mangled.csv"
    mangled.write_text(clean.encode().decode("cp1256"), "utf-8-sig")
    lost = tmp_path / "lost.csv"
    lost.write_bytes(clean.encode("cp1252", errors="replace"))

    refused = tagkit(demo_db, "feedback", "import", str(lost))
    assert refused.exit_code == ExitCode.USAGE and "question marks" in refused.stderr
    assert "nothing was imported" in refused.stderr
    with Store(demo_db) as store:
        assert feedback_rows(store) == []
    result = tagkit(demo_db, "feedback", "import", str(mangled))
    assert result.exit_code == ExitCode.OK, result.stderr
    assert "mended" in result.stderr
    with Store(demo_db) as store:
        corrected = [r["corrected"] for r in feedback_rows(store) if r["decision"] == "correct"]
    assert corrected == [persian["predicted"].split(":")[0] + ": سفید | مشکی"], "lines typed in one cell are a list"


def test_a_sheet_saved_in_another_encoding_is_refused_as_the_products_reader_refuses_it(tmp_path: Path):
    """A review sheet Excel saved as plain CSV on a Persian Windows (cp1256) was refused with a usage banner and a byte
    offset, without the line, the encoding it looks saved in or how to save it (a Windows shop audit)."""
    text = ("product_id,field,kind,predicted,decision,corrected\r\n"
            "p1,category,predicted,کیف > کیف پول,accept,\r\np1,tag,predicted,رنگ: مشکی,correct,رنگ: سفید\r\n")
    sheet = tmp_path / "sheet.csv"
    sheet.write_bytes(text.replace("ی", "ي").encode("cp1256"))  # (cp1256 has the Arabic yeh only)
    result = tagkit(tmp_path / "tagkit.db", "feedback", "import", str(sheet))
    assert result.exit_code == ExitCode.USAGE
    said = " ".join(result.stderr.split())
    assert "Usage:" not in said
    assert f"error: {sheet}: not UTF-8: line 2 has a byte (0x98) that UTF-8 cannot decode; the file looks saved as " \
           "Windows-1256 (Persian/Arabic Windows). Save it as UTF-8 (Excel: 'CSV UTF-8'" in said
    assert said.endswith("nothing was imported")


def test_a_sheet_with_excels_sep_line_is_read(demo_db: Path, tmp_path: Path):
    """A review sheet Excel saved `;`-separated with its `sep=;` first line was refused: "no column decision, field,
    product_id" (the products reader skips that line and takes its delimiter)."""
    path = tmp_path / "sheet.csv"
    assert tagkit(demo_db, "review", "--sheet", str(path), "--limit", "2").exit_code == ExitCode.OK
    rows = list(csv.DictReader(path.open(encoding="utf-8-sig")))
    first = rows[0]["product_id"]
    for r in rows:
        r["decision"] = "accept" if r["product_id"] == first and r["field"] == "product" else ""
    rows.append({**rows[-1], "decision": "perhaps"})
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("sep=;\r\n")
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    result = tagkit(demo_db, "feedback", "import", str(path))
    assert result.exit_code != ExitCode.USAGE, result.stderr
    assert f"row {len(rows) + 2}" in result.stderr and "'perhaps'" in result.stderr, "the file's own line numbers"
    with Store(demo_db) as store:
        decided = {r["product_id"] for r in feedback_rows(store)}
    assert decided == {first}


def test_a_sheet_a_mac_wrote_decomposed_decides_the_stored_product(demo_db: Path, tmp_path: Path):
    """Ids pasted from Finder's names come decomposed (NFD): `feedback import` said "no product 'کیف-آرتمن-1'",
    naming an id that looks the same as the stored one (a Mac audit)."""
    catalogue = tmp_path / "mine.csv"
    catalogue.write_text("id,title,category\nکیف-آرتمن-1,کیف آبی,مد و پوشاک > کیف\n", "utf-8")
    assert tagkit(demo_db, "import", str(catalogue), "--no-images").exit_code == ExitCode.OK
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(unicodedata.normalize("NFD", "product_id,field,decision,predicted,corrected\n"
                                           "کیف-آرتمن-1,category,correct,مد و پوشاک > کیف,مد و پوشاک > آرایشی\n"),
                     "utf-8")
    done = tagkit(demo_db, "feedback", "import", str(sheet))
    assert done.exit_code == ExitCode.OK, done.stderr
    with Store(demo_db) as store:
        [row] = feedback_rows(store)
    assert (row["product_id"], row["corrected"]) == ("کیف-آرتمن-1", "مد و پوشاک > آرایشی")


def test_a_time_typed_without_a_zone_is_this_machine_s_and_a_time_to_come_is_refused(demo_db: Path, tmp_path: Path):
    """A reviewer in Tehran typed `2026-12-02 20:00`: stored as 20:00 UTC, 3.5 hours on, in the future, where it beat
    every decision made until then (a locale audit). Without a zone the time is the machine's local time; a time
    later than now is a problem naming the row."""
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta, timezone

    pid = next(r["id"] for r in csv.DictReader((DEMO / "train.csv").open(encoding="utf-8")))
    tehran = timezone(timedelta(hours=3, minutes=30))
    typed = (datetime.now(tehran) - timedelta(hours=1)).replace(second=0, microsecond=0, tzinfo=None)
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    file = tmp_path / "sheet.csv"
    file.write_text("product_id,field,predicted,decision,created_at\n"
                    f"{pid},tag,color: Red,accept,{typed:%Y-%m-%d %H:%M}\n{pid},tag,color: Blue,reject,{later}\n",
                    "utf-8")
    done = subprocess.run([str(Path(sys.executable).with_name("tagkit")), "--db", str(demo_db), "feedback", "import",
                           str(file)], capture_output=True, text=True,
                          env={**os.environ, "TZ": "IRST-3:30"})  # (a POSIX zone: no tzdata needed)
    assert done.returncode == ExitCode.PARTIAL, done.stderr
    assert "row 3, field 'created_at'" in done.stderr and "is later than now" in done.stderr
    with Store(demo_db) as store:
        [row] = feedback_rows(store)
    assert datetime.fromisoformat(row["created_at"]) == typed.replace(tzinfo=tehran)
