//! KITTI 3D object data: labels and calibration, labels moved into the lidar frame, and the
//! evaluation of detections against them by bird's-eye-view IoU.

use std::path::Path;

use nalgebra::{Matrix3, Matrix3x4, Vector3, Vector4};

use super::boxfit::{bev_iou, FittedBox};
use super::Detection;
use crate::ModelError;

/// Image width used for the camera field of view (KITTI images are 1224–1242 px wide).
pub const IMAGE_WIDTH_PX: f64 = 1242.0;

/// Calibration of one frame.
#[derive(Debug, Clone)]
pub struct Calib {
    pub p2: Matrix3x4<f64>,
    pub r0: Matrix3<f64>,
    pub velo_to_cam: Matrix3x4<f64>,
}

/// One label.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub kind: String,
    pub bbox_2d: [f64; 4],
    /// Box in the lidar frame (absent for DontCare).
    pub bbox: Option<FittedBox>,
}

/// The numbers of a line; an error names the first token that is not one.
fn nums(line: &str) -> Result<Vec<f64>, String> {
    line.split_whitespace()
        .map(|t| t.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| format!("{t:?} is not a number")))
        .collect()
}

/// Parses a calibration file.
pub fn parse_calib(text: &str) -> Result<Calib, ModelError> {
    let get = |key: &str, n: usize| -> Result<Vec<f64>, ModelError> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .ok_or_else(|| ModelError::Load(format!("calibration lacks {key}")))?;
        let v = nums(&line[key.len() + 1..]).map_err(|e| ModelError::Load(format!("calibration {key}: {e}")))?;
        if v.len() < n {
            return Err(ModelError::Load(format!("calibration {key} has {} numbers, expected {n}", v.len())));
        }
        Ok(v)
    };
    Ok(Calib {
        p2: Matrix3x4::from_row_slice(&get("P2", 12)?[..12]),
        r0: Matrix3::from_row_slice(&get("R0_rect", 9)?[..9]),
        velo_to_cam: Matrix3x4::from_row_slice(&get("Tr_velo_to_cam", 12)?[..12]),
    })
}

impl Calib {
    fn rot(&self) -> Matrix3<f64> {
        self.velo_to_cam.fixed_view::<3, 3>(0, 0).into_owned()
    }

    /// Rectified camera coordinates of a lidar point.
    pub fn velo_to_rect(&self, p: Vector3<f64>) -> Vector3<f64> {
        self.r0 * (self.velo_to_cam * Vector4::new(p.x, p.y, p.z, 1.0))
    }

    /// Lidar coordinates of a rectified camera point.
    pub fn rect_to_velo(&self, p: Vector3<f64>) -> Vector3<f64> {
        let r0_inv = self.r0.try_inverse().unwrap_or_else(Matrix3::identity);
        let reference = r0_inv * p;
        let t = self.velo_to_cam.column(3).into_owned();
        self.rot().transpose() * (reference - t)
    }

    /// The image pixel of a lidar point in front of the front camera (none behind it).
    pub fn project(&self, p: Vector3<f64>) -> Option<(f64, f64)> {
        let r = self.velo_to_rect(p);
        let uvw = self.p2 * Vector4::new(r.x, r.y, r.z, 1.0);
        (uvw.z > 0.1).then(|| (uvw.x / uvw.z, uvw.y / uvw.z))
    }

    /// Whether a lidar point projects into the front camera's image, and where.
    pub fn in_fov(&self, p: Vector3<f64>) -> Option<(f64, f64)> {
        self.project(p).filter(|(u, _)| (0.0..IMAGE_WIDTH_PX).contains(u))
    }
}

/// Parses a label file and moves each box into the lidar frame.
pub fn parse_labels(text: &str, calib: &Calib) -> Result<Vec<Label>, ModelError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 15 {
            return Err(ModelError::Load(format!("label line {}: {} fields, expected 15", i + 1, f.len())));
        }
        let v = nums(&f[1..15].join(" ")).map_err(|e| ModelError::Load(format!("label line {}: {e}", i + 1)))?;
        let kind = f[0].to_string();
        let bbox_2d = [v[3], v[4], v[5], v[6]];
        let bbox = if kind == "DontCare" {
            None
        } else {
            let (h, w, l, x, y, z, ry) = (v[7], v[8], v[9], v[10], v[11], v[12], v[13]);
            let centre = calib.rect_to_velo(Vector3::new(x, y - h / 2.0, z));
            let r0_inv = calib.r0.try_inverse().unwrap_or_else(Matrix3::identity);
            let dir = calib.rot().transpose() * (r0_inv * Vector3::new(ry.cos(), 0.0, -ry.sin()));
            Some(FittedBox {
                x_m: centre.x,
                y_m: centre.y,
                z_m: centre.z - h / 2.0,
                length_m: l,
                width_m: w,
                height_m: h,
                yaw_rad: dir.y.atan2(dir.x),
            })
        };
        out.push(Label { kind, bbox_2d, bbox });
    }
    Ok(out)
}

