/* Test server harness: real etcd / Consul on free loopback ports (see harness.h). */
#include <config.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SRV_STOP_GRACE_MS 5000
#define SRV_MAX_PIDS 64

static pthread_mutex_t srv_mu = PTHREAD_MUTEX_INITIALIZER;
static struct vf_srv *srv_live;
/* Process groups of live servers, read by the signal handler. */
static volatile pid_t srv_pgids[SRV_MAX_PIDS];
static pthread_once_t srv_once = PTHREAD_ONCE_INIT;

static int64_t srv_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void srv_nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void srv_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	for (char *p = why; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/* ---- cleanup of live servers ---- */

static void srv_pgid_add(pid_t pid)
{
	for (int i = 0; i < SRV_MAX_PIDS; i++)
		if (srv_pgids[i] == 0) {
			srv_pgids[i] = pid;
			return;
		}
}

static void srv_pgid_del(pid_t pid)
{
	for (int i = 0; i < SRV_MAX_PIDS; i++)
		if (srv_pgids[i] == pid)
			srv_pgids[i] = 0;
}

void vf_srv_kill_all(void)
{
	for (int i = 0; i < SRV_MAX_PIDS; i++) {
		pid_t p = srv_pgids[i];

		if (p > 0)
			kill(-p, SIGKILL);
	}
}

static void srv_on_signal(int sig)
{
	vf_srv_kill_all();
	/* SA_RESETHAND restored the default action: die of the same signal. */
	raise(sig);
}

static void srv_atexit(void)
{
	for (;;) {
		struct vf_srv *s;

		pthread_mutex_lock(&srv_mu);
		s = srv_live;
		pthread_mutex_unlock(&srv_mu);
		if (s == NULL)
			break;
		vf_srv_stop(&s);
	}
}

static void srv_install(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGABRT, SIGSEGV, SIGBUS, SIGQUIT};
	struct sigaction sa, old;

	atexit(srv_atexit);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = srv_on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		/* Leave handlers of sanitizers and the test program alone. */
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
		    !(old.sa_flags & SA_SIGINFO))
			sigaction(sigs[i], &sa, NULL);
	}
}

static void srv_register(struct vf_srv *srv)
{
	pthread_mutex_lock(&srv_mu);
	srv->next = srv_live;
	srv_live = srv;
	pthread_mutex_unlock(&srv_mu);
}

static void srv_unregister(struct vf_srv *srv)
{
	pthread_mutex_lock(&srv_mu);
	for (struct vf_srv **pp = &srv_live; *pp; pp = &(*pp)->next)
		if (*pp == srv) {
			*pp = srv->next;
			break;
		}
	pthread_mutex_unlock(&srv_mu);
}

static int srv_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void srv_rmrf(const char *dir)
{
	if (dir[0] != '\0')
		nftw(dir, srv_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- small helpers ---- */

/*
 * Ports for test servers come from one registry shared by every test process on
 * the machine (the C suites here, the shell suites through tests/e2e/lib.sh's
 * free_port): a directory holding one file per port handed out, naming the pid of
 * the test that owns it, taken under flock. A port stays with its test until that
 * test exits, so a member a test kills and restarts finds its port again, and no
 * other suite running beside it (make -j2 check) is given it meanwhile. Ports are
 * drawn below the kernel's ephemeral range (and below 49152, docker's limit for
 * data path ports): an outgoing connection can never take one between the pick
 * and the bind.
 */
#define SRV_PORT_LO 20000

static const char *srv_port_dir(void)
{
	const char *d = getenv("VF_TEST_PORT_DIR");

	return d && *d ? d : "/tmp/vfile-test-ports";
}

/* Is the reservation file for port held by a live test process? */
static int srv_port_held(const char *dir, int port)
{
	char path[512], buf[32];
	ssize_t n;
	long pid;
	int fd;

	snprintf(path, sizeof(path), "%s/%d", dir, port);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	pid = strtol(buf, NULL, 10);
	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* Can a socket of type bind 127.0.0.1:port now (nothing bound, listening or in
 * TIME_WAIT on it)? */
static int srv_port_bindable(int type, int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0), ok;

	if (fd < 0)
		return 0;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static int srv_ports_mine[1024];
static int srv_nports_mine;
static pid_t srv_ports_owner;

static void srv_ports_release(void)
{
	char path[512];

	if (getpid() != srv_ports_owner) /* a forked child exiting: not its ports */
		return;
	for (int i = 0; i < srv_nports_mine; i++) {
		snprintf(path, sizeof(path), "%s/%d", srv_port_dir(), srv_ports_mine[i]);
		unlink(path);
	}
	srv_nports_mine = 0;
}

int vf_srv_free_port(void)
{
	return vf_srv_free_ports(1);
}

int vf_srv_free_ports(int n)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static unsigned seed;
	static int registered;
	const char *dir = srv_port_dir();
	char path[512], pid[32];
	int lo = 32768, hi, lock, port = -1;
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	if (f) {
		if (fscanf(f, "%d", &lo) != 1)
			lo = 32768;
		fclose(f);
	}
	hi = (lo < 49152 ? lo : 49152) - n;
	if (n < 1 || hi - SRV_PORT_LO < 1000)
		return -1;
	pthread_mutex_lock(&mu);
	if (seed == 0)
		seed = (unsigned)getpid() ^ (unsigned)srv_now_ms() ^ (unsigned)time(NULL) << 8;
	if (!registered) {
		srv_ports_owner = getpid();
		atexit(srv_ports_release);
		registered = 1;
	}
	(void)mkdir(dir, 01777);
	snprintf(path, sizeof(path), "%s/.lock", dir);
	lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (lock < 0 || flock(lock, LOCK_EX) != 0)
		goto out;
	for (int tries = 0; tries < 1000 && port < 0; tries++) {
		int p = SRV_PORT_LO + (int)(rand_r(&seed) % (unsigned)(hi - SRV_PORT_LO)), i;

		for (i = p; i < p + n; i++)
			if (srv_port_held(dir, i) || !srv_port_bindable(SOCK_STREAM, i) ||
			    !srv_port_bindable(SOCK_DGRAM, i))
				break;
		if (i < p + n)
			continue;
		snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		for (i = p; i < p + n; i++) {
			int fd;

			snprintf(path, sizeof(path), "%s/%d", dir, i);
			if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0)
				goto out;
			if (write(fd, pid, strlen(pid)) != (ssize_t)strlen(pid)) {
				close(fd);
				goto out;
			}
			close(fd);
			if (srv_nports_mine < (int)(sizeof(srv_ports_mine) / sizeof(int)))
				srv_ports_mine[srv_nports_mine++] = i;
		}
		port = p;
	}
out:
	if (lock >= 0)
		close(lock); /* drops the flock */
	pthread_mutex_unlock(&mu);
	return port;
}

/* 32 random hex digits shaped as a UUID (Consul wants UUIDs for tokens). */
static void srv_gen_secret(char *out, size_t size)
{
	unsigned char r[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, r, sizeof(r)) != (ssize_t)sizeof(r)) {
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)(rand() ^ (int)srv_now_ms() ^ (int)getpid());
	}
	if (fd >= 0)
		close(fd);
	snprintf(out, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
	         r[13], r[14], r[15]);
}

/*
 * One HTTP/1.0-style request on a fresh loopback connection ("Connection: close"),
 * bounded by timeout_ms. Returns the HTTP status (> 0) with the body in body_r
 * (NUL-terminated, truncated to size), or -1.
 */
