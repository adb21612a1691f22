/*
 * vfnode: one host or manager node of the volume protocol as a process, for the
 * fault tests (test_faults.c), with its own backend handle and lease.
 *
 *   vfnode NODE host|manager
 *
 * Environment: VFNODE_BACKEND (etcd | consul), VFNODE_CONFIG (the backend group's
 * settings), VFNODE_PREFIX, VFNODE_DIR (the shared directory of the file server
 * below), VFNODE_TTL (s), VFNODE_TIMEOUT_MS, VFNODE_RECONCILE_MS, and
 * VFNODE_FAILPOINT = name:action[,name:action] with action
 *   exit   _exit(137) when the failpoint is hit (as if SIGKILLed right there)
 *   exit1  the same, but only in the first process that hits it (O_EXCL file)
 *   pause  the first hit prints "paused NAME VOL LEASE" and waits (<= 120 s) for
 *          the file VFNODE_DIR/go.NODE, then goes on
 *   mark   every hit creates the file VFNODE_DIR/hit.NAME.NODE (if absent) and
 *          goes on: a test waits for it (e.g. mgr.reconcile_done)
 *
 * Prints "ready LEASE" once up, then reads commands from stdin, one per line, and
 * answers each with "ok [detail]" or "err CODE MESSAGE":
 *   create VOL | remove VOL | mount VOL ID | unmount VOL ID | lease | quit
 *   mounts (the volumes mounted locally, space-separated, after "ok")
 *
 * The file server ("dirfs") is a directory shared by every node of a test: a
 * manager serving VOL keeps VFNODE_DIR/srv.VOL@NODE holding its pid (a server
 * "runs" while that pid lives); a start that finds another live server for VOL
 * appends to VFNODE_DIR/violations; every start appends a line to
 * VFNODE_DIR/starts.VOL. A host's mount needs a live server and is the file
 * VFNODE_DIR/mnt.VOL@NODE (it survives the process, as a FUSE mount survives a
 * killed daemon); mount points are under VFNODE_DIR/root.NODE.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "volume_int.h"
#include "integ.h"

static const char *vn_dir, *vn_node;
static struct vf_ctx *vn_ctx;
static pthread_mutex_t vn_out_mu = PTHREAD_MUTEX_INITIALIZER;

static void vn_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void vn_say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&vn_out_mu);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&vn_out_mu);
}

/* ---- dirfs ---- */
static pthread_mutex_t dfs_mu = PTHREAD_MUTEX_INITIALIZER;

static void dfs_append(const char *name, const char *line)
{
	char p[1024];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", vn_dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd >= 0) {
		if (write(fd, line, strlen(line)) < 0)
			vf_log(VF_LOG_ERR, "dirfs: cannot append to %s", p);
		close(fd);
	}
}

static int dfs_start(void *arg, const char *vol, const char *info, char **addr_r, int *port_r,
                     struct vf_err *err)
{
	char p[1024], line[512], pre[300];
	FILE *f;

	pthread_mutex_lock(&dfs_mu);
	snprintf(p, sizeof(p), "%s/srv.%s@%s", vn_dir, vol, vn_node);
	f = fopen(p, "w");
	if (f == NULL) {
		pthread_mutex_unlock(&dfs_mu);
		return vf_err_set(err, VF_EUNAVAIL, "dirfs: cannot create %s", p);
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	snprintf(line, sizeof(line), "%s %ld\n", vn_node, (long)getpid());
	snprintf(pre, sizeof(pre), "starts.%s", vol);
	dfs_append(pre, line);
	/* after our own file exists: any other live server is a violation */
	snprintf(pre, sizeof(pre), "srv.%s@", vol);
	DIR *d = opendir(vn_dir);
	struct dirent *de;

	while (d && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, pre, strlen(pre)) != 0 ||
		    strcmp(de->d_name + strlen(pre), vn_node) == 0)
			continue;
		if (ig_dirfs_live(vn_dir, de->d_name)) {
			snprintf(line, sizeof(line), "%s starts %s while %s serves it\n", vn_node,
			         vol, de->d_name);
			dfs_append("violations", line);
		}
	}
	if (d)
		closedir(d);
	pthread_mutex_unlock(&dfs_mu);
	*addr_r = strdup("127.0.0.1");
	*port_r = 1;
	return VF_OK;
}

static int dfs_stop(void *arg, const char *vol, const char *info, struct vf_err *err)
{
	char p[1024];

	snprintf(p, sizeof(p), "%s/srv.%s@%s", vn_dir, vol, vn_node);
	unlink(p);
	return VF_OK;
}

static int dfs_running(void *arg, const char *vol)
{
	char p[1024];

	snprintf(p, sizeof(p), "%s/srv.%s@%s", vn_dir, vol, vn_node);
	return access(p, F_OK) == 0;
}

