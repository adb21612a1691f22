/* The volume manager's admin operations: create, remove, get, list. */
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

/* The options of an info/<vol> document against those of a create request:
 * VF_OK when the same set of key=value, else VF_ECONFLICT with every difference
 * named in err. */
static int vol_opts_same(const char *name, const char *info, const struct vf_opt *opts,
                         size_t nopts, struct vf_err *err)
{
	yajl_val t = NULL, ov;
	struct vf_buf d = {0};
	int rc;

	if (info == NULL || vf_json_parse(info, strlen(info), &t, NULL) != VF_OK)
		return vf_err_set(err, VF_ECONFLICT,
		                  "volume %s already exists (its options cannot be read)", name);
	ov = vf_json_get(t, "options", NULL);
	for (size_t i = 0; i < nopts; i++) {
		const char *want = opts[i].value ? opts[i].value : "";
		const char *have = NULL;

		for (size_t j = 0; ov && YAJL_IS_OBJECT(ov) && j < ov->u.object.len; j++)
			if (strcmp(ov->u.object.keys[j], opts[i].key) == 0)
				have = vf_json_str(ov->u.object.values[j]);
		if (have == NULL)
			vf_buf_printf(&d, "%s%s=%.60s (existing volume: not set)",
			              d.len ? ", " : "", opts[i].key, want);
		else if (strcmp(have, want) != 0)
			vf_buf_printf(&d, "%s%s=%.60s (existing volume: %.60s)", d.len ? ", " : "",
			              opts[i].key, want, have);
	}
	for (size_t j = 0; ov && YAJL_IS_OBJECT(ov) && j < ov->u.object.len; j++) {
		size_t i;
		const char *have = vf_json_str(ov->u.object.values[j]);

		for (i = 0; i < nopts; i++)
			if (strcmp(ov->u.object.keys[j], opts[i].key) == 0)
				break;
		if (i == nopts)
			vf_buf_printf(&d, "%s%s not given (existing volume: %s=%.60s)",
			              d.len ? ", " : "", ov->u.object.keys[j], ov->u.object.keys[j],
			              have ? have : "");
	}
	if (d.len)
		rc = vf_err_set(err, VF_ECONFLICT,
		                "volume %s already exists with other options: %.180s", name,
		                d.data);
	else
		rc = VF_OK;
	vf_buf_free(&d);
	yajl_tree_free(t);
	return rc;
}

/* create found state/<vol> (or does not know whether its own txn landed,
 * uncertain): read state and info in one txn. VF_OK: the volume exists with the
 * same options (our own create, or an identical one); VF_ECONFLICT: other
 * options, named; VF_ENOTFOUND: not there (removed meanwhile, or our uncertain
 * create did not land): create again. */
static int vol_create_same(struct vf_ctx *ctx, const char *name, const struct vf_opt *opts,
                           size_t nopts, const char *ks, const char *ki, int uncertain,
                           struct vf_err *err)
{
	struct vf_kv_op o[] = {{.kind = VF_OP_GET, .key = ks}, {.kind = VF_OP_GET, .key = ki}};
	struct vf_kv_txn_result res = {0};
	int rc = ctx->kv->ops->txn(ctx->kv, NULL, 0, o, 2, &res, err);

	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: %s; cannot read it back", name,
		              uncertain ? "create sent, no answer" : "exists");
	} else if (res.count < 2 || !res.results[0].found) {
		rc = VF_ENOTFOUND;
	} else {
		rc = vol_opts_same(name, res.results[1].found ? res.results[1].pair.value : NULL,
		                   opts, nopts, err);
		if (rc == VF_OK)
			vf_log(VF_LOG_DEBUG, "volume %s: create: exists with the same options",
			       name);
	}
	vf_kv_txn_result_clear(&res);
	return rc;
}

int vf_volume_create(struct vf_ctx *ctx, const char *name, const struct vf_opt *opts, size_t nopts,
                     struct vf_err *err)
{
	char ks[512], kg[512], ki[512];
	char *info = NULL;
	int rc;

