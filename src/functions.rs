//! The system calls themselves on any UDP descriptor the caller owns (for example a
//! `node:dgram` socket's): `sendmmsg`, `trySendmmsg` and `recvmmsg`, with the same two phases
//! as `NativeSocket`'s methods.

use std::time::Duration;

use mmsg_core::{Family, OnceError, SendPlan, SendScratch};
use napi::bindgen_prelude::{FromNapiValue, Unknown};
use napi::{Env, Result};
use napi_derive::napi;

use crate::errors::{guarded, Failure, Outcome};
use crate::read::{self, View};
use crate::socket::{plan_outcome, send_flags};

/// One datagram as `recvmmsg` reported it.
#[napi(object)]
pub struct ReceivedInfo {
    pub length: u32,
    pub truncated: bool,
    pub address: String,
    pub port: u32,
    pub family: String,
}

struct FdPlan<'env> {
    fd: i32,
    views: Vec<View<'env>>,
    plan: SendPlan,
    flags: i32,
}

#[allow(clippy::too_many_arguments)]
fn read_fd_plan<'env>(
    fd: Unknown,
    views: Unknown<'env>,
    piece_counts: Unknown,
    message_destinations: Unknown,
    addresses: Unknown,
    ports: Unknown,
    flags: Unknown,
    lengths: Unknown,
) -> Outcome<FdPlan<'env>> {
    let fd = read::uint(fd, "fd", i32::MAX as u32)? as i32;
    let views = read::views(views, "views")?;
    let piece_counts = read::u32_list(piece_counts, "pieceCounts")?;
    let message_destinations = read::u32_list(message_destinations, "messageDestinations")?;
    let addresses = read::strings(addresses, "addresses")?;
    let ports = read::uints(ports, "ports", 65535)?;
    let flags = send_flags(read::uint(flags, "flags", i32::MAX as u32)?)?;
    let lengths = read::u32_list(lengths, "lengths")?;
    if addresses.len() != ports.len() {
        return Err(Failure::Range(
            "addresses and ports must have the same length".into(),
        ));
    }
    let family = if addresses.is_empty() {
        Family::V4
    } else {
        mmsg_core::datagram_socket_family(fd).map_err(|e| Failure::system(e, "sendmmsg"))?
    };
    let mut destinations = Vec::with_capacity(addresses.len());
    for (address, &port) in addresses.iter().zip(&ports) {
        let parsed = mmsg_core::addr::parse_socket_addr(address, port as u16)
            .and_then(|a| mmsg_core::destination_for_family(family, a))
            .map_err(|e| Failure::Type(e.to_string()))?;
        destinations.push(parsed);
    }
    let lengths = read::planned_lengths(&views, lengths)?;
    let plan = SendPlan::new(lengths, &piece_counts, message_destinations, destinations)
        .map_err(|e| Failure::Range(e.to_string()))?;
    Ok(FdPlan {
        fd,
        views,
        plan,
        flags,
    })
}

/// `sendmmsg(2)` exactly as the man page describes it, on any UDP descriptor: at most
/// UIO_MAXIOV messages, the count sent, an error only when none was (with `index: 0`).
/// Arguments as `NativeSocket.send`; `bytesSent[i]` (if given) receives message `i`'s `msg_len`.
#[napi(
    ts_args_type = "fd: number, views: Uint8Array[], pieceCounts: Uint32Array | null, messageDestinations: Uint32Array | null, addresses: string[], ports: number[], flags: number, lengths?: Uint32Array | null"
)]
#[allow(clippy::too_many_arguments)]
pub fn sendmmsg(
    env: Env,
    fd: Unknown,
    views: Unknown,
    piece_counts: Unknown,
    message_destinations: Unknown,
    addresses: Unknown,
    ports: Unknown,
    flags: Unknown,
    lengths: Unknown,
) -> Result<Vec<u32>> {
    guarded(&env, || {
        let p = read_fd_plan(
            fd,
            views,
            piece_counts,
            message_destinations,
            addresses,
            ports,
            flags,
            lengths,
        )?;
        // Phase 2: the views' bytes now, then one system call.
        let bytes: Vec<&[u8]> = p.views.iter().map(View::bytes_now).collect();
        p.plan
            .send_once(p.fd, &mut SendScratch::new(), &bytes, p.flags)
            .map_err(|e| match e {
                OnceError::ViewChanged => Failure::ViewChanged { index: 0, sent: 0 },
                OnceError::System(error) => Failure::System {
                    error,
                    syscall: "sendmmsg",
                    index: Some(0),
                    sent: Some(0),
                },
            })
    })
}