/* A host's mount of VOL is the file VFNODE_DIR/mnt.VOL@NODE: it outlives the
 * process (as a FUSE mount outlives a killed daemon), and is this host's
 * "mount table" (dfs_probe). */
static void dfs_mnt_path(char *p, size_t size, const char *vol)
{
	snprintf(p, size, "%s/mnt.%s@%s", vn_dir, vol, vn_node);
}

static int dfs_mount(void *arg, const char *vol, const char *info, const char *mp,
                     struct vf_err *err)
{
	char p[1024];
	int fd;

	if (ig_dirfs_servers(vn_dir, vol) < 1)
		return vf_err_set(err, VF_EUNAVAIL, "dirfs: %s: no server is running", vol);
	dfs_mnt_path(p, sizeof(p), vol);
	if ((fd = open(p, O_WRONLY | O_CREAT, 0644)) < 0)
		return vf_err_set(err, VF_EUNAVAIL, "dirfs: cannot create %s", p);
	close(fd);
	return VF_OK;
}

static int dfs_unmount(void *arg, const char *vol, const char *mp, struct vf_err *err)
{
	char p[1024];

	dfs_mnt_path(p, sizeof(p), vol);
	unlink(p);
	return VF_OK;
}

static int dfs_probe(void *fs_arg, const char *vol, const char *path)
{
	char p[1024];

	dfs_mnt_path(p, sizeof(p), vol);
	return access(p, F_OK) == 0;
}

static const struct vf_fs_ops dfs_ops = {
        .start = dfs_start,
        .stop = dfs_stop,
        .running = dfs_running,
        .mount = dfs_mount,
        .unmount = dfs_unmount,
};

/* ---- failpoints ---- */
struct vn_fp {
	char name[64], action[16];
	int done;
};
static struct vn_fp vn_fps[8];

static int vn_fp_hit(const char *name, const char *vol, void *arg)
{
	struct vn_fp *fp = arg;
	char p[1024];

	if (strcmp(fp->action, "exit") == 0) {
		vn_say("fp %s %s exit", name, vol);
		_exit(137);
	}
	if (strcmp(fp->action, "exit1") == 0) {
		int fd;

		snprintf(p, sizeof(p), "%s/fp.%s", vn_dir, name);
		fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			return 0; /* another process died here already */
		close(fd);
		vn_say("fp %s %s exit", name, vol);
		_exit(137);
	}
	if (strcmp(fp->action, "mark") == 0) {
		int fd;

		snprintf(p, sizeof(p), "%s/hit.%s.%s", vn_dir, name, vn_node);
		fd = open(p, O_WRONLY | O_CREAT, 0644);
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (strcmp(fp->action, "pause") == 0 &&
	    !__atomic_exchange_n(&fp->done, 1, __ATOMIC_SEQ_CST)) {
		int64_t end = vf_now_ms() + 120000;

		snprintf(p, sizeof(p), "%s/go.%s", vn_dir, vn_node);
		vn_say("paused %s %s %s", name, vol, vn_ctx ? vn_ctx->lease_id : "-");
		while (access(p, F_OK) != 0 && vf_now_ms() < end) {
			struct timespec ts = {0, 20000000L};

			nanosleep(&ts, NULL);
		}
		unlink(p);
	}
	return 0;
}

static void vn_fp_setup(const char *spec)
{
	char buf[512], *save = NULL, *tok;
	size_t n = 0;

	if (spec == NULL)
		return;
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ",", &save); tok && n < 8; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');

		if (colon == NULL)
			continue;
		*colon = '\0';
		snprintf(vn_fps[n].name, sizeof(vn_fps[n].name), "%s", tok);
		snprintf(vn_fps[n].action, sizeof(vn_fps[n].action), "%s", colon + 1);
		vf_failpoint_set(vn_fps[n].name, vn_fp_hit, &vn_fps[n]);
		n++;
	}
}

static int vn_env_int(const char *name, int def)
{
	const char *v = getenv(name);

	return v && *v ? atoi(v) : def;
}

static void vn_reply(int rc, const struct vf_err *e, const char *detail)
{
	if (rc == VF_OK)
		vn_say("ok%s%s", detail ? " " : "", detail ? detail : "");
	else
		vn_say("err %d %s", rc, e->msg[0] ? e->msg : vf_strerror(rc));
}

