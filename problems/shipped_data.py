"""The small data files shipped in the repository's top-level ``data/`` folder.

``data/`` sits next to the packages in the source checkout (the project is installed in
editable mode) and is not installed into site-packages: :func:`data_path` finds it relative
to this file. Every file there is written by ``tools/make_data.py`` from its source
(``data/README.md`` lists the sources, references and licences); a missing file is a
:class:`FileNotFoundError` that says how to regenerate it.

The arrays are ``.npz`` archives (read with :func:`numpy.load`, no pickles), so that the
loaders need NumPy only (problems import no HDF5).
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DATA_DIR", "data_path", "load_arrays", "panther_tables", "reference_values"]

logger = logging.getLogger(__name__)

#: The repository's ``data/`` folder (``<checkout>/data``).
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def data_path(*parts: str, must_exist: bool = True) -> Path:
    """The absolute path of a file of ``data/``.

    Parameters
    ----------
    *parts
        Path components below ``data/``, e.g. ``("panther", "counts.csv")``.
    must_exist
        Raise if the file is absent (default); ``False`` only resolves the path.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        No component given.
    FileNotFoundError
        ``must_exist`` and the file is absent (the message names it and the generator).
    """
    if not parts:
        raise ValueError("parts: expected at least one path component below data/")
    path = DATA_DIR.joinpath(*parts)
    if must_exist and not path.is_file():
        raise FileNotFoundError(
            f"{path}: shipped data file missing; regenerate data/ with "
            "`python tools/make_data.py` in the source checkout (data/ is read from the "
            "checkout, not installed into site-packages)"
        )
    return path


def load_arrays(name: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays of one ``.npz`` file of ``data/`` (no pickles).

    Parameters
    ----------
    name
        File name below ``data/``, e.g. ``"il2.npz"``.
    keys
        The arrays to read.

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    FileNotFoundError
        The file is absent (:func:`data_path`).
    KeyError
        A key is not in the file (the message names the file).
    """
    path = data_path(name)
    with np.load(path, allow_pickle=False) as archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise KeyError(f"{path}: no array {missing[0]!r} (has {sorted(archive.files)})")
        return {k: archive[k] for k in keys}


def panther_tables() -> tuple[str, str, str]:
    """Absolute paths of the shipped PANTHER cohort's tables (``data/panther/``).

    The counts, membership and samples tables of a synthetic cohort (60 patients; see
    ``data/README.md``), in the order of :class:`problems.genomics_files.FilesParams`. The
    paths are resolved, not checked: a missing file is reported when it is read.

    Returns
    -------
    tuple of str
        ``(counts, membership, samples)``.
    """
    counts, membership, samples = (
        str(data_path("panther", f"{table}.csv", must_exist=False))
        for table in ("counts", "membership", "samples")
    )
    return counts, membership, samples


def reference_values(name: str) -> dict[str, Any]:
    """One table of ``data/references.toml``: values computed once elsewhere, with their origin.

    Parameters
    ----------
    name
        The table, e.g. ``"tfim_l16_tebd"``.

    Returns
    -------
    dict
        The values and their description (``origin``, ``used_by``, ...).

    Raises
    ------
    FileNotFoundError
        The file is absent (:func:`data_path`).
    KeyError
        No such table (the message names the file and the tables).
    """
    path = data_path("references.toml")
    with path.open("rb") as fh:
        tables = tomllib.load(fh)
    if name not in tables:
        raise KeyError(f"{path}: no table {name!r} (has {sorted(tables)})")
    return tables[name]
