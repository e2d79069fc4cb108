//! Phase 1: reading JS arguments into plain Rust values.
//!
//! Anything here may run user JavaScript (an array index getter, a Proxy trap): that is allowed
//! in phase 1, because nothing borrowed from JS memory exists yet and no socket state is
//! borrowed. What comes out is plain data (numbers, strings, copies of small typed arrays) plus
//! [`View`]s: handles to `Uint8Array`s with the length they had when read. Their bytes are only
//! looked at in phase 2 ([`View::bytes_now`]).

use napi::bindgen_prelude::{Array, ArrayBuffer, FromNapiValue, Unknown};
use napi::{JsValue, ValueType};

use crate::errors::{Failure, Outcome};

/// Most elements any list argument may have; checked before anything is allocated.
pub const MAX_LIST: u32 = 1 << 24;

/// A `Uint8Array` (or `Buffer`) argument, read in phase 1: its handle (kept alive by the
/// current handle scope until the call returns) and the length it had then.
#[derive(Clone, Copy)]
pub struct View<'env> {
    handle: Unknown<'env>,
    pub planned_len: u32,
}

impl<'env> View<'env> {
    /// Phase 2 only: the view's bytes as they are now. A detached view is empty; the caller
    /// compares with `planned_len`. Reads no property and runs no JavaScript
    /// (`napi_get_typedarray_info` only).
    pub fn bytes_now(&self) -> &'env [u8] {
        <&[u8]>::from_unknown(self.handle).unwrap_or(&[])
    }

    /// Phase 2 only: the view's bytes for writing (receive).
    pub fn bytes_now_mut(&self) -> &'env mut [u8] {
        <&mut [u8]>::from_unknown(self.handle).unwrap_or(&mut [])
    }
}

/// Reads one `Uint8Array`/`Buffer`. One N-API call (`napi_get_typedarray_info`, which also
/// refuses anything that is not a `Uint8Array`) per view: this runs once per datagram.
pub fn view<'env>(value: Unknown<'env>, what: &dyn Fn() -> String) -> Outcome<View<'env>> {
    let bytes = <&[u8]>::from_unknown(value).map_err(|_| {
        Failure::Type(format!(
            "{} must be a Uint8Array; got {}",
            what(),
            describe(value)
        ))
    })?;
    let planned_len = u32::try_from(bytes.len())
        .map_err(|_| Failure::Range(format!("{} is larger than 4 GiB", what())))?;
    Ok(View {
        handle: value,
        planned_len,
    })
}

/// Reads an array of `Uint8Array`s element by element (getters and traps may run). Not built
/// on [`handles`]: each view's length is taken as soon as it is read, so that a later
/// element's getter that shrinks or detaches it fails its message instead of sending it short.
pub fn views<'env>(value: Unknown<'env>, what: &str) -> Outcome<Vec<View<'env>>> {
    let list = array(value, what)?;
    let len = list.len();
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..len {
        let element = list
            .get::<Unknown>(i)?
            .ok_or_else(|| Failure::Type(format!("{what}[{i}] is missing")))?;
        out.push(view(element, &|| format!("{what}[{i}]"))?);
    }
    Ok(out)
}

/// Reads an array of store handles (`ArrayBuffer`s or `Uint8Array`s) element by element
/// (getters and traps may run). Only the handles are kept (alive in the current handle scope):
/// their type and bytes are checked and taken in phase 2 by [`stores_now`], one N-API call per
/// store; the caller carries the planned lengths itself.
pub fn handles<'env>(value: Unknown<'env>, what: &str) -> Outcome<Vec<Unknown<'env>>> {
    let list = array(value, what)?;
    let len = list.len();
    let mut out = Vec::with_capacity(len as usize);
    for i in 0..len {
        let element = list
            .get::<Unknown>(i)?
            .ok_or_else(|| Failure::Type(format!("{what}[{i}] is missing")))?;
        out.push(element);
    }
    Ok(out)
}

/// A store of `socketSendSpans` in phase 2: an `ArrayBuffer`, or a `Uint8Array` standing for
/// its own bytes.
pub enum Store<'env> {
    Buffer(ArrayBuffer<'env>),
    View(&'env [u8]),
}

impl Store<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Store::Buffer(buffer) => buffer,
            Store::View(bytes) => bytes,
        }
    }
}

/// Phase 2 only: each store as it is now (a detached one is empty), or a `TypeError` for one
/// of the wrong kind: `ArrayBuffer`s (a `SharedArrayBuffer` is refused: N-API cannot read one),
/// or with `views` `Uint8Array`s. Runs no JavaScript (`napi_get_arraybuffer_info` /
/// `napi_get_typedarray_info` only).
pub fn stores_now<'env>(
    stores: &[Unknown<'env>],
    views: bool,
    what: &str,
) -> Outcome<Vec<Store<'env>>> {
    let wrong = |i: usize, store: Unknown| {
        let kind = if views {
            "a Uint8Array"
        } else {
            "an ArrayBuffer"
        };
        Failure::Type(format!(
            "{what}[{i}] must be {kind}; got {}",
            describe(store)
        ))
    };
    // Sized up front: collecting into a `Result` would grow the vector by doubling.
    let mut out = Vec::with_capacity(stores.len());
    for (i, &store) in stores.iter().enumerate() {
        out.push(if views {
            <&[u8]>::from_unknown(store)
                .map(Store::View)
                .map_err(|_| wrong(i, store))?
        } else {
            ArrayBuffer::from_unknown(store)
                .map(Store::Buffer)
                .map_err(|_| wrong(i, store))?
        });
    }
    Ok(out)
}

