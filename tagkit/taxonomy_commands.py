"""`tagkit taxonomy import | show | map | suggest`: options and output only; the work is in tagkit.taxonomy and
tagkit.vocabulary. Registered on the `tagkit` command by tagkit.cli."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click

from tagkit.exitcodes import ExitCode
from tagkit.options import InputPath, input_options, json_option
from tagkit.product import shown


@click.group("taxonomy")
def taxonomy() -> None:
    """One vocabulary: a category tree and attributes with their values, in a YAML file (the format: the README's
    Taxonomy section, or `tagkit taxonomy show --yaml` once one is imported).

    \b
    tagkit taxonomy import fa-fashion                 load a shipped one, or a YAML file (ids stay when reloaded)
    tagkit taxonomy show [--tree]                     what the database holds
    tagkit taxonomy map 'قهوه ای سوخته' 'رنگ: قهوه‌ای'   another way to write a value, attribute or category
    tagkit taxonomy suggest products.jsonl            spellings that look like one name or value
    """


class TaxonomyFile(click.ParamType):
    """A taxonomy YAML file, or the name of one shipped with tagkit (`tagkit.taxonomy.find_taxonomy`)."""

    name = "taxonomy"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        from tagkit.taxonomy import TaxonomyError, find_taxonomy

        try:
            return find_taxonomy(value)
        except TaxonomyError as error:
            self.fail(str(error), param, ctx)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
        from click.shell_completion import CompletionItem

        from tagkit.taxonomy import shipped_taxonomies

        names = [CompletionItem(name) for name in shipped_taxonomies() if name.startswith(incomplete)]
        return [*names, CompletionItem(incomplete, type="file")]


class _ListsShippedTaxonomies(click.Command):
    """`taxonomy import`: its --help ends with the names of the shipped taxonomies (looked up only then)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from tagkit.taxonomy import shipped_taxonomies

        super().format_help_text(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(f"Shipped with tagkit: {', '.join(shipped_taxonomies()) or 'none found'}.")


@taxonomy.command("import", cls=_ListsShippedTaxonomies)
@click.argument("file", metavar="FILE_OR_NAME", type=TaxonomyFile())
@click.option("--apply", "apply_to_products", is_flag=True,
              help="Also make the tags and categories of the products already stored canonical.")
@json_option("Print the counts as JSON on stdout.")
@click.pass_obj
def import_command(obj: Any, file: Path, apply_to_products: bool, as_json: bool) -> None:
    """Load a taxonomy into the database (replacing the one there; the ids of entries already there do not
    change): a YAML file, or the name of one shipped with tagkit (a file of that name wins). Products imported from
    now on get canonical tags and categories."""
    from tagkit.taxonomy import TaxonomyError, apply_taxonomy, import_taxonomy, load_taxonomy, stored_outside

    try:
        loaded = load_taxonomy(file)
    except TaxonomyError as error:
        obj.fail(str(error), ExitCode.USAGE)
    with obj.run("taxonomy import", {"file": file, "apply": apply_to_products}, "importing the taxonomy") as run:
        imported = import_taxonomy(run.store, loaded)
        counts: dict[str, Any] = imported.as_dict()
        if apply_to_products:
            counts["products_changed"] = apply_taxonomy(run.store, loaded)
        outside = stored_outside(run.store, loaded).notes("the stored products' labels")
        run.finish(counts, 0)
    summary = {"taxonomy": loaded.name, "categories": len(loaded.categories), "attributes": len(loaded.attributes),
               "values": sum(len(a.values) for a in loaded.attributes), **counts}
    if imported.dropped_synonyms:
        dropped = imported.dropped_synonyms
        lines = [f"note: {len(dropped)} synonym{'s' * (len(dropped) != 1)} in the database not in {file} "
                 "dropped (added with `tagkit taxonomy map`? `tagkit taxonomy show --yaml` before an import keeps "
                 "them in a file):", *(f"  {line}" for line in dropped[:10])]
        if len(dropped) > 10:
            lines.append(f"  ... and {len(dropped) - 10} more")
        click.echo("\n".join(lines), err=True)
    removed = imported.removed_entries
    if removed:
        obj.log("\n".join([f"note: {len(removed)} entr{'ies' if len(removed) != 1 else 'y'} of the database's "
                           f"taxonomy not in {file} removed:", *(f"  {entry}" for entry in removed[:10]),
                           *([f"  ... and {len(removed) - 10} more"] if len(removed) > 10 else [])]))
    for note in outside:
        obj.log(f"note: {note.message}")
    if as_json:
        obj.print_json({**summary, "dropped_synonyms": imported.dropped_synonyms, "removed_entries": removed,
                        "outside": [note.message for note in outside]})
    else:
        click.echo("\n".join(f"{key.replace('_', ' '):<18}{value:,}" if isinstance(value, int)
                             else f"{key:<18}{value}" for key, value in summary.items()))


@taxonomy.command()
@click.option("--tree", is_flag=True, help="Print the category tree.")
@click.option("--attribute", "attribute_name", metavar="NAME",
              help="Print one attribute's values and synonyms (--json: as JSON).")
@click.option("--yaml", "as_yaml", is_flag=True,
              help="Print the whole taxonomy (or the --attribute) as YAML (the import format).")
@json_option("Print the whole taxonomy (or the --attribute) as JSON.")
@click.pass_obj
def show(obj: Any, tree: bool, attribute_name: str | None, as_yaml: bool, as_json: bool) -> None:
    """Show the taxonomy in the database: its attributes (default), the category tree, or one attribute."""
    from tagkit.taxonomy import attribute_data, dump_taxonomy, stored_taxonomy, taxonomy_data

    if attribute_name and tree:
        raise click.UsageError("--attribute and --tree show different things: give one of them")
    if as_yaml and as_json:
        raise click.UsageError("--yaml and --json are two formats: give one of them")
    if tree and (as_yaml or as_json):
        raise click.UsageError(f"--tree is drawn as text; {'--yaml' if as_yaml else '--json'} prints the whole "
                               "taxonomy, its category tree included: give one of them")
    with obj.read_store() as store:
        loaded = stored_taxonomy(store)
    if loaded is None:
        obj.fail(f"no taxonomy in {obj.db}: load one with `tagkit taxonomy import FILE`", ExitCode.NO_MODEL)
    attribute = loaded.attribute(attribute_name) if attribute_name else None
    if attribute_name and attribute is None:
        obj.fail(f"no attribute {shown(attribute_name)} in the taxonomy", ExitCode.USAGE)
    if as_yaml and attribute is not None:
        import yaml

        click.echo(yaml.safe_dump([attribute_data(attribute)], allow_unicode=True, sort_keys=False), nl=False)
    elif as_yaml:
        click.echo(dump_taxonomy(loaded), nl=False)
    elif as_json:
        obj.print_json(attribute_data(attribute) if attribute is not None else taxonomy_data(loaded))
    elif tree:
        _print_tree(loaded)
    elif attribute is not None:
        click.echo(f"{attribute.name}  ({_kind(attribute)})"
                   + (f"  also written: {', '.join(attribute.synonyms)}" if attribute.synonyms else ""))
        for value in attribute.values:
            click.echo(f"  {value.name}" + (f"  = {', '.join(value.synonyms)}" if value.synonyms else ""))
    else:
        values = sum(len(a.values) for a in loaded.attributes)
        click.echo(f"{loaded.name or 'taxonomy'}{f' ({loaded.language})' if loaded.language else ''}: "
                   f"{len(loaded.categories):,} categories, {len(loaded.attributes):,} attributes, {values:,} values")
        for attribute in loaded.attributes:
            first_values = ", ".join(v.name for v in attribute.values[:6])
            more = f", ... ({len(attribute.values):,})" if len(attribute.values) > 6 else ""
            click.echo(f"  {attribute.name}  [{_kind(attribute)}]  {first_values}{more}")


def _kind(attribute: Any) -> str:
    return ("several values" if attribute.multi_valued else "one value") + (", open" if attribute.open else "")


def _print_tree(loaded: Any) -> None:
    def walk(parent: tuple[str, ...], prefix: str) -> None:
        kids = loaded.children(parent)
        for i, path in enumerate(kids):
            last = i == len(kids) - 1
            click.echo(f"{prefix}{'└── ' if last else '├── '}{path[-1]}")
            walk(path, prefix + ("    " if last else "│   "))

    for root in loaded.children(()):
        click.echo(root[-1])
        walk(root, "")


@taxonomy.command("map")
@click.argument("raw")
@click.argument("canonical")
@click.pass_obj
def map_command(obj: Any, raw: str, canonical: str) -> None:
    """Record that RAW means CANONICAL: a `name: value` tag (RAW a value, or a tag filed under another name),
    an attribute name, or a category path (`A > B`). Later imports map RAW to CANONICAL."""
    from tagkit.taxonomy import TaxonomyError, add_synonym

    if not obj.db.exists():  # nothing to map into: refused, not an empty database made
        obj.fail(f"no database at {obj.db} (`tagkit taxonomy import FILE` first, or pass --db)", ExitCode.USAGE)
    with obj.run("taxonomy map", {"raw": raw, "canonical": canonical}, "mapping") as run:
        try:
            mapped = add_synonym(run.store, raw, canonical)
        except TaxonomyError as error:
            run.finish({}, 0, status="failed")
            obj.fail(str(error), ExitCode.USAGE)
        run.finish({"mapped": mapped}, 0)
    click.echo(mapped)


@taxonomy.command()
@click.argument("source", required=False, type=InputPath())
@input_options
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N suggestions.")
@click.option("--commands", is_flag=True, help="Print `tagkit taxonomy map` commands instead (the suggestions "
                                               "whose spelling is in the taxonomy).")
@json_option("Print the suggestions as JSON.")
@click.pass_obj
def suggest(obj: Any, source: Path | None, config_path: Path | None, overrides: tuple[str, ...], limit: int | None,
            commands: bool, as_json: bool) -> None:
    """Names and values that are the same thing written differently (half-space, Arabic letters, spacing,
    case, plural), with the spelling to keep, for a person to confirm. Reads the tags of SOURCE (a products
    file), or of the products in the database; compares them with the database's taxonomy when there is one.
    """
    from tagkit.cli import _load_mapping
    from tagkit.taxonomy import stored_taxonomy
    from tagkit.vocabulary import suggest as find_variants

    if source is not None and not obj.db.exists():  # no database: no taxonomy to compare with
        loaded, tags = None, _source_tags(obj, source, _load_mapping(config_path, overrides))
    else:
        with obj.read_store() as store:
            loaded = stored_taxonomy(store)
            if source is None:
                tags = [t for p in store.iter_products("tags is not null") for t in p.tags]
            else:
                tags = _source_tags(obj, source, _load_mapping(config_path, overrides))
    found = find_variants(tags, loaded)[:limit]
    if as_json:
        obj.print_json([s.as_dict() for s in found])
    elif commands:
        if loaded is None:
            obj.log("note: --commands prints `tagkit taxonomy map` lines to a taxonomy's spellings, and there is no "
                    f"taxonomy in {obj.db}: import one first (`tagkit taxonomy import FILE_OR_NAME`)")
        printed = 0
        for item in found:
            if not item.in_taxonomy:
                continue
            for text, _ in item.variants:
                if text != item.canonical:
                    click.echo(f"tagkit taxonomy map {shlex.quote(item.raw(text))} {shlex.quote(item.target())}")
                    printed += 1
        if loaded is not None and found and not printed:
            obj.log(f"note: none of the {len(found):,} suggestions keeps a spelling the taxonomy has, so there is no "
                    "`map` line to print; without --commands they are listed, for a person to add to the taxonomy")
    else:
        for item in found:
            variants = ", ".join(f"{_visible(text)} ({count:,})" for text, count in item.variants)
            where = f"{item.attribute}: " if item.kind == "value" else ""
            mark = "" if not loaded else "  (in the taxonomy)" if item.in_taxonomy else "  (not in the taxonomy)"
            click.echo(f"{item.kind:<9}  {where}{variants}  ->  {item.canonical}  [{', '.join(item.reasons)}]{mark}")
    obj.log(f"{len(found):,} suggestions from {len(tags):,} tags")


def _visible(text: str) -> str:
    """`text` with its control characters written as escapes (a stray backspace in a value is what sets two
    spellings apart, and would be invisible, or move the cursor, on a terminal)."""
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 else c for c in text)


def _source_tags(obj: Any, source: Path, mapping: Any) -> list[Any]:
    from tagkit.catalogue import read_input
    from tagkit.product import Product

    tags, problems = [], 0
    try:
        for record in read_input(source, mapping=mapping):
            if isinstance(record, Product):
                tags.extend(record.tags)
            elif not record.info:
                problems += 1
    except (OSError, ValueError) as error:
        raise click.UsageError(f"cannot read {source}: {error}") from error
    if problems:
        obj.log(f"{problems:,} problems reading {source} (rows left out)")
    return tags
