"""State dicts as arrays + JSON layout: exact round trips, also through a checkpoint file."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn.state import state_from_arrays, state_to_arrays  # noqa: E402


def _optimizer_state():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return model, opt


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b and type(a) is type(b)


def test_round_trip_in_memory():
    model, opt = _optimizer_state()
    for state in (model.state_dict(), opt.state_dict()):
        arrays, layout = state_to_arrays(state)
        back = state_from_arrays(arrays, layout)
        _assert_same(state, back)
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(state_from_arrays(*state_to_arrays(opt.state_dict())))
    assert fresh.param_groups[0]["betas"] == [0.8, 0.95]


def test_round_trip_through_a_checkpoint_file(tmp_path):
    pytest.importorskip("h5netcdf")
    from tensorsim.io import Writer, read_checkpoint

    model, opt = _optimizer_state()
    arrays, layout = state_to_arrays(opt.state_dict())
    with Writer(tmp_path / "run.nc", record_dim="epoch") as out:
        out.checkpoint({"optimizer": arrays, "empty": {}}, attrs={"layout": layout})
    ckpt = read_checkpoint(tmp_path / "run.nc")
    own = {k.split("/", 1)[1]: v for k, v in ckpt.arrays.items() if k.startswith("optimizer/")}
    _assert_same(opt.state_dict(), state_from_arrays(own, ckpt.attrs["layout"]))


def test_bad_state_and_layout():
    with pytest.raises(TypeError, match="key"):
        state_to_arrays({(1, 2): 3})
    with pytest.raises(TypeError, match="cannot store"):
        state_to_arrays({"a": object()})
    with pytest.raises(ValueError, match="layout"):
        state_from_arrays({}, "not json")
    with pytest.raises(ValueError, match="missing"):
        state_from_arrays({}, '{"tensor": "t0"}')
