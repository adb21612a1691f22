/* memkv: the in-process store behind the volume-manager unit tests (see memkv.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

#include "common_int.h"
#include "memkv.h"

#define MK_MAX_TXN_OPS 64 /* as strict as Consul 1.8 */
#define MK_TICK_MS 20

struct mk_ent {
	char *key;
	char *val;
	size_t len;
	int64_t mod, create, lease;
};

struct mk_ev {
	int type;
	char *key;
	char *val;
	size_t len;
	int64_t mod, create, rev;
};

struct mk_lease {
	struct vf_kv_lease base;
	int64_t id;
};

struct mk_lease_rec {
	int64_t id;
	int ttl;
	int64_t expires;
	int auto_ka, frozen;
	vf_kv_lease_lost_fn lost;
	void *arg;
	struct mk_lease *handle;
	struct mk_lease_rec *next;
};

struct mk_waiter {
	pthread_cond_t cv;
	int64_t lease;
	int state; /* 0 waiting, 1 granted, -1 lease gone */
	struct mk_waiter *next;
};

struct mk_lockrec {
	char *name;
	int64_t holder; /* lease id, 0: free */
	int owned;      /* the holder has a handle for it (else: adopted on its retry) */
	int64_t fence;
	struct mk_waiter *head, *tail;
	struct mk_lockrec *next;
};

struct mk_lock {
	struct vf_kv_lock base; /* base.key: "<name>/.lock", as kv.h says a lock's key is */
	char *name;
	int64_t lease;
	struct memkv_store *st;
};

static struct mk_lock *mk_lock_new(struct memkv_store *st, const char *name, int64_t lease)
{
	struct mk_lock *l = calloc(1, sizeof(*l));

	if (l == NULL || (l->name = strdup(name)) == NULL ||
	    asprintf(&l->base.key, "%s/.lock", name) < 0) {
		if (l)
			free(l->name);
		free(l);
		return NULL;
	}
	l->lease = lease;
	l->st = st;
	return l;
}

static void mk_lock_free(struct mk_lock *l)
{
	if (l) {
		free(l->base.key);
		free(l->name);
		free(l);
	}
}

struct memkv_store {
	pthread_mutex_t mu;
	pthread_cond_t changed;
	pthread_mutex_t cb_mu; /* serialises lost callbacks against revoke */
	struct mk_ent *ents;
	size_t nents, capents;
	struct mk_ev *hist;
	size_t nhist, caphist;
	int64_t rev, compact_rev, next_lease;
	struct mk_lease_rec *leases;
	struct mk_lockrec *locks;
	pthread_t ticker;
	int stop;
};

struct mk_kv {
	struct vf_kv base;
	struct memkv_store *st;
	int own_store;
};

struct vf_kv_watch {
	struct memkv_store *st;
	char *prefix;
	int64_t pos;
	vf_kv_watch_fn fn;
	void *arg;
	pthread_t thr;
	int stop, done;
};

static struct memkv_store *mk_st(struct vf_kv *kv)
{
	return ((struct mk_kv *)kv)->st;
}

/* ---- keys (caller holds mu) ---- */
static size_t mk_find(struct memkv_store *st, const char *key, int *found)
{
	size_t lo = 0, hi = st->nents;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(st->ents[mid].key, key);

		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static struct mk_ent *mk_lookup(struct memkv_store *st, const char *key)
{
	int found;
	size_t i = mk_find(st, key, &found);

	return found ? &st->ents[i] : NULL;
}

static char *mk_dup(const char *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d == NULL)
		return NULL;
	if (n)
		memcpy(d, p, n);
	d[n] = '\0';
	return d;
}

static int mk_hist_add(struct memkv_store *st, int type, const struct mk_ent *e, int64_t rev)
{
	if (st->nhist == st->caphist) {
		size_t cap = st->caphist ? st->caphist * 2 : 256;
		struct mk_ev *h = realloc(st->hist, cap * sizeof(*h));

		if (h == NULL)
			return VF_ENOMEM;
		st->hist = h;
		st->caphist = cap;
	}
	struct mk_ev *ev = &st->hist[st->nhist];

	ev->type = type;
	ev->key = strdup(e->key);
	ev->val = type == VF_EV_PUT ? mk_dup(e->val, e->len) : mk_dup("", 0);
	ev->len = type == VF_EV_PUT ? e->len : 0;
	ev->mod = rev;
	ev->create = e->create;
	ev->rev = rev;
	if (ev->key == NULL || ev->val == NULL) {
		free(ev->key);
		free(ev->val);
		return VF_ENOMEM;
	}
	st->nhist++;
	return VF_OK;
}

