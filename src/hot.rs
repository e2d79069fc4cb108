//! The hot-path entry points (`socketSendDatagram`, `socketSendSpans`, `socketSendViews`,
//! `socketRecvSlab`) as plain N-API callbacks.
//!
//! Why not `#[napi]` functions: napi-rs (3.16) opens a native-borrow scope around every
//! generated callback that takes arguments (an `Arc<Mutex<..>>` allocation, thread-local pushes
//! and pops, a deferred release after the return value is converted), whether or not anything
//! is borrowed. On a one-datagram send that was about 80 ns of the 250 ns spent outside the
//! kernel (perf, `trySend([buffer], port, address)` in a loop). These take only numbers
//! and typed arrays, borrow no class instance, and hold no slice while JavaScript can run (the
//! bodies in `socket.rs` follow the two phases), so that scope protects nothing here.
//!
//! `#[js_function(N)]` (napi-derive's compat macro) generates the `extern "C"` callback: it
//! reads up to N arguments with one `napi_get_cb_info` (missing ones read as `undefined`) and
//! catches panics; `guarded` in the bodies maps every failure to one JS exception.
//! `hotPaths()` hands the functions to `native.js`, which adds them to the binding's exports.

use napi::bindgen_prelude::{FunctionCallContext, JsObjectValue, Object, Unknown};
use napi::{CallContext, Env, Result};
use napi_derive::{js_function, napi};

use crate::errors::guarded;
use crate::socket::{
    send_spans_of, socket_recv_slab, socket_send_datagram, socket_send_spans, SpanArguments,
};

/// Arguments of `socketSendViews` before its views.
const VIEWS_FROM: usize = 7;

/// `socketSendDatagram(socket, view, destination, flags?)`: see
/// [`socket_send_datagram`]. `flags` may be left out (0), which spares its conversion.
#[js_function(4)]
fn send_datagram(ctx: CallContext) -> Result<u32> {
    let flags = if ctx.length > 3 {
        ctx.get::<u32>(3)?
    } else {
        0
    };
    socket_send_datagram(
        *ctx.env,
        ctx.get::<u32>(0)?,
        ctx.get::<Unknown>(1)?,
        ctx.get::<u32>(2)?,
        flags,
    )
}

/// `socketSendSpans(socket, stores, storesAreViews, spans, destination, destinations, tos,
/// from, flags)`: see [`socket_send_spans`].
#[js_function(9)]
fn send_spans(ctx: CallContext) -> Result<u32> {
    socket_send_spans(
        *ctx.env,
        ctx.get::<u32>(0)?,
        ctx.get::<Unknown>(1)?,
        ctx.get::<bool>(2)?,
        ctx.get::<Unknown>(3)?,
        ctx.get::<u32>(4)?,
        ctx.get::<Unknown>(5)?,
        ctx.get::<Unknown>(6)?,
        ctx.get::<u32>(7)?,
        ctx.get::<u32>(8)?,
    )
}

/// `socketSendViews(socket, spans, destination, destinations, tos, from, flags, ...views)`:
/// `socketSendSpans` with `storesAreViews`, the views passed as the call's own arguments.
/// napi-rs's closure trampoline hands over every argument with two `napi_get_cb_info` calls
/// (one for the count, one for the values) and two small allocations per call, where reading
/// the views out of an array costs one `napi_get_element` each (about 30 ns a datagram when
/// every datagram is its own `Buffer`). A variable argument count, hence a closure function
/// (no borrow scope either).
fn send_views(ctx: FunctionCallContext) -> Result<u32> {
    let env = *ctx.env;
    // Sized up front (collecting a `Result` iterator would grow the vector by doubling).
    let mut args = Vec::with_capacity(ctx.length());
    for i in 0..ctx.length() {
        args.push(ctx.get::<Unknown>(i)?);
    }
    guarded(&env, || {
        if args.len() < VIEWS_FROM {
            return Err(crate::errors::Failure::Type(format!(
                "socketSendViews takes at least {VIEWS_FROM} arguments; got {}",
                args.len()
            )));
        }
        let number = |i: usize, what: &str| crate::read::uint(args[i], what, u32::MAX);
        send_spans_of(
            &args[VIEWS_FROM..],
            true,
            SpanArguments {
                socket: number(0, "socket")?,
                spans: args[1],
                destination: number(2, "destination")?,
                destinations: args[3],
                tos: args[4],
                from: number(5, "from")?,
                flags: number(6, "flags")?,
            },
        )
    })
}

