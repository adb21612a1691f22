/* The one CUnit main: registers the program's suites, runs them verbosely,
 * prints CUnit's summary and exits non-zero on any failure. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	failed += CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	fflush(stdout);
	return failed ? 1 : 0;
}
