/*
 * Private to vfiled: the daemon's state (struct vfd) and the calls between its
 * files: vfiled.c (main, start-up, shutdown), vfiled_membership.c (the embedded
 * cluster's membership thread), vfiled_role.c (role = auto: the swarm role and the
 * role thread), vfiled_docker.c (dockerd's API; the start-up container check),
 * vfiled_handle.c (the plugin requests), vfiled_status.c (the admin answers:
 * VFile.Status, KVDump, Nodes, Evict).
 */
#ifndef VFILE_VFILED_INT_H
#define VFILE_VFILED_INT_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <curl/curl.h>
#include <yajl/yajl_gen.h>

#include "cluster_int.h"
#include "common_int.h"
#include "config_int.h"
#include "daemon_int.h"
#include "embedded_int.h"
#include "fs_int.h"
#include "metrics_int.h"
#include "plugin_int.h"
#include "volume_int.h"

struct vfd {
	struct vf_conf *conf;
	char *node_id;
	char *node_addr;
	int manager;
	struct vfd_etcd *etcd;
	struct vf_backend *be;
	struct vf_kv *kv;
	const struct vf_fs_ops *fs;
	void *fs_arg;
	struct vf_fs_ops mfs; /* fs with metrics: what the volume manager gets */
	struct vf_ctx *ctx;
	struct vf_plugin_server *srv;
	struct vf_metrics_server *metrics;
	char node_key[600];   /* <prefix>node/<node>: what /healthz reads */
	const sigset_t *sigs; /* taken with sigtimedwait while starting */
	int stop_sig;         /* SIGTERM/SIGINT taken while starting */
	int refused;          /* a manager whose export_root is not the cluster's */
	/* role = auto: the role thread makes the volume-manager duties follow the
	 * swarm role (d->manager: the role applied, __atomic) */
	pthread_t rthr;
	int rthr_started, rstop; /* rstop under mmu, mcv wakes it */
	char role_why[512];      /* the last promotion refused: logged once */
	int ready;               /* __atomic: the store is reached, requests are served */
	pthread_mutex_t phase_mu;
	char phase[512]; /* what the daemon waits for while !ready: the Err answered */

	/* The embedded cluster (etcd.embedded): this host's member, run by the
	 * membership thread (one step every VFD_MEMBER_PERIOD_MS). mmu guards etcd
	 * and everything below. */
	pthread_mutex_t mmu;
	pthread_cond_t mcv;
	pthread_t mthr;
	int mthr_started, mstop;
	int live_manager; /* the role now (re-read from dockerd with role = auto) */
	int managers;     /* managers known (swarm, or the seeds listed) */
	char **seeds;     /* client URLs where members may answer */
	size_t nseeds;
	int bootstrapper;     /* may create the cluster */
	char *member_name;    /* etcd member name */
	char *ep_file;        /* <state_dir>/etcd-endpoints */
	struct vfe_list last; /* last member list read */
	int last_reachable;
	enum vfe_action last_action;
	char last_why[512];
	char last_members[1024];
	long changes; /* membership changes this host made */
};

#define VFD_MEMBER_PERIOD_MS 2000

/* ---- vfiled.c: start-up ---- */

/* The volume-manager role applied now (role = auto: it follows the swarm). */
int vfd_is_manager(struct vfd *d);
/* The store is reached: requests are served. */
int vfd_ready(struct vfd *d);
/* Wait ms for a signal in set; returns the signal or 0. */
int vfd_wait_signal(const sigset_t *set, int ms);
/* Stop a thread of d that waits on mcv (the membership or the role thread): *stop
 * set under mmu, mcv woken, thr joined, *started cleared; nothing if !*started. */
void vfd_thread_stop(struct vfd *d, pthread_t thr, int *started, int *stop);
/* A manager's export_root must hold the cluster's marker (cluster_int.h); the first
 * manager writes it. Store errors are retried like the store wait, unless once
 * (a promotion at runtime: the role thread tries again at its next period). */
int vfd_cluster(struct vfd *d, int once, struct vf_err *err);

/* ---- vfiled_membership.c: the embedded cluster ---- */

/* url with its host replaced: ("http://127.0.0.1:2379", "10.0.0.2") ->
 * "http://10.0.0.2:2379" (malloc'ed; NULL on a URL without "://"). */
char *vfd_url_with_host(const char *url, const char *host);
/* Set up the embedded cluster and take the first steps until this host's part is
 * settled (member running, standby, or a worker that found the members), within
 * a bound; then the membership thread goes on. */
int vfd_cluster_start(struct vfd *d, const sigset_t *sigs, struct vf_err *err);
/* Stop the membership thread (the member itself is stopped by the caller). */
void vfd_cluster_stop(struct vfd *d);

/* ---- vfiled_role.c: role = auto ---- */

/* GET /info on dockerd's socket: manager iff an active swarm node with control.
 * live: the running daemon's re-read (only the role and the managers change). */
int vfd_swarm_role(struct vfd *d, int live, struct vf_err *err);
/* Start the role thread: the volume-manager duties follow the swarm role. */
void vfd_role_start(struct vfd *d);
void vfd_role_stop(struct vfd *d);

/* ---- vfiled_docker.c: dockerd ---- */

/* GET url (http://localhost/...) on dockerd's socket (docker_socket) within
 * request_timeout_ms: the body into *body (at most ~4 MiB), the HTTP status into
 * *status_r, curl's outcome into *cc_r. VF_ENOMEM without a curl handle. */
int vfd_docker_get(struct vfd *d, const char *url, struct vf_buf *body, long *status_r,
                   CURLcode *cc_r, struct vf_err *err);
/* qsort/bsearch comparison of two char * */
int vfd_cmp_str(const void *a, const void *b);
/* With role = auto or docker_socket given: the mount ids this host holds for a
 * volume no live container uses are released. */
void vfd_containers_reconcile(struct vfd *d);

/* ---- vfiled_handle.c, vfiled_status.c: the plugin requests ---- */

/* The plugin server's handler (vf_plugin_handler_fn). */
int vfd_handle(void *arg, const struct vf_plugin_req *req, yajl_gen g, struct vf_err *err);
/* /VFile.Status, /VFile.KVDump, /VFile.Nodes, /VFile.Evict */
int vfd_status(struct vfd *d, yajl_gen g, struct vf_err *err);
int vfd_kvdump(struct vfd *d, yajl_gen g, struct vf_err *err);
int vfd_nodes(struct vfd *d, yajl_gen g, struct vf_err *err);
int vfd_evict(struct vfd *d, const struct vf_plugin_req *req, yajl_gen g, struct vf_err *err);

#endif /* VFILE_VFILED_INT_H */
