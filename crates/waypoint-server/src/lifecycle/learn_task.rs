//! What continuous learning trains: the people's network (`trajectory`) on the tracks' 8 + 12
//! step windows, or the road model's learned correction (`trajectory_road`) on the windows of
//! tracks taken for vehicles and cyclists — the windows each keeps, how a round trains on them
//! and how its result is written as a version.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{json, Value};
use waypoint_models::trajectory::data::SocialWindow;
use waypoint_models::trajectory::finetune::{fine_tune, fine_tune_config, write_version, write_version_with};
use waypoint_models::trajectory::road::RoadWindow;
use waypoint_models::trajectory::road_learned::{
    fine_tune_correction, CorrectionReport, TrainedCorrection, CORRECTION_FILE,
};
use waypoint_models::trajectory::tcn::{TrainReport, Trainer};
use waypoint_models::ModelError;

/// Windows of observed motion kept for the continuous learner.
pub const OBSERVED_WINDOWS: usize = 20_000;

/// Windows the scene has produced, newest last, shared with the learner.
pub type Observed = Arc<Mutex<VecDeque<SocialWindow>>>;
/// The road model's windows the scene has produced, newest last.
pub type ObservedRoad = Arc<Mutex<VecDeque<RoadWindow>>>;

/// The people's model continuous learning trains.
pub const LEARNED_MODEL: &str = "trajectory";
/// The road model continuous learning trains (its learned correction).
pub const LEARNED_ROAD_MODEL: &str = "trajectory_road";

/// What a learner trains, and the windows it trains on.
#[derive(Debug, Clone)]
pub enum Task {
    /// The people's network ([`LEARNED_MODEL`]).
    People(Observed),
    /// The road model's learned correction ([`LEARNED_ROAD_MODEL`]).
    Road(ObservedRoad),
}

/// The latest windows of a task, taken for a round.
pub(super) enum Batch {
    People(Vec<SocialWindow>),
    Road(Vec<RoadWindow>),
}

impl Batch {
    pub(super) fn len(&self) -> usize {
        match self {
            Batch::People(w) => w.len(),
            Batch::Road(w) => w.len(),
        }
    }

    /// Fine-tunes the version in `base_dir` on these windows; `on_epoch` hears each epoch.
    pub(super) fn train(
        self,
        base_dir: &Path,
        epochs: usize,
        seed: u64,
        mut on_epoch: impl FnMut(EpochProgress),
    ) -> Result<Trained, ModelError> {
        match self {
            Batch::People(w) => {
                let config = fine_tune_config(epochs, seed);
                fine_tune(base_dir, &[w], &config, |e| {
                    on_epoch(EpochProgress { epoch: e.epoch, train_loss: e.train_loss, val_ade_m: e.val_ade_m })
                })
                .map(|(t, r)| Trained::People(Box::new(t), r))
            }
            Batch::Road(w) => fine_tune_correction(base_dir, &w, epochs, seed, |e| {
                on_epoch(EpochProgress { epoch: e.epoch, train_loss: e.train_m, val_ade_m: e.val_m })
            })
            .map(|(vm, r)| Trained::Road(vm, r)),
        }
    }
}

/// The latest `most` of a store.
fn latest<T: Clone>(store: &Mutex<VecDeque<T>>, most: usize) -> Vec<T> {
    let o = store.lock().unwrap_or_else(|p| p.into_inner());
    o.iter().skip(o.len().saturating_sub(most)).cloned().collect()
}

impl Task {
    /// The model it trains.
    pub fn model(&self) -> &'static str {
        match self {
            Task::People(_) => LEARNED_MODEL,
            Task::Road(_) => LEARNED_ROAD_MODEL,
        }
    }

    pub(super) fn observed(&self) -> usize {
        match self {
            Task::People(o) => o.lock().unwrap_or_else(|p| p.into_inner()).len(),
            Task::Road(o) => o.lock().unwrap_or_else(|p| p.into_inner()).len(),
        }
    }

    pub(super) fn batch(&self, most: usize) -> Batch {
        match self {
            Task::People(o) => Batch::People(latest(o, most)),
            Task::Road(o) => Batch::Road(latest(o, most)),
        }
    }
}

/// What a round trained.
pub(super) enum Trained {
    People(Box<Trainer>, TrainReport),
    Road(TrainedCorrection, CorrectionReport),
}

impl Trained {
    /// Whether some epoch beat the base on the latest windows.
    pub(super) fn improved(&self) -> bool {
        match self {
            Trained::People(_, r) => r.best_epoch != 0,
            Trained::Road(_, r) => r.best_epoch != 0,
        }
    }

    pub(super) fn best_val_m(&self) -> f64 {
        match self {
            Trained::People(_, r) => r.best_val_ade_m,
            Trained::Road(_, r) => r.best_val_m,
        }
    }

    pub(super) fn base_val_m(&self) -> Option<f64> {
        match self {
            Trained::People(_, r) => r.start_val_ade_m,
            Trained::Road(_, r) => Some(r.val_uncorrected_m),
        }
    }

    pub(super) fn val_by_class(&self) -> Option<Value> {
        match self {
            Trained::People(..) => None,
            Trained::Road(_, r) => {
                let class = |i: usize| {
                    json!({
                        "base_m": r.val_class_start_m.get(i).copied().flatten(),
                        "best_m": r.val_class_best_m.get(i).copied().flatten(),
                        "windows": r.val_class_rows.get(i),
                    })
                };
                Some(json!({"vehicle": class(0), "cyclist": class(1)}))
            }
        }
    }

    pub(super) fn write(&self, model_dir: &Path, source: Value, description: &str) -> Result<u64, String> {
        let written = match self {
            Trained::People(t, r) => write_version(model_dir, t, r, source, description),
            Trained::Road(vm, r) => {
                write_version_with(model_dir, |dir| vm.save(&dir.join(CORRECTION_FILE)), r, source, description)
            }
        };
        written.map(|(v, _)| v).map_err(|e| e.to_string())
    }
}

/// One finished epoch of a round.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct EpochProgress {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_ade_m: f64,
}
