//! Training the emoji network with flow matching (DESIGN.md section 2).
//!
//! For a picture `x` and noise `ε`, a noise level σ is drawn from a logit-normal
//! distribution (as SD3 does), `x_σ = (1-σ)·x + σ·ε`, and the network regresses the velocity
//! `ε - x` (mean squared error). The class is replaced by the null class with probability
//! 0.1 so the same network also learns the unconditional velocity that classifier-free
//! guidance needs. Optimiser: Adam. Everything random comes from one seeded generator, so a
//! run resumed from a checkpoint continues exactly.

use std::path::Path;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::{CLASSES, EmojiError, EmojiNet, NULL_CLASS, NUMEL};

/// Pictures and their class indices.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// `len · 3·32·32` values in [-1, 1].
    pub images: Vec<f32>,
    /// Class index of each picture.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Reads `images.npy` (N, 3, 32, 32) and `labels.npy` (N) as written by `chords data`.
    pub fn load(dir: &Path) -> Result<Self, EmojiError> {
        let bad = |e: chords::npy::NpyError| EmojiError::Input(e.to_string());
        let images = chords::npy::read(&dir.join("images.npy")).map_err(bad)?;
        let labels = chords::npy::read(&dir.join("labels.npy")).map_err(bad)?;
        let n = labels.data.len();
        if images.shape != [n, 3, 32, 32] {
            return Err(EmojiError::Input(format!(
                "{}: images have shape {:?}, expected ({n}, 3, 32, 32)",
                dir.display(),
                images.shape
            )));
        }
        let labels: Vec<usize> = labels.data.iter().map(|l| *l as usize).collect();
        if let Some(bad) = labels.iter().find(|l| **l >= CLASSES.len()) {
            return Err(EmojiError::Input(format!(
                "{}: label {bad} is not a class",
                dir.display()
            )));
        }
        Ok(Self {
            images: images.data,
            labels,
        })
    }

    /// Number of pictures.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Splits off every `every`-th picture as a held-out set: `(train, held_out)`.
    pub fn split(&self, every: usize) -> (Self, Self) {
        let (mut train, mut held) = (Self::default(), Self::default());
        for i in 0..self.len() {
            let part = if i % every == every - 1 {
                &mut held
            } else {
                &mut train
            };
            part.images
                .extend_from_slice(&self.images[i * NUMEL..(i + 1) * NUMEL]);
            part.labels.push(self.labels[i]);
        }
        (train, held)
    }

    fn picture(&self, i: usize) -> &[f32] {
        &self.images[i * NUMEL..(i + 1) * NUMEL]
    }
}

/// The run's random numbers; its state is stored in checkpoints.
type Rng = chords::noise::SplitMix64;

fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.uniform() * n as f64) as usize % n.max(1)
}

/// One batch of flow-matching inputs: `(x_σ, σ, class, target velocity)` as host data.
fn batch(
    data: &Dataset,
    indices: &[usize],
    rng: &mut Rng,
    drop_class: f64,
) -> (Vec<f32>, Vec<f32>, Vec<i64>, Vec<f32>) {
    let b = indices.len();
    let noise = chords::noise::gaussian(rng.next_u64(), b * NUMEL);
    let (mut x, mut target, mut sigma, mut class) = (
        Vec::with_capacity(b * NUMEL),
        Vec::with_capacity(b * NUMEL),
        Vec::with_capacity(b),
        Vec::with_capacity(b),
    );
    for (k, &i) in indices.iter().enumerate() {
        // Logit-normal σ: sigmoid of a standard normal (Box–Muller from two uniforms).
        let z = (-2.0 * rng.uniform().ln()).sqrt() * (std::f64::consts::TAU * rng.uniform()).cos();
        let s = (1.0 / (1.0 + (-z).exp())) as f32;
        let eps = &noise[k * NUMEL..(k + 1) * NUMEL];
        for (&d, &e) in data.picture(i).iter().zip(eps) {
            x.push((1.0 - s) * d + s * e);
            target.push(e - d);
        }
        sigma.push(s);
        class.push(if rng.uniform() < drop_class {
            NULL_CLASS as i64
        } else {
            data.labels[i] as i64
        });
    }
    (x, sigma, class, target)
}

/// Training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Pictures per step.
    pub batch: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Probability of training a picture as the null class.
    pub drop_class: f64,
    /// Seed of the run.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch: 32,
            learning_rate: 1e-3,
            drop_class: 0.1,
            seed: 0,
        }
    }
}

/// A training run: network, optimiser state, step count and random state.
pub struct Trainer {
    net: EmojiNet,
    optim: ModuleOptimizer,
    device: Device,
    config: TrainConfig,
    rng: Rng,
    step: usize,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("step", &self.step)
            .field("config", &self.config)
            .finish()
    }
}

