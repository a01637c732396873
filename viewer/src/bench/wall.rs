//! `bench --wall`: the wall time to each sampler's output on this machine, and
//! `wall_speedup`, the fastest sequential solve's wall time measured in the same run over
//! this row's.
//!
//! Configurations:
//! * `cpu-threads` (a): the CPU backend, K cores on K worker threads, one model call per
//!   core at a time (the emoji network unbatched); the sequential solve's model call uses
//!   every thread (burn-ndarray's own parallelism).
//! * `cpu-lanes` (b, on the CPU): a round's calls as one batched forward pass.
//! * `wgpu-lanes` (b): one wgpu device (the first hardware adapter, else the first one:
//!   lavapipe here), a round as one batched forward pass.
//! * `wgpu-per-core` (c): one wgpu device per core on that adapter.
//!
//! `efficiency` = `wall_speedup / speedup`: 1 when a round of K calls costs what one
//! sequential call does. `device_wall_speedup` and `device_efficiency` are the same
//! against the sequential solve of the row's own configuration (a GPU against itself).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chords::{
    Backend, CpuBackend, Event, GaussianMixture, Model, RunOptions, Solver, StopRule, run,
};
use chords_burn::WgpuBurnModel;
use chords_emoji::EmojiModel;
use chords_wgpu::{DevicePool, DeviceSharing, Gpu, GpuMixture, PoolOptions, WgpuBackend};
use clap::ValueEnum;
use serde::Serialize;

use crate::job::Method;

/// The configurations `--wall` can time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WallConfig {
    /// (a) CPU, a worker thread per core.
    CpuThreads,
    /// (b) on the CPU: a round as one batched forward pass.
    CpuLanes,
    /// (b) one wgpu device, a round as one batched forward pass.
    WgpuLanes,
    /// (c) one wgpu device per core.
    WgpuPerCore,
}

/// One configuration's name and the devices it ran on.
#[derive(Debug, Clone)]
pub(super) struct Configuration {
    pub name: &'static str,
    pub device: String,
    /// Worker threads per run: one per core (`cpu-threads`) or one.
    pub thread_per_core: bool,
}

/// A sampler to time: the main table's rows.
#[derive(Debug, Clone)]
pub(super) struct Case {
    pub init: Option<&'static str>,
    pub method: Method,
}

/// One line of the wall-clock table (and of `bench.json`'s `wall`).
#[derive(Debug, Clone, Serialize)]
pub(super) struct WallRow {
    pub model: &'static str,
    pub configuration: &'static str,
    pub device: String,
    pub sampler: &'static str,
    pub init: Option<&'static str>,
    pub cores: usize,
    /// T / rounds to the output.
    pub speedup: f64,
    /// Mean wall time to the output over the samples.
    pub wall_ms: f64,
    /// The fastest sequential solve's `wall_ms` (any configuration) over this row's.
    pub wall_speedup: f64,
    /// `wall_speedup / speedup`.
    pub efficiency: f64,
    /// The sequential solve's `wall_ms` in this row's configuration over this row's: the
    /// speed-up on this device alone.
    pub device_wall_speedup: f64,
    /// `device_wall_speedup / speedup`.
    pub device_efficiency: f64,
}

/// Times every case on `backend` and `model`, from every starting point: a warm-up run of
/// the sequential solve first, then each case's runs to its first output.
pub(super) fn time_cases<B: Backend, M: Model<B>>(
    model_name: &'static str,
    configuration: &Configuration,
    backend: &B,
    model: &M,
    job: &Timing<'_>,
    on_run: &mut dyn FnMut(String),
) -> Result<Vec<WallRow>> {
    let Timing {
        solver,
        cases,
        starts,
    } = *job;
    let steps = solver.steps();
    let once = |method: &Method, x0: &[f32]| -> Result<(usize, f64, &'static str)> {
        let x0 = backend.upload(0, x0)?;
        let mut sampler = method.build::<B>(solver.clone(), x0)?;
        let threads = if configuration.thread_per_core {
            method.cores()
        } else {
            1
        };
        let options = RunOptions::default()
            .with_threads(threads)
            .with_stop(StopRule::CoreIndex(1));
        let started = Instant::now();
        let mut first = None;
        run(sampler.as_mut(), backend, model, &options, &mut |e| {
            if let Event::Hit(o) = e
                && o.position == 1
            {
                first = Some(o.round);
            }
        })?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        Ok((
            first.context("the run produced no output")?,
            ms,
            sampler.name(),
        ))
    };
    // Shader compilation, allocations and caches warm up on a run nobody times.
    if let Some(x0) = starts.first() {
        once(&Method::Sequential, x0)?;
    }
    let mut rows = Vec::new();
    for case in cases {
        let n = starts.len().max(1) as f64;
        let (mut rounds, mut ms, mut name) = (0.0, 0.0, "");
        for x0 in starts {
            on_run(format!(
                "{} {} K={} on {}",
                case.init.unwrap_or(""),
                model_name,
                case.method.cores(),
                configuration.name
            ));
            let (r, t, sampler) = once(&case.method, x0)?;
            rounds += r as f64 / n;
            ms += t / n;
            name = sampler;
        }
        rows.push(WallRow {
            model: model_name,
            configuration: configuration.name,
            device: configuration.device.clone(),
            sampler: name,
            init: case.init,
            cores: case.method.cores(),
            speedup: steps as f64 / rounds,
            wall_ms: ms,
            wall_speedup: f64::NAN,
            efficiency: f64::NAN,
            device_wall_speedup: f64::NAN,
            device_efficiency: f64::NAN,
        });
    }
    Ok(rows)
}

