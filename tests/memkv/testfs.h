/* An in-process file server for the volume-manager tests: records which node
 * serves which volume, counts starts, counts violations of "never two servers
 * for one volume", and records hosts' local mounts. */
#ifndef VFILE_TESTFS_H
#define VFILE_TESTFS_H

#include <vfile/vfile.h>

struct testfs;
struct testfs_node {
	struct testfs *fs;
	char node[64];
	int fail_start; /* make the next start fail (once) */
};

struct testfs *testfs_new(void);
void testfs_free(struct testfs **fs);
/* The ops; fs_arg is a struct testfs_node. */
extern const struct vf_fs_ops testfs_ops;
void testfs_node_init(struct testfs_node *n, struct testfs *fs, const char *node);

/* Who serves vol (NULL: nobody); copies into buf. */
const char *testfs_server(struct testfs *fs, const char *vol, char *buf, size_t size);
int testfs_nservers(struct testfs *fs, const char *vol);
int testfs_starts(struct testfs *fs, const char *vol);
int testfs_violations(struct testfs *fs);
/* Is vol mounted on host node? */
int testfs_mounted(struct testfs *fs, const char *vol, const char *node);
/* Record a server of vol on node that no daemon started (one a crashed daemon
 * left running); counts no violation. */
int testfs_leftover(struct testfs *fs, const char *vol, const char *node);
/* Forget what node serves (it "crashed"). */
void testfs_node_crash(struct testfs *fs, const char *node);

#endif
