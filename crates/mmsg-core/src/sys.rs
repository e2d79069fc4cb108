//! The only module with `unsafe`: thin, typed wrappers over the Linux system calls the crate uses.
//!
//! Every function here takes plain Rust values, makes exactly one system call (or a tight
//! EINTR-free sequence of them), and returns `io::Result`. Nothing here retries or interprets
//! errors; that is the job of the safe modules above (`send`, `recv`, `socket`, `reactor`).

use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use std::net::SocketAddr;

use crate::addr::SockAddr;

/// Turns a `-1` return into the thread's `errno`.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A `mmsghdr` with every field zero, including musl's padding words next to `msg_iovlen` and
/// `msg_controllen`: zeroed padding is what makes musl's layout read as the kernel's.
pub fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: `mmsghdr` is a plain C struct of integers and raw pointers; all-zero bytes are a
    // valid value for every field (null pointers, zero lengths).
    unsafe { MaybeUninit::<libc::mmsghdr>::zeroed().assume_init() }
}

/// An `iovec` describing `bytes`. The kernel only reads through it for sends.
pub fn iovec_for(bytes: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    }
}

/// An `iovec` describing writable `bytes` (for receives).
pub fn iovec_for_mut(bytes: &mut [u8]) -> libc::iovec {
    libc::iovec {
        iov_base: bytes.as_mut_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    }
}

/// `socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)`.
pub fn udp_socket(domain: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain system call with integer arguments.
    let fd = check(unsafe {
        libc::socket(
            domain,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2), is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fcntl(F_DUPFD_CLOEXEC)`: a new descriptor for the same open socket.
pub fn dup_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl with integer arguments; an fd that is not open yields EBADF, and the new
    // descriptor claims no ownership of the original.
    let new_fd = check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `new_fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new_fd) })
}

/// Sets or clears `O_NONBLOCK`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL/F_SETFL on an open descriptor; no pointers involved.
    let flags = check(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
    let wanted = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if wanted != flags {
        // SAFETY: as above.
        check(unsafe { libc::fcntl(raw, libc::F_SETFL, wanted) })?;
    }
    Ok(())
}

/// `getsockopt` for options whose value is a C `int`.
pub fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and `len` holds the size of `value`.
    check(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// `setsockopt` with any plain-old-data option value (`c_int`, `ip_mreqn`, `ipv6_mreq`, ...).
pub fn setsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a valid, initialised `T` for the duration of the call and the length
    // passed is exactly its size; the kernel only reads it.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// A `group_source_req` (RFC 3678) for `MCAST_JOIN_SOURCE_GROUP` / `MCAST_LEAVE_SOURCE_GROUP`.
pub fn group_source_req(
    interface: u32,
    group: &SockAddr,
    source: &SockAddr,
) -> libc::group_source_req {
    // SAFETY: `group_source_req` is integers and two `sockaddr_storage`s, for which all-zero
    // bytes are valid (family AF_UNSPEC). Each copy writes `byte_len()` bytes (a sockaddr_in or
    // sockaddr_in6, both smaller than sockaddr_storage) from the valid sockaddr behind
    // `as_ptr()` into the storage, which does not overlap it.
    unsafe {
        let mut req = MaybeUninit::<libc::group_source_req>::zeroed().assume_init();
        req.gsr_interface = interface;
        for (storage, addr) in [(&mut req.gsr_group, group), (&mut req.gsr_source, source)] {
            std::ptr::copy_nonoverlapping(
                addr.as_ptr().cast::<u8>(),
                (storage as *mut libc::sockaddr_storage).cast::<u8>(),
                addr.byte_len() as usize,
            );
        }
        req
    }
}

/// `bind(fd, addr)`.
pub fn bind(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: `addr.as_ptr()` points to an initialised sockaddr of `addr.byte_len()` bytes.
    check(unsafe { libc::bind(fd, addr.as_ptr(), addr.byte_len()) })?;
    Ok(())
}

/// `connect(fd, addr)`; with `None`, connects to `AF_UNSPEC`, which dissolves the association.
pub fn connect(fd: RawFd, addr: Option<&SockAddr>) -> io::Result<()> {
    match addr {
        Some(addr) => {
            // SAFETY: as in `bind`.
            check(unsafe { libc::connect(fd, addr.as_ptr(), addr.byte_len()) })?;
        }
        None => {
            let unspec = libc::sockaddr {
                sa_family: libc::AF_UNSPEC as libc::sa_family_t,
                sa_data: [0; 14],
            };
            // SAFETY: `unspec` is a valid sockaddr of the size passed.
            check(unsafe {
                libc::connect(fd, &unspec, size_of::<libc::sockaddr>() as libc::socklen_t)
            })?;
        }
    }
    Ok(())
}

/// Which end of a socket `socket_name` asks for.
#[derive(Clone, Copy, Debug)]
pub enum SocketEnd {
    Local,
    Peer,
}

/// `getsockname` / `getpeername`.
pub fn socket_name(fd: RawFd, end: SocketEnd) -> io::Result<SocketAddr> {
    let mut storage = SockAddrStorage::new();
    // SAFETY: `storage` is writable for `storage.len` bytes; the kernel writes at most that many
    // and stores the real length back.
    check(unsafe {
        match end {
            SocketEnd::Local => libc::getsockname(fd, storage.as_mut_ptr(), &mut storage.len),
            SocketEnd::Peer => libc::getpeername(fd, storage.as_mut_ptr(), &mut storage.len),
        }
    })?;
    storage
        .decode()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
}

/// Storage the kernel can write a source address into (recvmmsg's `msg_name`, getsockname).
#[derive(Clone, Copy)]
#[repr(C)]
pub struct SockAddrStorage {
    raw: libc::sockaddr_in6,
    pub len: libc::socklen_t,
}

impl SockAddrStorage {
    pub fn new() -> Self {
        SockAddrStorage {
            // SAFETY: sockaddr_in6 is plain integers; all-zero is valid.
            raw: unsafe { MaybeUninit::zeroed().assume_init() },
            len: size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        }
    }

    pub fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        (&mut self.raw as *mut libc::sockaddr_in6).cast()
    }

    /// The address the kernel wrote, if it is IPv4 or IPv6.
    pub fn decode(&self) -> Option<SocketAddr> {
        let base = (&self.raw as *const libc::sockaddr_in6).cast::<libc::sockaddr>();
        let len = self.len as usize;
        match self.raw.sin6_family as libc::c_int {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the kernel wrote a sockaddr_in at `base`, which the
                // (larger) sockaddr_in6 storage holds entirely; read_unaligned needs no alignment.
                let v4 = unsafe { std::ptr::read_unaligned(base.cast::<libc::sockaddr_in>()) };
                Some(SockAddr::V4(v4).to_socket_addr())
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                Some(SockAddr::V6(self.raw).to_socket_addr())
            }
            _ => None,
        }
    }
}

