//! The Numenta Anomaly Benchmark (v1.1) scoring, implemented from its definition: windows,
//! probationary period, the scaled sigmoid, per-profile weights, the per-profile threshold
//! chosen over the whole corpus, and the normalisation against the null and perfect detectors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Detector, DetectorConfig};
use crate::ModelError;

/// One series of the corpus.
#[derive(Debug, Clone)]
pub struct Series {
    /// `category/file.csv`, the key used in the window files.
    pub key: String,
    pub timestamps: Vec<String>,
    pub values: Vec<f64>,
    /// Anomaly windows as inclusive row ranges.
    pub windows: Vec<(usize, usize)>,
}

/// A cost profile.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

/// The three profiles of NAB v1.1.
pub const PROFILES: [Profile; 3] = [
    Profile { name: "standard", tp: 1.0, fp: 0.11, fn_: 1.0 },
    Profile { name: "reward_low_FP_rate", tp: 1.0, fp: 0.22, fn_: 1.0 },
    Profile { name: "reward_low_FN_rate", tp: 1.0, fp: 0.11, fn_: 2.0 },
];

/// Rows at the start of a series that are not scored: 15 %, at most 750.
pub fn probation(len: usize) -> usize {
    ((len as f64 * 0.15).floor() as usize).min(750)
}

/// NAB's scaled sigmoid: 2 / (1 + exp(5 y)) − 1, and −1 far (y > 3) past a window.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

fn norm_ts(s: &str) -> String {
    s.trim().chars().take(19).collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |e| ModelError::Load(format!("{}: {e}", path.display()))
}

