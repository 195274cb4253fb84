"""How many CPU cores this process may use."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from typing import Any


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, where the system has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def one_blas_thread() -> AbstractContextManager[Any]:
    """Matrix products on one BLAS thread: with more threads, sums are added up in another order, and a number
    that moves in its sixth decimal can cross a re-ranker's split. Under it, the image models fitted and the
    scores predicted are the same whatever the machine's cores (`train` on a laptop and on a server; `eval`
    and `predict`). Work that needs the cores splits itself into fixed blocks instead."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
