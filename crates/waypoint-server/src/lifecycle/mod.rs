//! Which version answers, and how it is judged: split, shadow and canary policies ([`routing`]),
//! the canary's settings, counters and judgement ([`canary`]) with its statistics ([`judge`]),
//! the online error of every served version against the scene's truth ([`online`]), and
//! continuous learning ([`learner`], of the models and windows in [`learn_task`]).

pub mod canary;
pub mod judge;
pub mod learn_task;
pub mod learner;
pub mod online;
pub mod routing;
