/* Shared parts of the integration programs (integ.h). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "integ.h"
#include "common_int.h"

struct ig_run ig;

void ig_case(const char *name, int bound_s)
{
	vf_test_dog_case(name, (int64_t)bound_s * 1000 * ig.slow);
	if (bound_s) {
		printf("\n  [%s/%s] ", ig.backend, name);
		fflush(stdout);
	}
}

void ig_note(const char *fmt, ...)
{
	va_list ap;

	printf("MEASURE %s: ", ig.backend);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

void ig_prefix(char *buf, size_t size)
{
	static int seq;

	snprintf(buf, size, "vfile-%ld-%d/", (long)getpid(), ++seq);
}

int ig_open(const char *snippet, struct vf_kv **kv_r, struct vf_err *err)
{
	config_t cfg;
	char *text = NULL;
	int rc;

	config_init(&cfg);
	if (asprintf(&text, "%s = { %s };", ig.backend, snippet) < 0) {
		config_destroy(&cfg);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	if (config_read_string(&cfg, text) != CONFIG_TRUE)
		rc = vf_err_set(err, VF_EINVAL, "bad config snippet: %s", config_error_text(&cfg));
	else
		rc = vf_backend_open(ig.be, config_lookup(&cfg, ig.backend), kv_r, err);
	config_destroy(&cfg);
	free(text);
	return rc;
}

static void ig_cleanup(void)
{
	if (ig.kv) {
		ig.kv->ops->close(ig.kv);
		ig.kv = NULL;
	}
	vf_backend_unload(&ig.be);
	vf_srv_stop(&ig.srv);
	if (ig.dir[0] && getenv("VFILE_INTEG_KEEP") && *getenv("VFILE_INTEG_KEEP")) {
		fprintf(stderr, "VFILE_INTEG_KEEP: node logs and dirfs files kept in %s\n", ig.dir);
	} else if (ig.dir[0]) {
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ig.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", ig.dir);
	}
}

void ig_setup(const char *prog, int members)
{
	const char *name = getenv("VFILE_INTEG_BACKEND");
	const char *vg = getenv("VFILE_VALGRIND"), *pre = getenv("LD_PRELOAD");
	const char *dir = getenv("VFILE_BACKEND_DIR");
	struct vf_srv_opts o = {0};
	struct vf_err err = {0};
	char why[512], path[1024];

	ig.backend = name && *name ? name : "etcd";
	ig.slow = 1;
	ig.req_timeout_ms = 2000;
	if ((vg && strcmp(vg, "1") == 0) || (pre && strstr(pre, "vgpreload"))) {
		ig.slow = 5;
		ig.req_timeout_ms = 5000;
	}
	if (strcmp(ig.backend, "etcd") != 0 && strcmp(ig.backend, "consul") != 0) {
		fprintf(stderr, "%s: unknown backend '%s' (etcd or consul)\n", prog, ig.backend);
		exit(2);
	}
	ig.kind = strcmp(ig.backend, "consul") == 0 ? VF_SRV_CONSUL : VF_SRV_ETCD;
	snprintf(path, sizeof(path), "%s/%s.so", dir && *dir ? dir : ".libs", ig.backend);
	if (access(path, R_OK) != 0) {
		printf("SKIP: backend module %s was not built\n", path);
		exit(77);
	}
	if (vf_backend_load(ig.backend, NULL, &ig.be, &err) != VF_OK) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		exit(1);
	}
	snprintf(ig.dir, sizeof(ig.dir), "/tmp/vfile-integ-XXXXXX");
	if (mkdtemp(ig.dir) == NULL) {
		fprintf(stderr, "%s: mkdtemp failed\n", prog);
		exit(1);
	}
	if (ig.srv_opts)
		o = *ig.srv_opts;
	o.timeout_ms = ig.req_timeout_ms;
	o.members = members;
	if (vf_srv_start(ig.kind, &o, &ig.srv, why, sizeof(why)) != 0) {
		vf_backend_unload(&ig.be);
		vf_test_unavailable(why);
	}
	atexit(ig_cleanup);
	if (ig_open(vf_srv_config(ig.srv), &ig.kv, &err) != VF_OK) {
		fprintf(stderr, "%s: open %s with {%s}: %s\n", prog, ig.backend,
		        vf_srv_config(ig.srv), err.msg);
		exit(1);
	}
	ig.ttl_s = ig.kv->min_lease_ttl_s > 2 ? ig.kv->min_lease_ttl_s : 2;
	printf("%s: backend %s, %d member(s), lease TTL %d s, server {%s}\n", prog, ig.backend,
	       members > 1 ? members : 1, ig.ttl_s, vf_srv_config(ig.srv));
	vf_test_dog_start(vf_srv_kill_all);
}

/* ---- killing a lease behind its owner's back ---- */
int ig_lease_kill(const char *lease_id, char *why, size_t whylen)
{
	struct vf_http_cfg hc = {0};
	struct vf_http *h = NULL;
	struct vf_http_resp resp = {0};
	struct vf_http_req req = {0};
	struct vf_err e = {0};
	char *eps[VF_SRV_MAX_MEMBERS], path[160], body[96];
	int rc;

	for (int i = 0; i < ig.srv->nmembers; i++) {
		if (asprintf(&eps[hc.nendpoints], "http://127.0.0.1:%d", ig.srv->m[i].client_port) <
		    0)
			break;
		hc.nendpoints++;
	}
	hc.endpoints = eps;
	hc.timeout_ms = 5000;
	hc.connect_timeout_ms = 1000;
	rc = vf_http_new(&hc, &h, &e);
	if (rc != VF_OK)
		goto out;
	if (ig.kind == VF_SRV_ETCD) {
		/* the printable id is hex; the JSON gateway takes a decimal int64 */
		unsigned long long id = strtoull(lease_id, NULL, 16);

		snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)id);
		req.method = "POST";
		req.path = "/v3/lease/revoke";
		req.body = body;
		req.body_len = strlen(body);
	} else {
		snprintf(path, sizeof(path), "/v1/session/destroy/%s", lease_id);
		req.method = "PUT";
		req.path = path;
	}
	req.idempotent = 1;
	rc = vf_http_do(h, &req, &resp, &e);
	if (rc == VF_OK && resp.status != 200) {
		rc = vf_err_set(&e, VF_EPROTO, "%s: HTTP %ld: %.200s", req.path, resp.status,
		                resp.body.data ? resp.body.data : "");
	}
