"""The matrix products of one training step alone, in PyTorch (its CPU GEMM: MKL/oneDNN), timed per step.

The same product list as Collie's StepGemmBench (runtime/src/test/.../kernels/StepGemmBench.java): for
every layer the forward x.W^T, backward dY.W and weight gradient dY^T.X of the q, k, v, o, gate, up and
down projections, then the head's three. Prints one JSON line that tools/interleave_bench.py reads, so
the two GEMMs can be compared time-sliced on the same machine:

  tools/interleave_bench.py -- /tmp/torch-venv/bin/python tools/torch_step_gemm.py 4 -- \
      java --add-modules jdk.incubator.vector -cp runtime/target/classes:runtime/target/test-classes \
      dev.collie.runtime.kernels.StepGemmBench 4

Usage: torch_step_gemm.py [steps] [tokens dim hidden vocab layers]   (default: 110m, 1024 tokens)
"""
import json, sys, time, statistics, torch
torch.set_num_threads(2)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 4
T, d, h, V, L = map(int, sys.argv[2:7]) if len(sys.argv) > 6 else (1024, 768, 2048, 32000, 12)
g = torch.Generator().manual_seed(0)
r = lambda *s: torch.randn(*s, generator=g)
x_d, x_h, dy_d, dy_h = r(T, d), r(T, h), r(T, d), r(T, h)
W_dd, W_hd, W_dh, W_vd = r(d, d), r(h, d), r(d, h), r(V, d)
dy_v = r(T, V)
def step():
    for _ in range(L):
        for _ in range(4): x_d @ W_dd.t(); dy_d @ W_dd; dy_d.t() @ x_d
        for _ in range(2): x_d @ W_hd.t(); dy_h @ W_hd; dy_h.t() @ x_d
        x_h @ W_dh.t(); dy_d @ W_dh; dy_d.t() @ x_h
    x_d @ W_vd.t(); dy_v @ W_vd; dy_v.t() @ x_d
times = []
step()
for _ in range(steps):
    t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
m = statistics.median(times)
flop = 6.0 * T * (L * (4 * d * d + 3 * d * h) + V * d)
print(json.dumps(dict(impl="torch", tokens_per_step=T, step_s_median=m, gflops=flop / m / 1e9, steps=[round(t, 3) for t in times])))
