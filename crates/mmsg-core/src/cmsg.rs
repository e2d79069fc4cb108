//! Typed control messages (ancillary data): an [`Encoder`] that writes several into one aligned
//! buffer for `sendmsg`, and an iterator ([`Cmsgs`]) over what `recvmsg` wrote, yielding
//! [`Cmsg`] values. Safe code only: the raw header reads and writes are in `sys`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::sys;

/// One control message, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmsg<'a> {
    /// `IP_TOS` (received with `IP_RECVTOS`, or sent): the IPv4 TOS byte (DSCP << 2 | ECN).
    Tos(u8),
    /// `IPV6_TCLASS` (received with `IPV6_RECVTCLASS`, or sent): the IPv6 traffic class.
    TrafficClass(u8),
    /// `IP_PKTINFO`: the datagram's destination address (from the IP header) and the index of
    /// the interface it came in on. Sent: `dst` is written to `ipi_spec_dst`, the source
    /// address to send from (and to `ipi_addr`, which the kernel ignores on send), `ifindex`
    /// to `ipi_ifindex`, the interface to send on (0: the route's).
    PacketInfoV4 { dst: Ipv4Addr, ifindex: u32 },
    /// `IPV6_PKTINFO` (received with `IPV6_RECVPKTINFO`). Sent: `dst` is the source address
    /// (`ipi6_addr`; `::` lets the route choose), `ifindex` the interface (`ipi6_ifindex`).
    PacketInfoV6 { dst: Ipv6Addr, ifindex: u32 },
    /// `SCM_TIMESTAMPNS`: when the kernel received the datagram, in nanoseconds since the Unix
    /// epoch (`CLOCK_REALTIME`).
    TimestampNs(u64),
    /// `UDP_GRO`: the size of the datagrams coalesced into this one.
    GroSegment(u32),
    /// `UDP_SEGMENT` (sent): the GSO segment size.
    GsoSegment(u16),
    /// `SO_RXQ_OVFL`: the socket's running count of dropped datagrams.
    DropCount(u32),
    /// `IP_RECVERR` / `IPV6_RECVERR` (read with `MSG_ERRQUEUE`): one error-queue entry, a
    /// `struct sock_extended_err` and the `SO_EE_OFFENDER` address after it.
    ExtendedError(ExtendedError),
    /// Anything else (or a known kind with a payload of an unexpected size).
    Other {
        level: i32,
        kind: i32,
        data: &'a [u8],
    },
}

/// A decoded `struct sock_extended_err` (linux/errqueue.h) with its offender address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedError {
    /// `ee_errno`: the error, e.g. `ECONNREFUSED` or `EMSGSIZE` (positive).
    pub errno: u32,
    /// `ee_origin`: who reported it (`SO_EE_ORIGIN_*`: 1 local, 2 ICMP, 3 ICMPv6, ...).
    pub origin: u8,
    /// `ee_type`: the ICMP / ICMPv6 type (0 for local errors).
    pub icmp_type: u8,
    /// `ee_code`: the ICMP / ICMPv6 code.
    pub icmp_code: u8,
    /// `ee_info`: the path MTU for "fragmentation needed" / "packet too big" and for local
    /// `EMSGSIZE`; otherwise usually 0.
    pub info: u32,
    /// `ee_data`: origin-specific (unused by ICMP errors).
    pub data: u32,
    /// `SO_EE_OFFENDER`: the node that reported the error (the router or host that sent the
    /// ICMP message); `None` when the kernel gives none (family `AF_UNSPEC`, local errors).
    pub offender: Option<SocketAddr>,
    /// The control message came at the IPv6 level (`SOL_IPV6`/`IPV6_RECVERR`: any error on an
    /// IPv6 socket, IPv4-mapped traffic included) rather than `SOL_IP`/`IP_RECVERR`.
    pub ipv6_level: bool,
}

