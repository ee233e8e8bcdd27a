//! Ground removal and Euclidean clustering of a lidar sweep, both on 2-D grids (O(n)).

use std::collections::HashMap;

/// Segmentation settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentConfig {
    /// Cell of the ground height model, metres.
    pub ground_cell_m: f64,
    /// Points higher than the local ground by more than this are obstacles, metres.
    pub ground_margin_m: f64,
    /// Obstacle points above the local ground by more than this are ignored (canopy, signs).
    pub max_height_m: f64,
    /// Clustering cell: points in touching cells join the same cluster, metres.
    pub cluster_cell_m: f64,
    pub min_points: usize,
    pub max_range_m: f64,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            ground_cell_m: 2.0,
            ground_margin_m: 0.25,
            max_height_m: 3.0,
            cluster_cell_m: 0.35,
            min_points: 6,
            max_range_m: 70.0,
        }
    }
}

fn cell(x: f64, y: f64, size: f64) -> (i32, i32) {
    ((x / size).floor() as i32, (y / size).floor() as i32)
}

/// Per-point ground flag and the local ground height under each point. The ground of a cell is
/// the lowest point among it and its eight neighbours (so slopes and kerbs are followed and a
/// cell covered by an object still sees the road beside it).
pub fn ground(points: &[[f32; 4]], cfg: &SegmentConfig) -> (Vec<bool>, Vec<f32>) {
    // A cell's ground is a low quantile of its heights, not the minimum: a single spurious
    // return far below the road (multipath, rain) must not pull the ground down.
    let mut heights: HashMap<(i32, i32), Vec<f32>> = HashMap::with_capacity(points.len() / 8);
    for p in points {
        if p.iter().all(|v| v.is_finite()) {
            heights.entry(cell(f64::from(p[0]), f64::from(p[1]), cfg.ground_cell_m)).or_default().push(p[2]);
        }
    }
    let lowest: HashMap<(i32, i32), f32> = heights
        .into_iter()
        .map(|(c, mut zs)| {
            zs.sort_by(|a, b| a.total_cmp(b));
            (c, zs[(zs.len() / 20).min(zs.len() - 1)])
        })
        .collect();
    let mut smoothed: HashMap<(i32, i32), f32> = HashMap::with_capacity(lowest.len());
    for (&(cx, cy), _) in lowest.iter() {
        let mut m = f32::INFINITY;
        for dx in -1..=1 {
            for dy in -1..=1 {
                if let Some(v) = lowest.get(&(cx + dx, cy + dy)) {
                    m = m.min(*v);
                }
            }
        }
        smoothed.insert((cx, cy), m);
    }
    let mut is_ground = Vec::with_capacity(points.len());
    let mut height = Vec::with_capacity(points.len());
    for p in points {
        let g = smoothed.get(&cell(f64::from(p[0]), f64::from(p[1]), cfg.ground_cell_m)).copied().unwrap_or(p[2]);
        is_ground.push(f64::from(p[2] - g) < cfg.ground_margin_m);
        height.push(g);
    }
    (is_ground, height)
}

/// Clusters of obstacle points (indices into `points`), largest first.
pub fn cluster(points: &[[f32; 4]], cfg: &SegmentConfig) -> Vec<Vec<usize>> {
    let (is_ground, ground_z) = ground(points, cfg);
    let mut cells: HashMap<(i32, i32), Vec<usize>> = HashMap::new();
    for (i, p) in points.iter().enumerate() {
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        if is_ground[i] || x.hypot(y) > cfg.max_range_m || !p.iter().all(|v| v.is_finite()) {
            continue;
        }
        if f64::from(p[2] - ground_z[i]) > cfg.max_height_m {
            continue;
        }
        cells.entry(cell(x, y, cfg.cluster_cell_m)).or_default().push(i);
    }
    // Connected components over occupied cells (8-neighbourhood), iterated in a fixed order.
    let mut keys: Vec<(i32, i32)> = cells.keys().copied().collect();
    keys.sort_unstable();
    let mut label: HashMap<(i32, i32), usize> = HashMap::with_capacity(keys.len());
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    for start in keys {
        if label.contains_key(&start) {
            continue;
        }
        let id = clusters.len();
        let mut members = Vec::new();
        let mut stack = vec![start];
        label.insert(start, id);
        while let Some(c) = stack.pop() {
            members.extend_from_slice(&cells[&c]);
            for dx in -1..=1 {
                for dy in -1..=1 {
                    let n = (c.0 + dx, c.1 + dy);
                    if cells.contains_key(&n) && !label.contains_key(&n) {
                        label.insert(n, id);
                        stack.push(n);
                    }
                }
            }
        }
        clusters.push(members);
    }
    clusters.retain(|c| c.len() >= cfg.min_points);
    clusters.sort_by_key(|c| std::cmp::Reverse(c.len()));
    clusters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn box_points(cx: f32, cy: f32, l: f32, w: f32, h: f32) -> Vec<[f32; 4]> {
        let mut pts = Vec::new();
        let n = 12;
        for i in 0..=n {
            for k in 0..=n {
                let z = -1.7 + h * k as f32 / n as f32;
                let t = i as f32 / n as f32;
                // The four side faces.
                pts.push([cx - l / 2.0 + l * t, cy - w / 2.0, z, 0.5]);
                pts.push([cx - l / 2.0 + l * t, cy + w / 2.0, z, 0.5]);
                pts.push([cx - l / 2.0, cy - w / 2.0 + w * t, z, 0.5]);
                pts.push([cx + l / 2.0, cy - w / 2.0 + w * t, z, 0.5]);
            }
        }
        pts
    }

    fn with_ground(mut pts: Vec<[f32; 4]>) -> Vec<[f32; 4]> {
        for i in -40..40 {
            for k in -40..40 {
                pts.push([i as f32 * 0.5, k as f32 * 0.5, -1.73, 0.1]);
            }
        }
        pts
    }

    #[test]
    fn separates_two_boxes_a_metre_apart_and_keeps_each_whole() {
        let mut pts = box_points(10.0, 0.0, 4.0, 1.8, 1.5);
        let first = pts.len();
        pts.extend(box_points(10.0, 2.8, 4.0, 1.8, 1.5)); // 1 m gap between y = 0.9 and y = 1.9
        let pts = with_ground(pts);
        let clusters = cluster(&pts, &SegmentConfig::default());
        assert_eq!(clusters.len(), 2, "{:?}", clusters.iter().map(Vec::len).collect::<Vec<_>>());
        for c in &clusters {
            let in_first = c.iter().filter(|i| **i < first).count();
            assert!(in_first == 0 || in_first == c.len(), "a cluster mixes both boxes");
        }
        // Every box point more than the ground margin (25 cm) above the road is kept: 11 of the
        // 13 rings.
        let kept: usize = clusters.iter().map(Vec::len).sum();
        assert!(kept as f64 >= 11.0 / 13.0 * (2 * first) as f64 - 1.0, "kept {kept} of {}", 2 * first);
    }

    #[test]
    fn ground_on_a_slope_is_removed() {
        // A 5 % slope along x: no obstacle should appear.
        let pts: Vec<[f32; 4]> = (0..4000)
            .map(|i| {
                let (x, y) = ((i % 80) as f32 * 0.5, (i / 80) as f32 * 0.5 - 12.0);
                [x, y, -1.73 + 0.05 * x, 0.1]
            })
            .collect();
        assert!(cluster(&pts, &SegmentConfig::default()).is_empty());
    }
}
