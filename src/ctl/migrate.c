/*
 * vfilectl migrate: copy every volume from the store of one vfile.conf to the
 * store of another (etcd -> Consul, Consul -> etcd, or another prefix), talking
 * to both stores directly through their backend modules.
 *
 * What is copied, per volume (a volume is a state/<vol> key): state, gref, info,
 * the triggers and markers, client/<vol>/<node>, and the finished claims ("done
 * N"). Not copied: lock/ (the backends' lock keys), server/<vol>, live claims and
 * node/<node> (put with the lease of a daemon of the source store: they would
 * outlive nothing on the target; a marker whose claim is absent is re-claimed and
 * finished by a manager of the target). Keys under the prefix that belong to no
 * volume are reported and left alone.
 *
 * Order per volume: [--overwrite: delete the target's keys of the volume, in
 * their own transactions], then put the keys in transactions of at most
 * max_txn_ops entries, each guarded by "state/<vol> absent on the target", with
 * state/<vol> in the last one, so the volume appears on the target only once it
 * is complete. Then everything is read back and compared byte for byte.
 */
#include <config.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common_int.h"
#include "config_int.h"
#include "ctl_int.h"
#include "vfile/vfile.h"

/* Families whose key is <family>/<vol>. */
static const char *const mig_families[] = {
        "state",       "gref",        "info",       "start_trigger", "stop_trigger", "start_marker",
        "stop_marker", "start_claim", "stop_claim", "server",        NULL,
};

enum mig_kind { MIG_COPY = 0, MIG_LOCK, MIG_LEASE, MIG_OTHER };

/* Classify key (relative to the prefix); vol_r and vlen_r name the volume. */
static enum mig_kind mig_classify(const char *rel, const char *value, const char **vol_r,
                                  size_t *vlen_r)
{
	const char *slash = strchr(rel, '/');
	size_t flen;

	*vol_r = NULL;
	*vlen_r = 0;
	if (slash == NULL)
		return MIG_OTHER;
	flen = (size_t)(slash - rel);
	if (flen == 4 && strncmp(rel, "lock", 4) == 0)
		return MIG_LOCK;
	if (flen == 4 && strncmp(rel, "node", 4) == 0)
		return MIG_LEASE; /* node/<node>: a daemon's liveness key, bound to its lease */
	if (flen == 6 && strncmp(rel, "client", 6) == 0) {
		const char *v = slash + 1, *s2 = strchr(v, '/');

		if (s2 == NULL || s2 == v || s2[1] == '\0')
			return MIG_OTHER;
		*vol_r = v;
		*vlen_r = (size_t)(s2 - v);
		return MIG_COPY;
	}
	for (const char *const *f = mig_families; *f; f++) {
		if (strlen(*f) != flen || strncmp(rel, *f, flen) != 0)
			continue;
		if (slash[1] == '\0' || strchr(slash + 1, '/'))
			return MIG_OTHER;
		*vol_r = slash + 1;
		*vlen_r = strlen(slash + 1);
		if (strcmp(*f, "server") == 0)
			return MIG_LEASE;
		if (strstr(*f, "_claim") && strncmp(value ? value : "", "done ", 5) != 0)
			return MIG_LEASE;
		return MIG_COPY;
	}
	return MIG_OTHER;
}

/* One volume of the source. */
struct mig_vol {
	char name[VF_VOLUME_NAME_MAX + 1];
	int mounted;
	int on_target;
	size_t *keys; /* indexes into the source list */
	size_t nkeys;
	size_t state_key; /* index of state/<vol> */
};

struct mig_plan {
	struct mig_vol *vols;
	size_t nvols;
	size_t nlock, nlease, nother, norphan;
};

static void mig_plan_free(struct mig_plan *p)
{
	for (size_t i = 0; i < p->nvols; i++)
		free(p->vols[i].keys);
	free(p->vols);
	memset(p, 0, sizeof(*p));
}

static struct mig_vol *mig_find(struct mig_plan *p, const char *vol, size_t vlen)
{
	for (size_t i = 0; i < p->nvols; i++)
		if (strlen(p->vols[i].name) == vlen && strncmp(p->vols[i].name, vol, vlen) == 0)
			return &p->vols[i];
	return NULL;
}

