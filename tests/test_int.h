/* Shared by every CUnit test program. */
#ifndef VFILE_TEST_INT_H
#define VFILE_TEST_INT_H

#include <CUnit/CUnit.h>

/* Each test program defines this and adds its suites with CU_add_suite/CU_add_test. */
void vf_test_register(void);

/* True when running under CI (CI=true): a server that cannot start is a failure. */
int vf_test_in_ci(void);

/* Skip the whole program (exit 77) outside CI, fail it under CI; prints why. */
void vf_test_unavailable(const char *why) __attribute__((noreturn));

/* Add a test, aborting the program if CUnit cannot. */
#define VF_ADD_TEST(suite, fn)                                                                     \
	do {                                                                                       \
		if (CU_add_test((suite), #fn, (fn)) == NULL)                                       \
			vf_test_abort(#fn);                                                        \
	} while (0)
void vf_test_abort(const char *what) __attribute__((noreturn));

#endif
