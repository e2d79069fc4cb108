//! Building `sendmmsg` batches over borrowed byte slices, and sending them with the man page's
//! partial-send rules turned into a precise report.
//!
//! A batch is built once per call into reusable [`SendScratch`] memory (no allocation once the
//! vectors have grown), then sent in chunks of at most [`MAX_MESSAGES_PER_CALL`] headers.

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;

use crate::addr::SockAddr;
use crate::cmsg::{Cmsg, Encoder};
use crate::errqueue::{self, ErrorReporting, QueuedError};
use crate::sys;

/// The kernel caps `vlen` at UIO_MAXIOV: more headers than this are silently ignored per call.
pub const MAX_MESSAGES_PER_CALL: usize = 1024;
/// IOV_MAX: the most iovecs (segments) one message may have; more is `EMSGSIZE` from the kernel.
pub const MAX_SEGMENTS_PER_MESSAGE: usize = 1024;

/// The `sendmsg` flags that make sense for a batch and are passed through to the kernel.
pub const KNOWN_SEND_FLAGS: i32 = libc::MSG_DONTWAIT
    | libc::MSG_CONFIRM
    | libc::MSG_DONTROUTE
    | libc::MSG_MORE
    | libc::MSG_NOSIGNAL
    | libc::MSG_EOR;

/// Index of a destination added to a batch with [`Batch::add_destination`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestinationId(u32);

/// Where one message's pieces live inside the scratch vectors.
#[derive(Clone, Copy, Debug)]
struct MessageSlot {
    first_segment: u32,
    segment_count: u32,
    destination: Option<DestinationId>,
    /// `UDP_SEGMENT` size for a GSO message (0: a plain datagram).
    gso_segment_size: u16,
    /// TOS byte / traffic class (DSCP << 2 | ECN) for this message (0: the socket's own).
    tos: u8,
    /// Index into `SendScratch::sources` of the source address / interface this message is
    /// sent with ([`NO_SOURCE`]: the routing's choice).
    source: u32,
}

/// [`MessageSlot::source`] of a message sent without `IP_PKTINFO` / `IPV6_PKTINFO`.
const NO_SOURCE: u32 = u32::MAX;

/// Where a datagram leaves from: sent as an `IP_PKTINFO` (`ipi_spec_dst`, `ipi_ifindex`) or
/// `IPV6_PKTINFO` (`ipi6_addr`, `ipi6_ifindex`) control message. An unspecified address
/// (0.0.0.0 / ::) leaves the source to the routing; `interface` 0 leaves the interface to it.
/// Use `V4` for IPv4 and IPv4-mapped destinations, `V6` for IPv6 ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketSource {
    V4 {
        address: std::net::Ipv4Addr,
        interface: u32,
    },
    V6 {
        address: std::net::Ipv6Addr,
        interface: u32,
    },
}

/// Control space per message: `UDP_SEGMENT`, `IP_TOS` and `IPV6_TCLASS` (24 bytes each) and
/// one packet-info message (`IPV6_PKTINFO`: 40 bytes, `IP_PKTINFO`: 32).
const SEND_CONTROL_WORDS: usize = 16;

/// Reusable memory for building batches. Keep one per socket (or per thread) so that steady-state
/// sends allocate nothing.
#[derive(Default)]
pub struct SendScratch {
    segments: Vec<libc::iovec>,
    messages: Vec<MessageSlot>,
    destinations: Vec<SockAddr>,
    /// Source addresses / interfaces messages of the current batch are sent with.
    sources: Vec<PacketSource>,
    headers: Vec<libc::mmsghdr>,
    /// Control-message space for GSO / TOS messages of the current chunk, 8-byte aligned.
    control: Vec<[u64; SEND_CONTROL_WORDS]>,
    bytes_sent: Vec<u32>,
    /// How sends treat the error queue (see [`ErrorReporting`]).
    error_reporting: ErrorReporting,
    /// Error-queue entries read by sends, oldest first, until the owner takes them.
    queued_errors: Vec<QueuedError>,
}

