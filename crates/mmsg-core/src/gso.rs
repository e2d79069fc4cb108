//! Generic Segmentation Offload: many equal-sized datagrams to one destination handed to the
//! kernel as one buffer per `UDP_SEGMENT` message, which the stack cuts into datagrams. Support
//! is detected once per socket and switched off (falling back to plain batches) the first time
//! the kernel or the route refuses it, as quinn-udp does.

use std::io;
use std::os::fd::RawFd;

use crate::send::{SendScratch, SendStop};
use crate::{sys, SockAddr};

/// Most segments the kernel accepts in one GSO send (UDP_MAX_SEGMENTS).
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Most payload bytes per GSO send: the whole must fit one IP packet before segmentation.
pub const MAX_GSO_BYTES: usize = 65_000;

/// What we know about GSO on one socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GsoSupport {
    /// Not asked yet.
    #[default]
    Unknown,
    Available,
    /// The kernel lacks it, or a send with it failed: plain batches from now on.
    Unavailable,
}

impl GsoSupport {
    /// Asks the kernel once (`getsockopt(UDP_SEGMENT)` exists since Linux 4.18).
    pub fn resolve(&mut self, fd: RawFd) -> bool {
        if *self == GsoSupport::Unknown {
            *self = match sys::getsockopt_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT) {
                Ok(_) => GsoSupport::Available,
                Err(_) => GsoSupport::Unavailable,
            };
        }
        *self == GsoSupport::Available
    }
}

/// The outcome of a segmented send, counted in datagrams (segments).
#[derive(Debug)]
pub struct SegmentedReport {
    /// Datagrams sent, a prefix of the payload's segments.
    pub sent: usize,
    pub stop: SendStop,
    /// Whether GSO carried (part of) this send.
    pub used_gso: bool,
}

/// Errors that mean "this route or device cannot do UDP GSO" rather than "this datagram is bad".
/// As quinn-udp does, only `EIO` (a device without checksum offload) and `EOPNOTSUPP` count:
/// `EINVAL` is what a bad destination (port 0) gives too, and a bad argument must not switch
/// the capability off for the socket.
pub fn is_gso_refusal(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EIO) | Some(libc::EOPNOTSUPP)
    )
}

/// Sends `payload` as datagrams of `segment_size` bytes (the last may be shorter) to
/// `destination` (or the connected peer), with GSO when available and plain `sendmmsg` batches
/// otherwise. Stops at "would block" or at the first failing datagram, like [`crate::Batch::send`].
pub fn send_segmented(
    fd: RawFd,
    scratch: &mut SendScratch,
    support: &mut GsoSupport,
    payload: &[u8],
    segment_size: usize,
    destination: Option<SockAddr>,
    flags: libc::c_int,
) -> SegmentedReport {
    assert!(
        segment_size > 0 && segment_size <= u16::MAX as usize,
        "segment size 1..=65535"
    );
    let total_segments = payload.len().div_ceil(segment_size);
    let mut sent_segments = 0;
    let mut used_gso = false;
    if total_segments > 1 && support.resolve(fd) {
        let per_send = (MAX_GSO_BYTES / segment_size).clamp(1, MAX_GSO_SEGMENTS);
        let chunk_bytes = per_send * segment_size;
        let mut batch = scratch.batch();
        let to = destination.map(|d| batch.add_destination(d));
        for chunk in payload.chunks(chunk_bytes) {
            if chunk.len() > segment_size {
                batch.start_message_with_gso(to, segment_size as u16);
            } else {
                batch.start_message(to);
            }
            batch.add_segment(chunk).expect("one segment per message");
        }
        let report = batch.send(fd, flags, 0);
        // Every chunk but the last holds exactly `per_send` segments.
        sent_segments = (report.sent * per_send).min(total_segments);
        used_gso = report.sent > 0;
        match report.stop {
            SendStop::Failed { ref error, .. } if is_gso_refusal(error) => {
                // Degrade for good and send the rest the plain way below.
                *support = GsoSupport::Unavailable;
            }
            SendStop::Failed {
                index,
                error,
                syscall,
            } => {
                // Counted in datagrams: the failed GSO message started at segment
                // `index * per_send`.
                return SegmentedReport {
                    sent: sent_segments,
                    stop: SendStop::Failed {
                        index: (index * per_send).min(total_segments.saturating_sub(1)),
                        error,
                        syscall,
                    },
                    used_gso,
                };
            }
            stop => {
                return SegmentedReport {
                    sent: sent_segments,
                    stop,
                    used_gso,
                }
            }
        }
    }
    let rest = &payload[(sent_segments * segment_size).min(payload.len())..];
    let mut batch = scratch.batch();
    let to = destination.map(|d| batch.add_destination(d));
    for segment in rest.chunks(segment_size) {
        batch.start_message(to);
        batch.add_segment(segment).expect("one segment per message");
    }
    let report = batch.send(fd, flags, 0);
    let stop = match report.stop {
        SendStop::Failed {
            index,
            error,
            syscall,
        } => SendStop::Failed {
            index: sent_segments + index,
            error,
            syscall,
        },
        other => other,
    };
    SegmentedReport {
        sent: sent_segments + report.sent,
        stop,
        used_gso,
    }
}
