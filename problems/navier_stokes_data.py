"""Navier-Stokes datasets for neural operators: generation in batches and the learning split.

A dataset (layout in :mod:`problems.navier_stokes`) is computed in batches of consecutive
sample indices (:class:`GenerateParams`): :func:`solve_batch` draws and solves one batch on
the chosen array backend and returns its stored fields, :func:`dataset_attrs` the root
attributes of the file. Sample ``s`` is seeded by ``(data.seed, s)`` and solved whole, so
the fields do not depend on the batch size or on how the batches are spread over ranks.

:class:`LearningDataParams` says which samples a model is trained and tested on;
:func:`load_split` reads them as model inputs and targets (:func:`model_fields`): the first
``n_train`` samples at the training resolution, the last ``n_test`` at the training and the
finest stored resolution, optionally normalized by their root mean square over the training
samples, with the forcing pattern ``f / A`` as a second input channel. The learning part
imports torch when called.

References
----------
Z. Li et al., "Fourier Neural Operator for Parametric Partial Differential Equations",
arXiv 2010.08895 (ICLR 2021). J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar,
"Multi-Grid Tensorized Fourier Neural Operator for High-Resolution PDEs", arXiv 2310.00120.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from problems.navier_stokes import (
    FORCING_FORMULA,
    SCHEME,
    DatasetParams,
    NavierStokesDataset,
    forcing_field,
    load_dataset,
    solve_samples,
    subsample,
    time_steps,
    variable_names,
)
from tensorsim._array_api import array_namespace, default_namespace, to_numpy
from tensorsim.config import ConfigError, Params, param

if TYPE_CHECKING:
    import torch

__all__ = [
    "DatasetFileParams",
    "GenerateParams",
    "LearningDataParams",
    "Split",
    "array_backend",
    "batches",
    "dataset_attrs",
    "dataset_summary",
    "describe_dataset",
    "describe_split",
    "load_split",
    "model_fields",
    "solve_batch",
    "test_data",
    "test_fields",
    "test_sets",
    "torch_device",
    "dataset_variables",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerateParams(Params):
    """How a dataset is computed (the data do not depend on it beyond round-off).

    Attributes
    ----------
    batch
        Samples solved together: one task of the executor, so also the unit of work spread
        over the MPI ranks.
    backend
        Array library of the solver: ``"numpy"``, ``"torch"`` or ``"cupy"`` (a GPU).
    device
        Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``), for the torch backend only
        (cupy uses its current device).
    """

    batch: int = param(8, "samples solved together (one task of the MPI executor)", ge=1)
    backend: Literal["numpy", "torch", "cupy"] = param("numpy", "array library of the solver")
    device: str = param("cpu", "torch device (cpu, cuda, cuda:1) of the torch backend")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.backend != "torch" and self.device != "cpu":
            raise ConfigError(
                f"config key 'device': only the torch backend takes a device (backend is "
                f"{self.backend!r}; cupy uses its current device), got {self.device!r}"
            )


def torch_device(name: str, key: str) -> torch.device:
    """The torch device ``name``; ``ConfigError`` naming ``key`` if it is unknown or absent."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"config key {key!r}: not a torch device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config key {key!r}: {name!r} requested, but CUDA is not available")
    return device


def array_backend(opts: GenerateParams) -> tuple[ModuleType, Any]:
    """The array namespace and device of ``opts.backend``."""
    if opts.backend == "numpy":
        return default_namespace(), None
    if opts.backend == "torch":
        import torch

        dev = torch_device(opts.device, "generate.device")
        return array_namespace(torch.zeros(1, device=dev)), dev
    import cupy

    return array_namespace(cupy.zeros(1)), None


def batches(samples: int, batch: int) -> list[tuple[int, ...]]:
    """The sample indices ``0 .. samples - 1`` in consecutive batches of ``batch``."""
    return [tuple(range(s, min(s + batch, samples))) for s in range(0, samples, batch)]


