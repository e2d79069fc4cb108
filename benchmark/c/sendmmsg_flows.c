/*
 * Flood sender for the reusePort section of `npm run bench`: like `sendmmsg_loop ... gso`, but
 * from FLOWS sockets (each bound to its own ephemeral source port on 127.0.0.1), taking turns
 * call by call, so a group of SO_REUSEPORT receivers sees FLOWS distinct 4-tuples and the kernel
 * spreads them by hash.
 *
 *   sendmmsg_flows SIZE FLOWS PORT MAX_SECONDS
 *
 * Every call is sendmmsg of 16 UDP_SEGMENT messages of 64 × SIZE bytes (cut into separate
 * datagrams on the way to a receiver without UDP_GRO). Non-blocking; only accepted datagrams
 * count. Prints one JSON line: {"datagrams":N,"seconds":S,"rate":N/S,"flows":F,"ports":[...]}.
 * Only loopback addresses are used.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define BATCH 16
#define SEGMENTS 64
#define MAX_FLOWS 256

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: sendmmsg_flows SIZE FLOWS PORT MAX_SECONDS\n");
    return 2;
  }
  long size = atol(argv[1]);
  long flows = atol(argv[2]);
  long port = atol(argv[3]);
  double max_seconds = atof(argv[4]);
  if (size < 1 || size * SEGMENTS > 65000 || flows < 1 || flows > MAX_FLOWS || port < 1 || port > 65535 ||
      !(max_seconds > 0)) {
    fprintf(stderr, "sendmmsg_flows: bad arguments\n");
    return 2;
  }

  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((unsigned short)port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  /* One socket per flow, bound to 127.0.0.1:0 so each has its own source port. */
  int fds[MAX_FLOWS];
  unsigned ports[MAX_FLOWS];
  for (long f = 0; f < flows; f++) {
    fds[f] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fds[f] < 0) { perror("socket"); return 1; }
    struct sockaddr_in local = to;
    local.sin_port = 0;
    socklen_t len = sizeof local;
    if (bind(fds[f], (struct sockaddr *)&local, sizeof local) != 0 ||
        getsockname(fds[f], (struct sockaddr *)&local, &len) != 0) { perror("bind"); return 1; }
    ports[f] = ntohs(local.sin_port);
  }

  /* The same BATCH messages serve every flow: destination in msg_name, one GSO group each. */
  size_t msg_bytes = (size_t)size * SEGMENTS;
  char *data = calloc(BATCH, msg_bytes);
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  char control[BATCH][CMSG_SPACE(sizeof(uint16_t))];
  if (!data) { perror("calloc"); return 1; }
  memset(msgs, 0, sizeof msgs);
  memset(control, 0, sizeof control);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = data + i * msg_bytes;
    iov[i].iov_len = msg_bytes;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof to;
    msgs[i].msg_hdr.msg_control = control[i];
    msgs[i].msg_hdr.msg_controllen = sizeof control[i];
    struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)size;
    memcpy(CMSG_DATA(c), &seg, sizeof seg);
  }

  long long sent = 0;
  long calls = 0;
  double start = now(), deadline = start + max_seconds;
  for (;;) {
    int r = sendmmsg(fds[calls % flows], msgs, BATCH, 0);
    if (r > 0) sent += (long long)r * SEGMENTS;
    else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { perror("sendmmsg"); return 1; }
    if (++calls % 4 == 0 && now() >= deadline) break;
  }
  double seconds = now() - start;
  printf("{\"datagrams\":%lld,\"seconds\":%.6f,\"rate\":%.1f,\"flows\":%ld,\"ports\":[", sent, seconds,
         seconds > 0 ? (double)sent / seconds : 0.0, flows);
  for (long f = 0; f < flows; f++) printf("%s%u", f ? "," : "", ports[f]);
  printf("]}\n");
  return 0;
}
