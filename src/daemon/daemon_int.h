/* Private to vfiled: the embedded etcd supervisor and the docker swarm query. */
#ifndef VFILE_DAEMON_INT_H
#define VFILE_DAEMON_INT_H

#include "config_int.h"

struct vfd_etcd;

/* Start this host's etcd member (e->binary) named name with its data in
 * e->data_dir and its log in <data_dir>.log: initial_cluster ("n1=peer1,...";
 * NULL: this member alone) with --initial-cluster-state new or existing; wait up
 * to timeout_ms until <client_url>/health answers healthy. TLS flags come from
 * e->cacert/cert/key for https URLs. A supervisor thread restarts it when it
 * dies (with a bounded back-off) until vfd_etcd_stop(). */
int vfd_etcd_start(const struct vf_conf_embedded *e, const char *name, const char *initial_cluster,
                   int existing, int timeout_ms, struct vfd_etcd **ee_r, struct vf_err *err);
/* name with characters etcd refuses in member names replaced by '_' (malloc'ed). */
char *vfd_etcd_member_name(const char *name);
/* Delete a member's data directory (recursively); absent is fine. */
int vfd_etcd_wipe(const char *data_dir, struct vf_err *err);
/* <data_dir>/member exists. */
int vfd_etcd_has_data(const char *data_dir);
/* How many times the supervisor restarted it. */
int vfd_etcd_restarts(struct vfd_etcd *ee);
/* pid of the running member (0 if none). */
int vfd_etcd_pid(struct vfd_etcd *ee);
/* SIGTERM (SIGKILL after 10 s), reap, free. */
void vfd_etcd_stop(struct vfd_etcd **ee);
/* One health probe (GET <url>/health within timeout_ms): 1 healthy, 0 not. */
int vfd_etcd_healthy(const char *client_url, int timeout_ms);

#endif /* VFILE_DAEMON_INT_H */