static int mk_put_locked(struct memkv_store *st, const char *key, const char *val, size_t len,
                         int64_t lease, int64_t rev)
{
	int found;
	size_t i = mk_find(st, key, &found);
	char *v = mk_dup(val, len);

	if (v == NULL)
		return VF_ENOMEM;
	if (!found) {
		if (st->nents == st->capents) {
			size_t cap = st->capents ? st->capents * 2 : 64;
			struct mk_ent *e = realloc(st->ents, cap * sizeof(*e));

			if (e == NULL) {
				free(v);
				return VF_ENOMEM;
			}
			st->ents = e;
			st->capents = cap;
		}
		memmove(&st->ents[i + 1], &st->ents[i], (st->nents - i) * sizeof(st->ents[0]));
		st->ents[i].key = strdup(key);
		st->ents[i].val = NULL;
		st->ents[i].create = rev;
		st->nents++;
	}
	free(st->ents[i].val);
	st->ents[i].val = v;
	st->ents[i].len = len;
	st->ents[i].mod = rev;
	st->ents[i].lease = lease;
	return mk_hist_add(st, VF_EV_PUT, &st->ents[i], rev);
}

static int mk_del_locked(struct memkv_store *st, const char *key, int64_t rev)
{
	int found;
	size_t i = mk_find(st, key, &found);
	int rc;

	if (!found)
		return VF_ENOTFOUND;
	rc = mk_hist_add(st, VF_EV_DELETE, &st->ents[i], rev);
	free(st->ents[i].key);
	free(st->ents[i].val);
	memmove(&st->ents[i], &st->ents[i + 1], (st->nents - i - 1) * sizeof(st->ents[0]));
	st->nents--;
	return rc;
}

static int mk_pair(const struct mk_ent *e, struct vf_kv_pair *p)
{
	p->key = strdup(e->key);
	p->value = mk_dup(e->val, e->len);
	p->value_len = e->len;
	p->mod_rev = e->mod;
	p->create_rev = e->create;
	if (p->key == NULL || p->value == NULL) {
		vf_kv_pair_clear(p);
		return VF_ENOMEM;
	}
	return VF_OK;
}

static struct mk_lease_rec *mk_lease_find(struct memkv_store *st, int64_t id)
{
	for (struct mk_lease_rec *l = st->leases; l; l = l->next)
		if (l->id == id)
			return l;
	return NULL;
}

static struct mk_lockrec *mk_lockrec(struct memkv_store *st, const char *name, int create)
{
	struct mk_lockrec *r;

	for (r = st->locks; r; r = r->next)
		if (strcmp(r->name, name) == 0)
			return r;
	if (!create)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL || (r->name = strdup(name)) == NULL) {
		free(r);
		return NULL;
	}
	r->next = st->locks;
	st->locks = r;
	return r;
}

/* Hand a free lock to the first waiter whose lease is alive. */
static void mk_lock_pass(struct memkv_store *st, struct mk_lockrec *r)
{
	r->holder = 0;
	r->owned = 0;
	while (r->head) {
		struct mk_waiter *w = r->head;

		r->head = w->next;
		if (r->head == NULL)
			r->tail = NULL;
		w->next = NULL;
		if (mk_lease_find(st, w->lease) == NULL) {
			w->state = -1;
			pthread_cond_signal(&w->cv);
			continue;
		}
		r->holder = w->lease;
		r->owned = 1;
		r->fence++;
		w->state = 1;
		pthread_cond_signal(&w->cv);
		return;
	}
}

/* Remove a lease record: its keys vanish in one revision, its locks pass on. */
static struct mk_lease_rec *mk_lease_end(struct memkv_store *st, int64_t id)
{
	struct mk_lease_rec **pp, *rec = NULL;
	int64_t rev = st->rev + 1;
	int wrote = 0;

	for (pp = &st->leases; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			rec = *pp;
			*pp = rec->next;
			break;
		}
	if (rec == NULL)
		return NULL;
	for (size_t i = 0; i < st->nents;) {
		if (st->ents[i].lease == id) {
			char *k = strdup(st->ents[i].key);

			if (k)
				mk_del_locked(st, k, rev);
			free(k);
			wrote = 1;
			continue;
		}
		i++;
	}
	if (wrote)
		st->rev = rev;
	for (struct mk_lockrec *r = st->locks; r; r = r->next)
		if (r->holder == id)
			mk_lock_pass(st, r);
	pthread_cond_broadcast(&st->changed);
	return rec;
}

static void mk_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void *mk_ticker(void *arg)
{
	struct memkv_store *st = arg;

	for (;;) {
		struct mk_lease_rec *dead = NULL, *rec;
		int64_t now = vf_now_ms();

		pthread_mutex_lock(&st->mu);
		if (st->stop) {
			pthread_mutex_unlock(&st->mu);
			break;
		}
		for (struct mk_lease_rec *l = st->leases; l;) {
			struct mk_lease_rec *next = l->next;

			if (l->auto_ka && !l->frozen)
				l->expires = now + l->ttl * 1000LL;
			if (l->expires <= now) {
				rec = mk_lease_end(st, l->id);
				if (rec) {
					rec->next = dead;
					dead = rec;
				}
			}
			l = next;
		}
		pthread_mutex_unlock(&st->mu);
		while (dead) {
			rec = dead;
			dead = rec->next;
			pthread_mutex_lock(&st->cb_mu);
			if (rec->lost && rec->handle)
				rec->lost(&rec->handle->base, rec->arg);
			pthread_mutex_unlock(&st->cb_mu);
			free(rec);
		}
		mk_sleep_ms(MK_TICK_MS);
	}
	return NULL;
}

