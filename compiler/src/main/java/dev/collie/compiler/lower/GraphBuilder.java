package dev.collie.compiler.lower;

import dev.collie.compiler.ir.Dim;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.ParamInfo;
import dev.collie.compiler.ir.Role;
import dev.collie.compiler.ir.Shape;
import dev.collie.compiler.ir.ShapeError;
import dev.collie.compiler.ir.Value;
import dev.collie.compiler.ops.OpRules;
import dev.collie.dsl.CollieException;
import dev.collie.dsl.Span;
import dev.collie.dsl.ast.Decl;
import dev.collie.dsl.ast.Expr;
import dev.collie.dsl.ast.Stmt;
import dev.collie.dsl.sema.ArgBinder;
import dev.collie.dsl.sema.Builtins;
import dev.collie.dsl.sema.ConstEvaluator;
import dev.collie.dsl.sema.ResolvedModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Lowers a model with fixed hyper-parameters to the forward graph: parameter nodes (in declaration
 * order, repeated blocks expanded layer by layer), then the forward body with every block call
 * inlined. Shapes are checked here, op by op, and a mismatch is reported at the source position of
 * the expression with both shapes. B and T stay symbols.
 */
public final class GraphBuilder {

    private final ResolvedModel model;
    private final Graph graph = new Graph();
    private final String fileLabel;
    /** Parameters of the model level, by source name; absent when their `if` condition is false. */
    private final Map<String, Value> topParams = new HashMap<>();
    private final Map<String, Decl.Param> topDecls = new HashMap<>();
    /** blockName -> per repetition -> param name -> value. */
    private final Map<String, List<Map<String, Value>>> blockParams = new HashMap<>();

    private GraphBuilder(ResolvedModel model) {
        this.model = model;
        Path p = Path.of(model.file().source().name());
        this.fileLabel = p.getFileName() == null ? p.toString() : p.getFileName().toString();
    }

    public static Graph build(ResolvedModel model) {
        try {
            return new GraphBuilder(model).run();
        } catch (CollieException e) {
            throw e.withSource(model.file().source());
        }
    }

    private Graph run() {
        declareParams();
        Decl.Forward f = model.file().forward();
        Map<String, Object> env = new LinkedHashMap<>(constants(null, -1));
        topParams.forEach(env::put);
        Map<String, Dim> dims = new HashMap<>();
        for (Decl.Formal formal : f.formals()) {
            var shape = new ArrayList<Dim>();
            for (Expr d : formal.shape()) {
                if (d instanceof Expr.Name n && !env.containsKey(n.name())) {
                    dims.putIfAbsent(n.name(), Dim.symbol(n.name()));
                    shape.add(dims.get(n.name()));
                } else {
                    shape.add(Dim.of(evaluator(env).evalInt(d)));
                }
            }
            Map<String, Object> attrs = new LinkedHashMap<>();
            attrs.put("name", formal.name());
            attrs.put("shape", OpRules.shapeToAttr(new Shape(shape)));
            attrs.put("dtype", formal.integer() ? "i64" : "f32");
            env.put(formal.name(), graph.apply("input", List.of(), attrs, Role.FORWARD, origin(formal.span())).out());
        }
        dims.forEach(env::put);
        for (Stmt s : f.body()) {
            switch (s) {
                case Stmt.Let l -> bindLet(l, env);
                case Stmt.Output o -> graph.outputs.put(o.name(), (Value) env.get(o.name()));
                case Stmt.Loss l -> {
                    Value loss = tensor(l.value(), env);
                    if (loss.shape.rank() != 0) {
                        throw CollieException.at(l.value().span(), "the loss must be a scalar, got shape " + loss.shape);
                    }
                    graph.outputs.put("loss", loss);
                }
                case Stmt.Return r -> throw new IllegalStateException("checked by ModelChecker");
            }
        }
        return graph;
    }

    // ---- parameters -----------------------------------------------------------------------------