/// Size of `struct sock_extended_err`: `u32 errno; u8 origin, type, code, pad; u32 info, data`.
const EXTENDED_ERROR_LEN: usize = 16;

/// Reads a `sockaddr_in` / `sockaddr_in6` laid out in `bytes` (as the kernel writes them:
/// family in native order, port and addresses in network order). `None` for any other family
/// (notably `AF_UNSPEC`, "no address") or too few bytes.
pub fn sockaddr_from_bytes(bytes: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(bytes.get(0..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
    match i32::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(bytes.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// The bytes of a `sockaddr_in` (16) / `sockaddr_in6` (28) for `address` (`None`: 16 zero
/// bytes, `AF_UNSPEC`): the inverse of [`sockaddr_from_bytes`], used to encode test entries.
fn sockaddr_to_bytes(address: Option<SocketAddr>, out: &mut Vec<u8>) {
    match address {
        None => out.extend_from_slice(&[0; 16]),
        Some(SocketAddr::V4(v4)) => {
            out.extend_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            out.extend_from_slice(&v4.port().to_be_bytes());
            out.extend_from_slice(&v4.ip().octets());
            out.extend_from_slice(&[0; 8]);
        }
        Some(SocketAddr::V6(v6)) => {
            out.extend_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            out.extend_from_slice(&v6.port().to_be_bytes());
            out.extend_from_slice(&v6.flowinfo().to_be_bytes());
            out.extend_from_slice(&v6.ip().octets());
            out.extend_from_slice(&v6.scope_id().to_ne_bytes());
        }
    }
}

fn decode_extended_error(data: &[u8], ipv6_level: bool) -> Option<ExtendedError> {
    if data.len() < EXTENDED_ERROR_LEN {
        return None;
    }
    Some(ExtendedError {
        errno: u32_at(data, 0)?,
        origin: data[4],
        icmp_type: data[5],
        icmp_code: data[6],
        info: u32_at(data, 8)?,
        data: u32_at(data, 12)?,
        offender: sockaddr_from_bytes(&data[EXTENDED_ERROR_LEN..]),
        ipv6_level,
    })
}

/// Bytes a control message with `payload` bytes of data takes (`CMSG_SPACE`).
pub fn space(payload: usize) -> usize {
    sys::cmsg_space(payload)
}

/// Room for every message [`RecvScratch`](crate::RecvScratch) asks for with metadata on:
/// TOS and traffic class, both packet-info kinds, a timestamp, GRO and the drop count.
pub fn recv_metadata_space() -> usize {
    space(1)
        + space(4)
        + space(std::mem::size_of::<libc::in_pktinfo>())
        + space(std::mem::size_of::<libc::in6_pktinfo>())
        + space(std::mem::size_of::<libc::timespec>())
        + space(4)
        + space(4)
}

/// The payload bytes `message` is sent with.
fn encode(message: &Cmsg<'_>, out: &mut [u8; 20]) -> (i32, i32, usize) {
    match *message {
        Cmsg::Tos(tos) => {
            out[..4].copy_from_slice(&i32::from(tos).to_ne_bytes());
            (libc::IPPROTO_IP, libc::IP_TOS, 4)
        }
        Cmsg::TrafficClass(class) => {
            out[..4].copy_from_slice(&i32::from(class).to_ne_bytes());
            (libc::IPPROTO_IPV6, libc::IPV6_TCLASS, 4)
        }
        Cmsg::PacketInfoV4 { dst, ifindex } => {
            // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
            out[..4].copy_from_slice(&ifindex.to_ne_bytes());
            out[4..8].copy_from_slice(&dst.octets());
            out[8..12].copy_from_slice(&dst.octets());
            (libc::IPPROTO_IP, libc::IP_PKTINFO, 12)
        }
        Cmsg::PacketInfoV6 { dst, ifindex } => {
            // struct in6_pktinfo { in6_addr ipi6_addr; unsigned ipi6_ifindex; }
            out[..16].copy_from_slice(&dst.octets());
            out[16..20].copy_from_slice(&ifindex.to_ne_bytes());
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, 20)
        }
        Cmsg::TimestampNs(_) | Cmsg::Other { .. } | Cmsg::ExtendedError(_) => {
            unreachable!("encoded by the caller")
        }
        Cmsg::GroSegment(size) => {
            out[..4].copy_from_slice(&(size as i32).to_ne_bytes());
            (libc::SOL_UDP, libc::UDP_GRO, 4)
        }
        Cmsg::GsoSegment(size) => {
            out[..2].copy_from_slice(&size.to_ne_bytes());
            (libc::SOL_UDP, libc::UDP_SEGMENT, 2)
        }
        Cmsg::DropCount(count) => {
            out[..4].copy_from_slice(&count.to_ne_bytes());
            (libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 4)
        }
    }
}

/// The control buffer did not have room for another message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoRoom;

/// Writes control messages one after another into an 8-byte-aligned buffer.
pub struct Encoder<'a> {
    buffer: &'a mut [u8],
    used: usize,
}

impl<'a> Encoder<'a> {
    /// An encoder over `buffer` (words, so that it is aligned as `msg_control` wants).
    pub fn new(buffer: &'a mut [u64]) -> Self {
        Encoder {
            buffer: sys::words_as_bytes_mut(buffer),
            used: 0,
        }
    }

    /// Appends a raw control message.
    pub fn push_raw(&mut self, level: i32, kind: i32, data: &[u8]) -> Result<(), NoRoom> {
        let space = sys::write_cmsg(self.buffer, self.used, level, kind, data).ok_or(NoRoom)?;
        self.used += space;
        Ok(())
    }

    /// Appends a typed control message.
    pub fn push(&mut self, message: &Cmsg<'_>) -> Result<(), NoRoom> {
        match *message {
            Cmsg::Other { level, kind, data } => self.push_raw(level, kind, data),
            Cmsg::TimestampNs(ns) => {
                let mut bytes = [0u8; std::mem::size_of::<libc::timespec>()];
                let half = bytes.len() / 2;
                bytes[..half].copy_from_slice(&(ns / 1_000_000_000).to_ne_bytes()[..half]);
                bytes[half..].copy_from_slice(&(ns % 1_000_000_000).to_ne_bytes()[..half]);
                self.push_raw(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &bytes)
            }
            Cmsg::ExtendedError(entry) => {
                // What the kernel writes (only the kernel sends these; encoding them is for
                // tests of the decoder).
                let mut bytes = Vec::with_capacity(EXTENDED_ERROR_LEN + 28);
                bytes.extend_from_slice(&entry.errno.to_ne_bytes());
                bytes.extend_from_slice(&[entry.origin, entry.icmp_type, entry.icmp_code, 0]);
                bytes.extend_from_slice(&entry.info.to_ne_bytes());
                bytes.extend_from_slice(&entry.data.to_ne_bytes());
                sockaddr_to_bytes(entry.offender, &mut bytes);
                let (level, kind) = if entry.ipv6_level {
                    (libc::SOL_IPV6, libc::IPV6_RECVERR)
                } else {
                    (libc::SOL_IP, libc::IP_RECVERR)
                };
                self.push_raw(level, kind, &bytes)
            }
            _ => {
                let mut payload = [0u8; 20];
                let (level, kind, len) = encode(message, &mut payload);
                self.push_raw(level, kind, &payload[..len])
            }
        }
    }

    /// Bytes written so far (the `msg_controllen` to send).
    pub fn len(&self) -> usize {
        self.used
    }

    pub fn is_empty(&self) -> bool {
        self.used == 0
    }
}

/// The control messages in a received control buffer (cut to `msg_controllen`).
pub struct Cmsgs<'a> {
    control: &'a [u8],
    offset: usize,
}

/// Iterates over the control messages in `control`.
pub fn iter(control: &[u8]) -> Cmsgs<'_> {
    Cmsgs { control, offset: 0 }
}

