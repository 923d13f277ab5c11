//! Two points in time of one Action, side by side (CONTRACT.md §4.5), pure: two statuses (either
//! may be absent: no event under that side's filters) → the outcomes that were added, removed
//! or changed, each changed field as the pair `[a, b]`, and the flags added and removed.

use super::fold::{ActionStatus, Filters, Flag, OutcomeView};
use super::ids::{ActionId, OutcomeId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

/// One side of a comparison: the filters it was read under and its reference date.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Side {
    pub as_of: Option<NaiveDate>,
    pub until_seq: Option<u64>,
    pub known_at: Option<DateTime<Utc>>,
    pub reference_date: NaiveDate,
}

impl Side {
    pub fn new(filters: &Filters, reference_date: NaiveDate) -> Side {
        Side {
            as_of: filters.as_of,
            until_seq: filters.until_seq,
            known_at: filters.known_at,
            reference_date,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OutcomeChange {
    pub outcome_id: OutcomeId,
    pub change: Change,
    /// Each field of the outcome's view (§3) that differs, as `[a, b]`; a side without the
    /// outcome gives `null`.
    pub fields: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FlagChanges {
    pub added: Vec<Flag>,
    pub removed: Vec<Flag>,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub action_id: ActionId,
    pub a: Side,
    pub b: Side,
    pub outcomes: Vec<OutcomeChange>,
    pub flags: FlagChanges,
}

/// What changed from `a` to `b`; `None` when neither side has the Action.
pub fn compare(
    action_id: &ActionId,
    (side_a, a): (Side, Option<&ActionStatus>),
    (side_b, b): (Side, Option<&ActionStatus>),
) -> Option<Comparison> {
    if a.is_none() && b.is_none() {
        return None;
    }
    let outcomes_of = |status: Option<&ActionStatus>| -> Vec<(OutcomeId, Map<String, Value>)> {
        status
            .map(|s| s.view.outcomes.iter().map(fields_of).collect())
            .unwrap_or_default()
    };
    let (left, right) = (outcomes_of(a), outcomes_of(b));
    let ids: std::collections::BTreeSet<&OutcomeId> =
        left.iter().chain(&right).map(|(id, _)| id).collect();
    let outcomes = ids
        .into_iter()
        .filter_map(|id| {
            let (before, after) = (find(&left, id), find(&right, id));
            let change = match (before, after) {
                (None, Some(_)) => Change::Added,
                (Some(_), None) => Change::Removed,
                _ => Change::Changed,
            };
            let fields = differing(before, after);
            (!fields.is_empty()).then(|| OutcomeChange {
                outcome_id: id.clone(),
                change,
                fields,
            })
        })
        .collect();
    let (flags_a, flags_b) = (flags_of(a), flags_of(b));
    let same = |x: &Flag, y: &Flag| x.outcome_id == y.outcome_id && x.flag == y.flag;
    let only = |these: &[Flag], those: &[Flag]| -> Vec<Flag> {
        these
            .iter()
            .filter(|flag| !those.iter().any(|other| same(flag, other)))
            .cloned()
            .collect()
    };
    Some(Comparison {
        action_id: action_id.clone(),
        a: side_a,
        b: side_b,
        outcomes,
        flags: FlagChanges {
            added: only(flags_b, flags_a),
            removed: only(flags_a, flags_b),
        },
    })
}

fn find<'a>(
    side: &'a [(OutcomeId, Map<String, Value>)],
    id: &OutcomeId,
) -> Option<&'a Map<String, Value>> {
    side.iter().find(|(known, _)| known == id).map(|(_, f)| f)
}

fn flags_of(status: Option<&ActionStatus>) -> &[Flag] {
    status.map_or(&[][..], |s| &s.flags[..])
}

/// An outcome's view as its JSON fields, without its id.
fn fields_of(outcome: &OutcomeView) -> (OutcomeId, Map<String, Value>) {
    let mut fields = match serde_json::to_value(outcome) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    fields.remove("outcome_id");
    (outcome.outcome_id.clone(), fields)
}

fn differing(a: Option<&Map<String, Value>>, b: Option<&Map<String, Value>>) -> Map<String, Value> {
    let empty = Map::new();
    let (a, b) = (a.unwrap_or(&empty), b.unwrap_or(&empty));
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let (x, y) = (
                a.get(name).cloned().unwrap_or(Value::Null),
                b.get(name).cloned().unwrap_or(Value::Null),
            );
            (x != y).then(|| (name.clone(), Value::Array(vec![x, y])))
        })
        .collect()
}
