/* Host convergence: a host converges its client records to its real mounts
 * by itself (see volume_int.h). */
#include <config.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "metrics_int.h"
#include "volume_int.h"
#include "fs_int.h"

/* ---- host convergence (see volume_int.h) ---- */
struct vol_pending {
	char vol[VF_VOLUME_NAME_MAX + 1];
	char *id;
	int local_done; /* the local unmount happened */
	unsigned long seq;
	int64_t due, backoff;
	struct vol_pending *next;
};

/* Store outcomes after which the release is the background's to finish. */
static void vol_sweep_mounts(struct vf_ctx *ctx, int periodic);
static int vol_sweep_ms = VOL_CONV_SWEEP_MS;

void vf_vol_sweep_period_set(int ms)
{
	vol_sweep_ms = ms > 0 ? ms : VOL_CONV_SWEEP_MS;
}

int vol_conv_retryable(int rc)
{
	return rc == VF_EUNAVAIL || rc == VF_EUNCERTAIN || rc == VF_ECONFLICT || rc == VF_ELEASE ||
	       rc == VF_ETIMEDOUT || rc == VF_EPROTO || rc == VF_EBUSY;
}

void vol_pend_add(struct vf_ctx *ctx, const char *vol, const char *id, int local_done)
{
	struct vol_pending *p;

	pthread_mutex_lock(&ctx->mu);
	for (p = ctx->pending; p; p = p->next)
		if (strcmp(p->vol, vol) == 0 && strcmp(p->id, id) == 0)
			break;
	if (p == NULL && (p = calloc(1, sizeof(*p))) != NULL) {
		if ((p->id = strdup(id)) == NULL) {
			free(p);
			p = NULL;
		} else {
			snprintf(p->vol, sizeof(p->vol), "%s", vol);
			p->seq = ++ctx->pend_seq;
			p->next = ctx->pending;
			ctx->pending = p;
		}
	}
	if (p) {
		p->local_done |= local_done;
		p->backoff = VOL_CONV_MIN_MS;
		p->due = vf_now_ms() + VOL_CONV_MIN_MS;
		pthread_cond_broadcast(&ctx->conv_cv);
	} else {
		vf_log(VF_LOG_ERR,
		       "volume %s: out of memory: mount id %s stays counted until this host "
		       "restarts",
		       vol, id);
	}
	pthread_mutex_unlock(&ctx->mu);
}

/* Drop vol/id (by seq when seq != 0); under mu. */
static void vol_pend_drop_locked(struct vf_ctx *ctx, const char *vol, const char *id,
                                 unsigned long seq)
{
	for (struct vol_pending **pp = &ctx->pending, *p; (p = *pp) != NULL; pp = &p->next)
		if (seq ? p->seq == seq : strcmp(p->vol, vol) == 0 && strcmp(p->id, id) == 0) {
			*pp = p->next;
			free(p->id);
			free(p);
			return;
		}
}

/* Drop the pending release of vol/id: -1 if there was none, else whether its
 * local unmount was done. */
int vol_pend_cancel(struct vf_ctx *ctx, const char *vol, const char *id)
{
	int local_done = -1;

	pthread_mutex_lock(&ctx->mu);
	for (struct vol_pending *p = ctx->pending; p; p = p->next)
		if (strcmp(p->vol, vol) == 0 && strcmp(p->id, id) == 0)
			local_done = p->local_done;
	vol_pend_drop_locked(ctx, vol, id, 0);
	pthread_mutex_unlock(&ctx->mu);
	return local_done;
}

void vol_pend_free(struct vf_ctx *ctx)
{
	while (ctx->pending) {
		struct vol_pending *p = ctx->pending;

		ctx->pending = p->next;
		free(p->id);
		free(p);
	}
}

size_t vf_vol_pending_count(struct vf_ctx *ctx)
{
	size_t n = 0;

	pthread_mutex_lock(&ctx->mu);
	for (struct vol_pending *p = ctx->pending; p; p = p->next)
		n++;
	pthread_mutex_unlock(&ctx->mu);
	return n;
}

