//! Continuous learning of the trajectory models: one learner per model ([`Task`]) — the people's
//! network `trajectory`, and the learned correction of the road model `trajectory_road`.
//!
//! A round fine-tunes the version now serving (the routing policy's pinned version, else the
//! newest) on the 8 + 12 step windows of perception's tracks the scene produced recently (for
//! the road model, those of tracks taken for vehicles and cyclists), writes the result into the
//! repository as a new version with its training report, loads it, and — unless configured
//! otherwise — offers it as a canary against the version it started from, judged on the live
//! online error overall and per class of road user. Rounds run on demand (`POST
//! /api/v1/models/{model}/train`) or on a schedule, one at a time per model, on one thread at
//! lowered priority with a one-thread compute pool, so inference keeps its cores.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::lifecycle::learn_task::Batch;
pub use crate::lifecycle::learn_task::{
    EpochProgress, Observed, ObservedRoad, Task, LEARNED_MODEL, LEARNED_ROAD_MODEL, OBSERVED_WINDOWS,
};

use crate::lifecycle::online::OnlineEval;
use crate::lifecycle::routing::{CanarySettings, PolicySpec, Router};
use crate::serving::engine::panic_text;
use crate::serving::registry::Registry;

/// Learner settings.
#[derive(Debug, Clone)]
pub struct LearnerConfig {
    /// Start a round every this many seconds (none: on request only).
    pub every_secs: Option<u64>,
    /// Offer each new version as a canary.
    pub auto_canary: bool,
    pub canary: CanarySettings,
    /// Epochs of a round (default).
    pub epochs: usize,
    /// Fewest observed windows a round needs.
    pub min_windows: usize,
    /// Most recent windows a round trains on.
    pub max_windows: usize,
    /// Learned versions kept (the newest), besides those a routing policy uses.
    pub keep_versions: usize,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self {
            every_secs: None,
            auto_canary: true,
            canary: CanarySettings::default(),
            epochs: 30,
            min_windows: 500,
            max_windows: 8000,
            keep_versions: 3,
        }
    }
}

/// What a round may override.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoundRequest {
    pub epochs: Option<usize>,
    pub canary: Option<bool>,
    pub seed: Option<u64>,
}

/// One round, as listed by the API.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub id: u64,
    pub started_unix: f64,
    pub status: String,
    pub base_version: u64,
    pub windows: usize,
    pub epochs: usize,
    pub new_version: Option<u64>,
    /// The best epoch's ADE on the validation windows, metres (for the road model: the mean
    /// displacement of the corrected roll-outs in their routes' frame).
    pub best_val_ade_m: Option<f64>,
    /// The base version's ADE on the same validation windows (the latest observed).
    pub base_val_ade_m: Option<f64>,
    /// The road model's rounds: per class of road user, the validation loss of the base and of
    /// the best epoch and the validation windows (a class made worse by more than 5 % keeps
    /// the base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_by_class: Option<Value>,
    pub seconds: Option<f64>,
    pub canary: bool,
    pub error: Option<String>,
    /// The epochs done so far, as they finish (the dashboard draws the loss curve from them).
    pub progress: Vec<EpochProgress>,
}

#[derive(Debug, Default)]
struct State {
    running: bool,
    rounds: VecDeque<Round>,
    next_id: u64,
}

