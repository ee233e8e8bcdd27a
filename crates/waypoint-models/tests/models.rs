//! Integration tests of the models crate, one module per model.

mod fusion {
    use waypoint_models::fusion::ekf::EkfConfig;
    use waypoint_models::fusion::ukf::UkfConfig;
    use waypoint_models::fusion::{Ekf, Measurement, Ukf};
    use waypoint_sim::rng::SimRng;

    /// Alternating lidar and radar measurements of a target moving along `path(t)`, with the
    /// default sensor noise, every 50 ms.
    fn measurements(path: impl Fn(f64) -> (f64, f64, f64, f64), secs: f64, seed: u64) -> Vec<Measurement> {
        let mut rng = SimRng::new(seed);
        let n = (secs / 0.05) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 * 0.05;
                let (px, py, vx, vy) = path(t);
                if i % 2 == 0 {
                    Measurement::Lidar { t_secs: t, px_m: px + rng.gauss(0.15), py_m: py + rng.gauss(0.15) }
                } else {
                    let rho = px.hypot(py);
                    Measurement::Radar {
                        t_secs: t,
                        rho_m: rho + rng.gauss(0.3),
                        phi_rad: py.atan2(px) + rng.gauss(0.03),
                        rho_dot_mps: (px * vx + py * vy) / rho + rng.gauss(0.3),
                    }
                }
            })
            .collect()
    }

    #[test]
    fn a_stationary_object_stays_put() {
        let ms = measurements(|_| (10.0, 5.0, 0.0, 0.0), 10.0, 1);
        let mut ukf = Ukf::new(UkfConfig::default());
        let last = ms.iter().map(|m| ukf.process(m)).last().unwrap();
        assert!((last.px_m - 10.0).abs() < 0.15 && (last.py_m - 5.0).abs() < 0.15, "{last:?}");
        assert!(last.vx_mps.hypot(last.vy_mps) < 0.3, "{last:?}");
    }

    #[test]
    fn a_constant_velocity_object_has_its_velocity_estimated() {
        let path = |t: f64| (2.0 + 3.0 * t, -4.0 + 1.5 * t, 3.0, 1.5);
        let ms = measurements(path, 10.0, 2);
        let mut ukf = Ukf::new(UkfConfig::default());
        let mut ekf = Ekf::new(EkfConfig::default());
        let mut u = Vec::new();
        let mut e = Vec::new();
        for m in &ms {
            u.push(ukf.process(m));
            e.push(ekf.process(m));
        }
        // Mean over the last 5 s, after convergence.
        for est in [&u, &e] {
            let tail = &est[est.len() / 2..];
            let vx = tail.iter().map(|x| x.vx_mps).sum::<f64>() / tail.len() as f64;
            let vy = tail.iter().map(|x| x.vy_mps).sum::<f64>() / tail.len() as f64;
            assert!((vx - 3.0).abs() < 0.15 && (vy - 1.5).abs() < 0.15, "vx {vx} vy {vy}");
        }
    }

    #[test]
    fn a_constant_turn_has_its_yaw_rate_estimated() {
        // 6 m/s on a circle of radius 20 m: yaw rate 0.3 rad/s.
        let (r, w) = (20.0, 0.3);
        let path = |t: f64| {
            let a = w * t;
            (30.0 + r * a.cos(), 10.0 + r * a.sin(), -r * w * a.sin(), r * w * a.cos())
        };
        let ms = measurements(path, 15.0, 3);
        let mut ukf = Ukf::new(UkfConfig::default());
        let est: Vec<_> = ms.iter().map(|m| ukf.process(m)).collect();
        let tail = &est[est.len() / 2..];
        let yr = tail.iter().map(|x| x.yaw_rate_rps).sum::<f64>() / tail.len() as f64;
        assert!((yr - 0.3).abs() < 0.05, "yaw rate {yr}");
    }

    #[test]
    fn degenerate_rows_give_finite_output() {
        let rows = [
            Measurement::Radar { t_secs: 1000.0, rho_m: 0.0, phi_rad: 0.0, rho_dot_mps: 0.0 },
            Measurement::Radar { t_secs: 1000.05, rho_m: 0.0, phi_rad: 1.0, rho_dot_mps: 3.0 },
            Measurement::Lidar { t_secs: 1000.05, px_m: 0.0, py_m: 0.0 },
            Measurement::Lidar { t_secs: 1000.05, px_m: 0.1, py_m: 0.0 },
            Measurement::Radar { t_secs: 1000.02, rho_m: 5.0, phi_rad: 0.1, rho_dot_mps: 1.0 },
            Measurement::Lidar { t_secs: 5000.0, px_m: 1.0, py_m: 1.0 },
            Measurement::Radar { t_secs: 5000.1, rho_m: 1e-9, phi_rad: 4.0, rho_dot_mps: -1.0 },
            Measurement::Lidar { t_secs: f64::NAN, px_m: 1.0, py_m: 1.0 },
            Measurement::Radar { t_secs: 5000.2, rho_m: f64::INFINITY, phi_rad: 0.0, rho_dot_mps: 0.0 },
            Measurement::Lidar { t_secs: 5000.3, px_m: 1.1, py_m: 1.0 },
        ];
        let mut ukf = Ukf::new(UkfConfig::default());
        let mut ekf = Ekf::new(EkfConfig::default());
        for m in &rows {
            for e in [ukf.process(m), ekf.process(m)] {
                for v in [e.px_m, e.py_m, e.vx_mps, e.vy_mps, e.yaw_rad, e.yaw_rate_rps, e.pos_var_m2] {
                    assert!(v.is_finite(), "{m:?} -> {e:?}");
                }
            }
        }
    }
}
