"""medical/bias-field and medical/speckle: the modality's own acquisition changes for tl stress."""

from __future__ import annotations

import numpy as np

from tlcore.config import build_config, preset_settings
from tlcore.plugins import PluginHost
from tlcore.reports import stress


def test_register_perturbations_medical_changes_do_what_they_say(host: PluginHost) -> None:
    grey = np.full((40, 60, 1), 0.5, np.float32)
    bias = host.perturbations.entry("medical/bias-field")
    assert bias.plugin == "medical"
    field = bias.item.apply(grey)
    assert field.shape == grey.shape
    assert field[:, 0].mean() > 0.6 > 0.4 > field[:, -1].mean()  # brighter on the left, darker on the right
    assert np.allclose(field[0], field[-1])  # the field only varies across the image

    speckle = host.perturbations.get("medical/speckle").apply
    image = np.random.default_rng(0).uniform(0.2, 0.8, (48, 48, 3)).astype(np.float32)
    image[:8] = 0.0
    once, again = speckle(image), speckle(image)
    np.testing.assert_array_equal(once, again)  # seeded by the image
    assert np.all(once[:8] == 0.0)  # multiplicative: black stays black
    ratio = once[8:] / image[8:]
    assert 0.15 < float(ratio.std()) < 0.25 and abs(float(ratio.mean()) - 1.0) < 0.02
    assert np.allclose(ratio[..., 0], ratio[..., 2])  # the same grain in every channel

    # tl stress runs a preset's own after the core's changes (speckle is not for radiographs), on 8-bit images too
    chest = build_config(preset_settings(host.presets, "medical/chest-xray"), {}, "test")
    names = [e.name for e in stress.select(host.perturbations, None, chest.stress_perturbations)]
    assert names[:1] == ["blur"] and names[-1] == "medical/bias-field" and "medical/speckle" not in names
    ultrasound = build_config(preset_settings(host.presets, "medical/breast-ultrasound"), {}, "test")
    assert ultrasound.stress_perturbations == ["medical/speckle"]
    out = stress.perturb(np.full((10, 10, 3), 100, np.uint8), bias)
    assert out.dtype == np.uint8 and out[0, 0, 0] == 125 and out[0, -1, 0] == 75
