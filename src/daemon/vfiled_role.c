/*
 * role = auto: vfiled's role follows the swarm. dockerd's GET /info tells whether
 * this host is a swarm manager (and the swarm's managers: the embedded cluster's
 * seeds); the role thread starts the volume-manager duties on a promotion and
 * stops them on a demotion.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfiled_int.h"

/* ---- ask dockerd ---- */

/* The swarm's managers: their count, and (without embedded_seeds in the config)
 * the seeds: each manager's address with this host's client URL's scheme and port. */
static void vfd_swarm_managers(struct vfd *d, yajl_val info)
{
	struct vf_conf_embedded *e = &d->conf->embedded;
	yajl_val rm = vf_json_get(info, "Swarm", "RemoteManagers", NULL);
	int64_t n = 0;

	if (vf_json_int64(vf_json_get(info, "Swarm", "Managers", NULL), &n) == VF_OK && n > 0) {
		pthread_mutex_lock(&d->mmu);
		d->managers = (int)n;
		pthread_mutex_unlock(&d->mmu);
	}
	if (!e->enabled || e->nseeds > 0 || rm == NULL || !YAJL_IS_ARRAY(rm) ||
	    rm->u.array.len == 0)
		return;
	char **v = calloc(rm->u.array.len, sizeof(char *));
	size_t k = 0;

	if (v == NULL)
		return;
	for (size_t i = 0; i < rm->u.array.len; i++) {
		const char *a = vf_json_str(vf_json_get(rm->u.array.values[i], "Addr", NULL));
		char host[256];

		if (a == NULL || a[0] == '\0')
			continue;
		snprintf(host, sizeof(host), "%s", a);
		char *colon = strrchr(host, ':');

		if (colon && strchr(host, ']') < colon)
			*colon = '\0';
		if ((v[k] = vfd_url_with_host(e->client_url, host)) != NULL)
			k++;
	}
	qsort(v, k, sizeof(char *), vfd_cmp_str);
	pthread_mutex_lock(&d->mmu);
	vf_strv_free(d->seeds, d->nseeds);
	d->seeds = v;
	d->nseeds = k;
	d->bootstrapper = k > 0 && strcmp(v[0], e->client_url) == 0;
	pthread_mutex_unlock(&d->mmu);
}

