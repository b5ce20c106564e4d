//! Differential tests of `$filter`, `$orderby`, `$select`, `$top`, `$skip`, `$count` and
//! `$apply`.
//!
//! Each test creates a seeded, generated data set through the Graph view and compares the
//! server's responses with a reference evaluator written in this file. The reference implements the
//! documented query semantics on its own (three-valued nulls, code point string order, exact
//! Int64 and decimal comparison, date parts of the UTC instant, nulls first in ascending order)
//! and calls no Beacon crate, so a bug in the server's parser or SQL compiler cannot hide in both.
//! For `$apply` it also groups and aggregates on its own: Int64 sums exact in 128 bits,
//! averages as doubles compared with a relative tolerance, groups ordered by their keys.
//!
//! The seed is printed with every failure. Set `BEACON_DIFF_SEED` (decimal or `0x` hexadecimal)
//! to run the random cases with another seed.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;

use crate::helpers::*;

/// The seed of the data set and of the random cases unless `BEACON_DIFF_SEED` sets another.
const DEFAULT_SEED: u64 = 0x5EED_BEAC_0420_2024;

/// Entities in the generated data set.
const ROW_COUNT: usize = 300;

/// Random query cases per run.
const RANDOM_CASES: usize = 300;

/// Create requests in flight at once while loading the data set.
const CREATE_CONCURRENCY: usize = 16;

/// Query cases in flight at once.
const QUERY_CONCURRENCY: usize = 8;

/// The page size the server uses without a `Prefer` header.
const DEFAULT_PAGE_SIZE: usize = 100;

/// The maximum number of pages a random case may need. Smaller preferred page sizes are raised
/// to stay below it, which keeps the run time bounded.
const PAGE_BUDGET: usize = 30;

/// Failed cases printed in full when a test fails.
const REPORTED_FAILURES: usize = 12;

const TICKS_PER_SECOND: i64 = 10_000_000;
const TICKS_PER_DAY: i64 = 86_400 * TICKS_PER_SECOND;

/// 0001-01-01T00:00:00Z in 100-nanosecond ticks since the Unix epoch.
const MIN_TICKS: i64 = days_from_civil(1, 1, 1) * TICKS_PER_DAY;

/// 9999-12-31T23:59:59.9999999Z in 100-nanosecond ticks since the Unix epoch.
const MAX_TICKS: i64 = days_from_civil(10_000, 1, 1) * TICKS_PER_DAY - 1;

// ---------------------------------------------------------------------------------------------
// Random numbers and the calendar.

/// The splitmix64 generator: small, fast and fully determined by its seed.
#[derive(Debug)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns a number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Returns a number in `low..=high`.
    fn between(&mut self, low: i64, high: i64) -> i64 {
        let span = (high - low) as u64 + 1;
        low + (self.next_u64() % span) as i64
    }

    /// Returns true with the given probability in percent.
    fn percent(&mut self, probability: u64) -> bool {
        self.next_u64() % 100 < probability
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Returns the seed for this run: `BEACON_DIFF_SEED` if set, else [`DEFAULT_SEED`].
fn run_seed() -> u64 {
    let Ok(text) = std::env::var("BEACON_DIFF_SEED") else {
        return DEFAULT_SEED;
    };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("BEACON_DIFF_SEED={text} is not a decimal or 0x number"))
}

/// Counts the days from 1970-01-01 to a date of the proleptic Gregorian calendar.
const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    // Count years from March, so that the leap day is the last day of its year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Returns the (year, month, day) of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Returns the minimum number of fractional second digits that show `ticks` exactly.
fn needed_digits(ticks: i64) -> u32 {
    let mut fraction = ticks.rem_euclid(TICKS_PER_SECOND);
    if fraction == 0 {
        return 0;
    }
    let mut digits = 7;
    while fraction % 10 == 0 {
        fraction /= 10;
        digits -= 1;
    }
    digits
}

/// Writes an instant as a DateTimeOffset text at a UTC offset in minutes, with `digits`
/// fractional second digits. `Z` stands for the offset 0 when `zulu` is true.
fn format_instant(ticks: i64, offset_minutes: i64, digits: u32, zulu: bool) -> String {
    let local = ticks + offset_minutes * 60 * TICKS_PER_SECOND;
    let (year, month, day) = civil_from_days(local.div_euclid(TICKS_PER_DAY));
    let of_day = local.rem_euclid(TICKS_PER_DAY);
    let seconds = of_day / TICKS_PER_SECOND;
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    text.push_str(&format_fraction(of_day % TICKS_PER_SECOND, digits));
    if zulu && offset_minutes == 0 {
        text.push('Z');
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let size = offset_minutes.abs();
        text.push_str(&format!("{sign}{:02}:{:02}", size / 60, size % 60));
    }
    text
}

/// Writes the `.fffffff` part of a time for a fraction in ticks, or nothing for 0 digits.
fn format_fraction(fraction_ticks: i64, digits: u32) -> String {
    if digits == 0 {
        return String::new();
    }
    let value = fraction_ticks / 10_i64.pow(7 - digits);
    format!(".{value:0width$}", width = digits as usize)
}

/// Parses `YYYY-MM-DDThh:mm[:ss[.f…]]` followed by `Z` or `±hh:mm` into ticks since the epoch.
fn parse_instant(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once('T')?;
    let days = parse_date(date)?;
    let (clock, offset_minutes) = if let Some(clock) = rest.strip_suffix('Z') {
        (clock, 0)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (clock, offset) = rest.split_at(at);
        let (hours, minutes) = offset[1..].split_once(':')?;
        let size = hours.parse::<i64>().ok()? * 60 + minutes.parse::<i64>().ok()?;
        (clock, if offset.starts_with('-') { -size } else { size })
    };
    let of_day = parse_time_of_day(clock)?;
    Some(days * TICKS_PER_DAY + of_day - offset_minutes * 60 * TICKS_PER_SECOND)
}

/// Parses `YYYY-MM-DD` into days since 1970-01-01.
fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-').map(|part| part.parse::<i64>());
    let (year, month, day) = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?);
    Some(days_from_civil(year, month, day))
}

/// Parses `hh:mm[:ss[.f…]]` into ticks since midnight.
fn parse_time_of_day(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut parts = whole.split(':').map(|part| part.parse::<i64>());
    let hours = parts.next()?.ok()?;
    let minutes = parts.next()?.ok()?;
    let seconds = parts.next().unwrap_or(Ok(0)).ok()?;
    let mut fraction_ticks = 0;
    for (i, digit) in fraction.chars().enumerate() {
        fraction_ticks += i64::from(digit.to_digit(10)?) * 10_i64.pow(6 - i as u32);
    }
    Some((hours * 3600 + minutes * 60 + seconds) * TICKS_PER_SECOND + fraction_ticks)
}

// ---------------------------------------------------------------------------------------------
// The model: properties, values and the generated data set.

/// The EDM type of a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Int64,
    DateTimeOffset,
}

/// The properties of the Graph view, in the order of their index.
const PROPERTIES: [(&str, Kind); 12] = [
    ("id", Kind::String),
    ("tenantId", Kind::String),
    ("tenantDisplayName", Kind::String),
    ("compliancePolicyId", Kind::String),
    ("compliancePolicyName", Kind::String),
    ("compliancePolicyType", Kind::String),
    ("compliancePolicyPlatform", Kind::String),
    ("numberOfCompliantDevices", Kind::Int64),
    ("numberOfNonCompliantDevices", Kind::Int64),
    ("numberOfErrorDevices", Kind::Int64),
    ("policyModifiedDateTime", Kind::DateTimeOffset),
    ("lastRefreshedDateTime", Kind::DateTimeOffset),
];

const ID: usize = 0;
const TENANT_ID: usize = 1;
const TENANT_NAME: usize = 2;
const POLICY_ID: usize = 3;
const POLICY_NAME: usize = 4;
const POLICY_TYPE: usize = 5;
const PLATFORM: usize = 6;
const COMPLIANT: usize = 7;
const NON_COMPLIANT: usize = 8;
const ERRORS: usize = 9;
const MODIFIED: usize = 10;
const REFRESHED: usize = 11;

/// The nullable string properties.
const STRING_PROPERTIES: [usize; 6] =
    [TENANT_ID, TENANT_NAME, POLICY_ID, POLICY_NAME, POLICY_TYPE, PLATFORM];
/// The string properties that hold GUIDs in most rows.
const GUID_PROPERTIES: [usize; 2] = [TENANT_ID, POLICY_ID];
const COUNTERS: [usize; 3] = [COMPLIANT, NON_COMPLIANT, ERRORS];
const DATE_TIMES: [usize; 2] = [MODIFIED, REFRESHED];

/// 2^53, the first integer above which a double loses integer precision.
const TWO_POW_53: i64 = 9_007_199_254_740_992;

fn property_index(name: &str) -> usize {
    PROPERTIES
        .iter()
        .position(|(known, _)| *known == name)
        .unwrap_or_else(|| panic!("no property {name}"))
}

/// The GUIDs of the data set, in canonical lowercase.
const GUIDS: [&str; 4] = [
    "7a3b0c1d-0000-4000-8000-000000000001",
    "0f0e0d0c-aaaa-4bbb-8ccc-123456789abc",
    "ffffffff-ffff-4fff-8fff-ffffffffffff",
    "00000000-0000-4000-8000-00000000000a",
];

/// Returns the values a string property takes, with `None` for null. Few distinct values make
/// many ties. The values cover quotes, URL delimiters, LIKE wildcards, case pairs, non-ASCII
/// text, whitespace for trim, and characters whose UTF-16 order differs from code point order.
fn string_pool(property: usize) -> Vec<Option<String>> {
    let texts: Vec<Option<&str>> = match property {
        TENANT_ID => vec![
            Some(GUIDS[0]),
            Some("7A3B0C1D-0000-4000-8000-000000000001"),
            Some(GUIDS[1]),
            Some("FFFFFFFF-ffff-4FFF-8fff-FFFFffffffff"),
            Some(GUIDS[3]),
            Some("tenant-é"),
            Some(""),
            None,
        ],
        TENANT_NAME => vec![
            Some("Contoso"),
            Some("contoso"),
            Some("Contoso Ltd"),
            Some("O'Brien & Sons"),
            Some("A+B"),
            Some("100% Pure"),
            Some("#1 Hashtag"),
            Some("snake_case Co"),
            Some("Café Müller"),
            Some("Straße"),
            Some("ÄÖÜ"),
            Some("日本の会社"),
            Some("😀 Smile"),
            Some("ｱｲｳ Halfwidth"),
            Some(""),
            Some("  padded  "),
            Some("\u{3000}wide space\u{3000}"),
            Some("\ttabbed\n"),
            Some("İstanbul"),
            Some("it''s doubled"),
            Some("a%20b"),
            Some("Zed"),
            None,
            None,
        ],
        POLICY_ID => vec![
            Some(GUIDS[0]),
            Some(GUIDS[1]),
            Some("0F0E0D0C-AAAA-4BBB-8CCC-123456789ABC"),
            Some(GUIDS[2]),
            None,
        ],
        POLICY_NAME => vec![
            Some("Windows 10 baseline"),
            Some("iOS: strict"),
            Some("Baseline (old)"),
            Some("x"),
            Some("ends with space "),
            Some("ÉCOLE"),
            Some("école"),
            Some("naïve"),
            Some("🔒 Lock"),
            Some("50% + more"),
            Some("q'uote"),
            Some(""),
            Some("Contoso"),
            None,
        ],
        POLICY_TYPE => vec![
            Some("deviceCompliancePolicy"),
            Some("deviceConfiguration"),
            Some("DeviceCompliancePolicy"),
            None,
        ],
        PLATFORM => vec![
            Some("windows10AndLater"),
            Some("iOS"),
            Some("android"),
            Some("macOS"),
            Some(""),
            None,
        ],
        other => panic!("property {other} has no string pool"),
    };
    texts.into_iter().map(|text| text.map(str::to_owned)).collect()
}

/// Returns the values a counter takes: small values with many ties, values past 2^53, and for
/// `numberOfCompliantDevices` only, the largest Int64 values. The other counters stay below
/// 2^62 so that random arithmetic on them seldom overflows.
fn counter_pool(property: usize) -> Vec<Option<i64>> {
    let mut values = vec![Some(0), Some(1), Some(2), Some(3), Some(5), Some(7), Some(10)];
    values.extend([Some(42), Some(100), Some(TWO_POW_53), Some(TWO_POW_53 + 1), None]);
    if property == COMPLIANT {
        values.extend([Some(i64::MAX), Some(i64::MAX - 1)]);
    }
    values
}

/// UTC offsets in minutes used to write date-times, with whether `Z` writes the offset 0.
const OFFSETS: [(i64, bool); 6] =
    [(0, true), (0, false), (330, false), (-480, false), (60, false), (-225, false)];

/// Returns the instants of the data set: fixed edge cases (a year boundary that a +05:30 offset
/// moves, a leap day, the smallest and largest values) and random instants from 1990 to 2025
/// with 0 to 7 fractional digits.
fn instant_pool(rng: &mut SplitMix64) -> Vec<i64> {
    let mut instants: Vec<i64> = [
        "2023-12-31T23:30:00Z",
        "2024-02-29T20:00:00.5Z",
        "1999-12-31T23:59:59.9999999Z",
        "2024-03-01T07:30:00.1234567Z",
        "2010-06-15T12:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.9999999Z",
    ]
    .iter()
    .map(|text| parse_instant(text).unwrap())
    .collect();
    let start = days_from_civil(1990, 1, 1) * TICKS_PER_DAY;
    let end = days_from_civil(2025, 6, 1) * TICKS_PER_DAY;
    for _ in 0..18 {
        let seconds = rng.between(start / TICKS_PER_SECOND, end / TICKS_PER_SECOND);
        let digits = rng.below(8) as u32;
        let fraction = rng.between(0, 10_i64.pow(digits) - 1) * 10_i64.pow(7 - digits);
        instants.push(seconds * TICKS_PER_SECOND + fraction);
    }
    instants
}

/// A value of the reference evaluator.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Null,
    Bool(bool),
    String(String),
    Int(i64),
    Decimal(Decimal),
    /// A GUID literal, lowercased.
    Guid(String),
    /// An `Edm.DateTimeOffset`, in ticks since the Unix epoch.
    DateTime(i64),
    /// An `Edm.Date`, in days since 1970-01-01.
    Date(i64),
    /// An `Edm.TimeOfDay`, in ticks since midnight.
    TimeOfDay(i64),
    /// An `Edm.Double`: only an average of `$apply` has one.
    Double(f64),
}

/// An exact decimal number: `units / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Decimal {
    units: i128,
    scale: u32,
}

/// Parses an OData decimal or double literal, such as `2.5`, `-0.5` or `2.5E1`, exactly.
fn parse_decimal(text: &str) -> Decimal {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().unwrap()),
        None => (text, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let units: i128 = format!("{whole}{fraction}").parse().unwrap();
    let scale = fraction.len() as i32 - exponent;
    if scale >= 0 {
        Decimal { units, scale: scale as u32 }
    } else {
        Decimal { units: units * 10_i128.pow((-scale) as u32), scale: 0 }
    }
}

/// One entity of the data set: its values by property index, and its create body. A row of a
/// grouped `$apply` result reuses the type, with its values by column, an empty id and no body.
#[derive(Clone, Debug)]
struct Row {
    id: String,
    values: Vec<Val>,
    body: Value,
}

/// The generated entities with the value pools they were drawn from.
#[derive(Debug)]
struct Dataset {
    rows: Vec<Row>,
    instants: Vec<i64>,
}

/// Builds the id of row `index`. Most ids share a prefix, and a few start with characters that
/// sort before it (uppercase, space) or after it (non-ASCII, halfwidth katakana, emoji). So key
/// order is tested in code point order, where `ｱ` (U+FF71) sorts before `😀` (U+1F600),
/// unlike in UTF-16 order.
fn row_id(index: usize) -> String {
    match index % 60 {
        0 => format!("Row-{index:03}"),
        1 => format!("ŕow-{index:03}"),
        2 => format!("row {index:03}"),
        3 => format!("ｱ-{index:03}"),
        4 => format!("😀-{index:03}"),
        _ => format!("row-{index:03}"),
    }
}

impl Dataset {
    /// Generates [`ROW_COUNT`] rows from `seed`. Row `i` takes value `i` of each pool while the
    /// pool lasts, so every pool value appears at least once.
    fn generate(seed: u64) -> Dataset {
        let mut rng = SplitMix64::new(seed);
        let instants = instant_pool(&mut rng);
        let mut rows = Vec::with_capacity(ROW_COUNT);

        for index in 0..ROW_COUNT {
            let id = row_id(index);
            let mut values = vec![Val::String(id.clone())];
            let mut body = Map::new();
            body.insert("id".to_owned(), json!(id));

            // Draw each property from its pool, forced to value `index` for the first rows.
            for (property, (name, kind)) in PROPERTIES.iter().enumerate().skip(1) {
                let (value, json) = match kind {
                    Kind::String => {
                        let pool = string_pool(property);
                        let choice = if index < pool.len() { index } else { rng.below(pool.len()) };
                        match &pool[choice] {
                            Some(text) => (Val::String(text.clone()), json!(text)),
                            None => (Val::Null, Value::Null),
                        }
                    }
                    Kind::Int64 => {
                        // Past the forced rows: 12% null, 8% large values, the rest small.
                        let pool = counter_pool(property);
                        let (small, large): (Vec<i64>, Vec<i64>) =
                            pool.iter().flatten().copied().partition(|number| *number <= 100);
                        let number = if index < pool.len() {
                            pool[index]
                        } else {
                            match rng.below(100) {
                                0..=11 => None,
                                12..=19 => Some(*rng.pick(&large)),
                                _ => Some(*rng.pick(&small)),
                            }
                        };
                        match number {
                            Some(number) => (Val::Int(number), json!(number)),
                            None => (Val::Null, Value::Null),
                        }
                    }
                    Kind::DateTimeOffset => {
                        if index >= instants.len() && rng.percent(12) {
                            (Val::Null, Value::Null)
                        } else {
                            let choice = if index < instants.len() {
                                index
                            } else {
                                rng.below(instants.len())
                            };
                            let ticks = instants[choice];
                            let text = write_instant_randomly(&mut rng, ticks);
                            (Val::DateTime(ticks), json!(text))
                        }
                    }
                };

                // A null is sent as JSON null or left out, which both mean null.
                if value != Val::Null || rng.percent(50) {
                    body.insert((*name).to_owned(), json);
                }
                values.push(value);
            }
            rows.push(Row { id, values, body: Value::Object(body) });
        }
        Dataset { rows, instants }
    }
}

