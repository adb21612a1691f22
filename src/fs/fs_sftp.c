/* The "sftp" file-server driver (the default).
 *
 * Manager side: one sshd per volume (OpenSSH's /usr/sbin/sshd, a child process run
 * with -D -e -f <generated sshd_config>), in sftp-only mode: internal-sftp is the only
 * thing a session can run, confined with ChrootDirectory to <export_root>/<vol>,
 * whose files live in <export_root>/<vol>/data (sshd wants the chroot directory
 * root-owned and not writable by others, so the writable data is one level down).
 * Public-key authentication only, with the cluster key pair; a cluster host key.
 * It listens on listen_addr, on a free port of port_range. Per-volume run dir:
 * <state_dir>/sftp/<vol>/ {sshd_config, authorized_keys, sshd.log, sshd.pid}.
 *
 * Host side: sshfs (FUSE) mounts user@addr:/data with the cluster private key and a
 * known_hosts file holding the cluster host key (HostKeyAlias, so any server and
 * port matches); unmount with fusermount3 -u (or fusermount -u). Inside vfiled
 * (vf_fs_set_proxy), ssh reaches the server through `vfilectl proxy VOL`
 * (ProxyCommand), which asks vfiled for the volume's live server on every
 * (re)connection and cuts a connection whose server the store no longer names,
 * so sshfs' reconnect follows the volume to the manager that took it over.
 *
 * No server outlives its daemon: each sshd has a guard, a forked child of vfiled
 * that blocks reading a pipe whose only write end vfiled holds; when vfiled dies
 * (or closes the driver) the read ends and the guard kills the sshd and every
 * process under it (its sessions). A restarted vfiled stops any sshd a previous
 * run left behind (vf_fs_sweep: pid file + /proc cmdline check).
 *
 * The files: sftp_int.h lists them and what they share. This one holds the
 * driver entry (option parsing, open/close, the ops table) and the small helpers
 * the others share.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common_int.h"
#include "sftp_int.h"

/* ---- shared helpers ---- */

int sftp_path(char *buf, size_t size, struct vf_err *err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return vf_err_set(err, VF_EINVAL, "path too long: %s...", buf);
	return VF_OK;
}

int sftp_check_file(const char *what, const char *path, struct vf_err *err)
{
	if (access(path, R_OK) != 0)
		return vf_err_set(err, VF_EINVAL, "fileserver.%s %s: %s", what, path,
		                  strerror(errno));
	return VF_OK;
}

int sftp_check_exec(const char *what, const char *path, struct vf_err *err)
{
	if (access(path, X_OK) != 0)
		return vf_err_set(err, VF_EINVAL, "fileserver.%s %s: %s", what, path,
		                  strerror(errno));
	return VF_OK;
}

static const struct vf_fs_ops sftp_ops = {
        .start = sftp_start,
        .stop = sftp_stop,
        .running = sftp_running,
        .mount = sftp_mount,
        .unmount = sftp_unmount,
        .mounted = vf_fs_mounted,
};

/* ---- open/close ---- */

static void sftp_close(void *arg)
{
	struct sftp_fs *fs = arg;

	/* the guards see the pipe end and stop every server: none outlives us */
	if (fs->guard_w >= 0)
		close(fs->guard_w);
	if (fs->guard_r >= 0)
		close(fs->guard_r);
	while (fs->srvs) {
		struct sftp_srv *s = fs->srvs;
		int st;

		fs->srvs = s->next;
		if (s->guard > 0 && vf_fs_wait(s->guard, fs->stop_timeout_ms, &st) != VF_OK)
			sftp_guard_stop(s);
		if (s->pid > 0 && s->guard <= 0)
			sftp_kill_tree(s->pid); /* unguarded (its fork failed): stop it here */
		if (s->pid > 0)
			vf_fs_wait(s->pid, fs->stop_timeout_ms, &st);
		free(s->vol);
		free(s);
	}
	/* their sshd stopped: the log forwarders end with the last session */
	sftp_logfwd_drain(fs->stop_timeout_ms);
	free(fs->vfilectl);
	free(fs->ctl_socket);
	free(fs->state_dir);
	free(fs->export_root);
	free(fs->listen_addr);
	free(fs->advertise_addr);
	free(fs->user);
	free(fs->private_key);
	free(fs->public_key);
	free(fs->host_key);
	free(fs->host_public_key);
	free(fs->sshd);
	free(fs->sshfs);
	free(fs->fusermount);
	if (fs->sshfs_opts)
		vf_strv_free(fs->sshfs_opts, fs->nsshfs_opts);
	pthread_mutex_destroy(&fs->mu);
	pthread_cond_destroy(&fs->cond);
	free(fs);
}

