//! The projection (CONTRACT.md §3): an Action's facts folded into its status view, under the
//! time-travel filters of §3.1, and the flags of a view against a reference date.
//!
//! An `ActionRecord` holds the compact facts of every event of one Action, in `seq` order; it is
//! what the store keeps per Action. A view is a pure function of a record, the filters and the
//! rules, so the same log always gives the same bytes, and a view "as of" any point is the same
//! fold over fewer facts.

use super::ids::{ActionId, Country, EventId, OutcomeId};
use super::tracks::{Stage, Track};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// A resolved expectation: a forward stage of the outcome's track, and the date hoped for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedStage {
    pub stage: Stage,
    #[serde(with = "day_number")]
    pub by: NaiveDate,
}

/// Dates in a record are day numbers: three bytes in postcard where the text takes eleven.
mod day_number {
    use chrono::{Datelike, NaiveDate};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(date: &NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(date.num_days_from_ce())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
        let days = i32::deserialize(deserializer)?;
        NaiveDate::from_num_days_from_ce_opt(days)
            .ok_or_else(|| serde::de::Error::custom("day number out of range"))
    }
}

/// What one event contributes to its Action's view, and nothing more.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Fact {
    Registered {
        title: String,
    },
    Closed,
    Track {
        outcome: OutcomeId,
        stage: Stage,
        expected: Option<ExpectedStage>,
        title: Option<String>,
    },
    Verified {
        outcome: OutcomeId,
    },
    Disputed {
        outcome: OutcomeId,
    },
    ExpectationRevised {
        outcome: OutcomeId,
        expected: ExpectedStage,
    },
    Retracted {
        target: EventId,
    },
}

impl Fact {
    pub fn outcome(&self) -> Option<&OutcomeId> {
        match self {
            Fact::Track { outcome, .. }
            | Fact::Verified { outcome }
            | Fact::Disputed { outcome }
            | Fact::ExpectationRevised { outcome, .. } => Some(outcome),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldEvent {
    pub seq: u64,
    pub event_id: EventId,
    #[serde(with = "day_number")]
    pub occurred_on: NaiveDate,
    /// Microseconds since the Unix epoch, UTC: the transaction time of `known_at`.
    pub recorded_at_us: i64,
    pub evidence_count: u16,
    pub fact: Fact,
}

/// Every fact of one Action, in `seq` order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub action_id: ActionId,
    pub country: Country,
    pub events: Vec<FoldEvent>,
}

/// The time-travel filters of §3.1; all `None` is the view as known now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    pub as_of: Option<NaiveDate>,
    pub until_seq: Option<u64>,
    pub known_at: Option<DateTime<Utc>>,
}

impl Filters {
    /// Transaction time: was the event in the log at the point the filters name?
    pub fn known(&self, seq: u64, recorded_at_us: i64) -> bool {
        self.until_seq.is_none_or(|until| seq <= until)
            && self
                .known_at
                .is_none_or(|at| recorded_at_us <= at.timestamp_micros())
    }

    /// Valid time as well: had it happened by `as_of`?
    pub fn passes(&self, seq: u64, recorded_at_us: i64, occurred_on: NaiveDate) -> bool {
        self.known(seq, recorded_at_us) && self.as_of.is_none_or(|as_of| occurred_on <= as_of)
    }

    /// These filters for `record`, showing nothing past `durable` (the newest seq that a crash
    /// cannot give to another event). Unchanged for a record with nothing newer, so the same
    /// read gives the same filters, and a rendered view can be reused.
    pub fn within(&self, record: &ActionRecord, durable: u64) -> Filters {
        match record.events.last() {
            Some(newest) if newest.seq > durable => Filters {
                until_seq: Some(self.until_seq.map_or(durable, |until| until.min(durable))),
                ..*self
            },
            _ => *self,
        }
    }

    fn passes_event(&self, event: &FoldEvent) -> bool {
        self.passes(event.seq, event.recorded_at_us, event.occurred_on)
    }
}

/// The configurable numbers of the view rules (§3, §8 `[review]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRules {
    pub default_expectation_days: i64,
    pub stale_after_days: i64,
    pub unverified_after_days: i64,
    /// An Action registered longer ago than this with no outcome is flagged `no_outcomes`.
    pub no_outcomes_after_days: i64,
}

