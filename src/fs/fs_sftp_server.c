/* The sftp driver, manager side: one sftp-only sshd per volume.
 *
 * start prepares the export directory (<export_root>/<vol>, the files in its data/),
 * writes <state_dir>/sftp/<vol>/{authorized_keys,sshd_config}, picks a free port of
 * port_range and spawns sshd (its log: fs_sftp_log.c, its guard: fs_sftp_guard.c),
 * trying another port when one is taken under it. Calls for one volume are
 * serialised by its slot (struct sftp_srv).
 */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common_int.h"
#include "sftp_int.h"

/* ---- per-volume slots ---- */

static struct sftp_srv *sftp_acquire(struct sftp_fs *fs, const char *vol)
{
	struct sftp_srv *s;

	pthread_mutex_lock(&fs->mu);
	for (;;) {
		for (s = fs->srvs; s && strcmp(s->vol, vol) != 0; s = s->next)
			;
		if (s == NULL || !s->busy)
			break;
		pthread_cond_wait(&fs->cond, &fs->mu);
	}
	if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
		if ((s->vol = strdup(vol)) == NULL) {
			free(s);
			s = NULL;
		} else {
			s->next = fs->srvs;
			fs->srvs = s;
		}
	}
	if (s)
		s->busy = 1;
	pthread_mutex_unlock(&fs->mu);
	return s;
}

static void sftp_release(struct sftp_fs *fs, struct sftp_srv *s)
{
	pthread_mutex_lock(&fs->mu);
	s->busy = 0;
	if (s->pid == 0) {
		struct sftp_srv **p = &fs->srvs;

		while (*p != s)
			p = &(*p)->next;
		*p = s->next;
		free(s->vol);
		free(s);
	}
	pthread_cond_broadcast(&fs->cond);
	pthread_mutex_unlock(&fs->mu);
}

/* s->port is read by other threads picking ports: write it under the lock. */
static void sftp_set_port(struct sftp_fs *fs, struct sftp_srv *s, int port)
{
	pthread_mutex_lock(&fs->mu);
	s->port = port;
	pthread_mutex_unlock(&fs->mu);
}
/* ---- start ---- */

/* sshd's ChrootDirectory refuses a path with a component not owned by root or
 * writable by group/others: say so before sshd does it in its log. */
static int sftp_check_chroot(const char *dir, struct vf_err *err)
{
	char path[PATH_MAX];
	struct stat st;

	if (realpath(dir, path) == NULL)
		return vf_err_set(err, VF_EINVAL, "export dir %s: %s", dir, strerror(errno));
	for (;;) {
		const char *c = path[0] ? path : "/";
		char *slash;

		if (stat(c, &st) != 0)
			return vf_err_set(err, VF_EINVAL, "export dir %s: %s", c, strerror(errno));
		if (st.st_uid != 0 || (st.st_mode & 022))
			return vf_err_set(err, VF_EINVAL,
			                  "export_root path component %s is not owned by root or "
			                  "is writable by group/others: sshd's ChrootDirectory "
			                  "refuses it",
			                  c);
		if (path[0] == '\0' || (slash = strrchr(path, '/')) == NULL)
			break;
		*slash = '\0';
	}
	return VF_OK;
}

static int sftp_prepare_export(struct sftp_fs *fs, const char *vol, const char *info_json,
                               struct vf_err *err)
{
	char dir[PATH_MAX], data[PATH_MAX];
	char *uid = NULL, *gid = NULL;
	struct passwd *pw;
	struct stat st;
	uid_t owner;
	gid_t group;
	int rc;

	if ((rc = sftp_path(dir, sizeof(dir), err, "%s/%s", fs->export_root, vol)) ||
	    (rc = sftp_path(data, sizeof(data), err, "%s/%s/data", fs->export_root, vol)))
		return rc;
	if ((rc = vf_fs_mkdirs(dir, 0755, err)) != VF_OK || (rc = vf_fs_mkdirs(data, 0755, err)))
		return vf_err_prefix(err, "volume %s", vol);
	if (geteuid() != 0)
		return VF_OK;
	if (fs->chroot && chmod(dir, 0755) != 0)
		return vf_err_set(err, VF_EINVAL, "volume %s: chmod %s: %s", vol, dir,
		                  strerror(errno));
	if ((pw = getpwnam(fs->user)) == NULL)
		return vf_err_set(err, VF_EINVAL, "volume %s: no such user '%s'", vol, fs->user);
	/* the files belong to the sftp user, or to the create options uid/gid */
	uid = vf_fs_info_opt(info_json, "uid");
	gid = vf_fs_info_opt(info_json, "gid");
	owner = uid ? (uid_t)strtoul(uid, NULL, 10) : pw->pw_uid;
	group = gid ? (gid_t)strtoul(gid, NULL, 10) : pw->pw_gid;
	if (stat(data, &st) == 0 && (st.st_uid != owner || st.st_gid != group) &&
	    chown(data, owner, group) != 0)
		rc = vf_err_set(err, VF_EINVAL, "volume %s: chown %s to %ld:%ld: %s", vol, data,
		                (long)owner, (long)group, strerror(errno));
	free(uid);
	free(gid);
	if (rc == VF_OK && fs->chroot && (rc = sftp_check_chroot(dir, err)) != VF_OK)
		vf_err_prefix(err, "volume %s", vol);
	return rc;
}

