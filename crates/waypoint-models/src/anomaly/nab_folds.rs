//! Leave-one-category-out on NAB: for each category, the detector's settings and each profile's
//! threshold are chosen on the other categories alone, then applied unchanged to it. The
//! held-out detections of all folds are scored together as one corpus (NAB's normalisation over
//! every window), the figure comparable with the in-sample score (whose settings and thresholds
//! saw every category).

use serde::Serialize;

use super::nab::{corpus_score, detect_all, evaluate, Series, PROFILES};
use super::DetectorConfig;

/// The settings scanned in each fold: the alarm level, the refractory period, the short-term
/// average, the shape memory and the level evidence's discount (the constants that were chosen
/// by looking at the data), around the defaults.
pub fn settings_grid() -> Vec<DetectorConfig> {
    let base = DetectorConfig::default();
    let mut grid = Vec::new();
    for alarm_level in [0.10, 0.11, 0.12, 0.13, 0.14] {
        for refractory in [100, 200, 300] {
            for short_window in [5, 10, 20] {
                for shape_memory in [128, 256] {
                    for level_discount in [0.0, 1.0, 2.0] {
                        grid.push(DetectorConfig {
                            alarm_level,
                            refractory,
                            short_window,
                            shape_memory,
                            level_discount,
                            ..base
                        });
                    }
                }
            }
        }
    }
    grid
}

/// The category of a series (`category/file.csv`).
pub fn category(s: &Series) -> &str {
    s.key.split_once('/').map_or("", |(c, _)| c)
}

/// One held-out category.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    pub category: String,
    pub series: usize,
    pub windows: usize,
    /// The settings chosen on the other categories, and their standard score there.
    pub chosen: DetectorConfig,
    pub chosen_train_standard: f64,
    /// Per profile: the threshold chosen on the other categories, and the held-out raw score,
    /// true and false positives, misses.
    pub thresholds: [f64; 3],
    pub raw: [f64; 3],
    pub tp: [usize; 3],
    pub fp: [usize; 3],
    pub fn_: [usize; 3],
}

/// The whole protocol's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct FoldsReport {
    pub folds: Vec<Fold>,
    /// The held-out detections of every fold scored as one corpus, per profile (standard, low
    /// FP, low FN): 100 · (S − S_null) / (S_perfect − S_null).
    pub out_of_fold: [f64; 3],
    /// The default settings with thresholds chosen on the whole corpus (every category seen).
    pub in_sample: [f64; 3],
    pub settings_scanned: usize,
}

/// Runs leave-one-category-out over `corpus` with the settings of `grid`; `progress` hears each
/// category before its scan.
pub fn leave_one_category_out(
    corpus: &[Series],
    grid: &[DetectorConfig],
    mut progress: impl FnMut(&str),
) -> FoldsReport {
    let mut categories: Vec<&str> = corpus.iter().map(category).collect();
    categories.sort_unstable();
    categories.dedup();
    let mut folds = Vec::new();
    let mut pooled_raw = [0.0; 3];
    for held in &categories {
        progress(held);
        let (test, train): (Vec<Series>, Vec<Series>) = corpus.iter().cloned().partition(|s| category(s) == *held);
        // The settings with the best standard score on the training categories, and each
        // profile's threshold there.
        let mut best: Option<(f64, DetectorConfig, [f64; 3])> = None;
        for config in grid {
            let results = evaluate(&train, &detect_all(&train, config));
            let standard = results[0].normalized;
            if best.as_ref().is_none_or(|b| standard > b.0) {
                best = Some((standard, *config, std::array::from_fn(|p| results[p].threshold)));
            }
        }
        let Some((train_standard, chosen, thresholds)) = best else { continue };
        let scores = detect_all(&test, &chosen);
        let mut fold = Fold {
            category: held.to_string(),
            series: test.len(),
            windows: test.iter().map(|s| s.windows.len()).sum(),
            chosen,
            chosen_train_standard: train_standard,
            thresholds,
            raw: [0.0; 3],
            tp: [0; 3],
            fp: [0; 3],
            fn_: [0; 3],
        };
        for (p, profile) in PROFILES.iter().enumerate() {
            let (raw, counts) = corpus_score(&test, &scores, thresholds[p], profile);
            fold.raw[p] = raw;
            fold.tp[p] = counts.tp;
            fold.fp[p] = counts.fp;
            fold.fn_[p] = counts.fn_;
            pooled_raw[p] += raw;
        }
        folds.push(fold);
    }
    let n_windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let out_of_fold = std::array::from_fn(|p| {
        let (null, perfect) = (-PROFILES[p].fn_ * n_windows as f64, PROFILES[p].tp * n_windows as f64);
        if perfect > null {
            100.0 * (pooled_raw[p] - null) / (perfect - null)
        } else {
            0.0
        }
    });
    let in_sample_results = evaluate(corpus, &detect_all(corpus, &DetectorConfig::default()));
    FoldsReport {
        folds,
        out_of_fold,
        in_sample: std::array::from_fn(|p| in_sample_results[p].normalized),
        settings_scanned: grid.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series of `n` rows of noise-free level 1.0 with a jump to 9.0 at `at` (a window around
    /// it), in a category.
    fn series(cat: &str, name: &str, n: usize, at: usize) -> Series {
        let values: Vec<f64> =
            (0..n).map(|i| if (at..at + 5).contains(&i) { 9.0 } else { 1.0 + 0.01 * ((i * 7) % 5) as f64 }).collect();
        Series {
            key: format!("{cat}/{name}.csv"),
            timestamps: (0..n).map(|i| format!("t{i:06}")).collect(),
            values,
            windows: vec![(at - 20, at + 20)],
        }
    }

    #[test]
    fn each_category_is_scored_with_settings_and_thresholds_chosen_without_it() {
        let corpus = vec![
            series("a", "1", 1500, 900),
            series("a", "2", 1500, 1100),
            series("b", "1", 1500, 1000),
            series("c", "1", 1500, 1200),
        ];
        let grid = vec![DetectorConfig::default(), DetectorConfig { alarm_level: 0.5, ..DetectorConfig::default() }];
        let mut seen = Vec::new();
        let r = leave_one_category_out(&corpus, &grid, |c| seen.push(c.to_string()));
        assert_eq!(seen, ["a", "b", "c"]);
        assert_eq!(r.folds.iter().map(|f| (f.series, f.windows)).collect::<Vec<_>>(), [(2, 2), (1, 1), (1, 1)]);
        // A clean jump is found in every held-out category: the pooled score is near the top,
        // and each fold's counts add up to its windows.
        for f in &r.folds {
            assert_eq!(f.tp[0] + f.fn_[0], f.windows, "{f:?}");
        }
        assert!(r.out_of_fold[0] > 80.0 && r.out_of_fold[0] <= 100.0, "{:?}", r.out_of_fold);
        assert_eq!(r.settings_scanned, 2);
    }
}
