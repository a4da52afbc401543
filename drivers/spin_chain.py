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
    python -m drivers.spin_chain ground --set model.model=xxz --set model.sites=32 \\
        --set model.tree=caterpillar --set output.correlations='["zz"]'   # DMRG ground state
    python -m drivers.spin_chain ground --set model.model=j1j2 --set model.sites=16 \\
        --set model.tree=caterpillar          # Majumdar-Ghosh point j2 = 0.5: E = -24, dimers

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

``ground`` runs two-site DMRG (:func:`solvers.bug.dmrg`) from a random state on the same
tree and writes, one record per sweep (the last is the result), ``energy``, ``variance``,
``discarded``, ``max_rank``, ``ranks``, ``mz``, ``entropy`` and the correlation matrices
asked for; for up to 16 sites also ``energy_exact``, ``error_energy`` (relative) and
``error_corr_*`` against exact diagonalization. The final state is stored as the file's
checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.spin_chain import ground_plots, plots
from drivers._base import Experiment, Layout, Var, check_output
from drivers._cli import Driver
from drivers._evolution import STEP_SERIES, Evolution, EvolutionOutput, Setup
from drivers._layout import new_writer
from problems.spin_chain import (
    CORRELATIONS,
    MAX_EXACT_SITES,
    PAULIS,
    SpinChainParams,
    build_tree,
    exact_dynamics,
    exact_ground_state,
    hamiltonian,
    hamiltonian_terms,
    initial_vectors,
    lattice_bonds,
    lattice_shape,
    load_state,
    magnetization_operator,
    neighbour_zz,
    pauli_correlations,
)
from solvers.bug import BUGParams, LinearTreeRHS, StepInfo, dmrg, make_stepper
from solvers.bug.time_dependent import TimeDependentHamiltonian, midpoint_stepper
from solvers.evolution import EvolutionParams, record_steps
from tensorsim._array_api import to_numpy
from tensorsim.config import ConfigError, Params, param
from tensorsim.linalg import Truncation
from tensorsim.parallel import Executor
from tensorsim.ttn import (
    TTN,
    correlation_matrix,
    entanglement_entropies,
    expectation,
    local_expectations,
    random_ttn,
)
from tensorsim.ttn.operator import to_ttno

__all__ = ["GroundRun", "SpinChain", "SpinChainGround", "SpinChainRun", "main"]

logger = logging.getLogger("drivers.spin_chain")


