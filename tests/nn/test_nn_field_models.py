"""The radiance-field models of tensorsim.nn.models.fields: specs, builder, resolutions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

torch = pytest.importorskip("torch")

from tensorsim.config import ConfigError, Params, load_config, param  # noqa: E402
from tensorsim.nn.fields import Box, CPField, LocalCPField, VMField  # noqa: E402
from tensorsim.nn.models.fields import (  # noqa: E402
    ModelSpec,
    StrivecParams,
    TensoRFParams,
    build_model,
    model_specs,
    resolution_schedule,
)


@dataclass(frozen=True)
class _Run(Params):
    """A configuration holding a Strivec table."""

    strivec: StrivecParams = param(StrivecParams(), "Strivec")


def test_resolution_schedule_is_log_spaced_to_the_final_resolution():
    spec = ModelSpec("strivec", 2, 2, (64, 16), (16, 4), spacings=(0.5, 0.25))
    assert resolution_schedule(spec, 2) == [(32, 8), (64, 16)]
    assert resolution_schedule(spec, 1) == [(64, 16)]


def test_model_specs_list_the_families_in_order_with_the_shared_shading():
    shading = {"app_dim": 5, "shader_hidden": 7, "n_samples": 9}
    tables = {"vm": TensoRFParams(ranks=(1, 3)), "strivec": StrivecParams(ranks=(2,))}
    specs = model_specs(["strivec", "vm"], tables, **shading)
    assert [(s.kind, s.rank) for s in specs] == [("strivec", 2), ("vm", 1), ("vm", 3)]
    assert specs[0].spacings == (0.5, 0.25) and specs[0].resolution == (12, 8)
    assert specs[1].resolution == (64,) and specs[1].initial_resolution == (32,)
    assert all((s.app_dim, s.shader_hidden, s.n_samples) == (5, 7, 9) for s in specs)
    with pytest.raises(ValueError, match="kind"):
        TensoRFParams().specs("strivec")


def test_strivec_needs_one_value_per_scale():
    with pytest.raises(ConfigError, match="one value per scale"):
        StrivecParams(resolutions=(4,))
    with pytest.raises(ConfigError, match="in 'strivec'.*one value per scale"):
        load_config(_Run, overrides=["strivec.resolutions=[4, 3, 2]"])


def test_build_model_is_seeded_and_of_the_kind_and_resolution_asked():
    box = Box.cube(1.0)
    occ = torch.ones(4, 4, 4, dtype=torch.bool)
    shading = {"app_dim": 3, "shader_hidden": 5, "n_samples": 6}
    specs = {
        "cp": ModelSpec("cp", 2, 2, (8,), (4,), **shading),
        "vm": ModelSpec("vm", 1, 2, (8,), (4,), **shading),
        "strivec": ModelSpec("strivec", 1, 2, (4,), (3,), spacings=(0.5,), **shading),
    }
    for kind, cls in (("cp", CPField), ("vm", VMField), ("strivec", LocalCPField)):
        a = build_model(specs[kind], box, seed=3, occupancy=occ)
        b = build_model(specs[kind], box, seed=3, occupancy=occ)
        assert isinstance(a.field, cls) and a.n_samples == 6
        assert a.shader.mlp[0].out_features == 5
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), name
    a = build_model(specs["cp"], box, seed=3)
    other = build_model(specs["cp"], box, seed=4)
    assert not torch.equal(a.field.density_lines[0], other.field.density_lines[0])
    assert a.field.density_lines[0].shape[0] == 4
    final = build_model(specs["cp"], box, seed=3, resolution=specs["cp"].resolution)
    assert final.field.density_lines[0].shape[0] == 8
    with pytest.raises(ValueError, match="occupancy"):
        build_model(specs["strivec"], box, seed=0)
