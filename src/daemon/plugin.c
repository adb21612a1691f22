/* The Docker volume plugin protocol: request decoder and unix-socket HTTP server. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdint.h>
#include <yajl/yajl_parse.h>

#include "common_int.h"
#include "plugin_int.h"

#if MHD_VERSION < 0x00097002
typedef int plugin_mhd_result;
#else
typedef enum MHD_Result plugin_mhd_result;
#endif

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

/* Deepest JSON nesting a request may have (requests are flat objects). */
#define PLUGIN_MAX_DEPTH 32

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

/* Escape for logs and Err: printable ASCII stays, a backslash doubles, every other
 * byte becomes \xHH; at most max_src bytes of src, "..." when cut. */
void vf_plugin_escape(char *dst, size_t size, const char *src, size_t max_src)
{
	size_t o = 0, i = 0;

	if (size == 0)
		return;
	for (; src && src[i] && i < max_src; i++) {
		unsigned char ch = (unsigned char)src[i];
		char tmp[5];
		size_t n;

		if (ch == '\\')
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\\\");
		else if (ch >= 0x20 && ch <= 0x7e)
			n = (size_t)snprintf(tmp, sizeof(tmp), "%c", ch);
		else
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
		if (o + n + 4 > size) /* keep room for "..." */
			break;
		memcpy(dst + o, tmp, n);
		o += n;
	}
	if (src && src[i] && o + 4 <= size) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF. */
static int plugin_utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + n >= len)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* The strict check yajl's tree parser does not make: no comments, nesting bounded
 * while parsing (yajl's parser keeps its own stack: nothing recurses here), strings
 * and keys strict UTF-8. The tree is built only from text this accepted, and its
 * depth is then bounded too (yajl_tree_free recurses per level). */
struct plugin_jck {
	int depth;
	int why; /* PLUGIN_JCK_* */
};
enum { PLUGIN_JCK_SYNTAX = 0, PLUGIN_JCK_DEPTH, PLUGIN_JCK_UTF8 };

static int plugin_jck_open(void *ctx)
{
	struct plugin_jck *j = ctx;

	if (++j->depth > PLUGIN_MAX_DEPTH) {
		j->why = PLUGIN_JCK_DEPTH;
		return 0;
	}
	return 1;
}

static int plugin_jck_close(void *ctx)
{
	((struct plugin_jck *)ctx)->depth--;
	return 1;
}

static int plugin_jck_str(void *ctx, const unsigned char *s, size_t len)
{
	if (!plugin_utf8_ok(s, len)) {
		((struct plugin_jck *)ctx)->why = PLUGIN_JCK_UTF8;
		return 0;
	}
	return 1;
}

static int plugin_jck_null(void *ctx)
{
	(void)ctx;
	return 1;
}

static int plugin_jck_bool(void *ctx, int b)
{
	(void)ctx;
	(void)b;
	return 1;
}

static int plugin_jck_num(void *ctx, const char *s, size_t len)
{
	(void)ctx;
	(void)s;
	(void)len;
	return 1;
}

static const yajl_callbacks plugin_jck_cbs = {
        .yajl_null = plugin_jck_null,
        .yajl_boolean = plugin_jck_bool,
        .yajl_number = plugin_jck_num,
        .yajl_string = plugin_jck_str,
        .yajl_start_map = plugin_jck_open,
        .yajl_map_key = plugin_jck_str,
        .yajl_end_map = plugin_jck_close,
        .yajl_start_array = plugin_jck_open,
        .yajl_end_array = plugin_jck_close,
};

static int plugin_hex4(const char *p, const char *end, unsigned int *v)
{
	*v = 0;
	if (end - p < 4)
		return 0;
	for (int k = 0; k < 4; k++) {
		char c = p[k];

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned int)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned int)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned int)(c - 'A' + 10);
		else
			return 0;
	}
	return 1;
}

/* \u escapes in text the strict parser accepted (so a '"' outside a string opens
 * one): \u0000 would cut a string short; yajl turns a lone high surrogate into '?'
 * and pairs a high one with any next \u, so only real pairs pass. 0 if bad; *nul_r
 * says whether it was a NUL. */
