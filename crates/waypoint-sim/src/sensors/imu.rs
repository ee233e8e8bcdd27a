//! IMU on the ego vehicle: body-frame acceleration and yaw rate with bias and white noise.

use serde::{Deserialize, Serialize};

use crate::fault::FaultEffect;
use crate::frame::ImuSample;
use crate::rng::SimRng;

/// Standard gravity, m/s².
pub const GRAVITY_MPS2: f64 = 9.806_65;

/// IMU configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImuConfig {
    pub enabled: bool,
    pub rate_hz: f64,
    pub accel_noise_mps2: f64,
    pub gyro_noise_rps: f64,
    /// One-sigma of the constant biases drawn at start.
    pub accel_bias_mps2: f64,
    pub gyro_bias_rps: f64,
}

impl Default for ImuConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rate_hz: 100.0,
            accel_noise_mps2: 0.05,
            gyro_noise_rps: 0.002,
            accel_bias_mps2: 0.05,
            gyro_bias_rps: 0.001,
        }
    }
}

/// The IMU sensor.
#[derive(Debug, Clone)]
pub struct Imu {
    pub config: ImuConfig,
    bias: [f64; 3],
    rng: SimRng,
}

impl Imu {
    pub fn new(config: ImuConfig, mut rng: SimRng) -> Self {
        let bias =
            [rng.gauss(config.accel_bias_mps2), rng.gauss(config.accel_bias_mps2), rng.gauss(config.gyro_bias_rps)];
        Self { config, bias, rng }
    }

    /// One sample of the true longitudinal acceleration, speed and yaw rate.
    pub fn sample(
        &mut self,
        t_secs: f64,
        accel_mps2: f64,
        speed_mps: f64,
        yaw_rate_rps: f64,
        effect: &FaultEffect,
    ) -> ImuSample {
        let na = self.config.accel_noise_mps2 * effect.noise_mult;
        let ng = self.config.gyro_noise_rps * effect.noise_mult;
        let mut ax = accel_mps2 + self.bias[0] + self.rng.gauss(na) + effect.drift;
        if let Some(size) = effect.spike {
            if self.rng.chance(0.3) {
                ax += size * if self.rng.chance(0.5) { 1.0 } else { -1.0 };
            }
        }
        ImuSample {
            t_secs,
            accel_x_mps2: ax,
            accel_y_mps2: speed_mps * yaw_rate_rps + self.bias[1] + self.rng.gauss(na),
            accel_z_mps2: GRAVITY_MPS2 + self.rng.gauss(na),
            yaw_rate_rps: yaw_rate_rps + self.bias[2] + self.rng.gauss(ng) + 0.1 * effect.drift,
        }
    }
}