impl Default for SockAddrStorage {
    fn default() -> Self {
        Self::new()
    }
}

/// `if_nametoindex`: the index of a network interface, by name.
pub fn interface_index(name: &str) -> Option<u32> {
    let c_name = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c_name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The raw `sendmmsg(2)` system call. Returns how many headers the kernel consumed.
///
/// Not libc's `sendmmsg()`: on 64-bit musl that function loops over `sendmsg`, one system call per
/// datagram. The headers must come from [`zeroed_mmsghdr`] so musl's padding words are zero.
///
/// # Safety
/// Every `msg_iov`/`msg_name` pointer in `headers` must point to memory that is valid for reads
/// (iovec arrays and the bytes they describe, and socket addresses of `msg_namelen` bytes) for the
/// duration of the call.
pub unsafe fn sendmmsg(
    fd: RawFd,
    headers: &mut [libc::mmsghdr],
    flags: libc::c_int,
) -> io::Result<usize> {
    // SAFETY: the caller guarantees the pointers inside `headers`; `headers` itself is a valid
    // array of `headers.len()` entries whose `msg_len` fields the kernel writes.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sendmmsg,
            fd as libc::c_long,
            headers.as_mut_ptr(),
            headers.len() as libc::c_ulong,
            flags as libc::c_long,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `sendto(2)` of one datagram, to `destination` or (None) the connected peer. Returns the
/// bytes sent.
pub fn sendto(
    fd: RawFd,
    bytes: &[u8],
    destination: Option<&SockAddr>,
    flags: libc::c_int,
) -> io::Result<usize> {
    let (name, name_len) = match destination {
        Some(address) => (address.as_ptr(), address.byte_len()),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: `bytes` is a live slice of `bytes.len()` readable bytes and `name` points at
    // `name_len` bytes of a live socket address (or is null with 0), both for the whole call.
    // The raw system call, as elsewhere here (libc's wrapper is a cancellation point).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd as libc::c_long,
            bytes.as_ptr(),
            bytes.len(),
            flags as libc::c_long,
            name,
            name_len as libc::c_long,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Which system call [`send_one`] makes for `header`: `sendto(2)` for one buffer and no
/// control data, `sendmsg(2)` otherwise.
pub fn send_one_syscall(header: &libc::msghdr) -> &'static str {
    if header.msg_iovlen == 1 && header.msg_controllen == 0 {
        "sendto"
    } else {
        "sendmsg"
    }
}

/// Sends the one message `header` describes, as `sendmmsg(2)` would with a single header, but
/// with the cheaper single-message call ([`send_one_syscall`]): `sendto(2)` copies no `msghdr`
/// and no iovec array into the kernel. On success sets `msg_len` and returns 1.
///
/// # Safety
/// As for [`sendmmsg`]: `header`'s `msg_iov` (and the bytes it describes), `msg_name` and
/// `msg_control` must be valid for reads for the duration of the call.
pub unsafe fn send_one(
    fd: RawFd,
    header: &mut libc::mmsghdr,
    flags: libc::c_int,
) -> io::Result<usize> {
    let h = &header.msg_hdr;
    let ret = if send_one_syscall(h) == "sendto" {
        // SAFETY: the caller guarantees `msg_iov` points at one valid iovec whose bytes are
        // readable, and `msg_name` at `msg_namelen` readable bytes (or is null with 0).
        // The raw system call, as for `sendmmsg`: libc's wrapper is a thread-cancellation
        // point whose bookkeeping costs about as much as the rest of this call's user time.
        unsafe {
            let iov = &*h.msg_iov;
            libc::syscall(
                libc::SYS_sendto,
                fd as libc::c_long,
                iov.iov_base,
                iov.iov_len,
                flags as libc::c_long,
                h.msg_name,
                h.msg_namelen as libc::c_long,
            )
        }
    } else {
        // SAFETY: the caller guarantees every pointer inside `header`.
        unsafe {
            libc::syscall(
                libc::SYS_sendmsg,
                fd as libc::c_long,
                h as *const libc::msghdr,
                flags as libc::c_long,
            )
        }
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        header.msg_len = ret as libc::c_uint;
        Ok(1)
    }
}

/// The raw `recvmmsg(2)` system call (with an optional timeout).
///
/// # Safety
/// Every `msg_iov` in `headers` must describe memory valid for writes, and every `msg_name` /
/// `msg_control` pointer must point to writable storage of the length given beside it, for the
/// duration of the call.
pub unsafe fn recvmmsg(
    fd: RawFd,
    headers: &mut [libc::mmsghdr],
    flags: libc::c_int,
    timeout: Option<std::time::Duration>,
) -> io::Result<usize> {
    let mut ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    let ts_ptr = ts
        .as_mut()
        .map_or(std::ptr::null_mut(), |t| t as *mut libc::timespec);
    // SAFETY: the caller guarantees the buffers behind `headers`; `ts_ptr` is null or points to
    // a live timespec.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_recvmmsg,
            fd as libc::c_long,
            headers.as_mut_ptr(),
            headers.len() as libc::c_ulong,
            flags as libc::c_long,
            ts_ptr,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Reads the first control message of `header` with the given level and type as an `int`-sized
/// (or smaller) value, e.g. `SO_RXQ_OVFL` (u32) or `UDP_GRO` (int).
pub fn cmsg_u32(header: &libc::msghdr, level: libc::c_int, kind: libc::c_int) -> Option<u32> {
    // `msg_controllen` is `usize` on glibc and `u32` on musl: the cast is needed on one of them.
    #[allow(clippy::unnecessary_cast)]
    let control_len = header.msg_controllen as usize;
    if header.msg_control.is_null() || control_len == 0 {
        return None;
    }
    // SAFETY: `header` was filled by recvmmsg; its control buffer is owned by the caller and the
    // CMSG_* macros stay within `msg_controllen`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(header);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == level && (*cmsg).cmsg_type == kind {
                let data = libc::CMSG_DATA(cmsg);
                let payload = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                return Some(match payload {
                    2 => u32::from(std::ptr::read_unaligned(data.cast::<u16>())),
                    n if n >= 4 => std::ptr::read_unaligned(data.cast::<u32>()),
                    _ => return None,
                });
            }
            cmsg = libc::CMSG_NXTHDR(header, cmsg);
        }
    }
    None
}

/// Takes one entry from the socket's error queue (`MSG_ERRQUEUE`, filled when `IP_RECVERR` /
/// `IPV6_RECVERR` is on) and returns its errno, or `None` if the queue is empty.
pub fn take_queued_error(fd: RawFd) -> Option<io::Error> {
    let mut payload = [0u8; 64];
    let mut iov = iovec_for_mut(&mut payload);
    let mut control = [0u64; 32];
    // SAFETY: a zeroed msghdr (valid) pointing at `iov` (describing `payload`) and at `control`,
    // all live for the call; the kernel writes at most their stated lengths.
    let received = unsafe {
        let mut header = MaybeUninit::<libc::msghdr>::zeroed().assume_init();
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = libc::recvmsg(fd, &mut header, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT);
        (n >= 0).then_some(header)
    }?;
    for (level, kind) in [
        (libc::SOL_IP, libc::IP_RECVERR),
        (libc::SOL_IPV6, libc::IPV6_RECVERR),
    ] {
        // `sock_extended_err` starts with `ee_errno: u32`.
        if let Some(errno) = cmsg_u32(&received, level, kind) {
            return Some(io::Error::from_raw_os_error(errno as i32));
        }
    }
    None
}

/// What one `recvmsg(MSG_ERRQUEUE)` returned (see [`recv_error_queue`]).
pub struct ErrorQueueRead {
    /// Bytes of the original datagram copied into the payload buffer.
    pub payload_len: usize,
    /// `msg_flags` (`MSG_TRUNC`: the payload did not fit, `MSG_CTRUNC`: the control data).
    pub flags: libc::c_int,
    /// `msg_name`: the destination of the datagram the error is about.
    pub destination: Option<SocketAddr>,
    /// Bytes of `control` the kernel filled.
    pub control_len: usize,
}

/// One `recvmsg(fd, MSG_ERRQUEUE | MSG_DONTWAIT)`: takes the oldest error-queue entry, its
/// payload into `payload` and its control messages into `control`. `Ok(None)`: the queue is
/// empty (`EAGAIN`). Unlike [`take_queued_error`] it keeps everything the kernel gave.
pub fn recv_error_queue(
    fd: RawFd,
    payload: &mut [u8],
    control: &mut [u64],
) -> io::Result<Option<ErrorQueueRead>> {
    let mut iov = iovec_for_mut(payload);
    let mut name = SockAddrStorage::new();
    // SAFETY: a zeroed msghdr (valid) pointing at `iov` (describing `payload`), at `name`
    // (writable for `name.len` bytes) and at `control` (writable for its byte size), all live
    // for the call; the kernel writes at most those lengths and stores the real ones back.
    let (n, header) = unsafe {
        let mut header = MaybeUninit::<libc::msghdr>::zeroed().assume_init();
        header.msg_name = name.as_mut_ptr().cast();
        header.msg_namelen = name.len;
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr().cast();
        header.msg_controllen = std::mem::size_of_val(control) as _;
        let n = libc::recvmsg(fd, &mut header, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT);
        (n, header)
    };
    if n < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::EAGAIN) => Ok(None),
            _ => Err(error),
        };
    }
    name.len = header.msg_namelen;
    // `msg_controllen` is `usize` on glibc and `u32` on musl: the cast is needed on one of them.
    #[allow(clippy::unnecessary_cast)]
    let control_len = (header.msg_controllen as usize).min(std::mem::size_of_val(control));
    Ok(Some(ErrorQueueRead {
        payload_len: n as usize,
        flags: header.msg_flags,
        destination: if header.msg_namelen == 0 {
            None
        } else {
            name.decode()
        },
        control_len,
    }))
}

