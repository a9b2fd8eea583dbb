"""glibc malloc kept from returning freed blocks to the kernel in CPU runs (tlcore.cpu_memory)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import textwrap

import pytest

from tlcore import cpu_memory
from tlcore.cpu_memory import user_choice

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc malloc only"
)

# Where glibc serves a 24 MiB block and whether freeing it hands memory back, read from mallinfo2 in a fresh
# process (malloc settings are per process), with a small model placed on the CPU through prepare_model or
# only converted to channels_last. These are the allocator facts the speed-up rests on; the page faults and
# seconds per training step they save depend on the machine's load and are measured by
# benchmarks/cpu_memory.py, not asserted here.
PROBE = textwrap.dedent(
    """
    import ctypes, json, sys
    import torch
    from tlcore import cpu_memory
    from tlcore.runtime import prepare_model

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    model = torch.nn.Conv2d(3, 4, 3)
    if sys.argv[1] == "prepare":
        model = prepare_model(model, torch.device("cpu"))
    else:
        model = model.to(memory_format=torch.channels_last)
    before = libc.mallinfo2()
    block = libc.malloc(24 * 1024**2)
    held = libc.mallinfo2()
    libc.free(block)
    freed = libc.mallinfo2()
    print(json.dumps({
        "state": cpu_memory.state(),
        "mmapped": held.hblkhd - before.hblkhd,
        "heap_grew": held.arena - before.arena,
        "heap_kept_after_free": freed.arena - before.arena,
        "unmapped_on_free": held.hblkhd - freed.hblkhd,
    }))
    """
)


def _probe(mode: str, **env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=clean | env, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


@glibc
def test_a_model_on_the_cpu_keeps_freed_memory_in_the_process() -> None:
    untouched, tuned = _probe("none"), _probe("prepare")
    assert untouched["state"] == {"malloc": "default", "reason": "no model on the CPU yet"}
    assert tuned["state"] == {
        "malloc": "tuned",
        "mmap_threshold": 32 * 1024**2,
        "trim_threshold": 2**31 - 1,
        "top_pad": 1024**3,
    }
    block = 24 * 1024**2
    # glibc's defaults map a block this size on its own and unmap it on free: the next batch faults it in again
    assert isinstance(untouched["mmapped"], int) and untouched["mmapped"] >= block
    assert untouched["unmapped_on_free"] == untouched["mmapped"]
    # tuned, it comes from the heap, which grows 1 GiB at once (the top pad) and keeps all of it after the free
    assert tuned["mmapped"] == 0 and tuned["unmapped_on_free"] == 0
    assert isinstance(tuned["heap_grew"], int) and tuned["heap_grew"] >= 1024**3
    assert tuned["heap_kept_after_free"] == tuned["heap_grew"]


@glibc
def test_the_users_malloc_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert cpu_memory._apply() == {"malloc": "default", "reason": "the user's MALLOC_TRIM_THRESHOLD_"}


@pytest.mark.parametrize(
    ("environ", "choice"),
    [
        ({}, None),
        ({"MALLOC_ARENA_MAX": "2"}, "MALLOC_ARENA_MAX"),
        ({"MALLOCATOR": "x"}, None),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=131072"}, "GLIBC_TUNABLES"),
        ({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"}, None),
        ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "LD_PRELOAD (jemalloc)"),
        ({"LD_PRELOAD": "libtcmalloc_minimal.so.4"}, "LD_PRELOAD (tcmalloc)"),
    ],
)
def test_user_choice_names_what_the_user_set(environ: dict[str, str], choice: str | None) -> None:
    assert user_choice(environ) == choice
