package dev.collie.runtime.bench;

import dev.collie.runtime.kernels.CpuKernels;
import dev.collie.runtime.kernels.FlashAttention;
import dev.collie.runtime.kernels.FusedKernels;
import dev.collie.runtime.kernels.FusedRope;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * JMH microbenchmarks of the CPU kernels at the shapes of the 15m LLaMA preset (B=8, T=256, C=288,
 * 6 heads of 48, hidden 768, vocabulary 32000): each fast kernel beside its scalar reference.
 *
 * <pre>
 * ./mvnw -q -pl runtime -am test-compile -DskipTests
 * java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
 *   -cp runtime/target/test-classes:runtime/target/classes:$(cat runtime/target/test-classpath.txt) \
 *   org.openjdk.jmh.Main KernelsJmh
 * </pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class KernelsJmh {

    static final int B = 8, T = 256, C = 288, H = 6, D = 48, HIDDEN = 768, V = 32000;

    private Arena arena;
    private MemorySegment x, w, y, q, k, v, o, dq, dk, dv, rot, targets, h, wHead, dh, dwHead;

    private MemorySegment random(long floats, SplittableRandom rng) {
        MemorySegment s = arena.allocate(floats * 4, 64);
        for (long i = 0; i < floats; i++) {
            s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (rng.nextDouble() * 2 - 1));
        }
        return s;
    }

    @Setup(Level.Trial)
    public void setUp() {
        arena = Arena.ofShared();
        SplittableRandom rng = new SplittableRandom(1);
        x = random((long) B * T * C, rng);
        w = random((long) HIDDEN * C, rng);
        y = random((long) B * T * HIDDEN, rng);
        q = random((long) B * H * T * D, rng);
        k = random((long) B * H * T * D, rng);
        v = random((long) B * H * T * D, rng);
        o = random((long) B * H * T * D, rng);
        dq = random((long) B * H * T * D, rng);
        dk = random((long) B * H * T * D, rng);
        dv = random((long) B * H * T * D, rng);
        rot = random((long) B * H * T * D, rng);
        h = random((long) 512 * C, rng);
        wHead = random((long) V * C, rng);
        dh = random((long) 512 * C, rng);
        dwHead = random((long) V * C, rng);
        targets = arena.allocate(512L * 8, 8);
        for (int i = 0; i < 512; i++) {
            targets.setAtIndex(ValueLayout.JAVA_LONG, i, rng.nextInt(V));
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public void linearScalar() {
        CpuKernels.matmulNT(x, w, y, B * T, HIDDEN, C, false);
    }

    @Benchmark
    public void attentionForwardScalar() {
        CpuKernels.attentionForward(q, k, v, o, B, H, H, T, D, true, 0.144f);
    }

    @Benchmark
    public void attentionForwardFlash() {
        FlashAttention.forward(q, k, v, o, B, H, H, T, D, true, 0.144f, null);
    }

    @Benchmark
    public void attentionBackwardScalar() {
        CpuKernels.attentionBackward(q, k, v, o, dq, dk, dv, B, H, H, T, D, true, 0.144f);
    }

    @Benchmark
    public void attentionBackwardFlash() {
        FlashAttention.backward(q, k, v, o, o, dq, dk, dv, B, H, H, T, D, true, 0.144f, null, null);
    }

    @Benchmark
    public void ropeScalar() {
        CpuKernels.rope(q, rot, B, H, T, D, 10000.0, false);
    }

    @Benchmark
    public void ropeCached() {
        FusedRope.rope(q, rot, B, H, T, D, 10000.0, false);
    }

    @Benchmark
    public double headCrossEntropy512Tokens() {
        return FusedKernels.linearCrossEntropy(h, wHead, targets, dh, dwHead, 512, C, V, -100);
    }
}
