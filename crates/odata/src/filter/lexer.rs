//! Splits expression text into tokens, recognizing literals by their shape.

use super::SyntaxError;
use super::ast::{Literal, Span};
use crate::datetime::{DateTimeOffset, TICKS_PER_SECOND};

/// One token and where it is.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// The kinds of token.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum TokenKind {
    /// A literal value.
    Literal(Literal),
    /// A name, keyword or operator word; dotted names such as `Edm.String` are one word.
    Word(String),
    /// A string in double quotes, as JSON writes it. OData accepts one only inside a JSON array.
    JsonString(String),
    OpenParen,
    CloseParen,
    OpenBracket,
    CloseBracket,
    Comma,
    Slash,
    Minus,
    /// The end of the text.
    End,
}

impl TokenKind {
    /// Describes the token for an error message.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Literal(_) => "a literal".to_owned(),
            TokenKind::Word(word) => format!("'{word}'"),
            TokenKind::JsonString(_) => "a string in double quotes".to_owned(),
            TokenKind::OpenParen => "'('".to_owned(),
            TokenKind::CloseParen => "')'".to_owned(),
            TokenKind::OpenBracket => "'['".to_owned(),
            TokenKind::CloseBracket => "']'".to_owned(),
            TokenKind::Comma => "','".to_owned(),
            TokenKind::Slash => "'/'".to_owned(),
            TokenKind::Minus => "'-'".to_owned(),
            TokenKind::End => "the end of the expression".to_owned(),
        }
    }
}

/// A cursor over the characters of an expression that reads one token at a time.
pub(super) struct Lexer<'a> {
    chars: &'a [char],
    at: usize,
}