int memkv_store_new(struct memkv_store **st_r)
{
	struct memkv_store *st = calloc(1, sizeof(*st));
	pthread_mutexattr_t a;

	if (st == NULL)
		return VF_ENOMEM;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->changed, NULL);
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&st->cb_mu, &a);
	pthread_mutexattr_destroy(&a);
	st->rev = 1;
	st->next_lease = 0x1000;
	if (pthread_create(&st->ticker, NULL, mk_ticker, st) != 0) {
		free(st);
		return VF_ENOMEM;
	}
	*st_r = st;
	return VF_OK;
}

void memkv_store_free(struct memkv_store **stp)
{
	struct memkv_store *st = *stp;

	if (st == NULL)
		return;
	pthread_mutex_lock(&st->mu);
	st->stop = 1;
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->ticker, NULL);
	for (size_t i = 0; i < st->nents; i++) {
		free(st->ents[i].key);
		free(st->ents[i].val);
	}
	free(st->ents);
	for (size_t i = 0; i < st->nhist; i++) {
		free(st->hist[i].key);
		free(st->hist[i].val);
	}
	free(st->hist);
	while (st->leases) {
		struct mk_lease_rec *l = st->leases;

		st->leases = l->next;
		free(l);
	}
	while (st->locks) {
		struct mk_lockrec *r = st->locks;

		st->locks = r->next;
		free(r->name);
		free(r);
	}
	pthread_mutex_destroy(&st->mu);
	pthread_mutex_destroy(&st->cb_mu);
	pthread_cond_destroy(&st->changed);
	free(st);
	*stp = NULL;
}

/* ---- slots ---- */
static int mk_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	struct mk_ent *e;
	int rc;

	memset(pair_r, 0, sizeof(*pair_r));
	if ((rc = vf_kv_key_check(key, VF_KEY, "memkv: get", err)) != VF_OK)
		return rc;
	pthread_mutex_lock(&st->mu);
	e = mk_lookup(st, key);
	rc = e ? mk_pair(e, pair_r) : vf_err_set(err, VF_ENOTFOUND, "memkv: %s: not found", key);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static int mk_list(struct vf_kv *kv, const char *prefix, struct vf_kv_list *list_r,
                   struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	size_t plen, n = 0;
	int found, rc = VF_OK;

	memset(list_r, 0, sizeof(*list_r));
	if ((rc = vf_kv_key_check(prefix, VF_KEY_PREFIX, "memkv: list", err)) != VF_OK)
		return rc;
	plen = strlen(prefix);

	memset(list_r, 0, sizeof(*list_r));
	pthread_mutex_lock(&st->mu);
	size_t start = mk_find(st, prefix, &found), end = start;

	while (end < st->nents && strncmp(st->ents[end].key, prefix, plen) == 0)
		end++;
	list_r->revision = st->rev;
	if (end > start) {
		list_r->items = calloc(end - start, sizeof(list_r->items[0]));
		if (list_r->items == NULL)
			rc = VF_ENOMEM;
		for (size_t i = start; rc == VF_OK && i < end; i++) {
			rc = mk_pair(&st->ents[i], &list_r->items[n]);
			if (rc == VF_OK)
				n++;
		}
	}
	list_r->count = n;
	pthread_mutex_unlock(&st->mu);
	if (rc != VF_OK) {
		vf_kv_list_clear(list_r);
		return vf_err_set(err, rc, "memkv: list %s: out of memory", prefix);
	}
	return VF_OK;
}

static int mk_lease_ok(struct memkv_store *st, struct vf_kv_lease *lease, struct vf_err *err)
{
	if (lease && mk_lease_find(st, ((struct mk_lease *)lease)->id) == NULL)
		return vf_err_set(err, VF_ELEASE, "memkv: lease %s not found", lease->id);
	return VF_OK;
}