    private void declareParams() {
        record Site(Span span, Decl.Param param, Decl.Block block) {}
        var sites = new ArrayList<Site>();
        model.file().params().forEach(p -> sites.add(new Site(p.span(), p, null)));
        model.file().blocks().forEach(b -> sites.add(new Site(b.span(), null, b)));
        sites.sort(Comparator.comparingInt((Site s) -> s.span.line()).thenComparingInt(s -> s.span.col()));
        for (Site site : sites) {
            if (site.param != null) {
                topDecls.put(site.param.name(), site.param);
                Value v = declareParam(site.param, site.param.name(), constants(null, -1), null);
                if (v != null) {
                    topParams.put(site.param.name(), v);
                }
                continue;
            }
            Decl.Block b = site.block;
            long n = b.repeat() == null ? 1 : model.evaluator().evalInt(b.repeat());
            var layers = new ArrayList<Map<String, Value>>();
            for (int i = 0; i < n; i++) {
                Map<String, Object> consts = constants(b, b.repeat() == null ? -1 : i);
                Map<String, Value> mine = new LinkedHashMap<>();
                for (Decl.Param p : b.params()) {
                    String name = b.repeat() == null ? b.name() + "." + p.name() : b.name() + "." + i + "." + p.name();
                    Value v = declareParam(p, name, consts, b.repeat() == null ? null : (long) i);
                    if (v != null) {
                        mine.put(p.name(), v);
                    }
                }
                layers.add(mine);
            }
            blockParams.put(b.name(), layers);
        }
        var ckptNames = new HashMap<String, String>();
        for (ParamInfo p : graph.params) {
            String before = ckptNames.put(p.checkpointName(), p.name());
            if (before != null) {
                throw CollieException.at(spanOf(p), "checkpoint name \"" + p.checkpointName() + "\" is used by both '"
                        + before + "' and '" + p.name() + "'");
            }
        }
    }

    private Span spanOf(ParamInfo p) {
        String[] parts = p.declaredAt().split(":");
        return new Span(model.file().source().name(), Integer.parseInt(parts[parts.length - 2]),
                Integer.parseInt(parts[parts.length - 1]), p.name().length());
    }

    private Value declareParam(Decl.Param p, String name, Map<String, Object> consts, Long layer) {
        ConstEvaluator eval = evaluator(consts);
        if (p.condition() != null && !eval.evalBool(p.condition())) {
            return null;
        }
        var dims = new ArrayList<Dim>();
        for (Expr d : p.shape()) {
            long v = eval.evalInt(d);
            if (v <= 0) {
                throw CollieException.at(d.span(), "dimension of parameter '" + p.name() + "' must be positive, got " + v);
            }
            dims.add(Dim.of(v));
        }
        Shape shape = new Shape(dims);
        try {
            Math.multiplyExact(shape.numel().coeff(), 4L);
        } catch (ArithmeticException e) {
            throw CollieException.at(p.span(), "parameter '" + p.name() + "' is too large: " + shape);
        }
        if (p.storedTransposed() && shape.rank() != 2) {
            throw CollieException.at(p.span(), "only a matrix can be stored transposed; '" + p.name() + "' has shape "
                    + shape);
        }
        ParamInfo.Init init = new ParamInfo.Init("normal", List.of(0.02));
        if (p.init() != null) {
            init = new ParamInfo.Init(p.init().kind(), p.init().args().stream().map(eval::evalFloat).toList());
        }
        String ckpt = p.checkpointName() == null ? name : p.checkpointName();
        if (layer != null) {
            ckpt = ckpt.replaceAll("\\{[^}]*}", Long.toString(layer));
        }
        int index = graph.params.size();
        graph.params.add(new ParamInfo(name, ckpt, shape, init, p.storedTransposed(), origin(p.span())));
        Map<String, Object> attrs = new LinkedHashMap<>();
        attrs.put("index", index);
        attrs.put("name", name);
        attrs.put("shape", OpRules.shapeToAttr(shape));
        return graph.apply("param", List.of(), attrs, Role.FORWARD, origin(p.span())).out();
    }

