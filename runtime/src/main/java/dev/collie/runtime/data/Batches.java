package dev.collie.runtime.data;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Walks packed rows in a shuffled order, epoch after epoch, a batch at a time, with a cursor that can
 * be saved in a checkpoint and restored to continue with exactly the batches that would have come next.
 *
 * <p>The order of epoch {@code e} is {@link #epochOrder(int, long, int) epochOrder(rows, seed, e)}: a
 * Fisher–Yates shuffle driven by SplitMix64, implemented here rather than taken from
 * {@link java.util.SplittableRandom} or {@link java.util.Random}, so the order is a fixed function of
 * (n, seed, epoch) on every JVM and every JDK version — a resumed run may be on another machine.
 *
 * <p>A batch never spans two epochs: every row is seen exactly once per epoch, and the last batch of an
 * epoch is shorter when the row count is not a multiple of the batch size (or dropped, with
 * {@code dropLast}). After the last row of an epoch the cursor moves to {@code (epoch + 1, 0)}.
 */
public final class Batches {

    /** Where the cursor is: {@code index} rows of epoch {@code epoch}'s order have been handed out. */
    public record Position(int epoch, int index) {
        public Position {
            if (epoch < 0 || index < 0) {
                throw new IllegalArgumentException("negative position (" + epoch + ", " + index + ")");
            }
        }
    }

    /** The rows of one batch, each as long as it is; {@link #toArrays} pads them to a rectangle. */
    public record BatchRows(List<PackedRow> rows) {
        public BatchRows {
            rows = List.copyOf(rows);
        }

        /** Padded to the longest row. */
        public BatchArrays toArrays(long padId) {
            int t = 0;
            for (PackedRow r : rows) {
                t = Math.max(t, r.length());
            }
            return toArrays(padId, t);
        }

        /**
         * Right-padded to {@code t} tokens (a fixed {@code t} keeps tensor shapes constant across steps).
         * Padding gets id {@code padId}, label -100 (no loss), position 0 and segment -1, a segment no
         * real token has, so padding attends to nothing real and nothing real attends to it.
         */
        public BatchArrays toArrays(long padId, int t) {
            int b = rows.size();
            long[] ids = new long[b * t];
            long[] labels = new long[b * t];
            long[] positions = new long[b * t];
            long[] segments = new long[b * t];
            Arrays.fill(ids, padId);
            Arrays.fill(labels, Example.IGNORE);
            Arrays.fill(segments, -1);
            for (int i = 0; i < b; i++) {
                PackedRow r = rows.get(i);
                if (r.length() > t) {
                    throw new IllegalArgumentException("row " + i + " has " + r.length() + " tokens, more than t = " + t);
                }
                System.arraycopy(r.ids(), 0, ids, i * t, r.length());
                System.arraycopy(r.labels(), 0, labels, i * t, r.length());
                System.arraycopy(r.positions(), 0, positions, i * t, r.length());
                System.arraycopy(r.segments(), 0, segments, i * t, r.length());
            }
            return new BatchArrays(ids, labels, positions, segments, b, t);
        }
    }

    /** A batch as row-major {@code [b, t]} arrays, ready to become tensors. */
    public record BatchArrays(long[] ids, long[] labels, long[] positions, long[] segments, int b, int t) {}

    /** A train / held-out evaluation split; each side keeps the input order. */
    public record Split(List<Example> train, List<Example> eval) {}

    // Distinct streams for the epoch orders and the split, so a split seed equal to the shuffle seed
    // does not make the eval set "the first rows of epoch 0".
    private static final long EPOCH_SALT = 0x6A09E667F3BCC909L;
    private static final long SPLIT_SALT = 0xBB67AE8584CAA73BL;

    private final List<PackedRow> rows;
    private final long seed;
    private final boolean dropLast;
    private int epoch;
    private int index;
    private final boolean shuffle;
    private int[] order; // order of `epoch`, recomputed when the epoch changes

    /** Short last batches kept. */
    public Batches(List<PackedRow> rows, long seed) {
        this(rows, seed, false);
    }

    /** @param dropLast skip the last batch of an epoch when it would be shorter than asked */
    public Batches(List<PackedRow> rows, long seed, boolean dropLast) {
        this(rows, seed, dropLast, true);
    }

    /** @param shuffle false keeps the file order in every epoch */
    public Batches(List<PackedRow> rows, long seed, boolean dropLast, boolean shuffle) {
        if (rows.isEmpty()) {
            throw new IllegalArgumentException("no rows to batch");
        }
        this.rows = List.copyOf(rows);
        this.seed = seed;
        this.dropLast = dropLast;
        this.shuffle = shuffle;
        this.order = orderOf(0);
    }

    private int[] orderOf(int e) {
        return shuffle ? epochOrder(rows.size(), seed, e) : java.util.stream.IntStream.range(0, rows.size()).toArray();
    }

    public int size() {
        return rows.size();
    }

    public long seed() {
        return seed;
    }

    /** The cursor, to save with a checkpoint. */
    public Position position() {
        return new Position(epoch, index);
    }

    /** Restores a saved cursor; the following {@link #next} calls return what they returned then. */
    public void seek(Position p) {
        if (p.index() > rows.size()) {
            throw new IllegalArgumentException(
                    "position index " + p.index() + " is past the " + rows.size() + " rows of an epoch");
        }
        setEpoch(p.epoch());
        index = p.index();
        if (index == rows.size()) {
            setEpoch(epoch + 1); // the saved cursor was at an epoch's end; normalise as next() would
        }
    }

    /**
     * The next {@code batchSize} rows of the current epoch (fewer at its end unless {@code dropLast},
     * which moves on to the next epoch instead).
     */
    public BatchRows next(int batchSize) {
        if (batchSize <= 0) {
            throw new IllegalArgumentException("batchSize must be positive, got " + batchSize);
        }
        if (dropLast && batchSize > rows.size()) {
            throw new IllegalArgumentException("batchSize " + batchSize + " exceeds the " + rows.size()
                    + " rows of an epoch, so with dropLast no batch could ever be made");
        }
        if (dropLast && rows.size() - index < batchSize) {
            setEpoch(epoch + 1);
        }
        int end = Math.min(rows.size(), index + batchSize);
        List<PackedRow> batch = new ArrayList<>(end - index);
        for (int i = index; i < end; i++) {
            batch.add(rows.get(order[i]));
        }
        index = end;
        if (index == rows.size()) {
            setEpoch(epoch + 1);
        }
        return new BatchRows(batch);
    }

    private void setEpoch(int e) {
        if (e < 0) {
            throw new IllegalStateException("epoch counter overflow");
        }
        if (e != epoch || order == null) {
            order = orderOf(e);
        }
        epoch = e;
        index = 0;
    }

    /** A permutation of {@code 0..n-1}, a fixed function of its arguments (see the class comment). */
    public static int[] epochOrder(int n, long seed, int epoch) {
        if (n < 0 || epoch < 0) {
            throw new IllegalArgumentException("n and epoch must not be negative: " + n + ", " + epoch);
        }
        return shuffle(n, new SplitMix64(SplitMix64.mix(seed ^ SplitMix64.mix(EPOCH_SALT + epoch))));
    }

    /**
     * Holds out a random {@code evalFraction} of the examples, the same ones for the same seed and list.
     * The eval side gets {@code round(n * evalFraction)} examples, but at least 1 when
     * {@code evalFraction > 0} and there are at least 2 examples, and never all of them: training keeps
     * at least one. With fewer than 2 examples, or {@code evalFraction == 0}, everything is training.
     *
     * @param evalFraction in {@code [0, 1)}
     */
    public static Split split(List<Example> all, double evalFraction, long seed) {
        if (!(evalFraction >= 0 && evalFraction < 1)) {
            throw new IllegalArgumentException("evalFraction must be in [0, 1), got " + evalFraction);
        }
        int n = all.size();
        int k = 0;
        if (evalFraction > 0 && n >= 2) {
            k = (int) Math.clamp(Math.round(n * evalFraction), 1L, (long) n - 1);
        }
        int[] perm = shuffle(n, new SplitMix64(SplitMix64.mix(seed ^ SPLIT_SALT)));
        boolean[] isEval = new boolean[n];
        for (int i = 0; i < k; i++) {
            isEval[perm[i]] = true;
        }
        List<Example> train = new ArrayList<>(n - k);
        List<Example> eval = new ArrayList<>(k);
        for (int i = 0; i < n; i++) {
            (isEval[i] ? eval : train).add(all.get(i));
        }
        return new Split(List.copyOf(train), List.copyOf(eval));
    }

    /** Fisher–Yates (Durstenfeld) over the identity permutation. */
    private static int[] shuffle(int n, SplitMix64 rng) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int tmp = p[i];
            p[i] = p[j];
            p[j] = tmp;
        }
        return p;
    }

    /**
     * SplitMix64 (Steele, Lea &amp; Flood 2014; the reference generator of Vigna's splitmix64.c):
     * state advances by the golden gamma, outputs are the state through a fixed mixer. Chosen for being
     * tiny and exactly specified, so the same seed gives the same stream anywhere.
     */
    static final class SplitMix64 {
        private static final long GAMMA = 0x9E3779B97F4A7C15L;
        private long state;

        SplitMix64(long seed) {
            state = seed;
        }

        long nextLong() {
            state += GAMMA;
            return mix(state);
        }

        /** Uniform in {@code [0, bound)}, without modulo bias (rejection of the top partial range). */
        int nextInt(int bound) {
            long bits;
            long val;
            do {
                bits = nextLong() >>> 1;
                val = bits % bound;
            } while (bits - val + (bound - 1) < 0); // overflow: bits fell in the incomplete last range
            return (int) val;
        }

        static long mix(long z) {
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            return z ^ (z >>> 31);
        }
    }
}
