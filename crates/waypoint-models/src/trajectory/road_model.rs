//! The road-user model served: `history` FP32 `[N, 8, 2]`; optionally `neighbours` FP32
//! `[N, M, 4]` (the other road users, `[x_prev, y_prev, x_last, y_last]`, NaN rows for none: the
//! ones ahead in the lane are driven along with it), `agent_class` FP32 `[N, 1]` (0 vehicle, 1 pedestrian,
//! 2 cyclist; left out: vehicle) and `scene_time` FP32 `[N, 1]` (the scene time of the last
//! history step, for the signal; left out: no signal). Outputs `trajectory` `[N, 12, 2]` (the
//! future of least expected error), `modes` `[N, 3, 12, 2]` (most likely first; padded with
//! probability 0) and `mode_probabilities` `[N, 3]`. A pedestrian row, or one on no lane, is
//! answered with constant velocity.

use super::model::neighbours_input;
use super::road::{point_prediction, predict_corrected, Correction, RoadClass, RoadFuture, RoadParams, ROAD_MODES};
use super::road_learned::CORRECTION_FILE;
use super::{ConstantVelocity, PRED_STEPS};
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::ModelError;

#[derive(Debug, Default, Clone)]
pub struct RoadModel {
    params: RoadParams,
    /// The learned correction of the roll-outs, when the version has one.
    correction: Option<std::sync::Arc<Correction>>,
}

impl RoadModel {
    /// The model of a version directory: with the learned correction when the directory holds
    /// [`CORRECTION_FILE`], lane following alone otherwise.
    pub fn load(version_dir: &std::path::Path) -> Result<Self, ModelError> {
        let path = version_dir.join(CORRECTION_FILE);
        let correction = if path.exists() { Some(std::sync::Arc::new(Correction::load(&path)?)) } else { None };
        Ok(Self { params: RoadParams::default(), correction })
    }
}

/// An optional `[N, 1]` FP32 input, checked.
fn column<'a>(inputs: &'a [Tensor], name: &str, rows: usize) -> Result<Option<&'a [f32]>, ModelError> {
    let Some(t) = inputs.iter().find(|t| t.name == name) else { return Ok(None) };
    if t.shape != [rows, 1] {
        return Err(ModelError::BadInput(format!("{name} must be [{rows}, 1], got {:?}", t.shape)));
    }
    Ok(Some(t.as_f32()?))
}

