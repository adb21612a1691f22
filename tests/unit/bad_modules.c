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
#elif defined(GOOD_STUB) || defined(NO_WATCH_STOP)
/* Every [REQUIRED] slot of kv.h (NO_WATCH_STOP: all but watch_stop, which the
 * loader must refuse, naming it); the store calls answer VF_ENOTSUP. */
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
static int stub_get(struct vf_kv *kv, const char *key, struct vf_kv_pair *pair_r,
                    struct vf_err *err)
{
	(void)kv, (void)key, (void)pair_r, (void)err;
	return VF_ENOTSUP;
}
static int stub_list(struct vf_kv *kv, const char *prefix, struct vf_kv_list *list_r,
                     struct vf_err *err)
{
	(void)kv, (void)prefix, (void)list_r, (void)err;
	return VF_ENOTSUP;
}
static int stub_put(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                    struct vf_kv_lease *lease, int64_t *mod_rev_r, struct vf_err *err)
{
	(void)kv, (void)key, (void)value, (void)value_len, (void)lease, (void)mod_rev_r, (void)err;
	return VF_ENOTSUP;
}
static int stub_cas(struct vf_kv *kv, const char *key, const char *value, size_t value_len,
                    int64_t expect, struct vf_kv_lease *lease, int64_t *mod_rev_r,
                    struct vf_err *err)
{
	(void)kv, (void)key, (void)value, (void)value_len, (void)expect, (void)lease;
	(void)mod_rev_r, (void)err;
	return VF_ENOTSUP;
}
static int stub_txn(struct vf_kv *kv, const struct vf_kv_cmp *cmps, size_t ncmp,
                    const struct vf_kv_op *ops, size_t nops, struct vf_kv_txn_result *res_r,
                    struct vf_err *err)
{
	(void)kv, (void)cmps, (void)ncmp, (void)ops, (void)nops, (void)res_r, (void)err;
	return VF_ENOTSUP;
}
static int stub_lease_grant(struct vf_kv *kv, int ttl_s, unsigned int flags,
                            vf_kv_lease_lost_fn lost, void *arg, struct vf_kv_lease **lease_r,
                            struct vf_err *err)
{
	(void)kv, (void)ttl_s, (void)flags, (void)lost, (void)arg, (void)lease_r, (void)err;
	return VF_ENOTSUP;
}
static int stub_lease_revoke(struct vf_kv *kv, struct vf_kv_lease **lease, struct vf_err *err)
{
	(void)kv, (void)lease, (void)err;
	return VF_ENOTSUP;
}
static int stub_lock(struct vf_kv *kv, struct vf_kv_lease *lease, const char *name, int timeout_ms,
                     const char *const *reads, size_t nreads, struct vf_kv_result *reads_r,
                     struct vf_kv_lock **lock_r, struct vf_err *err)
{
	(void)kv, (void)lease, (void)name, (void)timeout_ms, (void)reads, (void)nreads;
	(void)reads_r, (void)lock_r, (void)err;
	return VF_ENOTSUP;
}
static int stub_unlock(struct vf_kv *kv, struct vf_kv_lock **lock, struct vf_err *err)
{
	(void)kv, (void)lock, (void)err;
	return VF_ENOTSUP;
}
static int stub_watch_start(struct vf_kv *kv, const char *prefix, int64_t after_rev,
                            vf_kv_watch_fn fn, void *arg, struct vf_kv_watch **watch_r,
                            struct vf_err *err)
{
	(void)kv, (void)prefix, (void)after_rev, (void)fn, (void)arg, (void)watch_r, (void)err;
	return VF_ENOTSUP;
}
#if !defined(NO_WATCH_STOP)
static void stub_watch_stop(struct vf_kv *kv, struct vf_kv_watch **watch)
{
	(void)kv, (void)watch;
}
#endif
static const struct vf_kv_ops stub_ops = {
        .abi_version = VF_KV_ABI_VERSION,
        .name = "stub",
        .open = stub_open,
        .close = stub_close,
        .get = stub_get,
        .list = stub_list,
        .put = stub_put,
        .cas = stub_cas,
        .txn = stub_txn,
        .lease_grant = stub_lease_grant,
        .lease_revoke = stub_lease_revoke,
        .lock = stub_lock,
        .unlock = stub_unlock,
        .watch_start = stub_watch_start,
#if !defined(NO_WATCH_STOP)
        .watch_stop = stub_watch_stop,
#endif
};
const struct vf_kv_ops *vf_backend_entry(void)
{
	return &stub_ops;
}
#endif
