"""Benchmark MIGS's factorized Gaussians against per-identity storage, and the torch splatter.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.migs [--repeat N] [--quick] [--output PATH]

Three tables, everything on the CPU in this one process:

- **render throughput** of :func:`tensorsim.nn.splat.render_3d` (dense: every pixel sees
  every Gaussian): forward and forward+backward, in pixels/s and Gaussian-pixel pairs/s;
- **rebuild and training-step throughput**: one identity's Gaussians from its factor row
  (:meth:`~tensorsim.nn.gaussians.MultiIdentityGaussians.identity_tensor`) in Gaussians/s,
  and one training step (render + backward + Adam over 8 images of the
  :mod:`problems.gaussian_identities` default problem) for per-identity, CP and Tucker;
- **parameter memory**: stored float32 bytes of the identities x Gaussians x parameters
  tensor, per-identity vs CP (ranks 16 and 100, the released MIGS configs use 100) vs
  Tucker, from the module's own parameter count, at toy size and at MIGS-like sizes
  (``M = 59``: 3DGS with degree-3 spherical harmonics).

No peer is timed: the reference CUDA rasterizers (3DGS, gsplat) need a GPU, and the
per-identity model is the baseline MIGS itself compares with. A time is the best of
``--repeat`` runs after one warm-up call. A full run writes ``benchmarks/results/migs.md``;
``--quick`` runs smaller cases and only prints.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks._common import best_time, machine_info, markdown_table, progress, write_report

RESULTS = Path(__file__).resolve().parent / "results" / "migs.md"


def _render_rows(repeat: int, quick: bool) -> list[list[str]]:
    import torch

    from tensorsim.nn.gaussians import activate
    from tensorsim.nn.splat import look_at, render_3d

    cases = [(64, 32), (256, 32)] if quick else [(64, 32), (256, 32), (256, 64), (1024, 64)]
    rows = []
    for n, size in cases:
        gen = torch.Generator().manual_seed(0)
        raw = torch.randn(n, 14, dtype=torch.float32, generator=gen) * 0.3
        raw[:, 3:6] -= 2.3
        cam = look_at(
            torch.tensor([0.0, 0.0, -4.0]), torch.zeros(3), torch.tensor([0.0, -1.0, 0.0]),
            focal=size * 1.1, width=size, height=size,
        )  # fmt: skip
        x = raw.clone().requires_grad_()

        def forward(x=x, cam=cam) -> torch.Tensor:
            with torch.no_grad():
                g = activate(x)
                return render_3d(g.means, g.covariances(), g.colors, g.opacities, cam,
                                 validate=False)  # fmt: skip

        def backward(x=x, cam=cam) -> None:
            x.grad = None
            g = activate(x)
            img = render_3d(g.means, g.covariances(), g.colors, g.opacities, cam, validate=False)
            img.square().mean().backward()

        t_f, _ = best_time(forward, repeat)
        t_b, _ = best_time(backward, repeat)
        pix = size * size
        rows.append(
            [
                str(n), f"{size} x {size}",
                f"{t_f * 1e3:.2f}", f"{pix / t_f / 1e3:.0f}", f"{n * pix / t_f / 1e6:.1f}",
                f"{t_b * 1e3:.2f}", f"{pix / t_b / 1e3:.0f}", f"{n * pix / t_b / 1e6:.1f}",
            ]
        )  # fmt: skip
        progress(f"render {n} Gaussians at {size}^2: {t_f * 1e3:.2f} / {t_b * 1e3:.2f} ms")
    return rows


def _model_rows(repeat: int, quick: bool) -> list[list[str]]:
    import torch

    from problems.gaussian_identities import (
        GaussianIdentitiesParams,
        camera,
        initial_params,
        make_problem,
        render,
    )
    from tensorsim.nn.gaussians import MultiIdentityGaussians

    p = GaussianIdentitiesParams()
    problem = make_problem(p)
    cams = [camera(problem, v) for v in range(problem.views.shape[0])]
    init = torch.as_tensor(initial_params(problem, np.random.default_rng(0)))
    with torch.no_grad():
        targets = [
            render(problem, problem.truth[i], po, v, cam=cams[v]) for i, po, v in problem.train[:8]
        ]
    rows = []
    specs = [("dense", None), ("cp", 4), ("cp", 16), ("tucker", (4, 12, 10))]
    for form, rank in specs:
        model = MultiIdentityGaussians(p.n_identities, p.n_gaussians, form=form, rank=rank,
                                       init=init)  # fmt: skip
        opt = torch.optim.Adam(model.param_groups(), eps=1e-15)

        def rebuild(model=model) -> None:
            with torch.no_grad():
                for i in range(p.n_identities):
                    model.identity_tensor(i)

        def step(model=model, opt=opt) -> None:
            opt.zero_grad(set_to_none=True)
            loss = sum(
                torch.mean(
                    (render(problem, model.identity_tensor(int(i)), po, v, cam=cams[v]) - t) ** 2
                )
                for (i, po, v), t in zip(problem.train[:8], targets, strict=True)
            )
            loss.backward()
            opt.step()

        t_r, _ = best_time(rebuild, repeat)
        t_s, _ = best_time(step, max(1, repeat // 3) if not quick else 1)
        gauss_per_s = p.n_identities * p.n_gaussians / t_r
        label = "per-identity" if form == "dense" else f"{form} {rank}"
        rows.append(
            [
                label, str(model.count()), f"{t_r / p.n_identities * 1e6:.1f}",
                f"{gauss_per_s / 1e6:.2f}", f"{t_s * 1e3:.0f}",
                f"{8 * p.image_size**2 / t_s / 1e3:.1f}",
            ]
        )  # fmt: skip
        progress(f"{label}: rebuild {t_r * 1e3:.2f} ms, step {t_s * 1e3:.0f} ms")
    return rows


def _memory_rows() -> list[list[str]]:
    import torch

    from tensorsim.nn.gaussians import MultiIdentityGaussians

    rows = []
    sizes = [(12, 64, 14), (8, 50_000, 59), (100, 50_000, 59)]
    for n_i, n_g, m in sizes:
        blocks = {"xyz": 3, "scaling": 3, "rotation": 4, "color": m - 11, "opacity": 1}
        dense = n_i * n_g * m
        counts = {"per-identity": dense}
        for r in (16, 100):
            counts[f"CP {r}"] = r * (n_i + n_g + m)
        counts["Tucker (4, 100, 14)"] = 4 * 100 * 14 + n_i * 4 + n_g * 100 + m * 14
        if n_g <= 64:  # check the formulas against the module's own count at toy size
            for r in (16, 100):
                mod = MultiIdentityGaussians(n_i, n_g, form="cp", rank=r, blocks=blocks,
                                             dtype=torch.float32)  # fmt: skip
                assert mod.count() == counts[f"CP {r}"]
        row = [f"{n_i} x {n_g} x {m}"]
        for name in ("per-identity", "CP 16", "CP 100", "Tucker (4, 100, 14)"):
            c = counts[name]
            row.append(f"{c * 4 / 1e6:.3f} MB ({dense / c:.1f}x)" if name != "per-identity"
                       else f"{c * 4 / 1e6:.3f} MB")  # fmt: skip
        per_new = [f"{n_g * m}", "16", "100", "4"]
        row.append(" / ".join(per_new))
        rows.append(row)
    return rows


def report(render_rows, model_rows, memory_rows, repeat: int) -> str:
    """The markdown report."""
    import torch

    info = machine_info() | {"torch": torch.__version__}
    lines = ["# MIGS: factorized multi-identity Gaussians vs per-identity storage", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [f"- best of {repeat} runs after one warm-up; float32 renders, float64 models", ""]
    lines += ["## Render throughput (`render_3d`, dense, CPU)", ""]
    lines.append(
        markdown_table(
            [
                "Gaussians",
                "image",
                "fwd ms",
                "fwd kpix/s",
                "fwd M(G*pix)/s",
                "fwd+bwd ms",
                "fwd+bwd kpix/s",
                "fwd+bwd M(G*pix)/s",
            ],
            render_rows,
        )  # fmt: skip
    )
    lines += ["", "## Rebuild and training step (12 identities x 64 Gaussians, 32 x 32)", ""]
    lines.append(
        markdown_table(
            [
                "model",
                "parameters",
                "rebuild us / identity",
                "rebuild MGaussians/s",
                "step ms (8 images)",
                "step kpix/s",
            ],
            model_rows,
        )  # fmt: skip
    )
    lines += ["", "## Parameter memory (float32) and numbers one new identity adds", ""]
    lines.append(
        markdown_table(
            [
                "identities x Gaussians x params",
                "per-identity",
                "CP 16 (ratio)",
                "CP 100 (ratio)",
                "Tucker (4, 100, 14) (ratio)",
                "new identity: per-id / CP16 / CP100 / Tucker",
            ],
            memory_rows,
        )  # fmt: skip
    )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.migs", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--quick", action="store_true", help="small cases, print only")
    parser.add_argument("--output", type=Path, default=None, help="write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print (and, for a full run, write) the report."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    args = parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    rows = (_render_rows(repeat, args.quick), _model_rows(repeat, args.quick), _memory_rows())
    output = args.output if args.output is not None else (None if args.quick else RESULTS)
    write_report(report(*rows, repeat), output)


if __name__ == "__main__":
    main()
