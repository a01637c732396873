//! The WGSL kernels of chords-rs.
//!
//! The sources live in `wgsl/` inside this crate (so `cargo package` can include them) and
//! are exposed as strings; `chords-wgpu` compiles them once per device. A CPU-only test
//! parses and validates every shader with naga, so a broken shader fails CI even where no
//! GPU exists.

/// `out = Σ c_k · in_k` over up to six inputs: every solver step, coarse jump and
/// rectification of the CHORDS engine. Entry point `lincomb`.
pub const LINCOMB: &str = include_str!("../wgsl/lincomb.wgsl");

/// Sets a flag when any element of a latent is NaN or infinite. Entry point `check_finite`.
pub const FINITE: &str = include_str!("../wgsl/finite.wgsl");

/// The exact Gaussian-mixture denoiser, in three passes: entry points `distances`,
/// `weights` and `combine`.
pub const MIXTURE: &str = include_str!("../wgsl/mixture.wgsl");

/// A (C, H, W) latent to RGBA8 pixels, matching `chords::preview`. Entry points
/// `preview` (packed into a buffer) and `preview_texture` (into an rgba8unorm storage
/// texture).
pub const PREVIEW: &str = include_str!("../wgsl/preview.wgsl");

/// Every shader with its file name, for validation and tooling.
pub const ALL: [(&str, &str); 4] = [
    ("lincomb.wgsl", LINCOMB),
    ("finite.wgsl", FINITE),
    ("mixture.wgsl", MIXTURE),
    ("preview.wgsl", PREVIEW),
];

/// Threads per workgroup used by every kernel.
pub const WORKGROUP_SIZE: u32 = 256;

#[cfg(test)]
mod tests {
    #[test]
    fn every_shader_parses_and_validates() {
        for (name, source) in super::ALL {
            let module = naga::front::wgsl::parse_str(source)
                .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::empty(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
        }
    }

    #[test]
    fn workgroup_size_matches_the_sources() {
        for (name, source) in super::ALL {
            assert!(
                source.contains("@workgroup_size(256)"),
                "{name} must use 256 threads per workgroup"
            );
        }
    }
}
