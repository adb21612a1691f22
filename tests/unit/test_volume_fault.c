/* 1. Fault injection: for each KV call that mount, unmount, remove (host side)
 * and start, stop, a batched restart (manager side) make, a run where that call fails once —
 * unreachable, uncertain-and-applied, uncertain-and-not-applied — ends with
 * the volume not wedged (the next call succeeds) and gref == number of clients. */
#include <config.h>

#include "test_volume_util.h"

void vf_test_register_fault(void);

enum scen {
	SC_MOUNT_COLD,
	SC_MOUNT_WARM,
	SC_MOUNT_ELIDED,
	SC_UNMOUNT_LAST,
	SC_UNMOUNT_OTHER,
	SC_REMOVE,
	SC_START,
	SC_STOP,
	SC_RESTART,
	SC_N
};
static const char *const scen_names[] = {"mount (cold)",
                                         "mount (warm)",
                                         "mount (warm, lock elided)",
                                         "unmount (last)",
                                         "unmount (others remain)",
                                         "remove",
                                         "manager start",
                                         "manager stop",
                                         "manager restart (batch)"};
static const int modes[] = {MEMKV_FAULT_UNAVAIL, MEMKV_FAULT_UNCERTAIN_APPLIED,
                            MEMKV_FAULT_UNCERTAIN_NOT_APPLIED};
static const char *const mode_names[] = {"?", "unavailable", "uncertain+applied",
                                         "uncertain+not applied"};

/* Cluster: m1 (manager, index 0), h1 (index 1, the faulty host), h2 (index 2). */
static void sc_setup(struct tcluster *tc, int sc)
{
	struct vf_err e = {0};

	tc_init(tc);
	tc->op_timeout_ms = 2500;
	tc_add(tc, "m1", 1);
	tc_add(tc, "h1", 0);
	tc_add(tc, "h2", 0);
	CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc->n[1].ctx, "v", NULL, 0, &e), VF_OK);
	if (sc == SC_MOUNT_WARM || sc == SC_MOUNT_ELIDED || sc == SC_UNMOUNT_OTHER)
		CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc->n[2].ctx, "v", "x", NULL, &e), VF_OK);
	if (sc == SC_MOUNT_ELIDED) { /* h1 knows v's versions: its next mount is one txn */
		CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc->n[1].ctx, "v", "a", NULL, &e), VF_OK);
		CU_ASSERT_EQUAL_FATAL(vf_volume_unmount(tc->n[1].ctx, "v", "a", &e), VF_OK);
	}
	if (sc == SC_UNMOUNT_LAST || sc == SC_UNMOUNT_OTHER || sc == SC_STOP || sc == SC_RESTART)
		CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc->n[1].ctx, "v", "a", NULL, &e), VF_OK);
	if (sc == SC_RESTART) { /* two volumes: a batch */
		CU_ASSERT_EQUAL_FATAL(vf_volume_create(tc->n[1].ctx, "w", NULL, 0, &e), VF_OK);
		CU_ASSERT_EQUAL_FATAL(vf_volume_mount(tc->n[1].ctx, "w", "a", NULL, &e), VF_OK);
	}
	if (sc == SC_STOP)
		CU_ASSERT(tc_settled(tc, "v", 3000));
}

/* The operation under test; returns its status (any is acceptable). */
static int sc_run(struct tcluster *tc, int sc)
{
	struct vf_err e = {0};

	switch (sc) {
	case SC_MOUNT_COLD:
	case SC_MOUNT_WARM:
	case SC_MOUNT_ELIDED:
	case SC_START:
		return vf_volume_mount(tc->n[1].ctx, "v", "a", NULL, &e);
	case SC_UNMOUNT_LAST:
	case SC_UNMOUNT_OTHER:
	case SC_STOP:
		return vf_volume_unmount(tc->n[1].ctx, "v", "a", &e);
	case SC_REMOVE:
		return vf_volume_remove(tc->n[1].ctx, "v", &e);
	case SC_RESTART: { /* m1 loses its lease while serving both: it restarts them */
		char *sv = memkv_value(tc->st, "vfile/server/v"), node[64], lease[64];
		int rc = VF_EINVAL;

		if (sv && sscanf(sv, "%63s %63s", node, lease) == 2) {
			testfs_node_crash(tc->fs, "m1");
			rc = memkv_lease_kill(tc->st, lease);
		}
		free(sv);
		return rc;
	}
	}
	return VF_EINVAL;
}

