package dev.collie.dsl.ast;

import dev.collie.dsl.SourceFile;
import dev.collie.dsl.Span;
import java.util.List;

/** The whole AST of one `.collie` file, items grouped by kind in source order. */
public record ModelFile(SourceFile source, Span span, String modelName, List<Decl.Hyper> hypers,
                        List<Decl.Preset> presets, List<Decl.ConfigKey> config, List<Decl.Require> requires,
                        List<Decl.Let> lets, List<Decl.Param> params, List<Decl.Block> blocks,
                        Decl.Forward forward, Decl.Parallel parallel, Decl.Train train) {}
