//! JS errors in the shapes Node users expect: `TypeError`/`RangeError` with Node's codes for bad
//! arguments, and system errors (`code`, `errno`, `syscall`) with the failing message's `index`.

use std::io;

use napi::bindgen_prelude::{FromNapiValue, Object, Unknown};
use napi::JsValue;
use napi::{Env, Error, JsRangeError, JsTypeError, Status};

/// A `TypeError` with `code: 'ERR_INVALID_ARG_TYPE'`, ready to be returned as `Err`.
pub fn type_error(env: &Env, message: impl Into<String>) -> Error {
    let error = Error::new(Status::InvalidArg, message.into());
    let js: Unknown = JsTypeError::from(error).into_unknown(*env);
    with_code(js, "ERR_INVALID_ARG_TYPE")
}

/// A `TypeError` about message `index` of a batch, of which `sent` messages went out.
pub fn type_error_at(env: &Env, message: impl Into<String>, index: usize, sent: usize) -> Error {
    let error = Error::new(Status::InvalidArg, message.into());
    let js: Unknown = JsTypeError::from(error).into_unknown(*env);
    if let Ok(mut object) = Object::from_unknown(js) {
        let _ = object.set("code", "ERR_INVALID_ARG_TYPE");
        let _ = object.set("index", index as u32);
        let _ = object.set("sent", sent as u32);
    }
    Error::from(js)
}

/// A `RangeError` with `code: 'ERR_OUT_OF_RANGE'`.
pub fn range_error(env: &Env, message: impl Into<String>) -> Error {
    let error = Error::new(Status::InvalidArg, message.into());
    let js: Unknown = JsRangeError::from(error).into_unknown(*env);
    with_code(js, "ERR_OUT_OF_RANGE")
}

/// An `Error` with `code: 'ERR_SOCKET_CLOSED'` (like `node:dgram`'s "Not running").
pub fn closed_error(env: &Env) -> Error {
    closed(env, "the socket is closed", None)
}

/// `ERR_SOCKET_BUSY`: a call on a socket from inside another call on it (a getter run while the
/// first converts its arguments).
pub fn busy_error(env: &Env) -> Error {
    match env.create_error(Error::new(
        Status::GenericFailure,
        "the socket is busy: called from inside another call on the same socket",
    )) {
        Ok(mut object) => {
            let _ = object.set("code", "ERR_SOCKET_BUSY");
            Error::from(object.to_unknown())
        }
        Err(e) => e,
    }
}

/// `ERR_SOCKET_CLOSED` for a pending send, with `sent`: how many of its datagrams went out.
pub fn closed_error_after(env: &Env, sent: usize) -> Error {
    closed(
        env,
        "the socket was closed before the send completed",
        Some(sent),
    )
}

fn closed(env: &Env, message: &str, sent: Option<usize>) -> Error {
    match env.create_error(Error::new(Status::GenericFailure, message)) {
        Ok(mut object) => {
            let _ = object.set("code", "ERR_SOCKET_CLOSED");
            if let Some(sent) = sent {
                let _ = object.set("sent", sent as u32);
            }
            Error::from(object.to_unknown())
        }
        Err(e) => e,
    }
}

fn with_code(js: Unknown, code: &str) -> Error {
    if let Ok(mut object) = Object::from_unknown(js) {
        let _ = object.set("code", code);
    }
    Error::from(js)
}

/// Where in a batch a system error happened.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchPosition {
    /// Index of the message that failed.
    pub index: Option<usize>,
    /// Messages sent (or received) before the failure.
    pub sent: Option<usize>,
}

/// The system error for a batch stopped at message `index`: messages `0..index` went out.
pub fn send_error_at(env: &Env, error: &io::Error, index: usize) -> Error {
    let at = BatchPosition {
        index: Some(index),
        sent: Some(index),
    };
    system_error(env, error, "sendmmsg", at)
}

/// A Node-style system error: `message` like `sendmmsg EMSGSIZE`, `code: 'EMSGSIZE'`,
/// `errno: -90` (negative, as in Node), `syscall`, and `index`/`sent` when known.
pub fn system_error(env: &Env, error: &io::Error, syscall: &str, at: BatchPosition) -> Error {
    let errno = error.raw_os_error().unwrap_or(0);
    let code = mmsg_core::errno::errno_name(errno);
    let mut message = format!("{syscall} {code}");
    if let Some(index) = at.index {
        message.push_str(&format!(" (message {index})"));
    }
    // `io::Error` renders as "Message too long (os error 90)": keep the words, drop the number
    // (it is in `errno`).
    let rendered = io::Error::from_raw_os_error(errno).to_string();
    let detail = rendered.split(" (os error").next().unwrap_or(&rendered);
    message.push_str(&format!(": {detail}"));
    match env.create_error(Error::new(Status::GenericFailure, message)) {
        Ok(mut object) => {
            let _ = object.set("code", code);
            let _ = object.set("errno", -errno);
            let _ = object.set("syscall", syscall);
            if let Some(index) = at.index {
                let _ = object.set("index", index as u32);
            }
            if let Some(sent) = at.sent {
                let _ = object.set("sent", sent as u32);
            }
            Error::from(object.to_unknown())
        }
        Err(e) => e,
    }
}
