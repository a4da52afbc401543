from __future__ import annotations

import pathlib
from dataclasses import FrozenInstanceError, dataclass
from typing import Literal

import pytest

from tensorsim.config import (
    ConfigError,
    Params,
    config_from_toml,
    config_to_dict,
    config_to_toml,
    describe_options,
    load_config,
    param,
)


@dataclass(frozen=True)
class InputParams(Params):
    source: str = param("synthetic", "synthetic, or a path to .npy/.h5/.nc")
    shape: tuple[int, ...] = param((64, 64, 64), "grid shape of the synthetic field", ge=1)
    noise: float = param(1e-3, "relative noise level", ge=0.0)
    kind: Literal["smooth", "rough"] = param("smooth", "which field")
    max_rank: int | None = param(None, "rank cap, none for no cap", ge=1)


@dataclass(frozen=True)
class SolverParams(Params):
    h: float = param(0.01, "time step", gt=0)
    steps: int = param(10, "number of steps", ge=1, le=1000)
    adaptive: bool = param(False, "adapt the step")
    norm: str = param("fro", "truncation norm", choices=("fro", "max"))
    cap: int | None = param(32, "rank cap")
    out: pathlib.Path = param(pathlib.Path("out"), "output folder")


@dataclass(frozen=True)
class RunConfig(Params):
    input: InputParams = param(InputParams(), "input tensor")
    solver: SolverParams = param(SolverParams(h=0.05), "time integration")
    tolerances: tuple[float, ...] = param((1e-1, 1e-2), "relative tolerances", gt=0)
    name: str = param("run", "run name")


@dataclass(frozen=True)
class ExtraConfig(Params):
    sub: SolverParams | None = param(None, "optional solver table")
    pair: tuple[int, float] = param((1, 2.0), "a fixed pair")
    weights: dict[str, float] = param({"a": 1.0}, "named weights", ge=0)


def err(excinfo) -> str:
    return str(excinfo.value)


# ---------------------------------------------------------------- defaults and merging


def test_defaults_and_nested_default_instance():
    cfg = load_config(RunConfig)
    assert cfg == RunConfig()
    assert cfg.solver.h == 0.05  # the default instance's value, not the class default
    assert cfg.input.shape == (64, 64, 64)
    with pytest.raises(FrozenInstanceError):
        cfg.name = "x"


def test_partial_nested_table_keeps_default_instance_values():
    cfg = load_config(RunConfig, data={"solver": {"steps": 5}})
    assert cfg.solver.steps == 5
    assert cfg.solver.h == 0.05


def test_toml_file_then_data_then_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'name = "from_file"\ntolerances = [0.5, 0.25]\n'
        "[input]\nshape = [8, 8]\nnoise = 0\n[solver]\nh = 0.2\nsteps = 3\n"
    )
    cfg = load_config(
        RunConfig,
        path,
        overrides=["solver.h=0.005", "input.kind=rough", "input.max_rank=4"],
        data={"solver": {"steps": 7}, "name": "from_data"},
    )
    assert cfg.name == "from_data"
    assert cfg.tolerances == (0.5, 0.25)
    assert isinstance(cfg.tolerances, tuple)
    assert cfg.input.shape == (8, 8)
    assert cfg.input.noise == 0.0 and isinstance(cfg.input.noise, float)
    assert cfg.input.kind == "rough"
    assert cfg.input.max_rank == 4
    assert cfg.solver.h == 0.005
    assert cfg.solver.steps == 7


def test_override_values_parse_as_toml():
    cfg = load_config(
        RunConfig,
        overrides=[
            "input.shape=[4, 5]",
            "solver.adaptive=true",
            "input.source=data/field.npy",
            "name=2024",
            'solver.norm="max"',
        ],
    )
    assert cfg.input.shape == (4, 5)
    assert cfg.solver.adaptive is True
    assert cfg.input.source == "data/field.npy"
    assert cfg.name == "2024"  # str field: the text is kept
    assert cfg.solver.norm == "max"


def test_none_override():
    cfg = load_config(RunConfig, overrides=["solver.cap=None"])
    assert cfg.solver.cap is None
    cfg = load_config(RunConfig, overrides=["input.max_rank=7", "input.max_rank=none"])
    assert cfg.input.max_rank is None
    # "none" is a plain string for a non-optional str field
    assert load_config(RunConfig, overrides=["name=none"]).name == "none"


def test_later_override_wins():
    cfg = load_config(RunConfig, overrides=["solver.steps=2", "solver.steps=3"])
    assert cfg.solver.steps == 3


# ---------------------------------------------------------------- errors


