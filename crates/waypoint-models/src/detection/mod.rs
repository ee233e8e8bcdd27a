//! Object detection from a lidar sweep: ground removal and clustering ([`segment`]), oriented
//! box fitting ([`boxfit`]), a trained classifier ([`classifier`]), a multi-object tracker
//! ([`tracker`]); training data from the simulator ([`simdata`]) and training ([`train`]); the
//! KITTI reader and judge ([`kitti`]), the evaluations on KITTI directories ([`eval_kitti`]) and
//! on simulated scenes ([`eval_sim`]), and simulated sweeps written as KITTI directories
//! ([`kitti_export`]). [`model`] serves it.

pub mod boxfit;
pub mod classifier;
pub mod eval_kitti;
pub mod eval_sim;
pub mod kitti;
pub mod kitti_export;
pub mod model;
pub mod segment;
pub mod simdata;
pub mod tracker;
pub mod train;

#[cfg(test)]
mod tests;

use boxfit::FittedBox;
use classifier::Classifier;
use segment::SegmentConfig;

/// One detected object, in the sensor frame.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Detection {
    pub bbox: FittedBox,
    /// Index into [`classifier::CLASSES`].
    pub class: usize,
    /// Confidence in that class: the classifier's probability, calibrated where the classifier
    /// carries Platt parameters ([`classifier::Classifier::calibrated`]).
    pub score: f32,
    pub points: usize,
}

/// A cluster whose box is longer than this is structure (a wall, a hedge), not an object, metres.
pub const MAX_OBJECT_LENGTH_M: f64 = 12.0;

/// Fragments whose footprints come this close may be joined, metres.
pub const MERGE_GAP_M: f64 = 2.0;
/// Largest diagonal of two fragments' joint footprint considered, metres.
pub const MERGE_MAX_SPAN_M: f64 = 7.5;
/// A join may lower the vehicle probability of the likelier part by at most this (picked from
/// 0 / 0.1 / 0.3: at 0 a car's own pieces stay apart more often, at 0.3 a whole car still
/// takes the post beside it).
pub const JOIN_SLACK: f32 = 0.1;
/// Two fragments that meet in a beam ring at neighbouring firings with ranges this far apart
/// are two surfaces, one beside and in front of the other ([`side_by_side`]), metres.
pub const APART_RANGE_STEP_M: f64 = 0.5;
/// Fragments that meet that way in at least this many rings, and in at least half of the
/// rings that cross both side by side, are not joined when each has at least
/// [`APART_MIN_POINTS`] points: two cars parked nose to nose beside each other, not one car
/// split by an occluder (whose fragments meet the occluder, not each other).
pub const APART_MIN_RINGS: usize = 3;
pub const APART_MIN_POINTS: usize = 10;
/// Largest joined box kept, metres.
pub const MERGE_MAX_LENGTH_M: f64 = 6.5;
pub const MERGE_MAX_WIDTH_M: f64 = 2.8;

/// A vehicle's box seen in part is grown to at least this footprint, away from the sensor
/// ([`boxfit::complete`]); about the mean KITTI car (3.9 m × 1.6 m).
pub const VEHICLE_MIN_LENGTH_M: f64 = 3.9;
pub const VEHICLE_MIN_WIDTH_M: f64 = 1.6;

/// A pedestrian's and a cyclist's box seen in part are grown to at least these footprints, away
/// from the sensor: about the mean KITTI pedestrian (0.8 m × 0.6 m) and cyclist (1.76 m ×
/// 0.6 m), metres.
pub const PEDESTRIAN_MIN_LENGTH_M: f64 = 0.8;
pub const PEDESTRIAN_MIN_WIDTH_M: f64 = 0.6;
pub const CYCLIST_MIN_LENGTH_M: f64 = 1.76;
pub const CYCLIST_MIN_WIDTH_M: f64 = 0.6;
/// A person's box side up to this long may be their back or front (about a handlebar's width;
/// picked from 0.9 / 0.7 / 0.6 on exported simulated frames), metres: longer is a side seen in
/// part.
pub const PERSON_MAX_END_M: f64 = 0.7;

