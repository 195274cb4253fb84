"""Attribute extraction from titles: candidate matching on real titles, and the extractor end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagkit.dataset import Dataset
from tagkit.extract import AttributeExtractor, find_spans, parse_title, shape
from tagkit.product import Product, Tag
from tagkit.taxonomy import load_taxonomy
from tagkit.text import match_key

REPO = Path(__file__).resolve().parent.parent
ZWNJ = "\u200c"


@pytest.mark.parametrize(("title", "value", "shown"), [
    # Torob titles and their gold values: half-space in the title, a space in the label
    ("پلیور مردانه مالدینی کد po-003 رنگ سرمه‌ای", "سرمه ای", f"سرمه{ZWNJ}ای"),
    # a space in the title, a half-space in the vocabulary; the value inside brackets
    ("ساعت ست زنانه و مردانه کاسیو طرح سه موتور همراه دستبند کارتیر و حلقه(نقره ای)", f"نقره{ZWNJ}ای", "نقره ای"),
    # Persian digits in the title, Latin digits in the label
    ("شومیز زنانه ریسانی مدل ۲۱۴۴ شیری 48", "2144", "2144"),
    ("سوتین نخی توپی طرح مادام سایز ۸۵", "سایز 85", "سایز 85"),
    # multi-word values, matched whole
    ("تیشرت آستین بلند مردانه طرح venom کد F235", "آستین بلند", "آستین بلند"),
    ("جوراب شلواری 3-4 سال طرح ساده چیکو Chicoo", "3-4 سال", "3-4 سال"),
    ("کیف پول چند رنگ مردانه و زنانه چرمی واقعی اورجینال گتو دری Getto Deri", "چرمی واقعی", "چرمی واقعی"),
    # Arabic letters, glued compound, English units and case
    ("كيف دوشي زنانه مشكي", "مشکی", "مشکی"),
    ("شلوار جین زنانه مام استایل", "مام‌استایل", "مام استایل"),
    ("SEAPESCA 3pcs/lot Vivid Soft Fishing Lure Bait 80mm 4.5g Worm", "4.5G", "4.5g"),
])
def test_values_are_found_in_real_titles_however_they_are_written(title: str, value: str, shown: str) -> None:
    parsed = parse_title(title)
    spans = find_spans(parsed, match_key(value))
    assert len(spans) == 1
    assert parsed.surface(*spans[0]) == shown  # as the title writes it, normalised (Persian letters, Latin digits)


def test_spans_stop_at_punctuation_and_shapes_generalise() -> None:
    parsed = parse_title("شلوار جین بگ ساده | کد:192")
    assert ("ساده", "کد") not in [tuple(parsed.keys[i:j]) for i, j in parsed.spans(6)]
    assert find_spans(parsed, "بگ ساده") == [(2, 4)]
    assert shape("85mm") == shape("120mm") == "9a" and shape("ya205a") == "a9a" and shape("سایز 42") == "پ 9"


def torob_products(shared_data: Path) -> list[Product]:
    from tagkit.catalogue import read_input
    from tagkit.config import Mapping

    mapping = Mapping(id=("random_key",), title=("title",), tags=("attributes",), skip_values=("نامشخص",))
    return [r for r in read_input(shared_data / "torob_attributes" / "products.jsonl", mapping=mapping)
            if isinstance(r, Product) and r.tags]


@pytest.fixture(scope="module")
def fitted(shared_data: Path) -> tuple[AttributeExtractor, list[Product]]:
    """An extractor fitted on 800 Torob products with canonical labels (the shipped taxonomy)."""
    taxonomy = load_taxonomy(REPO / "taxonomy" / "fa-fashion.yaml")
    products = torob_products(shared_data)
    for product in products:
        taxonomy.canonicalise([product])
    train, test = products[:800], products[800:1000]
    model = AttributeExtractor(skip_attributes=["نوع کلی"], rounds=60)
    model.fit(Dataset.from_products(train, {}, 8), taxonomy=taxonomy)
    return model, test


def test_candidates_match_the_vocabulary_across_spellings(fitted: tuple[AttributeExtractor, list[Product]]) -> None:
    model, _ = fitted
    found = {(str(tag), source, span) for tag, source, span in
             model.candidates("شومیز زنانه آستین بلند قهوه اي سایز ۴۲ | کد 1234")}
    assert (f"رنگ: قهوه{ZWNJ}ای", "dictionary", "قهوه ای") in found  # Arabic ي, a space: the canonical value
    assert ("نوع آستین: آستین بلند", "dictionary", "آستین بلند") in found  # two words, one value
    assert any(tag.startswith("سایز: ") and span == "42" for tag, _, span in found)  # Persian digits
    assert not any("42" in span and "کد" in span for _, _, span in found)  # no span across the |


def test_extractor_predicts_canonical_valid_tags(fitted: tuple[AttributeExtractor, list[Product]],
                                                 tmp_path: Path) -> None:
    model, test = fitted
    data = Dataset.from_products(test, {}, 8)
    predictions = model.predict(data)
    taxonomy = model.taxonomy
    assert all(taxonomy.canonical(tag) == tag for p in predictions for tag, _ in p.tags)
    single = {a.name for a in taxonomy.attributes if not a.multi_valued}
    for prediction in predictions:
        names = [tag.name for tag, _ in prediction.tags]
        assert all(names.count(name) == 1 for name in names if name in single)
        assert all(0 <= score <= 1 for _, score in prediction.tags + prediction.candidates)
    gold = {(p.id, t) for p in test for t in p.tags if t.name != "نوع کلی"}
    predicted = {(p.id, t) for p, e in zip(test, predictions, strict=True) for t, _ in e.tags}
    hits = len(gold & predicted)
    assert hits / len(predicted) > 0.6 and hits / len(gold) > 0.4  # far above chance on unseen products
    model.save(tmp_path)
    again = AttributeExtractor.load(tmp_path).predict(data)
    assert [e.tags for e in again] == [e.tags for e in predictions]


def test_english_titles_with_the_attributes_asked(shared_data: Path, tmp_path: Path) -> None:
    def read(name: str) -> tuple[list[Product], list[set[str]]]:
        products, asked = [], []
        for n, line in enumerate((shared_data / "ae110k" / name).open(encoding="utf-8")):
            record = json.loads(line)
            tags = tuple(Tag(a, v) for a, vs in record["target_scores"].items() for v in vs if v != "n/a")
            products.append(Product(id=f"{name}{n}", title=record["input"], tags=tags))
            asked.append(set(record["target_scores"]))
        return products, asked

    train, asked = read("train.jsonl")
    model = AttributeExtractor(rounds=60).fit(Dataset.from_products(train, {}, 8), attributes=asked)
    title = "SEAPESCA Minnow Fishing Lure 30mm 1.6g Topwater Hard Bait Japan Crankbait Carp Fishing YA205a"
    data = Dataset.from_products([Product(id="x", title=title)], {}, 8)
    [only_weight] = model.predict(data, attributes=[{"Weight"}])
    assert [str(tag) for tag, _ in only_weight.tags] == ["Weight: 1.6g"]  # a value never seen in training
    [everything] = model.predict(data, attributes=[{"Brand Name", "Length", "Weight", "Model Number"}])
    assert {"Brand Name: SEAPESCA", "Length: 30mm", "Weight: 1.6g"} <= {str(t) for t, _ in everything.tags}

    # saved and loaded in a fresh process: the same tags, without importing scikit-learn, LightGBM's package,
    # scipy.stats or hazm (English titles need none of them at prediction time)
    import subprocess
    import sys

    model.save(tmp_path)
    code = (f"import sys; from tagkit.extract import AttributeExtractor; from tagkit.dataset import Dataset; "
            f"from tagkit.product import Product; "
            f"d = Dataset.from_products([Product(id='x', title={title!r})], {{}}, 8); "
            f"print(sorted(str(t) for t, _ in AttributeExtractor.load({str(tmp_path)!r}).predict(d)[0].tags)); "
            f"print(sorted(n for n in ('sklearn', 'lightgbm', 'scipy.stats', 'hazm') if n in sys.modules))")
    tags, imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.splitlines()
    assert tags == str(sorted(str(t) for t, _ in model.predict(data)[0].tags)) and imported == "[]"


FIT_IN_A_NEW_PROCESS = """
import hashlib, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_extract import torob_products
from tagkit.dataset import Dataset
from tagkit.extract import AttributeExtractor
products = torob_products(Path({shared!r}))[:300]
model = AttributeExtractor(skip_attributes=["نوع کلی"], rounds=40, n_jobs=1)
model.fit(Dataset.from_products(products, {{}}, 8))
model.save({folder!r})
print(hashlib.sha256(model.booster.model_to_string().encode()).hexdigest())
"""
PREDICT_IN_A_NEW_PROCESS = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_extract import torob_products
from tagkit.dataset import Dataset
from tagkit.extract import AttributeExtractor
data = Dataset.from_products(torob_products(Path({shared!r}))[300:400], {{}}, 8)
print(repr([[(str(t), s) for t, s in e.tags] for e in AttributeExtractor.load({folder!r}).predict(data)]))
print("lightgbm" in sys.modules)
"""


