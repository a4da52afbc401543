r"""Tensor Product Attention against MHA, GQA and MQA at matched parameters (arXiv 2501.06425).

One decoder language model (:class:`tensorsim.nn.transformer.Decoder`: pre-norm, RoPE,
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

Matched parameters: MHA has ``model.mha_heads`` heads of width ``model.head_dim``; every
other kind gets the head count :func:`tensorsim.nn.attention.solve_heads` returns for MHA's
attention weights ``4 d h d_h`` (GQA with ``model.gqa_kv_heads`` key/value heads, TPA with
ranks ``(R_Q, R_K, R_V)``). A kind whose attention weights then differ from MHA's by more
than ``model.param_tolerance`` (relative) is a configuration error. The MLP width is the
same for all kinds, so whole models differ by the same number of weights as their
attention layers. TPA factor weights start from the reference code's bounds
(``model.tpa_init = "t6_code"``, the module default); ``"xavier"`` takes the paper's, which
train markedly worse at the default learning rate.

After training, each model decodes ``decode.new_tokens`` tokens greedily after a prompt of
``decode.prompt`` validation tokens, once with the default cache (TPA: the factor cache
``A_K, B_K, A_V, B_V``) and once with keys and values materialized, timing the one-token
steps (tokens/s) and measuring the bytes per token per layer the cache tensors hold, next to
the formula (:func:`tensorsim.nn.attention.kv_cache_bytes_per_token`).

Rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``):
record dimension ``attention`` (one record per kind, its name in ``kind``), the validation
loss curve over ``eval_step``, the final loss, head and parameter counts, cache bytes and
decode speed.

References
----------
Y. Zhang et al., "Tensor Product Attention Is All You Need", arXiv 2501.06425.
J. Ainslie et al., arXiv 2305.13245 (GQA); N. Shazeer, arXiv 1911.02150 (MQA).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drivers._cli import refuse_restart, run_command_line
from tensorsim.config import ConfigError, Params, config_to_toml, load_with_preset, param
from tensorsim.parallel import Executor

__all__ = [
    "KINDS",
    "PRESETS",
    "Experiment",
    "TPARun",
    "head_counts",
    "main",
    "plot",
    "run",
    "run_kind",
]

logger = logging.getLogger("drivers.tpa")

#: The attention kinds, as :data:`tensorsim.nn.attention.ATTENTION_KINDS`.
KINDS = ("mha", "gqa", "mqa", "tpa", "tpa_kvonly")


@dataclass(frozen=True)
class ModelParams(Params):
    """The decoder and the matched head counts.

    Attributes
    ----------
    d_model
        Residual width ``d``.
    n_layers
        Decoder blocks.
    head_dim
        ``d_h`` of every kind (even: RoPE).
    mha_heads
        MHA's heads; its attention weights ``4 d h d_h`` are the target of the others.
    gqa_kv_heads
        Key/value heads of GQA.
    q_rank, k_rank, v_rank
        TPA ranks ``R_Q``, ``R_K``, ``R_V`` (``q_rank`` unused by TPA-KVonly).
    param_tolerance
        Largest allowed relative difference of a kind's attention weights from MHA's.
    tpa_init
        TPA factor weights (``init`` of
        :class:`~tensorsim.nn.attention.TensorProductAttention`): ``"t6_code"`` (the
        bounds of the reference code's 3-D views) or ``"xavier"`` (the paper's
        Xavier-uniform over each 2-D map). At the default learning rate the paper's larger
        initialization trains TPA markedly worse (docs/tpa.md).
    """

    d_model: int = param(128, "residual width d", ge=2)
    n_layers: int = param(2, "decoder blocks", ge=1)
    head_dim: int = param(16, "head width d_h (even)", ge=2)
    mha_heads: int = param(8, "MHA heads (the parameter target)", ge=1)
    gqa_kv_heads: int = param(2, "GQA key/value heads", ge=1)
    q_rank: int = param(6, "TPA query rank R_Q", ge=1)
    k_rank: int = param(2, "TPA key rank R_K", ge=1)
    v_rank: int = param(2, "TPA value rank R_V", ge=1)
    param_tolerance: float = param(0.05, "max relative attention-weight mismatch", gt=0.0)
    tpa_init: Literal["t6_code", "xavier"] = param("t6_code", "TPA factor initialization")


@dataclass(frozen=True)
class DataParams(Params):
    """Batches and the validation set.

    Attributes
    ----------
    corpus
        ``chars``: :data:`problems.language.CORPORA` entry.
    seq_len
        ``chars``: characters per window (``recall``: set by the pairs).
    batch_size
        Sequences per step.
    eval_size
        Validation windows (``chars``) or sequences (``recall``).
    max_chars
        ``chars``: keep only the first this many characters of the corpus (0: all).
    n_keys, n_values, n_pairs
        ``recall``: key and value vocabularies, pairs per sequence.
    seed
        Seed of the weights, the batches and the recall validation set.
    """

    corpus: Literal["python_docs", "python_source"] = param("python_docs", "chars: corpus")
    seq_len: int = param(64, "chars: characters per window", ge=2)
    batch_size: int = param(16, "sequences per step", ge=1)
    eval_size: int = param(64, "validation windows or sequences", ge=1)
    max_chars: int = param(0, "chars: corpus prefix (0: all)", ge=0)
    n_keys: int = param(16, "recall: key tokens", ge=1)
    n_values: int = param(16, "recall: value tokens", ge=1)
    n_pairs: int = param(8, "recall: key-value pairs per sequence", ge=1)
    seed: int = param(0, "seed of weights, batches and validation set", ge=0)


@dataclass(frozen=True)
class TrainingParams(Params):
    """AdamW with linear warm-up and cosine decay (:func:`solvers.steps.fit`).

    Attributes
    ----------
    steps
        Optimizer steps.
    lr
        Peak learning rate (the same for every kind).
    warmup
        Warm-up steps.
    weight_decay
        Decoupled weight decay.
    eval_every
        Steps between validation losses.
    """

    steps: int = param(1000, "optimizer steps", ge=0)
    lr: float = param(3e-3, "peak learning rate", gt=0.0)
    warmup: int = param(50, "warm-up steps", ge=0)
    weight_decay: float = param(0.0, "AdamW weight decay", ge=0.0)
    eval_every: int = param(100, "steps between evaluations", ge=1)


@dataclass(frozen=True)
class DecodeParams(Params):
    """The decode-speed measurement after training.

    Attributes
    ----------
    prompt
        Prompt tokens (from the validation set), prefilled before timing.
    new_tokens
        Tokens decoded one at a time (timed); prompt plus new tokens fit ``max_seq_len``.
    batch_size
        Sequences decoded together.
    """

    prompt: int = param(16, "prompt tokens", ge=1)
    new_tokens: int = param(48, "timed one-token decode steps", ge=1)
    batch_size: int = param(1, "sequences decoded together", ge=1)


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
    data: DataParams = param(DataParams(), "batches and validation set")
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

    @property
    def max_seq_len(self) -> int:
        """Sequence length of the task (``chars``: ``data.seq_len``; ``recall``: pairs)."""
        return self.data.seq_len if self.task == "chars" else 2 * self.data.n_pairs + 2


def _chars() -> Experiment:
    return Experiment()


def _recall() -> Experiment:
    return Experiment(
        task="recall",
        data=DataParams(batch_size=64, eval_size=512),
        training=TrainingParams(steps=1000, lr=3e-3, warmup=50, eval_every=100),
        decode=DecodeParams(prompt=2, new_tokens=16),
    )


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"chars": _chars, "recall": _recall}


@dataclass(frozen=True)
class TPAOutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output file; empty: ``runs/tpa_{preset}.nc``.
    """

    path: str = param("", "output file (empty: runs/tpa_{preset}.nc)")