static int sftp_cfg_path(const config_setting_t *grp, const char *name, const char *def,
                         char **out_r, struct vf_err *err)
{
	int rc = vf_cfg_str(grp, name, def, out_r, err);

	if (rc != VF_OK)
		return rc;
	if ((*out_r)[0] != '/')
		rc = vf_fs_cfg_bad(grp, name, err, "must be an absolute path");
	/* sshfs splits -o values on ',' and ssh_config on whitespace */
	else if (strpbrk(*out_r, ", \t\n"))
		rc = vf_fs_cfg_bad(grp, name, err, "must not contain commas or spaces");
	if (rc != VF_OK) {
		free(*out_r);
		*out_r = NULL;
	}
	return rc;
}

static int sftp_cfg_addr(const config_setting_t *grp, const char *name, const char *def,
                         char **out_r, struct vf_err *err)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST}, *ai = NULL;
	int rc = vf_cfg_str(grp, name, def, out_r, err);

	if (rc != VF_OK || *out_r == NULL)
		return rc;
	if (getaddrinfo(*out_r, NULL, &hints, &ai) != 0)
		return vf_fs_cfg_bad(grp, name, err, "'%s' is not a numeric IP address", *out_r);
	freeaddrinfo(ai);
	return VF_OK;
}

static char *sftp_pub_of(const char *key)
{
	size_t n = strlen(key) + 5;
	char *p = malloc(n);

	if (p)
		snprintf(p, n, "%s.pub", key);
	return p;
}

/* Read the path setting name with *val as its default, in place of *val (kept on
 * an error). */
static int sftp_cfg_path_over(const config_setting_t *grp, const char *name, char **val,
                              struct vf_err *err)
{
	char *v;
	int rc = sftp_cfg_path(grp, name, *val, &v, err);

	if (rc != VF_OK)
		return rc;
	free(*val);
	*val = v;
	return VF_OK;
}

/* The key files: public_key defaults to private_key.pub, host_public_key to
 * host_key.pub. */