impl Default for ViewRules {
    fn default() -> ViewRules {
        ViewRules {
            default_expectation_days: 180,
            stale_after_days: 365,
            unverified_after_days: 180,
            no_outcomes_after_days: 365,
        }
    }
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeState {
    InProgress,
    Achieved,
    Sustained,
    Regressed,
}

impl OutcomeState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeState::InProgress => "in_progress",
            OutcomeState::Achieved => "achieved",
            OutcomeState::Sustained => "sustained",
            OutcomeState::Regressed => "regressed",
        }
    }

    pub fn parse(text: &str) -> Option<OutcomeState> {
        [
            OutcomeState::InProgress,
            OutcomeState::Achieved,
            OutcomeState::Sustained,
            OutcomeState::Regressed,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    Reported,
    Verified,
    Disputed,
}

impl Verification {
    /// The name the JSON gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Reported => "reported",
            Verification::Verified => "verified",
            Verification::Disputed => "disputed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DateSource {
    Explicit,
    Defaulted,
}

impl DateSource {
    /// The name the JSON gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            DateSource::Explicit => "explicit",
            DateSource::Defaulted => "defaulted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ExpectedView {
    pub stage: &'static str,
    pub by: NaiveDate,
    pub date_source: DateSource,
}

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OutcomeView {
    pub outcome_id: OutcomeId,
    pub track: &'static str,
    pub title: String,
    pub stage: &'static str,
    pub stage_since: NaiveDate,
    pub highest_stage: Option<&'static str>,
    pub state: OutcomeState,
    pub expected: Option<ExpectedView>,
    pub verification: Verification,
    pub evidence_count: u32,
    pub event_count: u32,
    pub last_event_on: NaiveDate,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub outcomes: u32,
    pub in_progress: u32,
    pub achieved: u32,
    pub sustained: u32,
    pub regressed: u32,
}

impl Summary {
    pub fn count(&mut self, state: OutcomeState) {
        self.outcomes += 1;
        match state {
            OutcomeState::InProgress => self.in_progress += 1,
            OutcomeState::Achieved => self.achieved += 1,
            OutcomeState::Sustained => self.sustained += 1,
            OutcomeState::Regressed => self.regressed += 1,
        }
    }
}

/// The reference-date-free part of `GET /v1/actions/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ActionView {
    pub action_id: ActionId,
    pub country: Country,
    pub title: Option<String>,
    pub registered: bool,
    pub closed: bool,
    pub event_count: u32,
    pub last_seq: u64,
    pub last_event_on: NaiveDate,
    pub outcomes: Vec<OutcomeView>,
    pub summary: Summary,
    /// The earliest `occurred_on` of a visible `action.registered`, for `no_outcomes`.
    #[serde(skip)]
    pub registered_on: Option<NaiveDate>,
}

impl ActionRecord {
    pub fn new(action_id: ActionId, country: Country) -> ActionRecord {
        ActionRecord {
            action_id,
            country,
            events: Vec::new(),
        }
    }

    pub fn push(&mut self, event: FoldEvent) {
        assert!(
            self.events.last().is_none_or(|last| last.seq < event.seq),
            "facts are appended in seq order"
        );
        self.events.push(event);
    }

    /// Event ids withdrawn by a retraction known under `filters` (valid time plays no part:
    /// a retraction corrects the record, not the world).
    pub fn retracted(&self, filters: &Filters) -> HashSet<EventId> {
        self.events
            .iter()
            .filter(|event| filters.known(event.seq, event.recorded_at_us))
            .filter_map(|event| match event.fact {
                Fact::Retracted { target } => Some(target),
                _ => None,
            })
            .collect()
    }

    /// The track an outcome is on: that of its first track event not withdrawn.
    pub fn outcome_track(
        &self,
        outcome_id: &OutcomeId,
        retracted: &HashSet<EventId>,
    ) -> Option<Track> {
        self.events.iter().find_map(|event| match &event.fact {
            Fact::Track { outcome, stage, .. }
                if outcome == outcome_id && !retracted.contains(&event.event_id) =>
            {
                Some(stage.track)
            }
            _ => None,
        })
    }

    pub fn find(&self, event_id: &EventId) -> Option<&FoldEvent> {
        self.events.iter().find(|event| event.event_id == *event_id)
    }

    /// The events a view under `filters` is made of: those the filters pass and no known
    /// retraction withdraws, in `seq` order.
    pub fn visible(&self, filters: &Filters) -> Vec<&FoldEvent> {
        let retracted = self.retracted(filters);
        self.events
            .iter()
            .filter(|event| filters.passes_event(event) && !retracted.contains(&event.event_id))
            .collect()
    }