static int mk_cas(struct vf_kv *kv, const char *key, const char *value, size_t len, int64_t expect,
                  struct vf_kv_lease *lease, int64_t *mod_rev_r, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	struct mk_ent *e;
	int rc;

	if ((rc = vf_kv_key_check(key, VF_KEY, "memkv: put", err)) != VF_OK)
		return rc;

	pthread_mutex_lock(&st->mu);
	rc = mk_lease_ok(st, lease, err);
	e = mk_lookup(st, key);
	if (rc == VF_OK && expect >= 0 && (e ? e->mod : 0) != expect)
		rc = vf_err_set(err, VF_ECONFLICT,
		                "memkv: %s: version is %" PRId64 ", not %" PRId64, key,
		                e ? e->mod : 0, expect);
	if (rc == VF_OK) {
		rc = mk_put_locked(st, key, value, len, lease ? ((struct mk_lease *)lease)->id : 0,
		                   st->rev + 1);
		if (rc == VF_OK) {
			st->rev++;
			if (mod_rev_r)
				*mod_rev_r = st->rev;
			pthread_cond_broadcast(&st->changed);
		}
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static int mk_put(struct vf_kv *kv, const char *key, const char *value, size_t len,
                  struct vf_kv_lease *lease, int64_t *mod_rev_r, struct vf_err *err)
{
	return mk_cas(kv, key, value, len, -1, lease, mod_rev_r, err);
}

static int mk_cas_del(struct vf_kv *kv, const char *key, int64_t expect, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	struct mk_ent *e;
	int rc = VF_OK;

	if ((rc = vf_kv_key_check(key, VF_KEY, "memkv: delete", err)) != VF_OK)
		return rc;

	pthread_mutex_lock(&st->mu);
	e = mk_lookup(st, key);
	if (e == NULL) /* kv.h: expected version 0 holds for an absent key */
		rc = vf_err_set(err, expect > 0 ? VF_ECONFLICT : VF_ENOTFOUND,
		                "memkv: %s: not found", key);
	else if (expect >= 0 && e->mod != expect)
		rc = vf_err_set(err, VF_ECONFLICT, "memkv: %s: version is %" PRId64, key, e->mod);
	if (rc == VF_OK) {
		rc = mk_del_locked(st, key, st->rev + 1);
		st->rev++;
		pthread_cond_broadcast(&st->changed);
	}
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static int mk_del(struct vf_kv *kv, const char *key, struct vf_err *err)
{
	return mk_cas_del(kv, key, -1, err);
}

static int mk_lock_held(struct memkv_store *st, const struct vf_kv_lock *lk)
{
	const struct mk_lock *l = (const struct mk_lock *)lk;
	struct mk_lockrec *r;

	if (l == NULL || (r = mk_lockrec(st, l->name, 0)) == NULL)
		return 0;
	return r->holder == l->lease && r->fence == l->base.fence &&
	       mk_lease_find(st, l->lease) != NULL;
}

static int mk_cmp_ok(struct memkv_store *st, const struct vf_kv_cmp *c)
{
	struct mk_ent *e = c->kind >= VF_CMP_LOCK_HELD ? NULL : mk_lookup(st, c->key);
	struct mk_lockrec *r;

	switch (c->kind) {
	case VF_CMP_VALUE_EQ:
		return e && e->len == c->value_len && memcmp(e->val, c->value, c->value_len) == 0;
	case VF_CMP_VERSION_EQ:
		return (e ? e->mod : 0) == c->mod_rev;
	case VF_CMP_ABSENT:
		return e == NULL;
	case VF_CMP_LOCK_HELD:
		return mk_lock_held(st, c->lock);
	case VF_CMP_LOCK_FREE:
		r = mk_lockrec(st, c->key, 0);
		return r == NULL || (r->holder == 0 && r->head == NULL);
	}
	return 0;
}

static void mk_unlock_locked(struct memkv_store *st, struct mk_lock *l)
{
	struct mk_lockrec *r = mk_lockrec(st, l->name, 0);

	if (r && r->holder == l->lease && r->fence == l->base.fence)
		mk_lock_pass(st, r);
}

static int mk_txn(struct vf_kv *kv, const struct vf_kv_cmp *cmps, size_t ncmp,
                  const struct vf_kv_op *ops, size_t nops, struct vf_kv_txn_result *res_r,
                  struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	struct vf_kv_result *res = NULL;
	int64_t rev;
	int rc = VF_OK, wrote = 0;

	if (res_r)
		memset(res_r, 0, sizeof(*res_r));
	if (ncmp + nops > MK_MAX_TXN_OPS)
		return vf_err_set(err, VF_ELIMIT, "memkv: txn of %zu operations (limit %d)",
		                  ncmp + nops, MK_MAX_TXN_OPS);
	if ((rc = vf_kv_txn_keys_check(cmps, ncmp, ops, nops, err)) != VF_OK)
		return rc;
	if (nops && (res = calloc(nops, sizeof(*res))) == NULL)
		return vf_err_set(err, VF_ENOMEM, "memkv: txn: out of memory");
	pthread_mutex_lock(&st->mu);
	rev = st->rev + 1;
	for (size_t i = 0; i < ncmp; i++)
		if (!mk_cmp_ok(st, &cmps[i])) {
			rc = vf_err_set(err, VF_ECONFLICT, "memkv: txn compare %zu on %s failed", i,
			                cmps[i].key ? cmps[i].key : "(lock)");
			goto out;
		}
	for (size_t i = 0; i < nops; i++)
		if (ops[i].kind == VF_OP_PUT && (rc = mk_lease_ok(st, ops[i].lease, err)) != VF_OK)
			goto out;
	for (size_t i = 0; i < nops && rc == VF_OK; i++) {
		const struct vf_kv_op *o = &ops[i];
		struct mk_ent *e;

		switch (o->kind) {
		case VF_OP_PUT:
			rc = mk_put_locked(st, o->key, o->value, o->value_len,
			                   o->lease ? ((struct mk_lease *)o->lease)->id : 0, rev);
			res[i].found = 1;
			res[i].pair.mod_rev = rev;
			wrote = 1;
			break;
		case VF_OP_DELETE:
			res[i].found = mk_del_locked(st, o->key, rev) == VF_OK;
			wrote |= res[i].found;
			break;
		case VF_OP_GET:
			e = mk_lookup(st, o->key);
			if (e) {
				res[i].found = 1;
				rc = mk_pair(e, &res[i].pair);
			}
			break;
		case VF_OP_UNLOCK:
			if (o->lock)
				mk_unlock_locked(st, (struct mk_lock *)o->lock);
			break;
		}
	}
	if (wrote) {
		st->rev = rev;
		pthread_cond_broadcast(&st->changed);
	}
out:
	if (rc == VF_OK && res_r) {
		res_r->results = res;
		res_r->count = nops;
		res_r->revision = st->rev;
		res = NULL;
	}
	pthread_mutex_unlock(&st->mu);
	if (res) {
		vf_kv_results_clear(res, nops);
		free(res);
	}
	return rc;
}

static int mk_lease_grant(struct vf_kv *kv, int ttl_s, unsigned int flags, vf_kv_lease_lost_fn lost,
                          void *arg, struct vf_kv_lease **lease_r, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	struct mk_lease *l;
	struct mk_lease_rec *rec;

	if (ttl_s < kv->min_lease_ttl_s)
		return vf_err_set(err, VF_EINVAL, "memkv: lease TTL %d below %d", ttl_s,
		                  kv->min_lease_ttl_s);
	l = calloc(1, sizeof(*l));
	rec = calloc(1, sizeof(*rec));
	if (l == NULL || rec == NULL) {
		free(l);
		free(rec);
		return vf_err_set(err, VF_ENOMEM, "memkv: lease: out of memory");
	}
	pthread_mutex_lock(&st->mu);
	l->id = rec->id = st->next_lease++;
	pthread_mutex_unlock(&st->mu);
	snprintf(l->base.id, sizeof(l->base.id), "%" PRIx64, (uint64_t)l->id);
	l->base.ttl_s = ttl_s;
	rec->ttl = ttl_s;
	rec->expires = vf_now_ms() + ttl_s * 1000LL;
	rec->auto_ka = !(flags & VF_LEASE_MANUAL);
	rec->lost = lost;
	rec->arg = arg;
	rec->handle = l;
	pthread_mutex_lock(&st->mu);
	rec->next = st->leases;
	st->leases = rec;
	pthread_mutex_unlock(&st->mu);
	*lease_r = &l->base;
	return VF_OK;
}

static int mk_lease_keepalive(struct vf_kv *kv, struct vf_kv_lease *lease, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	struct mk_lease_rec *rec;
	int rc = VF_OK;

	pthread_mutex_lock(&st->mu);
	rec = mk_lease_find(st, ((struct mk_lease *)lease)->id);
	if (rec)
		rec->expires = vf_now_ms() + rec->ttl * 1000LL;
	else
		rc = vf_err_set(err, VF_ELEASE, "memkv: lease %s is gone", lease->id);
	pthread_mutex_unlock(&st->mu);
	return rc;
}

static int mk_lease_revoke(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	struct mk_lease *l = (struct mk_lease *)*lease;
	struct mk_lease_rec *rec;

	if (l == NULL)
		return VF_OK;
	pthread_mutex_lock(&st->cb_mu);
	pthread_mutex_lock(&st->mu);
	rec = mk_lease_end(st, l->id);
	pthread_mutex_unlock(&st->mu);
	pthread_mutex_unlock(&st->cb_mu);
	free(rec);
	free(l);
	*lease = NULL;
	return rec ? VF_OK : vf_err_set(err, VF_ELEASE, "memkv: lease already gone");
}

static int mk_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
                   const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
                   struct vf_kv_lock **lock_r, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	int64_t id = ((struct mk_lease *)lease)->id;
	struct mk_lockrec *r;
	struct mk_lock *l;
	int rc = VF_OK;

	*lock_r = NULL;
	if ((rc = vf_kv_key_check(name, VF_KEY_LOCK, "memkv: lock", err)) != VF_OK)
		return rc;
	if ((l = mk_lock_new(st, name, id)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "memkv: lock %s: out of memory", name);
	pthread_mutex_lock(&st->mu);
	if (mk_lease_find(st, id) == NULL) {
		rc = vf_err_set(err, VF_ELEASE, "memkv: lock %s: lease %s is gone", name,
		                lease->id);
		goto out;
	}
	r = mk_lockrec(st, name, 1);
	if (r == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "memkv: lock %s: out of memory", name);
		goto out;
	}
	/* kv.h: a lease holds a name at most once; asking again while it holds (with a
	 * handle) or awaits it is VF_EBUSY at once. A hold whose handle was lost (the
	 * answer of an acquisition that was applied, memkv_lock_abandon) is adopted. */
	if (r->holder == id && r->owned) {
		rc = vf_err_set(err, VF_EBUSY, "memkv: lock %s is already held by lease %s", name,
		                lease->id);
		goto out;
	}
	for (struct mk_waiter *x = r->head; x; x = x->next)
		if (x->lease == id) {
			rc = vf_err_set(err, VF_EBUSY,
			                "memkv: lock %s is already awaited by lease %s", name,
			                lease->id);
			goto out;
		}
	if (r->holder == id) {
		r->owned = 1;
	} else if (r->holder == 0 && r->head == NULL) {
		r->holder = id;
		r->owned = 1;
		r->fence++;
	} else {
		struct mk_waiter w = {.lease = id};
		struct timespec ts;

		if (timeout_ms == 0) {
			rc = vf_err_set(err, VF_EBUSY, "memkv: lock %s is held", name);
			goto out;
		}
		pthread_cond_init(&w.cv, NULL);
		if (r->tail)
			r->tail->next = &w;
		else
			r->head = &w;
		r->tail = &w;
		if (timeout_ms > 0) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += timeout_ms / 1000;
			ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
		}
		while (w.state == 0) {
			int e = timeout_ms > 0 ? pthread_cond_timedwait(&w.cv, &st->mu, &ts)
			                       : pthread_cond_wait(&w.cv, &st->mu);
			if (e == ETIMEDOUT && w.state == 0) {
				struct mk_waiter **pp;

				for (pp = &r->head; *pp; pp = &(*pp)->next)
					if (*pp == &w) {
						*pp = w.next;
						break;
					}
				r->tail = NULL;
				for (struct mk_waiter *x = r->head; x; x = x->next)
					r->tail = x;
				rc = vf_err_set(err, VF_ETIMEDOUT,
				                "memkv: lock %s: not acquired within %d ms", name,
				                timeout_ms);
				break;
			}
		}
		pthread_cond_destroy(&w.cv);
		if (rc == VF_OK && w.state < 0)
			rc = vf_err_set(err, VF_ELEASE, "memkv: lock %s: lease %s is gone", name,
			                lease->id);
		if (rc != VF_OK)
			goto out;
	}
	l->base.fence = r->fence;
	for (size_t i = 0; i < nreads && rc == VF_OK; i++) {
		struct mk_ent *e = mk_lookup(st, reads[i]);

		memset(&reads_r[i], 0, sizeof(reads_r[i]));
		if (e) {
			reads_r[i].found = 1;
			rc = mk_pair(e, &reads_r[i].pair);
		}
	}
out:
	pthread_mutex_unlock(&st->mu);
	if (rc != VF_OK) {
		mk_lock_free(l);
		return rc;
	}
	*lock_r = &l->base;
	return VF_OK;
}

static int mk_unlock(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	struct mk_lock *l = (struct mk_lock *)*lock;

	if (l == NULL)
		return VF_OK;
	pthread_mutex_lock(&st->mu);
	mk_unlock_locked(st, l);
	pthread_mutex_unlock(&st->mu);
	mk_lock_free(l);
	*lock = NULL;
	return VF_OK;
}

static int mk_lock_many(struct vf_kv *kv, struct vf_kv_lease *lease, const char *const *names,
                        size_t n, const struct vf_kv_cmp *cmps, size_t ncmp,
                        struct vf_kv_lock **locks_r, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	int64_t id = ((struct mk_lease *)lease)->id;
	int rc = VF_OK;
	size_t i;

	for (i = 0; i < n; i++)
		locks_r[i] = NULL;
	if (n + ncmp > kv->max_txn_ops)
		return vf_err_set(err, VF_ELIMIT, "memkv: lock_many: %zu names + %zu compares", n,
		                  ncmp);
	for (i = 0; i < n; i++)
		if ((rc = vf_kv_key_check(names[i], VF_KEY_LOCK, "memkv: lock_many", err)) != VF_OK)
			return rc;
	if ((rc = vf_kv_txn_keys_check(cmps, ncmp, NULL, 0, err)) != VF_OK)
		return rc;
	for (i = 0; i < n; i++) {
		struct mk_lock *l = mk_lock_new(st, names[i], id);

		if (l == NULL) {
			rc = vf_err_set(err, VF_ENOMEM, "memkv: lock_many: out of memory");
			goto out;
		}
		locks_r[i] = &l->base;
	}
	pthread_mutex_lock(&st->mu);
	if (mk_lease_find(st, id) == NULL)
		rc = vf_err_set(err, VF_ELEASE, "memkv: lock_many: lease %s is gone", lease->id);
	for (i = 0; i < n && rc == VF_OK; i++) {
		struct mk_lockrec *r = mk_lockrec(st, names[i], 0);

		if (r && (r->holder != 0 || r->head != NULL))
			rc = vf_err_set(err, VF_EBUSY, "memkv: lock %s is held", names[i]);
	}
	for (i = 0; i < ncmp && rc == VF_OK; i++)
		if (!mk_cmp_ok(st, &cmps[i]))
			rc = vf_err_set(err, VF_ECONFLICT, "memkv: lock_many: compare %zu failed",
			                i);
	for (i = 0; i < n && rc == VF_OK; i++) {
		struct mk_lockrec *r = mk_lockrec(st, names[i], 1);

		if (r == NULL) { /* the ones taken stay to the lease, as after a lost answer */
			rc = vf_err_set(err, VF_EUNAVAIL, "memkv: lock_many: out of memory");
			break;
		}
		r->holder = id;
		r->owned = 1;
		locks_r[i]->fence = ++r->fence;
	}
	pthread_mutex_unlock(&st->mu);
out:
	if (rc != VF_OK)
		for (i = 0; i < n; i++)
			if (locks_r[i]) {
				mk_lock_free((struct mk_lock *)locks_r[i]);
				locks_r[i] = NULL;
			}
	return rc;
}

/* First history index with rev > pos. */
static size_t mk_hist_after(struct memkv_store *st, int64_t pos)
{
	size_t lo = 0, hi = st->nhist;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (st->hist[mid].rev <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void *mk_watch_thread(void *arg)
{
	struct vf_kv_watch *w = arg;
	struct memkv_store *st = w->st;
	size_t plen = strlen(w->prefix);

	pthread_mutex_lock(&st->mu);
	while (!w->stop) {
		struct vf_kv_event *evs = NULL;
		size_t n = 0;
		int stop = 0;

		/* history gone, or a start past the head (kv.h: a watch resumed after
		 * a revision the store has not reached begins with VF_EV_RESYNC) */
		if (w->pos < st->compact_rev || w->pos > st->rev) {
			struct vf_kv_event ev = {.type = VF_EV_RESYNC,
			                         .key = w->prefix,
			                         .value = "",
			                         .revision = st->rev};

			w->pos = st->rev;
			pthread_mutex_unlock(&st->mu);
			stop = w->fn(&ev, w->arg);
			pthread_mutex_lock(&st->mu);
			if (stop)
				break;
			continue;
		}
		if (w->pos >= st->rev) {
			pthread_cond_wait(&st->changed, &st->mu);
			continue;
		}
		size_t i0 = mk_hist_after(st, w->pos);

		evs = calloc(st->nhist - i0 + 1, sizeof(*evs));
		for (size_t i = i0; evs && i < st->nhist; i++) {
			struct mk_ev *h = &st->hist[i];

			if (strncmp(h->key, w->prefix, plen) != 0)
				continue;
			evs[n].type = h->type;
			evs[n].key = strdup(h->key);
			evs[n].value = mk_dup(h->val, h->len);
			evs[n].value_len = h->len;
			evs[n].mod_rev = h->mod;
			evs[n].create_rev = h->create;
			evs[n].revision = h->rev;
			n++;
		}
		w->pos = st->rev;
		pthread_mutex_unlock(&st->mu);
		for (size_t i = 0; i < n; i++) {
			if (!stop && evs[i].key && evs[i].value)
				stop = w->fn(&evs[i], w->arg);
			free((char *)evs[i].key);
			free((char *)evs[i].value);
		}
		free(evs);
		pthread_mutex_lock(&st->mu);
		if (stop)
			break;
	}
	w->done = 1;
	pthread_mutex_unlock(&st->mu);
	return NULL;
}

static int mk_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev,
                          vf_kv_watch_fn fn, void *arg, struct vf_kv_watch **watch_r,
                          struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	struct vf_kv_watch *w;
	int rc = vf_kv_key_check(prefix, VF_KEY_PREFIX, "memkv: watch", err);

	if (rc != VF_OK)
		return rc;
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->prefix = strdup(prefix)) == NULL) {
		free(w);
		return vf_err_set(err, VF_ENOMEM, "memkv: watch %s: out of memory", prefix);
	}
	w->st = st;
	w->fn = fn;
	w->arg = arg;
	pthread_mutex_lock(&st->mu);
	w->pos = after_rev > 0 ? after_rev : st->rev;
	pthread_mutex_unlock(&st->mu);
	if (pthread_create(&w->thr, NULL, mk_watch_thread, w) != 0) {
		free(w->prefix);
		free(w);
		return vf_err_set(err, VF_ENOMEM, "memkv: watch %s: no thread", prefix);
	}
	*watch_r = w;
	return VF_OK;
}

