//! Training the emoji network with flow matching (DESIGN.md section 2).
//!
//! For a picture `x` and noise `ε`, a noise level σ is drawn from a logit-normal
//! distribution (as SD3 does), `x_σ = (1-σ)·x + σ·ε`, and the network regresses the velocity
//! `ε - x` (mean squared error). The condition (an emoji in a style) is replaced by the null
//! condition with probability 0.1 so the same network also learns the unconditional velocity
//! that classifier-free guidance needs. A fresh run starts each condition's code at the 8×8
//! thumbnail of its picture ([`Trainer::start_codes`]). Optimiser: Adam, with an optional cosine decay of the learning rate
//! ([`LrDecay`]). The trainer also keeps an exponential moving average of the weights
//! ([`TrainConfig::ema`]): sampling from the average is steadier than from the last step's
//! weights, which wander with the optimiser's noise. Everything random comes from one seeded
//! generator, so a run resumed from a checkpoint continues exactly. A step can run on several
//! threads ([`TrainConfig::threads`]), each taking the gradient of a part of the batch.

use std::collections::VecDeque;
use std::ops::Range;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor, TensorData};

pub use crate::dataset::Dataset;
use crate::{EmojiError, EmojiNet, NUMEL, conditions, null_condition};

/// The run's random numbers; its state is stored in checkpoints.
type Rng = chords::noise::SplitMix64;

fn below(rng: &mut Rng, n: usize) -> usize {
    (rng.uniform() * n as f64) as usize % n.max(1)
}

/// What a batch is for.
#[derive(Debug, Clone, Copy)]
enum Draw {
    /// A training step: the condition is dropped with this probability.
    Training { drop_condition: f64 },
    /// The evaluation loss: every picture with its condition.
    Evaluation,
}

/// One batch of flow-matching inputs, as host data.
#[derive(Debug, Clone, Default)]
struct Batch {
    /// The noisy pictures `x_σ`, `len · 3·32·32` values.
    x: Vec<f32>,
    /// The noise level of each picture.
    sigma: Vec<f32>,
    /// The condition of each picture (the null condition where dropped).
    condition: Vec<i64>,
    /// The velocity to regress, `ε - x`.
    target: Vec<f32>,
}

impl Batch {
    fn len(&self) -> usize {
        self.sigma.len()
    }

    /// Pictures `range` of the batch.
    fn part(&self, range: Range<usize>) -> Batch {
        let values = range.start * NUMEL..range.end * NUMEL;
        Batch {
            x: self.x[values.clone()].to_vec(),
            sigma: self.sigma[range.clone()].to_vec(),
            condition: self.condition[range].to_vec(),
            target: self.target[values].to_vec(),
        }
    }

    /// The squared error of `net`'s velocities summed over the batch and divided by
    /// `denominator` (the number of values in the whole batch, for its mean).
    fn loss(self, net: &EmojiNet, device: &Device, denominator: usize) -> Tensor<1> {
        let b = self.len();
        let x = Tensor::<4>::from_data(TensorData::new(self.x, [b, 3, 32, 32]), device);
        let sigma = Tensor::<1>::from_data(TensorData::new(self.sigma, [b]), device);
        let condition = Tensor::<1, Int>::from_data(TensorData::new(self.condition, [b]), device);
        let target = Tensor::<4>::from_data(TensorData::new(self.target, [b, 3, 32, 32]), device);
        let v = net.forward(x, sigma, condition);
        (v - target)
            .powi_scalar(2)
            .sum()
            .div_scalar(denominator as f32)
    }
}

