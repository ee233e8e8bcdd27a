//! Integration tests of the trajectory model: windows and features, the network in candle,
//! in plain loops and in batches, training, fine-tuning, the social network of several futures,
//! and the served model.

mod plain {
    use std::path::Path;

    use waypoint_models::trajectory::data::{ade_fde, windows, Window};
    use waypoint_models::trajectory::model::{TrajectoryModel, WEIGHTS_FILE};
    use waypoint_models::trajectory::tcn::{features, FastTcn, TrainConfig, Trainer};
    use waypoint_models::{Model, Tensor, TensorData};
    use waypoint_sim::replay::TrackRow;
    use waypoint_sim::rng::SimRng;

    fn shipped_weights() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/trajectory/1").join(WEIGHTS_FILE)
    }

    /// Toy data: agents walking straight at a steady speed, then slowing down by a fixed
    /// factor — something constant velocity gets wrong and a model can learn.
    fn toy_windows(n: usize, seed: u64) -> Vec<Window> {
        let mut rng = SimRng::new(seed);
        (0..n)
            .map(|_| {
                let heading = rng.range(0.0, std::f64::consts::TAU) as f32;
                let speed = rng.range(0.3, 0.7) as f32;
                let (s, c) = heading.sin_cos();
                let start = [rng.range(-5.0, 5.0) as f32, rng.range(-5.0, 5.0) as f32];
                let mut pos = start;
                let mut pts = [[0f32; 2]; 20];
                for (k, p) in pts.iter_mut().enumerate() {
                    *p = pos;
                    let v = if k < 7 { speed } else { speed * 0.6 };
                    pos = [pos[0] + v * c, pos[1] + v * s];
                }
                let mut w = Window { obs: [[0.0; 2]; 8], fut: [[0.0; 2]; 12] };
                w.obs.copy_from_slice(&pts[..8]);
                w.fut.copy_from_slice(&pts[8..]);
                w
            })
            .collect()
    }

    #[test]
    fn windowing_on_a_hand_made_file_gives_known_ade_fde() {
        // One agent walking 1 m per frame along x for 20 frames, then the constant-velocity
        // prediction of a slower walker: known errors.
        let rows: Vec<TrackRow> =
            (0..20).map(|f| TrackRow { frame_id: f * 10, agent_id: 3, x_m: f as f64, y_m: 0.0 }).collect();
        let w = windows(&rows);
        assert_eq!(w.len(), 1);
        let slower: [[f32; 2]; 12] = std::array::from_fn(|k| [7.0 + 0.5 * (k + 1) as f32, 0.0]);
        let (ade, fde) = ade_fde(&slower, &w[0].fut);
        // Errors 0.5 k for k = 1..=12: mean 3.25, final 6.
        assert!((ade - 3.25).abs() < 1e-6 && (fde - 6.0).abs() < 1e-6);
    }

    #[test]
    fn fast_forward_matches_candle_and_survives_save_and_reload() {
        let trainer = Trainer::new(3).unwrap();
        let ws = toy_windows(16, 1);
        let feats: Vec<[f32; 14]> = ws.iter().map(|w| features(&w.obs).1).collect();
        let reference = trainer.forward_raw(&feats, None).unwrap();
        let fast = FastTcn::from_varmap(&trainer.varmap).unwrap();
        for (f, r) in feats.iter().zip(&reference) {
            let out = fast.forward(f);
            for (a, b) in out.iter().zip(r) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
        let dir = tempfile_dir();
        let path = dir.join("w.safetensors");
        trainer.save(&path).unwrap();
        let reloaded = FastTcn::load(&path).unwrap();
        for f in &feats {
            assert_eq!(reloaded.forward(f), fast.forward(f));
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("waypoint-test-{}-{}", std::process::id(), SimRng::new(9).next_u64()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn training_on_a_toy_set_lowers_the_loss_and_beats_constant_velocity() {
        let ws = toy_windows(600, 2);
        let mut trainer = Trainer::new(5).unwrap();
        let cfg = TrainConfig { epochs: 15, batch_size: 64, patience: 15, speed_jitter: 0.0, ..TrainConfig::default() };
        let report = trainer.train(&ws, &cfg, |_| {}).unwrap();
        let first = report.epochs.first().unwrap().train_loss;
        let best = report.epochs.iter().map(|e| e.train_loss).fold(f64::INFINITY, f64::min);
        assert!(best < 0.5 * first, "loss went from {first} to {best}");
        let fast = FastTcn::from_varmap(&trainer.varmap).unwrap();
        let test = toy_windows(100, 3);
        let (mut learned, mut cv) = (0.0, 0.0);
        for w in &test {
            learned += ade_fde(&fast.predict(&w.obs).0, &w.fut).0;
            cv += ade_fde(&waypoint_models::trajectory::ConstantVelocity::predict(&w.obs), &w.fut).0;
        }
        assert!(learned < 0.5 * cv, "learned ADE {learned} vs CV {cv}");
    }

    #[test]
    fn fine_tuning_validates_on_the_latest_windows_and_keeps_the_start_when_nothing_beats_it() {
        let ws = toy_windows(100, 4);
        let mut trainer = Trainer::new(5).unwrap();
        let before = FastTcn::from_varmap(&trainer.varmap).unwrap().predict(&ws[0].obs);
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 32,
            validation_share: 0.2,
            validate_on_latest: true,
            keep_start_if_best: true,
            // No step moves the weights: no epoch can beat the start.
            learning_rate: 0.0,
            weight_decay: 0.0,
            ema_epochs: 0.0,
            ..TrainConfig::default()
        };
        let report = trainer.train(&ws, &cfg, |_| {}).unwrap();
        // The last 20 windows validate; the 5 before them are purged; 75 train.
        assert_eq!((report.val_windows, report.train_windows), (20, 75));
        assert_eq!(report.best_epoch, 0, "{:?}", report.epochs);
        assert_eq!(report.start_val_ade_m, Some(report.best_val_ade_m));
        // Validated on exactly those windows: the start's ADE over the last 20.
        let fast = FastTcn::from_varmap(&trainer.varmap).unwrap();
        let tail: f64 = ws[80..].iter().map(|w| ade_fde(&fast.predict(&w.obs).0, &w.fut).0).sum::<f64>() / 20.0;
        assert!((tail - report.best_val_ade_m).abs() < 1e-4, "{tail} vs {}", report.best_val_ade_m);
        assert_eq!(fast.predict(&ws[0].obs), before, "the start's weights came back");
    }

    #[test]
    fn the_shipped_model_predicts_a_straight_walk_straight() {
        let mut model = TrajectoryModel::load(shipped_weights().parent().unwrap()).unwrap();
        // 1.2 m/s heading 30 degrees.
        let (s, c) = (30f32.to_radians().sin(), 30f32.to_radians().cos());
        let hist: Vec<f32> = (0..8).flat_map(|k| [3.0 + 0.48 * k as f32 * c, -1.0 + 0.48 * k as f32 * s]).collect();
        let input = Tensor::new("history", vec![1, 8, 2], TensorData::F32(hist)).unwrap();
        let out = model.infer(&[input]).unwrap();
        let p = out[0].as_f32().unwrap();
        let last = [3.0 + 0.48 * 7.0 * c, -1.0 + 0.48 * 7.0 * s];
        for k in 0..12 {
            let d = [p[2 * k] - last[0], p[2 * k + 1] - last[1]];
            // Distance from the line of travel, and progress along it.
            let across = (-s * d[0] + c * d[1]).abs();
            let along = c * d[0] + s * d[1];
            assert!(across < 0.1 + 0.02 * k as f32, "step {k}: {across} m off the line");
            assert!(along > 0.2 * (k + 1) as f32, "step {k}: only {along} m ahead");
        }
        let sigma = out[1].as_f32().unwrap();
        assert!(sigma[22] > sigma[0], "uncertainty grows with the horizon");
    }
}

mod batch {
    use waypoint_models::trajectory::tcn::{FastTcn, Trainer};

    #[test]
    fn batched_forward_equals_the_per_sample_forward() {
        let trainer = Trainer::new(11).unwrap();
        let fast = FastTcn::from_varmap(&trainer.varmap).unwrap();
        let xs: Vec<[f32; 14]> =
            (0..37).map(|i| std::array::from_fn(|k| ((i * 7 + k * 3) % 11) as f32 * 0.2 - 1.0)).collect();
        let batched = fast.forward_batch(&xs);
        for (x, out) in xs.iter().zip(&batched) {
            for (a, b) in fast.forward(x).iter().zip(out) {
                assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }
}

mod social {
    use waypoint_models::trajectory::data::{ade_fde, social_windows, SocialWindow, Window};
    use waypoint_models::trajectory::finetune::{fine_tune, fine_tune_config};
    use waypoint_models::trajectory::model::{TrajectoryModel, WEIGHTS_FILE};
    use waypoint_models::trajectory::tcn::{
        features, neighbour_features, Arch, FastTcn, TrainConfig, Trainer, MAX_NBRS, NBR_POS_SCALE_M, NB_FEAT,
    };
    use waypoint_models::{Model, ModelError, Tensor, TensorData};
    use waypoint_sim::replay::TrackRow;
    use waypoint_sim::rng::SimRng;

    const SIX_SOCIAL: Arch = Arch { modes: 6, social: true };

    fn random_inputs(n: usize, seed: u64) -> (Vec<[f32; 14]>, Vec<[f32; MAX_NBRS * NB_FEAT]>) {
        let mut rng = SimRng::new(seed);
        let feats = (0..n).map(|_| std::array::from_fn(|_| rng.range(-1.5, 1.5) as f32)).collect();
        let nbs = (0..n)
            .map(|i| {
                let mut nb = [0f32; MAX_NBRS * NB_FEAT];
                // Row i has i % 4 neighbours (none for some rows).
                for slot in nb.chunks_exact_mut(NB_FEAT).take(i % 4) {
                    for v in &mut slot[..4] {
                        *v = rng.range(-2.0, 2.0) as f32;
                    }
                    slot[4] = 1.0;
                }
                nb
            })
            .collect();
        (feats, nbs)
    }

    #[test]
    fn a_social_network_of_six_futures_computes_the_same_in_candle_in_loops_and_in_batches() {
        let trainer = Trainer::with_arch(3, SIX_SOCIAL).unwrap();
        let (feats, nbs) = random_inputs(40, 1);
        let reference = trainer.forward_raw(&feats, Some(&nbs)).unwrap();
        let fast = FastTcn::from_varmap(&trainer.varmap).unwrap();
        assert_eq!(fast.arch(), SIX_SOCIAL);
        let batched = fast.forward_batch_full(&feats, &nbs);
        for i in 0..feats.len() {
            let one = fast.forward_full(&feats[i], &nbs[i]);
            assert_eq!(one.len(), 6 * 49);
            for ((a, b), c) in one.iter().zip(&reference[i]).zip(&batched[i]) {
                assert!((a - b).abs() < 1e-4 && (a - c).abs() < 1e-4, "row {i}: {a} {b} {c}");
            }
        }
        // The shape is read back from the saved weights.
        let dir = std::env::temp_dir().join(format!("waypoint-social-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.safetensors");
        trainer.save(&path).unwrap();
        assert_eq!(Trainer::load(&path).unwrap().arch(), SIX_SOCIAL);
        let reloaded = FastTcn::load(&path).unwrap();
        assert_eq!(reloaded.forward_full(&feats[5], &nbs[5]), fast.forward_full(&feats[5], &nbs[5]));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn neighbour_features_are_the_nearest_within_reach_in_the_agents_frame() {
        // Walking along +y: the agent frame's x is the world's y.
        let obs: [[f32; 2]; 8] = std::array::from_fn(|k| [10.0, k as f32 * 0.5]);
        let (frame, _) = features(&obs);
        let far = [10.0, 3.5 + 7.0, 10.0, 3.5 + 7.0];
        let left_near = [9.0, 3.0, 9.0, 3.5]; // 1 m to the agent's left, walking along with it
        let ahead = [10.0, 6.5, 10.0, 6.5]; // 3 m ahead, standing
        let broken = [f32::NAN, 0.0, 1.0, 1.0];
        let car = [12.0, 0.0, 12.0, 4.0]; // 2 m away, 4 m per step: not a pedestrian's neighbour
        let f = neighbour_features(&frame, &[far, ahead, broken, car, left_near]);
        let s = NBR_POS_SCALE_M;
        let near: Vec<&[f32]> = f.chunks_exact(NB_FEAT).filter(|c| c[4] > 0.0).collect();
        assert_eq!(near.len(), 2, "the far one, the broken one and the car are not read: {f:?}");
        let expect = [[0.0, 1.0 / s, 1.0, 0.0, 1.0], [3.0 / s, 0.0, 0.0, 0.0, 1.0]];
        for (got, want) in near.iter().zip(expect) {
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
            }
        }
        // Nine neighbours in reach: the eight nearest are read.
        let many: Vec<[f32; 4]> = (0..9).map(|i| [11.0 + 0.5 * i as f32, 3.5, 11.0 + 0.5 * i as f32, 3.5]).collect();
        let f = neighbour_features(&frame, &many);
        assert!(f.chunks_exact(NB_FEAT).all(|c| c[4] == 1.0));
        assert!((f[(MAX_NBRS - 1) * NB_FEAT + 1] - (-4.5 / s)).abs() < 1e-5, "the farthest is left out");
    }

    #[test]
    fn the_window_lists_the_agents_present_at_its_last_two_observed_frames() {
        let mut rows = Vec::new();
        for f in 0..20 {
            rows.push(TrackRow { frame_id: f, agent_id: 1, x_m: f as f64, y_m: 0.0 });
            // Agent 2 only at frames 6 and 7; agent 3 only at frame 7.
            if f == 6 || f == 7 {
                rows.push(TrackRow { frame_id: f, agent_id: 2, x_m: 0.0, y_m: f as f64 });
            }
            if f == 7 {
                rows.push(TrackRow { frame_id: f, agent_id: 3, x_m: 5.0, y_m: 5.0 });
            }
        }
        let w = social_windows(&rows);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].neighbours, vec![[0.0, 6.0, 0.0, 7.0]]);
    }

    /// Agents walking along +x that, after the observed 8 steps, veer left or right at random:
    /// with a neighbour standing on one side when `neighbour_side` says so, they veer away from it.
    fn forks(n: usize, seed: u64, neighbour_decides: bool) -> Vec<SocialWindow> {
        let mut rng = SimRng::new(seed);
        (0..n)
            .map(|i| {
                let side = if rng.chance(0.5) { 1.0f32 } else { -1.0 };
                let y0 = i as f32 * 100.0;
                let speed = rng.range(0.4, 0.6) as f32;
                let obs = std::array::from_fn(|k| [k as f32 * speed, y0]);
                let fut = std::array::from_fn(|k| {
                    let t = (k + 1) as f32;
                    [(7.0 + t) * speed, y0 + side * 0.06 * t * t]
                });
                // The neighbour stands 1.5 m ahead on the side the agent does not take.
                let at = [7.0 * speed + 1.5, y0 - side * 1.0];
                let neighbours = if neighbour_decides { vec![[at[0], at[1], at[0], at[1]]] } else { Vec::new() };
                SocialWindow { window: Window { obs, fut }, neighbours }
            })
            .collect()
    }

    fn mean_errors(net: &FastTcn, test: &[SocialWindow]) -> ([f64; 2], [f64; 2]) {
        let (mut top, mut best) = ([0.0; 2], [0.0; 2]);
        for w in test {
            let modes = net.predict_modes(&w.window.obs, &w.neighbours);
            let e: Vec<(f64, f64)> = modes.iter().map(|m| ade_fde(&m.pos, &w.window.fut)).collect();
            top[0] += e[0].0;
            top[1] += e[0].1;
            best[0] += e.iter().map(|x| x.0).fold(f64::INFINITY, f64::min);
            best[1] += e.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        }
        let n = test.len() as f64;
        ([top[0] / n, top[1] / n], [best[0] / n, best[1] / n])
    }

    fn train(arch: Arch, data: &[SocialWindow]) -> FastTcn {
        let mut trainer = Trainer::with_arch(5, arch).unwrap();
        let cfg = TrainConfig {
            epochs: 20,
            batch_size: 64,
            patience: 20,
            speed_jitter: 0.0,
            top_weight: 1.0,
            arch,
            ..TrainConfig::default()
        };
        trainer.train_social_groups(&[data.to_vec()], &cfg, |_| {}).unwrap();
        FastTcn::from_varmap(&trainer.varmap).unwrap()
    }

    #[test]
    fn several_futures_cover_a_fork_that_one_future_averages() {
        let (data, test) = (forks(600, 1, false), forks(100, 2, false));
        let one = mean_errors(&train(Arch { modes: 1, social: false }, &data), &test);
        let six = mean_errors(&train(Arch { modes: 6, social: false }, &data), &test);
        // The branches end 17 m apart: one future lands between them; the best of six
        // lands near one.
        assert!(six.1[1] < 0.4 * one.0[1], "best-of-6 FDE {:?} against one future's {:?}", six.1, one.0);
    }

    #[test]
    fn a_social_network_learns_what_a_neighbour_tells_it() {
        let (data, test) = (forks(1200, 3, true), forks(100, 4, true));
        let alone = mean_errors(&train(Arch { modes: 1, social: false }, &data), &test);
        let social = mean_errors(&train(Arch { modes: 1, social: true }, &data), &test);
        assert!(social.0[1] < 0.4 * alone.0[1], "social FDE {:?} against {:?} without neighbours", social.0, alone.0);
    }

    #[test]
    fn fine_tuning_a_social_network_of_six_futures_keeps_its_shape_and_improves_it() {
        let dir = std::env::temp_dir().join(format!("waypoint-social-ft-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Trainer::with_arch(4, SIX_SOCIAL).unwrap().save(&dir.join(WEIGHTS_FILE)).unwrap();
        let data = forks(1200, 5, true);
        let cfg = fine_tune_config(8, 1);
        let (trainer, report) = fine_tune(&dir, std::slice::from_ref(&data), &cfg, |_| {}).unwrap();
        assert_eq!(trainer.arch(), SIX_SOCIAL);
        assert!(report.best_epoch > 0, "a fresh network is beaten by training: {:?}", report.epochs);
        assert!(report.epochs.iter().all(|e| e.val_min_ade_fde_m.is_some()), "best of six reported per epoch");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn onnx_export_refuses_a_network_it_cannot_express_and_a_last_layer_of_no_known_shape_is_refused() {
        let dir = std::env::temp_dir().join(format!("waypoint-social-onnx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Trainer::with_arch(2, SIX_SOCIAL).unwrap().save(&dir.join(WEIGHTS_FILE)).unwrap();
        match waypoint_models::trajectory::onnx_export::export(&dir) {
            Err(ModelError::BadInput(m)) => assert!(m.contains("6 futures and reads neighbours"), "{m}"),
            other => panic!("{:?}", other.map(|b| b.len())),
        }
        // A last layer of 50 outputs is neither one future (48) nor K of 49.
        let bad = candle_core::Tensor::zeros(50, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let map = std::collections::HashMap::from([("f2.bias".to_string(), bad)]);
        assert!(matches!(Arch::of_weights(&map), Err(ModelError::Load(m)) if m.contains("50 outputs")));
        let _ = std::fs::remove_dir_all(dir);
    }

    fn history(rows: usize) -> Tensor {
        let h: Vec<f32> = (0..rows).flat_map(|r| (0..8).flat_map(move |k| [k as f32 * 0.5, r as f32 * 10.0])).collect();
        Tensor::new("history", vec![rows, 8, 2], TensorData::F32(h)).unwrap()
    }

    fn neighbours(rows: usize, per_row: usize, value: f32) -> Tensor {
        let v: Vec<f32> = (0..rows)
            .flat_map(|r| {
                (0..per_row).flat_map(move |j| {
                    [4.0, r as f32 * 10.0 + value + j as f32, 4.0, r as f32 * 10.0 + value + j as f32]
                })
            })
            .collect();
        Tensor::new("neighbours", vec![rows, per_row, 4], TensorData::F32(v)).unwrap()
    }

    #[test]
    fn the_served_model_gives_every_future_and_reads_neighbours_only_when_given_well() {
        let trainer = Trainer::with_arch(9, SIX_SOCIAL).unwrap();
        let mut model = TrajectoryModel::from_net(FastTcn::from_varmap(&trainer.varmap).unwrap());
        let alone = model.infer(&[history(3)]).unwrap();
        let names: Vec<&str> = alone.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["trajectory", "sigma", "modes", "mode_probabilities", "mode_sigma"]);
        assert_eq!(alone[2].shape, vec![3, 6, 12, 2]);
        let p = alone[3].as_f32().unwrap();
        for row in p.chunks(6) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4);
            assert!(row.windows(2).all(|w| w[0] >= w[1]), "most likely first: {row:?}");
        }
        // The trajectory is the first mode.
        assert_eq!(alone[0].as_f32().unwrap()[..24], alone[2].as_f32().unwrap()[..24]);
        // A neighbour 1 m away changes the answer; NaN rows are no neighbours.
        let near = model.infer(&[history(3), neighbours(3, 2, 1.0)]).unwrap();
        assert_ne!(near[0].as_f32().unwrap(), alone[0].as_f32().unwrap());
        let nan = Tensor::new("neighbours", vec![3, 1, 4], TensorData::F32(vec![f32::NAN; 12])).unwrap();
        assert_eq!(model.infer(&[history(3), nan]).unwrap()[0], alone[0]);
        // Far-away padding (JSON has no NaN) is out of reach: no neighbour either.
        let far = Tensor::new("neighbours", vec![3, 1, 4], TensorData::F32(vec![1e9; 12])).unwrap();
        assert_eq!(model.infer(&[history(3), far]).unwrap()[0], alone[0]);
        // Refused: rows that disagree, a wrong inner size, too many neighbours per row.
        for bad in [
            neighbours(2, 2, 1.0),
            Tensor::new("neighbours", vec![3, 1, 2], TensorData::F32(vec![0.0; 6])).unwrap(),
            neighbours(3, 257, 1.0),
        ] {
            match model.infer(&[history(3), bad]) {
                Err(ModelError::BadInput(m)) => assert!(m.contains("neighbours"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_history_declared_noisy_is_smoothed_before_the_network_reads_it() {
        let trainer = Trainer::with_arch(9, SIX_SOCIAL).unwrap();
        let mut model = TrajectoryModel::from_net(FastTcn::from_varmap(&trainer.varmap).unwrap());
        let sigma = |v: Vec<f32>| Tensor::new("history_sigma", vec![v.len(), 1], TensorData::F32(v)).unwrap();
        // A walk with ±0.3 m of jitter across it: declared noisy, its prediction starts near the
        // line the jitter hides, not at the last jittered point.
        let walk: Vec<f32> = (0..8).flat_map(|k| [k as f32 * 0.5, if k % 2 == 0 { 0.3 } else { -0.3 }]).collect();
        let jittered = Tensor::new("history", vec![1, 8, 2], TensorData::F32(walk)).unwrap();
        let raw = model.infer(std::slice::from_ref(&jittered)).unwrap();
        let smooth = model.infer(&[jittered.clone(), sigma(vec![0.3])]).unwrap();
        let first_y = |out: &[Tensor]| out[0].as_f32().unwrap()[1].abs();
        assert!(first_y(&smooth) < first_y(&raw), "{} vs {}", first_y(&smooth), first_y(&raw));
        assert!(first_y(&smooth) < 0.2, "{}", first_y(&smooth));
        // Noise 0 is the history as given; a clean straight walk barely moves when declared noisy.
        assert_eq!(model.infer(&[history(3), sigma(vec![0.0; 3])]).unwrap()[0], model.infer(&[history(3)]).unwrap()[0]);
        // Refused: the wrong shape, a negative, non-finite or absurd noise.
        for bad in [
            Tensor::new("history_sigma", vec![3], TensorData::F32(vec![0.1; 3])).unwrap(),
            sigma(vec![0.1, -0.1, 0.1]),
            sigma(vec![0.1, f32::NAN, 0.1]),
            sigma(vec![0.1, 50.0, 0.1]),
        ] {
            match model.infer(&[history(3), bad]) {
                Err(ModelError::BadInput(m)) => assert!(m.contains("history_sigma"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }
}
