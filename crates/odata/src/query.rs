//! The system query options of a request URL.
//!
//! As OData 4.01 allows, option names compare case-insensitively and the `$` prefix is
//! optional, so `top=5` and `$TOP=5` both mean `$top=5`. Any system option given twice is
//! rejected. Names that are neither system options nor `$`-prefixed are custom query options.
//! OData directs services to ignore custom options they do not know, and parameter aliases
//! (`@name`) are ignored the same way.
//!
//! [`parse`] reads the options as text and checks the simple ones (`$top`, `$skip`, `$count`,
//! `$format`); [`QueryOptions::bind`] parses the expressions of `$filter`, `$orderby` and
//! `$select` and binds them to a view. Options OData defines that this resource does not take
//! are rejected with a message saying so, so that no client mistakes an ignored option for an
//! applied one.

use percent_encoding::percent_decode_str;

use crate::bind::apply::Plan;
use crate::bind::{self, Column, Type, Typed};
use crate::entity::Selection;
use crate::media::{self, FormatOption};
use crate::model::View;
use crate::select::SelectItem;
use crate::{apply, filter, orderby, select};

/// The system query options that OData defines, without the `$`.
pub const SYSTEM_OPTIONS: [&str; 17] = [
    "apply",
    "compute",
    "count",
    "deltatoken",
    "expand",
    "filter",
    "format",
    "id",
    "index",
    "levels",
    "orderby",
    "schemaversion",
    "search",
    "select",
    "skip",
    "skiptoken",
    "top",
];

/// Options this resource will never take: it has no navigation properties and no full-text
/// index.
const NEVER_SUPPORTED: [&str; 2] = ["expand", "search"];

/// What the request addresses, which decides the options it may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A collection: every query option applies.
    Collection,
    /// A single entity: only `$select` and `$format`.
    Entity,
    /// The `/$count` of a collection: only `$filter` and `$format`.
    Count,
    /// A create, update or delete: only `$select`, which shapes the entity a create or an
    /// update returns, and `$format`.
    Change,
    /// The service or metadata document: only `$format`, which may also choose XML for the
    /// metadata document.
    Document,
}

/// The system query options of one request, as text where they hold expressions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// `$filter`, as written.
    pub filter: Option<String>,
    /// `$orderby`, as written.
    pub orderby: Option<String>,
    /// `$select`, as written.
    pub select: Option<String>,
    /// `$apply`, as written.
    pub apply: Option<String>,
    /// `$top`: the maximum number of entities in the whole result.
    pub top: Option<u64>,
    /// `$skip`: how many entities of the result to leave out first.
    pub skip: Option<u64>,
    /// `$count=true`: include the size of the whole result.
    pub count: bool,
    /// `$skiptoken`: the opaque position a previous page ended at.
    pub skiptoken: Option<String>,
    /// `$format`, which overrides `Accept`.
    pub format: Option<FormatOption>,
    /// Every option as decoded `(name, value)` pairs in request order, except `$skiptoken`,
    /// for writing `@odata.nextLink`.
    pub pairs: Vec<(String, String)>,
}

/// The options of a request bound to a view: what to select, filter and sort by.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BoundQuery {
    /// The `$filter` condition.
    pub filter: Option<Typed>,
    /// The `$orderby` keys, each with `true` for descending.
    pub order: Vec<(Typed, bool)>,
    /// The properties `$select` chose.
    pub selection: Selection,
    /// The selected property names in the order given, for `@odata.context`; `None` without
    /// `$select` or with `*`.
    pub selected_names: Option<Vec<&'static str>>,
    /// The bound `$apply`, whose result the other options then work on.
    pub plan: Option<Plan>,
    /// With a `$apply` that groups: the positions of the selected result columns, in the
    /// result's order; `None` selects them all.
    pub selected_columns: Option<Vec<usize>>,
}

