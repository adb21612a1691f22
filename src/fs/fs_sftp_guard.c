/* The sftp driver: no sshd outlives its daemon.
 *
 * Each sshd has a guard, a forked child of vfiled that blocks reading a pipe whose
 * only write end vfiled holds (fs->guard_w); when vfiled dies (or closes the driver)
 * the read ends and the guard kills the sshd and every process under it (its
 * sessions). Killing a process tree is async-signal-safe (no allocation, no stdio),
 * for the forked guard. A restarted vfiled stops any sshd a previous run left
 * behind (sftp_sweep: pid file + /proc cmdline check).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "common_int.h"
#include "sftp_int.h"

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
void sftp_kill_tree(pid_t root)
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
pid_t sftp_guard_start(struct sftp_fs *fs, const char *vol, pid_t sshd)
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
void sftp_guard_stop(struct sftp_srv *s)
{
	int st;

	if (s->guard <= 0)
		return;
	kill(s->guard, SIGKILL);
	vf_fs_wait(s->guard, -1, &st);
	s->guard = 0;
}

int sftp_alive(struct sftp_fs *fs, struct sftp_srv *s)
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
void sftp_kill(struct sftp_fs *fs, struct sftp_srv *s)
{
	int st;

	sftp_guard_stop(s);
	sftp_kill_tree(s->pid);
	vf_fs_wait(s->pid, fs->stop_timeout_ms, &st);
}

/* ---- a restarted daemon ---- */

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

/* Stop every sshd that an earlier run of vfiled on this state_dir left behind
 * (its pid file names a live sshd running that volume's config): such a server
 * outlived its daemon's lease, so the store does not name it any more. */
void sftp_sweep(struct sftp_fs *fs)
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
