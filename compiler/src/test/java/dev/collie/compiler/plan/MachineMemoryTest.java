package dev.collie.compiler.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class MachineMemoryTest {

    @Test
    void readsMemAvailableNotMemFree() {
        String meminfo = """
                MemTotal:       24563804 kB
                MemFree:         1203456 kB
                MemAvailable:   20480000 kB
                Buffers:          123456 kB
                """;
        assertEquals(20480000L * 1024, MachineMemory.availableBytes(meminfo));
    }

    @Test
    void withoutTheLineThereIsNoFigure() {
        assertEquals(-1, MachineMemory.availableBytes("MemTotal: 1024 kB\nMemFree: 512 kB\n"));
    }

    @Test
    void thisMachinesFigureIsPositiveWhereLinuxHasOne() {
        if (Files.exists(Path.of("/proc/meminfo"))) {
            assertTrue(MachineMemory.availableBytes() > 0);
        } else {
            assertEquals(-1, MachineMemory.availableBytes());
        }
    }
}