	if ((rc = vol_check_name(name, err)) != VF_OK)
		return rc;
	if ((rc = vol_check_opts(name, opts, nopts, err)) != VF_OK)
		return rc;
	rc = vol_info_gen(name, opts, nopts, NULL, NULL, NULL, 0, &info, err);
	if (rc != VF_OK)
		return rc;
	vf_vol_key(ctx, ks, sizeof(ks), VK_STATE, name);
	vf_vol_key(ctx, kg, sizeof(kg), VK_GREF, name);
	vf_vol_key(ctx, ki, sizeof(ki), VK_INFO, name);
	struct vf_kv_cmp c = {.kind = VF_CMP_ABSENT, .key = ks};
	struct vf_kv_op o[] = {
	        {.kind = VF_OP_PUT, .key = ks, .value = "Ready", .value_len = 5},
	        {.kind = VF_OP_PUT, .key = kg, .value = "0", .value_len = 1},
	        {.kind = VF_OP_PUT, .key = ki, .value = info, .value_len = strlen(info)}};

	/* a create that finds the volume (another swarm task created it first) is
	 * answered by comparing options; removed meanwhile: create again (bounded) */
	for (int tries = 0; tries < 8; tries++) {
		rc = ctx->kv->ops->txn(ctx->kv, &c, 1, o, 3, NULL, err);
		if (rc == VF_EUNCERTAIN)
			rc = vol_create_same(ctx, name, opts, nopts, ks, ki, 1, err);
		else if (rc == VF_ECONFLICT)
			rc = vol_create_same(ctx, name, opts, nopts, ks, ki, 0, err);
		if (rc != VF_ENOTFOUND)
			break;
	}
	if (rc == VF_ENOTFOUND)
		rc = vf_err_set(err, VF_ECONFLICT,
		                "volume %s: cannot create: removed and re-created under us "
		                "repeatedly",
		                name);
	else if (rc != VF_OK && rc != VF_ECONFLICT && rc != VF_EINVAL)
		vf_err_prefix(err, "volume %s: cannot create", name);
	free(info);
	return rc;
}

static int vol_remove_once(struct vf_ctx *ctx, const char *name, struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_lease *lease;
	char keys[VK_NKEYS][512], cpre[512];
	const char *reads[] = {keys[VK_STATE], keys[VK_GREF]};
	struct vf_kv_result rr[2];
	struct vf_kv_lock *lkg = NULL, *lks = NULL;
	struct vf_kv_list cl = {0};
	int rc, local_state = 0;

	memset(rr, 0, sizeof(rr));
	for (int i = 0; i < VK_NKEYS; i++)
		vf_vol_key(ctx, keys[i], 512, i, name);
	vol_client_key(ctx, cpre, sizeof(cpre), name, NULL);
	lease = vf_ctx_lease_get(ctx);
	/* order: gref lock, then state (as the manager side, which takes state only) */
	rc = vf_vol_lock(ctx, lease, "gref", name, ctx->op_timeout_ms, reads, 2, rr, &lkg, err);
	if (rc == VF_OK) {
		local_state = vf_vol_local_enter(ctx, "state", name, 0);
		rc = vf_vol_lock(ctx, lease, "state", name, ctx->op_timeout_ms, NULL, 0, NULL, &lks,
		                 err);
	}
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot take the volume locks", name);
		goto out;
	}
	if (!rr[0].found) {
		rc = vf_err_set(err, VF_ENOTFOUND, "volume %s does not exist", name);
		goto out;
	}
	rc = kv->ops->list(kv, cpre, &cl, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot list its clients", name);
		goto out;
	}
	if (vf_vol_num(&rr[1]) > 0 || cl.count > 0) {
		struct vf_buf hosts = {0};

		for (size_t i = 0; i < cl.count; i++)
			vf_buf_printf(&hosts, "%s%s", i ? ", " : "",
			              cl.items[i].key + strlen(cpre));
		rc = vf_err_set(err, VF_EBUSY, "volume %s is mounted on %" PRId64 " host(s): %s",
		                name, vf_vol_num(&rr[1]), hosts.data ? hosts.data : "(unknown)");
		vf_buf_free(&hosts);
		goto out;
	}
	{
		struct vf_kv_cmp c[] = {{.kind = VF_CMP_LOCK_HELD, .lock = lkg},
		                        {.kind = VF_CMP_LOCK_HELD, .lock = lks},
		                        {.kind = VF_CMP_VERSION_EQ,
		                         .key = keys[VK_GREF],
		                         .mod_rev = rr[1].found ? rr[1].pair.mod_rev : 0}};
		struct vf_kv_op o[VK_NKEYS + 2];
		size_t no = 0;

		/* server/<vol> stays: it belongs to the serving manager's lease, which
		 * stops its server and deletes the key itself (a start of a re-created
		 * volume waits for that: no second server while the old one runs) */
		for (int i = 0; i < VK_NKEYS; i++)
			if (i != VK_SERVER)
				o[no++] = (struct vf_kv_op){.kind = VF_OP_DELETE, .key = keys[i]};
		o[no++] = (struct vf_kv_op){.kind = VF_OP_UNLOCK, .lock = lks};
		o[no++] = (struct vf_kv_op){.kind = VF_OP_UNLOCK, .lock = lkg};
		rc = kv->ops->txn(kv, c, 3, o, no, NULL, err);
		if (rc == VF_EUNCERTAIN) {
			struct vf_kv_pair p = {0};

			if (kv->ops->get(kv, keys[VK_STATE], &p, NULL) == VF_ENOTFOUND)
				rc = VF_OK;
			vf_kv_pair_clear(&p);
		}
		if (rc != VF_OK)
			vf_err_prefix(err, "volume %s: cannot remove", name);
	}
