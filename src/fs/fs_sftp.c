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
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common_int.h"
#include "fs_int.h"

#define SFTP_HOST_ALIAS "vfile-cluster"

struct sftp_srv {
	char *vol;
	pid_t pid;   /* sshd; 0 while starting */
	pid_t guard; /* its guard (see above); 0 none */
	int port;
	int busy; /* a start/stop/running runs for this volume */
	struct sftp_srv *next;
};

struct sftp_fs {
	struct fs_base base;
	char *state_dir;
	char *export_root;
	char *listen_addr;
	char *advertise_addr; /* what start() returns (default: listen_addr) */
	char *user;
	char *private_key, *public_key, *host_key, *host_public_key;
	char *sshd, *sshfs, *fusermount;
	char **sshfs_opts;
	size_t nsshfs_opts;
	int port_lo, port_hi, port_next;
	int start_timeout_ms, mount_timeout_ms, stop_timeout_ms;
	int chroot;
	int local_bind;       /* a host that serves the volume mounts it with a bind mount */
	int tuned;            /* the sshfs/ssh performance options (sshfs_tuning) */
	int nocontain;        /* this sshfs knows no_contain_symlinks: 1 yes, 0 no, -1 not asked */
	char *vfilectl;       /* for the ProxyCommand */
	char *ctl_socket;     /* vfiled's socket: mounts go through the proxy; NULL direct */
	int failover_wait_ms; /* the proxy's wait for a live server */
	int guard_r, guard_w; /* the guards' pipe: vfiled holds the only write end */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct sftp_srv *srvs;
};

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

/* ---- paths and processes ---- */

static int sftp_path(char *buf, size_t size, struct vf_err *err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int sftp_path(char *buf, size_t size, struct vf_err *err, const char *fmt, ...)
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

/* Is pid an sshd running with our config file? (for leftovers of an earlier run) */
static int sftp_pid_is_ours(pid_t pid, const char *conf)
{
	char path[64], *cmd = NULL, state = '?';
	size_t len = 0;
	int ours = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "re")) != NULL) {
		/* "pid (comm) S ...": the state follows the last ')' */
		char line[512], *p;

		if (fgets(line, sizeof(line), f) && (p = strrchr(line, ')')) != NULL)
			state = p[2];
		fclose(f);
	}
	if (state == '?' || state == 'Z' || state == 'X')
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if (vf_fs_read_file(path, &cmd, &len, NULL) != VF_OK)
		return 0;
	/* sshd rewrites its title ("sshd: /usr/sbin/sshd -D -e -f CONF [listener] ..."),
	 * so look for "-f CONF" in the arguments joined with spaces. */
	for (size_t i = 0; i < len; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	char *hit = strstr(cmd, "-f ");
	while (hit && !ours) {
		size_t n = strlen(conf);

		ours = strncmp(hit + 3, conf, n) == 0 && (hit[3 + n] == ' ' || hit[3 + n] == '\0');
		hit = strstr(hit + 3, "-f ");
	}
	free(cmd);
	return ours;
}

/* ---- killing a server: async-signal-safe, for the forked guard too ---- */

/* pid's parent from /proc/<pid>/stat (name: pid's decimal digits), or -1. */
static long sftp_ppid_of(const char *name)
{
	char path[64] = "/proc/", buf[512];
	size_t k = 6;
	ssize_t n;
	int fd;

	for (const char *c = name; *c && k < sizeof(path) - 6; c++)
		path[k++] = *c;
	memcpy(path + k, "/stat", 6);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* "pid (comm) S ppid ...": after the last ')' */
	char *p = NULL;
	for (char *q = buf; *q; q++)
		if (*q == ')')
			p = q;
	if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[3] != ' ')
		return -1;
	long v = 0;
	for (p += 4; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	return v;
}

/* SIGKILL root and every process under it (sshd's sessions run in their own
 * sessions: the process group does not reach them). Each one found is stopped
 * first, so that none forks or is reparented while the tree is walked. No
 * allocation, no stdio: raw getdents64 over /proc. */
#define SFTP_TREE_MAX 512
static void sftp_kill_tree(pid_t root)
{
	pid_t set[SFTP_TREE_MAX];
	size_t n = 1, before;
	char dents[4096];

	set[0] = root;
	kill(root, SIGSTOP);
	for (int pass = 0; pass < 8; pass++) {
		int dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		long got;

		if (dfd < 0)
			break;
		before = n;
		while ((got = syscall(SYS_getdents64, dfd, dents, sizeof(dents))) > 0) {
			for (long off = 0; off < got;) {
				/* struct linux_dirent64: ino (8), off (8), reclen (2), type (1),
				 * name */
				unsigned short reclen;
				const char *name = dents + off + 19;
				long pid = 0, ppid;
				int isnum = name[0] != '\0', known = 0;

				memcpy(&reclen, dents + off + 16, sizeof(reclen));
				off += reclen;
				for (const char *c = name; *c && isnum; c++)
					isnum = *c >= '0' && *c <= '9';
				if (!isnum)
					continue;
				for (const char *c = name; *c; c++)
					pid = pid * 10 + (*c - '0');
				for (size_t i = 0; i < n && !known; i++)
					known = set[i] == (pid_t)pid;
				if (known || n >= SFTP_TREE_MAX || (ppid = sftp_ppid_of(name)) <= 0)
					continue;
				for (size_t i = 0; i < n; i++)
					if (set[i] == (pid_t)ppid) {
						kill((pid_t)pid, SIGSTOP);
						set[n++] = (pid_t)pid;
						break;
					}
			}
		}
		close(dfd);
		if (n == before)
			break; /* nothing new under the tree: complete */
	}
	for (size_t i = 0; i < n; i++)
		kill(set[i], SIGKILL);
}

