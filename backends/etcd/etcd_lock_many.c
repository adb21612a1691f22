/*
 * lock_many: n lease-locks taken in one txn, or none (kv.h), on the waiter keys
 * of etcd_lock.c.
 *
 * Per name "no key under N/" (a VERSION == 0 compare over the prefix range), plus
 * the caller's compares; on success every waiter key is put in that txn, so all
 * share its revision as create_revision and fence, and each is then an ordinary
 * lock (unlock, VF_OP_UNLOCK, waiters queue behind it). On failure the same
 * request reads the first key under each N/: one there is VF_EBUSY, none is
 * VF_ECONFLICT.
 */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "etcd_int.h"

/* Free the n strings of v and v. */
static void lock_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* What lock_many() prepares per name before its request. */
struct lock_many_keys {
	size_t n;
	char **waiters;         /* "N/.lock/<lease>" */
	char **prefixes;        /* "N/.lock/" */
	struct etcd_lock **lks; /* the handles to hand out */
	size_t claimed;         /* waiters[0..claimed) are claimed (etcd_lock_claim) */
};

/* lock_many()'s arguments: a lease, n distinct names and the compares, all in
 * one txn. what (size bytes) is filled with the call's name for messages. */
static int lock_many_args_check(const struct vf_kv *kv, const struct vf_kv_lease *lease,
                                const char *const *names, size_t n, const struct vf_kv_cmp *cmps,
                                size_t ncmp, struct vf_kv_lock *const *locks_r, char *what,
                                size_t size, struct vf_err *err)
{
	int rc;

	if (lease == NULL || names == NULL || n == 0 || locks_r == NULL || (ncmp && cmps == NULL))
		return vf_err_set(err, VF_EINVAL, "lock_many: needs a lease and at least one name");
	for (size_t i = 0; i < n; i++)
		if ((rc = vf_kv_key_check(names[i], VF_KEY_LOCK, "lock_many", err)) != VF_OK)
			return rc;
	if ((rc = vf_kv_txn_keys_check(cmps, ncmp, NULL, 0, err)) != VF_OK)
		return rc;
	snprintf(what, size, "lock_many %s%s", names[0] ? names[0] : "(null)",
	         n > 1 ? " and others" : "");
	if (n + ncmp > kv->max_txn_ops)
		return vf_err_set(err, VF_ELIMIT,
		                  "%s: %zu names + %zu compares exceed etcd's txn limit of %u",
		                  what, n, ncmp, kv->max_txn_ops);
	for (size_t i = 0; i < n; i++) {
		if (names[i] == NULL || *names[i] == '\0')
			return vf_err_set(err, VF_EINVAL, "%s: name %zu is empty", what, i);
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[i], names[j]) == 0)
				return vf_err_set(err, VF_EINVAL, "%s: %s is named twice", what,
				                  names[i]);
	}
	return VF_OK;
}

/* Each name's waiter key, lock prefix and handle: everything that can run out of
 * memory, allocated before the request. */
static int lock_many_alloc(struct lock_many_keys *k, const char *const *names, const char *lease_id,
                           struct vf_err *err)
{
	k->waiters = calloc(k->n, sizeof(*k->waiters));
	k->prefixes = calloc(k->n, sizeof(*k->prefixes));
	k->lks = calloc(k->n, sizeof(*k->lks));
	if (k->waiters == NULL || k->prefixes == NULL || k->lks == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	for (size_t i = 0; i < k->n; i++) {
		struct vf_buf w = {0}, p = {0};

		if (vf_buf_printf(&w, "%s" ETCD_LOCK_SEG "%s", names[i], lease_id) != VF_OK ||
		    vf_buf_printf(&p, "%s" ETCD_LOCK_SEG, names[i]) != VF_OK ||
		    (k->lks[i] = calloc(1, sizeof(*k->lks[i]))) == NULL) {
			vf_buf_free(&w);
			vf_buf_free(&p);
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		}
		k->waiters[i] = w.data;
		k->prefixes[i] = p.data;
	}
	return VF_OK;
}

/* Claim every waiter key (locks are not re-entrant): VF_EBUSY if this handle
 * holds or awaits one already. */
static int lock_many_claim(struct etcd_kv *ek, struct lock_many_keys *k, const char *const *names,
                           const char *lease_id, const char *what, struct vf_err *err)
{
	for (; k->claimed < k->n; k->claimed++) {
		int rc = etcd_lock_claim(ek, k->waiters[k->claimed]);

		if (rc != VF_OK)
			return vf_err_set(err, rc,
			                  "%s: %s already held or awaited through lease %s (locks "
			                  "are not re-entrant)",
			                  what, names[k->claimed], lease_id);
	}
	return VF_OK;
}

/* The txn failed; its answer holds the first key under each lock prefix. One
 * there: that name is held or awaited (VF_EBUSY). None: a compare failed
 * (VF_ECONFLICT). */
static int lock_many_refused(yajl_val tree, const char *const *names, size_t n, const char *what,
                             struct vf_err *err)
{
	yajl_val a = vf_json_get(tree, "responses", NULL);

