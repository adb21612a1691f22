/*
 * Hosts: the liveness key of each daemon, the list of hosts, and eviction of a
 * host that is gone for good (issue 14).
 *
 * ---- Keys (under the prefix) ----
 *  node/<node>   {"role":"manager"|"worker","addr":..,"started":<unix s>,"lease":..}
 *                put with the process lease at every grant (vf_node_announce):
 *                present exactly while the daemon holds a lease.
 *
 * ---- evict(node, vol, force) ----
 * For each volume vol (or each volume node/ has a client key of):
 *   lock(gref of vol, reads gref, client/<vol>/<node>, stop_trigger, node/<node>)
 *   client key absent: nothing to release. node/<node> present and not force:
 *   refused (VF_EBUSY), nothing written. Else one txn [LOCK_HELD, VERSION_EQ gref,
 *   VERSION_EQ client/<vol>/<node>, VERSION_EQ stop_trigger, ABSENT node/<node>
 *   unless force] put gref-1, delete client/<vol>/<node>, put stop_trigger+1 when
 *   gref reaches 0 (the manager stops the server), UNLOCK. The same writes as that
 *   host's own last unmount, under the same lock: gref stays equal to the number
 *   of client keys. A compare that failed (the host came back, an unmount or
 *   mount landed) reads again, within op_timeout. A host that comes back after
 *   its eviction finds no id of its own: its start-up check and sweep unmount
 *   what it still has mounted (src/lib/volume.c).
 * ---- automatic eviction (managers, evict_after_s > 0) ----
 * After each reconcile pass: list node/ and client/; a host with client keys and
 * no node key is noted with the time this manager first saw it so; once that is
 * evict_after_s ago, it is evicted as above (not forced: a host whose lease came
 * back in between is refused by the txn's ABSENT compare). Several managers may
 * try at once: the gref lock orders them, the later finds nothing to release.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "metrics_int.h"
#include "volume_int.h"

void vf_node_key(const struct vf_ctx *ctx, char *buf, size_t size, const char *node)
{
	snprintf(buf, size, "%snode/%s", ctx->prefix, node);
}

int vf_node_announce(struct vf_ctx *ctx, struct vf_kv_lease *lease, struct vf_err *err)
{
	char key[512];
	yajl_gen g = yajl_gen_alloc(NULL);
	char *val = NULL;
	size_t len = 0;
	int rc;

	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "node %s: out of memory", ctx->node_id);
	yajl_gen_map_open(g);
	vf_jgen_str(g, "role");
	vf_jgen_str(g, ctx->manager ? "manager" : "worker");
	vf_jgen_str(g, "addr");
	vf_jgen_str(g, ctx->node_addr);
	vf_jgen_str(g, "started");
	vf_jgen_int(g, ctx->started_s);
	vf_jgen_str(g, "lease");
	vf_jgen_str(g, lease->id);
	yajl_gen_map_close(g);
	rc = vf_jgen_finish(g, &val, &len, err);
	yajl_gen_free(g);
	if (rc != VF_OK)
		return rc;
	vf_node_key(ctx, key, sizeof(key), ctx->node_id);
	rc = ctx->kv->ops->put(ctx->kv, key, val, len, lease, NULL, err);
	if (rc != VF_OK)
		vf_err_prefix(err, "node %s: cannot write its liveness key %s", ctx->node_id, key);
	free(val);
	return rc;
}

/* The mount ids in a client value (a value that is not JSON: one "?"). */
static int node_ids(const struct vf_kv_result *r, char ***ids_r, size_t *n_r)
{
	yajl_val t = NULL, a;
	char **v = NULL;
	size_t n = 0;

	*ids_r = NULL;
	*n_r = 0;
	if (vf_json_parse(r->pair.value, r->pair.value_len, &t, NULL) == VF_OK &&
	    (a = vf_json_get(t, "ids", NULL)) != NULL && YAJL_IS_ARRAY(a)) {
		v = calloc(a->u.array.len + 1, sizeof(*v));
		for (size_t i = 0; v && i < a->u.array.len; i++) {
			const char *s = vf_json_str(a->u.array.values[i]);

			if ((v[n] = strdup(s ? s : "?")) != NULL)
				n++;
		}
	} else if ((v = calloc(1, sizeof(*v))) != NULL && (v[0] = strdup("?")) != NULL) {
		n = 1;
	}
	yajl_tree_free(t);
	*ids_r = v;
	*n_r = n;
	return v ? VF_OK : VF_ENOMEM;
}