/// Vehicles are at least this tall; a vehicle's points span at least this less one ring
/// spacing at its range (its roof can fall between two rings), metres.
pub const VEHICLE_MIN_HEIGHT_M: f64 = 1.0;

/// No road vehicle is wider than this (the legal limit is 2.55 m in the EU, 2.6 m in the US;
/// a box fitted to a vehicle's points can come out a little wider), metres.
pub const VEHICLE_MAX_WIDTH_M: f64 = 3.0;

/// A vehicle stands on ground at most this far above the road plane the sensor stands on
/// ([`segment::road_plane`], extended under it): higher is a terrace, a garden behind a
/// retaining wall or a hedge's top, not a road (a kerb is about 0.15 m; a hill is a slope the
/// plane follows), metres.
pub const VEHICLE_MAX_ABOVE_ROAD_M: f64 = 0.5;

/// A vehicle centred this close to the sensor would overlap the sensor's own vehicle (two
/// cars side by side are about 2.5 m apart, centre to centre): such a cluster is the own car's
/// body, its mount or something touching it, metres.
pub const VEHICLE_MIN_RANGE_M: f64 = 2.0;

/// No person, on foot or on a bicycle, is taller than this (the tallest people measured are
/// about 2.5 m; a box's height also carries the ground estimate's error), metres.
pub const PERSON_MAX_HEIGHT_M: f64 = 2.5;

/// Whether a box is too tall for a pedestrian or a cyclist ([`PERSON_MAX_HEIGHT_M`]): a pole, a
/// sign, a tree trunk.
pub fn cannot_be_a_person(b: &FittedBox) -> bool {
    b.height_m > PERSON_MAX_HEIGHT_M
}

/// Beyond this range a "pedestrian" needs at least [`FAR_PEDESTRIAN_MIN_POINTS`] points, metres.
/// A person there shows about 40 points to the HDL-64E at 30 m and 15 at 50 m; what shows
/// fewer is mostly street furniture (on exported simulated frames, 48 of 51 such
/// "pedestrians" beyond 40 m stood on no road user). The 32-beam lidar shows a person there in
/// fewer than 10 points, so it detects pedestrians out to this range.
pub const FAR_PEDESTRIAN_M: f64 = 30.0;
pub const FAR_PEDESTRIAN_MIN_POINTS: usize = 10;

/// Whether a "pedestrian" is too far for the points it shows ([`FAR_PEDESTRIAN_M`]).
pub fn too_few_for_a_far_pedestrian(b: &FittedBox, points: usize) -> bool {
    points < FAR_PEDESTRIAN_MIN_POINTS && b.x_m.hypot(b.y_m) > FAR_PEDESTRIAN_M
}

/// An "other" cluster taller than this is looked at again below it
/// ([`LidarDetector::detect`]): a person under a tree's canopy is one cluster with the canopy
/// and the trunk, metres.
pub const CANOPY_CUT_M: f64 = 2.3;
/// ... where a part counts only if it ends there by itself (a person's head) rather than going
/// on upward (a pole, a trunk): its top is this far below the cut, and the cluster has no
/// point over it within this height (plus one ring spacing) above its top, metres.
pub const UNDER_CANOPY_CLEARANCE_M: f64 = 0.3;

/// Vertical angle between adjacent beams of the HDL-64E that KITTI uses (+2° to −24.9° over 64
/// beams), radians: the detector's default.
pub const HDL64E_RING_SPACING_RAD: f64 = 0.0075;

/// Horizontal angle between the HDL-64E's successive firings at 10 Hz (about 0.18°, 2048 a
/// turn; the two KITTI sweeps hold 1,770–1,800 points a ring, a beam that hits nothing
/// returning none), radians: the detector's default.
pub const HDL64E_AZIMUTH_STEP_RAD: f64 = std::f64::consts::TAU / 2048.0;

