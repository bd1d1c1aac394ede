package dev.collie.dsl.sema;

/** A compile-time constant: the value of a hyper-parameter, a derived `let`, or a parallel setting. */
public sealed interface Value {

    String typeName();

    Object toJava();

    record IntValue(long value) implements Value {
        public String typeName() { return "int"; }
        public Object toJava() { return value; }
        @Override public String toString() { return Long.toString(value); }
    }

    record FloatValue(double value) implements Value {
        public String typeName() { return "float"; }
        public Object toJava() { return value; }
        @Override public String toString() { return Double.toString(value); }
    }

    record BoolValue(boolean value) implements Value {
        public String typeName() { return "bool"; }
        public Object toJava() { return value; }
        @Override public String toString() { return Boolean.toString(value); }
    }

    record StringValue(String value) implements Value {
        public String typeName() { return "string"; }
        public Object toJava() { return value; }
        @Override public String toString() { return '"' + value + '"'; }
    }

    static Value of(Object java) {
        return switch (java) {
            case Long l -> new IntValue(l);
            case Integer i -> new IntValue(i);
            case Double d -> new FloatValue(d);
            case Float f -> new FloatValue(f);
            case Boolean b -> new BoolValue(b);
            case String s -> new StringValue(s);
            default -> throw new IllegalArgumentException("not a constant: " + java);
        };
    }
}
