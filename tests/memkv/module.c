/* memkv as a loadable backend module (memkv.so), for the conformance suite's
 * config-file path (tests/conformance/module.test): every handle the module opens
 * shares one process-wide store, created by global_init and freed by global_fini,
 * as every handle of a real backend reaches the one store it names. */
#include <config.h>

#include <stdio.h>

#include "memkv.h"

static struct vf_kv_ops mod_ops;
static struct memkv_store *mod_store;

static int mod_global_init(struct vf_err *err)
{
	if (mod_store == NULL && memkv_store_new(&mod_store) != VF_OK) {
		if (err) {
			err->code = VF_ENOMEM;
			snprintf(err->msg, sizeof(err->msg), "memkv module: out of memory");
		}
		return VF_ENOMEM;
	}
	return VF_OK;
}

static void mod_global_fini(void)
{
	memkv_store_free(&mod_store);
}

static int mod_open(const config_setting_t *cfg, struct vf_kv **kv_r, struct vf_err *err)
{
	(void)cfg;
	return memkv_open(mod_store, kv_r, err);
}

const struct vf_kv_ops *vf_backend_entry(void)
{
	if (mod_ops.abi_version == 0) {
		mod_ops = *memkv_ops();
		mod_ops.global_init = mod_global_init;
		mod_ops.global_fini = mod_global_fini;
		mod_ops.open = mod_open;
	}
	return &mod_ops;
}
