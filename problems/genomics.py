"""PANTHER data: patient x pathway x gene tensors from variant counts and pathway memberships.

The data side of PANTHER (Luo & Mao, arXiv 2012.08580):

- a :class:`Cohort` holds per-patient variant counts per gene, the pathway memberships of the
  genes, the disease class of every patient and optional confounders (demographics);
- :func:`filter_cohort` applies the paper's filters in its order: pathway sub-isomorphism
  filtering (:func:`filter_pathways`: drop every pathway whose gene set is a strict subset
  of, or equal to, another's), then genes mutated in at least 5% of the patients, then
  patients with at least 10 such genes;
- :func:`build_tensor` fills the ``patients x pathways x genes`` tensor: the
  knowledge-based co-occurrence puts the count of patient ``n`` in gene ``g`` under every
  pathway ``p`` that contains ``g``; the generalized by-patient co-occurrence (``"co2"``)
  also fills a cell ``(n, p, g)`` with ``p`` not containing ``g`` when the patient has
  variants both in ``g`` and in ``p``, with ``min(pathway count, gene count)``;
- :func:`synthetic_cohort` draws a cohort with planted pathway groups (one per class) for
  tests and the acceptance run, :mod:`problems.genomics_files` reads and writes the
  documented three-table file format, :func:`serology_data` loads the COVID-19 serology
  tensor bundled with TensorLy, shipped in ``data/serology.npz`` (a real-data smoke case of
  the same "factorize, then classify the sample factor" pipeline);
- :func:`stratified_split` draws the train / validation / test split per class.

File format (:mod:`problems.genomics_files`), comma-separated with a header line
(tab-separated when the file name ends in ``.tsv``):

- counts: ``patient,gene,count``, one row per (patient, gene) with variants; ``count`` a
  nonnegative integer; repeated pairs are summed;
- membership: ``pathway,gene``, one row per gene of a pathway;
- samples: ``patient,label[,confounder...]``, one row per patient (a patient without a
  counts row has no variants); the extra columns are numeric confounders.

This module is NumPy-only by design (tables of counts and labels, set logic); problems are
declarative and import neither MPI, HDF5 nor solvers.

References
----------
Y. Luo, C. Mao, "PANTHER: Pathway Augmented Nonnegative Tensor factorization for HighER-order
feature learning", AAAI 2021, arXiv:2012.08580.
Z. C. Tan, M. C. Murphy, H. S. Alpay, S. D. Taylor, A. S. Meyer, Mol. Syst. Biol. 17 (2021)
e10243 (the serology tensor).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from problems.shipped_data import load_arrays
from tensorsim.config import ConfigError, Params, param

__all__ = [
    "FILLS",
    "Cohort",
    "FilterParams",
    "PatientTensor",
    "SyntheticCohortParams",
    "build_tensor",
    "cohort_tensor",
    "filter_cohort",
    "filter_pathways",
    "serology_data",
    "stratified_split",
    "synthetic_cohort",
]

logger = logging.getLogger(__name__)

Seed = np.random.Generator | int | None

#: Tensor fills: knowledge-based co-occurrence only, or with the by-patient fill.
FILLS = ("knowledge", "co2")
#: Largest dense tensor :func:`build_tensor` makes (cells), unless told otherwise.
MAX_CELLS = 200_000_000


def _names(values: Sequence[str], n: int, what: str) -> tuple[str, ...]:
    out = tuple(str(v) for v in values)
    if len(out) != n:
        raise ValueError(f"{what}: expected {n} names, got {len(out)}")
    if len(set(out)) != n:
        dup = sorted({v for v in out if out.count(v) > 1})
        raise ValueError(f"{what}: names must be unique, repeated: {dup[:5]}")
    return out


def _check_counts(counts: np.ndarray, what: str = "counts") -> np.ndarray:
    """Validate a 2-D table of nonnegative finite counts; return it as float64."""
    arr = np.asarray(counts)
    if arr.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D (patients, genes) array, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{what}: expected a real numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{what}: expected real counts, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{what}: {int(bad.sum())} NaN/Inf entries, the first at {first}")
    neg = arr < 0
    if neg.any():
        first = tuple(int(i) for i in np.argwhere(neg)[0])
        raise ValueError(
            f"{what}: variant counts must be >= 0, got {int(neg.sum())} negative entries "
            f"(the first at {first}, minimum {arr.min():g})"
        )
    return arr


@dataclass(frozen=True)
class Cohort:
    """Variant counts, pathway memberships, classes and confounders of a patient cohort.

    Attributes
    ----------
    counts
        ``(patients, genes)`` nonnegative variant counts (float64).
    membership
        ``(pathways, genes)`` boolean: gene ``g`` belongs to pathway ``p``.
    labels
        ``(patients,)`` class index in ``[0, len(class_names))``.
    class_names
        Name of every class.
    patient_ids, gene_names, pathway_names
        Unique names along each axis.
    confounders
        ``(patients, c)`` finite covariates (demographics); ``c`` may be 0.
    confounder_names
        Name of every confounder column.
    planted
        Synthetic cohorts: per class, the indices of the pathways of its planted group;
        empty otherwise.

    Raises
    ------
    ValueError, TypeError
        On construction, for negative or non-finite counts, shapes that do not agree, a
        non-boolean membership, labels out of range, repeated names or planted indices out
        of range.
    """

    counts: np.ndarray
    membership: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    patient_ids: tuple[str, ...]
    gene_names: tuple[str, ...]
    pathway_names: tuple[str, ...]
    confounders: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    confounder_names: tuple[str, ...] = ()
    planted: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        counts = _check_counts(self.counts)
        n, g = counts.shape
        member = np.asarray(self.membership)
        if member.dtype != bool:
            raise TypeError(f"membership: expected a boolean array, got dtype {member.dtype}")
        if member.ndim != 2 or member.shape[1] != g:
            raise ValueError(
                f"membership: expected shape (pathways, {g}) to match the {g} genes of "
                f"counts, got {member.shape}"
            )
        labels = np.asarray(self.labels)
        if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels: expected {n} integer class indices, got shape {labels.shape} and "
                f"dtype {labels.dtype}"
            )
        k = len(self.class_names)
        if n and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(
                f"labels: expected values in [0, {k}), got {labels.min()}..{labels.max()}"
            )
        conf = np.asarray(self.confounders, dtype=np.float64)
        if conf.size == 0:
            conf = np.zeros((n, 0))
        if conf.ndim != 2 or conf.shape[0] != n:
            raise ValueError(f"confounders: expected shape ({n}, c), got {conf.shape}")
        if not np.isfinite(conf).all():
            raise ValueError("confounders: expected finite values, got NaN or Inf")
        set_ = object.__setattr__
        set_(self, "counts", counts)
        set_(self, "membership", member)
        set_(self, "labels", labels.astype(np.int64))
        set_(self, "confounders", conf)
        set_(self, "class_names", _names(self.class_names, k, "class_names"))
        set_(self, "patient_ids", _names(self.patient_ids, n, "patient_ids"))
        set_(self, "gene_names", _names(self.gene_names, g, "gene_names"))
        set_(self, "pathway_names", _names(self.pathway_names, member.shape[0], "pathway_names"))
        set_(
            self,
            "confounder_names",
            _names(self.confounder_names, conf.shape[1], "confounder_names"),
        )
        planted = tuple(tuple(int(i) for i in grp) for grp in self.planted)
        if planted and len(planted) != k:
            raise ValueError(f"planted: expected one group per class ({k}), got {len(planted)}")
        for grp in planted:
            if any(not 0 <= i < member.shape[0] for i in grp):
                raise ValueError(f"planted: pathway indices out of range in {grp}")
        set_(self, "planted", planted)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(patients, pathways, genes)``."""
        return (self.counts.shape[0], self.membership.shape[0], self.counts.shape[1])

    def subset(
        self,
        patients: np.ndarray | None = None,
        pathways: np.ndarray | None = None,
        genes: np.ndarray | None = None,
    ) -> Cohort:
        """The cohort restricted to the given (sorted) indices along each axis.

        Planted groups keep the pathways that remain, renumbered.
        """
        n, p, g = self.shape
        pi = np.arange(n) if patients is None else np.asarray(patients, dtype=np.int64)
        wi = np.arange(p) if pathways is None else np.asarray(pathways, dtype=np.int64)
        gi = np.arange(g) if genes is None else np.asarray(genes, dtype=np.int64)
        new_index = {int(old): new for new, old in enumerate(wi)}
        planted = tuple(tuple(new_index[i] for i in grp if i in new_index) for grp in self.planted)
        return Cohort(
            counts=self.counts[np.ix_(pi, gi)],
            membership=self.membership[np.ix_(wi, gi)],
            labels=self.labels[pi],
            class_names=self.class_names,
            patient_ids=tuple(self.patient_ids[i] for i in pi),
            gene_names=tuple(self.gene_names[i] for i in gi),
            pathway_names=tuple(self.pathway_names[i] for i in wi),
            confounders=self.confounders[pi],
            confounder_names=self.confounder_names,
            planted=planted,
        )


