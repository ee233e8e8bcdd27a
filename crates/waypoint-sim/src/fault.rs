//! Sensor faults: what can go wrong, when, and how it changes a sensor's output.

use serde::{Deserialize, Serialize};

/// The five sensors on the ego vehicle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensor {
    Lidar,
    Radar,
    Camera,
    Imu,
    Gps,
}

impl Sensor {
    pub const ALL: [Sensor; 5] = [Sensor::Lidar, Sensor::Radar, Sensor::Camera, Sensor::Imu, Sensor::Gps];

    pub fn name(self) -> &'static str {
        match self {
            Sensor::Lidar => "lidar",
            Sensor::Radar => "radar",
            Sensor::Camera => "camera",
            Sensor::Imu => "imu",
            Sensor::Gps => "gps",
        }
    }
}

/// Kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The sensor delivers nothing.
    Dropout,
    /// The sensor repeats its last output.
    Stuck,
    /// Occasional large outliers; magnitude is the outlier size in the sensor's unit.
    Spike,
    /// A bias growing linearly; magnitude is the rate in the sensor's unit per second.
    Drift,
    /// Noise multiplied by the magnitude.
    NoiseBurst,
    /// Data arrive late by the magnitude, in seconds.
    Latency,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Dropout,
        FaultKind::Stuck,
        FaultKind::Spike,
        FaultKind::Drift,
        FaultKind::NoiseBurst,
        FaultKind::Latency,
    ];

    /// The magnitude used when none is given.
    pub fn default_magnitude(self, sensor: Sensor) -> f64 {
        match (self, sensor) {
            (FaultKind::Dropout | FaultKind::Stuck, _) => 1.0,
            (FaultKind::NoiseBurst, _) => 10.0,
            (FaultKind::Latency, _) => 0.5,
            (FaultKind::Spike, Sensor::Lidar | Sensor::Radar) => 20.0,
            (FaultKind::Spike, Sensor::Camera) => 150.0,
            (FaultKind::Spike, Sensor::Imu) => 15.0,
            (FaultKind::Spike, Sensor::Gps) => 30.0,
            (FaultKind::Drift, Sensor::Lidar) => 0.2,
            (FaultKind::Drift, Sensor::Radar) => 0.5,
            (FaultKind::Drift, Sensor::Camera) => 10.0,
            (FaultKind::Drift, Sensor::Imu) => 0.2,
            (FaultKind::Drift, Sensor::Gps) => 1.0,
        }
    }
}

/// A fault as requested: `start_secs` none means "now".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub sensor: Sensor,
    pub kind: FaultKind,
    #[serde(default)]
    pub start_secs: Option<f64>,
    pub duration_secs: f64,
    #[serde(default)]
    pub magnitude: Option<f64>,
}

/// A fault as recorded in the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub id: u32,
    pub sensor: Sensor,
    pub kind: FaultKind,
    pub start_secs: f64,
    pub end_secs: f64,
    pub magnitude: f64,
}

impl FaultRecord {
    pub fn active_at(&self, t_secs: f64) -> bool {
        t_secs >= self.start_secs && t_secs < self.end_secs
    }
}

/// The combined effect of the faults active on one sensor at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultEffect {
    pub dropout: bool,
    pub stuck: bool,
    /// Outlier size, when spiking.
    pub spike: Option<f64>,
    /// Bias accumulated so far by drift faults.
    pub drift: f64,
    pub noise_mult: f64,
    pub latency_secs: f64,
}

impl Default for FaultEffect {
    fn default() -> Self {
        Self { dropout: false, stuck: false, spike: None, drift: 0.0, noise_mult: 1.0, latency_secs: 0.0 }
    }
}

