//! The response cache (Triton's is the anchor): for a model whose `config.toml` says
//! `response_cache = true`, an answer is kept under the exact request — model, the load of the
//! version that answered, and every input's name, datatype, shape and bytes — and the same
//! request later is answered from memory without reaching the engine. Only for deterministic,
//! stateless models: the repository refuses the flag on a stateful backend.
//!
//! Two tiers: in process, a least-recently-used map bounded by a byte budget (`--cache-bytes`;
//! keys and outputs both count), and, with `--redis`, a Redis every replica shares
//! ([`RedisTier`], entries expire after `--cache-ttl-secs`). A version is named in the key by a
//! fingerprint of its files and configuration, the same on every replica, so a reload of changed
//! files never answers from its predecessor's entries.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use waypoint_models::Tensor;

use crate::serving::redis_link::RedisLink;

/// Bytes counted for an entry besides its key and output data.
const ENTRY_OVERHEAD: usize = 128;

/// A version's fingerprint: its configuration and every file of its directory (names and
/// bytes), so replicas serving the same files agree and changed files differ.
pub fn fingerprint(config: &impl Serialize, dir: &std::path::Path) -> u64 {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(config).unwrap_or_default());
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        h.update(f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default().as_bytes());
        h.update(std::fs::read(&f).unwrap_or_default());
    }
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

#[derive(Debug)]
struct Entry {
    used: u64,
    bytes: usize,
    outputs: Arc<Vec<Tensor>>,
}

#[derive(Debug, Default)]
struct Lru {
    map: HashMap<Arc<[u8]>, Entry>,
    /// Last use → key, oldest first.
    order: BTreeMap<u64, Arc<[u8]>>,
    clock: u64,
    bytes: usize,
}

/// The response cache shared by every cached model: the in-process tier, and the Redis tier
/// when the server has one.
#[derive(Debug)]
pub struct ResponseCache {
    budget: usize,
    inner: Mutex<Lru>,
    redis: Option<RedisTier>,
}

/// Which tier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Local,
    Redis,
}

