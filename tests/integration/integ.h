/*
 * Shared by the integration programs (tests/integration): the real server of the
 * run (etcd or Consul, from $VFILE_INTEG_BACKEND), the loaded backend, an
 * observer handle that reads the store directly, a watchdog that bounds every
 * case, direct store calls that kill a lease behind its owner's back, and the
 * invariant check every case ends with.
 */
#ifndef VFILE_INTEG_H
#define VFILE_INTEG_H

#include <stdint.h>

#include "test_int.h"
#include "harness.h"
#include "vfile/kv.h"
#include "vfile/vfile.h"

struct ig_run {
	const char *backend;   /* "etcd" | "consul" */
	int kind;              /* VF_SRV_ETCD | VF_SRV_CONSUL */
	struct vf_srv *srv;    /* the server (or cluster) of the run */
	struct vf_backend *be; /* the loaded module */
	struct vf_kv *kv;      /* observer handle (reads the store directly) */
	int ttl_s;             /* lease TTL the nodes use (store minimum or more) */
	int req_timeout_ms;    /* per-request timeout in the backend config */
	int slow;              /* deadline multiplier (valgrind) */
	char dir[256];         /* a temporary directory of the run */
	/* set before ig_setup: the server options to start from (members and
	 * timeout_ms are still ig_setup's) */
	const struct vf_srv_opts *srv_opts;
};
extern struct ig_run ig;

/* Load the backend named by $VFILE_INTEG_BACKEND (default etcd), start its server
 * with members (etcd cluster size; 0: one), open the observer handle, start the
 * watchdog. Skips (exit 77) when the module was not built; vf_test_unavailable
 * when the server cannot start. */
void ig_setup(const char *prog, int members);
/* Open a handle from a config snippet of the backend's group. */
int ig_open(const char *snippet, struct vf_kv **kv_r, struct vf_err *err);
/* A case must end within bound_s seconds (times ig.slow), or the watchdog kills
 * the servers and fails the program. bound_s 0: no case running. */
void ig_case(const char *name, int bound_s);
/* A measurement in the verbose output (also collected for doc/reliability.md). */
void ig_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A fresh key prefix for one case ("vfile-<pid>-<n>/"). */
void ig_prefix(char *buf, size_t size);

/* End the lease with printable id at once through the store's own API (etcd:
 * /v3/lease/revoke; Consul: /v1/session/destroy of both its sessions), as if its
 * owner had died and the TTL had run out. */
int ig_lease_kill(const char *lease_id, char *why, size_t whylen);

/* Store reads under prefix: a counter (-1 absent), a value (malloc'ed, NULL absent),
 * the number of client/<vol>/ keys (-1 on error). */
int64_t ig_num(const char *prefix, const char *fam, const char *vol);
char *ig_value(const char *prefix, const char *fam, const char *vol);
int ig_clients(const char *prefix, const char *vol);

/* The invariant check every case ends with. The probe tells what the store cannot:
 * how many servers run for vol and how many hosts believe they have it mounted; and
 * mounts/unmounts from some host (to prove the volume is not wedged). */
struct ig_probe {
	int (*nservers)(void *arg, const char *vol);
	int (*believers)(void *arg, const char *vol);
	/* VF_OK or an error with a message (mount id "probe") */
	int (*mount)(void *arg, const char *vol, char *msg, size_t size);
	int (*unmount)(void *arg, const char *vol, char *msg, size_t size);
	void *arg;
};
/* Poll (bounded by settle_ms) until gref == client keys == believers, servers ==
 * (gref > 0), state Mounted with a server key iff gref > 0; then a mount and an
 * unmount through the probe succeed and the volume settles again. 1 if all holds,
 * else 0 after printing what did not. */
int ig_invariants(const struct ig_probe *p, const char *prefix, const char *vol, int settle_ms);
/* The settle part only. */
int ig_settled(const struct ig_probe *p, const char *prefix, const char *vol, int settle_ms);

/* dirfs, the file server of vfnode processes (see vfnode.c): is the server file
 * name (in dir) held by a live process; how many live servers does vol have. */
int ig_dirfs_live(const char *dir, const char *name);
int ig_dirfs_servers(const char *dir, const char *vol);
/* Lines in dir/name (0 if absent). */
int ig_file_lines(const char *dir, const char *name);

#endif
