"""Operators from named site operators: site types and a builder of :class:`SumOfProducts`.

A :class:`SiteType` names the local operators of one kind of site (their matrices in a fixed
basis). :class:`ModelBuilder` (or the one-call :func:`build_operator`) turns terms written
with those names into the :class:`~tensorsim.ttn.operator.SumOfProducts` that
:func:`~tensorsim.ttn.operator.to_ttno` compresses:

>>> b = ModelBuilder(SPIN_ONE, 4)
>>> b.add_coupling(1.0, "Sz", "Sz", [(0, 1), (1, 2), (2, 3)])
>>> b.add_coupling(0.5, "Sp", "Sm", [(0, 1), (1, 2), (2, 3)], hermitian_conjugate=True)
>>> h = b.operator()  # the open spin-1 Heisenberg chain, sum_i S_i . S_{i+1}
>>> h.dims, len(h.terms), h.is_complex
((3, 3, 3, 3), 9, False)

The shipped site types (module constants; the first basis vector is listed first):

:data:`SPIN_HALF`
    Basis ``(up, down)``. Pauli matrices ``"X"``, ``"Y"``, ``"Z"`` (``Z = diag(1, -1)``,
    eigenvalues ``+-1``); spin operators ``"Sx"``, ``"Sy"``, ``"Sz"`` ``= sigma / 2``
    (eigenvalues ``+-1/2``) and the ladder operators ``"Sp" = Sx + i Sy = |up><down|``,
    ``"Sm" = Sp^dagger``; ``"N" = diag(1, 0) = (1 + Z) / 2`` (the Rydberg occupation of
    ``problems.spin_chain``: ``up`` is the occupied state); ``"Id"``.
:data:`SPIN_ONE`
    Basis ``(m = +1, 0, -1)``: ``"Sz" = diag(1, 0, -1)``, ``"Sp"`` with
    ``<m + 1|Sp|m> = sqrt(2)``, ``"Sm" = Sp^dagger``, ``"Sx" = (Sp + Sm) / 2``,
    ``"Sy" = (Sp - Sm) / (2 i)``, ``"Id"``. :func:`spin_site` gives any spin ``S``.
:data:`HARDCORE_BOSON`
    Basis ``(|0>, |1>)`` by occupation (empty first, unlike ``SPIN_HALF``'s ``N``):
    ``"B" = |0><1|`` (annihilation), ``"Bdag" = |1><0|``, ``"N" = Bdag B = diag(0, 1)``,
    ``"Id"``.

**Real representation.** ``"Y"`` and ``"Sy"`` are complex. Every named matrix that is real
or purely imaginary is stored as ``i^k R`` with ``R`` real, and the phases of a product
term are collected into its coefficient: a term whose coefficient comes out real is kept
with real matrices (``Y_i Y_j = -(iY)_i (iY)_j`` with the real matrix ``iY``), so a real
model gives a real operator (``SumOfProducts.is_complex`` is ``False``) and a real TTNO.
A term that is not real on its own (``Y_i`` with a real coefficient) is kept with a complex
coefficient; a model whose complex terms only cancel in the sum is returned complex (still
exact; :func:`~tensorsim.ttn.operator.to_ttno` then works in complex arithmetic).

The construction is NumPy-only by design: it runs once, on the host, like
:mod:`tensorsim.ttn.operator`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tensorsim.ttn.operator import SumOfProducts

__all__ = [
    "HARDCORE_BOSON",
    "SITE_TYPES",
    "SPIN_HALF",
    "SPIN_ONE",
    "ModelBuilder",
    "SiteType",
    "build_operator",
    "spin_site",
]

_Factor = tuple[int, np.ndarray]  # (k, R): the matrix i^k R (R real, or complex with k = 0)


def _read_only(m: np.ndarray) -> np.ndarray:
    m = np.array(m)
    m.setflags(write=False)
    return m


def _split_phase(m: np.ndarray) -> _Factor:
    """``(k, R)`` with ``m = i^k R``: ``R`` real where ``m`` is real or purely imaginary."""
    if not np.iscomplexobj(m):
        return 0, m
    if not np.any(m.imag):
        return 0, _read_only(m.real)
    if not np.any(m.real):
        # m = i b = (-i) (-b), so iY = [[0, 1], [-1, 0]]; 0.0 - b has no negative zeros
        return 3, _read_only(0.0 - m.imag)
    return 0, m


def _times_i_power(c: complex | float, k: int) -> complex | float:
    """``c * i^k``, exact (swaps and sign changes only); a real result as a float."""
    k %= 4
    a, b = (c.real, c.imag) if isinstance(c, complex) else (c, 0.0)
    a, b = ((a, b), (-b, a), (-a, -b), (b, -a))[k]
    return complex(a, b) if b != 0.0 else float(a)


@dataclass(frozen=True, eq=False)
class SiteType:
    """A kind of site: its dimension and named local operators.

    Parameters
    ----------
    name
        A label for messages (``"spin_half"``).
    operators
        Name -> square matrix, all of one dimension (finite entries). ``"Id"``, the
        identity, is added if missing (and must be the identity if given).

    Attributes
    ----------
    dim
        The local dimension.

    Raises
    ------
    ValueError
        If ``name`` is empty, ``operators`` is empty, a matrix is not square, of another
        dimension than the others, not finite, or ``"Id"`` is not the identity.
    TypeError
        If an operator name is not a string.
    """

    name: str
    operators: Mapping[str, np.ndarray]
    dim: int = field(init=False)
    _factors: dict[str, _Factor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty string, got {self.name!r}")
        if not isinstance(self.operators, Mapping) or not self.operators:
            raise ValueError("operators: expected a non-empty mapping name -> matrix")
        mats: dict[str, np.ndarray] = {}
        dim = None
        for op, m in self.operators.items():
            if not isinstance(op, str) or not op:
                raise TypeError(f"operators: names must be non-empty strings, got {op!r}")
            m = np.asarray(m)
            if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
                raise ValueError(f"operators[{op!r}]: expected a square matrix, got {m.shape}")
            if not np.issubdtype(m.dtype, np.number) or np.issubdtype(m.dtype, np.bool_):
                raise ValueError(f"operators[{op!r}]: expected a numeric matrix, got {m.dtype}")
            if not np.all(np.isfinite(m)):
                raise ValueError(f"operators[{op!r}]: the matrix is not finite")
            if dim is not None and m.shape[0] != dim:
                raise ValueError(
                    f"operators[{op!r}]: dimension {m.shape[0]}, the others have {dim}"
                )
            dim = m.shape[0]
            dtype = np.complex128 if np.iscomplexobj(m) else np.float64
            mats[op] = _read_only(m.astype(dtype))
        assert dim is not None
        if "Id" in mats and not np.array_equal(mats["Id"], np.eye(dim)):
            raise ValueError("operators['Id']: expected the identity matrix")
        mats.setdefault("Id", _read_only(np.eye(dim)))
        object.__setattr__(self, "operators", dict(sorted(mats.items())))
        object.__setattr__(self, "dim", dim)
        object.__setattr__(self, "_factors", {op: _split_phase(m) for op, m in mats.items()})

    def __repr__(self) -> str:
        return f"SiteType({self.name!r}, dim={self.dim}, operators={', '.join(self.names)})"

    @property
    def names(self) -> tuple[str, ...]:
        """The operator names, sorted."""
        return tuple(self.operators)

    def __getitem__(self, op: str) -> np.ndarray:
        """The matrix of ``op`` (read-only)."""
        return self.operators[self._check_name(op)]

    def _check_name(self, op: Any, where: str = "op") -> str:
        if not isinstance(op, str):
            raise TypeError(f"{where}: expected an operator name (str), got {op!r}")
        if op not in self.operators:
            raise ValueError(
                f"{where}: unknown operator {op!r} of site type {self.name!r}; valid: "
                f"{', '.join(self.names)}"
            )
        return op

    def _factor(self, op: Any, where: str) -> _Factor:
        return self._factors[self._check_name(op, where)]


def spin_site(spin: float) -> SiteType:
    """The site of a spin ``S``: ``"Sx"``, ``"Sy"``, ``"Sz"``, ``"Sp"``, ``"Sm"``, ``"Id"``.

    Basis ``m = S, S - 1, ..., -S`` (``Sz`` decreasing), ``<m + 1|Sp|m> =
    sqrt(S (S + 1) - m (m + 1))``. Spin 1/2 adds the Pauli matrices ``"X"``, ``"Y"``,
    ``"Z"`` (``= 2 S``) and ``"N" = diag(1, 0)``: that is :data:`SPIN_HALF`.

    Parameters
    ----------
    spin
        ``S``, a positive multiple of 1/2.

    Returns
    -------
    SiteType
        Of dimension ``2 S + 1``, named ``"spin_half"``, ``"spin_one"`` or ``"spin_<S>"``.
    """
    twice = 2 * spin if isinstance(spin, numbers.Real) and not isinstance(spin, bool) else None
    if twice is None or not math.isfinite(twice) or twice < 1 or twice != int(twice):
        raise ValueError(f"spin: expected a positive multiple of 1/2, got {spin!r}")
    dim = int(twice) + 1
    m = spin - np.arange(dim)  # S, S - 1, ..., -S
    sp = np.zeros((dim, dim))
    for a in range(1, dim):  # |m + 1> = basis a - 1 from |m> = basis a
        sp[a - 1, a] = math.sqrt(spin * (spin + 1) - m[a] * (m[a] + 1))
    sm = sp.T.copy()
    ops = {
        "Sz": np.diag(m),
        "Sp": sp,
        "Sm": sm,
        "Sx": (sp + sm) / 2,
        "Sy": (sp - sm) / 2j,
    }
    if dim == 2:
        ops |= {
            "X": np.array([[0.0, 1.0], [1.0, 0.0]]),
            "Y": np.array([[0.0, -1.0j], [1.0j, 0.0]]),
            "Z": np.diag([1.0, -1.0]),
            "N": np.diag([1.0, 0.0]),
        }
    name = {2: "spin_half", 3: "spin_one"}.get(dim, f"spin_{spin:g}")
    return SiteType(name, ops)


SPIN_HALF = spin_site(0.5)
"""Spin 1/2 in the basis ``(up, down)``: Pauli and spin operators, ``N = diag(1, 0)``."""
SPIN_ONE = spin_site(1)
"""Spin 1 in the basis ``(m = +1, 0, -1)``."""
HARDCORE_BOSON = SiteType(
    "hardcore_boson",
    {
        "B": np.array([[0.0, 1.0], [0.0, 0.0]]),
        "Bdag": np.array([[0.0, 0.0], [1.0, 0.0]]),
        "N": np.diag([0.0, 1.0]),
    },
)
"""Hard-core bosons in the basis ``(|0>, |1>)``: ``B``, ``Bdag``, ``N = Bdag B``."""

SITE_TYPES: dict[str, SiteType] = {s.name: s for s in (SPIN_HALF, SPIN_ONE, HARDCORE_BOSON)}
"""The shipped site types by name (a builder also takes these names)."""


def _site_type(value: Any, where: str) -> SiteType:
    if isinstance(value, SiteType):
        return value
    if isinstance(value, str):
        if value not in SITE_TYPES:
            raise ValueError(
                f"{where}: unknown site type {value!r}; valid: {', '.join(sorted(SITE_TYPES))}"
            )
        return SITE_TYPES[value]
    raise TypeError(f"{where}: expected a SiteType or its name, got {type(value).__name__}")


def _check_coef(coef: Any) -> complex | float:
    if isinstance(coef, bool) or not isinstance(coef, numbers.Number):
        raise TypeError(f"coef: expected a real or complex number, got {type(coef).__name__}")
    c = complex(coef)
    if not (math.isfinite(c.real) and math.isfinite(c.imag)):
        raise ValueError(f"coef: expected a finite number, got {coef}")
    return c if c.imag != 0.0 else float(c.real)


class ModelBuilder:
    """Collects terms written with operator names into a :class:`SumOfProducts`.

    Parameters
    ----------
    sites
        One :class:`SiteType` (or its name in :data:`SITE_TYPES`) for every site, or one
        per site.
    n_sites
        Number of sites (at least 1); with one type per site, ``None`` or their number.

    Notes
    -----
    A term is a coefficient (real or complex, finite) times a product of named operators on
    sites; sites that are not named carry the identity. The same site may appear more than
    once in a product: the factors are multiplied in the order written, the leftmost acting
    last (``[("Sp", 0), ("Sm", 0)]`` is the matrix ``Sp @ Sm`` on site 0). ``"Id"`` factors
    are left out. Terms with a zero coefficient are dropped, and a builder without terms
    gives ``0 * identity``.

    Examples
    --------
    >>> b = ModelBuilder("hardcore_boson", 3)
    >>> b.add_coupling(-1.0, "Bdag", "B", [(0, 1), (1, 2)], hermitian_conjugate=True)
    >>> b.add_onsite(-0.5, "N")
    >>> len(b), b.operator().dims
    (7, (2, 2, 2))
    """

    def __init__(
        self, sites: SiteType | str | Sequence[SiteType | str], n_sites: int | None = None
    ) -> None:
        if isinstance(sites, SiteType | str):
            if n_sites is None:
                raise ValueError("n_sites: give the number of sites with a single site type")
            types = None
        else:
            if not isinstance(sites, Sequence):
                raise TypeError(
                    f"sites: expected a SiteType, its name or a sequence of them, got "
                    f"{type(sites).__name__}"
                )
            types = [_site_type(s, f"sites[{k}]") for k, s in enumerate(sites)]
            if n_sites is None:
                n_sites = len(types)
        if isinstance(n_sites, bool) or not isinstance(n_sites, numbers.Integral) or n_sites < 1:
            raise ValueError(f"n_sites: expected an integer >= 1, got {n_sites!r}")
        n_sites = int(n_sites)
        if types is None:
            types = [_site_type(sites, "sites")] * n_sites
        elif len(types) != n_sites:
            raise ValueError(f"sites: {len(types)} site types for n_sites = {n_sites}")
        self.site_types: tuple[SiteType, ...] = tuple(types)
        self._terms: list[tuple[complex | float, dict[int, _Factor]]] = []

    @property
    def n_sites(self) -> int:
        """Number of sites."""
        return len(self.site_types)

    @property
    def dims(self) -> tuple[int, ...]:
        """The local dimension of every site."""
        return tuple(s.dim for s in self.site_types)

    def __len__(self) -> int:
        """Number of terms so far (zero coefficients included)."""
        return len(self._terms)

    def _check_site(self, site: Any, where: str = "site") -> int:
        if isinstance(site, bool) or not isinstance(site, numbers.Integral):
            raise TypeError(f"{where}: expected an integer site index, got {site!r}")
        if not 0 <= site < self.n_sites:
            raise ValueError(f"{where}: site {site} is not in 0..{self.n_sites - 1}")
        return int(site)

    def add(self, coef: complex, *factors: Any, hermitian_conjugate: bool = False) -> None:
        """Add ``coef * prod op(site)``.

        Parameters
        ----------
        coef
            The coefficient (real or complex, finite).
        *factors
            ``op, site`` (``add(0.5, "Sz", 3)``), ``op_1, site_1, op_2, site_2, ...``
            (``add(0.5, "Sp", 0, "Sm", 1)``), or one list of ``(op, site)`` pairs
            (``add(0.5, [("Sp", 0), ("Sm", 1)])``; an empty list: ``coef * identity``).
        hermitian_conjugate
            Also add the adjoint, ``conj(coef) * prod op(site)^dagger`` (added even where
            the term is Hermitian itself, which doubles it).

        Raises
        ------
        ValueError
            If an operator name is unknown on its site (the message lists the valid ones),
            a site is out of range, or ``coef`` is not finite.
        TypeError
            If the factors are not in one of the forms above, or ``coef`` is not a number.
        """
        pairs = _pairs(factors)
        labels = [f"factors[{n}]" for n in range(len(pairs))]
        self._terms += self._product(coef, pairs, labels, hermitian_conjugate)

    def _product(
        self,
        coef: Any,
        pairs: list[tuple[Any, Any]],
        labels: list[str],
        hermitian_conjugate: bool,
    ) -> list[tuple[complex | float, dict[int, _Factor]]]:
        """The checked term (and its adjoint); ``labels`` name the factors in messages."""
        c = _check_coef(coef)
        product: dict[int, _Factor] = {}
        for (op, site), label in zip(pairs, labels, strict=True):
            site = self._check_site(site, label)
            k, m = self.site_types[site]._factor(op, f"{label} (site {site})")
            if op == "Id":
                continue
            if site in product:
                k0, m0 = product[site]
                k, m = k0 + k, _read_only(m0 @ m)
            product[site] = (k % 4, m)
        if not hermitian_conjugate:
            return [(c, product)]
        adjoint = {s: ((-k) % 4, _read_only(m.conj().T)) for s, (k, m) in product.items()}
        return [(c, product), (c.conjugate(), adjoint)]

    def add_onsite(self, coef: complex, op: str, sites: Iterable[int] | None = None) -> None:
        """Add ``coef * op(site)`` for every site in ``sites`` (default: all sites).

        ``sites`` may be one site index. All or nothing: a bad site or operator adds no term.
        """
        if sites is None:
            sites = range(self.n_sites)
        elif isinstance(sites, numbers.Integral):
            sites = [sites]
        terms = []
        for n, site in enumerate(sites):
            self._check_site(site, f"sites[{n}]")
            terms += self._product(coef, [(op, site)], ["op"], False)
        self._terms += terms

    def add_coupling(
        self,
        coef: complex,
        op_i: str,
        op_j: str,
        bonds: Iterable[tuple[int, int]] | Any,
        *,
        hermitian_conjugate: bool = False,
    ) -> None:
        """Add ``coef * op_i(i) op_j(j)`` for every bond ``(i, j)`` of a graph.

        Parameters
        ----------
        coef
            The coupling (real or complex, finite).
        op_i, op_j
            The operator names on the first and the second site of every bond.
        bonds
            Pairs ``(i, j)`` of different sites, or a graph with an ``edges()`` method
            (a ``networkx.Graph`` whose nodes are the site indices), in its edge order.
        hermitian_conjugate
            Also add ``conj(coef) * op_i(i)^dagger op_j(j)^dagger`` for every bond (the
            hopping ``Bdag_i B_j + h.c.``).

        Raises
        ------
        ValueError
            If a bond is not a pair of different sites in range, or as in :meth:`add`;
            then no bond's term is added.
        """
        edges = bonds.edges() if callable(getattr(bonds, "edges", None)) else bonds
        terms = []
        for n, bond in enumerate(edges):
            try:
                i, j = bond
            except (TypeError, ValueError):
                raise ValueError(f"bonds[{n}]: expected a pair (i, j), got {bond!r}") from None
            i = self._check_site(i, f"bonds[{n}]")
            j = self._check_site(j, f"bonds[{n}]")
            if i == j:
                raise ValueError(f"bonds[{n}]: a bond joins two different sites, got {bond!r}")
            pairs = [(op_i, i), (op_j, j)]
            terms += self._product(coef, pairs, ["op_i", "op_j"], hermitian_conjugate)
        self._terms += terms

    def operator(self) -> SumOfProducts:
        """The sum of the terms so far.

        Returns
        -------
        SumOfProducts
            On :attr:`dims`; real terms with real matrices where the phases of a term
            cancel (see the module docstring), zero terms left out.
        """
        terms = []
        for c, product in self._terms:
            k = sum(kk for kk, _ in product.values())
            coef = _times_i_power(c, k)
            if coef == 0.0:
                continue
            terms.append((coef, {s: m for s, (_, m) in product.items()}))
        return SumOfProducts(terms or [(0.0, {})], self.dims)


def _pairs(factors: tuple[Any, ...]) -> list[tuple[Any, Any]]:
    """``(op, site)`` pairs from the forms :meth:`ModelBuilder.add` takes."""
    if len(factors) == 1 and isinstance(factors[0], list | tuple):
        pairs = list(factors[0])
        for n, pair in enumerate(pairs):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise TypeError(f"factors[{n}]: expected a pair (op, site), got {pair!r}")
        return [tuple(p) for p in pairs]
    if not factors or len(factors) % 2:
        raise TypeError(
            "factors: expected op, site[, op, site, ...] or one list of (op, site) pairs, "
            f"got {factors!r}"
        )
    return list(zip(factors[::2], factors[1::2], strict=True))


def build_operator(
    sites: SiteType | str | Sequence[SiteType | str],
    n_sites: int | None,
    terms: Iterable[tuple[Any, ...]],
) -> SumOfProducts:
    """A :class:`SumOfProducts` from terms written with operator names.

    Parameters
    ----------
    sites, n_sites
        As for :class:`ModelBuilder`.
    terms
        Each ``(coef, op, site)``, ``(coef, op_1, site_1, op_2, site_2, ...)`` or
        ``(coef, [(op, site), ...])``.

    Returns
    -------
    SumOfProducts

    Raises
    ------
    ValueError, TypeError
        As :meth:`ModelBuilder.add`, the message prefixed with the term's index.

    Examples
    --------
    >>> h = build_operator("spin_half", 2, [(1.0, "Z", 0, "Z", 1), (0.5, "X", 0)])
    >>> len(h.terms), h.dims
    (2, (2, 2))
    """
    builder = ModelBuilder(sites, n_sites)
    for n, term in enumerate(terms):
        if not isinstance(term, list | tuple) or len(term) < 2:
            raise TypeError(f"terms[{n}]: expected (coef, op, site, ...), got {term!r}")
        try:
            builder.add(term[0], *term[1:])
        except (TypeError, ValueError) as err:
            raise type(err)(f"terms[{n}]: {err}") from None
    return builder.operator()
