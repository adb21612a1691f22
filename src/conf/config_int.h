/*
 * The vfile.conf schema, shared by vfiled and vfilectl.
 *
 * One libconfig file. Top-level settings (all optional unless noted):
 *   node_id            string   this host's name (default: the host name)
 *   role               string   "manager" | "worker" | "auto" (default "worker";
 *                               auto: ask the local dockerd's swarm info)
 *   docker_socket      string   dockerd's socket for role = auto and, when given or with
 *                               role = auto, the start-up check of this host's mount
 *                               ids against its containers (/var/run/docker.sock)
 *   docker_wait_s      int      role = auto: how long vfiled waits for dockerd to
 *                               answer as a swarm node at start (300)
 *   backend            string   REQUIRED: a module name ("etcd", "consul") or a path
 *   backend_dir        string   where module names are looked up
 *   prefix             string   key prefix ("vfile/")
 *   plugin_socket      string   "/run/docker/plugins/vfile.sock"
 *   socket_group       string   group owning the socket (default: the daemon's)
 *   socket_mode        string   "0660" (octal; an integer is refused)
 *   mount_root         string   "/var/lib/vfile/mounts"
 *   state_dir          string   "/var/lib/vfile"
 *   lease_ttl_s, op_timeout_ms, reconcile_ms, request_timeout_ms   int
 *   log_level          string   "error" | "warning" | "info" | "debug"
 *   log_target         string   "stderr" | "syslog"
 *   etcd = {...}, consul = {...}   the backend's group, passed whole to open();
 *       in etcd: embedded (bool), embedded_data_dir, embedded_client_url,
 *       embedded_peer_url, embedded_binary, embedded_seeds (list of client URLs),
 *       embedded_max_members (int), embedded_name are read by vfiled and removed
 *       from the group before it is handed to the driver.
 *   fileserver = {...}  passed to vf_fs_open()
 *   evict_after_s      int      managers evict a host whose lease has been gone this
 *                               long (0: never, the default; else >= 2 * lease_ttl_s)
 *   metrics_listen     string   "HOST:PORT" ("127.0.0.1:9105", "[::1]:9105"): serve
 *                               Prometheus metrics on GET /metrics (default: off)
 * Errors name file, line and setting.
 */
#ifndef VFILE_CONFIG_INT_H
#define VFILE_CONFIG_INT_H

#include <libconfig.h>

#include "vfile/kv.h"

#define VF_CONF_DEFAULT_FILE VF_SYSCONFDIR "/vfile/vfile.conf"

enum vf_conf_role { VF_ROLE_WORKER = 0, VF_ROLE_MANAGER = 1, VF_ROLE_AUTO = 2 };

struct vf_conf_embedded {
	int enabled;
	char *data_dir;                   /* default <state_dir>/etcd */
	char *client_url;                 /* default http://127.0.0.1:2379 */
	char *peer_url;                   /* default http://127.0.0.1:2380 */
	char *binary;                     /* default "etcd" (looked up in PATH) */
	int client_url_set, peer_url_set; /* given in the file (else derived, role = auto) */
	char *name;                       /* member name (NULL: the node id) */
	char **seeds; /* embedded_seeds: client URLs where the managers' members answer */
	size_t nseeds;
	int max_members; /* embedded_max_members (default 5) */
	/* TLS of the members: the etcd group's cacert, cert, key (the driver's too) */
	char *cacert, *cert, *key;
};

struct vf_conf {
	char *file; /* the path it was read from */
	char *node_id;
	int node_id_set; /* node_id came from the file (else: host name) */
	enum vf_conf_role role;
	char *docker_socket;
	int docker_socket_set; /* given in the file (else the default) */
	int docker_wait_s;
	char *backend;      /* as written */
	char *backend_name; /* the group name: "etcd" for "etcd" or "/x/etcd.so" */
	char *backend_dir;  /* NULL: default */
	char *prefix;
	char *plugin_socket;
	char *socket_group; /* NULL: unchanged */
	int socket_mode;
	char *mount_root;
	char *state_dir;
	int lease_ttl_s;
	int op_timeout_ms;
	int reconcile_ms;
	int request_timeout_ms;
	int evict_after_s; /* 0: no automatic eviction */
	int log_level;     /* enum vf_log_level */
	char *log_target;
	char *metrics_listen; /* NULL: no metrics listener */
	int has_secret;       /* the file holds a password or token */
	struct vf_conf_embedded embedded;
	/* Borrowed from cfg (valid until vf_conf_free): may be NULL. */
	config_setting_t *backend_group;
	config_setting_t *fileserver_group;
	config_t cfg;
};

/* Read and validate path. VF_EINVAL with "file:line: setting ..." on a bad file;
 * a missing or unreadable file names it. */
int vf_conf_load(const char *path, struct vf_conf **conf_r, struct vf_err *err);
/* Same from text (name: what messages call it). For tests and fuzzers. */
int vf_conf_load_string(const char *text, const char *name, struct vf_conf **conf_r,
                        struct vf_err *err);
void vf_conf_free(struct vf_conf **conf);

/* Refuse a config holding a secret in a file readable by others (mode & 007). */
int vf_conf_check_perms(const struct vf_conf *conf, struct vf_err *err);

/* "error"/"warning"/"info"/"debug" -> enum vf_log_level, -1 if unknown. */
int vf_conf_log_level(const char *name);
const char *vf_conf_role_name(enum vf_conf_role role);

#endif /* VFILE_CONFIG_INT_H */
