"""Ground states by two-site DMRG: tensorsim on trees beside TeNPy on an MPS.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.dmrg [--quick] [--cases NAME ...]
        [--budget SECONDS] [--output PATH]

Every case finds the ground state of one Hamiltonian with every method, in this one
process: tensorsim's :func:`solvers.bug.dmrg` on the caterpillar (MPS-like) tree and on the
balanced binary tree (the lattice bisected recursively), and TeNPy's
``TwoSiteDMRGEngine`` on an MPS, without symmetry and with the model's conserved charge
(``Sz`` for the Heisenberg chain, the ``Z`` parity for the TFIM). The measure is the **time
to a relative energy error of** :data:`TARGET`: for each method a ladder of bond-dimension
caps (:data:`CHIS`) is run in order, each run from scratch (model, operator and start state
built inside the timed region), until ``|E - E_ref| / |E_ref| <= TARGET``; the wall time of
that first run is reported with its sweeps and ranks.

The same stopping rule for both libraries: a run ends when the energy of two consecutive
sweeps differs by at most :data:`ENERGY_TOL` ``* |E_ref|`` (tensorsim's ``energy_tol``;
TeNPy's ``max_E_err``, which TeNPy compares with ``|Delta E| / max(E, 1)``, i.e. with the
absolute change for negative energies, so it is given ``ENERGY_TOL * |E_ref|``; its entropy
criterion is switched off) or after :data:`MAX_SWEEPS` sweeps; every split discards
singular values of 2-norm at most :data:`TRUNC_TOL` (tensorsim ``Truncation(atol=...)``,
TeNPy ``trunc_cut``) and keeps at most ``chi``. A run still going when the per-run time
budget (:data:`BUDGET`, ``--budget``) has passed is interrupted (a ``SIGALRM`` timer, within
a sweep if need be) and counts as not reaching the target; the ladder of that method then
ends.

Cases (``--quick`` uses the sizes in brackets and smaller caps):

``heisenberg-64``, ``heisenberg-128``
    Open Heisenberg chain in the Pauli convention, ``H = sum_i (X X + Y Y + Z Z)`` (TeNPy:
    ``SpinChain`` with ``Jx = Jy = Jz = 4``, since ``sigma = 2 S``), 64 and 128 sites
    [10, 14].
``tfim-6x6``
    2-D transverse-field Ising model ``H = -sum_<ij> X_i X_j - g sum_i Z_i`` on the open
    6 x 6 square lattice [3 x 3] at ``g = 3.04``, near the critical field (``g_c ~ 3.04``);
    TeNPy's ``TFIModel`` on its ``Square`` lattice (open in x and y) in its default order,
    site ``(x, y)`` at MPS position ``x * ly + y`` -- the order of tensorsim's caterpillar.
``check-32``
    The acceptance check: Heisenberg chain, 32 sites [12], tensorsim (caterpillar) against
    TeNPy (``Sz`` conserved) and the known energy -55.989262472897 (-13.9973156182 in
    units of ``S.S``) [exact diagonalization]: energies within 1e-8 relative, every
    ``<Z_0 Z_j>`` within 1e-6.

Reference energy ``E_ref``: before the ladders, TeNPy with the conserved charge at two large
caps (:attr:`Case.reference_chis`; their gap is reported), and exact diagonalization up to
16 sites; after the ladders, the lowest energy any run reached. The report says which run
that was and flags any first-success that used a preliminary reference.

A full run of every case writes ``benchmarks/results/dmrg.md``; ``--quick`` or a subset of
``--cases`` only prints, unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import (
    check_budget,
    code_state,
    ladder_parser,
    machine_info,
    markdown_table,
    progress,
    run_provenance,
    write_report,
)
from problems.spin_chain import (
    PAULI_Z,
    SpinChainParams,
    build_tree,
    exact_ground_state,
    hamiltonian,
    lattice_shape,
)
from solvers.bug import dmrg
from solvers.bug.dmrg import GroundState
from tensorsim import Truncation
from tensorsim.ttn import TTN, correlation_matrix, random_ttn
from tensorsim.ttn.operator import to_ttno

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "dmrg.md"

#: Relative energy error every method has to reach.
TARGET = 1e-8

#: Stop when two consecutive sweeps differ by at most this times ``|E_ref|``.
ENERGY_TOL = 1e-10

#: 2-norm of the singular values a split may discard (``atol`` / ``trunc_cut``).
TRUNC_TOL = 1e-10

#: Largest number of sweeps of one run.
MAX_SWEEPS = 30

#: The ladder of bond-dimension caps.
CHIS = (16, 32, 64, 128, 256, 512)

#: Rank of tensorsim's random start state (and its seed).
START_RANK, SEED = 8, 1

#: Stopping rule of the TeNPy reference runs: energy change <= REFERENCE_TOL * sites.
REFERENCE_TOL, REFERENCE_SWEEPS = 1e-12, 20

#: A ladder run replaces the reference only when lower by this, relative (not round-off).
LOWER = 1e-12

#: Default time budget of one run, in seconds.
BUDGET = 300.0

#: The 32-site open Heisenberg chain's ground-state energy, Pauli convention.
KNOWN_32 = -55.989262472897

#: The TFIM's transverse field on the square lattice (near the critical 3.044).
G_2D = 3.04


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Method:
    """One ground-state solver.

    Attributes
    ----------
    name
        Row label.
    library
        ``"tensorsim"`` or ``"tenpy"``.
    tree
        tensorsim: ``"caterpillar"`` or ``"balanced_binary"``; TeNPy: ``"mps"``.
    enrich
        tensorsim: directions of ``H Y`` added to every edge basis before each sweep.
    conserve
        TeNPy: use the model's conserved charge (``Sz`` or parity).
    """

    name: str
    library: str
    tree: str
    enrich: int = 0
    conserve: bool = False

    @property
    def is_tenpy(self) -> bool:
        """Whether this is a TeNPy method."""
        return self.library == "tenpy"


TS_MPS = Method("tensorsim, caterpillar (MPS)", "tensorsim", "caterpillar")
TS_TREE = Method("tensorsim, balanced binary (enrich=4)", "tensorsim", "balanced_binary", 4)
TENPY = Method("TeNPy, no symmetry", "tenpy", "mps")
TENPY_SYM = Method("TeNPy, conserved charge", "tenpy", "mps", conserve=True)
METHODS = (TS_MPS, TS_TREE, TENPY, TENPY_SYM)


@dataclass(frozen=True)
class Case:
    """One Hamiltonian and its settings.

    Attributes
    ----------
    key, title
        Command-line name and heading.
    params
        The model (its ``tree`` is replaced per method).
    chis
        The ladder of bond-dimension caps.
    reference_chis
        Caps of the two TeNPy reference runs (conserved charge), low then high.
    note
        Extra sentence under the heading.
    """

    key: str
    title: str
    params: SpinChainParams
    chis: tuple[int, ...]
    reference_chis: tuple[int, int]
    note: str = ""


def heisenberg(sites: int, tree: str = "caterpillar") -> SpinChainParams:
    """The open Heisenberg chain, Pauli convention (``xxz`` with ``jz = 1``, ``hz = 0``)."""
    return SpinChainParams(model="xxz", sites=sites, tree=tree, j=1.0, jz=1.0, hz=0.0)


def tfim_square(lx: int, ly: int, g: float = G_2D) -> SpinChainParams:
    """The TFIM on the open ``lx`` x ``ly`` square lattice."""
    return SpinChainParams(model="tfim", lattice="square", lx=lx, ly=ly, sites=lx * ly, j=1.0, g=g)


def make_cases(quick: bool) -> list[Case]:
    """The DMRG cases (small sizes with ``quick``)."""
    chis = (8, 16, 32) if quick else CHIS
    refs = (16, 32) if quick else (128, 256)
    refs_2d = (16, 32) if quick else (192, 256)
    chain_a, chain_b = (10, 14) if quick else (64, 128)
    lx = 3 if quick else 6
    return [
        Case(
            "heisenberg-64",
            f"Open Heisenberg chain, {chain_a} sites, H = sum (XX + YY + ZZ)",
            heisenberg(chain_a),
            chis,
            refs,
        ),
        Case(
            "heisenberg-128",
            f"Open Heisenberg chain, {chain_b} sites, H = sum (XX + YY + ZZ)",
            heisenberg(chain_b),
            chis,
            refs,
        ),
        Case(
            "tfim-6x6",
            f"2-D TFIM, open {lx} x {lx} square lattice, J = 1, g = {G_2D:g}",
            tfim_square(lx, lx),
            chis,
            refs_2d,
            note="g = 3.04 is near the critical field of the 2-D model (g_c ~ 3.044).",
        ),
    ]


# --------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One ground-state run.

    Attributes
    ----------
    method, chi
        Who ran, with which bond-dimension cap.
    energy
        ``<H>`` of the final state (normalized).
    wall
        Wall time of the whole run (seconds): model, operator, start state, the sweeps and
        the final energy.
    setup
        The part of ``wall`` before the first sweep (model, operator, start state).
    sweeps
        Sweeps done.
    converged
        Whether the energy stopping rule ended the run.
    stopped
        Whether the time budget ended it.
    bond_ranks
        Ranks of the bonds: the MPS bonds (TeNPy), the edges between inner nodes
        (tensorsim; on the caterpillar with the two end leaves' edges, the MPS bonds).
    depth_ranks
        tensorsim: the largest rank of the edges at each depth (edge to the root = 1).
    entries
        Numbers stored in the state's tensors, dense (TeNPy: without the zero blocks of a
        conserved charge it stores less).
    extra
        Method-specific remark (tensorsim: the variance of the last sweep).
    """

    method: Method
    chi: int
    energy: float
    wall: float
    setup: float
    sweeps: int
    converged: bool
    stopped: bool
    bond_ranks: list[int]
    depth_ranks: list[int] = field(default_factory=list)
    entries: int = 0
    extra: str = ""

    @property
    def max_rank(self) -> int:
        """Largest bond rank."""
        return max(self.bond_ranks, default=1)

    def error(self, e_ref: float) -> float:
        """``(E - E_ref) / |E_ref|`` (negative if below the reference)."""
        return (self.energy - e_ref) / abs(e_ref)

    def met(self, e_ref: float) -> bool:
        """Whether the run reached the target (and was not stopped by the budget)."""
        return not self.stopped and abs(self.error(e_ref)) <= TARGET