@dataclass(frozen=True)
class TPARun(Params):
    """Configuration of ``python -m drivers.tpa``.

    Attributes
    ----------
    preset
        ``"chars"`` or ``"recall"``: defaults of ``experiment``.
    experiment
        Task, model, data, training and decoding.
    output
        The output file.
    """

    preset: Literal["chars", "recall"] = param("chars", "defaults of the experiment table")
    experiment: Experiment = param(Experiment(), "task, model, data, training, decoding")
    output: TPAOutputParams = param(TPAOutputParams(), "output file")

    def __post_init__(self) -> None:
        super().__post_init__()
        head_counts(self.experiment.model, self.experiment.kinds)  # raises if unmatched

    def path(self) -> Path:
        """The output file."""
        return Path(self.output.path or f"runs/tpa_{self.preset}.nc")


def _attention_options(m: ModelParams, kind: str) -> dict[str, int]:
    """Options of the attention formulas for ``kind`` (ranks, key/value heads)."""
    if kind == "gqa":
        return {"n_kv_heads": m.gqa_kv_heads}
    if kind.startswith("tpa"):
        return {"q_rank": m.q_rank, "k_rank": m.k_rank, "v_rank": m.v_rank}
    return {}


def head_counts(m: ModelParams, kinds: Sequence[str] = KINDS) -> dict[str, dict[str, int]]:
    """Per kind of ``kinds``: heads, key/value heads and attention weights per layer.

    Every kind is matched to MHA's attention weights with ``m.mha_heads`` heads.

    Raises
    ------
    ConfigError
        If a kind's attention weights differ from MHA's by more than
        ``m.param_tolerance`` (relative), or GQA's key/value heads do not fit.
    """
    from tensorsim.nn.kv_cache import attention_parameters, solve_heads

    common = {"d_model": m.d_model, "head_dim": m.head_dim}
    target = attention_parameters("mha", n_heads=m.mha_heads, **common)
    out = {}
    for kind in kinds:
        opts = _attention_options(m, kind)
        try:
            h = (
                m.mha_heads
                if kind == "mha"
                else solve_heads(kind, target=target, **common, **opts)
            )
            weights = attention_parameters(kind, n_heads=h, **common, **opts)
        except ValueError as exc:
            raise ConfigError(f"config key 'model': {kind}: {exc}") from None
        mismatch = abs(weights - target) / target
        if mismatch > m.param_tolerance:
            raise ConfigError(
                f"config key 'model.param_tolerance': {kind} with {h} heads has {weights} "
                f"attention weights per layer, {100 * mismatch:.1f} % from MHA's {target} "
                f"(allowed {100 * m.param_tolerance:.1f} %)"
            )
        kv = {"mha": h, "mqa": 1, "gqa": m.gqa_kv_heads}.get(kind, 0)
        out[kind] = {"n_heads": h, "n_kv_heads": kv, "attention_params": weights}
    return out


