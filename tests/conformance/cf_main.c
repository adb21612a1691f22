/*
 * Backend conformance suite: the backend, its store, and the registration.
 *
 * The backend under test, in this order:
 *  - $VFILE_CONFORMANCE_CONFIG: a vfile.conf naming the module as vfiled loads
 *    it: backend = "<name or path of a .so>", optional backend_dir, and the
 *    module's settings in the group named after it (a path's file name without
 *    "lib" and ".so"). Every handle is opened from that group; the store must be
 *    running. This is how an out-of-tree backend is checked.
 *  - $VFILE_CONFORMANCE_BACKEND = "memkv": the in-process store of the volume
 *    manager's unit tests (tests/memkv).
 *  - $VFILE_CONFORMANCE_BACKEND = "etcd" (default) or "consul": the module from
 *    $VFILE_BACKEND_DIR (default .libs) against a real server the harness starts.
 * The cases that make the store itself fail (pause, kill, restart, a proxy that
 * cuts streams, a second server with authentication) need a harness server; for
 * the other backends they are registered inactive with the reason.
 *
 * Every case is bounded: the watchdog kills the servers and fails the program when
 * a case overruns. Under valgrind (or VFILE_VALGRIND=1) deadlines and the request
 * timeout are widened, no case is skipped.
 */
#include <config.h>

#include <stdarg.h>
#include <time.h>
#include <unistd.h>
#include <libconfig.h>

#include "conformance.h"
#include "memkv.h"

const char *cf_name;
struct vf_srv *cf_srv;
struct vf_kv *cf_kv;
const struct vf_kv_ops *cf_ops;
char cf_prefix[64];
int cf_slow = 1;
int cf_timeout_ms = 2000;

static struct vf_backend *cf_be;   /* the loaded module (etcd, consul, config) */
static struct memkv_store *cf_mem; /* memkv: the one store of the run */
static config_t cf_conf;           /* config mode: the file */
static int cf_conf_loaded;
static const config_setting_t *cf_group; /* config mode: the module's group */
static char cf_group_name[128];

void cf_case(const char *name, int bound_s)
{
	vf_test_dog_case(name, (int64_t)bound_s * 1000 * cf_slow);
	printf("\n  [%s] ", name);
	fflush(stdout);
}

void cf_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("; ");
	fflush(stdout);
}

const char *cf_key(char *buf, size_t size, const char *cas, const char *name)
{
	snprintf(buf, size, "%s%s/%s", cf_prefix, cas, name);
	return buf;
}

int cf_open(const char *snippet, struct vf_kv **kv_r, struct vf_err *err)
{
	config_t cfg;
	char *text = NULL;
	int rc;

	if (cf_be == NULL || cf_srv == NULL) {
		snprintf(err->msg, sizeof(err->msg), "cf_open: no harness server in this run");
		return VF_EINVAL;
	}
	config_init(&cfg);
	if (asprintf(&text, "%s = { %s };", cf_name, snippet) < 0) {
		config_destroy(&cfg);
		return VF_ENOMEM;
	}
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		snprintf(err->msg, sizeof(err->msg), "bad config snippet: %s",
		         config_error_text(&cfg));
		rc = VF_EINVAL;
	} else {
		rc = vf_backend_open(cf_be, config_lookup(&cfg, cf_name), kv_r, err);
	}
	config_destroy(&cfg);
	free(text);
	return rc;
}

int cf_open_more(struct vf_kv **kv_r, struct vf_err *err)
{
	if (cf_mem)
		return memkv_open(cf_mem, kv_r, err);
	if (cf_srv)
		return cf_open(vf_srv_config(cf_srv), kv_r, err);
	return vf_backend_open(cf_be, cf_group, kv_r, err);
}

int cf_get_str(struct vf_kv *kv, const char *key, char *val, size_t size, int64_t *mod_rev_r,
               struct vf_err *err)
{
	struct vf_kv_pair p = {0};
	int rc = kv->ops->get(kv, key, &p, err);

	if (rc == VF_OK) {
		snprintf(val, size, "%s", p.value ? p.value : "");
		if (mod_rev_r)
			*mod_rev_r = p.mod_rev;
	}
	vf_kv_pair_clear(&p);
	return rc;
}

