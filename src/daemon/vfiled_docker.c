/*
 * vfiled and dockerd: GET requests on dockerd's API socket (docker_socket), and
 * the start-up check of this host's mount ids against dockerd's containers (a
 * mount id held for a volume no live container uses is released).
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>

#include "vfiled_int.h"

static size_t vfd_sink(char *p, size_t size, size_t n, void *arg)
{
	struct vf_buf *b = arg;

	if (b->len > 4 * 1024 * 1024)
		return 0;
	return vf_buf_add(b, p, size * n) == VF_OK ? size * n : 0;
}

int vfd_docker_get(struct vfd *d, const char *url, struct vf_buf *body, long *status_r,
                   CURLcode *cc_r, struct vf_err *err)
{
	CURL *h = curl_easy_init();

	if (h == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->conf->docker_socket);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)d->conf->request_timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, vfd_sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
	*cc_r = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status_r);
	curl_easy_cleanup(h);
	return VF_OK;
}

int vfd_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- on start: this host's mount ids against dockerd's containers ---- */

struct vfd_used {
	char **v; /* volume names some live container mounts (sorted) */
	size_t n;
};

static int vfd_used_has(void *arg, const char *vol)
{
	struct vfd_used *u = arg;
	const char *key = vol;

	return u->n > 0 && bsearch(&key, u->v, u->n, sizeof(char *), vfd_cmp_str) != NULL;
}

/* GET /containers/json?all=1: the volumes that containers in state created,
 * running, paused or restarting mount. A mount counts by its volume name
 * whatever driver Docker names (a same-named volume of another driver keeps
 * this host's ids: the safe side). */
static int vfd_containers_used(struct vfd *d, struct vfd_used *u, struct vf_err *err)
{
	struct vf_conf *c = d->conf;
	struct vf_buf body = {0};
	yajl_val t = NULL;
	long status = 0;
	CURLcode cc;
	int rc = vfd_docker_get(d, "http://localhost/containers/json?all=1", &body, &status, &cc,
	                        err);

	if (rc != VF_OK)
		return rc;
	if (cc != CURLE_OK) {
		rc = vf_err_set(err, VF_EUNAVAIL, "cannot ask dockerd at %s: %s", c->docker_socket,
		                curl_easy_strerror(cc));
		goto out;
	}
	if (status != 200 || body.data == NULL ||
	    vf_json_parse(body.data, body.len, &t, NULL) != VF_OK || !YAJL_IS_ARRAY(t)) {
		rc = vf_err_set(err, VF_EPROTO,
		                "dockerd at %s answered GET /containers/json with HTTP %ld and "
		                "no container list",
		                c->docker_socket, status);
		goto out;
	}
	for (size_t i = 0; i < t->u.array.len; i++) {
		yajl_val ct = t->u.array.values[i];
		const char *st = vf_json_str(vf_json_get(ct, "State", NULL));
		yajl_val mounts = vf_json_get(ct, "Mounts", NULL);

		if (st == NULL || !(strcmp(st, "created") == 0 || strcmp(st, "running") == 0 ||
		                    strcmp(st, "paused") == 0 || strcmp(st, "restarting") == 0))
			continue;
		if (mounts == NULL || !YAJL_IS_ARRAY(mounts))
			continue;
		for (size_t j = 0; j < mounts->u.array.len; j++) {
			const char *name =
			        vf_json_str(vf_json_get(mounts->u.array.values[j], "Name", NULL));
			char **x;

			if (name == NULL || name[0] == '\0')
				continue;
			if ((x = realloc(u->v, (u->n + 1) * sizeof(char *))) == NULL ||
			    (x[u->n] = strdup(name)) == NULL) {
				if (x)
					u->v = x;
				rc = vf_err_set(err, VF_ENOMEM, "out of memory");
				goto out;
			}
			u->v = x;
			u->n++;
		}
	}
	if (u->n > 1) /* u->v is NULL when no container mounts anything */
		qsort(u->v, u->n, sizeof(char *), vfd_cmp_str);
out:
	yajl_tree_free(t);
	vf_buf_free(&body);
	return rc;
}

/* With role = auto or docker_socket given: the mount ids this host holds for a
 * volume no live container uses are released (the mounts reconcile of
 * vf_ctx_new ran first). dockerd not reached: skipped (info). */
void vfd_containers_reconcile(struct vfd *d)
{
	struct vfd_used u = {0};
	struct vf_err err = {0};
	size_t released = 0;

	if (d->conf->role != VF_ROLE_AUTO && !d->conf->docker_socket_set)
		return;
	if (vfd_containers_used(d, &u, &err) != VF_OK) {
		vf_log(VF_LOG_INFO, "start-up check of mount ids against containers skipped: %s",
		       err.msg);
	} else if (vf_vol_release_unused(d->ctx, vfd_used_has, &u, &released, &err) != VF_OK) {
		vf_log(VF_LOG_WARN, "start-up check of mount ids against containers: %s", err.msg);
	} else {
		vf_log(VF_LOG_INFO,
		       "start-up check against dockerd's containers: %zu volume(s) in use, %zu "
		       "mount id(s) of unused volumes released",
		       u.n, released);
	}
	vf_strv_free(u.v, u.n);
}
