package dev.collie.runtime.tensor;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Off-heap buffers from the C allocator, freed explicitly at a value's last use. Arenas do not fit:
 * a confined arena cannot be shared with kernel threads, and closing a shared arena per buffer costs
 * a handshake with every thread. Tracks current and peak bytes so runs can report measured memory.
 */
public final class NativeMemory {

    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle ALIGNED_ALLOC = LINKER.downcallHandle(
            LINKER.defaultLookup().find("aligned_alloc").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
    private static final MethodHandle FREE = LINKER.downcallHandle(
            LINKER.defaultLookup().find("free").orElseThrow(),
            FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));
    /** Cache-line alignment, which also suits every SIMD width in use. */
    public static final long ALIGNMENT = 64;

    /**
     * Blocks of at least this size (a huge page) are aligned to it and advised to the kernel as
     * candidates for transparent huge pages ({@code madvise(MADV_HUGEPAGE)}; Linux, where the default
     * policy only gives them to memory that asks). The GEMMs stream weights and the head's logits with
     * strides of up to 128 KB, and with 4 KiB pages such a walk misses the TLB on nearly every row:
     * huge pages made the fused head's three products 4-9% faster and 1b's NN and NT products 3-5%
     * (in one JVM, 4 KiB and huge-page copies of the same operands alternated). Off with
     * {@code -Dcollie.hugePages=false}.
     */
    static final long HUGE_PAGE = 2L << 20;
    private static final int MADV_HUGEPAGE = 14;
    private static final MethodHandle MADVISE = hugePageAdvice();

    private static final AtomicLong CURRENT = new AtomicLong();
    private static final AtomicLong PEAK = new AtomicLong();

    static {
        fixMmapThreshold();
    }

    private NativeMemory() {}

    /**
     * glibc raises its mmap threshold each time it frees an mmapped block (up to 32 MiB), after which
     * blocks below that size come from the heap, where freed memory stays in the process. Weight-sized
     * temporaries (a bf16 weight widened for its update, an initialiser's float copy) then pile up:
     * a 1b bf16 run held 1.9 GB more than it ever had live. A fixed threshold (which mallopt sets and
     * so turns the adjustment off) returns every block of 256 KiB or more to the OS when it is freed.
     * Other C libraries have no mallopt or no such adjustment; then nothing is done.
     */
    private static void fixMmapThreshold() {
        var mallopt = LINKER.defaultLookup().find("mallopt");
        if (mallopt.isEmpty()) {
            return;
        }
        try {
            MethodHandle h = LINKER.downcallHandle(mallopt.get(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
            int mmapThreshold = -3; // M_MMAP_THRESHOLD
            int ignored = (int) h.invokeExact(mmapThreshold, 256 * 1024);
        } catch (Throwable t) {
            // only a memory-return optimisation; the allocator works either way
        }
    }

    /** madvise, where huge pages are wanted and the C library has it (Linux); otherwise null. */
    private static MethodHandle hugePageAdvice() {
        if (!Boolean.parseBoolean(System.getProperty("collie.hugePages", "true"))
                || !System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux")) {
            return null;
        }
        return LINKER.defaultLookup().find("madvise").map(f -> LINKER.downcallHandle(f,
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT)))
                .orElse(null);
    }

    /** Whether a block of {@code bytes} is aligned to and advised for huge pages. */
    static boolean hugePages(long bytes) {
        return MADVISE != null && bytes >= HUGE_PAGE;
    }

    /** Alignment of a block of {@code bytes}: a huge page for those advised, else a cache line. */
    private static long alignment(long bytes) {
        return hugePages(bytes) ? HUGE_PAGE : ALIGNMENT;
    }

    /** Bytes taken from the C allocator for a block of {@code bytes}: a whole number of its alignment. */
    private static long blockSize(long bytes) {
        long alignment = alignment(bytes);
        return Math.max(ALIGNMENT, (bytes + alignment - 1) / alignment * alignment);
    }

    /** An uninitialised buffer of {@code bytes} (at least 1), 64-byte aligned (2 MiB from 2 MiB up). */
    public static MemorySegment allocate(long bytes) {
        long size = blockSize(bytes);
        boolean huge = hugePages(bytes);
        MemorySegment raw;
        try {
            raw = (MemorySegment) ALIGNED_ALLOC.invokeExact(alignment(bytes), size);
        } catch (Throwable t) {
            throw new IllegalStateException("aligned_alloc failed", t);
        }
        if (raw.address() == 0) {
            throw new OutOfMemoryError("cannot allocate " + bytes + " bytes off-heap");
        }
        if (huge) {
            try {
                // Before the first touch, so that the page faults themselves get huge pages. Advice
                // only: a kernel without transparent huge pages refuses it and nothing changes.
                int ignored = (int) MADVISE.invokeExact(raw, size, MADV_HUGEPAGE);
            } catch (Throwable t) {
                // the memory is usable either way
            }
        }
        long now = CURRENT.addAndGet(size);
        PEAK.accumulateAndGet(now, Math::max);
        return raw.reinterpret(bytes);
    }

    public static void free(MemorySegment segment) {
        long size = blockSize(segment.byteSize());
        try {
            FREE.invokeExact(segment);
        } catch (Throwable t) {
            throw new IllegalStateException("free failed", t);
        }
        CURRENT.addAndGet(-size);
    }

    public static long currentBytes() {
        return CURRENT.get();
    }

    public static long peakBytes() {
        return PEAK.get();
    }

    public static void resetPeak() {
        PEAK.set(CURRENT.get());
    }
}