/// A vehicle or a pedestrian returns at least this share of the beams that cross its
/// silhouette ([`solidity`]); less is foliage, a wire fence or a hedge's ragged top. On KITTI's
/// frames the labelled pedestrian (legs apart) shows 0.39 and the labelled car 0.81; simulated
/// road users about 1 seen whole, less behind something. Picked as the highest of 0.1 / 0.15 /
/// 0.2 / 0.3 / 0.4 that costs the simulated scenes next to no recall (at 0.3 vehicle recall on
/// seeds 500–503 falls from 0.960 to 0.953). Not for cyclists: a bicycle seen from the side is
/// mostly the gaps between its tubes, wheels and spokes; its rider and tyres would return a
/// fifth to a quarter of the beams (an estimate: the KITTI frames hold no cyclist).
pub const ROAD_USER_MIN_SOLIDITY: f64 = 0.15;

/// How solid a cluster is to the lidar that saw it: its points over the beams that cross its
/// silhouette, the box of azimuths and elevations its points span (a span of k beam steps
/// holds k + 1 beams), for a lidar whose beams are `ring_spacing_rad` apart vertically and
/// `azimuth_step_rad` apart horizontally. A solid surface seen whole returns nearly every
/// beam (1 with no dropouts), foliage and fences a few; more than 1 where the lidar's steps
/// are finer than given. Points in the sensor frame, around the sensor at the origin.
pub fn solidity(points: &[[f32; 4]], ring_spacing_rad: f64, azimuth_step_rad: f64) -> f64 {
    use std::f64::consts::{PI, TAU};
    let Some(first) = points.first() else { return 0.0 };
    // Azimuths relative to one of the points, so that a cluster behind the sensor, across
    // ±180°, spans its own few degrees rather than the whole turn.
    let reference = f64::from(first[1]).atan2(f64::from(first[0]));
    let [az0, az1, el0, el1] =
        points.iter().fold([f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY], |a, p| {
            let (x, y, z) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
            let az = (y.atan2(x) - reference + PI).rem_euclid(TAU) - PI;
            let el = z.atan2(x.hypot(y));
            [a[0].min(az), a[1].max(az), a[2].min(el), a[3].max(el)]
        });
    let beams = ((az1 - az0) / azimuth_step_rad + 1.0) * ((el1 - el0) / ring_spacing_rad + 1.0);
    points.len() as f64 / beams
}

/// How two clusters (points in the sensor frame, around the sensor at the origin) lie to a
/// lidar whose beams are `ring_spacing_rad` apart vertically and `azimuth_step_rad`
/// horizontally: `(apart, beside)`, where `beside` counts the beam rings that cross both with
/// their azimuths apart (one to the left of the other), and `apart` those of them in which the
/// two meet at neighbouring firings (at most one step between their facing ends) with ranges
/// differing by more than [`APART_RANGE_STEP_M`]. One surface broken by a gap in the scan (an
/// occluder, a dark panel) leaves firings between its pieces; the end of one car's nose beside
/// the flank of the next, further off, does not. Rings are elevation bands one spacing wide.
pub fn side_by_side(a: &[[f32; 4]], b: &[[f32; 4]], ring_spacing_rad: f64, azimuth_step_rad: f64) -> (usize, usize) {
    let (_, facing) = facing_ends(a, b, ring_spacing_rad);
    let apart = facing
        .iter()
        .filter(|(_, p, q)| (q.0 - p.0) / azimuth_step_rad < 1.5 && (q.1 - p.1).abs() > APART_RANGE_STEP_M)
        .count();
    (apart, facing.len())
}

/// The ring (an elevation band one spacing wide) and the azimuth relative to `reference` of a
/// point, with its horizontal range.
fn ring_azimuth_range(p: &[f32; 4], reference: f64, ring_spacing_rad: f64) -> (i64, f64, f64) {
    use std::f64::consts::{PI, TAU};
    let (x, y, z) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
    let r = x.hypot(y);
    ((z.atan2(r) / ring_spacing_rad).round() as i64, (y.atan2(x) - reference + PI).rem_euclid(TAU) - PI, r)
}

