"""Every option of every driver's configuration reaches the code it names.

For each driver a tiny run is the base. Every leaf option is changed alone (by a rule from
its type and constraints: booleans flipped, another choice, numbers moved within their
bounds, the last entry of a list changed; or by the value given in the driver's
:class:`Spec`) and the run repeated. The option passes when

- a data variable of the output file changes (wall-clock timings excepted), or
- the run is refused with a ``ConfigError``/``ValueError`` whose message names the option
  (an option that would have no effect in that configuration is refused, never ignored), or
- it is declared output-only in the spec, and its own check shows what it does (the output
  lands at the new path, the checkpoints or progress lines follow the cadence, or only the
  timings change and the timed code logs the value).

Options that matter only together with another value (e.g. ``solver.rejection`` with the
parallel BUG) get that value as ``context``, in the base run and the changed run alike.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
import tomli_w

from tensorsim.config import ConfigError, Params
from tensorsim.testing import differing_variables, load_dataset

xr = pytest.importorskip("xarray")


@dataclass(frozen=True)
class Spec:
    """How to run one driver (or one command of it) for this test.

    Attributes
    ----------
    module
        The driver module under ``drivers``.
    argv
        The command (if any) and the overrides of the tiny base run.
    values
        Option -> the changed value as TOML text, where the rule cannot derive one.
    context
        Option -> further overrides under which it matters (base and changed run alike).
    output_only
        Option -> the check that shows what it does: ``"path"`` (the file lands there),
        ``"checkpoint"`` / ``"log"`` (the number of checkpoints / progress lines changes),
        ``"timing"`` (only wall-clock measurements change; the code that times logs it).
    path_key
        The option naming the output file.
    slow
        Mark the options of this driver ``slow`` (the default: one run per option adds up
        to minutes per driver; the cheapest drivers run in the default test run).
    setup
        Commands of the driver run once before its runs (e.g. writing the dataset that a
        ``train`` command reads); ``{tmp}`` in them and in ``argv``, ``values`` and
        ``context`` is a directory of the test session.
    """

    module: str
    argv: tuple[str, ...] = ()
    values: dict[str, str] = field(default_factory=dict)
    context: dict[str, tuple[str, ...]] = field(default_factory=dict)
    output_only: dict[str, str] = field(default_factory=dict)
    path_key: str = "output.path"
    slow: bool = True
    setup: tuple[tuple[str, ...], ...] = ()


def _set(*pairs: str) -> tuple[str, ...]:
    return tuple(arg for pair in pairs for arg in ("--set", pair))


_NS_TINY = _set("preset=tiny", "data.samples=8")
_NS_TRAIN = _set(
    "data.n_train=6",
    "data.n_test=2",
    "model.n_modes=[8, 8]",
    "model.hidden_channels=8",
    "model.n_layers=1",
    "train.batch_size=3",
    "train.epochs=2",
    "data.path={tmp}/tiny.nc",
)
#: Commands run once before the runs of a spec: the datasets and runs it reads.
_NS_DATA = (
    ("generate", *_NS_TINY, *_set("data.path={tmp}/tiny.nc")),
    ("generate", *_NS_TINY, *_set("data.seed=1", "data.path={tmp}/other.nc")),
)
_NS_RUNS = (*_NS_DATA, ("train", *_NS_TRAIN, *_set("output.path={tmp}/run.nc")),
            ("train", *_NS_TRAIN, *_set("train.seed=1", "output.path={tmp}/run2.nc")))  # fmt: skip

SPECS = {
    "compress": Spec(
        "compress",
        _set("input.shape=[8,7,6]", "cases.tolerances=[1e-1,1e-3]", "cases.cp_ranks=[2,3]",
             "cases.cp_max_iter=20"),
        values={"input.source": '"synthetic_missing.npy"', "input.variable": '"x"',
                "cases.cp_tol": "0.1"},
        output_only={"output.path": "path"},
        slow=False,
    ),
    "tubal": Spec(
        "tubal",
        _set("preset=init_scale", "experiment.sweep.widths=[6]",
             "experiment.sweep.alphas=[1e-2, 1e-3]", "experiment.sweep.trials=2",
             "experiment.solver.iterations=40",
             "experiment.solver.log_every=20", "experiment.problem.m=60"),
        values={"preset": '"dynamics"', "experiment.solver.rank_rtol": "0.9"},
        context={"experiment.solver.width": _set("experiment.sweep.widths=[]"),
                 "experiment.solver.alpha": _set("experiment.sweep.alphas=[]")},
        output_only={"output.path": "path"},
        slow=False,
    ),
    "panther": Spec(
        "panther",
        _set("experiment.cohort.n_patients=96", "experiment.sweep.seeds=1",
             "experiment.factor.ortho_iter=20"),
        values={"experiment.files.counts": '"c.csv"', "experiment.files.membership": '"m.csv"',
                "experiment.files.samples": '"s.csv"',
                "experiment.filters.min_patient_genes": "40",
                "experiment.factor.max_iter": "5", "experiment.classifier.cs": "[1e-3]"},
        output_only={"output.path": "path"},
    ),
    "connectome": Spec(
        "connectome",
        _set("experiment.problem.n_animals=3", "experiment.sweep.seeds=1",
             "experiment.analysis.ranks=[3]"),
        values={"experiment.analysis.tol": "0.1", "experiment.analysis.max_iter": "3"},
        output_only={"output.path": "path"},
    ),
    "spin_chain": Spec(
        "spin_chain",
        _set("model.sites=6", "time.t_end=0.2", "time.h=0.02", "output.checkpoint_every=3"),
        values={"solver.atol": "1e-3", "solver.rtol": "1e-2", "solver.max_rank": "3",
                "solver.min_rank": "3", "time.max_growth": "1e-20", "output.every": "2",
                "output.log_every": "2", "solver.enrich": "0", "solver.normal_rtol": "1e-9",
                "model.initial_state": '"{tmp}/missing.nc"', "output.correlations": "['zz']"},
        context={**{f"model.{k}": _set(f"model.model={m}") for m, ks in
                    (("tfim", ("g",)), ("xxz", ("j", "jz", "hz"))) for k in ks},
                 "model.j": _set("model.model=tfim"),
                 "model.j2": _set("model.model=j1j2"),
                 "solver.enrich": _set("model.model=xxz", "model.initial=neel"),
                 # the norm grows (the parallel BUG's dropped blocks, no step control)
                 "time.max_growth": _set("solver.rejection=none"),
                 "solver.min_rank": _set("solver.integrator=augmented_bug", "solver.atol=0.05")},
        output_only={"output.path": "path", "output.checkpoint_every": "checkpoint",
                     "output.log_every": "log"},
    ),
    "spin_chain_ground": Spec(
        "spin_chain",
        ("ground", *_set("model.sites=6", "model.model=xxz")),
        values={"solver.atol": "0.3", "solver.max_rank": "2", "solver.sweeps": "1",
                "solver.energy_tol": "0.5", "solver.enrich": "0", "solver.sites": "1",
                "solver.expand": "0",
                "output.correlations": "['zz']", "model.initial_state": '"{tmp}/any.nc"'},
        context={**{f"model.{k}": _set("model.model=long_range_ising") for k in
                    ("omega", "delta", "delta_rate", "nu", "alpha")},
                 "model.g": _set("model.model=tfim"),
                 "model.j2": _set("model.model=j1j2"),
                 "solver.expand": _set("solver.sites=1"),
                 # from a product state the sweeps take longer than two to settle
                 "solver.energy_tol": _set("solver.initial_rank=1")},
        output_only={"output.path": "path"},
    ),
    "radiative_transfer": Spec(
        "radiative_transfer",
        _set("problem.cells=21", "problem.degree=5", "problem.t_end=0.1",
             "output.checkpoint_every=3"),
        values={"preset": '"line_source"', "solver.atol": "1.0", "solver.rtol": "1e-1",
                "solver.max_rank": "3", "solver.min_rank": "4", "time.max_growth": "1e-20",
                "output.every": "2", "problem.boundary": '"periodic"', "time.h": "0.01",
                "time.t_end": "0.05", "solver.rejection": '"none"', "output.log_every": "2",
                "output.checkpoint_every": "1", "solver.normal_rtol": "1e-9"},
        context={"tree": _set("preset=line_source", "problem.cells=10", "problem.degree=3",
                              "problem.width=0.2"),
                 "solver.rejection": _set("solver.integrator=parallel_bug", "solver.rtol=1e-6",
                                          "problem.degree=15"),
                 "solver.min_rank": _set("solver.rtol=0.5"),
                 "time.max_growth": _set("time.h=0.05", "time.t_end=0.2")},
        output_only={"output.path": "path", "output.checkpoint_every": "checkpoint",
                     "output.log_every": "log"},
    ),
    "uq": Spec(
        "uq",
        _set("problem.transport.cells=15", "problem.transport.degree=3", "problem.nodes_xi=3",
             "problem.nodes_eta=3", "problem.transport.t_end=0.1", "output.checkpoint_every=3",
             "output.reference=true", "output.reference_nodes=2"),
        values={"preset": '"section_5_3"', "solver.atol": "1.0", "solver.rtol": "1e-1",
                "solver.max_rank": "3", "time.max_growth": "1e-20", "output.every": "2",
                "time.h": "0.01", "time.t_end": "0.05", "solver.rejection": '"none"',
                "output.log_every": "2", "output.checkpoint_every": "1",
                "problem.sigma_s_xi": "2.0", "problem.sigma_s_eta": "0.5",
                "problem.sigma_a_xi": "0.5", "problem.sigma_a_eta": "0.5",
                "solver.normal_rtol": "1e-9"},
        context={"solver.rejection": _set("solver.integrator=parallel_bug", "solver.rtol=1e-12",
                                          "problem.transport.degree=7"),
                 "problem.sigma_a_xi": _set("problem.transport.sigma_a=1.0"),
                 "problem.sigma_a_eta": _set("problem.transport.sigma_a=1.0"),
                 "time.max_growth": _set("time.h=0.05", "time.t_end=0.2")},
        output_only={"output.path": "path", "output.checkpoint_every": "checkpoint",
                     "output.log_every": "log"},
    ),
    "smmf": Spec(
        "smmf",
        _set("experiment.model=mlp", "experiment.steps=2", "experiment.warmup=1",
             "experiment.eval_every=1", "experiment.seeds=1", "experiment.data.batch_size=8",
             "experiment.optim.lr_factors=[1.0]"),
        values={"experiment.data.max_chars": "5000", "experiment.data.context": "10",
                "experiment.data.eval_windows": "5", "experiment.transformer.width": "24",
                "experiment.transformer.layers": "2", "experiment.transformer.heads": "4"},
        context={k: _set("experiment.model=transformer", "experiment.data.max_chars=4000",
                         "experiment.data.context=8", "experiment.data.eval_windows=4",
                         "experiment.transformer.width=16", "experiment.transformer.layers=1",
                         "experiment.transformer.heads=2")
                 for k in ("experiment.data.corpus", "experiment.data.max_chars",
                           "experiment.data.context", "experiment.data.eval_windows",
                           "experiment.transformer.width", "experiment.transformer.layers",
                           "experiment.transformer.heads")},
        output_only={"output.path": "path"},
    ),
    "tpa": Spec(
        "tpa",
        _set("experiment.model.d_model=32", "experiment.model.n_layers=1",
             "experiment.model.head_dim=8", "experiment.model.mha_heads=4",
             "experiment.data.seq_len=8", "experiment.data.batch_size=2",
             "experiment.data.eval_size=2", "experiment.data.max_chars=2000",
             "experiment.training.steps=2", "experiment.training.warmup=1",
             "experiment.training.eval_every=1", "experiment.decode.prompt=2",
             "experiment.decode.new_tokens=2"),
        values={"experiment.model.param_tolerance": "1e-4",
                "experiment.model.gqa_kv_heads": "4"},
        context={**{f"experiment.data.{k}": _set("experiment.task=recall",
                                                 "experiment.data.seq_len=64",
                                                 "experiment.data.max_chars=0")
                    for k in ("n_keys", "n_values", "n_pairs")},
                 "experiment.task": _set("experiment.data.seq_len=64",
                                         "experiment.data.max_chars=0")},
        output_only={"output.path": "path", "experiment.decode.prompt": "timing",
                     "experiment.decode.new_tokens": "timing",
                     "experiment.decode.batch_size": "timing"},
    ),
    "adapters_sweep": Spec(
        "adapters",
        ("sweep", *_set("experiment.model.width=8", "experiment.model.depth=1",
                        "experiment.pretrain.steps=2", "experiment.pretrain.warmup=1",
                        "experiment.adapt.steps=3", "experiment.adapt.warmup=1",
                        "experiment.sweep.eval_every=1", "experiment.sweep.ranks=[1]",
                        'experiment.sweep.variants=["lora", "loqt"]',
                        "experiment.sweep.lrs=[1e-2]", "experiment.sweep.seeds=1",
                        'experiment.sweep.targets=["hidden\\\\d+|.*q_proj"]')),
        values={"preset": '"chars_transformer"', "experiment.sweep.targets": '["input"]',
                "experiment.sweep.variants": '["lora", "full"]',
                "experiment.sweep.loqt_gap": "1", "experiment.loqt.targets": '["input"]',
                "experiment.model.heads": "2", "experiment.data.max_chars": "5000"},
        context={"experiment.adapt.lr": _set("experiment.sweep.lrs=[]"),
                 **{f"experiment.{k}": _set("experiment.task=chars") for k in
                    ("model.heads", "model.seq_len", "data.eval_windows", "data.max_chars")}},
        output_only={"output.path": "path"},
    ),
    "adapters_pretrain": Spec(
        "adapters",
        ("pretrain", *_set("experiment.model.width=8", "experiment.model.depth=1",
                           "experiment.pretrain.steps=3", "experiment.pretrain.warmup=1",
                           "experiment.loqt.rank=1", "experiment.loqt.gap=1",
                           'experiment.loqt.targets=["hidden\\\\d+|.*q_proj"]',
                           "experiment.loqt.eval_every=1")),
        values={"preset": '"chars_transformer"', "experiment.loqt.targets": '["input"]',
                "experiment.sweep.targets": '["input"]', "experiment.model.heads": "2",
                "experiment.sweep.variants": '["lora", "full"]',
                "experiment.data.max_chars": "5000", "experiment.loqt.compensation": "0"},
        context={f"experiment.{k}": _set("experiment.task=chars") for k in
                 ("model.heads", "model.seq_len", "data.eval_windows", "data.max_chars")},
        output_only={"output.path": "path"},
    ),
    "fields": Spec(
        "fields",
        _set("preset=tiny", "experiment.training.steps=4",
             "experiment.training.upsample_steps=[2]", "experiment.training.eval_every=2",
             "experiment.scene.image_size=6", "experiment.scene.truth_samples=16",
             "experiment.occupancy.steps=2", "experiment.cp.ranks=[2]"),
        values={"experiment.models": '["cp", "strivec"]',
                "experiment.strivec.extent_ratio": "1.0",
                "experiment.occupancy.steps": "7", "experiment.occupancy.threshold": "2.0"},
        context={f"experiment.occupancy.{k}": _set("experiment.training.lr_grid=0.5",
                                                   "experiment.occupancy.steps=6",
                                                   "experiment.occupancy.threshold=1.0")
                 for k in ("steps", "resolution", "threshold")},
        output_only={"output.path": "path", "output.save_models": "checkpoint"},
    ),
    "migs": Spec(
        "migs",
        ("sweep", *_set("experiment.problem.n_identities=2", "experiment.problem.n_torso=3",
                        "experiment.problem.n_limb=1", "experiment.problem.image_size=6",
                        "experiment.problem.focal=8.0", "experiment.problem.test_poses=1",
                        "experiment.problem.test_views=2", "experiment.training.steps=2",
                        "experiment.training.batch=1", "experiment.training.eval_every=1",
                        "experiment.training.unseen_steps=2", "experiment.cp_ranks=[2]",
                        "experiment.tucker_ranks=[2, 2, 2]", "experiment.panels=[0, 1]")),
        values={"experiment.panels": "[1, 0]"},
        output_only={"output.path": "path"},
    ),
    "dain_sweep": Spec(
        "dain",
        ("sweep", *_set("experiment.data.shape=[10, 9, 8]", "experiment.data.density=0.2",
                        "experiment.model.embed_dim=4", "experiment.model.hidden=[8, 4]",
                        "experiment.model.cp_rank=2", "experiment.training.epochs=2",
                        "experiment.model.factor_epochs=2", "experiment.seeds=1")),
        values={"preset": '"il2"', "experiment.data.path": '"x.tensor"',
                "experiment.models": '["dain_mlp", "cp", "tucker"]',
                "experiment.augmentations": '["dain", "uniform"]',
                "experiment.training.batch_size": "16", "experiment.training.patience": "1",
                "experiment.model.factor_patience": "1"},
        context={**{k: _set("experiment.data.shape=[60, 60, 60]", "experiment.data.density=0.04",
                            "experiment.data.subsample=0.1")
                    for k in ("preset", "experiment.data.source")},
                 **{f"experiment.model.{k}": _set(f'experiment.models=["dain_mlp", "cp", "{m}"]')
                    for m, ks in (("costco", ("costco_rank", "costco_channels", "costco_lr")),
                                  ("tucker", ("tucker_rank", "tucker_lr"))) for k in ks},
                 "experiment.training.patience": _set("experiment.training.epochs=8",
                                                      "experiment.model.mlp_lr=0.05"),
                 "experiment.model.factor_patience": _set("experiment.model.factor_epochs=12",
                                                          "experiment.model.cp_lr=0.3")},
        output_only={"output.path": "path"},
    ),
    "dain_scaling": Spec(
        "dain",
        ("scaling", *_set("experiment.scaling.sizes=[300, 600]", "experiment.scaling.epochs=1")),
        values={"preset": '"il2"', "experiment.data.path": '"x.tensor"',
                "experiment.models": '["dain_mlp", "tucker"]',
                "experiment.augmentations": '["dain", "uniform"]',
                "experiment.training.batch_size": "16"},
        context={f"experiment.model.{k}": _set(f"experiment.scaling.model={m}")
                 for m, ks in (("costco", ("costco_rank", "costco_channels", "costco_lr")),
                               ("cp", ("cp_rank", "cp_lr")),
                               ("tucker", ("tucker_rank", "tucker_lr")))
                 for k in ks},
        output_only={"output.path": "path"},
    ),
    "navier_stokes.generate": Spec(
        "navier_stokes",
        ("generate", *_set("preset=tiny", "data.samples=4", "generate.batch=3")),
        values={"preset": '"full"', "generate.device": '"cuda"'},
        context={"preset": _set("data.resolution=32", "data.resolutions=[16, 32]")},
        output_only={"data.path": "path", "generate.batch": "timing",
                     "generate.backend": "timing"},
        path_key="data.path",
    ),
    "navier_stokes.train": Spec(
        "navier_stokes",
        ("train", *_set("data.path={tmp}/tiny.nc", "data.n_train=6", "data.n_test=2",
                        "model.n_modes=[8, 8]", "model.hidden_channels=8", "model.n_layers=1",
                        "train.batch_size=3", "train.epochs=2", "train.step_size=1")),
        setup=_NS_DATA,
        values={"preset": '"tfno_tucker"', "device": '"cuda"', "data.path": '"{tmp}/other.nc"',
                "data.resolution": "32", "train.eval_batch_size": "1", "model.n_modes": "[6, 6]"},
        context={"model.rank": _set("model.factorization=tucker"),
                 "model.joint": _set("model.factorization=tucker"),
                 "model.mg_padding": _set("model.mg_levels=1")},
        output_only={"output.path": "path"},
    ),
    "navier_stokes.evaluate": Spec(
        "navier_stokes",
        ("evaluate", *_set("evaluate.run={tmp}/run.nc")),
        setup=_NS_RUNS,
        values={"preset": '"mg_tfno"', "device": '"cuda"', "data.path": '"x.nc"',
                "output.path": '"y.nc"', "evaluate.run": '"{tmp}/run2.nc"',
                "evaluate.dataset": '"{tmp}/other.nc"', "evaluate.plot_samples": "1"},
        context={"evaluate.plot_samples": _set("evaluate.plot=true")},
        output_only={"evaluate.path": "path", "evaluate.plot": "plots",
                     "evaluate.plot_samples": "plots"},
        path_key="evaluate.path",
    ),
}  # fmt: skip


def _leaves(cfg: Params, prefix: str = "") -> list[tuple[str, Any, Any, dict]]:
    """(key, value, type hint, field metadata) of every leaf option of ``cfg``."""
    hints = typing.get_type_hints(type(cfg))
    out = []
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if isinstance(value, Params):
            out += _leaves(value, key + ".")
        else:
            out.append((key, value, hints[f.name], dict(f.metadata)))
    return out


def _strip_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return inner[0] if len(inner) == 1 else tp
    return tp


def _within(x: float, meta: dict) -> bool:
    return all(
        (bound is None) or op(x, bound)
        for bound, op in (
            (meta.get("ge"), float.__ge__),
            (meta.get("gt"), float.__gt__),
            (meta.get("le"), float.__le__),
            (meta.get("lt"), float.__lt__),
        )
    )


def _changed(value: Any, tp: Any, meta: dict) -> Any:
    """Another valid value of an option (raises LookupError if the rule has none)."""
    tp = _strip_optional(tp)
    if typing.get_origin(tp) is tuple and value:
        args = typing.get_args(tp)
        elem = args[0] if len(args) == 2 and args[1] is Ellipsis else args[-1]
        return (*value[:-1], _changed(value[-1], elem, meta))
    choices = meta.get("choices")
    if typing.get_origin(tp) is Literal or choices:
        options = list(choices or typing.get_args(tp))
        others = [c for c in options if c != value]
        if others:
            return others[0]
        raise LookupError("a single choice")
    if tp is bool:
        return not value
    if tp is int:
        for new in (value + 1, value - 1, value * 2):
            if _within(float(new), meta):
                return new
    if tp is float:
        for new in (value * 2, value / 2, value + 1, value - 1) if value else (0.5, 1.0, -0.5):
            if math.isfinite(new) and _within(float(new), meta):
                return new
    raise LookupError(f"no rule for {value!r} of type {tp}")


def _toml(value: Any) -> str:
    return tomli_w.dumps({"v": list(value) if isinstance(value, tuple) else value})[4:].strip()


def _cases() -> list[Any]:
    out = []
    for name, spec in SPECS.items():
        module = importlib.import_module(f"drivers.{spec.module}")
        driver = module.main.__self__
        command = spec.argv[0] if spec.argv and spec.argv[0] in (driver.commands or {}) else None
        experiment = driver.experiment or driver.commands[command or driver.default]
        overrides = [a for a in spec.argv if a != "--set" and "=" in a]
        cfg = experiment.load(None, overrides)
        marks = [pytest.mark.slow] if spec.slow else []
        for key, value, tp, meta in _leaves(cfg):
            if key == "preset" and key not in spec.values:
                continue
            out.append(pytest.param(name, key, value, tp, meta, id=f"{name}:{key}", marks=marks))
    return out


_BASE: dict[tuple[str, tuple[str, ...]], Any] = {}


_SETUP: dict[tuple[tuple[str, ...], ...], str] = {}


def _tmp(spec: Spec, tmp_path_factory: Any) -> str:
    """The directory of the spec's setup commands, run on first use."""
    if spec.setup not in _SETUP:
        tmp = str(tmp_path_factory.mktemp("setup"))
        module = importlib.import_module(f"drivers.{spec.module}")
        for argv in spec.setup:
            module.main([a.replace("{tmp}", tmp) for a in argv])
        _SETUP[spec.setup] = tmp
    return _SETUP[spec.setup]