static int sftp_write_config(struct sftp_fs *fs, const char *vol, const char *rundir, int port,
                             struct vf_err *err)
{
	struct vf_buf b = {0};
	char *key = NULL, path[PATH_MAX];
	int rc;

	/* authorized_keys: the cluster public key(s), restricted. */
	rc = vf_fs_read_file(fs->public_key, &key, NULL, err);
	if (rc != VF_OK)
		return vf_err_prefix(err, "volume %s: fileserver.public_key", vol);
	for (char *save = NULL, *line = strtok_r(key, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		if (line[0] && line[0] != '#')
			vf_buf_printf(&b, "restrict %s\n", line);
	free(key);
	if (b.len == 0) {
		vf_buf_free(&b);
		return vf_err_set(err, VF_EINVAL, "volume %s: %s holds no public key", vol,
		                  fs->public_key);
	}
	if ((rc = sftp_path(path, sizeof(path), err, "%s/authorized_keys", rundir)) ||
	    (rc = vf_fs_write_file(path, b.data, b.len, 0600, err))) {
		vf_buf_free(&b);
		return rc;
	}
	vf_buf_free(&b);

	vf_buf_printf(&b, "# Generated by vfiled for volume %s; rewritten on every start.\n", vol);
	vf_buf_printf(&b, "\nPort %d\nListenAddress %s\n", port, fs->listen_addr);
	vf_buf_printf(&b, "HostKey %s\nPidFile none\n", fs->host_key);
	vf_buf_printf(&b, "AuthorizedKeysFile %s/authorized_keys\n", rundir);
	vf_buf_printf(&b, "AuthorizedPrincipalsFile none\nAuthorizedKeysCommand none\n");
	vf_buf_printf(&b, "StrictModes no\nUsePAM no\nPubkeyAuthentication yes\n"
	                  "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
	                  "HostbasedAuthentication no\nPermitEmptyPasswords no\n");
	vf_buf_printf(&b, "PermitRootLogin %s\nAllowUsers %s\n",
	              strcmp(fs->user, "root") == 0 ? "prohibit-password" : "no", fs->user);
	vf_buf_printf(&b, "AllowTcpForwarding no\nAllowStreamLocalForwarding no\n"
	                  "AllowAgentForwarding no\nGatewayPorts no\nX11Forwarding no\n"
	                  "PermitTTY no\nPermitTunnel no\nPermitUserRC no\n"
	                  "PermitUserEnvironment no\nPrintMotd no\nPrintLastLog no\n"
	                  "ClientAliveInterval 15\nClientAliveCountMax 3\nLogLevel INFO\n"
	                  "Compression no\nUseDNS no\n");
	vf_buf_printf(&b, "Subsystem sftp internal-sftp\n");
	if (fs->chroot)
		vf_buf_printf(&b, "ChrootDirectory %s/%s\nForceCommand internal-sftp -d /data\n",
		              fs->export_root, vol);
	else
		vf_buf_printf(&b, "ForceCommand internal-sftp -d %s/%s/data\n", fs->export_root,
		              vol);
	if (b.data == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	rc = sftp_path(path, sizeof(path), err, "%s/sshd_config", rundir);
	if (rc == VF_OK)
		rc = vf_fs_write_file(path, b.data, b.len, 0600, err);
	vf_buf_free(&b);
	return rc;
}

/* Port free on listen_addr? (sshd binds with SO_REUSEADDR too) */
static int sftp_port_free(const char *addr, int port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	char ps[16];
	int fd, ok = 0, one = 1;

	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(addr, ps, &hints, &ai) != 0)
		return 0;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		ok = bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
		close(fd);
	}
	freeaddrinfo(ai);
	return ok;
}

/* Reserve a port: not used by another of our servers and free to bind. */
static int sftp_pick_port(struct sftp_fs *fs, struct sftp_srv *self, const int *avoid,
                          size_t navoid)
{
	int span = fs->port_hi - fs->port_lo + 1, port = 0;

	pthread_mutex_lock(&fs->mu);
	for (int i = 0; i < span && port == 0; i++) {
		int p = fs->port_lo + (fs->port_next + i) % span, used = 0;

		for (struct sftp_srv *s = fs->srvs; s && !used; s = s->next)
			used = s != self && s->port == p;
		for (size_t k = 0; k < navoid && !used; k++)
			used = avoid[k] == p;
		if (!used && sftp_port_free(fs->listen_addr, p)) {
			port = p;
			fs->port_next = (fs->port_next + i + 1) % span;
		}
	}
	self->port = port; /* reserved: other starts skip it */
	pthread_mutex_unlock(&fs->mu);
	return port;
}

/* Connect to the server's port (listen_addr, or loopback for a wildcard). */
static int sftp_port_open(const char *listen_addr, int port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
	struct addrinfo *ai = NULL;
	const char *addr = listen_addr;
	char ps[16];
	int fd, ok = 0;

	if (strcmp(addr, "0.0.0.0") == 0)
		addr = "127.0.0.1";
	else if (strcmp(addr, "::") == 0)
		addr = "::1";
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(addr, ps, &hints, &ai) != 0)
		return 0;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		ok = connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
		close(fd);
	}
	freeaddrinfo(ai);
	return ok;
}

