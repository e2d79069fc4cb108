//! Receiving batches with `recvmmsg(2)` into memory the caller owns.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::sys::{self, SockAddrStorage};

/// `MSG_DONTWAIT`, for callers that do not link libc themselves.
pub const MSG_DONTWAIT: i32 = libc::MSG_DONTWAIT;
/// `MSG_WAITFORONE`: block for the first datagram only.
pub const MSG_WAITFORONE: i32 = libc::MSG_WAITFORONE;
/// The `recvmsg` flags that make sense for a batch.
pub const KNOWN_RECV_FLAGS: i32 = libc::MSG_DONTWAIT
    | libc::MSG_WAITFORONE
    | libc::MSG_PEEK
    | libc::MSG_TRUNC
    | libc::MSG_ERRQUEUE;

/// What the kernel said about one received datagram (plain data, like quinn-udp's `RecvMeta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes stored in the slot (at most the slot size).
    pub len: usize,
    /// The sender, when the socket reports one (unconnected sockets always do).
    pub source: Option<SocketAddr>,
    /// The datagram was longer than the slot and was cut (`MSG_TRUNC`).
    pub truncated: bool,
    /// With `UDP_GRO`: the size of the datagrams coalesced into this slot.
    pub gro_segment_size: Option<u32>,
    /// With `SO_RXQ_OVFL`: the socket's running count of datagrams the kernel dropped.
    pub drops: Option<u32>,
}

/// A slab of memory cut into `slot_size`-byte slots, at most `max_datagrams` of them.
pub struct Slab<'a> {
    pub bytes: &'a mut [u8],
    pub slot_size: usize,
    pub max_datagrams: usize,
}

impl RecvMeta {
    /// The datagrams in this slot as `(offset, length)` pairs: one, or with `UDP_GRO` the
    /// coalesced datagrams split back apart (all `gro_segment_size` long but the last).
    pub fn datagrams(&self) -> impl Iterator<Item = (usize, usize)> {
        let len = self.len;
        let step = match self.gro_segment_size {
            Some(size) if size > 0 && (size as usize) < len => size as usize,
            _ => len.max(1),
        };
        let count = if len == 0 { 1 } else { len.div_ceil(step) };
        (0..count).map(move |i| {
            let offset = i * step;
            (offset, step.min(len - offset))
        })
    }
}

/// Control space per message: room for `SO_RXQ_OVFL` (u32) and `UDP_GRO` (int).
const CONTROL_WORDS: usize = 8;

/// Reusable memory for receiving batches.
#[derive(Default)]
pub struct RecvScratch {
    headers: Vec<libc::mmsghdr>,
    slots: Vec<libc::iovec>,
    names: Vec<SockAddrStorage>,
    control: Vec<[u64; CONTROL_WORDS]>,
}

impl RecvScratch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Receives up to `buffers.len()` datagrams, one per buffer, and describes each in `out`.
    /// Returns how many arrived. Blocking behaviour follows the socket and `flags`
    /// (`MSG_DONTWAIT`, `MSG_WAITFORONE`); `timeout` is recvmmsg's own. `EINTR` is retried;
    /// every other error (including `EAGAIN`) is returned.
    pub fn recv_into(
        &mut self,
        fd: RawFd,
        buffers: &mut [&mut [u8]],
        flags: libc::c_int,
        timeout: Option<Duration>,
        out: &mut Vec<RecvMeta>,
    ) -> io::Result<usize> {
        self.slots.clear();
        self.slots
            .extend(buffers.iter_mut().map(|b| sys::iovec_for_mut(b)));
        self.receive(fd, flags, timeout, out)
    }

    /// Receives into consecutive fixed-size slots of one slab (datagram `i` starts at
    /// `i * slab.slot_size`).
    pub fn recv_slab(
        &mut self,
        fd: RawFd,
        slab: Slab<'_>,
        flags: libc::c_int,
        timeout: Option<Duration>,
        out: &mut Vec<RecvMeta>,
    ) -> io::Result<usize> {
        self.slots.clear();
        if slab.slot_size == 0 {
            out.clear();
            return Ok(0);
        }
        self.slots.extend(
            slab.bytes
                .chunks_exact_mut(slab.slot_size)
                .take(slab.max_datagrams.min(crate::MAX_MESSAGES_PER_CALL))
                .map(sys::iovec_for_mut),
        );
        self.receive(fd, flags, timeout, out)
    }

    fn receive(
        &mut self,
        fd: RawFd,
        flags: libc::c_int,
        timeout: Option<Duration>,
        out: &mut Vec<RecvMeta>,
    ) -> io::Result<usize> {
        out.clear();
        let count = self.slots.len().min(crate::MAX_MESSAGES_PER_CALL);
        if count == 0 {
            return Ok(0);
        }
        self.headers.resize(count, sys::zeroed_mmsghdr());
        self.names.resize(count, SockAddrStorage::new());
        self.control.resize(count, [0; CONTROL_WORDS]);
        for i in 0..count {
            self.names[i] = SockAddrStorage::new();
            let header = &mut self.headers[i];
            *header = sys::zeroed_mmsghdr();
            header.msg_hdr.msg_iov = &mut self.slots[i];
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_name = self.names[i].as_mut_ptr().cast();
            header.msg_hdr.msg_namelen = self.names[i].len;
            header.msg_hdr.msg_control = self.control[i].as_mut_ptr().cast();
            header.msg_hdr.msg_controllen = (CONTROL_WORDS * 8) as _;
        }
        let received = loop {
            // SAFETY: every header points at one iovec in `self.slots` (describing memory the
            // caller lent us mutably), at a name slot in `self.names` and a control area in
            // `self.control`, with matching lengths; none move during the call.
            match unsafe { sys::recvmmsg(fd, &mut self.headers[..count], flags, timeout) } {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                other => break other?,
            }
        };
        out.extend(
            self.headers[..received]
                .iter()
                .enumerate()
                .map(|(i, header)| {
                    let hdr = &header.msg_hdr;
                    let mut name = self.names[i];
                    name.len = hdr.msg_namelen;
                    RecvMeta {
                        len: (header.msg_len as usize).min(self.slots[i].iov_len),
                        source: if hdr.msg_namelen == 0 {
                            None
                        } else {
                            name.decode()
                        },
                        truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
                        gro_segment_size: sys::cmsg_u32(hdr, libc::SOL_UDP, libc::UDP_GRO),
                        drops: sys::cmsg_u32(hdr, libc::SOL_SOCKET, libc::SO_RXQ_OVFL),
                    }
                }),
        );
        Ok(received)
    }
}

#[cfg(test)]
mod tests {
    use super::RecvMeta;

    fn meta(len: usize, gro: Option<u32>) -> RecvMeta {
        RecvMeta {
            len,
            source: None,
            truncated: false,
            gro_segment_size: gro,
            drops: None,
        }
    }

    #[test]
    fn splits_gro_slots_back_into_datagrams() {
        let parts: Vec<_> = meta(2500, Some(1000)).datagrams().collect();
        assert_eq!(parts, vec![(0, 1000), (1000, 1000), (2000, 500)]);
        assert_eq!(
            meta(700, None).datagrams().collect::<Vec<_>>(),
            vec![(0, 700)]
        );
        assert_eq!(meta(0, None).datagrams().collect::<Vec<_>>(), vec![(0, 0)]);
        assert_eq!(
            meta(300, Some(300)).datagrams().collect::<Vec<_>>(),
            vec![(0, 300)]
        );
    }
}
