/* Shared by every CUnit test program (tests/libvftest.la): registration, skips,
 * the monotonic clock, naps and the watchdog that bounds every case. */
#ifndef VFILE_TEST_INT_H
#define VFILE_TEST_INT_H

#include <stdint.h>
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

/* Add a test that this run cannot drive (a backend without the feature, a server
 * fault the backend has no means to inject): it is registered inactive, so CUnit
 * counts it "inactive" (not run), never passed, and the reason is printed before
 * the run and again in the summary. Decide at registration time. */
#define VF_SKIP_TEST(suite, fn, why) vf_test_skip((suite), #fn, (fn), (why))
void vf_test_skip(CU_pSuite suite, const char *name, CU_TestFunc fn, const char *why);
/* Add fn, or skip it with why when why is not NULL. */
#define VF_ADD_TEST_IF(suite, fn, why)                                                             \
	do {                                                                                       \
		const char *why_ = (why);                                                          \
		if (why_)                                                                          \
			VF_SKIP_TEST(suite, fn, why_);                                             \
		else                                                                               \
			VF_ADD_TEST(suite, fn);                                                    \
	} while (0)

/* CLOCK_MONOTONIC in milliseconds. */
int64_t vf_test_now_ms(void);
/* Sleep ms milliseconds (EINTR resumed). For pacing and poll intervals only:
 * never as synchronisation. */
void vf_test_sleep_ms(int ms);

/* The watchdog: a thread that, when the running case overruns its bound, prints
 * its name, calls on_timeout (e.g. vf_srv_kill_all; may be NULL) and _exit(1)s.
 * vf_test_dog_start once (later calls only replace on_timeout); vf_test_dog_case
 * arms it for a case (bound_ms 0: disarm). */
void vf_test_dog_start(void (*on_timeout)(void));
void vf_test_dog_case(const char *name, int64_t bound_ms);

#endif