static int plugin_escapes_ok(const char *body, size_t len, int *nul_r)
{
	const char *p = body, *end = body + len;
	int in_str = 0;

	*nul_r = 0;
	for (; p < end; p++) {
		unsigned int u, lo;

		if (!in_str) {
			in_str = *p == '"';
			continue;
		}
		if (*p == '"') {
			in_str = 0;
			continue;
		}
		if (*p != '\\')
			continue;
		if (p + 1 < end && p[1] != 'u') {
			p++;
			continue;
		}
		if (!plugin_hex4(p + 2, end, &u))
			return 0;
		p += 5;
		if (u == 0) {
			*nul_r = 1;
			return 0;
		}
		if (u >= 0xdc00 && u <= 0xdfff)
			return 0;
		if (u >= 0xd800 && u <= 0xdbff) {
			if (end - p < 7 || p[1] != '\\' || p[2] != 'u' ||
			    !plugin_hex4(p + 3, end, &lo) || lo < 0xdc00 || lo > 0xdfff)
				return 0;
			p += 6;
		}
	}
	return 1;
}

/* Check body strictly, then build its tree. */
static int plugin_parse(const char *path, const char *body, size_t len, yajl_val *root_r,
                        struct vf_err *err)
{
	struct plugin_jck j = {0, PLUGIN_JCK_SYNTAX};
	yajl_handle h;
	yajl_status st;
	int nul = 0, rc;

