/*
 * Issue 6 fault cases at the library level, with real processes and real stores
 * ($VFILE_INTEG_BACKEND): every node is a vfnode process (own backend handle and
 * lease, the dirfs file server), driven through its stdin/stdout and killed with
 * real SIGKILLs; the store is the harness's real server.
 *  1. a host killed while holding the gref lock mid-mount
 *  2. the manager serving a volume killed
 *  3. a manager killed right after claiming a start marker
 *  4. (etcd) a 3-member cluster's leader killed during 500 operations from 4 hosts
 *  5. the store stopped for 10 s: SIGSTOP, then separately kill + restart
 *  6. (etcd) history compacted while a manager's watches are cut: RESYNC path
 *  7. the lease (Consul session) of a lock holder invalidated under the lock
 *  8-13. (etcd) failover: leader paused under a keep-alive, a watch cut mid-stream,
 *     a watch resumed past the store's head, a member without leader, a revision
 *     with an unreadable event, a waiter key left by a failed give-back
 *  14. (Consul) the server a manager talks to first paused, then black-holed,
 *     then the leader paused, past the session TTL: the lease and the file
 *     server survive
 * Each case ends with ig_invariants on every volume it used and prints its
 * time to recover ("MEASURE ..." lines, recorded in doc/reliability.md).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "integ.h"
#include "common_int.h"

#define FN_MAX 16
#define FN_VOLS 16
#define FN_NOANSWER 1000 /* no answer from the node (vf codes are <= 0) */

struct fnode {
	char name[32];
	pid_t pid;
	int in_fd, out_fd;
	char buf[8192];
	size_t len;
	char lease[64];
	char log[512];
	char paused[256]; /* the last "paused ..." line */
	char believed[FN_VOLS][64];
	int64_t sent_ms;
	int busy;
};

static struct fnode *fn_live[FN_MAX];
static pthread_mutex_t fn_mu = PTHREAD_MUTEX_INITIALIZER;

static void fn_kill_all(void)
{
	for (int i = 0; i < FN_MAX; i++)
		if (fn_live[i] && fn_live[i]->pid > 0) {
			kill(-fn_live[i]->pid, SIGKILL);
			kill(fn_live[i]->pid, SIGKILL);
		}
}

static void fn_register(struct fnode *n, int on)
{
	pthread_mutex_lock(&fn_mu);
	for (int i = 0; i < FN_MAX; i++) {
		if (on && fn_live[i] == NULL) {
			fn_live[i] = n;
			break;
		}
		if (!on && fn_live[i] == n)
			fn_live[i] = NULL;
	}
	pthread_mutex_unlock(&fn_mu);
}

/* One test's setting for its nodes. */
struct fcase {
	char prefix[64];
	char dir[300]; /* dirfs + logs */
	const char *snippet;
	int ttl_s, op_timeout_ms, reconcile_ms;
};

static void fc_init(struct fcase *fc, const char *name)
{
	memset(fc, 0, sizeof(*fc));
	ig_prefix(fc->prefix, sizeof(fc->prefix));
	snprintf(fc->dir, sizeof(fc->dir), "%s/%s", ig.dir, name);
	mkdir(fc->dir, 0755);
	fc->snippet = vf_srv_config(ig.srv);
	fc->ttl_s = ig.ttl_s;
	fc->op_timeout_ms = (ig.kind == VF_SRV_CONSUL ? 30000 : 10000) * ig.slow;
	fc->reconcile_ms = 1000;
}

/* Read one line (without '\n') within ms; 1 got one, 2 a "paused" line (kept in
 * n->paused), 0 timed out, -1 EOF. */
static int fn_line(struct fnode *n, int ms, char *out, size_t size)
{
	int64_t end = vf_now_ms() + (int64_t)ms * ig.slow;

	for (;;) {
		char *nl = memchr(n->buf, '\n', n->len);

		if (nl) {
			size_t l = (size_t)(nl - n->buf);

			snprintf(out, size, "%.*s", (int)l, n->buf);
			memmove(n->buf, nl + 1, n->len - l - 1);
			n->len -= l + 1;
			if (strncmp(out, "paused ", 7) == 0) {
				snprintf(n->paused, sizeof(n->paused), "%s", out);
				return 2;
			}
			return 1;
		}
		int64_t left = end - vf_now_ms();
		struct pollfd pf = {.fd = n->out_fd, .events = POLLIN};

		if (left <= 0)
			return 0;
		if (poll(&pf, 1, (int)(left > 200 ? 200 : left)) > 0) {
			ssize_t r = read(n->out_fd, n->buf + n->len, sizeof(n->buf) - 1 - n->len);

			if (r <= 0)
				return -1;
			n->len += (size_t)r;
		}
	}
}

