/*
 * selfcheck BACKEND CONFIG_FILE: load a backend module through the loader, open it
 * with the group named BACKEND of a libconfig file, and exercise put, txn, lock
 * (two threads contending) and watch under a fresh prefix, printing one line per
 * step with what it did and the revisions seen. Exit 0 only if every step checked
 * out; the keys it wrote are deleted at the end.
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vfile/kv.h"
#include "vfile/vfile.h"

#define SC_ROUNDS 5

static struct vf_kv *sc_kv;
static char sc_prefix[80];      /* the data, watched */
static char sc_lock_prefix[64]; /* the data prefix's parent: locks go there */
static int sc_failed;

/* Watched events, recorded by the watch callback. */
static pthread_mutex_t sc_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sc_cv = PTHREAD_COND_INITIALIZER;
static int sc_nev, sc_nput, sc_ndel, sc_resync;
static int64_t sc_first_rev, sc_last_rev, sc_seen_rev;
static int sc_order_bad;
static char sc_last_counter[32]; /* the last counter value the watch saw */

static void sc_step(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sc_step(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%-4s ", ok ? "ok" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!ok)
		sc_failed = 1;
}

static int64_t sc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *sc_key(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s%s", sc_prefix, name);
	return buf;
}

static int sc_watch_cb(const struct vf_kv_event *ev, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&sc_mu);
	if (ev->type == VF_EV_RESYNC) {
		sc_resync++;
	} else {
		if (sc_nev == 0)
			sc_first_rev = ev->mod_rev;
		else if (ev->mod_rev < sc_last_rev) /* one txn: several keys, one revision */
			sc_order_bad++;
		sc_last_rev = ev->mod_rev;
		sc_nev++;
		if (ev->type == VF_EV_PUT && strstr(ev->key, "/counter") && ev->value_len < 32)
			snprintf(sc_last_counter, sizeof(sc_last_counter), "%.*s",
			         (int)ev->value_len, ev->value);
		if (ev->type == VF_EV_PUT)
			sc_nput++;
		else
			sc_ndel++;
	}
	pthread_cond_broadcast(&sc_cv);
	pthread_mutex_unlock(&sc_mu);
	return 0;
}

/* ---- lock contention ---- */
struct sc_locker {
	int id;
	int done;
	int64_t fences[SC_ROUNDS];
	char msg[600];
};
static int sc_inside, sc_overlap;

static void *sc_locker_main(void *arg)
{
	struct sc_locker *lk = arg;
	const struct vf_kv_ops *ops = sc_kv->ops;
	struct vf_kv_lease *lease = NULL;
	struct vf_err err = {0};
	char name[128], ctr[128], buf[32];
	int ttl = sc_kv->min_lease_ttl_s > 5 ? sc_kv->min_lease_ttl_s : 5;

	/* The lock's own keys live outside the watched data prefix. */
	snprintf(name, sizeof(name), "%slock", sc_lock_prefix);
	sc_key(ctr, sizeof(ctr), "counter");
	if (ops->lease_grant(sc_kv, ttl, 0, NULL, NULL, &lease, &err) != VF_OK) {
		snprintf(lk->msg, sizeof(lk->msg), "lease_grant: %s", err.msg);
		return NULL;
	}
	for (int i = 0; i < SC_ROUNDS; i++) {
		struct vf_kv_lock *lock = NULL;
		struct vf_kv_result rd = {0};
		const char *reads[1] = {ctr};
		long n;
		int rc;

		/* The counter is read in the same round trip as the acquisition. */
		rc = ops->lock(sc_kv, lease, name, 30000, reads, 1, &rd, &lock, &err);
		if (rc != VF_OK) {
			snprintf(lk->msg, sizeof(lk->msg), "lock %s: %s", name, err.msg);
			break;
		}
		pthread_mutex_lock(&sc_mu);
		if (++sc_inside != 1)
			sc_overlap++;
		pthread_mutex_unlock(&sc_mu);
		lk->fences[i] = lock->fence;
		n = rd.found ? strtol(rd.pair.value, NULL, 10) : 0;
		vf_kv_results_clear(&rd, 1);
		snprintf(buf, sizeof(buf), "%ld", n + 1);
		{
			/* A fenced write: it lands only while this holder still has the lock. */
			struct vf_kv_cmp cmp = {.kind = VF_CMP_LOCK_HELD, .lock = lock};
			struct vf_kv_op op = {.kind = VF_OP_PUT,
			                      .key = ctr,
			                      .value = buf,
			                      .value_len = strlen(buf)};

			rc = ops->txn(sc_kv, &cmp, 1, &op, 1, NULL, &err);
		}
		pthread_mutex_lock(&sc_mu);
		sc_inside--;
		pthread_mutex_unlock(&sc_mu);
		if (rc != VF_OK)
			snprintf(lk->msg, sizeof(lk->msg), "fenced put %s: %s", ctr, err.msg);
		if (ops->unlock(sc_kv, &lock, &err) != VF_OK && rc == VF_OK) {
			rc = err.code;
			snprintf(lk->msg, sizeof(lk->msg), "unlock %s: %s", name, err.msg);
		}
		if (rc != VF_OK)
			break;
		lk->done++;
	}
	ops->lease_revoke(sc_kv, &lease, &err);
	return NULL;
}

