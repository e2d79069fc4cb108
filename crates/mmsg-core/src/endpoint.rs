//! [`Endpoint`]: everything one JS socket owns below the binding — the descriptor, the send and
//! receive scratch memory, the capabilities (GSO, GRO) and the drop counter.
//!
//! The binding keeps one `Endpoint` per socket and calls it only in phase 2 (no JavaScript can
//! run), with plain values and slices it has just looked up.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;

use crate::gso::{self, GsoSupport, SegmentedReport};
use crate::plan::{PlanReport, SendPlan};
use crate::recv::{RecvMeta, RecvScratch, Slab};
use crate::send::SendScratch;
use crate::socket::{Family, SocketOptions, UdpSocket};
use crate::{sys, SockAddr};

/// Flag bits per received datagram in [`RecvTarget::flags`].
pub mod recv_flags {
    /// Longer than its slot: cut (`MSG_TRUNC`).
    pub const TRUNCATED: u8 = 1;
    /// The sender is an IPv6 address (else IPv4, stored IPv4-mapped).
    pub const IPV6: u8 = 2;
    /// The kernel gave no sender address.
    pub const NO_ADDRESS: u8 = 4;
}

/// Caller-owned arrays that one receive fills: datagram `i` goes to
/// `data[i * slot_size..][..lengths[i]]`, its sender to `addresses[16 * i..][..16]`,
/// `ports[i]`, `scope_ids[i]` and `flags[i]`.
pub struct RecvTarget<'a> {
    pub data: &'a mut [u8],
    pub slot_size: usize,
    pub lengths: &'a mut [u32],
    pub ports: &'a mut [u16],
    pub addresses: &'a mut [u8],
    pub scope_ids: &'a mut [u32],
    pub flags: &'a mut [u8],
}

impl RecvTarget<'_> {
    /// How many datagrams fit (the smallest of the arrays, at most UIO_MAXIOV).
    pub fn capacity(&self) -> usize {
        if self.slot_size == 0 {
            return 0;
        }
        (self.data.len() / self.slot_size)
            .min(self.lengths.len())
            .min(self.ports.len())
            .min(self.addresses.len() / 16)
            .min(self.scope_ids.len())
            .min(self.flags.len())
            .min(crate::MAX_MESSAGES_PER_CALL)
    }

    fn record(&mut self, i: usize, len: usize, source: Option<SocketAddr>, truncated: bool) {
        self.lengths[i] = len as u32;
        let mut flags = if truncated { recv_flags::TRUNCATED } else { 0 };
        let address = &mut self.addresses[16 * i..16 * i + 16];
        match source {
            Some(SocketAddr::V4(v4)) => {
                address.copy_from_slice(&v4.ip().to_ipv6_mapped().octets());
                self.ports[i] = v4.port();
                self.scope_ids[i] = 0;
            }
            Some(SocketAddr::V6(v6)) => {
                address.copy_from_slice(&v6.ip().octets());
                self.ports[i] = v6.port();
                self.scope_ids[i] = v6.scope_id();
                flags |= recv_flags::IPV6;
            }
            None => {
                address.fill(0);
                self.ports[i] = 0;
                self.scope_ids[i] = 0;
                flags |= recv_flags::NO_ADDRESS;
            }
        }
        self.flags[i] = flags;
    }
}

/// A datagram split off a GRO group that did not fit the caller's batch: delivered first next
/// time, so nothing the kernel handed over is lost.
struct Leftover {
    bytes: Vec<u8>,
    source: Option<SocketAddr>,
    truncated: bool,
}

/// Coalesced groups received per call when GRO is on (each up to 64 KiB).
const GRO_SLOTS: usize = 8;
const GRO_SLOT_SIZE: usize = 65_536;

/// One socket's state below the binding.
pub struct Endpoint {
    socket: UdpSocket,
    send_scratch: SendScratch,
    recv_scratch: RecvScratch,
    metas: Vec<RecvMeta>,
    gso: GsoSupport,
    /// `UDP_GRO` is on: received groups are split here (into `gro_memory` first).
    gro: bool,
    gro_memory: Vec<u8>,
    leftovers: VecDeque<Leftover>,
    /// Latest `SO_RXQ_OVFL` count the kernel reported.
    kernel_drops: u32,
    /// A descriptor handed to JS as `socket.fd`, with its identity, closed with the endpoint
    /// only if it still is ours.
    public_fd: Option<(RawFd, (u64, u64))>,
}

impl Endpoint {
    fn wrap(socket: UdpSocket) -> Endpoint {
        // The kernel's drop counter rides on every received datagram (`SO_RXQ_OVFL`); a kernel
        // without it simply reports none.
        let _ = socket.set_drop_counter(true);
        let mut gso = GsoSupport::Unknown;
        // Probed once, by getsockopt, never by a send that might fail for other reasons.
        gso.resolve(socket.raw_fd());
        Endpoint {
            socket,
            send_scratch: SendScratch::new(),
            recv_scratch: RecvScratch::new(),
            metas: Vec::new(),
            gso,
            gro: false,
            gro_memory: Vec::new(),
            leftovers: VecDeque::new(),
            kernel_drops: 0,
            public_fd: None,
        }
    }

