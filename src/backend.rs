//! The compute backend an experiment asks for: the CPU (burn's pure-Rust `flex`, with our fused
//! kernels; or burn's `ndarray`, with burn's own operations only) in every build, CUDA in builds
//! with the `cuda` feature.
//!
//! The training loop is generic over burn's `AutodiffBackend`; `on_backend!` is the one place that
//! names the concrete types. Checkpoints hold f32 values whatever the backend, so a run trained on
//! one resumes, samples and scores on the other.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex, NdArray};

use crate::config::{BackendConfig, BackendName};
use crate::error::Result;

pub type Cpu = Autodiff<Flex>;
pub type Ndarray = Autodiff<NdArray>;
#[cfg(feature = "cuda")]
pub type Gpu = Autodiff<burn::backend::Cuda>;

/// Whether `B` computes on the CPU (either backend), with or without autodiff.
pub fn is_cpu<B: burn::prelude::Backend>() -> bool {
    use std::any::TypeId;
    let cpu = [
        TypeId::of::<Cpu>(),
        TypeId::of::<Flex>(),
        TypeId::of::<Ndarray>(),
        TypeId::of::<NdArray>(),
    ];
    cpu.contains(&TypeId::of::<B>())
}

/// A backend that is built in and usable on this machine.
#[derive(Debug, Clone, Copy)]
pub enum Selected {
    Cpu,
    Ndarray,
    #[cfg(feature = "cuda")]
    Cuda {
        device: usize,
    },
}

impl Selected {
    /// How summary.json names it.
    pub fn describe(self) -> String {
        match self {
            Selected::Cpu => "cpu (burn flex)".into(),
            Selected::Ndarray => "cpu (burn ndarray)".into(),
            #[cfg(feature = "cuda")]
            Selected::Cuda { device } => format!("cuda:{device} (burn cuda)"),
        }
    }
}

/// Checks that the backend `config` names can run here, before anything is built on it: burn's
/// CUDA backend panics deep inside when the driver or a device is missing.
pub fn select(config: &BackendConfig) -> Result<Selected> {
    match config.name {
        BackendName::Cpu => Ok(Selected::Cpu),
        BackendName::Ndarray => Ok(Selected::Ndarray),
        #[cfg(feature = "cuda")]
        BackendName::Cuda => {
            cuda::probe(config.device)?;
            cuda::keep_compiled_kernels();
            Ok(Selected::Cuda {
                device: config.device,
            })
        }
        #[cfg(not(feature = "cuda"))]
        BackendName::Cuda => unreachable!("config validation rejects cuda in a build without it"),
    }
}

