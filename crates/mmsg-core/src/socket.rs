//! A non-blocking UDP socket that owns its descriptor, with the options `node:dgram` offers.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use crate::addr::{self, AddrError, SockAddr};
use crate::sys::{self, SocketEnd};

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn domain(self) -> libc::c_int {
        match self {
            Family::V4 => libc::AF_INET,
            Family::V6 => libc::AF_INET6,
        }
    }
}

/// Options applied when a socket is created (like `dgram.createSocket`'s).
#[derive(Clone, Debug, Default)]
pub struct SocketOptions {
    pub reuse_addr: bool,
    pub reuse_port: bool,
    /// `IPV6_V6ONLY`; `None` keeps the system default.
    pub ipv6_only: Option<bool>,
    pub send_buffer_size: Option<u32>,
    pub recv_buffer_size: Option<u32>,
}

/// A UDP socket. The descriptor is always non-blocking: sends report "would block" instead of
/// stalling the caller's thread.
#[derive(Debug)]
pub struct UdpSocket {
    fd: OwnedFd,
    family: Family,
    /// The caller turned error reporting on ([`UdpSocket::set_receive_errors`]): `IP_RECVERR`
    /// stays on when the socket is disconnected.
    errors_wanted: std::sync::atomic::AtomicBool,
}

