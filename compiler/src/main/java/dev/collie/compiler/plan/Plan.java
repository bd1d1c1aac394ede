package dev.collie.compiler.plan;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.ParamInfo;
import dev.collie.compiler.passes.ProgramKind;
import java.util.List;
import java.util.Map;

/**
 * What `colliec compile` writes and `collie run` executes: the model's identity and resolved
 * hyper-parameters, its parameter table (names, checkpoint names, layouts, initialisers) and one
 * compiled program per {@link ProgramKind}. Shapes keep the batch symbols B and T open.
 *
 * @param train      the file's train section (settings checked against TrainSchema)
 * @param configKeys hyper-parameter to Hugging Face config.json key, to check a checkpoint against
 *                   the plan and to write config.json on save
 */
public record Plan(String model, String source, String origin, Map<String, Object> hyper,
                   Map<String, Object> parallel, Map<String, Object> train, Map<String, String> configKeys,
                   List<ParamInfo> params, Map<ProgramKind, Graph> programs) {

    public static final String FORMAT = "collie-plan/1";

    public Graph program(ProgramKind kind) {
        Graph g = programs.get(kind);
        if (g == null) {
            throw new IllegalArgumentException("plan has no " + kind.key() + " program");
        }
        return g;
    }

    public long parameterCount() {
        return params.stream().mapToLong(ParamInfo::numel).sum();
    }
}
