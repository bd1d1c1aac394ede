package dev.collie.runtime.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.collie.runtime.optim.OptimizerKernels.AdaLomoConfig;
import org.junit.jupiter.api.Test;

class AdaLomoConfigTest {

    /** CoLLiE collie/optim/adalomo.py: eps=(1e-30, 1e-3), clip_threshold=1.0, decay_rate=-0.8, loss_scale=2**14. */
    @Test
    void defaultsAreCoLLiEs() {
        assertEquals(new AdaLomoConfig(1e-30f, 1e-3f, 1.0f, -0.8f, 16384f, 0f), AdaLomoConfig.defaults());
    }

    @Test
    void rejectsMeaninglessValues() {
        assertThrows(IllegalArgumentException.class, () -> new AdaLomoConfig(-1f, 1e-3f, 1f, -0.8f, 1f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdaLomoConfig(1e-30f, Float.NaN, 1f, -0.8f, 1f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdaLomoConfig(1e-30f, 1e-3f, 0f, -0.8f, 1f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdaLomoConfig(1e-30f, 1e-3f, 1f, 0.5f, 1f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdaLomoConfig(1e-30f, 1e-3f, 1f, -0.8f, 0f, 0f));
        assertThrows(IllegalArgumentException.class,
                () -> new AdaLomoConfig(1e-30f, 1e-3f, 1f, -0.8f, Float.POSITIVE_INFINITY, 0f));
        assertThrows(IllegalArgumentException.class, () -> new AdaLomoConfig(1e-30f, 1e-3f, 1f, -0.8f, 1f, Float.NaN));
    }
}