static void mk_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch)
{
	struct vf_kv_watch *w = *watch;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->st->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->st->changed);
	pthread_mutex_unlock(&w->st->mu);
	pthread_join(w->thr, NULL);
	free(w->prefix);
	free(w);
	*watch = NULL;
}

static int mk_compact(struct vf_kv *kv, int64_t revision, struct vf_err *err)
{
	struct memkv_store *st = mk_st(kv);
	size_t n;

	pthread_mutex_lock(&st->mu);
	if (revision > st->rev)
		revision = st->rev;
	n = mk_hist_after(st, revision);
	for (size_t i = 0; i < n; i++) {
		free(st->hist[i].key);
		free(st->hist[i].val);
	}
	memmove(st->hist, st->hist + n, (st->nhist - n) * sizeof(st->hist[0]));
	st->nhist -= n;
	if (revision > st->compact_rev)
		st->compact_rev = revision;
	pthread_cond_broadcast(&st->changed);
	pthread_mutex_unlock(&st->mu);
	return VF_OK;
}

static int mk_open(const config_setting_t *cfg, struct vf_kv **kv_r, struct vf_err *err);
static void mk_close(struct vf_kv *kv);

static const struct vf_kv_ops mk_ops = {
        .abi_version = VF_KV_ABI_VERSION,
        .name = "memkv",
        .caps = VF_KV_CAP_WATCH_HISTORY | VF_KV_CAP_COMPACT | VF_KV_CAP_SHORT_LEASE,
        .open = mk_open,
        .close = mk_close,
        .get = mk_get,
        .list = mk_list,
        .put = mk_put,
        .cas = mk_cas,
        .del = mk_del,
        .cas_del = mk_cas_del,
        .txn = mk_txn,
        .lease_grant = mk_lease_grant,
        .lease_keepalive = mk_lease_keepalive,
        .lease_revoke = mk_lease_revoke,
        .lock = mk_lock,
        .unlock = mk_unlock,
        .lock_many = mk_lock_many,
        .watch_start = mk_watch_start,
        .watch_stop = mk_watch_stop,
        .compact = mk_compact,
};