/// Space, in bytes, that a control message carrying `payload` bytes takes.
pub fn cmsg_space(payload: usize) -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic.
    unsafe { libc::CMSG_SPACE(payload as u32) as usize }
}

/// Writes one control message (`level`, `kind`, a `u16` payload) at the start of `buffer`, which
/// must be at least `cmsg_space(2)` bytes and 8-byte aligned; returns the bytes used.
pub fn write_cmsg_u16(
    buffer: &mut [u64],
    level: libc::c_int,
    kind: libc::c_int,
    value: u16,
) -> usize {
    let space = cmsg_space(size_of::<u16>());
    assert!(buffer.len() * 8 >= space, "control buffer too small");
    // SAFETY: a zeroed msghdr whose control area is `buffer` (aligned, `space` bytes long), so
    // CMSG_FIRSTHDR returns a pointer inside `buffer` and CMSG_DATA leaves room for 2 bytes.
    unsafe {
        let mut header = MaybeUninit::<libc::msghdr>::zeroed().assume_init();
        header.msg_control = buffer.as_mut_ptr().cast();
        header.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&header);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), value);
    }
    space
}

/// `epoll_create1(EPOLL_CLOEXEC)`.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain system call.
    let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `epoll_ctl(op, fd, events, token)`.
pub fn epoll_ctl(
    epfd: RawFd,
    op: libc::c_int,
    fd: RawFd,
    events: u32,
    token: u64,
) -> io::Result<()> {
    let mut event = libc::epoll_event { events, u64: token };
    // SAFETY: `event` is a valid epoll_event for the duration of the call.
    check(unsafe { libc::epoll_ctl(epfd, op, fd, &mut event) })?;
    Ok(())
}