def _run(spec: Spec, extra: tuple[str, ...], path: Any, tmp: str = "") -> Any:
    module = importlib.import_module(f"drivers.{spec.module}")
    argv = [a.replace("{tmp}", tmp) for a in (*spec.argv, *extra)]
    module.main([*argv, "--set", f"{spec.path_key}={path}"])
    return load_dataset(path)


def _plots(spec: Spec, extra: tuple[str, ...], path: Any, tmp: str) -> dict[str, int]:
    """The PNG files a run writes next to its output: name -> size."""
    _run(spec, extra, path, tmp)
    return {p.name: p.stat().st_size for p in path.parent.glob("*.png")}


def _base(spec: Spec, context: tuple[str, ...], tmp_path_factory: Any) -> Any:
    key = (spec.module, spec.argv + context)
    if key not in _BASE:
        path = tmp_path_factory.mktemp("base") / "base.nc"
        _BASE[key] = _run(spec, context, path, _tmp(spec, tmp_path_factory))
    return _BASE[key]


def _events(spec: Spec, extra: tuple[str, ...], kind: str, monkeypatch, caplog, path, tmp) -> int:
    """How many checkpoints a run writes, or how many progress lines it logs."""
    from tensorsim.io import Writer

    calls = []
    original = Writer.checkpoint

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Writer, "checkpoint", counting)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        _run(spec, extra, path, tmp)
    monkeypatch.undo()
    if kind == "checkpoint":
        return len(calls)
    return sum(r.name == "solvers.evolution" for r in caplog.records)


