/* What the routing programs (route.bpf.c, route_unix.bpf.c) share: the exemption maps, the
 * counters, the refusal ring buffer and the helpers over them. route_unix's object reuses
 * route's maps (bpf_map__reuse_fd) so that both decide from the same state. */
#ifndef DBW_ROUTE_SHARED_H
#define DBW_ROUTE_SHARED_H

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1

/* tgid -> enum dbw_route_exempt bits; followed through fork, exec and exit. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, __u8);
} exempt_tgids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u64);
  __type(value, __u8);
} exempt_cgroups SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 1024);
  __type(key, __u32);
  __type(value, __u8);
} exempt_uids SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 256);
  __type(key, struct dbw_route_exe);
  __type(value, __u8);
} exempt_exes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DBW_ROUTE_COUNTER_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

/* Refusals, for the audit log. */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 18);
} refusals SEC(".maps");

static __always_inline void count(__u32 which) {
  __u64* v = bpf_map_lookup_elem(&counters, &which);
  if (v) *v += 1;
}

static __always_inline int exempt(void) {
  __u32 tgid = bpf_get_current_pid_tgid() >> 32;
  if (bpf_map_lookup_elem(&exempt_tgids, &tgid)) return 1;
  __u32 uid = (__u32)bpf_get_current_uid_gid();
  if (bpf_map_lookup_elem(&exempt_uids, &uid)) return 1;
  for (int level = 0; level < DBW_ROUTE_CGROUP_LEVELS; level++) {
    __u64 id = bpf_get_current_ancestor_cgroup_id(level);
    if (id == 0) break; /* deeper than the task's own cgroup */
    if (bpf_map_lookup_elem(&exempt_cgroups, &id)) return 1;
  }
  return 0;
}

static __always_inline void fill_task(struct dbw_route_conn* c, __u32 target, __u8 action) {
  __u64 id = bpf_get_current_pid_tgid();
  __u64 ug = bpf_get_current_uid_gid();
  c->ts_ns = bpf_ktime_get_ns();
  c->cgroup_id = bpf_get_current_cgroup_id();
  c->tgid = id >> 32;
  c->pid = (__u32)id;
  c->uid = (__u32)ug;
  c->gid = ug >> 32;
  c->target = target;
  c->action = action;
  bpf_get_current_comm(c->comm, sizeof(c->comm));
}

/* A refusal record with the task filled in, for the caller to add the destination and submit;
 * NULL (counted) when the ring buffer is full. */
static __always_inline struct dbw_route_conn* begin_refusal(__u32 target, __u8 action) {
  struct dbw_route_conn* c = bpf_ringbuf_reserve(&refusals, sizeof(*c), 0);
  if (!c) {
    count(DBW_ROUTE_RINGBUF_LOST);
    return 0;
  }
  __builtin_memset(c, 0, sizeof(*c));
  fill_task(c, target, action);
  return c;
}

#endif
