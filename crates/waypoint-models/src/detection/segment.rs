//! Ground removal and Euclidean clustering of a lidar sweep, both on dense 2-D grids (O(n)).

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

/// When the ground found within two cells lies this much below the ground within one cell, the
/// nearer estimate is an object's bottom, not the road, metres.
const WIDE_GROUND_DROP_M: f32 = 0.3;
/// ... and only this far from the sensor, where the rings are sparse, metres.
const WIDE_GROUND_FROM_M: f64 = 20.0;

/// A dense square grid of `size` cells over [-extent, extent]², indexed x-major (so index
/// order is the order of (cell x, cell y) pairs).
struct Grid {
    size: f64,
    half: i64,
    n: usize,
}

impl Grid {
    fn new(size: f64, extent: f64) -> Self {
        let half = (extent / size).ceil() as i64 + 1;
        Self { size, half, n: (2 * half) as usize }
    }

    fn cells(&self) -> usize {
        self.n * self.n
    }

    fn coords(&self, x: f64, y: f64) -> Option<(i64, i64)> {
        let (cx, cy) = ((x / self.size).floor() as i64 + self.half, (y / self.size).floor() as i64 + self.half);
        let n = self.n as i64;
        (x.is_finite() && y.is_finite() && (0..n).contains(&cx) && (0..n).contains(&cy)).then_some((cx, cy))
    }

    fn index(&self, x: f64, y: f64) -> Option<usize> {
        self.coords(x, y).map(|(cx, cy)| cx as usize * self.n + cy as usize)
    }

    /// Distance of cell `c`'s centre from the origin.
    fn distance_m(&self, c: usize) -> f64 {
        let (cx, cy) = ((c / self.n) as i64 - self.half, (c % self.n) as i64 - self.half);
        ((cx as f64 + 0.5) * self.size).hypot((cy as f64 + 0.5) * self.size)
    }

    /// The in-grid cells of the 3 × 3 neighbourhood of `c`.
    fn neighbours(&self, c: usize) -> impl Iterator<Item = usize> + '_ {
        self.neighbours_within(c, 1)
    }

    /// The in-grid cells within `r` cells of `c` (a (2r + 1)² square).
    fn neighbours_within(&self, c: usize, r: i64) -> impl Iterator<Item = usize> + '_ {
        let (cx, cy) = ((c / self.n) as i64, (c % self.n) as i64);
        let n = self.n as i64;
        (-r..=r)
            .flat_map(move |dx| (-r..=r).map(move |dy| (cx + dx, cy + dy)))
            .filter(move |(x, y)| (0..n).contains(x) && (0..n).contains(y))
            .map(move |(x, y)| x as usize * self.n + y as usize)
    }
}

/// Per-point ground flag and the local ground height under each point. The ground of a cell is
/// a low quantile of the lowest heights among it and its eight neighbours (so slopes and kerbs
/// are followed and a cell covered by an object still sees the road beside it). Points beyond
/// `max_range_m` (or not finite) are flagged as ground, at their own height: they are never
/// clustered.
pub fn ground(points: &[[f32; 4]], cfg: &SegmentConfig) -> (Vec<bool>, Vec<f32>) {
    let grid = Grid::new(cfg.ground_cell_m, cfg.max_range_m + cfg.ground_cell_m);
    // Counting sort of the heights by cell: one flat array, one slice per cell.
    let mut cell_of = vec![usize::MAX; points.len()];
    let mut start = vec![0u32; grid.cells() + 1];
    for (i, p) in points.iter().enumerate() {
        if !p.iter().all(|v| v.is_finite()) {
            continue;
        }
        if let Some(c) = grid.index(f64::from(p[0]), f64::from(p[1])) {
            cell_of[i] = c;
            start[c + 1] += 1;
        }
    }
    for c in 0..grid.cells() {
        start[c + 1] += start[c];
    }
    let mut fill = start.clone();
    let mut zs = vec![0f32; start[grid.cells()] as usize];
    for (i, p) in points.iter().enumerate() {
        let c = cell_of[i];
        if c != usize::MAX {
            zs[fill[c] as usize] = p[2];
            fill[c] += 1;
        }
    }
    // A cell's ground is a low quantile of its heights, not the minimum: a single spurious
    // return far below the road (multipath, rain) must not pull the ground down.
    let mut lowest = vec![f32::INFINITY; grid.cells()];
    let mut occupied = Vec::new();
    for c in 0..grid.cells() {
        let slice = &mut zs[start[c] as usize..start[c + 1] as usize];
        if slice.is_empty() {
            continue;
        }
        let k = (slice.len() / 20).min(slice.len() - 1);
        let (_, v, _) = slice.select_nth_unstable_by(k, f32::total_cmp);
        lowest[c] = *v;
        occupied.push(c);
    }
    // Far from the sensor the road's scan rings are metres apart, and a cell with a car in it
    // may have no road return in its 3 × 3 neighbourhood: its "ground" would be the car's
    // bottom. When the 5 × 5 neighbourhood holds ground well below that, use it.
    let mut smoothed = vec![f32::INFINITY; grid.cells()];
    for &c in &occupied {
        let near = grid.neighbours(c).map(|n| lowest[n]).fold(f32::INFINITY, f32::min);
        let wide = grid.neighbours_within(c, 2).map(|n| lowest[n]).fold(f32::INFINITY, f32::min);
        smoothed[c] =
            if near - wide > WIDE_GROUND_DROP_M && grid.distance_m(c) > WIDE_GROUND_FROM_M { wide } else { near };
    }
    let mut is_ground = Vec::with_capacity(points.len());
    let mut height = Vec::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        let c = cell_of[i];
        if c == usize::MAX || f64::from(p[0]).hypot(f64::from(p[1])) > cfg.max_range_m {
            is_ground.push(true);
            height.push(p[2]);
            continue;
        }
        let g = smoothed[c];
        is_ground.push(f64::from(p[2] - g) < cfg.ground_margin_m);
        height.push(g);
    }
    (is_ground, height)
}

