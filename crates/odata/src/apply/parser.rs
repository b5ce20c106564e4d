//! A recursive-descent parser for `$apply`, which hands embedded expressions to the `$filter`
//! parser.

use super::ast::{
    AggregateFrom, AggregateItem, AggregateKind, AggregationMethod, ComputeItem, ExpandSpec,
    GroupingElement, HierarchyKind, HierarchyReference, Identifier, LimitKind, NestItem,
    PropertyPath, Sequence, Transformation,
};
use crate::filter::cursor::Cursor;
use crate::filter::{Expr, MAX_DEPTH, MAX_LENGTH, Span, SyntaxError};
use crate::orderby::{self, OrderItem};

/// The transformations this parser reads, for error messages.
const TRANSFORMATIONS: &str = "filter, groupby, aggregate, orderby, top, skip, topcount, \
    bottomcount or identity, the transformations that this service supports";

/// Parses a `$apply` value such as `filter(x gt 1)/groupby((a),aggregate(n with sum as t))`.
pub fn parse(text: &str) -> Result<Sequence, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > MAX_LENGTH {
        return Err(SyntaxError {
            position: MAX_LENGTH + 1,
            message: format!("$apply is longer than {MAX_LENGTH} characters"),
        });
    }
    let mut parser = Parser { cursor: Cursor::new(&chars), depth: 0 };
    parser.cursor.skip_whitespace();
    let sequence = parser.sequence()?;
    parser.cursor.skip_whitespace();
    if !parser.cursor.at_end() {
        return Err(parser.cursor.expected("'/' or the end of $apply"));
    }
    Ok(sequence)
}

struct Parser<'a> {
    cursor: Cursor<'a>,
    /// The number of sequences the cursor is nested in, bounded by [`MAX_DEPTH`].
    depth: usize,
}