impl SendScratch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets how sends with this scratch treat the socket's error queue.
    pub fn set_error_reporting(&mut self, mode: ErrorReporting) {
        self.error_reporting = mode;
    }

    pub fn error_reporting(&self) -> ErrorReporting {
        self.error_reporting
    }

    /// Moves the error-queue entries sends have read (oldest first) to the end of `out`.
    pub fn take_queued_errors(&mut self, out: &mut Vec<QueuedError>) {
        out.append(&mut self.queued_errors);
    }

    /// Starts a new, empty batch whose segments borrow data for `'data`.
    pub fn batch<'data>(&mut self) -> Batch<'_, 'data> {
        self.segments.clear();
        self.messages.clear();
        self.destinations.clear();
        self.sources.clear();
        self.bytes_sent.clear();
        Batch {
            scratch: self,
            open_message: false,
            _data: PhantomData,
        }
    }
}

/// Why a message could not be added to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// A message has more than IOV_MAX segments.
    TooManySegments { message: usize, segments: usize },
    /// `add_segment` without a `start_message`.
    NoOpenMessage,
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::TooManySegments { message, segments } => write!(
                f,
                "message {message} has more than {MAX_SEGMENTS_PER_MESSAGE} buffers (IOV_MAX); got {segments}"
            ),
            BatchError::NoOpenMessage => write!(f, "a segment was added before any message"),
        }
    }
}

impl std::error::Error for BatchError {}

/// Why [`Batch::send`] stopped.
#[derive(Debug)]
pub enum SendStop {
    /// Every message was sent.
    Complete,
    /// The socket's send buffer is full (`EAGAIN`); retry from `sent` once it is writable.
    WouldBlock,
    /// Message `index` failed with `error`. Messages `0..sent` went out: `sent == index`, except
    /// when the kernel refused message `index` inside a batch, took it when it was retried on
    /// its own, and the error queue then named the (soft) error that had stopped the batch: then
    /// `sent == index + 1`. `sent` is always where to resume. `syscall` names the call that
    /// failed (`sendmmsg`, or `sendto`/`sendmsg` for a message sent on its own).
    Failed {
        index: usize,
        error: io::Error,
        syscall: &'static str,
    },
}

/// The outcome of sending a batch: how many messages went out (always a prefix of the batch, in
/// order) and why it stopped.
#[derive(Debug)]
pub struct SendReport {
    /// Messages sent, counted from the start of the batch (including those sent by earlier calls
    /// when resuming with `from > 0`).
    pub sent: usize,
    pub stop: SendStop,
}

/// A batch of messages being built over borrowed data. See [`SendScratch::batch`].
pub struct Batch<'scratch, 'data> {
    scratch: &'scratch mut SendScratch,
    open_message: bool,
    _data: PhantomData<&'data [u8]>,
}

