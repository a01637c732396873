//! The adapter against the network called directly: on the CPU (burn-ndarray) and, with the
//! `wgpu` feature, on lavapipe with one and with two devices.
//!
//! Without a wgpu adapter the GPU tests skip with a message, except under `CI=true`, where
//! they fail.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use chords::{Backend, CpuBackend, CpuLatent, Model, Request, Timestep};
use chords_burn::{BurnModel, Guidance, Network, TimeInput, cpu_device};

/// Elements of one latent.
const N: usize = 6;
/// Classes, the last one the null class.
const CLASSES: usize = 4;

/// A small conditional network: `linear(x) · (1 + t) + embed(label)`.
#[derive(Module, Debug)]
struct Tiny {
    linear: Linear,
    embed: Embedding,
}

impl Tiny {
    fn new(device: &Device) -> Self {
        Self {
            linear: LinearConfig::new(N, N).init(device),
            embed: EmbeddingConfig::new(CLASSES, N).init(device),
        }
    }
}

impl Network<2> for Tiny {
    fn forward(&self, x: Tensor<2>, time: Tensor<1>, labels: Option<Tensor<1, Int>>) -> Tensor<2> {
        let [b, _] = x.dims();
        let y = self.linear.forward(x) * (time.reshape([b, 1]).add_scalar(1.0));
        match labels {
            Some(labels) => y + self.embed.forward(labels.reshape([b, 1])).reshape([b, N]),
            None => y,
        }
    }
}

/// Latent `i` (distinct values).
fn latent(i: usize) -> Vec<f32> {
    (0..N).map(|j| ((i * N + j) as f32 * 0.37).sin()).collect()
}

/// Grid index `i` of 8, with a time input other than σ (so the two can be told apart).
fn timestep(i: usize) -> Timestep {
    let sigma = 1.0 - i as f64 / 8.0;
    Timestep::new(i, 2.0 * sigma + 0.5, 1.0 - sigma, sigma)
}

/// The network called directly on `x` at time input `time` with `label`.
fn direct(net: &Tiny, x: &[f32], time: f32, label: Option<i64>) -> Vec<f32> {
    let device = cpu_device();
    let x = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [1, N]), &device);
    let t = Tensor::<1>::from_data(TensorData::new(vec![time], [1]), &device);
    let labels = label.map(|l| Tensor::<1, Int>::from_data(TensorData::new(vec![l], [1]), &device));
    net.forward(x, t, labels)
        .into_data()
        .try_into_vec::<f32>()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A round's requests: latents 0..5 on cores 0..5.
fn requests() -> Vec<Request<CpuLatent>> {
    (0..5)
        .map(|i| Request {
            core: i,
            index: i,
            latent: CpuLatent::from(latent(i)),
            timestep: timestep(i),
        })
        .collect()
}

#[test]
fn the_adapter_gives_what_the_network_gives() {
    let net = Tiny::new(&cpu_device());
    let model = BurnModel::new(net.clone(), &[N], &cpu_device()).unwrap();
    for (i, r) in requests().iter().enumerate() {
        let got = model.evaluate(r.core, &r.latent, &r.timestep).unwrap();
        let want = direct(&net, &latent(i), timestep(i).t as f32, None);
        assert!(max_diff(got.as_slice(), &want) <= 1e-4, "latent {i}");
    }
    // The time input can be σ instead of t.
    let sigma = model.clone().with_time_input(TimeInput::Sigma);
    let got = sigma
        .evaluate(0, &CpuLatent::from(latent(3)), &timestep(3))
        .unwrap();
    let want = direct(&net, &latent(3), timestep(3).sigma as f32, None);
    assert!(max_diff(got.as_slice(), &want) <= 1e-4);
    assert!(max_diff(got.as_slice(), &direct(&net, &latent(3), 1.75, None)) > 1e-2);
}

#[test]
fn batched_equals_unbatched() {
    let net = Tiny::new(&cpu_device());
    let guidance = Guidance::new(1, (CLASSES - 1) as i64, 3.0).unwrap();
    let model = BurnModel::new(net, &[N], &cpu_device())
        .unwrap()
        .with_guidance(Some(guidance));
    assert!(model.batches());
    let requests = requests();
    let batched = model.evaluate_batch(&requests);
    let single = model.clone().with_batching(false);
    assert!(!single.batches());
    for (r, b) in requests.iter().zip(&batched) {
        let one = single.evaluate(r.core, &r.latent, &r.timestep).unwrap();
        let b = b.as_ref().unwrap();
        assert!(
            max_diff(one.as_slice(), b.as_slice()) <= 1e-5,
            "core {}",
            r.core
        );
    }
}

