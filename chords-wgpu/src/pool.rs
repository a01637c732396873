//! The device pool: which `wgpu::Device` each CHORDS core runs on.
//!
//! Adapters are enumerated across every compiled-in backend (Vulkan, Metal, DX12, GL;
//! lavapipe's software Vulkan on a machine without a GPU). Cores map onto devices round
//! robin: one device per adapter shared by its cores ([`DeviceSharing::PerAdapter`], no
//! copies between cores on one adapter), or a device per core ([`DeviceSharing::PerCore`]).
//! A host application passes its own device and queue with [`DevicePool::from_device`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::buffers::FreeList;
use crate::error::WgpuError;
use crate::kernels::Kernels;

/// How long a blocking wait on a device may take before it counts as a hang.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

/// How cores share devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeviceSharing {
    /// One device per adapter; cores on the same adapter share it (no copies between them).
    #[default]
    PerAdapter,
    /// One device per core, even on a single adapter (each core's data is separate, as on
    /// several GPUs; transfers go through the host).
    PerCore,
}

/// What devices to create.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PoolOptions {
    /// Number of CHORDS cores.
    pub cores: usize,
    /// Backends to look on (default: all compiled in, overridable with `WGPU_BACKEND`).
    pub backends: wgpu::Backends,
    /// Adapters to use, each a case-insensitive substring of an adapter's name or its index
    /// in [`list_adapters`]; empty means every distinct physical device (a GPU that several
    /// APIs expose is used once, preferring Vulkan, Metal, DX12, then GL).
    pub adapters: Vec<String>,
    /// How cores share devices.
    pub sharing: DeviceSharing,
}

impl PoolOptions {
    /// `cores` cores on every adapter found, one device per adapter.
    pub fn new(cores: usize) -> Self {
        Self {
            cores,
            backends: wgpu::Backends::all().with_env(),
            adapters: Vec::new(),
            sharing: DeviceSharing::PerAdapter,
        }
    }

    /// These options on the adapters `adapters` (names or indices, as in
    /// [`adapters`](Self::adapters)).
    #[must_use]
    pub fn with_adapters(mut self, adapters: Vec<String>) -> Self {
        self.adapters = adapters;
        self
    }

    /// These options with devices shared as `sharing` says.
    ///
    /// ```
    /// use chords_wgpu::{DeviceSharing, PoolOptions};
    /// let options = PoolOptions::new(4).with_sharing(DeviceSharing::PerCore);
    /// assert_eq!(options.sharing, DeviceSharing::PerCore);
    /// ```
    #[must_use]
    pub fn with_sharing(mut self, sharing: DeviceSharing) -> Self {
        self.sharing = sharing;
        self
    }
}

/// One device with its queue, adapter description and compiled kernels.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(crate) kernels: Kernels,
    pub(crate) free: Arc<FreeList>,
    /// Set when the device is lost or reports an error in chords's work.
    failure: Arc<Mutex<Option<String>>>,
    /// Whether the host application owns the device ([`DevicePool::from_device`]): its
    /// error handler and device-lost callback stay the host's, and chords catches the
    /// errors of its own work in error scopes ([`Gpu::guarded`]).
    hosted: bool,
    /// Unique to this `Gpu` in the process (see [`Gpu::id`]).
    id: u64,
    /// The instance and adapter behind the device, when the pool created it or was given
    /// them (burn-wgpu needs both to adopt the device).
    setup: Option<(wgpu::Instance, wgpu::Adapter)>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.describe())
            .finish()
    }
}

