//! The wgpu backend against the CPU backend, on a real adapter (lavapipe in CI).
//!
//! Without an adapter these tests skip with a message, except under `CI=true`, where a
//! missing adapter is a failure.

use std::sync::Arc;

use chords::backend::Term;
use chords::{
    Backend, Chords, CpuBackend, Euler, Event, FlowSchedule, GaussianMixture, InitSequence, Model,
    Prediction, RunOptions, Sampler, Sequential, StopRule, mixture, noise, run,
};
use chords_wgpu::wgpu;
use chords_wgpu::{DevicePool, DeviceSharing, GpuMixture, PoolOptions, WgpuBackend, WgpuError};

/// A pool of `cores` cores, or `None` (test skipped) when no adapter exists outside CI.
fn pool(cores: usize, sharing: DeviceSharing) -> Option<Arc<DevicePool>> {
    let options = PoolOptions::new(cores).with_sharing(sharing);
    match DevicePool::new(&options) {
        Ok(pool) => Some(Arc::new(pool)),
        Err(WgpuError::NoAdapter(why)) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: no wgpu adapter ({why})");
            None
        }
        Err(e) => panic!(
            "no usable wgpu adapter (CI=true requires one; install mesa-vulkan-drivers): {e}"
        ),
    }
}

/// Every output (preview first, then hits in arrival order) as host data, with `(position, core, round)`.
type Outputs = Vec<((usize, usize, usize), Vec<f32>)>;

