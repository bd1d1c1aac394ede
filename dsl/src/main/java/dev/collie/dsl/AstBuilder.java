package dev.collie.dsl;

import dev.collie.dsl.ast.Decl;
import dev.collie.dsl.ast.Expr;
import dev.collie.dsl.ast.ModelFile;
import dev.collie.dsl.ast.Stmt;
import dev.collie.dsl.parser.CollieParser;
import dev.collie.dsl.parser.CollieParser.*;
import java.util.ArrayList;
import java.util.List;
import org.antlr.v4.runtime.ParserRuleContext;
import org.antlr.v4.runtime.Token;
import org.antlr.v4.runtime.tree.TerminalNode;

/** Parse tree to immutable AST. Only structural duplicates (two forwards, two hyper sections) are reported here. */
final class AstBuilder {

    private final SourceFile source;

    AstBuilder(SourceFile source) {
        this.source = source;
    }

    ModelFile file(FileContext ctx) {
        var hypers = new ArrayList<Decl.Hyper>();
        var presets = new ArrayList<Decl.Preset>();
        var config = new ArrayList<Decl.ConfigKey>();
        var requires = new ArrayList<Decl.Require>();
        var lets = new ArrayList<Decl.Let>();
        var params = new ArrayList<Decl.Param>();
        var blocks = new ArrayList<Decl.Block>();
        Decl.Forward forward = null;
        Decl.Parallel parallel = null;
        Decl.Train train = null;
        for (ItemContext item : ctx.item()) {
            if (item.hyperSection() != null) {
                item.hyperSection().hyperDecl().forEach(h -> hypers.add(hyper(h)));
            } else if (item.presetDecl() != null) {
                presets.add(preset(item.presetDecl()));
            } else if (item.configSection() != null) {
                for (ConfigEntryContext e : item.configSection().configEntry()) {
                    config.add(new Decl.ConfigKey(span(e), e.ID().getText(), unquote(e.STRING().getSymbol())));
                }
            } else if (item.requireDecl() != null) {
                RequireDeclContext r = item.requireDecl();
                requires.add(new Decl.Require(span(r), expr(r.expr()),
                        r.STRING() == null ? null : unquote(r.STRING().getSymbol())));
            } else if (item.letDecl() != null) {
                lets.add(let(item.letDecl()));
            } else if (item.paramDecl() != null) {
                params.add(param(item.paramDecl()));
            } else if (item.blockDecl() != null) {
                blocks.add(block(item.blockDecl()));
            } else if (item.forwardDecl() != null) {
                if (forward != null) {
                    throw CollieException.at(span(item.forwardDecl().start), "the model already has a forward (at "
                            + forward.span() + ")");
                }
                forward = forward(item.forwardDecl());
            } else if (item.parallelSection() != null) {
                if (parallel != null) {
                    throw CollieException.at(span(item.parallelSection().start),
                            "the model already has a parallel section (at " + parallel.span() + ")");
                }
                var settings = new ArrayList<Decl.Setting>();
                for (SettingItemContext p : item.parallelSection().settingItem()) {
                    settingItem(p, List.of(), settings);
                }
                parallel = new Decl.Parallel(span(item.parallelSection().start), settings);
            } else if (item.trainSection() != null) {
                if (train != null) {
                    throw CollieException.at(span(item.trainSection().start),
                            "the model already has a train section (at " + train.span() + ")");
                }
                var settings = new ArrayList<Decl.Setting>();
                for (SettingItemContext p : item.trainSection().settingItem()) {
                    settingItem(p, List.of(), settings);
                }
                train = new Decl.Train(span(item.trainSection().start), settings);
            }
        }
        return new ModelFile(source, span(ctx.modelHeader().ID().getSymbol()), ctx.modelHeader().ID().getText(),
                hypers, presets, config, requires, lets, params, blocks, forward, parallel, train);
    }

    private Decl.Hyper hyper(HyperDeclContext h) {
        Decl.Type type = Decl.Type.valueOf(h.typeName().getText().toUpperCase());
        return new Decl.Hyper(span(h.ID().getSymbol()), h.ID().getText(), type, expr(h.expr()));
    }

    private Decl.Preset preset(PresetDeclContext p) {
        Token nameToken = p.presetName().start;
        String name = nameToken.getType() == CollieParser.STRING ? unquote(nameToken) : nameToken.getText();
        var assigns = new ArrayList<Decl.Assign>();
        for (AssignContext a : p.assign()) {
            assigns.add(new Decl.Assign(span(a.ID().getSymbol()), a.ID().getText(), expr(a.expr())));
        }
        return new Decl.Preset(span(nameToken), name, assigns);
    }

