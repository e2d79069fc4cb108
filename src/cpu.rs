//! The calling thread's CPU affinity (`sched_setaffinity(0, ...)`), so that a worker thread
//! serving one socket of a CPU-steered reuseport group can pin itself to that CPU. Node.js has no
//! API for it; in a `worker_threads` worker the calling thread is the worker's own.

use napi::bindgen_prelude::Unknown;
use napi::{Env, Result};
use napi_derive::napi;

use crate::errors::{guarded, Failure};
use crate::read;

/// Pins the calling thread to `cpus` (each 0 to 65535, at least one).
#[napi(ts_args_type = "cpus: number[]")]
pub fn set_thread_affinity(env: Env, cpus: Unknown) -> Result<()> {
    guarded(&env, || {
        // Through `read::uints`: the list's length is checked before anything is allocated.
        let cpus = read::uints(cpus, "cpus", u32::MAX)?;
        if cpus.is_empty() {
            return Err(Failure::Range("cpus must name at least one CPU".into()));
        }
        if let Some(cpu) = cpus.iter().find(|&&c| c > mmsg_core::steer::MAX_CPU) {
            return Err(Failure::Range(format!(
                "CPU {cpu} is above {}",
                mmsg_core::steer::MAX_CPU
            )));
        }
        mmsg_core::steer::set_thread_affinity(&cpus)
            .map_err(|e| Failure::system(e, "sched_setaffinity"))
    })
}

/// The CPUs the calling thread may run on, ascending.
#[napi]
pub fn get_thread_affinity(env: Env) -> Result<Vec<u32>> {
    guarded(&env, || {
        mmsg_core::steer::thread_affinity().map_err(|e| Failure::system(e, "sched_getaffinity"))
    })
}
