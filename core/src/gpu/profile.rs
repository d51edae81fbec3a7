//! A per-kernel profiler of the GPU path: GPU timestamps written at the start and end of every
//! dispatch's compute pass (each dispatch is its own pass, so the adapter needs only
//! `TIMESTAMP_QUERY`, not timestamps inside passes), resolved after the forward pass and summed
//! per kernel: calls, total milliseconds, share of the pass, and the achieved GFLOP/s (the
//! convolutions and scans, from their shapes) or GB/s (every bound buffer counted once, an
//! estimate of the memory traffic). `LRNN_GPU_PROFILE=1` prints the table after each forward
//! pass of `lrnn run`, `lrnn predict` and the GPU benchmark.

use super::context::GpuContext;
use super::kernels::Kernel;
use super::params::{Conv2dParams, ConvTransposeParams, KernelParams, ScanPairParams, ScanStepParams};

/// The most dispatches timed in one forward pass (wgpu's largest query set holds 4,096
/// timestamps); later ones are counted as untimed.
pub const MAX_TIMED: u32 = 2048;

/// Whether `LRNN_GPU_PROFILE` asks for the table.
pub fn wanted() -> bool {
    std::env::var("LRNN_GPU_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0")
}

struct Entry {
    kernel: &'static str,
    bytes: u64,
    flops: Option<u64>,
}

/// Timestamps of one forward pass being recorded.
pub struct Profiler {
    set: wgpu::QuerySet,
    entries: Vec<Entry>,
    untimed: usize,
    period_ns: f64,
}

/// One kernel's line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    /// The kernel (`conv2d`, `scan_pair`, …).
    pub kernel: &'static str,
    /// Dispatches.
    pub calls: usize,
    /// GPU time of its dispatches, milliseconds.
    pub ms: f64,
    /// Its share of the timed total.
    pub share: f64,
    /// Achieved GFLOP/s (convolutions and scans).
    pub gflops: Option<f64>,
    /// Bound buffers' bytes per second, GB/s.
    pub gbs: f64,
}

/// The table of one forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// One line per kernel, the slowest first.
    pub kernels: Vec<KernelTime>,
    /// The sum of every timed dispatch, milliseconds.
    pub total_ms: f64,
    /// Dispatches past [`MAX_TIMED`], not timed.
    pub untimed: usize,
}

/// The floating-point operations of one dispatch, for the kernels that multiply (a multiply-add
/// counts 2).
fn flops_of<P: KernelParams>(p: &P) -> Option<u64> {
    let bytes = bytemuck::bytes_of(p);
    let n = |v: u32| u64::from(v);
    match P::KERNEL {
        Kernel::Conv2d => {
            let c: Conv2dParams = bytemuck::pod_read_unaligned(bytes);
            Some(
                2 * n(c.batch)
                    * n(c.out_channels)
                    * n(c.out_height)
                    * n(c.out_width)
                    * n(c.in_channels)
                    * n(c.kernel)
                    * n(c.kernel),
            )
        }
        Kernel::ConvTranspose => {
            let c: ConvTransposeParams = bytemuck::pod_read_unaligned(bytes);
            Some(
                2 * n(c.batch)
                    * n(c.in_channels)
                    * n(c.height)
                    * n(c.width)
                    * n(c.out_channels)
                    * n(c.kernel)
                    * n(c.kernel),
            )
        }
        Kernel::ScanPair => {
            let s: ScanPairParams = bytemuck::pod_read_unaligned(bytes);
            // Both directions; per position a product with V (three gate blocks for a GRU).
            let across = if s.axis == 0 { s.height } else { s.width };
            let gates = if s.cell == 2 { 3 } else { 1 };
            Some(2 * n(s.batch) * n(across) * n(s.step_count) * 2 * n(s.hidden) * n(s.hidden) * gates)
        }
        Kernel::ScanStep => {
            let s: ScanStepParams = bytemuck::pod_read_unaligned(bytes);
            // Both directions, every sequence: a product with V (none at the first step forward,
            // at the last backward).
            let (across, steps) = if s.axis == 0 { (s.height, s.width) } else { (s.width, s.height) };
            let none = if s.backward == 1 { s.step + 1 >= steps } else { s.step == 0 };
            Some(if none { 0 } else { 2 * n(s.batch) * n(across) * 2 * n(s.hidden) * n(s.hidden) })
        }
        _ => None,
    }
}