/// Per ring in which `a` and `b` lie side by side (their azimuths apart), the facing ends as
/// (azimuth, range), the left one first; azimuths relative to the returned reference.
#[allow(clippy::type_complexity)]
fn facing_ends(a: &[[f32; 4]], b: &[[f32; 4]], ring_spacing_rad: f64) -> (f64, Vec<(i64, (f64, f64), (f64, f64))>) {
    use std::collections::BTreeMap;
    let Some(first) = a.first() else { return (0.0, Vec::new()) };
    let reference = f64::from(first[1]).atan2(f64::from(first[0]));
    // Per ring, the (azimuth, range) of the leftmost and rightmost points.
    type Ends = BTreeMap<i64, [(f64, f64); 2]>;
    let ends = |pts: &[[f32; 4]]| {
        let mut m = Ends::new();
        for p in pts {
            let (ring, az, r) = ring_azimuth_range(p, reference, ring_spacing_rad);
            let e = m.entry(ring).or_insert([(az, r), (az, r)]);
            if az < e[0].0 {
                e[0] = (az, r);
            }
            if az > e[1].0 {
                e[1] = (az, r);
            }
        }
        m
    };
    let (ea, eb) = (ends(a), ends(b));
    let mut out = Vec::new();
    for (ring, [a_lo, a_hi]) in &ea {
        let Some([b_lo, b_hi]) = eb.get(ring) else { continue };
        if a_hi.0 < b_lo.0 {
            out.push((*ring, *a_hi, *b_lo));
        } else if b_hi.0 < a_lo.0 {
            out.push((*ring, *b_hi, *a_lo));
        }
    }
    (reference, out)
}

/// Whether the sweep looks through the gap between two clusters lying side by side:
/// `(through, observed)`, where `observed` counts the rings in which a return of `sweep` lies
/// between their facing ends, and `through` those in which one lies further than both ends by
/// more than [`APART_RANGE_STEP_M`] (the road or something behind: free space between two
/// objects). A gap that is an occluder's shadow on one object returns from nearer instead.
pub fn seen_through(sweep: &[[f32; 4]], a: &[[f32; 4]], b: &[[f32; 4]], ring_spacing_rad: f64) -> (usize, usize) {
    use std::collections::BTreeMap;
    let (reference, facing) = facing_ends(a, b, ring_spacing_rad);
    let gaps: BTreeMap<i64, (f64, f64, f64)> =
        facing.iter().map(|(ring, p, q)| (*ring, (p.0, q.0, p.1.max(q.1) + APART_RANGE_STEP_M))).collect();
    let (Some(lo), Some(hi)) =
        (gaps.values().map(|g| g.0).min_by(f64::total_cmp), gaps.values().map(|g| g.1).max_by(f64::total_cmp))
    else {
        return (0, 0);
    };
    // The wedge of azimuths between the two, tested by cross products before any angle is
    // computed (it is narrower than half a turn: the two lie side by side).
    let (from_dir, to_dir) = ((reference + lo).sin_cos(), (reference + hi).sin_cos());
    let mut seen: BTreeMap<i64, bool> = BTreeMap::new();
    for p in sweep {
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        if from_dir.1 * y - from_dir.0 * x <= 0.0 || x * to_dir.0 - y * to_dir.1 <= 0.0 {
            continue;
        }
        let (ring, az, r) = ring_azimuth_range(p, reference, ring_spacing_rad);
        let Some(&(from, to, further)) = gaps.get(&ring) else { continue };
        if az > from && az < to {
            let through = seen.entry(ring).or_insert(false);
            *through |= r > further;
        }
    }
    (seen.values().filter(|t| **t).count(), seen.len())
}

/// Two detections of one class whose boxes overlap by more than this (bird's-eye IoU) are
/// one object seen in pieces; the one with more points is kept.
pub const SUPPRESS_IOU: f64 = 0.1;

/// Non-maximum suppression by point count: a vehicle's fragments, each grown to a vehicle's
/// size away from the sensor, overlap one another.
fn suppress_overlaps(mut dets: Vec<Detection>) -> Vec<Detection> {
    dets.sort_by_key(|d| std::cmp::Reverse(d.points));
    let mut kept: Vec<Detection> = Vec::with_capacity(dets.len());
    for d in dets {
        if !kept.iter().any(|k| k.class == d.class && boxfit::bev_iou(&k.bbox, &d.bbox) > SUPPRESS_IOU) {
            kept.push(d);
        }
    }
    kept
}

