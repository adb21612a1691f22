/* Private to vfiled: the embedded etcd supervisor and the docker swarm query. */
#ifndef VFILE_DAEMON_INT_H
#define VFILE_DAEMON_INT_H

#include "config_int.h"

struct vfd_etcd;

/* Start a single-member etcd (e->binary) for node name with its data in
 * e->data_dir and its log in <data_dir>.log; wait up to timeout_ms until
 * <client_url>/health answers healthy. A supervisor thread restarts it when it
 * dies (with a bounded back-off) until vfd_etcd_stop(). */
int vfd_etcd_start(const struct vf_conf_embedded *e, const char *name, int timeout_ms,
                   struct vfd_etcd **ee_r, struct vf_err *err);
/* How many times the supervisor restarted it. */
int vfd_etcd_restarts(struct vfd_etcd *ee);
/* pid of the running member (0 if none). */
int vfd_etcd_pid(struct vfd_etcd *ee);
/* SIGTERM (SIGKILL after 10 s), reap, free. */
void vfd_etcd_stop(struct vfd_etcd **ee);
/* One health probe (GET <url>/health within timeout_ms): 1 healthy, 0 not. */
int vfd_etcd_healthy(const char *client_url, int timeout_ms);

#endif /* VFILE_DAEMON_INT_H */