	*root_r = NULL;
	h = yajl_alloc(&plugin_jck_cbs, NULL, &j);
	if (h == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	yajl_config(h, yajl_allow_comments, 0);
	yajl_config(h, yajl_dont_validate_strings, 1); /* plugin_utf8_ok is stricter */
	st = yajl_parse(h, (const unsigned char *)body, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	if (st != yajl_status_ok) {
		size_t at = yajl_get_bytes_consumed(h);

		if (j.why == PLUGIN_JCK_DEPTH)
			rc = vf_err_set(err, VF_EINVAL,
			                "%s: malformed JSON: nested too deeply (more than %d "
			                "levels, at byte %zu)",
			                path, PLUGIN_MAX_DEPTH, at);
		else if (j.why == PLUGIN_JCK_UTF8)
			rc = vf_err_set(err, VF_EINVAL,
			                "%s: malformed JSON: a string is not valid UTF-8 (before "
			                "byte %zu)",
			                path, at);
		else {
			/* yajl's short message names no input bytes */
			unsigned char *m = yajl_get_error(h, 0, NULL, 0);
			char msg[128];

			vf_plugin_escape(msg, sizeof(msg), m ? (const char *)m : "parse error",
			                 SIZE_MAX);
			while (strlen(msg) >= 4 && strcmp(msg + strlen(msg) - 4, "\\x0a") == 0)
				msg[strlen(msg) - 4] = '\0';
			rc = vf_err_set(err, VF_EINVAL, "%s: malformed JSON at byte %zu: %s", path,
			                at, msg);
			if (m)
				yajl_free_error(h, m);
		}
		yajl_free(h);
		return rc;
	}
	yajl_free(h);
	if (!plugin_escapes_ok(body, len, &nul))
		return vf_err_set(err, VF_EINVAL,
		                  nul ? "%s: malformed JSON: NUL (\\u0000) in a string"
		                      : "%s: malformed JSON: a \\u escape is not valid UTF-16 "
		                        "(lone or unpaired surrogate): not valid UTF-8",
		                  path);
	rc = vf_json_parse(body, len, root_r, err);
	if (rc != VF_OK) {
		vf_err_set(err, VF_EINVAL, "%s: malformed JSON", path);
		return VF_EINVAL;
	}
	return VF_OK;
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
		rc = plugin_parse(path, body, len, &root, err);
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

/* ---- connection guard: a deadline on every request, a share per peer ---- */

struct guard_conn {
	struct guard_conn *prev, *next;
	int fd;
	int busy;         /* the handler runs: no deadline */
	int closed;       /* shut down by the guard */
	int64_t deadline; /* ms, CLOCK_MONOTONIC */
	uid_t uid;        /* the peer (unix sockets) */
	int uid_known;
};

struct vf_http_guard {
	struct vf_http_guard_cfg cfg;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thr;
	int stop;
	struct guard_conn *head;
	unsigned long reaped, refused, evicted;
	int64_t last_log;
};

static void guard_log(struct vf_http_guard *g, int64_t now)
{
	if (now - g->last_log < 10000)
		return;
	g->last_log = now;
	vf_log(VF_LOG_WARN,
	       "%s: closed %lu connection(s) that did not send a whole request within %d ms, "
	       "refused %lu over a peer's share, evicted %lu (so far)",
	       g->cfg.what, g->reaped, g->cfg.request_ms, g->refused, g->evicted);
}

static void guard_shut(struct guard_conn *c)
{
	c->closed = 1;
	shutdown(c->fd, SHUT_RDWR); /* MHD sees EOF and closes it; the fd is still its */
}

static void *guard_main(void *arg)
{
	struct vf_http_guard *g = arg;

	pthread_mutex_lock(&g->mu);
	while (!g->stop) {
		int64_t now = vf_now_ms(), next = now + g->cfg.request_ms;

		for (struct guard_conn *c = g->head; c; c = c->next) {
			if (c->busy || c->closed)
				continue;
			if (c->deadline <= now) {
				guard_shut(c);
				g->reaped++;
				guard_log(g, now);
			} else if (c->deadline < next) {
				next = c->deadline;
			}
		}
		vf_cond_wait_until(&g->cond, &g->mu, next);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int vf_http_guard_new(const struct vf_http_guard_cfg *cfg, struct vf_http_guard **g_r,
                      struct vf_err *err)
{
	struct vf_http_guard *g = calloc(1, sizeof(*g));

	*g_r = NULL;
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	g->cfg = *cfg;
	if (g->cfg.request_ms <= 0)
		g->cfg.request_ms = VF_PLUGIN_REQUEST_MS;
	if (g->cfg.what == NULL)
		g->cfg.what = "http";
	g->last_log = INT64_MIN / 2;
	pthread_mutex_init(&g->mu, NULL);
	vf_cond_init(&g->cond);
	if (pthread_create(&g->thr, NULL, guard_main, g) != 0) {
		pthread_mutex_destroy(&g->mu);
		pthread_cond_destroy(&g->cond);
		free(g);
		return vf_err_set(err, VF_ENOMEM, "%s: cannot start a thread", cfg->what);
	}
	*g_r = g;
	return VF_OK;
}

/* After MHD_stop_daemon (which reports every connection closed). */
void vf_http_guard_free(struct vf_http_guard **gp)
{
	struct vf_http_guard *g = gp ? *gp : NULL;

	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	g->stop = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thr, NULL);
	while (g->head) {
		struct guard_conn *c = g->head;

		g->head = c->next;
		free(c);
	}
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cond);
	free(g);
	*gp = NULL;
}

void vf_http_guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	struct vf_http_guard *g = cls;
	struct guard_conn *c = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (c == NULL)
			return;
		/* MHD closes the fd after this returns: unlink first, under the lock the
		 * guard thread shuts connections down with */
		pthread_mutex_lock(&g->mu);
		if (c->prev)
			c->prev->next = c->next;
		else
			g->head = c->next;
		if (c->next)
			c->next->prev = c->prev;
		pthread_mutex_unlock(&g->mu);
		free(c);
		*socket_context = NULL;
		return;
	}
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL || (c = calloc(1, sizeof(*c))) == NULL)
		return;
	c->fd = ci->connect_fd;
	if (g->cfg.uid_max > 0) {
		struct ucred uc;
		socklen_t ul = sizeof(uc);

		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0) {
			c->uid = uc.uid;
			c->uid_known = 1;
		}
	}
	pthread_mutex_lock(&g->mu);
	int64_t now = vf_now_ms();
	c->deadline = now + g->cfg.request_ms;
	if (c->uid_known && c->uid != 0) {
		/* root (the Docker daemon) is never refused; any other uid gets a share */
		int n = 0;

		for (struct guard_conn *o = g->head; o; o = o->next)
			n += !o->closed && o->uid_known && o->uid == c->uid;
		if (n >= g->cfg.uid_max) {
			guard_shut(c);
			g->refused++;
			guard_log(g, now);
		}
	}
	if (!c->closed && g->cfg.pending_max > 0) {
		/* too many waiting for a request: drop the one waiting longest */
		struct guard_conn *old = NULL;
		int n = 0;

		for (struct guard_conn *o = g->head; o; o = o->next)
			if (!o->closed && !o->busy) {
				n++;
				if (old == NULL || o->deadline < old->deadline)
					old = o;
			}
		if (n >= g->cfg.pending_max && old) {
			guard_shut(old);
			g->evicted++;
			guard_log(g, now);
		}
	}
	c->next = g->head;
	if (g->head)
		g->head->prev = c;
	g->head = c;
	pthread_mutex_unlock(&g->mu);
	*socket_context = c;
}