/// Clusters of obstacle points (indices into `points`), largest first.
pub fn cluster(points: &[[f32; 4]], cfg: &SegmentConfig) -> Vec<Vec<usize>> {
    let (is_ground, ground_z) = ground(points, cfg);
    cluster_with_ground(points, cfg, &is_ground, &ground_z)
}

/// Like [`cluster`], with the ground already computed by [`ground`].
pub fn cluster_with_ground(
    points: &[[f32; 4]],
    cfg: &SegmentConfig,
    is_ground: &[bool],
    ground_z: &[f32],
) -> Vec<Vec<usize>> {
    let grid = Grid::new(cfg.cluster_cell_m, cfg.max_range_m + cfg.cluster_cell_m);
    const NONE: u32 = u32::MAX;
    // Per cell, a linked list of its obstacle points in ascending index order.
    let mut head = vec![NONE; grid.cells()];
    let mut next = vec![NONE; points.len()];
    let mut occupied = Vec::new();
    for (i, p) in points.iter().enumerate().rev() {
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        if is_ground[i] || x.hypot(y) > cfg.max_range_m || !p.iter().all(|v| v.is_finite()) {
            continue;
        }
        if f64::from(p[2] - ground_z[i]) > cfg.max_height_m {
            continue;
        }
        let Some(c) = grid.index(x, y) else { continue };
        if head[c] == NONE {
            occupied.push(c);
        }
        next[i] = head[c];
        head[c] = i as u32;
    }
    // Connected components over occupied cells (8-neighbourhood), in cell order.
    occupied.sort_unstable();
    let mut label = vec![NONE; grid.cells()];
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    let mut stack = Vec::new();
    for &start in &occupied {
        if label[start] != NONE {
            continue;
        }
        let id = clusters.len() as u32;
        let mut members = Vec::new();
        label[start] = id;
        stack.push(start);
        while let Some(c) = stack.pop() {
            let mut i = head[c];
            while i != NONE {
                members.push(i as usize);
                i = next[i as usize];
            }
            for n in grid.neighbours(c) {
                if head[n] != NONE && label[n] == NONE {
                    label[n] = id;
                    stack.push(n);
                }
            }
        }
        clusters.push(members);
    }
    clusters.retain(|c| c.len() >= cfg.min_points);
    clusters.sort_by_key(|c| std::cmp::Reverse(c.len()));
    clusters
}

/// The road the sensor stands on, as a plane `z = a + b·x + c·y` in the sensor frame: a least
/// squares fit to the ground points in a corridor along the sensor's heading (|y| ≤ 4 m,
/// |x| ≤ 25 m), refitted once without the points more than 0.15 m off the first fit (a
/// sidewalk, a driveway). None with fewer than 50 such points.
pub fn road_plane(points: &[[f32; 4]], is_ground: &[bool]) -> Option<[f64; 3]> {
    let corridor: Vec<[f64; 3]> = points
        .iter()
        .zip(is_ground)
        .filter(|(p, g)| **g && p[1].abs() <= 4.0 && p[0].abs() <= 25.0)
        .map(|(p, _)| [f64::from(p[0]), f64::from(p[1]), f64::from(p[2])])
        .collect();
    let fit = |pts: &[&[f64; 3]]| -> Option<[f64; 3]> {
        if pts.len() < 50 {
            return None;
        }
        // Normal equations of the least-squares plane, from the sums of the products.
        let mut s = [0.0f64; 9];
        for p in pts {
            let (x, y, z) = (p[0], p[1], p[2]);
            for (acc, v) in s.iter_mut().zip([1.0, x, y, x * x, x * y, y * y, z, x * z, y * z]) {
                *acc += v;
            }
        }
        let m = nalgebra::Matrix3::new(s[0], s[1], s[2], s[1], s[3], s[4], s[2], s[4], s[5]);
        let sol = m.lu().solve(&nalgebra::Vector3::new(s[6], s[7], s[8]))?;
        Some([sol[0], sol[1], sol[2]])
    };
    let all: Vec<&[f64; 3]> = corridor.iter().collect();
    let first = fit(&all)?;
    let near: Vec<&[f64; 3]> =
        corridor.iter().filter(|p| (p[2] - first[0] - first[1] * p[0] - first[2] * p[1]).abs() <= 0.15).collect();
    fit(&near)
}

