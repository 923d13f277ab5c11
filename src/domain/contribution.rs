//! An outcome's contribution (CONTRACT.md §2.3): how much the Action is judged to have done for
//! it, and how sure the reporter is, as the newest stage report that states one says.

use serde_json::Value;
use std::collections::BTreeMap;

/// A contribution as an event states it (`level`, `confidence`, `note`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Contribution {
    pub level: String,
    pub confidence: String,
    pub note: Option<String>,
}

/// Each outcome's contribution in `history` (the events as the log holds them, each with its
/// `retracted` mark, as `queries::history` gives them): the one stated by the latest event by
/// `occurred_on`, then `seq`, that states one and is not retracted. An outcome none speaks of
/// is absent.
pub fn contributions(history: &[Value]) -> BTreeMap<String, Contribution> {
    latest(history.iter().filter_map(|event| {
        if event["retracted"].as_bool() == Some(true) {
            return None;
        }
        let outcome = event["outcome_id"].as_str()?;
        let stated = event["data"]["contribution"].as_object()?;
        let text = |key: &str| stated.get(key).and_then(Value::as_str).map(str::to_owned);
        let contribution = Contribution {
            level: text("level")?,
            confidence: text("confidence")?,
            note: text("note"),
        };
        let when = (
            event["occurred_on"].as_str().unwrap_or("").to_owned(),
            event["seq"].as_u64().unwrap_or(0),
        );
        Some((outcome.to_owned(), when, contribution))
    }))
}

/// Of the contributions stated, each as `(outcome, when, contribution)` with `when` ordering
/// the events (`occurred_on`, then `seq`), each outcome's latest; a tie goes to the later one.
pub fn latest<When: Ord>(
    stated: impl IntoIterator<Item = (String, When, Contribution)>,
) -> BTreeMap<String, Contribution> {
    let mut newest: BTreeMap<String, (When, Contribution)> = BTreeMap::new();
    for (outcome, when, contribution) in stated {
        let newer = newest.get(&outcome).is_none_or(|(known, _)| when >= *known);
        if newer {
            newest.insert(outcome, (when, contribution));
        }
    }
    newest
        .into_iter()
        .map(|(outcome, (_, contribution))| (outcome, contribution))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(seq: u64, day: &str, outcome: &str, level: &str, retracted: bool) -> Value {
        json!({"seq": seq, "occurred_on": day, "outcome_id": outcome, "retracted": retracted,
               "data": {"contribution": {"level": level, "confidence": "medium"}}})
    }

    #[test]
    fn the_latest_report_not_retracted_speaks() {
        let history = [
            report(1, "2019-03-01", "O-1", "indirect", false),
            // Sent later but about an earlier day: the March report stays the latest.
            report(2, "2019-01-01", "O-1", "decisive", false),
            report(3, "2019-06-01", "O-1", "substantial", true),
            report(4, "2019-02-01", "O-2", "contributory", false),
            json!({"seq": 5, "occurred_on": "2019-07-01", "outcome_id": "O-2", "retracted": false,
                   "data": {"title": "no contribution stated"}}),
        ];
        let found = contributions(&history);
        assert_eq!(found["O-1"].level, "indirect");
        assert_eq!(found["O-2"].level, "contributory");
        assert_eq!(found["O-2"].confidence, "medium");
        assert_eq!(found.len(), 2);
        // The same day: the higher seq is the later.
        let same_day = [
            report(1, "2019-03-01", "O-1", "indirect", false),
            report(2, "2019-03-01", "O-1", "decisive", false),
        ];
        assert_eq!(contributions(&same_day)["O-1"].level, "decisive");
    }
}
