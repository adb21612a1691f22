/* The in-process test file server (testfs.h). */
#include <config.h>

#include <stdio.h>
#include <string.h>
#include <pthread.h>

#include "common_int.h"
#include "testfs.h"

#define TFS_MAX 256

struct tfs_rec {
	char vol[VF_VOLUME_NAME_MAX + 1];
	char node[64];
	int kind; /* 1 served by node, 2 mounted on node */
};

struct tfs_starts {
	char vol[VF_VOLUME_NAME_MAX + 1];
	int n;
};

struct testfs {
	pthread_mutex_t mu;
	struct tfs_rec rec[TFS_MAX];
	size_t nrec;
	struct tfs_starts starts[TFS_MAX];
	size_t nstarts;
	int violations;
};

struct testfs *testfs_new(void)
{
	struct testfs *fs = calloc(1, sizeof(*fs));

	if (fs)
		pthread_mutex_init(&fs->mu, NULL);
	return fs;
}

void testfs_free(struct testfs **fs)
{
	if (*fs == NULL)
		return;
	pthread_mutex_destroy(&(*fs)->mu);
	free(*fs);
	*fs = NULL;
}

void testfs_node_init(struct testfs_node *n, struct testfs *fs, const char *node)
{
	memset(n, 0, sizeof(*n));
	n->fs = fs;
	snprintf(n->node, sizeof(n->node), "%s", node);
}

static struct tfs_rec *tfs_find(struct testfs *fs, int kind, const char *vol, const char *node)
{
	for (size_t i = 0; i < fs->nrec; i++)
		if (fs->rec[i].kind == kind && strcmp(fs->rec[i].vol, vol) == 0 &&
		    (node == NULL || strcmp(fs->rec[i].node, node) == 0))
			return &fs->rec[i];
	return NULL;
}

static void tfs_drop(struct testfs *fs, struct tfs_rec *r)
{
	*r = fs->rec[--fs->nrec];
}

static int tfs_add(struct testfs *fs, int kind, const char *vol, const char *node)
{
	if (fs->nrec == TFS_MAX)
		return VF_ENOMEM;
	fs->rec[fs->nrec].kind = kind;
	snprintf(fs->rec[fs->nrec].vol, sizeof(fs->rec[0].vol), "%s", vol);
	snprintf(fs->rec[fs->nrec].node, sizeof(fs->rec[0].node), "%s", node);
	fs->nrec++;
	return VF_OK;
}

static int tfs_start(void *arg, const char *vol, const char *info, char **addr_r, int *port_r,
                     struct vf_err *err)
{
	struct testfs_node *n = arg;
	struct testfs *fs = n->fs;
	struct tfs_rec *r;
	int rc = VF_OK;

	pthread_mutex_lock(&fs->mu);
	if (n->fail_start) {
		n->fail_start = 0;
		rc = vf_err_set(err, VF_EUNAVAIL, "testfs: start of %s fails (injected)", vol);
		goto out;
	}
	r = tfs_find(fs, 1, vol, NULL);
	if (r && strcmp(r->node, n->node) != 0) {
		fs->violations++;
		fprintf(stderr, "testfs: VIOLATION: %s starts %s already served by %s\n", n->node,
		        vol, r->node);
	}
	if (tfs_find(fs, 1, vol, n->node) == NULL)
		rc = tfs_add(fs, 1, vol, n->node);
	size_t i;

	for (i = 0; i < fs->nstarts; i++)
		if (strcmp(fs->starts[i].vol, vol) == 0)
			break;
	if (i == fs->nstarts && i < TFS_MAX) {
		snprintf(fs->starts[i].vol, sizeof(fs->starts[i].vol), "%s", vol);
		fs->starts[i].n = 0;
		fs->nstarts++;
	}
	if (i < TFS_MAX)
		fs->starts[i].n++;
	*addr_r = strdup("127.0.0.1");
	*port_r = 10000 + (int)(fs->nrec % 1000);
out:
	pthread_mutex_unlock(&fs->mu);
	return rc;
}

static int tfs_stop(void *arg, const char *vol, const char *info, struct vf_err *err)
{
	struct testfs_node *n = arg;
	struct tfs_rec *r;

	pthread_mutex_lock(&n->fs->mu);
	if ((r = tfs_find(n->fs, 1, vol, n->node)) != NULL)
		tfs_drop(n->fs, r);
	pthread_mutex_unlock(&n->fs->mu);
	return VF_OK;
}

