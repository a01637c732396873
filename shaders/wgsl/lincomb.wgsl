// out[i] = c0·in0[i] + c1·in1[i] + … + c_{k-1}·in_{k-1}[i], summed left to right.
//
// The one arithmetic kernel of the CHORDS engine (DESIGN.md section 2): steps, coarse jumps
// and rectifications are all linear combinations of at most six latents. Unused inputs are
// bound to in0 and skipped (`terms` is uniform, so the branches do not diverge).
// Buffers hold whole vec4s (latents are padded); `len` counts vec4s.
// Dispatch: a 2-D grid of 256-thread workgroups; `row` is the grid's x size in threads.

struct Params {
    coeffs: array<vec4<f32>, 2>,
    len: u32,
    terms: u32,
    row: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> in0: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> in1: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> in2: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> in3: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> in4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> in5: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> out: array<vec4<f32>>;

fn coeff(k: u32) -> f32 {
    return params.coeffs[k / 4u][k % 4u];
}

@compute @workgroup_size(256)
fn lincomb(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.y * params.row + id.x;
    if (i >= params.len) {
        return;
    }
    var acc = coeff(0u) * in0[i];
    if (params.terms > 1u) { acc = acc + coeff(1u) * in1[i]; }
    if (params.terms > 2u) { acc = acc + coeff(2u) * in2[i]; }
    if (params.terms > 3u) { acc = acc + coeff(3u) * in3[i]; }
    if (params.terms > 4u) { acc = acc + coeff(4u) * in4[i]; }
    if (params.terms > 5u) { acc = acc + coeff(5u) * in5[i]; }
    out[i] = acc;
}
