//! Consul's `?filter=` expression language (HashiCorp go-bexpr), sans-IO.
//!
//! Owns: parsing a filter expression into an immutable [`Filter`] and evaluating it against
//! one `serde_json::Value`: an element of an API response serialized with Consul's
//! PascalCase field names (a `ServiceNode`, a `CheckServiceNode`, an `AgentService`, …).
//! Must not touch: HTTP, ACLs, the state store or the shape of responses. The caller (`http`)
//! parses `?filter=` once per request (a [`FilterError`] becomes a `400` carrying its
//! message), serializes each element and keeps those for which [`Filter::matches`] is true.
//!
//! # Grammar (go-bexpr)
//!
//! ```text
//! expr      := or
//! or        := and ("or" and)*
//! and       := not ("and" not)*
//! not       := "not" not | primary                 precedence: not > and > or
//! primary   := "(" or ")" | match
//! match     := selector ("==" | "!=") value
//!            | selector "is" ["not"] ("empty" | "nil")
//!            | selector ["not"] ("contains" | "matches") value
//!            | value ["not"] "in" selector
//! selector  := ident ("." ident | "." digits | "[" string "]")*
//! ident     := [A-Za-z_][A-Za-z0-9_/]*
//! value     := string | number | selector-shaped bare word (`web`, `true`, `a.b`)
//! string    := "…" (Go escapes: \a \b \f \n \r \t \v \\ \" \xHH \ooo \uHHHH \UHHHHHHHH)
//!            | `…` (raw, no escapes, carriage returns dropped as in Go)
//! number    := -?(0|[1-9][0-9]*)(\.[0-9]+)?
//! ```
//!
//! Whitespace is space, tab, CR and LF. Keywords are lowercase and only recognised as whole
//! words, so `notes`, `order` or `index` are ordinary selectors. Like go-bexpr, every value is
//! kept as its raw text and converted to the type of the field it is compared with (`Port ==
//! "80"` and `Port == 80` are the same test); a bare word used as a value is its text (`a.b`,
//! and `M["k"]` as a value is the text `M.k`, exactly as go-bexpr renders it). Positions in
//! errors are 0-based character offsets into the expression.
//!
//! # Semantics
//!
//! A selector is resolved against the JSON value: an object step looks the segment up
//! verbatim (struct fields and map keys alike), an all-digits segment on an array indexes it
//! (`Checks.0.Status`). Every negated operator (`!=`, `not in`, `not contains`,
//! `not matches`, `is not empty`, `is not nil`) is exactly the negation of its positive form.
//!
//! - `==`: strings compare as strings, numbers numerically (the literal is parsed as a number;
//!   `80.0 == 80`), booleans by Go's `strconv.ParseBool` (`true`, `t`, `1`, `True`, …).
//!   Null and objects equal nothing. An array equals a value when any element does (go-bexpr
//!   errors here; this is our lenient choice).
//! - `is empty`: null, missing, `""`, `[]` and `{}`; numbers and booleans are never empty.
//!   `is nil`: null or missing.
//! - `in` / `contains`: arrays: an element equals the value (same rules as `==`); objects:
//!   the value is a key; strings: substring. Anything else contains nothing.
//! - `matches`: unanchored regex search (`regex` crate, RE2 syntax like Go's `regexp`) on
//!   strings; on arrays any element matches, on objects any key matches (go-bexpr errors for
//!   both); numbers, booleans and null never match. An invalid regex is a parse error.
//! - Missing fields: go-bexpr gives a missing *map key* "not present" treatment (`==` false,
//!   `!=` true, `is empty` true, …) and errors for a missing *struct field*. JSON cannot tell
//!   the two apart, so every unresolvable path gets the map-key treatment; `matches` never
//!   fails at evaluation time.
//! - Crossing arrays: go-bexpr cannot select through a slice (`Checks.Status` is an error
//!   there). We collect the field from every element (flattening nested arrays, skipping
//!   elements that lack it) and then apply *any* semantics: `==`, `contains`/`in` and
//!   `matches` are true if **any** collected item satisfies them, so
//!   `Checks.Status == "passing"` means "some check is passing" and
//!   `Checks.Status != "critical"` means "no check is critical". `contains`/`in` on the
//!   collected list is list membership (an item equals the value, or an item that is itself
//!   an array/object contains it) — never substring. `is empty` / `is nil` hold when **every**
//!   collected item is empty / null (vacuously when nothing was collected), so
//!   `is not empty` reads "some item is not empty".
//!
//! Not supported (go-bexpr has them, Consul's docs do not): `any`/`all` collection
//! expressions and quoted JSON-pointer selectors (`"/Service/Tags"`).
//!
//! Limits: nesting of parentheses and `not` is capped at [`MAX_DEPTH`] so untrusted input
//! cannot exhaust the stack; `and`/`or` chains are stored flat and have no limit.

use regex::Regex;
use serde_json::{Number, Value};

/// Deepest nesting of parentheses plus `not` that [`Filter::parse`] accepts.
pub const MAX_DEPTH: usize = 128;

/// A parsed filter expression; cheap to share, evaluate with [`Filter::matches`].
#[derive(Clone, Debug)]
pub struct Filter {
    expr: Expr,
}

/// Why an expression could not be parsed. Messages start with `filter:`, are lowercase and
/// name the offending text and its 0-based character position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The expression is empty or only whitespace.
    #[error("filter: empty expression")]
    Empty,
    /// Something other than what the grammar allows at `position`.
    #[error("filter: expected {expected} at position {position}, found {found}")]
    Expected {
        expected: String,
        found: String,
        position: usize,
    },
    /// A `(` whose group ends without its `)`.
    #[error(
        "filter: unclosed '(' at position {open}: expected 'and', 'or' or ')' \
         at position {position}, found {found}"
    )]
    UnclosedParen {
        open: usize,
        found: String,
        position: usize,
    },
    /// A `"` or `` ` `` string that never closes.
    #[error("filter: unterminated string literal starting at position {position}")]
    UnterminatedString { position: usize },
    /// A bad escape sequence, a raw newline in a `"…"` string, or escapes forming invalid UTF-8.
    #[error("filter: invalid string literal at position {position}: {reason}")]
    InvalidString { reason: String, position: usize },
    /// Text that starts like a number but is not one (`12abc`, `0123`, `1.`).
    #[error("filter: invalid number literal '{literal}' at position {position}")]
    InvalidNumber { literal: String, position: usize },
    /// The value of `matches` / `not matches` is not a valid regular expression.
    #[error("filter: invalid regular expression {pattern:?} at position {position}: {reason}")]
    InvalidRegex {
        pattern: String,
        reason: String,
        position: usize,
    },
    /// Parentheses and `not` nested deeper than [`MAX_DEPTH`].
    #[error("filter: expression nested deeper than {limit} levels at position {position}")]
    TooDeep { limit: usize, position: usize },
}

impl Filter {
    /// Parses a go-bexpr expression; regular expressions are compiled here, so evaluation
    /// cannot fail.
    ///
    /// # Errors
    ///
    /// A [`FilterError`] naming what was wrong and its character position; the caller answers
    /// `400` with its message.
    pub fn parse(expr: &str) -> Result<Filter, FilterError> {
        let mut parser = Parser {
            src: expr,
            bytes: expr.as_bytes(),
            pos: 0,
            depth: 0,
        };
        parser.skip_ws();
        if parser.at_end() {
            return Err(FilterError::Empty);
        }
        let expr = parser.parse_or()?;
        parser.skip_ws();
        if !parser.at_end() {
            return Err(parser.expected("'and', 'or' or the end of the expression"));
        }
        Ok(Filter { expr })
    }

