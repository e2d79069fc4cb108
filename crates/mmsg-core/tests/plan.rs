//! Send plans and the endpoint against real loopback sockets (`std::net::UdpSocket` as peer).

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::time::Duration;

use mmsg_core::{Endpoint, Family, PlanStop, SendPlan, SockAddr, SocketOptions};

fn peer() -> StdUdp {
    let rx = StdUdp::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    rx
}

fn recv_all(rx: &StdUdp) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while let Ok(n) = rx.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn addr(rx: &StdUdp) -> SockAddr {
    SockAddr::from(rx.local_addr().unwrap())
}

#[test]
fn a_shrunk_view_fails_its_message_after_the_ones_before_it_were_sent() {
    let rx = peer();
    let mut endpoint = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
    let plan = SendPlan::new(vec![3, 3, 3], &[], vec![], vec![addr(&rx)]).unwrap();
    let (a, b, c) = (*b"aaa", *b"bb", *b"ccc");
    let report = endpoint.send_plan(&plan, &[&a, &b, &c], 0, 0);
    assert_eq!(report.sent, 1);
    assert!(matches!(
        report.stop,
        PlanStop::ViewChanged { index: 1, piece: 1 }
    ));
    assert_eq!(recv_all(&rx), vec![b"aaa".to_vec()]);
    // Resuming after the bad message sends exactly the rest, once.
    let report = endpoint.send_plan(&plan, &[&a, b"bbb", &c], 2, 0);
    assert_eq!(report.sent, 3);
    assert_eq!(recv_all(&rx), vec![b"ccc".to_vec()]);
}

#[test]
fn only_the_planned_bytes_of_a_grown_view_are_sent() {
    let rx = peer();
    let mut endpoint = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
    let plan = SendPlan::new(vec![2, 1], &[2], vec![], vec![addr(&rx)]).unwrap();
    let report = endpoint.send_plan(&plan, &[b"xyz", b"12"], 0, 0);
    assert_eq!(report.sent, 1);
    assert!(matches!(report.stop, PlanStop::Complete));
    assert_eq!(recv_all(&rx), vec![b"xy1".to_vec()]);
}

#[test]
fn message_one_too_long_is_emsgsize_even_with_an_old_icmp_error_queued() {
    // A port nobody listens on: the kernel answers with ICMP port unreachable.
    let closed = {
        let s = StdUdp::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let mut endpoint = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
    endpoint.socket().connect(SockAddr::from(closed)).unwrap();
    let plan = SendPlan::new(vec![1], &[], vec![], vec![]).unwrap();
    let _ = endpoint.send_plan(&plan, &[b"x"], 0, 0);
    std::thread::sleep(Duration::from_millis(20));
    // The pending error (sk_err) fails the next first message directly: that is its own.
    let report = endpoint.send_plan(&plan, &[b"x"], 0, 0);
    assert!(
        matches!(report.stop, PlanStop::Failed { index: 0, ref error, .. } if error.raw_os_error() == Some(libc::ECONNREFUSED))
    );
    // Now message 1 is too long: it must be reported as EMSGSIZE, never as an old ICMP error.
    let big = vec![0u8; 70_000];
    let plan = SendPlan::new(vec![1, 70_000], &[], vec![], vec![]).unwrap();
    let report = endpoint.send_plan(&plan, &[b"a", &big], 0, 0);
    match report.stop {
        PlanStop::Failed {
            index,
            error,
            syscall,
        } => {
            assert_eq!(index, 1);
            assert_eq!(report.sent, 1);
            assert_eq!(error.raw_os_error(), Some(libc::EMSGSIZE), "{error}");
            // The batch stopped short at message 1 (its error lost by sendmmsg); it was sent
            // again on its own, which is the call that named the error.
            assert_eq!(syscall, "sendto");
        }
        other => panic!(
            "expected EMSGSIZE at 1, got {other:?} (sent {})",
            report.sent
        ),
    }
}

#[test]
fn destinations_per_message_and_connected_peer() {
    let (rx1, rx2) = (peer(), peer());
    let mut endpoint = Endpoint::new(Family::V6, &SocketOptions::default()).unwrap();
    // IPv4 destinations on an IPv6 socket go out IPv4-mapped.
    let mapped = |rx: &StdUdp| {
        let SocketAddr::V4(v4) = rx.local_addr().unwrap() else {
            unreachable!()
        };
        SockAddr::from(SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()))
    };
    let plan = SendPlan::new(
        vec![1, 1, 1],
        &[],
        vec![1, 0, 1],
        vec![mapped(&rx1), mapped(&rx2)],
    )
    .unwrap();
    assert_eq!(endpoint.send_plan(&plan, &[b"1", b"2", b"3"], 0, 0).sent, 3);
    assert_eq!(recv_all(&rx1), vec![b"2".to_vec()]);
    assert_eq!(recv_all(&rx2), vec![b"1".to_vec(), b"3".to_vec()]);
}

