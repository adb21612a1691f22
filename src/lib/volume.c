/*
 * The volume manager, host side: create, remove, mount, unmount, get, list,
 * plus the process context (one lease per process) and failpoints.
 * The manager side (trigger watchers, handlers, reconciler) is src/manager.c.
 *
 * ---- Keys (under cfg->prefix, default "vfile/"), for doc/protocol.pml ----
 *  state/<vol>          "Ready" | "Mounted"; written only under lock/state/<vol>
 *                       (create and remove excepted: create needs it absent).
 *  gref/<vol>           decimal count of hosts with the volume mounted.
 *  client/<vol>/<node>  {"addr":"<node addr>","ids":["<mount id>",...]}: the host's
 *                       mount ids live in the store, so they survive a daemon restart.
 *                       The FIRST id of a host takes the global reference (gref+1);
 *                       later ids only rewrite this value; the LAST id drops it.
 *                       gref == number of client keys, always (same txn).
 *  info/<vol>           {"name":..,"options":{..},"server":{"node":..,"addr":..,"port":N}}
 *  start_trigger/<vol>, stop_trigger/<vol>  decimal counters bumped by hosts.
 *  start_marker/<vol>, stop_marker/<vol>    last trigger value a manager claimed.
 *  start_claim/<vol>, stop_claim/<vol>      "<node> <lease> <value>" put WITH the
 *                       claimant's lease in the claim txn, rewritten to "done <value>"
 *                       (no lease) when the handler finished. A marker > 0 whose
 *                       claim key is ABSENT means the claimant died: re-claimable.
 *  server/<vol>         "<node> <lease>" of the manager serving the volume, put with
 *                       its lease: a Mounted state without it = the server died.
 *  lock/gref/<vol>, lock/state/<vol>        lock names (the backend's own keys).
 *
 * ---- Write order ----
 * mount(H, id):   [local mutex per volume in this process]
 *   1 lock(gref, reads state,gref,client/H,info,start_trigger,server)
 *   id already in client/H: unlock, done.  client/H has other ids: txn
 *   [LOCK_HELD, VERSION_EQ client/H] put client/H(+id), UNLOCK.  (2 round trips)
 *   warm (state==Mounted and server present): local mount; txn [LOCK_HELD,
 *   VERSION_EQ state, VERSION_EQ server (both as read: Mounted with a server;
 *   by value a stop plus a new start in between would pass, ABA), VERSION_EQ
 *   gref] put gref+1, put client/H, UNLOCK (2 round trips).
 *   cold: txn [LOCK_HELD, VERSION_EQ start_trigger] put start_trigger+1; watch
 *   state/<vol> until state==Mounted and server present (bounded by op_timeout),
 *   re-reading state, server, start_marker, start_claim on every event: if the
 *   marker reached our bump and the claim is absent or "done" (our start was
 *   handled) but the state is not Mounted with a server (a stop under way
 *   flipped it back), unlock and ask again from 1. Then local mount; the same
 *   final txn. If it fails on "state==Mounted" (a stop flipped it) the local
 *   mount is undone and the mount retries from 1 (likewise on the state or
 *   server/ version). Retries (and a re-run after
 *   VF_ELEASE with the re-granted lease) are bounded by the op deadline.
 *   On time-out: txn [LOCK_HELD, VERSION_EQ stop_trigger] put stop_trigger+1 (a
 *   server started late is stopped), unlock, VF_ETIMEDOUT.
 *   Elided (see vol_memo): H not a client yet and a remembered view: local mount
 *   with the remembered info; txn [LOCK_FREE gref, VERSION_EQ state, gref, client/H
 *   (absent), info, server] put gref+1, put client/H.  (1 round trip; if it fails:
 *   local unmount, then the locked way above)
 * unmount(H, id): elided (see vol_memo) for H's one id while the remembered gref
 *   >= 2: local unmount; txn [LOCK_FREE gref, VERSION_EQ gref, client/H] put
 *   gref-1, delete client/H (1 round trip; if it fails: the locked way below).
 *   1 lock(gref, reads state,gref,client/H,stop_trigger)
 *   other ids left: txn [LOCK_HELD, VERSION_EQ client/H] put client/H(-id), UNLOCK.
 *   last id: local unmount; txn [LOCK_HELD, VERSION_EQ gref, VERSION_EQ client/H,
 *   VERSION_EQ stop_trigger] put gref-1, delete client/H, put stop_trigger+1 (only
 *   when gref reaches 0: a stop can only act then), UNLOCK.  (2 round trips)
 *   id not counted, no id of H counted: local unmount if the mount table (not
 *   this process's memory) says mounted.
 *   The store part failing (unreachable, uncertain and unreadable, a lost
 *   fence, no lock): answered OK, the id released by the converge thread
 *   (the same path, 250 ms doubling to 5 s) until the store takes it; a mount
 *   of the same id voids that. On start: ids of H for volumes not mounted here
 *   are released so; mounts under mount_root no id of H stands for are
 *   unmounted (again every 30 s for mounts this process did not make).
 * Records of this node under an EARLIER lease of its own (server/, claims) count
 *   as absent everywhere below: that lease is gone for this process.
 * claim (manager, one per trigger): one txn reads trigger, marker, claim, server;
 *   a stop is claimed only by the manager server/<vol> names, or by any when it
 *   is absent; our own unfinished claim (same lease) is taken up again as is;
 *   else txn [VERSION_EQ marker (as read)] put marker=trigger, put claim
 *   (lease), only when trigger > marker (strictly up), or when marker > 0 and
 *   the claim is absent (orphan: [.., ABSENT claim], marker rewritten with the
 *   same value; our claim of an earlier lease: [.., VERSION_EQ claim]). The handler
 *   then runs; its end: txn [VALUE_EQ claim] put "done <n>" (ok) or delete the
 *   claim (error: an orphan, which the reconciler claims again).
 * start (manager, claim won): lock(state, reads state,gref,info,server); removed:
 *   nothing; Mounted with server: nothing; server/ of another live manager and
 *   not Mounted (the old incarnation's server of a removed and re-created volume
 *   still runs): VF_EBUSY, the claim is dropped and retried until that manager
 *   deleted the key; ours, not Mounted: stop our server first; restart job and
 *   not Mounted: nothing; else fs start; txn [LOCK_HELD, VERSION_EQ state] put
 *   info(+server), put server (lease), put state=Mounted, UNLOCK.
 * stop (manager, claim won): lock(state, reads state,gref,info,server); removed
 *   or not Mounted: stop our server if we run one, delete server/ if it names us
 *   (txn [VALUE_EQ ours]); server/ names another live manager (it started after
 *   our claim read server/ empty): VF_ECONFLICT, the claim is dropped and the
 *   serving manager re-claims the orphan; gref > 0: nothing; else txn
 *   [LOCK_HELD, VERSION_EQ gref (as read), VALUE_EQ state "Mounted"] put
 *   state=Ready, delete server -- NO UNLOCK: the state lock stays held until our
 *   server is down (so no start can run a second one meanwhile); then unlock. A
 *   server whose server/ key another stop deleted (the key of a dead lease) is
 *   stopped by its manager on the DELETE through its server/ watch (check).
 * check (manager: a server/ event other than our own PUT for a volume we serve,
 *   a start trigger of a volume we serve, a reconcile pass): read state, server;
 *   server/ not ours: stop our server; ours and state absent or not Mounted:
 *   stop our server, then txn [VALUE_EQ ours] delete server/<vol>.
 * orphan-stop (reconciler: a volume this process does not serve, fs->running
 *   says a server of it runs here (left by a daemon that crashed) and server/
 *   names another node): re-read server/; still another node's: fs stop. Never
 *   when server/ names this node or is absent.
 * restart (reconciler: Mounted, server/ absent, no live start claim, a host
 *   counted): the start above without a claim, doing nothing unless still Mounted.
 *   Batched when the backend has lock_many (src/manager.c): the volumes one pass
 *   finds go K at a time (K = max_txn_ops / 5): lock_many(their state locks,
 *   [VERSION_EQ state as listed, ABSENT server] each: all or nothing); their
 *   info as listed (info/ is listed once, after state/: info is only written
 *   together with state, so the state compare covers it); the servers started;
 *   one txn [LOCK_HELD] x K: the start's puts x K, UNLOCK x K (state cannot
 *   change under its lock). That is K single restarts at one instant (no new
 *   interleaving); a lock held or a compare failed sends the batch back to
 *   single restarts, a failed record txn is redone volume by volume.
 * idle-stop (reconciler: Mounted with a server, no host, nothing pending, for two
 *   passes; or Mounted, no server and no host): try-lock(gref, reads gref,state,
 *   stop_trigger); gref==0 and Mounted: txn [LOCK_HELD, VERSION_EQ gref,
 *   VERSION_EQ stop_trigger] put stop_trigger+1, UNLOCK.
 * locks: a lock or unlock request whose answer was lost (EUNCERTAIN, EUNAVAIL,
 *   ETIMEDOUT, EPROTO) may have left the lock held under our lease: the lease
 *   thread takes and releases it again (under the local mutex), every 0.5 s
 *   while the store does not answer.
 * remove: lock(gref, reads state,gref), lock(state); list client/<vol>/;
 *   refuse VF_EBUSY naming the hosts while gref > 0 or clients exist; else txn
 *   [both LOCK_HELD, VERSION_EQ gref] delete every key of the volume but
 *   server/<vol> (it belongs to the serving manager's lease), UNLOCK x2. A server
 *   still running (its stop was under way) is stopped by its manager, which then
 *   deletes server/<vol> (VALUE_EQ its own value): in its stop handler, its check
 *   and every reconcile pass (above). A start that finds server/<vol> of another
 *   live manager with the state not Mounted waits (above): a re-created volume
 *   never gets a second server while the old incarnation's still runs.
 * create: txn [ABSENT state] put state=Ready, gref=0, info. Compare failed (the
 *   volume exists: two swarm tasks racing to create it) or outcome unknown: one
 *   txn reads state and info; the same options (as a set of key=value) is
 *   success, others are VF_ECONFLICT naming each difference; absent (removed
 *   meanwhile, or our uncertain txn did not land): create again (8 tries).
 */
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