void vf_http_guard_busy(struct vf_http_guard *g, struct MHD_Connection *conn, int busy)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct guard_conn *c = ci ? ci->socket_context : NULL;

	if (g == NULL || c == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	c->busy = busy;
	if (!busy)
		c->deadline = vf_now_ms() + g->cfg.request_ms;
	pthread_mutex_unlock(&g->mu);
}

void vf_http_guard_counts(struct vf_http_guard *g, unsigned long *reaped_r,
                          unsigned long *refused_r, unsigned long *evicted_r)
{
	pthread_mutex_lock(&g->mu);
	*reaped_r = g->reaped;
	*refused_r = g->refused;
	*evicted_r = g->evicted;
	pthread_mutex_unlock(&g->mu);
}

/* ---- server ---- */

struct vf_plugin_server {
	struct vf_plugin_server_cfg cfg;
	char *socket_path;
	int listen_fd;
	struct MHD_Daemon *mhd;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int inflight;
	int quiesced;
	int activated; /* the socket came from systemd: its path is not ours to unlink */
	struct vf_http_guard *guard;
};

/* Per request. */
struct plugin_conn {
	struct vf_buf body;
	size_t received;
	int too_large;
	int refused; /* answered at the first call (a bad request line or header) */
	int counted;
};

/* Headers in the order received, to look at the bytes between them. */
struct plugin_hdrs {
	const char *key[64], *val[64];
	size_t n;
	int more;
};

static plugin_mhd_result plugin_hdr_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                            size_t key_size, const char *value, size_t value_size)
{
	struct plugin_hdrs *h = cls;

	(void)kind;
	(void)key_size;
	(void)value_size;
	if (h->n == sizeof(h->key) / sizeof(h->key[0])) {
		h->more = 1;
		return MHD_NO;
	}
	h->key[h->n] = key;
	h->val[h->n] = value ? value : key;
	h->n++;
	return MHD_YES;
}

/* Only line ends, blanks and the NULs MHD put there between a from..to. */
static int plugin_gap_ok(const char *from, const char *to)
{
	for (const char *p = from; p < to; p++)
		if (*p != '\0' && *p != '\r' && *p != '\n' && *p != ' ' && *p != '\t')
			return 0;
	return 1;
}

/* What is wrong with the request line or headers, or NULL. Percent escapes are not
 * decoded (plugin_unescape), so %00 stays three bytes and names no endpoint. MHD
 * parses the request line in place: the target, a NUL where the blank was, then
 * the version; bytes between the target's end and that NUL mean a raw NUL (or a
 * '?') cut it short. */
