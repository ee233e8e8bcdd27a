//! Oriented box fitting: the rectangle around a cluster's footprint whose sides the points hug
//! (L-shape fitting by the closeness criterion), with the height above the local ground.

/// A fitted box in the sensor frame.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FittedBox {
    pub x_m: f64,
    pub y_m: f64,
    /// Bottom of the box.
    pub z_m: f64,
    pub length_m: f64,
    pub width_m: f64,
    pub height_m: f64,
    pub yaw_rad: f64,
}

fn cross(o: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
}

/// Whether every box that encloses `points` is longer than `length_m` (so fitting one can be
/// skipped when such boxes are discarded): the longer side of an enclosing rectangle is at
/// least its diagonal over √2, and the diagonal at least the points' extent along x or y.
pub fn surely_longer_than(points: &[[f32; 4]], length_m: f64) -> bool {
    let (mut lo, mut hi) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
    for p in points {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let extent = f64::from((hi[0] - lo[0]).max(hi[1] - lo[1]));
    extent > length_m * std::f64::consts::SQRT_2 + 1e-6
}

/// Fits a box to points `[x, y, z, _]` standing on ground at `ground_z`. The length is the
/// longer side; yaw is the direction of the length, in (-pi/2, pi/2].
pub fn fit(points: &[[f32; 4]], ground_z: f64) -> Option<FittedBox> {
    if points.is_empty() {
        return None;
    }
    let xy: Vec<(f64, f64)> = points.iter().map(|p| (f64::from(p[0]), f64::from(p[1]))).collect();
    let top = points.iter().map(|p| f64::from(p[2])).fold(f64::NEG_INFINITY, f64::max);
    // Search the heading by the closeness criterion (Zhang et al., "Efficient L-shape fitting
    // for vehicle detection using laser scanners", 2017): for each candidate angle, every
    // point's distance to the nearest side of the enclosing rectangle; the best angle keeps
    // points close to the sides. Unlike the minimum area, it is not fooled by an L-shaped scan,
    // whose hull is a right triangle (all of whose enclosing rectangles have the same area).
    let mut best: Option<(f64, f64, f64, f64, f64, f64)> = None; // score, angle, u0, u1, v0, v1
                                                                 // Coarse search every 3 degrees, then refine around the best every half degree.
    let coarse: Vec<f64> = (0..30).map(|k| (3.0 * k as f64).to_radians()).collect();
    let mut candidates = coarse;
    let mut uv: Vec<(f64, f64)> = Vec::with_capacity(xy.len());
    for pass in 0..2 {
        if pass == 1 {
            let centre = best.map_or(0.0, |b| b.1);
            candidates = (-6..=6).map(|k| centre + (0.5 * k as f64).to_radians()).collect();
        }
        for &theta in &candidates {
            let (s, c) = theta.sin_cos();
            let (mut u0, mut u1, mut v0, mut v1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
            uv.clear();
            uv.extend(xy.iter().map(|&(x, y)| (c * x + s * y, -s * x + c * y)));
            for &(u, v) in &uv {
                u0 = u0.min(u);
                u1 = u1.max(u);
                v0 = v0.min(v);
                v1 = v1.max(v);
            }
            let score: f64 = uv
                .iter()
                .map(|&(u, v)| {
                    let du = (u - u0).min(u1 - u);
                    let dv = (v - v0).min(v1 - v);
                    1.0 / du.min(dv).max(0.01)
                })
                .sum();
            if best.is_none_or(|b| score > b.0) {
                best = Some((score, theta, u0, u1, v0, v1));
            }
        }
    }
    let (_, theta, u0, u1, v0, v1) = best?;
    let (s, c) = theta.sin_cos();
    let (um, vm) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
    let (x, y) = (c * um - s * vm, s * um + c * vm);
    let (mut l, mut w, mut yaw) = ((u1 - u0).max(0.1), (v1 - v0).max(0.1), theta);
    if w > l {
        std::mem::swap(&mut l, &mut w);
        yaw += std::f64::consts::FRAC_PI_2;
    }
    yaw = normalise_yaw(yaw);
    Some(FittedBox {
        x_m: x,
        y_m: y,
        z_m: ground_z,
        length_m: l,
        width_m: w,
        height_m: (top - ground_z).max(0.1),
        yaw_rad: yaw,
    })
}

/// A yaw in (-pi/2, pi/2]: a box is symmetric under a half turn.
fn normalise_yaw(mut yaw: f64) -> f64 {
    while yaw > std::f64::consts::FRAC_PI_2 {
        yaw -= std::f64::consts::PI;
    }
    while yaw <= -std::f64::consts::FRAC_PI_2 {
        yaw += std::f64::consts::PI;
    }
    yaw
}

/// Grows a box seen only in part to at least `min_length_m` × `min_width_m`, away from the
/// sensor at the origin: a scan shows the sides that face the sensor, so a short box's true
/// centre lies farther away than its points' centre. A side is grown only when the sensor is
/// beyond it (the sensor beside a vehicle sees its whole length).
pub fn complete(b: &FittedBox, min_length_m: f64, min_width_m: f64) -> FittedBox {
    complete_as(b, min_length_m, min_width_m, NOMINAL_WIDTH_M, min_width_m * END_FACE_RATIO)
}

/// [`complete`] for an object whose typical width is `nominal_width_m` and whose end is at
/// most `max_end_m` wide (a side up to that long and nearer the typical width than the other
/// is taken for the object's end).
pub fn complete_as(
    b: &FittedBox,
    min_length_m: f64,
    min_width_m: f64,
    nominal_width_m: f64,
    max_end_m: f64,
) -> FittedBox {
    // Which side is the vehicle's width? A side longer than any vehicle is wide is a flank,
    // so the length runs along it; otherwise the side nearer a vehicle's width is its end (a
    // vehicle seen from behind shows a face about as wide as the car and little of its flank).
    let turn = b.length_m <= max_end_m && (b.length_m - nominal_width_m).abs() < (b.width_m - nominal_width_m).abs();
    if turn {
        return grow(&turned(b), min_length_m, min_width_m);
    }
    grow(b, min_length_m, min_width_m)
}

/// A box found in a levelled sweep ([`super::segment::Levelling`]) in the sensor frame: its
/// centre and heading turned back (the heading projected on the sensor's horizontal plane), its
/// size unchanged.
pub fn turned_back(b: &FittedBox, level: &super::segment::Levelling) -> FittedBox {
    let c = level.rotate([b.x_m, b.y_m, b.z_m + b.height_m / 2.0], true);
    let h = level.rotate([b.yaw_rad.cos(), b.yaw_rad.sin(), 0.0], true);
    FittedBox { x_m: c[0], y_m: c[1], z_m: c[2] - b.height_m / 2.0, yaw_rad: normalise_yaw(h[1].atan2(h[0])), ..*b }
}

/// The same box with its length and width exchanged (turned a quarter).
fn turned(b: &FittedBox) -> FittedBox {
    FittedBox {
        length_m: b.width_m,
        width_m: b.length_m,
        yaw_rad: normalise_yaw(b.yaw_rad + std::f64::consts::FRAC_PI_2),
        ..*b
    }
}

/// Points this far above a box's ground at most count as low (below any car's trunk), metres.
pub const LOW_POINT_M: f64 = 0.5;

/// [`complete`] for a vehicle with its points: a near-square box that the sensor looks at
/// squarely (within about 20 degrees of an axis) and whose far half along the line of sight
/// holds no low point is a vehicle's end and roof seen over its near face (a car queued just
/// ahead): the face hides the lower body behind it, and its length runs along the line of
/// sight, away. A far half with low points is a face of its own along the line of sight (the
/// nose of a car parked square to the road, seen along the row): left to [`complete`].
pub fn complete_vehicle(b: &FittedBox, pts: &[[f32; 4]], min_length_m: f64, min_width_m: f64) -> FittedBox {
    let max_end_m = min_width_m * END_FACE_RATIO;
    if b.length_m <= max_end_m && b.width_m <= max_end_m {
        let (s, c) = b.yaw_rad.sin_cos();
        let along_length = (c * b.x_m + s * b.y_m).abs();
        let along_width = (-s * b.x_m + c * b.y_m).abs();
        if along_length.min(along_width) < 0.35 * along_length.max(along_width) {
            // The axis nearer the line of sight, pointing away from the sensor.
            let (ax, ay) = if along_length > along_width { (c, s) } else { (-s, c) };
            let sign = if ax * b.x_m + ay * b.y_m >= 0.0 { 1.0 } else { -1.0 };
            let centre = ax * b.x_m + ay * b.y_m;
            let mut far =
                pts.iter().filter(|p| sign * (ax * f64::from(p[0]) + ay * f64::from(p[1]) - centre) > 0.0).peekable();
            if far.peek().is_some() && far.all(|p| f64::from(p[2]) - b.z_m >= LOW_POINT_M) {
                let along = if along_length > along_width { *b } else { turned(b) };
                return grow(&along, min_length_m, min_width_m);
            }
        }
    }
    complete(b, min_length_m, min_width_m)
}

/// A side up to this multiple of the minimum width may be a vehicle's end.
const END_FACE_RATIO: f64 = 1.5;
/// A typical vehicle's width, metres.
const NOMINAL_WIDTH_M: f64 = 1.8;

fn grow(b: &FittedBox, min_length_m: f64, min_width_m: f64) -> FittedBox {
    let (s, c) = b.yaw_rad.sin_cos();
    // The sensor in the box frame (u along the length, v across).
    let (ou, ov) = (-(c * b.x_m + s * b.y_m), -(-s * b.x_m + c * b.y_m));
    let mut out = *b;
    let (mut du, mut dv) = (0.0, 0.0);
    if b.length_m < min_length_m && ou.abs() > b.length_m / 2.0 {
        du = -ou.signum() * (min_length_m - b.length_m) / 2.0;
        out.length_m = min_length_m;
    }
    if b.width_m < min_width_m && ov.abs() > b.width_m / 2.0 {
        dv = -ov.signum() * (min_width_m - b.width_m) / 2.0;
        out.width_m = min_width_m;
    }
    out.x_m += c * du - s * dv;
    out.y_m += s * du + c * dv;
    out
}

/// Bird's-eye-view intersection over union of two boxes (convex polygon clipping).
pub fn bev_iou(a: &FittedBox, b: &FittedBox) -> f64 {
    let poly = |bx: &FittedBox| -> Vec<(f64, f64)> {
        let (s, c) = bx.yaw_rad.sin_cos();
        [(1.0, 1.0), (-1.0, 1.0), (-1.0, -1.0), (1.0, -1.0)]
            .iter()
            .map(|(du, dv)| {
                let (u, v) = (du * bx.length_m / 2.0, dv * bx.width_m / 2.0);
                (bx.x_m + c * u - s * v, bx.y_m + s * u + c * v)
            })
            .collect()
    };
    let (pa, pb) = (poly(a), poly(b));
    // Sutherland–Hodgman: clip a by each edge of b (both counter-clockwise).
    let mut out = pa.clone();
    for i in 0..pb.len() {
        let (e0, e1) = (pb[i], pb[(i + 1) % pb.len()]);
        let input = std::mem::take(&mut out);
        if input.is_empty() {
            break;
        }
        let inside = |p: (f64, f64)| cross(e0, e1, p) >= 0.0;
        for k in 0..input.len() {
            let (p, q) = (input[k], input[(k + 1) % input.len()]);
            let (ip, iq) = (inside(p), inside(q));
            if ip {
                out.push(p);
            }
            if ip != iq {
                let (d1, d2) = (cross(e0, e1, p), cross(e0, e1, q));
                let t = d1 / (d1 - d2);
                out.push((p.0 + t * (q.0 - p.0), p.1 + t * (q.1 - p.1)));
            }
        }
    }
    let area = |p: &[(f64, f64)]| {
        (0..p.len()).map(|i| p[i].0 * p[(i + 1) % p.len()].1 - p[(i + 1) % p.len()].0 * p[i].1).sum::<f64>().abs() / 2.0
    };
    let inter = if out.len() >= 3 { area(&out) } else { 0.0 };
    let union = a.length_m * a.width_m + b.length_m * b.width_m - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_yaw_from_an_l_shaped_scan() {
        // Only the two sides facing the sensor are seen, as a lidar would.
        for yaw_deg in [0.0f64, 17.0, 35.0, 62.0, -40.0] {
            let yaw = yaw_deg.to_radians();
            let (l, w) = (4.4, 1.8);
            let (s, c) = yaw.sin_cos();
            let mut pts = Vec::new();
            for i in 0..=40 {
                let t = i as f64 / 40.0;
                for (u, v) in [(-l / 2.0 + l * t, -w / 2.0), (-l / 2.0, -w / 2.0 + w * t)] {
                    for z in [-1.5, -1.0, -0.5] {
                        pts.push([(10.0 + c * u - s * v) as f32, (3.0 + s * u + c * v) as f32, z as f32, 0.5]);
                    }
                }
            }
            let b = fit(&pts, -1.73).unwrap();
            let mut err = (b.yaw_rad - yaw).rem_euclid(std::f64::consts::PI);
            if err > std::f64::consts::FRAC_PI_2 {
                err = std::f64::consts::PI - err;
            }
            assert!(err.to_degrees() < 5.0, "yaw {yaw_deg}: got {}", b.yaw_rad.to_degrees());
            assert!((b.length_m - l).abs() < 0.3 && (b.width_m - w).abs() < 0.3, "{b:?}");
        }
    }

    #[test]
    fn a_vehicle_seen_in_part_is_grown_away_from_the_sensor() {
        // Only the back of a car 20 m ahead along x: a face 1.8 m wide across the line of sight.
        let back =
            FittedBox { x_m: 20.0, y_m: 0.0, z_m: -1.7, length_m: 1.8, width_m: 0.2, height_m: 1.5, yaw_rad: 1.5 };
        let b = complete(&back, 3.9, 1.6);
        assert!((b.length_m - 3.9).abs() < 1e-9 && (b.width_m - 1.8).abs() < 1e-9, "{b:?}");
        assert!(b.yaw_rad.abs() < 0.1, "the length runs along the line of sight: {b:?}");
        // The centre moves away from the sensor by half the missing length.
        assert!((b.x_m - 21.85).abs() < 0.05 && b.y_m.abs() < 0.2, "{b:?}");
        // Half a flank seen from beside the car's back end: grown along the flank, away.
        let flank =
            FittedBox { x_m: 5.0, y_m: 3.0, z_m: -1.7, length_m: 2.9, width_m: 0.3, height_m: 1.5, yaw_rad: 0.0 };
        let b = complete(&flank, 3.9, 1.6);
        assert!((b.x_m - 5.5).abs() < 1e-9 && (b.y_m - 3.65).abs() < 1e-9, "{b:?}");
        // A whole car is left alone.
        let whole = FittedBox { length_m: 4.5, width_m: 1.85, ..flank };
        assert_eq!(complete(&whole, 3.9, 1.6), whole);
    }

    #[test]
    fn a_car_queued_ahead_grows_over_its_hidden_front_and_a_nose_along_a_row_does_not() {
        // The back of a car 4.3 m ahead (x 4.3, 0.3–1.1 m above the ground at z -1.73) and the
        // rear of its roof beyond it (1.1–1.5 m high, x 4.4–6.1): a near-square box 1.9 m
        // across, 1.8 m along the line of sight, fitted with its length across.
        let ground = -1.73_f32;
        let mut queued = Vec::new();
        for i in 0..20 {
            let y = -0.95 + 0.1 * i as f32;
            for h in [0.3, 0.6, 0.9, 1.1] {
                queued.push([4.3, y, ground + h, 0.5]);
            }
            for k in 0..8 {
                queued.push([4.4 + 0.24 * k as f32, y, ground + 1.1 + 0.05 * k as f32, 0.5]);
            }
        }
        let b = FittedBox {
            x_m: 5.2,
            y_m: 0.0,
            z_m: -1.73,
            length_m: 1.9,
            width_m: 1.8,
            height_m: 1.5,
            yaw_rad: std::f64::consts::FRAC_PI_2,
        };
        let v = complete_vehicle(&b, &queued, 3.9, 1.6);
        assert!(v.yaw_rad.abs() < 0.01 && (v.length_m - 3.9).abs() < 1e-9, "{v:?}");
        assert!((v.x_m - 6.25).abs() < 0.01, "grown away, over the hidden front: {v:?}");
        // The same box whose far half holds low points (a nose face running along the line of
        // sight down to the bumper) is left to `complete`, which keeps it as it was fitted.
        let mut nose = queued.clone();
        nose.extend((0..8).map(|k| [4.6 + 0.2 * k as f32, 0.9, ground + 0.3, 0.5]));
        assert_eq!(complete_vehicle(&b, &nose, 3.9, 1.6), complete(&b, 3.9, 1.6));
        // Seen obliquely (45 degrees off both axes), the rule does not apply either.
        let oblique = FittedBox { x_m: 5.0, y_m: 5.0, ..b };
        assert_eq!(complete_vehicle(&oblique, &queued, 3.9, 1.6), complete(&oblique, 3.9, 1.6));
    }

    #[test]
    fn a_cyclist_seen_from_behind_is_grown_along_the_line_of_sight() {
        // A rider 15 m ahead, going away: a face 0.5 m wide across the line of sight.
        let back =
            FittedBox { x_m: 15.0, y_m: 0.0, z_m: -1.7, length_m: 0.5, width_m: 0.2, height_m: 1.7, yaw_rad: 1.57 };
        let b = complete_as(&back, 1.76, 0.6, 0.6, 0.7);
        assert!((b.length_m - 1.76).abs() < 1e-9 && (b.width_m - 0.5).abs() < 1e-9, "{b:?}");
        assert!(b.yaw_rad.abs() < 0.01 && (b.x_m - 15.78).abs() < 0.01, "{b:?}");
        // Seen from beside, a whole rider is left alone.
        let side = FittedBox { length_m: 1.8, width_m: 0.6, yaw_rad: 1.57, ..back };
        assert_eq!(complete_as(&side, 1.76, 0.6, 0.6, 0.7), side);
        // A face 0.8 m long is more than a rider's back: a side seen in part, not turned (and,
        // the sensor being beside it, not grown along itself; only its width grows, away).
        let part = FittedBox { length_m: 0.8, width_m: 0.3, ..back };
        let b = complete_as(&part, 1.76, 0.6, 0.6, 0.7);
        assert!((b.yaw_rad - 1.57).abs() < 1e-9 && b.length_m == 0.8 && b.width_m == 0.6, "{b:?}");
        assert!((b.x_m - 15.15).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn a_cluster_surely_longer_than_a_length_fits_only_longer_boxes() {
        // Straight, L-shaped and scattered clusters at many angles and sizes.
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut skipped, mut kept) = (0, 0);
        for _ in 0..400 {
            let (yaw, l, w) = (next() * 6.3, 2.0 + next() * 20.0, next() * 4.0);
            let (s, c) = yaw.sin_cos();
            let pts: Vec<[f32; 4]> = (0..60)
                .map(|_| {
                    let (u, v) = (next() * l, if next() < 0.5 { 0.0 } else { next() * w });
                    [(c * u - s * v) as f32, (s * u + c * v) as f32, 0.5, 0.0]
                })
                .collect();
            if surely_longer_than(&pts, 12.0) {
                skipped += 1;
                assert!(fit(&pts, 0.0).unwrap().length_m > 12.0);
            } else {
                kept += 1;
            }
        }
        assert!(skipped > 50 && kept > 50, "{skipped} skipped, {kept} kept");
    }

    #[test]
    fn iou_of_known_overlaps() {
        let a = FittedBox { x_m: 0.0, y_m: 0.0, z_m: 0.0, length_m: 4.0, width_m: 2.0, height_m: 1.5, yaw_rad: 0.0 };
        assert!((bev_iou(&a, &a) - 1.0).abs() < 1e-9);
        let b = FittedBox { x_m: 2.0, ..a };
        // Overlap 2 x 2 = 4 of union 8 + 8 - 4 = 12.
        assert!((bev_iou(&a, &b) - 4.0 / 12.0).abs() < 1e-9);
        let c = FittedBox { yaw_rad: std::f64::consts::FRAC_PI_2, ..a };
        // Crossed: overlap 2 x 2 = 4.
        assert!((bev_iou(&a, &c) - 4.0 / 12.0).abs() < 1e-9);
        assert_eq!(bev_iou(&a, &FittedBox { x_m: 10.0, ..a }), 0.0);
    }
}
