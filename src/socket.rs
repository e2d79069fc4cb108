//! `class UdpSocket`: the JS face of [`mmsg_core::UdpSocket`], with synchronous and
//! asynchronous batch sends.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::{Arc, Mutex};

use mmsg_core::reactor::{Reactor, Readiness, Registration};
use mmsg_core::{Family, GsoSupport, SendScratch, SendStop, SocketOptions};
use napi::bindgen_prelude::{FromNapiValue, FunctionRef, Object, ObjectRef, PromiseRaw, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::JsValue;
use napi::{Env, Result, Status, ValueType};
use napi_derive::napi;

use crate::convert::{
    callback_arg, optional_bool, optional_port, optional_string, optional_uint, packed_input,
    required_bool, required_string, required_uint, send_flags, type_name, AddressResolver,
    BatchInput, BatchSink,
};
use crate::errors::{
    busy_error, closed_error, range_error, send_error_at, system_error, type_error, BatchPosition,
};
use crate::pending::{PendingSend, PendingSink, Progress, Resolver};
use crate::recv::{
    batch_arg, check_batch, fill_batch, receive_convenient, ReceiveMode, RecvMemory, MAX_SLOT,
};

/// The JS function a receiving socket hands batches to.
type ReceiveCallback = FunctionRef<Object<'static>, Unknown<'static>>;

enum ReceiverShape {
    /// `onMessages`: an array of `{ data, address, port, family, truncated }` per batch.
    Convenient { max: usize, slot: usize },
    /// `onBatch`: the same `RecvBatch` object, refilled for every batch.
    Batch { batch: ObjectRef<false> },
}

struct Receiver {
    callback: ReceiveCallback,
    shape: ReceiverShape,
}

/// Options for `new UdpSocket(...)`, like `dgram.createSocket`'s.
#[napi(object)]
#[allow(dead_code)] // describes the TypeScript shape; read field by field in `parse_options`
pub struct UdpSocketOptions {
    /// `'udp4'` or `'udp6'`.
    #[napi(ts_type = "'udp4' | 'udp6'")]
    pub r#type: String,
    /// `SO_REUSEADDR`.
    pub reuse_addr: Option<bool>,
    /// `SO_REUSEPORT`: several sockets share one port and the kernel spreads datagrams.
    pub reuse_port: Option<bool>,
    /// `IPV6_V6ONLY` (udp6 only).
    pub ipv6_only: Option<bool>,
    /// `SO_SNDBUF` in bytes.
    pub send_buffer_size: Option<u32>,
    /// `SO_RCVBUF` in bytes.
    pub recv_buffer_size: Option<u32>,
}

/// An address as `dgram`'s `socket.address()` returns it.
#[napi(object)]
pub struct AddressInfo {
    /// The IP address, e.g. `'127.0.0.1'` or `'::1'`.
    pub address: String,
    /// `'IPv4'` or `'IPv6'`.
    pub family: String,
    /// The port, 0–65535.
    pub port: u32,
}

impl From<SocketAddr> for AddressInfo {
    fn from(addr: SocketAddr) -> Self {
        AddressInfo {
            address: addr.ip().to_string(),
            family: if addr.is_ipv4() { "IPv4" } else { "IPv6" }.to_owned(),
            port: u32::from(addr.port()),
        }
    }
}

type WakeFn = ThreadsafeFunction<Readiness, (), (), Status, false>;

/// Connection to the reactor, created the first time the socket has to wait.
struct Wake {
    // Dropped first: stops notifications before anything else goes.
    registration: Registration,
    /// Shared with the reactor thread, which calls it; the JS thread refs/unrefs it.
    tsfn: Arc<Mutex<WakeFn>>,
}

pub(crate) struct SocketState {
    /// Field order matters: `wake` is dropped before `socket` closes the descriptor.
    wake: Option<Wake>,
    socket: Option<mmsg_core::UdpSocket>,
    resolver: AddressResolver,
    scratch: SendScratch,
    queue: VecDeque<PendingSend>,
    refed: bool,
    recv: RecvMemory,
    receiver: Option<Receiver>,
    /// Last `SO_RXQ_OVFL` value the kernel reported.
    drops: u32,
    drop_counter_enabled: bool,
    gso: GsoSupport,
    /// `UDP_GRO` is on: received slots may hold several datagrams to split.
    gro: bool,
    /// Set while the socket has work pending (a deliberate cycle that keeps it alive, like a
    /// libuv handle); cleared when idle or closed.
    keep_alive: Option<Rc<RefCell<SocketState>>>,
}

pub(crate) type SharedState = Rc<RefCell<SocketState>>;

thread_local! {
    /// Sockets of this thread's JS environment, closed when the environment is torn down
    /// (a worker thread exiting with sockets open).
    static LIVE_SOCKETS: RefCell<Vec<Weak<RefCell<SocketState>>>> = const { RefCell::new(Vec::new()) };
    static CLEANUP_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn track(env: &Env, state: &SharedState) -> Result<()> {
    LIVE_SOCKETS.with(|live| {
        let mut live = live.borrow_mut();
        live.retain(|w| w.strong_count() > 0);
        live.push(Rc::downgrade(state));
    });
    if !CLEANUP_HOOK.with(|c| c.replace(true)) {
        env.add_env_cleanup_hook((), |_| {
            let sockets: Vec<_> = LIVE_SOCKETS.with(|live| live.borrow_mut().drain(..).collect());
            for socket in sockets.iter().filter_map(Weak::upgrade) {
                if let Ok(mut state) = socket.try_borrow_mut() {
                    state.teardown();
                }
            }
            CLEANUP_HOOK.with(|c| c.set(false));
        })?;
    }
    Ok(())
}

impl SocketState {
    /// The descriptor, after making sure the kernel reports drops (`SO_RXQ_OVFL`), which is
    /// switched on by the first receive of any kind.
    fn open_for_receive(&mut self, env: &Env) -> Result<i32> {
        let socket = self.socket.as_ref().ok_or_else(|| closed_error(env))?;
        if !self.drop_counter_enabled {
            socket
                .set_drop_counter(true)
                .map_err(|e| system_error(env, &e, "setsockopt", BatchPosition::default()))?;
            self.drop_counter_enabled = true;
        }
        Ok(socket.raw_fd())
    }

    /// Closes without settling promises (the JS environment is going away).
    fn teardown(&mut self) {
        self.wake = None;
        self.receiver = None;
        self.socket = None;
        self.queue.clear();
        self.keep_alive = None;
    }
}

/// A UDP socket whose sends and receives move whole batches per system call.
///
/// ```ts
/// const socket = new UdpSocket('udp4')
/// socket.bind(0, '127.0.0.1')
/// socket.trySend([Buffer.from('one'), Buffer.from('two')], 5353, '127.0.0.1')
/// ```
#[napi]
pub struct UdpSocket {
    state: SharedState,
}

fn parse_options(env: &Env, options: Unknown) -> Result<(Family, SocketOptions)> {
    let mut core = SocketOptions::default();
    let kind = match options.get_type()? {
        ValueType::String => String::from_unknown(options)?,
        ValueType::Object if !options.is_array()? => {
            let object = Object::from_unknown(options)?;
            let field = |name: &str| object.get::<Unknown>(name);
            core.reuse_addr =
                optional_bool(env, field("reuseAddr")?, "options.reuseAddr")?.unwrap_or(false);
            core.reuse_port =
                optional_bool(env, field("reusePort")?, "options.reusePort")?.unwrap_or(false);
            core.ipv6_only = optional_bool(env, field("ipv6Only")?, "options.ipv6Only")?;
            let max = f64::from(i32::MAX);
            core.send_buffer_size =
                optional_uint(env, field("sendBufferSize")?, "options.sendBufferSize", max)?;
            core.recv_buffer_size =
                optional_uint(env, field("recvBufferSize")?, "options.recvBufferSize", max)?;
            optional_string(env, field("type")?, "options.type")?
                .ok_or_else(|| type_error(env, "options.type must be 'udp4' or 'udp6'"))?
        }
        other => {
            return Err(type_error(
                env,
                format!(
                    "expected 'udp4', 'udp6' or an options object; got {}",
                    type_name(other)
                ),
            ))
        }
    };
    let family = match kind.as_str() {
        "udp4" => Family::V4,
        "udp6" => Family::V6,
        other => {
            return Err(type_error(
                env,
                format!("socket type must be 'udp4' or 'udp6'; got {other:?}"),
            ))
        }
    };
    Ok((family, core))
}

impl UdpSocket {
    /// The socket's state for a method call. A call made re-entrantly while another call on the
    /// same socket is converting its arguments (e.g. from a getter on a message object) gets
    /// `ERR_SOCKET_BUSY` instead of a panic.
    fn state_mut(&self, env: &Env) -> Result<std::cell::RefMut<'_, SocketState>> {
        self.state.try_borrow_mut().map_err(|_| busy_error(env))
    }

    fn state_ref(&self, env: &Env) -> Result<std::cell::Ref<'_, SocketState>> {
        self.state.try_borrow().map_err(|_| busy_error(env))
    }

    fn from_core(env: &Env, socket: mmsg_core::UdpSocket) -> Result<Self> {
        let family = socket.family();
        let state = Rc::new(RefCell::new(SocketState {
            wake: None,
            socket: Some(socket),
            resolver: AddressResolver::new(family),
            scratch: SendScratch::new(),
            queue: VecDeque::new(),
            refed: true,
            keep_alive: None,
            recv: RecvMemory::default(),
            receiver: None,
            drops: 0,
            drop_counter_enabled: false,
            gso: GsoSupport::Unknown,
            gro: false,
        }));
        track(env, &state)?;
        Ok(UdpSocket { state })
    }

    /// Runs `f` with the open socket, or throws `ERR_SOCKET_CLOSED`.
    fn with_socket<T>(
        &self,
        env: &Env,
        f: impl FnOnce(&mmsg_core::UdpSocket) -> std::io::Result<T>,
        syscall: &str,
    ) -> Result<T> {
        let state = self.state_ref(env)?;
        let socket = state.socket.as_ref().ok_or_else(|| closed_error(env))?;
        f(socket).map_err(|e| system_error(env, &e, syscall, BatchPosition::default()))
    }

    fn destination_args(
        &self,
        env: &Env,
        port: Option<Unknown>,
        address: Option<Unknown>,
    ) -> Result<Option<mmsg_core::SockAddr>> {
        let port = optional_port(env, port, "port")?;
        let address = optional_string(env, address, "address")?;
        self.state
            .borrow_mut()
            .resolver
            .destination(env, port, address.as_deref(), "destination")
    }

    fn messages_input<'env>(
        &self,
        env: &Env,
        messages: Unknown<'env>,
        port: Option<Unknown>,
        address: Option<Unknown>,
    ) -> Result<BatchInput<'env>> {
        if !messages.is_array()? {
            return Err(type_error(
                env,
                "messages must be an array of Buffers/Uint8Arrays or { buffers, address?, port? } objects",
            ));
        }
        let default_destination = self.destination_args(env, port, address)?;
        Ok(BatchInput::Messages {
            list: napi::bindgen_prelude::Array::from_unknown(messages)?,
            default_destination,
        })
    }

    /// The synchronous send shared by `trySend` and `trySendPacked`.
    fn try_send_input(&self, env: &Env, input: &BatchInput, flags: i32) -> Result<u32> {
        let mut guard = self.state_mut(env)?;
        let state = &mut *guard;
        let fd = state
            .socket
            .as_ref()
            .ok_or_else(|| closed_error(env))?
            .raw_fd();
        if !state.queue.is_empty() {
            // Earlier async sends are still waiting: sending now would reorder datagrams.
            return Ok(0);
        }
        let mut batch = state.scratch.batch();
        input.walk(
            env,
            &mut state.resolver,
            0,
            input.len(),
            &mut BatchSink::new(&mut batch),
        )?;
        let report = batch.send(fd, flags, 0);
        match report.stop {
            SendStop::Complete | SendStop::WouldBlock => Ok(report.sent as u32),
            SendStop::Failed(error) => Err(send_error_at(env, &error, report.sent)),
        }
    }

    /// The asynchronous send shared by `send` and `sendPacked`.
    fn send_input<'env>(
        &self,
        env: &'env Env,
        input: &BatchInput,
        flags: i32,
        shared_holder: bool,
    ) -> Result<Unknown<'env>> {
        let mut guard = self.state_mut(env)?;
        let state = &mut *guard;
        let fd = state
            .socket
            .as_ref()
            .ok_or_else(|| closed_error(env))?
            .raw_fd();
        let total = input.len();
        // Every argument is checked (by building the batch) before anything is sent or queued.
        let mut batch = state.scratch.batch();
        input.walk(
            env,
            &mut state.resolver,
            0,
            total,
            &mut BatchSink::new(&mut batch),
        )?;
        let mut sent_now = 0;
        if state.queue.is_empty() {
            let report = batch.send(fd, flags, 0);
            match report.stop {
                SendStop::Complete => {
                    return Ok(PromiseRaw::resolve(env, report.sent as u32)?.to_unknown());
                }
                SendStop::Failed(error) => {
                    let js_error = send_error_at(env, &error, report.sent);
                    return Ok(PromiseRaw::<u32>::reject(env, js_error)?.to_unknown());
                }
                SendStop::WouldBlock => sent_now = report.sent,
            }
        }
        let (deferred, promise) = env.create_deferred::<u32, Resolver>()?;
        let mut pending = PendingSend::new(env, sent_now, flags, deferred)?;
        let recorded = PendingSink::new(env, &mut pending, shared_holder)
            .and_then(|mut sink| input.walk(env, &mut state.resolver, sent_now, total, &mut sink));
        if let Err(error) = recorded {
            // Not an argument error (those were caught above): settle and free what was held.
            let message = error.reason.clone();
            pending.reject(env, error);
            return Err(napi::Error::from_reason(message));
        }
        state.queue.push_back(pending);
        drop(guard);
        update_interest(env, &self.state)?;
        Ok(promise.to_unknown())
    }
}

