/* The volume manager's names, options and keys, and its JSON documents
 * (info/<vol>, client/<vol>/<node>). */
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

int vol_check_name(const char *name, struct vf_err *err)
{
	if (vf_volume_name_valid(name))
		return VF_OK;
	return vf_err_set(err, VF_EINVAL,
	                  "invalid volume name '%.140s': use 1 to %d of A-Z a-z 0-9 _ . - starting "
	                  "with a letter or digit",
	                  name ? name : "(null)", VF_VOLUME_NAME_MAX);
}

static const char *const vol_known_opts[] = {"size", "mode", "uid", "gid", "fileserver", NULL};

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

int vol_check_opts(const char *name, const struct vf_opt *opts, size_t n, struct vf_err *err)
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

void vol_client_key(const struct vf_ctx *ctx, char *buf, size_t size, const char *vol,
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

int vol_res_is(const struct vf_kv_result *r, const char *s)
{
	return r->found && r->pair.value && strcmp(r->pair.value, s) == 0;
}

/* ---- JSON documents ---- */
int vol_info_gen(const char *vol, const struct vf_opt *opts, size_t nopts, yajl_val optv,
                 const char *node, const char *addr, int port, char **out_r, struct vf_err *err)
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

void vol_ids_free(struct vol_ids *ids)
{
	vf_strv_free(ids->v, ids->n);
	ids->v = NULL;
	ids->n = 0;
}

int vol_ids_parse(const char *vol, const struct vf_kv_result *r, struct vol_ids *ids)
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

int vol_ids_find(const struct vol_ids *ids, const char *id)
{
	for (size_t i = 0; i < ids->n; i++)
		if (strcmp(ids->v[i], id) == 0)
			return (int)i;
	return -1;
}

/* Another mount id of this host: rewrite client/<vol>/<node> (as read at mod_rev)
 * and release the gref lock, in one txn fenced by that lock. gref is unchanged. */
int vol_client_rewrite(struct vf_ctx *ctx, struct vf_kv_lock *lk, const char *key, int64_t mod_rev,
                       const char *cval, struct vf_err *err)
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
int vol_client_value(struct vf_ctx *ctx, const struct vol_ids *ids, const char *add,
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
