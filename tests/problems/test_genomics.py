"""PANTHER data: tensor fills, filters, synthetic cohorts, file format and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from problems.genomics import (
    Cohort,
    FilterParams,
    SyntheticCohortParams,
    build_tensor,
    cohort_tensor,
    filter_cohort,
    filter_pathways,
    serology_data,
    stratified_split,
    synthetic_cohort,
)
from problems.genomics_files import (  # noqa: E402
    FilesParams,
    patient_data,
    read_cohort,
    write_cohort,
)
from tensorsim.config import ConfigError


def _small(rng, n=6, p=5, g=7):
    counts = rng.poisson(0.7, size=(n, g)).astype(float)
    member = rng.random((p, g)) < 0.4
    return counts, member


def _cohort(counts, member, labels=None, **kw):
    n, g = counts.shape
    labels = np.arange(n) % 2 if labels is None else labels
    return Cohort(
        counts=counts,
        membership=member,
        labels=np.asarray(labels),
        class_names=("a", "b"),
        patient_ids=[f"p{i}" for i in range(n)],
        gene_names=[f"g{i}" for i in range(g)],
        pathway_names=[f"w{i}" for i in range(member.shape[0])],
        **kw,
    )


def test_knowledge_and_co2_fills_match_the_cell_by_cell_definition(rng):
    counts, member = _small(rng)
    n, g = counts.shape
    p = member.shape[0]
    knowledge = build_tensor(counts, member, fill="knowledge")
    co2 = build_tensor(counts, member, fill="co2")
    for i, j, k in itertools.product(range(n), range(p), range(g)):
        ref = counts[i, k] if member[j, k] else 0.0
        assert knowledge[i, j, k] == ref
        if ref == 0.0:
            pathway = sum(counts[i, q] for q in range(g) if member[j, q])
            if pathway > 0 and counts[i, k] > 0:
                ref = min(pathway, counts[i, k])
        assert co2[i, j, k] == ref
    # the fill only adds cells, and only outside the memberships
    assert np.all(co2 >= knowledge) and np.all((co2 > knowledge) <= ~member[None])
    assert (co2 > knowledge).any()


def test_tfidf_weighting_follows_its_formula(rng):
    counts, member = _small(rng)
    x = build_tensor(counts, member, fill="knowledge", weighting="tfidf")
    p = member.shape[0]
    for i, j, k in itertools.product(*map(range, x.shape)):
        n_pw = member[:, k].sum()
        ref = np.log(counts[i, k] + 1) * np.log(p / n_pw) if member[j, k] else 0.0
        assert x[i, j, k] == pytest.approx(ref, abs=1e-12)


def test_subisomorphism_filter_against_set_logic(rng):
    member = rng.random((12, 40)) < 0.5
    member[3] = member[1]  # duplicate: the later one goes
    member[5] = member[0] & (np.arange(40) % 2 == 0)  # a subset of pathway 0
    member[7] = False  # empty
    sets = [set(np.flatnonzero(m)) for m in member]
    expect = []
    for i, s in enumerate(sets):
        strict = any(s < t for t in sets)
        equal_before = any(s == sets[j] for j in range(i))
        if s and not strict and not equal_before:
            expect.append(i)
    kept = filter_pathways(member)
    np.testing.assert_array_equal(kept, expect)
    assert 3 not in kept and 5 not in kept and 7 not in kept and 1 in kept


def test_filter_cohort_thresholds_and_planted_renumbering(rng):
    counts = rng.poisson(0.4, size=(40, 30)).astype(float)
    member = rng.random((8, 30)) < 0.3
    member[2] = member[0] & member[1]  # subset of both: dropped
    cohort = _cohort(counts, member, planted=((0, 2), (4, 6)))
    out = filter_cohort(cohort, min_gene_fraction=0.2, min_patient_genes=3)
    hit = counts > 0
    genes = [k for k in range(30) if hit[:, k].sum() >= 8]
    patients = [i for i in range(40) if hit[i, genes].sum() >= 3]
    assert out.gene_names == tuple(f"g{k}" for k in genes)
    assert out.patient_ids == tuple(f"p{i}" for i in patients)
    np.testing.assert_array_equal(out.counts, counts[np.ix_(patients, genes)])
    assert "w2" not in out.pathway_names
    names = out.pathway_names
    assert [names[i] for i in out.planted[0]] == [n for n in ("w0",) if n in names]
    assert [names[i] for i in out.planted[1]] == [n for n in ("w4", "w6") if n in names]


def test_synthetic_cohort_plants_one_group_per_class():
    params = SyntheticCohortParams(n_patients=200)
    cohort = synthetic_cohort(params, rng=3)
    assert cohort.shape == (200, 28, 120)
    groups = [set(g) for g in cohort.planted]
    assert all(len(g) == 4 for g in groups) and len(set.union(*groups)) == 16
    assert max(max(g) for g in groups) < 24  # never a nested pathway
    # the nested pathways are subsets of others, and the filter removes exactly those
    kept = filter_pathways(cohort.membership)
    assert set(range(24, 28)).isdisjoint(kept)
    np.testing.assert_array_equal(np.bincount(cohort.labels), [50, 50, 50, 50])
    pathway = cohort.counts @ cohort.membership.T
    for k, grp in enumerate(cohort.planted):
        mine = pathway[cohort.labels == k][:, list(grp)].mean()
        other = pathway[cohort.labels != k][:, list(grp)].mean()
        # 3 hit genes x 1.5 variants = 4.5 more in the class, less what other classes'
        # groups add through shared genes
        assert mine - other > 2.0
    again = synthetic_cohort(params, rng=3)
    np.testing.assert_array_equal(again.counts, cohort.counts)


def test_stratified_split_fractions_per_class():
    labels = np.repeat(np.arange(3), [50, 20, 7])
    split = stratified_split(labels, (0.6, 0.2, 0.2), rng=0)
    for k, n in enumerate([50, 20, 7]):
        counts = np.bincount(split[labels == k], minlength=3)
        assert counts.sum() == n
        assert abs(counts[0] - 0.6 * n) <= 1 and abs(counts[1] - 0.2 * n) <= 1
    np.testing.assert_array_equal(split, stratified_split(labels, rng=0))


def test_files_round_trip(tmp_path):
    cohort = synthetic_cohort(SyntheticCohortParams(n_patients=30, n_genes=40), rng=1)
    paths = write_cohort(cohort, tmp_path)
    back = read_cohort(*paths)
    genes = np.flatnonzero(cohort.counts.sum(axis=0) > 0)  # genes without counts vanish
    order = np.argsort([cohort.gene_names[k] for k in genes])
    assert back.patient_ids == cohort.patient_ids
    assert back.gene_names == tuple(cohort.gene_names[k] for k in genes[order])
    np.testing.assert_array_equal(back.counts, cohort.counts[:, genes[order]])
    np.testing.assert_array_equal(back.labels, cohort.labels)
    np.testing.assert_array_equal(back.confounders, cohort.confounders)
    assert back.confounder_names == ("age", "sex")
    pw = {cohort.pathway_names[i]: i for i in range(cohort.shape[1])}
    for j, name in enumerate(back.pathway_names):
        np.testing.assert_array_equal(
            back.membership[j], cohort.membership[pw[name]][genes[order]]
        )


def _write(path, text):
    path.write_text(text)
    return path


def test_bad_files_give_clear_errors(tmp_path):
    samples = _write(tmp_path / "samples.csv", "patient,label,age\np1,A,1.0\np2,B,2\n")
    member = _write(tmp_path / "m.csv", "pathway,gene\nW1,G1\nW1,G2\nW2,G3\n")
    counts = _write(tmp_path / "c.csv", "patient,gene,count\np1,G1,2\np2,G2,1\n")
    with pytest.raises(ValueError, match=r"m\.csv: 1 membership rows name 1 genes .*'G3'"):
        read_cohort(counts, member, samples)
    cohort = read_cohort(counts, member, samples, unknown_genes="drop")
    assert cohort.pathway_names == ("W1",) and cohort.gene_names == ("G1", "G2")
    bad = _write(tmp_path / "neg.csv", "patient,gene,count\np1,G1,-2\n")
    with pytest.raises(ValueError, match=r"neg\.csv:2: count must be a nonnegative integer"):
        read_cohort(bad, member, samples, unknown_genes="drop")
    bad = _write(tmp_path / "frac.csv", "patient,gene,count\np1,G1,1.5\n")
    with pytest.raises(ValueError, match="nonnegative integer, got '1.5'"):
        read_cohort(bad, member, samples, unknown_genes="drop")
    bad = _write(tmp_path / "who.csv", "patient,gene,count\np9,G1,1\n")
    with pytest.raises(ValueError, match="patient 'p9' is not in the samples table"):
        read_cohort(bad, member, samples, unknown_genes="drop")
    bad = _write(tmp_path / "hdr.csv", "id,gene,count\np1,G1,1\n")
    with pytest.raises(ValueError, match="expected the header patient,gene,count"):
        read_cohort(bad, member, samples)
    dup = _write(tmp_path / "dup.csv", "patient,label\np1,A\np1,B\n")
    with pytest.raises(ValueError, match="patient 'p1' appears twice"):
        read_cohort(counts, member, dup)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_cohort(tmp_path / "nope.csv", member, samples)
    with pytest.raises(ValueError, match="unknown_genes"):
        read_cohort(counts, member, samples, unknown_genes="ignore")


def test_bad_arrays_give_clear_errors(rng):
    counts, member = _small(rng)
    neg = counts.copy()
    neg[2, 3] = -1
    with pytest.raises(ValueError, match=r"counts: variant counts must be >= 0, .*\(2, 3\)"):
        build_tensor(neg, member)
    with pytest.raises(ValueError, match=r"counts: variant counts must be >= 0"):
        _cohort(neg, member)
    nan = counts.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN/Inf"):
        build_tensor(nan, member)
    with pytest.raises(TypeError, match="membership: expected a boolean array"):
        build_tensor(counts, member.astype(int))
    with pytest.raises(ValueError, match=r"membership: expected shape \(pathways, 7\)"):
        build_tensor(counts, member[:, :4])
    with pytest.raises(ValueError, match="fill: expected one of"):
        build_tensor(counts, member, fill="co3")
    with pytest.raises(ValueError, match="max_cells"):
        build_tensor(counts, member, max_cells=10)
    with pytest.raises(ValueError, match=r"labels: expected values in \[0, 2\)"):
        _cohort(counts, member, labels=np.arange(6))
    with pytest.raises(ValueError, match="planted: pathway indices out of range"):
        _cohort(counts, member, planted=((0,), (9,)))
    with pytest.raises(ValueError, match="min_gene_fraction"):
        filter_cohort(_cohort(counts, member), min_gene_fraction=1.5)
    with pytest.raises(ValueError, match="no genes left"):
        filter_cohort(_cohort(counts, member), min_gene_fraction=1.0, min_patient_genes=0)
    with pytest.raises(ValueError, match="fractions"):
        stratified_split(np.zeros(5, dtype=int), (0.5, 0.5, 0.5))
    with pytest.raises(ConfigError, match="group_size"):
        SyntheticCohortParams(n_pathways=10, group_size=3)
    with pytest.raises(TypeError, match="cohort: expected a Cohort"):
        cohort_tensor(counts)


def test_serology_tensor_is_nonnegative_with_its_classes():
    data = serology_data()  # data/serology.npz: no tensorly needed
    assert data.tensor.shape == (438, 6, 11)
    assert data.tensor.min() == 0.0 and np.isfinite(data.tensor).all()
    sizes = dict(zip(data.class_names, np.bincount(data.labels), strict=True))
    assert sizes == {"Negative": 39, "Mild": 7, "Moderate": 122, "Severe": 196, "Deceased": 74}
    assert data.ticks[0][:2] == ("S", "RBD") and len(data.ticks[1]) == 11
    np.testing.assert_allclose(
        np.log(serology_data(transform="exp").tensor).min(), -4.4947, atol=1e-4
    )


def test_patient_data_is_the_filtered_tensor_of_each_source(tmp_path):
    params = SyntheticCohortParams(n_patients=40)
    filters = FilterParams(min_gene_fraction=0.1, min_patient_genes=5)
    data, raw, full = patient_data(
        "synthetic", fill="knowledge", cohort=params, filters=filters, rng=[0, 2]
    )
    cohort = synthetic_cohort(params, rng=[0, 2])
    kept = filter_cohort(cohort, min_gene_fraction=0.1, min_patient_genes=5)
    np.testing.assert_array_equal(data.tensor, cohort_tensor(kept, fill="knowledge").tensor)
    np.testing.assert_array_equal(raw, kept.counts)
    assert full == (cohort.pathway_names, cohort.gene_names) and data.planted == kept.planted
    assert len(full[0]) == 28 and len(data.ticks[0]) == 24  # the 4 nested pathways go
    # the tables of the same cohort give the same tensor (default filters); a gene without
    # counts is in the membership table, so unknown_genes="drop" must reach read_cohort
    counts, member, samples = write_cohort(cohort, tmp_path)
    files = FilesParams(str(counts), str(member), str(samples), unknown_genes="drop")
    back, raw_back, _ = patient_data("files", fill="co2", files=files)
    cohort_back = read_cohort(counts, member, samples, unknown_genes="drop")
    ref = cohort_tensor(filter_cohort(cohort_back), fill="co2")
    with pytest.raises(ValueError, match="pass unknown_genes='drop'"):
        patient_data("files", files=FilesParams(str(counts), str(member), str(samples)))
    np.testing.assert_array_equal(back.tensor, ref.tensor)
    assert raw_back.shape == back.tensor.shape[::2]
    with pytest.raises(ValueError, match="files: source='files' needs"):
        patient_data("files")
    with pytest.raises(ValueError, match="source: expected 'synthetic', 'serology' or 'files'"):
        patient_data("csv")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_gene_fraction"):
        FilterParams(min_gene_fraction=1.5)
    with pytest.raises(ConfigError, match="unknown_genes"):
        FilesParams(unknown_genes="keep")  # type: ignore[arg-type]


def test_patient_data_serology_is_the_tensor_as_it_is():
    data, raw, full = patient_data("serology", fill="knowledge", rng=5)
    np.testing.assert_array_equal(data.tensor, serology_data().tensor)
    assert raw is None and full == data.ticks


def test_serology_is_tensorlys_data_bit_for_bit():
    pytest.importorskip("tensorly")
    from tensorly.datasets import load_covid19_serology

    from problems.shipped_data import load_arrays

    bunch = load_covid19_serology()
    raw = np.asarray(bunch.tensor)
    keys = ["tensor", "dims", "ticks_samples", "ticks_antigens", "ticks_receptors"]
    shipped = load_arrays("serology.npz", keys)
    assert shipped["tensor"].dtype == raw.dtype == np.float64
    np.testing.assert_array_equal(shipped["tensor"].view(np.uint64), raw.view(np.uint64))
    assert shipped["dims"].tolist() == list(bunch.dims)
    for key, ticks in zip(keys[2:], bunch.ticks, strict=True):
        assert shipped[key].tolist() == [str(t) for t in ticks]
    # the loader's transforms of the shipped tensor are those of TensorLy's, bit for bit
    np.testing.assert_array_equal(serology_data().tensor, raw - raw.min())
    np.testing.assert_array_equal(serology_data(transform="exp").tensor, np.exp(raw))
    data = serology_data()
    order = ["Negative", "Mild", "Moderate", "Severe", "Deceased"]
    assert [data.class_names[k] for k in data.labels] == [str(v) for v in bunch.ticks[0]]
    assert data.class_names == tuple(order)
    assert data.ticks == (tuple(bunch.ticks[1]), tuple(bunch.ticks[2]))
