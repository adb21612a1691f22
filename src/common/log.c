/* The one logger: stderr (default) or syslog. Lines are one line each.
 * When stderr is the journal (systemd sets JOURNAL_STREAM to the "device:inode"
 * of the stream it connected, see systemd.exec(5)), every line starts with its
 * syslog priority "<N>" (sd-daemon(3)): journald files it under that priority,
 * so journalctl -p warning shows warnings and errors. The journal stamps the
 * time itself: the line then carries none. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>

#include "common_int.h"

static int log_level = VF_LOG_INFO;
static int log_syslog;
static int log_journal = -1; /* -1: not checked yet */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

/* Is stderr the stream JOURNAL_STREAM names? */
static int log_stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	if (js == NULL || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return 0;
	if (fstat(2, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

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
		pthread_mutex_lock(&log_mu);
		log_journal = log_stderr_is_journal();
		pthread_mutex_unlock(&log_mu);
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

	pthread_mutex_lock(&log_mu);
	if (log_journal < 0)
		log_journal = log_stderr_is_journal();
	if (log_journal) {
		fprintf(stderr, "<%d>%s: %s\n", prio[level], names[level], line);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ld %s: %s\n", stamp, ts.tv_nsec / 1000000, names[level],
		        line);
	}
	pthread_mutex_unlock(&log_mu);
}
