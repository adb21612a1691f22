/* Live test of the sftp file-server driver: a real sshd per volume, real sshfs
 * mounts. Needs root, /usr/sbin/sshd, sshfs, ssh/sftp/ssh-keygen and /dev/fuse;
 * without them it skips (fails under CI=true). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test_int.h"
#include "common_int.h"
#include "fs_int.h"
#include "harness/harness.h"

static int port_lo, port_lo2; /* the drivers' port_range: LO..LO+19 */
static char tmp[PATH_MAX];    /* keys, state, mountpoints */
static char export[PATH_MAX]; /* the export root: root-owned path (not under /tmp) */
static char mnt[3][PATH_MAX + 16];
static char key[PATH_MAX + 32], otherkey[PATH_MAX + 32], known[PATH_MAX + 64];
static const struct vf_fs_ops *ops;
static void *fsarg;
static config_t cfg;
static char *srv_addr;
static int srv_port;

static int run(const char *const *argv, char **out_r, char **err_r)
{
	int status = -1;

	if (vf_fs_run(argv, NULL, 20000, &status, out_r, err_r, NULL) != VF_OK)
		return -1;
	return status;
}

/* Always leave the machine clean: lazy-unmount, kill the servers, remove dirs. */
static void cleanup(void)
{
	for (int i = 0; i < 3; i++)
		if (mnt[i][0] && vf_fs_is_mounted(mnt[i])) {
			const char *argv[] = {"fusermount3", "-u", "-z", mnt[i], NULL};
			run(argv, NULL, NULL);
		}
	if (tmp[0]) {
		char pidf[PATH_MAX + 64], *txt = NULL;
		const char *unseal[] = {"chattr", "-i", mnt[0], mnt[1], mnt[2], NULL};

		run(unseal, NULL, NULL); /* mountpoints are immutable while mounted */

		const char *vols[] = {"vol1", "vol2", "par0", "par1", "par2", "par3", "blocker"};
		for (size_t v = 0; v < sizeof(vols) / sizeof(vols[0]); v++) {
			snprintf(pidf, sizeof(pidf), "%s/state/sftp/%s/sshd.pid", tmp, vols[v]);
			if (vf_fs_read_file(pidf, &txt, NULL, NULL) == VF_OK && atoi(txt) > 0)
				kill(atoi(txt), SIGKILL);
			free(txt);
			txt = NULL;
		}
		const char *argv[] = {"rm", "-rf", tmp, NULL};
		run(argv, NULL, NULL);
	}
	if (export[0]) {
		const char *argv[] = {"rm", "-rf", export, NULL};
		run(argv, NULL, NULL);
	}
	tmp[0] = export[0] = '\0';
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int have(const char *prog)
{
	char *p = vf_fs_which(prog);

	free(p);
	return p != NULL;
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	CU_ASSERT_EQUAL(fclose(f), 0);
}

static char *slurp(const char *path)
{
	char *data = NULL;

	vf_fs_read_file(path, &data, NULL, NULL);
	return data;
}

/* ssh options every client command of the test uses */
#define SSH_OPTS(keyfile)                                                                          \
	"-i", keyfile, "-o", "IdentitiesOnly=yes", "-o", known, "-o",                              \
	        "HostKeyAlias=vfile-cluster", "-o", "StrictHostKeyChecking=yes", "-o",             \
	        "BatchMode=yes", "-o", "ConnectTimeout=10"

static void test_start(void)
{
	struct vf_err err = {0};
	char *addr = NULL;
	int port = 0;

	CU_ASSERT_EQUAL(ops->running(fsarg, "vol1"), 0);
	CU_ASSERT_EQUAL_FATAL(ops->start(fsarg, "vol1", "{\"name\":\"vol1\",\"options\":{}}",
	                                 &srv_addr, &srv_port, &err),
	                      VF_OK);
	if (err.msg[0])
		fprintf(stderr, "\n  %s\n", err.msg);
	CU_ASSERT_STRING_EQUAL(srv_addr, "127.0.0.1");
	CU_ASSERT(srv_port >= port_lo && srv_port < port_lo + 20);
	CU_ASSERT_EQUAL(ops->running(fsarg, "vol1"), 1);
	/* starting again answers the same server */
	CU_ASSERT_EQUAL(ops->start(fsarg, "vol1", "{}", &addr, &port, &err), VF_OK);
	CU_ASSERT_EQUAL(port, srv_port);
	free(addr);
	/* the generated config is sftp-only and confined */
	char conf[PATH_MAX + 64], *text;
	snprintf(conf, sizeof(conf), "%s/state/sftp/vol1/sshd_config", tmp);
	text = slurp(conf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT(strstr(text, "ForceCommand internal-sftp") != NULL);
	CU_ASSERT(strstr(text, "ChrootDirectory ") != NULL);
	CU_ASSERT(strstr(text, "PasswordAuthentication no") != NULL);
	CU_ASSERT(strstr(text, "AllowTcpForwarding no") != NULL);
	free(text);
}

static void test_mount_twice(void)
{
	struct vf_err err = {0};
	char info[256], path[PATH_MAX + 64], *data;

	snprintf(info, sizeof(info),
	         "{\"name\":\"vol1\",\"options\":{},\"server\":{\"node\":\"n1\",\"addr\":\"%s\","
	         "\"port\":%d}}",
	         srv_addr, srv_port);
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL_FATAL(ops->mount(fsarg, "vol1", info, mnt[i], &err), VF_OK);
		if (err.msg[0])
			fprintf(stderr, "\n  %s\n", err.msg);
		CU_ASSERT_EQUAL(vf_fs_is_mounted(mnt[i]), 1);
	}
	/* mounting again is a no-op */
	CU_ASSERT_EQUAL(ops->mount(fsarg, "vol1", info, mnt[0], &err), VF_OK);
	/* write through one, read through the other, and find it in the export */
	snprintf(path, sizeof(path), "%s/hello.txt", mnt[0]);
	put(path, "written through mount 0\n");
	snprintf(path, sizeof(path), "%s/hello.txt", mnt[1]);
	data = slurp(path);
	CU_ASSERT_PTR_NOT_NULL(data);
	if (data)
		CU_ASSERT_STRING_EQUAL(data, "written through mount 0\n");
	free(data);
	snprintf(path, sizeof(path), "%s/sub", mnt[1]);
	CU_ASSERT_EQUAL(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/sub/b", mnt[1]);
	put(path, "b");
	snprintf(path, sizeof(path), "%s/vol1/data/sub/b", export);
	data = slurp(path);
	CU_ASSERT_PTR_NOT_NULL(data);
	if (data)
		CU_ASSERT_STRING_EQUAL(data, "b");
	free(data);
	/* a mount with a bad address fails with a message, and does not mount */
	CU_ASSERT_EQUAL(ops->mount(fsarg, "vol1",
	                           "{\"server\":{\"addr\":\"127.0.0.1\",\"port\":1}}", tmp, &err),
	                VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "sshfs") != NULL);
	CU_ASSERT_EQUAL(vf_fs_is_mounted(tmp), 0);
}

static void test_options(void)
{
	/* create options: uid/gid own the files, mode=ro mounts read-only */
	const char *info0 = "{\"name\":\"vol2\",\"options\":{\"mode\":\"ro\",\"uid\":\"1234\","
	                    "\"gid\":\"4321\"}}";
	struct vf_err err = {0};
	char *addr = NULL, info[512], path[PATH_MAX + 64];
	struct stat st;
	int port = 0;

	CU_ASSERT_EQUAL_FATAL(ops->start(fsarg, "vol2", info0, &addr, &port, &err), VF_OK);
	CU_ASSERT_NOT_EQUAL(port, srv_port);
	snprintf(path, sizeof(path), "%s/vol2/data", export);
	CU_ASSERT(stat(path, &st) == 0 && st.st_uid == 1234 && st.st_gid == 4321);
	snprintf(info, sizeof(info),
	         "{\"name\":\"vol2\",\"options\":{\"mode\":\"ro\",\"uid\":\"1234\",\"gid\":"
	         "\"4321\"},\"server\":{\"node\":\"n1\",\"addr\":\"%s\",\"port\":%d}}",
	         addr, port);
	free(addr);
	CU_ASSERT_EQUAL_FATAL(ops->mount(fsarg, "vol2", info, mnt[2], &err), VF_OK);
	CU_ASSERT(stat(mnt[2], &st) == 0 && st.st_uid == 1234 && st.st_gid == 4321);
	snprintf(path, sizeof(path), "%s/nope", mnt[2]);
	errno = 0;
	CU_ASSERT(open(path, O_WRONLY | O_CREAT, 0644) < 0 && errno == EROFS);
	CU_ASSERT_EQUAL(ops->unmount(fsarg, "vol2", mnt[2], &err), VF_OK);
	CU_ASSERT_EQUAL(ops->stop(fsarg, "vol2", "{}", &err), VF_OK);
	CU_ASSERT_EQUAL(ops->running(fsarg, "vol2"), 0);
}

#define NPAR 4
struct par {
	char vol[16];
	char *addr;
	int port, rc;
	struct vf_err err;
};

static void *par_start(void *arg)
{
	struct par *p = arg;

	p->rc = ops->start(fsarg, p->vol, "{}", &p->addr, &p->port, &p->err);
	return NULL;
}

static void test_parallel(void)
{
	/* starts of different volumes run in parallel and get distinct ports */
	struct par par[NPAR];
	pthread_t th[NPAR];
	struct vf_err err = {0};

	for (int i = 0; i < NPAR; i++) {
		memset(&par[i], 0, sizeof(par[i]));
		snprintf(par[i].vol, sizeof(par[i].vol), "par%d", i);
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, par_start, &par[i]), 0);
	}
	for (int i = 0; i < NPAR; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NPAR; i++) {
		CU_ASSERT_EQUAL(par[i].rc, VF_OK);
		if (par[i].rc != VF_OK)
			fprintf(stderr, "\n  %s\n", par[i].err.msg);
		CU_ASSERT_EQUAL(ops->running(fsarg, par[i].vol), 1);
		CU_ASSERT_NOT_EQUAL(par[i].port, srv_port);
		for (int k = 0; k < i; k++)
			CU_ASSERT_NOT_EQUAL(par[i].port, par[k].port);
		free(par[i].addr);
	}
	for (int i = 0; i < NPAR; i++) {
		CU_ASSERT_EQUAL(ops->stop(fsarg, par[i].vol, "{}", &err), VF_OK);
		CU_ASSERT_EQUAL(ops->running(fsarg, par[i].vol), 0);
	}
}