@dataclass(frozen=True)
class PatientTensor:
    """A nonnegative ``samples x mode1 x mode2`` tensor with classes, ready for PANTHER.

    Attributes
    ----------
    tensor
        ``(samples, I1, I2)`` nonnegative float64 array.
    labels, class_names
        Class index per sample and the class names.
    confounders, confounder_names
        ``(samples, c)`` covariates and their names.
    sample_ids
        Name of every sample.
    mode_names
        Names of the three modes, e.g. ``("patient", "pathway", "gene")``.
    ticks
        Names along modes 1 and 2.
    planted
        Per class, indices along mode 1 of its planted group (synthetic cohorts).
    """

    tensor: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    confounders: np.ndarray
    confounder_names: tuple[str, ...]
    sample_ids: tuple[str, ...]
    mode_names: tuple[str, str, str]
    ticks: tuple[tuple[str, ...], tuple[str, ...]]
    planted: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class SyntheticCohortParams(Params):
    """A synthetic cohort with one planted pathway group per class.

    Every pathway gets ``min_genes..max_genes`` genes drawn at random (pathways overlap).
    The pathways are split into disjoint planted groups of ``group_size`` pathways, one per
    class (the rest are background). Every patient has Poisson(``background``) variants in
    every gene; a patient of class ``k`` also gets, in each pathway of group ``k``,
    Poisson(``signal``) variants in each of ``hits`` genes of that pathway chosen at random
    per patient, so the signal is consistent per pathway but scattered over genes (the
    situation PANTHER's pathway mode is designed for). ``nested`` extra pathways are random
    halves of other pathways (they are what sub-isomorphism filtering removes). The
    confounders ``age`` (standardized normal) and ``sex`` (0/1) are independent of the class.

    Attributes
    ----------
    n_patients, n_pathways, n_genes, n_classes
        Sizes (classes are balanced up to one patient).
    group_size
        Pathways per planted group; ``n_classes * group_size <= n_pathways``.
    min_genes, max_genes
        Range of the number of genes per pathway.
    nested
        Extra pathways that are subsets of others.
    background
        Mean variants per patient and gene.
    hits
        Genes hit per planted pathway and patient.
    signal
        Mean variants per hit gene.
    confounders
        Add the ``age`` and ``sex`` columns.
    """

    n_patients: int = param(240, "patients", ge=2)
    n_pathways: int = param(24, "pathways (without the nested ones)", ge=1)
    n_genes: int = param(120, "genes", ge=2)
    n_classes: int = param(4, "classes, one planted group each", ge=2)
    group_size: int = param(4, "pathways per planted group", ge=1)
    min_genes: int = param(8, "fewest genes per pathway", ge=1)
    max_genes: int = param(20, "most genes per pathway", ge=1)
    nested: int = param(4, "extra pathways nested in others", ge=0)
    background: float = param(0.1, "mean variants per patient and gene", ge=0.0)
    hits: int = param(3, "genes hit per planted pathway and patient", ge=1)
    signal: float = param(1.5, "mean variants per hit gene", gt=0.0)
    confounders: bool = param(True, "add age and sex columns")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_classes * self.group_size > self.n_pathways:
            raise ConfigError(
                f"config key 'group_size': n_classes * group_size = "
                f"{self.n_classes * self.group_size} exceeds n_pathways = {self.n_pathways}"
            )
        if not self.min_genes <= self.max_genes <= self.n_genes:
            raise ConfigError(
                f"config key 'max_genes': expected min_genes <= max_genes <= n_genes, got "
                f"{self.min_genes}, {self.max_genes}, {self.n_genes}"
            )
        if self.hits > self.min_genes:
            raise ConfigError(
                f"config key 'hits': expected at most min_genes = {self.min_genes}, "
                f"got {self.hits}"
            )
        if self.n_patients < self.n_classes:
            raise ConfigError(
                f"config key 'n_patients': expected at least n_classes = {self.n_classes}"
            )


