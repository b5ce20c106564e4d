//! Synthetic compliance rows and their bulk load into a Beacon database file.
//!
//! The rows are generated from a fixed seed, so every run loads the same data. Each row belongs
//! to the development partner that `beacon token` uses by default. Rows are inserted straight
//! into SQLite, with the store's own `INSERT` text, in large transactions with
//! `synchronous=OFF`, which is far faster than creating them through the API. The schema and
//! its indexes were created beforehand by the server's migrations. [`Rows`] yields the same
//! rows to other loaders, such as the PostgreSQL `COPY` of the `store_compare` benchmark.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use beacon_store::sql::{Sqlite, Statements, entity_columns};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

/// The number of compliance policies, each on one of [`PLATFORMS`].
pub const POLICIES: usize = 50;

/// The `compliancePolicyPlatform` values. Policy `p` targets `PLATFORMS[p % 8]`, so the first
/// two platforms have 7 of the 50 policies (14% of the rows) and the others 6 (12%).
pub const PLATFORMS: [&str; 8] = [
    "windows10AndLater",
    "iOS",
    "android",
    "macOS",
    "androidWorkProfile",
    "androidForWork",
    "windows81AndLater",
    "windowsPhone81",
];

/// Rows per insert transaction.
const ROWS_PER_TRANSACTION: usize = 50_000;

/// 2024-01-01T00:00:00Z in 100-nanosecond ticks since the Unix epoch.
const START_OF_2024_TICKS: i64 = 1_704_067_200 * TICKS_PER_SECOND;

const TICKS_PER_SECOND: i64 = 10_000_000;

const TICKS_PER_DAY: i64 = 86_400 * TICKS_PER_SECOND;

/// The size of one data set.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// The number of rows.
    pub rows: usize,
    /// The number of distinct `tenantId` values; each has `rows / tenants` rows.
    pub tenants: usize,
}

/// The outcome of a load.
#[derive(Clone, Copy, Debug)]
pub struct LoadReport {
    /// The rows inserted.
    pub rows: usize,
    /// The time spent generating and inserting them, including the final WAL checkpoint.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Returns the insert rate in rows per second.
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64()
    }
}

/// Returns the `tenantId` of tenant number `index`, the same in every data set.
pub fn tenant_id(index: usize) -> String {
    guid(mix(0x7e4a_11c3_0000_0000 ^ index as u64), mix(index as u64 ^ 0x5151))
}

/// The generated rows of one data set, in key order, each as the values of an insert: the
/// partner, then the columns of [`entity_columns`].
#[derive(Debug)]
pub struct Rows {
    partner: String,
    shape: Shape,
    columns: Vec<&'static str>,
    random: SplitMix64,
    ids: std::vec::IntoIter<String>,
    next_index: usize,
}

impl Rows {
    /// Starts generating the rows of `shape` for `partner`.
    pub fn new(partner: &str, shape: Shape) -> anyhow::Result<Rows> {
        if shape.tenants == 0 || !shape.rows.is_multiple_of(shape.tenants) {
            bail!("{} rows do not split evenly over {} tenants", shape.rows, shape.tenants);
        }

        // Keys in ascending order append to the table's B-tree instead of splitting pages
        // everywhere; the secondary indexes still receive their keys in random order.
        let mut random = SplitMix64::new(0x0bea_c0de);
        let mut ids: Vec<String> = (0..shape.rows).map(|_| random.guid()).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != shape.rows {
            bail!("the generated ids collided; change the seed");
        }
        Ok(Rows {
            partner: partner.to_owned(),
            shape,
            columns: entity_columns(),
            random,
            ids: ids.into_iter(),
            next_index: 0,
        })
    }

    /// Returns the column names of the values after the partner.
    pub fn columns(&self) -> &[&'static str] {
        &self.columns
    }
}

impl Iterator for Rows {
    type Item = anyhow::Result<Vec<Value>>;

    fn next(&mut self) -> Option<Self::Item> {
        let id = self.ids.next()?;
        let row = generate_row(&mut self.random, self.next_index, &id, self.shape);
        self.next_index += 1;
        let mut values = Vec::with_capacity(self.columns.len() + 1);
        values.push(Value::Text(self.partner.clone()));
        for column in &self.columns {
            match row.value(column) {
                Ok(value) => values.push(value),
                Err(error) => return Some(Err(error)),
            }
        }
        Some(Ok(values))
    }
}

/// Inserts `shape.rows` generated rows for `partner` into the Beacon database at `database`,
/// which must already have Beacon's schema and no server using it.
pub fn load(database: &Path, partner: &str, shape: Shape) -> anyhow::Result<LoadReport> {
    let started = Instant::now();
    let mut rows = Rows::new(partner, shape)?;
    let mut connection = Connection::open(database)
        .with_context(|| format!("cannot open the database {}", database.display()))?;

    // Durability is not needed while loading, since a failed load is simply rerun.
    connection.pragma_update(None, "synchronous", "OFF")?;
    connection.pragma_update(None, "cache_size", -262_144)?;

    let statements = Statements::new(&Sqlite);
    if let Some(register) = &statements.register_partner {
        connection.execute(register, [partner])?;
    }
    let insert = statements.insert;
    for _ in 0..shape.rows.div_ceil(ROWS_PER_TRANSACTION) {
        let transaction = connection.transaction()?;
        {
            let mut statement = transaction.prepare_cached(&insert)?;
            for values in rows.by_ref().take(ROWS_PER_TRANSACTION) {
                statement.execute(params_from_iter(values?))?;
            }
        }
        transaction.commit()?;
    }

    // Fold the WAL into the main file, so the server starts on a compact database.
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(LoadReport { rows: shape.rows, elapsed: started.elapsed() })
}