/* GET /info on dockerd's socket: manager iff an active swarm node with control. */
int vfd_swarm_role(struct vfd *d, int live, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	struct vf_buf body = {0};
	yajl_val t = NULL;
	long status = 0;
	CURLcode cc;
	int rc = vfd_docker_get(d, "http://localhost/info", &body, &status, &cc, err);

	if (rc != VF_OK)
		return rc;
	if (cc != CURLE_OK) {
		rc = vf_err_set(err, VF_EUNAVAIL, "role = auto: cannot ask dockerd at %s: %s",
		                c->docker_socket, curl_easy_strerror(cc));
		goto out;
	}
	if (status != 200 || body.data == NULL ||
	    vf_json_parse(body.data, body.len, &t, NULL) != VF_OK) {
		rc = vf_err_set(err, VF_EPROTO, "role = auto: dockerd at %s answered HTTP %ld",
		                c->docker_socket, status);
		goto out;
	}
	const char *state = vf_json_str(vf_json_get(t, "Swarm", "LocalNodeState", NULL));
	const char *nid = vf_json_str(vf_json_get(t, "Swarm", "NodeID", NULL));
	const char *addr = vf_json_str(vf_json_get(t, "Swarm", "NodeAddr", NULL));
	yajl_val ctl = vf_json_get(t, "Swarm", "ControlAvailable", NULL);

	if (state && (strcmp(state, "pending") == 0 || strcmp(state, "locked") == 0)) {
		/* joining, or an autolocked swarm waiting for `docker swarm unlock` */
		rc = vf_err_set(err, VF_EUNAVAIL,
		                "role = auto: dockerd at %s: swarm node state is '%s'",
		                c->docker_socket, state);
		goto out;
	}
	if (state == NULL || strcmp(state, "active") != 0 || nid == NULL || nid[0] == '\0') {
		rc = vf_err_set(err, VF_EINVAL,
		                "role = auto: dockerd at %s is not an active swarm node "
		                "(LocalNodeState '%s'): join a swarm or set role to manager or "
		                "worker",
		                c->docker_socket, state ? state : "?");
		goto out;
	}
	vfd_swarm_managers(d, t);
	if (live) {
		/* the membership thread: only the role and the managers change */
		pthread_mutex_lock(&d->mmu);
		if (d->live_manager != (ctl != NULL && YAJL_IS_TRUE(ctl)))
			vf_log(VF_LOG_INFO,
			       "role = auto: the swarm made this node a %s: the volume manager "
			       "duties (watchers, reconciler, file servers)%s follow",
			       ctl != NULL && YAJL_IS_TRUE(ctl) ? "manager" : "worker",
			       c->embedded.enabled ? " and the embedded store's membership" : "");
		d->live_manager = ctl != NULL && YAJL_IS_TRUE(ctl);
		pthread_mutex_unlock(&d->mmu);
		rc = VF_OK;
		goto out;
	}
	d->manager = ctl != NULL && YAJL_IS_TRUE(ctl);
	if (!c->node_id_set) {
		free(d->node_id);
		d->node_id = strdup(nid);
	}
	if (addr && addr[0]) {
		free(d->node_addr);
		d->node_addr = strdup(addr);
	}
	if (d->node_id == NULL || d->node_addr == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	vf_log(VF_LOG_INFO, "role = auto: swarm node %s (%s) is a %s", nid, d->node_addr,
	       d->manager ? "manager" : "worker");
	rc = VF_OK;
out:
	yajl_tree_free(t);
	vf_buf_free(&body);
	return rc;
}

/* ---- the volume-manager duties follow the swarm role ---- */

/* One step: start the manager side on a promotion (export_root's marker first:
 * refused, this host stays a worker and says why once), stop it on a demotion
 * (its servers are served again by another manager; this host's mounts stay). */
static void vfd_role_apply(struct vfd *d, int want)
{
	struct vf_err err = {0};
	int rc;

	if (want == vfd_is_manager(d))
		return;
	if (!want) {
		vf_log(VF_LOG_WARN,
		       "role = auto: node %s demoted to a swarm worker: stopping the volume "
		       "manager duties and this node's file servers (another manager takes "
		       "them over)",
		       d->node_id);
		vf_ctx_stop_manager(d->ctx);
		__atomic_store_n(&d->manager, 0, __ATOMIC_RELEASE);
		d->role_why[0] = '\0';
		vf_log(VF_LOG_INFO, "role = auto: node %s is a worker", d->node_id);
		return;
	}
	if ((rc = vfd_cluster(d, 1, &err)) == VF_OK)
		rc = vf_ctx_start_manager(d->ctx, &err);
	if (rc != VF_OK) {
		if (strcmp(err.msg, d->role_why) != 0)
			vf_log(rc == VF_EUNAVAIL || rc == VF_EUNCERTAIN ? VF_LOG_WARN : VF_LOG_ERR,
			       "role = auto: node %s promoted to a swarm manager, but it cannot "
			       "take the volume manager duties: %s: it stays a worker (tried "
			       "again every %d ms)",
			       d->node_id, err.msg, VFD_MEMBER_PERIOD_MS);
		snprintf(d->role_why, sizeof(d->role_why), "%s", err.msg);
		return;
	}
	__atomic_store_n(&d->manager, 1, __ATOMIC_RELEASE);
	d->role_why[0] = '\0';
	vf_log(VF_LOG_INFO,
	       "role = auto: node %s promoted to a swarm manager: volume manager duties "
	       "started",
	       d->node_id);
}

/* Every VFD_MEMBER_PERIOD_MS: the swarm role (read by the membership thread when
 * the embedded cluster runs, else asked here), then vfd_role_apply. */
static void *vfd_role_thread(void *arg)
{
	struct vfd *d = arg;

	for (;;) {
		int64_t until = vf_now_ms() + VFD_MEMBER_PERIOD_MS;
		int want = -1;

		/* mcv is a vf_cond_init condvar: its waits are on the monotonic clock */
		pthread_mutex_lock(&d->mmu);
		while (!d->rstop)
			if (vf_cond_wait_until(&d->mcv, &d->mmu, until) == ETIMEDOUT)
				break;
		if (d->rstop) {
			pthread_mutex_unlock(&d->mmu);
			break;
		}
		if (d->mthr_started)
			want = d->live_manager;
		pthread_mutex_unlock(&d->mmu);
		if (want < 0) {
			struct vf_err err = {0};

			if (vfd_swarm_role(d, 1, &err) != VF_OK) {
				vf_log(VF_LOG_DEBUG, "role = auto: %s (role kept)", err.msg);
				continue;
			}
			pthread_mutex_lock(&d->mmu);
			want = d->live_manager;
			pthread_mutex_unlock(&d->mmu);
		}
		vfd_role_apply(d, want);
	}
	return NULL;
}

void vfd_role_start(struct vfd *d)
{
	pthread_mutex_lock(&d->mmu);
	if (!d->mthr_started)
		d->live_manager = d->manager; /* else the membership thread's */
	pthread_mutex_unlock(&d->mmu);
	if (pthread_create(&d->rthr, NULL, vfd_role_thread, d) == 0)
		d->rthr_started = 1;
	else
		vf_log(VF_LOG_ERR, "role = auto: cannot start the role thread: the "
		                   "volume manager role stays as it is until restart");
}

void vfd_role_stop(struct vfd *d)
{
	vfd_thread_stop(d, d->rthr, &d->rthr_started, &d->rstop);
}