static int srv_http(int port, const char *method, const char *path, const char *header,
                    const char *body, int timeout_ms, char *body_r, size_t size)
{
	struct sockaddr_in a;
	char req[4096], resp[65536];
	size_t got = 0;
	int64_t deadline = srv_now_ms() + timeout_ms;
	int fd, n, status = -1;
	const char *p;

	if (body_r && size)
		body_r[0] = '\0';
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS)
		goto out;
	n = snprintf(req, sizeof(req),
	             "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s%s"
	             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
	             method, path, port, header ? header : "", header ? "\r\n" : "",
	             body ? strlen(body) : 0, body ? body : "");
	if (n < 0 || (size_t)n >= sizeof(req))
		goto out;
	for (int off = 0; off < n;) {
		struct pollfd pfd = {fd, POLLOUT, 0};
		int left = (int)(deadline - srv_now_ms());
		ssize_t w;

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			goto out;
		w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			goto out;
		if (w > 0)
			off += (int)w;
	}
	for (;;) {
		struct pollfd pfd = {fd, POLLIN, 0};
		int left = (int)(deadline - srv_now_ms());
		ssize_t r;

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			goto out;
		r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			break;
		if (r > 0)
			got += (size_t)r;
		if (got == sizeof(resp) - 1)
			break;
	}
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/%*d.%*d %d", &status) != 1)
		status = -1;
	p = strstr(resp, "\r\n\r\n");
	if (p && body_r && size)
		snprintf(body_r, size, "%s", p + 4);
out:
	close(fd);
	return status;
}

/* The string or number value of "name" in a flat JSON text (first occurrence). */
static int srv_json_field(const char *json, const char *name, char *out, size_t size)
{
	char pat[64];
	const char *p;
	size_t n = 0;

	snprintf(pat, sizeof(pat), "\"%s\"", name);
	p = strstr(json, pat);
	if (p == NULL || size == 0)
		return -1;
	p += strlen(pat);
	while (*p == ' ' || *p == ':')
		p++;
	if (*p == '"')
		p++;
	while (*p && *p != '"' && *p != ',' && *p != '}' && n + 1 < size)
		out[n++] = *p++;
	out[n] = '\0';
	return 0;
}

