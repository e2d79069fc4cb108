/*
 * Reference receiver for `npm run bench`: a recvmmsg(2) loop on 127.0.0.1 that counts the
 * datagrams delivered to it.
 *
 *   recvmmsg_loop MAX_SECONDS [gro|plain|names|meta] [RCVBUF_BYTES] [WINDOW_FROM WINDOW_TO]
 *
 * Binds 127.0.0.1:0, prints {"port":P} on its own line, then receives in batches of 1024
 * (blocking, 100 ms SO_RCVTIMEO) until MAX_SECONDS have passed or nothing has arrived for
 * 300 ms after the first datagram. It goes on receiving after the window has closed, as the
 * benchmark's JavaScript receivers do: a socket closed early would turn the rest of the flood
 * into sends to a closed port, which cost the sender far less and inflate its offered rate. With "gro" it enables UDP_GRO and
 * counts the datagrams inside each coalesced receive (length / gso_size, rounded up). With
 * "names" it also asks for every datagram's source address (msg_name), as onBatch does. With
 * "meta" it takes source addresses and also turns on IP_RECVTOS, IP_PKTINFO and SO_TIMESTAMPNS
 * and reads each datagram's TOS byte, destination address and timestamp out of its control
 * messages, as onBatch does after setReceiveMetadata({ ecn, packetInfo, timestamps }).
 *
 * The rate is measured over a window, in seconds after the first datagram arrived (default: the
 * whole receive, first to last datagram): the count and clock at the first receive at or after
 * WINDOW_FROM, and again at or after WINDOW_TO. Prints one JSON line:
 *   {"datagrams":N,"seconds":S,"rate":N/S,"total":T,"drops":D,"meta":M,"user_s":U,"system_s":K}
 * where N and S are the window's, T counts every datagram received, D is SO_RXQ_OVFL's
 * count of datagrams the kernel dropped at this socket, M folds together what "meta" read, and
 * U and K are this process's user and system CPU seconds over the whole run (getrusage).
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif

#define VLEN 1024

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: recvmmsg_loop MAX_SECONDS [gro|plain|names|meta] [RCVBUF_BYTES] [WINDOW_FROM WINDOW_TO]\n");
    return 2;
  }
  double max_seconds = atof(argv[1]);
  int gro = argc > 2 && strcmp(argv[2], "gro") == 0;
  int meta = argc > 2 && strcmp(argv[2], "meta") == 0;
  int names = meta || (argc > 2 && strcmp(argv[2], "names") == 0);
  int rcvbuf = argc > 3 ? atoi(argv[3]) : 4 << 20;
  double window_from = argc > 5 ? atof(argv[4]) : -1, window_to = argc > 5 ? atof(argv[5]) : -1;
  size_t slot = gro ? 65536 : 2048;

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("socket"); return 1; }
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
  if (gro && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof one) != 0) gro = 0;
  if (meta && (setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one) != 0 ||
               setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) != 0 ||
               setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0)) {
    perror("setsockopt (meta)");
    return 1;
  }
  struct timeval tv = {0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("bind"); return 1; }
  socklen_t len = sizeof addr;
  getsockname(fd, (struct sockaddr *)&addr, &len);
  printf("{\"port\":%d}\n", ntohs(addr.sin_port));
  fflush(stdout);

  char *data = malloc(VLEN * slot);
  static struct iovec iov[VLEN];
  static struct mmsghdr msgs[VLEN];
  /* Room for SO_RXQ_OVFL, IP_TOS, IP_PKTINFO and SO_TIMESTAMPNS (24 + 24 + 32 + 32 bytes). */
  static char control[VLEN][128];
  static struct sockaddr_in6 sources[VLEN];
  if (!data) { perror("malloc"); return 1; }

  long long count = 0, count_from = -1, count_to = -1;
  uint32_t drops = 0;
  /* What "meta" reads from each datagram, folded together so the reads are not optimized out. */
  unsigned long long meta_sum = 0;
  double start = now(), deadline = start + max_seconds, first = 0, last = 0, t_from = 0, t_to = 0;
  for (;;) {
    for (int i = 0; i < VLEN; i++) {
      iov[i].iov_base = data + i * slot;
      iov[i].iov_len = slot;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = control[i];
      msgs[i].msg_hdr.msg_controllen = sizeof control[i];
      if (names) {
        msgs[i].msg_hdr.msg_name = &sources[i];
        msgs[i].msg_hdr.msg_namelen = sizeof sources[i];
      }
    }
    int r = recvmmsg(fd, msgs, VLEN, MSG_WAITFORONE, NULL);
    double t = now();
    if (r > 0) {
      if (first == 0) first = t;
      last = t;
      for (int i = 0; i < r; i++) {
        long long n = 1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) memcpy(&drops, CMSG_DATA(c), 4);
          if (meta && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS) meta_sum += *(unsigned char *)CMSG_DATA(c) & 3;
          if (meta && c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo info;
            memcpy(&info, CMSG_DATA(c), sizeof info);
            meta_sum += info.ipi_addr.s_addr + (unsigned)info.ipi_ifindex;
          }
          if (meta && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            meta_sum += (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
          }
          if (gro && c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
            int gso;
            memcpy(&gso, CMSG_DATA(c), sizeof gso);
            if (gso > 0) n = (msgs[i].msg_len + gso - 1) / gso;
          }
        }
        count += n;
      }
      if (window_from >= 0) {
        if (count_from < 0 && t - first >= window_from) { count_from = count; t_from = t; }
        if (count_from >= 0 && count_to < 0 && t - first >= window_to) { count_to = count; t_to = t; }
      }
    } else if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      perror("recvmmsg");
      return 1;
    }
    if (t >= deadline) break;
    if (first != 0 && t - last > 0.3) break;
  }
  long long n = count;
  double seconds = last - first;
  if (window_from >= 0) {
    n = count_to >= 0 ? count_to - count_from : 0;
    seconds = count_to >= 0 ? t_to - t_from : 0;
  }
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  printf("{\"datagrams\":%lld,\"seconds\":%.6f,\"rate\":%.1f,\"total\":%lld,\"drops\":%u,\"meta\":%llu,\"user_s\":%.6f,\"system_s\":%.6f}\n",
         n, seconds, seconds > 0 ? (double)n / seconds : 0.0, count, drops, meta_sum,
         (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6,
         (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6);
  return 0;
}
