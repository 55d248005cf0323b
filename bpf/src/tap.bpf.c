// SPDX-License-Identifier: GPL-2.0
/* The tap's kernel side: syscall tracepoints capture the bytes of database sockets (decided in
 * the kernel, per fd), sched tracepoints follow the database server's processes, and connect()
 * tells userspace which process opened a database connection. Built with CO-RE; settings come in
 * through rodata and maps before load. No kprobes or fentry: this kernel has neither. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "events.h"

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define SOCK_STREAM 1
#define SOCK_SEQPACKET 5
#define IPPROTO_TCP 6
#define EINPROGRESS 115
#define MSG_PEEK 2
#define TCP_CLOSE 7

/* The data programs read the syscall's arguments from the saved registers (on_exit). */
#ifndef __TARGET_ARCH_x86
#error "the tap's programs read x86-64 syscall registers; port on_exit for this architecture"
#endif

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 self_tgid = 0;         /* the agent: its own data is never captured */
const volatile __u32 capture_bytes = 16384; /* head bytes per syscall, <= CHUNK * MAX_HEAD */
/* Data records wake the reader only when this much waits in the ring: a wakeup per record would
 * cost a context switch per syscall; the reader also polls on a short timer. Connection records
 * (open, connect, close, exit) wake it at once: a client's /proc entry is read while it lives. */
const volatile __u64 wakeup_bytes = 1 << 18;

/* Client-side capture: TCP sockets with either port in this set. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, __u16);
  __type(value, __u8);
} ports SEC(".maps");

/* Ports the watched servers listen on: their accepted sockets are server connections. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, __u16);
  __type(value, __u8);
} server_ports SEC(".maps");

/* Unix socket paths the watched servers listen on (zero-padded sun_path). */
struct unix_key {
  char path[DBW_TAP_UNIX_PATH];
};
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, struct unix_key);
  __type(value, __u8);
} unix_paths SEC(".maps");

/* Processes of the database servers: tgid -> target; followed through fork and exit. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);
  __type(value, struct dbw_tap_watch);
} watched SEC(".maps");

/* Other processes whose exit userspace wants to hear of (clients it holds sessions of). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);
  __type(value, __u8);
} exit_notify SEC(".maps");

/* Connections userspace does not want (the relay's own, duplicates): struct sock * -> the
 * socket's inode (a freed and reused struct sock is another socket, not muted). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, __u64);
  __type(value, __u64);
} muted SEC(".maps");

static __always_inline int is_muted(__u64 sk, __u64 ino) {
  __u64* m = bpf_map_lookup_elem(&muted, &sk);
  return m && *m == ino;
}

/* Per connection: byte positions of both directions. LRU, because a process that exits closes
 * its sockets without close(); the socket inode tells a reused struct sock from the old one. */
struct conn_state {
  __u64 pos[2];
  __u64 ino;
  __u32 target;
  __u8 role;
};
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, struct conn_state);
} conns SEC(".maps");

/* Classification cache: (tgid, fd) -> the file it was decided for and the decision. */
struct fd_key {
  __u32 tgid;
  __s32 fd;
};
struct fd_class {
  __u64 file; /* the struct file * the decision holds for (dup2 replaces it) */
  __u64 sk;
  __u64 ino;   /* with `file`: a recycled struct file is another socket */
  __u64 inode; /* with `ino`: inode numbers are unique per filesystem only */
  __u32 gen;   /* the settings generation it was decided under */
  __u32 target;
  __u8 role; /* 0: not of interest */
};
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct fd_key);
  __type(value, struct fd_class);
} fd_cache SEC(".maps");

/* Bumped by userspace after every change of the settings maps (ports, watched processes, unix
 * paths): a decision made under an older generation is made again. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} generation SEC(".maps");

static __always_inline __u32 current_generation(void) {
  __u32 zero = 0;
  __u32* g = bpf_map_lookup_elem(&generation, &zero);
  return g ? *g : 0;
}

/* A data syscall of interest, as its exit program sees it. */
enum { K_FLAT = 0, K_IOV = 1, K_MSG = 2 };
struct data_call {
  __u64 buf; /* user buffer, iovec array or user_msghdr */
  __u64 sk;
  __u64 ino;
  __u32 vlen;
  __u32 target;
  __s32 fd;
  __u8 dir;
  __u8 role;
};

