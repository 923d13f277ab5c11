//! Scheduled reviews (CONTRACT.md §5): slot arithmetic (pure, tested directly) and the loop that
//! runs one review per slot. A slot's review has the id `scheduled-<YYYYMMDDTHHMMZ>`; the writer
//! applies a review id once, so replicas and restarts cannot write a second one.

use chrono::{DateTime, Utc};
use croner::Cron;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

/// Parses a 5-field cron expression in UTC.
pub fn parse_schedule(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if fields != 5 {
        return Err(format!("review.schedule {expression:?}: a cron expression has 5 fields (or is \"off\"), this has {fields}"));
    }
    Cron::from_str(expression).map_err(|e| format!("review.schedule {expression:?}: {e}"))
}

/// The latest slot at or before `now`.
pub fn latest_slot(cron: &Cron, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&now, true).ok()
}

/// The first slot strictly after `now`.
pub fn next_slot(cron: &Cron, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&now, false).ok()
}

pub fn slot_review_id(slot: DateTime<Utc>) -> String {
    format!("scheduled-{}", slot.format("%Y%m%dT%H%MZ"))
}

pub fn slot_text(slot: DateTime<Utc>) -> String {
    slot.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Wall-clock time that advances with tokio's clock, so tests can pause and advance it.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall_at_start: DateTime<Utc>,
    instant_at_start: tokio::time::Instant,
}

impl Clock {
    pub fn starting_at(wall: DateTime<Utc>) -> Clock {
        Clock {
            wall_at_start: wall,
            instant_at_start: tokio::time::Instant::now(),
        }
    }

    pub fn system() -> Clock {
        Clock::starting_at(Utc::now())
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.instant_at_start;
        self.wall_at_start + chrono::Duration::from_std(elapsed).expect("elapsed time fits")
    }
}

/// Runs `run_slot` once for the latest slot already passed (the catch-up), then for each slot
/// as it comes. `run_slot` must itself be idempotent per slot: the writer refuses a second
/// review with the same id, so a restart inside a slot writes nothing new. When slots pass
/// while a run is still retrying (a broker down for days), the latest of them is caught up
/// next and the ones before it are skipped, saying so in the log: a review reads every view as
/// of its date, so the latest covers what the skipped ones would have read.
pub async fn schedule_loop<F, Fut>(cron: Cron, clock: Clock, mut run_slot: F)
where
    F: FnMut(DateTime<Utc>) -> Fut,
    Fut: Future<Output = ()>,
{
    // The slot to run at once, if any: the start's catch-up, or the latest of those that
    // passed while a run was still going.
    let mut due = latest_slot(&cron, clock.now());
    if let Some(latest) = due {
        tracing::info!(slot = %slot_text(latest), "catching up the latest scheduled slot (written only if its review is not in the log yet); earlier slots are not run");
    }
    loop {
        let slot = match due.take() {
            Some(slot) => slot,
            None => {
                let Some(next) = next_slot(&cron, clock.now()) else {
                    tracing::warn!("the review schedule has no next slot; scheduled reviews stop");
                    return;
                };
                tokio::time::sleep((next - clock.now()).to_std().unwrap_or(Duration::ZERO)).await;
                next
            }
        };
        run_slot(slot).await;
        if let Some((latest, skipped)) = passed_since(&cron, slot, clock.now()).split_last() {
            if !skipped.is_empty() {
                let skipped: Vec<String> = skipped.iter().map(|s| slot_text(*s)).collect();
                tracing::warn!(?skipped, latest = %slot_text(*latest), "scheduled slots passed while a review was being written: catching up the latest, skipping the others");
            }
            due = Some(*latest);
        }
    }
}

