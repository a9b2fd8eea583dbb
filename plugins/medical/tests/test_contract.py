"""tlcore-medical passes tlcore's plugin contract checks (tlcore.testing.check_plugin)."""

from __future__ import annotations

from pathlib import Path

import tlcore_medical
from tlcore.testing import check_plugin


def test_medical_passes_the_plugin_contract(tmp_path: Path) -> None:
    check_plugin(tlcore_medical, name="medical", workdir=tmp_path)
