//! The free functions: `sendmmsg(fd, ...)` (the faithful system call) and `trySendmmsg(fd, ...)`
//! (the same batch, with a lost error recovered and thrown with its index).

use mmsg_core::{SendScratch, SendStop};
use napi::bindgen_prelude::{FromNapiValue, Unknown};
use napi::JsValue;
use napi::{Env, Result, ValueType};
use napi_derive::napi;
use std::cell::RefCell;

use crate::convert::{send_flags, type_name, AddressResolver, BatchInput, BatchSink};
use crate::errors::{range_error, send_error_at, type_error};

thread_local! {
    /// Batch memory for the free functions, reused across calls (no steady-state allocation).
    static SCRATCH: RefCell<SendScratch> = RefCell::new(SendScratch::new());
}

/// A file descriptor argument: a non-negative integer.
pub fn fd_arg(env: &Env, value: Unknown) -> Result<i32> {
    match value.get_type()? {
        ValueType::Number => {
            let n = f64::from_unknown(value)?;
            if n.fract() != 0.0 || !(0.0..=i32::MAX as f64).contains(&n) {
                return Err(range_error(
                    env,
                    format!("fd must be a non-negative integer; got {n}"),
                ));
            }
            Ok(n as i32)
        }
        other => Err(type_error(
            env,
            format!("fd must be a number; got {}", type_name(other)),
        )),
    }
}

/// How the batch ended, for the two functions to report in their own ways.
struct Outcome {
    sent: usize,
    stop: SendStop,
}

fn send_on_fd(
    env: &Env,
    fd: Unknown,
    messages: Unknown,
    flags: Option<Unknown>,
    bytes_sent: Option<Unknown>,
) -> Result<Outcome> {
    let fd = fd_arg(env, fd)?;
    let flags = send_flags(env, flags)?;
    if !messages.is_array()? {
        return Err(type_error(
            env,
            "messages must be an array of Buffers/Uint8Arrays or { buffers, address?, port? } objects",
        ));
    }
    let bytes_out: Option<&mut [u32]> = match bytes_sent {
        None => None,
        Some(v) if matches!(v.get_type()?, ValueType::Undefined | ValueType::Null) => None,
        Some(v) => Some(
            <&mut [u32]>::from_unknown(v)
                .map_err(|_| type_error(env, "bytesSent must be a Uint32Array"))?,
        ),
    };
    // The family decides how addresses are written (IPv4-mapped on udp6); asking the kernel
    // also rejects descriptors that are not datagram sockets before anything is parsed.
    let family = mmsg_core::datagram_socket_family(fd).map_err(|e| send_error_at(env, &e, 0))?;
    let input = BatchInput::Messages {
        list: napi::bindgen_prelude::Array::from_unknown(messages)?,
        default_destination: None,
    };
    if let Some(out) = &bytes_out {
        if out.len() < input.len() {
            return Err(range_error(
                env,
                format!(
                    "bytesSent has room for {} messages but the batch has {}",
                    out.len(),
                    input.len()
                ),
            ));
        }
    }
    let mut resolver = AddressResolver::new(family);
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let mut batch = scratch.batch();
        input.walk(
            env,
            &mut resolver,
            0,
            input.len(),
            &mut BatchSink::new(&mut batch),
        )?;
        let report = batch.send(fd, flags, 0);
        if let Some(out) = bytes_out {
            for (slot, bytes) in out.iter_mut().zip(batch.bytes_sent()) {
                *slot = *bytes;
            }
        }
        Ok(Outcome {
            sent: report.sent,
            stop: report.stop,
        })
    })
}

/// The `sendmmsg(2)` system call on any datagram socket descriptor (including a `node:dgram`
/// socket's). Returns how many messages were sent; like the call, throws a system error
/// (`code`, `errno`, `syscall: 'sendmmsg'`, `index: 0`) only when none was sent, `EAGAIN`
/// included. Batches beyond UIO_MAXIOV (1024) are sent in several calls. If `bytesSent` is
/// given, `bytesSent[i]` receives message `i`'s `msg_len`.
#[napi(
    catch_unwind,
    ts_args_type = "fd: number, messages: Array<Uint8Array | OutgoingMessage>, flags?: number, bytesSent?: Uint32Array"
)]
pub fn sendmmsg(
    env: Env,
    fd: Unknown,
    messages: Unknown,
    flags: Option<Unknown>,
    bytes_sent: Option<Unknown>,
) -> Result<u32> {
    let outcome = send_on_fd(&env, fd, messages, flags, bytes_sent)?;
    match outcome.stop {
        SendStop::Failed(error) if outcome.sent == 0 => Err(send_error_at(&env, &error, 0)),
        SendStop::WouldBlock if outcome.sent == 0 => Err(send_error_at(
            &env,
            &std::io::Error::from(std::io::ErrorKind::WouldBlock),
            0,
        )),
        _ => Ok(outcome.sent as u32),
    }
}

/// Like `sendmmsg`, but never loses an error: if message `k` fails (even after others were
/// sent), throws a system error with `index: k` and `sent: k`. Returns the count sent, which is
/// less than the batch only when the socket would block.
#[napi(
    catch_unwind,
    ts_args_type = "fd: number, messages: Array<Uint8Array | OutgoingMessage>, flags?: number, bytesSent?: Uint32Array"
)]
pub fn try_sendmmsg(
    env: Env,
    fd: Unknown,
    messages: Unknown,
    flags: Option<Unknown>,
    bytes_sent: Option<Unknown>,
) -> Result<u32> {
    let outcome = send_on_fd(&env, fd, messages, flags, bytes_sent)?;
    match outcome.stop {
        SendStop::Failed(error) => Err(send_error_at(&env, &error, outcome.sent)),
        _ => Ok(outcome.sent as u32),
    }
}