/// The background trainer.
#[derive(Debug)]
pub struct Learner {
    config: LearnerConfig,
    registry: Arc<Registry>,
    router: Arc<Router>,
    online: Arc<OnlineEval>,
    task: Task,
    state: Mutex<State>,
    /// Test hook: the next round panics.
    #[cfg(test)]
    panic_next: std::sync::atomic::AtomicBool,
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Whether a version directory holds a version continuous learning wrote.
fn is_learned(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("train.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|j| j["source"]["kind"] == "continuous learning")
}

/// Lowers the calling thread's scheduling priority (on Linux, its nice value).
fn lower_priority() {
    if let Err(e) = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min) {
        tracing::debug!(error = ?e, "cannot lower the learner thread's priority");
    }
}

impl Learner {
    pub fn new(
        config: LearnerConfig,
        registry: Arc<Registry>,
        router: Arc<Router>,
        online: Arc<OnlineEval>,
        task: Task,
    ) -> Self {
        Self {
            config,
            registry,
            router,
            online,
            task,
            state: Mutex::new(State::default()),
            #[cfg(test)]
            panic_next: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Windows observed so far (bounded).
    pub fn observed_windows(&self) -> usize {
        self.task.observed()
    }

    /// The model this learner trains.
    pub fn model(&self) -> &'static str {
        self.task.model()
    }

    /// The learner's state for the API.
    pub fn describe(&self) -> Value {
        let s = self.lock();
        json!({
            "model": self.model(),
            "running": s.running,
            "observed_windows": self.observed_windows(),
            "min_windows": self.config.min_windows,
            "every_secs": self.config.every_secs,
            "auto_canary": self.config.auto_canary,
            "rounds": s.rounds,
        })
    }

    /// Starts a round on its own thread; refused while one runs or without enough data.
    pub fn start_round(self: &Arc<Self>, req: RoundRequest) -> Result<Round, String> {
        let model = self.model();
        let windows = self.task.batch(self.config.max_windows);
        if windows.len() < self.config.min_windows {
            return Err(format!(
                "{} windows observed for {model:?}; a round needs at least {} (the scene makes one per track every 0.4 s)",
                windows.len(),
                self.config.min_windows
            ));
        }
        let base = self
            .router
            .pinned(model)
            .or_else(|| self.registry.get(model, None).ok().map(|l| l.version))
            .ok_or_else(|| format!("model {model:?} is not loaded"))?;
        let round = {
            let mut s = self.lock();
            if s.running {
                return Err("a training round is already running".into());
            }
            s.running = true;
            s.next_id += 1;
            let round = Round {
                id: s.next_id,
                started_unix: now_unix(),
                status: "running".into(),
                base_version: base,
                windows: windows.len(),
                epochs: req.epochs.unwrap_or(self.config.epochs).clamp(1, 200),
                new_version: None,
                best_val_ade_m: None,
                base_val_ade_m: None,
                val_by_class: None,
                seconds: None,
                canary: req.canary.unwrap_or(self.config.auto_canary),
                error: None,
                progress: Vec::new(),
            };
            s.rounds.push_back(round.clone());
            while s.rounds.len() > 50 {
                s.rounds.pop_front();
            }
            round
        };
        let me = self.clone();
        let seed = req.seed.unwrap_or(round.id);
        let r = round.clone();
        let spawned = std::thread::Builder::new().name("waypoint-learner".into()).spawn(move || {
            lower_priority();
            // A panicking round fails that round only: the next one may start.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.run_round(&r, windows, seed)))
                .unwrap_or_else(|panic| Err(format!("the round panicked: {}", panic_text(panic.as_ref()))));
            me.finish(r.id, result);
        });
        if let Err(e) = spawned {
            self.finish(round.id, Err(format!("cannot start the learner thread: {e}")));
            return Err(e.to_string());
        }
        Ok(round)
    }

    /// Notes a finished epoch on its round (bounded by the round's epoch count).
    fn record_epoch(&self, id: u64, e: EpochProgress) {
        let mut s = self.lock();
        if let Some(r) = s.rounds.iter_mut().find(|r| r.id == id) {
            if r.progress.len() < r.epochs.max(1) {
                r.progress.push(e);
            }
        }
    }

    fn finish(&self, id: u64, result: Result<RoundOutcome, String>) {
        let mut s = self.lock();
        s.running = false;
        if let Some(r) = s.rounds.iter_mut().find(|r| r.id == id) {
            match result {
                Ok(o) => {
                    // No epoch beat the base on the latest windows: nothing is written or served.
                    r.status = if o.version.is_some() { "done" } else { "no_improvement" }.into();
                    r.new_version = o.version;
                    r.best_val_ade_m = Some(o.best_val_ade_m);
                    r.base_val_ade_m = o.base_val_ade_m;
                    r.val_by_class = o.val_by_class;
                    r.seconds = Some(o.seconds);
                }
                Err(e) => {
                    tracing::warn!(round = id, error = %e, "training round failed");
                    r.status = "failed".into();
                    r.error = Some(e);
                }
            }
        }
    }

    /// The retention policy: keeps the newest `keep_versions` learned versions and any version
    /// a routing policy uses; unloads and deletes the other learned versions and drops their
    /// metric series and online-error windows. Versions that were not learned (shipped in the
    /// repository) are never touched. Returns the versions retired.
    pub fn retire_old_versions(&self) -> Vec<u64> {
        let model = self.model();
        let repo = self.registry.repository();
        let Ok(on_disk) = repo.versions_on_disk(model) else { return Vec::new() };
        let learned: Vec<u64> =
            on_disk.into_iter().filter(|v| repo.version_dir(model, *v).is_ok_and(|d| is_learned(&d))).collect();
        let in_use = self.router.versions_in_use(model);
        let old = learned.len().saturating_sub(self.config.keep_versions.max(1));
        let retire: Vec<u64> = learned[..old].iter().copied().filter(|v| !in_use.contains(v)).collect();
        if retire.is_empty() {
            return retire;
        }
        for v in &retire {
            if let Ok(dir) = repo.version_dir(model, *v) {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(version = v, error = %e, "cannot delete a retired learned version");
                }
            }
        }
        if let Err(e) = self.registry.load(model) {
            tracing::warn!(error = %e, "reload after retiring learned versions failed");
        }
        for v in &retire {
            self.registry.drop_series(model, *v);
            self.online.clear(model, &v.to_string());
        }
        tracing::info!(model, retired = ?retire, keep = self.config.keep_versions, "old learned versions retired");
        retire
    }