const char *const vf_vol_family[VK_NKEYS] = {
        "state",        "gref",        "info",        "start_trigger", "stop_trigger",
        "start_marker", "stop_marker", "start_claim", "stop_claim",    "server"};

/* ---- failpoints ---- */
struct fp {
	char name[64];
	vf_failpoint_fn fn;
	void *arg;
};
static struct fp fp_tab[16];
static pthread_mutex_t fp_mu = PTHREAD_MUTEX_INITIALIZER;

void vf_failpoint_set(const char *name, vf_failpoint_fn fn, void *arg)
{
	struct fp *free_slot = NULL;

	pthread_mutex_lock(&fp_mu);
	for (size_t i = 0; i < sizeof(fp_tab) / sizeof(fp_tab[0]); i++) {
		if (fp_tab[i].fn && strcmp(fp_tab[i].name, name) == 0) {
			free_slot = &fp_tab[i];
			break;
		}
		if (fp_tab[i].fn == NULL && free_slot == NULL)
			free_slot = &fp_tab[i];
	}
	if (free_slot) {
		snprintf(free_slot->name, sizeof(free_slot->name), "%s", name);
		free_slot->fn = fn;
		free_slot->arg = arg;
	}
	pthread_mutex_unlock(&fp_mu);
}

void vf_failpoint_clear_all(void)
{
	pthread_mutex_lock(&fp_mu);
	memset(fp_tab, 0, sizeof(fp_tab));
	pthread_mutex_unlock(&fp_mu);
}

int vf_failpoint_hit(const char *name, const char *vol)
{
	vf_failpoint_fn fn = NULL;
	void *arg = NULL;

	pthread_mutex_lock(&fp_mu);
	for (size_t i = 0; i < sizeof(fp_tab) / sizeof(fp_tab[0]); i++)
		if (fp_tab[i].fn && strcmp(fp_tab[i].name, name) == 0) {
			fn = fp_tab[i].fn;
			arg = fp_tab[i].arg;
		}
	pthread_mutex_unlock(&fp_mu);
	return fn ? fn(name, vol, arg) : 0;
}

/* ---- names, options, keys ---- */
int vf_volume_name_valid(const char *name)
{
	size_t n;

	if (name == NULL || !isalnum((unsigned char)name[0]))
		return 0;
	for (n = 1; name[n]; n++)
		if (!isalnum((unsigned char)name[n]) && name[n] != '_' && name[n] != '.' &&
		    name[n] != '-')
			return 0;
	return n <= VF_VOLUME_NAME_MAX;
}

static int vol_check_name(const char *name, struct vf_err *err)
{
	if (vf_volume_name_valid(name))
		return VF_OK;
	return vf_err_set(err, VF_EINVAL,
	                  "invalid volume name '%.140s': use 1 to %d of A-Z a-z 0-9 _ . - starting "
	                  "with a letter or digit",
	                  name ? name : "(null)", VF_VOLUME_NAME_MAX);
}

static const char *const vol_known_opts[] = {"size", "mode", "uid", "gid", "fileserver", NULL};

/* Bounds on mount ids (doc/reliability.md, "Input bounds"): every mount rewrites
 * client/<vol>/<node>, so its size is bounded by both. */
#define VOL_ID_MAX 64   /* bytes; Docker's ids are 64 hex digits (= VF_PLUGIN_ID_MAX) */
#define VOL_IDS_MAX 256 /* ids of one host on one volume */

const char *const *vf_volume_known_opts(void)
{
	return vol_known_opts;
}

static int vol_is_uint(const char *s, const char *suffixes)
{
	size_t i = 0;

	if (s == NULL || !isdigit((unsigned char)s[0]))
		return 0;
	while (isdigit((unsigned char)s[i]))
		i++;
	if (s[i] == '\0')
		return 1;
	return suffixes && s[i + 1] == '\0' && strchr(suffixes, s[i]) != NULL;
}

static int vol_check_opts(const char *name, const struct vf_opt *opts, size_t n, struct vf_err *err)
{
	for (size_t i = 0; i < n; i++) {
		const char *k = opts[i].key, *v = opts[i].value;
		size_t j;

		for (j = 0; vol_known_opts[j]; j++)
			if (k && strcmp(k, vol_known_opts[j]) == 0)
				break;
		if (vol_known_opts[j] == NULL)
			return vf_err_set(err, VF_EINVAL,
			                  "volume %s: unknown option '%.60s' (known: size, mode, "
			                  "uid, gid, fileserver)",
			                  name, k ? k : "(null)");
		for (size_t m = 0; m < i; m++)
			if (strcmp(opts[m].key, k) == 0)
				return vf_err_set(err, VF_EINVAL,
				                  "volume %s: option %s given twice", name, k);
		if (v == NULL)
			v = "";
		if (strcmp(k, "size") == 0 && !vol_is_uint(v, "KMGTkmgt"))
			return vf_err_set(
			        err, VF_EINVAL,
			        "volume %s: size '%.60s' is not a number with an optional "
			        "K/M/G/T suffix",
			        name, v);
		if (strcmp(k, "mode") == 0 && strcmp(v, "rw") != 0 && strcmp(v, "ro") != 0)
			return vf_err_set(err, VF_EINVAL, "volume %s: mode '%.60s' is not rw or ro",
			                  name, v);
		if ((strcmp(k, "uid") == 0 || strcmp(k, "gid") == 0) && !vol_is_uint(v, NULL))
			return vf_err_set(err, VF_EINVAL, "volume %s: %s '%.60s' is not a number",
			                  name, k, v);
		if (strcmp(k, "fileserver") == 0 && v[0] == '\0')
			return vf_err_set(err, VF_EINVAL, "volume %s: fileserver is empty", name);
	}
	return VF_OK;
}

void vf_vol_key(const struct vf_ctx *ctx, char *buf, size_t size, int family, const char *vol)
{
	snprintf(buf, size, "%s%s/%s", ctx->prefix, vf_vol_family[family], vol);
}

static void vol_client_key(const struct vf_ctx *ctx, char *buf, size_t size, const char *vol,
                           const char *node)
{
	snprintf(buf, size, "%sclient/%s/%s", ctx->prefix, vol, node ? node : "");
}

void vf_vol_lock_name(const struct vf_ctx *ctx, char *buf, size_t size, const char *which,
                      const char *vol)
{
	snprintf(buf, size, "%slock/%s/%s", ctx->prefix, which, vol);
}

int64_t vf_vol_num(const struct vf_kv_result *r)
{
	if (r == NULL || !r->found || r->pair.value == NULL)
		return 0;
	return strtoll(r->pair.value, NULL, 10);
}

int vf_vol_need(const struct vf_ctx *ctx, const void *slot, const char *what, struct vf_err *err)
{
	if (slot)
		return VF_OK;
	return vf_err_set(err, VF_ENOTSUP, "backend %s does not support %s", ctx->kv->ops->name,
	                  what);
}