static const char *plugin_request_bad(struct MHD_Connection *conn, const char *method,
                                      const char *url, const char *version)
{
	int bad = 0;

	if (url == NULL || version == NULL)
		return "no request target";
	if (version > url && version - url <= 65536 && version[-1] == '\0' &&
	    (size_t)(version - url) != strlen(url) + 1)
		return "a NUL byte or '?' in the request target";
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return "a control or non-ASCII byte in the request target";
	/* MHD 0.9.7x keeps the request line and headers in place, from the method on,
	 * and ends each key and value with a NUL: after a value's end only its line end
	 * may come before the next key (the last one: before the block's end, where the
	 * body starts); anything else followed a raw NUL. Pointers that do not fit this
	 * layout (a folded header, another MHD) are not judged. */
	struct plugin_hdrs h = {0};
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	const char *block_end = ci && method && url > method && ci->header_size <= 65536
	                                ? method + ci->header_size
	                                : NULL;

	MHD_get_connection_values_n(conn, MHD_HEADER_KIND, plugin_hdr_collect, &h);
	for (size_t i = 0; i < h.n; i++) {
		const char *end = h.val[i] + strlen(h.val[i]);
		const char *next = i + 1 < h.n ? h.key[i + 1] : block_end;

		if (next == NULL || next < end || next - end > 4096)
			continue;
		if (!plugin_gap_ok(end, next))
			bad = 1;
	}
	if (bad)
		return "a NUL byte in a header";
	return NULL;
}

/* Percent escapes are left as they are: no endpoint has one. */
static size_t plugin_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls;
	(void)conn;
	return strlen(s);
}

static plugin_mhd_result plugin_send(struct MHD_Connection *conn, unsigned int status,
                                     const char *json, size_t len)
{
	struct MHD_Response *resp;
	plugin_mhd_result ret;

	resp = MHD_create_response_from_buffer(len, (void *)json, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, VF_PLUGIN_CONTENT_TYPE);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static plugin_mhd_result plugin_send_err(struct MHD_Connection *conn, unsigned int status,
                                         const char *msg)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	char *out = NULL;
	size_t len = 0;
	plugin_mhd_result ret = MHD_NO;

	if (g == NULL)
		return MHD_NO;
	yajl_gen_map_open(g);
	vf_jgen_str(g, "Err");
	vf_jgen_str(g, msg[0] ? msg : "unknown error");
	yajl_gen_map_close(g);
	if (vf_jgen_finish(g, &out, &len, NULL) == VF_OK)
		ret = plugin_send(conn, status, out, len);
	free(out);
	yajl_gen_free(g);
	return ret;
}

static int plugin_answer(struct vf_plugin_server *srv, const struct vf_plugin_req *req,
                         char **out_r, size_t *len_r, struct vf_err *err)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	int rc = VF_OK;

	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	yajl_gen_map_open(g);
	switch (req->ep) {
	case VF_EP_ACTIVATE:
		vf_jgen_str(g, "Implements");
		yajl_gen_array_open(g);
		vf_jgen_str(g, "VolumeDriver");
		yajl_gen_array_close(g);
		break;
	case VF_EP_CAPABILITIES:
		vf_jgen_str(g, "Capabilities");
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Scope");
		vf_jgen_str(g, "global");
		yajl_gen_map_close(g);
		break;
	default:
		rc = srv->cfg.handler(srv->cfg.arg, req, g, err);
		if (rc != VF_OK && err->msg[0] == '\0')
			vf_err_set(err, rc, "%s", vf_strerror(rc));
		break;
	}
	if (rc == VF_OK) {
		vf_jgen_str(g, "Err");
		vf_jgen_str(g, "");
		yajl_gen_map_close(g);
		rc = vf_jgen_finish(g, out_r, len_r, err);
	}
	yajl_gen_free(g);
	return rc;
}

