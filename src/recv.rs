//! The receive half: `recvmmsg(fd, ...)`, `socket.tryRecv()` (convenient shape),
//! `socket.tryRecvBatch(batch)` (zero-allocation shape) and the event-driven delivery of both.
//!
//! Memory rules: the kernel writes either into Rust scratch memory that is then *copied* into
//! fresh, exact-size JS Buffers (convenient shape), or straight into a JS-allocated `RecvBatch`
//! slab (zero-copy shape), always on the JS thread. JS never sees an external buffer.

use std::net::SocketAddr;
use std::time::Duration;

use mmsg_core::{RecvMeta, RecvScratch, Slab};
use napi::bindgen_prelude::{
    BufferSlice, FromNapiValue, Object, Uint16ArraySlice, Uint32ArraySlice, Uint8ArraySlice,
    Unknown,
};
use napi::{Env, JsValue, Result, ValueType};
use napi_derive::napi;

use crate::convert::{optional_uint, required_uint, type_name, uint8_view};
use crate::errors::{range_error, system_error, type_error, BatchPosition};
use crate::functions::fd_arg;

/// Largest datagram a slot needs to hold (IPv6 without jumbograms).
pub const MAX_SLOT: u32 = 65_535;

/// One datagram as `recvmmsg` reported it.
#[napi(object)]
pub struct ReceivedInfo {
    /// Bytes stored in the buffer.
    pub length: u32,
    /// The datagram was longer than the buffer and was cut (`MSG_TRUNC`).
    pub truncated: bool,
    /// Sender address (empty if the kernel gave none).
    pub address: String,
    /// Sender port.
    pub port: u32,
    /// `'IPv4'` or `'IPv6'` (empty if unknown).
    pub family: String,
}

/// One received datagram in the convenient shape: its own exact-size `Buffer` (safe to keep)
/// and its sender.
#[napi(object)]
#[allow(dead_code)] // describes the TypeScript shape; built field by field in `receive_convenient`
pub struct ReceivedDatagram {
    /// The datagram's bytes (a copy: safe to keep).
    #[napi(ts_type = "Buffer")]
    pub data: Unknown<'static>,
    /// Sender address.
    pub address: String,
    /// Sender port.
    pub port: u32,
    /// `'IPv4'` or `'IPv6'`.
    pub family: String,
    /// Cut to the slot size (`MSG_TRUNC`).
    pub truncated: bool,
}

/// Reusable, JS-allocated memory for the zero-allocation receive path (see `createRecvBatch`).
/// Datagram `i` of the last receive is `data.subarray(offsets[i], offsets[i] + lengths[i])`,
/// from `addresses.subarray(16 * i, 16 * i + 16)` (IPv4 as `::ffff:a.b.c.d`) and `ports[i]`.
#[napi(object)]
#[allow(dead_code)] // describes the TypeScript shape; built by `create_recv_batch`
pub struct RecvBatch {
    /// Datagrams filled by the last receive.
    pub count: u32,
    /// Capacity in datagrams.
    pub max_datagrams: u32,
    /// Bytes reserved per datagram; longer ones are truncated.
    pub slot_size: u32,
    /// The slab the kernel writes into.
    #[napi(ts_type = "Buffer")]
    pub data: Unknown<'static>,
    /// Length of datagram `i`.
    #[napi(ts_type = "Uint32Array")]
    pub lengths: Unknown<'static>,
    /// Where datagram `i` starts in `data`.
    #[napi(ts_type = "Uint32Array")]
    pub offsets: Unknown<'static>,
    /// Sender port of datagram `i`.
    #[napi(ts_type = "Uint16Array")]
    pub ports: Unknown<'static>,
    /// Sender address of datagram `i` in bytes `16 * i` to `16 * i + 16` (IPv4 as `::ffff:a.b.c.d`).
    #[napi(ts_type = "Uint8Array")]
    pub addresses: Unknown<'static>,
    /// 1 where the datagram was truncated.
    #[napi(ts_type = "Uint8Array")]
    pub truncated: Unknown<'static>,
    /// The kernel's count of datagrams dropped on this socket (`SO_RXQ_OVFL`), as of the last
    /// receive that reported it.
    pub drops: u32,
}

