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
        matches!(report.stop, PlanStop::Failed { index: 0, ref error } if error.raw_os_error() == Some(libc::ECONNREFUSED))
    );
    // Now message 1 is too long: it must be reported as EMSGSIZE, never as an old ICMP error.
    let big = vec![0u8; 70_000];
    let plan = SendPlan::new(vec![1, 70_000], &[], vec![], vec![]).unwrap();
    let report = endpoint.send_plan(&plan, &[b"a", &big], 0, 0);
    match report.stop {
        PlanStop::Failed { index, error } => {
            assert_eq!(index, 1);
            assert_eq!(report.sent, 1);
            assert_eq!(error.raw_os_error(), Some(libc::EMSGSIZE), "{error}");
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
        matches!(report.stop, PlanStop::Failed { index: 0, ref error } if error.raw_os_error() == Some(libc::EINVAL))
    );
    assert_eq!(endpoint.gso(), mmsg_core::GsoSupport::Available);
}
