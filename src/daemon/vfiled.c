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
#include <fcntl.h>
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
#include "embedded_int.h"
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
	/* role = auto: the role thread makes the volume-manager duties follow the
	 * swarm role (d->manager: the role applied, __atomic) */
	pthread_t rthr;
	int rthr_started, rstop; /* rstop under mmu, mcv wakes it */
	char role_why[512];      /* the last promotion refused: logged once */
	int ready;               /* __atomic: the store is reached, requests are served */
	pthread_mutex_t phase_mu;
	char phase[512]; /* what the daemon waits for while !ready: the Err answered */

	/* The embedded cluster (etcd.embedded): this host's member, run by the
	 * membership thread (one step every VFD_MEMBER_PERIOD_MS). mmu guards etcd
	 * and everything below. */
	pthread_mutex_t mmu;
	pthread_cond_t mcv;
	pthread_t mthr;
	int mthr_started, mstop;
	int live_manager; /* the role now (re-read from dockerd with role = auto) */
	int managers;     /* managers known (swarm, or the seeds listed) */
	char **seeds;     /* client URLs where members may answer */
	size_t nseeds;
	int bootstrapper;     /* may create the cluster */
	char *member_name;    /* etcd member name */
	char *ep_file;        /* <state_dir>/etcd-endpoints */
	struct vfe_list last; /* last member list read */
	int last_reachable;
	enum vfe_action last_action;
	char last_why[512];
	char last_members[1024];
	long changes; /* membership changes this host made */
};

#define VFD_MEMBER_PERIOD_MS 2000

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

