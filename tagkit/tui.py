"""The terminal of `tagkit review`: one product per screen, drawn with rich, answered with single keys.

The product's image is drawn with half-block characters (`▀`, top pixel in the foreground colour, bottom
pixel in the background colour), sized to the window. Keys are read in raw mode (no Enter, no echo); output
keeps its newline translation. All decisions go through `tagkit.review.Session`, which stores them at once.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import signal
import sqlite3
import sys
import termios
import tty
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.segment import Segment, Segments
from rich.style import Style
from rich.table import Table
from rich.text import Text

from tagkit.report import left_to_right
from tagkit.review import KEYS, Screen, Session, Suggestion

if TYPE_CHECKING:
    from rich.console import RenderableType

HELP = [
    ("a", "accept: every suggestion shown on (✓ or ·) is right; next product"),
    ("x", "reject: the predictions not decided yet are wrong; next product"),
    ("1-9, 0", "toggle one suggestion: choose an alternative category, turn a tag or candidate on or off"),
    ("e", "edit: type a category path or a `name: value` tag (Tab completes, Enter records, Esc cancels)"),
    ("space", "skip: next product, no decision (shown again next time)"),
    ("u, Backspace", "undo the last action (again for the one before, and so on)"),
    ("?", "this help"),
    ("q", "quit (every decision is already stored; `tagkit review` carries on where you stopped)"),
]
FOOTER = "a accept  x reject  0-9 toggle  e edit  space skip  u undo  ? help  q quit"
SHORT_FOOTER = "a x 0-9 e ␣ u ? · q quit"  # a narrow window: the keys only (? explains them)
MIN_IMAGE_WIDTH = 60  # a narrower window shows no image: the product's details take the whole width
MARKS = {("on", True): ("✓", "bold green"), ("on", False): ("·", "yellow"), ("off", True): ("✗", "red"),
         ("off", False): (" ", "")}
_SEQUENCE_WAIT = 0.03  # seconds to wait for the rest of an escape sequence


def run(session: Session, console: Console | None = None, fd: int | None = None) -> None:
    """Review until the queue is done and the reviewer quits (q, Ctrl-C, Ctrl-D)."""
    console = console or Console(highlight=False, emoji=False)
    fd = sys.stdin.fileno() if fd is None else fd
    message = ""
    with raw_terminal(fd, console):
        try:
            while True:
                screen = session.screen()
                size = console.size  # the size it is drawn for: a resize while drawing is one too
                hidden, shown = render(console, session, screen, message)
                key = read_key(fd)
                message = ""
                if key in ("q", "ctrl-c", "ctrl-d", "eof"):
                    return
                try:
                    if key == "?":
                        show_help(console)
                        read_key(fd)
                    elif key in ("u", "backspace"):
                        message = session.undo()
                    elif screen is None:
                        message = "the queue is done: u undoes the last action, q quits"
                    elif key in ("a", "x") and console.size != size:  # resized: what was seen is not what is there
                        message = "the window changed size: look again, then press the key"
                    elif key in ("a", "x") and hidden:  # a and x decide every suggestion: not unseen ones
                        message = f"{hidden} lines out of view: enlarge first"
                    elif key == "a":
                        message = session.accept_all(screen)
                    elif key == "x":
                        message = session.reject_all(screen)
                    elif key == " ":
                        message = session.skip()
                    elif key in KEYS and hidden and key not in shown and any(s.key == key for s in screen.suggestions):
                        message = f"the line of {key} is out of view: enlarge first"
                    elif key in KEYS:
                        message = session.toggle(key, screen)
                    elif key == "e":
                        categories, tags = session.known_values()
                        text = read_line(console, fd, "edit> ", categories + tags)
                        message = session.edit(text, screen) if text else "edit cancelled"
                    elif key:
                        message = f"no action on {key!r}: ? lists the keys"
                except sqlite3.OperationalError as error:  # another program's write outlasted the wait
                    if "locked" not in str(error):
                        raise
                    message = ("not stored: another program kept the database locked for the whole wait; "
                               "press the key again")
        except KeyboardInterrupt:
            return


@contextlib.contextmanager
def raw_terminal(fd: int, console: Console) -> Iterator[None]:
    """Raw keys in, translated newlines out, the alternate screen; all restored on the way out (also on
    SIGTERM and SIGHUP, the terminal closed, turned into SystemExit)."""
    saved = termios.tcgetattr(fd)
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        tty.setraw(fd, termios.TCSANOW)
        attrs = termios.tcgetattr(fd)
        attrs[1] |= termios.OPOST | termios.ONLCR
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        console.set_alt_screen(True)
        console.show_cursor(False)
        yield
    finally:
        with contextlib.suppress(OSError, termios.error):  # the terminal may be gone (SIGHUP)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)  # first: the user's shell is not left raw, whatever fails
        with contextlib.suppress(Exception):  # (a stdout that cannot encode them: what failed is being raised)
            console.show_cursor(True)
            console.set_alt_screen(False)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# keys ------------------------------------------------------------------------------------------------------

def read_key(fd: int) -> str:
    """One key: a character, or `enter`, `tab`, `backspace`, `esc`, `ctrl-c`, `ctrl-d`, `ctrl-u`, `eof`;
    "" for keys without a meaning here (arrows, function keys)."""
    first = os.read(fd, 1)
    if not first:
        return "eof"
    byte = first[0]
    if byte == 0x1B:
        if not select.select([fd], [], [], _SEQUENCE_WAIT)[0]:
            return "esc"
        os.read(fd, 32)  # the rest of an escape sequence
        return ""
    names = {0x03: "ctrl-c", 0x04: "ctrl-d", 0x15: "ctrl-u", 0x09: "tab", 0x0D: "enter", 0x0A: "enter",
             0x7F: "backspace", 0x08: "backspace"}
    if byte in names:
        return names[byte]
    if byte < 0x20:
        return ""
    length = 2 if byte >= 0xC0 else 1
    length = 3 if byte >= 0xE0 else length
    length = 4 if byte >= 0xF0 else length
    data = first
    while len(data) < length:
        more = os.read(fd, length - len(data))
        if not more:
            break
        data += more
    return codecs.decode(data, "utf-8", errors="replace")


def read_line(console: Console, fd: int, prompt: str, options: Sequence[str]) -> str | None:
    """A line typed at the bottom of the screen, with Tab completion from `options`; None on Esc."""
    text, hint = "", "Tab completes · Enter records · Esc cancels"
    out = console.file
    out.write("\n\n\x1b[?25h")
    try:
        while True:
            width = console.size.width
            out.write(f"\x1b[1A\r\x1b[2K{hint[: width - 1]}\n\r\x1b[2K{prompt}{text}")
            out.flush()
            key = read_key(fd)
            if key in ("esc", "ctrl-c", "ctrl-d", "eof"):
                return None
            if key == "enter":
                return text
            if key == "backspace":
                text = text[:-1]
            elif key == "ctrl-u":
                text = ""
            elif key == "tab":
                text, matches = complete(text, options)
                hint = (f"{len(matches)} {'match' if len(matches) == 1 else 'matches'}: " + " · ".join(matches[:8])
                        + (" · …" if len(matches) > 8 else "") if matches
                        else "no known category or tag starts like that")
            elif len(key) == 1:
                text += key
    finally:
        out.write("\x1b[?25l")
        out.flush()


def complete(text: str, options: Sequence[str]) -> tuple[str, list[str]]:
    """Complete `text` to the longest common beginning of the options it starts (case ignored); also
    return those options."""
    folded = text.casefold()
    matches = [o for o in options if o.casefold().startswith(folded)]
    if not matches:
        return text, []
    common = matches[0]
    for other in matches[1:]:
        while not other.startswith(common):
            common = common[:-1]
    return (common if len(common) >= len(text) else text), matches


# drawing ---------------------------------------------------------------------------------------------------

def render(console: Console, session: Session, screen: Screen | None, message: str) -> tuple[int, set[str]]:
    """Draw one product's screen (or the end of the queue) over the whole window; returns how many of its lines
    did not fit, and the keys of the suggestions whose lines are in view."""
    width, height = console.size
    console.clear()
    total = len(session.queue)
    if screen is None:
        console.print(Text(f"tagkit review · the queue is done ({total} products, {session.decided} reviewed "
                           "in this session)", style="bold"))
        console.print(Text(message, style="cyan") if message else "")
        console.print(Text("u undo  q quit", style="dim"))
        return 0, set()
    item = screen.item
    header = Text(f"tagkit review · product {session.position + 1} of {total}: {item.id} · model {item.model}"
                  f" · reviewer {session.reviewer or '-'}", style="bold")
    body_rows = max(1, height - 3)  # below the header, above the message and the keys
    body: RenderableType = details(screen)
    if width >= MIN_IMAGE_WIDTH:
        box_cols = max(8, min(40, width // 3))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(width=box_cols)
        grid.add_column()
        colour = console.color_system is not None and not console.no_color
        grid.add_row(image_cell(item.image, box_cols, max(2, min(18, body_rows)), colour), body)
        body = grid
    options = console.options.update(width=width)
    lines = console.render_lines(body, options, pad=False)
    hidden = len(lines) - body_rows + 1 if len(lines) > body_rows else 0
    if hidden:  # keep the top (id, title, category): say what does not fit
        note = Text(f"… {hidden} more line{'s' * (hidden != 1)}: make the window taller", style="dim",
                    no_wrap=True, overflow="ellipsis")
        lines = [*lines[: body_rows - 1], console.render_lines(note, options, pad=False)[0]]
    shown = keys_in_view(screen, ["".join(segment.text for segment in line) for line in lines])
    console.print(header, no_wrap=True, overflow="ellipsis")
    console.print(Segments([segment for line in lines for segment in (*line, Segment.line())]), end="")
    console.print(Text(message, style="cyan") if message else "", no_wrap=True, overflow="ellipsis")
    footer = FOOTER if width >= len(FOOTER) else SHORT_FOOTER
    console.print(Text(footer, style="dim"), no_wrap=True, overflow="ellipsis", end="")  # a full window: no scroll
    return hidden, shown


def keys_in_view(screen: Screen, lines: list[str]) -> set[str]:
    """The keys of the suggestions whose lines (`suggestion_line`) begin one of these drawn `lines`, where the
    product's details begin (beside the image, when there is one)."""
    start = next((line.find("id     ") for line in lines if "id     " in line), 0)
    labels = {suggestion_line(s).plain[:5]: s.key for s in screen.suggestions if s.key}
    return {labels[line[start:start + 5]] for line in lines if line[start:start + 5] in labels}


