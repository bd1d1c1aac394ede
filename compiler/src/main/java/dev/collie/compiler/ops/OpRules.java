package dev.collie.compiler.ops;

import dev.collie.compiler.ir.DType;
import dev.collie.compiler.ir.Dim;
import dev.collie.compiler.ir.Shape;
import dev.collie.compiler.ir.ShapeError;
import dev.collie.compiler.ir.Value;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The op table: for every IR op, how many inputs it takes and what it produces (shape and dtype),
 * with the check that its inputs fit. Gradients live beside it in autodiff/GradRules; kernels in the
 * runtime's backends. Shapes use B, T, C, H, KV, D, V letters in comments, as in llm.c.
 */
public final class OpRules {

    public record Type(Shape shape, DType dtype) {}

    @FunctionalInterface
    interface Rule {
        List<Type> infer(List<Value> in, Map<String, Object> attrs);
    }

    private record Entry(int minInputs, int maxInputs, Rule rule) {}

    private static final Map<String, Entry> TABLE = new LinkedHashMap<>();

    /** Elementwise unary ops: y = f(x). */
    public static final Set<String> UNARY = Set.of("silu", "gelu_tanh", "relu", "tanh", "exp", "softmax");
    /** Their gradients: dx = f'(x or y) * dy, inputs (x or y, dy). */
    public static final Set<String> UNARY_GRAD = Set.of("silu_grad", "gelu_tanh_grad", "relu_grad", "tanh_grad",
            "softmax_grad");
    public static final Set<String> BINARY = Set.of("add", "sub", "mul", "div");
    public static final Set<String> SCALAR = Set.of("add_scalar", "mul_scalar", "div_scalar");

    private static void def(String op, int min, int max, Rule rule) {
        TABLE.put(op, new Entry(min, max, rule));
    }

    private static void def(String op, int n, Rule rule) {
        def(op, n, n, rule);
    }

