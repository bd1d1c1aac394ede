package dev.collie.runtime.exec;

import dev.collie.compiler.ir.Node;
import dev.collie.runtime.tensor.Tensor;

/**
 * Where a node's computation runs. The executor owns scheduling and memory; a backend only knows how
 * to compute one op on buffers it is handed. The CPU backend is the reference; the OpenCL, CUDA (and
 * a TornadoVM) backend implement the same interface.
 */
public interface Backend {

    String name();

    /**
     * Whether the kernel of {@code node} reads its input {@code index} in bfloat16 itself (a weight
     * stored in bf16); otherwise the executor hands it a float copy.
     */
    default boolean readsBf16(Node node, int index) {
        return false;
    }

    /**
     * Computes {@code node} from {@code inputs} into the preallocated {@code outputs}, with
     * {@code workspace} as the op's scratch (the size {@code OpRules.workspaceBytes} asked for; null
     * when it asked for none).
     */
    void execute(Node node, Tensor[] inputs, Tensor[] outputs, java.lang.foreign.MemorySegment workspace);

    /**
     * Computes an op that updates a parameter in place ({@link Node#updatesParameter()}, other than
     * {@code param_update}, which the executor hands to the optimizer itself): as {@link #execute}, with
     * the parameter's gradient going to {@code gradient} a block at a time instead of to an output.
     */
    default void executeUpdating(Node node, Tensor[] inputs, Tensor[] outputs, java.lang.foreign.MemorySegment workspace,
                                 GradientBlocks gradient) {
        throw new UnsupportedOperationException(name() + " backend has no kernel for " + node.op);
    }
}
