/*
 * vfiled's part in the embedded cluster (etcd.embedded): this host's etcd member,
 * run by the membership thread, one step every VFD_MEMBER_PERIOD_MS (read the
 * member list, decide with embedded_cluster.c, act: bootstrap, start, join,
 * promote, leave, wipe); the endpoints file the etcd backend reads; and the etcd
 * group of the config pointed at the cluster. doc/design.md, "Embedded store:
 * membership".
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfiled_int.h"

/* ---- the config and the endpoints file ---- */

/* url with its host replaced: ("http://127.0.0.1:2379", "10.0.0.2") ->
 * "http://10.0.0.2:2379" (malloc'ed; NULL on a URL without "://"). */
char *vfd_url_with_host(const char *url, const char *host)
{
	const char *h = strstr(url, "://"), *rest;
	char *out = NULL;

	if (h == NULL)
		return NULL;
	h += 3;
	if (*h == '[')
		rest = strchr(h, ']') ? strchr(h, ']') + 1 : h + strlen(h);
	else
		rest = h + strcspn(h, ":/");
	if (asprintf(&out, "%.*s%s%s", (int)(h - url), url, host, rest) < 0)
		return NULL;
	return out;
}

/* Point the etcd group at the cluster: endpoints = the seeds (and this host's
 * member on a manager), endpoints_file = <state_dir>/etcd-endpoints, which the
 * membership thread keeps up to date with the voting members' client URLs. */