/// Re-arms the reactor for what the socket now waits for, and refs/unrefs the wake-up function
/// so that only a socket with pending work (and not `unref()`ed) keeps the process alive.
pub(crate) fn update_interest(env: &Env, shared: &SharedState) -> Result<()> {
    let (want_write, want_read, closed) = {
        let state = shared.borrow();
        (
            !state.queue.is_empty(),
            state.receiver.is_some(),
            state.socket.is_none(),
        )
    };
    if closed {
        return Ok(());
    }
    let active = want_write || want_read;
    if active && shared.borrow().wake.is_none() {
        let wake = create_wake(env, shared)?;
        shared.borrow_mut().wake = Some(wake);
    }
    let mut guard = shared.borrow_mut();
    let state = &mut *guard;
    if let Some(wake) = state.wake.as_mut() {
        wake.registration
            .arm(want_read, want_write)
            .map_err(|e| system_error(env, &e, "epoll_ctl", BatchPosition::default()))?;
        let mut tsfn = wake.tsfn.lock().unwrap_or_else(|p| p.into_inner());
        #[allow(deprecated)] // the suggested replacement (clone counting) cannot express unref
        if active && state.refed {
            tsfn.refer(env)?;
        } else {
            tsfn.unref(env)?;
        }
    }
    state.keep_alive = if active { Some(shared.clone()) } else { None };
    Ok(())
}

