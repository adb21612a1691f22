/* A small string-keyed hash map (chained, grows x2) of the library's own: the
 * manager's served set, queued-job set and idle notes stay O(1) per volume at
 * 10,000 volumes. Not thread-safe (callers lock). Zero-initialise a map before
 * use. */
#ifndef VFILE_STRMAP_H
#define VFILE_STRMAP_H

#include <stddef.h>

struct vf_strmap_node {
	struct vf_strmap_node *next;
	void *val;
	char key[];
};
struct vf_strmap {
	struct vf_strmap_node **b;
	size_t nb, n;
};

/* The node of key, or NULL. */
struct vf_strmap_node *vf_strmap_get(const struct vf_strmap *h, const char *key);
/* The node of key, added (val NULL) if absent; NULL when out of memory. */
struct vf_strmap_node *vf_strmap_put(struct vf_strmap *h, const char *key);
/* Remove key; returns its val (the caller frees it). */
void *vf_strmap_del(struct vf_strmap *h, const char *key);
/* Free every node (and its val when free_vals); the map is empty again. */
void vf_strmap_free(struct vf_strmap *h, int free_vals);
/* Any key of h (NULL if empty). */
const char *vf_strmap_any(const struct vf_strmap *h);

#endif /* VFILE_STRMAP_H */