impl Parser<'_> {
    // Building blocks.

    fn at(&self) -> usize {
        self.cursor.at
    }

    fn span_from(&self, start: usize) -> Span {
        Span { start, end: self.cursor.at }
    }

    /// Consumes `(` right after a transformation name, and whitespace after it.
    fn open(&mut self, name: &str) -> Result<(), SyntaxError> {
        if !self.cursor.eat('(') {
            return Err(self.cursor.expected(&format!("'(' after '{name}'")));
        }
        self.cursor.skip_whitespace();
        Ok(())
    }

    /// Consumes `)` after optional whitespace. `expected` names the alternatives for the error.
    fn close(&mut self, expected: &str) -> Result<(), SyntaxError> {
        self.cursor.skip_whitespace();
        if self.cursor.eat(')') { Ok(()) } else { Err(self.cursor.expected(expected)) }
    }

    /// Consumes a comma surrounded by optional whitespace, if one is next.
    fn comma(&mut self) -> bool {
        let start = self.at();
        self.cursor.skip_whitespace();
        if self.cursor.eat(',') {
            self.cursor.skip_whitespace();
            true
        } else {
            self.cursor.at = start;
            false
        }
    }

    /// Consumes a comma, or fails naming what was expected.
    fn expect_comma(&mut self, expected: &str) -> Result<(), SyntaxError> {
        if self.comma() { Ok(()) } else { Err(self.missing(expected)) }
    }

    /// Consumes whitespace, `keyword` and whitespace after it, if that is what comes next.
    fn keyword(&mut self, keyword: &str) -> bool {
        let start = self.at();
        if self.cursor.skip_whitespace() && self.cursor.eat_keyword(keyword) {
            self.cursor.skip_whitespace();
            true
        } else {
            self.cursor.at = start;
            false
        }
    }

    /// Reads an identifier: a letter or `_`, then letters, digits or `_`.
    fn identifier(&mut self, expected: &str) -> Result<Identifier, SyntaxError> {
        match self.cursor.peek_word() {
            Some((name, span)) if name.starts_with(|c: char| c.is_alphabetic() || c == '_') => {
                self.cursor.at = span.end;
                Ok(Identifier { name, span })
            }
            _ => Err(self.cursor.expected(expected)),
        }
    }

    /// Reads identifiers joined by dots, such as `Model.Type`.
    fn qualified_name(&mut self, expected: &str) -> Result<Identifier, SyntaxError> {
        let start = self.at();
        let mut name = self.identifier(expected)?.name;
        while self.cursor.peek() == Some('.') {
            self.cursor.at += 1;
            name.push('.');
            name.push_str(&self.identifier("an identifier after '.'")?.name);
        }
        Ok(Identifier { name, span: self.span_from(start) })
    }

    /// Builds an error at the next character that is not whitespace, without moving.
    fn missing(&self, expected: &str) -> SyntaxError {
        let mut probe = Cursor { chars: self.cursor.chars, at: self.cursor.at };
        probe.skip_whitespace();
        probe.expected(expected)
    }

    /// Reads `as Alias` after whitespace.
    fn alias(&mut self) -> Result<Identifier, SyntaxError> {
        self.optional_alias()?.ok_or_else(|| self.missing("'as' and an alias"))
    }

    fn optional_alias(&mut self) -> Result<Option<Identifier>, SyntaxError> {
        if self.keyword("as") { self.identifier("an alias").map(Some) } else { Ok(None) }
    }

    /// Reads a path of qualified names separated by `/`. With `root`, the first segment may be
    /// `$root`.
    fn path(&mut self, expected: &str, root: bool) -> Result<PropertyPath, SyntaxError> {
        let start = self.at();
        if root && self.cursor.eat_keyword("$root") {
            if !self.cursor.eat('/') {
                return Err(self.cursor.expected("'/' after '$root'"));
            }
        } else if root {
            return Err(self.cursor.expected("a path starting with '$root/'"));
        }
        loop {
            self.qualified_name(expected)?;
            if !self.cursor.eat('/') {
                break;
            }
        }
        let path = self.cursor.chars[start..self.at()].iter().collect();
        Ok(PropertyPath { path, span: self.span_from(start) })
    }

    /// Reads a non-negative integer written with digits only.
    fn digits(&mut self) -> Result<u64, SyntaxError> {
        let start = self.at();
        while self.cursor.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.cursor.at += 1;
        }
        if self.at() == start {
            return Err(self.cursor.expected("a non-negative integer"));
        }
        let text: String = self.cursor.chars[start..self.at()].iter().collect();
        text.parse().map_err(|_| SyntaxError {
            position: start + 1,
            message: format!("the number {text} is too large"),
        })
    }

    fn expression(&mut self) -> Result<Expr, SyntaxError> {
        self.cursor.expression()
    }

    // Sequences and transformations.

    /// Reads transformations separated by `/`.
    fn sequence(&mut self) -> Result<Sequence, SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self
                .cursor
                .error(format!("the transformations are nested deeper than {MAX_DEPTH} levels")));
        }
        let mut sequence = vec![self.transformation()?];
        loop {
            let before = self.at();
            self.cursor.skip_whitespace();
            if !self.cursor.eat('/') {
                self.cursor.at = before;
                break;
            }
            self.cursor.skip_whitespace();
            sequence.push(self.transformation()?);
        }
        self.depth -= 1;
        Ok(sequence)
    }

    /// Returns whether a transformation starts at the cursor: a known name followed by `(`,
    /// `identity`, or a qualified name followed by `(`.
    fn transformation_follows(&self) -> bool {
        let mut probe = Cursor { chars: self.cursor.chars, at: self.cursor.at };
        let Some((word, span)) = probe.peek_word() else {
            return false;
        };
        probe.at = span.end;
        if word == "identity" {
            return true;
        }
        let qualified = probe.peek() == Some('.');
        while probe.peek() == Some('.') {
            probe.at += 1;
            match probe.peek_word() {
                Some((_, span)) => probe.at = span.end,
                None => return false,
            }
        }
        probe.peek() == Some('(') && (qualified || is_transformation_name(&word))
    }

    fn transformation(&mut self) -> Result<Transformation, SyntaxError> {
        let start = self.at();
        let expected = "a transformation such as 'filter', 'groupby' or 'aggregate'";
        let name = self.qualified_name(expected)?;
        if name.name.contains('.') {
            return self.function(name, start);
        }
        let span = name.span;
        match name.name.as_str() {
            "identity" => Ok(Transformation::Identity(span)),
            "aggregate" => self.aggregate(start),
            "compute" => self.compute(start),
            "concat" => self.concat(start),
            "groupby" => self.groupby(start),
            "filter" => {
                self.open("filter")?;
                let condition = self.expression()?;
                self.close("an operator such as 'eq' or 'and', or ')'")?;
                Ok(Transformation::Filter { condition, span: self.span_from(start) })
            }
            "orderby" => {
                self.open("orderby")?;
                let items = orderby::parse_items(&mut self.cursor, Some(')'))?;
                self.close("')'")?;
                Ok(Transformation::OrderBy { items, span: self.span_from(start) })
            }
            "search" => self.search(start),
            "top" | "skip" => {
                self.open(&name.name)?;
                let count = self.digits()?;
                self.close("')'")?;
                let span = self.span_from(start);
                Ok(if name.name == "top" {
                    Transformation::Top { count, span }
                } else {
                    Transformation::Skip { count, span }
                })
            }
            "expand" => Ok(Transformation::Expand(self.expand(start)?)),
            "join" | "outerjoin" => self.join(name.name == "outerjoin", start),
            "nest" | "addnested" => self.nest(name.name == "addnested", start),
            "ancestors" => self.hierarchy(HierarchyKind::Ancestors, start),
            "descendants" => self.hierarchy(HierarchyKind::Descendants, start),
            "traverse" => self.traverse(start),
            other => match LimitKind::from_name(other) {
                Some(kind) => self.limit(kind, start),
                None => Err(unknown_transformation(other, start)),
            },
        }
    }

    /// `aggregate(item, ...)`.
    fn aggregate(&mut self, start: usize) -> Result<Transformation, SyntaxError> {
        self.open("aggregate")?;
        let mut items = vec![self.aggregate_item()?];
        while self.comma() {
            items.push(self.aggregate_item()?);
        }
        self.close("',' or ')'")?;
        Ok(Transformation::Aggregate { items, span: self.span_from(start) })
    }

    /// Parses one aggregate item: `expr with method`, `[path/]$count` or a custom aggregate, then any
    /// `from` clauses and the alias. Only a custom aggregate may omit `with` in its `from`
    /// clauses and may have no alias.
    fn aggregate_item(&mut self) -> Result<AggregateItem, SyntaxError> {
        let start = self.at();
        let expr = self.expression()?;
        let after_expr = self.at();

        // Decide what is aggregated from the expression and the method after it.
        let kind = if self.keyword("with") {
            if matches!(&expr, Expr::Name(name, _) if name == "$count") {
                return Err(SyntaxError {
                    position: after_expr + 2,
                    message: "'$count' takes no aggregation method: write '$count as Alias'"
                        .to_owned(),
                });
            }
            AggregateKind::Method { method: self.method()?, expr }
        } else {
            match expr {
                Expr::Name(name, span) => classify_name(&name, span)?,
                _ => return Err(self.missing("'with' and an aggregation method")),
            }
        };
        let custom = matches!(kind, AggregateKind::Custom { .. });

        // Read the `from` clauses and the alias.
        let mut from = Vec::new();
        while self.keyword("from") {
            let mut properties = vec![self.path("a grouping property", false)?];
            while self.comma() {
                properties.push(self.path("a grouping property", false)?);
            }
            let method = if self.keyword("with") {
                Some(self.method()?)
            } else if custom {
                None
            } else {
                return Err(self.missing("',' or 'with' and an aggregation method"));
            };
            from.push(AggregateFrom { properties, method });
        }
        let alias = if custom { self.optional_alias()? } else { Some(self.alias()?) };
        if custom && alias.is_none() && !from.is_empty() {
            return Err(self.missing("'as' and an alias"));
        }
        Ok(AggregateItem { kind, from, alias, span: self.span_from(start) })
    }

    /// Reads an aggregation method.
    fn method(&mut self) -> Result<AggregationMethod, SyntaxError> {
        let expected = "an aggregation method: sum, min, max, average, countdistinct or a qualified \
            custom method";
        let name = self.qualified_name(expected)?;
        Ok(match name.name.as_str() {
            "sum" => AggregationMethod::Sum,
            "min" => AggregationMethod::Min,
            "max" => AggregationMethod::Max,
            "average" => AggregationMethod::Average,
            "countdistinct" => AggregationMethod::CountDistinct,
            custom if custom.contains('.') => AggregationMethod::Custom(name.name),
            other => {
                return Err(SyntaxError {
                    position: name.span.start + 1,
                    message: format!("expected {expected}, but found '{other}'"),
                });
            }
        })
    }

    /// `compute(expr as Alias, ...)`.
    fn compute(&mut self, start: usize) -> Result<Transformation, SyntaxError> {
        self.open("compute")?;
        let mut items = Vec::new();
        loop {
            let expr = self.expression()?;
            let alias = self.alias()?;
            items.push(ComputeItem { expr, alias });
            if !self.comma() {
                break;
            }
        }
        self.close("',' or ')'")?;
        Ok(Transformation::Compute { items, span: self.span_from(start) })
    }

    /// `concat(sequence, sequence, ...)` with at least two sequences.
    fn concat(&mut self, start: usize) -> Result<Transformation, SyntaxError> {
        self.open("concat")?;
        let mut sequences = vec![self.sequence()?];
        self.expect_comma("',' and a second sequence of transformations")?;
        sequences.push(self.sequence()?);
        while self.comma() {
            sequences.push(self.sequence()?);
        }
        self.close("'/', ',' or ')'")?;
        Ok(Transformation::Concat { sequences, span: self.span_from(start) })
    }

    /// `groupby((element, ...)[, sequence])`.
    fn groupby(&mut self, start: usize) -> Result<Transformation, SyntaxError> {
        self.open("groupby")?;
        if !self.cursor.eat('(') {
            return Err(self.cursor.expected("'(' and the grouping properties"));
        }
        self.cursor.skip_whitespace();
        let mut elements = vec![self.grouping_element()?];
        while self.comma() {
            elements.push(self.grouping_element()?);
        }
        self.close("',' or ')'")?;
        let then = if self.comma() { self.sequence()? } else { Vec::new() };
        self.close("',' or ')'")?;
        Ok(Transformation::GroupBy { elements, then, span: self.span_from(start) })
    }

    fn grouping_element(&mut self) -> Result<GroupingElement, SyntaxError> {
        let start = self.at();
        let called = |parser: &Self, name: &str| {
            parser.cursor.peek_word().is_some_and(|(word, span)| {
                word == name && parser.cursor.chars.get(span.end) == Some(&'(')
            })
        };
        let expected = "a grouping property";

        if called(self, "rollup") {
            self.cursor.at += "rollup".len();
            self.open("rollup")?;
            let all = self.cursor.eat_keyword("$all");
            if all {
                self.expect_comma("',' and a grouping property")?;
            }
            let mut levels = vec![self.path(expected, false)?];
            while self.comma() {
                levels.push(self.path(expected, false)?);
            }
            self.close("',' or ')'")?;
            return Ok(GroupingElement::Rollup { all, levels, span: self.span_from(start) });
        }

        if called(self, "rolluprecursive") {
            self.cursor.at += "rolluprecursive".len();
            self.open("rolluprecursive")?;
            let hierarchy = self.hierarchy_reference()?;
            let then = if self.comma() { Some(self.sequence()?) } else { None };
            self.close("',' or ')'")?;
            return Ok(GroupingElement::RollupRecursive {
                hierarchy,
                then,
                span: self.span_from(start),
            });
        }

        Ok(GroupingElement::Property(self.path(expected, false)?))
    }

    /// `search(...)`: the text up to the matching `)`, or a single-quoted string.
    fn search(&mut self, start: usize) -> Result<Transformation, SyntaxError> {
        self.open("search")?;
        let text_start = self.at();
        if self.cursor.peek() == Some('\'') {
            self.quoted_string()?;
        } else {
            self.balanced_text()?;
        }
        let text: String = self.cursor.chars[text_start..self.at()].iter().collect();
        let text = text.trim_end().to_owned();
        if text.is_empty() {
            return Err(self.cursor.expected("a search expression"));
        }
        self.close("')'")?;
        Ok(Transformation::Search { text, span: self.span_from(start) })
    }

    /// Skips a single-quoted string in which a quote is written twice.
    fn quoted_string(&mut self) -> Result<(), SyntaxError> {
        let start = self.at();
        self.cursor.at += 1;
        loop {
            match self.cursor.peek() {
                None => {
                    return Err(SyntaxError {
                        position: start + 1,
                        message: "the string has no closing quote".to_owned(),
                    });
                }
                Some('\'') if self.cursor.chars.get(self.at() + 1) == Some(&'\'') => {
                    self.cursor.at += 2;
                }
                Some('\'') => {
                    self.cursor.at += 1;
                    return Ok(());
                }
                Some(_) => self.cursor.at += 1,
            }
        }
    }

    /// Skips text up to the first `)` that closes no `(` of the text, outside double-quoted
    /// phrases.
    fn balanced_text(&mut self) -> Result<(), SyntaxError> {
        let mut open = Vec::new();
        let mut phrase_start = None;
        while let Some(c) = self.cursor.peek() {
            match c {
                '"' if phrase_start.is_some() => phrase_start = None,
                '"' => phrase_start = Some(self.at()),
                _ if phrase_start.is_some() => {}
                '(' => open.push(self.at()),
                ')' if open.pop().is_none() => return Ok(()),
                _ => {}
            }
            self.cursor.at += 1;
        }
        if let Some(at) = phrase_start {
            return Err(SyntaxError {
                position: at + 1,
                message: "the phrase has no closing double quote".to_owned(),
            });
        }
        Err(self.cursor.expected("')'"))
    }

    /// `topcount(limit, value)` and the other five forms.
    fn limit(&mut self, kind: LimitKind, start: usize) -> Result<Transformation, SyntaxError> {
        let name = self.cursor.chars[start..self.at()].iter().collect::<String>();
        self.open(&name)?;
        let limit = self.expression()?;
        self.expect_comma("an operator such as 'add', or ','")?;
        let value = self.expression()?;
        self.close("an operator such as 'add', or ')'")?;
        Ok(Transformation::Limit { kind, limit, value, span: self.span_from(start) })
    }

    /// `expand(path, filter(expr), expand(...), ...)`: after the path comes a filter, an
    /// expansion, or a filter and then expansions.
    fn expand(&mut self, start: usize) -> Result<ExpandSpec, SyntaxError> {
        self.open("expand")?;
        let path = self.path("a navigation property", false)?;
        self.expect_comma("',' and 'filter(...)' or 'expand(...)'")?;

        let mut filter = None;
        let mut expand = Vec::new();
        loop {
            let item_start = self.at();
            let expected = "'filter(...)' or 'expand(...)'";
            let name = self.identifier(expected)?;
            match name.name.as_str() {
                "filter" if filter.is_none() && expand.is_empty() => {
                    self.open("filter")?;
                    filter = Some(self.expression()?);
                    self.close("an operator such as 'eq' or 'and', or ')'")?;
                }
                "expand" => expand.push(self.expand(item_start)?),
                _ => {
                    let expected = if expand.is_empty() && filter.is_none() {
                        expected
                    } else {
                        "'expand(...)'"
                    };
                    return Err(SyntaxError {
                        position: item_start + 1,
                        message: format!("expected {expected}, but found '{}'", name.name),
                    });
                }
            }
            if !self.comma() {
                break;
            }
        }
        self.close("',' or ')'")?;
        Ok(ExpandSpec { path, filter, expand, span: self.span_from(start) })
    }

    /// `join(path as Alias[, sequence])` and `outerjoin(...)`.
    fn join(&mut self, outer: bool, start: usize) -> Result<Transformation, SyntaxError> {
        self.open(if outer { "outerjoin" } else { "join" })?;
        let path = self.path("a collection-valued property", false)?;
        let alias = self.alias()?;
        let then = if self.comma() { self.sequence()? } else { Vec::new() };
        self.close("',' or ')'")?;
        Ok(Transformation::Join { outer, path, alias, then, span: self.span_from(start) })
    }

    /// `nest(sequence as Alias, ...)` and `addnested(path, sequence as Alias, ...)`.
    fn nest(&mut self, with_path: bool, start: usize) -> Result<Transformation, SyntaxError> {
        self.open(if with_path { "addnested" } else { "nest" })?;
        let path = if with_path {
            let path = self.path("a property path", false)?;
            self.expect_comma("','")?;
            Some(path)
        } else {
            None
        };
        let mut items = Vec::new();
        loop {
            let sequence = self.sequence()?;
            let alias = self.alias()?;
            items.push(NestItem { sequence, alias });
            if !self.comma() {
                break;
            }
        }
        self.close("',' or ')'")?;
        Ok(Transformation::Nest { path, items, span: self.span_from(start) })
    }

    /// `$root/path, Qualifier, node-property`.
    fn hierarchy_reference(&mut self) -> Result<HierarchyReference, SyntaxError> {
        let nodes = self.path("a path", true)?;
        self.expect_comma("','")?;
        let qualifier = self.identifier("the qualifier of a hierarchy")?;
        self.expect_comma("','")?;
        let node_property = self.path("the property that holds the node identifier", false)?;
        Ok(HierarchyReference { nodes, qualifier, node_property })
    }

    /// `ancestors(reference, sequence[, distance][, keep start])` and `descendants(...)`.
    fn hierarchy(
        &mut self,
        kind: HierarchyKind,
        start: usize,
    ) -> Result<Transformation, SyntaxError> {
        let name = match kind {
            HierarchyKind::Ancestors => "ancestors",
            HierarchyKind::Descendants => "descendants",
        };
        self.open(name)?;
        let hierarchy = self.hierarchy_reference()?;
        self.expect_comma("',' and a sequence of transformations")?;
        let start_nodes = self.sequence()?;

        // The optional maximum distance, then the optional `keep start`.
        let mut max_distance = None;
        let mut keep_start = false;
        if self.comma() {
            if self.cursor.peek().is_some_and(|c| c.is_ascii_digit()) {
                max_distance = Some(self.digits()?);
                if self.comma() {
                    keep_start = self.keep_start()?;
                }
            } else {
                keep_start = self.keep_start()?;
            }
        }
        self.close("',' or ')'")?;
        Ok(Transformation::Hierarchy {
            kind,
            hierarchy,
            start: start_nodes,
            max_distance,
            keep_start,
            span: self.span_from(start),
        })
    }

    /// Reads `keep start`, which is the only text allowed where it is called.
    fn keep_start(&mut self) -> Result<bool, SyntaxError> {
        let before = self.at();
        if self.cursor.eat_keyword("keep") && self.keyword("start") {
            return Ok(true);
        }
        self.cursor.at = before;
        Err(self.cursor.expected("a maximum distance or 'keep start'"))
    }

    /// `traverse(reference, preorder | postorder[, sequence][, orderby-items])`.
    fn traverse(&mut self, start: usize) -> Result<Transformation, SyntaxError> {
        self.open("traverse")?;
        let hierarchy = self.hierarchy_reference()?;
        self.expect_comma("','")?;
        let postorder = if self.cursor.eat_keyword("preorder") {
            false
        } else if self.cursor.eat_keyword("postorder") {
            true
        } else {
            return Err(self.cursor.expected("'preorder' or 'postorder'"));
        };

        // A sequence may follow, and sort keys after it. Both are optional.
        let mut then = None;
        let mut order_by: Vec<OrderItem> = Vec::new();
        if self.comma() {
            if self.transformation_follows() {
                then = Some(self.sequence()?);
                if self.comma() {
                    order_by = orderby::parse_items(&mut self.cursor, Some(')'))?;
                }
            } else {
                order_by = orderby::parse_items(&mut self.cursor, Some(')'))?;
            }
        }
        self.close("',' or ')'")?;
        Ok(Transformation::Traverse {
            hierarchy,
            postorder,
            then,
            order_by,
            span: self.span_from(start),
        })
    }

    /// A model function used as a transformation: `Namespace.Name(param=value, ...)`.
    fn function(&mut self, name: Identifier, start: usize) -> Result<Transformation, SyntaxError> {
        if !self.cursor.eat('(') {
            return Err(self.cursor.expected(&format!("'(' after '{}'", name.name)));
        }
        self.cursor.skip_whitespace();
        let mut parameters = Vec::new();
        if self.cursor.peek() != Some(')') {
            loop {
                let parameter = self.identifier("a parameter name")?;
                self.cursor.skip_whitespace();
                if !self.cursor.eat('=') {
                    return Err(self.cursor.expected("'=' and the parameter value"));
                }
                self.cursor.skip_whitespace();
                parameters.push((parameter.name, self.expression()?));
                if !self.comma() {
                    break;
                }
            }
        }
        self.close("',' or ')'")?;
        Ok(Transformation::Function { name: name.name, parameters, span: self.span_from(start) })
    }
}

