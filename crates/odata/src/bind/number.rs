//! Exact decimal constants, and the folding of a comparison between an integer expression and a
//! constant that is not an integer.
//!
//! Every stored number is an `Edm.Int64`, but a filter may compare one with `2.5` or `1e3`.
//! Instead of comparing in floating point, which loses exactness past 2^53, the constant is
//! scaled and rounded once at bind time: `x gt 2.5` becomes `x gt 2`, `x ge 2.5` becomes
//! `x ge 3`, and `x eq 2.5` is false for every row.

use std::cmp::Ordering;

/// A finite decimal number written out in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decimal {
    negative: bool,
    /// Integer digits without leading zeros; empty for zero.
    whole: String,
    /// Fractional digits without trailing zeros.
    fraction: String,
}

/// A numeric constant as a comparison uses it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Constant {
    /// A finite value.
    Finite(Decimal),
    /// `INF` or `-INF`; `true` for the positive one.
    Infinite(bool),
    /// `NaN`, which compares equal to nothing.
    NotANumber,
}

/// The position of a constant, once scaled, against the range of `Edm.Int64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rounded {
    /// The constant is exactly this integer.
    Exact(i64),
    /// The constant lies strictly between two integers; `floor` is the lower one.
    Between {
        /// The largest integer below the constant.
        floor: i64,
    },
    /// The constant is below every `Edm.Int64` value.
    BelowRange,
    /// The constant is above every `Edm.Int64` value.
    AboveRange,
}