/// Writes an instant at a random offset with a random number of fractional digits that still
/// shows it exactly. Offsets that would move the local time out of years 1 to 9999 fall back
/// to `Z`.
fn write_instant_randomly(rng: &mut SplitMix64, ticks: i64) -> String {
    let (mut offset, mut zulu) = *rng.pick(&OFFSETS);
    let local = ticks + offset * 60 * TICKS_PER_SECOND;
    if !(MIN_TICKS..=MAX_TICKS).contains(&local) {
        (offset, zulu) = (0, true);
    }
    let digits = rng.between(i64::from(needed_digits(ticks)), 7) as u32;
    format_instant(ticks, offset, digits, zulu)
}

// ---------------------------------------------------------------------------------------------
// Expressions: rendering to OData text and evaluating by the contract.

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Or,
    And,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl Op {
    fn from_word(word: &str) -> Op {
        match word {
            "or" => Op::Or,
            "and" => Op::And,
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            "add" => Op::Add,
            "sub" => Op::Sub,
            "mul" => Op::Mul,
            "div" => Op::Div,
            "mod" => Op::Mod,
            other => panic!("no operator {other}"),
        }
    }

    fn word(self) -> &'static str {
        match self {
            Op::Or => "or",
            Op::And => "and",
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Add => "add",
            Op::Sub => "sub",
            Op::Mul => "mul",
            Op::Div => "div",
            Op::Mod => "mod",
        }
    }

    /// Returns the precedence of OData 4.01: a higher number binds tighter.
    fn precedence(self) -> u8 {
        match self {
            Op::Or => 1,
            Op::And => 2,
            Op::Eq | Op::Ne => 3,
            Op::Gt | Op::Ge | Op::Lt | Op::Le => 4,
            Op::Add | Op::Sub => 5,
            Op::Mul | Op::Div | Op::Mod => 6,
        }
    }
}

/// The comparison operators.
const COMPARISONS: [Op; 6] = [Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le];

/// A canonical function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Contains,
    StartsWith,
    EndsWith,
    Length,
    IndexOf,
    Substring,
    ToLower,
    ToUpper,
    Trim,
    Concat,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    FractionalSeconds,
    Date,
    Time,
    TotalOffsetMinutes,
    Now,
    MaxDateTime,
    MinDateTime,
}

const FUNCTIONS: [(Func, &str); 23] = [
    (Func::Contains, "contains"),
    (Func::StartsWith, "startswith"),
    (Func::EndsWith, "endswith"),
    (Func::Length, "length"),
    (Func::IndexOf, "indexof"),
    (Func::Substring, "substring"),
    (Func::ToLower, "tolower"),
    (Func::ToUpper, "toupper"),
    (Func::Trim, "trim"),
    (Func::Concat, "concat"),
    (Func::Year, "year"),
    (Func::Month, "month"),
    (Func::Day, "day"),
    (Func::Hour, "hour"),
    (Func::Minute, "minute"),
    (Func::Second, "second"),
    (Func::FractionalSeconds, "fractionalseconds"),
    (Func::Date, "date"),
    (Func::Time, "time"),
    (Func::TotalOffsetMinutes, "totaloffsetminutes"),
    (Func::Now, "now"),
    (Func::MaxDateTime, "maxdatetime"),
    (Func::MinDateTime, "mindatetime"),
];

/// The date parts that return an Int64.
const DATE_PARTS: [Func; 6] =
    [Func::Year, Func::Month, Func::Day, Func::Hour, Func::Minute, Func::Second];

impl Func {
    fn name(self) -> &'static str {
        FUNCTIONS.iter().find(|(func, _)| *func == self).unwrap().1
    }

    fn from_name(name: &str) -> Func {
        FUNCTIONS.iter().find(|(_, known)| *known == name).unwrap_or_else(|| panic!("{name}")).0
    }
}

/// An expression of `$filter` or `$orderby`.
#[derive(Clone, Debug)]
enum Expr {
    Property(usize),
    /// A column of a grouped `$apply` result, by name and position.
    Column {
        name: String,
        index: usize,
    },
    /// A literal as written in the URL, with its value.
    Literal {
        text: String,
        value: Val,
    },
    /// Parentheses the generator adds although precedence does not need them.
    Paren(Box<Expr>),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Vec<Expr>),
    Call(Func, Vec<Expr>),
}

/// A failure that must turn the whole request into a 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Overflow,
    DivisionByZero,
}

impl Expr {
    /// Returns the precedence of the node. As in OData 4.01, `not` and unary minus bind tighter
    /// than `mul`, and `in` tighter still.
    fn precedence(&self) -> u8 {
        match self {
            Expr::Binary(op, _, _) => op.precedence(),
            Expr::Not(_) | Expr::Negate(_) => 7,
            Expr::In(_, _) => 8,
            _ => 9,
        }
    }

    /// Renders the expression with the parentheses precedence needs and those in the tree.
    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Expr::Property(index) => out.push_str(PROPERTIES[*index].0),
            Expr::Column { name, .. } => out.push_str(name),
            Expr::Literal { text, .. } => out.push_str(text),
            Expr::Paren(inner) => {
                out.push('(');
                inner.write(out);
                out.push(')');
            }
            Expr::Not(inner) => {
                out.push_str("not ");
                inner.write_operand(out, 7);
            }
            Expr::Negate(inner) => {
                // Parenthesize all but names and calls, so that `-` never meets a digit or '-'.
                out.push('-');
                if matches!(**inner, Expr::Property(_) | Expr::Call(_, _) | Expr::Paren(_)) {
                    inner.write(out);
                } else {
                    out.push('(');
                    inner.write(out);
                    out.push(')');
                }
            }
            Expr::Binary(op, left, right) => {
                left.write_operand(out, op.precedence());
                out.push(' ');
                out.push_str(op.word());
                out.push(' ');
                right.write_operand(out, op.precedence() + 1);
            }
            Expr::In(left, items) => {
                left.write_operand(out, 9);
                out.push_str(" in (");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(')');
            }
            Expr::Call(func, args) => {
                out.push_str(func.name());
                out.push('(');
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    arg.write(out);
                }
                out.push(')');
            }
        }
    }

    fn write_operand(&self, out: &mut String, minimum_precedence: u8) {
        if self.precedence() < minimum_precedence {
            out.push('(');
            self.write(out);
            out.push(')');
        } else {
            self.write(out);
        }
    }

    /// Evaluates the expression on one row. `now` is the instant `now()` returns.
    ///
    /// Both operands of `and` and `or` are always evaluated, so that a fault anywhere is found
    /// even where a server might skip an operand.
    fn eval(&self, row: &Row, now: i64) -> Result<Val, Fault> {
        Ok(match self {
            Expr::Property(index) => row.values[*index].clone(),
            Expr::Column { index, .. } => row.values[*index].clone(),
            Expr::Literal { value, .. } => value.clone(),
            Expr::Paren(inner) => inner.eval(row, now)?,
            Expr::Not(inner) => match inner.eval(row, now)? {
                Val::Bool(value) => Val::Bool(!value),
                Val::Null => Val::Null,
                other => panic!("not of {other:?}"),
            },
            Expr::Negate(inner) => match inner.eval(row, now)? {
                Val::Int(value) => Val::Int(value.checked_neg().ok_or(Fault::Overflow)?),
                Val::Null => Val::Null,
                other => panic!("negation of {other:?}"),
            },
            Expr::Binary(op, left, right) => {
                let left = left.eval(row, now)?;
                let right = right.eval(row, now)?;
                match op {
                    Op::And | Op::Or => logical(*op, &left, &right),
                    Op::Eq | Op::Ne | Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                        Val::Bool(compare(*op, &left, &right))
                    }
                    _ => arithmetic(*op, &left, &right)?,
                }
            }
            Expr::In(left, items) => {
                let left = left.eval(row, now)?;
                let mut found = false;
                for item in items {
                    found |= compare(Op::Eq, &left, &item.eval(row, now)?);
                }
                Val::Bool(found)
            }
            Expr::Call(func, args) => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    values.push(arg.eval(row, now)?);
                }
                call(*func, &values, now)
            }
        })
    }
}

/// Applies `and` or `or` in three-valued logic.
fn logical(op: Op, left: &Val, right: &Val) -> Val {
    let truth = |value: &Val| match value {
        Val::Bool(b) => Some(*b),
        Val::Null => None,
        other => panic!("{} of {other:?}", op.word()),
    };
    let (left, right) = (truth(left), truth(right));
    let decisive = op == Op::Or;
    if left == Some(decisive) || right == Some(decisive) {
        Val::Bool(decisive)
    } else if left.is_none() || right.is_none() {
        Val::Null
    } else {
        Val::Bool(!decisive)
    }
}

/// Applies a comparison with OData 4.01 null rules: `eq` and `ne` treat null as a value, `gt`
/// and `lt` are false with any null, `ge` and `le` are true only when both sides are null.
fn compare(op: Op, left: &Val, right: &Val) -> bool {
    match (left == &Val::Null, right == &Val::Null) {
        (true, true) => matches!(op, Op::Eq | Op::Ge | Op::Le),
        (true, false) | (false, true) => op == Op::Ne,
        (false, false) => {
            let order = order_values(left, right);
            match op {
                Op::Eq => order == Ordering::Equal,
                Op::Ne => order != Ordering::Equal,
                Op::Gt => order == Ordering::Greater,
                Op::Ge => order != Ordering::Less,
                Op::Lt => order == Ordering::Less,
                Op::Le => order != Ordering::Greater,
                other => panic!("{other:?} is not a comparison"),
            }
        }
    }
}

/// Orders two non-null values of comparable types. Strings compare by code point, which is
/// the byte order of UTF-8 and so the order of Rust's `str`. A GUID compares with the string
/// lowercased in ASCII.
fn order_values(left: &Val, right: &Val) -> Ordering {
    match (left, right) {
        (Val::String(a), Val::String(b)) => a.cmp(b),
        (Val::String(a), Val::Guid(b)) => a.to_ascii_lowercase().cmp(b),
        (Val::Guid(a), Val::String(b)) => a.cmp(&b.to_ascii_lowercase()),
        (Val::Guid(a), Val::Guid(b)) => a.cmp(b),
        (Val::Int(a), Val::Int(b)) => a.cmp(b),
        (Val::Int(_) | Val::Decimal(_), Val::Int(_) | Val::Decimal(_)) => {
            let (a, b) = (as_decimal(left), as_decimal(right));
            let a_scaled = a.units * 10_i128.pow(b.scale);
            let b_scaled = b.units * 10_i128.pow(a.scale);
            a_scaled.cmp(&b_scaled)
        }
        (Val::DateTime(a), Val::DateTime(b))
        | (Val::Date(a), Val::Date(b))
        | (Val::TimeOfDay(a), Val::TimeOfDay(b)) => a.cmp(b),
        // Only listed cases order averages, of values small enough to be exact as doubles.
        (Val::Double(a), Val::Double(b)) => a.total_cmp(b),
        _ => panic!("the generator compared unrelated types: {left:?} and {right:?}"),
    }
}

fn as_decimal(value: &Val) -> Decimal {
    match value {
        Val::Int(number) => Decimal { units: i128::from(*number), scale: 0 },
        Val::Decimal(decimal) => *decimal,
        other => panic!("{other:?} is not a number"),
    }
}

/// Orders values for `$orderby`: null sorts before every value.
fn order_for_sort(left: &Val, right: &Val) -> Ordering {
    match (left, right) {
        (Val::Null, Val::Null) => Ordering::Equal,
        (Val::Null, _) => Ordering::Less,
        (_, Val::Null) => Ordering::Greater,
        _ => order_values(left, right),
    }
}

/// Applies Int64 arithmetic: null with a null operand, a fault on overflow or a zero divisor,
/// `div` truncating toward zero and `mod` taking the sign of the dividend.
fn arithmetic(op: Op, left: &Val, right: &Val) -> Result<Val, Fault> {
    let (a, b) = match (left, right) {
        (Val::Null, _) | (_, Val::Null) => return Ok(Val::Null),
        (Val::Int(a), Val::Int(b)) => (*a, *b),
        _ => panic!("{} of {left:?} and {right:?}", op.word()),
    };
    if matches!(op, Op::Div | Op::Mod) && b == 0 {
        return Err(Fault::DivisionByZero);
    }
    let result = match op {
        Op::Add => a.checked_add(b),
        Op::Sub => a.checked_sub(b),
        Op::Mul => a.checked_mul(b),
        Op::Div => a.checked_div(b),
        Op::Mod => a.checked_rem(b),
        other => panic!("{other:?} is not arithmetic"),
    };
    result.map(Val::Int).ok_or(Fault::Overflow)
}

/// Applies a canonical function. Any null argument gives null.
fn call(func: Func, args: &[Val], now: i64) -> Val {
    match func {
        Func::Now => return Val::DateTime(now),
        Func::MaxDateTime => return Val::DateTime(MAX_TICKS),
        Func::MinDateTime => return Val::DateTime(MIN_TICKS),
        _ => {}
    }
    if args.contains(&Val::Null) {
        return Val::Null;
    }
    let text = |i: usize| match &args[i] {
        Val::String(text) => text.as_str(),
        other => panic!("{} takes a string, not {other:?}", func.name()),
    };
    let int_arg = |i: usize| match &args[i] {
        Val::Int(number) => *number,
        other => panic!("{} takes an Int64, not {other:?}", func.name()),
    };
    let instant = |i: usize| match &args[i] {
        Val::DateTime(ticks) => *ticks,
        other => panic!("{} takes a DateTimeOffset, not {other:?}", func.name()),
    };
    let civil = |i: usize| civil_from_days(instant(i).div_euclid(TICKS_PER_DAY));
    let second_of_day = |i: usize| instant(i).rem_euclid(TICKS_PER_DAY) / TICKS_PER_SECOND;

    match func {
        Func::Contains => Val::Bool(text(0).contains(text(1))),
        Func::StartsWith => Val::Bool(text(0).starts_with(text(1))),
        Func::EndsWith => Val::Bool(text(0).ends_with(text(1))),
        Func::Length => Val::Int(text(0).chars().count() as i64),
        Func::IndexOf => Val::Int(match text(0).find(text(1)) {
            Some(byte) => text(0)[..byte].chars().count() as i64,
            None => -1,
        }),
        Func::Substring => {
            // A negative start counts as 0, a start past the end and a negative length give ''.
            let chars: Vec<char> = text(0).chars().collect();
            let start = usize::try_from(int_arg(1).max(0)).unwrap().min(chars.len());
            let rest = &chars[start..];
            let length = match args.get(2) {
                None => rest.len(),
                Some(_) => usize::try_from(int_arg(2).max(0)).unwrap().min(rest.len()),
            };
            Val::String(rest[..length].iter().collect())
        }
        Func::ToLower => Val::String(text(0).to_lowercase()),
        Func::ToUpper => Val::String(text(0).to_uppercase()),
        Func::Trim => Val::String(text(0).trim().to_owned()),
        Func::Concat => Val::String(format!("{}{}", text(0), text(1))),
        Func::Year => Val::Int(civil(0).0),
        Func::Month => Val::Int(civil(0).1),
        Func::Day => Val::Int(civil(0).2),
        Func::Hour => Val::Int(second_of_day(0) / 3600),
        Func::Minute => Val::Int(second_of_day(0) / 60 % 60),
        Func::Second => Val::Int(second_of_day(0) % 60),
        Func::FractionalSeconds => Val::Decimal(Decimal {
            units: i128::from(instant(0).rem_euclid(TICKS_PER_SECOND)),
            scale: 7,
        }),
        Func::Date => Val::Date(instant(0).div_euclid(TICKS_PER_DAY)),
        Func::Time => Val::TimeOfDay(instant(0).rem_euclid(TICKS_PER_DAY)),
        Func::TotalOffsetMinutes => Val::Int(0),
        Func::Now | Func::MaxDateTime | Func::MinDateTime => unreachable!("handled above"),
    }
}

// ---------------------------------------------------------------------------------------------
// Literals and expression builders.

fn property(name: &str) -> Expr {
    Expr::Property(property_index(name))
}

fn literal(text: String, value: Val) -> Expr {
    Expr::Literal { text, value }
}

/// Builds a string literal, with quotes inside it doubled.
fn string(value: &str) -> Expr {
    literal(format!("'{}'", value.replace('\'', "''")), Val::String(value.to_owned()))
}

fn int(value: i64) -> Expr {
    literal(value.to_string(), Val::Int(value))
}

/// Builds a decimal or double literal, such as `2.5` or `1e2`.
fn number(text: &str) -> Expr {
    literal(text.to_owned(), Val::Decimal(parse_decimal(text)))
}

fn null() -> Expr {
    literal("null".to_owned(), Val::Null)
}

/// Builds a DateTimeOffset literal, written as given.
fn instant(text: &str) -> Expr {
    let ticks = parse_instant(text).unwrap_or_else(|| panic!("invalid instant literal {text}"));
    literal(text.to_owned(), Val::DateTime(ticks))
}

fn date(text: &str) -> Expr {
    literal(text.to_owned(), Val::Date(parse_date(text).unwrap()))
}

fn time_of_day(text: &str) -> Expr {
    literal(text.to_owned(), Val::TimeOfDay(parse_time_of_day(text).unwrap()))
}

/// Builds a GUID literal, written as given, in any case.
fn guid(text: &str) -> Expr {
    literal(text.to_owned(), Val::Guid(text.to_ascii_lowercase()))
}

fn binary(left: Expr, op: &str, right: Expr) -> Expr {
    Expr::Binary(Op::from_word(op), Box::new(left), Box::new(right))
}

/// Compares a property, named by `name`, with `right`.
fn cmp(name: &str, op: &str, right: Expr) -> Expr {
    binary(property(name), op, right)
}

fn not(inner: Expr) -> Expr {
    Expr::Not(Box::new(inner))
}

fn negate(inner: Expr) -> Expr {
    Expr::Negate(Box::new(inner))
}

fn paren(inner: Expr) -> Expr {
    Expr::Paren(Box::new(inner))
}

fn member(left: Expr, items: Vec<Expr>) -> Expr {
    Expr::In(Box::new(left), items)
}

fn func(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Call(Func::from_name(name), args)
}

/// Decimal and double literals, some exact only as decimals (past 2^53).
const NUMBER_LITERALS: [&str; 12] = [
    "2.5",
    "0.5",
    "2.0",
    "-0.5",
    "100.00",
    "41.9999999",
    "9007199254740992.5",
    "9223372036854775806.9",
    "1e2",
    "2.5E1",
    "4e0",
    "5e-1",
];

