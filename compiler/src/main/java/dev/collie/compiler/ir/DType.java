package dev.collie.compiler.ir;

/**
 * Element types of IR values. Compute is fp32; token ids and labels are int64; bf16 is a storage
 * type for weights (the runtime widens them to fp32 for each op that reads them).
 */
public enum DType {
    F32(4), I64(8), BF16(2);

    public final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    public String shortName() {
        return name().toLowerCase();
    }
}
