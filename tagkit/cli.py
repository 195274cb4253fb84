"""The `tagkit` command: options and output only; the work is done by the library.

Heavy modules (numpy, onnxruntime, hazm, sqlite-utils) are imported inside the commands so that
`tagkit --help` answers at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import io
import json
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from tagkit import __version__
from tagkit.exitcodes import ExitCode
from tagkit.options import InputPath, input_options, json_option

if TYPE_CHECKING:
    from tagkit.config import Config, Mapping
    from tagkit.predicting import PredictedProduct
    from tagkit.store import Store
    from tagkit.versions import ModelNotFound


class Context:
    """What every command gets: where the database is, how talkative to be, how long to wait for the
    writer lock, and the log file (lines with a timestamp, whatever `quiet` says)."""

    def __init__(self, db: Path, quiet: bool, wait: float = 0.0, log_file: IO[str] | None = None) -> None:
        self.db = db
        self.quiet = quiet
        self.wait = wait
        self.log_file = log_file
        self.json = False  # --json was given (`json_option`)
        self.json_written = False
        self.config_found: Path | None = None  # ./tagkit.yaml, read without --config (recorded with the run)
        self.wrote = False  # a run that writes to the database started (`run`)

    def log(self, message: str) -> None:
        if not self.quiet:
            with contextlib.suppress(OSError):  # stderr on a full disk (or /dev/full): the work goes on
                click.echo(message, err=True)
        self.to_log_file(message)

    def to_log_file(self, message: str) -> None:
        """Append `message` to the --log-file; one that cannot be written (a full disk) is given up, said once on
        stderr, and the run goes on."""
        if self.log_file is None:
            return
        from tagkit.store import now

        try:
            for line in message.splitlines() or [""]:
                self.log_file.write(f"{now()} tagkit[{os.getpid()}] {line}\n")
        except OSError as error:
            name = getattr(self.log_file, "name", "the log file")
            self.log_file = None
            with contextlib.suppress(OSError):
                click.echo(f"warning: cannot write the log file {name} ({error.strerror}): this run logs no more "
                           "to it", err=True)

    def print_json(self, data: Any) -> None:
        """The `--json` output, on stdout."""
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        self.json_written = True

    def fail(self, message: str, code: ExitCode) -> NoReturn:
        """Say what went wrong (stderr, log file; with --json also `{"error", "exit_code"}` on stdout, unless the
        command printed its JSON already) and exit with `code`."""
        self.to_log_file(f"error: {message} (exit code {int(code)})")
        with contextlib.suppress(OSError):
            click.echo(f"error: {message}", err=True)
        if self.json and not self.json_written:  # a cron job's summary file says what went wrong
            self.print_json({"error": message, "exit_code": int(code)})
        sys.exit(code)

    @contextmanager
    def writer_lock(self, command: str) -> Iterator[None]:
        """Hold the database's writer lock (see tagkit.lock); exit with LOCKED when another process keeps it."""
        from tagkit.lock import Locked, WriterLock, describe_holder

        lock = WriterLock(self.db, command, self.wait)
        try:
            lock.acquire(on_wait=lambda holder: self.log(f"waiting up to {self.wait:g} s for another tagkit process "
                                                         f"writing to {self.db}: {describe_holder(holder)}"))
        except Locked as error:
            self.fail(str(error), ExitCode.LOCKED)
        except OSError as error:
            reason = error if self.db.parent.is_dir() else f"the folder {self.db.parent} does not exist"
            self.cannot_open(reason, error)
        try:
            yield
        finally:
            lock.release()

    def read_store(self, read_only: bool = True) -> Store:
        """The database for a command that only reads it: an error, not a new empty file, when there is none.
        One that cannot be written (a read-only folder, disk or file) is opened read-only, unless not `read_only`
        (the command writes later)."""
        self.need_db("run `tagkit import` first, or pass --db", ExitCode.USAGE)
        return self.open_store(read_only)

    def need_db(self, hint: str, code: ExitCode) -> None:
        """Exit with `code` when the database file does not exist (a wrong folder, a mistyped --db): a command
        that needs what is in it does not create an empty one."""
        if not self.db.exists():
            self.fail(f"no database at {self.db.absolute()} ({hint}; --db FILE or TAGKIT_DB names another)", code)

    def open_store(self, read_only: bool = False) -> Store:
        from tagkit.store import ReadOnlyError, Store

        timeout = max(30.0, float(self.wait or 0))  # --wait also waits for another program's write to SQLite
        try:
            return Store(self.db, timeout=timeout)
        except (OSError, sqlite3.DatabaseError) as error:
            reason: Exception = error
            if read_only:
                try:
                    return Store(self.db, timeout=timeout, read_only=True)
                except ReadOnlyError as why:
                    reason = why  # the more telling one
                except (OSError, sqlite3.DatabaseError):
                    pass
            self.cannot_open(reason, error)

    def cannot_open(self, reason: object, error: BaseException) -> NoReturn:
        """The database (or its lock) cannot be opened: exit 1 when the disk is full, else 2 (a wrong --db)."""
        hint = (" (damaged or cut short: copy it again, or restore a backup made with `tagkit backup`)"
                if "malformed" in str(reason) else "")
        self.fail(f"cannot open the database {self.db}: {reason}{hint}",
                  ExitCode.ERROR if _disk_full(error) else ExitCode.USAGE)

    @contextmanager
    def run(self, command: str, args: dict[str, Any], label: str) -> Iterator[Run]:
        """Take the writer lock, open the database, record the run, show progress; a run that dies is
        recorded as failed (one that is killed, as interrupted by the next run)."""
        if "config" in args and not args["config"] and self.config_found:
            args = {**args, "config": self.config_found}
        self.wrote = True
        with self.writer_lock(command), self.open_store() as store, _Progress(self, label) as progress:
            shown = {k: v for k, v in args.items() if v}
            run: Run | None = None
            try:
                run = Run(self, store, store.start_run(command, shown, writer_lock=True), progress)
                self.to_log_file(f"{command} started: run #{run.id} in {self.db.absolute()}, "
                                 f"{json.dumps(shown, ensure_ascii=False, default=str)}")
                yield run
            except BaseException as error:  # Ctrl-C and a closed stdout: exit codes and messages from `_Main`
                if run is None or not run.finished:
                    stopped = isinstance(error, KeyboardInterrupt | BrokenPipeError)
                    if store.db.conn.in_transaction:  # stopped between a write and its commit: not a whole one
                        store.db.conn.rollback()
                    # stopped while its row was being written: the row is this process's running one
                    ids = [run.id] if run is not None else [row[0] for row in store.db.execute(
                        "select id from runs where status = 'running' and pid = ?", [os.getpid()])]
                    for run_id in ids:
                        store.finish_run(run_id, "interrupted" if stopped else "failed", {})
                    if not isinstance(error, SystemExit):
                        self.to_log_file(f"{command} {'interrupted' if stopped else 'failed'}: run "
                                         f"#{', #'.join(map(str, ids))}: {type(error).__name__}: {error}")
                raise


