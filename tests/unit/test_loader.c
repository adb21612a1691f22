/* Unit tests of the backend loader against deliberately broken modules. */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "test_int.h"
#include "vfile/vfile.h"

static char mod_dir[1024];

static int loader_init(void)
{
	const char *b = getenv("top_builddir");

	snprintf(mod_dir, sizeof(mod_dir), "%s/tests/unit/.libs", b ? b : ".");
	return 0;
}

static void test_load_good(void)
{
	struct vf_backend *be = NULL;
	struct vf_err err = {0};
	struct vf_kv *kv = NULL;

	CU_ASSERT_EQUAL_FATAL(vf_backend_load("good_stub", mod_dir, &be, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(vf_backend_ops(be)->name, "stub");
	CU_ASSERT(strstr(vf_backend_path(be), "good_stub.so") != NULL);
	CU_ASSERT_EQUAL(vf_backend_open(be, NULL, &kv, &err), VF_OK);
	CU_ASSERT_PTR_EQUAL(kv->ops, vf_backend_ops(be));
	vf_backend_unload(&be);
	CU_ASSERT_PTR_NULL(be);
}

/* kv.h's [REQUIRED] slots: a module leaving one NULL is refused, naming it */
static void test_load_lacks_slot(void)
{
	struct vf_backend *be = NULL;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL(vf_backend_load("no_watch_stop", mod_dir, &be, &err), VF_EABI);
	CU_ASSERT_PTR_NULL(be);
	CU_ASSERT(strstr(err.msg, "no_watch_stop.so") != NULL);
	CU_ASSERT(strstr(err.msg, "required slot watch_stop") != NULL);
}

static void test_load_bad_abi(void)
{
	struct vf_backend *be = NULL;
	struct vf_err err = {0};
	char want[64];

	CU_ASSERT_EQUAL(vf_backend_load("bad_abi", mod_dir, &be, &err), VF_EABI);
	CU_ASSERT_PTR_NULL(be);
	CU_ASSERT(strstr(err.msg, "bad_abi.so") != NULL);
	snprintf(want, sizeof(want), "ABI version %u", VF_KV_ABI_VERSION + 41);
	CU_ASSERT(strstr(err.msg, want) != NULL);
	snprintf(want, sizeof(want), "needs version %u", VF_KV_ABI_VERSION);
	CU_ASSERT(strstr(err.msg, want) != NULL);
}

static void test_load_no_entry(void)
{
	struct vf_backend *be = NULL;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL(vf_backend_load("no_entry", mod_dir, &be, &err), VF_EABI);
	CU_ASSERT(strstr(err.msg, "no_entry.so") != NULL);
	CU_ASSERT(strstr(err.msg, "vf_backend_entry") != NULL);
}

static void test_load_unloadable(void)
{
	struct vf_backend *be = NULL;
	struct vf_err err = {0};
	char path[1100];
	FILE *f;

	CU_ASSERT_EQUAL(vf_backend_load("missing_backend", mod_dir, &be, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "missing_backend.so") != NULL);
	/* A file that is not a shared object, loaded by path. */
	snprintf(path, sizeof(path), "%s/not_elf.so", mod_dir);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("not an ELF file\n", f);
	fclose(f);
	CU_ASSERT_EQUAL(vf_backend_load(path, NULL, &be, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "not_elf.so") != NULL);
	remove(path);
	CU_ASSERT_EQUAL(vf_backend_load("../etc", NULL, &be, &err), VF_EINVAL);
	CU_ASSERT_EQUAL(vf_backend_load("Bad Name", NULL, &be, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "Bad Name") != NULL);
}

void vf_test_register_util(void);
void vf_test_register_secrets(void);

void vf_test_register(void)
{
	CU_pSuite s;

	vf_test_register_util();
	vf_test_register_secrets();
	s = CU_add_suite("loader", loader_init, NULL);
	VF_ADD_TEST(s, test_load_good);
	VF_ADD_TEST(s, test_load_bad_abi);
	VF_ADD_TEST(s, test_load_lacks_slot);
	VF_ADD_TEST(s, test_load_no_entry);
	VF_ADD_TEST(s, test_load_unloadable);
}
