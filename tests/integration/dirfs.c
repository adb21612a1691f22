/* dirfs helpers (integ.h), shared by the test programs and vfnode. */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "integ.h"

/* ---- dirfs ---- */
int ig_dirfs_live(const char *dir, const char *name)
{
	char p[1024];
	long pid = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "r");
	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

int ig_dirfs_servers(const char *dir, const char *vol)
{
	char pre[300];
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	snprintf(pre, sizeof(pre), "srv.%s@", vol);
	while (d && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, pre, strlen(pre)) == 0 && ig_dirfs_live(dir, de->d_name))
			n++;
	if (d)
		closedir(d);
	return n;
}

int ig_file_lines(const char *dir, const char *name)
{
	char p[1024];
	int c, n = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "r");
	if (f == NULL)
		return 0;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}