    private Decl.Let let(LetDeclContext l) {
        return new Decl.Let(span(l.ID().getSymbol()), l.ID().getText(), expr(l.expr()));
    }

    private Decl.Param param(ParamDeclContext p) {
        Decl.Init init = null;
        if (p.initExpr() != null) {
            InitExprContext i = p.initExpr();
            init = new Decl.Init(span(i), i.ID().getText(), i.expr().stream().map(this::expr).toList());
        }
        String ckpt = p.STRING() == null ? null : unquote(p.STRING().getSymbol());
        Span ckptSpan = p.STRING() == null ? null : span(p.STRING().getSymbol());
        return new Decl.Param(span(p.ID().getSymbol()), p.ID().getText(), shape(p.shape()), init, ckpt, ckptSpan,
                p.layout() != null, p.expr() == null ? null : expr(p.expr()));
    }

    private List<Expr> shape(ShapeContext s) {
        return s.dim().stream().map(d -> expr(d.expr())).toList();
    }

    private Decl.Block block(BlockDeclContext b) {
        var params = new ArrayList<Decl.Param>();
        var lets = new ArrayList<Decl.Let>();
        Decl.Forward forward = null;
        for (BlockItemContext item : b.blockItem()) {
            if (item.paramDecl() != null) {
                params.add(param(item.paramDecl()));
            } else if (item.letDecl() != null) {
                lets.add(let(item.letDecl()));
            } else {
                if (forward != null) {
                    throw CollieException.at(span(item.forwardDecl().start),
                            "block '" + b.ID(0).getText() + "' already has a forward");
                }
                forward = forward(item.forwardDecl());
            }
        }
        Span nameSpan = span(b.ID(0).getSymbol());
        if (forward == null) {
            throw CollieException.at(nameSpan, "block '" + b.ID(0).getText() + "' has no forward");
        }
        String index = b.ID().size() > 1 ? b.ID(1).getText() : null;
        return new Decl.Block(nameSpan, b.ID(0).getText(), index, b.expr() == null ? null : expr(b.expr()), params,
                lets, forward);
    }

    private Decl.Forward forward(ForwardDeclContext f) {
        var formals = new ArrayList<Decl.Formal>();
        for (FormalContext fc : f.formal()) {
            boolean integer = fc.elemType() != null && fc.elemType().getText().equals("int");
            formals.add(new Decl.Formal(span(fc.ID().getSymbol()), fc.ID().getText(), shape(fc.shape()), integer));
        }
        var body = new ArrayList<Stmt>();
        for (StmtContext s : f.body().stmt()) {
            body.add(stmt(s));
        }
        return new Decl.Forward(span(f.start), formals, f.shape() == null ? null : shape(f.shape()), body);
    }

    private Stmt stmt(StmtContext s) {
        return switch (s) {
            case LetStmtContext l -> new Stmt.Let(span(l.ID(0).getSymbol()),
                    l.ID().stream().map(TerminalNode::getText).toList(),
                    l.ID().stream().map(t -> span(t.getSymbol())).toList(), expr(l.expr()));
            case ReturnStmtContext r -> new Stmt.Return(span(r.start), expr(r.expr()));
            case OutputStmtContext o -> new Stmt.Output(span(o.ID().getSymbol()), o.ID().getText());
            case LossStmtContext l -> new Stmt.Loss(span(l.start), expr(l.expr()));
            default -> throw new IllegalStateException("unknown statement " + s.getClass());
        };
    }

    private void settingItem(SettingItemContext p, List<String> prefix, List<Decl.Setting> out) {
        switch (p) {
            case SettingContext s -> {
                var path = new ArrayList<>(prefix);
                path.add(s.ID().getText());
                out.add(new Decl.Setting(span(s.ID().getSymbol()), List.copyOf(path), expr(s.expr())));
            }
            case SettingGroupContext g -> {
                var path = new ArrayList<>(prefix);
                path.add(g.ID().getText());
                for (SettingItemContext inner : g.settingItem()) {
                    settingItem(inner, path, out);
                }
            }
            default -> throw new IllegalStateException("unknown setting");
        }
    }

    // ---- expressions ----------------------------------------------------------------------------

    Expr expr(ExprContext e) {
        return switch (e) {
            case IfExprContext i -> new Expr.If(span(i.start), expr(i.expr(0)), expr(i.expr(1)), expr(i.expr(2)));
            case PlainExprContext p -> or(p.orExpr());
            default -> throw new IllegalStateException("unknown expression");
        };
    }

    private Expr or(OrExprContext o) {
        Expr left = and(o.andExpr(0));
        for (int i = 1; i < o.andExpr().size(); i++) {
            left = new Expr.Binary(span(o.getChild(2 * i - 1)), "||", left, and(o.andExpr(i)));
        }
        return left;
    }

