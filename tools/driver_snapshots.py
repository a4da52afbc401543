"""Regression snapshots of the drivers' output files: run a fixed list of tiny runs, compare.

A refactor of ``drivers/`` that is meant to leave every output unchanged is checked in two
steps: snapshot a checkout from before the change and one from after it, then compare::

    python tools/driver_snapshots.py run OUTDIR [--only NAME ...] [--overwrite]
    python tools/driver_snapshots.py compare A B
    python tools/driver_snapshots.py scan A B    # raw differences, nothing excluded
    python tools/driver_snapshots.py list        # the runs and their argv

``run`` executes the runs of :data:`RUNS` (every driver module and every subcommand, each with
the tiny settings of its tests in ``tests/drivers/``), each command as a subprocess
``python -m drivers.NAME ...`` with the working directory set to the repository that holds
this script (so a copy of the script in another checkout snapshots that checkout). Every
command writes its ``.nc`` files under ``OUTDIR/<run-name>/``. For each output file it then
writes ``OUTDIR/<run-name>/<file>.json``, with for every variable of the file (coordinates,
data variables, and the checkpoint arrays in the groups under ``/state``) its dims, dtype,
shape and the SHA-256 of the raw bytes of its values, and the root attributes that describe
the results. ``OUTDIR/manifest.json`` records the commands as run, their durations and exit
codes, and the files the packages were imported from.

``compare`` compares two such directories run by run, file by file and variable by variable,
prints one table row per file and exits with status 1 if anything differs or is missing.
``scan A B`` diffs the ``.nc`` files of two such directories with nothing excluded (to check
the timing rule, see below); ``list`` prints the runs.

What is hashed
--------------
The file is read with h5netcdf (no CF decoding, so no fill-value masking or type changes):
numbers are hashed as ``numpy.ascontiguousarray(values).tobytes()`` in the stored dtype
(bitwise, so ``-0.0 != 0.0`` and NaN payloads count); strings as the UTF-8 encoding of the
values joined by NUL characters (row-major order). Variables are named by their path in the
file, ``name`` in the root group and ``state/.../name`` in the checkpoint.

Excluded as timing
------------------
Wall-clock measurements are not reproducible. A variable is excluded from the value
comparison, and listed under ``excluded_timing``, if :func:`is_timing` says so: its name
matches :data:`TIMING_NAME` (``wall_*``, ``seconds`` as a word: ``seconds``, ``*_seconds``;
``*_per_second``, ``*_per_s``, ``*_per_s_*``) or its ``units`` attribute is one of
:data:`TIMING_UNITS` (``"s"``, ``"1/s"``; no driver stores a simulated time in seconds). The
same name rule applies to root attributes, plus :data:`TIMING_ATTRS` (attributes fitted to
measured times). Excluded variables are still compared by dims, dtype and shape, so a
dropped or reshaped timing variable is reported.

The rule was found by running the whole list twice on the same checkout and diffing the raw
files (``scan``, which excludes nothing). Exactly these differed, each a
``time.perf_counter()`` difference or a rate computed from one in the driver or solver code,
and each is caught by the name rule and (variables) by the units rule alike:

- ``wall_time`` (units ``s``): compress, spin_chain, radiative_transfer, uq, tubal, connectome;
  ``wall_parallel``, ``wall_serial`` (``s``): spin_chain (``solvers.bug`` step timers);
- ``epoch_seconds`` (``s``): navier_stokes train (``solvers._training``);
- ``step_seconds`` (``s``): adapters pretrain and sweep, smmf;
- ``train_seconds`` (``s``): dain, fields, migs, tpa; ``influence_seconds``,
  ``augment_seconds`` (``s``): dain; ``seconds``, ``retrain_seconds`` (``s``): dain scaling;
  ``unseen_seconds`` (``s``): migs; ``fit_seconds``, ``seconds`` (``s``): panther;
- ``rays_per_second`` (``1/s``): fields; ``decode_tokens_per_s``,
  ``decode_tokens_per_s_materialized`` (``1/s``): tpa;
- root attributes ``truth_seconds``, ``occupancy_seconds`` (fields) and ``exponent``,
  ``train_exponent``, ``influence_exponent`` (dain scaling: slopes of log time vs log cells).

Nothing else differed: every other variable, the checkpoints included, was bitwise equal.

Root attributes that always change (``created``, ``git_commit``, ``versions``,
``tensorsim_version``) or that restate the command line (``config``) are not recorded; every
other root attribute is, as JSON, with the run's output directory written as ``{out}``.

The argv of every run is data (:data:`RUNS`): if a refactor renames a configuration key,
update the argv there (in the new checkout's copy of this script) and nowhere else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tensorsim.testing import is_timing  # noqa: E402

#: The repository this script belongs to: the commands run there, importing its packages.
ROOT = Path(__file__).resolve().parents[1]

#: Placeholders in the argv of :data:`RUNS`: the Python interpreter, the ``mpiexec`` next to
#: it, and the output directory of the run (``OUTDIR/<run-name>``, absolute).
PYTHON, MPIEXEC, OUT = "{python}", "{mpiexec}", "{out}"

#: Version of the snapshot format (written to every JSON file).
FORMAT = 1

# ------------------------------------------------------------------------------ the runs
# The tiny settings are those of the tests in tests/drivers/ (named after each list).


def _sets(*pairs: str) -> list[str]:
    """``--set`` options: ``_sets("a=1", "b=2")`` -> ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for pair in pairs for arg in ("--set", pair)]


