// A (C, H, W) latent to RGBA8 pixels, as `chords::preview::rgba8` does on the CPU: 3
// channels are RGB, any other count is shown as C grayscale tiles side by side;
// v ↦ floor(clamp((v + 1) / 2, 0, 1) · 255 + 0.5).
//
// Two entry points share the mapping: `preview` packs pixels into a u32 buffer (R in the
// low byte) for read-back; `preview_texture` stores them in an rgba8unorm storage texture
// that a renderer can draw directly (the live viewer), with no trip through the host.

struct Params {
    channels: u32,
    height: u32,
    width: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> latent: array<f32>;
@group(0) @binding(2) var<storage, read_write> pixels: array<u32>;
@group(0) @binding(3) var frame: texture_storage_2d<rgba8unorm, write>;

fn to_byte(v: f32) -> u32 {
    let unit = clamp((v + 1.0) * 0.5, 0.0, 1.0);
    // Not `round`: WGSL rounds half to even, the CPU half away from zero.
    return u32(floor(unit * 255.0 + 0.5));
}

fn out_width() -> u32 {
    if (params.channels == 3u) {
        return params.width;
    }
    return params.width * params.channels;
}

// The RGB bytes of output pixel (x, y).
fn pixel(x: u32, y: u32) -> vec3<u32> {
    let w = params.width;
    let plane = params.height * w;
    if (params.channels == 3u) {
        let at = y * w + x;
        return vec3<u32>(to_byte(latent[at]), to_byte(latent[plane + at]), to_byte(latent[2u * plane + at]));
    }
    let v = to_byte(latent[(x / w) * plane + y * w + x % w]);
    return vec3<u32>(v, v, v);
}

@compute @workgroup_size(256)
fn preview(@builtin(global_invocation_id) id: vec3<u32>) {
    let width = out_width();
    let p = id.x;
    if (p >= width * params.height) {
        return;
    }
    let rgb = pixel(p % width, p / width);
    pixels[p] = rgb.x | (rgb.y << 8u) | (rgb.z << 16u) | (255u << 24u);
}

@compute @workgroup_size(256)
fn preview_texture(@builtin(global_invocation_id) id: vec3<u32>) {
    let width = out_width();
    let p = id.x;
    if (p >= width * params.height) {
        return;
    }
    let x = p % width;
    let y = p / width;
    // k / 255 stores back as exactly k in an unorm8 texel.
    textureStore(frame, vec2<u32>(x, y), vec4<f32>(vec3<f32>(pixel(x, y)) / 255.0, 1.0));
}