/* Volumes = the state/<vol> keys; then every other key joins its volume. */
static int mig_build(const struct vf_kv_list *l, const char *prefix, struct mig_plan *p,
                     struct vf_err *err)
{
	size_t plen = strlen(prefix);

	memset(p, 0, sizeof(*p));
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < l->count; i++) {
			const struct vf_kv_pair *kp = &l->items[i];
			const char *rel = kp->key + plen, *vol;
			size_t vlen;
			enum mig_kind k;
			int is_state = strncmp(rel, "state/", 6) == 0;
			struct mig_vol *v;

			if (strncmp(kp->key, prefix, plen) != 0)
				continue;
			k = mig_classify(rel, kp->value, &vol, &vlen);
			if (pass == 0) {
				if (k != MIG_COPY || !is_state)
					continue;
				if (vlen > VF_VOLUME_NAME_MAX) {
					p->nother++;
					continue;
				}
				v = realloc(p->vols, (p->nvols + 1) * sizeof(*v));
				if (v == NULL)
					return vf_err_set(err, VF_ENOMEM, "out of memory");
				p->vols = v;
				v = &p->vols[p->nvols++];
				memset(v, 0, sizeof(*v));
				memcpy(v->name, vol, vlen);
				v->state_key = i;
				v->mounted =
				        kp->value_len == 7 && memcmp(kp->value, "Mounted", 7) == 0;
				continue;
			}
			if (k == MIG_LOCK) {
				p->nlock++;
				continue;
			}
			if (k == MIG_LEASE) {
				p->nlease++;
				continue;
			}
			if (k == MIG_OTHER) {
				p->nother++;
				continue;
			}
			if (is_state)
				continue; /* written last, from state_key (or counted above) */
			if ((v = mig_find(p, vol, vlen)) == NULL) {
				p->norphan++;
				continue;
			}
			size_t *nk = realloc(v->keys, (v->nkeys + 1) * sizeof(*nk));
			if (nk == NULL)
				return vf_err_set(err, VF_ENOMEM, "out of memory");
			v->keys = nk;
			v->keys[v->nkeys++] = i;
		}
	}
	return VF_OK;
}

/* The target key of a source key: the source prefix replaced by the target's. */
static int mig_dst_key(const char *sp, const char *dp, const char *key, char **out_r)
{
	if (asprintf(out_r, "%s%s", dp, key + strlen(sp)) < 0) {
		*out_r = NULL;
		return VF_ENOMEM;
	}
	return VF_OK;
}

/* Keys of volume vol in list l (prefix dp), for --overwrite. */
static int mig_target_keys(const struct vf_kv_list *l, const char *dp, const char *vol,
                           char ***keys_r, size_t *n_r, struct vf_err *err)
{
	size_t plen = strlen(dp), n = 0;
	char **keys = NULL;

	for (size_t i = 0; i < l->count; i++) {
		const char *rel = l->items[i].key + plen, *v;
		size_t vlen;
		enum mig_kind k = mig_classify(rel, l->items[i].value, &v, &vlen);

		if (k == MIG_LOCK || k == MIG_OTHER || v == NULL || vlen != strlen(vol) ||
		    strncmp(v, vol, vlen) != 0)
			continue;
		char **nk = realloc(keys, (n + 1) * sizeof(*nk));
		if (nk == NULL || (nk[n] = strdup(l->items[i].key)) == NULL) {
			vf_strv_free(nk ? nk : keys, n);
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		}
		keys = nk;
		n++;
	}
	*keys_r = keys;
	*n_r = n;
	return VF_OK;
}

static int mig_on_target(const struct vf_kv_list *l, const char *dp, const char *vol)
{
	size_t plen = strlen(dp);

	for (size_t i = 0; i < l->count; i++) {
		const char *v;
		size_t vlen;
		enum mig_kind k =
		        mig_classify(l->items[i].key + plen, l->items[i].value, &v, &vlen);

		if (k != MIG_LOCK && k != MIG_OTHER && v && vlen == strlen(vol) &&
		    strncmp(v, vol, vlen) == 0)
			return 1;
	}
	return 0;
}

