package dev.collie.runtime.checkpoint;

/** Element types of the safetensors format, named exactly as they appear in a header. */
public enum StDType {
    F64(8),
    F32(4),
    F16(2),
    BF16(2),
    I64(8),
    I32(4),
    I16(2),
    I8(1),
    U8(1),
    BOOL(1);

    private final int byteSize;

    StDType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /**
     * Looks up a header dtype name. Returns null for unknown names so that the caller, which
     * knows the file and tensor, can produce the user-facing error.
     */
    public static StDType parse(String name) {
        for (StDType t : values()) {
            if (t.name().equals(name)) {
                return t;
            }
        }
        return null;
    }
}
