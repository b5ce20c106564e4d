//! A Pratt (binding-power) parser over the tokens of an expression.

use super::SyntaxError;
use super::ast::{BinaryOp, Expr, IN_BINDING_POWER, Literal, PREFIX_BINDING_POWER, Span, UnaryOp};
use super::lexer::{Lexer, Token, TokenKind};

/// The maximum length of an expression, in characters.
pub const MAX_LENGTH: usize = 8192;

/// The maximum nesting depth of an expression. Each pair of parentheses counts one level, and
/// so does each operator or call above another in the syntax tree, so a chain of 100 `or`s is
/// as deep as 100 nested parentheses. The bound keeps every later step (binding, SQL, and
/// SQLite's own expression depth limit of 1,000) far from its limits.
pub const MAX_DEPTH: usize = 100;

/// Parses an expression such as `tenantId eq 'x' and numberOfErrorDevices gt 0`.
pub fn parse(text: &str) -> Result<Expr, SyntaxError> {
    check_length(text)?;
    let chars: Vec<char> = text.chars().collect();
    let mut parser = Parser::new(&chars, 0, false);
    let expression = parser.expression(0)?;
    check_tree_depth(&expression)?;
    match &parser.current().kind {
        TokenKind::End => parser.finish(expression),
        other => Err(parser.error(format!(
            "expected an operator such as 'eq' or 'and', or the end of the expression, but found {}",
            other.describe()
        ))),
    }
}

/// Parses the expression that starts at the character offset `start` of `chars` and returns it
/// with the offset of the first token that cannot continue it.
///
/// This serves options that embed expressions in a larger syntax, such as `$orderby` (`name
/// desc`) and `$apply` (`amount with sum as total`). Outside parentheses, a word that is not an
/// operator ends the expression instead of being an error. Spans and error positions count
/// from the start of `chars`, and characters after the returned offset are never read.
pub fn parse_prefix(chars: &[char], start: usize) -> Result<(Expr, usize), SyntaxError> {
    if chars.len() > MAX_LENGTH {
        return Err(SyntaxError {
            position: MAX_LENGTH + 1,
            message: format!("the text is longer than {MAX_LENGTH} characters"),
        });
    }
    let mut parser = Parser::new(chars, start, true);
    let expression = parser.expression(0)?;
    check_tree_depth(&expression)?;
    let stop = parser.current().span.start;
    Ok((expression, stop))
}

/// Rejects a syntax tree deeper than [`MAX_DEPTH`]. Parsing a chain such as `a or b or c …`
/// does not recurse, but everything that walks the tree afterwards does.
fn check_tree_depth(expression: &Expr) -> Result<(), SyntaxError> {
    fn deepest(expr: &Expr, depth: usize) -> Option<Span> {
        if depth > MAX_DEPTH {
            return Some(expr.span());
        }
        match expr {
            Expr::Literal(..) | Expr::Name(..) => None,
            Expr::Unary { operand, .. } => deepest(operand, depth + 1),
            Expr::Binary { left, right, .. } => {
                deepest(left, depth + 1).or_else(|| deepest(right, depth + 1))
            }
            Expr::In { operand, list, .. } => deepest(operand, depth + 1)
                .or_else(|| list.iter().find_map(|item| deepest(item, depth + 1))),
            Expr::Call { arguments, .. } => {
                arguments.iter().find_map(|argument| deepest(argument, depth + 1))
            }
        }
    }
    match deepest(expression, 1) {
        None => Ok(()),
        Some(span) => Err(SyntaxError {
            position: span.start + 1,
            message: format!(
                "the expression is nested deeper than {MAX_DEPTH} levels; to test many values, \
                 use 'in (…)' instead of a chain of 'or'"
            ),
        }),
    }
}

fn check_length(text: &str) -> Result<(), SyntaxError> {
    if let Some((offset, _)) = text.char_indices().nth(MAX_LENGTH) {
        let position = text[..offset].chars().count() + 1;
        return Err(SyntaxError {
            position,
            message: format!("the expression is longer than {MAX_LENGTH} characters"),
        });
    }
    Ok(())
}

