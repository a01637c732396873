//! Workspace integration tests, one binary with topic modules.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

mod baselines;
mod emoji;
mod engine;
mod faults;
mod host;
mod wgpu;