fn sample<B: Backend, M: Model<B>>(
    backend: &B,
    model: &M,
    init: Option<&str>,
    x0: &[f32],
    steps: usize,
) -> Outputs {
    let solver = Arc::new(Euler::new(FlowSchedule::new(steps, 1.0).unwrap()));
    let x0 = backend.upload(0, x0).unwrap();
    let mut sampler: Box<dyn Sampler<B>> = match init {
        Some(seq) => {
            Box::new(Chords::new(solver, InitSequence::parse(seq, steps).unwrap(), x0).unwrap())
        }
        None => Box::new(Sequential::new(solver, x0)),
    };
    let mut outputs = Vec::new();
    let options = RunOptions::default()
        .with_threads(0)
        .with_stop(StopRule::All);
    run(sampler.as_mut(), backend, model, &options, &mut |e| {
        if let Event::Preview(o) | Event::Hit(o) = e {
            outputs.push(((o.position, o.core, o.round), o.latent.clone()));
        }
    })
    .unwrap();
    outputs
        .into_iter()
        .map(|(k, l)| (k, backend.download(&l).unwrap()))
        .collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn demo_model() -> GaussianMixture {
    let (means, shape) = mixture::demo_means();
    GaussianMixture::new(means, shape, 0.05, Prediction::Velocity).unwrap()
}

#[test]
fn chords_and_sequential_on_wgpu_match_the_cpu() {
    let Some(pool) = pool(8, DeviceSharing::PerAdapter) else {
        return;
    };
    let gpu = WgpuBackend::new(pool);
    let cpu_model = demo_model();
    let gpu_model = GpuMixture::new(&gpu, &cpu_model).unwrap();
    let x0 = noise::gaussian(11, 3 * 32 * 32);
    for init in [Some("0-2-4-8-16-24-32-40"), None] {
        let on_cpu = sample(&CpuBackend, &cpu_model, init, &x0, 50);
        let on_gpu = sample(&gpu, &gpu_model, init, &x0, 50);
        assert_eq!(on_cpu.len(), if init.is_some() { 9 } else { 1 });
        assert_eq!(
            on_cpu.iter().map(|o| o.0).collect::<Vec<_>>(),
            on_gpu.iter().map(|o| o.0).collect::<Vec<_>>()
        );
        for ((key, c), (_, g)) in on_cpu.iter().zip(&on_gpu) {
            let err = max_abs(c, g);
            assert!(
                err < 1e-4,
                "{init:?} output {key:?}: max abs difference {err}"
            );
        }
    }
}

#[test]
fn four_cores_on_four_devices_equal_one_device() {
    let (Some(many), Some(one)) = (
        pool(4, DeviceSharing::PerCore),
        pool(4, DeviceSharing::PerAdapter),
    ) else {
        return;
    };
    assert_eq!(many.gpus().len(), 4, "four distinct devices");
    let devices: Vec<&chords_wgpu::wgpu::Device> = many.gpus().iter().map(|g| g.device()).collect();
    for (i, a) in devices.iter().enumerate() {
        for b in &devices[i + 1..] {
            assert_ne!(a, b);
        }
    }
    let model = demo_model();
    let x0 = noise::gaussian(5, 3 * 32 * 32);
    let (many, one) = (WgpuBackend::new(many), WgpuBackend::new(one));
    let on_many = sample(
        &many,
        &GpuMixture::new(&many, &model).unwrap(),
        Some("0-8-16-32"),
        &x0,
        50,
    );
    let on_one = sample(
        &one,
        &GpuMixture::new(&one, &model).unwrap(),
        Some("0-8-16-32"),
        &x0,
        50,
    );
    assert_eq!(on_many, on_one, "results on 4 devices differ from 1 device");
    // One device moves only x0 up and the 5 outputs down; four devices also move every
    // spawn's latent and every rectification's two latents between devices.
    let latent_bytes = 3 * 32 * 32 * 4;
    assert_eq!(one.bytes_transferred(), 6 * latent_bytes);
    assert!(
        many.bytes_transferred() >= one.bytes_transferred() + 3 * latent_bytes,
        "{}",
        many.bytes_transferred()
    );
}

#[test]
fn lincomb_finite_and_preview_kernels_match_the_cpu() {
    let Some(pool) = pool(1, DeviceSharing::PerAdapter) else {
        return;
    };
    let gpu = WgpuBackend::new(pool);
    let n = 70_001; // not a multiple of the workgroup size
    let inputs: Vec<Vec<f32>> = (0..6).map(|k| noise::gaussian(k, n)).collect();
    let coeffs = [0.5f32, -1.25, 2.0, 0.001, -0.75, 3.5];
    for terms in 1..=6 {
        let on_gpu: Vec<_> = inputs[..terms]
            .iter()
            .map(|x| gpu.upload(0, x).unwrap())
            .collect();
        let on_cpu: Vec<_> = inputs[..terms]
            .iter()
            .map(|x| CpuBackend.upload(0, x).unwrap())
            .collect();
        let g: Vec<Term<'_, _>> = coeffs.iter().zip(&on_gpu).map(|(c, x)| (*c, x)).collect();
        let c: Vec<Term<'_, _>> = coeffs.iter().zip(&on_cpu).map(|(c, x)| (*c, x)).collect();
        let g = gpu.download(&gpu.lincomb(0, &g).unwrap()).unwrap();
        let c = CpuBackend.lincomb(0, &c).unwrap();
        assert!(max_abs(&g, c.as_slice()) < 1e-5, "{terms} terms");
    }
    let finite = gpu.upload(0, &[1.0, -2.0, 3.0e38]).unwrap();
    assert!(gpu.all_finite(&finite).unwrap());
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert!(
            !gpu.all_finite(&gpu.upload(0, &[0.0, bad, 1.0]).unwrap())
                .unwrap(),
            "{bad}"
        );
    }
    for shape in [[3usize, 17, 9], [2, 5, 4], [1, 3, 3]] {
        let numel: usize = shape.iter().product();
        let data: Vec<f32> = noise::gaussian(9, numel).iter().map(|v| v * 0.8).collect();
        let latent = gpu.upload(0, &data).unwrap();
        let want = chords::preview::rgba8(&shape, &data).unwrap();
        assert_eq!(
            gpu.preview(&latent, &shape).unwrap(),
            want,
            "shape {shape:?}"
        );
    }
}