/// Evaluation class of a KITTI type: 0 vehicle, 1 pedestrian, 2 cyclist; none for the rest.
pub fn eval_class(kind: &str) -> Option<usize> {
    match kind {
        "Car" | "Van" | "Truck" | "Tram" => Some(0),
        "Pedestrian" | "Person_sitting" => Some(1),
        "Cyclist" => Some(2),
        _ => None,
    }
}

/// Per-class counts of one frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Counts {
    pub tp: [usize; 3],
    pub fp: [usize; 3],
    pub fn_: [usize; 3],
}

/// What the evaluation made of one detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Matched to a label of its class: a true positive.
    Right,
    /// Matched to none: a false positive.
    Wrong,
    /// Not counted: outside the camera's image.
    OutOfView,
    /// Not counted: matched to no label, and its centre projects into a DontCare region.
    DontCare,
    /// Not counted: matched to no label, and on a labelled object of a kind not evaluated
    /// (Misc, ...).
    Unevaluated,
    /// Not counted: classified "other".
    NotARoadUser,
}

/// The point of a detection that is projected into the image: its box's centre.
fn centre(d: &Detection) -> Vector3<f64> {
    Vector3::new(d.bbox.x_m, d.bbox.y_m, d.bbox.z_m + d.bbox.height_m / 2.0)
}