/* Fork the guard of sshd (see the top of the file); its pid, or 0 when the fork
 * failed (the server then runs unguarded: said in the log). */
static pid_t sftp_guard_start(struct sftp_fs *fs, const char *vol, pid_t sshd)
{
	pid_t g;

	if (fs->guard_r < 0)
		return 0;
	g = fork();
	if (g == 0) {
		/* the guard: only async-signal-safe calls from here on */
		char c;

		if (dup2(fs->guard_r, 0) < 0)
			_exit(1);
#ifdef SYS_close_range
		if (syscall(SYS_close_range, 1U, ~0U, 0U) != 0)
#endif
			for (int fd = 1; fd < 65536; fd++)
				close(fd);
		for (;;) {
			ssize_t r = read(0, &c, 1);

			if (r == 0 || (r < 0 && errno != EINTR))
				break; /* vfiled is gone */
		}
		sftp_kill_tree(sshd);
		_exit(0);
	}
	if (g < 0) {
		vf_log(VF_LOG_ERR,
		       "volume %s: cannot fork the guard of sshd %ld: %s (it may outlive "
		       "vfiled)",
		       vol, (long)sshd, strerror(errno));
		return 0;
	}
	return g;
}

/* End the guard of s (the server is being stopped, or has exited). */
static void sftp_guard_stop(struct sftp_srv *s)
{
	int st;

	if (s->guard <= 0)
		return;
	kill(s->guard, SIGKILL);
	vf_fs_wait(s->guard, -1, &st);
	s->guard = 0;
}

static int sftp_alive(struct sftp_fs *fs, struct sftp_srv *s)
{
	int st;

	(void)fs;
	if (s->pid <= 0)
		return 0;
	if (waitpid(s->pid, &st, WNOHANG) == 0)
		return 1;
	sftp_guard_stop(s); /* exited (now reaped): its guard has nothing to guard */
	return 0;
}