const struct vf_kv_ops *memkv_ops(void)
{
	return &mk_ops;
}

int memkv_open(struct memkv_store *st, struct vf_kv **kv_r, struct vf_err *err)
{
	struct mk_kv *k = calloc(1, sizeof(*k));

	if (k == NULL)
		return vf_err_set(err, VF_ENOMEM, "memkv: out of memory");
	k->base.ops = &mk_ops;
	k->base.max_txn_ops = MK_MAX_TXN_OPS;
	k->base.min_lease_ttl_s = 1;
	k->st = st;
	*kv_r = &k->base;
	return VF_OK;
}

static int mk_open(const config_setting_t *cfg, struct vf_kv **kv_r, struct vf_err *err)
{
	struct memkv_store *st;
	int rc;

	if (memkv_store_new(&st) != VF_OK)
		return vf_err_set(err, VF_ENOMEM, "memkv: out of memory");
	rc = memkv_open(st, kv_r, err);
	if (rc != VF_OK)
		memkv_store_free(&st);
	else
		((struct mk_kv *)*kv_r)->own_store = 1;
	return rc;
}

static void mk_close(struct vf_kv *kv)
{
	struct mk_kv *k = (struct mk_kv *)kv;

	if (k->own_store)
		memkv_store_free(&k->st);
	free(k);
}