class Run:
    """One command's run: its database, its row in `runs`, and where progress and problems go."""

    def __init__(self, obj: Context, store: Store, run_id: int, progress: _Progress) -> None:
        self.obj = obj
        self.store = store
        self.id = run_id
        self.progress = progress
        self.finished = False

    def callbacks(self) -> dict[str, Any]:
        return {"on_problem": self.progress.problem, "on_progress": self.progress.update, "run_id": self.id}

    def finish(self, counts: dict[str, Any], problems: int, status: str | None = None) -> None:
        status = status or ("partial" if problems else "ok")
        self.store.finish_run(self.id, status, counts)
        self.finished = True
        self.obj.to_log_file(f"run #{self.id} finished: {status}, {problems:,} problems, "
                             f"{json.dumps(counts, ensure_ascii=False, default=str)}")


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a service manager): a command stops as on Ctrl-C."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


_NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # a full disk, a file-size limit, a quota


def _disk_full(error: BaseException) -> bool:
    return ((isinstance(error, OSError) and error.errno in _NO_ROOM) or
            (isinstance(error, sqlite3.OperationalError) and ("disk is full" in str(error)
                                                              or "disk I/O error" in str(error))))


def _close_quietly(file: IO[str]) -> None:
    """Close the log file; what it could not write was said already (`Context.to_log_file`)."""
    with contextlib.suppress(OSError):
        file.close()


class _ClosedOutput(io.TextIOBase):
    """Standard output when the process was started without one: writing to it is a closed output."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, "standard output is closed")


_GLOBAL_OPTIONS = ("--db", "-q", "--quiet", "--wait", "--log-file", "--version")


def _utf8_stdout() -> None:
    """Data on stdout in UTF-8, as in the files tagkit writes, whatever `PYTHONIOENCODING` says (`ascii`, `latin-1`:
    a Persian title ended an export in a traceback); messages on stderr in its own encoding, what it cannot show
    escaped (`\\u06cc`) rather than a crash."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("_", "-")
        if encoding not in ("utf-8", "utf8") and callable(getattr(stream, "reconfigure", None)):
            with contextlib.suppress(ValueError, OSError):
                if stream is sys.stdout:
                    stream.reconfigure(encoding="utf-8", errors="strict")
                else:
                    stream.reconfigure(errors="backslashreplace")


