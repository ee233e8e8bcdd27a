//! Which version answers, and how it is judged: split, shadow and canary policies with the
//! canary controller ([`routing`]), the online error of every served version against the
//! scene's truth ([`online`]), and continuous learning ([`learner`]).

pub mod learner;
pub mod online;
pub mod routing;
