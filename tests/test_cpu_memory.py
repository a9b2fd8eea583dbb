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

# Forward and backward passes of EfficientNet-Lite0 (batch 8, 128 px), the model placed on the CPU through
# prepare_model or only converted to channels_last; prints what cpu_memory did and the minor page faults of
# two steps after two warm-up steps.
PROBE = textwrap.dedent(
    """
    import json, resource, sys
    import timm, torch
    from tlcore import cpu_memory
    from tlcore.runtime import prepare_model
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", num_classes=2)
    if sys.argv[1] == "prepare":
        model = prepare_model(model, torch.device("cpu"))
    else:
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(8, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    def step():
        model(x).sum().backward()
    step()
    step()  # a second warm-up step: the tuned heap has reached its working size before faults are counted
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps({"state": cpu_memory.state(), "faults": faults}))
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
    # glibc's defaults hand the freed activations back and fault them in again each step (about 30000 faults
    # per step here); tuned, the process reuses them (6-10x fewer measured).
    assert isinstance(untouched["faults"], int) and isinstance(tuned["faults"], int)
    assert tuned["faults"] * 2 < untouched["faults"]


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
