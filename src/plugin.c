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
	free(req->opts);
	vf_strv_free(req->opt_strs, 2 * req->nopts);
	memset(req, 0, sizeof(*req));
}

/* Reject nesting deeper than PLUGIN_MAX_DEPTH before handing text to yajl. */
static int plugin_depth_ok(const char *body, size_t len)
{
	int depth = 0, in_str = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = body[i];

		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = 0;
			continue;
		}
		if (ch == '"')
			in_str = 1;
		else if ((ch == '{' || ch == '[') && ++depth > PLUGIN_MAX_DEPTH)
			return 0;
		else if (ch == '}' || ch == ']')
			depth--;
	}
	return 1;
}

/* yajl strings are NUL-terminated: a \u0000 escape would silently cut a name. */
static int plugin_has_nul_escape(const char *body, size_t len)
{
	for (size_t i = 0; i + 6 <= len; i++)
		if (body[i] == '\\' && body[i + 1] == 'u' && body[i + 2] == '0' &&
		    body[i + 3] == '0' && body[i + 4] == '0' && body[i + 5] == '0')
			return 1;
	return 0;
}

/* Collapse runs of blanks (yajl's verbose messages) into one. */
static void plugin_squeeze(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++)
		if (!(*r == ' ' && w > s && w[-1] == ' '))
			*w++ = *r;
	*w = '\0';
}

static int plugin_blank(const char *body, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (body[i] != ' ' && body[i] != '\t' && body[i] != '\r' && body[i] != '\n')
			return 0;
	return 1;
}

static int plugin_decode_opts(yajl_val opts, const char *path, const char *const *known,
                              struct vf_plugin_req *req, struct vf_err *err)
{
	size_t n;

	if (opts == NULL || YAJL_IS_NULL(opts))
		return VF_OK;
	if (!YAJL_IS_OBJECT(opts))
		return vf_err_set(err, VF_EINVAL, "%s: Opts must be an object of strings", path);
	n = opts->u.object.len;
	if (n == 0)
		return VF_OK;
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

			for (const char *const *k = known; *k; k++)
				vf_buf_printf(&list, "%s%s", k == known ? "" : ", ", *k);
			vf_err_set(err, VF_EINVAL, "%s: unknown option '%.64s' (known: %s)", path,
			           key, list.data ? list.data : "none");
			vf_buf_free(&list);
			return VF_EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(req->opt_strs[2 * j], key) == 0)
				return vf_err_set(err, VF_EINVAL, "%s: option '%s' given twice",
				                  path, key);
		if (!YAJL_IS_STRING(v))
			return vf_err_set(err, VF_EINVAL, "%s: option '%s' must be a string", path,
			                  key);
		req->opt_strs[2 * i] = strdup(key);
		req->opt_strs[2 * i + 1] = strdup(v->u.string);
		if (req->opt_strs[2 * i] == NULL || req->opt_strs[2 * i + 1] == NULL)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		req->opts[i].key = req->opt_strs[2 * i];
		req->opts[i].value = req->opt_strs[2 * i + 1];
	}
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
	default:
		break;
	}
	if (root != NULL && !YAJL_IS_OBJECT(root) && !YAJL_IS_NULL(root))
		return vf_err_set(err, VF_EINVAL, "%s: the request body must be a JSON object",
		                  path);
	if (!need_name)
		return VF_OK;
	v = root && YAJL_IS_OBJECT(root) ? vf_json_get(root, "Name", NULL) : NULL;
	if (v == NULL || YAJL_IS_NULL(v))
		return vf_err_set(err, VF_EINVAL, "%s: missing Name", path);
	if (!YAJL_IS_STRING(v))
		return vf_err_set(err, VF_EINVAL, "%s: Name must be a string", path);
	name = v->u.string;
	if (!vf_plugin_name_valid(name))
		return vf_err_set(
		        err, VF_EINVAL,
		        "%s: invalid volume name '%.64s%s' (use 1 to %d of A-Z a-z 0-9 _ . "
		        "-, starting with a letter or digit)",
		        path, name, strlen(name) > 64 ? "..." : "", VF_VOLUME_NAME_MAX);
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

		for (size_t i = 0; i < PLUGIN_NPATHS; i++)
			vf_buf_printf(&list, "%s%s", i ? " " : "", plugin_paths[i].path);
		vf_err_set(err, VF_ENOTFOUND, "unknown endpoint '%.64s' (known: %s)",
		           path ? path : "", list.data ? list.data : "");
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
		if (!plugin_depth_ok(body, len))
			return vf_err_set(err, VF_EINVAL, "%s: malformed JSON: nested too deeply",
			                  path);
		if (plugin_has_nul_escape(body, len))
			return vf_err_set(err, VF_EINVAL,
			                  "%s: malformed JSON: NUL (\\u0000) in a string", path);
		rc = vf_json_parse(body, len, &root, err);
		if (rc != VF_OK) {
			plugin_squeeze(err->msg);
			vf_err_prefix(err, "%s", path);
			err->code = VF_EINVAL;
			return VF_EINVAL;
		}
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
};

