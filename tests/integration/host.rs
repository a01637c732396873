//! chords on a host application's own wgpu device: the host keeps its error handler and
//! device-lost callback, chords still notices its own failures, and a model written as the
//! host's own compute shader writes straight into chords's latents.
//!
//! Without an adapter these tests skip with a message, except under `CI=true`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chords::{
    Backend, Chords, CpuBackend, Euler, Event, FlowSchedule, InitSequence, Model, ModelError,
    RunOptions, StopRule, Timestep, run,
};
use chords_wgpu::wgpu;
use chords_wgpu::{DevicePool, GpuLatent, WgpuBackend};

/// A device and queue as a host application makes them, or `None` (skipped) outside CI.
fn host_device() -> Option<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = match pollster::block_on(instance.request_adapter(&Default::default())) {
        Ok(adapter) => adapter,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: no wgpu adapter ({e})");
            return None;
        }
        Err(e) => panic!("no usable wgpu adapter (CI=true requires one): {e}"),
    };
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    Some((adapter, device, queue))
}

/// Provokes a validation error on `device`: a buffer both mappable for reading and usable
/// as storage, which wgpu refuses without a native-only feature.
fn invalid_buffer(device: &wgpu::Device) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    })
}

#[test]
fn a_pool_on_the_hosts_device_leaves_the_hosts_handlers_in_place() {
    let Some((adapter, device, queue)) = host_device() else {
        return;
    };
    let host_errors = Arc::new(AtomicUsize::new(0));
    let seen = host_errors.clone();
    device.on_uncaptured_error(Arc::new(move |_: wgpu::Error| {
        seen.fetch_add(1, Ordering::SeqCst);
    }));
    let lost = Arc::new(Mutex::new(None::<String>));
    let lost_in_callback = lost.clone();
    device.set_device_lost_callback(move |reason, _| {
        *lost_in_callback.lock().unwrap() = Some(format!("{reason:?}"));
    });
    let pool =
        Arc::new(DevicePool::from_device(device.clone(), queue, adapter.get_info(), 2).unwrap());
    let backend = WgpuBackend::new(pool);

    // chords's own work succeeds and reports nothing to the host.
    let x = backend.upload(0, &[1.0, 2.0, 3.0]).unwrap();
    let y = backend.lincomb(1, &[(2.0, &x), (-1.0, &x)]).unwrap();
    assert_eq!(backend.download(&y).unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(host_errors.load(Ordering::SeqCst), 0);

    // The host's own error still reaches the host's handler, and chords carries on.
    let _bad = invalid_buffer(&device);
    assert_eq!(
        host_errors.load(Ordering::SeqCst),
        1,
        "the host's handler sees its error"
    );
    let z = backend.lincomb(0, &[(1.0, &y)]).unwrap();
    assert_eq!(backend.download(&z).unwrap(), vec![1.0, 2.0, 3.0]);

    // A failure of chords's own work is chords's error, not the host's: a latent whose
    // buffer was destroyed behind chords's back.
    let doomed = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("doomed"),
        size: chords_wgpu::latent_bytes(3),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let wrapped = backend.wrap_buffer(0, doomed.clone(), 3).unwrap();
    doomed.destroy();
    let err = backend.lincomb(0, &[(1.0, &wrapped)]).unwrap_err();
    assert!(err.to_string().contains("destroyed"), "{err}");
    assert_eq!(
        host_errors.load(Ordering::SeqCst),
        1,
        "chords's error stays chords's"
    );
    // ... and the device now counts as failed for chords.
    assert!(backend.upload(0, &[1.0]).is_err());

    // The host's device-lost callback is still the host's.
    device.destroy();
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
    assert!(
        lost.lock().unwrap().is_some(),
        "the host's device-lost callback ran"
    );
}

#[test]
fn a_pool_chords_created_still_notices_errors() {
    let Some(pool) = DevicePool::new(&chords_wgpu::PoolOptions::new(1))
        .ok()
        .map(Arc::new)
    else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true requires an adapter"
        );
        return;
    };
    let backend = WgpuBackend::new(pool.clone());
    let gpu = &pool.gpus()[0];
    let x = backend.upload(0, &[1.0, 2.0]).unwrap();
    // An error on a device chords owns goes to chords's handler and fails the device.
    let _bad = invalid_buffer(gpu.device());
    let err = backend.lincomb(0, &[(1.0, &x)]).unwrap_err();
    assert!(err.to_string().contains("failed"), "{err}");
}

