"""Cost per record of the output writer: a 128 x 128 series over long runs.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.writer [--quick] [--records N] [--output PATH]

One run appends ``N`` records of a 128 x 128 float64 matrix (128 KiB, a correlation matrix
of 128 sites) plus a scalar series, and checkpoints a small state every
:data:`CHECKPOINT_EVERY` records, as a time-evolution driver does. The wall time of every
record (its append, plus its share of the checkpoint that follows it) is measured, and the
mean cost per record is reported in windows ending at 100, 1,000 and 10,000 records:

- **bulk**: the matrix as a bulk series (``define_series(..., bulk=True)``, set files of
  :mod:`tensorsim.io.bulk`, the default 16 MiB sets = 128 records);
- **rewrite**: the matrix as an ordinary series, which every checkpoint rewrites whole
  (the writer before bulk series); run only to :data:`REWRITE_RECORDS` records, since its
  cost per record grows with the run.

The flatness ratio is the cost per record of the last window over that of the first. A
full run writes ``benchmarks/results/writer.md``; ``--quick`` runs 1,000 records and only
prints. Files go to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks._common import machine_info, markdown_table, progress, write_report
from tensorsim.io import Writer, open_run

#: Sites of the matrix series (entries per record: SITES**2 float64).
SITES = 128

#: Records between checkpoints.
CHECKPOINT_EVERY = 10

#: Window ends at which the mean cost per record is reported.
WINDOWS = (100, 1_000, 10_000)

#: Width of each window (the records before its end).
WINDOW = 100

#: Records of the rewrite layout (its total cost grows quadratically).
REWRITE_RECORDS = 1_000

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path, records: int, *, bulk: bool) -> np.ndarray:
    """Write ``records`` records; return the wall time of each (checkpoint included)."""
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((SITES, SITES))
    state = {"nodes": {0: rng.standard_normal((16, 16, 2))}}
    seconds = np.empty(records)
    w = Writer(path, record_dim="time")
    w.set_coordinate("site_i", np.arange(SITES))
    w.set_coordinate("site_j", np.arange(SITES))
    w.define_series("energy")
    w.define_series("corr", ("site_i", "site_j"), bulk=bulk)
    for k in range(records):
        start = time.perf_counter()
        w.append(0.01 * k, energy=float(k), corr=matrix + k)
        if (k + 1) % CHECKPOINT_EVERY == 0:
            w.checkpoint(state, attrs={"step": k + 1})
        seconds[k] = time.perf_counter() - start
        if (k + 1) % 1000 == 0:
            progress(f"  {'bulk' if bulk else 'rewrite'}: {k + 1} records")
    w.close()
    ds, _ = open_run(path)  # the run reads back whole
    if ds.sizes["time"] != records or float(ds["corr"][-1, 0, 0]) != matrix[0, 0] + records - 1:
        raise RuntimeError(f"{path} does not read back what was written")
    return seconds


def windows(seconds: np.ndarray) -> list[tuple[int, float]]:
    """``(end, mean ms per record over the WINDOW records before end)`` for each window."""
    return [
        (end, 1e3 * float(seconds[end - WINDOW : end].mean()))
        for end in WINDOWS
        if end <= seconds.size
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Run both layouts and report the cost per record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 records, print only")
    parser.add_argument("--records", type=int, default=None, help="records of the bulk run")
    parser.add_argument("--output", type=Path, default=None, help="where to write the report")
    args = parser.parse_args(argv)
    records = args.records or (1_000 if args.quick else max(WINDOWS))
    output = args.output
    if output is None and not args.quick and args.records is None:
        output = ROOT / "benchmarks" / "results" / "writer.md"

    rows, ratios = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout, n in (("bulk", records), ("rewrite", min(records, REWRITE_RECORDS))):
            progress(f"{layout}: {n} records of {SITES} x {SITES}")
            total = time.perf_counter()
            seconds = run(Path(tmp) / f"{layout}.nc", n, bulk=layout == "bulk")
            total = time.perf_counter() - total
            found = windows(seconds)
            ratios[layout] = found[-1][1] / found[0][1]
            for end, ms in found:
                rows.append([layout, f"{end:,}", f"{ms:.2f}", f"{found[-1][1] / ms:.2f}"])
            rows.append([layout, f"total {n:,}", f"{1e3 * total / n:.2f}", ""])

    machine = machine_info()
    report = "\n".join(
        [
            "# Output writer: cost per record of a 128 x 128 series",
            "",
            f"`python -m benchmarks.writer{' --quick' if args.quick else ''}`: "
            f"{SITES} x {SITES} float64 per record (128 KiB) plus a scalar series, a "
            f"checkpoint every {CHECKPOINT_EVERY} records; mean wall time per record (append "
            f"plus its share of the checkpoints) over the {WINDOW} records before each mark.",
            "",
            markdown_table(
                ["layout", "records", "ms per record", "last window / this"],
                rows,
            ),
            "",
            f"Flatness (cost per record at the last mark over the first): bulk "
            f"{ratios['bulk']:.2f}x, rewrite {ratios['rewrite']:.2f}x.",
            "",
            "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
            "",
        ]
    )
    write_report(report, output)


if __name__ == "__main__":
    main(sys.argv[1:])
