/* File-server drivers: the driver switch and the helpers the drivers share
 * (spawning and reaping children with bounded waits, mount checks, files). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common_int.h"
#include "fs_int.h"

extern char **environ;

#define FS_OUT_MAX (64 * 1024)

static const struct fs_driver *const fs_drivers[] = {&fs_sftp_driver, &fs_hooks_driver,
                                                     &fs_none_driver, NULL};

int vf_fs_cfg_bad(const config_setting_t *grp, const char *name, struct vf_err *err,
                  const char *fmt, ...)
{
	const config_setting_t *s = grp ? config_setting_get_member(grp, name) : NULL;
	char where[256], msg[200];
	va_list ap;

	vf_cfg_where(s ? s : grp, where, sizeof(where));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vf_err_set(err, VF_EINVAL, "%ssetting 'fileserver.%s': %s", where, name, msg);
}

int vf_fs_open(const config_setting_t *grp, const char *state_dir, const struct vf_fs_ops **ops_r,
               void **arg_r, struct vf_err *err)
{
	char *name = NULL;
	int rc;

	*ops_r = NULL;
	*arg_r = NULL;
	if (grp && config_setting_type(grp) != CONFIG_TYPE_GROUP) {
		char where[256];

		vf_cfg_where(grp, where, sizeof(where));
		return vf_err_set(err, VF_EINVAL, "%ssetting 'fileserver' must be a group { ... }",
		                  where);
	}
	if (state_dir == NULL || state_dir[0] != '/')
		return vf_err_set(err, VF_EINVAL,
		                  "file server: state_dir must be an absolute path");
	rc = vf_cfg_str(grp, "driver", "sftp", &name, err);
	if (rc != VF_OK)
		return rc;
	rc = VF_ENOTFOUND;
	for (const struct fs_driver *const *d = fs_drivers; *d && rc == VF_ENOTFOUND; d++) {
		if (strcmp((*d)->name, name) != 0)
			continue;
		rc = (*d)->open(grp, state_dir, arg_r, err);
		if (rc == VF_OK)
			*ops_r = (*d)->ops;
	}
	if (rc == VF_ENOTFOUND)
		rc = vf_fs_cfg_bad(grp, "driver", err,
		                   "unknown driver '%s' (known: sftp, hooks, none)", name);
	free(name);
	return rc;
}

void vf_fs_close(void *arg)
{
	struct fs_base *b = arg;

	if (b)
		b->drv->close(arg);
}

void vf_fs_sweep(void *arg)
{
	struct fs_base *b = arg;

	if (b && b->drv->sweep)
		b->drv->sweep(arg);
}

int vf_fs_set_proxy(void *arg, const char *ctl_socket, struct vf_err *err)
{
	struct fs_base *b = arg;

	if (b == NULL || b->drv->set_proxy == NULL || ctl_socket == NULL)
		return VF_OK;
	return b->drv->set_proxy(arg, ctl_socket, err);
}

int vf_fs_vol_check(const char *vol, struct vf_err *err)
{
	if (vol == NULL || vol[0] == '\0' || vol[0] == '.' || strchr(vol, '/') ||
	    strlen(vol) > VF_VOLUME_NAME_MAX)
		return vf_err_set(err, VF_EINVAL, "file server: invalid volume name '%s'",
		                  vol ? vol : "(null)");
	return VF_OK;
}

/* ---- children ---- */

int vf_fs_spawn(const char *const *argv, const char *const *envp, int out_fd, int err_fd,
                pid_t *pid_r, struct vf_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, def;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (err_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
	else
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGCHLD);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGHUP);
	sigaddset(&def, SIGUSR1);
	sigaddset(&def, SIGUSR2);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &def);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	                                        POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(pid_r, argv[0], &fa, &attr, (char *const *)argv,
	                  (char *const *)(envp ? envp : (const char *const *)environ));
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0)
		return vf_err_set(err, VF_EINVAL, "cannot run %s: %s", argv[0], strerror(rc));
	return VF_OK;
}

static int fs_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

int vf_fs_wait(pid_t pid, int timeout_ms, int *status_r)
{
	int64_t deadline = vf_now_ms() + timeout_ms;
	int pfd = fs_pidfd_open(pid);
	int rc = VF_ETIMEDOUT;

	for (;;) {
		pid_t r = waitpid(pid, status_r, WNOHANG);

		if (r == pid || (r < 0 && errno != EINTR)) {
			if (r < 0) /* not our child (or already reaped): report as gone */
				*status_r = 0;
			rc = VF_OK;
			break;
		}
		int64_t left = timeout_ms < 0 ? 1000 : deadline - vf_now_ms();
		if (left <= 0)
			break;
		if (pfd >= 0) {
			struct pollfd p = {.fd = pfd, .events = POLLIN};

			poll(&p, 1, left > 1000 ? 1000 : (int)left);
		} else {
			struct timespec ts = {0, 10 * 1000 * 1000};

			nanosleep(&ts, NULL); /* no pidfd (old kernel): poll with a deadline */
		}
	}
	if (pfd >= 0)
		close(pfd);
	return rc;
}

