package dev.collie.compiler.ir;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * One dimension of a shape: a constant times a product of symbols. Symbols are the batch sizes a
 * plan leaves open (B, T), bound only when the runtime sees the data, so one compiled plan serves
 * every batch size and sequence length. Flattening [B, T, C] to [B*T, C] stays exact.
 */
public record Dim(long coeff, List<String> symbols) {

    public Dim {
        var sorted = new ArrayList<>(symbols);
        Collections.sort(sorted);
        symbols = List.copyOf(sorted);
    }

    public static Dim of(long value) {
        return new Dim(value, List.of());
    }

    public static Dim symbol(String name) {
        return new Dim(1, List.of(name));
    }

    public boolean isConstant() {
        return symbols.isEmpty();
    }

    public Dim times(Dim other) {
        var syms = new ArrayList<>(symbols);
        syms.addAll(other.symbols);
        return new Dim(Math.multiplyExact(coeff, other.coeff), syms);
    }

    /** This dimension divided by {@code other}, or null when the quotient is not a whole monomial. */
    public Dim dividedBy(Dim other) {
        if (other.coeff == 0 || coeff % other.coeff != 0) {
            return null;
        }
        var syms = new ArrayList<>(symbols);
        for (String s : other.symbols) {
            if (!syms.remove(s)) {
                return null;
            }
        }
        return new Dim(coeff / other.coeff, syms);
    }

    public long evaluate(Map<String, Long> bindings) {
        long v = coeff;
        for (String s : symbols) {
            Long b = bindings.get(s);
            if (b == null) {
                throw new IllegalArgumentException("dimension symbol " + s + " is not bound");
            }
            v = Math.multiplyExact(v, b);
        }
        return v;
    }

    /** Parses what {@link #toString} writes: "64", "T", "3*B*T". */
    public static Dim parse(String text) {
        long coeff = 1;
        var syms = new ArrayList<String>();
        for (String part : text.split("\\*")) {
            String p = part.trim();
            if (!p.isEmpty() && Character.isDigit(p.charAt(0)) || p.startsWith("-")) {
                coeff = Math.multiplyExact(coeff, Long.parseLong(p));
            } else {
                syms.add(p);
            }
        }
        return new Dim(coeff, syms);
    }

    @Override
    public String toString() {
        if (symbols.isEmpty()) {
            return Long.toString(coeff);
        }
        String s = String.join("*", symbols);
        return coeff == 1 ? s : coeff + "*" + s;
    }
}
