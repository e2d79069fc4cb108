//! Converting JS arguments into core values: ports, addresses, flags, and batches of messages
//! whose bytes stay in JS memory (the core receives borrowed slices; nothing is copied).

use std::net::SocketAddr;

use std::borrow::Cow;
use std::fmt::Display;

use mmsg_core::{AddrError, Family, SockAddr};
use napi::bindgen_prelude::ArrayBuffer;
use napi::bindgen_prelude::{Array, FromNapiValue, JsObjectValue, Object, Unknown};
use napi::JsValue;
use napi::{Env, Result, ValueType};

use crate::errors::{range_error, type_error};

/// Names an argument in error messages. Cheap to build: the text is only formatted when an
/// error is actually reported, so naming every message of a batch costs no allocation.
#[derive(Clone, Copy)]
pub enum Label {
    Message(usize),
    Field(usize, &'static str),
    Piece(usize, u32),
    Length(u32),
}

impl Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Message(index) => write!(f, "message {index}"),
            Label::Field(index, field) => write!(f, "message {index}: {field}"),
            Label::Piece(index, piece) => write!(f, "message {index}: buffers[{piece}]"),
            Label::Length(i) => write!(f, "lengths[{i}]"),
        }
    }
}

/// Reads an optional port argument: an integer 0–65535 (`undefined`/`null`/absent: `None`).
pub fn optional_port(env: &Env, value: Option<Unknown>, what: impl Display) -> Result<Option<u16>> {
    Ok(optional_uint(env, value, what, 65535.0)?.map(|port| port as u16))
}

/// Reads an optional string argument.
pub fn optional_string(
    env: &Env,
    value: Option<Unknown>,
    what: impl Display,
) -> Result<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) => match v.get_type()? {
            ValueType::Undefined | ValueType::Null => Ok(None),
            ValueType::String => Ok(Some(String::from_unknown(v)?)),
            other => Err(type_error(
                env,
                format!("{what} must be a string; got {}", type_name(other)),
            )),
        },
    }
}

/// Reads an optional non-negative integer (flags, counts, sizes) no larger than `max`.
pub fn optional_uint(
    env: &Env,
    value: Option<Unknown>,
    what: impl Display,
    max: f64,
) -> Result<Option<u32>> {
    match value {
        None => Ok(None),
        Some(v) => match v.get_type()? {
            ValueType::Undefined | ValueType::Null => Ok(None),
            ValueType::Number => {
                let n = f64::from_unknown(v)?;
                if n.fract() != 0.0 || !(0.0..=max).contains(&n) {
                    return Err(range_error(
                        env,
                        format!("{what} must be an integer from 0 to {max}; got {n}"),
                    ));
                }
                Ok(Some(n as u32))
            }
            other => Err(type_error(
                env,
                format!("{what} must be a number; got {}", type_name(other)),
            )),
        },
    }
}

/// Reads an optional boolean.
pub fn optional_bool(
    env: &Env,
    value: Option<Unknown>,
    what: impl Display,
) -> Result<Option<bool>> {
    match value {
        None => Ok(None),
        Some(v) => match v.get_type()? {
            ValueType::Undefined | ValueType::Null => Ok(None),
            ValueType::Boolean => Ok(Some(bool::from_unknown(v)?)),
            other => Err(type_error(
                env,
                format!("{what} must be a boolean; got {}", type_name(other)),
            )),
        },
    }
}

/// A required boolean argument.
pub fn required_bool(env: &Env, value: Unknown, what: &str) -> Result<bool> {
    optional_bool(env, Some(value), what)?
        .ok_or_else(|| type_error(env, format!("{what} must be a boolean")))
}

/// A required string argument.
pub fn required_string(env: &Env, value: Unknown, what: &str) -> Result<String> {
    optional_string(env, Some(value), what)?
        .ok_or_else(|| type_error(env, format!("{what} must be a string")))
}

/// A required integer argument in `min..=max`.
pub fn required_uint(env: &Env, value: Unknown, what: &str, min: u32, max: u32) -> Result<u32> {
    let n = optional_uint(env, Some(value), what, f64::from(max))?
        .ok_or_else(|| type_error(env, format!("{what} must be a number")))?;
    if n < min {
        return Err(range_error(
            env,
            format!("{what} must be an integer from {min} to {max}; got {n}"),
        ));
    }
    Ok(n)
}

