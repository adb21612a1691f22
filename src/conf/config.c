/* The vfile.conf loader: one libconfig file, validated with messages that name
 * file, line and setting (see config_int.h for the schema). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common_int.h"
#include "config_int.h"
#include "metrics_int.h"

static const char *const conf_known_top[] = {
        "node_id",      "role",           "docker_socket", "docker_wait_s",
        "backend",      "backend_dir",    "prefix",        "plugin_socket",
        "socket_group", "socket_mode",    "mount_root",    "state_dir",
        "lease_ttl_s",  "op_timeout_ms",  "reconcile_ms",  "request_timeout_ms",
        "log_level",    "log_target",     "etcd",          "consul",
        "fileserver",   "metrics_listen", "evict_after_s", NULL,
};

/* Settings of the etcd group that belong to vfiled, not to the driver. */
static const char *const conf_embedded_keys[] = {
        "embedded",          "embedded_data_dir",    "embedded_client_url",
        "embedded_peer_url", "embedded_binary",      "embedded_seeds",
        "embedded_name",     "embedded_max_members", NULL,
};

/* Settings whose value is a secret: their presence makes file permissions matter. */
static const char *const conf_secret_keys[] = {"password", "token", "acl_token", NULL};

static const char *const conf_level_names[] = {"error", "warning", "info", "debug", NULL};

int vf_conf_log_level(const char *name)
{
	for (int i = 0; conf_level_names[i]; i++)
		if (strcmp(name, conf_level_names[i]) == 0)
			return i;
	return -1;
}

const char *vf_conf_role_name(enum vf_conf_role role)
{
	switch (role) {
	case VF_ROLE_MANAGER:
		return "manager";
	case VF_ROLE_WORKER:
		return "worker";
	case VF_ROLE_AUTO:
		return "auto";
	}
	return "?";
}

void vf_conf_free(struct vf_conf **confp)
{
	struct vf_conf *c = confp ? *confp : NULL;

	if (c == NULL)
		return;
	free(c->file);
	free(c->node_id);
	free(c->docker_socket);
	free(c->backend);
	free(c->backend_name);
	free(c->backend_dir);
	free(c->prefix);
	free(c->plugin_socket);
	free(c->socket_group);
	free(c->mount_root);
	free(c->state_dir);
	free(c->log_target);
	free(c->metrics_listen);
	free(c->embedded.data_dir);
	free(c->embedded.client_url);
	free(c->embedded.peer_url);
	free(c->embedded.binary);
	free(c->embedded.name);
	vf_strv_free(c->embedded.seeds, c->embedded.nseeds);
	free(c->embedded.cacert);
	free(c->embedded.cert);
	free(c->embedded.key);
	config_destroy(&c->cfg);
	free(c);
	*confp = NULL;
}

/* "file: " or "file:line: " for s (file from the conf when libconfig has none). */
static void conf_where(const struct vf_conf *c, const config_setting_t *s, char *buf, size_t size)
{
	vf_cfg_where(s, buf, size);
	if (buf[0] == '\0' || strncmp(buf, "line ", 5) == 0) {
		unsigned int line = s ? config_setting_source_line(s) : 0;

		if (line)
			snprintf(buf, size, "%s:%u: ", c->file, line);
		else
			snprintf(buf, size, "%s: ", c->file);
	}
}

static int conf_bad(const struct vf_conf *c, const config_setting_t *s, const char *setting,
                    const char *why, struct vf_err *err)
{
	char where[512];

	conf_where(c, s, where, sizeof(where));
	return vf_err_set(err, VF_EINVAL, "%ssetting '%s' %s", where, setting, why);
}

/* vf_cfg_* messages name "line N" when the config was read from a string: add the name. */
static int conf_fix_err(const struct vf_conf *c, int rc, struct vf_err *err)
{
	if (rc != VF_OK && err && strncmp(err->msg, "line ", 5) == 0)
		vf_err_prefix(err, "%s", c->file);
	return rc;
}

static int conf_group(struct vf_conf *c, const char *name, config_setting_t **group_r,
                      struct vf_err *err)
{
	config_setting_t *s = config_lookup(&c->cfg, name);

