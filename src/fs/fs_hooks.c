/* The "hooks" file-server driver: the operator's commands serve and mount volumes.
 * The contract (arguments, environment, output, timeout) is doc/fileserver.md:
 *   HOOK... start VOL              prints "ADDR PORT" on its first stdout line
 *   HOOK... stop VOL
 *   HOOK... mount VOL MOUNTPOINT
 *   HOOK... unmount VOL MOUNTPOINT
 *   HOOK... status VOL             optional: exit 0 = serving, else not
 * with VFILE_HOOK, VFILE_VOLUME, VFILE_INFO, VFILE_EXPORT_ROOT, VFILE_STATE_DIR,
 * VFILE_MOUNTPOINT, VFILE_ADDR, VFILE_PORT in the environment. */
#include <config.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common_int.h"
#include "fs_int.h"

extern char **environ;

enum hooks_op { HOOK_START, HOOK_STOP, HOOK_MOUNT, HOOK_UNMOUNT, HOOK_STATUS, HOOK_N };
static const char *const hooks_names[HOOK_N] = {"start", "stop", "mount", "unmount", "status"};

struct hooks_vol {
	char *name;
	int started; /* started by this process and not stopped since */
	int busy;    /* a hook runs for this volume */
	struct hooks_vol *next;
};

struct hooks_fs {
	struct fs_base base;
	char **argv[HOOK_N]; /* the configured command prefix of each hook (NULL: none) */
	size_t argc[HOOK_N];
	char *export_root;
	char *state_dir;
	int timeout_ms;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct hooks_vol *vols;
};

/* Take the volume's slot: calls for one volume run one at a time. */
static struct hooks_vol *hooks_acquire(struct hooks_fs *fs, const char *vol, struct vf_err *err)
{
	struct hooks_vol *v;

	pthread_mutex_lock(&fs->mu);
	for (;;) {
		for (v = fs->vols; v && strcmp(v->name, vol) != 0; v = v->next)
			;
		if (v == NULL || !v->busy)
			break;
		pthread_cond_wait(&fs->cond, &fs->mu);
	}
	if (v == NULL && (v = calloc(1, sizeof(*v))) != NULL) {
		if ((v->name = strdup(vol)) == NULL) {
			free(v);
			v = NULL;
		} else {
			v->next = fs->vols;
			fs->vols = v;
		}
	}
	if (v)
		v->busy = 1;
	pthread_mutex_unlock(&fs->mu);
	if (v == NULL)
		vf_err_set(err, VF_ENOMEM, "out of memory");
	return v;
}

static void hooks_release(struct hooks_fs *fs, struct hooks_vol *v)
{
	pthread_mutex_lock(&fs->mu);
	v->busy = 0;
	if (!v->started) {
		struct hooks_vol **p = &fs->vols;

		while (*p != v)
			p = &(*p)->next;
		*p = v->next;
		free(v->name);
		free(v);
	}
	pthread_cond_broadcast(&fs->cond);
	pthread_mutex_unlock(&fs->mu);
}

static int hooks_env_add(char ***envp, size_t *n, const char *name, const char *value)
{
	char **e = realloc(*envp, (*n + 2) * sizeof(char *));
	size_t len = strlen(name) + strlen(value ? value : "") + 2;

	if (e == NULL)
		return VF_ENOMEM;
	*envp = e;
	if ((e[*n] = malloc(len)) == NULL)
		return VF_ENOMEM;
	snprintf(e[*n], len, "%s=%s", name, value ? value : "");
	e[++*n] = NULL;
	return VF_OK;
}

/* Run hook op for vol; *out_r gets its stdout (may be NULL). */
static int hooks_run(struct hooks_fs *fs, enum hooks_op op, const char *vol, const char *info_json,
                     const char *mountpoint, int *status_r, char **out_r, struct vf_err *err)
{
	const char **argv = NULL;
	char **envp = NULL, *errout = NULL, *addr = NULL, portbuf[16] = "";
	size_t n = 0, k = 0;
	int rc = VF_ENOMEM, port = 0, status = -1;

	if (out_r)
		*out_r = NULL;
	argv = calloc(fs->argc[op] + 4, sizeof(char *));
	if (argv == NULL)
		goto out;
	for (size_t i = 0; i < fs->argc[op]; i++)
		argv[k++] = fs->argv[op][i];
	argv[k++] = hooks_names[op];
	argv[k++] = vol;
	if (mountpoint)
		argv[k++] = mountpoint;
	/* The daemon's environment without any VFILE_* variable, then ours. */
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "VFILE_", 6) == 0)
			continue;
		char **ne = realloc(envp, (n + 2) * sizeof(char *));
		if (ne == NULL)
			goto out;
		envp = ne;
		if ((envp[n] = strdup(*e)) == NULL)
			goto out;
		envp[++n] = NULL;
	}
	if (op == HOOK_MOUNT && vf_fs_info_server(info_json, &addr, &port, NULL) == VF_OK)
		snprintf(portbuf, sizeof(portbuf), "%d", port);
	if (hooks_env_add(&envp, &n, "VFILE_HOOK", hooks_names[op]) ||
	    hooks_env_add(&envp, &n, "VFILE_VOLUME", vol) ||
	    hooks_env_add(&envp, &n, "VFILE_INFO", info_json ? info_json : "{}") ||
	    hooks_env_add(&envp, &n, "VFILE_EXPORT_ROOT", fs->export_root) ||
	    hooks_env_add(&envp, &n, "VFILE_STATE_DIR", fs->state_dir) ||
	    (mountpoint && hooks_env_add(&envp, &n, "VFILE_MOUNTPOINT", mountpoint)) ||
	    (addr && hooks_env_add(&envp, &n, "VFILE_ADDR", addr)) ||
	    (addr && hooks_env_add(&envp, &n, "VFILE_PORT", portbuf)))
		goto out;
	rc = vf_fs_run(argv, (const char *const *)envp, fs->timeout_ms, &status, out_r, &errout,
	               err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: %s hook", vol, hooks_names[op]);
		goto out;
	}
	if (status_r) {
		*status_r = status;
	} else if (status != 0) {
		char line[160];

		rc = vf_err_set(err, VF_EINVAL, "volume %s: %s hook %s exited with %d: %s", vol,
		                hooks_names[op], argv[0], status,
		                vf_fs_last_line(errout, line, sizeof(line))[0] ? line
		                                                               : "(no message)");
	}