    static {
        def("input", 0, (in, a) -> one(shapeAttr(a, "shape"), DType.valueOf(((String) a.get("dtype")).toUpperCase())));
        def("param", 0, (in, a) -> one(shapeAttr(a, "shape"), DType.F32));
        def("constant", 0, (in, a) -> one(Shape.SCALAR, DType.F32));
        def("zeros", 0, (in, a) -> one(shapeAttr(a, "shape"), DType.F32));

        // ids [..] int, table [V, C] -> [.., C]
        def("embedding", 2, (in, a) -> {
            ints(in.get(0), "ids");
            rank(in.get(1), 2, "table");
            return one(in.get(0).shape.append(in.get(1).shape.dim(1)), DType.F32);
        });
        // ids [..], dy [.., C] -> dtable [V, C]
        def("embedding_grad", 2, (in, a) -> one(Shape.of(Dim.of(((Number) a.get("vocab")).longValue()),
                in.get(1).shape.last()), DType.F32));
        // x [.., K], w [N, K] -> [.., N]
        def("linear", 2, (in, a) -> {
            Value x = floats(in.get(0), "x");
            Value w = rank(in.get(1), 2, "weight");
            if (!x.shape.last().equals(w.shape.dim(1))) {
                throw new ShapeError("linear: x " + x.shape + " has " + x.shape.last() + " features, weight "
                        + w.shape + " expects " + w.shape.dim(1));
            }
            return one(x.shape.withLast(w.shape.dim(0)), DType.F32);
        });
        // Fused by FuseDenseResidual: x [.., K], w [N, K], r [.., N] -> r + x w^T
        def("linear_residual", 3, (in, a) -> {
            Value x = floats(in.get(0), "x");
            Value w = rank(in.get(1), 2, "weight");
            if (!x.shape.last().equals(w.shape.dim(1)) || !in.get(2).shape.equals(x.shape.withLast(w.shape.dim(0)))) {
                throw new ShapeError("linear_residual: x " + x.shape + ", weight " + w.shape + " and residual "
                        + in.get(2).shape + " do not fit");
            }
            return one(in.get(2).shape, DType.F32);
        });
        // Fused by FuseDenseBias: x [.., K], w [N, K], b [N] -> x w^T + b
        def("linear_bias", 3, (in, a) -> {
            Value x = floats(in.get(0), "x");
            Value w = rank(in.get(1), 2, "weight");
            Value b = rank(in.get(2), 1, "bias");
            if (!x.shape.last().equals(w.shape.dim(1)) || !b.shape.dim(0).equals(w.shape.dim(0))) {
                throw new ShapeError("linear_bias: x " + x.shape + ", weight " + w.shape + " and bias " + b.shape
                        + " do not fit");
            }
            return one(x.shape.withLast(w.shape.dim(0)), DType.F32);
        });
        // Fused by FuseDenseActivation: x [.., K], w [N, K], optional b [N] -> (gelu_tanh(x w^T + b), the
        // pre-activation x w^T + b, which the backward needs)
        def("linear_gelu", 2, 3, (in, a) -> {
            Value x = floats(in.get(0), "x");
            Value w = rank(in.get(1), 2, "weight");
            if (!x.shape.last().equals(w.shape.dim(1))
                    || (in.size() == 3 && !rank(in.get(2), 1, "bias").shape.dim(0).equals(w.shape.dim(0)))) {
                throw new ShapeError("linear_gelu: x " + x.shape + ", weight " + w.shape
                        + (in.size() == 3 ? " and bias " + in.get(2).shape : "") + " do not fit");
            }
            Shape y = x.shape.withLast(w.shape.dim(0));
            return List.of(new Type(y, DType.F32), new Type(y, DType.F32));
        });
        // x [.., K], w [K, N] -> [.., N]
        def("matmul", 2, (in, a) -> {
            Value x = floats(in.get(0), "a");
            Value w = rank(in.get(1), 2, "b");
            if (!x.shape.last().equals(w.shape.dim(0))) {
                throw new ShapeError("matmul: a " + x.shape + " has " + x.shape.last() + " columns, b " + w.shape
                        + " has " + w.shape.dim(0) + " rows");
            }
            return one(x.shape.withLast(w.shape.dim(1)), DType.F32);
        });
        // a [.., M], b [.., N] -> [M, N], summed over the leading dimensions
        def("matmul_tn", 2, (in, a) -> {
            sameLeading(in.get(0), in.get(1), "matmul_tn");
            return one(Shape.of(in.get(0).shape.last(), in.get(1).shape.last()), DType.F32);
        });
        for (String op : BINARY) {
            def(op, 2, (in, a) -> one(broadcast(op, in.get(0), in.get(1)), DType.F32));
        }
        for (String op : SCALAR) {
            def(op, 1, (in, a) -> one(floats(in.get(0), "x").shape, DType.F32));
        }
        // x [..] -> sum over leading axes down to the suffix shape `shape` (gradient of broadcasting)
        def("reduce_to", 1, (in, a) -> {
            Shape target = shapeAttr(a, "shape");
            if (!in.get(0).shape.endsWith(target)) {
                throw new ShapeError("reduce_to: " + target + " is not a suffix of " + in.get(0).shape);
            }
            return one(target, DType.F32);
        });
        // x [.., C], w [C] -> [.., C]
        def("rms_norm", 2, (in, a) -> one(norm("rms_norm", in.get(0), in.get(1)), DType.F32));
        def("rms_norm_grad", 3, (in, a) -> List.of(new Type(in.get(0).shape, DType.F32),
                new Type(in.get(1).shape, DType.F32)));
        def("layer_norm", 3, (in, a) -> {
            norm("layer_norm", in.get(0), in.get(2));
            return one(norm("layer_norm", in.get(0), in.get(1)), DType.F32);
        });
        def("layer_norm_grad", 3, (in, a) -> List.of(new Type(in.get(0).shape, DType.F32),
                new Type(in.get(1).shape, DType.F32), new Type(in.get(1).shape, DType.F32)));
        // x [B, H, T, D] -> same, rotated pairwise by position
        // x [B, H, T, D], optional positions [B, T] int -> same, rotated pairwise by position
        def("rope", 1, 2, (in, a) -> {
            Value x = rank(in.get(0), 4, "x");
            Dim d = x.shape.last();
            if (!d.isConstant() || d.coeff() % 2 != 0) {
                throw new ShapeError("rope: head dimension " + d + " must be even");
            }
            if (in.size() > 1) {
                perToken(in.get(1), x, "rope: positions");
            }
            return one(x.shape, DType.F32);
        });
        // q [B, H, T, D], k [B, KV, T, D], v [B, KV, T, D], optional segments [B, T] int
        //   -> out [B, H, T, D], lse [B, H, T]: each query row's log-sum-exp of its scores, which the
        //   backward reuses instead of recomputing q·k^T once more (a sixth of its work)
        def("attention", 3, 4, (in, a) -> {
            if (in.size() > 3) {
                perToken(in.get(3), in.get(0), "attention: segments");
            }
            Shape out = attention(in);
            Shape lse = Shape.of(out.dim(0), out.dim(1), out.dim(2));
            return List.of(new Type(out, DType.F32), new Type(lse, DType.F32));
        });
        // (q, k, v, out, dout, lse[, segments]) -> (dq, dk, dv); out and lse are the forward's results
        // (FlashAttention-2 needs rowsum(dout * out), and lse restores the softmax)
        def("attention_grad", 6, 7, (in, a) -> List.of(new Type(in.get(0).shape, DType.F32),
                new Type(in.get(1).shape, DType.F32), new Type(in.get(2).shape, DType.F32)));
        // Fused by FuseRotaryAttention: attention on the projections' token-major layout, q and k rotated
        // on load (attr rotary, with theta). q [B, T, H*D], k and v [B, T, KV*D] (attrs heads H and
        // kv_heads KV), then positions [B, T] int if attr positions, then segments [B, T] int if attr
        // segments -> out [B, T, H*D] (what merge_heads gave), lse [B, H, T] (as attention's)
        def("rotary_attention", 3, 5, (in, a) -> {
            rotaryAttention("rotary_attention", in, 3, a);
            Value q = in.get(0);
            Shape lse = Shape.of(q.shape.dim(0), Dim.of(((Number) a.get("heads")).longValue()), q.shape.dim(1));
            return List.of(new Type(q.shape, DType.F32), new Type(lse, DType.F32));
        });
        // (q, k, v, out, dout, lse[, positions][, segments]) -> (dq, dk, dv), all token-major; dq and dk
        // are the gradients of the unrotated q and k
        def("rotary_attention_grad", 6, 8, (in, a) -> {
            List<Value> operands = new ArrayList<>(in.subList(0, 3));
            operands.addAll(in.subList(6, in.size()));
            rotaryAttention("rotary_attention_grad", operands, 3, a);
            for (int i = 3; i < 5; i++) {
                same("rotary_attention_grad", in.get(0), in.get(i));
            }
            return List.of(new Type(in.get(0).shape, DType.F32), new Type(in.get(1).shape, DType.F32),
                    new Type(in.get(2).shape, DType.F32));
        });
        // Generation: q [B, H, Tn, D], k and v [B, KV, Tn, D], caches [B, KV, S, D] (written in place),
        // positions [B, Tn] -> [B, H, Tn, D]
        def("cached_attention", 6, (in, a) -> {
            Value cache = rank(in.get(3), 4, "k_cache");
            if (!cache.shape.equals(in.get(4).shape) || !cache.shape.dim(1).equals(in.get(1).shape.dim(1))) {
                throw new ShapeError("cached_attention: caches " + cache.shape + " and " + in.get(4).shape
                        + " do not fit keys " + in.get(1).shape);
            }
            perToken(in.get(5), in.get(0), "cached_attention: positions");
            return one(attention(in.subList(0, 3)), DType.F32);
        });
        // [B, T, H*D] -> [B, H, T, D]
        def("split_heads", 1, (in, a) -> {
            Value x = rank(in.get(0), 3, "x");
            long heads = ((Number) a.get("heads")).longValue();
            Dim d = x.shape.last().dividedBy(Dim.of(heads));
            if (heads <= 0 || d == null) {
                throw new ShapeError("split_heads: " + x.shape.last() + " features do not split into " + heads
                        + " heads");
            }
            return one(Shape.of(x.shape.dim(0), Dim.of(heads), x.shape.dim(1), d), DType.F32);
        });
        // Fused by FuseRotaryHeads: x [B, T, H*D], optional positions [B, T] -> [B, H, T, D], rotated
        def("split_heads_rope", 1, 2, (in, a) -> {
            Value x = rank(in.get(0), 3, "x");
            long heads = ((Number) a.get("heads")).longValue();
            Dim d = heads <= 0 ? null : x.shape.last().dividedBy(Dim.of(heads));
            if (d == null || !d.isConstant() || d.coeff() % 2 != 0) {
                throw new ShapeError("split_heads_rope: " + x.shape.last() + " features do not split into " + heads
                        + " heads of even size");
            }
            Shape out = Shape.of(x.shape.dim(0), Dim.of(heads), x.shape.dim(1), d);
            if (in.size() > 1) {
                ints(in.get(1), "split_heads_rope: positions");
            }
            return one(out, DType.F32);
        });
        // Its backward: x [B, H, T, D] rotated (inversely) and merged -> [B, T, H*D]
        def("merge_heads_rope", 1, 2, (in, a) -> {
            Value x = rank(in.get(0), 4, "x");
            if (in.size() > 1) {
                perToken(in.get(1), x, "merge_heads_rope: positions");
            }
            return one(Shape.of(x.shape.dim(0), x.shape.dim(2), x.shape.dim(1).times(x.shape.dim(3))), DType.F32);
        });
        // Fused by FuseSwiGlu: silu(a) * b, a and b [..] of one shape
        def("swiglu", 2, (in, a) -> {
            same("swiglu", floats(in.get(0), "gate"), floats(in.get(1), "up"));
            return one(in.get(0).shape, DType.F32);
        });
        // (a, b, dy) -> (da, db)
        def("swiglu_grad", 3, (in, a) -> List.of(new Type(in.get(0).shape, DType.F32),
                new Type(in.get(1).shape, DType.F32)));
        // [B, H, T, D] -> [B, T, H*D]
        def("merge_heads", 1, (in, a) -> {
            Value x = rank(in.get(0), 4, "x");
            return one(Shape.of(x.shape.dim(0), x.shape.dim(2), x.shape.dim(1).times(x.shape.dim(3))), DType.F32);
        });
        def("reshape", 1, (in, a) -> {
            Shape target = shapeAttr(a, "shape");
            if (!target.numel().equals(in.get(0).shape.numel())) {
                throw new ShapeError("reshape: cannot view " + in.get(0).shape + " as " + target);
            }
            return one(target, in.get(0).dtype);
        });
        // x [.., n*P] -> P values [.., n]
        def("split", 1, (in, a) -> {
            Value x = floats(in.get(0), "x");
            long parts = ((Number) a.get("parts")).longValue();
            Dim d = parts <= 0 ? null : x.shape.last().dividedBy(Dim.of(parts));
            if (d == null) {
                throw new ShapeError("split: last dimension " + x.shape.last() + " is not divisible into " + parts
                        + " parts");
            }
            var out = new ArrayList<Type>();
            for (int i = 0; i < parts; i++) {
                out.add(new Type(x.shape.withLast(d), DType.F32));
            }
            return out;
        });
        // P values [.., n] -> [.., P*n]
        def("concat", 1, Integer.MAX_VALUE, (in, a) -> {
            Shape lead = in.get(0).shape.leading();
            Dim total = Dim.of(0);
            long sum = 0;
            for (Value v : in) {
                if (!v.shape.leading().equals(lead) || !v.shape.last().isConstant()) {
                    throw new ShapeError("concat: " + v.shape + " does not match " + in.get(0).shape);
                }
                sum += v.shape.last().coeff();
            }
            total = Dim.of(sum);
            return one(lead.append(total), DType.F32);
        });
        // logits [.., V], targets [..] int -> scalar mean loss
        def("cross_entropy", 2, (in, a) -> {
            Value logits = floats(in.get(0), "logits");
            Value t = ints(in.get(1), "targets");
            if (!t.shape.equals(logits.shape.leading())) {
                throw new ShapeError("cross_entropy: targets " + t.shape + " do not match logits " + logits.shape
                        + " without its class axis");
            }
            return one(Shape.SCALAR, DType.F32);
        });
        def("cross_entropy_grad", 3, (in, a) -> one(in.get(0).shape, DType.F32));
        // h [.., C], W [V, C], targets [..] -> (mean loss, dloss/dh [.., C], dloss/dW [V, C])
        def("linear_cross_entropy", 3, (in, a) -> {
            Value h = floats(in.get(0), "h");
            Value w = rank(in.get(1), 2, "weight");
            Value t = ints(in.get(2), "targets");
            if (!h.shape.last().equals(w.shape.dim(1)) || !t.shape.equals(h.shape.leading())) {
                throw new ShapeError("linear_cross_entropy: h " + h.shape + ", weight " + w.shape + " and targets "
                        + t.shape + " do not fit");
            }
            return List.of(new Type(Shape.SCALAR, DType.F32), new Type(h.shape, DType.F32), new Type(w.shape, DType.F32));
        });
        // The head with W's in-place update fused in (FuseHeadUpdate): h [.., C], W [V, C] (a parameter,
        // updated in place), targets [..], lr [] -> (mean loss, dloss/dh [.., C]); no [V, C] gradient.
        def("linear_cross_entropy_update", 4, (in, a) -> {
            Value h = floats(in.get(0), "h");
            Value w = rank(in.get(1), 2, "weight");
            Value t = ints(in.get(2), "targets");
            if (!h.shape.last().equals(w.shape.dim(1)) || !t.shape.equals(h.shape.leading())) {
                throw new ShapeError("linear_cross_entropy_update: h " + h.shape + ", weight " + w.shape
                        + " and targets " + t.shape + " do not fit");
            }
            if (!in.get(3).shape.equals(Shape.SCALAR)) {
                throw new ShapeError("linear_cross_entropy_update: the learning rate must be a scalar, got "
                        + in.get(3).shape);
            }
            return List.of(new Type(Shape.SCALAR, DType.F32), new Type(h.shape, DType.F32));
        });
        // A weight's gradient product with its in-place update fused in (FuseWeightUpdate): dy [.., N],
        // x [.., K], W [N, K] (a parameter, updated in place by dy^T x), lr [] -> nothing; no [N, K] gradient.
        def("matmul_tn_update", 4, (in, a) -> {
            sameLeading(in.get(0), in.get(1), "matmul_tn_update");
            Value w = rank(in.get(2), 2, "weight");
            if (!w.shape.dim(0).equals(in.get(0).shape.last()) || !w.shape.dim(1).equals(in.get(1).shape.last())) {
                throw new ShapeError("matmul_tn_update: dy " + in.get(0).shape + " and x " + in.get(1).shape
                        + " do not make the gradient of weight " + w.shape);
            }
            if (!in.get(3).shape.equals(Shape.SCALAR)) {
                throw new ShapeError("matmul_tn_update: the learning rate must be a scalar, got " + in.get(3).shape);
            }
            return List.of();
        });
        // An embedding table's gradient with its in-place update fused in (FuseEmbeddingUpdate): ids [..] int64,
        // dy [.., C], E [V, C] (a parameter, updated in place by the rows of dy summed per id), lr [] -> nothing.
        def("embedding_grad_update", 4, (in, a) -> {
            Value ids = ints(in.get(0), "ids");
            Value table = rank(in.get(2), 2, "table");
            if (!in.get(1).shape.equals(ids.shape.append(table.shape.dim(1)))) {
                throw new ShapeError("embedding_grad_update: dy " + in.get(1).shape + " is not one row of table "
                        + table.shape + " per id of " + ids.shape);
            }
            if (!in.get(3).shape.equals(Shape.SCALAR)) {
                throw new ShapeError("embedding_grad_update: the learning rate must be a scalar, got " + in.get(3).shape);
            }
            return List.of();
        });
        def("shift_left", 1, (in, a) -> one(ints(in.get(0), "labels").shape, DType.I64));
        def("positions", 1, (in, a) -> one(Shape.of(ints(in.get(0), "ids").shape.last()), DType.I64));
        for (String op : UNARY) {
            def(op, 1, (in, a) -> one(floats(in.get(0), "x").shape, DType.F32));
        }
        for (String op : UNARY_GRAD) {
            def(op, 2, (in, a) -> {
                same(op, in.get(0), in.get(1));
                return one(in.get(0).shape, DType.F32);
            });
        }
        // Training: p -= lr * coef * g, in place. Inputs (p, g, lr) or (p, g, lr, coef).
        def("param_update", 3, 4, (in, a) -> {
            same("param_update", in.get(0), in.get(1));
            return List.of();
        });
        // acc + sum(g^2), scalar
        def("sq_norm_acc", 2, (in, a) -> one(Shape.SCALAR, DType.F32));
        // (sum of squares, max_norm) -> (min(1, max_norm / (norm + 1e-6)), norm)
        def("clip_coef", 2, (in, a) -> List.of(new Type(Shape.SCALAR, DType.F32), new Type(Shape.SCALAR, DType.F32)));
    }