    /// A new socket of `family`.
    pub fn new(family: Family, options: &SocketOptions) -> io::Result<Endpoint> {
        Ok(Self::wrap(UdpSocket::new(family, options)?))
    }

    /// A private duplicate of an existing UDP socket (checked: SOCK_DGRAM, IPPROTO_UDP).
    pub fn from_fd(fd: RawFd) -> io::Result<Endpoint> {
        Ok(Self::wrap(UdpSocket::from_fd_duplicate(fd)?))
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    pub fn family(&self) -> Family {
        self.socket.family()
    }

    /// A descriptor number for the same socket that callers may use (and even close). It is a
    /// duplicate: closing it behind our back cannot close, or redirect, the one we send on.
    pub fn public_fd(&mut self) -> io::Result<RawFd> {
        if let Some((fd, identity)) = self.public_fd {
            if sys::file_identity(fd).ok() == Some(identity) && self.same_socket(fd) {
                return Ok(fd);
            }
            // Closed (and perhaps reused) behind our back: forget it, never close it.
            self.public_fd = None;
        }
        let dup = sys::dup_cloexec(self.socket.raw_fd())?;
        let fd = sys::into_raw(dup);
        let identity = sys::file_identity(fd)?;
        self.public_fd = Some((fd, identity));
        Ok(fd)
    }

    fn same_socket(&self, fd: RawFd) -> bool {
        sys::file_identity(self.socket.raw_fd()).ok() == sys::file_identity(fd).ok()
    }

    pub fn gso(&self) -> GsoSupport {
        self.gso
    }

    /// Sends a plan's messages `from..` with the views' current bytes.
    pub fn send_plan(
        &mut self,
        plan: &SendPlan,
        views: &[&[u8]],
        from: usize,
        flags: i32,
    ) -> PlanReport {
        plan.send_with_gso(
            self.socket.raw_fd(),
            &mut self.send_scratch,
            views,
            from,
            flags,
            &mut self.gso,
        )
    }

    /// Sends `payload` as datagrams of `segment_size` bytes, with GSO where it works.
    pub fn send_segmented(
        &mut self,
        payload: &[u8],
        segment_size: usize,
        destination: Option<SockAddr>,
        flags: i32,
    ) -> SegmentedReport {
        gso::send_segmented(
            self.socket.raw_fd(),
            &mut self.send_scratch,
            &mut self.gso,
            payload,
            segment_size,
            destination,
            flags,
        )
    }

    /// Turns `UDP_GRO` on or off. Off drops the GRO memory (datagrams already split off are
    /// still delivered).
    pub fn set_gro(&mut self, on: bool) -> io::Result<()> {
        self.socket.set_gro(on)?;
        self.gro = on;
        if !on {
            self.gro_memory = Vec::new();
        }
        Ok(())
    }

    pub fn gro(&self) -> bool {
        self.gro
    }

    /// The kernel's count of datagrams it dropped on this socket (`SO_RXQ_OVFL`).
    pub fn drops(&self) -> u32 {
        self.kernel_drops
    }

    /// Datagrams already taken from the kernel and waiting for the next receive (split off a
    /// GRO group that did not fit). While this is non-zero, do not wait for readability.
    pub fn buffered(&self) -> usize {
        self.leftovers.len()
    }

    /// Receives up to `target.capacity()` datagrams without blocking. `Ok(0)`: none queued.
    pub fn recv(&mut self, target: &mut RecvTarget<'_>) -> io::Result<usize> {
        let capacity = target.capacity();
        let mut filled = 0;
        while filled < capacity {
            let Some(left) = self.leftovers.pop_front() else {
                break;
            };
            filled += store_copy(target, filled, &left.bytes, left.source, left.truncated);
        }
        if filled == capacity {
            return Ok(filled);
        }
        if self.gro {
            return self.recv_gro(target, filled, capacity);
        }
        let slot_size = target.slot_size;
        let start = filled * slot_size;
        let result = self.recv_scratch.recv_slab(
            self.socket.raw_fd(),
            Slab {
                bytes: &mut target.data[start..],
                slot_size,
                max_datagrams: capacity - filled,
            },
            libc::MSG_DONTWAIT,
            None,
            &mut self.metas,
        );
        match result {
            Ok(_) => {}
            Err(e) if is_would_block(&e) => return Ok(filled),
            Err(e) if filled > 0 => {
                // Report the leftovers now; the error comes back on the next call.
                let _ = e;
                return Ok(filled);
            }
            Err(e) => return Err(e),
        }
        for meta in &self.metas {
            if let Some(drops) = meta.drops {
                self.kernel_drops = drops;
            }
        }
        for (i, meta) in self.metas.iter().enumerate() {
            target.record(filled + i, meta.len, meta.source, meta.truncated);
        }
        Ok(filled + self.metas.len())
    }

    fn recv_gro(
        &mut self,
        target: &mut RecvTarget<'_>,
        mut filled: usize,
        capacity: usize,
    ) -> io::Result<usize> {
        if self.gro_memory.is_empty() {
            self.gro_memory = vec![0; GRO_SLOTS * GRO_SLOT_SIZE];
        }
        let groups = (capacity - filled).min(GRO_SLOTS);
        let result = self.recv_scratch.recv_slab(
            self.socket.raw_fd(),
            Slab {
                bytes: &mut self.gro_memory[..groups * GRO_SLOT_SIZE],
                slot_size: GRO_SLOT_SIZE,
                max_datagrams: groups,
            },
            libc::MSG_DONTWAIT,
            None,
            &mut self.metas,
        );
        match result {
            Ok(_) => {}
            Err(e) if is_would_block(&e) => return Ok(filled),
            Err(_) if filled > 0 => return Ok(filled),
            Err(e) => return Err(e),
        }
        for (group, meta) in self.metas.iter().enumerate() {
            if let Some(drops) = meta.drops {
                self.kernel_drops = drops;
            }
            let base = group * GRO_SLOT_SIZE;
            for (offset, len) in meta.datagrams() {
                let bytes = &self.gro_memory[base + offset..base + offset + len];
                if filled < capacity {
                    filled += store_copy(target, filled, bytes, meta.source, meta.truncated);
                } else {
                    self.leftovers.push_back(Leftover {
                        bytes: bytes.to_vec(),
                        source: meta.source,
                        truncated: meta.truncated,
                    });
                }
            }
        }
        Ok(filled)
    }
}

/// Copies one datagram into slot `i` of `target` (cut to the slot, flagged if so); returns 1.
fn store_copy(
    target: &mut RecvTarget<'_>,
    i: usize,
    bytes: &[u8],
    source: Option<SocketAddr>,
    truncated: bool,
) -> usize {
    let slot = target.slot_size;
    let len = bytes.len().min(slot);
    target.data[i * slot..i * slot + len].copy_from_slice(&bytes[..len]);
    target.record(i, len, source, truncated || len < bytes.len());
    1
}

fn is_would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some((fd, identity)) = self.public_fd.take() {
            // Close the number we handed out only if it is still that same socket: after a
            // `close(fd)` behind our back it may be someone else's now.
            if sys::file_identity(fd).ok() == Some(identity) && self.same_socket(fd) {
                sys::close_raw(fd);
            }
        }
    }
}

