"""Benchmark this project's adapters against peft's on the same models and batches.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.adapters [--repeat N] [--quick]
        [--sweep runs/adapters_digits_mlp.nc] [--output PATH]

For the MLP of the digits experiment (width 128, 8 hidden layers adapted) and the decoder of
the character experiment (d = 128, 4 blocks, ``q_proj`` and ``v_proj`` adapted), every case
puts one adapter on two copies of the same pretrained-shape model, ours
(:func:`tensorsim.nn.adapt`) and peft's (``get_peft_model``), and reports

- the trainable parameters of both (LoRA: must be equal);
- the time of one training step (forward, backward, AdamW step on the adapter parameters)
  on the same seeded batch, the median of ``--repeat`` runs after one warm-up, the two
  models alternating; the ratio is peft / ours (above 1: ours is faster).

Cases: LoRA against peft's LoRA at the same rank; LoTR (ours only, peft has no cross-layer
Tucker adapter) against peft's LoRA at the same rank; SoKA against peft's LoKr (both
Kronecker adapters; their parameter counts differ, both are listed). With ``--sweep FILE``
(a ``python -m drivers.adapters sweep`` output) the report adds the test accuracy of our and
peft's LoRA per rank, as trained there on the same data with the same learning-rate search.

A full run writes ``benchmarks/results/adapters.md``; ``--quick`` runs one case and prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks._common import machine_info, markdown_table, progress, write_report
from solvers.adapters import adapt_variant

RESULTS = Path(__file__).resolve().parent / "results" / "adapters.md"
SEED = 20240203


@dataclass(frozen=True)
class Case:
    """One comparison: a model, our method and peft's, one rank."""

    model: str
    ours: str
    peft: str
    rank: int

    @property
    def label(self) -> str:
        """Row label."""
        return f"{self.model}: {self.ours} vs peft {self.peft}, r={self.rank}"


CASES = [
    Case(model, ours, peft, rank)
    for model in ("mlp", "decoder")
    for ours, peft, rank in (
        ("lora", "lora", 4),
        ("lora", "lora", 16),
        ("lotr", "lora", 16),
        ("soka", "lokr", 4),
    )
]
QUICK = [Case("mlp", "lora", "lora", 4)]


def build(model: str) -> tuple[torch.nn.Module, list[str], torch.Tensor, torch.Tensor]:
    """A seeded model, its target patterns, an input batch and its targets."""
    torch.manual_seed(SEED)
    if model == "mlp":
        from tensorsim.nn.models.mlp import build_mlp

        net = build_mlp(width=128, depth=8)
        x = torch.rand(64, 64)
        y = torch.randint(0, 10, (64,))
        return net, [r"hidden\d+"], x, y
    from problems.language import VOCAB
    from tensorsim.nn.models.decoder import Decoder

    net = Decoder(len(VOCAB), d_model=128, n_layers=4, n_heads=4, max_seq_len=64)
    x = torch.randint(0, len(VOCAB), (32, 64))
    return net, ["q_proj", "v_proj"], x, torch.roll(x, -1, dims=1)