    /// The view under `filters`, or `None` when no event is left (a `404`).
    pub fn view(&self, filters: &Filters, rules: &ViewRules) -> Option<ActionView> {
        let visible = self.visible(filters);
        if visible
            .iter()
            .all(|event| matches!(event.fact, Fact::Retracted { .. }))
        {
            return None;
        }
        let mut title = None;
        let mut registered_on: Option<NaiveDate> = None;
        let mut closed = false;
        let mut by_outcome: BTreeMap<&OutcomeId, Vec<&FoldEvent>> = BTreeMap::new();
        for event in &visible {
            match &event.fact {
                Fact::Registered {
                    title: registered_title,
                } => {
                    // The latest registration is taken as the correction of any before it.
                    title = Some(registered_title.clone());
                    registered_on = Some(
                        registered_on.map_or(event.occurred_on, |on| on.min(event.occurred_on)),
                    );
                }
                Fact::Closed => closed = true,
                fact => {
                    if let Some(outcome) = fact.outcome() {
                        by_outcome.entry(outcome).or_default().push(event);
                    }
                }
            }
        }
        let outcomes: Vec<OutcomeView> = by_outcome
            .into_iter()
            .filter_map(|(outcome_id, events)| fold_outcome(outcome_id, &events, rules))
            .collect();
        let mut summary = Summary::default();
        outcomes
            .iter()
            .for_each(|outcome| summary.count(outcome.state));
        Some(ActionView {
            action_id: self.action_id.clone(),
            country: self.country.clone(),
            title,
            registered: registered_on.is_some(),
            closed,
            event_count: visible.len() as u32,
            last_seq: visible
                .iter()
                .map(|event| event.seq)
                .max()
                .expect("visible is not empty"),
            last_event_on: visible
                .iter()
                .map(|event| event.occurred_on)
                .max()
                .expect("visible is not empty"),
            outcomes,
            summary,
            registered_on,
        })
    }
}

fn order_key(event: &FoldEvent) -> (NaiveDate, u64) {
    (event.occurred_on, event.seq)
}

/// One outcome's view from its visible events (seq order); `None` if no track event is left.
fn fold_outcome(
    outcome_id: &OutcomeId,
    events: &[&FoldEvent],
    rules: &ViewRules,
) -> Option<OutcomeView> {
    let track_events: Vec<(&FoldEvent, Stage)> = events
        .iter()
        .filter_map(|event| match event.fact {
            Fact::Track { stage, .. } => Some((*event, stage)),
            _ => None,
        })
        .collect();
    let (current_event, current) = *track_events
        .iter()
        .max_by_key(|(event, _)| order_key(event))?;
    let stage_since = current_event.occurred_on;
    let highest = track_events
        .iter()
        .filter(|(_, stage)| !stage.is_exit())
        .map(|(_, stage)| *stage)
        .max_by_key(|stage| stage.rank());
    let highest_rank = highest.and_then(Stage::rank).unwrap_or(0);
    let reached_earlier = track_events
        .iter()
        .filter(|(event, _)| event.occurred_on < stage_since)
        .filter_map(|(_, stage)| stage.rank())
        .max();
    let regressed = match (current.rank(), reached_earlier) {
        (None, _) => true,
        (Some(rank), Some(earlier)) => rank < earlier,
        (Some(_), None) => false,
    };
    let state = if regressed {
        OutcomeState::Regressed
    } else if current.is_sustained() {
        OutcomeState::Sustained
    } else if current.is_achieved() {
        OutcomeState::Achieved
    } else {
        OutcomeState::InProgress
    };

    // An expectation names a stage of the track it was stated on: once a retraction has moved
    // the outcome to another track, it no longer applies.
    let latest_expected = events
        .iter()
        .filter_map(|event| match &event.fact {
            Fact::Track {
                expected: Some(expected),
                ..
            }
            | Fact::ExpectationRevised { expected, .. } => Some((order_key(event), expected)),
            _ => None,
        })
        .filter(|(_, expected)| expected.stage.track == current.track)
        .max_by_key(|(key, _)| *key)
        .map(|(_, expected)| expected);
    let expected = match latest_expected {
        Some(expected) if expected.stage.rank().unwrap_or(0) > highest_rank => Some(ExpectedView {
            stage: expected.stage.name(),
            by: expected.by,
            date_source: DateSource::Explicit,
        }),
        _ if state == OutcomeState::InProgress => {
            highest
                .and_then(Stage::next_forward)
                .map(|next| ExpectedView {
                    stage: next.name(),
                    by: stage_since + chrono::Duration::days(rules.default_expectation_days),
                    date_source: DateSource::Defaulted,
                })
        }
        _ => None,
    };

    let verification = events
        .iter()
        .filter(|event| event.occurred_on >= stage_since)
        .filter_map(|event| match event.fact {
            Fact::Verified { .. } => Some((order_key(event), Verification::Verified)),
            Fact::Disputed { .. } => Some((order_key(event), Verification::Disputed)),
            _ => None,
        })
        .max_by_key(|(key, _)| *key)
        .map_or(Verification::Reported, |(_, verification)| verification);

    let title = events
        .iter()
        .find_map(|event| match &event.fact {
            Fact::Track {
                title: Some(title), ..
            } => Some(title.clone()),
            _ => None,
        })
        .unwrap_or_else(|| outcome_id.to_string());

    Some(OutcomeView {
        outcome_id: outcome_id.clone(),
        track: current.track.name(),
        title,
        stage: current.name(),
        stage_since,
        highest_stage: highest.map(Stage::name),
        state,
        expected,
        verification,
        evidence_count: events
            .iter()
            .map(|event| u32::from(event.evidence_count))
            .sum(),
        event_count: events.len() as u32,
        last_event_on: events
            .iter()
            .map(|event| event.occurred_on)
            .max()
            .expect("events is not empty"),
    })
}

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    Disputed,
    NoOutcomes,
    Overdue,
    Regressed,
    Stale,
    Unverified,
}