static int fn_spawn(struct fnode *n, const struct fcase *fc, const char *name, int manager,
                    const char *failpoint, const char *extra_env)
{
	const char *vfnode = getenv("VFNODE");
	char exe[1024], line[512];
	int in[2], out[2];
	pid_t pid;

	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", name);
	snprintf(n->log, sizeof(n->log), "%s/%s.log", fc->dir, name);
	if (vfnode && *vfnode)
		snprintf(exe, sizeof(exe), "%s", vfnode);
	else
		snprintf(exe, sizeof(exe), "%s/tests/integration/vfnode",
		         getenv("top_builddir") ? getenv("top_builddir") : ".");
	if (pipe(in) != 0 || pipe(out) != 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char num[32];
		int logfd = open(n->log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		if (logfd >= 0)
			dup2(logfd, 2);
		close(in[1]);
		close(out[0]);
		setenv("VFNODE_BACKEND", ig.backend, 1);
		setenv("VFNODE_CONFIG", fc->snippet, 1);
		setenv("VFNODE_PREFIX", fc->prefix, 1);
		setenv("VFNODE_DIR", fc->dir, 1);
		snprintf(num, sizeof(num), "%d", fc->ttl_s);
		setenv("VFNODE_TTL", num, 1);
		snprintf(num, sizeof(num), "%d", fc->op_timeout_ms);
		setenv("VFNODE_TIMEOUT_MS", num, 1);
		snprintf(num, sizeof(num), "%d", fc->reconcile_ms);
		setenv("VFNODE_RECONCILE_MS", num, 1);
		if (failpoint)
			setenv("VFNODE_FAILPOINT", failpoint, 1);
		else
			unsetenv("VFNODE_FAILPOINT");
		if (extra_env) {
			char kv[256], *eq;

			snprintf(kv, sizeof(kv), "%s", extra_env);
			if ((eq = strchr(kv, '=')) != NULL) {
				*eq = '\0';
				setenv(kv, eq + 1, 1);
			}
		}
		execl(exe, exe, name, manager ? "manager" : "host", (char *)NULL);
		dprintf(2, "cannot run %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	close(in[0]);
	close(out[1]);
	n->pid = pid;
	n->in_fd = in[1];
	n->out_fd = out[0];
	fn_register(n, 1);
	if (fn_line(n, 30000, line, sizeof(line)) != 1 || strncmp(line, "ready ", 6) != 0) {
		FILE *f = fopen(n->log, "r");
		char l[512];

		fprintf(stderr, "\nnode %s did not start (%s); its log %s:\n", name, line, n->log);
		while (f && fgets(l, sizeof(l), f)) /* the log goes with the case's dir */
			fprintf(stderr, "  | %s", l);
		if (f)
			fclose(f);
		return -1;
	}
	snprintf(n->lease, sizeof(n->lease), "%.63s", line + 6);
	return 0;
}

static void fn_reap(struct fnode *n, int ms)
{
	int64_t end = vf_now_ms() + ms;
	int st;

	while (n->pid > 0) {
		pid_t r = waitpid(n->pid, &st, WNOHANG);

		if (r == n->pid || (r < 0 && errno == ECHILD))
			break;
		if (vf_now_ms() > end) {
			kill(-n->pid, SIGKILL);
			kill(n->pid, SIGKILL);
			waitpid(n->pid, &st, 0);
			break;
		}
		vf_test_sleep_ms(20);
	}
	n->pid = 0;
	fn_register(n, 0);
	if (n->in_fd > 0)
		close(n->in_fd);
	if (n->out_fd > 0)
		close(n->out_fd);
	n->in_fd = n->out_fd = -1;
}

static void fn_kill(struct fnode *n)
{
	if (n->pid <= 0)
		return;
	kill(-n->pid, SIGKILL);
	kill(n->pid, SIGKILL);
	fn_reap(n, 5000);
	memset(n->believed, 0, sizeof(n->believed));
}

static void fn_quit(struct fnode *n)
{
	if (n->pid <= 0)
		return;
	if (write(n->in_fd, "quit\n", 5) != 5)
		kill(n->pid, SIGKILL);
	fn_reap(n, 15000);
}

static int fn_send(struct fnode *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fn_send(struct fnode *n, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int l;

	va_start(ap, fmt);
	l = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[l++] = '\n';
	n->sent_ms = vf_now_ms();
	n->busy = 1;
	return write(n->in_fd, line, (size_t)l) == l ? 0 : -1;
}

/* The answer to the command in flight: VF_OK, the error code, or -1 (none). */
static int fn_reply(struct fnode *n, int ms, char *msg, size_t size)
{
	char line[1024];
	int r;

	while ((r = fn_line(n, ms, line, sizeof(line))) == 2)
		;
	n->busy = 0;
	if (r != 1) {
		snprintf(msg, size, "%s: no answer (%s)", n->name, r == 0 ? "timeout" : "EOF");
		return FN_NOANSWER;
	}
	if (strncmp(line, "ok", 2) == 0) {
		snprintf(msg, size, "%s", line[2] ? line + 3 : "");
		return VF_OK;
	}
	if (strncmp(line, "err ", 4) == 0) {
		int code = atoi(line + 4);
		const char *sp = strchr(line + 4, ' ');

		snprintf(msg, size, "%s", sp ? sp + 1 : "");
		return code ? code : VF_EPROTO;
	}
	snprintf(msg, size, "%s: unexpected line '%s'", n->name, line);
	return FN_NOANSWER;
}

static void fn_believe(struct fnode *n, const char *vol, int on)
{
	for (int i = 0; i < FN_VOLS; i++)
		if (strcmp(n->believed[i], vol) == 0) {
			if (!on)
				n->believed[i][0] = '\0';
			return;
		}
	for (int i = 0; on && i < FN_VOLS; i++)
		if (n->believed[i][0] == '\0') {
			snprintf(n->believed[i], sizeof(n->believed[i]), "%s", vol);
			return;
		}
}

static int fn_believes(const struct fnode *n, const char *vol)
{
	for (int i = 0; i < FN_VOLS; i++)
		if (strcmp(n->believed[i], vol) == 0)
			return 1;
	return 0;
}

/* A command and its answer; mount/unmount keep the node's belief. */
static int fn_cmd(struct fnode *n, int ms, char *msg, size_t size, const char *cmd, const char *vol,
                  const char *id)
{
	int rc;

	if (fn_send(n, "%s %s %s", cmd, vol, id ? id : "") != 0) {
		snprintf(msg, size, "%s: cannot write its stdin", n->name);
		return FN_NOANSWER;
	}
	rc = fn_reply(n, ms, msg, size);
	if (rc == VF_OK && strcmp(cmd, "mount") == 0 && strcmp(id, "probe") != 0)
		fn_believe(n, vol, 1);
	if (rc == VF_OK && strcmp(cmd, "unmount") == 0 && strcmp(id, "probe") != 0)
		fn_believe(n, vol, 0);
	return rc;
}

/* Lines of the node's log that contain needle. */
static int fn_log_count(const struct fnode *n, const char *needle)
{
	FILE *f = fopen(n->log, "r");
	char line[2048];
	int found = 0;

	while (f && fgets(line, sizeof(line), f))
		found += strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

static int fn_log_has(const struct fnode *n, const char *needle)
{
	FILE *f = fopen(n->log, "r");
	char line[2048];
	int found = 0;

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* ---- the probe ---- */
struct fprobe {
	struct fcase *fc;
	struct fnode *nodes;
	int nn, host;
};

static int fp_nservers(void *arg, const char *vol)
{
	return ig_dirfs_servers(((struct fprobe *)arg)->fc->dir, vol);
}

static int fp_believers(void *arg, const char *vol)
{
	struct fprobe *p = arg;
	int n = 0;

	for (int i = 0; i < p->nn; i++)
		n += p->nodes[i].pid > 0 && fn_believes(&p->nodes[i], vol);
	return n;
}

static int fp_mount(void *arg, const char *vol, char *msg, size_t size)
{
	struct fprobe *p = arg;

	return fn_cmd(&p->nodes[p->host], p->fc->op_timeout_ms + 5000, msg, size, "mount", vol,
	              "probe");
}

static int fp_unmount(void *arg, const char *vol, char *msg, size_t size)
{
	struct fprobe *p = arg;

	return fn_cmd(&p->nodes[p->host], p->fc->op_timeout_ms + 5000, msg, size, "unmount", vol,
	              "probe");
}

static struct ig_probe fp_of(struct fprobe *p)
{
	struct ig_probe ip = {fp_nservers, fp_believers, fp_mount, fp_unmount, p};

	return ip;
}

#define FN_OK(n, cmd, vol, id)                                                                     \
	do {                                                                                       \
		char m_[1024];                                                                     \
		int r_ = fn_cmd((n), fc.op_timeout_ms + 5000, m_, sizeof(m_), (cmd), (vol), (id)); \
		if (r_ != VF_OK)                                                                   \
			fprintf(stderr, "\n%s: %s %s %s: %d %s\n", (n)->name, (cmd), (vol),        \
			        (id) ? (const char *)(id) : "", r_, m_);                           \
		CU_ASSERT_EQUAL_FATAL(r_, VF_OK);                                                  \
	} while (0)

static void fc_end(struct fnode *nodes, int nn, struct fcase *fc)
{
	for (int i = 0; i < nn; i++)
		fn_quit(&nodes[i]);
	CU_ASSERT_EQUAL(ig_file_lines(fc->dir, "violations"), 0);
	ig_case("", 0);
}

/* Lease-expiry bound: Consul may invalidate a session up to 2 x TTL late. */
static int64_t fc_expiry_ms(const struct fcase *fc)
{
	return (ig.kind == VF_SRV_CONSUL ? 2L : 1L) * fc->ttl_s * 1000;
}

/* ---- 1. a host killed holding the gref lock mid-mount ---- */
static void test_host_killed_holding_lock(void)
{
	struct fcase fc;
	struct fnode n[3];
	struct fprobe pr;
	struct ig_probe ip;
	char msg[1024];
	int64_t t0, ttr, bound;
	int rc;

	ig_case("host_killed_holding_lock", 120);
	fc_init(&fc, "f1");
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "h1", 0, "vol.mount_before_txn:pause", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[2], &fc, "h2", 0, NULL, NULL), 0);
	FN_OK(&n[1], "create", "v", NULL);
	CU_ASSERT_EQUAL_FATAL(fn_send(&n[1], "mount v c1"), 0);
	/* h1 mounted locally and holds the gref lock, its gref+1 not sent */
	rc = fn_line(&n[1], fc.op_timeout_ms, msg, sizeof(msg));
	CU_ASSERT_FATAL(rc == 2 && strncmp(n[1].paused, "paused vol.mount_before_txn v", 29) == 0);
	fn_kill(&n[1]);
	t0 = vf_now_ms();
	rc = fn_cmd(&n[2], fc.op_timeout_ms + 5000, msg, sizeof(msg), "mount", "v", "c2");
	ttr = vf_now_ms() - t0;
	if (rc != VF_OK)
		fprintf(stderr, "\nh2 mount: %s\n", msg);
	CU_ASSERT_EQUAL(rc, VF_OK);
	bound = fc_expiry_ms(&fc) + 3000;
	ig_note("case 1, host killed holding the gref lock: the next host's mount succeeded "
	        "%" PRId64 " ms after the kill (bound: lease TTL %d s -> %" PRId64 " ms)",
	        ttr, fc.ttl_s, bound);
	CU_ASSERT(ttr <= bound * ig.slow);
	CU_ASSERT_EQUAL(ig_num(fc.prefix, "gref", "v"), 1);
	pr = (struct fprobe){&fc, n, 3, 2};
	ip = fp_of(&pr);
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v", 10000));
	FN_OK(&n[2], "unmount", "v", "c2");
	CU_ASSERT(ig_settled(&ip, fc.prefix, "v", 10000));
	fc_end(n, 3, &fc);
}

/* ---- 2. the serving manager killed ---- */
static void test_serving_manager_killed(void)
{
	struct fcase fc;
	struct fnode n[3];
	struct fprobe pr;
	struct ig_probe ip;
	char *sv, who[64] = "", now[64] = "";
	int64_t t0, ttr = -1, bound;
	int victim, drift = 0;

	ig_case("serving_manager_killed", 120);
	fc_init(&fc, "f2");
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "m2", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[2], &fc, "h1", 0, NULL, NULL), 0);
	FN_OK(&n[2], "create", "v", NULL);
	FN_OK(&n[2], "mount", "v", "c1");
	sv = ig_value(fc.prefix, "server", "v");
	CU_ASSERT_FATAL(sv != NULL && sscanf(sv, "%63s", who) == 1);
	free(sv);
	victim = strcmp(who, "m1") == 0 ? 0 : 1;
	fn_kill(&n[victim]);
	t0 = vf_now_ms();
	bound = fc_expiry_ms(&fc) + fc.reconcile_ms + 3000;
	while (vf_now_ms() - t0 < bound * ig.slow + 5000) {
		sv = ig_value(fc.prefix, "server", "v");
		now[0] = '\0';
		if (sv)
			sscanf(sv, "%63s", now);
		free(sv);
		drift |= ig_num(fc.prefix, "gref", "v") != 1;
		if (strcmp(now, n[1 - victim].name) == 0 && ig_dirfs_servers(fc.dir, "v") == 1) {
			ttr = vf_now_ms() - t0;
			break;
		}
		vf_test_sleep_ms(50);
	}
	ig_note("case 2, serving manager %s killed: %s serves again after %" PRId64
	        " ms (bound: TTL + reconcile period = %" PRId64 " ms)",
	        who, n[1 - victim].name, ttr, bound);
	CU_ASSERT(ttr >= 0 && ttr <= bound * ig.slow);
	CU_ASSERT_EQUAL(drift, 0);
	CU_ASSERT_EQUAL(ig_num(fc.prefix, "gref", "v"), 1);
	pr = (struct fprobe){&fc, n, 3, 2};
	ip = fp_of(&pr);
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v", 10000));
	FN_OK(&n[2], "unmount", "v", "c1");
	CU_ASSERT(ig_settled(&ip, fc.prefix, "v", 10000));
	fc_end(n, 3, &fc);
}

/* ---- 3. a manager killed right after claiming a start marker ---- */
static void test_manager_killed_after_claim(void)
{
	struct fcase fc;
	struct fnode n[3];
	struct fprobe pr;
	struct ig_probe ip;
	char msg[1024];
	int64_t t0, took, bound;
	int rc, dead = 0;

	ig_case("manager_killed_after_claim", 150);
	fc_init(&fc, "f3");
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, "mgr.after_claim_start:exit1", NULL),
	                      0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "m2", 1, "mgr.after_claim_start:exit1", NULL),
	                      0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[2], &fc, "h1", 0, NULL, NULL), 0);
	FN_OK(&n[2], "create", "v", NULL);
	t0 = vf_now_ms();
	rc = fn_cmd(&n[2], fc.op_timeout_ms + 5000, msg, sizeof(msg), "mount", "v", "c1");
	took = vf_now_ms() - t0;
	if (rc != VF_OK)
		fprintf(stderr, "\nh1 mount: %s\n", msg);
	CU_ASSERT_EQUAL(rc, VF_OK);
	for (int i = 0; i < 2; i++) {
		int st;

		if (waitpid(n[i].pid, &st, WNOHANG) == n[i].pid) {
			CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 137);
			n[i].pid = 0;
			fn_register(&n[i], 0);
			dead++;
		}
	}
	CU_ASSERT_EQUAL(dead, 1); /* exactly the claimant died */
	bound = fc_expiry_ms(&fc) + fc.reconcile_ms + 3000;
	ig_note("case 3, manager killed after claiming the start: the waiting mount succeeded "
	        "after %" PRId64 " ms (bound: TTL + reconcile period = %" PRId64 " ms)",
	        took, bound);
	CU_ASSERT(took <= bound * ig.slow);
	CU_ASSERT_EQUAL(ig_file_lines(fc.dir, "starts.v"), 1);
	pr = (struct fprobe){&fc, n, 3, 2};
	ip = fp_of(&pr);
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v", 10000));
	FN_OK(&n[2], "unmount", "v", "c1");
	CU_ASSERT(ig_settled(&ip, fc.prefix, "v", 10000));
	fc_end(n, 3, &fc);
}

/* ---- random operations from several host processes at once ---- */
struct fops {
	int total, ok, errors, removed;
	int64_t worst_ms;
	char worst[1100];
};

/* Drive nops random mount/unmount operations over vols from hosts in parallel
 * (one in flight per host); at_op(i) is called once when i operations are done. */
