//! The `PhoneNumber` newtype: a US number in E.164 form, parsed once.
//!
//! Users write `+14155550100` in `CallerReputationNumber.spec.number`; Plivo's
//! Account Phone Number API takes and returns the same number as digits only
//! (`14155550100`). Parsing here keeps both spellings in one place.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A US phone number in E.164 form: `+1` followed by exactly 10 ASCII digits, where
/// the area code and the exchange (the first and the fourth digit) are 2 to 9, as the
/// North American Numbering Plan requires.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber {
    // The 10 national digits, without the `+1` country code.
    national: String,
}

/// The reason a string is not a US E.164 phone number.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PhoneNumberError {
    /// The value does not start with the `+1` country code.
    #[error(
        "phone number {value:?} must start with +1 (US numbers in E.164 form, e.g. +14155550100)"
    )]
    MissingCountryCode { value: String },
    /// The value has `+1` but not exactly 10 digits after it.
    #[error(
        "phone number {value:?} must have exactly 10 digits after +1, found {found} characters (e.g. +14155550100)"
    )]
    WrongLength { value: String, found: usize },
    /// The value contains something other than ASCII digits after `+1`.
    #[error(
        "phone number {value:?} may contain only digits after +1 (no spaces, dashes or brackets)"
    )]
    NotDigits { value: String },
    /// The area code or the exchange starts with 0 or 1, which no US number does.
    #[error(
        "phone number {value:?} is not a US number: the area code and the exchange (the 1st and 4th digits after +1) must start with 2 to 9 (e.g. +14155550100)"
    )]
    NotNanp { value: String },
}

impl PhoneNumber {
    /// Parses a US number written in E.164 form (`+14155550100`).
    ///
    /// # Errors
    /// Returns a [`PhoneNumberError`] naming the value when it lacks the `+1`
    /// prefix, has other than 10 digits after it, contains non-digits, or has
    /// an area code or exchange starting with 0 or 1.
    pub fn parse(value: &str) -> Result<Self, PhoneNumberError> {
        let Some(national) = value.strip_prefix("+1") else {
            return Err(PhoneNumberError::MissingCountryCode {
                value: value.to_owned(),
            });
        };
        if !national.chars().all(|c| c.is_ascii_digit()) {
            return Err(PhoneNumberError::NotDigits {
                value: value.to_owned(),
            });
        }
        if national.len() != 10 {
            return Err(PhoneNumberError::WrongLength {
                value: value.to_owned(),
                found: national.chars().count(),
            });
        }
        let leads_with_2_to_9 = |index: usize| matches!(national.as_bytes()[index], b'2'..=b'9');
        if !leads_with_2_to_9(0) || !leads_with_2_to_9(3) {
            return Err(PhoneNumberError::NotNanp {
                value: value.to_owned(),
            });
        }
        Ok(Self {
            national: national.to_owned(),
        })
    }

    /// Returns the number as Plivo writes it: country code and national digits, no `+` (`14155550100`).
    pub fn digits(&self) -> String {
        format!("1{}", self.national)
    }

    /// Returns the number in E.164 form (`+14155550100`).
    pub fn e164(&self) -> String {
        self.to_string()
    }

    /// Parses a number as Plivo returns it (`14155550100`, digits only, no `+`).
    ///
    /// # Errors
    /// The same as [`PhoneNumber::parse`] on the value with a `+` in front.
    pub fn from_plivo_digits(digits: &str) -> Result<Self, PhoneNumberError> {
        Self::parse(&format!("+{digits}"))
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+1{}", self.national)
    }
}

impl FromStr for PhoneNumber {
    type Err = PhoneNumberError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_number_parses() {
        let number = PhoneNumber::parse("+14155550100").unwrap();
        assert_eq!(number.digits(), "14155550100");
        assert_eq!(number.to_string(), "+14155550100");
        assert_eq!(number.e164(), "+14155550100");
    }

    #[test]
    fn plivo_digits_round_trip() {
        let number = PhoneNumber::from_plivo_digits("14155550100").unwrap();
        assert_eq!(number, PhoneNumber::parse("+14155550100").unwrap());
    }

    #[test]
    fn number_without_country_code_is_rejected() {
        for value in ["4155550100", "14155550100", "+44207946000", "", "+"] {
            assert!(
                matches!(
                    PhoneNumber::parse(value),
                    Err(PhoneNumberError::MissingCountryCode { .. })
                ),
                "{value:?} was accepted or gave another error"
            );
        }
    }

    #[test]
    fn number_with_wrong_length_is_rejected() {
        assert_eq!(
            PhoneNumber::parse("+1415555010"),
            Err(PhoneNumberError::WrongLength {
                value: "+1415555010".into(),
                found: 9
            })
        );
        assert!(matches!(
            PhoneNumber::parse("+141555501000"),
            Err(PhoneNumberError::WrongLength { found: 11, .. })
        ));
    }

    #[test]
    fn number_with_separators_is_rejected() {
        for value in [
            "+1 4155550100",
            "+1415-555-0100",
            "+1(415)5550100",
            "+1415555010٣",
        ] {
            assert!(
                matches!(
                    PhoneNumber::parse(value),
                    Err(PhoneNumberError::NotDigits { .. })
                ),
                "{value:?} was accepted or gave another error"
            );
        }
    }

    #[test]
    fn non_nanp_number_is_rejected() {
        for value in [
            "+10005550100",
            "+11415550100",
            "+14150550100",
            "+14151550100",
        ] {
            assert_eq!(
                PhoneNumber::parse(value),
                Err(PhoneNumberError::NotNanp {
                    value: value.into()
                }),
                "{value:?}"
            );
        }
        assert!(PhoneNumber::parse("+18002000100").is_ok());
    }

    #[test]
    fn parse_error_names_value_and_format() {
        let message = PhoneNumber::parse("555-0100").unwrap_err().to_string();
        assert!(message.contains("\"555-0100\""), "{message}");
        assert!(message.contains("+1"), "{message}");
    }
}