	*group_r = NULL;
	if (s == NULL)
		return VF_OK;
	if (config_setting_type(s) != CONFIG_TYPE_GROUP)
		return conf_bad(c, s, name, "must be a group ({ ... })", err);
	*group_r = s;
	return VF_OK;
}

static int conf_positive(struct vf_conf *c, const config_setting_t *root, const char *name, int def,
                         int *out_r, struct vf_err *err)
{
	int rc = conf_fix_err(c, vf_cfg_int(root, name, def, out_r, err), err);

	if (rc == VF_OK && *out_r <= 0)
		rc = conf_bad(c, config_setting_get_member(root, name), name,
		              "must be a positive integer", err);
	return rc;
}

/* A string setting limited to a list of words. */
static int conf_word(struct vf_conf *c, const config_setting_t *root, const char *name,
                     const char *def, const char *const *words, char **out_r, struct vf_err *err)
{
	int rc = conf_fix_err(c, vf_cfg_str(root, name, def, out_r, err), err);
	struct vf_buf list = {0};

	if (rc != VF_OK)
		return rc;
	for (const char *const *w = words; *w; w++)
		if (strcmp(*out_r, *w) == 0)
			return VF_OK;
	for (const char *const *w = words; *w; w++)
		vf_buf_printf(&list, "%s%s", w == words ? "" : ", ", *w);
	char where[512];

	conf_where(c, config_setting_get_member(root, name), where, sizeof(where));
	rc = vf_err_set(err, VF_EINVAL, "%ssetting '%s' must be one of: %s (not '%s')", where, name,
	                list.data ? list.data : "", *out_r);
	vf_buf_free(&list);
	free(*out_r);
	*out_r = NULL;
	return rc;
}

static int conf_socket_mode(struct vf_conf *c, const config_setting_t *root, struct vf_err *err)
{
	config_setting_t *s = config_setting_get_member(root, "socket_mode");
	const char *v;
	size_t n;
	long m;

	c->socket_mode = 0660;
	if (s == NULL)
		return VF_OK;
	/* an integer is refused like any wrong type: libconfig reads 0660 as decimal 660,
	 * and 0 used to turn into 0660 silently */
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return conf_bad(c, s, "socket_mode",
		                "must be a string holding an octal mode such as \"0660\"", err);
	v = config_setting_get_string(s);
	n = strspn(v, "01234567");
	if (n == 0 || n > 4 || v[n] != '\0' || (m = strtol(v, NULL, 8)) > 0777)
		return conf_bad(c, s, "socket_mode",
		                "must be an octal mode from \"0000\" to \"0777\" such as "
		                "\"0660\"",
		                err);
	c->socket_mode = (int)m;
	if (m & 0002) {
		char where[512];

		conf_where(c, s, where, sizeof(where));
		vf_log(VF_LOG_WARN,
		       "%ssetting 'socket_mode' \"%s\" makes the plugin socket world-writable: "
		       "every local user can create, mount and remove volumes (use \"0660\" and "
		       "socket_group)",
		       where, v);
	}
	return VF_OK;
}

/* The group name a backend reads: "etcd" for "etcd", "/x/libfoo.so" -> "foo". */
static char *conf_backend_name(const char *backend)
{
	const char *base = strrchr(backend, '/');
	size_t n;

	base = base ? base + 1 : backend;
	if (strncmp(base, "lib", 3) == 0 && strchr(backend, '/'))
		base += 3;
	n = strcspn(base, ".");
	return strndup(base, n);
}