/* Per request. */
struct plugin_conn {
	struct vf_buf body;
	size_t received;
	int too_large;
	int counted;
};

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

		if ((pc = calloc(1, sizeof(*pc))) == NULL)
			return MHD_NO;
		*con_cls = pc;
		pthread_mutex_lock(&srv->mu);
		srv->inflight++;
		pc->counted = 1;
		pthread_mutex_unlock(&srv->mu);
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
		                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > VF_PLUGIN_MAX_BODY) {
			/* Refuse before reading the body; MHD closes the connection after. */
			vf_log(VF_LOG_WARN, "plugin: %s: refused a %s-byte body (limit %d)", url,
			       cl, VF_PLUGIN_MAX_BODY);
			vf_err_set(&err, VF_ELIMIT,
			           "%s: request body too large (%s bytes, limit %d)", url, cl,
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
	if (pc->too_large) {
		vf_err_set(&err, VF_ELIMIT, "%s: request body too large (%zu bytes, limit %d)", url,
		           pc->received, VF_PLUGIN_MAX_BODY);
		return plugin_send_err(conn, MHD_HTTP_OK, err.msg);
	}
	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0 && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return plugin_send_err(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
	rc = vf_plugin_decode(url, pc->body.data, pc->body.len, srv->cfg.known_opts, &req, &err);
	if (rc == VF_ENOTFOUND) {
		vf_log(VF_LOG_DEBUG, "plugin: %s: unknown endpoint", url);
		return plugin_send_err(conn, MHD_HTTP_NOT_FOUND, err.msg);
	}
	if (rc != VF_OK) {
		vf_log(VF_LOG_INFO, "plugin: bad request: %s", err.msg);
		vf_plugin_req_clear(&req);
		return plugin_send_err(conn, MHD_HTTP_OK, err.msg);
	}
	rc = plugin_answer(srv, &req, &out, &len, &err);
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
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	vf_log(VF_LOG_DEBUG, "plugin: http: %s", line);
}

/* Make the unix socket: replace a stale one, refuse a live one. */
static int plugin_listen(const struct vf_plugin_server_cfg *cfg, int *fd_r, struct vf_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = cfg->socket_path;
	char dir[PATH_MAX], *slash;
	int fd = -1, rc;

	*fd_r = -1;
	if (strlen(path) >= sizeof(sa.sun_path))
		return vf_err_set(err, VF_EINVAL, "plugin socket path %s is too long", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
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
	}
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
			unlink(path);
	}
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vf_err_set(err, VF_EINVAL, "plugin socket %s: socket: %s", path,
		                  strerror(errno));
	mode_t old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0) {
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: bind: %s", path,
		                strerror(errno));
		goto fail;
	}
	if (cfg->socket_group) {
		struct group *gr = getgrnam(cfg->socket_group);

		if (gr == NULL) {
			rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: unknown group '%s'",
			                path, cfg->socket_group);
			goto fail_unlink;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) != 0) {
			rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: chown to group %s: %s",
			                path, cfg->socket_group, strerror(errno));
			goto fail_unlink;
		}
	}
	if (chmod(path, (mode_t)(cfg->socket_mode ? cfg->socket_mode : 0660)) != 0) {
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: chmod: %s", path,
		                strerror(errno));
		goto fail_unlink;
	}
	if (listen(fd, 64) != 0) {
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: listen: %s", path,
		                strerror(errno));
		goto fail_unlink;
	}
	*fd_r = fd;
	return VF_OK;
fail_unlink:
	unlink(path);
fail:
	close(fd);
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
	pthread_cond_init(&srv->cond, NULL);
	rc = plugin_listen(cfg, &srv->listen_fd, err);
	if (rc != VF_OK)
		goto fail;
	srv->mhd = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
	                MHD_USE_ERROR_LOG,
	        0, NULL, NULL, plugin_access, srv, MHD_OPTION_EXTERNAL_LOGGER, plugin_mhd_log, srv,
	        MHD_OPTION_LISTEN_SOCKET, srv->listen_fd, MHD_OPTION_NOTIFY_COMPLETED,
	        plugin_completed, srv, MHD_OPTION_CONNECTION_TIMEOUT,
	        (unsigned int)(cfg->idle_timeout_s > 0 ? cfg->idle_timeout_s : 60),
	        MHD_OPTION_CONNECTION_LIMIT, 256U, MHD_OPTION_END);
	if (srv->mhd == NULL) {
		rc = vf_err_set(err, VF_EINVAL, "plugin socket %s: cannot start the HTTP server",
		                cfg->socket_path);
		unlink(srv->socket_path);
		goto fail;
	}
	srv->listen_fd = -1; /* MHD owns it now (quiesce hands it back) */
	*srv_r = srv;
	return VF_OK;
fail:
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
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
	struct timespec until;
	int n;

	if (!srv->quiesced && srv->mhd) {
		MHD_socket fd = MHD_quiesce_daemon(srv->mhd);

		srv->quiesced = 1;
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
		unlink(srv->socket_path);
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&srv->mu);
	while (srv->inflight > 0)
		if (pthread_cond_timedwait(&srv->cond, &srv->mu, &until) == ETIMEDOUT)
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
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (!srv->quiesced)
		unlink(srv->socket_path);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cond);
	free(srv->socket_path);
	free(srv);
	*srvp = NULL;
}
