/*
 * libvfile: the backend loader and the volume manager API.
 * Backend drivers see only <vfile/kv.h>; daemons and tools use this header.
 */
#ifndef VFILE_VFILE_H
#define VFILE_VFILE_H

#include <vfile/kv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Backend loader ---- */
struct vf_backend;

/* Load a backend module by name ("etcd": <dir>/etcd.so) or by path (contains a '/').
 * dir NULL: $VFILE_BACKEND_DIR if set, else the installed $(pkglibdir)/backends.
 * Refuses (VF_EABI) a module without vf_backend_entry or with another ABI version,
 * naming the file and both versions; an unloadable file names dlopen's reason. */
int vf_backend_load(const char *name, const char *dir, struct vf_backend **be_r,
                    struct vf_err *err);
const struct vf_kv_ops *vf_backend_ops(const struct vf_backend *be);
const char *vf_backend_path(const struct vf_backend *be);
/* Open a store handle through the backend (cfg: its config group, may be NULL). */
int vf_backend_open(struct vf_backend *be, const config_setting_t *cfg, struct vf_kv **kv_r,
                    struct vf_err *err);
/* Unload; every handle opened through it must be closed first. */
void vf_backend_unload(struct vf_backend **be);

/* ---- Volume manager ---- */

/* Volume names: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}. */
#define VF_VOLUME_NAME_MAX 128
int vf_volume_name_valid(const char *name);

/* File-server control: how a volume is served (on managers) and mounted (on hosts).
 * info_json is the volume's info/<vol> document (create options + server address). */
struct vf_fs_ops {
	/* Manager: start serving vol; *addr_r (malloc'ed host) and *port_r say where. */
	int (*start)(void *arg, const char *vol, const char *info_json, char **addr_r, int *port_r,
	             struct vf_err *err);
	/* Manager: stop serving vol (not running is fine). */
	int (*stop)(void *arg, const char *vol, const char *info_json, struct vf_err *err);
	/* Manager: is vol served by this process? (1 yes, 0 no) For the reconciler. */
	int (*running)(void *arg, const char *vol);
	/* Host: mount the served volume at mountpoint (created by the caller). */
	int (*mount)(void *arg, const char *vol, const char *info_json, const char *mountpoint,
	             struct vf_err *err);
	/* Host: unmount mountpoint (not mounted is fine). */
	int (*unmount)(void *arg, const char *vol, const char *mountpoint, struct vf_err *err);
	/* Host (optional): is vol mounted at mountpoint? 1 yes, 0 no, -1 cannot tell.
	 * NULL: cannot tell (a driver that mounts nothing). The volume manager asks
	 * when it checks its local mounts against the system's. */
	int (*mounted)(void *arg, const char *vol, const char *mountpoint);
};

struct vf_ctx_cfg {
	const char *node_id;    /* this host's name in client/<vol>/<node> */
	const char *node_addr;  /* this host's address (recorded for operators) */
	const char *prefix;     /* key prefix, default "vfile/" */
	const char *mount_root; /* local mountpoints: <mount_root>/<vol> */
	int manager;            /* run watchers, reconciler and file servers */
	int lease_ttl_s;        /* the process lease (default 10; raised to the store minimum) */
	int op_timeout_ms;      /* bound on one mount/unmount/remove (default 30000) */
	int reconcile_ms;       /* period of the reconciler (default 5000) */
	const struct vf_fs_ops *fs;
	void *fs_arg;
	int evict_after_s; /* managers: evict a host whose lease has been gone this long
	                    * (seconds, as seen by the manager); 0: never */
};
struct vf_ctx;

/* One per process: grants the lease (kept alive by the backend). kv stays owned by
 * the caller and must outlive the context. */
int vf_ctx_new(struct vf_kv *kv, const struct vf_ctx_cfg *cfg, struct vf_ctx **ctx_r,
               struct vf_err *err);
/* Managers: start the trigger watchers and the reconciler. Also a worker's
 * promotion at runtime: node/<node> then names it a manager. */
int vf_ctx_start_manager(struct vf_ctx *ctx, struct vf_err *err);
/* A demotion at runtime: stop the watchers, reconciler and every file server of
 * this process, then drop the lease (a new one is granted at once) so that the
 * server records bound to it go and the other managers restart those volumes
 * within their reconcile period. This host's mounts and client ids stay. */