static void test_jail(void)
{
	char port[16], marker[PATH_MAX + 32], cmd[PATH_MAX + 64], *out = NULL, *errout = NULL;
	char batch[PATH_MAX + 32], dest[PATH_MAX + 32];
	int st;

	snprintf(port, sizeof(port), "%d", srv_port);
	/* a shell command does not run: ForceCommand runs internal-sftp instead */
	snprintf(marker, sizeof(marker), "%s/pwned", tmp);
	snprintf(cmd, sizeof(cmd), "echo pwned-output; touch %s", marker);
	{
		const char *argv[] = {"ssh", SSH_OPTS(key), "-p", port, "root@127.0.0.1",
		                      cmd,   NULL};
		st = run(argv, &out, &errout);
	}
	/* sshd answers a command with "This service allows sftp connections only." */
	CU_ASSERT_EQUAL(st, 1);
	CU_ASSERT(out && strstr(out, "sftp connections only") != NULL);
	CU_ASSERT_PTR_NOT_NULL(out);
	CU_ASSERT(out == NULL || strstr(out, "pwned-output") == NULL);
	CU_ASSERT_NOT_EQUAL(access(marker, F_OK), 0);
	free(out);
	free(errout);
	out = errout = NULL;
	/* a password (or keyboard-interactive) login is refused */
	{
		const char *argv[] = {"ssh",
		                      SSH_OPTS(key),
		                      "-o",
		                      "PubkeyAuthentication=no",
		                      "-o",
		                      "PreferredAuthentications=password,keyboard-interactive",
		                      "-p",
		                      port,
		                      "root@127.0.0.1",
		                      "true",
		                      NULL};
		st = run(argv, NULL, &errout);
	}
	CU_ASSERT_EQUAL(st, 255);
	CU_ASSERT(errout && strstr(errout, "Permission denied") != NULL);
	free(errout);
	errout = NULL;
	/* another key is refused */
	{
		const char *argv[] = {
		        "ssh", SSH_OPTS(otherkey), "-p", port, "root@127.0.0.1", "true", NULL};
		st = run(argv, NULL, &errout);
	}
	CU_ASSERT_EQUAL(st, 255);
	CU_ASSERT(errout && strstr(errout, "Permission denied") != NULL);
	free(errout);
	errout = NULL;
	/* no TCP forwarding through the server */
	{
		char to[32];

		snprintf(to, sizeof(to), "127.0.0.1:%d", srv_port);
		const char *argv[] = {"ssh", SSH_OPTS(key),    "-p", port, "-W",
		                      to,    "root@127.0.0.1", NULL};
		st = run(argv, NULL, NULL);
	}
	CU_ASSERT_NOT_EQUAL(st, 0);
	/* sftp: inside the volume works; outside the jail does not exist */
	snprintf(batch, sizeof(batch), "%s/batch", tmp);
	snprintf(dest, sizeof(dest), "%s/stolen", tmp);
	put(batch, "ls /data\n");
	{
		const char *argv[] = {"sftp", SSH_OPTS(key),    "-P", port, "-b",
		                      batch,  "root@127.0.0.1", NULL};
		st = run(argv, &out, NULL);
	}
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT(out && strstr(out, "hello.txt") != NULL);
	free(out);
	out = NULL;
	const char *escapes[] = {"ls /etc\n", "get /etc/passwd STOLEN\n",
	                         "get ../../etc/passwd STOLEN\n",
	                         "get /data/../../../etc/passwd STOLEN\n", "ls /proc\n"};
	for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		char line[PATH_MAX + 64];
		const char *s = strstr(escapes[i], "STOLEN");

		if (s)
			snprintf(line, sizeof(line), "%.*s%s\n", (int)(s - escapes[i]), escapes[i],
			         dest);
		else
			snprintf(line, sizeof(line), "%s", escapes[i]);
		put(batch, line);
		const char *argv[] = {"sftp", SSH_OPTS(key),    "-P", port, "-b",
		                      batch,  "root@127.0.0.1", NULL};
		st = run(argv, NULL, NULL);
		if (st == 0)
			fprintf(stderr, "\n  escape succeeded: %s", line);
		CU_ASSERT_NOT_EQUAL(st, 0);
		CU_ASSERT_NOT_EQUAL(access(dest, F_OK), 0);
	}
}

