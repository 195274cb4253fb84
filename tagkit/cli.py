"""The `tagkit` command: options and output only; the work is done by the library.

Heavy modules (numpy, onnxruntime, hazm, sqlite-utils) are imported inside the commands so that
`tagkit --help` answers at once.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from tagkit import __version__
from tagkit.exitcodes import ExitCode


class Context:
    """What every command gets: where the database is and how talkative to be."""

    def __init__(self, db: Path, quiet: bool) -> None:
        self.db = db
        self.quiet = quiet

    def log(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)

    def open_store(self):  # -> tagkit.store.Store
        from tagkit.store import Store

        try:
            return Store(self.db)
        except (OSError, FileNotFoundError) as error:
            raise click.UsageError(f"cannot open the database {self.db}: {error}") from error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagkit")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="TAGKIT_DB",
    default="tagkit.db",
    show_default=True,
    help="The SQLite database file (env TAGKIT_DB).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print no progress or problems on stderr (for cron).")
@click.pass_context
def main(ctx: click.Context, db: Path, quiet: bool) -> None:
    """Put products into categories and give them tags, from images and titles.

    \b
    tagkit import products.csv        read a catalogue into the database
    tagkit stats                      what the database holds
    """
    ctx.obj = Context(db, quiet)


@main.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Column mapping (tagkit.yaml). Default: ./tagkit.yaml when it exists.")
@click.option("-m", "--map", "overrides", multiple=True, metavar="FIELD=COLUMN",
              help="Read a tagkit field from a column, e.g. --map title=productDisplayName. Repeatable.")
@click.option("--products", "products_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With a folder of images: a products file giving their titles and labels.")
@click.option("--image-model", type=click.Choice(["int8", "fp32"]), default="int8", show_default=True,
              help="Bundled image model variant used for the features.")
@click.option("--no-images", is_flag=True, help="Store products only; compute no image features.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_obj
def import_command(
    obj: Context,
    source: Path,
    config_path: Path | None,
    overrides: tuple[str, ...],
    products_file: Path | None,
    image_model: str,
    no_images: bool,
    as_json: bool,
) -> None:
    """Read a catalogue (CSV/TSV/JSONL/JSON file, or a folder of images) into the database.

    Products are stored (a later row with the same id replaces an earlier one) and each image is
    embedded once: images whose content is already in the features cache are not recomputed.
    """
    from tagkit.image import ImageEmbedder
    from tagkit.ingest import import_products

    mapping = _load_mapping(config_path, overrides)
    embedder = None if no_images else ImageEmbedder(variant=image_model)
    with obj.open_store() as store, _Progress(obj, "importing") as progress:
        run_id = store.start_run("import", {"source": str(source), "config": str(config_path or ""),
                                            "map": list(overrides), "image_model": image_model})
        try:
            report = import_products(
                store, source, mapping=mapping, products_file=products_file, embedder=embedder,
                on_problem=progress.problem, on_progress=progress.update, run_id=run_id)
        except BaseException:
            store.finish_run(run_id, "failed", {})
            raise
        status = "partial" if report.problem_count else "ok"
        store.finish_run(run_id, status, report.counts())
    if as_json:
        click.echo(json.dumps({**report.counts(), "problems": [_problem_dict(p) for p in report.problems]},
                              ensure_ascii=False, indent=2))
    else:
        _print_import_report(report)
    sys.exit(ExitCode.PARTIAL if report.problem_count else ExitCode.OK)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.pass_obj
def stats(obj: Context, as_json: bool) -> None:
    """Show what the database holds."""
    if not obj.db.exists():
        raise click.UsageError(f"no database at {obj.db} (run `tagkit import` first, or pass --db)")
    with obj.open_store() as store:
        facts = store.stats()
    if as_json:
        click.echo(json.dumps(facts, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{facts['database']} ({facts['size_bytes'] / 1e6:.1f} MB)", show_header=False)
    for name, count in facts["tables"].items():
        table.add_row(f"[bold]{name}[/]", f"{count:,}")
    for name, count in facts["products"].items():
        table.add_row(f"  products {name.replace('_', ' ')}", f"{count:,}")
    for model, counts in facts["features"].items():
        table.add_row(f"  features {model}", f"{counts['embeddings']:,} embeddings, "
                      f"{counts['unreadable_images']:,} unreadable")
    if facts["last_run"]:
        run = facts["last_run"]
        table.add_row("last run", f"#{run['id']} {run['command']} {run['started_at']} {run['status']}")
    Console().print(table)


def _load_mapping(config_path: Path | None, overrides: tuple[str, ...]):  # -> Mapping | None
    from tagkit.config import ConfigError, load_config

    path = config_path or (Path("tagkit.yaml") if Path("tagkit.yaml").exists() else None)
    try:
        config = load_config(path) if path else None
        mapping = config.mapping if config else None
        if overrides:
            from tagkit.config import Mapping

            mapping = (mapping or Mapping()).with_overrides(list(overrides))
    except ConfigError as error:
        raise click.UsageError(str(error)) from error
    return mapping


def _problem_dict(problem: Any) -> dict[str, Any]:
    return {"file": problem.file, "row": problem.row, "field": problem.field, "message": problem.message,
            "skipped": problem.skipped, "info": problem.info}


def _print_import_report(report: Any) -> None:
    lines = [
        f"source            {report.source}",
        f"products stored   {report.products_stored:,}",
        f"rows skipped      {report.rows_skipped:,}",
        f"images            {report.images:,}",
    ]
    if report.image_model:
        lines += [
            f"  embedded now    {report.images_embedded:,}  ({report.image_model})",
            f"  already cached  {report.images_cached:,}",
            f"  unreadable      {report.images_unreadable:,}",
        ]
    lines += [
        f"  missing         {report.images_missing:,}",
        f"problems          {report.problem_count:,}" + ("  (see stderr, or the `problems` table)"
                                                          if report.problem_count else ""),
        f"notes             {report.note_count:,}",
        f"time              {report.seconds:.1f} s",
    ]
    click.echo("\n".join(lines))


class _Progress:
    """A progress bar on stderr when it is a terminal; problems printed above it."""

    def __init__(self, obj: Context, label: str) -> None:
        self.obj = obj
        self.label = label
        self.bar = None
        self.task = None

    def __enter__(self) -> _Progress:
        if not self.obj.quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                TextColumn("{task.completed:,} products"), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)

    def problem(self, problem: Any) -> None:
        if self.obj.quiet:
            return
        text = f"note: {problem}" if problem.info else str(problem)
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            click.echo(text, err=True)