static void srv_log_tail(const struct vf_srv *srv, int i, char *out, size_t size)
{
	char path[4200], buf[8192];
	FILE *f;
	size_t n;
	char *line, *end;

	snprintf(out, size, "(no log)");
	vf_srv_log(srv, i, path, sizeof(path));
	f = fopen(path, "r");
	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	if (ftell(f) > (long)sizeof(buf) - 1)
		fseek(f, -(long)sizeof(buf) + 1, SEEK_END);
	else
		fseek(f, 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	end = buf + n;
	line = end;
	while (line > buf && line[-1] != '\n')
		line--;
	snprintf(out, size, "last log line of %.200s: %.300s", path, line);
}

const char *vf_srv_log(const struct vf_srv *srv, int i, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s.log", srv->dir, srv->m[i].name);
	return buf;
}

static int srv_find_bin(int kind, char *out, size_t size)
{
	const char *name = kind == VF_SRV_ETCD ? "etcd" : "consul";
	const char *env = getenv(kind == VF_SRV_ETCD ? "ETCD" : "CONSUL");
	const char *path = getenv("PATH");
	char buf[4096];

	if (env && *env) {
		snprintf(out, size, "%s", env);
		return access(out, X_OK) == 0 ? 0 : -1;
	}
	snprintf(buf, sizeof(buf), "%s:/usr/local/bin:/usr/bin", path ? path : "");
	for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, size, "%s/%s", *d ? d : ".", name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	snprintf(out, size, "%s", name);
	return -1;
}

/* ---- processes ---- */

/* The port in member i's advertised peer URL: its peer proxy's, if it has one. */
static int srv_peer_url_port(const struct vf_srv *srv, int i)
{
	return srv->peer_proxy[i] ? vf_proxy_port(srv->peer_proxy[i]) : srv->m[i].peer_port;
}

static int srv_member_argv(struct vf_srv *srv, int i, char **argv, size_t max, char *store,
                           size_t storelen)
{
	struct vf_srv_member *m = &srv->m[i];
	size_t n = 0, used = 0;

#define ARG(...)                                                                                   \
	do {                                                                                       \
		int w_ = snprintf(store + used, storelen - used, __VA_ARGS__);                     \
		if (w_ < 0 || (size_t)w_ >= storelen - used || n + 1 >= max)                       \
			return -1;                                                                 \
		argv[n++] = store + used;                                                          \
		used += (size_t)w_ + 1;                                                            \
	} while (0)

	ARG("%s", srv->bin);
	if (srv->kind == VF_SRV_ETCD) {
		char cluster[1024];
		size_t cl = 0;

		const char *scheme = srv->tls_cert ? "https" : "http";

		for (int j = 0; j < srv->nmembers; j++)
			cl += (size_t)snprintf(cluster + cl, sizeof(cluster) - cl,
			                       "%s%s=http://127.0.0.1:%d", j ? "," : "",
			                       srv->m[j].name, srv_peer_url_port(srv, j));
		ARG("--name");
		ARG("%s", m->name);
		ARG("--data-dir");
		ARG("%s/%s.data", srv->dir, m->name);
		ARG("--listen-client-urls");
		ARG("%s://127.0.0.1:%d", scheme, m->client_port);
		ARG("--advertise-client-urls");
		ARG("%s://127.0.0.1:%d", scheme, m->client_port);
		if (srv->tls_cert) {
			ARG("--cert-file");
			ARG("%s", srv->tls_cert);
			ARG("--key-file");
			ARG("%s", srv->tls_key);
			if (srv->tls_ca) {
				ARG("--trusted-ca-file");
				ARG("%s", srv->tls_ca);
			}
			if (srv->opts.tls_client_auth)
				ARG("--client-cert-auth");
			/* Plain /health for the harness's readiness poll. */
			ARG("--listen-metrics-urls");
			ARG("http://127.0.0.1:%d", m->metrics_port);
		}
		ARG("--listen-peer-urls");
		ARG("http://127.0.0.1:%d", m->peer_port);
		ARG("--initial-advertise-peer-urls");
		ARG("http://127.0.0.1:%d", srv_peer_url_port(srv, i));
		ARG("--initial-cluster");
		ARG("%s", cluster);
		ARG("--initial-cluster-state");
		ARG("new");
		ARG("--initial-cluster-token");
		ARG("vfile-test-%d", srv->m[0].peer_port);
		/* Fast elections: minimum lease TTL becomes ceil(1.5 x 500 ms) = 1 s. */
		ARG("--election-timeout");
		ARG("500");
		ARG("--heartbeat-interval");
		ARG("50");
		ARG("--log-level");
		ARG("warn");
		ARG("--logger");
		ARG("zap");
	} else {
		ARG("agent");
		ARG("-config-file");
		if (srv->nmembers > 1)
			ARG("%s/%s.json", srv->dir, m->name);
		else
			ARG("%s/consul.json", srv->dir);
	}
	argv[n] = NULL;
	return 0;
#undef ARG
}

static int srv_spawn(struct vf_srv *srv, int i, char *why, size_t whylen)
{
	struct vf_srv_member *m = &srv->m[i];
	char store[8192], logp[4200];
	char *argv[64];
	pid_t parent = getpid(), pid;
	int logfd;

	if (srv_member_argv(srv, i, argv, 64, store, sizeof(store)) != 0) {
		srv_why(why, whylen, "%s: command line too long", srv->bin);
		return -1;
	}
	vf_srv_log(srv, i, logp, sizeof(logp));
	logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) {
		srv_why(why, whylen, "cannot open %s: %s", logp, strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		srv_why(why, whylen, "fork: %s", strerror(errno));
		close(logfd);
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		/* Die with the test: the harness must never leave servers behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		execv(argv[0], argv);
		dprintf(2, "harness: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	close(logfd);
	m->pid = pid;
	m->stopped = 0;
	srv_pgid_add(pid);
	return 0;
}

/* Reap member i if it exited; returns 1 if it is gone. */
static int srv_reaped(struct vf_srv *srv, int i, int *status_r)
{
	struct vf_srv_member *m = &srv->m[i];
	int st = 0;

	if (m->pid <= 0)
		return 1;
	if (waitpid(m->pid, &st, WNOHANG) == m->pid) {
		kill(-m->pid, SIGKILL); /* stray children of the group */
		srv_pgid_del(m->pid);
		m->pid = 0;
		if (status_r)
			*status_r = st;
		return 1;
	}
	return 0;
}

static void srv_member_stop(struct vf_srv *srv, int i, int sig)
{
	struct vf_srv_member *m = &srv->m[i];
	int64_t deadline = srv_now_ms() + SRV_STOP_GRACE_MS;

	if (m->pid <= 0)
		return;
	kill(-m->pid, sig);
	if (m->stopped && sig != SIGKILL)
		kill(-m->pid, SIGCONT);
	m->stopped = 0;
	while (!srv_reaped(srv, i, NULL)) {
		if (srv_now_ms() > deadline) {
			kill(-m->pid, SIGKILL);
			waitpid(m->pid, NULL, 0);
			srv_pgid_del(m->pid);
			m->pid = 0;
			break;
		}
		srv_nap_ms(10);
	}
}

/* ---- readiness ---- */

static int srv_member_ready(struct vf_srv *srv, int i)
{
	struct vf_srv_member *m = &srv->m[i];
	char body[8192], v[128], hdr[200] = "";

	if (srv->kind == VF_SRV_ETCD && srv->tls_cert) {
		/* /health is true only with a leader and a working member. */
		if (srv_http(m->metrics_port, "GET", "/health", NULL, NULL, 1000, body,
		             sizeof(body)) != 200)
			return 0;
		return strstr(body, "\"true\"") != NULL;
	}
	if (srv->kind == VF_SRV_ETCD) {
		if (srv_http(m->client_port, "POST", "/v3/maintenance/status", NULL, "{}", 1000,
		             body, sizeof(body)) != 200)
			return 0;
		if (srv_json_field(body, "leader", v, sizeof(v)) != 0 || strcmp(v, "0") == 0)
			return 0;
		if (srv_http(m->client_port, "GET", "/health", NULL, NULL, 1000, body,
		             sizeof(body)) != 200)
			return 0;
		return strstr(body, "\"true\"") != NULL;
	}
	if (srv_http(m->client_port, "GET", "/v1/status/leader", NULL, NULL, 1000, body,
	             sizeof(body)) != 200)
		return 0;
	if (strlen(body) < 4) /* "" */
		return 0;
	if (srv->opts.auth)
		snprintf(hdr, sizeof(hdr), "X-Consul-Token: %s", srv->admin_secret);
	/* Sessions need the node in the catalog: wait for the leader to register it. */
	snprintf(v, sizeof(v), "/v1/catalog/node/%s", m->name);
	if (srv_http(m->client_port, "GET", v, hdr[0] ? hdr : NULL, NULL, 1000, body,
	             sizeof(body)) != 200)
		return 0;
	return strstr(body, "\"Node\"") != NULL;
}

/* Wait until every running member is ready, or one exits, or the deadline. */
static int srv_wait_ready(struct vf_srv *srv, char *why, size_t whylen)
{
	int limit = srv->opts.ready_timeout_ms > 0 ? srv->opts.ready_timeout_ms : 30000;
	int64_t deadline = srv_now_ms() + limit;

	for (;;) {
		int ready = 1;

		for (int i = 0; i < srv->nmembers; i++) {
			int st = 0;
			char tail[600];

			if (srv->m[i].pid <= 0)
				continue;
			if (srv_reaped(srv, i, &st)) {
				srv_log_tail(srv, i, tail, sizeof(tail));
				srv_why(why, whylen,
				        "%s member %s exited (status %d) while starting; %s",
				        srv->bin, srv->m[i].name,
				        WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), tail);
				return -1;
			}
			if (!srv_member_ready(srv, i))
				ready = 0;
		}
		if (ready)
			return 0;
		if (srv_now_ms() > deadline) {
			char tail[600];

			srv_log_tail(srv, 0, tail, sizeof(tail));
			srv_why(why, whylen, "%s not ready within %d ms; %s", srv->bin, limit,
			        tail);
			return -1;
		}
		srv_nap_ms(50);
	}
}

/* ---- auth setup ---- */

static int srv_call(struct vf_srv *srv, const char *method, const char *path, const char *hdr,
                    const char *body, char *out, size_t outlen, char *why, size_t whylen)
{
	char buf[8192];
	int st;

	/* Retried within a bound: right after bootstrap the ACL system may not be ready. */
	for (int64_t deadline = srv_now_ms() + 10000;;) {
		st = srv_http(srv->m[0].client_port, method, path, hdr, body, 3000, buf,
		              sizeof(buf));
		if (st == 200)
			break;
		if (srv_now_ms() > deadline) {
			srv_why(why, whylen, "%s %s: HTTP %d: %.200s", method, path, st, buf);
			return -1;
		}
		srv_nap_ms(100);
	}
	if (out)
		snprintf(out, outlen, "%s", buf);
	return 0;
}

/* Standard padded base64 of n bytes into out (size >= 4 * ((n + 2) / 3) + 1). */
static void srv_b64(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
		             (i + 2 < n ? in[i + 2] : 0);

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = '\0';
}

static int srv_etcd_auth(struct vf_srv *srv, char *why, size_t whylen)
{
	char body[512], grant[1024], key64[400], end64[400];
	unsigned char end[256];
	size_t plen = srv->acl_prefix ? strlen(srv->acl_prefix) : 0;

	if (plen > 0 && plen < sizeof(end) && (unsigned char)srv->acl_prefix[plen - 1] < 0xff) {
		/* [prefix, prefix with its last byte + 1): the keys under prefix. */
		memcpy(end, srv->acl_prefix, plen);
		end[plen - 1]++;
		srv_b64((const unsigned char *)srv->acl_prefix, plen, key64);
		srv_b64(end, plen, end64);
	} else {
		/* "AA==" is "\0": key "\0" with range_end "\0" covers every key. */
		snprintf(key64, sizeof(key64), "AA==");
		snprintf(end64, sizeof(end64), "AA==");
	}
	snprintf(grant, sizeof(grant),
	         "{\"name\":\"vfile\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"%s\","
	         "\"range_end\":\"%s\"}}",
	         key64, end64);

	snprintf(body, sizeof(body), "{\"name\":\"root\",\"password\":\"%s\"}", srv->admin_secret);
	if (srv_call(srv, "POST", "/v3/auth/user/add", NULL, body, NULL, 0, why, whylen) ||
	    srv_call(srv, "POST", "/v3/auth/user/grant", NULL,
	             "{\"user\":\"root\",\"role\":\"root\"}", NULL, 0, why, whylen) ||
	    srv_call(srv, "POST", "/v3/auth/role/add", NULL, "{\"name\":\"vfile\"}", NULL, 0, why,
	             whylen) ||
	    srv_call(srv, "POST", "/v3/auth/role/grant", NULL, grant, NULL, 0, why, whylen))
		return -1;
	snprintf(body, sizeof(body), "{\"name\":\"vfile\",\"password\":\"%s\"}", srv->user_secret);
	if (srv_call(srv, "POST", "/v3/auth/user/add", NULL, body, NULL, 0, why, whylen) ||
	    srv_call(srv, "POST", "/v3/auth/user/grant", NULL,
	             "{\"user\":\"vfile\",\"role\":\"vfile\"}", NULL, 0, why, whylen) ||
	    srv_call(srv, "POST", "/v3/auth/enable", NULL, "{}", NULL, 0, why, whylen))
		return -1;
	return 0;
}

static int srv_consul_auth(struct vf_srv *srv, char *why, size_t whylen)
{
	char hdr[200], out[8192], policy[1024];
	char token[300];

	/* The prefix goes into a JSON string holding HCL: keep it to safe characters. */
	for (const char *p = srv->acl_prefix; p && *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
			srv_why(why, whylen, "acl_prefix: unsupported character");
			return -1;
		}
	snprintf(policy, sizeof(policy),
	         "{\"Name\":\"vfile\",\"Rules\":\"key_prefix \\\"%s\\\" { policy = \\\"write\\\" } "
	         "session_prefix \\\"\\\" { policy = \\\"write\\\" } "
	         "node_prefix \\\"\\\" { policy = \\\"read\\\" } "
	         "node \\\"vfile-sessions\\\" { policy = \\\"write\\\" }\"}",
	         srv->acl_prefix ? srv->acl_prefix : "");

	snprintf(hdr, sizeof(hdr), "X-Consul-Token: %s", srv->admin_secret);
	if (srv_call(srv, "PUT", "/v1/acl/policy", hdr, policy, NULL, 0, why, whylen))
		return -1;
	snprintf(token, sizeof(token),
	         "{\"Description\":\"vfile tests\",\"SecretID\":\"%s\","
	         "\"Policies\":[{\"Name\":\"vfile\"}]}",
	         srv->user_secret);
	if (srv_call(srv, "PUT", "/v1/acl/token", hdr, token, out, sizeof(out), why, whylen))
		return -1;
	if (strstr(out, srv->user_secret) == NULL) {
		srv_why(why, whylen,
		        "consul: created ACL token does not carry the requested SecretID");
		return -1;
	}
	return 0;
}

static int srv_consul_member_config(struct vf_srv *srv, int i, char *why, size_t whylen);

static int srv_consul_config(struct vf_srv *srv, char *why, size_t whylen)
{
	for (int i = 0; i < srv->nmembers; i++)
		if (srv_consul_member_config(srv, i, why, whylen) != 0)
			return -1;
	return 0;
}

/* Member i's config file (consul.json for a single server, else <name>.json). */
static int srv_consul_member_config(struct vf_srv *srv, int i, char *why, size_t whylen)
{
	struct vf_srv_member *m = &srv->m[i];
	char path[4200];
	FILE *f;

	if (srv->nmembers > 1)
		snprintf(path, sizeof(path), "%s/%s.json", srv->dir, m->name);
	else
		snprintf(path, sizeof(path), "%s/consul.json", srv->dir);
	f = fopen(path, "w");
	if (f == NULL) {
		srv_why(why, whylen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f,
	        "{\"server\": true, \"bootstrap_expect\": %d, \"node_name\": \"%s\",\n"
	        " \"data_dir\": \"%s/%s.data\", \"bind_addr\": \"127.0.0.1\",\n"
	        " \"client_addr\": \"127.0.0.1\", \"disable_host_node_id\": true,\n"
	        " \"disable_update_check\": true, \"log_level\": \"warn\",\n"
	        " \"performance\": {\"raft_multiplier\": 1},\n"
	        " \"ports\": {\"http\": %d, \"dns\": -1, \"grpc\": -1, \"https\": %d,\n"
	        "   \"serf_lan\": %d, \"serf_wan\": %d, \"server\": %d}",
	        srv->nmembers, m->name, srv->dir, m->name, m->client_port,
	        srv->tls_cert ? m->https_port : -1, m->serf_lan_port, m->serf_wan_port,
	        m->peer_port);
	if (srv->nmembers > 1) {
		fprintf(f, ",\n \"retry_join\": [");
		for (int j = 0, k = 0; j < srv->nmembers; j++)
			if (j != i)
				fprintf(f, "%s\"127.0.0.1:%d\"", k++ ? ", " : "",
				        srv->m[j].serf_lan_port);
		fprintf(f, "]");
	}
	if (srv->tls_cert) {
		fprintf(f,
		        ",\n \"cert_file\": \"%s\", \"key_file\": \"%s\", \"ca_file\": \"%s\",\n"
		        " \"verify_incoming_https\": %s",
		        srv->tls_cert, srv->tls_key, srv->tls_ca ? srv->tls_ca : srv->tls_cert,
		        srv->opts.tls_client_auth ? "true" : "false");
	}
	if (srv->opts.auth)
		fprintf(f,
		        ",\n \"acl\": {\"enabled\": true, \"default_policy\": \"deny\",\n"
		        "   \"down_policy\": \"extend-cache\",\n"
		        "   \"tokens\": {\"master\": \"%s\", \"agent\": \"%s\"}}",
		        srv->admin_secret, srv->admin_secret);
	fprintf(f, "}\n");
	if (fclose(f) != 0) {
		srv_why(why, whylen, "cannot write %s", path);
		return -1;
	}
	return 0;
}

static void srv_free_strings(struct vf_srv *srv)
{
	free(srv->tls_cert);
	free(srv->tls_key);
	free(srv->tls_ca);
	free(srv->acl_prefix);
	srv->tls_cert = srv->tls_key = srv->tls_ca = srv->acl_prefix = NULL;
}

/* Append a generated secret to the list the log scan reads (see harness.h). */
static void srv_note_secret(const char *secret)
{
	const char *env = getenv("VFILE_SECRETS_LIST");
	const char *top = getenv("top_builddir");
	char path[4200];
	int fd;

	if (env && *env)
		snprintf(path, sizeof(path), "%s", env);
	else if (top && *top)
		snprintf(path, sizeof(path), "%s/tests/harness/secrets.list", top);
	else
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	dprintf(fd, "%s\n", secret); /* best effort */
	close(fd);
}

static char *srv_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *srv_strdupf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static int srv_make_configs(struct vf_srv *srv)
{
	char eps[1024], wrong[80];
	size_t n = 0;
	int tmo = srv->opts.timeout_ms > 0 ? srv->opts.timeout_ms : 2000;

	for (int i = 0; i < srv->nmembers; i++)
		n += (size_t)snprintf(eps + n, sizeof(eps) - n, "%s\"%s://127.0.0.1:%d\"",
		                      i ? ", " : "", srv->tls_cert ? "https" : "http",
		                      srv->kind == VF_SRV_CONSUL && srv->tls_cert
		                              ? srv->m[i].https_port
		                              : srv->m[i].client_port);
	srv->config = srv_strdupf("endpoints = [%s]; timeout_ms = %d;", eps, tmo);
	if (srv->config == NULL)
		return -1;
	if (!srv->opts.auth)
		return 0;
	srv_gen_secret(wrong, sizeof(wrong));
	srv_note_secret(wrong);
	if (srv->kind == VF_SRV_ETCD) {
		srv->auth_config[1] = srv_strdupf("%s username = \"vfile\"; password = \"%s\";",
		                                  srv->config, srv->user_secret);
		srv->auth_config[0] = srv_strdupf("%s username = \"vfile\"; password = \"%s\";",
		                                  srv->config, wrong);
	} else {
		srv->auth_config[1] =
		        srv_strdupf("%s token = \"%s\";", srv->config, srv->user_secret);
		srv->auth_config[0] = srv_strdupf("%s token = \"%s\";", srv->config, wrong);
	}
	return srv->auth_config[0] && srv->auth_config[1] ? 0 : -1;
}

/* ---- public API ---- */

static int srv_pick_ports(struct vf_srv *srv)
{
	for (int i = 0; i < srv->nmembers; i++) {
		struct vf_srv_member *m = &srv->m[i];

		m->client_port = vf_srv_free_port();
		m->peer_port = vf_srv_free_port();
		if (srv->kind == VF_SRV_CONSUL) {
			m->serf_lan_port = vf_srv_free_port();
			m->serf_wan_port = vf_srv_free_port();
		}
		if (srv->tls_cert) {
			if (srv->kind == VF_SRV_CONSUL)
				m->https_port = vf_srv_free_port();
			else
				m->metrics_port = vf_srv_free_port();
		}
		if (m->client_port < 0 || m->peer_port < 0 || m->serf_lan_port < 0 ||
		    m->serf_wan_port < 0 || m->https_port < 0 || m->metrics_port < 0)
			return -1;
	}
	return 0;
}

static int srv_launch(struct vf_srv *srv, char *why, size_t whylen)
{
	if (srv->kind == VF_SRV_CONSUL && srv_consul_config(srv, why, whylen) != 0)
		return -1;
	for (int i = 0; i < srv->nmembers; i++)
		if (srv->m[i].pid <= 0 && srv_spawn(srv, i, why, whylen) != 0)
			return -1;
	return srv_wait_ready(srv, why, whylen);
}

int vf_srv_start(int kind, const struct vf_srv_opts *opts, struct vf_srv **srv_r, char *why,
                 size_t whylen)
{
	struct vf_srv *srv;
	char tmpl[] = "/tmp/vfile-srv-XXXXXX";
	const char *tmpdir = getenv("TMPDIR");

	*srv_r = NULL;
	pthread_once(&srv_once, srv_install);
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		srv_why(why, whylen, "out of memory");
		return -1;
	}
	srv->kind = kind;
	if (opts)
		srv->opts = *opts;
	srv->opts.password = NULL; /* copied below; the caller's string is borrowed */
	srv->opts.tls_cert = srv->opts.tls_key = srv->opts.tls_ca = srv->opts.acl_prefix = NULL;
	if (opts && opts->tls_cert) {
		if (opts->tls_key == NULL || (kind == VF_SRV_ETCD && opts->auth)) {
			srv_why(why, whylen,
			        "TLS needs tls_key, and etcd TLS is not combined with auth");
			free(srv);
			return -1;
		}
		srv->tls_cert = strdup(opts->tls_cert);
		srv->tls_key = strdup(opts->tls_key);
		srv->tls_ca = opts->tls_ca ? strdup(opts->tls_ca) : NULL;
	}
	if (opts && opts->acl_prefix)
		srv->acl_prefix = strdup(opts->acl_prefix);
	if ((opts && opts->tls_cert && (!srv->tls_cert || !srv->tls_key)) ||
	    (opts && opts->tls_ca && !srv->tls_ca) ||
	    (opts && opts->acl_prefix && !srv->acl_prefix)) {
		srv_why(why, whylen, "out of memory");
		srv_free_strings(srv);
		free(srv);
		return -1;
	}
	srv->nmembers = opts && opts->members > 1 ? opts->members : 1;
	if (srv->nmembers > VF_SRV_MAX_MEMBERS) {
		srv_why(why, whylen, "at most %d members", VF_SRV_MAX_MEMBERS);
		srv_free_strings(srv);
		free(srv);
		return -1;
	}
	for (int i = 0; i < srv->nmembers; i++)
		snprintf(srv->m[i].name, sizeof(srv->m[i].name), "n%d", i);
	if (srv_find_bin(kind, srv->bin, sizeof(srv->bin)) != 0) {
		srv_why(why, whylen, "%s server binary not found (set $%s or install it)", srv->bin,
		        kind == VF_SRV_ETCD ? "ETCD" : "CONSUL");
		srv_free_strings(srv);
		free(srv);
		return -1;
	}
	if (tmpdir && *tmpdir && strlen(tmpdir) < sizeof(srv->dir) - 32)
		snprintf(srv->dir, sizeof(srv->dir), "%s/vfile-srv-XXXXXX", tmpdir);
	else
		snprintf(srv->dir, sizeof(srv->dir), "%s", tmpl);
	if (mkdtemp(srv->dir) == NULL) {
		srv_why(why, whylen, "mkdtemp %s: %s", srv->dir, strerror(errno));
		srv_free_strings(srv);
		free(srv);
		return -1;
	}
	srv_gen_secret(srv->admin_secret, sizeof(srv->admin_secret));
	if (opts && opts->password)
		snprintf(srv->user_secret, sizeof(srv->user_secret), "%s", opts->password);
	else
		srv_gen_secret(srv->user_secret, sizeof(srv->user_secret));
	srv_note_secret(srv->admin_secret);
	srv_note_secret(srv->user_secret);
	srv_register(srv);
	/* A port picked free may be taken before the server binds it: one more try. */
	for (int attempt = 0;; attempt++) {
		if (srv_pick_ports(srv) != 0) {
			srv_why(why, whylen, "cannot find free loopback ports");
			goto fail;
		}
		for (int i = 0; kind == VF_SRV_ETCD && srv->opts.peer_proxies && i < srv->nmembers;
		     i++) {
			vf_proxy_stop(&srv->peer_proxy[i]);
			if (vf_proxy_start(srv->m[i].peer_port, &srv->peer_proxy[i], why, whylen) !=
			    0)
				goto fail;
		}
		if (srv_launch(srv, why, whylen) == 0)
			break;
		for (int i = 0; i < srv->nmembers; i++)
			srv_member_stop(srv, i, SIGKILL);
		if (attempt == 1 || strstr(why, "in use") == NULL)
			goto fail;
		/* The next try is a new cluster on new ports: a member that got to write
		 * its data would keep the old cluster's id and refuse the others. */
		for (int i = 0; i < srv->nmembers; i++) {
			char data[sizeof(srv->dir) + 64];

			snprintf(data, sizeof(data), "%s/%s.data", srv->dir, srv->m[i].name);
			srv_rmrf(data);
		}
	}
	if (srv->opts.auth) {
		int rc = kind == VF_SRV_ETCD ? srv_etcd_auth(srv, why, whylen)
		                             : srv_consul_auth(srv, why, whylen);
		if (rc != 0)
			goto fail;
	}
	if (srv_make_configs(srv) != 0) {
		srv_why(why, whylen, "out of memory");
		goto fail;
	}
	*srv_r = srv;
	return 0;
fail:
	vf_srv_stop(&srv);
	return -1;
}

void vf_srv_stop(struct vf_srv **srvp)
{
	struct vf_srv *srv = *srvp;

	if (srv == NULL)
		return;
	*srvp = NULL;
	srv_unregister(srv);
	for (int i = 0; i < srv->nmembers; i++)
		srv_member_stop(srv, i, SIGTERM);
	for (int i = 0; i < srv->nmembers; i++)
		vf_proxy_stop(&srv->peer_proxy[i]);
	srv_rmrf(srv->dir);
	free(srv->config);
	free(srv->auth_config[0]);
	free(srv->auth_config[1]);
	srv_free_strings(srv);
	memset(srv->user_secret, 0, sizeof(srv->user_secret));
	memset(srv->admin_secret, 0, sizeof(srv->admin_secret));
	free(srv);
}

static int srv_signal_all(struct vf_srv *srv, int sig, int stopped)
{
	int rc = 0;

	for (int i = 0; i < srv->nmembers; i++) {
		if (srv->m[i].pid <= 0)
			continue;
		if (kill(-srv->m[i].pid, sig) != 0)
			rc = -1;
		else
			srv->m[i].stopped = stopped;
	}
	return rc;
}

/* True when every thread of pid is stopped (state 'T' in /proc/<pid>/task/<tid>/stat). */
static int srv_all_threads_stopped(pid_t pid)
{
	char path[64], buf[512];
	struct dirent *de;
	DIR *d;
	int all = 1;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (d == NULL)
		return 1; /* gone: nothing left to answer */
	while (all && (de = readdir(d)) != NULL) {
		FILE *f;
		char *p;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) != NULL && p[1] == ' ')
			all = (p[2] == 'T' || p[2] == 't');
		fclose(f);
	}
	closedir(d);
	return all;
}