/* After the fault: the same call again succeeds and the invariants hold. */
static int sc_check(struct tcluster *tc, int sc, const char *what)
{
	struct vf_err e = {0};
	int rc, ok = 1;

	switch (sc) {
	case SC_MOUNT_COLD:
	case SC_MOUNT_WARM:
	case SC_MOUNT_ELIDED:
	case SC_START:
		rc = vf_volume_mount(tc->n[1].ctx, "v", "a", NULL, &e);
		ok = rc == VF_OK && testfs_mounted(tc->fs, "v", "h1") &&
		     tc_num(tc, "gref", "v") ==
		             (sc == SC_MOUNT_WARM || sc == SC_MOUNT_ELIDED ? 2 : 1);
		break;
	case SC_UNMOUNT_LAST:
	case SC_UNMOUNT_OTHER:
	case SC_STOP:
		rc = vf_volume_unmount(tc->n[1].ctx, "v", "a", &e);
		ok = rc == VF_OK && !testfs_mounted(tc->fs, "v", "h1") &&
		     tc_num(tc, "gref", "v") == (sc == SC_UNMOUNT_OTHER ? 1 : 0);
		break;
	case SC_REMOVE:
		rc = vf_volume_remove(tc->n[1].ctx, "v", &e);
		ok = (rc == VF_OK || rc == VF_ENOTFOUND) && memkv_count(tc->st, "vfile/") == 0;
		break;
	case SC_RESTART: /* both served again, once, and still mountable */
		rc = vf_volume_mount(tc->n[2].ctx, "w", "x", NULL, &e);
		ok = rc == VF_OK && tc_num(tc, "gref", "w") == 2 && tc_settled(tc, "w", 4000) &&
		     testfs_nservers(tc->fs, "w") == 1 && tc_consistent(tc, "w") &&
		     tc_num(tc, "gref", "v") == 1;
		break;
	default:
		rc = VF_EINVAL;
	}
	ok = ok && tc_consistent(tc, "v") && (sc == SC_REMOVE || tc_settled(tc, "v", 4000));
	if (!ok)
		fprintf(stderr, "FAULT CASE FAILED: %s: rc %d %s\n", what, rc, e.msg);
	return ok;
}

static void fault_scenario(int sc)
{
	struct tcluster tc;
	unsigned counts[MEMKV_NSLOTS];
	int faulty = sc == SC_START || sc == SC_STOP || sc == SC_RESTART ? 0 : 1;
	int runs = 0, failures = 0;

	/* a clean run: which slots does the operation use, how often? */
	sc_setup(&tc, sc);
	memkv_shim_reset(tc.n[faulty].shim);
	sc_run(&tc, sc);
	if (faulty == 0) /* the manager's work is asynchronous: let it finish */
		tc_settled(&tc, "v", 3000);
	for (int s = 0; s < MEMKV_NSLOTS; s++)
		counts[s] = memkv_shim_count(tc.n[faulty].shim, s);
	CU_ASSERT(sc_check(&tc, sc, "clean run"));
	tc_free(&tc);

	for (int s = 0; s < MEMKV_NSLOTS; s++) {
		if (s == MEMKV_UNLOCK && faulty == 1)
			continue; /* a local free after an UNLOCK op: no store call to fail */
		for (unsigned k = 1; k <= counts[s] && k <= 6; k++)
			for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
				char what[160];
				int ok;

				snprintf(what, sizeof(what), "%s, %s call #%u %s", scen_names[sc],
				         memkv_slot_name(s), k, mode_names[modes[m]]);
				sc_setup(&tc, sc);
				memkv_shim_fail(tc.n[faulty].shim, s, k, modes[m], 0);
				sc_run(&tc, sc);
				if (faulty == 0)
					tc_settled(&tc, "v", 3000);
				memkv_shim_clear(tc.n[faulty].shim);
				ok = sc_check(&tc, sc, what);
				CU_ASSERT(ok);
				failures += !ok;
				runs++;
				tc_free(&tc);
			}
	}
	fprintf(stderr, "  %s: %d fault runs, %d failed\n", scen_names[sc], runs, failures);
	CU_ASSERT(runs > 0);
}

static void test_fault_mount_cold(void)
{
	fault_scenario(SC_MOUNT_COLD);
}
static void test_fault_mount_warm(void)
{
	fault_scenario(SC_MOUNT_WARM);
}

static void test_fault_mount_elided(void)
{
	fault_scenario(SC_MOUNT_ELIDED);
}
static void test_fault_unmount_last(void)
{
	fault_scenario(SC_UNMOUNT_LAST);
}
static void test_fault_unmount_other(void)
{
	fault_scenario(SC_UNMOUNT_OTHER);
}
static void test_fault_remove(void)
{
	fault_scenario(SC_REMOVE);
}
static void test_fault_manager_start(void)
{
	fault_scenario(SC_START);
}
static void test_fault_manager_restart(void)
{
	fault_scenario(SC_RESTART);
}
static void test_fault_manager_stop(void)
{
	fault_scenario(SC_STOP);
}

void vf_test_register_fault(void)
{
	CU_pSuite s = CU_add_suite("volume faults", NULL, NULL);

	if (s == NULL)
		vf_test_abort("suite volume faults");
	VF_ADD_TEST(s, test_fault_mount_cold);
	VF_ADD_TEST(s, test_fault_mount_warm);
	VF_ADD_TEST(s, test_fault_mount_elided);
	VF_ADD_TEST(s, test_fault_unmount_last);
	VF_ADD_TEST(s, test_fault_unmount_other);
	VF_ADD_TEST(s, test_fault_remove);
	VF_ADD_TEST(s, test_fault_manager_start);
	VF_ADD_TEST(s, test_fault_manager_stop);
	VF_ADD_TEST(s, test_fault_manager_restart);
}