fn create_wake(env: &Env, shared: &SharedState) -> Result<Wake> {
    let weak = Rc::downgrade(shared);
    let noop = env.create_function_from_closure::<(), (), _>("sendmmsgWake", |_| Ok(()))?;
    let tsfn: WakeFn = noop
        .build_threadsafe_function::<Readiness>()
        .callee_handled::<false>()
        .build_callback(move |ctx| match weak.upgrade() {
            Some(state) => on_ready(&ctx.env, &state, ctx.value),
            None => Ok(()),
        })?;
    let reactor = Reactor::global()
        .map_err(|e| system_error(env, &e, "epoll_create", BatchPosition::default()))?;
    let tsfn = Arc::new(Mutex::new(tsfn));
    let notifier = Arc::clone(&tsfn);
    let fd = shared
        .borrow()
        .socket
        .as_ref()
        .map(|s| s.raw_fd())
        .unwrap_or(-1);
    let registration = reactor
        .register(fd, move |readiness| {
            let notifier = notifier.lock().unwrap_or_else(|p| p.into_inner());
            notifier.call(readiness, ThreadsafeFunctionCallMode::NonBlocking);
        })
        .map_err(|e| system_error(env, &e, "epoll_ctl", BatchPosition::default()))?;
    Ok(Wake { registration, tsfn })
}

