package dev.collie.compiler.analysis;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import java.util.Map;

/**
 * Model FLOPs of a program for given batch sizes: the matrix products and attention that the model
 * needs (2 per multiply-add), not what a kernel spends recomputing. Divided by time and by a
 * measured GEMM peak this gives MFU, the figure CoLLiE and PaLM report.
 */
public final class ModelFlops {

    private ModelFlops() {}

    public static double of(Graph g, Map<String, Long> bindings) {
        double flops = 0;
        boolean backward = false;
        for (Node n : g.nodes) {
            backward |= n.role != dev.collie.compiler.ir.Role.FORWARD;
            if (backward && n.role == dev.collie.compiler.ir.Role.FORWARD) {
                // a forward recomputed for the backward (activation checkpointing): hardware FLOPs,
                // not model FLOPs, so MFU stays comparable with and without it
                continue;
            }
            flops += switch (n.op) {
                case "linear", "linear_residual", "linear_bias", "linear_gelu" -> 2.0 * numel(n.out(), bindings) * dim(n.inputs.get(0), -1, bindings);
                case "matmul" -> 2.0 * numel(n.out(), bindings) * dim(n.inputs.get(0), -1, bindings);
                case "matmul_tn" -> 2.0 * numel(n.out(), bindings)
                        * (double) (numel(n.inputs.get(0), bindings) / dim(n.inputs.get(0), -1, bindings));
                case "matmul_tn_update" -> 2.0 * numel(n.inputs.get(2), bindings)
                        * (double) (numel(n.inputs.get(0), bindings) / dim(n.inputs.get(0), -1, bindings));
                // q k^T and p v: 2 * (2 * T * T * D) per head, halved by the causal mask
                case "attention", "cached_attention" -> attention(n, bindings);
                // logits, dh and dW: three products of [N, C] with [V, C]
                case "linear_cross_entropy", "linear_cross_entropy_update" -> 3 * 2.0 * numel(n.inputs.get(0), bindings)
                        * n.inputs.get(1).shape.dim(0).evaluate(bindings);
                // the backward has twice the forward's products (dq, dk from ds; dv and dp)
                case "attention_grad" -> 2 * attention(n, bindings);
                // the same on token-major q [B, T, H*D] (FuseRotaryAttention)
                case "rotary_attention" -> tokenMajorAttention(n, bindings);
                case "rotary_attention_grad" -> 2 * tokenMajorAttention(n, bindings);
                default -> 0.0;
            };
        }
        return flops;
    }

    private static double attention(Node n, Map<String, Long> bindings) {
        long[] q = n.inputs.get(0).shape.evaluate(bindings);
        double full = 4.0 * q[0] * q[1] * q[2] * q[2] * q[3];
        boolean causal = !n.attrs.containsKey("causal") || Boolean.TRUE.equals(n.attrs.get("causal"));
        return causal ? full / 2 : full;
    }

    private static double tokenMajorAttention(Node n, Map<String, Long> bindings) {
        long[] q = n.inputs.get(0).shape.evaluate(bindings);
        double full = 4.0 * q[0] * q[1] * q[1] * q[2];
        return n.boolAttr("causal") ? full / 2 : full;
    }

    private static long numel(dev.collie.compiler.ir.Value v, Map<String, Long> bindings) {
        return v.shape.numel(bindings);
    }

    private static long dim(dev.collie.compiler.ir.Value v, int i, Map<String, Long> bindings) {
        return v.shape.dim(i).evaluate(bindings);
    }
}