def _py(module: str, *args: str) -> list[str]:
    """The argv of ``python -m drivers.MODULE ARGS`` (serial)."""
    return [PYTHON, "-m", f"drivers.{module}", *args]


def _mpi(ranks: int, module: str, *args: str) -> list[str]:
    """The argv of ``mpiexec -n RANKS python -m drivers.MODULE ARGS``."""
    return [MPIEXEC, "-n", str(ranks), "-genv", "OMP_NUM_THREADS", "1", *_py(module, *args)]


# test_compress.py SMALL
COMPRESS = _sets("input.shape=[14,12,10]", "cases.tolerances=[1e-1,1e-3]", "cases.cp_ranks=[2,5]")
# test_spin_chain.py SMALL
SPIN_CHAIN = _sets("model.sites=6", "time.t_end=0.2", "time.h=0.02", "output.checkpoint_every=3")
# test_radiative_transfer_driver.py SMALL (the plane source) and LINE
RT_PLANE = _sets(
    "preset=plane_source",
    "problem.cells=41",
    "problem.degree=7",
    "problem.t_end=0.2",
    "output.checkpoint_every=5",
)
RT_LINE = _sets(
    "preset=line_source",
    "problem.cells=24",
    "problem.degree=5",
    "problem.t_end=0.2",
    "problem.width=0.2",
)
# test_uq_driver.py SMALL (the default preset, section_5_2) and PLANE, with the reference
UQ_DEFAULT = _sets(
    "problem.transport.cells=21",
    "problem.transport.degree=5",
    "problem.nodes_xi=4",
    "problem.nodes_eta=4",
    "problem.transport.t_end=0.4",
    "output.checkpoint_every=5",
    "output.reference=true",
)
UQ_SECTION_5_3 = _sets(
    "preset=section_5_3",
    "problem.transport.cells=16",
    "problem.transport.degree=3",
    "problem.nodes_xi=3",
    "problem.nodes_eta=3",
    "problem.transport.t_end=0.3",
    "output.reference=true",
)
# test_tubal_driver.py SWEEP
TUBAL = _sets(
    "preset=init_scale",
    "experiment.sweep.widths=[20, 40]",
    "experiment.sweep.alphas=[1e-2, 1e-4]",
    "experiment.sweep.trials=2",
    "experiment.solver.iterations=300",
    "experiment.solver.log_every=100",
)
# test_navier_stokes_driver.py TINY (generate.batch=3 as its fixture) and SMALL (train)
NS_GENERATE = _sets("preset=tiny", "generate.batch=3")
NS_TRAIN = _sets(
    "data.n_train=6",
    "data.n_test=2",
    "model.n_modes=[8, 8]",
    "model.hidden_channels=8",
    "model.n_layers=2",
    "train.batch_size=3",
    "train.epochs=3",
    "train.step_size=2",
    "train.lr=3e-3",
)
# test_adapters_driver.py TINY (sweep) and test_pretrain_command_compares_full_loqt_nq_and_loqt
ADAPTERS_SWEEP = _sets(
    "experiment.model.width=16",
    "experiment.model.depth=3",
    "experiment.pretrain.steps=40",
    "experiment.pretrain.warmup=5",
    "experiment.adapt.steps=30",
    "experiment.adapt.warmup=5",
    "experiment.sweep.eval_every=10",
    'experiment.sweep.variants=["lora", "lotr", "soka", "peft_lora", "full"]',
    "experiment.sweep.ranks=[1, 2]",
    "experiment.sweep.lrs=[1e-2]",
    "experiment.sweep.seeds=1",
)
ADAPTERS_PRETRAIN = _sets(
    "experiment.model.width=16",
    "experiment.model.depth=3",
    "experiment.pretrain.steps=30",
    "experiment.pretrain.warmup=5",
    'experiment.loqt.targets=["hidden\\\\d+"]',
    "experiment.loqt.rank=4",
    "experiment.loqt.gap=10",
    "experiment.loqt.eval_every=10",
)
# test_smmf_driver.py TINY
SMMF = _sets(
    "experiment.steps=6",
    "experiment.warmup=1",
    "experiment.eval_every=3",
    "experiment.seeds=1",
    "experiment.data.batch_size=16",
    "experiment.optim.lr_factors=[1.0]",
)
# test_drivers_tpa.py TINY
TPA = _sets(
    "experiment.model.d_model=48",
    "experiment.model.n_layers=1",
    "experiment.model.head_dim=8",
    "experiment.model.mha_heads=6",
    "experiment.data.seq_len=16",
    "experiment.data.batch_size=4",
    "experiment.data.eval_size=4",
    "experiment.data.max_chars=5000",
    "experiment.training.steps=4",
    "experiment.training.warmup=1",
    "experiment.training.eval_every=2",
    "experiment.decode.prompt=4",
    "experiment.decode.new_tokens=4",
)
# test_panther_driver.py TINY
PANTHER = _sets(
    "experiment.cohort.n_patients=96",
    "experiment.sweep.seeds=1",
    "experiment.factor.ortho_iter=20",
)
# test_connectome_driver.py SMALL
CONNECTOME = _sets(
    "experiment.problem.n_animals=3",
    "experiment.sweep.seeds=2",
    "experiment.analysis.ranks=[3, 4]",
)
# test_dain_driver.py TINY (sweep) and SCALING (scaling: the options it reads; the sweep's
# data, epochs and seeds, once ignored by scaling, are refused there since issue 18)
DAIN = _sets(
    "experiment.data.shape=[14, 12, 10]",
    "experiment.data.density=0.2",
    "experiment.model.embed_dim=4",
    "experiment.model.hidden=[16, 8]",
    "experiment.model.cp_rank=3",
    "experiment.training.epochs=3",
    "experiment.model.factor_epochs=3",
    "experiment.seeds=2",
)
DAIN_SCALING = _sets(
    "experiment.model.embed_dim=4",
    "experiment.model.hidden=[16, 8]",
    "experiment.scaling.sizes=[300, 1200]",
    "experiment.scaling.epochs=1",
)
# test_fields_driver.py TINY
FIELDS = _sets("preset=tiny")
# test_migs_driver.py TINY
MIGS = _sets(
    "experiment.problem.n_identities=3",
    "experiment.problem.n_torso=6",
    "experiment.problem.n_limb=2",
    "experiment.problem.image_size=10",
    "experiment.problem.focal=12.0",
    "experiment.problem.test_poses=1",
    "experiment.problem.test_views=2",
    "experiment.training.steps=6",
    "experiment.training.batch=2",
    "experiment.training.eval_every=3",
    "experiment.training.unseen_steps=3",
    "experiment.cp_ranks=[2, 3]",
    "experiment.tucker_ranks=[2, 3, 4]",
    "experiment.panels=[0, 1]",
)