class _OutOfTime(Exception):
    """The time budget of a run has passed (raised by the :func:`deadline` alarm)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_OutOfTime` in the block once ``seconds`` have passed (``inf``: never).

    A ``SIGALRM`` timer (main thread, POSIX): the exception interrupts the run between two
    Python operations, within a sweep if need be, so no run overshoots its budget by more
    than one BLAS call.
    """
    if not math.isfinite(seconds):
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise _OutOfTime("time budget passed")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


def tensorsim_run(
    params: SpinChainParams,
    method: Method,
    chi: int,
    e_scale: float,
    budget: float,
    *,
    max_sweeps: int = MAX_SWEEPS,
) -> tuple[Run, TTN | None]:
    """Run :func:`solvers.bug.dmrg` once from scratch (tree, TTNO, random start).

    Parameters
    ----------
    params
        The model; ``method.tree`` replaces its tree.
    method
        A tensorsim method.
    chi
        Largest edge rank.
    e_scale
        ``|E_ref|`` estimate: the stopping rule is an energy change of at most
        ``ENERGY_TOL * e_scale`` (``dmrg`` takes it relative to ``max(1, |E|)``).
    budget
        Seconds from the start; a run still going then is interrupted and reports its last
        completed sweep (``stopped``).
    max_sweeps
        Largest number of sweeps.

    Returns
    -------
    tuple[Run, TTN | None]
        The run and its final state (``None`` if stopped before the first sweep ended).
    """
    # dmrg stops at a change <= energy_tol * max(1, |E|), with |E| ~ e_scale
    energy_tol = ENERGY_TOL * e_scale / max(1.0, e_scale)
    latest: list[GroundState] = []
    stopped = False
    setup = math.nan
    start = time.perf_counter()
    try:
        with deadline(budget):
            p = replace(params, tree=method.tree)
            tree = build_tree(p)
            op = to_ttno(hamiltonian(p), tree)
            y0 = random_ttn(tree, START_RANK, rng=SEED)
            setup = time.perf_counter() - start
            result = dmrg(
                op,
                y0,
                Truncation(atol=TRUNC_TOL, max_rank=chi),
                sweeps=max_sweeps,
                energy_tol=energy_tol,
                enrich=method.enrich,
                callback=lambda number, out: latest.__setitem__(slice(None), [out]),
            )
    except _OutOfTime:
        stopped = True
        result = latest[0] if latest else None
    wall = time.perf_counter() - start
    if result is None:
        return Run(method, chi, math.nan, wall, setup, 0, False, True, []), None
    tree = result.state.tree
    state = result.state
    ranks = state.ranks()
    inner = [r for e, r in ranks.items() if not tree.is_leaf(e)]
    if method.tree == "caterpillar":
        inner.append(ranks[0])  # the cut after site 0; the one before the last is inner
    by_depth: dict[int, int] = {}
    for e, r in ranks.items():
        depth = tree.depth(e)
        by_depth[depth] = max(by_depth.get(depth, 0), r)
    run = Run(
        method,
        chi,
        float(result.energies[-1]),
        wall,
        setup,
        len(result.energies),
        result.converged and not stopped,
        stopped,
        inner,
        [by_depth[d] for d in sorted(by_depth)],
        sum(int(np.prod(t.shape)) for t in state.tensors),
        f"variance {result.variances[-1]:.1e}",
    )
    return run, state