static int port_accepts(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)port),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static pid_t pid_of(const char *vol)
{
	char pidf[PATH_MAX + 64], *txt = NULL;
	pid_t pid = 0;

	snprintf(pidf, sizeof(pidf), "%s/state/sftp/%s/sshd.pid", tmp, vol);
	if (vf_fs_read_file(pidf, &txt, NULL, NULL) == VF_OK)
		pid = (pid_t)atoi(txt);
	free(txt);
	return pid;
}

static void test_guard_sweep(void)
{
	/* No server outlives its driver: closing it (vfiled's exit, whatever way it
	 * exits, closes the guards' pipe) stops every server. A restarted daemon
	 * adopts nothing: it stops the sshd an earlier run left behind. */
	struct vf_err err = {0};
	char state[PATH_MAX + 16], conf[PATH_MAX + 64], pidf[PATH_MAX + 64], txt[32];
	char *addr = NULL;
	pid_t old = pid_of("vol1"), left = 0;
	int port = 0, st = 0;

	CU_ASSERT_FATAL(old > 0);
	vf_fs_close(fsarg);
	fsarg = NULL;
	CU_ASSERT_NOT_EQUAL(kill(old, 0), 0); /* stopped (and reaped) with the driver */
	snprintf(conf, sizeof(conf), "%s/state/sftp/vol1/sshd_config", tmp);
	snprintf(pidf, sizeof(pidf), "%s/state/sftp/vol1/sshd.pid", tmp);
	const char *argv[] = {"/usr/sbin/sshd", "-D", "-e", "-f", conf, NULL};
	CU_ASSERT_EQUAL_FATAL(vf_fs_spawn(argv, NULL, -1, -1, &left, &err), VF_OK);
	/* until it listens (it rewrites its command line while starting) */
	int64_t deadline = vf_now_ms() + 10000;
	while (!port_accepts(srv_port) && vf_now_ms() < deadline)
		poll(NULL, 0, 20); /* bounded poll of the port */
	CU_ASSERT(port_accepts(srv_port));
	snprintf(txt, sizeof(txt), "%ld\n", (long)left);
	CU_ASSERT_EQUAL(vf_fs_write_file(pidf, txt, strlen(txt), 0600, &err), VF_OK);
	snprintf(state, sizeof(state), "%s/state", tmp);
	CU_ASSERT_EQUAL_FATAL(
	        vf_fs_open(config_lookup(&cfg, "fileserver"), state, &ops, &fsarg, &err), VF_OK);
	CU_ASSERT_EQUAL(ops->running(fsarg, "vol1"), 0); /* not adopted */
	vf_fs_sweep(fsarg);
	if (vf_fs_wait(left, 5000, &st) != VF_OK) {
		CU_FAIL("the sweep did not stop the leftover sshd");
		kill(left, SIGKILL); /* leave no sshd behind */
		vf_fs_wait(left, -1, &st);
	}
	CU_ASSERT(WIFSIGNALED(st));
	CU_ASSERT_NOT_EQUAL(access(pidf, F_OK), 0);
	CU_ASSERT_EQUAL(ops->start(fsarg, "vol1", "{}", &addr, &port, &err), VF_OK);
	CU_ASSERT_EQUAL(ops->running(fsarg, "vol1"), 1);
	srv_port = port;
	free(addr);
}

