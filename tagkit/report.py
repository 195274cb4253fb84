"""Readable terminal tables for `tagkit eval` and `tagkit models` (rich, on stdout)."""

from __future__ import annotations

import os
import re
from typing import Any

from rich.console import Console
from rich.table import Table

PER_CLASS_ROWS = 25
PIPE_WIDTH = 160
LRM = "\u200e"  # the left-to-right mark: no width, a strong left-to-right letter for the bidi algorithm
_RIGHT_TO_LEFT = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefe]")


def left_to_right(text: str) -> str:
    """`text` between left-to-right marks when it holds Persian (or other right-to-left) letters. A terminal or mail
    reader that lays out right-to-left text (GNOME Terminal, Konsole, mintty) otherwise takes the numbers after it,
    and the table's lines between them, into its run: a Persian tag's row showed its F1 under `tag` and its support
    under `recall`."""
    return f"{LRM}{text}{LRM}" if _RIGHT_TO_LEFT.search(text) else text


class StdoutConsole(Console):
    """rich's console on stdout, except that a closed stdout raises BrokenPipeError (the `tagkit` command then
    exits 141 with a message) where rich would exit 1 in silence, and that a pipe or file gets tables as wide as
    they need (up to `PIPE_WIDTH` columns), not cut to 80."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not self.is_terminal and "COLUMNS" not in os.environ:
            self.width = PIPE_WIDTH

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def print_evaluation(result: dict[str, Any], top_k: int = 3, console: Console | None = None) -> None:
    """Headline scores, the weakest categories and tags, and the most confused category pairs."""
    console = console or StdoutConsole()
    category, tags = result["category"], result["tags"]
    head = Table(title=f"model {result['model']} on {result['products']:,} labelled products", show_header=False)
    if category["n"]:
        head.add_row("category accuracy (top-1)", f"{category['accuracy']:.3f}", f"{category['n']:,} products")
        head.add_row(f"category top-{top_k} accuracy", f"{category[f'top{top_k}']:.3f}", "")
        head.add_row("category macro-F1", f"{category['macro_f1']:.3f}", "")
    if tags["n"]:
        head.add_row("tags micro P / R / F1", f"{tags['micro_precision']:.3f} / {tags['micro_recall']:.3f} / "
                     f"{tags['micro_f1']:.3f}", f"{tags['n']:,} products")
        head.add_row("tags macro P / R / F1", f"{tags['macro_precision']:.3f} / {tags['macro_recall']:.3f} / "
                     f"{tags['macro_f1']:.3f}", "")
        head.add_row("tags Hamming score", f"{tags['hamming_score']:.3f}", "mean |Y∩Z| / |Y∪Z|")
        head.add_row("tags exact match", f"{tags['exact_match']:.3f}", "")
    if result.get("attributes"):
        head.add_row("tags scored", f"only {', '.join(result['attributes'])}", "train.attributes")
    if result.get("seen_in_training"):
        head.add_row("seen in training", f"{result['seen_in_training']:,} products",
                     "scores not an honest estimate")
    if result.get("same_picture_in_training"):
        head.add_row("picture seen in training", f"{result['same_picture_in_training']:,} products",
                     "under another id; scores not an honest estimate")
    if category.get("not_learnt"):
        head.add_row("category not learnt", f"{category['not_learnt']:,} products",
                     f"counted wrong; e.g. {category['not_learnt_examples'][0]['category']}")
    if tags.get("not_learnt"):
        head.add_row("tags not learnt", f"{tags['not_learnt']:,} tags",
                     f"counted missed; e.g. {tags['not_learnt_examples'][0]['tag']}")
    if result.get("no_input"):
        head.add_row("no title, no image", f"{result['no_input']:,} products", "nothing predicted: counted wrong")
    console.print(head)
    if category["n"]:
        console.print(_class_table("categories (weakest first)", "category", category["per_category"]))
        if category["confused"]:
            confused = Table(title="most confused categories")
            for column in ("true", "predicted as", "count"):
                confused.add_column(column, justify="right" if column == "count" else "left")
            for row in category["confused"][:10]:
                confused.add_row(left_to_right(row["true"]), left_to_right(row["predicted"]), str(row["count"]))
            console.print(confused)
    confidence = _confidence_table(category.get("confidence"), tags.get("confidence"))
    if confidence is not None:
        console.print(confidence)
    if tags["n"]:
        by_attribute = Table(title="tags by attribute")
        for column in ("attribute", "n", "precision", "recall", "F1"):
            by_attribute.add_column(column, justify="left" if column == "attribute" else "right")
        for name, row in result.get("tags_by_attribute", {}).items():
            by_attribute.add_row(left_to_right(name) or "(plain tags)", f"{row['n']:,}",
                                 f"{row['micro_precision']:.3f}", f"{row['micro_recall']:.3f}",
                                 f"{row['micro_f1']:.3f}")
        console.print(by_attribute)
        console.print(_class_table("tags (weakest first)", "tag", tags["per_tag"]))


def _confidence_table(category: dict[str, Any] | None, tags: dict[str, Any] | None) -> Table | None:
    """For each score step: how many answers score at least that much and how many of them are right; the
    calibration error (ECE) in the caption."""
    parts = [(name, part) for name, part in (("categories", category), ("tags", tags)) if part and part["n"]]
    if not parts:
        return None
    table = Table(title="how often a score is right")
    table.add_column("score at least", justify="right")
    for name, _ in parts:
        table.add_column(f"{name} (share)", justify="right")
        table.add_column("right", justify="right")
    for row, score in enumerate(step["score"] for step in parts[0][1]["at_least"]):
        cells = [f"{score:.2f}"]
        for _, part in parts:
            step = part["at_least"][row]
            cells += [f"{step['n']:,} ({step['share']:.0%})",
                      "-" if step["accuracy"] is None else f"{step['accuracy']:.3f}"]
        table.add_row(*cells)
    table.caption = "calibration error (ECE, 0 = a score of 0.8 is right 8 times in 10): " + ", ".join(
        f"{name} {part['ece']:.3f}" for name, part in parts)
    return table


def _class_table(title: str, key: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in (key, "support", "predicted", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == key else "right")
    scored = sorted((r for r in rows if r["support"]), key=lambda r: (r["f1"], -r["support"]))
    for row in scored[:PER_CLASS_ROWS]:
        table.add_row(left_to_right(row[key]), f"{row['support']:,}", f"{row['predicted']:,}",
                      f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}")
    if len(scored) > PER_CLASS_ROWS:
        table.caption = f"{len(scored) - PER_CLASS_ROWS} more; all of them with --json"
    return table


def print_models(versions: list[dict[str, Any]], console: Console | None = None) -> None:
    """One row per model version, newest first."""
    console = console or StdoutConsole()
    table = Table(title="model versions (newest first; `predict` uses the newest)")
    table.add_column("version", no_wrap=True, min_width=19)
    for column in ("products", "categories", "tags", "validation top-1 (inputs)", "train s", "folder"):
        table.add_column(column)
    for row in versions:
        counts, metrics = row["counts"], row["metrics"]
        shown = ", ".join(f"{inputs} {m['category_top1']:.3f}" for inputs, m in metrics.items()
                          if isinstance(m, dict) and isinstance(m.get("category_top1"), float))
        table.add_row(row["id"], f"{counts.get('products', 0):,}", str(counts.get("categories", "")),
                      str(counts.get("tags", "")), shown, f"{row['duration_s'] or 0:.1f}",
                      ("ok" if row.get("beside", True) else "elsewhere") if row["available"] else "missing")
    if any(row["available"] and not row.get("beside", True) for row in versions):
        table.caption = ("elsewhere: not beside this database; read from the folder it was saved in (another "
                         "project's, for a copied database: `--json` has the path)")
    console.print(table)
