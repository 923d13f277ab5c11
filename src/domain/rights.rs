//! Who may submit what (CONTRACT.md §4, §6.2, §11): one table for every path, the HTTP API,
//! the forms and the events a field office publishes straight to NATS.

use super::fold::Fact;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    FieldOffice,
    Evaluator,
    Admin,
}

impl Role {
    /// The role in words, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Role::FieldOffice => "field office",
            Role::Evaluator => "evaluator",
            Role::Admin => "admin",
        }
    }

    /// May this role submit events of `event_type`?
    pub fn may_submit(self, event_type: &str) -> bool {
        match self {
            Role::Admin => true,
            Role::FieldOffice => {
                matches!(
                    event_type,
                    "action.registered"
                        | "action.closed"
                        | "outcome.expectation_revised"
                        | "event.retracted"
                ) || super::tracks::parse_track_event_type(event_type).is_some()
            }
            Role::Evaluator => matches!(
                event_type,
                "outcome.verified"
                    | "outcome.disputed"
                    | "outcome.expectation_revised"
                    | "event.retracted"
            ),
        }
    }

    /// May this role withdraw an event of `target_type`? Only a role that may submit that type
    /// (a field office cannot withdraw an evaluator's `outcome.disputed`).
    pub fn may_retract(self, target_type: &str) -> bool {
        self == Role::Admin || (self.may_submit(target_type) && target_type != "event.retracted")
    }
}

impl Fact {
    /// The type of the event this fact was read from.
    pub fn event_type(&self) -> String {
        match self {
            Fact::Registered { .. } => "action.registered".into(),
            Fact::Closed => "action.closed".into(),
            Fact::Track { stage, .. } => stage.event_type(),
            Fact::Verified { .. } => "outcome.verified".into(),
            Fact::Disputed { .. } => "outcome.disputed".into(),
            Fact::ExpectationRevised { .. } => "outcome.expectation_revised".into(),
            Fact::Retracted { .. } => "event.retracted".into(),
        }
    }
}