/* connect(): the fd, between entry and exit. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u64);
  __type(value, __s32);
} connecting SEC(".maps");

/* A chunk is assembled here: the stack is 512 bytes, and a per-CPU value at most 32 KiB. */
struct scratch {
  struct dbw_tap_data h;
  __u8 data[DBW_TAP_CHUNK];
};
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct scratch);
} scratch_map SEC(".maps");

/* Loss counters, enum dbw_tap_loss; userspace sums the CPUs. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, DBW_LOSS_MAX);
  __type(key, __u32);
  __type(value, __u64);
} losses SEC(".maps");

/* Sized by userspace (tap.ring_buffer_mb) before load. */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 24);
} events SEC(".maps");

static __always_inline __u64 wakeup_flag(void) {
  return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
                                                                       : BPF_RB_NO_WAKEUP;
}

static __always_inline void count_loss(__u32 which, __u64 n) {
  __u64* c = bpf_map_lookup_elem(&losses, &which);
  if (c) *c += n;
}

/* Hot paths read the task's structures with direct loads through the BTF-typed pointer of
 * bpf_get_current_task_btf (the verifier turns each into one guarded load instruction) rather
 * than bpf_probe_read_kernel and the get_current_* helpers: each helper call costs ~70 ns on
 * this CPU with its speculation mitigations, and a traced syscall made about a dozen of them
 * (docs/performance.md). The struct file from the fd array is a plain address to the verifier,
 * so it is still read with CO-RE reads (a cast back to BTF needs a 6.2+ kfunc; Debian 12's
 * kernel is 6.1). */

static __always_inline void fill_task(struct dbw_tap_task* t) {
  struct task_struct* task = bpf_get_current_task_btf();
  t->ts_ns = bpf_ktime_get_ns();
  /* As bpf_get_current_cgroup_id: the id of the task's cgroup-v2 (default hierarchy) node. */
  t->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
  t->tgid = task->tgid;
  t->tid = task->pid;
  /* As bpf_get_current_uid_gid: the task's (subjective) credentials, in the initial namespace. */
  const struct cred* cred = task->cred;
  t->uid = cred->uid.val;
  t->gid = cred->gid.val;
  __builtin_memcpy(t->comm, task->comm, sizeof(t->comm));
}

/* The struct file behind fd of `task`, or NULL. */
static __always_inline struct file* task_fd_file(struct task_struct* task, int fd) {
  if (fd < 0) return NULL;
  struct fdtable* fdt = task->files->fdt;
  if ((unsigned int)fd >= fdt->max_fds) return NULL;
  struct file** fda = fdt->fd;
  struct file* f = NULL;
  bpf_probe_read_kernel(&f, sizeof(f), &fda[fd]);
  return f;
}

static __always_inline struct file* fd_file(int fd) {
  return task_fd_file(bpf_get_current_task_btf(), fd);
}

/* The sock of a socket file (checking that the socket's file is this file), or NULL. */
static __always_inline struct sock* file_sock(struct file* f, __u64* ino) {
  if (!f) return NULL;
  struct inode* inode = BPF_CORE_READ(f, f_inode);
  umode_t mode = BPF_CORE_READ(inode, i_mode);
  if ((mode & S_IFMT) != S_IFSOCK) return NULL;
  struct socket* sock = BPF_CORE_READ(f, private_data);
  if (!sock || BPF_CORE_READ(sock, file) != f) return NULL;
  *ino = BPF_CORE_READ(inode, i_ino);
  return BPF_CORE_READ(sock, sk);
}

static __always_inline int unix_path_watched(struct unix_address* a) {
  if (!a) return 0;
  struct unix_key k = {};
  bpf_core_read_str(k.path, sizeof(k.path), &a->name[0].sun_path);
  return bpf_map_lookup_elem(&unix_paths, &k) != NULL;
}

