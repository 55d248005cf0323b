// SPDX-License-Identifier: GPL-2.0
/* Kernel-enforced routing (relay_only: enforce | refuse). cgroup connect4/connect6 programs see
 * every TCP connect() of the processes below the cgroups they are attached to, before the
 * kernel routes it (connect(), TCP Fast Open's sendto(), io_uring's connect all pass through
 * the same hook). A connect() to a protected server address is rewritten to the relay's listener
 * (enforce) or failed with EPERM (refuse), unless the process is exempt: the agent itself, the
 * protected servers' own processes, exempt executables, users or cgroups. What is exempt is
 * decided here from the tgid, the real uid and the cgroup ids, which a client cannot set.
 * A sockops program tells the relay where a routed connection was going: the record made at
 * connect() is keyed by the client's local address once the kernel has chosen its port. */
#include "vmlinux.h"

#include "route.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
/* After the helpers it uses. */
#include "route_shared.h"

char LICENSE[] SEC("license") = "GPL";

/* Protected destinations: longest prefix wins. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 1024);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct dbw_route_key);
  __type(value, struct dbw_route_dest);
} dests SEC(".maps");

/* Routed connects by socket cookie, until the kernel has chosen the client's port. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);
  __type(value, struct dbw_route_conn);
} pending SEC(".maps");

/* Routed connections by the client's local address: the relay takes its entry at accept. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct dbw_route_peer);
  __type(value, struct dbw_route_conn);
} routed SEC(".maps");

static __always_inline void remember_route(struct bpf_sock_addr* ctx,
                                           const struct dbw_route_dest* d, __u16 family, __u16 port,
                                           const __u8* addr) {
  struct dbw_route_conn c = {};
  fill_task(&c, d->target, d->action);
  c.family = family;
  c.port = port;
  __builtin_memcpy(c.addr, addr, 16);
  __u64 cookie = bpf_get_socket_cookie(ctx);
  if (bpf_map_update_elem(&pending, &cookie, &c, BPF_ANY) != 0) count(DBW_ROUTE_PENDING_LOST);
}

/* The decision for a destination found in `dests`: 1 lets the connect() go on (rewritten or
 * not), 0 fails it with EPERM. `v4` says which family the socket connects with. */
static __always_inline int decide(struct bpf_sock_addr* ctx, const struct dbw_route_dest* d,
                                  __u16 family, __u16 port, const __u8* addr, int v4_socket) {
  if (exempt()) {
    count(DBW_ROUTE_EXEMPT);
    return 1;
  }
  if (d->action == DBW_ROUTE_ENFORCE) {
    if (v4_socket && d->relay_port4 != 0) {
      remember_route(ctx, d, family, port, addr);
      ctx->user_ip4 = d->relay_ip4;
      ctx->user_port = d->relay_port4;
      count(DBW_ROUTE_ROUTED);
      return 1;
    }
    if (!v4_socket && d->relay_port6 != 0) {
      remember_route(ctx, d, family, port, addr);
      ctx->user_ip6[0] = d->relay_ip6[0];
      ctx->user_ip6[1] = d->relay_ip6[1];
      ctx->user_ip6[2] = d->relay_ip6[2];
      ctx->user_ip6[3] = d->relay_ip6[3];
      ctx->user_port = d->relay_port6;
      count(DBW_ROUTE_ROUTED);
      return 1;
    }
    /* No relay listener this socket can reach: closed rather than open. */
  }
  struct dbw_route_conn* c = begin_refusal(d->target, d->action);
  if (c) {
    c->family = family;
    c->port = port;
    __builtin_memcpy(c->addr, addr, 16);
    bpf_ringbuf_submit(c, 0);
  }
  count(DBW_ROUTE_REFUSED);
  return 0;
}

SEC("cgroup/connect4")
int route_connect4(struct bpf_sock_addr* ctx) {
  if (ctx->type != SOCK_STREAM) return 1;
  struct dbw_route_key k = {};
  k.prefixlen = 64;
  k.family = AF_INET;
  k.port = (__u16)ctx->user_port;
  __u32 ip = ctx->user_ip4;
  __builtin_memcpy(k.addr, &ip, 4);
  struct dbw_route_dest* d = bpf_map_lookup_elem(&dests, &k);
  if (!d) return 1;
  return decide(ctx, d, AF_INET, k.port, k.addr, 1);
}

