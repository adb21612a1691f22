/* The one logger: stderr (default) or syslog. Lines are one line each. */
#include <config.h>

#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "common_int.h"

static int log_level = VF_LOG_INFO;
static int log_syslog;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void vf_log_set_level(int level)
{
	log_level = level;
}

int vf_log_get_level(void)
{
	return log_level;
}

int vf_log_set_target(const char *target, const char *ident)
{
	if (strcmp(target, "stderr") == 0) {
		if (log_syslog)
			closelog();
		log_syslog = 0;
		return VF_OK;
	}
	if (strcmp(target, "syslog") == 0) {
		openlog(ident ? ident : "vfile", LOG_PID, LOG_DAEMON);
		log_syslog = 1;
		return VF_OK;
	}
	return VF_EINVAL;
}

void vf_log(int level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char line[1024];
	va_list ap;

	if (level > log_level || level < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (log_syslog) {
		syslog(prio[level], "%s", line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_mu);
	fprintf(stderr, "%s.%03ld %s: %s\n", stamp, ts.tv_nsec / 1000000, names[level], line);
	pthread_mutex_unlock(&log_mu);
}