#[test]
fn equal_sized_runs_leave_as_gso_and_arrive_as_the_same_datagrams() {
    let rx = peer();
    let mut endpoint = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
    // 100 × 64 B (runs of 64 + 36), then sizes that break runs: 10, 10, 5 (a shorter last),
    // 20, one of 1 piece gathered from 3.
    let mut lengths = vec![64u32; 100];
    lengths.extend([10, 10, 5, 20]);
    let mut counts = vec![1u32; 104];
    lengths.extend([1, 1, 1]);
    counts.push(3);
    let payloads: Vec<Vec<u8>> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i as u32 * 7 + j) as u8).collect())
        .collect();
    let views: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
    let plan = SendPlan::new(lengths.clone(), &counts, vec![], vec![addr(&rx)]).unwrap();
    let report = endpoint.send_plan(&plan, &views, 0, 0);
    assert_eq!(report.sent, 105, "{:?}", report.stop);
    assert!(matches!(report.stop, PlanStop::Complete));
    let got = recv_all(&rx);
    let mut want: Vec<Vec<u8>> = payloads[..104].to_vec();
    want.push(payloads[104..].concat());
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    assert_eq!(endpoint.gso(), mmsg_core::GsoSupport::Available);
}

#[test]
fn a_bad_destination_fails_a_gso_run_as_its_own_error_and_keeps_gso() {
    let mut endpoint = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
    let port0 = SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap());
    let plan = SendPlan::new(vec![8; 3], &[], vec![], vec![port0]).unwrap();
    let data = [0u8; 8];
    let report = endpoint.send_plan(&plan, &[&data, &data, &data], 0, 0);
    assert_eq!(report.sent, 0);
    assert!(
        matches!(report.stop, PlanStop::Failed { index: 0, ref error, .. } if error.raw_os_error() == Some(libc::EINVAL))
    );
    assert_eq!(endpoint.gso(), mmsg_core::GsoSupport::Available);
}

// ---- per-message segment sizes and source addresses ---------------------------------------

use mmsg_core::{GsoSupport, PlanError, PlanPosition, SendScratch, SourceRequest};
use std::net::IpAddr;