int vf_vol_pending_has(struct vf_ctx *ctx, const char *vol, const char *id)
{
	int has = 0;

	pthread_mutex_lock(&ctx->mu);
	for (struct vol_pending *p = ctx->pending; p && !has; p = p->next)
		has = strcmp(p->vol, vol) == 0 && strcmp(p->id, id) == 0;
	pthread_mutex_unlock(&ctx->mu);
	return has;
}

/* One try at the release of a pending id (converge thread, mu not held): the
 * unmount's own locked path, with the local unmount skipped when done. */
static void vol_pend_try(struct vf_ctx *ctx, unsigned long seq)
{
	struct vol_pending *p;
	char vol[VF_VOLUME_NAME_MAX + 1], *id = NULL;
	struct vf_buf path = {0};
	struct vf_err e = {0};
	int local_done = 0, local_err = 0, rc, still = 0;

	pthread_mutex_lock(&ctx->mu);
	for (p = ctx->pending; p; p = p->next)
		if (p->seq == seq)
			break;
	if (p) {
		snprintf(vol, sizeof(vol), "%s", p->vol);
		id = strdup(p->id);
		local_done = p->local_done;
	}
	pthread_mutex_unlock(&ctx->mu);
	if (id == NULL || vf_buf_printf(&path, "%s/%s", ctx->mount_root, vol) != VF_OK) {
		free(id);
		return;
	}
	vf_vol_local_enter(ctx, "gref", vol, 0);
	/* a mount of the same id meanwhile cancelled it (under this mutex) */
	pthread_mutex_lock(&ctx->mu);
	for (p = ctx->pending; p; p = p->next)
		still |= p->seq == seq;
	pthread_mutex_unlock(&ctx->mu);
	if (still) {
		int64_t t = ctx->op_timeout_ms < 5000 ? ctx->op_timeout_ms : 5000;

		rc = vol_unmount_once(ctx, vol, id, path.data, vf_now_ms() + t, &local_done,
		                      &local_err, &e);
		pthread_mutex_lock(&ctx->mu);
		if (rc == VF_OK) {
			vol_pend_drop_locked(ctx, vol, id, seq);
			vf_log(VF_LOG_INFO, "volume %s: mount id %s released (in the background)",
			       vol, id);
		} else {
			for (p = ctx->pending; p; p = p->next)
				if (p->seq == seq) {
					p->local_done = local_done;
					p->backoff = p->backoff * 2 > VOL_CONV_MAX_MS
					                     ? VOL_CONV_MAX_MS
					                     : p->backoff * 2;
					p->due = vf_now_ms() + p->backoff;
					vf_log(VF_LOG_WARN,
					       "volume %s: release of mount id %s failed (again "
					       "in %" PRId64 " ms): %s",
					       vol, id, p->backoff, e.msg);
				}
		}
		pthread_mutex_unlock(&ctx->mu);
	}
	vf_vol_local_leave(ctx, "gref", vol);
	vf_buf_free(&path);
	free(id);
}

/* On start: this host's client records against its real mounts. An id the
 * store holds for a volume not mounted here is released (in the background);
 * a local mount of a volume this host holds no id of is unmounted. Only when
 * the driver can tell what is mounted. A store error: the converge thread
 * tries again (VOL_CONV_MAX_MS later). Returns VF_OK when done. */