static int mig_chunk_size(const struct vf_kv *kv)
{
	int max = kv->max_txn_ops > 0 && kv->max_txn_ops < INT_MAX ? (int)kv->max_txn_ops : 64;

	return max > 2 ? max - 1 : 1; /* one compare per transaction */
}

/* Delete the target's keys of v (--overwrite). */
static int mig_delete(struct vf_kv *dst, const struct vf_kv_list *dl, const char *dp,
                      const struct mig_vol *v, struct vf_err *err)
{
	char **keys = NULL;
	size_t n = 0, chunk = (size_t)mig_chunk_size(dst) + 1;
	struct vf_kv_op *ops = NULL;
	int rc = mig_target_keys(dl, dp, v->name, &keys, &n, err);

	if (rc != VF_OK || n == 0)
		goto out;
	if ((ops = calloc(chunk, sizeof(*ops))) == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n && rc == VF_OK; i += chunk) {
		size_t m = n - i < chunk ? n - i : chunk;

		for (size_t j = 0; j < m; j++)
			ops[j] = (struct vf_kv_op){.kind = VF_OP_DELETE, .key = keys[i + j]};
		rc = dst->ops->txn(dst, NULL, 0, ops, m, NULL, err);
		if (rc != VF_OK)
			vf_err_prefix(err, "volume %s: deleting it on the target", v->name);
	}
out:
	free(ops);
	vf_strv_free(keys, n);
	return rc;
}

/* Put v's keys on the target, state/<vol> last, each txn guarded by its absence. */
static int mig_copy(struct vf_kv *dst, const struct vf_kv_list *sl, const char *sp, const char *dp,
                    const struct mig_vol *v, struct vf_err *err)
{
	size_t chunk = (size_t)mig_chunk_size(dst), n = v->nkeys + 1;
	char **dkeys = calloc(n, sizeof(char *));
	struct vf_kv_op *ops = calloc(chunk, sizeof(*ops));
	struct vf_kv_cmp cmp = {.kind = VF_CMP_ABSENT};
	int rc = VF_OK;

	if (dkeys == NULL || ops == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t si = i < v->nkeys ? v->keys[i] : v->state_key;

		if (mig_dst_key(sp, dp, sl->items[si].key, &dkeys[i]) != VF_OK) {
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			goto out;
		}
	}
	cmp.key = dkeys[n - 1]; /* state/<vol> on the target */
	for (size_t i = 0; i < n && rc == VF_OK; i += chunk) {
		size_t m = n - i < chunk ? n - i : chunk;

		for (size_t j = 0; j < m; j++) {
			size_t si = i + j < v->nkeys ? v->keys[i + j] : v->state_key;

			ops[j] = (struct vf_kv_op){.kind = VF_OP_PUT,
			                           .key = dkeys[i + j],
			                           .value = sl->items[si].value,
			                           .value_len = sl->items[si].value_len};
		}
		rc = dst->ops->txn(dst, &cmp, 1, ops, m, NULL, err);
		if (rc == VF_ECONFLICT)
			vf_err_set(err, VF_ECONFLICT,
			           "volume %s: created on the target while copying it", v->name);
		else if (rc != VF_OK)
			vf_err_prefix(err, "volume %s: writing %s", v->name, dkeys[i]);
	}
out:
	if (dkeys)
		vf_strv_free(dkeys, n);
	free(ops);
	return rc;
}

