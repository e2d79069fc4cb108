//! The binding's one error mapper: every failure the binding reports is a [`Failure`], and
//! [`Failure::into_js`] is the only place that turns one into a JS exception.
//!
//! The TypeScript layer (`lib/errors.ts`) turns system errors into `SendError`s and Node's own
//! error classes; here they carry plain, machine-readable fields: `code`, `errno` (negative, as
//! in Node), `syscall`, and for batches `index` (the message that failed) and `sent` (how many
//! went out, i.e. where to resume).

use std::io;

use napi::bindgen_prelude::{FromNapiValue, Object, Unknown};
use napi::{Env, Error, JsRangeError, JsTypeError, JsValue, Status};

/// Everything that can go wrong in a binding call.
#[derive(Debug)]
pub enum Failure {
    /// A wrong type (`TypeError`, `ERR_INVALID_ARG_TYPE`).
    Type(String),
    /// A value out of range (`RangeError`, `ERR_OUT_OF_RANGE`).
    Range(String),
    /// A system call failed. `index`/`sent` locate it in a batch.
    System {
        error: io::Error,
        syscall: &'static str,
        index: Option<usize>,
        sent: Option<usize>,
    },
    /// A view of message `index` was detached, transferred or shrunk after it was read.
    ViewChanged { index: usize, sent: usize },
    /// The socket is closed (`ERR_SOCKET_DGRAM_NOT_RUNNING`).
    Closed,
    /// A call on a socket from inside another call on it.
    Busy,
    /// A failure napi-rs itself reported (already a JS error, or a status).
    Napi(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Napi(error)
    }
}

pub type Outcome<T> = std::result::Result<T, Failure>;

impl Failure {
    pub fn system(error: io::Error, syscall: &'static str) -> Failure {
        Failure::System {
            error,
            syscall,
            index: None,
            sent: None,
        }
    }

    /// Turns the failure into the JS exception the caller receives.
    pub fn into_js(self, env: &Env) -> Error {
        match self {
            Failure::Type(message) => {
                let js: Unknown = JsTypeError::from(Error::new(Status::InvalidArg, message))
                    .into_unknown(*env);
                with_fields(js, &[("code", Field::Str("ERR_INVALID_ARG_TYPE"))])
            }
            Failure::Range(message) => {
                let js: Unknown = JsRangeError::from(Error::new(Status::InvalidArg, message))
                    .into_unknown(*env);
                with_fields(js, &[("code", Field::Str("ERR_OUT_OF_RANGE"))])
            }
            Failure::System {
                error,
                syscall,
                index,
                sent,
            } => {
                let errno = error.raw_os_error().unwrap_or(0);
                let code = mmsg_core::errno::errno_name(errno);
                let rendered = io::Error::from_raw_os_error(errno).to_string();
                let detail = rendered.split(" (os error").next().unwrap_or(&rendered);
                let message = match index {
                    Some(index) => format!("{syscall} {code} (message {index}): {detail}"),
                    None => format!("{syscall} {code}: {detail}"),
                };
                let mut fields = vec![
                    ("code", Field::Str(code)),
                    ("errno", Field::Int(-f64::from(errno))),
                    ("syscall", Field::Str(syscall)),
                ];
                if let Some(index) = index {
                    fields.push(("index", Field::Int(index as f64)));
                }
                if let Some(sent) = sent {
                    fields.push(("sent", Field::Int(sent as f64)));
                }
                plain_error(env, message, &fields)
            }
            Failure::ViewChanged { index, sent } => plain_error(
                env,
                format!(
                    "the bytes of message {index} were detached, transferred or shrunk after they were validated; messages before it were sent"
                ),
                &[
                    ("code", Field::Str("ERR_INVALID_STATE")),
                    ("index", Field::Int(index as f64)),
                    ("sent", Field::Int(sent as f64)),
                ],
            ),
            Failure::Closed => plain_error(
                env,
                "Not running".to_owned(),
                &[("code", Field::Str("ERR_SOCKET_DGRAM_NOT_RUNNING"))],
            ),
            Failure::Busy => plain_error(
                env,
                "the socket is busy: called from inside another call on the same socket".to_owned(),
                &[("code", Field::Str("ERR_SOCKET_BUSY"))],
            ),
            Failure::Napi(error) => error,
        }
    }
}

enum Field {
    Str(&'static str),
    Int(f64),
}

fn plain_error(env: &Env, message: String, fields: &[(&str, Field)]) -> Error {
    match env.create_error(Error::new(Status::GenericFailure, message)) {
        Ok(object) => with_fields(object.to_unknown(), fields),
        Err(e) => e,
    }
}

fn with_fields(js: Unknown, fields: &[(&str, Field)]) -> Error {
    if let Ok(mut object) = Object::from_unknown(js) {
        for (name, value) in fields {
            // Our own fresh error object: setting fields cannot fail in a way worth reporting.
            let _ = match value {
                Field::Str(text) => object.set(*name, *text),
                Field::Int(n) => object.set(*name, *n),
            };
        }
    }
    Error::from(js)
}

/// Runs a binding body and maps its failure, catching any panic (none should be reachable; if
/// one is, it becomes a JS error instead of an abort across the FFI boundary).
pub fn guarded<T>(env: &Env, body: impl FnOnce() -> Outcome<T>) -> napi::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(failure)) => Err(failure.into_js(env)),
        Err(_) => Err(Failure::Napi(Error::new(
            Status::GenericFailure,
            "internal error in the sendmmsg addon (a Rust panic was caught); please report it",
        ))
        .into_js(env)),
    }
}
