package dev.collie.dsl.sema;

import dev.collie.dsl.CollieException;
import dev.collie.dsl.Span;
import dev.collie.dsl.ast.Decl;
import dev.collie.dsl.ast.Expr;
import dev.collie.dsl.ast.ModelFile;
import dev.collie.dsl.ast.Stmt;
import dev.collie.dsl.sema.Builtins.Kind;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Checks that hold whatever the hyper-parameter values: every name resolves, nothing is declared
 * twice, each call has the right number and kinds of arguments, blocks return and the model
 * defines a loss. Shapes are checked later, for concrete values, by the compiler's graph builder.
 */
public final class ModelChecker {

    public static final Set<String> INIT_KINDS = Set.of("normal", "uniform", "zeros", "ones", "constant");
    private static final Pattern PLACEHOLDER = Pattern.compile("\\{([^}]*)}");

    private final ModelFile file;
    private final Map<String, Span> constants = new LinkedHashMap<>();
    private final Map<String, Kind> constantKinds = new HashMap<>();
    private final Map<String, Span> topParams = new LinkedHashMap<>();
    private final Map<String, Decl.Block> blocks = new LinkedHashMap<>();

    private ModelChecker(ModelFile file) {
        this.file = file;
    }

    public static void check(ModelFile file) {
        try {
            new ModelChecker(file).run();
        } catch (CollieException e) {
            throw e.withSource(file.source());
        }
    }

    private void run() {
        for (Decl.Hyper h : file.hypers()) {
            declare(constants, h.name(), h.span(), "hyper-parameter");
            checkConstExpr(h.defaultValue(), Set.copyOf(constants.keySet()), h.name());
            constantKinds.put(h.name(), Kind.valueOf(h.type().name()));
        }
        for (Decl.Let l : file.lets()) {
            declare(constants, l.name(), l.span(), "constant");
            checkConstExpr(l.value(), Set.copyOf(constants.keySet()), l.name());
            constantKinds.put(l.name(), kind(l.value(), constantKinds));
        }
        Set<String> hyperNames = new HashSet<>();
        file.hypers().forEach(h -> hyperNames.add(h.name()));
        Map<String, Span> presets = new HashMap<>();
        for (Decl.Preset p : file.presets()) {
            declare(presets, p.name(), p.span(), "preset");
            Map<String, Span> seen = new HashMap<>();
            for (Decl.Assign a : p.assigns()) {
                if (!hyperNames.contains(a.name())) {
                    throw CollieException.at(a.span(), "preset '" + p.name() + "' sets '" + a.name()
                            + "', which is not a hyper-parameter" + suggest(a.name(), hyperNames));
                }
                declare(seen, a.name(), a.span(), "setting");
                checkConstExpr(a.value(), constants.keySet(), null);
            }
        }
        Map<String, Span> configKeys = new HashMap<>();
        for (Decl.ConfigKey c : file.config()) {
            if (!hyperNames.contains(c.hyper())) {
                throw CollieException.at(c.span(), "config maps \"" + c.key() + "\" to '" + c.hyper()
                        + "', which is not a hyper-parameter" + suggest(c.hyper(), hyperNames));
            }
            declare(configKeys, c.hyper(), c.span(), "config entry");
        }
        for (Decl.Require r : file.requires()) {
            checkConstExpr(r.condition(), constants.keySet(), null);
        }
        if (file.parallel() != null) {
            for (Decl.Setting s : file.parallel().settings()) {
                checkConstExpr(s.value(), constants.keySet(), null);
            }
        }
        if (file.train() != null) {
            for (Decl.Setting s : file.train().settings()) {
                checkConstExpr(s.value(), constants.keySet(), null);
            }
        }
        for (Decl.Param p : file.params()) {
            declare(topParams, p.name(), p.span(), "parameter");
            checkParam(p, constants.keySet(), null);
        }
        for (Decl.Block b : file.blocks()) {
            if (blocks.containsKey(b.name()) || topParams.containsKey(b.name()) || constants.containsKey(b.name())) {
                throw CollieException.at(b.span(), "'" + b.name() + "' is already declared");
            }
            if (Builtins.get(b.name()) != null) {
                throw CollieException.at(b.span(), "block '" + b.name() + "' has the name of a built-in op");
            }
            blocks.put(b.name(), b);
        }
        for (Decl.Block b : file.blocks()) {
            checkBlock(b);
        }
        if (file.forward() == null) {
            throw CollieException.at(file.span(), "model '" + file.modelName() + "' has no forward");
        }
        checkForward(file.forward(), new LinkedHashMap<>(topParams), null);
    }

