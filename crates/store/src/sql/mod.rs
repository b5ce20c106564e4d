//! The table layout and the text of every SQL statement, rendered per dialect.
//!
//! Statements are written once, with numbered placeholders, and a [`Dialect`] renders the
//! placeholders in its own syntax. Values are always bound, never spliced into the text.
//!
//! Each `Edm.DateTimeOffset` property is stored in two integer columns: `…_ticks`, the number
//! of 100-nanosecond ticks since 1970-01-01T00:00:00Z, which sorts and compares exactly, and
//! `…_digits`, the number of fractional digits the client wrote, so the value is written back
//! as given.

use std::fmt;

use beacon_odata::bind::{Arithmetic, Function, Typed};
use beacon_odata::model::{EdmType, Property};

pub mod apply;
pub mod compile;
pub mod import;

use crate::ListQuery;
use compile::{Compiler, Param};

/// The name of the table holding every partner's entities.
pub const TABLE: &str = "aggregated_policy_compliance";

/// The name of the SQLite table that gives each partner tenant its integer key.
pub const PARTNER_TABLE: &str = "beacon_partner";

/// A SQL dialect: what the compiler writes differently for each database.
///
/// Both dialects call the same vocabulary of functions for OData's string, date and checked
/// arithmetic operations (`odata_tolower`, `odata_add`, …), so the compiler writes one text
/// for both. Each store provides those functions: SQLite registers them from Rust on every
/// connection, and the PostgreSQL store creates them in its migrations. The test
/// `functions_agree_with_sqlite` (tests/postgres.rs) checks that both give the same results.
pub trait Dialect: fmt::Debug + Send + Sync {
    /// Writes the placeholder of parameter `n`, counted from 1.
    fn placeholder(&self, n: usize) -> String;

    /// Writes the placeholder of parameter `n` where the compiler binds `param`, so a
    /// database that infers parameter types receives the type (and collation) of each.
    fn parameter(&self, n: usize, _param: &Param) -> String {
        self.placeholder(n)
    }

    /// Returns the column of the table that identifies a row's partner.
    fn partner_column(&self) -> &'static str {
        "partner_tenant_id"
    }

    /// Writes the value of [`Dialect::partner_column`] for the partner whose tenant id
    /// `placeholder` binds.
    fn partner_value(&self, placeholder: &str) -> String {
        placeholder.to_owned()
    }

    /// Writes the test that selects the rows of the partner whose tenant id `placeholder`
    /// binds.
    fn partner_condition(&self, placeholder: &str) -> String {
        format!("{} = {}", self.partner_column(), self.partner_value(placeholder))
    }

    /// Writes the statement that must run before the first row of a partner is stored, which
    /// binds the partner's tenant id. Returns `None` where the table stores the tenant id.
    fn register_partner(&self) -> Option<String> {
        None
    }

    /// Writes a double constant from `text`, the placeholder of its shortest decimal form,
    /// which may also be `9e999` or `-9e999` for the infinities.
    fn real(&self, text: &str) -> String {
        format!("CAST({text} AS REAL)")
    }

    /// Writes the sum aggregate of `operand`, which must fail the statement where a sum of
    /// integers leaves the Int64 range.
    fn sum(&self, operand: &str) -> String {
        format!("SUM({operand})")
    }

    /// Writes the average aggregate of `operand`, a double.
    fn average(&self, operand: &str) -> String {
        format!("AVG({operand})")
    }

    /// Writes a test that is true when `a` and `b` are equal or both null, and false otherwise.
    fn null_safe_eq(&self, a: &str, b: &str) -> String;

    /// Writes the clause after an `ORDER BY` key that puts nulls first ascending and last
    /// descending, as OData requires; empty where that is the database's default.
    fn nulls_order(&self, descending: bool) -> &'static str;

    /// Writes a Boolean constant.
    fn boolean(&self, value: bool) -> &'static str {
        if value { "TRUE" } else { "FALSE" }
    }

    /// Writes `test`, or false where `test` is null.
    fn false_if_null(&self, test: &str) -> String {
        format!("COALESCE({test}, FALSE)")
    }

    /// Writes checked arithmetic, which fails the statement on overflow or division by zero.
    fn arithmetic(&self, op: Arithmetic, a: &str, b: &str) -> String {
        let name = match op {
            Arithmetic::Add => "odata_add",
            Arithmetic::Sub => "odata_sub",
            Arithmetic::Mul => "odata_mul",
            Arithmetic::Div => "odata_div",
            Arithmetic::Mod => "odata_mod",
        };
        format!("{name}({a}, {b})")
    }

    /// Writes checked negation.
    fn negate(&self, a: &str) -> String {
        format!("odata_neg({a})")
    }

    /// Writes a call of one of OData's functions.
    fn function(&self, function: Function, arguments: &[String]) -> String {
        let name = match function {
            Function::Concat => return format!("({})", arguments.join(" || ")),
            Function::Contains => "odata_contains",
            Function::StartsWith => "odata_startswith",
            Function::EndsWith => "odata_endswith",
            Function::Length => "odata_length",
            Function::IndexOf => "odata_indexof",
            Function::Substring => "odata_substring",
            Function::ToLower => "odata_tolower",
            Function::ToUpper => "odata_toupper",
            Function::Trim => "odata_trim",
            Function::MatchesPattern => "odata_matches",
            Function::AsciiLower => "odata_ascii_lower",
            Function::Year => "odata_year",
            Function::Month => "odata_month",
            Function::Day => "odata_day",
            Function::Hour => "odata_hour",
            Function::Minute => "odata_minute",
            Function::Second => "odata_second",
            Function::Fraction => "odata_fraction",
            Function::Date => "odata_date",
            Function::Time => "odata_time",
            Function::DivBy => "odata_divby",
            Function::RatioCompare => "odata_ratio_cmp",
        };
        format!("{name}({})", arguments.join(", "))
    }
}

