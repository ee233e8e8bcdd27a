//! Streaming sensor-health anomaly detection ([`detector`]) and its evaluation on the Numenta
//! Anomaly Benchmark ([`nab`], and leave-one-category-out in [`nab_folds`]).

pub mod detector;
pub mod nab;
pub mod nab_folds;

pub use detector::{Detector, DetectorConfig};
pub mod health;
pub mod health_model;
pub mod model;
pub mod sim_eval;