    private void checkBlock(Decl.Block b) {
        Set<String> consts = new HashSet<>(constants.keySet());
        if (b.repeat() != null) {
            checkConstExpr(b.repeat(), constants.keySet(), null);
            if (b.indexName() != null) {
                if (consts.contains(b.indexName())) {
                    throw CollieException.at(b.span(), "block index '" + b.indexName() + "' hides a constant");
                }
                consts.add(b.indexName());
            }
        }
        Map<String, Kind> blockKinds = blockConstantKinds(b);
        for (Decl.Let l : b.lets()) {
            if (consts.contains(l.name())) {
                throw CollieException.at(l.span(), "'" + l.name() + "' is already declared");
            }
            checkConstExpr(l.value(), consts, l.name());
            consts.add(l.name());
            blockKinds.put(l.name(), kind(l.value(), blockKinds));
        }
        Map<String, Span> params = new LinkedHashMap<>(topParams);
        for (Decl.Param p : b.params()) {
            declare(params, p.name(), p.span(), "parameter");
            checkParam(p, consts, b);
        }
        checkForward(b.forward(), params, b);
    }

    private void checkParam(Decl.Param p, Set<String> consts, Decl.Block block) {
        for (Expr d : p.shape()) {
            checkConstExpr(d, consts, null);
        }
        if (p.init() != null) {
            if (!INIT_KINDS.contains(p.init().kind())) {
                throw CollieException.at(p.init().span(), "unknown initialiser '" + p.init().kind() + "' (known: "
                        + String.join(", ", INIT_KINDS.stream().sorted().toList()) + ")");
            }
            int arity = switch (p.init().kind()) {
                case "normal" -> -1;
                case "uniform" -> 2;
                case "constant" -> 1;
                default -> 0;
            };
            int n = p.init().args().size();
            if (arity >= 0 ? n != arity : (n < 1 || n > 2)) {
                throw CollieException.at(p.init().span(), "initialiser '" + p.init().kind() + "' takes "
                        + (arity >= 0 ? arity : "1 or 2 (std, mean)") + " argument" + (arity == 1 ? "" : "s")
                        + ", got " + n);
            }
            p.init().args().forEach(a -> checkConstExpr(a, consts, null));
        }
        if (p.condition() != null) {
            checkConstExpr(p.condition(), consts, null);
        }
        if (p.checkpointName() != null) {
            Matcher m = PLACEHOLDER.matcher(p.checkpointName());
            while (m.find()) {
                String name = m.group(1);
                if (block == null || block.indexName() == null || !block.indexName().equals(name)) {
                    throw CollieException.at(p.checkpointSpan(), "checkpoint name uses '{" + name + "}', but "
                            + (block == null || block.indexName() == null ? "this parameter is not in a repeated block"
                            : "the block index is '" + block.indexName() + "'"));
                }
            }
            if (block != null && block.repeat() != null && !p.checkpointName().contains("{" + block.indexName() + "}")) {
                throw CollieException.at(p.checkpointSpan(), "checkpoint name of a parameter in repeated block '"
                        + block.name() + "' must contain '{" + block.indexName() + "}' so each layer has its own tensor");
            }
        }
    }

    private void checkConstExpr(Expr e, Set<String> known, String defining) {
        switch (e) {
            case Expr.Name n -> {
                if (!known.contains(n.name())) {
                    if (n.name().equals(defining)) {
                        throw CollieException.at(n.span(), "'" + n.name() + "' is defined in terms of itself");
                    }
                    boolean later = constants.containsKey(n.name()) || file.hypers().stream()
                            .anyMatch(h -> h.name().equals(n.name())) || file.lets().stream()
                            .anyMatch(l -> l.name().equals(n.name()));
                    throw CollieException.at(n.span(), later
                            ? "'" + n.name() + "' is used before it is declared"
                            : "unknown name '" + n.name() + "'" + suggest(n.name(), known));
                }
            }
            case Expr.Unary u -> checkConstExpr(u.operand(), known, defining);
            case Expr.Binary b -> {
                checkConstExpr(b.left(), known, defining);
                checkConstExpr(b.right(), known, defining);
            }
            case Expr.If i -> {
                checkConstExpr(i.condition(), known, defining);
                checkConstExpr(i.then(), known, defining);
                checkConstExpr(i.otherwise(), known, defining);
            }
            case Expr.Call c -> throw CollieException.at(c.span(), "'" + c.callee()
                    + "(...)' is not allowed in a constant expression");
            default -> { }
        }
    }

    // ---- forward bodies -------------------------------------------------------------------------

