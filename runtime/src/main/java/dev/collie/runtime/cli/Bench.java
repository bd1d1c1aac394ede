package dev.collie.runtime.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.collie.compiler.analysis.ModelFlops;
import dev.collie.compiler.cli.CliSupport;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.runtime.data.Batch;
import dev.collie.runtime.data.Example;
import dev.collie.runtime.exec.Session;
import dev.collie.runtime.kernels.SimdGemm;
import dev.collie.runtime.tensor.NativeMemory;
import dev.collie.runtime.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * `collie bench`: full-parameter training steps on random tokens, timed, as one JSON line — the
 * figure to put beside the PyTorch peer (../shared/bench/torch_peer.py) run on the same machine.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Time training steps and print tokens/s, TGS, MFU and peak RSS as one JSON line.")
final class Bench implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "FILE|PLAN")
    Path model;

    @Option(names = "--preset", required = true) String preset;
    @Option(names = "--batch-size", defaultValue = "8") int batch;
    @Option(names = "--seq-len", defaultValue = "256") int seq;
    @Option(names = "--steps", defaultValue = "6", description = "timed steps (median reported)") int steps;
    @Option(names = "--warmup", defaultValue = "2") int warmup;
    @Option(names = "--dtype", defaultValue = "fp32", description = "fp32 or bf16 (weight storage)") String dtype;
    @Option(names = "--optimizer", defaultValue = "lomo") String optimizer;
    @Option(names = "--lr", defaultValue = "1e-3") double lr;
    @Option(names = "--profile", description = "also print the time spent per op (stderr)") boolean profile;
    @Option(names = "--activation-checkpointing", arity = "0..1", fallbackValue = "full", paramLabel = "MODE",
            description = "full (when given alone) or selective: recompute each block's forward (or its cheap ops)")
    String checkpointing;

    @Option(names = "--disable-pass", paramLabel = "PASS",
            description = "leave out a Fuse pass, to measure what it gains (as colliec's --disable-pass)")
    List<String> disabled;

    @Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        CollieMain.requireFile(model, "model");
        if (!dtype.equals("fp32") && !dtype.equals("bf16")) {
            throw new CliSupport.UsageError("--dtype must be fp32 or bf16, got " + dtype);
        }
        if (batch < 1 || seq < 2 || steps < 1 || warmup < 0) {
            throw new CliSupport.UsageError("--batch-size >= 1, --seq-len >= 2, --steps >= 1 and --warmup >= 0");
        }
        try (Session s = Session.open(Session.ModelSpec.of(model, preset, Map.of()), null, 0,
                dtype.equals("bf16") ? dev.collie.compiler.ir.DType.BF16 : dev.collie.compiler.ir.DType.F32,
                dev.collie.compiler.passes.CompileOptions.DEFAULT
                        .withDisabled(dev.collie.compiler.cli.CliSupport.disabledPasses(disabled))
                        .withRecompute(CollieMain.recomputeMode(checkpointing))
                        .withElementwiseUpdates(dev.collie.runtime.optim.Optimizers.elementwise(optimizer)))) {
            if (optimizer.equals("adalomo")) {
                s.executor().setOptimizer(new dev.collie.runtime.optim.AdaLomo(s.params(), 0));
            }
            long vocab = s.vocabSize();
            SplittableRandom rng = new SplittableRandom(1);
            List<Example> rows = new ArrayList<>();
            for (int b = 0; b < batch; b++) {
                long[] ids = new long[seq];
                Arrays.setAll(ids, i -> rng.nextLong(vocab));
                rows.add(new Example(ids, ids, b + 1));
            }
            // The GEMM peak first, in a JVM that has run nothing else: measured after the steps it
            // came out at half the standalone rate on some runs, and MFU above 1.
            double peak = gemmPeakFlops();
            double fmaPeak = dev.collie.runtime.kernels.FmaPeak.measure(24);
            double[] times = new double[steps];
            double loss = Double.NaN;
            try (Batch data = Batch.ofExamples(rows, 0)) {
                for (int i = 0; i < warmup + steps; i++) {
                    if (profile && i == warmup) {
                        // only the timed steps: in the warm-up the kernels still run interpreted
                        s.executor().enableProfile();
                    }
                    long start = System.nanoTime();
                    loss = s.trainStep(data, lr, null).loss();
                    if (i >= warmup) {
                        times[i - warmup] = (System.nanoTime() - start) / 1e9;
                    }
                }
            }
            double[] inOrder = times.clone();
            Arrays.sort(times);
            // the peer's statistics.median: the middle step, or the mean of the middle two (it was the
            // slower of the two, which made every 2-step figure the worse step)
            double median = steps % 2 == 1 ? times[steps / 2] : (times[steps / 2 - 1] + times[steps / 2]) / 2;
            double tokensPerSecond = batch * (double) seq / median;
            double flops = ModelFlops.of(s.plan().program(ProgramKind.TRAIN), Map.of("B", (long) batch, "T", (long) seq));
            ObjectNode json = new ObjectMapper().createObjectNode();
            json.put("model", s.plan().model());
            json.put("preset", preset);
            json.put("parameters", s.plan().parameterCount());
            json.put("batch", batch);
            json.put("seq", seq);
            json.put("dtype", dtype);
            json.put("optimizer", optimizer);
            json.put("threads", dev.collie.runtime.kernels.SimdGemm.defaultThreads());
            json.put("step_seconds", median);
            var each = json.putArray("step_seconds_each");
            for (double t : inOrder) {
                each.add(Math.round(t * 1000) / 1000.0);
            }
            json.put("tokens_per_second", tokensPerSecond);
            json.put("tgs", tokensPerSecond);
            json.put("model_gflop_per_step", flops / 1e9);
            json.put("achieved_gflops", flops / median / 1e9);
            json.put("gemm_peak_gflops", peak / 1e9);
            json.put("mfu", flops / median / peak);
            // the hardware's own ceiling: FMAs in registers on every thread, no memory
            json.put("fma_peak_gflops", fmaPeak / 1e9);
            json.put("gemm_of_fma_peak", peak / fmaPeak);
            json.put("achieved_of_fma_peak", flops / median / fmaPeak);
            json.put("loss", loss);
            var bindings = Map.of("B", (long) batch, "T", (long) seq);
            var memory = s.executor().memoryPlan(ProgramKind.TRAIN, bindings);
            long runtime = dev.collie.compiler.plan.MemoryPlanner.RUNTIME_BYTES;
            long planned = memory.peakBytes(s.params().bytes());
            json.put("planned_peak_bytes", planned);
            json.put("planned_weights_bytes", s.params().bytes());
            json.put("planned_arena_bytes", memory.arenaBytes());
            json.put("planned_runtime_bytes", runtime);
            long rss = peakRss();
            json.put("peak_rss_bytes", rss);
            json.put("peak_native_bytes", NativeMemory.peakBytes());
            // what the process held beside Collie's own tensors at its peak: the JVM (the plan's runtime term)
            json.put("runtime_rss_bytes", rss > 0 ? rss - NativeMemory.peakBytes() : -1);
            json.put("rss_of_plan", rss > 0 ? (double) rss / planned : -1);
            spec.commandLine().getOut().println(json);
            if (profile) {
                var err = spec.commandLine().getErr();
                s.executor().profile().entrySet().stream()
                        .sorted((x, y) -> Long.compare(y.getValue()[0], x.getValue()[0]))
                        .forEach(e -> err.printf("%-20s %10.1f ms %6d calls%n", e.getKey(), e.getValue()[0] / 1e6,
                                e.getValue()[1]));
            }
        }
        return 0;
    }

    /** The GEMM rate this machine reaches with Collie's kernel at 1024³ (the MFU denominator). */
    static double gemmPeakFlops() {
        int n = 1024;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment a = arena.allocate((long) n * n * 4, 64);
            MemorySegment b = arena.allocate((long) n * n * 4, 64);
            MemorySegment c = arena.allocate((long) n * n * 4, 64);
            SplittableRandom rng = new SplittableRandom(2);
            for (long i = 0; i < (long) n * n; i++) {
                a.setAtIndex(Tensor.F32, i, (float) rng.nextDouble());
                b.setAtIndex(Tensor.F32, i, (float) rng.nextDouble());
            }
            double best = Double.MAX_VALUE;
            // Best of 10: the first few run before the JIT has compiled the kernel.
            for (int r = 0; r < 10; r++) {
                long start = System.nanoTime();
                SimdGemm.matmulNT(a, b, c, n, n, n, false);
                best = Math.min(best, (System.nanoTime() - start) / 1e9);
            }
            return 2.0 * n * n * n / best;
        }
    }

    /** The process's peak resident set (VmHWM), or -1 where /proc is not available. */
    static long peakRss() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }
}
