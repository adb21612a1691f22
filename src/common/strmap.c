/* The string-keyed hash map of strmap.h. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

static size_t strmap_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

struct vf_strmap_node *vf_strmap_get(const struct vf_strmap *h, const char *key)
{
	if (h->nb == 0)
		return NULL;
	for (struct vf_strmap_node *x = h->b[strmap_hash(key) & (h->nb - 1)]; x; x = x->next)
		if (strcmp(x->key, key) == 0)
			return x;
	return NULL;
}

/* The node of key, added (val NULL) if absent; NULL when out of memory. */
struct vf_strmap_node *vf_strmap_put(struct vf_strmap *h, const char *key)
{
	struct vf_strmap_node *x = vf_strmap_get(h, key);
	size_t len = strlen(key), i;

	if (x)
		return x;
	if (h->n >= h->nb) {
		size_t nb = h->nb ? h->nb * 2 : 64;
		struct vf_strmap_node **b = calloc(nb, sizeof(*b));

		if (b == NULL)
			return NULL;
		for (i = 0; i < h->nb; i++)
			while (h->b[i]) {
				struct vf_strmap_node *y = h->b[i];

				h->b[i] = y->next;
				y->next = b[strmap_hash(y->key) & (nb - 1)];
				b[strmap_hash(y->key) & (nb - 1)] = y;
			}
		free(h->b);
		h->b = b;
		h->nb = nb;
	}
	if ((x = calloc(1, sizeof(*x) + len + 1)) == NULL)
		return NULL;
	memcpy(x->key, key, len + 1);
	i = strmap_hash(key) & (h->nb - 1);
	x->next = h->b[i];
	h->b[i] = x;
	h->n++;
	return x;
}

/* Remove key; returns its val (the caller frees it). */
void *vf_strmap_del(struct vf_strmap *h, const char *key)
{
	struct vf_strmap_node **pp, *x;
	void *v;

	if (h->nb == 0)
		return NULL;
	for (pp = &h->b[strmap_hash(key) & (h->nb - 1)]; (x = *pp) != NULL; pp = &x->next)
		if (strcmp(x->key, key) == 0) {
			*pp = x->next;
			v = x->val;
			free(x);
			h->n--;
			return v;
		}
	return NULL;
}

void vf_strmap_free(struct vf_strmap *h, int free_vals)
{
	for (size_t i = 0; i < h->nb; i++)
		while (h->b[i]) {
			struct vf_strmap_node *x = h->b[i];

			h->b[i] = x->next;
			if (free_vals)
				free(x->val);
			free(x);
		}
	free(h->b);
	memset(h, 0, sizeof(*h));
}

/* Any key of h (NULL if empty). */
const char *vf_strmap_any(const struct vf_strmap *h)
{
	for (size_t i = 0; i < h->nb && h->n; i++)
		if (h->b[i])
			return h->b[i]->key;
	return NULL;
}
