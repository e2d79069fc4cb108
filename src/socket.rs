//! `NativeSocket`: the thin native handle under `lib/udp.ts` (as `UDPWrap` is under Node's
//! `lib/dgram.js`). Every method has the same two phases:
//!
//! 1. read the arguments into plain values and [`View`]s (`read.rs`; user JS may run here);
//! 2. with no JS able to run: borrow the socket state, take each view's bytes as they are now,
//!    call the core, release the borrow; then map the result (`errors.rs`).
//!
//! No `RefCell` borrow outlives phase 2, so a re-entrant call from a getter finds the state
//! free, and a call made while it is borrowed (impossible without JS running) gets
//! `ERR_SOCKET_BUSY` instead of a panic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};

use mmsg_core::reactor::{Reactor, Readiness, Registration};
use mmsg_core::{
    Endpoint, Family, GsoSupport, PlanStop, RecvMetadata, SendPlan, SendStop, SockAddr,
    SocketOptions,
};
use napi::bindgen_prelude::{FromNapiValue, Function, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::JsValue;
use napi::{Env, Result, Status};
use napi_derive::napi;

use crate::errors::{guarded, Failure, Outcome};
use crate::read::{self, View};

/// Readiness bits passed to the `watch` callback.
const READABLE: u32 = 1;
const WRITABLE: u32 = 2;
const ERROR: u32 = 4;

type WakeFn = ThreadsafeFunction<u32, (), u32, Status, false>;

/// How readiness is watched: by a `uv_poll_t` on the JS thread's own libuv loop where the host
/// lends its libuv (Node, Electron: no thread hop, so no added latency), else by the shared
/// reactor thread (Bun, or `SENDMMSG_REACTOR=thread`).
enum Watcher {
    Loop(mmsg_core::LoopPoll),
    Thread(Registration),
}

impl Watcher {
    fn arm(&self, readable: bool, writable: bool) -> std::io::Result<()> {
        match self {
            Watcher::Loop(poll) => poll.arm(readable, writable),
            Watcher::Thread(registration) => registration.arm(readable, writable),
        }
    }
}

/// The socket's link to its watcher, made by `watch`.
struct Wake {
    // Dropped first: no notification can start after this.
    registration: Watcher,
    /// How the reactor thread (or a loop poll without `direct`) reaches JS.
    tsfn: Arc<Mutex<WakeFn>>,
    /// With a loop poll: the JS handler called straight from the poll callback (no extra loop
    /// turn). Dropped with the socket's state, on this thread, while the env is alive.
    direct: Option<Rc<mmsg_core::JsCallback>>,
    /// Whether the watcher currently keeps the event loop alive: ref/unref are only called when
    /// this changes (a receive loop re-arms after every wake-up).
    holds_loop: std::cell::Cell<bool>,
}

struct State {
    /// Field order: `wake` (the epoll registration) goes before `endpoint` closes the fd.
    wake: Option<Wake>,
    endpoint: Option<Endpoint>,
    /// Last destination parsed, so a batch to one peer parses its address once per call.
    last_destination: Option<(String, u16, SockAddr)>,
    /// Destinations parsed once by `addDestination`, named by index in `sendDatagram`.
    destinations: Vec<SockAddr>,
    refed: bool,
}

impl State {
    fn close(&mut self) {
        self.wake = None;
        self.endpoint = None;
    }
}

type Shared = Rc<RefCell<State>>;

thread_local! {
    /// Sockets of this thread's JS environment, closed when it is torn down (a worker exiting
    /// with sockets open).
    static LIVE: RefCell<Vec<Weak<RefCell<State>>>> = const { RefCell::new(Vec::new()) };
    static HOOKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

thread_local! {
    /// Sockets by id, for the hot-path functions (`socketSendDatagram`, `socketSendSpans`,
    /// `socketRecvSlab`, see `hot.rs`). Why not methods: napi-rs registers a borrow of `this`
    /// on every `&self` method call (`register_native_borrow_with_value` in napi-derive's
    /// generated code), on top of the per-call borrow scope `hot.rs` avoids.
    static BY_ID: RefCell<HashMap<u32, Weak<RefCell<State>>, BuildHasherDefault<IdHasher>>> =
        RefCell::new(HashMap::default());
}

/// Socket ids come from one process-wide counter, so an id carried to another thread (whose
/// registry is its own) finds nothing instead of another socket.
static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Hashes socket ids (small distinct integers) by one multiplication.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Registers `state` under an id no live socket has.
fn register(state: &Shared) -> u32 {
    BY_ID.with(|map| {
        let mut map = map.borrow_mut();
        loop {
            let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // 0 is never an id; after 2^32 sockets, skip ids still in use.
            if id != 0 && !map.contains_key(&id) {
                map.insert(id, Rc::downgrade(state));
                return id;
            }
        }
    })
}

/// The socket registered under `id`, as `ERR_SOCKET_DGRAM_NOT_RUNNING` if it is gone.
fn by_id(id: u32) -> Outcome<Shared> {
    BY_ID
        .with(|map| map.borrow().get(&id).and_then(Weak::upgrade))
        .ok_or(Failure::Closed)
}

fn track(env: &Env, state: &Shared) -> Result<()> {
    LIVE.with(|live| {
        let mut live = live.borrow_mut();
        live.retain(|w| w.strong_count() > 0);
        live.push(Rc::downgrade(state));
    });
    if !HOOKED.with(|h| h.replace(true)) {
        env.add_env_cleanup_hook((), |_| {
            let sockets: Vec<_> = LIVE.with(|live| live.borrow_mut().drain(..).collect());
            for socket in sockets.iter().filter_map(Weak::upgrade) {
                if let Ok(mut state) = socket.try_borrow_mut() {
                    state.close();
                }
            }
            HOOKED.with(|h| h.set(false));
        })?;
    }
    Ok(())
}

/// An address as `dgram`'s `socket.address()` returns it.
#[napi(object)]
pub struct AddressInfo {
    pub address: String,
    pub family: String,
    pub port: u32,
}

impl From<SocketAddr> for AddressInfo {
    fn from(addr: SocketAddr) -> Self {
        let (address, family) = match addr {
            SocketAddr::V4(v4) => (v4.ip().to_string(), "IPv4"),
            SocketAddr::V6(v6) if v6.scope_id() != 0 => {
                (format!("{}%{}", v6.ip(), v6.scope_id()), "IPv6")
            }
            SocketAddr::V6(v6) => (v6.ip().to_string(), "IPv6"),
        };
        AddressInfo {
            address,
            family: family.to_owned(),
            port: u32::from(addr.port()),
        }
    }
}

/// Internal: one UDP socket. Used only by `lib/udp.ts`; see the module comment.
#[napi]
pub struct NativeSocket {
    state: Shared,
    /// This socket's id for the hot-path free functions (see `BY_ID`).
    id: u32,
}

impl Drop for NativeSocket {
    fn drop(&mut self) {
        // `try_with`: at thread exit the registry may be gone already.
        let _ = BY_ID.try_with(|map| map.borrow_mut().remove(&self.id));
    }
}

impl NativeSocket {
    fn wrap(env: &Env, endpoint: Endpoint) -> Result<NativeSocket> {
        let state = Rc::new(RefCell::new(State {
            wake: None,
            endpoint: Some(endpoint),
            last_destination: None,
            destinations: Vec::new(),
            refed: true,
        }));
        track(env, &state)?;
        let id = register(&state);
        Ok(NativeSocket { state, id })
    }

    /// Phase 2: runs `body` with the socket's endpoint borrowed. No JS may run inside.
    fn with_endpoint<T>(&self, body: impl FnOnce(&mut State) -> Outcome<T>) -> Outcome<T> {
        with_state(&self.state, body)
    }
}

/// [`NativeSocket::with_endpoint`] for a socket found by id.
fn with_state<T>(state: &Shared, body: impl FnOnce(&mut State) -> Outcome<T>) -> Outcome<T> {
    let mut state = state.try_borrow_mut().map_err(|_| Failure::Busy)?;
    if state.endpoint.is_none() {
        return Err(Failure::Closed);
    }
    body(&mut state)
}

fn endpoint(state: &mut State) -> &mut Endpoint {
    // `with_endpoint` checked it is there.
    match state.endpoint.as_mut() {
        Some(endpoint) => endpoint,
        None => unreachable_closed(),
    }
}

#[cold]
fn unreachable_closed() -> ! {
    // Only reachable if `with_endpoint`'s check is bypassed; caught by `guarded` if so.
    panic!("endpoint missing after check")
}

/// Parses a destination for a socket of `family`, reusing the last one parsed.
fn destination(
    cache: &mut Option<(String, u16, SockAddr)>,
    family: Family,
    address: &str,
    port: u16,
) -> Outcome<SockAddr> {
    if let Some((text, last_port, parsed)) = cache {
        if text == address && *last_port == port {
            return Ok(*parsed);
        }
    }
    let parsed = mmsg_core::addr::parse_socket_addr(address, port)
        .and_then(|a| mmsg_core::destination_for_family(family, a))
        .map_err(|e| Failure::Type(e.to_string()))?;
    *cache = Some((address.to_owned(), port, parsed));
    Ok(parsed)
}

fn family_of(family: u32) -> Outcome<Family> {
    match family {
        4 => Ok(Family::V4),
        6 => Ok(Family::V6),
        _ => Err(Failure::Range(format!(
            "family must be 4 or 6; got {family}"
        ))),
    }
}

fn bind_address(family: Family, address: &str, port: u32) -> Outcome<SockAddr> {
    let port = u16::try_from(port).map_err(|_| Failure::Range("port > 65535".into()))?;
    let parsed = mmsg_core::addr::parse_socket_addr(address, port)
        .map_err(|e| Failure::Type(e.to_string()))?;
    mmsg_core::destination_for_family(family, parsed).map_err(|e| Failure::Type(e.to_string()))
}

#[napi]
impl NativeSocket {
    /// `new NativeSocket(family, reuseAddr, reusePort, ipv6Only, sendBufferSize, recvBufferSize)`:
    /// `ipv6Only` is -1 (system default), 0 or 1; buffer sizes 0 mean "leave as is".
    #[napi(constructor)]
    pub fn new(
        env: Env,
        family: u32,
        reuse_addr: bool,
        reuse_port: bool,
        ipv6_only: i32,
        send_buffer_size: u32,
        recv_buffer_size: u32,
    ) -> Result<Self> {
        let endpoint = guarded(&env, || {
            let options = SocketOptions {
                reuse_addr,
                reuse_port,
                ipv6_only: (ipv6_only >= 0).then_some(ipv6_only > 0),
                send_buffer_size: (send_buffer_size > 0).then_some(send_buffer_size),
                recv_buffer_size: (recv_buffer_size > 0).then_some(recv_buffer_size),
            };
            Endpoint::new(family_of(family)?, &options).map_err(|e| Failure::system(e, "socket"))
        })?;
        NativeSocket::wrap(&env, endpoint)
    }

    /// Wraps a private duplicate of a UDP socket descriptor (checked: datagram, IPPROTO_UDP).
    #[napi(factory)]
    pub fn from_fd(env: Env, fd: i32) -> Result<Self> {
        let endpoint = guarded(&env, || {
            Endpoint::from_fd(fd).map_err(|e| Failure::system(e, "fromFd"))
        })?;
        NativeSocket::wrap(&env, endpoint)
    }

    /// 4 or 6.
    #[napi]
    pub fn family(&self, env: Env) -> Result<u32> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                Ok(match endpoint(s).family() {
                    Family::V4 => 4,
                    Family::V6 => 6,
                })
            })
        })
    }

    /// A descriptor for this socket that the caller may use or close (a duplicate).
    #[napi]
    pub fn fd(&self, env: Env) -> Result<i32> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .public_fd()
                    .map_err(|e| Failure::system(e, "dup"))
            })
        })
    }

    /// This socket's id for `socketSendDatagram` / `socketRecvSlab`.
    #[napi(getter)]
    pub fn id(&self) -> u32 {
        self.id
    }

    #[napi]
    pub fn is_closed(&self) -> bool {
        match self.state.try_borrow() {
            Ok(state) => state.endpoint.is_none(),
            Err(_) => false,
        }
    }

    #[napi]
    pub fn bind(&self, env: Env, address: String, port: u32) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                let e = endpoint(s);
                let at = bind_address(e.family(), &address, port)?;
                e.socket().bind(at).map_err(|e| Failure::system(e, "bind"))
            })
        })
    }

    #[napi]
    pub fn connect(&self, env: Env, address: String, port: u32) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                let e = endpoint(s);
                let at = bind_address(e.family(), &address, port)?;
                e.socket()
                    .connect(at)
                    .map_err(|e| Failure::system(e, "connect"))
            })
        })
    }

    #[napi]
    pub fn disconnect(&self, env: Env) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .disconnect()
                    .map_err(|e| Failure::system(e, "disconnect"))
            })
        })
    }

    #[napi]
    pub fn local_address(&self, env: Env) -> Result<AddressInfo> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .local_addr()
                    .map(AddressInfo::from)
                    .map_err(|e| Failure::system(e, "getsockname"))
            })
        })
    }

    #[napi]
    pub fn remote_address(&self, env: Env) -> Result<AddressInfo> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .peer_addr()
                    .map(AddressInfo::from)
                    .map_err(|e| Failure::system(e, "getpeername"))
            })
        })
    }

    /// Closes the socket (idempotent). Notifications stop before the descriptor closes.
    #[napi]
    pub fn close(&self, env: Env) -> Result<()> {
        guarded(&env, || {
            let mut state = self.state.try_borrow_mut().map_err(|_| Failure::Busy)?;
            state.close();
            Ok(())
        })
    }

    /// Sends a batch.
    ///
    /// - `views`: the pieces (`Uint8Array`s), in order;
    /// - `pieceCounts`: pieces per message (`null`: one piece per message);
    /// - `messageDestinations`: index into `addresses`/`ports` per message, `0xFFFFFFFF` for the
    ///   connected peer (`null`: all to destination 0, or to the connected peer if none);
    /// - `addresses`/`ports`: IP literals and ports of the destinations;
    /// - `from`: first message to send (to resume a batch); `flags`: `sendmmsg` flags;
    /// - `lengths` (optional): each view's length when the caller took it (the TS layer reads
    ///   user objects before this call, and a getter that ran since may have shrunk a view:
    ///   that view's message then fails instead of going out short).
    ///
    /// - `tos` (optional): a TOS byte / traffic class per message (DSCP << 2 | ECN; 0: the
    ///   socket's own), sent as `IP_TOS` / `IPV6_TCLASS` control messages.
    /// - `segmentSizes` (optional): a GSO segment size per message (0: a plain datagram); a
    ///   message with one leaves as datagrams of that size (the last may be shorter);
    /// - `sourceAddresses` / `interfaceIndexes` (optional): per message a source address (`''`:
    ///   the route's) and an interface index (0: the route's), sent as `IP_PKTINFO` /
    ///   `IPV6_PKTINFO`;
    /// - `fromSegment` (optional): datagrams of message `from` already sent (resuming inside a
    ///   message with a segment size); `progress` (optional, `Uint32Array`): receives in
    ///   `progress[0]` how many datagrams of the first unsent message went out, on return and
    ///   on failure alike.
    ///
    /// Returns messages sent so far (counted from 0; fewer than the batch: the socket would
    /// block). A failing message throws with `index` and `sent`.
    #[napi(
        ts_args_type = "views: Uint8Array[], pieceCounts: Uint32Array | null, messageDestinations: Uint32Array | null, addresses: string[], ports: number[], from: number, flags: number, lengths?: Uint32Array | null, tos?: Uint8Array | null, segmentSizes?: Uint16Array | null, sourceAddresses?: string[] | null, interfaceIndexes?: Uint32Array | null, fromSegment?: number, progress?: Uint32Array | null"
    )]
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        env: Env,
        views: Unknown,
        piece_counts: Unknown,
        message_destinations: Unknown,
        addresses: Unknown,
        ports: Unknown,
        from: Unknown,
        flags: Unknown,
        lengths: Unknown,
        tos: Unknown,
        segment_sizes: Unknown,
        source_addresses: Unknown,
        interface_indexes: Unknown,
        from_segment: Unknown,
        progress: Option<Unknown>,
    ) -> Result<u32> {
        guarded(&env, || {
            // Phase 1: read everything (user JS may run).
            let views = read::views(views, "views")?;
            let lengths = read::u32_list(lengths, "lengths")?;
            let tos = read::u8_list(tos, "tos")?;
            let metadata = SendMetadata::read(
                segment_sizes,
                source_addresses,
                interface_indexes,
                from_segment,
                progress,
            )?;
            let piece_counts = read::u32_list(piece_counts, "pieceCounts")?;
            let message_destinations = read::u32_list(message_destinations, "messageDestinations")?;
            let addresses = read::strings(addresses, "addresses")?;
            let ports = read::uints(ports, "ports", 65535)?;
            let from = read::uint(from, "from", u32::MAX)? as usize;
            let flags = send_flags(read::uint(flags, "flags", i32::MAX as u32)?)?;
            if addresses.len() != ports.len() {
                return Err(Failure::Range(
                    "addresses and ports must have the same length".into(),
                ));
            }
            let piece_lengths = read::planned_lengths(&views, lengths)?;
            // Phase 2: no JS from here until the result is mapped.
            self.with_endpoint(|s| {
                let family = endpoint(s).family();
                let mut destinations = Vec::with_capacity(addresses.len());
                for (address, &port) in addresses.iter().zip(&ports) {
                    destinations.push(destination(
                        &mut s.last_destination,
                        family,
                        address,
                        port as u16,
                    )?);
                }
                let mut plan = SendPlan::new(
                    piece_lengths,
                    &piece_counts,
                    message_destinations,
                    destinations,
                )
                .map_err(|e| Failure::Range(e.to_string()))?;
                plan.set_tos(tos)
                    .map_err(|e| Failure::Range(e.to_string()))?;
                if metadata.is_empty() {
                    return send_plan(endpoint(s), &plan, &views, from, flags);
                }
                metadata.send(endpoint(s), plan, &views, from, flags)
            })
        })
    }

    /// Sends `payload` as datagrams of `segmentSize` bytes (the last may be shorter), with GSO
    /// where the kernel supports it. `address` `null`: the connected peer. Returns datagrams
    /// sent; a failing one throws with `index` and `sent`.
    #[napi(
        ts_args_type = "payload: Uint8Array, segmentSize: number, address: string | null, port: number, flags: number"
    )]
    pub fn send_segmented(
        &self,
        env: Env,
        payload: Unknown,
        segment_size: Unknown,
        address: Unknown,
        port: Unknown,
        flags: Unknown,
    ) -> Result<u32> {
        guarded(&env, || {
            let payload = read::view(payload, &|| "payload".to_owned())?;
            let segment_size = read::uint(segment_size, "segmentSize", 65535)? as usize;
            if segment_size == 0 {
                return Err(Failure::Range("segmentSize must be at least 1".into()));
            }
            let address = read::optional_string(address, "address")?;
            let port = read::uint(port, "port", 65535)? as u16;
            let flags = send_flags(read::uint(flags, "flags", i32::MAX as u32)?)?;
            self.with_endpoint(|s| {
                let family = endpoint(s).family();
                let to = match &address {
                    Some(text) => Some(destination(&mut s.last_destination, family, text, port)?),
                    None => None,
                };
                let bytes = payload.bytes_now();
                if bytes.len() < payload.planned_len as usize {
                    return Err(Failure::ViewChanged { index: 0, sent: 0 });
                }
                let report = endpoint(s).send_segmented(
                    &bytes[..payload.planned_len as usize],
                    segment_size,
                    to,
                    flags,
                );
                match report.stop {
                    mmsg_core::SendStop::Failed {
                        index,
                        error,
                        syscall,
                    } => Err(Failure::System {
                        error,
                        syscall,
                        index: Some(index),
                        sent: Some(report.sent),
                    }),
                    _ => Ok(report.sent as u32),
                }
            })
        })
    }

    /// Datagrams taken from the kernel but not yet delivered (split off a GRO group).
    #[napi]
    pub fn buffered(&self, env: Env) -> Result<u32> {
        guarded(&env, || {
            self.with_endpoint(|s| Ok(endpoint(s).buffered() as u32))
        })
    }

    /// The kernel's drop count for this socket (`SO_RXQ_OVFL`).
    #[napi]
    pub fn drops(&self, env: Env) -> Result<u32> {
        guarded(&env, || self.with_endpoint(|s| Ok(endpoint(s).drops())))
    }

    /// 0: not known, 1: available, 2: unavailable.
    #[napi]
    pub fn gso(&self, env: Env) -> Result<u32> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                Ok(match endpoint(s).gso() {
                    GsoSupport::Unknown => 0,
                    GsoSupport::Available => 1,
                    GsoSupport::Unavailable => 2,
                })
            })
        })
    }

    /// Per-datagram metadata: TOS/ECN (`IP_RECVTOS`/`IPV6_RECVTCLASS`), destination and
    /// interface (`IP_PKTINFO`/`IPV6_RECVPKTINFO`), kernel timestamps (`SO_TIMESTAMPNS`).
    #[napi]
    pub fn set_receive_metadata(
        &self,
        env: Env,
        tos: bool,
        packet_info: bool,
        timestamps: bool,
    ) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .set_receive_metadata(RecvMetadata {
                        tos,
                        packet_info,
                        timestamps,
                    })
                    .map_err(|e| Failure::system(e, "setsockopt"))
            })
        })
    }

    #[napi]
    pub fn set_gro(&self, env: Env, on: bool) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .set_gro(on)
                    .map_err(|e| Failure::system(e, "setsockopt"))
            })
        })
    }

    /// Registers `callback(bits)` (1 readable, 2 writable, 4 error) to be called on this
    /// thread when the socket becomes ready after `arm`. Once per socket.
    /// `onLoop`: watch with a `uv_poll_t` on this thread's libuv loop if the host has libuv
    /// (the caller says no for hosts whose libuv functions are stubs, such as Bun's).
    ///
    /// Returns whether interest stays armed after a notification (the loop poll, level-triggered:
    /// `arm(false, false)` stops it) rather than being one-shot (the reactor thread).
    #[napi(ts_args_type = "callback: (bits: number) => void, onLoop: boolean")]
    pub fn watch(&self, env: Env, callback: Function<u32, ()>, on_loop: bool) -> Result<bool> {
        let tsfn: WakeFn = callback
            .build_threadsafe_function::<u32>()
            .callee_handled::<false>()
            .build()?;
        guarded(&env, || {
            let mut state = self.state.try_borrow_mut().map_err(|_| Failure::Busy)?;
            let fd = match state.endpoint.as_ref() {
                Some(e) => e.socket().raw_fd(),
                None => return Err(Failure::Closed),
            };
            if state.wake.is_some() {
                return Err(Failure::Range("watch() was already called".into()));
            }
            let tsfn = Arc::new(Mutex::new(tsfn));
            let notifier = Arc::clone(&tsfn);
            let notify = move |bits: u32| {
                let notifier = notifier.lock().unwrap_or_else(|p| p.into_inner());
                notifier.call(bits, ThreadsafeFunctionCallMode::NonBlocking);
            };
            let event_loop = if !on_loop {
                None
            } else {
                env.get_uv_event_loop().ok()
            };
            // SAFETY (both blocks): `env.raw()` is this call's environment and `l` what
            // napi_get_uv_event_loop returned for it, so both belong to this (the JS) thread;
            // `callback` is a function value of the current handle scope. The LoopPoll and the
            // JsCallback live in this socket's state, are used and dropped on this thread only
            // (State is neither Send nor Sync), and go at the latest in the environment's
            // cleanup hook. These are the binding's only `unsafe`: the core cannot obtain the
            // loop or the env by itself.
            let direct = event_loop
                .and_then(|_| unsafe {
                    mmsg_core::JsCallback::new(env.raw().cast(), callback.raw().cast())
                })
                .map(Rc::new);
            let on_loop = event_loop.and_then(|l| {
                let handler: Box<dyn Fn(u32)> = match &direct {
                    Some(js) => {
                        let js = Rc::downgrade(js);
                        Box::new(move |bits| {
                            if let Some(js) = js.upgrade() {
                                js.call(bits)
                            }
                        })
                    }
                    None => Box::new(notify.clone()),
                };
                unsafe { mmsg_core::LoopPoll::new(l.cast(), fd, handler) }
            });
            let direct = if on_loop.is_some() { direct } else { None };
            let registration = match on_loop {
                Some(poll) => Watcher::Loop(poll.map_err(|e| Failure::system(e, "uv_poll_init"))?),
                None => {
                    let reactor =
                        Reactor::global().map_err(|e| Failure::system(e, "epoll_create"))?;
                    Watcher::Thread(
                        reactor
                            .register(fd, move |ready: Readiness| {
                                notify(
                                    (u32::from(ready.readable) * READABLE)
                                        | (u32::from(ready.writable) * WRITABLE)
                                        | (u32::from(ready.error) * ERROR),
                                )
                            })
                            .map_err(|e| Failure::system(e, "epoll_ctl"))?,
                    )
                }
            };
            let level_triggered = matches!(registration, Watcher::Loop(_));
            state.wake = Some(Wake {
                registration,
                tsfn,
                direct,
                holds_loop: std::cell::Cell::new(true),
            });
            Ok(level_triggered)
        })
        .and_then(|level| self.apply_ref(&env, false).map(|()| level))
    }

    /// Asks for one notification when readable and/or writable (both false: none). While armed
    /// (and `ref`), the socket keeps the event loop alive.
    #[napi]
    pub fn arm(&self, env: Env, readable: bool, writable: bool) -> Result<()> {
        guarded(&env, || {
            let state = self.state.try_borrow().map_err(|_| Failure::Busy)?;
            match state.wake.as_ref() {
                Some(wake) => wake
                    .registration
                    .arm(readable, writable)
                    .map_err(|e| Failure::system(e, "uv_poll_start")),
                None => Err(Failure::Closed),
            }
        })?;
        self.apply_ref(&env, readable || writable)
    }

    /// `ref()`/`unref()`: whether an armed socket keeps the process alive.
    #[napi]
    pub fn set_ref(&self, env: Env, on: bool) -> Result<()> {
        if let Ok(mut state) = self.state.try_borrow_mut() {
            state.refed = on;
        }
        self.apply_ref(&env, on)
    }

    fn apply_ref(&self, env: &Env, active: bool) -> Result<()> {
        let state = match self.state.try_borrow() {
            Ok(state) => state,
            Err(_) => return Ok(()),
        };
        if let Some(wake) = state.wake.as_ref() {
            let hold = active && state.refed;
            if wake.holds_loop.get() == hold {
                return Ok(());
            }
            let mut tsfn = wake.tsfn.lock().unwrap_or_else(|p| p.into_inner());
            match (&wake.registration, &wake.direct) {
                // Calls come straight from the poll: the poll handle is what holds the loop,
                // and the (unused) thread-safe function never does.
                (Watcher::Loop(poll), Some(_)) => {
                    poll.set_ref(hold);
                    #[allow(deprecated)]
                    tsfn.unref(env)?;
                }
                _ => {
                    #[allow(deprecated)] // the replacement (clone counting) cannot express unref
                    if hold {
                        tsfn.refer(env)?;
                    } else {
                        tsfn.unref(env)?;
                    }
                }
            }
            wake.holds_loop.set(hold);
        }
        Ok(())
    }

    /// One socket option: `name` is one of `broadcast`, `ttl`, `multicastTtl`,
    /// `multicastLoopback`, `sendBufferSize`, `recvBufferSize`; `value` a number (booleans as 0/1).
    #[napi]
    pub fn set_option(&self, env: Env, name: String, value: u32) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                let socket = endpoint(s).socket();
                let ttl = || {
                    u8::try_from(value)
                        .ok()
                        .filter(|t| *t > 0)
                        .ok_or_else(|| Failure::Range("ttl must be 1 to 255".into()))
                };
                let result = match name.as_str() {
                    "broadcast" => socket.set_broadcast(value != 0),
                    "ttl" => socket.set_ttl(ttl()?),
                    "multicastTtl" => socket.set_multicast_ttl(
                        u8::try_from(value)
                            .map_err(|_| Failure::Range("ttl must be 0 to 255".into()))?,
                    ),
                    "multicastLoopback" => socket.set_multicast_loopback(value != 0),
                    "sendBufferSize" => socket.set_send_buffer_size(value),
                    "recvBufferSize" => socket.set_recv_buffer_size(value),
                    other => return Err(Failure::Range(format!("unknown option {other}"))),
                };
                result.map_err(|e| Failure::system(e, "setsockopt"))
            })
        })
    }

    /// `SO_SNDBUF` (`send: true`) or `SO_RCVBUF`, as the kernel reports it.
    #[napi]
    pub fn get_buffer_size(&self, env: Env, send: bool) -> Result<u32> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                let socket = endpoint(s).socket();
                let size = if send {
                    socket.send_buffer_size()
                } else {
                    socket.recv_buffer_size()
                };
                size.map_err(|e| Failure::system(e, "getsockopt"))
            })
        })
    }

    #[napi]
    pub fn set_multicast_interface(&self, env: Env, interface: String) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .set_multicast_interface(&interface)
                    .map_err(membership_failure)
            })
        })
    }

    #[napi]
    pub fn set_membership(
        &self,
        env: Env,
        group: String,
        interface: Option<String>,
        join: bool,
    ) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .set_membership(&group, interface.as_deref(), join)
                    .map_err(membership_failure)
            })
        })
    }

    /// Joins or leaves a source-specific multicast group (see the core's
    /// `set_source_membership`): `source` sends to `group`, on `interface` or the default.
    #[napi]
    pub fn set_source_membership(
        &self,
        env: Env,
        source: String,
        group: String,
        interface: Option<String>,
        join: bool,
    ) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .set_source_membership(&source, &group, interface.as_deref(), join)
                    .map_err(membership_failure)
            })
        })
    }
}

