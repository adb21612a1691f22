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
 *
 * This file: main, start-up and shutdown. The other parts of vfiled are listed in
 * vfiled_int.h.
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

#include "vfiled_int.h"

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

int vfd_ready(struct vfd *d)
{
	return __atomic_load_n(&d->ready, __ATOMIC_ACQUIRE);
}

int vfd_is_manager(struct vfd *d)
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

int vfd_wait_signal(const sigset_t *set, int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	int sig = sigtimedwait(set, NULL, &ts);

	return sig > 0 ? sig : 0;
}

void vfd_thread_stop(struct vfd *d, pthread_t thr, int *started, int *stop)
{
	if (!*started)
		return;
	pthread_mutex_lock(&d->mmu);
	*stop = 1;
	pthread_cond_broadcast(&d->mcv);
	pthread_mutex_unlock(&d->mmu);
	pthread_join(thr, NULL);
	*started = 0;
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

int vfd_cluster(struct vfd *d, int once, struct vf_err *err)
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
	if (c->role == VF_ROLE_AUTO)
		vfd_role_start(d);
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