/* Failpoints of the volume manager (tests): named hooks at points of the
 * protocol (volume_int.h lists the names). */
#include <config.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "metrics_int.h"
#include "volume_int.h"
#include "fs_int.h"

/* ---- failpoints ---- */
struct fp {
	char name[64];
	vf_failpoint_fn fn;
	void *arg;
};
static struct fp fp_tab[16];
static pthread_mutex_t fp_mu = PTHREAD_MUTEX_INITIALIZER;

void vf_failpoint_set(const char *name, vf_failpoint_fn fn, void *arg)
{
	struct fp *free_slot = NULL;

	pthread_mutex_lock(&fp_mu);
	for (size_t i = 0; i < sizeof(fp_tab) / sizeof(fp_tab[0]); i++) {
		if (fp_tab[i].fn && strcmp(fp_tab[i].name, name) == 0) {
			free_slot = &fp_tab[i];
			break;
		}
		if (fp_tab[i].fn == NULL && free_slot == NULL)
			free_slot = &fp_tab[i];
	}
	if (free_slot) {
		snprintf(free_slot->name, sizeof(free_slot->name), "%s", name);
		free_slot->fn = fn;
		free_slot->arg = arg;
	}
	pthread_mutex_unlock(&fp_mu);
}

void vf_failpoint_clear_all(void)
{
	pthread_mutex_lock(&fp_mu);
	memset(fp_tab, 0, sizeof(fp_tab));
	pthread_mutex_unlock(&fp_mu);
}

int vf_failpoint_hit(const char *name, const char *vol)
{
	vf_failpoint_fn fn = NULL;
	void *arg = NULL;

	pthread_mutex_lock(&fp_mu);
	for (size_t i = 0; i < sizeof(fp_tab) / sizeof(fp_tab[0]); i++)
		if (fp_tab[i].fn && strcmp(fp_tab[i].name, name) == 0) {
			fn = fp_tab[i].fn;
			arg = fp_tab[i].arg;
		}
	pthread_mutex_unlock(&fp_mu);
	return fn ? fn(name, vol, arg) : 0;
}
