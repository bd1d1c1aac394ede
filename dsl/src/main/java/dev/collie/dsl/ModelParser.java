package dev.collie.dsl;

import dev.collie.dsl.ast.ModelFile;
import dev.collie.dsl.parser.CollieLexer;
import dev.collie.dsl.parser.CollieParser;
import org.antlr.v4.runtime.BaseErrorListener;
import org.antlr.v4.runtime.CharStreams;
import org.antlr.v4.runtime.CommonTokenStream;
import org.antlr.v4.runtime.RecognitionException;
import org.antlr.v4.runtime.Recognizer;
import org.antlr.v4.runtime.Token;
import org.antlr.v4.runtime.misc.ParseCancellationException;

/** Source text to AST. Stops at the first syntax error: later ones are usually echoes of it. */
public final class ModelParser {

    private ModelParser() {}

    public static ModelFile parse(SourceFile source) {
        try {
            CollieLexer lexer = new CollieLexer(CharStreams.fromString(source.text(), source.name()));
            CollieParser parser = new CollieParser(new CommonTokenStream(lexer));
            FirstErrorListener listener = new FirstErrorListener(source);
            lexer.removeErrorListeners();
            lexer.addErrorListener(listener);
            parser.removeErrorListeners();
            parser.addErrorListener(listener);
            CollieParser.FileContext tree = parser.file();
            return new AstBuilder(source).file(tree);
        } catch (ParseCancellationException e) {
            if (e.getCause() instanceof CollieException ce) {
                throw ce.withSource(source);
            }
            throw e;
        } catch (CollieException e) {
            throw e.withSource(source);
        } catch (StackOverflowError e) {
            throw CollieException.at(new Span(source.name(), 1, 1, 1), "the file nests too deeply to parse")
                    .withSource(source);
        }
    }

    private static final class FirstErrorListener extends BaseErrorListener {
        private final SourceFile source;

        FirstErrorListener(SourceFile source) {
            this.source = source;
        }

        @Override
        public void syntaxError(Recognizer<?, ?> recognizer, Object offending, int line, int col, String msg,
                                RecognitionException e) {
            int length = 1;
            String message = "syntax error: " + msg;
            if (offending instanceof Token token) {
                length = Math.max(1, token.getText() == null ? 1 : token.getText().length());
                if (token.getType() == CollieLexer.ERROR_CHAR) {
                    message = "unexpected character '" + token.getText() + "'";
                } else if (token.getType() == Token.EOF) {
                    message = "syntax error: unexpected end of file" + expecting(msg);
                    length = 1;
                } else {
                    message = "syntax error: unexpected '" + token.getText() + "'" + expecting(msg);
                }
            }
            throw new ParseCancellationException(new CollieException(
                    Diagnostic.error(new Span(source.name(), line, col + 1, length), message)));
        }

        /** Keeps ANTLR's "expecting ..." tail, which names what would have been accepted. */
        private static String expecting(String msg) {
            int at = msg.indexOf("expecting ");
            return at < 0 ? "" : ", " + msg.substring(at);
        }
    }
}
