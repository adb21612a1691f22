/*
 * vfiled's admin answers, which vfilectl reads: /VFile.Status (this host, its
 * role, lease, file servers and embedded cluster member), /VFile.KVDump (every
 * key under the prefix), /VFile.Nodes and /VFile.Evict.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfiled_int.h"

/* Status's embedded cluster part: this host's member and the membership thread's
 * last view (mmu held). */
static void vfd_status_embedded(struct vfd *d, yajl_gen g)
{
	if (d->etcd) {
		vf_jgen_str(g, "EmbeddedEtcd");
		yajl_gen_map_open(g);
		vf_jgen_str(g, "URL");
		vf_jgen_str(g, d->conf->embedded.client_url);
		vf_jgen_str(g, "Pid");
		vf_jgen_int(g, vfd_etcd_pid(d->etcd));
		vf_jgen_str(g, "Restarts");
		vf_jgen_int(g, vfd_etcd_restarts(d->etcd));
		yajl_gen_map_close(g);
	}
	vf_jgen_str(g, "Membership");
	yajl_gen_map_open(g);
	vf_jgen_str(g, "Member");
	vf_jgen_str(g, d->member_name ? d->member_name : "");
	vf_jgen_str(g, "SwarmRole");
	vf_jgen_str(g, d->live_manager ? "manager" : "worker");
	vf_jgen_str(g, "Managers");
	vf_jgen_int(g, d->managers);
	vf_jgen_str(g, "State");
	vf_jgen_str(g, d->etcd && d->last_action == VFE_NONE ? "member"
	               : d->last_action == VFE_NONE && !d->live_manager
	                       ? "client"
	                       : vfe_action_name(d->last_action));
	vf_jgen_str(g, "Why");
	vf_jgen_str(g, d->last_why);
	vf_jgen_str(g, "Changes");
	vf_jgen_int(g, d->changes);
	vf_jgen_str(g, "Members");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < d->last.n; i++) {
		const struct vfe_member *m = &d->last.m[i];
		char id[32];

		yajl_gen_map_open(g);
		snprintf(id, sizeof(id), "%llx", (unsigned long long)m->id);
		vf_jgen_str(g, "ID");
		vf_jgen_str(g, id);
		vf_jgen_str(g, "Name");
		vf_jgen_str(g, m->name);
		vf_jgen_str(g, "ClientURL");
		vf_jgen_str(g, m->nclient ? m->client_urls[0] : "");
		vf_jgen_str(g, "Learner");
		yajl_gen_bool(g, m->learner);
		vf_jgen_str(g, "Healthy");
		yajl_gen_bool(g, m->healthy);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	vf_jgen_str(g, "Reachable");
	yajl_gen_bool(g, d->last_reachable);
	yajl_gen_map_close(g);
}

/* /VFile.Status: this host, its role, lease, file servers and embedded member. */
int vfd_status(struct vfd *d, yajl_gen g, struct vf_err *err)
{
	struct vf_volume *vols = NULL;
	struct vf_ctx_status st;
	size_t n = 0;

	if (vf_ctx_status(d->ctx, &st) != VF_OK)
		return vf_err_set(err, VF_EINVAL, "node %s: no context", d->node_id);

	vf_jgen_str(g, "Node");
	vf_jgen_str(g, d->node_id);
	vf_jgen_str(g, "Role");
	vf_jgen_str(g, vfd_is_manager(d) ? "manager" : "worker");
	vf_jgen_str(g, "Backend");
	vf_jgen_str(g, d->conf->backend);
	vf_jgen_str(g, "Lease");
	vf_jgen_str(g, st.lease_id);
	vf_jgen_str(g, "Manager");
	yajl_gen_map_open(g);
	vf_jgen_str(g, "Watchers");
	vf_jgen_int(g, st.watchers);
	vf_jgen_str(g, "Servers");
	yajl_gen_array_open(g);
	if (vfd_is_manager(d) && d->fs->running &&
	    vf_volume_list(d->ctx, &vols, &n, err) == VF_OK) {
		for (size_t i = 0; i < n; i++)
			if (d->fs->running(d->fs_arg, vols[i].name) == 1)
				vf_jgen_str(g, vols[i].name);
		for (size_t i = 0; i < n; i++)
			vf_volume_clear(&vols[i]);
		free(vols);
	}
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	if (d->conf->embedded.enabled) {
		pthread_mutex_lock(&d->mmu);
		vfd_status_embedded(d, g);
		pthread_mutex_unlock(&d->mmu);
	}
	return VF_OK;
}