def test_the_same_products_give_the_same_extractor_in_any_process(shared_data: Path, tmp_path: Path) -> None:
    """Python orders sets of strings differently in each process (hash randomisation): the candidates, and so the
    model, must not depend on it. A saved extractor predicts in a fresh process without importing the `lightgbm`
    package (hazm imports scikit-learn for Persian titles anyway, through nltk), and the same in every process."""
    import os
    import subprocess
    import sys

    def run(script: str, seed: int, folder: Path) -> list[str]:
        code = script.format(tests=str(REPO / "tests"), shared=str(shared_data), folder=str(folder))
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        return done.stdout.splitlines()

    first, second = run(FIT_IN_A_NEW_PROCESS, 1, tmp_path / "a"), run(FIT_IN_A_NEW_PROCESS, 2, tmp_path / "b")
    assert first == second
    tags, imported = run(PREDICT_IN_A_NEW_PROCESS, 3, tmp_path / "a")
    assert imported == "False"
    assert tags == run(PREDICT_IN_A_NEW_PROCESS, 4, tmp_path / "b")[0]
    assert sum(len(t) for t in eval(tags)) > 50  # it does extract

    products = torob_products(shared_data)
    model = AttributeExtractor.load(tmp_path / "a")
    assert repr([[(str(t), s) for t, s in e.tags] for e in model.predict(
        Dataset.from_products(products[300:400], {}, 8))]) == tags