/* Decides whether fd is a socket of interest: role 0 when not. */
static __always_inline void classify(__u32 tgid, int fd, struct file* f, struct fd_class* out) {
  out->file = (__u64)f;
  __u64 ino = 0;
  struct sock* sk = file_sock(f, &ino);
  if (!sk) return;
  __u64 skv = (__u64)sk;
  if (is_muted(skv, ino)) return;
  struct dbw_tap_watch* w = bpf_map_lookup_elem(&watched, &tgid);
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
  __u16 type = BPF_CORE_READ(sk, sk_type);
  if (family == AF_INET || family == AF_INET6) {
    if (type != SOCK_STREAM || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP) return;
    __u16 lport = BPF_CORE_READ(sk, __sk_common.skc_num);
    __u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    if (w && bpf_map_lookup_elem(&server_ports, &lport)) {
      out->role = DBW_ROLE_SERVER;
      out->target = w->target;
    } else if (bpf_map_lookup_elem(&ports, &rport)) {
      out->role = DBW_ROLE_CLIENT;
    } else {
      return;
    }
  } else if (family == AF_UNIX) {
    /* An accepted unix socket carries the listener's address; a client's is unbound. */
    if (!w || (type != SOCK_STREAM && type != SOCK_SEQPACKET)) return;
    if (!unix_path_watched(BPF_CORE_READ((struct unix_sock*)sk, addr))) return;
    out->role = DBW_ROLE_SERVER;
    out->target = w->target;
  } else {
    return;
  }
  out->sk = skv;
  out->ino = ino;
}

/* Whether fd of the current task is a socket of interest (and not muted): fills the call's
 * connection fields. */
