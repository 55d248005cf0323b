/* The one definition of what the routing programs (route.bpf.c) share with userspace: map keys
 * and values, the refusal record and counter indexes. Plain C, fixed-width types only. */
#ifndef DBW_BPF_ROUTE_H
#define DBW_BPF_ROUTE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define DBW_ROUTE_UNIX_PATH 108
/* Cgroup levels whose ids are compared with the exempt cgroups (root = level 0). */
#define DBW_ROUTE_CGROUP_LEVELS 16

enum dbw_route_action {
  DBW_ROUTE_ENFORCE = 1, /* rewrite the destination to the relay's listener */
  DBW_ROUTE_REFUSE = 2,  /* fail the connect() with EPERM */
};

/* Why a process goes straight through (bits of the exempt_tgids value). */
enum dbw_route_exempt {
  DBW_EXEMPT_AGENT = 1,  /* the agent itself: the relay's upstream connections */
  DBW_EXEMPT_SERVER = 2, /* a protected server's postmaster and what it forks (until exec) */
  DBW_EXEMPT_EXE = 4,    /* runs an exempt executable (set at exec, inherited at fork) */
};

/* A protected destination: LPM trie key. prefixlen counts the 32 bits of family and port, then
 * the address bits (32 + 32 for one IPv4 address, 32 + 8 for 127.0.0.0/8). */
struct dbw_route_key {
  __u32 prefixlen;
  __u16 family; /* AF_INET / AF_INET6 */
  __u16 port;   /* network byte order */
  __u8 addr[16];
};

/* Where a protected destination goes. */
struct dbw_route_dest {
  __u32 target; /* index of the target in the agent's configuration */
  __u8 action;  /* enum dbw_route_action */
  __u8 pad[3];
  __u32 relay_ip4;   /* network byte order; relay_port4 0: no IPv4 listener (refused) */
  __u16 relay_port4; /* network byte order */
  __u16 relay_port6; /* network byte order; 0: no IPv6 listener (refused) */
  __u32 relay_ip6[4];
};

/* A unix socket path (zero-padded), protected. */
struct dbw_route_unix_key {
  char path[DBW_ROUTE_UNIX_PATH];
};
struct dbw_route_unix_dest {
  __u32 target;
  __u8 action;
  __u8 pad[3];
  __u32 relay_len;                      /* bytes of relay_path; 0: no unix listener (refused) */
  char relay_path[DBW_ROUTE_UNIX_PATH]; /* the relay's own socket */
};

/* An executable, as the kernel names its inode. */
struct dbw_route_exe {
  __u32 dev; /* the kernel's dev_t: major << 20 | minor */
  __u32 pad;
  __u64 ino;
};

/* A routed connection's client end, as the relay sees its peer. */
struct dbw_route_peer {
  __u16 family; /* AF_INET (v4-mapped IPv6 stored as AF_INET) or AF_INET6 */
  __u16 port;   /* host byte order */
  __u8 addr[16];
};

/* One connect() to a protected destination: kept for the relay (routed) or sent to userspace
 * (refused). */
struct dbw_route_conn {
  __u64 ts_ns;
  __u64 cgroup_id;
  __u32 tgid;
  __u32 pid;
  __u32 uid;
  __u32 gid;
  __u32 target;
  __u8 action;
  __u8 pad;
  __u16 family; /* of the original destination */
  __u16 port;   /* original destination, network byte order */
  __u16 pad2;
  __u8 addr[16];
  char path[DBW_ROUTE_UNIX_PATH]; /* unix: the original path */
  char comm[16];
};

enum dbw_route_counter {
  DBW_ROUTE_ROUTED = 0,   /* connect()s rewritten to the relay */
  DBW_ROUTE_REFUSED,      /* connect()s failed with EPERM */
  DBW_ROUTE_EXEMPT,       /* connect()s to a protected destination let through as exempt */
  DBW_ROUTE_RINGBUF_LOST, /* refusal records dropped: ring buffer full */
  DBW_ROUTE_PENDING_LOST, /* routed connections whose origin the relay could not be told */
  DBW_ROUTE_COUNTER_MAX,
};

#endif