class _Main(click.Group):
    """The `tagkit` group: a usage error also goes to the log file; Ctrl-C, SIGTERM, a closed stdout, a full disk
    (or file-size limit, quota, failing disk), memory running out or another program holding SQLite's write lock
    end any command with a message and their exit code (130, 143, 141, 1, 1, 6), not a traceback."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        """Run as a command: on Linux or macOS (elsewhere, a message and exit 1, not a traceback from the first
        POSIX call). Under a locale that is not UTF-8 with Python's UTF-8 mode switched off (`PYTHONUTF8=0` with
        `LC_ALL=POSIX`), file names and arguments in Persian would reach tagkit as undecodable text that cannot be
        stored or printed: the command starts itself again in UTF-8 mode (`-X utf8`)."""
        if os.name != "posix":
            click.echo("error: tagkit runs on Linux and macOS (its writer lock and `review` use POSIX calls); on "
                       "Windows, run it under WSL", err=True)
            sys.exit(ExitCode.ERROR)
        if (args is None and not sys.flags.utf8_mode and sys.getfilesystemencoding().lower() not in ("utf-8", "utf8")
                and sys.executable):
            # this very tagkit (its folder first on the path), whatever the current folder holds (-P)
            home = str(Path(__file__).resolve().parent.parent)
            code = f"import sys; sys.path.insert(0, {home!r}); from tagkit.cli import main; main(prog_name='tagkit')"
            os.execv(sys.executable, [sys.executable, "-X", "utf8", "-P", "-c", code, *sys.argv[1:]])
        if args is None:
            _utf8_stdout()
            for arg in sys.argv[1:]:  # (bytes that are not UTF-8 reach Python as lone surrogates)
                if any("\udc80" <= char <= "\udcff" for char in arg):
                    message = (f"argument {os.fsencode(arg).decode('utf-8', 'replace')!r} is not UTF-8 (a name "
                               "written in another encoding, Latin-1?): rename the file or folder, or type it again")
                    click.echo(f"error: {message}", err=True)
                    if "--json" in sys.argv:
                        click.echo(json.dumps({"error": message, "exit_code": int(ExitCode.USAGE)}))
                    sys.exit(ExitCode.USAGE)
        return super().main(args, *rest, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        def obj() -> Context:  # set by `main`, which has not run yet when the command name is wrong
            if isinstance(ctx.obj, Context):
                return ctx.obj
            try:  # the --log-file given, if it can be opened (that it cannot may be the error)
                log = ctx.params["log_file"].open("a", encoding="utf-8", buffering=1)
            except (KeyError, AttributeError, OSError):
                log = None
            return Context(Path("tagkit.db"), quiet=False, log_file=log)

        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM)
        if main_thread:
            signal.signal(signal.SIGTERM, _terminated)
        try:
            return super().invoke(ctx)
        except click.ClickException as error:
            if isinstance(error, click.NoSuchOption) and error.option_name in _GLOBAL_OPTIONS:
                error.message = (f"{error.option_name} is an option of tagkit itself: give it before the command "
                                 f"(`tagkit {error.option_name} ... {ctx.invoked_subcommand or 'COMMAND'} ...`)")
            context = obj()
            context.to_log_file(f"error: {error.format_message()} (exit code {error.exit_code})")
            if context.json and not context.json_written:
                context.print_json({"error": error.format_message(), "exit_code": error.exit_code})
            raise
        except Terminated:
            obj().fail("stopped (SIGTERM): what was stored is kept, the next run carries on", ExitCode.TERMINATED)
        except KeyboardInterrupt:
            obj().fail("interrupted (Ctrl-C): what was stored is kept, the next run carries on", ExitCode.INTERRUPTED)
        except BrokenPipeError:  # stdout was closed (`| head`, `>&-`): say nothing more on it
            devnull = os.open(os.devnull, os.O_WRONLY)
            from_start = isinstance(sys.stdout, _ClosedOutput)  # `>&-`: the output is lost, which is worth a word
            if from_start:
                sys.stdout = open(devnull, "w", closefd=False)  # noqa: SIM115 (kept open until the process ends)
            else:
                os.dup2(devnull, sys.stdout.fileno())
            if not obj().wrote and not from_start:  # a command that only reads, into `| head`: nothing to say
                sys.exit(ExitCode.OUTPUT_CLOSED)
            try:
                obj().fail("stopped: the output was closed; what was stored is kept", ExitCode.OUTPUT_CLOSED)
            except BrokenPipeError:  # stderr is that closed pipe too (`2>&1 | head`)
                os.dup2(devnull, sys.stderr.fileno())
                sys.exit(ExitCode.OUTPUT_CLOSED)
        except OSError as error:
            if error.errno not in _NO_ROOM:
                raise
            obj().fail(f"cannot write {error.filename or 'the output'}: {error.strerror}", ExitCode.ERROR)
        except sqlite3.DatabaseError as error:
            if not isinstance(error, sqlite3.OperationalError) and "malformed" in str(error):
                obj().fail(f"the database {obj().db} is damaged ({error}): restore it from a backup (`tagkit "
                           "backup`). A copy put back while a -wal file of a killed run was left beside the "
                           "database is damaged so: delete the -wal and -shm files first", ExitCode.USAGE)
            if "database is locked" in str(error):  # not tagkit's lock: another program writing (sqlite-utils, ...)
                obj().fail(f"the database stayed locked by another program's write for the whole wait ({error}); "
                           "what was stored before is kept: run again once it has finished", ExitCode.LOCKED)
            if not _disk_full(error):
                raise
            obj().fail(f"cannot write the database: the disk is full or failing ({error}); what was stored before "
                       "is kept", ExitCode.ERROR)
        except MemoryError:
            obj().fail("out of memory: what was stored before is kept (a smaller input, or more memory)",
                       ExitCode.ERROR)
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True, envvar="TAGKIT_WAIT",
              metavar="SECONDS", help="When another tagkit process is writing to the database, wait this long "
              "for it before giving up with exit code 6 (env TAGKIT_WAIT).")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Also append what is said on stderr (and, with -q, would be), with timestamps, to this file.")
@click.pass_context
def main(ctx: click.Context, db: Path, quiet: bool, wait: float, log_file: Path | None) -> None:
    """Put products into categories and give them tags, from images and titles.

    \b
    tagkit train products.csv            learn categories and tags from a labelled catalogue
    tagkit predict folder/ --export csv  predict for new images (and titles, when there are any)
    tagkit eval test.csv                 how good is it, honestly
    tagkit import products.csv           only read a catalogue into the database
    tagkit review                        accept, reject or correct predictions, one product at a time
    tagkit review --sheet review.csv     the same as a sheet to fill in a spreadsheet
    tagkit feedback export | import      the review decisions as CSV; import reads a filled-in sheet
    tagkit models | stats                the trained models | what the database holds
    tagkit backup backup.db              a copy of the database and its models, also while tagkit runs
    tagkit taxonomy import | show | map | suggest   one vocabulary of categories, attributes and values

    Exit codes: 0 all went through, 1 unexpected failure, 2 bad command line or input, 3 finished but
    some rows had problems, 4 nothing to work on (no model or database for it; nothing to train on,
    to review or to show), 5 review without a terminal, 6 database locked by another writer,
    130 interrupted (Ctrl-C), 141 stdout closed, 143 stopped (SIGTERM).
    """
    if sys.stdout is None:  # started with stdout closed (`>&-`): data written to it is an output closed (141)
        sys.stdout = _ClosedOutput()
    log = None
    if log_file is not None:
        try:
            log = log_file.open("a", encoding="utf-8", buffering=1)
        except OSError as error:
            raise click.BadParameter(f"cannot append to {log_file}: {error}", param_hint="--log-file") from error
        ctx.call_on_close(functools.partial(_close_quietly, log))
    ctx.obj = Context(db, quiet, wait, log)


def force_option(redone: str) -> Any:
    """`--force`, whose help says what the command redoes."""
    return click.option("--force", is_flag=True, help=f"Redo everything: {redone}.")


products_option = click.option(
    "--products", "products_file", type=InputPath(dir_okay=False),
    help="With a folder of images: a products file giving their titles (and labels).")
image_model_option = click.option(
    "--image-model", type=click.Choice(["int8", "fp32"]), default="int8", show_default=True,
    help="Bundled image model variant used for the features.")


@main.command("import")
@click.argument("source", type=InputPath())
@input_options
@products_option
@image_model_option
@click.option("--no-images", is_flag=True, help="Store products only; compute no image features.")
@force_option("rewrite unchanged products and embed cached images again")
@json_option("Print the report as JSON on stdout.")
@click.pass_obj
def import_command(obj: Context, source: Path, config_path: Path | None, overrides: tuple[str, ...],
                   products_file: Path | None, image_model: str, no_images: bool, force: bool, as_json: bool) -> None:
    """Read a catalogue (CSV/TSV/JSONL/JSON file, or a folder of images) into the database.

    Products are stored (a later row with the same id replaces an earlier one) and each image is
    embedded once: products whose content is unchanged are not rewritten, and images whose content
    is already in the features cache are not recomputed (--force redoes both).
    """
    from tagkit.image import ImageEmbedder
    from tagkit.ingest import import_products

    mapping = _load_mapping(config_path, overrides)
    embedder = None if no_images else ImageEmbedder(variant=image_model)
    args = {"source": source, "products": products_file, "config": config_path, "map": overrides,
            "image_model": image_model, "no_images": no_images, "force": force}
    with obj.run("import", args, "importing") as run:
        _check_source(source, products_file)
        report = import_products(run.store, source, mapping=mapping, products_file=products_file,
                                 embedder=embedder, force=force, **run.callbacks())
        run.finish(report.counts(), report.problem_count)
    if as_json:
        obj.print_json({**report.counts(), "problems": [dataclasses.asdict(p) for p in report.problems]})
    else:
        _print_import_report(report)
    sys.exit(_outcome(report.counts()))


@main.command()
@click.argument("source", required=False, type=InputPath())
@input_options
@products_option
@image_model_option
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed (same input + seed = same model).")
@click.option("--force", is_flag=True, help="Train a new version even when the newest one learnt from the same "
                                            "products, labels and settings.")
@json_option("Print the report as JSON on stdout.")
@click.pass_obj
def train(obj: Context, source: Path | None, config_path: Path | None, overrides: tuple[str, ...],
          products_file: Path | None, image_model: str, seed: int, force: bool, as_json: bool) -> None:
    """Learn categories and tags from labelled products, and save a new model version.

    SOURCE (a products file or image folder) is imported first and the model learns from its
    labelled products; without SOURCE it learns from every labelled product in the database but the
    test products `tagkit eval` read. When the newest version learnt from the same products, labels,
    review decisions and settings, it is kept and no new one is made (it would be the same model).
    """
    from tagkit.image import ImageEmbedder
    from tagkit.training import NothingToLearn, SourceReadInPart
    from tagkit.training import train as train_model

    if source is None and (products_file or overrides):
        raise click.UsageError(f"{'--products' if products_file else '--map'} says how to read SOURCE, and no SOURCE "
                               "is given: without one, train learns from the products already in the database")
    config, mapping = _load_config(config_path, overrides)
    args = {"source": source, "products": products_file, "config": config_path, "map": overrides,
            "image_model": image_model, "seed": seed, "force": force}
    with obj.run("train", args, "importing") as run:
        if source is not None:
            _check_source(source, products_file)
        settings = _train_settings(obj, run.store, config)
        try:
            report = train_model(run.store, source, embedder=ImageEmbedder(variant=image_model), mapping=mapping,
                                 products_file=products_file, seed=seed, extract=settings["extract"],
                                 attributes=settings["attributes"], force=force, **run.callbacks())
        except NothingToLearn as error:
            run.finish({}, 0, status="failed")
            read = error.import_report
            if isinstance(error, SourceReadInPart):  # the rows before the cut are stored; no model is made
                if as_json:
                    obj.print_json({"error": str(error), "exit_code": int(ExitCode.USAGE), **_import_summary(read)})
                obj.fail(str(error), ExitCode.USAGE)
            if read is not None and _outcome(read.counts()) == ExitCode.USAGE:
                if as_json:  # a cron job's summary file says what went wrong
                    obj.print_json(_import_summary(read))
                obj.fail(f"nothing could be read from {source}", ExitCode.USAGE)
            obj.fail(str(error), ExitCode.NO_MODEL)
        problems = report.import_report.problem_count if report.import_report else 0
        run.finish({"version": report.version, **report.counts, "seconds": report.seconds,
                    **({"unchanged": True} if report.unchanged else {})}, problems)
    if report.unchanged:
        obj.log(f"nothing new to learn: model {report.version} learnt from the same products, labels, review "
                "decisions and settings, with this tagkit; it stays the newest (`--force` trains a new version)")
    if report.counts.get("images_not_embedded"):
        obj.log(f"warning: {report.counts['images_not_embedded']:,} of the products learnt from have an image that "
                f"was never embedded with this image model ({image_model}; stored by an older tagkit, or with "
                "another --image-model), and whose file is gone or holds another picture now: they were learnt "
                "without it. `tagkit import FILE` with their images embeds them (`tagkit train FILE` too); then "
                "train again")
    summary = {"version": report.version, **({"unchanged": True} if report.unchanged else {}), "path": report.path,
               "seconds": report.seconds, "settings": settings, "counts": report.counts,
               "validation": report.model_report.get("validation", {}),
               "tags_too_rare": _most_first(report.model_report.get("tags_too_rare", {})),
               "min_tag_count": report.model_report.get("min_tag_count")}
    for key in ("attributes", "extractor"):
        if key in report.model_report:
            summary[key] = report.model_report[key]
    if as_json:
        if report.import_report:
            summary.update(_import_summary(report.import_report))
        obj.print_json(summary)
    else:
        _print_train_report(summary)
    sys.exit(ExitCode.PARTIAL if problems else ExitCode.OK)


@main.command()
@click.argument("source", type=InputPath())
@input_options
@products_option
@click.option("--export", "export_format", type=click.Choice(["csv", "jsonl", "json"]),
              help="Write the predictions in this format (to stdout, or to -o FILE).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Write the export to this file (its format from the extension: .jsonl, .json, else CSV; "
                   "--export says otherwise); - is stdout.")
@click.option("--top-k", type=click.IntRange(1, 20), default=3, show_default=True,
              help="How many categories to give per product: the best and the next alternatives (in the --export's "
                   "alternatives; the line printed without --export shows the best).")
@click.option("--model", "version", help="Model version to use (default: the newest; see `tagkit models`).")
@force_option("rewrite unchanged products, embed cached images again, predict unchanged products")
@json_option("Print a summary as JSON on stdout (counts, problems); an export then needs -o FILE.")
@click.pass_obj
def predict(obj: Context, source: Path, config_path: Path | None, overrides: tuple[str, ...],
            products_file: Path | None, export_format: str | None, output: Path | None, top_k: int,
            version: str | None, force: bool, as_json: bool) -> None:
    """Predict categories and tags for new products (a products file or a folder of images).

    Predictions are stored in the database (for `tagkit review`) and written out as they come. A
    product whose title, description and image bytes are unchanged since this model predicted it is
    not predicted again (its stored prediction is exported); --force predicts everything again.
    Labels in SOURCE are stored with its products, and `tagkit train` without SOURCE learns from them:
    score a labelled test file with `tagkit eval`, which keeps its products out of training.
    """
    from tagkit.export import Exporter, atomic_file
    from tagkit.predicting import predict as run_predict
    from tagkit.versions import ModelNotFound

    mapping = _load_mapping(config_path, overrides)
    if output and not export_format:
        export_format = {".jsonl": "jsonl", ".json": "json"}.get(output.suffix.lower(), "csv")
    output = _file_or_stdout(output)
    if as_json and export_format and not output:
        raise click.UsageError("--json prints the summary on stdout: write the export to a file with -o FILE")
    args = {"source": source, "products": products_file, "config": config_path, "map": overrides, "model": version,
            "export": export_format, "output": output, "top_k": top_k, "force": force}
    if output:
        _check_output(output, obj.db, {"the products file being read": source, "the --products file": products_file})
    obj.need_db("predict needs a trained model: run in the project's folder, or `tagkit train` first",
                ExitCode.NO_MODEL)
    with obj.run("predict", args, "predicting") as run:  # the export starts once locked
        _check_source(source, products_file)
        passed_over = _check_model(obj, run, version)  # before the export writes anything
        try:
            with ExitStack() as export:
                out = export.enter_context(atomic_file(output, bom=export_format == "csv")) if output else sys.stdout
                exporter = Exporter(out, export_format) if export_format else None
                if exporter:
                    export.callback(exporter.close)
                on_prediction = exporter.write if exporter else None if as_json else _print_prediction
                try:
                    report = run_predict(run.store, source, version=version, mapping=mapping,
                                         products_file=products_file, top_k=top_k, on_prediction=on_prediction,
                                         force=force, **run.callbacks())
                except ModelNotFound as error:  # its files, read once the import is under way
                    _damaged_model(obj, run, error)
                if _outcome(report.import_report.counts()) == ExitCode.USAGE:
                    raise _NothingRead  # and the last export stays as it was
            # the export file is complete (renamed into place) before the run is recorded as done
        except _NothingRead:
            run.finish({**report.counts(), **passed_over}, report.import_report.problem_count, status="failed")
            if as_json:  # a cron job's summary file says what went wrong
                obj.print_json({**report.counts(), **passed_over, **_import_summary(report.import_report)})
            where = (f"the problems of run #{run.id} in the database's `problems` table" if obj.quiet else
                     "the problems above")
            obj.fail(f"nothing usable could be read from {source} (see {where}); nothing was changed", ExitCode.USAGE)
        run.finish({**report.counts(), **passed_over}, report.import_report.problem_count)
    if as_json:
        obj.print_json({**report.counts(), **passed_over, **_import_summary(report.import_report)})
    obj.log(f"{report.products:,} products with model {report.model} in {report.seconds:.1f} s: "
            f"{report.predicted:,} predicted now, {report.unchanged:,} unchanged since the last run (skipped)"
            + (f"; written to {output}" if output else ""))
    if report.no_input:
        obj.log(f"{report.no_input:,} of them had neither a title nor a readable image: nothing was predicted for "
                "them (no category, no tags)")
    if report.empty > report.no_input:
        obj.log(f"{report.empty - report.no_input:,}{' more' if report.no_input else ''} got no category and no tag "
                f"from model {report.model}: it reads only what they lack (titles or images; see `tagkit models`), "
                "or none of its answers is in the taxonomy")
    if report.outside_tree:
        obj.log(f"{report.outside_tree:,} got tags but no category: none of the category paths model {report.model} "
                "gave them (scored 0.01 or more) is in the taxonomy's category tree (`tagkit taxonomy show --tree`; "
                "add them to it, or `tagkit taxonomy map` them)")
    sys.exit(_outcome(report.import_report.counts()))


@main.command("eval")
@click.argument("source", type=InputPath())
@input_options
@products_option
@click.option("--model", "version", help="Model version to evaluate (default: the newest).")
@click.option("--top-k", type=click.IntRange(1, 20), default=3, show_default=True, help="k of top-k accuracy.")
@json_option("Print every metric as JSON on stdout.")
@click.pass_obj
def eval_command(obj: Context, source: Path, config_path: Path | None, overrides: tuple[str, ...],
                 products_file: Path | None, version: str | None, top_k: int, as_json: bool) -> None:
    """Score a model on labelled products it has not seen: categories and tags."""
    from tagkit.evaluation import NothingToScore, evaluate
    from tagkit.versions import ModelNotFound

    mapping = _load_mapping(config_path, overrides)
    args = {"source": source, "products": products_file, "config": config_path, "map": overrides, "model": version,
            "top_k": top_k}
    obj.need_db("eval needs a trained model: run in the project's folder, or `tagkit train` first",
                ExitCode.NO_MODEL)
    with obj.run("eval", args, "evaluating") as run:
        _check_source(source, products_file)
        passed_over = _check_model(obj, run, version)
        try:
            result = evaluate(run.store, source, version=version, mapping=mapping, products_file=products_file,
                              top_k=top_k, **run.callbacks())
        except ModelNotFound as error:
            _damaged_model(obj, run, error)
        except NothingToScore as error:  # told below, with what reading SOURCE did
            result = error.result
        result.update(passed_over)
        outcome = _outcome(result["import"])
        run.finish({"model": result["model"], "products": result["products"], **passed_over},
                   result["import"]["problem_count"],
                   status="failed" if outcome == ExitCode.USAGE or not result["products"] else None)
        if outcome == ExitCode.USAGE or not result["products"]:
            if as_json:  # a cron job's summary file says what went wrong
                obj.print_json(result)
            if outcome == ExitCode.USAGE:
                obj.fail(f"nothing could be read from {source}", ExitCode.USAGE)
            obj.fail(f"no product with a category or tags in {source}: nothing to score", ExitCode.NO_MODEL)
    if result["seen_in_training"]:
        obj.log(f"warning: {result['seen_in_training']:,} of the {result['products']:,} products were in the "
                "model's training data: their scores are not an honest estimate")
    if result["decided_otherwise"]:
        obj.log(f"note: {result['decided_otherwise']:,} of the {result['products']:,} products have review decisions "
                "that label them otherwise than this file: the file's labels are scored, and `tagkit train` learns "
                "the decisions (`tagkit feedback export --labels` lists them)")
    if result["same_picture_in_training"]:
        obj.log(f"warning: {result['same_picture_in_training']:,} of the {result['products']:,} products have the "
                "picture of a product the model was trained on, under another id (the same product twice?): their "
                "scores are not an honest estimate")
    if result["category"]["not_learnt"]:
        examples = ", ".join(f"{e['category']} ({e['count']:,})" for e in result["category"]["not_learnt_examples"])
        obj.log(f"warning: {result['category']['not_learnt']:,} of the {result['category']['n']:,} products with a "
                f"category have one model {result['model']} cannot predict (it never learnt it, or the taxonomy "
                f"does not have it): they count wrong; the commonest: {examples}")
    if result["tags"].get("not_learnt"):
        examples = ", ".join(f"{e['tag']} ({e['count']:,})" for e in result["tags"]["not_learnt_examples"])
        obj.log(f"warning: {result['tags']['not_learnt']:,} of the true tags are ones model {result['model']} cannot "
                f"predict (it never learnt them, too rare or new): they count as missed; the commonest: {examples}")
    if result["no_input"]:
        obj.log(f"{result['no_input']:,} of the {result['products']:,} products had neither a title nor a readable "
                "image: nothing was predicted for them, and they count wrong")
    if as_json:
        obj.print_json(result)
    else:
        from tagkit.report import print_evaluation

        print_evaluation(result, top_k)
    sys.exit(outcome)


@main.command()
@click.option("--prune", "keep", type=click.IntRange(min=1), metavar="N",
              help="Delete all but the N newest model versions (folders, rows, and their predictions that later ones "
                   "replaced), version folders the database does not record, and cached image features no version "
                   "left uses; compact the file; then list what is left (--dry-run: what would be).")
@click.option("--dry-run", is_flag=True, help="With --prune: say what would be deleted, delete nothing.")
@json_option("Print JSON on stdout.")
@click.pass_obj
def models(obj: Context, keep: int | None, dry_run: bool, as_json: bool) -> None:
    """List the trained model versions, newest first (exit code 4 when there is none)."""
    from tagkit.versions import list_versions, prune_versions, unrecorded_folders

    if dry_run and keep is None:
        raise click.UsageError("--dry-run goes with --prune N")
    pruned = None
    if keep is not None:
        obj.need_db("run `tagkit import` first, or pass --db", ExitCode.USAGE)
        with obj.run("models", {"prune": keep, "dry_run": dry_run}, "pruning") as run:
            pruned = prune_versions(run.store, keep, dry_run=dry_run)
            run.finish({"deleted": len(pruned.versions), "unrecorded": len(pruned.unrecorded),
                        "bytes": pruned.bytes, "predictions": pruned.predictions, "features": pruned.features,
                        "dry_run": dry_run}, 0)
        deleted = f"{len(pruned.versions)} model version(s)" + (f" ({', '.join(pruned.versions)})"
                                                                 if pruned.versions else "")
        if pruned.unrecorded:
            deleted += f" and {len(pruned.unrecorded)} folder(s) no row records ({', '.join(pruned.unrecorded)})"
        if pruned.predictions:
            deleted += f", and {pruned.predictions:,} predictions of deleted versions that later ones replaced"
        if pruned.features:
            deleted += (f", and {pruned.features:,} cached image features ({pruned.feature_bytes / 1e6:,.1f} MB) of "
                        "image models no version left uses (an older tagkit's, or another --image-model's)")
        said = (f"{'would delete' if dry_run else 'deleted'} {deleted}: {pruned.bytes / 1e6:,.1f} MB; "
                f"kept {', '.join(pruned.kept) or 'none'}")
        if pruned.newer_unrecorded:
            said += f"; {_newer_unrecorded(pruned.newer_unrecorded)}"
        if dry_run:  # what was asked for: said also with -q
            click.echo(said, err=True)
            obj.to_log_file(said)
        else:
            obj.log(said)
    with obj.read_store() as store:  # a mistyped --db is refused, not created
        versions = list_versions(store)
        newer = unrecorded_folders(store, versions)[1]
    if newer and pruned is None:
        obj.log(_newer_unrecorded(newer))
    if pruned is not None and dry_run:  # what would be left
        versions = [v for v in versions if v["id"] not in pruned.versions]
    if not versions:
        obj.fail(f"no trained model in {obj.db} (run `tagkit train PRODUCTS`)", ExitCode.NO_MODEL)
    if as_json and pruned is not None:
        obj.print_json({"pruned": {**dataclasses.asdict(pruned), "dry_run": dry_run}, "versions": versions})
    elif as_json:
        obj.print_json(versions)
    else:
        from tagkit.report import print_models

        print_models(versions)


@main.command("backup")
@click.argument("target", type=click.Path(path_type=Path))
@json_option("Print what was copied as JSON on stdout.")
@click.pass_obj
def backup_command(obj: Context, target: Path, as_json: bool) -> None:
    """Copy the database to TARGET, consistent even while tagkit runs (a plain `cp` misses what is still in
    the database's -wal file), and its model versions to TARGET.models/. The copy is a working database:
    `tagkit --db TARGET ...`; to restore, stop tagkit, delete the database's -wal and -shm files, and copy
    both back."""
    from tagkit.backups import backup

    with obj.read_store() as store:
        try:
            done = backup(store, target)
        except ValueError as error:
            raise click.UsageError(str(error)) from error
    if as_json:
        obj.print_json(dataclasses.asdict(done))
    obj.log(f"backed up {obj.db} to {done.path} ({done.bytes / 1e6:.1f} MB); model versions in {done.models}: "
            f"{len(done.versions_copied)} copied, {len(done.versions_there)} already there"
            + (f"; {len(done.versions_missing)} recorded without a folder here, not copied: "
               f"{', '.join(done.versions_missing)}" if done.versions_missing else ""))


@main.command()
@json_option("Print JSON on stdout.")
@click.pass_obj
def stats(obj: Context, as_json: bool) -> None:
    """Show what the database holds."""
    with obj.read_store() as store:
        facts = store.stats()
    if as_json:
        obj.print_json(facts)
        return
    from rich.table import Table

    from tagkit.report import StdoutConsole

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
    StdoutConsole().print(table)


@main.command()
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N products.")
@click.option("--order", type=click.Choice(["uncertain", "random", "id"]), default="uncertain", show_default=True,
              help="uncertain: where an answer helps most first (alike products spread out); random (seeded); id.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --order random.")
@click.option("--category", metavar="PATH", help="Only products predicted in this category (or below it).")
@click.option("--tag", metavar="NAME", help="Only products with this tag (`name: value`, or an attribute name) "
                                            "predicted or among the candidates.")
@click.option("--reviewer", metavar="NAME", help="Name stored with each decision (default: your login name).")
@click.option("--model", "version", help="Review this model version's predictions (default: each product's latest).")
@click.option("--again", is_flag=True, help="Also show products reviewed before, when a newer model predicted them "
                                            "(their later decisions override the earlier ones).")
@click.option("--sheet", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Write these products to review as a CSV sheet (- for stdout) instead, to fill in the decision "
                   "column in a spreadsheet and load with `tagkit feedback import`. Needs no terminal.")
@click.pass_obj
def review(obj: Context, limit: int | None, order: str, seed: int, category: str | None, tag: str | None,
           reviewer: str | None, version: str | None, again: bool, sheet: Path | None) -> None:
    """Accept, reject or correct the predictions, one product at a time, with single keys (? shows them).

    Every decision is stored in the database the moment it is made; quitting (q) or a crash loses
    nothing, and the next `tagkit review` carries on with the products not reviewed yet. Needs a
    terminal: without one it exits with code 5. Review does not take the writer lock: each decision is
    one short transaction, so a `predict` from cron can run while a review session is open.
    """
    if sheet is None and not (sys.stdin.isatty() and sys.stdout.isatty()):
        obj.fail("tagkit review needs a terminal (stdin and stdout are not one: a pipe, a file or cron?). "
                 "To review in a spreadsheet, write the products to review as a sheet with `tagkit review "
                 "--sheet FILE`, fill in its decision column and load it with `tagkit feedback import FILE`.",
                 ExitCode.NOT_A_TERMINAL)
    from tagkit.feedback import stamp
    from tagkit.queue import canonical_filters, load_items, matches, predicted_model, review_queue, unreviewed
    from tagkit.review import Session
    from tagkit.taxonomy import stored_taxonomy
    from tagkit.tui import run

    reviewer = reviewer or _login_name()
    if sheet is not None and str(sheet) != "-":
        _check_output(sheet, obj.db, param_hint="--sheet")
    with obj.read_store(read_only=sheet is not None) as store:  # review writes its decisions
        try:
            version = predicted_model(store, version)
        except LookupError as error:
            obj.fail(str(error.args[0]), ExitCode.NO_MODEL)
        as_of = stamp()  # a prediction made after the queue is read replaces its item, on screen
        queue = review_queue(store, order=order, seed=seed, model_id=version, category=category, tag=tag,
                             limit=limit, again=again)
        if not queue:
            items = load_items(store, version)
            if not items:
                obj.fail("nothing to review: no predicted product got a category or a tag (`tagkit predict` said why: "
                         "no title and no readable image, or nothing its model reads)", ExitCode.NO_MODEL)
            wanted = canonical_filters(stored_taxonomy(store), category, tag)
            if (category or tag) and not any(matches(i, *wanted) for i in items):
                given = " and ".join(f"--{k} {v!r}" for k, v in (("category", category), ("tag", tag)) if v)
                obj.fail(f"no predicted product matches {given}", ExitCode.NO_MODEL)
            obj.log("nothing left to review: every predicted product that matches has been reviewed"
                    + ("" if again else " (--again: also those a newer model predicted since)"))
            return
        if sheet is not None:
            _write_sheet(obj, store, queue, sheet, reviewer)
            return
        session = Session(store, queue, reviewer, version, as_of)
        args = {"order": order, "seed": seed, "category": category, "tag": tag, "limit": limit, "model": version,
                "reviewer": reviewer, "again": again or None}
        run_id = store.start_run("review", {k: v for k, v in args.items() if v is not None})
        status = "failed"
        try:
            run(session)
            status = "ok"
        except (SystemExit, KeyboardInterrupt):  # a signal (the terminal closed, kill): stopped, not failed
            status = "interrupted"
            raise
        finally:
            decisions = sum(len(step.ids) for step in session.history)
            store.finish_run(run_id, status, {"products_reviewed": session.decided, "decisions": decisions})
    with obj.read_store(read_only=True) as store:  # skipped and half-reviewed products are left too
        left = len(unreviewed(store, queue, again=again))
    obj.log(f"{session.decided:,} products reviewed, {decisions:,} decisions stored in {obj.db} (table feedback)"
            + (f"; {left:,} left in this queue" if left > 0 else ""))


@main.group()
def feedback() -> None:
    """The review decisions as CSV: export them, or import decisions made in a spreadsheet."""


@feedback.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
              help="Write here (- is stdout, the default).")
@click.option("--labels", is_flag=True, help="Write each reviewed product's labels as the decisions leave them "
                                             "(id, title, image, category, tags, decided_at), not the decisions.")
@click.pass_obj
def feedback_export(obj: Context, output: Path | None, labels: bool) -> None:
    """Write every review decision as CSV, oldest first (or, with --labels, the reviewed products' labels)."""
    from tagkit.feedback import export_csv, export_labels

    write = export_labels if labels else export_csv
    output = _file_or_stdout(output)
    if output:
        _check_output(output, obj.db)
    with obj.read_store() as store:
        if output:
            from tagkit.export import atomic_file

            with atomic_file(output, bom=True) as out:
                count = write(store, out)
        else:
            count = write(store, sys.stdout)
    obj.log(f"{count:,} {'products' if labels else 'decisions'} exported" + (f" to {output}" if output else ""))


@feedback.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option("Print the counts and problems as JSON on stdout.")
@click.pass_obj
def feedback_import(obj: Context, file: Path, as_json: bool) -> None:
    """Add the decisions of a CSV file (columns as `tagkit feedback export` writes them, or a review sheet
    filled in; product_id, field and decision are required, and predicted for a category or tag row but a
    correction that adds a tag). Bad rows are reported and left out; rows already stored are not added again.
    """
    from tagkit.feedback import FeedbackFileError, import_csv

    with obj.run("feedback import", {"file": file}, "importing feedback") as run:
        try:
            report = import_csv(run.store, file)
        except FeedbackFileError as error:  # the file, not the command line: no usage banner
            run.finish({}, 0, status="failed")
            obj.fail(str(error), ExitCode.USAGE)
        run.store.add_problems(run.id, report.problems)
        for problem in report.problems:
            run.progress.problem(problem)
        run.finish(report.counts(), report.rows_failed)
    if as_json:
        obj.print_json({**report.counts(), "problems": [dataclasses.asdict(p) for p in report.problems]})
    def rows(n: int) -> str:
        return f"{n:,} row{'s' * (n != 1)}"

    obj.log(f"{report.added:,} decision{'s' * (report.added != 1)} added, {report.already_there:,} already there, "
            + (f"{rows(report.undecided)} without a decision, " if report.undecided else "")
            + (f"{rows(report.decided_since)} decided otherwise since the sheet was written or saved (kept so), "
               if report.decided_since else "")
            + f"{rows(report.rows_failed)} left out")
    sys.exit(ExitCode.PARTIAL if report.rows_failed else ExitCode.OK)


def _login_name() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def _load_mapping(config_path: Path | None, overrides: tuple[str, ...]) -> Mapping | None:
    return _load_config(config_path, overrides)[1]


def _train_settings(obj: Context, store: Store, config: Config | None) -> dict[str, Any]:
    """The `train:` settings this run trains with: the tagkit.yaml's `train:` section, else (no tagkit.yaml, cron
    in another folder, or one with only `input:`) the newest version's, said on stderr, so a nightly `train` keeps
    reading values from titles."""
    from tagkit.versions import train_settings

    if config is not None and config.sections.get("train"):  # an empty `train:` says nothing either
        return {"extract": config.extract, "attributes": config.attributes, "from": str(config.path or "")}
    kept = train_settings(store)
    if kept is None:
        return {"extract": False, "attributes": None, "from": ""}
    version, found = kept
    extract = found.get("extract", False)
    settings = {"extract": extract if isinstance(extract, bool) else tuple(extract),
                "attributes": tuple(found["attributes"]) if found.get("attributes") else None, "from": version}
    shown = ", ".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in found.items())
    where = ("no tagkit.yaml here" if config is None else f"an empty `train:` section in {config.path}"
             if "train" in config.sections else f"no `train:` section in {config.path}")
    obj.log(f"{where}: training with the `train:` settings of the newest model version {version} ({shown}); a "
            "tagkit.yaml with a `train:` section (or --config FILE) sets others")
    return settings


def _load_config(config_path: Path | None, overrides: tuple[str, ...]) -> tuple[Config | None, Mapping | None]:
    """`config.find_config`, its errors as usage errors (exit 2). A ./tagkit.yaml read without --config is said
    on stderr and recorded with the run (it maps the columns of whatever file is read)."""
    from tagkit.config import ConfigError, find_config

    try:
        config, mapping = find_config(config_path, overrides)
    except ConfigError as error:
        raise click.UsageError(str(error)) from error
    obj = click.get_current_context().find_object(Context)
    if config_path is None and config is not None and config.path is not None and obj is not None:
        obj.config_found = config.path.absolute()
        obj.log(f"reading {obj.config_found} (tagkit.yaml in the working folder; --config FILE reads another)")
    return config, mapping


def _import_summary(report: Any) -> dict[str, Any]:
    """An import report's counts and problems, for a command's --json summary."""
    return {"import": report.counts(), "problems": [dataclasses.asdict(p) for p in report.problems]}


def _print_import_report(report: Any) -> None:
    lines = [
        f"source            {report.source}",
        f"products read     {report.products_read:,}",
        f"  new             {report.products_new:,}",
        f"  changed         {report.products_changed:,}",
        f"  unchanged       {report.products_unchanged:,}  "
        + ("(rewritten: --force)" if report.products_stored > report.products_new + report.products_changed
           else "(not rewritten)"),
        f"rows skipped      {report.rows_skipped:,}",
        f"images            {report.images:,}",
    ]
    if report.image_model:
        lines += [
            f"  embedded now    {report.images_embedded:,}  ({report.image_model})",
            f"  already cached  {report.images_cached:,}",
        ]
    lines += [
        f"  unreadable      {report.images_unreadable:,}",
        f"  missing         {report.images_missing:,}",
        f"problems          {report.problem_count:,}" + ("  (see stderr, or the `problems` table)"
                                                          if report.problem_count else ""),
        f"notes             {report.note_count:,}",
        f"time              {report.seconds:.1f} s",
    ]
    click.echo("\n".join(lines))


def _reviewed(counts: dict[str, int]) -> str:
    """How many of the products learnt carry review decisions, and how many of them SOURCE does not have."""
    reviewed, outside = counts.get("reviewed", 0), counts.get("from_review", 0)
    if not reviewed and not outside:
        return ""
    return (f"; {max(reviewed, outside):,} with review decisions"
            + (f", {outside:,} of them not in SOURCE" if outside else ""))


def _print_train_report(summary: dict[str, Any]) -> None:
    counts = summary["counts"]
    lines = [
        f"model version     {summary['version']}" + (" (unchanged: the newest, trained on the same input)"
                                                          if summary.get("unchanged") else ""),
        f"saved in          {summary['path']}",
        f"products          {counts['products']:,} ({counts['with_title']:,} with a title, "
        f"{counts['with_image']:,} with an image"
        + _reviewed(counts) + ")",
        *([f"left out         {counts['held_out']:,} test products that `tagkit eval` read"]
          if counts.get("held_out") else []),
        *([f"not learnt        {counts['not_in_source']:,} labelled products of the database that SOURCE does not "
           "have (`tagkit train` without SOURCE learns them too)"] if counts.get("not_in_source") else []),
        *([f"embedded again    {counts['images_embedded_again']:,} images, cached only for another image model "
           "(--image-model, or an older tagkit)"] if counts.get("images_embedded_again") else []),
        f"categories        {counts['categories']:,} (on {counts['with_category']:,} products)",
        f"tags              {counts['tags']:,} (on {counts['with_tags']:,} products)",
    ]
    chosen = summary.get("attributes")
    if chosen:
        lines.append(f"attributes        only {', '.join(chosen['kept']) or 'none'} (train.attributes)"
                     + (f"; not in the labels: {', '.join(chosen['not_in_labels'])}" if chosen["not_in_labels"]
                        else ""))
    for inputs, metrics in summary["validation"].items():
        if isinstance(metrics, dict):
            shown = ", ".join(f"{name} {value:.3f}" for name, value in metrics.items() if isinstance(value, float))
            lines.append(f"validation        {inputs}: {shown}")
    rare = summary["tags_too_rare"]
    if rare:
        items = list(rare.items())
        shown = ", ".join(f"{tag} ({count})" for tag, count in items[:10])
        fewer = f"on fewer than {summary['min_tag_count']} products; " if summary.get("min_tag_count") else ""
        lines.append(f"too rare to learn {len(items)} tags ({fewer}the tag models do not predict them"
                     f"{', the title extractor may' if summary.get('extractor') else ''}): {shown}"
                     + (", ... (all of them: --json, tags_too_rare)" if len(items) > 10 else ""))
    extractor = summary.get("extractor")
    if extractor:
        lines.append(_extractor_line(extractor))
    lines.append(f"time              {summary['seconds']:.1f} s")
    click.echo("\n".join(lines))


def _most_first(rare: dict[str, int]) -> dict[str, int]:
    """The tags too rare to learn ({tag: products}), the nearest to enough first."""
    return dict(sorted(rare.items(), key=lambda item: (-item[1], item[0])))


def _extractor_line(report: dict[str, Any]) -> str:
    missing = f"; not in the labels: {', '.join(report['not_in_labels'])}" if report.get("not_in_labels") else ""
    if report.get("switched_off"):
        missing += f"; switched off (train.attributes): {', '.join(report['switched_off'])}"
    if "skipped" in report:
        return f"extractor         none: {report['skipped']}{missing}"
    oof = report["out_of_fold"]
    line = (f"extractor         {len(report['attributes']):,} attributes from titles, out of fold precision "
            f"{oof['precision']:.3f} recall {oof['recall']:.3f} F1 {oof['f1']:.3f} (per attribute: --json){missing}")
    chosen = report.get("sources", {}).get("chosen", {})
    for source in ("extractor", "model"):
        names = [name for name, kept in chosen.items() if kept == source]
        if names:
            line += f"\n                  tags of {', '.join(names)}: the {source}'s only (the other's are candidates)"
    return line


class _NothingRead(Exception):
    """The input could not be read at all (every record a problem): the export is not replaced."""


def _outcome(counts: dict[str, Any]) -> ExitCode:
    """The exit code of a command that read an input, from its `ImportReport.counts()`: USAGE when nothing at all
    could be read from it, PARTIAL when some rows, fields or images had problems."""
    if not counts.get("problem_count"):
        return ExitCode.OK
    return ExitCode.USAGE if not counts.get("products_read") else ExitCode.PARTIAL


def _check_source(source: Path, products_file: Path | None) -> None:
    if products_file is not None and not source.is_dir():
        raise click.UsageError(f"--products names the titles of a folder of images, but {source} is a file "
                               "(a products file is given as SOURCE alone)")


def _newer_unrecorded(names: list[str]) -> str:
    return (f"{len(names)} model folder(s) that the database does not record, newer than its oldest version, not "
            f"listed and not pruned: {', '.join(names)} (the database restored from a backup older than its models "
            "folder? delete them by hand if they are not wanted)")


def _file_or_stdout(value: Path | None) -> Path | None:
    """An -o value: None (stdout) for `-`, as `review --sheet -`."""
    return None if value is not None and str(value) == "-" else value


def _check_output(output: Path, db: Path, inputs: dict[str, Path | None] | None = None, param_hint: str = "-o"
                  ) -> None:
    """`export.check_output`, its refusal as a usage error (exit 2)."""
    from tagkit.export import OutputError, check_output

    try:
        check_output(output, db, inputs)
    except OutputError as error:
        raise click.BadParameter(str(error), param_hint=param_hint) from error


def _write_sheet(obj: Context, store: Store, queue: list, sheet: Path, reviewer: str | None) -> None:
    """`review --sheet`: the queue as a review sheet, to stdout (`-`) or written whole to a file."""
    from tagkit.export import atomic_file
    from tagkit.review import write_sheet

    if str(sheet) == "-":
        count = write_sheet(queue, sys.stdout, reviewer, store)
    else:
        with atomic_file(sheet, bom=True) as out:
            count = write_sheet(queue, out, reviewer, store)
    where = "" if str(sheet) == "-" else f" to {sheet}"
    obj.log(f"{count:,} products to review written{where}: write accept, reject or correct (with the right value "
            "in corrected) in the decision column, and accept in a product's review row when it is done (its "
            "predictions not decided are then accepted), then `tagkit feedback import`")


def _check_model(obj: Context, run: Run, version: str | None) -> dict[str, list[str]]:
    """Exit with NO_MODEL when there is no model to predict with (or not the one asked for). Returns
    `{"passed_over": [...]}`, the newer versions without a folder, for the run's counts and --json (a cron job's
    summary shows an older model used), or {}."""
    from tagkit.predicting import ModelMismatch, embedder_for
    from tagkit.versions import ModelNotFound, find_version

    try:
        found = find_version(run.store, version)
        embedder_for(found)
    except (ModelNotFound, ModelMismatch) as error:
        run.finish({}, 0, status="failed")
        obj.fail(str(error), ExitCode.NO_MODEL)
    if found.passed_over:
        newer = ", ".join(found.passed_over)
        obj.log(f"warning: the newest model version{'s' if len(found.passed_over) > 1 else ''} ({newer}) "
                f"{'have' if len(found.passed_over) > 1 else 'has'} no folder (moved or deleted?): using {found.id}, "
                "the newest one there is (`tagkit models` lists them)")
    return {"passed_over": list(found.passed_over)} if found.passed_over else {}


def _damaged_model(obj: Context, run: Run, error: ModelNotFound) -> NoReturn:
    """A model version whose files could not be read once the run was under way: say so, exit with NO_MODEL."""
    run.finish({}, 0, status="failed")
    obj.fail(f"{error}; what was stored before is kept", ExitCode.NO_MODEL)


def _print_prediction(record: PredictedProduct) -> None:
    tags = ", ".join(f"{tag} ({score:.2f})" for tag, score in record.tags)
    category = f"{record.category} ({record.category_score:.2f})" if record.category else "-"
    click.echo(f"{record.id}\t{category}\t{tags}")


class _Progress:
    """A progress bar on stderr when it is a terminal; problems printed above it.

    Notes (information only) of one kind are printed up to NOTES_SHOWN times, then counted; so are problems of one
    cause (`Problem.cause`: "file not found"), up to PROBLEMS_SHOWN times.
    """

    NOTES_SHOWN = 5
    PROBLEMS_SHOWN = 20

    def __init__(self, obj: Context, label: str) -> None:
        self.obj = obj
        self.label = label
        self.bar = None
        self.task = None
        self.notes: dict[tuple[str | None, str], int] = {}
        self.causes: dict[tuple[str | None, str], int] = {}

    def __enter__(self) -> _Progress:
        if not self.obj.quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                TextColumn("{task.completed:,} products"), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True,
                                redirect_stdout=False)  # stdout carries the data: never through the bar
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
        for (field, kind), count in self.notes.items():
            if count > self.NOTES_SHOWN:
                self.obj.log(f"note: {count - self.NOTES_SHOWN:,} more like {kind!r} (field {field!r}); "
                             "all of them are in the database's problems table")
        for (field, cause), count in self.causes.items():
            if count > self.PROBLEMS_SHOWN:
                self.obj.log(f"{count - self.PROBLEMS_SHOWN:,} more problems like {cause!r} (field {field!r}) not "
                             "shown; all of them are in the database's problems table")

    def update(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done)

    def problem(self, problem: Any) -> None:
        if self.obj.quiet and self.obj.log_file is None:
            return
        if problem.info:
            kind = (problem.field, problem.message.split(":")[0])
            self.notes[kind] = self.notes.get(kind, 0) + 1
            if self.notes[kind] > self.NOTES_SHOWN:
                return
        elif problem.cause:
            cause = (problem.field, problem.cause)
            self.causes[cause] = self.causes.get(cause, 0) + 1
            if self.causes[cause] > self.PROBLEMS_SHOWN:
                return
        text = f"note: {problem}" if problem.info else str(problem)
        self.obj.to_log_file(text)
        if self.obj.quiet:
            return
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            click.echo(text, err=True)


from tagkit.taxonomy_commands import taxonomy  # noqa: E402  (its commands import tagkit.cli only when run)

main.add_command(taxonomy)