/// Pairs of clusters (indices into `clusters`, with the gap between their footprints, metres)
/// that may be fragments of one vehicle: footprints within [`MERGE_GAP_M`] of each other, and
/// a joint footprint whose diagonal is at most [`MERGE_MAX_SPAN_M`]. The detector joins such a
/// pair when the union fits a vehicle's box and the classifier calls it a vehicle.
pub fn merge_candidates(points: &[[f32; 4]], clusters: &[Vec<usize>]) -> Vec<(f32, usize, usize)> {
    let aabb: Vec<[f32; 4]> = clusters
        .iter()
        .map(|c| {
            c.iter().fold([f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY], |a, i| {
                let p = points[*i];
                [a[0].min(p[0]), a[1].min(p[1]), a[2].max(p[0]), a[3].max(p[1])]
            })
        })
        .collect();
    let mut pairs = Vec::new();
    for i in 0..clusters.len() {
        for j in i + 1..clusters.len() {
            let (a, b) = (aabb[i], aabb[j]);
            let gap_x = (b[0] - a[2]).max(a[0] - b[2]).max(0.0);
            let gap_y = (b[1] - a[3]).max(a[1] - b[3]).max(0.0);
            let gap = gap_x.hypot(gap_y);
            let span = (a[2].max(b[2]) - a[0].min(b[0])).hypot(a[3].max(b[3]) - a[1].min(b[1]));
            if f64::from(gap) <= MERGE_GAP_M && f64::from(span) <= MERGE_MAX_SPAN_M {
                pairs.push((gap, i, j));
            }
        }
    }
    pairs
}

/// The detection pipeline.
#[derive(Debug, Clone)]
pub struct LidarDetector {
    pub segment: SegmentConfig,
    pub classifier: Classifier,
    /// Join fragments of one vehicle ([`LidarDetector::detect`]).
    pub merge_fragments: bool,
    /// Vertical angle between the lidar's adjacent beams, radians (for the vehicle height rule
    /// and [`solidity`]).
    pub ring_spacing_rad: f64,
    /// Horizontal angle between the lidar's successive firings, radians (for [`solidity`]).
    pub azimuth_step_rad: f64,
}

impl LidarDetector {
    /// Detections of one sweep (`[x, y, z, intensity]` in the sensor frame), "other" excluded
    /// unless `keep_other`. A "vehicle" that cannot be one
    /// ([`LidarDetector::cannot_be_a_vehicle`]: low walls, kerbs and bushes the classifier
    /// takes for a car's flank, a structure's corner, the sensor's own car), a pedestrian or
    /// cyclist taller than a person ([`cannot_be_a_person`]), a pedestrian beyond 30 m in
    /// fewer than 10 points ([`too_few_for_a_far_pedestrian`]), and a vehicle or pedestrian that
    /// returns less than [`ROAD_USER_MIN_SOLIDITY`] of the beams crossing it ([`solidity`]:
    /// foliage, a fence), is "other". An "other" cluster
    /// taller than [`CANOPY_CUT_M`] with a surface above the cut is looked at again below it:
    /// a part that ends there by itself ([`LidarDetector::ends_below`]) and is a road user is
    /// a detection of its own (a person under a tree, clustered with its canopy and trunk).
    ///
    /// A sweep whose road plane is tilted (the sensor pitched or rolled, a road that climbs or
    /// leans) is first levelled ([`segment::Levelling`]), and its boxes are turned back into the
    /// sensor frame.
    pub fn detect(&self, points: &[[f32; 4]], keep_other: bool) -> Vec<Detection> {
        let sweep = segment::level_sweep(points, &self.segment);
        let dets = self.detect_on_ground(&sweep.points, &sweep.is_ground, &sweep.ground_z, sweep.road, keep_other);
        match sweep.level {
            Some(level) => {
                dets.into_iter().map(|d| Detection { bbox: boxfit::turned_back(&d.bbox, &level), ..d }).collect()
            }
            None => dets,
        }
    }