/// On the JS thread, when the reactor says the socket is ready.
fn on_ready(env: &Env, shared: &SharedState, readiness: Readiness) -> Result<()> {
    if readiness.error {
        // EPOLLERR stays raised while the error queue (IP_RECVERR) holds entries: empty it, or
        // the one-shot re-arm would wake us again at once. The pending socket error (SO_ERROR)
        // is left for the next send or receive to report.
        if let Some(socket) = shared.borrow().socket.as_ref() {
            socket.drain_error_queue();
        }
    }
    if readiness.writable || readiness.error {
        flush_queue(env, shared);
    }
    let delivered = if readiness.readable || readiness.error {
        deliver_received(env, shared)
    } else {
        Ok(None)
    };
    update_interest(env, shared)?;
    match delivered? {
        // Rethrow the handler's own exception (same value, class and stack): it becomes an
        // uncaught exception, as one from an event listener does.
        Some(handler_exception) => env.throw(handler_exception),
        None => Ok(()),
    }
}

/// Most batches handed to JS per wake-up before yielding to the event loop (fairness).
const MAX_BATCHES_PER_WAKE: usize = 16;

/// Drains what is queued (up to `MAX_BATCHES_PER_WAKE` batches) into the receive handler. The
/// state is not borrowed while the handler runs, so it may call `close()` or
/// `stopReceiving()`; delivery stops at once when it does.
/// Returns `Ok(Some(exception))` when the handler threw (delivery goes on next time), and
/// `Err` when receiving itself failed (delivery is stopped).
fn deliver_received(env: &Env, shared: &SharedState) -> Result<Option<napi::Error>> {
    let mut handler_threw = false;
    match deliver_batches(env, shared, &mut handler_threw) {
        Ok(()) => Ok(None),
        Err(exception) if handler_threw => Ok(Some(exception)),
        Err(error) => {
            // A receive that cannot go on (an unusable batch, a socket error) must not wake us
            // again and again: stop delivery, then surface the error once, like an 'error' event.
            if let Ok(mut state) = shared.try_borrow_mut() {
                let receiver = state.receiver.take();
                drop(state);
                release_receiver(env, receiver);
            }
            Err(error)
        }
    }
}

/// Hands queued batches to the handler. An exception from the handler ends this wake-up (and
/// sets `handler_threw`) but not the delivery: like an event listener, the next batch comes.
fn deliver_batches(env: &Env, shared: &SharedState, handler_threw: &mut bool) -> Result<()> {
    for _ in 0..MAX_BATCHES_PER_WAKE {
        let (callback, argument) = {
            let mut guard = shared.borrow_mut();
            let state = &mut *guard;
            let (Some(socket), Some(receiver)) = (state.socket.as_ref(), state.receiver.as_ref())
            else {
                return Ok(());
            };
            let fd = socket.raw_fd();
            let argument: Object<'static> = match &receiver.shape {
                ReceiverShape::Convenient { max, slot } => {
                    let (list, drops) = receive_convenient(
                        env,
                        fd,
                        &mut state.recv,
                        *max,
                        *slot,
                        state.gro,
                        ReceiveMode::Event,
                    )?;
                    if let Some(d) = drops {
                        state.drops = d;
                    }
                    match list {
                        Some(list) => Object::from_raw(env.raw(), list.raw()),
                        None => return Ok(()),
                    }
                }
                ReceiverShape::Batch { batch } => {
                    let batch = batch.get_value(env)?;
                    let fill = fill_batch(
                        env,
                        &batch,
                        fd,
                        &mut state.recv,
                        state.gro,
                        ReceiveMode::Event,
                    )?;
                    if let Some(d) = fill.drops {
                        state.drops = d;
                    }
                    if fill.count == 0 {
                        return Ok(());
                    }
                    Object::from_raw(env.raw(), batch.raw())
                }
            };
            (receiver.callback.borrow_back(env)?, argument)
        };
        if let Err(error) = callback.call(argument) {
            *handler_threw = true;
            return Err(error);
        }
    }
    Ok(())
}

fn flush_queue(env: &Env, shared: &SharedState) {
    let mut guard = shared.borrow_mut();
    let state = &mut *guard;
    let Some(fd) = state.socket.as_ref().map(|s| s.raw_fd()) else {
        return;
    };
    while let Some(front) = state.queue.front_mut() {
        match front.resume(env, fd, &mut state.scratch) {
            Progress::Blocked => break,
            Progress::Settled => {
                state.queue.pop_front();
            }
        }
    }
}

#[napi]
impl UdpSocket {
    /// Creates a socket: `new UdpSocket('udp4')`, `new UdpSocket({ type: 'udp6', ipv6Only: true })`.
    #[napi(constructor, catch_unwind)]
    pub fn new(
        env: Env,
        #[napi(ts_arg_type = "'udp4' | 'udp6' | UdpSocketOptions")] options: Unknown,
    ) -> Result<Self> {
        let (family, core_options) = parse_options(&env, options)?;
        let socket = mmsg_core::UdpSocket::new(family, &core_options)
            .map_err(|e| system_error(&env, &e, "socket", BatchPosition::default()))?;
        UdpSocket::from_core(&env, socket)
    }

    /// Wraps an existing UDP socket descriptor, for example a `node:dgram` socket's
    /// (`dgramSocket._handle.fd` once it is bound). The descriptor is duplicated: closing this
    /// `UdpSocket` leaves the original open, and both share the same kernel socket.
    #[napi(factory, catch_unwind)]
    pub fn from_fd(env: Env, #[napi(ts_arg_type = "number")] fd: Unknown) -> Result<Self> {
        let fd = crate::functions::fd_arg(&env, fd)?;
        // Borrowing an arbitrary number as a descriptor is checked by the core: it verifies
        // (SO_TYPE) that it is an open datagram socket before duplicating it.
        let socket = mmsg_core::UdpSocket::from_fd_duplicate(fd)
            .map_err(|e| system_error(&env, &e, "dup", BatchPosition::default()))?;
        UdpSocket::from_core(&env, socket)
    }