def test_unknown_key_top_level_did_you_mean():
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, data={"tolerance": [0.1]})
    assert err(e) == "unknown config key 'tolerance'; did you mean 'tolerances'?"


def test_unknown_key_nested_did_you_mean():
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, data={"solver": {"hh": 0.1}})
    assert err(e) == "unknown config key 'solver.hh'; did you mean 'solver.h'?"


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, data={"solver": {"zzzzzz": 1}})
    msg = err(e)
    assert "unknown config key 'solver.zzzzzz'" in msg
    for key in ("h", "steps", "adaptive", "norm", "cap", "out"):
        assert key in msg


def test_unknown_key_in_toml_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[input]\nnoize = 0.1\n")
    with pytest.raises(ConfigError, match=r"'input\.noize'; did you mean 'input\.noise'\?"):
        load_config(RunConfig, path)


def test_unknown_key_in_override():
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, overrides=["solver.hh=0.1"])
    assert err(e) == "unknown config key 'solver.hh'; did you mean 'solver.h'?"
    with pytest.raises(ConfigError, match=r"'sovler'; did you mean 'solver'\?"):
        load_config(RunConfig, overrides=["sovler.h=0.1"])


def test_override_into_non_table():
    with pytest.raises(ConfigError, match=r"'name' is not a table"):
        load_config(RunConfig, overrides=["name.x=1"])


@pytest.mark.parametrize("bad", ["solver.h", "=3", "solver..h=1", ""])
def test_bad_override_syntax(bad):
    with pytest.raises(ConfigError, match="invalid override") as e:
        load_config(RunConfig, overrides=[bad])
    assert repr(bad) in err(e)


def test_wrong_type():
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, data={"input": {"shape": "abc"}})
    assert err(e) == "config key 'input.shape': expected a tuple of int, got 'abc' (str)"
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, overrides=["input.shape=[4, 4.5]"])
    assert err(e) == "config key 'input.shape[1]': expected an int, got 4.5 (float)"
    with pytest.raises(ConfigError, match=r"'solver\.h': expected a float, got 'fast' \(str\)"):
        load_config(RunConfig, overrides=["solver.h=fast"])
    with pytest.raises(ConfigError, match=r"'input': expected a table \(InputParams\)"):
        load_config(RunConfig, data={"input": 3})


def test_bool_is_not_a_number():
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, data={"solver": {"steps": True}})
    assert err(e) == "config key 'solver.steps': expected an int, got True (bool)"
    with pytest.raises(ConfigError, match=r"'solver\.h': expected a float, got False \(bool\)"):
        load_config(RunConfig, overrides=["solver.h=false"])
    with pytest.raises(ConfigError, match=r"'solver\.adaptive': expected a bool, got 1 \(int\)"):
        load_config(RunConfig, data={"solver": {"adaptive": 1}})


def test_int_accepted_for_float():
    cfg = load_config(RunConfig, overrides=["solver.h=1"])
    assert cfg.solver.h == 1.0 and type(cfg.solver.h) is float


def test_out_of_range():
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, overrides=["solver.h=-0.5"])
    assert err(e) == "config key 'solver.h': expected a float > 0, got -0.5"
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, data={"solver": {"steps": 5000}})
    assert err(e) == "config key 'solver.steps': expected an int >= 1 and <= 1000, got 5000"
    with pytest.raises(ConfigError, match=r"'input\.max_rank': expected an int >= 1, got 0"):
        load_config(RunConfig, overrides=["input.max_rank=0"])


def test_constraints_apply_to_tuple_elements():
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, overrides=["tolerances=[0.1, -1]"])
    assert err(e) == "config key 'tolerances[1]': expected a float > 0, got -1.0"
    with pytest.raises(ConfigError, match=r"'input\.shape\[0\]': expected an int >= 1, got 0"):
        load_config(RunConfig, data={"input": {"shape": [0, 3]}})


def test_bad_choice_and_literal():
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, overrides=["input.kind=smoth"])
    assert err(e) == (
        "config key 'input.kind': expected one of 'smooth', 'rough', got 'smoth' (str); "
        "did you mean 'smooth'?"
    )
    with pytest.raises(ConfigError) as e:
        load_config(RunConfig, overrides=["solver.norm=l2"])
    assert err(e) == "config key 'solver.norm': expected one of 'fro', 'max', got 'l2'"


def test_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(RunConfig, tmp_path / "missing.toml")
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(RunConfig, path)