out:
	vf_vol_unlock(ctx, lease, "state", name, &lks);
	vf_vol_unlock(ctx, lease, "gref", name, &lkg);
	if (rc == VF_ELEASE && lease)
		vf_ctx_lease_gone(ctx, lease); /* a fenced txn found the lease gone */
	vf_ctx_lease_put(ctx);
	if (local_state)
		vf_vol_local_leave(ctx, "state", name);
	vf_kv_results_clear(rr, 2);
	vf_kv_list_clear(&cl);
	return rc;
}

int vf_volume_remove(struct vf_ctx *ctx, const char *name, struct vf_err *err)
{
	int64_t deadline = vf_now_ms() + ctx->op_timeout_ms;
	int rc;

	if ((rc = vol_check_name(name, err)) != VF_OK)
		return rc;
	vf_vol_local_enter(ctx, "gref", name, 0);
	for (;;) {
		unsigned gen = vf_ctx_lease_gen(ctx);

		rc = vol_remove_once(ctx, name, err);
		if (rc != VF_ELEASE || vf_now_ms() >= deadline)
			break;
		vf_ctx_lease_wait(ctx, gen, deadline); /* again with the new lease */
	}
	vf_vol_local_leave(ctx, "gref", name);
	return rc;
}

void vf_volume_clear(struct vf_volume *v)
{
	if (v == NULL)
		return;
	free(v->name);
	free(v->state);
	vf_strv_free(v->clients, v->nclients);
	free(v->info_json);
	free(v->server);
	memset(v, 0, sizeof(*v));
}

static int vol_fill(struct vf_volume *v, const char *name, const char *state, const char *gref,
                    const char *info)
{
	memset(v, 0, sizeof(*v));
	v->name = strdup(name);
	v->state = strdup(state ? state : "Ready");
	v->gref = gref ? strtoll(gref, NULL, 10) : 0;
	v->info_json = strdup(info ? info : "{}");
	return v->name && v->state && v->info_json ? VF_OK : VF_ENOMEM;
}

static int vol_add_client(struct vf_volume *v, const char *node)
{
	char **c = realloc(v->clients, (v->nclients + 1) * sizeof(*c));

	if (c == NULL)
		return VF_ENOMEM;
	v->clients = c;
	if ((c[v->nclients] = strdup(node)) == NULL)
		return VF_ENOMEM;
	v->nclients++;
	return VF_OK;
}