def tenpy_model(params: SpinChainParams, conserve: bool) -> Any:
    """TeNPy's model of ``params`` in the same convention as ours.

    Heisenberg/XXZ: ``SpinChain`` (spin 1/2, ``S = sigma / 2``) with ``Jx = Jy = 4 J``,
    ``Jz = 4 J jz``, ``hz = -2 hz`` (TeNPy's field term is ``-hz S^z``). TFIM: ``TFIModel``
    (Pauli matrices, ``-J sum X X - g sum Z``, the same as ours) on a ``Chain`` or on the
    open ``Square`` lattice in TeNPy's default order (MPS position ``x * ly + y``).
    """
    if params.model == "xxz":
        if params.lattice != "chain":
            raise ValueError("xxz: only the chain has a TeNPy counterpart here")
        from tenpy.models.spins import SpinChain

        return SpinChain(
            {
                "L": params.sites,
                "S": 0.5,
                "Jx": 4.0 * params.j,
                "Jy": 4.0 * params.j,
                "Jz": 4.0 * params.j * params.jz,
                "hz": -2.0 * params.hz,
                "bc_MPS": "finite",
                "conserve": "Sz" if conserve else None,
            }
        )
    if params.model == "tfim":
        from tenpy.models.tf_ising import TFIModel

        options: dict[str, Any] = {
            "J": params.j,
            "g": params.g,
            "bc_MPS": "finite",
            "conserve": "parity" if conserve else None,
        }
        if params.lattice == "chain":
            options.update(lattice="Chain", L=params.sites, bc_x="open")
        else:
            lx, ly = lattice_shape(params)
            options.update(
                lattice="Square", Lx=lx, Ly=ly, bc_x="open", bc_y="open", order="default"
            )
        return TFIModel(options)
    raise ValueError(f"no TeNPy model for {params.model!r}")


