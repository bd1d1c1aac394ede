#!/usr/bin/env python3
"""Golden-value generator for dev.collie.runtime.optim.OptimizerKernels.

Re-implements, in float32 on the CPU, the per-parameter body of the backward
hooks of CoLLiE's optimizers (collie/optim/adalomo.py ``AdaLomo.fuse_update``
and, for weight decay, OpenLMLab/LOMO lomo_optim/lomo.py ``Lomo.fuse_update``),
with the same torch operations in the same order, minus the hook plumbing and
the distributed/ZeRO-3 paths.  It runs three steps over a few parameters with
random gradients from a fixed seed and writes every input and every expected
parameter/state into a text file that the Java tests read; the tests never need
Python.

Usage (PyTorch is not on PyPI here; a CPU wheel is installed into a venv):
    python3 -m venv --system-site-packages /tmp/torch-venv
    /tmp/torch-venv/bin/pip install --no-deps /opt/wheels/torch-2.13.0+cpu-*.whl
    /tmp/torch-venv/bin/python src/test/python/adalomo_ref.py \
        src/test/resources/dev/collie/runtime/optim/optim_golden.txt

File format, one record per line (``#`` starts a comment):
    <key> f <count> <float32 bit patterns as 8 hex digits>...
    <key> i <count> <decimal integers>...
Bit patterns keep every float exact across the language boundary.
"""

import math
import sys

import numpy as np
import torch

SEED = 20240611
STEPS = 3

# (name, shape, init std). The 13-vector starts tiny so that RMS(p) < eps2 and
# the eps2 floor of the relative step size is exercised; 1x9 is a 2-D tensor,
# so CoLLiE factors it (row state of length 1).
PARAMS = [
    ("w5x7", (5, 7), 0.5),
    ("b13", (13,), 1e-4),
    ("w1x9", (1, 9), 1.0),
    ("w64x48", (64, 48), 0.02),
]


def f32(x):
    """Rounds a Python float to the nearest float32 so both sides see one value."""
    return float(np.float32(x))


# Learning rates are large on purpose: the update must move the parameters by
# far more than the tests' 1e-5 tolerance, or a wrong update could pass.
LRS = [f32(0.1), f32(0.05), f32(0.2)]

SCENARIOS = {
    # CoLLiE's defaults (collie/optim/adalomo.py __init__), no clipping, no decay.
    "adalomo_default": dict(
        eps=(1e-30, 1e-3), clip_threshold=1.0, decay_rate=-0.8,
        clip_grad_norm=None, clip_grad_value=None, weight_decay=0.0,
        loss_scale=2 ** 14),
    # Everything switched on: grad-norm clipping (coefficient from a separate
    # norm pass, as AdaLomo.grad_norm), value clipping, decay, tighter RMS clip,
    # the LOMO package's smaller loss scale, a different decay exponent.
    "adalomo_clip_wd": dict(
        eps=(1e-30, 1e-3), clip_threshold=0.5, decay_rate=-0.6,
        clip_grad_norm=1.0, clip_grad_value=2.0, weight_decay=0.1,
        loss_scale=2 ** 10),
}