/// `epoll_wait`, returning `(events, token)` pairs into `out`.
pub fn epoll_wait(epfd: RawFd, out: &mut Vec<(u32, u64)>, max: usize) -> io::Result<()> {
    let mut events: Vec<libc::epoll_event> = vec![libc::epoll_event { events: 0, u64: 0 }; max];
    // SAFETY: `events` has room for `max` entries.
    let n = check(unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), max as libc::c_int, -1) })?;
    out.clear();
    out.extend(events[..n as usize].iter().map(|e| (e.events, e.u64)));
    Ok(())
}

/// The identity of the open file behind a descriptor (`fstat`'s device and inode): a number
/// that was closed and reused by another socket has another identity.
pub fn file_identity(fd: RawFd) -> io::Result<(u64, u64)> {
    let mut stat = MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `stat` is valid for writes of one `struct stat`; fstat writes at most that.
    check(unsafe { libc::fstat(fd, stat.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so the struct is initialised (it was zeroed before, too).
    let stat = unsafe { stat.assume_init() };
    // The field types differ between targets (musl, arm64): the casts are needed on some.
    #[allow(clippy::unnecessary_cast)]
    Ok((stat.st_dev as u64, stat.st_ino as u64))
}

/// Closes a descriptor this crate created and handed out as a number (see
/// `Endpoint::public_fd`). The caller has checked it still refers to the same open file.
pub fn close_raw(fd: RawFd) {
    // SAFETY: closing an integer descriptor touches no memory; the caller checked identity, so
    // no other owner's descriptor is closed.
    unsafe {
        libc::close(fd);
    }
}

/// Leaks an `OwnedFd` into a plain number that the JS side may use and even close.
pub fn into_raw(fd: OwnedFd) -> RawFd {
    std::os::fd::IntoRawFd::into_raw_fd(fd)
}

/// Bytes a control-message header takes before its payload (`CMSG_LEN(0)`).
pub fn cmsg_header_len() -> usize {
    // SAFETY: CMSG_LEN is pure arithmetic.
    unsafe { libc::CMSG_LEN(0) as usize }
}

/// `CMSG_ALIGN(len)`: the length rounded up to the control-message alignment.
pub fn cmsg_align(len: usize) -> usize {
    cmsg_space(len) - cmsg_space(0)
}

/// One raw control message found by [`cmsg_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawCmsg<'a> {
    pub level: libc::c_int,
    pub kind: libc::c_int,
    pub data: &'a [u8],
}

/// The control message starting at byte `offset` of `control` (a received `msg_control` cut to
/// its `msg_controllen`), and the offset of the next one. `None` at the end, or where a header
/// is cut or claims more bytes than remain (what `CMSG_NXTHDR` treats as the end too).
pub fn cmsg_at(control: &[u8], offset: usize) -> Option<(RawCmsg<'_>, usize)> {
    let header_len = cmsg_header_len();
    let rest = control.get(offset..)?;
    if rest.len() < size_of::<libc::cmsghdr>() || rest.len() < header_len {
        return None;
    }
    // SAFETY: `rest` holds at least `size_of::<cmsghdr>()` initialised bytes; read_unaligned
    // needs no alignment, and cmsghdr is plain integers, valid for any bit pattern.
    let header = unsafe { std::ptr::read_unaligned(rest.as_ptr().cast::<libc::cmsghdr>()) };
    // `cmsg_len` is `usize` on glibc and `u32` on musl: the cast is needed on one of them.
    #[allow(clippy::unnecessary_cast)]
    let len = header.cmsg_len as usize;
    if len < header_len || len > rest.len() {
        return None;
    }
    let next = offset.checked_add(cmsg_align(len))?;
    Some((
        RawCmsg {
            level: header.cmsg_level,
            kind: header.cmsg_type,
            data: &rest[header_len..len],
        },
        next,
    ))
}

/// Writes one control message (header and `data`) at byte `offset` of `control`; returns the
/// bytes it takes with padding (`CMSG_SPACE(data.len())`), or `None` if it does not fit.
pub fn write_cmsg(
    control: &mut [u8],
    offset: usize,
    level: libc::c_int,
    kind: libc::c_int,
    data: &[u8],
) -> Option<usize> {
    let space = cmsg_space(data.len());
    let header_len = cmsg_header_len();
    let room = control.get_mut(offset..)?;
    if room.len() < space {
        return None;
    }
    // SAFETY: cmsghdr is plain integers (and, on musl, a private padding word): all-zero bytes
    // are a valid value.
    let mut header = unsafe { MaybeUninit::<libc::cmsghdr>::zeroed().assume_init() };
    header.cmsg_level = level;
    header.cmsg_type = kind;
    header.cmsg_len = (header_len + data.len()) as _;
    room[..space].fill(0);
    // SAFETY: `room` has at least `space >= size_of::<cmsghdr>()` writable bytes;
    // write_unaligned needs no alignment.
    unsafe { std::ptr::write_unaligned(room.as_mut_ptr().cast::<libc::cmsghdr>(), header) };
    room[header_len..header_len + data.len()].copy_from_slice(data);
    Some(space)
}

/// The bytes of a `[u64]` control buffer (its 8-byte alignment is what `msg_control` wants).
pub fn words_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding and any byte pattern of u8 is valid; the length is exact and
    // the lifetime is the borrow's.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
}

/// Writable bytes of a `[u64]` control buffer.
pub fn words_as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as in `words_as_bytes`; every byte pattern is a valid u64, so writes through the
    // byte view cannot make the words invalid; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) }
}

// ---- libuv's poll handle, found at run time in the host process -----------------------------
//
// Node.js (and Electron) export libuv's functions to addons. Watching a socket with a
// `uv_poll_t` on the JS thread's own loop saves the cross-thread wake-up of the reactor thread
// (see `looppoll.rs`). A host without them (Bun) keeps the reactor: nothing is linked, each
// symbol is looked up with `dlsym`.

/// `uv_poll_cb(uv_poll_t* handle, int status, int events)`.
pub type UvPollCb =
    unsafe extern "C" fn(handle: *mut libc::c_void, status: libc::c_int, events: libc::c_int);