/* Stop s: its guard, then the sshd and its sessions; reap it. */
static void sftp_kill(struct sftp_fs *fs, struct sftp_srv *s)
{
	int st;

	sftp_guard_stop(s);
	sftp_kill_tree(s->pid);
	vf_fs_wait(s->pid, fs->stop_timeout_ms, &st);
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

/* ---- sshd's log: into <rundir>/sshd.log and vfiled's log ----
 * sshd runs with -e (its log on stderr), stderr is a pipe; a detached thread per
 * sshd copies each line to sshd.log (read back by start errors) and logs it
 * as "volume VOL: sshd: LINE" with a priority judged from the line (fatal, bind
 * failures: err; errors, refused or failed authentication: warning; the start's
 * connection test, plain disconnects: debug; else info). It ends when the last holder of
 * the pipe (sshd and its sessions) is gone. sshd logs no secret at LogLevel
 * INFO (a key is named by its fingerprint). */
struct sftp_logfwd {
	int rfd, filefd;
	char vol[256];
};

/* Forwarders running (any driver instance): sftp_close waits for them. */
static pthread_mutex_t sftp_logfwd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sftp_logfwd_cv;
static pthread_once_t sftp_logfwd_once = PTHREAD_ONCE_INIT;
static int sftp_logfwd_n;

/* sftp_logfwd_cv waits on the monotonic clock (vf_cond_init) */
static void sftp_logfwd_cv_init(void)
{
	vf_cond_init(&sftp_logfwd_cv);
}

/* Wait (up to ms) until no forwarder runs (their sshd are stopped). */
static void sftp_logfwd_drain(int ms)
{
	int64_t until = vf_now_ms() + ms;

	pthread_once(&sftp_logfwd_once, sftp_logfwd_cv_init);
	pthread_mutex_lock(&sftp_logfwd_mu);
	while (sftp_logfwd_n > 0)
		if (vf_cond_wait_until(&sftp_logfwd_cv, &sftp_logfwd_mu, until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&sftp_logfwd_mu);
}

static void sftp_logfwd_line(const struct sftp_logfwd *f, char *line)
{
	int level = VF_LOG_INFO;

	if (line[0] == '\0')
		return;
	/* sshd -e writes most lines without their level: judged by the text */
	if (strncmp(line, "fatal", 5) == 0 || strstr(line, "Cannot bind") ||
	    strstr(line, "Missing privilege separation"))
		level = VF_LOG_ERR;
	else if (strncmp(line, "error", 5) == 0 || strstr(line, "authenticating user") ||
	         strstr(line, "Invalid user") || strstr(line, "refused") ||
	         strstr(line, "Failed ") || strstr(line, "Bad "))
		level = VF_LOG_WARN;
	else if (strncmp(line, "debug", 5) == 0 || strstr(line, "kex_exchange_identification") ||
	         strncmp(line, "Connection closed by", 20) == 0 ||
	         strncmp(line, "Connection reset by", 19) == 0)
		level = VF_LOG_DEBUG; /* the start's connection test, port probes */
	vf_log(level, "volume %s: sshd: %s", f->vol, line);
}

static void *sftp_logfwd_run(void *arg)
{
	struct sftp_logfwd *f = arg;
	char buf[4096];
	size_t have = 0;

	for (;;) {
		ssize_t r = read(f->rfd, buf + have, sizeof(buf) - 1 - have);
		char *p, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (f->filefd >= 0 && write(f->filefd, buf + have, (size_t)r) < 0) {
			/* the file is a copy for start errors: the log line below stays */
		}
		have += (size_t)r;
		buf[have] = '\0';
		for (p = buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
			*nl = '\0';
			if (nl > p && nl[-1] == '\r')
				nl[-1] = '\0';
			sftp_logfwd_line(f, p);
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (have == sizeof(buf) - 1) { /* a line longer than the buffer: cut */
			buf[have] = '\0';
			sftp_logfwd_line(f, buf);
			have = 0;
		}
	}
	buf[have] = '\0';
	sftp_logfwd_line(f, buf);
	close(f->rfd);
	if (f->filefd >= 0)
		close(f->filefd);
	free(f);
	pthread_mutex_lock(&sftp_logfwd_mu);
	sftp_logfwd_n--;
	pthread_cond_broadcast(&sftp_logfwd_cv);
	pthread_mutex_unlock(&sftp_logfwd_mu);
	return NULL;
}

/* The pipe sshd's stderr goes to (*wfd_r: its write end, the caller closes it
 * once sshd is spawned) and the thread that forwards it (*thr_r, joinable). */
static int sftp_logfwd_start(const char *vol, const char *logp, int *wfd_r, pthread_t *thr_r,
                             struct vf_err *err)
{
	struct sftp_logfwd *f = calloc(1, sizeof(*f));
	int fds[2];

	if (f == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	snprintf(f->vol, sizeof(f->vol), "%s", vol);
	f->filefd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f->filefd < 0) {
		free(f);
		return vf_err_set(err, VF_EINVAL, "volume %s: cannot open %s: %s", vol, logp,
		                  strerror(errno));
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		close(f->filefd);
		free(f);
		return vf_err_set(err, VF_EINVAL, "volume %s: cannot make sshd's log pipe: %s", vol,
		                  strerror(errno));
	}
	f->rfd = fds[0];
	pthread_once(&sftp_logfwd_once, sftp_logfwd_cv_init); /* before any forwarder */
	pthread_mutex_lock(&sftp_logfwd_mu);
	sftp_logfwd_n++;
	pthread_mutex_unlock(&sftp_logfwd_mu);
	if (pthread_create(thr_r, NULL, sftp_logfwd_run, f) != 0) {
		pthread_mutex_lock(&sftp_logfwd_mu);
		sftp_logfwd_n--;
		pthread_mutex_unlock(&sftp_logfwd_mu);
		close(fds[0]);
		close(fds[1]);
		close(f->filefd);
		free(f);
		return vf_err_set(err, VF_ENOMEM, "volume %s: cannot start sshd's log thread", vol);
	}
	*wfd_r = fds[1];
	return VF_OK;
}

/* sshd exited or was killed at start: wait (bounded) until its last lines are
 * in sshd.log; a session child still holding the pipe: leave the thread be. */
static void sftp_logfwd_end(pthread_t thr, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (pthread_timedjoin_np(thr, NULL, &ts) != 0)
		pthread_detach(thr);
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

static int sftp_check_file(const char *what, const char *path, struct vf_err *err)
{
	if (access(path, R_OK) != 0)
		return vf_err_set(err, VF_EINVAL, "fileserver.%s %s: %s", what, path,
		                  strerror(errno));
	return VF_OK;
}

static int sftp_check_exec(const char *what, const char *path, struct vf_err *err)
{
	if (access(path, X_OK) != 0)
		return vf_err_set(err, VF_EINVAL, "fileserver.%s %s: %s", what, path,
		                  strerror(errno));
	return VF_OK;
}

static int sftp_start(void *arg, const char *vol, const char *info_json, char **addr_r, int *port_r,
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

static int sftp_stop(void *arg, const char *vol, const char *info_json, struct vf_err *err)
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

static int sftp_running(void *arg, const char *vol)
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

/* ---- a restarted daemon ---- */

/* Stop every sshd that an earlier run of vfiled on this state_dir left behind
 * (its pid file names a live sshd running that volume's config): such a server
 * outlived its daemon's lease, so the store does not name it any more. */
static void sftp_sweep(struct sftp_fs *fs)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;

	if (sftp_path(dir, sizeof(dir), NULL, "%s/sftp", fs->state_dir) != VF_OK ||
	    (d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char pidp[PATH_MAX], conf[PATH_MAX], *text = NULL;
		int64_t deadline;
		long pid;

		if (e->d_name[0] == '.' || vf_fs_vol_check(e->d_name, NULL) != VF_OK ||
		    sftp_path(pidp, sizeof(pidp), NULL, "%s/%s/sshd.pid", dir, e->d_name) ||
		    sftp_path(conf, sizeof(conf), NULL, "%s/%s/sshd_config", dir, e->d_name) ||
		    vf_fs_read_file(pidp, &text, NULL, NULL) != VF_OK)
			continue;
		pid = strtol(text, NULL, 10);
		free(text);
		if (pid > 0 && sftp_pid_is_ours((pid_t)pid, conf)) {
			vf_log(VF_LOG_WARN,
			       "volume %s: stopping the sshd (pid %ld) an earlier run of vfiled "
			       "left "
			       "running",
			       e->d_name, pid);
			sftp_kill_tree((pid_t)pid);
			deadline = vf_now_ms() + fs->stop_timeout_ms;
			while (sftp_pid_is_ours((pid_t)pid, conf) && vf_now_ms() < deadline) {
				struct timespec ts = {0, 20 * 1000 * 1000};
				nanosleep(&ts, NULL); /* not our child: poll with a deadline */
			}
		}
		unlink(pidp);
	}
	closedir(d);
}

/* ---- host side ---- */

/* Make the mountpoint directory immutable (on: chattr +i; off: -i). While no sshfs
 * is mounted on it — a remount's window after a dead mount was dropped, an sshfs
 * that died — a program that creates a file under it then fails (EPERM, even as
 * root) instead of writing into the host's own directory, where the next mount
 * would hide what it wrote (an acknowledged write lost). Needs
 * CAP_LINUX_IMMUTABLE and a filesystem with the flag: else a debug line only.
 * Returns whether the flag was set before (-1: unknown). */
static int sftp_seal(const char *vol, const char *mountpoint, int on)
{
	int fd = open(mountpoint, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), flags = 0;
	int was = -1;

	if (fd < 0)
		return -1;
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0)
		was = (flags & FS_IMMUTABLE_FL) != 0;
	if (was >= 0 && was != !!on) {
		flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
		if (ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0)
			vf_log(VF_LOG_DEBUG, "volume %s: cannot %s the immutable flag of %s: %s",
			       vol, on ? "set" : "clear", mountpoint, strerror(errno));
	}
	close(fd);
	return was;
}

/* Does addr:port accept a TCP connection within timeout_ms? (the server an info
 * document names: see sftp_mount) */
static int sftp_probe(const char *addr, int port, int timeout_ms)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
	struct addrinfo *ai = NULL;
	char ps[16];
	int fd, ok = 0;

	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(addr, ps, &hints, &ai) != 0)
		return 0;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0) {
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			ok = 1;
		} else if (errno == EINPROGRESS) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			int e = 0;
			socklen_t el = sizeof(e);

			ok = poll(&p, 1, timeout_ms) == 1 &&
			     getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0;
		}
		close(fd);
	}
	freeaddrinfo(ai);
	return ok;
}

