package dev.collie.compiler.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.collie.compiler.ir.DType;
import dev.collie.compiler.ir.Dim;
import dev.collie.compiler.ir.Graph;
import dev.collie.compiler.ir.Node;
import dev.collie.compiler.ir.ParamInfo;
import dev.collie.compiler.ir.Role;
import dev.collie.compiler.ir.Shape;
import dev.collie.compiler.ir.Value;
import dev.collie.compiler.passes.ProgramKind;
import dev.collie.dsl.CollieException;
import dev.collie.dsl.Span;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Plans as JSON (Jackson): dims are numbers, or strings for symbolic ones ("B", "B*T"). */
public final class PlanJson {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private PlanJson() {}

    public static void write(Plan plan, Path file) {
        ObjectNode root = JSON.createObjectNode();
        root.put("format", Plan.FORMAT);
        root.put("model", plan.model());
        root.put("source", plan.source());
        root.put("origin", plan.origin());
        root.set("hyper", JSON.valueToTree(plan.hyper()));
        root.set("parallel", JSON.valueToTree(plan.parallel()));
        root.set("train", JSON.valueToTree(plan.train()));
        root.set("config_keys", JSON.valueToTree(plan.configKeys()));
        ArrayNode params = root.putArray("params");
        for (ParamInfo p : plan.params()) {
            ObjectNode o = params.addObject();
            o.put("name", p.name());
            o.put("checkpoint", p.checkpointName());
            o.set("shape", shape(p.shape()));
            o.put("init", p.init().kind());
            o.set("init_args", JSON.valueToTree(p.init().args()));
            o.put("stored_transposed", p.storedTransposed());
            o.put("declared_at", p.declaredAt());
        }
        ObjectNode programs = root.putObject("programs");
        plan.programs().forEach((kind, g) -> programs.set(kind.key(), graph(g)));
        try {
            Path parent = file.toAbsolutePath().getParent();
            Files.createDirectories(parent);
            Path tmp = Files.createTempFile(parent, "." + file.getFileName(), ".tmp");
            try {
                JSON.writeValue(tmp.toFile(), root);
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } finally {
                Files.deleteIfExists(tmp);
            }
        } catch (IOException e) {
            throw CollieException.at(new Span(file.toString(), 0, 0, 0), "cannot write plan: " + e.getMessage());
        }
    }

    private static ArrayNode shape(Shape s) {
        ArrayNode a = JSON.createArrayNode();
        for (Dim d : s.dims()) {
            if (d.isConstant()) {
                a.add(d.coeff());
            } else {
                a.add(d.toString());
            }
        }
        return a;
    }

    private static ObjectNode graph(Graph g) {
        ObjectNode o = JSON.createObjectNode();
        ArrayNode nodes = o.putArray("nodes");
        for (Node n : g.nodes) {
            ObjectNode j = nodes.addObject();
            j.put("id", n.id);
            j.put("op", n.op);
            ArrayNode in = j.putArray("in");
            n.inputs.forEach(v -> in.add(v.id));
            if (!n.attrs.isEmpty()) {
                j.set("attrs", JSON.valueToTree(n.attrs));
            }
            ArrayNode out = j.putArray("out");
            for (Value v : n.outputs) {
                ObjectNode vo = out.addObject();
                vo.put("id", v.id);
                vo.set("shape", shape(v.shape));
                vo.put("dtype", v.dtype.shortName());
            }
            j.put("role", n.role.name().toLowerCase());
            if (n.origin != null) {
                j.put("origin", n.origin);
            }
            if (n.scope != null) {
                j.put("scope", n.scope);
            }
        }
        ObjectNode outs = o.putObject("outputs");
        g.outputs.forEach((k, v) -> outs.put(k, v.id));
        return o;
    }

