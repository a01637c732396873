//! The emoji network: a compact UNet predicting the flow-matching velocity of a 3×32×32
//! picture, conditioned on σ and on one emoji in one style (with a null condition for
//! classifier-free guidance).
//!
//! Written once over burn's device-dispatched tensors, so the same module runs on
//! burn-ndarray (CPU), burn-wgpu and, with the `cuda` feature, burn-cuda.
//!
//! Layout (channels at 32×32 / 16×16 / 8×8 / 4×4 = 16 / 32 / 64 / 96), about 97 MFLOP and
//! 600 k parameters:
//! `conv_in → res(16) ─────────────────────────────────────────────────── concat → res(48→16) → conv_out`
//! `              ↓ conv s2 → res(32) ──────────────────────────── concat → res(96→32) ↑ ×2`
//! `                            ↓ conv s2 → res(64) → + → attention → res(64) ↑ ×2`
//! `                                              ↓ conv s2 → res(96) → attention → 1×1 ↑ ×2`
//!
//! Each condition is a learned 3×8×8 *code* (one row of [`EmojiNet`]'s code table), started
//! from an 8×8 thumbnail of its training picture ([`EmojiNet::with_codes`]). The code enters
//! three times: upsampled beside the input at 32×32, at the 8×8 level, and through the σ
//! embedding. Spatial codes let one small network tell 3812 pictures apart where one
//! embedding vector per category could not (the categories' pictures never became
//! recognisable). Each of the three entries starts at zero, so weights of the network before
//! codes (its category embedding left out) load and it starts as that network, unconditioned.
//!
//! The self-attention over the 8×8 cells gives every cell the whole picture as context, the
//! coherence an emoji's one large shape needs; the [`Coarse`] level adds wide features at
//! little cost. Every residual branch ends in a zero-initialised layer, as in ADM: a fresh
//! block is the identity, so weights of the network without the attention, the second
//! middle block or the coarse level (earlier versions of it) load into this one
//! (`Trainer::from_weights`) and it starts as that network.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, Initializer, Linear, LinearConfig,
    PaddingConfig2d,
};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions, PadMode};
use burn::tensor::{Device, Int, Tensor};

/// Width of the σ and condition embedding.
const EMBED: usize = 128;
/// Shape of one condition's code.
pub const CODE: [usize; 3] = [3, 8, 8];
/// Values of one condition's code.
pub const CODE_LEN: usize = CODE[0] * CODE[1] * CODE[2];
/// Width of the sinusoidal σ features.
const FREQUENCIES: usize = 32;
/// Heads of the middle self-attention.
const HEADS: usize = 4;

/// A residual block with the conditioning added after its first convolution.
#[derive(Module, Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    cond: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