void vf_vol_server_value(struct vf_ctx *ctx, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s", ctx->node_id, ctx->lease_id);
}

static int vol_res_is(const struct vf_kv_result *r, const char *s)
{
	return r->found && r->pair.value && strcmp(r->pair.value, s) == 0;
}

/* ---- JSON documents ---- */
static int vol_info_gen(const char *vol, const struct vf_opt *opts, size_t nopts, yajl_val optv,
                        const char *node, const char *addr, int port, char **out_r,
                        struct vf_err *err)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc;

	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "volume %s: out of memory", vol);
	yajl_gen_map_open(g);
	vf_jgen_str(g, "name");
	vf_jgen_str(g, vol);
	vf_jgen_str(g, "options");
	yajl_gen_map_open(g);
	for (size_t i = 0; i < nopts; i++) {
		vf_jgen_str(g, opts[i].key);
		vf_jgen_str(g, opts[i].value ? opts[i].value : "");
	}
	if (optv && YAJL_IS_OBJECT(optv))
		for (size_t i = 0; i < optv->u.object.len; i++) {
			const char *s = vf_json_str(optv->u.object.values[i]);

			vf_jgen_str(g, optv->u.object.keys[i]);
			vf_jgen_str(g, s ? s : "");
		}
	yajl_gen_map_close(g);
	if (node) {
		vf_jgen_str(g, "server");
		yajl_gen_map_open(g);
		vf_jgen_str(g, "node");
		vf_jgen_str(g, node);
		vf_jgen_str(g, "addr");
		vf_jgen_str(g, addr ? addr : "");
		vf_jgen_str(g, "port");
		vf_jgen_int(g, port);
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
	rc = vf_jgen_finish(g, out_r, NULL, err);
	yajl_gen_free(g);
	return rc;
}

int vf_vol_info_with_server(const char *vol, const char *info, const char *node, const char *addr,
                            int port, char **out_r, struct vf_err *err)
{
	yajl_val t = NULL;
	int rc;

	if (info && info[0] && vf_json_parse(info, strlen(info), &t, NULL) != VF_OK)
		vf_log(VF_LOG_WARN, "volume %s: info is not JSON; options dropped", vol);
	rc = vol_info_gen(vol, NULL, 0, t ? vf_json_get(t, "options", NULL) : NULL, node, addr,
	                  port, out_r, err);
	yajl_tree_free(t);
	return rc;
}

/* The mount ids in a client/<vol>/<node> value. */
struct vol_ids {
	char **v;
	size_t n;
};

static void vol_ids_free(struct vol_ids *ids)
{
	vf_strv_free(ids->v, ids->n);
	ids->v = NULL;
	ids->n = 0;
}

static int vol_ids_parse(const char *vol, const struct vf_kv_result *r, struct vol_ids *ids)
{
	yajl_val t = NULL, a;
	int rc = VF_OK;

	ids->v = NULL;
	ids->n = 0;
	if (!r->found)
		return VF_OK;
	if (vf_json_parse(r->pair.value, r->pair.value_len, &t, NULL) != VF_OK) {
		/* a value written by hand or by an older version: one anonymous mount */
		vf_log(VF_LOG_WARN, "volume %s: client value of %s is not JSON", vol, r->pair.key);
		ids->v = calloc(1, sizeof(char *));
		if (ids->v && (ids->v[0] = strdup("?")) != NULL)
			ids->n = 1;
		return ids->n ? VF_OK : VF_ENOMEM;
	}
	a = vf_json_get(t, "ids", NULL);
	if (a && YAJL_IS_ARRAY(a) && a->u.array.len) {
		ids->v = calloc(a->u.array.len, sizeof(char *));
		if (ids->v == NULL)
			rc = VF_ENOMEM;
		for (size_t i = 0; rc == VF_OK && i < a->u.array.len; i++) {
			const char *s = vf_json_str(a->u.array.values[i]);

			if ((ids->v[ids->n] = strdup(s ? s : "?")) == NULL)
				rc = VF_ENOMEM;
			else
				ids->n++;
		}
	}
	yajl_tree_free(t);
	return rc;
}

static int vol_ids_find(const struct vol_ids *ids, const char *id)
{
	for (size_t i = 0; i < ids->n; i++)
		if (strcmp(ids->v[i], id) == 0)
			return (int)i;
	return -1;
}

/* Another mount id of this host: rewrite client/<vol>/<node> (as read at mod_rev)
 * and release the gref lock, in one txn fenced by that lock. gref is unchanged. */
static int vol_client_rewrite(struct vf_ctx *ctx, struct vf_kv_lock *lk, const char *key,
                              int64_t mod_rev, const char *cval, struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_cmp c[] = {{.kind = VF_CMP_LOCK_HELD, .lock = lk},
	                        {.kind = VF_CMP_VERSION_EQ, .key = key, .mod_rev = mod_rev}};
	struct vf_kv_op o[] = {
	        {.kind = VF_OP_PUT, .key = key, .value = cval, .value_len = strlen(cval)},
	        {.kind = VF_OP_UNLOCK, .lock = lk}};

	return kv->ops->txn(kv, c, 2, o, 2, NULL, err);
}

/* The client value: ids with add appended and skip left out. */
static int vol_client_value(struct vf_ctx *ctx, const struct vol_ids *ids, const char *add,
                            const char *skip, char **out_r, struct vf_err *err)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc;

	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	yajl_gen_map_open(g);
	vf_jgen_str(g, "addr");
	vf_jgen_str(g, ctx->node_addr);
	vf_jgen_str(g, "ids");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < ids->n; i++)
		if (skip == NULL || strcmp(ids->v[i], skip) != 0)
			vf_jgen_str(g, ids->v[i]);
	if (add)
		vf_jgen_str(g, add);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	rc = vf_jgen_finish(g, out_r, NULL, err);
	yajl_gen_free(g);
	return rc;
}

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
#define VOL_MEMO_N 64
#define VOL_MEMO_ID 128
struct vol_memo {
	char vol[VF_VOLUME_NAME_MAX + 1];
	int valid;  /* the versions below are this host's last view */
	int missed; /* the last guess failed: wait for a quiet locked op */
	int64_t state_rev, gref, gref_rev, client_rev, info_rev, server_rev;
	char id[VOL_MEMO_ID]; /* the host's one mount id when client_rev != 0 */
	char *info;           /* the info value (what a local mount needs) */
	unsigned long used;
};

