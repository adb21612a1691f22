/* The sftp driver, host side: mount a volume with sshfs, unmount it.
 *
 * sshfs (FUSE) mounts user@addr:/data with the cluster private key and a
 * known_hosts file holding the cluster host key (HostKeyAlias, so any server and
 * port matches); unmount with fusermount3 -u (or fusermount -u). Inside vfiled
 * (vf_fs_set_proxy), ssh reaches the server through `vfilectl proxy VOL`
 * (ProxyCommand). The host that serves the volume mounts its export directory
 * with a bind mount instead (local_bind). The mountpoint is sealed (immutable)
 * while nothing is mounted on it.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>

#include "common_int.h"
#include "sftp_int.h"

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

/* One sshfs mount: the server, and the strings of its command line (argv points
 * into them). */
struct sftp_sshfs {
	char *addr; /* the server info names */
	int port;
	char kh[PATH_MAX];           /* the known_hosts file */
	char remote[PATH_MAX + 300]; /* user@addr:/data */
	char o_port[32], o_id[PATH_MAX + 32], o_kh[PATH_MAX + 32];
	char o_proxy[2 * PATH_MAX + 200], o_ctimeout[40];
	char o_uid[40], o_gid[40];
	int ro;
	const char **argv;
};

/* Is mountpoint mounted and answering (*live_r = 1)? A dead sshfs (server gone,
 * e.g. restarted elsewhere) is dropped: then *live_r = 0, to mount again. */
static int sftp_drop_stale(struct sftp_fs *fs, const char *vol, const char *mountpoint, int *live_r,
                           struct vf_err *err)
{
	const char *uargv[] = {fs->fusermount, "-u", "-z", mountpoint, NULL};
	struct statvfs sv;
	int status;

	*live_r = 0;
	if (!vf_fs_is_mounted(mountpoint))
		return VF_OK;
	/* statvfs goes to the server (stat may be answered from sshfs' cache) */
	if (statvfs(mountpoint, &sv) == 0) {
		*live_r = 1; /* mounted and answering */
		return VF_OK;
	}
	vf_log(VF_LOG_WARN, "volume %s: stale mount at %s (%s): remounting", vol, mountpoint,
	       strerror(errno));
	if (vf_fs_run(uargv, NULL, fs->mount_timeout_ms, &status, NULL, NULL, NULL) != VF_OK ||
	    vf_fs_wait_mounted(mountpoint, 0, fs->mount_timeout_ms) != VF_OK)
		return vf_err_set(err, VF_EBUSY, "volume %s: cannot drop stale mount at %s", vol,
		                  mountpoint);
	return VF_OK;
}

/* How ssh reaches c's server: inside vfiled through the proxy (it finds the live
 * server, and follows it), else directly at addr:port. */
static int sftp_sshfs_route(struct sftp_fs *fs, const char *vol, struct sftp_sshfs *c,
                            struct vf_err *err)
{
	int rc;

	if (fs->ctl_socket && (rc = sftp_check_exec("vfilectl", fs->vfilectl, err)) != VF_OK)
		return rc;
	if (fs->ctl_socket && c->port > 0 && !sftp_probe(c->addr, c->port, 3000)) {
		/* Through the proxy a mount would wait (up to mount_timeout_ms) for a
		 * live server: right for a reconnect, wrong for a first mount made with
		 * an info document that names a server already stopped (the volume
		 * layer's one-txn first mount tries the info it remembers, and takes
		 * the locked way, which starts a server, only when this fails). */
		return vf_err_set(err, VF_EUNAVAIL,
		                  "volume %s: the server %s:%d named by its info does not accept "
		                  "connections (stopped or moved)",
		                  vol, c->addr, c->port);
	}
	if (fs->ctl_socket) {
		snprintf(c->o_proxy, sizeof(c->o_proxy),
		         "ProxyCommand=%s -s %s proxy %s --wait-ms %d", fs->vfilectl,
		         fs->ctl_socket, vol, fs->failover_wait_ms);
		snprintf(c->o_ctimeout, sizeof(c->o_ctimeout), "ConnectTimeout=%d",
		         fs->failover_wait_ms / 1000 + 10);
	}
	if (c->port <= 0)
		return vf_err_set(err, VF_EPROTO, "volume %s: file server has no port", vol);
	snprintf(c->o_port, sizeof(c->o_port), "port=%d", c->port);
	return VF_OK;
}

/* known_hosts: the cluster host key under a fixed alias (any address/port), in
 * <state_dir>/sftp-client/known_hosts (c->kh). */
static int sftp_known_hosts(struct sftp_fs *fs, struct sftp_sshfs *c, struct vf_err *err)
{
	struct vf_buf khtext = {0};
	char dir[PATH_MAX], *hostkey = NULL;
	int rc;

	if ((rc = vf_fs_read_file(fs->host_public_key, &hostkey, NULL, err)) != VF_OK)
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
	    (rc = sftp_path(c->kh, sizeof(c->kh), err, "%s/known_hosts", dir)))
		goto out;
	rc = vf_fs_write_file(c->kh, khtext.data, khtext.len, 0644, err);
out:
	free(hostkey);
	vf_buf_free(&khtext);
	return rc;
}

