//! Embedding chords in an existing wgpu app.
//!
//! The "app" here is a plain winit + wgpu program: it owns the window, the instance, the
//! adapter, the device and the frame loop, and draws one textured triangle per frame. It
//! hands clones of its own `wgpu::Device` and `wgpu::Queue` to chords
//! ([`DevicePool::from_device`]); CHORDS samples the built-in mixture on a background
//! thread ([`chords::Background`]: polled each frame, never waited on),
//! every streamed output stays on the device, and each frame the app draws the newest one
//! into its texture with the preview kernel ([`WgpuBackend::preview_to_texture`]) — no copy
//! through the host. Until the first output arrives it draws the newest estimate of the
//! final picture ([`RunOptions::with_estimates`]: the fastest core's, each round).
//!
//! ```text
//! cargo run --release -p chords-wgpu --example embed            # until you close it
//! cargo run --release -p chords-wgpu --example embed -- --exit   # closes after the last output
//! ```
//! (Under Xvfb: `xvfb-run -a cargo run …`.)

use std::sync::Arc;
use std::time::Instant;

use chords::{
    Backend, Background, BackgroundBuilder, Chords, Euler, Event, FlowSchedule, GaussianMixture,
    InitSequence, Prediction, RunOptions, StopRule, Worker, mixture, noise,
};
use chords_wgpu::{DevicePool, GpuLatent, GpuMixture, PreviewTexture, WgpuBackend, wgpu};
use winit::application::ApplicationHandler;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::window::{Window, WindowId};

const STEPS: usize = 50;
const SEQUENCE: &str = "0-2-4-8-16-24-32-40";

/// A streamed output, still on the device.
struct Streamed {
    position: usize,
    round: usize,
    speedup: f64,
    latent: GpuLatent,
}

/// The app's graphics state (what any wgpu app already has), plus the chords pieces.
struct Gfx {
    window: Arc<Window>,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::RenderPipeline,
    bind_group: wgpu::BindGroup,
    // --- chords ---
    backend: Arc<WgpuBackend>,
    shape: Vec<usize>,
    frame: PreviewTexture,
    run: Background<Update, ()>,
    shown: usize,
    finished: Option<String>,
}

/// What the sampling thread tells the frame loop.
enum Update {
    /// A core's estimate of the final picture, before any output has arrived.
    Estimate {
        round: usize,
        core: usize,
        latent: GpuLatent,
    },
    Output(Streamed),
    Finished(String),
}

#[derive(Default)]
struct App {
    gfx: Option<Gfx>,
    exit_after_last: bool,
    frames: usize,
    started: Option<Instant>,
    error: Option<String>,
}

