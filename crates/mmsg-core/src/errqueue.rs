//! The socket error queue (`IP_RECVERR` / `IPV6_RECVERR`, read with `MSG_ERRQUEUE`) as plain
//! data: each entry is a [`QueuedError`] with who reported it (the local stack, an ICMP or
//! ICMPv6 message), the ICMP type and code, the path MTU for "fragmentation needed" /
//! "packet too big", the reporting node (`SO_EE_OFFENDER`) and the destination of the datagram
//! it is about. Nothing is interpreted or dropped here: callers decide what to do with them.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use crate::cmsg::{self, Cmsg};
use crate::sys;

/// Who reported a queued error (`ee_origin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorOrigin {
    /// `SO_EE_ORIGIN_NONE`.
    None,
    /// `SO_EE_ORIGIN_LOCAL`: the local stack (e.g. `EMSGSIZE` for a don't-fragment datagram
    /// larger than the known path MTU).
    Local,
    /// `SO_EE_ORIGIN_ICMP`: an ICMP message from a router or the destination.
    Icmp,
    /// `SO_EE_ORIGIN_ICMP6`: an ICMPv6 message.
    Icmp6,
    /// Any other origin (transmit timestamps, zero-copy completions, ...), by number.
    Other(u8),
}

impl ErrorOrigin {
    pub fn from_raw(origin: u8) -> ErrorOrigin {
        match origin {
            libc::SO_EE_ORIGIN_NONE => ErrorOrigin::None,
            libc::SO_EE_ORIGIN_LOCAL => ErrorOrigin::Local,
            libc::SO_EE_ORIGIN_ICMP => ErrorOrigin::Icmp,
            libc::SO_EE_ORIGIN_ICMP6 => ErrorOrigin::Icmp6,
            other => ErrorOrigin::Other(other),
        }
    }

    /// ICMP or ICMPv6: the kind of entry whose arrival also sets the socket's pending error
    /// (`sk_err`), which the next send or receive then fails with once.
    pub fn is_icmp(self) -> bool {
        matches!(self, ErrorOrigin::Icmp | ErrorOrigin::Icmp6)
    }
}

/// One decoded error-queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedError {
    /// The error (positive errno: `ECONNREFUSED`, `EMSGSIZE`, `EHOSTUNREACH`, ...).
    pub errno: i32,
    pub origin: ErrorOrigin,
    /// ICMP / ICMPv6 type (e.g. 3 "destination unreachable", ICMPv6 2 "packet too big").
    pub icmp_type: u8,
    /// ICMP / ICMPv6 code (e.g. 4 "fragmentation needed", 3 "port unreachable").
    pub icmp_code: u8,
    /// `ee_info`: the MTU for "fragmentation needed" / "packet too big" and local `EMSGSIZE`.
    pub info: u32,
    /// The node that reported it (`SO_EE_OFFENDER`), if the kernel names one.
    pub offender: Option<SocketAddr>,
    /// Where the datagram the error is about was going (`msg_name` of the read).
    pub destination: Option<SocketAddr>,
    /// Bytes of that datagram's payload the kernel returned with the entry (at most
    /// [`PAYLOAD_BYTES`]; `payload_truncated` says when there were more).
    pub payload_len: usize,
    pub payload_truncated: bool,
}

/// Payload bytes read with each entry (only their count is kept).
pub const PAYLOAD_BYTES: usize = 2048;

/// Reads up to `max` entries from `fd`'s error queue (never blocking) and appends them to `out`;
/// returns how many. Stops early when the queue is empty. An entry without an extended-error
/// control message (none the kernel makes for UDP) is still returned, with errno 0 and origin
/// `None`, so that nothing read is lost.
pub fn read_error_queue(fd: RawFd, max: usize, out: &mut Vec<QueuedError>) -> io::Result<usize> {
    let mut payload = [0u8; PAYLOAD_BYTES];
    // sock_extended_err (16) + sockaddr_in6 (28), plus room for other messages the socket's
    // receive options may add (packet info, TOS).
    let mut control = [0u64; 32];
    let mut read = 0;
    while read < max {
        let Some(entry) = sys::recv_error_queue(fd, &mut payload, &mut control)? else {
            break;
        };
        let bytes = &sys::words_as_bytes(&control)[..entry.control_len];
        let extended = cmsg::iter(bytes).find_map(|message| match message {
            Cmsg::ExtendedError(e) => Some(e),
            _ => None,
        });
        out.push(QueuedError {
            errno: extended.map_or(0, |e| e.errno as i32),
            origin: extended.map_or(ErrorOrigin::None, |e| ErrorOrigin::from_raw(e.origin)),
            icmp_type: extended.map_or(0, |e| e.icmp_type),
            icmp_code: extended.map_or(0, |e| e.icmp_code),
            info: extended.map_or(0, |e| e.info),
            offender: extended.and_then(|e| e.offender),
            destination: entry.destination,
            payload_len: entry.payload_len,
            payload_truncated: entry.flags & libc::MSG_TRUNC != 0,
        });
        read += 1;
    }
    Ok(read)
}