def solve_batch(
    data: DatasetParams, indices: Sequence[int], xp: ModuleType, device: Any
) -> dict[str, Any]:
    """Solve the samples ``indices``; return their stored fields and largest CFL number.

    Returns
    -------
    dict
        ``indices``, ``fields`` (variable name -> float32 NumPy array over the batch, for
        every stored resolution: ``input_N`` = ``w0``, ``output_N`` = ``w(T)``) and
        ``max_cfl``.
    """
    start = time.perf_counter()
    w0, solution = solve_samples(data, indices, seed=data.seed, xp=xp, device=device)
    fields = {}
    for n in data.resolutions:
        name_in, name_out, _, _ = variable_names(n)
        fields[name_in] = to_numpy(xp.astype(subsample(w0, n), xp.float32))
        fields[name_out] = to_numpy(xp.astype(subsample(solution.w, n), xp.float32))
    seconds = time.perf_counter() - start
    logger.info(
        "samples %d-%d of %d: %.3f s per sample, largest CFL number %.3f",
        indices[0],
        indices[-1],
        data.samples,
        seconds / len(indices),
        solution.max_cfl,
    )
    return {"indices": list(indices), "fields": fields, "max_cfl": solution.max_cfl}


def dataset_attrs(data: DatasetParams, largest_cfl: float) -> dict[str, Any]:
    """The root attributes of a dataset file (:data:`problems.navier_stokes.DATASET_ATTRS`)."""
    steps, dt = time_steps(data.t_end, data.dt)
    return {
        "viscosity": data.viscosity,
        "t_end": data.t_end,
        "dt": dt,
        "steps": steps,
        "forcing": FORCING_FORMULA,
        "forcing_amplitude": data.forcing,
        "solver_resolution": data.resolution,
        "resolutions": list(data.resolutions),
        "seed": data.seed,
        "alpha": data.alpha,
        "tau": data.tau,
        "scheme": SCHEME,
        "largest_cfl": largest_cfl,
    }


def describe_dataset(data: DatasetParams) -> str:
    """One line on a dataset: problem, time grid, samples, resolutions, seed."""
    steps, dt = time_steps(data.t_end, data.dt)
    return (
        f"{data.samples} samples: nu={data.viscosity:g}, T={data.t_end:g}, dt={dt:g} ({steps} "
        f"steps), forcing amplitude {data.forcing:g}, solved at {data.resolution}^2, stored at "
        f"{', '.join(map(str, data.resolutions))}, seed {data.seed}"
    )


