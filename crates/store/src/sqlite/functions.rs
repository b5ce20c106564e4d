//! SQL functions that give OData `$filter` and `$orderby` expressions their exact meaning in
//! SQLite.
//!
//! SQLite's built-in `lower` and `upper` fold only ASCII letters, its `trim` removes only
//! spaces, and its integer arithmetic returns NULL on division by zero and a REAL on overflow.
//! The functions here follow the OData rules instead: strings are counted and cut in Unicode
//! scalar values with Rust's full case mapping, date parts come from UTC instants stored as
//! 100-nanosecond ticks since 1970-01-01T00:00:00Z, and Int64 arithmetic is checked. A NULL
//! argument gives NULL, but `odata_matches` rejects an invalid pattern even when the text is
//! NULL.
//!
//! [`register`] adds every function to a connection. A function fails its statement on
//! overflow, division by zero, an invalid regular expression or an argument of the wrong type.
//! The message of such an error starts with [`ERROR_PREFIX`], and [`evaluation_error`]
//! extracts it from the error the statement returns.

use regex::Regex;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSql, ValueRef};
use rusqlite::{Connection, Error};

/// The start of the message of every error raised by the functions in this module.
pub const ERROR_PREFIX: &str = "beacon query: ";

const TICKS_PER_SECOND: i64 = 10_000_000;
const TICKS_PER_MINUTE: i64 = 60 * TICKS_PER_SECOND;
const TICKS_PER_HOUR: i64 = 60 * TICKS_PER_MINUTE;
const TICKS_PER_DAY: i64 = 24 * TICKS_PER_HOUR;

/// 0001-01-01 as days since 1970-01-01, the first day of Edm.DateTimeOffset.
const MIN_DAY: i64 = -719_162;

/// 9999-12-31 as days since 1970-01-01, the last day of Edm.DateTimeOffset.
const MAX_DAY: i64 = 2_932_896;

/// Days from 0000-03-01 (proleptic Gregorian) to 1970-01-01.
const DAYS_FROM_MARCH_0000_TO_1970: i64 = 719_468;

/// Days in 400 Gregorian years, the cycle after which the calendar repeats.
const DAYS_PER_400_YEARS: i64 = 146_097;

/// Days from March 1 to the first day of each month, in a year that starts on March 1 so the
/// leap day falls at its end.
const MONTH_STARTS_FROM_MARCH: [i64; 12] = [0, 31, 61, 92, 122, 153, 184, 214, 245, 275, 306, 337];

/// A failure of one of the functions, which its `From` impl turns into a statement error.
#[derive(Debug, thiserror::Error)]
enum EvaluationError {
    /// Int64 arithmetic overflowed.
    #[error("The result of '{operator}' is outside the range of Edm.Int64.")]
    Overflow {
        /// The OData operator, such as `add`.
        operator: &'static str,
    },
    /// The divisor of `div` or `mod` is zero.
    #[error("Division by zero in '{operator}'.")]
    DivisionByZero {
        /// The OData operator.
        operator: &'static str,
    },
    /// The pattern of `matchesPattern` does not compile.
    #[error(
        "The pattern '{pattern}' of matchesPattern is not a valid regular expression: {reason}."
    )]
    InvalidPattern {
        /// The pattern as the client wrote it.
        pattern: String,
        /// The compiler's reason, on one line.
        reason: String,
    },
    /// A date-time value lies outside the years 0001 to 9999.
    #[error("The date-time value given to '{function}' is outside the years 0001 to 9999.")]
    DateTimeOutOfRange {
        /// The OData function.
        function: &'static str,
    },
    /// An argument has a SQLite type the function does not take.
    #[error(
        "Argument {position} of '{function}' must be {expected}, but its SQLite type is {found}."
    )]
    ArgumentType {
        /// The OData function or operator.
        function: &'static str,
        /// The argument's position, starting at 1.
        position: usize,
        /// The accepted kind of value, such as "an integer".
        expected: &'static str,
        /// The SQLite storage class of the value given.
        found: &'static str,
    },
    /// A TEXT argument is not valid UTF-8.
    #[error("Argument {position} of '{function}' is not valid UTF-8 text.")]
    InvalidText {
        /// The OData function.
        function: &'static str,
        /// The argument's position, starting at 1.
        position: usize,
    },
}

impl From<EvaluationError> for Error {
    fn from(error: EvaluationError) -> Self {
        // rusqlite reports a `UserFunctionError` to SQLite with the error's text as the
        // message, and the failing statement returns that text unchanged.
        Error::UserFunctionError(format!("{ERROR_PREFIX}{error}").into())
    }
}

/// Returns the client-facing message of `error`, without [`ERROR_PREFIX`], when a function of
/// this module raised it while a statement ran; `None` for every other error.
///
/// Stepping a statement returns a function's error as a `SqliteFailure` with the code
/// `SQLITE_ERROR` and the function's text as its message (rusqlite 0.43).
pub fn evaluation_error(error: &Error) -> Option<String> {
    match error {
        Error::SqliteFailure(_, Some(message)) => {
            message.strip_prefix(ERROR_PREFIX).map(str::to_owned)
        }
        _ => None,
    }
}

/// Registers every function of this module on `connection`.
pub fn register(connection: &Connection) -> rusqlite::Result<()> {
    register_strings(connection)?;
    register_dates(connection)?;
    register_arithmetic(connection)?;
    Ok(())
}