def test_an_extractor_saved_by_an_earlier_tagkit_still_loads(fitted: tuple[AttributeExtractor, list[Product]],
                                                            tmp_path: Path) -> None:
    """Earlier versions wrote `extractor.joblib` with a scikit-learn vectoriser inside: it loads, its vocabulary
    and idf become a `Tfidf`, and it predicts what the extractor it was saved from predicts."""
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer

    from tagkit.extract import _title_terms

    model, test = fitted
    vectoriser = TfidfVectorizer(analyzer=_title_terms, sublinear_tf=True)
    vectoriser.vocabulary_ = dict(model.vectorizer.vocabulary)
    vectoriser.idf_ = model.vectorizer.idf.astype(float)
    joblib.dump({**model.__dict__, "vectorizer": vectoriser, "booster": model.booster.model_to_string()},
                tmp_path / "extractor.joblib", compress=3)
    data = Dataset.from_products(test, {}, 8)
    assert [e.tags for e in AttributeExtractor.load(tmp_path).predict(data)] == [e.tags for e in model.predict(data)]


def test_a_value_the_labels_write_two_ways_comes_out_as_the_title_writes_it() -> None:
    """An English catalogue labels `Gender: Men's` where the title says `Men's` and `Gender: Men` where it says
    `Men`; the match key is the same, and the extractor used to give its most common spelling to both (so `eval`,
    which tells `Men` from `Men's`, scored every `Men's` wrong, and a review correcting it was never learnt)."""
    products = []
    for i in range(240):
        gender, possessive = ("Men", "Women")[i % 2], i % 3 == 0
        written = f"{gender}'s" if possessive else gender
        products.append(Product(id=str(i), title=f"{written} Cotton Polo Shirt {('Blue', 'Red', 'Grey')[i % 3]}",
                                tags=(Tag("Gender", written), Tag("Material", "Cotton"))))
    extractor = AttributeExtractor().fit(Dataset.from_products(products, {}, 8))
    new = [Product(id="a", title="Men's Slim Fit Shirt Cotton"), Product(id="b", title="Women Slim Fit Shirt")]
    got = [{t.name: t.value for t, _ in e.tags} for e in extractor.predict(Dataset.from_products(new, {}, 8))]
    assert got[0]["Gender"] == "Men's" and got[1]["Gender"] == "Women"
    # labels that mostly write `Men` where the title says `Men's`: the labels' way wins, not the title's
    mostly = [Product(id=p.id, title=p.title.replace(p.tags[0].value, p.tags[0].value.removesuffix("'s") + "'s"),
                      tags=(Tag("Gender", p.tags[0].value.removesuffix("'s") + ("'s" if int(p.id) % 10 == 0 else "")),
                            p.tags[1])) for p in products]
    extractor = AttributeExtractor().fit(Dataset.from_products(mostly, {}, 8))
    got = [{t.name: t.value for t, _ in e.tags} for e in extractor.predict(Dataset.from_products(new, {}, 8))]
    assert got[0]["Gender"] == "Men"