static int vol_converge_once(struct vf_ctx *ctx)
{
	struct vf_kv_list l = {0};
	struct vf_err e = {0};
	char pre[512], tail[256];
	size_t plen, tlen;
	int rc;

	snprintf(pre, sizeof(pre), "%sclient/", ctx->prefix);
	plen = strlen(pre);
	tlen = (size_t)snprintf(tail, sizeof(tail), "/%s", ctx->node_id);
	rc = ctx->kv->ops->list(ctx->kv, pre, &l, &e);
	if (rc != VF_OK) {
		vf_log(VF_LOG_WARN, "node %s: cannot list %s to check its mounts: %s (retrying)",
		       ctx->node_id, pre, e.msg);
		return rc;
	}
	for (size_t i = 0; i < l.count; i++) {
		const char *k = l.items[i].key;
		size_t kl = strlen(k);
		char vol[VF_VOLUME_NAME_MAX + 1];
		struct vf_buf path = {0};
		struct vf_kv_result r = {0};
		struct vol_ids ids = {0};
		int m;

		if (kl <= plen + tlen || strcmp(k + kl - tlen, tail) != 0 ||
		    kl - plen - tlen > VF_VOLUME_NAME_MAX)
			continue;
		snprintf(vol, sizeof(vol), "%.*s", (int)(kl - plen - tlen), k + plen);
		if (!vf_volume_name_valid(vol) ||
		    vf_buf_printf(&path, "%s/%s", ctx->mount_root, vol) != VF_OK) {
			vf_buf_free(&path);
			continue;
		}
		vf_vol_local_enter(ctx, "gref", vol, 0);
		m = vol_probe(ctx, vol, path.data);
		if (m == 1) {
			vol_local_set(ctx, vol, 1);
		} else if (m == 0) {
			r.found = 1;
			r.pair = l.items[i];
			if (vol_ids_parse(vol, &r, &ids) == VF_OK)
				for (size_t j = 0; j < ids.n; j++) {
					vf_log(VF_LOG_WARN,
					       "volume %s: the store counts mount id %s of %s, "
					       "which has no mount of it: releasing it",
					       vol, ids.v[j], ctx->node_id);
					vol_pend_add(ctx, vol, ids.v[j], 1);
				}
			vol_ids_free(&ids);
		}
		vf_vol_local_leave(ctx, "gref", vol);
		vf_buf_free(&path);
	}
	vf_kv_list_clear(&l);
	vol_sweep_mounts(ctx, 0);
	return VF_OK;
}

/* Local mounts under mount_root no id of this host stands for (sshfs finishing
 * a mount after its daemon was killed): unmounted. known_too: also look at the
 * periodic: skip the volumes this process mounted itself (their records are
 * its own; at start it has none). */
static void vol_sweep_mounts(struct vf_ctx *ctx, int periodic)
{
	struct vf_err e = {0};
	DIR *d;

	if ((d = opendir(ctx->mount_root)) != NULL) {
		struct dirent *de;

		while ((de = readdir(d)) != NULL) {
			struct vf_buf path = {0};
			struct vf_kv_pair p = {0};
			char ck[512];

			if (!vf_volume_name_valid(de->d_name) ||
			    vf_buf_printf(&path, "%s/%s", ctx->mount_root, de->d_name) != VF_OK) {
				vf_buf_free(&path);
				continue;
			}
			vf_vol_local_enter(ctx, "gref", de->d_name, 0);
			vol_client_key(ctx, ck, sizeof(ck), de->d_name, ctx->node_id);
			if (!(periodic && vol_local_mounted(ctx, de->d_name)) &&
			    vol_probe(ctx, de->d_name, path.data) == 1 &&
			    ctx->kv->ops->get(ctx->kv, ck, &p, NULL) == VF_ENOTFOUND) {
				vf_log(VF_LOG_WARN,
				       "volume %s: mounted at %s but %s holds no mount id of it: "
				       "unmounting",
				       de->d_name, path.data, ctx->node_id);
				if (vol_fs_unmount(ctx, de->d_name, path.data, &e) != VF_OK)
					vf_log(VF_LOG_ERR, "%s", e.msg);
			}
			vf_kv_pair_clear(&p);
			vf_vol_local_leave(ctx, "gref", de->d_name);
			vf_buf_free(&path);
		}
		closedir(d);
	}
}