impl Gfx {
    fn new(event_loop: &ActiveEventLoop) -> Result<Self, Box<dyn std::error::Error>> {
        // 1. The app's own window, instance, adapter and device.
        let window = Arc::new(
            event_loop.create_window(
                Window::default_attributes()
                    .with_title("chords embedded in a wgpu app")
                    .with_inner_size(winit::dpi::LogicalSize::new(512, 512)),
            )?,
        );
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_with_display_handle_from_env(
                Box::new(event_loop.owned_display_handle()),
            ));
        let surface = instance.create_surface(window.clone())?;
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            compatible_surface: Some(&surface),
            ..Default::default()
        }))?;
        let (device, queue) =
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))?;
        let size = window.inner_size();
        let mut config = surface
            .get_default_config(&adapter, size.width.max(1), size.height.max(1))
            .ok_or("the surface does not fit this adapter")?;
        // The preview texture holds display-ready bytes: draw them to a non-sRGB target.
        let caps = surface.get_capabilities(&adapter);
        if let Some(format) = caps.formats.iter().find(|f| !f.is_srgb()) {
            config.format = *format;
        }
        surface.configure(&device, &config);

        // 2. chords on the app's device: every core shares it.
        let pool = DevicePool::from_device(device.clone(), queue.clone(), adapter.get_info(), 8)?;
        let backend = Arc::new(WgpuBackend::new(Arc::new(pool)));
        let (means, shape) = mixture::demo_means();
        let latent_shape = shape[1..].to_vec();
        let frame = PreviewTexture::new(&device, &latent_shape)?;

        // 3. The app's pipeline: one triangle covering the window, sampling `frame`.
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("blit"),
            source: wgpu::ShaderSource::Wgsl(BLIT.into()),
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("blit"),
            layout: None,
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: Default::default(),
            depth_stencil: None,
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs"),
                compilation_options: Default::default(),
                targets: &[Some(config.format.into())],
            }),
            multiview_mask: None,
            cache: None,
        });
        let sampler = device.create_sampler(&wgpu::SamplerDescriptor::default()); // nearest
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("blit"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::TextureView(frame.view()),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::Sampler(&sampler),
                },
            ],
        });

        // 4. Sampling on a background thread (chords::Background); outputs come back as
        //    device handles, and each one asks the window for a redraw.
        let backend_for_run = backend.clone();
        let wake = window.clone();
        let run = BackgroundBuilder::new()
            .name("chords-sampling")
            .wake(Arc::new(move || wake.request_redraw()))
            .spawn(move |worker: &Worker<Update>| {
                let backend = backend_for_run.as_ref();
                let summary = (|| -> Result<String, Box<dyn std::error::Error>> {
                    let cpu = GaussianMixture::new(means, shape, 0.05, Prediction::Velocity)?;
                    let model = GpuMixture::new(backend, &cpu)?;
                    let solver = Arc::new(Euler::new(FlowSchedule::new(STEPS, 1.0)?));
                    let numel = cpu.latent_shape().iter().product();
                    let x0 = backend.upload(0, &noise::gaussian(7, numel))?;
                    let init = InitSequence::parse(SEQUENCE, STEPS)?;
                    let mut sampler = Chords::new(solver, init, x0)?;
                    let options = RunOptions::default()
                        .with_stop(StopRule::All)
                        .with_estimates(true);
                    // Estimates come slowest core first: the last of a round is the
                    // fastest core's, the one sent.
                    let mut fastest: Option<Update> = None;
                    let mut output_seen = false;
                    let summary =
                        worker.run(&mut sampler, backend, &model, &options, &mut |e| match e {
                            Event::Estimate {
                                round,
                                core,
                                latent,
                                ..
                            } if !output_seen => {
                                fastest = Some(Update::Estimate {
                                    round: *round,
                                    core: *core,
                                    latent: latent.clone(),
                                });
                            }
                            Event::RoundFinished { .. } => {
                                if let Some(estimate) = fastest.take() {
                                    worker.send(estimate);
                                }
                            }
                            Event::Preview(o) | Event::Hit(o) => {
                                output_seen = true;
                                fastest = None;
                                worker.send(Update::Output(Streamed {
                                    position: o.position,
                                    round: o.round,
                                    speedup: o.speedup,
                                    latent: o.latent.clone(),
                                }));
                            }
                            _ => {}
                        })?;
                    Ok(format!(
                        "{} rounds, {} model calls",
                        summary.rounds, summary.model_calls
                    ))
                })();
                worker.send(Update::Finished(
                    summary.unwrap_or_else(|e| format!("error: {e}")),
                ));
            })?;

        Ok(Self {
            window,
            surface,
            config,
            device,
            queue,
            pipeline,
            bind_group,
            backend,
            shape: latent_shape,
            frame,
            run,
            shown: 0,
            finished: None,
        })
    }

    /// One frame of the app: take the newest output, draw it into the texture on the
    /// device, draw the texture to the window.
    fn redraw(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        let mut newest = None;
        let mut estimate = None;
        for update in self.run.poll() {
            match update {
                Update::Estimate {
                    round,
                    core,
                    latent,
                } => estimate = Some((round, core, latent)),
                Update::Output(output) => newest = Some(output),
                Update::Finished(summary) => self.finished = Some(summary),
            }
        }
        if let (None, Some((round, core, latent))) = (&newest, estimate) {
            self.backend
                .preview_to_texture(&latent, &self.shape, &self.frame)?;
            self.window.set_title(&format!(
                "chords: core {core}'s estimate after round {round}, waiting for the first output"
            ));
        }
        if let Some(newest) = newest {
            self.backend
                .preview_to_texture(&newest.latent, &self.shape, &self.frame)?;
            self.shown = newest.position;
            let what = if newest.position == 0 {
                "preview".to_string()
            } else {
                format!("hit {}", newest.position)
            };
            self.window.set_title(&format!(
                "chords: {what} at round {} ({:.2}× faster than sequential)",
                newest.round, newest.speedup
            ));
        }
        let target = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(t)
            | wgpu::CurrentSurfaceTexture::Suboptimal(t) => t,
            wgpu::CurrentSurfaceTexture::Outdated | wgpu::CurrentSurfaceTexture::Lost => {
                self.surface.configure(&self.device, &self.config);
                return Ok(());
            }
            _ => return Ok(()),
        };
        let view = target.texture.create_view(&Default::default());
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("app frame"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[]);
            pass.draw(0..3, 0..1);
        }
        self.queue.submit([encoder.finish()]);
        self.window.pre_present_notify();
        self.queue.present(target);
        Ok(())
    }

    fn resize(&mut self, width: u32, height: u32) {
        self.config.width = width.max(1);
        self.config.height = height.max(1);
        self.surface.configure(&self.device, &self.config);
    }
}