/// SQLite's `?NNN` placeholders.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sqlite;

impl Dialect for Sqlite {
    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }

    // The table stores a small integer per partner, which keeps the keys of the table and of
    // every index short. SQLite evaluates the lookup once per statement and seeks the indexes
    // with its result; a partner without a key has no rows.
    fn partner_column(&self) -> &'static str {
        "partner_key"
    }

    fn partner_value(&self, placeholder: &str) -> String {
        format!("(SELECT partner_key FROM {PARTNER_TABLE} WHERE partner_tenant_id = {placeholder})")
    }

    fn register_partner(&self) -> Option<String> {
        Some(format!(
            "INSERT INTO {PARTNER_TABLE} (partner_tenant_id) VALUES (?1) ON CONFLICT DO NOTHING"
        ))
    }

    fn null_safe_eq(&self, a: &str, b: &str) -> String {
        format!("({a} IS {b})")
    }

    fn nulls_order(&self, _descending: bool) -> &'static str {
        // SQLite already sorts nulls first ascending and last descending.
        ""
    }
}

/// PostgreSQL's `$n` placeholders.
///
/// PostgreSQL infers the type of each parameter from where it appears, and a parameter that is
/// an operand of an overloaded function or of another parameter has none to infer, so every
/// parameter the compiler binds carries an explicit type. Bound text also carries the `"C"`
/// collation of the text columns, so two constants compare by code point as columns do.
#[derive(Clone, Copy, Debug, Default)]
pub struct Postgres;

impl Dialect for Postgres {
    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }

    fn parameter(&self, n: usize, param: &Param) -> String {
        match param {
            Param::Null => format!("${n}"),
            Param::Integer(_) => format!("${n}::bigint"),
            Param::Text(_) => format!("(${n}::text COLLATE \"C\")"),
        }
    }

    fn real(&self, text: &str) -> String {
        // PostgreSQL's REAL has single precision, and it reads 9e999 as out of range.
        format!("odata_real({text})")
    }

    fn sum(&self, operand: &str) -> String {
        // SUM over bigint gives an exact numeric, which odata_sum brings back to bigint or
        // fails on.
        format!("odata_sum(SUM({operand}))")
    }

    fn average(&self, operand: &str) -> String {
        // AVG over bigint gives a numeric; the result column is a double in both stores.
        format!("CAST(AVG({operand}) AS DOUBLE PRECISION)")
    }

    fn null_safe_eq(&self, a: &str, b: &str) -> String {
        format!("({a} IS NOT DISTINCT FROM {b})")
    }

    fn nulls_order(&self, descending: bool) -> &'static str {
        if descending { " NULLS LAST" } else { " NULLS FIRST" }
    }
}

/// The column or columns that store one property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Columns {
    /// A single column.
    One(&'static str),
    /// A `DateTimeOffset`: its ticks column and its digit-count column.
    DateTime {
        /// 100-nanosecond ticks since the Unix epoch.
        ticks: &'static str,
        /// Fractional digits to show, 0 to 7.
        digits: &'static str,
    },
}