/// `uv_close_cb(uv_handle_t* handle)`.
pub type UvCloseCb = unsafe extern "C" fn(handle: *mut libc::c_void);

/// The libuv functions the loop poller uses.
pub struct UvApi {
    handle_size: unsafe extern "C" fn(libc::c_int) -> usize,
    poll_init:
        unsafe extern "C" fn(*mut libc::c_void, *mut libc::c_void, libc::c_int) -> libc::c_int,
    poll_start: unsafe extern "C" fn(*mut libc::c_void, libc::c_int, UvPollCb) -> libc::c_int,
    poll_stop: unsafe extern "C" fn(*mut libc::c_void) -> libc::c_int,
    close: unsafe extern "C" fn(*mut libc::c_void, UvCloseCb),
    unref: unsafe extern "C" fn(*mut libc::c_void),
    ref_: unsafe extern "C" fn(*mut libc::c_void),
}

/// `UV_POLL` in `uv_handle_type`.
const UV_POLL: libc::c_int = 8;

fn lookup(name: &std::ffi::CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only searches the loaded
    // objects; a null result means "absent".
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!symbol.is_null()).then_some(symbol)
}

impl UvApi {
    /// The host's libuv functions, looked up once; `None` if any is missing.
    pub fn get() -> Option<&'static UvApi> {
        static API: std::sync::OnceLock<Option<UvApi>> = std::sync::OnceLock::new();
        API.get_or_init(|| {
            // SAFETY: each symbol, when present, is libuv's function of that name, whose C
            // signature is the function pointer type it is transmuted to (libuv 1.x ABI).
            unsafe {
                Some(UvApi {
                    handle_size: std::mem::transmute::<
                        *mut libc::c_void,
                        unsafe extern "C" fn(libc::c_int) -> usize,
                    >(lookup(c"uv_handle_size")?),
                    poll_init: std::mem::transmute::<
                        *mut libc::c_void,
                        unsafe extern "C" fn(
                            *mut libc::c_void,
                            *mut libc::c_void,
                            libc::c_int,
                        ) -> libc::c_int,
                    >(lookup(c"uv_poll_init")?),
                    poll_start: std::mem::transmute::<
                        *mut libc::c_void,
                        unsafe extern "C" fn(
                            *mut libc::c_void,
                            libc::c_int,
                            UvPollCb,
                        ) -> libc::c_int,
                    >(lookup(c"uv_poll_start")?),
                    poll_stop: std::mem::transmute::<
                        *mut libc::c_void,
                        unsafe extern "C" fn(*mut libc::c_void) -> libc::c_int,
                    >(lookup(c"uv_poll_stop")?),
                    close: std::mem::transmute::<
                        *mut libc::c_void,
                        unsafe extern "C" fn(*mut libc::c_void, UvCloseCb),
                    >(lookup(c"uv_close")?),
                    unref: std::mem::transmute::<
                        *mut libc::c_void,
                        unsafe extern "C" fn(*mut libc::c_void),
                    >(lookup(c"uv_unref")?),
                    ref_: std::mem::transmute::<
                        *mut libc::c_void,
                        unsafe extern "C" fn(*mut libc::c_void),
                    >(lookup(c"uv_ref")?),
                })
            }
        })
        .as_ref()
    }

    /// Bytes of a `uv_poll_t` in this libuv.
    pub fn poll_size(&self) -> usize {
        // SAFETY: uv_handle_size takes a handle type and returns a size; no memory involved.
        unsafe { (self.handle_size)(UV_POLL) }
    }

    /// `uv_poll_init(loop, handle, fd)` then `uv_unref(handle)` (liveness is the caller's
    /// business). `handle` must point to `poll_size()` writable, 8-byte aligned bytes that stay
    /// put until the close callback.
    ///
    /// # Safety
    /// `event_loop` must be the calling thread's live `uv_loop_t`, `handle` as described.
    pub unsafe fn poll_init(
        &self,
        event_loop: *mut libc::c_void,
        handle: *mut libc::c_void,
        fd: RawFd,
    ) -> io::Result<()> {
        // SAFETY: guaranteed by the caller (see above).
        let rc = unsafe { (self.poll_init)(event_loop, handle, fd) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        // SAFETY: `handle` was just initialised.
        unsafe { (self.unref)(handle) };
        Ok(())
    }

    /// `uv_poll_start(handle, events, cb)`.
    ///
    /// # Safety
    /// `handle` must be an initialised, not closed `uv_poll_t` of the calling thread's loop.
    pub unsafe fn poll_start(
        &self,
        handle: *mut libc::c_void,
        events: libc::c_int,
        cb: UvPollCb,
    ) -> io::Result<()> {
        // SAFETY: guaranteed by the caller.
        let rc = unsafe { (self.poll_start)(handle, events, cb) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        Ok(())
    }

    /// `uv_poll_stop(handle)`.
    ///
    /// # Safety
    /// As for `poll_start`.
    pub unsafe fn poll_stop(&self, handle: *mut libc::c_void) {
        // SAFETY: guaranteed by the caller.
        unsafe { (self.poll_stop)(handle) };
    }

    /// `uv_close(handle, cb)`: no poll callback runs after this; `cb` runs on a later loop turn.
    ///
    /// # Safety
    /// As for `poll_start`; `handle` must not be used afterwards except by `cb`.
    pub unsafe fn close(&self, handle: *mut libc::c_void, cb: UvCloseCb) {
        // SAFETY: guaranteed by the caller.
        unsafe { (self.close)(handle, cb) };
    }
}

/// What the poll callback needs: the handler and the libuv functions.
struct LoopPollContext {
    api: &'static UvApi,
    handler: Box<dyn Fn(u32)>,
    /// The events the poll is started with, shared with its `LoopPoll`: libuv stops a poll
    /// by itself when the descriptor reports an error, and the callback records that here so
    /// that the next `arm` starts it again.
    events: std::rc::Rc<std::cell::Cell<libc::c_int>>,
}

/// A `uv_poll_t` watching one descriptor on the JS thread's loop. Unlike the reactor's one-shot
/// interest it stays started with the events last asked for (level-triggered), so a socket that
/// is read after every wake-up costs no epoll_ctl; `arm(false, false)` stops it. Not `Send`: it
/// lives and dies on the loop's thread.
pub struct LoopPoll {
    /// `uv_poll_t` memory, its first word (`data`) pointing at the context; freed by the close
    /// callback, never before.
    handle: *mut libc::c_void,
    api: &'static UvApi,
    /// The events the poll is started with (0: stopped).
    events: std::rc::Rc<std::cell::Cell<libc::c_int>>,
}

unsafe extern "C" fn on_loop_poll(
    handle: *mut libc::c_void,
    status: libc::c_int,
    events: libc::c_int,
) {
    // SAFETY: `data` (the first word of every libuv handle) was set to our context by
    // `LoopPoll::new`, and libuv calls this only between `uv_poll_start` and `uv_close`, while
    // the context is alive.
    let context = unsafe { &*(*(handle as *mut *const LoopPollContext)) };
    // The poll stays started (level-triggered): the handler re-arms with what it still wants,
    // and `arm` does nothing when that is unchanged, so a busy socket costs no epoll_ctl per
    // wake-up. A handler that wants nothing more (back-pressure) stops it with `arm(false, false)`.
    let mut bits = 0u32;
    if events & 1 != 0 {
        bits |= 1; // UV_READABLE
    }
    if events & 2 != 0 {
        bits |= 2; // UV_WRITABLE
    }
    if events & UV_PRIORITIZED != 0 {
        // Only asked for by `arm_errors_only`: libuv reports a bare POLLERR as the events the
        // poll asked for (POLLPRI, which a UDP socket never raises itself) and keeps the poll
        // started. It is the error report the caller is waiting for.
        bits |= 4;
    }
    if status < 0 {
        // An error on the descriptor (a pending error or a non-empty error queue), and libuv
        // has stopped the poll: the next `arm` must start it again.
        bits |= 4;
        context.events.set(0);
    }
    (context.handler)(bits);
}

unsafe extern "C" fn on_loop_poll_closed(handle: *mut libc::c_void) {
    // SAFETY: libuv calls this once, after which it never touches `handle`; both allocations
    // were made by `LoopPoll::new` with `Box::into_raw` and are freed exactly here.
    unsafe {
        let context = *(handle as *mut *mut LoopPollContext);
        let words = poll_words((*context).api);
        drop(Box::from_raw(context));
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
            handle as *mut u64,
            words,
        )));
    }
}