    private void checkForward(Decl.Forward f, Map<String, Span> params, Decl.Block block) {
        Map<String, Kind> scope = block == null ? new HashMap<>(constantKinds) : blockConstantKinds(block);
        if (block != null) {
            for (Decl.Let l : block.lets()) {
                scope.put(l.name(), kind(l.value(), scope));
            }
        }
        Set<String> consts = new HashSet<>(scope.keySet());
        params.keySet().forEach(p -> scope.put(p, Kind.TENSOR));
        for (Decl.Formal formal : f.formals()) {
            for (Expr d : formal.shape()) {
                if (d instanceof Expr.Name n && !consts.contains(n.name())) {
                    if (scope.get(n.name()) == Kind.TENSOR) {
                        throw CollieException.at(n.span(), "'" + n.name() + "' names a tensor, not a dimension");
                    }
                    scope.put(n.name(), Kind.DIM);
                } else {
                    checkConstExpr(d, consts, null);
                }
            }
            if (scope.get(formal.name()) == Kind.TENSOR && params.containsKey(formal.name())) {
                throw CollieException.at(formal.span(), "input '" + formal.name() + "' hides parameter '"
                        + formal.name() + "'");
            }
            scope.put(formal.name(), Kind.TENSOR);
        }
        if (f.resultShape() != null) {
            for (Expr d : f.resultShape()) {
                if (!(d instanceof Expr.Name n && scope.get(n.name()) == Kind.DIM)) {
                    checkConstExpr(d, consts, null);
                }
            }
        }
        boolean sawLoss = false;
        boolean sawReturn = false;
        for (int i = 0; i < f.body().size(); i++) {
            Stmt s = f.body().get(i);
            if (sawReturn) {
                throw CollieException.at(s.span(), "statement after return is never executed");
            }
            switch (s) {
                case Stmt.Let l -> {
                    Kind k = kind(l.value(), scope);
                    if (l.names().size() > 1) {
                        if (k != Kind.TUPLE) {
                            throw CollieException.at(l.span(), "cannot unpack " + k.article() + " into "
                                    + l.names().size() + " names");
                        }
                        if (l.value() instanceof Expr.Call c && c.callee().equals("split")) {
                            Expr parts = ArgBinder.bind(Builtins.get("split"), c).get("parts");
                            if (parts instanceof Expr.IntLit lit && lit.value() != l.names().size()) {
                                throw CollieException.at(l.span(), "split makes " + lit.value() + " parts, but "
                                        + l.names().size() + " names receive them");
                            }
                        }
                        l.names().forEach(n -> scope.put(n, Kind.TENSOR));
                    } else {
                        if (k == Kind.TUPLE) {
                            throw CollieException.at(l.span(), "'split' returns several tensors: unpack them with "
                                    + "'let a, b = ...'");
                        }
                        scope.put(l.names().getFirst(), k);
                    }
                }
                case Stmt.Return r -> {
                    if (block == null) {
                        throw CollieException.at(r.span(), "the model's forward ends with 'loss', not 'return'");
                    }
                    expectTensor(r.value(), scope, "return value");
                    sawReturn = true;
                }
                case Stmt.Loss l -> {
                    if (block != null) {
                        throw CollieException.at(l.span(), "'loss' belongs in the model's forward, not in block '"
                                + block.name() + "'");
                    }
                    if (sawLoss) {
                        throw CollieException.at(l.span(), "the model already has a loss");
                    }
                    expectTensor(l.value(), scope, "loss");
                    sawLoss = true;
                }
                case Stmt.Output o -> {
                    if (block != null) {
                        throw CollieException.at(o.span(), "'output' belongs in the model's forward");
                    }
                    if (scope.get(o.name()) != Kind.TENSOR) {
                        throw CollieException.at(o.span(), scope.containsKey(o.name())
                                ? "'" + o.name() + "' is not a tensor" : "unknown name '" + o.name() + "'");
                    }
                }
            }
        }
        if (block != null && !sawReturn) {
            throw CollieException.at(f.span(), "forward of block '" + block.name() + "' does not return a value");
        }
        if (block == null && !sawLoss) {
            throw CollieException.at(f.span(), "the model's forward has no 'loss' statement");
        }
    }

    private void expectTensor(Expr e, Map<String, Kind> scope, String what) {
        Kind k = kind(e, scope);
        if (k != Kind.TENSOR) {
            throw CollieException.at(e.span(), what + " must be a tensor, got " + k.article());
        }
    }