/// Returns the column or columns that store `property`.
pub fn columns(property: Property) -> Columns {
    match property {
        Property::Id => Columns::One("id"),
        Property::TenantId => Columns::One("tenant_id"),
        Property::TenantDisplayName => Columns::One("tenant_display_name"),
        Property::CompliancePolicyId => Columns::One("compliance_policy_id"),
        Property::CompliancePolicyName => Columns::One("compliance_policy_name"),
        Property::CompliancePolicyType => Columns::One("compliance_policy_type"),
        Property::CompliancePolicyPlatform => Columns::One("compliance_policy_platform"),
        Property::NumberOfCompliantDevices => Columns::One("number_of_compliant_devices"),
        Property::NumberOfNonCompliantDevices => Columns::One("number_of_non_compliant_devices"),
        Property::NumberOfErrorDevices => Columns::One("number_of_error_devices"),
        Property::PolicyModifiedDateTime => {
            Columns::DateTime { ticks: "policy_modified_ticks", digits: "policy_modified_digits" }
        }
        Property::LastRefreshedDateTime => {
            Columns::DateTime { ticks: "last_refreshed_ticks", digits: "last_refreshed_digits" }
        }
    }
}

/// The entity columns in the order every `SELECT` returns them and every `INSERT` binds
/// them: the key, each field's column or columns in declaration order, then `version`.
pub fn entity_columns() -> Vec<&'static str> {
    let mut names = Vec::new();
    for property in Property::ALL {
        match columns(property) {
            Columns::One(name) => names.push(name),
            Columns::DateTime { ticks, digits } => names.extend([ticks, digits]),
        }
        debug_assert_eq!(
            matches!(columns(property), Columns::DateTime { .. }),
            property.edm_type() == EdmType::DateTimeOffset
        );
    }
    names.push("version");
    names
}

/// The text of each statement the store runs, rendered for one dialect.
#[derive(Clone, Debug)]
pub struct Statements {
    /// Inserts a row; binds the partner, then every entity column in [`entity_columns`] order.
    pub insert: String,
    /// Selects one row; binds the partner and the key.
    pub select_one: String,
    /// Overwrites every column but the key of one row; binds what [`Statements::insert`]
    /// binds, so the partner and the key select the row.
    pub update: String,
    /// Deletes one row; binds the partner and the key.
    pub delete: String,
    /// Runs before an insert where the dialect has one ([`Dialect::register_partner`]);
    /// binds the partner.
    pub register_partner: Option<String>,
}

impl Statements {
    /// Renders every statement in `dialect`.
    pub fn new(dialect: &dyn Dialect) -> Self {
        let columns = entity_columns();
        let list = columns.join(", ");
        let p = |n| dialect.placeholder(n);
        let mut values: Vec<String> = (1..=columns.len() + 1).map(p).collect();
        values[0] = dialect.partner_value(&p(1));
        let partner_column = dialect.partner_column();
        let partner = dialect.partner_condition(&p(1));
        Statements {
            insert: format!(
                "INSERT INTO {TABLE} ({partner_column}, {list}) VALUES ({})",
                values.join(", ")
            ),
            select_one: format!("SELECT {list} FROM {TABLE} WHERE {partner} AND id = {}", p(2)),
            // The insert's placeholders follow the column order after the partner.
            update: format!(
                "UPDATE {TABLE} SET {} WHERE {partner} AND id = {}",
                columns
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, column)| format!("{column} = {}", p(i + 2)))
                    .collect::<Vec<_>>()
                    .join(", "),
                p(2)
            ),
            delete: format!("DELETE FROM {TABLE} WHERE {partner} AND id = {}", p(2)),
            register_partner: dialect.register_partner(),
        }
    }
}

