"""Causal attention forward and backward of every layer of one training step alone, in PyTorch
(scaled_dot_product_attention), timed per step: the peer of Collie's StepAttentionBench, for
tools/interleave_bench.py. Usage: torch_step_attention.py [steps] [B H T D layers] (default: 110m, 4 x 256)."""
import json, sys, time, statistics, torch, torch.nn.functional as F
torch.set_num_threads(2)
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
B, H, T, D, L = map(int, sys.argv[2:7]) if len(sys.argv) > 6 else (4, 12, 256, 64, 12)
g = torch.Generator().manual_seed(0)
q, k, v = [torch.randn(B, H, T, D, generator=g).requires_grad_() for _ in range(3)]
dO = torch.randn(B, H, T, D, generator=g)
def step():
    for _ in range(L):
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o.backward(dO)
        q.grad = k.grad = v.grad = None
step(); times = []
for _ in range(steps):
    t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
print(json.dumps(dict(impl="torch-sdpa", tokens_per_step=B * T, step_s_median=statistics.median(times), steps=[round(t, 4) for t in times])))
