package dev.collie.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.collie.compiler.analysis.Liveness;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.plan.MemoryPlanner;
import dev.collie.compiler.plan.MemoryPlanner.MemoryPlan;
import dev.collie.compiler.plan.Plan;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The arena layout: no two buffers alive at once share a byte, and the arena is about the peak. */
class MemoryPlannerTest {

    record Slot(String what, long from, long to, int def, int last) {}

    @ParameterizedTest
    @CsvSource({"models/llama.collie,tiny,train,2,16", "models/llama.collie,tiny,train_clipped,3,7",
            "models/llama.collie,15m,train,8,256", "models/llama.collie,tiny,eval,1,5",
            "models/llama.collie,tiny,decode,2,1", "samples/gpt2.collie,tiny,train,2,9"})
    void buffersAliveTogetherNeverOverlap(String file, String preset, String program, long b, long t) {
        Plan plan = Compiler.compile(InPlaceScheduleTest.model(file, preset), true, null);
        Graph g = plan.program(ProgramKind.valueOf(program.toUpperCase()));
        Map<String, Long> bt = Map.of("B", b, "T", t, "S", 2 * t);
        MemoryPlan m = MemoryPlanner.plan(g, bt);
        Liveness live = new Liveness(g);

        List<Slot> slots = new ArrayList<>();
        for (int i = 0; i < g.nodes.size(); i++) {
            Node n = g.nodes.get(i);
            for (Value v : n.outputs) {
                Long at = m.offsets().get(v);
                if (at != null) {
                    long bytes = v.shape.numel(bt) * v.dtype.bytes;
                    assertEquals(0, at % MemoryPlanner.ALIGNMENT, v + " is not aligned");
                    slots.add(new Slot(v.toString(), at, at + bytes, i, live.lastUse.get(v)));
                } else {
                    assertTrue(g.outputs.containsValue(v) || n.op.equals("param") || n.op.equals("input"),
                            v + " produced by " + n.op + " has no place in the arena");
                }
            }
            Long ws = m.workspaceOffsets().get(n);
            if (ws != null) {
                slots.add(new Slot("workspace of " + n.op, ws, ws + m.workspaceBytes().get(n), i, i));
            }
        }
        long peak = 0;
        for (Slot s : slots) {
            assertTrue(s.to <= m.arenaBytes(), s + " runs past the arena of " + m.arenaBytes());
        }
        for (int i = 0; i < slots.size(); i++) {
            for (int j = i + 1; j < slots.size(); j++) {
                Slot x = slots.get(i);
                Slot y = slots.get(j);
                boolean together = x.def <= y.last && y.def <= x.last;
                boolean overlap = x.from < y.to && y.from < x.to;
                if (together && overlap) {
                    fail(x + " and " + y + " are alive together and share memory");
                }
            }
        }
        for (int i = 0; i < g.nodes.size(); i++) {
            long live_ = 0;
            for (Slot s : slots) {
                live_ += s.def <= i && i <= s.last ? s.to - s.from : 0;
            }
            peak = Math.max(peak, live_);
        }
        assertTrue(m.arenaBytes() >= peak, "arena smaller than the peak");
        // Greedy by size packs these graphs tightly; a layout bug that never reuses memory would not.
        assertTrue(m.arenaBytes() <= peak * 1.25 + 4096, "arena " + m.arenaBytes() + " wastes too much over peak " + peak);
        assertTrue(m.peakLiveBytes() >= peak - slots.size() * MemoryPlanner.ALIGNMENT);
    }

    @ParameterizedTest
    @CsvSource({"15m,train,8,256", "15m,train_clipped,8,256", "1b,train,1,256"})
    void activationCheckpointingCutsThePlannedActivations(String preset, String program, long b, long t) {
        var model = InPlaceScheduleTest.model("models/llama.collie", preset);
        var kind = ProgramKind.valueOf(program.toUpperCase());
        Map<String, Long> bt = Map.of("B", b, "T", t);
        MemoryPlan kept = MemoryPlanner.plan(Compiler.compile(model, false, null).program(kind), bt);
        MemoryPlan recomputed = MemoryPlanner.plan(Compiler.compile(model, true, null,
                dev.collie.compiler.passes.CompileOptions.DEFAULT.withRecompute(true)).program(kind), bt);
        assertTrue(recomputed.arenaBytes() * 2 < kept.arenaBytes(),
                "recomputing should at least halve the arena: " + recomputed.arenaBytes() + " vs " + kept.arenaBytes());
    }

    @ParameterizedTest
    @CsvSource({"15m,train,8,256", "1b,train,1,256"})
    void selectiveCheckpointingLiesBetweenNoneAndFull(String preset, String program, long b, long t) {
        var model = InPlaceScheduleTest.model("models/llama.collie", preset);
        var kind = ProgramKind.valueOf(program.toUpperCase());
        Map<String, Long> bt = Map.of("B", b, "T", t);
        var options = dev.collie.compiler.passes.CompileOptions.DEFAULT;
        long off = MemoryPlanner.plan(Compiler.compile(model, false, null).program(kind), bt).arenaBytes();
        long selective = MemoryPlanner.plan(Compiler.compile(model, true, null, options.withRecompute(
                dev.collie.compiler.passes.CompileOptions.Recompute.SELECTIVE)).program(kind), bt).arenaBytes();
        long full = MemoryPlanner.plan(Compiler.compile(model, true, null, options.withRecompute(
                dev.collie.compiler.passes.CompileOptions.Recompute.FULL)).program(kind), bt).arenaBytes();
        assertTrue(full < selective && selective < off, "full " + full + " < selective " + selective + " < off " + off);
    }
}