    /** Hyper-parameters and lets (and, inside a block, its index and lets) as Java values. */
    private Map<String, Object> constants(Decl.Block block, long index) {
        Map<String, Object> out = new LinkedHashMap<>();
        model.constants().forEach((k, v) -> out.put(k, v.toJava()));
        if (block != null) {
            if (block.indexName() != null && index >= 0) {
                out.put(block.indexName(), index);
            }
            for (Decl.Let l : block.lets()) {
                out.put(l.name(), evaluator(out).eval(l.value()).toJava());
            }
        }
        return out;
    }

    private ConstEvaluator evaluator(Map<String, Object> env) {
        return new ConstEvaluator(name -> {
            Object o = env.get(name);
            return o instanceof Long || o instanceof Double || o instanceof Boolean || o instanceof String
                    ? dev.collie.dsl.sema.Value.of(o) : null;
        }, model.parallel());
    }

    // ---- forward bodies -------------------------------------------------------------------------

    private void bindLet(Stmt.Let l, Map<String, Object> env) {
        Object v = eval(l.value(), env);
        if (l.names().size() == 1) {
            env.put(l.names().getFirst(), v);
            return;
        }
        @SuppressWarnings("unchecked")
        List<Value> parts = (List<Value>) v;
        if (parts.size() != l.names().size()) {
            throw CollieException.at(l.span(), "split makes " + parts.size() + " parts, but " + l.names().size()
                    + " names receive them");
        }
        for (int i = 0; i < parts.size(); i++) {
            env.put(l.names().get(i), parts.get(i));
        }
    }

    private Value callBlock(Decl.Block b, Expr.Call call, Map<String, Object> env) {
        var args = new ArrayList<Value>();
        for (Expr.Arg a : call.args()) {
            args.add(tensor(a.value(), env));
        }
        List<Map<String, Value>> layers = blockParams.get(b.name());
        Value carried = args.getFirst();
        for (int i = 0; i < layers.size(); i++) {
            Map<String, Object> local = new LinkedHashMap<>(constants(b, b.repeat() == null ? -1 : i));
            topParams.forEach(local::put);
            local.putAll(layers.get(i));
            Map<String, Dim> dims = new HashMap<>();
            for (int k = 0; k < b.forward().formals().size(); k++) {
                Decl.Formal formal = b.forward().formals().get(k);
                Value actual = k == 0 ? carried : args.get(k);
                checkShape(call.args().get(k).span(), "input '" + formal.name() + "' of block '" + b.name() + "'",
                        formal.shape(), actual, local, dims);
                local.put(formal.name(), actual);
            }
            dims.forEach(local::put);
            Value result = null;
            String outer = graph.scope;
            graph.scope = b.name() + "[" + i + "]";
            for (Stmt s : b.forward().body()) {
                switch (s) {
                    case Stmt.Let l -> bindLet(l, local);
                    case Stmt.Return r -> result = tensor(r.value(), local);
                    default -> throw new IllegalStateException("checked by ModelChecker");
                }
            }
            graph.scope = outer;
            if (b.forward().resultShape() != null) {
                checkShape(b.forward().span(), "result of block '" + b.name() + "'", b.forward().resultShape(), result,
                        local, dims);
            }
            if (!result.shape.equals(carried.shape) && layers.size() > 1) {
                throw CollieException.at(b.forward().span(), "repeated block '" + b.name() + "' must return its input's "
                        + "shape " + carried.shape + ", got " + result.shape);
            }
            carried = result;
        }
        return carried;
    }

