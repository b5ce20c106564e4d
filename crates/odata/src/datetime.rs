//! `Edm.DateTimeOffset`: an instant exact to 100 nanoseconds, normalized to UTC.
//!
//! OData allows up to 7 fractional second digits, finer than most date libraries keep, so the
//! value is held as a count of 100-nanosecond ticks since the Unix epoch. The number of
//! fractional digits the client wrote is kept beside it, so that `…:00.100Z` is written back as
//! `…:00.100Z` and not as `…:00.1Z`. Values from year 1 to year 9999 in UTC are accepted.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// 100-nanosecond ticks in one second.
pub const TICKS_PER_SECOND: i64 = 10_000_000;

/// Seconds from 0001-01-01T00:00:00Z to the Unix epoch.
const SECONDS_BEFORE_EPOCH: i64 = 62_135_596_800;

/// The earliest tick count accepted: 0001-01-01T00:00:00Z.
pub const MIN_TICKS: i64 = -SECONDS_BEFORE_EPOCH * TICKS_PER_SECOND;

/// The latest tick count accepted: 9999-12-31T23:59:59.9999999Z.
pub const MAX_TICKS: i64 = 253_402_300_800 * TICKS_PER_SECOND - 1;

/// An instant in UTC with the number of fractional second digits to write it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTimeOffset {
    ticks: i64,
    digits: u8,
}

/// The reason a text is not a valid `Edm.DateTimeOffset`, as a lowercase clause.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DateTimeError(&'static str);

impl DateTimeOffset {
    /// Builds a value from ticks since the Unix epoch and a digit count from 0 to 7.
    ///
    /// Returns `None` when the instant is outside years 1 to 9999, when `digits` is above 7, or
    /// when the ticks carry more precision than `digits` can show.
    pub fn from_ticks(ticks: i64, digits: u8) -> Option<Self> {
        if !(MIN_TICKS..=MAX_TICKS).contains(&ticks) || digits > 7 {
            return None;
        }
        let unit = 10_i64.pow(7 - u32::from(digits));
        if ticks.rem_euclid(TICKS_PER_SECOND) % unit != 0 {
            return None;
        }
        Some(Self { ticks, digits })
    }

    /// Builds a value from ticks with the fewest fractional digits that show it exactly, as
    /// for a computed value such as a minimum, which has no digit count of its own.
    pub fn from_ticks_shortest(ticks: i64) -> Option<Self> {
        (0..=7).find_map(|digits| Self::from_ticks(ticks, digits))
    }

