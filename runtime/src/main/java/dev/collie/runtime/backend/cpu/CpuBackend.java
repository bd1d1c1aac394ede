package dev.collie.runtime.backend.cpu;

import dev.collie.compiler.ir.DType;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ops.OpRules;
import dev.collie.runtime.exec.Backend;
import dev.collie.runtime.exec.GradientBlocks;
import dev.collie.runtime.kernels.CpuKernels;
import dev.collie.runtime.kernels.FlashAttention;
import dev.collie.runtime.kernels.FusedNorms;
import dev.collie.runtime.kernels.FusedRope;
import dev.collie.runtime.kernels.SimdGemm;
import dev.collie.runtime.kernels.VectorOps;
import dev.collie.runtime.kernels.FusedKernels;
import dev.collie.runtime.tensor.Tensor;
import java.lang.foreign.MemorySegment;

/**
 * The CPU backend: each IR op mapped to a Java kernel. Matrix products, attention, rotary
 * embeddings and the fused head use the Vector API kernels (SimdGemm, FlashAttention, FusedRope,
 * FusedKernels), each tested against its scalar reference in {@link CpuKernels}; layout kernels
 * (head split and merge, slicing, broadcasting) live here.
 */
public final class CpuBackend implements Backend {

    @Override
    public String name() {
        return "cpu";
    }

    /** The weight operand of the matrix products and the embedding table are read in bf16 directly. */
    @Override
    public boolean readsBf16(Node n, int index) {
        return index == 1 && switch (n.op) {
            case "linear", "linear_residual", "linear_bias", "linear_gelu", "matmul", "linear_cross_entropy",
                 "linear_cross_entropy_update", "embedding" -> true;
            default -> false;
        };
    }