/// Int64 literals for comparisons, from small values with ties to the range limits.
const INT_LITERALS: [i64; 15] = [
    -1,
    0,
    1,
    2,
    3,
    5,
    7,
    10,
    42,
    100,
    TWO_POW_53,
    TWO_POW_53 + 1,
    i64::MAX - 1,
    i64::MAX,
    i64::MIN,
];

/// Fractional second values to compare `fractionalseconds` with.
const FRACTION_LITERALS: [&str; 5] = ["0", "0.5", "0.1234567", "0.9999999", "0.25"];

// ---------------------------------------------------------------------------------------------
// Queries and their expected results.

/// The direction of one `$orderby` item, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Unwritten,
    Asc,
    Desc,
}

#[derive(Clone, Debug)]
struct OrderKey {
    expr: Expr,
    direction: Direction,
}

fn asc(expr: Expr) -> OrderKey {
    OrderKey { expr, direction: Direction::Asc }
}

fn desc(expr: Expr) -> OrderKey {
    OrderKey { expr, direction: Direction::Desc }
}

/// The value of `$select`.
#[derive(Clone, Debug)]
enum Select {
    Star,
    Properties(Vec<usize>),
}

/// The query options of one request, and its `Prefer` page size.
#[derive(Clone, Debug, Default)]
struct Query {
    filter: Option<Expr>,
    orderby: Vec<OrderKey>,
    select: Option<Select>,
    top: Option<usize>,
    skip: Option<usize>,
    count: Option<bool>,
    page_size: Option<usize>,
    /// Sends the request to `/$count` with only the filter.
    count_segment: bool,
}

impl Query {
    fn filter(expr: Expr) -> Query {
        Query { filter: Some(expr), ..Query::default() }
    }

    fn orderby(keys: Vec<OrderKey>) -> Query {
        Query { orderby: keys, ..Query::default() }
    }

    /// Returns the query options as (name, unencoded value) pairs.
    fn options(&self) -> Vec<(&'static str, String)> {
        let mut options = Vec::new();
        if let Some(filter) = &self.filter {
            options.push(("$filter", filter.render()));
        }
        if self.count_segment {
            return options;
        }
        if !self.orderby.is_empty() {
            options.push(("$orderby", render_order(&self.orderby)));
        }
        match &self.select {
            None => {}
            Some(Select::Star) => options.push(("$select", "*".to_owned())),
            Some(Select::Properties(indexes)) => {
                let names: Vec<&str> = indexes.iter().map(|i| PROPERTIES[*i].0).collect();
                options.push(("$select", names.join(",")));
            }
        }
        if let Some(top) = self.top {
            options.push(("$top", top.to_string()));
        }
        if let Some(skip) = self.skip {
            options.push(("$skip", skip.to_string()));
        }
        if let Some(count) = self.count {
            options.push(("$count", count.to_string()));
        }
        options
    }

    /// Runs the query on the reference: returns the rows that match in result order, before
    /// `$skip` and `$top`, or the fault that must make the request fail.
    fn evaluate(&self, rows: &[Row], now: i64) -> Result<Vec<usize>, Fault> {
        // Evaluate the filter on every row, so that a fault in any row is found.
        let mut matching = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            let keep = match &self.filter {
                None => true,
                Some(filter) => match filter.eval(row, now)? {
                    Val::Bool(value) => value,
                    Val::Null => false,
                    other => panic!("the filter gave {other:?}"),
                },
            };
            if keep {
                matching.push(index);
            }
        }
        if self.count_segment {
            return Ok(matching);
        }

        // Sort by each key, nulls first ascending and last descending, then by id.
        let mut keys = vec![Vec::new(); rows.len()];
        for key in &self.orderby {
            for (index, row) in rows.iter().enumerate() {
                keys[index].push(key.expr.eval(row, now)?);
            }
        }
        matching.sort_by(|a, b| {
            for (position, key) in self.orderby.iter().enumerate() {
                let order = order_for_sort(&keys[*a][position], &keys[*b][position]);
                let order = if key.direction == Direction::Desc { order.reverse() } else { order };
                if order != Ordering::Equal {
                    return order;
                }
            }
            rows[*a].id.cmp(&rows[*b].id)
        });
        Ok(matching)
    }

    /// Returns the properties each returned entity must hold, `id` included.
    fn expected_properties(&self) -> BTreeSet<usize> {
        match &self.select {
            None | Some(Select::Star) => (0..PROPERTIES.len()).collect(),
            Some(Select::Properties(indexes)) => {
                let mut set: BTreeSet<usize> = indexes.iter().copied().collect();
                set.insert(ID);
                set
            }
        }
    }
}

/// Renders the items of `$orderby` or of an `orderby` transformation.
fn render_order(keys: &[OrderKey]) -> String {
    let items: Vec<String> = keys
        .iter()
        .map(|key| {
            let suffix = match key.direction {
                Direction::Unwritten => "",
                Direction::Asc => " asc",
                Direction::Desc => " desc",
            };
            format!("{}{suffix}", key.expr.render())
        })
        .collect();
    items.join(",")
}

/// Percent-encodes a query option value. Only unreserved characters and a few delimiters that
/// mean nothing inside a query value stay as they are, so space becomes `%20`, `+` `%2B`, `&`
/// `%26`, `#` `%23`, `%` `%25`, and non-ASCII text its UTF-8 bytes.
fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~'()*,:$!@/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One request with everything needed to check its response.
#[derive(Debug)]
struct Case {
    label: String,
    url: String,
    /// The query options unencoded, for failure messages.
    readable: String,
    page_size: Option<usize>,
    count_segment: bool,
    count: Option<bool>,
    /// The rows of the response in order, after `$skip` and `$top`.
    expected_rows: Vec<usize>,
    /// The number of rows the filter matches.
    expected_count: usize,
    properties: BTreeSet<usize>,
}

impl Case {
    /// Builds a case from a query, or returns the fault the reference meets.
    fn build(
        label: String,
        query: &Query,
        rows: &[Row],
        collection_url: &str,
    ) -> Result<Case, Fault> {
        let now = now_ticks();
        let matching = query.evaluate(rows, now)?;
        let expected_count = matching.len();
        let skip = query.skip.unwrap_or(0).min(matching.len());
        let top = query.top.unwrap_or(usize::MAX);
        let expected_rows: Vec<usize> = matching[skip..].iter().copied().take(top).collect();

        let path = if query.count_segment {
            format!("{collection_url}/$count")
        } else {
            collection_url.to_owned()
        };
        let (url, readable) = request_url(&path, &query.options());

        Ok(Case {
            label,
            url,
            readable,
            page_size: query.page_size,
            count_segment: query.count_segment,
            count: query.count,
            expected_rows,
            expected_count,
            properties: query.expected_properties(),
        })
    }

    /// Describes the request for a failure message.
    fn describe(&self) -> String {
        describe_request(&self.label, &self.url, &self.readable, self.page_size)
    }
}

/// Builds the URL of a request from its path and unencoded query options, and the options as
/// one readable text for failure messages.
fn request_url(path: &str, options: &[(&'static str, String)]) -> (String, String) {
    let encoded: Vec<String> = options
        .iter()
        .map(|(name, value)| format!("{name}={}", encode_query_value(value)))
        .collect();
    let readable: Vec<String> =
        options.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let url =
        if encoded.is_empty() { path.to_owned() } else { format!("{path}?{}", encoded.join("&")) };
    (url, readable.join("&"))
}

/// Describes a request for a failure message.
fn describe_request(label: &str, url: &str, readable: &str, page_size: Option<usize>) -> String {
    let prefer = match page_size {
        Some(size) => format!("\n  Prefer: odata.maxpagesize={size}"),
        None => String::new(),
    };
    format!("{label}: GET {url}{prefer}\n  query (decoded): {readable}")
}

fn now_ticks() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(elapsed.as_nanos() / 100).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The random query generator.

/// Draws random, well-typed queries whose reference evaluation meets no fault.
#[derive(Debug)]
struct Generator<'a> {
    rng: SplitMix64,
    dataset: &'a Dataset,
}

impl Generator<'_> {
    /// Draws the query of one case.
    fn query(&mut self) -> Query {
        let mut query = Query::default();
        if self.rng.percent(85) {
            query.filter = Some(self.boolean(3));
        }
        if self.rng.percent(8) {
            query.count_segment = true;
            return query;
        }
        if self.rng.percent(75) {
            let keys = 1 + self.rng.below(3);
            query.orderby = (0..keys).map(|_| self.order_key()).collect();
        }
        query.select = match self.rng.below(10) {
            0..=3 => None,
            4 => Some(Select::Star),
            _ => {
                let mut chosen: Vec<usize> = Vec::new();
                for _ in 0..1 + self.rng.below(4) {
                    let index = self.rng.below(PROPERTIES.len());
                    if !chosen.contains(&index) {
                        chosen.push(index);
                    }
                }
                Some(Select::Properties(chosen))
            }
        };
        if self.rng.percent(40) {
            query.top =
                Some(if self.rng.percent(80) { self.rng.below(41) } else { self.rng.below(400) });
        }
        if self.rng.percent(35) {
            query.skip =
                Some(if self.rng.percent(80) { self.rng.below(61) } else { self.rng.below(350) });
        }
        query.count = match self.rng.below(20) {
            0..=6 => Some(true),
            7 | 8 => Some(false),
            _ => None,
        };
        if self.rng.percent(60) {
            query.page_size = Some(*self.rng.pick(&[1, 2, 3, 5, 7, 10, 25, 50, 100, 1000]));
        }
        query
    }

    fn boolean(&mut self, depth: u32) -> Expr {
        if depth > 0 && self.rng.percent(40) {
            let expr = match self.rng.below(5) {
                0 | 1 => binary_op(Op::And, self.boolean(depth - 1), self.boolean(depth - 1)),
                2 | 3 => binary_op(Op::Or, self.boolean(depth - 1), self.boolean(depth - 1)),
                _ => not(self.boolean(depth - 1)),
            };
            return self.maybe_paren(expr);
        }
        match self.rng.below(11) {
            0 | 1 => self.int_comparison(),
            2 | 3 => self.string_comparison(),
            4 => self.guid_comparison(),
            5 => self.date_time_comparison(),
            6 => self.date_part_comparison(),
            7 => self.membership(),
            8 | 9 => self.string_predicate(),
            _ => self.null_check(),
        }
    }

    fn maybe_paren(&mut self, expr: Expr) -> Expr {
        if self.rng.percent(10) { paren(expr) } else { expr }
    }

    fn comparison(&mut self) -> Op {
        *self.rng.pick(&COMPARISONS)
    }

    /// Compares in the order drawn, or swapped, so that literals and nulls appear on both sides.
    fn compare_sides(&mut self, left: Expr, right: Expr) -> Expr {
        let op = self.comparison();
        if self.rng.percent(20) { binary_op(op, right, left) } else { binary_op(op, left, right) }
    }

    fn int_comparison(&mut self) -> Expr {
        let left = self.int_expr(2);
        let right = match self.rng.below(8) {
            0..=2 => int(*self.rng.pick(&INT_LITERALS)),
            3 => self.int_expr(1),
            4 | 5 => {
                let text = *self.rng.pick(&NUMBER_LITERALS);
                number(text)
            }
            6 => int(self.rng.between(-3, 12)),
            _ => null(),
        };
        self.compare_sides(left, right)
    }

    fn string_comparison(&mut self) -> Expr {
        let (left, base) = self.string_expr(2);
        let right = match self.rng.below(7) {
            0..=3 => self.string_literal(base),
            4 => self.string_expr(0).0,
            5 => string(&self.string_literal_text(base).to_lowercase()),
            _ => null(),
        };
        self.compare_sides(left, right)
    }

    fn guid_comparison(&mut self) -> Expr {
        let left = Expr::Property(*self.rng.pick(&GUID_PROPERTIES));
        let right = self.guid_literal();
        self.compare_sides(left, right)
    }

    fn guid_literal(&mut self) -> Expr {
        let text = *self.rng.pick(&GUIDS);
        if self.rng.percent(30) { guid(&text.to_ascii_uppercase()) } else { guid(text) }
    }

    fn date_time_comparison(&mut self) -> Expr {
        let left = Expr::Property(*self.rng.pick(&DATE_TIMES));
        let right = match self.rng.below(10) {
            0..=5 => self.instant_literal(),
            6 => Expr::Property(*self.rng.pick(&DATE_TIMES)),
            7 => null(),
            8 => func("now", vec![]),
            _ => {
                let name = *self.rng.pick(&["maxdatetime", "mindatetime"]);
                func(name, vec![])
            }
        };
        self.compare_sides(left, right)
    }

    fn date_part_comparison(&mut self) -> Expr {
        let argument = Expr::Property(*self.rng.pick(&DATE_TIMES));
        let (left, right) = match self.rng.below(4) {
            0 => (func("date", vec![argument]), self.date_literal()),
            1 => (func("time", vec![argument]), self.time_of_day_literal()),
            2 => {
                let fraction = *self.rng.pick(&FRACTION_LITERALS);
                (func("fractionalseconds", vec![argument]), number(fraction))
            }
            _ => (func("totaloffsetminutes", vec![argument]), int(*self.rng.pick(&[0, 330, -480]))),
        };
        self.compare_sides(left, right)
    }

    fn membership(&mut self) -> Expr {
        let size = self.rng.below(5);
        if self.rng.percent(35) {
            let left = Expr::Property(*self.rng.pick(&COUNTERS));
            let mut items: Vec<Expr> =
                (0..size).map(|_| int(*self.rng.pick(&INT_LITERALS))).collect();
            if self.rng.percent(30) {
                items.push(null());
            }
            return member(left, items);
        }
        let base = *self.rng.pick(&STRING_PROPERTIES);
        let left = if self.rng.percent(25) {
            func("tolower", vec![Expr::Property(base)])
        } else {
            Expr::Property(base)
        };
        let mut items: Vec<Expr> = (0..size).map(|_| self.string_literal(base)).collect();
        if GUID_PROPERTIES.contains(&base) && self.rng.percent(30) {
            items.push(self.guid_literal());
        }
        if self.rng.percent(30) {
            let at = self.rng.below(items.len() + 1);
            items.insert(at, null());
        }
        member(left, items)
    }

    fn string_predicate(&mut self) -> Expr {
        let name = *self.rng.pick(&["contains", "startswith", "endswith"]);
        let (haystack, base) = self.string_expr(1);
        let needle =
            if self.rng.percent(80) { string(&self.needle(base)) } else { self.string_expr(0).0 };
        func(name, vec![haystack, needle])
    }

    fn null_check(&mut self) -> Expr {
        let left = Expr::Property(1 + self.rng.below(PROPERTIES.len() - 1));
        let op = if self.rng.percent(50) { Op::Eq } else { Op::Ne };
        if self.rng.percent(25) { binary_op(op, null(), left) } else { binary_op(op, left, null()) }
    }

    /// Draws an Int64 expression. Divisors that are literals are never zero.
    fn int_expr(&mut self, depth: u32) -> Expr {
        if depth > 0 && self.rng.percent(35) {
            let op = *self.rng.pick(&[Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Mod]);
            if self.rng.percent(12) {
                return negate(self.int_expr(depth - 1));
            }
            let left = self.int_expr(depth - 1);
            let right = if self.rng.percent(65) {
                let mut value = self.rng.between(-3, 7);
                if value == 0 && matches!(op, Op::Div | Op::Mod) {
                    value = 3;
                }
                int(value)
            } else {
                self.int_expr(depth - 1)
            };
            return self.maybe_paren(binary_op(op, left, right));
        }
        match self.rng.below(10) {
            0..=4 => Expr::Property(*self.rng.pick(&COUNTERS)),
            5 | 6 => func("length", vec![self.string_expr(1).0]),
            7 => {
                let (haystack, base) = self.string_expr(0);
                func("indexof", vec![haystack, string(&self.needle(base))])
            }
            _ => {
                let part = *self.rng.pick(&DATE_PARTS);
                Expr::Call(part, vec![Expr::Property(*self.rng.pick(&DATE_TIMES))])
            }
        }
    }

    /// Draws a string expression and the property its values come from.
    fn string_expr(&mut self, depth: u32) -> (Expr, usize) {
        if depth > 0 && self.rng.percent(35) {
            let (inner, base) = self.string_expr(depth - 1);
            let expr = match self.rng.below(6) {
                0 => func("tolower", vec![inner]),
                1 => func("toupper", vec![inner]),
                2 => func("trim", vec![inner]),
                3 => func("substring", vec![inner, int(self.rng.between(-2, 8))]),
                4 => func(
                    "substring",
                    vec![inner, int(self.rng.between(-2, 8)), int(self.rng.between(-1, 6))],
                ),
                _ => {
                    let other_base = *self.rng.pick(&STRING_PROPERTIES);
                    let other = if self.rng.percent(50) {
                        self.string_literal(other_base)
                    } else {
                        Expr::Property(other_base)
                    };
                    func("concat", vec![inner, other])
                }
            };
            return (expr, base);
        }
        let base = if self.rng.percent(10) { ID } else { *self.rng.pick(&STRING_PROPERTIES) };
        (Expr::Property(base), base)
    }

    /// Draws a string value likely to meet the values of `base`: one of them, a prefix of one,
    /// one of another property, or the empty string.
    fn string_literal_text(&mut self, base: usize) -> String {
        let own = self.pool_text(base);
        match self.rng.below(10) {
            0..=5 => own,
            6 | 7 => own.chars().take(self.rng.below(4)).collect(),
            8 => {
                let other = *self.rng.pick(&STRING_PROPERTIES);
                self.pool_text(other)
            }
            _ => String::new(),
        }
    }

    fn string_literal(&mut self, base: usize) -> Expr {
        let text = self.string_literal_text(base);
        string(&text)
    }

    fn pool_text(&mut self, property: usize) -> String {
        if property == ID {
            return self.dataset.rows[self.rng.below(ROW_COUNT)].id.clone();
        }
        let texts: Vec<String> = string_pool(property).into_iter().flatten().collect();
        self.rng.pick(&texts).clone()
    }

    /// Draws a needle for contains, startswith, endswith and indexof: a piece of a value of
    /// `base`, possibly empty, or a character that SQL LIKE or URLs treat specially.
    fn needle(&mut self, base: usize) -> String {
        if self.rng.percent(15) {
            return (*self.rng.pick(&["%", "_", "'", " ", "é", "+", "&", "#", "''"])).to_owned();
        }
        let chars: Vec<char> = self.pool_text(base).chars().collect();
        let start = self.rng.below(chars.len() + 1);
        let length = self.rng.below(4).min(chars.len() - start);
        chars[start..start + length].iter().collect()
    }

    /// Draws a DateTimeOffset literal near an instant of the data set, at a random offset.
    fn instant_literal(&mut self) -> Expr {
        let base = *self.rng.pick(&self.dataset.instants);
        let shift = *self.rng.pick(&[0, 0, 0, 1, -1, TICKS_PER_SECOND, -TICKS_PER_DAY]);
        let ticks = (base + shift).clamp(MIN_TICKS, MAX_TICKS);
        instant(&write_instant_randomly(&mut self.rng, ticks))
    }

    fn date_literal(&mut self) -> Expr {
        let base = *self.rng.pick(&self.dataset.instants);
        let days = base.div_euclid(TICKS_PER_DAY) + self.rng.between(-1, 1);
        let (year, month, day) = civil_from_days(
            days.clamp(MIN_TICKS.div_euclid(TICKS_PER_DAY), MAX_TICKS.div_euclid(TICKS_PER_DAY)),
        );
        date(&format!("{year:04}-{month:02}-{day:02}"))
    }

    fn time_of_day_literal(&mut self) -> Expr {
        let base = *self.rng.pick(&self.dataset.instants);
        let shift = *self.rng.pick(&[0, 0, 1, -TICKS_PER_SECOND, 60 * TICKS_PER_SECOND]);
        let of_day = (base + shift).rem_euclid(TICKS_PER_DAY);
        let seconds = of_day / TICKS_PER_SECOND;
        let mut text = format!("{:02}:{:02}", seconds / 3600, seconds / 60 % 60);
        let digits = needed_digits(of_day);
        if seconds % 60 != 0 || digits > 0 || self.rng.percent(50) {
            text.push_str(&format!(":{:02}", seconds % 60));
            text.push_str(&format_fraction(of_day % TICKS_PER_SECOND, digits));
        }
        time_of_day(&text)
    }

    fn order_key(&mut self) -> OrderKey {
        let expr = if self.rng.percent(75) {
            Expr::Property(self.rng.below(PROPERTIES.len()))
        } else {
            match self.rng.below(7) {
                0 => func("length", vec![Expr::Property(*self.rng.pick(&STRING_PROPERTIES))]),
                1 => func("tolower", vec![Expr::Property(*self.rng.pick(&STRING_PROPERTIES))]),
                2 => func("year", vec![Expr::Property(*self.rng.pick(&DATE_TIMES))]),
                3 => func("date", vec![Expr::Property(*self.rng.pick(&DATE_TIMES))]),
                4 => binary_op(Op::Mod, Expr::Property(*self.rng.pick(&COUNTERS)), int(3)),
                5 => func("fractionalseconds", vec![Expr::Property(*self.rng.pick(&DATE_TIMES))]),
                _ => func(
                    "concat",
                    vec![
                        Expr::Property(*self.rng.pick(&STRING_PROPERTIES)),
                        Expr::Property(*self.rng.pick(&STRING_PROPERTIES)),
                    ],
                ),
            }
        };
        let direction = *self.rng.pick(&[Direction::Unwritten, Direction::Asc, Direction::Desc]);
        OrderKey { expr, direction }
    }
}

