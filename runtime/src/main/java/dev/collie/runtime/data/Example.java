package dev.collie.runtime.data;

/**
 * One training example: token ids and the label of each position.
 *
 * <p>{@code labels[t]} is the token the model should produce at position {@code t}, or {@link #IGNORE}
 * (-100) where the loss ignores it; the shift by one (position {@code t} predicts {@code labels[t+1]})
 * happens inside the model, so here ids and labels are aligned and of equal length. {@code line} is
 * the 1-based line of the source file the example came from, kept for error messages downstream.
 *
 * <p>The arrays are not copied (datasets hold millions of rows); treat them as read-only.
 */
public record Example(long[] ids, long[] labels, long line) {

    /** Label value the loss ignores (the PyTorch / Hugging Face convention). */
    public static final long IGNORE = -100;

    public Example {
        if (ids == null || labels == null) {
            throw new IllegalArgumentException("ids and labels must not be null");
        }
        if (ids.length != labels.length) {
            throw new IllegalArgumentException(
                    "ids and labels differ in length: " + ids.length + " vs " + labels.length);
        }
        if (ids.length == 0) {
            throw new IllegalArgumentException("an example needs at least one token");
        }
    }

    public int length() {
        return ids.length;
    }

    /** Number of positions the loss sees (labels other than -100). */
    public int learnedTokens() {
        int n = 0;
        for (long l : labels) {
            if (l != IGNORE) {
                n++;
            }
        }
        return n;
    }
}