    /// Binds synchronously: the port is known when this returns. `port` 0 or omitted picks a
    /// free port; `address` defaults to `0.0.0.0` / `::`.
    #[napi(catch_unwind, ts_args_type = "port?: number, address?: string")]
    pub fn bind(
        &self,
        env: Env,
        port: Option<Unknown>,
        address: Option<Unknown>,
    ) -> Result<AddressInfo> {
        let port = optional_port(&env, port, "port")?.unwrap_or(0);
        let address = optional_string(&env, address, "address")?;
        let target = {
            let mut state = self.state_mut(&env)?;
            let unspecified = state
                .socket
                .as_ref()
                .ok_or_else(|| closed_error(&env))?
                .unspecified()
                .to_string();
            let text = address.unwrap_or(unspecified);
            state.resolver.resolve(&env, &text, port)?
        };
        self.with_socket(&env, |s| s.bind(target), "bind")?;
        self.address(env)
    }

    /// Associates the socket with one peer: sends without an address go there, and only its
    /// datagrams are received.
    #[napi(catch_unwind, ts_args_type = "port: number, address?: string")]
    pub fn connect(&self, env: Env, port: Unknown, address: Option<Unknown>) -> Result<()> {
        let target = self
            .destination_args(&env, Some(port), address)?
            .ok_or_else(|| type_error(&env, "connect needs a port"))?;
        self.with_socket(&env, |s| s.connect(target), "connect")
    }

    /// Dissolves the association made by `connect`.
    #[napi(catch_unwind)]
    pub fn disconnect(&self, env: Env) -> Result<()> {
        self.with_socket(&env, |s| s.disconnect(), "connect")
    }

    /// The local address (`getsockname`).
    #[napi(catch_unwind)]
    pub fn address(&self, env: Env) -> Result<AddressInfo> {
        self.with_socket(&env, |s| s.local_addr(), "getsockname")
            .map(AddressInfo::from)
    }

    /// The connected peer (`getpeername`); throws `ENOTCONN` when not connected.
    #[napi(catch_unwind)]
    pub fn remote_address(&self, env: Env) -> Result<AddressInfo> {
        self.with_socket(&env, |s| s.peer_addr(), "getpeername")
            .map(AddressInfo::from)
    }

    /// The socket's file descriptor (-1 once closed).
    #[napi(getter)]
    pub fn fd(&self) -> i32 {
        self.state
            .borrow()
            .socket
            .as_ref()
            .map_or(-1, |s| s.raw_fd())
    }

