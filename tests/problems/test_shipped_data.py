"""The repository's data/ folder: locating and reading it, and tools/make_data.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import problems.shipped_data as shipped
from problems.completion_data import il2_tensor
from problems.genomics import SyntheticCohortParams, serology_data, synthetic_cohort
from problems.genomics_files import read_cohort, write_cohort

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "make_data.py"


def _make_data():
    spec = importlib.util.spec_from_file_location("make_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_dir_is_the_checkouts():
    assert shipped.DATA_DIR == ROOT / "data" and shipped.DATA_DIR.is_absolute()
    assert shipped.data_path("il2.npz") == ROOT / "data" / "il2.npz"
    assert shipped.data_path("nope.csv", must_exist=False) == ROOT / "data" / "nope.csv"
    with pytest.raises(FileNotFoundError, match=r"nope\.csv.*python tools/make_data\.py"):
        shipped.data_path("nope.csv")
    with pytest.raises(ValueError, match="parts"):
        shipped.data_path()
    with pytest.raises(KeyError, match=r"il2\.npz: no array 'values'"):
        shipped.load_arrays("il2.npz", ["tensor", "values"])
    with pytest.raises(KeyError, match=r"references\.toml: no table 'nope'"):
        shipped.reference_values("nope")


def test_loaders_name_the_missing_file_and_the_generator(tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "DATA_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"il2\.npz: shipped data .*tools/make_data\.py"):
        il2_tensor()
    with pytest.raises(FileNotFoundError, match=r"serology\.npz: .*tools/make_data\.py"):
        serology_data()
    assert shipped.panther_tables()[0] == str(tmp_path / "panther" / "counts.csv")


def test_archives_are_plain_arrays_with_their_source():
    for name, shape in (("il2.npz", (13, 4, 12, 8)), ("serology.npz", (438, 6, 11))):
        with np.load(shipped.data_path(name), allow_pickle=False) as z:
            assert z["tensor"].shape == shape and z["tensor"].dtype == np.float64
            assert len(z["dims"]) == len(shape)
            for dim, n in zip(z["dims"], shape, strict=True):
                assert z[f"ticks_{dim}"].shape == (n,)
            assert "TensorLy" in str(z["source"]) and str(z["reference"])
            assert str(z["licence"]).startswith("Copyright 20")
            assert "Permission is hereby granted" in str(z["licence"])
        with zipfile.ZipFile(shipped.data_path(name)) as archive:
            assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_panther_tables_are_the_documented_cohort(tmp_path):
    tables = shipped.panther_tables()
    assert all(Path(t).is_absolute() and Path(t).is_file() for t in tables)
    assert [Path(t).name for t in tables] == ["counts.csv", "membership.csv", "samples.csv"]
    make_data = _make_data()
    params = SyntheticCohortParams(n_patients=make_data.PANTHER_PATIENTS)
    cohort = synthetic_cohort(params, rng=make_data.PANTHER_SEED)
    for ours, shipped_table in zip(write_cohort(cohort, tmp_path), tables, strict=True):
        assert ours.read_bytes() == Path(shipped_table).read_bytes()
    back = read_cohort(*tables)
    assert len(back.patient_ids) == 60 and back.class_names == ("class0", "class1", "class2",
                                                                "class3")  # fmt: skip
    np.testing.assert_array_equal(np.bincount(back.labels), [15, 15, 15, 15])


def test_npz_bytes_are_reproducible_and_round_trip(tmp_path):
    make_data = _make_data()
    arrays = {"tensor": np.array([[1.0, np.nan], [-0.0, 2.5]]), "dims": np.array(["a", "bb"])}
    first, second = make_data.npz_bytes(arrays), make_data.npz_bytes(dict(arrays))
    assert first == second
    (tmp_path / "x.npz").write_bytes(first)
    with np.load(tmp_path / "x.npz", allow_pickle=False) as z:
        assert z.files == ["tensor", "dims"]
        np.testing.assert_array_equal(
            z["tensor"].view(np.uint64), arrays["tensor"].view(np.uint64)
        )
        assert z["dims"].tolist() == ["a", "bb"]
    with pytest.raises(TypeError, match="object"):
        make_data.npz_bytes({"x": np.array([None])})


def test_generator_check_passes_and_catches_a_change(tmp_path, monkeypatch, capsys):
    make_data = _make_data()
    names = ["panther", "references"]
    if importlib.util.find_spec("tensorly") is not None:
        names += ["il2", "serology"]
    assert make_data.main(["--check", *names]) == 0, capsys.readouterr().out
    # a copy of data/ with one changed byte, one missing file and one stray file fails
    copy = tmp_path / "data"
    for path in shipped.DATA_DIR.rglob("*"):
        if path.is_file():
            (copy / path.relative_to(shipped.DATA_DIR)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(shipped.DATA_DIR)).write_bytes(path.read_bytes())
    text = (copy / "panther" / "samples.csv").read_bytes()
    (copy / "panther" / "samples.csv").write_bytes(text.replace(b"class0", b"class9", 1))
    (copy / "references.toml").unlink()
    (copy / "stray.txt").write_text("x")
    monkeypatch.setattr(make_data, "DATA", copy)
    capsys.readouterr()
    assert make_data.main(["--check", *names]) == 1
    out = capsys.readouterr().out
    assert "data/panther/samples.csv: differs" in out and "data/references.toml: missing" in out
    if len(names) == 4:
        assert "data/stray.txt: no entry of tools/make_data.py writes it" in out
    # writing restores the copy
    assert make_data.main(names) == 0
    (copy / "stray.txt").unlink()
    assert make_data.main(["--check", *names]) == 0


def test_generator_command_line():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--list"],
        capture_output=True,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [
        "il2", "serology", "panther", "references"
    ]  # fmt: skip
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "nope"], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown entry 'nope'" in bad.stderr


def test_references_name_their_origin_and_users():
    for name in ("tfim_l16_tebd", "long_range_ising_d16"):
        table = shipped.reference_values(name)
        assert table["used_by"] and all(
            (ROOT / user.split("::")[0]).is_file() for user in table["used_by"]
        )
    tebd = shipped.reference_values("tfim_l16_tebd")
    assert (tebd["tenpy"], tebd["quimb"]) == (0.79226, 0.792256)
    assert "bug-ttn.md" in shipped.reference_values("long_range_ising_d16")["origin"]