impl<'a> Lexer<'a> {
    /// Starts reading `chars` at the offset `start`. Token spans count from the start of `chars`.
    pub(super) fn new(chars: &'a [char], start: usize) -> Self {
        Lexer { chars, at: start }
    }

    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.at + offset).copied()
    }

    fn error(&self, at: usize, message: String) -> SyntaxError {
        SyntaxError { position: at + 1, message }
    }

    /// Reads the next token, or [`TokenKind::End`] at the end of the text.
    pub(super) fn next_token(&mut self) -> Result<Token, SyntaxError> {
        while matches!(self.peek(0), Some(' ' | '\t')) {
            self.at += 1;
        }
        let start = self.at;
        let Some(first) = self.peek(0) else {
            return Ok(Token { kind: TokenKind::End, span: Span { start, end: start } });
        };

        let kind = match first {
            '(' => self.single(TokenKind::OpenParen),
            ')' => self.single(TokenKind::CloseParen),
            '[' => self.single(TokenKind::OpenBracket),
            ']' => self.single(TokenKind::CloseBracket),
            ',' => self.single(TokenKind::Comma),
            '/' => self.single(TokenKind::Slash),
            '\'' => TokenKind::Literal(Literal::String(self.string()?)),
            '"' => TokenKind::JsonString(self.json_string()?),
            '-' if self.peek(1).is_some_and(|c| c.is_ascii_digit()) => {
                self.at += 1;
                TokenKind::Literal(self.number(true, start)?)
            }
            '-' if self.starts_with("-INF") && !self.is_name_char(4) => {
                self.at += 4;
                TokenKind::Literal(Literal::Double(f64::NEG_INFINITY))
            }
            '-' => self.single(TokenKind::Minus),
            '+' if self.peek(1).is_some_and(|c| c.is_ascii_digit()) => {
                self.at += 1;
                TokenKind::Literal(self.number(false, start)?)
            }
            c if c.is_ascii_hexdigit() && self.guid_length() == Some(36) => {
                let guid: String = self.chars[start..start + 36].iter().collect();
                self.at += 36;
                TokenKind::Literal(Literal::Guid(guid.to_ascii_lowercase()))
            }
            c if c.is_ascii_digit() => TokenKind::Literal(self.temporal_or_number(start)?),
            c if c.is_alphabetic() || c == '_' || c == '$' => self.word(),
            other => {
                return Err(
                    self.error(start, format!("the character '{other}' is not expected here"))
                );
            }
        };
        Ok(Token { kind, span: Span { start, end: self.at } })
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.at += 1;
        kind
    }

    fn starts_with(&self, text: &str) -> bool {
        text.chars().enumerate().all(|(i, c)| self.peek(i) == Some(c))
    }

    fn is_name_char(&self, offset: usize) -> bool {
        self.peek(offset).is_some_and(|c| c.is_alphanumeric() || c == '_')
    }

    /// Reads a quoted string; a quote inside it is written twice.
    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.at;
        self.at += 1;
        let mut value = String::new();
        loop {
            match self.peek(0) {
                None => {
                    return Err(self.error(
                        start,
                        "the string has no closing quote; write a quote inside a string as ''"
                            .to_owned(),
                    ));
                }
                Some('\'') if self.peek(1) == Some('\'') => {
                    value.push('\'');
                    self.at += 2;
                }
                Some('\'') => {
                    self.at += 1;
                    return Ok(value);
                }
                Some('\0') => return Err(self.nul_error()),
                Some(c) => {
                    value.push(c);
                    self.at += 1;
                }
            }
        }
    }

    /// Reads a JSON string (RFC 8259): backslash escapes, no raw control characters.
    fn json_string(&mut self) -> Result<String, SyntaxError> {
        let start = self.at;
        self.at += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(self.error(start, "the string has no closing double quote".to_owned()));
            };
            match c {
                '"' => {
                    self.at += 1;
                    return Ok(value);
                }
                '\\' => {
                    let escape = self.at;
                    match self.json_escape()? {
                        '\0' => {
                            self.at = escape;
                            return Err(self.nul_error());
                        }
                        c => value.push(c),
                    }
                }
                c if c.is_control() => {
                    return Err(self.error(
                        self.at,
                        format!(
                            "the control character U+{:04X} must be escaped in a string in double quotes",
                            u32::from(c)
                        ),
                    ));
                }
                c => {
                    value.push(c);
                    self.at += 1;
                }
            }
        }
    }

    /// Returns the error for U+0000 in a string literal. No stored string contains it, because
    /// PostgreSQL text cannot, so literals are rejected too.
    fn nul_error(&self) -> SyntaxError {
        self.error(
            self.at,
            "a string cannot contain the character U+0000, which no stored value contains"
                .to_owned(),
        )
    }

    /// Reads one backslash escape of a JSON string, including a UTF-16 surrogate pair.
    fn json_escape(&mut self) -> Result<char, SyntaxError> {
        let start = self.at;
        let invalid = |lexer: &Self| {
            lexer.error(start, "invalid escape sequence in a string in double quotes".to_owned())
        };
        let simple = match self.peek(1) {
            Some('"') => Some('"'),
            Some('\\') => Some('\\'),
            Some('/') => Some('/'),
            Some('b') => Some('\u{8}'),
            Some('f') => Some('\u{c}'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            Some('u') => None,
            _ => return Err(invalid(self)),
        };
        if let Some(c) = simple {
            self.at += 2;
            return Ok(c);
        }

        // `\uXXXX`, where a high surrogate must be followed by `\uXXXX` with a low surrogate.
        let high = self.hex4(2).ok_or_else(|| invalid(self))?;
        self.at += 6;
        if !(0xD800..0xDC00).contains(&high) {
            return char::from_u32(high).ok_or_else(|| invalid(self));
        }
        if self.peek(0) != Some('\\') || self.peek(1) != Some('u') {
            return Err(invalid(self));
        }
        let low = self.hex4(2).filter(|low| (0xDC00..0xE000).contains(low));
        let low = low.ok_or_else(|| invalid(self))?;
        self.at += 6;
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            .ok_or_else(|| invalid(self))
    }

    /// Returns the value of the four hexadecimal digits at `offset` from the cursor, if present.
    fn hex4(&self, offset: usize) -> Option<u32> {
        (0..4).try_fold(0, |value, i| Some(value * 16 + self.peek(offset + i)?.to_digit(16)?))
    }

    /// Returns the length of a GUID (8-4-4-4-12 hexadecimal digits) at the cursor, if one is
    /// there and is not followed by more name characters.
    fn guid_length(&self) -> Option<usize> {
        for i in 0..36 {
            let c = self.peek(i)?;
            let ok = if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() };
            if !ok {
                return None;
            }
        }
        (!self.is_name_char(36) && self.peek(36) != Some('-')).then_some(36)
    }

    /// Reads a date-time, date, time of day or number that starts with a digit.
    fn temporal_or_number(&mut self, start: usize) -> Result<Literal, SyntaxError> {
        let digits_before = |lexer: &Self, n: usize| {
            (0..n).all(|i| lexer.peek(i).is_some_and(|c| c.is_ascii_digit()))
        };

        // A date is four digits, '-', two digits, '-', two digits.
        if digits_before(self, 4) && self.peek(4) == Some('-') {
            let text: String = self
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '+'));
            if text.contains(['T', 't']) {
                let instant = DateTimeOffset::parse(&text).map_err(|error| {
                    // A '+' sent unescaped in a URL arrives as a space, which cuts the offset.
                    let hint = match self.peek(0) {
                        Some(' ') if self.peek(1).is_some_and(|c| c.is_ascii_digit()) => {
                            "; a '+' in a URL means a space, so write the offset's '+' as %2B"
                        }
                        _ => "",
                    };
                    self.error(
                        start,
                        format!("'{text}' is not a valid DateTimeOffset ({error}){hint}"),
                    )
                })?;
                return Ok(Literal::DateTimeOffset(instant));
            }
            return parse_date(&text).ok_or_else(|| {
                self.error(start, format!("'{text}' is not a valid date such as 2024-03-01"))
            });
        }

        // A time of day is two digits and ':'.
        if digits_before(self, 2) && self.peek(2) == Some(':') {
            let text: String = self.take_while(|c| c.is_ascii_digit() || matches!(c, ':' | '.'));
            return parse_time_of_day(&text).ok_or_else(|| {
                self.error(start, format!("'{text}' is not a valid time of day such as 07:30:00"))
            });
        }
        self.number(false, start)
    }

    fn take_while(&mut self, accept: impl Fn(char) -> bool) -> String {
        let mut text = String::new();
        while let Some(c) = self.peek(0).filter(|c| accept(*c)) {
            text.push(c);
            self.at += 1;
        }
        text
    }

    /// Reads an integer, decimal or double. `negative` is true when a '-' was already consumed.
    fn number(&mut self, negative: bool, start: usize) -> Result<Literal, SyntaxError> {
        let mut text = if negative { "-".to_owned() } else { String::new() };
        text.push_str(&self.take_while(|c| c.is_ascii_digit()));
        let mut fraction = false;
        let mut exponent = false;
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            fraction = true;
            self.at += 1;
            text.push('.');
            text.push_str(&self.take_while(|c| c.is_ascii_digit()));
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek(1), Some('+' | '-')));
            if self.peek(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                exponent = true;
                text.push('e');
                if sign == 1 {
                    text.push(self.peek(1).unwrap_or('+'));
                }
                self.at += 1 + sign;
                text.push_str(&self.take_while(|c| c.is_ascii_digit()));
            }
        }
        if self.is_name_char(0) {
            return Err(self.error(self.at, format!("the number '{text}' runs into a name")));
        }

        if exponent {
            let value = text
                .parse::<f64>()
                .map_err(|_| self.error(start, format!("'{text}' is not a valid number")))?;
            // Rust rounds a literal past the double range to infinity, and one below it to 0.
            let mantissa = text.split(['e', 'E']).next().unwrap_or("");
            let underflow = value == 0.0 && mantissa.bytes().any(|b| matches!(b, b'1'..=b'9'));
            if value.is_infinite() || underflow {
                return Err(self.error(
                    start,
                    format!("'{text}' is outside the range of Edm.Double; write it as a decimal"),
                ));
            }
            return Ok(Literal::Double(value));
        }
        if !fraction && let Ok(value) = text.parse::<i64>() {
            return Ok(Literal::Integer(value));
        }
        Ok(Literal::Decimal(text))
    }

    /// Reads a name or keyword; dotted names are one word.
    fn word(&mut self) -> TokenKind {
        let mut text = String::new();
        loop {
            text.push_str(&self.take_while(|c| c.is_alphanumeric() || c == '_' || c == '$'));
            let continues = self.peek(0) == Some('.')
                && self.peek(1).is_some_and(|c| c.is_alphabetic() || c == '_');
            if !continues {
                break;
            }
            text.push('.');
            self.at += 1;
        }
        // OData 4.01 lets `null`, `true` and `false` take any case, like the operator words.
        match text.as_str() {
            word if word.eq_ignore_ascii_case("null") => TokenKind::Literal(Literal::Null),
            word if word.eq_ignore_ascii_case("true") => TokenKind::Literal(Literal::Boolean(true)),
            word if word.eq_ignore_ascii_case("false") => {
                TokenKind::Literal(Literal::Boolean(false))
            }
            "INF" => TokenKind::Literal(Literal::Double(f64::INFINITY)),
            "NaN" => TokenKind::Literal(Literal::Double(f64::NAN)),
            _ => TokenKind::Word(text),
        }
    }
}

