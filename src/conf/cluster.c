/* The cluster marker (cluster_int.h): <export_root>/.vfile-cluster and
 * <prefix>cluster hold the same random id. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster_int.h"
#include "common_int.h"

#define CLUSTER_ID_MAX 128

/* A new id: 16 random bytes in hex. */
static int cluster_new_id(char *buf, size_t size, struct vf_err *err)
{
	unsigned char r[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, r, sizeof(r)) : -1;

	if (fd >= 0)
		close(fd);
	if (n != (ssize_t)sizeof(r) || size < 2 * sizeof(r) + 1)
		return vf_err_set(err, VF_EINVAL, "cannot make a cluster id: /dev/urandom: %s",
		                  n < 0 ? strerror(errno) : "short read");
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(buf + 2 * i, 3, "%02x", r[i]);
	return VF_OK;
}

/* An id is [A-Za-z0-9_.-]{1,127}. */
static int cluster_id_valid(const char *id)
{
	size_t n = strlen(id);

	return n > 0 && n < CLUSTER_ID_MAX &&
	       strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* Read the marker: VF_OK with the id, VF_ENOTFOUND if there is none. */
static int cluster_read_marker(const char *path, char *id, size_t size, struct vf_err *err)
{
	char buf[CLUSTER_ID_MAX + 2];
	FILE *f = fopen(path, "re");
	size_t n;

	if (f == NULL) {
		if (errno == ENOENT)
			return VF_ENOTFOUND;
		return vf_err_set(err, VF_EINVAL, "cluster marker %s: %s", path, strerror(errno));
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!cluster_id_valid(buf) || strlen(buf) >= size)
		return vf_err_set(err, VF_EINVAL,
		                  "cluster marker %s does not hold a cluster id (one line of "
		                  "letters, digits, '_', '.', '-')",
		                  path);
	snprintf(id, size, "%s", buf);
	return VF_OK;
}

/* Write the marker unless one exists: VF_OK, VF_EBUSY if one appeared (another
 * manager on the same shared storage). Written to a temporary file, then linked. */
static int cluster_write_marker(const char *root, const char *path, const char *id,
                                struct vf_err *err)
{
	char tmp[4200];
	int fd, rc = VF_OK;

	snprintf(tmp, sizeof(tmp), "%s/.vfile-cluster.XXXXXX", root);
	if ((fd = mkstemp(tmp)) < 0)
		return vf_err_set(err, VF_EINVAL, "cannot write the cluster marker in %s: %s", root,
		                  strerror(errno));
	if (dprintf(fd, "%s\n", id) < 0 || fchmod(fd, 0644) != 0 || fsync(fd) != 0)
		rc = vf_err_set(err, VF_EINVAL, "cannot write the cluster marker %s: %s", tmp,
		                strerror(errno));
	close(fd);
	if (rc == VF_OK && link(tmp, path) != 0)
		rc = errno == EEXIST
		             ? VF_EBUSY
		             : vf_err_set(err, VF_EINVAL, "cannot write the cluster marker %s: %s",
		                          path, strerror(errno));
	unlink(tmp);
	return rc;
}

static int cluster_mkdirs(const char *path, struct vf_err *err)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return vf_err_set(err, VF_EINVAL, "cannot create export_root %s: %s", path,
		                  strerror(errno));
	return VF_OK;
}

int vf_cluster_check(struct vf_kv *kv, const char *prefix, const char *export_root,
                     enum vf_cluster_mode mode, char **id_r, const char **what_r,
                     struct vf_err *err)
{
	char key[1024], path[4200], local[CLUSTER_ID_MAX], fresh[CLUSTER_ID_MAX];
	struct vf_kv_pair p = {0};
	const char *what = NULL;
	int rc, have_local, made_marker = 0;

