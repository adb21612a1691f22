/* Typed reads of libconfig settings with errors naming file, line and setting. */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "common_int.h"

void vf_cfg_where(const config_setting_t *s, char *buf, size_t size)
{
	const char *file = s ? config_setting_source_file(s) : NULL;
	unsigned int line = s ? config_setting_source_line(s) : 0;

	if (file && line)
		snprintf(buf, size, "%s:%u: ", file, line);
	else if (line)
		snprintf(buf, size, "line %u: ", line);
	else
		buf[0] = '\0';
}

static const char *cfg_type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
		return "an integer";
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a number";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	}
	return "unknown";
}

static int cfg_wrong(const config_setting_t *s, const char *want, struct vf_err *err)
{
	char where[256];
	const config_setting_t *parent = config_setting_parent(s);
	const char *pname = parent ? config_setting_name(parent) : NULL;

	vf_cfg_where(s, where, sizeof(where));
	return vf_err_set(err, VF_EINVAL, "%ssetting '%s%s%s' must be %s, not %s", where,
	                  pname ? pname : "", pname ? "." : "", config_setting_name(s), want,
	                  cfg_type_name(config_setting_type(s)));
}

static config_setting_t *cfg_member(const config_setting_t *cfg, const char *name)
{
	return cfg ? config_setting_get_member(cfg, name) : NULL;
}

int vf_cfg_str(const config_setting_t *cfg, const char *name, const char *def, char **out_r,
               struct vf_err *err)
{
	config_setting_t *s = cfg_member(cfg, name);
	const char *v = def;

	*out_r = NULL;
	if (s) {
		if (config_setting_type(s) != CONFIG_TYPE_STRING)
			return cfg_wrong(s, "a string", err);
		v = config_setting_get_string(s);
	}
	if (v && (*out_r = strdup(v)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	return VF_OK;
}

int vf_cfg_int(const config_setting_t *cfg, const char *name, int def, int *out_r,
               struct vf_err *err)
{
	config_setting_t *s = cfg_member(cfg, name);

	*out_r = def;
	if (s == NULL)
		return VF_OK;
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64)
		return cfg_wrong(s, "an integer", err);
	*out_r = (int)config_setting_get_int(s);
	return VF_OK;
}

int vf_cfg_bool(const config_setting_t *cfg, const char *name, int def, int *out_r,
                struct vf_err *err)
{
	config_setting_t *s = cfg_member(cfg, name);

	*out_r = def;
	if (s == NULL)
		return VF_OK;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return cfg_wrong(s, "a boolean (true or false)", err);
	*out_r = config_setting_get_bool(s);
	return VF_OK;
}

int vf_cfg_strv(const config_setting_t *cfg, const char *name, const char *def, char ***out_r,
                size_t *n_r, struct vf_err *err)
{
	config_setting_t *s = cfg_member(cfg, name);
	char **v;
	size_t n;

	*out_r = NULL;
	*n_r = 0;
	if (s == NULL && def == NULL)
		return VF_OK;
	if (s && config_setting_type(s) != CONFIG_TYPE_STRING &&
	    config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST)
		return cfg_wrong(s, "a string or a list of strings", err);
	n = (s && config_setting_type(s) != CONFIG_TYPE_STRING) ? (size_t)config_setting_length(s)
	                                                        : 1;
	v = calloc(n ? n : 1, sizeof(char *));
	if (v == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *str = def;

		if (s && config_setting_type(s) == CONFIG_TYPE_STRING)
			str = config_setting_get_string(s);
		else if (s) {
			config_setting_t *e = config_setting_get_elem(s, (unsigned int)i);
			if (config_setting_type(e) != CONFIG_TYPE_STRING) {
				vf_strv_free(v, n);
				return cfg_wrong(s, "a string or a list of strings", err);
			}
			str = config_setting_get_string(e);
		}
		if ((v[i] = strdup(str)) == NULL) {
			vf_strv_free(v, n);
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		}
	}
	*out_r = v;
	*n_r = n;
	return VF_OK;
}

int vf_cfg_known(const config_setting_t *cfg, const char *const *known, struct vf_err *err)
{
	if (cfg == NULL)
		return VF_OK;
	for (int i = 0; i < config_setting_length(cfg); i++) {
		config_setting_t *s = config_setting_get_elem(cfg, (unsigned int)i);
		const char *name = config_setting_name(s);
		int ok = 0;
		char where[256];

		for (const char *const *k = known; *k && !ok; k++)
			ok = name && strcmp(name, *k) == 0;
		if (ok)
			continue;
		vf_cfg_where(s, where, sizeof(where));
		struct vf_buf list = {0};
		for (const char *const *k = known; *k; k++)
			vf_buf_printf(&list, "%s%s", k == known ? "" : ", ", *k);
		vf_err_set(err, VF_EINVAL, "%sunknown setting '%s%s%s' (known: %s)", where,
		           config_setting_name(cfg) ? config_setting_name(cfg) : "",
		           config_setting_name(cfg) ? "." : "", name ? name : "?",
		           list.data ? list.data : "none");
		vf_buf_free(&list);
		return VF_EINVAL;
	}
	return VF_OK;
}