    /// Whether `value` (one response element) satisfies the expression.
    #[must_use]
    pub fn matches(&self, value: &Value) -> bool {
        self.expr.eval(value)
    }
}

// ---------------------------------------------------------------------------------------------
// AST and evaluation
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Expr {
    /// At least two operands; flat so long chains do not deepen recursion.
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Match(Match),
}

impl Expr {
    fn eval(&self, value: &Value) -> bool {
        match self {
            Expr::Or(terms) => terms.iter().any(|t| t.eval(value)),
            Expr::And(terms) => terms.iter().all(|t| t.eval(value)),
            Expr::Not(inner) => !inner.eval(value),
            Expr::Match(m) => m.eval(value),
        }
    }
}

#[derive(Clone, Debug)]
struct Match {
    /// Path segments, looked up verbatim.
    selector: Vec<String>,
    test: Test,
    /// `!=`, `not in`, `not contains`, `not matches`, `is not empty`, `is not nil`.
    negated: bool,
}

#[derive(Clone, Debug)]
enum Test {
    Equal(String),
    Empty,
    Nil,
    Contains(String),
    Matches(Regex),
}

impl Match {
    fn eval(&self, root: &Value) -> bool {
        let sel = resolve(root, &self.selector);
        // Without an array crossing `values` holds zero (missing) or one value; with one it
        // holds the collected items. Either way the positive tests are "any" (or "all" for
        // the emptiness tests), which also gives go-bexpr's not-present disposition for
        // missing values: `==`, `contains`, `matches` false; `is empty`, `is nil` true.
        let positive = match &self.test {
            Test::Equal(raw) => sel.values.iter().any(|v| equals(v, raw)),
            Test::Empty => sel.values.iter().all(|v| is_empty(v)),
            Test::Nil => sel.values.iter().all(|v| v.is_null()),
            Test::Contains(raw) if sel.crossed => sel.values.iter().any(|v| match v {
                Value::Array(_) | Value::Object(_) => contains(v, raw),
                _ => equals(v, raw),
            }),
            Test::Contains(raw) => sel.values.iter().any(|v| contains(v, raw)),
            Test::Matches(re) => sel.values.iter().any(|v| regex_matches(v, re)),
        };
        positive != self.negated
    }
}

struct Selection<'a> {
    values: Vec<&'a Value>,
    /// The path went through an array with a non-index segment.
    crossed: bool,
}

fn resolve<'a>(root: &'a Value, path: &[String]) -> Selection<'a> {
    let mut values = vec![root];
    let mut crossed = false;
    for segment in path {
        let mut next = Vec::new();
        for value in values {
            step(value, segment, &mut next, &mut crossed);
        }
        values = next;
    }
    Selection { values, crossed }
}

fn step<'a>(value: &'a Value, segment: &str, out: &mut Vec<&'a Value>, crossed: &mut bool) {
    match value {
        Value::Object(map) => out.extend(map.get(segment)),
        Value::Array(items) => match array_index(segment) {
            Some(i) => out.extend(items.get(i)),
            None => {
                *crossed = true;
                for item in items {
                    step(item, segment, out, crossed);
                }
            }
        },
        _ => {}
    }
}

fn array_index(segment: &str) -> Option<usize> {
    if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
        segment.parse().ok()
    } else {
        None
    }
}

/// `value == raw`, with `raw` converted to the value's type.
fn equals(value: &Value, raw: &str) -> bool {
    match value {
        Value::String(s) => s == raw,
        Value::Number(n) => number_equals(n, raw),
        Value::Bool(b) => parse_go_bool(raw) == Some(*b),
        Value::Array(items) => items.iter().any(|item| equals(item, raw)),
        Value::Null | Value::Object(_) => false,
    }
}

fn number_equals(n: &Number, raw: &str) -> bool {
    if let Some(i) = n.as_i64() {
        if let Ok(lit) = raw.parse::<i64>() {
            return lit == i;
        }
    } else if let Some(u) = n.as_u64() {
        if let Ok(lit) = raw.parse::<u64>() {
            return lit == u;
        }
    }
    match (n.as_f64(), raw.parse::<f64>()) {
        (Some(field), Ok(lit)) => field == lit,
        _ => false,
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        Value::Number(_) | Value::Bool(_) => false,
    }
}

/// `raw in value`: array membership, map key, or substring.
fn contains(value: &Value, raw: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| equals(item, raw)),
        Value::Object(map) => map.contains_key(raw),
        Value::String(s) => s.contains(raw),
        Value::Null | Value::Number(_) | Value::Bool(_) => false,
    }
}