/* Does this sshfs know -o no_contain_symlinks? (asked once: sshfs -h) */
static int sftp_sshfs_contains(struct sftp_fs *fs)
{
	const char *argv[] = {fs->sshfs, "-h", NULL};
	char *out = NULL, *errout = NULL;
	int status, yes;

	pthread_mutex_lock(&fs->mu);
	yes = fs->nocontain;
	pthread_mutex_unlock(&fs->mu);
	if (yes >= 0)
		return yes;
	yes = 0;
	if (vf_fs_run(argv, NULL, fs->mount_timeout_ms, &status, &out, &errout, NULL) == VF_OK)
		yes = (out && strstr(out, "no_contain_symlinks")) ||
		      (errout && strstr(errout, "no_contain_symlinks"));
	free(out);
	free(errout);
	pthread_mutex_lock(&fs->mu);
	fs->nocontain = yes;
	pthread_mutex_unlock(&fs->mu);
	return yes;
}

/* Does this driver serve vol right now, at the address info names? (the host that
 * serves a volume uses its export directory directly: sftp_mount_bind) */
static int sftp_serves(struct sftp_fs *fs, const char *vol, const char *addr, int port)
{
	int yes = 0;

	if (strcmp(addr, fs->advertise_addr) != 0)
		return 0;
	pthread_mutex_lock(&fs->mu);
	for (struct sftp_srv *s = fs->srvs; s && !yes; s = s->next)
		yes = strcmp(s->vol, vol) == 0 && s->pid > 0 && s->port == port &&
		      kill(s->pid, 0) == 0;
	pthread_mutex_unlock(&fs->mu);
	return yes;
}

/* The filesystem type of the mount at path ("fuse.sshfs", "ext4", ...), or "". */
static void sftp_mount_type(const char *path, char *buf, size_t size)
{
	char want[PATH_MAX], *line = NULL;
	size_t cap = 0;
	FILE *f;

	buf[0] = '\0';
	if (realpath(path, want) == NULL)
		snprintf(want, sizeof(want), "%s", path);
	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return;
	/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER */
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *tok = strtok_r(line, " ", &save), *mp = NULL;
		int i = 1;

		for (; tok && i < 5; i++)
			tok = strtok_r(NULL, " ", &save);
		mp = tok;
		while (tok && strcmp(tok, "-") != 0)
			tok = strtok_r(NULL, " ", &save);
		if (mp == NULL || tok == NULL || (tok = strtok_r(NULL, " ", &save)) == NULL)
			continue;
		/* the last mount on the path wins (mounts stack) */
		if (strcmp(mp, want) == 0 || strcmp(mp, path) == 0)
			snprintf(buf, size, "%s", tok);
	}
	free(line);
	fclose(f);
}