/// One generated row, before it is split into columns.
struct Row<'a> {
    id: &'a str,
    tenant: usize,
    policy: usize,
    compliant: Option<i64>,
    non_compliant: Option<i64>,
    errors: Option<i64>,
    policy_modified: Option<(i64, i64)>,
    last_refreshed: Option<(i64, i64)>,
}

/// Generates row number `index` (in key order) with key `id`.
fn generate_row<'a>(random: &mut SplitMix64, index: usize, id: &'a str, shape: Shape) -> Row<'a> {
    // Counters cluster near zero, as they do in practice, so sorting by them meets long runs
    // of ties; about 2% of each are null.
    let compliant = random.nullable(2, |r| (r.below(64) * r.below(64)) as i64);
    let non_compliant = random.nullable(2, |r| (r.below(100).pow(2) / 100) as i64);
    let errors = random.nullable(2, |r| if r.below(10) < 7 { 0 } else { 1 + r.below(20) as i64 });

    // Refresh times spread uniformly over 2024; half carry 7 fractional digits and half
    // whole seconds. Policies were last modified up to 90 days before the refresh.
    let refreshed_ticks = START_OF_2024_TICKS + random.below(366 * TICKS_PER_DAY as u64) as i64;
    let last_refreshed = random.nullable(1, |r| {
        if r.below(2) == 0 {
            (refreshed_ticks, 7)
        } else {
            (refreshed_ticks - refreshed_ticks % TICKS_PER_SECOND, 0)
        }
    });
    let policy_modified = random.nullable(1, |r| {
        let before = r.below(90 * TICKS_PER_DAY as u64) as i64;
        let ticks = refreshed_ticks - before;
        (ticks - ticks % TICKS_PER_SECOND, 0)
    });

    Row {
        id,
        tenant: index % shape.tenants,
        policy: random.below(POLICIES as u64) as usize,
        compliant,
        non_compliant,
        errors,
        policy_modified,
        last_refreshed,
    }
}

impl Row<'_> {
    /// Returns the value of one column of [`entity_columns`].
    fn value(&self, column: &str) -> anyhow::Result<Value> {
        let text = |s: String| Value::Text(s);
        let integer = |n: Option<i64>| n.map_or(Value::Null, Value::Integer);
        Ok(match column {
            "id" => text(self.id.to_owned()),
            "tenant_id" => text(tenant_id(self.tenant)),
            "tenant_display_name" => text(format!("Tenant {:04} Ltd", self.tenant)),
            "compliance_policy_id" => {
                text(guid(mix(0x90_1c7e ^ self.policy as u64), mix(self.policy as u64)))
            }
            "compliance_policy_name" => {
                text(format!("{} baseline {}", PLATFORMS[self.policy % 8], self.policy))
            }
            "compliance_policy_type" => text("deviceCompliancePolicy".to_owned()),
            "compliance_policy_platform" => text(PLATFORMS[self.policy % 8].to_owned()),
            "number_of_compliant_devices" => integer(self.compliant),
            "number_of_non_compliant_devices" => integer(self.non_compliant),
            "number_of_error_devices" => integer(self.errors),
            "policy_modified_ticks" => integer(self.policy_modified.map(|(ticks, _)| ticks)),
            "policy_modified_digits" => integer(self.policy_modified.map(|(_, digits)| digits)),
            "last_refreshed_ticks" => integer(self.last_refreshed.map(|(ticks, _)| ticks)),
            "last_refreshed_digits" => integer(self.last_refreshed.map(|(_, digits)| digits)),
            "version" => Value::Integer(1),
            other => bail!("the data generator has no value for the column {other}"),
        })
    }
}

/// Formats two 64-bit words as a lowercase version-4 GUID.
fn guid(high: u64, low: u64) -> String {
    let high = (high & 0xffff_ffff_ffff_0fff) | 0x4000;
    let low = (low & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        high >> 32,
        (high >> 16) & 0xffff,
        high & 0xffff,
        low >> 48,
        low & 0xffff_ffff_ffff
    )
}

/// SplitMix64's output function: a bijective scramble of a 64-bit word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The SplitMix64 generator: small, fast and good enough for test data.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Returns a number below `bound` (with a negligible bias for small bounds).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn guid(&mut self) -> String {
        let (high, low) = (self.next(), self.next());
        guid(high, low)
    }

    /// Returns `None` with a chance of `percent` in 100, or else the generated value.
    fn nullable<T>(&mut self, percent: u64, generate: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.below(100) < percent { None } else { Some(generate(self)) }
    }
}