impl Profiler {
    /// A profiler for one forward pass, when the device was opened with timestamp queries.
    pub fn new(ctx: &GpuContext) -> Option<Self> {
        if !ctx.has_timestamps() {
            return None;
        }
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * MAX_TIMED,
        });
        Some(Self {
            set,
            entries: Vec::new(),
            untimed: 0,
            period_ns: f64::from(ctx.queue.get_timestamp_period()),
        })
    }

    /// The timestamp writes of the next dispatch (`None` past [`MAX_TIMED`]), remembering what
    /// it runs.
    pub(crate) fn next<P: KernelParams>(
        &mut self,
        params: &P,
        name: &'static str,
        bytes: u64,
    ) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        if self.entries.len() as u32 >= MAX_TIMED {
            self.untimed += 1;
            return None;
        }
        let i = self.entries.len() as u32;
        self.entries.push(Entry { kernel: name, bytes, flops: flops_of(params) });
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        })
    }

    /// Resolves the timestamps into a new buffer at the end of `encoder` (read it back with the
    /// pass's outputs and give its bytes to [`Self::report`]).
    pub(crate) fn resolve(&self, ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder) -> wgpu::Buffer {
        let count = (2 * self.entries.len()).max(2) as u32;
        let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: u64::from(count) * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        if !self.entries.is_empty() {
            encoder.resolve_query_set(&self.set, 0..count, &buf, 0);
        }
        buf
    }

    /// The table from the resolved timestamps' bytes.
    pub fn report(&self, raw: &[u8]) -> Report {
        let ticks: Vec<u64> =
            raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        let mut kernels: Vec<KernelTime> = Vec::new();
        let mut sums: Vec<(u64, u64, bool)> = Vec::new(); // bytes, flops, all dispatches have flops
        for (i, e) in self.entries.iter().enumerate() {
            let (Some(&t0), Some(&t1)) = (ticks.get(2 * i), ticks.get(2 * i + 1)) else { continue };
            let ms = t1.saturating_sub(t0) as f64 * self.period_ns / 1e6;
            let at = match kernels.iter().position(|k| k.kernel == e.kernel) {
                Some(at) => at,
                None => {
                    kernels.push(KernelTime {
                        kernel: e.kernel,
                        calls: 0,
                        ms: 0.0,
                        share: 0.0,
                        gflops: None,
                        gbs: 0.0,
                    });
                    sums.push((0, 0, true));
                    kernels.len() - 1
                }
            };
            kernels[at].calls += 1;
            kernels[at].ms += ms;
            sums[at].0 += e.bytes;
            match e.flops {
                Some(f) => sums[at].1 += f,
                None => sums[at].2 = false,
            }
        }
        let total_ms: f64 = kernels.iter().map(|k| k.ms).sum();
        for (k, (bytes, flops, all)) in kernels.iter_mut().zip(sums) {
            let s = k.ms / 1e3;
            k.share = if total_ms > 0.0 { k.ms / total_ms } else { 0.0 };
            k.gbs = if s > 0.0 { bytes as f64 / s / 1e9 } else { 0.0 };
            k.gflops = (all && s > 0.0).then(|| flops as f64 / s / 1e9);
        }
        kernels.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Report { kernels, total_ms, untimed: self.untimed }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<16} {:>6} {:>10} {:>7} {:>10} {:>9}",
            "kernel", "calls", "total ms", "share", "GFLOP/s", "GB/s"
        )?;
        for k in &self.kernels {
            let g = k.gflops.map_or("-".to_string(), |g| format!("{g:.1}"));
            writeln!(
                f,
                "{:<16} {:>6} {:>10.3} {:>6.1}% {:>10} {:>9.1}",
                k.kernel,
                k.calls,
                k.ms,
                100.0 * k.share,
                g,
                k.gbs
            )?;
        }
        write!(
            f,
            "{:<16} {:>6} {:>10.3}",
            "all kernels",
            self.kernels.iter().map(|k| k.calls).sum::<usize>(),
            self.total_ms
        )?;
        if self.untimed > 0 {
            write!(f, "\n({} more dispatches not timed: at most {MAX_TIMED} per pass)", self.untimed)?;
        }
        Ok(())
    }
}