static void fn_random_ops(struct fcase *fc, struct fnode *hosts, int nh, const char *const *vols,
                          int nv, int nops, unsigned seed, struct fops *st,
                          void (*at_op)(int done, void *arg), void *arg)
{
	char cur[FN_MAX][2][512];
	int sent = 0, done = 0;

	memset(st, 0, sizeof(*st));
	while (done < nops) {
		for (int h = 0; h < nh; h++) {
			if (hosts[h].busy || sent >= nops)
				continue;
			const char *vol = vols[rand_r(&seed) % (unsigned)nv];
			int m = fn_believes(&hosts[h], vol);

			snprintf(cur[h][0], 512, "%s", m ? "unmount" : "mount");
			snprintf(cur[h][1], 512, "%s", vol);
			fn_send(&hosts[h], "%s %s c", cur[h][0], vol);
			sent++;
		}
		struct pollfd pf[FN_MAX];

		for (int h = 0; h < nh; h++)
			pf[h] = (struct pollfd){.fd = hosts[h].busy ? hosts[h].out_fd : -1,
			                        .events = POLLIN};
		if (poll(pf, (nfds_t)nh, 500) <= 0) {
			for (int h = 0; h < nh; h++)
				if (hosts[h].busy &&
				    vf_now_ms() - hosts[h].sent_ms > 3L * fc->op_timeout_ms) {
					fprintf(stderr, "\n%s: %s %s hangs\n", hosts[h].name,
					        cur[h][0], cur[h][1]);
					CU_FAIL_FATAL("an operation hangs");
				}
			continue;
		}
		for (int h = 0; h < nh; h++) {
			char msg[1024];
			int64_t d;
			int rc;

			if (!(pf[h].revents & (POLLIN | POLLHUP)))
				continue;
			rc = fn_reply(&hosts[h], 1000, msg, sizeof(msg));
			d = vf_now_ms() - hosts[h].sent_ms;
			if (d > st->worst_ms) {
				st->worst_ms = d;
				snprintf(st->worst, sizeof(st->worst), "%.31s %.31s %.200s",
				         hosts[h].name, cur[h][0], cur[h][1]);
			}
			done++;
			st->total++;
			if (rc == VF_OK) {
				st->ok++;
				fn_believe(&hosts[h], cur[h][1], strcmp(cur[h][0], "mount") == 0);
			} else {
				st->errors++;
				if (rc == FN_NOANSWER)
					CU_FAIL_FATAL("a node stopped answering");
				if (getenv("VFILE_INTEG_VERBOSE"))
					fprintf(stderr, "%s %s %s: %s\n", hosts[h].name, cur[h][0],
					        cur[h][1], msg);
			}
			if (at_op)
				at_op(done, arg);
		}
	}
}

/* An operation that failed may still have landed (outcome uncertain): ask the
 * host again; an unmount of an id not counted is a no-op, so unmounting every
 * volume the host does not believe mounted resolves it either way. */
static void fn_resolve(struct fcase *fc, struct fnode *hosts, int nh, const char *const *vols,
                       int nv)
{
	for (int h = 0; h < nh; h++)
		for (int v = 0; v < nv; v++) {
			char msg[1024];
			int rc;

			if (fn_believes(&hosts[h], vols[v]))
				continue;
			rc = fn_cmd(&hosts[h], fc->op_timeout_ms + 5000, msg, sizeof(msg),
			            "unmount", vols[v], "c");
			if (rc != VF_OK)
				fprintf(stderr, "\n%s: resolving unmount %s: %s\n", hosts[h].name,
				        vols[v], msg);
			CU_ASSERT_EQUAL(rc, VF_OK);
		}
}

/* ---- 4. etcd cluster: the leader killed during 500 operations ---- */
struct leader_kill {
	struct vf_srv *srv;
	int killed, restarted, at_kill, at_restart;
	int64_t t_kill;
};

static void lk_at_op(int done, void *arg)
{
	struct leader_kill *lk = arg;
	char why[256];

	if (!lk->killed && done >= lk->at_kill) {
		lk->killed = vf_srv_leader(lk->srv) + 1;
		if (lk->killed > 0) {
			vf_srv_member_kill(lk->srv, lk->killed - 1);
			lk->t_kill = vf_now_ms();
			printf("(leader n%d killed after %d ops) ", lk->killed - 1, done);
			fflush(stdout);
		}
	} else if (lk->killed > 0 && !lk->restarted && done >= lk->at_restart) {
		lk->restarted = 1;
		if (vf_srv_member_restart(lk->srv, lk->killed - 1, why, sizeof(why)) != 0)
			fprintf(stderr, "\nrestart: %s\n", why);
	}
}

static void test_cluster_leader_killed(void)
{
	static const char *const vols[] = {"v0", "v1", "v2", "v3", "v4", "v5"};
	struct vf_srv_opts o = {0};
	struct vf_srv *cl = NULL;
	struct fcase fc;
	struct fnode n[6];
	struct fops st;
	struct fprobe pr;
	struct ig_probe ip;
	struct leader_kill lk = {0};
	char why[512];
	int64_t t0;

	ig_case("cluster_leader_killed", 240);
	o.members = 3;
	o.timeout_ms = ig.req_timeout_ms;
	if (vf_srv_start(VF_SRV_ETCD, &o, &cl, why, sizeof(why)) != 0) {
		fprintf(stderr, "\ncluster: %s\n", why);
		CU_FAIL_FATAL("cannot start a 3-member etcd cluster");
	}
	fc_init(&fc, "f4");
	fc.snippet = vf_srv_config(cl);
	for (int i = 0; i < 2; i++) {
		char name[8];

		snprintf(name, sizeof(name), "m%d", i);
		CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[i], &fc, name, 1, NULL, NULL), 0);
	}
	for (int i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "h%d", i);
		CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[2 + i], &fc, name, 0, NULL, NULL), 0);
	}
	for (int v = 0; v < 6; v++)
		FN_OK(&n[2], "create", vols[v], NULL);
	lk.srv = cl;
	lk.at_kill = 120;
	lk.at_restart = 300;
	t0 = vf_now_ms();
	fn_random_ops(&fc, &n[2], 4, vols, 6, 500, 99u, &st, lk_at_op, &lk);
	ig_note("case 4, 3-member etcd, leader killed during 500 ops from 4 hosts: %d ok, %d "
	        "errors, slowest %" PRId64 " ms (%s), %" PRId64 " ms in all",
	        st.ok, st.errors, st.worst_ms, st.worst, vf_now_ms() - t0);
	CU_ASSERT(lk.killed > 0);
	CU_ASSERT_EQUAL(st.total, 500);
	/* none waited past its timeout (plus a request's worth of failover) */
	CU_ASSERT(st.worst_ms <= fc.op_timeout_ms + 3L * ig.req_timeout_ms * ig.slow);
	fn_resolve(&fc, &n[2], 4, vols, 6);
	/* the observer reads through the cluster too */
	{
		struct vf_kv *save = ig.kv, *ckv = NULL;
		struct vf_err e = {0};

		CU_ASSERT_EQUAL_FATAL(ig_open(fc.snippet, &ckv, &e), VF_OK);
		ig.kv = ckv;
		pr = (struct fprobe){&fc, n, 6, 2};
		ip = fp_of(&pr);
		for (int v = 0; v < 6; v++)
			CU_ASSERT(ig_invariants(&ip, fc.prefix, vols[v], 15000));
		ig.kv = save;
		ckv->ops->close(ckv);
	}
	fc_end(n, 6, &fc);
	vf_srv_stop(&cl);
}

/* ---- 5. the store stopped for 10 s ---- */
static void fc_store_outage(int kill_it)
{
	struct fcase fc;
	struct fnode n[3];
	struct fprobe pr;
	struct ig_probe ip;
	char msg[1024], why[512], tk[256];
	struct vf_err e = {0};
	int64_t t0, t_fail, t_back, ttr_trig = -1, ttr_mount;
	int rc;

	fc_init(&fc, kill_it ? "f5k" : "f5p");
	fc.op_timeout_ms = 5000 * ig.slow; /* the failing mount's bound */
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "m2", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[2], &fc, "h1", 0, NULL, NULL), 0);
	FN_OK(&n[2], "create", "v1", NULL);
	FN_OK(&n[2], "create", "v2", NULL);
	/* a pending trigger: written while the managers cannot see it */
	kill(n[0].pid, SIGSTOP);
	kill(n[1].pid, SIGSTOP);
	snprintf(tk, sizeof(tk), "%sstart_trigger/v2", fc.prefix);
	CU_ASSERT_EQUAL(ig.kv->ops->put(ig.kv, tk, "1", 1, NULL, NULL, &e), VF_OK);
	if (kill_it) {
		CU_ASSERT_EQUAL_FATAL(vf_srv_kill(ig.srv), 0);
	} else {
		CU_ASSERT_EQUAL_FATAL(vf_srv_pause(ig.srv), 0);
	}
	t0 = vf_now_ms();
	kill(n[0].pid, SIGCONT);
	kill(n[1].pid, SIGCONT);
	/* requests fail within their timeout, with a clear error */
	rc = fn_cmd(&n[2], fc.op_timeout_ms + 15000, msg, sizeof(msg), "mount", "v1", "c1");
	t_fail = vf_now_ms() - t0;
	printf("(mount during the outage: %s after %" PRId64 " ms) ", msg, t_fail);
	CU_ASSERT(rc != VF_OK && rc != FN_NOANSWER); /* an error, not a hang */
	CU_ASSERT(t_fail <= fc.op_timeout_ms + 2L * ig.req_timeout_ms * ig.slow + 1000);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "v1"));
	while (vf_now_ms() - t0 < 10000)
		vf_test_sleep_ms(100);
	if (kill_it) {
		if (vf_srv_restart(ig.srv, why, sizeof(why)) != 0) {
			fprintf(stderr, "\nrestart: %s\n", why);
			CU_FAIL_FATAL("store restart");
		}
	} else {
		CU_ASSERT_EQUAL_FATAL(vf_srv_resume(ig.srv), 0);
	}
	t_back = vf_now_ms();
	/* the pending trigger is handled without restarting the nodes */
	while (vf_now_ms() - t_back < 60000L * ig.slow) {
		if (ig_num(fc.prefix, "start_marker", "v2") >= 1 &&
		    ig_num(fc.prefix, "gref", "v2") == 0) {
			char *s = ig_value(fc.prefix, "start_claim", "v2");
			int done = s && strncmp(s, "done ", 5) == 0;

			free(s);
			if (done) {
				ttr_trig = vf_now_ms() - t_back;
				break;
			}
		}
		vf_test_sleep_ms(100);
	}
	CU_ASSERT(ttr_trig >= 0);
	/* and the nodes serve again */
	fc.op_timeout_ms = (ig.kind == VF_SRV_CONSUL ? 30000 : 10000) * ig.slow;
	t0 = vf_now_ms();
	for (;;) {
		rc = fn_cmd(&n[2], fc.op_timeout_ms + 5000, msg, sizeof(msg), "mount", "v1", "c1");
		if (rc == VF_OK || vf_now_ms() - t_back > 60000L * ig.slow)
			break;
		vf_test_sleep_ms(200);
	}
	ttr_mount = vf_now_ms() - t_back;
	if (rc != VF_OK)
		fprintf(stderr, "\nmount after the outage: %s\n", msg);
	CU_ASSERT_EQUAL(rc, VF_OK);
	ig_note("case 5, store %s for 10 s: a mount during it failed in %" PRId64
	        " ms (op timeout %d ms); after it the pending trigger was handled in %" PRId64
	        " ms and the first mount succeeded %" PRId64 " ms after the store was back",
	        kill_it ? "killed and restarted" : "SIGSTOPped", t_fail, 5000 * ig.slow, ttr_trig,
	        ttr_mount);
	pr = (struct fprobe){&fc, n, 3, 2};
	ip = fp_of(&pr);
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v1", 20000));
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v2", 20000));
	FN_OK(&n[2], "unmount", "v1", "c1");
	CU_ASSERT(ig_settled(&ip, fc.prefix, "v1", 20000));
	fc_end(n, 3, &fc);
}

static void test_store_paused(void)
{
	ig_case("store_paused_10s", 150);
	fc_store_outage(0);
}

static void test_store_killed(void)
{
	ig_case("store_killed_10s", 150);
	fc_store_outage(1);
}

