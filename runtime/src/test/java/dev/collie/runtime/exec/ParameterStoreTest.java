package dev.collie.runtime.exec;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.compiler.Compiler;
import dev.collie.compiler.ir.DType;
import dev.collie.compiler.plan.Plan;
import dev.collie.runtime.checkpoint.Bf16;
import dev.collie.runtime.checkpoint.HfCheckpoint;
import dev.collie.runtime.tensor.NativeMemory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * bf16 parameters are initialised and loaded a part at a time: the same bits as rounding the whole float32
 * tensor, without a float32 copy of it (at 7B the embedding and the head are 500 MiB each in float32, and
 * that copy was the process's peak).
 */
class ParameterStoreTest {

    /** The tiny LLaMA with a 20000-token vocabulary: embedding and head of 1.28M floats, more than one part. */
    private static Plan plan() {
        var model = Compiler.resolve(Compiler.load(Path.of("..", "models", "llama.collie")), "tiny", null,
                Map.of("vocab", "20000"));
        return Compiler.compile(model, true, null);
    }

    @Test
    void bf16InitialisationRoundsTheFloatValuesAPartAtATime() {
        Plan plan = plan();
        try (ParameterStore f32 = new ParameterStore(plan.params(), DType.F32);
             ParameterStore bf16 = new ParameterStore(plan.params(), DType.BF16)) {
            f32.initialize(7);
            long before = NativeMemory.currentBytes();
            NativeMemory.resetPeak();
            bf16.initialize(7);
            long largest = plan.params().stream().mapToLong(p -> p.numel()).max().orElseThrow();
            assertTrue(largest > ParameterStore.CONVERT_FLOATS, "a tensor larger than one part");
            assertTrue(NativeMemory.peakBytes() - before <= ParameterStore.CONVERT_FLOATS * Float.BYTES + 4096,
                    "no float32 copy of a whole tensor: " + (NativeMemory.peakBytes() - before) + " bytes");
            assertSameRounding(f32, bf16, plan);
        }
    }

    @Test
    void aCheckpointLoadsIntoBf16StorageAPartAtATime(@TempDir Path dir) throws Exception {
        Plan plan = plan();
        Path ckpt = dir.resolve("ckpt");
        try (ParameterStore f32 = new ParameterStore(plan.params(), DType.F32);
             ParameterStore bf16 = new ParameterStore(plan.params(), DType.BF16)) {
            f32.initialize(11);
            f32.save(ckpt, plan, null, List.of());
            assertTrue(Files.exists(ckpt.resolve("config.json")));
            try (HfCheckpoint opened = HfCheckpoint.open(ckpt)) {
                long before = NativeMemory.currentBytes();
                NativeMemory.resetPeak();
                bf16.load(opened);
                assertTrue(NativeMemory.peakBytes() - before <= ParameterStore.CONVERT_FLOATS * Float.BYTES + 4096,
                        "no float32 copy of a whole tensor: " + (NativeMemory.peakBytes() - before) + " bytes");
            }
            assertSameRounding(f32, bf16, plan);
        }
    }

    private static void assertSameRounding(ParameterStore f32, ParameterStore bf16, Plan plan) {
        for (int i = 0; i < plan.params().size(); i++) {
            float[] want = f32.values(i);
            for (int k = 0; k < want.length; k++) {
                want[k] = Bf16.bf16ToF32(Bf16.f32ToBf16RoundNearestEven(want[k]));
            }
            assertArrayEquals(want, bf16.values(i), plan.params().get(i).name());
        }
    }
}