/// The parser state. Tokens are read on demand, so a lexical error after the end of an
/// expression prefix is never reported.
struct Parser<'a> {
    lexer: Lexer<'a>,
    /// The tokens read so far: at least two from `at` on, unless the last one is `End`.
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    /// The number of parentheses and brackets the cursor is inside.
    open_groups: usize,
    /// The error that stopped the lexer. The final `End` token is then at its position.
    lex_error: Option<SyntaxError>,
    /// Whether an unknown word outside parentheses ends the expression (see [`parse_prefix`]).
    prefix_mode: bool,
}

impl<'a> Parser<'a> {
    fn new(chars: &'a [char], start: usize, prefix_mode: bool) -> Self {
        let mut parser = Parser {
            lexer: Lexer::new(chars, start),
            tokens: Vec::new(),
            at: 0,
            depth: 0,
            open_groups: 0,
            lex_error: None,
            prefix_mode,
        };
        parser.fill();
        parser
    }

    /// Reads tokens until two are available from the cursor on, or the text has ended.
    fn fill(&mut self) {
        while self.tokens.len() < self.at + 2
            && self.tokens.last().is_none_or(|t| t.kind != TokenKind::End)
        {
            match self.lexer.next_token() {
                Ok(token) => self.tokens.push(token),
                Err(error) => {
                    let at = error.position - 1;
                    self.lex_error = Some(error);
                    self.tokens
                        .push(Token { kind: TokenKind::End, span: Span { start: at, end: at } });
                }
            }
        }
    }

    /// Returns `expression` unless the lexer stopped on an error.
    fn finish(&self, expression: Expr) -> Result<Expr, SyntaxError> {
        match &self.lex_error {
            Some(error) => Err(error.clone()),
            None => Ok(expression),
        }
    }

    fn current(&self) -> &Token {
        // The token list always ends with End, and the parser never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn peek_next(&self) -> &TokenKind {
        &self.tokens[(self.at + 1).min(self.tokens.len() - 1)].kind
    }

    fn advance(&mut self) -> Token {
        let token = self.current().clone();
        if token.kind != TokenKind::End {
            self.at += 1;
            self.fill();
        }
        token
    }

    /// Builds an error at the current token. Where the lexer failed, the lexer's error is
    /// reported instead.
    fn error(&self, message: String) -> SyntaxError {
        if self.current().kind == TokenKind::End
            && let Some(error) = &self.lex_error
        {
            return error.clone();
        }
        SyntaxError { position: self.current().span.start + 1, message }
    }

    fn expect(&mut self, kind: &TokenKind, what: &str) -> Result<Token, SyntaxError> {
        if &self.current().kind == kind {
            Ok(self.advance())
        } else {
            Err(self
                .error(format!("expected {what}, but found {}", self.current().kind.describe())))
        }
    }

    /// Parses an expression whose infix operators all bind tighter than `min_power`.
    fn expression(&mut self, min_power: u8) -> Result<Expr, SyntaxError> {
        // The whole expression is the first call; each pair of parentheses adds one.
        self.depth += 1;
        if self.depth > MAX_DEPTH + 1 {
            return Err(
                self.error(format!("the expression is nested deeper than {MAX_DEPTH} levels"))
            );
        }
        let mut left = self.prefix()?;

        // Fold infix operators for as long as they bind tighter than the caller's.
        while let TokenKind::Word(word) = &self.current().kind {
            if word.eq_ignore_ascii_case("in") {
                if IN_BINDING_POWER <= min_power {
                    break;
                }
                self.advance();
                let (list, end) = if self.current().kind == TokenKind::OpenBracket {
                    self.json_array()?
                } else {
                    self.list()?
                };
                let span = Span { start: left.span().start, end };
                left = Expr::In { operand: Box::new(left), list, span };
                continue;
            }
            let Some(op) = BinaryOp::from_word(word) else {
                if self.prefix_mode && self.open_groups == 0 {
                    break;
                }
                return Err(self.error(format!(
                    "expected an operator such as 'eq' or 'and', but found '{word}'"
                )));
            };
            if op.binding_power() <= min_power {
                break;
            }
            self.advance();
            let right = self.expression(op.binding_power())?;
            let span = Span { start: left.span().start, end: right.span().end };
            left = Expr::Binary { op, left: Box::new(left), right: Box::new(right), span };
        }

        self.depth -= 1;
        Ok(left)
    }