/* The serving host's mount: a bind mount of <export_root>/<vol>/data, no ssh. The
 * data is the very storage the sshd serves to the other hosts (and, export_root
 * being shared storage, the storage any later server of the volume serves), so it
 * stays right when the server moves to another manager or this vfiled dies: see
 * doc/fileserver.md, "The serving host". */
static int sftp_mount_bind(struct sftp_fs *fs, const char *vol, const char *info_json,
                           const char *mountpoint, struct vf_err *err)
{
	char data[PATH_MAX];
	char *mode = vf_fs_info_opt(info_json, "mode");
	int ro = mode && strcmp(mode, "ro") == 0, rc, sealed;

	free(mode);
	if ((rc = sftp_path(data, sizeof(data), err, "%s/%s/data", fs->export_root, vol)) != VF_OK)
		return rc;
	sealed = sftp_seal(vol, mountpoint, 1);
	/* the type (and a remount's source) are ignored for a bind mount; "none", not
	 * NULL, so that memory checkers need not know that */
	if (mount(data, mountpoint, "none", MS_BIND, NULL) != 0) {
		rc = vf_err_set(err, VF_EINVAL, "volume %s: bind mount of %s at %s: %s", vol, data,
		                mountpoint, strerror(errno));
	} else if (ro &&
	           mount("none", mountpoint, "none", MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
		rc = vf_err_set(err, VF_EINVAL, "volume %s: read-only remount of %s: %s", vol,
		                mountpoint, strerror(errno));
		umount2(mountpoint, MNT_DETACH);
	}
	if (rc != VF_OK) {
		if (sealed == 0)
			sftp_seal(vol, mountpoint, 0);
		return rc;
	}
	vf_log(VF_LOG_INFO, "volume %s: this host serves it: bind mount of %s at %s%s", vol, data,
	       mountpoint, ro ? " (read-only)" : "");
	return VF_OK;
}

static int sftp_mount(void *arg, const char *vol, const char *info_json, const char *mountpoint,
                      struct vf_err *err)
{
	struct sftp_fs *fs = arg;
	char *addr = NULL, *hostkey = NULL, *out = NULL, *errout = NULL;
	char dir[PATH_MAX], kh[PATH_MAX], remote[PATH_MAX + 300], line[160];
	char o_port[32], o_id[PATH_MAX + 32], o_kh[PATH_MAX + 32];
	char o_proxy[2 * PATH_MAX + 200] = "", o_ctimeout[40] = "ConnectTimeout=10";
	struct vf_buf khtext = {0};
	const char **argv = NULL;
	int port, rc, status, k = 0, sealed = -1;

	if (vf_fs_vol_check(vol, err) != VF_OK)
		return VF_EINVAL;
	if (vf_fs_is_mounted(mountpoint)) {
		struct statvfs sv;

		/* statvfs goes to the server (stat may be answered from sshfs' cache) */
		if (statvfs(mountpoint, &sv) == 0)
			return VF_OK; /* mounted and answering */
		/* a dead sshfs (server gone, e.g. restarted elsewhere): drop it, remount */
		const char *uargv[] = {fs->fusermount, "-u", "-z", mountpoint, NULL};
		vf_log(VF_LOG_WARN, "volume %s: stale mount at %s (%s): remounting", vol,
		       mountpoint, strerror(errno));
		if (vf_fs_run(uargv, NULL, fs->mount_timeout_ms, &status, NULL, NULL, NULL) !=
		            VF_OK ||
		    vf_fs_wait_mounted(mountpoint, 0, fs->mount_timeout_ms) != VF_OK)
			return vf_err_set(err, VF_EBUSY, "volume %s: cannot drop stale mount at %s",
			                  vol, mountpoint);
	}
	if ((rc = vf_fs_info_server(info_json, &addr, &port, err)) != VF_OK) {
		vf_err_prefix(err, "volume %s", vol);
		goto out;
	}
	if (fs->local_bind && sftp_serves(fs, vol, addr, port)) {
		rc = sftp_mount_bind(fs, vol, info_json, mountpoint, err);
		goto out;
	}
	if (fs->ctl_socket && (rc = sftp_check_exec("vfilectl", fs->vfilectl, err)) != VF_OK)
		goto out;
	if (fs->ctl_socket && port > 0 && !sftp_probe(addr, port, 3000)) {
		/* Through the proxy a mount would wait (up to mount_timeout_ms) for a
		 * live server: right for a reconnect, wrong for a first mount made with
		 * an info document that names a server already stopped (the volume
		 * layer's one-txn first mount tries the info it remembers, and takes
		 * the locked way, which starts a server, only when this fails). */
		rc = vf_err_set(err, VF_EUNAVAIL,
		                "volume %s: the server %s:%d named by its info does not accept "
		                "connections (stopped or moved)",
		                vol, addr, port);
		goto out;
	}
	if (fs->ctl_socket) {
		/* through the proxy: it finds the live server (and follows it) */
		snprintf(o_proxy, sizeof(o_proxy), "ProxyCommand=%s -s %s proxy %s --wait-ms %d",
		         fs->vfilectl, fs->ctl_socket, vol, fs->failover_wait_ms);
		snprintf(o_ctimeout, sizeof(o_ctimeout), "ConnectTimeout=%d",
		         fs->failover_wait_ms / 1000 + 10);
	}
	if (port <= 0) {
		rc = vf_err_set(err, VF_EPROTO, "volume %s: file server has no port", vol);
		goto out;
	}
	/* known_hosts: the cluster host key under a fixed alias (any address/port). */
	if ((rc = sftp_check_file("private_key", fs->private_key, err)) ||
	    (rc = vf_fs_read_file(fs->host_public_key, &hostkey, NULL, err)))
		goto out;
	for (char *save = NULL, *l = strtok_r(hostkey, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save))
		if (l[0] && l[0] != '#')
			vf_buf_printf(&khtext, "%s %s\n", SFTP_HOST_ALIAS, l);
	if (khtext.len == 0) {
		rc = vf_err_set(err, VF_EINVAL, "fileserver.host_public_key %s holds no key",
		                fs->host_public_key);
		goto out;
	}
	if ((rc = sftp_path(dir, sizeof(dir), err, "%s/sftp-client", fs->state_dir)) ||
	    (rc = vf_fs_mkdirs(dir, 0700, err)) ||
	    (rc = sftp_path(kh, sizeof(kh), err, "%s/known_hosts", dir)) ||
	    (rc = vf_fs_write_file(kh, khtext.data, khtext.len, 0644, err)))
		goto out;
	snprintf(remote, sizeof(remote), strchr(addr, ':') ? "%s@[%s]:%s%s%s%s" : "%s@%s:%s%s%s%s",
	         fs->user, addr, fs->chroot ? "/data" : fs->export_root, fs->chroot ? "" : "/",
	         fs->chroot ? "" : vol, fs->chroot ? "" : "/data");
	/* create options: mode=ro mounts read-only; uid/gid own the files as shown */
	char *mode = vf_fs_info_opt(info_json, "mode"), *uid = vf_fs_info_opt(info_json, "uid");
	char *gid = vf_fs_info_opt(info_json, "gid"), o_uid[40] = "", o_gid[40] = "";
	int ro = mode && strcmp(mode, "ro") == 0;
	if (uid)
		snprintf(o_uid, sizeof(o_uid), "uid=%.30s", uid);
	if (gid)
		snprintf(o_gid, sizeof(o_gid), "gid=%.30s", gid);
	free(mode);
	free(uid);
	free(gid);
	snprintf(o_port, sizeof(o_port), "port=%d", port);
	snprintf(o_id, sizeof(o_id), "IdentityFile=%s", fs->private_key);
	snprintf(o_kh, sizeof(o_kh), "UserKnownHostsFile=%s", kh);
	argv = calloc(60 + 2 * fs->nsshfs_opts, sizeof(char *));
	if (argv == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	sealed = sftp_seal(vol, mountpoint, 1);
	argv[k++] = fs->sshfs;
	argv[k++] = remote;
	argv[k++] = mountpoint;
	const char *opts[] = {o_proxy[0] ? o_proxy : o_port,
	                      o_id,
	                      "IdentitiesOnly=yes",
	                      o_kh,
	                      "GlobalKnownHostsFile=/dev/null",
	                      "StrictHostKeyChecking=yes",
	                      "HostKeyAlias=" SFTP_HOST_ALIAS,
	                      "BatchMode=yes",
	                      "PasswordAuthentication=no",
	                      o_ctimeout,
	                      "ServerAliveInterval=5",
	                      "ServerAliveCountMax=3",
	                      "reconnect",
	                      "LogLevel=ERROR",
	                      geteuid() == 0 ? "allow_other" : NULL,
	                      ro ? "ro" : NULL,
	                      o_uid[0] ? o_uid : NULL,
	                      o_gid[0] ? o_gid : NULL};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		if (opts[i]) {
			argv[k++] = "-o";
			argv[k++] = opts[i];
		}
	/* sshfs_tuning (doc/performance.md, "Data plane"): a cipher with AES-NI first
	 * (chacha20 where it lacks), the classic curve25519 key exchange (the default
	 * sntrup761 hybrid costs ~70 ms per connection, paid by every cold mount and
	 * reconnect), no compression, 4 connections (one ssh is bound to one core),
	 * and sshfs' attribute/name cache bounded to 1 s (its default, 20 s, would let
	 * a host see another host's changes 20 s late: doc/fileserver.md,
	 * "Consistency"). Commas inside a value are escaped for sshfs' -o parser. */
	static const char *const tuned[] = {
	        "Ciphers=aes128-gcm@openssh.com\\,chacha20-poly1305@openssh.com",
	        "KexAlgorithms=curve25519-sha256\\,curve25519-sha256@libssh.org\\,"
	        "sntrup761x25519-sha512@openssh.com",
	        "Compression=no", "max_conns=4", "dcache_timeout=1"};
	if (sftp_sshfs_contains(fs)) {
		/* Debian's sshfs 3.7.3-1.2 (CVE-2026-47187) answers EPERM for every
		 * symlink whose target is absolute or holds "..": against a malicious
		 * server. Ours is authenticated by the cluster host key, and such
		 * links are ordinary POSIX (../lib/x, tar's delayed links): serve them
		 * as a local filesystem would (doc/fileserver.md, "POSIX behaviour"). */
		argv[k++] = "-o";
		argv[k++] = "no_contain_symlinks";
	}
	for (size_t i = 0; fs->tuned && i < sizeof(tuned) / sizeof(tuned[0]); i++) {
		argv[k++] = "-o";
		argv[k++] = tuned[i];
	}
	for (size_t i = 0; i < fs->nsshfs_opts; i++) {
		argv[k++] = "-o";
		argv[k++] = fs->sshfs_opts[i];
	}
	rc = vf_fs_run(argv, NULL, fs->mount_timeout_ms, &status, &out, &errout, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: mount at %s", vol, mountpoint);
		goto out;
	}
	if (status != 0) {
		rc = vf_err_set(err, VF_EINVAL, "volume %s: sshfs %s:%d failed (exit %d): %s", vol,
		                addr, port, status,
		                vf_fs_last_line(errout, line, sizeof(line))[0] ? line
		                                                               : "(no message)");
		goto out;
	}
	if (vf_fs_wait_mounted(mountpoint, 1, fs->mount_timeout_ms) != VF_OK) {
		rc = vf_err_set(err, VF_ETIMEDOUT, "volume %s: sshfs did not mount %s within %d ms",
		                vol, mountpoint, fs->mount_timeout_ms);
		goto out;
	}
	vf_log(VF_LOG_INFO, "volume %s: mounted %s:%d at %s%s", vol, addr, port, mountpoint,
	       o_proxy[0] ? " (through vfilectl proxy: follows the volume's server)" : "");
out:
	/* a first mount that failed leaves a plain directory; a remount that failed
	 * keeps it sealed (what was under the dead mount stays unwritable) */
	if (rc != VF_OK && sealed == 0 && !vf_fs_is_mounted(mountpoint))
		sftp_seal(vol, mountpoint, 0);
	free(argv);
	free(addr);
	free(hostkey);
	free(out);
	free(errout);
	vf_buf_free(&khtext);
	return rc;
}

static int sftp_unmount(void *arg, const char *vol, const char *mountpoint, struct vf_err *err)
{
	struct sftp_fs *fs = arg;
	const char *argv[] = {fs->fusermount, "-u", mountpoint, NULL};
	char *errout = NULL, line[160];
	int rc, status;

	if (!vf_fs_is_mounted(mountpoint))
		return VF_OK;
	sftp_mount_type(mountpoint, line, sizeof(line));
	if (line[0] && strncmp(line, "fuse", 4) != 0) {
		/* the serving host's bind mount (sftp_mount_bind) */
		if (umount2(mountpoint, 0) != 0 && vf_fs_is_mounted(mountpoint))
			return vf_err_set(err, errno == EBUSY ? VF_EBUSY : VF_EINVAL,
			                  "volume %s: unmount %s: %s", vol, mountpoint,
			                  strerror(errno));
		sftp_seal(vol, mountpoint, 0);
		vf_log(VF_LOG_INFO, "volume %s: unmounted %s (bind mount)", vol, mountpoint);
		return VF_OK;
	}
	rc = vf_fs_run(argv, NULL, fs->mount_timeout_ms, &status, NULL, &errout, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: unmount %s", vol, mountpoint);
	} else if (status != 0 && vf_fs_is_mounted(mountpoint)) {
		rc = vf_err_set(err, VF_EBUSY, "volume %s: %s -u %s failed (exit %d): %s", vol,
		                fs->fusermount, mountpoint, status,
		                vf_fs_last_line(errout, line, sizeof(line))[0] ? line
		                                                               : "(no message)");
	} else if (vf_fs_wait_mounted(mountpoint, 0, fs->mount_timeout_ms) != VF_OK) {
		rc = vf_err_set(err, VF_ETIMEDOUT, "volume %s: %s still mounted after %d ms", vol,
		                mountpoint, fs->mount_timeout_ms);
	} else {
		sftp_seal(vol, mountpoint, 0); /* a plain directory again */
		vf_log(VF_LOG_INFO, "volume %s: unmounted %s", vol, mountpoint);
	}
	free(errout);
	return rc;
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
	struct passwd *pw;
	char *range = NULL, *fm = NULL, *end;
	long lo, hi;
	int rc;

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
	if ((rc = sftp_cfg_path(grp, "export_root", "/var/lib/vfile/export", &fs->export_root,
	                        err)) ||
	    (rc = sftp_cfg_addr(grp, "listen_addr", "127.0.0.1", &fs->listen_addr, err)) ||
	    (rc = sftp_cfg_addr(grp, "advertise_addr", NULL, &fs->advertise_addr, err)) ||
	    (rc = vf_cfg_str(grp, "port_range", "20000-20999", &range, err)) ||
	    (rc = vf_cfg_str(grp, "user", NULL, &fs->user, err)) ||
	    (rc = sftp_cfg_path(grp, "private_key", VF_SYSCONFDIR "/vfile/cluster_key",
	                        &fs->private_key, err)))
		goto out;
	if ((fs->public_key = sftp_pub_of(fs->private_key)) == NULL ||
	    (fs->host_key = strdup(VF_SYSCONFDIR "/vfile/host_key")) == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = sftp_cfg_path(grp, "public_key", fs->public_key, &end, err)) != VF_OK)
		goto out;
	free(fs->public_key);
	fs->public_key = end;
	if ((rc = sftp_cfg_path(grp, "host_key", fs->host_key, &end, err)) != VF_OK)
		goto out;
	free(fs->host_key);
	fs->host_key = end;
	if ((fs->host_public_key = sftp_pub_of(fs->host_key)) == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = sftp_cfg_path(grp, "host_public_key", fs->host_public_key, &end, err)) != VF_OK)
		goto out;
	free(fs->host_public_key);
	fs->host_public_key = end;
	if ((rc = vf_cfg_str(grp, "sshd", "/usr/sbin/sshd", &fs->sshd, err)) ||
	    (rc = vf_cfg_str(grp, "sshfs", "sshfs", &fs->sshfs, err)) ||
	    (rc = vf_cfg_str(grp, "fusermount", NULL, &fm, err)) ||
	    (rc = vf_cfg_strv(grp, "sshfs_options", NULL, &fs->sshfs_opts, &fs->nsshfs_opts,
	                      err)) ||
	    (rc = vf_cfg_bool(grp, "chroot", 1, &fs->chroot, err)) ||
	    (rc = vf_cfg_bool(grp, "local_bind", 1, &fs->local_bind, err)) ||
	    (rc = vf_cfg_bool(grp, "sshfs_tuning", 1, &fs->tuned, err)) ||
	    (rc = vf_cfg_int(grp, "start_timeout_ms", 10000, &fs->start_timeout_ms, err)) ||
	    (rc = vf_cfg_int(grp, "mount_timeout_ms", 20000, &fs->mount_timeout_ms, err)) ||
	    (rc = vf_cfg_int(grp, "stop_timeout_ms", 5000, &fs->stop_timeout_ms, err)) ||
	    (rc = vf_cfg_int(grp, "failover_wait_ms", 60000, &fs->failover_wait_ms, err)) ||
	    (rc = sftp_cfg_path(grp, "vfilectl", VF_BINDIR "/vfilectl", &fs->vfilectl, err)))
		goto out;
	if (fs->failover_wait_ms <= 0 || fs->failover_wait_ms > 3600000) {
		rc = vf_fs_cfg_bad(grp, "failover_wait_ms", err,
		                   "must be 1-3600000 (milliseconds)");
		goto out;
	}
	if (fs->sshd[0] != '/') {
		rc = vf_fs_cfg_bad(grp, "sshd", err, "must be an absolute path");
		goto out;
	}
	if (fs->start_timeout_ms <= 0 || fs->mount_timeout_ms <= 0 || fs->stop_timeout_ms <= 0) {
		rc = vf_fs_cfg_bad(grp,
		                   fs->start_timeout_ms <= 0   ? "start_timeout_ms"
		                   : fs->mount_timeout_ms <= 0 ? "mount_timeout_ms"
		                                               : "stop_timeout_ms",
		                   err, "must be > 0 (milliseconds)");
		goto out;
	}
	/* port_range: "LO-HI" within 1..65535 */
	lo = strtol(range, &end, 10);
	hi = *end == '-' ? strtol(end + 1, &end, 10) : -1;
	if (*end != '\0' || lo < 1 || hi > 65535 || lo > hi) {
		rc = vf_fs_cfg_bad(grp, "port_range", err,
		                   "'%s' is not a range \"LO-HI\" of ports (1-65535, LO <= HI)",
		                   range);
		goto out;
	}
	fs->port_lo = (int)lo;
	fs->port_hi = (int)hi;
	fs->port_next = (int)(getpid() % (hi - lo + 1));
	for (size_t i = 0; i < fs->nsshfs_opts; i++)
		if (fs->sshfs_opts[i][0] == '\0') {
			rc = vf_fs_cfg_bad(grp, "sshfs_options", err, "empty option");
			goto out;
		}
	if (fs->user == NULL) {
		pw = getpwuid(geteuid());
		if (pw == NULL) {
			rc = vf_fs_cfg_bad(grp, "user", err, "uid %ld has no user name: set it",
			                   (long)geteuid());
			goto out;
		}
		fs->user = strdup(pw->pw_name);
	}
	if (fs->advertise_addr == NULL) {
		if (strcmp(fs->listen_addr, "0.0.0.0") == 0 || strcmp(fs->listen_addr, "::") == 0) {
			rc = vf_fs_cfg_bad(grp, "advertise_addr", err,
			                   "required when listen_addr is a wildcard (%s)",
			                   fs->listen_addr);
			goto out;
		}
		fs->advertise_addr = strdup(fs->listen_addr);
	}
	/* fusermount3 on bookworm (fuse3), fusermount on older systems */
	if (fm == NULL && (fm = vf_fs_which("fusermount3")) == NULL &&
	    (fm = vf_fs_which("fusermount")) == NULL)
		fm = strdup("fusermount");
	fs->fusermount = fm;
	fm = NULL;
	{
		int p[2];

		if (pipe2(p, O_CLOEXEC) != 0) {
			rc = vf_err_set(err, VF_EINVAL, "file server: pipe: %s", strerror(errno));
			goto out;
		}
		fs->guard_r = p[0];
		fs->guard_w = p[1];
	}
	if (fs->user == NULL || fs->advertise_addr == NULL || fs->fusermount == NULL)
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
out:
	free(range);
	free(fm);
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