/* SIGSTOP takes effect asynchronously: wait (bounded) until every thread has
 * stopped, so that no request sent after pause() returns is still answered. */
int vf_srv_pause(struct vf_srv *srv)
{
	int rc = srv_signal_all(srv, SIGSTOP, 1);

	for (int i = 0; rc == 0 && i < srv->nmembers; i++) {
		int64_t deadline = srv_now_ms() + 5000;

		if (srv->m[i].pid <= 0)
			continue;
		while (!srv_all_threads_stopped(srv->m[i].pid) && srv_now_ms() < deadline)
			usleep(1000);
	}
	return rc;
}

int vf_srv_resume(struct vf_srv *srv)
{
	return srv_signal_all(srv, SIGCONT, 0);
}

int vf_srv_kill(struct vf_srv *srv)
{
	for (int i = 0; i < srv->nmembers; i++)
		srv_member_stop(srv, i, SIGKILL);
	return 0;
}

int vf_srv_restart(struct vf_srv *srv, char *why, size_t whylen)
{
	for (int i = 0; i < srv->nmembers; i++)
		srv_member_stop(srv, i, SIGTERM);
	return srv_launch(srv, why, whylen);
}

int vf_srv_member_kill(struct vf_srv *srv, int i)
{
	if (i < 0 || i >= srv->nmembers)
		return -1;
	srv_member_stop(srv, i, SIGKILL);
	return 0;
}

