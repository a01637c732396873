//! Workspace integration tests, one binary with topic modules.

mod engine;
mod wgpu;