/* /VFile.KVDump: every key under the prefix. */
int vfd_kvdump(struct vfd *d, yajl_gen g, struct vf_err *err)
{
	struct vf_kv_list l = {0};
	int rc = d->kv->ops->list(d->kv, d->conf->prefix, &l, err);

	if (rc != VF_OK)
		return vf_err_prefix(err, "cannot list %s", d->conf->prefix);
	vf_jgen_str(g, "Keys");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < l.count; i++) {
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Key");
		vf_jgen_str(g, l.items[i].key);
		vf_jgen_str(g, "Value");
		vf_jgen_strn(g, l.items[i].value ? l.items[i].value : "", l.items[i].value_len);
		vf_jgen_str(g, "ModRev");
		vf_jgen_int(g, l.items[i].mod_rev);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	vf_kv_list_clear(&l);
	return VF_OK;
}

/* /VFile.Nodes: every host with a liveness key or a client key. */
int vfd_nodes(struct vfd *d, yajl_gen g, struct vf_err *err)
{
	struct vf_node *nodes = NULL;
	size_t n = 0;
	int rc = vf_node_list(d->ctx, &nodes, &n, err);

	if (rc != VF_OK)
		return rc;
	vf_jgen_str(g, "Nodes");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++) {
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Node");
		vf_jgen_str(g, nodes[i].name);
		vf_jgen_str(g, "Role");
		vf_jgen_str(g, nodes[i].role ? nodes[i].role : "");
		vf_jgen_str(g, "Addr");
		vf_jgen_str(g, nodes[i].addr ? nodes[i].addr : "");
		vf_jgen_str(g, "Started");
		vf_jgen_int(g, nodes[i].started);
		vf_jgen_str(g, "Alive");
		yajl_gen_bool(g, nodes[i].alive);
		vf_jgen_str(g, "Volumes");
		yajl_gen_array_open(g);
		for (size_t k = 0; k < nodes[i].nvols; k++)
			vf_jgen_str(g, nodes[i].vols[k]);
		yajl_gen_array_close(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	vf_nodes_free(&nodes, n);
	return VF_OK;
}

/* /VFile.Evict: what was released is answered also when it failed part-way. */
int vfd_evict(struct vfd *d, const struct vf_plugin_req *req, yajl_gen g, struct vf_err *err)
{
	struct vf_evicted *ev = NULL;
	size_t n = 0;
	int rc = vf_node_evict(d->ctx, req->node, req->name, req->force, &ev, &n, err);

	vf_jgen_str(g, "Node");
	vf_jgen_str(g, req->node);
	vf_jgen_str(g, "Released");
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++) {
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Volume");
		vf_jgen_str(g, ev[i].vol ? ev[i].vol : "");
		vf_jgen_str(g, "Ids");
		yajl_gen_array_open(g);
		for (size_t k = 0; k < ev[i].nids; k++)
			vf_jgen_str(g, ev[i].ids[k]);
		yajl_gen_array_close(g);
		vf_jgen_str(g, "GrefBefore");
		vf_jgen_int(g, ev[i].gref_before);
		vf_jgen_str(g, "GrefAfter");
		vf_jgen_int(g, ev[i].gref_after);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
	vf_log(rc == VF_OK ? VF_LOG_WARN : VF_LOG_ERR, "evict %s%s%s%s: %zu volume(s) released%s%s",
	       req->node, req->name ? " volume " : "", req->name ? req->name : "",
	       req->force ? " (forced)" : "", n, rc == VF_OK ? "" : "; ",
	       rc == VF_OK ? "" : err->msg);
	vf_evicted_free(&ev, n);
	return rc;
}
