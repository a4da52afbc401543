"""Benchmark SMMF's optimizer state and step time against Adam, AdamW, Adafactor, CAME, SM3.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.smmf [--steps N] [--repeat N] [--quick]
                                                [--output PATH]

Optimizers: ``torch.optim.Adam``, ``torch.optim.AdamW``, ``torch.optim.Adafactor``, CAME and
SM3 from ``pytorch_optimizer``, and ``tensorsim.optim.SMMF`` (arXiv 2412.08894; also with
``fused=False`` to show what batching small parameters of one shape gains). Models:

- **digits CNN**: two 3x3 convolutions and a linear head on scikit-learn's 8x8 digits;
- **digits MLP**: 64-128-64-10 on the same digits;
- **char transformer**: a 2-layer ``torch.nn.TransformerEncoder`` (causal mask, width 64)
  predicting the next character of a Python standard-library source file;

(the three models are built by :mod:`tensorsim.nn.models.small`, shared with ``drivers.smmf``)
- **ResNet-18-sized**: the 62 parameter tensors of a ResNet-18 (11.7M numbers: convolution
  kernels, batch-norm vectors, the 1000-class head) with random values and random gradients,
  no model around them.

The first three train ``--steps`` steps from the same seeded initial weights with each
optimizer, on seeded minibatches of 128 digits (the same sequence for every optimizer) or on
one fixed batch of 32 x 32 characters; the table gives the final training loss (on all 1797
digits).
**State** is :func:`tensorsim.optim.state_bytes` after training: the bytes of every tensor
in ``optimizer.state``. **Step** is the median wall time of ``optimizer.step()`` alone (the
gradients already computed): over the training steps for the small models, and over
``--repeat`` rounds after a warm-up, the optimizers alternating, for the ResNet-sized one.
Ratios are to Adam: below 1 means less memory or faster. Learning rates: 1e-3 for Adam,
AdamW, CAME and SMMF, the library defaults for Adafactor (1e-2, relative step) and SM3
(0.1); SMMF uses ``decay_rate=-0.5`` for the CNN and MLP and -0.8 for the transformer, as
the paper recommends, and its default weight decay 5e-4 (AdamW's default is 1e-2).

A full run writes ``benchmarks/results/smmf.md``; ``--quick`` runs few steps and only
prints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks._common import machine_info, markdown_table, progress, write_report
from tensorsim.nn.models.small import build_char_transformer, build_digits_cnn, build_digits_mlp
from tensorsim.optim import SMMF, state_bytes

RESULTS = Path(__file__).resolve().parent / "results" / "smmf.md"
SEED = 20241211
DIGITS_BATCH = 128

OptimizerFactory = Callable[[list[torch.nn.Parameter], float], torch.optim.Optimizer]


def _came(params: list[torch.nn.Parameter], decay: float) -> torch.optim.Optimizer:
    from pytorch_optimizer import CAME

    return CAME(params, lr=1e-3)


def _sm3(params: list[torch.nn.Parameter], decay: float) -> torch.optim.Optimizer:
    from pytorch_optimizer import SM3

    return SM3(params)


OPTIMIZERS: dict[str, OptimizerFactory] = {
    "Adam": lambda ps, c: torch.optim.Adam(ps, lr=1e-3),
    "AdamW": lambda ps, c: torch.optim.AdamW(ps, lr=1e-3),
    "Adafactor (torch)": lambda ps, c: torch.optim.Adafactor(ps),
    "CAME": _came,
    "SM3": _sm3,
    "SMMF": lambda ps, c: SMMF(ps, lr=1e-3, decay_rate=c),
    "SMMF fused=False": lambda ps, c: SMMF(ps, lr=1e-3, decay_rate=c, fused=False),
}


@dataclass
class Task:
    """A model with its data and loss: ``loss(model, step)`` on the batch of a step (-1: all)."""

    name: str
    model: torch.nn.Module
    loss: Callable[[torch.nn.Module, int], torch.Tensor]
    decay_rate: float


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    return x, torch.tensor(data.target, dtype=torch.long)


def make_tasks() -> list[Task]:
    """The three trained tasks, seeded."""
    import json as json_module

    x, y = _digits()
    torch.manual_seed(SEED)
    cnn = build_digits_cnn()
    mlp = build_digits_mlp()
    text = Path(json_module.decoder.__file__).read_text(encoding="utf-8")
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(ch) for ch in text], dtype=torch.long)
    context, batch = 32, 32
    gen = torch.Generator().manual_seed(SEED)
    starts = torch.randint(0, len(ids) - context - 1, (batch,), generator=gen)
    inputs = torch.stack([ids[s : s + context] for s in starts])
    targets = torch.stack([ids[s + 1 : s + context + 1] for s in starts])
    lm = build_char_transformer(len(chars), context)

    order = torch.randperm(len(y), generator=gen)

    def classify(model: torch.nn.Module, step: int) -> torch.Tensor:
        if step < 0:
            return torch.nn.functional.cross_entropy(model(x), y)
        start = (step * DIGITS_BATCH) % (len(y) - DIGITS_BATCH)
        rows = order[start : start + DIGITS_BATCH]
        return torch.nn.functional.cross_entropy(model(x[rows]), y[rows])

    def next_char(model: torch.nn.Module, step: int) -> torch.Tensor:
        logits = model(inputs)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    return [
        Task("digits CNN", cnn, classify, -0.5),
        Task("digits MLP", mlp, classify, -0.5),
        Task("char transformer", lm, next_char, -0.8),
    ]


def resnet18_shapes() -> list[tuple[int, ...]]:
    """Parameter shapes of torchvision's ResNet-18 (ImageNet head), in module order."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    c_in = 64
    for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            first_in = c_in if block == 0 else c_out
            shapes += [(c_out, first_in, 3, 3), (c_out,), (c_out,)]
            shapes += [(c_out, c_out, 3, 3), (c_out,), (c_out,)]
            if block == 0 and (stride != 1 or c_in != c_out):
                shapes += [(c_out, c_in, 1, 1), (c_out,), (c_out,)]
        c_in = c_out
    return [*shapes, (1000, 512), (1000,)]