out:
	if (rc != VF_OK)
		snprintf(why, whylen, "kill lease %s: %s", lease_id, e.msg);
	vf_http_resp_free(&resp);
	vf_http_free(&h);
	for (size_t i = 0; i < hc.nendpoints; i++)
		free(eps[i]);
	return rc;
}

/* ---- store reads ---- */
char *ig_value(const char *prefix, const char *fam, const char *vol)
{
	struct vf_kv_pair p = {0};
	char k[512];
	char *v = NULL;

	snprintf(k, sizeof(k), "%s%s/%s", prefix, fam, vol);
	if (ig.kv->ops->get(ig.kv, k, &p, NULL) == VF_OK) {
		v = p.value;
		p.value = NULL;
	}
	vf_kv_pair_clear(&p);
	return v;
}

int64_t ig_num(const char *prefix, const char *fam, const char *vol)
{
	char *v = ig_value(prefix, fam, vol);
	int64_t n = v ? strtoll(v, NULL, 10) : -1;

	free(v);
	return n;
}

int ig_clients(const char *prefix, const char *vol)
{
	struct vf_kv_list l = {0};
	char k[512];
	int n;

	snprintf(k, sizeof(k), "%sclient/%s/", prefix, vol);
	if (ig.kv->ops->list(ig.kv, k, &l, NULL) != VF_OK)
		return -1;
	n = (int)l.count;
	vf_kv_list_clear(&l);
	return n;
}

/* ---- the invariants ---- */
int ig_settled(const struct ig_probe *p, const char *prefix, const char *vol, int settle_ms)
{
	int64_t end = vf_now_ms() + (int64_t)settle_ms * ig.slow;
	char last[300] = "";

	for (;;) {
		int64_t g = ig_num(prefix, "gref", vol);
		int nc = ig_clients(prefix, vol);
		int ns = p->nservers(p->arg, vol), nb = p->believers(p->arg, vol);
		char *st = ig_value(prefix, "state", vol), *sv = ig_value(prefix, "server", vol);
		int mounted = st && strcmp(st, "Mounted") == 0;

		if (g < 0)
			g = 0;
		snprintf(last, sizeof(last),
		         "gref %" PRId64 ", client keys %d, hosts believing %d, servers %d, state "
		         "%s, server key %s",
		         g, nc, nb, ns, st ? st : "(absent)", sv ? sv : "(absent)");
		free(st);
		free(sv);
		if (g == nc && nc == nb && ns == (g > 0) && (g == 0 || (mounted && ns == 1)))
			return 1;
		if (vf_now_ms() > end) {
			fprintf(stderr, "\nvolume %s%s not settled after %d ms: %s\n", prefix, vol,
			        settle_ms, last);
			return 0;
		}
		vf_test_sleep_ms(50);
	}
}

int ig_invariants(const struct ig_probe *p, const char *prefix, const char *vol, int settle_ms)
{
	char msg[512] = "";
	int rc;

	if (!ig_settled(p, prefix, vol, settle_ms))
		return 0;
	if (p->mount == NULL)
		return 1;
	/* not wedged: the next mount and unmount succeed */
	rc = p->mount(p->arg, vol, msg, sizeof(msg));
	if (rc != VF_OK) {
		fprintf(stderr, "\nvolume %s%s wedged: probe mount: %s\n", prefix, vol, msg);
		return 0;
	}
	if (ig_num(prefix, "gref", vol) < 1) {
		fprintf(stderr, "\nvolume %s%s: probe mount left gref < 1\n", prefix, vol);
		return 0;
	}
	rc = p->unmount(p->arg, vol, msg, sizeof(msg));
	if (rc != VF_OK) {
		fprintf(stderr, "\nvolume %s%s wedged: probe unmount: %s\n", prefix, vol, msg);
		return 0;
	}
	return ig_settled(p, prefix, vol, settle_ms);
}