/// Draws the flow-matching inputs of the pictures `indices`.
fn batch(data: &Dataset, indices: &[usize], rng: &mut Rng, draw: Draw) -> Batch {
    let drop_condition = match draw {
        Draw::Training { drop_condition } => drop_condition,
        Draw::Evaluation => 0.0,
    };
    let b = indices.len();
    let noise = chords::noise::gaussian(rng.next_u64(), b * NUMEL);
    let mut batch = Batch {
        x: Vec::with_capacity(b * NUMEL),
        target: Vec::with_capacity(b * NUMEL),
        sigma: Vec::with_capacity(b),
        condition: Vec::with_capacity(b),
    };
    for (k, &i) in indices.iter().enumerate() {
        // Logit-normal σ: sigmoid of a standard normal (Box–Muller from two uniforms).
        let z = (-2.0 * rng.uniform().ln()).sqrt() * (std::f64::consts::TAU * rng.uniform()).cos();
        let s = (1.0 / (1.0 + (-z).exp())) as f32;
        let eps = &noise[k * NUMEL..(k + 1) * NUMEL];
        for (&d, &e) in data.picture(i).iter().zip(eps) {
            batch.x.push((1.0 - s) * d + s * e);
            batch.target.push(e - d);
        }
        batch.sigma.push(s);
        batch.condition.push(if rng.uniform() < drop_condition {
            null_condition() as i64
        } else {
            data.labels[i] as i64
        });
    }
    batch
}

/// Training settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TrainConfig {
    /// Pictures per step.
    pub batch: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Probability of training a picture with the null condition.
    pub drop_condition: f64,
    /// Seed of the run.
    pub seed: u64,
    /// Decay of the learning rate; `None` keeps it constant.
    pub decay: Option<LrDecay>,
    /// Weight of the old average in the moving average of the weights, per step
    /// (0.999 averages over about the last thousand steps; 0 keeps the last step's weights).
    pub ema: f64,
    /// Threads a step runs on: the batch is cut into this many parts, whose gradients are
    /// computed at once, each on its own thread, and summed (burn-ndarray runs most of a
    /// training step on one core). The sum is the batch's gradient up to rounding.
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch: 32,
            learning_rate: 1e-3,
            drop_condition: 0.1,
            seed: 0,
            decay: None,
            ema: 0.999,
            threads: 1,
        }
    }
}

/// A learning rate constant until step `from`, then falling along a half cosine to `min` at
/// step `to`, and `min` after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrDecay {
    /// Last step at the full learning rate.
    pub from: usize,
    /// Step where the decay reaches `min`.
    pub to: usize,
    /// The final learning rate.
    pub min: f64,
}

impl TrainConfig {
    /// The learning rate of the step taken from `step` steps.
    ///
    /// ```
    /// use chords_emoji::train::{LrDecay, TrainConfig};
    /// let mut config = TrainConfig::default();
    /// config.learning_rate = 2e-3;
    /// config.decay = Some(LrDecay { from: 100, to: 300, min: 0.0 });
    /// assert_eq!(config.learning_rate_at(50), 2e-3);
    /// assert!((config.learning_rate_at(200) - 1e-3).abs() < 1e-12);
    /// assert_eq!(config.learning_rate_at(400), 0.0);
    /// ```
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        match self.decay {
            Some(d) if step > d.from => {
                let span = d.to.saturating_sub(d.from).max(1);
                let t = ((step - d.from) as f64 / span as f64).min(1.0);
                d.min
                    + (self.learning_rate - d.min) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            _ => self.learning_rate,
        }
    }
}

/// The float parameters of a module, flattened, in visiting order.
struct Flatten(VecDeque<Tensor<1>>);

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let n = value.shape().num_elements();
        self.0.push_back(value.reshape([n]));
    }
}

/// `average ← decay·average + (1-decay)·live`, parameter by parameter, in visiting order
/// (both modules are the same network, so the orders agree).
struct Blend {
    live: VecDeque<Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(live) = self.live.pop_front() else {
            return param;
        };
        let decay = self.decay;
        param.map(|average| {
            let shape = average.shape();
            average.mul_scalar(decay) + live.reshape(shape).mul_scalar(1.0 - decay)
        })
    }
}

/// `average` moved `1-decay` of the way towards `live`.
fn blend(average: EmojiNet, live: &EmojiNet, decay: f64) -> EmojiNet {
    let mut flat = Flatten(VecDeque::new());
    live.visit(&mut flat);
    average.map(&mut Blend {
        live: flat.0,
        decay,
    })
}