fn regex_matches(value: &Value, re: &Regex) -> bool {
    match value {
        Value::String(s) => re.is_match(s),
        Value::Array(items) => items.iter().any(|item| regex_matches(item, re)),
        Value::Object(map) => map.keys().any(|k| re.is_match(k)),
        Value::Null | Value::Number(_) | Value::Bool(_) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Parser: scannerless recursive descent over bytes. Every syntactic character is ASCII, so
// `pos` only ever stops on char boundaries; positions are reported in characters.
// ---------------------------------------------------------------------------------------------

/// A value as written: go-bexpr keeps the raw text and converts it per field type.
struct Literal {
    raw: String,
    /// Byte offset of its first character.
    start: usize,
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'/'
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
    }

    /// Character offset of byte offset `byte`.
    fn char_pos(&self, byte: usize) -> usize {
        match self.src.get(..byte) {
            Some(prefix) => prefix.chars().count(),
            None => byte,
        }
    }

    /// Whether the whole word `kw` starts at `pos` (not a prefix of a longer selector).
    fn at_keyword(&self, kw: &str) -> bool {
        let end = self.pos + kw.len();
        self.bytes.get(self.pos..end) == Some(kw.as_bytes())
            && !self
                .bytes
                .get(end)
                .is_some_and(|&b| is_ident_char(b) || b == b'.' || b == b'[')
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let found = self.at_keyword(kw);
        if found {
            self.pos += kw.len();
        }
        found
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.bytes[self.pos..].starts_with(token.as_bytes());
        if found {
            self.pos += token.len();
        }
        found
    }

    /// Describes the input at `pos` for error messages.
    fn found(&self) -> String {
        let rest = self.src.get(self.pos..).unwrap_or("");
        if rest.is_empty() {
            return "end of input".to_string();
        }
        if rest.starts_with([' ', '\t', '\r', '\n']) {
            return "whitespace".to_string();
        }
        let mut snippet: String = rest
            .chars()
            .take_while(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
            .take(21)
            .collect();
        if snippet.chars().count() > 20 {
            snippet = snippet.chars().take(20).collect::<String>() + "…";
        }
        format!("'{snippet}'")
    }

    fn expected(&self, what: impl Into<String>) -> FilterError {
        FilterError::Expected {
            expected: what.into(),
            found: self.found(),
            position: self.char_pos(self.pos),
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::TooDeep {
                limit: MAX_DEPTH,
                position: self.char_pos(at),
            });
        }
        Ok(())
    }

    fn parse_or(&mut self) -> Result<Expr, FilterError> {
        let first = self.parse_and()?;
        let mut terms = Vec::new();
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.eat_keyword("or") {
                terms.push(self.parse_and()?);
            } else {
                self.pos = save;
                break;
            }
        }
        if terms.is_empty() {
            return Ok(first);
        }
        terms.insert(0, first);
        Ok(Expr::Or(terms))
    }

    fn parse_and(&mut self) -> Result<Expr, FilterError> {
        let first = self.parse_not()?;
        let mut terms = Vec::new();
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.eat_keyword("and") {
                terms.push(self.parse_not()?);
            } else {
                self.pos = save;
                break;
            }
        }
        if terms.is_empty() {
            return Ok(first);
        }
        terms.insert(0, first);
        Ok(Expr::And(terms))
    }

    fn parse_not(&mut self) -> Result<Expr, FilterError> {
        self.skip_ws();
        let start = self.pos;
        if self.eat_keyword("not") {
            self.enter(start)?;
            let inner = self.parse_not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Expr, FilterError> {
        self.skip_ws();
        let open = self.pos;
        if self.peek() != Some(b'(') {
            return self.parse_match();
        }
        self.pos += 1;
        self.enter(open)?;
        self.skip_ws();
        if self.peek() == Some(b')') {
            return Err(self.expected("an expression inside parentheses"));
        }
        let inner = self.parse_or()?;
        self.skip_ws();
        if self.peek() != Some(b')') {
            return Err(FilterError::UnclosedParen {
                open: self.char_pos(open),
                found: self.found(),
                position: self.char_pos(self.pos),
            });
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(inner)
    }

    fn parse_match(&mut self) -> Result<Expr, FilterError> {
        self.skip_ws();
        match self.peek() {
            Some(b'"' | b'`' | b'-' | b'0'..=b'9') => {
                let value = self.parse_value_token()?;
                self.parse_in(value)
            }
            Some(b) if is_ident_start(b) => {
                let start = self.pos;
                let selector = self.parse_selector()?;
                let text = &self.src[start..self.pos];
                self.parse_operator(selector, text)
            }
            _ => Err(self.expected("a selector, a value or '('")),
        }
    }

    /// After a selector: the operator and its value.
    fn parse_operator(&mut self, selector: Vec<String>, text: &str) -> Result<Expr, FilterError> {
        let save = self.pos;
        self.skip_ws();
        let (test, negated) = if self.eat("==") {
            (Test::Equal(self.parse_value("'=='")?.raw), false)
        } else if self.eat("!=") {
            (Test::Equal(self.parse_value("'!='")?.raw), true)
        } else if self.eat_keyword("is") {
            self.skip_ws();
            let negated = self.eat_keyword("not");
            self.skip_ws();
            if self.eat_keyword("empty") {
                (Test::Empty, negated)
            } else if self.eat_keyword("nil") {
                (Test::Nil, negated)
            } else if negated {
                return Err(self.expected("'empty' or 'nil' after 'is not'"));
            } else {
                return Err(self.expected("'empty', 'not empty', 'nil' or 'not nil' after 'is'"));
            }
        } else if self.eat_keyword("contains") {
            (Test::Contains(self.parse_value("'contains'")?.raw), false)
        } else if self.eat_keyword("matches") {
            (self.parse_regex("'matches'")?, false)
        } else if self.at_keyword("in") {
            // The "selector" was a bare-word value: `prod in ServiceTags`.
            self.pos = save;
            let value = Literal {
                raw: selector.join("."),
                start: save - text.len(),
            };
            return self.parse_in(value);
        } else if self.eat_keyword("not") {
            self.skip_ws();
            if self.at_keyword("in") {
                self.pos = save;
                let value = Literal {
                    raw: selector.join("."),
                    start: save - text.len(),
                };
                return self.parse_in(value);
            } else if self.eat_keyword("contains") {
                (
                    Test::Contains(self.parse_value("'not contains'")?.raw),
                    true,
                )
            } else if self.eat_keyword("matches") {
                (self.parse_regex("'not matches'")?, true)
            } else {
                return Err(self.expected("'in', 'contains' or 'matches' after 'not'"));
            }
        } else {
            return Err(self.expected(format!(
                "an operator ('==', '!=', 'is', 'contains', 'matches', 'in') after '{text}'"
            )));
        };
        Ok(Expr::Match(Match {
            selector,
            test,
            negated,
        }))
    }

    /// `<value> [not] in <selector>`, with the value already parsed.
    fn parse_in(&mut self, value: Literal) -> Result<Expr, FilterError> {
        self.skip_ws();
        let negated = self.eat_keyword("not");
        self.skip_ws();
        if !self.eat_keyword("in") {
            return Err(self.expected(if negated {
                "'in' after 'not'"
            } else {
                "'in' or 'not in' after a value"
            }));
        }
        self.skip_ws();
        if !self.peek().is_some_and(is_ident_start) {
            return Err(self.expected(if negated {
                "a selector after 'not in'"
            } else {
                "a selector after 'in'"
            }));
        }
        let selector = self.parse_selector()?;
        Ok(Expr::Match(Match {
            selector,
            test: Test::Contains(value.raw),
            negated,
        }))
    }

    fn parse_regex(&mut self, after: &str) -> Result<Test, FilterError> {
        let value = self.parse_value(after)?;
        match Regex::new(&value.raw) {
            Ok(re) => Ok(Test::Matches(re)),
            Err(err) => Err(FilterError::InvalidRegex {
                reason: regex_reason(&err),
                position: self.char_pos(value.start),
                pattern: value.raw,
            }),
        }
    }

    /// A value after an operator (`after` names the operator for the error message).
    fn parse_value(&mut self, after: &str) -> Result<Literal, FilterError> {
        self.skip_ws();
        match self.peek() {
            Some(b'"' | b'`' | b'-' | b'0'..=b'9') => self.parse_value_token(),
            Some(b) if is_ident_start(b) => {
                let start = self.pos;
                let path = self.parse_selector()?;
                Ok(Literal {
                    raw: path.join("."),
                    start,
                })
            }
            _ => Err(self.expected(format!("a value after {after}"))),
        }
    }

    /// A string or number literal at `pos`.
    fn parse_value_token(&mut self) -> Result<Literal, FilterError> {
        let start = self.pos;
        let raw = match self.peek() {
            Some(b'"' | b'`') => self.parse_string()?,
            _ => self.parse_number()?,
        };
        Ok(Literal { raw, start })
    }

    fn parse_number(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            self.pos += 1;
        }
        let literal = &self.src[start..self.pos];
        if valid_number(literal) {
            Ok(literal.to_string())
        } else {
            Err(FilterError::InvalidNumber {
                literal: literal.to_string(),
                position: self.char_pos(start),
            })
        }
    }

    fn parse_selector(&mut self) -> Result<Vec<String>, FilterError> {
        let mut path = vec![self.parse_ident()];
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b) if is_ident_start(b) => path.push(self.parse_ident()),
                        Some(b'0'..=b'9') => {
                            let start = self.pos;
                            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                                self.pos += 1;
                            }
                            path.push(self.src[start..self.pos].to_string());
                        }
                        _ => return Err(self.expected("a field name or an index after '.'")),
                    }
                }
                Some(b'[') => {
                    self.pos += 1;
                    self.skip_ws();
                    if !matches!(self.peek(), Some(b'"' | b'`')) {
                        return Err(self.expected("a quoted key after '['"));
                    }
                    path.push(self.parse_string()?);
                    self.skip_ws();
                    if self.peek() != Some(b']') {
                        return Err(self.expected("']' to close the index"));
                    }
                    self.pos += 1;
                }
                _ => return Ok(path),
            }
        }
    }

    /// An identifier; the caller has checked that one starts at `pos`.
    fn parse_ident(&mut self) -> String {
        let start = self.pos;
        self.pos += 1;
        while self.peek().is_some_and(is_ident_char) {
            self.pos += 1;
        }
        self.src[start..self.pos].to_string()
    }

    /// A `"…"` or `` `…` `` string at `pos`, unquoted like Go's `strconv.Unquote`.
    fn parse_string(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        let unterminated = FilterError::UnterminatedString {
            position: self.char_pos(start),
        };
        if self.peek() == Some(b'`') {
            let body = &self.src[start + 1..];
            let Some(len) = body.find('`') else {
                return Err(unterminated);
            };
            self.pos = start + 1 + len + 1;
            return Ok(body[..len].replace('\r', ""));
        }
        let mut out: Vec<u8> = Vec::new();
        let mut i = start + 1;
        loop {
            match self.bytes.get(i) {
                None => return Err(unterminated),
                Some(b'"') => break,
                Some(b'\n') => return Err(self.invalid_string(i, "newline in string")),
                Some(b'\\') => {
                    i = self.parse_escape(start, i, &mut out)?;
                }
                Some(&b) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        self.pos = i + 1;
        String::from_utf8(out)
            .map_err(|_| self.invalid_string(start, "escape sequences form invalid utf-8"))
    }

    /// Decodes the escape whose backslash is at byte `at` in the string starting at byte
    /// `start`; returns the byte after it.
    fn parse_escape(
        &self,
        start: usize,
        at: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, FilterError> {
        let Some(&kind) = self.bytes.get(at + 1) else {
            return Err(FilterError::UnterminatedString {
                position: self.char_pos(start),
            });
        };
        let simple = match kind {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            return Ok(at + 2);
        }
        let (digits_at, count, radix) = match kind {
            b'x' => (at + 2, 2, 16),
            b'u' => (at + 2, 4, 16),
            b'U' => (at + 2, 8, 16),
            b'0'..=b'7' => (at + 1, 3, 8),
            _ => {
                let shown: String = self.src.get(at..).unwrap_or("").chars().take(2).collect();
                return Err(self.invalid_string(at, &format!("invalid escape sequence '{shown}'")));
            }
        };
        let end = digits_at + count;
        let digits = self
            .bytes
            .get(digits_at..end)
            .filter(|d| d.iter().all(|&b| (b as char).is_digit(radix)))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, radix).ok());
        let bad = || {
            let shown: String = self
                .src
                .get(at..)
                .unwrap_or("")
                .chars()
                .take(end - at)
                .take_while(|&c| c != '"')
                .collect();
            self.invalid_string(at, &format!("invalid escape sequence '{shown}'"))
        };
        let Some(code) = digits else {
            return Err(bad());
        };
        match kind {
            b'x' | b'0'..=b'7' => {
                let byte = u8::try_from(code).map_err(|_| bad())?;
                out.push(byte);
            }
            _ => {
                let c = char::from_u32(code).ok_or_else(bad)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        Ok(end)
    }

    fn invalid_string(&self, at: usize, reason: &str) -> FilterError {
        FilterError::InvalidString {
            reason: reason.to_string(),
            position: self.char_pos(at),
        }
    }
}

/// go-bexpr's `NumberLiteral`: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`.
fn valid_number(literal: &str) -> bool {
    let digits = literal.strip_prefix('-').unwrap_or(literal);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let int_ok = int == "0"
        || (!int.is_empty() && !int.starts_with('0') && int.bytes().all(|b| b.is_ascii_digit()));
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    int_ok && frac_ok
}

/// The one-line reason from a `regex` error (syntax errors render as a multi-line diagram).
fn regex_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    match text.lines().find_map(|l| l.trim().strip_prefix("error: ")) {
        Some(reason) => reason.to_string(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(expr: &str) -> Filter {
        match Filter::parse(expr) {
            Ok(f) => f,
            Err(e) => panic!("{expr:?} failed to parse: {e}"),
        }
    }

    fn eval(expr: &str, value: &Value) -> bool {
        parse(expr).matches(value)
    }

    fn err(expr: &str) -> FilterError {
        match Filter::parse(expr) {
            Ok(f) => panic!("{expr:?} parsed unexpectedly: {f:?}"),
            Err(e) => e,
        }
    }

    fn msg(expr: &str) -> String {
        err(expr).to_string()
    }

    /// A `/v1/catalog/service/:name` element (ServiceNode).
    fn service_node() -> Value {
        json!({
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
            "Node": "node-1",
            "Address": "10.0.0.1",
            "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "10.0.0.1", "wan": "203.0.113.1"},
            "NodeMeta": {"rack_name": "2304", "consul-network-segment": ""},
            "ServiceKind": "",
            "ServiceID": "node-exporter-1",
            "ServiceName": "node-exporter",
            "ServiceTags": ["prod", "metrics", "v1.2"],
            "ServiceAddress": "",
            "ServiceWeights": {"Passing": 1, "Warning": 1},
            "ServiceMeta": {"version": "1.2.3", "weird-key": "odd", "a.b": "dotted"},
            "ServicePort": 9100,
            "ServiceEnableTagOverride": false,
            "ServiceProxy": {"MeshGateway": {}},
            "ServiceConnect": {},
            "ServiceTaggedAddresses": {
                "lan_ipv4": {"Address": "10.0.0.1", "Port": 9100}
            },
            "CreateIndex": 10,
            "ModifyIndex": 12
        })
    }

    /// A `/v1/health/service/:name` element (CheckServiceNode).
    fn health_entry() -> Value {
        json!({
            "Node": {
                "ID": "n1",
                "Node": "node-1",
                "Address": "10.0.0.1",
                "Datacenter": "dc1",
                "TaggedAddresses": {"lan": "10.0.0.1"},
                "Meta": {"rack_name": "2304"}
            },
            "Service": {
                "ID": "web-1",
                "Service": "web",
                "Tags": ["prod", "canary"],
                "Address": "",
                "Meta": {},
                "Port": 80,
                "Weights": {"Passing": 1, "Warning": 1},
                "EnableTagOverride": true,
                "Connect": {"Native": false}
            },
            "Checks": [
                {
                    "CheckID": "serfHealth",
                    "Name": "Serf Health Status",
                    "Status": "passing",
                    "Output": "Agent alive and reachable",
                    "ServiceID": "",
                    "ServiceTags": []
                },
                {
                    "CheckID": "service:web-1",
                    "Name": "Service 'web' check",
                    "Status": "warning",
                    "Output": "",
                    "ServiceID": "web-1",
                    "ServiceTags": ["prod", "canary"]
                }
            ]
        })
    }

    // ---- the Prometheus test suite's expressions ----

    #[test]
    fn prometheus_node_meta_rack_name() {
        assert!(eval(r#"NodeMeta.rack_name == "2304""#, &service_node()));
        assert!(!eval(r#"NodeMeta.rack_name == "2305""#, &service_node()));
        assert!(eval(r#"Node.Meta.rack_name == "2304""#, &health_entry()));
    }

    #[test]
    fn prometheus_service_tags_contains() {
        assert!(eval(r#"Service.Tags contains "prod""#, &health_entry()));
        assert!(!eval(r#"Service.Tags contains "staging""#, &health_entry()));
    }

    #[test]
    fn prometheus_service_tags_and_port() {
        let f = parse(r#"ServiceTags contains "prod" and ServicePort == 9100"#);
        assert!(f.matches(&service_node()));
        let mut other = service_node();
        other["ServicePort"] = json!(9101);
        assert!(!f.matches(&other));
        other["ServicePort"] = json!(9100);
        other["ServiceTags"] = json!(["dev"]);
        assert!(!f.matches(&other));
    }

    // ---- == and != ----

    #[test]
    fn equality_on_strings() {
        let v = service_node();
        assert!(eval(r#"ServiceName == "node-exporter""#, &v));
        assert!(!eval(r#"ServiceName == "node""#, &v));
        assert!(eval(r#"ServiceName != "node""#, &v));
        assert!(!eval(r#"ServiceName != "node-exporter""#, &v));
        assert!(eval(r#"ServiceAddress == """#, &v));
        // A number literal against a string field compares its text.
        assert!(eval(r#"NodeMeta.rack_name == 2304"#, &v));
    }

    #[test]
    fn equality_on_numbers() {
        let v = service_node();
        assert!(eval("ServicePort == 9100", &v));
        assert!(eval(r#"ServicePort == "9100""#, &v));
        assert!(eval("ServicePort == 9100.0", &v));
        assert!(!eval("ServicePort == 9101", &v));
        assert!(eval("ServicePort != 9101", &v));
        assert!(!eval(r#"ServicePort == "abc""#, &v));
        assert!(eval(r#"ServicePort != "abc""#, &v));
        assert!(eval("ServiceWeights.Passing == 1", &v));
        let v = json!({"Neg": -5, "Frac": 1.5, "Big": u64::MAX});
        assert!(eval("Neg == -5", &v));
        assert!(!eval("Neg == 5", &v));
        assert!(eval("Frac == 1.5", &v));
        assert!(!eval("Frac == 1", &v));
        assert!(eval(&format!("Big == {}", u64::MAX), &v));
        assert!(!eval(&format!("Big == {}", u64::MAX - 1), &v));
    }

    #[test]
    fn equality_on_bools() {
        let v = service_node();
        assert!(eval("ServiceEnableTagOverride == false", &v));
        assert!(eval(r#"ServiceEnableTagOverride == "false""#, &v));
        assert!(eval("ServiceEnableTagOverride == 0", &v));
        assert!(eval("ServiceEnableTagOverride == F", &v));
        assert!(!eval("ServiceEnableTagOverride == true", &v));
        assert!(eval("ServiceEnableTagOverride != true", &v));
        assert!(!eval("ServiceEnableTagOverride == yes", &v));
        assert!(eval("Service.EnableTagOverride == True", &health_entry()));
        assert!(eval("Service.Connect.Native == false", &health_entry()));
    }

    #[test]
    fn equality_on_null_object_and_array() {
        let v = json!({"N": null, "O": {"a": 1}, "A": ["x", "y"]});
        assert!(!eval(r#"N == "" "#, &v));
        assert!(eval(r#"N != "" "#, &v));
        assert!(!eval(r#"O == "a""#, &v));
        // Lenient: an array equals a value when any element does.
        assert!(eval(r#"A == "y""#, &v));
        assert!(!eval(r#"A == "z""#, &v));
        assert!(eval(r#"A != "z""#, &v));
    }

    #[test]
    fn bare_words_as_values() {
        let v = health_entry();
        assert!(eval("Service.Service == web", &v));
        assert!(eval("Service.Port == 80", &v));
        assert!(eval("Checks.Status == passing", &v));
        assert!(!eval("Service.Service == db", &v));
        // Dotted bare words keep their dots; index form renders like go-bexpr.
        let v = json!({"Name": "a.b", "Other": "M.k", "Slash": "a/b", "U": "_x"});
        assert!(eval("Name == a.b", &v));
        assert!(eval(r#"Other == M["k"]"#, &v));
        assert!(eval("Slash == a/b", &v));
        assert!(eval("U == _x", &v));
    }

    #[test]
    fn missing_fields_are_not_present() {
        let v = service_node();
        assert!(!eval(r#"Nope == "x""#, &v));
        assert!(eval(r#"Nope != "x""#, &v));
        assert!(!eval(r#"ServiceMeta.nope == "x""#, &v));
        assert!(eval(r#"ServiceMeta.nope != "x""#, &v));
        assert!(!eval(r#"ServiceMeta.nope contains "x""#, &v));
        assert!(eval(r#"ServiceMeta.nope not contains "x""#, &v));
        assert!(!eval(r#""x" in ServiceMeta.nope"#, &v));
        assert!(eval(r#""x" not in ServiceMeta.nope"#, &v));
        assert!(!eval(r#"ServiceMeta.nope matches ".*""#, &v));
        assert!(eval(r#"ServiceMeta.nope not matches ".*""#, &v));
        assert!(eval("ServiceMeta.nope is empty", &v));
        assert!(!eval("ServiceMeta.nope is not empty", &v));
        // Stepping into a scalar is missing too.
        assert!(!eval(r#"ServicePort.x == 1"#, &v));
        assert!(eval("ServiceName.x is empty", &v));
    }

    // ---- is empty / is nil ----

    #[test]
    fn is_empty_and_is_not_empty() {
        let v = json!({
            "S": "", "S2": "x", "A": [], "A2": [1], "O": {}, "O2": {"k": ""},
            "N": null, "Zero": 0, "F": false
        });
        for (sel, empty) in [
            ("S", true),
            ("S2", false),
            ("A", true),
            ("A2", false),
            ("O", true),
            ("O2", false),
            ("N", true),
            ("Missing", true),
            ("Zero", false),
            ("F", false),
            ("O2.k", true),
        ] {
            assert_eq!(eval(&format!("{sel} is empty"), &v), empty, "{sel}");
            assert_eq!(eval(&format!("{sel} is not empty"), &v), !empty, "{sel}");
        }
        assert!(eval("Service.Meta is empty", &health_entry()));
        assert!(eval("Service.Tags is not empty", &health_entry()));
    }

    #[test]
    fn is_nil_and_is_not_nil() {
        let v = json!({"N": null, "S": "", "A": []});
        assert!(eval("N is nil", &v));
        assert!(eval("Missing is nil", &v));
        assert!(!eval("S is nil", &v));
        assert!(!eval("A is nil", &v));
        assert!(eval("A is not nil", &v));
        assert!(!eval("N is not nil", &v));
    }

    // ---- in / contains ----

    #[test]
    fn in_and_contains_on_arrays() {
        let v = service_node();
        assert!(eval(r#""prod" in ServiceTags"#, &v));
        assert!(eval(r#"ServiceTags contains "metrics""#, &v));
        assert!(
            !eval(r#""pro" in ServiceTags"#, &v),
            "array membership is not substring"
        );
        assert!(eval(r#""pro" not in ServiceTags"#, &v));
        assert!(eval(r#"ServiceTags not contains "dev""#, &v));
        assert!(!eval(r#"ServiceTags not contains "prod""#, &v));
        // Bare words and numbers as the value.
        assert!(eval("prod in ServiceTags", &v));
        assert!(eval("metrics not in NodeMeta", &v));
        let nums = json!({"Ports": [80, 443], "Flags": [true]});
        assert!(eval("443 in Ports", &nums));
        assert!(eval(r#"Ports contains "80""#, &nums));
        assert!(!eval("8080 in Ports", &nums));
        assert!(eval("true in Flags", &nums));
    }

    #[test]
    fn in_and_contains_on_maps_and_strings() {
        let v = service_node();
        assert!(eval(r#""rack_name" in NodeMeta"#, &v));
        assert!(eval(r#"ServiceMeta contains "weird-key""#, &v));
        assert!(
            !eval(r#""2304" in NodeMeta"#, &v),
            "maps test keys, not values"
        );
        assert!(eval(r#""export" in ServiceName"#, &v));
        assert!(eval(r#"ServiceName contains "node-""#, &v));
        assert!(!eval(r#"ServiceName contains "web""#, &v));
        assert!(eval(r#"ServiceName not contains "web""#, &v));
        // Numbers, booleans and null contain nothing.
        assert!(!eval(r#""9" in ServicePort"#, &v));
        assert!(eval(r#""9" not in ServicePort"#, &v));
        assert!(!eval(r#"ServiceEnableTagOverride contains "f""#, &v));
    }

    // ---- matches ----

    #[test]
    fn matches_and_not_matches() {
        let v = service_node();
        assert!(eval(r#"ServiceName matches "^node-""#, &v));
        assert!(
            eval(r#"ServiceName matches "exp""#, &v),
            "unanchored search"
        );
        assert!(!eval(r#"ServiceName matches "^exp""#, &v));
        assert!(eval(r#"ServiceName not matches "^web""#, &v));
        assert!(!eval(r#"ServiceName not matches "node""#, &v));
        assert!(eval(r#"Address matches `^10\.0\.0\.\d+$`"#, &v));
        // Arrays: any element; maps: any key.
        assert!(eval(r#"ServiceTags matches "^v1\\.""#, &v));
        assert!(!eval(r#"ServiceTags matches "^staging""#, &v));
        assert!(eval(r#"NodeMeta matches "^rack""#, &v));
        assert!(!eval(r#"NodeMeta matches "^2304$""#, &v));
        // Scalars that are not strings never match.
        assert!(!eval(r#"ServicePort matches "9100""#, &v));
        assert!(eval(r#"ServicePort not matches "9100""#, &v));
        // A bare word is a pattern too.
        assert!(eval("ServiceName matches node", &v));
    }

    // ---- logic ----

    #[test]
    fn precedence_not_and_or() {
        let v = json!({"A": 1, "B": 0, "C": 1});
        // a or (b and c)
        assert!(eval("A == 1 or B == 1 and C == 0", &v));
        // (a or b) and c
        assert!(!eval("(A == 1 or B == 1) and C == 0", &v));
        // (not a) and b  vs  not (a and b)
        assert!(!eval("not A == 1 and C == 1", &v));
        assert!(eval("not (A == 1 and B == 1)", &v));
        // (not a) or c
        assert!(eval("not A == 1 or C == 1", &v));
        assert!(!eval("not (A == 1 or C == 1)", &v));
        // The documented equivalence: e1 and not e2 or e3 == (e1 and (not e2)) or e3.
        for (a, b, c) in [
            (0, 0, 0),
            (0, 0, 1),
            (0, 1, 0),
            (1, 0, 0),
            (1, 1, 0),
            (1, 0, 1),
        ] {
            let v = json!({"A": a, "B": b, "C": c});
            assert_eq!(
                eval("A == 1 and not B == 1 or C == 1", &v),
                eval("(A == 1 and (not B == 1)) or C == 1", &v),
                "{v}"
            );
            assert_eq!(
                eval("A == 1 and not B == 1 or C == 1", &v),
                (a == 1 && b != 1) || c == 1
            );
        }
    }

    #[test]
    fn chains_double_negation_and_parentheses() {
        let v = json!({"A": 1, "B": 2, "C": 3});
        assert!(eval("A == 1 and B == 2 and C == 3", &v));
        assert!(!eval("A == 1 and B == 2 and C == 4", &v));
        assert!(eval("A == 0 or B == 0 or C == 3", &v));
        assert!(!eval("A == 0 or B == 0 or C == 0", &v));
        assert!(eval("not not A == 1", &v));
        assert!(!eval("not not not A == 1", &v));
        assert!(eval("((A == 1))", &v));
        assert!(eval("(A == 1) and (B == 2 or C == 0)", &v));
        assert!(eval("not(A == 2)", &v));
        assert!(eval(" \t\n( A==1 )\r\n", &v));
        assert!(eval("A==1 and B!=3", &v));
    }

    #[test]
    fn long_flat_chains_do_not_nest() {
        let expr = vec!["A == 1"; 5000].join(" and ");
        assert!(eval(&expr, &json!({"A": 1})));
        let expr = vec!["A == 2"; 5000].join(" or ");
        assert!(!eval(&expr, &json!({"A": 1})));
    }

    #[test]
    fn keywords_are_whole_words() {
        let v = json!({"nothing": "x", "order": "y", "android": "z", "isa": "w", "inx": "v"});
        assert!(eval(r#"nothing == "x""#, &v));
        assert!(eval(r#"order == "y" and android == "z""#, &v));
        assert!(eval(r#"isa == w or inx == v"#, &v));
        assert!(eval(r#"not nothing == "y""#, &v));
    }

    // ---- selectors ----

    #[test]
    fn map_key_index_form() {
        let v = service_node();
        assert!(eval(r#"ServiceMeta["weird-key"] == "odd""#, &v));
        assert!(eval(r#"ServiceMeta[ "weird-key" ] == odd"#, &v));
        assert!(eval(r#"ServiceMeta[`weird-key`] == "odd""#, &v));
        assert!(eval(r#"ServiceMeta["a.b"] == "dotted""#, &v));
        assert!(
            !eval(r#"ServiceMeta.a.b == "dotted""#, &v),
            "dots split segments"
        );
        assert!(eval(r#"NodeMeta["consul-network-segment"] is empty"#, &v));
        assert!(eval(
            r#"ServiceTaggedAddresses["lan_ipv4"].Port == 9100"#,
            &v
        ));
        assert!(eval(
            r#"ServiceTaggedAddresses.lan_ipv4.Address == "10.0.0.1""#,
            &v
        ));
        assert!(eval(r#""odd" in ServiceMeta["weird-key"]"#, &v));
        assert!(!eval(r#"ServiceMeta["missing"] == "odd""#, &v));
        assert!(eval(r#"ServiceMeta["missing"] != "odd""#, &v));
        // Keys are verbatim: case matters, escapes are decoded.
        assert!(!eval(r#"servicemeta.version == "1.2.3""#, &v));
        let v = json!({"M": {"tab\tkey": 1}});
        assert!(eval(r#"M["tab\tkey"] == 1"#, &v));
    }

    #[test]
    fn crossing_arrays_collects_fields() {
        let v = health_entry();
        // Any collected item.
        assert!(eval(r#"Checks.Status == "passing""#, &v));
        assert!(eval(r#"Checks.Status == "warning""#, &v));
        assert!(!eval(r#"Checks.Status == "critical""#, &v));
        // != is the negation: "no check is critical".
        assert!(eval(r#"Checks.Status != "critical""#, &v));
        assert!(!eval(r#"Checks.Status != "passing""#, &v));
        // contains / in on the collected list is membership, not substring.
        assert!(eval(r#"Checks.Status contains "warning""#, &v));
        assert!(eval(r#""passing" in Checks.Status"#, &v));
        assert!(!eval(r#"Checks.Status contains "warn""#, &v));
        assert!(eval(r#""critical" not in Checks.Status"#, &v));
        // Items that are arrays are searched.
        assert!(eval(r#"Checks.ServiceTags contains "canary""#, &v));
        assert!(!eval(r#"Checks.ServiceTags contains "dev""#, &v));
        // matches: any item.
        assert!(eval(r#"Checks.CheckID matches "^service:""#, &v));
        assert!(!eval(r#"Checks.CheckID matches "^node:""#, &v));
        // is empty: every item empty.
        assert!(!eval("Checks.Output is empty", &v));
        assert!(eval("Checks.Output is not empty", &v));
        assert!(!eval("Checks.ServiceTags is empty", &v));
        // Missing on every element behaves like a missing field.
        assert!(!eval(r#"Checks.Nope == "x""#, &v));
        assert!(eval(r#"Checks.Nope != "x""#, &v));
        assert!(eval("Checks.Nope is empty", &v));
        // No checks at all.
        let none = json!({"Checks": []});
        assert!(!eval(r#"Checks.Status == "passing""#, &none));
        assert!(eval(r#"Checks.Status != "critical""#, &none));
        assert!(eval("Checks.Status is empty", &none));
        assert!(eval("Checks is empty", &none));
    }

    #[test]
    fn crossing_nested_arrays_and_indexing() {
        let v = json!({
            "Nodes": [
                {"Checks": [{"Status": "passing"}, {"Status": "passing"}]},
                {"Checks": [{"Status": "critical"}]},
                {"NoChecks": true}
            ],
            "Grid": [["a", "b"], ["c"]]
        });
        assert!(eval(r#"Nodes.Checks.Status == "critical""#, &v));
        assert!(eval(r#""critical" in Nodes.Checks.Status"#, &v));
        assert!(!eval(r#"Nodes.Checks.Status != "critical""#, &v));
        // Numeric segments index arrays.
        assert!(eval(r#"Nodes.0.Checks.1.Status == "passing""#, &v));
        assert!(eval(r#"Nodes.1.Checks.0.Status == "critical""#, &v));
        assert!(!eval(r#"Nodes.0.Checks.0.Status == "critical""#, &v));
        assert!(eval("Nodes.7.Checks is empty", &v));
        assert!(eval(r#"Nodes["1"].Checks.Status == critical"#, &v));
        // Crossing then indexing.
        assert!(eval(r#"Nodes.Checks.0.Status == "critical""#, &v));
        assert!(eval(r#"Grid.1 contains "c""#, &v));
        assert!(
            eval(r#"Grid contains "b""#, &v),
            "array of arrays: element equality"
        );
        assert!(eval(r#"Checks.0.CheckID == serfHealth"#, &health_entry()));
    }

    // ---- literals ----

    #[test]
    fn raw_strings_keep_backslashes() {
        let v = json!({"Path": r"C:\dir\n", "Q": "say \"hi\"", "CR": "ab"});
        assert!(eval(r#"Path == `C:\dir\n`"#, &v));
        assert!(eval("Q == `say \"hi\"`", &v));
        assert!(eval("CR == `a\rb`", &v));
    }

    #[test]
    fn string_escapes() {
        let v = json!({
            "Q": "say \"hi\"", "NL": "a\nb", "T": "a\tb", "BS": r"a\b",
            "U": "é€😀", "X": "A", "Ctl": "\u{7}\u{8}\u{c}\r\u{b}"
        });
        assert!(eval(r#"Q == "say \"hi\"""#, &v));
        assert!(eval(r#"NL == "a\nb""#, &v));
        assert!(eval(r#"T == "a\tb""#, &v));
        assert!(eval(r#"BS == "a\\b""#, &v));
        assert!(eval(r#"U == "\u00e9\u20ac\U0001F600""#, &v));
        assert!(eval(r#"U == "é€😀""#, &v));
        assert!(eval(r#"X == "\x41""#, &v));
        assert!(eval(r#"X == "\101""#, &v));
        assert!(eval(r#"Ctl == "\a\b\f\r\v""#, &v));
        // \xc3\xa9 is UTF-8 for é.
        assert!(eval(r#"U matches "^\xc3\xa9""#, &v));
    }

    // ---- errors ----

    #[test]
    fn error_empty() {
        assert_eq!(err(""), FilterError::Empty);
        assert_eq!(err(" \t\n"), FilterError::Empty);
        assert_eq!(msg(""), "filter: empty expression");
    }

    #[test]
    fn error_missing_value() {
        assert_eq!(
            err("Service.Port =="),
            FilterError::Expected {
                expected: "a value after '=='".into(),
                found: "end of input".into(),
                position: 15,
            }
        );
        assert_eq!(
            msg("Service.Port == == 3"),
            "filter: expected a value after '==' at position 16, found '=='"
        );
        // Like go-bexpr, a keyword-looking bare word is just a value.
        assert!(eval("Name == and", &json!({"Name": "and"})));
        assert_eq!(
            msg("Port != )"),
            "filter: expected a value after '!=' at position 8, found ')'"
        );
        assert!(msg("Tags contains").contains("a value after 'contains'"));
        assert!(msg("Tags not contains (").contains("a value after 'not contains'"));
        assert!(msg("Name matches").contains("a value after 'matches'"));
    }

    #[test]
    fn error_bad_operator() {
        assert_eq!(
            msg("Port > 80"),
            "filter: expected an operator ('==', '!=', 'is', 'contains', 'matches', 'in') \
             after 'Port' at position 5, found '>'"
        );
        assert!(msg("Port").contains("found end of input"));
        assert!(msg("Port = 80").contains("found '='"));
        assert_eq!(
            msg("Tags not equals x"),
            "filter: expected 'in', 'contains' or 'matches' after 'not' at position 9, \
             found 'equals'"
        );
        assert_eq!(
            msg("Tags is full"),
            "filter: expected 'empty', 'not empty', 'nil' or 'not nil' after 'is' \
             at position 8, found 'full'"
        );
        assert!(msg("Tags is not full").contains("'empty' or 'nil' after 'is not'"));
    }

    #[test]
    fn error_value_first_forms() {
        assert_eq!(
            msg(r#""x" == Name"#),
            "filter: expected 'in' or 'not in' after a value at position 4, found '=='"
        );
        assert_eq!(
            msg(r#""x" in"#),
            "filter: expected a selector after 'in' at position 6, found end of input"
        );
        assert!(msg(r#""x" not in 5"#).contains("a selector after 'not in' at position 11"));
        assert!(msg(r#""x" not contains Tags"#).contains("'in' after 'not'"));
        assert!(msg("80 == Port").contains("'in' or 'not in' after a value"));
    }

    #[test]
    fn error_logic_and_parentheses() {
        assert_eq!(
            msg("A == 1 B == 2"),
            "filter: expected 'and', 'or' or the end of the expression at position 7, found 'B'"
        );
        assert_eq!(
            msg("A == 1 and"),
            "filter: expected a selector, a value or '(' at position 10, found end of input"
        );
        assert!(msg("or A == 1").contains("an operator"));
        assert!(msg("A == 1 and and B == 2").contains("an operator"));
        assert_eq!(
            err("x == 1 and (A == 1 or B == 2"),
            FilterError::UnclosedParen {
                open: 11,
                found: "end of input".into(),
                position: 28
            }
        );
        assert_eq!(
            msg("(A == 1 B == 2)"),
            "filter: unclosed '(' at position 0: expected 'and', 'or' or ')' at position 8, \
             found 'B'"
        );
        assert!(msg("(A == 1))").contains("end of the expression at position 8, found ')'"));
        assert!(msg("()").contains("an expression inside parentheses at position 1"));
        assert!(msg("== 1").contains("a selector, a value or '(' at position 0, found '=='"));
        assert!(msg("not").contains("found end of input"));
    }

    #[test]
    fn error_strings() {
        assert_eq!(
            err(r#"Name == "abc"#),
            FilterError::UnterminatedString { position: 8 }
        );
        assert_eq!(
            msg("Name == `abc"),
            "filter: unterminated string literal starting at position 8"
        );
        assert_eq!(
            msg(r#"Name == "abc\"#),
            "filter: unterminated string literal starting at position 8"
        );
        assert_eq!(
            msg(r#"Name == "a\qb""#),
            "filter: invalid string literal at position 10: invalid escape sequence '\\q'"
        );
        assert!(msg(r#"Name == "\x4""#).contains("invalid escape sequence '\\x4'"));
        assert!(msg(r#"Name == "\u12""#).contains("invalid escape sequence '\\u12'"));
        assert!(msg(r#"Name == "\ud800""#).contains("invalid escape sequence '\\ud800'"));
        assert!(msg(r#"Name == "\400""#).contains("invalid escape sequence '\\400'"));
        assert!(msg(r#"Name == "\'""#).contains("invalid escape sequence '\\''"));
        assert_eq!(
            msg("Name == \"a\nb\""),
            "filter: invalid string literal at position 10: newline in string"
        );
        assert_eq!(
            msg(r#"Name == "\xff""#),
            "filter: invalid string literal at position 8: escape sequences form invalid utf-8"
        );
    }

    #[test]
    fn error_numbers() {
        assert_eq!(
            err("Port == 12abc"),
            FilterError::InvalidNumber {
                literal: "12abc".into(),
                position: 8
            }
        );
        assert_eq!(
            msg("Port == 0123"),
            "filter: invalid number literal '0123' at position 8"
        );
        assert!(msg("Port == 1.").contains("'1.'"));
        assert!(msg("Port == 1.2.3").contains("'1.2.3'"));
        assert!(msg("Port == -").contains("'-'"));
        assert!(msg("Port == -x").contains("'-x'"));
        assert!(msg("12x in Ports").contains("invalid number literal '12x' at position 0"));
        // Valid forms.
        for ok in ["0", "-0", "10", "-10", "0.5", "-12.25"] {
            assert!(Filter::parse(&format!("N == {ok}")).is_ok(), "{ok}");
        }
    }

    #[test]
    fn error_selectors() {
        assert_eq!(
            msg("Meta[abc] == 1"),
            "filter: expected a quoted key after '[' at position 5, found 'abc]'"
        );
        assert_eq!(
            msg(r#"Meta["a" == 1"#),
            "filter: expected ']' to close the index at position 9, found '=='"
        );
        assert!(msg(r#"Meta["a"#).contains("unterminated string literal starting at position 5"));
        assert_eq!(
            msg("Meta. == 1"),
            "filter: expected a field name or an index after '.' at position 5, found whitespace"
        );
        assert!(msg("Meta..x == 1").contains("after '.' at position 5, found '.x'"));
        assert!(msg("Meta.-x == 1").contains("after '.' at position 5"));
        assert!(msg("ServiceMeta.weird-key == 1").contains("found '-key'"));
    }

    #[test]
    fn error_regex() {
        let e = err(r#"Name matches "(abc""#);
        match &e {
            FilterError::InvalidRegex {
                pattern,
                position,
                reason,
            } => {
                assert_eq!(pattern, "(abc");
                assert_eq!(*position, 13);
                assert!(!reason.contains('\n'), "{reason}");
                assert!(reason.contains("unclosed group"), "{reason}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            e.to_string(),
            "filter: invalid regular expression \"(abc\" at position 13: unclosed group"
        );
        assert!(matches!(
            err(r#"Name not matches "[z-a]""#),
            FilterError::InvalidRegex { position: 17, .. }
        ));
        // Oversized patterns are rejected at parse time, not compiled.
        let e = err(r#"Name matches "((a{1000}){1000}){1000}""#);
        assert!(matches!(e, FilterError::InvalidRegex { .. }), "{e}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn error_depth_limit() {
        let ok = format!("{}A == 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(eval(&ok, &json!({"A": 1})));
        let deep = format!(
            "{}A == 1{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            err(&deep),
            FilterError::TooDeep {
                limit: MAX_DEPTH,
                position: MAX_DEPTH
            }
        );
        let nots = format!("{}A == 1", "not ".repeat(100_000));
        assert!(matches!(err(&nots), FilterError::TooDeep { .. }));
        let parens = "(".repeat(1_000_000);
        assert!(msg(&parens).contains("nested deeper than 128 levels"));
    }

    #[test]
    fn error_positions_count_characters() {
        // "é" is two bytes but one character.
        assert_eq!(
            msg(r#"Name == "é" and"#),
            "filter: expected a selector, a value or '(' at position 15, found end of input"
        );
        assert!(msg("Name == \"éé\" junk").contains("position 13, found 'junk'"));
        assert!(msg("Name == \"é\" ☃").contains("position 12, found '☃'"));
    }

    #[test]
    fn error_messages_are_lowercase_and_prefixed() {
        let deep = "(".repeat(200);
        for expr in [
            "",
            "A ==",
            "A > 1",
            "(A == 1",
            r#"A == "x"#,
            r#"A == "\q""#,
            "A == 01",
            r#"A matches "(""#,
            "(A == 1 B",
            &deep,
        ] {
            let m = msg(expr);
            assert!(m.starts_with("filter: "), "{m}");
            let first = m.trim_start_matches("filter: ");
            assert!(first.starts_with(|c: char| c.is_lowercase()), "{m}");
        }
    }

    #[test]
    fn filter_is_clone_and_debug() {
        let f = parse(r#"ServiceName matches "^node" and not ServicePort == 1"#);
        let g = f.clone();
        assert!(g.matches(&service_node()));
        assert!(format!("{f:?}").contains("Filter"));
        let long = msg(&format!("A == 1 {}", "x".repeat(50)));
        assert!(long.contains(&format!("'{}…'", "x".repeat(20))), "{long}");
    }
}
