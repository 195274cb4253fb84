"""Does review pay? A simulated reviewer on the fashion catalogue: `uncertain` order against `random`.

    .venv/bin/python bench/active.py [--start 1000] [--batch 200] [--rounds 8]

The true labels are the oracle. A fixed test split (20 % by a hash of the id, as bench/quality.py) is never
reviewed. From the rest, a labelled start set (--start products, chosen by a hash of the id) trains the first
model; the other products are the review pool. Each round the model predicts the pool, the next --batch
products in review order are "reviewed" (they join the labelled set with their true category and tags), and
the model is retrained. `uncertain` ranks the pool with tagkit's own review queue (`tagkit.queue.rank_uncertain`:
category margin, tag scores near their thresholds, near-identical products pushed down); `random` shuffles it
with a fixed seed. Products have their title and image, as in a normal catalogue.

Prints the learning curves (category top-1 and tag micro-F1 on the test split, per round, both orders), how
many reviews `uncertain` needs to reach `random`'s final scores, and writes bench/results/active.json and a
plot, bench/results/active.png (drawn with Pillow).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import RESULTS, fashion_dataset, split_by_id, stable_hash

from tagkit.dataset import Dataset
from tagkit.models import CatalogueModel
from tagkit.models.metrics import evaluate
from tagkit.predicting import to_record
from tagkit.product import Product
from tagkit.queue import rank_uncertain

ORDERS = ("uncertain", "random")


def review_order(model: CatalogueModel, pool: Dataset, order: str, seed: int) -> list[int]:
    """Positions of the pool's products in the order a reviewer would see them."""
    if order == "random":
        positions = list(range(len(pool)))
        random.Random(seed).shuffle(positions)
        return positions
    predictions = model.predict(pool)
    records = [to_record(Product(id=pool.ids[i], title=pool.texts[i], image="image" if pool.has_image[i] else None),
                         p, "m") for i, p in enumerate(predictions)]
    thresholds = model.report.get("thresholds", {})
    flat = {**thresholds, **thresholds.get("tags", {})}
    position = {pid: i for i, pid in enumerate(pool.ids)}
    return [position[r.id] for r in rank_uncertain(records, {"m": flat})]


def scores(model: CatalogueModel, test: Dataset) -> dict[str, float]:
    result = evaluate(test, model.predict(test))
    return {"category_top1": result["category"]["accuracy"], "tag_micro_f1": result["tags"]["micro_f1"]}


def simulate(train: Dataset, test: Dataset, order: str, start: int, batch: int, rounds: int) -> list[dict]:
    labelled = np.array(sorted(range(len(train)), key=lambda i: stable_hash(train.ids[i], "start"))[:start])
    pool = np.setdiff1d(np.arange(len(train)), labelled)
    curve = []
    for r in range(rounds + 1):
        tick = time.perf_counter()
        model = CatalogueModel(seed=0).fit(train.subset(labelled))
        point = {"round": r, "reviews": r * batch, "labelled": len(labelled), **scores(model, test)}
        if r < rounds:
            chosen = pool[review_order(model, train.subset(pool), order, seed=r)[:batch]]
            labelled = np.concatenate([labelled, chosen])
            pool = np.setdiff1d(pool, chosen)
        point["seconds"] = round(time.perf_counter() - tick, 1)
        curve.append(point)
        print(f"  {order:<9} round {r}: {point['labelled']:>5} labelled  top-1 {point['category_top1']:.4f}  "
              f"tag F1 {point['tag_micro_f1']:.4f}  ({point['seconds']} s)", flush=True)
    return curve


def reviews_to_reach(curve: list[dict], target: float, key: str) -> int | None:
    return next((p["reviews"] for p in curve if p[key] >= target), None)


def plot(curves: dict[str, list[dict]], path: Path, size: tuple[int, int] = (900, 420)) -> None:
    """Two panels (category top-1, tag micro-F1) against reviews, one line per order."""
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    colours = {"uncertain": (200, 60, 40), "random": (40, 90, 200)}
    panels = (("category_top1", "category top-1"), ("tag_micro_f1", "tag micro-F1"))
    pad, panel_w = 55, (width - 3 * 55) // 2
    for n, (key, title) in enumerate(panels):
        left, top, bottom = pad + n * (panel_w + pad), 30, height - 45
        values = [p[key] for c in curves.values() for p in c]
        lo, hi = min(values), max(values)
        lo, hi = lo - 0.05 * (hi - lo + 1e-9), hi + 0.05 * (hi - lo + 1e-9)
        reviews = max(p["reviews"] for c in curves.values() for p in c) or 1
        draw.rectangle([left, top, left + panel_w, bottom], outline="black")
        draw.text((left, 8), title, fill="black")
        for frac in (0.0, 0.5, 1.0):
            y = bottom - frac * (bottom - top)
            draw.text((left - 48, y - 6), f"{lo + frac * (hi - lo):.3f}", fill="black")
            draw.text((left + frac * panel_w - 12, bottom + 6), f"{int(frac * reviews)}", fill="black")
        draw.text((left + panel_w // 2 - 20, bottom + 24), "reviews", fill="black")
        for i, (order, curve) in enumerate(curves.items()):
            points = [(left + p["reviews"] / reviews * panel_w, bottom - (p[key] - lo) / (hi - lo) * (bottom - top))
                      for p in curve]
            draw.line(points, fill=colours.get(order, "black"), width=2)
            for x, y in points:
                draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colours.get(order, "black"))
            draw.text((left + 8, top + 6 + 14 * i), order, fill=colours.get(order, "black"))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS / "active.json")
    args = parser.parse_args()
    data = fashion_dataset()
    test_mask = split_by_id(data.ids)
    train, test = data.subset(np.flatnonzero(~test_mask)), data.subset(np.flatnonzero(test_mask))
    print(f"fashion: pool of {len(train)} (start {args.start}, {args.rounds} rounds of {args.batch}), "
          f"test {len(test)}")
    curves = {order: simulate(train, test, order, args.start, args.batch, args.rounds) for order in ORDERS}
    final = curves["random"][-1]
    print(f"\n{'reviews':>7} " + " ".join(f"{o + ' ' + k:>22}" for o in ORDERS for k in ("top-1", "tag F1")))
    for points in zip(*curves.values(), strict=True):
        print(f"{points[0]['reviews']:>7} " + " ".join(f"{p[k]:>22.4f}" for p in points
                                                        for k in ("category_top1", "tag_micro_f1")))
    summary = {}
    for key in ("category_top1", "tag_micro_f1"):
        needed = reviews_to_reach(curves["uncertain"], final[key], key)
        summary[key] = {"random_final": final[key], "random_reviews": final["reviews"], "uncertain_reviews": needed,
                        "goal_met": needed is not None and needed <= final["reviews"] / 2}
        print(f"{key}: random reaches {final[key]:.4f} after {final['reviews']} reviews; uncertain after "
              f"{needed if needed is not None else 'more than ' + str(final['reviews'])} "
              f"({'goal met' if summary[key]['goal_met'] else 'goal not met'}: at most half)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"params": vars(args) | {"out": str(args.out)}, "curves": curves,
                                    "summary": summary}, indent=1))
    plot(curves, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
