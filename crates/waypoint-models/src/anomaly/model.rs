//! The `anomaly` model as served: whole series in, a streaming score per sample out.
//!
//! Input `series` FP64 `[S, N]`: S series of N samples each, in time order. Each series is
//! scored from a fresh [`Detector`] (default settings, the ones evaluated on NAB), so sample `i`'s
//! score uses samples `0..=i` only. Outputs `score` FP64 `[S, N]` in [0, 1] (`-log10` of the
//! tail probability, over 10) and `alarm` BOOL `[S, N]` (score at or above the optional
//! `threshold` input, FP64 `[1]`, default [`DEFAULT_THRESHOLD`]). The threshold is also the
//! detector's alarm level, so the refractory period after an alarm follows it.

use super::{Detector, DetectorConfig};
use crate::model::Model;
use crate::tensor::{Tensor, TensorData};
use crate::ModelError;

/// Default alarm threshold of the served detector: the default alarm level, chosen on NAB.
pub const DEFAULT_THRESHOLD: f64 = 0.11;

/// Serves the streaming detector.
#[derive(Debug, Default)]
pub struct AnomalyModel {
    pub config: DetectorConfig,
}

impl Model for AnomalyModel {
    fn infer(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let s = Tensor::named(inputs, "series")?;
        if s.shape.len() != 2 {
            return Err(ModelError::BadInput(format!("series must be [S, N], got {:?}", s.shape)));
        }
        let TensorData::F64(values) = &s.data else {
            return Err(ModelError::BadInput("series must be FP64".into()));
        };
        let threshold = match inputs.iter().find(|t| t.name == "threshold").map(|t| &t.data) {
            Some(TensorData::F64(v)) if v.len() == 1 && v[0] > 0.0 && v[0] <= 1.0 => v[0],
            Some(_) => return Err(ModelError::BadInput("threshold must be one FP64 in (0, 1]".into())),
            None => DEFAULT_THRESHOLD,
        };
        let n = s.shape[1];
        let mut scores = Vec::with_capacity(values.len());
        if n > 0 {
            for row in values.chunks_exact(n) {
                let mut d = Detector::new(DetectorConfig { alarm_level: threshold, ..self.config });
                scores.extend(row.iter().map(|x| d.update(*x)));
            }
        }
        let alarms = scores.iter().map(|x| *x >= threshold).collect();
        Ok(vec![
            Tensor::new("score", s.shape.clone(), TensorData::F64(scores))?,
            Tensor::new("alarm", s.shape.clone(), TensorData::Bool(alarms))?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(rows: &[Vec<f64>]) -> Tensor {
        let n = rows[0].len();
        Tensor::new("series", vec![rows.len(), n], TensorData::F64(rows.concat())).unwrap()
    }

    #[test]
    fn scores_each_series_online_and_alarms_on_a_spike() {
        let mut rng = waypoint_sim::rng::SimRng::new(4);
        let mut a: Vec<f64> = (0..2000).map(|_| 10.0 + rng.gauss(0.5)).collect();
        a[1900] = 40.0;
        let b: Vec<f64> = (0..2000).map(|_| rng.gauss(1.0)).collect();
        let mut m = AnomalyModel::default();
        let out = m.infer(&[series(&[a.clone(), b])]).unwrap();
        let TensorData::F64(score) = &out[0].data else { panic!() };
        let TensorData::Bool(alarm) = &out[1].data else { panic!() };
        assert_eq!(out[0].shape, vec![2, 2000]);
        assert!(score[1900] > 0.5 && alarm[1900], "spike scored {}", score[1900]);
        let clean_max = score[200..1900].iter().copied().fold(0.0, f64::max);
        assert!(clean_max < score[1900], "steady noise scored {clean_max}");
        // Online: the scores before the spike do not depend on it.
        let mut clean = a.clone();
        clean[1900] = 10.0;
        let again = m.infer(&[series(&[clean])]).unwrap();
        let TensorData::F64(s2) = &again[0].data else { panic!() };
        assert_eq!(&s2[..1900], &score[..1900]);
        // At a threshold of one in a thousand (0.3) steady noise raises no alarm and the spike
        // still does; a threshold above every score raises none; a bad one is refused.
        let mut at = |t: f64| {
            let t = Tensor::new("threshold", vec![1], TensorData::F64(vec![t])).unwrap();
            let out = m.infer(&[series(&[a.clone()]), t]).unwrap();
            let TensorData::Bool(alarm) = &out[1].data else { panic!() };
            alarm.clone()
        };
        let strict = at(0.3);
        assert_eq!(strict[200..1900].iter().filter(|x| **x).count(), 0);
        assert!(strict[1900]);
        assert!(at(1.0).iter().filter(|x| **x).count() <= 1);
        let bad = Tensor::new("threshold", vec![1], TensorData::F64(vec![2.0])).unwrap();
        assert!(m.infer(&[series(&[a]), bad]).is_err());
    }
}