def test_direct_construction_is_validated():
    with pytest.raises(ConfigError, match=r"'h': expected a float > 0, got -1\.0"):
        SolverParams(h=-1.0)
    with pytest.raises(ConfigError, match=r"'steps': expected an int, got True \(bool\)"):
        SolverParams(steps=True)
    with pytest.raises(ConfigError, match=r"'kind': expected one of"):
        InputParams(kind="wavy")
    with pytest.raises(ConfigError, match=r"'input': expected a table \(InputParams\)"):
        RunConfig(input=SolverParams())
    cfg = InputParams(shape=[3, 4], noise=0)
    assert cfg.shape == (3, 4) and type(cfg.noise) is float
    assert hash(cfg) == hash(InputParams(shape=(3, 4), noise=0.0))


def test_optional_table_fixed_tuple_and_dict():
    assert ExtraConfig().sub is None
    cfg = load_config(
        ExtraConfig, overrides=["sub.steps=2", "pair=[3, 4]", "weights={a = 1, b = 2}"]
    )
    assert cfg.sub == SolverParams(steps=2)
    assert cfg.pair == (3, 4.0) and type(cfg.pair[1]) is float
    assert cfg.weights == {"a": 1.0, "b": 2.0}
    assert load_config(ExtraConfig, data=config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match=r"'pair': expected a tuple \(int, float\) of length 2"):
        load_config(ExtraConfig, overrides=["pair=[1, 2, 3]"])
    with pytest.raises(ConfigError, match=r"'weights\.a': expected a float >= 0, got -1\.0"):
        load_config(ExtraConfig, data={"weights": {"a": -1}})
    assert load_config(ExtraConfig, overrides=["sub.steps=2", "sub=none"]).sub is None


def test_not_a_params_class():
    with pytest.raises(TypeError):
        load_config(dict)


# ---------------------------------------------------------------- round trip and output


def test_round_trip_dict_and_toml():
    cfg = load_config(
        RunConfig,
        overrides=["input.max_rank=3", "solver.cap=none", "tolerances=[1e-3]", "input.noise=0"],
    )
    d = config_to_dict(cfg)
    assert d["input"]["shape"] == [64, 64, 64]
    assert "max_rank" in d["input"]
    assert d["solver"]["cap"] == "none"  # None with a non-None default
    assert d["solver"]["out"] == "out"
    assert load_config(RunConfig, data=d) == cfg
    text = config_to_toml(cfg)
    assert "[solver]" in text and "[input]" in text
    assert config_from_toml(RunConfig, text) == cfg


def test_config_to_dict_writes_every_none():
    d = config_to_dict(RunConfig())
    assert d["input"]["max_rank"] == "none"
    assert config_from_toml(RunConfig, config_to_toml(RunConfig())) == RunConfig()

    # None where the enclosing table's default instance sets a value survives the round trip
    @dataclass(frozen=True)
    class Outer(Params):
        inner: InputParams = param(InputParams(max_rank=5), "inner table")

    cfg = load_config(Outer, overrides=["inner.max_rank=none"])
    assert cfg.inner.max_rank is None
    assert config_from_toml(Outer, config_to_toml(cfg)) == cfg


def test_config_from_toml_bad_text():
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_from_toml(RunConfig, "[solver\n")


# ---------------------------------------------------------------- CLI


def test_describe_options_lists_every_leaf():
    opts = describe_options(RunConfig)
    keys = [k for k, _, _ in opts]
    assert keys == [
        "input.source",
        "input.shape",
        "input.noise",
        "input.kind",
        "input.max_rank",
        "solver.h",
        "solver.steps",
        "solver.adaptive",
        "solver.norm",
        "solver.cap",
        "solver.out",
        "tolerances",
        "name",
    ]
    by_key = {k: (default, doc) for k, default, doc in opts}
    assert by_key["solver.h"] == ("0.05", "time step [> 0]")
    assert by_key["input.shape"][0] == "[64, 64, 64]"
    assert by_key["input.max_rank"][0] == "none"
    assert by_key["input.kind"][1] == 'which field [one of "smooth", "rough"]'


def test_attributes_section_is_written_from_the_field_docs():
    @dataclass(frozen=True)
    class Short(Params):
        """One line."""

        a: int = param(1, "the a")
        b: float = param(2.0, "the b", gt=0)

    @dataclass(frozen=True)
    class Written(Params):
        """Hand-written.

        Attributes
        ----------
        a
            A longer story.
        """

        a: int = param(1, "the a")

    assert (
        "Attributes\n    ----------\n    a\n        the a\n    b\n        the b" in Short.__doc__
    )
    assert Written.__doc__.count("Attributes") == 1 and "A longer story." in Written.__doc__
    assert "the a" not in Written.__doc__


def test_param_rejects_bad_arguments():
    with pytest.raises(TypeError):
        param(1, doc=3)
    with pytest.raises(TypeError):
        param(1, "x", ge="0")
    with pytest.raises(TypeError):
        param("a", "x", choices="abc")