def _fmt_bytes(n: int) -> str:
    return f"{n / 2**20:.3f}" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def train(task: Task, name: str, steps: int) -> tuple[int, float, float]:
    """Train a copy of the task's model: state bytes, median step seconds, final loss."""
    import copy

    model = copy.deepcopy(task.model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = OPTIMIZERS[name](params, task.decay_rate)
    times = []
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        opt.zero_grad()
        loss = task.loss(model, step)
        loss.backward()
        start = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        final = float(task.loss(model, -1))
    return state_bytes(opt), statistics.median(times), final


def run_task(task: Task, steps: int) -> list[list[str]]:
    """Rows of one trained task."""
    n_params = sum(p.numel() for p in task.model.parameters())
    results = {}
    for name in OPTIMIZERS:
        progress(f"smmf: {task.name}, {name}")
        results[name] = train(task, name, steps)
    adam_bytes, adam_time, _ = results["Adam"]
    return [
        [
            task.name,
            f"{n_params:,}",
            name,
            _fmt_bytes(b),
            f"**{b / adam_bytes:.4f}**",
            f"{1e3 * t:.3g}",
            f"**{t / adam_time:.2f}**",
            f"{loss:.3f}",
        ]
        for name, (b, t, loss) in results.items()
    ]


def run_resnet(repeat: int) -> tuple[list[list[str]], dict[str, float]]:
    """Rows of the ResNet-18-sized case, plus the SMMF/Adam ratios for the goal check."""
    shapes = resnet18_shapes()
    gen = torch.Generator().manual_seed(SEED)
    start = [0.05 * torch.randn(s, generator=gen) for s in shapes]
    grads = [torch.randn(s, generator=gen) for s in shapes]
    n_params = sum(t.numel() for t in start)
    opts: dict[str, torch.optim.Optimizer] = {}
    for name, factory in OPTIMIZERS.items():
        params = [torch.nn.Parameter(t.clone()) for t in start]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opts[name] = factory(params, -0.5)
        opts[name].step()  # warm-up, creates the state
    times: dict[str, list[float]] = {name: [] for name in opts}
    for i in range(repeat):
        progress(f"smmf: ResNet-18-sized, round {i + 1}/{repeat}")
        for name, opt in opts.items():
            t0 = time.perf_counter()
            opt.step()
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(t) for name, t in times.items()}
    sizes = {name: state_bytes(opt) for name, opt in opts.items()}
    rows = [
        [
            "ResNet-18-sized (random)",
            f"{n_params:,}",
            name,
            _fmt_bytes(sizes[name]),
            f"**{sizes[name] / sizes['Adam']:.4f}**",
            f"{1e3 * med[name]:.3g}",
            f"**{med[name] / med['Adam']:.2f}**",
            "-",
        ]
        for name in opts
    ]
    ratios = {
        "state": sizes["SMMF"] / sizes["Adam"],
        "step": med["SMMF"] / med["Adam"],
        "step_unfused": med["SMMF fused=False"] / med["Adam"],
    }
    return rows, ratios