/* ---- 6. etcd: compaction while a manager's watches are cut ---- */
static void test_compacted_while_cut(void)
{
	struct vf_proxy *px = NULL;
	struct fcase fc, fm;
	struct fnode n[2];
	struct fprobe pr;
	struct ig_probe ip;
	struct vf_err e = {0};
	char why[256], msg[1024], k[256];
	int64_t rev = 0, t0, ttr;
	int rc;

	ig_case("compacted_while_cut", 120);
	fc_init(&fc, "f6");
	CU_ASSERT_EQUAL_FATAL(vf_proxy_start(ig.srv->m[0].client_port, &px, why, sizeof(why)), 0);
	/* the manager reaches the store through the proxy only, with a lease that
	 * outlives the cut and no periodic pass: only the RESYNC can find the trigger */
	fm = fc;
	fm.snippet = vf_proxy_config(px);
	fm.ttl_s = 20;
	fm.reconcile_ms = 600000;
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fm, "m1", 1, "mgr.reconcile_done:mark", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "h1", 0, NULL, NULL), 0);
	FN_OK(&n[1], "create", "v", NULL);
	/* the manager's first pass is done (it runs at start; the next in 10 min) */
	snprintf(k, sizeof(k), "%s/hit.mgr.reconcile_done.m1", fc.dir);
	for (t0 = vf_now_ms(); access(k, F_OK) != 0 && vf_now_ms() - t0 < 20000L * ig.slow;)
		vf_test_sleep_ms(20);
	CU_ASSERT_FATAL(access(k, F_OK) == 0);
	vf_proxy_cut(px);
	CU_ASSERT_EQUAL_FATAL(fn_send(&n[1], "mount v c1"), 0);
	for (t0 = vf_now_ms();
	     ig_num(fc.prefix, "start_trigger", "v") < 1 && vf_now_ms() - t0 < 5000L * ig.slow;)
		vf_test_sleep_ms(20);
	CU_ASSERT_FATAL(ig_num(fc.prefix, "start_trigger", "v") == 1);
	snprintf(k, sizeof(k), "%sfiller", fc.prefix);
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(ig.kv->ops->put(ig.kv, k, "x", 1, NULL, &rev, &e), VF_OK);
	CU_ASSERT_EQUAL(ig.kv->ops->compact(ig.kv, rev, &e), VF_OK);
	vf_proxy_restore(px);
	t0 = vf_now_ms();
	rc = fn_reply(&n[1], fc.op_timeout_ms + 5000, msg, sizeof(msg));
	ttr = vf_now_ms() - t0;
	if (rc != VF_OK)
		fprintf(stderr, "\nmount: %s\n", msg);
	CU_ASSERT_EQUAL(rc, VF_OK);
	if (rc == VF_OK)
		fn_believe(&n[1], "v", 1);
	CU_ASSERT(fn_log_has(&n[0], "lost history"));
	ig_note("case 6, history compacted while the manager's watches were cut: RESYNC, the "
	        "pending mount completed %" PRId64 " ms after the link was back",
	        ttr);
	pr = (struct fprobe){&fc, n, 2, 1};
	ip = fp_of(&pr);
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v", 10000));
	FN_OK(&n[1], "unmount", "v", "c1");
	CU_ASSERT(ig_settled(&ip, fc.prefix, "v", 10000));
	fc_end(n, 2, &fc);
	vf_proxy_stop(&px);
}

/* ---- 7. the lease (Consul session) of a lock holder invalidated ---- */
static void test_session_invalidated_under_lock(void)
{
	struct fcase fc;
	struct fnode n[2];
	struct fprobe pr;
	struct ig_probe ip;
	char msg[1024], why[256], name[64], vol[64], lease[64], gof[400];
	int64_t t0, took;
	int rc, fenced;

	ig_case("session_invalidated_under_lock", 120);
	fc_init(&fc, "f7");
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "h1", 0, "vol.mount_before_txn:pause", NULL), 0);
	FN_OK(&n[1], "create", "v", NULL);
	CU_ASSERT_EQUAL_FATAL(fn_send(&n[1], "mount v c1"), 0);
	rc = fn_line(&n[1], fc.op_timeout_ms, msg, sizeof(msg));
	CU_ASSERT_FATAL(rc == 2 &&
	                sscanf(n[1].paused, "paused %63s %63s %63s", name, vol, lease) == 3);
	CU_ASSERT_EQUAL_FATAL(ig_lease_kill(lease, why, sizeof(why)), VF_OK);
	/* the lock is gone with the session; let the holder go on */
	snprintf(gof, sizeof(gof), "%s/go.h1", fc.dir);
	fclose(fopen(gof, "w"));
	t0 = vf_now_ms();
	rc = fn_reply(&n[1], fc.op_timeout_ms + 5000, msg, sizeof(msg));
	took = vf_now_ms() - t0;
	if (rc == VF_OK)
		fn_believe(&n[1], "v", 1);
	fenced = fn_log_has(&n[1], "state changed before the reference was taken") ||
	         fn_log_has(&n[1], "cannot take the global reference");
	ig_note("case 7, lease %s of the gref lock holder invalidated: the fenced write failed "
	        "(%s), the mount %s after %" PRId64 " ms%s%s",
	        lease, fenced ? "yes" : "no", rc == VF_OK ? "retried and succeeded" : "failed",
	        took, rc == VF_OK ? "" : ": ", rc == VF_OK ? "" : msg);
	CU_ASSERT(fenced);
	CU_ASSERT(rc != FN_NOANSWER);
	CU_ASSERT(took <= fc.op_timeout_ms + 2L * ig.req_timeout_ms * ig.slow);
	pr = (struct fprobe){&fc, n, 2, 1};
	ip = fp_of(&pr);
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v", 20000));
	if (rc == VF_OK)
		FN_OK(&n[1], "unmount", "v", "c1");
	CU_ASSERT(ig_settled(&ip, fc.prefix, "v", 10000));
	fc_end(n, 2, &fc);
}

/* ---- host convergence (issues 12.2, 18.2) ---- */
static int fc_mnt_exists(const struct fcase *fc, const char *vol, const char *node)
{
	char p[600];

	snprintf(p, sizeof(p), "%s/mnt.%s@%s", fc->dir, vol, node);
	return access(p, F_OK) == 0;
}

/* Poll until vol is released by every host: gref 0, no client key, Ready, no
 * server. Returns the time it took, or -1 past bound_ms. */
static int64_t fc_wait_released(const struct fcase *fc, const char *vol, int64_t bound_ms)
{
	int64_t t0 = vf_now_ms();

	while (vf_now_ms() - t0 <= bound_ms) {
		char *st = ig_value(fc->prefix, "state", vol);
		int ready = st && strcmp(st, "Ready") == 0;

		free(st);
		if (ready && ig_num(fc->prefix, "gref", vol) == 0 &&
		    ig_clients(fc->prefix, vol) == 0 && ig_dirfs_servers(fc->dir, vol) == 0)
			return vf_now_ms() - t0;
		vf_test_sleep_ms(50);
	}
	return -1;
}

/* 12.2: the store stops answering between a host's local unmount and its gref-1
 * txn, and the caller never retries the unmount (Docker). The unmount answers
 * OK (the local unmount happened) and the host releases its id by itself once
 * the store is back: gref 0, Ready, the server stopped. */
static void test_unmount_store_outage_converges(void)
{
	struct fcase fc;
	struct fnode n[2];
	struct fprobe pr;
	struct ig_probe ip;
	char msg[1024], go[600];
	int64_t ttr, bound;
	int rc, fd;

	ig_case("unmount_store_outage_converges", 150);
	fc_init(&fc, "f8");
	fc.op_timeout_ms = 5000 * ig.slow;
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "h1", 0, "vol.unmount_before_txn:pause", NULL),
	                      0);
	FN_OK(&n[1], "create", "v", NULL);
	FN_OK(&n[1], "mount", "v", "c1");
	CU_ASSERT_EQUAL_FATAL(fn_send(&n[1], "unmount v c1"), 0);
	rc = fn_line(&n[1], fc.op_timeout_ms, msg, sizeof(msg));
	CU_ASSERT_FATAL(rc == 2 &&
	                strncmp(n[1].paused, "paused vol.unmount_before_txn v", 31) == 0);
	CU_ASSERT(!fc_mnt_exists(&fc, "v", "h1")); /* unmounted locally */
	CU_ASSERT_EQUAL_FATAL(vf_srv_pause(ig.srv), 0);
	snprintf(go, sizeof(go), "%s/go.h1", fc.dir);
	fd = open(go, O_WRONLY | O_CREAT, 0644);
	CU_ASSERT(fd >= 0);
	if (fd >= 0)
		close(fd);
	/* the txn fails (unreachable, or uncertain and unreadable): still OK */
	rc = fn_reply(&n[1], fc.op_timeout_ms + 4 * ig.req_timeout_ms * ig.slow + 5000, msg,
	              sizeof(msg));
	if (rc != VF_OK)
		fprintf(stderr, "\nunmount during the outage: %d %s\n", rc, msg);
	CU_ASSERT_EQUAL(rc, VF_OK);
	fn_believe(&n[1], "v", 0);
	CU_ASSERT_EQUAL_FATAL(vf_srv_resume(ig.srv), 0);
	/* bound: the longest retry backoff, one try (<= 5 s), two request
	 * timeouts, the manager's stop (a watch event) */
	bound = (5000 + 5000 + 2L * ig.req_timeout_ms + fc_expiry_ms(&fc) + 3000) * ig.slow;
	ttr = fc_wait_released(&fc, "v", bound);
	ig_note("unmount during a store outage (caller never retries): answered %s; the id "
	        "was released %" PRId64 " ms after the store was back (bound %" PRId64 " ms)",
	        rc == VF_OK ? "OK" : "an error", ttr, bound);
	CU_ASSERT(ttr >= 0);
	if (!fn_log_has(&n[1], "answered OK, the store part is retried")) {
		FILE *f = fopen(n[1].log, "r");
		char l[512];

		fprintf(stderr, "\nh1 did not hand the release to the background; its log:\n");
		while (f && fgets(l, sizeof(l), f))
			fprintf(stderr, "  | %s", l);
		if (f)
			fclose(f);
		CU_FAIL("the release was not retried in the background");
	}
	pr = (struct fprobe){&fc, n, 2, 1};
	ip = fp_of(&pr);
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v", 10000));
	FN_OK(&n[1], "remove", "v", NULL); /* not refused: no host left counted */
	fc_end(n, 2, &fc);
}

/* 18.2: a host killed after its local mount and before the store counted it
 * (sshfs completes the mount anyway). Restarted, it unmounts what no id of it
 * stands for, before it serves; the volume is then released and removable
 * with no mount left behind. */