impl UdpSocket {
    /// Creates a socket of `family` and applies `options`.
    pub fn new(family: Family, options: &SocketOptions) -> io::Result<Self> {
        let socket = UdpSocket {
            fd: sys::udp_socket(family.domain())?,
            family,
            errors_wanted: Default::default(),
        };
        let fd = socket.raw_fd();
        if options.reuse_addr {
            sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1)?;
        }
        if options.reuse_port {
            sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, &1)?;
        }
        if let (Some(v6only), Family::V6) = (options.ipv6_only, family) {
            sys::setsockopt(
                fd,
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                &i32::from(v6only),
            )?;
        }
        if let Some(size) = options.send_buffer_size {
            socket.set_send_buffer_size(size)?;
        }
        if let Some(size) = options.recv_buffer_size {
            socket.set_recv_buffer_size(size)?;
        }
        Ok(socket)
    }

    /// Wraps a duplicate of an existing datagram socket (for example a `node:dgram` socket's
    /// descriptor). The original stays open and owned by its owner; the duplicate shares the same
    /// open socket and is made non-blocking (which the original, sharing the file status flags,
    /// then also is, as libuv's sockets already are).
    ///
    /// `fd` is only read (checked with `SO_TYPE`, then duplicated), so any number is safe to
    /// pass: a closed descriptor gives `EBADF`, a non-socket `ENOTSOCK`.
    pub fn from_fd_duplicate(fd: RawFd) -> io::Result<Self> {
        let family = datagram_socket_family(fd)?;
        let owned = sys::dup_cloexec(fd)?;
        sys::set_nonblocking(owned.as_fd(), true)?;
        Ok(UdpSocket {
            fd: owned,
            family,
            errors_wanted: Default::default(),
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Resolves an IP literal and port into an address this socket can send to: an IPv4 address
    /// on an IPv6 socket becomes IPv4-mapped; an IPv6 address on an IPv4 socket is refused.
    pub fn destination(&self, address: &str, port: u16) -> Result<SockAddr, AddrError> {
        let parsed = addr::parse_socket_addr(address, port)?;
        self.destination_for(parsed)
    }

    /// As [`UdpSocket::destination`], for an already parsed address.
    pub fn destination_for(&self, parsed: SocketAddr) -> Result<SockAddr, AddrError> {
        destination_for_family(self.family, parsed)
    }

    /// The unspecified address of this socket's family (`0.0.0.0` or `::`).
    pub fn unspecified(&self) -> IpAddr {
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Family::V6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        }
    }

    pub fn bind(&self, address: SockAddr) -> io::Result<()> {
        sys::bind(self.raw_fd(), &address)
    }

    /// Connects, and turns on `IP_RECVERR`/`IPV6_RECVERR` so that an asynchronous error (an
    /// ICMP "port unreachable" from the peer) that stops a batch can still be read back and
    /// reported with its index instead of being lost (see the man page's BUGS). Unconnected
    /// sockets keep it off: there it would make one dead peer fail sends to all the others.
    pub fn connect(&self, address: SockAddr) -> io::Result<()> {
        sys::connect(self.raw_fd(), Some(&address))?;
        self.set_recv_errors(true)
    }

    fn set_recv_errors(&self, on: bool) -> io::Result<()> {
        let on = i32::from(on);
        if self.family == Family::V6 {
            // IPv4-mapped traffic on an IPv6 socket reports at the IPv4 level.
            let _ = self.set_int(libc::IPPROTO_IP, libc::IP_RECVERR, on);
            return self.set_int(libc::IPPROTO_IPV6, libc::IPV6_RECVERR, on);
        }
        self.set_int(libc::IPPROTO_IP, libc::IP_RECVERR, on)
    }

    /// Empties the error queue (entries that `IP_RECVERR` keeps); returns how many there were.
    pub fn drain_error_queue(&self) -> usize {
        let mut drained = 0;
        while drained < 1024 && sys::take_queued_error(self.raw_fd()).is_some() {
            drained += 1;
        }
        drained
    }

    /// Dissolves the association made by `connect`.
    pub fn disconnect(&self) -> io::Result<()> {
        self.set_recv_errors(self.receive_errors())?;
        self.drain_error_queue();
        match sys::connect(self.raw_fd(), None) {
            // Linux may answer EAFNOSUPPORT for AF_UNSPEC on some kernels after dissolving.
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => Ok(()),
            other => other,
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::socket_name(self.raw_fd(), SocketEnd::Local)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::socket_name(self.raw_fd(), SocketEnd::Peer)
    }

    fn set_int(&self, level: libc::c_int, name: libc::c_int, value: i32) -> io::Result<()> {
        sys::setsockopt(self.raw_fd(), level, name, &value)
    }

    /// Reads and clears the socket's pending error (`SO_ERROR`): an errno, or 0 for none.
    pub fn take_socket_error(&self) -> io::Result<i32> {
        self.get_int(libc::SOL_SOCKET, libc::SO_ERROR)
    }

    fn get_int(&self, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
        sys::getsockopt_int(self.raw_fd(), level, name)
    }

    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.set_int(libc::SOL_SOCKET, libc::SO_BROADCAST, on.into())
    }

    /// Unicast hop limit (IP_TTL / IPV6_UNICAST_HOPS).
    pub fn set_ttl(&self, ttl: u8) -> io::Result<()> {
        match self.family {
            Family::V4 => self.set_int(libc::IPPROTO_IP, libc::IP_TTL, ttl.into()),
            Family::V6 => self.set_int(libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, ttl.into()),
        }
    }

    pub fn set_multicast_ttl(&self, ttl: u8) -> io::Result<()> {
        match self.family {
            Family::V4 => self.set_int(libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, ttl.into()),
            Family::V6 => self.set_int(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, ttl.into()),
        }
    }

    pub fn set_multicast_loopback(&self, on: bool) -> io::Result<()> {
        match self.family {
            Family::V4 => self.set_int(libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, on.into()),
            Family::V6 => self.set_int(libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, on.into()),
        }
    }

    /// Outgoing multicast interface: an IPv4 address of the interface (udp4), or an interface
    /// index / `%zone` (udp6).
    pub fn set_multicast_interface(&self, interface: &str) -> Result<(), MembershipError> {
        match self.family {
            Family::V4 => {
                let (ip, _) = addr::parse_ip(interface)?;
                let IpAddr::V4(v4) = ip else {
                    return Err(AddrError::WrongFamily(interface.to_owned()).into());
                };
                let mreq = libc::in_addr {
                    s_addr: u32::from(v4).to_be(),
                };
                sys::setsockopt(
                    self.raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_MULTICAST_IF,
                    &mreq,
                )?;
            }
            Family::V6 => {
                let index = interface_index_of(interface)?;
                sys::setsockopt(
                    self.raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::IPV6_MULTICAST_IF,
                    &(index as libc::c_int),
                )?;
            }
        }
        Ok(())
    }

    /// Joins (`join = true`) or leaves a multicast group, optionally on one interface.
    pub fn set_membership(
        &self,
        group: &str,
        interface: Option<&str>,
        join: bool,
    ) -> Result<(), MembershipError> {
        let (group_ip, _) = addr::parse_ip(group)?;
        match (self.family, group_ip) {
            (Family::V4, IpAddr::V4(g)) => {
                let local = match interface {
                    Some(text) => match addr::parse_ip(text)?.0 {
                        IpAddr::V4(v4) => v4,
                        IpAddr::V6(_) => return Err(AddrError::WrongFamily(text.to_owned()).into()),
                    },
                    None => Ipv4Addr::UNSPECIFIED,
                };
                let mreq = libc::ip_mreq {
                    imr_multiaddr: libc::in_addr {
                        s_addr: u32::from(g).to_be(),
                    },
                    imr_interface: libc::in_addr {
                        s_addr: u32::from(local).to_be(),
                    },
                };
                let name = if join {
                    libc::IP_ADD_MEMBERSHIP
                } else {
                    libc::IP_DROP_MEMBERSHIP
                };
                sys::setsockopt(self.raw_fd(), libc::IPPROTO_IP, name, &mreq)?;
            }
            (Family::V6, IpAddr::V6(g)) => {
                let index = match interface {
                    Some(text) => interface_index_of(text)?,
                    None => 0,
                };
                let mreq = libc::ipv6_mreq {
                    ipv6mr_multiaddr: libc::in6_addr {
                        s6_addr: g.octets(),
                    },
                    ipv6mr_interface: index,
                };
                let name = if join {
                    libc::IPV6_ADD_MEMBERSHIP
                } else {
                    libc::IPV6_DROP_MEMBERSHIP
                };
                sys::setsockopt(self.raw_fd(), libc::IPPROTO_IPV6, name, &mreq)?;
            }
            _ => return Err(AddrError::WrongFamily(group.to_owned()).into()),
        }
        Ok(())
    }

    /// Joins (`join = true`) or leaves a source-specific multicast group: only datagrams from
    /// `source` to `group`. As libuv (and so `node:dgram`) does, the kind of request follows the
    /// group's family, not the socket's: an IPv4 group is `IP_ADD_SOURCE_MEMBERSHIP` with an
    /// `ip_mreq_source` (the interface an IPv4 address, default any); an IPv6 group is
    /// `MCAST_JOIN_SOURCE_GROUP` with a `group_source_req` (the interface the `%zone` of an
    /// IPv6 address, default 0). A wrong-family combination is the kernel's to refuse.
    pub fn set_source_membership(
        &self,
        source: &str,
        group: &str,
        interface: Option<&str>,
        join: bool,
    ) -> Result<(), MembershipError> {
        if let Ok(g) = group.parse::<Ipv4Addr>() {
            let s = parse_v4(source)?;
            let local = match interface {
                Some(text) => parse_v4(text)?,
                None => Ipv4Addr::UNSPECIFIED,
            };
            let be = |ip: Ipv4Addr| libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            };
            let mreq = libc::ip_mreq_source {
                imr_multiaddr: be(g),
                imr_interface: be(local),
                imr_sourceaddr: be(s),
            };
            let name = if join {
                libc::IP_ADD_SOURCE_MEMBERSHIP
            } else {
                libc::IP_DROP_SOURCE_MEMBERSHIP
            };
            sys::setsockopt(self.raw_fd(), libc::IPPROTO_IP, name, &mreq)?;
            return Ok(());
        }
        let (g, g_scope) = parse_v6_like_libuv(group)?;
        let (s, s_scope) = parse_v6_like_libuv(source)?;
        let index = match interface {
            Some(text) => parse_v6_like_libuv(text)?.1,
            None => 0,
        };
        let v6 = |ip: std::net::Ipv6Addr, scope: u32| {
            SockAddr::from(SocketAddr::V6(std::net::SocketAddrV6::new(ip, 0, 0, scope)))
        };
        let req = sys::group_source_req(index, &v6(g, g_scope), &v6(s, s_scope));
        let name = if join {
            libc::MCAST_JOIN_SOURCE_GROUP
        } else {
            libc::MCAST_LEAVE_SOURCE_GROUP
        };
        sys::setsockopt(self.raw_fd(), libc::IPPROTO_IPV6, name, &req)?;
        Ok(())
    }

    pub fn set_send_buffer_size(&self, bytes: u32) -> io::Result<()> {
        self.set_int(libc::SOL_SOCKET, libc::SO_SNDBUF, clamp_i32(bytes))
    }

    pub fn set_recv_buffer_size(&self, bytes: u32) -> io::Result<()> {
        self.set_int(libc::SOL_SOCKET, libc::SO_RCVBUF, clamp_i32(bytes))
    }

    /// The kernel's send buffer size (it doubles what was set, see socket(7)).
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        Ok(self.get_int(libc::SOL_SOCKET, libc::SO_SNDBUF)? as u32)
    }

    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        Ok(self.get_int(libc::SOL_SOCKET, libc::SO_RCVBUF)? as u32)
    }

    /// Asks the kernel to attach its drop counter (`SO_RXQ_OVFL`) to received datagrams.
    pub fn set_drop_counter(&self, on: bool) -> io::Result<()> {
        self.set_int(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, on.into())
    }

    /// Enables `UDP_GRO` (coalesced receive); split the result with `RecvMeta::gro_segment_size`.
    pub fn set_gro(&self, on: bool) -> io::Result<()> {
        self.set_int(libc::SOL_UDP, libc::UDP_GRO, on.into())
    }

    /// `IP_RECVTOS` (and on IPv6 sockets also `IPV6_RECVTCLASS`): each datagram's TOS byte /
    /// traffic class rides along as a control message.
    pub fn set_recv_tos(&self, on: bool) -> io::Result<()> {
        self.set_per_family(
            (libc::IPPROTO_IP, libc::IP_RECVTOS),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS),
            on,
        )
    }

    /// `IP_PKTINFO` (and on IPv6 sockets also `IPV6_RECVPKTINFO`): each datagram's destination
    /// address and arrival interface.
    pub fn set_recv_packet_info(&self, on: bool) -> io::Result<()> {
        self.set_per_family(
            (libc::IPPROTO_IP, libc::IP_PKTINFO),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
            on,
        )
    }

    /// `SO_TIMESTAMPNS`: the kernel's receive time of each datagram (`CLOCK_REALTIME`, ns).
    pub fn set_recv_timestamps(&self, on: bool) -> io::Result<()> {
        self.set_int(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, on.into())
    }

    /// Sets the IPv4 option; on an IPv6 socket the IPv6 one too (IPv4 datagrams reaching a
    /// dual-stack socket are reported by the IPv4 option, IPv6 ones by the IPv6 option).
    fn set_per_family(
        &self,
        v4: (libc::c_int, libc::c_int),
        v6: (libc::c_int, libc::c_int),
        on: bool,
    ) -> io::Result<()> {
        match self.family() {
            Family::V4 => self.set_int(v4.0, v4.1, on.into()),
            Family::V6 => {
                self.set_int(v6.0, v6.1, on.into())?;
                // An IPv6-only socket may refuse the IPv4 option: it receives no IPv4 anyway.
                let _ = self.set_int(v4.0, v4.1, on.into());
                Ok(())
            }
        }
    }

    /// Any pending asynchronous error (`SO_ERROR`), cleared by reading it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let code = self.get_int(libc::SOL_SOCKET, libc::SO_ERROR)?;
        Ok((code != 0).then(|| io::Error::from_raw_os_error(code)))
    }
}

