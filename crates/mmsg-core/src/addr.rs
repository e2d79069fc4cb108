//! Socket addresses: parsing IP literals and converting to and from the kernel's `sockaddr`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

/// A socket address laid out the way the kernel reads it (`sockaddr_in` or `sockaddr_in6`).
#[derive(Clone, Copy)]
pub enum SockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl SockAddr {
    pub fn as_ptr(&self) -> *const libc::sockaddr {
        match self {
            SockAddr::V4(a) => (a as *const libc::sockaddr_in).cast(),
            SockAddr::V6(a) => (a as *const libc::sockaddr_in6).cast(),
        }
    }

    /// Size in bytes of the sockaddr behind [`SockAddr::as_ptr`].
    pub fn byte_len(&self) -> libc::socklen_t {
        (match self {
            SockAddr::V4(_) => std::mem::size_of::<libc::sockaddr_in>(),
            SockAddr::V6(_) => std::mem::size_of::<libc::sockaddr_in6>(),
        }) as libc::socklen_t
    }

    pub fn is_ipv6(&self) -> bool {
        matches!(self, SockAddr::V6(_))
    }

    pub fn to_socket_addr(&self) -> SocketAddr {
        match self {
            SockAddr::V4(a) => SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))),
                u16::from_be(a.sin_port),
            ),
            SockAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )),
        }
    }
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(v4) => SockAddr::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(v6) => SockAddr::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo().to_be(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            }),
        }
    }
}

impl fmt::Debug for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_socket_addr().fmt(f)
    }
}

impl PartialEq for SockAddr {
    fn eq(&self, other: &Self) -> bool {
        self.to_socket_addr() == other.to_socket_addr()
    }
}

/// Why an address string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrError {
    /// Not an IPv4 or IPv6 literal (hostnames are refused: no DNS on the hot path).
    NotAnIpLiteral(String),
    /// An IPv6 zone (`fe80::1%eth0`) names an interface that does not exist.
    UnknownZone(String),
    /// An IPv6 address given to an IPv4 socket (or the reverse where no mapping exists).
    WrongFamily(String),
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrError::NotAnIpLiteral(s) => write!(
                f,
                "address {s:?} is not an IPv4 or IPv6 literal (hostnames are not resolved)"
            ),
            AddrError::UnknownZone(s) => write!(f, "address {s:?} names an unknown IPv6 zone"),
            AddrError::WrongFamily(s) => {
                write!(f, "address {s:?} is of the wrong family for this socket")
            }
        }
    }
}

impl std::error::Error for AddrError {}

/// Parses an IP literal like `127.0.0.1`, `::1`, `[::1]` or `fe80::1%2` into an address.
pub fn parse_ip(text: &str) -> Result<(IpAddr, u32), AddrError> {
    let trimmed = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let (ip_text, zone) = match trimmed.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (trimmed, None),
    };
    let ip: IpAddr = ip_text
        .parse()
        .map_err(|_| AddrError::NotAnIpLiteral(text.to_owned()))?;
    let scope_id = match (zone, ip) {
        (None, _) => 0,
        (Some(zone), IpAddr::V6(_)) if !zone.is_empty() => match zone.parse::<u32>() {
            Ok(index) => index,
            Err(_) => crate::sys::interface_index(zone)
                .ok_or_else(|| AddrError::UnknownZone(text.to_owned()))?,
        },
        _ => return Err(AddrError::NotAnIpLiteral(text.to_owned())),
    };
    Ok((ip, scope_id))
}

/// Parses an IP literal and a port into a socket address.
pub fn parse_socket_addr(text: &str, port: u16) -> Result<SocketAddr, AddrError> {
    let (ip, scope_id) = parse_ip(text)?;
    Ok(match ip {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), port),
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope_id)),
    })
}

/// Maps an IPv4 address to its IPv4-mapped IPv6 form (`::ffff:a.b.c.d`), which an IPv6 socket
/// needs to reach an IPv4 peer.
pub fn to_ipv6_mapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(v4) => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        v6 => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_literals_and_refuses_hostnames() {
        assert_eq!(
            parse_socket_addr("127.0.0.1", 53).unwrap(),
            "127.0.0.1:53".parse().unwrap()
        );
        assert_eq!(
            parse_socket_addr("[::1]", 9).unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert_eq!(
            parse_socket_addr("::1", 9).unwrap(),
            "[::1]:9".parse().unwrap()
        );
        assert!(matches!(
            parse_socket_addr("localhost", 1),
            Err(AddrError::NotAnIpLiteral(_))
        ));
        assert!(matches!(
            parse_socket_addr("1.2.3", 1),
            Err(AddrError::NotAnIpLiteral(_))
        ));
        assert!(matches!(
            parse_socket_addr("", 1),
            Err(AddrError::NotAnIpLiteral(_))
        ));
        assert!(matches!(
            parse_socket_addr("127.0.0.1%1", 1),
            Err(AddrError::NotAnIpLiteral(_))
        ));
        assert_eq!(
            parse_socket_addr("fe80::1%1", 9).unwrap().to_string(),
            "[fe80::1%1]:9"
        );
        assert_eq!(
            parse_socket_addr("fe80::1%lo", 9).unwrap().to_string(),
            "[fe80::1%1]:9"
        );
        assert!(matches!(
            parse_socket_addr("fe80::1%nosuchif0", 9),
            Err(AddrError::UnknownZone(_))
        ));
    }

    #[test]
    fn sockaddr_round_trips() {
        for text in ["127.1.2.3:4567", "[2001:db8::7]:65535", "0.0.0.0:0"] {
            let addr: SocketAddr = text.parse().unwrap();
            assert_eq!(SockAddr::from(addr).to_socket_addr(), addr);
        }
        let v4 = SockAddr::from("127.0.0.5:5".parse::<SocketAddr>().unwrap());
        assert_eq!(
            v4.byte_len() as usize,
            std::mem::size_of::<libc::sockaddr_in>()
        );
        assert!(!v4.is_ipv6());
    }

    #[test]
    fn maps_v4_into_v6() {
        let mapped = to_ipv6_mapped("127.0.0.1:80".parse().unwrap());
        assert_eq!(mapped.to_string(), "[::ffff:127.0.0.1]:80");
    }
}
