/* The metrics endpoint of vfiled: the Prometheus text exposition of metrics.c
 * and the health check served over HTTP (libmicrohttpd). */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <microhttpd.h>

#include "common_int.h"
#include "metrics_int.h"
#include "plugin_int.h"

#if MHD_VERSION < 0x00097002
typedef int metrics_mhd_result;
#else
typedef enum MHD_Result metrics_mhd_result;
#endif

/* ---- the HTTP listener ---- */

struct vf_metrics_server {
	struct MHD_Daemon *mhd;
	struct vf_http_guard *guard;
	int fd;
	int port;
};

static metrics_mhd_result metrics_reply(struct MHD_Connection *conn, unsigned int status,
                                        char *text, size_t len, const char *ctype)
{
	struct MHD_Response *resp =
	        MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	metrics_mhd_result ret;

	if (resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static metrics_mhd_result metrics_access(void *cls, struct MHD_Connection *conn, const char *url,
                                         const char *method, const char *version,
                                         const char *upload_data, size_t *upload_data_size,
                                         void **con_cls)
{
	char *text = NULL;
	size_t len = 0;

	(void)version;
	(void)upload_data;
	if (*upload_data_size) { /* a body: ignore it */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*con_cls == NULL) { /* first call: headers only */
		*con_cls = conn;
		return MHD_YES;
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		text = strdup("only GET\n");
		return metrics_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text,
		                     text ? strlen(text) : 0, "text/plain");
	}
	if (strcmp(url, "/metrics") == 0) {
		metrics_mhd_result ret;

		vf_http_guard_busy(cls, conn, 1);
		if (vf_metrics_render(&text, &len, NULL) != VF_OK) {
			vf_http_guard_busy(cls, conn, 0);
			return MHD_NO;
		}
		ret = metrics_reply(conn, MHD_HTTP_OK, text, len,
		                    "text/plain; version=0.0.4; charset=utf-8");
		vf_http_guard_busy(cls, conn, 0); /* the response is bounded again */
		return ret;
	}
	if (strcmp(url, "/healthz") == 0) {
		struct vf_err herr = {0};
		int ok;

		vf_http_guard_busy(cls, conn, 1);
		ok = vf_metrics_health(&herr) == VF_OK;
		vf_http_guard_busy(cls, conn, 0);
		if (ok)
			text = strdup("ok\n");
		else if (asprintf(&text, "unhealthy: %s\n", herr.msg) < 0)
			text = NULL;
		return metrics_reply(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text,
		                     text ? strlen(text) : 0, "text/plain");
	}
	if (strcmp(url, "/") == 0) {
		text = strdup("vfiled: GET /metrics, GET /healthz\n");
		return metrics_reply(conn, MHD_HTTP_OK, text, text ? strlen(text) : 0,
		                     "text/plain");
	}
	text = strdup("not found: GET /metrics, GET /healthz\n");
	return metrics_reply(conn, MHD_HTTP_NOT_FOUND, text, text ? strlen(text) : 0, "text/plain");
}

static void metrics_mhd_log(void *arg, const char *fmt, va_list ap)
{
	char buf[512];

	(void)arg;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	vf_log(VF_LOG_DEBUG, "metrics listener: %s", buf);
}

int vf_metrics_server_start(const char *addr, struct vf_metrics_server **srv_r, struct vf_err *err)
{
	struct vf_metrics_server *srv = NULL;
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int one = 1, rc;

	*srv_r = NULL;
	if ((rc = vf_metrics_addr_parse(addr, &ss, &len, err)) != VF_OK)
		return rc;
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return vf_err_set(err, VF_ENOMEM, "metrics: out of memory");
	srv->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv->fd < 0) {
		rc = vf_err_set(err, VF_EINVAL, "metrics_listen %s: socket: %s", addr,
		                strerror(errno));
		goto fail;
	}
	setsockopt(srv->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(srv->fd, (struct sockaddr *)&ss, len) != 0 || listen(srv->fd, 64) != 0) {
		rc = vf_err_set(err, VF_EINVAL, "metrics_listen %s: cannot listen: %s", addr,
		                strerror(errno));
		goto fail;
	}
	len = sizeof(ss);
	if (getsockname(srv->fd, (struct sockaddr *)&ss, &len) == 0)
		srv->port =
		        ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
		                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	/* MHD's timeout is idle time (each byte restarts it): the guard bounds the whole
	 * request and drops the longest waiting when many wait, so a scrape gets in */
	struct vf_http_guard_cfg gc = {.request_ms = VF_METRICS_REQUEST_MS,
	                               .pending_max = VF_METRICS_PENDING,
	                               .what = "metrics listener"};
	if ((rc = vf_http_guard_new(&gc, &srv->guard, err)) != VF_OK)
		goto fail;
	srv->mhd = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	        metrics_access, srv->guard, MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, NULL,
	        MHD_OPTION_LISTEN_SOCKET, srv->fd, MHD_OPTION_NOTIFY_CONNECTION,
	        vf_http_guard_notify, srv->guard, MHD_OPTION_CONNECTION_TIMEOUT, 10U,
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)VF_METRICS_CONNS, MHD_OPTION_END);
	if (srv->mhd == NULL) {
		rc = vf_err_set(err, VF_EINVAL, "metrics_listen %s: cannot start the HTTP server",
		                addr);
		goto fail;
	}
	*srv_r = srv;
	return VF_OK;
fail:
	if (srv->fd >= 0)
		close(srv->fd);
	vf_http_guard_free(&srv->guard);
	free(srv);
	return rc;
}

int vf_metrics_server_port(const struct vf_metrics_server *srv)
{
	return srv ? srv->port : 0;
}

void vf_metrics_server_stop(struct vf_metrics_server **srvp)
{
	struct vf_metrics_server *srv = srvp ? *srvp : NULL;

	if (srv == NULL)
		return;
	MHD_stop_daemon(srv->mhd); /* does not close a socket given with LISTEN_SOCKET */
	vf_http_guard_free(&srv->guard);
	close(srv->fd);
	free(srv);
	*srvp = NULL;
}
