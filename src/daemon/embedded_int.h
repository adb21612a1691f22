/*
 * Private to vfiled: the embedded etcd cluster of the managers.
 *
 * embedded_cluster.c: the member list (parsed from etcd's JSON) and the decision
 * what this host's member does next (bootstrap, join as a learner, promote, leave,
 * stand by...). Pure functions, no I/O: the unit test feeds them lists.
 * embedded_member.c: the calls that read and change the membership through the
 * etcd v3 JSON gateway (member list/add/promote/remove, /health per member).
 */
#ifndef VFILE_EMBEDDED_INT_H
#define VFILE_EMBEDDED_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common_int.h"

struct vfe_member {
	uint64_t id;
	char *name; /* "" for a member added but not started yet */
	char **peer_urls;
	size_t npeer;
	char **client_urls; /* empty until the member has started */
	size_t nclient;
	int learner;
	int healthy; /* GET <first client URL>/health answered {"health":"true"} */
};

struct vfe_list {
	struct vfe_member *m;
	size_t n;
};

/* Parse a /v3/cluster/member/list (or add/promote/remove) answer's "members". */
int vfe_list_parse(const char *json, size_t len, struct vfe_list *list_r, struct vf_err *err);
void vfe_list_clear(struct vfe_list *list);
/* The member named name, else the one whose peer URLs include peer_url; NULL. */
const struct vfe_member *vfe_list_find(const struct vfe_list *list, const char *name,
                                       const char *peer_url);
/* Client URLs of the started voting members, "\n"-separated lines (for the
 * endpoints file); learners refuse client requests and are left out. */
int vfe_list_endpoints(const struct vfe_list *list, struct vf_buf *out);
/* One line for logs and status: "m1(voter,healthy) m2(learner) ...". */
void vfe_list_describe(const struct vfe_list *list, char *buf, size_t size);

/* Voting members needed for quorum among n voters. */
int vfe_quorum(int voters);
/* How many members the cluster should have for this many managers: the largest
 * odd number <= managers, at most max_members (itself made odd), at least 1. */
int vfe_target(int managers, int max_members);

enum vfe_action {
	VFE_NONE = 0,  /* nothing to do */
	VFE_BOOTSTRAP, /* no cluster answers and this manager creates it: a new one-member cluster
	                */
	VFE_START,     /* start the local member on its own data (already a member) */
	VFE_JOIN,      /* add this host as a learner, then start it with state "existing" */
	VFE_START_JOINING, /* listed but never started (added earlier): start with "existing" */
	VFE_PROMOTE,       /* a started learner: ask the cluster to promote it */
	VFE_REJOIN,        /* listed, but its data is lost: remove it (remove_id), then join */
	VFE_LEAVE,         /* remove this host's member (remove_id), stop it, delete its data */
	VFE_WIPE,          /* not a member (removed while away): stop the local one, delete data */
	VFE_STANDBY,       /* a manager without a member: the cluster has enough (odd count) */
	VFE_WAIT,          /* not safe now (why says what): ask again later */
	VFE_REFUSED,       /* a removal refused because it would cost quorum (why says so) */
};

struct vfe_input {
	int manager;          /* this host is a manager now */
	int have_data;        /* <data_dir>/member exists */
	int running;          /* the local member process runs */
	int reachable;        /* list holds a member list read from the cluster */
	int bootstrapper;     /* this manager may create the cluster when none answers */
	int managers;         /* managers in the swarm (or listed in the config) */
	int max_members;      /* cap on members */
	const char *name;     /* this host's member name */
	const char *peer_url; /* this host's peer URL */
	const struct vfe_list *list;
};

struct vfe_decision {
	enum vfe_action action;
	uint64_t remove_id; /* VFE_REJOIN, VFE_LEAVE */
	char why[512];
};

/* What this host's member does next. */
void vfe_decide(const struct vfe_input *in, struct vfe_decision *d);
const char *vfe_action_name(enum vfe_action a);

/* ---- embedded_member.c: the gateway calls ---- */
struct vfe_client;
struct vfe_tls {
	const char *cacert, *cert, *key; /* may be NULL */
};
/* A client over the given client URLs (tried in order, failover). */
int vfe_client_new(char *const *urls, size_t n, const struct vfe_tls *tls, long timeout_ms,
                   struct vfe_client **c_r, struct vf_err *err);
void vfe_client_free(struct vfe_client **c);
int vfe_member_list(struct vfe_client *c, struct vfe_list *list_r, struct vf_err *err);
/* Add peer_url as a learner; *id_r its new id; list_r the members after it. */
int vfe_member_add_learner(struct vfe_client *c, const char *peer_url, uint64_t *id_r,
                           struct vfe_list *list_r, struct vf_err *err);
int vfe_member_promote(struct vfe_client *c, uint64_t id, struct vf_err *err);
int vfe_member_remove(struct vfe_client *c, uint64_t id, struct vf_err *err);
/* Probe /health of every started member (fills healthy). */
void vfe_member_probe(struct vfe_list *list, const struct vfe_tls *tls, long timeout_ms);

#endif /* VFILE_EMBEDDED_INT_H */
