//! The napi-rs binding of the `sendmmsg` npm package: internal, used only by the TypeScript
//! layer in `lib/`. It converts arguments into plain values (phase 1, `read`), calls the
//! `mmsg-core` crate with the views' bytes taken only then (phase 2), and maps every failure in
//! one place (`errors`). No socket logic lives here.
//!
//! How a call flows: `socket.trySend(messages)` (lib/udp.ts validates and builds dense arrays)
//! → [`socket::NativeSocket::send`] → [`mmsg_core::SendPlan`] → `sendmmsg(2)`, which reads the
//! bytes straight out of the JS buffers.

#![deny(clippy::all)]

mod cpu;
mod errors;
mod functions;
mod hot;
mod read;
mod socket;

use napi_derive::napi;

/// Most messages one `sendmmsg`/`recvmmsg` system call takes (UIO_MAXIOV).
#[napi]
pub const MAX_MESSAGES_PER_CALL: u32 = mmsg_core::MAX_MESSAGES_PER_CALL as u32;

/// Most buffers one message may gather (IOV_MAX).
#[napi]
pub const MAX_BUFFERS_PER_MESSAGE: u32 = mmsg_core::MAX_SEGMENTS_PER_MESSAGE as u32;