    public static Plan read(Path file) {
        Span at = new Span(file.toString(), 0, 0, 0);
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw CollieException.at(at, "cannot read plan: " + e.getMessage());
        }
        if (root == null || !Plan.FORMAT.equals(root.path("format").asText())) {
            throw CollieException.at(at, "not a Collie plan (expected \"format\": \"" + Plan.FORMAT + "\"); "
                    + "make one with 'colliec compile'");
        }
        try {
            var params = new ArrayList<ParamInfo>();
            for (JsonNode p : root.get("params")) {
                var args = new ArrayList<Double>();
                p.get("init_args").forEach(a -> args.add(a.asDouble()));
                params.add(new ParamInfo(p.get("name").asText(), p.get("checkpoint").asText(), shape(p.get("shape")),
                        new ParamInfo.Init(p.get("init").asText(), args), p.get("stored_transposed").asBoolean(),
                        p.get("declared_at").asText()));
            }
            Map<ProgramKind, Graph> programs = new EnumMap<>(ProgramKind.class);
            for (ProgramKind kind : ProgramKind.values()) {
                JsonNode g = root.path("programs").get(kind.key());
                if (g != null) {
                    programs.put(kind, graph(g, params));
                }
            }
            return new Plan(root.get("model").asText(), root.get("source").asText(), root.get("origin").asText(),
                    scalars(root.get("hyper")), scalars(root.get("parallel")),
                    root.has("train") ? scalars(root.get("train")) : Map.of(),
                    JSON.convertValue(root.get("config_keys"), LinkedHashMap.class), params, programs);
        } catch (RuntimeException e) {
            if (e instanceof CollieException ce) {
                throw ce;
            }
            throw CollieException.at(at, "plan is damaged or from another version: " + e);
        }
    }

    /** A flat JSON object of constants, with integers as Long like the compiler makes them. */
    private static Map<String, Object> scalars(JsonNode o) {
        Map<String, Object> out = new LinkedHashMap<>();
        o.properties().forEach(e -> out.put(e.getKey(), constant(e.getValue())));
        return out;
    }

    private static Object constant(JsonNode v) {
        if (v.isIntegralNumber()) {
            return v.asLong();
        }
        if (v.isNumber()) {
            return v.asDouble();
        }
        if (v.isBoolean()) {
            return v.asBoolean();
        }
        if (v.isArray()) {
            var list = new ArrayList<Object>();
            v.forEach(x -> list.add(constant(x)));
            return list;
        }
        return v.asText();
    }

    private static Shape shape(JsonNode a) {
        var dims = new ArrayList<Dim>();
        for (JsonNode d : a) {
            dims.add(d.isNumber() ? Dim.of(d.asLong()) : Dim.parse(d.asText()));
        }
        return new Shape(dims);
    }

    private static Graph graph(JsonNode o, List<ParamInfo> params) {
        Graph g = new Graph();
        g.params.addAll(params);
        Map<Integer, Value> values = new HashMap<>();
        for (JsonNode n : o.get("nodes")) {
            var ins = new ArrayList<Value>();
            for (JsonNode i : n.get("in")) {
                Value v = values.get(i.asInt());
                if (v == null) {
                    throw new IllegalStateException("node " + n.get("id") + " reads undefined value " + i);
                }
                ins.add(v);
            }
            Map<String, Object> attrs = n.has("attrs") ? scalars(n.get("attrs")) : Map.of();
            var shapes = new ArrayList<Shape>();
            var dtypes = new ArrayList<DType>();
            var ids = new ArrayList<Integer>();
            for (JsonNode v : n.get("out")) {
                shapes.add(shape(v.get("shape")));
                dtypes.add(DType.valueOf(v.get("dtype").asText().toUpperCase()));
                ids.add(v.get("id").asInt());
            }
            Node node = g.restore(n.get("id").asInt(), n.get("op").asText(), ins, attrs,
                    Role.valueOf(n.get("role").asText().toUpperCase()), n.has("origin") ? n.get("origin").asText() : null,
                    shapes, dtypes, ids);
            node.scope = n.has("scope") ? n.get("scope").asText() : null;
            node.outputs.forEach(v -> values.put(v.id, v));
        }
        o.get("outputs").properties().forEach(e -> g.outputs.put(e.getKey(), values.get(e.getValue().asInt())));
        return g;
    }
}