static void test_stop_unmount(void)
{
	struct vf_err err = {0};
	char path[PATH_MAX + 64];
	int fd;

	CU_ASSERT_EQUAL(ops->stop(fsarg, "vol1", "{}", &err), VF_OK);
	CU_ASSERT_EQUAL(ops->running(fsarg, "vol1"), 0);
	CU_ASSERT_EQUAL(ops->stop(fsarg, "vol1", "{}", &err), VF_OK); /* again: fine */
	/* nothing listens any more */
	snprintf(path, sizeof(path), "%s/state/sftp/vol1/sshd.pid", tmp);
	CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);

	/* the server comes back (on another port): mount() replaces the dead mount */
	char *addr = NULL, info[256], *data;
	int port = 0;
	CU_ASSERT_EQUAL_FATAL(ops->start(fsarg, "blocker", "{}", &addr, &port, &err), VF_OK);
	free(addr);
	CU_ASSERT_EQUAL_FATAL(ops->start(fsarg, "vol1", "{}", &addr, &port, &err), VF_OK);
	CU_ASSERT_NOT_EQUAL(port, srv_port);
	snprintf(info, sizeof(info), "{\"server\":{\"addr\":\"%s\",\"port\":%d}}", addr, port);
	free(addr);
	CU_ASSERT_EQUAL(ops->stop(fsarg, "blocker", "{}", &err), VF_OK);
	CU_ASSERT_EQUAL(ops->mount(fsarg, "vol1", info, mnt[0], &err), VF_OK);
	if (err.msg[0])
		fprintf(stderr, "\n  %s\n", err.msg);
	snprintf(path, sizeof(path), "%s/hello.txt", mnt[0]);
	data = slurp(path);
	CU_ASSERT_PTR_NOT_NULL(data);
	if (data)
		CU_ASSERT_STRING_EQUAL(data, "written through mount 0\n");
	free(data);
	CU_ASSERT_EQUAL(ops->stop(fsarg, "vol1", "{}", &err), VF_OK);
	CU_ASSERT_EQUAL(ops->running(fsarg, "vol1"), 0);
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(ops->unmount(fsarg, "vol1", mnt[i], &err), VF_OK);
		if (err.msg[0])
			fprintf(stderr, "\n  %s\n", err.msg);
		CU_ASSERT_EQUAL(vf_fs_is_mounted(mnt[i]), 0);
	}
	CU_ASSERT_EQUAL(ops->unmount(fsarg, "vol1", mnt[0], &err), VF_OK); /* again: fine */
	/* the data stays in the export */
	snprintf(path, sizeof(path), "%s/vol1/data/hello.txt", export);
	fd = open(path, O_RDONLY);
	CU_ASSERT(fd >= 0);
	if (fd >= 0)
		close(fd);
	free(srv_addr);
	srv_addr = NULL;
}

