package dev.collie.dsl.sema;

import dev.collie.dsl.ast.ModelFile;
import java.util.Map;

/**
 * A model file with every hyper-parameter, derived constant and parallel setting fixed to a value:
 * what the compiler lowers. {@code origin} says where the values came from (preset, config.json).
 */
public record ResolvedModel(ModelFile file, String origin, Map<String, Value> hyper, Map<String, Value> constants,
                            Map<String, Value> parallel, Map<String, Object> train) {

    public ConstEvaluator evaluator() {
        return new ConstEvaluator(constants::get, parallel);
    }

    public long intValue(String name) {
        return ((Value.IntValue) constants.get(name)).value();
    }
}