static void test_restart_after_crash_mid_mount(void)
{
	struct fcase fc;
	struct fnode n[3];
	struct fprobe pr;
	struct ig_probe ip;
	char msg[1024];
	int rc;

	ig_case("restart_after_crash_mid_mount", 120);
	fc_init(&fc, "f9");
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "h1", 0, "vol.mount_before_txn:exit", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[2], &fc, "h2", 0, NULL, NULL), 0);
	FN_OK(&n[2], "create", "v", NULL);
	FN_OK(&n[2], "mount", "v", "x");
	rc = fn_cmd(&n[1], fc.op_timeout_ms + 5000, msg, sizeof(msg), "mount", "v", "c1");
	CU_ASSERT_EQUAL(rc, FN_NOANSWER); /* died mid-mount */
	fn_reap(&n[1], 5000);
	CU_ASSERT_FATAL(fc_mnt_exists(&fc, "v", "h1")); /* the mount outlived it */
	CU_ASSERT_EQUAL(ig_num(fc.prefix, "gref", "v"), 1);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "h1", 0, NULL, NULL), 0);
	CU_ASSERT(!fc_mnt_exists(&fc, "v", "h1")); /* checked before "ready" */
	/* Docker's Unmount of that id: OK, nothing left */
	FN_OK(&n[1], "unmount", "v", "c1");
	CU_ASSERT(!fc_mnt_exists(&fc, "v", "h1"));
	CU_ASSERT_EQUAL(ig_num(fc.prefix, "gref", "v"), 1);
	pr = (struct fprobe){&fc, n, 3, 2};
	ip = fp_of(&pr);
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v", 10000));
	FN_OK(&n[2], "unmount", "v", "x");
	CU_ASSERT(fc_wait_released(&fc, "v", (fc_expiry_ms(&fc) + 10000) * ig.slow) >= 0);
	FN_OK(&n[2], "remove", "v", NULL);
	CU_ASSERT(!fc_mnt_exists(&fc, "v", "h1"));
	fc_end(n, 3, &fc);
}

/* 12.2 on start: a host's id counted in the store, its mount gone (the host
 * rebooted; Docker will not unmount what it no longer runs). Restarted, the
 * host releases the id by itself: gref 0, Ready, the server stopped. */
static void test_restart_releases_ids_without_mount(void)
{
	struct fcase fc;
	struct fnode n[2];
	char p[600];
	int64_t t0, ttr, bound;

	ig_case("restart_releases_ids_without_mount", 120);
	fc_init(&fc, "f10");
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "h1", 0, NULL, NULL), 0);
	FN_OK(&n[1], "create", "v", NULL);
	FN_OK(&n[1], "mount", "v", "c1");
	fn_kill(&n[1]);
	snprintf(p, sizeof(p), "%s/mnt.v@h1", fc.dir);
	CU_ASSERT_EQUAL(unlink(p), 0); /* the reboot took the mount */
	CU_ASSERT_EQUAL(ig_num(fc.prefix, "gref", "v"), 1);
	t0 = vf_now_ms();
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "h1", 0, NULL, NULL), 0);
	bound = (5000 + 5000 + fc_expiry_ms(&fc) + 3000) * ig.slow;
	ttr = fc_wait_released(&fc, "v", bound);
	if (ttr >= 0)
		ttr = vf_now_ms() - t0;
	ig_note("a restarted host released its id of a volume it no longer had mounted "
	        "%" PRId64 " ms after its start (bound %" PRId64 " ms)",
	        ttr, bound);
	CU_ASSERT(ttr >= 0);
	FN_OK(&n[1], "remove", "v", NULL);
	fc_end(n, 2, &fc);
}

/* 18.3: the reconciler lists each key family in its own request; a mount or
 * unmount committing in between made it log "INCONSISTENT: gref is X but Y
 * client(s) are listed" for a consistent volume. Under concurrent mounts and
 * unmounts from 4 hosts, with a pass every 20 ms, the line must never appear;
 * a real inconsistency (gref written by hand) must still be reported. */
static void test_no_false_inconsistent_under_load(void)
{
	static const char *const vols[] = {"v1", "v2"};
	struct fcase fc;
	struct fnode n[5];
	struct fprobe pr;
	struct ig_probe ip;
	struct fops st;
	struct vf_err e = {0};
	char k[300];
	int64_t t0;
	int seen = 0;

	ig_case("no_false_inconsistent_under_load", 240);
	fc_init(&fc, "f11");
	fc.reconcile_ms = 20;
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, NULL, NULL), 0);
	for (int i = 1; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "h%d", i);
		CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[i], &fc, name, 0, NULL, NULL), 0);
	}
	FN_OK(&n[1], "create", "v1", NULL);
	FN_OK(&n[1], "create", "v2", NULL);
	FN_OK(&n[1], "create", "w", NULL);
	fn_random_ops(&fc, &n[1], 4, vols, 2, 300, 18, &st, NULL, NULL);
	fn_resolve(&fc, &n[1], 4, vols, 2);
	ig_note("no false INCONSISTENT: %d operations from 4 hosts (%d ok, %d errors), a "
	        "reconcile pass every %d ms",
	        st.total, st.ok, st.errors, fc.reconcile_ms);
	CU_ASSERT(!fn_log_has(&n[0], "INCONSISTENT"));
	/* a real one is reported (within a few passes) */
	snprintf(k, sizeof(k), "%sgref/w", fc.prefix);
	CU_ASSERT_EQUAL(ig.kv->ops->put(ig.kv, k, "2", 1, NULL, NULL, &e), VF_OK);
	for (t0 = vf_now_ms(); !seen && vf_now_ms() - t0 < 10000L * ig.slow; vf_test_sleep_ms(50))
		seen = fn_log_has(&n[0], "volume w: INCONSISTENT: gref is 2 but 0 client(s)");
	CU_ASSERT(seen);
	CU_ASSERT_EQUAL(ig.kv->ops->put(ig.kv, k, "0", 1, NULL, NULL, &e), VF_OK);
	pr = (struct fprobe){&fc, n, 5, 1};
	ip = fp_of(&pr);
	for (int v = 0; v < 2; v++)
		CU_ASSERT(ig_invariants(&ip, fc.prefix, vols[v], 20000));
	fc_end(n, 5, &fc);
}

/* ---- etcd failover (#18.1, #12.5, #12.6, #12.9) ----
 * Cases on one handle of the backend rather than vfnode processes: what they pin
 * is the driver's behaviour towards a member that hangs, dies mid-stream, has no
 * leader, or a store that was reset. */

struct ev_log {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int n, resyncs, puts;
	int64_t revs[1024];
	int types[1024];
	int64_t resync_rev;
};

static void ev_init(struct ev_log *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cond, NULL);
}

static void ev_fini(struct ev_log *l)
{
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cond);
}

static int ev_cb(const struct vf_kv_event *ev, void *arg)
{
	struct ev_log *l = arg;

	pthread_mutex_lock(&l->mu);
	if (l->n < 1024) {
		l->revs[l->n] = ev->type == VF_EV_RESYNC ? ev->revision : ev->mod_rev;
		l->types[l->n] = ev->type;
		l->n++;
	}
	if (ev->type == VF_EV_RESYNC) {
		l->resyncs++;
		l->resync_rev = ev->revision;
	} else if (ev->type == VF_EV_PUT)
		l->puts++;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
	return 0;
}

/* Wait until *field >= want, at most ms. Returns the value seen. */
static int ev_wait(struct ev_log *l, const int *field, int want, int ms)
{
	int64_t end = vf_now_ms() + ms;
	int v;

	pthread_mutex_lock(&l->mu);
	while (*field < want && vf_now_ms() < end) {
		struct timespec ts; /* the cond uses CLOCK_REALTIME: wake every 50 ms */

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&l->cond, &l->mu, &ts);
	}
	v = *field;
	pthread_mutex_unlock(&l->mu);
	return v;
}

static void lost_cb(struct vf_kv_lease *lease, void *arg)
{
	(void)lease;
	__atomic_store_n((int *)arg, 1, __ATOMIC_SEQ_CST);
}

/* 8. #18.1: TTL 10 s, endpoints [follower, leader, follower], the leader SIGSTOPped
 * 3.0 s after the grant (the first renewal is due at 3.33 s) and kept paused 14 s:
 * no lease may be lost (before: lost ~10.6 s after the pause, the renewal spent
 * 5 s on the follower forwarding to the paused leader and 5 s on the leader). */
static void test_etcd_leader_paused_keepalive(void)
{
	struct vf_srv_opts o = {0};
	struct vf_srv *cl = NULL;
	char why[512], prefix[64], key[96];

	ig_case("etcd_leader_paused_keepalive", 150);
	ig_prefix(prefix, sizeof(prefix));
	snprintf(key, sizeof(key), "%ska", prefix);
	o.members = 3;
	o.timeout_ms = 5000;
	if (vf_srv_start(VF_SRV_ETCD, &o, &cl, why, sizeof(why)) != 0) {
		fprintf(stderr, "\ncluster: %s\n", why);
		CU_FAIL_FATAL("cannot start a 3-member etcd cluster");
	}
	for (int trial = 0; trial < 2; trial++) {
		struct vf_kv *kv = NULL, *fkv = NULL;
		struct vf_kv_lease *lease = NULL;
		struct vf_kv_pair pair = {0};
		struct vf_err e = {0};
		char snip[512], fsnip[512];
		int64_t t0, tp, tget, lost_ms = -1;
		int lost = 0, leader = -1, f1, f2, grc;

		/* Settle first (the member paused by the previous trial rejoins): a
		 * write commits through all three, then ask who leads. */
		snprintf(snip, sizeof(snip),
		         "endpoints = [\"http://127.0.0.1:%d\", \"http://127.0.0.1:%d\", "
		         "\"http://127.0.0.1:%d\"]; timeout_ms = 5000;",
		         cl->m[0].client_port, cl->m[1].client_port, cl->m[2].client_port);
		CU_ASSERT_EQUAL_FATAL(ig_open(snip, &kv, &e), VF_OK);
		for (int64_t end = vf_now_ms() + 20000L * ig.slow;;) {
			grc = kv->ops->put(kv, key, "settle", 6, NULL, NULL, &e);
			if (grc == VF_OK || vf_now_ms() > end)
				break;
			vf_test_sleep_ms(200);
		}
		kv->ops->close(kv);
		kv = NULL;
		CU_ASSERT_EQUAL_FATAL(grc, VF_OK);
		for (int64_t end = vf_now_ms() + 15000; leader < 0 && vf_now_ms() < end;)
			if ((leader = vf_srv_leader(cl)) < 0)
				vf_test_sleep_ms(100);
		CU_ASSERT_FATAL(leader >= 0);
		f1 = (leader + 1) % 3;
		f2 = (leader + 2) % 3;
		snprintf(snip, sizeof(snip),
		         "endpoints = [\"http://127.0.0.1:%d\", \"http://127.0.0.1:%d\", "
		         "\"http://127.0.0.1:%d\"]; timeout_ms = 5000;",
		         cl->m[f1].client_port, cl->m[leader].client_port, cl->m[f2].client_port);
		snprintf(fsnip, sizeof(fsnip),
		         "endpoints = [\"http://127.0.0.1:%d\", \"http://127.0.0.1:%d\"];"
		         " timeout_ms = 5000;",
		         cl->m[f1].client_port, cl->m[f2].client_port);
		CU_ASSERT_EQUAL_FATAL(ig_open(snip, &kv, &e), VF_OK);
		CU_ASSERT_EQUAL_FATAL(ig_open(fsnip, &fkv, &e), VF_OK);
		/* After the previous trial's member came back, the cluster may still be
		 * settling (an election): the grant is set-up, retried until it works. */
		for (int64_t end = vf_now_ms() + 20000L * ig.slow;;) {
			t0 = vf_now_ms();
			grc = kv->ops->lease_grant(kv, 10, 0, lost_cb, &lost, &lease, &e);
			if (grc == VF_OK || (grc != VF_EUNAVAIL && grc != VF_EUNCERTAIN) ||
			    vf_now_ms() > end)
				break;
			vf_test_sleep_ms(200);
		}
		if (grc != VF_OK)
			fprintf(stderr, "\nlease grant: %s\n", e.msg);
		CU_ASSERT_EQUAL_FATAL(grc, VF_OK);
		CU_ASSERT_EQUAL_FATAL(kv->ops->put(kv, key, "x", 1, lease, NULL, &e), VF_OK);
		if (vf_now_ms() - t0 < 3000)
			vf_test_sleep_ms((int)(3000 - (vf_now_ms() - t0)));
		CU_ASSERT_EQUAL_FATAL(vf_srv_member_pause(cl, leader), 0);
		tp = vf_now_ms();
		/* a read through the same endpoints meanwhile: answered within its 5 s */
		grc = kv->ops->get(kv, key, &pair, &e);
		tget = vf_now_ms() - tp;
		CU_ASSERT_EQUAL(grc, VF_OK);
		CU_ASSERT(tget < 5000 + 700);
		vf_kv_pair_clear(&pair);
		/* hold the fault 14 s: an unrenewed lease is gone by then (TTL 10 s from
		 * the last renewal, or from the new leader's promotion + 0.5 s) */
		while (vf_now_ms() - tp < 14000) {
			if (__atomic_load_n(&lost, __ATOMIC_SEQ_CST) && lost_ms < 0)
				lost_ms = vf_now_ms() - tp;
			vf_test_sleep_ms(100);
		}
		CU_ASSERT_EQUAL(__atomic_load_n(&lost, __ATOMIC_SEQ_CST), 0);
		/* the store agrees: the key attached to the lease is still there */
		grc = fkv->ops->get(fkv, key, &pair, &e);
		CU_ASSERT_EQUAL(grc, VF_OK);
		if (grc != VF_OK)
			fprintf(stderr, "\nkey of the lease: %s\n", e.msg);
		vf_kv_pair_clear(&pair);
		ig_note("case 8 trial %d, TTL 10 s, endpoints [follower, leader, follower], leader "
		        "n%d paused 14 s from 3.0 s after the grant: lease %s (lost %" PRId64
		        " ms after the pause), key %s; a read meanwhile took %" PRId64 " ms",
		        trial, leader, lost ? "LOST" : "kept", lost_ms,
		        grc == VF_OK ? "present" : "gone", tget);
		CU_ASSERT_EQUAL(vf_srv_member_resume(cl, leader), 0);
		kv->ops->lease_revoke(kv, &lease, &e);
		kv->ops->close(kv);
		fkv->ops->close(fkv);
	}
	vf_srv_stop(&cl);
}