def _start_labels(params: SpinChainParams) -> list[str]:
    """TeNPy's product start state: Neel for the Heisenberg chain, all up for the TFIM."""
    if params.model == "xxz":
        return ["up" if k % 2 == 0 else "down" for k in range(params.sites)]
    return ["up"] * params.sites


def tenpy_run(
    params: SpinChainParams,
    method: Method,
    chi: int,
    e_scale: float,
    budget: float,
    *,
    max_sweeps: int = MAX_SWEEPS,
    energy_tol: float = ENERGY_TOL,
) -> tuple[Run, Any]:
    """Run TeNPy's ``TwoSiteDMRGEngine`` once from scratch (model, MPO, product state).

    Options: ``trunc_params = {chi_max: chi, trunc_cut: TRUNC_TOL}``, ``max_E_err =
    energy_tol * e_scale`` (TeNPy compares it with the absolute energy change for negative
    energies), ``max_S_err`` off, ``max_sweeps``, no mixer (TeNPy's default for the
    two-site engine), TeNPy's default Lanczos settings. ``budget`` as in
    :func:`tensorsim_run` (an interrupted run reports TeNPy's last Lanczos energy).

    Returns
    -------
    tuple[Run, MPS | None]
        The run and the final MPS (``None`` if stopped before the engine existed).
    """
    from tenpy.algorithms.dmrg import TwoSiteDMRGEngine
    from tenpy.networks.mps import MPS

    stopped = False
    start = time.perf_counter()
    setup = math.nan
    engine: Any = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with deadline(budget):
                model = tenpy_model(params, method.conserve)
                psi = MPS.from_product_state(
                    model.lat.mps_sites(), _start_labels(params), bc="finite"
                )
                options = {
                    "trunc_params": {"chi_max": chi, "trunc_cut": TRUNC_TOL},
                    "max_E_err": energy_tol * e_scale,
                    "max_S_err": math.inf,
                    "max_sweeps": max_sweeps - 1,  # TeNPy sweeps while sweeps <= max_sweeps
                    "max_trunc_err": None,
                    "mixer": None,
                }
                engine = TwoSiteDMRGEngine(psi, model, options)
                setup = time.perf_counter() - start
                engine.run()
                energy = float(np.real(model.H_MPO.expectation_value(psi)))
        except _OutOfTime:
            stopped = True
            # the last Lanczos energy of the interrupted run (before truncation)
            energies = engine.sweep_stats["E"] if engine is not None else []
            energy = float(energies[-1]) if energies else math.nan
    wall = time.perf_counter() - start
    if engine is None:
        return Run(method, chi, math.nan, wall, setup, 0, False, True, []), None
    psi = engine.psi
    run = Run(
        method,
        chi,
        energy,
        wall,
        setup,
        int(engine.sweeps),
        not stopped and bool(engine.is_converged()),
        stopped,
        [int(c) for c in psi.chi],
        entries=sum(
            int(psi.chi[k - 1] if k else 1) * 2 * int(psi.chi[k] if k < psi.L - 1 else 1)
            for k in range(psi.L)
        ),
        extra=f"max trunc. error {max(engine.sweep_stats['max_trunc_err'] or [0.0]):.0e}",
    )
    return run, psi


def run_method(
    params: SpinChainParams, method: Method, chi: int, e_scale: float, budget: float
) -> Run:
    """One timed run of ``method`` at cap ``chi``."""
    runner = tenpy_run if method.is_tenpy else tensorsim_run
    run, _ = runner(params, method, chi, e_scale, budget)
    return run


# --------------------------------------------------------------------------- references


def convention_check(params: SpinChainParams, rng: int = 7) -> tuple[float, float]:
    """``<psi|H|psi>`` of a random real product state by our terms and by TeNPy's MPO.

    Every site gets its own random real vector, so the check sees every coupling and the
    site order (TeNPy's model without a conserved charge; its basis order is read from
    the site's ``state_labels``).
    """
    from tenpy.networks.mps import MPS

    gen = np.random.default_rng(rng)
    vectors = [v / np.linalg.norm(v) for v in gen.standard_normal((params.sites, 2))]
    ours = 0.0
    for coef, factors in hamiltonian(params).terms:
        value = coef
        for site, matrix in factors.items():
            value *= float(np.real(vectors[site] @ np.asarray(matrix) @ vectors[site]))
        ours += value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = tenpy_model(params, conserve=False)
        sites = model.lat.mps_sites()
        states = []
        for site, v in zip(sites, vectors, strict=True):
            w = np.zeros(2)
            w[site.state_labels["up"]], w[site.state_labels["down"]] = v
            states.append(w)
        psi = MPS.from_product_state(sites, states, bc="finite")
        theirs = float(np.real(model.H_MPO.expectation_value(psi)))
    return ours, theirs