int cf_wait_get(struct vf_kv *kv, const char *key, int want, int ms, int64_t *took_r)
{
	int64_t t0 = vf_test_now_ms(), deadline = t0 + ms;
	struct vf_err err = {0};
	int rc;

	for (;;) {
		struct vf_kv_pair p = {0};

		rc = kv->ops->get(kv, key, &p, &err);
		vf_kv_pair_clear(&p);
		if (rc == want || vf_test_now_ms() > deadline)
			break;
		vf_test_sleep_ms(50);
	}
	if (took_r)
		*took_r = vf_test_now_ms() - t0;
	return rc;
}

int cf_lease_ttl(void)
{
	return cf_kv->min_lease_ttl_s > 5 ? cf_kv->min_lease_ttl_s : 5;
}

int cf_bound_ms(void)
{
	return (cf_timeout_ms + 2000) * cf_slow;
}

/* ---- registration ---- */
const char *cf_no_server(void)
{
	if (cf_srv)
		return NULL;
	return cf_mem ? "needs a store server the harness can pause, kill, restart or cut "
	                "(memkv is in-process)"
	              : "needs a store server the harness can pause, kill, restart or cut "
	                "(the store of the config file is not the harness's)";
}

/* $VFILE_CONFORMANCE_CASES: comma-separated case names to run (default: all). */
static int cf_selected(const char *fn)
{
	const char *only = getenv("VFILE_CONFORMANCE_CASES");
	size_t n = strlen(fn);

	if (only == NULL || *only == '\0')
		return 1;
	for (const char *p = only; (p = strstr(p, fn)) != NULL; p += n)
		if ((p == only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return 1;
	return 0;
}

void cf_add(CU_pSuite s, const char *name, CU_TestFunc fn, const char *why)
{
	if (!cf_selected(name))
		return;
	if (why) {
		vf_test_skip(s, name, fn, why);
	} else if (CU_add_test(s, name, fn) == NULL) {
		vf_test_abort(name);
	}
}

static int cf_suite_init(void)
{
	return 0;
}

static void cf_cleanup(void)
{
	if (cf_kv) {
		cf_kv->ops->close(cf_kv);
		cf_kv = NULL;
	}
	if (cf_mem)
		memkv_store_free(&cf_mem);
	vf_backend_unload(&cf_be);
	vf_srv_stop(&cf_srv);
	if (cf_conf_loaded)
		config_destroy(&cf_conf);
	cf_conf_loaded = 0;
}

/* Config mode: load the module the file names, as vfiled does. */
static void cf_setup_config(const char *file)
{
	const char *backend = NULL, *dir = NULL, *base;
	struct vf_err err = {0};
	size_t n;

	config_init(&cf_conf);
	cf_conf_loaded = 1;
	if (config_read_file(&cf_conf, file) != CONFIG_TRUE) {
		fprintf(stderr, "conformance: %s:%d: %s\n", file, config_error_line(&cf_conf),
		        config_error_text(&cf_conf));
		exit(1);
	}
	if (config_lookup_string(&cf_conf, "backend", &backend) != CONFIG_TRUE || !*backend) {
		fprintf(stderr, "conformance: %s: no 'backend' (a module name or path)\n", file);
		exit(1);
	}
	config_lookup_string(&cf_conf, "backend_dir", &dir);
	/* the group: the module's file name without a "lib" prefix and its suffix */
	base = strrchr(backend, '/');
	base = base ? base + 1 : backend;
	if (strncmp(base, "lib", 3) == 0 && strchr(backend, '/'))
		base += 3;
	n = strcspn(base, ".");
	snprintf(cf_group_name, sizeof(cf_group_name), "%.*s", (int)n, base);
	cf_group = config_lookup(&cf_conf, cf_group_name);
	if (cf_group && !config_setting_is_group(cf_group))
		cf_group = NULL;
	if (vf_backend_load(backend, dir, &cf_be, &err) != VF_OK) {
		fprintf(stderr, "conformance: %s: %s\n", file, err.msg);
		exit(1);
	}
	cf_name = cf_group_name;
	if (vf_backend_open(cf_be, cf_group, &cf_kv, &err) != VF_OK) {
		fprintf(stderr, "conformance: %s: open %s: %s\n", file, backend, err.msg);
		exit(1);
	}
}

/* etcd / consul: the module and a harness server. */
static void cf_setup_harness(const char *name)
{
	const char *dir = getenv("VFILE_BACKEND_DIR");
	struct vf_srv_opts o = {0};
	struct vf_err err = {0};
	char why[512], path[1024];
	int kind = strcmp(name, "consul") == 0 ? VF_SRV_CONSUL : VF_SRV_ETCD;

	/* A module that was not built is a skip, even under CI (configure chose so). */
	snprintf(path, sizeof(path), "%s/%s.so", dir && *dir ? dir : ".libs", name);
	if (access(path, R_OK) != 0) {
		printf("SKIP: backend module %s was not built\n", path);
		exit(77);
	}
	if (vf_backend_load(name, NULL, &cf_be, &err) != VF_OK) {
		fprintf(stderr, "conformance: %s\n", err.msg);
		exit(1);
	}
	o.timeout_ms = cf_timeout_ms;
	if (vf_srv_start(kind, &o, &cf_srv, why, sizeof(why)) != 0) {
		vf_backend_unload(&cf_be);
		vf_test_unavailable(why);
	}
	if (cf_open(vf_srv_config(cf_srv), &cf_kv, &err) != VF_OK) {
		fprintf(stderr, "conformance: open %s with {%s}: %s\n", name, vf_srv_config(cf_srv),
		        err.msg);
		exit(1);
	}
}

void vf_test_register(void)
{
	const char *name = getenv("VFILE_CONFORMANCE_BACKEND");
	const char *file = getenv("VFILE_CONFORMANCE_CONFIG");
	const char *vg = getenv("VFILE_VALGRIND"), *pre = getenv("LD_PRELOAD");
	struct vf_err err = {0};
	char suite[160];
	CU_pSuite s;

	if ((vg && strcmp(vg, "1") == 0) || (pre && strstr(pre, "vgpreload"))) {
		cf_slow = 5;
		cf_timeout_ms = 5000;
	}
	if (file && *file) {
		cf_setup_config(file);
	} else {
		cf_name = name && *name ? name : "etcd";
		if (strcmp(cf_name, "memkv") == 0) {
			if (memkv_store_new(&cf_mem) != VF_OK ||
			    memkv_open(cf_mem, &cf_kv, &err) != VF_OK) {
				fprintf(stderr, "conformance: memkv: %s\n", err.msg);
				exit(1);
			}
		} else if (strcmp(cf_name, "etcd") == 0 || strcmp(cf_name, "consul") == 0) {
			cf_setup_harness(cf_name);
		} else {
			fprintf(stderr,
			        "conformance: unknown backend '%s' (etcd, consul or memkv; "
			        "any other module through $VFILE_CONFORMANCE_CONFIG)\n",
			        cf_name);
			exit(2);
		}
	}
	/* after the harness's own exit handler: ours runs first (LIFO) */
	atexit(cf_cleanup);
	cf_ops = cf_kv->ops;
	snprintf(cf_prefix, sizeof(cf_prefix), "conf-%ld-%ld/", (long)getpid(), (long)time(NULL));
	printf("conformance: backend %s (%s), caps 0x%x, max_txn_ops %u, min_lease_ttl_s %d, "
	       "server %s\n",
	       cf_name, cf_be ? vf_backend_path(cf_be) : "in-process", cf_ops->caps,
	       cf_kv->max_txn_ops, cf_kv->min_lease_ttl_s,
	       cf_srv          ? vf_srv_config(cf_srv)
	       : file && *file ? file
	                       : "none");
	vf_test_dog_start(vf_srv_kill_all);

	snprintf(suite, sizeof(suite), "conformance-%s", cf_name);
	s = CU_add_suite(suite, cf_suite_init, NULL);
	if (s == NULL)
		vf_test_abort(suite);
	cf_register_kv(s);
	cf_register_txn(s);
	cf_register_lease(s);
	cf_register_lock(s);
	cf_register_lock_many(s);
	cf_register_watch(s);
	cf_register_store(s);
}
