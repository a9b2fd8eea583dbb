"""agriculture/shadow and agriculture/motion-blur: field acquisition changes for tl stress."""

from __future__ import annotations

import numpy as np

import tlcore_agriculture
from tlcore.plugins import PluginHost


def test_register_perturbations_agriculture_changes_do_what_they_say() -> None:
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(tlcore_agriculture, name="agriculture")
    shadow = host.perturbations.entry("agriculture/shadow")
    assert shadow.plugin == "agriculture"
    lit = np.full((20, 100, 3), 0.8, np.float32)
    shaded = shadow.item.apply(lit)
    assert np.allclose(shaded[:, :30], 0.8 * 0.55, atol=0.01)  # in shade
    assert np.allclose(shaded[:, 50:], 0.8, atol=0.01)  # in the light

    blur = host.perturbations.get("agriculture/motion-blur").apply
    stripes = np.zeros((30, 30, 1), np.float32)
    stripes[:, ::2] = 1.0  # vertical stripes: horizontal motion smears them out
    stripes_t = stripes.transpose(1, 0, 2).copy()  # horizontal stripes: horizontal motion leaves them
    assert blur(stripes).std() < 0.2 * stripes.std()  # a 7 px box leaves 1/7 of a 2 px period
    np.testing.assert_allclose(blur(stripes_t), stripes_t, atol=1e-6)
    assert blur(stripes).shape == stripes.shape
