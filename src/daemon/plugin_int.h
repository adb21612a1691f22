/*
 * The Docker volume plugin protocol: a pure request decoder (bytes -> struct:
 * plugin_decode.c, with the strict JSON check and the escaping of client bytes in
 * plugin_json.c) and an HTTP/1.1 server over a unix socket (plugin.c,
 * libmicrohttpd), whose connections the guard of http_guard.c bounds.
 *
 * Endpoints (POST, JSON bodies; every answer is HTTP 200 with a JSON object whose
 * "Err" is "" on success or a one-line message; an unknown path is HTTP 404 with
 * {"Err": "unknown endpoint ..."}):
 *   /Plugin.Activate            -> {"Implements":["VolumeDriver"]}
 *   /VolumeDriver.Create        {Name, Opts}  -> {}
 *   /VolumeDriver.Remove        {Name}        -> {}
 *   /VolumeDriver.Mount         {Name, ID}    -> {Mountpoint}
 *   /VolumeDriver.Unmount       {Name, ID}    -> {}
 *   /VolumeDriver.Path          {Name}        -> {Mountpoint}
 *   /VolumeDriver.Get           {Name}        -> {Volume:{Name, Mountpoint, Status}}
 *   /VolumeDriver.List          {}            -> {Volumes:[...]}
 *   /VolumeDriver.Capabilities  {}            -> {"Capabilities":{"Scope":"global"}}
 *   /VFile.Status, /VFile.KVDump, /VFile.Nodes (admin, used by vfilectl)
 *   /VFile.Evict                {Node, Name?, Force?} -> {Node, Released:[...]}
 * Bodies over VF_PLUGIN_MAX_BODY are refused while they are received. Every other
 * bound (strict JSON, nesting, UTF-8, options, ids, request time, connections per
 * peer) is below and in doc/reliability.md, "Input bounds"; bytes a client sent are
 * escaped (vf_plugin_escape) in every message.
 */
#ifndef VFILE_PLUGIN_INT_H
#define VFILE_PLUGIN_INT_H

#include <stddef.h>
#include <microhttpd.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "vfile/vfile.h"

/* Input bounds (doc/reliability.md, "Input bounds"). */
#define VF_PLUGIN_MAX_BODY (64 * 1024)
#define VF_PLUGIN_ID_MAX 64           /* a mount id; Docker's are 64 hex digits */
#define VF_PLUGIN_NODE_MAX 253        /* a node name (Evict), bytes */
#define VF_PLUGIN_OPTS_MAX 16         /* Create options in one request */
#define VF_PLUGIN_OPT_KEY_MAX 64      /* an option name, bytes */
#define VF_PLUGIN_OPT_VALUE_MAX 253   /* an option value, bytes (a DNS name) */
#define VF_PLUGIN_OPTS_MAX_BYTES 1024 /* all option names and values together */
#define VF_PLUGIN_REQUEST_MS 10000    /* a whole request must arrive within this */
#define VF_PLUGIN_UID_CONNS 32        /* connections per non-root peer uid */
#define VF_PLUGIN_CONNS 256           /* connections in all */
#define VF_PLUGIN_CONTENT_TYPE "application/vnd.docker.plugins.v1+json"

enum vf_plugin_ep {
	VF_EP_UNKNOWN = 0,
	VF_EP_ACTIVATE,
	VF_EP_CREATE,
	VF_EP_REMOVE,
	VF_EP_MOUNT,
	VF_EP_UNMOUNT,
	VF_EP_PATH,
	VF_EP_GET,
	VF_EP_LIST,
	VF_EP_CAPABILITIES,
	VF_EP_STATUS,
	VF_EP_KVDUMP,
	VF_EP_NODES,
	VF_EP_EVICT,
};

/* A decoded request. Every string is owned by the request. */
struct vf_plugin_req {
	enum vf_plugin_ep ep;
	char *name;          /* volume name (Create..Get), validated */
	char *id;            /* mount id (Mount, Unmount), validated */
	struct vf_opt *opts; /* Create options (key/value point into opt_strs) */
	size_t nopts;
	char **opt_strs; /* 2 * nopts strings: key0, value0, key1, ... */
	char *node;      /* Evict: the host (validated); name is then optional */
	int force;       /* Evict: Force true */
};

/* The endpoint a path names (VF_EP_UNKNOWN if none) and back. */
enum vf_plugin_ep vf_plugin_ep_from_path(const char *path);
const char *vf_plugin_ep_path(enum vf_plugin_ep ep);

/* Decode one request: path, then len body bytes (need not be NUL-terminated; may be
 * empty for endpoints without fields). known_opts: the option names Create accepts
 * (NULL: any). Pure: no I/O, no global state.
 * VF_ENOTFOUND for an unknown path, VF_ELIMIT for a body over VF_PLUGIN_MAX_BODY,
 * VF_EINVAL for malformed JSON, missing or invalid fields; err says which. */
