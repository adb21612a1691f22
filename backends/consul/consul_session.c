/* The Consul driver's sessions (leases): the session node, create, renew,
 * destroy, the keep-alive thread and the lease slots. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consul_int.h"

/* ---- sessions (leases) ---- */

/* The node new sessions are bound to, into node ("": the agent's own).
 *
 * A session is bound to a catalog node, by default the node of the agent that
 * created it. When the other servers mark that node failed (its agent stopped,
 * paused or cut off), Consul ends every session bound to it, whatever the
 * session's checks, although the servers that hold quorum still answer and the
 * session is renewed through them. So sessions go to a node of their own
 * (consul.session_node, registered here once per handle through the catalog,
 * without checks: no agent runs it, no serf failure ends it, and the leader's
 * reconciliation leaves nodes without a serfHealth check alone): the TTL alone
 * decides. A token refused the registration (ACL: it needs node "<name>"
 * { policy = "write" }) falls back to the agent's node, with a warning. */
static int consul_session_node(struct consul_kv *ck, char *node, size_t size, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	char *body = NULL;
	size_t len;
	int state, rc;

	node[0] = '\0';
	if (ck->session_node == NULL)
		return VF_OK;
	pthread_mutex_lock(&ck->mu);
	state = ck->snode;
	pthread_mutex_unlock(&ck->mu);
	if (state < 0)
		return VF_OK;
	if (state == 0) {
		rc = consul_node_register_body(ck->session_node, &body, &len, err);
		/* idempotent: registering the same node again changes nothing */
		if (rc == VF_OK)
			rc = consul_http(ck, "PUT", "/v1/catalog/register", body, len, 1, 0, NULL,
			                 &resp, err);
		if (rc == VF_OK && resp.status == 403) {
			struct vf_err e = {0};

			consul_status_error(resp.status, resp.body.data, resp.body.len, 1,
			                    "catalog register", &e);
			vf_log(VF_LOG_WARN,
			       "consul: cannot register the session node \"%s\" (%s): sessions are "
			       "bound to the agent's node instead, and end when the servers mark "
			       "it failed; grant the token node \"%s\" { policy = \"write\" }",
			       ck->session_node, e.msg, ck->session_node);
			state = -1;
		} else if (rc == VF_OK && resp.status != 200) {
			rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 1,
			                         "catalog register", err);
		} else if (rc == VF_OK) {
			state = 1;
		}
		vf_http_resp_free(&resp);
		free(body);
		if (rc != VF_OK)
			return vf_err_prefix(err, "session node %s", ck->session_node);
		pthread_mutex_lock(&ck->mu);
		if (ck->snode >= 0)
			ck->snode = state;
		state = ck->snode;
		pthread_mutex_unlock(&ck->mu);
	}
	if (state > 0)
		snprintf(node, size, "%s", ck->session_node);
	return VF_OK;
}

/* Forget the session node's state: register it again (1: it vanished from the
 * catalog) or give it up (-1: the token may not bind sessions to it). */
static void consul_session_node_reset(struct consul_kv *ck, int state)
{
	pthread_mutex_lock(&ck->mu);
	if (ck->snode >= 0)
		ck->snode = state;
	pthread_mutex_unlock(&ck->mu);
}

