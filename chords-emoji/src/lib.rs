//! # chords-emoji
//!
//! The built-in model of chords-rs: a small flow-matching UNet for 32×32 emoji
//! ([`EmojiNet`]) that draws the emoji it is asked for, in the Noto or the Twemoji style,
//! trained by this project (`chords data`, `chords train`), with its weights and its
//! [`catalog`] of 1906 emoji shipped in the crate.
//!
//! [`EmojiModel`] is one user of the generic burn adapter ([`chords_burn::BurnModel`]):
//! a [`chords::Model`] on the CPU backend with classifier-free guidance, whose round's calls
//! from all cores are stacked into one forward pass. On a wgpu pool it runs through
//! [`chords_burn::WgpuBurnModel`] (the `wgpu` feature); the `train` feature adds the data set
//! and the trainer ([`train`]), the `cuda` feature burn-cuda.
//!
//! ```
//! use chords_emoji::{EmojiModel, Style, cpu_device, find_emoji};
//! let dog = find_emoji("dog")?;
//! let model = EmojiModel::shipped(&cpu_device())?.with_emoji(dog, Style::Twemoji)?;
//! assert_eq!(model.emoji(), Some((dog, Style::Twemoji)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod catalog;
#[cfg(feature = "train")]
mod dataset;
mod net;
#[cfg(feature = "train")]
pub mod train;

use std::path::Path;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor};
use chords::{CpuBackend, CpuLatent, Model, ModelError, Request, Timestep};
use chords_burn::{BurnModel, Guidance, Network, TimeInput};

pub use catalog::{
    Emoji, Style, UnknownEmoji, catalog, condition, condition_parts, conditions, find_emoji,
    null_condition, search,
};
pub use net::{CODE, CODE_LEN, EmojiNet};

/// The classifier-free guidance scale used unless one is given.
pub const DEFAULT_GUIDANCE: f32 = 2.0;

/// The emoji drawn unless another is asked for.
pub const DEFAULT_EMOJI: &str = "grinning";

/// Elements of one emoji latent (3×32×32).
pub const NUMEL: usize = 3 * 32 * 32;
/// Shape of one emoji latent.
pub const SHAPE: [usize; 3] = [3, 32, 32];
/// Largest weights file [`EmojiModel::load`] reads (the shipped weights are 2.4 MB).
pub const MAX_WEIGHTS_BYTES: u64 = 256 << 20;

/// Loading or running the emoji model failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmojiError {
    /// The weights could not be read or do not fit the network.
    #[error("cannot load emoji weights from {source_name}: {reason}")]
    Weights {
        /// The file (or "built-in weights").
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// Bad input shapes or values.
    #[error("{0}")]
    Input(String),
    /// A training thread panicked (the panic's message).
    #[error("a training thread failed: {0}")]
    Worker(String),
}

/// The emoji network with a condition (an emoji in a style) and a guidance scale, ready to
/// sample: a [`BurnModel`] of [`EmojiNet`] (σ as its time input, the condition as its label,
/// the null condition for guidance). A [`chords::Model`] of the CPU backend; on a wgpu pool,
/// [`chords_burn::WgpuBurnModel::new`] of [`EmojiModel::burn`].
#[derive(Debug, Clone)]
pub struct EmojiModel(BurnModel<EmojiNet, 4>);

impl EmojiModel {
    /// The network on `device` with weights from burnpack `bytes` (as written by `chords train`).
    pub fn from_bytes(
        bytes: Vec<u8>,
        source_name: &str,
        device: &Device,
    ) -> Result<Self, EmojiError> {
        let net = net_from_bytes(EmojiNet::new(conditions(), device), bytes, source_name)?;
        Ok(Self::from_net(net, device))
    }

    /// The network with the weights shipped in `weights/emoji.bpk` (built into the crate;
    /// provenance and training run in the repository's `assets/README.md`).
    pub fn shipped(device: &Device) -> Result<Self, EmojiError> {
        let bytes = include_bytes!("../weights/emoji.bpk").to_vec();
        Self::from_bytes(bytes, "the built-in weights", device)
    }

    /// The network with weights from a file: a regular file of at most
    /// [`MAX_WEIGHTS_BYTES`].
    pub fn load(path: &Path, device: &Device) -> Result<Self, EmojiError> {
        let bytes =
            chords::read::read_file(path, MAX_WEIGHTS_BYTES).map_err(|e| EmojiError::Weights {
                source_name: path.display().to_string(),
                reason: e.reason,
            })?;
        Self::from_bytes(bytes, &path.display().to_string(), device)
    }

    /// The weights of `path` ([`load`](Self::load)), or the shipped ones when it is `None`
    /// (as `chords render --weights` takes them).
    pub fn load_or_shipped(path: Option<&Path>, device: &Device) -> Result<Self, EmojiError> {
        match path {
            Some(path) => Self::load(path, device),
            None => Self::shipped(device),
        }
    }

    /// Wraps a network (e.g. one being trained): condition 0 (the first emoji, in Noto),
    /// guidance [`DEFAULT_GUIDANCE`].
    pub fn from_net(net: EmojiNet, device: &Device) -> Self {
        let null = net.conditions() as i64;
        let guidance = Guidance::new(0, null, DEFAULT_GUIDANCE)
            .unwrap_or_else(|_| unreachable!("the default guidance is finite"));
        match BurnModel::new(net, &SHAPE, device) {
            Ok(model) => Self(
                model
                    .with_time_input(TimeInput::Sigma)
                    .with_guidance(Some(guidance)),
            ),
            Err(_) => unreachable!("SHAPE has rank 3"),
        }
    }

