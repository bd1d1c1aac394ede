package dev.collie.compiler.ir;

/** Element types of IR values. Compute is fp32; token ids and labels are int64. */
public enum DType {
    F32(4), I64(8);

    public final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    public String shortName() {
        return name().toLowerCase();
    }
}