    private OpRules() {}

    /**
     * Logit floats per chunk of the fused head ({@code linear_cross_entropy}): 64 MB, so a 32k
     * vocabulary is processed at most 524 tokens at a time, in chunks of balanced height (2048 tokens
     * as four of 512). Each chunk streams the [V, C] weight through its three GEMMs and adds to the
     * whole [V, C] gradient, so fewer chunks move less memory: 524 rows took 0.59 ms a token against
     * 0.66 with 262 (15m's head, 32 MB more workspace).
     */
    public static final long HEAD_CHUNK_FLOATS = 16L << 20;

    /**
     * Scratch memory an op's kernel needs beside its inputs and outputs, for the memory planner to
     * place in the arena (0 for most ops): the fused head keeps one chunk of logits.
     */
    public static long workspaceBytes(dev.collie.compiler.ir.Node n, Map<String, Long> bindings) {
        return switch (n.op) {
            case "linear_cross_entropy" -> {
                long vocab = n.inputs.get(1).shape.dim(0).evaluate(bindings);
                long rows = n.inputs.get(0).shape.leading().numel(bindings);
                yield headChunkRows(rows, vocab) * vocab * Float.BYTES;
            }
            case "linear_cross_entropy_update" -> {
                long vocab = n.inputs.get(1).shape.dim(0).evaluate(bindings);
                long width = n.inputs.get(1).shape.dim(1).evaluate(bindings);
                long rows = n.inputs.get(0).shape.leading().numel(bindings);
                yield headUpdateWorkspaceFloats(rows, vocab, width) * Float.BYTES;
            }
            case "matmul_tn_update" -> {
                long rows = n.inputs.get(2).shape.dim(0).evaluate(bindings);
                long width = n.inputs.get(2).shape.dim(1).evaluate(bindings);
                long tokens = n.inputs.get(0).shape.leading().numel(bindings);
                yield tokens <= WEIGHT_UPDATE_BLOCK_TOKENS ? 0 : weightUpdateBandRows(rows, width, tokens) * width * Float.BYTES;
            }
            case "embedding_grad_update" -> embeddingUpdateWorkspaceBytes(n.inputs.get(2).shape.dim(1).evaluate(bindings));
            default -> 0;
        };
    }