    /// Returns the current time, with all 7 fractional digits.
    pub fn now() -> Self {
        let ticks = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(elapsed) => i64::try_from(elapsed.as_nanos() / 100).unwrap_or(MAX_TICKS),
            Err(before) => -i64::try_from(before.duration().as_nanos() / 100).unwrap_or(0),
        };
        Self { ticks: ticks.clamp(MIN_TICKS, MAX_TICKS), digits: 7 }
    }

    /// 100-nanosecond ticks since 1970-01-01T00:00:00Z; negative before it.
    pub fn ticks(self) -> i64 {
        self.ticks
    }

    /// Returns the number of fractional second digits of the text form, from 0 to 7.
    pub fn digits(self) -> u8 {
        self.digits
    }

    /// Parses the OData form `YYYY-MM-DDThh:mm[:ss[.fffffff]]` followed by `Z` or `±hh:mm`.
    ///
    /// The offset is required; the letters `T` and `Z` may be lowercase, as RFC 3339 allows.
    pub fn parse(text: &str) -> Result<Self, DateTimeError> {
        let mut cursor = Cursor { bytes: text.as_bytes(), at: 0 };

        // The date and the time of day, each field with a fixed number of digits.
        let year = cursor.number(4, "expected a four-digit year")?;
        cursor.expect(b'-', "expected '-' after the year")?;
        let month = cursor.number(2, "expected a two-digit month")?;
        cursor.expect(b'-', "expected '-' after the month")?;
        let day = cursor.number(2, "expected a two-digit day")?;
        if !cursor.eat(b'T') && !cursor.eat(b't') {
            return Err(DateTimeError("expected 'T' between the date and the time"));
        }
        let hour = cursor.number(2, "expected a two-digit hour")?;
        cursor.expect(b':', "expected ':' after the hour")?;
        let minute = cursor.number(2, "expected two-digit minutes")?;
        let mut second = 0;
        let mut fraction = 0_i64;
        let mut digits = 0_u8;
        if cursor.eat(b':') {
            second = cursor.number(2, "expected two-digit seconds")?;
            if cursor.eat(b'.') {
                while let Some(digit) = cursor.digit() {
                    if digits == 7 {
                        return Err(DateTimeError(
                            "at most 7 fractional second digits are allowed",
                        ));
                    }
                    fraction = fraction * 10 + i64::from(digit);
                    digits += 1;
                }
                if digits == 0 {
                    return Err(DateTimeError("expected a digit after the decimal point"));
                }
                fraction *= 10_i64.pow(7 - u32::from(digits));
            }
        }

        // The offset from UTC, which RFC 3339 and OData both require.
        let offset_minutes = match cursor.next() {
            Some(b'Z' | b'z') => 0,
            Some(sign @ (b'+' | b'-')) => {
                let hours = cursor.number(2, "expected a two-digit offset hour")?;
                cursor.expect(b':', "expected ':' in the offset")?;
                let minutes = cursor.number(2, "expected two-digit offset minutes")?;
                if hours > 23 || minutes > 59 {
                    return Err(DateTimeError("the offset is out of range"));
                }
                let total = i64::from(hours * 60 + minutes);
                if sign == b'-' { -total } else { total }
            }
            Some(_) => return Err(DateTimeError("expected 'Z' or an offset such as +02:00")),
            None => return Err(DateTimeError("an offset such as 'Z' or +02:00 is required")),
        };
        if cursor.at != cursor.bytes.len() {
            return Err(DateTimeError("unexpected text after the offset"));
        }

        // Range checks on each field, then the conversion to ticks in UTC.
        if year == 0 {
            return Err(DateTimeError("the year must be from 0001 to 9999"));
        }
        if !(1..=12).contains(&month) {
            return Err(DateTimeError("the month must be from 01 to 12"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateTimeError("the day does not exist in that month"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(DateTimeError("the time of day is out of range"));
        }
        let days = days_from_civil(i64::from(year), month, day);
        let seconds =
            days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
        let ticks = seconds * TICKS_PER_SECOND + fraction;
        if !(MIN_TICKS..=MAX_TICKS).contains(&ticks) {
            return Err(DateTimeError("the instant in UTC is outside years 0001 to 9999"));
        }
        Ok(Self { ticks, digits })
    }
}

impl fmt::Display for DateTimeOffset {
    /// Writes `YYYY-MM-DDThh:mm:ss[.f…]Z` with exactly [`DateTimeOffset::digits`] fraction
    /// digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.ticks.div_euclid(TICKS_PER_SECOND);
        let fraction = self.ticks.rem_euclid(TICKS_PER_SECOND);
        let days = seconds.div_euclid(86_400);
        let second_of_day = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )?;
        if self.digits > 0 {
            let fraction_digits = fraction / 10_i64.pow(7 - u32::from(self.digits));
            write!(f, ".{fraction_digits:0width$}", width = usize::from(self.digits))?;
        }
        f.write_str("Z")
    }
}