/// A benchmark model that can also be timed on wgpu.
pub(super) trait WallModel: Model<CpuBackend> + Clone {
    /// This model with a round's calls batched into one forward pass, or not.
    fn batched(&self, on: bool) -> Self;

    /// [`time_cases`] with this model on `backend`'s devices.
    fn time_on_wgpu(
        &self,
        name: &'static str,
        configuration: &Configuration,
        backend: &WgpuBackend,
        job: &Timing<'_>,
        on_run: &mut dyn FnMut(String),
    ) -> Result<Vec<WallRow>>;
}

/// What every configuration times: the solver, the cases and the starting points.
pub(super) struct Timing<'a> {
    pub solver: &'a Arc<dyn Solver>,
    pub cases: &'a [Case],
    pub starts: &'a [Vec<f32>],
}

impl WallModel for GaussianMixture {
    fn batched(&self, _: bool) -> Self {
        self.clone()
    }

    fn time_on_wgpu(
        &self,
        name: &'static str,
        configuration: &Configuration,
        backend: &WgpuBackend,
        job: &Timing<'_>,
        on_run: &mut dyn FnMut(String),
    ) -> Result<Vec<WallRow>> {
        let model = GpuMixture::new(backend, self)?;
        time_cases(name, configuration, backend, &model, job, on_run)
    }
}

impl WallModel for EmojiModel {
    fn batched(&self, on: bool) -> Self {
        self.clone().with_batching(on)
    }

    fn time_on_wgpu(
        &self,
        name: &'static str,
        configuration: &Configuration,
        backend: &WgpuBackend,
        job: &Timing<'_>,
        on_run: &mut dyn FnMut(String),
    ) -> Result<Vec<WallRow>> {
        let model = WgpuBurnModel::new(self.burn(), backend)?;
        time_cases(name, configuration, backend, &model, job, on_run)
    }
}

/// Times `job` in every configuration of `configs`: the cases of each K on a device pool
/// of K cores for the wgpu ones. A wgpu configuration with no adapter is left out with a
/// warning.
pub(super) fn time_everywhere<M: WallModel>(
    name: &'static str,
    model: &M,
    job: &Timing<'_>,
    configs: &[WallConfig],
    on_run: &mut dyn FnMut(String),
) -> Result<Vec<WallRow>> {
    let mut rows = Vec::new();
    let mut ks: Vec<usize> = job.cases.iter().map(|c| c.method.cores()).collect();
    ks.dedup();
    // Probed once, on the first wgpu configuration.
    let mut device: Option<Result<Arc<Gpu>, String>> = None;
    for &config in configs {
        match config {
            WallConfig::CpuThreads | WallConfig::CpuLanes => {
                let lanes = config == WallConfig::CpuLanes;
                let configuration = Configuration {
                    name: if lanes { "cpu-lanes" } else { "cpu-threads" },
                    device: format!(
                        "CPU, {} threads",
                        std::thread::available_parallelism().map_or(1, |n| n.get())
                    ),
                    thread_per_core: !lanes,
                };
                let model = model.batched(lanes);
                rows.extend(time_cases(
                    name,
                    &configuration,
                    &CpuBackend,
                    &model,
                    job,
                    on_run,
                )?);
            }
            WallConfig::WgpuLanes | WallConfig::WgpuPerCore => {
                let per_core = config == WallConfig::WgpuPerCore;
                let gpu = match device.get_or_insert_with(wall_device) {
                    Ok(gpu) => gpu.clone(),
                    Err(e) => {
                        eprintln!("warning: --wall leaves out {config:?}: {e}");
                        continue;
                    }
                };
                let model = model.batched(true);
                for &k in &ks {
                    let pool = if per_core {
                        DevicePool::new(
                            &PoolOptions::new(k)
                                .with_adapters(vec![gpu.info().name.clone()])
                                .with_sharing(DeviceSharing::PerCore),
                        )?
                    } else {
                        let (instance, adapter) =
                            gpu.setup().context("the probed device has no adapter")?;
                        DevicePool::from_setup(
                            instance.clone(),
                            adapter.clone(),
                            gpu.device().clone(),
                            gpu.queue().clone(),
                            k,
                        )?
                    };
                    let configuration = Configuration {
                        name: if per_core {
                            "wgpu-per-core"
                        } else {
                            "wgpu-lanes"
                        },
                        device: format!("{} × {}", pool.gpus().len(), gpu.info().name),
                        thread_per_core: false,
                    };
                    let cases: Vec<Case> = job
                        .cases
                        .iter()
                        .filter(|c| c.method.cores() == k)
                        .cloned()
                        .collect();
                    let of_k = Timing {
                        cases: &cases,
                        ..*job
                    };
                    let backend = WgpuBackend::new(Arc::new(pool));
                    rows.extend(model.time_on_wgpu(
                        name,
                        &configuration,
                        &backend,
                        &of_k,
                        on_run,
                    )?);
                }
            }
        }
    }
    Ok(rows)
}

