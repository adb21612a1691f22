/*
 * libFuzzer target: the config loader (src/conf/config.c) on a memory buffer, and
 * every few inputs through a temporary file (vf_conf_load + vf_conf_check_perms).
 * Inputs with @include are skipped: the loader would read other files.
 */
#include <config.h>

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common_int.h"
#include "config_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(int rc, struct vf_conf *c, const struct vf_err *err)
{
	if (rc != VF_OK) {
		assert(c == NULL);
		assert(strchr(err->msg, '\n') == NULL);
		assert(err->msg[0] != '\0');
		return;
	}
	assert(c != NULL && c->backend != NULL && c->backend_name != NULL);
	assert(c->socket_mode >= 0 && c->socket_mode <= 07777);
	assert(c->lease_ttl_s > 0 && c->op_timeout_ms > 0);
}

static char fuzz_tmp[64];

static void fuzz_cleanup(void)
{
	if (fuzz_tmp[0] != '\0')
		unlink(fuzz_tmp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned long n;
	struct vf_conf *c = NULL;
	struct vf_err err = {0};
	char *text;
	int rc;

	text = strndup((const char *)data, size);
	if (text == NULL || strstr(text, "@include") != NULL) {
		free(text);
		return 0;
	}
	rc = vf_conf_load_string(text, "fuzz.conf", &c, &err);
	fuzz_check(rc, c, &err);
	vf_conf_free(&c);
	if (n++ % 16 == 0) {
		FILE *f;

		if (fuzz_tmp[0] == '\0') {
			const char *dir = getenv("TMPDIR");
			int fd;

			snprintf(fuzz_tmp, sizeof(fuzz_tmp), "%s/vfile-fuzz-conf-XXXXXX",
			         dir && *dir && strlen(dir) < 32 ? dir : "/tmp");
			fd = mkstemp(fuzz_tmp);
			assert(fd >= 0);
			close(fd);
			atexit(fuzz_cleanup);
		}
		f = fopen(fuzz_tmp, "w");
		assert(f != NULL);
		fwrite(text, 1, strlen(text), f);
		fclose(f);
		memset(&err, 0, sizeof(err));
		rc = vf_conf_load(fuzz_tmp, &c, &err);
		fuzz_check(rc, c, &err);
		if (rc == VF_OK) {
			rc = vf_conf_check_perms(c, &err);
			assert(rc == VF_OK || rc == VF_EAUTH);
		}
		vf_conf_free(&c);
	}
	free(text);
	return 0;
}
