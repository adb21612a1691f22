/*
 * libFuzzer target: the Docker plugin-protocol request decoder (src/plugin.c).
 * Input: a path selector byte, then the request body. Every decoded request must
 * carry a valid volume name; every error a one-line message.
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
static const char *const fuzz_known[] = {"size", "mode", "uid", "gid", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
		if (req.name != NULL)
			assert(vf_plugin_name_valid(req.name));
		for (size_t i = 0; i < req.nopts; i++)
			assert(req.opts[i].key != NULL && req.opts[i].value != NULL);
	} else {
		assert(strchr(err.msg, '\n') == NULL);
		assert(err.code == rc);
	}
	vf_plugin_req_clear(&req);
	return 0;
}
