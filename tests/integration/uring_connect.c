/* An io_uring IORING_OP_CONNECT, for tests/integration/test_routing.py: a connect() that never
 * makes the connect system call (syscall tracepoints do not see it; the cgroup connect hook
 * must). Raw system calls, no liburing.
 *
 *   uring_connect IPV4 PORT   prints {"res": R, "peer_port": P, "local_port": L}
 *
 * R is the completion's result (0, or -errno); P and L are getpeername/getsockname's ports. */
#include <arpa/inet.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: uring_connect IPV4 PORT\n");
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) return 2;
  int sock = socket(AF_INET, SOCK_STREAM, 0);
  struct io_uring_params p;
  memset(&p, 0, sizeof(p));
  int ring = (int)syscall(__NR_io_uring_setup, 4, &p);
  if (sock < 0 || ring < 0) {
    perror("io_uring_setup");
    return 1;
  }
  size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  if (p.features & IORING_FEAT_SINGLE_MMAP) sq_size = cq_size = sq_size > cq_size ? sq_size : cq_size;
  char* sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                  IORING_OFF_SQ_RING);
  char* cq = (p.features & IORING_FEAT_SINGLE_MMAP)
                 ? sq
                 : mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                        IORING_OFF_CQ_RING);
  struct io_uring_sqe* sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
                                   PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                                   IORING_OFF_SQES);
  if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
    perror("mmap");
    return 1;
  }
  unsigned* sq_tail = (unsigned*)(sq + p.sq_off.tail);
  unsigned mask = *(unsigned*)(sq + p.sq_off.ring_mask);
  unsigned* sq_array = (unsigned*)(sq + p.sq_off.array);
  unsigned tail = *sq_tail;
  unsigned idx = tail & mask;
  struct io_uring_sqe* sqe = &sqes[idx];
  memset(sqe, 0, sizeof(*sqe));
  sqe->opcode = IORING_OP_CONNECT;
  sqe->fd = sock;
  sqe->addr = (unsigned long)&sa;
  sqe->off = sizeof(sa);
  sq_array[idx] = idx;
  __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
  if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
    perror("io_uring_enter");
    return 1;
  }
  unsigned head = __atomic_load_n((unsigned*)(cq + p.cq_off.head), __ATOMIC_ACQUIRE);
  unsigned cq_mask = *(unsigned*)(cq + p.cq_off.ring_mask);
  struct io_uring_cqe* cqe = &((struct io_uring_cqe*)(cq + p.cq_off.cqes))[head & cq_mask];
  struct sockaddr_in peer = {0}, local = {0};
  socklen_t len = sizeof(peer);
  getpeername(sock, (struct sockaddr*)&peer, &len);
  len = sizeof(local);
  getsockname(sock, (struct sockaddr*)&local, &len);
  printf("{\"res\": %d, \"peer_port\": %u, \"local_port\": %u}\n", cqe->res, ntohs(peer.sin_port),
         ntohs(local.sin_port));
  return 0;
}