static int tfs_running(void *arg, const char *vol)
{
	struct testfs_node *n = arg;
	int r;

	pthread_mutex_lock(&n->fs->mu);
	r = tfs_find(n->fs, 1, vol, n->node) != NULL;
	pthread_mutex_unlock(&n->fs->mu);
	return r;
}

static int tfs_mount(void *arg, const char *vol, const char *info, const char *mountpoint,
                     struct vf_err *err)
{
	struct testfs_node *n = arg;
	int rc = VF_OK;

	pthread_mutex_lock(&n->fs->mu);
	if (tfs_find(n->fs, 1, vol, NULL) == NULL)
		rc = vf_err_set(err, VF_EUNAVAIL, "testfs: %s: no server is running", vol);
	else if (tfs_find(n->fs, 2, vol, n->node) == NULL)
		rc = tfs_add(n->fs, 2, vol, n->node);
	pthread_mutex_unlock(&n->fs->mu);
	return rc;
}

static int tfs_unmount(void *arg, const char *vol, const char *mountpoint, struct vf_err *err)
{
	struct testfs_node *n = arg;
	struct tfs_rec *r;

	pthread_mutex_lock(&n->fs->mu);
	if ((r = tfs_find(n->fs, 2, vol, n->node)) != NULL)
		tfs_drop(n->fs, r);
	pthread_mutex_unlock(&n->fs->mu);
	return VF_OK;
}

int testfs_leftover(struct testfs *fs, const char *vol, const char *node)
{
	int rc = VF_OK;

	pthread_mutex_lock(&fs->mu);
	if (tfs_find(fs, 1, vol, node) == NULL)
		rc = tfs_add(fs, 1, vol, node);
	pthread_mutex_unlock(&fs->mu);
	return rc;
}

const struct vf_fs_ops testfs_ops = {
        .start = tfs_start,
        .stop = tfs_stop,
        .running = tfs_running,
        .mount = tfs_mount,
        .unmount = tfs_unmount,
};

const char *testfs_server(struct testfs *fs, const char *vol, char *buf, size_t size)
{
	struct tfs_rec *r;
	const char *res = NULL;

	pthread_mutex_lock(&fs->mu);
	if ((r = tfs_find(fs, 1, vol, NULL)) != NULL) {
		snprintf(buf, size, "%s", r->node);
		res = buf;
	}
	pthread_mutex_unlock(&fs->mu);
	return res;
}

int testfs_nservers(struct testfs *fs, const char *vol)
{
	int n = 0;

	pthread_mutex_lock(&fs->mu);
	for (size_t i = 0; i < fs->nrec; i++)
		n += fs->rec[i].kind == 1 && strcmp(fs->rec[i].vol, vol) == 0;
	pthread_mutex_unlock(&fs->mu);
	return n;
}

int testfs_starts(struct testfs *fs, const char *vol)
{
	int n = 0;

	pthread_mutex_lock(&fs->mu);
	for (size_t i = 0; i < fs->nstarts; i++)
		if (strcmp(fs->starts[i].vol, vol) == 0)
			n = fs->starts[i].n;
	pthread_mutex_unlock(&fs->mu);
	return n;
}

int testfs_violations(struct testfs *fs)
{
	int n;

	pthread_mutex_lock(&fs->mu);
	n = fs->violations;
	pthread_mutex_unlock(&fs->mu);
	return n;
}

int testfs_mounted(struct testfs *fs, const char *vol, const char *node)
{
	int r;

	pthread_mutex_lock(&fs->mu);
	r = tfs_find(fs, 2, vol, node) != NULL;
	pthread_mutex_unlock(&fs->mu);
	return r;
}

void testfs_node_crash(struct testfs *fs, const char *node)
{
	pthread_mutex_lock(&fs->mu);
	for (size_t i = 0; i < fs->nrec;) {
		if (fs->rec[i].kind == 1 && strcmp(fs->rec[i].node, node) == 0) {
			fs->rec[i] = fs->rec[--fs->nrec];
			continue;
		}
		i++;
	}
	pthread_mutex_unlock(&fs->mu);
}