static int consul_session_create(struct consul_kv *ck, int ttl_s, const char *behavior, char *id,
                                 size_t idsz, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	char name[192], node[128], *body = NULL;
	size_t len;
	unsigned long seq;
	int rc;

	pthread_mutex_lock(&ck->mu);
	seq = ++ck->seq;
	pthread_mutex_unlock(&ck->mu);
	snprintf(name, sizeof(name), "vfile-%s-%s-%lu", ck->holder, behavior, seq);
	for (int attempt = 0;; attempt++) {
		rc = consul_session_node(ck, node, sizeof(node), err);
		if (rc != VF_OK)
			goto out;
		rc = consul_session_body(name, ttl_s, behavior, ck->lock_delay_ms, node, &body,
		                         &len, err);
		if (rc != VF_OK)
			goto out;
		rc = consul_http(ck, "PUT", "/v1/session/create", body, len, 0, 0, NULL, &resp,
		                 err);
		free(body);
		body = NULL;
		if (rc != VF_OK)
			goto out;
		if (resp.status == 200 || node[0] == '\0' || attempt > 0)
			break;
		if (resp.status == 403) {
			vf_log(VF_LOG_WARN,
			       "consul: a session on node \"%s\" was refused (ACL: the token needs "
			       "session \"%s\" { policy = \"write\" }): sessions are bound to the "
			       "agent's node instead, and end when the servers mark it failed",
			       node, node);
			consul_session_node_reset(ck, -1);
		} else if (resp.body.data &&
		           memmem(resp.body.data, resp.body.len, "Missing node registration",
		                  strlen("Missing node registration"))) {
			/* someone removed the node from the catalog: register it again */
			consul_session_node_reset(ck, 0);
		} else {
			break;
		}
		vf_http_resp_free(&resp);
	}
	if (resp.status == 200)
		rc = consul_session_create_parse(resp.body.data ? resp.body.data : "",
		                                 resp.body.len, id, idsz, err);
	else
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 1,
		                         "session create", err);
out:
	vf_http_resp_free(&resp);
	free(body);
	return rc;
}

static int consul_session_destroy(struct consul_kv *ck, const char *id, struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	char path[128];
	int rc;

	snprintf(path, sizeof(path), "/v1/session/destroy/%s", id);
	rc = consul_http(ck, "PUT", path, NULL, 0, 1, 0, NULL, &resp, err);
	if (rc == VF_OK && resp.status != 200)
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 1, path, err);
	vf_http_resp_free(&resp);
	return rc;
}

/* VF_ELEASE when the session is gone; *ttl_r = the TTL Consul answered. */
static int consul_session_renew(struct consul_kv *ck, const char *id, int64_t left_ms, int *ttl_r,
                                struct vf_err *err)
{
	struct vf_http_resp resp = {0};
	char path[128];
	long tmo = 0; /* the handle's timeout */
	int rc;

	if (left_ms < ck->timeout_ms)
		tmo = left_ms > 100 ? (long)left_ms : 100;
	snprintf(path, sizeof(path), "/v1/session/renew/%s", id);
	rc = consul_http(ck, "PUT", path, NULL, 0, 1, tmo, NULL, &resp, err);
	if (rc != VF_OK)
		goto out;
	if (resp.status == 200)
		rc = consul_session_ttl_parse(resp.body.data ? resp.body.data : "", resp.body.len,
		                              ttl_r, err);
	else
		rc = consul_status_error(resp.status, resp.body.data, resp.body.len, 0,
		                         "session renew", err);
	if (rc == VF_ENOTFOUND)
		rc = vf_err_set(err, VF_ELEASE, "lease %s is gone (session expired or destroyed)",
		                id);
out:
	vf_http_resp_free(&resp);
	return rc;
}

int consul_lease_del_session(struct consul_kv *ck, struct consul_lease *cl, char *sid,
                             struct vf_err *err)
{
	char id[64];
	int rc;

	pthread_mutex_lock(&ck->mu);
	snprintf(sid, 64, "%s", cl->del_id);
	pthread_mutex_unlock(&ck->mu);
	if (*sid)
		return VF_OK;
	rc = consul_session_create(ck, cl->base.ttl_s, "delete", id, sizeof(id), err);
	if (rc != VF_OK)
		return rc;
	pthread_mutex_lock(&ck->mu);
	if (cl->del_id[0] == '\0') {
		snprintf(cl->del_id, sizeof(cl->del_id), "%s", id);
		id[0] = '\0';
	}
	snprintf(sid, 64, "%s", cl->del_id);
	pthread_mutex_unlock(&ck->mu);
	if (id[0]) /* lost a race with another thread: drop ours */
		consul_session_destroy(ck, id, NULL);
	return VF_OK;
}

/* Renew both sessions of a lease, each request bounded by left_ms (> 0) and
 * the handle's timeout. */