    private Expr and(AndExprContext a) {
        Expr left = cmp(a.cmpExpr(0));
        for (int i = 1; i < a.cmpExpr().size(); i++) {
            left = new Expr.Binary(span(a.getChild(2 * i - 1)), "&&", left, cmp(a.cmpExpr(i)));
        }
        return left;
    }

    private Expr cmp(CmpExprContext c) {
        Expr left = add(c.addExpr(0));
        return c.op == null ? left : new Expr.Binary(span(c.op), c.op.getText(), left, add(c.addExpr(1)));
    }

    private Expr add(AddExprContext a) {
        Expr left = mul(a.mulExpr(0));
        for (int i = 1; i < a.mulExpr().size(); i++) {
            Token op = a.ops.get(i - 1);
            left = new Expr.Binary(span(op), op.getText(), left, mul(a.mulExpr(i)));
        }
        return left;
    }

    private Expr mul(MulExprContext m) {
        Expr left = unary(m.unaryExpr(0));
        for (int i = 1; i < m.unaryExpr().size(); i++) {
            Token op = m.ops.get(i - 1);
            left = new Expr.Binary(span(op), op.getText(), left, unary(m.unaryExpr(i)));
        }
        return left;
    }

    private Expr unary(UnaryExprContext u) {
        if (u.op != null) {
            return new Expr.Unary(span(u.op), u.op.getText(), unary(u.unaryExpr()));
        }
        PostfixExprContext p = u.postfixExpr();
        Expr base = primary(p.primary());
        if (p.ID().isEmpty()) {
            return base;
        }
        if (!(base instanceof Expr.ParallelRef)) {
            throw CollieException.at(span(p.ID(0).getSymbol()),
                    "only the parallel section has fields ('parallel." + p.ID(0).getText() + "')");
        }
        return new Expr.ParallelRef(base.span(), p.ID().stream().map(TerminalNode::getText).toList());
    }

    private Expr primary(PrimaryContext p) {
        return switch (p) {
            case CallExprContext c -> {
                var args = new ArrayList<Expr.Arg>();
                for (ArgContext a : c.arg()) {
                    args.add(new Expr.Arg(span(a.start), a.ID() == null ? null : a.ID().getText(), expr(a.expr())));
                }
                yield new Expr.Call(span(c.ID().getSymbol()), c.ID().getText(), span(c.ID().getSymbol()), args);
            }
            case NameExprContext n -> new Expr.Name(span(n.ID().getSymbol()), n.ID().getText());
            case IntLitContext i -> new Expr.IntLit(span(i.start), parseInt(i.INT().getSymbol()));
            case FloatLitContext f -> new Expr.FloatLit(span(f.start), parseFloat(f.FLOAT().getSymbol()));
            case StringLitContext s -> new Expr.StringLit(span(s.start), unquote(s.STRING().getSymbol()));
            case BoolLitContext b -> new Expr.BoolLit(span(b.start), b.getText().equals("true"));
            case ParenExprContext pe -> expr(pe.expr());
            case ParallelRefContext r -> new Expr.ParallelRef(span(r.start), List.of());
            default -> throw new IllegalStateException("unknown primary");
        };
    }

    private long parseInt(Token t) {
        try {
            return Long.parseLong(t.getText().replace("_", ""));
        } catch (NumberFormatException e) {
            throw CollieException.at(span(t), "integer literal " + t.getText() + " does not fit in 64 bits");
        }
    }

    private double parseFloat(Token t) {
        double v = Double.parseDouble(t.getText().replace("_", ""));
        if (Double.isInfinite(v)) {
            throw CollieException.at(span(t), "float literal " + t.getText() + " is out of range");
        }
        return v;
    }

    private String unquote(Token t) {
        String raw = t.getText();
        StringBuilder out = new StringBuilder();
        for (int i = 1; i < raw.length() - 1; i++) {
            char c = raw.charAt(i);
            if (c == '\\' && i + 1 < raw.length() - 1) {
                char n = raw.charAt(++i);
                out.append(switch (n) {
                    case 'n' -> '\n';
                    case 't' -> '\t';
                    default -> n;
                });
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }

    private Span span(Token t) {
        int len = t.getText() == null ? 1 : Math.max(1, t.getStopIndex() - t.getStartIndex() + 1);
        return new Span(source.name(), t.getLine(), t.getCharPositionInLine() + 1, len);
    }

    private Span span(ParserRuleContext ctx) {
        return span(ctx.start);
    }

    private Span span(org.antlr.v4.runtime.tree.ParseTree node) {
        if (node instanceof TerminalNode t) {
            return span(t.getSymbol());
        }
        return span(((ParserRuleContext) node).start);
    }
}
