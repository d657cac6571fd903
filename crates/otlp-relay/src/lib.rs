//! The pieces of the `otlp-relay` and `otlp-loadgen` binaries: the configuration file, the
//! receivers (chosen by kind through registered factories), the per-signal pipeline, the
//! exporters (file with rotation, OTLP upstream from settings and the
//! `OTEL_EXPORTER_OTLP_*` variables, null) and the admin endpoints. The binaries are
//! the product; this library exists so the two share them.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod config;
pub mod factories;
pub mod loadgen;
pub mod pipeline;
pub mod receivers;
pub mod sink;
pub mod upstream;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
