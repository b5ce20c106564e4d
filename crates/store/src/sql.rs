//! The table layout and the text of every SQL statement, rendered per dialect.
//!
//! Statements are written once, with numbered placeholders, and a [`Dialect`] renders the
//! placeholders in its own syntax. Values are always bound, never spliced into the text.
//!
//! Each `Edm.DateTimeOffset` property is stored in two integer columns: `…_ticks`, the number
//! of 100-nanosecond ticks since 1970-01-01T00:00:00Z, which sorts and compares exactly, and
//! `…_digits`, the number of fractional digits the client wrote, so the value is written back
//! as given.

use beacon_odata::model::{EdmType, Property};

/// The name of the table holding every partner's entities.
pub const TABLE: &str = "aggregated_policy_compliance";

/// A SQL dialect: how it writes the `n`th bound parameter, counted from 1.
pub trait Dialect {
    /// Writes the placeholder of parameter `n`.
    fn placeholder(&self, n: usize) -> String;
}

/// SQLite's `?NNN` placeholders.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sqlite;

impl Dialect for Sqlite {
    fn placeholder(&self, n: usize) -> String {
        format!("?{n}")
    }
}

/// PostgreSQL's `$n` placeholders.
#[derive(Clone, Copy, Debug, Default)]
pub struct Postgres;

impl Dialect for Postgres {
    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
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
    /// Selects the first page; binds the partner and the limit.
    pub select_first_page: String,
    /// Selects a page after a key; binds the partner, the key and the limit.
    pub select_page_after: String,
}

impl Statements {
    /// Renders every statement in `dialect`.
    pub fn new(dialect: &dyn Dialect) -> Self {
        let columns = entity_columns();
        let list = columns.join(", ");
        let p = |n| dialect.placeholder(n);
        let values: Vec<String> = (1..=columns.len() + 1).map(p).collect();
        Statements {
            insert: format!(
                "INSERT INTO {TABLE} (partner_tenant_id, {list}) VALUES ({})",
                values.join(", ")
            ),
            select_one: format!(
                "SELECT {list} FROM {TABLE} WHERE partner_tenant_id = {} AND id = {}",
                p(1),
                p(2)
            ),
            select_first_page: format!(
                "SELECT {list} FROM {TABLE} WHERE partner_tenant_id = {} ORDER BY id LIMIT {}",
                p(1),
                p(2)
            ),
            select_page_after: format!(
                "SELECT {list} FROM {TABLE} WHERE partner_tenant_id = {} AND id > {} \
                 ORDER BY id LIMIT {}",
                p(1),
                p(2),
                p(3)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_bind_every_value() {
        let statements = Statements::new(&Sqlite);
        assert_eq!(statements.insert.matches('?').count(), entity_columns().len() + 1);
        assert!(statements.select_page_after.contains("id > ?2"));
        let postgres = Statements::new(&Postgres);
        assert!(postgres.select_one.ends_with("partner_tenant_id = $1 AND id = $2"));
    }

    #[test]
    fn every_query_is_scoped_to_the_partner() {
        let statements = Statements::new(&Sqlite);
        for text in
            [&statements.select_one, &statements.select_first_page, &statements.select_page_after]
        {
            assert!(text.contains("WHERE partner_tenant_id = ?1"), "{text}");
        }
    }
}