#: Run name -> its commands, run in order in one output directory ``{out}``. Each command is
#: an argv with the placeholders :data:`PYTHON`, :data:`MPIEXEC` and :data:`OUT`. Besides one
#: run per driver and subcommand, the list covers the other integrators (spin_chain bug and
#: augmented_bug; parallel_bug of radiative_transfer and uq, with the tests' rtol), a
#: restart (spin_chain: 4 steps, then --restart), 2 MPI ranks (spin_chain), and the
#: tfno_tucker and mg_tfno models of navier_stokes train.
RUNS: dict[str, list[list[str]]] = {
    "compress": [_py("compress", *COMPRESS, *_sets(f"output.path={OUT}/compress.nc"))],
    "spin_chain": [_py("spin_chain", *SPIN_CHAIN, *_sets(f"output.path={OUT}/spin_chain.nc"))],
    "spin_chain_augmented_bug": [
        _py(
            "spin_chain",
            *SPIN_CHAIN,
            *_sets("solver.integrator=augmented_bug", f"output.path={OUT}/spin_chain.nc"),
        )
    ],
    "spin_chain_bug": [
        _py(
            "spin_chain",
            *SPIN_CHAIN,
            *_sets("solver.integrator=bug", f"output.path={OUT}/spin_chain.nc"),
        )
    ],
    "spin_chain_restart": [
        _py(
            "spin_chain",
            *SPIN_CHAIN,
            *_sets(f"output.path={OUT}/spin_chain.nc"),
            "--max-steps",
            "4",
        ),
        _py("spin_chain", "--restart", f"{OUT}/spin_chain.nc"),
    ],
    "spin_chain_mpi2": [
        _mpi(2, "spin_chain", *SPIN_CHAIN, *_sets(f"output.path={OUT}/spin_chain.nc"))
    ],
    "radiative_transfer_plane_source": [
        _py("radiative_transfer", *RT_PLANE, *_sets(f"output.path={OUT}/plane_source.nc"))
    ],
    "radiative_transfer_parallel_bug": [
        _py(
            "radiative_transfer",
            *RT_PLANE,
            *_sets(
                "solver.integrator=parallel_bug",
                "solver.rtol=1e-4",
                f"output.path={OUT}/plane_source.nc",
            ),
        )
    ],
    "radiative_transfer_line_source": [
        _py("radiative_transfer", *RT_LINE, *_sets(f"output.path={OUT}/line_source.nc"))
    ],
    "uq_default": [_py("uq", *UQ_DEFAULT, *_sets(f"output.path={OUT}/uq.nc"))],
    "uq_section_5_3": [_py("uq", *UQ_SECTION_5_3, *_sets(f"output.path={OUT}/uq.nc"))],
    "uq_parallel_bug": [
        _py(
            "uq",
            *UQ_DEFAULT,
            *_sets(
                "solver.integrator=parallel_bug", "solver.rtol=1e-5", f"output.path={OUT}/uq.nc"
            ),
        )
    ],
    "tubal": [_py("tubal", *TUBAL, *_sets(f"output.path={OUT}/tubal.nc"))],
    "navier_stokes": [
        _py("navier_stokes", "generate", *NS_GENERATE, *_sets(f"data.path={OUT}/tiny.nc")),
        _py(
            "navier_stokes",
            "train",
            *_sets(f"data.path={OUT}/tiny.nc", f"output.path={OUT}/fno.nc"),
            *NS_TRAIN,
        ),
        _py(
            "navier_stokes",
            "evaluate",
            *_sets(f"evaluate.run={OUT}/fno.nc", f"evaluate.path={OUT}/eval.nc"),
        ),
        *(
            _py(
                "navier_stokes",
                "train",
                *_sets(f"data.path={OUT}/tiny.nc", f"output.path={OUT}/{preset}.nc"),
                *NS_TRAIN,
                *_sets(f"preset={preset}"),
            )
            for preset in ("tfno_tucker", "mg_tfno")
        ),
    ],
    "adapters_pretrain": [
        _py("adapters", "pretrain", *ADAPTERS_PRETRAIN, *_sets(f"output.path={OUT}/loqt.nc"))
    ],
    "adapters_sweep": [
        _py("adapters", "sweep", *ADAPTERS_SWEEP, *_sets(f"output.path={OUT}/sweep.nc"))
    ],
    "smmf": [_py("smmf", *SMMF, *_sets(f"output.path={OUT}/cnn.nc"))],
    "tpa": [_py("tpa", *TPA, *_sets(f"output.path={OUT}/tpa.nc"))],
    "panther": [_py("panther", *PANTHER, *_sets(f"output.path={OUT}/tiny.nc"))],
    "connectome": [_py("connectome", *CONNECTOME, *_sets(f"output.path={OUT}/conn.nc"))],
    "dain_sweep": [_py("dain", "sweep", *DAIN, *_sets(f"output.path={OUT}/sweep.nc"))],
    "dain_scaling": [
        _py("dain", "scaling", *DAIN_SCALING, *_sets(f"output.path={OUT}/scaling.nc"))
    ],
    "fields": [_py("fields", *FIELDS, *_sets(f"output.path={OUT}/tiny.nc"))],
    "migs": [_py("migs", "sweep", *MIGS, *_sets(f"output.path={OUT}/migs.nc"))],
}