/// Path MTU discovery modes (`IP_MTU_DISCOVER` / `IPV6_MTU_DISCOVER`, `IP_PMTUDISC_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathMtuDiscovery {
    /// `IP_PMTUDISC_WANT` (Linux's default): DF set, but datagrams larger than the known path
    /// MTU are fragmented locally.
    Want,
    /// `IP_PMTUDISC_DO`: DF always set; a datagram larger than the known path MTU fails with
    /// `EMSGSIZE` (and a local error-queue entry).
    Do,
    /// `IP_PMTUDISC_DONT`: DF never set; routers may fragment.
    Dont,
    /// `IP_PMTUDISC_PROBE`: DF set and the path MTU ignored (only the device MTU limits sends):
    /// for probing the path with datagrams of chosen sizes.
    Probe,
}

impl PathMtuDiscovery {
    fn value(self) -> i32 {
        // The IPv6 constants (`IPV6_PMTUDISC_*`) have the same values.
        match self {
            PathMtuDiscovery::Want => libc::IP_PMTUDISC_WANT,
            PathMtuDiscovery::Do => libc::IP_PMTUDISC_DO,
            PathMtuDiscovery::Dont => libc::IP_PMTUDISC_DONT,
            PathMtuDiscovery::Probe => libc::IP_PMTUDISC_PROBE,
        }
    }
}