/// Writes an `Edm.Date` given as days since 1970-01-01, such as `2024-03-01`.
pub fn format_date(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Writes an `Edm.TimeOfDay` given as ticks since midnight, such as `07:30:00.5`.
pub fn format_time_of_day(ticks: i64) -> String {
    let (seconds, fraction) =
        (ticks.div_euclid(TICKS_PER_SECOND), ticks.rem_euclid(TICKS_PER_SECOND));
    let mut text = format!("{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    if fraction > 0 {
        let digits = format!("{fraction:07}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text
}

/// A read position in the text being parsed.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Option<u8> {
        let byte = self.bytes.get(self.at).copied();
        if byte.is_some() {
            self.at += 1;
        }
        byte
    }

    fn eat(&mut self, expected: u8) -> bool {
        if self.bytes.get(self.at) == Some(&expected) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, expected: u8, message: &'static str) -> Result<(), DateTimeError> {
        if self.eat(expected) { Ok(()) } else { Err(DateTimeError(message)) }
    }

    fn digit(&mut self) -> Option<u32> {
        let digit = self.bytes.get(self.at).filter(|b| b.is_ascii_digit())?;
        self.at += 1;
        Some(u32::from(digit - b'0'))
    }

    fn number(&mut self, width: usize, message: &'static str) -> Result<u32, DateTimeError> {
        let mut value = 0;
        for _ in 0..width {
            value = value * 10 + self.digit().ok_or(DateTimeError(message))?;
        }
        Ok(value)
    }
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Converts a day count from 1970-01-01 to a proleptic Gregorian date, the inverse of
/// [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        DateTimeOffset::parse(text).unwrap().to_string()
    }

    #[test]
    fn seven_fraction_digits_round_trip() {
        assert_eq!(round_trip("2024-03-01T07:30:00.1234567Z"), "2024-03-01T07:30:00.1234567Z");
    }

    #[test]
    fn given_fraction_digits_are_kept_including_trailing_zeros() {
        assert_eq!(round_trip("2024-03-01T07:30:00.100Z"), "2024-03-01T07:30:00.100Z");
        assert_eq!(round_trip("2024-03-01T07:30:00Z"), "2024-03-01T07:30:00Z");
        assert_eq!(round_trip("2024-03-01T07:30:00.0Z"), "2024-03-01T07:30:00.0Z");
    }

    #[test]
    fn offsets_are_normalized_to_utc() {
        assert_eq!(round_trip("2024-03-01T13:00:00+05:30"), "2024-03-01T07:30:00Z");
        assert_eq!(round_trip("2024-02-29T23:30:00-01:00"), "2024-03-01T00:30:00Z");
        assert_eq!(round_trip("2024-01-01t00:00:00.5z"), "2024-01-01T00:00:00.5Z");
    }

    #[test]
    fn seconds_may_be_omitted_as_odata_allows() {
        assert_eq!(round_trip("2024-05-01T12:34Z"), "2024-05-01T12:34:00Z");
    }

    #[test]
    fn range_extremes_are_accepted() {
        assert_eq!(round_trip("0001-01-01T00:00:00Z"), "0001-01-01T00:00:00Z");
        assert_eq!(round_trip("9999-12-31T23:59:59.9999999Z"), "9999-12-31T23:59:59.9999999Z");
        assert_eq!(DateTimeOffset::parse("0001-01-01T00:00:00Z").unwrap().ticks(), MIN_TICKS);
        assert_eq!(
            DateTimeOffset::parse("9999-12-31T23:59:59.9999999Z").unwrap().ticks(),
            MAX_TICKS
        );
    }

    #[test]
    fn unix_epoch_is_tick_zero() {
        assert_eq!(DateTimeOffset::parse("1970-01-01T00:00:00Z").unwrap().ticks(), 0);
        assert_eq!(DateTimeOffset::parse("1969-12-31T23:59:59.9999999Z").unwrap().ticks(), -1);
    }

    #[test]
    fn invalid_texts_are_rejected() {
        for text in [
            "",
            "2024-03-01",
            "2024-03-01T07:30:00",
            "2024-03-01 07:30:00Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-03-01T24:00:00Z",
            "2024-03-01T23:60:00Z",
            "2024-03-01T23:59:60Z",
            "2024-03-01T07:30:00.12345678Z",
            "2024-03-01T07:30:00.Z",
            "2024-03-01T07:30:00+5:30",
            "2024-03-01T07:30:00+24:00",
            "2024-03-01T07:30:00Zjunk",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
            "+2024-03-01T07:30:00Z",
            "２０２４-03-01T07:30:00Z",
        ] {
            assert!(DateTimeOffset::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn every_day_of_four_centuries_converts_both_ways() {
        let start = days_from_civil(1900, 1, 1);
        for days in start..start + 146_097 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month as u32, day as u32), days);
        }
    }

    #[test]
    fn from_ticks_rejects_precision_the_digits_cannot_show() {
        assert!(DateTimeOffset::from_ticks(5_000_000, 1).is_some());
        assert!(DateTimeOffset::from_ticks(5_000_001, 1).is_none());
        assert!(DateTimeOffset::from_ticks(0, 8).is_none());
        assert!(DateTimeOffset::from_ticks(MAX_TICKS + 1, 7).is_none());
    }
}
