//! The emoji model: weights round trip, sampling (batched and not), ndarray against wgpu,
//! training and resuming. Sampling uses the shipped weights, loaded from their bytes (a fresh
//! network would leave its zero-initialised residual branches, the attention among them,
//! untested).

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use chords::{
    Backend, Chords, CpuBackend, Euler, Event, FlowSchedule, InitSequence, RunOptions, StopRule,
    noise, run,
};
use chords_emoji::train::{Dataset, TrainConfig, Trainer};
use chords_emoji::{EmojiModel, NUMEL, Style, cpu_device, find_emoji};

/// The shipped weights, as burnpack bytes.
fn weights() -> Vec<u8> {
    include_bytes!("../../chords-emoji/weights/emoji.bpk").to_vec()
}

fn model(bytes: &[u8], device: &Device) -> EmojiModel {
    EmojiModel::from_bytes(bytes.to_vec(), "test weights", device)
        .unwrap()
        .with_emoji(find_emoji("pizza").unwrap(), Style::Noto)
        .unwrap()
}

/// The fastest hit of an 8-core CHORDS run of T = 20 from seed `seed`.
fn sample(model: &EmojiModel, seed: u64) -> Vec<f32> {
    let solver = Arc::new(Euler::new(FlowSchedule::new(20, 1.0).unwrap()));
    let x0 = CpuBackend.upload(0, &noise::gaussian(seed, NUMEL)).unwrap();
    let mut sampler = Chords::new(
        solver,
        InitSequence::parse("0-1-2-4-6-8-10-12", 20).unwrap(),
        x0,
    )
    .unwrap();
    let mut hit = None;
    let options = RunOptions::default()
        .with_threads(0)
        .with_stop(StopRule::CoreIndex(1));
    run(&mut sampler, &CpuBackend, model, &options, &mut |e| {
        if let Event::Hit(h) = e {
            hit = Some(h.latent.as_slice().to_vec());
        }
    })
    .unwrap();
    hit.unwrap()
}

#[test]
fn saved_weights_sample_finite_deterministic_pictures() {
    let bytes = weights();
    let m = model(&bytes, &cpu_device());
    let a = sample(&m, 4);
    assert_eq!(a.len(), NUMEL);
    assert!(a.iter().all(|v| v.is_finite()));
    assert_eq!(a, sample(&m, 4), "same seed, same picture");
    assert_ne!(a, sample(&m, 5));
    // Batched and per-core evaluation agree (one stacked forward pass vs one per core).
    let unbatched = model(&bytes, &cpu_device()).with_batching(false);
    let b = sample(&unbatched, 4);
    let err = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(err < 1e-4, "batched vs unbatched: {err}");
}

#[test]
fn ndarray_and_wgpu_agree() {
    let wgpu = Device::wgpu(burn::tensor::DeviceKind::default());
    let bytes = weights();
    let (cpu, gpu) = (model(&bytes, &cpu_device()), model(&bytes, &wgpu));
    let x: Vec<Vec<f32>> = (0..3).map(|k| noise::gaussian(k, NUMEL)).collect();
    let xs: Vec<&[f32]> = x.iter().map(Vec::as_slice).collect();
    let sigmas = [1.0, 0.5, 0.1];
    let (a, b) = (
        cpu.velocities(&xs, &sigmas).unwrap(),
        gpu.velocities(&xs, &sigmas).unwrap(),
    );
    for (va, vb) in a.iter().zip(&b) {
        let err = va
            .iter()
            .zip(vb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-3, "ndarray vs wgpu: {err}");
    }
}