fn parse_date(text: &str) -> Option<Literal> {
    let mut parts = text.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day): (i32, u8, u8) =
        (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);

    // Reuse the date-time rules for the calendar check.
    let check = format!("{year:04}-{month:02}-{day:02}T12:00:00Z");
    DateTimeOffset::parse(&check).ok()?;
    Some(Literal::Date(year, month, day))
}

fn parse_time_of_day(text: &str) -> Option<Literal> {
    let check = format!("2000-01-01T{text}Z");
    let instant = DateTimeOffset::parse(&check).ok()?;
    let midnight = DateTimeOffset::parse("2000-01-01T00:00:00Z").ok()?;
    let ticks = instant.ticks() - midnight.ticks();
    debug_assert!(ticks < 86_400 * TICKS_PER_SECOND);
    Some(Literal::TimeOfDay(ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `text` into tokens, ending with [`TokenKind::End`].
    fn tokenize(text: &str) -> Result<Vec<Token>, SyntaxError> {
        let chars: Vec<char> = text.chars().collect();
        let mut lexer = Lexer::new(&chars, 0);
        let mut tokens = Vec::new();
        loop {
            let token = lexer.next_token()?;
            let end = token.kind == TokenKind::End;
            tokens.push(token);
            if end {
                return Ok(tokens);
            }
        }
    }

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(text).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn literal(text: &str) -> Literal {
        match kinds(text).remove(0) {
            TokenKind::Literal(literal) => literal,
            other => panic!("{text}: not a literal but {other:?}"),
        }
    }

    #[test]
    fn strings_undo_doubled_quotes() {
        assert_eq!(literal("'it''s'"), Literal::String("it's".into()));
        assert_eq!(literal("''"), Literal::String(String::new()));
        assert_eq!(literal("'a&b+c'"), Literal::String("a&b+c".into()));
    }

    #[test]
    fn u0000_in_string_is_rejected_at_its_position() {
        let error = tokenize("name eq 'ab\0c'").unwrap_err();
        assert_eq!(error.position, 12);
        assert!(error.message.contains("U+0000"), "{}", error.message);

        let error = tokenize(r#"name in ["ab\u0000"]"#).unwrap_err();
        assert_eq!(error.position, 13);
        assert!(error.message.contains("U+0000"), "{}", error.message);
    }

    #[test]
    fn unterminated_string_names_its_start() {
        let error = tokenize("name eq 'abc").unwrap_err();
        assert_eq!(error.position, 9);
    }

    #[test]
    fn integers_past_64_bits_stay_exact_as_decimals() {
        assert_eq!(literal("9007199254740993"), Literal::Integer(9_007_199_254_740_993));
        assert_eq!(literal("-9223372036854775808"), Literal::Integer(i64::MIN));
        assert_eq!(literal("9223372036854775808"), Literal::Decimal("9223372036854775808".into()));
        assert_eq!(literal("12.50"), Literal::Decimal("12.50".into()));
        assert_eq!(literal("1.5e3"), Literal::Double(1500.0));
        assert_eq!(literal("-2E-2"), Literal::Double(-0.02));
    }

    #[test]
    fn temporal_literals_are_recognized() {
        let instant = DateTimeOffset::parse("2024-03-01T13:00:00.1234567+05:30").unwrap();
        assert_eq!(literal("2024-03-01T13:00:00.1234567+05:30"), Literal::DateTimeOffset(instant));
        assert_eq!(literal("2024-02-29"), Literal::Date(2024, 2, 29));
        assert_eq!(literal("07:30:00.5"), Literal::TimeOfDay(270_005_000_000));
        assert!(tokenize("2023-02-29").is_err());
        assert!(tokenize("2024-03-01T25:00:00Z").is_err());
    }

    #[test]
    fn guids_are_literals_and_other_words_are_names() {
        assert_eq!(
            literal("4A3BC0D2-51E2-4C5F-9C61-0D6A4E1F0B7A"),
            Literal::Guid("4a3bc0d2-51e2-4c5f-9c61-0d6a4e1f0b7a".into())
        );
        assert_eq!(kinds("tenantId")[0], TokenKind::Word("tenantId".into()));
        assert_eq!(kinds("Edm.String")[0], TokenKind::Word("Edm.String".into()));
    }

    #[test]
    fn numbers_take_a_plus_sign() {
        assert_eq!(literal("+42"), Literal::Integer(42));
        assert_eq!(literal("+0.25e+1"), Literal::Double(2.5));
        assert_eq!(literal("+1.50"), Literal::Decimal("1.50".into()));
        assert!(tokenize("+x").is_err());
    }

    #[test]
    fn minus_sign_or_operator() {
        assert_eq!(literal("-5"), Literal::Integer(-5));
        assert_eq!(kinds("-x")[0], TokenKind::Minus);
        assert_eq!(literal("-INF"), Literal::Double(f64::NEG_INFINITY));
    }
}
