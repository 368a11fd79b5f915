//! The `Ein` newtype: a US Employer Identification Number, parsed once.
//!
//! Users may write an EIN as `123456789` or `12-3456789`; Plivo receives the
//! 9 digits only, so two spellings of one EIN compare equal here.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A US Employer Identification Number: 9 digits, stored without the dash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ein {
    digits: String,
}

/// The reason a string is not an EIN.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error(
    "EIN {value:?} is invalid: write 9 digits that do not start with 00, optionally with a dash after the second (12-3456789)"
)]
pub struct EinError {
    value: String,
}

impl Ein {
    /// Parses `123456789` or `12-3456789`.
    ///
    /// # Errors
    /// Returns [`EinError`] for anything else, including a dash in another
    /// position, spaces, a number of digits other than 9, or the prefix 00,
    /// which the IRS never assigns.
    pub fn parse(value: &str) -> Result<Self, EinError> {
        let digits = match value.split_once('-') {
            Some((prefix, rest)) if prefix.len() == 2 => format!("{prefix}{rest}"),
            Some(_) => return Err(EinError::new(value)),
            None => value.to_owned(),
        };
        if digits.len() != 9
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with("00")
        {
            return Err(EinError::new(value));
        }
        Ok(Self { digits })
    }

    /// Returns the 9 digits without a dash, as Plivo's Profile API takes them.
    pub fn digits(&self) -> &str {
        &self.digits
    }
}

impl EinError {
    fn new(value: &str) -> Self {
        Self {
            value: value.to_owned(),
        }
    }
}

/// Formats the EIN the way the IRS writes it: `12-3456789`.
impl fmt::Display for Ein {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", &self.digits[..2], &self.digits[2..])
    }
}

impl FromStr for Ein {
    type Err = EinError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ein_with_and_without_dash_are_equal() {
        let plain = Ein::parse("123456789").unwrap();
        let dashed = Ein::parse("12-3456789").unwrap();
        assert_eq!(plain, dashed);
        assert_eq!(dashed.digits(), "123456789");
        assert_eq!(plain.to_string(), "12-3456789");
    }

    #[test]
    fn malformed_ein_is_rejected() {
        // Each case breaks one part of the format.
        let cases = [
            ("12345678", "8 digits"),
            ("1234567890", "10 digits"),
            ("123-456789", "dash after the third digit"),
            ("12-34-56789", "two dashes"),
            ("12 3456789", "space instead of dash"),
            ("12-345678a", "a letter"),
            ("", "empty"),
            ("１23456789", "a non-ASCII digit"),
            ("000000000", "the prefix 00"),
            ("00-1234567", "the prefix 00 with a dash"),
        ];
        for (value, why) in cases {
            assert!(Ein::parse(value).is_err(), "{why}: {value:?} was accepted");
        }
    }

    #[test]
    fn ein_error_names_value_and_format() {
        let message = Ein::parse("12345").unwrap_err().to_string();
        assert!(message.contains("\"12345\""), "{message}");
        assert!(message.contains("12-3456789"), "{message}");
    }
}