impl QueryOptions {
    /// Parses and binds the expression options against `view`; `now` is the request time in
    /// ticks, the value of `now()`.
    pub fn bind(&self, view: View, now: i64) -> Result<BoundQuery, QueryError> {
        let mut bound = BoundQuery::default();
        if let Some(text) = &self.apply {
            let sequence =
                apply::parse(text).map_err(|e| invalid("apply", e.position, e.message))?;
            bound.plan = Some(
                bind::apply::plan(&sequence, view, now)
                    .map_err(|e| invalid("apply", e.position, e.message))?,
            );
        }
        let scope = bound.plan.as_ref().and_then(Plan::scope);
        let scope = scope.as_deref();

        if let Some(text) = &self.filter {
            let expr = filter::parse(text).map_err(|e| invalid("filter", e.position, e.message))?;
            bound.filter = Some(
                bind::filter_in(&expr, view, now, scope)
                    .map_err(|e| invalid("filter", e.position, e.message))?,
            );
        }
        if let Some(text) = &self.orderby {
            let items =
                orderby::parse(text).map_err(|e| invalid("orderby", e.position, e.message))?;
            for item in items {
                let typed = bind::value_in(&item.expr, view, now, scope)
                    .map_err(|e| invalid("orderby", e.position, e.message))?;
                // A key that is the same for every row, such as `now()`, orders nothing. Since
                // `now()` changes between requests, a skiptoken must not record it either.
                if typed.ty == Type::Null || !typed.depends_on_row() {
                    continue;
                }
                if calls_now(&item.expr) {
                    let message = "now() cannot be part of a sort key, because its value changes \
                                   between the pages of a listing"
                        .to_owned();
                    return Err(invalid("orderby", item.span.start + 1, message));
                }
                if typed.ty == Type::Ratio {
                    let message =
                        "a 'divby' quotient can be compared, but not sorted by".to_owned();
                    return Err(invalid("orderby", item.span.start + 1, message));
                }
                bound.order.push((typed, item.descending));
            }
        }
        if let (Some(text), Some(columns)) = (&self.select, scope) {
            bound.selected_columns = Some(select_columns(text, columns)?);
        } else if let Some(text) = &self.select {
            let items =
                select::parse(text).map_err(|e| invalid("select", e.position, e.message))?;
            let mut selection = Selection::NONE;
            let mut names = Vec::new();
            let mut star = false;
            for item in items {
                match item {
                    SelectItem::Star(_) => star = true,
                    SelectItem::Property(name, span) => {
                        let property = bind::property(&name, span, view)
                            .map_err(|e| invalid("select", e.position, e.message))?;
                        selection = selection.with(property);
                        if !names.contains(&property.name(view)) {
                            names.push(property.name(view));
                        }
                    }
                }
            }
            if star {
                bound.selection = Selection::ALL;
            } else {
                bound.selection = selection;
                bound.selected_names = Some(names);
            }
        }
        Ok(bound)
    }
}

/// Returns whether an expression calls `now()`.
fn calls_now(expr: &filter::Expr) -> bool {
    use filter::Expr;
    match expr {
        Expr::Literal(..) | Expr::Name(..) => false,
        Expr::Unary { operand, .. } => calls_now(operand),
        Expr::Binary { left, right, .. } => calls_now(left) || calls_now(right),
        Expr::In { operand, list, .. } => calls_now(operand) || list.iter().any(calls_now),
        Expr::Call { function, arguments, .. } => {
            function.eq_ignore_ascii_case("now") || arguments.iter().any(calls_now)
        }
    }
}

/// Resolves `$select` against the columns of a grouped result.
fn select_columns(text: &str, columns: &[Column]) -> Result<Vec<usize>, QueryError> {
    let items = select::parse(text).map_err(|e| invalid("select", e.position, e.message))?;
    let mut chosen = Vec::new();
    for item in items {
        match item {
            SelectItem::Star(_) => chosen.extend(0..columns.len()),
            SelectItem::Property(name, span) => {
                let Some(index) = columns.iter().position(|c| c.name == name) else {
                    let message = format!("'{name}' is not a property of the transformed result");
                    return Err(invalid("select", span.start + 1, message));
                };
                chosen.push(index);
            }
        }
    }
    chosen.sort_unstable();
    chosen.dedup();
    Ok(chosen)
}

fn invalid(option: &'static str, position: usize, message: String) -> QueryError {
    QueryError::Invalid { option, position, message }
}

/// A query string rejection. Each becomes `400`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A system option appears twice.
    #[error("The query option '${0}' is given more than once.")]
    Duplicate(String),
    /// A `$`-prefixed name that OData does not define.
    #[error("The query option '{0}' is not a system query option of OData.")]
    Unknown(String),
    /// An OData option that Beacon does not support yet.
    #[error("The query option '${0}' is not supported yet.")]
    NotSupportedYet(String),
    /// An option this resource cannot support.
    #[error("The query option '${0}' is not supported on this resource.")]
    NotSupportedOnResource(String),
    /// An option that only applies to collections was given for a single entity.
    #[error("The query option '${0}' applies only to collections, not to a single entity.")]
    NotForEntity(String),
    /// An expression option does not parse or does not bind.
    #[error("The ${option} option is invalid at position {position}: {message}.")]
    Invalid {
        /// The option name without `$`.
        option: &'static str,
        /// The character position in the option's value, counted from 1.
        position: usize,
        /// The problem, as a clause.
        message: String,
    },
    /// An option was given with a create, update or delete, which acts on one entity.
    #[error("The query option '${0}' does not apply to creating, updating or deleting an entity.")]
    NotForChange(String),
    /// An option was given with a request for the service or metadata document.
    #[error("The query option '${0}' does not apply to this document.")]
    NotForDocument(String),
    /// An option does not apply to `/$count`.
    #[error("The query option '${0}' does not apply to the /$count of a collection.")]
    NotForCount(String),
    /// An option has an invalid value.
    #[error("The value '{value}' of the query option '${option}' is invalid: {reason}.")]
    InvalidValue {
        /// The option name without `$`.
        option: String,
        /// The value as given.
        value: String,
        /// The problem found.
        reason: &'static str,
    },
    /// The query string does not decode to UTF-8 text.
    #[error("The query string is not valid percent-encoded UTF-8 near '{0}'.")]
    InvalidEncoding(String),
}