/// `socketRecvSlab(socket, slab, capacity, slotSize, metadata)`: see [`socket_recv_slab`].
#[js_function(5)]
fn recv_slab(ctx: CallContext) -> Result<u32> {
    socket_recv_slab(
        *ctx.env,
        ctx.get::<u32>(0)?,
        ctx.get::<Unknown>(1)?,
        ctx.get::<u32>(2)?,
        ctx.get::<u32>(3)?,
        ctx.get::<bool>(4)?,
    )
}

/// The hot-path functions, as an object (`native.js` copies them onto the binding's exports).
#[napi(ts_return_type = "{
  /**
   * Sends `view` as one datagram from socket `socket` (its `id`) to destination id
   * `destination` (from `addDestination`; `0xffffffff`: the connected peer). Returns 1, or 0 if
   * the socket would block; a failure throws with `index` 0 and `sent` 0.
   */
  socketSendDatagram(socket: number, view: Uint8Array, destination: number, flags?: number): number
  /**
   * Sends one-piece datagrams described as spans of stores, to destination ids (from
   * `addDestination`; `0xffffffff`: the connected peer): `destination` for all, or one per
   * datagram in `destinations`; from datagram `from` on. This is the batch path of the TS
   * layer: it reads each `Buffer`'s store, offset and length in JavaScript (cheap there,
   * several N-API calls per view here), so this call reads a handful of stores and one
   * `Uint32Array` instead of one object per datagram.
   *
   * - `stores`: the `ArrayBuffer`s the datagrams lie in, or with `storesAreViews` the
   *   `Uint8Array`s themselves (each standing for its own bytes);
   * - `spans`: three numbers per datagram: store index, byte offset, length (the length the
   *   caller took: a store shrunk or detached since fails that datagram instead of sending it
   *   short);
   * - `tos` (optional): a TOS byte / traffic class per datagram (0: the socket's own), sent as
   *   `IP_TOS` / `IPV6_TCLASS`.
   *
   * Returns datagrams sent (counted from 0; fewer: the socket would block). A failing
   * datagram throws with `index` and `sent`.
   */
  socketSendSpans(socket: number, stores: ArrayBuffer[] | Uint8Array[], storesAreViews: boolean, spans: Uint32Array, destination: number, destinations: Uint32Array | null, tos: Uint8Array | null, from: number, flags: number): number
  /**
   * `socketSendSpans` with the stores being views, passed as the call's own arguments after
   * `flags` (one N-API call reads them all, instead of one per array element).
   */
  socketSendViews(socket: number, spans: Uint32Array, destination: number, destinations: Uint32Array | null, tos: Uint8Array | null, from: number, flags: number, ...views: Uint8Array[]): number
  /**
   * Receives into `slab` (laid out by `NativeSocket.recvLayout(capacity, slotSize, metadata)`)
   * on socket `socket` (its `id`), without blocking; returns the datagrams received (0: none
   * queued). Datagram `i`: `data[i * slotSize..][..lengths[i]]`, sender `addresses[16i..16i+16]`
   * (IPv4 mapped), `ports[i]`, `scopeIds[i]`, `flags[i]` (1 truncated, 2 IPv6, 4 no address,
   * 8 `tos[i]` set, 16 `destinations[16i..]`/`interfaces[i]` set, 32 `timestamps[i]` set,
   * 64 destination IPv6); the metadata arrays exist when `metadata` (see `setReceiveMetadata`).
   */
  socketRecvSlab(socket: number, slab: Uint8Array, capacity: number, slotSize: number, metadata: boolean): number
}")]
pub fn hot_paths(env: &Env) -> Result<Object<'_>> {
    let mut functions = Object::new(env)?;
    functions.set_named_property(
        "socketSendDatagram",
        env.create_function::<(), u32>("socketSendDatagram", send_datagram)?,
    )?;
    functions.set_named_property(
        "socketSendSpans",
        env.create_function::<(), u32>("socketSendSpans", send_spans)?,
    )?;
    functions.set_named_property(
        "socketSendViews",
        env.create_function_from_closure::<(), u32, _>("socketSendViews", send_views)?,
    )?;
    functions.set_named_property(
        "socketRecvSlab",
        env.create_function::<(), u32>("socketRecvSlab", recv_slab)?,
    )?;
    Ok(functions)
}
