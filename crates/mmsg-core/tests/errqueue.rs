//! The error queue on loopback: ICMP "port unreachable" entries (the loopback device is exempt
//! from ICMP rate limits), decoded fields, and the pending-error retry that keeps one dead peer
//! from failing datagrams to another. Peers are `std::net::UdpSocket`s.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::time::{Duration, Instant};

use mmsg_core::{
    Endpoint, ErrorOrigin, Family, PlanStop, QueuedError, RecvTarget, SendPlan, SockAddr,
    SocketOptions,
};

/// An address on which nothing listens (bound, then closed).
fn closed_port(ip: &str) -> SocketAddr {
    StdUdp::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
}

fn endpoint(family: Family, bind: &str) -> Endpoint {
    let endpoint = Endpoint::new(family, &SocketOptions::default()).unwrap();
    endpoint
        .socket()
        .bind(SockAddr::from(bind.parse::<SocketAddr>().unwrap()))
        .unwrap();
    endpoint
}

/// Sends one datagram of `len` bytes per destination.
fn send_to(endpoint: &mut Endpoint, to: &[SocketAddr], len: u32) -> mmsg_core::PlanReport {
    let destinations: Vec<SockAddr> = to.iter().map(|&a| SockAddr::from(a)).collect();
    let indexes: Vec<u32> = (0..to.len() as u32).collect();
    let plan = SendPlan::new(vec![len; to.len()], &[], indexes, destinations).unwrap();
    let payloads: Vec<Vec<u8>> = (0..to.len()).map(|i| vec![i as u8; len as usize]).collect();
    let views: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    endpoint.send_plan(&plan, &views, 0, 0)
}

/// Waits (bounded) until the error queue yields at least one entry.
fn wait_for_errors(endpoint: &mut Endpoint) -> Vec<QueuedError> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut all = Vec::new();
    while all.is_empty() && Instant::now() < deadline {
        all.extend(endpoint.take_errors(16).unwrap());
        std::thread::sleep(Duration::from_millis(5));
    }
    all
}

#[test]
fn port_unreachable_is_an_icmp_entry_with_its_destination() {
    let mut tx = endpoint(Family::V4, "127.0.0.1:0");
    tx.set_receive_errors(true).unwrap();
    let dead = closed_port("127.0.0.1");
    let report = send_to(&mut tx, &[dead], 10);
    assert_eq!(report.sent, 1, "{:?}", report.stop);
    let entries = wait_for_errors(&mut tx);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = entries[0];
    assert_eq!(e.errno, libc::ECONNREFUSED);
    assert_eq!(e.origin, ErrorOrigin::Icmp);
    assert_eq!((e.icmp_type, e.icmp_code), (3, 3));
    assert_eq!(e.destination, Some(dead));
    assert_eq!(
        e.offender.map(|o| o.ip()),
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(e.payload_len, 10);
    // Read once: the queue is empty now.
    assert!(tx.take_errors(16).unwrap().is_empty());
}

#[test]
fn port_unreachable_over_ipv6_is_an_icmp6_entry() {
    let mut tx = endpoint(Family::V6, "[::1]:0");
    tx.set_receive_errors(true).unwrap();
    let dead = closed_port("[::1]");
    assert_eq!(send_to(&mut tx, &[dead], 4).sent, 1);
    let entries = wait_for_errors(&mut tx);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = entries[0];
    assert_eq!(e.errno, libc::ECONNREFUSED);
    assert_eq!(e.origin, ErrorOrigin::Icmp6);
    assert_eq!((e.icmp_type, e.icmp_code), (1, 4));
    assert_eq!(e.destination, Some(dead));
    assert_eq!(e.offender.map(|o| o.ip()), Some("::1".parse().unwrap()));
}

#[test]
fn a_dead_peer_does_not_fail_the_next_batch_to_a_live_one() {
    let mut tx = endpoint(Family::V4, "127.0.0.1:0");
    tx.set_receive_errors(true).unwrap();
    let live = StdUdp::bind("127.0.0.1:0").unwrap();
    live.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let live_addr = live.local_addr().unwrap();
    let dead = closed_port("127.0.0.1");
    assert_eq!(send_to(&mut tx, &[dead], 3).sent, 1);
    // Let the ICMP error arrive: it is queued and also left pending (sk_err).
    std::thread::sleep(Duration::from_millis(50));
    let report = send_to(&mut tx, &[live_addr; 20], 5);
    assert_eq!(report.sent, 20, "{:?}", report.stop);
    assert!(
        matches!(report.stop, PlanStop::Complete),
        "{:?}",
        report.stop
    );
    let mut buf = [0u8; 64];
    for i in 0..20u8 {
        let n = live.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 5], "datagram {i}");
    }
    live.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(live.recv(&mut buf).is_err(), "a datagram arrived twice");
    let entries = tx.take_errors(16).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].destination, Some(dead));
    assert_eq!(entries[0].errno, libc::ECONNREFUSED);
}