static int sftp_cfg_keys(const config_setting_t *grp, struct sftp_fs *fs, struct vf_err *err)
{
	int rc;

	if ((rc = sftp_cfg_path(grp, "private_key", VF_SYSCONFDIR "/vfile/cluster_key",
	                        &fs->private_key, err)))
		return rc;
	if ((fs->public_key = sftp_pub_of(fs->private_key)) == NULL ||
	    (fs->host_key = strdup(VF_SYSCONFDIR "/vfile/host_key")) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if ((rc = sftp_cfg_path_over(grp, "public_key", &fs->public_key, err)) ||
	    (rc = sftp_cfg_path_over(grp, "host_key", &fs->host_key, err)))
		return rc;
	if ((fs->host_public_key = sftp_pub_of(fs->host_key)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	return sftp_cfg_path_over(grp, "host_public_key", &fs->host_public_key, err);
}

/* Every setting of grp (port_range into *range_r, parsed by sftp_cfg_check). */
static int sftp_cfg_read(const config_setting_t *grp, struct sftp_fs *fs, char **range_r,
                         struct vf_err *err)
{
	int rc;

	if ((rc = sftp_cfg_path(grp, "export_root", "/var/lib/vfile/export", &fs->export_root,
	                        err)) ||
	    (rc = sftp_cfg_addr(grp, "listen_addr", "127.0.0.1", &fs->listen_addr, err)) ||
	    (rc = sftp_cfg_addr(grp, "advertise_addr", NULL, &fs->advertise_addr, err)) ||
	    (rc = vf_cfg_str(grp, "port_range", "20000-20999", range_r, err)) ||
	    (rc = vf_cfg_str(grp, "user", NULL, &fs->user, err)) ||
	    (rc = sftp_cfg_keys(grp, fs, err)))
		return rc;
	if ((rc = vf_cfg_str(grp, "sshd", "/usr/sbin/sshd", &fs->sshd, err)) ||
	    (rc = vf_cfg_str(grp, "sshfs", "sshfs", &fs->sshfs, err)) ||
	    (rc = vf_cfg_str(grp, "fusermount", NULL, &fs->fusermount, err)) ||
	    (rc = vf_cfg_strv(grp, "sshfs_options", NULL, &fs->sshfs_opts, &fs->nsshfs_opts,
	                      err)) ||
	    (rc = vf_cfg_bool(grp, "chroot", 1, &fs->chroot, err)) ||
	    (rc = vf_cfg_bool(grp, "local_bind", 1, &fs->local_bind, err)) ||
	    (rc = vf_cfg_bool(grp, "sshfs_tuning", 1, &fs->tuned, err)) ||
	    (rc = vf_cfg_int(grp, "start_timeout_ms", 10000, &fs->start_timeout_ms, err)) ||
	    (rc = vf_cfg_int(grp, "mount_timeout_ms", 20000, &fs->mount_timeout_ms, err)) ||
	    (rc = vf_cfg_int(grp, "stop_timeout_ms", 5000, &fs->stop_timeout_ms, err)) ||
	    (rc = vf_cfg_int(grp, "failover_wait_ms", 60000, &fs->failover_wait_ms, err)))
		return rc;
	return sftp_cfg_path(grp, "vfilectl", VF_BINDIR "/vfilectl", &fs->vfilectl, err);
}

/* The values read: their ranges; port_range ("LO-HI" within 1..65535) into
 * port_lo/port_hi. */
static int sftp_cfg_check(const config_setting_t *grp, struct sftp_fs *fs, const char *range,
                          struct vf_err *err)
{
	char *end;
	long lo, hi;

	if (fs->failover_wait_ms <= 0 || fs->failover_wait_ms > 3600000)
		return vf_fs_cfg_bad(grp, "failover_wait_ms", err,
		                     "must be 1-3600000 (milliseconds)");
	if (fs->sshd[0] != '/')
		return vf_fs_cfg_bad(grp, "sshd", err, "must be an absolute path");
	if (fs->start_timeout_ms <= 0 || fs->mount_timeout_ms <= 0 || fs->stop_timeout_ms <= 0)
		return vf_fs_cfg_bad(grp,
		                     fs->start_timeout_ms <= 0   ? "start_timeout_ms"
		                     : fs->mount_timeout_ms <= 0 ? "mount_timeout_ms"
		                                                 : "stop_timeout_ms",
		                     err, "must be > 0 (milliseconds)");
	lo = strtol(range, &end, 10);
	hi = *end == '-' ? strtol(end + 1, &end, 10) : -1;
	if (*end != '\0' || lo < 1 || hi > 65535 || lo > hi)
		return vf_fs_cfg_bad(grp, "port_range", err,
		                     "'%s' is not a range \"LO-HI\" of ports (1-65535, LO <= HI)",
		                     range);
	fs->port_lo = (int)lo;
	fs->port_hi = (int)hi;
	fs->port_next = (int)(getpid() % (hi - lo + 1));
	for (size_t i = 0; i < fs->nsshfs_opts; i++)
		if (fs->sshfs_opts[i][0] == '\0')
			return vf_fs_cfg_bad(grp, "sshfs_options", err, "empty option");
	return VF_OK;
}

/* The defaults that depend on the host: user (the effective uid's), advertise_addr
 * (listen_addr unless a wildcard), fusermount (found in PATH). A failed strdup
 * leaves NULL: the caller answers VF_ENOMEM. */
static int sftp_cfg_defaults(const config_setting_t *grp, struct sftp_fs *fs, struct vf_err *err)
{
	struct passwd *pw;

	if (fs->user == NULL) {
		pw = getpwuid(geteuid());
		if (pw == NULL)
			return vf_fs_cfg_bad(grp, "user", err, "uid %ld has no user name: set it",
			                     (long)geteuid());
		fs->user = strdup(pw->pw_name);
	}
	if (fs->advertise_addr == NULL) {
		if (strcmp(fs->listen_addr, "0.0.0.0") == 0 || strcmp(fs->listen_addr, "::") == 0)
			return vf_fs_cfg_bad(grp, "advertise_addr", err,
			                     "required when listen_addr is a wildcard (%s)",
			                     fs->listen_addr);
		fs->advertise_addr = strdup(fs->listen_addr);
	}
	/* fusermount3 on bookworm (fuse3), fusermount on older systems */
	if (fs->fusermount == NULL && (fs->fusermount = vf_fs_which("fusermount3")) == NULL &&
	    (fs->fusermount = vf_fs_which("fusermount")) == NULL)
		fs->fusermount = strdup("fusermount");
	return VF_OK;
}

static int sftp_open(const config_setting_t *grp, const char *state_dir, void **arg_r,
                     struct vf_err *err)
{
	static const char *const known[] = {"driver",
	                                    "export_root",
	                                    "listen_addr",
	                                    "advertise_addr",
	                                    "port_range",
	                                    "user",
	                                    "private_key",
	                                    "public_key",
	                                    "host_key",
	                                    "host_public_key",
	                                    "sshd",
	                                    "sshfs",
	                                    "fusermount",
	                                    "sshfs_options",
	                                    "chroot",
	                                    "start_timeout_ms",
	                                    "mount_timeout_ms",
	                                    "stop_timeout_ms",
	                                    "vfilectl",
	                                    "failover_wait_ms",
	                                    "local_bind",
	                                    "sshfs_tuning",
	                                    NULL};
	struct sftp_fs *fs;
	char *range = NULL;
	int p[2], rc;

	if ((rc = vf_cfg_known(grp, known, err)) != VF_OK)
		return rc;
	if ((fs = calloc(1, sizeof(*fs))) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	fs->base.drv = &fs_sftp_driver;
	fs->guard_r = fs->guard_w = -1;
	fs->nocontain = -1;
	pthread_mutex_init(&fs->mu, NULL);
	pthread_cond_init(&fs->cond, NULL);
	if ((fs->state_dir = strdup(state_dir)) == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = sftp_cfg_read(grp, fs, &range, err)) ||
	    (rc = sftp_cfg_check(grp, fs, range, err)) || (rc = sftp_cfg_defaults(grp, fs, err)))
		goto out;
	if (pipe2(p, O_CLOEXEC) != 0) {
		rc = vf_err_set(err, VF_EINVAL, "file server: pipe: %s", strerror(errno));
		goto out;
	}
	fs->guard_r = p[0];
	fs->guard_w = p[1];
	if (fs->user == NULL || fs->advertise_addr == NULL || fs->fusermount == NULL)
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
out:
	free(range);
	if (rc != VF_OK) {
		sftp_close(fs);
		return rc;
	}
	*arg_r = fs;
	return VF_OK;
}

static void sftp_sweep_arg(void *arg)
{
	sftp_sweep(arg);
}

static int sftp_set_proxy(void *arg, const char *ctl_socket, struct vf_err *err)
{
	struct sftp_fs *fs = arg;

	/* the ProxyCommand goes through sshfs -o (split on ',') and a shell */
	if (ctl_socket[0] != '/' || strpbrk(ctl_socket, ", \t\n%'\"\\$`;&|<>(){}*?[]~!#"))
		return vf_err_set(err, VF_EINVAL,
		                  "file server: plugin socket %s cannot be used in ssh's "
		                  "ProxyCommand (an absolute path without commas, spaces, %% or "
		                  "shell characters)",
		                  ctl_socket);
	free(fs->ctl_socket);
	if ((fs->ctl_socket = strdup(ctl_socket)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	return VF_OK;
}

const struct fs_driver fs_sftp_driver = {
        .name = "sftp",
        .ops = &sftp_ops,
        .open = sftp_open,
        .close = sftp_close,
        .sweep = sftp_sweep_arg,
        .set_proxy = sftp_set_proxy,
};