/// The host's own model as a compute shader: `out = -x · t`, dispatched on the device with
/// the input latent's buffer bound read-only and chords's output latent as the output.
struct ShaderModel {
    backend: Arc<WgpuBackend>,
    pipeline: wgpu::ComputePipeline,
    /// Use an application-made buffer (wrapped) instead of chords's own output latent.
    own_buffer: bool,
    calls: AtomicUsize,
}

const SHADER: &str = r"
struct Params { len: u32, t: f32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < params.len {
        out[id.x] = -x[id.x] * params.t;
    }
}
";

impl ShaderModel {
    fn new(backend: Arc<WgpuBackend>, own_buffer: bool) -> Self {
        let device = backend.pool().gpus()[0].device().clone();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("host model"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("host model"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self {
            backend,
            pipeline,
            own_buffer,
            calls: AtomicUsize::new(0),
        }
    }
}

impl Model<WgpuBackend> for ShaderModel {
    fn evaluate(&self, _core: usize, x: &GpuLatent, t: &Timestep) -> Result<GpuLatent, ModelError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let gpu = &self.backend.pool().gpus()[x.gpu_index()];
        let device = gpu.device();
        let out = if self.own_buffer {
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("host output"),
                size: chords_wgpu::latent_bytes(x.len()),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.backend.wrap_buffer(x.gpu_index(), buffer, x.len())
        } else {
            self.backend.output_latent(x.gpu_index(), x.len())
        }
        .map_err(|e| ModelError::new(e.to_string()))?;
        let mut params = Vec::new();
        params.extend_from_slice(&(x.len() as u32).to_le_bytes());
        params.extend_from_slice(&(t.t as f32).to_le_bytes());
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("host params"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        params.resize(16, 0);
        gpu.queue().write_buffer(&uniform, 0, &params);
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: x.buffer().as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: out.buffer().as_entire_binding(),
                },
            ],
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups((x.len() as u32).div_ceil(64), 1, 1);
        }
        gpu.queue().submit([encoder.finish()]);
        Ok(out)
    }
}

/// The same model on the CPU.
struct CpuShrink;

impl Model<CpuBackend> for CpuShrink {
    fn evaluate(
        &self,
        _core: usize,
        x: &chords::CpuLatent,
        t: &Timestep,
    ) -> Result<chords::CpuLatent, ModelError> {
        let t = t.t as f32;
        Ok(x.as_slice()
            .iter()
            .map(|v| -v * t)
            .collect::<Vec<_>>()
            .into())
    }
}

/// CHORDS's hits of `model` on `backend` from the same noise, as host data.
fn hits<B: Backend, M: Model<B>>(backend: &B, model: &M) -> Vec<Vec<f32>> {
    let solver = Arc::new(Euler::new(FlowSchedule::new(12, 1.0).unwrap()));
    let x0 = backend
        .upload(0, &chords::noise::gaussian(3, 1000))
        .unwrap();
    let init = InitSequence::parse("0-3-6", 12).unwrap();
    let mut sampler = Chords::new(solver, init, x0).unwrap();
    let mut hits = Vec::new();
    let options = RunOptions::default()
        .with_threads(1)
        .with_stop(StopRule::All);
    run(&mut sampler, backend, model, &options, &mut |e| {
        if let Event::Hit(h) = e {
            hits.push(backend.download(&h.latent).unwrap());
        }
    })
    .unwrap();
    hits
}

#[test]
fn a_models_own_compute_shader_writes_into_chords_latents() {
    let Some((adapter, device, queue)) = host_device() else {
        return;
    };
    let pool = Arc::new(DevicePool::from_device(device, queue, adapter.get_info(), 3).unwrap());
    let backend = Arc::new(WgpuBackend::new(pool.clone()));
    let want = hits(&CpuBackend, &CpuShrink);
    assert_eq!(want.len(), 3);
    for own_buffer in [false, true] {
        let model = ShaderModel::new(backend.clone(), own_buffer);
        let got = hits(backend.as_ref(), &model);
        assert!(
            model.calls.load(Ordering::SeqCst) > 12,
            "the shader ran every round"
        );
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            let err = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(err < 1e-5, "own buffer {own_buffer}: {err}");
        }
    }
    // Every latent went back to chords or was released: nothing leaks.
    assert_eq!(pool.gpus()[0].buffers_in_use(), 0);
    // A buffer that cannot hold the latent is refused with the reason.
    let small = pool.gpus()[0]
        .device()
        .create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 16,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
    let err = backend
        .wrap_buffer(0, small.clone(), 100)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 400 bytes"), "{err}");
    let err = backend.wrap_buffer(0, small, 4).unwrap_err().to_string();
    assert!(err.contains("COPY_DST"), "{err}");
    assert!(
        backend
            .output_latent(7, 4)
            .unwrap_err()
            .to_string()
            .contains("no device 7")
    );
}