/* ---- test controls ---- */
int64_t memkv_revision(struct memkv_store *st)
{
	int64_t r;

	pthread_mutex_lock(&st->mu);
	r = st->rev;
	pthread_mutex_unlock(&st->mu);
	return r;
}

int memkv_lease_kill(struct memkv_store *st, const char *id)
{
	int64_t n = (int64_t)strtoull(id, NULL, 16);
	struct mk_lease_rec *rec;

	pthread_mutex_lock(&st->mu);
	rec = mk_lease_end(st, n);
	pthread_mutex_unlock(&st->mu);
	if (rec == NULL)
		return VF_ENOTFOUND;
	pthread_mutex_lock(&st->cb_mu);
	if (rec->lost && rec->handle)
		rec->lost(&rec->handle->base, rec->arg);
	pthread_mutex_unlock(&st->cb_mu);
	free(rec);
	return VF_OK;
}

int memkv_lease_freeze(struct memkv_store *st, const char *id)
{
	struct mk_lease_rec *rec;

	pthread_mutex_lock(&st->mu);
	rec = mk_lease_find(st, (int64_t)strtoull(id, NULL, 16));
	if (rec)
		rec->frozen = 1;
	pthread_mutex_unlock(&st->mu);
	return rec ? VF_OK : VF_ENOTFOUND;
}