void vf_ctx_stop_manager(struct vf_ctx *ctx);
/* Stop watchers, revoke the lease, free. */
void vf_ctx_free(struct vf_ctx **ctx);

struct vf_opt {
	const char *key;
	const char *value;
};
/* The option names create accepts, NULL-terminated. */
const char *const *vf_volume_known_opts(void);

struct vf_volume {
	char *name;
	char *state;    /* "Ready" or "Mounted" */
	int64_t gref;   /* hosts that have it mounted */
	char **clients; /* their node ids */
	size_t nclients;
	char *info_json; /* info/<vol>: options, server node/address/port */
	/* server/<vol> as read with the rest ("NODE LEASE"), NULL when absent: the
	 * server that info names is live only while this names the same node (the
	 * key ends with its manager's lease). vf_volume_get only; list leaves NULL. */
	char *server;
};
void vf_volume_clear(struct vf_volume *v);

int vf_volume_create(struct vf_ctx *ctx, const char *name, const struct vf_opt *opts, size_t nopts,
                     struct vf_err *err);
/* VF_EBUSY while any host has it mounted; the message names the hosts. */
int vf_volume_remove(struct vf_ctx *ctx, const char *name, struct vf_err *err);
/* Mount on this host for mount_id (a container); the first id takes the global
 * reference, later ids only count locally. *path_r: the local mountpoint. */
int vf_volume_mount(struct vf_ctx *ctx, const char *name, const char *mount_id, char **path_r,
                    struct vf_err *err);
/* Drop mount_id; the last id on this host unmounts and drops the global reference. */
int vf_volume_unmount(struct vf_ctx *ctx, const char *name, const char *mount_id,
                      struct vf_err *err);
int vf_volume_get(struct vf_ctx *ctx, const char *name, struct vf_volume *vol_r,
                  struct vf_err *err);
int vf_volume_list(struct vf_ctx *ctx, struct vf_volume **vols_r, size_t *n_r, struct vf_err *err);

/* ---- Hosts ----
 * Every daemon holds node/<node> with its lease ({"role","addr","started","lease"}):
 * a host whose key is absent has no lease (stopped, dead, or cut off from the store).
 */
struct vf_node {
	char *name;
	char *role; /* "manager" | "worker"; NULL when not alive */
	char *addr;
	int64_t started; /* unix seconds of its daemon's start; 0 when not alive */
	int alive;       /* node/<name> present: its lease holds */
	char **vols;     /* volumes it holds a client key of */
	size_t nvols;
};
/* Hosts with a node key or a client key, sorted by name. */
int vf_node_list(struct vf_ctx *ctx, struct vf_node **nodes_r, size_t *n_r, struct vf_err *err);
void vf_nodes_free(struct vf_node **nodes, size_t n);

/* What one eviction released. */
struct vf_evicted {
	char *vol;
	char **ids; /* the host's mount ids that were recorded */
	size_t nids;
	int64_t gref_before, gref_after;
};
/* Release node's client ids (of vol, or of every volume when vol is NULL) and
 * its global references, each volume in one txn under its gref lock, fenced
 * on the versions read. Refused (VF_EBUSY, nothing written) while node holds a
 * lease, unless force; refused for this context's own node. *ev_r: what was
 * released (also on a failure part-way). */
int vf_node_evict(struct vf_ctx *ctx, const char *node, const char *vol, int force,
                  struct vf_evicted **ev_r, size_t *n_r, struct vf_err *err);
void vf_evicted_free(struct vf_evicted **ev, size_t n);

/* What a context is doing, for status reports. lease_id: the current lease
 * ("" while none is held); manager: 1 while the manager side runs; watchers:
 * open watch streams (the manager's prefix watches plus hosts' mounts waiting
 * for a server); servers: volumes this process serves. */
struct vf_ctx_status {
	char lease_id[64];
	int lease_ttl_s;
	int manager;
	int watchers;
	int servers;
};
int vf_ctx_status(struct vf_ctx *ctx, struct vf_ctx_status *st);

/* Errors. */
const char *vf_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif /* VFILE_VFILE_H */