@dataclass
class Reference:
    """The reference energy of a case and how it was made.

    Attributes
    ----------
    energy
        ``E_ref`` used by the ladders (preliminary: before the ladders).
    source
        Which run gave it.
    note
        Sentence on the reference runs, their gap, exact diagonalization and the
        convention check.
    runs
        The reference runs.
    """

    energy: float
    source: str
    note: str
    runs: list[Run]


def reference_for(case: Case, budget: float) -> Reference:
    """TeNPy (conserved charge) at the case's two reference caps, and ED up to 16 sites."""
    low, high = case.reference_chis
    runs = []
    for chi in (low, high):
        # |E| is of the order of the number of sites: stop at a change of 1e-12 * sites
        run, _ = tenpy_run(
            case.params,
            TENPY_SYM,
            chi,
            float(case.params.sites),
            4 * budget,
            max_sweeps=REFERENCE_SWEEPS,
            energy_tol=REFERENCE_TOL,
        )
        progress(
            f"  reference chi={chi}: E = {run.energy:.13f} ({run.wall:.1f} s, "
            f"{run.sweeps} sweeps, max bond {run.max_rank})"
        )
        runs.append(run)
    best = min(runs, key=lambda r: r.energy)
    energy, source = best.energy, f"TeNPy, conserved charge, chi={best.chi}"
    gap = abs(runs[1].energy - runs[0].energy) / abs(runs[1].energy)
    budgeted = [f"chi={r.chi}" for r in runs if r.stopped]
    note = (
        f"TeNPy two-site DMRG with the conserved charge at chi = {low} and {high} "
        f"({REFERENCE_SWEEPS} sweeps at most, energy change <= {REFERENCE_TOL:g} x sites, "
        f"budget {4 * budget:g} s, not timed): E = "
        f"{runs[0].energy:.12f} and {runs[1].energy:.12f} ({runs[0].wall:.0f} s and "
        f"{runs[1].wall:.0f} s; relative gap {gap:.1e})"
    )
    if budgeted:
        note += f" — stopped by the budget: {', '.join(budgeted)}"
    if case.params.sites <= 16:
        e_exact, _ = exact_ground_state(case.params)
        note += (
            f"; exact diagonalization: {e_exact:.12f} (TeNPy chi={high} "
            f"{(runs[1].energy - e_exact) / abs(e_exact):+.1e} relative)"
        )
        if e_exact < energy:
            energy, source = e_exact, "exact diagonalization"
    ours, theirs = convention_check(case.params)
    note += (
        f". Convention check, <psi|H|psi> of one random product state: {ours:.12f} (ours) vs "
        f"{theirs:.12f} (TeNPy MPO)"
    )
    if abs(ours - theirs) > 1e-10 * max(1.0, abs(ours)):
        raise RuntimeError(f"{case.key}: TeNPy's model differs from ours ({ours} vs {theirs})")
    return Reference(energy, source, note, runs)


# --------------------------------------------------------------------------- ladders


@dataclass
class MethodResult:
    """The ladder of one method in one case.

    Attributes
    ----------
    method
        The method.
    runs
        Every run, in ladder order.
    """

    method: Method
    runs: list[Run] = field(default_factory=list)

    def first_met(self, e_ref: float) -> Run | None:
        """The first run that met the target against ``e_ref``."""
        return next((r for r in self.runs if r.met(e_ref)), None)


@dataclass
class CaseResult:
    """All of one case: reference, ladders and the final reference energy."""

    case: Case
    reference: Reference
    methods: list[MethodResult]
    e_ref: float = 0.0
    e_ref_source: str = ""
    flags: list[str] = field(default_factory=list)


def run_ladder(case: Case, method: Method, e_ref: float, budget: float) -> MethodResult:
    """Run the caps of ``case.chis`` in order until one meets the target against ``e_ref``.

    The ladder ends at the first run that meets the target or that the budget stopped.
    """
    out = MethodResult(method)
    for chi in case.chis:
        run = run_method(case.params, method, chi, abs(e_ref), budget)
        out.runs.append(run)
        progress(f"    {method.name}: {ladder_cell(run, e_ref)}")
        if run.met(e_ref) or run.stopped:
            break
    return out


def run_case(case: Case, budget: float, methods: Sequence[Method]) -> CaseResult:
    """Reference, the ladder of every method, then the final reference energy."""
    progress(f"{case.key}: reference ...")
    reference = reference_for(case, budget)
    results = []
    for method in methods:
        progress(f"  {case.key}: {method.name}")
        results.append(run_ladder(case, method, reference.energy, budget))
    result = CaseResult(case, reference, results, reference.energy, reference.source)
    for m in results:
        for run in m.runs:
            # lower by more than round-off (a tie keeps the reference run)
            if run.energy < result.e_ref - LOWER * abs(result.e_ref):
                result.e_ref = run.energy
                result.e_ref_source = f"{m.method.name}, chi={run.chi}"
    for m in results:
        before, after = m.first_met(reference.energy), m.first_met(result.e_ref)
        if before is not after:
            result.flags.append(
                f"{m.method.name}: against the preliminary reference the ladder stopped at "
                f"chi={before.chi if before else '-'}; against the final one the first run "
                f"meeting the target is chi={after.chi if after else '-'}."
            )
    return result


