package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * JMH timing of {@link SimdGemm} (and optionally {@link CpuKernels}) on a pool of {@code threads}
 * workers. Score is milliseconds per call; GFLOP/s = 2*M*N*K / score / 1e6.
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/classes:target/test-classes:$(cat target/cp.txt) \
 *     org.openjdk.jmh.Main GemmJmh -p shape=NT:1024x1024x1024
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class GemmJmh {

    /** KIND:MxNxK; for TN, K is the summed dimension R. */
    @Param({"NT:1024x1024x1024", "NN:1024x1024x1024", "TN:1024x1024x1024",
            "NT:2048x768x288", "NT:2048x32000x288", "NT:2048x2048x768",
            // 1b at batch 1 x 256: the few-row products (NT swaps its operands, NN packs rows end to end)
            "NT:256x5632x2048", "NT:256x2048x2048", "NN:256x2048x5632", "NN:256x2048x2048"})
    public String shape;

    @Param({"2"})
    public int threads;

    /** simd, scalar (CpuKernels), or unswapped (NT with the operands' roles kept, the swap's baseline). */
    @Param({"simd"})
    public String impl;

    private Arena arena;
    private MemorySegment a, b, c;
    private ForkJoinPool pool;
    private String kind;
    private int M, N, K;
    private boolean scalar;
    private Runnable call;

    @Setup(Level.Trial)
    public void setUp() {
        kind = shape.substring(0, 2);
        String[] d = shape.substring(3).split("x");
        M = Integer.parseInt(d[0]);
        N = Integer.parseInt(d[1]);
        K = Integer.parseInt(d[2]);
        scalar = impl.equals("scalar");
        arena = Arena.ofShared();
        a = GemmBench.random(arena, (long) M * K, 1);
        b = GemmBench.random(arena, (long) K * N, 2);
        c = arena.allocate((long) M * N * 4, 64);
        pool = new ForkJoinPool(threads);
        call = impl.equals("unswapped") && kind.equals("NT")
                ? () -> SimdGemm.matmulNTUnswapped(a, b, false, c, M, N, K, false, threads)
                : () -> GemmBench.run(scalar, kind, a, b, c, M, N, K, threads);
    }

    @Benchmark
    public void gemm() throws Exception {
        pool.submit(call).get();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        pool.shutdown();
        arena.close();
    }
}