# ------------------------------------------------------------------------ timing rule

#: Root attributes fitted to measured times (``drivers.dain scaling``: log-log slopes).
TIMING_ATTRS = frozenset({"exponent", "train_exponent", "influence_exponent"})
#: Root attributes not recorded: they change with every run or commit, or restate the argv.
VOLATILE_ATTRS = frozenset({"created", "git_commit", "versions", "tensorsim_version", "config"})


# ------------------------------------------------------------------------- snapshots


def _text(value: Any) -> str:
    """A stored string value (str or UTF-8 bytes) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _units(var: Any) -> str | None:
    """The ``units`` attribute of a variable as str (None if it has none)."""
    units = var.attrs.get("units")
    return None if units is None else _text(units)


def digest(values: np.ndarray) -> str:
    """SHA-256 of the raw bytes of an array (strings: of their UTF-8 text, NUL-joined).

    Parameters
    ----------
    values
        The values as read from the file.

    Returns
    -------
    str
        The hex digest.
    """
    if values.dtype.kind in "OUS":
        data = "\0".join(_text(v) for v in values.ravel()).encode("utf-8")
    else:
        data = np.ascontiguousarray(values).tobytes()
    return hashlib.sha256(data).hexdigest()


def _dtype_name(values: np.ndarray) -> str:
    """The dtype as recorded: ``str`` for text of any storage type."""
    return "str" if values.dtype.kind in "OUS" else values.dtype.str


def _json_value(value: Any, out_dir: str) -> Any:
    """An attribute value as JSON, with the run's output directory written as ``{out}``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OUS":
            return [_json_value(v, out_dir) for v in value.tolist()]
        entry = {"dtype": value.dtype.str, "shape": list(value.shape), "sha256": digest(value)}
        if value.size <= 16:
            entry["values"] = [repr(v) for v in value.ravel().tolist()]
        return entry
    if isinstance(value, np.generic):
        return {"dtype": value.dtype.str, "value": repr(value.item())}
    if isinstance(value, bytes | str):
        return _text(value).replace(out_dir, OUT)
    return repr(value)