@pytest.mark.parametrize(("name", "key", "value", "tp", "meta"), _cases())
def test_option_reaches_code(
    name, key, value, tp, meta, tmp_path, tmp_path_factory, caplog, monkeypatch
):
    spec = SPECS[name]
    context = spec.context.get(key, ())
    check = spec.output_only.get(key)
    tmp = _tmp(spec, tmp_path_factory)
    if check == "path":
        changed = tmp_path / "elsewhere" / "moved.nc"
        ds = _run(spec, context, changed, tmp)
        assert changed.exists()
        assert differing_variables(_base(spec, context, tmp_path_factory), ds) == []
        return
    text = (spec.values.get(key) or _toml(_changed(value, tp, meta))).replace("{tmp}", tmp)
    changed = (*context, "--set", f"{key}={text}")
    if check in ("checkpoint", "log"):
        a = _events(spec, context, check, monkeypatch, caplog, tmp_path / "a.nc", tmp)
        b = _events(spec, changed, check, monkeypatch, caplog, tmp_path / "b.nc", tmp)
        assert a != b, f"{key}: {value!r} -> {text} changed neither checkpoints nor progress lines"
        return
    if check == "plots":  # writes or changes the PNG plots next to the file only
        a = _plots(spec, context, tmp_path / "a" / "run.nc", tmp)
        b = _plots(spec, changed, tmp_path / "b" / "run.nc", tmp)
        assert a != b, f"{key}: {value!r} -> {text} changed no plot"
        return
    base = _base(spec, context, tmp_path_factory)
    if check == "timing":  # changes wall-clock measurements only, logged as key=value
        caplog.clear()
        with caplog.at_level(logging.INFO):
            ds = _run(spec, changed, tmp_path / "t.nc", tmp)
        assert differing_variables(base, ds) == []
        assert any(f"{key.split('.')[-1]}={text}" in r.getMessage() for r in caplog.records), (
            f"{key}={text} is not logged by the code that times it"
        )
        return
    try:
        ds = _run(spec, changed, tmp_path / "changed.nc", tmp)
    except FloatingPointError:
        return  # the run stopped (NaN or blow-up) where the base run did not: it reached code
    except ImportError as err:
        pytest.skip(f"{key}={text} needs a package that is not installed: {err}")
    except (ConfigError, ValueError, FileNotFoundError) as err:
        named = key.split(".")[1:] or [key]  # the option or a table it is in
        assert any(part in str(err) for part in named), (
            f"{key}={text} refused without naming it: {err}"
        )
        return
    differ = differing_variables(base, ds)
    assert differ, f"{key}: {value!r} -> {text} changed no data variable of the output"