/// The cache key of a request: the model, the version's fingerprint, and the inputs exactly.
pub fn key(model: &str, fingerprint: u64, inputs: &[Tensor]) -> Vec<u8> {
    let mut k = Vec::with_capacity(64 + inputs.iter().map(|t| t.data.len() * 8).sum::<usize>());
    k.extend_from_slice(&(model.len() as u64).to_le_bytes());
    k.extend_from_slice(model.as_bytes());
    k.extend_from_slice(&fingerprint.to_le_bytes());
    for t in inputs {
        k.extend_from_slice(&(t.name.len() as u64).to_le_bytes());
        k.extend_from_slice(t.name.as_bytes());
        k.extend_from_slice(t.data.datatype().as_str().as_bytes());
        k.extend_from_slice(&(t.shape.len() as u64).to_le_bytes());
        for d in &t.shape {
            k.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        let bytes = t.data.to_le_bytes();
        k.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        k.extend_from_slice(&bytes);
    }
    k
}

fn output_bytes(outputs: &[Tensor]) -> usize {
    outputs.iter().map(|t| t.data.len() * t.data.datatype().size_bytes() + t.name.len() + 8 * t.shape.len()).sum()
}

impl ResponseCache {
    /// A cache holding at most `budget` bytes in process, in front of `redis` if given.
    pub fn new(budget: usize, redis: Option<RedisTier>) -> Self {
        Self { budget, inner: Mutex::new(Lru::default()), redis }
    }

    /// The Redis tier, if any.
    pub fn redis(&self) -> Option<&RedisTier> {
        self.redis.as_ref()
    }

    /// The answer to a request from the first tier that has it (a Redis hit is kept locally).
    pub async fn lookup(&self, key: &[u8]) -> Option<(Arc<Vec<Tensor>>, Tier)> {
        if let Some(o) = self.get(key) {
            return Some((o, Tier::Local));
        }
        let outputs = self.redis.as_ref()?.get(key).await?;
        self.put(key.to_vec(), outputs.clone());
        Some((Arc::new(outputs), Tier::Redis))
    }

    /// Keeps an answer in every tier (Redis awaited, so the next replica asked finds it).
    pub async fn store(&self, key: Vec<u8>, outputs: &[Tensor]) {
        if let Some(r) = &self.redis {
            r.put(key.clone(), outputs).await;
        }
        self.put(key, outputs.to_vec());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer kept for a request, if any (it becomes the most recently used).
    fn get(&self, key: &[u8]) -> Option<Arc<Vec<Tensor>>> {
        let mut g = self.lock();
        let g = &mut *g;
        g.clock += 1;
        let now = g.clock;
        let stored = g.map.get_key_value(key).map(|(k, _)| k.clone())?;
        let e = g.map.get_mut(key)?;
        let last = std::mem::replace(&mut e.used, now);
        let outputs = e.outputs.clone();
        g.order.remove(&last);
        g.order.insert(now, stored);
        Some(outputs)
    }

    /// Keeps an answer, evicting the least recently used until it fits; an answer larger than
    /// an eighth of the budget is not kept.
    fn put(&self, key: Vec<u8>, outputs: Vec<Tensor>) {
        let bytes = key.len() + output_bytes(&outputs) + ENTRY_OVERHEAD;
        if bytes > self.budget / 8 {
            return;
        }
        let mut g = self.lock();
        let g = &mut *g;
        let key: Arc<[u8]> = key.into();
        if let Some(old) = g.map.remove(&key) {
            g.order.remove(&old.used);
            g.bytes -= old.bytes;
        }
        while g.bytes + bytes > self.budget {
            let Some((_, oldest)) = g.order.pop_first() else { break };
            if let Some(e) = g.map.remove(&oldest) {
                g.bytes -= e.bytes;
            }
        }
        g.clock += 1;
        let used = g.clock;
        g.order.insert(used, key.clone());
        g.map.insert(key, Entry { used, bytes, outputs: Arc::new(outputs) });
        g.bytes += bytes;
    }

    /// Bytes and entries held.
    pub fn usage(&self) -> (usize, usize) {
        let g = self.lock();
        (g.bytes, g.map.len())
    }
}

/// Answers larger than this are not sent to Redis, bytes.
const REDIS_MAX_VALUE: usize = 4 << 20;

/// The shared tier: a Redis every replica reaches. Entries live `ttl` (`--cache-ttl-secs`) under
/// `waypoint:cache:<sha-256 of the key>`; the value carries the whole key, so a hash collision
/// can never answer another request. When Redis is down every call fails fast, inference goes on
/// uncached, and a new connection is tried every half second until Redis is back.
#[derive(Debug)]
pub struct RedisTier {
    link: RedisLink,
    ttl_secs: u64,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    key: Vec<u8>,
    outputs: Vec<(String, Vec<usize>, String, Vec<u8>)>,
}

impl RedisTier {
    /// A tier on the Redis at `url` (`redis://HOST:PORT`); nothing is connected yet.
    pub fn new(url: &str, ttl_secs: u64) -> Result<Self, String> {
        Ok(Self { link: RedisLink::new(url)?, ttl_secs: ttl_secs.max(1) })
    }

    /// Whether the last call reached Redis.
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    fn redis_key(key: &[u8]) -> String {
        let digest = Sha256::digest(key);
        let mut k = String::from("waypoint:cache:");
        for b in digest {
            let _ = write!(k, "{b:02x}");
        }
        k
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        self.link.run(cmd).await
    }

    /// The answer Redis keeps for a request, if any.
    pub async fn get(&self, key: &[u8]) -> Option<Vec<Tensor>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(Self::redis_key(key));
        let bytes: Option<Vec<u8>> = self.run(cmd).await?;
        let stored: Stored = rmp_serde::from_slice(&bytes?).ok()?;
        if stored.key != key {
            return None;
        }
        stored
            .outputs
            .into_iter()
            .map(|(name, shape, dt, data)| {
                let dt = waypoint_models::DataType::parse(&dt)?;
                Tensor::new(name, shape, waypoint_models::TensorData::from_le_bytes(dt, &data).ok()?).ok()
            })
            .collect()
    }

    /// Keeps an answer in Redis for the tier's time to live (in the background of the caller).
    pub async fn put(&self, key: Vec<u8>, outputs: &[Tensor]) {
        let stored = Stored {
            outputs: outputs
                .iter()
                .map(|t| {
                    (t.name.clone(), t.shape.clone(), t.data.datatype().as_str().to_string(), t.data.to_le_bytes())
                })
                .collect(),
            key,
        };
        let Ok(value) = rmp_serde::to_vec(&stored) else { return };
        if value.len() > REDIS_MAX_VALUE {
            return;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(Self::redis_key(&stored.key)).arg(value).arg("EX").arg(self.ttl_secs);
        let _: Option<()> = self.run(cmd).await;
    }
}

#[cfg(test)]
mod tests {
    use waypoint_models::TensorData;

    use super::*;

    fn input(values: Vec<f32>) -> Vec<Tensor> {
        let n = values.len();
        vec![Tensor::new("x", vec![1, n], TensorData::F32(values)).unwrap()]
    }

    fn answer(v: f32) -> Vec<Tensor> {
        vec![Tensor::new("y", vec![1, 100], TensorData::F32(vec![v; 100])).unwrap()]
    }

    #[test]
    fn keys_tell_apart_every_part_of_a_request() {
        let base = key("m", 1, &input(vec![1.0, 2.0]));
        assert_eq!(base, key("m", 1, &input(vec![1.0, 2.0])));
        assert_ne!(base, key("m", 1, &input(vec![1.0, 2.5])), "bytes");
        assert_ne!(base, key("m", 2, &input(vec![1.0, 2.0])), "other files");
        assert_ne!(base, key("n", 1, &input(vec![1.0, 2.0])), "model");
        let reshaped = vec![Tensor::new("x", vec![2, 1], TensorData::F32(vec![1.0, 2.0])).unwrap()];
        assert_ne!(base, key("m", 1, &reshaped), "shape");
        let retyped = vec![Tensor::new("x", vec![1, 2], TensorData::I32(vec![0x3f80_0000, 0x4000_0000])).unwrap()];
        assert_ne!(base, key("m", 1, &retyped), "datatype with the same bytes");
        let renamed = vec![Tensor::new("z", vec![1, 2], TensorData::F32(vec![1.0, 2.0])).unwrap()];
        assert_ne!(base, key("m", 1, &renamed), "name");
    }

    #[test]
    fn the_least_recently_used_goes_first_and_the_budget_holds() {
        let one = key("m", 1, &input(vec![0.0])).len() + output_bytes(&answer(0.0)) + ENTRY_OVERHEAD;
        let cache = ResponseCache::new(one * 8, None);
        for i in 0..8 {
            cache.put(key("m", 1, &input(vec![i as f32])), answer(i as f32));
        }
        assert_eq!(cache.usage(), (one * 8, 8));
        // Touch 0, then add 8: 1 is the least recently used and goes.
        assert!(cache.get(&key("m", 1, &input(vec![0.0]))).is_some());
        cache.put(key("m", 1, &input(vec![8.0])), answer(8.0));
        assert!(cache.get(&key("m", 1, &input(vec![1.0]))).is_none());
        let hit = cache.get(&key("m", 1, &input(vec![0.0]))).unwrap();
        assert_eq!(hit[0].data, TensorData::F32(vec![0.0; 100]));
        for i in 0..1000 {
            cache.put(key("m", 1, &input(vec![i as f32, 1.0])), answer(1.0));
            assert!(cache.usage().0 <= one * 8);
        }
        // Too large for the cache: not kept.
        let big = vec![Tensor::new("y", vec![1, 10_000], TensorData::F32(vec![0.0; 10_000])).unwrap()];
        cache.put(key("m", 1, &input(vec![-1.0])), big);
        assert!(cache.get(&key("m", 1, &input(vec![-1.0]))).is_none());
    }
}