/* 9. #12.5: a watch whose stream dies mid-way (its endpoint cut) resumes on the
 * next endpoint from the last delivered revision + 1: every event once, in order
 * (before: the HTTP layer replayed the request on the next endpoint with the old
 * start revision, delivering events twice). */
static void test_etcd_watch_failover_once(void)
{
	struct vf_proxy *px = NULL;
	struct vf_kv *kv = NULL;
	struct vf_kv_watch *w = NULL;
	struct ev_log l;
	struct vf_err e = {0};
	char why[256], prefix[64], snip[512];
	int64_t rev0 = 0;
	int got, dups = 0, order = 0;
	const int total = 200;

	ig_case("etcd_watch_failover_once", 90);
	ig_prefix(prefix, sizeof(prefix));
	CU_ASSERT_EQUAL_FATAL(vf_proxy_start(ig.srv->m[0].client_port, &px, why, sizeof(why)), 0);
	snprintf(snip, sizeof(snip),
	         "endpoints = [\"http://127.0.0.1:%d\", \"http://127.0.0.1:%d\"]; timeout_ms = "
	         "%d;",
	         vf_proxy_port(px), ig.srv->m[0].client_port, ig.req_timeout_ms);
	CU_ASSERT_EQUAL_FATAL(ig_open(snip, &kv, &e), VF_OK);
	{
		char k[96];

		snprintf(k, sizeof(k), "%sstart", prefix);
		CU_ASSERT_EQUAL_FATAL(ig.kv->ops->put(ig.kv, k, "0", 1, NULL, &rev0, &e), VF_OK);
	}
	ev_init(&l);
	CU_ASSERT_EQUAL_FATAL(kv->ops->watch_start(kv, prefix, rev0, ev_cb, &l, &w, &e), VF_OK);
	for (int i = 0; i < total; i++) {
		char k[96];

		snprintf(k, sizeof(k), "%sk%d", prefix, i % 7);
		CU_ASSERT_EQUAL(ig.kv->ops->put(ig.kv, k, "v", 1, NULL, NULL, &e), VF_OK);
		if (i == total / 3) {
			/* events delivered so far come through the proxy: cut it */
			ev_wait(&l, &l.puts, i / 2, 5000 * ig.slow);
			vf_proxy_cut(px);
		}
	}
	got = ev_wait(&l, &l.puts, total, 20000 * ig.slow);
	vf_test_sleep_ms(300); /* late duplicates, if any, would come right after the last */
	pthread_mutex_lock(&l.mu);
	for (int i = 1; i < l.n; i++) {
		if (l.revs[i] == l.revs[i - 1])
			dups++;
		else if (l.revs[i] < l.revs[i - 1])
			order++;
	}
	got = l.puts;
	pthread_mutex_unlock(&l.mu);
	ig_note("case 9, watch through [cut proxy, member]: %d events of %d, %d repeated, %d "
	        "out of order",
	        got, total, dups, order);
	CU_ASSERT_EQUAL(got, total);
	CU_ASSERT_EQUAL(dups, 0);
	CU_ASSERT_EQUAL(order, 0);
	kv->ops->watch_stop(kv, &w);
	kv->ops->close(kv);
	vf_proxy_stop(&px);
	ev_fini(&l);
}

/* 10. #12.9: a watch resumed past the store's head (a reset or restored store)
 * reports RESYNC (before: it waited silently for revisions the store had already
 * used, dropping every write made meanwhile). */
static void test_etcd_watch_past_head(void)
{
	struct vf_kv_watch *w = NULL;
	struct ev_log l;
	struct vf_err e = {0};
	char prefix[64], k[96];
	int64_t rev = 0, rev2 = 0;
	int bound = 3 * ig.req_timeout_ms * ig.slow;

	ig_case("etcd_watch_past_head", 60);
	ig_prefix(prefix, sizeof(prefix));
	snprintf(k, sizeof(k), "%sa", prefix);
	CU_ASSERT_EQUAL_FATAL(ig.kv->ops->put(ig.kv, k, "1", 1, NULL, &rev, &e), VF_OK);
	ev_init(&l);
	/* as after a restore: the watcher saw revisions the store has not reached */
	CU_ASSERT_EQUAL_FATAL(ig.kv->ops->watch_start(ig.kv, prefix, rev + 1000, ev_cb, &l, &w, &e),
	                      VF_OK);
	CU_ASSERT_EQUAL(ig.kv->ops->put(ig.kv, k, "2", 1, NULL, &rev2, &e), VF_OK);
	CU_ASSERT_EQUAL(ev_wait(&l, &l.resyncs, 1, bound), 1);
	pthread_mutex_lock(&l.mu);
	CU_ASSERT(l.resyncs == 0 || l.resync_rev >= rev);
	pthread_mutex_unlock(&l.mu);
	/* after the RESYNC, new writes come through */
	CU_ASSERT_EQUAL(ig.kv->ops->put(ig.kv, k, "3", 1, NULL, NULL, &e), VF_OK);
	CU_ASSERT(ev_wait(&l, &l.puts, 1, bound) >= 1);
	ig.kv->ops->watch_stop(ig.kv, &w);
	ev_fini(&l);
}

#define NO_LEADER                                                                                  \
	"{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\",\"code\":14}"

/* 11. #12.6: a member that answers "no leader" (503) is left for a healthy one:
 * writes, reads and watches go on (before: any HTTP answer pinned the endpoint;
 * the put failed and the watch retried the leaderless member forever). Requests
 * carry hasleader, so a real member refuses at once instead of stalling. */
