r"""Time evolution of a quantum spin chain on a tree tensor network by a BUG integrator.

The default run is Section 5.1 of arXiv 2412.00858: the long-range Ising chain of 16 sites
on a balanced binary tree, T = 1, h = 0.01, absolute truncation tolerance 1e-8, ranks
2..40, parallel BUG, from all spins up, compared with exact diagonalization::

    mpirun -n 4 python -m drivers.spin_chain
    python -m drivers.spin_chain --set model.model=tfim --set model.sites=32 \\
        --set solver.integrator=augmented_bug --set output.path=runs/tfim.nc
    python -m drivers.spin_chain --set solver.substep=rk4 --set time.h=0.005
    python -m drivers.spin_chain --restart runs/spin_chain.nc     # continue a stopped run
    python -m drivers.spin_chain plot runs/spin_chain.nc          # PNG plots next to the file

The tables: ``model`` (:class:`problems.spin_chain.SpinChainParams`), ``solver`` (the
integrator, truncation, local solver and initial rank, :class:`solvers.bug.BUGParams`),
``time`` (``h``, ``t_end`` and the blow-up bound ``max_growth`` on the squared norm, which
only truncation changes in this unitary flow; :class:`solvers.evolution.EvolutionParams`)
and ``output`` (file, cadences, and ``reference``: the exact solution for up to 16 sites).

The independent local problems of each parallel-BUG step are spread over the MPI ranks;
rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``) with
``mz`` (time x site), ``mz_mean``, ``zz`` (time x bond: ``<Z_i Z_j>`` of the lattice's
nearest neighbours, the pairs in ``bond_sites``), ``norm``,
``energy``, ``entropy`` (time x edge: the von Neumann entropy of every edge's cut, in nats),
``corr_zz``/``corr_xx``/``corr_yy`` (time x site_i x site_j, those listed in
``output.correlations``), ``max_rank``, ``ranks`` (time x edge), ``trunc_error``, ``eta``,
``normal``, ``rejected``, ``wall_time``, and, for up to 16 sites, the exact ``mz_exact`` and
``zz_exact`` with the errors ``error_mz_site`` (max over sites), ``error_zz`` (max over
bonds), ``error_entropy`` (max over edges) and ``error_corr_*``, the checks that count;
``mz_mean_exact`` and ``error_mz`` compare the mean, which the XXZ chain conserves. The
state is checkpointed every ``output.checkpoint_every`` steps.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.spin_chain import plots
from drivers._base import Layout, Var
from drivers._cli import Driver
from drivers._evolution import STEP_SERIES, Evolution, EvolutionOutput, Setup
from problems.spin_chain import (
    MAX_EXACT_SITES,
    PAULIS,
    SpinChainParams,
    build_tree,
    exact_dynamics,
    hamiltonian,
    initial_vectors,
    lattice_bonds,
    lattice_shape,
    magnetization_operator,
    neighbour_zz,
)
from solvers.bug import BUGParams, LinearTreeRHS, StepInfo, make_stepper
from solvers.evolution import EvolutionParams, record_steps
from tensorsim._array_api import to_numpy
from tensorsim.config import ConfigError, Params, param
from tensorsim.parallel import Executor
from tensorsim.ttn import (
    TTN,
    correlation_matrix,
    entanglement_entropies,
    expectation,
    local_expectations,
)
from tensorsim.ttn.operator import to_ttno

__all__ = ["SpinChain", "SpinChainRun", "main"]

logger = logging.getLogger("drivers.spin_chain")


@dataclass(frozen=True)
class SpinChainOutput(EvolutionOutput):
    """Output file, cadences, the exact reference and the correlation matrices to write."""

    correlations: tuple[str, ...] = param(
        (),
        "two-point correlation matrices to write, e.g. ['zz', 'xx']: corr_zz, corr_xx "
        "(time x site_i x site_j)",
        choices=tuple(f"{p}{p}" for p in PAULIS),
    )


@dataclass(frozen=True)
class SpinChainRun(Params):
    """Configuration of ``python -m drivers.spin_chain``."""

    model: SpinChainParams = param(SpinChainParams(), "the spin chain")
    solver: BUGParams = param(BUGParams(), "BUG integrator, truncation and local solver")
    time: EvolutionParams = param(
        EvolutionParams(h=0.01, t_end=1.0, max_growth=1e-3),
        "step, final time and the blow-up bound on norm^2",
    )
    output: SpinChainOutput = param(
        SpinChainOutput("runs/spin_chain.nc", checkpoint_every=10),
        "output file, cadences, the exact reference (up to 16 sites) and correlations",
    )


def _has_exact(cfg: SpinChainRun) -> bool:
    return cfg.output.reference and cfg.model.sites <= MAX_EXACT_SITES


class SpinChain(Evolution):
    """``i dY/dt = H Y`` from a product state, against exact diagonalization."""

    config = SpinChainRun
    info_series = (*Evolution.info_series, "wall_parallel", "wall_serial")

    def build(self, cfg: SpinChainRun, executor: Executor) -> Setup:
        """The chain's tree and Hamiltonian, ``rhs = -i H``, the initial product state."""
        params = cfg.model
        if cfg.solver.conserve:
            raise ConfigError(
                "config key 'solver.conserve': the spin chain has no conserved product "
                "functional (its flow is unitary: time.max_growth bounds the norm)"
            )
        h, n_steps = cfg.time.grid(table="time")
        tree = build_tree(params)
        ttno = to_ttno(hamiltonian(params), tree)
        if not ttno.hermitian:
            raise ValueError("model: the Hamiltonian is not Hermitian; i dY/dt = H Y needs one")
        rhs = LinearTreeRHS(ttno, factor=-1j)
        return Setup(
            tree=tree,
            rhs=rhs,
            state=cfg.solver.initial_state(tree, initial_vectors(params), dtype=np.complex128),
            stepper=make_stepper(cfg.solver, rhs, executor=executor),
            monitor=lambda y: y.norm() ** 2,
            monitored="norm^2",
            h=h,
            n_steps=n_steps,
            extra={"zz": [to_ttno(o, tree, check_hermitian=False) for o in neighbour_zz(params)]},
        )

    def layout(self, cfg: SpinChainRun, setup: Setup) -> Layout:
        """Sites and edges; magnetization, norm, energy, ranks, step data, exact reference."""
        series = [
            Var("mz", ("site",), long_name="<Z_k> of the normalized state"),
            Var("mz_mean", long_name="mean magnetization (1/d) sum_k <Z_k>"),
            Var("zz", ("bond",), long_name="<Z_i Z_j> of neighbours, normalized state"),
            Var("norm", long_name="norm of the state"),
            Var("energy", long_name="<H> of the normalized state"),
            Var("entropy", ("edge",), long_name="von Neumann entropy (nats) of the edge's cut"),
            *[
                Var(
                    f"corr_{name}",
                    ("site_i", "site_j"),
                    long_name=f"<{name[0].upper()}_i {name[1].upper()}_j> of the normalized state",
                )
                for name in cfg.output.correlations
            ],
            *STEP_SERIES,
            Var("wall_parallel", units="s", long_name="time in the parallel part"),
            Var("wall_serial", units="s", long_name="time in the serial glue"),
        ]
        if _has_exact(cfg):
            series += [
                Var("mz_exact", ("site",), long_name="exact <Z_k>"),
                Var("zz_exact", ("bond",), long_name="exact <Z_i Z_j> of neighbours"),
                Var("mz_mean_exact", long_name="exact mean magnetization"),
                Var("error_mz_site", long_name="max over sites of |<Z_k> - exact|"),
                Var("error_zz", long_name="max over bonds of |<Z_i Z_j> - exact|"),
                Var("error_mz", long_name="|mz_mean - mz_mean_exact| (conserved by some models)"),
                Var("error_entropy", long_name="max over edges of |entropy - exact|"),
                *[
                    Var(f"error_corr_{name}", long_name=f"max over i, j of |corr_{name} - exact|")
                    for name in cfg.output.correlations
                ],
            ]
        tree = setup.tree
        bonds = lattice_bonds(cfg.model)
        lx, ly = lattice_shape(cfg.model)
        sites = np.arange(tree.n_sites)
        return Layout(
            "time",
            series,
            variables=[
                (Var("bond_sites", ("bond", "pair"), dtype="int64"), np.asarray(bonds)),
                (Var("site_x", ("site",), dtype="int64"), sites // ly),
                (Var("site_y", ("site",), dtype="int64"), sites % ly),
            ],
            dims={"pair": 2},
            coords={
                "site": (np.arange(tree.n_sites), "site of the chain"),
                "bond": (np.arange(len(bonds)), "pair of neighbours (bond_sites)"),
                "edge": (np.asarray(tree.edges), "tree edge (id of its child node)"),
                "site_i": (np.arange(tree.n_sites), "first site of a correlation"),
                "site_j": (np.arange(tree.n_sites), "second site of a correlation"),
            },
            attrs={
                "model": cfg.model.model,
                "lattice": cfg.model.lattice,
                "lx": lx,
                "ly": ly,
                "integrator": cfg.solver.integrator,
            },
        )

    def prepare(self, cfg: SpinChainRun, setup: Setup, first: int) -> dict[int, dict[str, Any]]:
        """Step -> exact ``mz``, ``zz``, ``entropy`` and correlation matrices (<= 16 sites)."""
        if not _has_exact(cfg):
            return {}
        steps = record_steps(setup.n_steps, cfg.output.every)
        start = time.perf_counter()
        tree = setup.tree
        exact = exact_dynamics(
            cfg.model,
            np.asarray(steps, dtype=float) * setup.h,
            cuts=[tree.sites_below[e] for e in tree.edges],
            correlations=cfg.output.correlations,
        )
        logger.info(
            "exact reference for %d times in %.1f s", len(steps), time.perf_counter() - start
        )
        return {
            step: {
                "mz": exact.mz[n],
                "zz": exact.zz[n],
                "entropy": exact.entropy[n],
                **{f"corr_{name}": exact.corr[name][n] for name in cfg.output.correlations},
            }
            for n, step in enumerate(steps)
        }

    def observe(
        self, cfg: SpinChainRun, setup: Setup, y: TTN, step: int, info: StepInfo | None
    ) -> dict[str, Any]:
        """Magnetizations, neighbour ``ZZ``, norm, energy, entropies, correlations, errors."""
        mz = to_numpy(local_expectations(y, magnetization_operator()))
        zz = np.array([expectation(y, o).real for o in setup.extra["zz"]])
        entropies = entanglement_entropies(y)
        values: dict[str, Any] = {
            "mz": mz,
            "mz_mean": float(mz.mean()),
            "zz": zz,
            "norm": math.sqrt(y.norm() ** 2),
            "energy": expectation(y, setup.rhs.op).real,
            "entropy": np.array([entropies[e] for e in setup.tree.edges]),
        }
        for name in cfg.output.correlations:
            values[f"corr_{name}"] = to_numpy(correlation_matrix(y, PAULIS[name[0]]))
        exact = setup.reference.get(step)
        if exact is not None:
            mz_exact, zz_exact = exact["mz"], exact["zz"]
            values.update(
                mz_exact=mz_exact,
                zz_exact=zz_exact,
                mz_mean_exact=float(mz_exact.mean()),
                error_mz_site=float(np.max(np.abs(mz - mz_exact))),
                error_zz=float(np.max(np.abs(zz - zz_exact))),
                error_mz=abs(float(mz.mean()) - float(mz_exact.mean())),
                error_entropy=float(np.max(np.abs(values["entropy"] - exact["entropy"]))),
            )
            for name in cfg.output.correlations:
                key = f"corr_{name}"
                values[f"error_{key}"] = float(np.max(np.abs(values[key] - exact[key])))
            if info is not None and step % cfg.output.log_every == 0:
                logger.info(
                    "step %d: max error per site %.1e, of neighbour <Z_i Z_j> %.1e",
                    step,
                    values["error_mz_site"],
                    values["error_zz"],
                )
        return values

    def describe(self, cfg: SpinChainRun, n_ranks: int) -> str:
        """Model, sites, tree, integrator, time grid."""
        m, s, t = cfg.model, cfg.solver, cfg.time
        return (
            f"{m.model}, {m.sites} sites, {m.tree} tree, {s.integrator} ({s.substep}), "
            f"h={t.h}, T={t.t_end} on {n_ranks} rank(s)"
        )

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """Steps, wall time, largest rank, the file."""
        return (
            f"{summary['steps']} steps in {summary['wall_time']:.1f} s, max rank "
            f"{summary['max_rank']}; wrote {summary['path']}"
        )

    plots = staticmethod(plots)


main = Driver("spin_chain", __doc__, SpinChain()).main

if __name__ == "__main__":
    main()
