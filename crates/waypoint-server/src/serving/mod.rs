//! The serving path: the model repository on disk ([`repository`], `config.toml`), the registry
//! of loaded versions with atomic swaps ([`registry`]), one engine per version with a bounded
//! queue and batching worker threads ([`engine`]), the one path every request takes
//! ([`inference`]) and its error ([`error`]), the response cache of deterministic models
//! ([`cache`]) with its reconnecting Redis link ([`redis_link`]), and ONNX Runtime for users' models ([`onnx`]).

pub mod cache;
pub mod engine;
pub mod error;
pub mod inference;
pub mod onnx;
pub mod redis_link;
pub mod registry;
pub mod repository;
