//! Who may do what, and how often: the bearer tokens that guard mutating calls and (optionally)
//! inference, compared in constant time, and the per-client token buckets that bound scene
//! commands. Plain data and checks; the doors (`api`) apply them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A value that must not be logged: its `Debug` says only whether it is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Equality that takes as long whatever the first differing byte (it leaks only the length).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a caller presented, checked against the configured tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    /// May change things (control API, repository, scene commands).
    pub control: bool,
    /// May run inference.
    pub infer: bool,
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub api: Option<Secret>,
    pub infer: Option<Secret>,
}

impl Tokens {
    /// The rights of a caller that presented `token` (or none). Without an API token everyone
    /// may control; without an inference token everyone may infer; the API token also grants
    /// inference.
    pub fn rights(&self, token: Option<&str>) -> Rights {
        let matches = |s: &Option<Secret>| match (s, token) {
            (Some(s), Some(t)) => constant_time_eq(s.expose().as_bytes(), t.as_bytes()),
            _ => false,
        };
        let control = self.api.is_none() || matches(&self.api);
        let infer = self.infer.is_none() || matches(&self.infer) || (self.api.is_some() && matches(&self.api));
        Rights { control, infer }
    }
}

/// The server's access rules: its tokens and the scene-command limiter.
#[derive(Debug)]
pub struct Access {
    pub tokens: Tokens,
    pub scene_commands: RateLimiter,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per client: `rate` per second, up to `burst` at once. Idle buckets are
/// forgotten, and the table is bounded.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Clients tracked at most; beyond, the longest idle are forgotten first.
const MAX_CLIENTS: usize = 10_000;

impl RateLimiter {
    /// `rate` per second (0 or less: no limit), bursts of twice that (at least 1).
    pub fn new(rate: f64) -> Self {
        Self { rate, burst: (2.0 * rate).max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `client`; when there is none, how long until there is.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut g = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() >= MAX_CLIENTS && !g.contains_key(client) {
            let full_after = Duration::from_secs_f64(self.burst / self.rate);
            g.retain(|_, b| now.duration_since(b.at) < full_after);
            if g.len() >= MAX_CLIENTS {
                if let Some(oldest) = g.iter().min_by_key(|(_, b)| b.at).map(|(k, _)| k.clone()) {
                    g.remove(&oldest);
                }
            }
        }
        let b = g.entry(client.to_string()).or_insert(Bucket { tokens: self.burst, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_grant_what_they_should() {
        let open = Tokens::default();
        assert_eq!(open.rights(None), Rights { control: true, infer: true });
        let api = Tokens { api: Some(Secret::new("s3cret")), infer: None };
        assert_eq!(api.rights(None), Rights { control: false, infer: true });
        assert_eq!(api.rights(Some("s3cre")), Rights { control: false, infer: true });
        assert_eq!(api.rights(Some("s3cret")), Rights { control: true, infer: true });
        let both = Tokens { api: Some(Secret::new("a")), infer: Some(Secret::new("i")) };
        assert_eq!(both.rights(None), Rights { control: false, infer: false });
        assert_eq!(both.rights(Some("i")), Rights { control: false, infer: true });
        assert_eq!(both.rights(Some("a")), Rights { control: true, infer: true });
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "Secret(<redacted>)");
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let l = RateLimiter::new(5.0);
        for _ in 0..10 {
            assert!(l.check("a").is_ok());
        }
        let wait = l.check("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200), "{wait:?}");
        assert!(l.check("b").is_ok(), "another client has its own bucket");
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.check("a").is_ok(), "a token came back");
        assert!(RateLimiter::new(0.0).check("x").is_ok());
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = RateLimiter::new(1.0);
        for i in 0..(MAX_CLIENTS + 50) {
            let _ = l.check(&format!("c{i}"));
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_CLIENTS);
    }
}