    /**
     * Floats of an embedding table's gradient that the fused embedding update sums and hands over at a time,
     * per task: whole rows, about 64K floats (256 KiB, in L2 while the optimizer reads them).
     */
    public static final long EMBEDDING_UPDATE_BLOCK_FLOATS = 1L << 16;

    /** Tasks of the fused embedding update, each with its own block of the workspace. */
    public static final int EMBEDDING_UPDATE_TASKS = 4;

    /** Table rows per block of {@code embedding_grad_update} for rows of {@code width} floats (at least one). */
    public static long embeddingUpdateBlockRows(long width) {
        return Math.max(1, EMBEDDING_UPDATE_BLOCK_FLOATS / Math.max(1, width));
    }

    /** Workspace of {@code embedding_grad_update}: a block of the gradient per task. */
    public static long embeddingUpdateWorkspaceBytes(long width) {
        return EMBEDDING_UPDATE_TASKS * embeddingUpdateBlockRows(width) * width * Float.BYTES;
    }

    /**
     * Up to this many tokens the fused weight update takes its gradient block by block straight from the
     * GEMM's tasks (one K slice of SimdGemm, whose default KC it is) and needs no workspace; beyond, it
     * computes bands of rows into its workspace.
     */
    public static final long WEIGHT_UPDATE_BLOCK_TOKENS = 512;