#[test]
fn a_rounds_outputs_are_checked_for_nan_together_on_every_device() {
    let Some(pool) = pool(3, DeviceSharing::PerCore) else {
        return;
    };
    let gpu = WgpuBackend::new(pool);
    // Latents of several sizes (one over 65 535 workgroups' rows: a 2-D grid) on three
    // devices, some with a NaN or an Inf at their first, a middle or their last element.
    let mut cases: Vec<(usize, Vec<f32>)> = Vec::new();
    for (i, len) in [3usize, 256, 257, 70_000, 17_000_000]
        .into_iter()
        .enumerate()
    {
        let bads = [
            None,
            Some(f32::NAN),
            Some(f32::INFINITY),
            Some(f32::NEG_INFINITY),
        ];
        // Two of the largest (its noise is slow to make in a debug build).
        let bads = if len > 1 << 20 { &bads[..2] } else { &bads[..] };
        for (j, &bad) in bads.iter().enumerate() {
            let mut data = noise::gaussian((i * 4 + j) as u64, len);
            if let Some(bad) = bad {
                let at = [0, len / 2, len - 1][(i + j) % 3];
                data[at] = bad;
            }
            cases.push(((i + j) % 3, data));
        }
    }
    let latents: Vec<_> = cases
        .iter()
        .map(|(core, data)| gpu.upload(*core, data).unwrap())
        .collect();
    let refs: Vec<_> = latents.iter().collect();
    let want: Vec<bool> = cases
        .iter()
        .map(|(_, d)| d.iter().all(|v| v.is_finite()))
        .collect();
    assert_eq!(gpu.all_finite_each(&refs).unwrap(), want);
    assert_eq!(gpu.all_finite_each(&[]).unwrap(), Vec::<bool>::new());
}

#[test]
fn preview_to_texture_draws_the_cpu_pixels_on_the_device() {
    let Some(pool) = pool(1, DeviceSharing::PerAdapter) else {
        return;
    };
    let gpu = WgpuBackend::new(pool.clone());
    let device = pool.gpus()[0].device();
    let queue = pool.gpus()[0].queue();
    // Widths with and without 256-byte row alignment, RGB and tiled grayscale.
    for shape in [[3usize, 32, 32], [3, 5, 64], [2, 7, 9]] {
        let data: Vec<f32> = noise::gaussian(4, shape.iter().product())
            .iter()
            .map(|v| v * 0.7)
            .collect();
        let latent = gpu.upload(0, &data).unwrap();
        let frame = chords_wgpu::PreviewTexture::new(device, &shape).unwrap();
        gpu.preview_to_texture(&latent, &shape, &frame).unwrap();
        let (width, height) = frame.size();
        let row = (width as u32 * 4).next_multiple_of(wgpu::COPY_BYTES_PER_ROW_ALIGNMENT);
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (row * height as u32) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_texture_to_buffer(
            frame.texture().as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &staging,
                layout: wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(row),
                    rows_per_image: None,
                },
            },
            frame.texture().size(),
        );
        queue.submit([encoder.finish()]);
        staging.map_async(wgpu::MapMode::Read, .., |r| r.unwrap());
        pool.gpus()[0].wait().unwrap();
        let mapped = staging.get_mapped_range(..).unwrap().to_vec();
        let pixels: Vec<u8> = mapped
            .chunks(row as usize)
            .flat_map(|r| r[..width * 4].to_vec())
            .collect();
        assert_eq!(
            pixels,
            chords::preview::rgba8(&shape, &data).unwrap().pixels,
            "shape {shape:?}"
        );
    }
    // A texture of another size is refused, not drawn out of bounds.
    let latent = gpu.upload(0, &[0.0; 12]).unwrap();
    let frame = chords_wgpu::PreviewTexture::new(device, &[3, 2, 3]).unwrap();
    let err = gpu
        .preview_to_texture(&latent, &[3, 2, 2], &frame)
        .unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
}

