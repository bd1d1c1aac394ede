package dev.collie.dsl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.collie.dsl.ast.ModelFile;
import dev.collie.dsl.sema.HyperResolver;
import dev.collie.dsl.sema.ModelChecker;
import dev.collie.dsl.sema.ResolvedModel;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** The shipped model files parse, check and resolve for every preset. */
class ModelFilesTest {

    static ModelFile load(String relative) {
        ModelFile f = ModelParser.parse(SourceFile.read(Path.of("..").resolve(relative)));
        ModelChecker.check(f);
        return f;
    }

    @Test
    void llamaPresetsResolve() {
        ModelFile f = load("models/llama.collie");
        assertEquals("llama", f.modelName());
        for (var p : f.presets()) {
            ResolvedModel m = HyperResolver.resolve(f, p.name());
            assertTrue(m.intValue("head_dim") > 0, p.name());
        }
        ResolvedModel oneB = HyperResolver.resolve(f, "1b");
        assertEquals(4, oneB.intValue("kv_heads"));
        assertEquals(64, oneB.intValue("head_dim"));
        ResolvedModel seven = HyperResolver.resolve(f, "7B");
        assertEquals(32, seven.intValue("kv_heads"), "kv_heads defaults to heads");
    }

    @Test
    void gpt2Resolves() {
        ModelFile f = load("samples/gpt2.collie");
        ResolvedModel tiny = HyperResolver.resolve(f, "tiny");
        assertEquals(192, tiny.intValue("inner"));
    }
}