impl<'data> Batch<'_, 'data> {
    /// Adds a destination address that messages can refer to.
    pub fn add_destination(&mut self, address: SockAddr) -> DestinationId {
        self.scratch.destinations.push(address);
        DestinationId((self.scratch.destinations.len() - 1) as u32)
    }

    /// Starts a new message (datagram) to `destination`, or to the connected peer when `None`.
    pub fn start_message(&mut self, destination: Option<DestinationId>) {
        self.start_message_with_gso(destination, 0);
    }

    /// Starts a GSO message: its bytes are cut by the kernel into datagrams of `segment_size`
    /// bytes (the last may be shorter), all to the same destination (`UDP_SEGMENT`).
    pub fn start_message_with_gso(
        &mut self,
        destination: Option<DestinationId>,
        segment_size: u16,
    ) {
        self.scratch.messages.push(MessageSlot {
            first_segment: self.scratch.segments.len() as u32,
            segment_count: 0,
            destination,
            gso_segment_size: segment_size,
            tos: 0,
            source: NO_SOURCE,
        });
        self.open_message = true;
    }

    /// Gives the message started last a TOS byte / traffic class (DSCP << 2 | ECN), sent as an
    /// `IP_TOS` control message to IPv4 (and IPv4-mapped) destinations and `IPV6_TCLASS` to
    /// IPv6 ones (both for the connected peer; the kernel uses the one of the path's family).
    /// 0 sends none: the socket's own value applies.
    pub fn set_tos(&mut self, tos: u8) -> Result<(), BatchError> {
        if !self.open_message {
            return Err(BatchError::NoOpenMessage);
        }
        if let Some(slot) = self.scratch.messages.last_mut() {
            slot.tos = tos;
        }
        Ok(())
    }

    /// Sends the message started last from `source` (`IP_PKTINFO` / `IPV6_PKTINFO`).
    pub fn set_source(&mut self, source: PacketSource) -> Result<(), BatchError> {
        if !self.open_message {
            return Err(BatchError::NoOpenMessage);
        }
        // Consecutive messages from one source (a cut GSO message, a run) share one entry.
        let index = match self.scratch.sources.last() {
            Some(last) if *last == source => self.scratch.sources.len() - 1,
            _ => {
                self.scratch.sources.push(source);
                self.scratch.sources.len() - 1
            }
        };
        if let Some(slot) = self.scratch.messages.last_mut() {
            slot.source = index as u32;
        }
        Ok(())
    }

    /// Appends one segment (scatter/gather piece) to the message started last. The bytes are not
    /// copied: the kernel reads them during [`Batch::send`].
    pub fn add_segment(&mut self, bytes: &'data [u8]) -> Result<(), BatchError> {
        if !self.open_message {
            return Err(BatchError::NoOpenMessage);
        }
        let message_index = self.scratch.messages.len() - 1;
        let slot = &mut self.scratch.messages[message_index];
        if slot.segment_count as usize >= MAX_SEGMENTS_PER_MESSAGE {
            return Err(BatchError::TooManySegments {
                message: message_index,
                segments: slot.segment_count as usize + 1,
            });
        }
        // Bytes that start where the message's previous piece ends (views cut one after another
        // from one buffer, Node's pooled small Buffers) extend that piece's iovec: the kernel
        // reads one range instead of gathering many, about 12% less kernel time per datagram
        // for a GSO message of 64 × 64 B (the bench's contiguous and gathered C references).
        // The iovec then covers exactly the two borrowed ranges, nothing between them.
        if slot.segment_count > 0 && !bytes.is_empty() {
            if let Some(last) = self.scratch.segments.last_mut() {
                if last.iov_len > 0
                    && (last.iov_base as usize).wrapping_add(last.iov_len)
                        == bytes.as_ptr() as usize
                {
                    last.iov_len += bytes.len();
                    return Ok(());
                }
            }
        }
        slot.segment_count += 1;
        self.scratch.segments.push(sys::iovec_for(bytes));
        Ok(())
    }

    /// Convenience: one message made of `segments`.
    pub fn push_message(
        &mut self,
        segments: &[&'data [u8]],
        destination: Option<DestinationId>,
    ) -> Result<(), BatchError> {
        self.start_message(destination);
        for segment in segments {
            self.add_segment(segment)?;
        }
        Ok(())
    }

    /// Number of messages in the batch.
    pub fn len(&self) -> usize {
        self.scratch.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scratch.messages.is_empty()
    }

    /// Drops the messages from `len` on (used to undo a half-built message).
    pub fn truncate(&mut self, len: usize) {
        if let Some(slot) = self.scratch.messages.get(len) {
            self.scratch.segments.truncate(slot.first_segment as usize);
        }
        self.scratch.messages.truncate(len);
    }

    /// Bytes the kernel reported sent (`msg_len`) for each message sent by the last `send`,
    /// indexed from the start of the batch; entries before that call's `from` are 0.
    pub fn bytes_sent(&self) -> &[u32] {
        &self.scratch.bytes_sent
    }

    /// Sends messages `from..` on `fd`, in chunks of at most UIO_MAXIOV, until all are sent, the
    /// socket would block, or a message fails.
    ///
    /// The man page's rules, made exact:
    /// - a short count means the next message was not sent; the next chunk starts exactly there,
    ///   so nothing is skipped or repeated;
    /// - the error that stopped a batch after at least one message is lost by the kernel, so the
    ///   first unsent message is retried at once: if it fails again, its own errno is reported
    ///   with its index (`sent`);
    /// - `EINTR` is retried; `EAGAIN`/`EWOULDBLOCK` stops with [`SendStop::WouldBlock`].
    pub fn send(&mut self, fd: RawFd, flags: libc::c_int, from: usize) -> SendReport {
        self.send_after(fd, flags, from, None)
    }

    /// [`Batch::send`], where the caller already made the first system call and it returned
    /// `first` (a lone datagram's `sendto`, see `Endpoint::send_datagram`): that result goes
    /// through the same rules, an error recovered or reported exactly as if this call had made
    /// it (nothing is sent twice: a failed call sent nothing).
    pub(crate) fn send_after(
        &mut self,
        fd: RawFd,
        flags: libc::c_int,
        from: usize,
        mut first: Option<io::Result<usize>>,
    ) -> SendReport {
        let total = self.scratch.messages.len();
        // `first` stands for a call on message `from` alone: there must be one, or its result
        // (an error, say) would be ignored.
        debug_assert!(
            first.is_none() || (from < total && matches!(first, Some(Err(_)) | Some(Ok(1))))
        );
        let scratch = &mut *self.scratch;
        scratch.bytes_sent.clear();
        scratch.bytes_sent.resize(total, 0);
        let mut sent = from.min(total);
        // Set after a short count: the next call carries only the first unsent message, so that
        // its own error (if any) comes back from the kernel directly and cannot be confused
        // with an older entry of the error queue.
        let mut retry_alone = false;
        // The message last sent again because a pending ICMP error failed it (at most once).
        let mut retried_pending: Option<usize> = None;
        // Set when that retry was for an error no queue entry explained (the kernel sets the
        // pending error even when the queue had no room for the entry): if the retry goes out,
        // the error was the pending one, and is kept as an entry of unknown origin.
        let mut unexplained: Option<i32> = None;
        while sent < total {
            let chunk_len = if retry_alone {
                1
            } else {
                (total - sent).min(MAX_MESSAGES_PER_CALL)
            };
            scratch.fill_headers(sent, chunk_len);
            // One message goes out with the cheaper single-message call (the kernel handles it
            // with the same code; a lone datagram is the latency-sensitive case).
            let syscall = if chunk_len == 1 {
                sys::send_one_syscall(&scratch.headers[0].msg_hdr)
            } else {
                "sendmmsg"
            };
            // SAFETY: `fill_headers` points every header at iovecs in `scratch.segments`, at
            // addresses in `scratch.destinations` and at control data in `scratch.control`, none
            // of which change until this call returns; the iovecs describe `'data` slices that
            // this batch borrows.
            let result = match first.take() {
                Some(result) => result,
                None => unsafe {
                    if chunk_len == 1 {
                        sys::send_one(fd, &mut scratch.headers[0], flags)
                    } else {
                        sys::sendmmsg(fd, &mut scratch.headers[..chunk_len], flags)
                    }
                },
            };
            match result {
                Ok(accepted) => {
                    for (offset, header) in scratch.headers[..accepted].iter().enumerate() {
                        scratch.bytes_sent[sent + offset] = header.msg_len;
                    }
                    if let Some(errno) = unexplained.take() {
                        if accepted > 0 {
                            scratch
                                .queued_errors
                                .push(errqueue::QueuedError::pending(errno));
                        }
                    }
                    sent += accepted;
                    if retry_alone {
                        retry_alone = false;
                        // The message the batch stopped at went out on its own: what stopped
                        // the batch was a soft error that the failed attempt consumed (an ICMP
                        // report, `sk_err`). With IP_RECVERR (connected sockets) it also waits
                        // in the error queue: report it rather than lose it.
                        if accepted == 1 && scratch.error_reporting == ErrorReporting::Surface {
                            // The entry that stopped the batch is not this message's failure
                            // (it went out): keep it for the caller with any others.
                            drain_error_queue(fd, &mut scratch.queued_errors);
                        } else if accepted == 1 {
                            // Every entry is kept for the caller; the oldest names the error.
                            let first_new = scratch.queued_errors.len();
                            drain_error_queue(fd, &mut scratch.queued_errors);
                            let named = scratch.queued_errors[first_new..]
                                .iter()
                                .find(|entry| entry.errno != 0)
                                .map(|entry| io::Error::from_raw_os_error(entry.errno));
                            if let Some(error) = named {
                                return SendReport {
                                    sent,
                                    // The error stopped the batch's call, not the lone
                                    // resend (which went out).
                                    stop: SendStop::Failed {
                                        index: sent - 1,
                                        error,
                                        syscall: "sendmmsg",
                                    },
                                };
                            }
                        }
                    } else if accepted < chunk_len {
                        retry_alone = true;
                    }
                }
                Err(error) => match error.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => {
                        return SendReport {
                            sent,
                            stop: SendStop::WouldBlock,
                        }
                    }
                    _ if scratch.error_reporting == ErrorReporting::Surface
                        && retried_pending != Some(sent) =>
                    {
                        // With error reporting on, every ICMP error also sets the socket's
                        // pending error, which fails the next send once whatever it carries.
                        // If an ICMP entry of this errno was waiting, reading the queue has
                        // cleared that pending error: send the same message again, once (the
                        // failed call sent nothing, so nothing goes out twice).
                        let first_new = scratch.queued_errors.len();
                        drain_error_queue(fd, &mut scratch.queued_errors);
                        if errqueue::is_pending_icmp_error(
                            &error,
                            &scratch.queued_errors[first_new..],
                        ) {
                            retried_pending = Some(sent);
                            continue;
                        }
                        if errqueue::icmp_can_set(&error) {
                            // No entry explains it, yet an ICMP error could have: the failed
                            // call cleared the pending error, so a retry tells which it was (a
                            // message's own error fails again and is reported below).
                            retried_pending = Some(sent);
                            unexplained = error.raw_os_error();
                            continue;
                        }
                        return SendReport {
                            sent,
                            stop: SendStop::Failed {
                                index: sent,
                                error,
                                syscall,
                            },
                        };
                    }
                    _ => {
                        // This error is the message's own. Whatever the error queue holds is
                        // older: empty it (into the kept entries) so that no later batch is
                        // charged with it.
                        drain_error_queue(fd, &mut scratch.queued_errors);
                        return SendReport {
                            sent,
                            stop: SendStop::Failed {
                                index: sent,
                                error,
                                syscall,
                            },
                        };
                    }
                },
            }
        }
        SendReport {
            sent,
            stop: SendStop::Complete,
        }
    }

    /// One `sendmmsg(2)` call exactly as the man page describes it (at most UIO_MAXIOV
    /// messages, no retry, no error recovery): the count sent, or the error when none was.
    pub fn send_once(&mut self, fd: RawFd, flags: libc::c_int) -> io::Result<usize> {
        let total = self.scratch.messages.len().min(MAX_MESSAGES_PER_CALL);
        let scratch = &mut *self.scratch;
        scratch.bytes_sent.clear();
        scratch.bytes_sent.resize(total, 0);
        if total == 0 {
            return Ok(0);
        }
        scratch.fill_headers(0, total);
        // SAFETY: as in `send`: the headers point into scratch vectors that stay put for the
        // call, and at `'data` slices this batch borrows.
        let accepted = unsafe { sys::sendmmsg(fd, &mut scratch.headers[..total], flags) }?;
        for (i, header) in scratch.headers[..accepted].iter().enumerate() {
            scratch.bytes_sent[i] = header.msg_len;
        }
        Ok(accepted)
    }
}

