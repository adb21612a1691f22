/*
 * The Docker volume plugin protocol's server: the unix socket (made safely, or
 * taken from systemd), an HTTP/1.1 server over it (libmicrohttpd, one thread per
 * connection, every connection under the guard of http_guard.c), the checks on a
 * request line and its headers, and the answer: a request decoded by
 * plugin_decode.c goes to the handler, its JSON back with "Err". Activate and
 * Capabilities are answered here.
 */
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

#include "common_int.h"
#include "plugin_int.h"

#if MHD_VERSION < 0x00097002
typedef int plugin_mhd_result;
#else
typedef enum MHD_Result plugin_mhd_result;
#endif

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

/* The room in a unix socket address for its path. */
#define PLUGIN_SUN_PATH sizeof(((struct sockaddr_un *)NULL)->sun_path)

/* Check cfg's mode and path; make the socket's directory (and its parents) and put
 * its path in dir. */
static int plugin_sock_dir(const struct vf_plugin_server_cfg *cfg, char *dir, size_t size,
                           struct vf_err *err)
{
	const char *path = cfg->socket_path;
	char *slash;

	if (cfg->socket_mode < 0 || cfg->socket_mode > 0777)
		return vf_err_set(
		        err, VF_EINVAL,
		        "plugin socket %s: mode %o is not a permission mode (0000 to 0777)", path,
		        (unsigned int)cfg->socket_mode);
	if (strlen(path) >= PLUGIN_SUN_PATH)
		return vf_err_set(err, VF_EINVAL,
		                  "plugin socket path %s is too long (limit %zu bytes)", path,
		                  PLUGIN_SUN_PATH - 1);
	snprintf(dir, size, "%s", path);
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
		snprintf(dir, size, "%s", slash == dir ? "/" : ".");
	}
	if (strlen(dir) + 12 >= PLUGIN_SUN_PATH)
		return vf_err_set(err, VF_EINVAL,
		                  "plugin socket %s: its directory's path is too long (limit %zu "
		                  "bytes, to bind it in a private directory first)",
		                  path, PLUGIN_SUN_PATH - 13);
	return VF_OK;
}

/* The socket's group (cfg->socket_group; (gid_t)-1: unchanged); warns of a mode
 * that lets every local user in. */
static int plugin_sock_group(const struct vf_plugin_server_cfg *cfg, gid_t *gid_r,
                             struct vf_err *err)
{
	const char *path = cfg->socket_path;
	mode_t mode = (mode_t)cfg->socket_mode;

	*gid_r = (gid_t)-1;
	if (cfg->socket_group) {
		struct group *gr = getgrnam(cfg->socket_group);

		if (gr == NULL)
			return vf_err_set(err, VF_EINVAL, "plugin socket %s: unknown group '%s'",
			                  path, cfg->socket_group);
		*gid_r = gr->gr_gid;
	}
	if (mode & 0002)
		vf_log(VF_LOG_WARN,
		       "plugin socket %s: mode %04o lets every local user create, mount and "
		       "remove volumes; use 0660 and socket_group",
		       path, (unsigned int)mode);
	return VF_OK;
}

/* A socket at path that nobody listens on is stale: removed. One that answers is
 * another vfiled's: VF_EBUSY. */
static int plugin_sock_stale(const char *path, struct vf_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

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
	return VF_OK;
}

/* The listening socket at sa, in the private directory: bound with no access for
 * anyone, given its group (gid) and mode, listening. *fd_r: the socket, also on a
 * failure (the caller closes it). */
static int plugin_sock_bind(const struct vf_plugin_server_cfg *cfg, gid_t gid,
                            const struct sockaddr_un *sa, int *fd_r, struct vf_err *err)
{
	const char *path = cfg->socket_path;
	mode_t old;
	int fd, rc;

	*fd_r = fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vf_err_set(err, VF_EINVAL, "plugin socket %s: socket: %s", path,
		                  strerror(errno));
	old = umask(0177);
	rc = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
	umask(old);
	if (rc != 0)
		return vf_err_set(err, VF_EINVAL, "plugin socket %s: bind: %s", path,
		                  strerror(errno));
	if (vf_plugin_test_after_bind)
		vf_plugin_test_after_bind(path);
	if (gid != (gid_t)-1 &&
	    fchownat(AT_FDCWD, sa->sun_path, (uid_t)-1, gid, AT_SYMLINK_NOFOLLOW) != 0)
		return vf_err_set(err, VF_EINVAL, "plugin socket %s: chown to group %s: %s", path,
		                  cfg->socket_group, strerror(errno));
	/* in the private directory: no symlink there */
	if (chmod(sa->sun_path, (mode_t)cfg->socket_mode) != 0)
		return vf_err_set(err, VF_EINVAL, "plugin socket %s: chmod: %s", path,
		                  strerror(errno));
	if (listen(fd, 64) != 0)
		return vf_err_set(err, VF_EINVAL, "plugin socket %s: listen: %s", path,
		                  strerror(errno));
	return VF_OK;
}

/* Make the unix socket: replace a stale one, refuse a live one. The socket is bound
 * in a private directory (0700) next to its path, given its group and mode there,
 * where nobody can swap it for a symlink, then linked into place. */
static int plugin_listen(const struct vf_plugin_server_cfg *cfg, int *fd_r, struct vf_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = cfg->socket_path;
	char dir[PATH_MAX], tmpdir[PATH_MAX];
	gid_t gid = (gid_t)-1;
	int fd = -1, rc;

	*fd_r = -1;
	if ((rc = plugin_sock_dir(cfg, dir, sizeof(dir), err)) != VF_OK ||
	    (rc = plugin_sock_group(cfg, &gid, err)) != VF_OK ||
	    (rc = plugin_sock_stale(path, err)) != VF_OK)
		return rc;
	snprintf(tmpdir, sizeof(tmpdir), "%s/.vfXXXXXX", dir);
	if (mkdtemp(tmpdir) == NULL)
		return vf_err_set(err, VF_EINVAL,
		                  "plugin socket %s: cannot make a private directory in %s: %s",
		                  path, dir, strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.*s/s", (int)sizeof(sa.sun_path) - 3, tmpdir);
	rc = plugin_sock_bind(cfg, gid, &sa, &fd, err);
	/* link(2), not rename(2): whatever took the path since (another vfiled's socket,
	 * a symlink) is not replaced */
	if (rc == VF_OK && link(sa.sun_path, path) != 0)
		rc = vf_err_set(err, errno == EEXIST ? VF_EBUSY : VF_EINVAL,
		                "plugin socket %s: cannot put the socket in place: %s", path,
		                strerror(errno));
	unlink(sa.sun_path); /* in place under path, or failed */
	if (rc != VF_OK && fd >= 0) {
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