/// Bytes `0..n` of a recognisable pattern for message `tag`.
fn pattern(tag: u8, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| tag.wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// The mixed batch of the issue: [plain 100, {3000, segment 1000} gathered from 3 pieces that
/// straddle the segment boundaries, {2500, segment 1000}, plain 100].
struct Mixed {
    bodies: Vec<Vec<u8>>,
    pieces: Vec<Vec<u8>>,
}

impl Mixed {
    fn new() -> Mixed {
        let bodies = vec![
            pattern(1, 100),
            pattern(2, 3000),
            pattern(3, 2500),
            pattern(4, 100),
        ];
        let b = &bodies[1];
        let pieces = vec![
            bodies[0].clone(),
            b[..700].to_vec(),
            b[700..2300].to_vec(),
            b[2300..].to_vec(),
            bodies[2].clone(),
            bodies[3].clone(),
        ];
        Mixed { bodies, pieces }
    }

    fn plan(&self, to: SockAddr) -> SendPlan {
        let lengths = self.pieces.iter().map(|p| p.len() as u32).collect();
        let mut plan = SendPlan::new(lengths, &[1, 3, 1, 1], vec![], vec![to]).unwrap();
        plan.set_segment_sizes(vec![0, 1000, 1000, 0]).unwrap();
        plan
    }

    fn views(&self) -> Vec<&[u8]> {
        self.pieces.iter().map(|p| p.as_slice()).collect()
    }

    /// The datagrams the receiver must see, in order.
    fn expected(&self) -> Vec<Vec<u8>> {
        let mut out = vec![self.bodies[0].clone()];
        out.extend(self.bodies[1].chunks(1000).map(<[u8]>::to_vec));
        out.extend(self.bodies[2].chunks(1000).map(<[u8]>::to_vec));
        out.push(self.bodies[3].clone());
        out
    }
}

fn peer_v6() -> StdUdp {
    StdUdp::bind("[::1]:0").unwrap()
}

#[test]
fn per_message_segment_sizes_arrive_exactly_with_and_without_gso() {
    let mixed = Mixed::new();
    let sizes = |got: &[Vec<u8>]| got.iter().map(Vec::len).collect::<Vec<_>>();
    for (family, rx) in [(Family::V4, peer()), (Family::V6, peer_v6())] {
        let mut endpoint = Endpoint::new(family, &SocketOptions::default()).unwrap();
        let plan = mixed.plan(addr(&rx));
        assert_eq!(plan.datagrams_of(1), 3);
        assert_eq!(plan.datagrams_of(2), 3);
        // With GSO (loopback has it): counted in messages.
        let report = endpoint.send_plan(&plan, &mixed.views(), 0, 0);
        assert_eq!(
            (report.sent, report.segments_sent),
            (4, 0),
            "{:?}",
            report.stop
        );
        assert!(matches!(report.stop, PlanStop::Complete));
        assert_eq!(endpoint.gso(), GsoSupport::Available);
        let got = recv_all(&rx);
        assert_eq!(sizes(&got), [100, 1000, 1000, 1000, 1000, 1000, 500, 100]);
        assert_eq!(got, mixed.expected());
        // Without GSO: the same datagrams, each once.
        let mut scratch = SendScratch::new();
        let tx = Endpoint::new(family, &SocketOptions::default()).unwrap();
        let report = plan.send(tx.socket().raw_fd(), &mut scratch, &mixed.views(), 0, 0);
        assert_eq!((report.sent, report.segments_sent), (4, 0));
        assert_eq!(recv_all(&rx), mixed.expected());
    }
}

#[test]
fn resuming_inside_a_segmented_message_sends_exactly_the_rest() {
    let mixed = Mixed::new();
    let rx = peer();
    let plan = mixed.plan(addr(&rx));
    let expected = mixed.expected();
    for gso in [GsoSupport::Available, GsoSupport::Unavailable] {
        let tx = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
        let mut scratch = SendScratch::new();
        let mut support = gso;
        // Message 1's first two datagrams went out before: its third and the rest follow.
        let from = PlanPosition {
            message: 1,
            segment: 2,
        };
        let report = plan.send_from(
            tx.socket().raw_fd(),
            &mut scratch,
            &mixed.views(),
            from,
            0,
            &mut support,
        );
        assert_eq!((report.sent, report.segments_sent), (4, 0));
        assert_eq!(recv_all(&rx), expected[3..].to_vec(), "{gso:?}");
        // A position past a message's last datagram starts at the next message.
        let from = PlanPosition {
            message: 2,
            segment: 3,
        };
        let report = plan.send_from(
            tx.socket().raw_fd(),
            &mut scratch,
            &mixed.views(),
            from,
            0,
            &mut support,
        );
        assert_eq!(report.sent, 4);
        assert_eq!(recv_all(&rx), expected[7..].to_vec());
    }
}

#[test]
fn a_refused_segmented_message_is_reported_at_its_index_and_sent_once() {
    // Port 0: the kernel refuses every datagram (EINVAL). The GSO attempt is retried datagram
    // by datagram (EINVAL may be about GSO), whose first is refused again: nothing went out.
    let mut endpoint = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
    let rx = peer();
    let port0 = SockAddr::from("127.0.0.1:0".parse::<SocketAddr>().unwrap());
    let body = pattern(5, 2500);
    let plan = {
        let mut plan =
            SendPlan::new(vec![10, 2500], &[], vec![0, 1], vec![addr(&rx), port0]).unwrap();
        plan.set_segment_sizes(vec![0, 1000]).unwrap();
        plan
    };
    let first = pattern(6, 10);
    let report = endpoint.send_plan(&plan, &[&first, &body], 0, 0);
    assert_eq!((report.sent, report.segments_sent), (1, 0));
    assert!(
        matches!(report.stop, PlanStop::Failed { index: 1, ref error, .. } if error.raw_os_error() == Some(libc::EINVAL)),
        "{:?}",
        report.stop
    );
    assert_eq!(
        endpoint.gso(),
        GsoSupport::Available,
        "a bad port is not a GSO problem"
    );
    assert_eq!(recv_all(&rx), vec![first]);
    // A plain message too long for UDP after a segmented one: EMSGSIZE at its own index.
    let big = vec![0u8; 70_000];
    let mut plan = SendPlan::new(vec![2500, 70_000], &[], vec![], vec![addr(&rx)]).unwrap();
    plan.set_segment_sizes(vec![1000, 0]).unwrap();
    let report = endpoint.send_plan(&plan, &[&body, &big], 0, 0);
    assert_eq!((report.sent, report.segments_sent), (1, 0));
    assert!(
        matches!(report.stop, PlanStop::Failed { index: 1, ref error, .. } if error.raw_os_error() == Some(libc::EMSGSIZE))
    );
    assert_eq!(
        recv_all(&rx),
        body.chunks(1000).map(<[u8]>::to_vec).collect::<Vec<_>>()
    );
}

#[test]
fn segment_sizes_and_sources_are_checked() {
    let to = SockAddr::from("127.0.0.1:9".parse::<SocketAddr>().unwrap());
    let mut plan = SendPlan::new(vec![6500, 100, 70_000], &[], vec![], vec![to]).unwrap();
    assert!(matches!(
        plan.set_segment_sizes(vec![0, 0]),
        Err(PlanError::SegmentSizeCountMismatch { .. })
    ));
    assert_eq!(
        plan.set_segment_sizes(vec![100, 0, 0]),
        Err(PlanError::TooManyDatagrams {
            message: 0,
            datagrams: 65
        })
    );
    assert_eq!(
        plan.set_segment_sizes(vec![0, 0, 1100]),
        Err(PlanError::SegmentedTooLong {
            message: 2,
            bytes: 70_000
        })
    );
    // A segment size at least the message's length: one datagram, fine.
    plan.set_segment_sizes(vec![6500, 200, 0]).unwrap();
    assert_eq!(plan.datagrams_of(0), 1);
    assert_eq!(plan.datagrams_of(1), 1);
    // Sources: an IPv6 source for an IPv4 destination is refused; IPv4-mapped is IPv4.
    let v6: IpAddr = "::1".parse().unwrap();
    let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
    let request = |address: Option<IpAddr>| {
        Some(SourceRequest {
            address,
            interface: 1,
        })
    };
    assert!(matches!(
        plan.set_sources(vec![request(Some(v6)), None, None], None),
        Err(PlanError::SourceFamily { message: 0, .. })
    ));
    plan.set_sources(vec![request(Some(mapped)), request(None), None], None)
        .unwrap();
    assert_eq!(
        plan.source_of(0),
        Some(mmsg_core::PacketSource::V4 {
            address: "127.0.0.2".parse().unwrap(),
            interface: 1
        })
    );
    assert_eq!(plan.source_of(2), None);
    // Connected to an IPv6 peer: IPv6 sources only.
    let mut plan = SendPlan::new(vec![1], &[], vec![], vec![]).unwrap();
    let peer6 = SockAddr::from("[::1]:9".parse::<SocketAddr>().unwrap());
    assert!(plan
        .set_sources(
            vec![request(Some("127.0.0.1".parse().unwrap()))],
            Some(peer6)
        )
        .is_err());
    plan.set_sources(vec![request(None)], Some(peer6)).unwrap();
    assert!(matches!(
        plan.source_of(0),
        Some(mmsg_core::PacketSource::V6 { .. })
    ));
}

#[test]
fn each_datagram_leaves_from_its_own_source_address() {
    // 127.0.0.0/8 is all local on lo: a receiver on 0.0.0.0 sees 127.0.0.1 and 127.0.0.2 as
    // the senders the messages chose, also inside one GSO message and across equal sizes
    // (which must not merge into one run across sources).
    let rx = StdUdp::bind("0.0.0.0:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = rx.local_addr().unwrap().port();
    let to = SockAddr::from(SocketAddr::from(([127, 0, 0, 1], port)));
    let mut endpoint = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
    let sources: Vec<Option<&str>> = vec![
        Some("127.0.0.2"),
        Some("127.0.0.1"),
        Some("127.0.0.2"),
        Some("127.0.0.2"),
        None,
        Some("127.0.0.3"),
    ];
    let lengths = vec![50u32, 50, 50, 50, 50, 120];
    let mut plan = SendPlan::new(lengths, &[], vec![], vec![to]).unwrap();
    plan.set_segment_sizes(vec![0, 0, 0, 0, 0, 40]).unwrap();
    plan.set_sources(
        sources
            .iter()
            .map(|s| {
                s.map(|a| SourceRequest {
                    address: Some(a.parse().unwrap()),
                    interface: 0,
                })
            })
            .collect(),
        None,
    )
    .unwrap();
    let bodies: Vec<Vec<u8>> = (0..6u8)
        .map(|i| pattern(i, if i == 5 { 120 } else { 50 }))
        .collect();
    let views: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
    let report = endpoint.send_plan(&plan, &views, 0, 0);
    assert_eq!(report.sent, 6, "{:?}", report.stop);
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < 8 {
        let (n, from) = rx.recv_from(&mut buf).expect("datagram missing");
        got.push((from.ip(), buf[..n].to_vec()));
    }
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let want_sources = [
        ip("127.0.0.2"),
        ip("127.0.0.1"),
        ip("127.0.0.2"),
        ip("127.0.0.2"),
        ip("127.0.0.1"), // none: the route's choice for 127.0.0.1
        ip("127.0.0.3"),
        ip("127.0.0.3"),
        ip("127.0.0.3"),
    ];
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), want_sources);
    let mut want_bytes: Vec<Vec<u8>> = bodies[..5].to_vec();
    want_bytes.extend(bodies[5].chunks(40).map(<[u8]>::to_vec));
    assert_eq!(got.into_iter().map(|g| g.1).collect::<Vec<_>>(), want_bytes);
}

#[test]
fn resuming_at_a_segmented_message_whose_view_changed_reports_what_went_out_before() {
    let mixed = Mixed::new();
    let rx = peer();
    let plan = mixed.plan(addr(&rx));
    let tx = Endpoint::new(Family::V4, &SocketOptions::default()).unwrap();
    let mut scratch = SendScratch::new();
    let mut support = GsoSupport::Available;
    // Message 1 (3000 bytes in 3 pieces) had 2 of its 3 datagrams sent; then its first piece
    // shrank while the send waited.
    let mut views = mixed.views();
    let shrunk = &views[1][..10];
    views[1] = shrunk;
    let from = PlanPosition {
        message: 1,
        segment: 2,
    };
    let report = plan.send_from(
        tx.socket().raw_fd(),
        &mut scratch,
        &views,
        from,
        0,
        &mut support,
    );
    assert!(
        matches!(report.stop, PlanStop::ViewChanged { index: 1, .. }),
        "{:?}",
        report.stop
    );
    assert_eq!((report.sent, report.segments_sent), (1, 2));
    assert!(recv_all(&rx).is_empty(), "nothing sent");
}