int vf_plugin_decode(const char *path, const char *body, size_t len, const char *const *known_opts,
                     struct vf_plugin_req *req_r, struct vf_err *err);
void vf_plugin_req_clear(struct vf_plugin_req *req);

/* [A-Za-z0-9][A-Za-z0-9_.-]{0,127}; 1 if valid. */
int vf_plugin_name_valid(const char *name);

/* The server. The handler answers one decoded request (never Activate or
 * Capabilities, which the server answers): it adds its fields to g, inside the
 * response object the server opened (the server adds "Err"). It returns VF_OK, or
 * an error whose err->msg becomes the "Err" answer. Called concurrently from
 * connection threads. */
typedef int (*vf_plugin_handler_fn)(void *arg, const struct vf_plugin_req *req, yajl_gen g,
                                    struct vf_err *err);

struct vf_plugin_server_cfg {
	const char *socket_path;
	int listen_fd;            /* a listening unix socket already bound to socket_path
	                           * (socket activation: SD_LISTEN_FDS_START or above),
	                           * taken over by the server; 0: create socket_path
	                           * (socket_group, socket_mode). An activated socket is
	                           * never unlinked: its unit owns the path */
	const char *socket_group; /* NULL: unchanged */
	int socket_mode;          /* e.g. 0660 */
	int idle_timeout_s;       /* close idle connections after this (0: 60) */
	int request_timeout_ms;   /* a whole request (headers and body), and each
	                           * response and the wait for the next request on a
	                           * kept-alive connection, within this (0:
	                           * VF_PLUGIN_REQUEST_MS); the handler's own time is
	                           * not counted */
	const char *const *known_opts;
	vf_plugin_handler_fn handler;
	void *arg;
};
struct vf_plugin_server;

/* Create the socket (a stale one is replaced; a live one is refused), or take
 * cfg->listen_fd, and serve. */
int vf_plugin_server_start(const struct vf_plugin_server_cfg *cfg, struct vf_plugin_server **srv_r,
                           struct vf_err *err);
/* Stop accepting connections, then wait up to timeout_ms for requests in flight.
 * Returns the number still running. */
int vf_plugin_server_drain(struct vf_plugin_server *srv, int timeout_ms);
/* Requests being served now. */
int vf_plugin_server_inflight(struct vf_plugin_server *srv);
/* Stop, close and unlink the socket, free. */
void vf_plugin_server_stop(struct vf_plugin_server **srv);

/* A connection guard for an MHD daemon (the plugin socket, the metrics port): a
 * whole request must arrive within request_ms (MHD's own timeout is idle time, which
 * one byte a second resets); unix peers other than root get uid_max connections at
 * most; with more than pending_max connections waiting for a request, the one
 * waiting longest is dropped. Connections are closed with shutdown(2) on MHD's fd,
 * under the lock MHD's close notification takes first. */
struct vf_http_guard_cfg {
	int request_ms;  /* 0: VF_PLUGIN_REQUEST_MS */
	int uid_max;     /* 0: no share per uid */
	int pending_max; /* 0: no eviction */
	const char *what;
};
struct vf_http_guard;
int vf_http_guard_new(const struct vf_http_guard_cfg *cfg, struct vf_http_guard **g_r,
                      struct vf_err *err);
/* After MHD_stop_daemon. */
void vf_http_guard_free(struct vf_http_guard **g);
/* MHD_OPTION_NOTIFY_CONNECTION, with the guard as its argument. */
void vf_http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe);
/* Around the handler: busy connections have no deadline; leaving busy starts one. */
void vf_http_guard_busy(struct vf_http_guard *g, struct MHD_Connection *conn, int busy);
void vf_http_guard_counts(struct vf_http_guard *g, unsigned long *reaped_r,
                          unsigned long *refused_r, unsigned long *evicted_r);

/* Escape for logs and Err: printable ASCII as is, '\\' doubled, any other byte as
 * \xHH; at most max_src bytes of src, then "..."; never cuts an escape. */
void vf_plugin_escape(char *dst, size_t size, const char *src, size_t max_src);

/* Between the plugin files (plugin_json.c): check body strictly (strict JSON, UTF-8,
 * \u escapes, nesting), then build its tree; VF_EINVAL with a message starting
 * with path if it is not. */
int vf_plugin_parse(const char *path, const char *body, size_t len, yajl_val *root_r,
                    struct vf_err *err);

/* Tests only: called right after bind(2) with the socket path. */
extern void (*vf_plugin_test_after_bind)(const char *path);

#endif /* VFILE_PLUGIN_INT_H */
