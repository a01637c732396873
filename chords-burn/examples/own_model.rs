//! Bring your own burn network and sample it with CHORDS on the wgpu backend.
//!
//! The network here is tiny and exact so the result can be checked: the flow-matching
//! velocity towards one picture `c`, `v(x, σ) = (x − c) / σ`, with `c` a parameter of the
//! module. Any burn module with a `forward(x, time[, labels])` works the same way.
//!
//! ```text
//! cargo run -p chords-burn --features wgpu --example own_model
//! ```

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use chords::{
    Backend, Chords, Euler, Event, FlowSchedule, InitSequence, InitStrategy, RunOptions, Sequential,
};
use chords_burn::{BurnModel, Network, TimeInput, WgpuBurnModel};
use chords_wgpu::{DevicePool, PoolOptions, WgpuBackend};

/// The network: the exact velocity towards `target`.
#[derive(Module, Debug)]
pub struct TowardsTarget {
    target: Param<Tensor<2>>,
}

impl Network<4> for TowardsTarget {
    fn forward(&self, x: Tensor<4>, sigma: Tensor<1>, _: Option<Tensor<1, Int>>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let target = self.target.val().reshape([1, c, h, w]);
        (x - target) / sigma.reshape([b, 1, 1, 1])
    }
}

const SHAPE: [usize; 3] = [3, 16, 16];

/// A picture to aim at: a diagonal gradient.
fn target() -> Vec<f32> {
    let n: usize = SHAPE.iter().product();
    (0..n)
        .map(|i| ((i % 16 + i / 16 % 16) as f32 / 15.0) - 1.0)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    sample().map(|_| ())
}

/// Samples the network; returns the first output's RMSE against the target picture.
pub fn sample() -> Result<f64, Box<dyn std::error::Error>> {
    // 1. The network on the CPU, wrapped with the latent's shape and its time input.
    let numel = SHAPE.iter().product();
    let device: Device = chords_burn::cpu_device();
    let data = TensorData::new(target(), [1, numel]);
    let net = TowardsTarget {
        target: Param::from_tensor(Tensor::from_data(data, &device)),
    };
    let model = BurnModel::new(net, &SHAPE, &device)?.with_time_input(TimeInput::Sigma);

    // 2. Four CHORDS cores on the wgpu adapters found (one device per adapter), and the
    //    network on each of the pool's devices.
    let pool = Arc::new(DevicePool::new(&PoolOptions::new(4))?);
    let backend = WgpuBackend::new(pool.clone());
    let on_gpu = WgpuBurnModel::new(&model, &backend)?;
    println!("devices: {}", pool.describe().join("; "));

    // 3. The sequential solve and CHORDS from the same noise.
    let steps = 40;
    let solver = Arc::new(Euler::new(FlowSchedule::new(steps, 1.0)?));
    let noise = chords::noise::gaussian(7, numel);
    let mut sequential = Sequential::new(solver.clone(), backend.upload(0, &noise)?);
    let mut reference = None;
    let options = RunOptions::default().with_stop(chords::StopRule::All);
    chords::run(&mut sequential, &backend, &on_gpu, &options, &mut |e| {
        if let Event::Hit(hit) = e {
            reference = Some(hit.latent.clone());
        }
    })?;
    let reference = backend.download(&reference.ok_or("no sequential output")?)?;

    let init = InitSequence::from_strategy(InitStrategy::Paper, steps, 4)?;
    let mut sampler = Chords::new(solver, init, backend.upload(0, &noise)?)?;
    let mut first = None;
    let summary = chords::run(
        &mut sampler,
        &backend,
        &on_gpu,
        &RunOptions::default(),
        &mut |e| {
            if let Event::Hit(hit) = e {
                first.get_or_insert((hit.round, hit.latent.clone()));
            }
        },
    )?;
    let (round, hit) = first.ok_or("no hit")?;
    let hit = backend.download(&hit)?;
    println!(
        "CHORDS on 4 cores: first output after {round} rounds of {steps} ({:.2}× fewer), {} rounds run",
        steps as f64 / round as f64,
        summary.rounds
    );
    let off_target = chords::rmse(&hit, &target());
    println!(
        "RMSE against the sequential solve {:.2e}, against the target {off_target:.2e}",
        chords::rmse(&hit, &reference),
    );
    Ok(off_target)
}