static void vol_memo_free(struct vf_ctx *ctx)
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
static int vol_memo_get(struct vf_ctx *ctx, const char *vol, struct vol_memo *m_r)
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
static void vol_memo_drop(struct vf_ctx *ctx, const char *vol, int missed)
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
static void vol_memo_put(struct vf_ctx *ctx, const struct vol_memo *nm, int64_t seen_gref_rev)
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
static void vol_memo_unmounted(struct vf_ctx *ctx, const char *vol, int64_t g, int64_t gref_rev,
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

static void vol_converge_startup(struct vf_ctx *ctx);
static void *ctx_converge_thread(void *arg);
static void vol_pend_free(struct vf_ctx *ctx);

int vf_ctx_new(struct vf_kv *kv, const struct vf_ctx_cfg *cfg, struct vf_ctx **ctx_r,
               struct vf_err *err)
{
	struct vf_ctx *ctx;
	int rc;

	*ctx_r = NULL;
	if (kv == NULL || cfg == NULL || cfg->node_id == NULL || cfg->node_id[0] == '\0' ||
	    strchr(cfg->node_id, '/'))
		return vf_err_set(err, VF_EINVAL,
		                  "volume manager: a node_id without '/' is needed");
	if (kv->ops->lock == NULL || kv->ops->txn == NULL || kv->ops->lease_grant == NULL ||
	    kv->ops->watch_start == NULL || kv->ops->list == NULL || kv->ops->get == NULL)
		return vf_err_set(err, VF_ENOTSUP,
		                  "volume manager: backend %s lacks locks, txn, leases, watch or "
		                  "list",
		                  kv->ops->name);
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return vf_err_set(err, VF_ENOMEM, "volume manager: out of memory");
	ctx->kv = kv;
	ctx->node_id = strdup(cfg->node_id);
	ctx->node_addr = strdup(cfg->node_addr ? cfg->node_addr : "");
	ctx->prefix = strdup(cfg->prefix && cfg->prefix[0] ? cfg->prefix : "vfile/");
	ctx->mount_root = strdup(cfg->mount_root ? cfg->mount_root : "/var/lib/vfile/mounts");
	ctx->manager = cfg->manager;
	ctx->lease_ttl_s = cfg->lease_ttl_s > 0 ? cfg->lease_ttl_s : 10;
	if (ctx->lease_ttl_s < kv->min_lease_ttl_s)
		ctx->lease_ttl_s = kv->min_lease_ttl_s;
	ctx->op_timeout_ms = cfg->op_timeout_ms > 0 ? cfg->op_timeout_ms : 30000;
	ctx->reconcile_ms = cfg->reconcile_ms > 0 ? cfg->reconcile_ms : 5000;
	ctx->evict_after_s = cfg->evict_after_s > 0 ? cfg->evict_after_s : 0;
	ctx->started_s = (int64_t)time(NULL);
	ctx->fs = cfg->fs;
	ctx->fs_arg = cfg->fs_arg;
	pthread_rwlock_init(&ctx->lease_rw, NULL);
	pthread_mutex_init(&ctx->mu, NULL);
	pthread_mutex_init(&ctx->mgr_mu, NULL);
	vf_cond_init(&ctx->cv);
	vf_cond_init(&ctx->local_cv);
	vf_cond_init(&ctx->conv_cv);
	if (!ctx->node_id || !ctx->node_addr || !ctx->prefix || !ctx->mount_root) {
		rc = vf_err_set(err, VF_ENOMEM, "volume manager: out of memory");
		goto fail;
	}
	rc = vf_ctx_grant(ctx, err);
	if (rc != VF_OK)
		goto fail;
	if (pthread_create(&ctx->lease_thr, NULL, vf_ctx_lease_thread, ctx) != 0) {
		rc = vf_err_set(err, VF_ENOMEM, "volume manager: cannot start the lease thread");
		goto fail;
	}
	ctx->lease_thr_started = 1;
	/* this host's records against its real mounts, then the thread that
	 * retries releases the store did not take */
	vol_converge_startup(ctx);
	if (pthread_create(&ctx->conv_thr, NULL, ctx_converge_thread, ctx) != 0) {
		rc = vf_err_set(err, VF_ENOMEM, "volume manager: cannot start the converge thread");
		goto fail;
	}
	ctx->conv_started = 1;
	*ctx_r = ctx;
	return VF_OK;
fail:
	vf_ctx_free(&ctx);
	return rc;
}

void vf_ctx_free(struct vf_ctx **ctxp)
{
	struct vf_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	pthread_mutex_lock(&ctx->mgr_mu);
	if (ctx->mgr)
		ctx->mgr_hooks->stop(ctx);
	pthread_mutex_unlock(&ctx->mgr_mu);
	pthread_mutex_lock(&ctx->mu);
	ctx->stopping = 1;
	pthread_cond_broadcast(&ctx->cv);
	pthread_cond_broadcast(&ctx->conv_cv);
	pthread_mutex_unlock(&ctx->mu);
	if (ctx->conv_started)
		pthread_join(ctx->conv_thr, NULL);
	if (ctx->lease_thr_started)
		pthread_join(ctx->lease_thr, NULL);
	if (ctx->lease)
		ctx->kv->ops->lease_revoke(ctx->kv, &ctx->lease, NULL);
	vf_metrics_gauge_set(VF_G_LEASE_HELD, 0);
	while (ctx->locals) {
		struct vol_local *l = ctx->locals;

		ctx->locals = l->next;
		free(l);
	}
	while (ctx->dirty) {
		struct vol_dirty *d = ctx->dirty;

		ctx->dirty = d->next;
		free(d);
	}
	vol_pend_free(ctx);
	vf_node_gone_free(&ctx->gone);
	vf_strv_free(ctx->mounted, ctx->nmounted);
	vol_memo_free(ctx);
	pthread_rwlock_destroy(&ctx->lease_rw);
	pthread_mutex_destroy(&ctx->mu);
	pthread_mutex_destroy(&ctx->mgr_mu);
	pthread_cond_destroy(&ctx->cv);
	pthread_cond_destroy(&ctx->local_cv);
	pthread_cond_destroy(&ctx->conv_cv);
	free(ctx->node_id);
	free(ctx->node_addr);
	free(ctx->prefix);
	free(ctx->mount_root);
	free(ctx);
	*ctxp = NULL;
}

/* ---- locally mounted volumes ---- */
static int vol_local_mounted(struct vf_ctx *ctx, const char *vol)
{
	int r = 0;

	pthread_mutex_lock(&ctx->mu);
	for (size_t i = 0; i < ctx->nmounted; i++)
		r |= strcmp(ctx->mounted[i], vol) == 0;
	pthread_mutex_unlock(&ctx->mu);
	return r;
}

static void vol_local_set(struct vf_ctx *ctx, const char *vol, int on)
{
	pthread_mutex_lock(&ctx->mu);
	for (size_t i = 0; i < ctx->nmounted; i++)
		if (strcmp(ctx->mounted[i], vol) == 0) {
			if (!on) {
				free(ctx->mounted[i]);
				ctx->mounted[i] = ctx->mounted[--ctx->nmounted];
				vf_metrics_gauge_set(VF_G_LOCAL_MOUNTS, (int64_t)ctx->nmounted);
			}
			pthread_mutex_unlock(&ctx->mu);
			return;
		}
	if (on) {
		char **v = realloc(ctx->mounted, (ctx->nmounted + 1) * sizeof(*v));

		if (v) {
			ctx->mounted = v;
			if ((v[ctx->nmounted] = strdup(vol)) != NULL)
				ctx->nmounted++;
		}
	}
	vf_metrics_gauge_set(VF_G_LOCAL_MOUNTS, (int64_t)ctx->nmounted);
	pthread_mutex_unlock(&ctx->mu);
}

static vf_vol_probe_fn vol_probe_hook;

void vf_vol_mount_probe_set(vf_vol_probe_fn fn)
{
	vol_probe_hook = fn;
}

/* Is vol mounted at path here: 1, 0, -1 cannot tell (see vf_vol_probe_fn). */
static int vol_probe(struct vf_ctx *ctx, const char *vol, const char *path)
{
	if (vol_probe_hook)
		return vol_probe_hook(ctx->fs_arg, vol, path);
	if (ctx->fs && ctx->fs->mounted)
		return ctx->fs->mounted(ctx->fs_arg, vol, path);
	return -1;
}

/* Is vol mounted here? The mount table when the driver can tell (it survives a
 * restart of this process), else what this process did. */
static int vol_mounted_here(struct vf_ctx *ctx, const char *vol, const char *path)
{
	int p = vol_probe(ctx, vol, path);

	return p >= 0 ? p : vol_local_mounted(ctx, vol);
}

/* Does the filesystem at path answer? statvfs reaches the server of a network
 * mount (stat may be answered from a cache); a dead FUSE daemon fails it. */
static int vol_mount_answers(const char *path)
{
	struct statvfs sv;

	return statvfs(path, &sv) == 0;
}

static int vol_fs_mount(struct vf_ctx *ctx, const char *vol, const char *info, const char *path,
                        struct vf_err *err)
{
	int rc;

	if (ctx->fs == NULL || ctx->fs->mount == NULL)
		return vf_err_set(err, VF_ENOTSUP, "volume %s: no file-server mount hook", vol);
	if (mkdir(path, 0755) != 0 && errno != EEXIST && errno != ENOENT)
		vf_log(VF_LOG_WARN, "volume %s: mkdir %s: %s", vol, path, strerror(errno));
	rc = ctx->fs->mount(ctx->fs_arg, vol, info, path, err);
	if (rc != VF_OK)
		return vf_err_prefix(err, "volume %s: local mount at %s failed", vol, path);
	vol_local_set(ctx, vol, 1);
	return VF_OK;
}

static int vol_fs_unmount(struct vf_ctx *ctx, const char *vol, const char *path, struct vf_err *err)
{
	int rc = VF_OK;

	if (ctx->fs && ctx->fs->unmount)
		rc = ctx->fs->unmount(ctx->fs_arg, vol, path, err);
	if (rc != VF_OK)
		return vf_err_prefix(err, "volume %s: local unmount of %s failed", vol, path);
	vol_local_set(ctx, vol, 0);
	return VF_OK;
}

/* ---- waiting for the state, with a watch ---- */
struct vol_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *key;
	int changed;
};