    /** Floats of a weight's gradient that the fused weight update computes and applies at a time (4 MB). */
    public static final long WEIGHT_UPDATE_BAND_FLOATS = 1L << 20;

    /**
     * Rows of W [N, K] per band of {@code matmul_tn_update}: {@link #WEIGHT_UPDATE_BAND_FLOATS} / K, so that
     * a band is still in cache when the optimizer reads it, and a weight of at most that size is one band
     * (smaller products would only lose speed). All N at once when bands would be so small that the
     * product of a half-height band takes SimdGemm's unpacked path (fewer than 12 rows or 512
     * multiply-adds), whose sums differ in the last bits from the whole product's.
     */
    public static long weightUpdateBandRows(long n, long k, long tokens) {
        long rows = Math.max(1, WEIGHT_UPDATE_BAND_FLOATS / Math.max(1, k));
        if (rows >= n || rows < 12 || rows / 2 * k * tokens < 512) {
            return n;
        }
        return rows;
    }

    /** Rows of W's gradient the fused head update computes and applies at a time (a tile of [V, C]). */
    public static final long HEAD_UPDATE_TILE_ROWS = 256;

    /**
     * Whether the fused head update holds every token's logits at once ({@code rows * vocab} within
     * {@link #HEAD_CHUNK_FLOATS}): then it computes W's gradient a tile of rows at a time and applies
     * each tile at once, and no [V, C] gradient exists. Otherwise it walks the tokens in chunks, which
     * needs the whole gradient summed over the chunks before W may change.
     */
    public static boolean headUpdatesByTile(long rows, long vocab) {
        return rows * vocab <= HEAD_CHUNK_FLOATS;
    }

