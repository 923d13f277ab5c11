//! The in-memory `event_id → seq` map: 16 bytes an event instead of 24 (a million events cost
//! about 36 MiB at the map's load factor, not 52), because it keys by 64 bits of the id.
//!
//! Two ids may share those 64 bits; the second one goes to a small exact map. A lookup
//! therefore gives a *candidate*: the caller checks the full id in the index segment at that
//! seq, and a different id there means this one is not stored.

use crate::domain::ids::EventId;
use foldhash::{HashMap, HashMapExt};

#[derive(Default)]
pub(super) struct IdMap {
    by_key: HashMap<u64, u64>,
    /// Ids whose key another stored id had first.
    collided: HashMap<EventId, u64>,
}

/// What a lookup found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// This id is stored at this seq.
    Exact(u64),
    /// An id with this one's key is stored at this seq: this one, or another.
    Candidate(u64),
    Absent,
}

fn key(id: &EventId) -> u64 {
    let bytes = id.as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
        ^ u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes"))
}

impl IdMap {
    pub(super) fn with_capacity(events: usize) -> IdMap {
        IdMap {
            by_key: HashMap::with_capacity(events),
            collided: HashMap::new(),
        }
    }

    /// Records a newly stored id (each id is stored once).
    pub(super) fn insert(&mut self, id: EventId, seq: u64) {
        match self.by_key.entry(key(&id)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(seq);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collided.insert(id, seq);
            }
        }
    }

    pub(super) fn get(&self, id: &EventId) -> Found {
        if let Some(seq) = self.collided.get(id) {
            return Found::Exact(*seq);
        }
        match self.by_key.get(&key(id)) {
            Some(seq) => Found::Candidate(*seq),
            None => Found::Absent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(high: u64, low: u64) -> EventId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high.to_le_bytes());
        bytes[8..].copy_from_slice(&low.to_le_bytes());
        EventId::from_bytes(bytes)
    }

    #[test]
    fn ids_that_share_a_key_are_both_found() {
        let mut map = IdMap::default();
        let (first, second, third) = (id(1, 2), id(2, 1), id(3, 0));
        assert_eq!(key(&first), key(&second));
        assert_eq!(key(&first), key(&third));
        map.insert(first, 10);
        map.insert(second, 11);
        assert_eq!(map.get(&first), Found::Candidate(10));
        assert_eq!(map.get(&second), Found::Exact(11));
        // Not stored, but its key is: the caller's check of the full id at seq 10 tells.
        assert_eq!(map.get(&third), Found::Candidate(10));
        assert_eq!(map.get(&id(7, 7)), Found::Absent);
    }
}