# --------------------------------------------------------------------------- 32-site check


@dataclass
class Check:
    """The acceptance check on the Heisenberg chain (32 sites; ``--quick``: 12).

    Attributes
    ----------
    sites, chi
        Chain length and bond-dimension cap (both libraries).
    e_tensorsim, e_tenpy
        Ground-state energies (Pauli convention).
    e_known, known_source
        The independent value: :data:`KNOWN_32` at 32 sites, exact diagonalization up to
        16 sites.
    zz_diff
        ``max_j |<Z_0 Z_j>_tensorsim - <Z_0 Z_j>_TeNPy|``.
    zz_end
        ``<Z_0 Z_{L-1}>`` (TeNPy).
    wall_tensorsim, wall_tenpy
        Wall times of the two runs (seconds).
    """

    sites: int
    chi: int
    e_tensorsim: float
    e_tenpy: float
    e_known: float
    known_source: str
    zz_diff: float
    zz_end: float
    wall_tensorsim: float
    wall_tenpy: float

    @property
    def energy_diff(self) -> float:
        """``|E_tensorsim - E_TeNPy| / |E_TeNPy|``."""
        return abs(self.e_tensorsim - self.e_tenpy) / abs(self.e_tenpy)

    @property
    def passed(self) -> bool:
        """Energies within 1e-8 relative of each other and of the known value, ZZ within 1e-6."""
        return (
            self.energy_diff <= 1e-8
            and abs(self.e_tensorsim - self.e_known) <= 1e-8 * abs(self.e_known)
            and self.zz_diff <= 1e-6
        )


def check_chain(sites: int = 32, chi: int = 64) -> Check:
    """Heisenberg chain: tensorsim (caterpillar) against TeNPy (``Sz``), the ladders' settings.

    The independent energy is :data:`KNOWN_32` for 32 sites, exact diagonalization up to
    16 sites.
    """
    params = heisenberg(sites)
    if sites == 32:
        e_known, source = KNOWN_32, "the known value"
    elif sites <= 16:
        e_known, _ = exact_ground_state(params)
        source = "exact diagonalization"
    else:
        raise ValueError(f"sites: expected 32 or at most 16, got {sites}")
    scale = abs(e_known)
    run, state = tensorsim_run(params, TS_MPS, chi, scale, math.inf)
    if state is None:  # pragma: no cover - no budget here
        raise RuntimeError("check: the tensorsim run gave no state")
    zz = np.asarray(correlation_matrix(state, PAULI_Z))[0]
    ref, psi = tenpy_run(params, TENPY_SYM, chi, scale, math.inf)
    if psi is None:  # pragma: no cover - no budget here
        raise RuntimeError("check: the TeNPy run gave no state")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zz_tenpy = 4.0 * np.real(psi.correlation_function("Sz", "Sz", sites1=[0]))[0]
    return Check(
        sites,
        chi,
        run.energy,
        ref.energy,
        e_known,
        source,
        float(np.max(np.abs(zz - zz_tenpy))),
        float(zz_tenpy[-1]),
        run.wall,
        ref.wall,
    )


def check_section(check: Check) -> list[str]:
    """Markdown lines of the acceptance check."""
    rows = [
        [
            name,
            f"{energy:.12f}",
            f"{energy / 4:.10f}",
            f"{(energy - check.e_known) / abs(check.e_known):+.1e}",
            f"{wall:.1f} s",
        ]
        for name, energy, wall in (
            ("tensorsim, caterpillar", check.e_tensorsim, check.wall_tensorsim),
            ("TeNPy, Sz conserved", check.e_tenpy, check.wall_tenpy),
        )
    ]
    header = ("method", "E (Pauli)", "E (S.S units)", f"vs {check.known_source}", "wall time")
    verdict = "**passed**" if check.passed else "**failed**"
    return [
        markdown_table(header, rows),
        "",
        f"chi = {check.chi}, the settings of the ladders. |E_tensorsim - E_TeNPy| / |E_TeNPy| "
        f"= {check.energy_diff:.1e} (bound 1e-8); {check.known_source} {check.e_known:.12f} "
        f"({check.e_known / 4:.10f} in S.S units; bound 1e-8 relative for tensorsim); "
        f"max_j |<Z_0 Z_j>_tensorsim - <Z_0 Z_j>_TeNPy| = {check.zz_diff:.1e} (bound 1e-6; "
        f"<Z_0 Z_{check.sites - 1}> = {check.zz_end:.4f}). Check {verdict}. The 32-site "
        "check also runs as `tests/solvers/test_dmrg_tenpy.py` (slow set).",
    ]


# --------------------------------------------------------------------------- report


def ladder_cell(run: Run, e_ref: float) -> str:
    """``chi=64: 3.1e-09, 4 sweeps, 12.3 s`` (with a mark for success or the budget)."""
    mark = " ✓" if run.met(e_ref) else (" (budget)" if run.stopped else "")
    swept = f"{run.sweeps} sweeps" + ("" if run.converged or run.stopped else ", not conv.")
    return f"chi={run.chi}: {run.error(e_ref):.1e}, {swept}, {run.wall:.1f} s{mark}"