def _walk(group: Any, prefix: str) -> Iterator[tuple[str, Any, bool]]:
    """``(path, variable, is_coordinate)`` for every variable of ``group`` and its subgroups."""
    coords: set[str] = set(group.dimensions)
    for var in group.variables.values():
        coords.update(str(var.attrs.get("coordinates", "")).split())
    for name, var in group.variables.items():
        yield prefix + name, var, name in coords
    for name, sub in group.groups.items():
        yield from _walk(sub, f"{prefix}{name}/")


def snapshot_file(path: Path, out_dir: Path) -> dict[str, Any]:
    """The snapshot of one output file (see the module doc).

    Parameters
    ----------
    path
        The netCDF file.
    out_dir
        The run's output directory, replaced by ``{out}`` in text attributes.

    Returns
    -------
    dict
        ``variables`` (path -> dims, dtype, shape, kind, sha256), ``excluded_timing`` (the
        names left out of ``variables``), ``timing_variables`` (their dims, dtype, shape and
        units), ``attributes`` (root attribute -> JSON value) and ``excluded_attributes``.
    """
    import h5netcdf

    variables: dict[str, Any] = {}
    timing: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    excluded_attrs: list[str] = []
    with h5netcdf.File(path, "r") as root:
        for name, var, is_coord in _walk(root, ""):
            values = np.asarray(var[...])
            units = _units(var)
            entry = {
                "dims": list(var.dimensions),
                "dtype": _dtype_name(values),
                "shape": list(values.shape),
                "kind": "state" if "/" in name else ("coordinate" if is_coord else "data"),
            }
            if is_timing(name.rsplit("/", 1)[-1], units):
                timing[name] = {**entry, "units": units}
            else:
                variables[name] = {**entry, "sha256": digest(values)}
        for key, value in root.attrs.items():
            if key in VOLATILE_ATTRS:
                continue
            if key in TIMING_ATTRS or is_timing(key):
                excluded_attrs.append(key)
            else:
                attributes[key] = _json_value(value, str(out_dir))
    return {
        "format": FORMAT,
        "file": path.name,
        "variables": variables,
        "excluded_timing": sorted(timing),
        "timing_variables": timing,
        "attributes": attributes,
        "excluded_attributes": sorted(excluded_attrs),
    }


# ----------------------------------------------------------------------------- run