/// Empties a socket's error queue into `kept` (bounded: the queue is finite, but a peer keeps
/// adding). A read error (none is expected on a UDP socket) ends it.
pub(crate) fn drain_error_queue(fd: RawFd, kept: &mut Vec<QueuedError>) -> usize {
    errqueue::read_error_queue(fd, errqueue::MAX_ENTRIES_PER_READ, kept).unwrap_or(0)
}

impl SendScratch {
    /// Points `headers[..len]` at messages `start..start + len`.
    fn fill_headers(&mut self, start: usize, len: usize) {
        if self.headers.len() < len {
            self.headers.resize(len, sys::zeroed_mmsghdr());
        }
        let control_count = self.messages[start..start + len]
            .iter()
            .filter(|m| m.gso_segment_size != 0 || m.tos != 0 || m.source != NO_SOURCE)
            .count();
        self.control.clear();
        self.control.reserve(control_count);
        for (header, slot) in self.headers[..len]
            .iter_mut()
            .zip(&self.messages[start..start + len])
        {
            *header = sys::zeroed_mmsghdr();
            let hdr = &mut header.msg_hdr;
            hdr.msg_iov = self.segments[slot.first_segment as usize..].as_mut_ptr();
            hdr.msg_iovlen = slot.segment_count as _;
            if let Some(DestinationId(index)) = slot.destination {
                let address = &self.destinations[index as usize];
                hdr.msg_name = address.as_ptr() as *mut libc::c_void;
                hdr.msg_namelen = address.byte_len();
            }
            if slot.gso_segment_size != 0 && slot.tos == 0 && slot.source == NO_SOURCE {
                // `reserve` above means this push never reallocates, so earlier pointers into
                // `control` stay valid.
                self.control.push([0; SEND_CONTROL_WORDS]);
                let cmsg = self.control.last_mut().expect("just pushed");
                let used = sys::write_cmsg_u16(
                    cmsg,
                    libc::SOL_UDP,
                    libc::UDP_SEGMENT,
                    slot.gso_segment_size,
                );
                hdr.msg_control = cmsg.as_mut_ptr().cast();
                hdr.msg_controllen = used as _;
            } else if slot.tos != 0 || slot.source != NO_SOURCE {
                // As above: no reallocation, so earlier pointers stay valid.
                self.control.push([0; SEND_CONTROL_WORDS]);
                let words = self.control.last_mut().expect("just pushed");
                let (v4, v6) = match slot.destination {
                    Some(DestinationId(index)) => match &self.destinations[index as usize] {
                        SockAddr::V4(_) => (true, false),
                        SockAddr::V6(v6) => {
                            let mapped = v6.sin6_addr.s6_addr[..12]
                                == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
                            (mapped, !mapped)
                        }
                    },
                    None => (true, true),
                };
                let mut encoder = Encoder::new(words);
                // Three messages of CMSG_SPACE(4) and one packet info at most fit
                // SEND_CONTROL_WORDS: cannot fail.
                let mut ok = true;
                let tos_wanted = slot.tos != 0;
                let (v4, v6) = (v4 && tos_wanted, v6 && tos_wanted);
                if slot.gso_segment_size != 0 {
                    ok &= encoder
                        .push(&Cmsg::GsoSegment(slot.gso_segment_size))
                        .is_ok();
                }
                if v4 {
                    ok &= encoder.push(&Cmsg::Tos(slot.tos)).is_ok();
                }
                if v6 {
                    ok &= encoder.push(&Cmsg::TrafficClass(slot.tos)).is_ok();
                }
                if let Some(source) = self.sources.get(slot.source as usize) {
                    // On send the kernel takes `ipi_spec_dst` / `ipi6_addr` as the source and
                    // `ipi_ifindex` as the outgoing interface (the encoder's `dst`).
                    let info = match *source {
                        PacketSource::V4 { address, interface } => Cmsg::PacketInfoV4 {
                            dst: address,
                            ifindex: interface,
                        },
                        PacketSource::V6 { address, interface } => Cmsg::PacketInfoV6 {
                            dst: address,
                            ifindex: interface,
                        },
                    };
                    ok &= encoder.push(&info).is_ok();
                }
                debug_assert!(ok, "send control space too small");
                let used = encoder.len();
                hdr.msg_control = words.as_mut_ptr().cast();
                hdr.msg_controllen = used as _;
            }
        }
    }
}

