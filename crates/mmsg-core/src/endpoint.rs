//! [`Endpoint`]: everything one JS socket owns below the binding — the descriptor, the send and
//! receive scratch memory, the capabilities (GSO, GRO) and the drop counter.
//!
//! The binding keeps one `Endpoint` per socket and calls it only in phase 2 (no JavaScript can
//! run), with plain values and slices it has just looked up.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;

use crate::errqueue::{self, ErrorReporting, QueuedError};
use crate::gso::{self, GsoSupport, SegmentedReport};
use crate::plan::{PlanPosition, PlanReport, SendPlan};
use crate::recv::{DatagramInfo, RecvMeta, RecvScratch, Slab};
use crate::send::{SendReport, SendScratch, SendStop};
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
    /// `tos[i]` holds the datagram's TOS byte / traffic class.
    pub const HAS_TOS: u8 = 8;
    /// `destinations[16 * i..]` and `interfaces[i]` hold where it was sent to and came in.
    pub const HAS_DESTINATION: u8 = 16;
    /// `timestamps[i]` holds the kernel's receive time.
    pub const HAS_TIMESTAMP: u8 = 32;
    /// The destination is an IPv6 address (else IPv4, stored IPv4-mapped).
    pub const DESTINATION_IPV6: u8 = 64;
}

/// Which per-datagram metadata a socket asks the kernel for (all off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecvMetadata {
    /// TOS byte / traffic class, whose low two bits are the ECN codepoint.
    pub tos: bool,
    /// Destination address and interface index.
    pub packet_info: bool,
    /// Kernel receive timestamps (ns since the Unix epoch).
    pub timestamps: bool,
}

impl RecvMetadata {
    pub fn any(&self) -> bool {
        self.tos || self.packet_info || self.timestamps
    }
}

/// Caller-owned arrays that one receive fills: datagram `i` goes to
/// `data[i * slot_size..][..lengths[i]]`, its sender to `addresses[16 * i..][..16]`,
/// `ports[i]`, `scope_ids[i]` and `flags[i]`. The metadata arrays (`tos[i]`,
/// `destinations[16 * i..][..16]`, `interfaces[i]`, `timestamps[i]`) may be empty or shorter:
/// what does not fit is not stored; the `HAS_*` flags say what was.
pub struct RecvTarget<'a> {
    pub data: &'a mut [u8],
    pub slot_size: usize,
    pub lengths: &'a mut [u32],
    pub ports: &'a mut [u16],
    pub addresses: &'a mut [u8],
    pub scope_ids: &'a mut [u32],
    pub flags: &'a mut [u8],
    pub tos: &'a mut [u8],
    pub destinations: &'a mut [u8],
    pub interfaces: &'a mut [u32],
    pub timestamps: &'a mut [u64],
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

    fn record_info(&mut self, i: usize, info: &DatagramInfo) {
        let mut flags = 0;
        if let (Some(tos), Some(slot)) = (info.tos, self.tos.get_mut(i)) {
            *slot = tos;
            flags |= recv_flags::HAS_TOS;
        }
        if let (Some(ip), Some(slot)) = (
            info.destination,
            self.destinations.get_mut(16 * i..16 * i + 16),
        ) {
            match ip {
                IpAddr::V4(v4) => slot.copy_from_slice(&v4.to_ipv6_mapped().octets()),
                IpAddr::V6(v6) => {
                    slot.copy_from_slice(&v6.octets());
                    flags |= recv_flags::DESTINATION_IPV6;
                }
            }
            if let Some(slot) = self.interfaces.get_mut(i) {
                *slot = info.interface.unwrap_or(0);
            }
            flags |= recv_flags::HAS_DESTINATION;
        }
        if let (Some(ns), Some(slot)) = (info.timestamp_ns, self.timestamps.get_mut(i)) {
            *slot = ns;
            flags |= recv_flags::HAS_TIMESTAMP;
        }
        self.flags[i] |= flags;
    }
}