def _environment() -> dict[str, str]:
    """The environment of the commands: one thread, this checkout's packages first."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    # python -m puts the working directory first on sys.path; PYTHONPATH makes sure that
    # also holds if an editable install of another checkout is in the interpreter's venv.
    rest = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + rest if rest else "")
    return env


def resolve(argv: Sequence[str], python: str, out: Path) -> list[str]:
    """Fill the placeholders of one command of :data:`RUNS`.

    Parameters
    ----------
    argv
        The command with :data:`PYTHON`, :data:`MPIEXEC` and :data:`OUT`.
    python
        The Python interpreter (``mpiexec`` is the one next to it).
    out
        The run's output directory.

    Returns
    -------
    list of str
        The argv to execute.
    """
    mpiexec = str(Path(python).with_name("mpiexec"))
    fill = {PYTHON: python, MPIEXEC: mpiexec, OUT: str(out)}
    resolved = []
    for arg in argv:
        for key, value in fill.items():
            arg = arg.replace(key, value)
        resolved.append(arg)
    return resolved


def check_imports(python: str) -> dict[str, str]:
    """Where the commands import the packages from; raise if not from :data:`ROOT`.

    Parameters
    ----------
    python
        The Python interpreter of the commands.

    Returns
    -------
    dict
        Package -> its ``__file__`` in a subprocess with the commands' environment and
        working directory.

    Raises
    ------
    RuntimeError
        If a package comes from another directory than this checkout.
    """
    code = (
        "import json, drivers, problems, solvers, tensorsim; print(json.dumps({m.__name__: "
        "m.__file__ for m in (drivers, problems, solvers, tensorsim)}))"
    )
    done = subprocess.run(
        [python, "-c", code],
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = {k: v for k, v in found.items() if not Path(v).resolve().is_relative_to(ROOT)}
    if wrong:
        raise RuntimeError(f"packages imported from outside {ROOT}: {wrong}")
    return found


def _git_head() -> str:
    """The commit and state of :data:`ROOT` (informational)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + (" (with changes to tracked files)" if dirty else "")


def run_all(
    outdir: Path, names: Sequence[str], *, python: str, timeout: float, overwrite: bool
) -> int:
    """Run the runs ``names`` into ``outdir`` and snapshot their files; return the exit code.

    Parameters
    ----------
    outdir
        The output directory (created if needed).
    names
        Run names of :data:`RUNS`.
    python
        The Python interpreter of the commands.
    timeout
        Seconds allowed to one command.
    overwrite
        Remove an existing ``outdir/<run-name>`` first (otherwise it is an error).

    Returns
    -------
    int
        0 if every command succeeded, 1 otherwise.
    """
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    for name in names:
        run_dir = outdir / name
        if run_dir.exists():
            if not overwrite:
                raise SystemExit(f"{run_dir} exists (use --overwrite to replace it)")
            shutil.rmtree(run_dir)
    imports = check_imports(python)
    print(f"repository {ROOT} ({_git_head()})")
    for module, file in imports.items():
        print(f"  {module:<10} {file}")
    manifest_path = outdir / "manifest.json"
    manifest: dict[str, Any] = {"runs": {}}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    manifest.update(
        format=FORMAT,
        repository=str(ROOT),
        commit=_git_head(),
        python=python,
        imports=imports,
    )
    env = _environment()
    failed = []
    start_all = time.perf_counter()
    for name in names:
        run_dir = outdir / name
        run_dir.mkdir()
        record: dict[str, Any] = {"commands": [], "files": []}
        for k, argv in enumerate(RUNS[name]):
            cmd = resolve(argv, python, run_dir)
            start = time.perf_counter()
            try:
                with open(run_dir / f"command{k}.log", "w") as log:
                    code = subprocess.run(
                        cmd,
                        cwd=ROOT,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        timeout=timeout,
                        check=False,
                    ).returncode
            except subprocess.TimeoutExpired:
                code = -1
            seconds = time.perf_counter() - start
            record["commands"].append({"argv": cmd, "returncode": code, "seconds": seconds})
            print(f"{name:<34} command {k}: exit {code:>3} in {seconds:6.1f} s")
            if code != 0:
                failed.append(name)
                print(f"  see {run_dir / f'command{k}.log'}")
                break
        for path in sorted(run_dir.rglob("*.nc")):
            snap = snapshot_file(path, run_dir)
            path.with_name(path.name + ".json").write_text(json.dumps(snap, indent=1) + "\n")
            record["files"].append(str(path.relative_to(run_dir)))
        manifest["runs"][name] = record
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    total = time.perf_counter() - start_all
    print(f"{len(names)} runs in {total:.1f} s" + (f"; failed: {failed}" if failed else ""))
    return 1 if failed else 0


# ------------------------------------------------------------------------- compare


def _load_run(run_dir: Path) -> dict[str, dict[str, Any]]:
    """File name -> snapshot, for the snapshots of one run directory."""
    return {
        str(p.relative_to(run_dir))[: -len(".json")]: json.loads(p.read_text())
        for p in sorted(run_dir.rglob("*.nc.json"))
    }


