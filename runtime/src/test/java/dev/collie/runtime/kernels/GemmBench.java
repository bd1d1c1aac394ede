package dev.collie.runtime.kernels;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.ForkJoinPool;

/**
 * Quick GFLOP/s timing loop (JMH takes long), built for a shared machine.
 *
 * <p>Each trial repeats the call for about 250 ms and reads /proc/stat before and after, so it
 * knows how much CPU other processes took meanwhile. The result is the best trial among those
 * where others used under 5% of the machine ("quiet"); the best of all trials is shown too.
 *
 * <p>Usage: {@code java --add-modules jdk.incubator.vector -cp target/classes:target/test-classes
 * dev.collie.runtime.kernels.GemmBench [threads] [seconds-per-shape] [simd|scalar|both] [shape...]}
 * where a shape is {@code KIND:MxNxK} (KIND = NT, NN or TN; for TN, K is the summed R).
 */
public final class GemmBench {

    private static final String[] DEFAULT_SHAPES = {
        "NT:1024x1024x1024", "NN:1024x1024x1024", "TN:1024x1024x1024",
        // One step of a small transformer: 2048 tokens, d_model 288 / 768, vocabulary 32000.
        "NT:2048x768x288", "NT:2048x32000x288", "NT:2048x2048x768",
    };

    public static void main(String[] args) throws Exception {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 2;
        double seconds = args.length > 1 ? Double.parseDouble(args[1]) : 10.0;
        String which = args.length > 2 ? args[2] : "simd";
        String[] shapes = args.length > 3 ? Arrays.copyOfRange(args, 3, args.length) : DEFAULT_SHAPES;
        ForkJoinPool pool = new ForkJoinPool(threads);
        System.out.printf("threads=%d species=%s MR=%d NR=%d KC=%d MC=%d NC=%d NB=%d%n", threads,
                jdk.incubator.vector.FloatVector.SPECIES_PREFERRED, SimdGemm.MR, SimdGemm.NR, SimdGemm.KC,
                SimdGemm.MC, SimdGemm.NC, SimdGemm.NB);
        for (String shape : shapes) {
            String kind = shape.substring(0, 2);
            String[] d = shape.substring(3).split("x");
            int M = Integer.parseInt(d[0]);
            int N = Integer.parseInt(d[1]);
            int K = Integer.parseInt(d[2]);
            try (Arena arena = Arena.ofShared()) {
                MemorySegment a = random(arena, (long) M * K, 1);
                MemorySegment b = random(arena, (long) K * N, 2);
                MemorySegment c = arena.allocate((long) M * N * 4, 64);
                double flops = 2.0 * M * N * K;
                StringBuilder line = new StringBuilder(String.format("%s %5dx%5dx%5d", kind, M, N, K));
                for (String impl : which.equals("both") ? new String[] {"simd", "scalar"} : new String[] {which}) {
                    boolean scalar = impl.equals("scalar");
                    Result r = time(pool, seconds, () -> run(scalar, kind, a, b, c, M, N, K, threads));
                    line.append(String.format("  %s %6.1f GFLOP/s quiet (%d of %d trials), %6.1f best",
                            scalar ? "CpuKernels" : "SimdGemm", flops / r.quietBest / 1e9, r.quiet, r.trials,
                            flops / r.best / 1e9));
                }
                System.out.println(line);
            }
        }
        pool.shutdown();
    }

    static void run(boolean scalar, String kind, MemorySegment a, MemorySegment b, MemorySegment c,
                    int M, int N, int K, int threads) {
        switch (kind) {
            case "NT" -> {
                if (scalar) CpuKernels.matmulNT(a, b, c, M, N, K, false);
                else SimdGemm.matmulNT(a, b, c, M, N, K, false, threads);
            }
            case "NN" -> {
                if (scalar) CpuKernels.matmulNN(a, b, c, M, N, K, false);
                else SimdGemm.matmulNN(a, b, c, M, N, K, false, threads);
            }
            case "TN" -> {
                if (scalar) CpuKernels.matmulTN(a, b, c, K, M, N, false);
                else SimdGemm.matmulTN(a, b, c, K, M, N, false, threads);
            }
            default -> throw new IllegalArgumentException(kind);
        }
    }

    /** Seconds per call: best of quiet trials (or of all, if none was quiet), best of all. */
    record Result(double quietBest, double best, int quiet, int trials) {
    }

    static Result time(ForkJoinPool pool, double seconds, Runnable r) throws Exception {
        int cpus = Runtime.getRuntime().availableProcessors();
        long warmEnd = System.nanoTime() + (long) Math.min(3e9, seconds * 0.2e9);
        do {
            pool.submit(r).get();
        } while (System.nanoTime() < warmEnd);
        double best = Double.MAX_VALUE;
        double quietBest = Double.MAX_VALUE;
        int quiet = 0;
        int trials = 0;
        long end = System.nanoTime() + (long) (seconds * 1e9);
        while (trials < 3 || System.nanoTime() < end) {
            long[] sys0 = systemJiffies();
            long self0 = selfJiffies();
            long t0 = System.nanoTime();
            int calls = 0;
            double fastest = Double.MAX_VALUE;
            long t;
            do {
                long c0 = System.nanoTime();
                pool.submit(r).get();
                t = System.nanoTime();
                fastest = Math.min(fastest, (t - c0) * 1e-9);
                calls++;
            } while (t - t0 < 250_000_000L);
            long[] sys1 = systemJiffies();
            long self1 = selfJiffies();
            double total = (sys1[1] - sys0[1]);
            double others = (sys1[0] - sys0[0]) - (self1 - self0);
            boolean isQuiet = total > 0 && others / total < 0.05;
            trials++;
            best = Math.min(best, fastest);
            if (isQuiet) {
                quiet++;
                quietBest = Math.min(quietBest, fastest);
            }
        }
        return new Result(quiet > 0 ? quietBest : best, best, quiet, trials);
    }

    /** {busy, total} jiffies of all CPUs together, from /proc/stat. */
    private static long[] systemJiffies() throws IOException {
        String[] f = Files.readAllLines(Path.of("/proc/stat")).get(0).trim().split("\\s+");
        long busy = 0;
        long total = 0;
        for (int i = 1; i < f.length; i++) {
            long v = Long.parseLong(f[i]);
            total += v;
            if (i != 4 && i != 5) { // idle, iowait
                busy += v;
            }
        }
        return new long[] {busy, total};
    }

    /** utime + stime of this process, in jiffies, from /proc/self/stat. */
    private static long selfJiffies() throws IOException {
        String s = Files.readString(Path.of("/proc/self/stat"));
        String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }

    static MemorySegment random(Arena arena, long n, long seed) {
        MemorySegment s = arena.allocate(n * 4, 64);
        Random rnd = new Random(seed);
        for (long i = 0; i < n; i++) {
            s.setAtIndex(ValueLayout.JAVA_FLOAT, i, rnd.nextFloat() * 2 - 1);
        }
        return s;
    }
}