    /** Scratch floats of {@code linear_cross_entropy_update}: the logits, then a gradient tile or the whole gradient. */
    public static long headUpdateWorkspaceFloats(long rows, long vocab, long width) {
        long logits = headChunkRows(rows, vocab) * vocab;
        return logits + (headUpdatesByTile(rows, vocab) ? Math.min(vocab, HEAD_UPDATE_TILE_ROWS) : vocab) * width;
    }

    /** Token rows per chunk of the fused head. */
    public static long headChunkRows(long rows, long vocab) {
        return Math.max(1, Math.min(rows, HEAD_CHUNK_FLOATS / vocab));
    }

    public static boolean known(String op) {
        return TABLE.containsKey(op);
    }

    public static List<Type> infer(String op, List<Value> inputs, Map<String, Object> attrs) {
        Entry e = TABLE.get(op);
        if (e == null) {
            throw new IllegalArgumentException("unknown op " + op);
        }
        if (inputs.size() < e.minInputs || inputs.size() > e.maxInputs) {
            throw new ShapeError(op + " takes " + e.minInputs + (e.maxInputs != e.minInputs ? "+" : "")
                    + " inputs, got " + inputs.size());
        }
        return e.rule.infer(inputs, attrs);
    }

    // ---- helpers --------------------------------------------------------------------------------