/// An array argument with a length checked before any allocation.
pub fn array<'env>(value: Unknown<'env>, what: &str) -> Outcome<Array<'env>> {
    if !value.is_array()? {
        return Err(Failure::Type(format!(
            "{what} must be an array; got {}",
            describe(value)
        )));
    }
    let list = Array::from_unknown(value)?;
    if list.len() > MAX_LIST {
        return Err(Failure::Range(format!(
            "{what} has {} elements; at most {MAX_LIST} are allowed",
            list.len()
        )));
    }
    Ok(list)
}

/// A `Uint32Array` (or `null`/`undefined`: empty), copied once into our own memory: a
/// `SharedArrayBuffer` that another thread rewrites cannot change what is checked and used.
pub fn u32_list(value: Unknown, what: &str) -> Outcome<Vec<u32>> {
    typed_list::<u32>(value, what, "Uint32Array")
}

/// A `Uint8Array` (or `null`/`undefined`: empty), copied once into our own memory.
pub fn u8_list(value: Unknown, what: &str) -> Outcome<Vec<u8>> {
    typed_list::<u8>(value, what, "Uint8Array")
}

/// A `Uint16Array` (or `null`/`undefined`: empty), copied once into our own memory.
pub fn u16_list(value: Unknown, what: &str) -> Outcome<Vec<u16>> {
    typed_list::<u16>(value, what, "Uint16Array")
}

/// An array of strings, or `null`/`undefined`: empty.
pub fn optional_strings(value: Unknown, what: &str) -> Outcome<Vec<String>> {
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(Vec::new()),
        _ => strings(value, what),
    }
}

/// An integer in `0..=max`, or `null`/`undefined`: 0.
pub fn optional_uint(value: Unknown, what: &str, max: u32) -> Outcome<u32> {
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(0),
        _ => uint(value, what, max),
    }
}

fn typed_list<T: Copy>(value: Unknown, what: &str, kind: &str) -> Outcome<Vec<T>>
where
    for<'a> &'a [T]: FromNapiValue,
{
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => return Ok(Vec::new()),
        _ => {}
    }
    // napi_get_typedarray_info fails for anything but a typed array of this element type.
    let values = <&[T]>::from_unknown(value)
        .map_err(|_| Failure::Type(format!("{what} must be a {kind}")))?;
    if values.len() > MAX_LIST as usize {
        return Err(Failure::Range(format!("{what} is too long")));
    }
    Ok(values.to_vec())
}

/// The planned length of each view: the caller's `lengths` when given (checked to have one
/// entry per view), else each view's length when phase 1 read it.
pub fn planned_lengths(views: &[View], lengths: Vec<u32>) -> Outcome<Vec<u32>> {
    if lengths.is_empty() {
        return Ok(views.iter().map(|v| v.planned_len).collect());
    }
    if lengths.len() != views.len() {
        return Err(Failure::Range(format!(
            "lengths has {} entries for {} views",
            lengths.len(),
            views.len()
        )));
    }
    Ok(lengths)
}

/// An array of strings.
pub fn strings(value: Unknown, what: &str) -> Outcome<Vec<String>> {
    let list = array(value, what)?;
    let mut out = Vec::with_capacity(list.len() as usize);
    for i in 0..list.len() {
        let element = list
            .get::<Unknown>(i)?
            .ok_or_else(|| Failure::Type(format!("{what}[{i}] is missing")))?;
        out.push(string(element, &format!("{what}[{i}]"))?);
    }
    Ok(out)
}

/// An array of integers in `0..=max`.
pub fn uints(value: Unknown, what: &str, max: u32) -> Outcome<Vec<u32>> {
    let list = array(value, what)?;
    let mut out = Vec::with_capacity(list.len() as usize);
    for i in 0..list.len() {
        let element = list
            .get::<Unknown>(i)?
            .ok_or_else(|| Failure::Type(format!("{what}[{i}] is missing")))?;
        out.push(uint(element, &format!("{what}[{i}]"), max)?);
    }
    Ok(out)
}

pub fn string(value: Unknown, what: &str) -> Outcome<String> {
    if value.get_type()? != ValueType::String {
        return Err(Failure::Type(format!(
            "{what} must be a string; got {}",
            describe(value)
        )));
    }
    Ok(String::from_unknown(value)?)
}

/// A string, or `None` for `null`/`undefined`.
pub fn optional_string(value: Unknown, what: &str) -> Outcome<Option<String>> {
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        _ => string(value, what).map(Some),
    }
}

/// An integer in `0..=max`. Only a real number is accepted (no `valueOf` is called).
pub fn uint(value: Unknown, what: &str, max: u32) -> Outcome<u32> {
    if value.get_type()? != ValueType::Number {
        return Err(Failure::Type(format!(
            "{what} must be a number; got {}",
            describe(value)
        )));
    }
    let n = f64::from_unknown(value)?;
    if n.fract() != 0.0 || !(0.0..=f64::from(max)).contains(&n) {
        return Err(Failure::Range(format!(
            "{what} must be an integer from 0 to {max}; got {n}"
        )));
    }
    Ok(n as u32)
}

pub fn describe(value: Unknown) -> &'static str {
    match value.get_type() {
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => "an array",
        Ok(ValueType::Object) if value.is_typedarray().unwrap_or(false) => "a TypedArray",
        Ok(ValueType::Undefined) => "undefined",
        Ok(ValueType::Null) => "null",
        Ok(ValueType::Boolean) => "a boolean",
        Ok(ValueType::Number) => "a number",
        Ok(ValueType::String) => "a string",
        Ok(ValueType::Symbol) => "a symbol",
        Ok(ValueType::Object) => "an object",
        Ok(ValueType::Function) => "a function",
        Ok(ValueType::BigInt) => "a bigint",
        _ => "an unknown value",
    }
}