    private void checkShape(Span at, String what, List<Expr> declared, Value actual, Map<String, Object> env,
                            Map<String, Dim> dims) {
        if (declared.size() != actual.shape.rank()) {
            throw CollieException.at(at, what + " must have rank " + declared.size() + ", got shape " + actual.shape);
        }
        for (int i = 0; i < declared.size(); i++) {
            Expr d = declared.get(i);
            Dim have = actual.shape.dim(i);
            Dim want;
            if (d instanceof Expr.Name n && !(env.get(n.name()) instanceof Long)) {
                want = dims.computeIfAbsent(n.name(), k -> env.get(k) instanceof Dim bound ? bound : have);
            } else {
                want = Dim.of(evaluator(env).evalInt(d));
            }
            if (!want.equals(have)) {
                throw CollieException.at(at, what + " has shape " + actual.shape + ", expected " + describe(declared, env,
                        dims) + " (dimension " + i + " is " + have + ", not " + want + ")");
            }
        }
    }

    private String describe(List<Expr> declared, Map<String, Object> env, Map<String, Dim> dims) {
        var parts = new ArrayList<String>();
        for (Expr d : declared) {
            if (d instanceof Expr.Name n && dims.containsKey(n.name())) {
                parts.add(dims.get(n.name()).toString());
            } else if (d instanceof Expr.Name n && !(env.get(n.name()) instanceof Long)) {
                parts.add(n.name());
            } else {
                parts.add(Long.toString(evaluator(env).evalInt(d)));
            }
        }
        return parts.toString();
    }

    private Value tensor(Expr e, Map<String, Object> env) {
        Object v = eval(e, env);
        if (v instanceof Value t) {
            return t;
        }
        throw CollieException.at(e.span(), "expected a tensor here, got " + describeValue(v));
    }

    private static String describeValue(Object v) {
        return switch (v) {
            case Long l -> "the int " + l;
            case Double d -> "the float " + d;
            case Boolean b -> "the bool " + b;
            case List<?> l -> l.size() + " tensors";
            default -> String.valueOf(v);
        };
    }

    private boolean isConstant(Expr e, Map<String, Object> env) {
        return switch (e) {
            case Expr.Name n -> {
                Object o = env.get(n.name());
                yield o instanceof Long || o instanceof Double || o instanceof Boolean || o instanceof String;
            }
            case Expr.Unary u -> isConstant(u.operand(), env);
            case Expr.Binary b -> isConstant(b.left(), env) && isConstant(b.right(), env);
            case Expr.If i -> isConstant(i.condition(), env) && isConstant(i.then(), env) && isConstant(i.otherwise(), env);
            case Expr.Call c -> false;
            default -> true;
        };
    }

    private Object eval(Expr e, Map<String, Object> env) {
        if (isConstant(e, env)) {
            return evaluator(env).eval(e).toJava();
        }
        return switch (e) {
            case Expr.Name n -> {
                Object v = env.get(n.name());
                if (v == null) {
                    Decl.Param absent = topDecls.get(n.name());
                    if (absent != null) {
                        throw CollieException.at(n.span(), "parameter '" + n.name() + "' is not present with these "
                                + "hyper-parameters (its 'if' condition is false)");
                    }
                    throw CollieException.at(n.span(), "unknown name '" + n.name() + "'");
                }
                yield v;
            }
            case Expr.If i -> evaluator(env).evalBool(i.condition()) ? eval(i.then(), env) : eval(i.otherwise(), env);
            case Expr.Unary u -> {
                if (!u.op().equals("-")) {
                    throw CollieException.at(u.span(), "'!' needs a bool, not a tensor");
                }
                yield op(u.span(), "mul_scalar", List.of(tensor(u.operand(), env)), Map.of("value", -1.0));
            }
            case Expr.Binary b -> binary(b, env);
            case Expr.Call c -> call(c, env);
            default -> throw CollieException.at(e.span(), "unexpected expression");
        };
    }