def dataset_summary(data: DatasetParams, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``path``, ``samples``, ``steps``, ``dt`` and ``largest_cfl`` of a dataset just solved."""
    steps, dt = time_steps(data.t_end, data.dt)
    largest = max(r["max_cfl"] for r in results)
    return {"path": data.path, "samples": data.samples, "steps": steps, "dt": dt,
            "largest_cfl": largest}  # fmt: skip


def dataset_variables(
    data: DatasetParams,
) -> tuple[dict[str, tuple[np.ndarray, str]], list[tuple[str, tuple[str, str], str]]]:
    """The layout of a dataset file (one record per sample) for every stored resolution.

    Returns
    -------
    coords : dict
        ``x_N``, ``y_N`` -> (grid points ``k / N``, long name).
    fields : list
        ``(name, (x_N, y_N), long name)`` of ``input_N`` (``w0``) and ``output_N``
        (``w(T)``), stored as float32 (the ``fields`` of :func:`solve_batch`).
    """
    coords, fields = {}, []
    for n in data.resolutions:
        name_in, name_out, x, y = variable_names(n)
        grid = np.arange(n) / n
        coords[x] = (grid, f"grid point x on {n} x {n}")
        coords[y] = (grid, f"grid point y on {n} x {n}")
        fields += [(name_in, (x, y), "initial vorticity w0"),
                   (name_out, (x, y), f"vorticity w(T = {data.t_end:g})")]  # fmt: skip
    return coords, fields


# ---------------------------------------------------------------------------------------------
# the samples of a neural operator


@dataclass(frozen=True)
class DatasetFileParams(Params):
    """A dataset file (written by ``python -m drivers.navier_stokes generate``)."""

    path: str = param("runs/navier_stokes.nc", "the dataset file (written by generate)")


@dataclass(frozen=True)
class LearningDataParams(DatasetFileParams):
    """The samples a model is trained and tested on.

    Attributes
    ----------
    path
        The dataset (written by ``python -m drivers.navier_stokes generate``).
    n_train
        Training samples: the first ``n_train`` of the file.
    n_test
        Test samples: the last ``n_test`` of the file (disjoint from the training ones).
    resolution
        Training resolution, one of the stored ones; ``None``: the coarsest.
    normalize
        Divide inputs and outputs by their root mean square over the training samples.
    forcing
        Give the model the forcing pattern ``f / A`` as a second input channel, so that it
        maps ``(w0, f) -> w(T)``; the model then has 2 input channels (else 1).
    """

    n_train: int = param(1000, "training samples: the first n_train of the file", ge=1)
    n_test: int = param(200, "test samples: the last n_test of the file", ge=1)
    resolution: int | None = param(
        None, "training resolution (a stored one); none: the coarsest", ge=2
    )
    normalize: bool = param(True, "divide inputs and outputs by their training RMS")
    forcing: bool = param(True, "forcing pattern f / A as a second input channel")


def describe_split(data: LearningDataParams) -> str:
    """One line on a split: the model inputs and the training and test samples."""
    return (
        f"inputs w0{', f' * data.forcing}; {data.path}: first {data.n_train} samples to "
        f"train, last {data.n_test} to test"
    )


class Split(NamedTuple):
    """The training and test pairs of a run (:func:`model_fields`) and the normalization.

    Attributes
    ----------
    x_train, y_train
        Training inputs and targets at ``resolution``.
    tests
        Resolution -> test inputs and targets, at the training and the finest stored one.
    resolution
        The training resolution.
    input_scale, output_scale
        Model inputs are ``w0 / input_scale``, targets ``w(T) / output_scale``.
    attrs
        The dataset's root attributes.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    tests: dict[int, tuple[torch.Tensor, torch.Tensor]]
    resolution: int
    input_scale: float
    output_scale: float
    attrs: dict[str, Any]

    def run_attrs(self) -> dict[str, Any]:
        """What a run file records of its data: resolution, scales, viscosity, final time."""
        return {
            "train_resolution": self.resolution,
            "input_scale": self.input_scale,
            "output_scale": self.output_scale,
            "viscosity": float(self.attrs["viscosity"]),
            "t_end": float(self.attrs["t_end"]),
        }


def model_fields(
    data: NavierStokesDataset, scales: tuple[float, float], forcing: bool, device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs ``(samples, 1 + forcing, n, n)`` and targets ``(samples, 1, n, n)``.

    ``w0`` and ``w(T)`` are divided by the scales; the forcing channel is ``f / A`` (zero
    for an unforced dataset), the same for every sample.
    """
    import torch

    x = torch.from_numpy(data.inputs / np.float32(scales[0]))[:, None]
    y = torch.from_numpy(data.outputs / np.float32(scales[1]))[:, None]
    if forcing:
        amplitude = float(data.attrs["forcing_amplitude"])
        pattern = forcing_field(x.shape[-1], 1.0 if amplitude else 0.0)
        pattern = torch.from_numpy(pattern.astype(np.float32)).expand(x.shape[0], 1, -1, -1)
        x = torch.cat([x, pattern], dim=1)
    return x.to(device), y.to(device)


def test_data(path: str, n_test: int, resolution: int | None) -> NavierStokesDataset:
    """The last ``n_test`` samples at ``resolution`` (the finest when None), checked."""
    test = load_dataset(path, resolution, samples=slice(-n_test, None))
    if len(test.samples) < n_test:
        raise ConfigError(
            f"config key 'data.n_test': {n_test} test samples requested, but {path} holds "
            f"{len(test.samples)}"
        )
    return test


def test_sets(path: str, n_test: int, first: int | None = None) -> dict[int, NavierStokesDataset]:
    """The last ``n_test`` samples (or the ``first`` of them) at every stored resolution.

    Checked as by :func:`test_data`; the resolutions in increasing order.
    """
    finest = test_data(path, n_test, None)
    top, shown = max(finest.resolutions), slice(0, first)
    out = {}
    for n in sorted(finest.resolutions):
        test = finest if n == top else test_data(path, n_test, n)
        out[n] = test._replace(
            inputs=test.inputs[shown], outputs=test.outputs[shown], samples=test.samples[shown]
        )
    return out


def test_fields(
    path: str,
    n_test: int,
    scales: tuple[float, float],
    forcing: bool,
    device: Any = "cpu",
    first: int | None = None,
) -> dict[int, tuple[NavierStokesDataset, torch.Tensor, torch.Tensor]]:
    """Resolution -> test samples (:func:`test_sets`), model inputs and targets.

    The fields are those of :func:`model_fields`, with the normalization ``scales``.
    """
    sets = test_sets(path, n_test, first)
    return {n: (test, *model_fields(test, scales, forcing, device)) for n, test in sets.items()}


def load_split(data: LearningDataParams, channels: tuple[int, int], device: Any = "cpu") -> Split:
    """Read the training samples at the training resolution and the test samples.

    Parameters
    ----------
    data
        The split.
    channels
        The model's input and output channels (``model.in_channels``,
        ``model.out_channels``), checked against the fields.
    device
        Torch device of the tensors (checked as the configuration key ``device``).

    Raises
    ------
    ConfigError
        If the device is not available, or the channels, the resolution or the numbers of
        samples do not fit the dataset.
    FileNotFoundError, ValueError
        If the dataset is missing or malformed (:func:`problems.navier_stokes.load_dataset`).
    """
    torch_device(device, "device")
    if channels[0] != 1 + data.forcing:
        raise ConfigError(
            f"config key 'model.in_channels': expected {1 + data.forcing} (w0"
            f"{' and the forcing' if data.forcing else ''}: data.forcing = "
            f"{str(data.forcing).lower()}), got {channels[0]}"
        )
    if channels[1] != 1:
        raise ConfigError(f"config key 'model.out_channels': expected 1 (w(T)), got {channels[1]}")
    finest = test_data(data.path, data.n_test, None)
    resolution = min(finest.resolutions) if data.resolution is None else data.resolution
    if resolution not in finest.resolutions:
        raise ConfigError(
            f"config key 'data.resolution': {resolution} is not stored in {data.path} "
            f"(stored resolutions: {', '.join(map(str, finest.resolutions))})"
        )
    total = int(finest.samples[-1]) + 1
    if data.n_train + data.n_test > total:
        raise ConfigError(
            f"config keys 'data.n_train', 'data.n_test': {data.n_train} + {data.n_test} "
            f"samples requested, but {data.path} holds {total}"
        )
    train = load_dataset(data.path, resolution, samples=slice(0, data.n_train))
    scales = (1.0, 1.0)
    if data.normalize:
        scales = tuple(
            float(np.sqrt(np.mean(np.square(v, dtype=np.float64))))
            for v in (train.inputs, train.outputs)
        )
    x, y = model_fields(train, scales, data.forcing, device)
    tests = {}
    for n in sorted({resolution, max(finest.resolutions)}):
        test = finest if n == max(finest.resolutions) else test_data(data.path, data.n_test, n)
        tests[n] = model_fields(test, scales, data.forcing, device)
    return Split(x, y, tests, resolution, scales[0], scales[1], finest.attrs)
