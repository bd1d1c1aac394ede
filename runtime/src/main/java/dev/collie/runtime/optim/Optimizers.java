package dev.collie.runtime.optim;

import dev.collie.runtime.exec.ParameterStore;
import dev.collie.runtime.train.TrainSettings;

/** The optimizer a run asks for, by the train setting "optimizer". */
public final class Optimizers {

    private Optimizers() {}

    /**
     * Whether the optimizer of that name updates elementwise ({@link Optimizer#elementwise()}), known
     * before the model is compiled, which depends on it (CompileOptions.elementwiseUpdates).
     */
    public static boolean elementwise(String name) {
        return !name.equals("adalomo");
    }

    public static Optimizer create(TrainSettings settings, ParameterStore params) {
        double wd = settings.real("weight_decay");
        return switch (settings.string("optimizer")) {
            case "lomo" -> new Lomo(wd);
            case "adalomo" -> new AdaLomo(params, wd);
            default -> throw new IllegalArgumentException("unknown optimizer " + settings.string("optimizer"));
        };
    }
}
