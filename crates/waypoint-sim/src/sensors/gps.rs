//! GPS receiver: position in the local frame with white noise and occasional multipath jumps.

use serde::{Deserialize, Serialize};

use crate::fault::FaultEffect;
use crate::frame::GpsFix;
use crate::geometry::Vec2;
use crate::rng::SimRng;

/// GPS configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpsConfig {
    pub enabled: bool,
    pub rate_hz: f64,
    pub noise_m: f64,
    /// Probability per fix that a multipath episode starts.
    pub multipath_prob: f64,
    pub multipath_jump_m: f64,
}

impl Default for GpsConfig {
    fn default() -> Self {
        Self { enabled: true, rate_hz: 10.0, noise_m: 0.5, multipath_prob: 0.003, multipath_jump_m: 6.0 }
    }
}

/// The GPS sensor.
#[derive(Debug, Clone)]
pub struct Gps {
    pub config: GpsConfig,
    multipath: Option<(Vec2, f64)>,
    rng: SimRng,
}

impl Gps {
    pub fn new(config: GpsConfig, rng: SimRng) -> Self {
        Self { config, multipath: None, rng }
    }

    pub fn fix(&mut self, t_secs: f64, truth: Vec2, effect: &FaultEffect) -> GpsFix {
        if self.multipath.is_some_and(|(_, until)| t_secs >= until) {
            self.multipath = None;
        }
        if self.multipath.is_none() && self.rng.chance(self.config.multipath_prob) {
            let dir = Vec2::from_angle(self.rng.range(0.0, std::f64::consts::TAU));
            let size = self.config.multipath_jump_m * self.rng.range(0.5, 1.5);
            self.multipath = Some((dir.scale(size), t_secs + self.rng.range(1.0, 3.0)));
        }
        let n = self.config.noise_m * effect.noise_mult;
        let mut p = truth + Vec2::new(self.rng.gauss(n), self.rng.gauss(n));
        if let Some((offset, _)) = self.multipath {
            p = p + offset;
        }
        p = p + Vec2::new(effect.drift, effect.drift);
        if let Some(size) = effect.spike {
            if self.rng.chance(0.5) {
                p = p + Vec2::from_angle(self.rng.range(0.0, std::f64::consts::TAU)).scale(size);
            }
        }
        GpsFix { t_secs, x_m: p.x, y_m: p.y, sigma_m: self.config.noise_m }
    }
}
