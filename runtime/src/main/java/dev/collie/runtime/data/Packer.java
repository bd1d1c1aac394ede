package dev.collie.runtime.data;

import java.util.ArrayList;
import java.util.List;

/**
 * Lays examples out in rows of a fixed budget of tokens.
 *
 * <p>{@link #pack} puts several short examples in one row so that padding does not waste most of a
 * batch; {@link #unpacked} is the one-example-per-row layout for when packing is off.
 */
public final class Packer {

    private Packer() {}

    /**
     * Packs {@code examples} into rows of at most {@code maxLength} tokens, first-fit in input order:
     * each example goes into the earliest row that still has room for all of it, a new row if none does.
     * An example is never split; one longer than {@code maxLength} is cut to its first
     * {@code maxLength} tokens and so fills a row of its own. Within a row examples appear in input
     * order, but a later example can fill a gap in an earlier row, so the row sequence is not the input
     * order — rows are shuffled by {@link Batches} anyway.
     *
     * <p>In the packed rows the first label of every example is -100 (see the comment in the body).
     * Returns an empty list for no examples.
     */
    public static List<PackedRow> pack(List<Example> examples, int maxLength) {
        if (maxLength <= 0) {
            throw new IllegalArgumentException("maxLength must be positive, got " + maxLength);
        }
        int n = examples.size();
        if (n == 0) {
            return List.of();
        }
        int[] rowOf = new int[n];
        int[] rowLength = new int[n];
        FirstFit fit = new FirstFit(n, maxLength);
        int rows = 0;
        for (int i = 0; i < n; i++) {
            int len = Math.min(examples.get(i).length(), maxLength);
            int r = fit.place(len);
            rowOf[i] = r;
            rowLength[r] += len;
            rows = Math.max(rows, r + 1);
        }

        long[][] ids = new long[rows][];
        long[][] labels = new long[rows][];
        long[][] positions = new long[rows][];
        long[][] segments = new long[rows][];
        for (int r = 0; r < rows; r++) {
            ids[r] = new long[rowLength[r]];
            labels[r] = new long[rowLength[r]];
            positions[r] = new long[rowLength[r]];
            segments[r] = new long[rowLength[r]];
        }
        int[] filled = new int[rows];
        int[] nextSegment = new int[rows];
        for (int i = 0; i < n; i++) {
            Example ex = examples.get(i);
            int r = rowOf[i];
            int at = filled[r];
            int len = Math.min(ex.length(), maxLength);
            System.arraycopy(ex.ids(), 0, ids[r], at, len);
            System.arraycopy(ex.labels(), 0, labels[r], at, len);
            // The model predicts labels[t + 1] from position t (the shift happens inside the model). At
            // a boundary, t is the last token of the previous example and labels[t + 1] the first token
            // of this one: left as is, the previous example would be trained to predict the start of an
            // unrelated example it cannot even attend to. Masking the first label of every example
            // removes that target; for the first example of a row it changes nothing, since labels[0]
            // is never predicted.
            labels[r][at] = Example.IGNORE;
            long segment = nextSegment[r]++;
            for (int t = 0; t < len; t++) {
                positions[r][at + t] = t;
                segments[r][at + t] = segment;
            }
            filled[r] = at + len;
        }
        List<PackedRow> out = new ArrayList<>(rows);
        for (int r = 0; r < rows; r++) {
            out.add(new PackedRow(ids[r], labels[r], positions[r], segments[r]));
        }
        return out;
    }

    /**
     * One example per row, labels unchanged, positions {@code 0..n-1}, segment 0. Examples are not
     * truncated here ({@link JsonlExamples} already applied {@code maxLength}).
     */
    public static List<PackedRow> unpacked(List<Example> examples) {
        List<PackedRow> out = new ArrayList<>(examples.size());
        for (Example ex : examples) {
            long[] positions = new long[ex.length()];
            for (int t = 0; t < positions.length; t++) {
                positions[t] = t;
            }
            out.add(new PackedRow(ex.ids(), ex.labels(), positions, new long[ex.length()]));
        }
        return out;
    }

    /**
     * Finds the first row with at least {@code len} free tokens in O(log n): a max-segment-tree over
     * the free space of n rows (n examples never need more than n rows). A linear scan over open rows
     * would be quadratic on the millions of short rows of a pretraining set.
     */
    private static final class FirstFit {
        private final int leaves;
        private final int[] free;

        FirstFit(int n, int capacity) {
            int size = 1;
            while (size < n) {
                size <<= 1;
            }
            leaves = size;
            free = new int[2 * size];
            for (int i = 0; i < n; i++) {
                free[size + i] = capacity;
            }
            for (int i = size - 1; i >= 1; i--) {
                free[i] = Math.max(free[2 * i], free[2 * i + 1]);
            }
        }

        /** Takes {@code len} tokens from the leftmost row that has them; returns that row. */
        int place(int len) {
            if (free[1] < len) {
                throw new IllegalStateException("no row has room for " + len + " tokens"); // cannot happen
            }
            int node = 1;
            while (node < leaves) {
                node = free[2 * node] >= len ? 2 * node : 2 * node + 1;
            }
            free[node] -= len;
            for (int i = node >> 1; i >= 1; i >>= 1) {
                free[i] = Math.max(free[2 * i], free[2 * i + 1]);
            }
            return node - leaves;
        }
    }
}
