"""The Python API as a long-lived process uses it: threads, argument checks, exceptions, type hints."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO, copy_db, write_csv
from threadpoolctl import threadpool_info

from tagkit.cpus import one_blas_thread
from tagkit.evaluation import evaluate
from tagkit.predicting import predict
from tagkit.store import Store


def blas_threads() -> list[tuple[str, int]]:
    """Each loaded BLAS library and its thread count."""
    return [(i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


def needs_blas_threads() -> list[tuple[str, int]]:
    """The BLAS settings now; skips when BLAS already runs on one thread (nothing to restore)."""
    np.ones((2, 2)) @ np.ones((2, 2))
    before = blas_threads()
    if not before or max(n for _, n in before) < 2:
        pytest.skip(f"BLAS already on one thread here: {before}")
    return before


@pytest.mark.parametrize("last", ["first", "second"])
def test_overlapping_one_blas_thread_blocks_restore_the_process_blas_threads(last: str):
    before = needs_blas_threads()
    entered, leave = [threading.Event() for _ in range(2)], [threading.Event() for _ in range(2)]
    seen: list[list[tuple[str, int]]] = []

    def block(k: int) -> None:
        with one_blas_thread():
            entered[k].set()
            leave[k].wait(10)
            seen.append(blas_threads())

    threads = [threading.Thread(target=block, args=(k,)) for k in range(2)]
    threads[0].start()
    assert entered[0].wait(10)
    threads[1].start()
    assert entered[1].wait(10)
    order = [0, 1] if last == "second" else [1, 0]
    leave[order[0]].set()
    threads[order[0]].join(10)
    assert {n for _, n in blas_threads()} == {1}  # the other block still runs: still one thread
    leave[order[1]].set()
    threads[order[1]].join(10)
    assert all({n for _, n in s} == {1} for s in seen)
    assert blas_threads() == before


def test_predict_from_several_threads_at_once_leaves_the_blas_threads_as_they_were(demo_predicted: Path,
                                                                                    tmp_path: Path):
    db = copy_db(demo_predicted, tmp_path / "tagkit.db")
    rows = [{"id": f"p{i}", "title": title} for i, title in enumerate(
        ["Kronix E61 Ceramic Mug, Navy Blue", "عینک‌آفتابی زنانه", "Leather wallet brown", "Running shoes red"])]
    before = needs_blas_threads()
    errors: list[BaseException] = []
    got: list[str] = []
    start = threading.Barrier(4)

    def worker(k: int) -> None:
        try:
            with Store(db) as store:
                start.wait(30)
                for j in range(3):
                    source = write_csv(tmp_path / f"t{k}-{j}.csv", [rows[k]])
                    predict(store, source, force=True, on_prediction=lambda p: got.append(p.id))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors
    assert sorted(got) == sorted(f"p{k}" for k in range(4) for _ in range(3))
    assert blas_threads() == before


@pytest.mark.parametrize("top_k", [0, -1, 21, "3", 2.0, True, None])
def test_predict_and_evaluate_refuse_a_top_k_the_command_line_refuses(demo_db: Path, top_k: object):
    with Store(demo_db) as store:
        stored = store.db.execute("select count(*) from predictions").fetchone()
        with pytest.raises(ValueError, match=r"top_k must be a whole number from 1 to 20"):
            predict(store, DEMO / "new.csv", top_k=top_k)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"top_k must be a whole number from 1 to 20"):
            evaluate(store, DEMO / "test.csv", top_k=top_k)  # type: ignore[arg-type]
        assert store.db.execute("select count(*) from predictions").fetchone() == stored


@pytest.mark.parametrize("top_k", [1, np.int64(2), 20])
def test_predict_takes_top_k_from_1_to_20(demo_db: Path, tmp_path: Path, top_k: object):
    source = write_csv(tmp_path / "one.csv", [{"id": "p1", "title": "Kronix E61 Ceramic Mug, Navy Blue"}])
    got = []
    with Store(demo_db) as store:
        predict(store, source, top_k=top_k, on_prediction=got.append)  # type: ignore[arg-type]
    assert [p.id for p in got] == ["p1"]
    assert len(got[0].alternatives) <= int(top_k) - 1  # type: ignore[call-overload]


def test_evaluate_with_no_labelled_product_raises_nothing_to_score_with_the_result(demo_db: Path):
    import tagkit

    with Store(demo_db) as store, pytest.raises(tagkit.NothingToScore, match="nothing to score") as raised:
        evaluate(store, DEMO / "new.csv")  # photos and titles, no category or tags
    assert isinstance(raised.value, tagkit.NothingToLearn)
    result = raised.value.result
    assert result["products"] == 0 and result["category"]["n"] == 0 and result["category"]["accuracy"] is None
    assert raised.value.import_report is not None
    assert result["import"] == raised.value.import_report.counts()


def test_every_public_callable_has_type_hints_that_resolve():
    import inspect
    import typing

    import tagkit

    checked = []
    for name in tagkit.__all__:
        obj = getattr(tagkit, name)
        if not callable(obj):
            continue
        targets = [(name, obj)]
        if inspect.isclass(obj):  # and its own public methods
            targets += [(f"{name}.{attr}", value) for attr, value in vars(obj).items()
                        if inspect.isfunction(value) and (not attr.startswith("_") or attr == "__init__")]
        for label, target in targets:
            typing.get_type_hints(target)  # NameError for a name imported only under TYPE_CHECKING
            checked.append(label)
    assert {"predict", "train", "evaluate", "import_products", "review_queue", "apply_feedback",
            "AttributeExtractor.fit"} <= set(checked)
    hints = typing.get_type_hints(tagkit.predict)
    assert hints["store"] is tagkit.Store and hints["return"] is tagkit.PredictReport


def test_every_kind_of_an_exported_exception_is_exported():
    """`SourceReadInPart` (`train` on a file read only in part) was not exported: a script could not tell "mend the
    file" from "nothing labelled" without importing `tagkit.training`."""
    import importlib
    import inspect
    import pkgutil

    import tagkit

    for module in pkgutil.iter_modules(tagkit.__path__):
        importlib.import_module(f"tagkit.{module.name}")
    exported = {getattr(tagkit, name) for name in tagkit.__all__}
    kinds = [kind for kind in exported if inspect.isclass(kind) and issubclass(kind, Exception)]
    while kinds:
        kind = kinds.pop()
        for sub in kind.__subclasses__():
            assert sub in exported and getattr(tagkit, sub.__name__) is sub, f"{sub.__name__} is not exported"
            kinds.append(sub)
    from tagkit import SourceReadInPart

    assert issubclass(SourceReadInPart, tagkit.NothingToLearn)


def test_the_result_types_are_exported_and_tagkit_says_it_is_typed():
    import tagkit
    from tagkit.backups import Backup
    from tagkit.predicting import PredictedProduct, PredictReport
    from tagkit.training import TrainReport

    assert (tagkit.PredictedProduct, tagkit.PredictReport, tagkit.TrainReport, tagkit.Backup) == (
        PredictedProduct, PredictReport, TrainReport, Backup)
    assert {"PredictedProduct", "PredictReport", "TrainReport", "ImportReport", "Backup"} <= set(tagkit.__all__)
    assert (Path(tagkit.__file__).parent / "py.typed").is_file()