/// Allocates a `RecvBatch` for up to `maxDatagrams` datagrams of up to `slotSize` bytes, all in
/// JS-allocated memory. Reuse it for every receive: nothing is allocated per datagram.
#[napi(catch_unwind, ts_return_type = "RecvBatch")]
pub fn create_recv_batch<'env>(
    env: &'env Env,
    #[napi(ts_arg_type = "number")] max_datagrams: Unknown,
    #[napi(ts_arg_type = "number")] slot_size: Unknown,
) -> Result<Object<'env>> {
    let max_datagrams = required_uint(env, max_datagrams, "maxDatagrams", 1, 1 << 20)?;
    let slot_size = required_uint(env, slot_size, "slotSize", 1, MAX_SLOT)?;
    let n = max_datagrams as usize;
    let bytes = n
        .checked_mul(slot_size as usize)
        .filter(|b| *b <= 1 << 31)
        .ok_or_else(|| range_error(env, "maxDatagrams × slotSize must be at most 2 GiB"))?;
    let mut batch = Object::new(env)?;
    batch.set("count", 0u32)?;
    batch.set("maxDatagrams", max_datagrams)?;
    batch.set("slotSize", slot_size)?;
    batch.set("data", BufferSlice::copy_from(env, vec![0u8; bytes])?)?;
    batch.set("lengths", Uint32ArraySlice::copy_from(env, vec![0u32; n])?)?;
    let offsets: Vec<u32> = (0..max_datagrams).map(|i| i * slot_size).collect();
    batch.set("offsets", Uint32ArraySlice::copy_from(env, offsets)?)?;
    batch.set("ports", Uint16ArraySlice::copy_from(env, vec![0u16; n])?)?;
    batch.set(
        "addresses",
        Uint8ArraySlice::copy_from(env, vec![0u8; 16 * n])?,
    )?;
    batch.set("truncated", Uint8ArraySlice::copy_from(env, vec![0u8; n])?)?;
    batch.set("drops", 0u32)?;
    Ok(batch)
}

/// Per-socket memory for receiving: scratch headers, the convenient shape's slab, and the
/// per-datagram metadata of the last receive.
#[derive(Default)]
pub struct RecvMemory {
    pub scratch: RecvScratch,
    pub slab: Vec<u8>,
    pub metas: Vec<RecvMeta>,
}

/// A `RecvBatch` argument: an object (checked in full by [`check_batch`] / [`fill_batch`]).
pub fn batch_arg<'env>(env: &Env, value: Unknown<'env>) -> Result<Object<'env>> {
    if value.get_type()? != ValueType::Object || value.is_array()? {
        return Err(type_error(
            env,
            "batch must be a RecvBatch made by createRecvBatch()",
        ));
    }
    Object::from_unknown(value)
}

/// Checks that `batch` has every field with the right type and room for at least one datagram,
/// so an event-driven receive cannot start with a batch it could never fill.
pub fn check_batch(env: &Env, batch: &Object) -> Result<()> {
    BatchFields::read(env, batch).map(|_| ())
}

/// The fields of a `RecvBatch`, read and checked.
struct BatchFields<'a> {
    slot_size: usize,
    entries: usize,
    data: &'a mut [u8],
    lengths: &'a mut [u32],
    offsets: &'a mut [u32],
    ports: &'a mut [u16],
    addresses: &'a mut [u8],
    truncated: &'a mut [u8],
}

impl<'a> BatchFields<'a> {
    fn read(env: &Env, batch: &Object<'a>) -> Result<Self> {
        let field = |name: &str| -> Result<Unknown<'a>> {
            match batch.get::<Unknown>(name)? {
                Some(v) if !matches!(v.get_type()?, ValueType::Undefined | ValueType::Null) => {
                    Ok(v)
                }
                _ => Err(type_error(
                    env,
                    format!("batch.{name} is missing: make batches with createRecvBatch()"),
                )),
            }
        };
        let wrong =
            |name: &str, kind: &str| type_error(env, format!("batch.{name} must be a {kind}"));
        let slot_size = optional_uint(
            env,
            Some(field("slotSize")?),
            "batch.slotSize",
            f64::from(MAX_SLOT),
        )?
        .unwrap_or(0) as usize;
        let max = optional_uint(
            env,
            Some(field("maxDatagrams")?),
            "batch.maxDatagrams",
            f64::from(u32::MAX),
        )?
        .unwrap_or(0) as usize;
        let data_value = field("data")?;
        let data = <&mut [u8]>::from_unknown(data_value).map_err(|_| wrong("data", "Buffer"))?;
        let lengths = <&mut [u32]>::from_unknown(field("lengths")?)
            .map_err(|_| wrong("lengths", "Uint32Array"))?;
        let offsets = <&mut [u32]>::from_unknown(field("offsets")?)
            .map_err(|_| wrong("offsets", "Uint32Array"))?;
        let ports = <&mut [u16]>::from_unknown(field("ports")?)
            .map_err(|_| wrong("ports", "Uint16Array"))?;
        let addresses = <&mut [u8]>::from_unknown(field("addresses")?)
            .map_err(|_| wrong("addresses", "Uint8Array"))?;
        let truncated = <&mut [u8]>::from_unknown(field("truncated")?)
            .map_err(|_| wrong("truncated", "Uint8Array"))?;
        let entries = max
            .min(lengths.len())
            .min(offsets.len())
            .min(ports.len())
            .min(addresses.len() / 16)
            .min(truncated.len());
        if slot_size == 0 || entries == 0 || data.len() < slot_size {
            // A detached `data` reads as empty: refuse rather than "receive" nothing forever.
            return Err(type_error(
                env,
                "batch has no room for a datagram (slotSize 0, arrays too short, or data detached)",
            ));
        }
        Ok(BatchFields {
            slot_size,
            entries,
            data,
            lengths,
            offsets,
            ports,
            addresses,
            truncated,
        })
    }
}

