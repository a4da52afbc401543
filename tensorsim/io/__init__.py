"""Output files of tensorsim runs: netCDF4-compatible HDF5 with series and checkpoints.

:class:`Writer` writes one self-describing file per run (monitoring series over an unlimited
record dimension, static coordinates and variables, provenance attributes, and the latest
checkpoint under ``/state``), replacing it atomically at every flush so a crash never leaves
a broken file. :func:`open_run` reads a run back as an ``xarray.Dataset`` plus its
:class:`Checkpoint`; :func:`read_checkpoint` reads only the checkpoint, and
:meth:`Writer.resume` continues a run from it.

h5py, h5netcdf and xarray (the ``io`` extra) are imported only when a file is written or read.
"""

from __future__ import annotations

import logging

from tensorsim.io.checkpoint import Checkpoint, open_run, read_checkpoint
from tensorsim.io.writer import Writer

__all__ = ["Checkpoint", "Writer", "open_run", "read_checkpoint"]

logger = logging.getLogger(__name__)
