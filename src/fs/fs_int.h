/*
 * File-server drivers: how a volume is served (on managers) and mounted (on hosts).
 *
 * vfiled opens one driver from the config's `fileserver = { driver = ...; }` group and
 * hands its vf_fs_ops and arg to the volume manager (struct vf_ctx_cfg .fs/.fs_arg).
 * Drivers: "sftp" (default: one sftp-only sshd per volume, mounted with sshfs),
 * "hooks" (operator commands, see doc/fileserver.md) and "none" (no-op, for tests).
 *
 * The info JSON handed to mount() is the volume's info/<vol> document; the driver
 * reads the server address from it: "Addr"/"Port" at the top level or inside a
 * "Server" (or "FileServer") object; lower-case names are accepted too.
 *
 * Thread-safety: every vf_fs_ops slot may be called concurrently from any thread;
 * calls for one volume are serialised by the driver. Children are reaped with
 * waitpid(pid): the process must not ignore SIGCHLD nor reap with waitpid(-1).
 */
#ifndef VFILE_FS_INT_H
#define VFILE_FS_INT_H

#include <sys/types.h>
#include <libconfig.h>

#include "vfile/vfile.h"

/* Open the driver named by fileserver_group's "driver" (NULL group: the defaults,
 * driver "sftp"). state_dir holds per-volume run dirs (generated sshd configs,
 * logs, pid files). Validates the group: a wrong type, an unknown setting or a bad
 * value is VF_EINVAL naming file:line: setting. */
int vf_fs_open(const config_setting_t *fileserver_group, const char *state_dir,
               const struct vf_fs_ops **ops_r, void **arg_r, struct vf_err *err);
/* Free the driver (arg may be NULL). The sftp driver's servers end with it (and
 * with the process, whatever way it ends: see fs_sftp_guard.c). */
void vf_fs_close(void *arg);
/* The daemon that owns state_dir, at its start: stop the servers an earlier run
 * left behind (sftp; a no-op for the other drivers). */
void vf_fs_sweep(void *arg);
/* Mounts made from now on reach the volume's server through `vfilectl -s
 * ctl_socket proxy VOL`, which follows the volume to its current server (sftp;
 * VF_OK and a no-op for the other drivers). VF_EINVAL for a socket path that
 * cannot go into ssh's ProxyCommand. */
int vf_fs_set_proxy(void *arg, const char *ctl_socket, struct vf_err *err);

/* ---- internal to the fs_*.c files ---- */
struct fs_driver {
	const char *name;
	const struct vf_fs_ops *ops;
	int (*open)(const config_setting_t *grp, const char *state_dir, void **arg_r,
	            struct vf_err *err);
	void (*close)(void *arg);
	void (*sweep)(void *arg);                                                /* NULL: none */
	int (*set_proxy)(void *arg, const char *ctl_socket, struct vf_err *err); /* NULL */
};
/* The first member of every driver's arg. */
struct fs_base {
	const struct fs_driver *drv;
};
extern const struct fs_driver fs_sftp_driver;
extern const struct fs_driver fs_hooks_driver;
extern const struct fs_driver fs_none_driver;

/* A volume name safe to use as one path component (not a full name check). */
int vf_fs_vol_check(const char *vol, struct vf_err *err);
/* "file:line: setting 'fileserver.name'" prefix for a value error of grp's member. */
int vf_fs_cfg_bad(const config_setting_t *grp, const char *name, struct vf_err *err,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Spawn argv (argv[0] looked up in PATH) in a new process group with stdin
 * /dev/null, stdout/stderr on the given fds (-1: /dev/null), default signal
 * dispositions and an empty signal mask. envp NULL: the current environment. */
int vf_fs_spawn(const char *const *argv, const char *const *envp, int out_fd, int err_fd,
                pid_t *pid_r, struct vf_err *err);
/* Wait for a child of ours up to timeout_ms (< 0: forever). VF_OK with *status_r
 * (waitpid status) once reaped; VF_ETIMEDOUT if still running. */
int vf_fs_wait(pid_t pid, int timeout_ms, int *status_r);
/* SIGTERM the process group of pid, wait grace_ms, then SIGKILL it; reap pid. */
void vf_fs_kill_wait(pid_t pid, int grace_ms);
/* Run argv to completion within timeout_ms (killing its process group when it runs
 * out: VF_ETIMEDOUT). *status_r: the exit code, or 128+signal. out_r/errout_r
 * (may be NULL): what it printed, NUL-terminated, at most 64 KiB each. */
int vf_fs_run(const char *const *argv, const char *const *envp, int timeout_ms, int *status_r,
              char **out_r, char **errout_r, struct vf_err *err);
/* The last non-empty line of text, trimmed to fit an error message (static buffer
 * per call site is not needed: writes into buf). */
const char *vf_fs_last_line(const char *text, char *buf, size_t size);

/* 1 if a filesystem is mounted exactly at path (per /proc/self/mountinfo), else 0. */
int vf_fs_is_mounted(const char *path);
/* The vf_fs_ops mounted slot of a driver that mounts a filesystem at the
 * mountpoint (sftp, hooks): vf_fs_is_mounted(mountpoint). */
int vf_fs_mounted(void *arg, const char *vol, const char *mountpoint);
/* Wait until vf_fs_is_mounted(path) == want, up to timeout_ms. VF_OK or VF_ETIMEDOUT. */
int vf_fs_wait_mounted(const char *path, int want, int timeout_ms);

/* mkdir -p with mode for the missing components. */
int vf_fs_mkdirs(const char *path, mode_t mode, struct vf_err *err);
/* Write a whole file atomically (tmp + rename) with mode. */
int vf_fs_write_file(const char *path, const char *data, size_t len, mode_t mode,
                     struct vf_err *err);
/* Read a whole (small) file. */
int vf_fs_read_file(const char *path, char **data_r, size_t *len_r, struct vf_err *err);
/* Find prog in PATH (or return a copy if it contains '/'); NULL if not found. */
char *vf_fs_which(const char *prog);

/* The server address in info_json (see above). */
int vf_fs_info_server(const char *info_json, char **addr_r, int *port_r, struct vf_err *err);

/* A create option ("options": {key: "value"}) of info_json, malloc'ed, or NULL. */
char *vf_fs_info_opt(const char *info_json, const char *key);

#endif /* VFILE_FS_INT_H */
