"""Benchmark the radiance-field models on CPU: rays per second, memory, the covering lookup.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.fields [--repeat N] [--quick] [--output PATH]

On the procedural scene of ``drivers.fields`` (:mod:`problems.scenes`: rotated rods and
blobs), with the models of :mod:`tensorsim.nn.models.fields`: TensoRF-CP (density rank 24),
TensoRF-VM (rank 4 per axis, 64^2 planes) and Strivec (rank 4, two scales, local tensors on
the cells where the true density exceeds 0.5, dilated by one cell), all with the same shader
(64 wide), the report gives

- **training**: rays per second of one Adam step (forward, backward, update) on 384 rays x 48
  samples, with ``weight_threshold = 0`` so that every sample is shaded (a fixed, worst-case
  workload independent of the training state); the median of ``--repeat`` steps after a warm-up;
- **rendering**: rays per second of evaluation (no gradients, 4096-ray chunks), same setting;
- **memory**: bytes of the parameters and of the Adam state, and the bytes autograd saves for
  the backward pass of one training step (summed over ``saved_tensors_hooks``);
- **covering lookup vs dense evaluation** (Strivec): the density of N points through the
  lattice-cell lookup (8 candidate corners, top-K, two taps per line) against the all-pairs
  evaluation of every local tensor at every point (``method="dense"``), times and saved bytes;
- **interpolation vs grid_sample** (the peer: TensoRF's own line sampling): the CP density
  through our two-tap gather against ``torch.nn.functional.grid_sample`` on ``(1, R, G, 1)``
  lines, as in TensoRF's ``compute_densityfeature``; ratio = grid_sample / ours.

A full run writes ``benchmarks/results/fields.md``; ``--quick`` runs small sizes and prints.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from benchmarks._common import machine_info, markdown_table, progress, write_report

RESULTS = Path(__file__).resolve().parent / "results" / "fields.md"
SEED = 20240611


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _saved_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd saves while ``fn()`` builds its graph."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return total


def build_models(quick: bool) -> tuple[dict[str, torch.nn.Module], object, object]:
    """The three models at their benchmark sizes, the scene and its views."""
    from problems.scenes import SceneParams, make_scene, make_views
    from tensorsim.nn.fields import occupancy_from_density
    from tensorsim.nn.models.fields import ModelSpec, build_model

    size = 8 if quick else 16
    scene = make_scene(SceneParams(image_size=size, n_train=4, n_test=2, truth_samples=64))
    views = make_views(scene)
    occ = occupancy_from_density(scene.density, scene.box, 32, 0.5)
    shading = {"app_dim": 27, "shader_hidden": 64, "n_samples": 48}
    specs = {
        "TensoRF-CP r=24": ModelSpec("cp", 24, 2, (64,), (64,), **shading),
        "TensoRF-VM r=4": ModelSpec("vm", 4, 2, (64,), (64,), **shading),
        "Strivec r=4": ModelSpec(
            "strivec", 4, 2, (12, 8), (12, 8), spacings=(0.5, 0.25), **shading
        ),
    }
    models = {}
    for name, spec in specs.items():
        model = build_model(spec, scene.box, seed=SEED, occupancy=occ, resolution=spec.resolution)
        model.weight_threshold = 0.0
        models[name] = model
    return models, scene, views


def model_rows(models: dict, views: object, repeat: int, quick: bool) -> list[list[str]]:
    """Training and rendering throughput and memory of each model."""
    n_rays = 384
    g = torch.Generator().manual_seed(SEED)
    idx = torch.randint(0, views.train_rays.shape[0], (n_rays,), generator=g)
    rays, target = views.train_rays[idx], views.train_rgb[idx]
    render_rays = views.test_rays.repeat(1 if quick else 8, 1)
    rows = []
    for name, model in models.items():
        progress(f"fields: {name}")
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step() -> None:
            loss = torch.mean((model(rays) - target) ** 2)  # noqa: B023
            opt.zero_grad()  # noqa: B023
            loss.backward()
            opt.step()  # noqa: B023

        model.train()
        t_train = _median_time(step, repeat)
        saved = _saved_bytes(lambda: torch.mean((model(rays) - target) ** 2))  # noqa: B023
        model.eval()
        t_render = _median_time(lambda: model.render(render_rays), max(1, repeat // 5))  # noqa: B023
        counts = model.n_parameters()
        n_par = counts["field"] + counts["shader"]
        adam = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values())
        rows.append([
            name,
            f"{counts['field']:,}",
            f"{n_rays / t_train:,.0f}",
            f"{render_rays.shape[0] / t_render:,.0f}",
            f"{4 * n_par / 1e6:.2f}",
            f"{adam / 1e6:.2f}",
            f"{saved / 1e6:.1f}",
        ])  # fmt: skip
    return rows


def lookup_rows(models: dict, repeat: int, quick: bool) -> list[list[str]]:
    """Strivec density: covering lookup vs all-pairs dense evaluation."""
    field = models["Strivec r=4"].field
    rows = []
    g = torch.Generator().manual_seed(SEED + 1)
    for n in (1024, 4096) if quick else (1024, 8192, 32768):
        x = 1.6 * torch.rand(n, 3, generator=g) - 0.8
        with torch.no_grad():
            err = float((field.density(x) - field.density(x, method="dense")).abs().max())
        t_lookup = _median_time(lambda: field.density(x), repeat)  # noqa: B023
        t_dense = _median_time(lambda: field.density(x, method="dense"), max(1, repeat // 3))  # noqa: B023
        s_lookup = _saved_bytes(lambda: field.density(x))  # noqa: B023
        s_dense = _saved_bytes(lambda: field.density(x, method="dense"))  # noqa: B023
        rows.append([
            f"{n:,}",
            f"{1e3 * t_lookup:.1f}",
            f"{1e3 * t_dense:.1f}",
            f"{t_dense / t_lookup:.1f}",
            f"{s_lookup / 1e6:.1f}",
            f"{s_dense / 1e6:.1f}",
            f"{err:.1e}",
        ])  # fmt: skip
    return rows


def grid_sample_rows(models: dict, repeat: int, quick: bool) -> list[list[str]]:
    """CP density of N points: our gather interpolation vs TensoRF-style grid_sample."""
    field = models["TensoRF-CP r=24"].field

    def tensorf_density(x: torch.Tensor) -> torch.Tensor:
        u = field.box.normalize(x)
        out = None
        for m in range(3):
            line = field.density_lines[m].T[None, :, :, None]  # (1, R, G, 1), as TensoRF
            grid = torch.stack([torch.zeros_like(u[:, m]), u[:, m]], -1)[None, :, None, :]
            v = torch.nn.functional.grid_sample(line, grid, align_corners=True)[0, :, :, 0]
            out = v if out is None else out * v
        return out.sum(0)

    def backward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable:
        return lambda: fn(x).sum().backward()

    rows = []
    g = torch.Generator().manual_seed(SEED + 2)
    for n in (4096,) if quick else (4096, 65536):
        x = 2 * torch.rand(n, 3, generator=g) - 1
        with torch.no_grad():
            err = float((field.density(x) - tensorf_density(x)).abs().max())
            t_ours = _median_time(lambda: field.density(x), repeat)  # noqa: B023
            t_peer = _median_time(lambda: tensorf_density(x), repeat)  # noqa: B023
        b_ours = _median_time(backward(field.density, x), repeat)
        b_peer = _median_time(backward(tensorf_density, x), repeat)
        rows.append([
            f"{n:,}", f"{1e3 * t_ours:.2f}", f"{1e3 * t_peer:.2f}", f"{t_peer / t_ours:.2f}",
            f"{1e3 * b_ours:.2f}", f"{1e3 * b_peer:.2f}", f"{b_peer / b_ours:.2f}", f"{err:.1e}",
        ])  # fmt: skip
    return rows


def report(models: dict, main: list, lookup: list, peer: list, repeat: int) -> str:
    """The markdown report."""
    strivec = models["Strivec r=4"].field
    info = machine_info() | {
        "torch": torch.__version__,
        "load average (1, 5, 15 min) at the end": ", ".join(f"{v:.1f}" for v in os.getloadavg()),
    }
    return "\n".join([
        "# Radiance fields: TensoRF-CP, TensoRF-VM, Strivec on CPU",
        "",
        "Generated by `python -m benchmarks.fields`.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        "The machine is shared with other jobs: timings vary by up to 2-3x between runs of "
        "this benchmark (compare ratios within one table, not absolute numbers across runs).",
        "",
        "## Throughput and memory",
        "",
        f"Median of {repeat} training steps (384 rays x 48 samples, forward + backward + Adam) "
        "after a warm-up; rendering: evaluation in 4096-ray chunks. Every sample is shaded "
        "(`weight_threshold = 0`), a fixed worst case: in training the threshold skips the "
        "shader for empty space. Strivec: local tensors per scale "
        f"{strivec.n_tensors} (spacings 0.5, 0.25; lines 12, 8 nodes; K = 4). Saved = bytes "
        "autograd keeps for the backward pass of one step.",
        "",
        markdown_table(
            ("model", "field params", "train rays/s", "render rays/s", "params MB",
             "Adam state MB", "saved for backward MB"),
            main,
        ),  # fmt: skip
        "",
        "## Strivec: covering lookup vs dense (all-pairs) evaluation",
        "",
        "Density at N random points in [-0.8, 0.8]^3 (forward only). Lookup: 8 lattice "
        "corners from the node table, top-4, two taps per line. Dense: every local tensor at "
        "every point, then top-4 ([N, T, R] intermediates). Ratio = dense / lookup.",
        "",
        markdown_table(
            ("N", "lookup ms", "dense ms", "ratio", "lookup saved MB", "dense saved MB",
             "max difference"),
            lookup,
        ),  # fmt: skip
        "",
        "## Line interpolation: two-tap gather vs grid_sample (TensoRF's sampling)",
        "",
        "CP density (rank 24, 64-node lines) at N points: forward only (no gradients), and "
        "forward + backward (the training case). Ratio = grid_sample / ours (above 1: ours "
        "faster).",
        "",
        markdown_table(
            ("N", "ours ms", "grid_sample ms", "ratio", "ours fwd+bwd ms",
             "grid_sample fwd+bwd ms", "ratio fwd+bwd", "max difference"),
            peer,
        ),  # fmt: skip
        "",
    ])  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fields", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--repeat", type=int, default=10, help="timed repetitions (default 10)")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--output", type=Path, default=None, help="write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the report."""
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.set_flush_denormal(True)
    models, _, views = build_models(args.quick)
    main_rows = model_rows(models, views, args.repeat, args.quick)
    progress("fields: covering lookup vs dense")
    lookup = lookup_rows(models, args.repeat, args.quick)
    progress("fields: gather vs grid_sample")
    peer = grid_sample_rows(models, args.repeat, args.quick)
    output = args.output if args.output is not None or args.quick else RESULTS
    write_report(report(models, main_rows, lookup, peer, args.repeat), output)


if __name__ == "__main__":
    main()
