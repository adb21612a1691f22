/*
 * The embedded cluster's decisions (no I/O): what this host's etcd member does
 * next, from the member list, the members' health, this host's role and its data.
 * doc/design.md ("Embedded store: membership") explains the rules; in short:
 * - the cluster is created once, by the bootstrapper, when no member answers;
 * - a manager joins as a learner only while every member is healthy and no other
 *   learner waits, and only while the count is below the target (odd, capped);
 * - a member is removed (by itself: demoted, data lost, count above the target)
 *   only when the members left still hold a quorum of healthy voters.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded_int.h"

/* ---- the member list ---- */

static uint64_t vfe_id(yajl_val v)
{
	const char *s = vf_json_str(v);
	int64_t i = 0;

	if (s) {
		errno = 0;
		unsigned long long u = strtoull(s, NULL, 10);

		return errno ? 0 : (uint64_t)u;
	}
	if (v && vf_json_int64(v, &i) == VF_OK)
		return (uint64_t)i;
	return 0;
}

static int vfe_strv(yajl_val a, char ***v_r, size_t *n_r)
{
	*v_r = NULL;
	*n_r = 0;
	if (a == NULL || !YAJL_IS_ARRAY(a) || a->u.array.len == 0)
		return VF_OK;
	*v_r = calloc(a->u.array.len, sizeof(char *));
	if (*v_r == NULL)
		return VF_ENOMEM;
	for (size_t i = 0; i < a->u.array.len; i++) {
		const char *s = vf_json_str(a->u.array.values[i]);

		if (s == NULL)
			continue;
		if (((*v_r)[*n_r] = strdup(s)) == NULL)
			return VF_ENOMEM;
		(*n_r)++;
	}
	return VF_OK;
}

static int vfe_member_cmp(const void *a, const void *b)
{
	const struct vfe_member *x = a, *y = b;

	if ((x->name[0] == '\0') != (y->name[0] == '\0'))
		return x->name[0] == '\0' ? 1 : -1;
	if (x->name[0])
		return strcmp(x->name, y->name);
	return x->id < y->id ? -1 : x->id > y->id;
}

void vfe_list_clear(struct vfe_list *l)
{
	for (size_t i = 0; l && i < l->n; i++) {
		free(l->m[i].name);
		vf_strv_free(l->m[i].peer_urls, l->m[i].npeer);
		vf_strv_free(l->m[i].client_urls, l->m[i].nclient);
	}
	if (l) {
		free(l->m);
		l->m = NULL;
		l->n = 0;
	}
}

int vfe_list_parse(const char *json, size_t len, struct vfe_list *list_r, struct vf_err *err)
{
	yajl_val t = NULL, ms;
	int rc;

	memset(list_r, 0, sizeof(*list_r));
	if ((rc = vf_json_parse(json, len, &t, err)) != VF_OK)
		return vf_err_prefix(err, "member list");
	ms = vf_json_get(t, "members", NULL);
	if (ms == NULL || !YAJL_IS_ARRAY(ms)) {
		yajl_tree_free(t);
		return vf_err_set(err, VF_EPROTO, "member list: no \"members\" array");
	}
	list_r->m = calloc(ms->u.array.len + 1, sizeof(struct vfe_member));
	if (list_r->m == NULL) {
		yajl_tree_free(t);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < ms->u.array.len; i++) {
		yajl_val m = ms->u.array.values[i];
		struct vfe_member *o = &list_r->m[list_r->n++];
		const char *name = vf_json_str(vf_json_get(m, "name", NULL));
		yajl_val l = vf_json_get(m, "isLearner", NULL);

		o->id = vfe_id(vf_json_get(m, "ID", NULL));
		o->name = strdup(name ? name : "");
		o->learner = l != NULL && YAJL_IS_TRUE(l);
		if (o->name == NULL ||
		    vfe_strv(vf_json_get(m, "peerURLs", NULL), &o->peer_urls, &o->npeer) != VF_OK ||
		    vfe_strv(vf_json_get(m, "clientURLs", NULL), &o->client_urls, &o->nclient) !=
		            VF_OK) {
			yajl_tree_free(t);
			vfe_list_clear(list_r);
			return vf_err_set(err, VF_ENOMEM, "out of memory");
		}
	}
	yajl_tree_free(t);
	/* by name (members not started yet, nameless, last): logs and status read
	 * the same order on every host */
	qsort(list_r->m, list_r->n, sizeof(struct vfe_member), vfe_member_cmp);
	return VF_OK;
}