    private static List<Type> one(Shape s, DType t) {
        return List.of(new Type(s, t));
    }

    @SuppressWarnings("unchecked")
    public static Shape shapeAttr(Map<String, Object> attrs, String name) {
        var dims = new ArrayList<Dim>();
        for (Object o : (List<Object>) attrs.get(name)) {
            dims.add(o instanceof Number n ? Dim.of(n.longValue()) : Dim.parse(o.toString()));
        }
        return new Shape(dims);
    }

    public static List<String> shapeToAttr(Shape s) {
        return s.dims().stream().map(Dim::toString).toList();
    }

    private static Value rank(Value v, int rank, String what) {
        if (v.shape.rank() != rank) {
            throw new ShapeError(what + " must have rank " + rank + ", got " + v.shape);
        }
        return v;
    }

    private static Value ints(Value v, String what) {
        if (v.dtype != DType.I64) {
            throw new ShapeError(what + " must hold integers, got " + v.dtype.shortName() + " " + v.shape);
        }
        return v;
    }

    private static Value floats(Value v, String what) {
        if (v.dtype != DType.F32) {
            throw new ShapeError(what + " must hold floats, got " + v.dtype.shortName() + " " + v.shape);
        }
        return v;
    }

    /** An int tensor [B, T] with one entry per token of x [B, H, T, D]. */
    private static void perToken(Value v, Value x, String what) {
        ints(v, what);
        if (v.shape.rank() != 2 || !v.shape.dim(0).equals(x.shape.dim(0)) || !v.shape.dim(1).equals(x.shape.dim(2))) {
            throw new ShapeError(what + " " + v.shape + " must be [batch, tokens] of " + x.shape);
        }
    }

    private static void same(String op, Value a, Value b) {
        if (!a.shape.equals(b.shape)) {
            throw new ShapeError(op + ": shapes differ: " + a.shape + " and " + b.shape);
        }
    }

    private static void sameLeading(Value a, Value b, String op) {
        if (!a.shape.leading().numel().equals(b.shape.leading().numel())) {
            throw new ShapeError(op + ": leading dimensions differ: " + a.shape + " and " + b.shape);
        }
    }

    private static Shape norm(String op, Value x, Value w) {
        floats(x, "x");
        if (w.shape.rank() != 1 || !w.shape.dim(0).equals(x.shape.last())) {
            throw new ShapeError(op + ": weight " + w.shape + " does not match the last dimension of x " + x.shape);
        }
        return x.shape;
    }

