package dev.collie.compiler.cli;

import dev.collie.dsl.CollieException;
import java.io.PrintWriter;
import java.util.Map;
import picocli.CommandLine;

/**
 * Shared entry logic of the launchers: user errors print their diagnostics (never a stack trace)
 * and exit 1; bad command lines print picocli's message and exit 2; anything else is a bug in
 * Collie, printed as one line (set COLLIE_DEBUG=1 for the trace) with exit 70.
 */
public final class CliSupport {

    private CliSupport() {}

    /** A command line that makes no sense (missing or contradictory options): exit 2 before any work. */
    public static final class UsageError extends RuntimeException {
        public UsageError(String message) {
            super(message, null, false, false);
        }
    }

    /** Errors that belong to the user and carry their own message (checkpoint and data errors). */
    public interface UserError {
        String userMessage();
    }

    public static int execute(Object command, String[] args) {
        return execute(command, args, null, null);
    }

    /** As {@link #execute(Object, String[])}, writing to the given streams (tests run the CLIs in-process). */
    public static int execute(Object command, String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cli = new CommandLine(command);
        if (out != null) {
            cli.setOut(out);
        }
        if (err != null) {
            cli.setErr(err);
        }
        cli.setCaseInsensitiveEnumValuesAllowed(true);
        cli.setExecutionExceptionHandler((ex, cmd, parsed) -> handle(ex, cmd.getErr(), cmd.getCommandSpec().qualifiedName()));
        cli.setParameterExceptionHandler((ex, argv) -> {
            PrintWriter stream = ex.getCommandLine().getErr();
            stream.println(ex.getCommandLine().getCommandSpec().qualifiedName() + ": error: " + ex.getMessage());
            stream.println("Try '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help' for usage.");
            return 2;
        });
        return cli.execute(args);
    }

    static int handle(Throwable ex, PrintWriter err, String tool) {
        Throwable t = ex;
        while (t.getCause() != null && !(t instanceof CollieException) && !(t instanceof UserError)
                && !(t instanceof UsageError)) {
            t = t.getCause();
        }
        if (t instanceof UsageError || t instanceof CommandLine.ParameterException) {
            err.println(tool + ": error: " + t.getMessage());
            err.println("Try '" + tool + " --help' for usage.");
            return 2;
        }
        if (t instanceof CollieException ce) {
            err.println(ce.render());
            return 1;
        }
        if (t instanceof UserError ue) {
            err.println(ue.userMessage());
            return 1;
        }
        if (t instanceof OutOfMemoryError) {
            err.println(tool + ": error: out of memory; give the JVM more with JAVA_OPTS=-Xmx... or use a smaller "
                    + "batch or preset");
            return 1;
        }
        if (System.getenv("COLLIE_DEBUG") != null) {
            ex.printStackTrace(err);
        } else {
            err.println(tool + ": internal error: " + ex + " (this is a bug in Collie; rerun with COLLIE_DEBUG=1 "
                    + "for details)");
        }
        return 70;
    }

    /** Parses repeated {@code --set key=value} options. */
    /**
     * The passes named by {@code --disable-pass}, added to the default's: each must be a Fuse pass
     * (the others are needed for correctness), or the user is told which ones there are.
     */
    public static java.util.Set<String> disabledPasses(java.util.List<String> names) {
        java.util.Set<String> off = new java.util.HashSet<>(dev.collie.compiler.passes.CompileOptions.DEFAULT.disabledPasses());
        java.util.List<String> fuse = dev.collie.compiler.passes.PassPipeline.PASSES.stream().map(p -> p.name())
                .filter(n -> n.startsWith("Fuse")).toList();
        for (String d : names == null ? java.util.List.<String>of() : names) {
            if (!fuse.contains(d)) {
                throw new UsageError("--disable-pass " + d + ": not a Fuse pass; they are " + fuse);
            }
            off.add(d);
        }
        return off;
    }

    public static Map<String, String> sets(java.util.List<String> raw) {
        Map<String, String> out = new java.util.LinkedHashMap<>();
        if (raw == null) {
            return out;
        }
        for (String s : raw) {
            int eq = s.indexOf('=');
            if (eq <= 0) {
                throw new UsageError("--set expects key=value, got '" + s + "'");
            }
            out.put(s.substring(0, eq).trim(), s.substring(eq + 1));
        }
        return out;
    }
}
