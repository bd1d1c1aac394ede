package dev.collie.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.collie.compiler.ir.GraphPrinter;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.plan.Plan;
import dev.collie.compiler.plan.PlanJson;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PlanJsonTest {

    @Test
    void planSurvivesARoundTrip(@TempDir Path dir) throws Exception {
        Plan plan = Compiler.compile(Compiler.resolve(Compiler.load(Path.of("../samples/gpt2.collie")), "tiny", null,
                Map.of()), true, null);
        Path file = dir.resolve("gpt2.plan.json");
        PlanJson.write(plan, file);
        Plan back = PlanJson.read(file);
        assertEquals(plan.params(), back.params());
        assertEquals(plan.hyper(), back.hyper());
        for (ProgramKind k : ProgramKind.values()) {
            assertEquals(GraphPrinter.print(plan.program(k)), GraphPrinter.print(back.program(k)), k.key());
            dev.collie.compiler.ir.GraphVerifier.verify(back.program(k), "PlanJson.read");
        }
        Files.writeString(file, "{\"format\": \"something else\"}");
        org.junit.jupiter.api.Assertions.assertThrows(dev.collie.dsl.CollieException.class, () -> PlanJson.read(file));
    }
}
