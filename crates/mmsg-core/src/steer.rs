//! Using every core: one `SO_REUSEPORT` socket per core, with the kernel told which socket of
//! the group gets each datagram.
//!
//! Without help the kernel picks a group's socket by a hash of the 4-tuple, so a flow stays on
//! one socket, but that socket's thread may run on any core: the datagram was received (its
//! softirq ran) on one core and is then handled on another. A classic BPF program attached to
//! the group ([`cpu_steering_program`], the way msquic does it) instead returns
//! `cpu % group_size`, the CPU that runs the receive path: with socket `i` served by a thread
//! pinned to CPU `i` ([`set_thread_affinity`]), each datagram is handled on the core that
//! received it, and a flow whose packets the NIC (RSS) always hands to one core stays on one
//! worker.
//!
//! A socket's index in the group is the order in which the group's sockets were bound (the first
//! is 0); when a socket leaves, the last one takes its index. An index the program returns that
//! no socket has (fewer sockets than `group_size` so far) falls back to the hash.

use std::io;
use std::num::NonZeroU16;

use crate::sys;

/// One classic BPF instruction (`struct sock_filter`), as plain data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInstruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl BpfInstruction {
    const fn statement(code: u32, k: u32) -> Self {
        BpfInstruction {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }
}

/// The program `A = cpu; A %= group_size; return A`: the receiving CPU picks the socket.
///
/// `BPF_LD | BPF_W | BPF_ABS` at the ancillary offset `SKF_AD_OFF + SKF_AD_CPU` loads the
/// current CPU (what `raw_smp_processor_id()` says while the program runs in the receive path),
/// `BPF_ALU | BPF_MOD | BPF_K` takes it modulo the group size, `BPF_RET | BPF_A` returns it.
pub fn cpu_steering_program(group_size: NonZeroU16) -> [BpfInstruction; 3] {
    let cpu_offset = (libc::SKF_AD_OFF + libc::SKF_AD_CPU) as u32;
    [
        BpfInstruction::statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, cpu_offset),
        BpfInstruction::statement(
            libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K,
            u32::from(group_size.get()),
        ),
        BpfInstruction::statement(libc::BPF_RET | libc::BPF_A, 0),
    ]
}

/// Attaches `program` to the reuseport group of the socket `fd` (replacing any program the
/// group had). Every socket of the group, bound before or after, is steered by it.
pub fn attach_group_program(fd: std::os::fd::RawFd, program: &[BpfInstruction]) -> io::Result<()> {
    let filters: Vec<libc::sock_filter> = program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    sys::attach_reuseport_cbpf(fd, &filters)
}

/// Highest CPU number accepted by [`set_thread_affinity`] (Linux's `NR_CPUS` is at most 8192
/// today; this leaves room).
pub const MAX_CPU: u32 = 65_535;

const WORD_BITS: usize = libc::c_ulong::BITS as usize;

/// Pins the calling thread (only it: in a Node.js worker, the worker's own thread) to `cpus`.
/// `EINVAL` from the kernel when none of them is online and allowed; `cpus` empty or a CPU above
/// [`MAX_CPU`] is `EINVAL` too (the binding checks both first).
pub fn set_thread_affinity(cpus: &[u32]) -> io::Result<()> {
    let highest = match cpus.iter().max() {
        Some(&cpu) if cpu <= MAX_CPU => cpu as usize,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    let mut mask: Vec<libc::c_ulong> = vec![0; highest / WORD_BITS + 1];
    for &cpu in cpus {
        let cpu = cpu as usize;
        mask[cpu / WORD_BITS] |= 1 << (cpu % WORD_BITS);
    }
    sys::set_thread_affinity_mask(&mask)
}

/// The CPUs the calling thread may run on, ascending.
pub fn thread_affinity() -> io::Result<Vec<u32>> {
    // The kernel wants a mask at least as wide as its CPU ids: grow until it fits.
    let mut words = 1024 / WORD_BITS;
    loop {
        let mut mask: Vec<libc::c_ulong> = vec![0; words];
        match sys::thread_affinity_mask(&mut mask) {
            Ok(()) => {
                let cpus = (0..words * WORD_BITS)
                    .filter(|&cpu| mask[cpu / WORD_BITS] & (1 << (cpu % WORD_BITS)) != 0)
                    .map(|cpu| cpu as u32)
                    .collect();
                return Ok(cpus);
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && words * WORD_BITS <= 1 << 20 => {
                words *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_steering_program_loads_the_cpu_takes_it_modulo_and_returns_it() {
        let program = cpu_steering_program(NonZeroU16::new(16).unwrap());
        // The encodings from linux/filter.h and linux/bpf_common.h, written out.
        assert_eq!(
            program,
            [
                // BPF_LD (0x00) | BPF_W (0x00) | BPF_ABS (0x20), k = -0x1000 + 36
                BpfInstruction {
                    code: 0x20,
                    jt: 0,
                    jf: 0,
                    k: 0xffff_f024
                },
                // BPF_ALU (0x04) | BPF_MOD (0x90) | BPF_K (0x00), k = group size
                BpfInstruction {
                    code: 0x94,
                    jt: 0,
                    jf: 0,
                    k: 16
                },
                // BPF_RET (0x06) | BPF_A (0x10)
                BpfInstruction {
                    code: 0x16,
                    jt: 0,
                    jf: 0,
                    k: 0
                },
            ]
        );
        assert_eq!(cpu_steering_program(NonZeroU16::MAX)[1].k, 65_535);
    }

    #[test]
    fn affinity_refuses_an_empty_set_and_too_high_cpus_without_a_system_call() {
        for cpus in [&[][..], &[MAX_CPU + 1][..]] {
            let error = set_thread_affinity(cpus).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EINVAL));
        }
    }

    #[test]
    fn affinity_round_trips_on_a_thread_of_its_own() {
        // A fresh thread, so the test runner's threads keep their mask.
        std::thread::spawn(|| {
            let allowed = thread_affinity().unwrap();
            assert!(!allowed.is_empty());
            let one = allowed[allowed.len() - 1];
            set_thread_affinity(&[one]).unwrap();
            assert_eq!(thread_affinity().unwrap(), vec![one]);
            set_thread_affinity(&allowed).unwrap();
            assert_eq!(thread_affinity().unwrap(), allowed);
        })
        .join()
        .unwrap();
    }
}
