/*
 * The sftp driver's private declarations, shared by its files (see fs_sftp.c for
 * the driver as a whole):
 *   fs_sftp.c         the driver entry: option parsing, open/close, the ops table
 *   fs_sftp_server.c  manager side: one sshd per volume (export dir, sshd_config,
 *                     port choice, spawn, start/stop/running)
 *   fs_sftp_log.c     sshd's log: the forwarder threads into sshd.log and vfiled's log
 *   fs_sftp_guard.c   no sshd outlives its daemon: the guards, killing a server's
 *                     process tree, the sweep of a previous run's servers
 *   fs_sftp_mount.c   host side: sshfs mount/unmount, the serving host's bind mount
 */
#ifndef VFILE_SFTP_INT_H
#define VFILE_SFTP_INT_H

#include <pthread.h>
#include <sys/types.h>

#include "fs_int.h"

#define SFTP_HOST_ALIAS "vfile-cluster"

struct sftp_srv {
	char *vol;
	pid_t pid;   /* sshd; 0 while starting */
	pid_t guard; /* its guard (fs_sftp_guard.c); 0 none */
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

/* ---- fs_sftp.c: small shared helpers ---- */

/* snprintf into a path buffer; VF_EINVAL "path too long" when it does not fit. */
int sftp_path(char *buf, size_t size, struct vf_err *err, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* path readable / executable, else VF_EINVAL "fileserver.WHAT PATH: reason". */
int sftp_check_file(const char *what, const char *path, struct vf_err *err);
int sftp_check_exec(const char *what, const char *path, struct vf_err *err);

/* ---- fs_sftp_server.c: the vf_fs_ops of the manager side ---- */

int sftp_start(void *arg, const char *vol, const char *info_json, char **addr_r, int *port_r,
               struct vf_err *err);
int sftp_stop(void *arg, const char *vol, const char *info_json, struct vf_err *err);
int sftp_running(void *arg, const char *vol);

/* ---- fs_sftp_log.c ---- */

/* sshd's stderr pipe (*wfd_r) and its forwarder thread (*thr_r). */
int sftp_logfwd_start(const char *vol, const char *logp, int *wfd_r, pthread_t *thr_r,
                      struct vf_err *err);
/* Wait (bounded) for the forwarder of an sshd that failed to start. */
void sftp_logfwd_end(pthread_t thr, int ms);
/* Wait (up to ms) until no forwarder runs (their sshd are stopped). */
void sftp_logfwd_drain(int ms);

/* ---- fs_sftp_guard.c ---- */

/* SIGKILL root and every process under it; async-signal-safe. */
void sftp_kill_tree(pid_t root);
/* Fork the guard of sshd; its pid, or 0 when the fork failed (logged). */
pid_t sftp_guard_start(struct sftp_fs *fs, const char *vol, pid_t sshd);
/* End the guard of s (the server is being stopped, or has exited). */
void sftp_guard_stop(struct sftp_srv *s);
/* Is s's sshd running? (reaps it, and ends its guard, when it exited) */
int sftp_alive(struct sftp_fs *fs, struct sftp_srv *s);
/* Stop s: its guard, then the sshd and its sessions; reap it. */
void sftp_kill(struct sftp_fs *fs, struct sftp_srv *s);
/* Stop the sshd an earlier run of vfiled on fs->state_dir left behind. */
void sftp_sweep(struct sftp_fs *fs);

/* ---- fs_sftp_mount.c: the vf_fs_ops of the host side ---- */

int sftp_mount(void *arg, const char *vol, const char *info_json, const char *mountpoint,
               struct vf_err *err);
int sftp_unmount(void *arg, const char *vol, const char *mountpoint, struct vf_err *err);

#endif /* VFILE_SFTP_INT_H */
