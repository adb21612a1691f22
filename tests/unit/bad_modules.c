/* Deliberately broken backend modules for the loader tests, one per -D flag. */
#include <stddef.h>
#include "vfile/kv.h"

#if defined(BAD_ABI)
struct future_ops {
	unsigned int abi_version;
};
static const struct future_ops future = {VF_KV_ABI_VERSION + 41};
const struct vf_kv_ops *vf_backend_entry(void)
{
	return (const struct vf_kv_ops *)&future;
}
#elif defined(NO_ENTRY)
int vf_not_the_entry(void);
int vf_not_the_entry(void)
{
	return 1;
}
#elif defined(GOOD_STUB)
static int stub_open(const config_setting_t *cfg, struct vf_kv **kv_r, struct vf_err *err)
{
	static struct vf_kv kv;

	(void)cfg, (void)err;
	*kv_r = &kv;
	return VF_OK;
}
static void stub_close(struct vf_kv *kv)
{
	(void)kv;
}
static const struct vf_kv_ops stub_ops = {
        .abi_version = VF_KV_ABI_VERSION,
        .name = "stub",
        .open = stub_open,
        .close = stub_close,
};
const struct vf_kv_ops *vf_backend_entry(void)
{
	return &stub_ops;
}
#endif