/* Re-read the target and compare every copied key. */
static int mig_verify(struct vf_kv *dst, const struct vf_kv_list *sl, const char *sp,
                      const char *dp, const struct mig_plan *p, size_t *nkeys_r, struct vf_err *err)
{
	struct vf_kv_list dl = {0};
	size_t checked = 0;
	int rc = dst->ops->list(dst, dp, &dl, err);

	if (rc != VF_OK) {
		vf_err_prefix(err, "verify: cannot list %s on the target", dp);
		goto out;
	}
	for (size_t i = 0; i < p->nvols && rc == VF_OK; i++) {
		const struct mig_vol *v = &p->vols[i];

		for (size_t k = 0; k <= v->nkeys && rc == VF_OK; k++) {
			const struct vf_kv_pair *s =
			        &sl->items[k < v->nkeys ? v->keys[k] : v->state_key];
			const struct vf_kv_pair *d;
			char *dk = NULL;

			if (mig_dst_key(sp, dp, s->key, &dk) != VF_OK) {
				rc = vf_err_set(err, VF_ENOMEM, "out of memory");
				break;
			}
			d = vf_kv_list_find(&dl, dk);
			if (d == NULL)
				rc = vf_err_set(err, VF_EPROTO,
				                "verify: volume %s: %s is missing on the target",
				                v->name, dk);
			else if (d->value_len != s->value_len ||
			         memcmp(d->value, s->value, s->value_len) != 0)
				rc = vf_err_set(err, VF_EPROTO,
				                "verify: volume %s: %s differs on the target",
				                v->name, dk);
			free(dk);
			checked++;
		}
	}
	*nkeys_r = checked;
out:
	vf_kv_list_clear(&dl);
	return rc;
}

/* The first endpoint of a backend group ("" if none): to refuse src == dst. */
static const char *mig_endpoint(const struct vf_conf *c)
{
	config_setting_t *e =
	        c->backend_group ? config_setting_get_member(c->backend_group, "endpoints") : NULL;
	const char *s = NULL;

	if (e && config_setting_type(e) == CONFIG_TYPE_STRING)
		s = config_setting_get_string(e);
	else if (e && config_setting_length(e) > 0)
		s = config_setting_get_string_elem(e, 0);
	return s ? s : "";
}

struct mig_side {
	struct vf_conf *conf;
	struct vf_backend *be;
	struct vf_kv *kv;
};

static int mig_open(const char *file, struct mig_side *s, struct vf_err *err)
{
	int rc = vf_conf_load(file, &s->conf, err);

	if (rc == VF_OK)
		rc = vf_backend_load(s->conf->backend, s->conf->backend_dir, &s->be, err);
	if (rc == VF_OK)
		rc = vf_backend_open(s->be, s->conf->backend_group, &s->kv, err);
	if (rc == VF_OK && (s->kv->ops->list == NULL || s->kv->ops->txn == NULL))
		rc = vf_err_set(err, VF_ENOTSUP, "%s: backend %s cannot list or run transactions",
		                file, s->conf->backend);
	return rc;
}

static void mig_close(struct mig_side *s)
{
	if (s->kv)
		vf_backend_ops(s->be)->close(s->kv);
	s->kv = NULL;
	vf_backend_unload(&s->be);
	vf_conf_free(&s->conf);
}

static void mig_names(FILE *f, const struct mig_plan *p, int which)
{
	int first = 1;

	for (size_t i = 0; i < p->nvols; i++)
		if ((which == 0 && p->vols[i].mounted) || (which == 1 && p->vols[i].on_target)) {
			fprintf(f, "%s%s", first ? "" : ", ", p->vols[i].name);
			first = 0;
		}
}