def _build(e: Experiment, kind: str, vocab_size: int) -> Any:
    """The decoder of ``kind``, initialized from ``data.seed``."""
    import torch

    from tensorsim.nn.transformer import Decoder

    m = e.model
    info = head_counts(m, (kind,))[kind]
    opts: dict[str, Any] = {k: v for k, v in _attention_options(m, kind).items()}
    if kind == "tpa_kvonly":
        opts.pop("q_rank")
    if kind.startswith("tpa"):
        opts["init"] = m.tpa_init
    with torch.random.fork_rng():
        torch.manual_seed(e.data.seed)
        model = Decoder(
            vocab_size,
            d_model=m.d_model,
            n_layers=m.n_layers,
            n_heads=info["n_heads"],
            attention=kind,
            max_seq_len=e.max_seq_len,
            head_dim=m.head_dim,
            **opts,
        )
    return model


def _data(e: Experiment) -> tuple[int, Callable[[int], Any], Any]:
    """Vocabulary size, ``batches(step)`` and the validation ``(inputs, targets)``."""
    import torch

    from drivers._tasks import spaced_windows
    from problems.language import RecallTask, load_corpus, recall_batch, sample_batch

    d = e.data
    if e.task == "recall":
        task = RecallTask(d.n_keys, d.n_values, d.n_pairs)

        def recall(step: int) -> Any:
            x, y = recall_batch(task, d.batch_size, np.random.default_rng([d.seed, step]))
            return torch.from_numpy(x), torch.from_numpy(y)

        x, y = recall_batch(task, d.eval_size, np.random.default_rng([d.seed, 1 << 30]))
        return task.vocab_size, recall, (torch.from_numpy(x), torch.from_numpy(y))
    corpus = load_corpus(d.corpus, max_chars=d.max_chars or None)
    n = d.seq_len
    if corpus.val.size < n + 1 or corpus.train.size < n + 1:
        raise ConfigError(
            f"config key 'data.max_chars': the corpus split is shorter than data.seq_len={n}"
        )

    def chars(step: int) -> Any:
        x, y = sample_batch(corpus.train, d.batch_size, n, np.random.default_rng([d.seed, step]))
        return torch.from_numpy(x), torch.from_numpy(y)

    return corpus.vocab_size, chars, spaced_windows(corpus.val, n, d.eval_size)


