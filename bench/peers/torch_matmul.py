"""Speed peer for bench/matmul.ts: PyTorch fp32 matmul n×n×n GFLOP/s (best of reps after warm-up).
Reads {n, reps} on stdin; the thread count comes from the environment the bench sets
(torch.set_num_threads alone does not reach the OpenBLAS pool torch's matmul runs on)."""
import json, os, sys, time
import torch

req = json.load(sys.stdin)
n, reps = req['n'], req['reps']
threads = int(os.environ.get('OMP_NUM_THREADS', '1'))
torch.set_num_threads(threads)
torch.manual_seed(0)
a, b = torch.randn(n, n), torch.randn(n, n)
c = torch.empty(n, n)
for _ in range(3):
    torch.matmul(a, b, out=c)
best = float('inf')
for _ in range(reps):
    t0 = time.perf_counter()
    torch.matmul(a, b, out=c)
    best = min(best, time.perf_counter() - t0)
print(json.dumps({'gflops': 2 * n ** 3 / best / 1e9, 'torch': torch.__version__}))