static int consul_lease_renew(struct consul_kv *ck, struct consul_lease *cl, int64_t left_ms,
                              int *ttl_r, struct vf_err *err)
{
	char del_id[64];
	int ttl2 = 0, rc;
	int64_t t0 = vf_now_ms();

	pthread_mutex_lock(&ck->mu);
	snprintf(del_id, sizeof(del_id), "%s", cl->del_id);
	pthread_mutex_unlock(&ck->mu);
	rc = consul_session_renew(ck, cl->base.id, left_ms, ttl_r, err);
	if (rc == VF_OK && del_id[0])
		rc = consul_session_renew(ck, del_id, left_ms - (vf_now_ms() - t0), &ttl2, err);
	if (rc == VF_OK && ttl2 && ttl2 < *ttl_r)
		*ttl_r = ttl2;
	return rc;
}

static void *consul_keepalive_main(void *arg)
{
	struct consul_kv *ck = arg;

	pthread_mutex_lock(&ck->mu);
	while (!ck->ka_stop) {
		struct consul_lease *due = NULL;
		int64_t now = vf_now_ms(), next = now + 60000;

		for (struct consul_lease *l = ck->leases; l; l = l->next) {
			if (l->gone || (l->flags & VF_LEASE_MANUAL))
				continue;
			if (l->next_ms <= now) {
				due = l;
				break;
			}
			if (l->next_ms < next)
				next = l->next_ms;
		}
		if (due == NULL) {
			vf_cond_wait_until(&ck->cv, &ck->mu, next);
			continue;
		}
		due->busy = 1;
		pthread_mutex_unlock(&ck->mu);

		struct vf_err e = {0};
		int64_t started = vf_now_ms();
		int64_t deadline = due->confirmed_ms + (int64_t)due->base.ttl_s * 1000;
		int ttl = 0, rc = consul_lease_renew(ck, due, deadline - started, &ttl, &e);

		pthread_mutex_lock(&ck->mu);
		if (rc == VF_OK) {
			if (ttl > 0)
				due->base.ttl_s = ttl;
			due->confirmed_ms = started;
			due->next_ms = vf_now_ms() + (int64_t)due->base.ttl_s * 500;
		} else if (rc != VF_ELEASE && vf_now_ms() >= deadline) {
			/* kv.h: the store may have ended it by now: report it lost. */
			char last[128];

			snprintf(last, sizeof(last), "%.120s", e.msg);
			vf_err_set(&e, VF_ELEASE,
			           "no renewal confirmed for its TTL of %d s (last error: %s)",
			           due->base.ttl_s, last);
			rc = VF_ELEASE;
		}
		if (rc == VF_ELEASE) {
			vf_kv_lease_lost_fn fn = due->lost;
			void *fa = due->arg;
			char id[64], other[64];

			due->gone = 1;
			snprintf(id, sizeof(id), "%s", due->base.id);
			snprintf(other, sizeof(other), "%s", due->del_id);
			pthread_mutex_unlock(&ck->mu);
			vf_log(VF_LOG_WARN, "consul: lease %s lost: %s", id, e.msg);
			/* busy stays set while fn runs: lease_revoke() from another thread
			 * waits, from fn itself it leaves the free to us. fn first: the
			 * store may be unreachable, and the loss is due now. */
			if (fn)
				fn(&due->base, fa);
			/* Make the loss whole: end both sessions (if the store still
			 * has them). */
			consul_session_destroy(ck, id, NULL);
			if (other[0])
				consul_session_destroy(ck, other, NULL);
			pthread_mutex_lock(&ck->mu);
			due->busy = 0;
			if (due->revoked)
				free(due);
			pthread_cond_broadcast(&ck->cv);
			continue;
		}
		due->busy = 0;
		if (rc != VF_OK) {
			int64_t retry = vf_now_ms() + 1000;

			vf_log(VF_LOG_WARN, "consul: lease %s: renewal failed, retrying: %s",
			       due->base.id, e.msg);
			due->next_ms = retry < deadline ? retry : deadline;
		}
		pthread_cond_broadcast(&ck->cv);
	}
	pthread_mutex_unlock(&ck->mu);
	return NULL;
}