/* The volume-manager role applied now (role = auto: it follows the swarm). */
static int vfd_is_manager(struct vfd *d)
{
	return __atomic_load_n(&d->manager, __ATOMIC_ACQUIRE);
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

static int vfd_mfs_mounted(void *arg, const char *vol, const char *mountpoint)
{
	struct vfd *d = arg;

	return d->fs->mounted(d->fs_arg, vol, mountpoint);
}

/* The driver's vtable with start/stop counted (NULL slots stay NULL). Every slot
 * the driver has is forwarded: without mounted, the volume layer could not read
 * the system's mount table and would trust its memory, empty after a restart. */
static void vfd_mfs_init(struct vfd *d)
{
	d->mfs.start = d->fs->start ? vfd_mfs_start : NULL;
	d->mfs.stop = d->fs->stop ? vfd_mfs_stop : NULL;
	d->mfs.running = d->fs->running ? vfd_mfs_running : NULL;
	d->mfs.mount = d->fs->mount ? vfd_mfs_mount : NULL;
	d->mfs.unmount = d->fs->unmount ? vfd_mfs_unmount : NULL;
	d->mfs.mounted = d->fs->mounted ? vfd_mfs_mounted : NULL;
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

static char *vfd_url_with_host(const char *url, const char *host);

static int vfd_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The swarm's managers: their count, and (without embedded_seeds in the config)
 * the seeds: each manager's address with this host's client URL's scheme and port. */
static void vfd_swarm_managers(struct vfd *d, yajl_val info)
{
	struct vf_conf_embedded *e = &d->conf->embedded;
	yajl_val rm = vf_json_get(info, "Swarm", "RemoteManagers", NULL);
	int64_t n = 0;

	if (vf_json_int64(vf_json_get(info, "Swarm", "Managers", NULL), &n) == VF_OK && n > 0) {
		pthread_mutex_lock(&d->mmu);
		d->managers = (int)n;
		pthread_mutex_unlock(&d->mmu);
	}
	if (!e->enabled || e->nseeds > 0 || rm == NULL || !YAJL_IS_ARRAY(rm) ||
	    rm->u.array.len == 0)
		return;
	char **v = calloc(rm->u.array.len, sizeof(char *));
	size_t k = 0;

	if (v == NULL)
		return;
	for (size_t i = 0; i < rm->u.array.len; i++) {
		const char *a = vf_json_str(vf_json_get(rm->u.array.values[i], "Addr", NULL));
		char host[256];

		if (a == NULL || a[0] == '\0')
			continue;
		snprintf(host, sizeof(host), "%s", a);
		char *colon = strrchr(host, ':');

		if (colon && strchr(host, ']') < colon)
			*colon = '\0';
		if ((v[k] = vfd_url_with_host(e->client_url, host)) != NULL)
			k++;
	}
	qsort(v, k, sizeof(char *), vfd_cmp_str);
	pthread_mutex_lock(&d->mmu);
	vf_strv_free(d->seeds, d->nseeds);
	d->seeds = v;
	d->nseeds = k;
	d->bootstrapper = k > 0 && strcmp(v[0], e->client_url) == 0;
	pthread_mutex_unlock(&d->mmu);
}

/* GET /info on dockerd's socket: manager iff an active swarm node with control. */
static int vfd_swarm_role(struct vfd *d, int live, struct vf_err *err)
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
	vfd_swarm_managers(d, t);
	if (live) {
		/* the membership thread: only the role and the managers change */
		pthread_mutex_lock(&d->mmu);
		if (d->live_manager != (ctl != NULL && YAJL_IS_TRUE(ctl)))
			vf_log(VF_LOG_INFO,
			       "role = auto: the swarm made this node a %s: the volume manager "
			       "duties (watchers, reconciler, file servers)%s follow",
			       ctl != NULL && YAJL_IS_TRUE(ctl) ? "manager" : "worker",
			       c->embedded.enabled ? " and the embedded store's membership" : "");
		d->live_manager = ctl != NULL && YAJL_IS_TRUE(ctl);
		pthread_mutex_unlock(&d->mmu);
		rc = VF_OK;
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

/* url with its host replaced: ("http://127.0.0.1:2379", "10.0.0.2") ->
 * "http://10.0.0.2:2379" (malloc'ed; NULL on a URL without "://"). */
static char *vfd_url_with_host(const char *url, const char *host)
{
	const char *h = strstr(url, "://"), *rest;
	char *out = NULL;

	if (h == NULL)
		return NULL;
	h += 3;
	if (*h == '[')
		rest = strchr(h, ']') ? strchr(h, ']') + 1 : h + strlen(h);
	else
		rest = h + strcspn(h, ":/");
	if (asprintf(&out, "%.*s%s%s", (int)(h - url), url, host, rest) < 0)
		return NULL;
	return out;
}

/* Point the etcd group at the cluster: endpoints = the seeds (and this host's
 * member on a manager), endpoints_file = <state_dir>/etcd-endpoints, which the
 * membership thread keeps up to date with the voting members' client URLs. */
static int vfd_embedded_endpoints(struct vfd *d, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	config_setting_t *g = config_lookup(&c->cfg, "etcd"), *ep, *s;
	size_t added = 0;

	if (g == NULL)
		g = config_setting_add(config_root_setting(&c->cfg), "etcd", CONFIG_TYPE_GROUP);
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (config_setting_get_member(g, "endpoints"))
		config_setting_remove(g, "endpoints");
	if (config_setting_get_member(g, "endpoints_file"))
		config_setting_remove(g, "endpoints_file");
	ep = config_setting_add(g, "endpoints", CONFIG_TYPE_ARRAY);
	if (ep == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (d->manager || d->nseeds == 0) {
		s = config_setting_add(ep, NULL, CONFIG_TYPE_STRING);
		if (s == NULL ||
		    config_setting_set_string(s, c->embedded.client_url) != CONFIG_TRUE)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		added++;
	}
	for (size_t i = 0; i < d->nseeds; i++) {
		if (d->manager && strcmp(d->seeds[i], c->embedded.client_url) == 0)
			continue;
		s = config_setting_add(ep, NULL, CONFIG_TYPE_STRING);
		if (s == NULL || config_setting_set_string(s, d->seeds[i]) != CONFIG_TRUE)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		added++;
	}
	s = config_setting_add(g, "endpoints_file", CONFIG_TYPE_STRING);
	if (s == NULL || config_setting_set_string(s, d->ep_file) != CONFIG_TRUE)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (strcmp(c->backend_name, "etcd") == 0)
		c->backend_group = g;
	(void)added;
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

/* ---- the embedded cluster: membership ---- */

static void vfd_member_tls(struct vfd *d, struct vfe_tls *t)
{
	t->cacert = d->conf->embedded.cacert;
	t->cert = d->conf->embedded.cert;
	t->key = d->conf->embedded.key;
}

/* Rewrite the endpoints file (atomically) when its content changes. */
static void vfd_write_endpoints(struct vfd *d, const struct vfe_list *l)
{
	struct vf_buf b = {0};
	char tmp[4200], old[8192];
	FILE *f;
	size_t n = 0;
	int fd;

	if (vfe_list_endpoints(l, &b) != VF_OK || b.data == NULL) {
		vf_buf_free(&b);
		return;
	}
	if ((f = fopen(d->ep_file, "re")) != NULL) {
		n = fread(old, 1, sizeof(old) - 1, f);
		fclose(f);
		old[n] = '\0';
		if (n == b.len && memcmp(old, b.data, n) == 0) {
			vf_buf_free(&b);
			return;
		}
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->ep_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len && fsync(fd) == 0 &&
	    close(fd) == 0 && rename(tmp, d->ep_file) == 0) {
		for (char *p = b.data; *p; p++)
			if (*p == '\n')
				*p = ' ';
		vf_log(VF_LOG_INFO, "embedded cluster: endpoints now %s(%s)", b.data, d->ep_file);
	} else {
		vf_log(VF_LOG_WARN, "embedded cluster: cannot write %s: %s", d->ep_file,
		       strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	vf_buf_free(&b);
}

/* --initial-cluster for a member joining list: every member's name=peer URL (the
 * member not started yet, this one, under this host's name). */
static char *vfd_initial_cluster(struct vfd *d, const struct vfe_list *l)
{
	struct vf_buf b = {0};

	for (size_t i = 0; i < l->n; i++) {
		const struct vfe_member *m = &l->m[i];
		int self = vfe_list_find(l, NULL, d->conf->embedded.peer_url) == m;

		if (m->npeer == 0 || (!self && m->name[0] == '\0'))
			continue;
		for (size_t k = 0; k < m->npeer; k++)
			vf_buf_printf(&b, "%s%s=%s", b.len ? "," : "",
			              self ? d->member_name : m->name, m->peer_urls[k]);
	}
	return b.data;
}

/* Start the local member (mmu not held: this takes seconds). */
static int vfd_member_start(struct vfd *d, const struct vfe_list *l, int existing,
                            struct vf_err *err)
{
	struct vfd_etcd *ee = NULL;
	char *ic = l ? vfd_initial_cluster(d, l) : NULL;
	int rc;

	rc = vfd_etcd_start(&d->conf->embedded, d->member_name, ic, existing, 30000, &ee, err);
	free(ic);
	if (rc == VF_OK) {
		pthread_mutex_lock(&d->mmu);
		d->etcd = ee;
		pthread_mutex_unlock(&d->mmu);
	}
	return rc;
}

static void vfd_member_stop(struct vfd *d)
{
	struct vfd_etcd *ee;

	pthread_mutex_lock(&d->mmu);
	ee = d->etcd;
	d->etcd = NULL;
	pthread_mutex_unlock(&d->mmu);
	vfd_etcd_stop(&ee);
}

static void vfd_member_changed(struct vfd *d, const char *what)
{
	pthread_mutex_lock(&d->mmu);
	d->changes++;
	pthread_mutex_unlock(&d->mmu);
	vf_metrics_inc(VF_M_MEMBER_CHANGES);
	vf_log(VF_LOG_INFO, "embedded cluster: member %s: %s", d->member_name, what);
}

/* Read the member list from any member that answers (the last list's voters,
 * the seeds, this host's member) and probe every member's /health. */
static int vfd_member_read(struct vfd *d, struct vfe_list *list, struct vf_err *err)
{
	struct vfe_client *cl = NULL;
	struct vfe_tls tls;
	char **urls = NULL;
	size_t n = 0, cap;
	int rc;

	vfd_member_tls(d, &tls);
	pthread_mutex_lock(&d->mmu);
	cap = d->nseeds + 1;
	for (size_t i = 0; i < d->last.n; i++)
		cap += d->last.m[i].nclient;
	urls = calloc(cap, sizeof(char *));
	if (urls && d->etcd)
		urls[n++] = strdup(d->conf->embedded.client_url);
	for (size_t i = 0; urls && i < d->last.n; i++)
		for (size_t k = 0; !d->last.m[i].learner && k < d->last.m[i].nclient; k++)
			urls[n++] = strdup(d->last.m[i].client_urls[k]);
	for (size_t i = 0; urls && i < d->nseeds; i++)
		urls[n++] = strdup(d->seeds[i]);
	pthread_mutex_unlock(&d->mmu);
	/* drop duplicates and NULLs */
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		int dup = urls[i] == NULL;

		for (size_t j = 0; j < k && !dup; j++)
			dup = strcmp(urls[j], urls[i]) == 0;
		if (dup)
			free(urls[i]);
		else
			urls[k++] = urls[i];
	}
	n = k;
	if (n == 0) {
		free(urls);
		return vf_err_set(err, VF_EUNAVAIL, "no member to ask (no seeds, no local member)");
	}
	rc = vfe_client_new(urls, n, &tls, 2000, &cl, err);
	if (rc == VF_OK)
		rc = vfe_member_list(cl, list, err);
	if (rc == VF_OK)
		vfe_member_probe(list, &tls, 1000);
	vfe_client_free(&cl);
	vf_strv_free(urls, n);
	return rc;
}

/* A client over the voting members of list (for add/promote/remove). */
static int vfd_member_client(struct vfd *d, const struct vfe_list *l, int skip_self,
                             struct vfe_client **cl_r, struct vf_err *err)
{
	struct vfe_tls tls;
	char **urls = NULL;
	size_t n = 0, cap = 0;
	int rc;

	vfd_member_tls(d, &tls);
	for (size_t i = 0; i < l->n; i++)
		cap += l->m[i].nclient;
	urls = calloc(cap + 1, sizeof(char *));
	if (urls == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	/* the healthy voters first */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < l->n; i++) {
			const struct vfe_member *m = &l->m[i];

			if (m->learner || m->healthy != !pass ||
			    (skip_self &&
			     vfe_list_find(l, d->member_name, d->conf->embedded.peer_url) == m))
				continue;
			for (size_t k = 0; k < m->nclient; k++)
				urls[n++] = m->client_urls[k];
		}
	if (n == 0) {
		free(urls);
		return vf_err_set(err, VF_EUNAVAIL, "no voting member to ask");
	}
	rc = vfe_client_new(urls, n, &tls, 5000, cl_r, err);
	free(urls);
	return rc;
}

/* One membership step: read the list, decide, act (at most one change).
 * Returns 1 when it acted (the next step should come soon: a learner to
 * promote, a removed member to re-add). */
static int vfd_member_step(struct vfd *d)
{
	struct vf_conf_embedded *e = &d->conf->embedded;
	struct vfe_list list = {0}, after = {0};
	struct vfe_input in = {0};
	struct vfe_decision dec;
	struct vfe_client *cl = NULL;
	struct vf_err err = {0};
	int reachable;
	uint64_t id = 0;

	reachable = vfd_member_read(d, &list, &err) == VF_OK;
	pthread_mutex_lock(&d->mmu);
	in.manager = d->live_manager;
	in.running = d->etcd != NULL;
	in.bootstrapper = d->bootstrapper;
	in.managers = d->managers > 0 ? d->managers : 1;
	pthread_mutex_unlock(&d->mmu);
	in.have_data = vfd_etcd_has_data(e->data_dir);
	in.reachable = reachable;
	in.max_members = e->max_members;
	in.name = d->member_name;
	in.peer_url = e->peer_url;
	in.list = &list;
	vfe_decide(&in, &dec);

	switch (dec.action) {
	case VFE_BOOTSTRAP:
		vf_log(VF_LOG_INFO, "embedded cluster: %s", dec.why);
		if (vfd_member_start(d, NULL, 0, &err) != VF_OK) {
			snprintf(dec.why, sizeof(dec.why), "bootstrap failed: %s", err.msg);
			vf_log(VF_LOG_ERR, "embedded cluster: %s", dec.why);
		} else {
			vfd_member_changed(d, "bootstrapped a new cluster");
		}
		break;
	case VFE_START:
	case VFE_START_JOINING:
		vf_log(VF_LOG_INFO, "embedded cluster: %s", dec.why);
		if (vfd_member_start(d, reachable ? &list : NULL, dec.action == VFE_START_JOINING,
		                     &err) != VF_OK) {
			snprintf(dec.why, sizeof(dec.why), "start failed: %s", err.msg);
			vf_log(VF_LOG_ERR, "embedded cluster: %s", dec.why);
		}
		break;
	case VFE_JOIN:
		vf_log(VF_LOG_INFO, "embedded cluster: %s", dec.why);
		if (vfd_member_client(d, &list, 0, &cl, &err) != VF_OK ||
		    vfe_member_add_learner(cl, e->peer_url, &id, &after, &err) != VF_OK) {
			snprintf(dec.why, sizeof(dec.why), "join: %s", err.msg);
			vf_log(VF_LOG_WARN, "embedded cluster: %s", dec.why);
			break;
		}
		vfd_member_changed(d, "added as a learner");
		if (vfd_member_start(d, &after, 1, &err) != VF_OK) {
			snprintf(dec.why, sizeof(dec.why), "join: start failed: %s", err.msg);
			vf_log(VF_LOG_ERR, "embedded cluster: %s", dec.why);
		}
		break;
	case VFE_PROMOTE: {
		const struct vfe_member *self = vfe_list_find(&list, d->member_name, e->peer_url);

		if (self == NULL || vfd_member_client(d, &list, 1, &cl, &err) != VF_OK ||
		    vfe_member_promote(cl, self->id, &err) != VF_OK) {
			snprintf(dec.why, sizeof(dec.why), "promote: %s (retrying)", err.msg);
			vf_log(VF_LOG_INFO, "embedded cluster: %s", dec.why);
			break;
		}
		vfd_member_changed(d, "promoted to a voting member");
		break;
	}
	case VFE_REJOIN:
	case VFE_LEAVE:
		vf_log(VF_LOG_INFO, "embedded cluster: %s", dec.why);
		if (vfd_member_client(d, &list, dec.action == VFE_LEAVE, &cl, &err) != VF_OK ||
		    vfe_member_remove(cl, dec.remove_id, &err) != VF_OK) {
			snprintf(dec.why, sizeof(dec.why), "%s: %s",
			         dec.action == VFE_LEAVE ? "leave" : "rejoin", err.msg);
			vf_log(VF_LOG_WARN, "embedded cluster: %s", dec.why);
			break;
		}
		vfd_member_changed(d, dec.action == VFE_LEAVE ? "removed (left the cluster)"
		                                              : "removed (to be re-added)");
		if (dec.action == VFE_LEAVE) {
			vfd_member_stop(d);
			if (vfd_etcd_wipe(e->data_dir, &err) != VF_OK)
				vf_log(VF_LOG_ERR, "embedded cluster: %s", err.msg);
		}
		break;
	case VFE_WIPE:
		vf_log(VF_LOG_INFO, "embedded cluster: %s", dec.why);
		vfd_member_stop(d);
		if (vfd_etcd_wipe(e->data_dir, &err) != VF_OK)
			vf_log(VF_LOG_ERR, "embedded cluster: %s", err.msg);
		break;
	case VFE_REFUSED:
	case VFE_WAIT:
	case VFE_STANDBY:
	case VFE_NONE:
		break;
	}
	vfe_client_free(&cl);
	vfe_list_clear(&after);
	if (reachable)
		vfd_write_endpoints(d, &list);

	char desc[1024];

	vfe_list_describe(&list, desc, sizeof(desc));
	int voters = 0, learners = 0, healthy = 0;

	for (size_t i = 0; i < list.n; i++) {
		voters += !list.m[i].learner;
		learners += list.m[i].learner;
		healthy += list.m[i].healthy;
	}
	pthread_mutex_lock(&d->mmu);
	if (reachable && strcmp(desc, d->last_members) != 0)
		vf_log(VF_LOG_INFO, "embedded cluster: members: %s", desc);
	if ((dec.action == VFE_REFUSED || dec.action == VFE_WAIT || dec.action == VFE_STANDBY) &&
	    (dec.action != d->last_action || strcmp(dec.why, d->last_why) != 0))
		vf_log(dec.action == VFE_REFUSED ? VF_LOG_WARN : VF_LOG_INFO,
		       "embedded cluster: %s", dec.why);
	d->last_action = dec.action;
	snprintf(d->last_why, sizeof(d->last_why), "%s", dec.why);
	d->last_reachable = reachable;
	if (reachable) {
		snprintf(d->last_members, sizeof(d->last_members), "%s", desc);
		vfe_list_clear(&d->last);
		d->last = list;
		memset(&list, 0, sizeof(list));
		vf_metrics_gauge_set(VF_G_ETCD_MEMBERS, voters + learners);
		vf_metrics_gauge_set(VF_G_ETCD_VOTERS, voters);
		vf_metrics_gauge_set(VF_G_ETCD_LEARNERS, learners);
		vf_metrics_gauge_set(VF_G_ETCD_HEALTHY, healthy);
	}
	vf_metrics_gauge_set(VF_G_ETCD_LOCAL_MEMBER, d->etcd != NULL);
	pthread_mutex_unlock(&d->mmu);
	vfe_list_clear(&list);
	return dec.action != VFE_NONE && dec.action != VFE_WAIT && dec.action != VFE_STANDBY &&
	       dec.action != VFE_REFUSED;
}

/* Wait ms on the membership condition unless stopping; returns mstop. */
static int vfd_member_pause(struct vfd *d, int ms)
{
	int64_t until = vf_now_ms() + ms;
	int stop;

	pthread_mutex_lock(&d->mmu);
	while (!d->mstop)
		if (vf_cond_wait_until(&d->mcv, &d->mmu, until) == ETIMEDOUT)
			break;
	stop = d->mstop;
	pthread_mutex_unlock(&d->mmu);
	return stop;
}

static int vfd_swarm_role(struct vfd *d, int live, struct vf_err *err);
static int vfd_wait_signal(const sigset_t *set, int ms);

/* Every VFD_MEMBER_PERIOD_MS: re-read the role (role = auto), one step. */
static void *vfd_member_thread(void *arg)
{
	struct vfd *d = arg;

	int acted = 0;

	while (!vfd_member_pause(d, acted ? VFD_MEMBER_PERIOD_MS / 4 : VFD_MEMBER_PERIOD_MS)) {
		if (d->conf->role == VF_ROLE_AUTO) {
			struct vf_err err = {0};

			if (vfd_swarm_role(d, 1, &err) != VF_OK)
				vf_log(VF_LOG_DEBUG, "embedded cluster: %s", err.msg);
		}
		acted = vfd_member_step(d);
	}
	return NULL;
}

/* Set up the embedded cluster and take the first steps until this host's part is
 * settled (member running, standby, or a worker that found the members), within
 * bound_ms; then the membership thread goes on. */
static int vfd_cluster_start(struct vfd *d, const sigset_t *sigs, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	struct vf_conf_embedded *e = &c->embedded;
	int64_t until;
	int bound_ms = c->op_timeout_ms > 60000 ? c->op_timeout_ms : 60000;

	if (c->role == VF_ROLE_AUTO && !e->client_url_set && d->node_addr[0]) {
		char *u = vfd_url_with_host(e->client_url, d->node_addr);

		if (u) {
			free(e->client_url);
			e->client_url = u;
		}
	}
	if (c->role == VF_ROLE_AUTO && !e->peer_url_set && d->node_addr[0]) {
		char *u = vfd_url_with_host(e->peer_url, d->node_addr);

		if (u) {
			free(e->peer_url);
			e->peer_url = u;
		}
	}
	d->member_name = vfd_etcd_member_name(e->name ? e->name : d->node_id);
	if (asprintf(&d->ep_file, "%s/etcd-endpoints", c->state_dir) < 0)
		d->ep_file = NULL;
	if (d->member_name == NULL || d->ep_file == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	pthread_mutex_lock(&d->mmu);
	if (e->nseeds > 0) {
		vf_strv_free(d->seeds, d->nseeds);
		d->seeds = calloc(e->nseeds, sizeof(char *));
		d->nseeds = 0;
		for (size_t i = 0; d->seeds && i < e->nseeds; i++)
			if ((d->seeds[d->nseeds] = strdup(e->seeds[i])) != NULL)
				d->nseeds++;
		d->bootstrapper = strcmp(e->seeds[0], e->client_url) == 0;
		if (c->role != VF_ROLE_AUTO)
			d->managers = (int)e->nseeds;
	} else if (d->nseeds > 0) {
		/* seeds from the swarm: compare with the client URL derived above */
		d->bootstrapper = strcmp(d->seeds[0], e->client_url) == 0;
	} else {
		d->bootstrapper = 1; /* alone: the single-member setup */
		if (c->role != VF_ROLE_AUTO)
			d->managers = 1;
	}
	d->live_manager = d->manager;
	pthread_mutex_unlock(&d->mmu);
	vf_log(VF_LOG_INFO,
	       "embedded cluster: member %s (client %s, peer %s), %zu seed(s), %d manager(s)%s",
	       d->member_name, e->client_url, e->peer_url, d->nseeds, d->managers,
	       d->bootstrapper ? ", bootstrapper" : "");
	until = vf_now_ms() + bound_ms;
	for (;;) {
		(void)vfd_member_step(d);
		pthread_mutex_lock(&d->mmu);
		enum vfe_action a = d->last_action;
		/* A manager: its member runs as a voter (a learner refuses client
		 * requests: wait for its promotion), or it stands by, or it waits on a
		 * cluster that answers (it works as a client meanwhile). A worker: the
		 * cluster answered (the endpoints file is written). */
		int changing = a == VFE_BOOTSTRAP || a == VFE_START || a == VFE_START_JOINING ||
		               a == VFE_JOIN || a == VFE_PROMOTE || a == VFE_REJOIN ||
		               a == VFE_WIPE;
		int settled = d->manager ? (d->last_reachable && !changing &&
		                            (d->etcd != NULL || a == VFE_STANDBY || a == VFE_WAIT))
		                         : d->last_reachable;
		pthread_mutex_unlock(&d->mmu);
		if (settled)
			break;
		if (vf_now_ms() >= until) {
			vf_log(VF_LOG_WARN, "embedded cluster: not settled within %d ms: %s",
			       bound_ms, d->last_why);
			break;
		}
		if (vfd_wait_signal(sigs, VFD_MEMBER_PERIOD_MS / 4))
			return vf_err_set(err, VF_EINVAL, "stopped by a signal while starting");
	}
	if (pthread_create(&d->mthr, NULL, vfd_member_thread, d) == 0)
		d->mthr_started = 1;
	else
		return vf_err_set(err, VF_ENOMEM, "cannot start the membership thread");
	return vfd_embedded_endpoints(d, err);
}

static void vfd_cluster_stop(struct vfd *d)
{
	if (d->mthr_started) {
		pthread_mutex_lock(&d->mmu);
		d->mstop = 1;
		pthread_cond_broadcast(&d->mcv);
		pthread_mutex_unlock(&d->mmu);
		pthread_join(d->mthr, NULL);
		d->mthr_started = 0;
	}
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
					vf_jgen_tree(g, server->u.object.values[i]);
				}
				vf_jgen_str(g, "lease");
				vf_jgen_str(g, lease);
				yajl_gen_map_close(g);
			}
			if (opts) {
				vf_jgen_str(g, "options");
				vf_jgen_tree(g, opts);
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
	vf_jgen_str(g, vfd_is_manager(d) ? "manager" : "worker");
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
	if (vfd_is_manager(d) && d->fs->running &&
	    vf_volume_list(d->ctx, &vols, &n, err) == VF_OK) {
		for (size_t i = 0; i < n; i++)
			if (d->fs->running(d->fs_arg, vols[i].name) == 1)
				vf_jgen_str(g, vols[i].name);
		for (size_t i = 0; i < n; i++)
			vf_volume_clear(&vols[i]);
		free(vols);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	if (d->conf->embedded.enabled) {
		pthread_mutex_lock(&d->mmu);
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
		vf_jgen_str(g, "Membership");
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Member");
		vf_jgen_str(g, d->member_name ? d->member_name : "");
		vf_jgen_str(g, "SwarmRole");
		vf_jgen_str(g, d->live_manager ? "manager" : "worker");
		vf_jgen_str(g, "Managers");
		vf_jgen_int(g, d->managers);
		vf_jgen_str(g, "State");
		vf_jgen_str(g, d->etcd && d->last_action == VFE_NONE ? "member"
		               : d->last_action == VFE_NONE && !d->live_manager
		                       ? "client"
		                       : vfe_action_name(d->last_action));
		vf_jgen_str(g, "Why");
		vf_jgen_str(g, d->last_why);
		vf_jgen_str(g, "Changes");
		vf_jgen_int(g, d->changes);
		vf_jgen_str(g, "Members");
		yajl_gen_array_open(g);
		for (size_t i = 0; i < d->last.n; i++) {
			const struct vfe_member *m = &d->last.m[i];
			char id[32];

			yajl_gen_map_open(g);
			snprintf(id, sizeof(id), "%llx", (unsigned long long)m->id);
			vf_jgen_str(g, "ID");
			vf_jgen_str(g, id);
			vf_jgen_str(g, "Name");
			vf_jgen_str(g, m->name);
			vf_jgen_str(g, "ClientURL");
			vf_jgen_str(g, m->nclient ? m->client_urls[0] : "");
			vf_jgen_str(g, "Learner");
			yajl_gen_bool(g, m->learner);
			vf_jgen_str(g, "Healthy");
			yajl_gen_bool(g, m->healthy);
			yajl_gen_map_close(g);
		}
		yajl_gen_array_close(g);
		vf_jgen_str(g, "Reachable");
		yajl_gen_bool(g, d->last_reachable);
		yajl_gen_map_close(g);
		pthread_mutex_unlock(&d->mmu);
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

static void vfd_role_stop(struct vfd *d);

static void vfd_teardown(struct vfd *d)
{
	vfd_role_stop(d); /* no promotion or demotion while stopping */
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
	vfd_cluster_stop(d);
	vfd_etcd_stop(&d->etcd);
	vfe_list_clear(&d->last);
	vf_strv_free(d->seeds, d->nseeds);
	d->seeds = NULL;
	d->nseeds = 0;
	free(d->member_name);
	free(d->ep_file);
	d->member_name = d->ep_file = NULL;
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
		rc = vfd_swarm_role(d, 0, err);
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
 * manager writes it. Store errors are retried like the store wait, unless once
 * (a promotion at runtime: the role thread tries again at its next period). */
static int vfd_cluster(struct vfd *d, int once, struct vf_err *err)
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
		if (once)
			return rc;
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

/* ---- role = auto: the volume-manager duties follow the swarm role ---- */

/* One step: start the manager side on a promotion (export_root's marker first:
 * refused, this host stays a worker and says why once), stop it on a demotion
 * (its servers are served again by another manager; this host's mounts stay). */
static void vfd_role_apply(struct vfd *d, int want)
{
	struct vf_err err = {0};
	int rc;

	if (want == vfd_is_manager(d))
		return;
	if (!want) {
		vf_log(VF_LOG_WARN,
		       "role = auto: node %s demoted to a swarm worker: stopping the volume "
		       "manager duties and this node's file servers (another manager takes "
		       "them over)",
		       d->node_id);
		vf_ctx_stop_manager(d->ctx);
		__atomic_store_n(&d->manager, 0, __ATOMIC_RELEASE);
		d->role_why[0] = '\0';
		vf_log(VF_LOG_INFO, "role = auto: node %s is a worker", d->node_id);
		return;
	}
	if ((rc = vfd_cluster(d, 1, &err)) == VF_OK)
		rc = vf_ctx_start_manager(d->ctx, &err);
	if (rc != VF_OK) {
		if (strcmp(err.msg, d->role_why) != 0)
			vf_log(rc == VF_EUNAVAIL || rc == VF_EUNCERTAIN ? VF_LOG_WARN : VF_LOG_ERR,
			       "role = auto: node %s promoted to a swarm manager, but it cannot "
			       "take the volume manager duties: %s: it stays a worker (tried "
			       "again every %d ms)",
			       d->node_id, err.msg, VFD_MEMBER_PERIOD_MS);
		snprintf(d->role_why, sizeof(d->role_why), "%s", err.msg);
		return;
	}
	__atomic_store_n(&d->manager, 1, __ATOMIC_RELEASE);
	d->role_why[0] = '\0';
	vf_log(VF_LOG_INFO,
	       "role = auto: node %s promoted to a swarm manager: volume manager duties "
	       "started",
	       d->node_id);
}

/* Every VFD_MEMBER_PERIOD_MS: the swarm role (read by the membership thread when
 * the embedded cluster runs, else asked here), then vfd_role_apply. */
static void *vfd_role_thread(void *arg)
{
	struct vfd *d = arg;

	for (;;) {
		int64_t until = vf_now_ms() + VFD_MEMBER_PERIOD_MS;
		int want = -1;

		/* mcv is a vf_cond_init condvar: its waits are on the monotonic clock */
		pthread_mutex_lock(&d->mmu);
		while (!d->rstop)
			if (vf_cond_wait_until(&d->mcv, &d->mmu, until) == ETIMEDOUT)
				break;
		if (d->rstop) {
			pthread_mutex_unlock(&d->mmu);
			break;
		}
		if (d->mthr_started)
			want = d->live_manager;
		pthread_mutex_unlock(&d->mmu);
		if (want < 0) {
			struct vf_err err = {0};

			if (vfd_swarm_role(d, 1, &err) != VF_OK) {
				vf_log(VF_LOG_DEBUG, "role = auto: %s (role kept)", err.msg);
				continue;
			}
			pthread_mutex_lock(&d->mmu);
			want = d->live_manager;
			pthread_mutex_unlock(&d->mmu);
		}
		vfd_role_apply(d, want);
	}
	return NULL;
}

static void vfd_role_stop(struct vfd *d)
{
	if (!d->rthr_started)
		return;
	pthread_mutex_lock(&d->mmu);
	d->rstop = 1;
	pthread_cond_broadcast(&d->mcv);
	pthread_mutex_unlock(&d->mmu);
	pthread_join(d->rthr, NULL);
	d->rthr_started = 0;
}

/* ---- on start: this host's mount ids against dockerd's containers ---- */

struct vfd_used {
	char **v; /* volume names some live container mounts (sorted) */
	size_t n;
};

static int vfd_used_has(void *arg, const char *vol)
{
	struct vfd_used *u = arg;
	const char *key = vol;

	return u->n > 0 && bsearch(&key, u->v, u->n, sizeof(char *), vfd_cmp_str) != NULL;
}

/* GET /containers/json?all=1: the volumes that containers in state created,
 * running, paused or restarting mount. A mount counts by its volume name
 * whatever driver Docker names (a same-named volume of another driver keeps
 * this host's ids: the safe side). */
static int vfd_containers_used(struct vfd *d, struct vfd_used *u, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	struct vf_buf body = {0};
	yajl_val t = NULL;
	long status = 0;
	CURL *h = curl_easy_init();
	CURLcode cc;
	int rc = VF_OK;

	if (h == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->docker_socket);
	curl_easy_setopt(h, CURLOPT_URL, "http://localhost/containers/json?all=1");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->request_timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, vfd_sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	if (cc != CURLE_OK) {
		rc = vf_err_set(err, VF_EUNAVAIL, "cannot ask dockerd at %s: %s", c->docker_socket,
		                curl_easy_strerror(cc));
		goto out;
	}
	if (status != 200 || body.data == NULL ||
	    vf_json_parse(body.data, body.len, &t, NULL) != VF_OK || !YAJL_IS_ARRAY(t)) {
		rc = vf_err_set(err, VF_EPROTO,
		                "dockerd at %s answered GET /containers/json with HTTP %ld and "
		                "no container list",
		                c->docker_socket, status);
		goto out;
	}
	for (size_t i = 0; i < t->u.array.len; i++) {
		yajl_val ct = t->u.array.values[i];
		const char *st = vf_json_str(vf_json_get(ct, "State", NULL));
		yajl_val mounts = vf_json_get(ct, "Mounts", NULL);

		if (st == NULL || !(strcmp(st, "created") == 0 || strcmp(st, "running") == 0 ||
		                    strcmp(st, "paused") == 0 || strcmp(st, "restarting") == 0))
			continue;
		if (mounts == NULL || !YAJL_IS_ARRAY(mounts))
			continue;
		for (size_t j = 0; j < mounts->u.array.len; j++) {
			const char *name =
			        vf_json_str(vf_json_get(mounts->u.array.values[j], "Name", NULL));
			char **x;

			if (name == NULL || name[0] == '\0')
				continue;
			if ((x = realloc(u->v, (u->n + 1) * sizeof(char *))) == NULL ||
			    (x[u->n] = strdup(name)) == NULL) {
				if (x)
					u->v = x;
				rc = vf_err_set(err, VF_ENOMEM, "out of memory");
				goto out;
			}
			u->v = x;
			u->n++;
		}
	}
	if (u->n > 1) /* u->v is NULL when no container mounts anything */
		qsort(u->v, u->n, sizeof(char *), vfd_cmp_str);
out:
	yajl_tree_free(t);
	vf_buf_free(&body);
	return rc;
}

/* With role = auto or docker_socket given: the mount ids this host holds for a
 * volume no live container uses are released (the mounts reconcile of
 * vf_ctx_new ran first). dockerd not reached: skipped (info). */
static void vfd_containers_reconcile(struct vfd *d)
{
	struct vfd_used u = {0};
	struct vf_err err = {0};
	size_t released = 0;

	if (d->conf->role != VF_ROLE_AUTO && !d->conf->docker_socket_set)
		return;
	if (vfd_containers_used(d, &u, &err) != VF_OK) {
		vf_log(VF_LOG_INFO, "start-up check of mount ids against containers skipped: %s",
		       err.msg);
	} else if (vf_vol_release_unused(d->ctx, vfd_used_has, &u, &released, &err) != VF_OK) {
		vf_log(VF_LOG_WARN, "start-up check of mount ids against containers: %s", err.msg);
	} else {
		vf_log(VF_LOG_INFO,
		       "start-up check against dockerd's containers: %zu volume(s) in use, %zu "
		       "mount id(s) of unused volumes released",
		       u.n, released);
	}
	vf_strv_free(u.v, u.n);
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
		vfd_phase(d, "vfiled is starting: starting the embedded etcd cluster member");
		if ((rc = vfd_cluster_start(d, d->sigs, err)) != VF_OK)
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
	vfd_containers_reconcile(d);
	if (d->manager && (rc = vfd_cluster(d, 0, err)) != VF_OK)
		return rc;
	if (d->manager && (rc = vf_ctx_start_manager(d->ctx, err)) != VF_OK)
		return rc;
	if (c->role == VF_ROLE_AUTO) {
		pthread_mutex_lock(&d->mmu);
		if (!d->mthr_started)
			d->live_manager = d->manager; /* else the membership thread's */
		pthread_mutex_unlock(&d->mmu);
		if (pthread_create(&d->rthr, NULL, vfd_role_thread, d) == 0)
			d->rthr_started = 1;
		else
			vf_log(VF_LOG_ERR, "role = auto: cannot start the role thread: the "
			                   "volume manager role stays as it is until restart");
	}
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
	pthread_mutex_init(&d.mmu, NULL);
	vf_cond_init(&d.mcv);
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
	pthread_mutex_destroy(&d.mmu);
	pthread_cond_destroy(&d.mcv);
	curl_global_cleanup();
	return status;
}