void vf_evicted_free(struct vf_evicted **ev, size_t n)
{
	if (*ev == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*ev)[i].vol);
		vf_strv_free((*ev)[i].ids, (*ev)[i].nids);
	}
	free(*ev);
	*ev = NULL;
}

/* One volume, one try. VF_OK with *out filled (out->vol NULL: nothing held). */
static int node_evict_once(struct vf_ctx *ctx, const char *node, const char *vol, int force,
                           struct vf_evicted *out, struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_lease *lease;
	struct vf_kv_lock *lk = NULL;
	char kg[512], kc[512], kp[512], kn[512], gv[32], pv[32];
	const char *reads[] = {kg, kc, kp, kn};
	struct vf_kv_result rr[4];
	int rc;

	memset(rr, 0, sizeof(rr));
	memset(out, 0, sizeof(*out));
	vf_vol_key(ctx, kg, sizeof(kg), VK_GREF, vol);
	snprintf(kc, sizeof(kc), "%sclient/%s/%s", ctx->prefix, vol, node);
	vf_vol_key(ctx, kp, sizeof(kp), VK_STOP_TRIGGER, vol);
	vf_node_key(ctx, kn, sizeof(kn), node);
	lease = vf_ctx_lease_get(ctx);
	rc = vf_vol_lock(ctx, lease, "gref", vol, ctx->op_timeout_ms, reads, 4, rr, &lk, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: evict %s: cannot take the gref lock", vol, node);
		goto out;
	}
	if (!rr[1].found)
		goto out; /* nothing held (any more) */
	if (rr[3].found && !force) {
		rc = vf_err_set(err, VF_EBUSY,
		                "node %s is alive (its lease holds %s): evict refuses a live "
		                "host; stop its vfiled first, or force",
		                node, kn);
		goto out;
	}
	{
		int64_t g = vf_vol_num(&rr[0]) - 1, p = vf_vol_num(&rr[2]) + 1;
		struct vf_kv_cmp c[5] = {
		        {.kind = VF_CMP_LOCK_HELD, .lock = lk},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = kg,
		         .mod_rev = rr[0].found ? rr[0].pair.mod_rev : 0},
		        {.kind = VF_CMP_VERSION_EQ, .key = kc, .mod_rev = rr[1].pair.mod_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = kp,
		         .mod_rev = rr[2].found ? rr[2].pair.mod_rev : 0},
		        {.kind = VF_CMP_ABSENT, .key = kn}};
		struct vf_kv_op o[4];
		size_t no = 0;

		if (g < 0)
			g = 0; /* gref already wrong: do not make it negative */
		snprintf(gv, sizeof(gv), "%" PRId64, g);
		snprintf(pv, sizeof(pv), "%" PRId64, p);
		o[no++] = (struct vf_kv_op){
		        .kind = VF_OP_PUT, .key = kg, .value = gv, .value_len = strlen(gv)};
		o[no++] = (struct vf_kv_op){.kind = VF_OP_DELETE, .key = kc};
		if (g == 0)
			o[no++] = (struct vf_kv_op){
			        .kind = VF_OP_PUT, .key = kp, .value = pv, .value_len = strlen(pv)};
		o[no++] = (struct vf_kv_op){.kind = VF_OP_UNLOCK, .lock = lk};
		rc = kv->ops->txn(kv, c, force ? 4 : 5, o, no, NULL, err);
		if (rc != VF_OK) {
			vf_err_prefix(err, "volume %s: evict %s", vol, node);
			goto out;
		}
		out->gref_before = vf_vol_num(&rr[0]);
		out->gref_after = g;
	}
	if ((out->vol = strdup(vol)) == NULL || node_ids(&rr[1], &out->ids, &out->nids) != VF_OK) {
		/* the store part is done; only the report is short */
		vf_log(VF_LOG_WARN, "volume %s: evict %s: out of memory for the report", vol, node);
	}
	vf_log(VF_LOG_WARN,
	       "volume %s: evicted node %s%s (%zu mount id(s)); gref %" PRId64 " -> %" PRId64, vol,
	       node, force ? " (forced)" : "", out->nids, out->gref_before, out->gref_after);