int vf_srv_member_restart(struct vf_srv *srv, int i, char *why, size_t whylen)
{
	if (i < 0 || i >= srv->nmembers) {
		srv_why(why, whylen, "no member %d", i);
		return -1;
	}
	srv_member_stop(srv, i, SIGTERM);
	if (srv_spawn(srv, i, why, whylen) != 0)
		return -1;
	return srv_wait_ready(srv, why, whylen);
}

int vf_srv_leader(struct vf_srv *srv)
{
	char body[8192], id[64], leader[64];

	if (srv->kind == VF_SRV_CONSUL && srv->nmembers == 1)
		return srv->m[0].pid > 0 ? 0 : -1;
	if (srv->kind == VF_SRV_CONSUL) {
		/* "127.0.0.1:<server port>" of the leader */
		for (int i = 0; i < srv->nmembers; i++) {
			const char *colon;

			if (srv->m[i].pid <= 0 || srv->m[i].stopped)
				continue;
			if (srv_http(srv->m[i].client_port, "GET", "/v1/status/leader", NULL, NULL,
			             1000, body, sizeof(body)) != 200 ||
			    (colon = strrchr(body, ':')) == NULL)
				continue;
			for (int j = 0; j < srv->nmembers; j++)
				if (atoi(colon + 1) == srv->m[j].peer_port && srv->m[j].pid > 0)
					return j;
		}
		return -1;
	}
	for (int i = 0; i < srv->nmembers; i++) {
		if (srv->m[i].pid <= 0 || srv->m[i].stopped)
			continue;
		if (srv_http(srv->m[i].client_port, "POST", "/v3/maintenance/status", NULL, "{}",
		             1000, body, sizeof(body)) != 200)
			continue;
		if (srv_json_field(body, "member_id", id, sizeof(id)) != 0 ||
		    srv_json_field(body, "leader", leader, sizeof(leader)) != 0)
			continue;
		if (strcmp(id, leader) == 0)
			return i;
	}
	return -1;
}

