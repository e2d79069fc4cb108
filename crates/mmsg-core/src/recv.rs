//! Receiving batches with `recvmmsg(2)` into memory the caller owns.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::time::Duration;

use crate::cmsg;
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
/// Runs once per datagram, so it dispatches on the raw headers itself and reads each payload
/// with `cmsg`'s readers, the ones `cmsg::iter` decodes with, without building a `Cmsg` per
/// message (`Cmsgs::next` showed in the receive profile with metadata on);
/// `decode_matches_the_typed_decoder` checks that both read every buffer alike.
fn decode_metadata(control: &[u8], meta: &mut RecvMeta) {
    let mut offset = 0;
    while let Some((raw, next)) = sys::cmsg_at(control, offset) {
        offset = next;
        let data = raw.data;
        match (raw.level, raw.kind) {
            (libc::IPPROTO_IP, libc::IP_TOS) => {
                if let Some(tos) = cmsg::tos_of(data) {
                    meta.info.tos = Some(tos);
                }
            }
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                if let Some(class) = cmsg::traffic_class_of(data) {
                    meta.info.tos = Some(class);
                }
            }
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                if let Some((dst, ifindex)) = cmsg::packet_info_v4_of(data) {
                    meta.info.destination = Some(IpAddr::V4(dst));
                    meta.info.interface = Some(ifindex);
                }
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                if let Some((dst, ifindex)) = cmsg::packet_info_v6_of(data) {
                    meta.info.destination = Some(crate::endpoint::unmap(IpAddr::V6(dst)));
                    meta.info.interface = Some(ifindex);
                }
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                if let Some(ns) = cmsg::timestamp_ns_of(data) {
                    meta.info.timestamp_ns = Some(ns);
                }
            }
            (libc::SOL_UDP, libc::UDP_GRO) => {
                if let Some(size) = cmsg::gro_segment_of(data) {
                    meta.gro_segment_size = Some(size);
                }
            }
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => {
                if let Some(count) = cmsg::drop_count_of(data) {
                    meta.drops = Some(count);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decode_metadata, DatagramInfo, RecvMeta};
    use crate::cmsg::{self, Cmsg};
    use std::net::IpAddr;

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

    /// The typed decoder's reading of the same buffer (what `decode_metadata` did before it
    /// dispatched on raw headers itself).
    fn typed(control: &[u8]) -> RecvMeta {
        let mut m = meta(0, None);
        for message in cmsg::iter(control) {
            match message {
                Cmsg::Tos(tos) | Cmsg::TrafficClass(tos) => m.info.tos = Some(tos),
                Cmsg::PacketInfoV4 { dst, ifindex } => {
                    m.info.destination = Some(IpAddr::V4(dst));
                    m.info.interface = Some(ifindex);
                }
                Cmsg::PacketInfoV6 { dst, ifindex } => {
                    m.info.destination = Some(crate::endpoint::unmap(IpAddr::V6(dst)));
                    m.info.interface = Some(ifindex);
                }
                Cmsg::TimestampNs(ns) => m.info.timestamp_ns = Some(ns),
                Cmsg::GroSegment(size) => m.gro_segment_size = Some(size),
                Cmsg::DropCount(count) => m.drops = Some(count),
                Cmsg::GsoSegment(_) | Cmsg::Other { .. } | Cmsg::ExtendedError(_) => {}
            }
        }
        m
    }

    #[test]
    fn decode_matches_the_typed_decoder() {
        // Every kind the receive path reads, at its real size and at wrong sizes, plus kinds it
        // ignores, in pseudo-random combinations and orders; some buffers cut short.
        let mut pktinfo4 = [0u8; 12];
        pktinfo4[..4].copy_from_slice(&3u32.to_ne_bytes());
        pktinfo4[8..].copy_from_slice(&[127, 0, 0, 9]);
        let mut pktinfo6 = [0u8; 20];
        pktinfo6[10] = 0xff;
        pktinfo6[11] = 0xff;
        pktinfo6[12..16].copy_from_slice(&[10, 1, 2, 3]); // an IPv4-mapped address
        pktinfo6[16..].copy_from_slice(&7u32.to_ne_bytes());
        let mut native6 = pktinfo6;
        native6[..16].copy_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        let mut timestamp = [0u8; std::mem::size_of::<libc::timespec>()];
        timestamp[0] = 5;
        timestamp[timestamp.len() / 2] = 9;
        let kinds: Vec<(i32, i32, Vec<u8>)> = vec![
            (libc::IPPROTO_IP, libc::IP_TOS, vec![0x02]),
            (libc::IPPROTO_IP, libc::IP_TOS, 3i32.to_ne_bytes().to_vec()),
            (libc::IPPROTO_IP, libc::IP_TOS, vec![1, 2]),
            (
                libc::IPPROTO_IPV6,
                libc::IPV6_TCLASS,
                0xb9i32.to_ne_bytes().to_vec(),
            ),
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS, vec![1]),
            (libc::IPPROTO_IP, libc::IP_PKTINFO, pktinfo4.to_vec()),
            (libc::IPPROTO_IP, libc::IP_PKTINFO, pktinfo4[..11].to_vec()),
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, pktinfo6.to_vec()),
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, native6.to_vec()),
            (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                native6[..19].to_vec(),
            ),
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, timestamp.to_vec()),
            (
                libc::SOL_SOCKET,
                libc::SCM_TIMESTAMPNS,
                timestamp[..8].to_vec(),
            ),
            (libc::SOL_UDP, libc::UDP_GRO, 1200u16.to_ne_bytes().to_vec()),
            (libc::SOL_UDP, libc::UDP_GRO, 1400i32.to_ne_bytes().to_vec()),
            (libc::SOL_UDP, libc::UDP_GRO, vec![1]),
            (
                libc::SOL_SOCKET,
                libc::SO_RXQ_OVFL,
                42u32.to_ne_bytes().to_vec(),
            ),
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL, vec![1, 2]),
            (
                libc::SOL_UDP,
                libc::UDP_SEGMENT,
                1000u16.to_ne_bytes().to_vec(),
            ),
            (libc::SOL_IP, libc::IP_RECVERR, vec![0; 16]),
            (99, 98, vec![1, 2, 3]),
        ];
        let mut seed = 0x2545_f491_u32;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize % n
        };
        for _ in 0..2000 {
            let mut control = vec![0u8; 512];
            let mut at = 0;
            for _ in 0..next(7) {
                let (level, kind, data) = &kinds[next(kinds.len())];
                match crate::sys::write_cmsg(&mut control, at, *level, *kind, data) {
                    Some(space) => at += space,
                    None => break,
                }
            }
            let cut = if next(4) == 0 { next(at + 1) } else { at };
            let control = &control[..cut];
            let mut fast = meta(0, None);
            decode_metadata(control, &mut fast);
            assert_eq!(fast, typed(control), "control buffer {control:?}");
        }
    }
}