impl<'a> Iterator for Cmsgs<'a> {
    type Item = Cmsg<'a>;

    fn next(&mut self) -> Option<Cmsg<'a>> {
        let (raw, next) = sys::cmsg_at(self.control, self.offset)?;
        self.offset = next;
        Some(decode(raw.level, raw.kind, raw.data))
    }
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

// The payload readers, one per kind the kernel delivers on receive: shared by `decode` (the
// typed `Cmsg` view) and by the receive loop's own decoding (`recv.rs`), which skips building
// a `Cmsg` per message. `None`: a payload of an unexpected size.

/// `IP_TOS`: the kernel delivers a received one as one byte; a sent one may be an int.
#[inline]
pub(crate) fn tos_of(data: &[u8]) -> Option<u8> {
    match data.len() {
        1 => Some(data[0]),
        4 => u32_at(data, 0).map(|v| v as u8),
        _ => None,
    }
}

/// `IPV6_TCLASS`: an int.
#[inline]
pub(crate) fn traffic_class_of(data: &[u8]) -> Option<u8> {
    u32_at(data, 0).map(|v| v as u8)
}

/// `IP_PKTINFO`: `struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }`,
/// as (the header's destination address `ipi_addr`, the interface index).
#[inline]
pub(crate) fn packet_info_v4_of(data: &[u8]) -> Option<(Ipv4Addr, u32)> {
    let dst: [u8; 4] = data.get(8..12)?.try_into().ok()?;
    Some((Ipv4Addr::from(dst), u32_at(data, 0)?))
}