/* Member i's id as etcd prints it in X-Server-From (hex), cached. */
static int srv_member_hex(struct vf_srv *srv, int i, char *why, size_t whylen)
{
	char body[8192], id[64];

	if (srv->member_id[i][0])
		return 0;
	if (srv_http(srv->m[i].client_port, "POST", "/v3/maintenance/status", NULL, "{}", 3000,
	             body, sizeof(body)) != 200 ||
	    srv_json_field(body, "member_id", id, sizeof(id)) != 0) {
		srv_why(why, whylen, "etcd member %s: no member id in its status", srv->m[i].name);
		return -1;
	}
	snprintf(srv->member_id[i], sizeof(srv->member_id[i]), "%llx", strtoull(id, NULL, 10));
	return 0;
}

int vf_srv_partition(struct vf_srv *srv, int i, int on, char *why, size_t whylen)
{
	if (srv->kind != VF_SRV_ETCD || i < 0 || i >= srv->nmembers || !srv->peer_proxy[i]) {
		srv_why(why, whylen, "partition needs an etcd cluster with peer proxies");
		return -1;
	}
	if (on && srv_member_hex(srv, i, why, whylen) != 0)
		return -1;
	for (int j = 0; j < srv->nmembers; j++) {
		if (j == i && on)
			vf_proxy_cut(srv->peer_proxy[j]);
		else if (j == i)
			vf_proxy_restore(srv->peer_proxy[j]);
		else
			vf_proxy_block_from(srv->peer_proxy[j], on ? srv->member_id[i] : NULL);
	}
	return 0;
}

const char *vf_srv_config(const struct vf_srv *srv)
{
	return srv->config;
}

const char *vf_srv_auth_config(const struct vf_srv *srv, int good)
{
	return srv->auth_config[good ? 1 : 0];
}

const char *vf_srv_backend_name(const struct vf_srv *srv)
{
	return srv->kind == VF_SRV_ETCD ? "etcd" : "consul";
}

const char *vf_srv_secret(const struct vf_srv *srv)
{
	return srv->user_secret;
}

/* ---- TCP proxy ---- */

#define PROXY_MAX_CONN 64

struct vf_proxy {
	int lfd, port, target;
	int wake[2]; /* self-pipe: commands for the thread */
	pthread_t th;
	pthread_mutex_t mu;
	int cut, stopping, accepted;
	int pending_cut; /* drop the open connections at the next turn */
	int nconn;
	int cfd[PROXY_MAX_CONN], ufd[PROXY_MAX_CONN];
	char config[128];
	/* black hole: parked connections (accepted, never answered) */
	int hole, nparked;
	int parked[PROXY_MAX_CONN];
	/* X-Server-From of each connection's client ("" until seen), blocked senders */
	char from[PROXY_MAX_CONN][24];
	char block[VF_SRV_MAX_MEMBERS][24];
	int nblock, pending_block;
	int hole_after; /* < 0: off; else requests to let through before a hole */
	int swallowed;  /* a request was swallowed: reset the open connections at restore */
};

static void proxy_drop(struct vf_proxy *p, int i)
{
	/* RST rather than FIN: the client must see the stream die. */
	struct linger lg = {1, 0};

	setsockopt(p->cfd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(p->cfd[i]);
	close(p->ufd[i]);
	p->nconn--;
	p->cfd[i] = p->cfd[p->nconn];
	p->ufd[i] = p->ufd[p->nconn];
	memcpy(p->from[i], p->from[p->nconn], sizeof(p->from[i]));
	p->from[p->nconn][0] = '\0';
}

static void proxy_unpark(struct vf_proxy *p)
{
	struct linger lg = {1, 0};

	while (p->nparked > 0) {
		int c = p->parked[--p->nparked];

		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c);
	}
}

/* Is sender from blocked (under mu)? */
static int proxy_blocked(struct vf_proxy *p, const char *from)
{
	for (int b = 0; from[0] && b < p->nblock; b++)
		if (strcmp(p->block[b], from) == 0)
			return 1;
	return 0;
}

/* Remember the X-Server-From value in what connection i's client sent. */
static void proxy_sniff(struct vf_proxy *p, int i, const char *buf, size_t n)
{
	static const char tag[] = "X-Server-From: ";
	size_t tl = sizeof(tag) - 1;

	if (p->from[i][0])
		return;
	for (size_t k = 0; k + tl < n; k++) {
		if (buf[k] == 'X' && memcmp(buf + k, tag, tl) == 0) {
			size_t j = 0;

			k += tl;
			while (k < n && j + 1 < sizeof(p->from[i]) && buf[k] != '\r' &&
			       buf[k] != '\n')
				p->from[i][j++] = buf[k++];
			p->from[i][j] = '\0';
			return;
		}
	}
}

static int proxy_connect(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Does buf start an HTTP request? */
static int proxy_request_start(const char *buf, size_t n)
{
	static const char *const m[] = {"GET ", "PUT ", "POST ", "DELETE ", "HEAD "};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (n >= strlen(m[i]) && memcmp(buf, m[i], strlen(m[i])) == 0)
			return 1;
	return 0;
}

/* Copy what is readable on from to to; -1 when the connection is over. sniff >= 0:
 * from is connection sniff's client side (its X-Server-From is noted, and a
 * blocked sender's connection is over). */
static int proxy_pump(struct vf_proxy *p, int sniff, int from, int to)
{
	char buf[65536];
	ssize_t n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return -1;
	if (sniff >= 0 && n > 0) {
		int blocked, swallow = 0;

		pthread_mutex_lock(&p->mu);
		proxy_sniff(p, sniff, buf, (size_t)n);
		blocked = proxy_blocked(p, p->from[sniff]);
		if (p->hole_after >= 0 && proxy_request_start(buf, (size_t)n)) {
			if (p->hole_after == 0) {
				p->hole = 1;
				p->hole_after = -1;
				p->swallowed = 1;
				swallow = 1;
			} else {
				p->hole_after--;
			}
		}
		pthread_mutex_unlock(&p->mu);
		if (blocked)
			return -1;
		if (swallow)
			return 0;
	}
	for (ssize_t off = 0; n > 0 && off < n;) {
		ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pfd = {to, POLLOUT, 0};

				if (poll(&pfd, 1, 5000) <= 0)
					return -1;
				continue;
			}
			return -1;
		}
		off += w;
	}
	return 0;
}

