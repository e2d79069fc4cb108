//! Receiving batches with `recvmmsg(2)` into memory the caller owns.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::time::Duration;

use crate::cmsg::{self, Cmsg};
use crate::sys::{self, SockAddrStorage};

/// `MSG_DONTWAIT`, for callers that do not link libc themselves.
pub const MSG_DONTWAIT: i32 = libc::MSG_DONTWAIT;
/// `MSG_WAITFORONE`: block for the first datagram only.
pub const MSG_WAITFORONE: i32 = libc::MSG_WAITFORONE;
/// The `recvmsg` flags that make sense for a batch.
pub const KNOWN_RECV_FLAGS: i32 = libc::MSG_DONTWAIT
    | libc::MSG_WAITFORONE
    | libc::MSG_PEEK
    | libc::MSG_TRUNC
    | libc::MSG_ERRQUEUE;

/// What the kernel said about one received datagram (plain data, like quinn-udp's `RecvMeta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes stored in the slot (at most the slot size).
    pub len: usize,
    /// The sender, when the socket reports one (unconnected sockets always do).
    pub source: Option<SocketAddr>,
    /// The datagram was longer than the slot and was cut (`MSG_TRUNC`).
    pub truncated: bool,
    /// With `UDP_GRO`: the size of the datagrams coalesced into this slot.
    pub gro_segment_size: Option<u32>,
    /// With `SO_RXQ_OVFL`: the socket's running count of datagrams the kernel dropped.
    pub drops: Option<u32>,
    /// Per-datagram metadata (all `None` unless [`RecvScratch::set_metadata`] is on).
    pub info: DatagramInfo,
}

/// What the kernel reports about one datagram when receive metadata is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatagramInfo {
    /// The IPv4 TOS byte or IPv6 traffic class (`IP_RECVTOS` / `IPV6_RECVTCLASS`): the low two
    /// bits are the ECN codepoint.
    pub tos: Option<u8>,
    /// The address the datagram was sent to (`IP_PKTINFO` / `IPV6_RECVPKTINFO`); IPv4 as IPv4.
    pub destination: Option<IpAddr>,
    /// The index of the interface it arrived on.
    pub interface: Option<u32>,
    /// When the kernel received it: nanoseconds since the Unix epoch (`SO_TIMESTAMPNS`).
    pub timestamp_ns: Option<u64>,
}

/// A slab of memory cut into `slot_size`-byte slots, at most `max_datagrams` of them.
pub struct Slab<'a> {
    pub bytes: &'a mut [u8],
    pub slot_size: usize,
    pub max_datagrams: usize,
}

impl RecvMeta {
    /// The datagrams in this slot as `(offset, length)` pairs: one, or with `UDP_GRO` the
    /// coalesced datagrams split back apart (all `gro_segment_size` long but the last).
    pub fn datagrams(&self) -> impl Iterator<Item = (usize, usize)> {
        let len = self.len;
        let step = match self.gro_segment_size {
            Some(size) if size > 0 && (size as usize) < len => size as usize,
            _ => len.max(1),
        };
        let count = if len == 0 { 1 } else { len.div_ceil(step) };
        (0..count).map(move |i| {
            let offset = i * step;
            (offset, step.min(len - offset))
        })
    }
}

/// Control space per message: room for `SO_RXQ_OVFL` (u32) and `UDP_GRO` (int).
const CONTROL_WORDS: usize = 8;

/// Reusable memory for receiving batches.
#[derive(Default)]
pub struct RecvScratch {
    headers: Vec<libc::mmsghdr>,
    slots: Vec<libc::iovec>,
    names: Vec<SockAddrStorage>,
    /// Control space, `control_words()` words per message.
    control: Vec<u64>,
    /// Decode TOS, packet info and timestamps (and give each message room for them).
    metadata: bool,
}

impl RecvScratch {
    pub fn new() -> Self {
        Self::default()
    }

    /// With `on`, each message gets control space for the metadata messages and they are
    /// decoded into [`RecvMeta::info`]; off (the default), the small buffer and the plain
    /// decoding of GRO and drop counts only. The socket options are the caller's.
    pub fn set_metadata(&mut self, on: bool) {
        self.metadata = on;
    }

    pub fn metadata(&self) -> bool {
        self.metadata
    }

    fn control_words(&self) -> usize {
        if self.metadata {
            cmsg::recv_metadata_space().div_ceil(8).max(CONTROL_WORDS)
        } else {
            CONTROL_WORDS
        }
    }

    /// Receives up to `buffers.len()` datagrams, one per buffer, and describes each in `out`.
    /// Returns how many arrived. Blocking behaviour follows the socket and `flags`
    /// (`MSG_DONTWAIT`, `MSG_WAITFORONE`); `timeout` is recvmmsg's own. `EINTR` is retried;
    /// every other error (including `EAGAIN`) is returned.
    pub fn recv_into(
        &mut self,
        fd: RawFd,
        buffers: &mut [&mut [u8]],
        flags: libc::c_int,
        timeout: Option<Duration>,
        out: &mut Vec<RecvMeta>,
    ) -> io::Result<usize> {
        self.slots.clear();
        self.slots
            .extend(buffers.iter_mut().map(|b| sys::iovec_for_mut(b)));
        self.receive(fd, flags, timeout, out)
    }