/// Receiving into one slab of memory (`lib/receive.ts` `ReceiveSlab`): one `Uint8Array` per
/// receive instead of one typed array per field.
#[napi]
impl NativeSocket {
    /// Byte offsets of a receive slab's arrays for `capacity` datagrams of `slotSize` bytes:
    /// data, timestamps, lengths, scopeIds, interfaces, ports, addresses, destinations, flags,
    /// tos, then the slab's total size. Metadata arrays are zero bytes without `metadata`.
    #[napi]
    pub fn recv_layout(
        env: Env,
        capacity: u32,
        slot_size: u32,
        metadata: bool,
    ) -> Result<Vec<u32>> {
        guarded(&env, || {
            let layout = slab_layout(capacity, slot_size, metadata)?;
            Ok(layout.offsets().iter().map(|&o| o as u32).collect())
        })
    }
}

fn slab_layout(capacity: u32, slot_size: u32, metadata: bool) -> Outcome<mmsg_core::SlabLayout> {
    if capacity == 0 || capacity > 1024 || slot_size == 0 || slot_size > 65535 {
        return Err(Failure::Range(format!(
            "a receive slab holds 1-1024 datagrams of 1-65535 bytes; got {capacity} of {slot_size}"
        )));
    }
    mmsg_core::SlabLayout::new(capacity as usize, slot_size as usize, metadata)
        .ok_or_else(|| Failure::Range("receive slab too large".into()))
}

