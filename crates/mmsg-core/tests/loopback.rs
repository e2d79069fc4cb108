//! The core against real loopback sockets, with `std::net::UdpSocket` as the independent peer.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::time::Duration;

use mmsg_core::{Family, RecvScratch, SendScratch, SendStop, Slab, SocketOptions, UdpSocket};

fn receiver(addr: &str) -> StdUdp {
    let rx = StdUdp::bind(addr).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Room for thousands of small datagrams.
    rx
}

fn sender(family: Family, bind: &str) -> UdpSocket {
    let tx = UdpSocket::new(family, &SocketOptions::default()).unwrap();
    tx.bind(bind.parse::<SocketAddr>().unwrap().into()).unwrap();
    tx
}

fn recv_one(rx: &StdUdp) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let n = rx.recv(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn man_page_example_arrives_as_two_datagrams() {
    let rx = receiver("127.0.0.1:0");
    let tx = sender(Family::V4, "127.0.0.1:0");
    tx.connect(rx.local_addr().unwrap().into()).unwrap();
    let mut scratch = SendScratch::new();
    let mut batch = scratch.batch();
    batch.push_message(&[b"one", b"two"], None).unwrap();
    batch.push_message(&[b"three"], None).unwrap();
    let report = batch.send(tx.raw_fd(), 0, 0);
    assert_eq!(report.sent, 2);
    assert!(matches!(report.stop, SendStop::Complete));
    assert_eq!(batch.bytes_sent(), &[6, 5]);
    assert_eq!(recv_one(&rx), b"onetwo");
    assert_eq!(recv_one(&rx), b"three");
}

#[test]
fn more_than_uio_maxiov_messages_arrive_all_in_order() {
    let rx = receiver("127.0.0.1:0");
    let rx_core = UdpSocket::from_fd_duplicate(std::os::fd::AsRawFd::as_raw_fd(&rx)).unwrap();
    rx_core.set_recv_buffer_size(8 << 20).unwrap();
    let tx = sender(Family::V4, "127.0.0.1:0");
    let payloads: Vec<[u8; 4]> = (0..3000u32).map(|i| i.to_be_bytes()).collect();
    let mut scratch = SendScratch::new();
    let mut batch = scratch.batch();
    let to = batch.add_destination(
        tx.destination("127.0.0.1", rx.local_addr().unwrap().port())
            .unwrap(),
    );
    for p in &payloads {
        batch.push_message(&[p], Some(to)).unwrap();
    }
    let report = batch.send(tx.raw_fd(), 0, 0);
    assert_eq!(report.sent, 3000);
    assert!(matches!(report.stop, SendStop::Complete));
    for i in 0..3000u32 {
        assert_eq!(recv_one(&rx), i.to_be_bytes());
    }
}

#[test]
fn ipv6_and_recvmmsg_report_sources() {
    let rx = sender(Family::V6, "[::1]:0");
    let tx = sender(Family::V6, "[::1]:0");
    let mut scratch = SendScratch::new();
    let mut batch = scratch.batch();
    let to = batch.add_destination(
        rx.destination("::1", rx.local_addr().unwrap().port())
            .unwrap(),
    );
    batch.push_message(&[b"abc"], Some(to)).unwrap();
    batch.push_message(&[b"de", b"f", b"gh"], Some(to)).unwrap();
    assert_eq!(batch.send(tx.raw_fd(), 0, 0).sent, 2);

    let mut recv = RecvScratch::new();
    let mut slab = vec![0u8; 4 * 16];
    let mut metas = Vec::new();
    let n = recv
        .recv_slab(
            rx.raw_fd(),
            Slab {
                bytes: &mut slab,
                slot_size: 16,
                max_datagrams: 4,
            },
            libc::MSG_WAITFORONE,
            Some(Duration::from_secs(5)),
            &mut metas,
        )
        .unwrap();
    // Both were queued before the call, so one recvmmsg returns both.
    assert_eq!(n, 2);
    assert_eq!(&slab[..3], b"abc");
    assert_eq!(&slab[16..21], b"defgh");
    assert_eq!(metas[1].len, 5);
    assert_eq!(metas[0].source, Some(tx.local_addr().unwrap()));
    assert!(!metas[0].truncated);
}

#[test]
fn truncation_is_reported() {
    let rx = sender(Family::V4, "127.0.0.1:0");
    let tx = StdUdp::bind("127.0.0.1:0").unwrap();
    tx.send_to(&[7u8; 100], rx.local_addr().unwrap()).unwrap();
    let mut recv = RecvScratch::new();
    let mut slab = vec![0u8; 10];
    let mut metas = Vec::new();
    let n = recv
        .recv_slab(
            rx.raw_fd(),
            Slab {
                bytes: &mut slab,
                slot_size: 10,
                max_datagrams: 1,
            },
            libc::MSG_WAITFORONE,
            Some(Duration::from_secs(5)),
            &mut metas,
        )
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(metas[0].len, 10);
    assert!(metas[0].truncated);
}

#[test]
fn failure_mid_batch_reports_index_and_errno_and_keeps_earlier_messages() {
    let rx = receiver("127.0.0.1:0");
    let tx = sender(Family::V4, "127.0.0.1:0");
    let big = vec![1u8; 70_000]; // over 65507: EMSGSIZE
    let mut scratch = SendScratch::new();
    let mut batch = scratch.batch();
    let to = batch.add_destination(
        tx.destination("127.0.0.1", rx.local_addr().unwrap().port())
            .unwrap(),
    );
    let small: Vec<[u8; 1]> = (0..5u8).map(|i| [i]).collect();
    for p in &small {
        batch.push_message(&[p], Some(to)).unwrap();
    }
    batch.push_message(&[&big[..]], Some(to)).unwrap();
    batch.push_message(&[b"after"], Some(to)).unwrap();
    let report = batch.send(tx.raw_fd(), 0, 0);
    assert_eq!(report.sent, 5, "the five before the oversized one went out");
    match report.stop {
        SendStop::Failed { error: e, .. } => assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE)),
        other => panic!("expected EMSGSIZE, got {other:?}"),
    }
    for i in 0..5u8 {
        assert_eq!(recv_one(&rx), [i]);
    }
    // Resuming after the failed message sends exactly the rest, once.
    let report = batch.send(tx.raw_fd(), 0, 6);
    assert_eq!(report.sent, 7);
    assert_eq!(recv_one(&rx), b"after");
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(rx.recv(&mut buf).is_err(), "nothing was sent twice");
}

