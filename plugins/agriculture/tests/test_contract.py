"""tlcore-agriculture passes tlcore's plugin contract checks (tlcore.testing.check_plugin)."""

from __future__ import annotations

from pathlib import Path

import tlcore_agriculture
from tlcore.plugins import PluginHost
from tlcore.testing import check_adapter, check_plugin, write_sample_folder

CLASSES = ("Apple___healthy", "Apple___scab", "Tomato___Late_blight")


def test_agriculture_passes_the_plugin_contract(tmp_path: Path) -> None:
    # The PlantVillage adapter only accepts Crop___Disease class folders: give it a sample of its own.
    plantvillage = write_sample_folder(tmp_path / "plantvillage", classes=CLASSES)
    check_plugin(
        tlcore_agriculture,
        name="agriculture",
        adapter_samples={"agriculture/plantvillage": plantvillage},
        workdir=tmp_path,
    )


def test_plantvillage_adapter_skips_plain_folders_and_loads_its_own(tmp_path: Path) -> None:
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(tlcore_agriculture, name="agriculture")
    adapter = host.adapters.get("agriculture/plantvillage")
    assert check_adapter(adapter, write_sample_folder(tmp_path / "plain")) is None  # detect() says no
    dataset = check_adapter(adapter, write_sample_folder(tmp_path / "pv", classes=CLASSES), {"crop": "Apple"})
    assert dataset is not None
    assert dataset.classes == ["Apple___healthy", "Apple___scab"]
    assert dataset.provenance["crops"] == ["Apple"]
