/* JSON accessors over yajl trees and generator helpers. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common_int.h"

yajl_val vf_json_get(yajl_val root, ...)
{
	const char *path[16];
	size_t n = 0;
	va_list ap;

	va_start(ap, root);
	while (n < 15 && (path[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	path[n] = NULL;
	if (root == NULL)
		return NULL;
	return yajl_tree_get(root, path, yajl_t_any);
}

int vf_json_int64(yajl_val v, int64_t *out)
{
	*out = 0;
	if (v == NULL)
		return VF_OK;
	if (YAJL_IS_INTEGER(v)) {
		*out = YAJL_GET_INTEGER(v);
		return VF_OK;
	}
	if (YAJL_IS_STRING(v)) {
		const char *s = YAJL_GET_STRING(v);
		char *end;

		errno = 0;
		long long x = strtoll(s, &end, 10);
		if (errno != 0 || end == s || *end != '\0')
			return VF_EPROTO;
		*out = x;
		return VF_OK;
	}
	return VF_EPROTO;
}

const char *vf_json_str(yajl_val v)
{
	return (v != NULL && YAJL_IS_STRING(v)) ? YAJL_GET_STRING(v) : NULL;
}

int vf_json_parse(const char *text, size_t len, yajl_val *tree_r, struct vf_err *err)
{
	char ebuf[128], *copy;

	*tree_r = NULL;
	copy = malloc(len + 1);
	if (copy == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory parsing JSON");
	memcpy(copy, text, len);
	copy[len] = '\0';
	ebuf[0] = '\0';
	*tree_r = yajl_tree_parse(copy, ebuf, sizeof(ebuf));
	free(copy);
	if (*tree_r == NULL)
		return vf_err_set(err, VF_EPROTO, "malformed JSON: %s",
		                  ebuf[0] ? ebuf : "parse error");
	return VF_OK;
}

void vf_jgen_str(yajl_gen g, const char *s)
{
	yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

void vf_jgen_strn(yajl_gen g, const char *s, size_t n)
{
	yajl_gen_string(g, (const unsigned char *)s, n);
}

void vf_jgen_int(yajl_gen g, long long v)
{
	yajl_gen_integer(g, v);
}

void vf_jgen_tree(yajl_gen g, yajl_val v)
{
	if (v == NULL || YAJL_IS_NULL(v)) {
		yajl_gen_null(g);
	} else if (YAJL_IS_STRING(v)) {
		vf_jgen_str(g, v->u.string);
	} else if (YAJL_IS_INTEGER(v)) {
		vf_jgen_int(g, YAJL_GET_INTEGER(v));
	} else if (YAJL_IS_NUMBER(v)) {
		yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
	} else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
		yajl_gen_bool(g, YAJL_IS_TRUE(v));
	} else if (YAJL_IS_OBJECT(v)) {
		yajl_gen_map_open(g);
		for (size_t i = 0; i < v->u.object.len; i++) {
			vf_jgen_str(g, v->u.object.keys[i]);
			vf_jgen_tree(g, v->u.object.values[i]);
		}
		yajl_gen_map_close(g);
	} else if (YAJL_IS_ARRAY(v)) {
		yajl_gen_array_open(g);
		for (size_t i = 0; i < v->u.array.len; i++)
			vf_jgen_tree(g, v->u.array.values[i]);
		yajl_gen_array_close(g);
	} else {
		yajl_gen_null(g);
	}
}

int vf_jgen_finish(yajl_gen g, char **out_r, size_t *len_r, struct vf_err *err)
{
	const unsigned char *buf;
	size_t len;

	*out_r = NULL;
	if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok)
		return vf_err_set(err, VF_EINVAL, "could not build JSON request");
	*out_r = malloc(len + 1);
	if (*out_r == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory building JSON");
	memcpy(*out_r, buf, len);
	(*out_r)[len] = '\0';
	if (len_r)
		*len_r = len;
	return VF_OK;
}
