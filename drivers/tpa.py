r"""Tensor Product Attention against MHA, GQA and MQA at matched parameters (arXiv 2501.06425).

One decoder language model (:class:`tensorsim.nn.models.decoder.Decoder`: pre-norm, RoPE,
SwiGLU, tied embedding) is trained once per attention kind of ``experiment.kinds``, one kind
per MPI rank (:class:`tensorsim.parallel.Executor`)::

    mpirun -n 2 python -m drivers.tpa                       # character LM (default)
    mpirun -n 2 python -m drivers.tpa --set preset=recall   # associative recall
    python -m drivers.tpa --set experiment.training.steps=200 --set output.path=runs/t.nc
    python -m drivers.tpa plot runs/tpa_chars.nc

- ``chars``: next-character prediction on Python's help topics
  (:func:`problems.language.load_corpus` ``"python_docs"``), d = 128, 2 layers, ``d_h`` = 16,
  windows of 64 characters, 1000 AdamW steps; validation on evenly spaced windows of the
  held-out tail.
- ``recall``: :func:`problems.language.recall_batch` (8 key-value pairs over 16 keys and
  16 values, then a query key), loss and accuracy on the answer only.

The data are :func:`problems.language.lm_data`; each kind is
:func:`solvers.attention_runs.run_kind`. Matched parameters: MHA has ``model.mha_heads``
heads of width ``model.head_dim``; every other kind gets the head count
:func:`tensorsim.nn.kv_cache.solve_heads` returns for MHA's attention weights ``4 d h d_h``
(GQA with ``model.gqa_kv_heads`` key/value heads, TPA with ranks ``(R_Q, R_K, R_V)``). A
kind whose attention weights then differ from MHA's by more than ``model.param_tolerance``
(relative) is a configuration error. The MLP width is the same for all kinds, so whole
models differ by the same number of weights as their attention layers. TPA factor weights
start from the reference code's bounds (``model.tpa_init = "t6_code"``, the module
default); ``"xavier"`` takes the paper's, which train markedly worse at the default
learning rate. Options that a run would not use (the recall vocabulary for ``chars``, the
corpus for ``recall``, GQA's or TPA's settings without that kind) are refused.

After training, each model decodes ``decode.new_tokens`` tokens greedily after a prompt of
``decode.prompt`` validation tokens, once with the default cache (TPA: the factor cache
``A_K, B_K, A_V, B_V``) and once with keys and values materialized, timing the one-token
steps (tokens/s) and measuring the bytes per token per layer the cache tensors hold, next to
the formula (:func:`tensorsim.nn.kv_cache.kv_cache_bytes_per_token`).

Rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``):
record dimension ``attention`` (one record per kind, its name in ``kind``), the validation
loss curve over ``eval_step``, the final loss, head and parameter counts, cache bytes and
decode speed (:mod:`analysis.tpa` reads it).

References
----------
Y. Zhang et al., "Tensor Product Attention Is All You Need", arXiv 2501.06425.
J. Ainslie et al., arXiv 2305.13245 (GQA); N. Shazeer, arXiv 1911.02150 (MQA).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from analysis.tpa import plots, table, table_lines
from drivers._base import Layout, OutputParams, Sweep, SweepRun, Var
from drivers._cli import Driver
from problems.language import LMDataParams, lm_data
from solvers.attention_runs import (
    CURVES,
    KINDS,
    SCALARS,
    DecodeParams,
    ModelParams,
    TrainingParams,
    head_counts,
)
from solvers.attention_runs import run_kind as train_and_measure
from tensorsim.config import ConfigError, Params, param

__all__ = ["KINDS", "PRESETS", "Experiment", "TPARun", "TPASweep", "main", "run_kind"]

logger = logging.getLogger("drivers.tpa")

#: Options used only by some tasks or kinds: (table, fields, whether they are used, by what).
_USED_BY = (
    ("data", ("n_keys", "n_values", "n_pairs"), lambda e: e.task == "recall", "task = 'recall'"),
    ("data", ("corpus", "seq_len", "max_chars"), lambda e: e.task == "chars", "task = 'chars'"),
    ("model", ("gqa_kv_heads",), lambda e: "gqa" in e.kinds, "the kind 'gqa'"),
    ("model", ("k_rank", "v_rank", "tpa_init"), lambda e: bool(_tpa(e)), "a TPA kind"),
    ("model", ("q_rank",), lambda e: "tpa" in e.kinds, "the kind 'tpa'"),
)


def _tpa(e: Experiment) -> list[str]:
    return [k for k in e.kinds if k.startswith("tpa")]


@dataclass(frozen=True)
class Experiment(Params):
    """Task, model, data, training and decoding.

    Attributes
    ----------
    task
        ``"chars"`` (character LM) or ``"recall"`` (associative recall).
    kinds
        Attention kinds to compare (``"mha"`` first if present: the reference).
    """

    task: Literal["chars", "recall"] = param("chars", "character LM or associative recall")
    kinds: tuple[str, ...] = param(KINDS, "attention kinds", choices=KINDS)
    model: ModelParams = param(ModelParams(), "the decoder")
    data: LMDataParams = param(LMDataParams(), "batches and validation set")
    training: TrainingParams = param(TrainingParams(), "the optimizer")
    decode: DecodeParams = param(DecodeParams(), "decode speed")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.kinds or len(set(self.kinds)) != len(self.kinds):
            raise ConfigError(
                f"config key 'kinds': expected distinct attention kinds, got {list(self.kinds)}"
            )
        if self.training.warmup > self.training.steps:
            raise ConfigError(
                f"config key 'training.warmup': expected at most training.steps="
                f"{self.training.steps}, got {self.training.warmup}"
            )
        if self.model.head_dim % 2:
            raise ConfigError(
                f"config key 'model.head_dim': RoPE needs an even width, got {self.model.head_dim}"
            )
        if self.task == "recall" and self.data.n_pairs > self.data.n_keys:
            raise ConfigError(
                f"config key 'data.n_pairs': at most data.n_keys={self.data.n_keys} "
                f"(distinct keys per sequence), got {self.data.n_pairs}"
            )
        if self.decode.prompt + self.decode.new_tokens > self.max_seq_len:
            raise ConfigError(
                f"config key 'decode.new_tokens': prompt {self.decode.prompt} + "
                f"{self.decode.new_tokens} tokens exceed the sequence length {self.max_seq_len}"
            )
        for table_name, fields, used, what in _USED_BY:
            given, default = getattr(self, table_name), type(getattr(self, table_name))()
            for name in fields:
                if not used(self) and getattr(given, name) != getattr(default, name):
                    raise ConfigError(
                        f"config key '{table_name}.{name}': used only with {what} "
                        f"(task {self.task!r}, kinds {list(self.kinds)})"
                    )

    @property
    def max_seq_len(self) -> int:
        """Sequence length of the task (``chars``: ``data.seq_len``; ``recall``: pairs)."""
        return self.data.seq_len if self.task == "chars" else 2 * self.data.n_pairs + 2


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {
    "chars": Experiment,
    "recall": lambda: Experiment(
        task="recall",
        data=LMDataParams(batch_size=64, eval_size=512),
        training=TrainingParams(steps=1000, lr=3e-3, warmup=50, eval_every=100),
        decode=DecodeParams(prompt=2, new_tokens=16),
    ),
}


@dataclass(frozen=True)
class TPAOutput(OutputParams):
    """The output file."""

    path: str = param("", "output file (empty: runs/tpa_{preset}.nc)")


@dataclass(frozen=True)
class TPARun(Params):
    """Configuration of ``python -m drivers.tpa``."""

    preset: Literal["chars", "recall"] = param("chars", "defaults of the experiment table")
    experiment: Experiment = param(Experiment(), "task, model, data, training, decoding")
    output: TPAOutput = param(TPAOutput(), "output file")

    def __post_init__(self) -> None:
        super().__post_init__()
        head_counts(self.experiment.model, self.experiment.kinds)  # raises if unmatched


def run_kind(e: Experiment, kind: str, data: Any = None) -> dict[str, Any]:
    """Train and measure the model of one kind (:func:`solvers.attention_runs.run_kind`).

    ``data`` is what :func:`problems.language.lm_data` returns for ``e`` (None: build it).
    """
    vocab, batches, validation = data if data is not None else lm_data(e.task, e.data)
    return train_and_measure(
        kind, e.model, e.training, e.decode, vocab_size=vocab, batches=batches,
        validation=validation, max_seq_len=e.max_seq_len, seed=e.data.seed,
    )  # fmt: skip


class TPASweep(Sweep):
    """One decoder per attention kind; one record per kind."""

    config = TPARun
    presets = PRESETS
    length_key = "experiment.training.steps"

    def prepare(self, cfg: TPARun, executor: Any) -> Any:
        """The vocabulary, batches and validation set (:func:`problems.language.lm_data`)."""
        return lm_data(cfg.experiment.task, cfg.experiment.data)

    def cases(self, run: SweepRun) -> list[str]:
        """The attention kinds."""
        return list(run.cfg.experiment.kinds)

    def cost(self, run: SweepRun, kind: str) -> float:
        """TPA's factor projections cost a little more."""
        return 1.2 if kind.startswith("tpa") else 1.0

    def run_case(self, run: SweepRun, kind: str) -> dict[str, Any]:
        """Train and measure one kind (:func:`run_kind`)."""
        t0 = time.perf_counter()
        r = run_kind(run.cfg.experiment, kind, run.data)
        logger.info(
            "%s: %d heads, %d weights, validation loss %.4f, cache %.0f B/token/layer, "
            "decode %.0f tokens/s (materialized %.0f), %.1f s",
            *(kind, r["n_heads"], r["total_params"], r["val_loss"][-1], r["cache_bytes"]),
            *(r["decode_tokens_per_s"], r["decode_tokens_per_s_materialized"]),
            time.perf_counter() - t0,
        )
        return r

    def output_path(self, cfg: TPARun) -> Path:
        """``output.path``, or ``runs/tpa_{preset}.nc`` when it is empty."""
        return Path(cfg.output.path or f"runs/tpa_{cfg.preset}.nc")

    def layout(self, run: SweepRun) -> Layout:
        """Record dimension ``attention``; the scalars of a kind and its curves."""
        e = run.cfg.experiment
        series = [
            Var("kind", (), str, long_name="attention kind"),
            *(Var(n, (), d, u, long) for n, (d, u, long) in SCALARS.items()),
            *(Var(n, ("eval_step",), long_name=long) for n, long in CURVES.items()),
        ]
        steps = (run.results[0]["steps"], "optimizer steps done")
        attrs = {"preset": run.cfg.preset, "task": e.task, "reference_kind": e.kinds[0]}
        return Layout("attention", series, coords={"eval_step": steps}, attrs=attrs)

    def records(self, run: SweepRun) -> list[dict[str, Any]]:
        """The kind, its final validation loss and its results."""
        return [
            {"kind": kind, "final_val_loss": r["val_loss"][-1], **r}
            for kind, r in zip(run.cases, run.results, strict=True)
        ]

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """The reference kind and the table of :func:`analysis.tpa.table` of the records."""
        records = self.records(run)
        columns = {name: np.asarray([r[name] for r in records]) for name in records[0]}
        return {"reference": run.cases[0], "table": table(columns)}

    def describe(self, cfg: TPARun, n_ranks: int) -> str:
        """Task, model, heads per kind, steps."""
        e, m = cfg.experiment, cfg.experiment.model
        heads = ", ".join(f"{k} {v['n_heads']}" for k, v in head_counts(m, e.kinds).items())
        return (
            f"{cfg.preset}: {e.task} task, d={m.d_model}, {m.n_layers} layers, d_h={m.head_dim}, "
            f"heads {heads}; {e.training.steps} steps of {e.data.batch_size} x {e.max_seq_len} "
            f"tokens, {len(e.kinds)} kinds on {n_ranks} rank(s)"
        )

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """Times and file, then one line per kind."""
        rows = table_lines(summary.get("table", {}), summary["reference"])
        return "\n".join([super().summarize(summary), *rows])

    plots = staticmethod(plots)


DRIVER = Driver("tpa", __doc__, TPASweep())
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