#[test]
fn connected_peer_gone_surfaces_econnrefused_with_index() {
    // A port that was bound then closed: the first datagram draws an ICMP port-unreachable,
    // which on loopback is processed before the next message of the same sendmmsg call. The
    // kernel then stops the batch at message 1 and drops the error (the man page's BUGS); the
    // core must report it, with index 1, rather than resend and lose it.
    let gone = StdUdp::bind("127.0.0.1:0").unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    let tx = sender(Family::V4, "127.0.0.1:0");
    tx.connect(gone_addr.into()).unwrap();
    let mut scratch = SendScratch::new();
    let mut batch = scratch.batch();
    for _ in 0..10 {
        batch.push_message(&[b"x"], None).unwrap();
    }
    for round in 0..5 {
        let report = batch.send(tx.raw_fd(), 0, 0);
        match report.stop {
            SendStop::Failed { error: e, .. } => {
                assert_eq!(e.raw_os_error(), Some(libc::ECONNREFUSED), "round {round}");
                assert!(report.sent < 10);
            }
            other => panic!(
                "round {round}: expected ECONNREFUSED, got {other:?} after {}",
                report.sent
            ),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn too_many_segments_is_refused_before_sending() {
    let mut scratch = SendScratch::new();
    let mut batch = scratch.batch();
    batch.start_message(None);
    let byte = [0u8; 1];
    for _ in 0..mmsg_core::MAX_SEGMENTS_PER_MESSAGE {
        batch.add_segment(&byte).unwrap();
    }
    assert!(batch.add_segment(&byte).is_err());
}

#[test]
fn wrong_family_and_disconnect() {
    let tx = sender(Family::V4, "127.0.0.1:0");
    assert!(tx.destination("::1", 1).is_err());
    let v6 = sender(Family::V6, "[::]:0");
    assert_eq!(
        v6.destination("127.0.0.1", 9)
            .unwrap()
            .to_socket_addr()
            .to_string(),
        "[::ffff:127.0.0.1]:9"
    );
    let peer = receiver("127.0.0.1:0");
    tx.connect(peer.local_addr().unwrap().into()).unwrap();
    assert_eq!(tx.peer_addr().unwrap(), peer.local_addr().unwrap());
    tx.disconnect().unwrap();
    assert!(tx.peer_addr().is_err());
}

#[test]
fn gso_segmented_send_arrives_as_separate_datagrams_in_order() {
    let rx = receiver("127.0.0.1:0");
    let rx_core = UdpSocket::from_fd_duplicate(std::os::fd::AsRawFd::as_raw_fd(&rx)).unwrap();
    rx_core.set_recv_buffer_size(4 << 20).unwrap();
    let tx = sender(Family::V4, "127.0.0.1:0");
    // 150 segments of 1200 bytes and a 7-byte tail: three GSO sends of up to 54 segments.
    let mut payload = Vec::new();
    for i in 0..150u32 {
        let mut seg = vec![(i % 251) as u8; 1200];
        seg[..4].copy_from_slice(&i.to_be_bytes());
        payload.extend_from_slice(&seg);
    }
    payload.extend_from_slice(b"tail!!!");
    let mut scratch = SendScratch::new();
    let mut support = mmsg_core::GsoSupport::default();
    let to = tx
        .destination("127.0.0.1", rx.local_addr().unwrap().port())
        .unwrap();
    let report = mmsg_core::send_segmented(
        tx.raw_fd(),
        &mut scratch,
        &mut support,
        &payload,
        1200,
        Some(to),
        0,
    );
    assert_eq!(report.sent, 151);
    assert!(matches!(report.stop, SendStop::Complete));
    for i in 0..150u32 {
        let got = recv_one(&rx);
        assert_eq!(got.len(), 1200);
        assert_eq!(&got[..4], &i.to_be_bytes());
        assert_eq!(got[4], (i % 251) as u8);
    }
    assert_eq!(recv_one(&rx), b"tail!!!");
    // Loopback supports UDP GSO on any kernel this package targets (>= 4.18).
    assert_eq!(support, mmsg_core::GsoSupport::Available);
    assert!(report.used_gso);
}

#[test]
fn source_specific_membership_join_leave_and_refusals() {
    use mmsg_core::MembershipError;
    let errno = |r: Result<(), MembershipError>| match r {
        Err(MembershipError::System(e)) => e.raw_os_error(),
        other => panic!("expected a system error, got {other:?}"),
    };
    for (family, bind, source, group, iface) in [
        (
            Family::V4,
            "0.0.0.0:0",
            "127.0.0.1",
            "232.1.2.3",
            Some("127.0.0.1"),
        ),
        (Family::V6, "[::]:0", "::1", "ff3e::1:2:3", None),
    ] {
        let socket = sender(family, bind);
        // Leaving a group never joined is the kernel's EINVAL (as node:dgram reports it).
        assert_eq!(
            errno(socket.set_source_membership(source, group, iface, false)),
            Some(libc::EINVAL)
        );
        match socket.set_source_membership(source, group, iface, true) {
            Ok(()) => {
                socket
                    .set_source_membership(source, group, iface, false)
                    .unwrap();
                assert_eq!(
                    errno(socket.set_source_membership(source, group, iface, false)),
                    Some(libc::EINVAL)
                );
            }
            // A host without a multicast-capable interface refuses the join itself.
            Err(MembershipError::System(e)) if e.raw_os_error() == Some(libc::ENODEV) => {}
            Err(e) => panic!("join {group} from {source}: {e:?}"),
        }
        // Not literals: refused before the kernel.
        assert!(matches!(
            socket.set_source_membership(source, "0", None, true),
            Err(MembershipError::Address(_))
        ));
        assert!(matches!(
            socket.set_source_membership("nope", group, None, true),
            Err(MembershipError::Address(_))
        ));
    }
    // The request follows the group's family: an IPv6 group on an IPv4 socket reaches the kernel.
    let v4 = sender(Family::V4, "0.0.0.0:0");
    assert_eq!(
        errno(v4.set_source_membership("::1", "ff3e::1", None, true)),
        Some(libc::ENOPROTOOPT)
    );
    // A source of the other family than the group is a bad address.
    assert!(matches!(
        v4.set_source_membership("::1", "232.1.2.3", None, true),
        Err(MembershipError::Address(_))
    ));
}
