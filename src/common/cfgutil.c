/* Typed reads of libconfig settings with errors naming file, line and setting. */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

const char *vf_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* Read a secret from path (at most 64 KiB, trailing newlines dropped). what names it
 * in messages: the file's content never appears in one. */
static int cfg_read_secret(const char *path, const char *what, char **out_r, struct vf_err *err)
{
	struct vf_buf b = {0};
	char chunk[4096];
	size_t n;
	FILE *f = fopen(path, "re");
	int rc = VF_OK;

	*out_r = NULL;
	if (f == NULL)
		return vf_err_set(err, VF_EINVAL, "%s: cannot read %s: %s", what, path,
		                  strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && rc == VF_OK) {
		if (b.len + n > 65536)
			rc = vf_err_set(err, VF_EINVAL, "%s: %s is larger than 64 KiB", what, path);
		else
			rc = vf_buf_add(&b, chunk, n);
	}
	if (rc == VF_OK && ferror(f))
		rc = vf_err_set(err, VF_EINVAL, "%s: cannot read %s: %s", what, path,
		                strerror(errno));
	fclose(f);
	while (rc == VF_OK && b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	if (rc == VF_OK && (b.data == NULL || b.len == 0))
		rc = vf_err_set(err, VF_EINVAL, "%s: %s is empty", what, path);
	if (rc == VF_OK && memchr(b.data, '\0', b.len) != NULL)
		rc = vf_err_set(err, VF_EINVAL, "%s: %s holds a NUL byte", what, path);
	if (rc == VF_OK && strpbrk(b.data, "\r\n") != NULL)
		rc = vf_err_set(err, VF_EINVAL, "%s: %s holds more than one line", what, path);
	if (rc != VF_OK) {
		if (b.data)
			memset(b.data, 0, b.len);
		vf_buf_free(&b);
		return rc;
	}
	*out_r = b.data; /* vf_buf keeps a NUL after len */
	return VF_OK;
}

int vf_cfg_secret_path(const char *file, char *buf, size_t size)
{
	const char *dir = vf_env("CREDENTIALS_DIRECTORY");

	if (strchr(file, '/') != NULL || dir == NULL)
		return snprintf(buf, size, "%s", file) < (int)size ? VF_OK : VF_EINVAL;
	return snprintf(buf, size, "%s/%s", dir, file) < (int)size ? VF_OK : VF_EINVAL;
}

int vf_cfg_secret(const config_setting_t *cfg, const char *group, const char *name,
                  const char *cred, const char *env, const char *env_file, char **out_r,
                  struct vf_err *err)
{
	char file_name[128], what[512], path[4096], where[256];
	config_setting_t *fs;
	char *file = NULL;
	int rc;

	*out_r = NULL;
	snprintf(file_name, sizeof(file_name), "%s_file", name);
	fs = cfg_member(cfg, file_name);
	if (cfg_member(cfg, name) && fs) {
		vf_cfg_where(fs, where, sizeof(where));
		return vf_err_set(err, VF_EINVAL,
		                  "%ssettings '%s.%s' and '%s.%s' exclude each other: give one",
		                  where, group, name, group, file_name);
	}
	if ((rc = vf_cfg_str(cfg, name, NULL, out_r, err)) != VF_OK || *out_r)
		return rc;
	if ((rc = vf_cfg_str(cfg, file_name, NULL, &file, err)) != VF_OK)
		return rc;
	if (file) {
		vf_cfg_where(fs, where, sizeof(where));
		snprintf(what, sizeof(what), "%ssetting '%s.%s'", where, group, file_name);
		if (file[0] == '\0' ||
		    (strchr(file, '/') == NULL && !vf_env("CREDENTIALS_DIRECTORY")))
			rc = vf_err_set(err, VF_EINVAL,
			                "%s must be an absolute path, or a credential name with "
			                "$CREDENTIALS_DIRECTORY set (systemd LoadCredential=)",
			                what);
		else if (vf_cfg_secret_path(file, path, sizeof(path)) != VF_OK)
			rc = vf_err_set(err, VF_EINVAL, "%s: path too long", what);
		else
			rc = cfg_read_secret(path, what, out_r, err);
		free(file);
		return rc;
	}
	/* the config is silent: a systemd credential, then the environment */
	if (cred && vf_env("CREDENTIALS_DIRECTORY") &&
	    vf_cfg_secret_path(cred, path, sizeof(path)) == VF_OK && access(path, F_OK) == 0) {
		snprintf(what, sizeof(what), "credential '%s'", cred);
		return cfg_read_secret(path, what, out_r, err);
	}
	if (env && vf_env(env)) {
		if ((*out_r = strdup(vf_env(env))) == NULL)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		return VF_OK;
	}
	if (env_file && vf_env(env_file)) {
		snprintf(what, sizeof(what), "$%s", env_file);
		return cfg_read_secret(vf_env(env_file), what, out_r, err);
	}
	return VF_OK;
}
