package dev.collie.compiler.cli;

import dev.collie.compiler.Compiler;
import dev.collie.compiler.analysis.Liveness;
import dev.collie.compiler.plan.MachineMemory;
import dev.collie.compiler.plan.MemoryPlanner;
import dev.collie.compiler.passes.CompileOptions;
import dev.collie.compiler.passes.PassPipeline;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.GraphPrinter;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.Value;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.plan.Plan;
import dev.collie.compiler.plan.PlanJson;
import dev.collie.dsl.ast.ModelFile;
import dev.collie.dsl.sema.ResolvedModel;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** `colliec`: check, compile, explain and draw `.collie` models. */
@Command(name = "colliec", mixinStandardHelpOptions = true, version = "colliec 0.1.0",
        description = "The Collie model compiler.",
        subcommands = {ColliecMain.Check.class, ColliecMain.Compile.class, ColliecMain.Explain.class,
                ColliecMain.Draw.class})
public final class ColliecMain implements Runnable {

    @Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(CliSupport.execute(new ColliecMain(), args));
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** Options that pick hyper-parameters, shared by every subcommand that compiles. */
    static final class ModelOptions {
        @Parameters(index = "0", paramLabel = "FILE", description = "a .collie model file")
        Path file;

        @Option(names = "--preset", description = "a preset declared in the file")
        String preset;

        @Option(names = "--config", paramLabel = "config.json", description = "a Hugging Face config.json")
        Path config;

        @Option(names = "--set", paramLabel = "KEY=VALUE", description = "override one hyper-parameter")
        List<String> sets;

        @Option(names = "--activation-checkpointing", arity = "0..1", fallbackValue = "full", paramLabel = "MODE",
                description = "full (the default when given) or selective: recompute each block's forward, or its "
                        + "cheap ops, before its backward (also: activation_checkpointing in the train section)")
        String checkpointing;

        @Option(names = "--disable-pass", paramLabel = "PASS", description = "leave out a Fuse pass (the unfused ops "
                + "are the reference), e.g. FuseSwiGlu")
        List<String> disabled;

        ResolvedModel resolve() {
            ModelFile model = Compiler.load(file);
            return Compiler.resolve(model, preset, config, CliSupport.sets(sets));
        }

        CompileOptions options(ResolvedModel m) {
            Object fromModel = m.train().getOrDefault("activation_checkpointing", "off");
            java.util.Set<String> off = CliSupport.disabledPasses(disabled);
            String mode = checkpointing != null ? checkpointing : fromModel.toString();
            try {
                // AdaLomo needs each whole gradient's statistics, so nothing may update by blocks of rows.
                boolean elementwise = !"adalomo".equals(m.train().getOrDefault("optimizer", "lomo").toString());
                return new CompileOptions(off, CompileOptions.Recompute.parse(mode), elementwise);
            } catch (IllegalArgumentException e) {
                throw new CliSupport.UsageError(e.getMessage());
            }
        }

        Plan compile(boolean verify, java.util.function.BiConsumer<String, Graph> afterEachPass) {
            ResolvedModel m = resolve();
            return Compiler.compile(m, verify, afterEachPass, options(m));
        }
    }

    @Command(name = "check", mixinStandardHelpOptions = true,
            description = "Parse and check a model file: names, types, and shapes under the defaults and every preset.")
    static final class Check implements Callable<Integer> {
        @Parameters(index = "0", paramLabel = "FILE")
        Path file;

