// A (C, H, W) latent to RGBA8 pixels packed in u32 (R in the low byte), as
// `chords::preview::rgba8` does on the CPU: 3 channels are RGB, any other count is shown as
// C grayscale tiles side by side; v ↦ floor(clamp((v + 1) / 2, 0, 1) · 255 + 0.5).

struct Params {
    channels: u32,
    height: u32,
    width: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> latent: array<f32>;
@group(0) @binding(2) var<storage, read_write> pixels: array<u32>;

fn to_byte(v: f32) -> u32 {
    let unit = clamp((v + 1.0) * 0.5, 0.0, 1.0);
    // Not `round`: WGSL rounds half to even, the CPU half away from zero.
    return u32(floor(unit * 255.0 + 0.5));
}

@compute @workgroup_size(256)
fn preview(@builtin(global_invocation_id) id: vec3<u32>) {
    let c = params.channels;
    let h = params.height;
    let w = params.width;
    let plane = h * w;
    var out_width = w * c;
    if (c == 3u) {
        out_width = w;
    }
    let p = id.x;
    if (p >= out_width * h) {
        return;
    }
    let y = p / out_width;
    let x = p % out_width;
    var rgb: vec3<u32>;
    if (c == 3u) {
        let at = y * w + x;
        rgb = vec3<u32>(to_byte(latent[at]), to_byte(latent[plane + at]), to_byte(latent[2u * plane + at]));
    } else {
        let v = to_byte(latent[(x / w) * plane + y * w + x % w]);
        rgb = vec3<u32>(v, v, v);
    }
    pixels[p] = rgb.x | (rgb.y << 8u) | (rgb.z << 16u) | (255u << 24u);
}
