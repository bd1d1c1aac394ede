package dev.collie.compiler.autodiff;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Role;
import dev.collie.compiler.ir.Value;
import dev.collie.compiler.ops.OpRules;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reverse-mode rules, one per differentiable op: given a forward node and the gradients of its
 * outputs (null where an output has none), emit backward nodes and return one gradient per input
 * (null where the input gets none). Ops absent from the table are not differentiable (backward-only
 * ops, integer ops); reaching one with a gradient is a compiler bug.
 */
public final class GradRules {

    /** Emits backward nodes into the graph being differentiated. */
    public static final class Emitter {
        private final Graph graph;
        private final String origin;

        Emitter(Graph graph, String origin) {
            this.graph = graph;
            this.origin = origin;
        }

        public Value op(String op, Map<String, Object> attrs, Value... inputs) {
            return node(op, attrs, inputs).out();
        }

        public Node node(String op, Map<String, Object> attrs, Value... inputs) {
            return graph.apply(op, List.of(inputs), new LinkedHashMap<>(attrs), Role.BACKWARD, origin);
        }

        /** dy summed down to {@code like}'s shape when {@code like} was broadcast in the forward. */
        public Value reduceTo(Value dy, Value like) {
            if (dy.shape.equals(like.shape)) {
                return dy;
            }
            return op("reduce_to", Map.of("shape", OpRules.shapeToAttr(like.shape)), dy);
        }
    }

    @FunctionalInterface
    public interface Rule {
        /** @return gradients of the inputs, index-aligned with {@code n.inputs}. */
        List<Value> grads(Emitter e, Node n, List<Value> dOut);
    }

    private static final Map<String, Rule> RULES = new HashMap<>();

    private static List<Value> of(Value... v) {
        return Arrays.asList(v);
    }

