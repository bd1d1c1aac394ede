package dev.collie.compiler.plan;

import dev.collie.compiler.analysis.Liveness;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Role;
import dev.collie.compiler.ir.Value;
import dev.collie.compiler.ops.OpRules;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Lays out every intermediate buffer of a program in one arena, given the batch symbols.
 *
 * <p>A buffer lives from the node that writes it to its last reader (both inclusive, so a node's
 * outputs never share memory with its inputs: kernels are not in-place safe) and is placed at the
 * lowest 64-byte aligned offset that no buffer alive at the same time occupies, largest buffers
 * first ("greedy by size", as TFLite's arena planner). Op scratch ({@link OpRules#workspaceBytes})
 * is a buffer alive for its node alone. Parameters live in the parameter arena and program inputs
 * belong to the caller; program outputs outlive the run, so they are not in the arena either.
 *
 * <p>The runtime allocates the arena once and reuses it every step, so a training step touches no
 * allocator and takes no page faults after the first; what the plan says is what the run holds.
 */
public final class MemoryPlanner {

    public static final long ALIGNMENT = 64;

    /**
     * The process's own floor beside the planned tensors: the JVM's code and compiled code, its
     * classes (the CDS archive and metaspace), the Java heap's floor and the threads' stacks. A plan
     * that left it out told a 15m user 435 MB for a process that peaked at 569-589 MB. Measured as
     * peak RSS minus peak native tensor bytes with the launcher's heap flags ({@code bin/collie-env.sh}):
     * 118-131 MB for the 15m, 110m and 1b training steps on Temurin 25, x86-64; {@code collie bench}
     * reports it for every run as {@code runtime_rss_bytes}.
     */
    public static final long RUNTIME_BYTES = 128L << 20;

    /**
     * Where each buffer goes, and what is live at the peak.
     *
     * @param offsets          byte offset in the arena of each planned value
     * @param workspaceOffsets byte offset of each node's scratch, for nodes that need one
     * @param workspaceBytes   size of each node's scratch
     * @param arenaBytes       the arena's size (at least the peak; more where lifetimes fragment it)
     * @param outputBytes      program outputs, allocated outside the arena
     * @param peakLiveBytes    the largest sum of buffers alive at one node
     * @param activationBytes  of the peak: values of the forward pass
     * @param gradientBytes    of the peak: gradients (of activations and of parameters)
     * @param workspaceAtPeak  of the peak: op scratch
     */
    public record MemoryPlan(Map<Value, Long> offsets, Map<Node, Long> workspaceOffsets, Map<Node, Long> workspaceBytes,
                             long arenaBytes, long outputBytes, long peakLiveBytes, long activationBytes,
                             long gradientBytes, long workspaceAtPeak) {

        /** Bytes the program holds besides the weights: the arena plus its outputs. */
        public long totalBytes() {
            return arenaBytes + outputBytes;
        }

        /** The process's planned peak with these weights: the weights, the arena and outputs, and the runtime. */
        public long peakBytes(long weightBytes) {
            return weightBytes + totalBytes() + RUNTIME_BYTES;
        }
    }

    private record Buffer(Value value, Node workspaceOf, long bytes, int from, int to) {}

    private MemoryPlanner() {}

    public static MemoryPlan plan(Graph g, Map<String, Long> bindings) {
        return plan(g, new Liveness(g), bindings);
    }

    public static MemoryPlan plan(Graph g, Liveness live, Map<String, Long> bindings) {
        Set<Value> outputs = new HashSet<>(g.outputs.values());
        List<Buffer> buffers = new ArrayList<>();
        long outputBytes = 0;
        List<Node> nodes = g.nodes;
        for (int i = 0; i < nodes.size(); i++) {
            Node n = nodes.get(i);
            if (n.op.equals("param") || n.op.equals("input")) {
                continue;
            }
            for (Value v : n.outputs) {
                long bytes = v.shape.numel(bindings) * v.dtype.bytes;
                if (outputs.contains(v)) {
                    outputBytes += align(bytes);
                } else {
                    buffers.add(new Buffer(v, null, align(bytes), i, live.lastUse.get(v)));
                }
            }
            long scratch = OpRules.workspaceBytes(n, bindings);
            if (scratch > 0) {
                buffers.add(new Buffer(null, n, align(scratch), i, i));
            }
        }

        // Largest first; among equals, earliest first, so the layout is a function of the graph alone.
        List<Buffer> order = new ArrayList<>(buffers);
        order.sort(Comparator.comparingLong(Buffer::bytes).reversed().thenComparingInt(Buffer::from));
        Map<Buffer, Long> at = new HashMap<>();
        List<Buffer> placed = new ArrayList<>();
        long arena = 0;
        for (Buffer b : order) {
            List<Buffer> clash = new ArrayList<>();
            for (Buffer p : placed) {
                if (p.from <= b.to && b.from <= p.to) {
                    clash.add(p);
                }
            }
            clash.sort(Comparator.comparingLong(at::get));
            long offset = 0;
            for (Buffer p : clash) {
                long start = at.get(p);
                if (start - offset >= b.bytes) {
                    break;
                }
                offset = Math.max(offset, start + p.bytes);
            }
            at.put(b, offset);
            placed.add(b);
            arena = Math.max(arena, offset + b.bytes);
        }

        // The peak and what it is made of.
        long[] liveAt = new long[nodes.size()];
        for (Buffer b : buffers) {
            for (int i = b.from; i <= b.to && i < liveAt.length; i++) {
                liveAt[i] += b.bytes;
            }
        }
        int peakAt = 0;
        for (int i = 1; i < liveAt.length; i++) {
            if (liveAt[i] > liveAt[peakAt]) {
                peakAt = i;
            }
        }
        long activations = 0;
        long gradients = 0;
        long workspace = 0;
        Map<Value, Long> offsets = new HashMap<>();
        Map<Node, Long> workspaceOffsets = new HashMap<>();
        Map<Node, Long> workspaceBytes = new HashMap<>();
        for (Buffer b : buffers) {
            boolean atPeak = b.from <= peakAt && peakAt <= b.to;
            if (b.workspaceOf != null) {
                workspaceOffsets.put(b.workspaceOf, at.get(b));
                workspaceBytes.put(b.workspaceOf, b.bytes);
                workspace += atPeak ? b.bytes : 0;
            } else {
                offsets.put(b.value, at.get(b));
                if (atPeak) {
                    if (b.value.producer().role == Role.FORWARD) {
                        activations += b.bytes;
                    } else {
                        gradients += b.bytes;
                    }
                }
            }
        }
        return new MemoryPlan(offsets, workspaceOffsets, workspaceBytes, arena, outputBytes,
                liveAt.length == 0 ? 0 : liveAt[peakAt], activations, gradients, workspace);
    }

    static long align(long bytes) {
        return Math.max(ALIGNMENT, (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT);
    }
}
