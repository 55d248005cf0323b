/* The one definition of everything the tap's BPF programs share with userspace: event records,
 * enums and map value layouts. Plain C, fixed-width types only. */
#ifndef DBW_BPF_EVENTS_H
#define DBW_BPF_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Bytes of one data chunk; head chunks are this size, a power of two (verifier masking). */
#define DBW_TAP_CHUNK 16384
/* At most this many head chunks per syscall (capture_bytes is clamped to CHUNK * this). */
#define DBW_TAP_MAX_HEAD_CHUNKS 4
/* Bytes kept from the end of a write larger than capture_bytes (CommandComplete, ReadyForQuery). */
#define DBW_TAP_TAIL 4096
/* iovecs walked per readv/writev/sendmsg/recvmsg. */
#define DBW_TAP_MAX_IOV 8
/* Bytes of a unix socket path used as a filter key. */
#define DBW_TAP_UNIX_PATH 108
/* Bytes of an executable's path read in the kernel at connect(), and the directories walked. */
#define DBW_TAP_EXE 1024
#define DBW_TAP_EXE_NAME 256
#define DBW_TAP_EXE_DEPTH 32

enum dbw_tap_record {
  DBW_REC_DATA = 1,    /* struct dbw_tap_data + payload */
  DBW_REC_OPEN = 2,    /* struct dbw_tap_conn: first sight of a connection of interest */
  DBW_REC_CONNECT = 3, /* struct dbw_tap_connect: a process connected to a database socket */
  DBW_REC_CLOSE = 4,   /* struct dbw_tap_close */
  DBW_REC_EXIT = 5,    /* struct dbw_tap_exit: a watched or notify-listed process exited */
};

enum dbw_tap_dir { DBW_DIR_EGRESS = 0, DBW_DIR_INGRESS = 1 };

/* Why a connection is of interest. */
enum dbw_tap_role {
  DBW_ROLE_SERVER = 1, /* the socket belongs to a watched database server process */
  DBW_ROLE_CLIENT = 2, /* a TCP socket with a port in the configured port set */
};

/* Indexes of the per-CPU loss counters (map `losses`). */
enum dbw_tap_loss {
  DBW_LOSS_RINGBUF_DATA = 0,   /* data chunks dropped: ring buffer full */
  DBW_LOSS_RINGBUF_DATA_BYTES, /* ... their captured bytes */
  DBW_LOSS_RINGBUF_CONTROL,    /* open/connect/close/exit records dropped: ring buffer full */
  DBW_LOSS_TRUNCATED_WRITES,   /* syscalls larger than capture_bytes: sent as head + tail */
  DBW_LOSS_TRUNCATED_BYTES,    /* bytes not captured between head and tail (or past the iovecs) */
  DBW_LOSS_READ_FAULTS,        /* user memory that could not be read */
  DBW_LOSS_MAX,
};

/* Settings userspace writes into rodata before load. */
struct dbw_tap_config {
  __u32 self_tgid;     /* the agent: its data is never captured */
  __u32 capture_bytes; /* head bytes captured per syscall */
};

struct dbw_tap_task {
  __u64 ts_ns;     /* bpf_ktime_get_ns */
  __u64 cgroup_id; /* cgroup v2 id of the task */
  __u32 tgid;
  __u32 tid;
  __u32 uid;
  __u32 gid;
  char comm[16];
};

/* A data chunk: payload bytes [offset, offset + cap_len) of one syscall that moved `len` bytes,
 * whose first byte is at position `pos` in the connection's `dir` stream. */
struct dbw_tap_data {
  __u8 record; /* DBW_REC_DATA */
  __u8 dir;
  __u8 role;
  __u8 pad;
  __s32 fd;
  __u64 sk; /* struct sock address: the connection's identity while it lives */
  __u64 pos;
  __u32 len;
  __u32 offset;
  __u32 cap_len;
  __u32 pad2;
  struct dbw_tap_task task;
};

struct dbw_tap_conn {
  __u8 record; /* DBW_REC_OPEN | DBW_REC_CONNECT */
  __u8 role;   /* OPEN only */
  __u16 family;
  __s32 fd;
  __u64 sk;
  __u64 ino;      /* the socket's inode (socket:[ino] in /proc/PID/fd) */
  __u64 peer_ino; /* unix: the peer socket's inode, 0 when not known yet */
  __u16 lport;    /* host order */
  __u16 rport;
  __u32 target;   /* OPEN of a server connection: the watched server's target index */
  __u8 laddr[16]; /* IPv4 in the first 4 bytes, network order */
  __u8 raddr[16];
  char path[DBW_TAP_UNIX_PATH]; /* unix: the bound path of the listening side */
  struct dbw_tap_task task;
};

/* A process connected to a database socket. What userspace would read from /proc comes along:
 * a short-lived client (psql -c) can exit before userspace reads the record. */
struct dbw_tap_connect {
  struct dbw_tap_conn conn; /* record = DBW_REC_CONNECT */
  __u32 ppid;
  __u16 exe_len;     /* bytes of exe used */
  __u8 exe_complete; /* 1: exe holds the whole path up to the root of the mount namespace */
  __u8 exe_deleted;  /* 1: the file is unlinked (or was never linked: memfd), as "(deleted)" */
  /* The executable's path components, leaf first, each NUL-terminated ("psql\0bin\0usr\0"). */
  char exe[DBW_TAP_EXE + DBW_TAP_EXE_NAME];
};

struct dbw_tap_close {
  __u8 record; /* DBW_REC_CLOSE */
  __u8 pad[3];
  __s32 fd;
  __u64 sk;
  struct dbw_tap_task task;
};

struct dbw_tap_exit {
  __u8 record; /* DBW_REC_EXIT */
  __u8 pad[3];
  __u32 tgid;
  __u64 ts_ns;
};

/* Map `watched`: tgid -> this. */
struct dbw_tap_watch {
  __u32 target; /* index of the target whose server the process belongs to */
};

#endif
