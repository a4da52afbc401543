"""Spin-chain time evolution: tensorsim's BUG and TDVP integrators against TeNPy and quimb.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.spin_chain [--quick] [--cases NAME ...]
        [--budget SECONDS] [--output PATH]

Every case evolves one Hamiltonian from the all-up product state with every method, in
this one process, and compares the magnetization ``<Z_k>`` of every site ``k`` on a fixed
grid of output times (spacing :data:`OUTPUT_DT`) with a reference. Two errors are
reported: the maximal per-site error ``max_{t,k} |<Z_k>(t) - ref_k(t)|``, which decides
whether the case's target (default :data:`TARGET`) is met, and the maximal error of the
mean magnetization ``max_t |(1/L) sum_k (<Z_k>(t) - ref_k(t))|``. For each method a short
ladder of settings (time step, truncation tolerance, rank cap), coarse to fine, is tried
until the per-site error is at most the target; the wall time of that run is reported. A
run that passes the per-method time budget is stopped at its next output time and counts as
not reaching the target.

Cases (``--quick`` uses smaller chains and times):

``tfim-exact``
    Transverse-field Ising chain (TeNPy's ``TFIChain`` convention) ``H = -J sum X X -
    g sum Z``, J = 1, g = 1.5, L = 16, T = 2; reference: exact dynamics.
``lr-ising``
    Long-range Ising chain of arXiv 2412.00858, Sec. 5.1 (Omega = Delta = 1, nu = 2,
    alpha = 1), d = 16, T = 1; reference: exact dynamics.
``tfim-large``
    The TFIM with L = 64, T = 2; reference: a tight fourth-order TeNPy TEBD run, with its
    self-convergence against a coarser time step and a looser truncation.
``lr-ising-32``, ``lr-ising-64``
    The long-range Ising chain with d = 32 and d = 64, T = 0.5, target 1e-4 per site;
    reference: a tight TeNPy two-site TDVP run, with its self-convergence against a doubled
    time step.
``scaling``
    Strong scaling of the parallel BUG on the long-range Ising chain: per-step wall time on
    1 and 2 MPI ranks (``mpiexec``), after warm-up steps. The benchmark starts itself under
    ``mpiexec`` with the hidden ``--scaling-worker`` option.

A full run of every case writes ``benchmarks/results/spin_chain.md``; ``--quick`` or a
subset of ``--cases`` only prints, unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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
    venv_mpiexec,
    write_report,
)
from problems.spin_chain import (
    SpinChainParams,
    build_tree,
    exact_dynamics,
    hamiltonian,
    initial_vectors,
    magnetization_operator,
)
from solvers.bug import INTEGRATORS, LinearTreeRHS
from tensorsim import Truncation
from tensorsim.ttn import local_expectations, product_state
from tensorsim.ttn.operator import to_ttno

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "spin_chain.md"

#: Default target for the maximal per-site error ``max_{t,k} |<Z_k>(t) - ref_k(t)|``.
TARGET = 1e-3

#: Spacing of the output times (every time step of every ladder divides it).
OUTPUT_DT = 0.1

#: Default time budget of one method's whole ladder in one case, in seconds.
BUDGET = 120.0

#: Parallel BUG settings of the strong-scaling runs (arXiv 2412.00858, Sec. 5.1).
SCALING_H = 0.01
SCALING_TRUNC = {"atol": 1e-8, "max_rank": 40, "min_rank": 2}


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    """One rung of a ladder.

    Attributes
    ----------
    dt
        Time step (must divide :data:`OUTPUT_DT`).
    tol
        Truncation tolerance: 2-norm of the singular values discarded per bond (tensorsim
        ``Truncation(atol=tol)``, TeNPy ``trunc_cut=tol``, quimb ``cutoff=tol**2`` with
        ``cutoff_mode="sum2"``).
    chi
        Largest rank of a tree edge (tensorsim) or bond dimension (MPS).
    """

    dt: float
    tol: float
    chi: int

    def label(self) -> str:
        """Short description, e.g. ``dt=0.05, tol=1e-05, chi<=64``."""
        return f"dt={self.dt:g}, tol={self.tol:.0e}, chi<={self.chi}"


@dataclass(frozen=True)
class Reference:
    """How the reference magnetizations of a case are made.

    Attributes
    ----------
    engine
        ``"exact"`` (:func:`problems.spin_chain.exact_dynamics`), ``"tebd"`` (TeNPy
        ``TEBDEngine`` of Trotter order ``order``) or ``"tdvp"`` (TeNPy
        ``TwoSiteTDVPEngine``).
    setting
        Setting of the reference run (TeNPy engines only).
    checks
        Settings of the self-convergence runs: each is run with the same engine and its
        difference from the reference run is reported.
    order
        Trotter order of TEBD.
    """

    engine: str
    setting: Setting | None = None
    checks: tuple[Setting, ...] = ()
    order: int = 2

    def describe(self) -> str:
        """Name of the engine, e.g. ``TeNPy TEBD, order 4``."""
        if self.engine == "tebd":
            return f"TeNPy TEBD, order {self.order}"
        if self.engine == "tdvp":
            return "TeNPy two-site TDVP"
        return "exact dynamics"


#: Exact dynamics of the full state vector (chains of at most 16 sites).
EXACT = Reference("exact")

#: Reference of the large TFIM: fourth-order TEBD, tight truncation; self-convergence
#: against a doubled time step and a looser truncation.
TEBD_REFERENCE = Reference(
    "tebd",
    Setting(0.05, 1e-8, 128),
    (Setting(0.1, 1e-8, 128), Setting(0.05, 1e-6, 96)),
    order=4,
)

#: Reference of the long long-range Ising chains: two-site TDVP, tight truncation;
#: self-convergence against a doubled time step.
TDVP_REFERENCE = Reference("tdvp", Setting(0.025, 1e-9, 256), (Setting(0.05, 1e-9, 256),))


@dataclass
class Run:
    """What one evolution produced.

    Attributes
    ----------
    mz
        ``<Z_k>`` at the output times reached (rows, starting with ``t = 0``) and the sites
        ``k`` (columns).
    wall
        Wall time in seconds: model/operator construction, initial state, evolution and the
        measurements at the output times.
    max_bond
        Largest edge rank (tensorsim) or bond dimension (MPS) seen at the output times.
    complete
        Whether the run reached the final time (``False``: stopped by the time budget).
    extra
        Method-specific remarks (tensorsim: rejected steps, norm drift).
    """

    mz: np.ndarray
    wall: float
    max_bond: int
    complete: bool
    extra: str = ""

    @property
    def t_reached(self) -> float:
        """Last output time reached."""
        return (len(self.mz) - 1) * OUTPUT_DT


Runner = Callable[["Case", Setting, float], Run]


@dataclass(frozen=True)
class Method:
    """A method of one case: how to run it and its ladder.

    Attributes
    ----------
    name
        Label in the tables.
    runner
        ``runner(case, setting, deadline)``; ``deadline`` is a ``time.perf_counter`` value
        after which the run stops at its next output time.
    ladder
        Settings from coarse to fine; the first that meets the case's target ends the
        ladder.
    peer
        Whether the method competes for "fastest" (an informational variant does not).
    """

    name: str
    runner: Runner
    ladder: tuple[Setting, ...]
    peer: bool = True


@dataclass(frozen=True)
class Case:
    """A benchmark case.

    Attributes
    ----------
    key
        Name on the command line.
    title
        Heading of its table.
    params
        The chain (model, size, couplings, tensorsim tree, initial state).
    t_end
        Final time.
    reference
        How the reference is made.
    methods
        The methods and their ladders.
    target
        Largest per-site error ``max_{t,k} |<Z_k>(t) - ref_k(t)|`` that meets the target.
    note
        Remark printed under the case's heading (empty: none).
    """

    key: str
    title: str
    params: SpinChainParams
    t_end: float
    reference: Reference
    methods: tuple[Method, ...]
    target: float = TARGET
    note: str = ""

    @property
    def times(self) -> np.ndarray:
        """The output times ``0, OUTPUT_DT, ..., t_end``."""
        return np.arange(_count(self.t_end, OUTPUT_DT) + 1) * OUTPUT_DT


@dataclass
class Attempt:
    """One run of a ladder and its errors against the reference.

    Attributes
    ----------
    setting
        The rung.
    run
        What the run produced.
    error
        ``max_{t,k} |<Z_k>(t) - ref_k(t)|`` over the output times reached and the sites.
    error_mean
        ``max_t |mean_k <Z_k>(t) - mean_k ref_k(t)|`` over the output times reached.
    target
        The case's target for ``error``.
    """

    setting: Setting
    run: Run
    error: float
    error_mean: float
    target: float = TARGET

    @property
    def met(self) -> bool:
        """Whether the run reached the final time with a per-site error <= ``target``."""
        return self.run.complete and self.error <= self.target

    def cell(self) -> str:
        """``setting: error / error_mean (time)``, marked when it met the target or stopped."""
        mark = " ✓" if self.met else ""
        if not self.run.complete:
            mark = f" (stopped by the budget at t = {self.run.t_reached:g})"
        extra = f", {self.run.extra}" if self.run.extra else ""
        return (
            f"{self.setting.label()}: {self.error:.1e} / {self.error_mean:.1e} "
            f"({self.run.wall:.1f} s{extra}){mark}"
        )


@dataclass
class MethodResult:
    """A method's ladder in one case."""

    method: Method
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def success(self) -> Attempt | None:
        """The attempt that met the target, if any."""
        return next((a for a in self.attempts if a.met), None)