/// Evaluates `$body` with `$B` bound to the autodiff backend type of `$selected` and `$device`
/// to its device.
macro_rules! on_backend {
    ($selected:expr, |$B:ident, $device:ident| $body:expr) => {
        match $selected {
            $crate::backend::Selected::Cpu => {
                type $B = $crate::backend::Cpu;
                let $device = Default::default();
                $body
            }
            $crate::backend::Selected::Ndarray => {
                type $B = $crate::backend::Ndarray;
                let $device = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::Selected::Cuda { device } => {
                type $B = $crate::backend::Gpu;
                let $device = burn::backend::cuda::CudaDevice::new(device);
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// Sizes the thread pool the CPU backend computes on; 0 keeps one thread per core.
pub fn use_threads(threads: usize) {
    if threads > 0 {
        // Fails only if the pool already exists (a second run in one process): keep that one.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    }
}

/// Cores this process may take while the others it shares them with are idle (a sweep's worker
/// whose fellow workers wait for the last trials of a rung); set once, by `share_idle_cores`.
static SHARED: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();

/// How often a worker looks again at how many of its fellows are busy.
const RECHECK: Duration = Duration::from_secs(1);

struct Shared {
    cores: usize,
    /// How many processes on this host are at work now, this one included.
    busy: Box<dyn Fn() -> usize + Send + Sync>,
    /// When `busy` was last asked, and the pool it then chose (none: the process's own).
    current: Mutex<(Option<Instant>, Option<Arc<rayon::ThreadPool>>)>,
}

impl Shared {
    /// The threads to compute on when `busy` processes share the cores: an equal share, never
    /// fewer than the process's own `base`.
    fn threads(&self, base: usize, busy: usize) -> usize {
        (self.cores / busy.max(1)).max(base)
    }

    /// A pool larger than the process's own when cores are idle; `None` otherwise.
    fn pool(&self) -> Option<Arc<rayon::ThreadPool>> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let (checked, pool) = &mut *current;
        if checked.is_none_or(|at| at.elapsed() >= RECHECK) {
            *checked = Some(Instant::now());
            // Asked outside any pool, rayon names the process's own.
            let base = rayon::current_num_threads();
            let want = self.threads(base, (self.busy)());
            let size = pool.as_ref().map_or(base, |p| p.current_num_threads());
            if want != size {
                let builder = rayon::ThreadPoolBuilder::new().num_threads(want);
                *pool = match want > base {
                    true => builder.build().ok().map(Arc::new),
                    false => None,
                };
            }
        }
        pool.clone()
    }
}

/// From now on `idle_cores_pool` may spread work over the cores of this host that the processes
/// `busy` counts (this one among them) leave idle. The numbers do not depend on the thread
/// count, so nothing but the time changes.
pub fn share_idle_cores(busy: impl Fn() -> usize + Send + Sync + 'static) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = SHARED.set(Shared {
        cores,
        busy: Box::new(busy),
        current: Mutex::new((None, None)),
    });
}

/// A pool larger than the process's own, taking the idle cores `share_idle_cores` allows;
/// `None` while there are none (or nothing allows it): compute on the process's own.
pub fn idle_cores_pool() -> Option<Arc<rayon::ThreadPool>> {
    SHARED.get().and_then(Shared::pool)
}

#[cfg(feature = "cuda")]
mod cuda {
    use crate::error::{Error, Result};

    /// What burn's CUDA backend needs at run time: the driver, the device, and NVRTC with the
    /// toolkit's headers, since it compiles its kernels when they are first used.
    pub fn probe(device: usize) -> Result<()> {
        let unusable = |why: String| {
            Error::input(format!(
                "backend.name = \"cuda\", but {why}; or set backend.name = \"cpu\""
            ))
        };
        // SAFETY: only tries to load the library, as every other call into cudarc would.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(unusable(
                "no NVIDIA driver was found (libcuda.so cannot be loaded): install the driver"
                    .into(),
            ));
        }
        cudarc::driver::result::init()
            .map_err(|e| unusable(format!("the NVIDIA driver does not start ({e})")))?;
        let count = cudarc::driver::result::device::get_count()
            .map_err(|e| unusable(format!("the CUDA devices cannot be counted ({e})")))?
            as usize;
        if device >= count {
            return Err(Error::input(format!(
                "backend.device = {device}, but this machine has {count} CUDA device(s)"
            )));
        }
        // SAFETY: as above.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(unusable(
                "CUDA's run-time compiler NVRTC (libnvrtc.so) was not found: install the CUDA \
                 toolkit, or put its lib64 folder on LD_LIBRARY_PATH"
                    .into(),
            ));
        }
        let headers = cubecl::cuda::install::cuda_path().map(|path| path.join("include"));
        if !headers.as_ref().is_some_and(|path| path.is_dir()) {
            return Err(unusable(
                "the CUDA toolkit's headers were not found (looked in $CUDA_PATH, \
                 /usr/local/cuda, /opt/cuda and /usr): install the toolkit or set CUDA_PATH"
                    .into(),
            ));
        }
        Ok(())
    }

    /// burn compiles each kernel (and tries several for each matrix product) the first time a
    /// shape is used, which costs minutes per run; keeping the compiled kernels on disk, beside
    /// the autotune results, pays that once per machine. A `cubecl.toml` that sets a cache wins.
    pub fn keep_compiled_kernels() {
        use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig, cache::CacheConfig};
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        config.compilation.cache.get_or_insert(CacheConfig::Target);
        CubeClRuntimeConfig::set(config);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Four busy processes on four cores keep their own threads; alone, one takes all four.
    #[test]
    fn a_process_takes_the_cores_its_idle_fellows_leave() {
        let base = rayon::current_num_threads();
        let busy = Arc::new(AtomicUsize::new(4));
        let shared = Shared {
            cores: 4 * base,
            busy: Box::new({
                let busy = busy.clone();
                move || busy.load(Ordering::Relaxed)
            }),
            current: Mutex::new((None, None)),
        };
        assert_eq!(shared.threads(base, 4), base);
        assert_eq!(shared.threads(base, 2), 2 * base);
        assert_eq!(shared.threads(3 * base, 2), 3 * base, "never below its own");
        assert!(shared.pool().is_none());
        busy.store(1, Ordering::Relaxed);
        assert!(shared.pool().is_none(), "asks again only after a while");
        shared.current.lock().unwrap().0 = None;
        let pool = shared.pool().expect("idle cores");
        assert_eq!(pool.install(rayon::current_num_threads), 4 * base);
        busy.store(4, Ordering::Relaxed);
        shared.current.lock().unwrap().0 = None;
        assert!(shared.pool().is_none(), "gives them back");
    }
}