/// Parses the query string (the part after `?`, if any) of a request to `target`.
pub fn parse(raw: Option<&str>, target: Target) -> Result<QueryOptions, QueryError> {
    let mut options = QueryOptions::default();
    let mut seen: Vec<&'static str> = Vec::new();

    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(raw_name)?;
        let value = decode(raw_value)?;

        // Recognize the option; anything else is a custom option or an alias, both ignored.
        if name.starts_with('@') {
            options.pairs.push((name, value));
            continue;
        }
        let bare = name.strip_prefix('$').unwrap_or(&name).to_ascii_lowercase();
        let Some(option) = SYSTEM_OPTIONS.iter().copied().find(|o| *o == bare) else {
            if name.starts_with('$') {
                return Err(QueryError::Unknown(name));
            }
            options.pairs.push((name, value));
            continue;
        };
        if seen.contains(&option) {
            return Err(QueryError::Duplicate(option.to_owned()));
        }
        seen.push(option);

        // Options that the target cannot take.
        let allowed = match target {
            Target::Collection => true,
            Target::Entity => matches!(option, "select" | "format"),
            Target::Count => matches!(option, "filter" | "format"),
            Target::Change => matches!(option, "select" | "format"),
            Target::Document => option == "format",
        };
        if NEVER_SUPPORTED.contains(&option) {
            return Err(QueryError::NotSupportedOnResource(option.to_owned()));
        }
        if !allowed && SUPPORTED.contains(&option) {
            return Err(match target {
                Target::Count => QueryError::NotForCount(option.to_owned()),
                Target::Change => QueryError::NotForChange(option.to_owned()),
                Target::Document => QueryError::NotForDocument(option.to_owned()),
                _ => QueryError::NotForEntity(option.to_owned()),
            });
        }

        // Then the option's own value.
        match option {
            "filter" => options.filter = Some(value.clone()),
            "orderby" => options.orderby = Some(value.clone()),
            "select" => options.select = Some(value.clone()),
            "apply" => options.apply = Some(value.clone()),
            "top" => options.top = Some(parse_count_value("top", &value)?),
            "skip" => options.skip = Some(parse_count_value("skip", &value)?),
            "count" => options.count = parse_boolean("count", &value)?,
            "skiptoken" => {
                options.skiptoken = Some(value);
                continue;
            }
            "format" => options.format = Some(parse_format(&value, target)?),
            _ => return Err(QueryError::NotSupportedYet(option.to_owned())),
        }
        options.pairs.push((name, value));
    }
    Ok(options)
}

/// Decodes a query string part. A `+` means a space, as in HTML forms and as curl, Python's
/// `requests` and .NET write it, so a literal plus sign must be sent as `%2B`.
fn decode(text: &str) -> Result<String, QueryError> {
    if !crate::path::has_valid_escapes(text) {
        return Err(QueryError::InvalidEncoding(text.to_owned()));
    }
    let text = text.replace('+', " ");
    percent_decode_str(&text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| QueryError::InvalidEncoding(text.to_owned()))
}

/// The options this service applies.
const SUPPORTED: [&str; 9] =
    ["filter", "orderby", "select", "apply", "top", "skip", "count", "skiptoken", "format"];

fn parse_boolean(option: &str, value: &str) -> Result<bool, QueryError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(QueryError::InvalidValue {
            option: option.to_owned(),
            value: value.to_owned(),
            reason: "expected 'true' or 'false'",
        }),
    }
}

fn parse_count_value(option: &str, value: &str) -> Result<u64, QueryError> {
    let invalid = |reason| QueryError::InvalidValue {
        option: option.to_owned(),
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("expected a non-negative integer"));
    }
    value.parse().map_err(|_| invalid("the number is too large"))
}

