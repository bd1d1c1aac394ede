package dev.collie.runtime.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Once compiled, the kernels make no garbage of their own. A vector passed to a helper that C2 does not
 * inline is boxed on every call (a Float256Vector and its float[] payload): the attention's tile kernels
 * did that, about 60 MB of garbage per 15m training step, until they spelled their output update out.
 *
 * <p>Each kernel runs in a fresh JVM, as in a training run, until C2 has compiled it (at most a minute);
 * then the bytes allocated per call, by all threads, must stay far below what boxing made. (In the test
 * suite's own JVM, thousands of earlier random shapes can leave a kernel deoptimized into C1 code, which
 * boxes every vector, so that JVM measures the suite's history rather than the kernel.)
 */
class SteadyStateAllocationTest {

    /** Bytes per call above which a kernel is taken to box vectors in compiled code. */
    private static final long LIMIT = 64 * 1024;

    @Test
    void attentionForwardAndBackwardAllocateAlmostNothingOnceCompiled() throws Exception {
        // At this shape the boxing kernels made 430 KB per call once compiled; these make under 1 KB.
        assertBelow("attention forward + backward", perCallInFreshJvm("attention"));
    }

    @Test
    void gemmInEveryLayoutAllocatesAlmostNothingOnceCompiled() throws Exception {
        assertBelow("NT, NN and TN products", perCallInFreshJvm("gemm"));
    }

    @Test
    void fusedElementwiseKernelsAllocateAlmostNothingOnceCompiled() throws Exception {
        assertBelow("SwiGLU and RMSNorm forward + backward", perCallInFreshJvm("elementwise"));
    }

    private static void assertBelow(String what, long perCall) {
        assertTrue(perCall <= LIMIT, what + " allocate " + perCall + " bytes per call");
    }

    private static long perCallInFreshJvm(String kernel) throws IOException, InterruptedException {
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx512m",
                "-cp", System.getProperty("java.class.path"), SteadyStateAllocationTest.class.getName(), kernel);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS) && p.exitValue() == 0, "child: " + out);
        for (String line : out.split("\n")) {
            if (line.startsWith("PER_CALL ")) {
                return Long.parseLong(line.substring("PER_CALL ".length()).trim());
            }
        }
        throw new AssertionError("no PER_CALL line from the child: " + out);
    }

    /** The child: runs one kernel group to steady state and prints its bytes per call. */
    public static void main(String[] args) {
        try (Arena arena = Arena.ofShared()) {
            Runnable step = switch (args[0]) {
                case "attention" -> attention(arena);
                case "gemm" -> gemm(arena);
                case "elementwise" -> elementwise(arena);
                default -> throw new IllegalArgumentException(args[0]);
            };
            var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
            long perCall = Long.MAX_VALUE;
            long deadline = System.nanoTime() + 60_000_000_000L;
            // the interpreter and C1 box every vector: only C2's code is judged
            while (perCall > LIMIT && System.nanoTime() < deadline) {
                for (int i = 0; i < 50; i++) {
                    step.run();
                }
                long before = threads.getTotalThreadAllocatedBytes();
                for (int i = 0; i < 20; i++) {
                    step.run();
                }
                perCall = (threads.getTotalThreadAllocatedBytes() - before) / 20;
            }
            System.out.println("PER_CALL " + perCall);
        }
    }

    private static MemorySegment random(Arena arena, long n, long seed) {
        MemorySegment m = arena.allocate(n * Float.BYTES, 64);
        SplittableRandom rng = new SplittableRandom(seed);
        for (long j = 0; j < n; j++) {
            m.setAtIndex(ValueLayout.JAVA_FLOAT, j, (float) rng.nextDouble(-1, 1));
        }
        return m;
    }

    private static Runnable attention(Arena arena) {
        int B = 1, H = 2, T = 256, D = 48;
        long n = (long) B * T * H * D;
        MemorySegment[] t = new MemorySegment[8];
        for (int i = 0; i < t.length; i++) {
            t[i] = random(arena, n, 7 + i);
        }
        MemorySegment lse = arena.allocate((long) B * H * T * Float.BYTES, 64);
        FlashAttention.Rotary rotary = new FlashAttention.Rotary(10000.0, null);
        float scale = (float) (1 / Math.sqrt(D));
        return () -> {
            FlashAttention.forwardTokenMajor(t[0], t[1], t[2], t[3], B, H, H, T, D, true, scale, null, lse, rotary);
            FlashAttention.backwardTokenMajor(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], B, H, H, T, D, true,
                    scale, null, lse, rotary);
        };
    }

    private static Runnable gemm(Arena arena) {
        int M = 200, N = 136, K = 300;
        MemorySegment a = random(arena, (long) M * K, 1), b = random(arena, (long) N * K, 2);
        MemorySegment c = arena.allocate((long) M * N * Float.BYTES, 64);
        return () -> {
            SimdGemm.matmulNT(a, b, c, M, N, K, false);
            SimdGemm.matmulNN(a, b, c, M, N, K, false);
            SimdGemm.matmulTN(a, b, c, K, M, N, true);
        };
    }

    private static Runnable elementwise(Arena arena) {
        int rows = 64, C = 288;
        long n = (long) rows * C;
        MemorySegment x = random(arena, n, 3), y = random(arena, n, 4), dy = random(arena, n, 5);
        MemorySegment w = random(arena, C, 6), out = arena.allocate(n * Float.BYTES, 64);
        MemorySegment dx = arena.allocate(n * Float.BYTES, 64), dx2 = arena.allocate(n * Float.BYTES, 64);
        MemorySegment dw = arena.allocate((long) C * Float.BYTES, 64);
        return () -> {
            VectorOps.swigluForward(x, y, out, n);
            VectorOps.swigluBackward(x, y, dy, dx, dx2, n);
            FusedNorms.rmsNormForward(x, w, out, rows, C, 1e-5f);
            FusedNorms.rmsNormBackward(x, w, dy, dx, dw, rows, C, 1e-5f);
        };
    }
}
