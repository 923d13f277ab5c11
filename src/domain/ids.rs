//! Identifier newtypes, parsed once at the edge. Inside the crate, functions take these, never `&str`.
//! Shapes follow CONTRACT.md §1; the JSON Schema checks the same patterns on the wire, these
//! constructors guard every other way in (query strings, CLI arguments, NATS subject tokens).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($name:ident, $check:expr, $what:literal) => {
        #[derive(
            Clone,
            Debug,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Serialize,
            Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> bool = $check;
                if check(text) {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(IdError {
                        what: $what,
                        text: text.chars().take(80).collect(),
                    })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(text: String) -> Result<Self, IdError> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("not a valid {what}: {text:?}")]
pub struct IdError {
    pub what: &'static str,
    pub text: String,
}

/// Dash-separated tokens drawn from `token_char`, e.g. `MIEUX-TH-2014-01` or `vot-protocol`.
fn dashed_tokens(text: &str, token_char: fn(u8) -> bool) -> bool {
    !text.is_empty()
        && text
            .split('-')
            .all(|token| !token.is_empty() && token.bytes().all(token_char))
}

string_id!(
    ActionId,
    |t| (3..=64).contains(&t.len())
        && dashed_tokens(t, |b| b.is_ascii_uppercase() || b.is_ascii_digit()),
    "action_id"
);
string_id!(
    OutcomeId,
    |t| (2..=64).contains(&t.len())
        && dashed_tokens(t, |b| b.is_ascii_lowercase() || b.is_ascii_digit()),
    "outcome_id"
);
string_id!(
    Country,
    |t| is_assigned_country(t) || t == REVIEW_COUNTRY,
    "country"
);

impl Country {
    /// A country a person can ask for (a review's scope, a filter): an assigned code, never
    /// the `XX` that marks a review of every country.
    pub fn parse_assigned(text: &str) -> Result<Country, IdError> {
        match is_assigned_country(text) {
            true => Ok(Country(text.to_owned())),
            false => Err(IdError {
                what: "country (an assigned ISO 3166-1 code)",
                text: text.chars().take(80).collect(),
            }),
        }
    }
}

/// The Action id under which reviews are logged (CONTRACT.md §5).
pub const REVIEW_ACTION: &str = "REVIEW";
/// The country of a review with no country scope, the only place `XX` is valid.
pub const REVIEW_COUNTRY: &str = "XX";

/// ISO 3166-1 alpha-2 officially assigned codes.
const ASSIGNED_COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

pub fn is_assigned_country(code: &str) -> bool {
    // The list is sorted, one code every three bytes: a binary search, no allocation.
    if code.len() != 2 {
        return false;
    }
    let (mut low, mut high) = (0, ASSIGNED_COUNTRIES.len().div_ceil(3));
    while low < high {
        let middle = (low + high) / 2;
        match ASSIGNED_COUNTRIES[middle * 3..middle * 3 + 2].cmp(code) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// The client-chosen idempotency key: a UUID, written lowercase.
pub type EventId = uuid::Uuid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_follow_the_contract_pattern() {
        assert!(ActionId::parse("MIEUX-TH-2014-01").is_ok());
        for bad in [
            "MI",
            "mieux-th",
            "A--B",
            "-ABC",
            "ABC-",
            "ABC.DEF",
            &"A".repeat(65),
        ] {
            assert!(ActionId::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn outcome_ids_follow_the_contract_pattern() {
        assert!(OutcomeId::parse("vot-protocol").is_ok());
        for bad in ["v", "Vot", "vot_protocol", "vot-", "a--b"] {
            assert!(OutcomeId::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn only_assigned_country_codes_are_countries() {
        assert_eq!(ASSIGNED_COUNTRIES.split(' ').count(), 249);
        assert!(Country::parse("TH").is_ok());
        assert!(Country::parse("ZZ").is_err());
        assert!(Country::parse("th").is_err());
        assert!(is_assigned_country("KG"));
        assert!(!is_assigned_country("XX"));
    }
}
