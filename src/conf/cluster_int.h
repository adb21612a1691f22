/*
 * The cluster marker: which cluster a manager's export_root belongs to.
 *
 * Any manager may serve any volume, so every manager's fileserver.export_root must
 * be the same shared storage. The first manager (or `vfilectl init`) writes a
 * random cluster id to <export_root>/.vfile-cluster and to the store key
 * <prefix>cluster (create-if-absent). A manager whose export_root holds no marker
 * or another cluster's refuses to start, so volume data never splits silently
 * across managers' local disks.
 */
#ifndef VFILE_CLUSTER_INT_H
#define VFILE_CLUSTER_INT_H

#include "vfile/kv.h"

#define VF_CLUSTER_MARKER ".vfile-cluster"
#define VF_CLUSTER_KEY "cluster" /* under the prefix */

enum vf_cluster_mode {
	VF_CLUSTER_START = 0, /* a manager starting: create the cluster if the store has
	                       * none, else the marker must match */
	VF_CLUSTER_INIT = 1,  /* vfilectl init: as START, and also write the store's id
	                       * into an export_root that has no marker yet */
};

/* Check (and, as mode allows, create) the marker of export_root against the
 * store's <prefix>cluster. VF_OK with the cluster id in *id_r (the caller frees)
 * and what was done in *what_r (static text: "matches", "created", "adopted",
 * "written"); VF_EINVAL with the reason when export_root is not the cluster's;
 * store errors as the backend reports them. */
int vf_cluster_check(struct vf_kv *kv, const char *prefix, const char *export_root,
                     enum vf_cluster_mode mode, char **id_r, const char **what_r,
                     struct vf_err *err);

/* The export_root a fileserver group names (NULL: the driver's default), and
 * whether its driver keeps data there (not "none"). 0 on a bad group. */
int vf_cluster_export_root(const config_setting_t *fileserver, char *buf, size_t size,
                           int *keeps_data_r);

#endif /* VFILE_CLUSTER_INT_H */