/* The last line of the sshd log (for error messages). */
static void sftp_log_tail(const char *rundir, char *buf, size_t size)
{
	char path[PATH_MAX], *text = NULL;

	buf[0] = '\0';
	if (sftp_path(path, sizeof(path), NULL, "%s/sshd.log", rundir) == VF_OK &&
	    vf_fs_read_file(path, &text, NULL, NULL) == VF_OK)
		vf_fs_last_line(text, buf, size);
	free(text);
}
/* One attempt: spawn sshd on port and wait until it accepts connections.
 * VF_EBUSY when the port was taken under us (try another). */
static int sftp_spawn_one(struct sftp_fs *fs, struct sftp_srv *s, const char *rundir, int port,
                          struct vf_err *err)
{
	char conf[PATH_MAX], logp[PATH_MAX], pidp[PATH_MAX], tail[160], pidtxt[32];
	const char *argv[] = {fs->sshd, "-D", "-e", "-f", conf, NULL};
	int64_t deadline;
	int logfd = -1, rc, st;
	pthread_t logthr;
	pid_t pid;

	if ((rc = sftp_path(conf, sizeof(conf), err, "%s/sshd_config", rundir)) ||
	    (rc = sftp_path(logp, sizeof(logp), err, "%s/sshd.log", rundir)) ||
	    (rc = sftp_path(pidp, sizeof(pidp), err, "%s/sshd.pid", rundir)))
		return rc;
	if ((rc = sftp_write_config(fs, s->vol, rundir, port, err)) != VF_OK)
		return rc;
	if ((rc = sftp_logfwd_start(s->vol, logp, &logfd, &logthr, err)) != VF_OK)
		return rc;
	rc = vf_fs_spawn(argv, NULL, logfd, logfd, &pid, err);
	close(logfd);
	if (rc != VF_OK) {
		sftp_logfwd_end(logthr, 1000);
		return vf_err_prefix(err, "volume %s", s->vol);
	}
	deadline = vf_now_ms() + fs->start_timeout_ms;
	for (;;) {
		if (sftp_port_open(fs->listen_addr, port)) {
			pthread_detach(logthr);
			s->pid = pid;
			s->guard = sftp_guard_start(fs, s->vol, pid);
			snprintf(pidtxt, sizeof(pidtxt), "%ld\n", (long)pid);
			vf_fs_write_file(pidp, pidtxt, strlen(pidtxt), 0600, NULL);
			return VF_OK;
		}
		if (vf_fs_wait(pid, 0, &st) == VF_OK) {
			sftp_logfwd_end(logthr, 1000);
			sftp_log_tail(rundir, tail, sizeof(tail));
			if (strstr(tail, "in use") || strstr(tail, "Cannot bind any address"))
				return VF_EBUSY;
			return vf_err_set(err, VF_EINVAL, "volume %s: sshd exited at start: %s",
			                  s->vol, tail[0] ? tail : "(no message)");
		}
		if (vf_now_ms() >= deadline)
			break;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL); /* poll the port with a deadline (a cold mount waits) */
	}
	vf_fs_kill_wait(pid, 1000);
	sftp_logfwd_end(logthr, 1000);
	sftp_log_tail(rundir, tail, sizeof(tail));
	return vf_err_set(err, VF_ETIMEDOUT,
	                  "volume %s: sshd did not accept connections on %s:%d within %d ms: %s",
	                  s->vol, fs->listen_addr, port, fs->start_timeout_ms,
	                  tail[0] ? tail : "(no message)");
}
int sftp_start(void *arg, const char *vol, const char *info_json, char **addr_r, int *port_r,
               struct vf_err *err)
{
	struct sftp_fs *fs = arg;
	struct sftp_srv *s;
	char rundir[PATH_MAX];
	int rc, tried[8];
	size_t ntried = 0;

