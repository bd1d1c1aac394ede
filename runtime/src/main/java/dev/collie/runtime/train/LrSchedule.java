package dev.collie.runtime.train;

/**
 * Learning rate by step (1-based): linear warmup from 0 to lr over warmup_steps, then constant, or
 * linear or cosine decay to min_lr at the last step.
 */
public record LrSchedule(String kind, double lr, double minLr, long warmupSteps, long totalSteps) {

    public double at(long step) {
        if (warmupSteps > 0 && step <= warmupSteps) {
            return lr * step / warmupSteps;
        }
        if (kind.equals("constant")) {
            return lr;
        }
        long decaySteps = Math.max(1, totalSteps - warmupSteps);
        double progress = Math.min(1.0, Math.max(0.0, (double) (step - warmupSteps) / decaySteps));
        return switch (kind) {
            case "linear" -> minLr + (lr - minLr) * (1.0 - progress);
            case "cosine" -> minLr + (lr - minLr) * 0.5 * (1.0 + Math.cos(Math.PI * progress));
            default -> throw new IllegalArgumentException("unknown schedule " + kind);
        };
    }
}
