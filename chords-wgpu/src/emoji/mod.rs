//! The built-in neural model: a small class-conditional flow-matching UNet for 32×32 emoji,
//! trained by this project (`chords data`, `chords train`), hosted on burn.
//!
//! [`EmojiModel`] wraps the network as a [`chords::Model`] on the CPU backend, with
//! classifier-free guidance. It [batches](chords::Model::batches): a round's calls from all
//! cores are stacked into one forward pass, the way to use one device for several cores.

mod classes;
mod net;
mod on_device;
pub mod train;

use std::path::Path;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor, TensorData};
use chords::{CpuBackend, CpuLatent, Model, ModelError, Request, Timestep};

pub use classes::{CLASSES, NULL_CLASS, category_index, class_index};
pub use net::EmojiNet;
pub use on_device::GpuEmojiModel;

/// The classifier-free guidance scale used unless one is given: with the shipped weights,
/// 4 gives recognisable smileys, symbols and flags where 2 gives blobs of the class's colours.
pub const DEFAULT_GUIDANCE: f32 = 4.0;

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

/// The emoji network with a class and a guidance scale, ready to sample.
#[derive(Debug, Clone)]
pub struct EmojiModel {
    net: EmojiNet,
    device: Device,
    class: usize,
    guidance: f32,
    batched: bool,
}

impl EmojiModel {
    /// The network on `device` with weights from burnpack `bytes` (as written by `chords train`).
    pub fn from_bytes(
        bytes: Vec<u8>,
        source_name: &str,
        device: &Device,
    ) -> Result<Self, EmojiError> {
        Ok(Self {
            net: net_from_bytes(EmojiNet::new(CLASSES.len(), device), bytes, source_name)?,
            device: device.clone(),
            class: 0,
            guidance: DEFAULT_GUIDANCE,
            batched: true,
        })
    }

    /// The network with the weights shipped in `assets/emoji/emoji.bpk` (built into the
    /// binary; provenance and training run in `assets/README.md`).
    pub fn shipped(device: &Device) -> Result<Self, EmojiError> {
        let bytes = include_bytes!("../../../assets/emoji/emoji.bpk").to_vec();
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

    /// Wraps a network (e.g. one being trained).
    pub fn from_net(net: EmojiNet, device: &Device) -> Self {
        Self {
            net,
            device: device.clone(),
            class: 0,
            guidance: DEFAULT_GUIDANCE,
            batched: true,
        }
    }

    /// Samples of class `class` (an index into [`CLASSES`]).
    pub fn with_class(mut self, class: usize) -> Result<Self, EmojiError> {
        if class >= CLASSES.len() {
            return Err(EmojiError::Input(format!(
                "class index {class} out of range 0..{}",
                CLASSES.len()
            )));
        }
        self.class = class;
        Ok(self)
    }

    /// Classifier-free guidance scale (1: plain conditional, 0: unconditional).
    pub fn with_guidance(mut self, guidance: f32) -> Result<Self, EmojiError> {
        if !guidance.is_finite() {
            return Err(EmojiError::Input(format!(
                "guidance must be finite, got {guidance}"
            )));
        }
        self.guidance = guidance;
        Ok(self)
    }

    /// Whether a round's calls run as one stacked forward pass (default) or one pass each.
    pub fn with_batching(mut self, batched: bool) -> Self {
        self.batched = batched;
        self
    }

    /// The same model on another burn device.
    pub fn to_device(self, device: &Device) -> Self {
        Self {
            net: self.net.to_device(device),
            device: device.clone(),
            ..self
        }
    }

    /// The network.
    pub fn net(&self) -> &EmojiNet {
        &self.net
    }

    /// Guided velocities for several latents at noise levels `sigmas`, in one forward pass.
    pub fn velocities(
        &self,
        latents: &[&[f32]],
        sigmas: &[f64],
    ) -> Result<Vec<Vec<f32>>, EmojiError> {
        let b = latents.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        if sigmas.len() != b || latents.iter().any(|l| l.len() != NUMEL) {
            return Err(EmojiError::Input(format!(
                "the emoji model takes latents of {NUMEL} elements (3×32×32)"
            )));
        }
        // Conditional and (unless guidance is 1) unconditional halves of one batch.
        let copies = self.copies();
        let mut x = Vec::with_capacity(copies * b * NUMEL);
        for _ in 0..copies {
            for l in latents {
                x.extend_from_slice(l);
            }
        }
        let x = Tensor::<4>::from_data(TensorData::new(x, [copies * b, 3, 32, 32]), &self.device);
        let v = self.guided(x, sigmas);
        let data: Vec<f32> = v
            .into_data()
            .try_to_vec()
            .map_err(|e| EmojiError::Input(format!("{e:?}")))?;
        Ok(data.chunks_exact(NUMEL).map(<[f32]>::to_vec).collect())
    }
}

impl EmojiModel {
    /// 2 when guided (conditional and unconditional halves of one batch), else 1.
    fn copies(&self) -> usize {
        if self.guidance != 1.0 { 2 } else { 1 }
    }