impl Model for RoadModel {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let history = super::history_rows(inputs, true)?;
        let n = history.len();
        let neighbours = neighbours_input(inputs, n)?;
        let classes = column(inputs, "agent_class", n)?;
        let times = column(inputs, "scene_time", n)?;
        let per = PRED_STEPS * 2;
        let mut trajectory = Vec::with_capacity(n * per);
        let mut modes = Vec::with_capacity(n * ROAD_MODES * per);
        let mut probs = Vec::with_capacity(n * ROAD_MODES);
        for (r, obs) in history.iter().enumerate() {
            // 0 vehicle, 1 pedestrian (none: constant velocity), 2 cyclist; left out: vehicle.
            let c = classes.map(|c| c[r]).unwrap_or(0.0);
            let class = if c == 0.0 {
                Some(RoadClass::Vehicle)
            } else if c == 2.0 {
                Some(RoadClass::Cyclist)
            } else if c == 1.0 {
                None
            } else {
                return Err(ModelError::BadInput(format!(
                    "agent_class row {r} is {c}; 0 vehicle, 1 pedestrian or 2 cyclist"
                )));
            };
            let time = times.map(|t| f64::from(t[r])).filter(|t| t.is_finite());
            let others: Vec<[f32; 4]> = match neighbours {
                Some((v, m)) => {
                    v[r * m * 4..(r + 1) * m * 4].chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect()
                }
                None => Vec::new(),
            };
            let futures = match class {
                Some(c) => predict_corrected(obs, c, &others, time, &self.params, self.correction.as_deref()),
                None => vec![RoadFuture { probability: 1.0, positions: ConstantVelocity::predict(obs) }],
            };
            let pick = point_prediction(&futures);
            trajectory.extend(futures[pick].positions.iter().flatten());
            for k in 0..ROAD_MODES {
                let f = futures.get(k).unwrap_or(&futures[0]);
                modes.extend(f.positions.iter().flatten());
                probs.push(if k < futures.len() { f.probability } else { 0.0 });
            }
        }
        Ok(vec![
            Tensor::new("trajectory", vec![n, PRED_STEPS, 2], TensorData::F32(trajectory))?,
            Tensor::new("modes", vec![n, ROAD_MODES, PRED_STEPS, 2], TensorData::F32(modes))?,
            Tensor::new("mode_probabilities", vec![n, ROAD_MODES], TensorData::F32(probs))?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::STEP_SECS;

    fn tensor(name: &str, shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::new(name, shape, TensorData::F32(v)).unwrap()
    }

    #[test]
    fn answers_every_row_with_three_futures_and_refuses_bad_input() {
        // A car in the west arm's inbound lane at 10 m/s, and a pedestrian (answered as CV).
        let car: Vec<f32> = (0..8).flat_map(|k| [-60.0 + k as f32 * 10.0 * STEP_SECS as f32, -2.0]).collect();
        let walker: Vec<f32> = (0..8).flat_map(|k| [20.0, 30.0 + k as f32 * 0.5]).collect();
        let history = tensor("history", vec![2, 8, 2], [car, walker].concat());
        let class = tensor("agent_class", vec![2, 1], vec![0.0, 1.0]);
        let time = tensor("scene_time", vec![2, 1], vec![12.0, 12.0]);
        let out = RoadModel::default().infer(&[history.clone(), class, time]).unwrap();
        assert_eq!(out[0].shape, vec![2, 12, 2]);
        assert_eq!(out[1].shape, vec![2, 3, 12, 2]);
        let p = out[2].as_f32().unwrap();
        assert!((p[0] + p[1] + p[2] - 1.0).abs() < 1e-5 && p[1] > 0.0, "{p:?}");
        assert_eq!(&p[3..], &[1.0, 0.0, 0.0]);
        // The walker's answer is constant velocity.
        assert_eq!(out[0].as_f32().unwrap()[24 + 23], 30.0 + 7.0 * 0.5 + 12.0 * 0.5);
        // History alone: every row a vehicle, no signal.
        assert_eq!(RoadModel::default().infer(std::slice::from_ref(&history)).unwrap()[0].shape, vec![2, 12, 2]);
        let bad_class = tensor("agent_class", vec![2, 1], vec![0.0, 7.0]);
        assert!(RoadModel::default().infer(&[history.clone(), bad_class]).is_err());
        let bad_time = tensor("scene_time", vec![1, 1], vec![0.0]);
        assert!(RoadModel::default().infer(&[history, bad_time]).is_err());
        let nan = tensor("history", vec![1, 8, 2], vec![f32::NAN; 16]);
        assert!(RoadModel::default().infer(&[nan]).is_err());
    }

    #[test]
    fn a_version_with_a_correction_serves_it_and_a_bad_one_is_refused() {
        use crate::trajectory::road_learned::{train_correction, CorrectionConfig, N_FEATURES, N_OUT};
        let dir = std::env::temp_dir().join(format!("waypoint-road-correction-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Without the file: lane following alone.
        let car: Vec<f32> = (0..8).flat_map(|k| [-60.0 + k as f32 * 10.0 * STEP_SECS as f32, -2.0]).collect();
        let history = tensor("history", vec![1, 8, 2], car);
        let plain = RoadModel::load(&dir).unwrap().infer(std::slice::from_ref(&history)).unwrap();
        assert_eq!(
            plain[0].as_f32().unwrap(),
            RoadModel::default().infer(std::slice::from_ref(&history)).unwrap()[0].as_f32().unwrap()
        );
        // A correction that learned "3 m further along at every step".
        let rows: Vec<([f32; N_FEATURES], [f32; N_OUT])> = (0..256)
            .map(|k| {
                let mut x = [0f32; N_FEATURES];
                x[5] = (k % 16) as f32 / 16.0;
                let mut y = [0f32; N_OUT];
                y[..PRED_STEPS].fill(3.0);
                (x, y)
            })
            .collect();
        let cfg = CorrectionConfig { epochs: 30, batch: 64, learning_rate: 1e-2, ..CorrectionConfig::default() };
        let (varmap, _) = train_correction(&rows, &rows, &cfg, |_| {}).unwrap();
        varmap.save(dir.join(CORRECTION_FILE)).unwrap();
        let corrected = RoadModel::load(&dir).unwrap().infer(std::slice::from_ref(&history)).unwrap();
        let (a, b) = (plain[0].as_f32().unwrap(), corrected[0].as_f32().unwrap());
        // The car drives east in its lane: the corrected future lies further east, the same lane.
        let last = 2 * (PRED_STEPS - 1);
        assert!(b[last] > a[last] + 1.0, "{} against {}", b[last], a[last]);
        assert!((b[last + 1] - a[last + 1]).abs() < 1.0, "{} against {}", b[last + 1], a[last + 1]);
        // A file that is not a correction is refused when the version loads.
        std::fs::write(dir.join(CORRECTION_FILE), b"not a weight file").unwrap();
        assert!(matches!(RoadModel::load(&dir), Err(ModelError::Load(_))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