/// A callback argument: a function taking one object (a batch or an array of datagrams).
pub fn callback_arg<'env>(
    env: &Env,
    value: Unknown<'env>,
) -> Result<napi::bindgen_prelude::Function<'env, Object<'static>, Unknown<'static>>> {
    if value.get_type()? != ValueType::Function {
        return Err(type_error(
            env,
            format!(
                "callback must be a function; got {}",
                type_name(value.get_type()?)
            ),
        ));
    }
    napi::bindgen_prelude::Function::from_unknown(value)
}

use mmsg_core::KNOWN_SEND_FLAGS;

/// Validates send flags: unknown bits are a `RangeError` rather than a surprise from the kernel.
pub fn send_flags(env: &Env, value: Option<Unknown>) -> Result<i32> {
    let flags = optional_uint(env, value, "flags", i32::MAX as f64)?.unwrap_or(0) as i32;
    if flags & !KNOWN_SEND_FLAGS != 0 {
        return Err(range_error(
            env,
            format!("flags has unknown bits 0x{:x} (known: MSG_DONTWAIT, MSG_CONFIRM, MSG_DONTROUTE, MSG_MORE, MSG_NOSIGNAL, MSG_EOR)", flags & !KNOWN_SEND_FLAGS),
        ));
    }
    Ok(flags)
}

pub fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "boolean",
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Symbol => "symbol",
        ValueType::Object => "object",
        ValueType::Function => "function",
        ValueType::External => "external",
        ValueType::BigInt => "bigint",
        _ => "unknown",
    }
}

/// Resolves IP literals to socket addresses for one socket family, remembering the last one so a
/// batch of messages to the same peer parses its address once.
pub struct AddressResolver {
    family: Family,
    last: Option<(String, u16, SockAddr)>,
}

impl AddressResolver {
    pub fn new(family: Family) -> Self {
        AddressResolver { family, last: None }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn resolve(&mut self, env: &Env, address: &str, port: u16) -> Result<SockAddr> {
        if let Some((text, last_port, resolved)) = &self.last {
            if text == address && *last_port == port {
                return Ok(*resolved);
            }
        }
        let parsed: SocketAddr = mmsg_core::addr::parse_socket_addr(address, port)
            .map_err(|e| address_error(env, &e))?;
        let resolved = mmsg_core::destination_for_family(self.family, parsed)
            .map_err(|e| address_error(env, &e))?;
        self.last = Some((address.to_owned(), port, resolved));
        Ok(resolved)
    }

    /// The loopback address of this family, `node:dgram`'s default when only a port is given.
    pub fn loopback(&self) -> &'static str {
        match self.family {
            Family::V4 => "127.0.0.1",
            Family::V6 => "::1",
        }
    }

    /// Resolves an optional `(port, address)` pair the way `dgram.send` does: a port alone means
    /// loopback; an address without a port is an error; neither means "the connected peer".
    pub fn destination(
        &mut self,
        env: &Env,
        port: Option<u16>,
        address: Option<&str>,
        what: impl Display,
    ) -> Result<Option<SockAddr>> {
        match (port, address) {
            (None, None) => Ok(None),
            (Some(port), address) => {
                let address = address.unwrap_or(self.loopback());
                self.resolve(env, address, port).map(Some)
            }
            (None, Some(_)) => Err(type_error(env, format!("{what}: an address needs a port"))),
        }
    }
}

pub fn address_error(env: &Env, error: &AddrError) -> napi::Error {
    type_error(env, error.to_string())
}

/// Receives the messages of a batch as they are read from JS.
pub trait MessageSink<'env> {
    fn start_message(&mut self, env: &Env, destination: Option<SockAddr>) -> Result<()>;
    /// One segment of the current message: `bytes` is a view of `holder`'s memory starting at
    /// `offset` within the view.
    fn segment(
        &mut self,
        env: &Env,
        holder: Unknown<'env>,
        offset: usize,
        bytes: &'env [u8],
    ) -> Result<()>;
}

/// What a send call was given.
pub enum BatchInput<'env> {
    /// `Array<OutgoingMessage | Uint8Array>`, with a default destination for bare buffers.
    Messages {
        list: Array<'env>,
        default_destination: Option<SockAddr>,
    },
    /// One buffer cut into consecutive datagrams of the given lengths.
    Packed {
        holder: Unknown<'env>,
        bytes: &'env [u8],
        /// Borrowed from a `Uint32Array` (no copy), or read from a plain array.
        lengths: Cow<'env, [u32]>,
        destination: Option<SockAddr>,
    },
}

