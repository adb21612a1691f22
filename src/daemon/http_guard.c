/*
 * The connection guard of vfiled's HTTP listeners (the plugin socket, the metrics
 * port), over libmicrohttpd's connection notifications: a deadline on every
 * request (a whole request must arrive in time, not just a byte now and then), a
 * share of connections per unix peer uid, and the eviction of the connection
 * waiting longest when too many wait (plugin_int.h, struct vf_http_guard_cfg).
 */
#include <config.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "common_int.h"
#include "plugin_int.h"

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
