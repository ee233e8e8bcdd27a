//! Simulated lidar + radar logs of one road user, in several kinds of motion, for choosing a
//! filter's settings on data apart from any recorded log.
//!
//! Each log is 25 s of one target that starts 5–25 m from the sensors (at the origin, as in
//! the Udacity logs); lidar and radar alternate every 50 ms (10 Hz each), with the sensor noise
//! of [`super::SensorNoise::default`]. The truth is integrated at 100 Hz.

use waypoint_sim::rng::SimRng;

use super::{Measurement, SensorNoise};

/// A kind of motion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MotionKind {
    /// Constant speed (3–15 m/s) along a straight line.
    Straight,
    /// Constant turn rate and speed held for 2–6 s at a time (rates up to 0.5 rad/s), with
    /// gentle acceleration.
    Turns,
    /// A weave: the turn rate a sine (0.3–0.8 rad/s, period 6–14 s), the speed another.
    Weave,
    /// Acceleration along each world axis that wanders (a first-order process, 2 m/s², 1 s).
    RandomAccel,
    /// Straight stop-and-go: accelerate at 1.5–3 m/s², cruise, brake, stand, again.
    StopGo,
}

impl MotionKind {
    pub const ALL: [MotionKind; 5] =
        [MotionKind::Straight, MotionKind::Turns, MotionKind::Weave, MotionKind::RandomAccel, MotionKind::StopGo];

    pub fn name(self) -> &'static str {
        match self {
            MotionKind::Straight => "straight",
            MotionKind::Turns => "turns",
            MotionKind::Weave => "weave",
            MotionKind::RandomAccel => "random_accel",
            MotionKind::StopGo => "stop_go",
        }
    }
}

const FINE_STEP_SECS: f64 = 0.01;
const LOG_SECS: f64 = 25.0;
const MEASURE_EVERY: usize = 5;