fn binary_op(op: Op, left: Expr, right: Expr) -> Expr {
    Expr::Binary(op, Box::new(left), Box::new(right))
}

// ---------------------------------------------------------------------------------------------
// Running cases against the server.

/// What a task needs to send requests to the server under test.
#[derive(Clone, Debug)]
struct Endpoint {
    client: reqwest::Client,
    token: String,
}

/// Starts a server and creates every row of `dataset` through the Graph view.
async fn start_with_dataset(dataset: &Dataset) -> (TestServer, Endpoint) {
    let server = TestServer::start().await;
    let endpoint = Endpoint { client: server.client.clone(), token: server.token().to_owned() };
    let url = server.url(GRAPH);

    for chunk in dataset.rows.chunks(CREATE_CONCURRENCY) {
        let mut tasks = JoinSet::new();
        for row in chunk {
            let request = endpoint.client.post(&url).bearer_auth(&endpoint.token).json(&row.body);
            let body = row.body.clone();
            tasks.spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                if status != 201 {
                    let text = response.text().await.unwrap_or_default();
                    panic!("creating {body} returned {status}: {text}");
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    }
    (server, endpoint)
}

/// Runs the cases, a few at a time, and panics with a report of those that failed. `run`
/// checks one case and returns its failure report.
async fn run_cases<C, F, Fut>(cases: Vec<C>, seed: u64, run: F)
where
    F: Fn(C) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let total = cases.len();
    let mut pending = cases.into_iter();
    let mut tasks = JoinSet::new();
    let mut failures: Vec<String> = Vec::new();

    loop {
        while tasks.len() < QUERY_CONCURRENCY {
            let Some(case) = pending.next() else { break };
            tasks.spawn(run(case));
        }
        let Some(result) = tasks.join_next().await else { break };
        if let Err(failure) = result.unwrap() {
            failures.push(failure);
        }
    }

    // Each report starts with the case's label, so sorting puts them in case order.
    if !failures.is_empty() {
        failures.sort();
        let reported: Vec<&str> =
            failures.iter().take(REPORTED_FAILURES).map(String::as_str).collect();
        panic!(
            "{} of {total} cases differ from the reference (seed {seed:#x}; rerun with \
             BEACON_DIFF_SEED={seed:#x}). The first {}:\n\n{}",
            failures.len(),
            reported.len(),
            reported.join("\n\n")
        );
    }
}

/// Runs the query cases of `$filter` and the other options against the server.
async fn run_query_cases(endpoint: &Endpoint, rows: Arc<Vec<Row>>, cases: Vec<Case>, seed: u64) {
    run_cases(cases, seed, |case| {
        let endpoint = endpoint.clone();
        let rows = Arc::clone(&rows);
        async move {
            let outcome = run_case(&endpoint, &rows, &case).await;
            outcome.map_err(|problem| format!("{}\n  {problem}", case.describe()))
        }
    })
    .await;
}

/// Sends one case, following next links, and compares the result with the reference.
async fn run_case(endpoint: &Endpoint, rows: &[Row], case: &Case) -> Result<(), String> {
    if case.count_segment {
        return check_count_segment(endpoint, case).await;
    }
    let pages =
        read_pages(endpoint, &case.url, case.page_size, case.count, case.expected_count).await?;

    // Compare the ids in order, then every expected property value.
    let expected: Vec<&Row> = case.expected_rows.iter().map(|i| &rows[*i]).collect();
    check_entities(&pages, &expected, &case.properties)
}

/// Compares entities with the expected rows: first their ids in order, then every expected
/// property value.
fn check_entities(
    pages: &Pages,
    expected: &[&Row],
    properties: &BTreeSet<usize>,
) -> Result<(), String> {
    let expected_ids: Vec<&str> = expected.iter().map(|row| row.id.as_str()).collect();
    let actual_ids: Vec<&str> =
        pages.rows.iter().map(|entity| entity["id"].as_str().unwrap_or("<no id>")).collect();
    if expected_ids != actual_ids {
        let first = expected_ids.iter().zip(&actual_ids).position(|(e, a)| e != a);
        let first = first.unwrap_or(expected_ids.len().min(actual_ids.len()));
        return Err(format!(
            "ids differ from index {first} on ({} pages)\n  expected {} ids: {expected_ids:?}\n  \
             actual {} ids: {actual_ids:?}",
            pages.texts.len(),
            expected_ids.len(),
            actual_ids.len()
        ));
    }
    for (entity, row) in pages.rows.iter().zip(expected) {
        check_entity(entity, row, properties)?;
    }
    Ok(())
}

/// The pages of a response that a client reads by following next links.
#[derive(Debug)]
struct Pages {
    /// The parsed first page.
    first: Value,
    /// The text of each page, in order.
    texts: Vec<String>,
    /// The items of the `value` arrays of all pages, in order.
    rows: Vec<Value>,
}

/// Reads the response to `url` and every page its next links lead to. Checks the size of each
/// page against the preferred page size, and its `@odata.count` against `expected_count`.
async fn read_pages(
    endpoint: &Endpoint,
    url: &str,
    page_size: Option<usize>,
    count: Option<bool>,
    expected_count: usize,
) -> Result<Pages, String> {
    let limit = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    let mut url = url.to_owned();
    let mut first = None;
    let mut texts = Vec::new();
    let mut rows: Vec<Value> = Vec::new();
    loop {
        let number = texts.len();
        let (page, text) = get_page(endpoint, &url, page_size).await.map_err(|problem| {
            if number == 0 { problem } else { format!("page {number} at {url}: {problem}") }
        })?;
        let values = page["value"].as_array().ok_or_else(|| format!("no value array: {page}"))?;
        if values.len() > limit {
            return Err(format!(
                "page {number} of {url} has {} rows, more than {limit}",
                values.len()
            ));
        }
        check_count_annotation(count, expected_count, &page, number)?;
        rows.extend(values.iter().cloned());
        texts.push(text);
        let next = page.get("@odata.nextLink").cloned();
        first.get_or_insert(page);
        match next {
            None => break,
            Some(Value::String(next)) => url = next,
            Some(other) => return Err(format!("@odata.nextLink is not a string: {other}")),
        }
        if texts.len() > ROW_COUNT + 2 {
            return Err(format!("more than {} pages; the next links do not end", texts.len()));
        }
    }
    let first = first.expect("the loop reads at least one page");
    Ok(Pages { first, texts, rows })
}

/// Sends a GET and returns the parsed body of a 200 response with its text.
async fn get_page(
    endpoint: &Endpoint,
    url: &str,
    page_size: Option<usize>,
) -> Result<(Value, String), String> {
    let mut request = endpoint.client.get(url).bearer_auth(&endpoint.token);
    if let Some(size) = page_size {
        request = request.header("prefer", format!("odata.maxpagesize={size}"));
    }
    let response = request.send().await.map_err(|error| format!("the request failed: {error}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|error| format!("reading failed: {error}"))?;
    if status != 200 {
        return Err(format!("returned {status}: {text}"));
    }
    let page = serde_json::from_str(&text)
        .map_err(|error| format!("the body is not JSON ({error}): {text}"))?;
    Ok((page, text))
}

/// Checks `@odata.count`: required on the first page with `$count=true`, equal to the filtered
/// row count wherever it appears, and absent without `$count=true`.
fn check_count_annotation(
    count: Option<bool>,
    expected_count: usize,
    page: &Value,
    page_number: usize,
) -> Result<(), String> {
    match (count, page.get("@odata.count")) {
        (Some(true), None) if page_number == 0 => {
            Err("@odata.count is missing with $count=true".to_owned())
        }
        (Some(true), Some(value)) if value.as_u64() != Some(expected_count as u64) => {
            Err(format!("@odata.count is {value} on page {page_number}, expected {expected_count}"))
        }
        (Some(false) | None, Some(value)) => {
            Err(format!("@odata.count {value} without $count=true"))
        }
        _ => Ok(()),
    }
}

async fn check_count_segment(endpoint: &Endpoint, case: &Case) -> Result<(), String> {
    let response = endpoint
        .client
        .get(&case.url)
        .bearer_auth(&endpoint.token)
        .send()
        .await
        .map_err(|error| format!("GET failed: {error}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.unwrap_or_default();
    if status != 200 {
        return Err(format!("returned {status}: {text}"));
    }
    if !content_type.starts_with("text/plain") {
        return Err(format!("content type {content_type}, expected text/plain"));
    }
    if text.trim() != case.expected_count.to_string() {
        return Err(format!("count {text:?}, expected {}", case.expected_count));
    }
    Ok(())
}

/// Checks that an entity contains exactly the expected properties (besides `@` annotations) with
/// the row's values: strings exactly, Int64 exactly as integers, date-times as the same instant
/// written in UTC with `Z`.
fn check_entity(entity: &Value, row: &Row, properties: &BTreeSet<usize>) -> Result<(), String> {
    let object = entity.as_object().ok_or_else(|| format!("entity is not an object: {entity}"))?;
    let actual_names: BTreeSet<&str> =
        object.keys().map(String::as_str).filter(|name| !name.starts_with('@')).collect();
    let expected_names: BTreeSet<&str> = properties.iter().map(|i| PROPERTIES[*i].0).collect();
    if actual_names != expected_names {
        return Err(format!(
            "entity {} has properties {actual_names:?}, expected {expected_names:?}",
            row.id
        ));
    }

    for index in properties {
        let (name, _) = PROPERTIES[*index];
        let actual = &object[name];
        let matches = match (&row.values[*index], actual) {
            (Val::Null, Value::Null) => true,
            (Val::String(expected), Value::String(text)) => expected == text,
            (Val::Int(expected), Value::Number(number)) => number.as_i64() == Some(*expected),
            (Val::DateTime(expected), Value::String(text)) => {
                text.ends_with('Z') && parse_instant(text) == Some(*expected)
            }
            _ => false,
        };
        if !matches {
            return Err(format!(
                "entity {} has {name} = {actual}, expected {:?}",
                row.id, row.values[*index]
            ));
        }
    }
    Ok(())
}

/// Shrinks the preferred page size where it would need more than [`PAGE_BUDGET`] pages.
fn fit_page_budget(query: &mut Query, rows: &[Row]) {
    let Some(size) = query.page_size else { return };
    let Ok(matching) = query.evaluate(rows, now_ticks()) else { return };
    let remaining = matching.len().saturating_sub(query.skip.unwrap_or(0));
    let returned = remaining.min(query.top.unwrap_or(usize::MAX));
    if returned / size > PAGE_BUDGET {
        query.page_size = Some(returned.div_ceil(PAGE_BUDGET));
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn calendar_helpers_match_known_dates() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(1969, 12, 31), -1);
    assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    assert_eq!(civil_from_days(days_from_civil(1, 1, 1)), (1, 1, 1));
    assert_eq!(
        format_instant(parse_instant("2023-12-31T23:30:00Z").unwrap(), 330, 0, false),
        "2024-01-01T05:00:00+05:30"
    );
    assert_eq!(parse_instant("2024-01-01T05:00:00+05:30"), parse_instant("2023-12-31T23:30:00Z"));
    assert_eq!(format_instant(MAX_TICKS, 0, 7, true), "9999-12-31T23:59:59.9999999Z");
    assert_eq!(parse_decimal("2.5E1"), Decimal { units: 25, scale: 0 });
    assert_eq!(parse_decimal("5e-1"), Decimal { units: 5, scale: 1 });
}

#[tokio::test]
async fn random_queries_match_reference() {
    let seed = run_seed();
    let dataset = Dataset::generate(seed);
    let (server, endpoint) = start_with_dataset(&dataset).await;
    let collection_url = server.url(GRAPH);

    // Draw the cases, redrawing any whose reference evaluation overflows or divides by zero.
    let mut generator = Generator { rng: SplitMix64::new(seed ^ 0xCA5E), dataset: &dataset };
    let mut cases = Vec::with_capacity(RANDOM_CASES);
    for number in 0..RANDOM_CASES {
        let mut attempts = 0;
        let case = loop {
            attempts += 1;
            assert!(attempts < 200, "case {number}: every drawn query faults");
            let mut query = generator.query();
            fit_page_budget(&mut query, &dataset.rows);
            let label = format!("random case {number:03} (seed {seed:#x})");
            if let Ok(case) = Case::build(label, &query, &dataset.rows, &collection_url) {
                break case;
            }
        };
        cases.push(case);
    }

    let rows = Arc::new(dataset.rows);
    run_query_cases(&endpoint, rows, cases, seed).await;
}

/// Builds the hand-written filters: each operator, function and null rule at least once, on
/// values the data set is known to hold.
fn listed_filters() -> Vec<Expr> {
    let name = "tenantDisplayName";
    let errors = || property("numberOfErrorDevices");
    vec![
        // Strings: literals with quotes, URL delimiters and non-ASCII text; null rules.
        cmp(name, "eq", string("O'Brien & Sons")),
        cmp(name, "eq", string("it''s doubled")),
        cmp(name, "eq", string("A+B")),
        cmp(name, "eq", string("100% Pure")),
        cmp(name, "eq", string("#1 Hashtag")),
        cmp(name, "eq", string("a%20b")),
        cmp(name, "eq", string("日本の会社")),
        cmp(name, "eq", string("😀 Smile")),
        cmp(name, "eq", string("")),
        cmp(name, "ne", string("Contoso")),
        cmp(name, "gt", string("Contoso")),
        cmp(name, "ge", string("contoso")),
        cmp(name, "lt", string("b")),
        cmp(name, "le", string("")),
        cmp(name, "gt", string("ｱ")),
        cmp(name, "lt", string("😀")),
        cmp(name, "eq", null()),
        binary(null(), "ne", property(name)),
        cmp(name, "ge", null()),
        cmp(name, "le", null()),
        cmp(name, "gt", null()),
        cmp(name, "lt", null()),
        cmp(name, "ge", property("compliancePolicyName")),
        cmp(name, "eq", property("compliancePolicyName")),
        cmp("id", "eq", string("row-007")),
        cmp("id", "gt", string("row-2")),
        // Int64 past 2^53, at the limits, and against decimals and doubles.
        cmp("numberOfCompliantDevices", "eq", int(TWO_POW_53 + 1)),
        cmp("numberOfCompliantDevices", "ne", int(TWO_POW_53)),
        cmp("numberOfCompliantDevices", "gt", int(TWO_POW_53)),
        cmp("numberOfCompliantDevices", "eq", int(i64::MAX)),
        cmp("numberOfCompliantDevices", "ge", int(i64::MAX - 1)),
        cmp("numberOfErrorDevices", "gt", int(i64::MIN)),
        cmp("numberOfErrorDevices", "gt", number("2.5")),
        cmp("numberOfErrorDevices", "ge", number("2.0")),
        cmp("numberOfErrorDevices", "eq", number("2.0")),
        cmp("numberOfErrorDevices", "eq", number("2.5")),
        cmp("numberOfErrorDevices", "lt", number("1e2")),
        cmp("numberOfErrorDevices", "ge", number("2.5E1")),
        cmp("numberOfErrorDevices", "le", number("-0.5")),
        cmp("numberOfCompliantDevices", "gt", number("9007199254740992.5")),
        cmp("numberOfCompliantDevices", "lt", number("9007199254740992.5")),
        cmp("numberOfCompliantDevices", "gt", number("9223372036854775806.9")),
        cmp("numberOfErrorDevices", "eq", property("numberOfNonCompliantDevices")),
        cmp("numberOfErrorDevices", "le", property("numberOfNonCompliantDevices")),
        // DateTimeOffset literals at several offsets, and null rules between properties.
        cmp("policyModifiedDateTime", "eq", instant("2023-12-31T23:30:00Z")),
        cmp("policyModifiedDateTime", "eq", instant("2024-01-01T05:00:00+05:30")),
        cmp("policyModifiedDateTime", "eq", instant("2023-12-31T15:30:00.000-08:00")),
        cmp("policyModifiedDateTime", "lt", instant("2020-01-01T00:00:00-08:00")),
        cmp("lastRefreshedDateTime", "gt", instant("1999-12-31T23:59:59.9999998Z")),
        cmp("lastRefreshedDateTime", "ge", instant("2024-03-01T13:00:00.1234567+05:30")),
        cmp("policyModifiedDateTime", "lt", property("lastRefreshedDateTime")),
        cmp("policyModifiedDateTime", "ge", property("lastRefreshedDateTime")),
        cmp("lastRefreshedDateTime", "eq", func("maxdatetime", vec![])),
        cmp("policyModifiedDateTime", "eq", func("mindatetime", vec![])),
        cmp("lastRefreshedDateTime", "lt", func("now", vec![])),
        cmp("lastRefreshedDateTime", "gt", func("now", vec![])),
        // Three-valued logic.
        binary(
            cmp(name, "eq", string("Contoso")),
            "or",
            func("contains", vec![property("compliancePolicyName"), string("a")]),
        ),
        not(func("contains", vec![property(name), string("o")])),
        not(paren(binary(
            func("contains", vec![property(name), string("o")]),
            "and",
            binary(errors(), "gt", int(1)),
        ))),
        not(paren(binary(
            func("contains", vec![property(name), string("o")]),
            "or",
            func("contains", vec![property("compliancePolicyName"), string("e")]),
        ))),
        binary(
            func("startswith", vec![property(name), string("C")]),
            "and",
            not(func("endswith", vec![property("compliancePolicyName"), string("e")])),
        ),
        // Membership.
        member(property("compliancePolicyPlatform"), vec![string("iOS"), string("android")]),
        member(property("compliancePolicyPlatform"), vec![]),
        member(property("compliancePolicyPlatform"), vec![string("iOS"), null()]),
        member(property("numberOfErrorDevices"), vec![int(0), int(TWO_POW_53 + 1)]),
        not(member(property("compliancePolicyPlatform"), vec![string("iOS")])),
        member(property("tenantId"), vec![guid(GUIDS[1]), string("tenant-é")]),
        // Arithmetic on Int64.
        binary(binary(errors(), "add", int(1)), "eq", int(3)),
        binary(binary(errors(), "sub", int(5)), "lt", int(0)),
        binary(binary(errors(), "mul", int(3)), "ge", int(21)),
        binary(binary(errors(), "div", int(2)), "eq", int(1)),
        binary(binary(negate(errors()), "div", int(2)), "eq", int(-1)),
        binary(binary(paren(binary(errors(), "sub", int(10))), "mod", int(3)), "eq", int(-1)),
        binary(binary(errors(), "mod", int(-3)), "eq", int(1)),
        binary(negate(property("numberOfNonCompliantDevices")), "lt", int(-5)),
        binary(binary(errors(), "add", property("numberOfNonCompliantDevices")), "gt", int(10)),
        binary(binary(binary(errors(), "sub", int(1)), "mul", int(2)), "eq", int(2)),
        // String functions, counted in code points.
        func("contains", vec![property(name), string("")]),
        func("contains", vec![property(name), string("%")]),
        func("contains", vec![property(name), string("_")]),
        func("contains", vec![property(name), string("'")]),
        func("contains", vec![property(name), string("''")]),
        func("startswith", vec![property(name), string("Con")]),
        func("startswith", vec![property("compliancePolicyName"), string("é")]),
        func("endswith", vec![property(name), string("Sons")]),
        func("endswith", vec![property(name), string("")]),
        binary(func("length", vec![property(name)]), "eq", int(5)),
        binary(func("length", vec![property(name)]), "eq", int(7)),
        binary(func("indexof", vec![property(name), string("o")]), "eq", int(1)),
        binary(func("indexof", vec![property(name), string("zzz")]), "eq", int(-1)),
        binary(func("indexof", vec![property(name), string("")]), "eq", int(0)),
        binary(func("indexof", vec![property(name), string("本")]), "eq", int(1)),
        binary(func("indexof", vec![property(name), string("Smile")]), "eq", int(2)),
        binary(func("substring", vec![property(name), int(1)]), "eq", string("ontoso")),
        binary(func("substring", vec![property(name), int(0), int(2)]), "eq", string("Co")),
        binary(func("substring", vec![property(name), int(-3), int(2)]), "eq", string("Co")),
        binary(func("substring", vec![property(name), int(50)]), "eq", string("")),
        binary(func("substring", vec![property(name), int(1), int(-1)]), "eq", string("")),
        binary(func("substring", vec![property(name), int(1), int(1)]), "eq", string("本")),
        binary(func("substring", vec![property(name), int(0), int(1)]), "eq", string("😀")),
        binary(func("tolower", vec![property(name)]), "eq", string("contoso")),
        binary(func("tolower", vec![property(name)]), "eq", string("äöü")),
        binary(func("toupper", vec![property(name)]), "eq", string("STRASSE")),
        binary(func("toupper", vec![property(name)]), "eq", string("CAFÉ MÜLLER")),
        binary(func("tolower", vec![property(name)]), "eq", string("i\u{307}stanbul")),
        binary(func("tolower", vec![property("compliancePolicyName")]), "eq", string("école")),
        binary(func("trim", vec![property(name)]), "eq", string("padded")),
        binary(func("trim", vec![property(name)]), "eq", string("wide space")),
        binary(func("trim", vec![property(name)]), "eq", string("tabbed")),
        binary(
            func("length", vec![func("trim", vec![property(name)])]),
            "lt",
            func("length", vec![property(name)]),
        ),
        binary(
            func("concat", vec![property(name), property("compliancePolicyPlatform")]),
            "eq",
            string("ContosoiOS"),
        ),
        binary(
            func("concat", vec![property(name), string(" & ")]),
            "eq",
            string("O'Brien & Sons & "),
        ),
        binary(
            func("concat", vec![property(name), property("compliancePolicyName")]),
            "eq",
            null(),
        ),
        // Date parts of the UTC instant.
        binary(func("year", vec![property("policyModifiedDateTime")]), "eq", int(2023)),
        binary(func("month", vec![property("policyModifiedDateTime")]), "eq", int(12)),
        binary(func("day", vec![property("policyModifiedDateTime")]), "eq", int(31)),
        binary(func("hour", vec![property("policyModifiedDateTime")]), "eq", int(23)),
        binary(func("minute", vec![property("policyModifiedDateTime")]), "eq", int(30)),
        binary(func("second", vec![property("lastRefreshedDateTime")]), "gt", int(30)),
        binary(func("year", vec![property("lastRefreshedDateTime")]), "eq", int(9999)),
        binary(func("day", vec![property("lastRefreshedDateTime")]), "eq", int(29)),
        binary(func("date", vec![property("policyModifiedDateTime")]), "eq", date("2023-12-31")),
        binary(func("date", vec![property("lastRefreshedDateTime")]), "eq", date("2024-02-29")),
        binary(func("date", vec![property("policyModifiedDateTime")]), "lt", date("2000-01-01")),
        binary(
            func("time", vec![property("policyModifiedDateTime")]),
            "eq",
            time_of_day("23:30:00"),
        ),
        binary(func("time", vec![property("policyModifiedDateTime")]), "lt", time_of_day("06:00")),
        binary(
            func("time", vec![property("lastRefreshedDateTime")]),
            "eq",
            time_of_day("07:30:00.1234567"),
        ),
        binary(
            func("fractionalseconds", vec![property("lastRefreshedDateTime")]),
            "gt",
            number("0.5"),
        ),
        binary(func("fractionalseconds", vec![property("lastRefreshedDateTime")]), "eq", int(0)),
        binary(
            func("fractionalseconds", vec![property("lastRefreshedDateTime")]),
            "eq",
            number("0.5"),
        ),
        binary(func("totaloffsetminutes", vec![property("policyModifiedDateTime")]), "eq", int(0)),
        binary(func("totaloffsetminutes", vec![property("policyModifiedDateTime")]), "ne", int(0)),
        // GUID literals against strings, in either case.
        cmp("tenantId", "eq", guid(GUIDS[0])),
        cmp("tenantId", "eq", guid(&GUIDS[0].to_ascii_uppercase())),
        cmp("tenantId", "ne", guid(GUIDS[0])),
        cmp("tenantId", "gt", guid(GUIDS[0])),
        cmp("compliancePolicyId", "eq", guid(GUIDS[1])),
        binary(guid(GUIDS[2]), "eq", property("tenantId")),
    ]
}

/// Builds the hand-written queries beyond plain filters: orders over nulls, ties and
/// expressions, `$select`, `$top`, `$skip`, `$count` and `/$count`.
fn listed_queries() -> Vec<Query> {
    let mut queries: Vec<Query> = vec![Query::default()];
    queries.extend(listed_filters().into_iter().map(Query::filter));

    // Every property in both directions, so nulls and ties are ordered in each type.
    for (name, _) in PROPERTIES {
        queries.push(Query::orderby(vec![asc(property(name))]));
        queries.push(Query::orderby(vec![desc(property(name))]));
    }
    queries.push(Query::orderby(vec![
        desc(property("compliancePolicyPlatform")),
        OrderKey { expr: property("numberOfErrorDevices"), direction: Direction::Unwritten },
        desc(property("policyModifiedDateTime")),
    ]));
    queries.push(Query::orderby(vec![desc(func("length", vec![property("tenantDisplayName")]))]));
    queries.push(Query::orderby(vec![asc(func("tolower", vec![property("tenantDisplayName")]))]));
    queries.push(Query::orderby(vec![asc(func("date", vec![property("lastRefreshedDateTime")]))]));
    queries.push(Query::orderby(vec![
        desc(binary(property("numberOfNonCompliantDevices"), "mod", int(3))),
        asc(property("tenantId")),
    ]));

    // The other options, alone and combined, with small pages.
    let select = |names: &[&str]| {
        Some(Select::Properties(names.iter().map(|n| property_index(n)).collect()))
    };
    queries.push(Query { select: select(&["tenantDisplayName"]), ..Query::default() });
    queries.push(Query {
        select: select(&["numberOfCompliantDevices", "lastRefreshedDateTime", "id"]),
        page_size: Some(40),
        ..Query::default()
    });
    queries.push(Query { select: Some(Select::Star), top: Some(5), ..Query::default() });
    queries.push(Query { top: Some(0), count: Some(true), ..Query::default() });
    queries.push(Query { skip: Some(1000), count: Some(true), ..Query::default() });
    queries.push(Query { skip: Some(295), ..Query::default() });
    queries.push(Query {
        filter: Some(cmp("tenantDisplayName", "ne", null())),
        orderby: vec![desc(property("tenantDisplayName"))],
        select: select(&["tenantDisplayName"]),
        top: Some(17),
        skip: Some(3),
        count: Some(true),
        page_size: Some(4),
        count_segment: false,
    });
    queries.push(Query { count: Some(false), page_size: Some(1000), ..Query::default() });
    queries.push(Query { count_segment: true, ..Query::default() });
    queries.push(Query {
        filter: Some(cmp("numberOfErrorDevices", "gt", number("2.5"))),
        count_segment: true,
        ..Query::default()
    });
    queries
}

#[tokio::test]
async fn listed_queries_match_reference() {
    let seed = DEFAULT_SEED;
    let dataset = Dataset::generate(seed);
    let (server, endpoint) = start_with_dataset(&dataset).await;
    let collection_url = server.url(GRAPH);

    let mut cases = Vec::new();
    for (number, query) in listed_queries().iter().enumerate() {
        let label = format!("listed case {number:03}");
        let case = Case::build(label, query, &dataset.rows, &collection_url)
            .unwrap_or_else(|fault| panic!("listed case {number} faults: {fault:?}"));
        cases.push(case);
    }

    // The data set must hold what the listed filters look for, or they test nothing.
    let nonempty = cases.iter().filter(|case| case.expected_count > 0).count();
    assert!(
        nonempty * 10 >= cases.len() * 8,
        "only {nonempty} of {} listed cases match rows",
        cases.len()
    );

    let rows = Arc::new(dataset.rows);
    run_query_cases(&endpoint, rows, cases, seed).await;
}

// ---------------------------------------------------------------------------------------------
// Rejected queries.

/// Starts a server with three rows: one whose counters are 0, one at the Int64 limit, and one
/// of nulls, so that arithmetic faults happen on stored values.
async fn start_fault_fixture() -> TestServer {
    let server = TestServer::start().await;
    let bodies = [
        json!({"id": "zero", "tenantDisplayName": "x", "numberOfCompliantDevices": 5, "numberOfErrorDevices": 0}),
        json!({"id": "max", "numberOfCompliantDevices": 1, "numberOfErrorDevices": i64::MAX}),
        json!({"id": "nulls"}),
    ];
    for body in &bodies {
        let response = server.create(GRAPH, body).await;
        assert_eq!(response.status(), 201, "creating {body}");
    }
    server
}

/// Sends a GET with the given unencoded query options to the collection (or its `/$count`),
/// asserts a 400 in Graph error shape, and returns the message.
async fn assert_rejected(
    server: &TestServer,
    count_segment: bool,
    options: &[(&str, &str)],
) -> String {
    let query: Vec<String> = options
        .iter()
        .map(|(name, value)| format!("{name}={}", encode_query_value(value)))
        .collect();
    let path = if count_segment { format!("{GRAPH}/$count") } else { GRAPH.to_owned() };
    let url = format!("{path}?{}", query.join("&"));
    let response = server.request(Method::GET, &url).send().await.unwrap();
    let status = response.status().as_u16();
    if status != 400 {
        let body = response.text().await.unwrap_or_default();
        panic!("GET {url} {options:?}: expected status 400, got {status} with body {body}");
    }
    let message = assert_graph_error(response, 400, "BadRequest").await;

    // A 400 for an option the server does not implement would pass for the wrong reason.
    assert!(!message.contains("not supported yet"), "GET {url} {options:?}: {message}");
    message
}

#[tokio::test]
async fn unknown_property_names_are_rejected() {
    let server = start_fault_fixture().await;

    for (option, value) in [
        ("$filter", "nosuch eq 1"),
        ("$filter", "TenantId eq 'a'"),
        ("$filter", "tenantid eq 'a'"),
        ("$filter", "contains(nosuch, 'a')"),
        ("$orderby", "nosuch"),
        ("$orderby", "tenantId,Nosuch desc"),
        ("$orderby", "length(nosuch)"),
        ("$select", "nosuch"),
        ("$select", "tenantId,TenantId"),
    ] {
        assert_rejected(&server, false, &[(option, value)]).await;
    }
    assert_rejected(&server, true, &[("$filter", "nosuch eq 1")]).await;
}

#[tokio::test]
async fn type_mismatches_are_rejected() {
    let server = start_fault_fixture().await;

    for filter in [
        "tenantId eq 1",
        "numberOfErrorDevices eq 'a'",
        "policyModifiedDateTime eq 'x'",
        "lastRefreshedDateTime gt 5",
        "numberOfErrorDevices eq 2024-03-01T00:00:00Z",
        "tenantDisplayName lt 2024-03-01T00:00:00Z",
        "numberOfErrorDevices eq 7a3b0c1d-0000-4000-8000-000000000001",
        "tenantId in (1, 2)",
        "contains(numberOfErrorDevices, 'a')",
        "length(numberOfErrorDevices) eq 1",
        "year(tenantId) eq 2024",
        "tenantId add 1 eq 2",
        "substring(tenantId, 'a') eq 'b'",
    ] {
        assert_rejected(&server, false, &[("$filter", filter)]).await;
    }
}

#[tokio::test]
async fn overflow_and_division_by_zero_are_rejected() {
    let server = start_fault_fixture().await;

    for filter in [
        "numberOfErrorDevices add 1 gt 0",
        "numberOfErrorDevices mul 2 gt 0",
        "-numberOfErrorDevices sub 2 lt 0",
        "9223372036854775807 add 1 gt 0",
        "(-9223372036854775807 sub 1) div -1 gt 0",
        "numberOfErrorDevices div 0 eq 1",
        "numberOfErrorDevices mod 0 eq 1",
        "numberOfCompliantDevices div numberOfErrorDevices gt 0",
        "numberOfCompliantDevices mod numberOfErrorDevices gt 0",
    ] {
        assert_rejected(&server, false, &[("$filter", filter)]).await;
    }
    assert_rejected(&server, false, &[("$orderby", "numberOfErrorDevices add 1")]).await;
    assert_rejected(
        &server,
        false,
        &[("$orderby", "numberOfCompliantDevices div numberOfErrorDevices")],
    )
    .await;
    assert_rejected(&server, true, &[("$filter", "numberOfErrorDevices add 1 gt 0")]).await;
}

#[tokio::test]
async fn bad_top_and_skip_values_are_rejected() {
    let server = start_fault_fixture().await;

    for option in ["$top", "$skip"] {
        for value in ["-1", "abc", "1.5", "", "1e2", "2.0"] {
            let message = assert_rejected(&server, false, &[(option, value)]).await;
            assert!(message.contains(option), "{option}={value}: {message}");
        }
    }
}

#[tokio::test]
async fn bad_select_items_are_rejected() {
    let server = start_fault_fixture().await;

    for value in [
        "nosuch",
        "TenantId",
        "tenantId,",
        ",tenantId",
        "tenantId,,id",
        "tenantId eq 'a'",
        "length(tenantId)",
    ] {
        assert_rejected(&server, false, &[("$select", value)]).await;
    }
}

#[tokio::test]
async fn malformed_filter_names_a_position() {
    let server = start_fault_fixture().await;

    for filter in [
        "tenantId eq",
        "(tenantId eq 'a'",
        "tenantId eq 'abc",
        "tenantId eq 'a')",
        "numberOfErrorDevices gt 1 and",
        "tenantId eq 'a' tenantId",
        "contains(tenantId 'a')",
        "numberOfErrorDevices gt 1 2",
        "eq 'a'",
        "tenantId eq 'a' or",
    ] {
        let message = assert_rejected(&server, false, &[("$filter", filter)]).await;
        let lowercase = message.to_lowercase();
        assert!(lowercase.contains("position"), "$filter={filter}: {message}");
        assert!(message.chars().any(|c| c.is_ascii_digit()), "$filter={filter}: {message}");
    }
    assert_rejected(&server, true, &[("$filter", "tenantId eq")]).await;
}

#[tokio::test]
async fn malformed_orderby_is_rejected() {
    let server = start_fault_fixture().await;

    for value in
        ["tenantId asc desc", "tenantId,", "tenantId sideways", "tenantId desc,,id", "(tenantId"]
    {
        assert_rejected(&server, false, &[("$orderby", value)]).await;
    }
}

#[tokio::test]
async fn invalid_regex_is_rejected() {
    let server = start_fault_fixture().await;

    for pattern in ["(", "[a-", "a{2,1}"] {
        let filter = format!("matchesPattern(tenantDisplayName, '{pattern}')");
        assert_rejected(&server, false, &[("$filter", &filter)]).await;
    }
}

// ---------------------------------------------------------------------------------------------
// `$apply`: transformations and their reference evaluation.

/// Random `$apply` cases per run.
const RANDOM_APPLY_CASES: usize = 150;

/// The largest relative difference allowed between an average and the reference's exact mean
/// rounded to a double. The server adds in floating point, which may round differently.
const AVERAGE_TOLERANCE: f64 = 1e-12;

/// The properties that random cases group by.
const GROUPING_PROPERTIES: [usize; 7] =
    [TENANT_ID, PLATFORM, POLICY_TYPE, POLICY_ID, COMPLIANT, NON_COMPLIANT, ERRORS];

/// The type of a column of a grouped result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColumnKind {
    String,
    Int64,
    Double,
    DateTimeOffset,
}

impl From<Kind> for ColumnKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::String => ColumnKind::String,
            Kind::Int64 => ColumnKind::Int64,
            Kind::DateTimeOffset => ColumnKind::DateTimeOffset,
        }
    }
}

/// A named column of a grouped result.
#[derive(Clone, Debug, PartialEq)]
struct ResultColumn {
    name: String,
    kind: ColumnKind,
    /// Whether the column is an aggregate, which `$metadata` does not declare: the response
    /// then carries the type of an Int64 or DateTimeOffset value, which JSON cannot show.
    dynamic: bool,
}

impl ResultColumn {
    /// Returns the `@odata.type` a row carries for this column in minimal metadata, if any.
    fn type_annotation(&self) -> Option<&'static str> {
        match (self.dynamic, self.kind) {
            (true, ColumnKind::Int64) => Some("#Int64"),
            (true, ColumnKind::DateTimeOffset) => Some("#DateTimeOffset"),
            _ => None,
        }
    }
}

