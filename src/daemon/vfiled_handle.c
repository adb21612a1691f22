/*
 * vfiled's answers to the Docker volume plugin requests (vfd_handle, the plugin
 * server's handler): Create, Remove, Mount, Unmount, Path, Get, List through the
 * volume manager, the admin endpoints through vfiled_status.c; while vfiled
 * starts, every request is answered with what it waits for.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfiled_int.h"

static void vfd_gen_mountpoint(struct vfd *d, yajl_gen g, const char *name, int mounted)
{
	char path[4096];

	vf_jgen_str(g, "Mountpoint");
	if (mounted) {
		snprintf(path, sizeof(path), "%s/%s", d->conf->mount_root, name);
		vf_jgen_str(g, path);
	} else {
		vf_jgen_str(g, "");
	}
}

static int vfd_mounted_here(struct vfd *d, const struct vf_volume *v)
{
	for (size_t i = 0; i < v->nclients; i++)
		if (strcmp(v->clients[i], d->node_id) == 0)
			return 1;
	return 0;
}

/* The server that info names, when it is live: the volume is Mounted and
 * server/<vol> names the same node (the key ends with its manager's lease). A
 * Ready volume, or one whose manager died and is not yet served again, has none:
 * info keeps the last address, which nobody may use. */
static yajl_val vfd_live_server(const struct vf_volume *v, yajl_val info, const char **lease_r)
{
	yajl_val server = vf_json_get(info, "server", NULL);
	const char *node = vf_json_str(vf_json_get(server, "node", NULL));
	size_t n;

	*lease_r = NULL;
	if (!YAJL_IS_OBJECT(server) || node == NULL || v->server == NULL || v->state == NULL ||
	    strcmp(v->state, "Mounted") != 0)
		return NULL;
	n = strlen(node);
	if (strncmp(v->server, node, n) != 0 || v->server[n] != ' ')
		return NULL;
	*lease_r = v->server + n + 1;
	return server;
}

/* status: 0 none; 1 all (Get); 2 state and gref only (List: Docker keeps a List
 * entry's Status as the volume's status, e.g. docker volume ls --format
 * '{{.Status}}'; the Volume plugin protocol documents Status for Get only, and
 * a short one keeps List small) */
static void vfd_gen_volume(struct vfd *d, yajl_gen g, const struct vf_volume *v, int status)
{
	yajl_val info = NULL;

	yajl_gen_map_open(g);
	vf_jgen_str(g, "Name");
	vf_jgen_str(g, v->name);
	vfd_gen_mountpoint(d, g, v->name, vfd_mounted_here(d, v));
	if (status) {
		vf_jgen_str(g, "Status");
		yajl_gen_map_open(g);
		vf_jgen_str(g, "state");
		vf_jgen_str(g, v->state ? v->state : "");
		vf_jgen_str(g, "gref");
		vf_jgen_int(g, v->gref);
	}
	if (status == 1) {
		vf_jgen_str(g, "clients");
		yajl_gen_array_open(g);
		for (size_t i = 0; i < v->nclients; i++)
			vf_jgen_str(g, v->clients[i]);
		yajl_gen_array_close(g);
		if (v->info_json &&
		    vf_json_parse(v->info_json, strlen(v->info_json), &info, NULL) == VF_OK) {
			const char *lease = NULL;
			yajl_val server = vfd_live_server(v, info, &lease);
			yajl_val opts = vf_json_get(info, "options", NULL);

			if (server) { /* {node, addr, port, lease}: where to connect now */
				vf_jgen_str(g, "server");
				yajl_gen_map_open(g);
				for (size_t i = 0; i < server->u.object.len; i++) {
					vf_jgen_str(g, server->u.object.keys[i]);
					vf_jgen_tree(g, server->u.object.values[i]);
				}
				vf_jgen_str(g, "lease");
				vf_jgen_str(g, lease);
				yajl_gen_map_close(g);
			}
			if (opts) {
				vf_jgen_str(g, "options");
				vf_jgen_tree(g, opts);
			}
		}
	}
	if (status)
		yajl_gen_map_close(g);
	yajl_gen_map_close(g);
	yajl_tree_free(info);
}