/// A sweep whose road plane ([`road_plane`]) is tilted by less than this is used as it is
/// (a point 40 m out moves by under 0.07 m), radians.
pub const LEVEL_FROM_RAD: f64 = 0.1 * std::f64::consts::PI / 180.0;

/// The rotation about the sensor that turns a tilted road plane level: the sensor pitched or
/// rolled on its car, or a road that climbs or leans where the car stands. Detection runs on
/// the levelled sweep, whose ground model, heights and shapes then do not depend on how the
/// sensor is tilted, and its boxes are turned back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levelling {
    /// Row-major rotation from the sensor frame to the level frame.
    r: [[f64; 3]; 3],
}

impl Levelling {
    /// The rotation for the road plane `z = a + b·x + c·y` ([`road_plane`]); none when the
    /// plane is tilted by less than [`LEVEL_FROM_RAD`] or is not finite.
    pub fn of_plane(plane: [f64; 3]) -> Option<Self> {
        let [_, b, c] = plane;
        let n = nalgebra::Vector3::new(-b, -c, 1.0);
        if !n.iter().all(|v| v.is_finite()) {
            return None;
        }
        let n = n.normalize();
        let angle = n.z.clamp(-1.0, 1.0).acos();
        if angle < LEVEL_FROM_RAD {
            return None;
        }
        let axis = nalgebra::Unit::new_normalize(n.cross(&nalgebra::Vector3::z()));
        let m = nalgebra::Rotation3::from_axis_angle(&axis, angle).into_inner();
        Some(Self { r: std::array::from_fn(|i| std::array::from_fn(|j| m[(i, j)])) })
    }

    /// The tilt it removes, radians.
    pub fn tilt_rad(&self) -> f64 {
        self.r[2][2].clamp(-1.0, 1.0).acos()
    }

    /// A point of the sensor frame in the level frame (intensity kept).
    pub fn apply(&self, p: &[f32; 4]) -> [f32; 4] {
        let v = self.rotate([f64::from(p[0]), f64::from(p[1]), f64::from(p[2])], false);
        [v[0] as f32, v[1] as f32, v[2] as f32, p[3]]
    }

    /// `v` turned into the level frame, or back from it (`back`).
    pub fn rotate(&self, v: [f64; 3], back: bool) -> [f64; 3] {
        let m = |i: usize, j: usize| if back { self.r[j][i] } else { self.r[i][j] };
        std::array::from_fn(|i| m(i, 0) * v[0] + m(i, 1) * v[1] + m(i, 2) * v[2])
    }
}

/// A sweep ready for clustering: levelled when its road plane is tilted ([`Levelling`]), with
/// its ground found.
pub struct LevelSweep<'a> {
    /// The points, turned level when `level` is some.
    pub points: std::borrow::Cow<'a, [[f32; 4]]>,
    pub is_ground: Vec<bool>,
    pub ground_z: Vec<f32>,
    pub road: Option<[f64; 3]>,
    /// The rotation applied, none when the sweep was level enough as it came.
    pub level: Option<Levelling>,
}

/// Finds the ground and the road plane of `points`, and when the plane is tilted by
/// [`LEVEL_FROM_RAD`] or more, levels the sweep and finds them again.
pub fn level_sweep<'a>(points: &'a [[f32; 4]], cfg: &SegmentConfig) -> LevelSweep<'a> {
    let (is_ground, ground_z) = ground(points, cfg);
    let road = road_plane(points, &is_ground);
    match road.and_then(Levelling::of_plane) {
        Some(level) => {
            let levelled: Vec<[f32; 4]> = points.iter().map(|p| level.apply(p)).collect();
            let (is_ground, ground_z) = ground(&levelled, cfg);
            let road = road_plane(&levelled, &is_ground);
            LevelSweep { points: std::borrow::Cow::Owned(levelled), is_ground, ground_z, road, level: Some(level) }
        }
        None => LevelSweep { points: std::borrow::Cow::Borrowed(points), is_ground, ground_z, road, level: None },
    }
}