@dataclass(frozen=True)
class SpinChainOutput(EvolutionOutput):
    """Output file, cadences, the exact reference and the correlation matrices to write."""

    correlations: tuple[str, ...] = param(
        (),
        "two-point correlation matrices to write, e.g. ['zz', 'xx']: corr_zz, corr_xx "
        "(time x site_i x site_j)",
        choices=CORRELATIONS,
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


def _entanglement_vars(correlations: tuple[str, ...]) -> list[Var]:
    """``entropy`` (edge) and one ``corr_<name>`` (site_i x site_j) per requested name."""
    return [
        Var("entropy", ("edge",), long_name="von Neumann entropy (nats) of the edge's cut"),
        *[
            Var(
                f"corr_{name}",
                ("site_i", "site_j"),
                long_name=f"<{name[0].upper()}_i {name[1].upper()}_j> of the normalized state",
                bulk=True,
            )
            for name in correlations
        ],
    ]


def _correlation_error_vars(correlations: tuple[str, ...]) -> list[Var]:
    return [
        Var(f"error_corr_{name}", long_name=f"max over i, j of |corr_{name} - exact|")
        for name in correlations
    ]


def _entanglement(y: TTN, tree: Any, correlations: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Values of :func:`_entanglement_vars` for the state ``y``."""
    entropies = entanglement_entropies(y)
    values = {"entropy": np.array([entropies[e] for e in tree.edges])}
    for name in correlations:
        values[f"corr_{name}"] = to_numpy(correlation_matrix(y, PAULIS[name[0]]))
    return values


def _correlation_errors(
    values: Mapping[str, Any], exact: Mapping[str, np.ndarray], correlations: tuple[str, ...]
) -> dict[str, float]:
    """``error_corr_<name>``: the largest deviation of each matrix from the exact one."""
    return {
        f"error_corr_{name}": float(np.max(np.abs(values[f"corr_{name}"] - exact[name])))
        for name in correlations
    }


def _has_exact(cfg: SpinChainRun | GroundRun, *, say: bool = False) -> bool:
    """Whether the run compares with exact diagonalization (asked for, and small enough).

    ``say``: log why not when the chain is too long (once per run, where the file is laid
    out).
    """
    if say and cfg.output.reference and cfg.model.sites > MAX_EXACT_SITES:
        logger.info(
            "no exact reference: %d sites is more than the %d that exact diagonalization "
            "takes here (no error_* series in the file)",
            cfg.model.sites,
            MAX_EXACT_SITES,
        )
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
        # H(t) = sum_k f_k(t) H_k (one piece unless the detuning is ramped)
        driven = TimeDependentHamiltonian(
            tuple((f, to_ttno(op, tree)) for f, op in hamiltonian_terms(params))
        )
        ttno = driven.at(0.0)
        if not ttno.hermitian:
            raise ValueError("model: the Hamiltonian is not Hermitian; i dY/dt = H Y needs one")
        rhs = LinearTreeRHS(ttno, factor=-1j)
        stepper = make_stepper(cfg.solver, rhs, executor=executor)
        if len(driven.terms) > 1:
            stepper = midpoint_stepper(stepper, driven)
        if params.initial_state:
            state = load_state(params.initial_state, tree)
        else:
            state = cfg.solver.initial_state(tree, initial_vectors(params), dtype=np.complex128)
        return Setup(
            tree=tree,
            rhs=rhs,
            state=state,
            stepper=stepper,
            monitor=lambda y: y.norm() ** 2,
            monitored="norm^2",
            h=h,
            n_steps=n_steps,
            extra={
                "zz": [to_ttno(o, tree, check_hermitian=False) for o in neighbour_zz(params)],
                "hamiltonian": driven,
            },
        )

    def layout(self, cfg: SpinChainRun, setup: Setup) -> Layout:
        """Sites and edges; magnetization, norm, energy, ranks, step data, exact reference."""
        series = [
            Var("mz", ("site",), long_name="<Z_k> of the normalized state"),
            Var("mz_mean", long_name="mean magnetization (1/d) sum_k <Z_k>"),
            Var("zz", ("bond",), long_name="<Z_i Z_j> of neighbours, normalized state"),
            Var("norm", long_name="norm of the state"),
            Var("energy", long_name="<H> of the normalized state"),
            *_entanglement_vars(cfg.output.correlations),
            *STEP_SERIES,
            Var("wall_parallel", units="s", long_name="time in the parallel part"),
            Var("wall_serial", units="s", long_name="time in the serial glue"),
        ]
        if _has_exact(cfg, say=True):
            series += [
                Var("mz_exact", ("site",), long_name="exact <Z_k>"),
                Var("zz_exact", ("bond",), long_name="exact <Z_i Z_j> of neighbours"),
                Var("mz_mean_exact", long_name="exact mean magnetization"),
                Var("error_mz_site", long_name="max over sites of |<Z_k> - exact|"),
                Var("error_zz", long_name="max over bonds of |<Z_i Z_j> - exact|"),
                Var("error_mz", long_name="|mz_mean - mz_mean_exact| (conserved by some models)"),
                Var("error_entropy", long_name="max over edges of |entropy - exact|"),
                *_correlation_error_vars(cfg.output.correlations),
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
        start_vector = None
        if cfg.model.initial_state:
            start_vector = np.asarray(setup.state.to_dense()).reshape(-1)
        exact = exact_dynamics(
            cfg.model,
            np.asarray(steps, dtype=float) * setup.h,
            start=start_vector,
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
                "corr": {name: exact.corr[name][n] for name in cfg.output.correlations},
            }
            for n, step in enumerate(steps)
        }

    def observe(
        self, cfg: SpinChainRun, setup: Setup, y: TTN, step: int, info: StepInfo | None
    ) -> dict[str, Any]:
        """Magnetizations, neighbour ``ZZ``, norm, energy, entropies, correlations, errors."""
        mz = to_numpy(local_expectations(y, magnetization_operator()))
        zz = np.array([expectation(y, o).real for o in setup.extra["zz"]])
        values: dict[str, Any] = {
            "mz": mz,
            "mz_mean": float(mz.mean()),
            "zz": zz,
            "norm": math.sqrt(y.norm() ** 2),
            "energy": expectation(y, setup.extra["hamiltonian"].at(step * setup.h)).real,
            **_entanglement(y, setup.tree, cfg.output.correlations),
        }
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
            values.update(_correlation_errors(values, exact["corr"], cfg.output.correlations))
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

    def report(self, summary: Mapping[str, Any]) -> str:
        """Steps, wall time, largest rank."""
        return (
            f"{summary['steps']} steps in {summary['wall_time']:.1f} s, max rank "
            f"{summary['max_rank']}"
        )

    plots = staticmethod(plots)


@dataclass(frozen=True)
class GroundSolver(Params):
    """DMRG on the state tree (:func:`solvers.bug.dmrg`), two-site or one-site."""

    atol: float = param(1e-10, "2-norm of the singular values discarded per split", ge=0.0)
    max_rank: int = param(128, "largest edge rank (bond dimension)", ge=1)
    sweeps: int = param(30, "largest number of sweeps", ge=1)
    energy_tol: float = param(
        1e-12, "stop when two sweeps' energies differ by this (relative)", ge=0.0
    )
    enrich: int = param(4, "directions of H Y added to every edge basis before a sweep", ge=0)
    sites: int = param(2, "2: two-site DMRG; 1: one-site DMRG with bond expansion", choices=(1, 2))
    expand: int = param(4, "one-site: directions of H x added to an edge per move", ge=0)
    initial_rank: int = param(4, "rank of the random start state", ge=1)
    seed: int = param(0, "seed of the random start state")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sites == 2 and self.expand != 4:
            raise ConfigError(
                "config key 'expand': the bond expansion of one-site DMRG (solver.sites = 1); "
                "two-site DMRG grows ranks by its splits"
            )


@dataclass(frozen=True)
class GroundOutput(Params):
    """Output file, correlations and the exact reference."""

    path: str = param("runs/spin_chain_ground.nc", "output file")
    correlations: tuple[str, ...] = param(
        (), "correlation matrices to write: ['zz', 'xx', 'yy']", choices=CORRELATIONS
    )
    reference: bool = param(True, "exact diagonalization (up to 16 sites)")


@dataclass(frozen=True)
class GroundRun(Params):
    """Configuration of ``python -m drivers.spin_chain ground``."""

    model: SpinChainParams = param(SpinChainParams(), "the spin model and its lattice")
    solver: GroundSolver = param(GroundSolver(), "DMRG truncation, sweeps and start state")
    output: GroundOutput = param(GroundOutput(), "output file, correlations, exact reference")


class SpinChainGround(Experiment):
    """The ground state of the model by two-site DMRG, one record per sweep."""

    config = GroundRun
    help = "ground state by DMRG: energy, variance, mz, entropy, correlations per sweep"
    plots = staticmethod(ground_plots)

    def describe(self, cfg: GroundRun, n_ranks: int) -> str:
        """Model, sites, lattice, tree, DMRG settings."""
        m, s = cfg.model, cfg.solver
        return (
            f"ground state of {m.model} on a {m.lattice} of {m.sites} sites, {m.tree} tree, "
            f"{'two' if s.sites == 2 else 'one'}-site DMRG (atol {s.atol:g}, ranks <= "
            f"{s.max_rank}, enrich {s.enrich}{'' if s.sites == 2 else f', expand {s.expand}'})"
        )

    def run(self, cfg: GroundRun, comm: Any, **_: Any) -> dict[str, Any]:
        """Sweep until the energy settles; write every sweep; store the state."""
        params, solver = cfg.model, cfg.solver
        for key, default in (("initial", "up"), ("initial_state", ""), ("delta_rate", 0.0)):
            if getattr(params, key) != default:
                raise ConfigError(
                    f"config key 'model.{key}': the ground command starts from a random "
                    "state (solver.initial_rank, solver.seed) of a time-independent model"
                )
        check_output(cfg.output.path, comm)
        tree = build_tree(params)
        op = to_ttno(hamiltonian(params), tree)
        if not op.hermitian:
            raise ValueError("model: the Hamiltonian is not Hermitian; a ground state needs one")
        exact = None
        has_exact = _has_exact(cfg, say=comm.rank == 0)
        if has_exact and comm.rank == 0:
            energy, vector = exact_ground_state(params)
            corr = {n: pauli_correlations(vector, n[0]) for n in cfg.output.correlations}
            exact = (energy, corr)
        out = new_writer(cfg.output.path, cfg, comm, self._layout(cfg, tree, has_exact))
        start = time.perf_counter()

        def record(number: int, result: Any) -> None:
            y = result.state
            ranks = y.ranks()
            values: dict[str, Any] = {
                "energy": result.energies[-1],
                "variance": result.variances[-1],
                "discarded": result.discarded[-1],
                "max_rank": result.max_ranks[-1],
                "ranks": np.asarray([ranks[e] for e in tree.edges], dtype=np.int64),
                "mz": to_numpy(local_expectations(y, magnetization_operator())),
                **_entanglement(y, tree, cfg.output.correlations),
                "wall_time": time.perf_counter() - start,
            }
            if exact is not None:
                energy, corr = exact
                values["error_energy"] = abs(values["energy"] - energy) / abs(energy)
                values.update(_correlation_errors(values, corr, cfg.output.correlations))
            logger.info(
                "sweep %d: E = %.12g, variance %.1e, max rank %d",
                number,
                values["energy"],
                values["variance"],
                values["max_rank"],
            )
            out.append(number, **values)

        try:
            result = dmrg(
                op,
                random_ttn(tree, solver.initial_rank, rng=solver.seed),
                Truncation(atol=solver.atol, max_rank=solver.max_rank),
                sweeps=solver.sweeps,
                energy_tol=solver.energy_tol,
                enrich=solver.enrich,
                sites=solver.sites,
                expand=solver.expand,
                callback=record if comm.rank == 0 else None,
            )
            nodes = {node: to_numpy(t) for node, t in enumerate(result.state.tensors)}
            attrs = {"sweep": len(result.energies), "energy": result.energies[-1]}
            if exact is not None:
                attrs["energy_exact"] = exact[0]
            out.checkpoint({"nodes": nodes}, attrs=attrs)
        except BaseException:
            out.close(finished=False)
            raise
        out.close(finished=result.converged)
        return {
            "path": cfg.output.path,
            "sweeps": len(result.energies),
            "energy": result.energies[-1],
            "variance": result.variances[-1],
            "converged": result.converged,
            "wall_time": time.perf_counter() - start,
        }

    def _layout(self, cfg: GroundRun, tree: Any, exact: bool) -> Layout:
        series = [
            Var("energy", long_name="<H> after the sweep"),
            Var("variance", long_name="<H^2> - <H>^2 after the sweep"),
            Var("discarded", long_name="2-norm of the singular values the sweep discarded"),
            Var("max_rank", dtype="int64", long_name="largest edge rank"),
            Var("ranks", ("edge",), dtype="int64", long_name="rank of every edge"),
            Var("mz", ("site",), long_name="<Z_k>"),
            *_entanglement_vars(cfg.output.correlations),
            Var("wall_time", units="s", long_name="wall time since the start"),
        ]
        if exact:
            series += [
                Var("error_energy", long_name="|energy - exact| / |exact|"),
                *_correlation_error_vars(cfg.output.correlations),
            ]
        sites = np.arange(tree.n_sites)
        return Layout(
            "sweep",
            series,
            coords={
                "site": (sites, "site"),
                "edge": (np.asarray(tree.edges), "tree edge (id of its child node)"),
                "site_i": (sites, "first site of a correlation"),
                "site_j": (sites, "second site of a correlation"),
            },
            attrs={
                "command": "ground",
                "model": cfg.model.model,
                "lattice": cfg.model.lattice,
            },
            record_units="1",
        )

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """Sweeps, energy, variance, the file."""
        state = "converged" if summary["converged"] else "NOT converged"
        return (
            f"{summary['sweeps']} sweeps ({state}) in {summary['wall_time']:.1f} s, "
            f"E = {summary['energy']:.12g}, variance {summary['variance']:.1e}; "
            f"wrote {summary['path']}"
        )


DRIVER = Driver(
    "spin_chain", __doc__, {"evolve": SpinChain(), "ground": SpinChainGround()}, default="evolve"
)
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