/// Most destinations `addDestination` keeps per socket; the TS layer then clears and starts over.
const MAX_DESTINATIONS: usize = 4096;
/// `sendDatagram`'s destination id for the connected peer.
const PEER: u32 = u32::MAX;

/// The single-datagram path (a lone `send()` in the dgram drop-in, `trySend([buf])`): numbers
/// and one view in, no lists to read, no plan to build. Destinations are parsed once and named
/// by an id afterwards.
#[napi]
impl NativeSocket {
    /// Parses `address`/`port` for this socket's family and returns an id for `sendDatagram`.
    /// Ids stay valid until `clearDestinations`; at most 4096 are kept (RangeError after).
    #[napi]
    pub fn add_destination(&self, env: Env, address: String, port: u32) -> Result<u32> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                if s.destinations.len() >= MAX_DESTINATIONS {
                    return Err(Failure::Range(format!(
                        "at most {MAX_DESTINATIONS} destinations are kept; clear them first"
                    )));
                }
                let parsed = bind_address(endpoint(s).family(), &address, port)?;
                s.destinations.push(parsed);
                Ok((s.destinations.len() - 1) as u32)
            })
        })
    }

    /// Forgets every id `addDestination` returned.
    #[napi]
    pub fn clear_destinations(&self, env: Env) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                s.destinations.clear();
                Ok(())
            })
        })
    }
}