def details(screen: Screen) -> RenderableType:
    """The product's id, title and suggestions, with their keys and marks."""
    item = screen.item
    lines: list[RenderableType] = [Text.assemble(("id     ", "dim"), item.id),
                                   Text.assemble(("title  ", "dim"), left_to_right(item.title) or "(no title)")]
    if screen.finished:
        lines.append(Text(f"already reviewed: {screen.finished}", style="magenta"))
    sections = [("category", "Category"), ("tag", "Tags"), ("candidate", "Candidates (below threshold)")]
    for kind, title in sections:
        rows = [s for s in screen.suggestions if s.kind == kind]
        if rows or kind != "candidate":
            lines.append(Text(title, style="bold underline"))
        lines += [suggestion_line(s) for s in rows] or ([Text("  (none)", style="dim")] if kind != "candidate"
                                                         else [])
    return Group(*lines)


def suggestion_line(s: Suggestion) -> Text:
    mark, style = MARKS[("on" if s.on else "off", s.decision is not None)]
    score = f"  {s.score:.2f}" if s.score is not None else (
        f"  (typed by {(s.decided_in or {}).get('reviewer') or 'you'})" if s.decision == "correct" else "")
    return Text.assemble((f"{s.key or ' ':>2} ", "bold"), (mark, style), " ",
                         (left_to_right(s.value), style if s.on else "dim"), (score, "dim"))  # (its score stays after)


