/*
 * The Docker volume plugin protocol's request decoder: the endpoints and their
 * paths, and vf_plugin_decode (path and body -> struct vf_plugin_req), which
 * checks every field: volume names, mount ids, Create's options (each bounded and
 * checked for what it means), Evict's node. Pure: no I/O, no global state.
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common_int.h"
#include "plugin_int.h"

static const struct {
	enum vf_plugin_ep ep;
	const char *path;
} plugin_paths[] = {
        {VF_EP_ACTIVATE, "/Plugin.Activate"},
        {VF_EP_CREATE, "/VolumeDriver.Create"},
        {VF_EP_REMOVE, "/VolumeDriver.Remove"},
        {VF_EP_MOUNT, "/VolumeDriver.Mount"},
        {VF_EP_UNMOUNT, "/VolumeDriver.Unmount"},
        {VF_EP_PATH, "/VolumeDriver.Path"},
        {VF_EP_GET, "/VolumeDriver.Get"},
        {VF_EP_LIST, "/VolumeDriver.List"},
        {VF_EP_CAPABILITIES, "/VolumeDriver.Capabilities"},
        {VF_EP_STATUS, "/VFile.Status"},
        {VF_EP_KVDUMP, "/VFile.KVDump"},
        {VF_EP_NODES, "/VFile.Nodes"},
        {VF_EP_EVICT, "/VFile.Evict"},
};
#define PLUGIN_NPATHS (sizeof(plugin_paths) / sizeof(plugin_paths[0]))

enum vf_plugin_ep vf_plugin_ep_from_path(const char *path)
{
	for (size_t i = 0; path && i < PLUGIN_NPATHS; i++)
		if (strcmp(path, plugin_paths[i].path) == 0)
			return plugin_paths[i].ep;
	return VF_EP_UNKNOWN;
}

const char *vf_plugin_ep_path(enum vf_plugin_ep ep)
{
	for (size_t i = 0; i < PLUGIN_NPATHS; i++)
		if (plugin_paths[i].ep == ep)
			return plugin_paths[i].path;
	return "(unknown)";
}

int vf_plugin_name_valid(const char *name)
{
	size_t n;

	if (name == NULL ||
	    !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
	      (name[0] >= '0' && name[0] <= '9')))
		return 0;
	for (n = 1; name[n]; n++) {
		char ch = name[n];

		if (n >= VF_VOLUME_NAME_MAX)
			return 0;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
			return 0;
	}
	return 1;
}

/* Mount ids: Docker sends 64 hex digits; tools may send any short token. */
static int plugin_id_valid(const char *id)
{
	size_t n = 0;

	for (; id[n]; n++) {
		char ch = id[n];

		if (n >= VF_PLUGIN_ID_MAX)
			return 0;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-' ||
		      ch == ':' || ch == '@'))
			return 0;
	}
	return n > 0;
}

void vf_plugin_req_clear(struct vf_plugin_req *req)
{
	if (req == NULL)
		return;
	free(req->name);
	free(req->id);
	free(req->node);
	free(req->opts);
	vf_strv_free(req->opt_strs, 2 * req->nopts);
	memset(req, 0, sizeof(*req));
}

static int plugin_blank(const char *body, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
			return 0;
	return 1;
}

/* All digits, at most maxd of them, value <= max; 1 if so. */
static int plugin_uint(const char *s, size_t len, uint64_t max, uint64_t *v_r)
{
	uint64_t v = 0;

	if (len == 0 || len > 20)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return 0;
	if (v_r)
		*v_r = v;
	return 1;
}

/* A host name, an IPv4 address or a bracketed IPv6 one, with an optional :port. */
static int plugin_hostport_ok(const char *v)
{
	if (v[0] == '\0')
		return 0;
	for (const char *p = v; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_' ||
		      *p == ':' || *p == '[' || *p == ']'))
			return 0;
	return 1;
}

/* One Create option: bounded, printable, and what the option means
 * (size, mode, uid, gid, fileserver; others only bounded). *total adds up. */
static int plugin_opt_check(const char *path, const char *key, const char *v, size_t *total,
                            struct vf_err *err)
{
	size_t kl = strlen(key), vl = strlen(v);
	char ev[160];