impl Gpu {
    /// A device the pool created (`hosted: false`: chords installs its own error handler
    /// and device-lost callback on it) or the host application's (`hosted: true`: both
    /// left alone).
    fn new(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        hosted: bool,
    ) -> Self {
        let failure = Arc::new(Mutex::new(None));
        if !hosted {
            let lost = failure.clone();
            device.set_device_lost_callback(move |reason, message| {
                if let Ok(mut f) = lost.lock() {
                    f.get_or_insert(one_line(&format!("device lost ({reason:?}): {message}")));
                }
            });
            let errors = failure.clone();
            device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
                if let Ok(mut f) = errors.lock() {
                    f.get_or_insert(one_line(&error.to_string()));
                }
            }));
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            device,
            queue,
            info,
            kernels: Kernels::default(),
            free: Arc::default(),
            failure,
            hosted,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            setup: None,
        }
    }

    /// Runs `work`, chords's own commands on this device, once the device is known to be
    /// sound. On a host application's device `work` runs inside error scopes (validation,
    /// out of memory, internal), so its errors come back here, fail the device for chords
    /// and are not reported to the host's handler, while the host's own errors stay the
    /// host's. On a device the pool created, chords's uncaptured-error handler sees them.
    pub(crate) fn guarded<R, E: From<WgpuError>>(
        &self,
        work: impl FnOnce() -> Result<R, E>,
    ) -> Result<R, E> {
        self.check()?;
        if !self.hosted {
            return work();
        }
        let scopes = [
            wgpu::ErrorFilter::Validation,
            wgpu::ErrorFilter::OutOfMemory,
            wgpu::ErrorFilter::Internal,
        ]
        .map(|filter| self.device.push_error_scope(filter));
        let result = work();
        let mut error = None;
        // Scopes pop in reverse order; every one is popped, the first error kept.
        for scope in scopes.into_iter().rev() {
            if let Some(e) = pollster::block_on(scope.pop()) {
                error.get_or_insert(e);
            }
        }
        match error {
            Some(e) => Err(self.fail(e.to_string()).into()),
            None => result,
        }
    }

    /// A number no other `Gpu` of this process has. (`wgpu::Device`'s own equality compares
    /// ids that each wgpu instance numbers from the start, so devices of two instances can
    /// compare equal; this cannot.)
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The instance and adapter behind the device, if known.
    pub fn setup(&self) -> Option<(&wgpu::Instance, &wgpu::Adapter)> {
        self.setup.as_ref().map(|(i, a)| (i, a))
    }

    /// The adapter, e.g. `llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan]`.
    pub fn describe(&self) -> String {
        format!("{} [{:?}]", self.info.name, self.info.backend)
    }

    /// The adapter's details.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Storage buffers of this device in use (latents and model data alive anywhere); a
    /// finished or cancelled run leaves this where it found it.
    pub fn buffers_in_use(&self) -> usize {
        self.free.in_use()
    }

    /// The largest buffer, in bytes, a kernel can bind on this device.
    pub fn max_binding(&self) -> u64 {
        let limits = self.device.limits();
        limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
    }

    /// An error if the device has been lost or has failed.
    pub(crate) fn check(&self) -> Result<(), WgpuError> {
        match self.failure.lock().map(|f| f.clone()) {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => Err(WgpuError::Device {
                adapter: self.describe(),
                reason,
            }),
            Err(_) => Err(WgpuError::Device {
                adapter: self.describe(),
                reason: "state poisoned".into(),
            }),
        }
    }

    /// Records a failure seen by a caller (a failed map or poll).
    pub(crate) fn fail(&self, reason: impl Into<String>) -> WgpuError {
        let reason = one_line(&reason.into());
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(reason.clone());
        }
        WgpuError::Device {
            adapter: self.describe(),
            reason,
        }
    }

    /// Checks that a buffer of `bytes` bytes can be bound on this device.
    pub fn check_size(&self, what: &str, bytes: u64) -> Result<(), WgpuError> {
        let limit = self.max_binding();
        if bytes > limit {
            return Err(WgpuError::TooLarge {
                what: what.into(),
                bytes,
                limit,
                adapter: self.describe(),
            });
        }
        Ok(())
    }

    /// Blocks until the device has finished its submitted work (with a timeout).
    pub fn wait(&self) -> Result<(), WgpuError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(WAIT_TIMEOUT),
            })
            .map(|_| ())
            .map_err(|e| self.fail(format!("waiting for the device failed: {e}")))?;
        self.check()
    }
}

/// wgpu's multi-line error reports as one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Devices for K cores and the map from core to device.
#[derive(Debug)]
pub struct DevicePool {
    gpus: Vec<Arc<Gpu>>,
    /// Device of each core; changes when a core is [relocated](Self::relocate).
    core_gpu: Vec<AtomicUsize>,
}

/// The adapters wgpu sees on `backends`, as `(index, description)`.
pub fn list_adapters(backends: wgpu::Backends) -> Vec<(usize, String)> {
    let instance = instance(backends);
    pollster::block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(|a| {
            let info = a.get_info();
            format!("{} [{:?}, {:?}]", info.name, info.backend, info.device_type)
        })
        .enumerate()
        .collect()
}

