/* Private to the manager side of the volume manager (manager.c: watches,
 * worker pool, job queue and claims; handlers.c: what each job does;
 * reconcile.c: the reconciler). */
#ifndef VFILE_MGR_INT_H
#define VFILE_MGR_INT_H

#include <stdint.h>

#include "strmap.h"
#include "volume_int.h"

/* Workers: handlers spend nearly all their time waiting for the store (a
 * restart is a lock request and a txn), so many run at once; one volume's
 * jobs still run one at a time. */
#define MGR_WORKERS 32
#define MGR_NAME (VF_VOLUME_NAME_MAX + 1)

enum mgr_job_kind {
	JOB_START = 0,
	JOB_STOP,
	JOB_CHECK,
	JOB_RESTART,
	JOB_IDLE,
	JOB_ORPHAN,
	JOB_RESTART_BATCH
};

/* Restarts found by one reconcile pass go out in batches (when the backend has
 * lock_many): one request takes the state locks of up to MGR_BATCH_MAX volumes,
 * one reads their info, one txn records every server and releases the locks. A
 * batch is what K single restarts would do at one instant; anything unusual
 * (a lock held, a compare failed) sends its volumes back as single restarts. */
#define MGR_BATCH_MAX 32
enum { BATCH_SKIP = 0, BATCH_MINE, BATCH_BACK };
struct mgr_batch {
	size_t n;
	unsigned char claim[MGR_BATCH_MAX]; /* BATCH_*: set when a worker takes it */
	char vol[MGR_BATCH_MAX][MGR_NAME];
	int64_t state_rev[MGR_BATCH_MAX]; /* state/<vol> (Mounted) as listed */
	char *info[MGR_BATCH_MAX];        /* info/<vol> as listed after it (NULL: absent) */
};

struct mgr_job {
	char vol[MGR_NAME];
	int kind;
	struct mgr_batch *batch; /* JOB_RESTART_BATCH */
	struct mgr_job *next;
};

struct mgr_idle {
	char vol[MGR_NAME];
	int64_t state_rev, gref_rev, server_rev;
	int seen; /* pass number it was last seen idle */
};

struct mgr {
	struct vf_ctx *ctx;
	pthread_mutex_t mu, pass_mu; /* pass_mu: one reconcile pass at a time */
	pthread_cond_t job_cv, rec_cv;
	struct mgr_job *head, *tail;
	char busy[MGR_WORKERS][MGR_NAME];
	pthread_t workers[MGR_WORKERS];
	int nworkers;
	pthread_t rec_thr;
	int rec_started;
	struct vf_kv_watch *watches[3];
	struct mgr_watch_arg *wargs[3];
	int stop, suspended, rec_req, pass;
	struct vf_strmap served; /* volumes this process serves */
	struct vf_strmap queued; /* "<kind>/<vol>" of jobs queued, not started */
	struct vf_strmap idle;   /* vol -> struct mgr_idle */
	struct vf_strmap bbusy;  /* volumes of the restart batches running now */
	/* vol -> (uintptr_t) done_seq when a job on it last ended: a reconcile
	 * pass that listed before that sees the volume as it was, and leaves its
	 * restart to the next pass (which lists again) */
	struct vf_strmap settled;
	uintptr_t done_seq;
	/* bumped by each lease loss: a pass that began under an earlier lease
	 * saw a served set and server records that are gone (mgr_pass_stale) */
	unsigned long lease_epoch;
};

/* manager.c */
void mgr_batch_add(struct mgr *m, struct mgr_batch **bp, const char *vol, int64_t state_rev,
                   const char *info);
void mgr_batch_flush(struct mgr *m, struct mgr_batch **bp);
size_t mgr_batch_size(const struct vf_ctx *ctx);
void mgr_enqueue(struct mgr *m, const char *vol, int kind);
int mgr_serves(struct mgr *m, const char *vol);
int mgr_stale_mine(const struct vf_ctx *ctx, const char *value, const char *cur);
void mgr_fs_stop(struct mgr *m, const char *vol, const char *why);
void mgr_served_set(struct mgr *m, const char *vol, int on);

/* handlers.c (each run by a worker; see there) */
int mgr_do_start(struct mgr *m, const char *vol, struct vf_kv_lease *lease, int restart);
void mgr_do_restart_batch(struct mgr *m, const char *const *vols, const int64_t *revs,
                          char *const *infos, size_t n, struct vf_kv_lease *lease, int *back_r);
int mgr_do_stop(struct mgr *m, const char *vol, struct vf_kv_lease *lease);
void mgr_do_check(struct mgr *m, const char *vol, struct vf_kv_lease *lease);
void mgr_do_orphan(struct mgr *m, const char *vol);
int mgr_names_node(const struct vf_ctx *ctx, const char *v);
void mgr_do_idle(struct mgr *m, const char *vol, struct vf_kv_lease *lease);

/* reconcile.c */
void *mgr_reconciler(void *arg);

#endif /* VFILE_MGR_INT_H */