static void *proxy_main(void *arg)
{
	struct vf_proxy *p = arg;

	for (;;) {
		struct pollfd pfd[2 + 2 * PROXY_MAX_CONN];
		int n = 0, stopping, cut, hole;

		pthread_mutex_lock(&p->mu);
		stopping = p->stopping;
		cut = p->cut;
		hole = p->hole;
		if (p->pending_cut) {
			while (p->nconn > 0)
				proxy_drop(p, 0);
			p->pending_cut = 0;
		}
		if (!hole)
			proxy_unpark(p);
		if (!hole && p->swallowed) {
			while (p->nconn > 0)
				proxy_drop(p, 0);
			p->swallowed = 0;
		}
		if (p->pending_block) {
			for (int i = p->nconn - 1; i >= 0; i--)
				if (proxy_blocked(p, p->from[i]))
					proxy_drop(p, i);
			p->pending_block = 0;
		}
		pthread_mutex_unlock(&p->mu);
		if (stopping)
			break;
		pfd[n++] = (struct pollfd){p->wake[0], POLLIN, 0};
		pfd[n++] = (struct pollfd){p->lfd, POLLIN, 0};
		for (int i = 0; !hole && i < p->nconn; i++) {
			pfd[n++] = (struct pollfd){p->cfd[i], POLLIN, 0};
			pfd[n++] = (struct pollfd){p->ufd[i], POLLIN, 0};
		}
		if (poll(pfd, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents) {
			char c[64];

			while (read(p->wake[0], c, sizeof(c)) > 0)
				;
			continue;
		}
		if (pfd[1].revents & POLLIN) {
			int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);

			if (c >= 0 && hole && p->nparked < PROXY_MAX_CONN) {
				pthread_mutex_lock(&p->mu);
				p->accepted++;
				p->parked[p->nparked++] = c;
				pthread_mutex_unlock(&p->mu);
			} else if (c >= 0) {
				int u = cut || p->nconn == PROXY_MAX_CONN
				                ? -1
				                : proxy_connect(p->target);

				pthread_mutex_lock(&p->mu);
				p->accepted++;
				pthread_mutex_unlock(&p->mu);
				if (u < 0) {
					struct linger lg = {1, 0};

					setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
					close(c);
				} else {
					pthread_mutex_lock(&p->mu);
					p->cfd[p->nconn] = c;
					p->ufd[p->nconn] = u;
					p->from[p->nconn][0] = '\0';
					p->nconn++;
					pthread_mutex_unlock(&p->mu);
				}
			}
		}
		/* Walk backwards: proxy_drop moves the last connection into slot i. */
		for (int i = (n - 2) / 2 - 1; i >= 0; i--) {
			struct pollfd *cp = &pfd[2 + 2 * i], *up = &pfd[3 + 2 * i];
			int bad = 0;

			if (cp->revents && proxy_pump(p, i, cp->fd, up->fd) != 0)
				bad = 1;
			if (!bad && up->revents && proxy_pump(p, -1, up->fd, cp->fd) != 0)
				bad = 1;
			if (bad) {
				pthread_mutex_lock(&p->mu);
				proxy_drop(p, i);
				pthread_mutex_unlock(&p->mu);
			}
		}
	}
	pthread_mutex_lock(&p->mu);
	while (p->nconn > 0)
		proxy_drop(p, 0);
	proxy_unpark(p);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void proxy_poke(struct vf_proxy *p)
{
	ssize_t r = write(p->wake[1], "x", 1);

	(void)r;
}

int vf_proxy_start(int target_port, struct vf_proxy **p_r, char *why, size_t whylen)
{
	struct vf_proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	*p_r = NULL;
	if (p == NULL) {
		srv_why(why, whylen, "out of memory");
		return -1;
	}
	p->target = target_port;
	p->hole_after = -1;
	p->wake[0] = p->wake[1] = -1;
	pthread_mutex_init(&p->mu, NULL);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(p->lfd, 64) != 0 || getsockname(p->lfd, (struct sockaddr *)&a, &len) != 0 ||
	    pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		srv_why(why, whylen, "proxy socket: %s", strerror(errno));
		goto fail;
	}
	p->port = ntohs(a.sin_port);
	snprintf(p->config, sizeof(p->config),
	         "endpoints = [\"http://127.0.0.1:%d\"]; timeout_ms = 2000;", p->port);
	if (pthread_create(&p->th, NULL, proxy_main, p) != 0) {
		srv_why(why, whylen, "proxy thread: %s", strerror(errno));
		goto fail;
	}
	*p_r = p;
	return 0;
fail:
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->wake[0] >= 0) {
		close(p->wake[0]);
		close(p->wake[1]);
	}
	pthread_mutex_destroy(&p->mu);
	free(p);
	return -1;
}

int vf_proxy_port(const struct vf_proxy *p)
{
	return p->port;
}

const char *vf_proxy_config(const struct vf_proxy *p)
{
	return p->config;
}

void vf_proxy_cut(struct vf_proxy *p)
{
	pthread_mutex_lock(&p->mu);
	p->cut = 1;
	p->pending_cut = 1;
	pthread_mutex_unlock(&p->mu);
	proxy_poke(p);
}

void vf_proxy_restore(struct vf_proxy *p)
{
	pthread_mutex_lock(&p->mu);
	p->cut = 0;
	p->hole = 0;
	p->hole_after = -1;
	pthread_mutex_unlock(&p->mu);
	proxy_poke(p);
}

void vf_proxy_hole_after(struct vf_proxy *p, int n)
{
	pthread_mutex_lock(&p->mu);
	p->hole_after = n;
	pthread_mutex_unlock(&p->mu);
	proxy_poke(p);
}

int vf_proxy_holed(struct vf_proxy *p)
{
	int h;

	pthread_mutex_lock(&p->mu);
	h = p->hole;
	pthread_mutex_unlock(&p->mu);
	return h;
}

void vf_proxy_blackhole(struct vf_proxy *p)
{
	pthread_mutex_lock(&p->mu);
	p->hole = 1;
	pthread_mutex_unlock(&p->mu);
	proxy_poke(p);
}

void vf_proxy_block_from(struct vf_proxy *p, const char *from)
{
	pthread_mutex_lock(&p->mu);
	if (from == NULL)
		p->nblock = 0;
	else if (p->nblock < VF_SRV_MAX_MEMBERS && !proxy_blocked(p, from))
		snprintf(p->block[p->nblock++], sizeof(p->block[0]), "%s", from);
	p->pending_block = 1;
	pthread_mutex_unlock(&p->mu);
	proxy_poke(p);
}