/// Registers one scalar function as deterministic and innocuous. So SQLite may evaluate it once
/// for constant arguments and use it in expression indexes, and in views and triggers even
/// with `trusted_schema` off.
fn register_scalar<T, F>(
    connection: &Connection,
    name: &str,
    arity: i32,
    function: F,
) -> rusqlite::Result<()>
where
    T: ToSql,
    F: Fn(&Context<'_>) -> rusqlite::Result<T> + Send + 'static,
{
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    connection.create_scalar_function(name, arity, flags, move |context| function(context))
}

/// A test of a text against a needle, such as `str::contains`.
type StringTest = fn(&str, &str) -> bool;

/// Registers the string functions.
fn register_strings(connection: &Connection) -> rusqlite::Result<()> {
    register_scalar(connection, "odata_tolower", 1, |context| {
        Ok(text_argument(context, 0, "tolower")?.map(str::to_lowercase))
    })?;
    register_scalar(connection, "odata_toupper", 1, |context| {
        Ok(text_argument(context, 0, "toupper")?.map(str::to_uppercase))
    })?;
    register_scalar(connection, "odata_ascii_lower", 1, |context| {
        Ok(text_argument(context, 0, "ascii_lower")?.map(str::to_ascii_lowercase))
    })?;
    register_scalar(connection, "odata_trim", 1, |context| {
        Ok(text_argument(context, 0, "trim")?.map(|text| text.trim().to_owned()))
    })?;
    register_scalar(connection, "odata_length", 1, |context| {
        Ok(text_argument(context, 0, "length")?.map(char_count))
    })?;
    register_scalar(connection, "odata_indexof", 2, |context| {
        let text = text_argument(context, 0, "indexof")?;
        let needle = text_argument(context, 1, "indexof")?;
        Ok(text.zip(needle).map(|(text, needle)| index_of(text, needle)))
    })?;
    register_scalar(connection, "odata_substring", 2, |context| {
        let text = text_argument(context, 0, "substring")?;
        let start = integer_argument(context, 1, "substring")?;
        Ok(text.zip(start).map(|(text, start)| substring(text, start, None)))
    })?;
    register_scalar(connection, "odata_substring", 3, |context| {
        let text = text_argument(context, 0, "substring")?;
        let start = integer_argument(context, 1, "substring")?;
        let length = integer_argument(context, 2, "substring")?;
        let (Some(text), Some(start), Some(length)) = (text, start, length) else {
            return Ok(None);
        };
        Ok(Some(substring(text, start, Some(length))))
    })?;

    let tests: [(&str, &'static str, StringTest); 3] = [
        ("odata_contains", "contains", |text, needle| text.contains(needle)),
        ("odata_startswith", "startswith", |text, prefix| text.starts_with(prefix)),
        ("odata_endswith", "endswith", |text, suffix| text.ends_with(suffix)),
    ];
    for (name, function, test) in tests {
        register_scalar(connection, name, 2, move |context| {
            let text = text_argument(context, 0, function)?;
            let needle = text_argument(context, 1, function)?;
            Ok(text.zip(needle).map(|(text, needle)| test(text, needle)))
        })?;
    }

    register_scalar(connection, "odata_matches", 2, matches_pattern)
}

/// Evaluates `matchesPattern(text, pattern)`: an unanchored search.
///
/// The compiled pattern is kept as SQLite auxiliary data on the pattern argument, so a
/// statement whose pattern is a literal or a bound parameter compiles it once, not once per
/// row. The pattern is compiled before the text is checked for NULL, so an invalid pattern
/// fails the statement even where the text is NULL.
fn matches_pattern(context: &Context<'_>) -> rusqlite::Result<Option<bool>> {
    let Some(pattern) = text_argument(context, 1, "matchesPattern")? else {
        return Ok(None);
    };
    let regex = match context.get_aux::<Regex>(1)? {
        Some(regex) => regex,
        None => context.set_aux(1, compile_pattern(pattern)?)?,
    };
    Ok(text_argument(context, 0, "matchesPattern")?.map(|text| regex.is_match(text)))
}

/// Compiles a `matchesPattern` pattern as the binder does.
fn compile_pattern(pattern: &str) -> Result<Regex, EvaluationError> {
    #[cfg(test)]
    tests::PATTERN_COMPILATIONS.with(|count| count.set(count.get() + 1));

    beacon_odata::bind::compile_pattern(pattern)
        .map_err(|reason| EvaluationError::InvalidPattern { pattern: pattern.to_owned(), reason })
}

/// Counts the Unicode scalar values of `text`.
fn char_count(text: &str) -> i64 {
    i64::try_from(text.chars().count()).unwrap_or(i64::MAX)
}

/// Returns the position of the first `needle` in `text` in Unicode scalar values, -1 if there
/// is none and 0 for an empty needle.
fn index_of(text: &str, needle: &str) -> i64 {
    match text.find(needle) {
        Some(byte_offset) => char_count(&text[..byte_offset]),
        None => -1,
    }
}

/// Cuts `length` Unicode scalar values (all if `None`) out of `text` from `start`, 0-based. A
/// negative start counts as 0, and a start past the end or a negative length gives "".
fn substring(text: &str, start: i64, length: Option<i64>) -> String {
    let start = usize::try_from(start.max(0)).unwrap_or(usize::MAX);
    let rest = &text[byte_offset(text, start)..];
    match length {
        None => rest.to_owned(),
        Some(length) if length < 0 => String::new(),
        Some(length) => {
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            rest[..byte_offset(rest, length)].to_owned()
        }
    }
}

/// Returns the byte offset of the Unicode scalar value at position `chars` of `text`, or the
/// length of `text` when it has no more than `chars` of them.
fn byte_offset(text: &str, chars: usize) -> usize {
    text.char_indices().nth(chars).map_or(text.len(), |(offset, _)| offset)
}

/// A part of an instant computed from its ticks.
type DatePart = fn(i64) -> i64;

/// Registers the date and time functions on ticks.
fn register_dates(connection: &Connection) -> rusqlite::Result<()> {
    let parts: [(&str, &'static str, DatePart); 9] = [
        ("odata_year", "year", |ticks| civil_from_days(day_of(ticks)).year),
        ("odata_month", "month", |ticks| civil_from_days(day_of(ticks)).month),
        ("odata_day", "day", |ticks| civil_from_days(day_of(ticks)).day),
        ("odata_hour", "hour", |ticks| time_of_day(ticks) / TICKS_PER_HOUR),
        ("odata_minute", "minute", |ticks| time_of_day(ticks) / TICKS_PER_MINUTE % 60),
        ("odata_second", "second", |ticks| time_of_day(ticks) / TICKS_PER_SECOND % 60),
        ("odata_fraction", "fractionalseconds", |ticks| ticks.rem_euclid(TICKS_PER_SECOND)),
        ("odata_date", "date", day_of),
        ("odata_time", "time", time_of_day),
    ];
    for (name, function, part) in parts {
        register_scalar(connection, name, 1, move |context| {
            Ok(ticks_argument(context, function)?.map(part))
        })?;
    }
    Ok(())
}

/// Returns whole days since 1970-01-01, rounding instants before 1970 down to the day.
fn day_of(ticks: i64) -> i64 {
    ticks.div_euclid(TICKS_PER_DAY)
}

/// Returns the ticks since midnight UTC.
fn time_of_day(ticks: i64) -> i64 {
    ticks.rem_euclid(TICKS_PER_DAY)
}

/// A day of the proleptic Gregorian calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CivilDate {
    year: i64,
    /// 1 to 12.
    month: i64,
    /// 1 to 31.
    day: i64,
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date.
///
/// Counting from 0000-03-01 puts each leap day at the end of its year, its 4-year block, its
/// century and its 400-year cycle. So the date is found by taking whole cycles, then whole
/// centuries, 4-year blocks and years, each step capped where only the last unit is one day
/// longer.
fn civil_from_days(days: i64) -> CivilDate {
    // Split off whole 400-year cycles; `day_of_cycle` is 0..146_097.
    let days_from_march_0000 = days + DAYS_FROM_MARCH_0000_TO_1970;
    let cycle = days_from_march_0000.div_euclid(DAYS_PER_400_YEARS);
    let day_of_cycle = days_from_march_0000.rem_euclid(DAYS_PER_400_YEARS);

    // Centuries have 36_524 days but the fourth, which ends with the 400-year leap day, has
    // 36_525. 4-year blocks have 1_461 days but the last one of the first three centuries has
    // 1_460, which dividing by 1_461 still finds because no block follows it. Years have 365
    // days but the fourth of a block has 366.
    let century = (day_of_cycle / 36_524).min(3);
    let day_of_century = day_of_cycle - century * 36_524;
    let block = day_of_century / 1_461;
    let day_of_block = day_of_century - block * 1_461;
    let year_of_block = (day_of_block / 365).min(3);
    let day_of_year = day_of_block - year_of_block * 365;

    // Find the month in the year that starts on March 1; January and February belong to the
    // next calendar year.
    let month_from_march =
        MONTH_STARTS_FROM_MARCH.partition_point(|&start| start <= day_of_year) - 1;
    let day = day_of_year - MONTH_STARTS_FROM_MARCH[month_from_march] + 1;
    let (month, year_offset) = match month_from_march {
        0..=9 => (month_from_march as i64 + 3, 0),
        _ => (month_from_march as i64 - 9, 1),
    };
    let year = cycle * 400 + century * 100 + block * 4 + year_of_block + year_offset;

    CivilDate { year, month, day }
}

/// Reads argument 0 as ticks of an instant in the years 0001 to 9999.
fn ticks_argument(
    context: &Context<'_>,
    function: &'static str,
) -> Result<Option<i64>, EvaluationError> {
    let ticks = integer_argument(context, 0, function)?;
    match ticks {
        Some(ticks) if !(MIN_DAY..=MAX_DAY).contains(&day_of(ticks)) => {
            Err(EvaluationError::DateTimeOutOfRange { function })
        }
        _ => Ok(ticks),
    }
}

/// Whether a division checks its divisor for zero.
#[derive(Clone, Copy, Debug)]
enum Divisor {
    /// The operator is not a division.
    Unused,
    /// A zero divisor is an error.
    NonZero,
}

/// An Int64 operation that returns `None` on overflow.
type CheckedOperation = fn(i64, i64) -> Option<i64>;

/// Registers checked Int64 arithmetic.
fn register_arithmetic(connection: &Connection) -> rusqlite::Result<()> {
    // `wrapping_rem` differs from `%` only for i64::MIN % -1, where it returns the exact
    // remainder 0 instead of panicking. The divisor is checked for zero before it runs.
    let operators: [(&str, &'static str, Divisor, CheckedOperation); 5] = [
        ("odata_add", "add", Divisor::Unused, i64::checked_add),
        ("odata_sub", "sub", Divisor::Unused, i64::checked_sub),
        ("odata_mul", "mul", Divisor::Unused, i64::checked_mul),
        ("odata_div", "div", Divisor::NonZero, i64::checked_div),
        ("odata_mod", "mod", Divisor::NonZero, |a, b| Some(a.wrapping_rem(b))),
    ];
    for (name, operator, divisor, apply) in operators {
        register_scalar(connection, name, 2, move |context| {
            let left = integer_argument(context, 0, operator)?;
            let right = integer_argument(context, 1, operator)?;
            let (Some(left), Some(right)) = (left, right) else {
                return Ok(None);
            };
            if matches!(divisor, Divisor::NonZero) && right == 0 {
                return Err(EvaluationError::DivisionByZero { operator }.into());
            }
            let result = apply(left, right).ok_or(EvaluationError::Overflow { operator })?;
            Ok(Some(result))
        })?;
    }

    register_scalar(connection, "odata_neg", 1, |context| {
        let Some(value) = integer_argument(context, 0, "-")? else {
            return Ok(None);
        };
        let result = value.checked_neg().ok_or(EvaluationError::Overflow { operator: "-" })?;
        Ok(Some(result))
    })?;

    // `divby` yields the fraction n / d. Comparing two fractions exactly cross-multiplies in
    // 128 bits, where products of two 64-bit values cannot overflow.
    register_scalar(connection, "odata_ratio_cmp", 4, |context| {
        let mut values = [0_i64; 4];
        for (index, slot) in values.iter_mut().enumerate() {
            match integer_argument(context, index, "divby")? {
                Some(value) => *slot = value,
                None => return Ok(None),
            }
        }
        let [left_n, left_d, right_n, right_d] = values;
        if left_d == 0 || right_d == 0 {
            return Err(EvaluationError::DivisionByZero { operator: "divby" }.into());
        }
        Ok(Some(compare_fractions(left_n, left_d, right_n, right_d) as i64))
    })?;
    register_scalar(connection, "odata_divby", 2, |context| {
        let numerator = integer_argument(context, 0, "divby")?;
        let denominator = integer_argument(context, 1, "divby")?;
        let (Some(numerator), Some(denominator)) = (numerator, denominator) else {
            return Ok(None);
        };
        if denominator == 0 {
            return Err(EvaluationError::DivisionByZero { operator: "divby" }.into());
        }
        Ok(Some(numerator as f64 / denominator as f64))
    })
}

/// Returns -1, 0 or 1 as the fraction `a / b` is below, equal to or above `c / d`; neither
/// denominator may be zero.
fn compare_fractions(a: i64, b: i64, c: i64, d: i64) -> i8 {
    // With both denominators made positive, a/b < c/d exactly when a*d < c*b.
    let (a, b) =
        if b < 0 { (-i128::from(a), -i128::from(b)) } else { (i128::from(a), i128::from(b)) };
    let (c, d) =
        if d < 0 { (-i128::from(c), -i128::from(d)) } else { (i128::from(c), i128::from(d)) };
    match (a * d).cmp(&(c * b)) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    }
}

/// Reads argument `index` as TEXT; NULL gives `None` and any other type is an error.
fn text_argument<'a>(
    context: &'a Context<'_>,
    index: usize,
    function: &'static str,
) -> Result<Option<&'a str>, EvaluationError> {
    match context.get_raw(index) {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| EvaluationError::InvalidText { function, position: index + 1 }),
        other => Err(argument_type_error(function, index, "a string", other)),
    }
}

