/* The sftp driver: sshd's log, into <rundir>/sshd.log and vfiled's log.
 *
 * sshd runs with -e (its log on stderr), stderr is a pipe; a detached thread per
 * sshd copies each line to sshd.log (read back by start errors) and logs it
 * as "volume VOL: sshd: LINE" with a priority judged from the line (fatal, bind
 * failures: err; errors, refused or failed authentication: warning; the start's
 * connection test, plain disconnects: debug; else info). It ends when the last holder of
 * the pipe (sshd and its sessions) is gone. sshd logs no secret at LogLevel
 * INFO (a key is named by its fingerprint).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common_int.h"
#include "sftp_int.h"

struct sftp_logfwd {
	int rfd, filefd;
	char vol[256];
};

/* Forwarders running (any driver instance): sftp_close waits for them. */
static pthread_mutex_t sftp_logfwd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sftp_logfwd_cv;
static pthread_once_t sftp_logfwd_once = PTHREAD_ONCE_INIT;
static int sftp_logfwd_n;

/* sftp_logfwd_cv waits on the monotonic clock (vf_cond_init) */
static void sftp_logfwd_cv_init(void)
{
	vf_cond_init(&sftp_logfwd_cv);
}

/* Wait (up to ms) until no forwarder runs (their sshd are stopped). */
void sftp_logfwd_drain(int ms)
{
	int64_t until = vf_now_ms() + ms;

	pthread_once(&sftp_logfwd_once, sftp_logfwd_cv_init);
	pthread_mutex_lock(&sftp_logfwd_mu);
	while (sftp_logfwd_n > 0)
		if (vf_cond_wait_until(&sftp_logfwd_cv, &sftp_logfwd_mu, until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&sftp_logfwd_mu);
}

static void sftp_logfwd_line(const struct sftp_logfwd *f, char *line)
{
	int level = VF_LOG_INFO;

	if (line[0] == '\0')
		return;
	/* sshd -e writes most lines without their level: judged by the text */
	if (strncmp(line, "fatal", 5) == 0 || strstr(line, "Cannot bind") ||
	    strstr(line, "Missing privilege separation"))
		level = VF_LOG_ERR;
	else if (strncmp(line, "error", 5) == 0 || strstr(line, "authenticating user") ||
	         strstr(line, "Invalid user") || strstr(line, "refused") ||
	         strstr(line, "Failed ") || strstr(line, "Bad "))
		level = VF_LOG_WARN;
	else if (strncmp(line, "debug", 5) == 0 || strstr(line, "kex_exchange_identification") ||
	         strncmp(line, "Connection closed by", 20) == 0 ||
	         strncmp(line, "Connection reset by", 19) == 0)
		level = VF_LOG_DEBUG; /* the start's connection test, port probes */
	vf_log(level, "volume %s: sshd: %s", f->vol, line);
}

static void *sftp_logfwd_run(void *arg)
{
	struct sftp_logfwd *f = arg;
	char buf[4096];
	size_t have = 0;

	for (;;) {
		ssize_t r = read(f->rfd, buf + have, sizeof(buf) - 1 - have);
		char *p, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (f->filefd >= 0 && write(f->filefd, buf + have, (size_t)r) < 0) {
			/* the file is a copy for start errors: the log line below stays */
		}
		have += (size_t)r;
		buf[have] = '\0';
		for (p = buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
			*nl = '\0';
			if (nl > p && nl[-1] == '\r')
				nl[-1] = '\0';
			sftp_logfwd_line(f, p);
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (have == sizeof(buf) - 1) { /* a line longer than the buffer: cut */
			buf[have] = '\0';
			sftp_logfwd_line(f, buf);
			have = 0;
		}
	}
	buf[have] = '\0';
	sftp_logfwd_line(f, buf);
	close(f->rfd);
	if (f->filefd >= 0)
		close(f->filefd);
	free(f);
	pthread_mutex_lock(&sftp_logfwd_mu);
	sftp_logfwd_n--;
	pthread_cond_broadcast(&sftp_logfwd_cv);
	pthread_mutex_unlock(&sftp_logfwd_mu);
	return NULL;
}

/* The pipe sshd's stderr goes to (*wfd_r: its write end, the caller closes it
 * once sshd is spawned) and the thread that forwards it (*thr_r, joinable). */
int sftp_logfwd_start(const char *vol, const char *logp, int *wfd_r, pthread_t *thr_r,
                      struct vf_err *err)
{
	struct sftp_logfwd *f = calloc(1, sizeof(*f));
	int fds[2];

	if (f == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	snprintf(f->vol, sizeof(f->vol), "%s", vol);
	f->filefd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f->filefd < 0) {
		free(f);
		return vf_err_set(err, VF_EINVAL, "volume %s: cannot open %s: %s", vol, logp,
		                  strerror(errno));
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		close(f->filefd);
		free(f);
		return vf_err_set(err, VF_EINVAL, "volume %s: cannot make sshd's log pipe: %s", vol,
		                  strerror(errno));
	}
	f->rfd = fds[0];
	pthread_once(&sftp_logfwd_once, sftp_logfwd_cv_init); /* before any forwarder */
	pthread_mutex_lock(&sftp_logfwd_mu);
	sftp_logfwd_n++;
	pthread_mutex_unlock(&sftp_logfwd_mu);
	if (pthread_create(thr_r, NULL, sftp_logfwd_run, f) != 0) {
		pthread_mutex_lock(&sftp_logfwd_mu);
		sftp_logfwd_n--;
		pthread_mutex_unlock(&sftp_logfwd_mu);
		close(fds[0]);
		close(fds[1]);
		close(f->filefd);
		free(f);
		return vf_err_set(err, VF_ENOMEM, "volume %s: cannot start sshd's log thread", vol);
	}
	*wfd_r = fds[1];
	return VF_OK;
}

/* sshd exited or was killed at start: wait (bounded) until its last lines are
 * in sshd.log; a session child still holding the pipe: leave the thread be. */
void sftp_logfwd_end(pthread_t thr, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (pthread_timedjoin_np(thr, NULL, &ts) != 0)
		pthread_detach(thr);
}