/// Euclidean clusters of a few points (indices into `points`) on a grid of `cell_m`: points
/// in touching cells (8-neighbourhood) join. For re-clustering part of one cluster.
pub fn cluster_subset(points: &[[f32; 4]], indices: &[usize], cell_m: f64) -> Vec<Vec<usize>> {
    let cell = |i: usize| {
        let p = points[i];
        ((f64::from(p[0]) / cell_m).floor() as i64, (f64::from(p[1]) / cell_m).floor() as i64)
    };
    let mut cells: std::collections::HashMap<(i64, i64), Vec<usize>> = std::collections::HashMap::new();
    for &i in indices {
        cells.entry(cell(i)).or_default().push(i);
    }
    let mut keys: Vec<(i64, i64)> = cells.keys().copied().collect();
    keys.sort_unstable();
    let mut out = Vec::new();
    for start in keys {
        let Some(first) = cells.remove(&start) else { continue };
        let mut members = first;
        let mut stack = vec![start];
        while let Some((cx, cy)) = stack.pop() {
            for dx in -1..=1 {
                for dy in -1..=1 {
                    if let Some(more) = cells.remove(&(cx + dx, cy + dy)) {
                        members.extend(more);
                        stack.push((cx + dx, cy + dy));
                    }
                }
            }
        }
        out.push(members);
    }
    out
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
    fn levelling_turns_a_tilted_road_plane_level_and_back() {
        // A road falling 3 % ahead and rising 1 % to the left, 1.7 m below the sensor.
        let plane = [-1.7, -0.03, 0.01];
        let level = Levelling::of_plane(plane).expect("tilted by about 1.8°");
        assert!((level.tilt_rad() - 0.03f64.hypot(0.01).atan()).abs() < 1e-4, "{}", level.tilt_rad());
        let on_road = |x: f64, y: f64| [x, y, plane[0] + plane[1] * x + plane[2] * y];
        let heights: Vec<f64> = [(0.0, 0.0), (30.0, 0.0), (-20.0, 5.0), (10.0, -15.0)]
            .iter()
            .map(|(x, y)| level.rotate(on_road(*x, *y), false)[2])
            .collect();
        for h in &heights {
            assert!((h - heights[0]).abs() < 1e-9, "{heights:?}");
        }
        // Turning back undoes it, and a point keeps its distance from the sensor.
        let p = [12.0, -3.0, 0.5];
        let q = level.rotate(p, false);
        let back = level.rotate(q, true);
        assert!(p.iter().zip(back).all(|(a, b)| (a - b).abs() < 1e-12), "{back:?}");
        assert!((q.iter().map(|v| v * v).sum::<f64>() - p.iter().map(|v| v * v).sum::<f64>()).abs() < 1e-9);
        // A level road, one tilted by less than 0.1°, and a plane that is not finite are left
        // as they are.
        assert!(Levelling::of_plane([-1.73, 0.0, 0.0]).is_none());
        assert!(Levelling::of_plane([-1.73, 0.001, 0.0]).is_none());
        assert!(Levelling::of_plane([-1.73, f64::NAN, 0.0]).is_none());
    }

    #[test]
    fn the_road_plane_follows_a_hill_and_leaves_a_terrace_above_it() {
        // A road rising 6 % ahead, a 0.15 m sidewalk at 3-4 m to the left, and a terrace 1 m
        // above the road beyond 5 m to the right.
        let road_z = |x: f32| -1.73 + 0.06 * x;
        let mut pts = Vec::new();
        for i in -50..50 {
            for k in -16..=16 {
                let (x, y) = (i as f32 * 0.5, k as f32 * 0.5);
                let kerb = if (3.0..=4.0).contains(&y) { 0.15 } else { 0.0 };
                let terrace = if y < -5.0 { 1.0 } else { 0.0 };
                pts.push([x, y, road_z(x) + kerb + terrace, 0.1]);
            }
        }
        let (is_ground, _) = ground(&pts, &SegmentConfig::default());
        let [a, b, c] = road_plane(&pts, &is_ground).expect("a plane");
        assert!((b - 0.06).abs() < 0.01 && c.abs() < 0.01 && (a + 1.73).abs() < 0.05, "{a} {b} {c}");
        let above = |x: f64, y: f64, z: f64| z - (a + b * x + c * y);
        // 20 m ahead the road is 1.2 m higher, and on the plane; the terrace is 1 m above it.
        assert!(above(20.0, 0.0, f64::from(road_z(20.0))).abs() < 0.1);
        assert!(above(10.0, -7.0, f64::from(road_z(10.0)) + 1.0) > 0.8);
        // Too few ground points: no plane.
        assert!(road_plane(&pts[..40], &is_ground[..40]).is_none());
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
