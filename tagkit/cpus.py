"""What this process may use of the CPU: how many cores, BLAS threads, exact INT8 arithmetic."""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, where the system has one), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


# BLAS's thread pool is the process's (OpenBLAS on pthreads, MKL, BLIS): calls that overlap (threads of a web
# service each predicting) share one limit. The first to come in saves the libraries' settings and sets 1, the
# last to leave puts them back; a call that saved the "1" of another and restored it would leave the whole process
# on one thread for good.
_blas_lock = threading.Lock()
_blas_users = 0
_blas_saved: dict[str, tuple[Any, int]] = {}  # library file -> (its controller, its threads before the first call)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Matrix products on one BLAS thread: with more threads, sums are added up in another order, and a number
    that moves in its sixth decimal can cross a re-ranker's split. Under it, the image models fitted and the
    scores predicted are the same whatever the machine's cores (`train` on a laptop and on a server; `eval`
    and `predict`). Work that needs the cores splits itself into fixed blocks instead. Safe in several threads
    at once: the process's own settings come back when the last of them ends."""
    global _blas_users
    shared, own = _blas_libraries()
    own_before: list[tuple[Any, int]] = []
    with _blas_lock:
        _blas_users += 1
    try:
        with _blas_lock:
            new = [(lib, n) for lib in shared if lib.filepath not in _blas_saved and (n := lib.get_num_threads())]
            _blas_saved.update((lib.filepath, (lib, n)) for lib, n in new)  # also a library loaded since the first
            _set_threads([(lib, 1) for lib, _ in new])
        own_before = [(lib, n) for lib in own if (n := lib.get_num_threads())]
        _set_threads([(lib, 1) for lib, _ in own_before])
        yield
    finally:
        _set_threads(own_before)
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _set_threads(list(_blas_saved.values()))
                _blas_saved.clear()


def _blas_libraries() -> tuple[list[Any], list[Any]]:
    """The BLAS libraries loaded: those whose thread count is the process's, and those where it is each
    thread's own (OpenBLAS on OpenMP), which every call sets and restores for its thread alone."""
    from threadpoolctl import ThreadpoolController

    libs = ThreadpoolController().select(user_api="blas").lib_controllers
    own = [lib for lib in libs if lib.internal_api == "openblas" and getattr(lib, "threading_layer", "") == "openmp"]
    return [lib for lib in libs if lib not in own], own


def _set_threads(settings: list[tuple[Any, int]]) -> None:
    """Set each library's thread count. threadpoolctl 3.8+ lets one thread at a time set OpenBLAS's
    process-wide count and frees it when that thread's count of open limits is back to 0: this counts as one,
    so the thread that restores the counts later (any of the callers) is free to."""
    import threadpoolctl

    ownership = getattr(threadpoolctl, "CONTROLLING_THREAD_OWNERSHIP", None)
    if not settings:
        return
    if ownership is not None:
        ownership.increment()
    try:
        for lib, n in settings:
            lib.set_num_threads(n)
    finally:
        if ownership is not None:
            ownership.decrement()


X86 = ("x86_64", "amd64", "i386", "i686", "x86")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})


def int8_sums_saturate(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether onnxruntime's fast INT8 kernels give wrong sums on this CPU. On an x86 CPU without VNNI
    instructions (AVX2, or AVX-512 without VNNI) they add pairs of uint8 x int8 products in 16 bits that saturate
    (255 x 127 x 2 > 32,767): the bundled model's INT8 features then have a cosine of about 0.8 to its fp32 ones,
    instead of 0.99. VNNI CPUs and other architectures sum exactly. An x86 CPU whose flags cannot be read (not
    Linux) counts as saturating: the exact kernels are right everywhere, only slower."""
    if platform.machine().lower() not in X86:
        return False
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    return flags is None or not VNNI_FLAGS.intersection(flags)