const struct vfe_member *vfe_list_find(const struct vfe_list *l, const char *name,
                                       const char *peer_url)
{
	for (size_t i = 0; i < l->n; i++)
		if (name && l->m[i].name[0] && strcmp(l->m[i].name, name) == 0)
			return &l->m[i];
	for (size_t i = 0; peer_url && i < l->n; i++)
		for (size_t k = 0; k < l->m[i].npeer; k++)
			if (strcmp(l->m[i].peer_urls[k], peer_url) == 0)
				return &l->m[i];
	return NULL;
}

int vfe_list_endpoints(const struct vfe_list *l, struct vf_buf *out)
{
	int rc = VF_OK;

	for (size_t i = 0; i < l->n && rc == VF_OK; i++)
		if (!l->m[i].learner)
			for (size_t k = 0; k < l->m[i].nclient && rc == VF_OK; k++)
				rc = vf_buf_printf(out, "%s\n", l->m[i].client_urls[k]);
	return rc;
}

void vfe_list_describe(const struct vfe_list *l, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < l->n && off < size; i++) {
		const struct vfe_member *m = &l->m[i];
		int w = snprintf(buf + off, size - off, "%s%s(%s,%s)", i ? " " : "",
		                 m->name[0] ? m->name : (m->npeer ? m->peer_urls[0] : "?"),
		                 m->learner ? "learner" : "voter",
		                 m->nclient == 0 ? "not started"
		                 : m->healthy    ? "healthy"
		                                 : "unhealthy");

		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (l->n == 0)
		snprintf(buf, size, "(none)");
}

/* ---- rules ---- */

int vfe_quorum(int voters)
{
	return voters / 2 + 1;
}

int vfe_target(int managers, int max_members)
{
	int t = managers;

	if (max_members > 0 && t > max_members)
		t = max_members;
	if (t % 2 == 0)
		t--;
	return t < 1 ? 1 : t;
}

const char *vfe_action_name(enum vfe_action a)
{
	static const char *const names[] = {
	        "none",   "bootstrap", "start", "join",    "start-joining", "promote",
	        "rejoin", "leave",     "wipe",  "standby", "wait",          "refused",
	};

	return (size_t)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

static const char *vfe_mname(const struct vfe_member *m)
{
	return m->name[0] ? m->name : m->npeer ? m->peer_urls[0] : "?";
}

/* Would removing member x (healthy or not) leave a quorum of healthy voters
 * among the voters left? Writes the refusal into d when not. */
static int vfe_removal_safe(const struct vfe_list *l, const struct vfe_member *x,
                            struct vfe_decision *d, const char *what)
{
	int voters = 0, healthy = 0, need;

	for (size_t i = 0; i < l->n; i++) {
		const struct vfe_member *m = &l->m[i];

		if (m == x || m->learner)
			continue;
		voters++;
		healthy += m->healthy;
	}
	if (x->learner) /* a learner does not vote: removing it costs no quorum */
		return 1;
	if (voters == 0) {
		d->action = VFE_REFUSED;
		snprintf(d->why, sizeof(d->why),
		         "%s: refused: member %s is the cluster's last voting member (removing "
		         "it would destroy the store)",
		         what, vfe_mname(x));
		return 0;
	}
	need = vfe_quorum(voters);
	if (healthy < need) {
		d->action = VFE_REFUSED;
		snprintf(d->why, sizeof(d->why),
		         "%s: refused: removing member %s would lose quorum (%d voting members "
		         "left, %d of them healthy, %d needed)",
		         what, vfe_mname(x), voters, healthy, need);
		return 0;
	}
	return 1;
}

/* Every member started and healthy, and no learner waiting? Else d says who. */
static int vfe_all_healthy(const struct vfe_list *l, struct vfe_decision *d, const char *what)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct vfe_member *m = &l->m[i];

		if (m->learner) {
			d->action = VFE_WAIT;
			snprintf(d->why, sizeof(d->why),
			         "%s: waiting: member %s is a learner not yet promoted", what,
			         vfe_mname(m));
			return 0;
		}
		if (!m->healthy) {
			d->action = VFE_WAIT;
			snprintf(d->why, sizeof(d->why),
			         "%s: waiting: member %s is %s (its /health did not answer true)",
			         what, vfe_mname(m), m->nclient ? "unhealthy" : "not started");
			return 0;
		}
	}
	return 1;
}