static __always_inline int decide(struct task_struct* task, __u32 tgid, long fd,
                                  struct data_call* call) {
  struct file* f = task_fd_file(task, (int)fd);
  if (!f) return 0;
  struct inode* inode = BPF_CORE_READ(f, f_inode);
  __u64 ino = BPF_CORE_READ(inode, i_ino);
  __u32 gen = current_generation();
  struct fd_key key = {.tgid = tgid, .fd = (int)fd};
  struct fd_class* cached = bpf_map_lookup_elem(&fd_cache, &key);
  struct fd_class c = {};
  if (cached && cached->file == (__u64)f && cached->inode == (__u64)inode && cached->ino == ino &&
      cached->gen == gen) {
    c = *cached; /* the same file and inode as when decided: its mode did not change */
  } else {
    if ((BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFSOCK) return 0; /* files, pipes */
    classify(tgid, (int)fd, f, &c);
    c.ino = ino;
    c.inode = (__u64)inode;
    c.gen = gen;
    bpf_map_update_elem(&fd_cache, &key, &c, BPF_ANY);
  }
  if (!c.role) return 0;
  if (is_muted(c.sk, c.ino)) return 0;
  call->sk = c.sk;
  call->ino = c.ino;
  call->target = c.target;
  call->fd = (int)fd;
  call->role = c.role;
  return 1;
}

static __always_inline void fill_addrs(struct dbw_tap_conn* c, struct sock* sk) {
  c->family = BPF_CORE_READ(sk, __sk_common.skc_family);
  if (c->family == AF_INET || c->family == AF_INET6) {
    c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
    c->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    if (c->family == AF_INET) {
      BPF_CORE_READ_INTO((__u32*)c->laddr, sk, __sk_common.skc_rcv_saddr);
      BPF_CORE_READ_INTO((__u32*)c->raddr, sk, __sk_common.skc_daddr);
    } else {
      BPF_CORE_READ_INTO(c->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
      BPF_CORE_READ_INTO(c->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
    }
  } else if (c->family == AF_UNIX) {
    struct unix_sock* u = (struct unix_sock*)sk;
    struct sock* peer = BPF_CORE_READ(u, peer);
    if (peer) c->peer_ino = BPF_CORE_READ(peer, sk_socket, file, f_inode, i_ino);
    struct unix_address* a = BPF_CORE_READ(u, addr);
    if (!a && peer) a = BPF_CORE_READ((struct unix_sock*)peer, addr);
    if (a) bpf_core_read_str(c->path, sizeof(c->path), &a->name[0].sun_path);
  }
}

/* The connection's state, announcing it to userspace (an OPEN record) the first time, and again
 * when the struct sock now belongs to another socket. NULL when the announcement could not be
 * made: its data is not sent either, so nothing arrives that userspace cannot place. */
static __always_inline struct conn_state* conn_for(struct data_call* p) {
  struct conn_state* st = bpf_map_lookup_elem(&conns, &p->sk);
  if (st && st->ino == p->ino) return st;
  /* Claim the connection first: of two threads meeting it at once, one announces it. */
  struct conn_state fresh = {.ino = p->ino, .target = p->target, .role = p->role};
  if (bpf_map_update_elem(&conns, &p->sk, &fresh, st ? BPF_EXIST : BPF_NOEXIST) != 0) {
    st = bpf_map_lookup_elem(&conns, &p->sk);
    return st && st->ino == p->ino ? st : NULL;
  }
  struct dbw_tap_conn* c = bpf_ringbuf_reserve(&events, sizeof(*c), 0);
  if (!c) {
    count_loss(DBW_LOSS_RINGBUF_CONTROL, 1);
    bpf_map_delete_elem(&conns, &p->sk); /* announced by a later syscall */
    return NULL;
  }
  __builtin_memset(c, 0, sizeof(*c));
  c->record = DBW_REC_OPEN;
  c->role = p->role;
  c->fd = p->fd;
  c->sk = p->sk;
  c->target = p->target;
  c->ino = p->ino;
  fill_addrs(c, (struct sock*)p->sk);
  fill_task(&c->task);
  bpf_ringbuf_submit(c, 0); /* wake now: the process is read while it lives */
  return bpf_map_lookup_elem(&conns, &p->sk);
}

/* Copies n (<= CHUNK) bytes from user memory at src and sends them as the chunk at `offset`. */
static __always_inline void send_chunk(struct scratch* s, const void* src, __u64 n, __u32 offset) {
  barrier_var(n);
  if (n > DBW_TAP_CHUNK) n = DBW_TAP_CHUNK;
  if (n == 0) return;
  if (bpf_probe_read_user(s->data, n, src)) {
    count_loss(DBW_LOSS_READ_FAULTS, 1);
    return;
  }
  s->h.offset = offset;
  s->h.cap_len = (__u32)n;
  if (bpf_ringbuf_output(&events, s, sizeof(s->h) + n, wakeup_flag())) {
    count_loss(DBW_LOSS_RINGBUF_DATA, 1);
    count_loss(DBW_LOSS_RINGBUF_DATA_BYTES, n);
  }
}

static __always_inline __u64 head_limit(void) {
  __u64 cap = capture_bytes;
  if (cap > DBW_TAP_CHUNK * DBW_TAP_MAX_HEAD_CHUNKS) cap = DBW_TAP_CHUNK * DBW_TAP_MAX_HEAD_CHUNKS;
  return cap;
}

/* read/write/send/recv: head chunks up to capture_bytes, then the tail. */
static __always_inline void capture_flat(struct scratch* s, __u64 buf, __u64 len) {
  __u64 head = head_limit();
  if (head > len) head = len;
  for (int i = 0; i < DBW_TAP_MAX_HEAD_CHUNKS; i++) {
    __u64 off = (__u64)i * DBW_TAP_CHUNK;
    if (off >= head) break;
    send_chunk(s, (const void*)(buf + off), head - off, (__u32)off);
  }
  if (len <= head) return;
  __u64 tail_start = len > head + DBW_TAP_TAIL ? len - DBW_TAP_TAIL : head;
  if (tail_start > head) {
    count_loss(DBW_LOSS_TRUNCATED_WRITES, 1);
    count_loss(DBW_LOSS_TRUNCATED_BYTES, tail_start - head);
  }
  send_chunk(s, (const void*)(buf + tail_start), len - tail_start, (__u32)tail_start);
}

/* readv/writev/sendmsg/recvmsg: the head of each iovec, within capture_bytes in all. `len` bytes
 * were moved, filling the iovecs in order. One bpf_loop step per iovec: the verifier checks
 * the step once instead of every unrolled path. */
struct iov_walk {
  const struct iovec* vec;
  __u64 vlen;
  __u64 len;
  __u64 done;
  __u64 budget;
  __u64 skipped; /* bytes of the iovecs walked that were not captured */
};

static long iov_step(__u32 i, void* data) {
  struct iov_walk* w = data;
  if (i >= w->vlen || w->done >= w->len) return 1;
  __u32 zero = 0;
  struct scratch* s = bpf_map_lookup_elem(&scratch_map, &zero);
  if (!s) return 1;
  struct iovec iov = {};
  if (bpf_probe_read_user(&iov, sizeof(iov), &w->vec[i])) {
    count_loss(DBW_LOSS_READ_FAULTS, 1);
    return 1;
  }
  __u64 n = iov.iov_len;
  if (n > w->len - w->done) n = w->len - w->done;
  __u64 take = n < w->budget ? n : w->budget;
  if (take > DBW_TAP_CHUNK) take = DBW_TAP_CHUNK;
  send_chunk(s, iov.iov_base, take, (__u32)w->done);
  w->skipped += n - take;
  w->budget -= take;
  w->done += n;
  return 0;
}

static __always_inline void capture_iov(const struct iovec* vec, __u64 vlen, __u64 len) {
  struct iov_walk w = {.vec = vec, .vlen = vlen, .len = len, .budget = head_limit()};
  bpf_loop(DBW_TAP_MAX_IOV, iov_step, &w, 0);
  /* What the walk did not send is a gap userspace sees by position; count it here. */
  __u64 missing = w.skipped + (len > w.done ? len - w.done : 0);
  if (missing) {
    count_loss(DBW_LOSS_TRUNCATED_WRITES, 1);
    count_loss(DBW_LOSS_TRUNCATED_BYTES, missing);
  }
}

/* A data syscall, at its exit only: the byte count is known there, and the arguments are still
 * in the registers the kernel saved when the syscall was entered (x86-64: rdi, rsi, rdx, r10 are
 * arguments 0-3; the kernel writes only rax, the return value, back into them). With no entry
 * program, a syscall costs one program run instead of two and needs no per-thread slot to carry
 * its arguments over, and a read that returns nothing (EAGAIN: half of the receives of libpq and
 * of the backends) costs a comparison. The fd is resolved at exit: the syscall holds its file,
 * so the fd can point elsewhere only if another thread of the process replaced it during the
 * call (close or dup2 racing the I/O), and then these bytes are not captured or are attributed
 * to the new socket's first OPEN.
 *
 * `kind`, `dir` and `flags_arg` (which argument holds the flags, 0 for none) are constants at
 * each call site, so each program holds only the capture it needs (the verifier then explores a
 * fraction of the paths). */
static __always_inline int on_exit(long ret, const __u8 kind, const __u8 dir, const int flags_arg) {
  if (ret <= 0) return 0;
  struct task_struct* task = bpf_get_current_task_btf();
  __u32 tgid = task->tgid;
  if (tgid == self_tgid) return 0;
  struct pt_regs* regs = (struct pt_regs*)bpf_task_pt_regs(task);
  if (!regs) return 0;
  long fd = (long)regs->di;
  __u64 flags = flags_arg == 2 ? regs->dx : flags_arg == 3 ? regs->r10 : 0;
  if (flags & MSG_PEEK) return 0; /* the bytes are read again by the next recv */
  struct data_call p = {.buf = regs->si, .vlen = (__u32)regs->dx, .dir = dir};
  if (!decide(task, tgid, fd, &p)) return 0;
  struct conn_state* st = conn_for(&p);
  if (!st) return 0;
  __u64 pos = __sync_fetch_and_add(&st->pos[p.dir & 1], (__u64)ret);

  __u32 zero = 0;
  struct scratch* s = bpf_map_lookup_elem(&scratch_map, &zero);
  if (!s) return 0;
  s->h.record = DBW_REC_DATA;
  s->h.dir = p.dir;
  s->h.role = p.role;
  s->h.fd = p.fd;
  s->h.sk = p.sk;
  s->h.pos = pos;
  s->h.len = (__u32)ret;
  fill_task(&s->h.task);
  if (kind == K_FLAT) {
    capture_flat(s, p.buf, (__u64)ret);
  } else {
    const struct iovec* vec = (const struct iovec*)p.buf;
    __u64 vlen = p.vlen;
    if (kind == K_MSG) {
      struct user_msghdr m = {};
      if (bpf_probe_read_user(&m, sizeof(m), (void*)p.buf)) {
        count_loss(DBW_LOSS_READ_FAULTS, 1);
        return 0;
      }
      vec = m.msg_iov;
      vlen = m.msg_iovlen;
    }
    capture_iov(vec, vlen, (__u64)ret);
  }
  return 0;
}

/* flags_arg: recvfrom(fd, buf, len, flags, ...) and recvmsg(fd, msg, flags). */
#define DATA_SYSCALL(name, dirv, kindv, flags_arg)           \
  SEC("tracepoint/syscalls/sys_exit_" #name)                 \
  int exit_##name(struct trace_event_raw_sys_exit* ctx) {    \
    return on_exit(ctx->ret, kindv, dirv, flags_arg);        \
  }

DATA_SYSCALL(write, DBW_DIR_EGRESS, K_FLAT, 0)
DATA_SYSCALL(read, DBW_DIR_INGRESS, K_FLAT, 0)
DATA_SYSCALL(sendto, DBW_DIR_EGRESS, K_FLAT, 0)
DATA_SYSCALL(recvfrom, DBW_DIR_INGRESS, K_FLAT, 3)
DATA_SYSCALL(writev, DBW_DIR_EGRESS, K_IOV, 0)
DATA_SYSCALL(readv, DBW_DIR_INGRESS, K_IOV, 0)
DATA_SYSCALL(sendmsg, DBW_DIR_EGRESS, K_MSG, 0)
DATA_SYSCALL(recvmsg, DBW_DIR_INGRESS, K_MSG, 2)

/* Forgets a connection of interest and tells userspace it ended. */
static __always_inline void end_connection(__u64 sk, __s32 fd) {
  bpf_map_delete_elem(&conns, &sk);
  struct dbw_tap_close* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count_loss(DBW_LOSS_RINGBUF_CONTROL, 1);
    return;
  }
  __builtin_memset(e, 0, sizeof(*e));
  e->record = DBW_REC_CLOSE;
  e->fd = fd;
  e->sk = sk;
  fill_task(&e->task);
  bpf_ringbuf_submit(e, 0);
}

/* close(): the classification is void. A unix connection of interest ends here (or at exit);
 * TCP connections end at their TCP_CLOSE state change, which also covers exit and dup'd fds. */
SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct trace_event_raw_sys_enter* ctx) {
  struct fd_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = (int)ctx->args[0]};
  struct fd_class* c = bpf_map_lookup_elem(&fd_cache, &key);
  if (!c) return 0;
  __u64 sk = c->sk;
  __u8 role = c->role;
  __s32 fd = key.fd;
  bpf_map_delete_elem(&fd_cache, &key);
  if (!role || !bpf_map_lookup_elem(&conns, &sk)) return 0;
  if (BPF_CORE_READ((struct sock*)sk, __sk_common.skc_family) != AF_UNIX) return 0;
  end_connection(sk, fd);
  return 0;
}