static int suite_init(void)
{
	char text[8 * PATH_MAX], state[PATH_MAX + 16], pub[PATH_MAX + 64];
	struct vf_err err = {0};
	struct stat st;

	if (geteuid() != 0)
		vf_test_unavailable("the sftp driver test needs root (sshd ChrootDirectory, FUSE)");
	if (access("/usr/sbin/sshd", X_OK) != 0 || !have("sshfs") || !have("ssh") ||
	    !have("sftp") || !have("ssh-keygen") || access("/dev/fuse", R_OK | W_OK) != 0 ||
	    (!have("fusermount3") && !have("fusermount")))
		vf_test_unavailable("sshd, sshfs, ssh, sftp, ssh-keygen or /dev/fuse missing "
		                    "(apt-get install openssh-server sshfs fuse3)");
	/* two blocks of 20 ports for the two drivers' sshd (harness.h: the registry) */
	if ((port_lo = vf_srv_free_ports(20)) < 0 || (port_lo2 = vf_srv_free_ports(20)) < 0)
		vf_test_unavailable("no free block of 20 loopback ports");
	snprintf(tmp, sizeof(tmp), "/tmp/vfile-sftp.XXXXXX");
	if (mkdtemp(tmp) == NULL)
		return -1;
	/* ChrootDirectory wants root-owned components not writable by others: /run */
	if (stat("/run", &st) != 0 || st.st_uid != 0 || (st.st_mode & 022))
		vf_test_unavailable("/run is not a root-owned 0755 directory");
	snprintf(export, sizeof(export), "/run/vfile-sftp-export.XXXXXX");
	if (mkdtemp(export) == NULL)
		return -1;
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGABRT, on_signal);
	snprintf(key, sizeof(key), "%s/cluster_key", tmp);
	snprintf(otherkey, sizeof(otherkey), "%s/other_key", tmp);
	char hostkey[PATH_MAX + 32];
	snprintf(hostkey, sizeof(hostkey), "%s/host_key", tmp);
	const char *keys[] = {key, otherkey, hostkey};
	for (int i = 0; i < 3; i++) {
		const char *argv[] = {"ssh-keygen", "-q",         "-t", "ed25519", "-N", "",
		                      "-C",         "vfile-test", "-f", keys[i],   NULL};
		if (run(argv, NULL, NULL) != 0)
			vf_test_unavailable("ssh-keygen failed");
	}
	for (int i = 0; i < 3; i++) {
		snprintf(mnt[i], sizeof(mnt[i]), "%s/mnt%d", tmp, i);
		mkdir(mnt[i], 0755);
	}
	snprintf(state, sizeof(state), "%s/state", tmp);
	snprintf(known, sizeof(known), "UserKnownHostsFile=%s/sftp-client/known_hosts", state);
	snprintf(pub, sizeof(pub), "%s.pub", key);
	snprintf(text, sizeof(text),
	         "fileserver = {\n driver = \"sftp\";\n export_root = \"%s\";\n"
	         " listen_addr = \"127.0.0.1\";\n port_range = \"%d-%d\";\n"
	         " private_key = \"%s\";\n public_key = \"%s\";\n host_key = \"%s\";\n"
	         " start_timeout_ms = 10000;\n mount_timeout_ms = 15000;\n"
	         " local_bind = false;\n};\n",
	         export, port_lo, port_lo + 19, key, pub, hostkey);
	config_init(&cfg);
	if (config_read_string(&cfg, text) != CONFIG_TRUE)
		return -1;
	if (vf_fs_open(config_lookup(&cfg, "fileserver"), state, &ops, &fsarg, &err) != VF_OK) {
		fprintf(stderr, "vf_fs_open: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int suite_clean(void)
{
	struct vf_err err = {0};

	if (fsarg) {
		ops->stop(fsarg, "vol1", "{}", &err);
		ops->stop(fsarg, "vol2", "{}", &err);
		for (int i = 0; i < 3; i++)
			ops->unmount(fsarg, "vol1", mnt[i], &err);
		vf_fs_close(fsarg);
	}
	free(srv_addr);
	config_destroy(&cfg);
	cleanup();
	return 0;
}

/* The serving host's mount (local_bind, the default): a bind mount of the export
 * directory, no sshfs; a driver that does not serve the volume mounts with sshfs. */
static void test_local_bind(void)
{
	char text[4 * PATH_MAX], state2[PATH_MAX + 16], pub[PATH_MAX + 40], hostkey[PATH_MAX + 40];
	char *addr = NULL, info[512], path[PATH_MAX + 64], *data;
	const struct vf_fs_ops *ops2 = NULL;
	struct vf_err err = {0};
	struct stat st, sd;
	void *arg2 = NULL;
	config_t c2;
	int port = 0;

	snprintf(state2, sizeof(state2), "%s/state2", tmp);
	snprintf(pub, sizeof(pub), "%s.pub", key);
	snprintf(hostkey, sizeof(hostkey), "%s/host_key", tmp);
	snprintf(text, sizeof(text),
	         "fileserver = {\n driver = \"sftp\";\n export_root = \"%s\";\n"
	         " listen_addr = \"127.0.0.1\";\n port_range = \"%d-%d\";\n"
	         " private_key = \"%s\";\n public_key = \"%s\";\n host_key = \"%s\";\n};\n",
	         export, port_lo2, port_lo2 + 19, key, pub, hostkey);
	config_init(&c2);
	CU_ASSERT_FATAL(config_read_string(&c2, text) == CONFIG_TRUE);
	CU_ASSERT_EQUAL_FATAL(
	        vf_fs_open(config_lookup(&c2, "fileserver"), state2, &ops2, &arg2, &err), VF_OK);
	CU_ASSERT_EQUAL_FATAL(ops2->start(arg2, "vol3", "{\"name\":\"vol3\"}", &addr, &port, &err),
	                      VF_OK);
	snprintf(info, sizeof(info), "{\"name\":\"vol3\",\"server\":{\"addr\":\"%s\",\"port\":%d}}",
	         addr, port);
	/* the serving driver: a bind mount of <export>/vol3/data */
	CU_ASSERT_EQUAL_FATAL(ops2->mount(arg2, "vol3", info, mnt[0], &err), VF_OK);
	snprintf(path, sizeof(path), "%s/vol3/data", export);
	CU_ASSERT(stat(mnt[0], &st) == 0 && stat(path, &sd) == 0 && st.st_dev == sd.st_dev &&
	          st.st_ino == sd.st_ino);
	/* the driver that does not serve it (the suite's: local_bind = false, and it
	 * runs no server for vol3): sshfs, and both see one volume */
	CU_ASSERT_EQUAL(ops->mount(fsarg, "vol3", info, mnt[1], &err), VF_OK);
	CU_ASSERT(stat(mnt[1], &st) == 0 && st.st_dev != sd.st_dev);
	snprintf(path, sizeof(path), "%s/from-bind", mnt[0]);
	put(path, "bind");
	snprintf(path, sizeof(path), "%s/from-bind", mnt[1]);
	data = slurp(path);
	CU_ASSERT(data && strcmp(data, "bind") == 0);
	free(data);
	/* absolute and ".." symlinks read back on the sshfs host (no_contain_symlinks) */
	snprintf(path, sizeof(path), "%s/up", mnt[0]);
	CU_ASSERT_EQUAL(symlink("../data/from-bind", path), 0);
	snprintf(path, sizeof(path), "%s/up", mnt[1]);
	char lnk[64] = "";
	CU_ASSERT(readlink(path, lnk, sizeof(lnk) - 1) == 17 &&
	          strcmp(lnk, "../data/from-bind") == 0);
	CU_ASSERT_EQUAL(ops->unmount(fsarg, "vol3", mnt[1], &err), VF_OK);
	CU_ASSERT_EQUAL(ops2->unmount(arg2, "vol3", mnt[0], &err), VF_OK);
	CU_ASSERT_EQUAL(vf_fs_is_mounted(mnt[0]), 0);
	/* mode=ro: a read-only bind mount */
	snprintf(info, sizeof(info),
	         "{\"name\":\"vol3\",\"options\":{\"mode\":\"ro\"},\"server\":{\"addr\":\"%s\","
	         "\"port\":%d}}",
	         addr, port);
	CU_ASSERT_EQUAL_FATAL(ops2->mount(arg2, "vol3", info, mnt[0], &err), VF_OK);
	snprintf(path, sizeof(path), "%s/nope", mnt[0]);
	errno = 0;
	CU_ASSERT(open(path, O_WRONLY | O_CREAT, 0644) < 0 && errno == EROFS);
	CU_ASSERT_EQUAL(ops2->unmount(arg2, "vol3", mnt[0], &err), VF_OK);
	/* once the server is stopped, the same driver mounts with sshfs like any host
	 * (here it fails: nothing listens), never a bind mount of a volume it does
	 * not serve */
	CU_ASSERT_EQUAL(ops2->stop(arg2, "vol3", "{}", &err), VF_OK);
	CU_ASSERT_NOT_EQUAL(ops2->mount(arg2, "vol3", info, mnt[0], &err), VF_OK);
	CU_ASSERT_EQUAL(vf_fs_is_mounted(mnt[0]), 0);
	free(addr);
	vf_fs_close(arg2);
	config_destroy(&c2);
}

void vf_test_register(void)
{
	CU_pSuite s = CU_add_suite("sftp", suite_init, suite_clean);

	if (s == NULL)
		vf_test_abort("suite sftp");
	VF_ADD_TEST(s, test_start);
	VF_ADD_TEST(s, test_mount_twice);
	VF_ADD_TEST(s, test_options);
	VF_ADD_TEST(s, test_parallel);
	VF_ADD_TEST(s, test_jail);
	VF_ADD_TEST(s, test_guard_sweep);
	VF_ADD_TEST(s, test_stop_unmount);
	VF_ADD_TEST(s, test_local_bind);
}