out:
	vf_vol_unlock(ctx, lease, "gref", vol, &lk);
	if (rc == VF_ELEASE && lease)
		vf_ctx_lease_gone(ctx, lease);
	vf_ctx_lease_put(ctx);
	vf_kv_results_clear(rr, 4);
	return rc;
}

static int node_evict_vol(struct vf_ctx *ctx, const char *node, const char *vol, int force,
                          struct vf_evicted *out, struct vf_err *err)
{
	int64_t deadline = vf_now_ms() + ctx->op_timeout_ms;
	int rc;

	vf_vol_local_enter(ctx, "gref", vol, 0);
	for (;;) {
		unsigned gen = vf_ctx_lease_gen(ctx);

		rc = node_evict_once(ctx, node, vol, force, out, err);
		if (rc == VF_ECONFLICT && vf_now_ms() < deadline)
			continue; /* something moved under the lock's reads: read again */
		if (rc != VF_ELEASE || vf_now_ms() >= deadline)
			break;
		vf_ctx_lease_wait(ctx, gen, deadline);
	}
	vf_vol_local_leave(ctx, "gref", vol);
	return rc;
}

static int node_valid(const char *node)
{
	size_t n = node ? strlen(node) : 0;

	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)node[i] <= 0x20 || node[i] == 0x7f || node[i] == '/' ||
		    node[i] == '"' || node[i] == '\\')
			return 0;
	return 1;
}

int vf_node_evict(struct vf_ctx *ctx, const char *node, const char *vol, int force,
                  struct vf_evicted **ev_r, size_t *n_r, struct vf_err *err)
{
	struct vf_kv_list cl = {0};
	struct vf_evicted *ev = NULL;
	char pre[512], kn[512];
	size_t n = 0, cap = 0;
	int rc = VF_OK;

	*ev_r = NULL;
	*n_r = 0;
	if (!node_valid(node))
		return vf_err_set(err, VF_EINVAL, "evict: invalid node name");
	if (vol && !vf_volume_name_valid(vol))
		return vf_err_set(err, VF_EINVAL, "evict: invalid volume name '%.140s'", vol);
	if (strcmp(node, ctx->node_id) == 0)
		return vf_err_set(err, VF_EINVAL,
		                  "evict: %s is this node: unmount its volumes instead", node);
	/* a live host: refuse before touching anything (each txn checks again) */
	if (!force) {
		struct vf_kv_pair p = {0};

		vf_node_key(ctx, kn, sizeof(kn), node);
		rc = ctx->kv->ops->get(ctx->kv, kn, &p, err);
		vf_kv_pair_clear(&p);
		if (rc == VF_OK)
			return vf_err_set(err, VF_EBUSY,
			                  "node %s is alive (its lease holds %s): evict refuses a "
			                  "live host; stop its vfiled first, or force",
			                  node, kn);
		if (rc != VF_ENOTFOUND)
			return vf_err_prefix(err, "evict %s: cannot read %s", node, kn);
		rc = VF_OK;
	}
	if (vol) {
		snprintf(pre, sizeof(pre), "%sclient/%s/", ctx->prefix, vol);
	} else {
		snprintf(pre, sizeof(pre), "%sclient/", ctx->prefix);
	}
	rc = ctx->kv->ops->list(ctx->kv, pre, &cl, err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "evict %s: cannot list %s", node, pre);
		goto out;
	}
	for (size_t i = 0; i < cl.count; i++) {
		const char *rel = cl.items[i].key + strlen(ctx->prefix) + strlen("client/");
		const char *slash = strchr(rel, '/');
		char v[VF_VOLUME_NAME_MAX + 1];
		struct vf_evicted one;

		if (slash == NULL || strcmp(slash + 1, node) != 0 ||
		    (size_t)(slash - rel) > VF_VOLUME_NAME_MAX)
			continue;
		memcpy(v, rel, (size_t)(slash - rel));
		v[slash - rel] = '\0';
		rc = node_evict_vol(ctx, node, v, force, &one, err);
		if (rc != VF_OK)
			break;
		if (one.vol == NULL && one.nids == 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 8;
			struct vf_evicted *x = realloc(ev, nc * sizeof(*x));

			if (x == NULL) {
				free(one.vol);
				vf_strv_free(one.ids, one.nids);
				continue;
			}
			ev = x;
			cap = nc;
		}
		ev[n++] = one;
	}
	if (n)
		vf_metrics_add(VF_M_EVICTIONS, n);
