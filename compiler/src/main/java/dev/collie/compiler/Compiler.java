package dev.collie.compiler;

import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.lower.GraphBuilder;
import dev.collie.compiler.passes.PassPipeline;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.compiler.plan.HfConfig;
import dev.collie.compiler.plan.Plan;
import dev.collie.dsl.CollieException;
import dev.collie.dsl.ModelParser;
import dev.collie.dsl.SourceFile;
import dev.collie.dsl.ast.Decl;
import dev.collie.dsl.ast.ModelFile;
import dev.collie.dsl.sema.HyperResolver;
import dev.collie.dsl.sema.ModelChecker;
import dev.collie.dsl.sema.ResolvedModel;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BiConsumer;

/** The front door of the compiler: source file to checked AST to resolved model to plan. */
public final class Compiler {

    private Compiler() {}

    /** Parses and checks a `.collie` file. */
    public static ModelFile load(Path file) {
        return load(SourceFile.read(file));
    }

    public static ModelFile load(SourceFile source) {
        return guarded(source, () -> {
            ModelFile model = ModelParser.parse(source);
            ModelChecker.check(model);
            return model;
        });
    }

    /**
     * Runs a front-end step, turning the failures that hostile input can cause in recursive code
     * (a stack overflow from absurd nesting, arithmetic overflow in a shape) into a diagnostic.
     */
    static <T> T guarded(SourceFile source, java.util.function.Supplier<T> step) {
        try {
            return step.get();
        } catch (StackOverflowError e) {
            throw CollieException.at(new dev.collie.dsl.Span(source.name(), 1, 1, 1),
                    "the file nests too deeply to compile").withSource(source);
        } catch (ArithmeticException e) {
            throw CollieException.at(new dev.collie.dsl.Span(source.name(), 1, 1, 1),
                    "a shape or size overflows 64-bit integers").withSource(source);
        }
    }

    /**
     * Fixes hyper-parameters: defaults, then config.json (if given), then the preset, then --set.
     */
    public static ResolvedModel resolve(ModelFile model, String preset, Path configJson, Map<String, String> sets) {
        HfConfig.Loaded config = configJson == null ? null : HfConfig.read(model, configJson);
        try {
            return guarded(model.source(), () -> HyperResolver.resolve(model, preset,
                    config == null ? Map.of() : config.values(), sets == null ? Map.of() : sets));
        } catch (CollieException e) {
            throw config == null ? e : e.withSource(config.source());
        }
    }

    /** Checks every preset (and the defaults) down to shapes: what `colliec check` runs. */
    public static int checkAllPresets(ModelFile model) {
        return guarded(model.source(), () -> {
            GraphBuilder.build(HyperResolver.resolve(model, null));
            int n = 1;
            for (Decl.Preset p : model.presets()) {
                GraphBuilder.build(HyperResolver.resolve(model, p.name()));
                n++;
            }
            return n;
        });
    }

    public static Plan compile(ResolvedModel model, boolean verify, BiConsumer<String, Graph> afterEachPass) {
        return compile(model, verify, afterEachPass, dev.collie.compiler.passes.CompileOptions.DEFAULT);
    }

    /** As {@link #compile(ResolvedModel, boolean, BiConsumer)} with the given {@code options}. */
    public static Plan compile(ResolvedModel model, boolean verify, BiConsumer<String, Graph> afterEachPass,
                               dev.collie.compiler.passes.CompileOptions options) {
        Graph forward = guarded(model.file().source(), () -> GraphBuilder.build(model));
        if (afterEachPass != null) {
            afterEachPass.accept("BuildForwardGraph", forward);
        }
        Map<ProgramKind, Graph> programs = new EnumMap<>(ProgramKind.class);
        for (ProgramKind kind : ProgramKind.values()) {
            if (kind == ProgramKind.DECODE && !dev.collie.compiler.passes.InsertKvCache.supports(forward)) {
                continue;
            }
            BiConsumer<String, Graph> dump = afterEachPass == null ? null
                    : (pass, g) -> afterEachPass.accept(kind.key() + ": " + pass, g);
            programs.put(kind, PassPipeline.run(forward, kind, dump, verify, options));
        }
        Map<String, Object> hyper = new LinkedHashMap<>();
        model.hyper().forEach((k, v) -> hyper.put(k, v.toJava()));
        Map<String, Object> parallel = new LinkedHashMap<>();
        model.parallel().forEach((k, v) -> parallel.put(k, v.toJava()));
        Map<String, String> configKeys = new LinkedHashMap<>();
        model.file().config().forEach(c -> configKeys.put(c.hyper(), c.key()));
        return new Plan(model.file().modelName(), model.file().source().name(), model.origin(), hyper, parallel,
                model.train(), configKeys, forward.params, programs);
    }
}