	vf_plugin_escape(ev, sizeof(ev), v, 40);
	if (kl == 0 || kl > VF_PLUGIN_OPT_KEY_MAX) {
		char ek[160];

		vf_plugin_escape(ek, sizeof(ek), key, 40);
		return vf_err_set(err, VF_EINVAL,
		                  "%s: option name '%s' is empty or too long (%zu bytes, limit %d)",
		                  path, ek, kl, VF_PLUGIN_OPT_KEY_MAX);
	}
	if (vl > VF_PLUGIN_OPT_VALUE_MAX)
		return vf_err_set(err, VF_EINVAL,
		                  "%s: option '%s' is too long (%zu bytes, limit %d)", path, key,
		                  vl, VF_PLUGIN_OPT_VALUE_MAX);
	for (size_t i = 0; i < vl; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return vf_err_set(err, VF_EINVAL,
			                  "%s: option '%s' has a control character: '%s'", path,
			                  key, ev);
	*total += kl + vl;
	if (*total > VF_PLUGIN_OPTS_MAX_BYTES)
		return vf_err_set(err, VF_EINVAL, "%s: the options take more than %d bytes in all",
		                  path, VF_PLUGIN_OPTS_MAX_BYTES);
	if (strcmp(key, "size") == 0) {
		static const char sfx[] = "KkMmGgTt";
		uint64_t n, mul = 1;
		size_t dl = vl;
		const char *s;

		if (vl > 0 && (s = strchr(sfx, v[vl - 1])) != NULL) {
			dl--;
			for (long k = 0; k <= (s - sfx) / 2; k++)
				mul *= 1024;
		}
		if (!plugin_uint(v, dl, INT64_MAX / mul, &n))
			return vf_err_set(err, VF_EINVAL,
			                  "%s: size '%s' is not a number of bytes with an "
			                  "optional K/M/G/T suffix, at most 2^63-1 bytes",
			                  path, ev);
	} else if (strcmp(key, "mode") == 0) {
		if (strcmp(v, "rw") != 0 && strcmp(v, "ro") != 0)
			return vf_err_set(err, VF_EINVAL, "%s: mode '%s' is not rw or ro", path,
			                  ev);
	} else if (strcmp(key, "uid") == 0 || strcmp(key, "gid") == 0) {
		if (!plugin_uint(v, vl, 4294967294ULL, NULL))
			return vf_err_set(err, VF_EINVAL,
			                  "%s: %s '%s' is not a number from 0 to 4294967294", path,
			                  key, ev);
	} else if (strcmp(key, "fileserver") == 0) {
		if (!plugin_hostport_ok(v))
			return vf_err_set(err, VF_EINVAL,
			                  "%s: fileserver '%s' is not a host name or address "
			                  "(A-Z a-z 0-9 . - _ : [ ], 1 to %d bytes)",
			                  path, ev, VF_PLUGIN_OPT_VALUE_MAX);
	}
	return VF_OK;
}

static int plugin_decode_opts(yajl_val opts, const char *path, const char *const *known,
                              struct vf_plugin_req *req, struct vf_err *err)
{
	size_t n, total = 0;
	int rc;

