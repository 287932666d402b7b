//! The shared tier: a Redis the proxies of one region share, holding only
//! immutable answers (static ones, finalized blocks), each with a TTL.
//!
//! Reads come after the memory cache, under a short timeout (20 ms by
//! default), and only for calls whose answer may be there. Writes never
//! wait: they go into a bounded queue that one task drains in pipelines;
//! a full queue drops the write (counted). Errors and timeouts feed a
//! [`Breaker`]: while it is open nobody asks Redis, the proxy serves from
//! memory and upstreams. A value that does not decode is a miss
//! ([`codec`](super::codec)) and is overwritten by the next answer.
//!
//! The connection is the `redis` crate's [`ConnectionManager`], created
//! lazily (a proxy starts with Redis down) and reconnecting by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

use super::breaker::Breaker;
use super::codec;
use crate::config::SharedTierOptions;

/// Every key Meridian writes starts with this (the format's version too:
/// a new format gets a new prefix, never a misread).
const PREFIX: &[u8] = b"meridian:1:";

/// Writes waiting for the writer task; more are dropped.
const WRITE_QUEUE: usize = 4_096;

/// Writes sent in one pipeline at most.
const WRITE_BATCH: usize = 64;

/// Consecutive failures that open the breaker.
const BREAKER_FAILURES: u32 = 5;

/// Why the shared tier cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SharedTierError {
    #[error("--cache-redis {url:?}: {source}")]
    Url {
        url: String,
        source: redis::RedisError,
    },
    #[error("--cache-redis: {0}")]
    Connect(redis::RedisError),
    #[error("--cache-redis needs the memory cache: --cache-max-bytes is 0")]
    NoMemoryCache,
}

/// What the shared tier said about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The answer, and the height a reorg would take it with.
    Hit(Bytes, Option<u64>),
    /// Not there, unreadable, or Redis failed (counted as such).
    Miss,
    /// The breaker is open: Redis was not asked.
    Skipped,
}

/// Why a call brought no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unasked {
    /// The breaker is open.
    Skipped,
    /// Redis failed or was slow (counted).
    Failed,
}

/// The shared tier's own counters (hits and misses are counted per
/// network and class, in [`super::CacheStats`]).
#[derive(Debug, Default)]
pub struct SharedStats {
    /// Calls that failed with an error from Redis or the connection.
    pub errors: AtomicU64,
    /// Calls not answered within the timeout.
    pub timeouts: AtomicU64,
    /// Values that did not decode (read as misses).
    pub undecodable: AtomicU64,
    /// Keys not looked up because the breaker was open (one per key, as
    /// hits and misses are counted, also inside an MGET).
    pub skipped: AtomicU64,
    /// Entries written.
    pub written: AtomicU64,
    /// Writes dropped: queue full, breaker open, or the pipeline failed.
    pub write_drops: AtomicU64,
}

/// What the request path and the writer task share.
#[derive(Debug)]
struct Health {
    breaker: Breaker,
    stats: SharedStats,
}

struct Write {
    key: Vec<u8>,
    value: Vec<u8>,
    ttl_s: u32,
}

/// A region's Redis, as one data plane uses it.
pub struct SharedTier {
    conn: ConnectionManager,
    timeout: Duration,
    health: Arc<Health>,
    writes: mpsc::Sender<Write>,
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("timeout", &self.timeout)
            .field("breaker", &self.health.breaker.state())
            .finish()
    }
}

impl SharedTier {
    /// Connects lazily to `options.url` and starts the writer task; must
    /// run inside the Tokio runtime.
    pub fn start(options: &SharedTierOptions) -> Result<Self, SharedTierError> {
        let client =
            redis::Client::open(options.url.as_str()).map_err(|source| SharedTierError::Url {
                url: options.url.clone(),
                source,
            })?;
        // Each call is bounded by our own timeout; the manager's retries
        // only decide how hard a reconnection tries in the background.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.write_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(SharedTierError::Connect)?;
        let health = Arc::new(Health {
            breaker: Breaker::new(BREAKER_FAILURES, options.breaker_cooldown),
            stats: SharedStats::default(),
        });
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(write_all(
            conn.clone(),
            health.clone(),
            queue,
            options.write_timeout,
        ));
        Ok(Self {
            conn,
            timeout: options.timeout,
            health,
            writes,
        })
    }