	*id_r = NULL;
	*what_r = NULL;
	snprintf(key, sizeof(key), "%s%s", prefix, VF_CLUSTER_KEY);
	snprintf(path, sizeof(path), "%s/%s", export_root, VF_CLUSTER_MARKER);
	for (int round = 0; round < 3; round++) {
		rc = cluster_read_marker(path, local, sizeof(local), err);
		if (rc != VF_OK && rc != VF_ENOTFOUND)
			return rc;
		have_local = rc == VF_OK;
		vf_kv_pair_clear(&p);
		rc = kv->ops->get(kv, key, &p, err);
		if (rc == VF_OK) {
			/* the store knows the cluster: the marker must be its */
			if (p.value == NULL || !cluster_id_valid(p.value)) {
				rc = vf_err_set(err, VF_EPROTO,
				                "store key %s does not hold a cluster id", key);
				goto out;
			}
			if (have_local && strcmp(local, p.value) == 0) {
				what = made_marker ? "created" : what ? what : "matches";
				goto found;
			}
			if (made_marker) /* we lost the race to create the cluster */
				unlink(path);
			if (have_local && !made_marker) {
				rc = vf_err_set(
				        err, VF_EINVAL,
				        "export_root %s belongs to another cluster: its marker "
				        "holds %s, the store's cluster is %s: mount the "
				        "cluster's shared storage there",
				        export_root, local, p.value);
				goto out;
			}
			if (mode == VF_CLUSTER_INIT) {
				if ((rc = cluster_mkdirs(export_root, err)) != VF_OK)
					goto out;
				rc = cluster_write_marker(export_root, path, p.value, err);
				if (rc == VF_EBUSY)
					continue; /* someone wrote one meanwhile: look again */
				if (rc != VF_OK)
					goto out;
				what = "written";
				continue;
			}
			rc = vf_err_set(err, VF_EINVAL,
			                "export_root %s holds no cluster marker but cluster %s "
			                "exists: mount the cluster's shared storage there (or run "
			                "`vfilectl init` if it is that storage)",
			                export_root, p.value);
			goto out;
		}
		if (rc != VF_ENOTFOUND)
			goto out;
		/* no cluster in the store yet: this export_root's marker founds it */
		if (!have_local) {
			if ((rc = cluster_mkdirs(export_root, err)) != VF_OK ||
			    (rc = cluster_new_id(fresh, sizeof(fresh), err)) != VF_OK)
				goto out;
			rc = cluster_write_marker(export_root, path, fresh, err);
			if (rc == VF_EBUSY)
				continue;
			if (rc != VF_OK)
				goto out;
			made_marker = 1;
			snprintf(local, sizeof(local), "%s", fresh);
		}
		rc = kv->ops->cas(kv, key, local, strlen(local), 0, NULL, NULL, err);
		if (rc == VF_OK) {
			what = made_marker ? "created" : "adopted";
			if ((*id_r = strdup(local)) == NULL)
				rc = vf_err_set(err, VF_ENOMEM, "out of memory");
			goto out_set;
		}
		if (rc != VF_ECONFLICT && rc != VF_EUNCERTAIN) {
			if (made_marker)
				unlink(path);
			goto out;
		}
		/* another manager created it (or our write landed): look again */
		if (!made_marker)
			what = "adopted";
	}
	rc = vf_err_set(err, VF_EINVAL, "cluster marker %s and store key %s keep changing", path,
	                key);
	goto out;
found:
	if ((*id_r = strdup(p.value)) == NULL)
		rc = vf_err_set(err, VF_ENOMEM, "out of memory");
	else
		rc = VF_OK;
out_set:
	if (rc == VF_OK)
		*what_r = what;
out:
	vf_kv_pair_clear(&p);
	return rc;
}

int vf_cluster_export_root(const config_setting_t *fileserver, char *buf, size_t size,
                           int *keeps_data_r)
{
	const char *root = "/var/lib/vfile/export", *driver = "sftp";
	config_setting_t *s;

	if (fileserver) {
		if ((s = config_setting_get_member(fileserver, "export_root")) &&
		    config_setting_type(s) == CONFIG_TYPE_STRING)
			root = config_setting_get_string(s);
		if ((s = config_setting_get_member(fileserver, "driver")) &&
		    config_setting_type(s) == CONFIG_TYPE_STRING)
			driver = config_setting_get_string(s);
	}
	*keeps_data_r = strcmp(driver, "none") != 0;
	return snprintf(buf, size, "%s", root) < (int)size;
}
