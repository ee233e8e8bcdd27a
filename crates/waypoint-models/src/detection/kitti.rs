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

fn nums(line: &str) -> Vec<f64> {
    line.split_whitespace().filter_map(|t| t.parse().ok()).collect()
}

/// Parses a calibration file.
pub fn parse_calib(text: &str) -> Result<Calib, ModelError> {
    let get = |key: &str, n: usize| -> Result<Vec<f64>, ModelError> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .ok_or_else(|| ModelError::Load(format!("calibration lacks {key}")))?;
        let v = nums(&line[key.len() + 1..]);
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

    /// Whether a lidar point projects into the front camera's image.
    pub fn in_fov(&self, p: Vector3<f64>) -> Option<(f64, f64)> {
        let r = self.velo_to_rect(p);
        let uvw = self.p2 * Vector4::new(r.x, r.y, r.z, 1.0);
        if uvw.z <= 0.1 {
            return None;
        }
        let (u, v) = (uvw.x / uvw.z, uvw.y / uvw.z);
        (0.0..IMAGE_WIDTH_PX).contains(&u).then_some((u, v))
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
        let v: Vec<f64> = f[1..15].iter().map(|t| t.parse::<f64>().unwrap_or(f64::NAN)).collect();
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

/// Matches detections (sensor = lidar frame) to labels: same class, BEV IoU at least 0.5 for
/// vehicles and 0.3 for pedestrians and cyclists, best pairs first. Detections outside the
/// camera's view, inside a DontCare region, or matching an unevaluated label (Misc) are
/// ignored.
pub fn evaluate_frame(dets: &[Detection], labels: &[Label], calib: &Calib) -> Counts {
    let mut c = Counts::default();
    let dontcare: Vec<[f64; 4]> = labels.iter().filter(|l| l.kind == "DontCare").map(|l| l.bbox_2d).collect();
    let evaluated: Vec<(usize, FittedBox)> =
        labels.iter().filter_map(|l| Some((eval_class(&l.kind)?, l.bbox?))).collect();
    let ignored: Vec<FittedBox> = labels
        .iter()
        .filter(|l| l.kind != "DontCare" && eval_class(&l.kind).is_none())
        .filter_map(|l| l.bbox)
        .collect();
    let dets: Vec<&Detection> = dets
        .iter()
        .filter(|d| d.class < 3)
        .filter(|d| {
            let Some((u, v)) = calib.in_fov(Vector3::new(d.bbox.x_m, d.bbox.y_m, d.bbox.z_m + d.bbox.height_m / 2.0))
            else {
                return false;
            };
            !dontcare.iter().any(|b| u >= b[0] && u <= b[2] && v >= b[1] && v <= b[3])
        })
        .filter(|d| !ignored.iter().any(|b| bev_iou(&d.bbox, b) > 0.1))
        .collect();
    for class in 0..3 {
        let thr = if class == 0 { 0.5 } else { 0.3 };
        let ds: Vec<&&Detection> = dets.iter().filter(|d| d.class == class).collect();
        let ls: Vec<&FittedBox> = evaluated.iter().filter(|(k, _)| *k == class).map(|(_, b)| b).collect();
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (i, d) in ds.iter().enumerate() {
            for (j, l) in ls.iter().enumerate() {
                let iou = bev_iou(&d.bbox, l);
                if iou >= thr {
                    pairs.push((iou, i, j));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut du, mut lu) = (vec![false; ds.len()], vec![false; ls.len()]);
        for (_, i, j) in pairs {
            if !du[i] && !lu[j] {
                du[i] = true;
                lu[j] = true;
                c.tp[class] += 1;
            }
        }
        c.fp[class] += du.iter().filter(|u| !**u).count();
        c.fn_[class] += lu.iter().filter(|u| !**u).count();
    }
    c
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