/// Like `sendmmsg`, but the whole batch (in several calls if needed) and no error lost: a
/// message that fails after others were sent throws with its `index` and `sent`. Returns the
/// count sent (fewer than the batch: the socket would block).
#[napi(
    ts_args_type = "fd: number, views: Uint8Array[], pieceCounts: Uint32Array | null, messageDestinations: Uint32Array | null, addresses: string[], ports: number[], flags: number, lengths?: Uint32Array | null"
)]
#[allow(clippy::too_many_arguments)]
pub fn try_sendmmsg(
    env: Env,
    fd: Unknown,
    views: Unknown,
    piece_counts: Unknown,
    message_destinations: Unknown,
    addresses: Unknown,
    ports: Unknown,
    flags: Unknown,
    lengths: Unknown,
) -> Result<u32> {
    guarded(&env, || {
        let p = read_fd_plan(
            fd,
            views,
            piece_counts,
            message_destinations,
            addresses,
            ports,
            flags,
            lengths,
        )?;
        let bytes: Vec<&[u8]> = p.views.iter().map(View::bytes_now).collect();
        let mut scratch = SendScratch::new();
        plan_outcome(p.plan.send(p.fd, &mut scratch, &bytes, 0, p.flags))
    })
}

/// `recvmmsg(2)` on any UDP descriptor into caller buffers: datagram `i` lands in
/// `buffers[i]`. `flags` (`MSG_DONTWAIT`, `MSG_WAITFORONE`, ...) and the timeout pass through;
/// a blocking descriptor blocks. An error (`EAGAIN` included) throws when nothing arrived.
#[napi(ts_args_type = "fd: number, buffers: Uint8Array[], flags: number, timeoutMs: number")]
pub fn recvmmsg(
    env: Env,
    fd: Unknown,
    buffers: Unknown,
    flags: Unknown,
    timeout_ms: Unknown,
) -> Result<Vec<ReceivedInfo>> {
    let metas = guarded(&env, || {
        let fd = read::uint(fd, "fd", i32::MAX as u32)? as i32;
        let views = read::views(buffers, "buffers")?;
        if views.len() > mmsg_core::MAX_MESSAGES_PER_CALL {
            return Err(Failure::Range(format!(
                "at most {} buffers per call (UIO_MAXIOV); got {}",
                mmsg_core::MAX_MESSAGES_PER_CALL,
                views.len()
            )));
        }
        let flags = read::uint(flags, "flags", i32::MAX as u32)? as i32;
        if flags & !mmsg_core::recv::KNOWN_RECV_FLAGS != 0 {
            return Err(Failure::Range(format!(
                "flags has unknown bits 0x{flags:x}"
            )));
        }
        let timeout = match timeout_ms.get_type()? {
            napi::ValueType::Undefined | napi::ValueType::Null => None,
            _ => {
                let ms = f64::from_unknown(timeout_ms)?;
                if !(0.0..=86_400_000.0).contains(&ms) {
                    return Err(Failure::Range("timeoutMs must be 0 to 86400000".into()));
                }
                Some(Duration::from_secs_f64(ms / 1000.0))
            }
        };
        // Phase 2: no JS from here. Buffers that share memory would alias: refuse them.
        let mut ranges: Vec<(usize, usize)> = views
            .iter()
            .map(|v| {
                let b = v.bytes_now();
                (b.as_ptr() as usize, b.as_ptr() as usize + b.len())
            })
            .filter(|(a, b)| a < b)
            .collect();
        ranges.sort_unstable();
        if ranges.windows(2).any(|w| w[1].0 < w[0].1) {
            return Err(Failure::Type("buffers must not share memory".into()));
        }
        let mut slices: Vec<&mut [u8]> = views.iter().map(View::bytes_now_mut).collect();
        let mut out = Vec::new();
        mmsg_core::RecvScratch::new()
            .recv_into(fd, &mut slices, flags, timeout, &mut out)
            .map_err(|e| Failure::system(e, "recvmmsg"))?;
        Ok(out)
    })?;
    Ok(metas
        .into_iter()
        .map(|m| {
            let (address, port, family) = match m.source {
                Some(a) => (
                    mmsg_core::endpoint::unmap(a.ip()).to_string(),
                    u32::from(a.port()),
                    if a.is_ipv4() { "IPv4" } else { "IPv6" },
                ),
                None => (String::new(), 0, ""),
            };
            ReceivedInfo {
                length: m.len as u32,
                truncated: m.truncated,
                address,
                port,
                family: family.to_owned(),
            }
        })
        .collect())
}
