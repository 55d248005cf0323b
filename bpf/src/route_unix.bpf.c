// SPDX-License-Identifier: GPL-2.0
/* Routing of unix-socket connect()s (relay_only: enforce | refuse) where the kernel has
 * cgroup/connect_unix (Linux 6.7+): a connect() to a protected server's socket path is rewritten
 * to the relay's own socket (enforce) or failed with EPERM (refuse). The hook sees the path as
 * the client wrote it, before the kernel resolves it: another name for the same socket file (a
 * symlink, a hard link, a relative path) is not recognised, which docs/routing.md says; the
 * socket file's permissions are the boundary there. Its own object, so that route.bpf.c loads on
 * kernels without the hook; it shares route's maps. libbpf 1.1 does not know the section name:
 * the program is declared as connect4 and loaded with the connect_unix attach type. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "route.h"
/* After the helpers it uses. */
#include "route_shared.h"

char LICENSE[] SEC("license") = "GPL";

extern void* bpf_cast_to_kern_ctx(void* obj) __ksym;
extern int bpf_sock_addr_set_sun_path(struct bpf_sock_addr_kern* sa_kern, const __u8* sun_path,
                                      __u32 sun_path__sz) __ksym;

/* Protected socket paths, exactly as the server names them. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, struct dbw_route_unix_key);
  __type(value, struct dbw_route_unix_dest);
} unix_dests SEC(".maps");

/* Routed unix connections by the client's tgid: the relay takes its entry at accept, with the
 * peer's pid from SO_PEERCRED. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);
  __type(value, struct dbw_route_conn);
} routed_unix SEC(".maps");

SEC("cgroup/connect4")
int route_connect_unix(struct bpf_sock_addr* ctx) {
  struct bpf_sock_addr_kern* sa = bpf_cast_to_kern_ctx(ctx);
  __u32 len = sa->uaddrlen;
  if (len <= 2 || len > 2 + DBW_ROUTE_UNIX_PATH) return 1;
  len -= 2; /* sun_family */
  struct dbw_route_unix_key k = {};
  struct sockaddr_un* un = (struct sockaddr_un*)sa->uaddr;
  if (bpf_probe_read_kernel(k.path, sizeof(k.path), un->sun_path) != 0) return 1;
  if (k.path[0] == 0) return 1; /* the abstract namespace: not a path */
  /* The path ends at its NUL or at the address length; what follows is not the client's. */
  int ended = 0;
  for (int i = 0; i < DBW_ROUTE_UNIX_PATH; i++) {
    if (i >= len || k.path[i] == 0) ended = 1;
    if (ended) k.path[i] = 0;
  }
  struct dbw_route_unix_dest* d = bpf_map_lookup_elem(&unix_dests, &k);
  if (!d) return 1;
  if (exempt()) {
    count(DBW_ROUTE_EXEMPT);
    return 1;
  }
  if (d->action == DBW_ROUTE_ENFORCE && d->relay_len > 0) {
    struct dbw_route_conn c = {};
    fill_task(&c, d->target, d->action);
    c.family = AF_UNIX;
    __builtin_memcpy(c.path, k.path, sizeof(c.path));
    /* The whole zero-padded field: a pathname address ends at its first NUL. */
    if (bpf_sock_addr_set_sun_path(sa, (const __u8*)d->relay_path, sizeof(d->relay_path)) == 0) {
      bpf_map_update_elem(&routed_unix, &c.tgid, &c, BPF_ANY);
      count(DBW_ROUTE_ROUTED);
      return 1;
    }
  }
  struct dbw_route_conn* c = begin_refusal(d->target, d->action);
  if (c) {
    c->family = AF_UNIX;
    __builtin_memcpy(c->path, k.path, sizeof(c->path));
    bpf_ringbuf_submit(c, 0);
  }
  count(DBW_ROUTE_REFUSED);
  return 0;
}