size_t memkv_lease_count(struct memkv_store *st)
{
	size_t n = 0;

	pthread_mutex_lock(&st->mu);
	for (struct mk_lease_rec *l = st->leases; l; l = l->next)
		n++;
	pthread_mutex_unlock(&st->mu);
	return n;
}

char *memkv_value(struct memkv_store *st, const char *key)
{
	struct mk_ent *e;
	char *v = NULL;

	pthread_mutex_lock(&st->mu);
	e = mk_lookup(st, key);
	if (e)
		v = mk_dup(e->val, e->len);
	pthread_mutex_unlock(&st->mu);
	return v;
}

size_t memkv_count(struct memkv_store *st, const char *prefix)
{
	size_t n = 0, plen = strlen(prefix);

	pthread_mutex_lock(&st->mu);
	for (size_t i = 0; i < st->nents; i++)
		n += strncmp(st->ents[i].key, prefix, plen) == 0;
	pthread_mutex_unlock(&st->mu);
	return n;
}

void memkv_lock_abandon(struct vf_kv_lock **lock)
{
	struct mk_lock *l = (struct mk_lock *)*lock;
	struct mk_lockrec *r;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->st->mu);
	r = mk_lockrec(l->st, l->name, 0);
	if (r && r->holder == l->lease && r->fence == l->base.fence)
		r->owned = 0;
	pthread_mutex_unlock(&l->st->mu);
	mk_lock_free(l);
	*lock = NULL;
}