/// An aggregation method of `aggregate(...)`, besides `$count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AggregationMethod {
    Sum,
    Min,
    Max,
    Average,
    CountDistinct,
}

impl AggregationMethod {
    fn word(self) -> &'static str {
        match self {
            AggregationMethod::Sum => "sum",
            AggregationMethod::Min => "min",
            AggregationMethod::Max => "max",
            AggregationMethod::Average => "average",
            AggregationMethod::CountDistinct => "countdistinct",
        }
    }

    /// Returns the start of the aliases the generator gives the method's results.
    fn alias_stem(self) -> &'static str {
        match self {
            AggregationMethod::Sum => "total",
            AggregationMethod::Min => "low",
            AggregationMethod::Max => "high",
            AggregationMethod::Average => "mean",
            AggregationMethod::CountDistinct => "distinct",
        }
    }
}

/// One item of `aggregate(...)`.
#[derive(Clone, Debug)]
enum AggregateItem {
    /// `$count as alias`: the number of rows.
    Count { alias: String },
    /// `operand with method as alias`, with the type of the operand.
    Method { operand: Expr, kind: ColumnKind, method: AggregationMethod, alias: String },
}

impl AggregateItem {
    fn render(&self) -> String {
        match self {
            AggregateItem::Count { alias } => format!("$count as {alias}"),
            AggregateItem::Method { operand, method, alias, .. } => {
                format!("{} with {} as {alias}", operand.render(), method.word())
            }
        }
    }

