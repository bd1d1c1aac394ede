package dev.collie.runtime.report;

import static dev.collie.runtime.report.TestData.eval;
import static dev.collie.runtime.report.TestData.train;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import javax.imageio.ImageIO;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class LossPlotTest {

    private static final byte[] PNG_MAGIC = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    @TempDir
    Path dir;

    static List<StepMetrics> curve(int steps, int evalEvery) {
        List<StepMetrics> all = new ArrayList<>();
        for (int s = 1; s <= steps; s++) {
            // Noisy decaying loss with a NaN spike that must be skipped.
            double loss = s == 37 ? Double.NaN : 0.8 + 3.0 * Math.exp(-s / 40.0) + 0.1 * Math.sin(s * 1.7);
            all.add(train(s, loss));
            if (evalEvery > 0 && s % evalEvery == 0) {
                all.add(eval(s, 0.9 + 2.8 * Math.exp(-s / 40.0), 1.0));
            }
        }
        return all;
    }

    static Stream<Arguments> histories() {
        return Stream.of(
                Arguments.of("full", curve(200, 25)),
                Arguments.of("no-eval", curve(50, 0)),
                Arguments.of("one-eval", curve(30, 30)),
                Arguments.of("single-train-point", List.of(train(1, 2.0))),
                Arguments.of("only-eval", List.of(eval(10, 2.0, 7.4))),
                Arguments.of("all-nan", List.of(train(1, Double.NaN), eval(1, Double.NaN, 1.0))),
                Arguments.of("empty", List.of()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("histories")
    void writesValidPng(String name, List<StepMetrics> history) throws IOException {
        Path png = dir.resolve("sub").resolve(name + ".png");
        LossPlot.write(png, history);

        byte[] bytes = Files.readAllBytes(png);
        assertArrayEquals(PNG_MAGIC, Arrays.copyOf(bytes, PNG_MAGIC.length));
        BufferedImage img = ImageIO.read(png.toFile());
        assertNotNull(img);
        assertEquals(800, img.getWidth());
        assertEquals(500, img.getHeight());
        try (Stream<Path> files = Files.list(png.getParent())) {
            assertEquals(List.of(png), files.toList(), "no temp file left behind");
        }
    }

    @Test
    void plotGetsNormalFilePermissions() throws IOException {
        Assumptions.assumeTrue(dir.getFileSystem().supportedFileAttributeViews().contains("posix"));
        Path png = dir.resolve("loss.png");
        LossPlot.write(png, curve(10, 5));
        Path reference = Files.createFile(dir.resolve("reference"));
        assertEquals(Files.getPosixFilePermissions(reference), Files.getPosixFilePermissions(png),
                "atomic write must not leave the owner-only mode of a temp file");
    }

    @Test
    void overwritesExistingPlot() throws IOException {
        Path png = dir.resolve("loss.png");
        LossPlot.write(png, curve(10, 5));
        LossPlot.write(png, curve(100, 20));
        assertEquals(800, ImageIO.read(png.toFile()).getWidth());
        String keep = System.getProperty("collie.test.keepPlot");
        if (keep != null) {
            Files.copy(png, Path.of(keep), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
