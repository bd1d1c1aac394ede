package dev.collie.runtime.cli;

import java.io.OutputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;

/** Lets code that prints to a PrintStream write into picocli's PrintWriter (so tests can capture it). */
final class WriterOutputStream extends OutputStream {

    private final PrintWriter writer;
    private final java.io.ByteArrayOutputStream pending = new java.io.ByteArrayOutputStream();

    WriterOutputStream(PrintWriter writer) {
        this.writer = writer;
    }

    @Override
    public void write(int b) {
        pending.write(b);
        if (b == '\n') {
            flush();
        }
    }

    @Override
    public void flush() {
        writer.write(pending.toString(StandardCharsets.UTF_8));
        writer.flush();
        pending.reset();
    }
}
