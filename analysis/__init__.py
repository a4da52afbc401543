"""Analysis of output files: tables and figures from what the drivers write.

Every driver writes one self-describing netCDF4/HDF5 file; this package reads such files
(opened with :func:`tensorsim.io.open_run` or ``xarray.open_dataset``) and turns them into
summaries (e.g. the learning rate selected on the validation split) and PNG figures.
``python -m drivers.<name> plot FILE`` calls the figures of its method; the same functions
serve analysis scripts and the benchmarks. :mod:`analysis.figures` holds the figure life
cycle and the shared panels; one module per method holds its tables and figures.

Layering: ``analysis`` imports ``tensorsim`` only (never ``drivers``, ``solvers`` or
``problems``); matplotlib is imported when a figure is drawn.
"""
