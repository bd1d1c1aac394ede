package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Random;
import java.util.concurrent.ForkJoinPool;

/**
 * Milliseconds per call (wall clock, best of several runs) of the scalar reference kernels against
 * {@link FlashAttention} and {@link FusedRope}, causal attention at the shapes of three LLaMA
 * sizes. Arguments: reference runs, SIMD runs, threads (a ForkJoinPool of that size; default the
 * common pool). With one thread, all work runs on the pool's only worker and the times are that
 * thread's CPU time, which other load on the machine hardly disturbs. Run with the test classpath:
 *
 * <pre>
 * java --add-modules jdk.incubator.vector -cp target/classes:target/test-classes \
 *      dev.collie.runtime.kernels.AttentionBenchmark 3 30 2
 * </pre>
 */
public final class AttentionBenchmark {

    private record Shape(String name, int B, int H, int KV, int T, int D) {
    }

    private static final Shape[] SHAPES = {
            new Shape("15M  B=8 H=6 T=256 D=48", 8, 6, 6, 256, 48),
            new Shape("110M B=4 H=12 T=256 D=64", 4, 12, 12, 256, 64),
            new Shape("1B   B=1 H=32 KV=4 T=256 D=64", 1, 32, 4, 256, 64),
    };

    private AttentionBenchmark() {
    }

    public static void main(String[] args) throws Exception {
        int scalarRuns = args.length > 0 ? Integer.parseInt(args[0]) : 3;
        int simdRuns = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        // Parallel streams run in the pool of the task that starts them.
        ForkJoinPool pool = args.length > 2 ? new ForkJoinPool(Integer.parseInt(args[2])) : ForkJoinPool.commonPool();
        int threads = pool.getParallelism();
        cpuTime = threads == 1;
        pool.submit(() -> table(scalarRuns, simdRuns, threads)).get();
    }

    /** Time by the current thread's CPU time instead of the wall clock. */
    private static boolean cpuTime;

    private static void table(int scalarRuns, int simdRuns, int threads) {
        System.out.printf("threads=%d (%s), vector=%d floats, tiles %dx%d%n", threads,
                cpuTime ? "thread CPU time" : "wall clock", jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length(),
                FlashAttention.BR, FlashAttention.BC);
        System.out.printf("%-31s %10s %10s %10s | %9s %9s %9s %9s | %8s | %9s %9s%n", "shape (causal)",
                "ref fwd", "ref bwd", "ref f+b", "simd fwd", "simd bwd", "bwd nolse", "simd f+b", "speedup",
                "ref rope", "simd rope");
        for (Shape s : SHAPES) {
            run(s, scalarRuns, simdRuns);
        }
    }

    private static void run(Shape s, int scalarRuns, int simdRuns) {
        try (Arena arena = Arena.ofShared()) {
            Random rnd = new Random(1);
            long qn = (long) s.B * s.H * s.T * s.D;
            long kvn = (long) s.B * s.KV * s.T * s.D;
            MemorySegment q = AttentionCase.random(arena, qn, rnd, 1f);
            MemorySegment k = AttentionCase.random(arena, kvn, rnd, 1f);
            MemorySegment v = AttentionCase.random(arena, kvn, rnd, 1f);
            MemorySegment dout = AttentionCase.random(arena, qn, rnd, 1f);
            MemorySegment out = AttentionCase.floats(arena, qn);
            MemorySegment lse = AttentionCase.floats(arena, (long) s.B * s.H * s.T);
            MemorySegment dq = AttentionCase.floats(arena, qn);
            MemorySegment dk = AttentionCase.floats(arena, kvn);
            MemorySegment dv = AttentionCase.floats(arena, kvn);
            MemorySegment roped = AttentionCase.floats(arena, qn);
            float scale = (float) (1 / Math.sqrt(s.D));

            double refFwd = best(scalarRuns, () -> CpuKernels.attentionForward(q, k, v, out, s.B, s.H, s.KV, s.T, s.D,
                    true, scale, null));
            double refBwd = best(scalarRuns, () -> CpuKernels.attentionBackward(q, k, v, dout, dq, dk, dv, s.B, s.H,
                    s.KV, s.T, s.D, true, scale, null));
            double simdFwd = best(simdRuns, () -> FlashAttention.forward(q, k, v, out, s.B, s.H, s.KV, s.T, s.D, true,
                    scale, null, lse));
            double simdBwd = best(simdRuns, () -> FlashAttention.backward(q, k, v, out, dout, dq, dk, dv, s.B, s.H,
                    s.KV, s.T, s.D, true, scale, null, lse));
            double simdBwdNoLse = best(simdRuns, () -> FlashAttention.backward(q, k, v, out, dout, dq, dk, dv, s.B,
                    s.H, s.KV, s.T, s.D, true, scale, null, null));
            double refRope = best(simdRuns, () -> CpuKernels.rope(q, roped, s.B, s.H, s.T, s.D, 10000.0, false));
            double simdRope = best(simdRuns, () -> FusedRope.rope(q, roped, s.B, s.H, s.T, s.D, 10000.0, false));
            System.out.printf("%-31s %10.2f %10.2f %10.2f | %9.2f %9.2f %9.2f %9.2f | %7.1fx | %9.3f %9.3f%n",
                    s.name, refFwd, refBwd, refFwd + refBwd, simdFwd, simdBwd, simdBwdNoLse, simdFwd + simdBwd,
                    (refFwd + refBwd) / (simdFwd + simdBwd), refRope, simdRope);
        }
    }

    /** Best time in ms over {@code runs} timed calls, after as many untimed warm-up calls. */
    private static double best(int runs, Runnable call) {
        for (int i = 0; i < runs; i++) {
            call.run();
        }
        ThreadMXBean bean = ManagementFactory.getThreadMXBean();
        double best = Double.MAX_VALUE;
        for (int i = 0; i < runs; i++) {
            long t0 = cpuTime ? bean.getCurrentThreadCpuTime() : System.nanoTime();
            call.run();
            long t1 = cpuTime ? bean.getCurrentThreadCpuTime() : System.nanoTime();
            best = Math.min(best, (t1 - t0) / 1e6);
        }
        return best;
    }
}