int vf_proxy_accepted(struct vf_proxy *p)
{
	int n;

	pthread_mutex_lock(&p->mu);
	n = p->accepted;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void vf_proxy_stop(struct vf_proxy **pp)
{
	struct vf_proxy *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_mutex_unlock(&p->mu);
	proxy_poke(p);
	pthread_join(p->th, NULL);
	close(p->lfd);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* ---- one member paused ---- */

int vf_srv_member_pause(struct vf_srv *srv, int i)
{
	int64_t deadline = srv_now_ms() + 5000;

	if (i < 0 || i >= srv->nmembers || srv->m[i].pid <= 0 || kill(-srv->m[i].pid, SIGSTOP) != 0)
		return -1;
	srv->m[i].stopped = 1;
	while (!srv_all_threads_stopped(srv->m[i].pid) && srv_now_ms() < deadline)
		usleep(1000);
	return 0;
}

int vf_srv_member_resume(struct vf_srv *srv, int i)
{
	if (i < 0 || i >= srv->nmembers || srv->m[i].pid <= 0 || kill(-srv->m[i].pid, SIGCONT) != 0)
		return -1;
	srv->m[i].stopped = 0;
	return 0;
}

/* ---- scripted HTTP server ---- */

struct vf_fake {
	int lfd, port, stop, wake[2];
	pthread_t th;
	pthread_mutex_t mu;
	struct vf_fake_route *routes;
	size_t nroutes;
	int nreq;
	char **seen; /* every request read, for vf_fake_saw */
	size_t nseen;
	pthread_cond_t idle;
	int live; /* connection threads running (detached) */
};

struct fake_conn {
	struct vf_fake *f;
	int fd;
};

/* Wait until fd is readable or the server stops; 1 when readable. */
static int fake_wait(struct vf_fake *f, int fd, int ms)
{
	struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = f->wake[0], .events = POLLIN}};
	int r = poll(p, 2, ms);

	return r > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) && !(p[1].revents & POLLIN);
}

static void *fake_conn_main(void *arg)
{
	struct fake_conn *c = arg;
	struct vf_fake *f = c->f;
	char buf[65536];
	size_t len = 0, want = 0;
	const struct vf_fake_route *r = NULL;
	struct vf_fake_route rt = {0};
	char *hdr_end = NULL, path[1024] = "";
	int mode;

	pthread_mutex_lock(&f->mu);
	mode = f->nroutes ? f->routes[0].mode : VF_FAKE_DROP;
	pthread_mutex_unlock(&f->mu);
	/* VF_FAKE_CLOSE applies before the path is known: the first route decides. */
	if (mode == VF_FAKE_CLOSE)
		goto out;
	while (len < sizeof(buf) - 1) {
		ssize_t n;

		if (!fake_wait(f, c->fd, 10000))
			goto out;
		n = read(c->fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			goto out;
		len += (size_t)n;
		buf[len] = '\0';
		if (hdr_end == NULL && (hdr_end = strstr(buf, "\r\n\r\n")) != NULL) {
			char *cl = strcasestr(buf, "\r\nContent-Length:");

			want = (size_t)(hdr_end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
		}
		if (hdr_end && len >= want)
			break;
	}
	sscanf(buf, "%*s %1023s", path);
	pthread_mutex_lock(&f->mu);
	f->nreq++;
	{
		char **s = realloc(f->seen, (f->nseen + 1) * sizeof(char *));

		if (s) {
			f->seen = s;
			if ((s[f->nseen] = strdup(buf)) != NULL)
				f->nseen++;
		}
	}
	for (size_t i = 0; i < f->nroutes; i++)
		if (f->routes[i].path == NULL ||
		    strncmp(path, f->routes[i].path, strlen(f->routes[i].path)) == 0) {
			rt = f->routes[i];
			r = &rt;
			break;
		}
	pthread_mutex_unlock(&f->mu);
	if (r == NULL || r->mode == VF_FAKE_DROP || r->mode == VF_FAKE_CLOSE)
		goto out;
	if (r->mode == VF_FAKE_HANG) {
		while (fake_wait(f, c->fd, 1000) == 0 && !f->stop)
			;
		goto out;
	}
	if (r->delay_ms > 0) {
		int64_t until = srv_now_ms() + r->delay_ms;

		for (int64_t left; (left = until - srv_now_ms()) > 0 && !f->stop;) {
			struct pollfd p = {.fd = f->wake[0], .events = POLLIN};

			if (poll(&p, 1, (int)left) > 0)
				goto out;
		}
	}
	{
		const char *body = r->body ? r->body : "";
		char head[256];
		int hl = snprintf(head, sizeof(head),
		                  "HTTP/1.1 %d Fake\r\nContent-Type: application/json\r\n"
		                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		                  r->status ? r->status : 200,
		                  strlen(body) + (r->mode == VF_FAKE_TRUNCATE ? 100 : 0));
		ssize_t w = write(c->fd, head, (size_t)hl);

		if (w == hl)
			w = write(c->fd, body, strlen(body));
		(void)w;
	}
out:
	shutdown(c->fd, SHUT_RDWR);
	close(c->fd);
	free(c);
	pthread_mutex_lock(&f->mu);
	f->live--;
	pthread_cond_broadcast(&f->idle);
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

static void *fake_main(void *arg)
{
	struct vf_fake *f = arg;

	while (!f->stop) {
		struct fake_conn *c;
		int fd;

		if (!fake_wait(f, f->lfd, 1000))
			continue;
		fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->f = f;
		c->fd = fd;
		pthread_mutex_lock(&f->mu);
		{
			pthread_t t;

			if (pthread_create(&t, NULL, fake_conn_main, c) == 0) {
				pthread_detach(t);
				f->live++;
			} else {
				free(c);
				close(fd);
			}
		}
		pthread_mutex_unlock(&f->mu);
	}
	return NULL;
}

int vf_fake_start(const struct vf_fake_route *routes, size_t n, struct vf_fake **f_r, char *why,
                  size_t whylen)
{
	struct vf_fake *f = calloc(1, sizeof(*f));
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	*f_r = NULL;
	if (f == NULL || (f->routes = calloc(n ? n : 1, sizeof(*routes))) == NULL) {
		free(f);
		srv_why(why, whylen, "out of memory");
		return -1;
	}
	memcpy(f->routes, routes, n * sizeof(*routes));
	f->nroutes = n;
	f->wake[0] = f->wake[1] = -1;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->idle, NULL);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(f->lfd, 64) != 0 || getsockname(f->lfd, (struct sockaddr *)&a, &len) != 0 ||
	    pipe2(f->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
		srv_why(why, whylen, "fake server socket: %s", strerror(errno));
		goto fail;
	}
	f->port = ntohs(a.sin_port);
	if (pthread_create(&f->th, NULL, fake_main, f) != 0) {
		srv_why(why, whylen, "fake server thread: %s", strerror(errno));
		goto fail;
	}
	*f_r = f;
	return 0;
fail:
	if (f->lfd >= 0)
		close(f->lfd);
	if (f->wake[0] >= 0) {
		close(f->wake[0]);
		close(f->wake[1]);
	}
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->idle);
	free(f->routes);
	free(f);
	return -1;
}

int vf_fake_port(const struct vf_fake *f)
{
	return f->port;
}

void vf_fake_set(struct vf_fake *f, size_t route, int mode)
{
	pthread_mutex_lock(&f->mu);
	if (route < f->nroutes)
		f->routes[route].mode = mode;
	pthread_mutex_unlock(&f->mu);
}

int vf_fake_requests(struct vf_fake *f)
{
	int n;

	pthread_mutex_lock(&f->mu);
	n = f->nreq;
	pthread_mutex_unlock(&f->mu);
	return n;
}

int vf_fake_saw(struct vf_fake *f, const char *needle)
{
	int n = 0;

	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->nseen; i++)
		if (strcasestr(f->seen[i], needle))
			n++;
	pthread_mutex_unlock(&f->mu);
	return n;
}

void vf_fake_stop(struct vf_fake **fp)
{
	struct vf_fake *f = *fp;
	ssize_t w;

	if (f == NULL)
		return;
	*fp = NULL;
	f->stop = 1;
	w = write(f->wake[1], "x", 1);
	(void)w;
	pthread_join(f->th, NULL);
	pthread_mutex_lock(&f->mu);
	while (f->live > 0)
		pthread_cond_wait(&f->idle, &f->mu);
	pthread_mutex_unlock(&f->mu);
	close(f->lfd);
	close(f->wake[0]);
	close(f->wake[1]);
	for (size_t i = 0; i < f->nseen; i++)
		free(f->seen[i]);
	free(f->seen);
	free(f->routes);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->idle);
	free(f);
}
