//! A reuseport group steered by CPU, with `std::net::UdpSocket` senders on threads pinned to
//! each CPU. Needs at least two CPUs the test may run on (else it says so and returns).

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::num::NonZeroU16;
use std::time::Duration;

use mmsg_core::steer::{set_thread_affinity, thread_affinity};
use mmsg_core::{Family, SocketOptions, UdpSocket};

fn group_member(port: u16) -> UdpSocket {
    let options = SocketOptions {
        reuse_port: true,
        recv_buffer_size: Some(1 << 20),
        ..SocketOptions::default()
    };
    let socket = UdpSocket::new(Family::V4, &options).unwrap();
    let at: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    socket.bind(at.into()).unwrap();
    socket
}

/// A blocking std view of the same socket, to read what it received.
fn reader(socket: &UdpSocket) -> StdUdp {
    let std = StdUdp::from(
        std::os::fd::AsFd::as_fd(socket)
            .try_clone_to_owned()
            .unwrap(),
    );
    std.set_nonblocking(true).unwrap();
    std
}

fn drain(socket: &StdUdp) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

/// Sends `count` datagrams `"<cpu>:<i>"` from a thread pinned to `cpu` (a fresh source port).
fn send_from_cpu(cpu: u32, port: u16, count: usize) {
    std::thread::spawn(move || {
        set_thread_affinity(&[cpu]).unwrap();
        let tx = StdUdp::bind("127.0.0.1:0").unwrap();
        for i in 0..count {
            tx.send_to(format!("{cpu}:{i}").as_bytes(), ("127.0.0.1", port))
                .unwrap();
        }
    })
    .join()
    .unwrap();
}

/// On loopback the receive softirq runs on the sending CPU (no RPS on `lo`): checked, not
/// assumed, with a connected receiver (the kind on which Linux records `SO_INCOMING_CPU`).
fn receiving_cpu_of_a_send_from(cpu: u32) -> Option<u32> {
    let rx = UdpSocket::new(Family::V4, &SocketOptions::default()).unwrap();
    rx.bind("127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let rx_addr = rx.local_addr().unwrap();
    let tx = StdUdp::bind("127.0.0.1:0").unwrap();
    rx.connect(tx.local_addr().unwrap().into()).unwrap();
    std::thread::spawn(move || {
        set_thread_affinity(&[cpu]).unwrap();
        tx.send_to(b"probe", rx_addr).unwrap();
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(drain(&reader(&rx)), vec![b"probe".to_vec()]);
    rx.incoming_cpu().unwrap()
}

#[test]
fn each_datagram_lands_on_the_socket_of_the_cpu_that_received_it() {
    let cpus = thread_affinity().unwrap();
    if cpus.len() < 2 || !cpus.contains(&0) || !cpus.contains(&1) {
        eprintln!("skipped: needs CPUs 0 and 1, this thread may run on {cpus:?}");
        return;
    }
    for cpu in [0, 1] {
        if receiving_cpu_of_a_send_from(cpu) != Some(cpu) {
            eprintln!(
                "skipped: loopback's receive path does not run on the sending CPU here (RPS?)"
            );
            return;
        }
    }
    let first = group_member(0);
    let port = first.local_addr().unwrap().port();
    let second = group_member(port);
    first.steer_by_cpu(NonZeroU16::new(2).unwrap()).unwrap();
    // Three flows (fresh source ports) per CPU: the CPU decides, not the 4-tuple.
    for _ in 0..3 {
        send_from_cpu(0, port, 20);
        send_from_cpu(1, port, 20);
    }
    std::thread::sleep(Duration::from_millis(50));
    let (got0, got1) = (drain(&reader(&first)), drain(&reader(&second)));
    assert_eq!(got0.len(), 60);
    assert_eq!(got1.len(), 60);
    assert!(got0.iter().all(|d| d.starts_with(b"0:")));
    assert!(got1.iter().all(|d| d.starts_with(b"1:")));

    // Detached: the group is back to hashing, and there is nothing left to detach.
    first.detach_group_program().unwrap();
    let again = second.detach_group_program().unwrap_err();
    assert_eq!(again.raw_os_error(), Some(libc::ENOENT));
}

#[test]
fn steering_needs_a_reuseport_socket() {
    let plain = UdpSocket::new(Family::V4, &SocketOptions::default()).unwrap();
    plain
        .bind("127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    assert!(!plain.reuse_port().unwrap());
    let error = plain.steer_by_cpu(NonZeroU16::new(2).unwrap()).unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::EINVAL));
    assert!(group_member(0).reuse_port().unwrap());
}