int main(int argc, char **argv)
{
	const char *backend = getenv("VFNODE_BACKEND"), *snippet = getenv("VFNODE_CONFIG");
	struct vf_backend *be = NULL;
	struct vf_kv *kv = NULL;
	struct vf_ctx_cfg cfg = {0};
	struct vf_err e = {0};
	config_t lc;
	char *text = NULL, line[1024], root[1024];
	int rc;

	if (argc != 3 || (strcmp(argv[2], "host") != 0 && strcmp(argv[2], "manager") != 0)) {
		fprintf(stderr, "usage: vfnode NODE host|manager\n");
		return 2;
	}
	vn_node = argv[1];
	vn_dir = getenv("VFNODE_DIR");
	if (backend == NULL || snippet == NULL || vn_dir == NULL) {
		fprintf(stderr,
		        "vfnode: VFNODE_BACKEND, VFNODE_CONFIG and VFNODE_DIR are needed\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	vf_log_set_level(VF_LOG_INFO);
	if (vf_backend_load(backend, NULL, &be, &e) != VF_OK) {
		vn_say("err %d %s", VF_EINVAL, e.msg);
		return 1;
	}
	config_init(&lc);
	if (asprintf(&text, "%s = { %s };", backend, snippet) < 0 ||
	    config_read_string(&lc, text) != CONFIG_TRUE) {
		vn_say("err %d bad VFNODE_CONFIG", VF_EINVAL);
		return 1;
	}
	rc = vf_backend_open(be, config_lookup(&lc, backend), &kv, &e);
	config_destroy(&lc);
	free(text);
	if (rc != VF_OK) {
		vn_say("err %d %s", rc, e.msg);
		return 1;
	}
	cfg.node_id = vn_node;
	cfg.node_addr = "127.0.0.1";
	cfg.prefix = getenv("VFNODE_PREFIX");
	/* mount points: one directory per volume mounted (the start-up check
	 * enumerates it); the mounts themselves are dirfs's mnt.* files */
	snprintf(root, sizeof(root), "%s/root.%s", vn_dir, vn_node);
	mkdir(root, 0755);
	cfg.mount_root = root;
	vf_vol_mount_probe_set(dfs_probe);
	cfg.manager = strcmp(argv[2], "manager") == 0;
	cfg.lease_ttl_s = vn_env_int("VFNODE_TTL", 0);
	cfg.op_timeout_ms = vn_env_int("VFNODE_TIMEOUT_MS", 0);
	cfg.reconcile_ms = vn_env_int("VFNODE_RECONCILE_MS", 0);
	cfg.fs = &dfs_ops;
	vn_fp_setup(getenv("VFNODE_FAILPOINT"));
	rc = vf_ctx_new(kv, &cfg, &vn_ctx, &e);
	if (rc == VF_OK && cfg.manager)
		rc = vf_ctx_start_manager(vn_ctx, &e);
	if (rc != VF_OK) {
		vn_say("err %d %s", rc, e.msg);
		return 1;
	}
	pthread_rwlock_rdlock(&vn_ctx->lease_rw);
	vn_say("ready %s", vn_ctx->lease_id);
	pthread_rwlock_unlock(&vn_ctx->lease_rw);
	while (fgets(line, sizeof(line), stdin)) {
		char cmd[32] = "", vol[200] = "", id[200] = "";

		memset(&e, 0, sizeof(e));
		if (sscanf(line, "%31s %199s %199s", cmd, vol, id) < 1)
			continue;
		if (strcmp(cmd, "quit") == 0)
			break;
		if (strcmp(cmd, "create") == 0) {
			vn_reply(vf_volume_create(vn_ctx, vol, NULL, 0, &e), &e, NULL);
		} else if (strcmp(cmd, "remove") == 0) {
			vn_reply(vf_volume_remove(vn_ctx, vol, &e), &e, NULL);
		} else if (strcmp(cmd, "mount") == 0) {
			vn_reply(vf_volume_mount(vn_ctx, vol, id, NULL, &e), &e, NULL);
		} else if (strcmp(cmd, "unmount") == 0) {
			int urc = vf_volume_unmount(vn_ctx, vol, id, &e);

			/* "ok pending": answered OK with the store part left to the
			 * background (a host killed now keeps the id, by design) */
			vn_reply(urc, &e,
			         urc == VF_OK && vf_vol_pending_has(vn_ctx, vol, id) ? "pending"
			                                                             : NULL);
		} else if (strcmp(cmd, "mounts") == 0) {
			/* the volumes this process has mounted locally, by its own record */
			char list[4096] = "";
			size_t n = 0;

			pthread_mutex_lock(&vn_ctx->mu);
			for (size_t i = 0; i < vn_ctx->nmounted && n + 1 < sizeof(list); i++)
				n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s",
				                      n ? " " : "", vn_ctx->mounted[i]);
			pthread_mutex_unlock(&vn_ctx->mu);
			vn_reply(VF_OK, &e, n ? list : NULL);
		} else if (strcmp(cmd, "lease") == 0) {
			char lid[64];

			pthread_rwlock_rdlock(&vn_ctx->lease_rw);
			snprintf(lid, sizeof(lid), "%s", vn_ctx->lease_id);
			pthread_rwlock_unlock(&vn_ctx->lease_rw);
			vn_reply(VF_OK, &e, lid);
		} else {
			vn_say("err %d unknown command '%s'", VF_EINVAL, cmd);
		}
	}
	vf_ctx_free(&vn_ctx);
	kv->ops->close(kv);
	vf_backend_unload(&be);
	return 0;
}