/// The adapters on `backends` with the instance that found them; GL (a fallback, noisy
/// to initialise where it has no display) is only tried when the primary backends have none.
fn enumerate(backends: wgpu::Backends) -> (wgpu::Instance, Vec<wgpu::Adapter>) {
    let primary = backends - wgpu::Backends::GL;
    if !primary.is_empty() {
        let found_on = instance(primary);
        let found = pollster::block_on(found_on.enumerate_adapters(primary));
        if !found.is_empty() || !backends.contains(wgpu::Backends::GL) {
            return (found_on, found);
        }
    }
    let gl = instance(wgpu::Backends::GL);
    let found = pollster::block_on(gl.enumerate_adapters(wgpu::Backends::GL));
    (gl, found)
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Names of the backends in `backends`, for messages.
fn backend_names(backends: wgpu::Backends) -> String {
    let names: Vec<&str> = [
        (wgpu::Backends::VULKAN, "Vulkan"),
        (wgpu::Backends::METAL, "Metal"),
        (wgpu::Backends::DX12, "DX12"),
        (wgpu::Backends::GL, "GL"),
    ]
    .iter()
    .filter(|(b, _)| backends.contains(*b))
    .map(|(_, n)| *n)
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// One adapter per physical device: the same GPU seen through several APIs (Vulkan and GL,
/// say) is kept once, through the first of Vulkan, Metal, DX12, GL.
fn distinct_devices(adapters: &[wgpu::Adapter]) -> Vec<&wgpu::Adapter> {
    let rank = |b: wgpu::Backend| match b {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 3,
        _ => 4,
    };
    let mut sorted: Vec<&wgpu::Adapter> = adapters.iter().collect();
    sorted.sort_by_key(|a| rank(a.get_info().backend));
    let mut seen = Vec::new();
    sorted.retain(|a| {
        let i = a.get_info();
        let key = (i.name, i.vendor, i.device, i.device_type);
        let fresh = !seen.contains(&key);
        if fresh {
            seen.push(key);
        }
        fresh
    });
    sorted
}

impl DevicePool {
    /// Enumerates adapters and creates devices for `options.cores` cores.
    pub fn new(options: &PoolOptions) -> Result<Self, WgpuError> {
        if options.cores == 0 {
            return Err(WgpuError::Config(
                "a device pool needs at least one core".into(),
            ));
        }
        let (instance, adapters) = enumerate(options.backends);
        let described: Vec<String> = adapters
            .iter()
            .map(|a| format!("{} [{:?}]", a.get_info().name, a.get_info().backend))
            .collect();
        if adapters.is_empty() {
            return Err(WgpuError::NoAdapter(format!(
                "tried backends {}; no adapter found (on Linux without a GPU install mesa-vulkan-drivers for lavapipe)",
                backend_names(options.backends)
            )));
        }
        let chosen: Vec<&wgpu::Adapter> = if options.adapters.is_empty() {
            distinct_devices(&adapters)
        } else {
            adapters
                .iter()
                .enumerate()
                .filter(|(i, a)| {
                    let name = a.get_info().name.to_lowercase();
                    options.adapters.iter().any(|want| {
                        want.parse::<usize>().ok() == Some(*i)
                            || name.contains(&want.to_lowercase())
                    })
                })
                .map(|(_, a)| a)
                .collect()
        };
        if chosen.is_empty() {
            return Err(WgpuError::NoAdapter(format!(
                "none matches {:?}; found {}",
                options.adapters,
                described
                    .iter()
                    .enumerate()
                    .map(|(i, d)| format!("{i}: {d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let devices = match options.sharing {
            DeviceSharing::PerAdapter => chosen.len().min(options.cores),
            DeviceSharing::PerCore => options.cores,
        };
        let gpus =
            (0..devices)
                .map(|d| {
                    let adapter = chosen[d % chosen.len()];
                    let info = adapter.get_info();
                    // Everything the adapter offers (as burn-wgpu asks for its own devices,
                    // e.g. 64-bit integers in its kernels), so burn can adopt this device.
                    let desc = wgpu::DeviceDescriptor {
                        label: Some("chords"),
                        required_features: adapter
                            .features()
                            .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
                        required_limits: adapter.limits(),
                        ..Default::default()
                    };
                    let (device, queue) = pollster::block_on(adapter.request_device(&desc))
                        .map_err(|e| WgpuError::RequestDevice {
                            adapter: format!("{} [{:?}]", info.name, info.backend),
                            reason: e.to_string(),
                        })?;
                    let mut gpu = Gpu::new(device, queue, info, false);
                    gpu.setup = Some((instance.clone(), adapter.clone()));
                    Ok(Arc::new(gpu))
                })
                .collect::<Result<Vec<_>, WgpuError>>()?;
        let pool = Self {
            core_gpu: (0..options.cores)
                .map(|c| AtomicUsize::new(c % gpus.len()))
                .collect(),
            gpus,
        };
        tracing::info!(
            cores = options.cores,
            devices = pool.gpus.len(),
            "device pool: {}",
            pool.describe().join("; ")
        );
        Ok(pool)
    }

    /// All `cores` cores on the caller's own device (e.g. a game's), with no device created.
    ///
    /// The device stays the caller's: its uncaptured-error handler and device-lost callback
    /// are left as they are. chords runs its own work on it inside error scopes, so a
    /// failure of chords's work is a chords error (and fails the pool's device for chords)
    /// and the host's own errors still reach the host's handler.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        cores: usize,
    ) -> Result<Self, WgpuError> {
        if cores == 0 {
            return Err(WgpuError::Config(
                "a device pool needs at least one core".into(),
            ));
        }
        Ok(Self {
            gpus: vec![Arc::new(Gpu::new(device, queue, info, true))],
            core_gpu: (0..cores).map(|_| AtomicUsize::new(0)).collect(),
        })
    }

    /// All `cores` cores on the caller's own device, with the instance and adapter it came
    /// from (e.g. a window's renderer): unlike [`from_device`](Self::from_device), burn-wgpu
    /// models can then adopt the device too.
    pub fn from_setup(
        instance: wgpu::Instance,
        adapter: wgpu::Adapter,
        device: wgpu::Device,
        queue: wgpu::Queue,
        cores: usize,
    ) -> Result<Self, WgpuError> {
        let info = adapter.get_info();
        let mut pool = Self::from_device(device, queue, info, cores)?;
        if let Some(gpu) = pool.gpus.first_mut().and_then(Arc::get_mut) {
            gpu.setup = Some((instance, adapter));
        }
        Ok(pool)
    }

    /// Number of cores.
    pub fn cores(&self) -> usize {
        self.core_gpu.len()
    }

    /// The devices, in creation order.
    pub fn gpus(&self) -> &[Arc<Gpu>] {
        &self.gpus
    }

    /// Index into [`gpus`](Self::gpus) of the device core `core` runs on.
    pub fn gpu_index(&self, core: usize) -> Result<usize, chords::BackendError> {
        self.core_gpu
            .get(core)
            .map(|g| g.load(Ordering::SeqCst))
            .ok_or(chords::BackendError::NoSuchCore {
                core,
                cores: self.cores(),
            })
    }

    /// Moves `core` to the healthy device (one that has not failed) running the fewest
    /// cores, other than its own. Returns whether it moved; `false` when no other healthy
    /// device exists.
    pub fn relocate(&self, core: usize) -> Result<bool, chords::BackendError> {
        let from = self.gpu_index(core)?;
        let load = |g: usize| {
            self.core_gpu
                .iter()
                .filter(|d| d.load(Ordering::SeqCst) == g)
                .count()
        };
        let target = (0..self.gpus.len())
            .filter(|&g| g != from && self.gpus[g].check().is_ok())
            .min_by_key(|&g| load(g));
        let Some(to) = target else {
            return Ok(false);
        };
        self.core_gpu[core].store(to, Ordering::SeqCst);
        tracing::warn!(
            core,
            from = %self.gpus[from].describe(),
            to = %self.gpus[to].describe(),
            "core relocated"
        );
        Ok(true)
    }

    /// One line per device: which cores run on which adapter.
    pub fn describe(&self) -> Vec<String> {
        self.gpus
            .iter()
            .enumerate()
            .map(|(g, gpu)| {
                let cores: Vec<String> = self
                    .core_gpu
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.load(Ordering::SeqCst) == g)
                    .map(|(c, _)| c.to_string())
                    .collect();
                format!("cores {} on {}", cores.join(","), gpu.describe())
            })
            .collect()
    }

    /// Checks that a latent of `numel` f32 elements fits every device, before any work.
    pub fn check_latent(&self, numel: usize) -> Result<(), WgpuError> {
        let bytes = (numel as u64).saturating_mul(4);
        self.gpus
            .iter()
            .try_for_each(|g| g.check_size(&format!("a latent of {numel} elements"), bytes))
    }
}