    /// [`LidarDetector::detect`] with the ground found and the sweep level.
    fn detect_on_ground(
        &self,
        points: &[[f32; 4]],
        is_ground: &[bool],
        ground_z: &[f32],
        road: Option<[f64; 3]>,
        keep_other: bool,
    ) -> Vec<Detection> {
        let clusters = segment::cluster_with_ground(points, &self.segment, is_ground, ground_z);
        let clusters = if self.merge_fragments { self.merge(points, ground_z, clusters) } else { clusters };
        let mut out = Vec::new();
        for c in clusters {
            let Some(d) = self.classify(points, ground_z, road, &c) else { continue };
            // Something under a canopy or an awning is one cluster with it: look again below the
            // cut, for objects that end there by themselves, where there is a surface above it
            // (a few points at least, not a stray return).
            let below: Vec<usize> = if d.class == 3 && d.bbox.height_m > CANOPY_CUT_M {
                c.iter().copied().filter(|i| points[*i][2] - ground_z[*i] <= CANOPY_CUT_M as f32).collect()
            } else {
                Vec::new()
            };
            if c.len() - below.len() >= self.segment.min_points && !below.is_empty() {
                for part in segment::cluster_subset(points, &below, self.segment.cluster_cell_m) {
                    if part.len() < self.segment.min_points || !self.ends_below(points, ground_z, &c, &part) {
                        continue;
                    }
                    if let Some(d) = self.classify(points, ground_z, road, &part).filter(|d| d.class != 3) {
                        out.push(d);
                    }
                }
            }
            if d.class == 3 && !keep_other {
                continue;
            }
            out.push(d);
        }
        suppress_overlaps(out)
    }

    /// Whether `part` of `cluster` ends by itself below [`CANOPY_CUT_M`] (a person's head
    /// under a canopy) rather than going on upward (a trunk, a pole): no point of the cluster
    /// above its footprint within [`UNDER_CANOPY_CLEARANCE_M`] plus one ring spacing over its
    /// top.
    fn ends_below(&self, points: &[[f32; 4]], ground_z: &[f32], cluster: &[usize], part: &[usize]) -> bool {
        let h = |i: usize| f64::from(points[i][2] - ground_z[i]);
        let top = part.iter().map(|i| h(*i)).fold(f64::NEG_INFINITY, f64::max);
        let [x0, y0, x1, y1] =
            part.iter().fold([f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY], |a, i| {
                let p = points[*i];
                [a[0].min(p[0]), a[1].min(p[1]), a[2].max(p[0]), a[3].max(p[1])]
            });
        let range = f64::from((x0 + x1) / 2.0).hypot(f64::from((y0 + y1) / 2.0));
        let reach = top + UNDER_CANOPY_CLEARANCE_M + range * self.ring_spacing_rad;
        let margin = 0.15;
        top <= CANOPY_CUT_M - UNDER_CANOPY_CLEARANCE_M
            && !cluster.iter().any(|i| {
                let p = points[*i];
                (x0 - margin..=x1 + margin).contains(&p[0])
                    && (y0 - margin..=y1 + margin).contains(&p[1])
                    && h(*i) > top
                    && h(*i) <= reach
            })
    }