	if (opts == NULL || YAJL_IS_NULL(opts))
		return VF_OK;
	if (!YAJL_IS_OBJECT(opts))
		return vf_err_set(err, VF_EINVAL, "%s: Opts must be an object of strings", path);
	n = opts->u.object.len;
	if (n == 0)
		return VF_OK;
	if (n > VF_PLUGIN_OPTS_MAX)
		return vf_err_set(err, VF_EINVAL, "%s: too many options (%zu, limit %d)", path, n,
		                  VF_PLUGIN_OPTS_MAX);
	req->opts = calloc(n, sizeof(*req->opts));
	req->opt_strs = calloc(2 * n, sizeof(char *));
	if (req->opts == NULL || req->opt_strs == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	req->nopts = n;
	for (size_t i = 0; i < n; i++) {
		const char *key = opts->u.object.keys[i];
		yajl_val v = opts->u.object.values[i];
		int ok = known == NULL;

		for (const char *const *k = known; k && *k && !ok; k++)
			ok = strcmp(*k, key) == 0;
		if (!ok) {
			struct vf_buf list = {0};
			char ek[160];

			vf_plugin_escape(ek, sizeof(ek), key, 40);
			for (const char *const *k = known; *k; k++)
				vf_buf_printf(&list, "%s%s", k == known ? "" : ", ", *k);
			vf_err_set(err, VF_EINVAL, "%s: unknown option '%s' (known: %s)", path, ek,
			           list.data ? list.data : "none");
			vf_buf_free(&list);
			return VF_EINVAL;
		}
		char ekey[160]; /* the key as an error text may show it */

		vf_plugin_escape(ekey, sizeof(ekey), key, 40);
		for (size_t j = 0; j < i; j++)
			if (strcmp(req->opt_strs[2 * j], key) == 0)
				return vf_err_set(err, VF_EINVAL, "%s: option '%s' given twice",
				                  path, ekey);
		if (!YAJL_IS_STRING(v))
			return vf_err_set(err, VF_EINVAL, "%s: option '%s' must be a string", path,
			                  ekey);
		if ((rc = plugin_opt_check(path, key, v->u.string, &total, err)) != VF_OK)
			return rc;
		req->opt_strs[2 * i] = strdup(key);
		req->opt_strs[2 * i + 1] = strdup(v->u.string);
		if (req->opt_strs[2 * i] == NULL || req->opt_strs[2 * i + 1] == NULL)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		req->opts[i].key = req->opt_strs[2 * i];
		req->opts[i].value = req->opt_strs[2 * i + 1];
	}
	return VF_OK;
}

/* Evict: Node (required: 1 to VF_PLUGIN_NODE_MAX printable bytes, no '/', quote,
 * backslash or space) and Force (optional boolean). */
static int plugin_decode_evict(yajl_val root, const char *path, struct vf_plugin_req *req,
                               struct vf_err *err)
{
	yajl_val v = root && YAJL_IS_OBJECT(root) ? vf_json_get(root, "Node", NULL) : NULL;
	yajl_val f = root && YAJL_IS_OBJECT(root) ? vf_json_get(root, "Force", NULL) : NULL;
	size_t n;

	if (v == NULL || YAJL_IS_NULL(v))
		return vf_err_set(err, VF_EINVAL, "%s: missing Node", path);
	if (!YAJL_IS_STRING(v))
		return vf_err_set(err, VF_EINVAL, "%s: Node must be a string", path);
	n = strlen(v->u.string);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v->u.string[i];