fn parse_format(value: &str, target: Target) -> Result<FormatOption, QueryError> {
    let invalid = |reason| QueryError::InvalidValue {
        option: "format".to_owned(),
        value: value.to_owned(),
        reason,
    };
    match media::parse_format_option(value) {
        Some(FormatOption::Xml) if target != Target::Document => {
            Err(invalid("this resource answers only with 'json'"))
        }
        Some(format) => Ok(format),
        None => Err(invalid(
            "expected 'json', or 'application/json' with odata.metadata none, minimal or full",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection(query: &str) -> Result<QueryOptions, QueryError> {
        parse(Some(query), Target::Collection)
    }

    #[test]
    fn top_takes_a_non_negative_integer() {
        assert_eq!(collection("$top=5").unwrap().top, Some(5));
        assert_eq!(collection("$top=0").unwrap().top, Some(0));
        for bad in ["$top=-1", "$top=", "$top=1.5", "$top=abc", "$top=99999999999999999999"] {
            assert!(matches!(collection(bad), Err(QueryError::InvalidValue { .. })), "{bad}");
        }
    }

    #[test]
    fn option_names_ignore_case_and_dollar() {
        assert_eq!(collection("$TOP=5").unwrap().top, Some(5));
        assert_eq!(collection("top=5").unwrap().top, Some(5));
        assert_eq!(collection("%24top=5").unwrap().top, Some(5));
    }

    #[test]
    fn duplicate_option_is_rejected() {
        assert_eq!(collection("$top=1&top=2"), Err(QueryError::Duplicate("top".into())));
    }

    #[test]
    fn unsupported_options_are_rejected_not_ignored() {
        assert_eq!(collection("$compute=x"), Err(QueryError::NotSupportedYet("compute".into())));
        assert_eq!(
            collection("$expand=x"),
            Err(QueryError::NotSupportedOnResource("expand".into()))
        );
        assert_eq!(
            collection("$search=x"),
            Err(QueryError::NotSupportedOnResource("search".into()))
        );
        assert_eq!(collection("$frobnicate=1"), Err(QueryError::Unknown("$frobnicate".into())));
    }

    #[test]
    fn custom_options_and_aliases_are_ignored_but_kept_for_next_links() {
        let options = collection("debug=1&@p=2&&").unwrap();
        assert_eq!(options.pairs, vec![("debug".into(), "1".into()), ("@p".into(), "2".into())]);
        assert_eq!(QueryOptions { pairs: Vec::new(), ..options }, QueryOptions::default());
    }

    #[test]
    fn plus_signs_decode_as_spaces_and_escaped_ones_as_plus() {
        let options = collection("$filter=tenantId+eq+'a%2Bb'").unwrap();
        assert_eq!(options.filter.as_deref(), Some("tenantId eq 'a+b'"));
    }

    #[test]
    fn count_takes_only_true_or_false() {
        assert!(collection("$count=true").unwrap().count);
        assert!(!collection("$count=false").unwrap().count);
        assert!(matches!(collection("$count=1"), Err(QueryError::InvalidValue { .. })));
    }

    #[test]
    fn count_segment_takes_only_filter() {
        assert!(parse(Some("$filter=true"), Target::Count).is_ok());
        assert_eq!(
            parse(Some("$top=1"), Target::Count),
            Err(QueryError::NotForCount("top".into()))
        );
    }

    #[test]
    fn expression_errors_name_the_option_and_position() {
        let options = collection("$filter=tenantId eq 'a' and nope gt 1").unwrap();
        let error = options.bind(View::Graph, 0).unwrap_err();
        assert!(
            matches!(error, QueryError::Invalid { option: "filter", position: 21, .. }),
            "{error:?}"
        );
        let options = collection("$select=tenantId,organizationId").unwrap();
        assert!(options.bind(View::Graph, 0).is_err());
        assert!(options.bind(View::Seed, 0).is_err());
        let options = collection("$select=organizationId").unwrap();
        let bound = options.bind(View::Seed, 0).unwrap();
        assert_eq!(bound.selected_names, Some(vec!["organizationId"]));
    }

    #[test]
    fn paging_options_are_rejected_on_a_single_entity() {
        assert_eq!(
            parse(Some("$top=1"), Target::Entity),
            Err(QueryError::NotForEntity("top".into()))
        );
        assert!(parse(Some("$format=json"), Target::Entity).is_ok());
    }

    #[test]
    fn format_accepts_only_json() {
        assert!(collection("$format=application/json;odata.metadata=minimal").is_ok());
        assert!(matches!(collection("$format=xml"), Err(QueryError::InvalidValue { .. })));
    }

    #[test]
    fn invalid_percent_encoding_is_rejected() {
        assert!(matches!(collection("$top=%FF"), Err(QueryError::InvalidEncoding(_))));
    }
}