class AdaLomoRef:
    """State and per-parameter update of CoLLiE's AdaLomo (non-ZeRO path)."""

    def __init__(self, shapes, eps, clip_threshold, decay_rate, clip_grad_norm,
                 clip_grad_value, weight_decay, loss_scale):
        self.eps = eps
        self.clip_threshold = clip_threshold
        self.decay_rate = decay_rate
        self.clip_grad_norm = clip_grad_norm
        self.clip_grad_value = clip_grad_value
        self.weight_decay = weight_decay
        self.do_weight_decay = weight_decay > 0.0
        self.loss_scale = loss_scale
        self.clip_coef = None
        self.exp_avg_sq, self.exp_avg_sq_row, self.exp_avg_sq_col = {}, {}, {}
        for n, shape in shapes.items():
            if len(shape) == 1:
                self.exp_avg_sq[n] = torch.zeros(shape[0], dtype=torch.float32)
            else:
                self.exp_avg_sq_row[n] = torch.zeros(shape[0], dtype=torch.float32)
                self.exp_avg_sq_col[n] = torch.zeros(shape[1], dtype=torch.float32)

    def grad_norm(self, grads):
        """AdaLomo.grad_norm: global L2 norm of the unscaled gradients."""
        norms = []
        for g in grads.values():
            # copy=True: in CoLLiE p.grad is dropped after the hook, so the in-place ops below
            # never reach the next pass; here the same tensor feeds the update pass.
            g32 = g.to(torch.float32, copy=True)
            if self.loss_scale:
                g32.div_(self.loss_scale)
            norms.append(torch.norm(g32, 2.0))
        total_norm = torch.norm(torch.stack(norms), 2.0)
        self.clip_coef = float(self.clip_grad_norm) / (total_norm + 1e-6)
        self.clip_coef = torch.clamp(self.clip_coef, max=1.0)

    @staticmethod
    def _approx_sq_grad(row, col):
        r_factor = (row / row.mean(dim=-1, keepdim=True)).rsqrt_().unsqueeze(-1)
        c_factor = col.unsqueeze(-2).rsqrt()
        return torch.mul(r_factor, c_factor)

    @staticmethod
    def _rms(t):
        return t.norm(2) / (t.numel() ** 0.5)

    def update(self, n, p, grad, step_num, lr):
        grad_fp32 = grad.to(torch.float32, copy=True)  # see grad_norm
        if self.loss_scale:
            grad_fp32.div_(self.loss_scale)
        if self.clip_grad_value is not None and self.clip_grad_value > 0:
            grad_fp32.clamp_(min=-self.clip_grad_value, max=self.clip_grad_value)
        if (self.clip_grad_norm is not None and self.clip_grad_norm > 0
                and self.clip_coef is not None):
            grad_fp32.mul_(self.clip_coef)

        beta2t = 1.0 - math.pow(step_num, self.decay_rate)
        update = (grad_fp32 ** 2) + self.eps[0]
        if len(p.shape) > 1:
            self.exp_avg_sq_row[n].mul_(beta2t).add_(update.mean(dim=-1), alpha=1.0 - beta2t)
            self.exp_avg_sq_col[n].mul_(beta2t).add_(update.mean(dim=-2), alpha=1.0 - beta2t)
            update = self._approx_sq_grad(self.exp_avg_sq_row[n], self.exp_avg_sq_col[n])
            update.mul_(grad_fp32)
        else:
            self.exp_avg_sq[n].mul_(beta2t).add_(update, alpha=1.0 - beta2t)
            update = self.exp_avg_sq[n].rsqrt().mul_(grad_fp32)

        update.div_((self._rms(update) / self.clip_threshold).clamp_(min=1.0))

        p_fp32 = p.to(torch.float32)
        p_rms = torch.norm(p_fp32, 2.0) / math.sqrt(p.numel())
        lr = lr * max(self.eps[1], p_rms)
        if self.do_weight_decay:
            p_fp32.mul_(1.0 - lr * self.weight_decay)
        p_fp32.add_(update, alpha=-lr)
        p.copy_(p_fp32)


def lomo_grad_norm_coef(grads, clip_grad_norm):
    """Lomo.grad_norm for float32 models (no loss scaler)."""
    norms = [torch.norm(g.to(torch.float32), 2.0) for g in grads.values()]
    total_norm = torch.norm(torch.stack(norms), 2.0)
    return torch.clamp(float(clip_grad_norm) / (total_norm + 1e-6), max=1.0)


def lomo_update(p, grad, lr, clip_coef, weight_decay):
    """Lomo.fuse_update body (OpenLMLab/LOMO lomo_optim/lomo.py), fp32, no loss scaler."""
    grad_fp32 = grad.to(torch.float32, copy=True)  # see AdaLomoRef.grad_norm
    if clip_coef is not None:
        grad_fp32.mul_(clip_coef)
    p_fp32 = p.to(torch.float32)
    if weight_decay > 0.0:
        p_fp32.mul_(1.0 - lr * weight_decay)
    p_fp32.add_(grad_fp32, alpha=-lr)
    p.copy_(p_fp32)


class Writer:
    def __init__(self):
        self.lines = []

    def floats(self, key, t):
        a = np.ascontiguousarray(np.asarray(t, dtype=np.float32).reshape(-1))
        bits = a.view(np.uint32)
        self.lines.append(f"{key} f {a.size} " + " ".join(f"{b:08x}" for b in bits))

    def ints(self, key, values):
        self.lines.append(f"{key} i {len(values)} " + " ".join(str(int(v)) for v in values))


