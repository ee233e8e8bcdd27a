//! The response cache (Triton's is the anchor): for a model whose `config.toml` says
//! `response_cache = true`, an answer is kept under the exact request — model, the load of the
//! version that answered, and every input's name, datatype, shape and bytes — and the same
//! request later is answered from memory without reaching the engine. Only for deterministic,
//! stateless models: the repository refuses the flag on a stateful backend.
//!
//! This is the in-process tier: a least-recently-used map bounded by a byte budget
//! (`--cache-bytes`; keys and outputs both count). A reloaded version gets a new load id, so it
//! never answers from its predecessor's entries; those age out.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use waypoint_models::Tensor;

/// Bytes counted for an entry besides its key and output data.
const ENTRY_OVERHEAD: usize = 128;

/// Hands out a new id to each load of a version.
static LOADS: AtomicU64 = AtomicU64::new(1);

/// A fresh load id.
pub fn next_load_id() -> u64 {
    LOADS.fetch_add(1, Ordering::Relaxed)
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

/// The in-process response cache shared by every cached model.
#[derive(Debug)]
pub struct ResponseCache {
    budget: usize,
    inner: Mutex<Lru>,
}

/// The cache key of a request: the model, the load of the version, and the inputs exactly.
pub fn key(model: &str, load_id: u64, inputs: &[Tensor]) -> Vec<u8> {
    let mut k = Vec::with_capacity(64 + inputs.iter().map(|t| t.data.len() * 8).sum::<usize>());
    k.extend_from_slice(&(model.len() as u64).to_le_bytes());
    k.extend_from_slice(model.as_bytes());
    k.extend_from_slice(&load_id.to_le_bytes());
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
    /// A cache holding at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self { budget, inner: Mutex::new(Lru::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer kept for a request, if any (it becomes the most recently used).
    pub fn get(&self, key: &[u8]) -> Option<Arc<Vec<Tensor>>> {
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
    pub fn put(&self, key: Vec<u8>, outputs: Vec<Tensor>) {
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
        assert_ne!(base, key("m", 2, &input(vec![1.0, 2.0])), "a reload");
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
        let cache = ResponseCache::new(one * 8);
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
