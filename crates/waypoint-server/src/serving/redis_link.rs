//! A connection to Redis that fails fast and heals by itself: every call has a deadline
//! (100 ms), a failed call drops the connection, and a new one is tried at most every half
//! second. The response cache's Redis tier and the cluster share this behaviour.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a Redis call may take before the caller goes on without it.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// After Redis failed, how long before a connection is tried again.
pub const REDIS_RETRY: Duration = Duration::from_millis(500);

/// One multiplexed connection to a Redis, reconnected on demand.
#[derive(Debug)]
pub struct RedisLink {
    client: redis::Client,
    conn: tokio::sync::Mutex<(Option<redis::aio::MultiplexedConnection>, Option<Instant>)>,
    up: AtomicBool,
}

impl RedisLink {
    /// A link to the Redis at `url` (`redis://HOST:PORT`); nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis url {url:?}: {e}"))?;
        Ok(Self { client, conn: tokio::sync::Mutex::new((None, None)), up: AtomicBool::new(false) })
    }

    /// The client, for connections of their own (a subscriber).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Whether the last call reached Redis.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    async fn connection(&self) -> Option<redis::aio::MultiplexedConnection> {
        let mut g = self.conn.lock().await;
        if let Some(c) = &g.0 {
            return Some(c.clone());
        }
        if g.1.is_some_and(|t| t.elapsed() < REDIS_RETRY) {
            return None;
        }
        g.1 = Some(Instant::now());
        match tokio::time::timeout(REDIS_TIMEOUT, self.client.get_multiplexed_async_connection()).await {
            Ok(Ok(c)) => {
                g.0 = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "redis unreachable");
                self.up.store(false, Ordering::Relaxed);
                None
            }
            Err(_) => {
                self.up.store(false, Ordering::Relaxed);
                None
            }
        }
    }

    /// Runs one command; `None` when Redis did not answer in time or refused (a failure drops
    /// the connection, the next call reconnects).
    pub async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        let mut c = self.connection().await?;
        let r = tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<T>(&mut c)).await;
        self.settle(r).await
    }

    /// Runs a pipeline as one call (see [`RedisLink::run`]).
    pub async fn pipe<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Option<T> {
        let mut c = self.connection().await?;
        let r = tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<T>(&mut c)).await;
        self.settle(r).await
    }

    async fn settle<T>(&self, r: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>) -> Option<T> {
        match r {
            Ok(Ok(v)) => {
                self.up.store(true, Ordering::Relaxed);
                Some(v)
            }
            failed => {
                if let Ok(Err(e)) = failed {
                    tracing::debug!(error = %e, "redis call failed");
                }
                self.up.store(false, Ordering::Relaxed);
                let mut g = self.conn.lock().await;
                g.0 = None;
                g.1 = Some(Instant::now());
                None
            }
        }
    }
}