#[test]
fn missing_and_corrupt_weights_are_named() {
    let device = cpu_device();
    let missing = Path::new("/nonexistent/emoji.bpk");
    let err = EmojiModel::load(missing, &device).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/emoji.bpk"), "{err}");
    let err = EmojiModel::from_bytes(b"not weights".to_vec(), "corrupt.bpk", &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt.bpk"), "{err}");
    let err = find_emoji("pizzza").unwrap_err();
    assert!(err.closest.contains(&"pizza"), "{err}");
}

/// A data set of seeded noise pictures (clamped to [-1, 1]), one per label.
fn noise_dataset(seed: u64, labels: Vec<usize>) -> Dataset {
    Dataset {
        images: noise::gaussian(seed, labels.len() * NUMEL)
            .iter()
            .map(|v| v.clamp(-1.0, 1.0))
            .collect(),
        labels,
    }
}

#[test]
fn training_resumes_exactly() {
    // 24 random pictures of 3 conditions; 4 steps straight vs 2 + save + resume + 2, each step
    // on two threads.
    let data = noise_dataset(9, (0..24).map(|i| i % 3).collect());
    let mut config = TrainConfig::default();
    config.batch = 4;
    config.threads = 2;
    let device = cpu_device();
    let mut straight = Trainer::new(config.clone(), &device);
    let losses: Vec<f32> = (0..4).map(|_| straight.step(&data).unwrap()).collect();
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0));

    let dir = std::env::temp_dir().join(format!("chords-train-{}", std::process::id()));
    let mut first = Trainer::new(config.clone(), &device);
    first.step(&data).unwrap();
    first.step(&data).unwrap();
    first.save(&dir).unwrap();
    let mut resumed = Trainer::resume(config, &device, &dir).unwrap();
    assert_eq!(resumed.steps(), 2);
    let tail: Vec<f32> = (0..2).map(|_| resumed.step(&data).unwrap()).collect();
    assert_eq!(
        tail,
        losses[2..].to_vec(),
        "a resumed run continues exactly"
    );
    assert_eq!(
        resumed.averaged_evaluation_loss(&data).unwrap(),
        straight.averaged_evaluation_loss(&data).unwrap(),
        "and so does the moving average of its weights"
    );
    assert_ne!(
        straight.averaged_evaluation_loss(&data).unwrap(),
        straight.evaluation_loss(&data).unwrap()
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Training steps on burn-wgpu (lavapipe here) compute what they compute on burn-ndarray:
/// from the shipped weights, the same two steps give the same losses, the second one after
/// an update, and the same evaluation loss after them.
#[test]
fn training_on_wgpu_matches_ndarray() {
    let data = noise_dataset(11, vec![0, 2, 5, 7]);
    let mut config = TrainConfig::default();
    config.batch = 2;
    config.threads = 1;
    let wgpu = Device::wgpu(burn::tensor::DeviceKind::default());
    let run = |device: &Device| {
        let mut trainer = Trainer::from_weights(config.clone(), device, weights(), "shipped")
            .expect("shipped weights load");
        let losses: Vec<f32> = (0..2).map(|_| trainer.step(&data).unwrap()).collect();
        (losses, trainer.evaluation_loss(&data).unwrap())
    };
    let ((cpu_losses, cpu_held), (gpu_losses, gpu_held)) = (run(&cpu_device()), run(&wgpu));
    for (a, b) in cpu_losses.iter().zip(&gpu_losses) {
        assert!(
            (a - b).abs() < 1e-3 * a,
            "step loss, ndarray {a} vs wgpu {b}"
        );
    }
    assert!(
        (cpu_held - gpu_held).abs() < 1e-3 * cpu_held,
        "evaluation loss after two steps, ndarray {cpu_held} vs wgpu {gpu_held}"
    );
    assert_ne!(cpu_losses[0], cpu_losses[1], "the batches differ");
}

/// Every output of an 8-core CHORDS run of T = 20 (the shipped weights, smileys), on `backend`.
fn all_outputs<B: Backend, M: chords::Model<B>>(backend: &B, model: &M) -> Vec<Vec<f32>> {
    let solver = Arc::new(Euler::new(FlowSchedule::new(20, 1.0).unwrap()));
    let x0 = backend.upload(0, &noise::gaussian(5, NUMEL)).unwrap();
    let init = InitSequence::parse("0-1-2-4-6-8-10-12", 20).unwrap();
    let mut sampler = Chords::new(solver, init, x0).unwrap();
    let mut outputs = Vec::new();
    let options = RunOptions::default().with_stop(StopRule::All);
    run(&mut sampler, backend, model, &options, &mut |e| {
        if let Event::Preview(o) | Event::Hit(o) = e {
            outputs.push(o.latent.clone());
        }
    })
    .unwrap();
    outputs
        .iter()
        .map(|l| backend.download(l).unwrap())
        .collect()
}

#[test]
fn on_the_pools_own_device_the_model_matches_ndarray() {
    use chords_burn::WgpuBurnModel;
    use chords_wgpu::{DevicePool, PoolOptions, WgpuBackend, WgpuError};
    let pool = match DevicePool::new(&PoolOptions::new(8)) {
        Ok(pool) => Arc::new(pool),
        Err(WgpuError::NoAdapter(why)) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: no wgpu adapter ({why})");
            return;
        }
        Err(e) => panic!("no usable wgpu adapter (CI=true requires one): {e}"),
    };
    let cpu = EmojiModel::shipped(&cpu_device()).unwrap();
    let gpu_backend = WgpuBackend::new(pool);
    let shipped = EmojiModel::shipped(&cpu_device()).unwrap();
    let gpu = WgpuBurnModel::new(shipped.burn(), &gpu_backend).unwrap();
    let (a, b) = (
        all_outputs(&CpuBackend, &cpu),
        all_outputs(&gpu_backend, &gpu),
    );
    assert_eq!(a.len(), 9, "preview and 8 hits");
    assert_eq!(a.len(), b.len());
    for (k, (va, vb)) in a.iter().zip(&b).enumerate() {
        let err = va
            .iter()
            .zip(vb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            err < 1e-3,
            "output {k}: ndarray vs wgpu on the pool's device: {err}"
        );
    }
    // A second model on the same device reuses burn's runtime and gives the same outputs.
    let again = WgpuBurnModel::new(shipped.burn(), &gpu_backend).unwrap();
    for (va, vb) in b.iter().zip(&all_outputs(&gpu_backend, &again)) {
        let err = va
            .iter()
            .zip(vb)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-6, "a second model on the same device: {err}");
    }
}