fn is_transformation_name(word: &str) -> bool {
    LimitKind::from_name(word).is_some()
        || matches!(
            word,
            "aggregate"
                | "compute"
                | "concat"
                | "groupby"
                | "filter"
                | "orderby"
                | "search"
                | "top"
                | "skip"
                | "expand"
                | "join"
                | "outerjoin"
                | "nest"
                | "addnested"
                | "ancestors"
                | "descendants"
                | "traverse"
        )
}

fn unknown_transformation(name: &str, start: usize) -> SyntaxError {
    let lower = name.to_ascii_lowercase();
    let message = if lower != name && (is_transformation_name(&lower) || lower == "identity") {
        format!(
            "unknown transformation '{name}': transformation names are case-sensitive, write '{lower}'"
        )
    } else {
        format!("unknown transformation '{name}': expected one of {TRANSFORMATIONS}")
    };
    SyntaxError { position: start + 1, message }
}

/// Splits a name aggregated without `with` into `$count`, `path/$count` or a custom aggregate.
fn classify_name(name: &str, span: Span) -> Result<AggregateKind, SyntaxError> {
    if name == "$count" {
        return Ok(AggregateKind::Count { path: None });
    }
    if let Some(prefix) = name.strip_suffix("/$count") {
        let end = span.start + prefix.chars().count();
        let path = PropertyPath { path: prefix.to_owned(), span: Span { start: span.start, end } };
        check_path_segments(&path)?;
        return Ok(AggregateKind::Count { path: Some(path) });
    }
    let path = PropertyPath { path: name.to_owned(), span };
    check_path_segments(&path)?;
    Ok(AggregateKind::Custom { path })
}

/// Rejects `$`-names such as `$it` in a path of properties.
fn check_path_segments(path: &PropertyPath) -> Result<(), SyntaxError> {
    let mut offset = path.span.start;
    for segment in path.path.split('/') {
        if segment.starts_with('$') {
            return Err(SyntaxError {
                position: offset + 1,
                message: format!("expected a property name, but found '{segment}'"),
            });
        }
        offset += segment.chars().count() + 1;
    }
    Ok(())
}
