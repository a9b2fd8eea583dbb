"""glibc malloc settings that keep a CPU training process from paying page faults for every batch.

A fine-tuning step on the CPU allocates and frees gigabytes of activations and gradients. With glibc's
defaults, freed blocks above a small threshold go back to the kernel at once (``munmap``, heap trimming),
so the next batch faults every page in again: on EfficientNet-Lite0 at batch 32 and 224 px that is about
1.3 million minor page faults per step. Keeping freed memory inside the process (blocks up to 32 MiB from
the heap, no trimming, the heap grown 1 GiB at a time) cuts them tenfold (docs/benchmarks.md has the
measurement). The price is a resident size that stays at its peak until the process ends, which a
training process reaches anyway.

The settings are applied once per process, when a model is first placed on the CPU
(tlcore.runtime.prepare_model), only under glibc, and never over a choice the user made: a ``MALLOC_*``
environment variable, ``GLIBC_TUNABLES`` with ``glibc.malloc`` settings, or another allocator preloaded
(jemalloc, tcmalloc, mimalloc) leaves malloc as it is. ``MALLOC_PERTURB_=0``, which changes nothing in
glibc, keeps its defaults.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Mapping

# mallopt parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

#: What tlcore sets: blocks up to 32 MiB (glibc's largest mmap threshold) come from the heap; freed heap
#: memory is never trimmed; the heap grows 1 GiB at a time instead of 128 KiB.
SETTINGS: dict[str, tuple[int, int]] = {
    "mmap_threshold": (M_MMAP_THRESHOLD, 32 * 1024**2),
    "trim_threshold": (M_TRIM_THRESHOLD, 2**31 - 1),
    "top_pad": (M_TOP_PAD, 1024**3),
}

_PRELOADED_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

_state: dict[str, object] | None = None


def user_choice(environ: Mapping[str, str]) -> str | None:
    """The user's own allocator choice in ``environ``, named; None when there is none."""
    for name in sorted(environ):
        if name.startswith("MALLOC_"):
            return name
    if "glibc.malloc" in environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES"
    preload = environ.get("LD_PRELOAD", "")
    for allocator in _PRELOADED_ALLOCATORS:
        if allocator in preload:
            return f"LD_PRELOAD ({allocator})"
    return None


def keep_freed_memory() -> dict[str, object]:
    """Apply :data:`SETTINGS` once per process where it is allowed; returns what was done, for report.json:
    ``{"malloc": "tuned", ...settings}`` or ``{"malloc": "default", "reason": ...}``."""
    global _state
    if _state is None:
        _state = _apply()
    return dict(_state)


def state() -> dict[str, object]:
    """What :func:`keep_freed_memory` did in this process (``{"malloc": "default"}`` before it ran)."""
    return dict(_state) if _state is not None else {"malloc": "default", "reason": "no model on the CPU yet"}


def _apply() -> dict[str, object]:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return {"malloc": "default", "reason": "not glibc"}
    choice = user_choice(os.environ)
    if choice is not None:
        return {"malloc": "default", "reason": f"the user's {choice}"}
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return {"malloc": "default", "reason": "mallopt not found"}
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for name, (param, value) in SETTINGS.items():
        if mallopt(param, value) != 1:  # mallopt returns 1 on success
            return {"malloc": "default", "reason": f"mallopt refused {name}"}
    return {"malloc": "tuned"} | {name: value for name, (_, value) in SETTINGS.items()}