/// Size of a `uv_poll_t` in 8-byte words (the allocation is a `Box<[u64]>`, for alignment).
fn poll_words(api: &UvApi) -> usize {
    api.poll_size().div_ceil(8).max(1)
}

impl LoopPoll {
    /// Watches `fd` on `event_loop` (the calling thread's libuv loop, as `napi_get_uv_event_loop`
    /// gives it); `handler(bits)` (1 readable, 2 writable, 4 error) runs on that thread after
    /// `arm`. `None` when the host has no libuv to lend.
    ///
    /// # Safety
    /// `event_loop` must be the calling thread's live `uv_loop_t` (what
    /// `napi_get_uv_event_loop` returns for the calling thread's environment), and the returned
    /// `LoopPoll` must be used and dropped on that thread while the loop is alive.
    pub unsafe fn new(
        event_loop: *mut libc::c_void,
        fd: RawFd,
        handler: Box<dyn Fn(u32)>,
    ) -> Option<io::Result<LoopPoll>> {
        let api = UvApi::get()?;
        if event_loop.is_null() {
            return None;
        }
        let words = poll_words(api);
        let memory: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        let handle = Box::into_raw(memory) as *mut u64 as *mut libc::c_void;
        let events = std::rc::Rc::new(std::cell::Cell::new(0));
        let context = Box::into_raw(Box::new(LoopPollContext {
            api,
            handler,
            events: std::rc::Rc::clone(&events),
        }));
        // SAFETY: `handle` points at `poll_size()` zeroed, 8-byte aligned bytes that stay put
        // until `on_loop_poll_closed`; `event_loop` is this thread's loop (this function's
        // contract).
        if let Err(e) = unsafe { api.poll_init(event_loop, handle, fd) } {
            // SAFETY: never initialised, so libuv knows nothing of either allocation.
            unsafe {
                drop(Box::from_raw(context));
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    handle as *mut u64,
                    words,
                )));
            }
            return Some(Err(e));
        }
        // SAFETY: `data` is the first field of uv_handle_t; uv_poll_init leaves it for us.
        unsafe { *(handle as *mut *mut LoopPollContext) = context };
        Some(Ok(LoopPoll {
            handle,
            api,
            events,
        }))
    }

    /// Asks for notifications while readable and/or writable (both false: none).
    pub fn arm(&self, readable: bool, writable: bool) -> io::Result<()> {
        let events = i32::from(readable) | (i32::from(writable) << 1);
        if events == self.events.get() {
            return Ok(());
        }
        if events == 0 {
            // SAFETY: the handle is initialised and not closed (closing happens in Drop).
            unsafe { self.api.poll_stop(self.handle) };
            self.events.set(0);
            return Ok(());
        }
        // SAFETY: as above; the callback matches libuv's uv_poll_cb.
        let started = unsafe { self.api.poll_start(self.handle, events, on_loop_poll) };
        self.events.set(if started.is_ok() { events } else { 0 });
        started
    }
}

/// libuv's `UV_PRIORITIZED` (`POLLPRI`): never reported by a UDP socket, so a poll started
/// with it alone wakes only for errors (epoll always reports `EPOLLERR`).
const UV_PRIORITIZED: libc::c_int = 8;

impl LoopPoll {
    /// Asks for notifications only when the descriptor reports an error (for a UDP socket: a
    /// pending error or a non-empty error queue), not for readability. The handler then gets
    /// bit 4; libuv stops the poll at each such report, so call this again after handling it.
    /// `arm(false, false)` stops it.
    pub fn arm_errors_only(&self) -> io::Result<()> {
        if self.events.get() == UV_PRIORITIZED {
            return Ok(());
        }
        // SAFETY: the handle is initialised and not closed (closing happens in Drop); the
        // callback matches libuv's uv_poll_cb.
        let started = unsafe {
            self.api
                .poll_start(self.handle, UV_PRIORITIZED, on_loop_poll)
        };
        self.events
            .set(if started.is_ok() { UV_PRIORITIZED } else { 0 });
        started
    }
}

