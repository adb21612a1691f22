/* The one CUnit main: registers the program's suites, runs them verbosely,
 * prints CUnit's summary and exits non-zero on any failure. */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <CUnit/Basic.h>

#include "test_int.h"

int vf_test_in_ci(void)
{
	const char *ci = getenv("CI");

	return ci && (strcmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

void vf_test_unavailable(const char *why)
{
	if (vf_test_in_ci()) {
		fprintf(stderr, "FAIL: %s (CI=true: required)\n", why);
		exit(1);
	}
	fprintf(stderr, "SKIP: %s (set CI=true to make this a failure)\n", why);
	exit(77);
}

void vf_test_abort(const char *what)
{
	fprintf(stderr, "CUnit: cannot register %s: %s\n", what, CU_get_error_msg());
	exit(99);
}

/* ---- skipped tests ---- */
struct cu_skip {
	char *name, *why;
	struct cu_skip *next;
};
static struct cu_skip *cu_skips, **cu_skips_tail = &cu_skips;
static unsigned cu_nskips;

void vf_test_skip(CU_pSuite suite, const char *name, CU_TestFunc fn, const char *why)
{
	CU_pTest t = CU_add_test(suite, name, fn);
	struct cu_skip *k = calloc(1, sizeof(*k));

	if (t == NULL || k == NULL)
		vf_test_abort(name);
	CU_set_test_active(t, CU_FALSE);
	k->name = strdup(name);
	k->why = strdup(why);
	*cu_skips_tail = k;
	cu_skips_tail = &k->next;
	cu_nskips++;
	printf("SKIP %s: %s\n", name, why);
}

static void cu_skips_report(void)
{
	if (cu_nskips)
		printf("\nNot run (%u, reported inactive):\n", cu_nskips);
	while (cu_skips) {
		struct cu_skip *k = cu_skips;

		printf("  SKIP %s: %s\n", k->name, k->why);
		cu_skips = k->next;
		free(k->name);
		free(k->why);
		free(k);
	}
	cu_skips_tail = &cu_skips;
}

/* ---- time and the watchdog ---- */
int64_t vf_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void vf_test_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static pthread_mutex_t cu_dog_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *cu_dog_name;
static int64_t cu_dog_deadline;
static void (*cu_dog_on_timeout)(void);
static int cu_dog_started;

static void *cu_dog_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&cu_dog_mu);
		if (cu_dog_deadline && vf_test_now_ms() > cu_dog_deadline) {
			fprintf(stderr, "\nTIMEOUT: case %s ran past its bound%s\n",
			        cu_dog_name ? cu_dog_name : "?",
			        cu_dog_on_timeout ? "; killing servers" : "");
			fflush(stderr);
			if (cu_dog_on_timeout)
				cu_dog_on_timeout();
			_exit(1);
		}
		pthread_mutex_unlock(&cu_dog_mu);
		vf_test_sleep_ms(200);
	}
	return NULL;
}

void vf_test_dog_start(void (*on_timeout)(void))
{
	pthread_t th;

	pthread_mutex_lock(&cu_dog_mu);
	cu_dog_on_timeout = on_timeout;
	if (!cu_dog_started && pthread_create(&th, NULL, cu_dog_main, NULL) == 0) {
		pthread_detach(th);
		cu_dog_started = 1;
	}
	pthread_mutex_unlock(&cu_dog_mu);
}

void vf_test_dog_case(const char *name, int64_t bound_ms)
{
	pthread_mutex_lock(&cu_dog_mu);
	cu_dog_name = name;
	cu_dog_deadline = bound_ms > 0 ? vf_test_now_ms() + bound_ms : 0;
	pthread_mutex_unlock(&cu_dog_mu);
}

/* VF_TEST_ONLY=WORD runs only the tests whose name holds WORD (the others are
 * reported inactive): to repeat one test, as make check-stress does. */
static void cu_only(const char *word)
{
	CU_pTestRegistry reg = CU_get_registry();

	for (CU_pSuite s = reg ? reg->pSuite : NULL; s; s = s->pNext)
		for (CU_pTest t = s->pTest; t; t = t->pNext)
			if (strstr(t->pName, word) == NULL)
				CU_set_test_active(t, CU_FALSE);
}

int main(int argc, char **argv)
{
	const char *only = getenv("VF_TEST_ONLY");

	unsigned int failed;

	(void)argc, (void)argv;
	if (CU_initialize_registry() != CUE_SUCCESS)
		vf_test_abort("registry");
	vf_test_register();
	if (only && *only)
		cu_only(only);
	/* inactive tests are skips (vf_test_skip, VF_TEST_ONLY), not failures */
	CU_set_fail_on_inactive(CU_FALSE);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	failed += CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	cu_skips_report();
	fflush(stdout);
	return failed ? 1 : 0;
}
