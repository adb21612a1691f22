/*
 * vfiled: the vfile daemon on every host. Reads vfile.conf, opens the backend and
 * the file-server driver, joins the volume manager (managers also run watchers,
 * reconciler and file servers) and serves the Docker volume plugin protocol on a
 * unix socket. SIGTERM/SIGINT: drain and exit 0; SIGHUP: reload log settings.
 * With metrics_listen, serves Prometheus metrics over HTTP; built with libsystemd,
 * takes the plugin socket from systemd (vfiled.socket, sd_listen_fds) when it is
 * activated, tells systemd READY=1 as soon as the socket is served, STATUS= while it
 * waits for dockerd or the store, and STOPPING=1 when it starts to shut down (the
 * unit is then Type=notify).
 *
 * Boot order: the plugin socket is served first, so Docker can activate the plugin
 * at once; until dockerd (role = auto) and the store have been reached every volume
 * request is answered {"Err": "vfiled is starting: ..."}. dockerd is waited for up to
 * docker_wait_s, the store without a bound (each failure logged, then one line every
 * 30 s); a signal stops the wait.
 *
 * Exit status: 0 clean stop (or --check-config ok), 1 runtime failure, 2 bad
 * usage or configuration.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "cluster_int.h"
#include "common_int.h"
#include "config_int.h"
#include "daemon_int.h"
#include "fs_int.h"
#include "metrics_int.h"
#include "plugin_int.h"
#include "volume_int.h"

struct vfd {
	struct vf_conf *conf;
	char *node_id;
	char *node_addr;
	int manager;
	struct vfd_etcd *etcd;
	struct vf_backend *be;
	struct vf_kv *kv;
	const struct vf_fs_ops *fs;
	void *fs_arg;
	struct vf_fs_ops mfs; /* fs with metrics: what the volume manager gets */
	struct vf_ctx *ctx;
	struct vf_plugin_server *srv;
	struct vf_metrics_server *metrics;
	char node_key[600];   /* <prefix>node/<node>: what /healthz reads */
	const sigset_t *sigs; /* taken with sigtimedwait while starting */
	int stop_sig;         /* SIGTERM/SIGINT taken while starting */
	int refused;          /* a manager whose export_root is not the cluster's */
	int ready;            /* __atomic: the store is reached, requests are served */
	pthread_mutex_t phase_mu;
	char phase[512]; /* what the daemon waits for while !ready: the Err answered */
};

/* ---- systemd ---- */

static void vfd_notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	int rc = sd_notify(0, state);

	if (rc < 0)
		vf_log(VF_LOG_WARN, "sd_notify %s: %s", state, strerror(-rc));
#else
	(void)state;
#endif
}

/* ---- starting ---- */