/// A training run: network, optimiser state, step count and random state.
pub struct Trainer {
    net: EmojiNet,
    /// Moving average of `net`'s weights, on the plain (non-autodiff) device.
    average: EmojiNet,
    optim: ModuleOptimizer,
    /// The autodiff device training runs on.
    device: Device,
    /// The plain device the average and the held-out loss live on.
    plain: Device,
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
        let plain = device.clone();
        let device = device.clone().autodiff();
        // Seeded initial weights: two runs with one seed are the same run.
        device.seed(config.seed);
        let net = EmojiNet::new(conditions(), &device);
        Self {
            average: net.valid(),
            net,
            optim: AdamConfig::new().init(),
            rng: Rng::new(config.seed),
            config,
            device,
            plain,
            step: 0,
        }
    }

    /// A fresh run (step 0, new optimiser state) whose weights, and their average, start
    /// from burnpack `bytes` (e.g. the shipped weights) instead of random ones: fine-tuning.
    ///
    /// The weights may lack some of the network's blocks (weights of an earlier, smaller
    /// version of it): those start fresh, as the identity (see [`EmojiNet`]). They may also
    /// hold tensors this network no longer has (the category embedding of the network before
    /// codes): those are left out. A warning says how many of the network's tensors came from
    /// `bytes`; weights that hold none of them are refused, and so is a tensor of another shape.
    pub fn from_weights(
        config: TrainConfig,
        device: &Device,
        bytes: Vec<u8>,
        source_name: &str,
    ) -> Result<Self, EmojiError> {
        let bad = |reason: String| EmojiError::Weights {
            source_name: source_name.into(),
            reason,
        };
        let mut trainer = Self::new(config, device);
        let record = crate::record_from_bytes(bytes, source_name)?;
        if record.is_empty() {
            return Err(bad("holds no tensors".into()));
        }
        let fresh = tensors(&trainer.net);
        trainer.net = trainer
            .net
            .try_load_record(record.allow_partial(true).allow_unused(true))
            .map_err(|e| bad(e.to_string()))?;
        let loaded = tensors(&trainer.net);
        let landed = fresh.iter().zip(&loaded).filter(|(a, b)| a != b).count();
        if landed == 0 {
            return Err(bad("holds none of the emoji network's tensors".into()));
        }
        if landed < fresh.len() {
            tracing::warn!(
                "{source_name} set {landed} of the network's {} tensors; the others start fresh",
                fresh.len()
            );
        }
        trainer.average = trainer.net.valid();
        Ok(trainer)
    }

    /// Starts each condition's code at the thumbnail of its picture in `data` (zero for the
    /// null condition and for conditions without a picture), in the network and its average:
    /// the network begins knowing roughly what each condition looks like.
    pub fn start_codes(&mut self, data: &Dataset) -> Result<(), EmojiError> {
        let codes = data.thumbnails(self.net.conditions() + 1);
        self.net = self.net.clone().with_codes(&codes)?;
        self.average = self.net.valid();
        Ok(())
    }

    /// Resumes from a checkpoint directory written by [`save`](Self::save).
    pub fn resume(config: TrainConfig, device: &Device, dir: &Path) -> Result<Self, EmojiError> {
        let bad = |what: &str, e: String| EmojiError::Weights {
            source_name: dir.join(what).display().to_string(),
            reason: e,
        };
        // burn reads the record files itself: check first that each is a regular file of a
        // bounded size, so a device or a pipe in their place is refused, not read forever.
        for file in ["model.bpk", "average.bpk", "optim.bpk"] {
            let path = dir.join(file);
            if file != "average.bpk" || path.exists() {
                chords::read::open_regular(&path, crate::MAX_WEIGHTS_BYTES)
                    .map_err(|e| bad(file, e.reason))?;
            }
        }
        let mut trainer = Self::new(config, device);
        let record = ModuleRecord::load(dir.join("model.bpk"))
            .map_err(|e| bad("model.bpk", e.to_string()))?;
        trainer.net = trainer
            .net
            .try_load_record(record)
            .map_err(|e| bad("model.bpk", e.to_string()))?;
        // A checkpoint from before the moving average existed starts it at its weights.
        let average = dir.join("average.bpk");
        trainer.average = if average.exists() {
            let record =
                ModuleRecord::load(&average).map_err(|e| bad("average.bpk", e.to_string()))?;
            trainer
                .net
                .valid()
                .try_load_record(record)
                .map_err(|e| bad("average.bpk", e.to_string()))?
        } else {
            tracing::info!(
                "{} has no average.bpk: the average starts here",
                dir.display()
            );
            trainer.net.valid()
        };
        let optim = burn::optim::OptimizerRecord::load(dir.join("optim.bpk"))
            .map_err(|e| bad("optim.bpk", e.to_string()))?;
        trainer.optim = AdamConfig::new().init().load_record(optim);
        let state = chords::read::read_text(&dir.join("state.txt"), 4096)
            .map_err(|e| bad("state.txt", e.reason))?;
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

    /// The learning rate of the next step.
    pub fn learning_rate(&self) -> f64 {
        self.config.learning_rate_at(self.step)
    }

    /// One optimiser step on a random batch; returns the batch loss.
    pub fn step(&mut self, data: &Dataset) -> Result<f32, EmojiError> {
        if data.is_empty() {
            return Err(EmojiError::Input("the training set is empty".into()));
        }
        let indices: Vec<usize> = (0..self.config.batch)
            .map(|_| below(&mut self.rng, data.len()))
            .collect();
        let mut rng = self.rng.clone();
        let batch = batch(
            data,
            &indices,
            &mut rng,
            Draw::Training {
                drop_condition: self.config.drop_condition,
            },
        );
        let (value, grads) = self.gradients(&batch)?;
        // Cloning a module shares its tensors; the optimiser returns the updated module.
        let rate = self.config.learning_rate_at(self.step);
        self.net = self.optim.step(rate, self.net.clone(), grads);
        if self.config.ema > 0.0 {
            self.average = blend(self.average.clone(), &self.net.valid(), self.config.ema);
        }
        self.step += 1;
        Ok(value)
    }

    /// The loss of `batch` and its gradient, the batch cut into [`TrainConfig::threads`]
    /// parts computed on as many threads, each on its own copy of the network's autodiff
    /// graph (a fork: same parameters, same ids, separate tape).
    fn gradients(&self, batch: &Batch) -> Result<(f32, GradientsParams), EmojiError> {
        let denominator = batch.len() * NUMEL;
        let size = batch.len().div_ceil(self.config.threads.max(1)).max(1);
        let parts: Vec<Result<(f32, GradientsParams), EmojiError>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..batch.len())
                .step_by(size)
                .map(|start| {
                    let part = batch.part(start..(start + size).min(batch.len()));
                    let net = self.net.clone().fork(&self.device);
                    let device = &self.device;
                    s.spawn(move || {
                        let loss = part.loss(&net, device, denominator);
                        let grads = GradientsParams::from_grads(loss.backward(), &net);
                        Ok((scalar(loss)?, grads))
                    })
                })
                .collect();
            workers.into_iter().map(join_worker).collect()
        });
        let mut sum = GradientsAccumulator::<EmojiNet>::new();
        let mut value = 0.0;
        for part in parts {
            let (loss, grads) = part?;
            value += loss;
            sum.accumulate(&self.net, grads);
        }
        Ok((value, sum.grads()))
    }

    /// The loss of the last step's weights over all of `data`, with fixed noise
    /// (comparable between steps).
    pub fn evaluation_loss(&self, data: &Dataset) -> Result<f32, EmojiError> {
        evaluation_loss(&self.net.valid(), &self.plain, data)
    }

    /// The same for the moving average of the weights.
    pub fn averaged_evaluation_loss(&self, data: &Dataset) -> Result<f32, EmojiError> {
        evaluation_loss(&self.average, &self.plain, data)
    }

    /// Writes `model.bpk`, `average.bpk`, `optim.bpk` and `state.txt` into `dir`.
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
        self.average
            .clone()
            .into_record()
            .save(dir.join("average.bpk"))
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

    /// The last step's weights, moved off the autodiff device (for sampling).
    pub fn net(&self) -> EmojiNet {
        self.net.valid()
    }

    /// The moving average of the weights (the last step's weights when
    /// [`TrainConfig::ema`] is 0): the network to ship.
    pub fn averaged_net(&self) -> EmojiNet {
        if self.config.ema > 0.0 {
            self.average.clone()
        } else {
            self.net()
        }
    }
}