    private Object binary(Expr.Binary b, Map<String, Object> env) {
        Object l = eval(b.left(), env);
        Object r = eval(b.right(), env);
        String op = switch (b.op()) {
            case "+" -> "add";
            case "-" -> "sub";
            case "*" -> "mul";
            case "/" -> "div";
            default -> throw CollieException.at(b.span(), "operator '" + b.op() + "' is not defined on tensors");
        };
        if (l instanceof Value lt && r instanceof Value rt) {
            return op(b.span(), op, List.of(lt, rt), Map.of());
        }
        if (l instanceof Value lt && r instanceof Number n) {
            double c = n.doubleValue();
            return switch (op) {
                case "add" -> op(b.span(), "add_scalar", List.of(lt), Map.of("value", c));
                case "sub" -> op(b.span(), "add_scalar", List.of(lt), Map.of("value", -c));
                case "mul" -> op(b.span(), "mul_scalar", List.of(lt), Map.of("value", c));
                default -> op(b.span(), "div_scalar", List.of(lt), Map.of("value", c));
            };
        }
        if (l instanceof Number n && r instanceof Value rt) {
            double c = n.doubleValue();
            return switch (op) {
                case "add" -> op(b.span(), "add_scalar", List.of(rt), Map.of("value", c));
                case "mul" -> op(b.span(), "mul_scalar", List.of(rt), Map.of("value", c));
                case "sub" -> op(b.span(), "add_scalar",
                        List.of(op(b.span(), "mul_scalar", List.of(rt), Map.of("value", -1.0))), Map.of("value", c));
                default -> throw CollieException.at(b.span(), "dividing a number by a tensor is not supported");
            };
        }
        throw CollieException.at(b.span(), "cannot apply '" + b.op() + "' to " + describeValue(l) + " and "
                + describeValue(r));
    }

    private Object call(Expr.Call c, Map<String, Object> env) {
        for (Decl.Block b : model.file().blocks()) {
            if (b.name().equals(c.callee())) {
                return callBlock(b, c, env);
            }
        }
        Builtins.Signature sig = Builtins.get(c.callee());
        ArgBinder.Bound args = ArgBinder.bind(sig, c);
        Span at = c.calleeSpan();
        return switch (c.callee()) {
            case "embedding" -> op(at, "embedding", List.of(tensor(args.get("ids"), env), tensor(args.get("table"), env)),
                    Map.of());
            case "linear" -> {
                Value y = op(at, "linear", List.of(tensor(args.get("x"), env), tensor(args.get("weight"), env)), Map.of());
                yield args.get("bias") == null ? y : op(at, "add", List.of(y, tensor(args.get("bias"), env)), Map.of());
            }
            case "matmul" -> op(at, "matmul", List.of(tensor(args.get("a"), env), tensor(args.get("b"), env)), Map.of());
            case "rms_norm" -> op(at, "rms_norm", List.of(tensor(args.get("x"), env), tensor(args.get("weight"), env)),
                    Map.of("eps", floatArg(args.get("eps"), env)));
            case "layer_norm" -> op(at, "layer_norm", List.of(tensor(args.get("x"), env),
                    tensor(args.get("weight"), env), tensor(args.get("bias"), env)),
                    Map.of("eps", floatArg(args.get("eps"), env)));
            case "rope" -> op(at, "rope", withOptional(List.of(tensor(args.get("x"), env)), args.get("positions"), env),
                    Map.of("theta", args.get("theta") == null ? 10000.0 : floatArg(args.get("theta"), env),
                            "inverse", false));
            case "attention" -> {
                Value q = tensor(args.get("q"), env);
                boolean causal = args.get("causal") == null || evaluator(env).evalBool(args.get("causal"));
                double scale = q.shape.rank() == 4 && q.shape.last().isConstant()
                        ? 1.0 / Math.sqrt(q.shape.last().coeff()) : 1.0;
                yield op(at, "attention", withOptional(List.of(q, tensor(args.get("k"), env), tensor(args.get("v"), env)),
                        args.get("segments"), env), Map.of("causal", causal, "scale", scale));
            }
            case "silu", "relu", "tanh", "exp", "softmax" -> op(at, c.callee(), List.of(tensor(args.get("x"), env)),
                    Map.of());
            case "gelu" -> op(at, "gelu_tanh", List.of(tensor(args.get("x"), env)), Map.of());
            case "split_heads" -> op(at, "split_heads", List.of(tensor(args.get("x"), env)),
                    Map.of("heads", intArg(args.get("heads"), env)));
            case "merge_heads" -> op(at, "merge_heads", List.of(tensor(args.get("x"), env)), Map.of());
            case "reshape" -> reshape(at, tensor(args.get("x"), env), args.rest(), env);
            case "split" -> split(at, tensor(args.get("x"), env), intArg(args.get("parts"), env));
            case "cross_entropy" -> op(at, "cross_entropy", List.of(tensor(args.get("logits"), env),
                    tensor(args.get("targets"), env)), Map.of("ignore_index",
                    args.get("ignore_index") == null ? -100L : intArg(args.get("ignore_index"), env)));
            case "shift_left" -> op(at, "shift_left", List.of(tensor(args.get("labels"), env)),
                    Map.of("fill", args.get("fill") == null ? -100L : intArg(args.get("fill"), env)));
            case "positions" -> op(at, "positions", List.of(tensor(args.get("ids"), env)), Map.of());
            default -> throw new IllegalStateException("builtin without lowering: " + c.callee());
        };
    }