/* What requests are told while the daemon starts; also systemd's STATUS=. */
static void vfd_phase(struct vfd *d, const char *fmt, ...) VF_PRINTF(2, 3);
static void vfd_phase(struct vfd *d, const char *fmt, ...)
{
	char buf[sizeof(d->phase)], st[sizeof(d->phase) + 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	pthread_mutex_lock(&d->phase_mu);
	memcpy(d->phase, buf, sizeof(d->phase));
	pthread_mutex_unlock(&d->phase_mu);
	snprintf(st, sizeof(st), "STATUS=%s", buf);
	vfd_notify(st);
}

static int vfd_ready(struct vfd *d)
{
	return __atomic_load_n(&d->ready, __ATOMIC_ACQUIRE);
}

/* ---- file-server calls, counted ---- */

static int vfd_mfs_start(void *arg, const char *vol, const char *info_json, char **addr_r,
                         int *port_r, struct vf_err *err)
{
	struct vfd *d = arg;
	int64_t t0 = vf_now_ms();
	int rc = d->fs->start(d->fs_arg, vol, info_json, addr_r, port_r, err);

	vf_metrics_observe_ms(VF_H_SERVER_START, vf_now_ms() - t0);
	vf_metrics_inc(rc == VF_OK ? VF_M_SERVER_STARTS : VF_M_SERVER_START_ERRORS);
	return rc;
}

static int vfd_mfs_stop(void *arg, const char *vol, const char *info_json, struct vf_err *err)
{
	struct vfd *d = arg;
	int rc = d->fs->stop(d->fs_arg, vol, info_json, err);

	vf_metrics_inc(rc == VF_OK ? VF_M_SERVER_STOPS : VF_M_SERVER_STOP_ERRORS);
	return rc;
}

static int vfd_mfs_running(void *arg, const char *vol)
{
	struct vfd *d = arg;

	return d->fs->running(d->fs_arg, vol);
}

static int vfd_mfs_mount(void *arg, const char *vol, const char *info_json, const char *mountpoint,
                         struct vf_err *err)
{
	struct vfd *d = arg;

	return d->fs->mount(d->fs_arg, vol, info_json, mountpoint, err);
}

static int vfd_mfs_unmount(void *arg, const char *vol, const char *mountpoint, struct vf_err *err)
{
	struct vfd *d = arg;

	return d->fs->unmount(d->fs_arg, vol, mountpoint, err);
}

/* The driver's vtable with start/stop counted (NULL slots stay NULL). */
static void vfd_mfs_init(struct vfd *d)
{
	d->mfs.start = d->fs->start ? vfd_mfs_start : NULL;
	d->mfs.stop = d->fs->stop ? vfd_mfs_stop : NULL;
	d->mfs.running = d->fs->running ? vfd_mfs_running : NULL;
	d->mfs.mount = d->fs->mount ? vfd_mfs_mount : NULL;
	d->mfs.unmount = d->fs->unmount ? vfd_mfs_unmount : NULL;
}

static void vfd_usage(FILE *f)
{
	fprintf(f, "usage: vfiled [-c FILE] [--check-config] [--version]\n"
	           "  -c, --config FILE   configuration (default " VF_CONF_DEFAULT_FILE ")\n"
	           "  --check-config      validate the configuration, backend and file-server\n"
	           "                      driver settings, then exit 0 (valid) or 2\n"
	           "  --version           print the version and exit\n");
}

/* ---- role = auto: ask dockerd ---- */

static size_t vfd_sink(char *p, size_t size, size_t n, void *arg)
{
	struct vf_buf *b = arg;

	if (b->len > 4 * 1024 * 1024)
		return 0;
	return vf_buf_add(b, p, size * n) == VF_OK ? size * n : 0;
}

/* GET /info on dockerd's socket: manager iff an active swarm node with control. */
static int vfd_swarm_role(struct vfd *d, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	struct vf_buf body = {0};
	yajl_val t = NULL;
	long status = 0;
	CURL *h = curl_easy_init();
	CURLcode cc;
	int rc;

	if (h == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->docker_socket);
	curl_easy_setopt(h, CURLOPT_URL, "http://localhost/info");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->request_timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, vfd_sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (cc != CURLE_OK) {
		rc = vf_err_set(err, VF_EUNAVAIL, "role = auto: cannot ask dockerd at %s: %s",
		                c->docker_socket, curl_easy_strerror(cc));
		goto out;
	}
	if (status != 200 || body.data == NULL ||
	    vf_json_parse(body.data, body.len, &t, NULL) != VF_OK) {
		rc = vf_err_set(err, VF_EPROTO, "role = auto: dockerd at %s answered HTTP %ld",
		                c->docker_socket, status);
		goto out;
	}
	const char *state = vf_json_str(vf_json_get(t, "Swarm", "LocalNodeState", NULL));
	const char *nid = vf_json_str(vf_json_get(t, "Swarm", "NodeID", NULL));
	const char *addr = vf_json_str(vf_json_get(t, "Swarm", "NodeAddr", NULL));
	yajl_val ctl = vf_json_get(t, "Swarm", "ControlAvailable", NULL);

	if (state && (strcmp(state, "pending") == 0 || strcmp(state, "locked") == 0)) {
		/* joining, or an autolocked swarm waiting for `docker swarm unlock` */
		rc = vf_err_set(err, VF_EUNAVAIL,
		                "role = auto: dockerd at %s: swarm node state is '%s'",
		                c->docker_socket, state);
		goto out;
	}
	if (state == NULL || strcmp(state, "active") != 0 || nid == NULL || nid[0] == '\0') {
		rc = vf_err_set(err, VF_EINVAL,
		                "role = auto: dockerd at %s is not an active swarm node "
		                "(LocalNodeState '%s'): join a swarm or set role to manager or "
		                "worker",
		                c->docker_socket, state ? state : "?");
		goto out;
	}
	d->manager = ctl != NULL && YAJL_IS_TRUE(ctl);
	if (!c->node_id_set) {
		free(d->node_id);
		d->node_id = strdup(nid);
	}
	if (addr && addr[0]) {
		free(d->node_addr);
		d->node_addr = strdup(addr);
	}
	if (d->node_id == NULL || d->node_addr == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	vf_log(VF_LOG_INFO, "role = auto: swarm node %s (%s) is a %s", nid, d->node_addr,
	       d->manager ? "manager" : "worker");
	rc = VF_OK;
out:
	yajl_tree_free(t);
	vf_buf_free(&body);
	return rc;
}

/* ---- embedded etcd ---- */

/* Point the etcd group's endpoints at the embedded member. */
static int vfd_embedded_endpoints(struct vfd *d, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	config_setting_t *g = config_lookup(&c->cfg, "etcd"), *ep, *s;

	if (g == NULL)
		g = config_setting_add(config_root_setting(&c->cfg), "etcd", CONFIG_TYPE_GROUP);
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (config_setting_get_member(g, "endpoints"))
		config_setting_remove(g, "endpoints");
	ep = config_setting_add(g, "endpoints", CONFIG_TYPE_ARRAY);
	s = ep ? config_setting_add(ep, NULL, CONFIG_TYPE_STRING) : NULL;
	if (s == NULL || config_setting_set_string(s, c->embedded.client_url) != CONFIG_TRUE)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (strcmp(c->backend_name, "etcd") == 0)
		c->backend_group = g;
	return VF_OK;
}

/* ---- /healthz ---- */

/* Healthy: the lease is held and the store answers a read of our own liveness
 * key (through the metrics shim: vfile_store_up follows the answer). The key
 * missing while the lease is held means the store lost it: unhealthy too. */
static int vfd_health(void *arg, struct vf_err *err)
{
	struct vfd *d = arg;
	struct vf_kv_pair p = {0};
	int rc;

	if (!vf_metrics_gauge_get(VF_G_LEASE_HELD))
		return vf_err_set(err, VF_ELEASE, "node %s holds no lease (starting, or lost it)",
		                  d->node_id);
	rc = d->kv->ops->get(d->kv, d->node_key, &p, err);
	vf_kv_pair_clear(&p);
	if (rc == VF_ENOTFOUND)
		return vf_err_set(err, VF_ELEASE, "node %s: %s is missing from the store",
		                  d->node_id, d->node_key);
	if (rc != VF_OK)
		return vf_err_prefix(err, "store");
	return VF_OK;
}

/* ---- request handling ---- */

static void vfd_gen_mountpoint(struct vfd *d, yajl_gen g, const char *name, int mounted)
{
	char path[4096];

	vf_jgen_str(g, "Mountpoint");
	if (mounted) {
		snprintf(path, sizeof(path), "%s/%s", d->conf->mount_root, name);
		vf_jgen_str(g, path);
	} else {
		vf_jgen_str(g, "");
	}
}

static int vfd_mounted_here(struct vfd *d, const struct vf_volume *v)
{
	for (size_t i = 0; i < v->nclients; i++)
		if (strcmp(v->clients[i], d->node_id) == 0)
			return 1;
	return 0;
}

/* Emit a parsed JSON value as is. */
static void vfd_gen_tree(yajl_gen g, yajl_val v)
{
	if (v == NULL || YAJL_IS_NULL(v)) {
		yajl_gen_null(g);
	} else if (YAJL_IS_STRING(v)) {
		vf_jgen_str(g, v->u.string);
	} else if (YAJL_IS_INTEGER(v)) {
		vf_jgen_int(g, YAJL_GET_INTEGER(v));
	} else if (YAJL_IS_NUMBER(v)) {
		yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
	} else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
		yajl_gen_bool(g, YAJL_IS_TRUE(v));
	} else if (YAJL_IS_OBJECT(v)) {
		yajl_gen_map_open(g);
		for (size_t i = 0; i < v->u.object.len; i++) {
			vf_jgen_str(g, v->u.object.keys[i]);
			vfd_gen_tree(g, v->u.object.values[i]);
		}
		yajl_gen_map_close(g);
	} else if (YAJL_IS_ARRAY(v)) {
		yajl_gen_array_open(g);
		for (size_t i = 0; i < v->u.array.len; i++)
			vfd_gen_tree(g, v->u.array.values[i]);
		yajl_gen_array_close(g);
	} else {
		yajl_gen_null(g);
	}
}

/* The server that info names, when it is live: the volume is Mounted and
 * server/<vol> names the same node (the key ends with its manager's lease). A
 * Ready volume, or one whose manager died and is not yet served again, has none:
 * info keeps the last address, which nobody may use. */
static yajl_val vfd_live_server(const struct vf_volume *v, yajl_val info, const char **lease_r)
{
	yajl_val server = vf_json_get(info, "server", NULL);
	const char *node = vf_json_str(vf_json_get(server, "node", NULL));
	size_t n;

	*lease_r = NULL;
	if (!YAJL_IS_OBJECT(server) || node == NULL || v->server == NULL || v->state == NULL ||
	    strcmp(v->state, "Mounted") != 0)
		return NULL;
	n = strlen(node);
	if (strncmp(v->server, node, n) != 0 || v->server[n] != ' ')
		return NULL;
	*lease_r = v->server + n + 1;
	return server;
}

/* status: 0 none; 1 all (Get); 2 state and gref only (List: Docker keeps a List
 * entry's Status as the volume's status, e.g. docker volume ls --format
 * '{{.Status}}'; the Volume plugin protocol documents Status for Get only, and
 * a short one keeps List small) */
static void vfd_gen_volume(struct vfd *d, yajl_gen g, const struct vf_volume *v, int status)
{
	yajl_val info = NULL;

	yajl_gen_map_open(g);
	vf_jgen_str(g, "Name");
	vf_jgen_str(g, v->name);
	vfd_gen_mountpoint(d, g, v->name, vfd_mounted_here(d, v));
	if (status == 2) {
		vf_jgen_str(g, "Status");
		yajl_gen_map_open(g);
		vf_jgen_str(g, "state");
		vf_jgen_str(g, v->state ? v->state : "");
		vf_jgen_str(g, "gref");
		vf_jgen_int(g, v->gref);
		yajl_gen_map_close(g);
	} else if (status) {
		vf_jgen_str(g, "Status");
		yajl_gen_map_open(g);
		vf_jgen_str(g, "state");
		vf_jgen_str(g, v->state ? v->state : "");
		vf_jgen_str(g, "gref");
		vf_jgen_int(g, v->gref);
		vf_jgen_str(g, "clients");
		yajl_gen_array_open(g);
		for (size_t i = 0; i < v->nclients; i++)
			vf_jgen_str(g, v->clients[i]);
		yajl_gen_array_close(g);
		if (v->info_json &&
		    vf_json_parse(v->info_json, strlen(v->info_json), &info, NULL) == VF_OK) {
			const char *lease = NULL;
			yajl_val server = vfd_live_server(v, info, &lease);
			yajl_val opts = vf_json_get(info, "options", NULL);

			if (server) { /* {node, addr, port, lease}: where to connect now */
				vf_jgen_str(g, "server");
				yajl_gen_map_open(g);
				for (size_t i = 0; i < server->u.object.len; i++) {
					vf_jgen_str(g, server->u.object.keys[i]);
					vfd_gen_tree(g, server->u.object.values[i]);
				}
				vf_jgen_str(g, "lease");
				vf_jgen_str(g, lease);
				yajl_gen_map_close(g);
			}
			if (opts) {
				vf_jgen_str(g, "options");
				vfd_gen_tree(g, opts);
			}
		}
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
	yajl_tree_free(info);
}

static int vfd_status(struct vfd *d, yajl_gen g, struct vf_err *err)
{
	struct vf_volume *vols = NULL;
	struct vf_ctx_status st;
	size_t n = 0;

	if (vf_ctx_status(d->ctx, &st) != VF_OK)
		return vf_err_set(err, VF_EINVAL, "node %s: no context", d->node_id);

	vf_jgen_str(g, "Node");
	vf_jgen_str(g, d->node_id);
	vf_jgen_str(g, "Role");
	vf_jgen_str(g, d->manager ? "manager" : "worker");
	vf_jgen_str(g, "Backend");
	vf_jgen_str(g, d->conf->backend);
	vf_jgen_str(g, "Lease");
	vf_jgen_str(g, st.lease_id);
	vf_jgen_str(g, "Manager");
	yajl_gen_map_open(g);
	vf_jgen_str(g, "Watchers");
	vf_jgen_int(g, st.watchers);
	vf_jgen_str(g, "Servers");
	yajl_gen_array_open(g);
	if (d->manager && d->fs->running && vf_volume_list(d->ctx, &vols, &n, err) == VF_OK) {
		for (size_t i = 0; i < n; i++)
			if (d->fs->running(d->fs_arg, vols[i].name) == 1)
				vf_jgen_str(g, vols[i].name);
		for (size_t i = 0; i < n; i++)
			vf_volume_clear(&vols[i]);
		free(vols);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	if (d->etcd) {
		vf_jgen_str(g, "EmbeddedEtcd");
		yajl_gen_map_open(g);
		vf_jgen_str(g, "URL");
		vf_jgen_str(g, d->conf->embedded.client_url);
		vf_jgen_str(g, "Pid");
		vf_jgen_int(g, vfd_etcd_pid(d->etcd));
		vf_jgen_str(g, "Restarts");
		vf_jgen_int(g, vfd_etcd_restarts(d->etcd));
		yajl_gen_map_close(g);
	}
	return VF_OK;
}

static int vfd_kvdump(struct vfd *d, yajl_gen g, struct vf_err *err)
{
	struct vf_kv_list l = {0};
	int rc = d->kv->ops->list(d->kv, d->conf->prefix, &l, err);

	if (rc != VF_OK)
		return vf_err_prefix(err, "cannot list %s", d->conf->prefix);
	vf_jgen_str(g, "Keys");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < l.count; i++) {
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Key");
		vf_jgen_str(g, l.items[i].key);
		vf_jgen_str(g, "Value");
		vf_jgen_strn(g, l.items[i].value ? l.items[i].value : "", l.items[i].value_len);
		vf_jgen_str(g, "ModRev");
		vf_jgen_int(g, l.items[i].mod_rev);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	vf_kv_list_clear(&l);
	return VF_OK;
}

/* /VFile.Nodes: every host with a liveness key or a client key. */
static int vfd_nodes(struct vfd *d, yajl_gen g, struct vf_err *err)
{
	struct vf_node *nodes = NULL;
	size_t n = 0;
	int rc = vf_node_list(d->ctx, &nodes, &n, err);

	if (rc != VF_OK)
		return rc;
	vf_jgen_str(g, "Nodes");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++) {
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Node");
		vf_jgen_str(g, nodes[i].name);
		vf_jgen_str(g, "Role");
		vf_jgen_str(g, nodes[i].role ? nodes[i].role : "");
		vf_jgen_str(g, "Addr");
		vf_jgen_str(g, nodes[i].addr ? nodes[i].addr : "");
		vf_jgen_str(g, "Started");
		vf_jgen_int(g, nodes[i].started);
		vf_jgen_str(g, "Alive");
		yajl_gen_bool(g, nodes[i].alive);
		vf_jgen_str(g, "Volumes");
		yajl_gen_array_open(g);
		for (size_t k = 0; k < nodes[i].nvols; k++)
			vf_jgen_str(g, nodes[i].vols[k]);
		yajl_gen_array_close(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	vf_nodes_free(&nodes, n);
	return VF_OK;
}

/* /VFile.Evict: what was released is answered also when it failed part-way. */
static int vfd_evict(struct vfd *d, const struct vf_plugin_req *req, yajl_gen g, struct vf_err *err)
{
	struct vf_evicted *ev = NULL;
	size_t n = 0;
	int rc = vf_node_evict(d->ctx, req->node, req->name, req->force, &ev, &n, err);

	vf_jgen_str(g, "Node");
	vf_jgen_str(g, req->node);
	vf_jgen_str(g, "Released");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++) {
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Volume");
		vf_jgen_str(g, ev[i].vol ? ev[i].vol : "");
		vf_jgen_str(g, "Ids");
		yajl_gen_array_open(g);
		for (size_t k = 0; k < ev[i].nids; k++)
			vf_jgen_str(g, ev[i].ids[k]);
		yajl_gen_array_close(g);
		vf_jgen_str(g, "GrefBefore");
		vf_jgen_int(g, ev[i].gref_before);
		vf_jgen_str(g, "GrefAfter");
		vf_jgen_int(g, ev[i].gref_after);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	vf_log(rc == VF_OK ? VF_LOG_WARN : VF_LOG_ERR, "evict %s%s%s%s: %zu volume(s) released%s%s",
	       req->node, req->name ? " volume " : "", req->name ? req->name : "",
	       req->force ? " (forced)" : "", n, rc == VF_OK ? "" : "; ",
	       rc == VF_OK ? "" : err->msg);
	vf_evicted_free(&ev, n);
	return rc;
}

static int vfd_handle(void *arg, const struct vf_plugin_req *req, yajl_gen g, struct vf_err *err)
{
	struct vfd *d = arg;
	struct vf_volume v = {0};
	struct vf_volume *vols = NULL;
	char *path = NULL;
	size_t n = 0;
	int64_t t0 = vf_now_ms();
	int rc = VF_OK;

	if (!vfd_ready(d)) {
		/* Activate and Capabilities are answered by the server: Docker can take
		 * the plugin while the daemon waits for dockerd or the store */
		pthread_mutex_lock(&d->phase_mu);
		rc = vf_err_set(err, VF_EUNAVAIL, "%s", d->phase);
		pthread_mutex_unlock(&d->phase_mu);
		vf_log(VF_LOG_DEBUG, "%s: %s", vf_plugin_ep_path(req->ep) + 1, err->msg);
		return rc;
	}
	switch (req->ep) {
	case VF_EP_CREATE:
		rc = vf_volume_create(d->ctx, req->name, req->opts, req->nopts, err);
		break;
	case VF_EP_REMOVE:
		rc = vf_volume_remove(d->ctx, req->name, err);
		break;
	case VF_EP_MOUNT:
		rc = vf_volume_mount(d->ctx, req->name, req->id, &path, err);
		vf_metrics_observe_ms(VF_H_MOUNT, vf_now_ms() - t0);
		vf_metrics_inc(rc == VF_OK ? VF_M_MOUNTS : VF_M_MOUNT_ERRORS);
		if (rc == VF_OK) {
			vf_jgen_str(g, "Mountpoint");
			vf_jgen_str(g, path);
		}
		break;
	case VF_EP_UNMOUNT:
		rc = vf_volume_unmount(d->ctx, req->name, req->id, err);
		vf_metrics_observe_ms(VF_H_UNMOUNT, vf_now_ms() - t0);
		vf_metrics_inc(rc == VF_OK ? VF_M_UNMOUNTS : VF_M_UNMOUNT_ERRORS);
		break;
	case VF_EP_PATH:
		rc = vf_volume_get(d->ctx, req->name, &v, err);
		if (rc == VF_OK)
			vfd_gen_mountpoint(d, g, req->name, vfd_mounted_here(d, &v));
		break;
	case VF_EP_GET:
		rc = vf_volume_get(d->ctx, req->name, &v, err);
		if (rc == VF_OK) {
			vf_jgen_str(g, "Volume");
			vfd_gen_volume(d, g, &v, 1);
		}
		break;
	case VF_EP_LIST:
		rc = vf_volume_list(d->ctx, &vols, &n, err);
		if (rc == VF_OK) {
			vf_jgen_str(g, "Volumes");
			yajl_gen_array_open(g);
			for (size_t i = 0; i < n; i++)
				vfd_gen_volume(d, g, &vols[i], 2);
			yajl_gen_array_close(g);
		}
		break;
	case VF_EP_STATUS:
		rc = vfd_status(d, g, err);
		break;
	case VF_EP_KVDUMP:
		rc = vfd_kvdump(d, g, err);
		break;
	case VF_EP_NODES:
		rc = vfd_nodes(d, g, err);
		break;
	case VF_EP_EVICT:
		rc = vfd_evict(d, req, g, err);
		break;
	default:
		rc = vf_err_set(err, VF_EINVAL, "%s: not handled", vf_plugin_ep_path(req->ep));
	}
	if (req->name) {
		if (rc == VF_OK)
			vf_log(req->ep == VF_EP_GET || req->ep == VF_EP_PATH ? VF_LOG_DEBUG
			                                                     : VF_LOG_INFO,
			       "volume %s: %s%s%s: ok", req->name, vf_plugin_ep_path(req->ep) + 1,
			       req->id ? " id " : "", req->id ? req->id : "");
		else
			vf_log(VF_LOG_WARN, "volume %s: %s%s%s: %s", req->name,
			       vf_plugin_ep_path(req->ep) + 1, req->id ? " id " : "",
			       req->id ? req->id : "", err->msg);
	} else if (rc != VF_OK) {
		vf_log(VF_LOG_WARN, "%s: %s", vf_plugin_ep_path(req->ep) + 1, err->msg);
	}
	for (size_t i = 0; i < n; i++)
		vf_volume_clear(&vols[i]);
	free(vols);
	vf_volume_clear(&v);
	free(path);
	return rc;
}

/* ---- lifecycle ---- */

static void vfd_apply_log(const struct vf_conf *c)
{
	vf_log_set_target(c->log_target, "vfiled");
	vf_log_set_level(c->log_level);
}

/* SIGHUP: reopen logs and take the new log level/target; the rest needs a restart. */
static void vfd_reload(struct vfd *d)
{
	struct vf_conf *nc = NULL;
	struct vf_err err = {0};

	if (vf_conf_load(d->conf->file, &nc, &err) != VF_OK) {
		vf_log(VF_LOG_ERR, "reload: %s (keeping the running configuration)", err.msg);
		return;
	}
	vf_log_set_target("stderr", NULL); /* closes syslog: reopened below if wanted */
	vfd_apply_log(nc);
	d->conf->log_level = nc->log_level;
	vf_log(VF_LOG_INFO,
	       "reload: %s: log_level %d, log_target %s (other settings need a restart)", nc->file,
	       nc->log_level, nc->log_target);
	vf_conf_free(&nc);
}

/* Wait ms for a signal in set; returns the signal or 0. */
static int vfd_wait_signal(const sigset_t *set, int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	int sig = sigtimedwait(set, NULL, &ts);

	return sig > 0 ? sig : 0;
}

static int vfd_check_config(struct vfd *d)
{
	struct vf_err err = {0};
	int rc;

	rc = vf_backend_load(d->conf->backend, d->conf->backend_dir, &d->be, &err);
	if (rc == VF_OK)
		rc = vf_backend_open(d->be, d->conf->backend_group, &d->kv, &err);
	if (rc == VF_OK)
		rc = vf_fs_open(d->conf->fileserver_group, d->conf->state_dir, &d->fs, &d->fs_arg,
		                &err);
	if (rc != VF_OK) {
		fprintf(stderr, "vfiled: %s\n", err.msg);
		return 2;
	}
	printf("%s: ok (backend %s from %s, node %s, role %s%s%s)\n", d->conf->file,
	       d->conf->backend, vf_backend_path(d->be), d->node_id,
	       vf_conf_role_name(d->conf->role), d->conf->metrics_listen ? ", metrics on " : "",
	       d->conf->metrics_listen ? d->conf->metrics_listen : "");
	return 0;
}

static void vfd_teardown(struct vfd *d)
{
	if (d->srv) {
		int left = vf_plugin_server_drain(d->srv, d->conf->op_timeout_ms + 1000);

		if (left)
			vf_log(VF_LOG_WARN, "shutdown: %d request(s) still running after %d ms",
			       left, d->conf->op_timeout_ms + 1000);
		vf_plugin_server_stop(&d->srv);
	}
	vf_ctx_free(&d->ctx); /* stops watchers, revokes the lease (releases its locks) */
	vf_metrics_server_stop(&d->metrics);
	if (d->fs_arg)
		vf_fs_close(d->fs_arg);
	d->fs_arg = NULL;
	if (d->kv)
		d->kv->ops->close(d->kv); /* the metrics shim closes the backend's handle */
	d->kv = NULL;
	vf_backend_unload(&d->be);
	vfd_etcd_stop(&d->etcd);
}

static int vfd_mkdirs(const char *path, struct vf_err *err)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return vf_err_set(err, VF_EINVAL, "cannot create %s: %s", path, strerror(errno));
	return VF_OK;
}

/* Wait ms while starting: 1 if the daemon must stop (SIGTERM/SIGINT, kept in
 * d->stop_sig); SIGHUP reloads the log settings and the wait goes on. */
static int vfd_pause(struct vfd *d, int ms)
{
	int64_t until = vf_now_ms() + ms;

	for (int64_t left = ms; left > 0; left = until - vf_now_ms()) {
		int sig = vfd_wait_signal(d->sigs, (int)left);

		if (sig == SIGHUP) {
			vfd_reload(d);
		} else if (sig == SIGTERM || sig == SIGINT) {
			d->stop_sig = sig;
			return 1;
		}
	}
	return 0;
}

/* The listening socket systemd passed for plugin_socket (vfiled.socket), or 0. */
static int vfd_activated_fd(struct vfd *d)
{
#ifdef HAVE_LIBSYSTEMD
	int n = sd_listen_fds(1), fd = 0;

	if (n < 0)
		vf_log(VF_LOG_WARN, "socket activation: %s", strerror(-n));
	for (int i = 0; i < n; i++) {
		int cand = SD_LISTEN_FDS_START + i;

		if (fd == 0 &&
		    sd_is_socket_unix(cand, SOCK_STREAM, 1, d->conf->plugin_socket, 0) > 0)
			fd = cand;
		else
			close(cand);
	}
	if (n > 0 && fd == 0)
		vf_log(VF_LOG_ERR,
		       "socket activation: none of the %d socket(s) systemd passed listens on "
		       "plugin_socket %s (make ListenStream= of vfiled.socket match it): "
		       "binding %s",
		       n, d->conf->plugin_socket, d->conf->plugin_socket);
	return fd;
#else
	(void)d;
	return 0;
#endif
}

/* Serve the plugin socket at once; requests wait for d->ready. */
static int vfd_serve(struct vfd *d, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	struct vf_plugin_server_cfg sc = {0};
	int rc;

	vfd_phase(d, "vfiled is starting");
	sc.socket_path = c->plugin_socket;
	sc.listen_fd = vfd_activated_fd(d);
	sc.socket_group = c->socket_group;
	sc.socket_mode = c->socket_mode;
	sc.idle_timeout_s = 60;
	sc.known_opts = vf_volume_known_opts();
	sc.handler = vfd_handle;
	sc.arg = d;
	if ((rc = vf_plugin_server_start(&sc, &d->srv, err)) != VF_OK)
		return rc;
	vf_log(VF_LOG_INFO, "serving %s%s (volume requests wait for the store)", c->plugin_socket,
	       sc.listen_fd ? " (socket activation)" : "");
	vfd_notify("READY=1");
	return VF_OK;
}

/* role = auto: ask dockerd until it answers as a swarm node, up to docker_wait_s. */
static int vfd_wait_docker(struct vfd *d, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	int64_t t0 = vf_now_ms(), until = t0 + (int64_t)c->docker_wait_s * 1000, logged = 0;
	int rc, tries = 0;

	vfd_phase(d, "vfiled is starting: waiting for dockerd at %s (role = auto)",
	          c->docker_socket);
	for (;;) {
		rc = vfd_swarm_role(d, err);
		if (rc == VF_OK || (rc != VF_EUNAVAIL && rc != VF_EPROTO))
			return rc;
		int64_t now = vf_now_ms();
		if (now >= until)
			return vf_err_prefix(err, "dockerd not ready after %d s (docker_wait_s)",
			                     c->docker_wait_s);
		if (tries++ == 0 || now - logged >= 30000) {
			vf_log(VF_LOG_WARN, "%s: waiting for dockerd (up to %d s, %lld s so far)",
			       err->msg, c->docker_wait_s, (long long)((now - t0) / 1000));
			logged = now;
		}
		if (vfd_pause(d, tries < 10 ? 500 : 2000))
			return vf_err_set(err, VF_EINVAL, "stopped by a signal while starting");
	}
}

/* A manager's export_root must hold the cluster's marker (cluster_int.h); the first
 * manager writes it. Store errors are retried like the store wait. */
static int vfd_cluster(struct vfd *d, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	char root[4096], *id = NULL;
	const char *what = NULL;
	int keeps, rc;

	if (!vf_cluster_export_root(c->fileserver_group, root, sizeof(root), &keeps))
		return vf_err_set(err, VF_EINVAL, "fileserver.export_root is too long");
	if (!keeps) {
		vf_log(VF_LOG_DEBUG, "cluster marker: fileserver.driver none keeps no data");
		return VF_OK;
	}
	for (int tries = 0;; tries++) {
		rc = vf_cluster_check(d->kv, c->prefix, root, VF_CLUSTER_START, &id, &what, err);
		if (rc == VF_OK) {
			vf_log(VF_LOG_INFO, "cluster %s: export_root %s: marker %s", id, root,
			       what);
			free(id);
			return VF_OK;
		}
		if (rc != VF_EUNAVAIL && rc != VF_EUNCERTAIN) {
			d->refused = rc == VF_EINVAL;
			return rc;
		}
		vfd_phase(d, "vfiled is starting: store not reached yet (%s)", err->msg);
		if (tries == 0 || tries % 30 == 0)
			vf_log(VF_LOG_WARN, "cluster marker: %s (retrying)", err->msg);
		if (vfd_pause(d, tries < 10 ? 500 : 2000))
			return vf_err_set(err, VF_EINVAL, "stopped by a signal while starting");
	}
}

/* Open everything; retries the store until it answers or a signal. */
static int vfd_start(struct vfd *d, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	struct vf_ctx_cfg cc = {0};
	int rc;

	if (c->role == VF_ROLE_AUTO) {
		if ((rc = vfd_wait_docker(d, err)) != VF_OK)
			return rc;
	}
	if ((rc = vfd_mkdirs(c->state_dir, err)) != VF_OK ||
	    (rc = vfd_mkdirs(c->mount_root, err)) != VF_OK)
		return rc;
	if (c->embedded.enabled) {
		vfd_phase(d, "vfiled is starting: starting the embedded etcd");
		rc = vfd_etcd_start(&c->embedded, d->node_id, 30000, &d->etcd, err);
		if (rc == VF_OK)
			rc = vfd_embedded_endpoints(d, err);
		if (rc != VF_OK)
			return rc;
	}
	if ((rc = vf_backend_load(c->backend, c->backend_dir, &d->be, err)) != VF_OK ||
	    (rc = vf_backend_open(d->be, c->backend_group, &d->kv, err)) != VF_OK)
		return rc;
	if (c->metrics_listen) {
		struct vf_kv *mkv = NULL;

		if ((rc = vf_metrics_kv_wrap(d->kv, &mkv, err)) != VF_OK)
			return rc;
		d->kv = mkv;
		snprintf(d->node_key, sizeof(d->node_key), "%snode/%s", c->prefix, d->node_id);
		vf_metrics_health_set(vfd_health, d);
		if ((rc = vf_metrics_server_start(c->metrics_listen, &d->metrics, err)) != VF_OK)
			return rc;
		vf_log(VF_LOG_INFO, "metrics on http://%s/metrics, health on /healthz",
		       c->metrics_listen);
	}
	if ((rc = vf_fs_open(c->fileserver_group, c->state_dir, &d->fs, &d->fs_arg, err)) !=
	            VF_OK ||
	    (rc = vf_fs_set_proxy(d->fs_arg, c->plugin_socket, err)) != VF_OK)
		return rc;
	vf_fs_sweep(d->fs_arg); /* servers of an earlier run: their lease is gone */
	vfd_mfs_init(d);
	cc.node_id = d->node_id;
	cc.node_addr = d->node_addr;
	cc.prefix = c->prefix;
	cc.mount_root = c->mount_root;
	cc.manager = d->manager;
	cc.lease_ttl_s = c->lease_ttl_s;
	cc.op_timeout_ms = c->op_timeout_ms;
	cc.reconcile_ms = c->reconcile_ms;
	cc.evict_after_s = c->evict_after_s;
	cc.fs = &d->mfs;
	cc.fs_arg = d;
	vfd_phase(d, "vfiled is starting: store not reached yet");
	int64_t t0 = vf_now_ms(), logged = 0;
	for (int tries = 0;; tries++) {
		rc = vf_ctx_new(d->kv, &cc, &d->ctx, err);
		if (rc == VF_OK || (rc != VF_EUNAVAIL && rc != VF_EUNCERTAIN))
			break;
		int64_t now = vf_now_ms();
		vfd_phase(d, "vfiled is starting: store not reached yet (%s)", err->msg);
		if (tries == 0 || now - logged >= 30000) {
			vf_log(VF_LOG_WARN, "%s (retrying; waiting for the store %lld s so far)",
			       err->msg, (long long)((now - t0) / 1000));
			logged = now;
		}
		if (vfd_pause(d, tries < 10 ? 500 : 2000))
			return vf_err_set(err, VF_EINVAL, "stopped by a signal while starting");
	}
	if (rc != VF_OK)
		return rc;
	if (d->manager && (rc = vfd_cluster(d, err)) != VF_OK)
		return rc;
	if (d->manager && (rc = vf_ctx_start_manager(d->ctx, err)) != VF_OK)
		return rc;
	__atomic_store_n(&d->ready, 1, __ATOMIC_RELEASE);
	vfd_notify("STATUS=serving");
	vf_log(VF_LOG_INFO, "node %s (%s): %s, backend %s, serving %s", d->node_id,
	       d->node_addr[0] ? d->node_addr : "-", d->manager ? "manager" : "worker", c->backend,
	       c->plugin_socket);
	return VF_OK;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"check-config", no_argument, NULL, 'C'},
	        {"version", no_argument, NULL, 'V'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *file = VF_CONF_DEFAULT_FILE;
	struct vfd d = {.phase_mu = PTHREAD_MUTEX_INITIALIZER};
	struct vf_err err = {0};
	sigset_t sigs;
	char host[256];
	int check = 0, opt, status = 0;

	vf_malloc_tune();
	while ((opt = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case 'C':
			check = 1;
			break;
		case 'V':
			printf("vfiled (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			return 0;
		case 'h':
			vfd_usage(stdout);
			return 0;
		default:
			vfd_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		vfd_usage(stderr);
		return 2;
	}
	if (vf_conf_load(file, &d.conf, &err) != VF_OK ||
	    vf_conf_check_perms(d.conf, &err) != VF_OK) {
		fprintf(stderr, "vfiled: %s\n", err.msg);
		vf_conf_free(&d.conf);
		return 2;
	}
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	d.node_id = strdup(d.conf->node_id);
	d.node_addr = strdup(host);
	d.manager = d.conf->role == VF_ROLE_MANAGER;
	curl_global_init(CURL_GLOBAL_ALL);
	if (check) {
		status = vfd_check_config(&d);
		goto out;
	}
	vfd_apply_log(d.conf);
	/* Every thread inherits the mask; signals are taken with sigtimedwait here. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	d.sigs = &sigs;
	if (vfd_serve(&d, &err) != VF_OK || vfd_start(&d, &err) != VF_OK) {
		if (d.stop_sig) {
			vf_log(VF_LOG_INFO, "node %s: %s while starting: stopping", d.node_id,
			       d.stop_sig == SIGTERM ? "SIGTERM" : "SIGINT");
			vfd_notify("STOPPING=1");
			goto out;
		}
		vf_log(VF_LOG_ERR, "cannot start: %s", err.msg);
		status = d.refused ? 2 : 1; /* 2: the unit does not restart it */
		goto out;
	}
	for (;;) {
		int sig = vfd_wait_signal(&sigs, 1000);

		if (sig == SIGHUP) {
			vfd_reload(&d);
		} else if (sig == SIGTERM || sig == SIGINT) {
			vf_log(VF_LOG_INFO, "node %s: %s: stopping", d.node_id,
			       sig == SIGTERM ? "SIGTERM" : "SIGINT");
			vfd_notify("STOPPING=1");
			break;
		}
	}
out:
	vfd_teardown(&d);
	if (!check && status == 0)
		vf_log(VF_LOG_INFO, "node %s: stopped", d.node_id);
	free(d.node_id);
	free(d.node_addr);
	vf_conf_free(&d.conf);
	curl_global_cleanup();
	return status;
}
