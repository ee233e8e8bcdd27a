//! Which version answers, and how it is judged: split, shadow and canary policies with the
//! canary controller ([`routing`]) and its statistics ([`judge`]), the online error of every served version against the
//! scene's truth ([`online`]), and continuous learning ([`learner`]).

pub mod judge;
pub mod learner;
pub mod online;
pub mod routing;