/// The mean loss of `net` over all of `data`, with fixed noise and no condition dropped.
fn evaluation_loss(net: &EmojiNet, device: &Device, data: &Dataset) -> Result<f32, EmojiError> {
    let mut total = 0.0;
    let mut rng = Rng::new(0x5EED);
    let all: Vec<usize> = (0..data.len()).collect();
    for chunk in all.chunks(64) {
        let batch = batch(data, chunk, &mut rng, Draw::Evaluation);
        total += scalar(batch.loss(net, device, chunk.len() * NUMEL))? * chunk.len() as f32;
    }
    Ok(total / data.len().max(1) as f32)
}

fn scalar(t: Tensor<1>) -> Result<f32, EmojiError> {
    t.into_data()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .ok_or_else(|| EmojiError::Input("empty loss".into()))
}

/// Each float parameter's values, in visiting order.
fn tensors<M: Module>(module: &M) -> Vec<Vec<f32>> {
    let mut flat = Flatten(VecDeque::new());
    module.visit(&mut flat);
    flat.0
        .into_iter()
        .map(|t| t.into_data().try_to_vec::<f32>().unwrap_or_default())
        .collect()
}

/// A worker's result, its panic turned into [`EmojiError::Worker`].
fn join_worker<T>(
    worker: std::thread::ScopedJoinHandle<'_, Result<T, EmojiError>>,
) -> Result<T, EmojiError> {
    worker.join().unwrap_or_else(|payload| {
        Err(EmojiError::Worker(
            chords::panic_message(payload.as_ref()).to_owned(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_panics_is_an_error_with_its_message() {
        let joined: Vec<Result<u8, EmojiError>> = std::thread::scope(|s| {
            let workers = vec![
                s.spawn(|| Ok(1)),
                s.spawn(|| -> Result<u8, EmojiError> { panic!("shape mismatch") }),
            ];
            workers.into_iter().map(join_worker).collect()
        });
        assert_eq!(joined[0].as_ref().ok(), Some(&1));
        let e = joined[1].as_ref().unwrap_err();
        assert_eq!(e.to_string(), "a training thread failed: shape mismatch");
    }

    fn flat(net: &EmojiNet) -> Vec<f32> {
        tensors(net).concat()
    }

    /// Eight pictures of noise from `seed`, with the first `conditions` conditions in turn.
    fn noise_pictures(seed: u64, conditions: usize) -> Dataset {
        Dataset {
            images: chords::noise::gaussian(seed, 8 * NUMEL),
            labels: (0..8).map(|i| i % conditions).collect(),
        }
    }

    #[test]
    fn one_step_moves_the_average_by_one_minus_the_decay() {
        let data = noise_pictures(3, 2);
        let config = TrainConfig {
            batch: 4,
            ema: 0.25,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(config, &crate::cpu_device());
        // A first step: the zero-initialised ends of the residual branches hold back the
        // gradients of the layers before them until they have moved.
        trainer.step(&data).unwrap();
        let before = flat(&trainer.net());
        let average_before = flat(&trainer.averaged_net());
        trainer.step(&data).unwrap();
        let after = flat(&trainer.net());
        let average = flat(&trainer.averaged_net());
        assert_eq!(average.len(), before.len());
        assert!(before.len() > 100_000, "every weight is averaged");
        let mut moved = 0;
        for (((a, b), m0), m) in before.iter().zip(&after).zip(&average_before).zip(&average) {
            assert!(
                (m - (0.25 * m0 + 0.75 * b)).abs() <= 1e-6 * (1.0 + m0.abs()),
                "{m} vs {m0}, {b}"
            );
            moved += usize::from(a != b);
        }
        // The code table's rows of conditions not in the batch get no gradient and stay.
        let codes = (conditions() + 1) * crate::CODE_LEN;
        assert!(
            moved > (before.len() - codes) / 2,
            "the step changed the weights"
        );
    }

    /// The gradient of each parameter, flattened, in visiting order.
    struct GradientValues<'a>(&'a GradientsParams, Vec<f32>);

    impl ModuleVisitor for GradientValues<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.0.get::<D>(param.id) {
                self.1.extend(grad.into_data().try_to_vec::<f32>().unwrap());
            }
        }
    }

    /// A batch cut into uneven parts on three threads has the loss and gradient of the batch
    /// computed whole.
    #[test]
    fn threads_sum_to_the_gradient_of_the_whole_batch() {
        let data = noise_pictures(4, 3);
        let config = TrainConfig {
            batch: 5,
            ..TrainConfig::default()
        };
        let mut trainer = Trainer::new(config, &crate::cpu_device());
        // One step first, so that gradients reach the layers before the zero-initialised ones.
        trainer.step(&data).unwrap();
        let batch = batch(&data, &[0, 3, 5, 6, 7], &mut Rng::new(9), Draw::Evaluation);
        let gradients = |trainer: &Trainer| {
            let (loss, grads) = trainer.gradients(&batch).unwrap();
            let mut values = GradientValues(&grads, Vec::new());
            trainer.net.visit(&mut values);
            (loss, values.1)
        };
        let (loss, whole) = gradients(&trainer);
        trainer.config.threads = 3; // parts of 2, 2 and 1 pictures
        let (split_loss, split) = gradients(&trainer);
        assert!(
            (loss - split_loss).abs() <= 1e-6 * loss,
            "{loss} vs {split_loss}"
        );
        assert!(loss > 0.1, "{loss}");
        assert_eq!(whole.len(), split.len());
        assert!(whole.len() > 100_000, "every parameter has a gradient");
        let largest = whole.iter().fold(0f32, |m, g| m.max(g.abs()));
        assert!(largest > 1e-4, "the gradient is not zero: {largest}");
        for (a, b) in whole.iter().zip(&split) {
            assert!((a - b).abs() <= 1e-6 + 1e-4 * a.abs(), "{a} vs {b}");
        }
    }

    #[test]
    fn without_averaging_the_last_weights_ship() {
        let config = TrainConfig {
            ema: 0.0,
            ..TrainConfig::default()
        };
        let trainer = Trainer::new(config, &crate::cpu_device());
        assert_eq!(flat(&trainer.averaged_net()), flat(&trainer.net()));
    }

    #[test]
    fn a_run_from_weights_starts_at_them() {
        let device = crate::cpu_device();
        let source = TrainConfig {
            seed: 7,
            ..TrainConfig::default()
        };
        let source = Trainer::new(source, &device).net();
        let weights = flat(&source);
        let bytes = crate::to_bytes(source).unwrap();
        let fresh = Trainer::new(TrainConfig::default(), &device);
        assert_ne!(flat(&fresh.net()), weights, "the seeds give other weights");
        let trainer =
            Trainer::from_weights(TrainConfig::default(), &device, bytes, "test").unwrap();
        assert_eq!(trainer.steps(), 0);
        assert_eq!(flat(&trainer.net()), weights);
        assert_eq!(flat(&trainer.averaged_net()), weights);
        let err = Trainer::from_weights(TrainConfig::default(), &device, vec![1, 2, 3], "bad.bpk")
            .unwrap_err();
        assert!(err.to_string().contains("bad.bpk"), "{err}");
    }

    /// Weights without the codes, the middle attention, the second middle block and the
    /// coarse level (those of the network before they were added) load, and the network
    /// computes what the source network computed; weights of another module are refused.
    #[test]
    fn weights_lacking_the_grown_blocks_start_as_the_network_they_came_from() {
        use burn::module::ParamGroup;
        use burn::tensor::Distribution;
        let device = crate::cpu_device();
        let source = Trainer::new(
            TrainConfig {
                seed: 7,
                ..TrainConfig::default()
            },
            &device,
        )
        .net();
        let velocity = |net: &EmojiNet| {
            device.seed(3);
            let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Default, &device);
            let sigma = Tensor::<1>::from_floats([0.3, 0.9], &device);
            let condition = Tensor::<1, Int>::from_ints([0, 4], &device);
            net.forward(x, sigma, condition)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let expected = velocity(&source);
        let older = ParamGroup::from_any_regexes(vec![
            r"^(sigma_in|sigma_out|conv_in|down1|pool1|down2|pool2|middle|up2|up1|norm_out|conv_out)\.",
        ])
        .unwrap();
        let record = source.into_record_group(older);
        let held = record.len();
        let bytes = record.into_bytes().unwrap().to_vec();
        let trainer =
            Trainer::from_weights(TrainConfig::default(), &device, bytes, "older.bpk").unwrap();
        assert!(
            held < trainer.net().into_record().len(),
            "the group left tensors out"
        );
        assert_eq!(velocity(&trainer.net()), expected);
        assert_ne!(
            velocity(&Trainer::new(TrainConfig::default(), &device).net()),
            expected,
            "a fresh network computes something else"
        );

        let other = burn::nn::LinearConfig::new(4, 4).init(&device);
        let bytes = other.into_record().into_bytes().unwrap().to_vec();
        let err =
            Trainer::from_weights(TrainConfig::default(), &device, bytes, "other.bpk").unwrap_err();
        assert!(err.to_string().contains("other.bpk"), "{err}");
    }

    /// Weights of the network before codes, with its category embedding (`class`), load:
    /// the embedding is left out and the rest lands.
    #[test]
    fn weights_of_the_category_network_load_without_their_embedding() {
        use burn::nn::{Embedding, EmbeddingConfig};
        #[derive(Module, Debug)]
        struct CategoryNet {
            class: Embedding,
            conv_in: burn::nn::conv::Conv2d,
        }
        let device = crate::cpu_device();
        let old = CategoryNet {
            class: EmbeddingConfig::new(10, 128).init(&device),
            conv_in: burn::nn::conv::Conv2dConfig::new([3, 16], [3, 3]).init(&device),
        };
        let conv_in = tensors(&old.conv_in);
        let bytes = old.into_record().into_bytes().unwrap().to_vec();
        let trainer =
            Trainer::from_weights(TrainConfig::default(), &device, bytes, "category.bpk").unwrap();
        let net = trainer.net();
        let all = tensors(&net);
        assert!(conv_in.iter().all(|t| all.contains(t)), "conv_in landed");
    }

    #[test]
    fn a_fresh_run_starts_each_code_at_its_thumbnail() {
        let mut data = noise_pictures(6, 8);
        data.labels = vec![3, 0, 5, 1, 2, 6, 4, 7];
        let mut trainer = Trainer::new(TrainConfig::default(), &crate::cpu_device());
        trainer.start_codes(&data).unwrap();
        let expected = data.thumbnails(trainer.net().conditions() + 1);
        let codes = |net: &EmojiNet| net.codes().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(codes(&trainer.net()), expected);
        assert_eq!(codes(&trainer.averaged_net()), expected);
        // Training moves the codes: they are parameters.
        trainer.step(&data).unwrap();
        trainer.step(&data).unwrap();
        assert_ne!(codes(&trainer.net()), expected);
    }
}