impl<'env> BatchInput<'env> {
    pub fn len(&self) -> usize {
        match self {
            BatchInput::Messages { list, .. } => list.len() as usize,
            BatchInput::Packed { lengths, .. } => lengths.len(),
        }
    }

    /// Feeds messages `from..to` to `sink`, in order. Argument errors name the message index.
    pub fn walk(
        &self,
        env: &Env,
        resolver: &mut AddressResolver,
        from: usize,
        to: usize,
        sink: &mut impl MessageSink<'env>,
    ) -> Result<()> {
        match self {
            BatchInput::Messages {
                list,
                default_destination,
            } => {
                for index in from..to {
                    let element: Unknown<'env> = list
                        .get::<Unknown>(index as u32)?
                        .ok_or_else(|| type_error(env, format!("message {index} is missing")))?;
                    walk_message(env, resolver, index, element, *default_destination, sink)?;
                }
            }
            BatchInput::Packed {
                holder,
                bytes,
                lengths,
                destination,
            } => {
                let mut offset: usize = lengths[..from].iter().map(|&l| l as usize).sum();
                for &length in &lengths[from..to] {
                    let end = offset + length as usize;
                    sink.start_message(env, *destination)?;
                    sink.segment(env, *holder, offset, &bytes[offset..end])?;
                    offset = end;
                }
            }
        }
        Ok(())
    }
}

/// Reads `packed` + `lengths` and checks that the lengths fit inside the buffer.
pub fn packed_input<'env>(
    env: &Env,
    packed: Unknown<'env>,
    lengths: Unknown<'env>,
    destination: Option<SockAddr>,
) -> Result<BatchInput<'env>> {
    let bytes = uint8_view(env, packed, "packed")?;
    let lengths = lengths_array(env, lengths)?;
    let total: u64 = lengths.iter().map(|&l| u64::from(l)).sum();
    if total > bytes.len() as u64 {
        return Err(range_error(
            env,
            format!(
                "lengths add up to {total} bytes but the packed buffer holds {}",
                bytes.len()
            ),
        ));
    }
    Ok(BatchInput::Packed {
        holder: packed,
        bytes,
        lengths,
        destination,
    })
}

fn lengths_array<'env>(env: &Env, value: Unknown<'env>) -> Result<Cow<'env, [u32]>> {
    if value.is_typedarray()? {
        if let Ok(lengths) = <&[u32]>::from_unknown(value) {
            return Ok(Cow::Borrowed(lengths));
        }
        return Err(type_error(
            env,
            "lengths must be a Uint32Array or an array of integers",
        ));
    }
    if !value.is_array()? {
        return Err(type_error(
            env,
            "lengths must be a Uint32Array or an array of integers",
        ));
    }
    let list = Array::from_unknown(value)?;
    let mut lengths = Vec::with_capacity(list.len() as usize);
    for i in 0..list.len() {
        let item = list.get::<Unknown>(i)?;
        let length = optional_uint(env, item, Label::Length(i), u32::MAX as f64)?
            .ok_or_else(|| type_error(env, format!("lengths[{i}] must be a number")))?;
        lengths.push(length);
    }
    Ok(Cow::Owned(lengths))
}

/// The bytes of a `Buffer`/`Uint8Array` (no copy). Views of detached buffers are refused: the
/// user's data is gone, and sending an empty datagram in its place would be a silent loss.
pub fn uint8_view<'env>(env: &Env, value: Unknown<'env>, what: impl Display) -> Result<&'env [u8]> {
    if !value.is_typedarray()? {
        return Err(type_error(
            env,
            format!(
                "{what} must be a Buffer or Uint8Array; got {}",
                describe(value)
            ),
        ));
    }
    let bytes = <&[u8]>::from_unknown(value).map_err(|_| {
        type_error(
            env,
            format!("{what} must be a Buffer or Uint8Array; got another TypedArray"),
        )
    })?;
    if bytes.is_empty() && is_detached(value)? {
        return Err(type_error(
            env,
            format!("{what} is a view of a detached ArrayBuffer"),
        ));
    }
    Ok(bytes)
}

