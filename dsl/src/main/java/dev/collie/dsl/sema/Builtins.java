package dev.collie.dsl.sema;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Signatures of the built-in ops a forward body may call: parameter names, kinds and defaults.
 * The language owns the signatures; what each op computes (shapes, kernels, gradients) is defined by
 * the compiler's op table, which lowers every builtin listed here.
 */
public final class Builtins {

    /** The kind of an argument or result, checked before any shape is known. */
    public enum Kind {
        TENSOR, INT, FLOAT, BOOL, STRING, TUPLE, BLOCK, DIM;

        public boolean accepts(Kind actual) {
            return this == actual || (this == FLOAT && actual == INT) || (this == DIM && actual == INT);
        }

        public String article() {
            return switch (this) {
                case INT -> "an int";
                case TENSOR -> "a tensor";
                default -> "a " + name().toLowerCase();
            };
        }
    }

    /** One parameter; {@code defaultValue} null means required; {@code variadic} takes all remaining positionals. */
    public record ParamSpec(String name, Kind kind, Object defaultValue, boolean optional, boolean variadic) {}

    public record Signature(String name, List<ParamSpec> params, Kind result, String doc) {
        public int required() {
            return (int) params.stream().filter(p -> p.defaultValue == null && !p.optional && !p.variadic).count();
        }
    }

    private static final Map<String, Signature> TABLE = new LinkedHashMap<>();

    private static ParamSpec t(String name) {
        return new ParamSpec(name, Kind.TENSOR, null, false, false);
    }

    private static ParamSpec opt(String name) {
        return new ParamSpec(name, Kind.TENSOR, null, true, false);
    }

    private static ParamSpec c(String name, Kind kind) {
        return new ParamSpec(name, kind, null, false, false);
    }

    private static ParamSpec c(String name, Kind kind, Object dflt) {
        return new ParamSpec(name, kind, dflt, false, false);
    }

    private static void def(String name, Kind result, String doc, ParamSpec... params) {
        TABLE.put(name, new Signature(name, List.of(params), result, doc));
    }

    static {
        def("embedding", Kind.TENSOR, "rows of table [V, C] picked by integer ids [..] -> [.., C]", t("ids"), t("table"));
        def("linear", Kind.TENSOR, "x [.., K] times weight [N, K] transposed, plus optional bias [N] -> [.., N]",
                t("x"), t("weight"), opt("bias"));
        def("matmul", Kind.TENSOR, "a [.., K] times b [K, N] -> [.., N]", t("a"), t("b"));
        def("rms_norm", Kind.TENSOR, "weight * x / sqrt(mean(x^2) + eps) over the last axis",
                t("x"), t("weight"), c("eps", Kind.FLOAT));
        def("layer_norm", Kind.TENSOR, "(x - mean) / sqrt(var + eps) * weight + bias over the last axis",
                t("x"), t("weight"), t("bias"), c("eps", Kind.FLOAT));
        def("rope", Kind.TENSOR, "rotary position embedding of x [B, H, T, D], Hugging Face rotate_half convention; "
                + "positions [B, T] (default 0..T-1)", t("x"), c("theta", Kind.FLOAT, 10000.0), opt("positions"));
        def("attention", Kind.TENSOR, "softmax(q k^T / sqrt(D) + mask) v; q [B, H, T, D], k and v [B, KV, T, D]; "
                + "with segments [B, T] a token attends only within its segment (packed examples)",
                t("q"), t("k"), t("v"), c("causal", Kind.BOOL, true), opt("segments"));
        def("silu", Kind.TENSOR, "x * sigmoid(x)", t("x"));
        def("gelu", Kind.TENSOR, "GELU, tanh approximation (gelu_new)", t("x"));
        def("relu", Kind.TENSOR, "max(x, 0)", t("x"));
        def("tanh", Kind.TENSOR, "hyperbolic tangent", t("x"));
        def("exp", Kind.TENSOR, "e^x", t("x"));
        def("softmax", Kind.TENSOR, "softmax over the last axis", t("x"));
        def("split_heads", Kind.TENSOR, "[B, T, H*D] -> [B, H, T, D]", t("x"), c("heads", Kind.INT));
        def("merge_heads", Kind.TENSOR, "[B, H, T, D] -> [B, T, H*D]", t("x"));
        def("reshape", Kind.TENSOR, "same elements, new shape (one dim may be -1)", t("x"),
                new ParamSpec("dims", Kind.DIM, null, false, true));
        def("split", Kind.TUPLE, "split the last axis into equal parts: let a, b, c = split(x, 3)",
                t("x"), c("parts", Kind.INT));
        def("cross_entropy", Kind.TENSOR, "mean cross-entropy of logits [.., V] against integer targets [..]",
                t("logits"), t("targets"), c("ignore_index", Kind.INT, -100L));
        def("positions", Kind.TENSOR, "integer positions 0..T-1 of ids [.., T] -> [T]", t("ids"));
        def("shift_left", Kind.TENSOR, "targets[.., t+1] at position t; the last position gets fill",
                t("labels"), c("fill", Kind.INT, -100L));
    }

    private Builtins() {}

    public static Signature get(String name) {
        return TABLE.get(name);
    }

    public static Map<String, Signature> all() {
        return java.util.Collections.unmodifiableMap(TABLE);
    }
}