impl FlagKind {
    pub const ALL: [FlagKind; 6] = [
        FlagKind::Disputed,
        FlagKind::NoOutcomes,
        FlagKind::Overdue,
        FlagKind::Regressed,
        FlagKind::Stale,
        FlagKind::Unverified,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::Disputed => "disputed",
            FlagKind::NoOutcomes => "no_outcomes",
            FlagKind::Overdue => "overdue",
            FlagKind::Regressed => "regressed",
            FlagKind::Stale => "stale",
            FlagKind::Unverified => "unverified",
        }
    }

    pub fn parse(text: &str) -> Option<FlagKind> {
        FlagKind::ALL.into_iter().find(|flag| flag.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Flag {
    pub outcome_id: Option<OutcomeId>,
    pub flag: FlagKind,
    pub detail: String,
}

/// The flags of a view against a reference date, sorted by outcome then flag name.
pub fn flags(view: &ActionView, rules: &ViewRules, reference: NaiveDate) -> Vec<Flag> {
    let days_before = |date: NaiveDate| (reference - date).num_days();
    let mut flags = Vec::new();
    if let Some(registered_on) = view.registered_on {
        if view.outcomes.is_empty() && days_before(registered_on) > rules.no_outcomes_after_days {
            flags.push(Flag {
                outcome_id: None,
                flag: FlagKind::NoOutcomes,
                detail: format!(
                    "registered on {registered_on}, {} days ago, and no outcome reported",
                    days_before(registered_on)
                ),
            });
        }
    }
    for outcome in &view.outcomes {
        let mut flag = |flag: FlagKind, detail: String| {
            flags.push(Flag {
                outcome_id: Some(outcome.outcome_id.clone()),
                flag,
                detail,
            })
        };
        if let Some(expected) = &outcome.expected {
            if expected.by < reference {
                flag(
                    FlagKind::Overdue,
                    format!(
                        "{} expected by {}, {} days ago",
                        expected.stage,
                        expected.by,
                        days_before(expected.by)
                    ),
                );
            }
        }
        if matches!(
            outcome.state,
            OutcomeState::InProgress | OutcomeState::Achieved
        ) && days_before(outcome.last_event_on) > rules.stale_after_days
        {
            flag(
                FlagKind::Stale,
                format!(
                    "no report since {}, {} days ago",
                    outcome.last_event_on,
                    days_before(outcome.last_event_on)
                ),
            );
        }
        if matches!(
            outcome.state,
            OutcomeState::Achieved | OutcomeState::Sustained
        ) && outcome.verification == Verification::Reported
            && days_before(outcome.stage_since) > rules.unverified_after_days
        {
            flag(
                FlagKind::Unverified,
                format!(
                    "{} since {}, {} days, not verified",
                    outcome.stage,
                    outcome.stage_since,
                    days_before(outcome.stage_since)
                ),
            );
        }
        if outcome.state == OutcomeState::Regressed {
            let detail = match outcome.highest_stage {
                Some(highest) => format!(
                    "now {} since {}, had reached {highest}",
                    outcome.stage, outcome.stage_since
                ),
                None => format!("now {} since {}", outcome.stage, outcome.stage_since),
            };
            flag(FlagKind::Regressed, detail);
        }
        if outcome.verification == Verification::Disputed {
            flag(
                FlagKind::Disputed,
                format!("{} at stage {} is disputed", outcome.title, outcome.stage),
            );
        }
    }
    flags.sort_by(|a, b| (&a.outcome_id, a.flag.as_str()).cmp(&(&b.outcome_id, b.flag.as_str())));
    flags
}

/// `GET /v1/actions/{id}`: the view, its flags and the date they were read against.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ActionStatus {
    #[serde(flatten)]
    pub view: ActionView,
    pub flags: Vec<Flag>,
    pub reference_date: NaiveDate,
}

impl ActionStatus {
    pub fn new(view: ActionView, rules: &ViewRules, reference: NaiveDate) -> ActionStatus {
        let flags = flags(&view, rules, reference);
        ActionStatus {
            view,
            flags,
            reference_date: reference,
        }
    }
}