#[test]
fn guidance_is_uncond_plus_scale_times_the_difference() {
    let net = Tiny::new(&cpu_device());
    let (label, null) = (2, (CLASSES - 1) as i64);
    for scale in [0.0f32, 1.0, 2.5, -1.0] {
        let model = BurnModel::new(net.clone(), &[N], &cpu_device())
            .unwrap()
            .with_guidance(Some(Guidance::new(label, null, scale).unwrap()));
        assert_eq!(model.copies(), if scale == 1.0 { 1 } else { 2 });
        let outputs = model.evaluate_batch(&requests());
        for (i, out) in outputs.iter().enumerate() {
            let t = timestep(i).t as f32;
            let cond = direct(&net, &latent(i), t, Some(label));
            let uncond = direct(&net, &latent(i), t, Some(null));
            let want: Vec<f32> = cond
                .iter()
                .zip(&uncond)
                .map(|(c, u)| u + scale * (c - u))
                .collect();
            let got = out.as_ref().unwrap();
            assert!(
                max_diff(got.as_slice(), &want) <= 1e-4,
                "scale {scale}, latent {i}"
            );
        }
    }
    assert!(Guidance::new(0, 3, f32::NAN).is_err());
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let net = Tiny::new(&cpu_device());
    let err = BurnModel::new(net.clone(), &[2, 3], &cpu_device()).unwrap_err();
    assert!(err.to_string().contains("rank 2"), "{err}");
    let model = BurnModel::new(net, &[N], &cpu_device()).unwrap();
    let err = model
        .evaluate(0, &CpuLatent::from(vec![0.0; N + 1]), &timestep(0))
        .unwrap_err();
    assert!(err.to_string().contains("6 elements"), "{err}");
    let _ = CpuBackend.upload(0, &[0.0]).unwrap();
}

#[cfg(feature = "wgpu")]
mod on_wgpu {
    use std::sync::Arc;

    use chords_burn::WgpuBurnModel;
    use chords_wgpu::{DevicePool, DeviceSharing, PoolOptions, WgpuBackend, WgpuError};

    use super::*;

    fn pool(cores: usize, sharing: DeviceSharing) -> Option<Arc<DevicePool>> {
        match DevicePool::new(&PoolOptions::new(cores).with_sharing(sharing)) {
            Ok(pool) => Some(Arc::new(pool)),
            Err(WgpuError::NoAdapter(why)) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipping: no wgpu adapter ({why})");
                None
            }
            Err(e) => panic!("no usable wgpu adapter (CI=true requires one): {e}"),
        }
    }

    /// The adapter on `pool`'s devices against the network on the CPU, for five calls
    /// spread over the pool's cores round robin (batched and one call each).
    fn matches_the_cpu(pool: Arc<DevicePool>) {
        let cores = pool.cores();
        let net = Tiny::new(&cpu_device());
        let guidance = Guidance::new(1, (CLASSES - 1) as i64, 2.0).unwrap();
        let cpu = BurnModel::new(net, &[N], &cpu_device())
            .unwrap()
            .with_guidance(Some(guidance));
        let backend = WgpuBackend::new(pool.clone());
        WgpuBurnModel::<Tiny, 2>::check(&backend).unwrap();
        let gpu = WgpuBurnModel::new(&cpu, &backend).unwrap();
        let requests: Vec<Request<_>> = requests()
            .into_iter()
            .map(|r| Request {
                latent: backend.upload(r.core % cores, r.latent.as_slice()).unwrap(),
                core: r.core % cores,
                index: r.index,
                timestep: r.timestep,
            })
            .collect();
        let devices: std::collections::BTreeSet<usize> =
            requests.iter().map(|r| r.latent.gpu_index()).collect();
        assert_eq!(devices.len(), pool.gpus().len(), "calls on every device");
        let want = cpu.evaluate_batch(&super::requests());
        let batched = gpu.evaluate_batch(&requests);
        for ((r, w), b) in requests.iter().zip(&want).zip(&batched) {
            let b = b.as_ref().unwrap();
            assert_eq!(
                b.gpu_index(),
                r.latent.gpu_index(),
                "output on the core's device"
            );
            let w = w.as_ref().unwrap();
            let got = backend.download(b).unwrap();
            assert!(
                max_diff(&got, w.as_slice()) <= 1e-4,
                "core {} batched",
                r.core
            );
            let one = gpu.evaluate(r.core, &r.latent, &r.timestep).unwrap();
            let one = backend.download(&one).unwrap();
            assert!(
                max_diff(&one, w.as_slice()) <= 1e-4,
                "core {} alone",
                r.core
            );
        }
    }

    #[test]
    fn on_one_device_the_adapter_matches_the_cpu() {
        if let Some(pool) = pool(5, DeviceSharing::PerAdapter) {
            assert_eq!(pool.gpus().len(), 1);
            matches_the_cpu(pool);
        }
    }

    #[test]
    fn on_two_devices_the_adapter_matches_the_cpu() {
        if let Some(pool) = pool(2, DeviceSharing::PerCore) {
            assert_eq!(pool.gpus().len(), 2);
            matches_the_cpu(pool);
        }
    }
}