    /** Suffix broadcasting: the smaller operand must equal the trailing dimensions of the larger. */
    private static Shape broadcast(String op, Value a, Value b) {
        floats(a, "left operand");
        floats(b, "right operand");
        if (a.shape.endsWith(b.shape)) {
            return a.shape;
        }
        if (b.shape.endsWith(a.shape)) {
            return b.shape;
        }
        throw new ShapeError("shape mismatch in '" + symbol(op) + "': " + a.shape + " and " + b.shape);
    }

    private static String symbol(String op) {
        return switch (op) {
            case "add" -> "+";
            case "sub" -> "-";
            case "mul" -> "*";
            default -> "/";
        };
    }

    /**
     * Checks {@code rotary_attention}'s operands: q [B, T, H*D], k and v [B, T, KV*D] with H and KV
     * from the attrs, KV dividing H, D even when rotating, and the optional int [B, T] positions and
     * segments that the attrs announce, starting at input {@code first}.
     */
    private static void rotaryAttention(String op, List<Value> in, int first, Map<String, Object> a) {
        Value q = floats(rank(in.get(0), 3, op + ": q"), op + ": q");
        Value k = floats(rank(in.get(1), 3, op + ": k"), op + ": k");
        Value v = floats(rank(in.get(2), 3, op + ": v"), op + ": v");
        long heads = ((Number) a.get("heads")).longValue();
        long kvHeads = ((Number) a.get("kv_heads")).longValue();
        Dim d = heads <= 0 ? null : q.shape.last().dividedBy(Dim.of(heads));
        if (d == null || !d.isConstant() || kvHeads <= 0 || heads % kvHeads != 0) {
            throw new ShapeError(op + ": q " + q.shape + " does not split into " + heads + " heads, a multiple of "
                    + kvHeads + " key/value heads");
        }
        if (!k.shape.equals(v.shape) || !k.shape.last().equals(Dim.of(kvHeads).times(d))
                || !k.shape.dim(0).equals(q.shape.dim(0)) || !k.shape.dim(1).equals(q.shape.dim(1))) {
            throw new ShapeError(op + ": k " + k.shape + " and v " + v.shape + " must be [batch, tokens, " + kvHeads
                    + " * " + d + "] of q " + q.shape);
        }
        if (Boolean.TRUE.equals(a.get("rotary")) && d.coeff() % 2 != 0) {
            throw new ShapeError(op + ": head dimension " + d + " must be even for the rotation");
        }
        int at = first;
        for (String optional : List.of("positions", "segments")) {
            if (Boolean.TRUE.equals(a.get(optional))) {
                if (at >= in.size()) {
                    throw new ShapeError(op + ": " + optional + " announced but missing");
                }
                Value ids = ints(in.get(at++), op + ": " + optional);
                if (ids.shape.rank() != 2 || !ids.shape.dim(0).equals(q.shape.dim(0))
                        || !ids.shape.dim(1).equals(q.shape.dim(1))) {
                    throw new ShapeError(op + ": " + optional + " " + ids.shape + " must be [batch, tokens] of " + q.shape);
                }
            }
        }
        if (at != in.size()) {
            throw new ShapeError(op + ": " + (in.size() - at) + " inputs more than the attrs announce");
        }
    }

    private static Shape attention(List<Value> in) {
        Value q = rank(in.get(0), 4, "q");
        Value k = rank(in.get(1), 4, "k");
        Value v = rank(in.get(2), 4, "v");
        if (!k.shape.equals(v.shape)) {
            throw new ShapeError("attention: k " + k.shape + " and v " + v.shape + " differ");
        }
        if (!q.shape.dim(0).equals(k.shape.dim(0)) || !q.shape.dim(2).equals(k.shape.dim(2))
                || !q.shape.dim(3).equals(k.shape.dim(3))) {
            throw new ShapeError("attention: q " + q.shape + " and k " + k.shape + " must agree in batch, sequence "
                    + "and head dimension");
        }
        Dim groups = q.shape.dim(1).dividedBy(k.shape.dim(1));
        if (groups == null || !groups.isConstant()) {
            throw new ShapeError("attention: " + q.shape.dim(1) + " query heads are not a multiple of "
                    + k.shape.dim(1) + " key/value heads");
        }
        return q.shape;
    }
}