/* The current process's parent and executable path. The path is walked up from the executable's
 * dentry, crossing mount points, to the root of the process's mount namespace; components are
 * written leaf first (userspace reverses them). */
static __always_inline void fill_exe(struct dbw_tap_connect* r) {
  struct task_struct* task = (struct task_struct*)bpf_get_current_task();
  r->ppid = BPF_CORE_READ(task, real_parent, tgid);
  r->exe_len = 0;
  r->exe_complete = 0;
  r->exe_deleted = 0;
  struct file* f = BPF_CORE_READ(task, mm, exe_file);
  if (!f) return;
  __u64 mnt_off = bpf_core_field_offset(struct mount, mnt);
  struct dentry* d = BPF_CORE_READ(f, f_path.dentry);
  /* d_unlinked(): an unhashed dentry that is not a root. /proc shows such a file "(deleted)",
   * and so does a memfd, which never had a name in any directory. */
  r->exe_deleted = !BPF_CORE_READ(d, d_hash.pprev) && BPF_CORE_READ(d, d_parent) != d;
  struct vfsmount* vm = BPF_CORE_READ(f, f_path.mnt);
  struct mount* m = (struct mount*)((char*)vm - mnt_off);
  __u32 off = 0;
  for (int i = 0; i < DBW_TAP_EXE_DEPTH; i++) {
    if (d == BPF_CORE_READ(vm, mnt_root)) {
      struct mount* parent = BPF_CORE_READ(m, mnt_parent);
      if (parent == m) {
        r->exe_complete = 1;
        break;
      }
      d = BPF_CORE_READ(m, mnt_mountpoint);
      m = parent;
      vm = (struct vfsmount*)((char*)m + mnt_off);
      continue;
    }
    struct dentry* up = BPF_CORE_READ(d, d_parent);
    if (up == d) break; /* a root that is not its mount's root: a disconnected path */
    if (off >= DBW_TAP_EXE) break;
    const unsigned char* name = BPF_CORE_READ(d, d_name.name);
    long n = bpf_probe_read_kernel_str(&r->exe[off], DBW_TAP_EXE_NAME, name);
    if (n <= 0) break;
    off += n;
    d = up;
  }
  r->exe_len = off;
}