    /// Receives into consecutive fixed-size slots of one slab (datagram `i` starts at
    /// `i * slab.slot_size`).
    pub fn recv_slab(
        &mut self,
        fd: RawFd,
        slab: Slab<'_>,
        flags: libc::c_int,
        timeout: Option<Duration>,
        out: &mut Vec<RecvMeta>,
    ) -> io::Result<usize> {
        self.slots.clear();
        if slab.slot_size == 0 {
            out.clear();
            return Ok(0);
        }
        self.slots.extend(
            slab.bytes
                .chunks_exact_mut(slab.slot_size)
                .take(slab.max_datagrams.min(crate::MAX_MESSAGES_PER_CALL))
                .map(sys::iovec_for_mut),
        );
        self.receive(fd, flags, timeout, out)
    }

    fn receive(
        &mut self,
        fd: RawFd,
        flags: libc::c_int,
        timeout: Option<Duration>,
        out: &mut Vec<RecvMeta>,
    ) -> io::Result<usize> {
        out.clear();
        let count = self.slots.len().min(crate::MAX_MESSAGES_PER_CALL);
        if count == 0 {
            return Ok(0);
        }
        self.headers.resize(count, sys::zeroed_mmsghdr());
        self.names.resize(count, SockAddrStorage::new());
        let words = self.control_words();
        self.control.resize(count * words, 0);
        for i in 0..count {
            self.names[i] = SockAddrStorage::new();
            let header = &mut self.headers[i];
            *header = sys::zeroed_mmsghdr();
            header.msg_hdr.msg_iov = &mut self.slots[i];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_name = self.names[i].as_mut_ptr().cast();
            header.msg_hdr.msg_namelen = self.names[i].len;
            header.msg_hdr.msg_control = self.control[i * words..].as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = (words * 8) as _;
        }
        let received = loop {
            // SAFETY: every header points at one iovec in `self.slots` (describing memory the
            // caller lent us mutably), at a name slot in `self.names` and a control area in
            // `self.control`, with matching lengths; none move during the call.
            match unsafe { sys::recvmmsg(fd, &mut self.headers[..count], flags, timeout) } {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                other => break other?,
            }
        };
        let metadata = self.metadata;
        out.extend(
            self.headers[..received]
                .iter()
                .enumerate()
                .map(|(i, header)| {
                    let hdr = &header.msg_hdr;
                    let mut name = self.names[i];
                    name.len = hdr.msg_namelen;
                    let mut meta = RecvMeta {
                        len: (header.msg_len as usize).min(self.slots[i].iov_len),
                        source: if hdr.msg_namelen == 0 {
                            None
                        } else {
                            name.decode()
                        },
                        truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
                        gro_segment_size: None,
                        drops: None,
                        info: DatagramInfo::default(),
                    };
                    if metadata {
                        // `msg_controllen` is `usize` on glibc and `u32` on musl.
                        #[allow(clippy::unnecessary_cast)]
                        let used = (hdr.msg_controllen as usize).min(words * 8);
                        let control =
                            &sys::words_as_bytes(&self.control[i * words..][..words])[..used];
                        decode_metadata(control, &mut meta);
                    } else {
                        meta.gro_segment_size = sys::cmsg_u32(hdr, libc::SOL_UDP, libc::UDP_GRO);
                        meta.drops = sys::cmsg_u32(hdr, libc::SOL_SOCKET, libc::SO_RXQ_OVFL);
                    }
                    meta
                }),
        );
        Ok(received)
    }
}

/// Fills `meta`'s GRO size, drop count and [`DatagramInfo`] from a received control buffer.
fn decode_metadata(control: &[u8], meta: &mut RecvMeta) {
    for message in cmsg::iter(control) {
        match message {
            Cmsg::Tos(tos) | Cmsg::TrafficClass(tos) => meta.info.tos = Some(tos),
            Cmsg::PacketInfoV4 { dst, ifindex } => {
                meta.info.destination = Some(IpAddr::V4(dst));
                meta.info.interface = Some(ifindex);
            }
            Cmsg::PacketInfoV6 { dst, ifindex } => {
                meta.info.destination = Some(crate::endpoint::unmap(IpAddr::V6(dst)));
                meta.info.interface = Some(ifindex);
            }
            Cmsg::TimestampNs(ns) => meta.info.timestamp_ns = Some(ns),
            Cmsg::GroSegment(size) => meta.gro_segment_size = Some(size),
            Cmsg::DropCount(count) => meta.drops = Some(count),
            Cmsg::GsoSegment(_) | Cmsg::Other { .. } | Cmsg::ExtendedError(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DatagramInfo, RecvMeta};

    fn meta(len: usize, gro: Option<u32>) -> RecvMeta {
        RecvMeta {
            len,
            source: None,
            truncated: false,
            gro_segment_size: gro,
            drops: None,
            info: DatagramInfo::default(),
        }
    }

    #[test]
    fn splits_gro_slots_back_into_datagrams() {
        let parts: Vec<_> = meta(2500, Some(1000)).datagrams().collect();
        assert_eq!(parts, vec![(0, 1000), (1000, 1000), (2000, 500)]);
        assert_eq!(
            meta(700, None).datagrams().collect::<Vec<_>>(),
            vec![(0, 700)]
        );
        assert_eq!(meta(0, None).datagrams().collect::<Vec<_>>(), vec![(0, 0)]);
        assert_eq!(
            meta(300, Some(300)).datagrams().collect::<Vec<_>>(),
            vec![(0, 300)]
        );
    }
}
