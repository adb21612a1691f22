/* Lock elision for warm mounts and unmounts: what this host's own last mount
 * or unmount of a volume saw (volume.c uses it). */
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

/* ---- lock elision for warm mounts and unmounts ----
 *
 * A host remembers, per volume, the versions its own last mount or unmount of it
 * read and wrote: state (Mounted), gref, its client key (and its one mount id),
 * info and server/. With them a warm mount (this host not yet a client) or a warm
 * unmount (its last id, other hosts still counted) is ONE txn: the writes the
 * locked path would make, guarded by VF_CMP_LOCK_FREE on the gref lock and by
 * the version of every key the locked path would have read and decided on. It
 * commits exactly when lock + read + txn + unlock would have seen those same
 * keys with no holder in between, so it is that path done in one atomic step;
 * any difference fails it, and the operation goes the locked way (one request
 * more). The memo is a guess, never trusted: every fact in it is compared.
 * After a failed guess the memo is used again only once a locked operation has
 * seen gref unchanged since this host's own last write (a volume busy with
 * other hosts stays on the locked path, 2 requests, instead of 3). */

void vol_memo_free(struct vf_ctx *ctx)
{
	if (ctx->memo)
		for (size_t i = 0; i < VOL_MEMO_N; i++)
			free(ctx->memo[i].info);
	free(ctx->memo);
	ctx->memo = NULL;
}

/* The slot of vol (under mu); create: the least recently used one if absent. */
static struct vol_memo *vol_memo_slot(struct vf_ctx *ctx, const char *vol, int create)
{
	struct vol_memo *lru = NULL;

	if (ctx->memo == NULL &&
	    (!create || (ctx->memo = calloc(VOL_MEMO_N, sizeof(*ctx->memo))) == NULL))
		return NULL;
	for (size_t i = 0; i < VOL_MEMO_N; i++) {
		struct vol_memo *m = &ctx->memo[i];

		if (m->vol[0] && strcmp(m->vol, vol) == 0)
			return m;
		if (lru == NULL || m->used < lru->used)
			lru = m;
	}
	if (!create)
		return NULL;
	free(lru->info);
	memset(lru, 0, sizeof(*lru));
	snprintf(lru->vol, sizeof(lru->vol), "%s", vol);
	return lru;
}

/* A copy of vol's memo if it may be used now (*m_r->info is the caller's). */
int vol_memo_get(struct vf_ctx *ctx, const char *vol, struct vol_memo *m_r)
{
	struct vol_memo *m;
	int ok = 0;

	pthread_mutex_lock(&ctx->mu);
	m = vol_memo_slot(ctx, vol, 0);
	if (m && m->valid && !m->missed && m->info) {
		*m_r = *m;
		m_r->info = strdup(m->info);
		ok = m_r->info != NULL;
		m->used = ++ctx->memo_tick;
	}
	pthread_mutex_unlock(&ctx->mu);
	return ok;
}

/* Forget vol's view; missed: it was a failed guess. */
void vol_memo_drop(struct vf_ctx *ctx, const char *vol, int missed)
{
	struct vol_memo *m;

	pthread_mutex_lock(&ctx->mu);
	if ((m = vol_memo_slot(ctx, vol, 0)) != NULL) {
		m->valid = 0;
		m->missed |= missed;
	}
	pthread_mutex_unlock(&ctx->mu);
}

/* Remember nm (its info is copied; NULL keeps the one remembered, if any).
 * seen_gref_rev: the gref version a locked operation read (-1: nm comes from
 * an elided one); equal to the one remembered, no other host wrote gref
 * since this host did, and a failed guess is forgiven. */
void vol_memo_put(struct vf_ctx *ctx, const struct vol_memo *nm, int64_t seen_gref_rev)
{
	struct vol_memo *m;
	char *info;

	pthread_mutex_lock(&ctx->mu);
	m = vol_memo_slot(ctx, nm->vol, 1);
	if (m) {
		int missed = m->missed && seen_gref_rev >= 0 && seen_gref_rev != m->gref_rev;

		info = nm->info ? strdup(nm->info) : m->info;
		if (nm->info)
			free(m->info);
		*m = *nm;
		m->info = info;
		m->missed = missed;
		m->valid = info != NULL && nm->valid;
		m->used = ++ctx->memo_tick;
	}
	pthread_mutex_unlock(&ctx->mu);
}

/* A locked unmount left gref at g (> 0) at version gref_rev, this host no
 * longer a client: keep the rest of the view (state, info, server, as this
 * host last saw them; compared anyway). */
void vol_memo_unmounted(struct vf_ctx *ctx, const char *vol, int64_t g, int64_t gref_rev,
                        int64_t seen_gref_rev)
{
	struct vol_memo *m;

	pthread_mutex_lock(&ctx->mu);
	if ((m = vol_memo_slot(ctx, vol, 0)) != NULL) {
		if (m->missed && seen_gref_rev == m->gref_rev)
			m->missed = 0;
		m->gref = g;
		m->gref_rev = gref_rev;
		m->client_rev = 0;
		m->id[0] = '\0';
		m->valid = m->info != NULL && m->state_rev != 0;
		m->used = ++ctx->memo_tick;
	}
	pthread_mutex_unlock(&ctx->mu);
}
