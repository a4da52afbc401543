"""Configuration of a BUG time integration and the step function it stands for.

:class:`BUGParams` holds every option of the BUG integrators that a run configures (the
integrator, the truncation, the local solver, the parallel BUG's step rejection, the
mass-conservative truncation and the rank of the initial state); :func:`make_stepper` turns
it into one ``step(y, t, h) -> (y, info)`` for a right-hand side. What an integrator accepts
is read from its registration (:data:`solvers.bug.common.INTEGRATOR_OPTIONS`), so no caller
tests integrator names: an option an integrator does not take is refused when it is set
(:class:`~tensorsim.config.ConfigError`), never silently dropped.

References
----------
G. Ceruti, J. Kusch, Ch. Lubich, BIT 62 (2022) 1149, arXiv 2104.05247 (augmented BUG);
G. Ceruti, J. Kusch, Ch. Lubich, D. Sulz, arXiv 2412.00858 (parallel BUG on trees).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from solvers.bug.common import INTEGRATOR_OPTIONS, INTEGRATORS, LinearTreeRHS, StepInfo
from tensorsim.config import ConfigError, Params, param
from tensorsim.linalg import Truncation
from tensorsim.parallel import Executor
from tensorsim.ttn import TTN, Tree, product_state
from tensorsim.ttn.conservation import include_functional

__all__ = ["BUGParams", "Stepper", "make_stepper"]

logger = logging.getLogger(__name__)

#: ``step(y, t, h) -> (y, info)``: one step of size ``h`` from the state ``y`` at time ``t``.
Stepper = Callable[[TTN, float, float], tuple[TTN, StepInfo]]


def _takers(option: str) -> list[str]:
    """The registered integrators whose step function takes ``option``."""
    return sorted(name for name, opts in INTEGRATOR_OPTIONS.items() if option in opts)


def _only(option: str) -> str:
    names = _takers(option)
    listed = ", ".join(repr(n) for n in names) or "none"
    return f"applies to integrator{'s' if len(names) > 1 else ''} {listed} only"


@dataclass(frozen=True)
class BUGParams(Params):
    """Time integration by a BUG integrator (the step size belongs to the time loop).

    Attributes
    ----------
    integrator
        ``"parallel_bug"`` (arXiv 2412.00858), ``"augmented_bug"`` (rank-adaptive BUG,
        arXiv 2104.05247), ``"midpoint_bug"`` (second order, after arXiv 2402.08607; see
        :mod:`solvers.bug.midpoint`), ``"tdvp"`` (one-site TDVP on the tree, symmetric
        second-order sweep, rank growth by ``enrich``; :mod:`solvers.bug.tdvp`),
        ``"tdvp2"`` (two-site TDVP, ranks from the truncated splits of the sweep;
        :mod:`solvers.bug.tdvp2`) or
        ``"bug"`` (fixed rank: the ranks of the initial state, see ``initial_rank``). The
        parallel BUG drops the blocks with two new directions, a first-order error that
        the tolerance must keep small: it needs about 10x smaller ``rtol`` than the
        augmented BUG for the same accuracy.
    atol
        Absolute truncation tolerance per edge (2-norm of the discarded singular values);
        ``None``: not used.
    rtol
        Truncation tolerance relative to the norm of the state; ``None``: not used. The
        tolerance of an edge is ``max(atol, rtol * norm)``.
    max_rank, min_rank
        Rank bounds of every edge.
    initial_rank
        Rank of the zero-padded initial product state (:meth:`initial_state`): the rank
        the fixed-rank ``"bug"`` keeps, and the room the rank-adaptive integrators start
        from.
    substep
        Local problems by Krylov exponentials (``"krylov"``, exact) or one classical RK4
        step (``"rk4"``).
    rejection
        Step rejection of the parallel BUG: ``"norm"`` (the paper's rules with a norm-defect
        test for norm-conserving problems), ``"paper"`` (the rules of arXiv 2412.00858) or
        ``"none"``; see :func:`solvers.bug.parallel_bug_step`. Refused for other
        integrators unless left at its default.
    enrich
        Rank-adaptive integrators and TDVP: before each step, up to this many directions of
        ``H Y0`` are added to every edge basis (``Y0`` unchanged; ``0``: none), so that the
        step can create correlations that need two-site changes across an edge (the XXZ
        chain from a Néel state), whatever the zero-weight padding; see
        :mod:`solvers.bug.enrichment`. Refused for ``"bug"`` unless left at its default.
    normal_rtol
        Rank-adaptive integrators: a step whose normal-component estimate
        ``info.normal`` exceeds ``normal_rtol * info.increment`` is redone once with the
        enrichment widened to ``max_rank``; ``None``: never. Refused for ``"bug"`` unless
        left at its default.
    conserve
        Mass-conservative truncation along the product functional the problem supplies
        (its weight vectors, ``make_stepper(..., conserve=weights)``): the functional's
        directions stay in the bases and every truncation restores its value, so the mass
        changes only as the discrete operator changes it (exactly constant with periodic
        boundaries and no absorption). One direction per edge is reserved for it, within
        ``max_rank``.
    """

    integrator: Literal[
        "parallel_bug", "augmented_bug", "midpoint_bug", "tdvp", "tdvp2", "bug"
    ] = param("parallel_bug", "BUG integrator (parallel_bug needs ~10x smaller rtol)")
    atol: float | None = param(1e-8, "absolute truncation tolerance per edge", gt=0.0)
    rtol: float | None = param(None, "truncation tolerance relative to the norm", gt=0.0)
    max_rank: int = param(40, "largest rank of an edge", ge=1)
    min_rank: int = param(2, "smallest rank of an edge", ge=1)
    initial_rank: int = param(2, "rank of the zero-padded initial state", ge=1)
    substep: Literal["krylov", "rk4"] = param("krylov", "local problems: Krylov or RK4")
    rejection: Literal["norm", "paper", "none"] = param(
        "norm", "parallel BUG step rejection (norm = paper rules + norm-defect test)"
    )
    enrich: int = param(8, "directions of H Y0 added to every basis before a step", ge=0)
    normal_rtol: float | None = param(
        1e-2, "redo a step, widely enriched, if normal > normal_rtol * increment", gt=0.0
    )
    conserve: bool = param(False, "mass-conservative truncation (problem's functional)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_rank < self.min_rank:
            raise ConfigError(
                f"config key 'max_rank': {self.max_rank} is smaller than "
                f"min_rank = {self.min_rank}"
            )
        if self.initial_rank > self.max_rank:
            raise ConfigError(
                f"config key 'initial_rank': {self.initial_rank} is larger than "
                f"max_rank = {self.max_rank}"
            )
        options = INTEGRATOR_OPTIONS.get(self.integrator, frozenset())
        default = {f.name: f.default for f in dataclasses.fields(self)}
        for name in ("rejection", "enrich", "normal_rtol"):
            value = getattr(self, name)
            if value != default[name] and name not in options:
                raise ConfigError(
                    f"config key {name!r}: {value!r} {_only(name)}, not to integrator "
                    f"{self.integrator!r}"
                )
        if self.conserve and "conserve" not in options:
            raise ConfigError(
                f"config key 'conserve': the mass-conservative truncation "
                f"{_only('conserve')}, not to integrator {self.integrator!r}"
            )

    def truncation(self) -> Truncation:
        """The truncation after every step: ``atol``, ``rtol``, ``max_rank``, ``min_rank``."""
        return Truncation(
            atol=self.atol, rtol=self.rtol, max_rank=self.max_rank, min_rank=self.min_rank
        )

    def initial_state(
        self,
        tree: Tree,
        vectors: Sequence[Any],
        *,
        dtype: Any = None,
        conserve: Sequence[Any] | None = None,
    ) -> TTN:
        """The product state of ``vectors`` zero-padded to ``initial_rank`` on ``tree``.

        With ``conserve = True`` the problem's functional (weight vectors ``conserve``) is
        included in the bases (:func:`tensorsim.ttn.conservation.include_functional`), as the
        conservative truncation needs; otherwise ``conserve`` is not used.

        Parameters
        ----------
        tree
            The tree of the state.
        vectors
            One vector per site (see :func:`tensorsim.ttn.product_state`).
        dtype
            Dtype of the state (default float64).
        conserve
            The weight vectors of the problem's conserved product functional, or None if
            it has none.

        Raises
        ------
        ValueError
            If ``conserve = True`` and no weight vectors are given.
        """
        y = product_state(tree, vectors, rank=self.initial_rank, dtype=dtype)
        if not self.conserve:
            return y
        return include_functional(y, _weights(conserve))

    def accepts(self, option: str) -> bool:
        """Whether the step function of ``integrator`` takes the keyword ``option``."""
        return option in INTEGRATOR_OPTIONS.get(self.integrator, frozenset())


def _weights(conserve: Sequence[Any] | None) -> Sequence[Any]:
    if conserve is None:
        raise ValueError("conserve: this problem defines no conserved functional")
    if isinstance(conserve, str | bytes) or not isinstance(conserve, Sequence):
        raise TypeError(
            f"conserve: expected a sequence of weight vectors (one per site), got "
            f"{type(conserve).__name__}"
        )
    return conserve


def make_stepper(
    params: BUGParams,
    rhs: LinearTreeRHS,
    *,
    executor: Executor | None = None,
    conserve: Sequence[Any] | None = None,
) -> Stepper:
    """The step function of ``params`` for the problem ``dY/dt = rhs(Y)``.

    Every integrator gets ``rhs``, ``trunc = params.truncation()``, ``executor`` and
    ``substep``; ``rejection`` (the parallel BUG), ``enrich`` and ``normal_rtol`` (the
    rank-adaptive ones) go to the integrators that take them, and
    with ``params.conserve`` the weight vectors ``conserve`` go along. The integrator is
    looked up in :data:`solvers.bug.INTEGRATORS` now, once.

    Parameters
    ----------
    params
        The integration options.
    rhs
        The right-hand side.
    executor
        Spreads the independent local problems over MPI ranks (serial by default).
    conserve
        Weight vectors ``w_0, ..., w_{d-1}`` of the problem's conserved product functional
        ``m(Y) = <w_0 (x) ... (x) w_{d-1}, Y>`` (e.g. the mass), or None if the problem has
        none. Used only with ``params.conserve`` (a problem supplies its functional; the
        configuration decides whether truncation keeps it).

    Returns
    -------
    Stepper
        ``step(y, t, h) -> (y, info)``: a :func:`functools.partial` of the integrator (its
        ``func`` and ``keywords`` show what is passed).

    Raises
    ------
    TypeError
        If ``params`` is not a BUGParams or ``rhs`` not a LinearTreeRHS.
    ValueError
        If ``params.conserve`` is set and no weights are given (or the integrator does not
        take them), or if the weights are not one per site of ``rhs``'s tree.
    """
    if not isinstance(params, BUGParams):
        raise TypeError(f"params: expected a BUGParams, got {type(params).__name__}")
    if not isinstance(rhs, LinearTreeRHS):
        raise TypeError(f"rhs: expected a LinearTreeRHS, got {type(rhs).__name__}")
    options: dict[str, Any] = {
        "rhs": rhs,
        "trunc": params.truncation(),
        "executor": executor,
        "substep": params.substep,
    }
    for name in ("rejection", "enrich", "normal_rtol"):
        if params.accepts(name):
            options[name] = getattr(params, name)
    if params.conserve:
        weights = _weights(conserve)
        if not params.accepts("conserve"):
            raise ValueError(
                f"conserve: the mass-conservative truncation {_only('conserve')}, not to "
                f"integrator {params.integrator!r}"
            )
        tree = rhs.op.tree if rhs.op is not None else rhs.source.tree
        if len(weights) != tree.n_sites:
            raise ValueError(
                f"conserve: expected {tree.n_sites} weight vectors (one per site), got "
                f"{len(weights)}"
            )
        options["conserve"] = weights
    return functools.partial(INTEGRATORS[params.integrator], **options)
