//! The `own_model` example runs to the end (on lavapipe in CI; skipped without an adapter
//! outside CI).

#[path = "../examples/own_model.rs"]
#[allow(dead_code, reason = "the example's `main` is not called here")]
mod own_model;

#[test]
fn the_own_model_example_runs_to_the_end() {
    let no_adapter = chords_wgpu::DevicePool::new(&chords_wgpu::PoolOptions::new(1)).is_err();
    if no_adapter && std::env::var("CI").as_deref() != Ok("true") {
        eprintln!("skipping: no wgpu adapter");
        return;
    }
    // The network is the exact velocity of a straight-line flow, which Euler follows
    // exactly: every output is the target picture, up to rounding.
    let off_target = own_model::sample().expect("the example runs");
    assert!(off_target < 1e-4, "RMSE against the target {off_target}");
}
