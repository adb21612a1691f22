/* Unit tests of the shared helpers: base64, JSON accessors, errors, config. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "test_int.h"
#include "common_int.h"
#include "strmap.h"

static void test_b64_roundtrip(void)
{
	const char *samples[] = {"", "a", "ab", "abc", "vols/a", "\xff\x00z"};
	size_t lens[] = {0, 1, 2, 3, 6, 3};

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char *enc = vf_b64_encode(samples[i], lens[i]), *dec;
		size_t n;

		CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
		CU_ASSERT_EQUAL(vf_b64_decode(enc, &dec, &n), VF_OK);
		CU_ASSERT_EQUAL(n, lens[i]);
		CU_ASSERT(memcmp(dec, samples[i], n) == 0);
		CU_ASSERT_EQUAL(dec[n], '\0');
		free(enc);
		free(dec);
	}
}

static void test_b64_known(void)
{
	char *enc = vf_b64_encode("vols/a", 6), *dec;
	size_t n;

	CU_ASSERT_STRING_EQUAL(enc, "dm9scy9h");
	free(enc);
	CU_ASSERT_EQUAL(vf_b64_decode("djE=", &dec, &n), VF_OK);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_STRING_EQUAL(dec, "v1");
	free(dec);
	CU_ASSERT_EQUAL(vf_b64_decode("abc", &dec, &n), VF_EPROTO);
	CU_ASSERT_PTR_NULL(dec);
	CU_ASSERT_EQUAL(vf_b64_decode("@@@@", &dec, &n), VF_EPROTO);
	/* padding only at the end, at most two, never before a digit */
	CU_ASSERT_EQUAL(vf_b64_decode("dj==djE=", &dec, &n), VF_EPROTO);
	CU_ASSERT_EQUAL(vf_b64_decode("d===", &dec, &n), VF_EPROTO);
	CU_ASSERT_EQUAL(vf_b64_decode("dj=E", &dec, &n), VF_EPROTO);
	CU_ASSERT_EQUAL(vf_b64_decode("dj E", &dec, &n), VF_EPROTO);
	CU_ASSERT_EQUAL(vf_b64_decode("", &dec, &n), VF_OK);
	CU_ASSERT_EQUAL(n, 0);
	free(dec);
	/* every byte value, every length mod 3, against RFC 4648's test vectors */
	const char *rfc[][2] = {{"f", "Zg=="},         {"fo", "Zm8="},
	                        {"foo", "Zm9v"},       {"foob", "Zm9vYg=="},
	                        {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < 6; i++) {
		enc = vf_b64_encode(rfc[i][0], strlen(rfc[i][0]));
		CU_ASSERT_STRING_EQUAL(enc, rfc[i][1]);
		free(enc);
	}
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	enc = vf_b64_encode(all, sizeof(all));
	CU_ASSERT_EQUAL(vf_b64_decode(enc, &dec, &n), VF_OK);
	CU_ASSERT_EQUAL(n, sizeof(all));
	CU_ASSERT(memcmp(dec, all, sizeof(all)) == 0);
	/* the alphabet is the standard one: 0xfb 0xff -> "+/8=" */
	free(enc);
	free(dec);
	enc = vf_b64_encode("\xfb\xff", 2);
	CU_ASSERT_STRING_EQUAL(enc, "+/8=");
	free(enc);
}

static void test_json_int64(void)
{
	yajl_val t;
	int64_t v;

	const char *doc = "{\"a\":\"42\",\"b\":7,\"c\":\"x\",\"d\":{\"e\":\"-3\"}}";

	CU_ASSERT_EQUAL_FATAL(vf_json_parse(doc, strlen(doc), &t, NULL), VF_OK);
	CU_ASSERT_EQUAL(vf_json_int64(vf_json_get(t, "a", NULL), &v), VF_OK);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_EQUAL(vf_json_int64(vf_json_get(t, "b", NULL), &v), VF_OK);
	CU_ASSERT_EQUAL(v, 7);
	CU_ASSERT_EQUAL(vf_json_int64(vf_json_get(t, "c", NULL), &v), VF_EPROTO);
	CU_ASSERT_EQUAL(vf_json_int64(vf_json_get(t, "missing", NULL), &v), VF_OK);
	CU_ASSERT_EQUAL(v, 0);
	CU_ASSERT_EQUAL(vf_json_int64(vf_json_get(t, "d", "e", NULL), &v), VF_OK);
	CU_ASSERT_EQUAL(v, -3);
	yajl_tree_free(t);
}

static void test_json_malformed(void)
{
	struct vf_err err = {0};
	yajl_val t;

	CU_ASSERT_EQUAL(vf_json_parse("{\"a\":", 5, &t, &err), VF_EPROTO);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT(strstr(err.msg, "malformed JSON") != NULL);
}

