"""Write every file of the repository's ``data/`` folder from its source, or check them.

::

    python tools/make_data.py                    # (re)write every file of data/
    python tools/make_data.py --check            # exit 1 unless data/ is what it would write
    python tools/make_data.py [--check] NAME ... # only these entries (see ``--list``)
    python tools/make_data.py --recompute        # re-derive the peer-library references

Run from the source checkout (the project installed in editable mode: ``data/`` is read from
the checkout, never installed). The entries (:data:`ENTRIES`; ``data/README.md`` gives the
origin, reference and licence of each):

``il2``
    ``data/il2.npz``: the IL-2 signaling tensor bundled with TensorLy
    (``tensorly.datasets.load_IL2data``), read by :func:`problems.completion_data.il2_tensor`.
``serology``
    ``data/serology.npz``: the COVID-19 serology tensor bundled with TensorLy
    (``tensorly.datasets.load_covid19_serology``), read by
    :func:`problems.genomics.serology_data`.
``panther``
    ``data/panther/{counts,membership,samples}.csv``: a synthetic PANTHER cohort
    (:func:`problems.genomics.synthetic_cohort`, :data:`PANTHER_PATIENTS` patients, seed
    :data:`PANTHER_SEED`) in the three-table format of
    :func:`problems.genomics_files.write_cohort`: the ``files`` preset of
    ``python -m drivers.panther``.
``references``
    ``data/references.toml``: reference values computed once outside this code base (peer
    libraries, the project specification) and read by the tests (:data:`REFERENCES`).

The ``.npz`` archives hold only plain arrays (no pickles): ``tensor`` (float64, NaN where a
cell is missing), ``dims`` (the mode names), one ``ticks_<dim>`` per mode, and the 0-d
string arrays ``title``, ``source``, ``reference`` and ``licence``. They are written
byte-for-byte deterministically (stored, not compressed, zip members with a fixed time
stamp), so ``--check`` compares bytes. The two TensorLy entries need ``tensorly`` (the
``bench`` extra) to be written or checked; the loaders need only NumPy.
"""

from __future__ import annotations

import argparse
import inspect
import io
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

#: Size and seed of the synthetic PANTHER cohort of ``data/panther/``.
PANTHER_PATIENTS = 60
PANTHER_SEED = 5

#: Reference values typed into tests after one run elsewhere, with their origin.
REFERENCES: dict[str, dict[str, Any]] = {
    "tfim_l16_tebd": {
        "quantity": "<Sigma^z_8>(t = 2), sites numbered 0 to 15",
        "model": (
            "transverse-field Ising chain H = -J sum_i X_i X_i+1 - g sum_i Z_i (TeNPy's "
            "TFIChain convention), L = 16, J = 1, g = 1.5, open boundaries, all spins up at t = 0"
        ),
        "tenpy": 0.79226,
        "tenpy_run": "TeNPy TEBDEngine, order 2, dt = 0.05 (40 steps), chi_max = 32",
        "quimb": 0.792256,
        "quimb_run": "quimb TEBD, order 2, dt = 0.05, max_bond = 32 (default cutoff 1e-10)",
        "rounded": "to 6 decimals; both carry a Trotter error (about 1e-4)",
        "reproduced_with": "physics-tenpy 1.1.1 and quimb 1.16.0 (tools/make_data.py --recompute)",
        "used_by": [
            "tests/problems/test_spin_chain_model.py::test_tfim_l16_against_tenpy_quimb_tebd",
        ],
    },
    "long_range_ising_d16": {
        "quantity": "mz_mean at t = 1 and the (conserved) energy E",
        "model": (
            "long-range Ising chain of arXiv 2412.00858 Sec. 5.1: d = 16, Omega = Delta = 1, "
            "nu = 2, alpha = 1, all sites in (1, 0) at t = 0"
        ),
        "mz_mean_t1": 0.95905871,
        "energy": 92.1833,
        "origin": (
            "the project specification bug-ttn.md, section 7 ('Findings from a reference "
            "prototype'): exact diagonalization, as quoted there (8 and 4 decimals)"
        ),
        "used_by": [
            "tests/problems/test_spin_chain_model.py::test_long_range_energy_formula",
            "tests/problems/test_spin_chain_model.py::test_long_range_ising_d16_reference",
        ],
        "quoted_in": ["docs/bug.md"],
    },
}

_REFERENCES_HEADER = """\
# Reference values computed once outside this code base and read by the tests.
# Written by tools/make_data.py from its REFERENCES table: edit it there, then run
# `python tools/make_data.py references`. Origins in data/README.md.

"""

