/*
 * Process-wide metrics of libvfile and vfiled, exposed in the Prometheus text
 * format (GET /metrics on metrics_listen).
 *
 * Counters and histograms are global and lock-free (C11 atomics, relaxed): any
 * thread may call vf_metrics_inc() / vf_metrics_observe_ms() at any time, even
 * before a listener exists (the values are kept, nobody reads them).
 *
 * KV errors, lock wait time and watch resyncs are counted by a shim store handle
 * (vf_metrics_kv_wrap) that forwards every slot to the real backend handle, so
 * neither the backends nor the volume manager need to know about metrics.
 */
#ifndef VFILE_METRICS_INT_H
#define VFILE_METRICS_INT_H

#include <sys/socket.h>

#include "vfile/kv.h"

enum vf_metric {
	VF_M_MOUNTS = 0,          /* /VolumeDriver.Mount answered ok */
	VF_M_MOUNT_ERRORS,        /* ... answered with an Err */
	VF_M_UNMOUNTS,            /* /VolumeDriver.Unmount ok */
	VF_M_UNMOUNT_ERRORS,      /* ... Err */
	VF_M_SERVER_STARTS,       /* a file server started by this manager */
	VF_M_SERVER_START_ERRORS, /* a file-server start failed */
	VF_M_SERVER_STOPS,        /* a file server stopped by this manager */
	VF_M_SERVER_STOP_ERRORS,  /* a file-server stop failed */
	VF_M_WATCH_RESYNCS,       /* VF_EV_RESYNC events delivered to a watcher */
	VF_M_RECONCILE_RUNS,      /* reconciler passes */
	VF_M_EVICTIONS,           /* volumes a host was evicted from (vf_node_evict) */
	VF_M_MEMBER_CHANGES,      /* embedded cluster: membership changes this host made */
	VF_M_NCOUNTERS
};

enum vf_metric_hist {
	VF_H_LOCK_WAIT = 0, /* time spent in the store's lock() (acquired or not) */
	VF_H_MOUNT,         /* duration of a mount request */
	VF_H_UNMOUNT,       /* duration of an unmount request */
	VF_H_SERVER_START,  /* duration of a file-server start */
	VF_H_NHISTS
};

/* Gauges: process-wide values set by whoever knows them (one context per
 * process: vfiled). */
enum vf_metric_gauge {
	VF_G_VOLUMES_READY = 0, /* volumes Ready, as the last reconcile pass listed (managers) */
	VF_G_VOLUMES_MOUNTED,   /* volumes Mounted, likewise */
	VF_G_SERVERS,           /* file servers this process runs */
	VF_G_LOCAL_MOUNTS,      /* volumes mounted on this host by this process */
	VF_G_LEASE_HELD,        /* 1 while the process holds its lease */
	VF_G_STORE_UP,          /* 1 if the last store request was answered, 0 if not */
	VF_G_LAST_RECONCILE,    /* unix time of the last reconcile pass (managers; 0: none) */
	/* the embedded cluster as this host last saw it (rendered once one is set) */
	VF_G_ETCD_MEMBERS,      /* members in the list (voters and learners) */
	VF_G_ETCD_VOTERS,       /* voting members */
	VF_G_ETCD_LEARNERS,     /* learners */
	VF_G_ETCD_HEALTHY,      /* members whose /health answered true */
	VF_G_ETCD_LOCAL_MEMBER, /* 1 when this host runs a member */
	VF_G_NGAUGES
};
void vf_metrics_gauge_set(enum vf_metric_gauge g, int64_t v);
int64_t vf_metrics_gauge_get(enum vf_metric_gauge g);

/* GET /healthz: fn returns VF_OK (200 "ok") or an error whose message is the
 * 503 answer. NULL (default): healthy iff the lease is held and the store
 * answered last (the gauges). Set before the listener starts. */
typedef int (*vf_metrics_health_fn)(void *arg, struct vf_err *err);
void vf_metrics_health_set(vf_metrics_health_fn fn, void *arg);
/* The answer /healthz gives now: VF_OK or an error with the reason. */
int vf_metrics_health(struct vf_err *err);

/* Add 1 (n) to counter m. */
void vf_metrics_inc(enum vf_metric m);
void vf_metrics_add(enum vf_metric m, uint64_t n);
/* Record one observation of ms milliseconds in histogram h. */
void vf_metrics_observe_ms(enum vf_metric_hist h, int64_t ms);
/* Count a store error: op is the kv slot name ("txn"), code a vf_status
 * (VF_OK and VF_ENOTFOUND are not errors and are ignored). */
void vf_metrics_kv_error(const char *op, int code);
/* Read a counter (tests). */
uint64_t vf_metrics_get(enum vf_metric m);
/* Histogram count (tests). */
uint64_t vf_metrics_hist_count(enum vf_metric_hist h);
/* Zero everything (tests). */
void vf_metrics_reset(void);

/* The whole exposition as malloc'ed text (*text_r, freed by the caller). */
int vf_metrics_render(char **text_r, size_t *len_r, struct vf_err *err);

/* A store handle that forwards every slot to inner and counts errors by kind,
 * lock wait time and watch resyncs. Closing it closes inner. NULL slots of
 * inner stay NULL. */
int vf_metrics_kv_wrap(struct vf_kv *inner, struct vf_kv **kv_r, struct vf_err *err);

/* The HTTP listener: listen is "HOST:PORT" (IPv4 address, or [IPv6]:PORT).
 * Serves GET /metrics, GET /healthz (200 "ok" or 503 with the reason), and /
 * with a pointer to them; anything else is 404. */
/* The listener's bounds (doc/reliability.md, "Input bounds"): a whole request within
 * VF_METRICS_REQUEST_MS; with VF_METRICS_PENDING connections waiting for a request,
 * a new one drops the one waiting longest; VF_METRICS_CONNS in all. */
#define VF_METRICS_REQUEST_MS 5000
#define VF_METRICS_PENDING 64
#define VF_METRICS_CONNS 256
struct vf_metrics_server;
int vf_metrics_server_start(const char *listen, struct vf_metrics_server **srv_r,
                            struct vf_err *err);
/* The port actually bound (useful with port 0). */
int vf_metrics_server_port(const struct vf_metrics_server *srv);
void vf_metrics_server_stop(struct vf_metrics_server **srv);

/* Parse "HOST:PORT" as vf_metrics_server_start does (no I/O): VF_OK or VF_EINVAL
 * naming what is wrong. */
int vf_metrics_listen_valid(const char *listen, struct vf_err *err);
/* The same into a socket address (metrics_addr.c). */
struct sockaddr_storage;
int vf_metrics_addr_parse(const char *listen, struct sockaddr_storage *ss, socklen_t *len_r,
                          struct vf_err *err);

#endif /* VFILE_METRICS_INT_H */