impl LoopPoll {
    /// Whether the poll, while armed, keeps the loop (the process) alive (`uv_ref`/`uv_unref`).
    pub fn set_ref(&self, on: bool) {
        // SAFETY: the handle is initialised and not closed (closing happens in Drop).
        unsafe {
            if on {
                (self.api.ref_)(self.handle)
            } else {
                (self.api.unref)(self.handle)
            }
        }
    }
}

impl Drop for LoopPoll {
    fn drop(&mut self) {
        // SAFETY: the handle is live; after uv_close no poll callback runs, and the memory is
        // freed by the close callback (on a later loop turn), not here.
        unsafe { self.api.close(self.handle, on_loop_poll_closed) };
    }
}

// ---- calling a JS function from a loop callback --------------------------------------------
//
// A `LoopPoll` callback runs on the JS thread but outside JavaScript. Calling the socket's JS
// handler right there (instead of bouncing through a thread-safe function, one more loop turn)
// is what keeps a request/response round trip as short as node:dgram's. Like libuv's, N-API's
// functions are the host's own, looked up with `dlsym`; `napi_make_callback` runs the function
// inside a callback scope, so microtasks and `process.nextTick` callbacks run when it returns,
// as after any I/O callback in Node.

type NapiEnv = *mut libc::c_void;
type NapiValue = *mut libc::c_void;
type NapiRef = *mut libc::c_void;
type NapiStatus = libc::c_int;

#[allow(clippy::type_complexity)]
struct NapiApi {
    open_handle_scope: unsafe extern "C" fn(NapiEnv, *mut *mut libc::c_void) -> NapiStatus,
    close_handle_scope: unsafe extern "C" fn(NapiEnv, *mut libc::c_void) -> NapiStatus,
    create_reference: unsafe extern "C" fn(NapiEnv, NapiValue, u32, *mut NapiRef) -> NapiStatus,
    delete_reference: unsafe extern "C" fn(NapiEnv, NapiRef) -> NapiStatus,
    get_reference_value: unsafe extern "C" fn(NapiEnv, NapiRef, *mut NapiValue) -> NapiStatus,
    create_object: unsafe extern "C" fn(NapiEnv, *mut NapiValue) -> NapiStatus,
    create_string_utf8:
        unsafe extern "C" fn(NapiEnv, *const libc::c_char, usize, *mut NapiValue) -> NapiStatus,
    create_uint32: unsafe extern "C" fn(NapiEnv, u32, *mut NapiValue) -> NapiStatus,
    async_init:
        unsafe extern "C" fn(NapiEnv, NapiValue, NapiValue, *mut *mut libc::c_void) -> NapiStatus,
    async_destroy: unsafe extern "C" fn(NapiEnv, *mut libc::c_void) -> NapiStatus,
    make_callback: unsafe extern "C" fn(
        NapiEnv,
        *mut libc::c_void,
        NapiValue,
        NapiValue,
        usize,
        *const NapiValue,
        *mut NapiValue,
    ) -> NapiStatus,
    get_and_clear_last_exception: unsafe extern "C" fn(NapiEnv, *mut NapiValue) -> NapiStatus,
    fatal_exception: unsafe extern "C" fn(NapiEnv, NapiValue) -> NapiStatus,
}

const NAPI_OK: NapiStatus = 0;
const NAPI_PENDING_EXCEPTION: NapiStatus = 10;

macro_rules! host_fn {
    ($name:literal) => {
        // SAFETY: the symbol, when present, is the host's N-API function of that name, whose C
        // signature (node_api.h, stable ABI) is the field's function pointer type.
        unsafe { std::mem::transmute::<*mut libc::c_void, _>(lookup($name)?) }
    };
}

impl NapiApi {
    // Each transmute's target type is the struct field it initialises (written out once there).
    #[allow(clippy::missing_transmute_annotations)]
    fn get() -> Option<&'static NapiApi> {
        static API: std::sync::OnceLock<Option<NapiApi>> = std::sync::OnceLock::new();
        API.get_or_init(|| {
            Some(NapiApi {
                open_handle_scope: host_fn!(c"napi_open_handle_scope"),
                close_handle_scope: host_fn!(c"napi_close_handle_scope"),
                create_reference: host_fn!(c"napi_create_reference"),
                delete_reference: host_fn!(c"napi_delete_reference"),
                get_reference_value: host_fn!(c"napi_get_reference_value"),
                create_object: host_fn!(c"napi_create_object"),
                create_string_utf8: host_fn!(c"napi_create_string_utf8"),
                create_uint32: host_fn!(c"napi_create_uint32"),
                async_init: host_fn!(c"napi_async_init"),
                async_destroy: host_fn!(c"napi_async_destroy"),
                make_callback: host_fn!(c"napi_make_callback"),
                get_and_clear_last_exception: host_fn!(c"napi_get_and_clear_last_exception"),
                fatal_exception: host_fn!(c"napi_fatal_exception"),
            })
        })
        .as_ref()
    }
}

/// A JS function, held by a reference, that can be called from a loop callback with one
/// number argument. Not `Send`: made, called and dropped on its environment's thread.
pub struct JsCallback {
    api: &'static NapiApi,
    env: NapiEnv,
    function: NapiRef,
    resource: NapiRef,
    context: *mut libc::c_void,
}

