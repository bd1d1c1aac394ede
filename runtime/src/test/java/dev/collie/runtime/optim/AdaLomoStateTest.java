package dev.collie.runtime.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.runtime.optim.OptimizerKernels.AdaLomoConfig;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** AdaLomo keeps O(rows + cols) state per matrix, and does not sneak in O(n) buffers. */
class AdaLomoStateTest {
    private static final AdaLomoConfig CFG = AdaLomoConfig.defaults();

    @Test
    void stateElementCountIsRowsPlusColsForMatrices() {
        assertEquals(4096 + 11008, OptimizerKernels.adalomoStateElements(4096, 11008));
        assertEquals(5 + 7, OptimizerKernels.adalomoStateElements(5, 7));
        assertEquals(64 + 1, OptimizerKernels.adalomoStateElements(64, 1));
        // Vectors (and 1 x m rows) keep the full second moment, which is as small as p.
        assertEquals(13, OptimizerKernels.adalomoStateElements(13, 0));
        assertEquals(9, OptimizerKernels.adalomoStateElements(1, 9));
        assertThrows(IllegalArgumentException.class, () -> OptimizerKernels.adalomoStateElements(0, 3));
    }

    /** Exactly-sized state segments: any read or write beyond rows/cols would throw. */
    @Test
    void matrixStepRunsOnExactlyRowsPlusColsState() {
        int rows = 37;
        int cols = 29;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = random(arena, rows * cols, 1);
            MemorySegment g = random(arena, rows * cols, 2);
            MemorySegment row = Segs.zeros(arena, rows);
            MemorySegment col = Segs.zeros(arena, cols);
            for (long t = 1; t <= 3; t++) {
                OptimizerKernels.adalomoUpdate(p, g, rows, cols, row, col, null, t, 1e-2f, 1f, 0f, CFG);
            }
            assertEquals(rows + cols, (row.byteSize() + col.byteSize()) / Float.BYTES);
            for (float v : Segs.read(row)) {
                assertTrue(v > 0f, "row state was written");
            }
            for (float v : Segs.read(col)) {
                assertTrue(v > 0f, "col state was written");
            }
        }
    }

    @Test
    void rejectsFullSizeStateForMatricesAndMissingOrShortState() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = Segs.zeros(arena, 12);
            MemorySegment g = Segs.zeros(arena, 12);
            MemorySegment row = Segs.zeros(arena, 3);
            MemorySegment col = Segs.zeros(arena, 4);
            MemorySegment full = Segs.zeros(arena, 12);
            assertThrows(IllegalArgumentException.class,
                    () -> OptimizerKernels.adalomoUpdate(p, g, 3, 4, row, col, full, 1, 1f, 1f, 0f, CFG));
            assertThrows(IllegalArgumentException.class,
                    () -> OptimizerKernels.adalomoUpdate(p, g, 3, 4, null, col, null, 1, 1f, 1f, 0f, CFG));
            assertThrows(IllegalArgumentException.class,
                    () -> OptimizerKernels.adalomoUpdate(p, g, 3, 4, col.asSlice(0, 8), col, null, 1, 1f, 1f, 0f, CFG));
            assertThrows(IllegalArgumentException.class,
                    () -> OptimizerKernels.adalomoUpdate(p, g, 12, 0, null, null, null, 1, 1f, 1f, 0f, CFG));
            assertThrows(IllegalArgumentException.class,
                    () -> OptimizerKernels.adalomoUpdate(p, g, 3, 4, row, col, null, 0, 1f, 1f, 0f, CFG));
        }
    }

    /**
     * A 512 x 512 step may allocate its O(cols) scratch, but not an O(n) buffer (a float32
     * V-hat or update matrix alone would be 1 MiB).
     */
    @Test
    void matrixStepAllocatesNoPerElementBuffers() {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        int rows = 512;
        int cols = 512;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment p = random(arena, rows * cols, 3);
            MemorySegment g = random(arena, rows * cols, 4);
            MemorySegment row = Segs.zeros(arena, rows);
            MemorySegment col = Segs.zeros(arena, cols);
            // Warm up so that one-time class initialisation is not counted.
            for (long t = 1; t <= 2; t++) {
                OptimizerKernels.adalomoUpdate(p, g, rows, cols, row, col, null, t, 1e-4f, 1f, 0f, CFG);
            }
            long tid = Thread.currentThread().threadId();
            long before = threads.getThreadAllocatedBytes(tid);
            OptimizerKernels.adalomoUpdate(p, g, rows, cols, row, col, null, 3, 1e-4f, 1f, 0f, CFG);
            long allocated = threads.getThreadAllocatedBytes(tid) - before;
            long bound = 256L << 10; // >> cols * 8 bytes of scratch, << rows * cols * 4
            assertTrue(allocated < bound, "one step allocated " + allocated + " bytes");
        }
    }

    private static MemorySegment random(Arena arena, int n, long seed) {
        Random rnd = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return Segs.of(arena, v);
    }
}