/// Reads every `data/**/*.csv` under `dir` with the windows of `combined_windows.json`.
pub fn read_corpus(dir: &Path) -> Result<Vec<Series>, ModelError> {
    let wpath = dir.join("combined_windows.json");
    let windows: BTreeMap<String, Vec<Vec<String>>> =
        serde_json::from_str(&std::fs::read_to_string(&wpath).map_err(io(&wpath))?)
            .map_err(|e| ModelError::Load(format!("{}: {e}", wpath.display())))?;
    let data = dir.join("data");
    let mut files: Vec<PathBuf> = Vec::new();
    for cat in std::fs::read_dir(&data).map_err(io(&data))? {
        let cat = cat.map_err(io(&data))?.path();
        if cat.is_dir() {
            for f in std::fs::read_dir(&cat).map_err(io(&cat))? {
                let f = f.map_err(io(&cat))?.path();
                if f.extension().is_some_and(|e| e == "csv") {
                    files.push(f);
                }
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let key = format!(
            "{}/{}",
            f.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
            f.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default()
        );
        let text = std::fs::read_to_string(&f).map_err(io(&f))?;
        let mut timestamps = Vec::new();
        let mut values = Vec::new();
        for (i, line) in text.lines().enumerate().skip(1) {
            let mut it = line.split(',');
            let (Some(ts), Some(v)) = (it.next(), it.next()) else { continue };
            let v: f64 =
                v.trim().parse().map_err(|_| ModelError::Load(format!("{key} line {}: bad value {v:?}", i + 1)))?;
            timestamps.push(norm_ts(ts));
            values.push(v);
        }
        let mut wins = Vec::new();
        for w in windows.get(&key).cloned().unwrap_or_default() {
            if w.len() != 2 {
                continue;
            }
            let (a, b) = (norm_ts(&w[0]), norm_ts(&w[1]));
            let start = timestamps.iter().position(|t| *t >= a);
            let end = timestamps.iter().rposition(|t| *t <= b);
            if let (Some(s), Some(e)) = (start, end) {
                if s <= e {
                    wins.push((s, e));
                }
            }
        }
        out.push(Series { key, timestamps, values, windows: wins });
    }
    Ok(out)
}

/// Raw score of one series' binary detections under a profile, and the counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct FileScore {
    pub score: f64,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

/// What a detection at row `i` is worth under a profile: inside window `k`, the reward if it is
/// that window's earliest detection; outside every window, its false-positive weight (negative,
/// smaller right after a window).
enum RowValue {
    InWindow(usize, f64),
    FalsePositive(f64),
}

fn row_value(i: usize, windows: &[(usize, usize)], p: &Profile) -> RowValue {
    if let Some(k) = windows.iter().position(|(a, b)| i >= *a && i <= *b) {
        let (a, b) = windows[k];
        let y = -((b - i + 1) as f64) / (b - a + 1) as f64;
        return RowValue::InWindow(k, p.tp * scaled_sigmoid(y) / scaled_sigmoid(-1.0));
    }
    // The closest window that ended before this row.
    let unweighted = match windows.iter().filter(|(_, b)| *b < i).max_by_key(|(_, b)| *b) {
        None => -1.0,
        Some(&(a, b)) => scaled_sigmoid((i - b) as f64 / ((b - a) as f64).max(1.0)),
    };
    RowValue::FalsePositive(p.fp * unweighted)
}

/// Scores detections (`detected[i]` for row i) of a series with windows, following NAB v1.1.
pub fn score_file(len: usize, windows: &[(usize, usize)], detected: &[bool], p: &Profile) -> FileScore {
    let start = probation(len);
    let mut s = FileScore::default();
    let mut window_hit = vec![false; windows.len()];
    for (i, _) in detected.iter().enumerate().take(len).filter(|(_, d)| **d).filter(|(i, _)| *i >= start) {
        match row_value(i, windows, p) {
            RowValue::InWindow(k, reward) => {
                if !window_hit[k] {
                    window_hit[k] = true;
                    s.score += reward;
                    s.tp += 1;
                }
            }
            RowValue::FalsePositive(weight) => {
                s.score += weight;
                s.fp += 1;
            }
        }
    }
    s.fn_ = window_hit.iter().filter(|h| !**h).count();
    s.score -= p.fn_ * s.fn_ as f64;
    s
}

/// A profile's outcome over the corpus at its best threshold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProfileResult {
    pub profile: Profile,
    pub threshold: f64,
    pub normalized: f64,
    pub raw: f64,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

/// Raw corpus score of scores (one vector per series) at a threshold, and the counts.
pub fn corpus_score(series: &[Series], scores: &[Vec<f64>], threshold: f64, p: &Profile) -> (f64, FileScore) {
    let mut total = FileScore::default();
    for (s, sc) in series.iter().zip(scores) {
        let detected: Vec<bool> = sc.iter().map(|v| *v >= threshold).collect();
        let f = score_file(s.values.len(), &s.windows, &detected, p);
        total.score += f.score;
        total.tp += f.tp;
        total.fp += f.fp;
        total.fn_ += f.fn_;
    }
    (total.score, total)
}

/// One scored row after the probationary period: what detecting it would add.
struct Row {
    score: f64,
    /// Global window index and the reward if it is the window's earliest detection.
    window: Option<(usize, f64)>,
    row: usize,
    /// The (negative) weight of a false positive here.
    fp_weight: f64,
}

/// Chooses each profile's threshold over the whole corpus and normalises:
/// 100 · (S − S_null) / (S_perfect − S_null). Every distinct score is tried as the threshold
/// (as NAB's own sweep does): rows are taken in falling score order and the corpus score is
/// updated as each joins the detections — a window's reward is that of its earliest detected
/// row, a row outside every window adds its false-positive weight.
pub fn evaluate(series: &[Series], scores: &[Vec<f64>]) -> Vec<ProfileResult> {
    let n_windows: usize = series.iter().map(|s| s.windows.len()).sum();
    PROFILES
        .iter()
        .map(|p| {
            let mut rows = Vec::new();
            let mut first_window = 0;
            for (s, sc) in series.iter().zip(scores) {
                let len = s.values.len().min(sc.len());
                for (i, &score) in sc.iter().enumerate().take(len).skip(probation(s.values.len())) {
                    // A NaN is never at or above a threshold.
                    if score.is_nan() {
                        continue;
                    }
                    let row = match row_value(i, &s.windows, p) {
                        RowValue::InWindow(k, reward) => {
                            Row { score, window: Some((first_window + k, reward)), row: i, fp_weight: 0.0 }
                        }
                        RowValue::FalsePositive(weight) => Row { score, window: None, row: i, fp_weight: weight },
                    };
                    rows.push(row);
                }
                first_window += s.windows.len();
            }
            rows.sort_by(|a, b| b.score.total_cmp(&a.score));
            // Sweep: earliest detected row and its reward per window.
            let mut earliest: Vec<Option<(usize, f64)>> = vec![None; n_windows];
            let (mut tp_sum, mut tp, mut fp_sum, mut fp) = (0.0, 0usize, 0.0, 0usize);
            let null = -p.fn_ * n_windows as f64;
            let perfect = p.tp * n_windows as f64;
            // The null detector (a threshold above every score).
            let mut best = (null, f64::INFINITY, 0usize, 0usize);
            let mut k = 0;
            while k < rows.len() {
                let t = rows[k].score;
                while k < rows.len() && rows[k].score == t {
                    let r = &rows[k];
                    match r.window {
                        Some((w, reward)) => match earliest[w] {
                            None => {
                                earliest[w] = Some((r.row, reward));
                                tp_sum += reward;
                                tp += 1;
                            }
                            Some((row, old)) if r.row < row => {
                                earliest[w] = Some((r.row, reward));
                                tp_sum += reward - old;
                            }
                            Some(_) => {}
                        },
                        None => {
                            fp_sum += r.fp_weight;
                            fp += 1;
                        }
                    }
                    k += 1;
                }
                let total = tp_sum + fp_sum - p.fn_ * (n_windows - tp) as f64;
                if total > best.0 {
                    best = (total, t, tp, fp);
                }
            }
            let threshold = if best.1.is_finite() { best.1 } else { 1.0 + 1e-9 };
            ProfileResult {
                profile: *p,
                threshold,
                normalized: if perfect > null { 100.0 * (best.0 - null) / (perfect - null) } else { 0.0 },
                raw: best.0,
                tp: best.2,
                fp: best.3,
                fn_: n_windows - best.2,
            }
        })
        .collect()
}

/// The published NAB scoreboard on the full corpus: (detector, [standard, low FP, low FN]).
pub const SCOREBOARD: [(&str, [f64; 3]); 9] = [
    ("ARTime", [74.9, 65.1, 80.4]),
    ("Numenta HTM", [70.5, 62.6, 75.2]),
    ("CAD OSE", [69.9, 67.0, 73.2]),
    ("KNN CAD", [58.0, 43.4, 64.8]),
    ("Random Cut Forest", [51.7, 38.4, 59.7]),
    ("Twitter ADVec", [47.1, 33.6, 53.5]),
    ("Windowed Gaussian", [39.6, 20.9, 47.4]),
    ("random", [11.0, 1.2, 19.5]),
    ("null", [0.0, 0.0, 0.0]),
];

/// Runs a fresh [`Detector`] online over every series: one score per row.
pub fn detect_all(series: &[Series], config: &DetectorConfig) -> Vec<Vec<f64>> {
    series
        .iter()
        .map(|s| {
            let mut d = Detector::new(*config);
            s.values.iter().map(|v| d.update(*v)).collect()
        })
        .collect()
}

/// Writes the scores in NAB's results layout: `OUT/waypoint/<category>/waypoint_<file>.csv`
/// with `timestamp,value,anomaly_score,label`.
pub fn write_results(out: &Path, series: &[Series], scores: &[Vec<f64>]) -> Result<(), ModelError> {
    for (s, sc) in series.iter().zip(scores) {
        let (cat, file) = s.key.split_once('/').unwrap_or(("", &s.key));
        let dir = out.join("waypoint").join(cat);
        std::fs::create_dir_all(&dir).map_err(|e| ModelError::data_at(&dir, e))?;
        let mut text = String::from("timestamp,value,anomaly_score,label\n");
        for (i, ((t, v), score)) in s.timestamps.iter().zip(&s.values).zip(sc).enumerate() {
            let label = u8::from(s.windows.iter().any(|(a, b)| i >= *a && i <= *b));
            text.push_str(&format!("{t},{v},{score:.6},{label}\n"));
        }
        let path = dir.join(format!("waypoint_{file}"));
        std::fs::write(&path, text).map_err(|e| ModelError::data_at(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STD: Profile = PROFILES[0];

    fn det(len: usize, at: &[usize]) -> Vec<bool> {
        (0..len).map(|i| at.contains(&i)).collect()
    }

    #[test]
    fn hand_worked_cases() {
        // 1000 rows: probation is the first 150. One window over rows 500..=599.
        let w = [(500, 599)];
        // A detection at the window's left edge scores exactly A_TP.
        let s = score_file(1000, &w, &det(1000, &[500]), &STD);
        assert!((s.score - 1.0).abs() < 1e-12 && s.tp == 1 && s.fn_ == 0);
        // Only the first detection in a window counts.
        let s2 = score_file(1000, &w, &det(1000, &[500, 510, 520]), &STD);
        assert!((s2.score - 1.0).abs() < 1e-12);
        // At the right edge: y = -1/100, sigma = 2/(1+e^-0.05) - 1 = 0.024995, / 0.986614.
        let s = score_file(1000, &w, &det(1000, &[599]), &STD);
        let expected = (2.0 / (1.0 + (-0.05f64).exp()) - 1.0) / (2.0 / (1.0 + (-5.0f64).exp()) - 1.0);
        assert!((s.score - expected).abs() < 1e-12, "{} vs {expected}", s.score);
        // A missed window costs A_FN.
        let s = score_file(1000, &w, &det(1000, &[]), &STD);
        assert!((s.score + 1.0).abs() < 1e-12 && s.fn_ == 1);
        // A false positive before the first window costs the full A_FP (and the window is missed).
        let s = score_file(1000, &w, &det(1000, &[300]), &STD);
        assert!((s.score - (-0.11 - 1.0)).abs() < 1e-12 && s.fp == 1);
        // Far past a window (y > 3) the FP costs the full A_FP; just after it, less.
        let far = score_file(1000, &w, &det(1000, &[500, 950]), &STD);
        assert!((far.score - (1.0 - 0.11)).abs() < 1e-12);
        let near = score_file(1000, &w, &det(1000, &[500, 601]), &STD);
        assert!(near.score > far.score && near.score < 1.0);
        // Detections in the probationary period are ignored.
        let s = score_file(1000, &w, &det(1000, &[10, 500]), &STD);
        assert!((s.score - 1.0).abs() < 1e-12 && s.fp == 0);
    }

    #[test]
    fn the_null_detector_scores_zero_and_a_perfect_one_a_hundred() {
        let series = vec![Series {
            key: "a/b.csv".into(),
            timestamps: vec![String::new(); 1000],
            values: vec![0.0; 1000],
            windows: vec![(400, 450), (700, 780)],
        }];
        let null = vec![vec![0.0; 1000]];
        for r in evaluate(&series, &null) {
            assert!(r.normalized.abs() < 1e-9, "{r:?}");
        }
        let mut perfect = vec![0.0; 1000];
        perfect[400] = 1.0;
        perfect[700] = 1.0;
        for r in evaluate(&series, &[perfect]) {
            assert!((r.normalized - 100.0).abs() < 1e-9, "{r:?}");
        }
    }

    #[test]
    fn the_threshold_sweep_agrees_with_scoring_at_every_threshold() {
        // Two series with windows, scores from a seeded generator with ties; the sweep's best
        // must equal the best of brute-force scoring at every distinct score.
        let mut rng = waypoint_sim::rng::SimRng::new(7);
        let series: Vec<Series> = [(900, vec![(300, 360), (600, 700)]), (500, vec![(200, 260)])]
            .into_iter()
            .map(|(n, windows)| Series {
                key: "a/b.csv".into(),
                timestamps: vec![String::new(); n],
                values: vec![0.0; n],
                windows,
            })
            .collect();
        let scores: Vec<Vec<f64>> = series
            .iter()
            .map(|s| (0..s.values.len()).map(|_| (rng.uniform() * 40.0).floor() / 40.0).collect())
            .collect();
        let mut thresholds: Vec<f64> = scores.iter().flatten().copied().collect();
        thresholds.push(2.0);
        for r in evaluate(&series, &scores) {
            let best =
                thresholds.iter().map(|t| corpus_score(&series, &scores, *t, &r.profile).0).fold(f64::MIN, f64::max);
            assert!((r.raw - best).abs() < 1e-9, "{}: sweep {} brute force {best}", r.profile.name, r.raw);
            let (raw, counts) = corpus_score(&series, &scores, r.threshold, &r.profile);
            assert!((raw - r.raw).abs() < 1e-9 && counts.tp == r.tp && counts.fp == r.fp, "{r:?} {counts:?}");
        }
    }
}