def show_help(console: Console) -> None:
    console.clear()
    table = Table(title="tagkit review: keys", show_header=False, box=None, padding=(0, 2))
    for key, meaning in HELP:
        table.add_row(Text(key, style="bold"), Text(meaning))
    console.print(table)
    console.print(Text("Each decision is stored the moment it is made. Press any key to go back.", style="dim"))


def image_cell(path: str | None, cols: int, rows: int, colour: bool) -> Text:
    """The image as half-block characters, or a line saying why there is none."""
    if not path:
        return Text("(no image)", style="dim")
    if not colour:
        return Text(f"(image not drawn: the terminal shows no colours)\n{os.path.basename(path)}", style="dim")
    return half_blocks(path, cols, rows)


@lru_cache(maxsize=64)
def half_blocks(path: str, cols: int, rows: int) -> Text:
    """An image file drawn in at most `cols` × `rows` cells (two pixels a cell, one above the other)."""
    from rich.color import Color

    from tagkit.image import ImageError, load_image

    try:
        image = load_image(path, os.path.basename(path), target_size=max(cols, rows * 2))
    except ImageError as error:
        if error.missing:  # a project folder moved: the stored paths are where the images were read
            return Text(f"(image not found at {path}: moved? `tagkit import` of the products file or folder where "
                        "they are now updates the paths)", style="dim", overflow="fold")  # the whole path, folded
        return Text(f"(image unreadable: {error})", style="dim")
    image.thumbnail((cols, rows * 2))
    width, height = image.size
    pixels = image.load()
    text = Text(no_wrap=True)
    for y in range(0, height, 2):
        for x in range(width):
            top = Color.from_rgb(*pixels[x, y][:3])
            bottom = Color.from_rgb(*pixels[x, y + 1][:3]) if y + 1 < height else None
            text.append("▀", Style.from_color(top, bottom))
        if y + 2 < height:
            text.append("\n")
    return text