/// Receives into `slab` (laid out by `NativeSocket.recvLayout(capacity, slotSize, metadata)`)
/// on socket `socket` (its `id`), without blocking; returns the datagrams received (0: none
/// queued). Datagram `i`: `data[i * slotSize..][..lengths[i]]`, sender `addresses[16i..16i+16]`
/// (IPv4 mapped), `ports[i]`, `scopeIds[i]`, `flags[i]` (1 truncated, 2 IPv6, 4 no address,
/// 8 `tos[i]` set, 16 `destinations[16i..]`/`interfaces[i]` set, 32 `timestamps[i]` set,
/// 64 destination IPv6); the metadata arrays exist when `metadata` (see `setReceiveMetadata`).
pub(crate) fn socket_recv_slab(
    env: Env,
    socket: u32,
    slab: Unknown,
    capacity: u32,
    slot_size: u32,
    metadata: bool,
) -> Result<u32> {
    guarded(&env, || {
        // Phase 1: plain numbers (reading them runs no JS).
        let layout = slab_layout(capacity, slot_size, metadata)?;
        let state = by_id(socket)?;
        // Phase 2: the slab's bytes now (`napi_get_typedarray_info` runs no JS).
        with_state(&state, |s| {
            let memory = <&mut [u8]>::from_unknown(slab).map_err(|_| {
                Failure::Type(format!(
                    "slab must be a Uint8Array; got {}",
                    read::describe(slab)
                ))
            })?;
            let mut target = layout.target(memory).ok_or_else(|| {
                Failure::Range(format!(
                    "slab must be at least {} bytes and 8-byte aligned",
                    layout.total()
                ))
            })?;
            endpoint(s)
                .recv_keeping_errors(&mut target)
                .map(|n| n as u32)
                .map_err(|e| Failure::system(e, "recvmmsg"))
        })
    })
}