static int vfd_embedded_endpoints(struct vfd *d, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	config_setting_t *g = config_lookup(&c->cfg, "etcd"), *ep, *s;

	if (g == NULL)
		g = config_setting_add(config_root_setting(&c->cfg), "etcd", CONFIG_TYPE_GROUP);
	if (g == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (config_setting_get_member(g, "endpoints"))
		config_setting_remove(g, "endpoints");
	if (config_setting_get_member(g, "endpoints_file"))
		config_setting_remove(g, "endpoints_file");
	ep = config_setting_add(g, "endpoints", CONFIG_TYPE_ARRAY);
	if (ep == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (d->manager || d->nseeds == 0) {
		s = config_setting_add(ep, NULL, CONFIG_TYPE_STRING);
		if (s == NULL ||
		    config_setting_set_string(s, c->embedded.client_url) != CONFIG_TRUE)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < d->nseeds; i++) {
		if (d->manager && strcmp(d->seeds[i], c->embedded.client_url) == 0)
			continue;
		s = config_setting_add(ep, NULL, CONFIG_TYPE_STRING);
		if (s == NULL || config_setting_set_string(s, d->seeds[i]) != CONFIG_TRUE)
			return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	s = config_setting_add(g, "endpoints_file", CONFIG_TYPE_STRING);
	if (s == NULL || config_setting_set_string(s, d->ep_file) != CONFIG_TRUE)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	if (strcmp(c->backend_name, "etcd") == 0)
		c->backend_group = g;
	return VF_OK;
}

/* Rewrite the endpoints file (atomically) when its content changes. */
static void vfd_write_endpoints(struct vfd *d, const struct vfe_list *l)
{
	struct vf_buf b = {0};
	char tmp[4200], old[8192];
	FILE *f;
	size_t n = 0;
	int fd;

	if (vfe_list_endpoints(l, &b) != VF_OK || b.data == NULL) {
		vf_buf_free(&b);
		return;
	}
	if ((f = fopen(d->ep_file, "re")) != NULL) {
		n = fread(old, 1, sizeof(old) - 1, f);
		fclose(f);
		old[n] = '\0';
		if (n == b.len && memcmp(old, b.data, n) == 0) {
			vf_buf_free(&b);
			return;
		}
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->ep_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len && fsync(fd) == 0 &&
	    close(fd) == 0 && rename(tmp, d->ep_file) == 0) {
		for (char *p = b.data; *p; p++)
			if (*p == '\n')
				*p = ' ';
		vf_log(VF_LOG_INFO, "embedded cluster: endpoints now %s(%s)", b.data, d->ep_file);
	} else {
		vf_log(VF_LOG_WARN, "embedded cluster: cannot write %s: %s", d->ep_file,
		       strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	vf_buf_free(&b);
}

/* ---- the membership steps ---- */

static void vfd_member_tls(struct vfd *d, struct vfe_tls *t)
{
	t->cacert = d->conf->embedded.cacert;
	t->cert = d->conf->embedded.cert;
	t->key = d->conf->embedded.key;
}

/* --initial-cluster for a member joining list: every member's name=peer URL (the
 * member not started yet, this one, under this host's name). */
static char *vfd_initial_cluster(struct vfd *d, const struct vfe_list *l)
{
	struct vf_buf b = {0};

	for (size_t i = 0; i < l->n; i++) {
		const struct vfe_member *m = &l->m[i];
		int self = vfe_list_find(l, NULL, d->conf->embedded.peer_url) == m;

		if (m->npeer == 0 || (!self && m->name[0] == '\0'))
			continue;
		for (size_t k = 0; k < m->npeer; k++)
			vf_buf_printf(&b, "%s%s=%s", b.len ? "," : "",
			              self ? d->member_name : m->name, m->peer_urls[k]);
	}
	return b.data;
}

/* Start the local member (mmu not held: this takes seconds). */
static int vfd_member_start(struct vfd *d, const struct vfe_list *l, int existing,
                            struct vf_err *err)
{
	struct vfd_etcd *ee = NULL;
	char *ic = l ? vfd_initial_cluster(d, l) : NULL;
	int rc;

	rc = vfd_etcd_start(&d->conf->embedded, d->member_name, ic, existing, 30000, &ee, err);
	free(ic);
	if (rc == VF_OK) {
		pthread_mutex_lock(&d->mmu);
		d->etcd = ee;
		pthread_mutex_unlock(&d->mmu);
	}
	return rc;
}

static void vfd_member_stop(struct vfd *d)
{
	struct vfd_etcd *ee;

	pthread_mutex_lock(&d->mmu);
	ee = d->etcd;
	d->etcd = NULL;
	pthread_mutex_unlock(&d->mmu);
	vfd_etcd_stop(&ee);
}

static void vfd_member_changed(struct vfd *d, const char *what)
{
	pthread_mutex_lock(&d->mmu);
	d->changes++;
	pthread_mutex_unlock(&d->mmu);
	vf_metrics_inc(VF_M_MEMBER_CHANGES);
	vf_log(VF_LOG_INFO, "embedded cluster: member %s: %s", d->member_name, what);
}

/* Read the member list from any member that answers (the last list's voters,
 * the seeds, this host's member) and probe every member's /health. */
static int vfd_member_read(struct vfd *d, struct vfe_list *list, struct vf_err *err)
{
	struct vfe_client *cl = NULL;
	struct vfe_tls tls;
	char **urls = NULL;
	size_t n = 0, cap;
	int rc;

	vfd_member_tls(d, &tls);
	pthread_mutex_lock(&d->mmu);
	cap = d->nseeds + 1;
	for (size_t i = 0; i < d->last.n; i++)
		cap += d->last.m[i].nclient;
	urls = calloc(cap, sizeof(char *));
	if (urls && d->etcd)
		urls[n++] = strdup(d->conf->embedded.client_url);
	for (size_t i = 0; urls && i < d->last.n; i++)
		for (size_t k = 0; !d->last.m[i].learner && k < d->last.m[i].nclient; k++)
			urls[n++] = strdup(d->last.m[i].client_urls[k]);
	for (size_t i = 0; urls && i < d->nseeds; i++)
		urls[n++] = strdup(d->seeds[i]);
	pthread_mutex_unlock(&d->mmu);
	/* drop duplicates and NULLs */
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		int dup = urls[i] == NULL;

		for (size_t j = 0; j < k && !dup; j++)
			dup = strcmp(urls[j], urls[i]) == 0;
		if (dup)
			free(urls[i]);
		else
			urls[k++] = urls[i];
	}
	n = k;
	if (n == 0) {
		free(urls);
		return vf_err_set(err, VF_EUNAVAIL, "no member to ask (no seeds, no local member)");
	}
	rc = vfe_client_new(urls, n, &tls, 2000, &cl, err);
	if (rc == VF_OK)
		rc = vfe_member_list(cl, list, err);
	if (rc == VF_OK)
		vfe_member_probe(list, &tls, 1000);
	vfe_client_free(&cl);
	vf_strv_free(urls, n);
	return rc;
}

/* A client over the voting members of list (for add/promote/remove). */
static int vfd_member_client(struct vfd *d, const struct vfe_list *l, int skip_self,
                             struct vfe_client **cl_r, struct vf_err *err)
{
	struct vfe_tls tls;
	char **urls = NULL;
	size_t n = 0, cap = 0;
	int rc;

	vfd_member_tls(d, &tls);
	for (size_t i = 0; i < l->n; i++)
		cap += l->m[i].nclient;
	urls = calloc(cap + 1, sizeof(char *));
	if (urls == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	/* the healthy voters first */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < l->n; i++) {
			const struct vfe_member *m = &l->m[i];

			if (m->learner || m->healthy != !pass ||
			    (skip_self &&
			     vfe_list_find(l, d->member_name, d->conf->embedded.peer_url) == m))
				continue;
			for (size_t k = 0; k < m->nclient; k++)
				urls[n++] = m->client_urls[k];
		}
	if (n == 0) {
		free(urls);
		return vf_err_set(err, VF_EUNAVAIL, "no voting member to ask");
	}
	rc = vfe_client_new(urls, n, &tls, 5000, cl_r, err);
	free(urls);
	return rc;
}

/* What the decision is made from: this host's role and part (under mmu), its
 * data, and the list read (reachable: it answered). */
static void vfd_member_input(struct vfd *d, const struct vfe_list *list, int reachable,
                             struct vfe_input *in)
{
	struct vf_conf_embedded *e = &d->conf->embedded;

	pthread_mutex_lock(&d->mmu);
	in->manager = d->live_manager;
	in->running = d->etcd != NULL;
	in->bootstrapper = d->bootstrapper;
	in->managers = d->managers > 0 ? d->managers : 1;
	pthread_mutex_unlock(&d->mmu);
	in->have_data = vfd_etcd_has_data(e->data_dir);
	in->reachable = reachable;
	in->max_members = e->max_members;
	in->name = d->member_name;
	in->peer_url = e->peer_url;
	in->list = list;
}

/* Stop the local member and delete its data. */
static void vfd_member_wipe(struct vfd *d, struct vf_err *err)
{
	vfd_member_stop(d);
	if (vfd_etcd_wipe(d->conf->embedded.data_dir, err) != VF_OK)
		vf_log(VF_LOG_ERR, "embedded cluster: %s", err->msg);
}

/* VFE_JOIN: add this host's member to list's cluster as a learner, then start it
 * with the member list the add answered. */
static void vfd_member_join(struct vfd *d, const struct vfe_list *list, struct vfe_decision *dec,
                            struct vf_err *err)
{
	struct vfe_list after = {0};
	struct vfe_client *cl = NULL;
	uint64_t id = 0;

	vf_log(VF_LOG_INFO, "embedded cluster: %s", dec->why);
	if (vfd_member_client(d, list, 0, &cl, err) != VF_OK ||
	    vfe_member_add_learner(cl, d->conf->embedded.peer_url, &id, &after, err) != VF_OK) {
		snprintf(dec->why, sizeof(dec->why), "join: %s", err->msg);
		vf_log(VF_LOG_WARN, "embedded cluster: %s", dec->why);
		goto out;
	}
	vfd_member_changed(d, "added as a learner");
	if (vfd_member_start(d, &after, 1, err) != VF_OK) {
		snprintf(dec->why, sizeof(dec->why), "join: start failed: %s", err->msg);
		vf_log(VF_LOG_ERR, "embedded cluster: %s", dec->why);
	}
out:
	vfe_client_free(&cl);
	vfe_list_clear(&after);
}

/* VFE_PROMOTE: this host's learner becomes a voter (asked of the other voters). */
static void vfd_member_promote(struct vfd *d, const struct vfe_list *list, struct vfe_decision *dec,
                               struct vf_err *err)
{
	const struct vfe_member *self =
	        vfe_list_find(list, d->member_name, d->conf->embedded.peer_url);
	struct vfe_client *cl = NULL;

	if (self == NULL || vfd_member_client(d, list, 1, &cl, err) != VF_OK ||
	    vfe_member_promote(cl, self->id, err) != VF_OK) {
		snprintf(dec->why, sizeof(dec->why), "promote: %s (retrying)", err->msg);
		vf_log(VF_LOG_INFO, "embedded cluster: %s", dec->why);
	} else {
		vfd_member_changed(d, "promoted to a voting member");
	}
	vfe_client_free(&cl);
}

/* VFE_REJOIN, VFE_LEAVE: remove dec->remove_id from the cluster; leaving, this
 * host's member stops and its data goes too. */
static void vfd_member_remove(struct vfd *d, const struct vfe_list *list, struct vfe_decision *dec,
                              struct vf_err *err)
{
	int leave = dec->action == VFE_LEAVE;
	struct vfe_client *cl = NULL;

	vf_log(VF_LOG_INFO, "embedded cluster: %s", dec->why);
	if (vfd_member_client(d, list, leave, &cl, err) != VF_OK ||
	    vfe_member_remove(cl, dec->remove_id, err) != VF_OK) {
		snprintf(dec->why, sizeof(dec->why), "%s: %s", leave ? "leave" : "rejoin",
		         err->msg);
		vf_log(VF_LOG_WARN, "embedded cluster: %s", dec->why);
		goto out;
	}
	vfd_member_changed(d, leave ? "removed (left the cluster)" : "removed (to be re-added)");
	if (leave)
		vfd_member_wipe(d, err);
out:
	vfe_client_free(&cl);
}

/* Carry out dec (at most one change); a failure is put in dec->why. list: the
 * list read, when reachable. */
static void vfd_member_act(struct vfd *d, const struct vfe_list *list, int reachable,
                           struct vfe_decision *dec, struct vf_err *err)
{
	switch (dec->action) {
	case VFE_BOOTSTRAP:
		vf_log(VF_LOG_INFO, "embedded cluster: %s", dec->why);
		if (vfd_member_start(d, NULL, 0, err) != VF_OK) {
			snprintf(dec->why, sizeof(dec->why), "bootstrap failed: %s", err->msg);
			vf_log(VF_LOG_ERR, "embedded cluster: %s", dec->why);
		} else {
			vfd_member_changed(d, "bootstrapped a new cluster");
		}
		break;
	case VFE_START:
	case VFE_START_JOINING:
		vf_log(VF_LOG_INFO, "embedded cluster: %s", dec->why);
		if (vfd_member_start(d, reachable ? list : NULL, dec->action == VFE_START_JOINING,
		                     err) != VF_OK) {
			snprintf(dec->why, sizeof(dec->why), "start failed: %s", err->msg);
			vf_log(VF_LOG_ERR, "embedded cluster: %s", dec->why);
		}
		break;
	case VFE_JOIN:
		vfd_member_join(d, list, dec, err);
		break;
	case VFE_PROMOTE:
		vfd_member_promote(d, list, dec, err);
		break;
	case VFE_REJOIN:
	case VFE_LEAVE:
		vfd_member_remove(d, list, dec, err);
		break;
	case VFE_WIPE:
		vf_log(VF_LOG_INFO, "embedded cluster: %s", dec->why);
		vfd_member_wipe(d, err);
		break;
	case VFE_REFUSED:
	case VFE_WAIT:
	case VFE_STANDBY:
	case VFE_NONE:
		break;
	}
}

/* After a step: log the member list when it changed and why this host waits when
 * that changed; keep the outcome and (reachable) the list, taken from *list, for
 * VFile.Status, the next read and the metrics. */
static void vfd_member_record(struct vfd *d, struct vfe_list *list, int reachable,
                              const struct vfe_decision *dec)
{
	int voters = 0, learners = 0, healthy = 0;
	char desc[1024];

	vfe_list_describe(list, desc, sizeof(desc));
	for (size_t i = 0; i < list->n; i++) {
		voters += !list->m[i].learner;
		learners += list->m[i].learner;
		healthy += list->m[i].healthy;
	}
	pthread_mutex_lock(&d->mmu);
	if (reachable && strcmp(desc, d->last_members) != 0)
		vf_log(VF_LOG_INFO, "embedded cluster: members: %s", desc);
	if ((dec->action == VFE_REFUSED || dec->action == VFE_WAIT || dec->action == VFE_STANDBY) &&
	    (dec->action != d->last_action || strcmp(dec->why, d->last_why) != 0))
		vf_log(dec->action == VFE_REFUSED ? VF_LOG_WARN : VF_LOG_INFO,
		       "embedded cluster: %s", dec->why);
	d->last_action = dec->action;
	snprintf(d->last_why, sizeof(d->last_why), "%s", dec->why);
	d->last_reachable = reachable;
	if (reachable) {
		snprintf(d->last_members, sizeof(d->last_members), "%s", desc);
		vfe_list_clear(&d->last);
		d->last = *list;
		memset(list, 0, sizeof(*list));
		vf_metrics_gauge_set(VF_G_ETCD_MEMBERS, voters + learners);
		vf_metrics_gauge_set(VF_G_ETCD_VOTERS, voters);
		vf_metrics_gauge_set(VF_G_ETCD_LEARNERS, learners);
		vf_metrics_gauge_set(VF_G_ETCD_HEALTHY, healthy);
	}
	vf_metrics_gauge_set(VF_G_ETCD_LOCAL_MEMBER, d->etcd != NULL);
	pthread_mutex_unlock(&d->mmu);
}

/* One membership step: read the list, decide, act (at most one change).
 * Returns 1 when it acted (the next step should come soon: a learner to
 * promote, a removed member to re-add). */
static int vfd_member_step(struct vfd *d)
{
	struct vfe_list list = {0};
	struct vfe_input in = {0};
	struct vfe_decision dec;
	struct vf_err err = {0};
	int reachable;

	reachable = vfd_member_read(d, &list, &err) == VF_OK;
	vfd_member_input(d, &list, reachable, &in);
	vfe_decide(&in, &dec);
	vfd_member_act(d, &list, reachable, &dec, &err);
	if (reachable)
		vfd_write_endpoints(d, &list);
	vfd_member_record(d, &list, reachable, &dec);
	vfe_list_clear(&list);
	return dec.action != VFE_NONE && dec.action != VFE_WAIT && dec.action != VFE_STANDBY &&
	       dec.action != VFE_REFUSED;
}

/* Wait ms on the membership condition unless stopping; returns mstop. */
static int vfd_member_pause(struct vfd *d, int ms)
{
	int64_t until = vf_now_ms() + ms;
	int stop;

	pthread_mutex_lock(&d->mmu);
	while (!d->mstop)
		if (vf_cond_wait_until(&d->mcv, &d->mmu, until) == ETIMEDOUT)
			break;
	stop = d->mstop;
	pthread_mutex_unlock(&d->mmu);
	return stop;
}

/* Every VFD_MEMBER_PERIOD_MS: re-read the role (role = auto), one step. */
static void *vfd_member_thread(void *arg)
{
	struct vfd *d = arg;

	int acted = 0;

	while (!vfd_member_pause(d, acted ? VFD_MEMBER_PERIOD_MS / 4 : VFD_MEMBER_PERIOD_MS)) {
		if (d->conf->role == VF_ROLE_AUTO) {
			struct vf_err err = {0};

			if (vfd_swarm_role(d, 1, &err) != VF_OK)
				vf_log(VF_LOG_DEBUG, "embedded cluster: %s", err.msg);
		}
		acted = vfd_member_step(d);
	}
	return NULL;
}

/* Set up the embedded cluster and take the first steps until this host's part is
 * settled (member running, standby, or a worker that found the members), within
 * bound_ms; then the membership thread goes on. */
int vfd_cluster_start(struct vfd *d, const sigset_t *sigs, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	struct vf_conf_embedded *e = &c->embedded;
	int64_t until;
	int bound_ms = c->op_timeout_ms > 60000 ? c->op_timeout_ms : 60000;

	if (c->role == VF_ROLE_AUTO && !e->client_url_set && d->node_addr[0]) {
		char *u = vfd_url_with_host(e->client_url, d->node_addr);

		if (u) {
			free(e->client_url);
			e->client_url = u;
		}
	}
	if (c->role == VF_ROLE_AUTO && !e->peer_url_set && d->node_addr[0]) {
		char *u = vfd_url_with_host(e->peer_url, d->node_addr);

		if (u) {
			free(e->peer_url);
			e->peer_url = u;
		}
	}
	d->member_name = vfd_etcd_member_name(e->name ? e->name : d->node_id);
	if (asprintf(&d->ep_file, "%s/etcd-endpoints", c->state_dir) < 0)
		d->ep_file = NULL;
	if (d->member_name == NULL || d->ep_file == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	pthread_mutex_lock(&d->mmu);
	if (e->nseeds > 0) {
		vf_strv_free(d->seeds, d->nseeds);
		d->seeds = calloc(e->nseeds, sizeof(char *));
		d->nseeds = 0;
		for (size_t i = 0; d->seeds && i < e->nseeds; i++)
			if ((d->seeds[d->nseeds] = strdup(e->seeds[i])) != NULL)
				d->nseeds++;
		d->bootstrapper = strcmp(e->seeds[0], e->client_url) == 0;
		if (c->role != VF_ROLE_AUTO)
			d->managers = (int)e->nseeds;
	} else if (d->nseeds > 0) {
		/* seeds from the swarm: compare with the client URL derived above */
		d->bootstrapper = strcmp(d->seeds[0], e->client_url) == 0;
	} else {
		d->bootstrapper = 1; /* alone: the single-member setup */
		if (c->role != VF_ROLE_AUTO)
			d->managers = 1;
	}
	d->live_manager = d->manager;
	pthread_mutex_unlock(&d->mmu);
	vf_log(VF_LOG_INFO,
	       "embedded cluster: member %s (client %s, peer %s), %zu seed(s), %d manager(s)%s",
	       d->member_name, e->client_url, e->peer_url, d->nseeds, d->managers,
	       d->bootstrapper ? ", bootstrapper" : "");
	until = vf_now_ms() + bound_ms;
	for (;;) {
		(void)vfd_member_step(d);
		pthread_mutex_lock(&d->mmu);
		enum vfe_action a = d->last_action;
		/* A manager: its member runs as a voter (a learner refuses client
		 * requests: wait for its promotion), or it stands by, or it waits on a
		 * cluster that answers (it works as a client meanwhile). A worker: the
		 * cluster answered (the endpoints file is written). */
		int changing = a == VFE_BOOTSTRAP || a == VFE_START || a == VFE_START_JOINING ||
		               a == VFE_JOIN || a == VFE_PROMOTE || a == VFE_REJOIN ||
		               a == VFE_WIPE;
		int settled = d->manager ? (d->last_reachable && !changing &&
		                            (d->etcd != NULL || a == VFE_STANDBY || a == VFE_WAIT))
		                         : d->last_reachable;
		pthread_mutex_unlock(&d->mmu);
		if (settled)
			break;
		if (vf_now_ms() >= until) {
			vf_log(VF_LOG_WARN, "embedded cluster: not settled within %d ms: %s",
			       bound_ms, d->last_why);
			break;
		}
		if (vfd_wait_signal(sigs, VFD_MEMBER_PERIOD_MS / 4))
			return vf_err_set(err, VF_EINVAL, "stopped by a signal while starting");
	}
	if (pthread_create(&d->mthr, NULL, vfd_member_thread, d) == 0)
		d->mthr_started = 1;
	else
		return vf_err_set(err, VF_ENOMEM, "cannot start the membership thread");
	return vfd_embedded_endpoints(d, err);
}

void vfd_cluster_stop(struct vfd *d)
{
	vfd_thread_stop(d, d->mthr, &d->mthr_started, &d->mstop);
}
