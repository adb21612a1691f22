/* vfilectl: argument parsing (usage errors exit 2), help, output. */
#include <config.h>

#include "test_int.h"

void vf_test_register_fs(void);

void vf_test_register(void)
{
	vf_test_register_fs();
}
