"""Benchmark this project's TFNO against neuraloperator's, same configuration, same inputs.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.tfno [--repeat N] [--quick] [--device cpu|cuda]
                                                [--output PATH]

Every case builds :func:`tensorsim.nn.models.fno.build_model` and ``neuralop.models.FNO`` with
the same configuration (modes, width, layers, factorization and rank; neuraloperator with
``implementation="factorized"``), checks that both have the same number of real parameters,
and times both on the same seeded input and target batch in this one process, the two models
alternating run by run:

- **forward**: ``model(x)`` under ``torch.no_grad()``;
- **forward+backward**: ``mse(model(x), y).backward()`` (gradients cleared each time).

A time is the median of ``--repeat`` runs after one warm-up call. **Peak memory** is the
growth of the resident set during one forward+backward after a warm-up, measured in a fresh
subprocess per model with glibc's dynamic mmap threshold switched off
(``MALLOC_MMAP_THRESHOLD_=65536``, so freed tensors go back to the system and the resident
set follows the live tensors) and the peak reset through ``/proc/self/clear_refs``; on CUDA
it is ``torch.cuda.max_memory_allocated`` above the memory held before the step.

A full CPU run writes ``benchmarks/results/tfno.md``; ``--quick`` runs a small case and only
prints.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks._common import machine_info, markdown_table, progress, write_report
from tensorsim.nn.models.fno import TFNOParams, build_model, count_parameters

RESULTS = Path(__file__).resolve().parent / "results" / "tfno.md"
SEED = 20231001


@dataclass(frozen=True)
class Case:
    """One configuration: spectral weight format and the sizes of model and batch."""

    factorization: str
    rank: float
    modes: int = 16
    width: int = 32
    layers: int = 4
    grid: int = 64
    batch: int = 8

    @property
    def label(self) -> str:
        """Row label of the case."""
        kind = (
            "FNO dense"
            if self.factorization == "dense"
            else (f"TFNO {self.factorization} {self.rank:g}")
        )
        return (
            f"{kind}, modes {self.modes}, width {self.width}, {self.layers} layers, "
            f"{self.grid}x{self.grid}, batch {self.batch}"
        )


CASES = (
    Case("dense", 1.0),
    Case("tucker", 0.1),
    Case("cp", 0.1),
    Case("tt", 0.1),
    Case("tucker", 0.05),
    Case("tucker", 0.1, grid=128, batch=4),
)
QUICK = (Case("tucker", 0.1, modes=8, width=8, layers=2, grid=32, batch=2),)


def make_model(lib: str, case: Case, device: str) -> torch.nn.Module:
    """The model of ``case`` from this project (``"ours"``) or neuraloperator."""
    if lib == "ours":
        params = TFNOParams(
            n_modes=(case.modes, case.modes),
            hidden_channels=case.width,
            n_layers=case.layers,
            factorization=case.factorization,
            rank=case.rank,
        )
        return build_model(params, device=device)
    from neuralop.models import FNO

    kwargs = {}
    if case.factorization != "dense":
        kwargs = {
            "factorization": case.factorization,
            "rank": case.rank,
            "implementation": "factorized",
        }
    model = FNO(
        n_modes=(case.modes, case.modes),
        in_channels=1,
        out_channels=1,
        hidden_channels=case.width,
        n_layers=case.layers,
        **kwargs,
    )
    return model.to(device)


def batch(case: Case, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The seeded input and target of a case."""
    gen = torch.Generator().manual_seed(SEED)
    shape = (case.batch, 1, case.grid, case.grid)
    return torch.randn(shape, generator=gen).to(device), torch.randn(shape, generator=gen).to(
        device
    )


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _forward(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(x)

    return run


def _forward_backward(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
) -> Callable[[], None]:
    def run() -> None:
        for p in model.parameters():
            p.grad = None
        torch.nn.functional.mse_loss(model(x), y).backward()

    return run


def median_times(
    runs: dict[str, Callable[[], None]], repeat: int, device: str
) -> dict[str, float]:
    """Median wall time of each callable, the callables alternating (one warm-up each)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():
        fn()
    for _ in range(repeat):
        for name, fn in runs.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def probe_memory(lib: str, case: Case, device: str) -> float:
    """Peak memory (MiB) of one forward+backward after a warm-up, in this process."""
    model = make_model(lib, case, device)
    x, y = batch(case, device)
    step = _forward_backward(model, x, y)
    step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    for p in model.parameters():
        p.grad = None
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset the peak resident set (VmHWM)
    before = _status_kib("VmRSS")
    step()
    return (_status_kib("VmHWM") - before) / 1024


def memory_in_subprocess(lib: str, case: Case, device: str) -> float:
    """:func:`probe_memory` in a fresh interpreter (see the module docstring)."""
    env = os.environ | {"MALLOC_MMAP_THRESHOLD_": "65536"}
    spec = json.dumps([lib, case.__dict__, device])
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.tfno", "--probe", spec],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return float(proc.stdout.strip().splitlines()[-1])


def _fmt_ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3g}"


def run_case(case: Case, repeat: int, device: str) -> list[str]:
    """One table row: parameters, times, memory and the ratios neuraloperator / ours."""
    torch.manual_seed(SEED)
    ours, theirs = make_model("ours", case, device), make_model("neuralop", case, device)
    n_ours, n_theirs = count_parameters(ours), count_parameters(theirs)
    x, y = batch(case, device)
    fwd = median_times({"ours": _forward(ours, x), "theirs": _forward(theirs, x)}, repeat, device)
    both = median_times(
        {"ours": _forward_backward(ours, x, y), "theirs": _forward_backward(theirs, x, y)},
        repeat,
        device,
    )
    mem = {lib: memory_in_subprocess(lib, case, device) for lib in ("ours", "neuralop")}
    return [
        case.label,
        f"{n_ours:,}",
        f"{n_theirs:,}",
        _fmt_ms(fwd["ours"]),
        _fmt_ms(fwd["theirs"]),
        f"**{fwd['theirs'] / fwd['ours']:.2f}**",
        _fmt_ms(both["ours"]),
        _fmt_ms(both["theirs"]),
        f"**{both['theirs'] / both['ours']:.2f}**",
        f"{mem['ours']:.1f}",
        f"{mem['neuralop']:.1f}",
        f"{mem['neuralop'] / mem['ours']:.2f}",
    ]


HEADER = (
    "case",
    "params ours",
    "params neuralop",
    "fwd ours ms",
    "fwd neuralop ms",
    "fwd ratio",
    "fwd+bwd ours ms",
    "fwd+bwd neuralop ms",
    "fwd+bwd ratio",
    "peak MiB ours",
    "peak MiB neuralop",
    "memory ratio",
)


def report(rows: list[list[str]], repeat: int, device: str) -> str:
    """The markdown report."""
    import neuralop

    info = machine_info() | {"torch": torch.__version__, "neuraloperator": neuralop.__version__}
    if device == "cuda":
        info["GPU"] = torch.cuda.get_device_name()
    lines = [
        "# TFNO: tensorsim vs neuraloperator",
        "",
        "Generated by `python -m benchmarks.tfno`"
        + (" --device cuda" if device == "cuda" else "")
        + ".",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        f"## Same configuration, same inputs ({device.upper()})",
        "",
        f"Median of {repeat} runs after one warm-up, the two models alternating. Ratios are "
        "neuraloperator / tensorsim: above 1 means tensorsim is faster or smaller. Parameters "
        "are real numbers (a complex weight counts twice). Peak memory: growth of the "
        "resident set during one forward+backward after a warm-up, each model in a fresh "
        "process (module docstring of `benchmarks/tfno.py`).",
        "",
        markdown_table(HEADER, rows),
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tfno", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--repeat", type=int, default=10, help="timed runs (default 10)")
    parser.add_argument("--quick", action="store_true", help="one small case, a smoke run")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--output", type=Path, default=None, help="write the report here")
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the report."""
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.probe is not None:
        lib, fields, device = json.loads(args.probe)
        print(probe_memory(lib, Case(**fields), device))
        return
    cases = QUICK if args.quick else CASES
    rows = []
    for case in cases:
        progress(f"tfno: {case.label}")
        rows.append(run_case(case, args.repeat, args.device))
    output = args.output
    if output is None and not args.quick and args.device == "cpu":
        output = RESULTS
    write_report(report(rows, args.repeat, args.device), output)


if __name__ == "__main__":
    main()
