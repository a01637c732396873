//! The Gaussian-mixture model as WGSL kernels: sampling on a GPU with no CPU work per round
//! beyond scheduling.

use chords::{GaussianMixture, Model, ModelError, Prediction, Timestep};

use crate::backend::{GpuLatent, WgpuBackend};
use crate::error::WgpuError;
use crate::kernels::{grid, word};

/// Elements one `distances` workgroup reduces (256 threads × 8, as in `mixture.wgsl`).
const CHUNK: usize = 256 * 8;

/// [`GaussianMixture`] on the GPU: the means are uploaded once per device, and each call runs
/// the three passes of `mixture.wgsl` on the core's device.
#[derive(Debug)]
pub struct GpuMixture<'a> {
    backend: &'a WgpuBackend,
    means: Vec<crate::buffers::GpuBuffer>,
    components: usize,
    numel: usize,
    s2: f64,
    prediction: Prediction,
}

impl<'a> GpuMixture<'a> {
    /// Uploads `model`'s means to every device of `backend`'s pool.
    pub fn new(backend: &'a WgpuBackend, model: &GaussianMixture) -> Result<Self, WgpuError> {
        let components = model.components();
        if components > 65_535 {
            return Err(WgpuError::Config(format!(
                "the GPU mixture supports at most 65535 components, got {components}"
            )));
        }
        let numel: usize = model.latent_shape().iter().product();
        let means = backend
            .pool()
            .gpus()
            .iter()
            .map(|gpu| gpu.storage_from("mixture means", model.means()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            backend,
            means,
            components,
            numel,
            s2: model.sigma_data().powi(2),
            prediction: model.prediction(),
        })
    }
}

impl Model<WgpuBackend> for GpuMixture<'_> {
    fn evaluate(&self, _core: usize, x: &GpuLatent, t: &Timestep) -> Result<GpuLatent, ModelError> {
        if x.len() != self.numel {
            return Err(ModelError::new(format!(
                "mixture latent has {} elements, the means have {}",
                x.len(),
                self.numel
            )));
        }
        let (a, sigma) = (t.alpha, t.sigma);
        let var = a * a * self.s2 + sigma * sigma;
        if var.is_nan() || var <= 0.0 {
            return Err(ModelError::new(format!(
                "mixture posterior undefined at grid index {} (zero noise and zero data spread)",
                t.index
            )));
        }
        let g = x.gpu_index();
        let gpu = self.backend.gpu(g);
        gpu.guarded(|| {
            let chunks = self.numel.div_ceil(CHUNK).max(1);
            let partials = gpu.storage("mixture partials", self.components * chunks)?;
            let posterior = gpu.storage("mixture posterior", self.components)?;
            let out = gpu.storage("latent", self.numel)?;
            let (gx, gy, row) = grid(self.numel);
            let kind = match self.prediction {
                Prediction::Velocity => 0,
                Prediction::Epsilon => 1,
                Prediction::V => 2,
                Prediction::Sample => 3,
                other => {
                    return Err(ModelError::new(format!(
                        "the wgpu mixture kernel has no {other:?} prediction"
                    )));
                }
            };
            let params = gpu.uniform(&[
                self.numel as u32,
                self.components as u32,
                chunks as u32,
                kind,
                row,
                word(a as f32),
                word(sigma as f32),
                word((-0.5 / var) as f32),
                word((a * self.s2 / var) as f32),
                word((sigma / var) as f32),
                0,
                0,
            ]);
            let pipelines = gpu.mixture_pipelines();
            let bind = gpu.bind(
                &pipelines.layout,
                &[
                    &params,
                    &self.means[g],
                    x.buffer(),
                    &partials,
                    &posterior,
                    &out,
                ],
            );
            gpu.run(&[
                (
                    &pipelines.distances,
                    &bind,
                    (chunks as u32, self.components as u32),
                ),
                (&pipelines.weights, &bind, (1, 1)),
                (&pipelines.combine, &bind, (gx, gy)),
            ]);
            Ok(self.backend.wrap(out, self.numel, g))
        })
    }
}