HEADER = (
    "model",
    "parameters",
    "optimizer",
    "state MiB",
    "state / Adam",
    "step ms",
    "step / Adam",
    "final loss",
)


def report(rows: list[list[str]], ratios: dict[str, float], steps: int, repeat: int) -> str:
    """The markdown report."""
    from importlib.metadata import version

    info = machine_info() | {
        "torch": torch.__version__,
        "pytorch_optimizer": version("pytorch_optimizer"),
    }
    met_state = ratios["state"] < 0.05
    met_step = ratios["step"] < 2.0
    lines = [
        "# SMMF: optimizer state and step time against Adam, AdamW, Adafactor, CAME, SM3",
        "",
        "Generated by `python -m benchmarks.smmf`.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        "## State bytes and step time (CPU, 1 thread)",
        "",
        f"The digits and text models train {steps} steps from the same initial weights "
        "(digits: minibatches of 128, loss on all 1797; text: one batch of 32x32 characters); the "
        f"ResNet-18-sized case times {repeat} rounds of `step()` on fixed random gradients, "
        "the optimizers alternating. State: bytes of all tensors in `optimizer.state` "
        "(`tensorsim.optim.state_bytes`); step: median time of `optimizer.step()` alone. "
        "Ratios are to Adam (below 1: smaller or faster). SM3 from pytorch_optimizer keeps a "
        "dense momentum buffer even with `momentum=0`; CAME keeps a dense first moment. "
        "Setup in the module docstring of `benchmarks/smmf.py`.",
        "",
        markdown_table(HEADER, rows),
        "",
        "## Goal on the ResNet-18-sized model",
        "",
        f"- SMMF state < 5% of Adam's: {ratios['state']:.2%} — "
        + ("**met**" if met_state else "**not met**"),
        f"- SMMF step time < 2x Adam's: {ratios['step']:.2f}x — "
        + ("**met**" if met_step else "**not met**")
        + f" (without batching small parameters, `fused=False`: {ratios['step_unfused']:.2f}x)",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.smmf", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--steps", type=int, default=150, help="training steps (default 150)")
    parser.add_argument("--repeat", type=int, default=9, help="ResNet rounds (default 9)")
    parser.add_argument("--quick", action="store_true", help="few steps, a smoke run")
    parser.add_argument("--output", type=Path, default=None, help="write the report here")
    parser.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the report."""
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    steps, repeat = (5, 2) if args.quick else (args.steps, args.repeat)
    rows: list[list[str]] = []
    for task in make_tasks():
        rows += run_task(task, steps)
    resnet_rows, ratios = run_resnet(repeat)
    rows += resnet_rows
    output = args.output
    if output is None and not args.quick:
        output = RESULTS
    write_report(report(rows, ratios, steps, repeat), output)
    if args.json is not None:
        args.json.write_text(json.dumps(ratios), encoding="utf-8")


if __name__ == "__main__":
    main()