out:
	vf_kv_list_clear(&cl);
	if (rc != VF_OK && n)
		vf_log(VF_LOG_WARN, "evict %s: stopped after %zu volume(s): %s", node, n, err->msg);
	*ev_r = ev;
	*n_r = n;
	return rc;
}

void vf_nodes_free(struct vf_node **nodes, size_t n)
{
	if (*nodes == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		free((*nodes)[i].name);
		free((*nodes)[i].role);
		free((*nodes)[i].addr);
		vf_strv_free((*nodes)[i].vols, (*nodes)[i].nvols);
	}
	free(*nodes);
	*nodes = NULL;
}

static struct vf_node *node_find_add(struct vf_node **v, size_t *n, size_t *cap, const char *name,
                                     size_t len)
{
	for (size_t i = 0; i < *n; i++)
		if (strlen((*v)[i].name) == len && strncmp((*v)[i].name, name, len) == 0)
			return &(*v)[i];
	if (*n == *cap) {
		size_t nc = *cap ? 2 * *cap : 16;
		struct vf_node *x = realloc(*v, nc * sizeof(*x));

		if (x == NULL)
			return NULL;
		*v = x;
		*cap = nc;
	}
	memset(&(*v)[*n], 0, sizeof(**v));
	if (((*v)[*n].name = strndup(name, len)) == NULL)
		return NULL;
	return &(*v)[(*n)++];
}

static int node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vf_node *)a)->name, ((const struct vf_node *)b)->name);
}

int vf_node_list(struct vf_ctx *ctx, struct vf_node **nodes_r, size_t *n_r, struct vf_err *err)
{
	struct vf_kv_list nl = {0}, cl = {0};
	struct vf_node *v = NULL, *x;
	size_t n = 0, cap = 0, plen = strlen(ctx->prefix);
	char pre[512];
	int rc;

	*nodes_r = NULL;
	*n_r = 0;
	snprintf(pre, sizeof(pre), "%snode/", ctx->prefix);
	rc = ctx->kv->ops->list(ctx->kv, pre, &nl, err);
	if (rc == VF_OK) {
		snprintf(pre, sizeof(pre), "%sclient/", ctx->prefix);
		rc = ctx->kv->ops->list(ctx->kv, pre, &cl, err);
	}
	if (rc != VF_OK) {
		vf_err_prefix(err, "nodes: cannot list %s", pre);
		goto out;
	}
	for (size_t i = 0; i < nl.count && rc == VF_OK; i++) {
		const char *name = nl.items[i].key + plen + strlen("node/");
		yajl_val t = NULL;
		int64_t started = 0;

		if ((x = node_find_add(&v, &n, &cap, name, strlen(name))) == NULL) {
			rc = vf_err_set(err, VF_ENOMEM, "nodes: out of memory");
			break;
		}
		x->alive = 1;
		if (vf_json_parse(nl.items[i].value, nl.items[i].value_len, &t, NULL) == VF_OK) {
			const char *role = vf_json_str(vf_json_get(t, "role", NULL));
			const char *addr = vf_json_str(vf_json_get(t, "addr", NULL));

			vf_json_int64(vf_json_get(t, "started", NULL), &started);
			x->role = role ? strdup(role) : NULL;
			x->addr = addr ? strdup(addr) : NULL;
			x->started = started;
		}
		yajl_tree_free(t);
	}
	for (size_t i = 0; i < cl.count && rc == VF_OK; i++) {
		const char *rel = cl.items[i].key + plen + strlen("client/");
		const char *slash = strchr(rel, '/');
		char **nv;

		if (slash == NULL || slash[1] == '\0')
			continue;
		if ((x = node_find_add(&v, &n, &cap, slash + 1, strlen(slash + 1))) == NULL ||
		    (nv = realloc(x->vols, (x->nvols + 1) * sizeof(*nv))) == NULL) {
			rc = vf_err_set(err, VF_ENOMEM, "nodes: out of memory");
			break;
		}
		x->vols = nv;
		if ((nv[x->nvols] = strndup(rel, (size_t)(slash - rel))) != NULL)
			x->nvols++;
	}
	if (rc != VF_OK) {
		vf_nodes_free(&v, n);
		n = 0;
		goto out;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), node_cmp);
	*nodes_r = v;
	*n_r = n;
