//! Browser sessions (CONTRACT.md §4.2): held by the server, in memory, never a copy of the
//! token. A session names its principal; a principal taken out of the configuration ends its
//! sessions at the next start, when the memory is new. Each session has its own CSRF token for
//! the forms that change something.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// The cookie that carries a session's id.
pub const COOKIE: &str = "impact_session";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The principal's name, as configured.
    pub principal: String,
    pub csrf: String,
    pub expires: DateTime<Utc>,
}

pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    lifetime: Duration,
}

/// Past this many live sessions, the expired ones are swept at the next sign-in.
const SWEEP_AT: usize = 1024;

impl Sessions {
    pub fn new(lifetime_hours: u64) -> Sessions {
        Sessions {
            live: Mutex::new(HashMap::new()),
            lifetime: Duration::hours(lifetime_hours as i64),
        }
    }

    /// A new session for `principal` from `now`: its id (for the cookie) and the session.
    pub fn create(&self, principal: &str, now: DateTime<Utc>) -> (String, Session) {
        let id = random_token();
        let session = Session {
            principal: principal.to_owned(),
            csrf: random_token(),
            expires: now + self.lifetime,
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.len() >= SWEEP_AT {
            live.retain(|_, session| session.expires > now);
        }
        live.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The session `id` names, if it is live at `now` (an expired one is forgotten).
    pub fn get(&self, id: &str, now: DateTime<Utc>) -> Option<Session> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.get(id) {
            Some(session) if session.expires > now => Some(session.clone()),
            Some(_) => {
                live.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn end(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// How long a session lasts, for the cookie's `Max-Age`.
    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime.num_seconds()
    }
}

/// 244 random bits (two version-4 UUIDs from the operating system's generator), as hex.
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |differ, (x, y)| differ | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::hours(1_000_000 + hours)
    }

    #[test]
    fn a_session_lasts_its_lifetime_and_not_a_moment_more() {
        let sessions = Sessions::new(12);
        let (id, session) = sessions.create("fo-bangkok", at(0));
        assert_eq!(session.expires, at(12));
        assert_eq!(sessions.get(&id, at(11)).unwrap().principal, "fo-bangkok");
        assert!(sessions.get(&id, at(12)).is_none(), "expired at its end");
        assert!(sessions.get(&id, at(1)).is_none(), "and forgotten");
    }

    #[test]
    fn ids_and_csrf_tokens_are_random_and_distinct() {
        let sessions = Sessions::new(1);
        let (a, first) = sessions.create("x", at(0));
        let (b, second) = sessions.create("x", at(0));
        assert_ne!(a, b);
        assert_ne!(first.csrf, second.csrf);
        assert!(a.len() >= 32 && a.chars().all(|c| c.is_ascii_hexdigit()));
        sessions.end(&a);
        assert!(sessions.get(&a, at(0)).is_none());
        assert!(sessions.get(&b, at(0)).is_some());
    }

    #[test]
    fn cookies_are_found_by_name() {
        let header = "theme=dark; impact_session=abc123; other=1";
        assert_eq!(cookie(header, COOKIE), Some("abc123"));
        assert_eq!(cookie("impact_session_x=1", COOKIE), None);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