def _decode(model: Any, prompt: Any, new_tokens: int, *, materialize: bool) -> dict[str, float]:
    """Prefill ``prompt``, then time ``new_tokens`` greedy one-token steps."""
    import torch

    with torch.no_grad():
        cache = model.new_cache(prompt.shape[0], materialize=materialize)
        nxt = model(prompt, cache)[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(new_tokens):
            nxt = model(nxt, cache)[:, -1:].argmax(-1)
        seconds = time.perf_counter() - start
    return {
        "tokens_per_s": prompt.shape[0] * new_tokens / seconds,
        "bytes_measured": cache.bytes_per_token_per_layer(),
        "bytes_formula": model.cache_bytes_per_token_per_layer(materialize=materialize),
    }


def run_kind(e: Experiment, kind: str) -> dict[str, Any]:
    """Train and measure the model of one attention kind; return its results.

    Returns
    -------
    dict
        ``steps``, ``val_loss`` (and ``val_accuracy`` for recall) curves, ``train_loss``,
        head and parameter counts, cache bytes (measured and formula, factor and
        materialized) and decode tokens/s, training seconds.
    """
    import torch.nn.functional as F

    from solvers.steps import fit
    from tensorsim.nn.transformer import count_parameters

    vocab, batches, (x_val, y_val) = _data(e)
    model = _build(e, kind, vocab)

    def loss(model: Any, batch: Any) -> Any:
        x, y = batch
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def evaluate(model: Any) -> dict[str, float]:
        logits = model(x_val)
        out = {"val_loss": float(F.cross_entropy(logits.flatten(0, 1), y_val.flatten()))}
        keep = y_val >= 0
        out["val_accuracy"] = float((logits.argmax(-1)[keep] == y_val[keep]).double().mean())
        return out

    t = e.training
    result = fit(
        model,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        steps=t.steps,
        lr=t.lr,
        warmup=t.warmup,
        weight_decay=t.weight_decay,
        eval_every=t.eval_every,
    )
    model.eval()
    dec = e.decode
    prompt = x_val[: dec.batch_size, : dec.prompt]
    if prompt.shape[0] < dec.batch_size:
        prompt = prompt.repeat(math.ceil(dec.batch_size / prompt.shape[0]), 1)[: dec.batch_size]
    _decode(model, prompt, 2, materialize=False)  # warm-up
    factor = _decode(model, prompt, dec.new_tokens, materialize=False)
    full = _decode(model, prompt, dec.new_tokens, materialize=True)
    info = head_counts(e.model, (kind,))[kind]
    return {
        "steps": np.asarray(result.steps, dtype=np.int64),
        "val_loss": np.asarray(result.evals["val_loss"]),
        "val_accuracy": np.asarray(result.evals["val_accuracy"]),
        "train_loss": np.asarray(result.train_loss),
        **info,
        "total_params": count_parameters(model),
        "cache_bytes": factor["bytes_measured"],
        "cache_bytes_formula": factor["bytes_formula"],
        "cache_bytes_materialized": full["bytes_measured"],
        "cache_bytes_materialized_formula": full["bytes_formula"],
        "decode_tokens_per_s": factor["tokens_per_s"],
        "decode_tokens_per_s_materialized": full["tokens_per_s"],
        "train_seconds": result.seconds,
    }


#: Per-kind scalars stored in the file: name -> (dtype, units, long name).
SCALARS = {
    "n_heads": ("int64", None, "attention heads (query heads)"),
    "n_kv_heads": ("int64", None, "key/value heads (0: TPA, factorized)"),
    "attention_params": ("int64", None, "attention weights per layer"),
    "total_params": ("int64", None, "weights of the whole model"),
    "final_val_loss": ("float64", "nats", "validation cross entropy after training"),
    "cache_bytes": ("float64", "B", "cache bytes per token per layer, measured (TPA: factors)"),
    "cache_bytes_formula": ("int64", "B", "cache bytes per token per layer, by formula"),
    "cache_bytes_materialized": (
        "float64",
        "B",
        "cache bytes per token per layer with keys and values materialized, measured",
    ),
    "cache_bytes_materialized_formula": (
        "int64",
        "B",
        "cache bytes per token per layer with keys and values materialized, by formula",
    ),
    "decode_tokens_per_s": ("float64", "1/s", "decode tokens per second (TPA: factor cache)"),
    "decode_tokens_per_s_materialized": (
        "float64",
        "1/s",
        "decode tokens per second with materialized keys and values",
    ),
    "train_seconds": ("float64", "s", "wall time of the optimizer steps"),
}

#: Curves stored per kind over ``eval_step``: name -> long name.
CURVES = {
    "val_loss": "validation cross entropy (nats)",
    "val_accuracy": "validation accuracy of the next token (recall: of the answer)",
    "train_loss": "mean training loss since the previous evaluation (nats)",
}


def _write(path: Path, cfg: TPARun, comm: Any, results: Sequence[dict[str, Any]]) -> None:
    from tensorsim.io import Writer

    e = cfg.experiment
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    attrs = {"preset": cfg.preset, "task": e.task, "reference_kind": e.kinds[0]}
    with Writer(
        path, record_dim="attention", comm=comm, config=config_to_toml(cfg), attrs=attrs
    ) as out:
        out.set_coordinate("eval_step", results[0]["steps"], long_name="optimizer steps done")
        out.define_series("kind", dtype=str, long_name="attention kind")
        for name, (dtype, units, long_name) in SCALARS.items():
            out.define_series(name, dtype=dtype, units=units, long_name=long_name)
        for name, long_name in CURVES.items():
            out.define_series(name, ("eval_step",), long_name=long_name)
        for i, (kind, r) in enumerate(zip(e.kinds, results, strict=True)):
            values = {name: r[name] for name in SCALARS if name != "final_val_loss"}
            out.append(
                i,
                kind=kind,
                final_val_loss=r["val_loss"][-1],
                **values,
                **{name: r[name] for name in CURVES},
            )


def run(
    cfg: TPARun, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Train every kind (spread over the ranks), write the file; return a summary table."""
    refuse_restart("drivers.tpa", restart, max_steps, "experiment.training.steps")
    e = cfg.experiment
    start = time.perf_counter()

    def one(kind: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        r = run_kind(e, kind)
        logger.info(
            "%s: %d heads, %d weights, validation loss %.4f, cache %.0f B/token/layer, "
            "decode %.0f tokens/s (materialized %.0f), %.1f s",
            kind,
            r["n_heads"],
            r["total_params"],
            r["val_loss"][-1],
            r["cache_bytes"],
            r["decode_tokens_per_s"],
            r["decode_tokens_per_s_materialized"],
            time.perf_counter() - t0,
        )
        return r

    costs = [1.2 if kind.startswith("tpa") else 1.0 for kind in e.kinds]
    executor = Executor(comm)
    results = executor.map(one, list(e.kinds), costs=costs)
    path = cfg.path()
    _write(path, cfg, comm, results)
    ref = results[0]
    table = {
        kind: {
            "n_heads": r["n_heads"],
            "total_params": r["total_params"],
            "attention_params": r["attention_params"],
            "val_loss": float(r["val_loss"][-1]),
            "val_accuracy": float(r["val_accuracy"][-1]),
            "loss_gap": float(r["val_loss"][-1] - ref["val_loss"][-1]),
            "cache_bytes": r["cache_bytes"],
            "cache_ratio": ref["cache_bytes"] / r["cache_bytes"],
            "tokens_per_s": r["decode_tokens_per_s"],
            "tokens_per_s_materialized": r["decode_tokens_per_s_materialized"],
        }
        for kind, r in zip(e.kinds, results, strict=True)
    }
    return {
        "path": str(path),
        "reference": e.kinds[0],
        "table": table,
        "wall_time": time.perf_counter() - start,
        "busy_time": executor.last_timings,
    }


def plot(path: str) -> list[Path]:
    """Write the validation-loss curves and the cache-bytes bars of an output file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    kinds = [str(k) for k in ds["kind"].values]
    steps = ds["eval_step"].values
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, kind in enumerate(kinds):
        axes[0].plot(steps, ds["val_loss"].values[i], label=kind)
    axes[0].set(
        xlabel="step",
        ylabel="validation loss (nats)",
        title=f"{ds.attrs['task']}: validation loss at matched parameters",
    )
    axes[0].set_yscale("log")
    axes[0].grid(True, which="both", alpha=0.3)
    axes[0].legend()
    x = np.arange(len(kinds))
    axes[1].bar(x - 0.2, ds["cache_bytes"].values, 0.4, label="default cache (TPA: factors)")
    axes[1].bar(x + 0.2, ds["cache_bytes_materialized"].values, 0.4, label="keys/values")
    axes[1].set_xticks(x, kinds)
    axes[1].set(ylabel="bytes per token per layer", title="KV cache (measured)")
    axes[1].legend()
    fig.tight_layout()
    out = base.with_name(base.name + "_tpa.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return [out]


def _describe(cfg: TPARun, n_ranks: int) -> str:
    e, m = cfg.experiment, cfg.experiment.model
    heads = ", ".join(f"{k} {v['n_heads']}" for k, v in head_counts(m, e.kinds).items())
    return (
        f"{cfg.preset}: {e.task} task, d={m.d_model}, {m.n_layers} layers, d_h={m.head_dim}, "
        f"heads {heads}; {e.training.steps} steps of {e.data.batch_size} x {e.max_seq_len} "
        f"tokens, {len(e.kinds)} kinds on {n_ranks} rank(s)"
    )


def _summarize(summary: dict[str, Any]) -> str:
    lines = [f"wrote {summary['path']} in {summary['wall_time']:.1f} s"]
    ref = summary["reference"]
    for kind, v in summary["table"].items():
        lines.append(
            f"  {kind:<10} h={v['n_heads']:<3} {v['total_params']:>8} weights  "
            f"val loss {v['val_loss']:.4f} ({v['loss_gap']:+.4f} vs {ref})  "
            f"cache {v['cache_bytes']:.0f} B ({v['cache_ratio']:.2f}x smaller)  "
            f"decode {v['tokens_per_s']:.0f} tok/s (materialized "
            f"{v['tokens_per_s_materialized']:.0f})"
        )
    busy = ", ".join(f"{t:.1f}" for t in summary["busy_time"])
    lines.append(f"  busy time per rank {busy} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the run summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=TPARun,
        prog="python -m drivers.tpa",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(
            TPARun, args.config, args.set, PRESETS, table="experiment"
        ),
        run=run,
        plot=plot,
        describe=_describe,
        summarize=_summarize,
        logger=logger,
    )


if __name__ == "__main__":
    main()