/// CHORDS 0-4-8 on T = 20, three cores on three devices; `fault` runs after each round
/// and may break something. Returns the run's summary or error, and core 0's hit.
fn run_with_fault(
    pool: &Arc<DevicePool>,
    model: &dyn Model<WgpuBackend>,
    mirror: bool,
    fault: &dyn Fn(usize),
) -> (
    chords::Result<chords::RunSummary>,
    Option<Vec<f32>>,
    Vec<usize>,
) {
    let gpu = WgpuBackend::new(pool.clone());
    let solver = Arc::new(Euler::new(FlowSchedule::new(20, 1.0).unwrap()));
    let x0 = gpu.upload(0, &noise::gaussian(1, 3 * 32 * 32)).unwrap();
    let mut sampler = Chords::new(solver, InitSequence::parse("0-4-8", 20).unwrap(), x0).unwrap();
    let options = RunOptions::default()
        .with_threads(0)
        .with_stop(StopRule::All)
        .with_mirror(mirror);
    let (mut last, mut moved) = (None, Vec::new());
    let result = run(&mut sampler, &gpu, model, &options, &mut |e| match e {
        Event::RoundFinished { round, .. } => fault(*round),
        Event::Hit(h) if h.core == 0 => last = Some(gpu.download(&h.latent).unwrap()),
        Event::CoreMoved { core, .. } => moved.push(*core),
        _ => {}
    });
    (result, last, moved)
}

/// The mixture on the GPU, failing core 0's calls from grid index 6 while core 0 is on
/// device 0 (as if that device ran out of memory).
struct Core0FailsOnDevice0<'a>(GpuMixture<'a>, &'a DevicePool);

impl Model<WgpuBackend> for Core0FailsOnDevice0<'_> {
    fn evaluate(
        &self,
        core: usize,
        x: &chords_wgpu::GpuLatent,
        t: &chords::Timestep,
    ) -> Result<chords_wgpu::GpuLatent, chords::ModelError> {
        if core == 0 && t.index >= 6 && self.1.gpu_index(0).unwrap() == 0 {
            return Err(chords::ModelError::new("out of device memory"));
        }
        self.0.evaluate(core, x, t)
    }
}

#[test]
fn failing_devices_cost_speed_never_the_final_output() {
    let Some(pool) = pool(3, DeviceSharing::PerCore) else {
        return;
    };
    let gpu = WgpuBackend::new(pool.clone());
    let model = GpuMixture::new(&gpu, &demo_model()).unwrap();
    let (clean, want, _) = run_with_fault(&pool, &model, false, &|_| {});
    let (clean, want) = (clean.unwrap(), want.unwrap());
    assert!(clean.retired.is_empty());

    // Core 2's device is lost after round 4: core 2 is retired, the run goes on.
    let (lost, got, _) = run_with_fault(&pool, &model, false, &|round| {
        if round == 4 {
            pool.gpus()[2].device().destroy();
        }
    });
    let lost = lost.expect("a lost device of a faster core must not fail the run");
    assert_eq!((lost.retired, lost.rounds), (vec![2], 20));
    assert_eq!(got.unwrap(), want, "core 0's output is unchanged");

    // Core 0's calls fail on device 0: it moves (to device 1, the healthy one with fewest
    // cores) with its state and goes on; same output.
    let pool = self::pool(3, DeviceSharing::PerCore).unwrap();
    let gpu = WgpuBackend::new(pool.clone());
    let failing = Core0FailsOnDevice0(GpuMixture::new(&gpu, &demo_model()).unwrap(), &pool);
    let (result, got, moved) = run_with_fault(&pool, &failing, false, &|_| {});
    assert_eq!(result.unwrap().rounds, 20);
    assert_eq!(moved, vec![0]);
    assert_ne!(pool.gpu_index(0).unwrap(), 0);
    assert!(max_abs(&got.unwrap(), &want) < 1e-6);
}