    /**
     * The ops with a weight's update fused in: the head (loss and dh out) and a weight's gradient product,
     * each sending W's gradient to {@code gradient} a block of rows at a time.
     */
    @Override
    public void executeUpdating(Node n, Tensor[] in, Tensor[] out, MemorySegment workspace, GradientBlocks gradient) {
        if (n.op.equals("embedding_grad_update")) {
            Tensor table = in[2];
            FusedKernels.embeddingGradientByBlocks(in[0].data, in[1].data, (int) in[0].numel(), (int) table.shape[1],
                    (int) table.shape[0], workspace, gradient::accept);
            return;
        }
        if (n.op.equals("matmul_tn_update")) {
            FusedKernels.weightGradientByBlocks(in[0].data, in[1].data, (int) rows(in[0]), (int) last(in[0]),
                    (int) last(in[1]), workspace, gradient::accept);
            return;
        }
        if (!n.op.equals("linear_cross_entropy_update")) {
            Backend.super.executeUpdating(n, in, out, workspace, gradient);
            return;
        }
        Tensor h = in[0];
        int c = (int) last(h);
        int vocab = (int) in[1].shape[0];
        long rows = rows(h);
        if (workspace == null) {
            // Not planned by the memory planner (a caller without one): scratch of its own.
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
                MemorySegment scratch = arena.allocate(OpRules.headUpdateWorkspaceFloats(rows, vocab, c) * 4, 64);
                executeUpdating(n, in, out, scratch, gradient);
            }
            return;
        }
        double loss = FusedKernels.linearCrossEntropyUpdate(h.data, in[1].data, in[1].dtype == DType.BF16, in[2].data,
                out[1].data, (int) rows, c, vocab, n.longAttr("ignore_index"), workspace,
                (firstRow, tileRows, grad) -> gradient.accept(firstRow, tileRows, 0, c, grad, 0, c));
        out[0].data.set(Tensor.F32, 0, (float) loss);
    }

    @Override
    public void execute(Node n, Tensor[] in, Tensor[] out, MemorySegment workspace) {
        switch (n.op) {
            case "constant" -> out[0].data.set(Tensor.F32, 0, (float) n.doubleAttr("value"));
            case "zeros" -> out[0].data.fill((byte) 0);
            case "embedding" -> {
                Tensor table = in[1];
                if (table.dtype == DType.BF16) {
                    CpuKernels.embeddingForwardBf16(in[0].data, table.data, out[0].data, (int) in[0].numel(),
                            (int) table.shape[1], (int) table.shape[0]);
                } else {
                    CpuKernels.embeddingForward(in[0].data, table.data, out[0].data, (int) in[0].numel(),
                            (int) table.shape[1], (int) table.shape[0]);
                }
            }
            case "embedding_grad" -> {
                out[0].data.fill((byte) 0);
                CpuKernels.embeddingBackward(in[0].data, in[1].data, out[0].data, (int) in[0].numel(),
                        (int) out[0].shape[1]);
            }
            case "linear" -> linear(in[0], in[1], out[0], false);
            case "linear_bias" -> {
                // the bias is the GEMM's starting value: every row of out = b, then out += x w^T
                // (b is float: the executor widens a bf16 bias; only input 1 is read in bf16)
                fillRows(in[2], out[0], rows(in[0]));
                linear(in[0], in[1], out[0], true);
            }
            case "linear_gelu" -> {
                // out[1] = x w^T (+ b) (the pre-activation the backward needs), and GELU of each block of it
                // into out[0] as the GEMM finishes the block, while it is in cache
                if (in.length == 3) {
                    fillRows(in[2], out[1], rows(in[0]));
                }
                Tensor x = in[0];
                Tensor w = in[1];
                int nOut = (int) w.shape[0];
                MemorySegment pre = out[1].data;
                MemorySegment act = out[0].data;
                SimdGemm.matmulNT(x.data, w.data, w.dtype == DType.BF16, pre, rows(x), nOut, (int) last(x),
                        in.length == 3, (row0, rows, col0, cols) -> VectorOps.geluTanhBlock(pre, act, nOut, row0, rows,
                                col0, cols));
            }
            case "linear_residual" -> {
                // the residual is the GEMM's starting value: out = r, then out += x w^T, instead of a
                // product followed by a separate pass adding r
                MemorySegment.copy(in[2].data, 0, out[0].data, 0, out[0].data.byteSize());
                linear(in[0], in[1], out[0], true);
            }
            case "matmul" -> {
                int k = (int) last(in[0]);
                int nOut = (int) in[1].shape[1];
                if (in[1].dtype == DType.BF16) {
                    SimdGemm.matmulNNBf16(in[0].data, in[1].data, out[0].data, rows(in[0]), nOut, k, false);
                } else {
                    SimdGemm.matmulNN(in[0].data, in[1].data, out[0].data, rows(in[0]), nOut, k, false);
                }
            }
            case "matmul_tn" -> SimdGemm.matmulTN(in[0].data, in[1].data, out[0].data, rows(in[0]),
                    (int) last(in[0]), (int) last(in[1]), false);
            case "add", "sub", "mul", "div" -> {
                VectorOps.Op op = VectorOps.Op.valueOf(n.op.toUpperCase());
                long size = out[0].numel();
                if (in[0].numel() == size) {
                    VectorOps.binary(op, in[0].data, in[1].data, out[0].data, size, in[1].numel(), false);
                } else {
                    VectorOps.binary(op, in[1].data, in[0].data, out[0].data, size, in[0].numel(), true);
                }
            }
            case "add_scalar", "mul_scalar", "div_scalar" -> scalarOp(n.op, (float) n.doubleAttr("value"), in[0], out[0]);
            case "reduce_to" -> reduceTo(in[0], out[0]);
            case "rms_norm" -> FusedNorms.rmsNormForward(in[0].data, in[1].data, out[0].data, rows(in[0]),
                    (int) last(in[0]), (float) n.doubleAttr("eps"));
            case "rms_norm_grad" -> FusedNorms.rmsNormBackward(in[0].data, in[1].data, in[2].data, out[0].data,
                    out[1].data, rows(in[0]), (int) last(in[0]), (float) n.doubleAttr("eps"));
            case "layer_norm" -> FusedNorms.layerNormForward(in[0].data, in[1].data, in[2].data, out[0].data,
                    rows(in[0]), (int) last(in[0]), (float) n.doubleAttr("eps"));
            case "layer_norm_grad" -> FusedNorms.layerNormBackward(in[0].data, in[1].data, in[2].data, out[0].data,
                    out[1].data, out[2].data, rows(in[0]), (int) last(in[0]), (float) n.doubleAttr("eps"));
            case "rope" -> {
                long[] s = in[0].shape;
                FusedRope.rope(in[0].data, out[0].data, (int) s[0], (int) s[1], (int) s[2], (int) s[3],
                        n.doubleAttr("theta"), n.boolAttr("inverse"), in.length > 1 ? in[1].data : null);
            }
            case "attention" -> {
                long[] q = in[0].shape;
                FlashAttention.forward(in[0].data, in[1].data, in[2].data, out[0].data, (int) q[0], (int) q[1],
                        (int) in[1].shape[1], (int) q[2], (int) q[3], n.boolAttr("causal"), (float) n.doubleAttr("scale"),
                        in.length > 3 ? in[3].data : null, out[1].data);
            }
            case "cached_attention" -> {
                long[] q = in[0].shape;
                CpuKernels.cachedAttention(in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, in[5].data,
                        out[0].data, (int) q[0], (int) q[1], (int) in[1].shape[1], (int) q[2], (int) in[3].shape[2],
                        (int) q[3], (float) n.doubleAttr("scale"));
            }
            case "attention_grad" -> {
                long[] q = in[0].shape;
                FlashAttention.backward(in[0].data, in[1].data, in[2].data, in[3].data, in[4].data, out[0].data,
                        out[1].data, out[2].data, (int) q[0], (int) q[1], (int) in[1].shape[1], (int) q[2], (int) q[3],
                        n.boolAttr("causal"), (float) n.doubleAttr("scale"), in.length > 6 ? in[6].data : null, in[5].data);
            }
            case "rotary_attention" -> {
                // q [B, T, H*D], k and v [B, T, KV*D] -> out [B, T, H*D], lse [B, H, T]; no head-major copies
                long[] q = in[0].shape;
                int heads = (int) n.longAttr("heads");
                FlashAttention.forwardTokenMajor(in[0].data, in[1].data, in[2].data, out[0].data, (int) q[0], heads,
                        (int) n.longAttr("kv_heads"), (int) q[1], (int) q[2] / heads, n.boolAttr("causal"),
                        (float) n.doubleAttr("scale"), segments(n, in, 3), out[1].data, rotary(n, in, 3));
            }
            case "rotary_attention_grad" -> {
                // (q, k, v, out, dout, lse[, positions][, segments]) -> dq, dk, dv, token-major
                long[] q = in[0].shape;
                int heads = (int) n.longAttr("heads");
                FlashAttention.backwardTokenMajor(in[0].data, in[1].data, in[2].data, in[3].data, in[4].data,
                        out[0].data, out[1].data, out[2].data, (int) q[0], heads, (int) n.longAttr("kv_heads"),
                        (int) q[1], (int) q[2] / heads, n.boolAttr("causal"), (float) n.doubleAttr("scale"),
                        segments(n, in, 6), in[5].data, rotary(n, in, 6));
            }
            case "split_heads_rope" -> {
                // [B, T, H*D] -> [B, H, T, D], rotated
                long[] o = out[0].shape;
                FusedRope.rope(in[0].data, true, out[0].data, false, (int) o[0], (int) o[1], (int) o[2], (int) o[3],
                        n.doubleAttr("theta"), n.boolAttr("inverse"), in.length > 1 ? in[1].data : null);
            }
            case "merge_heads_rope" -> {
                // [B, H, T, D], rotated -> [B, T, H*D]
                long[] s = in[0].shape;
                FusedRope.rope(in[0].data, false, out[0].data, true, (int) s[0], (int) s[1], (int) s[2], (int) s[3],
                        n.doubleAttr("theta"), n.boolAttr("inverse"), in.length > 1 ? in[1].data : null);
            }
            case "swiglu" -> VectorOps.swigluForward(in[0].data, in[1].data, out[0].data, in[0].numel());
            case "swiglu_grad" -> VectorOps.swigluBackward(in[0].data, in[1].data, in[2].data, out[0].data, out[1].data,
                    in[0].numel());
            case "split_heads" -> {
                // [B, T, H*D] -> [B, H, T, D]
                long[] o = out[0].shape;
                permuteHeads(in[0].data, out[0].data, o[0], o[1], o[2], o[3], true);
            }
            case "merge_heads" -> {
                long[] s = in[0].shape;
                permuteHeads(in[0].data, out[0].data, s[0], s[1], s[2], s[3], false);
            }
            case "reshape" -> MemorySegment.copy(in[0].data, 0, out[0].data, 0, in[0].data.byteSize());
            case "split" -> split(in[0], out);
            case "concat" -> concat(in, out[0]);
            case "cross_entropy" -> {
                Tensor logits = in[0];
                double loss = CpuKernels.crossEntropyForward(logits.data, in[1].data, rows(logits), (int) last(logits),
                        n.longAttr("ignore_index"));
                out[0].data.set(Tensor.F32, 0, (float) loss);
            }
            case "cross_entropy_grad" -> {
                Tensor logits = in[0];
                CpuKernels.crossEntropyBackward(logits.data, in[1].data, out[0].data, rows(logits), (int) last(logits),
                        n.longAttr("ignore_index"), in[2].item());
            }
            case "linear_cross_entropy" -> {
                Tensor h = in[0];
                int c = (int) last(h);
                int vocab = (int) in[1].shape[0];
                boolean bf16 = in[1].dtype == DType.BF16;
                double loss;
                if (workspace != null) {
                    loss = FusedKernels.linearCrossEntropy(h.data, in[1].data, bf16, in[2].data, out[1].data,
                            out[2].data, rows(h), c, vocab, n.longAttr("ignore_index"), workspace);
                } else {
                    // Not planned by the memory planner (a caller without one): a chunk of its own.
                    try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
                        MemorySegment chunk = arena.allocate(dev.collie.compiler.ops.OpRules.headChunkRows(rows(h), vocab)
                                * vocab * 4, 64);
                        loss = FusedKernels.linearCrossEntropy(h.data, in[1].data, bf16, in[2].data, out[1].data,
                                out[2].data, rows(h), c, vocab, n.longAttr("ignore_index"), chunk);
                    }
                }
                out[0].data.set(Tensor.F32, 0, (float) loss);
            }
            case "shift_left" -> shiftLeft(in[0], out[0], n.longAttr("fill"));
            case "positions" -> {
                for (long t = 0; t < out[0].shape[0]; t++) {
                    out[0].data.setAtIndex(Tensor.I64, t, t);
                }
            }
            case "silu" -> VectorOps.siluForward(in[0].data, out[0].data, in[0].numel());
            case "silu_grad" -> VectorOps.siluBackward(in[0].data, in[1].data, out[0].data, in[0].numel());
            case "gelu_tanh" -> VectorOps.geluTanhForward(in[0].data, out[0].data, in[0].numel());
            case "gelu_tanh_grad" -> CpuKernels.geluTanhBackward(in[0].data, in[1].data, out[0].data, in[0].numel());
            case "relu" -> CpuKernels.reluForward(in[0].data, out[0].data, in[0].numel());
            case "relu_grad" -> CpuKernels.reluBackward(in[0].data, in[1].data, out[0].data, in[0].numel());
            case "tanh" -> CpuKernels.tanhForward(in[0].data, out[0].data, in[0].numel());
            case "tanh_grad" -> CpuKernels.tanhBackward(in[0].data, in[1].data, out[0].data, in[0].numel());
            case "exp" -> {
                for (long i = 0; i < in[0].numel(); i++) {
                    out[0].data.setAtIndex(Tensor.F32, i, (float) Math.exp(in[0].getFloat(i)));
                }
            }
            case "softmax" -> CpuKernels.softmaxForward(in[0].data, out[0].data, rows(in[0]), (int) last(in[0]));
            case "softmax_grad" -> CpuKernels.softmaxBackward(in[0].data, in[1].data, out[0].data, rows(in[0]),
                    (int) last(in[0]));
            case "sq_norm_acc" -> {
                double sum = 0;
                Tensor g = in[1];
                for (long i = 0, size = g.numel(); i < size; i++) {
                    double v = g.getFloat(i);
                    sum += v * v;
                }
                out[0].data.set(Tensor.F32, 0, (float) (in[0].item() + sum));
            }
            case "clip_coef" -> {
                double norm = Math.sqrt(in[0].item());
                double maxNorm = in[1].item();
                // A coefficient of 0 tells the optimizer to skip the step: a non-finite gradient
                // must not touch the weights (0 * NaN would still be NaN).
                double coef = Double.isFinite(norm) ? Math.min(1.0, maxNorm / (norm + 1e-6)) : 0.0;
                out[0].data.set(Tensor.F32, 0, (float) coef);
                out[1].data.set(Tensor.F32, 0, (float) norm);
            }
            default -> throw new IllegalStateException("the CPU backend has no kernel for op '" + n.op + "'");
        }
    }

    /** A rotary_attention node's rotation (null for none); its optional inputs start at {@code first}. */
    private static FlashAttention.Rotary rotary(Node n, Tensor[] in, int first) {
        if (!n.boolAttr("rotary")) {
            return null;
        }
        return new FlashAttention.Rotary(n.doubleAttr("theta"), n.boolAttr("positions") ? in[first].data : null);
    }

    /** A rotary_attention node's segment ids, or null; they follow the positions when both are there. */
    private static MemorySegment segments(Node n, Tensor[] in, int first) {
        return n.boolAttr("segments") ? in[first + (n.boolAttr("positions") ? 1 : 0)].data : null;
    }

    /** {@code out (+)= x w^T} for a weight w [N, K] stored in float or bf16. */
    private static void linear(Tensor x, Tensor w, Tensor out, boolean accumulate) {
        int k = (int) last(x);
        int nOut = (int) w.shape[0];
        if (w.dtype == DType.BF16) {
            SimdGemm.matmulNTBf16(x.data, w.data, out.data, rows(x), nOut, k, accumulate);
        } else {
            SimdGemm.matmulNT(x.data, w.data, out.data, rows(x), nOut, k, accumulate);
        }
    }

    /** Every one of the first {@code rows} rows of {@code out} becomes {@code row} (a bias the GEMM then adds to). */
    private static void fillRows(Tensor row, Tensor out, long rows) {
        long rowBytes = row.data.byteSize();
        for (long r = 0; r < rows; r++) {
            MemorySegment.copy(row.data, 0, out.data, r * rowBytes, rowBytes);
        }
    }

    private static long last(Tensor t) {
        return t.shape[t.shape.length - 1];
    }

    private static int rows(Tensor t) {
        return (int) (t.numel() / last(t));
    }

    private static void scalarOp(String op, float c, Tensor x, Tensor out) {
        for (long i = 0, n = x.numel(); i < n; i++) {
            float v = x.getFloat(i);
            out.data.setAtIndex(Tensor.F32, i, switch (op) {
                case "add_scalar" -> v + c;
                case "mul_scalar" -> v * c;
                default -> v / c;
            });
        }
    }

    /** out[j] = sum over leading rows of x[r, j]; double accumulation. */
    private static void reduceTo(Tensor x, Tensor out) {
        long m = out.numel();
        long rows = x.numel() / m;
        for (long j = 0; j < m; j++) {
            double s = 0;
            for (long r = 0; r < rows; r++) {
                s += x.getFloat(r * m + j);
            }
            out.data.setAtIndex(Tensor.F32, j, (float) s);
        }
    }

    /** split: [B, T, H*D] <-> [B, H, T, D]; copies rows of D floats. */
    private static void permuteHeads(MemorySegment src, MemorySegment dst, long b, long h, long t, long d, boolean split) {
        long rowBytes = d * 4;
        for (long bi = 0; bi < b; bi++) {
            for (long hi = 0; hi < h; hi++) {
                for (long ti = 0; ti < t; ti++) {
                    long merged = ((bi * t + ti) * h + hi) * rowBytes;
                    long heads = ((bi * h + hi) * t + ti) * rowBytes;
                    if (split) {
                        MemorySegment.copy(src, merged, dst, heads, rowBytes);
                    } else {
                        MemorySegment.copy(src, heads, dst, merged, rowBytes);
                    }
                }
            }
        }
    }

    private static void split(Tensor x, Tensor[] parts) {
        long width = last(x);
        long part = width / parts.length;
        long rows = x.numel() / width;
        for (long r = 0; r < rows; r++) {
            for (int p = 0; p < parts.length; p++) {
                MemorySegment.copy(x.data, (r * width + p * part) * 4, parts[p].data, r * part * 4, part * 4);
            }
        }
    }

    private static void concat(Tensor[] parts, Tensor out) {
        long width = last(out);
        long rows = out.numel() / width;
        for (long r = 0; r < rows; r++) {
            long offset = 0;
            for (Tensor p : parts) {
                long w = last(p);
                MemorySegment.copy(p.data, r * w * 4, out.data, (r * width + offset) * 4, w * 4);
                offset += w;
            }
        }
    }

    /** out[.., t] = labels[.., t + 1]; out[.., T - 1] = fill. */
    private static void shiftLeft(Tensor labels, Tensor out, long fill) {
        long t = last(labels);
        long rows = labels.numel() / t;
        for (long r = 0; r < rows; r++) {
            for (long i = 0; i < t; i++) {
                long v = i + 1 < t ? labels.data.getAtIndex(Tensor.I64, r * t + i + 1) : fill;
                out.data.setAtIndex(Tensor.I64, r * t + i, v);
            }
        }
    }
}
