//! The outcome tracks and their stages (CONTRACT.md §2.4), defined once. Everything that needs a
//! stage name, a rank or the list of event types reads it from `TRACKS`.

use serde::{Deserialize, Serialize};
use std::fmt;

pub struct TrackDef {
    pub name: &'static str,
    /// Forward stages in order: rank 1, 2, …
    pub forward: &'static [&'static str],
    pub exits: &'static [&'static str],
    pub achieved_from: &'static str,
    pub sustained_from: &'static str,
}

pub const TRACKS: [TrackDef; 6] = [
    TrackDef {
        name: "legislation",
        forward: &[
            "identified",
            "drafting",
            "tabled",
            "pending",
            "adopted",
            "in_force",
            "implemented",
        ],
        exits: &["stalled", "withdrawn", "rejected", "repealed"],
        achieved_from: "adopted",
        sustained_from: "implemented",
    },
    TrackDef {
        name: "policy",
        forward: &[
            "agenda",
            "drafting",
            "consultation",
            "final_approval",
            "ratified",
            "implementation_started",
            "implemented",
        ],
        exits: &["stalled", "shelved", "superseded"],
        achieved_from: "ratified",
        sustained_from: "implemented",
    },
    TrackDef {
        name: "protocol",
        forward: &[
            "review_initiated",
            "revised",
            "endorsed",
            "in_use",
            "institutionalised",
        ],
        exits: &["stalled", "abandoned"],
        achieved_from: "endorsed",
        sustained_from: "institutionalised",
    },
    TrackDef {
        name: "mechanism",
        forward: &[
            "proposed",
            "established",
            "operational",
            "institutionalised",
        ],
        exits: &["dormant", "dissolved"],
        achieved_from: "established",
        sustained_from: "institutionalised",
    },
    TrackDef {
        name: "network",
        forward: &["created", "active", "formalised", "sustained"],
        exits: &["dormant"],
        achieved_from: "created",
        sustained_from: "sustained",
    },
    TrackDef {
        name: "practice",
        forward: &["awareness", "applied", "routine", "diffused"],
        exits: &["lapsed"],
        achieved_from: "applied",
        sustained_from: "routine",
    },
];

/// A track, as its index in `TRACKS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Track(u8);

/// A stage of a track: forward stages are `0..forward.len()`, exits follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stage {
    pub track: Track,
    index: u8,
}

impl Track {
    pub fn all() -> impl Iterator<Item = Track> {
        (0..TRACKS.len() as u8).map(Track)
    }

    pub fn parse(name: &str) -> Option<Track> {
        Track::all().find(|track| track.name() == name)
    }

    /// The track's row of `TRACKS`.
    pub fn def(self) -> &'static TrackDef {
        &TRACKS[self.0 as usize]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    pub fn stage(self, name: &str) -> Option<Stage> {
        let def = self.def();
        def.forward
            .iter()
            .chain(def.exits)
            .position(|stage| *stage == name)
            .map(|index| Stage {
                track: self,
                index: index as u8,
            })
    }

    /// The forward stage named `name`, or `None` for an exit or a stage of another track.
    pub fn forward_stage(self, name: &str) -> Option<Stage> {
        self.stage(name).filter(|stage| stage.rank().is_some())
    }

    pub fn stages(self) -> impl Iterator<Item = Stage> {
        let count = self.def().forward.len() + self.def().exits.len();
        (0..count as u8).map(move |index| Stage { track: self, index })
    }
}

impl Stage {
    pub fn track(self) -> Track {
        self.track
    }

    pub fn name(self) -> &'static str {
        let def = self.track.def();
        let index = self.index as usize;
        def.forward
            .get(index)
            .copied()
            .unwrap_or_else(|| def.exits[index - def.forward.len()])
    }

    /// 1-based rank of a forward stage; `None` for an exit.
    pub fn rank(self) -> Option<u8> {
        ((self.index as usize) < self.track.def().forward.len()).then_some(self.index + 1)
    }

    pub fn is_exit(self) -> bool {
        self.rank().is_none()
    }

    /// The next forward stage, if this is a forward stage below the last.
    pub fn next_forward(self) -> Option<Stage> {
        let rank = self.rank()? as usize;
        (rank < self.track.def().forward.len()).then_some(Stage {
            track: self.track,
            index: rank as u8,
        })
    }

    pub fn is_achieved(self) -> bool {
        self.reaches(self.track.def().achieved_from)
    }

    pub fn is_sustained(self) -> bool {
        self.reaches(self.track.def().sustained_from)
    }

    fn reaches(self, threshold: &str) -> bool {
        let threshold = self
            .track
            .forward_stage(threshold)
            .expect("threshold is a forward stage");
        matches!((self.rank(), threshold.rank()), (Some(rank), Some(from)) if rank >= from)
    }

    /// The event type naming this stage, e.g. `legislation.pending`.
    pub fn event_type(self) -> String {
        format!("{}.{}", self.track.name(), self.name())
    }
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a track event type such as `network.created`.
pub fn parse_track_event_type(event_type: &str) -> Option<Stage> {
    let (track, stage) = event_type.split_once('.')?;
    Track::parse(track)?.stage(stage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_the_table_and_exits_have_none() {
        let legislation = Track::parse("legislation").unwrap();
        assert_eq!(legislation.stage("identified").unwrap().rank(), Some(1));
        assert_eq!(legislation.stage("implemented").unwrap().rank(), Some(7));
        assert_eq!(legislation.stage("repealed").unwrap().rank(), None);
        assert!(legislation.forward_stage("stalled").is_none());
    }

    #[test]
    fn achieved_and_sustained_start_at_their_thresholds() {
        let policy = Track::parse("policy").unwrap();
        assert!(!policy.stage("final_approval").unwrap().is_achieved());
        assert!(policy.stage("ratified").unwrap().is_achieved());
        assert!(!policy
            .stage("implementation_started")
            .unwrap()
            .is_sustained());
        assert!(policy.stage("implemented").unwrap().is_sustained());
        assert!(!policy.stage("shelved").unwrap().is_achieved());
    }

    #[test]
    fn every_stage_round_trips_through_its_event_type() {
        for track in Track::all() {
            for stage in track.stages() {
                assert_eq!(parse_track_event_type(&stage.event_type()), Some(stage));
            }
        }
        assert_eq!(parse_track_event_type("network.adopted"), None);
    }
}