void vf_fs_kill_wait(pid_t pid, int grace_ms)
{
	int st;

	if (pid <= 0)
		return;
	kill(-pid, SIGTERM);
	kill(pid, SIGTERM);
	if (vf_fs_wait(pid, grace_ms, &st) == VF_OK)
		return;
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	vf_fs_wait(pid, -1, &st);
}

static char *fs_memfd_read(int fd)
{
	struct vf_buf b = {0};
	char chunk[4096];
	ssize_t n;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return strdup("");
	while (b.len < FS_OUT_MAX && (n = read(fd, chunk, sizeof(chunk))) > 0)
		if (vf_buf_add(&b, chunk, (size_t)n) != VF_OK)
			break;
	if (b.data == NULL)
		return strdup("");
	if (b.len > FS_OUT_MAX)
		b.data[FS_OUT_MAX] = '\0';
	return b.data;
}

int vf_fs_run(const char *const *argv, const char *const *envp, int timeout_ms, int *status_r,
              char **out_r, char **errout_r, struct vf_err *err)
{
	int outfd = -1, errfd = -1, st = 0, rc;
	pid_t pid;

	if (out_r)
		*out_r = NULL;
	if (errout_r)
		*errout_r = NULL;
	*status_r = -1;
	/* memfds, not pipes: a background grandchild that keeps the descriptor open
	 * cannot make us wait for it. */
	outfd = memfd_create("vfile-out", MFD_CLOEXEC);
	errfd = memfd_create("vfile-err", MFD_CLOEXEC);
	if (outfd < 0 || errfd < 0) {
		rc = vf_err_set(err, VF_ENOMEM, "cannot run %s: memfd: %s", argv[0],
		                strerror(errno));
		goto out;
	}
	rc = vf_fs_spawn(argv, envp, outfd, errfd, &pid, err);
	if (rc != VF_OK)
		goto out;
	if (vf_fs_wait(pid, timeout_ms, &st) != VF_OK) {
		vf_fs_kill_wait(pid, 2000);
		rc = vf_err_set(err, VF_ETIMEDOUT, "%s did not finish within %d ms (killed)",
		                argv[0], timeout_ms);
		goto out;
	}
	*status_r = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (out_r)
		*out_r = fs_memfd_read(outfd);
	if (errout_r)
		*errout_r = fs_memfd_read(errfd);
out:
	if (outfd >= 0)
		close(outfd);
	if (errfd >= 0)
		close(errfd);
	return rc;
}

const char *vf_fs_last_line(const char *text, char *buf, size_t size)
{
	const char *end, *start;
	size_t n;

	buf[0] = '\0';
	if (text == NULL || size == 0)
		return buf;
	end = text + strlen(text);
	while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	n = (size_t)(end - start);
	if (n >= size)
		n = size - 1;
	memcpy(buf, start, n);
	buf[n] = '\0';
	return buf;
}

/* ---- mounts ---- */

/* Undo the octal escapes of /proc/self/mountinfo (\040 for a space) in place. */
static void fs_unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

int vf_fs_is_mounted(const char *path)
{
	char want[PATH_MAX], *line = NULL;
	size_t cap = 0;
	int found = 0;
	FILE *f;

	/* A dead FUSE mount fails realpath (ENOTCONN): compare the path as given. */
	if (realpath(path, want) == NULL)
		snprintf(want, sizeof(want), "%s", path);
	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return 0;
	while (!found && getline(&line, &cap, f) > 0) {
		char *save = NULL, *tok = strtok_r(line, " ", &save);

		for (int i = 1; tok && i < 5; i++)
			tok = strtok_r(NULL, " ", &save);
		if (tok == NULL)
			continue;
		fs_unescape(tok);
		found = strcmp(tok, want) == 0 || strcmp(tok, path) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

int vf_fs_mounted(void *arg, const char *vol, const char *mountpoint)
{
	return vf_fs_is_mounted(mountpoint);
}

int vf_fs_wait_mounted(const char *path, int want, int timeout_ms)
{
	int64_t deadline = vf_now_ms() + timeout_ms;

	for (;;) {
		if (vf_fs_is_mounted(path) == want)
			return VF_OK;
		if (vf_now_ms() >= deadline)
			return VF_ETIMEDOUT;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL); /* mountinfo has no watch we can block on portably */
	}
}

/* ---- files ---- */

int vf_fs_mkdirs(const char *path, mode_t mode, struct vf_err *err)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return vf_err_set(err, VF_EINVAL, "bad directory path '%s'", path);
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return vf_err_set(err, VF_EINVAL, "cannot create directory %s: %s", buf,
			                  strerror(errno));
		*p = c;
		if (c == '\0')
			break;
	}
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return vf_err_set(err, VF_EINVAL, "%s is not a directory", path);
	return VF_OK;
}