SEC("cgroup/connect6")
int route_connect6(struct bpf_sock_addr* ctx) {
  if (ctx->type != SOCK_STREAM) return 1;
  struct dbw_route_key k = {};
  __u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
  k.port = (__u16)ctx->user_port;
  if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
    /* ::ffff:a.b.c.d reaches the IPv4 listener: judged as that IPv4 address. */
    k.prefixlen = 64;
    k.family = AF_INET;
    __builtin_memcpy(k.addr, &w3, 4);
  } else {
    k.prefixlen = 32 + 128;
    k.family = AF_INET6;
    __builtin_memcpy(k.addr, &w0, 4);
    __builtin_memcpy(k.addr + 4, &w1, 4);
    __builtin_memcpy(k.addr + 8, &w2, 4);
    __builtin_memcpy(k.addr + 12, &w3, 4);
  }
  struct dbw_route_dest* d = bpf_map_lookup_elem(&dests, &k);
  if (!d) return 1;
  return decide(ctx, d, k.family, k.port, k.addr, 0);
}

/* The client's port is chosen by now: the relay will see this connection's peer address. */
SEC("sockops")
int route_sockops(struct bpf_sock_ops* skops) {
  if (skops->op != BPF_SOCK_OPS_TCP_CONNECT_CB) return 1;
  __u64 cookie = bpf_get_socket_cookie(skops);
  struct dbw_route_conn* c = bpf_map_lookup_elem(&pending, &cookie);
  if (!c) return 1;
  struct dbw_route_peer peer = {};
  peer.port = (__u16)skops->local_port;
  if (skops->family == AF_INET) {
    peer.family = AF_INET;
    __u32 ip = skops->local_ip4;
    __builtin_memcpy(peer.addr, &ip, 4);
  } else {
    __u32 w0 = skops->local_ip6[0], w1 = skops->local_ip6[1], w2 = skops->local_ip6[2],
          w3 = skops->local_ip6[3];
    if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
      peer.family = AF_INET;
      __builtin_memcpy(peer.addr, &w3, 4);
    } else {
      peer.family = AF_INET6;
      __builtin_memcpy(peer.addr, &w0, 4);
      __builtin_memcpy(peer.addr + 4, &w1, 4);
      __builtin_memcpy(peer.addr + 8, &w2, 4);
      __builtin_memcpy(peer.addr + 12, &w3, 4);
    }
  }
  struct dbw_route_conn copy = *c;
  bpf_map_update_elem(&routed, &peer, &copy, BPF_ANY);
  bpf_map_delete_elem(&pending, &cookie);
  return 1;
}

/* Exemptions follow processes: a fork inherits its parent's, except the agent's own. */
SEC("tracepoint/sched/sched_process_fork")
int route_fork(struct trace_event_raw_sched_process_fork* ctx) {
  __u32 parent = bpf_get_current_pid_tgid() >> 32;
  __u8* bits = bpf_map_lookup_elem(&exempt_tgids, &parent);
  if (!bits) return 0;
  __u8 inherited = *bits & (DBW_EXEMPT_SERVER | DBW_EXEMPT_EXE);
  if (!inherited) return 0;
  __u32 child = (__u32)ctx->child_pid;
  bpf_map_update_elem(&exempt_tgids, &child, &inherited, BPF_ANY);
  return 0;
}

/* An exec ends a server process's exemption (archive_command's shell is not PostgreSQL) and
 * decides an exempt executable's. */
SEC("raw_tracepoint/sched_process_exec")
int route_exec(struct bpf_raw_tracepoint_args* ctx) {
  struct linux_binprm* bprm = (struct linux_binprm*)ctx->args[2];
  struct dbw_route_exe exe = {};
  struct inode* inode = BPF_CORE_READ(bprm, file, f_inode);
  exe.ino = BPF_CORE_READ(inode, i_ino);
  exe.dev = BPF_CORE_READ(inode, i_sb, s_dev);
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  __u8* bits = bpf_map_lookup_elem(&exempt_tgids, &tgid);
  __u8 now = bits ? (*bits & DBW_EXEMPT_AGENT) : 0;
  if (bpf_map_lookup_elem(&exempt_exes, &exe)) now |= DBW_EXEMPT_EXE;
  if (now)
    bpf_map_update_elem(&exempt_tgids, &tgid, &now, BPF_ANY);
  else if (bits)
    bpf_map_delete_elem(&exempt_tgids, &tgid);
  return 0;
}

/* A tgid that exits is not exempt any more: a later process given the same number is not the
 * agent (this runs while the agent is down too, when the programs stay pinned). */
SEC("tracepoint/sched/sched_process_exit")
int route_exit(struct trace_event_raw_sched_process_template* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  __u32 tid = (__u32)id;
  bpf_map_delete_elem(&exempt_tgids, &tid);
  return 0;
}