/// An IPv4-mapped IPv6 address shown as IPv4 (what `node:dgram` reports for IPv4 senders).
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket as StdUdp;

    #[allow(clippy::type_complexity)]
    fn target_arrays(
        n: usize,
        slot: usize,
    ) -> (Vec<u8>, Vec<u32>, Vec<u16>, Vec<u8>, Vec<u32>, Vec<u8>) {
        (
            vec![0; n * slot],
            vec![0; n],
            vec![0; n],
            vec![0; 16 * n],
            vec![0; n],
            vec![0; n],
        )
    }

    #[test]
    fn receives_into_caller_arrays() {
        let mut endpoint = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
        endpoint
            .socket()
            .bind(SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap()))
            .unwrap();
        let to = endpoint.socket().local_addr().unwrap();
        let peer = StdUdp::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            peer.send_to(&[i; 10][..(i as usize + 1)], to).unwrap();
        }
        let (mut d, mut l, mut p, mut a, mut s, mut f) = target_arrays(4, 8);
        let mut target = RecvTarget {
            data: &mut d,
            slot_size: 8,
            lengths: &mut l,
            ports: &mut p,
            addresses: &mut a,
            scope_ids: &mut s,
            flags: &mut f,
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(endpoint.recv(&mut target).unwrap(), 4);
        assert_eq!(&target.lengths[..4], &[1, 2, 3, 4]);
        assert_eq!(&target.data[8..10], &[1, 1]);
        assert_eq!(target.ports[0], peer.local_addr().unwrap().port());
        assert_eq!(&target.addresses[12..16], &[127, 0, 0, 1]);
        assert_eq!(target.flags[0], 0);
        assert_eq!(endpoint.recv(&mut target).unwrap(), 1);
        assert_eq!(endpoint.recv(&mut target).unwrap(), 0);
    }

    #[test]
    fn public_fd_is_a_duplicate_that_may_be_closed_behind_our_back() {
        let mut endpoint = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
        let fd = endpoint.public_fd().unwrap();
        assert_ne!(fd, endpoint.socket().raw_fd());
        assert_eq!(endpoint.public_fd().unwrap(), fd);
        sys::close_raw(fd);
        // The number may be reused by someone else; ours keeps working, and a new number comes.
        let other = StdUdp::bind("127.0.0.1:0").unwrap();
        let again = endpoint.public_fd().unwrap();
        assert!(endpoint.same_socket(again));
        drop(endpoint);
        // `other` was not closed by the endpoint's drop.
        assert!(other.local_addr().is_ok());
        assert!(other.send_to(b"x", "127.0.0.1:9").is_ok());
    }
}