/// Matches detections (sensor = lidar frame) to labels: same class, BEV IoU at least 0.5 for
/// vehicles and 0.3 for pedestrians and cyclists, best pairs first. Detections outside the
/// camera's view are ignored, and so are unmatched ones inside a DontCare region or on an
/// unevaluated label (Misc). Returns the counts and the verdict on each
/// detection (in `dets`' order).
pub fn judge_frame(dets: &[Detection], labels: &[Label], calib: &Calib) -> (Counts, Vec<Verdict>) {
    let mut c = Counts::default();
    let dontcare: Vec<[f64; 4]> = labels.iter().filter(|l| l.kind == "DontCare").map(|l| l.bbox_2d).collect();
    let evaluated: Vec<(usize, FittedBox)> =
        labels.iter().filter_map(|l| Some((eval_class(&l.kind)?, l.bbox?))).collect();
    let ignored: Vec<FittedBox> = labels
        .iter()
        .filter(|l| l.kind != "DontCare" && eval_class(&l.kind).is_none())
        .filter_map(|l| l.bbox)
        .collect();
    // Out of view or not a road user: not judged. The rest are matched first; only a detection
    // left unmatched is then excused by a DontCare region or an unevaluated label (as KITTI's
    // own evaluation does: a car found inside a DontCare region still counts as found).
    let pixel: Vec<Option<(f64, f64)>> = dets.iter().map(|d| calib.in_fov(centre(d))).collect();
    let mut verdicts: Vec<Verdict> = dets
        .iter()
        .zip(&pixel)
        .map(|(d, px)| match (d.class, px) {
            (3.., _) => Verdict::NotARoadUser,
            (_, None) => Verdict::OutOfView,
            _ => Verdict::Wrong,
        })
        .collect();
    for class in 0..3 {
        let thr = if class == 0 { 0.5 } else { 0.3 };
        let ds: Vec<usize> =
            (0..dets.len()).filter(|i| verdicts[*i] == Verdict::Wrong && dets[*i].class == class).collect();
        let ls: Vec<&FittedBox> = evaluated.iter().filter(|(k, _)| *k == class).map(|(_, b)| b).collect();
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for &i in &ds {
            for (j, l) in ls.iter().enumerate() {
                let iou = bev_iou(&dets[i].bbox, l);
                if iou >= thr {
                    pairs.push((iou, i, j));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut label_used = vec![false; ls.len()];
        for (_, i, j) in pairs {
            if verdicts[i] == Verdict::Wrong && !label_used[j] {
                verdicts[i] = Verdict::Right;
                label_used[j] = true;
                c.tp[class] += 1;
            }
        }
        c.fn_[class] += label_used.iter().filter(|u| !**u).count();
    }
    for ((d, v), px) in dets.iter().zip(verdicts.iter_mut()).zip(&pixel) {
        let (Verdict::Wrong, Some((u, px_v))) = (*v, *px) else { continue };
        if dontcare.iter().any(|b| u >= b[0] && u <= b[2] && px_v >= b[1] && px_v <= b[3]) {
            *v = Verdict::DontCare;
        } else if ignored.iter().any(|b| bev_iou(&d.bbox, b) > 0.1) {
            *v = Verdict::Unevaluated;
        } else {
            c.fp[d.class] += 1;
        }
    }
    (c, verdicts)
}

/// Average precision of scored detections judged right or wrong, against `labels` objects to
/// find: the precision-recall curve taken in score order, its precision made non-increasing,
/// read at 40 recall points (1/40 ... 1), as KITTI has reported since 2019. None without labels.
pub fn average_precision(scored: &[(f32, bool)], labels: usize) -> Option<f64> {
    if labels == 0 {
        return None;
    }
    let mut sorted = scored.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    // (recall, precision) after each detection.
    let mut curve = Vec::with_capacity(sorted.len());
    let mut tp = 0usize;
    for (k, (_, right)) in sorted.iter().enumerate() {
        tp += usize::from(*right);
        curve.push((tp as f64 / labels as f64, tp as f64 / (k + 1) as f64));
    }
    let sum: f64 = (1..=40)
        .map(|i| {
            let r = f64::from(i) / 40.0;
            curve.iter().filter(|(rec, _)| *rec >= r - 1e-12).map(|(_, p)| *p).fold(0.0, f64::max)
        })
        .sum();
    Some(sum / 40.0)
}

/// Reads one frame's calibration and labels.
pub fn read_frame(dir: &Path, id: &str) -> Result<(Calib, Vec<Label>), ModelError> {
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).map_err(|e| ModelError::Load(format!("{}: {e}", p.display())))
    };
    let calib = parse_calib(&read(dir.join("calib").join(format!("{id}.txt")))?)?;
    let labels = parse_labels(&read(dir.join("label_2").join(format!("{id}.txt")))?, &calib)?;
    Ok((calib, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up calibration in KITTI's format: the camera looks along the lidar's x axis
    /// (camera x = -lidar y, camera y = -lidar z, camera z = lidar x), 0.1 m below and 0.3 m
    /// ahead of it, focal length 700 px, principal point (620, 190).
    const CALIB: &str = "P0: 700 0 620 0 0 700 190 0 0 0 1 0
P2: 700 0 620 0 0 700 190 0 0 0 1 0
R0_rect: 1 0 0 0 1 0 0 0 1
Tr_velo_to_cam: 0 -1 0 0 0 0 -1 -0.1 1 0 0 -0.3
";

    fn det(x_m: f64, y_m: f64, class: usize, size: (f64, f64)) -> Detection {
        let bbox = FittedBox { x_m, y_m, z_m: -1.8, length_m: size.0, width_m: size.1, height_m: 1.5, yaw_rad: 0.05 };
        Detection { bbox, class, score: 0.9, points: 50 }
    }

    #[test]
    fn labels_move_into_the_lidar_frame() {
        let calib = parse_calib(CALIB).unwrap();
        // A car 15 m ahead of the camera and 1 m to its right, heading away (ry = -90°).
        let labels =
            parse_labels("Car 0.00 0 -1.5 500 150 700 250 1.50 1.70 4.00 1.00 1.70 15.00 -1.5707963\n\n", &calib)
                .unwrap();
        assert_eq!(labels.len(), 1, "blank lines are skipped");
        let b = labels[0].bbox.unwrap();
        // Camera (1.0, 1.7 - 0.75, 15.0) is lidar (15.3, -1.0, -1.05); the bottom 0.75 m lower.
        for (got, want) in [(b.x_m, 15.3), (b.y_m, -1.0), (b.z_m, -1.8), (b.yaw_rad, 0.0)] {
            assert!((got - want).abs() < 1e-6, "{b:?}");
        }
        assert_eq!((b.length_m, b.width_m, b.height_m), (4.0, 1.7, 1.5));
        // ry = 0 heads along the camera's x: the lidar's -y.
        let side = parse_labels("Car 0 0 0 0 0 1 1 1.5 1.7 4.0 1.0 1.7 15.0 0", &calib).unwrap();
        assert!((side[0].bbox.unwrap().yaw_rad + std::f64::consts::FRAC_PI_2).abs() < 1e-6);
    }

    #[test]
    fn malformed_calibration_and_labels_are_refused_with_the_place() {
        let calib = parse_calib(CALIB).unwrap();
        let short = parse_labels("Car 0.00 0 -1.5 500 150 700", &calib).unwrap_err().to_string();
        assert!(short.contains("line 1") && short.contains("7 fields"), "{short}");
        let bad = "Pedestrian 0 0 0 0 0 1 1 1.7 0.6 0.6 1.0 1.7 x1 0";
        let err = parse_labels(&format!("{bad}\n{bad}"), &calib).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("\"x1\""), "{err}");
        let nan = parse_labels("Car 0 0 0 0 0 1 1 NaN 1.7 4.0 1.0 1.7 15.0 0", &calib).unwrap_err().to_string();
        assert!(nan.contains("NaN"), "{nan}");
        let missing = parse_calib("P2: 700 0 620 0 0 700 190 0 0 0 1 0\n").unwrap_err().to_string();
        assert!(missing.contains("R0_rect"), "{missing}");
        let garbled = parse_calib(&CALIB.replace("R0_rect: 1 0 0", "R0_rect: 1 zero 0")).unwrap_err().to_string();
        assert!(garbled.contains("R0_rect") && garbled.contains("\"zero\""), "{garbled}");
        let few = parse_calib(&CALIB.replace("P2: 700 0 620 0", "P2: 700")).unwrap_err().to_string();
        assert!(few.contains("P2") && few.contains("expected 12"), "{few}");
    }

    #[test]
    fn each_detection_gets_a_verdict_and_the_counts_follow() {
        let calib = parse_calib(CALIB).unwrap();
        let labels = parse_labels(
            [
                // The car of the test above, a pedestrian 3 m left at 10.3 m, a cyclist 25.3 m
                // ahead, a Misc object at (12.3, -6), and a DontCare region around u = 761.
                "Car 0 0 0 500 150 700 250 1.5 1.7 4.0 1.0 1.7 15.0 -1.5707963",
                "Pedestrian 0 0 0 300 150 400 250 1.7 0.6 0.6 -3.0 1.7 10.0 0",
                "Cyclist 0 0 0 600 150 640 250 1.7 0.6 1.8 -1.0 1.7 25.0 -1.5707963",
                "Misc 0 0 0 900 150 1000 250 1.0 1.0 1.0 6.0 1.7 12.0 0",
                "DontCare -1 -1 -10 740 0 780 400 -1 -1 -1 -1000 -1000 -1000 -10",
                // Another over the car's image (a car behind it, say).
                "DontCare -1 -1 -10 650 200 680 260 -1 -1 -1 -1000 -1000 -1000 -10",
            ]
            .join("\n")
            .as_str(),
            &calib,
        )
        .unwrap();
        let dets = [
            det(15.2, -1.1, 0, (4.0, 1.7)), // on the car
            det(10.4, 3.05, 1, (0.6, 0.6)), // on the pedestrian
            det(10.3, 3.0, 2, (0.6, 1.8)),  // a cyclist where the pedestrian is
            det(20.0, 5.0, 0, (4.0, 1.7)),  // nothing there
            det(-10.0, 0.0, 0, (4.0, 1.7)), // behind the camera
            det(30.0, -6.0, 0, (4.0, 1.7)), // in the DontCare region
            det(12.3, -6.0, 1, (0.8, 0.8)), // on the Misc object
            det(15.2, -1.1, 3, (4.0, 1.7)), // "other"
            det(15.6, -0.9, 0, (4.0, 1.7)), // a second box on the car: the worse match
        ];
        // A detection found inside a DontCare region counts as found (the car); an unmatched
        // one there is excused (the second box on it).
        let (counts, verdicts) = judge_frame(&dets, &labels, &calib);
        use Verdict::*;
        assert_eq!(
            verdicts,
            vec![Right, Right, Wrong, Wrong, OutOfView, DontCare, Unevaluated, NotARoadUser, DontCare]
        );
        assert_eq!(counts.tp, [1, 1, 0]);
        assert_eq!(counts.fp, [1, 0, 1]);
        assert_eq!(counts.fn_, [0, 0, 1], "the cyclist was not found");
    }

    #[test]
    fn average_precision_reads_the_curve_at_forty_recall_points() {
        // Four objects; found at scores 0.9, 0.8 and 0.5, a false one at 0.7, one never found.
        let scored = [(0.9, true), (0.8, true), (0.7, false), (0.5, true)];
        // Recall 1/4, 2/4 at precision 1; 3/4 at 3/4; nothing beyond.
        let want = (20.0 * 1.0 + 10.0 * 0.75) / 40.0;
        assert!((average_precision(&scored, 4).unwrap() - want).abs() < 1e-12);
        // The order matters, not the scores' sizes; a perfect ranking of everything is 1.
        assert_eq!(average_precision(&[(0.2, true), (0.1, true)], 2), Some(1.0));
        assert_eq!(average_precision(&[(0.9, false)], 1), Some(0.0));
        assert_eq!(average_precision(&scored, 0), None);
    }
}
