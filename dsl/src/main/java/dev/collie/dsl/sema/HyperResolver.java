package dev.collie.dsl.sema;

import dev.collie.dsl.CollieException;
import dev.collie.dsl.Diagnostic;
import dev.collie.dsl.Span;
import dev.collie.dsl.ast.Decl;
import dev.collie.dsl.ast.Expr;
import dev.collie.dsl.ast.ModelFile;
import dev.collie.dsl.sema.Value.BoolValue;
import dev.collie.dsl.sema.Value.FloatValue;
import dev.collie.dsl.sema.Value.IntValue;
import dev.collie.dsl.sema.Value.StringValue;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Fixes hyper-parameters to values. Precedence, lowest first: the declared defaults, a checkpoint's
 * config.json (through the file's config mapping), a named preset, then explicit {@code --set}
 * overrides. Defaults are evaluated in declaration order, so `kv_heads: int = heads` follows
 * whatever `heads` became. Then derived lets, the parallel section and every `require` are checked.
 */
public final class HyperResolver {

    /** Every parallel setting the language knows, with its default. */
    public static final Map<String, Value> PARALLEL_DEFAULTS;

    static {
        Map<String, Value> d = new LinkedHashMap<>();
        d.put("data", new IntValue(1));
        d.put("zero", new IntValue(0));
        d.put("tensor", new IntValue(1));
        d.put("pipeline.stages", new IntValue(1));
        d.put("pipeline.micro_batches", new IntValue(1));
        d.put("pipeline.schedule", new StringValue("1f1b"));
        PARALLEL_DEFAULTS = java.util.Collections.unmodifiableMap(d);
    }

    private static final Set<String> SCHEDULES = Set.of("1f1b", "gpipe");

    /** A value for one hyper-parameter from outside the file, and where it came from for error messages. */
    public record Override(Object value, Span origin) {}

    private HyperResolver() {}

    /**
     * @param preset     a preset name or null
     * @param fromConfig hyper name to a JSON value (Long, Double, Boolean, String) read from config.json
     * @param sets       hyper name to a raw {@code --set} string
     */
    public static ResolvedModel resolve(ModelFile file, String preset, Map<String, Override> fromConfig,
                                        Map<String, String> sets) {
        try {
            return doResolve(file, preset, fromConfig, sets);
        } catch (CollieException e) {
            throw e.withSource(file.source());
        }
    }

    public static ResolvedModel resolve(ModelFile file, String preset) {
        return resolve(file, preset, Map.of(), Map.of());
    }

    private static ResolvedModel doResolve(ModelFile file, String preset, Map<String, Override> fromConfig,
                                           Map<String, String> sets) {
        Map<String, Decl.Hyper> declared = new LinkedHashMap<>();
        file.hypers().forEach(h -> declared.put(h.name(), h));
        Span cli = new Span("<command line>", 0, 0, 0);
        for (String key : sets.keySet()) {
            if (!declared.containsKey(key)) {
                throw CollieException.at(cli, "--set " + key + ": '" + key + "' is not a hyper-parameter of model '"
                        + file.modelName() + "'" + ModelChecker.suggest(key, declared.keySet()));
            }
        }
        Decl.Preset chosen = null;
        if (preset != null) {
            chosen = file.presets().stream().filter(p -> p.name().equals(preset)).findFirst().orElseThrow(() ->
                    CollieException.at(cli, "model '" + file.modelName() + "' has no preset '" + preset
                            + "' (presets: " + String.join(", ", file.presets().stream().map(Decl.Preset::name)
                            .toList()) + ")"));
        }
        Map<String, Value> values = new LinkedHashMap<>();
        ConstEvaluator eval = new ConstEvaluator(values::get, Map.of());
        for (Decl.Hyper h : file.hypers()) {
            Value v;
            if (sets.containsKey(h.name())) {
                v = parseSet(h, sets.get(h.name()), cli);
            } else if (chosen != null && assignOf(chosen, h.name()) != null) {
                Decl.Assign a = assignOf(chosen, h.name());
                v = coerce(h, eval.eval(a.value()), a.span(), "preset '" + chosen.name() + "' sets");
            } else if (fromConfig.containsKey(h.name())) {
                Override o = fromConfig.get(h.name());
                v = coerce(h, Value.of(o.value()), o.origin(), "config sets");
            } else {
                v = coerce(h, eval.eval(h.defaultValue()), h.defaultValue().span(), "default of");
            }
            values.put(h.name(), v);
        }
        Map<String, Value> hyper = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(values));
        Map<String, Value> constants = new LinkedHashMap<>(values);
        ConstEvaluator all = new ConstEvaluator(constants::get, Map.of());
        for (Decl.Let l : file.lets()) {
            constants.put(l.name(), all.eval(l.value()));
        }
        Map<String, Value> parallel = resolveParallel(file, constants);
        ConstEvaluator withParallel = new ConstEvaluator(constants::get, parallel);
        String origin = preset != null ? "preset " + preset : fromConfig.isEmpty() ? "defaults" : "config";
        for (Decl.Require r : file.requires()) {
            if (!withParallel.evalBool(r.condition())) {
                String msg = r.message() != null ? r.message() : "requirement failed";
                throw new CollieException(List.of(Diagnostic.error(leftmost(r.condition()), msg + " (with " + origin
                        + ": " + describe(r.condition(), withParallel) + ")")));
            }
        }
        for (Decl.Block b : file.blocks()) {
            if (b.repeat() != null) {
                long n = withParallel.evalInt(b.repeat());
                if (n < 1) {
                    throw CollieException.at(b.repeat().span(), "block '" + b.name() + "' must repeat at least "
                            + "once, got " + n);
                }
                long stages = ((IntValue) parallel.get("pipeline.stages")).value();
                if (n % stages != 0) {
                    Span at = settingSpan(file, "pipeline.stages", b.span());
                    throw CollieException.at(at, "pipeline stages (" + stages + ") must divide the " + n
                            + " repetitions of block '" + b.name() + "'");
                }
            }
        }
        return new ResolvedModel(file, origin, hyper, java.util.Collections.unmodifiableMap(constants), parallel,
                resolveTrain(file, withParallel));
    }

    /** The train section's settings, checked against {@link TrainSchema}; keys are dotted paths. */
    private static Map<String, Object> resolveTrain(ModelFile file, ConstEvaluator eval) {
        Map<String, Object> out = new LinkedHashMap<>();
        if (file.train() == null) {
            return out;
        }
        for (Decl.Setting s : file.train().settings()) {
            String key = String.join(".", s.path());
            Object v = eval.eval(s.value()).toJava();
            String problem = TrainSchema.check(key, v);
            if (problem != null) {
                throw CollieException.at(TrainSchema.get(key) == null ? s.span() : s.value().span(), problem);
            }
            if (out.put(key, TrainSchema.normalise(key, v)) != null) {
                throw CollieException.at(s.span(), "train setting '" + key + "' is set twice");
            }
        }
        return java.util.Collections.unmodifiableMap(out);
    }

    private static Decl.Assign assignOf(Decl.Preset p, String name) {
        return p.assigns().stream().filter(a -> a.name().equals(name)).findFirst().orElse(null);
    }

    private static Value coerce(Decl.Hyper h, Value v, Span at, String what) {
        return switch (h.type()) {
            case INT -> {
                if (v instanceof IntValue) {
                    yield v;
                }
                throw CollieException.at(at, what + " '" + h.name() + "' to " + v.typeName() + " " + v
                        + ", but it is an int");
            }
            case FLOAT -> switch (v) {
                case IntValue i -> new FloatValue(i.value());
                case FloatValue f -> f;
                default -> throw CollieException.at(at, what + " '" + h.name() + "' to " + v.typeName() + " " + v
                        + ", but it is a float");
            };
            case BOOL -> {
                if (v instanceof BoolValue) {
                    yield v;
                }
                throw CollieException.at(at, what + " '" + h.name() + "' to " + v.typeName() + " " + v
                        + ", but it is a bool");
            }
            case STRING -> {
                if (v instanceof StringValue) {
                    yield v;
                }
                throw CollieException.at(at, what + " '" + h.name() + "' to " + v.typeName() + " " + v
                        + ", but it is a string");
            }
        };
    }

    private static Value parseSet(Decl.Hyper h, String raw, Span cli) {
        String text = raw.trim();
        try {
            return switch (h.type()) {
                case INT -> new IntValue(Long.parseLong(text.replace("_", "")));
                case FLOAT -> new FloatValue(Double.parseDouble(text));
                case BOOL -> {
                    if (!text.equals("true") && !text.equals("false")) {
                        throw new NumberFormatException();
                    }
                    yield new BoolValue(text.equals("true"));
                }
                case STRING -> new StringValue(text);
            };
        } catch (NumberFormatException e) {
            throw CollieException.at(cli, "--set " + h.name() + "=" + raw + ": expected " + switch (h.type()) {
                case INT -> "an int";
                case FLOAT -> "a float";
                case BOOL -> "true or false";
                case STRING -> "a string";
            });
        }
    }

    private static Map<String, Value> resolveParallel(ModelFile file, Map<String, Value> constants) {
        Map<String, Value> parallel = new LinkedHashMap<>(PARALLEL_DEFAULTS);
        if (file.parallel() == null) {
            return java.util.Collections.unmodifiableMap(parallel);
        }
        ConstEvaluator eval = new ConstEvaluator(constants::get, Map.of());
        Map<String, Span> seen = new LinkedHashMap<>();
        for (Decl.Setting s : file.parallel().settings()) {
            String key = String.join(".", s.path());
            if (!PARALLEL_DEFAULTS.containsKey(key)) {
                throw CollieException.at(s.span(), "unknown parallel setting '" + key + "' (known: "
                        + String.join(", ", PARALLEL_DEFAULTS.keySet()) + ")");
            }
            if (seen.put(key, s.span()) != null) {
                throw CollieException.at(s.span(), "parallel setting '" + key + "' is set twice");
            }
            Value v = eval.eval(s.value());
            if (key.equals("pipeline.schedule")) {
                if (!(v instanceof StringValue sv) || !SCHEDULES.contains(sv.value())) {
                    throw CollieException.at(s.value().span(), "pipeline schedule must be \"1f1b\" or \"gpipe\", got "
                            + v);
                }
            } else {
                if (!(v instanceof IntValue iv)) {
                    throw CollieException.at(s.value().span(), "parallel setting '" + key + "' must be an int, got "
                            + v.typeName() + " " + v);
                }
                long min = key.equals("zero") ? 0 : 1;
                long max = key.equals("zero") ? 3 : Long.MAX_VALUE;
                if (iv.value() < min || iv.value() > max) {
                    throw CollieException.at(s.value().span(), key.equals("zero")
                            ? "ZeRO stage must be 0, 1, 2 or 3, got " + iv.value()
                            : "parallel setting '" + key + "' must be at least 1, got " + iv.value());
                }
            }
            parallel.put(key, v);
        }
        long stages = ((IntValue) parallel.get("pipeline.stages")).value();
        long micro = ((IntValue) parallel.get("pipeline.micro_batches")).value();
        if (micro < stages && stages > 1) {
            throw CollieException.at(settingSpan(file, "pipeline.micro_batches", file.parallel().span()),
                    "pipeline needs at least as many micro-batches (" + micro + ") as stages (" + stages
                            + ") to keep every stage busy");
        }
        return java.util.Collections.unmodifiableMap(parallel);
    }

    private static Span settingSpan(ModelFile file, String key, Span fallback) {
        if (file.parallel() == null) {
            return fallback;
        }
        return file.parallel().settings().stream().filter(s -> String.join(".", s.path()).equals(key))
                .map(Decl.Setting::span).findFirst().orElse(fallback);
    }

    /** The span of the first token of an expression (binary nodes carry their operator's span). */
    private static Span leftmost(Expr e) {
        return switch (e) {
            case Expr.Binary b -> leftmost(b.left());
            default -> e.span();
        };
    }

    /** "heads = 6, kv_heads = 4" for the names a failed requirement mentions. */
    private static String describe(Expr e, ConstEvaluator eval) {
        Map<String, String> names = new LinkedHashMap<>();
        collectNames(e, eval, names);
        return String.join(", ", names.entrySet().stream().map(x -> x.getKey() + " = " + x.getValue()).toList());
    }

    private static void collectNames(Expr e, ConstEvaluator eval, Map<String, String> out) {
        switch (e) {
            case Expr.Name n -> out.putIfAbsent(n.name(), eval.eval(n).toString());
            case Expr.ParallelRef r -> out.putIfAbsent("parallel." + String.join(".", r.path()), eval.eval(r).toString());
            case Expr.Unary u -> collectNames(u.operand(), eval, out);
            case Expr.Binary b -> {
                collectNames(b.left(), eval, out);
                collectNames(b.right(), eval, out);
            }
            case Expr.If i -> {
                collectNames(i.condition(), eval, out);
                collectNames(i.then(), eval, out);
                collectNames(i.otherwise(), eval, out);
            }
            default -> { }
        }
    }
}
