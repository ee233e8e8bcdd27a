//! One UKF predict + update (lidar and radar), one EKF step and one IMM step: the served
//! version (two CTRV UKFs and two constant-velocity filters, mixed) and version 2 (one
//! constant-velocity filter), measured in the same run.
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use waypoint_models::fusion::ekf::EkfConfig;
use waypoint_models::fusion::imm::ImmConfig;
use waypoint_models::fusion::ukf::UkfConfig;
use waypoint_models::fusion::{Ekf, Imm, Measurement, Ukf};

fn steps(c: &mut Criterion) {
    let mut t = 0.0;
    let mut ukf = Ukf::new(UkfConfig::default());
    ukf.process(&Measurement::Lidar { t_secs: 0.0, px_m: 5.0, py_m: 1.0 });
    c.bench_function("ukf_predict_update_lidar", |b| {
        b.iter(|| {
            t += 0.05;
            black_box(ukf.process(&Measurement::Lidar { t_secs: t, px_m: 5.0 + t, py_m: 1.0 }))
        })
    });
    c.bench_function("ukf_predict_update_radar", |b| {
        b.iter(|| {
            t += 0.05;
            black_box(ukf.process(&Measurement::Radar { t_secs: t, rho_m: 5.0 + t, phi_rad: 0.2, rho_dot_mps: 1.0 }))
        })
    });
    let mut ekf = Ekf::new(EkfConfig::default());
    c.bench_function("ekf_predict_update_radar", |b| {
        b.iter(|| {
            t += 0.05;
            black_box(ekf.process(&Measurement::Radar { t_secs: t, rho_m: 5.0 + t, phi_rad: 0.2, rho_dot_mps: 1.0 }))
        })
    });
    let mut three = ImmConfig::default();
    three.modes.remove(2);
    for (name, config) in [("imm", ImmConfig::default()), ("imm_v2", three)] {
        let mut imm = Imm::new(config);
        imm.process(&Measurement::Lidar { t_secs: t, px_m: 5.0, py_m: 1.0 });
        c.bench_function(&format!("{name}_predict_update_lidar"), |b| {
            b.iter(|| {
                t += 0.05;
                black_box(imm.process(&Measurement::Lidar { t_secs: t, px_m: 5.0 + t, py_m: 1.0 }))
            })
        });
        c.bench_function(&format!("{name}_predict_update_radar"), |b| {
            b.iter(|| {
                t += 0.05;
                black_box(imm.process(&Measurement::Radar {
                    t_secs: t,
                    rho_m: 5.0 + t,
                    phi_rad: 0.2,
                    rho_dot_mps: 1.0,
                }))
            })
        });
    }
}

criterion_group!(benches, steps);
criterion_main!(benches);
