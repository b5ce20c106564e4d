//! The statements of a bulk import, rendered per dialect.
//!
//! An import first stages its rows in a temporary table of its own connection, [`STAGING`],
//! each with its position in the input (`seq`), so that no other connection sees them and
//! the table's write lock is not taken. Committing checks the staged rows, then copies them
//! into the table with one `INSERT … SELECT` in one transaction, so that every row becomes
//! visible at once or none does.

use super::compile::Param;
use super::{Dialect, TABLE, entity_columns};
use crate::OnConflict;

/// The name of the temporary table that contains the staged rows of one import.
pub const STAGING: &str = "beacon_import_staging";

/// The rows that one [`ImportStatements::stage_many`] inserts. Fewer statements save SQLite's
/// per-statement work, and 32 rows bind 544 parameters, well under SQLite's limit of 32,766.
pub const STAGED_ROWS_PER_INSERT: usize = 32;

/// The text of each statement of an import, rendered for one dialect.
#[derive(Clone, Debug)]
pub struct ImportStatements {
    /// Creates the empty staging table: `seq`, then the entity columns, with the table's
    /// column types.
    pub create_staging: String,
    /// Inserts one staged row; binds `seq`, then every entity column in order.
    pub stage: String,
    /// Inserts [`STAGED_ROWS_PER_INSERT`] staged rows; binds the values of [`Self::stage`]
    /// for each row in turn.
    pub stage_many: String,
    /// Indexes the staged rows by key, for the checks and the merge.
    pub index_staging: String,
    /// Selects one key that the staged rows repeat, if any.
    pub any_repeated_key: String,
    /// Selects the first staged row whose key an earlier staged row has: its `seq`, key and
    /// the `seq` of the first row with that key.
    pub first_repeated_key: String,
    /// Selects the first staged row whose key the partner already has: its `seq` and key;
    /// binds the partner.
    pub first_existing_key: String,
    /// Copies the staged rows into the table as the conflict rule sets; binds the partner.
    pub merge: String,
    /// Copies the staged rows into the table like [`Self::merge`], for staged rows whose keys
    /// ascend strictly in staging order, so that no key repeats and the rows need no sorting.
    pub merge_ascending: String,
    /// Runs before the merge where the dialect has one ([`crate::sql::Dialect::register_partner`]);
    /// binds the partner.
    pub register_partner: Option<String>,
    /// Counts the staged rows.
    pub count_staged: String,
    /// Drops the staging table.
    pub drop_staging: String,
}