// ---- error reporting and path MTU ---------------------------------------------------------

impl UdpSocket {
    /// Turns error reporting on or off for this socket, connected or not: `IP_RECVERR` (and on
    /// IPv6 sockets `IPV6_RECVERR` plus `IP_RECVERR` for IPv4-mapped traffic), so that ICMP
    /// and local errors are kept in the error queue ([`crate::errqueue`]). Off on a connected
    /// socket keeps it on: connected sends use it to attribute ICMP errors to messages.
    pub fn set_receive_errors(&self, on: bool) -> io::Result<()> {
        let connected = self.peer_addr().is_ok();
        self.set_recv_errors(on || connected)?;
        self.errors_wanted
            .store(on, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Whether [`UdpSocket::set_receive_errors`] turned error reporting on.
    pub fn receive_errors(&self) -> bool {
        self.errors_wanted
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `IP_MTU_DISCOVER` (udp4) or `IPV6_MTU_DISCOVER` (udp6, plus `IP_MTU_DISCOVER` for
    /// IPv4-mapped traffic where the socket allows it).
    pub fn set_path_mtu_discovery(&self, mode: PathMtuDiscovery) -> io::Result<()> {
        match self.family {
            Family::V4 => self.set_int(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode.value()),
            Family::V6 => {
                self.set_int(libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, mode.value())?;
                // An IPv6-only socket may refuse the IPv4 option: it sends no IPv4 anyway.
                let _ = self.set_int(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, mode.value());
                Ok(())
            }
        }
    }

    /// The don't-fragment bit: on udp4 `IP_MTU_DISCOVER` `IP_PMTUDISC_DO` (on) or
    /// `IP_PMTUDISC_DONT` (off); on udp6 `IPV6_DONTFRAG` (IPv6 hosts never fragment in
    /// transit, this stops local fragmentation), plus the udp4 setting for IPv4-mapped traffic.
    pub fn set_dont_fragment(&self, on: bool) -> io::Result<()> {
        let v4_mode = if on {
            PathMtuDiscovery::Do
        } else {
            PathMtuDiscovery::Dont
        };
        match self.family {
            Family::V4 => self.set_int(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4_mode.value()),
            Family::V6 => {
                self.set_int(libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, on.into())?;
                let _ = self.set_int(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v4_mode.value());
                Ok(())
            }
        }
    }

    /// The kernel's current path MTU to the connected peer (`IP_MTU` / `IPV6_MTU`);
    /// `ENOTCONN` on an unconnected socket.
    pub fn path_mtu(&self) -> io::Result<u32> {
        let mtu = match self.family {
            Family::V4 => self.get_int(libc::IPPROTO_IP, libc::IP_MTU)?,
            Family::V6 => self.get_int(libc::IPPROTO_IPV6, libc::IPV6_MTU)?,
        };
        Ok(mtu.max(0) as u32)
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The address a socket of `family` must be given to reach `parsed`: an IPv4 address on an IPv6
/// socket becomes IPv4-mapped; an IPv6 address on an IPv4 socket is refused.
pub fn destination_for_family(family: Family, parsed: SocketAddr) -> Result<SockAddr, AddrError> {
    match (family, parsed) {
        (Family::V4, SocketAddr::V6(_)) => Err(AddrError::WrongFamily(parsed.ip().to_string())),
        (Family::V6, SocketAddr::V4(_)) => Ok(SockAddr::from(addr::to_ipv6_mapped(parsed))),
        _ => Ok(SockAddr::from(parsed)),
    }
}

/// The family of any socket descriptor (`SO_DOMAIN`), if it is an IPv4/IPv6 UDP socket:
/// `SOCK_DGRAM` and `SO_PROTOCOL` `IPPROTO_UDP` (a UDP-Lite or ICMP "ping" socket is also a
/// datagram socket, but not one this crate's sends and receives are right for).
pub fn datagram_socket_family(fd: RawFd) -> io::Result<Family> {
    let socket_type = sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?;
    if socket_type != libc::SOCK_DGRAM {
        return Err(io::Error::from_raw_os_error(libc::ENOTSOCK));
    }
    if sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)? != libc::IPPROTO_UDP {
        return Err(io::Error::from_raw_os_error(libc::EPROTONOSUPPORT));
    }
    match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)? {
        libc::AF_INET => Ok(Family::V4),
        libc::AF_INET6 => Ok(Family::V6),
        _ => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

fn clamp_i32(value: u32) -> i32 {
    value.min(i32::MAX as u32) as i32
}

fn parse_v4(text: &str) -> Result<Ipv4Addr, AddrError> {
    text.parse()
        .map_err(|_| AddrError::NotAnIpLiteral(text.to_owned()))
}

/// An IPv6 literal with an optional `%zone` the way `uv_ip6_addr` reads it: the zone is an
/// interface name, and an unknown one is scope 0 rather than an error.
fn parse_v6_like_libuv(text: &str) -> Result<(std::net::Ipv6Addr, u32), AddrError> {
    let (ip, zone) = text
        .split_once('%')
        .map_or((text, None), |(ip, z)| (ip, Some(z)));
    let ip = ip
        .parse()
        .map_err(|_| AddrError::NotAnIpLiteral(text.to_owned()))?;
    Ok((ip, zone.and_then(sys::interface_index).unwrap_or(0)))
}

fn interface_index_of(text: &str) -> Result<u32, AddrError> {
    let name = text.rsplit_once('%').map_or(text, |(_, zone)| zone);
    name.parse::<u32>()
        .ok()
        .or_else(|| sys::interface_index(name))
        .ok_or_else(|| AddrError::UnknownZone(text.to_owned()))
}

/// A multicast option failed: a bad address or a system error.
#[derive(Debug)]
pub enum MembershipError {
    Address(AddrError),
    System(io::Error),
}

impl From<AddrError> for MembershipError {
    fn from(e: AddrError) -> Self {
        MembershipError::Address(e)
    }
}

impl From<io::Error> for MembershipError {
    fn from(e: io::Error) -> Self {
        MembershipError::System(e)
    }
}

/// Using every core: `SO_REUSEPORT` groups steered by the receiving CPU (see [`crate::steer`]).
impl UdpSocket {
    /// Whether `SO_REUSEPORT` is on (so the socket is, once bound, in its port's group).
    pub fn reuse_port(&self) -> io::Result<bool> {
        Ok(self.get_int(libc::SOL_SOCKET, libc::SO_REUSEPORT)? != 0)
    }

    /// Attaches [`crate::steer::cpu_steering_program`] to this socket's reuseport group: datagram
    /// received on CPU `c` goes to the group's socket number `c % group_size`. The kernel says
    /// `EINVAL` if the socket is bound without `SO_REUSEPORT`.
    pub fn steer_by_cpu(&self, group_size: std::num::NonZeroU16) -> io::Result<()> {
        let program = crate::steer::cpu_steering_program(group_size);
        crate::steer::attach_group_program(self.raw_fd(), &program)
    }

    /// Removes the group's steering program (`SO_DETACH_REUSEPORT_BPF`): back to the 4-tuple
    /// hash. `ENOENT` from the kernel if the group has none.
    pub fn detach_group_program(&self) -> io::Result<()> {
        self.set_int(libc::SOL_SOCKET, libc::SO_DETACH_REUSEPORT_BPF, 0)
    }

    /// `SO_INCOMING_CPU`: the CPU that last received a datagram for this socket, or the value
    /// set with [`UdpSocket::set_incoming_cpu`] (`None`: neither). Linux records the receiving
    /// CPU only on connected UDP sockets; an unconnected one keeps what was set.
    pub fn incoming_cpu(&self) -> io::Result<Option<u32>> {
        let cpu = self.get_int(libc::SOL_SOCKET, libc::SO_INCOMING_CPU)?;
        Ok(u32::try_from(cpu).ok())
    }

    /// Sets `SO_INCOMING_CPU`. Linux 6.2 and later also use it to pick a reuseport group's
    /// socket when the group has no program: a datagram received on CPU `c` goes to a socket
    /// whose value is `c`, if any.
    pub fn set_incoming_cpu(&self, cpu: u32) -> io::Result<()> {
        let cpu = i32::try_from(cpu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        self.set_int(libc::SOL_SOCKET, libc::SO_INCOMING_CPU, cpu)
    }
}
