//! The `fusion` model as served: measurement sequences in, the filtered state after each
//! measurement out.
//!
//! Input `measurements` FP64 `[N, 5]`, one row per measurement in time order (per object):
//! `[sensor, t_secs, a, b, c]` with sensor 0 = lidar (`a` = px_m, `b` = py_m, `c` unused) and
//! 1 = radar (`a` = rho_m, `b` = phi_rad, `c` = rho_dot_mps).
//! Optional `object` INT32 `[N]`: the object each row belongs to; each object has a filter of
//! its own, so one request can carry every tracked object (default: one object).
//! Optional `sensor_xy` FP64 `[N, 2]`: where the sensor stood when it measured the row (a
//! vehicle's radar moves with it); radar rows are then relative to that point, with `phi_rad`
//! the world-frame bearing and `rho_dot_mps` free of the sensor's own motion (default: the
//! origin).
//! Optional `lidar_std_m` FP64 `[N]`: the one-sigma position noise per axis of each lidar row
//! (a detector's box centre is noisier than the lidar return the versions declare, 0.15 m);
//! NaN, or a radar row, keeps the version's own. Positive and at most
//! [`MAX_LIDAR_STD_M`] where given.
//! A version directory with an `imm.json` (an [`ImmConfig`]) serves the IMM filter; one
//! without serves the UKF.
//! Outputs `state` FP64 `[N, 6]` = `[px_m, py_m, vx_mps, vy_mps, yaw_rad, yaw_rate_rps]`,
//! `nis` FP64 `[N]` (NaN where the row initialised the filter or was skipped) and
//! `pos_var_m2` FP64 `[N]` (trace of the position covariance).

use std::collections::BTreeMap;
use std::path::Path;

use super::imm::{ImmConfig, ModeConfig};
use super::ukf::UkfConfig;
use super::{Filter, Imm, Measurement, Ukf};
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::ModelError;

/// The IMM settings file of a version directory.
pub const IMM_FILE: &str = "imm.json";
/// The most modes an IMM settings file may name.
const MAX_MODES: usize = 8;
/// The largest per-row lidar noise a request may declare, metres (a detection further off
/// than this is no position at all).
pub const MAX_LIDAR_STD_M: f64 = 100.0;

/// The filter a version serves.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterConfig {
    Ukf(UkfConfig),
    Imm(ImmConfig),
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig::Ukf(UkfConfig::default())
    }
}

/// Serves the UKF, or the IMM where the version has an `imm.json`.
#[derive(Debug, Default)]
pub struct FusionModel {
    pub config: FilterConfig,
}

impl FusionModel {
    /// The filter of a version directory: [`IMM_FILE`] when it is there (a bad one is a load
    /// error), the UKF otherwise.
    pub fn load(version_dir: &Path) -> Result<Self, ModelError> {
        let path = version_dir.join(IMM_FILE);
        if !path.is_file() {
            return Ok(Self::default());
        }
        let text =
            std::fs::read_to_string(&path).map_err(|e| ModelError::Load(format!("reading {}: {e}", path.display())))?;
        let config: ImmConfig =
            serde_json::from_str(&text).map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
        check_imm(&config).map_err(|e| ModelError::Load(format!("{}: {e}", path.display())))?;
        Ok(Self { config: FilterConfig::Imm(config) })
    }

    fn filter(&self) -> Box<dyn Filter + Send> {
        match &self.config {
            FilterConfig::Ukf(c) => Box::new(Ukf::new(*c)),
            FilterConfig::Imm(c) => Box::new(Imm::new(c.clone())),
        }
    }
}