/// Sends `view` as one datagram from socket `socket` (its `id`) to destination id `destination`
/// (from `addDestination`; `0xffffffff`: the connected peer). Returns 1, or 0 if the socket would
/// block; a failure throws with `index` 0 and `sent` 0. No length is passed: the caller reads
/// nothing between taking `view` and this call, so its bytes now are the ones it meant.
pub(crate) fn socket_send_datagram(
    env: Env,
    socket: u32,
    view: Unknown,
    destination: u32,
    flags: u32,
) -> Result<u32> {
    guarded(&env, || {
        // Phase 1: plain numbers only (reading them runs no JS).
        let flags = send_flags(flags)?;
        let state = by_id(socket)?;
        // Phase 2: no JS from here; `napi_get_typedarray_info` runs none either.
        with_state(&state, |s| {
            let destination = match destination {
                PEER => None,
                id => Some(registered(s, id)?),
            };
            let bytes = <&[u8]>::from_unknown(view).map_err(|_| {
                Failure::Type(format!(
                    "view must be a Uint8Array; got {}",
                    read::describe(view)
                ))
            })?;
            let report = endpoint(s).send_datagram(bytes, destination, flags);
            match report.stop {
                SendStop::Complete | SendStop::WouldBlock => Ok(report.sent as u32),
                SendStop::Failed {
                    index,
                    error,
                    syscall,
                } => Err(Failure::System {
                    error,
                    syscall,
                    index: Some(index),
                    sent: Some(report.sent),
                }),
            }
        })
    })
}

