//! The `fusion` model as served: a whole measurement sequence of one object in, the filtered
//! state after each measurement out.
//!
//! Input `measurements` FP64 `[N, 5]`, one row per measurement in time order:
//! `[sensor, t_secs, a, b, c]` with sensor 0 = lidar (`a` = px_m, `b` = py_m, `c` unused) and
//! 1 = radar (`a` = rho_m, `b` = phi_rad, `c` = rho_dot_mps).
//! Outputs `state` FP64 `[N, 6]` = `[px_m, py_m, vx_mps, vy_mps, yaw_rad, yaw_rate_rps]` and
//! `nis` FP64 `[N]` (NaN where the row initialised the filter or was skipped).

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
        let mut ukf = Ukf::new(self.config);
        let n = m.shape[0];
        let mut state = Vec::with_capacity(n * 6);
        let mut nis = Vec::with_capacity(n);
        for r in rows.chunks_exact(5) {
            let meas = match r[0] as i64 {
                0 => Measurement::Lidar { t_secs: r[1], px_m: r[2], py_m: r[3] },
                1 => Measurement::Radar { t_secs: r[1], rho_m: r[2], phi_rad: r[3], rho_dot_mps: r[4] },
                other => {
                    return Err(ModelError::BadInput(format!("sensor must be 0 (lidar) or 1 (radar), got {other}")))
                }
            };
            let e = ukf.process(&meas);
            state.extend_from_slice(&[e.px_m, e.py_m, e.vx_mps, e.vy_mps, e.yaw_rad, e.yaw_rate_rps]);
            nis.push(e.nis.unwrap_or(f64::NAN));
        }
        Ok(vec![
            Tensor::new("state", vec![n, 6], TensorData::F64(state))?,
            Tensor::new("nis", vec![n], TensorData::F64(nis))?,
        ])
    }
}