int vf_fs_write_file(const char *path, const char *data, size_t len, mode_t mode,
                     struct vf_err *err)
{
	char tmp[PATH_MAX];
	int fd, rc = VF_OK;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return vf_err_set(err, VF_EINVAL, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return vf_err_set(err, VF_EINVAL, "cannot write %s: %s", tmp, strerror(errno));
	if (fchmod(fd, mode) != 0 || write(fd, data, len) != (ssize_t)len) {
		rc = vf_err_set(err, VF_EINVAL, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return rc;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		rc = vf_err_set(err, VF_EINVAL, "cannot rename %s: %s", tmp, strerror(errno));
		unlink(tmp);
	}
	return rc;
}

int vf_fs_read_file(const char *path, char **data_r, size_t *len_r, struct vf_err *err)
{
	struct vf_buf b = {0};
	char chunk[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*data_r = NULL;
	if (fd < 0)
		return vf_err_set(err, errno == ENOENT ? VF_ENOTFOUND : VF_EINVAL,
		                  "cannot read %s: %s", path, strerror(errno));
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (vf_buf_add(&b, chunk, (size_t)n) != VF_OK) {
			close(fd);
			vf_buf_free(&b);
			return vf_err_set(err, VF_ENOMEM, "out of memory reading %s", path);
		}
	close(fd);
	if (n < 0) {
		vf_buf_free(&b);
		return vf_err_set(err, VF_EINVAL, "cannot read %s: %s", path, strerror(errno));
	}
	*data_r = b.data ? b.data : strdup("");
	if (len_r)
		*len_r = b.len;
	return *data_r ? VF_OK : vf_err_set(err, VF_ENOMEM, "out of memory");
}

char *vf_fs_which(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0 ? strdup(prog) : NULL;
	if (path == NULL || path[0] == '\0')
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n > 0 &&
		    snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog) < (int)sizeof(buf) &&
		    access(buf, X_OK) == 0)
			return strdup(buf);
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

/* ---- info JSON ---- */

static yajl_val fs_info_member(yajl_val obj, const char *a, const char *b)
{
	yajl_val v = vf_json_get(obj, a, NULL);

	return v ? v : vf_json_get(obj, b, NULL);
}

int vf_fs_info_server(const char *info_json, char **addr_r, int *port_r, struct vf_err *err)
{
	static const char *const groups[][2] = {
	        {"Server", "server"}, {"FileServer", "fileserver"}, {NULL, NULL}};
	yajl_val root = NULL, addr = NULL, port = NULL;
	int64_t p = -1;
	int rc;

	*addr_r = NULL;
	*port_r = 0;
	if (info_json == NULL || info_json[0] == '\0')
		return vf_err_set(err, VF_EPROTO, "volume info is empty: no file-server address");
	rc = vf_json_parse(info_json, strlen(info_json), &root, err);
	if (rc != VF_OK)
		return vf_err_prefix(err, "volume info");
	addr = fs_info_member(root, "Addr", "addr");
	port = fs_info_member(root, "Port", "port");
	for (int i = 0; groups[i][0] && (addr == NULL || port == NULL); i++) {
		yajl_val g = fs_info_member(root, groups[i][0], groups[i][1]);

		if (!YAJL_IS_OBJECT(g))
			continue;
		addr = fs_info_member(g, "Addr", "addr");
		if (addr == NULL)
			addr = fs_info_member(g, "Address", "address");
		port = fs_info_member(g, "Port", "port");
	}
	if (vf_json_str(addr) == NULL || port == NULL || vf_json_int64(port, &p) != VF_OK ||
	    p < 0 || p > 65535) {
		rc = vf_err_set(err, VF_EPROTO, "volume info has no file-server Addr/Port");
		goto out;
	}
	*addr_r = strdup(vf_json_str(addr));
	*port_r = (int)p;
	if (*addr_r == NULL)
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
out:
	yajl_tree_free(root);
	return rc;
}

char *vf_fs_info_opt(const char *info_json, const char *key)
{
	yajl_val root = NULL, v;
	char *out = NULL;

	if (info_json == NULL || vf_json_parse(info_json, strlen(info_json), &root, NULL) != VF_OK)
		return NULL;
	v = vf_json_get(root, "options", key, NULL);
	if (v == NULL)
		v = vf_json_get(root, "Options", key, NULL);
	if (vf_json_str(v))
		out = strdup(vf_json_str(v));
	yajl_tree_free(root);
	return out;
}
