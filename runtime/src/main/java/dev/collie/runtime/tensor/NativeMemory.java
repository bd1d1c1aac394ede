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

    /** An uninitialised buffer of {@code bytes} (at least 1), 64-byte aligned. */
    public static MemorySegment allocate(long bytes) {
        long size = Math.max(ALIGNMENT, (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT);
        MemorySegment raw;
        try {
            raw = (MemorySegment) ALIGNED_ALLOC.invokeExact(ALIGNMENT, size);
        } catch (Throwable t) {
            throw new IllegalStateException("aligned_alloc failed", t);
        }
        if (raw.address() == 0) {
            throw new OutOfMemoryError("cannot allocate " + bytes + " bytes off-heap");
        }
        long now = CURRENT.addAndGet(size);
        PEAK.accumulateAndGet(now, Math::max);
        return raw.reinterpret(bytes);
    }

    public static void free(MemorySegment segment) {
        long size = Math.max(ALIGNMENT, (segment.byteSize() + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT);
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