/// When core 0's device itself is lost its latents are gone with it: without a host copy
/// the run ends with an error naming core 0 and the adapter (never a hang or a wrong
/// answer); with `mirror` core 0 restarts on another device from the copy of its point and
/// the output is unchanged.
#[test]
fn losing_core_0s_device_needs_the_host_copy() {
    let Some(pool) = pool(3, DeviceSharing::PerCore) else {
        return;
    };
    let gpu = WgpuBackend::new(pool.clone());
    let model = GpuMixture::new(&gpu, &demo_model()).unwrap();
    let (_, want, _) = run_with_fault(&pool, &model, true, &|_| {});
    let adapter = pool.gpus()[0].describe();
    let (result, _, _) = run_with_fault(&pool, &model, false, &|round| {
        if round == 4 {
            pool.gpus()[0].device().destroy();
        }
    });
    let text = result.expect_err("core 0's state is lost").to_string();
    eprintln!("lost device reported as: {text}");
    assert!(text.contains("core 0"), "{text}");
    assert!(text.contains(&adapter), "{text}");

    let pool = self::pool(3, DeviceSharing::PerCore).unwrap();
    let gpu = WgpuBackend::new(pool.clone());
    let model = GpuMixture::new(&gpu, &demo_model()).unwrap();
    let (result, got, moved) = run_with_fault(&pool, &model, true, &|round| {
        if round == 4 {
            pool.gpus()[0].device().destroy();
        }
    });
    assert_eq!(
        result.expect("core 0 restarts from its host copy").rounds,
        20
    );
    assert_eq!(moved, vec![0]);
    assert!(max_abs(&got.unwrap(), &want.unwrap()) < 1e-6);
}

#[test]
fn a_latent_beyond_the_buffer_limit_is_refused_before_any_work() {
    let Some(pool) = pool(1, DeviceSharing::PerAdapter) else {
        return;
    };
    let limit = pool.gpus()[0].max_binding();
    let too_many = (limit / 4 + 1) as usize;
    let err = pool.check_latent(too_many).expect_err("too large");
    assert!(matches!(err, WgpuError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains(&pool.gpus()[0].describe()));
    pool.check_latent(1 << 20).unwrap();
}

#[test]
fn a_host_application_device_is_used_as_is() {
    // The host (a game, say) already has a device; the pool must use it, not create one.
    let Some(probe) = pool(1, DeviceSharing::PerAdapter) else {
        return;
    };
    let info = probe.gpus()[0].info().clone();
    let instance = chords_wgpu::wgpu::Instance::new(
        chords_wgpu::wgpu::InstanceDescriptor::new_without_display_handle(),
    );
    let adapter = pollster::block_on(instance.enumerate_adapters(info.backend.into()))
        .into_iter()
        .find(|a| a.get_info().name == info.name)
        .unwrap();
    let (device, queue) = pollster::block_on(adapter.request_device(&Default::default())).unwrap();
    let pool = Arc::new(DevicePool::from_device(device.clone(), queue, info, 3).unwrap());
    assert_eq!(pool.gpus().len(), 1);
    assert_eq!(pool.gpus()[0].device(), &device);
    let gpu = WgpuBackend::new(pool);
    let model = GpuMixture::new(&gpu, &demo_model()).unwrap();
    let x0 = noise::gaussian(2, 3 * 32 * 32);
    let on_host_device = sample(&gpu, &model, Some("0-3-6"), &x0, 12);
    let on_cpu = sample(&CpuBackend, &demo_model(), Some("0-3-6"), &x0, 12);
    for ((key, g), (_, c)) in on_host_device.iter().zip(&on_cpu) {
        assert!(max_abs(g, c) < 1e-4, "{key:?}");
    }
}