static int vol_wait_cb(const struct vf_kv_event *ev, void *arg)
{
	struct vol_wait *w = arg;

	if (ev->type == VF_EV_RESYNC || strcmp(ev->key, w->key) == 0) {
		pthread_mutex_lock(&w->mu);
		w->changed = 1;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
	return 0;
}

enum { R_STATE = 0, R_GREF, R_CLIENT, R_INFO, R_TRIG, R_SERVER, R_N };

/* Wait until state/<vol> is Mounted with a live server (bounded by deadline);
 * then rr[R_STATE], rr[R_GREF], rr[R_INFO], rr[R_SERVER] hold fresh reads. */
static int vol_wait_mounted(struct vf_ctx *ctx, const char *vol, char keys[R_N][512],
                            int64_t after_rev, int64_t bumped, int64_t deadline,
                            struct vf_kv_result *rr, int *retry_r, struct vf_err *err)
{
	char kmark[512], kclaim[512];
	struct vol_wait w = {.key = keys[R_STATE]};
	struct vf_kv_watch *watch = NULL;
	int rc;

	vf_vol_key(ctx, kmark, sizeof(kmark), VK_START_MARKER, vol);
	vf_vol_key(ctx, kclaim, sizeof(kclaim), VK_START_CLAIM, vol);
	pthread_mutex_init(&w.mu, NULL);
	vf_cond_init(&w.cv);
	rc = ctx->kv->ops->watch_start(ctx->kv, keys[R_STATE], after_rev, vol_wait_cb, &w, &watch,
	                               err);
	if (rc == VF_OK) {
		pthread_mutex_lock(&ctx->mu);
		ctx->nwaits++;
		pthread_mutex_unlock(&ctx->mu);
	}
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot watch %s", vol, keys[R_STATE]);
		goto out;
	}
	for (;;) {
		struct vf_kv_op ops[] = {{.kind = VF_OP_GET, .key = keys[R_STATE]},
		                         {.kind = VF_OP_GET, .key = keys[R_GREF]},
		                         {.kind = VF_OP_GET, .key = keys[R_INFO]},
		                         {.kind = VF_OP_GET, .key = keys[R_SERVER]},
		                         {.kind = VF_OP_GET, .key = kmark},
		                         {.kind = VF_OP_GET, .key = kclaim}};
		struct vf_kv_txn_result res = {0};
		int64_t left;

		pthread_mutex_lock(&w.mu);
		w.changed = 0;
		pthread_mutex_unlock(&w.mu);
		rc = ctx->kv->ops->txn(ctx->kv, NULL, 0, ops, 6, &res, err);
		if (rc == VF_OK && res.count == 6) {
			if (!res.results[0].found) {
				rc = vf_err_set(err, VF_ENOTFOUND,
				                "volume %s was removed while mounting", vol);
			} else if (vol_res_is(&res.results[0], "Mounted") && res.results[3].found) {
				int idx[] = {R_STATE, R_GREF, R_INFO, R_SERVER};

				for (int i = 0; i < 4; i++) {
					vf_kv_results_clear(&rr[idx[i]], 1);
					rr[idx[i]] = res.results[i];
					memset(&res.results[i], 0, sizeof(res.results[i]));
				}
				vf_kv_txn_result_clear(&res);
				goto out;
			} else if (vf_vol_num(&res.results[4]) >= bumped &&
			           (!res.results[5].found ||
			            strncmp(res.results[5].pair.value, "done ", 5) == 0)) {
				/* our start was handled, then the state went back to Ready (a
				 * stop that was already under way): ask again */
				*retry_r = 1;
				rc = vf_err_set(err, VF_ECONFLICT,
				                "volume %s: stopped again while mounting", vol);
			}
		} else if (rc == VF_EUNAVAIL || rc == VF_EUNCERTAIN) {
			rc = VF_OK; /* a read: try again on the next wake-up */
		}
		vf_kv_txn_result_clear(&res);
		if (rc != VF_OK)
			goto out;
		left = deadline - vf_now_ms();
		if (left <= 0) {
			rc = vf_err_set(err, VF_ETIMEDOUT,
			                "volume %s: no file server came up within %d ms", vol,
			                ctx->op_timeout_ms);
			goto out;
		}
		pthread_mutex_lock(&w.mu);
		if (!w.changed) {
			int64_t step =
			        left < 1000 ? left : 1000; /* also re-reads after a lost store */

			vf_cond_wait_ms(&w.cv, &w.mu, step);
		}
		pthread_mutex_unlock(&w.mu);
	}
out:
	if (watch) {
		ctx->kv->ops->watch_stop(ctx->kv, &watch);
		pthread_mutex_lock(&ctx->mu);
		ctx->nwaits--;
		pthread_mutex_unlock(&ctx->mu);
	}
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

/* Bump a trigger counter under the held gref lock (fenced). */
static int vol_bump(struct vf_ctx *ctx, struct vf_kv_lock *lk, const char *key,
                    const struct vf_kv_result *cur, int64_t *rev_r, struct vf_err *err)
{
	char val[32];
	struct vf_kv_cmp c[] = {{.kind = VF_CMP_LOCK_HELD, .lock = lk},
	                        {.kind = VF_CMP_VERSION_EQ,
	                         .key = key,
	                         .mod_rev = cur->found ? cur->pair.mod_rev : 0}};
	struct vf_kv_op op = {.kind = VF_OP_PUT, .key = key, .value = val};
	struct vf_kv_txn_result res = {0};
	int rc;

	op.value_len = (size_t)snprintf(val, sizeof(val), "%" PRId64, vf_vol_num(cur) + 1);
	rc = ctx->kv->ops->txn(ctx->kv, c, 2, &op, 1, &res, err);
	if (rc == VF_OK && rev_r)
		*rev_r = res.revision;
	vf_kv_txn_result_clear(&res);
	return rc;
}

static int64_t vol_left(int64_t deadline)
{
	int64_t l = deadline - vf_now_ms();

	return l > 0 ? l : 1;
}

/* Is mount_id in the client value now? (resolves an uncertain final txn) */
static int vol_client_has(struct vf_ctx *ctx, const char *vol, const char *key, const char *id,
                          int *has_r)
{
	struct vf_kv_result r = {0};
	struct vol_ids ids;
	int rc = ctx->kv->ops->get(ctx->kv, key, &r.pair, NULL);

	if (rc == VF_ENOTFOUND) {
		*has_r = 0;
		return VF_OK;
	}
	if (rc != VF_OK)
		return rc;
	r.found = 1;
	rc = vol_ids_parse(vol, &r, &ids);
	*has_r = rc == VF_OK && vol_ids_find(&ids, id) >= 0;
	vol_ids_free(&ids);
	vf_kv_results_clear(&r, 1);
	return rc;
}

#define VOL_LOCKED 1 /* an elided operation did not happen: go the locked way */

/* Remember what a mount of vol by id saw (rr as read, the txn's results) */
static void vol_memo_mounted(struct vf_ctx *ctx, const char *vol, const char *id,
                             const struct vf_kv_result *rr, int64_t gref,
                             const struct vf_kv_txn_result *tr)
{
	struct vol_memo m = {0};

	if (tr->count < 2 || !rr[R_INFO].found || !rr[R_SERVER].found ||
	    strlen(id) >= sizeof(m.id)) {
		vol_memo_drop(ctx, vol, 0);
		return;
	}
	snprintf(m.vol, sizeof(m.vol), "%s", vol);
	snprintf(m.id, sizeof(m.id), "%s", id);
	m.valid = 1;
	m.state_rev = rr[R_STATE].pair.mod_rev;
	m.gref = gref;
	m.gref_rev = tr->results[0].pair.mod_rev;
	m.client_rev = tr->results[1].pair.mod_rev;
	m.info_rev = rr[R_INFO].pair.mod_rev;
	m.server_rev = rr[R_SERVER].pair.mod_rev;
	m.info = rr[R_INFO].pair.value;
	vol_memo_put(ctx, &m, rr[R_GREF].found ? rr[R_GREF].pair.mod_rev : 0);
}

/* The first mount of vol on this host as one txn (see vol_memo): mount with
 * the info remembered, then gref+1 and the client key, guarded by "no gref
 * lock holder" and the versions of state, gref, client (absent), info and
 * server. VOL_LOCKED when there is nothing to go on or the txn did not commit
 * (the local mount undone: the locked path finds the id counted if an
 * uncertain txn did land). */
static int vol_mount_elided(struct vf_ctx *ctx, const char *vol, const char *id, const char *path,
                            char keys[R_N][512], struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_txn_result tr = {0};
	struct vol_ids none = {0};
	struct vol_memo m;
	struct vf_err e2 = {0};
	char lname[512], gval[32], *cval = NULL;
	int rc;

	if (!vol_memo_get(ctx, vol, &m))
		return VOL_LOCKED;
	if (m.client_rev != 0) { /* another id of this host: the locked way adds it */
		free(m.info);
		return VOL_LOCKED;
	}
	if (vol_mounted_here(ctx, vol, path) ||
	    vol_fs_mount(ctx, vol, m.info, path, &e2) != VF_OK) {
		vol_memo_drop(ctx, vol, 0); /* the locked way reads info afresh */
		free(m.info);
		return VOL_LOCKED;
	}
	if (vf_failpoint_hit("vol.mount_before_txn", vol)) {
		rc = vf_err_set(err, VF_EUNAVAIL, "volume %s: failpoint vol.mount_before_txn", vol);
		goto undo;
	}
	vf_vol_lock_name(ctx, lname, sizeof(lname), "gref", vol);
	snprintf(gval, sizeof(gval), "%" PRId64, m.gref + 1);
	rc = vol_client_value(ctx, &none, id, NULL, &cval, err);
	if (rc == VF_OK) {
		struct vf_kv_cmp c[] = {
		        {.kind = VF_CMP_LOCK_FREE, .key = lname},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[R_STATE], .mod_rev = m.state_rev},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[R_GREF], .mod_rev = m.gref_rev},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[R_CLIENT], .mod_rev = 0},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[R_INFO], .mod_rev = m.info_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_SERVER],
		         .mod_rev = m.server_rev}};
		struct vf_kv_op o[] = {{.kind = VF_OP_PUT,
		                        .key = keys[R_GREF],
		                        .value = gval,
		                        .value_len = strlen(gval)},
		                       {.kind = VF_OP_PUT,
		                        .key = keys[R_CLIENT],
		                        .value = cval,
		                        .value_len = strlen(cval)}};

		rc = kv->ops->txn(kv, c, 6, o, 2, &tr, err);
	}
	if (rc == VF_OK && tr.count == 2) {
		snprintf(m.id, sizeof(m.id), "%s", id);
		m.gref++;
		m.gref_rev = tr.results[0].pair.mod_rev;
		m.client_rev = tr.results[1].pair.mod_rev;
		m.valid = strlen(id) < sizeof(m.id);
		vol_memo_put(ctx, &m, -1);
		goto out;
	}
	rc = VOL_LOCKED;