out:
	if (rc == VF_ENOMEM && err && err->code != VF_ENOMEM)
		vf_err_set(err, VF_ENOMEM, "out of memory");
	if (rc != VF_OK && out_r) {
		free(*out_r);
		*out_r = NULL;
	}
	free(errout);
	free(addr);
	free(argv);
	if (envp)
		vf_strv_free(envp, n);
	return rc;
}

static int hooks_parse_start(const char *vol, const char *out, char **addr_r, int *port_r,
                             struct vf_err *err)
{
	char addr[256];
	int port, used = 0;

	if (out == NULL || sscanf(out, " %255s %d%n", addr, &port, &used) != 2 || port < 0 ||
	    port > 65535 ||
	    (out[used] != '\0' && out[used] != '\n' && out[used] != '\r' && out[used] != ' '))
		return vf_err_set(err, VF_EPROTO,
		                  "volume %s: start hook did not print \"ADDR PORT\" on its first "
		                  "line",
		                  vol);
	if ((*addr_r = strdup(addr)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	*port_r = port;
	return VF_OK;
}

static int hooks_start(void *arg, const char *vol, const char *info_json, char **addr_r,
                       int *port_r, struct vf_err *err)
{
	struct hooks_fs *fs = arg;
	struct hooks_vol *v;
	char *out = NULL;
	int rc;

	*addr_r = NULL;
	*port_r = 0;
	if (vf_fs_vol_check(vol, err) != VF_OK)
		return VF_EINVAL;
	if ((v = hooks_acquire(fs, vol, err)) == NULL)
		return VF_ENOMEM;
	rc = hooks_run(fs, HOOK_START, vol, info_json, NULL, NULL, &out, err);
	if (rc == VF_OK)
		rc = hooks_parse_start(vol, out, addr_r, port_r, err);
	if (rc == VF_OK) {
		v->started = 1;
		vf_log(VF_LOG_INFO, "volume %s: start hook: serving at %s:%d", vol, *addr_r,
		       *port_r);
	}
	free(out);
	hooks_release(fs, v);
	return rc;
}

static int hooks_stop(void *arg, const char *vol, const char *info_json, struct vf_err *err)
{
	struct hooks_fs *fs = arg;
	struct hooks_vol *v;
	int rc;

	if (vf_fs_vol_check(vol, err) != VF_OK)
		return VF_EINVAL;
	if ((v = hooks_acquire(fs, vol, err)) == NULL)
		return VF_ENOMEM;
	rc = hooks_run(fs, HOOK_STOP, vol, info_json, NULL, NULL, NULL, err);
	if (rc == VF_OK)
		v->started = 0;
	hooks_release(fs, v);
	return rc;
}

static int hooks_running(void *arg, const char *vol)
{
	struct hooks_fs *fs = arg;
	struct hooks_vol *v;
	struct vf_err err = {0};
	int status = -1, running = 0;

	if (vf_fs_vol_check(vol, NULL) != VF_OK || (v = hooks_acquire(fs, vol, NULL)) == NULL)
		return 0;
	if (fs->argv[HOOK_STATUS] == NULL) {
		running = v->started;
	} else if (hooks_run(fs, HOOK_STATUS, vol, NULL, NULL, &status, NULL, &err) == VF_OK) {
		running = status == 0;
	} else {
		vf_log(VF_LOG_WARN, "%s", err.msg);
	}
	hooks_release(fs, v);
	return running;
}

static int hooks_mount(void *arg, const char *vol, const char *info_json, const char *mountpoint,
                       struct vf_err *err)
{
	struct hooks_fs *fs = arg;
	struct hooks_vol *v;
	int rc;

	if (vf_fs_vol_check(vol, err) != VF_OK)
		return VF_EINVAL;
	if ((v = hooks_acquire(fs, vol, err)) == NULL)
		return VF_ENOMEM;
	rc = hooks_run(fs, HOOK_MOUNT, vol, info_json, mountpoint, NULL, NULL, err);
	hooks_release(fs, v);
	return rc;
}

static int hooks_unmount(void *arg, const char *vol, const char *mountpoint, struct vf_err *err)
{
	struct hooks_fs *fs = arg;
	struct hooks_vol *v;
	int rc;

	if (vf_fs_vol_check(vol, err) != VF_OK)
		return VF_EINVAL;
	if ((v = hooks_acquire(fs, vol, err)) == NULL)
		return VF_ENOMEM;
	rc = hooks_run(fs, HOOK_UNMOUNT, vol, NULL, mountpoint, NULL, NULL, err);
	hooks_release(fs, v);
	return rc;
}

static const struct vf_fs_ops hooks_ops = {
        .start = hooks_start,
        .stop = hooks_stop,
        .running = hooks_running,
        .mount = hooks_mount,
        .unmount = hooks_unmount,
        .mounted = vf_fs_mounted,
};

static void hooks_close(void *arg)
{
	struct hooks_fs *fs = arg;

	for (int i = 0; i < HOOK_N; i++)
		if (fs->argv[i])
			vf_strv_free(fs->argv[i], fs->argc[i]);
	while (fs->vols) {
		struct hooks_vol *v = fs->vols;

		fs->vols = v->next;
		free(v->name);
		free(v);
	}
	free(fs->export_root);
	free(fs->state_dir);
	pthread_mutex_destroy(&fs->mu);
	pthread_cond_destroy(&fs->cond);
	free(fs);
}

static int hooks_open(const config_setting_t *grp, const char *state_dir, void **arg_r,
                      struct vf_err *err)
{
	static const char *const known[] = {"driver", "export_root", "hooks", "hook_timeout_ms",
	                                    NULL};
	static const char *const known_hooks[] = {"start",   "stop",   "mount",
	                                          "unmount", "status", NULL};
	const config_setting_t *hg = grp ? config_setting_get_member(grp, "hooks") : NULL;
	struct hooks_fs *fs;
	int rc;

	if ((rc = vf_cfg_known(grp, known, err)) != VF_OK)
		return rc;
	if (hg == NULL)
		return vf_fs_cfg_bad(
		        grp, "hooks", err,
		        "the hooks driver needs hooks = { start = \"...\"; stop = ...; "
		        "mount = ...; unmount = ...; }");
	if (config_setting_type(hg) != CONFIG_TYPE_GROUP)
		return vf_fs_cfg_bad(grp, "hooks", err, "must be a group { start = ...; ... }");
	if ((rc = vf_cfg_known(hg, known_hooks, err)) != VF_OK)
		return rc;
	if ((fs = calloc(1, sizeof(*fs))) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	fs->base.drv = &fs_hooks_driver;
	pthread_mutex_init(&fs->mu, NULL);
	pthread_cond_init(&fs->cond, NULL);
	for (int i = 0; i < HOOK_N && rc == VF_OK; i++) {
		char where[256];

		rc = vf_cfg_strv(hg, hooks_names[i], NULL, &fs->argv[i], &fs->argc[i], err);
		if (rc != VF_OK)
			break;
		vf_cfg_where(config_setting_get_member(hg, hooks_names[i]), where, sizeof(where));
		if (fs->argv[i] == NULL && i != HOOK_STATUS) {
			vf_cfg_where(hg, where, sizeof(where));
			rc = vf_err_set(err, VF_EINVAL,
			                "%ssetting 'fileserver.hooks.%s' is required by the hooks "
			                "driver",
			                where, hooks_names[i]);
		} else if (fs->argv[i] && (fs->argc[i] == 0 || fs->argv[i][0][0] != '/')) {
			rc = vf_err_set(err, VF_EINVAL,
			                "%ssetting 'fileserver.hooks.%s' must be an absolute path "
			                "(or a list starting with one)",
			                where, hooks_names[i]);
		}
	}
	if (rc == VF_OK)
		rc = vf_cfg_int(grp, "hook_timeout_ms", 30000, &fs->timeout_ms, err);
	if (rc == VF_OK && fs->timeout_ms <= 0)
		rc = vf_fs_cfg_bad(grp, "hook_timeout_ms", err, "must be > 0 (milliseconds)");
	if (rc == VF_OK)
		rc = vf_cfg_str(grp, "export_root", "/var/lib/vfile/export", &fs->export_root, err);
	if (rc == VF_OK && fs->export_root[0] != '/')
		rc = vf_fs_cfg_bad(grp, "export_root", err, "must be an absolute path");
	if (rc == VF_OK && (fs->state_dir = strdup(state_dir)) == NULL)
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
	if (rc != VF_OK) {
		hooks_close(fs);
		return rc;
	}
	*arg_r = fs;
	return VF_OK;
}

const struct fs_driver fs_hooks_driver = {
        .name = "hooks",
        .ops = &hooks_ops,
        .open = hooks_open,
        .close = hooks_close,
};