impl SendScratch {
    /// The batch last built, for tests: per message its GSO size, destination and the
    /// (address, length) of each iovec.
    #[cfg(test)]
    #[allow(clippy::type_complexity)]
    pub(crate) fn built(&self) -> Vec<(u16, Option<SockAddr>, Vec<(usize, usize)>)> {
        self.messages
            .iter()
            .map(|m| {
                let iovecs = &self.segments
                    [m.first_segment as usize..(m.first_segment + m.segment_count) as usize];
                (
                    m.gso_segment_size,
                    m.destination
                        .map(|DestinationId(i)| self.destinations[i as usize]),
                    iovecs
                        .iter()
                        .map(|v| (v.iov_base as usize, v.iov_len))
                        .collect(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_that_follow_each_other_share_one_iovec_within_a_message_only() {
        let packed = [7u8; 16];
        let other = [9u8; 4];
        let mut scratch = SendScratch::new();
        {
            let mut batch = scratch.batch();
            batch.start_message(None);
            batch.add_segment(&packed[0..4]).unwrap();
            batch.add_segment(&packed[4..8]).unwrap(); // follows: extends the first iovec
            batch.add_segment(&other[..]).unwrap(); // elsewhere: its own iovec
            batch.add_segment(&packed[8..8]).unwrap(); // empty: kept as its own (zero-length) iovec
            batch.start_message(None);
            batch.add_segment(&packed[8..12]).unwrap(); // follows the first message's bytes, but a new message
            batch.add_segment(&packed[12..16]).unwrap();
        }
        let lens: Vec<usize> = scratch.segments.iter().map(|v| v.iov_len).collect();
        assert_eq!(lens, [8, 4, 0, 8]);
        assert_eq!(
            scratch.segments[0].iov_base as usize,
            packed.as_ptr() as usize
        );
        assert_eq!(
            scratch.segments[3].iov_base as usize,
            packed[8..].as_ptr() as usize
        );
        let counts: Vec<u32> = scratch.messages.iter().map(|m| m.segment_count).collect();
        assert_eq!(counts, [3, 1]);
        assert_eq!(scratch.messages[1].first_segment, 3);
    }
}