def trainable(model: torch.nn.Module) -> int:
    """Parameters that require grad."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def step_function(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One AdamW training step on the model's trainable parameters."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)

    def step() -> None:
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def run_case(case: Case, repeat: int) -> list[str]:
    """Count and time one case; return its table row."""
    net, targets, x, y = build(case.model)
    a = adapt_variant(net, case.ours, targets, case.rank, seed=SEED)
    b = adapt_variant(net, f"peft_{case.peft}", targets, case.rank, seed=SEED)
    steps = [step_function(a, x, y), step_function(b, x, y)]
    for step in steps:
        step()
    times: list[list[float]] = [[], []]
    for _ in range(repeat):
        for i, step in enumerate(steps):
            start = time.perf_counter()
            step()
            times[i].append(time.perf_counter() - start)
    t_ours, t_peft = (statistics.median(t) for t in times)
    return [
        case.model,
        f"{case.ours} / {case.peft}",
        str(case.rank),
        f"{trainable(a):,}",
        f"{trainable(b):,}",
        f"{1e3 * t_ours:.2f}",
        f"{1e3 * t_peft:.2f}",
        f"{t_peft / t_ours:.2f}",
    ]


def same_init_losses(model: str, rank: int, steps: int) -> tuple[float, float]:
    """Train our LoRA and peft's from the same ``A``, ``B`` on the same batches.

    peft's ``lora_A`` / ``lora_B`` of every targeted layer get our initial values; both
    models then take ``steps`` AdamW steps (lr 1e-2) on seeded batches of the model's input
    kind. Returns the largest relative difference of the two loss curves and the final loss.
    """
    from solvers.callbacks import LossWindow
    from solvers.training import Trainer

    net, targets, x, y = build(model)
    a = adapt_variant(net, "lora", targets, rank, seed=SEED)
    b = adapt_variant(net, "peft_lora", targets, rank, seed=SEED)
    with torch.no_grad():
        for name, layer in a.named_modules():
            if hasattr(layer, "lora_A") and isinstance(layer.lora_A, torch.nn.Parameter):
                peer = b.get_submodule("base_model.model." + name)
                peer.lora_A["default"].weight.copy_(layer.lora_A)
                peer.lora_B["default"].weight.copy_(layer.lora_B)

    def loss(net: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
        logits = net(x[idx])
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y[idx].reshape(-1)
        )

    curves: list[list[float]] = []
    for m in (a, b):
        optimizer = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
        generator = torch.Generator().manual_seed(SEED)
        window = LossWindow()
        Trainer(m, optimizer, loss, callbacks=[window]).fit(
            lambda epoch, g=generator: (
                torch.randint(0, x.shape[0], (x.shape[0],), generator=g) for _ in range(steps)
            )
        )
        curves.append(window.values)
    ours_curve, peft_curve = (torch.tensor(c, dtype=torch.float64) for c in curves)
    gap = float(((ours_curve - peft_curve).abs() / peft_curve.abs()).max())
    return gap, float(peft_curve[-1])


HEADER = (
    "model",
    "ours / peft",
    "rank",
    "params ours",
    "params peft",
    "step ours ms",
    "step peft ms",
    "ratio",
)


def accuracy_rows(path: str) -> list[list[str]]:
    """Test accuracy of our and peft's LoRA per rank from a sweep file (selected lr)."""
    from analysis.adapters import analyse
    from tensorsim.io import open_run

    table = analyse(open_run(path)[0])["table"]
    rows = []
    for (variant, rank), v in sorted(table.items(), key=lambda kv: kv[0][1]):
        if variant != "lora" or ("peft_lora", rank) not in table:
            continue
        w = table["peft_lora", rank]
        gap = 100 * (w["test_accuracy"] - v["test_accuracy"])
        noise = 100 * max(v["test_accuracy_std"], w["test_accuracy_std"])
        rows.append(
            [
                str(rank),
                f"{v['trainable']:,}",
                f"{100 * v['test_accuracy']:.1f} +- {100 * v['test_accuracy_std']:.1f}",
                f"{100 * w['test_accuracy']:.1f} +- {100 * w['test_accuracy_std']:.1f}",
                f"{gap:+.1f} (seed spread {noise:.1f})",
            ]
        )
    return rows


def report(rows: list[list[str]], same: list[list[str]], repeat: int, sweep: str | None) -> str:
    """The markdown report."""
    import peft

    info = machine_info() | {"torch": torch.__version__, "peft": peft.__version__}
    lines = [
        "# Adapters: tensorsim vs peft",
        "",
        "Generated by `python -m benchmarks.adapters`"
        + (f" --sweep {sweep}" if sweep else "")
        + ".",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        "## Trainable parameters and training-step time (CPU)",
        "",
        f"Median of {repeat} steps (forward, backward, AdamW) after one warm-up, the two models "
        "alternating, same batch. Ratio = peft / ours: above 1 means ours is faster. MLP: "
        "width 128, 8 hidden layers adapted, batch 64. Decoder: d = 128, 4 blocks, q_proj and "
        "v_proj adapted, batch 32 x 64 characters.",
        "",
        markdown_table(HEADER, rows),
        "",
    ]
    lines += [
        "## Same initial adapters, same batches",
        "",
        "peft's `lora_A`, `lora_B` set to our initial values, then 200 AdamW steps (lr 1e-2) "
        "on the same seeded batches: the largest relative difference of the two loss curves "
        "(float32 rounding only: the two LoRA implementations compute the same function).",
        "",
        markdown_table(("model", "rank", "max relative loss difference", "final loss"), same),
        "",
    ]
    if sweep:
        lines += [
            "## Test accuracy, ours vs peft LoRA (digits sweep)",
            "",
            f"From `{sweep}`: mean +- standard deviation over seeds, learning rate selected "
            "on the validation split for each.",
            "",
            markdown_table(
                ("rank", "params", "ours %", "peft %", "peft - ours (points)"),
                accuracy_rows(sweep),
            ),
            "",
        ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.adapters", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--repeat", type=int, default=30, help="timed steps (default 30)")
    parser.add_argument("--quick", action="store_true", help="one small case, a smoke run")
    parser.add_argument("--sweep", default=None, help="a drivers.adapters sweep file")
    parser.add_argument("--output", type=Path, default=None, help="write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the report."""
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rows = []
    for case in QUICK if args.quick else CASES:
        progress(f"adapters: {case.label}")
        rows.append(run_case(case, args.repeat))
    same = []
    for model in ("mlp",) if args.quick else ("mlp", "decoder"):
        progress(f"adapters: same-init trajectories, {model}")
        gap, final = same_init_losses(model, 4, 20 if args.quick else 200)
        same.append([model, "4", f"{gap:.1e}", f"{final:.4f}"])
    output = args.output if args.output is not None or args.quick else RESULTS
    write_report(report(rows, same, args.repeat, args.sweep), output)


if __name__ == "__main__":
    main()