#[test]
fn without_error_reporting_an_unconnected_socket_sees_no_entries() {
    let mut tx = endpoint(Family::V4, "127.0.0.1:0");
    let dead = closed_port("127.0.0.1");
    assert_eq!(send_to(&mut tx, &[dead], 3).sent, 1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(tx.take_errors(16).unwrap().is_empty());
}

#[test]
fn a_pending_icmp_error_does_not_fail_a_receive() {
    let mut rx = endpoint(Family::V4, "127.0.0.1:0");
    rx.set_receive_errors(true).unwrap();
    let dead = closed_port("127.0.0.1");
    assert_eq!(send_to(&mut rx, &[dead], 3).sent, 1);
    std::thread::sleep(Duration::from_millis(50));
    let peer = StdUdp::bind("127.0.0.1:0").unwrap();
    peer.send_to(b"hello", rx.socket().local_addr().unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let (mut d, mut l, mut p, mut a, mut s, mut f) = (
        vec![0; 64 * 4],
        vec![0; 4],
        vec![0; 4],
        vec![0; 64],
        vec![0; 4],
        vec![0; 4],
    );
    let mut target = RecvTarget {
        data: &mut d,
        slot_size: 64,
        lengths: &mut l,
        ports: &mut p,
        addresses: &mut a,
        scope_ids: &mut s,
        flags: &mut f,
        tos: &mut [],
        destinations: &mut [],
        interfaces: &mut [],
        timestamps: &mut [],
    };
    assert_eq!(rx.recv_keeping_errors(&mut target).unwrap(), 1);
    assert_eq!(&target.data[..5], b"hello");
    let entries = rx.take_errors(16).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].origin, ErrorOrigin::Icmp);
}

/// An IPv4 endpoint connected to a port on which nothing listens (no error reporting).
fn connected_to_a_closed_port() -> (Endpoint, SocketAddr) {
    let tx = endpoint(Family::V4, "127.0.0.1:0");
    let dead = closed_port("127.0.0.1");
    tx.socket().connect(SockAddr::from(dead)).unwrap();
    (tx, dead)
}

#[test]
fn a_connected_socket_still_attributes_the_error_and_keeps_the_entry() {
    let (mut tx, dead) = connected_to_a_closed_port();
    let plan = SendPlan::new(vec![2], &[], vec![], vec![]).unwrap();
    let payload = [1u8, 2];
    assert_eq!(tx.send_plan(&plan, &[&payload], 0, 0).sent, 1);
    std::thread::sleep(Duration::from_millis(50));
    let report = tx.send_plan(&plan, &[&payload], 0, 0);
    match report.stop {
        PlanStop::Failed {
            index: 0,
            error,
            syscall,
        } => {
            assert_eq!(error.raw_os_error(), Some(libc::ECONNREFUSED));
            // One message of one buffer, no control data: the single-message call.
            assert_eq!(syscall, "sendto");
        }
        other => panic!("expected ECONNREFUSED at 0, got {other:?}"),
    }
    // The entry the failure came from is kept too, not thrown away.
    let entries = tx.take_errors(16).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].destination, Some(dead));
}

#[test]
fn path_mtu_needs_a_connected_socket() {
    let tx = endpoint(Family::V4, "127.0.0.1:0");
    let error = tx.socket().path_mtu().unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ENOTCONN));
    let peer = StdUdp::bind("127.0.0.1:0").unwrap();
    tx.socket()
        .connect(SockAddr::from(peer.local_addr().unwrap()))
        .unwrap();
    // Loopback's MTU.
    let lo_mtu: u32 = std::fs::read_to_string("/sys/class/net/lo/mtu")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Route MTUs are capped at 65535 (IP_MAX_MTU), below a 64 KiB loopback.
    assert_eq!(tx.socket().path_mtu().unwrap(), lo_mtu.min(65_535));
    tx.socket()
        .set_path_mtu_discovery(mmsg_core::PathMtuDiscovery::Probe)
        .unwrap();
    tx.socket().set_dont_fragment(true).unwrap();
}

/// The lone-datagram path (`send_datagram`: one `sendto`, the batch rules only when it fails)
/// with error reporting on: the pending ICMP error that fails its first call is surfaced as
/// the entry, and the datagram goes out once, to the live peer.
#[test]
fn a_lone_datagram_after_a_dead_peer_goes_out_once_and_the_entry_is_kept() {
    let mut tx = endpoint(Family::V4, "127.0.0.1:0");
    tx.set_receive_errors(true).unwrap();
    let live = StdUdp::bind("127.0.0.1:0").unwrap();
    live.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let dead = closed_port("127.0.0.1");
    assert_eq!(
        tx.send_datagram(b"to-dead", Some(SockAddr::from(dead)), 0)
            .sent,
        1
    );
    std::thread::sleep(Duration::from_millis(50));
    let report = tx.send_datagram(
        b"to-live",
        Some(SockAddr::from(live.local_addr().unwrap())),
        0,
    );
    assert_eq!(report.sent, 1, "{:?}", report.stop);
    assert!(matches!(report.stop, mmsg_core::SendStop::Complete));
    let mut buf = [0u8; 64];
    let n = live.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"to-live");
    live.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(live.recv(&mut buf).is_err(), "a datagram arrived twice");
    let entries = tx.take_errors(16).unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].destination, Some(dead));
}

/// Without error reporting, a connected socket's ICMP error fails the lone datagram that meets
/// it, by `sendto`, at index 0 with nothing sent: never eaten by a retry.
#[test]
fn a_lone_datagram_on_a_connected_socket_reports_the_icmp_error() {
    let (mut tx, _) = connected_to_a_closed_port();
    assert_eq!(tx.send_datagram(b"x", None, 0).sent, 1);
    std::thread::sleep(Duration::from_millis(50));
    let report = tx.send_datagram(b"y", None, 0);
    assert_eq!(report.sent, 0);
    match report.stop {
        mmsg_core::SendStop::Failed {
            index: 0,
            error,
            syscall,
        } => {
            assert_eq!(error.raw_os_error(), Some(libc::ECONNREFUSED));
            assert_eq!(syscall, "sendto");
        }
        other => panic!("expected ECONNREFUSED at 0, got {other:?}"),
    }
    // Reported once: the next datagram goes out.
    assert_eq!(tx.send_datagram(b"z", None, 0).sent, 1);
}