    /// `'udp4'` or `'udp6'`.
    #[napi(getter, js_name = "type", ts_return_type = "'udp4' | 'udp6'")]
    pub fn socket_type(&self) -> &'static str {
        match self.state.borrow().resolver.family() {
            Family::V4 => "udp4",
            Family::V6 => "udp6",
        }
    }

    /// Whether `close()` has been called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.state.borrow().socket.is_none()
    }

    /// Async sends still waiting for the kernel to take their datagrams.
    #[napi(getter)]
    pub fn pending_sends(&self) -> u32 {
        self.state.borrow().queue.len() as u32
    }

    /// Closes the socket. Pending `send()` promises reject with `ERR_SOCKET_CLOSED` (their
    /// `sent` property says how many datagrams went out). Closing twice is harmless.
    #[napi(catch_unwind)]
    pub fn close(&self, env: Env) -> Result<()> {
        let (queue, receiver) = {
            let mut state = self.state_mut(&env)?;
            let receiver = state.receiver.take();
            state.wake = None;
            state.socket = None;
            state.keep_alive = None;
            (
                state.queue.drain(..).collect::<Vec<PendingSend>>(),
                receiver,
            )
        };
        release_receiver(&env, receiver);
        for mut pending in queue {
            pending.reject_closed(&env);
        }
        Ok(())
    }

    /// Lets the process exit even while this socket waits (like `dgram`'s `unref`).
    #[napi(catch_unwind)]
    pub fn unref(&self, env: Env) -> Result<()> {
        self.state_mut(&env)?.refed = false;
        update_interest(&env, &self.state)
    }

    /// Undoes `unref()`.
    #[napi(js_name = "ref", catch_unwind)]
    pub fn refer(&self, env: Env) -> Result<()> {
        self.state_mut(&env)?.refed = true;
        update_interest(&env, &self.state)
    }

    /// Sends a batch now, without waiting, and returns how many datagrams the kernel took (the
    /// rest would block: send them later, from that index). Elements are whole datagrams
    /// (`Buffer`/`Uint8Array`, to `port`/`address` or the connected peer) or
    /// `{ buffers, address?, port? }` messages whose pieces are gathered into one datagram.
    ///
    /// If message `k` fails, throws a system error with `index: k` and `sent: k`: messages
    /// `0..k` went out, none after. While `send()` promises are pending, returns 0 (sending now
    /// would overtake them).
    #[napi(
        catch_unwind,
        ts_args_type = "messages: Array<Uint8Array | OutgoingMessage>, port?: number, address?: string, flags?: number"
    )]
    pub fn try_send(
        &self,
        env: Env,
        messages: Unknown,
        port: Option<Unknown>,
        address: Option<Unknown>,
        flags: Option<Unknown>,
    ) -> Result<u32> {
        let flags = send_flags(&env, flags)?;
        let input = self.messages_input(&env, messages, port, address)?;
        self.try_send_input(&env, &input, flags)
    }

    /// `trySend` for one packed buffer holding consecutive datagrams of the given lengths
    /// (sliced without copying). Returns how many datagrams the kernel took.
    #[napi(
        catch_unwind,
        ts_args_type = "packed: Uint8Array, lengths: Uint32Array | number[], port?: number, address?: string, flags?: number"
    )]
    pub fn try_send_packed(
        &self,
        env: Env,
        packed: Unknown,
        lengths: Unknown,
        port: Option<Unknown>,
        address: Option<Unknown>,
        flags: Option<Unknown>,
    ) -> Result<u32> {
        let flags = send_flags(&env, flags)?;
        let destination = self.destination_args(&env, port, address)?;
        let input = packed_input(&env, packed, lengths, destination)?;
        self.try_send_input(&env, &input, flags)
    }

    /// Sends a whole batch, waiting (without blocking the event loop) whenever the kernel's
    /// send buffer is full. Resolves with the number of datagrams sent (all of them); rejects
    /// with a system error carrying `index`/`sent` if one fails. The buffers must not be
    /// modified until it settles; they are kept alive until then.
    #[napi(
        catch_unwind,
        ts_args_type = "messages: Array<Uint8Array | OutgoingMessage>, port?: number, address?: string, flags?: number",
        ts_return_type = "Promise<number>"
    )]
    pub fn send<'env>(
        &self,
        env: &'env Env,
        messages: Unknown,
        port: Option<Unknown>,
        address: Option<Unknown>,
        flags: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let flags = send_flags(env, flags)?;
        let input = self.messages_input(env, messages, port, address)?;
        self.send_input(env, &input, flags, false)
    }

    /// `send` for one packed buffer plus lengths.
    #[napi(
        catch_unwind,
        ts_args_type = "packed: Uint8Array, lengths: Uint32Array | number[], port?: number, address?: string, flags?: number",
        ts_return_type = "Promise<number>"
    )]
    pub fn send_packed<'env>(
        &self,
        env: &'env Env,
        packed: Unknown,
        lengths: Unknown,
        port: Option<Unknown>,
        address: Option<Unknown>,
        flags: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let flags = send_flags(env, flags)?;
        let destination = self.destination_args(env, port, address)?;
        let input = packed_input(env, packed, lengths, destination)?;
        self.send_input(env, &input, flags, true)
    }

    /// Receives what is queued now, without waiting: up to `maxDatagrams` (default 64)
    /// datagrams of up to `maxSize` bytes (default 65535; longer ones are truncated and say so).
    /// Each comes as its own exact-size `Buffer` with its sender. Returns `[]` when nothing waits.
    #[napi(
        catch_unwind,
        ts_args_type = "maxDatagrams?: number, maxSize?: number",
        ts_return_type = "ReceivedDatagram[]"
    )]
    pub fn try_recv<'env>(
        &self,
        env: &'env Env,
        max_datagrams: Option<Unknown>,
        max_size: Option<Unknown>,
    ) -> Result<napi::bindgen_prelude::Array<'env>> {
        let (max, slot) = receive_sizes(env, max_datagrams, max_size, 64)?;
        let mut guard = self.state_mut(env)?;
        let state = &mut *guard;
        let fd = state.open_for_receive(env)?;
        let (list, drops) = receive_convenient(
            env,
            fd,
            &mut state.recv,
            max,
            slot,
            state.gro,
            ReceiveMode::Call,
        )?;
        if let Some(d) = drops {
            state.drops = d;
        }
        match list {
            Some(list) => Ok(list),
            None => env.create_array(0),
        }
    }

    /// Zero-allocation receive: fills `batch` (from `createRecvBatch`) with what is queued now,
    /// straight into its JS-allocated memory, and returns the count (also in `batch.count`).
    #[napi(catch_unwind, ts_args_type = "batch: RecvBatch")]
    pub fn try_recv_batch(&self, env: Env, batch: Unknown) -> Result<u32> {
        let batch = batch_arg(&env, batch)?;
        let mut guard = self.state_mut(&env)?;
        let state = &mut *guard;
        let fd = state.open_for_receive(&env)?;
        let gro = state.gro;
        let fill = fill_batch(&env, &batch, fd, &mut state.recv, gro, ReceiveMode::Call)?;
        if let Some(d) = fill.drops {
            state.drops = d;
        }
        Ok(fill.count as u32)
    }

    /// Event-driven receive, convenient shape: `callback` gets arrays of
    /// `{ data, address, port, family, truncated }`, one array per batch of up to
    /// `maxDatagrams` (default 1024) datagrams read by one `recvmmsg`. Replaces any previous
    /// receive handler. The socket must be bound (or connected) to receive.
    #[napi(
        catch_unwind,
        ts_args_type = "callback: (datagrams: ReceivedDatagram[]) => void, options?: { maxDatagrams?: number, maxSize?: number }"
    )]
    pub fn on_messages(&self, env: Env, callback: Unknown, options: Option<Unknown>) -> Result<()> {
        let callback = callback_arg(&env, callback)?;
        let options = match options {
            Some(o) if !matches!(o.get_type()?, ValueType::Undefined | ValueType::Null) => {
                if o.get_type()? != ValueType::Object {
                    return Err(type_error(&env, "options must be an object"));
                }
                Some(Object::from_unknown(o)?)
            }
            _ => None,
        };
        let (max, slot) = match options {
            Some(o) => receive_sizes(
                &env,
                o.get::<Unknown>("maxDatagrams")?,
                o.get::<Unknown>("maxSize")?,
                mmsg_core::MAX_MESSAGES_PER_CALL,
            )?,
            None => (mmsg_core::MAX_MESSAGES_PER_CALL, MAX_SLOT as usize),
        };
        let receiver = Receiver {
            callback: callback.create_ref()?,
            shape: ReceiverShape::Convenient { max, slot },
        };
        self.start_receiving(&env, receiver)
    }

    /// Event-driven receive, zero-allocation shape: `callback` gets the same `batch` object
    /// (see `createRecvBatch`) refilled for every batch. Read it before returning: the next
    /// batch overwrites it.
    #[napi(
        catch_unwind,
        ts_args_type = "batch: RecvBatch, callback: (batch: RecvBatch) => void"
    )]
    pub fn on_batch(&self, env: Env, batch: Unknown, callback: Unknown) -> Result<()> {
        let batch = batch_arg(&env, batch)?;
        check_batch(&env, &batch)?;
        let callback = callback_arg(&env, callback)?;
        let receiver = Receiver {
            callback: callback.create_ref()?,
            shape: ReceiverShape::Batch {
                batch: ObjectRef::from_unknown(batch.to_unknown())?,
            },
        };
        self.start_receiving(&env, receiver)
    }

    /// Stops event-driven delivery (queued datagrams stay in the kernel).
    #[napi(catch_unwind)]
    pub fn stop_receiving(&self, env: Env) -> Result<()> {
        let receiver = self.state_mut(&env)?.receiver.take();
        release_receiver(&env, receiver);
        update_interest(&env, &self.state)
    }

    /// Datagrams the kernel dropped because the receive queue was full (`SO_RXQ_OVFL`), as of
    /// the last receive. Counting starts when the first receive method is used.
    #[napi(getter)]
    pub fn drop_count(&self) -> u32 {
        self.state.borrow().drops
    }

    /// Sends `packed` as datagrams of `segmentSize` bytes each (the last may be shorter) to one
    /// destination, using Generic Segmentation Offload (`UDP_SEGMENT`: up to 64 datagrams per
    /// kernel send) when the kernel and route allow it, and plain batches otherwise (detected once
    /// per socket; a refusal switches GSO off for the socket and the send goes on without it).
    /// Returns how many datagrams were taken before the socket would block; a failing datagram
    /// `k` throws with `index: k`, `sent: k`.
    #[napi(
        catch_unwind,
        ts_args_type = "packed: Uint8Array, segmentSize: number, port?: number, address?: string, flags?: number"
    )]
    pub fn try_send_segmented(
        &self,
        env: Env,
        packed: Unknown,
        segment_size: Unknown,
        port: Option<Unknown>,
        address: Option<Unknown>,
        flags: Option<Unknown>,
    ) -> Result<u32> {
        let flags = send_flags(&env, flags)?;
        let payload = crate::convert::uint8_view(&env, packed, "packed")?;
        let segment_size =
            crate::convert::optional_uint(&env, Some(segment_size), "segmentSize", 65_535.0)?
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    range_error(&env, "segmentSize must be an integer from 1 to 65535")
                })?;
        let destination = self.destination_args(&env, port, address)?;
        let mut guard = self.state_mut(&env)?;
        let state = &mut *guard;
        let fd = state
            .socket
            .as_ref()
            .ok_or_else(|| closed_error(&env))?
            .raw_fd();
        if !state.queue.is_empty() {
            return Ok(0);
        }
        let report = mmsg_core::send_segmented(
            fd,
            &mut state.scratch,
            &mut state.gso,
            payload,
            segment_size as usize,
            destination,
            flags,
        );
        match report.stop {
            SendStop::Complete | SendStop::WouldBlock => Ok(report.sent as u32),
            SendStop::Failed(error) => Err(send_error_at(&env, &error, report.sent)),
        }
    }

    /// Whether this socket sends with GSO: `'unknown'` until the first segmented send,
    /// then `'available'` or `'unavailable'`.
    #[napi(getter, ts_return_type = "'unknown' | 'available' | 'unavailable'")]
    pub fn gso(&self) -> &'static str {
        match self.state.borrow().gso {
            GsoSupport::Unknown => "unknown",
            GsoSupport::Available => "available",
            GsoSupport::Unavailable => "unavailable",
        }
    }

    /// Generic Receive Offload (`UDP_GRO`): the kernel may coalesce consecutive equal-sized
    /// datagrams from one sender into one receive; this package splits them back, so handlers
    /// still see one entry per datagram. Receive slots must then be 65535 bytes to hold a
    /// coalesced group (the convenient shape's default; a `RecvBatch` uses 64 KiB slots cut from
    /// its slab while GRO is on).
    #[napi(catch_unwind, ts_args_type = "on: boolean")]
    pub fn set_gro(&self, env: Env, on: Unknown) -> Result<()> {
        let on = required_bool(&env, on, "on")?;
        self.with_socket(&env, |s| s.set_gro(on), "setsockopt")?;
        self.state_mut(&env)?.gro = on;
        Ok(())
    }

    /// `SO_BROADCAST`.
    #[napi(catch_unwind, ts_args_type = "on: boolean")]
    pub fn set_broadcast(&self, env: Env, on: Unknown) -> Result<()> {
        let on = required_bool(&env, on, "on")?;
        self.with_socket(&env, |s| s.set_broadcast(on), "setsockopt")
    }

    /// Unicast TTL / hop limit, 1–255.
    #[napi(catch_unwind, ts_args_type = "ttl: number")]
    pub fn set_ttl(&self, env: Env, ttl: Unknown) -> Result<()> {
        let ttl = required_uint(&env, ttl, "ttl", 1, 255)? as u8;
        self.with_socket(&env, |s| s.set_ttl(ttl), "setsockopt")
    }

    /// Multicast TTL / hop limit, 0–255.
    #[napi(catch_unwind, ts_args_type = "ttl: number")]
    pub fn set_multicast_ttl(&self, env: Env, ttl: Unknown) -> Result<()> {
        let ttl = required_uint(&env, ttl, "ttl", 0, 255)? as u8;
        self.with_socket(&env, |s| s.set_multicast_ttl(ttl), "setsockopt")
    }

    /// Whether multicast datagrams loop back to local listeners.
    #[napi(catch_unwind, ts_args_type = "on: boolean")]
    pub fn set_multicast_loopback(&self, env: Env, on: Unknown) -> Result<()> {
        let on = required_bool(&env, on, "on")?;
        self.with_socket(&env, |s| s.set_multicast_loopback(on), "setsockopt")
    }

    /// Outgoing multicast interface (an interface address for udp4; an index or `%name` for udp6).
    #[napi(catch_unwind, ts_args_type = "interface: string")]
    pub fn set_multicast_interface(&self, env: Env, interface: Unknown) -> Result<()> {
        let interface = required_string(&env, interface, "interface")?;
        self.membership_op(&env, |s| s.set_multicast_interface(&interface))
    }

    /// Joins a multicast group (`IP_ADD_MEMBERSHIP` / `IPV6_ADD_MEMBERSHIP`).
    #[napi(catch_unwind, ts_args_type = "group: string, interface?: string")]
    pub fn add_membership(
        &self,
        env: Env,
        group: Unknown,
        interface: Option<Unknown>,
    ) -> Result<()> {
        let group = required_string(&env, group, "group")?;
        let interface = optional_string(&env, interface, "interface")?;
        self.membership_op(&env, |s| {
            s.set_membership(&group, interface.as_deref(), true)
        })
    }

    /// Leaves a multicast group.
    #[napi(catch_unwind, ts_args_type = "group: string, interface?: string")]
    pub fn drop_membership(
        &self,
        env: Env,
        group: Unknown,
        interface: Option<Unknown>,
    ) -> Result<()> {
        let group = required_string(&env, group, "group")?;
        let interface = optional_string(&env, interface, "interface")?;
        self.membership_op(&env, |s| {
            s.set_membership(&group, interface.as_deref(), false)
        })
    }

    /// `SO_SNDBUF` in bytes, 1 to 2^31 − 1 (the kernel doubles the value and caps it at
    /// `net.core.wmem_max`; read it back with `getSendBufferSize`).
    #[napi(catch_unwind, ts_args_type = "bytes: number")]
    pub fn set_send_buffer_size(&self, env: Env, bytes: Unknown) -> Result<()> {
        let bytes = required_uint(&env, bytes, "bytes", 1, i32::MAX as u32)?;
        self.with_socket(&env, |s| s.set_send_buffer_size(bytes), "setsockopt")
    }

    /// `SO_RCVBUF` in bytes, 1 to 2^31 − 1 (capped by the kernel at `net.core.rmem_max`).
    #[napi(catch_unwind, ts_args_type = "bytes: number")]
    pub fn set_recv_buffer_size(&self, env: Env, bytes: Unknown) -> Result<()> {
        let bytes = required_uint(&env, bytes, "bytes", 1, i32::MAX as u32)?;
        self.with_socket(&env, |s| s.set_recv_buffer_size(bytes), "setsockopt")
    }

    /// The send buffer size the kernel uses (`SO_SNDBUF`, doubled by the kernel).
    #[napi(catch_unwind)]
    pub fn get_send_buffer_size(&self, env: Env) -> Result<u32> {
        self.with_socket(&env, |s| s.send_buffer_size(), "getsockopt")
    }

    /// The receive buffer size the kernel uses (`SO_RCVBUF`, doubled by the kernel).
    #[napi(catch_unwind)]
    pub fn get_recv_buffer_size(&self, env: Env) -> Result<u32> {
        self.with_socket(&env, |s| s.recv_buffer_size(), "getsockopt")
    }
}