/// Who is receiving: a direct call (errors are thrown) or event delivery (errors caused by
/// earlier sends are skipped, so a dead peer cannot crash a receiving process).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    Call,
    Event,
}

/// What a receive into a batch found.
pub struct BatchFill {
    pub count: usize,
    pub drops: Option<u32>,
}

/// Receives (non-blocking) into a `RecvBatch` object and fills its arrays.
pub fn fill_batch(
    env: &Env,
    batch: &Object,
    fd: i32,
    memory: &mut RecvMemory,
    gro: bool,
    mode: ReceiveMode,
) -> Result<BatchFill> {
    let RecvMemory { scratch, metas, .. } = memory;
    let BatchFields {
        slot_size,
        entries,
        data,
        lengths,
        offsets,
        ports,
        addresses,
        truncated,
    } = BatchFields::read(env, batch)?;
    // With GRO a slot may hold up to 64 coalesced datagrams of up to 64 KiB in all: use 64 KiB
    // slots, and few enough that every split datagram has an entry.
    let (slot_size, slots) = if gro && data.len() >= MAX_SLOT as usize {
        let slot = MAX_SLOT as usize;
        (
            slot,
            (entries / mmsg_core::MAX_GSO_SEGMENTS)
                .max(1)
                .min(data.len() / slot),
        )
    } else {
        (slot_size, entries.min(data.len() / slot_size.max(1)))
    };
    let slab = Slab {
        bytes: data,
        slot_size,
        max_datagrams: slots,
    };
    receive_slab(env, fd, scratch, slab, metas, mode)?;
    let mut drops = None;
    let mut entry = 0;
    for (slot, meta) in metas.iter().enumerate() {
        let (ip, port) = source_octets(meta.source);
        for (offset, length) in meta.datagrams() {
            if entry == entries {
                break; // cannot happen: slots were limited so every datagram has an entry
            }
            lengths[entry] = length as u32;
            offsets[entry] = (slot * slot_size + offset) as u32;
            truncated[entry] = u8::from(meta.truncated);
            ports[entry] = port;
            addresses[16 * entry..16 * entry + 16].copy_from_slice(&ip);
            entry += 1;
        }
        drops = meta.drops.or(drops);
    }
    let count = entry;
    let mut batch = *batch;
    batch.set("count", count as u32)?;
    if let Some(d) = drops {
        batch.set("drops", d)?;
    }
    Ok(BatchFill { count, drops })
}

/// One non-blocking `recvmmsg` into `slab`. "Nothing queued" is 0; so, on the event path, is an
/// ICMP error meant for an earlier *send* (connected sockets), which is not a receive failure
/// (`tryRecv`/`tryRecvBatch` report it).
fn receive_slab(
    env: &Env,
    fd: i32,
    scratch: &mut RecvScratch,
    slab: Slab<'_>,
    metas: &mut Vec<RecvMeta>,
    mode: ReceiveMode,
) -> Result<usize> {
    match scratch.recv_slab(fd, slab, mmsg_core::recv::MSG_DONTWAIT, None, metas) {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
        Err(e) if mode == ReceiveMode::Event && mmsg_core::errno::is_peer_error(&e) => Ok(0),
        Err(e) => Err(system_error(env, &e, "recvmmsg", BatchPosition::default())),
    }
}

fn source_octets(source: Option<SocketAddr>) -> ([u8; 16], u16) {
    match source {
        Some(SocketAddr::V4(v4)) => (v4.ip().to_ipv6_mapped().octets(), v4.port()),
        Some(SocketAddr::V6(v6)) => (v6.ip().octets(), v6.port()),
        None => ([0; 16], 0),
    }
}