undo:
	vol_memo_drop(ctx, vol, 1);
	if (vol_fs_unmount(ctx, vol, path, &e2) != VF_OK)
		vf_log(VF_LOG_ERR, "%s", e2.msg);
out:
	vf_kv_txn_result_clear(&tr);
	free(cval);
	free(m.info);
	return rc;
}

static int vol_mount_once(struct vf_ctx *ctx, const char *vol, const char *id, const char *path,
                          int64_t deadline, int *retry_r, struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_lease *lease = vf_ctx_lease_get(ctx);
	char keys[R_N][512], gval[32];
	const char *reads[R_N];
	struct vf_kv_result rr[R_N];
	struct vf_kv_lock *lk = NULL;
	struct vf_kv_txn_result tr = {0};
	struct vol_ids ids = {0};
	char *cval = NULL;
	int rc, mounted_here = 0;

	memset(rr, 0, sizeof(rr));
	*retry_r = 0;
	vf_vol_key(ctx, keys[R_STATE], 512, VK_STATE, vol);
	vf_vol_key(ctx, keys[R_GREF], 512, VK_GREF, vol);
	vol_client_key(ctx, keys[R_CLIENT], 512, vol, ctx->node_id);
	vf_vol_key(ctx, keys[R_INFO], 512, VK_INFO, vol);
	vf_vol_key(ctx, keys[R_TRIG], 512, VK_START_TRIGGER, vol);
	vf_vol_key(ctx, keys[R_SERVER], 512, VK_SERVER, vol);
	for (int i = 0; i < R_N; i++)
		reads[i] = keys[i];
	rc = vol_mount_elided(ctx, vol, id, path, keys, err);
	if (rc != VOL_LOCKED)
		goto out;
	rc = vf_vol_lock(ctx, lease, "gref", vol, (int)vol_left(deadline), reads, R_N, rr, &lk,
	                 err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot take the gref lock", vol);
		goto out;
	}
	if (!rr[R_STATE].found) {
		rc = vf_err_set(err, VF_ENOTFOUND, "volume %s does not exist", vol);
		goto out;
	}
	rc = vol_ids_parse(vol, &rr[R_CLIENT], &ids);
	if (rc != VF_OK)
		goto out;
	if (ids.n > 0) {
		/* this host already holds the global reference: its mount must also
		 * answer (a dead FUSE mount is in the table but fails with ENOTCONN;
		 * the driver's mount drops and remounts it) */
		if (!vol_mounted_here(ctx, vol, path) || !vol_mount_answers(path)) {
			rc = vol_fs_mount(ctx, vol, rr[R_INFO].pair.value, path, err);
			if (rc != VF_OK)
				goto out;
		}
		if (vol_ids_find(&ids, id) >= 0)
			goto out; /* this id is already counted */
		if (ids.n >= VOL_IDS_MAX) {
			rc = vf_err_set(
			        err, VF_ELIMIT,
			        "volume %s: this host already holds %zu mount ids (limit %d): "
			        "unmount some first",
			        vol, ids.n, VOL_IDS_MAX);
			goto out;
		}
		rc = vol_client_value(ctx, &ids, id, NULL, &cval, err);
		if (rc != VF_OK)
			goto out;
		vol_memo_drop(ctx, vol, 0);
		rc = vol_client_rewrite(ctx, lk, keys[R_CLIENT], rr[R_CLIENT].pair.mod_rev, cval,
		                        err);
		if (rc == VF_EUNCERTAIN) {
			int has = 0;

			if (vol_client_has(ctx, vol, keys[R_CLIENT], id, &has) == VF_OK && has)
				rc = VF_OK;
		}
		if (rc != VF_OK)
			vf_err_prefix(err, "volume %s: cannot add mount id %s", vol, id);
		goto out;
	}
	if (!vol_res_is(&rr[R_STATE], "Mounted") || !rr[R_SERVER].found) {
		int64_t rev = 0;

		rc = vol_bump(ctx, lk, keys[R_TRIG], &rr[R_TRIG], &rev, err);
		if (rc != VF_OK) {
			vf_err_prefix(err, "volume %s: cannot bump %s", vol, keys[R_TRIG]);
			goto out;
		}
		rc = vol_wait_mounted(ctx, vol, keys, rev, vf_vol_num(&rr[R_TRIG]) + 1, deadline,
		                      rr, retry_r, err);
		if (rc == VF_ETIMEDOUT) {
			/* a server that comes up late must not run forever */
			struct vf_kv_result st = {0};
			char sk[512];

			vf_vol_key(ctx, sk, sizeof(sk), VK_STOP_TRIGGER, vol);
			if (kv->ops->get(kv, sk, &st.pair, NULL) == VF_OK)
				st.found = 1;
			vol_bump(ctx, lk, sk, &st, NULL, NULL);
			vf_kv_results_clear(&st, 1);
		}
		if (rc != VF_OK)
			goto out;
	}
	rc = vol_fs_mount(ctx, vol, rr[R_INFO].pair.value, path, err);
	if (rc != VF_OK) {
		/* a stop may have taken the server away since the read: then go again */
		struct vf_kv_pair p = {0};

		if (kv->ops->get(kv, keys[R_SERVER], &p, NULL) != VF_OK ||
		    strcmp(p.value, rr[R_SERVER].pair.value) != 0)
			*retry_r = 1;
		vf_kv_pair_clear(&p);
		goto out;
	}
	mounted_here = 1;
	if (vf_failpoint_hit("vol.mount_before_txn", vol)) {
		rc = vf_err_set(err, VF_EUNAVAIL, "volume %s: failpoint vol.mount_before_txn", vol);
		goto out;
	}
	rc = vol_client_value(ctx, &ids, id, NULL, &cval, err);
	if (rc != VF_OK)
		goto out;
	snprintf(gval, sizeof(gval), "%" PRId64, vf_vol_num(&rr[R_GREF]) + 1);
	{
		/* state and server/ by the versions read (Mounted, with a server):
		 * a stop and a new start in between write "Mounted" again, and the
		 * local mount made above would be counted on the stopped server */
		struct vf_kv_cmp c[] = {
		        {.kind = VF_CMP_LOCK_HELD, .lock = lk},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_STATE],
		         .mod_rev = rr[R_STATE].pair.mod_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_SERVER],
		         .mod_rev = rr[R_SERVER].pair.mod_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_GREF],
		         .mod_rev = rr[R_GREF].found ? rr[R_GREF].pair.mod_rev : 0},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[R_CLIENT],
		         .mod_rev = rr[R_CLIENT].found ? rr[R_CLIENT].pair.mod_rev : 0}};
		struct vf_kv_op o[] = {{.kind = VF_OP_PUT,
		                        .key = keys[R_GREF],
		                        .value = gval,
		                        .value_len = strlen(gval)},
		                       {.kind = VF_OP_PUT,
		                        .key = keys[R_CLIENT],
		                        .value = cval,
		                        .value_len = strlen(cval)},
		                       {.kind = VF_OP_UNLOCK, .lock = lk}};

		rc = kv->ops->txn(kv, c, 5, o, 3, &tr, err);
	}
	if (rc == VF_OK)
		vol_memo_mounted(ctx, vol, id, rr, vf_vol_num(&rr[R_GREF]) + 1, &tr);
	else
		vol_memo_drop(ctx, vol, 0);
	vf_kv_txn_result_clear(&tr);
	if (rc == VF_ECONFLICT) {
		/* the state or the server changed under us (a stop won, maybe a
		 * new start too): undo, go again */
		vf_log(VF_LOG_INFO,
		       "volume %s: state changed before the reference was taken; "
		       "retrying",
		       vol);
		*retry_r = 1;
	} else if (rc == VF_EUNCERTAIN) {
		int has = 0;

		if (vol_client_has(ctx, vol, keys[R_CLIENT], id, &has) == VF_OK && has) {
			rc = VF_OK;
			mounted_here = 0;
		}
	}
	if (rc == VF_OK)
		mounted_here = 0;
	else
		vf_err_prefix(err, "volume %s: cannot take the global reference", vol);
