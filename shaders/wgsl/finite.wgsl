// flags[slot] = 1 if any element of `data` is NaN or ±Inf (exponent bits all ones). A
// round's outputs are checked by one dispatch each into one flag buffer, read back once.

struct Params {
    len: u32,
    row: u32,
    slot: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> flags: array<atomic<u32>>;

@compute @workgroup_size(256)
fn check_finite(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.y * params.row + id.x;
    if (i >= params.len) {
        return;
    }
    if ((bitcast<u32>(data[i]) & 0x7f800000u) == 0x7f800000u) {
        atomicOr(&flags[params.slot], 1u);
    }
}
