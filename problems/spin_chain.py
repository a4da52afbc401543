"""Spin-1/2 chains for tree tensor network time evolution, with exact references.

Four open chains (or ladders, square lattices) of ``d`` qubits are described
declaratively (a :class:`SpinChainParams` configuration):

``"long_range_ising"``
    The Rydberg-type long-range Ising chain of arXiv 2412.00858, Sec. 5.1,
    ``H = sum_k (omega X_k + delta n_k) + sum_{i<j} nu |i-j|^(-alpha) n_i n_j`` with
    ``n = diag(1, 0)``.
``"tfim"``
    The transverse-field Ising chain in TeNPy's ``TFIChain`` convention,
    ``H = -J sum_i X_i X_{i+1} - g sum_i Z_i``.
``"xxz"``
    The XXZ chain in a longitudinal field,
    ``H = J sum_i (X_i X_{i+1} + Y_i Y_{i+1} + jz Z_i Z_{i+1}) + hz sum_i Z_i``.
``"j1j2"``
    The J1-J2 Heisenberg model, exchange ``J1 = j`` on nearest and ``J2 = j2`` on
    next-nearest neighbours (chain: ``(k, k + 1)`` and ``(k, k + 2)``; ladder and square
    lattice: the bonds and the plaquette diagonals, :func:`next_nearest_bonds`),
    ``H = J1 sum_<ij> (X_i X_j + Y_i Y_j + Z_i Z_j) + J2 sum_<<ij>> (X_i X_j + Y_i Y_j +
    Z_i Z_j)``, the Pauli convention of the XXZ model (``X.X = 4 S.S``). At the
    Majumdar-Ghosh point ``J2 = J1 / 2`` an open chain of even length has the dimer
    product (singlets on ``(0, 1), (2, 3), ...``) as a ground state, energy
    ``-3 J1 d / 2``.

``X, Y, Z`` are the Pauli matrices (not spin operators ``S = sigma / 2``). The local basis
is ``(up, down)``: the first basis vector ``(1, 0)`` has ``Z = +1`` and ``n = 1``. The state
is evolved by ``psi' = -i H psi``. The Hamiltonians are written with the named operators of
:data:`tensorsim.ttn.SPIN_HALF` (:class:`tensorsim.ttn.ModelBuilder`); other site types
(spin 1, hard-core bosons) and models: ``docs/physics.md``, "Building your own model".

:func:`hamiltonian` gives a :class:`~tensorsim.ttn.operator.SumOfProducts`,
:func:`build_tree` the tree, :func:`initial_vectors` the product initial state, and
:func:`exact_dynamics` an exact reference (sparse Krylov exponential of the full
Hamiltonian) for up to 16 sites.

Problems are declarative: this module builds data and imports neither MPI, HDF5 nor solvers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tensorsim.config import ConfigError, Params, param
from tensorsim.ttn import SPIN_HALF, TTN, ModelBuilder, Tree, validate
from tensorsim.ttn.operator import SumOfProducts

__all__ = [
    "CORRELATIONS",
    "MAX_EXACT_SITES",
    "NUMBER",
    "PAULI_X",
    "PAULI_Y",
    "PAULI_Z",
    "ExactResult",
    "SpinChainParams",
    "build_tree",
    "exact_dynamics",
    "exact_ground_state",
    "hamiltonian",
    "hamiltonian_terms",
    "initial_vectors",
    "load_state",
    "magnetization_operator",
    "lattice_bonds",
    "lattice_shape",
    "neighbour_zz",
    "next_nearest_bonds",
]

logger = logging.getLogger(__name__)


def _constant(rows: list[list[complex]], dtype: type) -> np.ndarray:
    out = np.array(rows, dtype=dtype)
    out.setflags(write=False)
    return out


PAULI_X = _constant([[0, 1], [1, 0]], np.float64)
"""Pauli ``sigma_x`` (read-only)."""
PAULI_Y = _constant([[0, -1j], [1j, 0]], np.complex128)
"""Pauli ``sigma_y`` (read-only, complex)."""
PAULI_Z = _constant([[1, 0], [0, -1]], np.float64)
"""Pauli ``sigma_z`` (read-only); ``+1`` on the first basis vector ``(1, 0)``."""
NUMBER = _constant([[1, 0], [0, 0]], np.float64)
"""Occupation ``n = diag(1, 0) = (1 + Z) / 2`` of arXiv 2412.00858 (read-only)."""

PAULIS = {"x": PAULI_X, "y": PAULI_Y, "z": PAULI_Z}
"""The Pauli matrices by name."""

CORRELATIONS = tuple(f"{p}{p}" for p in PAULIS)
"""Names of the two-point correlation matrices: ``"xx"``, ``"yy"``, ``"zz"``."""

MAX_EXACT_SITES = 16
"""Largest chain :func:`exact_dynamics` accepts (the state vector has ``2**sites`` entries)."""

# Below scipy's threshold 2 ell p_max (p_max + 3) / m_max = 6.4 (ell = 2, p_max = 8, m_max = 55)
# for computing the 1-norms of matrix powers in expm_multiply.
_CHUNK_NORM = 6.0

Model = Literal["long_range_ising", "tfim", "xxz", "j1j2"]
TreeKind = Literal["balanced_binary", "caterpillar"]
Lattice = Literal["chain", "ladder", "square"]


#: The couplings each model uses.
COUPLINGS = {
    "long_range_ising": ("omega", "delta", "delta_rate", "nu", "alpha"),
    "tfim": ("j", "g"),
    "xxz": ("j", "jz", "hz"),
    "j1j2": ("j", "j2"),
}


@dataclass(frozen=True)
class SpinChainParams(Params):
    """A spin-1/2 chain: model, size, tree, couplings and initial product state.

    Only the couplings of the selected ``model`` are used (:data:`COUPLINGS`); giving
    another model's coupling a value other than its default is refused.

    Attributes
    ----------
    model
        ``"long_range_ising"`` (arXiv 2412.00858, Sec. 5.1), ``"tfim"`` (TeNPy's
        ``TFIChain``), ``"xxz"`` or ``"j1j2"``; see the module docstring for the
        Hamiltonians.
    sites
        Number of sites ``d`` (at least 2); on a ladder or square lattice ``lx * ly``.
    lattice
        ``"chain"`` (open), ``"ladder"`` (``lx`` x 2) or ``"square"`` (``lx`` x ``ly``),
        open boundaries; site ``(x, y)`` is ``k = x * ly + y``. The nearest-neighbour
        models couple the lattice's bonds (:func:`lattice_bonds`), the J1-J2 model also
        its next-nearest neighbours (:func:`next_nearest_bonds`); the long-range Ising
        model decays with the Euclidean distance.
    lx, ly
        Extent of a ladder or square lattice (``ly = 2`` for a ladder); unused on a chain.
    tree
        Tree of the state: ``"balanced_binary"`` (the lattice bisected across its longer
        extent, recursively: left half, right half on a chain) or ``"caterpillar"``
        (MPS-like, along ``k``: the snake of a 2-D lattice).
    omega
        Long-range Ising: transverse field ``Omega`` of ``Omega X_k``.
    delta
        Long-range Ising: detuning ``Delta`` of ``Delta n_k`` (at ``t = 0``).
    delta_rate
        Long-range Ising: a linear detuning ramp ``Delta(t) = delta + delta_rate * t``
        (the Rydberg sweep); ``0``: a time-independent Hamiltonian.
    nu
        Long-range Ising: interaction strength ``nu`` of ``nu |i-j|^(-alpha) n_i n_j``.
    alpha
        Long-range Ising: decay exponent ``alpha >= 0`` of the interaction.
    j
        TFIM: Ising coupling ``J`` of ``-J X_i X_{i+1}``; XXZ: exchange ``J`` of
        ``J (X_i X_{i+1} + Y_i Y_{i+1} + jz Z_i Z_{i+1})``; J1-J2: the nearest-neighbour
        exchange ``J1`` of ``J1 (X_i X_j + Y_i Y_j + Z_i Z_j)``.
    g
        TFIM: transverse field ``g`` of ``-g Z_i``.
    jz
        XXZ: anisotropy ``jz``.
    hz
        XXZ: longitudinal field ``hz`` of ``hz Z_i``.
    j2
        J1-J2: the next-nearest-neighbour exchange ``J2`` (``0.5``: the Majumdar-Ghosh
        point of the chain, with ``j = 1``).
    initial
        Initial product state: ``"up"`` (every site in ``(1, 0)``, ``Z = +1``) or ``"neel"``
        (up, down, up, ... starting with up on site 0).
    initial_state
        A file whose checkpoint holds a state on the same tree (the output of
        ``python -m drivers.spin_chain ground``): the start of a quench, instead of
        ``initial`` (:func:`load_state`). Empty: the product state.
    """

    model: Model = param("long_range_ising", "Hamiltonian: long_range_ising, tfim, xxz or j1j2")
    sites: int = param(16, "number of sites d (lx * ly on a ladder or square lattice)", ge=2)
    lattice: Lattice = param("chain", "lattice: chain, ladder (lx x 2) or square (lx x ly)")
    lx: int = param(0, "ladder/square lattice: extent in x (sites = lx * ly)", ge=0)
    ly: int = param(0, "square lattice: extent in y (2 on a ladder)", ge=0)
    tree: TreeKind = param("balanced_binary", "tree of the state: balanced_binary or caterpillar")
    omega: float = param(1.0, "long-range Ising: transverse field Omega (Omega X_k)")
    delta: float = param(1.0, "long-range Ising: detuning Delta (Delta n_k) at t = 0")
    delta_rate: float = param(0.0, "long-range Ising: ramp, Delta(t) = delta + delta_rate t")
    nu: float = param(2.0, "long-range Ising: interaction nu (nu |i-j|^-alpha n_i n_j)")
    alpha: float = param(1.0, "long-range Ising: interaction decay exponent alpha", ge=0.0)
    j: float = param(1.0, "TFIM: coupling J (-J X_i X_i+1); XXZ: exchange J; J1-J2: J1")
    g: float = param(1.5, "TFIM: transverse field g (-g Z_i)")
    jz: float = param(1.0, "XXZ: anisotropy jz (J jz Z_i Z_i+1)")
    hz: float = param(0.0, "XXZ: longitudinal field hz (hz Z_i)")
    j2: float = param(0.5, "J1-J2: next-nearest-neighbour exchange J2")
    initial: Literal["up", "neel"] = param("up", "initial product state: up or neel")
    initial_state: str = param("", "start from the state stored in this file (a ground run)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lattice == "chain" and (self.lx or self.ly):
            raise ConfigError(
                "config keys 'lx'/'ly': the extents of a ladder or square lattice, not of "
                "lattice 'chain' (set lattice = 'square' or 'ladder')"
            )
        if self.lattice == "ladder" and self.ly not in (0, 2):
            raise ConfigError(f"config key 'ly': a ladder has ly = 2, got {self.ly}")
        if self.lattice != "chain":
            ly = 2 if self.lattice == "ladder" else self.ly
            if self.lx < 1 or ly < 1 or self.lx * ly != self.sites:
                raise ConfigError(
                    f"config keys 'lx', 'ly', 'sites': a {self.lattice} lattice needs lx, ly "
                    f">= 1 and sites = lx * ly, got lx={self.lx}, ly={ly}, sites={self.sites}"
                )
        if self.initial_state and self.initial != "up":
            raise ConfigError(
                "config keys 'initial' and 'initial_state': give one start (the product "
                "state 'initial' or the stored state 'initial_state'), not both"
            )
        for f in dataclasses.fields(self):
            owners = [m for m, names in COUPLINGS.items() if f.name in names]
            if owners and self.model not in owners and getattr(self, f.name) != f.default:
                raise ConfigError(
                    f"config key {f.name!r}: a coupling of model {' or '.join(map(repr, owners))}"
                    f", not of model {self.model!r}"
                )


@dataclass(frozen=True, eq=False)
class ExactResult:
    """Exact observables of a spin chain along a time grid.

    Attributes
    ----------
    times
        The times, shape ``(n_t,)``.
    mz
        ``<Z_k>`` of the normalised state, shape ``(n_t, sites)``.
    mz_mean
        ``(1 / sites) sum_k <Z_k>``, shape ``(n_t,)``.
    zz
        Nearest-neighbour correlations ``<Z_k Z_{k+1}>`` of the normalised state, shape
        ``(n_t, sites - 1)``.
    energy
        ``<H>`` of the normalised state, shape ``(n_t,)``; constant up to round-off (a check).
    norm
        ``||psi(t)||``, shape ``(n_t,)``; 1 up to round-off (a check).
    entropy
        With ``cuts``: von Neumann entropy (nats) of each cut, shape ``(n_t, n_cuts)``.
    corr
        With ``correlations``: name (``"xx"``, ``"yy"``, ``"zz"``) -> ``<P_i P_j>`` of the
        normalised state, shape ``(n_t, sites, sites)``.
    """

    times: np.ndarray
    mz: np.ndarray
    mz_mean: np.ndarray
    zz: np.ndarray
    energy: np.ndarray
    norm: np.ndarray
    entropy: np.ndarray | None = None
    corr: dict[str, np.ndarray] = field(default_factory=dict)


def _check_params(params: SpinChainParams) -> None:
    if not isinstance(params, SpinChainParams):
        raise TypeError(f"params: expected SpinChainParams, got {type(params).__name__}")
    if isinstance(params.sites, bool) or not isinstance(params.sites, int) or params.sites < 2:
        raise ValueError(f"sites: a chain needs at least 2 sites, got {params.sites!r}")


def _check_finite(params: SpinChainParams, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(params, name)
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite value, got {value}")


def hamiltonian_terms(
    params: SpinChainParams,
) -> list[tuple[Callable[[float], float], SumOfProducts]]:
    """``H(t) = sum_k f_k(t) H_k``: the pieces of a time-dependent Hamiltonian.

    A time-independent model is one piece with ``f = 1``. The detuning ramp of the
    long-range Ising model (``delta_rate != 0``) is the model without detuning plus
    ``Delta(t) sum_k n_k`` with ``Delta(t) = delta + delta_rate * t``.
    """
    _check_params(params)
    if params.model != "long_range_ising" or params.delta_rate == 0.0:
        return [(lambda t: 1.0, hamiltonian(params))]
    _check_finite(params, ("delta", "delta_rate"))
    static = dataclasses.replace(params, delta=0.0, delta_rate=0.0)
    occupation = SumOfProducts(
        [(1.0, {k: NUMBER}) for k in range(params.sites)], dims=(2,) * params.sites
    )
    delta, rate = params.delta, params.delta_rate
    return [(lambda t: 1.0, hamiltonian(static)), (lambda t: delta + rate * t, occupation)]


def lattice_shape(params: SpinChainParams) -> tuple[int, int]:
    """``(lx, ly)`` of the lattice: ``(sites, 1)`` for a chain, ``(lx, 2)`` for a ladder."""
    if params.lattice == "chain":
        return params.sites, 1
    return params.lx, 2 if params.lattice == "ladder" else params.ly


def lattice_bonds(params: SpinChainParams) -> list[tuple[int, int]]:
    """Nearest-neighbour pairs ``(i, j)``, ``i < j``, of the open lattice.

    On a chain ``(k, k + 1)``; on a ladder or square lattice the bonds along x, then
    along y, each in order of ``i`` (site ``(x, y)`` is ``k = x * ly + y``).
    """
    lx, ly = lattice_shape(params)
    along_x = [(x * ly + y, (x + 1) * ly + y) for x in range(lx - 1) for y in range(ly)]
    along_y = [(x * ly + y, x * ly + y + 1) for x in range(lx) for y in range(ly - 1)]
    return sorted(along_x + along_y)


def next_nearest_bonds(params: SpinChainParams) -> list[tuple[int, int]]:
    """Next-nearest-neighbour pairs ``(i, j)``, ``i < j``, of the open lattice (J1-J2).

    On a chain ``(k, k + 2)``; on a ladder or square lattice the two diagonals of every
    plaquette, ``(x, y)-(x + 1, y + 1)`` and ``(x, y + 1)-(x + 1, y)``, in order of ``i``.
    """
    lx, ly = lattice_shape(params)
    if params.lattice == "chain":
        return [(k, k + 2) for k in range(lx - 2)]
    pairs = [
        pair
        for x in range(lx - 1)
        for y in range(ly - 1)
        for pair in (
            (x * ly + y, (x + 1) * ly + y + 1),
            (x * ly + y + 1, (x + 1) * ly + y),
        )
    ]
    return sorted(pairs)


def _distance(params: SpinChainParams, i: int, j: int) -> float:
    _, ly = lattice_shape(params)
    return math.hypot(i // ly - j // ly, i % ly - j % ly)


def hamiltonian(params: SpinChainParams) -> SumOfProducts:
    """The Hamiltonian of the chain as a sum of products of 2x2 matrices.

    Built from named operators by :class:`~tensorsim.ttn.ModelBuilder` on
    :data:`~tensorsim.ttn.SPIN_HALF` sites. Terms with a zero coefficient are left out (a
    Hamiltonian that is zero altogether is the single term ``0 * identity``). All four
    models are real: the ``Y_i Y_j`` coupling of the XXZ and J1-J2 models is kept as
    ``-(iY)_i (iY)_j`` with the real matrix ``iY``.

    Parameters
    ----------
    params
        The chain.

    Returns
    -------
    SumOfProducts
        Hermitian operator on ``params.sites`` sites of dimension 2 (site 0 = most
        significant factor of :meth:`~tensorsim.ttn.operator.SumOfProducts.to_sparse`).

    Raises
    ------
    ValueError
        If the chain has fewer than 2 sites or a used coupling is not finite.
    TypeError
        If ``params`` is not a :class:`SpinChainParams`.
    """
    _check_params(params)
    d = params.sites
    model = ModelBuilder(SPIN_HALF, d)
    if params.model == "long_range_ising":
        _check_finite(params, ("omega", "delta", "nu", "alpha"))
        model.add_onsite(params.omega, "X")
        model.add_onsite(params.delta, "N")
        for i in range(d):
            for j in range(i + 1, d):
                model.add(params.nu * _distance(params, i, j) ** -params.alpha, "N", i, "N", j)
    elif params.model == "tfim":
        _check_finite(params, ("j", "g"))
        model.add_coupling(-params.j, "X", "X", lattice_bonds(params))
        model.add_onsite(-params.g, "Z")
    elif params.model == "xxz":
        _check_finite(params, ("j", "jz", "hz"))
        _exchange(model, params.j, lattice_bonds(params), params.jz)
        model.add_onsite(params.hz, "Z")
    elif params.model == "j1j2":
        _check_finite(params, ("j", "j2"))
        _exchange(model, params.j, lattice_bonds(params))
        _exchange(model, params.j2, next_nearest_bonds(params))
    else:  # pragma: no cover - Literal validation in SpinChainParams rejects other names
        raise ValueError(f"model: unknown model {params.model!r}")
    op = model.operator()
    logger.debug("%s hamiltonian on %d sites: %d terms", params.model, d, len(op.terms))
    return op


def _exchange(
    model: ModelBuilder, j: float, bonds: list[tuple[int, int]], jz: float = 1.0
) -> None:
    """``j (X_i X_j + Y_i Y_j + jz Z_i Z_j)`` on every bond, the three terms bond by bond."""
    for bond in bonds:
        model.add_coupling(j, "X", "X", [bond])
        model.add_coupling(j, "Y", "Y", [bond])  # kept real: -(iY)_i (iY)_j
        model.add_coupling(j * jz, "Z", "Z", [bond])


def build_tree(params: SpinChainParams) -> Tree:
    """The tree of the state (``params.tree``) over the ``params.sites`` sites, dimension 2.

    Parameters
    ----------
    params
        The chain.

    Returns
    -------
    Tree
        :meth:`Tree.balanced_binary` or :meth:`Tree.caterpillar`.
    """
    _check_params(params)
    if params.tree == "caterpillar":
        return Tree.caterpillar(params.sites, 2)
    if params.lattice == "chain":
        return Tree.balanced_binary(params.sites, 2)
    lx, ly = lattice_shape(params)
    return Tree.from_nested(_bisect(range(lx), range(ly), ly), dims=2)


def _bisect(xs: range, ys: range, ly: int) -> Any:
    """Nested halves of the block ``xs`` x ``ys``, cut across its longer extent."""
    if len(xs) * len(ys) == 1:
        return xs[0] * ly + ys[0]
    if len(xs) >= len(ys):
        half = len(xs) // 2
        return (_bisect(xs[:half], ys, ly), _bisect(xs[half:], ys, ly))
    half = len(ys) // 2
    return (_bisect(xs, ys[:half], ly), _bisect(xs, ys[half:], ly))


def initial_vectors(params: SpinChainParams) -> list[np.ndarray]:
    """The initial product state, one normalised length-2 vector per site.

    Parameters
    ----------
    params
        The chain; ``params.initial`` is ``"up"`` (``(1, 0)`` everywhere) or ``"neel"``
        (``(1, 0)`` on even sites, ``(0, 1)`` on odd sites).

    Returns
    -------
    list of numpy.ndarray
        ``params.sites`` float64 vectors of length 2.
    """
    _check_params(params)
    up, down = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    if params.initial == "up":
        return [up.copy() for _ in range(params.sites)]
    return [(up if k % 2 == 0 else down).copy() for k in range(params.sites)]


def magnetization_operator() -> np.ndarray:
    """The local magnetisation observable, Pauli ``Z`` (a fresh, writeable copy).

    Returns
    -------
    numpy.ndarray
        ``diag(1, -1)``.
    """
    return PAULI_Z.copy()


def neighbour_zz(params: SpinChainParams) -> list[SumOfProducts]:
    """The nearest-neighbour correlation operators ``Z_i Z_j``, one per lattice bond.

    On a chain ``Z_k Z_{k+1}``, ``k = 0 .. sites - 2``; on a lattice the pairs of
    :func:`lattice_bonds`.

    Parameters
    ----------
    params
        The chain.

    Returns
    -------
    list of SumOfProducts
        One single-term operator per pair of neighbours.
    """
    _check_params(params)
    dims = (2,) * params.sites
    return [
        SumOfProducts([(1.0, {i: PAULI_Z, j: PAULI_Z})], dims) for i, j in lattice_bonds(params)
    ]


def _z_signs(d: int) -> np.ndarray:
    """``signs[x, k] = <x|Z_k|x>`` for basis index ``x = sum_k bit_k 2**(d-1-k)``."""
    index = np.arange(2**d, dtype=np.int64)
    shifts = np.arange(d - 1, -1, -1, dtype=np.int64)
    bits = (index[:, None] >> shifts[None, :]) & 1
    return 1.0 - 2.0 * bits


def _check_times(times: np.ndarray) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"times: expected a non-empty 1-D array, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("times: expected finite values")
    if t[0] < 0:
        raise ValueError(f"times: expected times >= 0, got {t[0]}")
    if np.any(np.diff(t) < 0):
        raise ValueError("times: expected a non-decreasing sequence")
    return t


def pauli_correlations(psi: np.ndarray, pauli: str) -> np.ndarray:
    """``<P_i P_j>`` of a state vector for every pair of sites (``<P_i P_i> = 1``).

    ``psi`` has ``2**d`` entries, site 0 the most significant bit (the order of
    ``np.kron(v_0, v_1, ...)``); any norm (the result is normalised). ``pauli``: ``"x"``,
    ``"y"`` or ``"z"``.
    """
    if pauli not in PAULIS:
        raise ValueError(f"pauli: expected one of {sorted(PAULIS)}, got {pauli!r}")
    op = PAULIS[pauli]
    d = round(math.log2(psi.size))
    v = np.asarray(psi, dtype=np.complex128).reshape((2,) * d)
    single = [np.moveaxis(np.tensordot(op, v, axes=(1, k)), 0, k) for k in range(d)]
    norm2 = np.vdot(v, v).real
    out = np.eye(d)
    for i in range(d):
        for j in range(i + 1, d):
            both = np.moveaxis(np.tensordot(op, single[j], axes=(1, i)), 0, i)
            out[i, j] = out[j, i] = np.vdot(v, both).real / norm2
    return out


def cut_entropy(psi: np.ndarray, sites: Sequence[int]) -> float:
    """Von Neumann entropy (nats) of the reduced state of ``sites`` (normalised ``psi``)."""
    d = round(math.log2(psi.size))
    below = list(sites)
    rest = [k for k in range(d) if k not in set(below)]
    m = np.transpose(np.asarray(psi).reshape((2,) * d), below + rest).reshape(2 ** len(below), -1)
    p = np.linalg.svd(m, compute_uv=False) ** 2
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum())


def load_state(path: str | Path, tree: Tree) -> TTN:
    """The state stored as the checkpoint of ``path``, on ``tree`` (complex128).

    Raises
    ------
    ValueError
        If the file holds no checkpoint, or its tensors do not fit ``tree`` (another
        lattice, size or tree kind than the run that wrote it).
    """
    from tensorsim.io import read_checkpoint

    if not Path(path).is_file():
        raise ValueError(f"initial_state: no file {path}")
    checkpoint = read_checkpoint(path)
    if checkpoint is None:
        raise ValueError(f"initial_state: {path} holds no stored state (no checkpoint)")
    try:
        tensors = tuple(
            np.asarray(checkpoint.arrays[f"nodes/{n}"], dtype=np.complex128)
            for n in range(tree.n_nodes)
        )
        state = TTN(tree, tensors)
        validate(state)
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"initial_state: the state in {path} does not fit this model's tree "
            f"({tree.n_sites} sites): {exc}"
        ) from None
    return state


def exact_ground_state(params: SpinChainParams) -> tuple[float, np.ndarray]:
    """The lowest eigenvalue and a normalised eigenvector of the chain's Hamiltonian.

    SciPy's sparse Lanczos (``eigsh``, smallest algebraic) on the full Hamiltonian, for at
    most :data:`MAX_EXACT_SITES` sites; the vector in the order of ``np.kron`` (site 0 the
    most significant).
    """
    import scipy.sparse.linalg as spla

    _check_params(params)
    if params.sites > MAX_EXACT_SITES:
        raise ValueError(
            f"sites: exact_ground_state handles at most {MAX_EXACT_SITES} sites, got "
            f"{params.sites}"
        )
    h = hamiltonian(params).to_sparse().tocsr()
    start = np.random.default_rng(0).standard_normal(h.shape[0])  # reproducible to the bit
    values, vectors = spla.eigsh(h, k=1, which="SA", tol=1e-14, v0=start)
    vector = vectors[:, 0]
    return float(values[0]), vector / np.linalg.norm(vector)


def _time_ordered(
    pieces: list[tuple[Callable[[float], float], Any]], psi: np.ndarray, t0: float, t1: float
) -> np.ndarray:
    """``T exp(-i int_t0^t1 H(t) dt) psi`` for ``H(t) = sum_k f_k(t) H_k`` (sparse ``H_k``).

    SciPy's DOP853 (order 8) on ``psi' = -i H(t) psi`` with relative and absolute
    tolerances 1e-12: far below the errors of the integrators it checks.
    """
    from scipy.integrate import solve_ivp

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        return -1j * sum(f(t) * (h @ y) for f, h in pieces)

    sol = solve_ivp(rhs, (t0, t1), psi, method="DOP853", rtol=1e-12, atol=1e-12)
    if not sol.success:  # pragma: no cover - a smooth linear ODE
        raise RuntimeError(f"exact_dynamics: the time-ordered reference failed: {sol.message}")
    return sol.y[:, -1]


def exact_dynamics(
    params: SpinChainParams,
    times: np.ndarray,
    *,
    vectors: Sequence[np.ndarray] | None = None,
    start: np.ndarray | None = None,
    cuts: Sequence[Sequence[int]] = (),
    correlations: Sequence[str] = (),
) -> ExactResult:
    """Exact time evolution ``psi(t) = exp(-i t H) psi(0)`` from a product state.

    With a detuning ramp (``delta_rate != 0``) the time-ordered exponential of ``H(t)``
    (:func:`hamiltonian_terms`), integrated by SciPy's DOP853 at tolerance 1e-12.

    The full state vector (``2**sites`` entries) is propagated from one time to the next
    with :func:`scipy.sparse.linalg.expm_multiply` on the sparse Hamiltonian. ``<Z_k>`` is
    read off ``|psi|**2`` by bit arithmetic on the basis index.

    A long step is split into equal chunks with ``||dt (H - mu)||_1 <= 6`` (``mu`` the mean
    diagonal), below the threshold where ``expm_multiply`` estimates 1-norms of matrix powers;
    that halves the cost of coarse time grids. Each call has a fixed overhead of a few
    sparse-matrix passes, so fine grids cost about 60 ms per time at 16 sites.

    Parameters
    ----------
    params
        The chain, with ``params.sites <= 16`` (:data:`MAX_EXACT_SITES`).
    times
        Non-decreasing times, the first ``>= 0`` (``0`` gives the initial state).
    vectors
        The product state, one length-2 vector per site (any norm, complex allowed);
        default :func:`initial_vectors` of ``params``.
    start
        Instead of ``vectors``: the initial state vector itself (``2**sites`` entries,
        site 0 the most significant), e.g. a ground state.
    cuts
        Sets of sites whose entanglement entropy with the rest is wanted at every time
        (:func:`cut_entropy`), e.g. ``tree.sites_below[edge]`` for every tree edge.
    correlations
        Pauli pairs ``"xx"``, ``"yy"``, ``"zz"`` whose full correlation matrices are wanted
        (:func:`pauli_correlations`).

    Returns
    -------
    ExactResult
        Magnetisations and nearest-neighbour ``ZZ`` correlations (of the normalised state),
        energy and norm at every time.

    Raises
    ------
    ValueError
        If ``params.sites`` exceeds 16, or ``times`` is empty, not 1-D, not finite,
        negative or decreasing.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    _check_params(params)
    d = params.sites
    if d > MAX_EXACT_SITES:
        raise ValueError(
            f"sites: exact_dynamics handles at most {MAX_EXACT_SITES} sites, got {d} "
            f"(the state vector has 2^sites = 2^{d} entries and the sparse Hamiltonian "
            "grows alike)"
        )
    t = _check_times(times)
    h = hamiltonian(params).to_sparse().tocsr()
    gen = (-1j) * h
    # expm_multiply shifts by mu = trace / n; chunks of 1-norm <= _CHUNK_NORM skip its costly
    # 1-norm estimates of matrix powers, at about the same number of products per unit time.
    trace = float(h.trace().real)
    mu = trace / h.shape[0]
    shifted_norm = float(abs(h - mu * sp.identity(h.shape[0], format="csr")).sum(axis=0).max())
    if vectors is None:
        vectors = initial_vectors(params)
    if len(vectors) != d or any(np.shape(v) != (2,) for v in vectors):
        raise ValueError(f"vectors: expected {d} vectors of length 2 (one per site)")
    for name in correlations:
        if name not in CORRELATIONS:
            raise ValueError(f"correlations: expected 'xx', 'yy' or 'zz', got {name!r}")
    if start is not None:
        psi = np.asarray(start, dtype=np.complex128).reshape(-1)
        if psi.size != 2**d:
            raise ValueError(f"start: expected 2**{d} = {2**d} entries, got {psi.size}")
    else:
        psi = np.ones(1, dtype=np.complex128)
        for v in vectors:
            psi = np.kron(psi, np.asarray(v, dtype=np.complex128))
    signs = _z_signs(d)
    n_t = t.size
    mz = np.empty((n_t, d))
    zz = np.empty((n_t, len(lattice_bonds(params))))
    first, second = np.array(lattice_bonds(params)).T
    pair_signs = signs[:, first] * signs[:, second]
    energy = np.empty(n_t)
    norm = np.empty(n_t)
    entropy = np.empty((n_t, len(cuts))) if cuts else None
    corr = {name: np.empty((n_t, d, d)) for name in correlations}
    previous = 0.0
    pieces = hamiltonian_terms(params)
    driven = len(pieces) > 1
    if driven:
        sparse = [(f, op.to_sparse().tocsr()) for f, op in pieces]
    for n, tn in enumerate(t):
        step = tn - previous
        if step > 0 and driven:
            psi = _time_ordered(sparse, psi, previous, tn)
        elif step > 0:
            chunks = max(1, math.ceil(step * shifted_norm / _CHUNK_NORM))
            dt = step / chunks
            a = gen * dt
            for _ in range(chunks):
                psi = spla.expm_multiply(a, psi, traceA=-1j * dt * trace)
        previous = tn
        nrm2 = float(np.vdot(psi, psi).real)
        prob = np.abs(psi) ** 2
        mz[n] = (prob @ signs) / nrm2
        zz[n] = (prob @ pair_signs) / nrm2
        h_now = sum(f(tn) * op for f, op in sparse) if driven else h
        energy[n] = float(np.vdot(psi, h_now @ psi).real) / nrm2
        norm[n] = math.sqrt(nrm2)
        for c, sites in enumerate(cuts):
            entropy[n, c] = cut_entropy(psi / norm[n], sites)
        for name in correlations:
            corr[name][n] = pauli_correlations(psi, name[0])
    logger.debug(
        "exact %s dynamics on %d sites to t=%g: |norm-1| <= %.2e, energy drift %.2e",
        params.model,
        d,
        t[-1],
        float(np.max(np.abs(norm - 1.0))),
        float(np.ptp(energy)),
    )
    return ExactResult(
        times=t.copy(),
        mz=mz,
        mz_mean=mz.mean(axis=1),
        zz=zz,
        energy=energy,
        norm=norm,
        entropy=entropy,
        corr=corr,
    )
