package dev.collie.dsl.sema;

import dev.collie.dsl.CollieException;
import dev.collie.dsl.ast.Expr;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Matches the arguments of a builtin call to its signature: positionals first, then named ones. */
public final class ArgBinder {

    private ArgBinder() {}

    /** Bound arguments: a name maps to its expression; a variadic parameter maps to a list in {@link Bound#rest}. */
    public record Bound(Map<String, Expr> args, List<Expr> rest) {
        public Expr get(String name) {
            return args.get(name);
        }
    }

    public static Bound bind(Builtins.Signature sig, Expr.Call call) {
        Map<String, Expr> bound = new LinkedHashMap<>();
        List<Expr> rest = new ArrayList<>();
        List<Builtins.ParamSpec> params = sig.params();
        int position = 0;
        boolean named = false;
        for (Expr.Arg arg : call.args()) {
            if (arg.name() == null) {
                if (named) {
                    throw CollieException.at(arg.span(), "positional argument after a named one in call of '"
                            + sig.name() + "'");
                }
                if (position < params.size() && params.get(position).variadic()) {
                    rest.add(arg.value());
                    continue;
                }
                if (position >= params.size()) {
                    throw CollieException.at(call.calleeSpan(), "'" + sig.name() + "' takes at most "
                            + params.size() + " argument" + (params.size() == 1 ? "" : "s") + ", got "
                            + call.args().size());
                }
                bound.put(params.get(position++).name(), arg.value());
            } else {
                named = true;
                Builtins.ParamSpec p = params.stream().filter(q -> q.name().equals(arg.name())).findFirst()
                        .orElseThrow(() -> CollieException.at(arg.span(), "'" + sig.name()
                                + "' has no parameter named '" + arg.name() + "' (it takes " + names(sig) + ")"));
                if (bound.containsKey(p.name())) {
                    throw CollieException.at(arg.span(), "argument '" + p.name() + "' given twice");
                }
                bound.put(p.name(), arg.value());
            }
        }
        for (Builtins.ParamSpec p : params) {
            if (!bound.containsKey(p.name()) && p.defaultValue() == null && !p.optional() && !p.variadic()) {
                throw CollieException.at(call.calleeSpan(), "'" + sig.name() + "' needs argument '" + p.name()
                        + "' (" + sig.required() + " required: " + names(sig) + ")");
            }
            if (p.variadic() && rest.isEmpty()) {
                throw CollieException.at(call.calleeSpan(), "'" + sig.name() + "' needs at least one '" + p.name()
                        + "' argument");
            }
        }
        return new Bound(bound, rest);
    }

    private static String names(Builtins.Signature sig) {
        return String.join(", ", sig.params().stream().map(p -> p.variadic() ? p.name() + "..." : p.name()).toList());
    }
}
