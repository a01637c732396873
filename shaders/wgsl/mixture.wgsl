// The exact denoiser of a Gaussian mixture (DESIGN.md section 6), in three passes:
//   distances: partial sums of ‖x − a·μ_m‖² over chunks of the latent, per component;
//   weights:   log-weights −‖d_m‖²/(2V), a stable softmax over the components;
//   combine:   μ̄ = Σ w_m μ_m, then E[x_data|x] = μ̄ + k_data·(x − a·μ̄),
//              E[ε|x] = k_eps·(x − a·μ̄), and the output the solver expects.
// Coefficients are computed on the CPU in f64: neg_half_inv_var = −1/(2V),
// k_data = a·s²/V, k_eps = σ/V.

struct Params {
    len: u32,
    components: u32,
    chunks: u32,
    // 0: velocity ε − x_data, 1: ε, 2: v = a·ε − σ·x_data, 3: x_data
    kind: u32,
    row: u32,
    a: f32,
    sigma: f32,
    neg_half_inv_var: f32,
    k_data: f32,
    k_eps: f32,
    _pad0: u32,
    _pad1: u32,
}

const CHUNK_ITEMS: u32 = 8u; // elements per thread in `distances`

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> means: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read_write> posterior: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> scratch: array<f32, 256>;

// Tree reduction of `scratch` (sum when `take_max` is false); the result is in scratch[0].
fn reduce(local: u32, take_max: bool) {
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        workgroupBarrier();
        if (local < stride) {
            if (take_max) {
                scratch[local] = max(scratch[local], scratch[local + stride]);
            } else {
                scratch[local] = scratch[local] + scratch[local + stride];
            }
        }
    }
    workgroupBarrier();
}

// Dispatch (chunks, components): one workgroup per (chunk of 256·CHUNK_ITEMS elements, component).
@compute @workgroup_size(256)
fn distances(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) local: u32) {
    let chunk = group.x;
    let m = group.y;
    let base = m * params.len;
    var sum = 0.0;
    for (var k = 0u; k < CHUNK_ITEMS; k = k + 1u) {
        let i = (chunk * CHUNK_ITEMS + k) * 256u + local;
        if (i < params.len) {
            let d = x[i] - params.a * means[base + i];
            sum = sum + d * d;
        }
    }
    scratch[local] = sum;
    reduce(local, false);
    if (local == 0u) {
        partials[m * params.chunks + chunk] = scratch[0];
    }
}

// Dispatch (1, 1): the softmax over all components.
@compute @workgroup_size(256)
fn weights(@builtin(local_invocation_index) local: u32) {
    let count = params.components;
    var best = -3.4e38;
    for (var m = local; m < count; m = m + 256u) {
        var d2 = 0.0;
        for (var c = 0u; c < params.chunks; c = c + 1u) {
            d2 = d2 + partials[m * params.chunks + c];
        }
        let logw = d2 * params.neg_half_inv_var;
        posterior[m] = logw;
        best = max(best, logw);
    }
    scratch[local] = best;
    reduce(local, true);
    let top = scratch[0];
    workgroupBarrier();
    var total = 0.0;
    for (var m = local; m < count; m = m + 256u) {
        let w = exp(posterior[m] - top);
        posterior[m] = w;
        total = total + w;
    }
    scratch[local] = total;
    reduce(local, false);
    let norm = 1.0 / scratch[0];
    for (var m = local; m < count; m = m + 256u) {
        posterior[m] = posterior[m] * norm;
    }
}

// Dispatch: a 2-D grid over the elements, `row` threads per grid row.
@compute @workgroup_size(256)
fn combine(@builtin(global_invocation_id) id: vec3<u32>) {
    let i = id.y * params.row + id.x;
    if (i >= params.len) {
        return;
    }
    var mu_bar = 0.0;
    for (var m = 0u; m < params.components; m = m + 1u) {
        mu_bar = mu_bar + posterior[m] * means[m * params.len + i];
    }
    let d = x[i] - params.a * mu_bar;
    let x_data = mu_bar + params.k_data * d;
    let eps = params.k_eps * d;
    var result: f32;
    switch params.kind {
        case 0u: { result = eps - x_data; }
        case 1u: { result = eps; }
        case 2u: { result = params.a * eps - params.sigma * x_data; }
        default: { result = x_data; }
    }
    out[i] = result;
}