/// A datagram split off a GRO group that did not fit the caller's batch: delivered first next
/// time, so nothing the kernel handed over is lost.
struct Leftover {
    bytes: Vec<u8>,
    source: Option<SocketAddr>,
    truncated: bool,
    info: DatagramInfo,
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
    metadata: RecvMetadata,
    /// Latest `SO_RXQ_OVFL` count the kernel reported.
    kernel_drops: u32,
    /// A descriptor handed to JS as `socket.fd`, with its identity, closed with the endpoint
    /// only if it still is ours.
    public_fd: Option<(RawFd, (u64, u64))>,
    /// Error-queue entries read by sends and receives, oldest first, until taken.
    queued_errors: Vec<QueuedError>,
    /// Entries not kept because `queued_errors` was full (nobody took them).
    errors_overflowed: u64,
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
            metadata: RecvMetadata::default(),
            kernel_drops: 0,
            public_fd: None,
            queued_errors: Vec::new(),
            errors_overflowed: 0,
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
        let from = PlanPosition {
            message: from,
            segment: 0,
        };
        self.send_plan_from(plan, views, from, flags)
    }

    /// Sends a plan from a position inside a message with a segment size (see
    /// [`SendPlan::send_from`]).
    pub fn send_plan_from(
        &mut self,
        plan: &SendPlan,
        views: &[&[u8]],
        from: PlanPosition,
        flags: i32,
    ) -> PlanReport {
        plan.send_from(
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

    /// Sends one datagram of one piece to `destination` (or the connected peer): the path a
    /// lone `send()` takes. Same rules as a batch (EINTR retried, EAGAIN reported as
    /// `WouldBlock`, an error charged to the message only when it is its own), with no plan to
    /// build and nothing allocated once the scratch memory has grown.
    pub fn send_datagram(
        &mut self,
        bytes: &[u8],
        destination: Option<SockAddr>,
        flags: i32,
    ) -> SendReport {
        let fd = self.socket.raw_fd();
        // The common outcomes (sent, or the send buffer is full) take one `sendto` and nothing
        // else; any other result goes through the batch's rules as that batch's first call.
        let first = sys::sendto(fd, bytes, destination.as_ref(), flags);
        match &first {
            Ok(_) => {
                return SendReport {
                    sent: 1,
                    stop: SendStop::Complete,
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                return SendReport {
                    sent: 0,
                    stop: SendStop::WouldBlock,
                }
            }
            Err(_) => {}
        }
        let mut batch = self.send_scratch.batch();
        let id = destination.map(|address| batch.add_destination(address));
        batch.start_message(id);
        // One piece of a message just started: `add_segment` cannot refuse it.
        let _ = batch.add_segment(bytes);
        batch.send_after(fd, flags, 0, Some(first.map(|_| 1)))
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

    /// Asks the kernel for per-datagram metadata (or stops asking). With none on, receives take
    /// the plain path with the small control buffer.
    pub fn set_receive_metadata(&mut self, wanted: RecvMetadata) -> io::Result<()> {
        self.socket.set_recv_tos(wanted.tos)?;
        self.socket.set_recv_packet_info(wanted.packet_info)?;
        self.socket.set_recv_timestamps(wanted.timestamps)?;
        self.metadata = wanted;
        self.recv_scratch.set_metadata(wanted.any());
        Ok(())
    }

    pub fn receive_metadata(&self) -> RecvMetadata {
        self.metadata
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
            filled += store_copy(
                target,
                filled,
                &left.bytes,
                left.source,
                left.truncated,
                &left.info,
            );
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
        if self.recv_scratch.metadata() {
            for (i, meta) in self.metas.iter().enumerate() {
                target.record_info(filled + i, &meta.info);
            }
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
                    filled += store_copy(
                        target,
                        filled,
                        bytes,
                        meta.source,
                        meta.truncated,
                        &meta.info,
                    );
                } else {
                    self.leftovers.push_back(Leftover {
                        bytes: bytes.to_vec(),
                        source: meta.source,
                        truncated: meta.truncated,
                        info: meta.info,
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
    info: &DatagramInfo,
) -> usize {
    let slot = target.slot_size;
    let len = bytes.len().min(slot);
    target.data[i * slot..i * slot + len].copy_from_slice(&bytes[..len]);
    target.record(i, len, source, truncated || len < bytes.len());
    target.record_info(i, info);
    1
}

fn is_would_block(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::WouldBlock
}

/// Most error-queue entries an endpoint keeps for its owner before counting them as overflow.
pub const MAX_KEPT_ERRORS: usize = 4096;

// ---- the error queue: ICMP and path-MTU errors -----------------------------------------------

impl Endpoint {
    /// Turns error reporting on or off (see [`UdpSocket::set_receive_errors`]); with it on,
    /// sends and [`Endpoint::recv_keeping_errors`] keep every error-queue entry and do not fail
    /// because of an ICMP error that arrived meanwhile (see [`ErrorReporting::Surface`]).
    pub fn set_receive_errors(&mut self, on: bool) -> io::Result<()> {
        self.socket.set_receive_errors(on)?;
        self.send_scratch.set_error_reporting(if on {
            ErrorReporting::Surface
        } else {
            ErrorReporting::Attribute
        });
        Ok(())
    }

    pub fn receive_errors(&self) -> bool {
        self.send_scratch.error_reporting() == ErrorReporting::Surface
    }

    /// Moves entries read by sends into `queued_errors`, counting what does not fit.
    fn gather_send_errors(&mut self) {
        self.send_scratch
            .take_queued_errors(&mut self.queued_errors);
        if self.queued_errors.len() > MAX_KEPT_ERRORS {
            // The newest go: the oldest were kept first, as the kernel's own bounded queue does.
            let extra = self.queued_errors.len() - MAX_KEPT_ERRORS;
            self.queued_errors.truncate(MAX_KEPT_ERRORS);
            self.errors_overflowed += extra as u64;
        }
    }

    /// Entries already read (by sends, receives or a disconnect) and not yet taken.
    pub fn kept_error_count(&mut self) -> usize {
        self.gather_send_errors();
        self.queued_errors.len()
    }

    /// Entries dropped because too many were kept and none taken (see [`MAX_KEPT_ERRORS`]).
    pub fn errors_overflowed(&self) -> u64 {
        self.errors_overflowed
    }

    /// Up to `max` error entries, oldest first: those already read by sends and receives, then
    /// what the kernel's error queue holds now (never blocking). Reading the kernel's queue
    /// empty also clears the socket's pending ICMP error.
    pub fn take_errors(&mut self, max: usize) -> io::Result<Vec<QueuedError>> {
        self.gather_send_errors();
        let kept = self.queued_errors.len().min(max);
        let mut out: Vec<QueuedError> = self.queued_errors.drain(..kept).collect();
        if out.len() < max {
            errqueue::read_error_queue(self.socket.raw_fd(), max - out.len(), &mut out)?;
        }
        if out.is_empty() && max > 0 && self.receive_errors() {
            // The kernel sets the socket's pending error for every ICMP error, even when the
            // queue had no room for the entry (receive buffer full). Nothing in the queue then
            // clears it, and poll keeps reporting POLLERR: read it (SO_ERROR clears it) and
            // surface it as an entry of unknown origin rather than spin or lose it.
            let pending = self.socket.take_socket_error()?;
            if pending != 0 {
                out.push(QueuedError::pending(pending));
            }
        }
        Ok(out)
    }

    /// [`Endpoint::recv`], but with error reporting on a receive that fails only because an
    /// ICMP error arrived (the kernel's pending error, which fails one receive) reads the
    /// error queue (keeping the entries) and receives again, once. Without error reporting it
    /// is exactly `recv`.
    pub fn recv_keeping_errors(&mut self, target: &mut RecvTarget<'_>) -> io::Result<usize> {
        match self.recv(target) {
            Err(error) if self.receive_errors() => {
                // Older entries read by sends first, so that the kept entries stay in order.
                self.gather_send_errors();
                let first_new = self.queued_errors.len();
                let fd = self.socket.raw_fd();
                errqueue::read_error_queue(
                    fd,
                    errqueue::MAX_ENTRIES_PER_READ,
                    &mut self.queued_errors,
                )?;
                if errqueue::is_pending_icmp_error(&error, &self.queued_errors[first_new..]) {
                    self.recv(target)
                } else if errqueue::icmp_can_set(&error) {
                    // A pending error with no entry (the queue had no room for it): the failed
                    // receive cleared it; keep it as an entry of unknown origin, receive again.
                    if let Some(errno) = error.raw_os_error() {
                        self.queued_errors.push(QueuedError::pending(errno));
                    }
                    self.recv(target)
                } else {
                    Err(error)
                }
            }
            other => other,
        }
    }

    /// Dissolves a `connect`, first keeping what the error queue holds (the disconnect would
    /// otherwise empty it and lose the entries).
    pub fn disconnect(&mut self) -> io::Result<()> {
        self.gather_send_errors();
        let fd = self.socket.raw_fd();
        errqueue::read_error_queue(fd, errqueue::MAX_ENTRIES_PER_READ, &mut self.queued_errors)?;
        self.socket.disconnect()
    }
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
            tos: &mut [],
            destinations: &mut [],
            interfaces: &mut [],
            timestamps: &mut [],
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

    struct Arrays {
        d: Vec<u8>,
        l: Vec<u32>,
        p: Vec<u16>,
        a: Vec<u8>,
        s: Vec<u32>,
        f: Vec<u8>,
        tos: Vec<u8>,
        dst: Vec<u8>,
        ifs: Vec<u32>,
        ts: Vec<u64>,
    }

    impl Arrays {
        fn new(n: usize, slot: usize) -> Self {
            Arrays {
                d: vec![0; n * slot],
                l: vec![0; n],
                p: vec![0; n],
                a: vec![0; 16 * n],
                s: vec![0; n],
                f: vec![0; n],
                tos: vec![0; n],
                dst: vec![0; 16 * n],
                ifs: vec![0; n],
                ts: vec![0; n],
            }
        }

        fn recv(&mut self, endpoint: &mut Endpoint, slot: usize) -> usize {
            let mut target = RecvTarget {
                data: &mut self.d,
                slot_size: slot,
                lengths: &mut self.l,
                ports: &mut self.p,
                addresses: &mut self.a,
                scope_ids: &mut self.s,
                flags: &mut self.f,
                tos: &mut self.tos,
                destinations: &mut self.dst,
                interfaces: &mut self.ifs,
                timestamps: &mut self.ts,
            };
            let mut total = 0;
            for _ in 0..50 {
                let n = endpoint.recv(&mut target).unwrap();
                if n > 0 {
                    total = n;
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            total
        }
    }

    fn send_with_tos(from: &mut Endpoint, to: &[SocketAddr], tos: &[u8]) {
        let destinations: Vec<SockAddr> = to.iter().map(|&a| SockAddr::from(a)).collect();
        let indexes: Vec<u32> = (0..to.len() as u32).collect();
        let mut plan = SendPlan::new(vec![4; to.len()], &[], indexes, destinations).expect("plan");
        plan.set_tos(tos.to_vec()).unwrap();
        let payload = [7u8; 4];
        let views: Vec<&[u8]> = vec![&payload; to.len()];
        let report = from.send_plan(&plan, &views, 0, 0);
        assert_eq!(report.sent, to.len(), "{:?}", report.stop);
    }

    fn all_metadata() -> RecvMetadata {
        RecvMetadata {
            tos: true,
            packet_info: true,
            timestamps: true,
        }
    }

    #[test]
    fn receive_metadata_on_loopback_v4() {
        let mut rx = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
        rx.socket()
            .bind(SockAddr::from("0.0.0.0:0".parse::<SocketAddr>().unwrap()))
            .unwrap();
        rx.set_receive_metadata(all_metadata()).unwrap();
        let port = rx.socket().local_addr().unwrap().port();
        let one: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let two: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
        let mut tx = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        send_with_tos(&mut tx, &[one, two, one, one], &[1, 2, 0xb8 | 3, 0]);
        let mut arrays = Arrays::new(8, 16);
        assert_eq!(arrays.recv(&mut rx, 16), 4);
        let lo = sys::interface_index("lo").unwrap();
        assert_eq!(&arrays.tos[..4], &[1, 2, 0xbb, 0]);
        for i in 0..4 {
            let f = arrays.f[i];
            assert_ne!(f & recv_flags::HAS_TOS, 0);
            assert_ne!(f & recv_flags::HAS_DESTINATION, 0);
            assert_ne!(f & recv_flags::HAS_TIMESTAMP, 0);
            assert_eq!(f & recv_flags::DESTINATION_IPV6, 0);
            assert_eq!(arrays.ifs[i], lo);
            let ts = arrays.ts[i];
            assert!(ts + 1_000_000_000 > before && ts < before + 1_000_000_000);
            if i > 0 {
                assert!(ts >= arrays.ts[i - 1]);
            }
        }
        assert_eq!(&arrays.dst[12..16], &[127, 0, 0, 1]);
        assert_eq!(&arrays.dst[16 + 12..32], &[127, 0, 0, 2]);
        assert_eq!(&arrays.dst[10..12], &[0xff, 0xff]);
        // Off again: no metadata, nothing flagged.
        rx.set_receive_metadata(RecvMetadata::default()).unwrap();
        send_with_tos(&mut tx, &[one], &[1]);
        assert_eq!(arrays.recv(&mut rx, 16), 1);
        assert_eq!(arrays.f[0], 0);
    }

    #[test]
    fn receive_metadata_on_loopback_v6_and_mapped() {
        let mut rx = Endpoint::new(Family::V6, &SocketOptions::default()).unwrap();
        rx.socket()
            .bind(SockAddr::from("[::]:0".parse::<SocketAddr>().unwrap()))
            .unwrap();
        rx.set_receive_metadata(all_metadata()).unwrap();
        let port = rx.socket().local_addr().unwrap().port();
        let v6: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        let mapped: SocketAddr = format!("[::ffff:127.0.0.1]:{port}").parse().unwrap();
        let mut tx = Endpoint::new(Family::V6, &SocketOptions::default()).unwrap();
        send_with_tos(&mut tx, &[v6, mapped], &[2, 1]);
        let mut arrays = Arrays::new(8, 16);
        assert_eq!(arrays.recv(&mut rx, 16), 2);
        assert_eq!(&arrays.tos[..2], &[2, 1]);
        assert_ne!(arrays.f[0] & recv_flags::DESTINATION_IPV6, 0);
        assert_eq!(&arrays.dst[..16], &std::net::Ipv6Addr::LOCALHOST.octets());
        assert_eq!(arrays.f[1] & recv_flags::DESTINATION_IPV6, 0);
        assert_eq!(&arrays.dst[16 + 10..32], &[0xff, 0xff, 127, 0, 0, 1]);
        let lo = sys::interface_index("lo").unwrap();
        assert_eq!(&arrays.ifs[..2], &[lo, lo]);
    }

    #[test]
    fn different_tos_values_are_not_one_gso_run() {
        let mut rx = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
        rx.socket()
            .bind(SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap()))
            .unwrap();
        rx.set_receive_metadata(RecvMetadata {
            tos: true,
            ..RecvMetadata::default()
        })
        .unwrap();
        let to = rx.socket().local_addr().unwrap();
        let mut tx = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
        let plan_tos = [1u8, 1, 1, 2, 2, 0, 0, 3];
        let mut plan = SendPlan::new(vec![4; 8], &[], vec![], vec![SockAddr::from(to)]).unwrap();
        assert!(plan.set_tos(vec![1; 3]).is_err());
        plan.set_tos(plan_tos.to_vec()).unwrap();
        assert_eq!(plan.gso_run_for_test(0, 8), 3);
        assert_eq!(plan.gso_run_for_test(3, 8), 2);
        let payload = [9u8; 4];
        let views: Vec<&[u8]> = vec![&payload; 8];
        assert_eq!(tx.send_plan(&plan, &views, 0, 0).sent, 8);
        let mut arrays = Arrays::new(16, 16);
        let mut got = Vec::new();
        while got.len() < 8 {
            let n = arrays.recv(&mut rx, 16);
            assert!(n > 0, "datagrams missing: {got:?}");
            got.extend_from_slice(&arrays.tos[..n]);
            assert!(arrays.l[..n].iter().all(|&l| l == 4));
        }
        assert_eq!(got, plan_tos);
    }
}
