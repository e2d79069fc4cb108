//! `mmsg-core`: batched UDP over Linux `sendmmsg(2)` and `recvmmsg(2)`.
//!
//! The pure-Rust half of the `sendmmsg` npm package (the napi-rs binding only converts JS values
//! and errors). Pieces:
//! - [`send`]: batches of borrowed byte slices (zero-copy scatter/gather) and the send loop with
//!   the man page's partial-send and lost-error rules made exact;
//! - [`recv`]: batches received into caller-owned memory;
//! - [`cmsg`]: typed control messages (an encoder, and an iterator over received ones);
//! - [`gso`]: equal-sized datagrams as `UDP_SEGMENT` sends, with fallback;
//! - [`plan`]: a batch as plain data, checked against the views' bytes at send time;
//! - [`endpoint`]: what one JS socket owns (descriptor, scratch, capabilities, drop counter);
//! - [`socket`]: a non-blocking UDP socket with `node:dgram`'s options;
//! - [`steer`]: every core: a reuseport group steered by the receiving CPU, thread affinity;
//! - [`reactor`]: one epoll thread that tells the JS thread when a socket is ready;
//! - [`errqueue`]: the socket error queue (ICMP / path-MTU errors) as plain entries;
//! - [`addr`], [`errno`]: addresses and error names;
//! - `sys`: the only module with `unsafe` code.

pub mod addr;
pub mod cmsg;
pub mod endpoint;
pub mod errno;
pub mod errqueue;
pub mod gso;
pub mod plan;
pub mod reactor;
pub mod recv;
pub mod send;
pub mod slab;
pub mod socket;
pub mod steer;
mod sys;

pub use addr::{AddrError, SockAddr};
pub use endpoint::{recv_flags, Endpoint, RecvMetadata, RecvTarget};
pub use errqueue::{ErrorOrigin, ErrorReporting, QueuedError};
pub use gso::{send_segmented, GsoSupport, SegmentedReport, MAX_GSO_SEGMENTS};
pub use plan::{
    OnceError, PlanError, PlanPosition, PlanReport, PlanStop, SendPlan, SourceRequest,
    CONNECTED_PEER, MAX_PLAN_MESSAGES, MAX_SEGMENTED_BYTES,
};
pub use recv::{DatagramInfo, RecvMeta, RecvScratch, Slab};
pub use send::{
    Batch, BatchError, DestinationId, PacketSource, SendReport, SendScratch, SendStop,
    KNOWN_SEND_FLAGS, MAX_MESSAGES_PER_CALL, MAX_SEGMENTS_PER_MESSAGE,
};
pub use slab::SlabLayout;
pub use socket::{
    datagram_socket_family, destination_for_family, Family, MembershipError, PathMtuDiscovery,
    SocketOptions, UdpSocket,
};

/// Largest UDP payload over IPv4 (65535 − 20 IP − 8 UDP).
pub const MAX_UDP_PAYLOAD_V4: usize = 65_507;
/// Largest UDP payload over IPv6 without jumbograms (65535 − 8 UDP).
pub const MAX_UDP_PAYLOAD_V6: usize = 65_527;

pub use sys::{JsCallback, LoopPoll};