    /// Parses what can start an expression: a literal, a name, a call, a prefix operator or a
    /// parenthesized expression.
    fn prefix(&mut self) -> Result<Expr, SyntaxError> {
        let token = self.advance();
        let start = token.span.start;
        match token.kind {
            TokenKind::Literal(literal) => Ok(Expr::Literal(literal, token.span)),
            TokenKind::Minus => self.unary(UnaryOp::Negate, start),
            TokenKind::Word(word) if word.eq_ignore_ascii_case("not") && self.starts_operand() => {
                self.unary(UnaryOp::Not, start)
            }
            TokenKind::OpenParen => {
                self.open_groups += 1;
                let inner = self.expression(0)?;
                self.expect(&TokenKind::CloseParen, "')'")?;
                self.open_groups -= 1;
                Ok(inner)
            }
            TokenKind::Word(word) if self.current().kind == TokenKind::OpenParen => {
                let (arguments, end) = self.list()?;
                Ok(Expr::Call { function: word, arguments, span: Span { start, end } })
            }
            TokenKind::Word(word) => self.name(word, token.span),
            other => {
                self.at -= usize::from(other != TokenKind::End);
                let hint = match other {
                    TokenKind::JsonString(_) => " (write a string literal in single quotes)",
                    _ => "",
                };
                Err(self
                    .error(format!("expected an expression, but found {}{hint}", other.describe())))
            }
        }
    }

    /// Returns whether the current token can begin an operand, so that `not` is an operator there.
    fn starts_operand(&self) -> bool {
        match &self.current().kind {
            TokenKind::Literal(_) | TokenKind::OpenParen | TokenKind::Minus => true,
            TokenKind::Word(word) => {
                BinaryOp::from_word(word).is_none() && !word.eq_ignore_ascii_case("in")
            }
            _ => false,
        }
    }

    fn unary(&mut self, op: UnaryOp, start: usize) -> Result<Expr, SyntaxError> {
        let operand = self.expression(PREFIX_BINDING_POWER)?;
        let span = Span { start, end: operand.span().end };
        Ok(Expr::Unary { op, operand: Box::new(operand), span })
    }

    /// Reads a name and any `/`-separated segments after it.
    fn name(&mut self, first: String, span: Span) -> Result<Expr, SyntaxError> {
        let mut path = first;
        let mut end = span.end;
        while self.current().kind == TokenKind::Slash
            && matches!(self.peek_next(), TokenKind::Word(_))
        {
            self.advance();
            let segment = self.advance();
            if let TokenKind::Word(word) = segment.kind {
                path.push('/');
                path.push_str(&word);
                end = segment.span.end;
            }
        }
        Ok(Expr::Name(path, Span { start: span.start, end }))
    }

    /// Reads `( expr, expr, ... )`, possibly empty, and returns the items and the end offset.
    fn list(&mut self) -> Result<(Vec<Expr>, usize), SyntaxError> {
        self.expect(&TokenKind::OpenParen, "'('")?;
        self.open_groups += 1;
        let mut items = Vec::new();
        if self.current().kind != TokenKind::CloseParen {
            loop {
                items.push(self.expression(0)?);
                if self.current().kind != TokenKind::Comma {
                    break;
                }
                self.advance();
            }
        }
        let close = self.expect(&TokenKind::CloseParen, "',' or ')'")?;
        self.open_groups -= 1;
        Ok((items, close.span.end))
    }

