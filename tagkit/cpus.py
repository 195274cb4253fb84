"""How many CPU cores this process may use."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, where the system has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1
