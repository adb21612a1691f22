/* Unit tests of the Consul backend's parse/build layer (no server). */
#include <config.h>

#include "test_int.h"
#include "consul_int.h"

static void test_placeholder(void)
{
	CU_ASSERT_EQUAL(consul_verb_nresults(CONSUL_DELETE), 0);
}

void vf_test_register(void)
{
	CU_pSuite s = CU_add_suite("consul_json", NULL, NULL);

	if (s == NULL)
		vf_test_abort("suite consul_json");
	VF_ADD_TEST(s, test_placeholder);
}