def make_inputs(gen, grad_mul):
    params = {n: torch.randn(shape, generator=gen, dtype=torch.float32) * f32(std)
              for n, shape, std in PARAMS}
    grads = [{n: torch.randn(shape, generator=gen, dtype=torch.float32) * f32(grad_mul)
              for n, shape, _ in PARAMS} for _ in range(STEPS)]
    return params, grads


def main(out_path):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    w = Writer()
    w.ints("params/count", [len(PARAMS)])
    for i, (n, shape, _) in enumerate(PARAMS):
        w.ints(f"params/{i}/shape", list(shape) if len(shape) == 2 else [shape[0], 0])
        w.lines.append(f"# params/{i} = {n}")

    for scn, cfg in SCENARIOS.items():
        # Raw gradients are what the hook sees: gradients of loss * loss_scale.
        params, grads = make_inputs(gen, grad_mul=3.0 * cfg["loss_scale"])
        opt = AdaLomoRef({n: s for n, s, _ in PARAMS}, **cfg)
        w.floats(f"{scn}/eps1", [cfg["eps"][0]])
        w.floats(f"{scn}/eps2", [cfg["eps"][1]])
        w.floats(f"{scn}/clipThreshold", [cfg["clip_threshold"]])
        w.floats(f"{scn}/decayRate", [cfg["decay_rate"]])
        w.floats(f"{scn}/lossScale", [cfg["loss_scale"]])
        w.floats(f"{scn}/clipGradValue", [cfg["clip_grad_value"] or 0.0])
        w.floats(f"{scn}/weightDecay", [cfg["weight_decay"]])
        for i, (n, _, _) in enumerate(PARAMS):
            w.floats(f"{scn}/{i}/p0", params[n])
        for t in range(1, STEPS + 1):
            g = grads[t - 1]
            if cfg["clip_grad_norm"] is not None:
                opt.grad_norm(g)
                scale = float(opt.clip_coef)
            else:
                scale = 1.0
            w.floats(f"{scn}/step{t}/lr", [LRS[t - 1]])
            w.floats(f"{scn}/step{t}/scale", [scale])
            for i, (n, shape, _) in enumerate(PARAMS):
                w.floats(f"{scn}/{i}/g{t}", g[n])
                opt.update(n, params[n], g[n], t, LRS[t - 1])
                w.floats(f"{scn}/{i}/p{t}", params[n])
                if len(shape) == 1:
                    w.floats(f"{scn}/{i}/v{t}", opt.exp_avg_sq[n])
                else:
                    w.floats(f"{scn}/{i}/row{t}", opt.exp_avg_sq_row[n])
                    w.floats(f"{scn}/{i}/col{t}", opt.exp_avg_sq_col[n])

    # LOMO with weight decay (p *= 1 - lr*wd, which for SGD equals L2 decay) and
    # grad-norm clipping.
    scn = "lomo_wd"
    weight_decay, clip_grad_norm = f32(0.1), 1.0
    params, grads = make_inputs(gen, grad_mul=1.0)
    w.floats(f"{scn}/weightDecay", [weight_decay])
    for i, (n, _, _) in enumerate(PARAMS):
        w.floats(f"{scn}/{i}/p0", params[n])
    for t in range(1, STEPS + 1):
        g = grads[t - 1]
        coef = lomo_grad_norm_coef(g, clip_grad_norm)
        w.floats(f"{scn}/step{t}/lr", [LRS[t - 1]])
        w.floats(f"{scn}/step{t}/scale", [float(coef)])
        for i, (n, _, _) in enumerate(PARAMS):
            w.floats(f"{scn}/{i}/g{t}", g[n])
            lomo_update(params[n], g[n], LRS[t - 1], coef, weight_decay)
            w.floats(f"{scn}/{i}/p{t}", params[n])

    header = [
        "# Golden values for OptimizerKernels; generated by src/test/python/adalomo_ref.py",
        f"# torch {torch.__version__}, seed {SEED}, {STEPS} steps. Do not edit by hand.",
    ]
    with open(out_path, "w") as fh:
        fh.write("\n".join(header + w.lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "optim_golden.txt")
