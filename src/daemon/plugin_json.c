/*
 * The bytes of a plugin request that a client sent: the strict JSON check a body
 * passes before its tree is built (no comments, nesting bounded while parsing,
 * strict UTF-8, \u escapes that are real UTF-16), and vf_plugin_escape, which
 * writes client bytes into logs and Err answers. doc/reliability.md, "Input
 * bounds".
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "common_int.h"
#include "plugin_int.h"

/* Deepest JSON nesting a request may have (requests are flat objects). */
#define PLUGIN_MAX_DEPTH 32

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

int vf_plugin_parse(const char *path, const char *body, size_t len, yajl_val *root_r,
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
