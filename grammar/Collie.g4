// The Collie model language: an architecture, its hyper-parameters, presets, checkpoint names and
// parallel strategy. Action-free on purpose: the parse tree is turned into an immutable AST by
// dev.collie.dsl.AstBuilder, and every check lives in semantic analysis, so the grammar stays a
// plain description of the syntax.
grammar Collie;

file        : modelHeader item* EOF ;
modelHeader : 'model' ID ;

item
    : hyperSection
    | presetDecl
    | configSection
    | requireDecl
    | letDecl
    | paramDecl
    | blockDecl
    | forwardDecl
    | parallelSection
    | trainSection
    ;

// ---- hyper-parameters -------------------------------------------------------------------------
hyperSection : 'hyper' '{' hyperDecl* '}' ;
hyperDecl    : ID ':' typeName '=' expr ;
typeName     : 'int' | 'float' | 'bool' | 'string' ;

presetDecl   : 'preset' presetName '{' (assign (','? assign)*)? ','? '}' ;
presetName   : ID | SIZE_NAME | STRING ;
assign       : ID '=' expr ;

// Hugging Face config.json keys that set each hyper-parameter: `dim = "hidden_size"`.
configSection : 'config' '{' configEntry* '}' ;
configEntry   : ID '=' STRING ;

requireDecl  : 'require' expr (':' STRING)? ;
letDecl      : 'let' ID '=' expr ;

// ---- parameters and blocks ----------------------------------------------------------------------
paramDecl    : 'param' ID ':' shape ('=' initExpr)? ('as' STRING layout?)? ('if' expr)? ;
layout       : 'stored' 'transposed' ;
initExpr     : ID ('(' (expr (',' expr)*)? ')')? ;
shape        : '[' (dim (',' dim)*)? ']' ;
dim          : expr ;

blockDecl    : 'block' ID ('[' ID 'in' expr ']')? '{' blockItem* '}' ;
blockItem    : paramDecl | letDecl | forwardDecl ;

forwardDecl  : 'forward' '(' (formal (',' formal)*)? ')' ('->' shape)? body ;
formal       : ID ':' shape elemType? ;
elemType     : 'int' | 'float' ;

body         : '{' stmt* '}' ;
stmt
    : 'let' ID (',' ID)* '=' expr        # letStmt
    | 'return' expr                      # returnStmt
    | 'output' ID                        # outputStmt
    | 'loss' expr                        # lossStmt
    ;

// ---- settings: the parallel strategy and the training recipe --------------------------------------
parallelSection : 'parallel' '{' settingItem* '}' ;
trainSection    : 'train' '{' settingItem* '}' ;
settingItem     : ID '=' expr                      # setting
                | ID '{' settingItem* '}'          # settingGroup
                ;

// ---- expressions (precedence climbs downwards) --------------------------------------------------
expr
    : 'if' expr 'then' expr 'else' expr                  # ifExpr
    | orExpr                                             # plainExpr
    ;
orExpr      : andExpr ('||' andExpr)* ;
andExpr     : cmpExpr ('&&' cmpExpr)* ;
cmpExpr     : addExpr (op=('==' | '!=' | '<' | '<=' | '>' | '>=') addExpr)? ;
addExpr     : mulExpr (ops+=('+' | '-') mulExpr)* ;
mulExpr     : unaryExpr (ops+=('*' | '/' | '%') unaryExpr)* ;
unaryExpr   : op=('-' | '!') unaryExpr | postfixExpr ;
postfixExpr : primary ('.' ID)* ;
primary
    : ID '(' (arg (',' arg)*)? ')'                       # callExpr
    | ID                                                 # nameExpr
    | INT                                                # intLit
    | FLOAT                                              # floatLit
    | STRING                                             # stringLit
    | ('true' | 'false')                                 # boolLit
    | '(' expr ')'                                       # parenExpr
    | 'parallel'                                         # parallelRef
    ;
arg         : (ID ':')? expr ;

// ---- lexer --------------------------------------------------------------------------------------
FLOAT     : DIGITS '.' DIGITS EXPONENT? | DIGITS EXPONENT ;
INT       : DIGITS ;
// Preset names such as 7B, 15m or 1b start with a digit; FLOAT comes first so 1e5 stays a number.
SIZE_NAME : DIGITS ('.' DIGITS)? [a-zA-Z] [a-zA-Z0-9_]* ;
ID        : [\p{L}_] [\p{L}\p{N}_]* ;
STRING    : '"' (~["\\\r\n] | '\\' .)* '"' ;

fragment DIGITS   : [0-9] ('_'? [0-9])* ;
fragment EXPONENT : [eE] [+-]? [0-9]+ ;

LINE_COMMENT  : '//' ~[\r\n]* -> skip ;
BLOCK_COMMENT : '/*' .*? '*/' -> skip ;
WS            : [ \t\r\n]+ -> skip ;
// Anything else becomes one token the parser rejects with a positioned message.
ERROR_CHAR    : . ;
