/* The "none" file-server driver: serves nothing and mounts nothing, for tests and
 * benchmarks of the coordination protocol. start() answers 127.0.0.1:0 and
 * remembers the volume so that running() agrees with start()/stop(). */
#include <config.h>

#include <pthread.h>
#include <string.h>

#include "common_int.h"
#include "fs_int.h"

struct none_vol {
	char *name;
	struct none_vol *next;
};

struct none_fs {
	struct fs_base base;
	pthread_mutex_t mu;
	struct none_vol *vols;
};

static struct none_vol **none_find(struct none_fs *fs, const char *vol)
{
	struct none_vol **p = &fs->vols;

	while (*p && strcmp((*p)->name, vol) != 0)
		p = &(*p)->next;
	return p;
}

static int none_start(void *arg, const char *vol, const char *info_json, char **addr_r, int *port_r,
                      struct vf_err *err)
{
	struct none_fs *fs = arg;
	struct none_vol **p;
	int rc = VF_OK;

	*addr_r = NULL;
	*port_r = 0;
	if (vf_fs_vol_check(vol, err) != VF_OK)
		return VF_EINVAL;
	pthread_mutex_lock(&fs->mu);
	p = none_find(fs, vol);
	if (*p == NULL) {
		struct none_vol *v = calloc(1, sizeof(*v));

		if (v && (v->name = strdup(vol)) != NULL)
			*p = v;
		else {
			free(v);
			rc = vf_err_set(err, VF_ENOMEM, "out of memory");
		}
	}
	pthread_mutex_unlock(&fs->mu);
	if (rc == VF_OK && (*addr_r = strdup("127.0.0.1")) == NULL)
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
	return rc;
}

static int none_stop(void *arg, const char *vol, const char *info_json, struct vf_err *err)
{
	struct none_fs *fs = arg;
	struct none_vol **p, *v;

	pthread_mutex_lock(&fs->mu);
	p = none_find(fs, vol);
	if ((v = *p) != NULL)
		*p = v->next;
	pthread_mutex_unlock(&fs->mu);
	if (v)
		free(v->name);
	free(v);
	return VF_OK;
}

static int none_running(void *arg, const char *vol)
{
	struct none_fs *fs = arg;
	int found;

	pthread_mutex_lock(&fs->mu);
	found = *none_find(fs, vol) != NULL;
	pthread_mutex_unlock(&fs->mu);
	return found;
}

static int none_mount(void *arg, const char *vol, const char *info_json, const char *mountpoint,
                      struct vf_err *err)
{
	return VF_OK;
}

static int none_unmount(void *arg, const char *vol, const char *mountpoint, struct vf_err *err)
{
	return VF_OK;
}

static const struct vf_fs_ops none_ops = {
        .start = none_start,
        .stop = none_stop,
        .running = none_running,
        .mount = none_mount,
        .unmount = none_unmount,
};

static int none_open(const config_setting_t *grp, const char *state_dir, void **arg_r,
                     struct vf_err *err)
{
	static const char *const known[] = {"driver", "export_root", NULL};
	struct none_fs *fs;
	int rc = vf_cfg_known(grp, known, err);

	if (rc != VF_OK)
		return rc;
	if ((fs = calloc(1, sizeof(*fs))) == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	fs->base.drv = &fs_none_driver;
	pthread_mutex_init(&fs->mu, NULL);
	*arg_r = fs;
	return VF_OK;
}

static void none_close(void *arg)
{
	struct none_fs *fs = arg;

	while (fs->vols) {
		struct none_vol *v = fs->vols;

		fs->vols = v->next;
		free(v->name);
		free(v);
	}
	pthread_mutex_destroy(&fs->mu);
	free(fs);
}

const struct fs_driver fs_none_driver = {
        .name = "none",
        .ops = &none_ops,
        .open = none_open,
        .close = none_close,
};