impl JsCallback {
    /// Keeps `function` (a JS function of `env`) for `call`. `None` if the host lacks N-API's
    /// functions or any step fails (the caller then uses a thread-safe function).
    ///
    /// # Safety
    /// `env` must be the calling thread's live `napi_env` and `function` a `napi_value` of a
    /// function in the current handle scope of that env; the `JsCallback` must be used and
    /// dropped on this thread while the environment is alive.
    pub unsafe fn new(env: NapiEnv, function: NapiValue) -> Option<JsCallback> {
        let api = NapiApi::get()?;
        let mut function_ref: NapiRef = std::ptr::null_mut();
        let mut resource: NapiValue = std::ptr::null_mut();
        let mut resource_ref: NapiRef = std::ptr::null_mut();
        let mut name: NapiValue = std::ptr::null_mut();
        let mut context: *mut libc::c_void = std::ptr::null_mut();
        let label = "sendmmsg:socket";
        // SAFETY: every call gets this thread's env (the contract) and out-pointers to locals.
        let ok = unsafe {
            (api.create_reference)(env, function, 1, &mut function_ref) == NAPI_OK
                && (api.create_object)(env, &mut resource) == NAPI_OK
                && (api.create_reference)(env, resource, 1, &mut resource_ref) == NAPI_OK
                && (api.create_string_utf8)(env, label.as_ptr().cast(), label.len(), &mut name)
                    == NAPI_OK
                && (api.async_init)(env, resource, name, &mut context) == NAPI_OK
        };
        let callback = JsCallback {
            api,
            env,
            function: function_ref,
            resource: resource_ref,
            context,
        };
        ok.then_some(callback)
    }

    /// Calls the function with `value`, as an I/O callback: microtasks and ticks run when it
    /// returns; an exception it throws becomes an uncaught exception (`'uncaughtException'`).
    /// Must be called on the env's thread, outside any JavaScript frame (a libuv callback).
    pub fn call(&self, value: u32) {
        let api = self.api;
        let env = self.env;
        // SAFETY: `new`'s contract: this is the env's thread, the env is alive, and the refs
        // and async context are ours until Drop. A handle scope brackets every value created.
        unsafe {
            let mut scope: *mut libc::c_void = std::ptr::null_mut();
            if (api.open_handle_scope)(env, &mut scope) != NAPI_OK {
                return;
            }
            let mut function: NapiValue = std::ptr::null_mut();
            let mut resource: NapiValue = std::ptr::null_mut();
            let mut argument: NapiValue = std::ptr::null_mut();
            let mut result: NapiValue = std::ptr::null_mut();
            if (api.get_reference_value)(env, self.function, &mut function) == NAPI_OK
                && (api.get_reference_value)(env, self.resource, &mut resource) == NAPI_OK
                && (api.create_uint32)(env, value, &mut argument) == NAPI_OK
                && !function.is_null()
            {
                let status = (api.make_callback)(
                    env,
                    self.context,
                    resource,
                    function,
                    1,
                    &argument,
                    &mut result,
                );
                if status == NAPI_PENDING_EXCEPTION {
                    let mut exception: NapiValue = std::ptr::null_mut();
                    if (api.get_and_clear_last_exception)(env, &mut exception) == NAPI_OK {
                        (api.fatal_exception)(env, exception);
                    }
                }
            }
            (api.close_handle_scope)(env, scope);
        }
    }
}

impl Drop for JsCallback {
    fn drop(&mut self) {
        // SAFETY: on the env's thread (`new`'s contract); each resource is released once.
        unsafe {
            if !self.context.is_null() {
                (self.api.async_destroy)(self.env, self.context);
            }
            if !self.function.is_null() {
                (self.api.delete_reference)(self.env, self.function);
            }
            if !self.resource.is_null() {
                (self.api.delete_reference)(self.env, self.resource);
            }
        }
    }
}

// ---- typed views of byte memory (receive slabs) ---------------------------------------------

/// Element types a byte slice may be viewed as: plain integers, every bit pattern valid.
pub trait Word: Copy + private::Sealed {}
impl Word for u16 {}
impl Word for u32 {}
impl Word for u64 {}
mod private {
    pub trait Sealed {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
}

/// `bytes` as a slice of `T`, if it starts aligned for `T` (a tail shorter than one `T` is left
/// out); `None` if misaligned.
pub fn cast_words_mut<T: Word>(bytes: &mut [u8]) -> Option<&mut [T]> {
    // SAFETY: `T` is u16/u32/u64 (sealed): no padding, every bit pattern valid, so viewing
    // initialised bytes as `T`s and writing `T`s through the view are sound; `align_to_mut`
    // only yields a correctly aligned middle part, and the borrow is exclusive.
    let (head, middle, _) = unsafe { bytes.align_to_mut::<T>() };
    head.is_empty().then_some(middle)
}

// ---- reuseport steering and thread affinity (see `steer.rs`) --------------------------------

/// `setsockopt(SO_ATTACH_REUSEPORT_CBPF)`: attaches a classic BPF program to the reuseport
/// group of `fd`; for each datagram the program's return value is the index of the group's
/// socket that receives it. The kernel copies (and checks) the program during the call.
pub fn attach_reuseport_cbpf(fd: RawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let len =
        u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer (the struct's field is `*mut` in C).
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` is a valid sock_fprog for the duration of the call and its `filter`
    // points at `program.len()` initialised instructions that `program` keeps alive until the
    // call returns; the kernel copies them (`copy_from_user`) and keeps no pointer to our memory.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The raw `sched_setaffinity(0, ...)` system call: pins the calling thread (not the whole
/// process) to the CPUs whose bits are set in `mask` (bit `i % BITS` of word `i / BITS`, the
/// kernel's `unsigned long` bitmap layout).
pub fn set_thread_affinity_mask(mask: &[libc::c_ulong]) -> io::Result<()> {
    // SAFETY: `mask` is valid for reads of `size_of_val(mask)` bytes for the call; the kernel
    // only reads it. Thread id 0 means the calling thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            0 as libc::c_long,
            std::mem::size_of_val(mask) as libc::c_ulong,
            mask.as_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The raw `sched_getaffinity(0, ...)` system call: the calling thread's CPU mask, written into
/// `mask`. `EINVAL` when `mask` has fewer bits than the kernel's CPU ids (ask again with more).
pub fn thread_affinity_mask(mask: &mut [libc::c_ulong]) -> io::Result<()> {
    // SAFETY: `mask` is valid for writes of `size_of_val(mask)` bytes for the call; the kernel
    // writes at most that many bytes. Thread id 0 means the calling thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0 as libc::c_long,
            std::mem::size_of_val(mask) as libc::c_ulong,
            mask.as_mut_ptr(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