def synthetic_cohort(params: SyntheticCohortParams | None = None, *, rng: Seed = None) -> Cohort:
    """Draw a synthetic cohort with planted pathway groups (see :class:`SyntheticCohortParams`).

    Parameters
    ----------
    params
        Sizes and rates (defaults: 240 patients, 24 + 4 pathways, 120 genes, 4 classes).
    rng
        Generator or seed.

    Returns
    -------
    Cohort
        With ``planted[k]`` the pathway indices of class ``k``'s group; the nested
        pathways are the last ``params.nested`` ones.
    """
    p = SyntheticCohortParams() if params is None else params
    if not isinstance(p, SyntheticCohortParams):
        raise TypeError(f"params: expected SyntheticCohortParams, got {type(p).__name__}")
    gen = np.random.default_rng(rng)
    member = np.zeros((p.n_pathways + p.nested, p.n_genes), dtype=bool)
    for i in range(p.n_pathways):
        size = int(gen.integers(p.min_genes, p.max_genes + 1))
        member[i, gen.choice(p.n_genes, size, replace=False)] = True
    for j in range(p.nested):
        parent = np.flatnonzero(member[int(gen.integers(p.n_pathways))])
        member[p.n_pathways + j, gen.choice(parent, max(1, parent.size // 2), replace=False)] = (
            True
        )
    order = gen.permutation(p.n_pathways)
    planted = tuple(
        tuple(sorted(int(i) for i in order[k * p.group_size : (k + 1) * p.group_size]))
        for k in range(p.n_classes)
    )
    labels = gen.permutation(np.arange(p.n_patients) % p.n_classes)
    counts = gen.poisson(p.background, size=(p.n_patients, p.n_genes)).astype(np.float64)
    for n in range(p.n_patients):
        for pw in planted[labels[n]]:
            genes = gen.choice(np.flatnonzero(member[pw]), p.hits, replace=False)
            counts[n, genes] += gen.poisson(p.signal, size=p.hits)
    if p.confounders:
        conf = np.column_stack(
            [gen.standard_normal(p.n_patients), gen.integers(0, 2, p.n_patients)]
        ).astype(np.float64)
        conf_names: tuple[str, ...] = ("age", "sex")
    else:
        conf, conf_names = np.zeros((p.n_patients, 0)), ()
    return Cohort(
        counts=counts,
        membership=member,
        labels=labels.astype(np.int64),
        class_names=tuple(f"class{k}" for k in range(p.n_classes)),
        patient_ids=tuple(f"pt{n:04d}" for n in range(p.n_patients)),
        gene_names=tuple(f"G{g:04d}" for g in range(p.n_genes)),
        pathway_names=tuple(f"PW{i:03d}" for i in range(p.n_pathways))
        + tuple(f"PW{i:03d}_nested" for i in range(p.n_pathways, p.n_pathways + p.nested)),
        confounders=conf,
        confounder_names=conf_names,
        planted=planted,
    )


def filter_pathways(membership: np.ndarray) -> np.ndarray:
    """Indices of the pathways kept by sub-isomorphism filtering.

    A pathway is dropped when its gene set is a strict subset of another pathway's, or equal
    to the gene set of a pathway that comes earlier (of equal sets the first is kept).
    Empty pathways are dropped.

    Parameters
    ----------
    membership
        ``(pathways, genes)`` boolean array.

    Returns
    -------
    numpy.ndarray
        Sorted int64 indices of the kept pathways.
    """
    m = np.asarray(membership)
    if m.dtype != bool or m.ndim != 2:
        raise TypeError(
            f"membership: expected a 2-D boolean array, got dtype {m.dtype} and shape {m.shape}"
        )
    mi = m.astype(np.int64)
    inter = mi @ mi.T
    size = mi.sum(axis=1)
    subset = inter == size[:, None]  # [p, q]: p's genes all in q
    np.fill_diagonal(subset, False)
    strict = subset & (size[:, None] < size[None, :])
    equal_earlier = np.tril(subset & (size[:, None] == size[None, :]), k=-1)
    drop = strict.any(axis=1) | equal_earlier.any(axis=1) | (size == 0)
    return np.flatnonzero(~drop)


@dataclass(frozen=True)
class FilterParams(Params):
    """PANTHER's cohort filters (the options of :func:`filter_cohort`).

    Attributes
    ----------
    min_gene_fraction
        Keep genes mutated in at least this fraction of the patients.
    min_patient_genes
        Keep patients with at least this many kept genes mutated.
    subisomorphism
        Drop pathways nested in (or equal to) others.
    """

    min_gene_fraction: float = param(0.05, "genes: fraction of patients mutated", ge=0.0, le=1.0)
    min_patient_genes: int = param(10, "patients: mutated kept genes", ge=0)
    subisomorphism: bool = param(True, "drop nested and duplicate pathways")


def filter_cohort(
    cohort: Cohort,
    *,
    min_gene_fraction: float = 0.05,
    min_patient_genes: int = 10,
    subisomorphism: bool = True,
) -> Cohort:
    """Apply PANTHER's filters in the reference order: pathways, then genes, then patients.

    Parameters
    ----------
    cohort
        The cohort.
    min_gene_fraction
        Keep genes with variants in at least this fraction of the patients.
    min_patient_genes
        Then keep patients with variants in at least this many kept genes.
    subisomorphism
        Drop nested and duplicate pathways first (:func:`filter_pathways`).

    Returns
    -------
    Cohort
        The filtered cohort; pathways left without a kept gene are dropped too.

    Raises
    ------
    ValueError
        On out-of-range thresholds, or if a filter leaves no gene, pathway or patient, or
        fewer than two classes.
    """
    if not isinstance(cohort, Cohort):
        raise TypeError(f"cohort: expected a Cohort, got {type(cohort).__name__}")
    if not 0.0 <= min_gene_fraction <= 1.0:
        raise ValueError(f"min_gene_fraction: expected a value in [0, 1], got {min_gene_fraction}")
    if isinstance(min_patient_genes, bool) or not isinstance(min_patient_genes, int):
        raise TypeError(f"min_patient_genes: expected an int, got {min_patient_genes!r}")
    if min_patient_genes < 0:
        raise ValueError(f"min_patient_genes: expected an integer >= 0, got {min_patient_genes}")
    n, p, g = cohort.shape
    pathways = filter_pathways(cohort.membership) if subisomorphism else np.arange(p)
    hit = cohort.counts > 0
    genes = np.flatnonzero(hit.sum(axis=0) >= math.ceil(min_gene_fraction * n - 1e-9))
    patients = np.flatnonzero(hit[:, genes].sum(axis=1) >= min_patient_genes)
    pathways = pathways[cohort.membership[np.ix_(pathways, genes)].any(axis=1)]
    for what, kept, total in (
        ("genes", genes, g),
        ("pathways", pathways, p),
        ("patients", patients, n),
    ):
        if kept.size == 0:
            raise ValueError(
                f"filter_cohort: no {what} left of {total} (min_gene_fraction="
                f"{min_gene_fraction}, min_patient_genes={min_patient_genes})"
            )
    if np.unique(cohort.labels[patients]).size < 2:
        raise ValueError("filter_cohort: fewer than two classes left after filtering patients")
    logger.debug(
        "filters kept %d/%d patients, %d/%d pathways, %d/%d genes",
        patients.size,
        n,
        pathways.size,
        p,
        genes.size,
        g,
    )
    return cohort.subset(patients, pathways, genes)


def build_tensor(
    counts: np.ndarray,
    membership: np.ndarray,
    *,
    fill: Literal["knowledge", "co2"] = "co2",
    weighting: Literal["counts", "tfidf"] = "counts",
    max_cells: int = MAX_CELLS,
) -> np.ndarray:
    """The dense ``patients x pathways x genes`` tensor of PANTHER.

    With ``c`` the counts and ``M`` the membership, the knowledge-based co-occurrence is
    ``X[n, p, g] = c[n, g] M[p, g]``. ``fill="co2"`` (generalized by-patient co-occurrence)
    also sets every cell with ``M[p, g] = 0`` to ``min(P[n, p], c[n, g])``, where
    ``P[n, p] = sum_g M[p, g] c[n, g]`` is the patient's count in the pathway: nonzero when
    the patient has variants in ``g`` and in ``p``, since pathway knowledge is incomplete.

    Parameters
    ----------
    counts
        ``(patients, genes)`` nonnegative counts.
    membership
        ``(pathways, genes)`` boolean.
    fill
        ``"knowledge"`` or ``"co2"``.
    weighting
        ``"counts"``, or ``"tfidf"``: each count ``v`` of gene ``g`` is replaced by
        ``log(v + 1) log(pathways / pathways containing g)`` before the tensor is formed
        (genes in no pathway get weight 0), the alternative of the reference code.
    max_cells
        Refuse to build a tensor with more cells than this (filter harder first).

    Returns
    -------
    numpy.ndarray
        Float64 array of shape ``(patients, pathways, genes)``, nonnegative.

    Raises
    ------
    ValueError, TypeError
        Negative or non-finite counts, a membership that is not boolean or does not match
        the genes, an unknown ``fill`` or ``weighting``, or too many cells.
    """
    c = _check_counts(counts)
    m = np.asarray(membership)
    if m.dtype != bool:
        raise TypeError(f"membership: expected a boolean array, got dtype {m.dtype}")
    if m.ndim != 2 or m.shape[1] != c.shape[1]:
        raise ValueError(
            f"membership: expected shape (pathways, {c.shape[1]}) to match counts' genes, "
            f"got {m.shape}"
        )
    if fill not in FILLS:
        raise ValueError(f"fill: expected one of {FILLS}, got {fill!r}")
    if weighting not in ("counts", "tfidf"):
        raise ValueError(f"weighting: expected 'counts' or 'tfidf', got {weighting!r}")
    cells = c.shape[0] * m.shape[0] * c.shape[1]
    if cells > max_cells:
        raise ValueError(
            f"build_tensor: {c.shape[0]} x {m.shape[0]} x {c.shape[1]} = {cells} cells exceeds "
            f"max_cells={max_cells}; filter genes/patients/pathways harder or raise max_cells"
        )
    if weighting == "tfidf":
        per_gene = m.sum(axis=0)
        idf = np.log(m.shape[0] / np.maximum(per_gene, 1)) * (per_gene > 0)
        c = np.log1p(c) * idf[None, :]
    mf = m.astype(np.float64)
    x = c[:, None, :] * mf[None, :, :]
    if fill == "co2":
        pathway = c @ mf.T  # (patients, pathways)
        extra = np.minimum(pathway[:, :, None], c[:, None, :])
        x = np.where(m[None, :, :], x, extra)
    return x


def cohort_tensor(
    cohort: Cohort,
    *,
    fill: Literal["knowledge", "co2"] = "co2",
    weighting: Literal["counts", "tfidf"] = "counts",
    max_cells: int = MAX_CELLS,
) -> PatientTensor:
    """The :class:`PatientTensor` of a (filtered) cohort, through :func:`build_tensor`."""
    if not isinstance(cohort, Cohort):
        raise TypeError(f"cohort: expected a Cohort, got {type(cohort).__name__}")
    x = build_tensor(
        cohort.counts, cohort.membership, fill=fill, weighting=weighting, max_cells=max_cells
    )
    return PatientTensor(
        tensor=x,
        labels=cohort.labels,
        class_names=cohort.class_names,
        confounders=cohort.confounders,
        confounder_names=cohort.confounder_names,
        sample_ids=cohort.patient_ids,
        mode_names=("patient", "pathway", "gene"),
        ticks=(cohort.pathway_names, cohort.gene_names),
        planted=cohort.planted,
    )


def stratified_split(
    labels: np.ndarray,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    *,
    rng: Seed = None,
) -> np.ndarray:
    """Assign every sample to train (0), validation (1) or test (2), per class.

    Each class is shuffled and cut at the rounded cumulative fractions, with at least one
    sample of the class in train when it has any.

    Parameters
    ----------
    labels
        ``(samples,)`` integer classes.
    fractions
        Train, validation and test fractions (positive, summing to 1).
    rng
        Generator or seed.

    Returns
    -------
    numpy.ndarray
        ``(samples,)`` int64 split index.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels: expected a 1-D integer array, got {y.dtype} {y.shape}")
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or (f <= 0).any() or abs(f.sum() - 1.0) > 1e-9:
        raise ValueError(
            f"fractions: expected three positive fractions summing to 1, got {fractions}"
        )
    gen = np.random.default_rng(rng)
    split = np.zeros(y.shape, dtype=np.int64)
    for k in np.unique(y):
        idx = gen.permutation(np.flatnonzero(y == k))
        cut = np.rint(np.cumsum(f[:2]) * idx.size).astype(int)
        cut[0] = max(cut[0], 1)
        cut[1] = max(cut[1], cut[0])
        split[idx[cut[0] : cut[1]]] = 1
        split[idx[cut[1] :]] = 2
    return split


def serology_data(*, transform: Literal["shift", "exp"] = "shift") -> PatientTensor:
    """The COVID-19 serology tensor (``data/serology.npz``) as a nonnegative ``PatientTensor``.

    438 samples x 6 antigens x 11 receptors, 5 classes (Negative, Mild, Moderate, Severe,
    Deceased); no confounders. The values are log-scale (negative ones occur), so they are
    made nonnegative by subtracting the minimum (``"shift"``) or by ``exp`` (``"exp"``).
    The file holds TensorLy's ``load_covid19_serology()`` tensor and ticks, bit for bit
    (written by ``tools/make_data.py``); TensorLy is not needed at run time.

    Raises
    ------
    FileNotFoundError
        If ``data/serology.npz`` is missing (regenerate it with ``python tools/make_data.py``).
    ValueError
        An unknown ``transform``.
    """
    if transform not in ("shift", "exp"):
        raise ValueError(f"transform: expected 'shift' or 'exp', got {transform!r}")
    keys = ("tensor", "ticks_samples", "ticks_antigens", "ticks_receptors")
    arrays = load_arrays("serology.npz", keys)
    x = np.asarray(arrays["tensor"], dtype=np.float64)
    x = x - x.min() if transform == "shift" else np.exp(x)
    raw = [str(v) for v in arrays["ticks_samples"]]
    order = ("Negative", "Mild", "Moderate", "Severe", "Deceased")
    classes = tuple([c for c in order if c in raw] + sorted(set(raw) - set(order)))
    labels = np.asarray([classes.index(v) for v in raw], dtype=np.int64)
    return PatientTensor(
        tensor=x,
        labels=labels,
        class_names=classes,
        confounders=np.zeros((x.shape[0], 0)),
        confounder_names=(),
        sample_ids=tuple(f"s{i:03d}" for i in range(x.shape[0])),
        mode_names=("sample", "antigen", "receptor"),
        ticks=tuple(tuple(map(str, arrays[k])) for k in keys[2:]),
    )