@dataclass
class CaseResult:
    """Everything measured for one case."""

    case: Case
    reference_note: str
    methods: list[MethodResult]


def errors(mz: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Per-site and mean-magnetization errors of ``mz`` against ``reference``.

    Parameters
    ----------
    mz
        ``<Z_k>`` at the first output times, shape ``(n, sites)``.
    reference
        The reference at all output times, shape ``(n_t, sites)`` with ``n_t >= n``.

    Returns
    -------
    tuple[float, float]
        ``max_{t,k} |mz - reference|`` and ``max_t |mean_k mz - mean_k reference|`` over
        the first ``n`` output times.
    """
    ref = reference[: len(mz)]
    return (
        float(np.max(np.abs(mz - ref))),
        float(np.max(np.abs(mz.mean(axis=1) - ref.mean(axis=1)))),
    )


def _count(total: float, step: float) -> int:
    """``total / step`` as an integer, or ``ValueError`` if it is not one."""
    n = round(total / step)
    if n < 1 or abs(n * step - total) > 1e-9 * max(1.0, total):
        raise ValueError(f"{total:g} is not a positive multiple of {step:g}")
    return n


# --------------------------------------------------------------------------- tensorsim


def tensorsim_runner(integrator: str, tree: str | None = None, **options: Any) -> Runner:
    """Runner for a tensorsim integrator (``INTEGRATORS[integrator]``).

    Parameters
    ----------
    integrator
        ``"augmented_bug"``, ``"parallel_bug"`` (serial executor) or ``"tdvp"`` (one-site
        TDVP with enriched bases, :mod:`solvers.bug.tdvp`).
    tree
        Tree of the state; ``None`` keeps the case's ``params.tree``.
    **options
        Further keywords of the step function (e.g. ``enrich``); its defaults otherwise.

    Returns
    -------
    Runner
        Starts from the product state zero-padded to rank 2 (complex), truncates with
        ``Truncation(atol=tol, max_rank=chi, min_rank=2)`` and measures with
        :func:`tensorsim.ttn.local_expectations` (``<Z_k>`` of every site); records the
        largest ``|norm - 1|`` at the output times (the exact flow keeps the norm at 1).
    """

    def run(case: Case, setting: Setting, deadline: float) -> Run:
        start = time.perf_counter()
        params = case.params if tree is None else replace(case.params, tree=tree)
        ttn_tree = build_tree(params)
        rhs = LinearTreeRHS(to_ttno(hamiltonian(params), ttn_tree))
        y = product_state(ttn_tree, initial_vectors(params), rank=2, dtype=np.complex128)
        trunc = Truncation(atol=setting.tol, max_rank=setting.chi, min_rank=2)
        step = INTEGRATORS[integrator]
        z = magnetization_operator()
        per_output = _count(OUTPUT_DT, setting.dt)
        n_out = _count(case.t_end, OUTPUT_DT)
        mz = [np.asarray(local_expectations(y, z), dtype=float)]
        max_rank, rejected, k, drift = max(y.ranks().values()), 0, 0, 0.0
        for n in range(n_out):
            for _ in range(per_output):
                y, info = step(y, k * setting.dt, setting.dt, rhs=rhs, trunc=trunc, **options)
                k += 1
                max_rank = max(max_rank, max(info.ranks.values()))
                rejected += info.rejected
            mz.append(np.asarray(local_expectations(y, z), dtype=float))
            drift = max(drift, abs(float(y.norm()) - 1.0))
            if n + 1 < n_out and time.perf_counter() > deadline:
                break
        extra = f"max norm drift {drift:.0e}"
        if integrator == "parallel_bug":
            extra = f"{rejected} rejected steps, {extra}"
        return Run(
            np.asarray(mz), time.perf_counter() - start, max_rank, len(mz) == n_out + 1, extra
        )

    return run


# --------------------------------------------------------------------------- TeNPy


def _tenpy_long_range_ising(params: SpinChainParams) -> Any:
    """TeNPy model of the long-range Ising chain, built from the same terms as ours."""
    from tenpy.models.model import CouplingMPOModel
    from tenpy.networks.site import SpinHalfSite

    class LongRangeIsing(CouplingMPOModel):
        """``sum_k (omega Sigmax_k + delta N_k) + sum_{i<j} nu |i-j|^-alpha N_i N_j``."""

        def init_sites(self, model_params: Any) -> Any:
            site = SpinHalfSite(conserve=None)
            # basis (up, down), Sigmaz = diag(1, -1): N = diag(1, 0) = (1 + Sigmaz) / 2
            site.add_op("N", np.diag([1.0, 0.0]), hc="N")
            return site

        def init_terms(self, model_params: Any) -> None:
            d = params.sites
            for i in range(d):
                self.add_onsite_term(params.omega, i, "Sigmax")
                self.add_onsite_term(params.delta, i, "N")
            for i in range(d):
                for j in range(i + 1, d):
                    strength = params.nu * float(j - i) ** -params.alpha
                    self.add_coupling_term(strength, i, j, "N", "N")

    return LongRangeIsing({"L": params.sites, "bc_MPS": "finite", "bc_x": "open"})


def tenpy_model(params: SpinChainParams) -> Any:
    """TeNPy model of ``params`` (``TFIChain`` or the long-range Ising chain above)."""
    if params.model == "tfim":
        from tenpy.models.tf_ising import TFIChain

        return TFIChain(
            {"L": params.sites, "J": params.j, "g": params.g, "bc_MPS": "finite", "conserve": None}
        )
    if params.model == "long_range_ising":
        return _tenpy_long_range_ising(params)
    raise ValueError(f"no TeNPy model for {params.model!r}")


def _up_down_labels(params: SpinChainParams) -> list[str]:
    """``"up"``/``"down"`` per site from our initial product state (basis ``(up, down)``)."""
    labels = []
    for v in initial_vectors(params):
        if np.allclose(v, [1.0, 0.0]):
            labels.append("up")
        elif np.allclose(v, [0.0, 1.0]):
            labels.append("down")
        else:
            raise ValueError(f"initial vector {v} is not up or down")
    return labels


def tenpy_runner(engine: str, order: int = 2) -> Runner:
    """Runner for TeNPy's ``TEBDEngine`` (``engine="tebd"``) or ``TwoSiteTDVPEngine``.

    ``order`` is the Trotter order of TEBD. Truncation: ``chi_max=chi``, ``trunc_cut=tol``.
    Measures ``<Sigmaz>`` of every site (``psi.expectation_value``).
    """

    def run(case: Case, setting: Setting, deadline: float) -> Run:
        from tenpy.algorithms import tdvp, tebd
        from tenpy.networks.mps import MPS

        start = time.perf_counter()
        model = tenpy_model(case.params)
        psi = MPS.from_product_state(
            model.lat.mps_sites(),
            _up_down_labels(case.params),
            bc="finite",
            unit_cell_width=model.lat.mps_unit_cell_width,
        )
        options = {
            "dt": setting.dt,
            "N_steps": _count(OUTPUT_DT, setting.dt),
            "trunc_params": {"chi_max": setting.chi, "trunc_cut": setting.tol},
        }
        if engine == "tebd":
            eng = tebd.TEBDEngine(psi, model, {**options, "order": order})
        elif engine == "tdvp":
            eng = tdvp.TwoSiteTDVPEngine(psi, model, options)
        else:
            raise ValueError(f"engine: expected 'tebd' or 'tdvp', got {engine!r}")
        n_out = _count(case.t_end, OUTPUT_DT)
        mz = [np.real(psi.expectation_value("Sigmaz"))]
        chi = max(psi.chi)
        for n in range(n_out):
            eng.run()
            mz.append(np.real(psi.expectation_value("Sigmaz")))
            chi = max(chi, max(psi.chi))
            if n + 1 < n_out and time.perf_counter() > deadline:
                break
        return Run(np.asarray(mz), time.perf_counter() - start, chi, len(mz) == n_out + 1)

    return run


def tenpy_initial_energy(params: SpinChainParams) -> float:
    """``<psi0|H|psi0>`` of TeNPy's MPO on the initial product state (a convention check)."""
    from tenpy.networks.mps import MPS

    model = tenpy_model(params)
    psi = MPS.from_product_state(
        model.lat.mps_sites(),
        _up_down_labels(params),
        bc="finite",
        unit_cell_width=model.lat.mps_unit_cell_width,
    )
    return float(np.real(model.H_MPO.expectation_value(psi)))


def initial_energy(params: SpinChainParams) -> float:
    """``<psi0|H|psi0>`` of our Hamiltonian on the initial product state (dense in sites)."""
    vectors = initial_vectors(params)
    total = 0.0
    for coef, factors in hamiltonian(params).terms:
        value = coef
        for site, matrix in factors.items():
            v = vectors[site]
            value *= float(np.real(np.conj(v) @ np.asarray(matrix) @ v))
        total += value
    return total


# --------------------------------------------------------------------------- quimb


def quimb_runner(case: Case, setting: Setting, deadline: float) -> Run:
    """Run quimb's second-order ``TEBD`` on the TFIM (``max_bond=chi``, ``cutoff=tol**2``)."""
    import quimb as qu
    import quimb.tensor as qtn

    params = case.params
    if params.model != "tfim":
        raise ValueError("quimb TEBD: nearest-neighbour TFIM only")
    start = time.perf_counter()
    x, z = qu.pauli("X"), qu.pauli("Z")
    ham = qtn.LocalHam1D(params.sites, H2=-params.j * (x & x), H1=-params.g * z, cyclic=False)
    # quimb's |0> is Z = +1 ("up")
    bits = "".join("0" if label == "up" else "1" for label in _up_down_labels(params))
    evolution = qtn.TEBD(
        qtn.MPS_computational_state(bits),
        ham,
        dt=setting.dt,
        split_opts={"max_bond": setting.chi, "cutoff": setting.tol**2, "cutoff_mode": "sum2"},
        progbar=False,
    )
    times = case.times
    mz: list[np.ndarray] = []
    chi = 1
    for n, psi in enumerate(evolution.at_times(times, order=2, progbar=False)):
        mz.append(_quimb_z(psi))
        chi = max(chi, psi.max_bond())
        if 0 < n < len(times) - 1 and time.perf_counter() > deadline:
            break
    return Run(np.asarray(mz), time.perf_counter() - start, chi, len(mz) == len(times))


def _quimb_z(psi: Any) -> np.ndarray:
    """``<Z_k>`` of every site of a quimb MPS, normalized, sweeping the orthogonality centre."""
    work = psi.copy()
    info: dict[str, Any] = {}
    values = []
    for k in range(work.L):
        # magnetization() canonicalizes around k: <S^z_k> ||psi||^2 with S = sigma / 2
        value = 2.0 * float(np.real(work.magnetization(k, info=info)))
        values.append(value / float(np.linalg.norm(work[k].data)) ** 2)
    return np.asarray(values)


# --------------------------------------------------------------------------- ladders


def run_ladder(case: Case, method: Method, reference: np.ndarray, budget: float) -> MethodResult:
    """Try ``method.ladder`` in order until one setting meets ``case.target``.

    ``reference`` holds ``<Z_k>`` at ``case.times`` (rows) and the sites (columns). The
    whole ladder shares ``budget`` seconds: a run still going when it is spent stops at its
    next output time, and no further setting is tried.
    """
    result = MethodResult(method)
    deadline = time.perf_counter() + budget
    for setting in method.ladder:
        if time.perf_counter() > deadline:
            break
        run = method.runner(case, setting, deadline)
        attempt = Attempt(setting, run, *errors(run.mz, reference), target=case.target)
        result.attempts.append(attempt)
        progress(f"    {method.name}: {attempt.cell()}")
        if attempt.met:
            break
    return result


def warm_up() -> None:
    """Import TeNPy and quimb and run each once on a tiny chain (JIT and caches, untimed)."""
    tiny = SpinChainParams(model="tfim", sites=4)
    case = Case("warm-up", "", tiny, 0.1, EXACT, ())
    setting = Setting(0.05, 1e-8, 8)
    for runner in (tenpy_runner("tebd"), tenpy_runner("tdvp"), quimb_runner):
        runner(case, setting, math.inf)
    lr = replace(case, params=SpinChainParams(model="long_range_ising", sites=4))
    tenpy_runner("tdvp")(lr, setting, math.inf)


def reference_for(case: Case) -> tuple[np.ndarray, str]:
    """The reference ``<Z_k>`` at ``case.times`` and a sentence on how it was made.

    Returns
    -------
    tuple[np.ndarray, str]
        ``<Z_k>`` with shape ``(len(case.times), sites)``, and the note: for a TeNPy
        reference, its setting, the gaps (per site and of the mean) to the runs of
        ``case.reference.checks`` and, for at most 16 sites, to exact dynamics.
    """
    ref = case.reference
    times = case.times
    if ref.engine == "exact":
        start = time.perf_counter()
        exact = exact_dynamics(case.params, times)
        wall = time.perf_counter() - start
        note = (
            f"exact dynamics (`problems.spin_chain.exact_dynamics`, sparse Krylov exponential "
            f"of the full 2^{case.params.sites} state; {wall:.1f} s, not timed)."
        )
        return exact.mz, note
    if ref.setting is None:
        raise ValueError(f"reference {ref.engine!r} of case {case.key!r} has no setting")
    runner = tenpy_runner(ref.engine, order=ref.order)
    start = time.perf_counter()
    ref_run = runner(case, ref.setting, math.inf)
    wall = time.perf_counter() - start
    checks = []
    for setting in ref.checks:
        other = runner(case, setting, math.inf)
        gap, gap_mean = errors(other.mz, ref_run.mz)
        checks.append(
            f"{setting.label()} (max bond {other.max_bond}): {gap:.1e} per site, "
            f"{gap_mean:.1e} mean"
        )
    note = (
        f"{ref.describe()}, {ref.setting.label()} (max bond {ref_run.max_bond}; "
        f"{wall:.1f} s, not timed). Self-convergence, max |difference| over the output times "
        f"of <Z_k> (per site) and of the mean magnetization, against runs with "
        + "; ".join(checks)
    )
    if case.params.sites <= 16:
        gap, gap_mean = errors(ref_run.mz, exact_dynamics(case.params, times).mz)
        note += f"; against exact dynamics: {gap:.1e} per site, {gap_mean:.1e} mean"
    return ref_run.mz, note + "."


def run_case(case: Case, budget: float, methods: Sequence[str] | None = None) -> CaseResult:
    """Reference, then the ladder of every method (whose name contains one of ``methods``)."""
    progress(f"{case.key}: reference ...")
    reference, note = reference_for(case)
    e_ours, e_tenpy = initial_energy(case.params), tenpy_initial_energy(case.params)
    note += f" Convention check: <psi0|H|psi0> = {e_ours:.6g} (ours) vs {e_tenpy:.6g} (TeNPy MPO)."
    results = []
    for method in case.methods:
        if methods is not None and not any(m in method.name for m in methods):
            continue
        progress(f"  {case.key}: {method.name}")
        results.append(run_ladder(case, method, reference, budget))
    return CaseResult(case, note, results)


# --------------------------------------------------------------------------- cases


def _ladder(dts: Sequence[float], tol: float, chi: int) -> tuple[Setting, ...]:
    return tuple(Setting(dt, tol, chi) for dt in dts)


def make_cases(quick: bool) -> list[Case]:
    """The comparison cases (smaller chains and times with ``quick``)."""
    mps_tree = "caterpillar"  # MPS-like, as the peers' MPS
    ts_tdvp = "tensorsim TDVP (one-site, enriched)"
    ts_tdvp2 = "tensorsim TDVP (two-site)"
    bug_tfim = _ladder((0.05, 0.025, 0.01), 1e-5, 64)
    tebd = _ladder((0.1, 0.05, 0.025), 1e-5, 64)
    tdvp = _ladder((0.1, 0.05), 1e-5, 64)

    def tfim_methods(binary_variant: bool) -> tuple[Method, ...]:
        methods = [
            Method("tensorsim augmented BUG", tensorsim_runner("augmented_bug"), bug_tfim),
            Method("tensorsim parallel BUG", tensorsim_runner("parallel_bug"), bug_tfim),
            Method(
                ts_tdvp,
                tensorsim_runner("tdvp", tree=mps_tree),
                _ladder((0.1, 0.05, 0.025), 1e-5, 64),
            ),
            Method(
                ts_tdvp2,
                tensorsim_runner("tdvp2", tree=mps_tree),
                _ladder((0.1, 0.05, 0.025), 1e-5, 64),
            ),
            Method(
                "tensorsim TDVP (two-site, enrich=0)",
                tensorsim_runner("tdvp2", tree=mps_tree, enrich=0),
                _ladder((0.1, 0.05, 0.025), 1e-5, 64),
            ),
            Method("TeNPy TEBD (2nd order)", tenpy_runner("tebd"), tebd),
            Method("TeNPy two-site TDVP", tenpy_runner("tdvp"), tdvp),
            Method("quimb TEBD (2nd order)", quimb_runner, tebd),
        ]
        if binary_variant:
            methods.append(
                Method(
                    "(info) tensorsim augmented BUG, balanced binary tree",
                    tensorsim_runner("augmented_bug", tree="balanced_binary"),
                    (Setting(0.025, 1e-5, 64),),
                    peer=False,
                )
            )
        return tuple(methods)

    # paper settings (arXiv 2412.00858, Sec. 5.1): balanced binary tree, atol 1e-8, r <= 40
    bug_lr = _ladder((0.1, 0.05, 0.02, 0.01), 1e-8, 40)
    lr_methods = (
        Method(
            "tensorsim augmented BUG (balanced binary)", tensorsim_runner("augmented_bug"), bug_lr
        ),
        Method(
            "tensorsim parallel BUG (balanced binary)", tensorsim_runner("parallel_bug"), bug_lr
        ),
        Method(
            "tensorsim augmented BUG (caterpillar)",
            tensorsim_runner("augmented_bug", tree=mps_tree),
            _ladder((0.1, 0.05, 0.02, 0.01), 1e-8, 64),
        ),
        Method(
            ts_tdvp,
            tensorsim_runner("tdvp", tree=mps_tree),
            _ladder((0.1, 0.05, 0.025), 1e-8, 64),
        ),
        Method(
            ts_tdvp2,
            tensorsim_runner("tdvp2", tree=mps_tree),
            _ladder((0.1, 0.05, 0.025), 1e-8, 64),
        ),
        Method("TeNPy two-site TDVP", tenpy_runner("tdvp"), _ladder((0.1, 0.05), 1e-8, 64)),
    )
    # long chains: MPS-like tree for TDVP and the augmented BUG, the paper's tree for the
    # parallel BUG; the same ladder for all
    long_lr = _ladder((0.1, 0.05, 0.025), 1e-8, 128)
    # the BUG steps hold ranks up to twice the cap before truncation (the binary tree's
    # r^4 contractions): capped at 64, where one step at d = 32 takes seconds, not minutes
    long_bug = _ladder((0.1, 0.05, 0.025), 1e-8, 64)
    long_lr_methods = (
        Method(ts_tdvp, tensorsim_runner("tdvp", tree=mps_tree), long_lr),
        Method(
            "tensorsim TDVP (one-site, enrich=4)",
            tensorsim_runner("tdvp", tree=mps_tree, enrich=4),
            long_lr,
        ),
        Method(ts_tdvp2, tensorsim_runner("tdvp2", tree=mps_tree), long_lr),
        Method(
            "tensorsim TDVP (two-site, enrich=0)",
            tensorsim_runner("tdvp2", tree=mps_tree, enrich=0),
            long_lr,
        ),
        Method(
            "tensorsim augmented BUG (caterpillar)",
            tensorsim_runner("augmented_bug", tree=mps_tree),
            long_bug,
        ),
        Method(
            "tensorsim parallel BUG (balanced binary)", tensorsim_runner("parallel_bug"), long_bug
        ),
        Method("TeNPy two-site TDVP", tenpy_runner("tdvp"), long_lr),
    )
    small, lr_sites, large = (8, 8, 12) if quick else (16, 16, 64)
    t_tfim, t_lr = (1.0, 0.5) if quick else (2.0, 1.0)
    t_large = 0.5 if quick else 2.0
    t_long_lr = 0.2 if quick else 0.5
    cases = [
        Case(
            "tfim-exact",
            f"TFIM, L = {small}, J = 1, g = 1.5, T = {t_tfim:g} (reference: exact)",
            SpinChainParams(model="tfim", sites=small, j=1.0, g=1.5, tree=mps_tree),
            t_tfim,
            EXACT,
            tfim_methods(binary_variant=True),
        ),
        Case(
            "lr-ising",
            f"Long-range Ising, d = {lr_sites}, Omega = Delta = 1, nu = 2, alpha = 1, "
            f"T = {t_lr:g} (reference: exact)",
            SpinChainParams(model="long_range_ising", sites=lr_sites, tree="balanced_binary"),
            t_lr,
            EXACT,
            lr_methods,
        ),
        Case(
            "tfim-large",
            f"TFIM, L = {large}, J = 1, g = 1.5, T = {t_large:g} (reference: tight TEBD)",
            SpinChainParams(model="tfim", sites=large, j=1.0, g=1.5, tree=mps_tree),
            t_large,
            TEBD_REFERENCE,
            tfim_methods(binary_variant=False),
        ),
    ]
    for key, full_sites in (("lr-ising-32", 32), ("lr-ising-64", 64)):
        sites = 12 if quick else full_sites
        note = ""
        if full_sites == 64:
            note = (
                "The BUG ladders may end on the time budget at this size; a ladder ended so "
                "counts as not meeting the target within the budget."
            )
        cases.append(
            Case(
                key,
                f"Long-range Ising, d = {sites}, Omega = Delta = 1, nu = 2, alpha = 1, "
                f"T = {t_long_lr:g} (reference: tight two-site TDVP)",
                SpinChainParams(model="long_range_ising", sites=sites, tree="balanced_binary"),
                t_long_lr,
                TDVP_REFERENCE,
                long_lr_methods,
                target=1e-4,
                note=note,
            )
        )
    return cases


# --------------------------------------------------------------------------- scaling


@dataclass
class ScalingRun:
    """One strong-scaling run (read back from the worker's JSON)."""

    ranks: int
    sites: int
    data: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Whether the worker finished all steps."""
        return "error" not in self.data

    @property
    def mean_step(self) -> float:
        """Mean wall time of the timed steps (max over ranks of each step)."""
        return float(np.mean(self.data["step_times"]))


def _memory_limit(fraction: float) -> None:
    """Cap this process's address space at ``fraction`` of MemTotal (MemoryError, no OOM kill)."""
    import resource

    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            total_kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        return
    limit = int(fraction * total_kib * 1024)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def scaling_worker(sites: int, warmup: int, steps: int, path: Path, memory: float) -> None:
    """Run the parallel BUG under MPI; rank 0 writes per-step timings to ``path`` (JSON).

    Every step is bracketed by barriers, so a step time is the slowest rank's.
    """
    from tensorsim.parallel import Executor, get_comm

    comm = get_comm()
    _memory_limit(memory / comm.size)
    result: dict[str, Any] = {"ranks": comm.size, "sites": sites, "warmup": warmup}
    step_times: list[float] = []
    parallel: list[float] = []
    k = 0
    try:
        params = SpinChainParams(model="long_range_ising", sites=sites)
        tree = build_tree(params)
        rhs = LinearTreeRHS(to_ttno(hamiltonian(params), tree))
        y = product_state(tree, initial_vectors(params), rank=2, dtype=np.complex128)
        trunc = Truncation(**SCALING_TRUNC)
        executor = Executor(comm)
        rejected = 0
        for k in range(warmup + steps):
            comm.Barrier()
            start = time.perf_counter()
            y, info = INTEGRATORS["parallel_bug"](
                y, k * SCALING_H, SCALING_H, rhs=rhs, trunc=trunc, executor=executor
            )
            comm.Barrier()
            wall = time.perf_counter() - start
            if k >= warmup:
                step_times.append(wall)
                parallel.append(comm.allreduce(info.wall_parallel, op=_mpi_max()))
                rejected += info.rejected
        z = magnetization_operator()
        result.update(
            step_times=step_times,
            wall_parallel=parallel,
            rejected=rejected,
            max_rank=max(y.ranks().values()),
            mz_mean=float(np.mean(np.asarray(local_expectations(y, z)))),
        )
    except Exception as exc:  # reported in the results instead of a traceback
        message = str(exc).splitlines()[0] if str(exc) else ""
        result.update(error=f"{type(exc).__name__}: {message}"[:300], step=k + 1)
    if comm.rank == 0:
        path.write_text(json.dumps(result), encoding="utf-8")


def _mpi_max() -> Any:
    from mpi4py import MPI

    return MPI.MAX


def run_scaling(
    sites: Sequence[int], warmup: int, steps: int, timeout: float
) -> tuple[list[ScalingRun], list[str]]:
    """Strong scaling on 1 and 2 ranks for the first chain size in ``sites`` that works.

    A size whose 1-rank run fails (e.g. ``MemoryError``) is reported and the next is tried.
    """
    mpiexec = venv_mpiexec()
    runs: list[ScalingRun] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for d in sites:
            done = []
            for ranks in (1, 2):
                path = Path(tmp) / f"scaling_{d}_{ranks}.json"
                cmd = [
                    str(mpiexec),
                    "-n",
                    str(ranks),
                    "-genv",
                    "OMP_NUM_THREADS",
                    "1",
                    sys.executable,
                    "-m",
                    "benchmarks.spin_chain",
                    "--scaling-worker",
                    "--sites",
                    str(d),
                    "--warmup",
                    str(warmup),
                    "--steps",
                    str(steps),
                    "--json",
                    str(path),
                ]
                progress(f"  scaling: d = {d} on {ranks} rank(s) ...")
                start = time.perf_counter()
                try:
                    proc = subprocess.run(
                        cmd,
                        cwd=ROOT,
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        text=True,
                        timeout=timeout,
                        check=False,
                    )
                    failure = (
                        None
                        if path.exists()
                        else f"exit code {proc.returncode}: {proc.stderr.strip()[-300:]}"
                    )
                except subprocess.TimeoutExpired:
                    failure = f"timed out after {timeout:.0f} s"
                elapsed = time.perf_counter() - start
                data = (
                    {"error": failure} if failure else json.loads(path.read_text(encoding="utf-8"))
                )
                run = ScalingRun(ranks, d, data)
                if not run.ok:
                    step = f" in step {data['step']}" if "step" in data else ""
                    notes.append(
                        f"d = {d} on {ranks} rank(s) failed{step} after {elapsed:.0f} s: "
                        f"{data['error']}"
                    )
                    progress(f"    failed: {data['error']}")
                    break
                progress(f"    mean step {run.mean_step:.2f} s ({elapsed:.0f} s in all)")
                done.append(run)
            if len(done) == 2:
                runs = done
                break
    return runs, notes


# --------------------------------------------------------------------------- report


CASE_HEADER = (
    "method",
    "setting that met the target",
    "wall time",
    "max error per site",
    "max error of the mean",
    "max rank / bond dim.",
    "ratio to fastest",
    "ladder tried (setting: max error per site / of the mean (wall time))",
)


def case_table(result: CaseResult) -> str:
    """Markdown table of one case."""
    fastest = min(
        (m.success.run.wall for m in result.methods if m.method.peer and m.success),
        default=None,
    )
    rows = []
    for m in result.methods:
        ladder = "<br>".join(a.cell() for a in m.attempts) or "not run (budget)"
        hit = m.success
        if hit is None:
            best = min(m.attempts, key=lambda a: a.error, default=None)
            rows.append(
                [
                    m.method.name,
                    "**not met**",
                    "—",
                    f"best {best.error:.1e}" if best else "—",
                    f"{best.error_mean:.1e} (of that run)" if best else "—",
                    str(max((a.run.max_bond for a in m.attempts), default=0)),
                    "—",
                    ladder,
                ]
            )
            continue
        ratio = f"{hit.run.wall / fastest:.2f}" if m.method.peer and fastest else "—"
        rows.append(
            [
                m.method.name,
                hit.setting.label(),
                f"{hit.run.wall:.2f} s",
                f"{hit.error:.1e}",
                f"{hit.error_mean:.1e}",
                str(hit.run.max_bond),
                ratio,
                ladder,
            ]
        )
    return markdown_table(CASE_HEADER, rows)


def scaling_section(runs: Sequence[ScalingRun], notes: Sequence[str], steps: int) -> list[str]:
    """Markdown lines of the strong-scaling result."""
    lines = [f"- {note}" for note in notes]
    if lines:
        lines.append("")
    if len(runs) != 2:
        return [*lines, "No chain size completed on both 1 and 2 ranks."]
    one, two = runs
    rows = []
    for run in runs:
        t = np.asarray(run.data["step_times"])
        par = np.asarray(run.data["wall_parallel"])
        rows.append(
            [
                str(run.ranks),
                str(run.sites),
                f"{t.mean():.3f} s",
                f"{t.min():.3f} / {t.max():.3f} s",
                f"{par.mean():.3f} s ({100 * par.sum() / t.sum():.0f} %)",
                f"{one.mean_step / run.mean_step:.2f}",
                str(run.data["max_rank"]),
                str(run.data["rejected"]),
                f"{run.data['mz_mean']:.10f}",
            ]
        )
    header = (
        "MPI ranks",
        "sites d",
        "mean step time",
        "min / max step",
        "local problems (share)",
        "speedup vs 1 rank",
        "max rank at end",
        "rejected steps",
        "mean <Z> at end",
    )
    same = abs(one.data["mz_mean"] - two.data["mz_mean"])
    lines += [
        markdown_table(header, rows),
        "",
        f"Per-step wall time of {steps} parallel-BUG steps after {one.data['warmup']} warm-up "
        f"steps (h = {SCALING_H:g}, atol = {SCALING_TRUNC['atol']:g}, ranks "
        f"{SCALING_TRUNC['min_rank']}..{SCALING_TRUNC['max_rank']}, balanced binary tree, "
        "from all up), each step between two barriers. 'Local problems' is the time in the "
        "independent local flows spread over the ranks (slowest rank); the rest is the "
        f"replicated serial glue. |mean <Z>(1 rank) - mean <Z>(2 ranks)| = {same:.1e}.",
    ]
    return lines


def render(
    results: Sequence[CaseResult],
    scaling: tuple[list[ScalingRun], list[str], int] | None,
    budget: float,
    command: str,
    wall: float,
    load: tuple[tuple[float, ...], tuple[float, ...]],
    code_at_start: str,
) -> str:
    """Return the markdown report."""
    import quimb
    import tenpy

    info = machine_info()
    info["TeNPy"] = tenpy.__version__
    info["quimb"] = quimb.__version__
    info.update(run_provenance(code_at_start, load, wall))
    lines = [
        "# Spin-chain time evolution: tensorsim BUG and TDVP vs TeNPy and quimb",
        "",
        f"Generated by `{command}`.",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        "## How to read the tables",
        "",
        f"- Every method evolves the same Hamiltonian from the all-up product state (Z = +1 on "
        f"every site) in this one process and measures <Z_k> of every site k at the output "
        f"times t = 0, {OUTPUT_DT:g}, {2 * OUTPUT_DT:g}, ..., T (normalized states). Max "
        "error per site = max over t and k of |<Z_k>(t) - ref_k(t)|; max error of the mean "
        "= max over t of |mean_k <Z_k>(t) - mean_k ref_k(t)|, never larger than the "
        "per-site error.",
        f"- Ladder: settings tried coarse to fine; the first whose max error per site is at "
        f"most the case's target ({TARGET:g} unless the case says otherwise) ends it "
        "(✓). `dt` = time step; `tol` = truncation tolerance, the 2-norm of the singular "
        "values discarded per bond (tensorsim `Truncation(atol=tol)`, TeNPy "
        "`trunc_cut=tol`, quimb `cutoff=tol**2, cutoff_mode='sum2'`); `chi` = cap on the "
        "tree-edge rank (tensorsim) or the MPS bond dimension.",
        "- Wall time (`time.perf_counter`, one run, `OMP_NUM_THREADS=1`): building the "
        "model/operator and the initial state, the evolution, and the measurement at every "
        "output time. TeNPy and quimb each ran once on a tiny chain first (imports, numba "
        "caches), untimed.",
        "- Ratio to fastest = wall time / wall time of the fastest method that met the target "
        "in that case.",
        f"- Time budget: {budget:g} s per method and case for its whole ladder; a run "
        "still going then stops at its next output time (its error is up to the time "
        "reached) and the ladder ends.",
        "- tensorsim: product state zero-padded to rank 2, complex128, Krylov substeps, "
        "serial executor; parallel BUG with its default step rejection ('norm'). TDVP "
        "(one-site, enriched): symmetric second-order one-site TDVP sweep on the tree; "
        "before each step up to 8 directions of H Y are added to every edge basis, and at "
        "every move of the centre the edge is widened by up to 8 directions of the "
        "restricted H x (`solvers.bug.tdvp`); the '(enrich=4)' row uses 4 for both. "
        "Trees: TFIM cases use the caterpillar (MPS-like) tree for "
        "every tensorsim method (except the '(info)' row); the long-range Ising cases run "
        "the parallel BUG, and in `lr-ising` also one augmented BUG, on the balanced binary "
        "tree of arXiv 2412.00858, and TDVP and the augmented BUG '(caterpillar)' on the "
        "caterpillar tree. MPS rank vs tree rank: a caterpillar edge rank is an MPS bond "
        "dimension; a binary-tree edge rank is not.",
        "- Reference: exact dynamics for at most 16 sites; otherwise a tight TeNPy run whose "
        "self-convergence (difference to a run with a coarser setting, per site and of the "
        "mean) is given under the case's heading and bounds how small an error can be "
        "resolved.",
        "",
    ]
    for result in results:
        lines += [
            f"## {result.case.title}",
            "",
            f"Reference: {result.reference_note}",
            "",
            f"Target: max error per site <= {result.case.target:g}."
            + (f" {result.case.note}" if result.case.note else ""),
            "",
            case_table(result),
            "",
        ]
    if scaling is not None:
        runs, notes, steps = scaling
        lines += ["## Strong scaling of the parallel BUG (long-range Ising)", ""]
        lines += scaling_section(runs, notes, steps)
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

CASE_KEYS = ("tfim-exact", "lr-ising", "tfim-large", "lr-ising-32", "lr-ising-64", "scaling")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = ladder_parser(
        "python -m benchmarks.spin_chain",
        "Compare tensorsim's BUG and TDVP integrators with TeNPy and quimb on spin chains.",
        CASE_KEYS,
        "spin_chain.md",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=None,
        metavar="TEXT",
        help="run only the methods whose name contains one of these (e.g. TDVP quimb)",
    )
    parser.add_argument("--scaling-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sites", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory", type=float, default=0.8, help=argparse.SUPPRESS)
    return check_budget(parser, parser.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> None:
    """Run the selected cases, print the report and write it for a full run."""
    args = parse_args(argv)
    if args.scaling_worker:
        if args.json is None:
            raise SystemExit("--scaling-worker needs --json")
        scaling_worker(args.sites, args.warmup, args.steps, args.json, args.memory)
        return
    if os.environ.get("OMP_NUM_THREADS") != "1":
        progress("warning: OMP_NUM_THREADS is not 1; timings on shared cores will suffer")
    budget = args.budget if args.budget is not None else (10.0 if args.quick else BUDGET)
    load_start = os.getloadavg()
    code_at_start = code_state()
    start = time.perf_counter()
    progress("warming up TeNPy and quimb ...")
    warm_up()
    results = [
        run_case(case, budget, args.methods)
        for case in make_cases(args.quick)
        if case.key in args.cases
    ]
    scaling = None
    if "scaling" in args.cases:
        progress("scaling ...")
        sites, warmup, steps = ((16,), 2, 3) if args.quick else ((64, 32), 10, 5)
        runs, notes = run_scaling(sites, warmup, steps, timeout=60 if args.quick else 300)
        scaling = (runs, notes, steps)
    command = " ".join(
        ["python -m benchmarks.spin_chain", *(sys.argv[1:] if argv is None else argv)]
    )
    report = render(
        results,
        scaling,
        budget,
        command,
        time.perf_counter() - start,
        (load_start, os.getloadavg()),
        code_at_start,
    )
    full = not args.quick and set(args.cases) == set(CASE_KEYS) and args.methods is None
    output = args.output if args.output is not None or not full else RESULTS
    write_report(report, output)


if __name__ == "__main__":
    main()