/// Renders the `SELECT` statements of a list query: the entity columns, then one column per
/// order key, for rows of `partner` in the query's order. All statements take the same
/// parameters.
///
/// A first page is one statement. A page that resumes after a cursor may need several
/// conditions (see [`Compiler::after`]), each its own statement. Their results follow each
/// other in the query's order, so the caller runs them in turn and stops once it has
/// `query.limit` rows. The later ones, such as the nulls at the end of a descending order,
/// rarely run at all.
pub fn select_statements(
    dialect: &dyn Dialect,
    partner: &str,
    query: &ListQuery,
) -> (Vec<String>, Vec<Param>) {
    let mut compiler = Compiler::new(dialect);
    let partner = compiler.bind(Param::Text(partner.to_owned()));
    let mut conditions = vec![dialect.partner_condition(&partner)];
    if let Some(filter) = &query.filter {
        conditions.push(compiler.condition(filter));
    }

    // Each order key is rendered once; its text (with the placeholders of its constants)
    // serves the select list, the cursor conditions and the ORDER BY alike.
    let key_texts: Vec<String> = query.order.iter().map(|key| compiler.value(&key.expr)).collect();
    let alternatives = match &query.after {
        Some(cursor) => compiler.after(&query.order, &key_texts, &cursor.keys, &cursor.id),
        None => vec![String::new()],
    };
    let order_by = compiler.order_by(&query.order, &key_texts);
    let mut select_list = entity_columns().join(", ");
    for text in &key_texts {
        select_list.push_str(", ");
        select_list.push_str(text);
    }
    let limit = compiler.bind(Param::Integer(i64::try_from(query.limit).unwrap_or(i64::MAX)));
    let offset = match query.offset {
        0 => String::new(),
        offset => {
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            format!(" OFFSET {}", compiler.bind(Param::Integer(offset)))
        }
    };

    let statements = alternatives
        .into_iter()
        .map(|alternative| {
            let mut all = conditions.clone();
            if !alternative.is_empty() {
                all.push(alternative);
            }
            format!(
                "SELECT {select_list} FROM {TABLE} WHERE {} ORDER BY {order_by} LIMIT {limit}{offset}",
                all.join(" AND ")
            )
        })
        .collect();
    (statements, compiler.into_params())
}

/// Renders a `SELECT COUNT(*)` of the rows of `partner` that satisfy `filter`.
pub fn count_query(
    dialect: &dyn Dialect,
    partner: &str,
    filter: Option<&Typed>,
) -> (String, Vec<Param>) {
    let mut compiler = Compiler::new(dialect);
    let partner = compiler.bind(Param::Text(partner.to_owned()));
    let mut text =
        format!("SELECT COUNT(*) FROM {TABLE} WHERE {}", dialect.partner_condition(&partner));
    if let Some(filter) = filter {
        text.push_str(" AND ");
        text.push_str(&compiler.condition(filter));
    }
    (text, compiler.into_params())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_every_value() {
        let statements = Statements::new(&Sqlite);
        assert_eq!(statements.insert.matches('?').count(), entity_columns().len() + 1);
        let postgres = Statements::new(&Postgres);
        assert!(postgres.select_one.ends_with("partner_tenant_id = $1 AND id = $2"));
        assert!(
            postgres.update.ends_with("version = $16 WHERE partner_tenant_id = $1 AND id = $2")
        );
        assert!(postgres.delete.ends_with("partner_tenant_id = $1 AND id = $2"));
    }

    #[test]
    fn every_query_is_scoped_to_the_partner() {
        let scoped = "WHERE partner_key = (SELECT partner_key FROM beacon_partner \
                      WHERE partner_tenant_id = ?1)";
        let statements = Statements::new(&Sqlite);
        assert!(statements.select_one.contains(scoped), "{}", statements.select_one);
        assert!(statements.update.contains(scoped), "{}", statements.update);
        assert!(statements.delete.contains(scoped), "{}", statements.delete);
        let (statements, _) =
            select_statements(&Sqlite, "p", &ListQuery { limit: 5, ..Default::default() });
        assert!(statements[0].contains(scoped), "{statements:?}");
        let (count, _) = count_query(&Sqlite, "p", None);
        assert!(count.contains(scoped), "{count}");
    }

    #[test]
    fn sqlite_insert_stores_the_partner_key() {
        let statements = Statements::new(&Sqlite);
        assert!(statements.insert.starts_with(
            "INSERT INTO aggregated_policy_compliance (partner_key, id, tenant_id, \
             tenant_display_name, compliance_policy_id, compliance_policy_name, \
             compliance_policy_type, compliance_policy_platform, number_of_compliant_devices, \
             number_of_non_compliant_devices, number_of_error_devices, policy_modified_ticks, \
             policy_modified_digits, last_refreshed_ticks, last_refreshed_digits, version) \
             VALUES ((SELECT partner_key FROM beacon_partner WHERE partner_tenant_id = ?1), ?2"
        ));
        let register = statements.register_partner.as_deref();
        assert_eq!(
            register,
            Some(
                "INSERT INTO beacon_partner (partner_tenant_id) VALUES (?1) ON CONFLICT DO NOTHING"
            )
        );
    }

    #[test]
    fn postgres_stores_the_tenant_id_itself() {
        let statements = Statements::new(&Postgres);
        assert!(statements.insert.starts_with(
            "INSERT INTO aggregated_policy_compliance (partner_tenant_id, id, tenant_id,"
        ));
        assert!(statements.insert.contains(") VALUES ($1, $2, "), "{}", statements.insert);
        assert_eq!(statements.register_partner, None);
    }
}