static void test_etcd_no_leader_member(void)
{
	const struct vf_fake_route nl[] = {{NULL, VF_FAKE_REPLY, 0, 503, NO_LEADER}};
	struct vf_fake *fk = NULL;
	struct vf_kv *kv = NULL, *wkv = NULL;
	struct vf_kv_watch *w = NULL;
	struct vf_kv_pair pair = {0};
	struct ev_log l;
	struct vf_err e = {0};
	char why[256], prefix[64], snip[512], k[96];
	int64_t rev = 0, t0;
	int rc, bound = 3 * ig.req_timeout_ms * ig.slow;

	ig_case("etcd_no_leader_member", 60);
	ig_prefix(prefix, sizeof(prefix));
	snprintf(k, sizeof(k), "%sa", prefix);
	CU_ASSERT_EQUAL_FATAL(vf_fake_start(nl, 1, &fk, why, sizeof(why)), 0);
	snprintf(snip, sizeof(snip),
	         "endpoints = [\"http://127.0.0.1:%d\", \"http://127.0.0.1:%d\"]; timeout_ms = "
	         "%d;",
	         vf_fake_port(fk), ig.srv->m[0].client_port, ig.req_timeout_ms);
	CU_ASSERT_EQUAL_FATAL(ig_open(snip, &kv, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(ig_open(snip, &wkv, &e), VF_OK);
	rc = kv->ops->put(kv, k, "1", 1, NULL, &rev, &e);
	CU_ASSERT_EQUAL(rc, VF_OK);
	if (rc != VF_OK)
		fprintf(stderr, "\nput: %s\n", e.msg);
	CU_ASSERT_EQUAL(kv->ops->get(kv, k, &pair, &e), VF_OK);
	vf_kv_pair_clear(&pair);
	CU_ASSERT(vf_fake_saw(fk, "Grpc-Metadata-hasleader: true") >= 1);
	ev_init(&l);
	t0 = vf_now_ms();
	CU_ASSERT_EQUAL_FATAL(wkv->ops->watch_start(wkv, prefix, rev, ev_cb, &l, &w, &e), VF_OK);
	CU_ASSERT_EQUAL(ig.kv->ops->put(ig.kv, k, "2", 1, NULL, NULL, &e), VF_OK);
	CU_ASSERT_EQUAL(ev_wait(&l, &l.puts, 1, bound), 1);
	ig_note("case 11, endpoints [member without leader (503), member]: put, get ok; the "
	        "watch delivered after %" PRId64 " ms",
	        vf_now_ms() - t0);
	wkv->ops->watch_stop(wkv, &w);
	wkv->ops->close(wkv);
	kv->ops->close(kv);
	vf_fake_stop(&fk);
	ev_fini(&l);
}

/* 12. #12.9: a message whose revision holds two events, the second unreadable:
 * no event of that revision is delivered, the watch reports RESYNC (before: the
 * first was delivered, the watch resumed after the revision, the second was lost). */
static void test_etcd_watch_revision_not_cut(void)
{
	/* key "p/a" = cC9h, value "1" = MQ==; the second event's key is not base64 */
	const struct vf_fake_route r[] = {
	        {"/v3/watch", VF_FAKE_REPLY, 0, 200,
	         "{\"result\":{\"header\":{\"revision\":\"7\"},\"created\":true}}\n"
	         "{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":["
	         "{\"kv\":{\"key\":\"cC9h\",\"value\":\"MQ==\",\"mod_revision\":\"7\","
	         "\"create_revision\":\"7\",\"version\":\"1\"}},"
	         "{\"kv\":{\"key\":\"!!!\",\"value\":\"MQ==\",\"mod_revision\":\"7\","
	         "\"create_revision\":\"7\",\"version\":\"1\"}}]}}\n"},
	        {"/v3/kv/range", VF_FAKE_REPLY, 0, 200,
	         "{\"header\":{\"revision\":\"9\"},\"count\":\"0\"}"},
	};
	struct vf_fake *fk = NULL;
	struct vf_kv *kv = NULL;
	struct vf_kv_watch *w = NULL;
	struct ev_log l;
	struct vf_err e = {0};
	char why[256], snip[256];
	int bound = 3 * ig.req_timeout_ms * ig.slow, cut = 0;

	ig_case("etcd_watch_revision_not_cut", 60);
	CU_ASSERT_EQUAL_FATAL(vf_fake_start(r, 2, &fk, why, sizeof(why)), 0);
	snprintf(snip, sizeof(snip), "endpoints = [\"http://127.0.0.1:%d\"]; timeout_ms = %d;",
	         vf_fake_port(fk), ig.req_timeout_ms);
	CU_ASSERT_EQUAL_FATAL(ig_open(snip, &kv, &e), VF_OK);
	ev_init(&l);
	CU_ASSERT_EQUAL_FATAL(kv->ops->watch_start(kv, "p/", 5, ev_cb, &l, &w, &e), VF_OK);
	ev_wait(&l, &l.n, 1, bound);
	kv->ops->watch_stop(kv, &w);
	pthread_mutex_lock(&l.mu);
	for (int i = 0; i < l.n; i++)
		if (l.types[i] != VF_EV_RESYNC)
			cut++;
	CU_ASSERT(l.n >= 1);
	CU_ASSERT(l.n >= 1 && l.types[0] == VF_EV_RESYNC);
	pthread_mutex_unlock(&l.mu);
	CU_ASSERT_EQUAL(cut, 0);
	kv->ops->close(kv);
	vf_fake_stop(&fk);
	ev_fini(&l);
}

struct gb_arg {
	struct vf_kv *kv;
	struct vf_kv_lease *lease;
	const char *name;
	int rc;
	struct vf_err err;
};

static void *gb_lock_main(void *arg)
{
	struct gb_arg *a = arg;
	struct vf_kv_lock *lk = NULL;

	a->rc = a->kv->ops->lock(a->kv, a->lease, a->name, 2500, NULL, 0, NULL, &lk, &a->err);
	if (lk)
		a->kv->ops->unlock(a->kv, &lk, NULL);
	return NULL;
}

static int gb_waiters(const char *name)
{
	struct vf_kv_list lst = {0};
	struct vf_err e = {0};
	char pfx[128];
	int n;

	snprintf(pfx, sizeof(pfx), "%s/", name);
	if (ig.kv->ops->list(ig.kv, pfx, &lst, &e) != VF_OK)
		return -1;
	n = (int)lst.count;
	vf_kv_list_clear(&lst);
	return n;
}

/* 13. #12.9: a waiter whose lock() timed out while the store was unreachable for it
 * cannot give its place back then; its lease lives on (kept alive once the store
 * answers). The key must not own the lock later: it is given back in the
 * background (before: the next locker waited until that lease ended, i.e. forever
 * for a live daemon). The same holds when the cut lost the answer to B's enqueue
 * (VF_EUNCERTAIN: its key may be queued and no retry comes). */
static void test_etcd_lock_giveback(void)
{
	struct vf_proxy *px = NULL;
	struct vf_kv *kvb = NULL;
	struct vf_kv_lease *la = NULL, *lb = NULL, *lc = NULL;
	struct vf_kv_lock *ha = NULL, *hc = NULL;
	struct gb_arg ga = {0};
	struct vf_err e = {0};
	pthread_t th;
	char why[256], prefix[64], name[96], snip[256];
	int64_t t0, took;
	int n = 0, rc;

	ig_case("etcd_lock_giveback", 90);
	ig_prefix(prefix, sizeof(prefix));
	snprintf(name, sizeof(name), "%slock", prefix);
	CU_ASSERT_EQUAL_FATAL(vf_proxy_start(ig.srv->m[0].client_port, &px, why, sizeof(why)), 0);
	snprintf(snip, sizeof(snip), "endpoints = [\"http://127.0.0.1:%d\"]; timeout_ms = 1000;",
	         vf_proxy_port(px));
	CU_ASSERT_EQUAL_FATAL(ig_open(snip, &kvb, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(ig.kv->ops->lease_grant(ig.kv, 10, 0, NULL, NULL, &la, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(kvb->ops->lease_grant(kvb, 10, 0, NULL, NULL, &lb, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(ig.kv->ops->lock(ig.kv, la, name, 5000, NULL, 0, NULL, &ha, &e),
	                      VF_OK);
	ga.kv = kvb;
	ga.lease = lb;
	ga.name = name;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, gb_lock_main, &ga), 0);
	for (int64_t end = vf_now_ms() + 5000L * ig.slow; vf_now_ms() < end; vf_test_sleep_ms(20))
		if ((n = gb_waiters(name)) >= 2)
			break;
	CU_ASSERT_EQUAL(n, 2);
	vf_proxy_cut(px); /* B waits on, times out, cannot give back */
	pthread_join(th, NULL);
	/* timed out waiting, or (cut while its enqueue's answer was on the way) an
	 * uncertain acquisition: either way its waiter key is left behind */
	CU_ASSERT(ga.rc == VF_ETIMEDOUT || ga.rc == VF_EUNCERTAIN);
	if (ga.rc != VF_ETIMEDOUT)
		printf("(B's lock: %s) ", ga.err.msg);
	CU_ASSERT_EQUAL(gb_waiters(name), 2); /* B's key outlived its lock() */
	vf_proxy_restore(px);
	CU_ASSERT_EQUAL(ig.kv->ops->unlock(ig.kv, &ha, &e), VF_OK);
	CU_ASSERT_EQUAL_FATAL(ig.kv->ops->lease_grant(ig.kv, 10, 0, NULL, NULL, &lc, &e), VF_OK);
	/* bound: the give-back retries every 2 s at most, plus one request */
	t0 = vf_now_ms();
	rc = ig.kv->ops->lock(ig.kv, lc, name, 8000 * ig.slow, NULL, 0, NULL, &hc, &e);
	took = vf_now_ms() - t0;
	CU_ASSERT_EQUAL(rc, VF_OK);
	if (rc != VF_OK)
		fprintf(stderr, "\nlock after the failed give-back: %s\n", e.msg);
	ig_note("case 13, a waiter key left by a lock() that timed out while cut off: the next "
	        "locker got the lock after %" PRId64 " ms (%s)",
	        took, vf_strerror(rc));
	if (hc)
		ig.kv->ops->unlock(ig.kv, &hc, NULL);
	ig.kv->ops->lease_revoke(ig.kv, &lc, NULL);
	ig.kv->ops->lease_revoke(ig.kv, &la, NULL);
	kvb->ops->lease_revoke(kvb, &lb, NULL);
	kvb->ops->close(kvb);
	vf_proxy_stop(&px);
}

/* ---- 14. Consul: the server a manager talks to first paused, then black-holed ----
 * Issue 12 (the Consul nemesis, seed 1796322065): a mount 10.2 s into a black hole
 * of one Consul server failed because its manager had given its file server up: the
 * manager's session could not be kept alive. Sessions were bound to the node of the
 * agent that created them, with its serfHealth check: when that server stops, the
 * other two mark its node failed and invalidate every session on it, although they
 * hold quorum and answer. 3 servers, each behind a proxy; every node lists the
 * victim (a follower) first. The victim is SIGSTOPped, then (after it rejoined)
 * black-holed through its proxy, then the leader of the moment is SIGSTOPped,
 * each time for 2 TTLs + 5 s. The manager's lease
 * must survive both, its file server must keep running, a mount and an unmount of
 * the volume from another host TTL + 3 s into the fault must succeed within one
 * failover bound, and the refcounts must be exact. */
struct cm_fault {
	int lost;          /* leases the manager logged lost meanwhile */
	int64_t down_ms;   /* sampled time without exactly one live server */
	int64_t mount_ms;  /* the mount during the fault: its latency (-1: failed) */
	int64_t umount_ms; /* the unmount after it */
	char msg[1024];
};

/* Answer of a command sent with fn_send, or -1 while none came (non-blocking). */
static int cm_poll_reply(struct fnode *n, char *msg, size_t size)
{
	struct pollfd pf = {.fd = n->out_fd, .events = POLLIN};

	if (memchr(n->buf, '\n', n->len) == NULL && poll(&pf, 1, 0) <= 0)
		return -1;
	return fn_reply(n, 1000, msg, size);
}

/* Hold the fault (already applied) for hold_ms, sampling the volume's servers
 * every 100 ms, and send a mount then an unmount from host at op_at_ms. */
static void cm_hold(struct fcase *fc, struct fnode *host, int64_t hold_ms, int64_t op_at_ms,
                    struct cm_fault *r)
{
	int64_t t0 = vf_now_ms(), last = t0, sent = 0;
	int stage = 0; /* 0: before the mount, 1: mount sent, 2: unmount sent, 3: done */

	memset(r, 0, sizeof(*r));
	r->mount_ms = r->umount_ms = -1;
	while (vf_now_ms() - t0 < hold_ms || (stage == 1 || stage == 2)) {
		int64_t now = vf_now_ms();
		char m[1024];
		int rc;

		if (ig_dirfs_servers(fc->dir, "v") != 1)
			r->down_ms += now - last;
		last = now;
		if (stage == 0 && now - t0 >= op_at_ms) {
			CU_ASSERT_EQUAL_FATAL(fn_send(host, "mount v c2"), 0);
			sent = now;
			stage = 1;
		} else if (stage == 1 && (rc = cm_poll_reply(host, m, sizeof(m))) >= 0) {
			if (rc == VF_OK) {
				r->mount_ms = vf_now_ms() - sent;
				CU_ASSERT_EQUAL_FATAL(fn_send(host, "unmount v c2"), 0);
				sent = vf_now_ms();
				stage = 2;
			} else {
				snprintf(r->msg, sizeof(r->msg), "mount: %d %.900s", rc, m);
				stage = 3;
			}
		} else if (stage == 2 && (rc = cm_poll_reply(host, m, sizeof(m))) >= 0) {
			if (rc == VF_OK)
				r->umount_ms = vf_now_ms() - sent;
			else
				snprintf(r->msg, sizeof(r->msg), "unmount: %d %.900s", rc, m);
			stage = 3;
		}
		if ((stage == 1 || stage == 2) && vf_now_ms() - sent > fc->op_timeout_ms + 10000L) {
			snprintf(r->msg, sizeof(r->msg), "%s: no answer",
			         stage == 1 ? "mount" : "unmount");
			CU_FAIL_FATAL("an operation hangs");
		}
		vf_test_sleep_ms(100);
	}
}

/* Wait until member i answers a write again (it rejoined), bounded by ms. */
static int cm_rejoined(const struct vf_srv *cl, int i, const char *key, int ms)
{
	struct vf_kv *kv = NULL;
	struct vf_err e = {0};
	char snip[256];
	int rc = VF_EUNAVAIL;

	snprintf(snip, sizeof(snip), "endpoints = [\"http://127.0.0.1:%d\"]; timeout_ms = %d;",
	         cl->m[i].client_port, ig.req_timeout_ms);
	if (ig_open(snip, &kv, &e) != VF_OK)
		return 0;
	for (int64_t end = vf_now_ms() + ms; vf_now_ms() < end; vf_test_sleep_ms(200)) {
		struct vf_kv_pair p = {0};

		rc = kv->ops->put(kv, key, "x", 1, NULL, NULL, &e);
		/* a stale read would not prove it caught up: read back through it */
		if (rc == VF_OK)
			rc = kv->ops->get(kv, key, &p, &e);
		vf_kv_pair_clear(&p);
		if (rc == VF_OK)
			break;
	}
	kv->ops->close(kv);
	return rc == VF_OK;
}

static void test_consul_member_fault_lease(void)
{
	struct vf_srv_opts o = {0};
	struct vf_srv *cl = NULL;
	struct vf_proxy *px[3] = {NULL};
	struct vf_kv *save = ig.kv, *okv = NULL;
	struct fcase fc;
	struct fnode n[3];
	struct fprobe pr;
	struct ig_probe ip;
	struct cm_fault r[3];
	struct vf_err e = {0};
	char why[512], snip[512], osnip[256], key[128];
	char *sv;
	int leader = -1, victim, order[3];
	int64_t hold_ms, op_at_ms, op_bound;

	ig_case("consul_member_fault_lease", 420);
	o.members = 3;
	o.timeout_ms = ig.req_timeout_ms;
	if (vf_srv_start(VF_SRV_CONSUL, &o, &cl, why, sizeof(why)) != 0) {
		fprintf(stderr, "\ncluster: %s\n", why);
		CU_FAIL_FATAL("cannot start 3 Consul servers");
	}
	for (int64_t end = vf_now_ms() + 30000L * ig.slow; leader < 0 && vf_now_ms() < end;)
		if ((leader = vf_srv_leader(cl)) < 0)
			vf_test_sleep_ms(100);
	CU_ASSERT_FATAL(leader >= 0);
	victim = (leader + 1) % 3;
	order[0] = victim;
	order[1] = leader;
	order[2] = (leader + 2) % 3;
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL_FATAL(
		        vf_proxy_start(cl->m[i].client_port, &px[i], why, sizeof(why)), 0);
	snprintf(snip, sizeof(snip),
	         "endpoints = [\"http://127.0.0.1:%d\", \"http://127.0.0.1:%d\", "
	         "\"http://127.0.0.1:%d\"]; timeout_ms = %d;",
	         vf_proxy_port(px[order[0]]), vf_proxy_port(px[order[1]]),
	         vf_proxy_port(px[order[2]]), ig.req_timeout_ms);
	/* the observer reads through the two servers that stay healthy */
	snprintf(osnip, sizeof(osnip),
	         "endpoints = [\"http://127.0.0.1:%d\", \"http://127.0.0.1:%d\"]; timeout_ms = %d;",
	         cl->m[order[1]].client_port, cl->m[order[2]].client_port, ig.req_timeout_ms);
	CU_ASSERT_EQUAL_FATAL(ig_open(osnip, &okv, &e), VF_OK);
	ig.kv = okv;
	fc_init(&fc, "f14");
	fc.snippet = snip;
	snprintf(key, sizeof(key), "%srejoin", fc.prefix);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[0], &fc, "m1", 1, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[1], &fc, "h1", 0, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fn_spawn(&n[2], &fc, "h2", 0, NULL, NULL), 0);
	FN_OK(&n[1], "create", "v", NULL);
	FN_OK(&n[1], "mount", "v", "c1");
	sv = ig_value(fc.prefix, "server", "v");
	CU_ASSERT_FATAL(sv != NULL && strncmp(sv, "m1", 2) == 0);
	free(sv);
	CU_ASSERT_EQUAL_FATAL(ig_dirfs_servers(fc.dir, "v"), 1);

	/* 2 TTLs + 5 s: past the TTL and past Consul's own grace (it may end a
	 * session up to 2 TTLs late), and past serf's failure detection */
	hold_ms = 2L * fc.ttl_s * 1000 + 5000;
	op_at_ms = (int64_t)fc.ttl_s * 1000 + 3000;
	/* a mount or unmount through [victim, healthy, healthy]: the victim costs at
	 * most one request timeout per request; a few requests each, and slack */
	op_bound = 6L * ig.req_timeout_ms * ig.slow + 5000;
	/* 0: the first endpoint (a follower) paused; 1: black-holed; 2: whichever
	 * server leads then paused (an election; "No cluster leader" meanwhile) */
	for (int f = 0; f < 3; f++) {
		static const char *const what[] = {
		        "(first endpoint, a follower) SIGSTOPped",
		        "(first endpoint, a follower) black-holed",
		        "(the leader) SIGSTOPped",
		};
		int lost0 = fn_log_count(&n[0], "LOST"), who = victim;

		if (f == 2) {
			who = -1;
			for (int64_t end = vf_now_ms() + 30000L * ig.slow;
			     who < 0 && vf_now_ms() < end;)
				if ((who = vf_srv_leader(cl)) < 0)
					vf_test_sleep_ms(100);
			CU_ASSERT_FATAL(who >= 0);
		}
		if (f == 1) {
			vf_proxy_blackhole(px[who]);
		} else {
			CU_ASSERT_EQUAL_FATAL(vf_srv_member_pause(cl, who), 0);
		}
		cm_hold(&fc, &n[2], hold_ms, op_at_ms, &r[f]);
		if (f == 1) {
			vf_proxy_restore(px[who]);
		} else {
			CU_ASSERT_EQUAL(vf_srv_member_resume(cl, who), 0);
		}
		/* the server is back before the next fault (a loss reported late
		 * counts too) */
		CU_ASSERT_FATAL(cm_rejoined(cl, who, key, 60000 * ig.slow));
		r[f].lost = fn_log_count(&n[0], "LOST") - lost0;
		ig_note("case 14, Consul server n%d %s for %" PRId64
		        " ms: manager lease %s, %" PRId64 " ms without exactly one live server; "
		        "a mount %" PRId64 " ms into it took %" PRId64 " ms, the unmount %" PRId64
		        " ms (bound %" PRId64 " ms)%s%s",
		        who, what[f], hold_ms, r[f].lost ? "LOST" : "kept", r[f].down_ms, op_at_ms,
		        r[f].mount_ms, r[f].umount_ms, op_bound, r[f].msg[0] ? ": " : "", r[f].msg);
		CU_ASSERT_EQUAL(r[f].lost, 0);
		CU_ASSERT_EQUAL(r[f].down_ms, 0);
		CU_ASSERT(r[f].mount_ms >= 0 && r[f].mount_ms <= op_bound);
		CU_ASSERT(r[f].umount_ms >= 0 && r[f].umount_ms <= op_bound);
		CU_ASSERT_EQUAL(ig_num(fc.prefix, "gref", "v"), 1);
		CU_ASSERT_EQUAL(ig_clients(fc.prefix, "v"), 1);
		CU_ASSERT_EQUAL(ig_dirfs_servers(fc.dir, "v"), 1);
	}
	pr = (struct fprobe){&fc, n, 3, 2};
	ip = fp_of(&pr);
	CU_ASSERT(ig_invariants(&ip, fc.prefix, "v", 20000));
	FN_OK(&n[1], "unmount", "v", "c1");
	CU_ASSERT(ig_settled(&ip, fc.prefix, "v", 20000));
	fc_end(n, 3, &fc);
	ig.kv = save;
	okv->ops->close(okv);
	for (int i = 0; i < 3; i++)
		vf_proxy_stop(&px[i]);
	vf_srv_stop(&cl);
}

/* ---- registration ---- */
static int fc_selected(const char *fn)
{
	const char *only = getenv("VFILE_INTEG_CASES");
	char buf[512], *save = NULL;

	if (only == NULL || *only == '\0')
		return 1;
	snprintf(buf, sizeof(buf), "%s", only);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (strstr(fn, t) != NULL)
			return 1;
	return 0;
}
/* Add fn if selected; why not NULL: registered inactive (not run), with why. */
#define FC_ADD_IF(s, fn, why)                                                                      \
	do {                                                                                       \
		if (fc_selected(#fn))                                                              \
			VF_ADD_TEST_IF(s, fn, why);                                                \
	} while (0)
#define FC_ADD(s, fn) FC_ADD_IF(s, fn, NULL)

void vf_test_register(void)
{
	CU_pSuite s;
	char name[64];
	const char *etcd_only, *consul_only;

	ig_setup("integ_faults", 0);
	etcd_only = ig.kind == VF_SRV_ETCD ? NULL : "an etcd case";
	consul_only = ig.kind == VF_SRV_CONSUL ? NULL : "a Consul case";
	atexit(fn_kill_all);
	signal(SIGPIPE, SIG_IGN);
	snprintf(name, sizeof(name), "faults-%s", ig.backend);
	s = CU_add_suite(name, NULL, NULL);
	if (s == NULL)
		vf_test_abort(name);
	FC_ADD(s, test_host_killed_holding_lock);
	FC_ADD(s, test_serving_manager_killed);
	FC_ADD(s, test_manager_killed_after_claim);
	FC_ADD(s, test_session_invalidated_under_lock);
	FC_ADD_IF(s, test_compacted_while_cut,
	          (ig.kv->ops->caps & VF_KV_CAP_COMPACT) ? NULL : "the backend cannot compact");
	FC_ADD(s, test_store_paused);
	FC_ADD(s, test_store_killed);
	FC_ADD_IF(s, test_cluster_leader_killed, etcd_only);
	FC_ADD(s, test_unmount_store_outage_converges);
	FC_ADD(s, test_restart_after_crash_mid_mount);
	FC_ADD(s, test_restart_releases_ids_without_mount);
	FC_ADD(s, test_no_false_inconsistent_under_load);
	FC_ADD_IF(s, test_etcd_leader_paused_keepalive, etcd_only);
	FC_ADD_IF(s, test_etcd_watch_failover_once, etcd_only);
	FC_ADD_IF(s, test_etcd_watch_past_head, etcd_only);
	FC_ADD_IF(s, test_etcd_no_leader_member, etcd_only);
	FC_ADD_IF(s, test_etcd_watch_revision_not_cut, etcd_only);
	FC_ADD_IF(s, test_etcd_lock_giveback, etcd_only);
	FC_ADD_IF(s, test_consul_member_fault_lease, consul_only);
}
