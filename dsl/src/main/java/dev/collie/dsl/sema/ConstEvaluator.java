package dev.collie.dsl.sema;

import dev.collie.dsl.CollieException;
import dev.collie.dsl.Span;
import dev.collie.dsl.ast.Expr;
import dev.collie.dsl.sema.Value.BoolValue;
import dev.collie.dsl.sema.Value.FloatValue;
import dev.collie.dsl.sema.Value.IntValue;
import dev.collie.dsl.sema.Value.StringValue;
import java.util.Map;
import java.util.function.Function;

/**
 * Evaluates constant expressions (hyper-parameter defaults, derived lets, shapes, requires). Integer
 * arithmetic is exact: overflow and a division with a remainder are errors, because a shape silently
 * rounded down is a wrong model.
 */
public final class ConstEvaluator {

    private final Function<String, Value> names;
    private final Map<String, Value> parallel;

    /** {@code names} returns null for names it does not know. */
    public ConstEvaluator(Function<String, Value> names, Map<String, Value> parallel) {
        this.names = names;
        this.parallel = parallel;
    }

    public Value eval(Expr e) {
        return switch (e) {
            case Expr.IntLit i -> new IntValue(i.value());
            case Expr.FloatLit f -> new FloatValue(f.value());
            case Expr.BoolLit b -> new BoolValue(b.value());
            case Expr.StringLit s -> new StringValue(s.value());
            case Expr.Name n -> {
                Value v = names.apply(n.name());
                if (v == null) {
                    throw CollieException.at(n.span(), "'" + n.name() + "' is not a constant known here");
                }
                yield v;
            }
            case Expr.ParallelRef r -> {
                String key = String.join(".", r.path());
                Value v = parallel.get(key);
                if (v == null) {
                    throw CollieException.at(r.span(), "unknown parallel setting 'parallel." + key + "'");
                }
                yield v;
            }
            case Expr.Unary u -> unary(u);
            case Expr.Binary b -> binary(b);
            case Expr.If i -> asBool(i.condition(), eval(i.condition())) ? eval(i.then()) : eval(i.otherwise());
            case Expr.Call c -> throw CollieException.at(c.span(),
                    "'" + c.callee() + "(...)' is not a constant expression");
        };
    }

    public long evalInt(Expr e) {
        Value v = eval(e);
        if (v instanceof IntValue i) {
            return i.value();
        }
        throw CollieException.at(e.span(), "expected an int, got " + v.typeName() + " " + v);
    }

    public double evalFloat(Expr e) {
        Value v = eval(e);
        return switch (v) {
            case IntValue i -> i.value();
            case FloatValue f -> f.value();
            default -> throw CollieException.at(e.span(), "expected a float, got " + v.typeName() + " " + v);
        };
    }

    public boolean evalBool(Expr e) {
        return asBool(e, eval(e));
    }

    private static boolean asBool(Expr e, Value v) {
        if (v instanceof BoolValue b) {
            return b.value();
        }
        throw CollieException.at(e.span(), "expected a bool, got " + v.typeName() + " " + v);
    }

    private Value unary(Expr.Unary u) {
        Value v = eval(u.operand());
        return switch (u.op()) {
            case "-" -> switch (v) {
                case IntValue i -> new IntValue(exact(u.span(), () -> Math.negateExact(i.value())));
                case FloatValue f -> new FloatValue(-f.value());
                default -> throw CollieException.at(u.span(), "cannot negate a " + v.typeName());
            };
            case "!" -> new BoolValue(!asBool(u.operand(), v));
            default -> throw new IllegalStateException(u.op());
        };
    }

    private Value binary(Expr.Binary b) {
        if (b.op().equals("&&") || b.op().equals("||")) {
            boolean left = evalBool(b.left());
            if (b.op().equals("&&") ? !left : left) {
                return new BoolValue(left);
            }
            return new BoolValue(evalBool(b.right()));
        }
        Value l = eval(b.left());
        Value r = eval(b.right());
        Span s = b.span();
        if (b.op().equals("==") || b.op().equals("!=")) {
            boolean eq = numeric(l) && numeric(r) ? toDouble(l) == toDouble(r) : l.equals(r);
            if (!eq && !(numeric(l) && numeric(r)) && l.getClass() != r.getClass()) {
                throw CollieException.at(s, "cannot compare " + l.typeName() + " with " + r.typeName());
            }
            return new BoolValue(b.op().equals("==") == eq);
        }
        if (!numeric(l) || !numeric(r)) {
            throw CollieException.at(s, "operator '" + b.op() + "' needs numbers, got " + l.typeName() + " and "
                    + r.typeName());
        }
        if (l instanceof IntValue li && r instanceof IntValue ri) {
            long x = li.value();
            long y = ri.value();
            return switch (b.op()) {
                case "+" -> new IntValue(exact(s, () -> Math.addExact(x, y)));
                case "-" -> new IntValue(exact(s, () -> Math.subtractExact(x, y)));
                case "*" -> new IntValue(exact(s, () -> Math.multiplyExact(x, y)));
                case "/" -> {
                    if (y == 0) {
                        throw CollieException.at(s, "division by zero");
                    }
                    if (x % y != 0) {
                        throw CollieException.at(s, x + " is not divisible by " + y
                                + " (integer division must be exact)");
                    }
                    yield new IntValue(x / y);
                }
                case "%" -> {
                    if (y == 0) {
                        throw CollieException.at(s, "modulo by zero");
                    }
                    yield new IntValue(x % y);
                }
                case "<" -> new BoolValue(x < y);
                case "<=" -> new BoolValue(x <= y);
                case ">" -> new BoolValue(x > y);
                case ">=" -> new BoolValue(x >= y);
                default -> throw new IllegalStateException(b.op());
            };
        }
        double x = toDouble(l);
        double y = toDouble(r);
        return switch (b.op()) {
            case "+" -> new FloatValue(x + y);
            case "-" -> new FloatValue(x - y);
            case "*" -> new FloatValue(x * y);
            case "/" -> new FloatValue(x / y);
            case "%" -> new FloatValue(x % y);
            case "<" -> new BoolValue(x < y);
            case "<=" -> new BoolValue(x <= y);
            case ">" -> new BoolValue(x > y);
            case ">=" -> new BoolValue(x >= y);
            default -> throw new IllegalStateException(b.op());
        };
    }

    private static boolean numeric(Value v) {
        return v instanceof IntValue || v instanceof FloatValue;
    }

    private static double toDouble(Value v) {
        return v instanceof IntValue i ? i.value() : ((FloatValue) v).value();
    }

    private interface LongOp {
        long apply();
    }

    private static long exact(Span span, LongOp op) {
        try {
            return op.apply();
        } catch (ArithmeticException e) {
            throw CollieException.at(span, "integer overflow");
        }
    }
}