impl ImportStatements {
    /// Renders every statement in `dialect`, with `on_conflict` deciding what the merge does
    /// with a key that exists.
    pub fn new(dialect: &dyn Dialect, on_conflict: OnConflict) -> Self {
        let columns = entity_columns();
        let list = columns.join(", ");
        let partner = dialect.parameter(1, &Param::Text(String::new()));
        let partner_column = dialect.partner_column();
        let values: Vec<String> = (1..=columns.len() + 1).map(|n| dialect.placeholder(n)).collect();
        let groups: Vec<String> = (0..STAGED_ROWS_PER_INSERT)
            .map(|row| {
                let first = row * (columns.len() + 1);
                let row: Vec<String> =
                    (1..=columns.len() + 1).map(|n| dialect.placeholder(first + n)).collect();
                format!("({})", row.join(", "))
            })
            .collect();

        // Of several staged rows with one key, `skip` keeps the first and `replace` the last.
        // `fail` never gets here with repeated keys, so it keeps every row.
        let keep = match on_conflict {
            OnConflict::Fail => dialect.boolean(true).to_owned(),
            OnConflict::Skip => format!(
                "NOT EXISTS (SELECT 1 FROM {STAGING} e WHERE e.id = s.id AND e.seq < s.seq)"
            ),
            OnConflict::Replace => format!(
                "NOT EXISTS (SELECT 1 FROM {STAGING} e WHERE e.id = s.id AND e.seq > s.seq)"
            ),
        };
        let on_existing = match on_conflict {
            OnConflict::Fail => String::new(),
            OnConflict::Skip => format!(" ON CONFLICT ({partner_column}, id) DO NOTHING"),
            OnConflict::Replace => format!(
                " ON CONFLICT ({partner_column}, id) DO UPDATE SET {}",
                columns
                    .iter()
                    .skip(1)
                    .map(|column| format!("{column} = excluded.{column}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let staged_list =
            columns.iter().map(|column| format!("s.{column}")).collect::<Vec<_>>().join(", ");

        ImportStatements {
            // The table's own columns give the staging table their types (and on PostgreSQL
            // their collation), so the merge copies values without conversion.
            create_staging: format!(
                "CREATE TEMPORARY TABLE {STAGING} AS SELECT CAST(0 AS BIGINT) AS seq, {list} \
                 FROM {TABLE} WHERE {}",
                dialect.boolean(false)
            ),
            stage: format!("INSERT INTO {STAGING} (seq, {list}) VALUES ({})", values.join(", ")),
            stage_many: format!("INSERT INTO {STAGING} (seq, {list}) VALUES {}", groups.join(", ")),
            index_staging: format!("CREATE INDEX {STAGING}_by_id ON {STAGING} (id, seq)"),
            any_repeated_key: format!(
                "SELECT id FROM {STAGING} GROUP BY id HAVING COUNT(*) > 1 LIMIT 1"
            ),
            first_repeated_key: format!(
                "SELECT s.seq, s.id, (SELECT MIN(f.seq) FROM {STAGING} f WHERE f.id = s.id) \
                 FROM {STAGING} s \
                 WHERE EXISTS (SELECT 1 FROM {STAGING} e WHERE e.id = s.id AND e.seq < s.seq) \
                 ORDER BY s.seq LIMIT 1"
            ),
            first_existing_key: format!(
                "SELECT s.seq, s.id FROM {STAGING} s WHERE EXISTS (SELECT 1 FROM {TABLE} t \
                 WHERE t.{partner_column} = {} AND t.id = s.id) ORDER BY s.seq LIMIT 1",
                dialect.partner_value(&partner)
            ),
            // In key order, the table's indexes grow at their ends rather than all over. The
            // WHERE clause also keeps SQLite from reading ON CONFLICT as a join constraint.
            merge: format!(
                "INSERT INTO {TABLE} ({partner_column}, {list}) \
                 SELECT {}, {staged_list} FROM {STAGING} s WHERE {keep} \
                 ORDER BY s.id{on_existing}",
                dialect.partner_value(&partner)
            ),
            // Without ORDER BY, SQLite reads the staging table in the order rows were staged,
            // which is key order here. The order only affects speed, never the result.
            merge_ascending: format!(
                "INSERT INTO {TABLE} ({partner_column}, {list}) \
                 SELECT {}, {staged_list} FROM {STAGING} s WHERE {}{on_existing}",
                dialect.partner_value(&partner),
                dialect.boolean(true)
            ),
            register_partner: dialect.register_partner(),
            count_staged: format!("SELECT COUNT(*) FROM {STAGING}"),
            drop_staging: format!("DROP TABLE IF EXISTS {STAGING}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Postgres, Sqlite};

    #[test]
    fn merge_binds_only_the_partner() {
        for on_conflict in [OnConflict::Fail, OnConflict::Skip, OnConflict::Replace] {
            let sqlite = ImportStatements::new(&Sqlite, on_conflict);
            assert_eq!(sqlite.merge.matches('?').count(), 1, "{}", sqlite.merge);
            let postgres = ImportStatements::new(&Postgres, on_conflict);
            assert_eq!(postgres.merge.matches('$').count(), 1, "{}", postgres.merge);
        }
    }

    #[test]
    fn replace_overwrites_every_column_but_the_key() {
        let statements = ImportStatements::new(&Sqlite, OnConflict::Replace);
        assert!(statements.merge.contains("DO UPDATE SET tenant_id = excluded.tenant_id"));
        assert!(statements.merge.ends_with("version = excluded.version"));
        assert!(!statements.merge.contains("SET id ="), "{}", statements.merge);
        assert!(!statements.merge.contains(", id ="), "{}", statements.merge);
    }
}
