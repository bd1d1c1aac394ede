package dev.collie.runtime.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.IntStream;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Rotary position embedding with the semantics of {@link CpuKernels#rope}, bit for bit: the
 * Hugging Face {@code rotate_half} convention, {@code inv_freq[j] = 1 / theta^(2j/D)}, angles and
 * trigonometry in double rounded once to float, and the same unfused float products
 * ({@code x1*c - x2*s}, no FMA) evaluated lane-wise.
 *
 * <p>The reference rebuilds its cos/sin tables (T·D/2 double cos and sin) on every call, a
 * sizeable part of a call at training shapes; here the table of each (theta, D) is built once and
 * kept, and only rebuilt, larger, when a call needs a position beyond it. Entries do not depend on
 * the table's size, so a table serves every smaller maximum position unchanged.
 */
public final class FusedRope {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int L = SPECIES.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** Below roughly this many elements, forking tasks costs more than it saves. */
    private static final long PARALLEL_THRESHOLD = 1L << 16;

    /** Tables are few (one per (theta, D) in a model) and immutable once published. */
    private static final ConcurrentHashMap<Key, Table> TABLES = new ConcurrentHashMap<>();

    private FusedRope() {
    }

    /** As {@link #rope(MemorySegment, MemorySegment, int, int, int, int, double, boolean, MemorySegment)} with positions 0..T-1. */
    public static void rope(MemorySegment x, MemorySegment out, int B, int H, int T, int D,
                            double theta, boolean inverse) {
        rope(x, out, B, H, T, D, theta, inverse, null);
    }

    /**
     * {@code out = x * cos + rotate_half(x) * sin}, or the inverse (transposed) rotation, which is
     * the backward.
     *
     * @param x         [B,H,T,D]
     * @param out       [B,H,T,D]; must not overlap {@code x}
     * @param inverse   apply the inverse rotation (negated sin)
     * @param positions [B,T] int64 position of each token, or null for its index t
     * @throws IllegalArgumentException if D is odd, {@code out} overlaps {@code x}, or a position
     *                                  is negative or too large for a table
     */
    public static void rope(MemorySegment x, MemorySegment out, int B, int H, int T, int D,
                            double theta, boolean inverse, MemorySegment positions) {
        rope(x, false, out, false, B, H, T, D, theta, inverse, positions);
    }

    /**
     * The rotation fused with a change of layout, for the compiler's {@code split_heads_rope}
     * ({@code x} token-major [B,T,H*D], {@code out} head-major [B,H,T,D]) and its backward
     * {@code merge_heads_rope} (the other way round): the same arithmetic as the layout copy and
     * the rotation done one after the other, in one pass over the data instead of two.
     *
     * @param xTokenMajor   x is [B,T,H*D] rather than [B,H,T,D]
     * @param outTokenMajor out is [B,T,H*D] rather than [B,H,T,D]
     */
    public static void rope(MemorySegment x, boolean xTokenMajor, MemorySegment out, boolean outTokenMajor,
                            int B, int H, int T, int D, double theta, boolean inverse, MemorySegment positions) {
        if (D % 2 != 0) {
            throw new IllegalArgumentException("rope needs an even head size, got D=" + D);
        }
        if (x.asOverlappingSlice(out).isPresent()) {
            throw new IllegalArgumentException("rope needs distinct x and out segments");
        }
        Table table = tableFor(theta, D, B, T, positions);
        int tasks = B * H;
        long work = (long) tasks * T * D;
        if (tasks > 1 && work > PARALLEL_THRESHOLD) {
            IntStream.range(0, tasks).parallel().forEach(bh ->
                    rotateHead(x, xTokenMajor, out, outTokenMajor, bh, H, T, D, inverse, positions, table));
        } else {
            for (int bh = 0; bh < tasks; bh++) {
                rotateHead(x, xTokenMajor, out, outTokenMajor, bh, H, T, D, inverse, positions, table);
            }
        }
    }

    /**
     * The table covering every position of a call: those in {@code positions} ([B,T] int64), or
     * 0..T-1 without them. FlashAttention's token-major form rotates with it too.
     *
     * @throws IllegalArgumentException if D is odd or a position is negative or too large for a table
     */
    static Table tableFor(double theta, int D, int B, int T, MemorySegment positions) {
        if (D % 2 != 0) {
            throw new IllegalArgumentException("rope needs an even head size, got D=" + D);
        }
        int half = D / 2;
        int maxPosition = T - 1;
        if (positions != null) {
            for (long i = 0; i < (long) B * T; i++) {
                long p = positions.getAtIndex(I64, i);
                if (p < 0 || p > Integer.MAX_VALUE / Math.max(1, half) - 1) {
                    throw new IllegalArgumentException("position " + p + " is out of range");
                }
                maxPosition = Math.max(maxPosition, (int) p);
            }
        }
        return table(theta, D, maxPosition + 1);
    }

    /**
     * Rotates one row {@code x[off, off + D)} in place, with the table entries from {@code tab}
     * ({@code position * D/2}): the arithmetic of {@link #rope}, for rows already copied into a
     * heap tile (FlashAttention's prologue and epilogue).
     */
    static void rotateRow(float[] x, int off, int D, Table table, int tab, boolean inverse) {
        int half = D / 2;
        float[] cos = table.cos;
        float[] sin = table.sin;
        int j = 0;
        for (; j + L <= half; j += L) {
            FloatVector x1 = FloatVector.fromArray(SPECIES, x, off + j);
            FloatVector x2 = FloatVector.fromArray(SPECIES, x, off + j + half);
            FloatVector c = FloatVector.fromArray(SPECIES, cos, tab + j);
            FloatVector s = FloatVector.fromArray(SPECIES, sin, tab + j);
            // The products of rotateHead, unfused, so both round alike.
            FloatVector x1c = x1.mul(c);
            FloatVector x2s = x2.mul(s);
            FloatVector x2c = x2.mul(c);
            FloatVector x1s = x1.mul(s);
            (inverse ? x1c.add(x2s) : x1c.sub(x2s)).intoArray(x, off + j);
            (inverse ? x2c.sub(x1s) : x2c.add(x1s)).intoArray(x, off + j + half);
        }
        for (; j < half; j++) {
            float x1 = x[off + j];
            float x2 = x[off + j + half];
            float c = cos[tab + j];
            float s = inverse ? -sin[tab + j] : sin[tab + j];
            x[off + j] = x1 * c - x2 * s;
            x[off + j + half] = x2 * c + x1 * s;
        }
    }

    /**
     * The cos/sin table of (theta, D) covering at least {@code rows} positions. Package-private so
     * that tests can see that it is reused.
     */
    static Table table(double theta, int D, int rows) {
        Key key = new Key(Double.doubleToLongBits(theta), D);
        Table cached = TABLES.get(key);
        if (cached != null && cached.rows >= rows) {
            return cached;
        }
        return TABLES.compute(key, (k, old) -> {
            if (old != null && old.rows >= rows) {
                return old;
            }
            // Grow geometrically so that slowly increasing decode positions rebuild rarely.
            int target = old == null ? rows : (int) Math.min(Integer.MAX_VALUE / Math.max(1, D / 2),
                    Math.max((long) rows, 2L * old.rows));
            return Table.build(theta, D, target);
        });
    }

    private static void rotateHead(MemorySegment x, boolean xTokenMajor, MemorySegment out, boolean outTokenMajor,
                                   int bh, int H, int T, int D, boolean inverse, MemorySegment positions, Table table) {
        int half = D / 2;
        long b = bh / H;
        long h = bh % H;
        float[] cos = table.cos;
        float[] sin = table.sin;
        for (int t = 0; t < T; t++) {
            long headMajor = ((long) bh * T + t) * D * 4;
            long tokenMajor = ((b * T + t) * H + h) * D * 4;
            long base = xTokenMajor ? tokenMajor : headMajor;
            long outBase = outTokenMajor ? tokenMajor : headMajor;
            int position = positions == null ? t : (int) positions.getAtIndex(I64, b * T + t);
            int tab = position * half;
            int j = 0;
            for (; j + L <= half; j += L) {
                long lo = base + (long) j * 4;
                long hi = lo + (long) half * 4;
                FloatVector x1 = FloatVector.fromMemorySegment(SPECIES, x, lo, ORDER);
                FloatVector x2 = FloatVector.fromMemorySegment(SPECIES, x, hi, ORDER);
                FloatVector c = FloatVector.fromArray(SPECIES, cos, tab + j);
                FloatVector s = FloatVector.fromArray(SPECIES, sin, tab + j);
                // Separate mul and add/sub (no FMA) round exactly like the scalar reference;
                // the inverse's +/- equals the reference's products with a negated sin.
                FloatVector x1c = x1.mul(c);
                FloatVector x2s = x2.mul(s);
                FloatVector x2c = x2.mul(c);
                FloatVector x1s = x1.mul(s);
                FloatVector y1 = inverse ? x1c.add(x2s) : x1c.sub(x2s);
                FloatVector y2 = inverse ? x2c.sub(x1s) : x2c.add(x1s);
                y1.intoMemorySegment(out, outBase + (long) j * 4, ORDER);
                y2.intoMemorySegment(out, outBase + (long) (j + half) * 4, ORDER);
            }
            // Scalar tail rather than masked vectors: masked segment access is slow where the
            // hardware has no masked loads (AVX2), and this rounds identically.
            for (; j < half; j++) {
                long lo = base + (long) j * 4;
                long hi = lo + (long) half * 4;
                float x1 = x.get(F32, lo);
                float x2 = x.get(F32, hi);
                float c = cos[tab + j];
                float s = inverse ? -sin[tab + j] : sin[tab + j];
                out.set(F32, outBase + (long) j * 4, x1 * c - x2 * s);
                out.set(F32, outBase + (long) (j + half) * 4, x2 * c + x1 * s);
            }
        }
    }

    private record Key(long thetaBits, int D) {
    }

    /** cos and sin of {@code position * inv_freq[j]}, [rows, D/2] row-major; never modified. */
    record Table(int rows, float[] cos, float[] sin) {

        static Table build(double theta, int D, int rows) {
            int half = D / 2;
            float[] cos = new float[Math.multiplyExact(rows, half)];
            float[] sin = new float[cos.length];
            for (int j = 0; j < half; j++) {
                double invFreq = 1.0 / Math.pow(theta, (2.0 * j) / D);
                for (int t = 0; t < rows; t++) {
                    double angle = t * invFreq;
                    cos[t * half + j] = (float) Math.cos(angle);
                    sin[t * half + j] = (float) Math.sin(angle);
                }
            }
            return new Table(rows, cos, sin);
        }
    }
}