fn is_detached(view: Unknown) -> Result<bool> {
    let object = Object::from_unknown(view)?;
    let buffer: Unknown = object.get_named_property("buffer")?;
    if buffer.is_arraybuffer()? {
        return ArrayBuffer::from_unknown(buffer)?.is_detached();
    }
    Ok(false)
}

fn describe(value: Unknown) -> String {
    match value.get_type() {
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => "an array".to_owned(),
        Ok(t) => type_name(t).to_owned(),
        Err(_) => "unknown".to_owned(),
    }
}

fn walk_message<'env>(
    env: &Env,
    resolver: &mut AddressResolver,
    index: usize,
    element: Unknown<'env>,
    default_destination: Option<SockAddr>,
    sink: &mut impl MessageSink<'env>,
) -> Result<()> {
    if element.is_typedarray()? {
        let bytes = uint8_view(env, element, Label::Message(index))?;
        sink.start_message(env, default_destination)?;
        return sink.segment(env, element, 0, bytes);
    }
    if element.get_type()? != ValueType::Object || element.is_array()? {
        return Err(type_error(
            env,
            format!(
                "message {index} must be a Buffer, a Uint8Array or {{ buffers, address?, port? }}; got {}",
                describe(element)
            ),
        ));
    }
    let object = Object::from_unknown(element)?;
    let port = optional_port(
        env,
        object.get::<Unknown>("port")?,
        Label::Field(index, "port"),
    )?;
    let address = optional_string(
        env,
        object.get::<Unknown>("address")?,
        Label::Field(index, "address"),
    )?;
    let destination = match (port, address.as_deref()) {
        (None, None) => default_destination,
        _ => resolver.destination(env, port, address.as_deref(), Label::Message(index))?,
    };
    sink.start_message(env, destination)?;
    let buffers: Unknown<'env> = object
        .get::<Unknown>("buffers")?
        .ok_or_else(|| type_error(env, format!("message {index} has no buffers")))?;
    if buffers.is_typedarray()? {
        let bytes = uint8_view(env, buffers, Label::Field(index, "buffers"))?;
        return sink.segment(env, buffers, 0, bytes);
    }
    if !buffers.is_array()? {
        return Err(type_error(
            env,
            format!(
                "message {index}: buffers must be a Uint8Array or an array of them; got {}",
                describe(buffers)
            ),
        ));
    }
    let list = Array::from_unknown(buffers)?;
    if list.len() as usize > mmsg_core::MAX_SEGMENTS_PER_MESSAGE {
        return Err(range_error(
            env,
            format!(
                "message {index} has {} buffers; at most {} (IOV_MAX) are allowed",
                list.len(),
                mmsg_core::MAX_SEGMENTS_PER_MESSAGE
            ),
        ));
    }
    for i in 0..list.len() {
        let piece: Unknown<'env> = list
            .get::<Unknown>(i)?
            .ok_or_else(|| type_error(env, format!("message {index}: buffers[{i}] is missing")))?;
        let bytes = uint8_view(env, piece, Label::Piece(index, i))?;
        sink.segment(env, piece, 0, bytes)?;
    }
    Ok(())
}

/// Puts messages straight into a core batch (the synchronous path).
pub struct BatchSink<'b, 's, 'env> {
    pub batch: &'b mut mmsg_core::Batch<'s, 'env>,
    last_destination: Option<(SockAddr, mmsg_core::DestinationId)>,
}

impl<'b, 's, 'env> BatchSink<'b, 's, 'env> {
    pub fn new(batch: &'b mut mmsg_core::Batch<'s, 'env>) -> Self {
        BatchSink {
            batch,
            last_destination: None,
        }
    }
}

impl<'env> MessageSink<'env> for BatchSink<'_, '_, 'env> {
    fn start_message(&mut self, _env: &Env, destination: Option<SockAddr>) -> Result<()> {
        let id = destination.map(|address| match self.last_destination {
            Some((last, id)) if last == address => id,
            _ => {
                let id = self.batch.add_destination(address);
                self.last_destination = Some((address, id));
                id
            }
        });
        self.batch.start_message(id);
        Ok(())
    }

    fn segment(
        &mut self,
        env: &Env,
        _holder: Unknown<'env>,
        _offset: usize,
        bytes: &'env [u8],
    ) -> Result<()> {
        self.batch
            .add_segment(bytes)
            .map_err(|e| range_error(env, e.to_string()))
    }
}