def rank_summary(run: Run) -> str:
    """Median and count at the maximum of the bond ranks; by depth on a branched tree."""
    ranks = sorted(run.bond_ranks)
    if not ranks:
        return "—"
    top = ranks[-1]
    text = f"median {int(np.median(ranks))}, {ranks.count(top)} of {len(ranks)} bonds at {top}"
    if run.method.tree == "balanced_binary":
        text += "; by depth " + ", ".join(str(r) for r in run.depth_ranks)
    return text


CASE_HEADER = (
    "method",
    "chi that met 1e-8",
    "wall time (setup)",
    "sweeps",
    "rel. energy error",
    "ratio to fastest",
    "max rank",
    "ranks over bonds",
    "dense entries",
    "ladder (chi: rel. error, sweeps, wall)",
)


def case_table(result: CaseResult) -> str:
    """Markdown table of one case against the final reference energy."""
    e_ref = result.e_ref
    hits = [m.first_met(e_ref) for m in result.methods]
    fastest = min((h.wall for h in hits if h is not None), default=None)
    rows = []
    for m, hit in zip(result.methods, hits, strict=True):
        ladder = "<br>".join(ladder_cell(r, e_ref) for r in m.runs) or "not run"
        if hit is None:
            best = min(m.runs, key=lambda r: abs(r.error(e_ref)), default=None)
            rows.append(
                [
                    m.method.name,
                    "**not reached**",
                    "—",
                    "—",
                    f"best {best.error(e_ref):.1e} (chi={best.chi})" if best else "—",
                    "—",
                    str(best.max_rank) if best else "—",
                    rank_summary(best) if best else "—",
                    f"{best.entries:,}" if best else "—",
                    ladder,
                ]
            )
            continue
        rows.append(
            [
                m.method.name,
                str(hit.chi),
                f"{hit.wall:.1f} s ({hit.setup:.1f} s)",
                str(hit.sweeps) + ("" if hit.converged else " (cap)"),
                f"{hit.error(e_ref):.1e}",
                f"{hit.wall / fastest:.2f}" if fastest else "—",
                str(hit.max_rank),
                rank_summary(hit),
                f"{hit.entries:,}",
                ladder,
            ]
        )
    return markdown_table(CASE_HEADER, rows)


def summary_table(results: Sequence[CaseResult]) -> str:
    """Time to the target of every method in every case, and its ratio to the fastest."""
    methods: list[Method] = []
    for r in results:
        for m in r.methods:
            if m.method not in methods:
                methods.append(m.method)
    rows = []
    for method in methods:
        row = [method.name]
        for r in results:
            m = next((x for x in r.methods if x.method == method), None)
            hit = m.first_met(r.e_ref) if m else None
            times = [h.wall for x in r.methods if (h := x.first_met(r.e_ref)) is not None]
            if hit is None:
                row.append("not reached" if m else "—")
            else:
                row.append(f"{hit.wall:.1f} s (x{hit.wall / min(times):.1f}, chi {hit.chi})")
        rows.append(row)
    return markdown_table(["method", *(r.case.key for r in results)], rows)


