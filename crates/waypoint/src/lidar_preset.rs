//! The simulated lidars a command can pick.

use clap::ValueEnum;
use waypoint_sim::sensors::LidarConfig;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LidarPreset {
    /// 32 beams × 1024 azimuth steps.
    Default,
    /// 64 beams × 2048 steps, like the KITTI Velodyne HDL-64E.
    Hdl64e,
}

impl LidarPreset {
    pub fn config(self) -> LidarConfig {
        match self {
            LidarPreset::Default => LidarConfig::default(),
            LidarPreset::Hdl64e => LidarConfig::hdl64e(),
        }
    }
}