/* connect(): which process opened a connection to a database port or socket. The agent's own
 * connections are reported too: that is how the relay's upstream sessions are recognised. */
SEC("tracepoint/syscalls/sys_enter_connect")
int enter_connect(struct trace_event_raw_sys_enter* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  __s32 fd = (__s32)ctx->args[0];
  bpf_map_update_elem(&connecting, &id, &fd, BPF_ANY);
  return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int exit_connect(struct trace_event_raw_sys_exit* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  __s32* fdp = bpf_map_lookup_elem(&connecting, &id);
  if (!fdp) return 0;
  __s32 fd = *fdp;
  bpf_map_delete_elem(&connecting, &id);
  if (ctx->ret != 0 && ctx->ret != -EINPROGRESS) return 0;
  __u64 ino = 0;
  struct sock* sk = file_sock(fd_file(fd), &ino);
  if (!sk) return 0;
  __u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
  if (family == AF_INET || family == AF_INET6) {
    __u16 rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
    if (!bpf_map_lookup_elem(&server_ports, &rport) && !bpf_map_lookup_elem(&ports, &rport))
      return 0;
  } else if (family == AF_UNIX) {
    struct sock* peer = BPF_CORE_READ((struct unix_sock*)sk, peer);
    if (!peer || !unix_path_watched(BPF_CORE_READ((struct unix_sock*)peer, addr))) return 0;
  } else {
    return 0;
  }
  struct dbw_tap_connect* r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
  if (!r) {
    count_loss(DBW_LOSS_RINGBUF_CONTROL, 1);
    return 0;
  }
  struct dbw_tap_conn* c = &r->conn;
  __builtin_memset(c, 0, sizeof(*c));
  c->record = DBW_REC_CONNECT;
  c->fd = fd;
  c->sk = (__u64)sk;
  c->ino = ino;
  fill_addrs(c, sk);
  fill_task(&c->task);
  fill_exe(r);
  bpf_ringbuf_submit(r, 0); /* wake now: the process is read while it lives */
  return 0;
}

/* A watched server process forks a backend: the child is watched too. */
SEC("tracepoint/sched/sched_process_fork")
int on_fork(struct trace_event_raw_sched_process_fork* ctx) {
  __u32 parent = bpf_get_current_pid_tgid() >> 32;
  struct dbw_tap_watch* w = bpf_map_lookup_elem(&watched, &parent);
  if (!w) return 0;
  struct dbw_tap_watch copy = *w;
  __u32 child = (__u32)ctx->child_pid;
  bpf_map_update_elem(&watched, &child, &copy, BPF_ANY);
  return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int on_process_exit(struct trace_event_raw_sched_process_template* ctx) {
  __u64 id = bpf_get_current_pid_tgid();
  __u32 tgid = id >> 32;
  if ((__u32)id != tgid) {
    /* A thread: fork added it to `watched` if its process was watched. */
    __u32 tid = (__u32)id;
    bpf_map_delete_elem(&watched, &tid);
    return 0;
  }
  int was_watched = bpf_map_delete_elem(&watched, &tgid) == 0;
  int notify = bpf_map_delete_elem(&exit_notify, &tgid) == 0;
  if (!was_watched && !notify) return 0;
  struct dbw_tap_exit* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count_loss(DBW_LOSS_RINGBUF_CONTROL, 1);
    return 0;
  }
  __builtin_memset(e, 0, sizeof(*e));
  e->record = DBW_REC_EXIT;
  e->tgid = tgid;
  e->ts_ns = bpf_ktime_get_ns();
  bpf_ringbuf_submit(e, 0);
  return 0;
}

/* A TCP connection of interest is gone, however it went (close, exit, close_range, reset):
 * PostgreSQL backends never close() their client socket, they exit. */
SEC("tracepoint/sock/inet_sock_set_state")
int on_tcp_state(struct trace_event_raw_inet_sock_set_state* ctx) {
  if (ctx->newstate != TCP_CLOSE || ctx->protocol != IPPROTO_TCP) return 0;
  __u64 sk = (__u64)ctx->skaddr;
  if (!bpf_map_lookup_elem(&conns, &sk)) return 0;
  end_connection(sk, -1);
  return 0;
}
