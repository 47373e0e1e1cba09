"""Peer for bench/eval.ts: exact cosine top-k with numpy (BLAS sgemm, multithreaded) on the same .npy files.

usage: /usr/bin/python3 numpy_dense_topk.py QUERIES.npy DOCS.npy K REPS
Prints the best wall time in ms of: normalise, one float32 matmul, argpartition + sort of the top K per query.
Metrics are not included (numpy has no trec_eval); our figure includes them.
"""
import sys
import time

import numpy as np

q = np.load(sys.argv[1])
d = np.load(sys.argv[2])
k = int(sys.argv[3])
reps = int(sys.argv[4])


def search():
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    dn = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-30)
    s = qn @ dn.T
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    rows = np.arange(s.shape[0])[:, None]
    order = np.argsort(-s[rows, top], axis=1, kind="stable")
    return top[rows, order]


search()
best = float("inf")
for _ in range(reps):
    t = time.perf_counter()
    search()
    best = min(best, time.perf_counter() - t)
print(f"{best * 1000:.1f}")