    static {
        RULES.put("embedding", (e, n, d) -> of(null,
                e.op("embedding_grad", Map.of("vocab", n.inputs.get(1).shape.dim(0).coeff()), n.inputs.get(0), d.get(0))));
        // y = x W^T: dx = dy W, dW = dy^T x
        RULES.put("linear", (e, n, d) -> of(
                e.op("matmul", Map.of(), d.get(0), n.inputs.get(1)),
                e.op("matmul_tn", Map.of(), d.get(0), n.inputs.get(0))));
        // y = r + x W^T: dx = dy W, dW = dy^T x, dr = dy
        RULES.put("linear_residual", (e, n, d) -> of(
                e.op("matmul", Map.of(), d.get(0), n.inputs.get(1)),
                e.op("matmul_tn", Map.of(), d.get(0), n.inputs.get(0)),
                d.get(0)));
        // y = x W^T + b: dx = dy W, dW = dy^T x, db = dy summed over the tokens
        RULES.put("linear_bias", (e, n, d) -> of(
                e.op("matmul", Map.of(), d.get(0), n.inputs.get(1)),
                e.op("matmul_tn", Map.of(), d.get(0), n.inputs.get(0)),
                e.reduceTo(d.get(0), n.inputs.get(2))));
        // (y, p) = (gelu(p), p) with p = x W^T (+ b): dp = gelu'(p) dy, then as linear (linear_bias) with dp
        RULES.put("linear_gelu", (e, n, d) -> {
            Value dp = e.op("gelu_tanh_grad", Map.of(), n.outputs.get(1), d.get(0));
            return n.inputs.size() == 3
                    ? of(e.op("matmul", Map.of(), dp, n.inputs.get(1)), e.op("matmul_tn", Map.of(), dp, n.inputs.get(0)),
                            e.reduceTo(dp, n.inputs.get(2)))
                    : of(e.op("matmul", Map.of(), dp, n.inputs.get(1)), e.op("matmul_tn", Map.of(), dp, n.inputs.get(0)));
        });
        // y = x W: dx = dy W^T, dW = x^T dy
        RULES.put("matmul", (e, n, d) -> of(
                e.op("linear", Map.of(), d.get(0), n.inputs.get(1)),
                e.op("matmul_tn", Map.of(), n.inputs.get(0), d.get(0))));
        RULES.put("add", (e, n, d) -> of(e.reduceTo(d.get(0), n.inputs.get(0)), e.reduceTo(d.get(0), n.inputs.get(1))));
        RULES.put("sub", (e, n, d) -> of(e.reduceTo(d.get(0), n.inputs.get(0)),
                e.reduceTo(e.op("mul_scalar", Map.of("value", -1.0), d.get(0)), n.inputs.get(1))));
        RULES.put("mul", (e, n, d) -> of(
                e.reduceTo(e.op("mul", Map.of(), d.get(0), n.inputs.get(1)), n.inputs.get(0)),
                e.reduceTo(e.op("mul", Map.of(), d.get(0), n.inputs.get(0)), n.inputs.get(1))));
        // y = a / b: da = dy / b, db = -dy * y / b
        RULES.put("div", (e, n, d) -> of(
                e.reduceTo(e.op("div", Map.of(), d.get(0), n.inputs.get(1)), n.inputs.get(0)),
                e.reduceTo(e.op("mul_scalar", Map.of("value", -1.0),
                        e.op("div", Map.of(), e.op("mul", Map.of(), d.get(0), n.out()), n.inputs.get(1))),
                        n.inputs.get(1))));
        RULES.put("add_scalar", (e, n, d) -> of(d.get(0)));
        RULES.put("mul_scalar", (e, n, d) -> of(e.op("mul_scalar", Map.of("value", n.attrs.get("value")), d.get(0))));
        RULES.put("div_scalar", (e, n, d) -> of(e.op("div_scalar", Map.of("value", n.attrs.get("value")), d.get(0))));
        RULES.put("rms_norm", (e, n, d) -> e.node("rms_norm_grad", Map.of("eps", n.attrs.get("eps")),
                n.inputs.get(0), n.inputs.get(1), d.get(0)).outputs);
        RULES.put("layer_norm", (e, n, d) -> e.node("layer_norm_grad", Map.of("eps", n.attrs.get("eps")),
                n.inputs.get(0), n.inputs.get(1), d.get(0)).outputs);
        // a rotation's gradient is the inverse rotation
        RULES.put("rope", (e, n, d) -> {
            Map<String, Object> attrs = Map.of("theta", n.attrs.get("theta"), "inverse", !n.boolAttr("inverse"));
            Value dx = n.inputs.size() > 1 ? e.op("rope", attrs, d.get(0), n.inputs.get(1)) : e.op("rope", attrs, d.get(0));
            return of(dx, null);
        });
        RULES.put("attention", (e, n, d) -> {
            Map<String, Object> attrs = Map.of("causal", n.attrs.get("causal"), "scale", n.attrs.get("scale"));
            List<Value> ins = new ArrayList<>(n.inputs.subList(0, 3));
            ins.add(n.out());
            ins.add(d.get(0));
            ins.add(n.outputs.get(1));
            if (n.inputs.size() > 3) {
                ins.add(n.inputs.get(3));
            }
            List<Value> grads = new ArrayList<>(e.node("attention_grad", attrs, ins.toArray(Value[]::new)).outputs);
            grads.add(null);
            return grads;
        });
        // the same for attention on token-major projections (FuseRotaryAttention): one node gives dq and
        // dk, inversely rotated, and dv, token-major; positions and segments get none
        RULES.put("rotary_attention", (e, n, d) -> {
            List<Value> ins = new ArrayList<>(n.inputs.subList(0, 3));
            ins.add(n.out());
            ins.add(d.get(0));
            ins.add(n.outputs.get(1));
            ins.addAll(n.inputs.subList(3, n.inputs.size()));
            List<Value> grads = new ArrayList<>(e.node("rotary_attention_grad", n.attrs, ins.toArray(Value[]::new))
                    .outputs);
            while (grads.size() < n.inputs.size()) {
                grads.add(null);
            }
            return grads;
        });
        // the fused head split + rotation: its gradient is the inverse rotation, merged back
        RULES.put("split_heads_rope", (e, n, d) -> {
            Map<String, Object> attrs = Map.of("theta", n.attrs.get("theta"), "inverse", !n.boolAttr("inverse"));
            Value dx = n.inputs.size() > 1 ? e.op("merge_heads_rope", attrs, d.get(0), n.inputs.get(1))
                    : e.op("merge_heads_rope", attrs, d.get(0));
            return of(dx, null);
        });
        RULES.put("merge_heads_rope", (e, n, d) -> {
            Map<String, Object> attrs = Map.of("theta", n.attrs.get("theta"), "inverse", !n.boolAttr("inverse"),
                    "heads", n.inputs.get(0).shape.dim(1).coeff());
            Value dx = n.inputs.size() > 1 ? e.op("split_heads_rope", attrs, d.get(0), n.inputs.get(1))
                    : e.op("split_heads_rope", attrs, d.get(0));
            return of(dx, null);
        });
        RULES.put("swiglu", (e, n, d) -> e.node("swiglu_grad", Map.of(), n.inputs.get(0), n.inputs.get(1),
                d.get(0)).outputs);
        RULES.put("split_heads", (e, n, d) -> of(e.op("merge_heads", Map.of(), d.get(0))));
        RULES.put("merge_heads", (e, n, d) -> of(e.op("split_heads",
                Map.of("heads", n.inputs.get(0).shape.dim(1).coeff()), d.get(0))));
        RULES.put("reshape", (e, n, d) -> of(e.op("reshape",
                Map.of("shape", OpRules.shapeToAttr(n.inputs.get(0).shape)), d.get(0))));
        RULES.put("split", (e, n, d) -> {
            var parts = new ArrayList<Value>();
            for (int i = 0; i < n.outputs.size(); i++) {
                Value g = d.get(i);
                parts.add(g != null ? g : e.op("zeros", Map.of("shape", OpRules.shapeToAttr(n.outputs.get(i).shape))));
            }
            return of(e.op("concat", Map.of(), parts.toArray(Value[]::new)));
        });
        RULES.put("cross_entropy", (e, n, d) -> of(e.op("cross_entropy_grad",
                Map.of("ignore_index", n.attrs.get("ignore_index")), n.inputs.get(0), n.inputs.get(1), d.get(0)), null));
        // dh and dW were computed by the forward for d(loss) = 1; scale them by the actual d(loss).
        // When d(loss) is the seed 1 (the loss is the program's loss, not a term of it), they are the
        // gradients already: scaling [V, C] by 1 would cost a pass over the head's gradient.
        RULES.put("linear_cross_entropy", (e, n, d) -> isOne(d.get(0))
                ? of(n.outputs.get(1), n.outputs.get(2), null)
                : of(e.op("mul", Map.of(), n.outputs.get(1), d.get(0)), e.op("mul", Map.of(), n.outputs.get(2), d.get(0)),
                        null));
        RULES.put("silu", (e, n, d) -> of(e.op("silu_grad", Map.of(), n.inputs.get(0), d.get(0))));
        RULES.put("gelu_tanh", (e, n, d) -> of(e.op("gelu_tanh_grad", Map.of(), n.inputs.get(0), d.get(0))));
        RULES.put("relu", (e, n, d) -> of(e.op("relu_grad", Map.of(), n.inputs.get(0), d.get(0))));
        RULES.put("tanh", (e, n, d) -> of(e.op("tanh_grad", Map.of(), n.out(), d.get(0))));
        RULES.put("exp", (e, n, d) -> of(e.op("mul", Map.of(), d.get(0), n.out())));
        RULES.put("softmax", (e, n, d) -> of(e.op("softmax_grad", Map.of(), n.out(), d.get(0))));
    }

