package dev.collie.compiler.passes;

/** The programs a plan holds, all compiled from one forward graph. */
public enum ProgramKind {
    /** Forward only: loss and the model's declared outputs (logits). */
    EVAL,
    /** Forward, backward and in-place SGD: p -= lr * g the moment g is complete. */
    TRAIN,
    /** LOMO's clipped form: a first backward computes the global gradient norm, a second applies the update. */
    TRAIN_CLIPPED,
    /**
     * Generation: forward of new tokens only, logits out, attention against key/value caches that
     * persist between calls. Compiled when the model takes a positions input.
     */
    DECODE;

    public String key() {
        return name().toLowerCase();
    }

    public boolean trains() {
        return this == TRAIN || this == TRAIN_CLIPPED;
    }
}
