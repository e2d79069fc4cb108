//! One background thread that waits for sockets to become readable or writable (epoll), so that
//! JavaScript never busy-polls and no thread is spent per socket or per datagram.
//!
//! The reactor only *notifies*: the handler runs on the reactor thread and is expected to hand
//! the event over to the JS thread (the binding uses a thread-safe function). All reads and
//! writes of socket data happen on the JS thread. Interest is one-shot: after an event, a socket
//! is silent until it is armed again, so a slow consumer leaves datagrams in the kernel queue
//! instead of flooding itself with wake-ups.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::sys;

/// Readiness reported to a handler.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    /// Error or hang-up on the socket (the next send/recv will report it).
    pub error: bool,
}

type Handler = Arc<dyn Fn(Readiness) + Send + Sync>;

/// The process-wide reactor.
pub struct Reactor {
    epoll: OwnedFd,
    handlers: Mutex<HashMap<u64, Handler>>,
    next_token: AtomicU64,
}

static GLOBAL: OnceLock<io::Result<Reactor>> = OnceLock::new();

impl Reactor {
    /// The shared reactor, started on first use.
    pub fn global() -> io::Result<&'static Reactor> {
        let result = GLOBAL.get_or_init(|| {
            let reactor = Reactor {
                epoll: sys::epoll_create()?,
                handlers: Mutex::new(HashMap::new()),
                next_token: AtomicU64::new(1),
            };
            Ok(reactor)
        });
        match result {
            Ok(reactor) => {
                static STARTED: OnceLock<()> = OnceLock::new();
                STARTED.get_or_init(|| {
                    std::thread::Builder::new()
                        .name("sendmmsg-reactor".into())
                        .spawn(move || reactor.run())
                        .expect("spawn the reactor thread");
                });
                Ok(reactor)
            }
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }

    fn run(&self) {
        let mut events = Vec::with_capacity(64);
        loop {
            match sys::epoll_wait(self.epoll.as_raw_fd(), &mut events, 64) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(_) => return,
            }
            for &(bits, token) in &events {
                let handler = self
                    .handlers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&token)
                    .cloned();
                if let Some(handler) = handler {
                    handler(Readiness {
                        readable: bits & libc::EPOLLIN as u32 != 0,
                        writable: bits & libc::EPOLLOUT as u32 != 0,
                        error: bits & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0,
                    });
                }
            }
        }
    }

    /// Watches `fd` (initially with no interest). The registration must be dropped before `fd`
    /// is closed.
    pub fn register(
        &'static self,
        fd: RawFd,
        handler: impl Fn(Readiness) + Send + Sync + 'static,
    ) -> io::Result<Registration> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        self.handlers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, Arc::new(handler));
        if let Err(e) = sys::epoll_ctl(
            self.epoll.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            libc::EPOLLONESHOT as u32,
            token,
        ) {
            self.forget(token);
            return Err(e);
        }
        Ok(Registration {
            reactor: self,
            fd,
            token,
        })
    }

    fn forget(&self, token: u64) {
        self.handlers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&token);
    }
}

/// A socket's membership in the reactor. Dropping it stops all notifications.
pub struct Registration {
    reactor: &'static Reactor,
    fd: RawFd,
    token: u64,
}

impl Registration {
    /// Asks for one notification when the socket is readable and/or writable. Passing both
    /// `false` disarms it.
    pub fn arm(&self, readable: bool, writable: bool) -> io::Result<()> {
        let mut events = libc::EPOLLONESHOT as u32;
        if readable {
            events |= libc::EPOLLIN as u32;
        }
        if writable {
            events |= libc::EPOLLOUT as u32;
        }
        sys::epoll_ctl(
            self.reactor.epoll.as_raw_fd(),
            libc::EPOLL_CTL_MOD,
            self.fd,
            events,
            self.token,
        )
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The fd is still open here (the owner drops us first), so DEL cannot hit a reused fd.
        let _ = sys::epoll_ctl(
            self.reactor.epoll.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            self.fd,
            0,
            0,
        );
        self.reactor.forget(self.token);
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("fd", &self.fd)
            .field("token", &self.token)
            .finish()
    }
}
