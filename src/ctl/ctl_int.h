/*
 * vfilectl internals, split from main() so that the unit tests drive them:
 * argument parsing is a pure function (no I/O, no allocation), and ctl_main()
 * writes to the streams it is given.
 */
#ifndef VFILE_CTL_INT_H
#define VFILE_CTL_INT_H

#include <stdio.h>
#include <yajl/yajl_tree.h>

#define CTL_EXIT_OK 0
#define CTL_EXIT_FAIL 1  /* the operation failed (the daemon's Err, daemon not running) */
#define CTL_EXIT_USAGE 2 /* unknown command or option, missing NAME, invalid -o */

#define CTL_MAX_OPTS 32
#define CTL_DEFAULT_SOCKET "/run/docker/plugins/vfile.sock"
#define CTL_DEFAULT_ID "vfilectl"
#define CTL_PROXY_WAIT_MS 60000 /* fileserver.failover_wait_ms's default */
#define CTL_PROXY_CHECK_MS 1000

enum ctl_cmd {
	CTL_NONE = 0,
	CTL_CREATE,
	CTL_RM,
	CTL_LS,
	CTL_INSPECT,
	CTL_MOUNT,
	CTL_UNMOUNT,
	CTL_STATUS,
	CTL_KVDUMP,
	CTL_MIGRATE,
	CTL_NODES,
	CTL_EVICT,
	CTL_PROXY,
	CTL_INIT,
};

struct ctl_args {
	const char *socket; /* -s: NULL = from the config, else the default */
	const char *config; /* -c */
	int json;           /* --json */
	int help;           /* --help (global when cmd == CTL_NONE) */
	int version;        /* --version */
	long timeout_s;     /* --timeout, 0 = per command default */
	enum ctl_cmd cmd;
	const char *name;               /* NAME of create/rm/inspect/mount/unmount */
	const char *id;                 /* --id of mount/unmount */
	const char *opts[CTL_MAX_OPTS]; /* create -o "key=value", validated */
	size_t nopts;
	const char *to;   /* migrate --to FILE */
	int force;        /* migrate --force: copy Mounted volumes too */
	int overwrite;    /* migrate --overwrite: replace volumes on the target */
	const char *node; /* evict NODE */
	int evict_force;  /* evict --force: also a host whose lease holds */
	long wait_ms;     /* proxy --wait-ms (default CTL_PROXY_WAIT_MS) */
	long check_ms;    /* proxy --check-ms (default CTL_PROXY_CHECK_MS) */
};

/* Parse argv (argv[0] is the program). CTL_EXIT_OK with *a filled, or
 * CTL_EXIT_USAGE with a one-line reason in msg. Pointers in *a point into argv. */
int ctl_parse(int argc, char *const *argv, struct ctl_args *a, char *msg, size_t msgsize);

/* The command's name ("create") and its usage text. */
const char *ctl_cmd_name(enum ctl_cmd cmd);
void ctl_usage(FILE *f, enum ctl_cmd cmd);

/* vfilectl migrate (src/ctl/migrate.c): copy every volume from the store of
 * src_file to the store of dst_file, then verify; returns the exit code. */
struct ctl_migrate_opts {
	int force, overwrite, json;
};
int ctl_migrate(const char *src_file, const char *dst_file, const struct ctl_migrate_opts *o,
                FILE *out, FILE *errf);
/* The same over open store handles and prefixes (tests). */
struct vf_kv;
int ctl_migrate_kv(struct vf_kv *src, const char *src_prefix, struct vf_kv *dst,
                   const char *dst_prefix, const struct ctl_migrate_opts *o, FILE *out, FILE *errf);

/* POST body to vfiled's endpoint over the unix socket sock; *resp_r: the parsed
 * answer (a JSON object). CTL_EXIT_OK, or CTL_EXIT_FAIL with the reason on errf. */
int ctl_call(const char *sock, const char *endpoint, const char *body, long timeout_s,
             yajl_val *resp_r, FILE *errf);

/* vfilectl proxy (src/ctl/ctl_proxy.c): relay stdin/stdout to vol's live file server,
 * waiting up to wait_ms for one; returns the exit code. */
int ctl_proxy(const char *sock, const char *vol, long wait_ms, long check_ms, FILE *errf);
/* vfilectl init: write the cluster marker of the config's export_root (and the
 * store's cluster id if there is none yet); returns the exit code. */
int ctl_init(const char *file, int json, FILE *out, FILE *errf);

/* The whole program: parse, talk to vfiled, print; returns the exit code. */
int ctl_main(int argc, char **argv, FILE *out, FILE *errf);

#endif /* VFILE_CTL_INT_H */
