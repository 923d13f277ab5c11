//! The outcome rows of the exports (CONTRACT.md §9): one per outcome in scope, the columns in
//! the contract's order, each cell typed so that a writer can put dates as dates and counts as
//! numbers (the CSV writes them all as text).

use super::fold::{ActionStatus, FlagKind, OutcomeState, OutcomeView};
use super::tracks::Track;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// The columns, in the contract's order.
pub const COLUMNS: [&str; 21] = [
    "reference_date",
    "until_seq",
    "known_at",
    "action_id",
    "country",
    "action_title",
    "outcome_id",
    "outcome_title",
    "track",
    "stage",
    "stage_since",
    "highest_stage",
    "state",
    "expected_stage",
    "expected_by",
    "expected_date_source",
    "verification",
    "flags",
    "evidence_count",
    "event_count",
    "last_event_on",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// A null.
    Empty,
    Text(String),
    Date(NaiveDate),
    Count(u64),
}

impl Cell {
    /// The cell as CSV text: a date as `YYYY-MM-DD`, a text that a spreadsheet would run as a
    /// formula (it begins with `=`, `+`, `-`, `@`, a tab or a carriage return) behind a `'`.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Cell::Empty => "".into(),
            Cell::Date(date) => date.to_string().into(),
            Cell::Count(count) => count.to_string().into(),
            Cell::Text(text) if text.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
                format!("'{text}").into()
            }
            Cell::Text(text) => text.as_str().into(),
        }
    }
}

/// What every row repeats: the point in time the export is of.
#[derive(Clone, Copy, Debug)]
pub struct Head {
    pub reference: NaiveDate,
    pub until_seq: Option<u64>,
    pub known_at: Option<DateTime<Utc>>,
}

/// The outcomes in scope: those on `track`, in `state` and carrying `flag`, where given (the
/// list filters of `GET /v1/actions`, read for each outcome).
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope {
    pub track: Option<Track>,
    pub state: Option<OutcomeState>,
    pub flag: Option<FlagKind>,
}

impl Scope {
    /// Whether `outcome`, carrying `flags`, is in scope.
    pub fn admits(&self, outcome: &OutcomeView, flags: &[FlagKind]) -> bool {
        self.track.is_none_or(|t| outcome.track == t.name())
            && self.state.is_none_or(|s| outcome.state == s)
            && self.flag.is_none_or(|f| flags.contains(&f))
    }
}

/// The flags an Action's status raises on `outcome`, in the order raised.
pub fn flags_of(status: &ActionStatus, outcome: &OutcomeView) -> Vec<FlagKind> {
    status
        .flags
        .iter()
        .filter(|flag| flag.outcome_id.as_ref() == Some(&outcome.outcome_id))
        .map(|flag| flag.flag)
        .collect()
}

/// The rows of one Action's outcomes in scope, by `outcome_id`.
pub fn rows(status: &ActionStatus, scope: &Scope, head: &Head) -> Vec<[Cell; 21]> {
    let view = &status.view;
    let mut outcomes: Vec<_> = view.outcomes.iter().collect();
    outcomes.sort_by(|a, b| a.outcome_id.as_str().cmp(b.outcome_id.as_str()));
    let text = |s: &str| Cell::Text(s.to_owned());
    outcomes
        .into_iter()
        .filter_map(|outcome| {
            let mut flags = flags_of(status, outcome);
            if !scope.admits(outcome, &flags) {
                return None;
            }
            flags.sort_by_key(|flag| flag.as_str());
            flags.dedup();
            let names: Vec<&str> = flags.iter().map(|flag| flag.as_str()).collect();
            let expected = outcome.expected.as_ref();
            Some([
                Cell::Date(head.reference),
                head.until_seq.map_or(Cell::Empty, Cell::Count),
                head.known_at.map_or(Cell::Empty, |at| {
                    Cell::Text(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                }),
                text(view.action_id.as_str()),
                text(view.country.as_str()),
                view.title.as_deref().map_or(Cell::Empty, text),
                text(outcome.outcome_id.as_str()),
                text(&outcome.title),
                text(outcome.track),
                text(outcome.stage),
                Cell::Date(outcome.stage_since),
                outcome.highest_stage.map_or(Cell::Empty, text),
                text(outcome.state.as_str()),
                expected.map_or(Cell::Empty, |e| text(e.stage)),
                expected.map_or(Cell::Empty, |e| Cell::Date(e.by)),
                expected.map_or(Cell::Empty, |e| text(e.date_source.as_str())),
                text(outcome.verification.as_str()),
                match names.is_empty() {
                    true => Cell::Empty,
                    false => Cell::Text(names.join("|")),
                },
                Cell::Count(outcome.evidence_count.into()),
                Cell::Count(outcome.event_count.into()),
                Cell::Date(outcome.last_event_on),
            ])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fold::{DateSource, Verification};

    #[test]
    fn a_formula_is_neutralised_and_other_text_kept() {
        for formula in ["=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            let cell = Cell::Text(formula.into());
            assert_eq!(cell.text(), format!("'{formula}"));
        }
        assert_eq!(
            Cell::Text("Study visit, 2019".into()).text(),
            "Study visit, 2019"
        );
        assert_eq!(Cell::Empty.text(), "");
        assert_eq!(Cell::Count(7).text(), "7");
    }

    #[test]
    fn names_are_those_of_the_json() {
        for verification in [
            Verification::Reported,
            Verification::Verified,
            Verification::Disputed,
        ] {
            assert_eq!(
                serde_json::to_value(verification).unwrap(),
                verification.as_str()
            );
        }
        for source in [DateSource::Explicit, DateSource::Defaulted] {
            assert_eq!(serde_json::to_value(source).unwrap(), source.as_str());
        }
    }
}
