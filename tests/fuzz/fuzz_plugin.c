/*
 * libFuzzer target: the Docker plugin-protocol request decoder
 * (src/daemon/plugin_decode.c, src/daemon/plugin_json.c).
 * Input: a path selector byte, then the request body. Every decoded request must
 * carry a valid volume name and options within their bounds, every string in it
 * UTF-8; every error a one-line message of printable ASCII (#19: nothing a client
 * sends reaches a log or an answer raw).
 */
#include <config.h>

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "common_int.h"
#include "plugin_int.h"

static const char *const fuzz_paths[] = {
        "/Plugin.Activate",    "/VolumeDriver.Create",  "/VolumeDriver.Remove",
        "/VolumeDriver.Mount", "/VolumeDriver.Unmount", "/VolumeDriver.Path",
        "/VolumeDriver.Get",   "/VolumeDriver.List",    "/VolumeDriver.Capabilities",
        "/VFile.Status",       "/VFile.KVDump",         "/VolumeDriver.Nope",
};
static const char *const fuzz_known[] = {"size", "mode", "uid", "gid", "fileserver", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Strict UTF-8: no overlong forms, surrogates or code points above U+10FFFF. */
static int fuzz_utf8(const unsigned char *s)
{
	while (*s) {
		unsigned char c = *s;
		int n = c < 0x80                 ? 0
		        : c >= 0xc2 && c <= 0xdf ? 1
		        : c >= 0xe0 && c <= 0xef ? 2
		        : c >= 0xf0 && c <= 0xf4 ? 3
		                                 : -1;
		unsigned int cp = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;

		if (n < 0)
			return 0;
		for (int k = 1; k <= n; k++) {
			if ((s[k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vf_plugin_req req;
	struct vf_err err = {0};
	const char *path;
	int rc;

	if (size < 1)
		return 0;
	path = fuzz_paths[data[0] % (sizeof(fuzz_paths) / sizeof(fuzz_paths[0]))];
	rc = vf_plugin_decode(path, (const char *)data + 1, size - 1,
	                      (data[0] & 0x80) ? fuzz_known : NULL, &req, &err);
	if (rc == VF_OK) {
		size_t total = 0;

		if (req.name != NULL)
			assert(vf_plugin_name_valid(req.name));
		if (req.id != NULL)
			assert(strlen(req.id) > 0 && strlen(req.id) <= VF_PLUGIN_ID_MAX);
		assert(req.nopts <= VF_PLUGIN_OPTS_MAX);
		for (size_t i = 0; i < req.nopts; i++) {
			assert(req.opts[i].key != NULL && req.opts[i].value != NULL);
			assert(strlen(req.opts[i].key) <= VF_PLUGIN_OPT_KEY_MAX);
			assert(strlen(req.opts[i].value) <= VF_PLUGIN_OPT_VALUE_MAX);
			assert(fuzz_utf8((const unsigned char *)req.opts[i].key));
			assert(fuzz_utf8((const unsigned char *)req.opts[i].value));
			total += strlen(req.opts[i].key) + strlen(req.opts[i].value);
		}
		assert(total <= VF_PLUGIN_OPTS_MAX_BYTES);
	} else {
		assert(strchr(err.msg, '\n') == NULL);
		for (const char *p = err.msg; *p; p++)
			assert(*p >= 0x20 && *p <= 0x7e);
		assert(err.code == rc);
	}
	vf_plugin_req_clear(&req);
	return 0;
}