    private GradRules() {}

    private static boolean isOne(Value v) {
        Node p = v.producer();
        return p.op.equals("constant") && p.doubleAttr("value") == 1.0;
    }

    public static Rule get(String op) {
        return RULES.get(op);
    }

    public static boolean differentiable(String op) {
        return RULES.containsKey(op);
    }

    static Emitter emitter(Graph g, String origin) {
        return new Emitter(g, origin);
    }

    /**
     * Appends the backward of {@code loss} to {@code g}: returns the complete gradient of each
     * parameter value that the loss depends on, in parameter order.
     */
    public static Map<Value, Value> differentiate(Graph g, Value loss) {
        List<Node> forward = List.copyOf(g.nodes);
        java.util.Set<Value> needs = new java.util.HashSet<>();
        for (Node n : forward) {
            boolean depends = n.op.equals("param") || n.inputs.stream().anyMatch(needs::contains);
            if (depends) {
                n.outputs.stream().filter(v -> v.dtype == dev.collie.compiler.ir.DType.F32).forEach(needs::add);
            }
        }
        Map<Value, Value> grads = new HashMap<>();
        Emitter seed = new Emitter(g, null);
        grads.put(loss, seed.op("constant", Map.of("value", 1.0)));
        for (int i = forward.size() - 1; i >= 0; i--) {
            Node n = forward.get(i);
            if (n.outputs.stream().noneMatch(grads::containsKey)) {
                continue;
            }
            if (n.op.equals("param") || n.op.equals("input")) {
                continue;
            }
            Rule rule = RULES.get(n.op);
            if (rule == null) {
                throw new IllegalStateException("op " + n.op + " has a gradient flowing into it but no rule");
            }
            List<Value> dOut = n.outputs.stream().map(grads::get).toList();
            List<Value> dIn = rule.grads(new Emitter(g, n.origin), n, dOut);
            for (int k = 0; k < n.inputs.size(); k++) {
                Value in = n.inputs.get(k);
                Value gIn = dIn.get(k);
                if (gIn == null || !needs.contains(in)) {
                    continue;
                }
                Value before = grads.get(in);
                grads.put(in, before == null ? gIn : new Emitter(g, n.origin).op("add", Map.of(), before, gIn));
            }
        }
        Map<Value, Value> paramGrads = new LinkedHashMap<>();
        for (Node n : forward) {
            if (n.op.equals("param") && grads.containsKey(n.out())) {
                paramGrads.put(n.out(), grads.get(n.out()));
            }
        }
        return paramGrads;
    }
}