/// The slots after `after`, up to and including `now`, oldest first.
fn passed_since(cron: &Cron, after: DateTime<Utc>, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    std::iter::successors(next_slot(cron, after), |slot| next_slot(cron, *slot))
        .take_while(|slot| *slot <= now)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::{Arc, Mutex};

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn the_default_schedule_is_quarterly_and_crosses_the_year_end() {
        let cron = parse_schedule("0 3 1 */3 *").unwrap();
        assert_eq!(
            next_slot(&cron, at(2026, 11, 28, 0, 0)),
            Some(at(2027, 1, 1, 3, 0))
        );
        assert_eq!(
            next_slot(&cron, at(2027, 1, 1, 3, 0)),
            Some(at(2027, 4, 1, 3, 0))
        );
        assert_eq!(
            latest_slot(&cron, at(2026, 11, 28, 0, 0)),
            Some(at(2026, 10, 1, 3, 0))
        );
        assert_eq!(
            latest_slot(&cron, at(2026, 10, 1, 3, 0)),
            Some(at(2026, 10, 1, 3, 0))
        );
    }

    #[test]
    fn the_next_slot_is_right_across_month_ends() {
        let monthly_last_days = parse_schedule("30 23 31 * *").unwrap();
        assert_eq!(
            next_slot(&monthly_last_days, at(2027, 1, 31, 23, 30)),
            Some(at(2027, 3, 31, 23, 30))
        );
        let daily = parse_schedule("0 0 * * *").unwrap();
        assert_eq!(
            next_slot(&daily, at(2028, 2, 28, 12, 0)),
            Some(at(2028, 2, 29, 0, 0))
        );
        assert_eq!(
            next_slot(&daily, at(2026, 12, 31, 0, 0)),
            Some(at(2027, 1, 1, 0, 0))
        );
    }

    #[test]
    fn review_ids_name_the_slot() {
        assert_eq!(
            slot_review_id(at(2026, 10, 1, 3, 0)),
            "scheduled-20261001T0300Z"
        );
        assert_eq!(slot_text(at(2026, 10, 1, 3, 0)), "2026-10-01T03:00:00Z");
    }

    #[test]
    fn schedules_must_have_five_fields() {
        assert!(parse_schedule("0 0 3 1 */3 *").is_err());
        assert!(parse_schedule("0 3 1").is_err());
        assert!(parse_schedule("0 3 1 13 *").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_missed_slot_is_caught_up_once_then_each_slot_runs_in_turn() {
        let cron = parse_schedule("0 3 1 */3 *").unwrap();
        let clock = Clock::starting_at(at(2026, 11, 28, 0, 0));
        let ran = Arc::new(Mutex::new(Vec::new()));
        let seen = ran.clone();
        let task = tokio::spawn(schedule_loop(cron, clock, move |slot| {
            let seen = seen.clone();
            async move { seen.lock().unwrap().push(slot) }
        }));
        // Advance through two quarters of paused time.
        tokio::time::sleep(Duration::from_secs(200 * 24 * 3600)).await;
        task.abort();
        assert_eq!(
            *ran.lock().unwrap(),
            vec![
                at(2026, 10, 1, 3, 0),
                at(2027, 1, 1, 3, 0),
                at(2027, 4, 1, 3, 0)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slots_that_pass_during_a_long_run_are_caught_up_by_the_latest() {
        let cron = parse_schedule("0 3 1 */3 *").unwrap();
        let clock = Clock::starting_at(at(2026, 11, 28, 0, 0));
        let ran = Arc::new(Mutex::new(Vec::new()));
        let seen = ran.clone();
        let task = tokio::spawn(schedule_loop(cron, clock, move |slot| {
            let seen = seen.clone();
            async move {
                let first = seen.lock().unwrap().is_empty();
                seen.lock().unwrap().push(slot);
                // The first run retries for 300 days: three slots pass meanwhile.
                if first {
                    tokio::time::sleep(Duration::from_secs(300 * 24 * 3600)).await;
                }
            }
        }));
        tokio::time::sleep(Duration::from_secs(400 * 24 * 3600)).await;
        task.abort();
        assert_eq!(
            *ran.lock().unwrap(),
            vec![
                at(2026, 10, 1, 3, 0),
                // 300 days after 2026-11-28 is 2027-09-24: the latest slot passed is July's.
                at(2027, 7, 1, 3, 0),
                at(2027, 10, 1, 3, 0),
                at(2028, 1, 1, 3, 0)
            ]
        );
    }
}
