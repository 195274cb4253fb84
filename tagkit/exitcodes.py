"""Exit codes of the `tagkit` command, for scripts and cron (documented in the README)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # everything went through
    ERROR = 1  # an unexpected failure (a bug, a full disk): the message says what
    USAGE = 2  # a bad command line or configuration, or an input that cannot be read at all
    PARTIAL = 3  # finished, but some rows, fields or images had problems (on stderr and in `problems`)
    NO_MODEL = 4  # no trained model (or not the one asked for), nothing to train on, nothing to review or show
    NOT_A_TERMINAL = 5  # `tagkit review` needs a terminal (stdin and stdout), and was run from a pipe or cron
    LOCKED = 6  # another tagkit process is writing to the database and did not finish within --wait
    INTERRUPTED = 130  # stopped with Ctrl-C (SIGINT): the run is recorded as interrupted, what was stored is kept
    OUTPUT_CLOSED = 141  # stdout was closed before the end (`| head`): stopped, what was stored is kept
    TERMINATED = 143  # stopped by SIGTERM (kill, timeout, a service manager): as with Ctrl-C