static int conf_embedded(struct vf_conf *c, struct vf_err *err)
{
	config_setting_t *g = config_lookup(&c->cfg, "etcd");
	struct vf_conf_embedded *e = &c->embedded;
	char *dd = NULL;
	int rc;

	if (g == NULL || config_setting_type(g) != CONFIG_TYPE_GROUP)
		return VF_OK;
	rc = conf_fix_err(c, vf_cfg_bool(g, "embedded", 0, &e->enabled, err), err);
	if (rc == VF_OK)
		rc = conf_fix_err(c, vf_cfg_str(g, "embedded_data_dir", NULL, &e->data_dir, err),
		                  err);
	if (rc == VF_OK)
		rc = conf_fix_err(c,
		                  vf_cfg_str(g, "embedded_client_url", "http://127.0.0.1:2379",
		                             &e->client_url, err),
		                  err);
	if (rc == VF_OK)
		rc = conf_fix_err(c,
		                  vf_cfg_str(g, "embedded_peer_url", "http://127.0.0.1:2380",
		                             &e->peer_url, err),
		                  err);
	if (rc == VF_OK)
		rc = conf_fix_err(c, vf_cfg_str(g, "embedded_binary", "etcd", &e->binary, err),
		                  err);
	if (rc == VF_OK)
		rc = conf_fix_err(c, vf_cfg_str(g, "embedded_name", NULL, &e->name, err), err);
	if (rc == VF_OK && config_setting_get_member(g, "embedded_seeds"))
		rc = conf_fix_err(
		        c, vf_cfg_strv(g, "embedded_seeds", NULL, &e->seeds, &e->nseeds, err), err);
	if (rc == VF_OK)
		rc = conf_positive(c, g, "embedded_max_members", 5, &e->max_members, err);
	if (rc == VF_OK)
		rc = conf_fix_err(c, vf_cfg_str(g, "cacert", NULL, &e->cacert, err), err);
	if (rc == VF_OK)
		rc = conf_fix_err(c, vf_cfg_str(g, "cert", NULL, &e->cert, err), err);
	if (rc == VF_OK)
		rc = conf_fix_err(c, vf_cfg_str(g, "key", NULL, &e->key, err), err);
	if (rc != VF_OK)
		return rc;
	e->client_url_set = config_setting_get_member(g, "embedded_client_url") != NULL;
	e->peer_url_set = config_setting_get_member(g, "embedded_peer_url") != NULL;
	for (size_t i = 0; i < e->nseeds; i++)
		if (strncmp(e->seeds[i], "http://", 7) != 0 &&
		    strncmp(e->seeds[i], "https://", 8) != 0)
			return conf_bad(c, config_setting_get_member(g, "embedded_seeds"),
			                "etcd.embedded_seeds",
			                "must list client URLs (http:// or https://)", err);

	if (e->data_dir == NULL) {
		if (asprintf(&dd, "%s/etcd", c->state_dir) < 0)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		e->data_dir = dd;
	}
	/* The driver never sees these. */
	for (const char *const *k = conf_embedded_keys; *k; k++)
		if (config_setting_get_member(g, *k))
			config_setting_remove(g, *k);
	return VF_OK;
}

static int conf_has_secret(const config_setting_t *g)
{
	if (g == NULL)
		return 0;
	for (const char *const *k = conf_secret_keys; *k; k++)
		if (config_setting_get_member(g, *k))
			return 1;
	return 0;
}

/* backend: required; the backend groups, the one the driver reads, and whether
 * any of them holds a secret. */
