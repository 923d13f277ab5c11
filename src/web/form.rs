//! What the pages' forms share: a field as asked and its fault, the choices of a select, a
//! query read into fields (and what a page says of a parameter it does not take), the
//! time-travel part of a query kept in links, and the CSRF check of a form that changes
//! something.

use super::words;
use crate::api::{only_params, ApiError, Query};
use std::collections::{BTreeMap, HashMap};

/// A field of the filter form: its value as asked, and what is wrong with it, if anything.
#[derive(Default)]
pub struct Field {
    pub value: String,
    pub error: Option<String>,
}

/// An option of a select: its value, its words, and whether it is the one asked for.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub fn choices(field: &Field, options: impl IntoIterator<Item = (String, String)>) -> Vec<Choice> {
    options
        .into_iter()
        .map(|(value, label)| Choice {
            selected: field.value == value,
            value,
            label,
        })
        .collect()
}

/// The time-travel fields of §3.1, on every page's form.
pub const TIME_TRAVEL_FIELDS: [&str; 3] = ["as_of", "until_seq", "known_at"];

/// A page's filter form as asked: each field's value and, if it did not read, why; and what
/// the page says of a parameter it does not take. Shown again above the page's answer.
pub struct Form {
    pub fields: BTreeMap<&'static str, Field>,
    pub unknown: Option<String>,
}

impl Form {
    pub fn new(
        query: &HashMap<String, String>,
        names: &[&'static str],
        groups: &[&[&str]],
        faults: Vec<(&'static str, String)>,
    ) -> Form {
        let mut fields: BTreeMap<&'static str, Field> = names
            .iter()
            .map(|name| {
                let value = query.get(*name).cloned().unwrap_or_default();
                (*name, Field { value, error: None })
            })
            .collect();
        for (name, message) in faults {
            if let Some(field) = fields.get_mut(name) {
                field.error = Some(message);
            }
        }
        let unknown = only_params(query, groups).err().map(|error| match error {
            ApiError::BadQuery(message) => message,
            other => other.to_string(),
        });
        Form { fields, unknown }
    }

    /// `400` when anything asked did not read, else `200`: the page is shown either way.
    pub fn status(&self) -> axum::http::StatusCode {
        let bad = self.unknown.is_some() || self.fields.values().any(|f| f.error.is_some());
        match bad {
            true => axum::http::StatusCode::BAD_REQUEST,
            false => axum::http::StatusCode::OK,
        }
    }
}

/// A page's query without the fields a form left empty ("any").
pub fn asked(query: &Query) -> HashMap<String, String> {
    query
        .iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name.clone(), value.trim().to_owned()))
        .collect()
}

/// `as_of`, `until_seq` and `known_at` as asked, for links.
pub fn time_travel_query(query: &HashMap<String, String>) -> String {
    kept_query(query, &TIME_TRAVEL_FIELDS)
}

/// The parameters `names` as asked, as a query string for a link (empty when none was).
pub fn kept_query(query: &HashMap<String, String>, names: &[&str]) -> String {
    let parts: Vec<String> = names
        .iter()
        .filter_map(|name| Some(format!("{name}={}", words::url_encode(query.get(*name)?))))
        .collect();
    match parts.is_empty() {
        true => String::new(),
        false => format!("?{}", parts.join("&")),
    }
}

/// A form post's `csrf` field against the token of the page's session (CONTRACT.md §4.2): a
/// caller without a session (a bearer token) has no token to match, so it cannot post a form.
pub fn check_csrf(given: &str, expected: &str) -> Result<(), ApiError> {
    match !expected.is_empty() && super::session::same_secret(given, expected) {
        true => Ok(()),
        false => Err(ApiError::Csrf(
            "the form's csrf token is missing or not this session's: reload the page and try again"
                .into(),
        )),
    }
}
