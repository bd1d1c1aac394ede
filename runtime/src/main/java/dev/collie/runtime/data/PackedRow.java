package dev.collie.runtime.data;

/**
 * One row of a batch, holding one or more whole examples back to back.
 *
 * <p>{@code positions[t]} is the position of token {@code t} within its own example (restarting at 0
 * for each example), for the rotary / learned position embedding. {@code segments[t]} numbers the
 * examples of the row 0, 1, 2, ...; attention must only connect tokens of equal segment, so no example
 * sees another. All four arrays have the same length; they are not copied, treat them as read-only.
 */
public record PackedRow(long[] ids, long[] labels, long[] positions, long[] segments) {

    public PackedRow {
        int n = ids.length;
        if (labels.length != n || positions.length != n || segments.length != n) {
            throw new IllegalArgumentException("ids, labels, positions and segments differ in length: "
                    + n + ", " + labels.length + ", " + positions.length + ", " + segments.length);
        }
    }

    public int length() {
        return ids.length;
    }
}
