"""PANTHER cohorts on disk: three CSV tables (counts, pathway memberships, samples).

The file format of :func:`read_cohort` and :func:`write_cohort` for real cohorts
(:class:`FilesParams` names the three tables); the data model
(:class:`problems.genomics.Cohort`) and the tensor built from it are in
:mod:`problems.genomics` (arXiv 2012.08580). :func:`patient_data` makes the tensor of one
PANTHER run from any source: a synthetic cohort, the tables, or the serology tensor.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from problems.genomics import (
    Cohort,
    FilterParams,
    PatientTensor,
    Seed,
    SyntheticCohortParams,
    cohort_tensor,
    filter_cohort,
    serology_data,
    synthetic_cohort,
)
from tensorsim.config import Params, param

__all__ = ["FilesParams", "patient_data", "read_cohort", "write_cohort"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilesParams(Params):
    """A cohort on disk (the arguments of :func:`read_cohort`).

    Attributes
    ----------
    counts, membership, samples
        Paths of the three tables.
    unknown_genes
        Membership rows with genes absent from the counts table: ``"error"`` or ``"drop"``.
    """

    counts: str = param("", "counts table: patient,gene,count")
    membership: str = param("", "membership table: pathway,gene")
    samples: str = param("", "samples table: patient,label[,confounders...]")
    unknown_genes: Literal["error", "drop"] = param("error", "membership genes without counts")


def _reader(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh, delimiter=delimiter) if r and any(s.strip() for s in r)]
    if not rows:
        raise ValueError(f"{path}: empty file, expected a header line")
    return [h.strip() for h in rows[0]], [[s.strip() for s in r] for r in rows[1:]]


def _columns(path: Path, header: list[str], expected: Sequence[str], exact: bool) -> None:
    ok = header == list(expected) if exact else header[: len(expected)] == list(expected)
    if not ok:
        raise ValueError(
            f"{path}: expected the header {','.join(expected)}{'' if exact else '[,...]'}, "
            f"got {','.join(header)}"
        )


def read_cohort(
    counts: str | Path,
    membership: str | Path,
    samples: str | Path,
    *,
    unknown_genes: Literal["error", "drop"] = "error",
) -> Cohort:
    """Read a cohort from its three tables (format in the module docstring).

    The genes of the cohort are those of the counts table (sorted by name); pathways are
    sorted by name; patients keep the order of the samples table; classes are sorted.

    Parameters
    ----------
    counts, membership, samples
        Paths of the counts (``patient,gene,count``), membership (``pathway,gene``) and
        samples (``patient,label[,confounders...]``) tables.
    unknown_genes
        What to do with membership rows naming a gene absent from the counts table:
        ``"error"`` (default) or ``"drop"`` them (real pathway databases list many genes
        without variants in a cohort).

    Returns
    -------
    Cohort

    Raises
    ------
    FileNotFoundError
        A missing file.
    ValueError
        A wrong header, a short row, a count that is not a nonnegative integer, a counts row
        for a patient missing from the samples table, a repeated patient in the samples
        table, a non-numeric confounder, or (``unknown_genes="error"``) membership rows
        with genes absent from the counts table; each message names the file and the line.
    """
    if unknown_genes not in ("error", "drop"):
        raise ValueError(f"unknown_genes: expected 'error' or 'drop', got {unknown_genes!r}")
    cpath, mpath, spath = Path(counts), Path(membership), Path(samples)
    header, rows = _reader(spath)
    _columns(spath, header, ("patient", "label"), exact=False)
    conf_names = tuple(header[2:])
    patients: dict[str, int] = {}
    raw_labels, conf = [], []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise ValueError(f"{spath}:{line}: expected {len(header)} fields, got {len(row)}")
        if row[0] in patients:
            raise ValueError(f"{spath}:{line}: patient {row[0]!r} appears twice")
        patients[row[0]] = len(patients)
        raw_labels.append(row[1])
        try:
            conf.append([float(v) for v in row[2:]])
        except ValueError:
            raise ValueError(
                f"{spath}:{line}: confounders must be numbers, got {row[2:]}"
            ) from None
    classes = tuple(sorted(set(raw_labels)))
    labels = np.asarray([classes.index(v) for v in raw_labels], dtype=np.int64)

    header, rows = _reader(cpath)
    _columns(cpath, header, ("patient", "gene", "count"), exact=True)
    entries: list[tuple[int, str, float]] = []
    for line, row in enumerate(rows, start=2):
        if len(row) != 3:
            raise ValueError(f"{cpath}:{line}: expected 3 fields, got {len(row)}")
        if row[0] not in patients:
            raise ValueError(
                f"{cpath}:{line}: patient {row[0]!r} is not in the samples table {spath}"
            )
        try:
            value = float(row[2])
        except ValueError:
            raise ValueError(f"{cpath}:{line}: count must be a number, got {row[2]!r}") from None
        if not (math.isfinite(value) and value >= 0 and value == int(value)):
            raise ValueError(
                f"{cpath}:{line}: count must be a nonnegative integer, got {row[2]!r}"
            )
        entries.append((patients[row[0]], row[1], value))
    genes = tuple(sorted({g for _, g, _ in entries}))
    if not genes:
        raise ValueError(f"{cpath}: no counts rows")
    gene_index = {g: i for i, g in enumerate(genes)}
    table = np.zeros((len(patients), len(genes)))
    for i, g, v in entries:
        table[i, gene_index[g]] += v

    header, rows = _reader(mpath)
    _columns(mpath, header, ("pathway", "gene"), exact=True)
    pairs, unknown = [], []
    for line, row in enumerate(rows, start=2):
        if len(row) != 2:
            raise ValueError(f"{mpath}:{line}: expected 2 fields, got {len(row)}")
        if row[1] in gene_index:
            pairs.append((row[0], gene_index[row[1]]))
        else:
            unknown.append((line, row[1]))
    if unknown and unknown_genes == "error":
        names = sorted({g for _, g in unknown})
        raise ValueError(
            f"{mpath}: {len(unknown)} membership rows name {len(names)} genes absent from the "
            f"counts table {cpath} (first at line {unknown[0][0]}: {unknown[0][1]!r}; genes "
            f"{names[:5]}); pass unknown_genes='drop' to ignore them"
        )
    if unknown:
        logger.info("dropped %d membership rows with genes absent from %s", len(unknown), cpath)
    pathways = tuple(sorted({p for p, _ in pairs}))
    if not pathways:
        raise ValueError(f"{mpath}: no membership rows with a gene of the counts table")
    path_index = {p: i for i, p in enumerate(pathways)}
    member = np.zeros((len(pathways), len(genes)), dtype=bool)
    for p, g in pairs:
        member[path_index[p], g] = True
    return Cohort(
        counts=table,
        membership=member,
        labels=labels,
        class_names=classes,
        patient_ids=tuple(patients),
        gene_names=genes,
        pathway_names=pathways,
        confounders=np.asarray(conf, dtype=np.float64).reshape(len(patients), len(conf_names)),
        confounder_names=conf_names,
    )


def write_cohort(cohort: Cohort, directory: str | Path) -> tuple[Path, Path, Path]:
    """Write ``counts.csv``, ``membership.csv`` and ``samples.csv`` of a cohort.

    :func:`read_cohort` reads them back (with genes and pathways sorted by name; planted
    groups are not stored). Counts are rounded to integers.

    Returns
    -------
    tuple of Path
        The counts, membership and samples paths.
    """
    if not isinstance(cohort, Cohort):
        raise TypeError(f"cohort: expected a Cohort, got {type(cohort).__name__}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "counts.csv", out / "membership.csv", out / "samples.csv")
    with paths[0].open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["patient", "gene", "count"])
        for n, g in zip(*np.nonzero(cohort.counts), strict=True):
            w.writerow(
                [cohort.patient_ids[n], cohort.gene_names[g], int(round(cohort.counts[n, g]))]
            )
    with paths[1].open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["pathway", "gene"])
        for p, g in zip(*np.nonzero(cohort.membership), strict=True):
            w.writerow([cohort.pathway_names[p], cohort.gene_names[g]])
    with paths[2].open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["patient", "label", *cohort.confounder_names])
        for n, pid in enumerate(cohort.patient_ids):
            conf = [repr(float(v)) for v in cohort.confounders[n]]
            w.writerow([pid, cohort.class_names[cohort.labels[n]], *conf])
    return paths


def patient_data(
    source: Literal["synthetic", "serology", "files"],
    *,
    fill: Literal["knowledge", "co2"] = "co2",
    cohort: SyntheticCohortParams | None = None,
    files: FilesParams | None = None,
    filters: FilterParams | None = None,
    rng: Seed | Sequence[int] = None,
) -> tuple[PatientTensor, np.ndarray | None, tuple[tuple[str, ...], tuple[str, ...]]]:
    """The tensor of one PANTHER run, its raw baseline features and the unfiltered names.

    A cohort (synthetic, drawn with ``rng``, or read from ``files``) goes through
    :func:`problems.genomics.filter_cohort` with ``filters`` and becomes the tensor with
    ``fill``; the serology tensor (:func:`problems.genomics.serology_data`) is used as it is
    (``fill``, ``filters`` and ``rng`` are then ignored).

    Parameters
    ----------
    source
        ``"synthetic"``, ``"serology"`` or ``"files"``.
    fill
        Tensor fill of a cohort (:data:`problems.genomics.FILLS`).
    cohort
        The synthetic cohort (default :class:`SyntheticCohortParams()`).
    files
        The tables (needed for ``source="files"``).
    filters
        The cohort filters (default :class:`FilterParams()`).
    rng
        Seed of the synthetic cohort.

    Returns
    -------
    data, raw, names
        The :class:`PatientTensor`; the filtered patient x gene counts (None for the
        serology tensor); the mode-1 and mode-2 names before filtering.

    Raises
    ------
    ValueError
        An unknown ``source``, or ``source="files"`` without ``files``.
    """
    if source == "serology":
        data = serology_data()
        return data, None, data.ticks
    if source == "synthetic":
        cohort_ = synthetic_cohort(cohort or SyntheticCohortParams(), rng=rng)
    elif source == "files":
        if files is None:
            raise ValueError("files: source='files' needs the FilesParams of the three tables")
        cohort_ = read_cohort(
            files.counts, files.membership, files.samples, unknown_genes=files.unknown_genes
        )
    else:
        raise ValueError(f"source: expected 'synthetic', 'serology' or 'files', got {source!r}")
    full = (cohort_.pathway_names, cohort_.gene_names)
    p = filters or FilterParams()
    cohort_ = filter_cohort(
        cohort_,
        min_gene_fraction=p.min_gene_fraction,
        min_patient_genes=p.min_patient_genes,
        subisomorphism=p.subisomorphism,
    )
    return cohort_tensor(cohort_, fill=fill), cohort_.counts, full
