//! The network a user brings ([`Network`]) and the adapter's options around it
//! ([`BurnModel`]): shape, device, batching, guidance, time input.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use chords::Timestep;

use crate::BurnError;

/// A burn network chords can sample: a batch of latents `x` of shape `[batch, …latent]`,
/// their time inputs `time` (`[batch]`) and, for a conditional network, class labels
/// (`[batch]`) → the model output, the shape of `x` (a velocity, ε, v or x₀: whatever the
/// solver is told the model predicts).
///
/// `D` is the rank of the batch: 4 for `[batch, channels, height, width]`.
pub trait Network<const D: usize>: Module + Sync {
    /// The model output for the batch. `labels` is `None` for a [`BurnModel`] without
    /// [`Guidance`]; with guidance it holds the class for the conditional half and the null
    /// class for the unconditional half.
    fn forward(&self, x: Tensor<D>, time: Tensor<1>, labels: Option<Tensor<1, Int>>) -> Tensor<D>;
}

/// Which number of a [`Timestep`] the network sees as its time input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TimeInput {
    /// [`Timestep::t`]: the model's own time input (diffusers' `timestep`; σ on chords's
    /// own flow grid).
    #[default]
    T,
    /// [`Timestep::sigma`]: the noise level.
    Sigma,
}

impl TimeInput {
    /// The input for `t`.
    fn of(self, t: &Timestep) -> f32 {
        match self {
            Self::T => t.t as f32,
            Self::Sigma => t.sigma as f32,
        }
    }
}

/// Classifier-free guidance: the network runs on a conditional half (`label`) and an
/// unconditional half (`null_label`) of one batch, and the output is
/// `uncond + scale · (cond − uncond)`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Guidance {
    /// The class asked for.
    pub label: i64,
    /// The class the network was trained to treat as "no condition".
    pub null_label: i64,
    /// 1 is the plain conditional output (then no unconditional half runs), 0 the
    /// unconditional one.
    pub scale: f32,
}

impl Guidance {
    /// Guidance towards `label`, with `null_label` for the unconditional half.
    pub fn new(label: i64, null_label: i64, scale: f32) -> Result<Self, BurnError> {
        if !scale.is_finite() {
            return Err(BurnError::Input(format!(
                "guidance must be finite, got {scale}"
            )));
        }
        Ok(Self {
            label,
            null_label,
            scale,
        })
    }

    /// 2 when an unconditional half runs, else 1.
    fn copies(&self) -> usize {
        if self.scale != 1.0 { 2 } else { 1 }
    }
}

/// A [`Network`] on a burn device with what chords needs to call it: the latent's shape and
/// the adapter's options. A [`chords::Model`] of the CPU backend; with the `wgpu` feature,
/// [`WgpuBurnModel`](crate::WgpuBurnModel) puts it on a device pool.
#[derive(Debug, Clone)]
pub struct BurnModel<N, const D: usize> {
    pub(crate) net: N,
    pub(crate) device: Device,
    /// One latent's shape (rank `D − 1`).
    pub(crate) shape: Vec<usize>,
    pub(crate) guidance: Option<Guidance>,
    pub(crate) time: TimeInput,
    pub(crate) batched: bool,
}

impl<N: Network<D>, const D: usize> BurnModel<N, D> {
    /// `net` on `device`, taking latents of `shape` (`D − 1` dimensions, e.g. `[3, 32, 32]`
    /// for `D = 4`). Batching on, no guidance, time input [`TimeInput::T`].
    pub fn new(net: N, shape: &[usize], device: &Device) -> Result<Self, BurnError> {
        if shape.len() + 1 != D || shape.contains(&0) {
            return Err(BurnError::Input(format!(
                "a network of rank {D} takes latents of {} non-zero dimensions, got {shape:?}",
                D.saturating_sub(1)
            )));
        }
        Ok(Self {
            net: net.to_device(device),
            device: device.clone(),
            shape: shape.to_vec(),
            guidance: None,
            time: TimeInput::default(),
            batched: true,
        })
    }

    /// With classifier-free guidance (or, `None`, without).
    #[must_use]
    pub fn with_guidance(mut self, guidance: Option<Guidance>) -> Self {
        self.guidance = guidance;
        self
    }

    /// With the network seeing `time` as its time input.
    #[must_use]
    pub fn with_time_input(mut self, time: TimeInput) -> Self {
        self.time = time;
        self
    }

    /// Whether a round's calls run as one stacked forward pass (default) or one pass each.
    #[must_use]
    pub fn with_batching(mut self, batched: bool) -> Self {
        self.batched = batched;
        self
    }

    /// The same model on another burn device.
    #[must_use]
    pub fn to_device(self, device: &Device) -> Self {
        Self {
            net: self.net.to_device(device),
            device: device.clone(),
            ..self
        }
    }

    /// The network.
    pub fn net(&self) -> &N {
        &self.net
    }

    /// The burn device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The guidance, if any.
    pub fn guidance(&self) -> Option<Guidance> {
        self.guidance
    }

    /// Elements of one latent.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Copies of each latent one forward pass takes: 2 with guidance at a scale other than
    /// 1 (conditional and unconditional halves), else 1.
    pub fn copies(&self) -> usize {
        self.guidance.map_or(1, |g| g.copies())
    }

    /// Whether a round's calls run as one forward pass.
    pub fn batches(&self) -> bool {
        self.batched
    }

    /// The batch shape for `n` latents.
    pub(crate) fn dims(&self, n: usize) -> [usize; D] {
        let mut dims = [n; D];
        dims[1..].copy_from_slice(&self.shape);
        dims
    }

    /// The model output for `b = times.len()` latents, given `x` holding
    /// [`copies`](Self::copies) stacked copies of them on this model's device: the
    /// network's output, guided.
    pub(crate) fn guided(&self, x: Tensor<D>, times: &[Timestep]) -> Tensor<D> {
        let (b, copies) = (times.len(), self.copies());
        let n = copies * b;
        let time: Vec<f32> = (0..copies)
            .flat_map(|_| times.iter().map(|t| self.time.of(t)))
            .collect();
        let time = Tensor::<1>::from_data(TensorData::new(time, [n]), &self.device);
        let Some(guidance) = self.guidance else {
            return self.net.forward(x, time, None);
        };
        let labels: Vec<i64> = (0..copies)
            .flat_map(|copy| {
                let label = if copy == 0 {
                    guidance.label
                } else {
                    guidance.null_label
                };
                std::iter::repeat_n(label, b)
            })
            .collect();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &self.device);
        let v = self.net.forward(x, time, Some(labels));
        if copies == 1 {
            return v;
        }
        let cond = v.clone().slice(0..b);
        let uncond = v.slice(b..n);
        uncond.clone() + (cond - uncond).mul_scalar(guidance.scale)
    }
}