int ctl_migrate_kv(struct vf_kv *src, const char *sp, struct vf_kv *dst, const char *dp,
                   const struct ctl_migrate_opts *o, FILE *out, FILE *errf)
{
	struct vf_kv_list sl = {0}, dl = {0};
	struct mig_plan p = {0};
	struct vf_err err = {0};
	size_t nmounted = 0, nexisting = 0, nverified = 0;
	int rc = CTL_EXIT_FAIL;

	if (src->ops->list(src, sp, &sl, &err) != VF_OK) {
		fprintf(errf, "vfilectl: migrate: cannot list %s on the source: %s\n", sp, err.msg);
		goto out;
	}
	if (dst->ops->list(dst, dp, &dl, &err) != VF_OK) {
		fprintf(errf, "vfilectl: migrate: cannot list %s on the target: %s\n", dp, err.msg);
		goto out;
	}
	if (mig_build(&sl, sp, &p, &err) != VF_OK) {
		fprintf(errf, "vfilectl: migrate: %s\n", err.msg);
		goto out;
	}
	for (size_t i = 0; i < p.nvols; i++) {
		nmounted += p.vols[i].mounted;
		p.vols[i].on_target = mig_on_target(&dl, dp, p.vols[i].name);
		nexisting += p.vols[i].on_target;
	}
	if (nmounted && !o->force) {
		fprintf(errf, "vfilectl: migrate: refused: %zu volume(s) Mounted: ", nmounted);
		mig_names(errf, &p, 0);
		fprintf(errf, " (unmount them first, or --force to copy them as they are)\n");
		goto out;
	}
	if (nexisting && !o->overwrite) {
		fprintf(errf, "vfilectl: migrate: refused: %zu volume(s) already on the target: ",
		        nexisting);
		mig_names(errf, &p, 1);
		fprintf(errf, " (nothing was written; --overwrite replaces them)\n");
		goto out;
	}
	for (size_t i = 0; i < p.nvols; i++) {
		const struct mig_vol *v = &p.vols[i];

		if (v->on_target && mig_delete(dst, &dl, dp, v, &err) != VF_OK) {
			fprintf(errf, "vfilectl: migrate: %s\n", err.msg);
			goto out;
		}
		if (mig_copy(dst, &sl, sp, dp, v, &err) != VF_OK) {
			fprintf(errf, "vfilectl: migrate: %s\n", err.msg);
			goto out;
		}
		if (!o->json)
			fprintf(out, "copied %s (%zu keys%s%s)\n", v->name, v->nkeys + 1,
			        v->mounted ? ", Mounted" : "", v->on_target ? ", replaced" : "");
	}
	if (mig_verify(dst, &sl, sp, dp, &p, &nverified, &err) != VF_OK) {
		fprintf(errf, "vfilectl: migrate: %s\n", err.msg);
		goto out;
	}
	if (o->json)
		fprintf(out,
		        "{\"Volumes\": %zu, \"Keys\": %zu, \"Verified\": true, \"Mounted\": %zu, "
		        "\"Replaced\": %zu, \"SkippedLockKeys\": %zu, \"SkippedLeaseKeys\": %zu, "
		        "\"SkippedOtherKeys\": %zu}\n",
		        p.nvols, nverified, nmounted, nexisting, p.nlock, p.nlease,
		        p.nother + p.norphan);
	else
		fprintf(out,
		        "migrated %zu volume(s), %zu keys, verified; not copied: %zu lock key(s), "
		        "%zu lease-bound key(s) (server/, node/, live claims), %zu key(s) of no "
		        "volume\n",
		        p.nvols, nverified, p.nlock, p.nlease, p.nother + p.norphan);
	rc = CTL_EXIT_OK;
out:
	mig_plan_free(&p);
	vf_kv_list_clear(&sl);
	vf_kv_list_clear(&dl);
	return rc;
}

int ctl_migrate(const char *src_file, const char *dst_file, const struct ctl_migrate_opts *o,
                FILE *out, FILE *errf)
{
	struct mig_side s = {0}, d = {0};
	struct vf_err err = {0};
	int rc = CTL_EXIT_FAIL;

	if (mig_open(src_file, &s, &err) != VF_OK || mig_open(dst_file, &d, &err) != VF_OK) {
		fprintf(errf, "vfilectl: migrate: %s\n", err.msg);
		goto out;
	}
	if (strcmp(s.conf->backend_name, d.conf->backend_name) == 0 &&
	    strcmp(s.conf->prefix, d.conf->prefix) == 0 &&
	    strcmp(mig_endpoint(s.conf), mig_endpoint(d.conf)) == 0) {
		fprintf(errf,
		        "vfilectl: migrate: %s and %s name the same store and prefix (%s %s %s)\n",
		        src_file, dst_file, s.conf->backend, mig_endpoint(s.conf), s.conf->prefix);
		goto out;
	}
	if (!o->json)
		fprintf(out, "migrating %s (%s %s) -> %s (%s %s)\n", src_file, s.conf->backend,
		        s.conf->prefix, dst_file, d.conf->backend, d.conf->prefix);
	rc = ctl_migrate_kv(s.kv, s.conf->prefix, d.kv, d.conf->prefix, o, out, errf);
out:
	mig_close(&d);
	mig_close(&s);
	return rc;
}
