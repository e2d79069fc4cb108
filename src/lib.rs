//! The napi-rs binding of the `sendmmsg` npm package: JS argument conversion and JS errors.
//! All socket logic lives in the `mmsg-core` crate (`crates/mmsg-core`).
//!
//! How a call flows: `socket.trySend(messages)` (JS) → [`socket::UdpSocket::try_send`] reads the
//! array and builds a `mmsg_core::Batch` of borrowed slices ([`convert`]) → `Batch::send` →
//! `sys::sendmmsg` → the `sendmmsg(2)` system call, which reads the bytes straight out of the
//! JS buffers.

#![deny(clippy::all)]

mod convert;
mod errors;
mod functions;
mod pending;
mod recv;
mod socket;

use napi::bindgen_prelude::{Buffer, Either};
use napi_derive::napi;

/// One datagram for `sendmmsg`/`trySend`: its bytes, gathered from one or more buffers
/// (scatter/gather: `{ buffers: [header, body] }` goes out as one datagram), and where to.
/// Without `address`/`port` it goes to the call's destination or the connected peer; a `port`
/// alone means loopback (like `dgram`).
#[napi(object)]
pub struct OutgoingMessage {
    /// The datagram's bytes: one view, or up to 1024 views sent back to back as one datagram.
    #[napi(ts_type = "Uint8Array | Uint8Array[]")]
    pub buffers: Either<Buffer, Vec<Buffer>>,
    /// An IPv4 or IPv6 literal (hostnames are not resolved).
    pub address: Option<String>,
    /// Destination port; alone (without `address`) it means loopback.
    pub port: Option<u32>,
}

/// Most messages one `sendmmsg`/`recvmmsg` system call takes (UIO_MAXIOV). Larger batches are
/// split into several calls.
#[napi]
pub const MAX_MESSAGES_PER_CALL: u32 = mmsg_core::MAX_MESSAGES_PER_CALL as u32;

/// Most buffers one message may gather (IOV_MAX).
#[napi]
pub const MAX_BUFFERS_PER_MESSAGE: u32 = mmsg_core::MAX_SEGMENTS_PER_MESSAGE as u32;

/// `MSG_DONTWAIT`: a non-blocking call on a blocking descriptor.
#[napi]
pub const MSG_DONTWAIT: u32 = 0x40;

/// `MSG_WAITFORONE` (for `recvmmsg`): block for the first datagram only, then take what is queued.
#[napi]
pub const MSG_WAITFORONE: u32 = 0x10000;

/// `MSG_CONFIRM`: tell the link layer the peer answered (skips ARP/ND re-probing).
#[napi]
pub const MSG_CONFIRM: u32 = 0x800;
