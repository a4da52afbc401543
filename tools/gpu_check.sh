#!/usr/bin/env bash
# GPU checks for a lent device machine (see docs/architecture.md, "Tests"): the CuPy and
# torch-CUDA tests plus one timing table of kernels on numpy vs cupy vs torch-cuda.
# Usage (repo root, wheels of the pure-Python dependencies in .whl/):  bash tools/gpu_check.sh
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD OMP_NUM_THREADS=4 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, cupy, numpy; print('torch', torch.__version__, 'cupy', cupy.__version__, 'numpy', numpy.__version__)"
python3 -m pytest -q -m gpu -p no:cacheprovider -o addopts="" tests/test_gpu.py tests/test_linalg.py tests/decomp tests/test_tubal.py tests/test_kron.py tests/problems/test_tubal_sensing.py tests/solvers/test_tubal_gd.py 2>&1 | tee "${OUT:-/tmp}/gpu_tests.log" | tail -25
python3 - <<'PY' 2>&1 | tee "${OUT:-/tmp}/gpu_timings.md"
import time, numpy as np, cupy as cp, torch
import tensorsim as ts
rng = np.random.default_rng(0)
def best(fn, sync, n=5):
    fn(); sync()
    ts_ = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); sync(); ts_.append(time.perf_counter() - t0)
    return min(ts_) * 1e3
x = rng.standard_normal((200, 200, 200)); a = rng.standard_normal((256, 256, 64)); b = rng.standard_normal((256, 256, 64))
backends = {"numpy": (lambda v: v, lambda: None),
            "cupy": (cp.asarray, cp.cuda.Device().synchronize),
            "torch-cuda": (lambda v: torch.as_tensor(v, device="cuda"), torch.cuda.synchronize)}
cases = {"sthosvd 200^3 rank 20": lambda put: (lambda xx=put(x): ts.sthosvd(xx, ts.Truncation(max_rank=20))),
         "cp_als 200^3 rank 10, 20 sweeps": lambda put: (lambda xx=put(x): ts.cp_als(xx, 10, tol=0.0, max_iter=20)),
         "t_product 256x256x64": lambda put: (lambda aa=put(a), bb=put(b): ts.t_product(aa, bb))}
print("| case | " + " | ".join(backends) + " (ms, best of 5) |")
print("|---|" + "---|" * len(backends))
for name, make in cases.items():
    row = [f"{best(make(put), sync):.1f}" for put, sync in backends.values()]
    print(f"| {name} | " + " | ".join(row) + " |")
PY