void vfe_decide(const struct vfe_input *in, struct vfe_decision *d)
{
	const struct vfe_list *l = in->list;
	const struct vfe_member *self;
	int voters = 0, target = vfe_target(in->managers, in->max_members);

	memset(d, 0, sizeof(*d));
	d->action = VFE_NONE;
	if (!in->reachable || l == NULL) {
		if (!in->manager) {
			snprintf(d->why, sizeof(d->why), "not a manager; no member answers");
		} else if (in->have_data) {
			/* After a whole-cluster outage each member restarts on its data. */
			d->action = in->running ? VFE_NONE : VFE_START;
			snprintf(d->why, sizeof(d->why),
			         "no member answers: starting the local member on its data");
		} else if (in->bootstrapper) {
			d->action = VFE_BOOTSTRAP;
			snprintf(d->why, sizeof(d->why),
			         "no member answers and this manager is the bootstrapper: creating "
			         "the cluster");
		} else {
			d->action = VFE_WAIT;
			snprintf(d->why, sizeof(d->why),
			         "waiting: no member answers yet (the cluster is created by the "
			         "bootstrapping manager)");
		}
		return;
	}
	self = vfe_list_find(l, in->name, in->peer_url);
	for (size_t i = 0; i < l->n; i++)
		voters += !l->m[i].learner;
	if (!in->manager) {
		if (self) {
			d->remove_id = self->id;
			d->action = VFE_LEAVE;
			snprintf(d->why, sizeof(d->why),
			         "no longer a manager: leaving the cluster");
			vfe_removal_safe(l, self, d, "leave");
		} else if (in->have_data || in->running) {
			d->action = VFE_WIPE;
			snprintf(
			        d->why, sizeof(d->why),
			        "not a manager and not a member: deleting the local member's data");
		}
		return;
	}
	if (self) {
		if (!in->have_data && !in->running && self->nclient > 0) {
			/* It ran before (it has client URLs) and its data is gone. */
			d->remove_id = self->id;
			d->action = VFE_REJOIN;
			snprintf(d->why, sizeof(d->why),
			         "member %s is listed but its data is lost: removing and re-adding "
			         "it",
			         vfe_mname(self));
			vfe_removal_safe(l, self, d, "rejoin");
			return;
		}
		if (!in->running) {
			d->action =
			        in->have_data || self->nclient > 0 ? VFE_START : VFE_START_JOINING;
			snprintf(d->why, sizeof(d->why), "member %s: starting it", vfe_mname(self));
			return;
		}
		if (self->learner) {
			d->action = VFE_PROMOTE;
			snprintf(d->why, sizeof(d->why), "member %s is a learner: promoting it",
			         vfe_mname(self));
			return;
		}
		/* Above the target (managers were demoted or the cap lowered): the voter
		 * with the greatest name leaves, when that is safe and all are healthy. */
		if (voters > target) {
			const struct vfe_member *last = NULL;

			for (size_t i = 0; i < l->n; i++)
				if (!l->m[i].learner &&
				    (last == NULL || strcmp(l->m[i].name, last->name) > 0))
					last = &l->m[i];
			if (last == self && vfe_all_healthy(l, d, "shrink")) {
				d->remove_id = self->id;
				d->action = VFE_LEAVE;
				snprintf(d->why, sizeof(d->why),
				         "%d voting members for %d managers (target %d): member %s "
				         "leaves and stands by",
				         voters, in->managers, target, vfe_mname(self));
				vfe_removal_safe(l, self, d, "shrink");
			} else if (last != self) {
				d->action = VFE_NONE;
				d->why[0] = '\0';
			}
		}
		return;
	}
	/* A manager that is not a member. */
	if (in->have_data || in->running) {
		d->action = VFE_WIPE;
		snprintf(d->why, sizeof(d->why),
		         "the local member is not in the cluster's list (removed while away): "
		         "deleting its data before joining again");
		return;
	}
	if ((int)l->n >= target) {
		d->action = VFE_STANDBY;
		snprintf(d->why, sizeof(d->why),
		         "standby: the cluster has %zu members, the target for %d managers is %d "
		         "(an odd count)",
		         l->n, in->managers, target);
		return;
	}
	if (!vfe_all_healthy(l, d, "join"))
		return;
	d->action = VFE_JOIN;
	snprintf(d->why, sizeof(d->why),
	         "joining as a learner: %zu members, target %d for %d managers, all healthy", l->n,
	         target, in->managers);
}
