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
//! Outputs `state` FP64 `[N, 6]` = `[px_m, py_m, vx_mps, vy_mps, yaw_rad, yaw_rate_rps]`,
//! `nis` FP64 `[N]` (NaN where the row initialised the filter or was skipped) and
//! `pos_var_m2` FP64 `[N]` (trace of the position covariance).

use std::collections::BTreeMap;

use super::ukf::UkfConfig;
use super::{Measurement, Ukf};
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::ModelError;

/// Serves the UKF.
#[derive(Debug, Default)]
pub struct FusionModel {
    pub config: UkfConfig,
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
        let mut filters: BTreeMap<i32, Ukf> = BTreeMap::new();
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
            let ukf = filters.entry(objects.map_or(0, |o| o[i])).or_insert_with(|| Ukf::new(self.config));
            let e = match origins {
                Some(o) if o[2 * i] != 0.0 || o[2 * i + 1] != 0.0 => ukf.process_from((o[2 * i], o[2 * i + 1]), &meas),
                _ => ukf.process(&meas),
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
