"""Benchmark DAIN's training and influence pass: streamed TracIn vs stored gradients.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.dain [--cells N] [--epochs E] [--quick]
        [--output PATH]

On a generated tensor (:func:`problems.completion_data.synthetic_completion`, 3 modes, 3 %
observed, ``--cells`` observed cells split 72 / 18 / 10 % into train / validation / test)
the DAIN MLP (embeddings 16 per mode, hidden 256-64) is trained for ``--epochs`` epochs
(batch 256, Adam); after every epoch the TracIn scores of the training cells are computed
two ways, with the same weights:

- **streamed** (this project, :func:`tensorsim.nn.completion.tracin_scores` +
  :class:`~tensorsim.nn.completion.TracInAccumulator`): the validation gradient sum
  (``k + 1`` numbers), then one dot product per training cell, added to a running sum;
- **stored** (the straightforward way, as the reference code keeps its per-epoch gradient
  lists): every per-example last-layer gradient of every training and validation cell
  (:func:`~tensorsim.nn.completion.last_layer_gradients`) is kept for every epoch, and the
  scores are formed at the end.

The report gives cells per second of training and of each influence pass (training plus
validation cells per second), the bytes each keeps (exact tensor sizes), the ratios
(stored / streamed) and the largest relative difference of the two score vectors. A full run
writes ``benchmarks/results/dain.md``; ``--quick`` uses 20 000 cells and 2 epochs and prints.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import machine_info, markdown_table, progress, write_report

RESULTS = Path(__file__).resolve().parent / "results" / "dain.md"


def run(cells: int, epochs: int) -> dict[str, float]:
    """Train and compare the two influence passes; return the measurements."""
    from problems.completion_data import shape_for, synthetic_completion
    from solvers.callbacks import LambdaCallback, TracIn
    from solvers.completion import to_torch
    from solvers.training import Trainer
    from tensorsim.io.sparse import split_cells
    from tensorsim.nn.completion import last_layer_gradients, tracin_scores
    from tensorsim.nn.models.completion import build_model

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    shape = shape_for(cells, 0.03)
    tensor = synthetic_completion(shape, density=cells / float(torch.tensor(shape).prod()))
    split = split_cells(tensor.tensor, seed=0)
    train, val = to_torch(split.train), to_torch(split.val)
    model = build_model("dain_mlp", shape, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    n = split.train.nnz
    tracin = TracIn(lambda m: tracin_scores(m, train, val, batch_size=8192), n)
    acc = tracin.accumulator
    stored_train: list[torch.Tensor] = []
    stored_val: list[torch.Tensor] = []
    t_store = 0.0

    def batches(epoch: int) -> Any:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch - 1))
        return (order[first : first + 256] for first in range(0, n, 256))

    def store(trainer: Trainer) -> None:
        nonlocal t_store
        start = time.perf_counter()
        model.eval()
        stored_train.append(last_layer_gradients(model, *train, batch_size=8192))
        stored_val.append(last_layer_gradients(model, *val, batch_size=8192))
        model.train()
        t_store += time.perf_counter() - start

    trainer = Trainer(
        model,
        opt,
        lambda net, b: torch.mean((net(train[0][b]) - train[1][b]) ** 2),
        callbacks=[
            LambdaCallback(on_epoch_start=lambda t: progress(f"epoch {t.epoch}/{epochs}")),
            tracin,
            LambdaCallback(on_epoch_end=store),
        ],
    )
    trainer.fit(batches, epochs=epochs)
    t_train, t_stream = trainer.seconds, tracin.seconds
    start = time.perf_counter()
    scores = torch.zeros(n, dtype=torch.float64)
    for g_t, g_v in zip(stored_train, stored_val, strict=True):
        scores += g_t.double() @ g_v.double().sum(dim=0)
    t_store += time.perf_counter() - start
    stored_bytes = sum(g.numel() * g.element_size() for g in stored_train + stored_val)
    diff = float((scores - acc.total).abs().max() / acc.total.abs().max())
    passed = epochs * (split.train.nnz + split.val.nnz)
    return {
        "cells": tensor.tensor.nnz,
        "train": n,
        "val": split.val.nnz,
        "features": model.feature_size,
        "epochs": epochs,
        "train_rate": epochs * n / t_train,
        "stream_rate": passed / t_stream,
        "store_rate": passed / t_store,
        "stream_seconds": t_stream,
        "store_seconds": t_store,
        "stream_bytes": acc.total.numel() * acc.total.element_size(),
        "store_bytes": stored_bytes,
        "max_rel_diff": diff,
        "load": os.getloadavg()[0],
    }


def report(r: dict[str, float]) -> str:
    """Markdown report of :func:`run`'s measurements."""
    info = machine_info()
    rows = [
        ["training (Adam, batch 256)", f"{r['train_rate']:,.0f}", "-", "-"],
        [
            "influence, streamed (ours)",
            f"{r['stream_rate']:,.0f}",
            f"{r['stream_seconds']:.2f}",
            f"{r['stream_bytes'] / 1e6:.2f}",
        ],
        [
            "influence, stored per-example gradients",
            f"{r['store_rate']:,.0f}",
            f"{r['store_seconds']:.2f}",
            f"{r['store_bytes'] / 1e6:.2f}",
        ],
    ]
    lines = [
        "# DAIN: training and influence-pass throughput",
        "",
        f"DAIN MLP (embeddings 16 per mode, hidden 256-64, k = {r['features']} features) on "
        f"{r['cells']:,} observed cells ({r['train']:,} train, {r['val']:,} validation), "
        f"{r['epochs']} epochs. Influence rates count training + validation cells per "
        "epoch; bytes are the tensors each way keeps across epochs.",
        "",
        markdown_table(["pass", "cells / s", "seconds (all epochs)", "MB kept"], rows),
        "",
        f"- time ratio stored / streamed: {r['store_seconds'] / r['stream_seconds']:.2f}",
        f"- memory ratio stored / streamed: {r['store_bytes'] / r['stream_bytes']:.0f}"
        f" (= epochs x (train + val) x (k + 1) x 4 B over train x 8 B)",
        f"- largest relative difference of the scores: {r['max_rel_diff']:.1e}",
        "- the trainer's accumulator also keeps a copy of the sum at the best epoch (2 x the "
        "streamed bytes above); the stored way keeps its lists until the end",
        f"- load average during the run (shared machine): {r['load']:.1f}",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=200_000, help="observed cells")
    parser.add_argument("--epochs", type=int, default=5, help="epochs")
    parser.add_argument("--quick", action="store_true", help="20 000 cells, 2 epochs, print")
    parser.add_argument("--output", type=Path, default=None, help="report file")
    args = parser.parse_args()
    if args.quick:
        args.cells, args.epochs = 20_000, 2
    output = args.output if args.output or args.quick else RESULTS
    write_report(report(run(args.cells, args.epochs)), output)


if __name__ == "__main__":
    main()