impl UdpSocket {
    fn start_receiving(&self, env: &Env, receiver: Receiver) -> Result<()> {
        let previous = {
            let mut state = self.state_mut(env)?;
            state.open_for_receive(env)?;
            state.receiver.replace(receiver)
        };
        release_receiver(env, previous);
        update_interest(env, &self.state)
    }

    fn membership_op(
        &self,
        env: &Env,
        f: impl FnOnce(&mmsg_core::UdpSocket) -> std::result::Result<(), mmsg_core::MembershipError>,
    ) -> Result<()> {
        let state = self.state_ref(env)?;
        let socket = state.socket.as_ref().ok_or_else(|| closed_error(env))?;
        f(socket).map_err(|e| match e {
            mmsg_core::MembershipError::Address(a) => type_error(env, a.to_string()),
            mmsg_core::MembershipError::System(io) => {
                system_error(env, &io, "setsockopt", BatchPosition::default())
            }
        })
    }
}

fn release_receiver(env: &Env, receiver: Option<Receiver>) {
    if let Some(Receiver {
        shape: ReceiverShape::Batch { batch },
        ..
    }) = receiver
    {
        let _ = batch.unref(env);
    }
}

/// `(maxDatagrams, maxSize)` with defaults 64 and 65535.
fn receive_sizes(
    env: &Env,
    max_datagrams: Option<Unknown>,
    max_size: Option<Unknown>,
    default_max: usize,
) -> Result<(usize, usize)> {
    let max = crate::convert::optional_uint(
        env,
        max_datagrams,
        "maxDatagrams",
        mmsg_core::MAX_MESSAGES_PER_CALL as f64,
    )?
    .unwrap_or(default_max as u32) as usize;
    let slot = crate::convert::optional_uint(env, max_size, "maxSize", f64::from(MAX_SLOT))?
        .unwrap_or(MAX_SLOT) as usize;
    if max == 0 || slot == 0 {
        return Err(range_error(
            env,
            "maxDatagrams and maxSize must be at least 1",
        ));
    }
    Ok((max, slot))
}