#: Fixed zip member time stamp (the earliest the format allows): reproducible archives.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    """A ``.npz`` archive of ``arrays`` as bytes, the same on every run and machine.

    Each array is a stored (uncompressed) member ``<name>.npy`` in ``.npy`` format 1.0, with
    a fixed time stamp and Unix permissions 0644, in the order of ``arrays``.

    Parameters
    ----------
    arrays
        Name -> array (or anything :func:`numpy.asarray` takes); no object arrays.

    Returns
    -------
    bytes
        What :func:`numpy.load` reads back as the same arrays.

    Raises
    ------
    TypeError
        An array of dtype object (it would need a pickle).
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            array = np.asarray(value)
            if array.dtype.hasobject:
                raise TypeError(f"arrays[{name!r}]: expected a plain dtype, got object")
            member = io.BytesIO()
            np.lib.format.write_array(member, array, version=(1, 0), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.create_system = 3  # Unix, whatever the platform
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def _tensorly_datasets() -> Any:
    try:
        from tensorly import datasets
    except ImportError as exc:
        raise ImportError(
            "this entry is written from TensorLy's bundled data: pip install tensorly "
            "(the bench extra)"
        ) from exc
    return datasets


def _attrs(title: str, source: str, reference: str, licence: str) -> dict[str, np.ndarray]:
    return {
        "title": np.asarray(title),
        "source": np.asarray(source),
        "reference": np.asarray(reference),
        "licence": np.asarray(inspect.cleandoc(licence)),
    }


def build_il2() -> dict[str, bytes]:
    """``il2.npz`` from ``tensorly.datasets.load_IL2data()``.

    Returns
    -------
    dict of str to bytes
        Path below ``data/`` -> file content.
    """
    bunch = _tensorly_datasets().load_IL2data()
    dims = [str(d) for d in bunch.dims]
    arrays = {"tensor": np.asarray(bunch.tensor), "dims": np.asarray(dims)}
    for dim, ticks in zip(dims, bunch.ticks, strict=True):
        values = np.asarray(ticks)
        arrays[f"ticks_{dim}"] = values.astype(str) if values.dtype.kind in "OU" else values
    arrays |= _attrs(
        "IL-2 mutein signaling responses (ligands x times x doses x cells); NaN: not measured",
        "TensorLy, tensorly.datasets.load_IL2data (file tensorly/datasets/data/"
        "IL2_Response_Tensor.npy); written by tools/make_data.py",
        " ".join(" ".join(r.split()) for r in bunch.reference),
        bunch.LICENSE,
    )
    return {"il2.npz": npz_bytes(arrays)}


def build_serology() -> dict[str, bytes]:
    """``serology.npz`` from ``tensorly.datasets.load_covid19_serology()``.

    Returns
    -------
    dict of str to bytes
        Path below ``data/`` -> file content.
    """
    bunch = _tensorly_datasets().load_covid19_serology()
    dims = [str(d) for d in bunch.dims]
    arrays = {"tensor": np.asarray(bunch.tensor), "dims": np.asarray(dims)}
    for dim, ticks in zip(dims, bunch.ticks, strict=True):
        arrays[f"ticks_{dim}"] = np.asarray([str(t) for t in ticks])
    arrays |= _attrs(
        "COVID-19 systems serology (samples x antigens x receptors); ticks_samples: the "
        "patient status of each sample",
        "TensorLy, tensorly.datasets.load_covid19_serology (file tensorly/datasets/data/"
        "COVID19_data.npy); written by tools/make_data.py",
        " | ".join(" ".join(r.split()) for r in bunch.reference),
        bunch.LICENSE,
    )
    return {"serology.npz": npz_bytes(arrays)}


def build_panther() -> dict[str, bytes]:
    """``panther/{counts,membership,samples}.csv``: a synthetic cohort's three tables.

    Returns
    -------
    dict of str to bytes
        Path below ``data/`` -> file content.
    """
    from problems.genomics import SyntheticCohortParams, synthetic_cohort
    from problems.genomics_files import write_cohort

    cohort = synthetic_cohort(SyntheticCohortParams(n_patients=PANTHER_PATIENTS), rng=PANTHER_SEED)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_cohort(cohort, tmp)
        return {f"panther/{p.name}": p.read_bytes() for p in paths}


def build_references() -> dict[str, bytes]:
    """``references.toml`` from :data:`REFERENCES`.

    Returns
    -------
    dict of str to bytes
        Path below ``data/`` -> file content.
    """
    import tomli_w

    text = _REFERENCES_HEADER + tomli_w.dumps(REFERENCES)
    return {"references.toml": text.encode("utf-8")}


#: Entry name -> the function that builds its files.
ENTRIES: dict[str, Callable[[], dict[str, bytes]]] = {
    "il2": build_il2,
    "serology": build_serology,
    "panther": build_panther,
    "references": build_references,
}

#: Files of ``data/`` that no entry writes (kept by hand).
HAND_WRITTEN = ("README.md",)


def recompute_references() -> int:
    """Re-run the TeNPy and quimb TEBD references and compare them with :data:`REFERENCES`.

    Needs ``physics-tenpy`` and ``quimb`` (the ``bench`` extra); about ten seconds.

    Returns
    -------
    int
        0 if both round (6 decimals) to the recorded values, 1 otherwise.
    """
    import warnings

    import quimb as qu
    import quimb.tensor as qtn
    from tenpy.algorithms import tebd
    from tenpy.models.tf_ising import TFIChain
    from tenpy.networks.mps import MPS

    sites, site, g = 16, 8, 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TFIChain({"L": sites, "J": 1.0, "g": g, "bc_MPS": "finite"})
        psi = MPS.from_product_state(model.lat.mps_sites(), ["up"] * sites, bc="finite")
        options = {"order": 2, "dt": 0.05, "N_steps": 40, "trunc_params": {"chi_max": 32}}
        tebd.TEBDEngine(psi, model, options).run()
        tenpy_value = float(psi.expectation_value("Sigmaz")[site])
        x, z = qu.pauli("X"), qu.pauli("Z")
        ham = qtn.LocalHam1D(sites, H2=-np.kron(x, x), H1=-g * z)
        run = qtn.TEBD(
            qtn.MPS_computational_state("0" * sites), ham, dt=0.05,
            split_opts={"max_bond": 32}, progbar=False,
        )  # fmt: skip
        run.update_to(2.0, order=2)
        quimb_value = float(np.real(run.pt.local_expectation(z, site)))
    ref = REFERENCES["tfim_l16_tebd"]
    bad = 0
    for name, value in (("tenpy", tenpy_value), ("quimb", quimb_value)):
        same = round(value, 6) == ref[name]
        bad += not same
        print(f"tfim_l16_tebd.{name}: recomputed {value:.10f}, recorded {ref[name]}", end="")
        print("" if same else "  DIFFERENT")
    return int(bad > 0)


def _build(names: Sequence[str]) -> tuple[dict[str, bytes], list[str]]:
    files: dict[str, bytes] = {}
    errors = []
    for name in names:
        try:
            files |= ENTRIES[name]()
        except ImportError as exc:
            errors.append(f"{name}: cannot build: {exc}")
    return files, errors


def check(names: Sequence[str]) -> int:
    """Compare ``data/`` with what the entries ``names`` would write.

    Every file must exist with the same bytes and be named in ``data/README.md``; when all
    entries are checked, ``data/`` must hold no other file (except :data:`HAND_WRITTEN`).

    Returns
    -------
    int
        0 if everything matches, 1 otherwise (each problem printed).
    """
    files, issues = _build(names)
    readme_path = DATA / "README.md"
    readme = readme_path.read_text(encoding="utf-8") if readme_path.is_file() else ""
    if not readme:
        issues.append("data/README.md: missing")
    for rel, content in files.items():
        path = DATA / rel
        if not path.is_file():
            issues.append(f"data/{rel}: missing")
        elif path.read_bytes() != content:
            issues.append(f"data/{rel}: differs from what tools/make_data.py writes")
        if readme and rel not in readme:
            issues.append(f"data/{rel}: not listed in data/README.md")
    if set(names) == set(ENTRIES) and not any("cannot build" in p for p in issues):
        present = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file()}
        for rel in sorted(present - set(files) - set(HAND_WRITTEN)):
            issues.append(f"data/{rel}: no entry of tools/make_data.py writes it")
    for line in issues:
        print(line)
    print(f"{len(files)} file(s) checked: " + ("OK" if not issues else "DIFFERENT"))
    return int(bool(issues))


