/* Embedded etcd: vfiled starts, supervises and stops this host's etcd member
 * (etcd.embedded = true): a new one-member cluster, or a member joining the
 * existing cluster (the membership decisions are in embedded_cluster.c). The
 * child dies with vfiled (PR_SET_PDEATHSIG). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "common_int.h"
#include "daemon_int.h"

struct vfd_etcd {
	char *binary, *data_dir, *log_path, *client_url, *peer_url, *name;
	char *initial_cluster; /* name=peer,... */
	int existing;          /* --initial-cluster-state existing */
	char *cacert, *cert, *key;
	pthread_t thr;
	int thr_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pid_t pid;
	int stopping;
	int restarts;
	struct vf_conf_embedded tls; /* only cacert, cert, key set (borrowed from above) */
};

static size_t eetcd_sink(char *p, size_t size, size_t n, void *arg)
{
	struct vf_buf *b = arg;

	if (b->len < 4096)
		vf_buf_add(b, p, size * n);
	return size * n;
}

static void eetcd_tls(CURL *c, const struct vf_conf_embedded *e)
{
	if (e == NULL)
		return;
	if (e->cacert)
		curl_easy_setopt(c, CURLOPT_CAINFO, e->cacert);
	if (e->cert)
		curl_easy_setopt(c, CURLOPT_SSLCERT, e->cert);
	if (e->key)
		curl_easy_setopt(c, CURLOPT_SSLKEY, e->key);
}

static int eetcd_probe(const char *client_url, const struct vf_conf_embedded *e, int timeout_ms,
                       const char *path, const char *want);

int vfd_etcd_healthy(const char *client_url, int timeout_ms)
{
	return eetcd_probe(client_url, NULL, timeout_ms, "/health", "\"true\"");
}

static int eetcd_healthy_tls(const char *client_url, const struct vf_conf_embedded *e,
                             int timeout_ms)
{
	return eetcd_probe(client_url, e, timeout_ms, "/health", "\"true\"");
}

/* GET <client_url><path>: 1 when it answers 200 with want in the body. */
static int eetcd_probe(const char *client_url, const struct vf_conf_embedded *e, int timeout_ms,
                       const char *path, const char *want)
{
	char url[512];
	struct vf_buf body = {0};
	long status = 0;
	CURL *c = curl_easy_init();
	int ok = 0;

	if (c == NULL)
		return 0;
	snprintf(url, sizeof(url), "%s%s", client_url, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, eetcd_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	eetcd_tls(c, e);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		ok = status == 200 && body.data && strstr(body.data, want) != NULL;
	}
	curl_easy_cleanup(c);
	vf_buf_free(&body);
	return ok;
}