/// The device the wgpu configurations time: the first hardware adapter's, else the first
/// one's (lavapipe without a GPU), or why there is none.
fn wall_device() -> Result<Arc<Gpu>, String> {
    let probe = DevicePool::new(&PoolOptions::new(64)).map_err(|e| e.to_string())?;
    probe
        .gpus()
        .iter()
        .find(|g| g.info().device_type != chords_wgpu::wgpu::DeviceType::Cpu)
        .or_else(|| probe.gpus().first())
        .cloned()
        .ok_or_else(|| "the device pool has no device".to_string())
}

/// Fills in the speed-ups and efficiencies: against each model's fastest sequential row,
/// and against the sequential row of the same configuration.
pub(super) fn relate(rows: &mut [WallRow]) {
    let fastest = |rows: &[WallRow], model: &str, configuration: Option<&str>| {
        rows.iter()
            .filter(|r| r.model == model && r.sampler == "sequential")
            .filter(|r| configuration.is_none_or(|c| r.configuration == c))
            .map(|r| r.wall_ms)
            .fold(f64::INFINITY, f64::min)
    };
    for i in 0..rows.len() {
        let anywhere = fastest(rows, rows[i].model, None);
        let here = fastest(rows, rows[i].model, Some(rows[i].configuration));
        let r = &mut rows[i];
        r.wall_speedup = anywhere / r.wall_ms;
        r.efficiency = r.wall_speedup / r.speedup;
        r.device_wall_speedup = here / r.wall_ms;
        r.device_efficiency = r.device_wall_speedup / r.speedup;
    }
}

/// The wall-clock tables, one per model.
pub(super) fn markdown(rows: &[WallRow], samples: usize) -> String {
    let mut text = String::new();
    let mut models: Vec<&str> = rows.iter().map(|r| r.model).collect();
    models.dedup();
    for model in models {
        text += &format!(
            "\n### {model}: wall time to the output on this machine ({samples} sample(s)); \
             wall speed-up against the fastest sequential solve\n\n"
        );
        text += "| configuration | device | sampler | init | K | speed-up | wall (ms) | wall speed-up | efficiency | on its device | efficiency there |\n";
        text += "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
        for r in rows.iter().filter(|r| r.model == model) {
            text += &format!(
                "| {} | {} | {} | {} | {} | {:.2}× | {:.1} | {:.2}× | {:.2} | {:.2}× | {:.2} |\n",
                r.configuration,
                r.device,
                r.sampler,
                r.init.unwrap_or("–"),
                r.cores,
                r.speedup,
                r.wall_ms,
                r.wall_speedup,
                r.efficiency,
                r.device_wall_speedup,
                r.device_efficiency
            );
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(configuration: &'static str, sampler: &'static str, speedup: f64, ms: f64) -> WallRow {
        WallRow {
            model: "m",
            configuration,
            device: "d".into(),
            sampler,
            init: None,
            cores: 2,
            speedup,
            wall_ms: ms,
            wall_speedup: f64::NAN,
            efficiency: f64::NAN,
            device_wall_speedup: f64::NAN,
            device_efficiency: f64::NAN,
        }
    }

    #[test]
    fn wall_speedup_is_against_the_fastest_sequential_solve_of_the_model() {
        let mut rows = vec![
            row("a", "sequential", 1.0, 100.0),
            row("b", "sequential", 1.0, 400.0),
            row("a", "chords", 2.0, 80.0),
            row("b", "chords", 2.0, 200.0),
        ];
        relate(&mut rows);
        let got: Vec<(f64, f64)> = rows
            .iter()
            .map(|r| (r.wall_speedup, r.efficiency))
            .collect();
        assert_eq!(
            got,
            vec![(1.0, 1.0), (0.25, 0.25), (1.25, 0.625), (0.5, 0.25)]
        );
        // On its own device: b's chords against b's sequential, 400 / 200.
        let here: Vec<f64> = rows.iter().map(|r| r.device_wall_speedup).collect();
        assert_eq!(here, vec![1.0, 1.0, 1.25, 2.0]);
        assert_eq!(rows[3].device_efficiency, 1.0);
    }
}
