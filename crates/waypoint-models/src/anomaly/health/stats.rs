//! Small robust statistics and windows shared by the sensors' evidence.

use std::collections::VecDeque;

/// Appends `x` to a window of the last `n` items.
pub(super) fn push_window<T>(window: &mut VecDeque<T>, x: T, n: usize) {
    window.push_back(x);
    while window.len() > n {
        window.pop_front();
    }
}

pub(super) fn digest(values: impl IntoIterator<Item = f64>) -> u64 {
    // FNV-1a over the bit patterns.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for v in values {
        h ^= v.to_bits();
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(super) fn mean_std(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    Some((m, v.sqrt()))
}

/// Median and median absolute deviation (scaled to a standard deviation).
pub(super) fn median_mad(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let med = v[v.len() / 2];
    let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    dev.sort_by(f64::total_cmp);
    Some((med, 1.4826 * dev[dev.len() / 2]))
}