static int sc_open(const char *backend, const char *file, struct vf_backend **be_r,
                   struct vf_err *err)
{
	config_t cfg;
	const config_setting_t *grp;
	int rc;

	config_init(&cfg);
	if (config_read_file(&cfg, file) != CONFIG_TRUE) {
		snprintf(err->msg, sizeof(err->msg), "%s:%d: %s", file, config_error_line(&cfg),
		         config_error_text(&cfg));
		config_destroy(&cfg);
		return VF_EINVAL;
	}
	grp = config_lookup(&cfg, backend);
	if (grp == NULL || !config_setting_is_group(grp)) {
		snprintf(err->msg, sizeof(err->msg), "%s: no group '%s = { ... }'", file, backend);
		config_destroy(&cfg);
		return VF_EINVAL;
	}
	rc = vf_backend_load(backend, NULL, be_r, err);
	if (rc == VF_OK) {
		const struct vf_kv_ops *ops = vf_backend_ops(*be_r);

		sc_step(1, "load: %s from %s (abi %u, caps 0x%x)", ops->name,
		        vf_backend_path(*be_r), ops->abi_version, ops->caps);
		rc = vf_backend_open(*be_r, grp, &sc_kv, err);
	}
	config_destroy(&cfg);
	return rc;
}

int main(int argc, char **argv)
{
	struct vf_backend *be = NULL;
	struct vf_err err = {0};
	struct vf_kv_watch *watch = NULL;
	struct vf_kv_list list = {0};
	const struct vf_kv_ops *ops;
	char a[128], b[128], ctr[128];
	int64_t list_rev = 0, ra = 0, rtxn = 0;
	int rc;

	if (argc != 3) {
		fprintf(stderr,
		        "usage: %s BACKEND CONFIG_FILE\n"
		        "  BACKEND: etcd, consul or a module path; CONFIG_FILE holds a group\n"
		        "  named after it, e.g. etcd = { endpoints = [\"http://127.0.0.1:2379\"]; "
		        "};\n",
		        argv[0]);
		return 2;
	}
	rc = sc_open(argv[1], argv[2], &be, &err);
	if (rc != VF_OK) {
		sc_step(0, "open %s: %s", argv[1], err.msg);
		vf_backend_unload(&be);
		return 1;
	}
	ops = sc_kv->ops;
	sc_step(1, "open: max_txn_ops %u, min_lease_ttl_s %d", sc_kv->max_txn_ops,
	        sc_kv->min_lease_ttl_s);
	snprintf(sc_lock_prefix, sizeof(sc_lock_prefix), "selfcheck-%ld-%ld/", (long)getpid(),
	         (long)time(NULL));
	snprintf(sc_prefix, sizeof(sc_prefix), "%sdata/", sc_lock_prefix);

	/* watch: from the revision of an (empty) listing of the prefix. */
	rc = ops->list(sc_kv, sc_prefix, &list, &err);
	list_rev = list.revision;
	sc_step(rc == VF_OK && list.count == 0, "list %s: %zu keys at revision %" PRId64 "%s%s",
	        sc_prefix, list.count, list_rev, rc ? ": " : "", rc ? err.msg : "");
	vf_kv_list_clear(&list);
	if (rc != VF_OK)
		goto out;
	rc = ops->watch_start(sc_kv, sc_prefix, list_rev, sc_watch_cb, NULL, &watch, &err);
	sc_step(rc == VF_OK, "watch %s from revision %" PRId64 "%s%s", sc_prefix, list_rev,
	        rc ? ": " : "", rc ? err.msg : "");

	/* put / get */
	sc_key(a, sizeof(a), "a");
	sc_key(b, sizeof(b), "b");
	sc_key(ctr, sizeof(ctr), "counter");
	rc = ops->put(sc_kv, a, "hello", 5, NULL, &ra, &err);
	if (rc == VF_OK) {
		struct vf_kv_pair p = {0};

		rc = ops->get(sc_kv, a, &p, &err);
		sc_step(rc == VF_OK && p.mod_rev == ra && p.value_len == 5 &&
		                memcmp(p.value, "hello", 5) == 0,
		        "put %s = hello at revision %" PRId64 "; get saw \"%s\" mod_rev %" PRId64,
		        a, ra, p.value ? p.value : "", p.mod_rev);
		vf_kv_pair_clear(&p);
	} else {
		sc_step(0, "put %s: %s", a, err.msg);
	}

	/* txn: guarded by a's version; the same guard, now stale, must fail. */
	{
		struct vf_kv_cmp cmp = {.kind = VF_CMP_VERSION_EQ, .key = a, .mod_rev = ra};
		struct vf_kv_op op[] = {
		        {.kind = VF_OP_PUT, .key = a, .value = "world", .value_len = 5},
		        {.kind = VF_OP_PUT, .key = b, .value = "1", .value_len = 1},
		        {.kind = VF_OP_GET, .key = a}};
		struct vf_kv_txn_result res = {0};

		rc = ops->txn(sc_kv, &cmp, 1, op, 3, &res, &err);
		rtxn = res.revision;
		sc_step(rc == VF_OK && res.count == 3 && rtxn > ra,
		        "txn if %s@%" PRId64
		        " then put %s=world, %s=1: committed at revision %" PRId64 "%s%s",
		        a, ra, a, b, rtxn, rc ? ": " : "", rc ? err.msg : "");
		vf_kv_txn_result_clear(&res);
		rc = ops->txn(sc_kv, &cmp, 1, op, 2, NULL, &err);
		sc_step(rc == VF_ECONFLICT, "txn with the stale guard %s@%" PRId64 ": %s (want %s)",
		        a, ra, vf_strerror(rc), vf_strerror(VF_ECONFLICT));
	}

	/* lock: two threads contend, each increments the counter SC_ROUNDS times. */
	{
		struct sc_locker lk[2] = {{.id = 0}, {.id = 1}};
		pthread_t th[2];
		struct vf_kv_pair p = {0};
		int64_t t0 = sc_now_ms();
		int fences_ok = 1;

		for (int i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, sc_locker_main, &lk[i]);
		for (int i = 0; i < 2; i++) {
			pthread_join(th[i], NULL);
			for (int j = 1; j < lk[i].done; j++)
				if (lk[i].fences[j] <= lk[i].fences[j - 1])
					fences_ok = 0;
			sc_step(lk[i].done == SC_ROUNDS,
			        "lock thread %d: %d/%d fenced increments, fences %" PRId64
			        "..%" PRId64 "%s%s",
			        i, lk[i].done, SC_ROUNDS, lk[i].fences[0],
			        lk[i].done ? lk[i].fences[lk[i].done - 1] : 0,
			        lk[i].msg[0] ? ": " : "", lk[i].msg);
		}
		rc = ops->get(sc_kv, ctr, &p, &err);
		sc_step(rc == VF_OK && strtol(p.value, NULL, 10) == 2 * SC_ROUNDS && !sc_overlap &&
		                fences_ok,
		        "lock: counter %s = %s (want %d) at revision %" PRId64
		        ", %d overlaps, in %" PRId64 " ms",
		        ctr, rc == VF_OK ? p.value : "?", 2 * SC_ROUNDS, p.mod_rev, sc_overlap,
		        sc_now_ms() - t0);
		vf_kv_pair_clear(&p);
	}

	/* watch: every write above, in order: 3 puts + 2 x SC_ROUNDS counter puts. A
	 * backend without watch history (a diff of listings) may fold quick successive
	 * versions of one key: then only the final counter value is required. */
	if (watch) {
		int want = 3 + 2 * SC_ROUNDS;
		int history = (ops->caps & VF_KV_CAP_WATCH_HISTORY) != 0;
		int64_t deadline = sc_now_ms() + 10000;
		char final[32];

		snprintf(final, sizeof(final), "%d", 2 * SC_ROUNDS);
		pthread_mutex_lock(&sc_mu);
		while ((history ? sc_nev < want : strcmp(sc_last_counter, final) != 0) &&
		       sc_now_ms() < deadline) {
			pthread_mutex_unlock(&sc_mu);
			usleep(20000);
			pthread_mutex_lock(&sc_mu);
		}
		sc_step((history ? sc_nev == want : sc_nev <= want) && sc_order_bad == 0 &&
		                sc_resync == 0 && sc_first_rev == ra &&
		                strcmp(sc_last_counter, final) == 0,
		        "watch: %d events (%d puts, %d deletes, %s %d), revisions %" PRId64
		        "..%" PRId64 ", last counter %s, %d out of order, %d resyncs",
		        sc_nev, sc_nput, sc_ndel, history ? "want" : "at most", want, sc_first_rev,
		        sc_last_rev, sc_last_counter, sc_order_bad, sc_resync);
		sc_seen_rev = sc_last_rev;
		pthread_mutex_unlock(&sc_mu);
		ops->watch_stop(sc_kv, &watch);
	}

	/* cleanup: delete what we wrote. */
	rc = ops->list(sc_kv, sc_prefix, &list, &err);
	if (rc == VF_OK) {
		size_t n = 0;

		for (size_t i = 0; i < list.count; i++)
			if (ops->del(sc_kv, list.items[i].key, &err) == VF_OK)
				n++;
		sc_step(n == list.count,
		        "cleanup: deleted %zu/%zu keys under %s (last watched revision %" PRId64
		        ")",
		        n, list.count, sc_prefix, sc_seen_rev);
		vf_kv_list_clear(&list);
	} else {
		sc_step(0, "cleanup list %s: %s", sc_prefix, err.msg);
	}
out:
	if (watch)
		ops->watch_stop(sc_kv, &watch);
	ops->close(sc_kv);
	vf_backend_unload(&be);
	printf("selfcheck %s: %s\n", argv[1], sc_failed ? "FAILED" : "all steps checked out");
	return sc_failed ? 1 : 0;
}