    /// The detection of one cluster (indices into `points`), "other" included; none for a
    /// cluster too long for an object or without a box.
    fn classify(
        &self,
        points: &[[f32; 4]],
        ground_z: &[f32],
        road: Option<[f64; 3]>,
        c: &[usize],
    ) -> Option<Detection> {
        let pts: Vec<[f32; 4]> = c.iter().map(|i| points[*i]).collect();
        let g = c.iter().map(|i| f64::from(ground_z[*i])).sum::<f64>() / c.len() as f64;
        // Implausibly large clusters are structure (walls, hedges), not objects.
        if boxfit::surely_longer_than(&pts, MAX_OBJECT_LENGTH_M) {
            return None;
        }
        let b = boxfit::fit(&pts, g)?;
        if b.length_m > MAX_OBJECT_LENGTH_M || b.height_m < 0.3 {
            return None;
        }
        let probs = self.classifier.predict(&classifier::features(&b, &pts, self.ring_spacing_rad));
        let (mut class, score) =
            probs.iter().enumerate().fold((3, 0.0f32), |acc, (i, p)| if *p > acc.1 { (i, *p) } else { acc });
        let above_road = road.map_or(0.0, |r| g - (r[0] + r[1] * b.x_m + r[2] * b.y_m));
        if (class == 0 && (self.cannot_be_a_vehicle(&b) || above_road > VEHICLE_MAX_ABOVE_ROAD_M))
            || ((class == 1 || class == 2)
                && (cannot_be_a_person(&b) || (class == 1 && too_few_for_a_far_pedestrian(&b, pts.len()))))
            || ((class == 0 || class == 1) && self.solidity(&pts) < ROAD_USER_MIN_SOLIDITY)
        {
            class = 3;
        }
        let b = match class {
            0 => boxfit::complete_vehicle(&b, &pts, VEHICLE_MIN_LENGTH_M, VEHICLE_MIN_WIDTH_M),
            1 => boxfit::complete_as(
                &b,
                PEDESTRIAN_MIN_LENGTH_M,
                PEDESTRIAN_MIN_WIDTH_M,
                PEDESTRIAN_MIN_WIDTH_M,
                PERSON_MAX_END_M,
            ),
            2 => boxfit::complete_as(
                &b,
                CYCLIST_MIN_LENGTH_M,
                CYCLIST_MIN_WIDTH_M,
                CYCLIST_MIN_WIDTH_M,
                PERSON_MAX_END_M,
            ),
            _ => b,
        };
        Some(Detection { bbox: b, class, score: self.classifier.calibrated(score), points: pts.len() })
    }

    /// The classifier's probabilities for a cluster (indices into `points`); none without a box.
    fn class_probs(&self, points: &[[f32; 4]], ground_z: &[f32], c: &[usize]) -> Option<[f32; 4]> {
        let pts: Vec<[f32; 4]> = c.iter().map(|i| points[*i]).collect();
        let g = c.iter().map(|i| f64::from(ground_z[*i])).sum::<f64>() / c.len() as f64;
        boxfit::fit(&pts, g).map(|b| self.classifier.predict(&classifier::features(&b, &pts, self.ring_spacing_rad)))
    }

    /// [`solidity`] of some points to this detector's lidar.
    pub fn solidity(&self, points: &[[f32; 4]]) -> f64 {
        solidity(points, self.ring_spacing_rad, self.azimuth_step_rad)
    }

    /// Whether a box's shape or place rules out a vehicle: lower than a vehicle's points can
    /// span at its range ([`LidarDetector::too_low_for_a_vehicle`]), wider than
    /// [`VEHICLE_MAX_WIDTH_M`] (a wall's corner, a hedge) or centred within
    /// [`VEHICLE_MIN_RANGE_M`] of the sensor.
    pub fn cannot_be_a_vehicle(&self, b: &FittedBox) -> bool {
        self.too_low_for_a_vehicle(b) || b.width_m > VEHICLE_MAX_WIDTH_M || b.x_m.hypot(b.y_m) < VEHICLE_MIN_RANGE_M
    }

    /// Whether a box is lower than a vehicle's points can span at its range: less than
    /// [`VEHICLE_MIN_HEIGHT_M`] less one ring spacing there.
    pub fn too_low_for_a_vehicle(&self, b: &FittedBox) -> bool {
        b.height_m < VEHICLE_MIN_HEIGHT_M - b.x_m.hypot(b.y_m) * self.ring_spacing_rad
    }