	if (a == NULL || !YAJL_IS_ARRAY(a) || a->u.array.len != n)
		return vf_err_set(err, VF_EPROTO, "%s: etcd did not return the lock owners", what);
	for (size_t i = 0; i < n; i++) {
		struct vf_kv_pair holder;
		int rc;

		if (etcd_parse_first(etcd_txn_resp(tree, i, "response_range"), &holder, NULL) !=
		    VF_OK)
			continue;
		rc = vf_err_set(err, VF_EBUSY, "%s: %s is held or awaited (%s)", what, names[i],
		                holder.key);
		vf_kv_pair_clear(&holder);
		return rc;
	}
	return vf_err_set(err, VF_ECONFLICT, "%s: a compare failed, no lock was taken", what);
}

/* Unclaim what is still claimed and free what was not handed out. */
static void lock_many_keys_free(struct etcd_kv *ek, struct lock_many_keys *k)
{
	for (size_t i = 0; i < k->claimed; i++)
		etcd_lock_unclaim(ek, k->waiters[i]);
	for (size_t i = 0; k->lks && i < k->n; i++)
		free(k->lks[i]);
	free(k->lks);
	lock_strv_free(k->waiters, k->n);
	lock_strv_free(k->prefixes, k->n);
}

int etcd_lock_many(struct vf_kv *kv, struct vf_kv_lease *lease, const char *const *names, size_t n,
                   const struct vf_kv_cmp *cmps, size_t ncmp, struct vf_kv_lock **locks_r,
                   struct vf_err *err)
{
	struct etcd_kv *ek = (struct etcd_kv *)kv;
	struct lock_many_keys k = {.n = n};
	char what[300], *body = NULL;
	size_t len;
	yajl_val tree = NULL;
	int64_t rev;
	int rc;

	if (locks_r && n)
		memset(locks_r, 0, n * sizeof(*locks_r));
	rc = lock_many_args_check(kv, lease, names, n, cmps, ncmp, locks_r, what, sizeof(what),
	                          err);
	if (rc != VF_OK)
		return rc;
	rc = lock_many_alloc(&k, names, lease->id, err);
	if (rc == VF_OK)
		rc = lock_many_claim(ek, &k, names, lease->id, what, err);
	if (rc != VF_OK)
		goto out;

	/* One round trip: every lock prefix empty and every compare true, then enqueue
	 * (and so own) all; else read the first key under each prefix to say why. */
	rc = etcd_build_lock_many((const char *const *)k.waiters, (const char *const *)k.prefixes,
	                          n, etcd_lease_id(lease), cmps, ncmp, kv->max_txn_ops, &body, &len,
	                          err);
	if (rc == VF_OK)
		rc = etcd_rpc(ek, "/v3/kv/txn", body, len, 0, 0, &tree, what, err);
	if (rc != VF_OK)
		goto out;
	if (!etcd_txn_succeeded(tree)) {
		rc = lock_many_refused(tree, names, n, what, err);
		goto out;
	}
	/* Every waiter key was created by this txn: its revision is each lock's fence. */
	rev = etcd_header_revision(tree);
	if (rev <= 0) {
		rc = vf_err_set(err, VF_EPROTO, "%s: etcd sent no revision for the locks", what);
		goto out; /* the keys stay under the lease, as after a lost answer */
	}
	for (size_t i = 0; i < n; i++) {
		k.lks[i]->base.key = k.waiters[i];
		k.lks[i]->base.fence = rev;
		k.waiters[i] = NULL;
		locks_r[i] = &k.lks[i]->base;
		k.lks[i] = NULL;
	}
	k.claimed = 0; /* until unlock() */
out:
	lock_many_keys_free(ek, &k);
	yajl_tree_free(tree);
	free(body);
	return rc;
}
