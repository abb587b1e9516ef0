//! Dashboard sessions: logging in with the ops token gives a random session id in an
//! `HttpOnly; SameSite=Strict` cookie, and a CSRF token that every changing request made
//! with that cookie must echo in `X-CSRF-Token`.
//!
//! Only digests of session ids are kept, and sessions live in memory: a restart logs every
//! browser out (the token logs it back in).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "webhook_session";
/// The header a changing request echoes the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after its login.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept at once (the oldest go first).
const MAX_SESSIONS: usize = 1024;

/// The logged-in browsers.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<[u8; 32], Session>>>);

struct Session {
    csrf: String,
    expires: Instant,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions(***)")
    }
}

/// A new session: the cookie value to set and its CSRF token.
#[derive(Debug)]
pub struct NewSession {
    /// The session id (the cookie's value).
    pub id: String,
    /// What changing requests must send in `X-CSRF-Token`.
    pub csrf: String,
}

impl Sessions {
    /// Start a session (`None` when the system's random source fails).
    pub fn create(&self) -> Option<NewSession> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut sessions = lock(&self.0);
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            digest(&id),
            Session {
                csrf: csrf.clone(),
                expires: now + LIFETIME,
            },
        );
        Some(NewSession { id, csrf })
    }

    /// The CSRF token of the live session whose cookie `headers` carry.
    pub fn csrf_of(&self, headers: &http::HeaderMap) -> Option<String> {
        let id = cookie(headers)?;
        let sessions = lock(&self.0);
        sessions
            .get(&digest(id))
            .filter(|s| s.expires > Instant::now())
            .map(|s| s.csrf.clone())
    }

    /// End the session whose cookie `headers` carry.
    pub fn end(&self, headers: &http::HeaderMap) {
        if let Some(id) = cookie(headers) {
            lock(&self.0).remove(&digest(id));
        }
    }
}

/// `headers` echo `csrf` in `X-CSRF-Token` (compared in constant time).
pub fn csrf_matches(csrf: &str, headers: &http::HeaderMap) -> bool {
    headers
        .get(CSRF_HEADER)
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(csrf.as_bytes())))
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session cookie's value in `headers`, if any.
fn cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            http::HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends() {
        let sessions = Sessions::default();
        let new = sessions.create().unwrap();
        let headers = with_cookie(&format!("theme=dark; {COOKIE}={}", new.id));
        assert_eq!(
            sessions.csrf_of(&headers).as_deref(),
            Some(new.csrf.as_str())
        );
        assert_eq!(
            sessions.csrf_of(&with_cookie(&format!("{COOKIE}=nope"))),
            None
        );
        assert_eq!(sessions.csrf_of(&http::HeaderMap::new()), None);
        sessions.end(&headers);
        assert_eq!(sessions.csrf_of(&headers), None);
    }

    #[test]
    fn csrf_must_match_exactly() {
        let mut headers = http::HeaderMap::new();
        assert!(!csrf_matches("abc", &headers));
        headers.insert(CSRF_HEADER, http::HeaderValue::from_static("abd"));
        assert!(!csrf_matches("abc", &headers));
        headers.insert(CSRF_HEADER, http::HeaderValue::from_static("abc"));
        assert!(csrf_matches("abc", &headers));
    }
}