    /// The answer kept under `key`, if Redis has one that decodes within
    /// `max_bytes`.
    pub async fn get(&self, key: &str, max_bytes: u64) -> Lookup {
        let cmd = redis::cmd("GET").arg(redis_key(key)).to_owned();
        match self.ask::<Option<Vec<u8>>>(&cmd, 1).await {
            Ok(Some(value)) => self.decode(&value, max_bytes),
            Ok(None) | Err(Unasked::Failed) => Lookup::Miss,
            Err(Unasked::Skipped) => Lookup::Skipped,
        }
    }

    /// [`SharedTier::get`] for many keys in one round trip.
    pub async fn get_many(&self, keys: &[&str], max_bytes: u64) -> Vec<Lookup> {
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(redis_key(key));
        }
        match self
            .ask::<Vec<Option<Vec<u8>>>>(&cmd, keys.len() as u64)
            .await
        {
            Ok(values) if values.len() == keys.len() => values
                .iter()
                .map(|v| match v {
                    Some(value) => self.decode(value, max_bytes),
                    None => Lookup::Miss,
                })
                .collect(),
            Err(Unasked::Skipped) => vec![Lookup::Skipped; keys.len()],
            _ => vec![Lookup::Miss; keys.len()],
        }
    }

    /// Queues `result` for writing under `key` with a TTL of `ttl_s`
    /// seconds; never waits (a full queue drops it).
    pub fn put(&self, key: &str, result: &[u8], reorg_from: Option<u64>, ttl_s: u32) {
        let write = Write {
            key: redis_key(key),
            value: codec::encode(result, reorg_from),
            ttl_s: ttl_s.max(1),
        };
        if self.writes.try_send(write).is_err() {
            self.health
                .stats
                .write_drops
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters.
    pub fn stats(&self) -> &SharedStats {
        &self.health.stats
    }

    /// The breaker.
    pub fn breaker(&self) -> &Breaker {
        &self.health.breaker
    }

    /// Runs `cmd` (a lookup of `keys` keys) under the breaker and the
    /// timeout; a failure is counted and told to the breaker.
    async fn ask<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        keys: u64,
    ) -> Result<T, Unasked> {
        let health = &self.health;
        if !health.breaker.allow() {
            health.stats.skipped.fetch_add(keys, Ordering::Relaxed);
            return Err(Unasked::Skipped);
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => {
                health.breaker.success();
                Ok(value)
            }
            // Another type under our key (written by hand): Redis works,
            // the value does not decode.
            Ok(Err(e)) if e.code() == Some("WRONGTYPE") => {
                health.breaker.success();
                health.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                Err(Unasked::Failed)
            }
            Ok(Err(e)) => {
                health.stats.errors.fetch_add(1, Ordering::Relaxed);
                health.breaker.failure(&e);
                Err(Unasked::Failed)
            }
            Err(_) => {
                health.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                health.breaker.failure(&format_args!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                ));
                Err(Unasked::Failed)
            }
        }
    }

    fn decode(&self, value: &[u8], max_bytes: u64) -> Lookup {
        match codec::decode(value, max_bytes) {
            Ok((result, reorg_from)) => Lookup::Hit(result, reorg_from),
            Err(why) => {
                self.health
                    .stats
                    .undecodable
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%why, "shared cache value does not decode: read as a miss");
                Lookup::Miss
            }
        }
    }
}

fn redis_key(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(PREFIX.len() + key.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The writer task: drains the queue in pipelines of `SET key value EX
/// ttl` until every sender is gone (the tier was dropped).
async fn write_all(
    mut conn: ConnectionManager,
    health: Arc<Health>,
    mut queue: mpsc::Receiver<Write>,
    timeout: Duration,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let n = batch.len() as u64;
        if !health.breaker.allow() {
            health.stats.write_drops.fetch_add(n, Ordering::Relaxed);
            batch.clear();
            continue;
        }
        let mut pipe = redis::pipe();
        for w in batch.drain(..) {
            pipe.cmd("SET")
                .arg(w.key)
                .arg(w.value)
                .arg("EX")
                .arg(w.ttl_s)
                .ignore();
        }
        match tokio::time::timeout(timeout, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => {
                health.breaker.success();
                health.stats.written.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                // Redis full (OOM under `noeviction`) lands here too.
                health.stats.errors.fetch_add(1, Ordering::Relaxed);
                health.stats.write_drops.fetch_add(n, Ordering::Relaxed);
                health.breaker.failure(&e);
            }
            Err(_) => {
                health.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                health.stats.write_drops.fetch_add(n, Ordering::Relaxed);
                health.breaker.failure(&format_args!(
                    "writes not answered within {} ms",
                    timeout.as_millis()
                ));
            }
        }
    }
}