impl Trainer {
    /// A fresh run on `device` (with autodiff).
    pub fn new(config: TrainConfig, device: &Device) -> Self {
        let device = device.clone().autodiff();
        // Seeded initial weights: two runs with one seed are the same run.
        device.seed(config.seed);
        Self {
            net: EmojiNet::new(CLASSES.len(), &device),
            optim: AdamConfig::new().init(),
            rng: Rng::new(config.seed),
            config,
            device,
            step: 0,
        }
    }

    /// Resumes from a checkpoint directory written by [`save`](Self::save).
    pub fn resume(config: TrainConfig, device: &Device, dir: &Path) -> Result<Self, EmojiError> {
        let bad = |what: &str, e: String| EmojiError::Weights {
            source_name: dir.join(what).display().to_string(),
            reason: e,
        };
        let mut trainer = Self::new(config, device);
        let record = ModuleRecord::load(dir.join("model.bpk"))
            .map_err(|e| bad("model.bpk", e.to_string()))?;
        trainer.net = trainer
            .net
            .try_load_record(record)
            .map_err(|e| bad("model.bpk", e.to_string()))?;
        let optim = burn::optim::OptimizerRecord::load(dir.join("optim.bpk"))
            .map_err(|e| bad("optim.bpk", e.to_string()))?;
        trainer.optim = AdamConfig::new().init().load_record(optim);
        let state = std::fs::read_to_string(dir.join("state.txt"))
            .map_err(|e| bad("state.txt", e.to_string()))?;
        let mut fields = state.split_whitespace().map(str::parse::<u64>);
        match (fields.next(), fields.next()) {
            (Some(Ok(step)), Some(Ok(rng))) => {
                trainer.step = step as usize;
                trainer.rng = Rng::new(rng);
            }
            _ => return Err(bad("state.txt", "expected `step rng-state`".into())),
        }
        Ok(trainer)
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// One optimiser step on a random batch; returns the batch loss.
    pub fn step(&mut self, data: &Dataset) -> Result<f32, EmojiError> {
        if data.is_empty() {
            return Err(EmojiError::Input("the training set is empty".into()));
        }
        let indices: Vec<usize> = (0..self.config.batch)
            .map(|_| below(&mut self.rng, data.len()))
            .collect();
        let loss = self.loss(data, &indices, None)?;
        let grads = loss.backward();
        let value = scalar(loss)?;
        let grads = GradientsParams::from_grads(grads, &self.net);
        // Cloning a module shares its tensors; the optimiser returns the updated module.
        self.net = self
            .optim
            .step(self.config.learning_rate, self.net.clone(), grads);
        self.step += 1;
        Ok(value)
    }

    /// The loss over the whole held-out set, with fixed noise (comparable between steps).
    pub fn held_out_loss(&self, data: &Dataset) -> Result<f32, EmojiError> {
        let mut total = 0.0;
        let mut rng = Rng::new(0x5EED);
        let all: Vec<usize> = (0..data.len()).collect();
        for chunk in all.chunks(64) {
            let loss = self.loss(data, chunk, Some(&mut rng))?;
            total += scalar(loss)? * chunk.len() as f32;
        }
        Ok(total / data.len().max(1) as f32)
    }

    fn loss(
        &self,
        data: &Dataset,
        indices: &[usize],
        rng: Option<&mut Rng>,
    ) -> Result<Tensor<1>, EmojiError> {
        let mut own = self.rng.clone();
        let (rng, drop) = match rng {
            Some(r) => (r, 0.0),
            None => (&mut own, self.config.drop_class),
        };
        let (x, sigma, class, target) = batch(data, indices, rng, drop);
        let b = indices.len();
        let x = Tensor::<4>::from_data(TensorData::new(x, [b, 3, 32, 32]), &self.device);
        let sigma = Tensor::<1>::from_data(TensorData::new(sigma, [b]), &self.device);
        let class = Tensor::<1, Int>::from_data(TensorData::new(class, [b]), &self.device);
        let target = Tensor::<4>::from_data(TensorData::new(target, [b, 3, 32, 32]), &self.device);
        let v = self.net.forward(x, sigma, class);
        Ok((v - target).powi_scalar(2).mean())
    }

    /// Writes `model.bpk`, `optim.bpk` and `state.txt` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), EmojiError> {
        let bad = |e: String| EmojiError::Weights {
            source_name: dir.display().to_string(),
            reason: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
        self.net
            .clone()
            .into_record()
            .save(dir.join("model.bpk"))
            .map_err(|e| bad(e.to_string()))?;
        self.optim
            .to_record()
            .save(dir.join("optim.bpk"))
            .map_err(|e| bad(e.to_string()))?;
        std::fs::write(
            dir.join("state.txt"),
            format!("{} {}\n", self.step, self.rng.state()),
        )
        .map_err(|e| bad(e.to_string()))
    }

    /// The trained network, moved off the autodiff device (for sampling).
    pub fn net(&self) -> EmojiNet {
        self.net.valid()
    }
}

fn scalar(t: Tensor<1>) -> Result<f32, EmojiError> {
    t.into_data()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .ok_or_else(|| EmojiError::Input("empty loss".into()))
}