/// Receives (non-blocking) up to `max` datagrams of up to `slot` bytes into scratch memory and
/// copies each into its own JS Buffer. Returns the JS array and the drop counter seen.
pub fn receive_convenient<'env>(
    env: &'env Env,
    fd: i32,
    memory: &mut RecvMemory,
    max: usize,
    slot: usize,
    gro: bool,
    mode: ReceiveMode,
) -> Result<(Option<napi::bindgen_prelude::Array<'env>>, Option<u32>)> {
    let RecvMemory {
        scratch,
        slab,
        metas,
    } = memory;
    // Coalesced GRO groups need whole 64 KiB slots.
    let slot = if gro { MAX_SLOT as usize } else { slot };
    if slab.len() < max * slot {
        slab.resize(max * slot, 0);
    }
    let slots = Slab {
        bytes: slab,
        slot_size: slot,
        max_datagrams: max,
    };
    if receive_slab(env, fd, scratch, slots, metas, mode)? == 0 {
        return Ok((None, None));
    }
    let mut list = env.create_array(0)?;
    let mut drops = None;
    let mut index = 0;
    for (i, meta) in metas.iter().enumerate() {
        for (offset, length) in meta.datagrams() {
            let start = i * slot + offset;
            let mut item = Object::new(env)?;
            item.set(
                "data",
                BufferSlice::copy_from(env, &slab[start..start + length])?,
            )?;
            set_source(&mut item, meta.source)?;
            item.set("truncated", meta.truncated)?;
            list.set(index, item)?;
            index += 1;
        }
        drops = meta.drops.or(drops);
    }
    Ok((Some(list), drops))
}

fn set_source(item: &mut Object, source: Option<SocketAddr>) -> Result<()> {
    match source {
        Some(addr) => {
            item.set("address", addr.ip().to_string())?;
            item.set("port", u32::from(addr.port()))?;
            item.set("family", if addr.is_ipv4() { "IPv4" } else { "IPv6" })?;
        }
        None => {
            item.set("address", "")?;
            item.set("port", 0u32)?;
            item.set("family", "")?;
        }
    }
    Ok(())
}

/// The `recvmmsg(2)` system call on any datagram socket descriptor, into buffers the caller
/// owns: datagram `i` lands in `buffers[i]`. `flags` such as `MSG_DONTWAIT` and
/// `MSG_WAITFORONE` pass through, as does the timeout (in milliseconds; recvmmsg checks it only
/// after each datagram, see the man page). Like the call, a blocking descriptor blocks, and an
/// error (`EAGAIN` included) is thrown as a system error when nothing was received.
#[napi(
    catch_unwind,
    ts_args_type = "fd: number, buffers: Uint8Array[], flags?: number, timeoutMs?: number"
)]
pub fn recvmmsg(
    env: Env,
    fd: Unknown,
    buffers: Unknown,
    flags: Option<Unknown>,
    timeout_ms: Option<Unknown>,
) -> Result<Vec<ReceivedInfo>> {
    let fd = fd_arg(&env, fd)?;
    let flags = optional_uint(&env, flags, "flags", i32::MAX as f64)?.unwrap_or(0) as i32;
    if flags & !mmsg_core::recv::KNOWN_RECV_FLAGS != 0 {
        return Err(range_error(
            &env,
            format!(
                "flags has unknown bits 0x{:x}",
                flags & !mmsg_core::recv::KNOWN_RECV_FLAGS
            ),
        ));
    }
    let timeout = optional_uint(&env, timeout_ms, "timeoutMs", u32::MAX as f64)?
        .map(|ms| Duration::from_millis(u64::from(ms)));
    if !buffers.is_array()? {
        return Err(type_error(
            &env,
            format!(
                "buffers must be an array of Uint8Arrays; got {}",
                type_name(buffers.get_type().unwrap_or(ValueType::Unknown))
            ),
        ));
    }
    let list = napi::bindgen_prelude::Array::from_unknown(buffers)?;
    let mut slices: Vec<&mut [u8]> = Vec::with_capacity(list.len() as usize);
    for i in 0..list.len().min(mmsg_core::MAX_MESSAGES_PER_CALL as u32) {
        let item: Unknown = list
            .get::<Unknown>(i)?
            .ok_or_else(|| type_error(&env, format!("buffers[{i}] is missing")))?;
        // Validate (type, detached) through the shared path, then take it writable.
        let _ = uint8_view(&env, item, format_args!("buffers[{i}]"))?;
        slices.push(<&mut [u8]>::from_unknown(item)?);
    }
    let mut scratch = RecvScratch::new();
    let mut metas = Vec::new();
    scratch
        .recv_into(fd, &mut slices, flags, timeout, &mut metas)
        .map_err(|e| {
            system_error(
                &env,
                &e,
                "recvmmsg",
                BatchPosition {
                    index: Some(0),
                    sent: None,
                },
            )
        })?;
    Ok(metas
        .iter()
        .map(|m| {
            let (address, port, family) = match m.source {
                Some(a) => (
                    a.ip().to_string(),
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