int vf_volume_get(struct vf_ctx *ctx, const char *name, struct vf_volume *vol_r, struct vf_err *err)
{
	char ks[512], kg[512], ki[512], ksv[512], cpre[512];
	struct vf_kv_op o[] = {{.kind = VF_OP_GET, .key = ks},
	                       {.kind = VF_OP_GET, .key = kg},
	                       {.kind = VF_OP_GET, .key = ki},
	                       {.kind = VF_OP_GET, .key = ksv}};
	struct vf_kv_txn_result res = {0};
	struct vf_kv_list cl = {0};
	int rc;

	memset(vol_r, 0, sizeof(*vol_r));
	if ((rc = vol_check_name(name, err)) != VF_OK)
		return rc;
	vf_vol_key(ctx, ks, sizeof(ks), VK_STATE, name);
	vf_vol_key(ctx, kg, sizeof(kg), VK_GREF, name);
	vf_vol_key(ctx, ki, sizeof(ki), VK_INFO, name);
	vf_vol_key(ctx, ksv, sizeof(ksv), VK_SERVER, name);
	vol_client_key(ctx, cpre, sizeof(cpre), name, NULL);
	rc = ctx->kv->ops->txn(ctx->kv, NULL, 0, o, 4, &res, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot read", name);
		goto out;
	}
	if (res.count < 4 || !res.results[0].found) {
		rc = vf_err_set(err, VF_ENOTFOUND, "volume %s does not exist", name);
		goto out;
	}
	rc = ctx->kv->ops->list(ctx->kv, cpre, &cl, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot list its clients", name);
		goto out;
	}
	rc = vol_fill(vol_r, name, res.results[0].pair.value,
	              res.results[1].found ? res.results[1].pair.value : NULL,
	              res.results[2].found ? res.results[2].pair.value : NULL);
	if (rc == VF_OK && res.results[3].found &&
	    (vol_r->server = strdup(res.results[3].pair.value)) == NULL)
		rc = VF_ENOMEM;
	for (size_t i = 0; rc == VF_OK && i < cl.count; i++)
		rc = vol_add_client(vol_r, cl.items[i].key + strlen(cpre));
	if (rc != VF_OK) {
		vf_volume_clear(vol_r);
		vf_err_set(err, rc, "volume %s: out of memory", name);
	}
out:
	vf_kv_txn_result_clear(&res);
	vf_kv_list_clear(&cl);
	return rc;
}

int vf_volume_list(struct vf_ctx *ctx, struct vf_volume **vols_r, size_t *n_r, struct vf_err *err)
{
	static const int fam[] = {VK_STATE, VK_GREF, VK_INFO};
	struct vf_kv_list l[4];
	struct vf_volume *v = NULL;
	char pre[4][512];
	size_t n = 0, ci;
	int rc = VF_OK;

	*vols_r = NULL;
	*n_r = 0;
	memset(l, 0, sizeof(l));
	for (int i = 0; i < 3; i++)
		snprintf(pre[i], 512, "%s%s/", ctx->prefix, vf_vol_family[fam[i]]);
	snprintf(pre[3], 512, "%sclient/", ctx->prefix);
	for (int i = 0; i < 4 && rc == VF_OK; i++) {
		rc = ctx->kv->ops->list(ctx->kv, pre[i], &l[i], err);
		if (rc != VF_OK)
			vf_err_prefix(err, "cannot list %s", pre[i]);
	}
	if (rc != VF_OK)
		goto out;
	if (l[0].count && (v = calloc(l[0].count, sizeof(*v))) == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "volume list: out of memory");
		goto out;
	}
	for (size_t i = 0; i < l[0].count && rc == VF_OK; i++) {
		const char *name = l[0].items[i].key + strlen(pre[0]);
		char k[1024];
		const struct vf_kv_pair *g, *inf;

		if (!vf_volume_name_valid(name))
			continue;
		snprintf(k, sizeof(k), "%s%s", pre[1], name);
		g = vf_kv_list_find(&l[1], k);
		snprintf(k, sizeof(k), "%s%s", pre[2], name);
		inf = vf_kv_list_find(&l[2], k);
		rc = vol_fill(&v[n], name, l[0].items[i].value, g ? g->value : NULL,
		              inf ? inf->value : NULL);
		snprintf(k, sizeof(k), "%s%s/", pre[3], name);
		/* first client key >= "client/<vol>/" */
		size_t lo = 0, hi = l[3].count;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (strcmp(l[3].items[mid].key, k) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (ci = lo; rc == VF_OK && ci < l[3].count &&
		              strncmp(l[3].items[ci].key, k, strlen(k)) == 0;
		     ci++)
			rc = vol_add_client(&v[n], l[3].items[ci].key + strlen(k));
		n++;
	}
	if (rc != VF_OK) {
		for (size_t i = 0; i < n; i++)
			vf_volume_clear(&v[i]);
		free(v);
		v = NULL;
		n = 0;
		vf_err_set(err, rc, "volume list: out of memory");
	}
	*vols_r = v;
	*n_r = n;
out:
	for (int i = 0; i < 4; i++)
		vf_kv_list_clear(&l[i]);
	return rc;
}
