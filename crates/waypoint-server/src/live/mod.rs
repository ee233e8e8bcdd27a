//! The live stack: the scene thread and its command channel ([`scene_runner`]), the fan-out hub
//! with a bounded send queue per client ([`hub`]), live detection and tracking ([`perception`])
//! and live trajectory predictions ([`predictor`]), all through the serving path.

pub mod hub;
pub mod perception;
pub mod predictor;
pub mod scene_runner;