    /// Returns the result column of the aggregate.
    fn column(&self) -> ResultColumn {
        let (alias, kind) = match self {
            AggregateItem::Count { alias } => (alias, ColumnKind::Int64),
            AggregateItem::Method { alias, kind, method, .. } => match method {
                AggregationMethod::Sum | AggregationMethod::CountDistinct => {
                    (alias, ColumnKind::Int64)
                }
                AggregationMethod::Average => (alias, ColumnKind::Double),
                AggregationMethod::Min | AggregationMethod::Max => (alias, *kind),
            },
        };
        ResultColumn { name: alias.clone(), kind, dynamic: true }
    }

    /// Computes the aggregate over the rows of one group by the contract: nulls are ignored,
    /// `sum`, `min`, `max` and `average` are null without values, `countdistinct` counts the
    /// distinct non-null values, and an Int64 sum outside the Int64 range is a fault.
    fn compute(&self, members: &[&Row], now: i64) -> Result<Val, Fault> {
        let (operand, method) = match self {
            AggregateItem::Count { .. } => return Ok(Val::Int(members.len() as i64)),
            AggregateItem::Method { operand, method, .. } => (operand, *method),
        };
        let mut values = Vec::with_capacity(members.len());
        for row in members {
            let value = operand.eval(row, now)?;
            if value != Val::Null {
                values.push(value);
            }
        }
        if values.is_empty() {
            return Ok(if method == AggregationMethod::CountDistinct {
                Val::Int(0)
            } else {
                Val::Null
            });
        }

        let exact_total = |values: &[Val]| -> i128 {
            values.iter().map(|value| i128::from(expect_int(value))).sum()
        };
        Ok(match method {
            AggregationMethod::Sum => {
                let total = i64::try_from(exact_total(&values)).map_err(|_| Fault::Overflow)?;
                Val::Int(total)
            }
            AggregationMethod::Average => {
                Val::Double(exact_total(&values) as f64 / values.len() as f64)
            }
            AggregationMethod::Min => values.into_iter().min_by(order_values).unwrap(),
            AggregationMethod::Max => values.into_iter().max_by(order_values).unwrap(),
            AggregationMethod::CountDistinct => {
                values.sort_by(order_values);
                values.dedup();
                Val::Int(values.len() as i64)
            }
        })
    }
}

fn expect_int(value: &Val) -> i64 {
    match value {
        Val::Int(number) => *number,
        other => panic!("the generator summed a non-integer: {other:?}"),
    }
}

/// A grouping property of `groupby`: a property, or a column of an earlier grouping.
#[derive(Clone, Debug)]
struct GroupKey {
    expr: Expr,
    kind: ColumnKind,
}

/// One transformation of `$apply`.
#[derive(Clone, Debug)]
enum Transformation {
    Identity,
    Filter(Expr),
    /// `groupby((keys))`, with `aggregate(...)` over each group unless `aggregates` is empty.
    GroupBy {
        keys: Vec<GroupKey>,
        aggregates: Vec<AggregateItem>,
    },
    Aggregate(Vec<AggregateItem>),
    OrderBy(Vec<OrderKey>),
    Top(usize),
    Skip(usize),
    TopCount(usize, Expr),
    BottomCount(usize, Expr),
}

impl Transformation {
    fn render(&self) -> String {
        let items = |items: &[AggregateItem]| {
            items.iter().map(AggregateItem::render).collect::<Vec<_>>().join(",")
        };
        match self {
            Transformation::Identity => "identity".to_owned(),
            Transformation::Filter(condition) => format!("filter({})", condition.render()),
            Transformation::GroupBy { keys, aggregates } => {
                let names: Vec<String> = keys.iter().map(|key| key.expr.render()).collect();
                let names = names.join(",");
                if aggregates.is_empty() {
                    format!("groupby(({names}))")
                } else {
                    format!("groupby(({names}),aggregate({}))", items(aggregates))
                }
            }
            Transformation::Aggregate(aggregates) => format!("aggregate({})", items(aggregates)),
            Transformation::OrderBy(keys) => format!("orderby({})", render_order(keys)),
            Transformation::Top(count) => format!("top({count})"),
            Transformation::Skip(count) => format!("skip({count})"),
            Transformation::TopCount(count, value) => {
                format!("topcount({count},{})", value.render())
            }
            Transformation::BottomCount(count, value) => {
                format!("bottomcount({count},{})", value.render())
            }
        }
    }
}

/// A relation of the reference while it runs `$apply`, with its rows in their current order.
#[derive(Clone, Debug)]
struct Table {
    /// The columns of a grouped result, or `None` while the rows are entities.
    columns: Option<Vec<ResultColumn>>,
    rows: Vec<Row>,
    /// The number of leading grouping columns, which break ties in any order of a grouped
    /// result. Entities break ties by id.
    grouping: usize,
}

impl Table {
    /// Starts from every entity, in id order.
    fn entities(rows: &[Row]) -> Table {
        let mut rows: Vec<Row> = rows
            .iter()
            .map(|row| Row { id: row.id.clone(), values: row.values.clone(), body: Value::Null })
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        Table { columns: None, rows, grouping: 0 }
    }

    fn apply(&mut self, transformation: &Transformation, now: i64) -> Result<(), Fault> {
        match transformation {
            Transformation::Identity => {}
            Transformation::Filter(condition) => self.filter(condition, now)?,
            Transformation::OrderBy(keys) => self.sort(keys, now)?,
            Transformation::Top(count) => self.rows.truncate(*count),
            Transformation::Skip(count) => {
                let count = (*count).min(self.rows.len());
                self.rows.drain(..count);
            }
            // topcount keeps the highest values with nulls lowest, bottomcount the lowest with
            // nulls first. Ties go by the tie-break.
            Transformation::TopCount(count, value) => {
                self.sort(&[desc(value.clone())], now)?;
                self.rows.truncate(*count);
            }
            Transformation::BottomCount(count, value) => {
                self.sort(&[asc(value.clone())], now)?;
                self.rows.truncate(*count);
            }
            Transformation::GroupBy { keys, aggregates } => {
                *self = self.group(keys, aggregates, now)?;
            }
            Transformation::Aggregate(aggregates) => *self = self.group(&[], aggregates, now)?,
        }
        Ok(())
    }

    /// Keeps the rows where the condition is true.
    fn filter(&mut self, condition: &Expr, now: i64) -> Result<(), Fault> {
        let mut kept = Vec::with_capacity(self.rows.len());
        for row in std::mem::take(&mut self.rows) {
            match condition.eval(&row, now)? {
                Val::Bool(true) => kept.push(row),
                Val::Bool(false) | Val::Null => {}
                other => panic!("the condition gave {other:?}"),
            }
        }
        self.rows = kept;
        Ok(())
    }

