/* vfilectl: the admin CLI of vfile (see src/ctl/ctl.c and `vfilectl --help`). */
#include <config.h>

#include <stdio.h>
#include <curl/curl.h>

#include "ctl_int.h"

int main(int argc, char **argv)
{
	int rc;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "vfilectl: cannot initialise libcurl\n");
		return CTL_EXIT_FAIL;
	}
	rc = ctl_main(argc, argv, stdout, stderr);
	curl_global_cleanup();
	if (fflush(stdout) != 0 && rc == CTL_EXIT_OK)
		rc = CTL_EXIT_FAIL;
	return rc;
}