def _failed(outdir: Path, run: str) -> bool:
    """Whether a command of ``run`` failed (or did not run) according to the manifest."""
    path = outdir / "manifest.json"
    record = json.loads(path.read_text()).get("runs", {}).get(run) if path.exists() else None
    if record is None:
        return True
    return any(command["returncode"] != 0 for command in record["commands"])


def _runs_of(outdir: Path) -> set[str]:
    """The run names of an output directory (its subdirectories)."""
    return {p.name for p in outdir.iterdir() if p.is_dir()}


def compare_files(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Compare the snapshots of one file.

    Parameters
    ----------
    a, b
        Snapshots (:func:`snapshot_file`).

    Returns
    -------
    dict
        ``compared`` and ``equal`` (counts of variables in both), ``differ``, ``missing``
        (in ``a`` only) and ``extra`` (in ``b`` only) variable names, the same for the
        timing variables' layout (``timing_*``) and the attributes (``attrs_*``).
    """
    out: dict[str, Any] = {}
    sections = (
        ("", "variables", ("dims", "dtype", "shape", "sha256")),
        ("timing_", "timing_variables", ("dims", "dtype", "shape")),
        ("attrs_", "attributes", None),
    )
    for prefix, key, fields in sections:
        va, vb = a.get(key, {}), b.get(key, {})
        both = sorted(set(va) & set(vb))

        def same(x: Any, y: Any, fields: Any = fields) -> bool:
            return x == y if fields is None else all(x.get(f) == y.get(f) for f in fields)

        differ = [n for n in both if not same(va[n], vb[n])]
        out[prefix + "compared"] = len(both)
        out[prefix + "equal"] = len(both) - len(differ)
        out[prefix + "differ"] = differ
        out[prefix + "missing"] = sorted(set(va) - set(vb))
        out[prefix + "extra"] = sorted(set(vb) - set(va))
    return out


def _row(
    run: str,
    file: str,
    compared: Any = "",
    equal: Any = "",
    timing: str = "",
    attrs: str = "",
    note: str = "",
) -> str:
    """One line of the comparison table."""
    return f"{run:<32} {file:<16} {compared:>5} {equal:>5} {timing:>6} {attrs:>7}  {note}"


def compare_dirs(a: Path, b: Path) -> int:
    """Print the comparison table of two output directories; return the exit code.

    Parameters
    ----------
    a, b
        Directories written by ``run``.

    Returns
    -------
    int
        0 if every run, file, variable and attribute is equal, 1 otherwise.
    """
    header = _row("run", "file", "vars", "equal", "timing", "attrs", "differences")
    print(header)
    print("-" * len(header))
    bad = 0
    for run in sorted(_runs_of(a) | _runs_of(b)):
        if not (a / run).is_dir() or not (b / run).is_dir():
            where = "B" if not (b / run).is_dir() else "A"
            print(_row(run, "-", note=f"run missing in {where}"))
            bad += 1
            continue
        failed = [x for x, d in (("A", a), ("B", b)) if _failed(d, run)]
        if failed:
            print(_row(run, "-", note=f"a command failed in {' and '.join(failed)}"))
            bad += 1
        fa, fb = _load_run(a / run), _load_run(b / run)
        if not fa and not fb:
            print(_row(run, "-", note="no output files"))
            bad += 1
        for file in sorted(set(fa) | set(fb)):
            if file not in fa or file not in fb:
                where = "B" if file not in fb else "A"
                print(_row(run, file, note=f"file missing in {where}"))
                bad += 1
                continue
            c = compare_files(fa[file], fb[file])
            notes = []
            for prefix, label in (("", ""), ("timing_", "timing layout "), ("attrs_", "attr ")):
                if c[prefix + "differ"]:
                    notes.append(f"{label}differ: {', '.join(c[prefix + 'differ'])}")
                if c[prefix + "missing"]:
                    notes.append(f"{label}missing in B: {', '.join(c[prefix + 'missing'])}")
                if c[prefix + "extra"]:
                    notes.append(f"{label}extra in B: {', '.join(c[prefix + 'extra'])}")
            bad += bool(notes)
            timing = f"{c['timing_equal']}/{c['timing_compared']}"
            attrs = f"{c['attrs_equal']}/{c['attrs_compared']}"
            note = "; ".join(notes) if notes else "all equal"
            print(_row(run, file, c["compared"], c["equal"], timing, attrs, note))
    print(
        "vars: variables compared by value (coordinates, data, checkpoint); timing: "
        "timing variables with equal layout; attrs: equal root attributes"
    )
    print("EQUAL" if not bad else f"DIFFERENT: {bad} file(s) or run(s) differ")
    return 1 if bad else 0


# ---------------------------------------------------------------------------- scan


def _raw(path: Path) -> tuple[dict[str, tuple[str, Any]], dict[str, str]]:
    """Every variable (path -> sha256, units) and root attribute (name -> repr) of a file."""
    import h5netcdf

    with h5netcdf.File(path, "r") as root:
        variables = {
            name: (digest(np.asarray(var[...])), _units(var)) for name, var, _ in _walk(root, "")
        }
        attrs = {key: repr(value) for key, value in root.attrs.items()}
    return variables, attrs


def _unpath(text: str | None, outdir: Path) -> str | None:
    """``text`` with the absolute path of ``outdir`` replaced by a placeholder."""
    return None if text is None else text.replace(str(outdir.resolve()), "{outdir}")


def scan_dirs(a: Path, b: Path) -> int:
    """List everything that differs between the output files of two runs of the same checkout.

    Unlike ``compare``, this reads the ``.nc`` files themselves and excludes nothing: it is
    how the timing rule was decided (run the list twice, scan). Each differing variable or
    root attribute is printed with how the rule classifies it.

    Parameters
    ----------
    a, b
        Directories written by ``run`` (their ``.nc`` files are kept).

    Returns
    -------
    int
        0 if everything that differs is excluded (timing or volatile attributes), 1 if
        something else differs (nondeterminism) or a file is missing.
    """
    bad = 0
    files = sorted(
        {p.relative_to(a) for p in a.rglob("*.nc")} | {p.relative_to(b) for p in b.rglob("*.nc")}
    )
    for rel in files:
        if not (a / rel).exists() or not (b / rel).exists():
            print(f"{rel}: missing in {'B' if (a / rel).exists() else 'A'}")
            bad += 1
            continue
        (va, aa), (vb, ab) = _raw(a / rel), _raw(b / rel)
        notes = []
        for name in sorted(set(va) | set(vb)):
            if va.get(name, (None,))[0] != vb.get(name, (None,))[0]:
                units = (va.get(name) or vb.get(name))[1]
                timing = is_timing(name.rsplit("/", 1)[-1], units)
                bad += not timing
                label = "timing, excluded" if timing else "NOT EXCLUDED"
                notes.append(f"variable {name} (units {units!r}): {label}")
        for key in sorted(set(aa) | set(ab)):
            if aa.get(key) != ab.get(key):
                if key in VOLATILE_ATTRS:
                    label = "volatile, not recorded"
                elif key in TIMING_ATTRS or is_timing(key):
                    label = "timing, excluded"
                elif _unpath(aa.get(key), a) == _unpath(ab.get(key), b):
                    label = "output path, recorded as {out}"
                else:
                    label = "NOT EXCLUDED"
                    bad += 1
                notes.append(f"attribute {key}: {label}")
        print(f"{rel}:" + "".join(f"\n    {n}" for n in notes) if notes else f"{rel}: equal")
    print("only timing and volatile data differ" if not bad else f"{bad} unexpected difference(s)")
    return 1 if bad else 0


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module doc); return the exit code.

    Parameters
    ----------
    argv
        Arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="driver_snapshots.py", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the tiny driver runs and snapshot their outputs")
    run.add_argument("outdir", type=Path)
    run.add_argument("--only", nargs="+", metavar="NAME", choices=list(RUNS), help="these runs")
    run.add_argument("--python", default=sys.executable, help="interpreter (default: this one)")
    run.add_argument("--timeout", type=float, default=600.0, help="seconds per command")
    run.add_argument("--overwrite", action="store_true", help="replace existing run outputs")
    sub.add_parser("list", help="print the runs and their argv")
    cmp = sub.add_parser("compare", help="compare two output directories of 'run'")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    scan = sub.add_parser("scan", help="raw differences of the .nc files of two 'run's")
    scan.add_argument("a", type=Path)
    scan.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        names = args.only or list(RUNS)
        return run_all(
            args.outdir, names, python=args.python, timeout=args.timeout, overwrite=args.overwrite
        )
    if args.command == "list":
        for name, commands in RUNS.items():
            print(name)
            for cmd in commands:
                print("   ", subprocess.list2cmdline(cmd))
        return 0
    if args.command == "scan":
        return scan_dirs(args.a, args.b)
    return compare_dirs(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