    private Kind kind(Expr e, Map<String, Kind> scope) {
        return switch (e) {
            case Expr.IntLit i -> Kind.INT;
            case Expr.FloatLit f -> Kind.FLOAT;
            case Expr.BoolLit b -> Kind.BOOL;
            case Expr.StringLit s -> Kind.STRING;
            case Expr.ParallelRef r -> Kind.INT;
            case Expr.Name n -> {
                Kind k = scope.get(n.name());
                if (k == null) {
                    if (blocks.containsKey(n.name()) || Builtins.get(n.name()) != null) {
                        throw CollieException.at(n.span(), "'" + n.name() + "' is an op; call it with '"
                                + n.name() + "(...)'");
                    }
                    throw CollieException.at(n.span(), "unknown name '" + n.name() + "'" + suggest(n.name(),
                            scope.keySet()));
                }
                yield k;
            }
            case Expr.Unary u -> {
                Kind k = kind(u.operand(), scope);
                yield u.op().equals("!") ? Kind.BOOL : k;
            }
            case Expr.Binary b -> {
                Kind l = kind(b.left(), scope);
                Kind r = kind(b.right(), scope);
                boolean tensor = l == Kind.TENSOR || r == Kind.TENSOR;
                if (tensor) {
                    if (!Set.of("+", "-", "*", "/").contains(b.op())) {
                        throw CollieException.at(b.span(), "operator '" + b.op() + "' is not defined on tensors");
                    }
                    for (Kind k : List.of(l, r)) {
                        if (k != Kind.TENSOR && k != Kind.INT && k != Kind.FLOAT) {
                            throw CollieException.at(b.span(), "cannot apply '" + b.op() + "' to a tensor and "
                                    + k.article());
                        }
                    }
                    yield Kind.TENSOR;
                }
                yield switch (b.op()) {
                    case "==", "!=", "<", "<=", ">", ">=", "&&", "||" -> Kind.BOOL;
                    default -> l == Kind.FLOAT || r == Kind.FLOAT ? Kind.FLOAT : l;
                };
            }
            case Expr.If i -> {
                Kind c = kind(i.condition(), scope);
                if (c == Kind.TENSOR) {
                    throw CollieException.at(i.condition().span(), "the condition of 'if' must be a constant "
                            + "bool, not a tensor");
                }
                Kind a = kind(i.then(), scope);
                Kind b = kind(i.otherwise(), scope);
                if (a != b && !(a.accepts(b) || b.accepts(a))) {
                    throw CollieException.at(i.span(), "the branches of 'if' differ: " + a.article() + " and "
                            + b.article());
                }
                yield a;
            }
            case Expr.Call c -> callKind(c, scope);
        };
    }

    private Kind callKind(Expr.Call c, Map<String, Kind> scope) {
        Decl.Block block = blocks.get(c.callee());
        if (block != null) {
            int n = block.forward().formals().size();
            if (c.args().size() != n) {
                throw CollieException.at(c.calleeSpan(), "block '" + block.name() + "' takes " + n + " input"
                        + (n == 1 ? "" : "s") + ", got " + c.args().size());
            }
            for (Expr.Arg a : c.args()) {
                if (a.name() != null) {
                    throw CollieException.at(a.span(), "block inputs are positional");
                }
                expectTensor(a.value(), scope, "block input");
            }
            return Kind.TENSOR;
        }
        Builtins.Signature sig = Builtins.get(c.callee());
        if (sig == null) {
            Set<String> callables = new HashSet<>(Builtins.all().keySet());
            callables.addAll(blocks.keySet());
            throw CollieException.at(c.calleeSpan(), "unknown op '" + c.callee() + "'" + suggest(c.callee(), callables));
        }
        ArgBinder.Bound bound = ArgBinder.bind(sig, c);
        for (Builtins.ParamSpec p : sig.params()) {
            List<Expr> values = p.variadic() ? bound.rest() : bound.get(p.name()) == null ? List.of()
                    : List.of(bound.get(p.name()));
            for (Expr v : values) {
                Kind actual = kind(v, scope);
                if (!p.kind().accepts(actual)) {
                    throw CollieException.at(v.span(), "argument '" + p.name() + "' of '" + sig.name() + "' must be "
                            + p.kind().article() + ", got " + actual.article());
                }
            }
        }
        return sig.result();
    }

    private Map<String, Kind> blockConstantKinds(Decl.Block b) {
        Map<String, Kind> kinds = new HashMap<>(constantKinds);
        if (b.indexName() != null && b.repeat() != null) {
            kinds.put(b.indexName(), Kind.INT);
        }
        return kinds;
    }

    // ---- helpers --------------------------------------------------------------------------------

    private static void declare(Map<String, Span> seen, String name, Span span, String what) {
        Span before = seen.putIfAbsent(name, span);
        if (before != null) {
            throw CollieException.at(span, what + " '" + name + "' is already declared at " + before);
        }
    }

    /** ", did you mean 'x'?" for the closest known name within edit distance 2. */
    static String suggest(String name, Set<String> known) {
        String best = null;
        int bestDistance = 3;
        for (String k : known) {
            int d = editDistance(name, k);
            if (d < bestDistance || (d == bestDistance && best != null && k.compareTo(best) < 0)) {
                bestDistance = d;
                best = k;
            }
        }
        return best == null ? "" : "; did you mean '" + best + "'?";
    }

    private static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            prev[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j] + 1, cur[j - 1] + 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }
}