		if (ch <= 0x20 || ch >= 0x7f || ch == '/' || ch == '"' || ch == '\\')
			n = 0;
	}
	if (n == 0 || n > VF_PLUGIN_NODE_MAX) {
		char en[300];

		vf_plugin_escape(en, sizeof(en), v->u.string, 64);
		return vf_err_set(err, VF_EINVAL,
		                  "%s: invalid Node '%s' (1 to %d printable characters, no '/', "
		                  "quote, backslash or space)",
		                  path, en, VF_PLUGIN_NODE_MAX);
	}
	if (f != NULL && !YAJL_IS_NULL(f) && !YAJL_IS_TRUE(f) && !YAJL_IS_FALSE(f))
		return vf_err_set(err, VF_EINVAL, "%s: Force must be true or false", path);
	req->force = f != NULL && YAJL_IS_TRUE(f);
	if ((req->node = strdup(v->u.string)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	return VF_OK;
}

static int plugin_decode_tree(yajl_val root, const char *path, const char *const *known,
                              struct vf_plugin_req *req, struct vf_err *err)
{
	int need_name = 0, need_id = 0;
	const char *name;
	yajl_val v;

	switch (req->ep) {
	case VF_EP_CREATE:
	case VF_EP_REMOVE:
	case VF_EP_PATH:
	case VF_EP_GET:
		need_name = 1;
		break;
	case VF_EP_MOUNT:
	case VF_EP_UNMOUNT:
		need_name = need_id = 1;
		break;
	case VF_EP_EVICT:
		need_name = 1; /* optional there */
		break;
	default:
		break;
	}
	if (root != NULL && !YAJL_IS_OBJECT(root) && !YAJL_IS_NULL(root))
		return vf_err_set(err, VF_EINVAL, "%s: the request body must be a JSON object",
		                  path);
	if (req->ep == VF_EP_EVICT) {
		int rc = plugin_decode_evict(root, path, req, err);

		if (rc != VF_OK)
			return rc;
	}
	if (!need_name)
		return VF_OK;
	v = root && YAJL_IS_OBJECT(root) ? vf_json_get(root, "Name", NULL) : NULL;
	if (v == NULL || YAJL_IS_NULL(v)) {
		if (req->ep == VF_EP_EVICT)
			return VF_OK; /* every volume of the node */
		return vf_err_set(err, VF_EINVAL, "%s: missing Name", path);
	}
	if (!YAJL_IS_STRING(v))
		return vf_err_set(err, VF_EINVAL, "%s: Name must be a string", path);
	name = v->u.string;
	if (!vf_plugin_name_valid(name)) {
		char en[300];

		vf_plugin_escape(en, sizeof(en), name, 64);
		return vf_err_set(err, VF_EINVAL,
		                  "%s: invalid volume name '%s' (use 1 to %d of A-Z a-z 0-9 _ . "
		                  "-, starting with a letter or digit)",
		                  path, en, VF_VOLUME_NAME_MAX);
	}
	if ((req->name = strdup(name)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (need_id) {
		v = vf_json_get(root, "ID", NULL);
		if (v == NULL || YAJL_IS_NULL(v))
			return vf_err_set(err, VF_EINVAL, "%s: volume %s: missing ID", path,
			                  req->name);
		if (!YAJL_IS_STRING(v) || !plugin_id_valid(v->u.string))
			return vf_err_set(
			        err, VF_EINVAL,
			        "%s: volume %s: invalid ID (1 to %d of A-Z a-z 0-9 _ . - : @)",
			        path, req->name, VF_PLUGIN_ID_MAX);
		if ((req->id = strdup(v->u.string)) == NULL)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	if (req->ep == VF_EP_CREATE)
		return plugin_decode_opts(vf_json_get(root, "Opts", NULL), path, known, req, err);
	return VF_OK;
}

int vf_plugin_decode(const char *path, const char *body, size_t len, const char *const *known_opts,
                     struct vf_plugin_req *req_r, struct vf_err *err)
{
	yajl_val root = NULL;
	int rc;

	memset(req_r, 0, sizeof(*req_r));
	req_r->ep = vf_plugin_ep_from_path(path);
	if (req_r->ep == VF_EP_UNKNOWN) {
		struct vf_buf list = {0};
		char ep[300];

		vf_plugin_escape(ep, sizeof(ep), path ? path : "", 64);
		for (size_t i = 0; i < PLUGIN_NPATHS; i++)
			vf_buf_printf(&list, "%s%s", i ? " " : "", plugin_paths[i].path);
		vf_err_set(err, VF_ENOTFOUND, "unknown endpoint '%s' (known: %s)", ep,
		           list.data ? list.data : "");
		vf_buf_free(&list);
		return VF_ENOTFOUND;
	}
	if (len > VF_PLUGIN_MAX_BODY)
		return vf_err_set(err, VF_ELIMIT,
		                  "%s: request body too large (%zu bytes, limit %d)", path, len,
		                  VF_PLUGIN_MAX_BODY);
	if (body != NULL && memchr(body, '\0', len) != NULL)
		return vf_err_set(err, VF_EINVAL, "%s: malformed JSON: NUL byte in the body", path);
	if (body != NULL && !plugin_blank(body, len)) {
		rc = vf_plugin_parse(path, body, len, &root, err);
		if (rc != VF_OK)
			return rc;
	}
	rc = plugin_decode_tree(root, path, known_opts, req_r, err);
	yajl_tree_free(root);
	if (rc != VF_OK) {
		enum vf_plugin_ep ep = req_r->ep;

		vf_plugin_req_clear(req_r);
		req_r->ep = ep;
	}
	return rc;
}
