/*
 * The backend conformance suite: the executable spec of include/vfile/kv.h, one
 * file per group of slots (cf_kv.c: get/list/put/cas/del/cas_del and keys;
 * cf_txn.c; cf_lease.c; cf_lock.c: lock/unlock; cf_lock_many.c; cf_watch.c;
 * cf_store.c: an unreachable, paused, killed or wrong store and authentication).
 * cf_main.c picks the backend (see there) and registers the cases. Backend
 * differences are handled only through the caps bits, kv->min_lease_ttl_s and
 * kv->max_txn_ops; a case the run cannot drive is registered inactive (CUnit's
 * "not run"), with the reason printed, never reported passed.
 */
#ifndef VFILE_CONFORMANCE_H
#define VFILE_CONFORMANCE_H

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_int.h"
#include "harness.h"
#include "vfile/kv.h"
#include "vfile/vfile.h"

/* ---- the run ---- */
extern const char *cf_name;   /* backend name ("etcd", "consul", "memkv", a module's) */
extern struct vf_srv *cf_srv; /* the harness server (etcd, consul), else NULL */
extern struct vf_kv *cf_kv;   /* the shared handle */
extern const struct vf_kv_ops *cf_ops;
extern char cf_prefix[64]; /* unique per run, ends in '/' */
extern int cf_slow;        /* deadline multiplier (valgrind) */
extern int cf_timeout_ms;  /* request timeout in the backend config */

/* Start a case: it must finish within bound_s seconds (times cf_slow), or the
 * watchdog kills the servers and fails the program. */
void cf_case(const char *name, int bound_s);
/* A note in the verbose output (measurements). */
void cf_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* base + name, under this run's prefix. */
const char *cf_key(char *buf, size_t size, const char *cas, const char *name);
/* Open a handle from a config snippet for the backend's group (harness servers
 * only: the snippet names endpoints). */
int cf_open(const char *snippet, struct vf_kv **kv_r, struct vf_err *err);
/* Open one more handle on the same store as cf_kv, whatever the backend. */
int cf_open_more(struct vf_kv **kv_r, struct vf_err *err);
int cf_get_str(struct vf_kv *kv, const char *key, char *val, size_t size, int64_t *mod_rev_r,
               struct vf_err *err);
/* Poll get(key) until it returns want, within ms; returns the last rc. */
int cf_wait_get(struct vf_kv *kv, const char *key, int want, int ms, int64_t *took_r);
/* The TTL the cases grant: 5 s or the store's minimum. */
int cf_lease_ttl(void);
/* The bound on a request to an unreachable store: the request timeout + 2 s. */
int cf_bound_ms(void);
/* get(k) on cf_kv is VF_OK with value val (what: the failure message). */
void cf_expect_val(const char *k, const char *val, const char *what);

/* ---- watch helpers (cf_watch.c): events collected, and the prefix mirrored ---- */
#define CF_MAX_EV 256
#define CF_MAX_MIRROR 64
struct cf_ev {
	int type;
	char key[160];
	char val[64];
	size_t len;
	int64_t mod_rev;
};
struct cf_watch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *prefix;
	struct cf_ev ev[CF_MAX_EV];
	int n, resyncs, overflow, list_errors;
	/* The prefix as the events describe it; re-listed on RESYNC. */
	int mn;
	char mkey[CF_MAX_MIRROR][160];
	char mval[CF_MAX_MIRROR][64];
};

/* Events from index from on are exactly want (type, key, value), revisions rising. */
struct cf_want {
	int type;
	const char *key;
	const char *val;
};
void cf_watch_init(struct cf_watch *w, const char *prefix);
void cf_watch_fini(struct cf_watch *w);
void cf_mirror_set(struct cf_watch *w, const char *key, const char *val);
int cf_mirror_relist(struct cf_watch *w, int64_t *rev_r);
int cf_watch_cb(const struct vf_kv_event *ev, void *arg);
int cf_watch_wait(struct cf_watch *w, int (*pred)(struct cf_watch *, const void *), const void *arg,
                  int ms);
int cf_pred_count(struct cf_watch *w, const void *arg);
int cf_pred_mirror_has(struct cf_watch *w, const void *arg);
void cf_check_seq(struct cf_watch *w, int from, const struct cf_want *want, int n,
                  const char *what);
void cf_check_mirror(struct cf_watch *w, const char *what);
void cf_step(struct cf_watch *w, const char *key, const char *val, int64_t *rev_r);
int cf_pred_resync(struct cf_watch *w, const void *arg);

/* ---- lock helpers (cf_lock.c): a thread blocked in lock() ---- */
struct cf_waiter {
	struct vf_kv_lease *lease;
	const char *name;
	int started, returned, rc;
	int64_t at;
	struct vf_kv_lock *lock;
	const char *read;       /* read with the acquisition (may be NULL) */
	struct vf_kv_result rr; /* its result */
	char msg[256];
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

void *cf_waiter_main(void *arg);

/* ---- registration ---- */
/* Why a case needing a harness server (pause, kill, restart, proxy, auth) cannot
 * run here, or NULL when there is one. */
const char *cf_no_server(void);
/* Add fn to the suite, or register it inactive when why is not NULL. Honours
 * $VFILE_CONFORMANCE_CASES (a comma-separated list of case names). */
void cf_add(CU_pSuite s, const char *name, CU_TestFunc fn, const char *why);
/* Why a case using the OPTIONAL slot cannot run (the slot is NULL), or NULL. */
#define CF_NEEDS(slot) (cf_ops->slot ? NULL : "the OPTIONAL slot " #slot " is NULL")
/* The first of two reasons that is not NULL. */
#define CF_EITHER(a, b) ((a) ? (a) : (b))
#define CF_ADD(s, fn, why) cf_add((s), #fn, (fn), (why))
void cf_register_kv(CU_pSuite s);
void cf_register_txn(CU_pSuite s);
void cf_register_lease(CU_pSuite s);
void cf_register_lock(CU_pSuite s);
void cf_register_lock_many(CU_pSuite s);
void cf_register_watch(CU_pSuite s);
void cf_register_store(CU_pSuite s);

/* ---- assertions that print the backend's message ---- */
#define CF_RC(expr, want)                                                                          \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ != (want))                                                                 \
			fprintf(stderr, "\n%s:%d: %s = %d (%s), want %d: %s\n", __FILE__,          \
			        __LINE__, #expr, rc_, vf_strerror(rc_), (want), err.msg);          \
		CU_ASSERT_EQUAL(rc_, (want));                                                      \
	} while (0)
#define CF_RC_FATAL(expr, want)                                                                    \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ != (want))                                                                 \
			fprintf(stderr, "\n%s:%d: %s = %d (%s), want %d: %s\n", __FILE__,          \
			        __LINE__, #expr, rc_, vf_strerror(rc_), (want), err.msg);          \
		CU_ASSERT_EQUAL_FATAL(rc_, (want));                                                \
	} while (0)
#define CF_OK(expr) CF_RC(expr, VF_OK)
#define CF_OK_FATAL(expr) CF_RC_FATAL(expr, VF_OK)

#endif
