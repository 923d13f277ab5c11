//! Rendered Action views, reused while the Action's record is unchanged.
//!
//! A view is a pure function of the Action's record, the filters, the reference date and the
//! rules (fixed for the process). An entry keeps the record bytes it was rendered from and is
//! served only when the record read now is byte-for-byte the same, so no write has to
//! invalidate anything and a stale entry can never be served: a changed record simply misses.

use crate::domain::fold::Filters;
use crate::domain::ids::{ActionId, Country};
use bytes::Bytes;
use chrono::NaiveDate;
use foldhash::{HashMap, HashMapExt};
use std::sync::Mutex;

/// What the rendered views may hold, record bytes included, before the cache starts over.
pub const VIEW_CACHE_BYTES: usize = 32 << 20;
/// What an entry costs besides its bytes (key, fields, hash slot).
const ENTRY_BYTES: usize = 160;

/// The input a view was rendered from, and what it rendered to.
struct Rendered {
    filters: Filters,
    reference: NaiveDate,
    /// A copy: the bytes read may be a slice of a whole delta segment, which a kept slice
    /// would keep in memory with it.
    record: Box<[u8]>,
    country: Country,
    body: Bytes,
}

impl Rendered {
    fn size(&self) -> usize {
        ENTRY_BYTES + self.record.len() + self.body.len()
    }
}

pub struct ViewCache {
    inner: Mutex<Entries>,
    budget: usize,
}

struct Entries {
    by_action: HashMap<ActionId, Rendered>,
    bytes: usize,
}

impl ViewCache {
    pub fn new(budget: usize) -> ViewCache {
        ViewCache {
            inner: Mutex::new(Entries {
                by_action: HashMap::new(),
                bytes: 0,
            }),
            budget,
        }
    }

    /// The view rendered from exactly `record` under `filters` at `reference`, if kept and
    /// `may_read` allows the country that record names (checked on every hit).
    pub fn get<E>(
        &self,
        action_id: &ActionId,
        filters: &Filters,
        reference: NaiveDate,
        record: &[u8],
        may_read: impl FnOnce(&Country) -> Result<(), E>,
    ) -> Result<Option<Bytes>, E> {
        let entries = self
            .inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match entries.by_action.get(action_id) {
            Some(rendered)
                if rendered.filters == *filters
                    && rendered.reference == reference
                    && *rendered.record == *record =>
            {
                may_read(&rendered.country)?;
                Ok(Some(rendered.body.clone()))
            }
            _ => Ok(None),
        }
    }

    /// Keeps `body` as the view rendered from `record`; one entry per Action, the newest.
    /// When the budget is spent the cache starts over: simple, and bounded.
    pub fn put(
        &self,
        action_id: &ActionId,
        filters: Filters,
        reference: NaiveDate,
        record: &[u8],
        country: Country,
        body: Bytes,
    ) {
        let size = ENTRY_BYTES + record.len() + body.len();
        if size > self.budget / 16 {
            return;
        }
        let rendered = Rendered {
            filters,
            reference,
            record: record.into(),
            country,
            body,
        };
        let mut entries = self
            .inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if entries.bytes + size > self.budget {
            entries.by_action.clear();
            entries.bytes = 0;
        }
        entries.bytes += size;
        if let Some(old) = entries.by_action.insert(action_id.clone(), rendered) {
            entries.bytes -= old.size();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> ActionId {
        ActionId::parse(&format!("MIEUX-TH-{n:06}")).unwrap()
    }

    fn country() -> Country {
        Country::parse("TH").unwrap()
    }

    #[test]
    fn serves_only_the_same_record_filters_and_date() {
        let cache = ViewCache::new(1 << 20);
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let record = vec![7u8; 100];
        cache.put(
            &id(1),
            Filters::default(),
            today,
            &record,
            country(),
            Bytes::from_static(b"{\"v\":1}"),
        );
        // The country the record names is handed to the access check, on every hit.
        let get = |filters: &Filters, reference: NaiveDate, record: &[u8], id: ActionId| {
            cache.get(&id, filters, reference, record, |named: &Country| {
                assert_eq!(*named, country());
                Ok::<(), ()>(())
            })
        };
        let body = get(&Filters::default(), today, &record, id(1))
            .unwrap()
            .unwrap();
        assert_eq!(&body[..], b"{\"v\":1}");
        let refused = cache.get(&id(1), &Filters::default(), today, &record, |_| Err("no"));
        assert_eq!(refused, Err("no"));
        let mut changed = record.clone();
        changed[99] = 8;
        assert!(get(&Filters::default(), today, &changed, id(1))
            .unwrap()
            .is_none());
        assert!(get(
            &Filters::default(),
            today.succ_opt().unwrap(),
            &record,
            id(1)
        )
        .unwrap()
        .is_none());
        let as_of = Filters {
            as_of: Some(today),
            ..Filters::default()
        };
        assert!(get(&as_of, today, &record, id(1)).unwrap().is_none());
        assert!(get(&Filters::default(), today, &record, id(2))
            .unwrap()
            .is_none());
    }

    #[test]
    fn stays_within_its_budget() {
        let budget = 64 << 10;
        let cache = ViewCache::new(budget);
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        for n in 0..1000 {
            cache.put(
                &id(n),
                Filters::default(),
                today,
                &[1u8; 500],
                country(),
                Bytes::from(vec![b'x'; 500]),
            );
            let entries = cache.inner.lock().unwrap();
            assert!(entries.bytes <= budget);
            assert_eq!(
                entries.bytes,
                entries
                    .by_action
                    .values()
                    .map(Rendered::size)
                    .sum::<usize>()
            );
        }
    }
}