impl FaultEffect {
    /// The effect on `sensor` at `t_secs` of the given faults.
    pub fn at(faults: &[FaultRecord], sensor: Sensor, t_secs: f64) -> Self {
        let mut e = Self::default();
        for f in faults.iter().filter(|f| f.sensor == sensor && f.active_at(t_secs)) {
            match f.kind {
                FaultKind::Dropout => e.dropout = true,
                FaultKind::Stuck => e.stuck = true,
                FaultKind::Spike => e.spike = Some(e.spike.unwrap_or(0.0).max(f.magnitude)),
                FaultKind::Drift => e.drift += f.magnitude * (t_secs - f.start_secs),
                FaultKind::NoiseBurst => e.noise_mult *= f.magnitude.max(0.0),
                FaultKind::Latency => e.latency_secs = e.latency_secs.max(f.magnitude.max(0.0)),
            }
        }
        e
    }
}

/// A sensor's output path: applies dropout, stuck and latency to whole messages.
#[derive(Debug, Clone)]
pub struct Outbox<T> {
    last: Option<T>,
    delayed: std::collections::VecDeque<(f64, T)>,
}

impl<T> Default for Outbox<T> {
    fn default() -> Self {
        Self { last: None, delayed: Default::default() }
    }
}

/// A message whose measurement time can be restamped (for a stuck sensor's repeats).
pub trait Stamped: Clone {
    fn restamp(&mut self, t_secs: f64);
}

impl<T: Stamped> Outbox<T> {
    /// Offers a freshly measured message; what is released now is appended to `out`.
    pub fn push(&mut self, t_secs: f64, msg: T, effect: &FaultEffect) {
        if effect.dropout {
            return;
        }
        let msg = match (&self.last, effect.stuck) {
            (Some(prev), true) => {
                let mut m = prev.clone();
                m.restamp(t_secs);
                m
            }
            _ => msg,
        };
        self.last = Some(msg.clone());
        self.delayed.push_back((t_secs + effect.latency_secs, msg));
    }

    /// Moves every message due by `now_secs` into `out`, in release order.
    pub fn release(&mut self, now_secs: f64, out: &mut Vec<T>) {
        // Keep release order monotone: a message never overtakes an earlier one.
        while let Some((due, _)) = self.delayed.front() {
            if *due > now_secs + 1e-9 {
                break;
            }
            if let Some((_, m)) = self.delayed.pop_front() {
                out.push(m);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct M(f64, i32);
    impl Stamped for M {
        fn restamp(&mut self, t: f64) {
            self.0 = t;
        }
    }

    fn rec(kind: FaultKind, magnitude: f64) -> FaultRecord {
        FaultRecord { id: 1, sensor: Sensor::Gps, kind, start_secs: 1.0, end_secs: 2.0, magnitude }
    }

    #[test]
    fn effects_apply_only_while_active_and_to_their_sensor() {
        let faults = [rec(FaultKind::Drift, 2.0), rec(FaultKind::NoiseBurst, 5.0)];
        let e = FaultEffect::at(&faults, Sensor::Gps, 1.5);
        assert!((e.drift - 1.0).abs() < 1e-12 && (e.noise_mult - 5.0).abs() < 1e-12);
        assert_eq!(FaultEffect::at(&faults, Sensor::Gps, 2.0), FaultEffect::default());
        assert_eq!(FaultEffect::at(&faults, Sensor::Imu, 1.5), FaultEffect::default());
    }

    #[test]
    fn outbox_drops_repeats_and_delays() {
        let mut ob = Outbox::default();
        let mut out = Vec::new();
        let clean = FaultEffect::default();
        ob.push(0.0, M(0.0, 1), &clean);
        ob.push(0.1, M(0.1, 2), &FaultEffect { dropout: true, ..clean });
        ob.push(0.2, M(0.2, 3), &FaultEffect { stuck: true, ..clean });
        ob.push(0.3, M(0.3, 4), &FaultEffect { latency_secs: 0.5, ..clean });
        ob.release(0.3, &mut out);
        assert_eq!(out, vec![M(0.0, 1), M(0.2, 1)]);
        out.clear();
        ob.release(0.79, &mut out);
        assert!(out.is_empty());
        ob.release(0.8, &mut out);
        assert_eq!(out, vec![M(0.3, 4)]);
    }
}