/* The remote path and the options that name this mount's files and keys. */
static void sftp_sshfs_opts(struct sftp_fs *fs, const char *vol, const char *info_json,
                            struct sftp_sshfs *c)
{
	snprintf(c->remote, sizeof(c->remote),
	         strchr(c->addr, ':') ? "%s@[%s]:%s%s%s%s" : "%s@%s:%s%s%s%s", fs->user, c->addr,
	         fs->chroot ? "/data" : fs->export_root, fs->chroot ? "" : "/",
	         fs->chroot ? "" : vol, fs->chroot ? "" : "/data");
	/* create options: mode=ro mounts read-only; uid/gid own the files as shown */
	char *mode = vf_fs_info_opt(info_json, "mode"), *uid = vf_fs_info_opt(info_json, "uid");
	char *gid = vf_fs_info_opt(info_json, "gid");
	c->ro = mode && strcmp(mode, "ro") == 0;
	if (uid)
		snprintf(c->o_uid, sizeof(c->o_uid), "uid=%.30s", uid);
	if (gid)
		snprintf(c->o_gid, sizeof(c->o_gid), "gid=%.30s", gid);
	free(mode);
	free(uid);
	free(gid);
	snprintf(c->o_id, sizeof(c->o_id), "IdentityFile=%s", fs->private_key);
	snprintf(c->o_kh, sizeof(c->o_kh), "UserKnownHostsFile=%s", c->kh);
}

/* Fill c->argv (room for 60 + 2 * nsshfs_opts): sshfs REMOTE MOUNTPOINT and its -o
 * options, c's and the fixed ones, sshfs_tuning's, then fileserver.sshfs_options. */
static void sftp_sshfs_argv(struct sftp_fs *fs, struct sftp_sshfs *c, const char *mountpoint)
{
	const char **argv = c->argv;
	int k = 0;

	argv[k++] = fs->sshfs;
	argv[k++] = c->remote;
	argv[k++] = mountpoint;
	const char *opts[] = {c->o_proxy[0] ? c->o_proxy : c->o_port,
	                      c->o_id,
	                      "IdentitiesOnly=yes",
	                      c->o_kh,
	                      "GlobalKnownHostsFile=/dev/null",
	                      "StrictHostKeyChecking=yes",
	                      "HostKeyAlias=" SFTP_HOST_ALIAS,
	                      "BatchMode=yes",
	                      "PasswordAuthentication=no",
	                      c->o_ctimeout,
	                      "ServerAliveInterval=5",
	                      "ServerAliveCountMax=3",
	                      "reconnect",
	                      "LogLevel=ERROR",
	                      geteuid() == 0 ? "allow_other" : NULL,
	                      c->ro ? "ro" : NULL,
	                      c->o_uid[0] ? c->o_uid : NULL,
	                      c->o_gid[0] ? c->o_gid : NULL};
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
}

/* Run sshfs, and wait until its mount shows. */
static int sftp_sshfs_run(struct sftp_fs *fs, const char *vol, const char *mountpoint,
                          const struct sftp_sshfs *c, struct vf_err *err)
{
	char *out = NULL, *errout = NULL, line[160];
	int rc, status;

	rc = vf_fs_run(c->argv, NULL, fs->mount_timeout_ms, &status, &out, &errout, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: mount at %s", vol, mountpoint);
		goto out;
	}
	if (status != 0) {
		rc = vf_err_set(err, VF_EINVAL, "volume %s: sshfs %s:%d failed (exit %d): %s", vol,
		                c->addr, c->port, status,
		                vf_fs_last_line(errout, line, sizeof(line))[0] ? line
		                                                               : "(no message)");
		goto out;
	}
	if (vf_fs_wait_mounted(mountpoint, 1, fs->mount_timeout_ms) != VF_OK) {
		rc = vf_err_set(err, VF_ETIMEDOUT, "volume %s: sshfs did not mount %s within %d ms",
		                vol, mountpoint, fs->mount_timeout_ms);
		goto out;
	}
	vf_log(VF_LOG_INFO, "volume %s: mounted %s:%d at %s%s", vol, c->addr, c->port, mountpoint,
	       c->o_proxy[0] ? " (through vfilectl proxy: follows the volume's server)" : "");
out:
	free(out);
	free(errout);
	return rc;
}

int sftp_mount(void *arg, const char *vol, const char *info_json, const char *mountpoint,
               struct vf_err *err)
{
	struct sftp_fs *fs = arg;
	struct sftp_sshfs c = {.o_ctimeout = "ConnectTimeout=10"};
	int rc, live, sealed = -1;

	if (vf_fs_vol_check(vol, err) != VF_OK)
		return VF_EINVAL;
	if ((rc = sftp_drop_stale(fs, vol, mountpoint, &live, err)) != VF_OK || live)
		return rc;
	if ((rc = vf_fs_info_server(info_json, &c.addr, &c.port, err)) != VF_OK) {
		vf_err_prefix(err, "volume %s", vol);
		goto out;
	}
	if (fs->local_bind && sftp_serves(fs, vol, c.addr, c.port)) {
		rc = sftp_mount_bind(fs, vol, info_json, mountpoint, err);
		goto out;
	}
	if ((rc = sftp_sshfs_route(fs, vol, &c, err)) ||
	    (rc = sftp_check_file("private_key", fs->private_key, err)) ||
	    (rc = sftp_known_hosts(fs, &c, err)))
		goto out;
	sftp_sshfs_opts(fs, vol, info_json, &c);
	if ((c.argv = calloc(60 + 2 * fs->nsshfs_opts, sizeof(char *))) == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	sealed = sftp_seal(vol, mountpoint, 1);
	sftp_sshfs_argv(fs, &c, mountpoint);
	rc = sftp_sshfs_run(fs, vol, mountpoint, &c, err);
out:
	/* a first mount that failed leaves a plain directory; a remount that failed
	 * keeps it sealed (what was under the dead mount stays unwritable) */
	if (rc != VF_OK && sealed == 0 && !vf_fs_is_mounted(mountpoint))
		sftp_seal(vol, mountpoint, 0);
	free(c.argv);
	free(c.addr);
	return rc;
}

int sftp_unmount(void *arg, const char *vol, const char *mountpoint, struct vf_err *err)
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