    /// The guided velocity of `b = sigmas.len()` latents, given `x` holding
    /// [`copies`](Self::copies) stacked copies of them (on this model's device).
    fn guided(&self, x: Tensor<4>, sigmas: &[f64]) -> Tensor<4> {
        let (b, copies) = (sigmas.len(), self.copies());
        let n = copies * b;
        let mut sigma = Vec::with_capacity(n);
        let mut class = Vec::with_capacity(n);
        for copy in 0..copies {
            for s in sigmas {
                sigma.push(*s as f32);
                class.push(if copy == 0 { self.class } else { NULL_CLASS } as i64);
            }
        }
        let sigma = Tensor::<1>::from_data(TensorData::new(sigma, [n]), &self.device);
        let class = Tensor::<1, Int>::from_data(TensorData::new(class, [n]), &self.device);
        let v = self.net.forward(x, sigma, class);
        if copies == 1 {
            return v;
        }
        let cond = v.clone().slice(0..b);
        let uncond = v.slice(b..n);
        uncond.clone() + (cond - uncond).mul_scalar(self.guidance)
    }
}

impl Model<CpuBackend> for EmojiModel {
    fn evaluate(&self, _core: usize, x: &CpuLatent, t: &Timestep) -> Result<CpuLatent, ModelError> {
        let mut v = self
            .velocities(&[x.as_slice()], &[t.sigma])
            .map_err(|e| ModelError::new(e.to_string()))?;
        v.pop()
            .map(CpuLatent::from)
            .ok_or_else(|| ModelError::new("the emoji model returned nothing"))
    }

    fn evaluate_batch(
        &self,
        requests: &[Request<CpuLatent>],
    ) -> Vec<Result<CpuLatent, ModelError>> {
        let latents: Vec<&[f32]> = requests.iter().map(|r| r.latent.as_slice()).collect();
        let sigmas: Vec<f64> = requests.iter().map(|r| r.timestep.sigma).collect();
        match self.velocities(&latents, &sigmas) {
            Ok(v) => v.into_iter().map(|v| Ok(CpuLatent::from(v))).collect(),
            Err(e) => requests
                .iter()
                .map(|_| Err(ModelError::new(e.to_string())))
                .collect(),
        }
    }

    fn batches(&self) -> bool {
        self.batched
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

/// The CPU device the emoji model runs and trains on: burn-ndarray (about 5 GFLOP/s for
/// its convolutions on 2 cores).
#[allow(
    deprecated,
    reason = "burn 0.22 deprecates ndarray in favour of flex; ndarray is what we measured and ship"
)]
pub fn cpu_device() -> Device {
    Device::ndarray()
}

/// The NVIDIA GPU `index` as a burn-cuda device for the emoji model (the `cuda` feature;
/// the CUDA driver is needed at run time). Latents stay on the host: each round's stacked
/// batch goes up and its velocities come back.
///
/// Without the feature this is an error saying how to build with it.
pub fn cuda_device(index: usize) -> Result<Device, EmojiError> {
    #[cfg(feature = "cuda")]
    return Ok(Device::cuda(index));
    #[cfg(not(feature = "cuda"))]
    Err(EmojiError::Input(format!(
        "CUDA device {index}: this build has no CUDA support; build with `--features cuda` (needs an NVIDIA driver)"
    )))
}