int vfd_handle(void *arg, const struct vf_plugin_req *req, yajl_gen g, struct vf_err *err)
{
	struct vfd *d = arg;
	struct vf_volume v = {0};
	struct vf_volume *vols = NULL;
	char *path = NULL;
	size_t n = 0;
	int64_t t0 = vf_now_ms();
	int rc = VF_OK;

	if (!vfd_ready(d)) {
		/* Activate and Capabilities are answered by the server: Docker can take
		 * the plugin while the daemon waits for dockerd or the store */
		pthread_mutex_lock(&d->phase_mu);
		rc = vf_err_set(err, VF_EUNAVAIL, "%s", d->phase);
		pthread_mutex_unlock(&d->phase_mu);
		vf_log(VF_LOG_DEBUG, "%s: %s", vf_plugin_ep_path(req->ep) + 1, err->msg);
		return rc;
	}
	switch (req->ep) {
	case VF_EP_CREATE:
		rc = vf_volume_create(d->ctx, req->name, req->opts, req->nopts, err);
		break;
	case VF_EP_REMOVE:
		rc = vf_volume_remove(d->ctx, req->name, err);
		break;
	case VF_EP_MOUNT:
		rc = vf_volume_mount(d->ctx, req->name, req->id, &path, err);
		vf_metrics_observe_ms(VF_H_MOUNT, vf_now_ms() - t0);
		vf_metrics_inc(rc == VF_OK ? VF_M_MOUNTS : VF_M_MOUNT_ERRORS);
		if (rc == VF_OK) {
			vf_jgen_str(g, "Mountpoint");
			vf_jgen_str(g, path);
		}
		break;
	case VF_EP_UNMOUNT:
		rc = vf_volume_unmount(d->ctx, req->name, req->id, err);
		vf_metrics_observe_ms(VF_H_UNMOUNT, vf_now_ms() - t0);
		vf_metrics_inc(rc == VF_OK ? VF_M_UNMOUNTS : VF_M_UNMOUNT_ERRORS);
		break;
	case VF_EP_PATH:
		rc = vf_volume_get(d->ctx, req->name, &v, err);
		if (rc == VF_OK)
			vfd_gen_mountpoint(d, g, req->name, vfd_mounted_here(d, &v));
		break;
	case VF_EP_GET:
		rc = vf_volume_get(d->ctx, req->name, &v, err);
		if (rc == VF_OK) {
			vf_jgen_str(g, "Volume");
			vfd_gen_volume(d, g, &v, 1);
		}
		break;
	case VF_EP_LIST:
		rc = vf_volume_list(d->ctx, &vols, &n, err);
		if (rc == VF_OK) {
			vf_jgen_str(g, "Volumes");
			yajl_gen_array_open(g);
			for (size_t i = 0; i < n; i++)
				vfd_gen_volume(d, g, &vols[i], 2);
			yajl_gen_array_close(g);
		}
		break;
	case VF_EP_STATUS:
		rc = vfd_status(d, g, err);
		break;
	case VF_EP_KVDUMP:
		rc = vfd_kvdump(d, g, err);
		break;
	case VF_EP_NODES:
		rc = vfd_nodes(d, g, err);
		break;
	case VF_EP_EVICT:
		rc = vfd_evict(d, req, g, err);
		break;
	default:
		rc = vf_err_set(err, VF_EINVAL, "%s: not handled", vf_plugin_ep_path(req->ep));
	}
	if (req->name) {
		if (rc == VF_OK)
			vf_log(req->ep == VF_EP_GET || req->ep == VF_EP_PATH ? VF_LOG_DEBUG
			                                                     : VF_LOG_INFO,
			       "volume %s: %s%s%s: ok", req->name, vf_plugin_ep_path(req->ep) + 1,
			       req->id ? " id " : "", req->id ? req->id : "");
		else
			vf_log(VF_LOG_WARN, "volume %s: %s%s%s: %s", req->name,
			       vf_plugin_ep_path(req->ep) + 1, req->id ? " id " : "",
			       req->id ? req->id : "", err->msg);
	} else if (rc != VF_OK) {
		vf_log(VF_LOG_WARN, "%s: %s", vf_plugin_ep_path(req->ep) + 1, err->msg);
	}
	for (size_t i = 0; i < n; i++)
		vf_volume_clear(&vols[i]);
	free(vols);
	vf_volume_clear(&v);
	free(path);
	return rc;
}