/// Sends one-piece datagrams described as spans of stores, to destination ids (from
/// `addDestination`; `0xffffffff`: the connected peer): `destination` for all, or one per
/// datagram in `destinations`; from datagram `from` on. This is the batch path of the TS
/// layer: it reads each `Buffer`'s store, offset and length in JavaScript (cheap there,
/// several N-API calls per view here), so this call reads a handful of stores and one
/// `Uint32Array` instead of one object per datagram.
///
/// - `stores`: the `ArrayBuffer`s the datagrams lie in, or with `storesAreViews` the
///   `Uint8Array`s themselves (each standing for its own bytes: cheaper when every datagram
///   is its own `Buffer`, as reading `buffer` in JavaScript costs more than the view here);
/// - `spans`: three numbers per datagram: store index, byte offset, length (the length the
///   caller took: a store shrunk or detached since fails that datagram instead of sending it
///   short);
/// - `tos` (optional): a TOS byte / traffic class per datagram (0: the socket's own), sent as
///   `IP_TOS` / `IPV6_TCLASS`.
///
/// Returns datagrams sent (counted from 0; fewer: the socket would block). A failing
/// datagram throws with `index` and `sent`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn socket_send_spans(
    env: Env,
    socket: u32,
    stores: Unknown,
    stores_are_views: bool,
    spans: Unknown,
    destination: u32,
    destinations: Unknown,
    tos: Unknown,
    from: u32,
    flags: u32,
) -> Result<u32> {
    guarded(&env, || {
        // Phase 1: read everything (an array getter may run user JS); nothing is borrowed yet.
        let stores = read::handles(stores, "stores")?;
        send_spans_of(
            &stores,
            stores_are_views,
            SpanArguments {
                socket,
                spans,
                destination,
                destinations,
                tos,
                from,
                flags,
            },
        )
    })
}

/// The arguments of `socketSendSpans` / `socketSendViews` besides the stores.
pub(crate) struct SpanArguments<'env> {
    pub socket: u32,
    pub spans: Unknown<'env>,
    pub destination: u32,
    pub destinations: Unknown<'env>,
    pub tos: Unknown<'env>,
    pub from: u32,
    pub flags: u32,
}

/// [`socket_send_spans`] with the store handles already read (from an array, or the call's
/// own arguments: `socketSendViews`). The rest of phase 1 (typed arrays and numbers only, so
/// no JavaScript), then phase 2.
pub(crate) fn send_spans_of(
    stores: &[Unknown],
    stores_are_views: bool,
    arguments: SpanArguments,
) -> Outcome<u32> {
    let SpanArguments {
        socket,
        spans,
        destination,
        destinations,
        tos,
        from,
        flags,
    } = arguments;
    let flags = send_flags(flags)?;
    let spans = read::u32_list(spans, "spans")?;
    if spans.len() % 3 != 0 {
        return Err(Failure::Range(format!(
            "spans has {} numbers; it needs three per datagram",
            spans.len()
        )));
    }
    if let Some(bad) = spans
        .chunks_exact(3)
        .position(|s| s[0] as usize >= stores.len())
    {
        return Err(Failure::Range(format!(
            "spans[{}] names store {} of {}",
            bad * 3,
            spans[bad * 3],
            stores.len()
        )));
    }
    let lengths: Vec<u32> = spans.chunks_exact(3).map(|s| s[2]).collect();
    let per_datagram = read::u32_list(destinations, "destinations")?;
    if !per_datagram.is_empty() && per_datagram.len() != lengths.len() {
        return Err(Failure::Range(format!(
            "destinations has {} ids for {} datagrams",
            per_datagram.len(),
            lengths.len()
        )));
    }
    let tos = read::u8_list(tos, "tos")?;
    if !tos.is_empty() && tos.len() != lengths.len() {
        return Err(Failure::Range(format!(
            "tos has {} bytes for {} datagrams",
            tos.len(),
            lengths.len()
        )));
    }
    let state = by_id(socket)?;
    // Phase 2: no JS from here; the N-API info calls run none either.
    with_state(&state, |s| {
        let (to, message_destinations) = if per_datagram.is_empty() {
            let to = match destination {
                PEER => Vec::new(),
                id => vec![registered(s, id)?],
            };
            (to, Vec::new())
        } else {
            // The plan names each distinct destination once, by its index.
            let mut to = Vec::new();
            let mut index_of: HashMap<u32, u32, BuildHasherDefault<IdHasher>> = HashMap::default();
            let mut indexes = Vec::with_capacity(per_datagram.len());
            for &id in &per_datagram {
                indexes.push(match id {
                    PEER => mmsg_core::CONNECTED_PEER,
                    id => match index_of.get(&id) {
                        Some(&index) => index,
                        None => {
                            let index = to.len() as u32;
                            to.push(registered(s, id)?);
                            index_of.insert(id, index);
                            index
                        }
                    },
                });
            }
            (to, indexes)
        };
        let stores = read::stores_now(stores, stores_are_views, "stores")?;
        let memory: Vec<&[u8]> = stores.iter().map(read::Store::bytes).collect();
        // A span past its store's end (shrunk, detached) is cut here; the plan's length
        // then disagrees and that datagram fails as changed.
        let bytes: Vec<&[u8]> = spans
            .chunks_exact(3)
            .map(|span| {
                let store: &[u8] = memory[span[0] as usize];
                let start = (span[1] as usize).min(store.len());
                let end = start.saturating_add(span[2] as usize).min(store.len());
                &store[start..end]
            })
            .collect();
        let mut plan = SendPlan::new(lengths, &[], message_destinations, to)
            .map_err(|e| Failure::Range(e.to_string()))?;
        plan.set_tos(tos)
            .map_err(|e| Failure::Range(e.to_string()))?;
        let report = endpoint(s).send_plan(&plan, &bytes, from as usize, flags);
        plan_outcome(report)
    })
}

/// A destination registered by `addDestination`, by its id.
fn registered(s: &State, id: u32) -> Outcome<SockAddr> {
    s.destinations
        .get(id as usize)
        .copied()
        .ok_or_else(|| Failure::Range(format!("unknown destination id {id}")))
}

fn membership_failure(error: mmsg_core::MembershipError) -> Failure {
    match error {
        mmsg_core::MembershipError::Address(e) => Failure::Type(e.to_string()),
        mmsg_core::MembershipError::System(e) => Failure::system(e, "setsockopt"),
    }
}

/// Phase 2 of a send: the views' bytes now, then the core.
pub(crate) fn send_plan(
    endpoint: &mut Endpoint,
    plan: &SendPlan,
    views: &[View],
    from: usize,
    flags: i32,
) -> Outcome<u32> {
    let bytes: Vec<&[u8]> = views.iter().map(View::bytes_now).collect();
    let report = endpoint.send_plan(plan, &bytes, from, flags);
    plan_outcome(report)
}

