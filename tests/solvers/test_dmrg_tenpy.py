"""Two-site DMRG on the caterpillar tree against TeNPy's two-site DMRG on an MPS.

The acceptance check of the DMRG benchmark (``benchmarks/dmrg.py``, case ``check-32``):
the open Heisenberg chain of 32 sites in the Pauli convention, ``H = sum (XX + YY + ZZ)``,
which TeNPy writes with spin operators ``S = sigma / 2`` as ``4 sum S.S``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from problems.spin_chain import PAULI_Z, SpinChainParams, build_tree, hamiltonian
from solvers.bug import dmrg
from tensorsim import Truncation
from tensorsim.ttn import correlation_matrix, random_ttn
from tensorsim.ttn.operator import to_ttno

pytest.importorskip("tenpy")

#: The ground-state energy of the open 32-site chain, Pauli convention (-13.9973156182 S.S).
KNOWN_32 = -55.989262472897


def _tenpy_ground_state(sites: int, chi: int) -> tuple[float, np.ndarray]:
    """TeNPy: energy and ``<Z_0 Z_j>`` of the chain (``Sz`` conserved, from the Neel state)."""
    from tenpy.algorithms.dmrg import TwoSiteDMRGEngine
    from tenpy.models.spins import SpinChain
    from tenpy.networks.mps import MPS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SpinChain(
            {"L": sites, "S": 0.5, "Jx": 4.0, "Jy": 4.0, "Jz": 4.0, "bc_MPS": "finite"}
        )
        neel = ["up", "down"] * (sites // 2)
        psi = MPS.from_product_state(model.lat.mps_sites(), neel, bc="finite")
        options = {
            "trunc_params": {"chi_max": chi, "trunc_cut": 1e-10},
            "max_E_err": 1e-10 * abs(KNOWN_32),
            "max_S_err": np.inf,
            "max_sweeps": 20,
        }
        TwoSiteDMRGEngine(psi, model, options).run()
        energy = float(np.real(model.H_MPO.expectation_value(psi)))
        zz = 4.0 * np.real(psi.correlation_function("Sz", "Sz", sites1=[0]))[0]
    return energy, zz


@pytest.mark.slow
def test_heisenberg_32_sites_against_tenpy():
    """Energy within 1e-8 relative of TeNPy's and of the known value, every ``<Z_0 Z_j>``
    within 1e-6 of TeNPy's."""
    params = SpinChainParams(model="xxz", sites=32, tree="caterpillar", j=1.0, jz=1.0, hz=0.0)
    tree = build_tree(params)
    op = to_ttno(hamiltonian(params), tree)
    result = dmrg(
        op, random_ttn(tree, 8, rng=1), Truncation(atol=1e-10, max_rank=64), energy_tol=1e-10
    )
    energy = result.energies[-1]
    zz = np.asarray(correlation_matrix(result.state, PAULI_Z))[0]
    energy_tenpy, zz_tenpy = _tenpy_ground_state(32, 64)
    assert result.converged
    assert abs(energy - energy_tenpy) <= 1e-8 * abs(energy_tenpy)
    assert abs(energy - KNOWN_32) <= 1e-8 * abs(KNOWN_32)
    assert abs(energy_tenpy - KNOWN_32) <= 1e-8 * abs(KNOWN_32)
    np.testing.assert_allclose(zz, zz_tenpy, atol=1e-6)
    assert zz[1] < -0.5 and abs(zz[-1]) > 1e-2  # antiferromagnetic, end to end: not trivial
