package dev.collie.compiler.plan;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * How much memory this machine can give a run now, so that {@code colliec compile} can say whether a
 * planned training step fits before anything runs: Linux's {@code MemAvailable} (free memory plus the
 * page cache and reclaimable slabs the kernel would give back), not {@code MemFree}.
 */
public final class MachineMemory {

    private MachineMemory() {}

    /** {@code MemAvailable} of {@code /proc/meminfo} in bytes, or -1 where there is none. */
    public static long availableBytes() {
        try {
            return availableBytes(Files.readString(Path.of("/proc/meminfo")));
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** {@code MemAvailable} of a {@code /proc/meminfo} text in bytes, or -1 if it has none. */
    static long availableBytes(String meminfo) {
        for (String line : meminfo.split("\n")) {
            if (line.startsWith("MemAvailable:")) {
                String[] parts = line.substring("MemAvailable:".length()).trim().split("\\s+");
                long value = Long.parseLong(parts[0]);
                return parts.length > 1 && parts[1].equalsIgnoreCase("kB") ? value * 1024 : value;
            }
        }
        return -1;
    }
}