    /// Reads the JSON array on the right of `in`, such as `["a", 'b', 5]`, possibly empty, and
    /// returns the items and the end offset.
    ///
    /// OData 4.01 accepts a JSON array as the right operand of `in`. Its items are expressions
    /// or strings in double quotes, which become string literals. Nested arrays and objects
    /// are not supported.
    fn json_array(&mut self) -> Result<(Vec<Expr>, usize), SyntaxError> {
        self.expect(&TokenKind::OpenBracket, "'['")?;
        self.open_groups += 1;
        let mut items = Vec::new();
        if self.current().kind != TokenKind::CloseBracket {
            loop {
                let item = match &self.current().kind {
                    TokenKind::JsonString(value) => {
                        let literal = Literal::String(value.clone());
                        Expr::Literal(literal, self.advance().span)
                    }
                    _ => self.expression(0)?,
                };
                items.push(item);
                if self.current().kind != TokenKind::Comma {
                    break;
                }
                self.advance();
            }
        }
        let close = self.expect(&TokenKind::CloseBracket, "',' or ']'")?;
        self.open_groups -= 1;
        Ok((items, close.span.end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Literal;

    /// Writes a tree in prefix form, so tests can state the expected grouping compactly.
    fn show(expr: &Expr) -> String {
        match expr {
            Expr::Literal(Literal::String(s), _) => format!("'{s}'"),
            Expr::Literal(Literal::Integer(n), _) => n.to_string(),
            Expr::Literal(literal, _) => format!("{literal:?}"),
            Expr::Name(name, _) => name.clone(),
            Expr::Unary { op, operand, .. } => format!("({op:?} {})", show(operand)),
            Expr::Binary { op, left, right, .. } => {
                format!("({op:?} {} {})", show(left), show(right))
            }
            Expr::In { operand, list, .. } => {
                let items: Vec<String> = list.iter().map(show).collect();
                format!("(In {} [{}])", show(operand), items.join(" "))
            }
            Expr::Call { function, arguments, .. } => {
                let items: Vec<String> = arguments.iter().map(show).collect();
                format!("{function}({})", items.join(" "))
            }
        }
    }

    fn tree(text: &str) -> String {
        show(&parse(text).unwrap_or_else(|e| panic!("{text}: {e}")))
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(tree("a eq 1 or b eq 2 and c eq 3"), "(Or (Eq a 1) (And (Eq b 2) (Eq c 3)))");
    }

    #[test]
    fn arithmetic_follows_odata_precedence() {
        assert_eq!(tree("a add b mul c eq 7"), "(Eq (Add a (Mul b c)) 7)");
        assert_eq!(tree("a sub b sub c"), "(Sub (Sub a b) c)");
        assert_eq!(tree("-a add 1"), "(Add (Negate a) 1)");
        assert_eq!(tree("not a eq b"), "(Eq (Not a) b)");
        assert_eq!(tree("not (a eq b)"), "(Not (Eq a b))");
    }

    #[test]
    fn in_takes_a_possibly_empty_list() {
        assert_eq!(tree("a in ('x', 'y')"), "(In a ['x' 'y'])");
        assert_eq!(tree("a in ()"), "(In a [])");
        assert_eq!(tree("a in ('x') and b"), "(And (In a ['x']) b)");
    }

    #[test]
    fn calls_take_any_number_of_arguments() {
        assert_eq!(tree("contains(tolower(name),'x')"), "contains(tolower(name) 'x')");
        assert_eq!(tree("now() gt d"), "(Gt now() d)");
        assert_eq!(tree("cast(n, Edm.String) eq '5'"), "(Eq cast(n Edm.String) '5')");
    }

    #[test]
    fn errors_name_the_position_and_what_was_expected() {
        let cases = [
            ("a eq", 5, "expected an expression, but found the end of the expression"),
            ("(a eq 1", 8, "expected ')', but found the end of the expression"),
            ("a eq 1 b", 8, "expected an operator such as 'eq' or 'and', but found 'b'"),
            ("a equals 1", 3, "expected an operator such as 'eq' or 'and', but found 'equals'"),
            ("a in 'x'", 6, "expected '(', but found a literal"),
            ("f(a,", 5, "expected an expression, but found the end of the expression"),
            ("a eq 1)", 7, "or the end of the expression, but found ')'"),
            ("a eq #", 6, "the character '#' is not expected here"),
        ];
        for (text, position, message) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.position, position, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn depth_and_length_are_bounded() {
        let deep = format!("{}a{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
        assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
        let shallow = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&shallow).is_ok());
        let chain = format!("a{}", " add 1".repeat(MAX_DEPTH));
        assert!(parse(&chain).unwrap_err().message.contains("nested deeper"));
        let allowed = format!("a{}", " add 1".repeat(MAX_DEPTH - 1));
        assert!(parse(&allowed).is_ok());
        let long = format!("a eq '{}'", "x".repeat(MAX_LENGTH));
        assert_eq!(parse(&long).unwrap_err().position, MAX_LENGTH + 1);
    }

    #[test]
    fn spans_cover_the_source_text() {
        let text = "numberOfErrorDevices gt 10";
        assert_eq!(parse(text).unwrap().span(), Span { start: 0, end: text.len() });
    }

    #[test]
    fn operator_words_ignore_case() {
        assert_eq!(
            tree("Name EQ 'Milk' AND Price LT 2 Or NOT x"),
            "(Or (And (Eq Name 'Milk') (Lt Price 2)) (Not x))"
        );
        assert_eq!(tree("a IN ('x')"), "(In a ['x'])");
    }

    #[test]
    fn names_may_be_paths() {
        assert_eq!(tree("a/b eq 1"), "(Eq a/b 1)");
    }

    #[test]
    fn in_takes_json_array() {
        // Only the delimiters differ, and they are as long, so even the spans are equal.
        assert_eq!(parse("a in ['x', 'y']").unwrap(), parse("a in ('x', 'y')").unwrap());
        assert_eq!(tree(r#"a in ["x","y"]"#), "(In a ['x' 'y'])");
        assert_eq!(tree(r#"a in ["x", 'y', 5]"#), "(In a ['x' 'y' 5])");
        assert_eq!(tree("a in []"), "(In a [])");
        assert_eq!(tree(r#"a in ["it's \"q\" \u00e9\ud83d\ude00"]"#), "(In a ['it's \"q\" é😀'])");
    }

    #[test]
    fn json_strings_are_rejected_outside_arrays() {
        let error = parse(r#"a eq "x""#).unwrap_err();
        assert_eq!(error.position, 6);
        assert!(error.message.contains("single quotes"), "{error}");
        let cases = [
            (r#"a in ["x" "y"]"#, 11, "expected ',' or ']'"),
            (r#"a in ["x"#, 7, "no closing double quote"),
            (r#"a in ["\q"]"#, 8, "invalid escape sequence"),
            (r#"a in ["\ud83d"]"#, 8, "invalid escape sequence"),
            ("a in [[1]]", 7, "expected an expression, but found '['"),
        ];
        for (text, position, message) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.position, position, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn prefix_stops_at_non_operator_word() {
        let chars: Vec<char> = "x, amount mul 2 with sum as total".chars().collect();
        let (expr, stop) = parse_prefix(&chars, 3).unwrap();
        assert_eq!(show(&expr), "(Mul amount 2)");
        assert_eq!(expr.span(), Span { start: 3, end: 15 });
        assert_eq!(stop, 16);
    }

    #[test]
    fn prefix_ignores_text_after_stop() {
        let chars: Vec<char> = "filter(a eq 1)/#'".chars().collect();
        let (expr, stop) = parse_prefix(&chars, 7).unwrap();
        assert_eq!(show(&expr), "(Eq a 1)");
        assert_eq!(stop, 13);
    }

    #[test]
    fn prefix_keeps_errors_inside_parentheses() {
        let chars: Vec<char> = "(a foo) asc".chars().collect();
        let error = parse_prefix(&chars, 0).unwrap_err();
        assert_eq!(error.position, 4);
        assert!(error.message.contains("but found 'foo'"), "{error}");
        let chars: Vec<char> = "a eq 'open".chars().collect();
        assert_eq!(parse_prefix(&chars, 0).unwrap_err().position, 6);
    }
}