    /// Sorts by the keys, nulls first ascending and last descending, then by the tie-break.
    fn sort(&mut self, keys: &[OrderKey], now: i64) -> Result<(), Fault> {
        let mut decorated = Vec::with_capacity(self.rows.len());
        for row in std::mem::take(&mut self.rows) {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(key.expr.eval(&row, now)?);
            }
            decorated.push((values, row));
        }
        let (entities, grouping) = (self.columns.is_none(), self.grouping);
        decorated.sort_by(|(a_values, a), (b_values, b)| {
            for (key, (x, y)) in keys.iter().zip(a_values.iter().zip(b_values)) {
                let order = order_for_sort(x, y);
                let order = if key.direction == Direction::Desc { order.reverse() } else { order };
                if order != Ordering::Equal {
                    return order;
                }
            }
            if entities {
                return a.id.cmp(&b.id);
            }
            (0..grouping)
                .map(|i| order_for_sort(&a.values[i], &b.values[i]))
                .find(|order| *order != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        self.rows = decorated.into_iter().map(|(_, row)| row).collect();
        Ok(())
    }

    /// Groups the rows by the keys and computes the aggregates of each group. The groups come
    /// ordered by the keys ascending, nulls first. Without keys there is exactly one group,
    /// even over no rows.
    fn group(&self, keys: &[GroupKey], items: &[AggregateItem], now: i64) -> Result<Table, Fault> {
        // Sort the rows by their grouping values, so that each group's rows are adjacent.
        let mut keyed: Vec<(Vec<Val>, &Row)> = Vec::with_capacity(self.rows.len());
        for row in &self.rows {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(key.expr.eval(row, now)?);
            }
            keyed.push((values, row));
        }
        keyed.sort_by(|(a, _), (b, _)| {
            a.iter()
                .zip(b)
                .map(|(x, y)| order_for_sort(x, y))
                .find(|order| *order != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
        let mut groups: Vec<(Vec<Val>, Vec<&Row>)> = Vec::new();
        for (values, row) in keyed {
            match groups.last_mut() {
                Some((last, members)) if *last == values => members.push(row),
                _ => groups.push((values, vec![row])),
            }
        }
        if keys.is_empty() && groups.is_empty() {
            groups.push((Vec::new(), Vec::new()));
        }

        // One row per group: the grouping values, then the aggregates.
        let mut rows = Vec::with_capacity(groups.len());
        for (mut values, members) in groups {
            for item in items {
                values.push(item.compute(&members, now)?);
            }
            rows.push(Row { id: String::new(), values, body: Value::Null });
        }
        let mut columns: Vec<ResultColumn> = keys
            .iter()
            .map(|key| ResultColumn { name: key.expr.render(), kind: key.kind, dynamic: false })
            .collect();
        columns.extend(items.iter().map(AggregateItem::column));
        Ok(Table { columns: Some(columns), rows, grouping: keys.len() })
    }
}

/// A request with `$apply` and the options that apply to its result.
#[derive(Clone, Debug, Default)]
struct ApplyQuery {
    transformations: Vec<Transformation>,
    filter: Option<Expr>,
    orderby: Vec<OrderKey>,
    /// The names `$select` lists: columns of a grouped result, or properties or `*`.
    select: Option<Vec<String>>,
    top: Option<usize>,
    skip: Option<usize>,
    count: Option<bool>,
    page_size: Option<usize>,
}

impl ApplyQuery {
    fn new(transformations: Vec<Transformation>) -> ApplyQuery {
        ApplyQuery { transformations, ..ApplyQuery::default() }
    }

    /// Returns the query options as (name, unencoded value) pairs.
    fn options(&self) -> Vec<(&'static str, String)> {
        let apply: Vec<String> = self.transformations.iter().map(Transformation::render).collect();
        let mut options = vec![("$apply", apply.join("/"))];
        if let Some(filter) = &self.filter {
            options.push(("$filter", filter.render()));
        }
        if !self.orderby.is_empty() {
            options.push(("$orderby", render_order(&self.orderby)));
        }
        if let Some(names) = &self.select {
            options.push(("$select", names.join(",")));
        }
        if let Some(top) = self.top {
            options.push(("$top", top.to_string()));
        }
        if let Some(skip) = self.skip {
            options.push(("$skip", skip.to_string()));
        }
        if let Some(count) = self.count {
            options.push(("$count", count.to_string()));
        }
        options
    }

    /// Runs the transformations on the reference.
    fn transform(&self, rows: &[Row], now: i64) -> Result<Table, Fault> {
        let mut table = Table::entities(rows);
        for transformation in &self.transformations {
            table.apply(transformation, now)?;
        }
        Ok(table)
    }

    /// Runs the query on the reference: the transformed result after `$filter`, in the order of
    /// `$orderby` or else the order the transformations left, before `$skip` and `$top`.
    fn evaluate(&self, rows: &[Row], now: i64) -> Result<Table, Fault> {
        let mut table = self.transform(rows, now)?;
        if let Some(filter) = &self.filter {
            table.filter(filter, now)?;
        }
        if !self.orderby.is_empty() {
            table.sort(&self.orderby, now)?;
        }
        Ok(table)
    }
}

/// What the response to an `$apply` request must hold.
#[derive(Debug)]
struct ApplyExpected {
    /// The columns of a grouped result, or `None` for entities.
    columns: Option<Vec<ResultColumn>>,
    /// The positions of the columns in each grouped row, in column order.
    selected: Vec<usize>,
    /// The properties of each entity.
    properties: BTreeSet<usize>,
    /// The rows of the response in order, after `$skip` and `$top`.
    rows: Vec<Row>,
    /// The number of rows after `$filter`, for `@odata.count`.
    count: usize,
}

/// One `$apply` request with what its response must hold, or the fault that makes it a 400.
#[derive(Debug)]
struct ApplyCase {
    label: String,
    url: String,
    /// The query options unencoded, for failure messages.
    readable: String,
    page_size: Option<usize>,
    count: Option<bool>,
    expected: Result<ApplyExpected, Fault>,
}

impl ApplyCase {
    fn build(label: String, query: &ApplyQuery, rows: &[Row], collection_url: &str) -> ApplyCase {
        let expected = query.evaluate(rows, now_ticks()).map(|table| {
            let count = table.rows.len();
            let skip = query.skip.unwrap_or(0);
            let top = query.top.unwrap_or(usize::MAX);
            let rows: Vec<Row> = table.rows.into_iter().skip(skip).take(top).collect();
            let selected = match (&table.columns, &query.select) {
                (None, _) => Vec::new(),
                (Some(columns), None) => (0..columns.len()).collect(),
                (Some(columns), Some(names)) => {
                    let mut selected: Vec<usize> = names
                        .iter()
                        .map(|name| {
                            columns
                                .iter()
                                .position(|column| column.name == *name)
                                .unwrap_or_else(|| panic!("$select names no column {name}"))
                        })
                        .collect();
                    selected.sort_unstable();
                    selected.dedup();
                    selected
                }
            };
            let properties = match &query.select {
                Some(names) if table.columns.is_none() && !names.iter().any(|n| n == "*") => {
                    let mut set: BTreeSet<usize> =
                        names.iter().map(|name| property_index(name)).collect();
                    set.insert(ID);
                    set
                }
                _ => (0..PROPERTIES.len()).collect(),
            };
            ApplyExpected { columns: table.columns, selected, properties, rows, count }
        });
        let (url, readable) = request_url(collection_url, &query.options());
        ApplyCase { label, url, readable, page_size: query.page_size, count: query.count, expected }
    }

    fn describe(&self) -> String {
        describe_request(&self.label, &self.url, &self.readable, self.page_size)
    }

    /// Returns the number of rows in the response, or 0 for a rejected request.
    fn returned_rows(&self) -> usize {
        self.expected.as_ref().map_or(0, |expected| expected.rows.len())
    }

    fn is_grouped(&self) -> bool {
        matches!(&self.expected, Ok(ApplyExpected { columns: Some(_), .. }))
    }
}

// ---------------------------------------------------------------------------------------------
// Checking `$apply` responses.

/// Sends one `$apply` case, following next links, and compares the result with the reference.
async fn run_apply_case(endpoint: &Endpoint, case: &ApplyCase) -> Result<(), String> {
    let expected = match &case.expected {
        Err(fault) => return check_rejected(endpoint, &case.url, *fault).await,
        Ok(expected) => expected,
    };
    let pages = read_pages(endpoint, &case.url, case.page_size, case.count, expected.count).await?;
    match &expected.columns {
        None => {
            let rows: Vec<&Row> = expected.rows.iter().collect();
            check_entities(&pages, &rows, &expected.properties)
        }
        Some(columns) => check_groups(&pages, expected, columns),
    }
}

/// Checks that a request the reference finds a fault in gets a 400 with a Graph error body.
async fn check_rejected(endpoint: &Endpoint, url: &str, fault: Fault) -> Result<(), String> {
    let response = endpoint
        .client
        .get(url)
        .bearer_auth(&endpoint.token)
        .send()
        .await
        .map_err(|error| format!("GET failed: {error}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if status != 400 {
        return Err(format!("returned {status}, expected 400 for {fault:?}: {text}"));
    }
    let body: Value = serde_json::from_str(&text)
        .map_err(|error| format!("the error body is not JSON ({error}): {text}"))?;
    if body["error"]["code"] != "BadRequest" || !body["error"]["message"].is_string() {
        return Err(format!("400 without a BadRequest error body: {text}"));
    }
    Ok(())
}

/// Checks a grouped result: the `@odata.context` column list, each row's `@odata.id` and
/// columns in column order, and each value by its type.
fn check_groups(
    pages: &Pages,
    expected: &ApplyExpected,
    columns: &[ResultColumn],
) -> Result<(), String> {
    let names: Vec<&str> = expected.selected.iter().map(|i| columns[*i].name.as_str()).collect();
    let context = pages.first["@odata.context"].as_str().unwrap_or("<none>");
    let suffix = format!("({})", names.join(","));
    if !context.ends_with(&suffix) {
        return Err(format!("@odata.context {context} does not end with {suffix}"));
    }

    // serde_json sorts object keys, so the written key order is read from the text.
    let mut expected_keys = vec!["@odata.id".to_owned()];
    for index in &expected.selected {
        let column = &columns[*index];
        if column.type_annotation().is_some() {
            expected_keys.push(format!("{}@odata.type", column.name));
        }
        expected_keys.push(column.name.clone());
    }
    let key_orders: Vec<Vec<String>> =
        pages.texts.iter().flat_map(|text| row_key_orders(text)).collect();
    if let Some(keys) = key_orders.iter().find(|keys| **keys != expected_keys) {
        return Err(format!("a row has the keys {keys:?}, expected {expected_keys:?}"));
    }

    // Compare the rows in order.
    let expected_rows: Vec<Value> =
        expected.rows.iter().map(|row| expected_group(row, columns, &expected.selected)).collect();
    let mismatch = (0..expected_rows.len().max(pages.rows.len())).find(|i| {
        match (expected_rows.get(*i), pages.rows.get(*i)) {
            (Some(want), Some(got)) => !group_matches(want, got, columns, &expected.selected),
            _ => true,
        }
    });
    if let Some(index) = mismatch {
        let show = |row: Option<&Value>| row.map_or("<none>".to_owned(), Value::to_string);
        return Err(format!(
            "grouped row {index} differs ({} pages; {} rows expected, {} returned)\n  \
             expected: {}\n  actual:   {}",
            pages.texts.len(),
            expected_rows.len(),
            pages.rows.len(),
            show(expected_rows.get(index)),
            show(pages.rows.get(index))
        ));
    }
    Ok(())
}

/// Writes a grouped row of the reference as the JSON the contract requires. An average is
/// written as the reference's double, which [`group_matches`] compares with a tolerance.
fn expected_group(row: &Row, columns: &[ResultColumn], selected: &[usize]) -> Value {
    let mut object = Map::new();
    object.insert("@odata.id".to_owned(), Value::Null);
    for index in selected {
        let value = match &row.values[*index] {
            Val::Null => Value::Null,
            Val::Int(number) => json!(number),
            Val::Double(number) => json!(number),
            Val::String(text) => json!(text),
            Val::DateTime(ticks) => json!(format_instant(*ticks, 0, needed_digits(*ticks), true)),
            other => panic!("a grouped result contains {other:?}"),
        };
        let column = &columns[*index];
        if let Some(annotation) = column.type_annotation() {
            object.insert(format!("{}@odata.type", column.name), json!(annotation));
        }
        object.insert(column.name.clone(), value);
    }
    Value::Object(object)
}

/// Compares a grouped row with the expected one: integers exactly and written as integers,
/// averages within [`AVERAGE_TOLERANCE`], strings and date-time texts exactly.
fn group_matches(want: &Value, got: &Value, columns: &[ResultColumn], selected: &[usize]) -> bool {
    let (Some(want), Some(got)) = (want.as_object(), got.as_object()) else { return false };
    if want.len() != got.len() || got.get("@odata.id") != Some(&Value::Null) {
        return false;
    }
    selected.iter().all(|index| {
        let column = &columns[*index];
        let annotation = format!("{}@odata.type", column.name);
        if want.get(&annotation) != got.get(&annotation) {
            return false;
        }
        let (Some(want), Some(got)) = (want.get(&column.name), got.get(&column.name)) else {
            return false;
        };
        match (column.kind, want, got) {
            (_, Value::Null, _) | (_, _, Value::Null) => want == got,
            (ColumnKind::Double, Value::Number(want), Value::Number(got)) => {
                let (want, got) = (want.as_f64().unwrap(), got.as_f64().unwrap());
                (want - got).abs() <= AVERAGE_TOLERANCE * want.abs()
            }
            (ColumnKind::Int64, Value::Number(want), Value::Number(got)) => {
                got.as_i64().is_some() && got.as_i64() == want.as_i64()
            }
            _ => want == got,
        }
    })
}

/// Returns the keys of each object in the top-level `value` array of a JSON text, in the order
/// the text writes them. The rows are the objects at depth 3: the document, `value`, a row.
fn row_key_orders(text: &str) -> Vec<Vec<String>> {
    let mut orders: Vec<Vec<String>> = Vec::new();
    // For each open container, whether it is an object.
    let mut open: Vec<bool> = Vec::new();
    let mut expecting_key = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                open.push(true);
                expecting_key = true;
                if open.len() == 3 {
                    orders.push(Vec::new());
                }
            }
            '[' => {
                open.push(false);
                expecting_key = false;
            }
            '}' | ']' => {
                open.pop();
                expecting_key = false;
            }
            ',' => expecting_key = open.last() == Some(&true),
            '"' => {
                // Collect the string as written, escapes included, then decode it.
                let mut raw = String::from('"');
                while let Some(c) = chars.next() {
                    raw.push(c);
                    match c {
                        '\\' => raw.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
                if expecting_key && open.len() == 3 {
                    let key: String = serde_json::from_str(&raw).unwrap_or(raw);
                    orders.last_mut().unwrap().push(key);
                }
                expecting_key = false;
            }
            _ => {}
        }
    }
    orders
}

/// Shrinks the preferred page size where the response would need more than [`PAGE_BUDGET`]
/// pages.
fn fit_apply_page_budget(query: &mut ApplyQuery, rows: &[Row]) {
    let Some(size) = query.page_size else { return };
    let Ok(table) = query.evaluate(rows, now_ticks()) else { return };
    let remaining = table.rows.len().saturating_sub(query.skip.unwrap_or(0));
    let returned = remaining.min(query.top.unwrap_or(usize::MAX));
    if returned / size > PAGE_BUDGET {
        query.page_size = Some(returned.div_ceil(PAGE_BUDGET));
    }
}

/// Runs the `$apply` cases against the server.
async fn run_apply_cases(endpoint: &Endpoint, cases: Vec<ApplyCase>, seed: u64) {
    run_cases(cases, seed, |case| {
        let endpoint = endpoint.clone();
        async move {
            let outcome = run_apply_case(&endpoint, &case).await;
            outcome.map_err(|problem| format!("{}\n  {problem}", case.describe()))
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// The random `$apply` generator.

/// Returns a literal that writes `value`, with date-times at a random offset.
fn value_literal(rng: &mut SplitMix64, value: &Val) -> Expr {
    match value {
        Val::Null => null(),
        Val::Int(number) => int(*number),
        Val::String(text) => string(text),
        Val::DateTime(ticks) => instant(&write_instant_randomly(rng, *ticks)),
        other => panic!("no literal for {other:?}"),
    }
}

fn column_expr(columns: &[ResultColumn], index: usize) -> Expr {
    Expr::Column { name: columns[index].name.clone(), index }
}

impl Generator<'_> {
    /// Draws the query of one `$apply` case: a few transformations of the entities, then in
    /// most cases a grouping with transformations of the groups, then the options.
    fn apply_query(&mut self) -> ApplyQuery {
        let mut query = ApplyQuery::default();
        let entity_stages = match self.rng.below(10) {
            0..=3 => 0,
            4..=7 => 1,
            _ => 2,
        };
        for _ in 0..entity_stages {
            let transformation = self.entity_transformation();
            query.transformations.push(transformation);
        }
        if query.transformations.is_empty() && self.rng.percent(10) {
            query.transformations.push(Transformation::Identity);
        }

        // Some cases keep the entities. `$apply` needs at least one transformation.
        if self.rng.percent(15) {
            if query.transformations.is_empty() {
                let transformation = self.entity_transformation();
                query.transformations.push(transformation);
            }
            self.entity_options(&mut query);
            return query;
        }

        // Group or aggregate. Sums of numberOfCompliantDevices leave out the values near the
        // Int64 maximum, so that they stay in range.
        let grouping = if self.rng.percent(20) {
            let count = 1 + self.rng.below(4);
            Transformation::Aggregate(self.aggregate_items(count))
        } else {
            let count = if self.rng.percent(25) { 0 } else { 1 + self.rng.below(4) };
            Transformation::GroupBy {
                keys: self.grouping_keys(),
                aggregates: self.aggregate_items(count),
            }
        };
        let aggregates = match &grouping {
            Transformation::Aggregate(items)
            | Transformation::GroupBy { aggregates: items, .. } => items,
            _ => unreachable!(),
        };
        let sums_large_values = aggregates.iter().any(|item| {
            matches!(
                item,
                AggregateItem::Method {
                    operand: Expr::Property(COMPLIANT),
                    method: AggregationMethod::Sum,
                    ..
                }
            )
        });
        if sums_large_values {
            let guard = not(cmp("numberOfCompliantDevices", "ge", int(i64::MAX - 1)));
            query.transformations.insert(0, Transformation::Filter(guard));
        }
        query.transformations.push(grouping);

        // Literals for conditions on the groups come from the groups the reference finds. A
        // query that faults here is redrawn by the caller.
        let Ok(groups) = query.transform(&self.dataset.rows, now_ticks()) else { return query };
        self.group_transformations(&mut query, &groups);
        self.group_options(&mut query, &groups);
        query
    }

    /// Draws a transformation that keeps the entity shape.
    fn entity_transformation(&mut self) -> Transformation {
        match self.rng.below(12) {
            0..=4 => Transformation::Filter(self.boolean(2)),
            5 | 6 => {
                let keys = 1 + self.rng.below(2);
                Transformation::OrderBy((0..keys).map(|_| self.order_key()).collect())
            }
            7 => Transformation::Top(self.rng.below(200)),
            8 => Transformation::Skip(self.rng.below(150)),
            9 | 10 => {
                let count = self.rng.below(60);
                let value = self.rank_value();
                if self.rng.percent(50) {
                    Transformation::TopCount(count, value)
                } else {
                    Transformation::BottomCount(count, value)
                }
            }
            _ => Transformation::Identity,
        }
    }

    /// Draws the value that topcount or bottomcount ranks entities by.
    fn rank_value(&mut self) -> Expr {
        match self.rng.below(6) {
            0..=2 => Expr::Property(*self.rng.pick(&COUNTERS)),
            3 => Expr::Property(*self.rng.pick(&DATE_TIMES)),
            4 => Expr::Property(*self.rng.pick(&STRING_PROPERTIES)),
            _ => func("length", vec![Expr::Property(*self.rng.pick(&STRING_PROPERTIES))]),
        }
    }

    /// Draws one or two distinct grouping properties.
    fn grouping_keys(&mut self) -> Vec<GroupKey> {
        let count = if self.rng.percent(55) { 1 } else { 2 };
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < count {
            let property = *self.rng.pick(&GROUPING_PROPERTIES);
            if !chosen.contains(&property) {
                chosen.push(property);
            }
        }
        chosen
            .into_iter()
            .map(|index| GroupKey { expr: Expr::Property(index), kind: PROPERTIES[index].1.into() })
            .collect()
    }

    /// Draws aggregates: methods on counters, minimum and maximum of strings and date-times,
    /// a few distinct counts and string lengths, and `$count`.
    fn aggregate_items(&mut self, count: usize) -> Vec<AggregateItem> {
        let all_methods = [
            AggregationMethod::Sum,
            AggregationMethod::Min,
            AggregationMethod::Max,
            AggregationMethod::Average,
            AggregationMethod::CountDistinct,
        ];
        let mut items = Vec::with_capacity(count);
        for i in 0..count {
            let (operand, kind, method) = match self.rng.below(20) {
                0..=2 => {
                    items.push(AggregateItem::Count { alias: format!("rows{i}") });
                    continue;
                }
                3..=12 => {
                    let operand = Expr::Property(*self.rng.pick(&COUNTERS));
                    (operand, ColumnKind::Int64, *self.rng.pick(&all_methods))
                }
                13..=15 => {
                    let operand = Expr::Property(*self.rng.pick(&STRING_PROPERTIES));
                    let methods = [
                        AggregationMethod::Min,
                        AggregationMethod::Max,
                        AggregationMethod::CountDistinct,
                    ];
                    (operand, ColumnKind::String, *self.rng.pick(&methods))
                }
                16..=18 => {
                    let operand = Expr::Property(*self.rng.pick(&DATE_TIMES));
                    let methods = [
                        AggregationMethod::Min,
                        AggregationMethod::Max,
                        AggregationMethod::CountDistinct,
                    ];
                    (operand, ColumnKind::DateTimeOffset, *self.rng.pick(&methods))
                }
                _ => {
                    let text = Expr::Property(*self.rng.pick(&STRING_PROPERTIES));
                    let operand = func("length", vec![text]);
                    (operand, ColumnKind::Int64, *self.rng.pick(&all_methods))
                }
            };
            let alias = format!("{}{i}", method.alias_stem());
            items.push(AggregateItem::Method { operand, kind, method, alias });
        }
        items
    }

    /// Adds transformations of the groups: a filter, an orderby with top or skip, or a
    /// topcount or bottomcount.
    fn group_transformations(&mut self, query: &mut ApplyQuery, groups: &Table) {
        let comparable = comparable_columns(groups);
        if comparable.is_empty() {
            return;
        }
        if self.rng.percent(25) {
            let condition = self.column_condition(groups, &comparable, 2);
            query.transformations.push(Transformation::Filter(condition));
        }
        let columns = groups.columns.as_deref().unwrap();
        match self.rng.below(10) {
            0 | 1 => {
                let keys = self.column_order_keys(columns, &comparable);
                query.transformations.push(Transformation::OrderBy(keys));
                if self.rng.percent(70) {
                    query.transformations.push(Transformation::Top(self.rng.below(8)));
                }
                if self.rng.percent(30) {
                    query.transformations.push(Transformation::Skip(self.rng.below(4)));
                }
            }
            2 => {
                let count = self.rng.below(8);
                let value = column_expr(columns, *self.rng.pick(&comparable));
                query.transformations.push(if self.rng.percent(50) {
                    Transformation::TopCount(count, value)
                } else {
                    Transformation::BottomCount(count, value)
                });
            }
            _ => {}
        }
    }

    /// Draws the options after a grouping: `$filter` and `$orderby` on the columns, `$select`
    /// of some columns, `$top`, `$skip`, `$count` and a page size.
    fn group_options(&mut self, query: &mut ApplyQuery, groups: &Table) {
        let comparable = comparable_columns(groups);
        let columns = groups.columns.as_deref().unwrap();
        if !comparable.is_empty() && self.rng.percent(40) {
            query.filter = Some(self.column_condition(groups, &comparable, 2));
        }
        if !comparable.is_empty() && self.rng.percent(50) {
            query.orderby = self.column_order_keys(columns, &comparable);
        }
        if self.rng.percent(35) {
            let mut names: Vec<String> = Vec::new();
            for _ in 0..1 + self.rng.below(3) {
                let name = &columns[self.rng.below(columns.len())].name;
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            query.select = Some(names);
        }
        self.paging_options(query, groups.rows.len());
    }

    /// Draws the options of a result that keeps the entities.
    fn entity_options(&mut self, query: &mut ApplyQuery) {
        if self.rng.percent(40) {
            query.filter = Some(self.boolean(2));
        }
        if self.rng.percent(50) {
            let keys = 1 + self.rng.below(2);
            query.orderby = (0..keys).map(|_| self.order_key()).collect();
        }
        if self.rng.percent(40) {
            let mut names: Vec<String> = Vec::new();
            for _ in 0..1 + self.rng.below(3) {
                let name = if self.rng.percent(10) { "*" } else { self.rng.pick(&PROPERTIES).0 };
                if !names.iter().any(|known| known == name) {
                    names.push(name.to_owned());
                }
            }
            query.select = Some(names);
        }
        self.paging_options(query, ROW_COUNT);
    }

    /// Draws `$top`, `$skip`, `$count` and a page size for a result of about `rows` rows.
    fn paging_options(&mut self, query: &mut ApplyQuery, rows: usize) {
        let span = rows.max(10);
        if self.rng.percent(35) {
            query.top = Some(self.rng.below(span + 5));
        }
        if self.rng.percent(30) {
            query.skip = Some(self.rng.below(span / 2 + 5));
        }
        query.count = match self.rng.below(20) {
            0..=6 => Some(true),
            7 | 8 => Some(false),
            _ => None,
        };
        if self.rng.percent(60) {
            query.page_size = Some(*self.rng.pick(&[1, 2, 3, 5, 7, 10, 25, 100, 1000]));
        }
    }

    /// Draws `$orderby` or `orderby` keys over columns that order exactly.
    fn column_order_keys(
        &mut self,
        columns: &[ResultColumn],
        comparable: &[usize],
    ) -> Vec<OrderKey> {
        let count = 1 + self.rng.below(2);
        (0..count)
            .map(|_| {
                let expr = column_expr(columns, *self.rng.pick(comparable));
                let direction =
                    *self.rng.pick(&[Direction::Unwritten, Direction::Asc, Direction::Desc]);
                OrderKey { expr, direction }
            })
            .collect()
    }

    /// Draws a condition on the columns of a grouped result.
    fn column_condition(&mut self, groups: &Table, comparable: &[usize], depth: u32) -> Expr {
        if depth > 0 && self.rng.percent(35) {
            return match self.rng.below(5) {
                0 | 1 => binary_op(
                    Op::And,
                    self.column_condition(groups, comparable, depth - 1),
                    self.column_condition(groups, comparable, depth - 1),
                ),
                2 | 3 => binary_op(
                    Op::Or,
                    self.column_condition(groups, comparable, depth - 1),
                    self.column_condition(groups, comparable, depth - 1),
                ),
                _ => not(self.column_condition(groups, comparable, depth - 1)),
            };
        }

        let columns = groups.columns.as_deref().unwrap();
        let index = *self.rng.pick(comparable);
        let column = column_expr(columns, index);
        match (self.rng.below(10), columns[index].kind) {
            (0, _) => {
                let op = if self.rng.percent(50) { Op::Eq } else { Op::Ne };
                binary_op(op, column, null())
            }
            (1, _) => {
                let items = (0..1 + self.rng.below(3))
                    .map(|_| self.column_literal(groups, index))
                    .collect();
                member(column, items)
            }
            (2, ColumnKind::String) => {
                let name = *self.rng.pick(&["contains", "startswith", "endswith"]);
                let needle = match self.column_literal(groups, index) {
                    Expr::Literal { value: Val::String(text), .. } => {
                        text.chars().take(1 + self.rng.below(3)).collect()
                    }
                    _ => String::new(),
                };
                func(name, vec![column, string(&needle)])
            }
            (3, ColumnKind::Int64) => {
                let modulus = self.rng.between(2, 4);
                let remainder = self.rng.between(0, modulus - 1);
                binary_op(
                    self.comparison(),
                    binary_op(Op::Mod, column, int(modulus)),
                    int(remainder),
                )
            }
            _ => {
                let literal = self.column_literal(groups, index);
                self.compare_sides(column, literal)
            }
        }
    }

    /// Draws a literal for a column: most often one of the column's values, else one of its type.
    fn column_literal(&mut self, groups: &Table, index: usize) -> Expr {
        if !groups.rows.is_empty() && self.rng.percent(70) {
            let row = &groups.rows[self.rng.below(groups.rows.len())];
            return value_literal(&mut self.rng, &row.values[index]);
        }
        match groups.columns.as_deref().unwrap()[index].kind {
            ColumnKind::Int64 if self.rng.percent(30) => {
                let text = *self.rng.pick(&NUMBER_LITERALS);
                number(text)
            }
            ColumnKind::Int64 => {
                let pool = [0, 1, 2, 3, 5, 10, 20, 50, 100, TWO_POW_53, TWO_POW_53 * 3, i64::MAX];
                int(*self.rng.pick(&pool))
            }
            ColumnKind::String => {
                let property = *self.rng.pick(&STRING_PROPERTIES);
                string(&self.pool_text(property))
            }
            ColumnKind::DateTimeOffset => self.instant_literal(),
            ColumnKind::Double => panic!("conditions on averages are not drawn"),
        }
    }
}

/// Returns the columns whose values the reference orders and compares exactly: all but
/// averages, which the server computes in floating point.
fn comparable_columns(groups: &Table) -> Vec<usize> {
    let columns = groups.columns.as_deref().unwrap_or(&[]);
    (0..columns.len()).filter(|i| columns[*i].kind != ColumnKind::Double).collect()
}

// ---------------------------------------------------------------------------------------------
// The `$apply` tests.

#[tokio::test]
async fn random_apply_queries_match_reference() {
    let seed = run_seed();
    let dataset = Dataset::generate(seed);
    let (server, endpoint) = start_with_dataset(&dataset).await;
    let collection_url = server.url(GRAPH);

    // Draw the cases, redrawing any whose reference evaluation overflows or divides by zero,
    // and most of those that return no rows, which compare no values.
    let mut generator = Generator { rng: SplitMix64::new(seed ^ 0xA991), dataset: &dataset };
    let mut cases = Vec::with_capacity(RANDOM_APPLY_CASES);
    for number in 0..RANDOM_APPLY_CASES {
        let mut attempts = 0;
        let case = loop {
            attempts += 1;
            assert!(attempts < 200, "apply case {number}: every drawn query faults");
            let mut query = generator.apply_query();
            fit_apply_page_budget(&mut query, &dataset.rows);
            let label = format!("random apply case {number:03} (seed {seed:#x})");
            let case = ApplyCase::build(label, &query, &dataset.rows, &collection_url);
            let keep = case.returned_rows() > 0 || generator.rng.percent(30);
            if case.expected.is_ok() && keep {
                break case;
            }
        };
        cases.push(case);
    }

    // The mix must hold grouped and entity results, most of them with rows.
    let grouped = cases.iter().filter(|case| case.is_grouped()).count();
    let nonempty = cases.iter().filter(|case| case.returned_rows() > 0).count();
    assert!(grouped * 10 >= cases.len() * 6, "only {grouped} of {} cases group", cases.len());
    assert!(grouped < cases.len(), "no case keeps the entities");
    assert!(
        nonempty * 10 >= cases.len() * 7,
        "only {nonempty} of {} cases return rows",
        cases.len()
    );

    run_apply_cases(&endpoint, cases, seed).await;
}

/// Builds `$count as alias`.
fn count_as(alias: &str) -> AggregateItem {
    AggregateItem::Count { alias: alias.to_owned() }
}

/// Builds `operand with method as alias` for an operand of the given type.
fn aggregate_of(
    operand: Expr,
    kind: ColumnKind,
    method: AggregationMethod,
    alias: &str,
) -> AggregateItem {
    AggregateItem::Method { operand, kind, method, alias: alias.to_owned() }
}

/// Builds `name with method as alias` for a property.
fn aggregate_property(name: &str, method: AggregationMethod, alias: &str) -> AggregateItem {
    let index = property_index(name);
    aggregate_of(Expr::Property(index), PROPERTIES[index].1.into(), method, alias)
}

/// Builds `groupby` over properties, with `aggregate(...)` unless `aggregates` is empty.
fn group_by(names: &[&str], aggregates: Vec<AggregateItem>) -> Transformation {
    let keys = names
        .iter()
        .map(|name| {
            let index = property_index(name);
            GroupKey { expr: Expr::Property(index), kind: PROPERTIES[index].1.into() }
        })
        .collect();
    Transformation::GroupBy { keys, aggregates }
}

/// Builds a reference to column `index` of a grouped result.
fn column(name: &str, index: usize) -> Expr {
    Expr::Column { name: name.to_owned(), index }
}

/// Builds the hand-written `$apply` queries, each with whether the reference must reject it:
/// exact sums at and past the Int64 limit, aggregates over no rows, string and date-time
/// extremes, grouping by nulls and by values that differ only in case, transformations of
/// groups, regrouping, and the options after `$apply`.
fn listed_apply_queries() -> Vec<(ApplyQuery, bool)> {
    use AggregationMethod::{Average, CountDistinct, Max, Min, Sum};
    let compliant = "numberOfCompliantDevices";
    let errors = "numberOfErrorDevices";
    let without_largest = || Transformation::Filter(not(cmp(compliant, "ge", int(i64::MAX - 1))));
    let nobody = || Transformation::Filter(cmp("tenantDisplayName", "eq", string("nobody")));
    let by_platform = |aggregates| group_by(&["compliancePolicyPlatform"], aggregates);
    let length_of_name = || func("length", vec![property("tenantDisplayName")]);

    let accepted: Vec<ApplyQuery> = vec![
        // Sums: exact past 2^53, exactly i64::MAX, and one group per row at the limit.
        ApplyQuery::new(vec![Transformation::Aggregate(vec![count_as("rows")])]),
        ApplyQuery::new(vec![
            without_largest(),
            Transformation::Aggregate(vec![
                aggregate_property(compliant, Sum, "total"),
                aggregate_property("numberOfNonCompliantDevices", Sum, "nonCompliant"),
                aggregate_property(errors, Sum, "errors"),
                count_as("rows"),
            ]),
        ]),
        ApplyQuery::new(vec![
            // Row 12 is the first row with i64::MAX, and other rows may have it too.
            Transformation::Filter(binary(
                cmp("id", "eq", string(&row_id(12))),
                "or",
                cmp(compliant, "eq", int(0)),
            )),
            Transformation::Aggregate(vec![aggregate_property(compliant, Sum, "total")]),
        ]),
        ApplyQuery::new(vec![
            Transformation::Filter(cmp(compliant, "ge", int(i64::MAX - 1))),
            group_by(&["id"], vec![aggregate_property(compliant, Sum, "total")]),
        ]),
        // Minimum, maximum, average and distinct count over values up to i64::MAX.
        ApplyQuery::new(vec![Transformation::Aggregate(vec![
            aggregate_property(compliant, Max, "high"),
            aggregate_property(compliant, Min, "low"),
            aggregate_property(compliant, Average, "mean"),
            aggregate_property(compliant, CountDistinct, "values"),
        ])]),
        // Aggregates over no rows, and grouping no rows.
        ApplyQuery::new(vec![
            nobody(),
            Transformation::Aggregate(vec![
                aggregate_property(errors, Sum, "total"),
                aggregate_property(errors, Average, "mean"),
                aggregate_property("policyModifiedDateTime", Max, "latest"),
                aggregate_property("tenantDisplayName", Min, "first"),
                aggregate_property("tenantId", CountDistinct, "tenants"),
                count_as("rows"),
            ]),
        ]),
        ApplyQuery {
            count: Some(true),
            ..ApplyQuery::new(vec![nobody(), group_by(&["tenantId"], vec![])])
        },
        // Groups of GUIDs that differ only in case, of the empty string and of null.
        ApplyQuery { count: Some(true), ..ApplyQuery::new(vec![group_by(&["tenantId"], vec![])]) },
        // Code point order of strings, and date-times in UTC with the fewest digits.
        ApplyQuery::new(vec![group_by(
            &["compliancePolicyType", "compliancePolicyPlatform"],
            vec![
                aggregate_property("tenantDisplayName", Min, "first"),
                aggregate_property("tenantDisplayName", Max, "last"),
                aggregate_property("compliancePolicyName", Max, "name"),
            ],
        )]),
        ApplyQuery::new(vec![by_platform(vec![
            aggregate_property("policyModifiedDateTime", Min, "earliest"),
            aggregate_property("lastRefreshedDateTime", Max, "latest"),
            aggregate_property("policyModifiedDateTime", CountDistinct, "instants"),
        ])]),
        ApplyQuery::new(vec![Transformation::Aggregate(vec![
            aggregate_of(length_of_name(), ColumnKind::Int64, Max, "longest"),
            aggregate_of(length_of_name(), ColumnKind::Int64, Sum, "characters"),
        ])]),
        // Literals with parentheses, quotes and URL delimiters inside filter().
        ApplyQuery::new(vec![
            Transformation::Filter(cmp("compliancePolicyName", "eq", string("Baseline (old)"))),
            group_by(&["tenantId"], vec![count_as("rows")]),
        ]),
        ApplyQuery::new(vec![
            Transformation::Filter(member(
                property("tenantDisplayName"),
                vec![
                    string("O'Brien & Sons"),
                    string("100% Pure"),
                    string("A+B"),
                    string("#1 Hashtag"),
                ],
            )),
            group_by(&["tenantDisplayName"], vec![count_as("rows")]),
        ]),
        // Transformations that keep the entities.
        ApplyQuery::new(vec![Transformation::TopCount(5, property(errors))]),
        ApplyQuery::new(vec![Transformation::BottomCount(7, property("policyModifiedDateTime"))]),
        ApplyQuery::new(vec![Transformation::TopCount(4, property("tenantDisplayName"))]),
        ApplyQuery::new(vec![Transformation::BottomCount(3, length_of_name())]),
        ApplyQuery::new(vec![
            Transformation::OrderBy(vec![desc(property(errors))]),
            Transformation::Top(10),
            Transformation::OrderBy(vec![asc(property("tenantId"))]),
        ]),
        ApplyQuery::new(vec![Transformation::Skip(290)]),
        ApplyQuery::new(vec![Transformation::Top(0)]),
        ApplyQuery {
            count: Some(true),
            page_size: Some(25),
            ..ApplyQuery::new(vec![Transformation::Identity])
        },
        ApplyQuery {
            orderby: vec![asc(property("tenantDisplayName"))],
            select: Some(vec!["tenantDisplayName".to_owned(), compliant.to_owned()]),
            top: Some(5),
            skip: Some(2),
            count: Some(true),
            ..ApplyQuery::new(vec![
                Transformation::Filter(cmp(errors, "gt", int(2))),
                Transformation::TopCount(20, property(compliant)),
            ])
        },
        // Options on groups, and paging through them.
        ApplyQuery {
            filter: Some(binary(column("rows", 1), "gt", int(20))),
            orderby: vec![desc(column("rows", 1))],
            count: Some(true),
            ..ApplyQuery::new(vec![group_by(&[errors], vec![count_as("rows")])])
        },
        ApplyQuery {
            select: Some(vec!["rows".to_owned(), "tenantId".to_owned()]),
            page_size: Some(3),
            count: Some(true),
            skip: Some(1),
            ..ApplyQuery::new(vec![group_by(
                &["tenantId", "compliancePolicyId"],
                vec![count_as("rows")],
            )])
        },
        // 0001-01-01T05:30:00+05:30 is the smallest instant, 0001-01-01T00:00:00Z.
        ApplyQuery {
            filter: Some(binary(column("earliest", 1), "gt", instant("0001-01-01T05:30:00+05:30"))),
            ..ApplyQuery::new(vec![by_platform(vec![aggregate_property(
                "lastRefreshedDateTime",
                Min,
                "earliest",
            )])])
        },
        ApplyQuery {
            orderby: vec![desc(column("mean", 1))],
            ..ApplyQuery::new(vec![
                Transformation::Filter(cmp(errors, "le", int(100))),
                by_platform(vec![aggregate_property(errors, Average, "mean")]),
            ])
        },
        // Transformations of groups, and grouping groups again.
        ApplyQuery::new(vec![
            by_platform(vec![count_as("rows")]),
            Transformation::Filter(binary(column("rows", 1), "ge", int(40))),
            Transformation::OrderBy(vec![desc(column("rows", 1))]),
            Transformation::Top(2),
        ]),
        ApplyQuery::new(vec![
            Transformation::Filter(cmp(errors, "le", int(100))),
            by_platform(vec![aggregate_property(errors, Sum, "total")]),
            Transformation::TopCount(2, column("total", 1)),
        ]),
        ApplyQuery::new(vec![
            Transformation::Filter(cmp(errors, "le", int(100))),
            by_platform(vec![aggregate_property(errors, Sum, "total")]),
            Transformation::BottomCount(2, column("total", 1)),
        ]),
        ApplyQuery::new(vec![
            group_by(&["compliancePolicyPlatform", "tenantId"], vec![count_as("rows")]),
            Transformation::GroupBy {
                keys: vec![GroupKey {
                    expr: column("compliancePolicyPlatform", 0),
                    kind: ColumnKind::String,
                }],
                aggregates: vec![
                    aggregate_of(column("rows", 2), ColumnKind::Int64, Max, "largest"),
                    aggregate_of(column("rows", 2), ColumnKind::Int64, Sum, "total"),
                    count_as("tenants"),
                ],
            },
        ]),
    ];

    // Sums outside the Int64 range.
    let rejected = vec![
        ApplyQuery::new(vec![Transformation::Aggregate(vec![aggregate_property(
            compliant, Sum, "total",
        )])]),
        ApplyQuery::new(vec![
            Transformation::Filter(cmp(compliant, "gt", int(100))),
            by_platform(vec![aggregate_property(compliant, Sum, "total")]),
            Transformation::Filter(binary(column("total", 1), "lt", int(0))),
        ]),
    ];
    let mut queries: Vec<(ApplyQuery, bool)> =
        accepted.into_iter().map(|query| (query, false)).collect();
    queries.extend(rejected.into_iter().map(|query| (query, true)));
    queries
}

#[tokio::test]
async fn listed_apply_queries_match_reference() {
    let seed = DEFAULT_SEED;
    let dataset = Dataset::generate(seed);
    let (server, endpoint) = start_with_dataset(&dataset).await;
    let collection_url = server.url(GRAPH);

    let mut cases = Vec::new();
    for (number, (query, rejected)) in listed_apply_queries().iter().enumerate() {
        let label = format!("listed apply case {number:03}");
        let case = ApplyCase::build(label, query, &dataset.rows, &collection_url);
        assert_eq!(case.expected.is_err(), *rejected, "{}", case.describe());
        cases.push(case);
    }

    // The data set must hold what the listed cases look for, or they test nothing.
    let nonempty = cases.iter().filter(|case| case.returned_rows() > 0).count();
    assert!(
        nonempty * 10 >= cases.len() * 7,
        "only {nonempty} of {} listed cases return rows",
        cases.len()
    );

    run_apply_cases(&endpoint, cases, seed).await;
}

/// An orderby transformation whose key has a literal once bound a parameter that the count
/// query never used, so `$count=true` failed with 500.
#[tokio::test]
async fn apply_orderby_of_expression_counts_rows() {
    let seed = DEFAULT_SEED;
    let dataset = Dataset::generate(seed);
    let (server, endpoint) = start_with_dataset(&dataset).await;
    let collection_url = server.url(GRAPH);

    let by_remainder = || {
        Transformation::OrderBy(vec![asc(binary(property("numberOfErrorDevices"), "mod", int(3)))])
    };
    let queries = [
        ApplyQuery { count: Some(true), ..ApplyQuery::new(vec![by_remainder()]) },
        ApplyQuery {
            count: Some(true),
            ..ApplyQuery::new(vec![by_remainder(), group_by(&["tenantId"], vec![])])
        },
    ];
    let cases: Vec<ApplyCase> = queries
        .iter()
        .enumerate()
        .map(|(number, query)| {
            let label = format!("orderby case {number}");
            ApplyCase::build(label, query, &dataset.rows, &collection_url)
        })
        .collect();
    run_apply_cases(&endpoint, cases, seed).await;
}
