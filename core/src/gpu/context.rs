//! Choosing a GPU adapter and opening a device. Any Vulkan, Metal, DX12 or GL adapter works,
//! including a software one (lavapipe); a missing adapter is an error the caller turns into a
//! fall-back to the CPU path, never a panic.

use super::kernels::Kernels;
use crate::error::{Error, Result};

/// An open wgpu device with its queue and the adapter it came from.
pub struct GpuContext {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    /// The kernels, each compiled on first use and shared by everything run on this device.
    pub(crate) kernels: Kernels,
    /// Why the device was lost, once it is.
    lost: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// The error scopes of one submission (validation, then out-of-memory), checked after it.
/// Dropped unchecked (a failed recording), they pop in the reverse order of their pushing, as
/// wgpu requires: fields drop in declaration order.
pub(crate) struct Scopes {
    pub(crate) oom: wgpu::ErrorScopeGuard,
    pub(crate) validation: wgpu::ErrorScopeGuard,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext").field("adapter", &self.describe()).finish_non_exhaustive()
    }
}

fn gpu_error(what: impl std::fmt::Display) -> Error {
    Error::Gpu(what.to_string())
}

impl GpuContext {
    /// Opens the best adapter there is: a discrete GPU before an integrated one before a
    /// software one; Vulkan, Metal or DX12 before GL.
    ///
    /// # Errors
    /// [`Error::Gpu`] when there is no adapter or the device cannot be opened (the message says
    /// which adapters were seen).
    pub fn new() -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        // `WGPU_BACKEND=vulkan,gl` (wgpu's own variable) narrows the backends tried.
        desc.backends = desc.backends.with_env();
        desc.backends.remove(wgpu::Backends::BROWSER_WEBGPU);
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if adapters.is_empty() {
            return Err(gpu_error(format!(
                "no GPU adapter found among the {backends:?} backends (install a Vulkan driver, e.g. \
                 Debian's mesa-vulkan-drivers for the software one)"
            )));
        }
        let rank = |a: &wgpu::Adapter| {
            let info = a.get_info();
            let kind = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => 0,
                wgpu::DeviceType::IntegratedGpu => 1,
                wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 2,
                wgpu::DeviceType::Cpu => 3,
            };
            let backend = match info.backend {
                wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
                _ => 1,
            };
            (kind, backend)
        };
        adapters.sort_by_key(rank);
        let adapter = adapters.remove(0);
        let info = adapter.get_info();
        let mut limits = adapter.limits();
        // `LRNN_GPU_MAX_BUFFER_MIB=N` caps the largest buffer used (leaving memory to other work,
        // or trying the fall-back on a large adapter).
        if let Some(mib) = std::env::var("LRNN_GPU_MAX_BUFFER_MIB").ok().and_then(|v| v.parse::<u64>().ok()) {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(mib << 20);
            limits.max_buffer_size = limits.max_buffer_size.min(mib << 20);
        }
        let wanted = wgpu::Limits {
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            // The scan and label kernels bind five storage buffers (downlevel: four).
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage.min(8),
            ..wgpu::Limits::downlevel_defaults()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("lrnn"),
            required_limits: wanted.clone(),
            // Timestamps around each dispatch when the adapter has them (the profiler).
            required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
            ..Default::default()
        }))
        .map_err(|e| gpu_error(format!("cannot open {} ({:?}): {e}", info.name, info.backend)))?;
        // Errors inside a forward pass are caught by its error scopes; anything else is reported
        // here instead of wgpu's default panic.
        device.on_uncaptured_error(std::sync::Arc::new(|e| eprintln!("lrnn: GPU error: {e}")));
        let lost = std::sync::Arc::new(std::sync::Mutex::new(None));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = flag.lock() {
                *l = Some(format!("{reason:?}: {message}"));
            }
        });
        Ok(Self { device, queue, info, limits: wanted, kernels: Kernels::new(), lost })
    }

    /// The adapter, in words: name, kind and backend.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.device_type, self.info.backend)
    }

    /// Whether the device writes GPU timestamps (the per-kernel profiler needs them).
    pub fn has_timestamps(&self) -> bool {
        self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Whether the adapter is a software rasteriser (lavapipe, WARP, SwiftShader).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// A word of advice when the adapter is the slowest there is: a software rasteriser behind
    /// OpenGL (llvmpipe), where wgpu compiles each kernel through GLSL (a tiny model takes tens
    /// of seconds). A Vulkan driver gives lavapipe instead, many times faster.
    pub fn advice(&self) -> Option<String> {
        (self.is_software() && self.info.backend == wgpu::Backend::Gl).then(|| {
            format!(
                "{} is a software OpenGL renderer, the slowest path (tens of seconds even for a tiny \
                 model); a Vulkan driver runs much faster (Debian: apt-get install mesa-vulkan-drivers)",
                self.info.name
            )
        })
    }

    /// An error when the device was lost (a driver reset, or [`Self::destroy`]): nothing may be
    /// recorded on it any more.
    ///
    /// # Errors
    /// [`Error::Gpu`] saying so.
    pub(crate) fn check_alive(&self) -> Result<()> {
        match self.lost.lock().ok().and_then(|l| l.clone()) {
            Some(why) => Err(gpu_error(format!("the GPU device {} was lost ({why})", self.describe()))),
            None => Ok(()),
        }
    }

    /// A storage buffer holding `bytes` (written through the queue: a lost device gives an
    /// error later, where a mapped creation would panic).
    pub(crate) fn buffer_with(&self, label: &str, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let size = (bytes.len().max(4) as u64).next_multiple_of(4);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if !bytes.is_empty() {
            let mut padded = bytes.to_vec();
            padded.resize(size as usize, 0);
            self.queue.write_buffer(&buffer, 0, &padded);
        }
        buffer
    }

    /// Opens the error scopes of one submission, for [`super::kernels::submit_and_read`].
    pub(crate) fn error_scopes(&self) -> Scopes {
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        Scopes { validation, oom }
    }

    /// The same device with buffers capped at `bytes` (as an adapter with less memory).
    #[must_use]
    pub fn with_buffer_limit(mut self, bytes: u64) -> Self {
        self.limits.max_storage_buffer_binding_size = self.limits.max_storage_buffer_binding_size.min(bytes);
        self
    }

    /// How many loop iterations one shader invocation may run before the driver cuts the loop
    /// short: llvmpipe (lavapipe, and the other software rasterisers are treated alike) stops a
    /// loop after 65,535 iterations counted over everything nested in it; `None` for hardware.
    pub fn loop_budget(&self) -> Option<usize> {
        self.is_software().then_some(60_000)
    }

    /// Destroys the device now, as a driver losing it would: every later call on it fails with a
    /// message (the lost-device path, checked by the tests).
    pub fn destroy(&self) {
        self.device.destroy();
    }

    /// The largest buffer one binding may hold, in bytes.
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size
    }
}