def write(names: Sequence[str]) -> int:
    """Write the files of the entries ``names`` (only those whose bytes change).

    Returns
    -------
    int
        0, or 1 if an entry could not be built (its files are left as they are).
    """
    files, errors = _build(names)
    for rel, content in files.items():
        path = DATA / rel
        if path.is_file() and path.read_bytes() == content:
            print(f"data/{rel}: unchanged ({len(content)} bytes)")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(f"data/{rel}: written ({len(content)} bytes)")
    for line in errors:
        print(line)
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    print(f"data/: {total} bytes in all")
    return int(bool(errors))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (module docstring).

    Parameters
    ----------
    argv
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("names", nargs="*", help=f"entries (default all: {', '.join(ENTRIES)})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare data/, write nothing")
    mode.add_argument("--list", action="store_true", help="list the entries and exit")
    mode.add_argument("--recompute", action="store_true", help="re-run the TeNPy/quimb references")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in ENTRIES]
    if unknown:
        parser.error(f"unknown entry {unknown[0]!r} (expected one of {', '.join(ENTRIES)})")
    names = list(args.names or ENTRIES)
    if args.list:
        for name, build in ENTRIES.items():
            print(f"{name:<11} {inspect.getdoc(build).splitlines()[0]}")
        return 0
    if args.recompute:
        return recompute_references()
    return check(names) if args.check else write(names)


if __name__ == "__main__":
    sys.exit(main())
