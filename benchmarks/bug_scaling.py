"""Strong scaling of one BUG step over MPI ranks (long-range Ising chain on a binary tree).

Run under MPI with the same arguments for every rank count, e.g.::

    for n in 1 2 4; do mpiexec -n $n python -m benchmarks.bug_scaling --sites 64; done

Rank 0 prints one line: integrator, ranks, mean and best step time (after warm-up steps from
the zero-padded product state), largest edge rank, and the CPU time each rank spent.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from problems.spin_chain import SpinChainParams, build_tree, hamiltonian, initial_vectors
from solvers.bug import INTEGRATORS, LinearTreeRHS
from tensorsim import Truncation
from tensorsim.parallel import Executor, get_comm
from tensorsim.ttn import product_state
from tensorsim.ttn.operator import to_ttno


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=64)
    parser.add_argument("--max-rank", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--integrators", nargs="+", default=["parallel_bug", "augmented_bug"])
    args = parser.parse_args()
    comm = get_comm()
    executor = Executor(comm)
    params = SpinChainParams(sites=args.sites)
    tree = build_tree(params)
    rhs = LinearTreeRHS(to_ttno(hamiltonian(params), tree))
    trunc = Truncation(atol=1e-8, max_rank=args.max_rank, min_rank=2)
    start = product_state(tree, initial_vectors(params), rank=2, dtype=np.complex128)
    for _ in range(args.warmup):  # the same warm state on every rank (deterministic)
        start, _ = INTEGRATORS["parallel_bug"](
            start, 0.0, 0.01, rhs=rhs, trunc=trunc, rejection="none"
        )
    for name in args.integrators:
        options = {"rejection": "none"} if name == "parallel_bug" else {}
        y, walls = start, []
        cpu0 = time.process_time()
        for k in range(args.steps):
            comm.barrier()
            t0 = time.perf_counter()
            y, _ = INTEGRATORS[name](
                y, k * 0.01, 0.01, rhs=rhs, trunc=trunc, executor=executor, **options
            )
            comm.barrier()
            walls.append(time.perf_counter() - t0)
        cpu = comm.allgather(time.process_time() - cpu0)
        if comm.rank == 0:
            print(
                f"{name:14s} ranks {comm.size}  mean step {np.mean(walls):.3f} s  best "
                f"{min(walls):.3f} s  max rank {max(y.ranks().values())}  cpu per rank "
                + " ".join(f"{c:.2f}" for c in cpu),
                flush=True,
            )


if __name__ == "__main__":
    main()