/// `IPV6_PKTINFO`: `struct in6_pktinfo { in6_addr ipi6_addr; unsigned ipi6_ifindex; }`.
#[inline]
pub(crate) fn packet_info_v6_of(data: &[u8]) -> Option<(Ipv6Addr, u32)> {
    let dst: [u8; 16] = data.get(..16)?.try_into().ok()?;
    Some((Ipv6Addr::from(dst), u32_at(data, 16)?))
}

/// `SCM_TIMESTAMPNS`: a `struct timespec`, as nanoseconds since the Unix epoch.
#[inline]
pub(crate) fn timestamp_ns_of(data: &[u8]) -> Option<u64> {
    // Two `time_t`/`long` fields: 8 bytes each on 64-bit targets, 4 on 32-bit ones.
    const HALF: usize = std::mem::size_of::<libc::timespec>() / 2;
    if data.len() != 2 * HALF {
        return None;
    }
    let field = |bytes: &[u8]| -> u64 {
        let mut wide = [0u8; 8];
        wide[..HALF].copy_from_slice(&bytes[..HALF]);
        u64::from_ne_bytes(wide)
    };
    let (sec, nsec) = (field(&data[..HALF]), field(&data[HALF..]));
    Some(sec.saturating_mul(1_000_000_000).saturating_add(nsec))
}

/// `UDP_GRO`: the coalesced datagrams' size, a u16 or an int.
#[inline]
pub(crate) fn gro_segment_of(data: &[u8]) -> Option<u32> {
    match data.len() {
        2 => Some(u32::from(u16::from_ne_bytes([data[0], data[1]]))),
        n if n >= 4 => u32_at(data, 0),
        _ => None,
    }
}

/// `SO_RXQ_OVFL`: a u32 count.
#[inline]
pub(crate) fn drop_count_of(data: &[u8]) -> Option<u32> {
    u32_at(data, 0)
}