	*addr_r = NULL;
	*port_r = 0;
	if (vf_fs_vol_check(vol, err) != VF_OK)
		return VF_EINVAL;
	if ((s = sftp_acquire(fs, vol)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (s->pid > 0 && sftp_alive(fs, s)) {
		rc = VF_OK; /* already serving: same answer */
		goto out;
	}
	if (s->pid > 0)
		vf_log(VF_LOG_WARN, "volume %s: sshd (pid %ld) had exited; restarting", vol,
		       (long)s->pid);
	s->pid = 0;
	sftp_set_port(fs, s, 0);
	if (fs->chroot && geteuid() != 0) {
		rc = vf_err_set(err, VF_EINVAL,
		                "volume %s: the sftp driver's ChrootDirectory needs vfiled to run "
		                "as root (or set fileserver.chroot = false: no confinement)",
		                vol);
		goto out;
	}
	if ((rc = sftp_check_file("host_key", fs->host_key, err)) ||
	    (rc = sftp_check_file("public_key", fs->public_key, err)) ||
	    (rc = sftp_prepare_export(fs, vol, info_json, err)) ||
	    (rc = sftp_path(rundir, sizeof(rundir), err, "%s/sftp/%s", fs->state_dir, vol)) ||
	    (rc = vf_fs_mkdirs(rundir, 0700, err)))
		goto out;
	if (geteuid() == 0 && access("/run/sshd", F_OK) != 0)
		mkdir("/run/sshd", 0755); /* sshd's privilege separation directory */
	do {
		int port = sftp_pick_port(fs, s, tried, ntried);

		if (port == 0) {
			rc = vf_err_set(err, VF_EBUSY, "volume %s: no free port in %d-%d on %s",
			                vol, fs->port_lo, fs->port_hi, fs->listen_addr);
			goto out;
		}
		tried[ntried++] = port;
		rc = sftp_spawn_one(fs, s, rundir, port, err);
	} while (rc == VF_EBUSY && ntried < sizeof(tried) / sizeof(tried[0]));
	if (rc == VF_EBUSY)
		rc = vf_err_set(err, VF_EBUSY, "volume %s: ports kept being taken (last %d)", vol,
		                tried[ntried - 1]);
	if (rc == VF_OK)
		vf_log(VF_LOG_INFO, "volume %s: sftp server (pid %ld) on %s:%d", vol, (long)s->pid,
		       fs->listen_addr, s->port);
out:
	if (rc != VF_OK && s->pid == 0)
		sftp_set_port(fs, s, 0);
	if (rc == VF_OK) {
		*port_r = s->port;
		if ((*addr_r = strdup(fs->advertise_addr)) == NULL)
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	sftp_release(fs, s);
	return rc;
}

int sftp_stop(void *arg, const char *vol, const char *info_json, struct vf_err *err)
{
	struct sftp_fs *fs = arg;
	struct sftp_srv *s;
	char pidp[PATH_MAX];

	if (vf_fs_vol_check(vol, err) != VF_OK)
		return VF_EINVAL;
	if ((s = sftp_acquire(fs, vol)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (s->pid > 0) {
		if (sftp_alive(fs, s))
			sftp_kill(fs, s);
		vf_log(VF_LOG_INFO, "volume %s: sftp server (pid %ld) stopped", vol, (long)s->pid);
	}
	if (sftp_path(pidp, sizeof(pidp), NULL, "%s/sftp/%s/sshd.pid", fs->state_dir, vol) == VF_OK)
		unlink(pidp);
	s->pid = 0;
	sftp_set_port(fs, s, 0);
	sftp_release(fs, s);
	return VF_OK;
}

int sftp_running(void *arg, const char *vol)
{
	struct sftp_fs *fs = arg;
	struct sftp_srv *s;
	int alive;

	if (vf_fs_vol_check(vol, NULL) != VF_OK || (s = sftp_acquire(fs, vol)) == NULL)
		return 0;
	alive = sftp_alive(fs, s);
	if (!alive) {
		s->pid = 0;
		sftp_set_port(fs, s, 0);
	}
	sftp_release(fs, s);
	return alive;
}