pub(crate) fn plan_outcome(report: mmsg_core::PlanReport) -> Outcome<u32> {
    match report.stop {
        PlanStop::Complete | PlanStop::WouldBlock => Ok(report.sent as u32),
        PlanStop::Failed {
            index,
            error,
            syscall,
        } => Err(Failure::System {
            error,
            syscall,
            index: Some(index),
            sent: Some(report.sent),
        }),
        PlanStop::ViewChanged { index, .. } => Err(Failure::ViewChanged {
            index,
            sent: report.sent,
        }),
    }
}

/// The optional per-message send metadata of `NativeSocket::send`, read in phase 1: segment
/// sizes, source addresses / interfaces, and where to resume inside a segmented message.
struct SendMetadata<'env> {
    segment_sizes: Vec<u16>,
    sources: Vec<Option<mmsg_core::SourceRequest>>,
    from_segment: usize,
    progress: Option<Unknown<'env>>,
}

impl<'env> SendMetadata<'env> {
    fn read(
        segment_sizes: Unknown,
        source_addresses: Unknown,
        interface_indexes: Unknown,
        from_segment: Unknown,
        progress: Option<Unknown<'env>>,
    ) -> Outcome<SendMetadata<'env>> {
        let segment_sizes = read::u16_list(segment_sizes, "segmentSizes")?;
        let addresses = read::optional_strings(source_addresses, "sourceAddresses")?;
        let interfaces = read::u32_list(interface_indexes, "interfaceIndexes")?;
        let from_segment = read::optional_uint(from_segment, "fromSegment", u32::MAX)? as usize;
        let progress = optional_typed::<u32>(progress, "progress")?;
        let count = addresses.len().max(interfaces.len());
        if !addresses.is_empty() && !interfaces.is_empty() && addresses.len() != interfaces.len() {
            return Err(Failure::Range(
                "sourceAddresses and interfaceIndexes must have the same length".into(),
            ));
        }
        let mut sources = Vec::with_capacity(count);
        for i in 0..count {
            let text = addresses.get(i).map_or("", String::as_str);
            let interface = interfaces.get(i).copied().unwrap_or(0);
            let address = if text.is_empty() {
                None
            } else {
                Some(text.parse::<std::net::IpAddr>().map_err(|_| {
                    Failure::Type(format!(
                        "sourceAddresses[{i}] must be an IP address; got {text:?}"
                    ))
                })?)
            };
            sources.push(
                (address.is_some() || interface != 0)
                    .then_some(mmsg_core::SourceRequest { address, interface }),
            );
        }
        Ok(SendMetadata {
            segment_sizes,
            sources,
            from_segment,
            progress,
        })
    }

    /// Nothing asked for: the plain path.
    fn is_empty(&self) -> bool {
        self.segment_sizes.is_empty()
            && self.sources.is_empty()
            && self.from_segment == 0
            && self.progress.is_none()
    }

    /// Phase 2: completes the plan and sends it from `(from, from_segment)`.
    fn send(
        self,
        endpoint: &mut Endpoint,
        mut plan: SendPlan,
        views: &[View],
        from: usize,
        flags: i32,
    ) -> Outcome<u32> {
        plan.set_segment_sizes(self.segment_sizes)
            .map_err(|e| Failure::Range(e.to_string()))?;
        if !self.sources.is_empty() {
            // Messages to the connected peer take the packet-info kind of its family.
            let to_peer = (0..plan.len()).any(|m| plan.destination_of(m).is_none());
            let peer = if to_peer {
                endpoint.socket().peer_addr().ok().map(SockAddr::from)
            } else {
                None
            };
            plan.set_sources(self.sources, peer).map_err(|e| match e {
                mmsg_core::PlanError::SourceFamily { .. } => Failure::Type(e.to_string()),
                other => Failure::Range(other.to_string()),
            })?;
        }
        let bytes: Vec<&[u8]> = views.iter().map(View::bytes_now).collect();
        let at = mmsg_core::PlanPosition {
            message: from,
            segment: self.from_segment,
        };
        let report = endpoint.send_plan_from(&plan, &bytes, at, flags);
        if let Some(slot) = slice_mut_of::<u32>(self.progress).first_mut() {
            *slot = report.segments_sent as u32;
        }
        plan_outcome(report)
    }
}

/// Checks send flags. `MSG_MORE` is refused: on a batch it would merge datagrams to different
/// destinations into one (its meaning differs per message).
pub(crate) fn send_flags(flags: u32) -> Outcome<i32> {
    let flags = flags as i32;
    if flags & libc_more() != 0 {
        return Err(Failure::Range(
            "MSG_MORE is not supported: it would merge the batch's datagrams into one".into(),
        ));
    }
    let unknown = flags & !mmsg_core::KNOWN_SEND_FLAGS;
    if unknown != 0 {
        return Err(Failure::Range(format!(
            "flags has unknown bits 0x{unknown:x} (known: MSG_DONTWAIT, MSG_CONFIRM, MSG_DONTROUTE, MSG_NOSIGNAL, MSG_EOR)"
        )));
    }
    Ok(flags)
}

const fn libc_more() -> i32 {
    0x8000
}

fn check_typed<T>(value: Unknown, what: &str) -> Outcome<()>
where
    for<'a> &'a [T]: FromNapiValue,
{
    if !value.is_typedarray()? || <&[T]>::from_unknown(value).is_err() {
        return Err(Failure::Type(format!(
            "{what} has the wrong type ({})",
            read::describe(value)
        )));
    }
    Ok(())
}

/// An optional typed array argument: `None` for `undefined`/`null`, else checked like
/// [`check_typed`].
fn optional_typed<'env, T>(
    value: Option<Unknown<'env>>,
    what: &str,
) -> Outcome<Option<Unknown<'env>>>
where
    for<'a> &'a [T]: FromNapiValue,
{
    let Some(value) = value else {
        return Ok(None);
    };
    match value.get_type()? {
        napi::ValueType::Undefined | napi::ValueType::Null => Ok(None),
        _ => {
            check_typed::<T>(value, what)?;
            Ok(Some(value))
        }
    }
}

