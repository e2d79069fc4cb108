/*
 * Reference sender for `npm run bench`: the plain sendmmsg(2) loop this package wraps, with the
 * headers built once, to 127.0.0.1:PORT.
 *
 *   sendmmsg_loop SIZE BATCH COUNT PORT [MAX_SECONDS] [unconnected|connected|gso]
 *
 * Sends COUNT datagrams of SIZE bytes in calls of BATCH messages (non-blocking, like the
 * package's trySend: a short count or EAGAIN is retried, and only accepted datagrams count),
 * stopping early after MAX_SECONDS (default 10). The default is "unconnected": every header
 * carries the destination in msg_name, as trySend(buffers, port, address) does. "connected"
 * connect()s once and leaves msg_name empty. "gso" is the flood mode used for the receive
 * benchmark: unconnected, and every message is a UDP_SEGMENT (GSO) buffer of as many SIZE-byte
 * datagrams as fit in 64 segments / 65000 bytes, which the kernel cuts into separate datagrams
 * on the way to a receiver without UDP_GRO (so one system call offers BATCH × 64 datagrams).
 * "gso-gather" sends the same GSO messages, each gathered from one separately allocated
 * buffer per datagram (one iovec each), as a C program holding separate datagram buffers
 * would without copying them: the zero-copy reference for trySend of separate Buffers.
 * Prints one JSON line:
 *   {"datagrams":N,"seconds":S,"rate":N/S,"eagain":E,"user_s":U,"system_s":K}
 * where U and K are the process's user and system CPU seconds (getrusage), setup included.
 * Only loopback addresses are used.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void) {
  fprintf(stderr, "usage: sendmmsg_loop SIZE BATCH COUNT PORT [MAX_SECONDS] [unconnected|connected|gso|gso-gather]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 5) usage();
  long size = atol(argv[1]);
  long batch = atol(argv[2]);
  long long count = atoll(argv[3]);
  long port = atol(argv[4]);
  double max_seconds = argc > 5 ? atof(argv[5]) : 10.0;
  int connected = argc > 6 && strcmp(argv[6], "connected") == 0;
  int gather = argc > 6 && strcmp(argv[6], "gso-gather") == 0;
  int gso = gather || (argc > 6 && strcmp(argv[6], "gso") == 0);
  if (size < 1 || size > 65507 || batch < 1 || batch > 1024 || count < 1 || port < 1 || port > 65535 ||
      !(max_seconds > 0))
    usage();

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("socket"); return 1; }
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_port = htons((unsigned short)port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connected && connect(fd, (struct sockaddr *)&to, sizeof to) != 0) { perror("connect"); return 1; }

  /* Datagrams per message: 1, or a GSO group. */
  long per_msg = 1;
  if (gso) {
    per_msg = 65000 / size;
    if (per_msg > 64) per_msg = 64;
    if (per_msg < 1) per_msg = 1;
  }
  /* One buffer per message, as the package's Buffer-array shape has. */
  size_t msg_bytes = (size_t)size * (size_t)per_msg;
  char *data = calloc((size_t)batch, msg_bytes);
  long iov_per_msg = gather ? per_msg : 1;
  struct iovec *iov = calloc((size_t)(batch * iov_per_msg), sizeof *iov);
  struct mmsghdr *msgs = calloc((size_t)batch, sizeof *msgs);
  char *control = calloc((size_t)batch, CMSG_SPACE(sizeof(uint16_t)));
  if (!data || !iov || !msgs || !control) { perror("calloc"); return 1; }
  for (long i = 0; i < batch; i++) {
    memset(data + i * msg_bytes, (int)(i & 0xff), msg_bytes);
    if (gather) {
      for (long k = 0; k < per_msg; k++) {
        char *one = malloc((size_t)size);
        if (!one) { perror("malloc"); return 1; }
        memset(one, (int)(i & 0xff), (size_t)size);
        iov[i * per_msg + k].iov_base = one;
        iov[i * per_msg + k].iov_len = (size_t)size;
      }
    } else {
      iov[i].iov_base = data + i * msg_bytes;
      iov[i].iov_len = msg_bytes;
    }
    msgs[i].msg_hdr.msg_iov = &iov[i * iov_per_msg];
    msgs[i].msg_hdr.msg_iovlen = (size_t)iov_per_msg;
    if (!connected) {
      msgs[i].msg_hdr.msg_name = &to;
      msgs[i].msg_hdr.msg_namelen = sizeof to;
    }
    if (gso && per_msg > 1) {
      char *buf = control + i * CMSG_SPACE(sizeof(uint16_t));
      msgs[i].msg_hdr.msg_control = buf;
      msgs[i].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t seg = (uint16_t)size;
      memcpy(CMSG_DATA(c), &seg, sizeof seg);
    }
  }

  /* Look at the clock about every 64 datagrams, whatever the batch size. */
  long check_every = batch * per_msg >= 64 ? 1 : (64 + batch * per_msg - 1) / (batch * per_msg);
  long long sent = 0, eagain = 0;
  long calls = 0;
  double start = now(), deadline = start + max_seconds, end = start;
  while (sent < count) {
    long long left = (count - sent + per_msg - 1) / per_msg;
    unsigned int n = (unsigned int)(left < batch ? left : batch);
    int r = sendmmsg(fd, msgs, n, 0);
    if (r > 0) {
      sent += (long long)r * per_msg;
    } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      eagain++;
    } else if (r < 0 && errno != EINTR) {
      perror("sendmmsg");
      return 1;
    }
    if (++calls % check_every == 0 && (end = now()) >= deadline) break;
  }
  end = now();
  double seconds = end - start;
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  printf("{\"datagrams\":%lld,\"seconds\":%.6f,\"rate\":%.1f,\"eagain\":%lld,\"user_s\":%.6f,\"system_s\":%.6f}\n",
         sent, seconds, seconds > 0 ? (double)sent / seconds : 0.0, eagain,
         usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6, usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6);
  return 0;
}