/// Reads argument `index` as INTEGER; NULL gives `None` and any other type is an error.
fn integer_argument(
    context: &Context<'_>,
    index: usize,
    function: &'static str,
) -> Result<Option<i64>, EvaluationError> {
    match context.get_raw(index) {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(value) => Ok(Some(value)),
        other => Err(argument_type_error(function, index, "an integer", other)),
    }
}

fn argument_type_error(
    function: &'static str,
    index: usize,
    expected: &'static str,
    value: ValueRef<'_>,
) -> EvaluationError {
    let found = match value {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "INTEGER",
        ValueRef::Real(_) => "REAL",
        ValueRef::Text(_) => "TEXT",
        ValueRef::Blob(_) => "BLOB",
    };
    EvaluationError::ArgumentType { function, position: index + 1, expected, found }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rusqlite::types::{FromSql, Value};
    use rusqlite::{Params, params};

    use super::*;

    thread_local! {
        /// How many patterns `compile_pattern` compiled on this thread. Each test runs on its
        /// own thread, and SQLite calls the functions on the thread that steps the statement.
        pub(super) static PATTERN_COMPILATIONS: Cell<usize> = const { Cell::new(0) };
    }

    /// 0001-01-01T00:00:00Z in Unix seconds.
    const UNIX_SECONDS_0001: i64 = -62_135_596_800;
    /// 10000-01-01T00:00:00Z in Unix seconds, one second after the last valid second.
    const UNIX_SECONDS_10000: i64 = 253_402_300_800;

    fn connection() -> Connection {
        let connection = Connection::open_in_memory().expect("open an in-memory database");
        register(&connection).expect("register the functions");
        connection
    }

    fn query<T: FromSql>(sql: &str, params: impl Params) -> rusqlite::Result<T> {
        connection().query_row(sql, params, |row| row.get(0))
    }

    fn value<T: FromSql>(sql: &str, params: impl Params) -> T {
        query(sql, params).unwrap_or_else(|error| panic!("{sql} failed: {error}"))
    }

    /// Runs `sql`, expects it to fail in one of the functions and returns the message.
    fn failure(sql: &str, params: impl Params) -> String {
        match query::<Value>(sql, params) {
            Ok(value) => panic!("{sql} returned {value:?} instead of failing"),
            Err(error) => evaluation_error(&error)
                .unwrap_or_else(|| panic!("{sql} failed outside the functions: {error:?}")),
        }
    }

    fn ticks_from_unix_seconds(seconds: i64) -> i64 {
        seconds * TICKS_PER_SECOND
    }

    #[test]
    fn tolower_uses_full_unicode_mapping() {
        assert_eq!(value::<String>("SELECT odata_tolower(?1)", ["ÄÖ"]), "äö");
        assert_eq!(value::<String>("SELECT odata_tolower(?1)", ["ABC def"]), "abc def");
        assert_eq!(value::<String>("SELECT odata_tolower(?1)", ["ΟΔΟΣ"]), "οδο\u{3c2}");
        assert_eq!(value::<String>("SELECT odata_tolower(?1)", ["İ"]), "i\u{307}");
    }

    #[test]
    fn toupper_uses_full_unicode_mapping() {
        assert_eq!(value::<String>("SELECT odata_toupper(?1)", ["ß"]), "SS");
        assert_eq!(value::<String>("SELECT odata_toupper(?1)", ["straße"]), "STRASSE");
        assert_eq!(value::<String>("SELECT odata_toupper(?1)", ["äö"]), "ÄÖ");
        assert_eq!(value::<String>("SELECT odata_toupper(?1)", ["ﬁ"]), "FI");
    }

    #[test]
    fn trim_removes_unicode_whitespace_at_both_ends() {
        let padded = "\u{3000}\t a  b \u{2003}\n\u{85}";
        assert_eq!(value::<String>("SELECT odata_trim(?1)", [padded]), "a  b");
        assert_eq!(value::<String>("SELECT odata_trim(?1)", [" \u{a0}"]), "");
        assert_eq!(value::<String>("SELECT odata_trim(?1)", ["\u{200b}x"]), "\u{200b}x");
    }

    #[test]
    fn length_counts_scalar_values() {
        assert_eq!(value::<i64>("SELECT odata_length(?1)", ["héllo"]), 5);
        assert_eq!(value::<i64>("SELECT odata_length(?1)", ["𝄞日本"]), 3);
        assert_eq!(value::<i64>("SELECT odata_length(?1)", [""]), 0);
    }

    #[test]
    fn indexof_counts_scalar_values() {
        let cases = [
            ("añob", "ob", 2),
            ("𝄞x𝄞y", "y", 3),
            ("日本語", "語", 2),
            ("abc", "d", -1),
            ("abc", "", 0),
            ("", "", 0),
            ("", "a", -1),
            ("abab", "b", 1),
        ];
        for (text, needle, expected) in cases {
            let found: i64 = value("SELECT odata_indexof(?1, ?2)", [text, needle]);
            assert_eq!(found, expected, "indexof({text:?}, {needle:?})");
        }
    }

    #[test]
    fn substring_with_start_only() {
        let cases = [
            ("𝄞éabc", 0, "𝄞éabc"),
            ("𝄞éabc", 1, "éabc"),
            ("𝄞éabc", 2, "abc"),
            ("𝄞éabc", 5, ""),
            ("𝄞éabc", 6, ""),
            ("𝄞éabc", -3, "𝄞éabc"),
            ("abc", i64::MAX, ""),
            ("abc", i64::MIN, "abc"),
        ];
        for (text, start, expected) in cases {
            let cut: String = value("SELECT odata_substring(?1, ?2)", params![text, start]);
            assert_eq!(cut, expected, "substring({text:?}, {start})");
        }
    }

    #[test]
    fn substring_with_start_and_length() {
        let cases = [
            ("𝄞éabc", 0, 2, "𝄞é"),
            ("𝄞éabc", 1, 1, "é"),
            ("𝄞éabc", 3, 10, "bc"),
            ("𝄞éabc", 1, 0, ""),
            ("𝄞éabc", 1, -1, ""),
            ("𝄞éabc", -2, 2, "𝄞é"),
            ("𝄞éabc", 9, 2, ""),
            ("abc", 1, i64::MAX, "bc"),
        ];
        for (text, start, length, expected) in cases {
            let cut: String =
                value("SELECT odata_substring(?1, ?2, ?3)", params![text, start, length]);
            assert_eq!(cut, expected, "substring({text:?}, {start}, {length})");
        }
    }

    #[test]
    fn contains_startswith_endswith_compare_scalar_values() {
        let cases = [
            ("odata_contains", "añob", "ñ", true),
            ("odata_contains", "añob", "n", false),
            ("odata_contains", "abc", "", true),
            ("odata_contains", "", "", true),
            ("odata_startswith", "𝄞abc", "𝄞a", true),
            ("odata_startswith", "abc", "b", false),
            ("odata_startswith", "abc", "", true),
            ("odata_endswith", "abc日", "c日", true),
            ("odata_endswith", "abc", "ab", false),
            ("odata_endswith", "abc", "", true),
            ("odata_contains", "ABC", "b", false),
        ];
        for (function, text, needle, expected) in cases {
            let sql = format!("SELECT {function}(?1, ?2)");
            let result: i64 = value(&sql, [text, needle]);
            assert_eq!(result, i64::from(expected), "{function}({text:?}, {needle:?})");
        }
    }

    #[test]
    fn matches_searches_without_anchors() {
        let cases = [
            ("compliance", "pli", true),
            ("compliance", "^pli", false),
            ("compliance", "^c.*e$", true),
            ("Windows 10", r"\d+", true),
            ("日本語", r"^\w{3}$", true),
            ("ABC", "(?i)abc", true),
            ("", "", true),
        ];
        for (text, pattern, expected) in cases {
            let result: i64 = value("SELECT odata_matches(?1, ?2)", [text, pattern]);
            assert_eq!(result, i64::from(expected), "matchesPattern({text:?}, {pattern:?})");
        }
    }

    #[test]
    fn matches_compiles_pattern_once_per_statement() {
        let connection = connection();
        PATTERN_COMPILATIONS.with(|count| count.set(0));

        let mut statement = connection
            .prepare(
                "SELECT odata_matches(column1, ?1) FROM (VALUES ('a1'), ('b'), ('c22'), \
                 (NULL), ('d333'), ('e'))",
            )
            .expect("prepare");
        let results = statement
            .query_map([r"\d"], |row| row.get::<_, Option<i64>>(0))
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows");

        assert_eq!(results, [Some(1), Some(0), Some(1), None, Some(1), Some(0)]);
        assert_eq!(PATTERN_COMPILATIONS.with(Cell::get), 1);
    }

    #[test]
    fn matches_follows_pattern_that_changes_per_row() {
        let connection = connection();
        let mut statement = connection
            .prepare(
                "SELECT odata_matches(column1, column2) FROM (VALUES ('abc', '^a'), \
                 ('abc', '^b'), ('abc', 'c$'))",
            )
            .expect("prepare");
        let results = statement
            .query_map([], |row| row.get::<_, i64>(0))
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows");

        assert_eq!(results, [1, 0, 1]);
    }

    #[test]
    fn matches_rejects_invalid_pattern() {
        let message = failure("SELECT odata_matches(?1, ?2)", ["abc", "["]);

        assert!(
            message.starts_with(
                "The pattern '[' of matchesPattern is not a valid regular expression: "
            ),
            "{message}"
        );
        assert!(message.contains("unclosed character class"), "{message}");
        assert!(!message.contains('\n'), "{message}");
    }

    #[test]
    fn matches_rejects_invalid_pattern_for_null_text() {
        let message = failure("SELECT odata_matches(NULL, ?1)", ["(a"]);

        assert!(message.contains("not a valid regular expression"), "{message}");
    }

    #[test]
    fn matches_rejects_pattern_over_size_limit() {
        let pattern = "(?:a{1000}){1000}";
        let message = failure("SELECT odata_matches(?1, ?2)", ["a", pattern]);

        assert!(message.contains(&format!("'{pattern}'")), "{message}");
        let limit = beacon_odata::bind::MAX_PATTERN_SIZE;
        assert!(message.contains(&format!("limit of {limit} bytes")), "{message}");
    }

    #[test]
    fn null_argument_gives_null() {
        let expressions = [
            "odata_tolower(NULL)",
            "odata_toupper(NULL)",
            "odata_trim(NULL)",
            "odata_length(NULL)",
            "odata_indexof(NULL, 'a')",
            "odata_indexof('a', NULL)",
            "odata_substring(NULL, 1)",
            "odata_substring('abc', NULL)",
            "odata_substring(NULL, 1, 1)",
            "odata_substring('abc', NULL, 1)",
            "odata_substring('abc', 1, NULL)",
            "odata_contains(NULL, 'a')",
            "odata_contains('a', NULL)",
            "odata_startswith(NULL, 'a')",
            "odata_startswith('a', NULL)",
            "odata_endswith(NULL, 'a')",
            "odata_endswith('a', NULL)",
            "odata_matches(NULL, 'a')",
            "odata_matches('a', NULL)",
            "odata_year(NULL)",
            "odata_month(NULL)",
            "odata_day(NULL)",
            "odata_hour(NULL)",
            "odata_minute(NULL)",
            "odata_second(NULL)",
            "odata_fraction(NULL)",
            "odata_date(NULL)",
            "odata_time(NULL)",
            "odata_add(NULL, 1)",
            "odata_add(1, NULL)",
            "odata_sub(NULL, 1)",
            "odata_sub(1, NULL)",
            "odata_mul(NULL, 1)",
            "odata_mul(1, NULL)",
            "odata_div(NULL, 1)",
            "odata_div(1, NULL)",
            "odata_div(NULL, 0)",
            "odata_mod(NULL, 1)",
            "odata_mod(1, NULL)",
            "odata_neg(NULL)",
        ];
        for expression in expressions {
            let result: Value = value(&format!("SELECT {expression}"), []);
            assert_eq!(result, Value::Null, "{expression}");
        }
    }

    #[test]
    fn string_function_rejects_non_text() {
        let message = failure("SELECT odata_length(?1)", [42]);
        assert_eq!(
            message,
            "Argument 1 of 'length' must be a string, but its SQLite type is INTEGER."
        );

        let message = failure("SELECT odata_contains('a', ?1)", [1.5]);
        assert_eq!(
            message,
            "Argument 2 of 'contains' must be a string, but its SQLite type is REAL."
        );

        let message = failure("SELECT odata_substring('abc', '1')", []);
        assert_eq!(
            message,
            "Argument 2 of 'substring' must be an integer, but its SQLite type is TEXT."
        );
    }

    #[test]
    fn string_function_rejects_invalid_utf8() {
        let message = failure("SELECT odata_tolower(CAST(x'ff' AS TEXT))", []);

        assert_eq!(message, "Argument 1 of 'tolower' is not valid UTF-8 text.");
    }

    #[test]
    fn arithmetic_computes_exact_results() {
        let cases = [
            ("odata_add", 2, 3, 5),
            ("odata_add", i64::MAX - 1, 1, i64::MAX),
            ("odata_sub", 2, 3, -1),
            ("odata_sub", i64::MIN + 1, 1, i64::MIN),
            ("odata_mul", -4, 5, -20),
            ("odata_mul", i64::MIN, 1, i64::MIN),
            ("odata_div", 7, 2, 3),
            ("odata_div", -7, 2, -3),
            ("odata_div", 7, -2, -3),
            ("odata_div", i64::MIN, 1, i64::MIN),
            ("odata_mod", 7, 2, 1),
            ("odata_mod", -7, 2, -1),
            ("odata_mod", 7, -2, 1),
            ("odata_mod", -7, -2, -1),
            ("odata_mod", i64::MIN, -1, 0),
        ];
        for (function, left, right, expected) in cases {
            let sql = format!("SELECT {function}(?1, ?2)");
            let result: i64 = value(&sql, [left, right]);
            assert_eq!(result, expected, "{function}({left}, {right})");
        }
        assert_eq!(value::<i64>("SELECT odata_neg(?1)", [5]), -5);
        assert_eq!(value::<i64>("SELECT odata_neg(?1)", [i64::MAX]), -i64::MAX);
    }

    #[test]
    fn arithmetic_overflow_is_error() {
        let cases = [
            ("odata_add", "add", i64::MAX, 1),
            ("odata_sub", "sub", i64::MIN, 1),
            ("odata_mul", "mul", i64::MAX, 2),
            ("odata_mul", "mul", i64::MIN, -1),
            ("odata_div", "div", i64::MIN, -1),
        ];
        for (function, operator, left, right) in cases {
            let message = failure(&format!("SELECT {function}(?1, ?2)"), [left, right]);
            let expected = format!("The result of '{operator}' is outside the range of Edm.Int64.");
            assert_eq!(message, expected, "{function}({left}, {right})");
        }

        let message = failure("SELECT odata_neg(?1)", [i64::MIN]);
        assert_eq!(message, "The result of '-' is outside the range of Edm.Int64.");
    }

    #[test]
    fn division_by_zero_is_error() {
        assert_eq!(failure("SELECT odata_div(1, 0)", []), "Division by zero in 'div'.");
        assert_eq!(failure("SELECT odata_mod(1, 0)", []), "Division by zero in 'mod'.");
        assert_eq!(failure("SELECT odata_mod(0, 0)", []), "Division by zero in 'mod'.");
    }

    #[test]
    fn arithmetic_rejects_real_and_text() {
        let message = failure("SELECT odata_add(?1, 1)", [1.0]);
        assert_eq!(message, "Argument 1 of 'add' must be an integer, but its SQLite type is REAL.");

        let message = failure("SELECT odata_mul(1, '2')", []);
        assert_eq!(message, "Argument 2 of 'mul' must be an integer, but its SQLite type is TEXT.");

        let message = failure("SELECT odata_neg(x'01')", []);
        assert_eq!(message, "Argument 1 of '-' must be an integer, but its SQLite type is BLOB.");
    }

    /// Reads every date part of `ticks` through SQL.
    fn date_parts(ticks: i64) -> [i64; 9] {
        let connection = connection();
        connection
            .query_row(
                "SELECT odata_year(?1), odata_month(?1), odata_day(?1), odata_hour(?1), \
                 odata_minute(?1), odata_second(?1), odata_fraction(?1), odata_date(?1), \
                 odata_time(?1)",
                [ticks],
                |row| {
                    let mut parts = [0; 9];
                    for (index, part) in parts.iter_mut().enumerate() {
                        *part = row.get(index)?;
                    }
                    Ok(parts)
                },
            )
            .expect("date parts")
    }

    #[test]
    fn date_parts_at_first_instant() {
        let ticks = ticks_from_unix_seconds(UNIX_SECONDS_0001);
        assert_eq!(ticks, -621_355_968_000_000_000);

        let [year, month, day, hour, minute, second, fraction, date, time] = date_parts(ticks);
        assert_eq!((year, month, day), (1, 1, 1));
        assert_eq!((hour, minute, second, fraction), (0, 0, 0, 0));
        assert_eq!(date, -719_162);
        assert_eq!(time, 0);
    }

    #[test]
    fn date_parts_at_last_tick_before_1970() {
        let [year, month, day, hour, minute, second, fraction, date, time] = date_parts(-1);
        assert_eq!((year, month, day), (1969, 12, 31));
        assert_eq!((hour, minute, second, fraction), (23, 59, 59, 9_999_999));
        assert_eq!(date, -1);
        assert_eq!(time, 863_999_999_999);
    }

    #[test]
    fn date_parts_at_unix_epoch() {
        let [year, month, day, hour, minute, second, fraction, date, time] = date_parts(0);
        assert_eq!((year, month, day), (1970, 1, 1));
        assert_eq!((hour, minute, second, fraction), (0, 0, 0, 0));
        assert_eq!(date, 0);
        assert_eq!(time, 0);
    }

    #[test]
    fn date_parts_on_leap_day_2000() {
        // 2000-02-29T12:34:56.789Z is Unix time 951_827_696.789.
        let ticks = ticks_from_unix_seconds(951_827_696) + 7_890_000;

        let [year, month, day, hour, minute, second, fraction, date, time] = date_parts(ticks);
        assert_eq!((year, month, day), (2000, 2, 29));
        assert_eq!((hour, minute, second, fraction), (12, 34, 56, 7_890_000));
        assert_eq!(date, 11_016);
        assert_eq!(time, (12 * 3600 + 34 * 60 + 56) * TICKS_PER_SECOND + 7_890_000);
    }

    #[test]
    fn date_parts_on_last_day_of_2024() {
        // 2024-12-31T07:30:00Z is Unix time 1_735_630_200.
        let ticks = ticks_from_unix_seconds(1_735_630_200);

        let [year, month, day, hour, minute, second, fraction, date, time] = date_parts(ticks);
        assert_eq!((year, month, day), (2024, 12, 31));
        assert_eq!((hour, minute, second, fraction), (7, 30, 0, 0));
        assert_eq!(date, 20_088);
        assert_eq!(time, 27_000 * TICKS_PER_SECOND);
    }

    #[test]
    fn date_parts_at_last_instant() {
        let ticks = ticks_from_unix_seconds(UNIX_SECONDS_10000) - 1;
        assert_eq!(ticks, 2_534_023_007_999_999_999);

        let [year, month, day, hour, minute, second, fraction, date, time] = date_parts(ticks);
        assert_eq!((year, month, day), (9999, 12, 31));
        assert_eq!((hour, minute, second, fraction), (23, 59, 59, 9_999_999));
        assert_eq!(date, 2_932_896);
        assert_eq!(time, 863_999_999_999);
    }

    #[test]
    fn date_parts_reject_out_of_range_instants() {
        let before = ticks_from_unix_seconds(UNIX_SECONDS_0001) - 1;
        let after = ticks_from_unix_seconds(UNIX_SECONDS_10000);
        let functions = [
            ("odata_year", "year"),
            ("odata_fraction", "fractionalseconds"),
            ("odata_date", "date"),
            ("odata_time", "time"),
        ];
        for (name, function) in functions {
            for ticks in [before, after, i64::MIN, i64::MAX] {
                let message = failure(&format!("SELECT {name}(?1)"), [ticks]);
                let expected = format!(
                    "The date-time value given to '{function}' is outside the years 0001 to 9999."
                );
                assert_eq!(message, expected, "{name}({ticks})");
            }
        }

        let message = failure("SELECT odata_month(?1)", [1.5]);
        assert_eq!(
            message,
            "Argument 1 of 'month' must be an integer, but its SQLite type is REAL."
        );
    }

    #[test]
    fn civil_from_days_matches_day_by_day_count() {
        // Walk every day from 0001-01-01 to 9999-12-31 with a plain calendar counter.
        let is_leap = |year: i64| (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let month_length = |year: i64, month: i64| match month {
            2 if is_leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };

        let mut expected = CivilDate { year: 1, month: 1, day: 1 };
        for days in MIN_DAY..=MAX_DAY {
            assert_eq!(civil_from_days(days), expected, "day {days}");

            expected.day += 1;
            if expected.day > month_length(expected.year, expected.month) {
                expected.day = 1;
                expected.month += 1;
            }
            if expected.month > 12 {
                expected.month = 1;
                expected.year += 1;
            }
        }
        assert_eq!(expected, CivilDate { year: 10_000, month: 1, day: 1 });
    }

    #[test]
    fn evaluation_error_reads_function_failure() {
        let error = connection()
            .query_row("SELECT odata_div(?1, 0)", [5], |row| row.get::<_, i64>(0))
            .expect_err("division by zero fails");

        assert!(
            matches!(&error, Error::SqliteFailure(_, Some(message)) if message.starts_with(ERROR_PREFIX)),
            "{error:?}"
        );
        assert_eq!(evaluation_error(&error).as_deref(), Some("Division by zero in 'div'."));
    }

    #[test]
    fn evaluation_error_reads_failure_in_where_clause() {
        let connection = connection();
        let mut statement = connection
            .prepare("SELECT column1 FROM (VALUES (1), (0), (2)) WHERE odata_div(10, column1) > 1")
            .expect("prepare");
        let error = statement
            .query_map([], |row| row.get::<_, i64>(0))
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect_err("the second row divides by zero");

        assert_eq!(evaluation_error(&error).as_deref(), Some("Division by zero in 'div'."));
    }

    #[test]
    fn evaluation_error_ignores_other_errors() {
        let connection = connection();

        let syntax = connection.prepare("SELEC 1").expect_err("syntax error");
        assert_eq!(evaluation_error(&syntax), None);

        let missing = connection.prepare("SELECT odata_nothing(1)").expect_err("no such function");
        assert_eq!(evaluation_error(&missing), None);

        let arity = connection.prepare("SELECT odata_length('a', 'b')").expect_err("wrong arity");
        assert_eq!(evaluation_error(&arity), None);

        assert_eq!(evaluation_error(&Error::QueryReturnedNoRows), None);
    }

    #[test]
    fn configure_registers_functions_on_every_connection() {
        for read_only in [false, true] {
            let connection = Connection::open_in_memory().expect("open an in-memory database");
            super::super::configure(&connection, read_only).expect("configure");

            let length: i64 = connection
                .query_row("SELECT odata_length('日本')", [], |row| row.get(0))
                .expect("odata_length is registered");
            assert_eq!(length, 2, "read_only = {read_only}");
        }
    }

    #[test]
    fn fractions_compare_exactly_past_the_precision_of_doubles() {
        assert_eq!(compare_fractions(1, 3, 333_333_333, 1_000_000_000), 1);
        assert_eq!(compare_fractions(2, 4, 1, 2), 0);
        assert_eq!(compare_fractions(1, -2, -1, 2), 0);
        assert_eq!(compare_fractions(i64::MAX, i64::MAX - 1, i64::MAX - 1, i64::MAX - 2), -1);
        assert_eq!(compare_fractions(i64::MIN, 1, i64::MIN, -1), -1);
    }

    #[test]
    fn ratio_comparison_rejects_a_zero_denominator_and_passes_null() {
        let message = failure("SELECT odata_ratio_cmp(1, 0, 1, 1)", []);
        assert!(message.contains("Division by zero in 'divby'"), "{message}");
        assert_eq!(value::<Option<i64>>("SELECT odata_ratio_cmp(NULL, 1, 1, 1)", []), None);
        assert_eq!(value::<i64>("SELECT odata_ratio_cmp(7, 2, 35, 10)", []), 0);
    }
}
