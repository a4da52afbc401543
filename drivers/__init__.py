"""Command-line drivers: ``python -m drivers.<name>`` (serially or under ``mpirun``).

One thread per MPI rank is the default: importing this package sets ``OMP_NUM_THREADS=1``
(and the MKL/OpenBLAS equivalents) unless the user set them, before NumPy is imported.
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