fn decode(level: i32, kind: i32, data: &[u8]) -> Cmsg<'_> {
    let decoded = match (level, kind) {
        (libc::IPPROTO_IP, libc::IP_TOS) => tos_of(data).map(Cmsg::Tos),
        (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => traffic_class_of(data).map(Cmsg::TrafficClass),
        (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
            packet_info_v4_of(data).map(|(dst, ifindex)| Cmsg::PacketInfoV4 { dst, ifindex })
        }
        (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
            packet_info_v6_of(data).map(|(dst, ifindex)| Cmsg::PacketInfoV6 { dst, ifindex })
        }
        (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => timestamp_ns_of(data).map(Cmsg::TimestampNs),
        (libc::SOL_UDP, libc::UDP_GRO) => gro_segment_of(data).map(Cmsg::GroSegment),
        (libc::SOL_UDP, libc::UDP_SEGMENT) if data.len() == 2 => {
            Some(Cmsg::GsoSegment(u16::from_ne_bytes([data[0], data[1]])))
        }
        (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => drop_count_of(data).map(Cmsg::DropCount),
        (libc::SOL_IP, libc::IP_RECVERR) => {
            decode_extended_error(data, false).map(Cmsg::ExtendedError)
        }
        (libc::SOL_IPV6, libc::IPV6_RECVERR) => {
            decode_extended_error(data, true).map(Cmsg::ExtendedError)
        }
        _ => None,
    };
    decoded.unwrap_or(Cmsg::Other { level, kind, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(messages: &[Cmsg<'_>]) -> Vec<u8> {
        let mut words = [0u64; 64];
        let mut encoder = Encoder::new(&mut words);
        for m in messages {
            encoder.push(m).unwrap();
        }
        let len = encoder.len();
        sys::words_as_bytes(&words)[..len].to_vec()
    }

    #[test]
    fn encodes_then_iterates_every_kind() {
        let messages = [
            Cmsg::Tos(0xb9),
            Cmsg::TrafficClass(0x03),
            Cmsg::PacketInfoV4 {
                dst: Ipv4Addr::new(127, 0, 0, 2),
                ifindex: 1,
            },
            Cmsg::PacketInfoV6 {
                dst: Ipv6Addr::LOCALHOST,
                ifindex: 7,
            },
            Cmsg::TimestampNs(1_700_000_000_123_456_789),
            Cmsg::GroSegment(1200),
            Cmsg::GsoSegment(1400),
            Cmsg::DropCount(42),
            Cmsg::Other {
                level: 99,
                kind: 5,
                data: &[1, 2, 3],
            },
        ];
        let bytes = round_trip(&messages);
        let expected: usize = [
            4,
            4,
            12,
            20,
            std::mem::size_of::<libc::timespec>(),
            4,
            2,
            4,
            3,
        ]
        .iter()
        .map(|&n| space(n))
        .sum();
        assert_eq!(bytes.len(), expected);
        let decoded: Vec<_> = iter(&bytes).collect();
        assert_eq!(decoded, messages);
    }

    #[test]
    fn empty_and_cut_buffers_end_the_iteration() {
        assert_eq!(iter(&[]).count(), 0);
        let bytes = round_trip(&[Cmsg::Tos(1), Cmsg::DropCount(3)]);
        // A buffer cut inside the second message yields only the first.
        let cut = &bytes[..bytes.len() - 5];
        assert_eq!(iter(cut).collect::<Vec<_>>(), vec![Cmsg::Tos(1)]);
        // A header whose length claims too much ends it, too.
        let mut bad = bytes.clone();
        bad[..std::mem::size_of::<usize>().min(4)].fill(0xff);
        assert_eq!(iter(&bad).count(), 0);
        // Too short for a header.
        assert_eq!(iter(&bytes[..4]).count(), 0);
    }

    #[test]
    fn odd_sizes_are_other() {
        let bytes = round_trip(&[
            Cmsg::Other {
                level: libc::IPPROTO_IP,
                kind: libc::IP_TOS,
                data: &[1],
            },
            Cmsg::Other {
                level: libc::IPPROTO_IP,
                kind: libc::IP_PKTINFO,
                data: &[0; 3],
            },
        ]);
        let decoded: Vec<_> = iter(&bytes).collect();
        assert_eq!(decoded[0], Cmsg::Tos(1));
        assert!(matches!(decoded[1], Cmsg::Other { .. }));
    }

    #[test]
    fn extended_errors_decode_with_and_without_offender() {
        let frag_needed = ExtendedError {
            errno: libc::EMSGSIZE as u32,
            origin: libc::SO_EE_ORIGIN_ICMP,
            icmp_type: 3,
            icmp_code: 4,
            info: 1280,
            data: 0,
            offender: Some("127.0.0.2:0".parse().unwrap()),
            ipv6_level: false,
        };
        let too_big = ExtendedError {
            errno: libc::EMSGSIZE as u32,
            origin: libc::SO_EE_ORIGIN_ICMP6,
            icmp_type: 2,
            icmp_code: 0,
            info: 1280,
            data: 0,
            offender: Some("[::1%3]:0".parse().unwrap()),
            ipv6_level: true,
        };
        let local = ExtendedError {
            errno: libc::EMSGSIZE as u32,
            origin: libc::SO_EE_ORIGIN_LOCAL,
            icmp_type: 0,
            icmp_code: 0,
            info: 1500,
            data: 0,
            offender: None,
            ipv6_level: false,
        };
        let messages = [
            Cmsg::ExtendedError(frag_needed),
            Cmsg::ExtendedError(too_big),
            Cmsg::ExtendedError(local),
        ];
        let bytes = round_trip(&messages);
        assert_eq!(bytes.len(), space(32) + space(44) + space(32));
        let decoded: Vec<_> = iter(&bytes).collect();
        assert_eq!(decoded, messages);
    }

    #[test]
    fn extended_errors_from_kernel_bytes() {
        // Bytes as the kernel lays out an ICMP "port unreachable" from 127.0.0.3 (IPv4 level).
        let mut data = Vec::new();
        data.extend_from_slice(&(libc::ECONNREFUSED as u32).to_ne_bytes());
        data.extend_from_slice(&[2, 3, 3, 0]);
        data.extend_from_slice(&0u32.to_ne_bytes());
        data.extend_from_slice(&0u32.to_ne_bytes());
        data.extend_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        data.extend_from_slice(&[0, 0, 127, 0, 0, 3]);
        data.extend_from_slice(&[0; 8]);
        let bytes = round_trip(&[Cmsg::Other {
            level: libc::SOL_IP,
            kind: libc::IP_RECVERR,
            data: &data,
        }]);
        let decoded: Vec<_> = iter(&bytes).collect();
        let Cmsg::ExtendedError(entry) = decoded[0] else {
            panic!("not decoded: {decoded:?}");
        };
        assert_eq!(entry.errno, libc::ECONNREFUSED as u32);
        assert_eq!((entry.origin, entry.icmp_type, entry.icmp_code), (2, 3, 3));
        assert_eq!(entry.offender, Some("127.0.0.3:0".parse().unwrap()));
        // Cut inside the struct: not decodable, kept raw.
        let short = round_trip(&[Cmsg::Other {
            level: libc::SOL_IPV6,
            kind: libc::IPV6_RECVERR,
            data: &data[..10],
        }]);
        assert!(matches!(iter(&short).next(), Some(Cmsg::Other { .. })));
        // A cut offender is no offender.
        assert_eq!(sockaddr_from_bytes(&data[16..20]), None);
        assert_eq!(sockaddr_from_bytes(&[0; 16]), None);
    }

    #[test]
    fn the_encoder_refuses_what_does_not_fit() {
        let mut words = [0u64; 3];
        let mut encoder = Encoder::new(&mut words);
        assert!(encoder.is_empty());
        encoder.push(&Cmsg::Tos(1)).unwrap();
        assert_eq!(encoder.len(), space(4));
        assert_eq!(encoder.push(&Cmsg::Tos(2)), Err(NoRoom));
        assert_eq!(encoder.len(), space(4));
        assert!(recv_metadata_space() >= space(20));
    }
}