/// One simulated log: measurements with the true `[px, py, vx, vy]` at each.
pub fn log(kind: MotionKind, seed: u64) -> Vec<(Measurement, [f64; 4])> {
    let mut rng = SimRng::new(seed.wrapping_mul(0x9e37_79b9).wrapping_add(kind as u64));
    let noise = SensorNoise::default();
    let start_r = rng.range(5.0, 25.0);
    let start_a = rng.range(-std::f64::consts::PI, std::f64::consts::PI);
    let (mut x, mut y) = (start_r * start_a.cos(), start_r * start_a.sin());
    let mut yaw = rng.range(-std::f64::consts::PI, std::f64::consts::PI);
    let mut speed = match kind {
        MotionKind::StopGo => 0.0,
        _ => rng.range(3.0, 15.0),
    };
    let (mut vx, mut vy) = (speed * yaw.cos(), speed * yaw.sin());
    // Per-kind state.
    let (mut rate, mut accel, mut seg_left) = (0.0f64, 0.0f64, 0.0f64);
    let (weave_amp, weave_period, weave_phase) =
        (rng.range(0.3, 0.8), rng.range(6.0, 14.0), rng.range(0.0, std::f64::consts::TAU));
    let (speed_amp, speed_period) = (rng.range(0.5, 3.0), rng.range(5.0, 12.0));
    let base_speed = speed.max(speed_amp + 1.0);
    let (mut ax, mut ay) = (0.0f64, 0.0f64);
    let (mut phase, mut phase_left) = (0u8, 0.0f64);
    let (go_accel, brake, cruise) = (rng.range(1.5, 3.0), rng.range(2.0, 4.0), rng.range(6.0, 14.0));
    let steps = (LOG_SECS / FINE_STEP_SECS) as usize;
    let mut out = Vec::with_capacity(steps / MEASURE_EVERY);
    let dt = FINE_STEP_SECS;
    for k in 0..steps {
        let t = k as f64 * dt;
        if k % MEASURE_EVERY == 0 {
            let m = if (k / MEASURE_EVERY).is_multiple_of(2) {
                Measurement::Lidar {
                    t_secs: t,
                    px_m: x + rng.gauss(noise.lidar_px_m),
                    py_m: y + rng.gauss(noise.lidar_py_m),
                }
            } else {
                let rho = x.hypot(y).max(1e-3);
                Measurement::Radar {
                    t_secs: t,
                    rho_m: rho + rng.gauss(noise.radar_rho_m),
                    phi_rad: y.atan2(x) + rng.gauss(noise.radar_phi_rad),
                    rho_dot_mps: (x * vx + y * vy) / rho + rng.gauss(noise.radar_rho_dot_mps),
                }
            };
            out.push((m, [x, y, vx, vy]));
        }
        match kind {
            MotionKind::Straight => {}
            MotionKind::Turns => {
                if seg_left <= 0.0 {
                    seg_left = rng.range(2.0, 6.0);
                    rate = if rng.chance(0.3) { 0.0 } else { rng.range(-0.5, 0.5) };
                    accel = rng.range(-1.0, 1.0);
                }
                seg_left -= dt;
                if (speed < 2.0 && accel < 0.0) || (speed > 16.0 && accel > 0.0) {
                    accel = -accel;
                }
                yaw += rate * dt;
                speed += accel * dt;
            }
            MotionKind::Weave => {
                rate = weave_amp * (std::f64::consts::TAU * t / weave_period + weave_phase).sin();
                yaw += rate * dt;
                speed = base_speed + speed_amp * (std::f64::consts::TAU * t / speed_period).sin();
            }
            MotionKind::RandomAccel => {
                let (tau, sigma) = (1.0, 2.0);
                let a = dt / tau;
                ax += -a * ax + sigma * (2.0 * a).sqrt() * rng.normal();
                ay += -a * ay + sigma * (2.0 * a).sqrt() * rng.normal();
                vx += ax * dt;
                vy += ay * dt;
            }
            MotionKind::StopGo => {
                // 0 accelerate, 1 cruise, 2 brake, 3 stand.
                match phase {
                    0 => {
                        speed += go_accel * dt;
                        if speed >= cruise {
                            speed = cruise;
                            phase = 1;
                            phase_left = rng.range(1.0, 4.0);
                        }
                    }
                    1 | 3 => {
                        phase_left -= dt;
                        if phase_left <= 0.0 {
                            phase = if phase == 1 { 2 } else { 0 };
                        }
                    }
                    _ => {
                        speed -= brake * dt;
                        if speed <= 0.0 {
                            speed = 0.0;
                            phase = 3;
                            phase_left = rng.range(1.0, 3.0);
                        }
                    }
                }
            }
        }
        if kind != MotionKind::RandomAccel {
            vx = speed * yaw.cos();
            vy = speed * yaw.sin();
        }
        x += vx * dt;
        y += vy * dt;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_deterministic_and_their_truth_moves_as_measured() {
        for kind in MotionKind::ALL {
            let a = log(kind, 3);
            assert_eq!(a, log(kind, 3));
            assert_ne!(a, log(kind, 4));
            assert_eq!(a.len(), 500);
            // The truth's position changes by its velocity (within the 50 ms between rows).
            for w in a.windows(2) {
                let (g0, g1) = (w[0].1, w[1].1);
                let dt = w[1].0.t_secs() - w[0].0.t_secs();
                let (ex, ey) = (g0[0] + g0[2] * dt, g0[1] + g0[3] * dt);
                assert!((ex - g1[0]).hypot(ey - g1[1]) < 0.1, "{kind:?}: {g0:?} -> {g1:?}");
            }
            // Lidar rows lie near the truth.
            let lidar_err: f64 = a
                .iter()
                .filter_map(|(m, g)| match m {
                    Measurement::Lidar { px_m, py_m, .. } => Some((px_m - g[0]).hypot(py_m - g[1])),
                    _ => None,
                })
                .fold(0.0, f64::max);
            assert!(lidar_err < 1.0, "{kind:?}: {lidar_err}");
        }
    }
}
