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

/* The running volumes: a chained hash (grows x2), O(1) per start/stop/running
 * with thousands of volumes served by one manager. */
struct none_fs {
	struct fs_base base;
	pthread_mutex_t mu;
	struct none_vol **b;
	size_t nb, n;
};

static size_t none_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

/* The link that points at vol's entry (or the NULL end of its bucket). The
 * table must have buckets (none_grow first). */
static struct none_vol **none_find(struct none_fs *fs, const char *vol)
{
	struct none_vol **p = &fs->b[none_hash(vol) & (fs->nb - 1)];

	while (*p && strcmp((*p)->name, vol) != 0)
		p = &(*p)->next;
	return p;
}

/* Room for one more (0 when out of memory). */
static int none_grow(struct none_fs *fs)
{
	size_t nb = fs->nb ? fs->nb * 2 : 64;
	struct none_vol **b;

	if (fs->nb && fs->n < fs->nb)
		return 1;
	if ((b = calloc(nb, sizeof(*b))) == NULL)
		return fs->nb != 0;
	for (size_t i = 0; i < fs->nb; i++)
		while (fs->b[i]) {
			struct none_vol *v = fs->b[i];

			fs->b[i] = v->next;
			v->next = b[none_hash(v->name) & (nb - 1)];
			b[none_hash(v->name) & (nb - 1)] = v;
		}
	free(fs->b);
	fs->b = b;
	fs->nb = nb;
	return 1;
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
	if (!none_grow(fs)) {
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
	} else if (*(p = none_find(fs, vol)) == NULL) {
		struct none_vol *v = calloc(1, sizeof(*v));

		if (v && (v->name = strdup(vol)) != NULL) {
			*p = v;
			fs->n++;
		} else {
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
	struct none_vol **p, *v = NULL;

	pthread_mutex_lock(&fs->mu);
	if (fs->nb && (v = *(p = none_find(fs, vol))) != NULL) {
		*p = v->next;
		fs->n--;
	}
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
	found = fs->nb && *none_find(fs, vol) != NULL;
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

	for (size_t i = 0; i < fs->nb; i++)
		while (fs->b[i]) {
			struct none_vol *v = fs->b[i];

			fs->b[i] = v->next;
			free(v->name);
			free(v);
		}
	free(fs->b);
	pthread_mutex_destroy(&fs->mu);
	free(fs);
}

const struct fs_driver fs_none_driver = {
        .name = "none",
        .ops = &none_ops,
        .open = none_open,
        .close = none_close,
};