static plugin_mhd_result plugin_access(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **con_cls)
{
	struct vf_plugin_server *srv = cls;
	struct plugin_conn *pc = *con_cls;
	struct vf_plugin_req req;
	struct vf_err err = {0};
	char *out = NULL;
	size_t len = 0;
	plugin_mhd_result ret;
	int rc;

	if (pc == NULL) {
		const char *cl;

		const char *what;
		char eu[300], ecl[80];

		if ((pc = calloc(1, sizeof(*pc))) == NULL)
			return MHD_NO;
		*con_cls = pc;
		pthread_mutex_lock(&srv->mu);
		srv->inflight++;
		pc->counted = 1;
		pthread_mutex_unlock(&srv->mu);
		vf_plugin_escape(eu, sizeof(eu), url, 64);
		if ((what = plugin_request_bad(conn, method, url, version)) != NULL) {
			vf_log(VF_LOG_INFO, "plugin: bad request: %s (path '%s')", what, eu);
			pc->too_large = 1; /* discard any body */
			pc->refused = 1;
			vf_err_set(&err, VF_EINVAL, "bad request: %s", what);
			return plugin_send_err(conn, MHD_HTTP_BAD_REQUEST, err.msg);
		}
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > VF_PLUGIN_MAX_BODY) {
			/* Refuse before reading the body; MHD closes the connection after. */
			vf_plugin_escape(ecl, sizeof(ecl), cl, 24);
			vf_log(VF_LOG_WARN, "plugin: %s: refused a %s-byte body (limit %d)", eu,
			       ecl, VF_PLUGIN_MAX_BODY);
			vf_err_set(&err, VF_ELIMIT,
			           "%s: request body too large (%s bytes, limit %d)", eu, ecl,
			           VF_PLUGIN_MAX_BODY);
			pc->too_large = 1;
			return plugin_send_err(conn, MHD_HTTP_OK, err.msg);
		}
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		pc->received += *upload_data_size;
		if (!pc->too_large && pc->received > VF_PLUGIN_MAX_BODY) {
			pc->too_large = 1; /* keep reading (chunked), stop buffering */
			vf_buf_free(&pc->body);
		}
		if (!pc->too_large &&
		    vf_buf_add(&pc->body, upload_data, *upload_data_size) != VF_OK)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (pc->refused)
		return MHD_YES; /* answered at the first call */
	if (pc->too_large) {
		vf_err_set(&err, VF_ELIMIT, "request body too large (%zu bytes, limit %d)",
		           pc->received, VF_PLUGIN_MAX_BODY);
		return plugin_send_err(conn, MHD_HTTP_OK, err.msg);
	}
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0 && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return plugin_send_err(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
	rc = vf_plugin_decode(url, pc->body.data, pc->body.len, srv->cfg.known_opts, &req, &err);
	if (rc == VF_ENOTFOUND) {
		vf_log(VF_LOG_DEBUG, "plugin: %s", err.msg);
		return plugin_send_err(conn, MHD_HTTP_NOT_FOUND, err.msg);
	}
	if (rc != VF_OK) {
		vf_log(VF_LOG_INFO, "plugin: bad request: %s", err.msg);
		vf_plugin_req_clear(&req);
		return plugin_send_err(conn, MHD_HTTP_OK, err.msg);
	}
	vf_http_guard_busy(srv->guard, conn, 1); /* the handler's own time is not bounded here */
	rc = plugin_answer(srv, &req, &out, &len, &err);
	vf_http_guard_busy(srv->guard, conn, 0); /* the response and the next request are */
	if (rc == VF_OK)
		ret = plugin_send(conn, MHD_HTTP_OK, out, len);
	else
		ret = plugin_send_err(conn, MHD_HTTP_OK, err.msg);
	free(out);
	vf_plugin_req_clear(&req);
	return ret;
}

static void plugin_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
	struct vf_plugin_server *srv = cls;
	struct plugin_conn *pc = *con_cls;

	if (pc == NULL)
		return;
	vf_buf_free(&pc->body);
	if (pc->counted) {
		pthread_mutex_lock(&srv->mu);
		srv->inflight--;
		pthread_cond_broadcast(&srv->cond);
		pthread_mutex_unlock(&srv->mu);
	}
	free(pc);
	*con_cls = NULL;
}

static void plugin_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512], esc[1024];

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	vf_plugin_escape(esc, sizeof(esc), line, SIZE_MAX);
	vf_log(VF_LOG_DEBUG, "plugin: http: %s", esc);
}

void (*vf_plugin_test_after_bind)(const char *path);

/* Make the unix socket: replace a stale one, refuse a live one. The socket is bound
 * in a private directory (0700) next to its path, given its group and mode there,
 * where nobody can swap it for a symlink, then linked into place. */
