"""What this process may use of the CPU: how many cores, BLAS threads, exact INT8 arithmetic."""

from __future__ import annotations

import os
import platform
from contextlib import AbstractContextManager
from pathlib import Path
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