int consul_lease_grant(struct vf_kv *kv, int ttl_s, unsigned int flags, vf_kv_lease_lost_fn lost,
                       void *arg, struct vf_kv_lease **lease_r, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_lease *cl;
	int64_t t_grant;
	int rc;

	*lease_r = NULL;
	if (ttl_s <= 0 && ck->session_ttl_s > 0)
		ttl_s = ck->session_ttl_s;
	if (ttl_s < CONSUL_MIN_TTL_S || ttl_s > CONSUL_MAX_TTL_S)
		return vf_err_set(
		        err, VF_EINVAL,
		        "lease TTL %d s refused: Consul session TTLs must be between %d s "
		        "(minimum) and %d s",
		        ttl_s, CONSUL_MIN_TTL_S, CONSUL_MAX_TTL_S);
	cl = calloc(1, sizeof(*cl));
	if (cl == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	t_grant = vf_now_ms();
	rc = consul_session_create(ck, ttl_s, "release", cl->base.id, sizeof(cl->base.id), err);
	if (rc != VF_OK) {
		free(cl);
		return vf_err_prefix(err, "lease grant");
	}
	cl->base.ttl_s = ttl_s;
	cl->flags = flags;
	cl->lost = lost;
	cl->arg = arg;
	cl->next_ms = vf_now_ms() + (int64_t)ttl_s * 500;
	cl->confirmed_ms = t_grant;
	pthread_mutex_lock(&ck->mu);
	cl->next = ck->leases;
	ck->leases = cl;
	if (!(flags & VF_LEASE_MANUAL) && !ck->ka_started) {
		if (pthread_create(&ck->ka_thread, NULL, consul_keepalive_main, ck) == 0)
			ck->ka_started = 1;
		else
			rc = vf_err_set(err, VF_ENOMEM, "cannot start the keep-alive thread");
	}
	pthread_cond_broadcast(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	if (rc != VF_OK) {
		struct vf_kv_lease *l = &cl->base;
		kv->ops->lease_revoke(kv, &l, NULL);
		return rc;
	}
	*lease_r = &cl->base;
	return VF_OK;
}

int consul_lease_keepalive(struct vf_kv *kv, struct vf_kv_lease *lease, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_lease *cl = (struct consul_lease *)lease;
	int64_t started = vf_now_ms();
	int ttl = 0, rc = consul_lease_renew(ck, cl, ck->timeout_ms, &ttl, err);

	pthread_mutex_lock(&ck->mu);
	if (rc == VF_OK) {
		if (ttl > 0)
			cl->base.ttl_s = ttl;
		cl->confirmed_ms = started;
		cl->next_ms = vf_now_ms() + (int64_t)cl->base.ttl_s * 500;
	}
	pthread_mutex_unlock(&ck->mu);
	return rc;
}

int consul_lease_revoke(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err)
{
	struct consul_kv *ck = consul_of(kv);
	struct consul_lease *cl = (struct consul_lease *)*lease;
	int rc = VF_OK;

	if (cl == NULL)
		return VF_OK;
	*lease = NULL;
	pthread_mutex_lock(&ck->mu);
	/* The keep-alive thread renews it or runs its lost callback: wait, unless
	 * this is that thread (revoke from the callback): it frees cl after. */
	while (cl->busy && !(ck->ka_started && pthread_equal(ck->ka_thread, pthread_self())))
		pthread_cond_wait(&ck->cv, &ck->mu);
	if (cl->busy)
		cl->revoked = 1;
	for (struct consul_lease **pp = &ck->leases; *pp; pp = &(*pp)->next)
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	pthread_mutex_unlock(&ck->mu);
	/* Delete session first: its keys vanish before the locks are released. */
	if (cl->del_id[0])
		rc = consul_session_destroy(ck, cl->del_id, err);
	int rc2 = consul_session_destroy(ck, cl->base.id, rc == VF_OK ? err : NULL);
	if (rc == VF_OK)
		rc = rc2;
	if (rc != VF_OK)
		vf_err_prefix(err, "revoke lease %s", cl->base.id);
	pthread_mutex_lock(&ck->mu);
	if (!cl->revoked)
		free(cl);
	pthread_mutex_unlock(&ck->mu);
	return rc;
}
