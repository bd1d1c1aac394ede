package dev.collie.runtime.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

/**
 * What the memory hierarchy costs the GEMM kernel: {@link SimdGemm#macroKernel} on one thread, with
 * the same blocking (an MC-row A block against KC x NB parts of packed B) and the same output block,
 * where only the number of distinct B parts it cycles through changes. One part stays in L2 across
 * calls; 4 parts (768 KiB at the defaults) come from L3; 64 parts (12 MiB, a training step's working
 * set) come from further out. Configurations alternate every half second in one JVM, so each round's
 * figures share the machine's speed of that moment.
 *
 * <p>Usage: {@code java --add-modules jdk.incubator.vector -cp runtime/target/classes:runtime/target/test-classes
 * dev.collie.runtime.kernels.KernelFootprintBench [kp nb] [parts:mc ...]} (default: 384 128, 1:48 4:48 64:48
 * 64:96 64:192).
 */
public final class KernelFootprintBench {

    public static void main(String[] args) {
        int kp = args.length >= 2 ? Integer.parseInt(args[0]) : 384;
        int nb = args.length >= 2 ? Integer.parseInt(args[1]) : 128;
        String[] modes = args.length > 2 ? java.util.Arrays.copyOfRange(args, 2, args.length)
                : new String[] {"1:48", "4:48", "64:48", "64:96", "64:192"};
        int maxParts = 0;
        int maxRows = 0;
        for (String m : modes) {
            String[] f = m.split(":");
            maxParts = Math.max(maxParts, Integer.parseInt(f[0]));
            maxRows = Math.max(maxRows, Integer.parseInt(f[1]));
        }
        if (kp > SimdGemm.KC || kp % 2 != 0) {
            throw new IllegalArgumentException("kp must be even and at most KC = " + SimdGemm.KC);
        }
        // Packed A has row stride LDA = KC + 16 (SimdGemm.packA); its rows are random, as are B's parts.
        Random rnd = new Random(1);
        float[] ap = new float[(maxRows + SimdGemm.MR) * (SimdGemm.KC + 16)];
        float[] bp = new float[kp * nb * maxParts];
        for (int i = 0; i < ap.length; i++) {
            ap[i] = rnd.nextFloat();
        }
        for (int i = 0; i < bp.length; i++) {
            bp[i] = rnd.nextFloat();
        }
        MemorySegment c = Arena.ofAuto().allocate((long) maxRows * nb * Float.BYTES, 64);
        // "parts:rows:c" writes each call's block to its own place in a [1024, 768] output (3 MiB, as
        // a 110m projection's), as the GEMM does, instead of one block that stays in cache.
        int bigRows = 1024;
        int bigCols = 768;
        MemorySegment big = Arena.ofAuto().allocate((long) (bigRows + maxRows) * bigCols * Float.BYTES, 64);
        float[] tile = new float[SimdGemm.MR * SimdGemm.NR];
        System.out.printf("GFLOP/s on one thread, kp=%d nb=%d, by parts:rows (B footprint parts x %d KiB)%n",
                kp, nb, kp * nb * 4 / 1024);
        for (int round = 0; round < 7; round++) {
            StringBuilder line = new StringBuilder();
            for (String m : modes) {
                String[] f = m.split(":");
                int parts = Integer.parseInt(f[0]);
                int rows = Integer.parseInt(f[1]);
                boolean spread = f.length > 2;
                long t0 = System.nanoTime();
                long rowsDone = 0;
                while (System.nanoTime() - t0 < 500_000_000L) {
                    for (int p = 0; p < parts; p++) {
                        if (spread) {
                            long block = rowsDone / rows + p;
                            long row = block * rows % bigRows;
                            long col = (block * rows / bigRows) * nb % (bigCols - nb + 1);
                            SimdGemm.macroKernel(rows, nb, kp, ap, bp, p * kp * nb, big,
                                    (row * bigCols + col) * Float.BYTES, (long) bigCols * Float.BYTES, false, tile, false);
                        } else {
                            SimdGemm.macroKernel(rows, nb, kp, ap, bp, p * kp * nb, c, 0, (long) nb * Float.BYTES, false,
                                    tile, false);
                        }
                    }
                    rowsDone += (long) parts * rows;
                }
                double seconds = (System.nanoTime() - t0) * 1e-9;
                line.append(String.format("%8s %6.1f", m, 2.0 * nb * kp * rowsDone / seconds / 1e9));
            }
            if (round > 0) { // the first round runs while C2 compiles
                System.out.println(line);
            }
        }
    }
}
