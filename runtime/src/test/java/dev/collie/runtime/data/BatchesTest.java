package dev.collie.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.DoubleRange;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

class BatchesTest {

    private static final long X = Example.IGNORE;

    /** Rows told apart by their first id. */
    private static List<PackedRow> rows(int n) {
        List<PackedRow> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int len = 1 + i % 4;
            long[] ids = new long[len];
            Arrays.fill(ids, i);
            long[] pos = IntStream.range(0, len).asLongStream().toArray();
            out.add(new PackedRow(ids, ids.clone(), pos, new long[len]));
        }
        return out;
    }

    private static List<Integer> ids(Batches.BatchRows b) {
        return b.rows().stream().map(r -> (int) r.ids()[0]).toList();
    }

    // ---- the generator ----

    @Test
    void splitMix64MatchesTheReferenceVector() {
        // First outputs of Vigna's splitmix64.c for seed 1234567.
        var rng = new Batches.SplitMix64(1234567L);
        assertEquals("6457827717110365317", Long.toUnsignedString(rng.nextLong()));
        assertEquals("3203168211198807973", Long.toUnsignedString(rng.nextLong()));
        assertEquals("9817491932198370423", Long.toUnsignedString(rng.nextLong()));
        assertEquals("4593380528125082431", Long.toUnsignedString(rng.nextLong()));
        assertEquals("16408922859458223821", Long.toUnsignedString(rng.nextLong()));
    }

    @Property
    void splitMix64MatchesSplittableRandom(@ForAll long seed) {
        var ours = new Batches.SplitMix64(seed);
        var jdk = new SplittableRandom(seed);
        for (int i = 0; i < 8; i++) {
            assertEquals(jdk.nextLong(), ours.nextLong());
        }
    }

    @Property
    void nextIntStaysInBounds(@ForAll long seed, @ForAll @IntRange(min = 1) int bound) {
        var rng = new Batches.SplitMix64(seed);
        for (int i = 0; i < 16; i++) {
            int v = rng.nextInt(bound);
            assertTrue(v >= 0 && v < bound);
        }
    }

    // ---- epoch order ----

    @Property
    void epochOrderIsAReproduciblePermutation(
            @ForAll @IntRange(min = 0, max = 500) int n, @ForAll long seed, @ForAll @IntRange(min = 0, max = 1000) int epoch) {
        int[] order = Batches.epochOrder(n, seed, epoch);
        assertArrayEquals(IntStream.range(0, n).toArray(), Arrays.stream(order).sorted().toArray());
        assertArrayEquals(order, Batches.epochOrder(n, seed, epoch));
    }

    @Test
    void epochOrderIsPinned() {
        // A fixed function of (n, seed, epoch) on every JVM: resumed runs on other machines depend on it.
        assertArrayEquals(new int[] {7, 4, 6, 9, 0, 8, 2, 3, 1, 5}, Batches.epochOrder(10, 42, 0));
    }

    @Test
    void epochsAndSeedsGiveDifferentOrders() {
        int[] e0 = Batches.epochOrder(50, 7, 0);
        assertFalse(Arrays.equals(e0, Batches.epochOrder(50, 7, 1)));
        assertFalse(Arrays.equals(e0, Batches.epochOrder(50, 8, 0)));
        assertFalse(Arrays.equals(e0, IntStream.range(0, 50).toArray()));
    }

    // ---- the cursor ----

    @Test
    void eachEpochVisitsEveryRowOnceAndTheLastBatchIsShort() {
        var b = new Batches(rows(10), 3);
        List<Integer> epoch0 = new ArrayList<>();
        assertEquals(4, b.next(4).rows().size());
        assertEquals(new Batches.Position(0, 4), b.position());
        b.seek(new Batches.Position(0, 0));
        for (int i = 0; i < 3; i++) {
            epoch0.addAll(ids(b.next(4)));
        }
        assertEquals(10, epoch0.size());
        assertEquals(10, new HashSet<>(epoch0).size());
        assertEquals(new Batches.Position(1, 0), b.position());
        int[] order = Batches.epochOrder(10, 3, 0);
        assertEquals(Arrays.stream(order).boxed().toList(), epoch0);
        assertEquals(Arrays.stream(Batches.epochOrder(10, 3, 1)).limit(4).boxed().toList(), ids(b.next(4)));
    }

    @Test
    void dropLastSkipsTheShortBatch() {
        var b = new Batches(rows(10), 3, true);
        b.next(4);
        b.next(4);
        assertEquals(new Batches.Position(0, 8), b.position());
        var third = b.next(4);
        assertEquals(Arrays.stream(Batches.epochOrder(10, 3, 1)).limit(4).boxed().toList(), ids(third));
        assertEquals(new Batches.Position(1, 4), b.position());
        assertThrows(IllegalArgumentException.class, () -> b.next(11));
    }

    @Property
    void savedCursorResumesTheExactSameSequence(
            @ForAll @IntRange(min = 1, max = 40) int n, @ForAll long seed, @ForAll @IntRange(min = 1, max = 12) int batch,
            @ForAll @IntRange(min = 0, max = 30) int before, @ForAll @IntRange(min = 1, max = 30) int after,
            @ForAll boolean dropLast) {
        var rows = rows(n);
        if (dropLast && batch > n) {
            return;
        }
        var original = new Batches(rows, seed, dropLast);
        for (int i = 0; i < before; i++) {
            original.next(batch);
        }
        Batches.Position saved = original.position();
        List<List<PackedRow>> expected = new ArrayList<>();
        for (int i = 0; i < after; i++) {
            expected.add(original.next(batch).rows());
        }
        var resumed = new Batches(rows, seed, dropLast);
        resumed.seek(new Batches.Position(saved.epoch(), saved.index())); // as if read back from a checkpoint
        for (int i = 0; i < after; i++) {
            List<PackedRow> got = resumed.next(batch).rows();
            assertEquals(expected.get(i).size(), got.size());
            for (int j = 0; j < got.size(); j++) {
                assertSame(expected.get(i).get(j), got.get(j));
            }
        }
        assertEquals(original.position(), resumed.position());
    }

    @Test
    void seekValidatesAndNormalisesTheEndOfAnEpoch() {
        var b = new Batches(rows(5), 1);
        assertThrows(IllegalArgumentException.class, () -> b.seek(new Batches.Position(0, 6)));
        assertThrows(IllegalArgumentException.class, () -> new Batches.Position(-1, 0));
        b.seek(new Batches.Position(2, 5));
        assertEquals(new Batches.Position(3, 0), b.position());
        assertThrows(IllegalArgumentException.class, () -> new Batches(List.of(), 1));
        assertThrows(IllegalArgumentException.class, () -> b.next(0));
    }

    // ---- padding ----

    @Test
    void toArraysPadsOnTheRight() {
        var a = new PackedRow(new long[] {5, 6, 7}, new long[] {X, 6, 7}, new long[] {0, 1, 0}, new long[] {0, 0, 1});
        var b = new PackedRow(new long[] {8}, new long[] {8}, new long[] {0}, new long[] {0});
        var arrays = new Batches.BatchRows(List.of(a, b)).toArrays(99);
        assertEquals(2, arrays.b());
        assertEquals(3, arrays.t());
        assertArrayEquals(new long[] {5, 6, 7, 8, 99, 99}, arrays.ids());
        assertArrayEquals(new long[] {X, 6, 7, 8, X, X}, arrays.labels());
        assertArrayEquals(new long[] {0, 1, 0, 0, 0, 0}, arrays.positions());
        assertArrayEquals(new long[] {0, 0, 1, 0, -1, -1}, arrays.segments());

        var fixed = new Batches.BatchRows(List.of(b)).toArrays(0, 4);
        assertEquals(4, fixed.t());
        assertArrayEquals(new long[] {8, 0, 0, 0}, fixed.ids());
        assertArrayEquals(new long[] {0, -1, -1, -1}, fixed.segments());
        assertThrows(IllegalArgumentException.class, () -> new Batches.BatchRows(List.of(a)).toArrays(0, 2));
    }

    // ---- split ----

    private static List<Example> examples(int n) {
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(new Example(new long[] {i}, new long[] {i}, i + 1));
        }
        return out;
    }

    @Property
    void splitIsDeterministicDisjointAndComplete(
            @ForAll @IntRange(min = 0, max = 300) int n, @ForAll @DoubleRange(min = 0, max = 1, maxIncluded = false) double f,
            @ForAll long seed) {
        var all = examples(n);
        var s = Batches.split(all, f, seed);
        var again = Batches.split(all, f, seed);
        assertEquals(s.train(), again.train());
        assertEquals(s.eval(), again.eval());
        Set<Example> train = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        train.addAll(s.train());
        for (Example e : s.eval()) {
            assertFalse(train.contains(e), "eval and train overlap");
        }
        assertEquals(n, s.train().size() + s.eval().size());
        if (f > 0 && n >= 2) {
            assertTrue(s.eval().size() >= 1 && s.train().size() >= 1);
        } else {
            assertEquals(0, s.eval().size());
        }
        assertTrue(isInInputOrder(s.train()) && isInInputOrder(s.eval()));
    }

    private static boolean isInInputOrder(List<Example> xs) {
        for (int i = 1; i < xs.size(); i++) {
            if (xs.get(i).line() <= xs.get(i - 1).line()) {
                return false;
            }
        }
        return true;
    }

    @Test
    void splitSizesAndSeeds() {
        var all = examples(100);
        assertEquals(10, Batches.split(all, 0.1, 1).eval().size());
        assertEquals(1, Batches.split(examples(2), 0.01, 1).eval().size());
        assertEquals(0, Batches.split(examples(1), 0.5, 1).eval().size());
        assertNotEquals(Batches.split(all, 0.1, 1).eval(), Batches.split(all, 0.1, 2).eval());
        assertThrows(IllegalArgumentException.class, () -> Batches.split(all, 1.0, 1));
        assertThrows(IllegalArgumentException.class, () -> Batches.split(all, -0.1, 1));
        assertThrows(IllegalArgumentException.class, () -> Batches.split(all, Double.NaN, 1));
    }
}