static int conf_backend(struct vf_conf *c, const config_setting_t *root, struct vf_err *err)
{
	config_setting_t *g;
	int rc;

	rc = conf_fix_err(c, vf_cfg_str(root, "backend", NULL, &c->backend, err), err);
	if (rc != VF_OK)
		return rc;
	if (c->backend == NULL)
		return vf_err_set(err, VF_EINVAL,
		                  "%s: missing required setting 'backend' (\"etcd\", \"consul\" or "
		                  "a module path)",
		                  c->file);
	if (c->backend[0] == '\0')
		return conf_bad(c, config_setting_get_member(root, "backend"), "backend",
		                "must not be empty", err);
	if ((c->backend_name = conf_backend_name(c->backend)) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if ((rc = conf_group(c, "etcd", &g, err)) != VF_OK)
		return rc;
	if ((rc = conf_group(c, "consul", &g, err)) != VF_OK)
		return rc;
	if ((rc = conf_group(c, "fileserver", &c->fileserver_group, err)) != VF_OK)
		return rc;
	c->backend_group = config_lookup(&c->cfg, c->backend_name);
	if (c->backend_group && config_setting_type(c->backend_group) != CONFIG_TYPE_GROUP)
		c->backend_group = NULL; /* a module named like a top-level scalar */
	c->has_secret = conf_has_secret(config_lookup(&c->cfg, "etcd")) ||
	                conf_has_secret(config_lookup(&c->cfg, "consul")) ||
	                conf_has_secret(c->backend_group);
	return VF_OK;
}

/* node identity (node_id, else the host name) and role */
static int conf_identity(struct vf_conf *c, const config_setting_t *root, struct vf_err *err)
{
	static const char *const roles[] = {"manager", "worker", "auto", NULL};
	char *role = NULL, host[256];
	int rc;

	rc = conf_fix_err(c, vf_cfg_str(root, "node_id", NULL, &c->node_id, err), err);
	if (rc != VF_OK)
		return rc;
	if (c->node_id) {
		c->node_id_set = 1;
		if (c->node_id[0] == '\0' || strchr(c->node_id, '/'))
			return conf_bad(c, config_setting_get_member(root, "node_id"), "node_id",
			                "must be a non-empty name without '/'", err);
	} else {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		if ((c->node_id = strdup(host)) == NULL)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	if ((rc = conf_word(c, root, "role", "worker", roles, &role, err)) != VF_OK)
		return rc;
	c->role = strcmp(role, "manager") == 0 ? VF_ROLE_MANAGER
	          : strcmp(role, "auto") == 0  ? VF_ROLE_AUTO
	                                       : VF_ROLE_WORKER;
	free(role);
	return VF_OK;
}

/* paths and sockets */
static int conf_paths(struct vf_conf *c, const config_setting_t *root, struct vf_err *err)
{
	struct {
		const char *name;
		const char *def;
		char **out;
	} strs[] = {
	        {"docker_socket", "/var/run/docker.sock", &c->docker_socket},
	        {"backend_dir", NULL, &c->backend_dir},
	        {"prefix", "vfile/", &c->prefix},
	        {"plugin_socket", "/run/docker/plugins/vfile.sock", &c->plugin_socket},
	        {"socket_group", NULL, &c->socket_group},
	        {"mount_root", "/var/lib/vfile/mounts", &c->mount_root},
	        {"state_dir", "/var/lib/vfile", &c->state_dir},
	};
	int rc;

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		rc = conf_fix_err(c, vf_cfg_str(root, strs[i].name, strs[i].def, strs[i].out, err),
		                  err);
		if (rc != VF_OK)
			return rc;
		if (*strs[i].out && (*strs[i].out)[0] == '\0')
			return conf_bad(c, config_setting_get_member(root, strs[i].name),
			                strs[i].name, "must not be empty", err);
	}
	c->docker_socket_set = config_setting_get_member(root, "docker_socket") != NULL;
	return conf_socket_mode(c, root, err);
}

static int conf_timeouts(struct vf_conf *c, const config_setting_t *root, struct vf_err *err)
{
	int rc;

	if ((rc = conf_positive(c, root, "lease_ttl_s", 10, &c->lease_ttl_s, err)) != VF_OK ||
	    (rc = conf_positive(c, root, "op_timeout_ms", 30000, &c->op_timeout_ms, err)) !=
	            VF_OK ||
	    (rc = conf_positive(c, root, "reconcile_ms", 5000, &c->reconcile_ms, err)) != VF_OK ||
	    (rc = conf_positive(c, root, "request_timeout_ms", 5000, &c->request_timeout_ms,
	                        err)) != VF_OK ||
	    (rc = conf_positive(c, root, "docker_wait_s", 300, &c->docker_wait_s, err)) != VF_OK)
		return rc;
	/* automatic eviction: 0 (off) or at least 2 lease TTLs, so that a host whose
	 * keep-alive is only late is never taken for a dead one */
	rc = conf_fix_err(c, vf_cfg_int(root, "evict_after_s", 0, &c->evict_after_s, err), err);
	if (rc != VF_OK)
		return rc;
	if (c->evict_after_s < 0 || (c->evict_after_s > 0 && c->evict_after_s < 2 * c->lease_ttl_s))
		return conf_bad(c, config_setting_get_member(root, "evict_after_s"),
		                "evict_after_s", "must be 0 (off) or at least twice lease_ttl_s",
		                err);
	return VF_OK;
}

static int conf_logging(struct vf_conf *c, const config_setting_t *root, struct vf_err *err)
{
	static const char *const targets[] = {"stderr", "syslog", NULL};
	char *level = NULL;
	int rc;

	if ((rc = conf_word(c, root, "log_level", "info", conf_level_names, &level, err)) != VF_OK)
		return rc;
	c->log_level = vf_conf_log_level(level);
	free(level);
	return conf_word(c, root, "log_target", "stderr", targets, &c->log_target, err);
}

/* metrics: optional "HOST:PORT" */
static int conf_metrics(struct vf_conf *c, const config_setting_t *root, struct vf_err *err)
{
	struct vf_err me = {0};
	int rc;

	rc = conf_fix_err(c, vf_cfg_str(root, "metrics_listen", NULL, &c->metrics_listen, err),
	                  err);
	if (rc != VF_OK)
		return rc;
	if (c->metrics_listen && vf_metrics_listen_valid(c->metrics_listen, &me) != VF_OK)
		return conf_bad(c, config_setting_get_member(root, "metrics_listen"),
		                "metrics_listen",
		                "must be \"HOST:PORT\" (an IPv4 address, "
		                "or [IPv6]:PORT), e.g. \"127.0.0.1:9105\"",
		                err);
	return VF_OK;
}

static int conf_validate(struct vf_conf *c, struct vf_err *err)
{
	config_setting_t *root = config_root_setting(&c->cfg);
	int rc;

	rc = conf_fix_err(c, vf_cfg_known(root, conf_known_top, err), err);
	if (rc == VF_OK)
		rc = conf_backend(c, root, err);
	if (rc == VF_OK)
		rc = conf_identity(c, root, err);
	if (rc == VF_OK)
		rc = conf_paths(c, root, err);
	if (rc == VF_OK)
		rc = conf_timeouts(c, root, err);
	if (rc == VF_OK)
		rc = conf_logging(c, root, err);
	if (rc == VF_OK)
		rc = conf_metrics(c, root, err);
	if (rc == VF_OK)
		rc = conf_embedded(c, err);
	return rc;
}

static int conf_parse(struct vf_conf *c, const char *text, struct vf_err *err)
{
	int ok;

	config_init(&c->cfg);
	if (text)
		ok = config_read_string(&c->cfg, text);
	else
		ok = config_read_file(&c->cfg, c->file);
	if (ok == CONFIG_TRUE)
		return VF_OK;
	if (config_error_type(&c->cfg) == CONFIG_ERR_FILE_IO)
		return vf_err_set(err, VF_EINVAL, "%s: cannot read config file: %s", c->file,
		                  strerror(errno ? errno : ENOENT));
	return vf_err_set(err, VF_EINVAL, "%s:%d: %s",
	                  config_error_file(&c->cfg) ? config_error_file(&c->cfg) : c->file,
	                  config_error_line(&c->cfg), config_error_text(&c->cfg));
}

static int conf_load(const char *path, const char *text, struct vf_conf **conf_r,
                     struct vf_err *err)
{
	struct vf_conf *c = calloc(1, sizeof(*c));
	int rc;

	*conf_r = NULL;
	if (c == NULL || (c->file = strdup(path)) == NULL) {
		free(c);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	rc = conf_parse(c, text, err);
	if (rc == VF_OK)
		rc = conf_validate(c, err);
	if (rc != VF_OK) {
		vf_conf_free(&c);
		return rc;
	}
	*conf_r = c;
	return VF_OK;
}

int vf_conf_load(const char *path, struct vf_conf **conf_r, struct vf_err *err)
{
	return conf_load(path, NULL, conf_r, err);
}

int vf_conf_load_string(const char *text, const char *name, struct vf_conf **conf_r,
                        struct vf_err *err)
{
	return conf_load(name ? name : "(string)", text, conf_r, err);
}

int vf_conf_check_perms(const struct vf_conf *conf, struct vf_err *err)
{
	struct stat st;

	if (!conf->has_secret)
		return VF_OK;
	if (stat(conf->file, &st) != 0)
		return vf_err_set(err, VF_EINVAL, "%s: cannot stat config file: %s", conf->file,
		                  strerror(errno));
	if (st.st_mode & 007)
		return vf_err_set(
		        err, VF_EAUTH,
		        "%s: holds a secret (password or token) but is readable by others "
		        "(mode %04o): chmod o-rwx it",
		        conf->file, (unsigned int)(st.st_mode & 07777));
	return VF_OK;
}