/// Whether IMM settings make a filter: 1 to [`MAX_MODES`] modes with positive, finite noise,
/// a switching probability in [0, 0.5] and initial odds that are finite and not negative.
fn check_imm(c: &ImmConfig) -> Result<(), String> {
    if c.modes.is_empty() || c.modes.len() > MAX_MODES {
        return Err(format!("an IMM needs 1 to {MAX_MODES} modes, got {}", c.modes.len()));
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    for (i, m) in c.modes.iter().enumerate() {
        let (process, noise) = match m {
            ModeConfig::Ctrv(u) => (
                positive(u.std_accel_mps2) && positive(u.std_yaw_accel_rps2) && u.init_var.iter().all(|v| positive(*v)),
                u.noise,
            ),
            ModeConfig::ConstantVelocity(e) => (positive(e.accel_var) && positive(e.init_vel_var), e.noise),
        };
        let sensors =
            [noise.lidar_px_m, noise.lidar_py_m, noise.radar_rho_m, noise.radar_phi_rad, noise.radar_rho_dot_mps];
        if !process || !sensors.into_iter().all(positive) {
            return Err(format!("mode {i}: every noise must be positive and finite"));
        }
    }
    if !(0.0..=0.5).contains(&c.switch_prob) {
        return Err(format!("switch_prob must be in [0, 0.5], got {}", c.switch_prob));
    }
    if c.initial.iter().any(|p| !p.is_finite() || *p < 0.0) {
        return Err("initial mode probabilities must be finite and not negative".into());
    }
    Ok(())
}

impl Model for FusionModel {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let m = Tensor::named(inputs, "measurements")?;
        if m.shape.len() != 2 || m.shape[1] != 5 {
            return Err(ModelError::BadInput(format!("measurements must be [N, 5], got {:?}", m.shape)));
        }
        let TensorData::F64(rows) = &m.data else {
            return Err(ModelError::BadInput("measurements must be FP64".into()));
        };
        let n = m.shape[0];
        let objects: Option<&[i32]> = match Tensor::named(inputs, "object") {
            Ok(t) => match &t.data {
                TensorData::I32(v) if v.len() == n => Some(v),
                _ => return Err(ModelError::BadInput(format!("object must be INT32 [{n}]"))),
            },
            Err(_) => None,
        };
        let origins: Option<&[f64]> = match Tensor::named(inputs, "sensor_xy") {
            Ok(t) => match &t.data {
                TensorData::F64(v) if v.len() == 2 * n => Some(v),
                _ => return Err(ModelError::BadInput(format!("sensor_xy must be FP64 [{n}, 2]"))),
            },
            Err(_) => None,
        };
        let lidar_std: Option<&[f64]> = match Tensor::named(inputs, "lidar_std_m") {
            Ok(t) => match &t.data {
                TensorData::F64(v) if v.len() == n => {
                    if let Some(bad) = v.iter().find(|s| !(s.is_nan() || (**s > 0.0 && **s <= MAX_LIDAR_STD_M))) {
                        return Err(ModelError::BadInput(format!(
                            "lidar_std_m must be positive and at most {MAX_LIDAR_STD_M} m (or NaN for the version's own), got {bad}"
                        )));
                    }
                    Some(v)
                }
                _ => return Err(ModelError::BadInput(format!("lidar_std_m must be FP64 [{n}]"))),
            },
            Err(_) => None,
        };
        let mut filters: BTreeMap<i32, Box<dyn Filter + Send>> = BTreeMap::new();
        let mut state = Vec::with_capacity(n * 6);
        let mut nis = Vec::with_capacity(n);
        let mut pos_var = Vec::with_capacity(n);
        for (i, r) in rows.chunks_exact(5).enumerate() {
            let meas = match r[0] as i64 {
                0 => Measurement::Lidar { t_secs: r[1], px_m: r[2], py_m: r[3] },
                1 => Measurement::Radar { t_secs: r[1], rho_m: r[2], phi_rad: r[3], rho_dot_mps: r[4] },
                other => {
                    return Err(ModelError::BadInput(format!("sensor must be 0 (lidar) or 1 (radar), got {other}")))
                }
            };
            let filter = filters.entry(objects.map_or(0, |o| o[i])).or_insert_with(|| self.filter());
            if let Some(v) = lidar_std {
                filter.set_lidar_std(Some(v[i]).filter(|s| !s.is_nan()));
            }
            let e = match origins {
                Some(o) if o[2 * i] != 0.0 || o[2 * i + 1] != 0.0 => {
                    filter.process_from((o[2 * i], o[2 * i + 1]), &meas)
                }
                _ => filter.process(&meas),
            };
            state.extend_from_slice(&[e.px_m, e.py_m, e.vx_mps, e.vy_mps, e.yaw_rad, e.yaw_rate_rps]);
            nis.push(e.nis.unwrap_or(f64::NAN));
            pos_var.push(e.pos_var_m2);
        }
        Ok(vec![
            Tensor::new("state", vec![n, 6], TensorData::F64(state))?,
            Tensor::new("nis", vec![n], TensorData::F64(nis))?,
            Tensor::new("pos_var_m2", vec![n], TensorData::F64(pos_var))?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_tensor(rows: &[[f64; 5]]) -> Tensor {
        Tensor::new("measurements", vec![rows.len(), 5], TensorData::F64(rows.concat())).unwrap()
    }

    /// The shipped version 4 is the default IMM, version 3 the same with its constant-velocity
    /// modes starting from 100 (m/s)² (a file written before that setting existed) and version
    /// 2 version 3 less its steady constant-velocity mode; a version without the file serves the
    /// UKF; a bad file is a load error, not a silent fallback.
    #[test]
    fn a_version_with_imm_settings_serves_the_imm_and_a_bad_file_is_refused() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fusion");
        let v4 = FusionModel::load(&shipped.join("4")).unwrap();
        assert_eq!(v4.config, FilterConfig::Imm(ImmConfig::default()));
        let mut broad_cv_prior = ImmConfig::default();
        for m in &mut broad_cv_prior.modes {
            if let ModeConfig::ConstantVelocity(e) = m {
                assert_eq!(e.init_vel_var, 25.0);
                e.init_vel_var = 100.0;
            }
        }
        let v3 = FusionModel::load(&shipped.join("3")).unwrap();
        assert_eq!(v3.config, FilterConfig::Imm(broad_cv_prior.clone()));
        let mut without_steady_cv = broad_cv_prior;
        without_steady_cv.modes.remove(2);
        assert_eq!(FusionModel::load(&shipped.join("2")).unwrap().config, FilterConfig::Imm(without_steady_cv));
        assert_eq!(FusionModel::load(&shipped.join("1")).unwrap().config, FilterConfig::default());

        let rows: Vec<[f64; 5]> = (0..40)
            .map(|k| {
                let t = k as f64 * 0.05;
                if k % 2 == 0 {
                    [0.0, t, 10.0 + 6.0 * t, 4.0 + 0.5 * t * t, 0.0]
                } else {
                    let (x, y) = (10.0 + 6.0 * t, 4.0 + 0.5 * t * t);
                    let r = x.hypot(y);
                    [1.0, t, r, y.atan2(x), (x * 6.0 + y * t) / r]
                }
            })
            .collect();
        let mut served = v4;
        let out = served.infer(&[rows_tensor(&rows)]).unwrap();
        let mut imm = Imm::new(ImmConfig::default());
        let last = rows.iter().map(|r| match r[0] as i64 {
            0 => imm.process(&Measurement::Lidar { t_secs: r[1], px_m: r[2], py_m: r[3] }),
            _ => imm.process(&Measurement::Radar { t_secs: r[1], rho_m: r[2], phi_rad: r[3], rho_dot_mps: r[4] }),
        });
        let last = last.last().unwrap();
        let TensorData::F64(state) = &out[0].data else { panic!() };
        assert_eq!(&state[39 * 6..39 * 6 + 4], &[last.px_m, last.py_m, last.vx_mps, last.vy_mps]);
        let ukf_out = FusionModel::default().infer(&[rows_tensor(&rows)]).unwrap();
        assert_ne!(out[0], ukf_out[0]);

        let dir = std::env::temp_dir().join(format!("waypoint-fusion-imm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = ImmConfig { switch_prob: 0.9, ..ImmConfig::default() };
        for text in [
            "{not json".to_string(),
            serde_json::to_string(&bad).unwrap(),
            serde_json::to_string(&ImmConfig { modes: vec![], ..ImmConfig::default() }).unwrap(),
            serde_json::to_string(&ImmConfig::default()).unwrap().replace("16.0", "-1.0"),
            serde_json::to_string(&ImmConfig::default())
                .unwrap()
                .replace("\"init_vel_var\":25.0", "\"init_vel_var\":0.0"),
        ] {
            std::fs::write(dir.join(IMM_FILE), &text).unwrap();
            let err = FusionModel::load(&dir).unwrap_err();
            assert!(matches!(err, ModelError::Load(_)), "{text}: {err:?}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A lidar row declared noisier pulls the estimate less and scores a smaller NIS; NaN keeps
    /// the version's own noise; bad values are refused.
    #[test]
    fn a_lidar_row_may_declare_its_own_noise() {
        let mut rows: Vec<[f64; 5]> = (0..30).map(|k| [0.0, k as f64 * 0.1, 10.0 + k as f64 * 0.8, 5.0, 0.0]).collect();
        // The last detection 1 m off to the side.
        rows[29][3] += 1.0;
        let run = |std: Option<Vec<f64>>| {
            let mut inputs = vec![rows_tensor(&rows)];
            if let Some(s) = std {
                inputs.push(Tensor::new("lidar_std_m", vec![s.len()], TensorData::F64(s)).unwrap());
            }
            FusionModel::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/fusion/4"))
                .unwrap()
                .infer(&inputs)
        };
        let plain = run(None).unwrap();
        let same = run(Some(vec![f64::NAN; 30])).unwrap();
        let bits = |t: &Tensor| match &t.data {
            TensorData::F64(v) => v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>(),
            _ => panic!(),
        };
        assert!(same.iter().zip(&plain).all(|(x, y)| bits(x) == bits(y)));
        let mut noisy = vec![f64::NAN; 30];
        noisy[29] = 1.0;
        let noisy = run(Some(noisy)).unwrap();
        let (TensorData::F64(a), TensorData::F64(b)) = (&plain[0].data, &noisy[0].data) else { panic!() };
        let (TensorData::F64(nis_a), TensorData::F64(nis_b)) = (&plain[1].data, &noisy[1].data) else { panic!() };
        // Rows before the last are untouched; the last moves toward the outlier less.
        assert_eq!(&a[..29 * 6], &b[..29 * 6]);
        let (pull_plain, pull_noisy) = (a[29 * 6 + 1] - 5.0, b[29 * 6 + 1] - 5.0);
        assert!(pull_plain > 0.5 && pull_noisy < 0.2 * pull_plain, "pulled {pull_plain} against {pull_noisy}");
        assert!(nis_b[29] < 0.1 * nis_a[29], "NIS {} against {}", nis_b[29], nis_a[29]);
        for bad in [0.0, -1.0, f64::INFINITY, 1e3] {
            let mut std = vec![0.5; 30];
            std[3] = bad;
            assert!(matches!(run(Some(std)), Err(ModelError::BadInput(_))), "{bad}");
        }
        assert!(matches!(run(Some(vec![0.5; 29])), Err(ModelError::BadInput(_))));
    }

    /// Two objects moving apart, interleaved in one request, against each alone.
    #[test]
    fn objects_in_one_request_are_filtered_apart() {
        let rows = |vx: f64| -> Vec<[f64; 5]> {
            (0..20).map(|k| [0.0, k as f64 * 0.1, 10.0 + vx * k as f64 * 0.1, 5.0, 0.0]).collect()
        };
        let (a, b) = (rows(2.0), rows(-3.0));
        let alone = |r: &[[f64; 5]]| {
            let t = Tensor::new("measurements", vec![r.len(), 5], TensorData::F64(r.concat())).unwrap();
            FusionModel::default().infer(&[t]).unwrap()[0].clone()
        };
        let mut both = Vec::new();
        let mut ids = Vec::new();
        for k in 0..20 {
            both.extend_from_slice(&a[k]);
            both.extend_from_slice(&b[k]);
            ids.extend([7, 9]);
        }
        let out = FusionModel::default()
            .infer(&[
                Tensor::new("object", vec![40], TensorData::I32(ids)).unwrap(),
                Tensor::new("measurements", vec![40, 5], TensorData::F64(both)).unwrap(),
            ])
            .unwrap();
        let TensorData::F64(s) = &out[0].data else { panic!() };
        let (TensorData::F64(sa), TensorData::F64(sb)) = (&alone(&a).data, &alone(&b).data) else { panic!() };
        // The last rows: object 7's state is object a's alone, object 9's is b's.
        assert_eq!(&s[38 * 6..39 * 6], &sa[19 * 6..20 * 6]);
        assert_eq!(&s[39 * 6..40 * 6], &sb[19 * 6..20 * 6]);
        assert!((sa[19 * 6 + 2] - 2.0).abs() < 0.3 && (sb[19 * 6 + 2] + 3.0).abs() < 0.3);
    }
}