impl ApplicationHandler for App {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.gfx.is_some() {
            return;
        }
        match Gfx::new(event_loop) {
            Ok(gfx) => {
                self.started = Some(Instant::now());
                self.gfx = Some(gfx);
            }
            Err(e) => {
                self.error = Some(e.to_string());
                event_loop.exit();
            }
        }
    }

    fn window_event(&mut self, event_loop: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        let Some(gfx) = &mut self.gfx else { return };
        match event {
            WindowEvent::CloseRequested => event_loop.exit(),
            WindowEvent::Resized(size) => gfx.resize(size.width, size.height),
            WindowEvent::RedrawRequested => {
                // Updates arrive in order: when the summary is in, this frame drew the last
                // output.
                if let Err(e) = gfx.redraw() {
                    self.error = Some(e.to_string());
                    event_loop.exit();
                    return;
                }
                self.frames += 1;
                if let Some(summary) = gfx.finished.clone()
                    && self.exit_after_last
                {
                    println!(
                        "showed output {} (the last) after {} frames in {:.2} s; the run took {summary}",
                        gfx.shown,
                        self.frames,
                        self.started.map_or(0.0, |s| s.elapsed().as_secs_f64())
                    );
                    event_loop.exit();
                }
            }
            _ => {}
        }
    }
}

/// The app's own shader: a triangle covering the window, sampling the preview texture.
const BLIT: &str = r#"
@group(0) @binding(0) var frame: texture_2d<f32>;
@group(0) @binding(1) var pick: sampler;

struct Varyings {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
}

@vertex
fn vs(@builtin(vertex_index) i: u32) -> Varyings {
    let corner = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var out: Varyings;
    out.position = vec4<f32>(corner * 2.0 - 1.0, 0.0, 1.0);
    out.uv = vec2<f32>(corner.x, 1.0 - corner.y);
    return out;
}

@fragment
fn fs(v: Varyings) -> @location(0) vec4<f32> {
    return textureSample(frame, pick, v.uv);
}
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let event_loop = EventLoop::new()?;
    let mut app = App {
        exit_after_last: std::env::args().any(|a| a == "--exit"),
        ..Default::default()
    };
    event_loop.run_app(&mut app)?;
    match app.error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