/// A padded 3×3 convolution's configuration.
fn conv3_config(input: usize, output: usize, stride: usize) -> Conv2dConfig {
    Conv2dConfig::new([input, output], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
}

fn conv3(input: usize, output: usize, stride: usize, device: &Device) -> Conv2d {
    conv3_config(input, output, stride).init(device)
}

/// `layer.forward(x)` for the 1×1 and padded 3×3 convolutions of this network.
///
/// When training (an autodiff device) the convolution is lowered to one matrix product over
/// the shifted copies of `x` (im2col): burn-ndarray's convolution backward pass is about 60×
/// its forward pass, the product's about 2×, which makes a training step ≈ 5× faster on the
/// CPU. Inference keeps burn's own convolution, faster in the forward direction.
fn conv(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if !x.device().is_autodiff() {
        return layer.forward(x);
    }
    let [b, c, h, w] = x.dims();
    let [o, _, k, _] = layer.weight.dims();
    let stride = layer.stride[0];
    let (ho, wo) = (h / stride, w / stride);
    let shifted: Vec<Tensor<4>> = if k == 1 {
        vec![x]
    } else {
        let padded = x.pad((1, 1, 1, 1), PadMode::Constant(0.0));
        (0..k * k)
            .map(|p| {
                let (dy, dx) = (p / k, p % k);
                let s = padded.clone().slice([0..b, 0..c, dy..dy + h, dx..dx + w]);
                match stride {
                    1 => s,
                    _ => s
                        .reshape([b, c, ho, stride, wo, stride])
                        .slice([0..b, 0..c, 0..ho, 0..1, 0..wo, 0..1])
                        .reshape([b, c, ho, wo]),
                }
            })
            .collect()
    };
    let columns = Tensor::cat(shifted, 1).reshape([b, k * k * c, ho * wo]);
    // Weight (O, C, ky, kx) → (1, O, ky·kx·C), matching the order of `columns`.
    let weight = layer
        .weight
        .val()
        .permute([0, 2, 3, 1])
        .reshape([1, o, k * k * c]);
    let y = weight.matmul(columns).reshape([b, o, ho, wo]);
    match &layer.bias {
        Some(bias) => y + bias.val().reshape([1, o, 1, 1]),
        None => y,
    }
}

fn groups(channels: usize) -> usize {
    (channels / 8).clamp(1, 8)
}

impl ResBlock {
    fn new(input: usize, output: usize, device: &Device) -> Self {
        Self {
            norm1: GroupNormConfig::new(groups(input), input).init(device),
            conv1: conv3(input, output, 1, device),
            cond: LinearConfig::new(EMBED, output).init(device),
            norm2: GroupNormConfig::new(groups(output), output).init(device),
            conv2: conv3_config(output, output, 1)
                .with_initializer(Initializer::Zeros)
                .init(device),
            skip: (input != output)
                .then(|| Conv2dConfig::new([input, output], [1, 1]).init(device)),
        }
    }

    fn forward(&self, x: Tensor<4>, emb: Tensor<2>) -> Tensor<4> {
        let h = conv(&self.conv1, silu(self.norm1.forward(x.clone())));
        let [b, c] = [h.dims()[0], h.dims()[1]];
        let h = h + self.cond.forward(emb).reshape([b, c, 1, 1]);
        let h = conv(&self.conv2, silu(self.norm2.forward(h)));
        let skip = match &self.skip {
            Some(layer) => conv(layer, x),
            None => x,
        };
        h + skip
    }
}

/// Multi-head self-attention over the cells of a feature map, added to it.
#[derive(Module, Debug)]
pub struct Attention {
    norm: GroupNorm,
    qkv: Linear,
    out: Linear,
}

impl Attention {
    fn new(channels: usize, device: &Device) -> Self {
        Self {
            norm: GroupNormConfig::new(groups(channels), channels).init(device),
            qkv: LinearConfig::new(channels, 3 * channels).init(device),
            out: LinearConfig::new(channels, channels)
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let (n, d) = (h * w, c / HEADS);
        // Cells as tokens: (B, N, C).
        let tokens = self
            .norm
            .forward(x.clone())
            .reshape([b, c, n])
            .swap_dims(1, 2);
        // (B, N, 3C) → three (B, heads, N, d).
        let qkv = self
            .qkv
            .forward(tokens)
            .reshape([b, n, 3 * HEADS, d])
            .swap_dims(1, 2);
        let part = |i: usize| {
            qkv.clone()
                .slice([0..b, i * HEADS..(i + 1) * HEADS, 0..n, 0..d])
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let weights = softmax(q.matmul(k.swap_dims(2, 3)).div_scalar((d as f32).sqrt()), 3);
        let mixed = weights.matmul(v).swap_dims(1, 2).reshape([b, n, c]);
        x + self
            .out
            .forward(mixed)
            .swap_dims(1, 2)
            .reshape([b, c, h, w])
    }
}

/// The coarsest level: the 8×8 map downsampled to 4×4 cells of wider features, a residual
/// block and a self-attention there, projected back and added to the 8×8 map.
///
/// Cheap in FLOPs (16 cells) and rich in parameters: room for the shapes of hundreds of
/// different emoji. Its projection back is zero-initialised, so a fresh one is the identity.
#[derive(Module, Debug)]
pub struct Coarse {
    down: Conv2d,
    block: ResBlock,
    attention: Attention,
    out: Conv2d,
}

impl Coarse {
    fn new(channels: usize, wide: usize, device: &Device) -> Self {
        Self {
            down: conv3(channels, wide, 2, device),
            block: ResBlock::new(wide, wide, device),
            attention: Attention::new(wide, device),
            out: Conv2dConfig::new([wide, channels], [1, 1])
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }

    fn forward(&self, x: Tensor<4>, emb: Tensor<2>) -> Tensor<4> {
        let h = self.block.forward(conv(&self.down, x.clone()), emb);
        // The 1×1 projection commutes with nearest upsampling: project the 16 cells first.
        x + upsample2(conv(&self.out, self.attention.forward(h)))
    }
}

/// Nearest-neighbour upsampling by 2 in both directions.
fn upsample2(x: Tensor<4>) -> Tensor<4> {
    upsample(x, 2.0)
}

/// Nearest-neighbour upsampling by `factor` in both directions.
fn upsample(x: Tensor<4>, factor: f32) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_scale_factor([factor, factor]),
    )
}

/// The emoji UNet.
#[derive(Module, Debug)]
pub struct EmojiNet {
    sigma_in: Linear,
    sigma_out: Linear,
    /// One learned 3×8×8 code per condition, the null condition last.
    code: Embedding,
    /// The code's entry into the embedding.
    code_embed: Linear,
    /// The code's entry beside the input (upsampled to 32×32).
    code_in: Conv2d,
    /// The code's entry at the 8×8 level.
    code_middle: Conv2d,
    conv_in: Conv2d,
    down1: ResBlock,
    pool1: Conv2d,
    down2: ResBlock,
    pool2: Conv2d,
    middle: ResBlock,
    coarse: Coarse,
    attention: Attention,
    middle2: ResBlock,
    up2: ResBlock,
    up1: ResBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl EmojiNet {
    /// A freshly initialised network for `conditions` conditions (plus the null one, last),
    /// their codes random until [`with_codes`](Self::with_codes).
    pub fn new(conditions: usize, device: &Device) -> Self {
        let zero_conv = |output: usize| {
            conv3_config(CODE[0], output, 1)
                .with_initializer(Initializer::Zeros)
                .init(device)
        };
        Self {
            sigma_in: LinearConfig::new(2 * FREQUENCIES, EMBED).init(device),
            sigma_out: LinearConfig::new(EMBED, EMBED).init(device),
            code: EmbeddingConfig::new(conditions + 1, CODE_LEN).init(device),
            code_embed: LinearConfig::new(CODE_LEN, EMBED)
                .with_initializer(Initializer::Zeros)
                .init(device),
            code_in: zero_conv(16),
            code_middle: zero_conv(64),
            conv_in: conv3(3, 16, 1, device),
            down1: ResBlock::new(16, 16, device),
            pool1: conv3(16, 32, 2, device),
            down2: ResBlock::new(32, 32, device),
            pool2: conv3(32, 64, 2, device),
            middle: ResBlock::new(64, 64, device),
            coarse: Coarse::new(64, 96, device),
            attention: Attention::new(64, device),
            middle2: ResBlock::new(64, 64, device),
            up2: ResBlock::new(64 + 32, 32, device),
            up1: ResBlock::new(32 + 16, 16, device),
            norm_out: GroupNormConfig::new(2, 16).init(device),
            conv_out: conv3(16, 3, 1, device),
        }
    }

    /// The number of conditions (the null condition not counted).
    pub fn conditions(&self) -> usize {
        self.code.weight.dims()[0] - 1
    }

    /// The code table: one row of [`CODE_LEN`] values per condition, the null condition's last.
    pub fn codes(&self) -> Tensor<2> {
        self.code.weight.val()
    }

    /// The network with its code table replaced by `codes`, `(conditions + 1) · CODE_LEN`
    /// values (the null condition's last), e.g. thumbnails of the training pictures.
    pub fn with_codes(mut self, codes: &[f32]) -> Result<Self, crate::EmojiError> {
        let rows = self.conditions() + 1;
        if codes.len() != rows * CODE_LEN {
            return Err(crate::EmojiError::Input(format!(
                "{} code values for {rows} codes of {CODE_LEN}",
                codes.len()
            )));
        }
        let data = burn::tensor::TensorData::new(codes.to_vec(), [rows, CODE_LEN]);
        self.code.weight = self.code.weight.map(|old| {
            let trained = old.is_require_grad();
            Tensor::<2>::from_data(data, &old.device()).set_require_grad(trained)
        });
        Ok(self)
    }

    /// The velocity at `x` (B×3×32×32) for noise levels `sigma` (B) and conditions
    /// `condition` (B; the null condition is [`conditions`](Self::conditions)).
    pub fn forward(&self, x: Tensor<4>, sigma: Tensor<1>, condition: Tensor<1, Int>) -> Tensor<4> {
        let device = x.device();
        let batch = x.dims()[0];
        // Sinusoidal features of σ·1000 at geometric frequencies.
        let freqs: Vec<f32> = (0..FREQUENCIES)
            .map(|k| (-(k as f32) * (10_000f32).ln() / FREQUENCIES as f32).exp())
            .collect();
        let freqs = Tensor::<1>::from_floats(freqs.as_slice(), &device).reshape([1, FREQUENCIES]);
        let angles = sigma.reshape([batch, 1]).mul_scalar(1000.0) * freqs;
        let features = Tensor::cat(vec![angles.clone().sin(), angles.cos()], 1);
        let emb = self
            .sigma_out
            .forward(silu(self.sigma_in.forward(features)));
        let [c, h, w] = CODE;
        let code = self
            .code
            .forward(condition.reshape([batch, 1]))
            .reshape([batch, CODE_LEN]);
        let emb = silu(emb + self.code_embed.forward(code.clone()));
        let code = code.reshape([batch, c, h, w]);

        let input = conv(&self.conv_in, x) + conv(&self.code_in, upsample(code.clone(), 4.0));
        let h0 = self.down1.forward(input, emb.clone());
        let h1 = self
            .down2
            .forward(conv(&self.pool1, h0.clone()), emb.clone());
        let middle = conv(&self.pool2, h1.clone()) + conv(&self.code_middle, code);
        let h2 = self.middle.forward(middle, emb.clone());
        let h2 = self.coarse.forward(h2, emb.clone());
        let h2 = self
            .middle2
            .forward(self.attention.forward(h2), emb.clone());
        let u1 = self
            .up2
            .forward(Tensor::cat(vec![upsample2(h2), h1], 1), emb.clone());
        let u0 = self
            .up1
            .forward(Tensor::cat(vec![upsample2(u1), h0], 1), emb);
        conv(&self.conv_out, silu(self.norm_out.forward(u0)))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    /// A fresh residual block, attention block and coarse level return their input unchanged: a
    /// network grown by them starts as the one it grew from.
    #[test]
    fn fresh_residual_branches_are_the_identity() {
        let device = crate::cpu_device();
        device.seed(5);
        let x = Tensor::<4>::random([2, 64, 8, 8], Distribution::Default, &device);
        let emb = Tensor::<2>::random([2, EMBED], Distribution::Default, &device);
        let expected = x.clone().into_data();
        assert_eq!(
            ResBlock::new(64, 64, &device)
                .forward(x.clone(), emb.clone())
                .into_data(),
            expected
        );
        assert_eq!(
            Attention::new(64, &device).forward(x.clone()).into_data(),
            expected
        );
        assert_eq!(
            Coarse::new(64, 96, &device).forward(x, emb).into_data(),
            expected
        );
    }

    /// The training lowering (im2col + matrix product) is the same convolution as burn's.
    #[test]
    fn lowered_convolution_matches_burns() {
        let device = crate::cpu_device().autodiff();
        device.seed(7);
        let x = Tensor::<4>::random([2, 5, 8, 8], Distribution::Default, &device);
        for (k, stride) in [(3, 1), (3, 2), (1, 1)] {
            let layer = Conv2dConfig::new([5, 6], [k, k])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
                .init(&device);
            let lowered = conv(&layer, x.clone());
            let direct = layer.forward(x.clone());
            assert_eq!(lowered.dims(), direct.dims());
            lowered
                .into_data()
                .assert_approx_eq::<f32>(&direct.into_data(), Tolerance::absolute(1e-5));
        }
    }
}