out:
	if (mounted_here) {
		struct vf_err e2 = {0};

		if (vol_fs_unmount(ctx, vol, path, &e2) != VF_OK)
			vf_log(VF_LOG_ERR, "%s", e2.msg);
	}
	vf_vol_unlock(ctx, lease, "gref", vol, &lk);
	if (rc == VF_ELEASE && lease)
		vf_ctx_lease_gone(ctx, lease); /* a fenced txn found the lease gone */
	vf_kv_results_clear(rr, R_N);
	vol_ids_free(&ids);
	free(cval);
	vf_ctx_lease_put(ctx);
	return rc;
}

static int vol_pend_cancel(struct vf_ctx *ctx, const char *vol, const char *id);
static void vol_pend_add(struct vf_ctx *ctx, const char *vol, const char *id, int local_done);
static int vol_conv_retryable(int rc);

int vf_volume_mount(struct vf_ctx *ctx, const char *name, const char *mount_id, char **path_r,
                    struct vf_err *err)
{
	int64_t deadline = vf_now_ms() + ctx->op_timeout_ms;
	struct vf_buf path = {0};
	int rc, retry, pend;

	if (path_r)
		*path_r = NULL;
	if ((rc = vol_check_name(name, err)) != VF_OK)
		return rc;
	if (mount_id == NULL || mount_id[0] == '\0')
		return vf_err_set(err, VF_EINVAL, "volume %s: empty mount id", name);
	if (strlen(mount_id) > VOL_ID_MAX)
		return vf_err_set(err, VF_EINVAL,
		                  "volume %s: mount id too long (%zu bytes, limit %d)", name,
		                  strlen(mount_id), VOL_ID_MAX);
	if (vf_buf_printf(&path, "%s/%s", ctx->mount_root, name) != VF_OK)
		return vf_err_set(err, VF_ENOMEM, "volume %s: out of memory", name);
	vf_vol_local_enter(ctx, "gref", name, 0);
	/* mounted again: a release of this id still to be retried is void, unless
	 * this mount fails (below) */
	pend = vol_pend_cancel(ctx, name, mount_id);
	do {
		unsigned gen = vf_ctx_lease_gen(ctx);

		rc = vol_mount_once(ctx, name, mount_id, path.data, deadline, &retry, err);
		if (rc == VF_ELEASE) {
			/* the lease ended under us (nothing was counted): go again with
			 * the new one, within the same deadline */
			vf_ctx_lease_wait(ctx, gen, deadline);
			retry = 1;
		}
	} while (rc != VF_OK && retry && vf_now_ms() < deadline);
	/* the caller was told this id is unmounted, and now that it did not mount:
	 * the release it was promised still has to happen */
	if (rc != VF_OK && pend >= 0)
		vol_pend_add(ctx, name, mount_id, pend);
	vf_vol_local_leave(ctx, "gref", name);
	if (rc == VF_OK && path_r) {
		*path_r = path.data;
		path.data = NULL;
	}
	vf_buf_free(&path);
	return rc;
}

enum { U_STATE = 0, U_GREF, U_CLIENT, U_TRIG, U_N };

/* The unmount of this host's last mount id as one txn (see vol_memo), when
 * other hosts keep gref above 0 (no stop trigger to bump): unmount locally,
 * then gref-1 and the client key deleted, guarded by "no gref lock holder"
 * and the versions of gref and the client key. VOL_LOCKED when there is
 * nothing to go on or the txn did not commit (the locked path then reads
 * whether it did). */
static int vol_unmount_elided(struct vf_ctx *ctx, const char *name, const char *mount_id,
                              const char *path, char keys[U_N][512], int *unmounted, int *local_err,
                              struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_txn_result tr = {0};
	struct vol_memo m;
	char lname[512], gval[32];
	int rc;

	if (!vol_memo_get(ctx, name, &m))
		return VOL_LOCKED;
	if (m.client_rev == 0 || m.gref < 2 || strcmp(m.id, mount_id) != 0) {
		free(m.info);
		return VOL_LOCKED;
	}
	if (!*unmounted) {
		rc = vol_fs_unmount(ctx, name, path, err);
		if (rc != VF_OK) {
			*local_err = 1;
			free(m.info);
			return rc;
		}
		*unmounted = 1;
	}
	vf_vol_lock_name(ctx, lname, sizeof(lname), "gref", name);
	snprintf(gval, sizeof(gval), "%" PRId64, m.gref - 1);
	{
		struct vf_kv_cmp c[] = {
		        {.kind = VF_CMP_LOCK_FREE, .key = lname},
		        {.kind = VF_CMP_VERSION_EQ, .key = keys[U_GREF], .mod_rev = m.gref_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[U_CLIENT],
		         .mod_rev = m.client_rev}};
		struct vf_kv_op o[] = {{.kind = VF_OP_PUT,
		                        .key = keys[U_GREF],
		                        .value = gval,
		                        .value_len = strlen(gval)},
		                       {.kind = VF_OP_DELETE, .key = keys[U_CLIENT]}};

		rc = kv->ops->txn(kv, c, 3, o, 2, &tr, err);
	}
	if (rc == VF_OK && tr.count == 2) {
		m.gref--;
		m.gref_rev = tr.results[0].pair.mod_rev;
		m.client_rev = 0;
		m.id[0] = '\0';
		vol_memo_put(ctx, &m, -1);
	} else {
		vol_memo_drop(ctx, name, 1);
		rc = VOL_LOCKED;
	}
	vf_kv_txn_result_clear(&tr);
	free(m.info);
	return rc;
}

static int vol_unmount_once(struct vf_ctx *ctx, const char *name, const char *mount_id,
                            const char *path, int64_t deadline, int *unmounted, int *local_err,
                            struct vf_err *err)
{
	struct vf_kv *kv = ctx->kv;
	struct vf_kv_lease *lease = vf_ctx_lease_get(ctx);
	char keys[U_N][512], gval[32], tval[32];
	const char *reads[U_N];
	struct vf_kv_result rr[U_N];
	struct vf_kv_lock *lk = NULL;
	struct vf_kv_txn_result tr = {0};
	struct vol_ids ids = {0};
	char *cval = NULL;
	int rc;

