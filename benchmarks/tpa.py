"""Prefill and decode time and KV-cache memory: MHA vs GQA vs TPA (arXiv 2501.06425), on CPU.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.tpa [--quick] [--repeat N] [--output PATH]

One :class:`tensorsim.nn.models.decoder.Decoder` per attention kind (d = 256, 2 layers,
``d_h`` = 32, vocabulary 96, random weights from one seed), with matched attention weights:
MHA 8 heads, GQA 2 key/value heads and the head count
:func:`tensorsim.nn.attention.solve_heads` gives (14), TPA ``(R_Q, R_K, R_V) = (6, 2, 2)``
with the solved head count (17). For every context length ``L`` and batch size ``B``:

- **prefill**: ``model(ids, cache)`` on ``L`` random tokens into an empty cache (TPA: the
  factor cache; the prompt attends through formed keys and values, see
  :class:`~tensorsim.nn.attention.TensorProductAttention`); best of ``--repeat`` runs after
  one warm-up (one run, no warm-up, at ``B L >= 16384``; not run above ``B L = 32768``, to
  keep the whole benchmark within a few minutes on one core);
- **decode**: the cache is filled to ``L`` tokens with random entries of the right shapes
  (decode time does not depend on their values, and this skips a prefill per case), then
  ``n`` one-token steps are timed one by one (``n`` = 32 up to ``L`` = 1024, 16 above), the
  cache growing by one token per step as in generation; the median step is reported (all
  ``B`` sequences; the median resists the load of other jobs on a shared machine);
  ``TPA (K/V)`` is TPA decoding with keys and values materialized in the cache;
- **cache**: bytes the cache tensors hold at ``L`` tokens (both layers, all ``B``
  sequences).

Ratios are MHA / kind: above 1 means faster or smaller than MHA. A full run writes
``benchmarks/results/tpa.md``; ``--quick`` runs two small cases and only prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks._common import machine_info, markdown_table, progress, write_report
from tensorsim.nn.kv_cache import attention_parameters, solve_heads
from tensorsim.nn.models.decoder import Decoder, count_parameters

RESULTS = Path(__file__).resolve().parent / "results" / "tpa.md"
SEED = 250106425
D_MODEL, N_LAYERS, HEAD_DIM, MHA_HEADS, VOCAB = 256, 2, 32, 8, 96
LENGTHS = (256, 1024, 4096, 8192)
BATCHES = (1, 8)
QUICK = ((256, 1), (1024, 8))

#: Column label -> (attention kind, materialized cache).
KINDS = {
    "MHA": ("mha", False),
    "GQA": ("gqa", False),
    "TPA": ("tpa", False),
    "TPA (K/V)": ("tpa", True),
}


@dataclass(frozen=True)
class Model:
    """One benchmarked model and how its cache is built."""

    label: str
    decoder: Decoder
    materialize: bool


def build_models(max_len: int) -> list[Model]:
    """The decoders of :data:`KINDS` (one model shared by both TPA columns)."""
    target = attention_parameters("mha", d_model=D_MODEL, n_heads=MHA_HEADS, head_dim=HEAD_DIM)
    built: dict[str, Decoder] = {}
    out = []
    for label, (kind, materialize) in KINDS.items():
        if kind not in built:
            opts = {"n_kv_heads": 2} if kind == "gqa" else {}
            h = (
                MHA_HEADS
                if kind == "mha"
                else solve_heads(kind, d_model=D_MODEL, head_dim=HEAD_DIM, target=target, **opts)
            )
            torch.manual_seed(SEED)
            built[kind] = Decoder(
                VOCAB,
                D_MODEL,
                N_LAYERS,
                h,
                attention=kind,
                max_seq_len=max_len + 64,
                head_dim=HEAD_DIM,
                **opts,
            ).eval()
        out.append(Model(label, built[kind], materialize))
    return out


def _filled_cache(model: Model, batch: int, length: int, g: torch.Generator):
    """A cache of ``length`` random tokens (the tensors a prefill would leave)."""
    cache = model.decoder.new_cache(batch, materialize=model.materialize)
    for layer, blk in zip(cache.layers, model.decoder.layers, strict=True):
        attn = blk.attn
        if model.materialize or not hasattr(attn, "ranks"):
            kv = getattr(attn, "n_kv_heads", attn.n_heads)
            shape = (batch, length, kv, attn.head_dim)
            layer.append(k=torch.randn(shape, generator=g), v=torch.randn(shape, generator=g))
        else:
            h, d, rk, rv = attn.n_heads, attn.head_dim, attn.k_rank, attn.v_rank
            layer.append(
                a_k=torch.randn(batch, length, h, rk, generator=g),
                b_k=torch.randn(batch, length, rk, d, generator=g),
                a_v=torch.randn(batch, length, h, rv, generator=g),
                b_v=torch.randn(batch, length, rv, d, generator=g),
            )
    return cache


#: Largest ``batch * length`` whose prefill is timed.
MAX_PREFILL_TOKENS = 32768


def time_prefill(model: Model, batch: int, length: int, repeat: int) -> float:
    """Best time of a prefill of ``length`` random tokens into an empty cache (NaN: skipped)."""
    if batch * length > MAX_PREFILL_TOKENS:
        return float("nan")
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, VOCAB, (batch, length), generator=g)
    runs = 1 if batch * length >= 16384 else repeat
    if runs > 1:
        model.decoder(ids, model.decoder.new_cache(batch, materialize=model.materialize))
    best = float("inf")
    for _ in range(runs):
        cache = model.decoder.new_cache(batch, materialize=model.materialize)
        start = time.perf_counter()
        model.decoder(ids, cache)
        best = min(best, time.perf_counter() - start)
    return best


def time_decode(model: Model, batch: int, length: int, steps: int) -> tuple[float, int]:
    """Median time of one decode step after ``length`` cached tokens; cache bytes there."""
    g = torch.Generator().manual_seed(SEED)
    cache = _filled_cache(model, batch, length, g)
    nbytes = cache.nbytes()
    nxt = torch.randint(0, VOCAB, (batch, 1), generator=g)
    model.decoder(nxt, cache)  # warm-up step
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        nxt = model.decoder(nxt, cache)[:, -1:].argmax(-1)
        times.append(time.perf_counter() - start)
    return statistics.median(times), nbytes


def _ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{1e3 * seconds:.2f}"


def _ratio(ref: float, value: float) -> str:
    return "-" if value != value else f"{ref / value:.2f}"


HEADER = [
    "L",
    "B",
    "attention",
    "prefill (ms)",
    "MHA / this",
    "decode step (ms)",
    "tokens/s",
    "MHA / this",
    "cache (MB)",
    "MHA / this",
]


def run_case(models: list[Model], length: int, batch: int, repeat: int) -> list[list[str]]:
    """Rows of one (length, batch) case, one per model."""
    steps = 32 if length <= 1024 else 16
    results = {}
    for m in models:
        progress(f"tpa: L={length} B={batch} {m.label}")
        prefill = (
            results["TPA"][0] if m.label == "TPA (K/V)" else time_prefill(m, batch, length, repeat)
        )
        step, nbytes = time_decode(m, batch, length, steps)
        results[m.label] = (prefill, step, nbytes)
    ref = results["MHA"]
    rows = []
    for label, (prefill, step, nbytes) in results.items():
        rows.append(
            [
                str(length),
                str(batch),
                label,
                _ms(prefill),
                _ratio(ref[0], prefill),
                _ms(step),
                f"{batch / step:.0f}",
                f"{ref[1] / step:.2f}",
                f"{nbytes / 1e6:.2f}",
                f"{ref[2] / nbytes:.2f}",
            ]
        )
    return rows


def report(models: list[Model], rows: list[list[str]], repeat: int) -> str:
    """The markdown report."""
    info = machine_info() | {"torch": torch.__version__}
    described = []
    for m in models:
        if m.label == "TPA (K/V)":
            continue
        attn = m.decoder.layers[0].attn
        described.append(
            f"- {m.label}: {attn.n_heads} heads, {count_parameters(attn)} attention weights "
            f"per layer, {count_parameters(m.decoder)} in all, cache "
            f"{m.decoder.cache_bytes_per_token_per_layer()} B per token per layer"
        )
    lines = [
        "# Tensor Product Attention: prefill, decode and KV cache against MHA and GQA",
        "",
        "Generated by `python -m benchmarks.tpa`.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        f"## Models (d = {D_MODEL}, {N_LAYERS} layers, d_h = {HEAD_DIM}, float32, CPU)",
        "",
        *described,
        "",
        "## Results",
        "",
        f"Prefill: best of {repeat} after a warm-up (one run at B L >= 16384, not run above "
        f"B L = {MAX_PREFILL_TOKENS}: `-`). Decode: median of 32 (L <= 1024) or 16 one-token "
        "steps after L cached tokens, the cache growing as in generation; tokens/s counts "
        "all B sequences. Cache: bytes held at L tokens, both "
        "layers. Ratios are MHA / this: above 1 is faster or smaller than MHA. `TPA (K/V)` "
        "decodes with keys and values materialized in the cache (its prefill is TPA's).",
        "",
        markdown_table(HEADER, rows),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tpa", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed prefill runs (default 3)")
    parser.add_argument("--quick", action="store_true", help="two small cases, a smoke run")
    parser.add_argument("--output", type=Path, default=None, help="write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the report."""
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cases = QUICK if args.quick else [(n, b) for n in LENGTHS for b in BATCHES]
    models = build_models(max(n for n, _ in cases))
    rows = []
    with torch.no_grad():
        for length, batch in cases:
            rows += run_case(models, length, batch, args.repeat)
    output = args.output
    if output is None and not args.quick:
        output = RESULTS
    write_report(report(models, rows, args.repeat), output)


if __name__ == "__main__":
    main()