    /// Trains, writes, loads and (optionally) offers the canary; writes nothing when no epoch
    /// beat the base on the latest windows.
    fn run_round(&self, round: &Round, windows: Batch, seed: u64) -> Result<RoundOutcome, String> {
        #[cfg(test)]
        assert!(!self.panic_next.swap(false, std::sync::atomic::Ordering::Relaxed), "injected panic");
        let started = Instant::now();
        let model = self.model();
        let repo = self.registry.repository();
        let base_dir = repo.version_dir(model, round.base_version).map_err(|e| e.to_string())?;
        let model_dir = repo.model_dir(model).map_err(|e| e.to_string())?;
        tracing::info!(
            model,
            round = round.id,
            base = round.base_version,
            windows = windows.len(),
            "training round started"
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "waypoint-learner-compute".into())
            .build()
            .map_err(|e| e.to_string())?;
        let trained = pool
            .install(|| {
                windows.train(&base_dir, round.epochs, seed, |e| {
                    tracing::debug!(round = round.id, epoch = e.epoch, val = e.val_ade_m, "epoch");
                    self.record_epoch(round.id, e);
                })
            })
            .map_err(|e| e.to_string())?;
        if !trained.improved() {
            tracing::info!(
                model,
                round = round.id,
                base_val = ?trained.base_val_m(),
                best_val = trained.best_val_m(),
                "training round: no epoch beat the base on the latest windows; no version written"
            );
            return Ok(RoundOutcome {
                version: None,
                best_val_ade_m: trained.best_val_m(),
                base_val_ade_m: trained.base_val_m(),
                val_by_class: trained.val_by_class(),
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        let source = json!({
            "kind": "continuous learning",
            "round": round.id,
            "base_version": round.base_version,
            "windows": round.windows,
            "from": "tracks observed in the live scene",
        });
        let description = format!(
            "fine-tuned from version {} on {} windows of the live scene (round {})",
            round.base_version, round.windows, round.id
        );
        // Keep serving the base while the new version loads: pin it unless a policy already
        // decides.
        if self.router.pinned(model).is_none() {
            let _ = self.router.set(
                model,
                PolicySpec::Fixed { version: round.base_version.to_string() },
                &self.registry,
                &self.online,
            );
        }
        let version = trained.write(&model_dir, source, &description)?;
        self.registry.load(model).map_err(|e| e.to_string())?;
        if round.canary {
            self.router
                .set(
                    model,
                    PolicySpec::Canary {
                        incumbent: Some(round.base_version.to_string()),
                        candidate: version.to_string(),
                        settings: self.config.canary.clone(),
                    },
                    &self.registry,
                    &self.online,
                )
                .map_err(|e| e.to_string())?;
        }
        self.retire_old_versions();
        tracing::info!(model, round = round.id, version, best_val = trained.best_val_m(), "training round done");
        Ok(RoundOutcome {
            version: Some(version),
            best_val_ade_m: trained.best_val_m(),
            base_val_ade_m: trained.base_val_m(),
            val_by_class: trained.val_by_class(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// What a round produced: a version, or none when the base stayed best.
struct RoundOutcome {
    version: Option<u64>,
    best_val_ade_m: f64,
    base_val_ade_m: Option<f64>,
    val_by_class: Option<Value>,
    seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::serving::repository::Repository;
    use std::time::Duration;
    use waypoint_models::trajectory::data::{SocialWindow, Window};
    use waypoint_models::trajectory::road::RoadWindow;
    use waypoint_models::trajectory::road_learned::CORRECTION_FILE;

    /// Copies the shipped `model`'s config and versions 1 and 2 into `repo`.
    fn copy_shipped(repo: &std::path::Path, model: &str) {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models").join(model);
        let dst = repo.join(model);
        for entry in ["config.toml", "1/", "2/"] {
            let from = shipped.join(entry);
            if from.is_dir() {
                std::fs::create_dir_all(dst.join(entry)).unwrap();
                for f in std::fs::read_dir(&from).unwrap() {
                    let f = f.unwrap().path();
                    std::fs::copy(&f, dst.join(entry).join(f.file_name().unwrap())).unwrap();
                }
            } else {
                std::fs::create_dir_all(&dst).unwrap();
                std::fs::copy(&from, dst.join(entry)).unwrap();
            }
        }
    }

    fn learner(repo: &std::path::Path) -> Arc<Learner> {
        copy_shipped(repo, LEARNED_MODEL);
        let registry = Arc::new(Registry::new(Repository::new(repo), Arc::new(Metrics::default())));
        registry.load(LEARNED_MODEL).unwrap();
        // Straight walks at a few speeds.
        let windows: VecDeque<SocialWindow> = (0..64)
            .map(|i| {
                let v = 0.5 + (i % 8) as f32 * 0.2;
                let window = Window {
                    obs: std::array::from_fn(|k| [k as f32 * v, i as f32]),
                    fut: std::array::from_fn(|k| [(k + 8) as f32 * v, i as f32]),
                };
                SocialWindow { window, neighbours: Vec::new() }
            })
            .collect();
        let config = LearnerConfig { epochs: 1, min_windows: 32, keep_versions: 1, ..Default::default() };
        Arc::new(Learner::new(
            config,
            registry,
            Arc::new(Router::default()),
            Arc::new(OnlineEval::default()),
            Task::People(Arc::new(Mutex::new(windows))),
        ))
    }

    fn wait_round(l: &Learner, id: u64) -> Round {
        for _ in 0..600 {
            let r = l.lock().rounds.iter().find(|r| r.id == id).cloned().unwrap();
            if r.status != "running" {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("round {id} did not finish");
    }

    #[test]
    fn a_panicking_round_fails_alone_and_old_learned_versions_are_retired() {
        let tmp = tempfile::tempdir().unwrap();
        let l = learner(tmp.path());
        l.panic_next.store(true, std::sync::atomic::Ordering::Relaxed);
        let first = l.start_round(RoundRequest::default()).unwrap();
        let r = wait_round(&l, first.id);
        assert_eq!(r.status, "failed");
        assert!(r.error.as_deref().unwrap_or("").contains("panicked"), "{r:?}");
        // The learner is not stuck: the next rounds run.
        let second = wait_round(&l, l.start_round(RoundRequest::default()).unwrap().id);
        assert_eq!((second.status.as_str(), second.new_version), ("done", Some(3)), "{second:?}");
        // Its epochs were noted as they finished (what the dashboard's loss curve draws).
        assert!(!second.progress.is_empty() && second.progress.len() <= second.epochs, "{second:?}");
        assert!(second.progress.iter().all(|e| e.train_loss.is_finite() && e.val_ade_m.is_finite()), "{second:?}");
        let third = wait_round(&l, l.start_round(RoundRequest::default()).unwrap().id);
        assert_eq!((third.status.as_str(), third.new_version), ("done", Some(4)), "{third:?}");
        // Keep one learned version: 3 was retired (the canary runs 2 against 4), the shipped 1
        // and 2 stay.
        assert_eq!(l.registry.versions(LEARNED_MODEL).unwrap().1, vec![1, 2, 4]);
        assert!(!tmp.path().join("trajectory/3").exists());
        assert_eq!(l.router.versions_in_use(LEARNED_MODEL), vec![2, 4]);
    }

    /// The road model's learner fine-tunes the served version's correction on road windows,
    /// writes it as a learned version and offers it as a canary against its base.
    #[test]
    fn a_road_round_fine_tunes_the_correction_and_offers_a_canary() {
        let tmp = tempfile::tempdir().unwrap();
        copy_shipped(tmp.path(), LEARNED_ROAD_MODEL);
        let registry = Arc::new(Registry::new(Repository::new(tmp.path()), Arc::new(Metrics::default())));
        registry.load(LEARNED_ROAD_MODEL).unwrap();
        let windows: VecDeque<RoadWindow> = waypoint_models::trajectory::road::sim_windows(6, 90.0).into();
        assert!(windows.len() > 200, "{}", windows.len());
        let config = LearnerConfig { epochs: 4, min_windows: 200, ..Default::default() };
        let l = Arc::new(Learner::new(
            config,
            registry,
            Arc::new(Router::default()),
            Arc::new(OnlineEval::default()),
            Task::Road(Arc::new(Mutex::new(windows))),
        ));
        assert_eq!(l.describe()["model"], LEARNED_ROAD_MODEL);
        let r = wait_round(&l, l.start_round(RoundRequest::default()).unwrap().id);
        assert_eq!(r.base_version, 2, "the newest serves");
        let (base, best) = (r.base_val_ade_m.unwrap(), r.best_val_ade_m.unwrap());
        assert!(!r.progress.is_empty() && r.progress.len() <= 4, "{r:?}");
        // Each class's validation loss, base and best, is reported with the round (for a class
        // with validation windows).
        let classes = r.val_by_class.clone().unwrap();
        let mut windows = 0;
        for c in ["vehicle", "cyclist"] {
            let n = classes[c]["windows"].as_u64().unwrap();
            assert_eq!(
                n > 0,
                classes[c]["base_m"].as_f64().is_some() && classes[c]["best_m"].as_f64().is_some(),
                "{classes}"
            );
            windows += n;
        }
        assert!(windows > 0, "{classes}");
        // On these windows (seeded, deterministic) the round beats its base on every class.
        assert_eq!(r.status, "done", "{r:?}");
        assert!(best < base, "{r:?}");
        assert_eq!(r.new_version, Some(3));
        let dir = tmp.path().join("trajectory_road/3");
        assert!(dir.join(CORRECTION_FILE).is_file() && is_learned(&dir), "{r:?}");
        assert_eq!(l.registry.versions(LEARNED_ROAD_MODEL).unwrap().1, vec![1, 2, 3]);
        assert_eq!(l.router.versions_in_use(LEARNED_ROAD_MODEL), vec![2, 3]);
        eprintln!("road round: {} base {base:.3} m, best {best:.3} m", r.status);
    }
}