static int plugin_listen(const struct vf_plugin_server_cfg *cfg, int *fd_r, struct vf_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = cfg->socket_path;
	mode_t mode = (mode_t)cfg->socket_mode;
	char dir[PATH_MAX], tmpdir[PATH_MAX], *slash;
	int fd = -1, rc;
	gid_t gid = (gid_t)-1;

	*fd_r = -1;
	if (cfg->socket_mode < 0 || cfg->socket_mode > 0777)
		return vf_err_set(
		        err, VF_EINVAL,
		        "plugin socket %s: mode %o is not a permission mode (0000 to 0777)", path,
		        (unsigned int)cfg->socket_mode);
	if (strlen(path) >= sizeof(sa.sun_path))
		return vf_err_set(err, VF_EINVAL,
		                  "plugin socket path %s is too long (limit %zu bytes)", path,
		                  sizeof(sa.sun_path) - 1);
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		for (char *p = dir + 1; *p; p++)
			if (*p == '/') {
				*p = '\0';
				mkdir(dir, 0755);
				*p = '/';
			}
		mkdir(dir, 0755);
	} else {
		snprintf(dir, sizeof(dir), "%s", slash == dir ? "/" : ".");
	}
	if (strlen(dir) + 12 >= sizeof(sa.sun_path))
		return vf_err_set(err, VF_EINVAL,
		                  "plugin socket %s: its directory's path is too long (limit %zu "
		                  "bytes, to bind it in a private directory first)",
		                  path, sizeof(sa.sun_path) - 13);
	if (cfg->socket_group) {
		struct group *gr = getgrnam(cfg->socket_group);

		if (gr == NULL)
			return vf_err_set(err, VF_EINVAL, "plugin socket %s: unknown group '%s'",
			                  path, cfg->socket_group);
		gid = gr->gr_gid;
	}
	if (mode & 0002)
		vf_log(VF_LOG_WARN,
		       "plugin socket %s: mode %04o lets every local user create, mount and "
		       "remove volumes; use 0660 and socket_group",
		       path, (unsigned int)mode);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vf_err_set(err, VF_EINVAL, "plugin socket %s: socket: %s", path,
		                  strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return vf_err_set(err, VF_EBUSY,
		                  "plugin socket %s is in use: another vfiled is running", path);
	}
	if (errno == ECONNREFUSED) {
		struct stat st;

		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path); /* stale: nobody listens */
	}
	close(fd);
	snprintf(tmpdir, sizeof(tmpdir), "%s/.vfXXXXXX", dir);
	if (mkdtemp(tmpdir) == NULL)
		return vf_err_set(err, VF_EINVAL,
		                  "plugin socket %s: cannot make a private directory in %s: %s",
		                  path, dir, strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.*s/s", (int)sizeof(sa.sun_path) - 3, tmpdir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: socket: %s", path,
		                strerror(errno));
		goto out;
	}
	mode_t old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0) {
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: bind: %s", path,
		                strerror(errno));
		goto out;
	}
	if (vf_plugin_test_after_bind)
		vf_plugin_test_after_bind(path);
	if (gid != (gid_t)-1 &&
	    fchownat(AT_FDCWD, sa.sun_path, (uid_t)-1, gid, AT_SYMLINK_NOFOLLOW) != 0) {
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: chown to group %s: %s", path,
		                cfg->socket_group, strerror(errno));
		goto out;
	}
	if (chmod(sa.sun_path, mode) != 0) { /* in the private directory: no symlink there */
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: chmod: %s", path,
		                strerror(errno));
		goto out;
	}
	if (listen(fd, 64) != 0) {
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: listen: %s", path,
		                strerror(errno));
		goto out;
	}
	/* link(2), not rename(2): whatever took the path since (another vfiled's socket,
	 * a symlink) is not replaced */
	if (link(sa.sun_path, path) != 0) {
		rc = vf_err_set(err, errno == EEXIST ? VF_EBUSY : VF_EINVAL,
		                "plugin socket %s: cannot put the socket in place: %s", path,
		                strerror(errno));
		goto out;
	}
	unlink(sa.sun_path);
	rc = VF_OK;
out:
	if (rc != VF_OK) {
		unlink(sa.sun_path);
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	rmdir(tmpdir);
	*fd_r = fd;
	return rc;
}

int vf_plugin_server_start(const struct vf_plugin_server_cfg *cfg, struct vf_plugin_server **srv_r,
                           struct vf_err *err)
{
	struct vf_plugin_server *srv;
	int rc;