	memset(rr, 0, sizeof(rr));
	vf_vol_key(ctx, keys[U_STATE], 512, VK_STATE, name);
	vf_vol_key(ctx, keys[U_GREF], 512, VK_GREF, name);
	vol_client_key(ctx, keys[U_CLIENT], 512, name, ctx->node_id);
	vf_vol_key(ctx, keys[U_TRIG], 512, VK_STOP_TRIGGER, name);
	for (int i = 0; i < U_N; i++)
		reads[i] = keys[i];
	rc = vol_unmount_elided(ctx, name, mount_id, path, keys, unmounted, local_err, err);
	if (rc != VOL_LOCKED)
		goto out;
	rc = vf_vol_lock(ctx, lease, "gref", name, (int)vol_left(deadline), reads, U_N, rr, &lk,
	                 err);
	if (rc != VF_OK) {
		vf_err_prefix(err, "volume %s: cannot take the gref lock", name);
		goto out;
	}
	rc = vol_ids_parse(name, &rr[U_CLIENT], &ids);
	if (rc != VF_OK)
		goto out;
	if (vol_ids_find(&ids, mount_id) < 0) {
		/* not counted (a repeated unmount, or one whose answer was lost) */
		vf_log(VF_LOG_INFO, "volume %s: mount id %s is not mounted on %s", name, mount_id,
		       ctx->node_id);
		/* no id of this host counted: no local mount may stay. Decided from
		 * the mount table, not from this process's memory (a restarted
		 * daemon has none; a mount left by a crash mid-mount is real) */
		if (ids.n == 0 && !*unmounted &&
		    (vol_local_mounted(ctx, name) || vol_probe(ctx, name, path) != 0)) {
			rc = vol_fs_unmount(ctx, name, path, err);
			*local_err = rc != VF_OK;
		}
		goto out;
	}
	if (ids.n > 1) {
		rc = vol_client_value(ctx, &ids, NULL, mount_id, &cval, err);
		if (rc != VF_OK)
			goto out;
		vol_memo_drop(ctx, name, 0);
		rc = vol_client_rewrite(ctx, lk, keys[U_CLIENT], rr[U_CLIENT].pair.mod_rev, cval,
		                        err);
		if (rc == VF_EUNCERTAIN) {
			int has = 1;

			if (vol_client_has(ctx, name, keys[U_CLIENT], mount_id, &has) == VF_OK &&
			    !has)
				rc = VF_OK;
		}
		if (rc != VF_OK)
			vf_err_prefix(err, "volume %s: cannot drop mount id %s", name, mount_id);
		goto out;
	}
	/* the last id on this host: unmount (unless a try that lost its lease
	 * did already), drop the global reference */
	if (!*unmounted) {
		rc = vol_fs_unmount(ctx, name, path, err);
		if (rc != VF_OK) {
			*local_err = 1;
			goto out;
		}
		*unmounted = 1;
	}
	if (vf_failpoint_hit("vol.unmount_before_txn", name)) {
		rc = vf_err_set(err, VF_EUNAVAIL, "volume %s: failpoint vol.unmount_before_txn",
		                name);
		goto out;
	}
	int64_t g = vf_vol_num(&rr[U_GREF]) - 1;

	if (g < 0) {
		vf_log(VF_LOG_ERR, "volume %s: gref was %" PRId64 " with client %s listed", name,
		       g + 1, ctx->node_id);
		g = 0;
	}
	snprintf(gval, sizeof(gval), "%" PRId64, g);
	snprintf(tval, sizeof(tval), "%" PRId64, vf_vol_num(&rr[U_TRIG]) + 1);
	{
		struct vf_kv_cmp c[] = {
		        {.kind = VF_CMP_LOCK_HELD, .lock = lk},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[U_GREF],
		         .mod_rev = rr[U_GREF].found ? rr[U_GREF].pair.mod_rev : 0},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[U_CLIENT],
		         .mod_rev = rr[U_CLIENT].pair.mod_rev},
		        {.kind = VF_CMP_VERSION_EQ,
		         .key = keys[U_TRIG],
		         .mod_rev = rr[U_TRIG].found ? rr[U_TRIG].pair.mod_rev : 0}};
		struct vf_kv_op o[4] = {{.kind = VF_OP_PUT,
		                         .key = keys[U_GREF],
		                         .value = gval,
		                         .value_len = strlen(gval)},
		                        {.kind = VF_OP_DELETE, .key = keys[U_CLIENT]}};
		size_t no = 2;

		if (g == 0)
			o[no++] = (struct vf_kv_op){.kind = VF_OP_PUT,
			                            .key = keys[U_TRIG],
			                            .value = tval,
			                            .value_len = strlen(tval)};
		o[no++] = (struct vf_kv_op){.kind = VF_OP_UNLOCK, .lock = lk};
		rc = kv->ops->txn(kv, c, 4, o, no, &tr, err);
	}
	if (rc == VF_OK && g > 0 && tr.count >= 1)
		vol_memo_unmounted(ctx, name, g, tr.results[0].pair.mod_rev,
		                   rr[U_GREF].found ? rr[U_GREF].pair.mod_rev : 0);
	else
		vol_memo_drop(ctx, name, 0);
	vf_kv_txn_result_clear(&tr);
	if (rc == VF_EUNCERTAIN) {
		int has = 1;

		if (vol_client_has(ctx, name, keys[U_CLIENT], mount_id, &has) == VF_OK && !has)
			rc = VF_OK;
	}
	if (rc != VF_OK)
		vf_err_prefix(err,
		              "volume %s: unmounted locally but cannot drop the global "
		              "reference",
		              name);
out:
	vf_vol_unlock(ctx, lease, "gref", name, &lk);
	if (rc == VF_ELEASE && lease)
		vf_ctx_lease_gone(ctx, lease); /* a fenced txn found the lease gone */
	vf_ctx_lease_put(ctx);
	vf_kv_results_clear(rr, U_N);
	vol_ids_free(&ids);
	free(cval);
	return rc;
}

int vf_volume_unmount(struct vf_ctx *ctx, const char *name, const char *mount_id,
                      struct vf_err *err)
{
	int64_t deadline = vf_now_ms() + ctx->op_timeout_ms;
	struct vf_buf path = {0};
	int rc, unmounted = 0, local_err = 0;

	if ((rc = vol_check_name(name, err)) != VF_OK)
		return rc;
	if (mount_id == NULL || mount_id[0] == '\0')
		return vf_err_set(err, VF_EINVAL, "volume %s: empty mount id", name);
	if (vf_buf_printf(&path, "%s/%s", ctx->mount_root, name) != VF_OK)
		return vf_err_set(err, VF_ENOMEM, "volume %s: out of memory", name);
	vf_vol_local_enter(ctx, "gref", name, 0);
	for (;;) {
		unsigned gen = vf_ctx_lease_gen(ctx);

		rc = vol_unmount_once(ctx, name, mount_id, path.data, deadline, &unmounted,
		                      &local_err, err);
		if (rc != VF_ELEASE || vf_now_ms() >= deadline)
			break;
		/* the lease ended under us (nothing was dropped): again with the
		 * new one, within the same deadline */
		vf_ctx_lease_wait(ctx, gen, deadline);
	}
	if (rc != VF_OK && !local_err && vol_conv_retryable(rc)) {
		/* Docker never retries an Unmount: an error here would leave this
		 * id counted for good (gref never 0, the server never stopped, the
		 * volume never removable). The unmount is this host's to finish:
		 * answer success, release the id in the background */
		vf_log(VF_LOG_WARN,
		       "volume %s: unmount of mount id %s answered OK, the store part is "
		       "retried in the background: %s",
		       name, mount_id, err ? err->msg : vf_strerror(rc));
		vol_pend_add(ctx, name, mount_id, unmounted);
		rc = VF_OK;
		if (err) {
			err->code = VF_OK;
			err->msg[0] = '\0';
		}
	}
	vf_vol_local_leave(ctx, "gref", name);
	vf_buf_free(&path);
	return rc;
}

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

static int vol_conv_retryable(int rc)
{
	return rc == VF_EUNAVAIL || rc == VF_EUNCERTAIN || rc == VF_ECONFLICT || rc == VF_ELEASE ||
	       rc == VF_ETIMEDOUT || rc == VF_EPROTO || rc == VF_EBUSY;
}

static void vol_pend_add(struct vf_ctx *ctx, const char *vol, const char *id, int local_done)
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
static int vol_pend_cancel(struct vf_ctx *ctx, const char *vol, const char *id)
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

static void vol_pend_free(struct vf_ctx *ctx)
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

static void vol_converge_startup(struct vf_ctx *ctx)
{
	ctx->conv_startup = vol_converge_once(ctx) != VF_OK;
}

/* Retries the releases the store did not take and, until it succeeded, the
 * start-up check; sweeps stale local mounts every vol_sweep_ms; each when due. */
static void *ctx_converge_thread(void *arg)
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