static int eetcd_spawn(struct vfd_etcd *ee, struct vf_err *err)
{
	const char *argv[40] = {ee->binary,
	                        "--name",
	                        ee->name,
	                        "--data-dir",
	                        ee->data_dir,
	                        "--listen-client-urls",
	                        ee->client_url,
	                        "--advertise-client-urls",
	                        ee->client_url,
	                        "--listen-peer-urls",
	                        ee->peer_url,
	                        "--initial-advertise-peer-urls",
	                        ee->peer_url,
	                        "--initial-cluster",
	                        ee->initial_cluster,
	                        "--initial-cluster-state",
	                        ee->existing ? "existing" : "new",
	                        NULL};
	size_t k = 17;
	int logfd;
	pid_t parent = getpid(), pid;

	/* TLS with the cluster's certificates (the etcd group's cacert/cert/key): the
	 * certificate serves clients and peers and authenticates this member to its
	 * peers, so it needs both server and client usage. */
	if (strncmp(ee->client_url, "https://", 8) == 0 && ee->cert && ee->key) {
		argv[k++] = "--cert-file";
		argv[k++] = ee->cert;
		argv[k++] = "--key-file";
		argv[k++] = ee->key;
		if (ee->cacert) {
			argv[k++] = "--trusted-ca-file";
			argv[k++] = ee->cacert;
			argv[k++] = "--client-cert-auth";
		}
	}
	if (strncmp(ee->peer_url, "https://", 8) == 0 && ee->cert && ee->key) {
		argv[k++] = "--peer-cert-file";
		argv[k++] = ee->cert;
		argv[k++] = "--peer-key-file";
		argv[k++] = ee->key;
		if (ee->cacert) {
			argv[k++] = "--peer-trusted-ca-file";
			argv[k++] = ee->cacert;
			argv[k++] = "--peer-client-cert-auth";
		}
	}
	argv[k] = NULL;
	logfd = open(ee->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		return vf_err_set(err, VF_EINVAL, "embedded etcd: cannot open log %s: %s",
		                  ee->log_path, strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(logfd);
		return vf_err_set(err, VF_ENOMEM, "embedded etcd: fork: %s", strerror(errno));
	}
	if (pid == 0) {
		sigset_t none;
		int nullfd = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (nullfd >= 0)
			dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execvp(ee->binary, (char *const *)argv);
		dprintf(2, "embedded etcd: exec %s: %s\n", ee->binary, strerror(errno));
		_exit(127);
	}
	close(logfd);
	pthread_mutex_lock(&ee->mu);
	ee->pid = pid;
	pthread_mutex_unlock(&ee->mu);
	vf_log(VF_LOG_INFO,
	       "embedded etcd: started %s (pid %d, client %s, data %s, cluster %s, state %s)",
	       ee->binary, (int)pid, ee->client_url, ee->data_dir, ee->initial_cluster,
	       ee->existing ? "existing" : "new");
	return VF_OK;
}

/* Wait on the condition for ms unless stopping; returns stopping. */
static int eetcd_pause(struct vfd_etcd *ee, int ms)
{
	int64_t until = vf_now_ms() + ms;
	int stop;

	pthread_mutex_lock(&ee->mu);
	while (!ee->stopping)
		if (vf_cond_wait_until(&ee->cv, &ee->mu, until) == ETIMEDOUT)
			break;
	stop = ee->stopping;
	pthread_mutex_unlock(&ee->mu);
	return stop;
}

/* Reap the member; restart it unless stopping (back-off 0.5 s doubling to 10 s). */
static void *eetcd_supervise(void *arg)
{
	struct vfd_etcd *ee = arg;
	int backoff = 500;

	for (;;) {
		pid_t pid;
		int status = 0;
		int64_t started = vf_now_ms();

		pthread_mutex_lock(&ee->mu);
		pid = ee->pid;
		pthread_mutex_unlock(&ee->mu);
		if (pid > 0) {
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		pthread_mutex_lock(&ee->mu);
		ee->pid = 0;
		pthread_cond_broadcast(&ee->cv);
		if (ee->stopping) {
			pthread_mutex_unlock(&ee->mu);
			break;
		}
		pthread_mutex_unlock(&ee->mu);
		if (pid > 0)
			vf_log(VF_LOG_ERR, "embedded etcd: pid %d died (%s %d): restarting",
			       (int)pid, WIFSIGNALED(status) ? "signal" : "exit status",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		if (vf_now_ms() - started > 30000)
			backoff = 500;
		if (eetcd_pause(ee, backoff))
			break;
		if (backoff < 10000)
			backoff *= 2;
		struct vf_err err = {0};

		if (eetcd_spawn(ee, &err) != VF_OK) {
			vf_log(VF_LOG_ERR, "%s", err.msg);
			continue;
		}
		pthread_mutex_lock(&ee->mu);
		ee->restarts++;
		pthread_mutex_unlock(&ee->mu);
		int64_t until = vf_now_ms() + 20000;
		while (!eetcd_healthy_tls(ee->client_url, &ee->tls, 500) && vf_now_ms() < until)
			if (eetcd_pause(ee, 100))
				break;
	}
	return NULL;
}

static void eetcd_free(struct vfd_etcd *ee)
{
	free(ee->binary);
	free(ee->data_dir);
	free(ee->log_path);
	free(ee->client_url);
	free(ee->peer_url);
	free(ee->name);
	free(ee->initial_cluster);
	free(ee->cacert);
	free(ee->cert);
	free(ee->key);
	pthread_mutex_destroy(&ee->mu);
	pthread_cond_destroy(&ee->cv);
	free(ee);
}

static char *eetcd_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int vfd_etcd_start(const struct vf_conf_embedded *e, const char *name, const char *initial_cluster,
                   int existing, int timeout_ms, struct vfd_etcd **ee_r, struct vf_err *err)
{
	struct vfd_etcd *ee = calloc(1, sizeof(*ee));
	int rc;

	*ee_r = NULL;
	if (ee == NULL)
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	pthread_mutex_init(&ee->mu, NULL);
	vf_cond_init(&ee->cv);
	ee->binary = strdup(e->binary);
	ee->data_dir = strdup(e->data_dir);
	ee->client_url = strdup(e->client_url);
	ee->peer_url = strdup(e->peer_url);
	ee->name = vfd_etcd_member_name(name);
	ee->cacert = eetcd_dup(e->cacert);
	ee->cert = eetcd_dup(e->cert);
	ee->key = eetcd_dup(e->key);
	ee->tls.cacert = ee->cacert;
	ee->tls.cert = ee->cert;
	ee->tls.key = ee->key;
	ee->existing = existing;
	if (ee->name && initial_cluster)
		ee->initial_cluster = strdup(initial_cluster);
	else if (ee->name && asprintf(&ee->initial_cluster, "%s=%s", ee->name, e->peer_url) < 0)
		ee->initial_cluster = NULL;
	if (asprintf(&ee->log_path, "%s.log", e->data_dir) < 0)
		ee->log_path = NULL;
	if (!ee->binary || !ee->data_dir || !ee->client_url || !ee->peer_url || !ee->name ||
	    !ee->log_path || !ee->initial_cluster || (e->cacert && !ee->cacert) ||
	    (e->cert && !ee->cert) || (e->key && !ee->key)) {
		eetcd_free(ee);
		return vf_err_set(err, VF_ENOMEM, "out of memory");
	}
	if (eetcd_healthy_tls(ee->client_url, &ee->tls, 300)) {
		rc = vf_err_set(err, VF_EBUSY,
		                "embedded etcd: something already answers on %s: refusing to start "
		                "a second member there",
		                ee->client_url);
		eetcd_free(ee);
		return rc;
	}
	if (mkdir(ee->data_dir, 0700) != 0 && errno != EEXIST) {
		rc = vf_err_set(err, VF_EINVAL, "embedded etcd: cannot create %s: %s", ee->data_dir,
		                strerror(errno));
		eetcd_free(ee);
		return rc;
	}
	/* A member restarting on its data may have no quorum until its peers are
	 * back too (every manager rebooted): it is up once it serves /version; a
	 * new or joining member must be healthy. */
	int restart = vfd_etcd_has_data(ee->data_dir);

	if ((rc = eetcd_spawn(ee, err)) != VF_OK) {
		eetcd_free(ee);
		return rc;
	}
	int64_t until = vf_now_ms() + timeout_ms;
	int healthy = 0, exited = 0, status = 0;

	while (!(healthy = restart ? eetcd_probe(ee->client_url, &ee->tls, 500, "/version",
	                                         "etcdserver")
	                           : eetcd_healthy_tls(ee->client_url, &ee->tls, 500)) &&
	       vf_now_ms() < until) {
		if (waitpid(ee->pid, &status, WNOHANG) == ee->pid) {
			ee->pid = 0;
			exited = 1;
			break;
		}
		struct timespec ts = {0, 100000000L};
		nanosleep(&ts, NULL);
	}
	if (!healthy && exited) {
		rc = vf_err_set(err, VF_EUNAVAIL,
		                "embedded etcd: %s exited at start (%s %d; is %s already in use?) "
		                "(see %s)",
		                ee->binary, WIFEXITED(status) ? "status" : "signal",
		                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
		                ee->client_url, ee->log_path);
	} else if (!healthy) {
		rc = vf_err_set(
		        err, VF_EUNAVAIL,
		        "embedded etcd: %s did not become healthy on %s within %d ms (see %s)",
		        ee->binary, ee->client_url, timeout_ms, ee->log_path);
	}
	if (!healthy) {
		if (ee->pid > 0) {
			kill(-ee->pid, SIGKILL);
			waitpid(ee->pid, NULL, 0);
		}
		eetcd_free(ee);
		return rc;
	}
	if (pthread_create(&ee->thr, NULL, eetcd_supervise, ee) == 0)
		ee->thr_started = 1;
	else
		vf_log(VF_LOG_WARN,
		       "embedded etcd: no supervisor thread: it will not be restarted");
	vf_log(VF_LOG_INFO, "embedded etcd: %s on %s", restart ? "up (on its data)" : "healthy",
	       ee->client_url);
	*ee_r = ee;
	return VF_OK;
}

char *vfd_etcd_member_name(const char *name)
{
	char *n = strdup(name);

	/* etcd member names: keep it to [A-Za-z0-9_.-] */
	for (char *p = n; p && *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
			*p = '_';
	return n;
}

static int eetcd_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) != 0 && errno != ENOENT ? -1 : 0;
	return unlink(path) != 0 && errno != ENOENT ? -1 : 0;
}

int vfd_etcd_wipe(const char *data_dir, struct vf_err *err)
{
	struct stat st;

	if (lstat(data_dir, &st) != 0)
		return errno == ENOENT ? VF_OK
		                       : vf_err_set(err, VF_EINVAL, "embedded etcd: %s: %s",
		                                    data_dir, strerror(errno));
	if (nftw(data_dir, eetcd_rm, 16, FTW_DEPTH | FTW_PHYS) != 0)
		return vf_err_set(err, VF_EINVAL, "embedded etcd: cannot delete %s: %s", data_dir,
		                  strerror(errno));
	vf_log(VF_LOG_INFO, "embedded etcd: deleted the member data %s", data_dir);
	return VF_OK;
}

int vfd_etcd_has_data(const char *data_dir)
{
	char p[4096];
	struct stat st;

	snprintf(p, sizeof(p), "%s/member", data_dir);
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int vfd_etcd_restarts(struct vfd_etcd *ee)
{
	int n;

	pthread_mutex_lock(&ee->mu);
	n = ee->restarts;
	pthread_mutex_unlock(&ee->mu);
	return n;
}

int vfd_etcd_pid(struct vfd_etcd *ee)
{
	int pid;

	pthread_mutex_lock(&ee->mu);
	pid = (int)ee->pid;
	pthread_mutex_unlock(&ee->mu);
	return pid;
}

void vfd_etcd_stop(struct vfd_etcd **eep)
{
	struct vfd_etcd *ee = eep ? *eep : NULL;
	int64_t until;
	pid_t pid;

	if (ee == NULL)
		return;
	pthread_mutex_lock(&ee->mu);
	ee->stopping = 1;
	pid = ee->pid;
	pthread_cond_broadcast(&ee->cv);
	pthread_mutex_unlock(&ee->mu);
	if (pid > 0)
		kill(pid, SIGTERM);
	if (ee->thr_started) {
		until = vf_now_ms() + 10000;
		pthread_mutex_lock(&ee->mu);
		while (ee->pid > 0 && vf_now_ms() < until)
			vf_cond_wait_ms(&ee->cv, &ee->mu, 100);
		pid = ee->pid;
		pthread_mutex_unlock(&ee->mu);
		if (pid > 0) {
			vf_log(VF_LOG_WARN, "embedded etcd: pid %d ignored SIGTERM: killing it",
			       (int)pid);
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
		}
		pthread_join(ee->thr, NULL);
	} else if (pid > 0) {
		waitpid(pid, NULL, 0);
	}
	vf_log(VF_LOG_INFO, "embedded etcd: stopped");
	eetcd_free(ee);
	*eep = NULL;
}