def render(
    results: Sequence[CaseResult],
    check: Check | None,
    budget: float,
    command: str,
    wall: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
    code_at_start: str,
) -> str:
    """Return the markdown report."""
    import tenpy

    info = machine_info()
    info["TeNPy"] = tenpy.__version__
    info.update(run_provenance(code_at_start, load, wall))
    chis = results[0].case.chis if results else CHIS
    lines = [
        "# Ground states by two-site DMRG: tensorsim on trees vs TeNPy on an MPS",
        "",
        f"Generated by `{command}`.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        "## How to read the tables",
        "",
        f"- Target: relative energy error |E - E_ref| / |E_ref| <= {TARGET:g}. For each method "
        f"the caps chi = {', '.join(str(c) for c in chis)} are run in order, each from "
        "scratch; the first run that meets the target (✓) is "
        "reported, with its wall time (`time.perf_counter`, one run, `OMP_NUM_THREADS=1`): "
        "building the model and operator (TeNPy model and MPO; tensorsim tree and TTNO) and "
        "the start state — the part in brackets — then the sweeps and the final energy.",
        f"- Stopping, the same for both: energy change between two sweeps <= {ENERGY_TOL:g} "
        f"|E_ref| (tensorsim `energy_tol`; TeNPy `max_E_err`, which TeNPy compares with the "
        "absolute change for negative energies, `max_S_err` off) or "
        f"{MAX_SWEEPS} sweeps ('(cap)' / 'not conv.'); every split discards singular values "
        f"of 2-norm <= {TRUNC_TOL:g} (tensorsim `Truncation(atol=...)`, TeNPy `trunc_cut`) "
        "and keeps at most chi. A sweep visits every bond twice (there and back) in both.",
        f"- Budget: {budget:g} s per run; a run past it is interrupted (within a sweep if need "
        "be), counts as not meeting the target ('(budget)', with the energy of its last "
        "completed sweep; TeNPy: its last Lanczos energy) and ends that method's ladder.",
        f"- tensorsim: `solvers.bug.dmrg` (two-site, Lanczos `eig_tol` 1e-10), from a random "
        f"orthonormal TTN of rank {START_RANK} (seed {SEED}), float64; it also computes the "
        "variance <H^2> - <H>^2 after every sweep (inside the timing). Caterpillar = the MPS "
        "with one site per spine node; balanced binary = the lattice bisected across its "
        "longer extent, recursively, with 4 directions of H Y added to every edge basis "
        "before each sweep (`enrich=4`: without it a pair update cannot couple leaves under "
        "different parents).",
        "- TeNPy: `TwoSiteDMRGEngine` on a finite MPS from a product state (Néel for the "
        "Heisenberg chain, all up for the TFIM), no mixer, default Lanczos settings, float64; "
        "'conserved charge' = `conserve='Sz'` (Heisenberg) or `'parity'` (TFIM), block-sparse "
        "tensors. The energy reported is `H_MPO.expectation_value(psi)` of the final MPS.",
        "- Ranks: TeNPy = the MPS bond dimensions; tensorsim = the ranks of the edges between "
        "inner nodes (caterpillar: with the two end leaves' edges, i.e. exactly the MPS "
        "bonds). A binary-tree edge cuts off a block of sites (two boundaries on a chain), "
        "an MPS bond a prefix (one boundary): equal rank is not equal accuracy. 'by depth' = "
        "the largest rank at each depth of the binary tree, from the root's children down. "
        "'Dense entries' = numbers in the state's tensors if stored densely (a binary-tree "
        "node holds r^3, an MPS tensor 2 r^2).",
        "- Ratio to fastest = wall time / that of the fastest method meeting the target in "
        "the case.",
        "",
        "## Time to relative energy error 1e-8",
        "",
        summary_table(results) if results else "No case run.",
        "",
    ]
    for result in results:
        ref = result.reference
        lines += [f"## {result.case.title}", ""]
        if result.case.note:
            lines += [result.case.note, ""]
        lines += [
            f"Reference runs: {ref.note}.",
            "",
            f"E_ref = {result.e_ref:.12f}, the lowest energy reached (a ladder run counts when "
            f"lower by more than {LOWER:g} relative): {result.e_ref_source}.",
            "",
            case_table(result),
            "",
        ]
        lines += [f"- {flag}" for flag in result.flags]
        if result.flags:
            lines.append("")
    if check is not None:
        lines += [f"## Acceptance check: Heisenberg chain, {check.sites} sites, against TeNPy", ""]
        lines += check_section(check)
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

CASE_KEYS = ("heisenberg-64", "heisenberg-128", "tfim-6x6", "check-32")


def warm_up() -> None:
    """Import TeNPy and run each library once on a tiny chain (untimed)."""
    tiny = heisenberg(6)
    for method in (TS_MPS, TENPY, TENPY_SYM):
        run_method(tiny, method, 4, 10.0, math.inf)
    run_method(tfim_square(2, 2), TENPY_SYM, 4, 10.0, math.inf)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = ladder_parser(
        "python -m benchmarks.dmrg",
        "Time to a 1e-8 relative energy error: tensorsim's tree DMRG beside TeNPy's two-site "
        "DMRG.",
        CASE_KEYS,
        "dmrg.md",
    )
    return check_budget(parser, parser.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the selected cases, print the report and write it for a full run."""
    args = parse_args(argv)
    # TeNPy logs a warning when it canonicalizes the final MPS; the report has what matters
    logging.getLogger("tenpy").setLevel(logging.ERROR)
    # and warns of options it did not read when a run is interrupted before it read them
    warnings.filterwarnings("ignore", category=UserWarning, module=r"tenpy\.")
    if os.environ.get("OMP_NUM_THREADS") != "1":
        progress("warning: OMP_NUM_THREADS is not 1; timings on shared cores will suffer")
    budget = args.budget if args.budget is not None else (10.0 if args.quick else BUDGET)
    load_start = os.getloadavg()
    code_at_start = code_state()
    start = time.perf_counter()
    progress("warming up ...")
    warm_up()
    results = [
        run_case(case, budget, METHODS)
        for case in make_cases(args.quick)
        if case.key in args.cases
    ]
    check = None
    if "check-32" in args.cases:
        progress("check-32 ...")
        check = check_chain(12, 32) if args.quick else check_chain()
        progress(
            f"  energies {check.e_tensorsim:.12f} / {check.e_tenpy:.12f}, "
            f"ZZ diff {check.zz_diff:.1e}: {'passed' if check.passed else 'FAILED'}"
        )
    command = " ".join(["python -m benchmarks.dmrg", *(sys.argv[1:] if argv is None else argv)])
    report = render(
        results,
        check,
        budget,
        command,
        time.perf_counter() - start,
        (load_start, os.getloadavg()),
        code_at_start,
    )
    full = not args.quick and set(args.cases) == set(CASE_KEYS)
    output = args.output if args.output is not None or not full else RESULTS
    write_report(report, output)


if __name__ == "__main__":
    main()