out:
	vf_kv_list_clear(&nl);
	vf_kv_list_clear(&cl);
	return rc;
}

/* ---- automatic eviction (managers) ---- */
struct node_gone {
	char *name;
	int64_t since_ms;
	struct node_gone *next;
};

void vf_node_gone_free(struct node_gone **g)
{
	while (*g) {
		struct node_gone *x = *g;

		*g = x->next;
		free(x->name);
		free(x);
	}
}

void vf_node_auto_evict(struct vf_ctx *ctx, struct node_gone **gone)
{
	struct vf_node *nodes = NULL;
	struct vf_err e = {0};
	size_t n = 0;
	int64_t now = vf_now_ms(), grace = (int64_t)ctx->evict_after_s * 1000;

	if (ctx->evict_after_s <= 0)
		return;
	if (vf_node_list(ctx, &nodes, &n, &e) != VF_OK) {
		vf_log(VF_LOG_WARN, "auto-evict: %s", e.msg);
		return;
	}
	/* forget hosts that are alive again or hold nothing */
	for (struct node_gone **pp = gone; *pp;) {
		struct node_gone *g = *pp;
		int keep = 0;

		for (size_t i = 0; i < n; i++)
			if (strcmp(nodes[i].name, g->name) == 0)
				keep = !nodes[i].alive && nodes[i].nvols > 0;
		if (keep) {
			pp = &g->next;
		} else {
			*pp = g->next;
			free(g->name);
			free(g);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct node_gone *g;
		struct vf_evicted *ev = NULL;
		size_t nev = 0;

		if (nodes[i].alive || nodes[i].nvols == 0 ||
		    strcmp(nodes[i].name, ctx->node_id) == 0)
			continue;
		for (g = *gone; g; g = g->next)
			if (strcmp(g->name, nodes[i].name) == 0)
				break;
		if (g == NULL) {
			if ((g = calloc(1, sizeof(*g))) == NULL ||
			    (g->name = strdup(nodes[i].name)) == NULL) {
				free(g);
				continue;
			}
			g->since_ms = now;
			g->next = *gone;
			*gone = g;
			vf_log(VF_LOG_WARN,
			       "node %s: no lease but %zu volume(s) held; evicted in %d s unless "
			       "it "
			       "comes back (evict_after_s)",
			       g->name, nodes[i].nvols, ctx->evict_after_s);
			continue;
		}
		if (now - g->since_ms < grace)
			continue;
		vf_log(VF_LOG_WARN, "node %s: no lease for %" PRId64 " s: evicting it", g->name,
		       (now - g->since_ms) / 1000);
		if (vf_node_evict(ctx, g->name, NULL, 0, &ev, &nev, &e) != VF_OK)
			vf_log(VF_LOG_WARN, "auto-evict %s: %s", g->name, e.msg);
		vf_evicted_free(&ev, nev);
	}
	vf_nodes_free(&nodes, n);
}