impl Decimal {
    /// Reads a decimal literal such as `-12.50` or `123456789012345678901234`.
    pub(crate) fn parse(text: &str) -> Option<Decimal> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() || !(whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()))
        {
            return None;
        }
        let whole = whole.trim_start_matches('0').to_owned();
        let fraction = fraction.trim_end_matches('0').to_owned();
        let negative = negative && !(whole.is_empty() && fraction.is_empty());
        Some(Decimal { negative, whole, fraction })
    }

    /// Converts a double to the shortest decimal that reads back as the same double.
    pub(crate) fn from_f64(value: f64) -> Constant {
        if value.is_nan() {
            return Constant::NotANumber;
        }
        if value.is_infinite() {
            return Constant::Infinite(value > 0.0);
        }
        // Rust prints a finite double without exponent and with the fewest digits that
        // round-trip, which is the decimal a client means by `1e3` or `0.1`.
        let text = format!("{value}");
        Decimal::parse(&text).map_or(Constant::NotANumber, Constant::Finite)
    }

    /// Returns the number with the opposite sign.
    pub(crate) fn negated(&self) -> Decimal {
        let is_zero = self.whole.is_empty() && self.fraction.is_empty();
        Decimal { negative: !self.negative && !is_zero, ..self.clone() }
    }

    /// Returns the nearest double.
    pub(crate) fn to_f64(&self) -> f64 {
        let sign = if self.negative { "-" } else { "" };
        let whole = if self.whole.is_empty() { "0" } else { &self.whole };
        format!("{sign}{whole}.{}0", self.fraction).parse().unwrap_or(f64::NAN)
    }

    /// Returns the number of fractional digits.
    pub(crate) fn scale(&self) -> usize {
        self.fraction.len()
    }

    /// Returns the value times `10^scale`, rounded as [`Rounded`] describes.
    pub(crate) fn scaled(&self, scale: usize) -> Rounded {
        // Shift the decimal point `scale` places to the right.
        let mut whole = self.whole.clone();
        let shifted: String = self.fraction.chars().take(scale).collect();
        whole.push_str(&shifted);
        whole.extend(std::iter::repeat_n('0', scale.saturating_sub(self.fraction.len())));
        let has_rest = self.fraction.len() > scale;

        let magnitude = whole.trim_start_matches('0');
        let out_of_range = if self.negative { Rounded::BelowRange } else { Rounded::AboveRange };
        if magnitude.len() > 19 {
            return out_of_range;
        }
        // At most 19 digits always fit an i128; no digits at all is zero.
        let magnitude: i128 = if magnitude.is_empty() { 0 } else { magnitude.parse().unwrap_or(0) };
        let value = if self.negative { -magnitude } else { magnitude };
        match (has_rest, self.negative) {
            (false, _) => i64::try_from(value).map_or(out_of_range, Rounded::Exact),
            // Truncating toward zero gives the floor for positive values and the ceiling for
            // negative ones.
            (true, false) => i64::try_from(value).map_or(out_of_range, |floor| {
                if floor == i64::MAX { Rounded::AboveRange } else { Rounded::Between { floor } }
            }),
            (true, true) => match i64::try_from(value - 1) {
                Ok(floor) => Rounded::Between { floor },
                Err(_) => Rounded::BelowRange,
            },
        }
    }

    /// Returns the value as an integer mantissa with `scale()` implied fractional digits, if
    /// that fits 64 bits.
    pub(crate) fn mantissa(&self) -> Option<i64> {
        match self.scaled(self.scale()) {
            Rounded::Exact(value) => Some(value),
            _ => None,
        }
    }

    /// Compares two decimals exactly.
    pub(crate) fn compare(&self, other: &Decimal) -> Ordering {
        // Without leading zeros, a longer whole part is larger; equal lengths compare digit by
        // digit, and so do fractions without trailing zeros.
        let by_magnitude = self
            .whole
            .len()
            .cmp(&other.whole.len())
            .then_with(|| self.whole.cmp(&other.whole))
            .then_with(|| self.fraction.cmp(&other.fraction));
        match (self.negative, other.negative) {
            (false, false) => by_magnitude,
            (true, true) => by_magnitude.reverse(),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn scaling_rounds_toward_the_floor_and_remembers_the_rest() {
        assert_eq!(decimal("2.5").scaled(0), Rounded::Between { floor: 2 });
        assert_eq!(decimal("-2.5").scaled(0), Rounded::Between { floor: -3 });
        assert_eq!(decimal("2.5").scaled(1), Rounded::Exact(25));
        assert_eq!(decimal("0.5").scaled(7), Rounded::Exact(5_000_000));
        assert_eq!(decimal("-0.000").scaled(0), Rounded::Exact(0));
        assert_eq!(decimal("12.000").scaled(0), Rounded::Exact(12));
    }

    #[test]
    fn constants_past_the_int64_range_say_which_side() {
        assert_eq!(decimal("9223372036854775807").scaled(0), Rounded::Exact(i64::MAX));
        assert_eq!(decimal("9223372036854775808").scaled(0), Rounded::AboveRange);
        assert_eq!(decimal("9223372036854775807.5").scaled(0), Rounded::AboveRange);
        assert_eq!(decimal("-9223372036854775808").scaled(0), Rounded::Exact(i64::MIN));
        assert_eq!(decimal("-9223372036854775808.1").scaled(0), Rounded::BelowRange);
        assert_eq!(decimal("123456789012345678901234567890").scaled(0), Rounded::AboveRange);
    }

    #[test]
    fn doubles_become_their_shortest_decimal() {
        assert_eq!(Decimal::from_f64(1e3), Constant::Finite(decimal("1000")));
        assert_eq!(Decimal::from_f64(0.1), Constant::Finite(decimal("0.1")));
        assert_eq!(Decimal::from_f64(f64::INFINITY), Constant::Infinite(true));
        assert_eq!(Decimal::from_f64(f64::NAN), Constant::NotANumber);
    }

    #[test]
    fn decimals_compare_exactly() {
        assert_eq!(decimal("2.5").compare(&decimal("2.50")), Ordering::Equal);
        assert_eq!(decimal("10").compare(&decimal("9.99")), Ordering::Greater);
        assert_eq!(decimal("-10").compare(&decimal("-9.99")), Ordering::Less);
        assert_eq!(decimal("0").compare(&decimal("-0")), Ordering::Equal);
    }
}