	*srv_r = NULL;
	if (cfg->handler == NULL || cfg->socket_path == NULL)
		return vf_err_set(err, VF_EINVAL, "plugin server: no handler or socket path");
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL || (srv->socket_path = strdup(cfg->socket_path)) == NULL) {
		free(srv);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	srv->cfg = *cfg;
	srv->cfg.socket_path = srv->socket_path;
	srv->cfg.socket_group = NULL; /* only used while creating the socket */
	srv->listen_fd = -1;
	pthread_mutex_init(&srv->mu, NULL);
	vf_cond_init(&srv->cond);
	struct vf_http_guard_cfg gc = {
	        .request_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms
	                                                  : VF_PLUGIN_REQUEST_MS,
	        .uid_max = VF_PLUGIN_UID_CONNS,
	        .what = "plugin socket",
	};
	rc = vf_http_guard_new(&gc, &srv->guard, err);
	if (rc != VF_OK)
		goto fail;
	if (cfg->listen_fd > 0) {
		/* socket activation: keep it out of the file servers and hooks we spawn */
		if (fcntl(cfg->listen_fd, F_SETFD, FD_CLOEXEC) != 0) {
			rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: passed fd %d: %s",
			                cfg->socket_path, cfg->listen_fd, strerror(errno));
			goto fail;
		}
		srv->listen_fd = cfg->listen_fd;
		srv->activated = 1;
	} else if ((rc = plugin_listen(cfg, &srv->listen_fd, err)) != VF_OK) {
		goto fail;
	}
	srv->mhd = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
	                MHD_USE_ERROR_LOG,
	        0, NULL, NULL, plugin_access, srv, MHD_OPTION_EXTERNAL_LOGGER, plugin_mhd_log, srv,
	        MHD_OPTION_LISTEN_SOCKET, srv->listen_fd, MHD_OPTION_NOTIFY_COMPLETED,
	        plugin_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, vf_http_guard_notify,
	        srv->guard, MHD_OPTION_UNESCAPE_CALLBACK, plugin_unescape, NULL,
	        MHD_OPTION_CONNECTION_TIMEOUT,
	        (unsigned int)(cfg->idle_timeout_s > 0 ? cfg->idle_timeout_s : 60),
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)VF_PLUGIN_CONNS, MHD_OPTION_END);
	if (srv->mhd == NULL) {
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: cannot start the HTTP server",
		                cfg->socket_path);
		if (!srv->activated)
			unlink(srv->socket_path);
		goto fail;
	}
	srv->listen_fd = -1; /* MHD owns it now (quiesce hands it back) */
	*srv_r = srv;
	return VF_OK;
fail:
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	vf_http_guard_free(&srv->guard);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cond);
	free(srv->socket_path);
	free(srv);
	return rc;
}

int vf_plugin_server_inflight(struct vf_plugin_server *srv)
{
	int n;

	pthread_mutex_lock(&srv->mu);
	n = srv->inflight;
	pthread_mutex_unlock(&srv->mu);
	return n;
}

int vf_plugin_server_drain(struct vf_plugin_server *srv, int timeout_ms)
{
	int64_t until;
	int n;

	if (!srv->quiesced && srv->mhd) {
		MHD_socket fd = MHD_quiesce_daemon(srv->mhd);

		srv->quiesced = 1;
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
		if (!srv->activated) /* systemd keeps an activated socket open */
			unlink(srv->socket_path);
	}
	until = vf_now_ms() + timeout_ms;
	pthread_mutex_lock(&srv->mu);
	while (srv->inflight > 0)
		if (vf_cond_wait_until(&srv->cond, &srv->mu, until) == ETIMEDOUT)
			break;
	n = srv->inflight;
	pthread_mutex_unlock(&srv->mu);
	return n;
}

void vf_plugin_server_stop(struct vf_plugin_server **srvp)
{
	struct vf_plugin_server *srv = srvp ? *srvp : NULL;

	if (srv == NULL)
		return;
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd);
	vf_http_guard_free(&srv->guard);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (!srv->quiesced && !srv->activated)
		unlink(srv->socket_path);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cond);
	free(srv->socket_path);
	free(srv);
	*srvp = NULL;
}