    /// Samples of `emoji` (an index into [`catalog`], e.g. from [`find_emoji`]) in `style`.
    pub fn with_emoji(self, emoji: usize, style: Style) -> Result<Self, EmojiError> {
        if emoji >= catalog().len() {
            return Err(EmojiError::Input(format!(
                "emoji index {emoji} out of range 0..{}",
                catalog().len()
            )));
        }
        self.with_condition(condition(emoji, style))
    }

    /// Samples of condition `condition` (see [`condition`]; the null condition samples
    /// unconditionally).
    pub fn with_condition(self, condition: usize) -> Result<Self, EmojiError> {
        if condition > self.net().conditions() {
            return Err(EmojiError::Input(format!(
                "condition {condition} out of range 0..={}",
                self.net().conditions()
            )));
        }
        let scale = self.guidance_scale();
        self.guide(condition, scale)
    }

    /// Classifier-free guidance scale (1: plain conditional, 0: unconditional).
    pub fn with_guidance(self, guidance: f32) -> Result<Self, EmojiError> {
        let condition = self.condition();
        self.guide(condition, guidance)
    }

    /// Whether a round's calls run as one stacked forward pass (default) or one pass each.
    pub fn with_batching(self, batched: bool) -> Self {
        Self(self.0.with_batching(batched))
    }

    /// The same model on another burn device.
    pub fn to_device(self, device: &Device) -> Self {
        Self(self.0.to_device(device))
    }

    /// The network.
    pub fn net(&self) -> &EmojiNet {
        self.0.net()
    }

    /// The condition it samples.
    pub fn condition(&self) -> usize {
        self.0.guidance().map_or(0, |g| g.label as usize)
    }

    /// The emoji and style it samples (`None` for the null condition).
    pub fn emoji(&self) -> Option<(usize, Style)> {
        condition_parts(self.condition())
    }

    /// The guidance scale.
    pub fn guidance_scale(&self) -> f32 {
        self.0.guidance().map_or(1.0, |g| g.scale)
    }

    /// The model as the generic burn adapter sees it (e.g. for
    /// [`chords_burn::WgpuBurnModel`]).
    pub fn burn(&self) -> &BurnModel<EmojiNet, 4> {
        &self.0
    }

    /// Guided velocities for several latents at noise levels `sigmas`, in one forward pass.
    pub fn velocities(
        &self,
        latents: &[&[f32]],
        sigmas: &[f64],
    ) -> Result<Vec<Vec<f32>>, EmojiError> {
        let times: Vec<Timestep> = sigmas
            .iter()
            .map(|&s| Timestep::new(0, s, 1.0 - s, s))
            .collect();
        self.0
            .outputs(latents, &times)
            .map_err(|e| EmojiError::Input(e.to_string()))
    }

    fn guide(self, condition: usize, scale: f32) -> Result<Self, EmojiError> {
        let null = self.net().conditions() as i64;
        let guidance = Guidance::new(condition as i64, null, scale)
            .map_err(|e| EmojiError::Input(e.to_string()))?;
        Ok(Self(self.0.with_guidance(Some(guidance))))
    }
}

impl Network<4> for EmojiNet {
    fn forward(&self, x: Tensor<4>, sigma: Tensor<1>, labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        let labels = labels.unwrap_or_else(|| {
            let [b, ..] = x.dims();
            Tensor::<1, Int>::full([b], self.conditions() as i64, &x.device())
        });
        EmojiNet::forward(self, x, sigma, labels)
    }
}

impl Model<CpuBackend> for EmojiModel {
    fn evaluate(&self, core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        self.0.evaluate(core, x, t)
    }

    fn evaluate_batch(
        &self,
        requests: &[Request<CpuLatent>],
    ) -> Vec<Result<CpuLatent, ModelError>> {
        self.0.evaluate_batch(requests)
    }

    fn batches(&self) -> bool {
        self.0.batches()
    }
}

/// Burnpack `bytes` decoded into a record (named `source_name` in errors).
fn record_from_bytes(bytes: Vec<u8>, source_name: &str) -> Result<ModuleRecord, EmojiError> {
    ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(|e| {
        EmojiError::Weights {
            source_name: source_name.into(),
            reason: e.to_string(),
        }
    })
}

/// `net` with its weights replaced by burnpack `bytes` (named `source_name` in errors).
fn net_from_bytes(
    net: EmojiNet,
    bytes: Vec<u8>,
    source_name: &str,
) -> Result<EmojiNet, EmojiError> {
    net.try_load_record(record_from_bytes(bytes, source_name)?)
        .map_err(|e| EmojiError::Weights {
            source_name: source_name.into(),
            reason: e.to_string(),
        })
}

/// The network's weights as burnpack bytes.
pub fn to_bytes(net: EmojiNet) -> Result<Vec<u8>, EmojiError> {
    let bad = |e: burn::store::RecordError| EmojiError::Weights {
        source_name: "the network".into(),
        reason: e.to_string(),
    };
    Ok(net.into_record().into_bytes().map_err(bad)?.to_vec())
}

pub use chords_burn::{cpu_device, cuda_device};