int vf_vol_release_unused(struct vf_ctx *ctx, int (*in_use)(void *arg, const char *vol), void *arg,
                          size_t *released_r, struct vf_err *err)
{
	struct vf_kv_list l = {0};
	char pre[512], tail[256];
	size_t plen, tlen;
	int rc;

	*released_r = 0;
	snprintf(pre, sizeof(pre), "%sclient/", ctx->prefix);
	plen = strlen(pre);
	tlen = (size_t)snprintf(tail, sizeof(tail), "/%s", ctx->node_id);
	if ((rc = ctx->kv->ops->list(ctx->kv, pre, &l, err)) != VF_OK)
		return vf_err_prefix(err, "node %s: cannot list %s", ctx->node_id, pre);
	for (size_t i = 0; i < l.count; i++) {
		const char *k = l.items[i].key;
		size_t kl = strlen(k);
		char vol[VF_VOLUME_NAME_MAX + 1];
		struct vf_kv_result r = {0};
		struct vol_ids ids = {0};

		if (kl <= plen + tlen || strcmp(k + kl - tlen, tail) != 0 ||
		    kl - plen - tlen > VF_VOLUME_NAME_MAX)
			continue;
		snprintf(vol, sizeof(vol), "%.*s", (int)(kl - plen - tlen), k + plen);
		if (!vf_volume_name_valid(vol) || in_use(arg, vol) != 0)
			continue;
		r.found = 1;
		r.pair = l.items[i];
		if (vol_ids_parse(vol, &r, &ids) != VF_OK) {
			vol_ids_free(&ids);
			continue;
		}
		for (size_t j = 0; j < ids.n; j++) {
			struct vf_err e = {0};

			/* the normal unmount path: gref exact, the last id unmounts */
			if (vf_volume_unmount(ctx, vol, ids.v[j], &e) == VF_OK) {
				vf_log(VF_LOG_WARN,
				       "volume %s: no container of dockerd uses it: mount id %s of "
				       "%s released",
				       vol, ids.v[j], ctx->node_id);
				(*released_r)++;
			} else {
				vf_log(VF_LOG_ERR,
				       "volume %s: no container of dockerd uses it, but mount id "
				       "%s "
				       "of %s could not be released: %s",
				       vol, ids.v[j], ctx->node_id, e.msg);
			}
		}
		vol_ids_free(&ids);
	}
	vf_kv_list_clear(&l);
	return VF_OK;
}

void vol_converge_startup(struct vf_ctx *ctx)
{
	ctx->conv_startup = vol_converge_once(ctx) != VF_OK;
}

/* Retries the releases the store did not take and, until it succeeded, the
 * start-up check; sweeps stale local mounts every vol_sweep_ms; each when due. */
void *ctx_converge_thread(void *arg)
{
	struct vf_ctx *ctx = arg;
	int64_t startup_due = vf_now_ms() + VOL_CONV_MAX_MS;
	int64_t sweep_due = vf_now_ms() + vol_sweep_ms;

	pthread_mutex_lock(&ctx->mu);
	while (!ctx->stopping) {
		int64_t now = vf_now_ms(), due = sweep_due;
		unsigned long seq = 0;
		int sweep = 1;

		if (ctx->conv_startup && startup_due < due) {
			due = startup_due;
			sweep = 0;
		}
		for (struct vol_pending *p = ctx->pending; p; p = p->next)
			if (p->due < due) {
				due = p->due;
				seq = p->seq;
			}
		if (due > now) {
			vf_cond_wait_until(&ctx->conv_cv, &ctx->mu, due);
			continue;
		}
		pthread_mutex_unlock(&ctx->mu);
		if (seq == 0 && sweep) {
			vol_sweep_mounts(ctx, 1);
			sweep_due = vf_now_ms() + vol_sweep_ms;
		} else if (seq == 0) {
			int again = vol_converge_once(ctx) != VF_OK;

			pthread_mutex_lock(&ctx->mu);
			ctx->conv_startup = again;
			startup_due = vf_now_ms() + VOL_CONV_MAX_MS;
			pthread_mutex_unlock(&ctx->mu);
		} else {
			vol_pend_try(ctx, seq);
		}
		pthread_mutex_lock(&ctx->mu);
	}
	pthread_mutex_unlock(&ctx->mu);
	return NULL;
}