fn slice_mut_of<'env, T: 'env>(value: Option<Unknown<'env>>) -> &'env mut [T]
where
    &'env mut [T]: FromNapiValue,
{
    value
        .and_then(|v| <&mut [T]>::from_unknown(v).ok())
        .unwrap_or(&mut [])
}

// ---- the error queue (ICMP and path-MTU errors) and path MTU options ------------------------

/// One error-queue entry as the TS layer receives it (see `mmsg_core::QueuedError`).
#[napi(object)]
pub struct QueuedErrorInfo {
    /// Negative, as Node's `errno`.
    pub errno: i32,
    /// `ECONNREFUSED`, `EMSGSIZE`, ... (empty for errno 0).
    pub code: String,
    /// `local`, `icmp`, `icmp6`, `none`, or `origin-N` for other origins.
    pub origin: String,
    /// ICMP / ICMPv6 type.
    #[napi(js_name = "type")]
    pub icmp_type: u32,
    pub icmp_code: u32,
    /// `ee_info` (the MTU for "fragmentation needed" / "packet too big" / local EMSGSIZE).
    pub info: u32,
    /// Where the datagram the error is about was going.
    pub destination: Option<AddressInfo>,
    /// The address of the node that reported the error.
    pub offender: Option<String>,
    /// Bytes of that datagram the kernel returned with the entry.
    pub payload_length: u32,
}

impl From<mmsg_core::QueuedError> for QueuedErrorInfo {
    fn from(entry: mmsg_core::QueuedError) -> Self {
        use mmsg_core::ErrorOrigin;
        let origin = match entry.origin {
            ErrorOrigin::None => "none".to_owned(),
            ErrorOrigin::Local => "local".to_owned(),
            ErrorOrigin::Icmp => "icmp".to_owned(),
            ErrorOrigin::Icmp6 => "icmp6".to_owned(),
            ErrorOrigin::Other(n) => format!("origin-{n}"),
        };
        QueuedErrorInfo {
            errno: -entry.errno,
            code: if entry.errno == 0 {
                String::new()
            } else {
                mmsg_core::errno::errno_name(entry.errno).to_owned()
            },
            origin,
            icmp_type: u32::from(entry.icmp_type),
            icmp_code: u32::from(entry.icmp_code),
            info: entry.info,
            destination: entry.destination.map(AddressInfo::from),
            offender: entry.offender.map(|o| AddressInfo::from(o).address),
            payload_length: entry.payload_len as u32,
        }
    }
}

#[napi]
impl NativeSocket {
    /// `IP_RECVERR` / `IPV6_RECVERR` for any socket, with the core's pending-error retry.
    #[napi]
    pub fn set_receive_errors(&self, env: Env, on: bool) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .set_receive_errors(on)
                    .map_err(|e| Failure::system(e, "setsockopt"))
            })
        })
    }

    /// Up to `max` error-queue entries: those sends and receives already read, then the
    /// kernel's queue (never blocking).
    #[napi]
    pub fn take_errors(&self, env: Env, max: u32) -> Result<Vec<QueuedErrorInfo>> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                let entries = endpoint(s)
                    .take_errors(max as usize)
                    .map_err(|e| Failure::system(e, "recvmsg"))?;
                Ok(entries.into_iter().map(QueuedErrorInfo::from).collect())
            })
        })
    }

    /// Entries already read by sends and receives and not yet taken (no system call).
    #[napi]
    pub fn kept_error_count(&self, env: Env) -> Result<u32> {
        guarded(&env, || {
            self.with_endpoint(|s| Ok(endpoint(s).kept_error_count() as u32))
        })
    }

    /// Entries the core could not keep because none were taken (it keeps 4096).
    #[napi]
    pub fn errors_overflowed(&self, env: Env) -> Result<f64> {
        guarded(&env, || {
            self.with_endpoint(|s| Ok(endpoint(s).errors_overflowed() as f64))
        })
    }

    /// `IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`: `want`, `do`, `dont` or `probe`.
    #[napi]
    pub fn set_path_mtu_discovery(&self, env: Env, mode: String) -> Result<()> {
        guarded(&env, || {
            let mode = match mode.as_str() {
                "want" => mmsg_core::PathMtuDiscovery::Want,
                "do" => mmsg_core::PathMtuDiscovery::Do,
                "dont" => mmsg_core::PathMtuDiscovery::Dont,
                "probe" => mmsg_core::PathMtuDiscovery::Probe,
                other => return Err(Failure::Range(format!("unknown path MTU mode {other}"))),
            };
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .set_path_mtu_discovery(mode)
                    .map_err(|e| Failure::system(e, "setsockopt"))
            })
        })
    }

    /// The don't-fragment bit (`IP_PMTUDISC_DO`/`DONT`, `IPV6_DONTFRAG`).
    #[napi]
    pub fn set_dont_fragment(&self, env: Env, on: bool) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .set_dont_fragment(on)
                    .map_err(|e| Failure::system(e, "setsockopt"))
            })
        })
    }

    /// `IP_MTU` / `IPV6_MTU` of a connected socket.
    #[napi]
    pub fn path_mtu(&self, env: Env) -> Result<u32> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .path_mtu()
                    .map_err(|e| Failure::system(e, "getsockopt"))
            })
        })
    }

    /// Watches only for errors (a non-empty error queue), not readability: for a socket whose
    /// owner wants its ICMP errors but is not receiving. Does not keep the loop alive. After
    /// each error notification call it again (or `arm`) to keep watching.
    #[napi]
    pub fn arm_errors(&self, env: Env) -> Result<()> {
        guarded(&env, || {
            let state = self.state.try_borrow().map_err(|_| Failure::Busy)?;
            match state.wake.as_ref() {
                Some(Wake {
                    registration: Watcher::Loop(poll),
                    ..
                }) => poll
                    .arm_errors_only()
                    .map_err(|e| Failure::system(e, "uv_poll_start")),
                // epoll reports EPOLLERR even with no events asked for.
                Some(wake) => wake
                    .registration
                    .arm(false, false)
                    .map_err(|e| Failure::system(e, "epoll_ctl")),
                None => Err(Failure::Closed),
            }
        })?;
        self.apply_ref(&env, false)
    }
}

/// Using every core: reuseport groups steered by the receiving CPU (the core's `steer` module).
#[napi]
impl NativeSocket {
    /// Whether `SO_REUSEPORT` is on.
    #[napi]
    pub fn reuse_port(&self, env: Env) -> Result<bool> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .reuse_port()
                    .map_err(|e| Failure::system(e, "getsockopt"))
            })
        })
    }

    /// Attaches the `cpu % groupSize` program to this socket's reuseport group (1 to 65535).
    #[napi]
    pub fn steer_by_cpu(&self, env: Env, group_size: u32) -> Result<()> {
        guarded(&env, || {
            let size = u16::try_from(group_size)
                .ok()
                .and_then(std::num::NonZeroU16::new)
                .ok_or_else(|| Failure::Range("groupSize must be 1 to 65535".into()))?;
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .steer_by_cpu(size)
                    .map_err(|e| Failure::system(e, "setsockopt"))
            })
        })
    }

    /// Removes the group's steering program (`ENOENT` if it has none).
    #[napi]
    pub fn detach_steering(&self, env: Env) -> Result<()> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .detach_group_program()
                    .map_err(|e| Failure::system(e, "setsockopt"))
            })
        })
    }

    /// `SO_INCOMING_CPU`, -1 for none.
    #[napi]
    pub fn incoming_cpu(&self, env: Env) -> Result<i32> {
        guarded(&env, || {
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .incoming_cpu()
                    .map(|cpu| cpu.map_or(-1, |c| c as i32))
                    .map_err(|e| Failure::system(e, "getsockopt"))
            })
        })
    }

    /// Sets `SO_INCOMING_CPU` (0 to 2^31 - 1).
    #[napi]
    pub fn set_incoming_cpu(&self, env: Env, cpu: u32) -> Result<()> {
        guarded(&env, || {
            if cpu > i32::MAX as u32 {
                return Err(Failure::Range("cpu must be 0 to 2147483647".into()));
            }
            self.with_endpoint(|s| {
                endpoint(s)
                    .socket()
                    .set_incoming_cpu(cpu)
                    .map_err(|e| Failure::system(e, "setsockopt"))
            })
        })
    }
}
