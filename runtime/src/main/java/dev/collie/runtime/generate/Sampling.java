package dev.collie.runtime.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * How the next token is chosen from logits: greedy when temperature is 0, otherwise sampling from
 * softmax(logits / temperature) restricted to the top-k ids and then to the smallest set whose
 * probability reaches top-p. Deterministic for a seed.
 */
public record Sampling(int maxNewTokens, double temperature, int topK, double topP, long seed) {

    public static Sampling greedy(int maxNewTokens) {
        return new Sampling(maxNewTokens, 0, 0, 1, 0);
    }

    public Sampling {
        if (maxNewTokens < 0 || temperature < 0 || topK < 0 || !(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("sampling needs max_new_tokens >= 0, temperature >= 0, top_k >= 0 "
                    + "and 0 < top_p <= 1");
        }
    }

    /** Picks an id from {@code logits[0, vocab)}. */
    public int pick(float[] logits, SplittableRandom rng) {
        int vocab = logits.length;
        if (temperature == 0) {
            int best = 0;
            for (int i = 1; i < vocab; i++) {
                if (logits[i] > logits[best]) {
                    best = i;
                }
            }
            return best;
        }
        Integer[] order = new Integer[vocab];
        for (int i = 0; i < vocab; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Float.compare(logits[b], logits[a]));
        int keep = topK > 0 ? Math.min(topK, vocab) : vocab;
        double max = logits[order[0]] / temperature;
        double[] probs = new double[keep];
        double sum = 0;
        for (int i = 0; i < keep; i++) {
            probs[i] = Math.exp(logits[order[i]] / temperature - max);
            sum += probs[i];
        }
        double cumulative = 0;
        int nucleus = keep;
        for (int i = 0; i < keep; i++) {
            cumulative += probs[i] / sum;
            if (cumulative >= topP) {
                nucleus = i + 1;
                break;
            }
        }
        double total = 0;
        for (int i = 0; i < nucleus; i++) {
            total += probs[i];
        }
        double r = rng.nextDouble() * total;
        for (int i = 0; i < nucleus; i++) {
            r -= probs[i];
            if (r <= 0) {
                return order[i];
            }
        }
        return order[nucleus - 1];
    }
}