/// How a send or receive treats the error queue (kept in the socket's scratch memory, so that
/// every send path sees it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorReporting {
    /// Error reporting was not asked for (the default). Connected sockets still have
    /// `IP_RECVERR` on so that an ICMP error that stops a batch is attributed to the message
    /// it stopped; entries read for that are kept for the caller, not thrown away.
    #[default]
    Attribute,
    /// The caller asked for every entry (`IP_RECVERR` on whether connected or not). A send or
    /// receive that fails only because an ICMP entry arrived (the kernel's pending `sk_err`)
    /// is not that call's failure: the entries are kept and the call is made again, once.
    Surface,
}

/// Most entries one bookkeeping read takes (the queue is bounded by the receive buffer).
pub const MAX_ENTRIES_PER_READ: usize = 1024;

/// Whether an ICMP error can leave `error` as the socket's pending error (what UDP's error
/// handlers set): unreachable ports, hosts and networks, "fragmentation needed", protocol errors.
pub fn icmp_can_set(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::EMSGSIZE
                | libc::EPROTO
                | libc::EACCES
        )
    )
}

impl QueuedError {
    /// An error the kernel reported only as the socket's pending error (`SO_ERROR`, or a send
    /// it failed), with no queue entry: origin unknown, nothing else known.
    pub fn pending(errno: i32) -> QueuedError {
        QueuedError {
            errno,
            origin: ErrorOrigin::None,
            icmp_type: 0,
            icmp_code: 0,
            info: 0,
            offender: None,
            destination: None,
            payload_len: 0,
            payload_truncated: false,
        }
    }
}

/// Whether `error` is (most likely) the socket's pending error set by one of the ICMP entries
/// just read, rather than the call's own: the same errno as an ICMP/ICMPv6 entry among
/// `entries`.
pub fn is_pending_icmp_error(error: &io::Error, entries: &[QueuedError]) -> bool {
    let Some(errno) = error.raw_os_error() else {
        return false;
    };
    entries
        .iter()
        .any(|e| e.origin.is_icmp() && e.errno == errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_round_trip_their_numbers() {
        assert_eq!(ErrorOrigin::from_raw(0), ErrorOrigin::None);
        assert_eq!(ErrorOrigin::from_raw(1), ErrorOrigin::Local);
        assert_eq!(ErrorOrigin::from_raw(2), ErrorOrigin::Icmp);
        assert_eq!(ErrorOrigin::from_raw(3), ErrorOrigin::Icmp6);
        assert_eq!(ErrorOrigin::from_raw(5), ErrorOrigin::Other(5));
        assert!(ErrorOrigin::Icmp6.is_icmp() && !ErrorOrigin::Local.is_icmp());
    }

    fn entry(errno: i32, origin: ErrorOrigin) -> QueuedError {
        QueuedError {
            errno,
            origin,
            icmp_type: 3,
            icmp_code: 3,
            info: 0,
            offender: None,
            destination: None,
            payload_len: 0,
            payload_truncated: false,
        }
    }

    #[test]
    fn only_an_icmp_entry_of_the_same_errno_explains_a_failure() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let too_big = io::Error::from_raw_os_error(libc::EMSGSIZE);
        let icmp = [entry(libc::ECONNREFUSED, ErrorOrigin::Icmp)];
        let local = [entry(libc::EMSGSIZE, ErrorOrigin::Local)];
        assert!(is_pending_icmp_error(&refused, &icmp));
        assert!(!is_pending_icmp_error(&too_big, &icmp));
        // A local EMSGSIZE is the datagram's own: the kernel sets no pending error for it.
        assert!(!is_pending_icmp_error(&too_big, &local));
        assert!(!is_pending_icmp_error(&refused, &[]));
    }

    #[test]
    fn an_empty_queue_reads_nothing() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut out = Vec::new();
        use std::os::fd::AsRawFd;
        assert_eq!(
            read_error_queue(socket.as_raw_fd(), 8, &mut out).unwrap(),
            0
        );
        assert!(out.is_empty());
    }
}