        @Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            ModelFile model = Compiler.load(file);
            int n = Compiler.checkAllPresets(model);
            spec.commandLine().getOut().println(file + ": ok: model '" + model.modelName() + "', " + n
                    + " hyper-parameter sets checked (defaults and " + (n - 1) + " presets)");
            return 0;
        }
    }

    @Command(name = "compile", mixinStandardHelpOptions = true,
            description = "Compile a model into a plan (JSON) that 'collie run' executes.")
    static final class Compile implements Callable<Integer> {
        @CommandLine.Mixin
        ModelOptions model = new ModelOptions();

        @Option(names = {"-o", "--output"}, required = true, paramLabel = "PLAN", description = "where to write the plan")
        Path output;

        @Option(names = "--batch-size", defaultValue = "1", description = "B for the memory estimate (default ${DEFAULT-VALUE})")
        long batch;

        @Option(names = "--seq-len", defaultValue = "256", description = "T for the memory estimate (default ${DEFAULT-VALUE})")
        long seq;

        @Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            Plan plan = model.compile(false, null);
            PlanJson.write(plan, output);
            PrintWriter out = spec.commandLine().getOut();
            out.printf("wrote %s: model '%s' (%s), %,d parameters in %d tensors%n", output, plan.model(), plan.origin(),
                    plan.parameterCount(), plan.params().size());
            Map<String, Long> bt = Map.of("B", batch, "T", seq, "S", seq);
            long weights = Liveness.parameterBytes(plan.params());
            out.printf("planned memory at B=%d T=%d (fp32 weights; bf16 halves them):%n", batch, seq);
            long trainPeak = 0;
            long trainWeights = 0;
            for (ProgramKind kind : ProgramKind.values()) {
                Graph g = plan.program(kind);
                MemoryPlanner.MemoryPlan m = MemoryPlanner.plan(g, bt);
                long peak = m.peakBytes(weights);
                out.printf("  %-14s %5d nodes; peak %s = weights %s + activations %s + gradients %s + workspace %s"
                                + " + runtime %s (arena %s, outputs %s)%n",
                        kind.key(), g.nodes.size(), mib(peak), mib(weights), mib(m.activationBytes()),
                        mib(m.gradientBytes()), mib(m.workspaceAtPeak()), mib(MemoryPlanner.RUNTIME_BYTES),
                        mib(m.arenaBytes()), mib(m.outputBytes()));
                if (kind == ProgramKind.TRAIN) {
                    trainPeak = peak;
                    trainWeights = weights;
                }
            }
            long available = MachineMemory.availableBytes();
            if (available > 0 && trainPeak > 0) {
                long bf16Peak = trainPeak - trainWeights / 2;
                out.printf("this machine: %s available; training %s in fp32 (%s), %s in bf16 (%s)%n", mib(available),
                        trainPeak <= available ? "fits" : "does NOT fit", mib(trainPeak),
                        bf16Peak <= available ? "fits" : "does NOT fit", mib(bf16Peak));
            }
            return 0;
        }
    }

    static String mib(long bytes) {
        return String.format("%.1f MiB", bytes / (1024.0 * 1024.0));
    }

    @Command(name = "explain", mixinStandardHelpOptions = true,
            description = "Print the IR after each compiler pass.")
    static final class Explain implements Callable<Integer> {
        @CommandLine.Mixin
        ModelOptions model = new ModelOptions();

        @Option(names = "--program", defaultValue = "train",
                description = "which program: eval, train or train_clipped (default ${DEFAULT-VALUE})")
        String program;

        @Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() {
            PrintWriter out = spec.commandLine().getOut();
            String prefix = program.toLowerCase() + ": ";
            model.compile(true, (stage, g) -> {
                if (stage.equals("BuildForwardGraph") || stage.startsWith(prefix)) {
                    String pass = stage.startsWith(prefix) ? stage.substring(prefix.length()) : stage;
                    out.println("=== after " + pass + " (" + g.nodes.size() + " nodes) ===");
                    out.print(GraphPrinter.print(g));
                    out.println();
                }
            });
            return 0;
        }
    }

    @Command(name = "graph", mixinStandardHelpOptions = true, description = "Draw a compiled program for Graphviz.")
    static final class Draw implements Callable<Integer> {
        @CommandLine.Mixin
        ModelOptions model = new ModelOptions();

        @Option(names = "--dot", required = true, description = "write Graphviz dot")
        boolean dot;

        @Option(names = "--program", defaultValue = "train", description = "eval, train or train_clipped")
        String program;

        @Option(names = {"-o", "--output"}, description = "file to write (default: standard output)")
        Path output;

        @Spec
        CommandLine.Model.CommandSpec spec;

        @Override
        public Integer call() throws IOException {
            ProgramKind kind = ProgramKind.valueOf(program.toUpperCase());
            Graph g = model.compile(false, null).program(kind);
            String text = dot(g, kind.key());
            if (output == null) {
                spec.commandLine().getOut().print(text);
            } else {
                Files.writeString(output, text);
            }
            return 0;
        }
    }

    /** Graphviz text: one box per node (op, output shapes), colored by role, edges along values. */
    public static String dot(Graph g, String name) {
        StringBuilder s = new StringBuilder("digraph \"" + name + "\" {\n  rankdir=TB;\n  node [shape=box, style=filled, "
                + "fontname=\"monospace\"];\n");
        for (Node n : g.nodes) {
            String color = switch (n.role) {
                case FORWARD -> "#dbe9f6";
                case BACKWARD -> "#f6e3db";
                case NORM -> "#f6f3db";
                case UPDATE -> "#dbf6de";
            };
            String label = n.op + (n.op.equals("param") || n.op.equals("input") ? " " + n.attrs.get("name") : "")
                    + "\\n" + String.join(" ", n.outputs.stream().map(Value::typeString).toList());
            s.append("  n").append(n.id).append(" [label=\"").append(label.replace("\"", "'")).append("\", fillcolor=\"")
                    .append(color).append("\"];\n");
        }
        for (Node n : g.nodes) {
            for (Value v : n.inputs) {
                s.append("  n").append(v.producer().id).append(" -> n").append(n.id).append(";\n");
            }
        }
        return s.append("}\n").toString();
    }
}
