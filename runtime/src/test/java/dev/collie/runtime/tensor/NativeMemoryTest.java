package dev.collie.runtime.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class NativeMemoryTest {

    private static final boolean LINUX = System.getProperty("os.name", "").toLowerCase().contains("linux");

    /** Blocks from a huge page up start on a huge-page boundary; smaller ones on a cache line; both are counted and uncounted. */
    @Test
    void largeBlocksAreHugePageAlignedAndAccounted() {
        long before = NativeMemory.currentBytes();
        MemorySegment small = NativeMemory.allocate(1000);
        MemorySegment large = NativeMemory.allocate(3 * NativeMemory.HUGE_PAGE + 5);
        try {
            assertEquals(0, small.address() % NativeMemory.ALIGNMENT);
            assertEquals(1000, small.byteSize());
            assertEquals(3 * NativeMemory.HUGE_PAGE + 5, large.byteSize());
            assertEquals(LINUX, NativeMemory.hugePages(large.byteSize()));
            assertTrue(!NativeMemory.hugePages(small.byteSize()));
            if (LINUX) {
                assertEquals(0, large.address() % NativeMemory.HUGE_PAGE, "huge-page aligned");
                assertEquals(before + 1024 + 4 * NativeMemory.HUGE_PAGE, NativeMemory.currentBytes());
            }
            large.set(ValueLayout.JAVA_BYTE, large.byteSize() - 1, (byte) 7);
            assertEquals(7, large.get(ValueLayout.JAVA_BYTE, large.byteSize() - 1));
        } finally {
            NativeMemory.free(small);
            NativeMemory.free(large);
        }
        assertEquals(before, NativeMemory.currentBytes());
    }

    /** Where the kernel offers transparent huge pages on request, a large block touched end to end gets them. */
    @Test
    void largeBlocksGetHugePagesWhereTheKernelOffersThem() throws IOException {
        Path policy = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
        Assumptions.assumeTrue(LINUX && Files.exists(policy) && !Files.readString(policy).contains("[never]"),
                "the kernel has no transparent huge pages");
        MemorySegment block = NativeMemory.allocate(8 * NativeMemory.HUGE_PAGE);
        try {
            block.fill((byte) 1);
            long kb = anonHugeKb(block.address());
            assertTrue(kb >= 2048, "AnonHugePages of the block's mapping: " + kb + " kB");
        } finally {
            NativeMemory.free(block);
        }
    }

    /** The first line of a mapping's entry: its address range, "start-end perms ...". */
    private static final Pattern MAPPING = Pattern.compile("^([0-9a-f]+)-([0-9a-f]+) ");

    /** AnonHugePages (kB) of the mapping in /proc/self/smaps that contains {@code address}. */
    private static long anonHugeKb(long address) throws IOException {
        boolean inside = false;
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            Matcher range = MAPPING.matcher(line);
            if (range.find()) {
                inside = Long.parseUnsignedLong(range.group(1), 16) <= address
                        && address < Long.parseUnsignedLong(range.group(2), 16);
            } else if (inside && line.startsWith("AnonHugePages:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        return -1;
    }
}