static void test_err_oneline(void)
{
	struct vf_err err;

	CU_ASSERT_EQUAL(vf_err_set(&err, VF_EUNAVAIL, "a\nb %d", 3), VF_EUNAVAIL);
	CU_ASSERT_STRING_EQUAL(err.msg, "a b 3");
	vf_err_prefix(&err, "ctx");
	CU_ASSERT_STRING_EQUAL(err.msg, "ctx: a b 3");
	CU_ASSERT_STRING_EQUAL(vf_strerror(VF_ECONFLICT), "compare failed");
}

static void test_cfg_types(void)
{
	config_t c;
	struct vf_err err = {0};
	char *s = NULL, **v = NULL;
	size_t n;
	int i;

	config_init(&c);
	CU_ASSERT_FATAL(
	        config_read_string(&c, "g = { a = \"x\"; b = 5;\n c = [\"p\", \"q\"]; d = 1; }") ==
	        CONFIG_TRUE);
	config_setting_t *g = config_lookup(&c, "g");
	CU_ASSERT_EQUAL(vf_cfg_str(g, "a", NULL, &s, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(s, "x");
	free(s);
	CU_ASSERT_EQUAL(vf_cfg_int(g, "b", 0, &i, &err), VF_OK);
	CU_ASSERT_EQUAL(i, 5);
	CU_ASSERT_EQUAL(vf_cfg_strv(g, "c", NULL, &v, &n, &err), VF_OK);
	CU_ASSERT_EQUAL(n, 2);
	CU_ASSERT_STRING_EQUAL(v[1], "q");
	vf_strv_free(v, n);
	CU_ASSERT_EQUAL(vf_cfg_str(g, "d", NULL, &s, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "line 2") != NULL);
	CU_ASSERT(strstr(err.msg, "g.d") != NULL);
	CU_ASSERT(strstr(err.msg, "must be a string") != NULL);
	const char *known[] = {"a", "b", "c", NULL};
	CU_ASSERT_EQUAL(vf_cfg_known(g, known, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "unknown setting 'g.d'") != NULL);
	config_destroy(&c);
}

/* Log lines written while stderr is fd (JOURNAL_STREAM set to js, or unset). */
static char *log_capture(const char *js, int journal_of_file)
{
	char path[] = "/tmp/vfile-log-XXXXXX", env[64], *text = NULL;
	int fd = mkstemp(path), saved = dup(2);
	struct stat st;
	FILE *f;
	long n;

	if (fd < 0 || saved < 0)
		return NULL;
	fstat(fd, &st);
	if (journal_of_file) {
		snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		         (unsigned long long)st.st_ino);
		setenv("JOURNAL_STREAM", env, 1);
	} else if (js) {
		setenv("JOURNAL_STREAM", js, 1);
	} else {
		unsetenv("JOURNAL_STREAM");
	}
	fflush(stderr);
	dup2(fd, 2);
	vf_log_set_target("stderr", NULL); /* checks the stream again */
	vf_log(VF_LOG_ERR, "vol x: an error");
	vf_log(VF_LOG_WARN, "vol x: a warning");
	vf_log(VF_LOG_INFO, "vol x: news");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	vf_log_set_target("stderr", NULL);
	f = fdopen(fd, "r");
	if (f) {
		fseek(f, 0, SEEK_END);
		n = ftell(f);
		rewind(f);
		text = calloc(1, (size_t)n + 1);
		if (text && fread(text, 1, (size_t)n, f) != (size_t)n) {
			free(text);
			text = NULL;
		}
		fclose(f);
	}
	unlink(path);
	return text;
}

/* Under systemd with stderr connected to the journal, each line starts with
 * its syslog priority so journalctl -p works; elsewhere lines keep their time. */
static void test_log_journal_priorities(void)
{
	int lvl = vf_log_get_level();
	char *t;

	vf_log_set_level(VF_LOG_INFO);
	t = log_capture(NULL, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "<3>error: vol x: an error\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "<4>warning: vol x: a warning\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "<6>info: vol x: news\n"));
	free(t);
	/* JOURNAL_STREAM of another stream (stderr redirected by hand), or none */
	t = log_capture("1:2", 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_PTR_NULL(strstr(t, "<4>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, " warning: vol x: a warning\n"));
	free(t);
	t = log_capture(NULL, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_PTR_NULL(strstr(t, "<3>"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, " error: vol x: an error\n"));
	free(t);
	vf_log_set_level(lvl);
}

/* vf_deadline_ts reads the deadline on CLOCK_MONOTONIC (the clock of vf_now_ms),
 * not on the wall clock: a deadline 5 s ahead is 5 s past CLOCK_MONOTONIC's now,
 * decades away from CLOCK_REALTIME's. Negative deadlines clamp to 0. */
static void test_deadline_ts(void)
{
	struct timespec mono, wall, ts;
	int64_t now = vf_now_ms(), ts_ms, mono_ms, wall_ms;

	vf_deadline_ts(now + 5000, &ts);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &wall);
	ts_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	mono_ms = (int64_t)mono.tv_sec * 1000 + mono.tv_nsec / 1000000;
	wall_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
	CU_ASSERT(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
	/* now was read before mono: ts - mono <= 5000, and more than 0 unless
	 * this thread was descheduled for 5 s between the two reads */
	CU_ASSERT(ts_ms - mono_ms <= 5000);
	CU_ASSERT(ts_ms - mono_ms > 0);
	CU_ASSERT(wall_ms - ts_ms > 86400000LL || ts_ms - wall_ms > 86400000LL);
	vf_deadline_ts(1999, &ts);
	CU_ASSERT_EQUAL(ts.tv_sec, 1);
	CU_ASSERT_EQUAL(ts.tv_nsec, 999000000L);
	vf_deadline_ts(-5, &ts);
	CU_ASSERT_EQUAL(ts.tv_sec, 0);
	CU_ASSERT_EQUAL(ts.tv_nsec, 0);
}

/* A condition variable from vf_cond_init times out on the clock the deadline
 * was computed on: not before the bound (a REALTIME condvar would take the
 * monotonic deadline as decades past and return at once), and it does time out
 * (a wait it never ends would hang: the suite's watchdog bounds that). */
static void test_cond_wait_monotonic(void)
{
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	int64_t t0, deadline;
	int rc = 0;

	vf_cond_init(&cv);
	pthread_mutex_lock(&mu);
	t0 = vf_now_ms();
	deadline = t0 + 200;
	/* wake-ups before the deadline (spurious ones are allowed) loop */
	while (vf_now_ms() < deadline && (rc = vf_cond_wait_until(&cv, &mu, deadline)) == 0)
		;
	CU_ASSERT_EQUAL(rc, ETIMEDOUT);
	CU_ASSERT(vf_now_ms() - t0 >= 200);
	/* the relative form: same bound from now; no wait at all for ms <= 0 */
	t0 = vf_now_ms();
	while ((rc = vf_cond_wait_ms(&cv, &mu, 150 - (vf_now_ms() - t0))) == 0)
		;
	CU_ASSERT_EQUAL(rc, ETIMEDOUT);
	CU_ASSERT(vf_now_ms() - t0 >= 150);
	CU_ASSERT_EQUAL(vf_cond_wait_ms(&cv, &mu, 0), ETIMEDOUT);
	CU_ASSERT_EQUAL(vf_cond_wait_until(&cv, &mu, vf_now_ms() - 1000), ETIMEDOUT);
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&cv);
}

/* The string map: every key put is found with its value, a deleted one is
 * gone, growth past the first table keeps them all, free empties it. */
static void test_strmap(void)
{
	struct vf_strmap m = {0};
	char k[32];
	int ok = 1;

	CU_ASSERT_PTR_NULL(vf_strmap_any(&m));
	CU_ASSERT_PTR_NULL(vf_strmap_get(&m, "x"));
	for (int i = 0; i < 1000; i++) {
		struct vf_strmap_node *x;

		snprintf(k, sizeof(k), "vol-%d", i);
		x = vf_strmap_put(&m, k);
		CU_ASSERT_PTR_NOT_NULL_FATAL(x);
		x->val = (void *)(uintptr_t)(i + 1);
	}
	CU_ASSERT_EQUAL(m.n, 1000);
	CU_ASSERT_PTR_EQUAL(vf_strmap_put(&m, "vol-7"), vf_strmap_get(&m, "vol-7"));
	CU_ASSERT_EQUAL(m.n, 1000);
	for (int i = 0; i < 1000; i++) {
		struct vf_strmap_node *x;

		snprintf(k, sizeof(k), "vol-%d", i);
		x = vf_strmap_get(&m, k);
		if (x == NULL || x->val != (void *)(uintptr_t)(i + 1))
			ok = 0;
	}
	CU_ASSERT(ok);
	CU_ASSERT_PTR_EQUAL(vf_strmap_del(&m, "vol-5"), (void *)(uintptr_t)6);
	CU_ASSERT_PTR_NULL(vf_strmap_get(&m, "vol-5"));
	CU_ASSERT_PTR_NULL(vf_strmap_del(&m, "vol-5"));
	CU_ASSERT_EQUAL(m.n, 999);
	CU_ASSERT_PTR_NOT_NULL(vf_strmap_any(&m));
	vf_strmap_free(&m, 0);
	CU_ASSERT_EQUAL(m.n, 0);
	CU_ASSERT_PTR_NULL(vf_strmap_any(&m));
}

void vf_test_register_util(void);
void vf_test_register_util(void)
{
	CU_pSuite s = CU_add_suite("util", NULL, NULL);

	VF_ADD_TEST(s, test_b64_roundtrip);
	VF_ADD_TEST(s, test_b64_known);
	VF_ADD_TEST(s, test_json_int64);
	VF_ADD_TEST(s, test_json_malformed);
	VF_ADD_TEST(s, test_err_oneline);
	VF_ADD_TEST(s, test_cfg_types);
	VF_ADD_TEST(s, test_log_journal_priorities);
	VF_ADD_TEST(s, test_deadline_ts);
	VF_ADD_TEST(s, test_cond_wait_monotonic);
	VF_ADD_TEST(s, test_strmap);
}