    private List<Value> withOptional(List<Value> inputs, Expr optional, Map<String, Object> env) {
        if (optional == null) {
            return inputs;
        }
        var all = new ArrayList<>(inputs);
        all.add(tensor(optional, env));
        return all;
    }

    private List<Value> split(Span at, Value x, long parts) {
        try {
            return graph.apply("split", List.of(x), Map.of("parts", parts), Role.FORWARD, origin(at)).outputs;
        } catch (ShapeError e) {
            throw CollieException.at(at, e.getMessage());
        }
    }

    private Value reshape(Span at, Value x, List<Expr> dimExprs, Map<String, Object> env) {
        var dims = new ArrayList<Dim>();
        int infer = -1;
        for (int i = 0; i < dimExprs.size(); i++) {
            Object d = eval(dimExprs.get(i), env);
            if (d instanceof Dim sym) {
                dims.add(sym);
            } else if (d instanceof Long l && l == -1 && infer < 0) {
                infer = i;
                dims.add(Dim.of(1));
            } else if (d instanceof Long l && l > 0) {
                dims.add(Dim.of(l));
            } else {
                throw CollieException.at(dimExprs.get(i).span(), "reshape dimension must be positive, a batch symbol, "
                        + "or one -1; got " + describeValue(d));
            }
        }
        if (infer >= 0) {
            Dim rest = x.shape.numel().dividedBy(new Shape(dims).numel());
            if (rest == null) {
                throw CollieException.at(at, "reshape: cannot infer -1: " + x.shape + " does not divide by " + dims);
            }
            dims.set(infer, rest);
        }
        return op(at, "reshape", List.of(x), Map.of("shape", OpRules.shapeToAttr(new Shape(dims))));
    }

    private double floatArg(Expr e, Map<String, Object> env) {
        return evaluator(env).evalFloat(e);
    }

    private long intArg(Expr e, Map<String, Object> env) {
        return evaluator(env).evalInt(e);
    }

    private Value op(Span at, String op, List<Value> inputs, Map<String, Object> attrs) {
        try {
            return graph.apply(op, inputs, new LinkedHashMap<>(attrs), Role.FORWARD, origin(at)).out();
        } catch (ShapeError e) {
            throw CollieException.at(at, e.getMessage());
        }
    }

    private String origin(Span s) {
        return fileLabel + ":" + s.line() + ":" + s.col();
    }

}
