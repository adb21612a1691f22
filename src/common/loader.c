/* The backend loader: dlopen by name or path, check the ABI first, then init. */
#include <config.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "vfile/vfile.h"
#include "common_int.h"

struct vf_backend {
	void *dl;
	char *path;
	const struct vf_kv_ops *ops;
};

static int loader_path(const char *name, const char *dir, struct vf_buf *path, struct vf_err *err)
{
	if (name == NULL || *name == '\0')
		return vf_err_set(err, VF_EINVAL, "no backend named");
	if (strchr(name, '/'))
		return vf_buf_add(path, name, strlen(name));
	for (const char *p = name; *p; p++)
		if (!(*p == '_' || *p == '-' || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9')))
			return vf_err_set(err, VF_EINVAL,
			                  "backend name '%s' is not a module name or a path", name);
	if (dir == NULL)
		dir = getenv("VFILE_BACKEND_DIR");
	if (dir == NULL || *dir == '\0')
		dir = VF_BACKEND_DIR;
	return vf_buf_printf(path, "%s/%s.so", dir, name);
}

int vf_backend_load(const char *name, const char *dir, struct vf_backend **be_r, struct vf_err *err)
{
	struct vf_buf path = {0};
	struct vf_backend *be = NULL;
	vf_backend_entry_fn entry;
	const struct vf_kv_ops *ops;
	int rc;

	*be_r = NULL;
	rc = loader_path(name, dir, &path, err);
	if (rc != VF_OK)
		goto out;
	be = calloc(1, sizeof(*be));
	if (be == NULL) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		goto out;
	}
	be->dl = dlopen(path.data, RTLD_NOW | RTLD_LOCAL);
	if (be->dl == NULL) {
		rc = vf_err_set(err, VF_EINVAL, "cannot load backend %s: %s", path.data, dlerror());
		goto out;
	}
	*(void **)&entry = dlsym(be->dl, VF_BACKEND_ENTRY);
	if (entry == NULL) {
		rc = vf_err_set(err, VF_EABI, "backend %s has no %s symbol: not a vfile backend",
		                path.data, VF_BACKEND_ENTRY);
		goto out;
	}
	ops = entry();
	/* abi_version is the first member: read nothing else before it matches. */
	if (ops == NULL || ops->abi_version != VF_KV_ABI_VERSION) {
		rc = vf_err_set(
		        err, VF_EABI, "backend %s has ABI version %u, this vfile needs version %u",
		        path.data, ops ? ops->abi_version : 0u, (unsigned)VF_KV_ABI_VERSION);
		goto out;
	}
	if (ops->name == NULL) {
		rc = vf_err_set(err, VF_EABI, "backend %s lacks a name", path.data);
		goto out;
	}
	/* every [REQUIRED] slot of kv.h: vfile calls them without a NULL check */
	const struct {
		const char *slot;
		int missing;
	} req[] = {
	        {"open", ops->open == NULL},
	        {"close", ops->close == NULL},
	        {"get", ops->get == NULL},
	        {"list", ops->list == NULL},
	        {"put", ops->put == NULL},
	        {"cas", ops->cas == NULL},
	        {"txn", ops->txn == NULL},
	        {"lease_grant", ops->lease_grant == NULL},
	        {"lease_revoke", ops->lease_revoke == NULL},
	        {"lock", ops->lock == NULL},
	        {"unlock", ops->unlock == NULL},
	        {"watch_start", ops->watch_start == NULL},
	        {"watch_stop", ops->watch_stop == NULL},
	};
	for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++)
		if (req[i].missing) {
			rc = vf_err_set(err, VF_EABI,
			                "backend %s (%s) lacks the required slot %s (kv.h)",
			                path.data, ops->name, req[i].slot);
			goto out;
		}
	if (ops->global_init && (rc = ops->global_init(err)) != VF_OK) {
		vf_err_prefix(err, "backend %s", path.data);
		goto out;
	}
	be->ops = ops;
	be->path = path.data;
	path.data = NULL;
	*be_r = be;
	be = NULL;
	rc = VF_OK;
out:
	if (be) {
		if (be->dl)
			dlclose(be->dl);
		free(be);
	}
	vf_buf_free(&path);
	return rc;
}

const struct vf_kv_ops *vf_backend_ops(const struct vf_backend *be)
{
	return be->ops;
}

const char *vf_backend_path(const struct vf_backend *be)
{
	return be->path;
}

int vf_backend_open(struct vf_backend *be, const config_setting_t *cfg, struct vf_kv **kv_r,
                    struct vf_err *err)
{
	int rc = be->ops->open(cfg, kv_r, err);

	if (rc == VF_OK && (*kv_r)->ops == NULL)
		(*kv_r)->ops = be->ops;
	return rc;
}

void vf_backend_unload(struct vf_backend **bep)
{
	struct vf_backend *be = *bep;

	if (be == NULL)
		return;
	if (be->ops->global_fini)
		be->ops->global_fini();
	dlclose(be->dl);
	free(be->path);
	free(be);
	*bep = NULL;
}