    /// Joins fragments of one vehicle split by a gap in the scan (an occluder, a dark panel):
    /// clusters whose footprints come within [`MERGE_GAP_M`] are joined when their union fits a
    /// vehicle-sized box that the classifier calls a vehicle, and not a worse one than its
    /// likelier part is (by more than [`JOIN_SLACK`]), unless the two lie side by side, apart
    /// ([`side_by_side`], [`APART_MIN_RINGS`]), or the sweep looks through the gap between
    /// them to something further off ([`seen_through`], in as many rings). Closest pairs first.
    fn merge(&self, points: &[[f32; 4]], ground_z: &[f32], clusters: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
        let mut pairs = merge_candidates(points, &clusters);
        if pairs.is_empty() {
            return clusters;
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Each cluster's class probabilities, for the clusters in a pair ("other" without a box).
        const NO_BOX: [f32; 4] = [0.0, 0.0, 0.0, 1.0];
        let mut probs: Vec<Option<[f32; 4]>> = vec![None; clusters.len()];
        for &(_, i, j) in &pairs {
            for k in [i, j] {
                if probs[k].is_none() {
                    probs[k] = self.class_probs(points, ground_z, &clusters[k]).or(Some(NO_BOX));
                }
            }
        }
        let probs: Vec<[f32; 4]> = probs.into_iter().map(|p| p.unwrap_or(NO_BOX)).collect();
        // A fragment that is itself a confident pedestrian or cyclist is a road user of its own,
        // not part of a vehicle beside it.
        let small_user = |k: usize| probs[k][1] >= 0.6 || probs[k][2] >= 0.6;
        pairs.retain(|(_, i, j)| !small_user(*i) && !small_user(*j));
        // How much of a vehicle each group is: a join must not make it less of one (a whole car
        // joined with the post beside it is a worse car).
        let mut vehicle_p: Vec<f32> = probs.iter().map(|p| p[0]).collect();
        let mut groups: Vec<Option<Vec<usize>>> = clusters.into_iter().map(Some).collect();
        let mut root: Vec<usize> = (0..groups.len()).collect();
        fn find(root: &mut [usize], mut i: usize) -> usize {
            while root[i] != i {
                root[i] = root[root[i]];
                i = root[i];
            }
            i
        }
        for (_, i, j) in pairs {
            let (ri, rj) = (find(&mut root, i), find(&mut root, j));
            if ri == rj {
                continue;
            }
            let (Some(a), Some(b)) = (&groups[ri], &groups[rj]) else { continue };
            let joined: Vec<usize> = a.iter().chain(b.iter()).copied().collect();
            let pts: Vec<[f32; 4]> = joined.iter().map(|k| points[*k]).collect();
            let g = joined.iter().map(|k| f64::from(ground_z[*k])).sum::<f64>() / joined.len() as f64;
            let Some(bx) = boxfit::fit(&pts, g) else { continue };
            if bx.length_m > MERGE_MAX_LENGTH_M || bx.width_m > MERGE_MAX_WIDTH_M {
                continue;
            }
            let p = self.classifier.predict(&classifier::features(&bx, &pts, self.ring_spacing_rad))[0];
            if p < 0.5 || p < vehicle_p[ri].max(vehicle_p[rj]) - JOIN_SLACK {
                continue;
            }
            // Last, as the least often needed: two fragments side by side, apart, are two objects.
            if a.len() >= APART_MIN_POINTS && b.len() >= APART_MIN_POINTS {
                let (apart, beside) =
                    side_by_side(&pts[..a.len()], &pts[a.len()..], self.ring_spacing_rad, self.azimuth_step_rad);
                if apart >= APART_MIN_RINGS && 2 * apart >= beside {
                    continue;
                }
                // Two objects with free space between them: the sweep looks through the gap.
                if beside > 0 {
                    let (through, observed) =
                        seen_through(points, &pts[..a.len()], &pts[a.len()..], self.ring_spacing_rad);
                    if through >= APART_MIN_RINGS && 2 * through >= observed {
                        continue;
                    }
                }
            }
            vehicle_p[ri] = p;
            groups[ri] = Some(joined);
            groups[rj] = None;
            root[rj] = ri;
        }
        let mut out: Vec<Vec<usize>> = groups.into_iter().flatten().collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.len()));
        out
    }
}
