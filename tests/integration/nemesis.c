/*
 * Issue 12 part 1: the nemesis suite. Several vfnode hosts and managers (real
 * processes, own backend handles and leases) run random mount / unmount / create /
 * remove streams against a multi-member store while a nemesis injects the faults
 * real clusters have; at quiescence the invariants are read straight from the store.
 *
 * Store ($VFILE_INTEG_BACKEND):
 *  - etcd: a 3-member cluster, its peer ports behind proxies of the harness
 *    (vf_srv_partition).
 *  - Consul: 3 server agents (bootstrap_expect 3, not -dev).
 * Every node reaches the store only through its own three proxies (one per member,
 * its three endpoints), so faults can hit one member's links or one host's.
 *
 * Faults (one at a time, random order and lengths from the seed):
 *  cut        every node's connections to one member reset mid-stream
 *  hole       every node's link to one member accepts and never answers
 *  partition  (etcd) one member cut off its peers: no quorum, still answering
 *  kill       (etcd) a random member SIGKILLed, restarted with its data later
 *  leader     (Consul) the leader SIGKILLed, restarted with its data later
 *  restart    (Consul) a server stopped and started again with its data
 *  compact    (etcd) history compacted to the current revision
 *  node-kill  kill -9 of a host or a manager, never restarted (at most one each)
 *  outage     the store unreachable for every node (all links cut or
 *             black-holed) while the hosts only unmount
 *  host-link  one host's links swallow the 1st-3rd request of an unmount and stay
 *             dead past the lease TTL
 * A failed unmount is never retried (Docker does not): the host forgets the mount
 * and retires its id. During a single-member fault (hole, partition, kill, leader,
 * restart) an op sent past a failover grace must not fail for want of the store.
 *
 * At quiescence (faults healed, ops answered; wait bounded by 3 lease TTLs + one
 * op timeout + 5 reconcile periods), per volume, from the store:
 *  - gref == number of client/<vol>/ keys;
 *  - client/<vol>/<host> holds exactly the mount ids the host's answers left it
 *    with (a surviving host; a killed host: what it had, give or take the op in
 *    flight, its failed ops and the ids its background release had not dropped
 *    when it died), and the host's own local mount table agrees;
 *  - gref > 0: Mounted, a server/ key, exactly one live file server;
 *    gref == 0: not Mounted, no live file server;
 *  - no gref/state lock held while every node is idle (observer try-locks);
 *  - a probe mount + unmount from a surviving host works, and the volume settles.
 * History: no mount that answered ok is missing from the store (above), no remove
 * answered ok while a host still had an acknowledged mount of the volume, never
 * two live file servers for one volume longer than one lease TTL (sampled every
 * 100 ms).
 *
 * Sizes: quick (default; make check-nemesis) and full (NEMESIS_FULL=1: >= 1,000
 * ops). Seed: NEMESIS_SEED (printed). One summary line per run ("NEMESIS ...").
 * Exit 0 when every invariant holds, 1 otherwise.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "integ.h"
#include "common_int.h"

#define NM_MAX_NODES 8
#define NM_MAX_VOLS 8
#define NM_IDS 4 /* mount ids per host and volume: "<host>-<k>" */
#define NM_MEMBERS 3
#define NM_NOANSWER 1000
#define NM_MAX_VIOL 64

enum { OP_NONE, OP_MOUNT, OP_UNMOUNT, OP_CREATE, OP_REMOVE, OP_MOUNTS };
static const char *const nm_opname[] = {"-", "mount", "unmount", "create", "remove", "mounts"};

struct nm_node {
	char name[16];
	int manager, alive, killed;
	pid_t pid;
	int in_fd, out_fd;
	char buf[8192];
	size_t len;
	char log[512];
	char snippet[512];               /* its backend settings: its own proxies */
	struct vf_proxy *px[NM_MEMBERS]; /* its links to the store members */
	/* the op in flight */
	int op, vol, k;
	int hl_op;                /* the op is the host-link fault's unmount */
	int64_t sent_ms, next_ms; /* next_ms: think time before the next op */
	/* hosts: mount ids by volume, as the answers left them (bit k) */
	unsigned believed[NM_MAX_VOLS];
	unsigned maybe[NM_MAX_VOLS];     /* killed with this op in flight */
	unsigned failed_un[NM_MAX_VOLS]; /* the id's last op was a failed unmount */
	unsigned failed_mo[NM_MAX_VOLS]; /* ... a failed mount */
	/* ... an unmount answered OK with its release left to the background
	 * ("ok pending"): a host killed before the release keeps the id */
	unsigned pend_un[NM_MAX_VOLS];
};

static struct {
	int full, nhosts, nmgrs, nvols, target_ops, op_phase_s;
	unsigned seed;
	char prefix[64], dir[300];
	int ttl_s, op_timeout_ms, reconcile_ms;
	int nmembers;
	struct nm_node node[NM_MAX_NODES];
	int nnodes;
	char vols[NM_MAX_VOLS][32];

	pthread_mutex_t mu;
	int stop_faults;  /* driver -> nemesis: the op phase is over */
	int unmount_only; /* nemesis -> driver: outage window */
	int unmounts_in_flight;
	int kill_req; /* nemesis -> driver: node index to kill -9, -1 none */
	int killed_host, killed_mgr;
	int decks_played;      /* full passes of the fault deck */
	int decks_played_seen; /* nemesis thread only: decks dealt */
	int healed, nemesis_exit;
	/* single-member faults: two of three members keep quorum, so an op sent more
	 * than grace_ms after the fault began must not fail for want of the store */
	struct {
		int f, m, reported;
		int64_t start, end; /* end 0: still on */
	} ep[128];
	int nep, failover_fails;
	/* hostlink: nemesis asks (hl_req = requests to let through), the driver arms a
	 * host's links and sends it an unmount (hl_host), hl_answered when it answers */
	int hl_req, hl_host, hl_answered;
	int64_t grace_ms;
	pthread_cond_t cv;

	/* counts */
	int ops, ops_ok, noanswer;
	int fails[16]; /* by -code (1..15) */
	int nfault[10];
	/* history violations */
	char viol[NM_MAX_VIOL][512];
	int nviol;
	int64_t overlap_max_ms;
	int sampler_stop;
} nm;

enum {
	F_CUT,
	F_HOLE,
	F_PART,
	F_KILL,
	F_LEADER,
	F_RESTART,
	F_COMPACT,
	F_NODEKILL,
	F_OUTAGE,
	F_HOSTLINK,
	F_N
};
static const char *const nm_fname[] = {"cut",     "hole",    "partition", "kill",   "leader",
                                       "restart", "compact", "node-kill", "outage", "host-link"};

enum { PX_RESTORE, PX_CUT, PX_HOLE };

/* Every node's link to store member m. */
static void nm_px(int m, int action)
{
	for (int i = 0; i < NM_MAX_NODES; i++) {
		struct vf_proxy *p = nm.node[i].px[m];

		if (p == NULL)
			continue;
		if (action == PX_CUT)
			vf_proxy_cut(p);
		else if (action == PX_HOLE)
			vf_proxy_blackhole(p);
		else
			vf_proxy_restore(p);
	}
}

static void nm_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void nm_violation(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&nm.mu);
	if (nm.nviol < NM_MAX_VIOL) {
		va_start(ap, fmt);
		vsnprintf(nm.viol[nm.nviol], sizeof(nm.viol[0]), fmt, ap);
		va_end(ap);
		nm.nviol++;
	}
	pthread_mutex_unlock(&nm.mu);
}

static unsigned nm_rand(unsigned *st, unsigned n)
{
	return n ? (unsigned)(rand_r(st) % n) : 0;
}

/* The history (every op and fault): stdout with NEMESIS_VERBOSE, else this
 * file, printed when the verdict is FAIL (the run's logs do not outlive it). */
static FILE *nm_hist;

static void nm_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void nm_log(const char *fmt, ...)
{
	va_list ap;

	FILE *f = getenv("NEMESIS_VERBOSE") ? stdout : nm_hist;

	if (f == NULL)
		return;
	flockfile(f);
	fprintf(f, "  %7.1f ", (double)vf_now_ms() / 1000.0);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fprintf(f, "\n");
	funlockfile(f);
	fflush(stdout);
}

/* ---- nodes (vfnode processes) ---- */

static void nm_kill_all(void)
{
	for (int i = 0; i < NM_MAX_NODES; i++)
		if (nm.node[i].pid > 0)
			kill(-nm.node[i].pid, SIGKILL);
}

/* One line (without '\n') within ms: 1 got one, 0 timed out, -1 EOF. */
static int nm_line(struct nm_node *n, int ms, char *out, size_t size)
{
	int64_t end = vf_now_ms() + ms;

	for (;;) {
		char *nl = memchr(n->buf, '\n', n->len);

		if (nl) {
			size_t l = (size_t)(nl - n->buf);

			snprintf(out, size, "%.*s", (int)l, n->buf);
			memmove(n->buf, nl + 1, n->len - l - 1);
			n->len -= l + 1;
			return 1;
		}
		int64_t left = end - vf_now_ms();
		struct pollfd pf = {.fd = n->out_fd, .events = POLLIN};

		if (left < 0)
			return 0;
		if (poll(&pf, 1, (int)(left > 200 ? 200 : left)) > 0) {
			ssize_t r = read(n->out_fd, n->buf + n->len, sizeof(n->buf) - 1 - n->len);

			if (r <= 0)
				return -1;
			n->len += (size_t)r;
		} else if (left == 0) {
			return 0;
		}
	}
}

static int nm_spawn(struct nm_node *n, const char *name, int manager)
{
	const char *vfnode = getenv("VFNODE");
	char exe[1024], line[512];
	int in[2], out[2];
	pid_t pid;

	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->manager = manager;
	{
		char eps[300], err[512];
		size_t el = 0;

		for (int i = 0; i < NM_MEMBERS; i++) {
			if (vf_proxy_start(ig.srv->m[i].client_port, &n->px[i], err, sizeof(err)) !=
			    0) {
				fprintf(stderr, "proxy: %s\n", err);
				return -1;
			}
			el += (size_t)snprintf(eps + el, sizeof(eps) - el,
			                       "%s\"http://127.0.0.1:%d\"", i ? ", " : "",
			                       vf_proxy_port(n->px[i]));
		}
		snprintf(n->snippet, sizeof(n->snippet), "endpoints = [%s]; timeout_ms = %d;", eps,
		         ig.req_timeout_ms);
	}
	snprintf(n->log, sizeof(n->log), "%s/%s.log", nm.dir, name);
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
		setenv("VFNODE_CONFIG", n->snippet, 1);
		setenv("VFNODE_PREFIX", nm.prefix, 1);
		setenv("VFNODE_DIR", nm.dir, 1);
		snprintf(num, sizeof(num), "%d", nm.ttl_s);
		setenv("VFNODE_TTL", num, 1);
		snprintf(num, sizeof(num), "%d", nm.op_timeout_ms);
		setenv("VFNODE_TIMEOUT_MS", num, 1);
		snprintf(num, sizeof(num), "%d", nm.reconcile_ms);
		setenv("VFNODE_RECONCILE_MS", num, 1);
		unsetenv("VFNODE_FAILPOINT");
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
	if (nm_line(n, 30000 * ig.slow, line, sizeof(line)) != 1 ||
	    strncmp(line, "ready ", 6) != 0) {
		fprintf(stderr, "\nnode %s did not start (%s); see %s\n", name, line, n->log);
		return -1;
	}
	n->alive = 1;
	return 0;
}

static void nm_node_kill(struct nm_node *n)
{
	int st;

	if (n->pid <= 0)
		return;
	kill(-n->pid, SIGKILL);
	kill(n->pid, SIGKILL);
	waitpid(n->pid, &st, 0);
	n->pid = 0;
	n->alive = 0;
	close(n->in_fd);
	close(n->out_fd);
	n->in_fd = n->out_fd = -1;
}

static int nm_send(struct nm_node *n, int op, int vol, int k)
{
	char line[256];
	int l;

	if (op == OP_MOUNT || op == OP_UNMOUNT)
		l = snprintf(line, sizeof(line), "%s %s %s-%d\n", nm_opname[op], nm.vols[vol],
		             n->name, k);
	else if (op == OP_MOUNTS)
		l = snprintf(line, sizeof(line), "mounts\n");
	else
		l = snprintf(line, sizeof(line), "%s %s\n", nm_opname[op], nm.vols[vol]);
	n->op = op;
	n->vol = vol;
	n->k = k;
	n->sent_ms = vf_now_ms();
	return write(n->in_fd, line, (size_t)l) == l ? 0 : -1;
}

/* Parse an answer line: VF_OK (detail in msg), an error code, or NM_NOANSWER. */
static int nm_parse(const char *line, char *msg, size_t size)
{
	if (strncmp(line, "ok", 2) == 0) {
		snprintf(msg, size, "%s", line[2] ? line + 3 : "");
		return VF_OK;
	}
	if (strncmp(line, "err ", 4) == 0) {
		const char *sp = strchr(line + 4, ' ');
		int code = atoi(line + 4);

		snprintf(msg, size, "%s", sp ? sp + 1 : "");
		return code ? code : VF_EPROTO;
	}
	snprintf(msg, size, "unexpected line '%s'", line);
	return NM_NOANSWER;
}

/* A synchronous command (checks and probes). */
static int nm_call(struct nm_node *n, int op, int vol, int k, char *msg, size_t size)
{
	char line[4096];
	int r;

	if (!n->alive || nm_send(n, op, vol, k) != 0) {
		snprintf(msg, size, "%s is not running", n->name);
		return NM_NOANSWER;
	}
	r = nm_line(n, (nm.op_timeout_ms + 10000) * ig.slow, line, sizeof(line));
	n->op = OP_NONE;
	if (r != 1) {
		snprintf(msg, size, "%s: no answer to %s (%s)", n->name, nm_opname[op],
		         r == 0 ? "timeout" : "EOF");
		return NM_NOANSWER;
	}
	return nm_parse(line, msg, size);
}

/* ---- the model: what answers tell ---- */

static int nm_any_mounted(int v, int *host_r, int *k_r)
{
	for (int h = 0; h < nm.nnodes; h++) {
		struct nm_node *n = &nm.node[h];

		if (n->manager || n->believed[v] == 0)
			continue;
		for (int k = 0; k < NM_IDS; k++)
			if ((n->believed[v] & (1u << k)) &&
			    !(n->op == OP_UNMOUNT && n->vol == v && n->k == k)) {
				*host_r = h;
				*k_r = k;
				return 1;
			}
	}
	return 0;
}

static int nm_episode_begin(int f, int m)
{
	int i;

	pthread_mutex_lock(&nm.mu);
	i = nm.nep < 128 ? nm.nep++ : -1;
	if (i >= 0) {
		nm.ep[i].f = f;
		nm.ep[i].m = m;
		nm.ep[i].reported = 0;
		nm.ep[i].start = vf_now_ms();
		nm.ep[i].end = 0;
	}
	pthread_mutex_unlock(&nm.mu);
	return i;
}

static void nm_episode_end(int i)
{
	pthread_mutex_lock(&nm.mu);
	if (i >= 0)
		nm.ep[i].end = vf_now_ms();
	pthread_mutex_unlock(&nm.mu);
}

/* An op that failed for want of the store while a quorum stayed reachable. */
static void nm_failover_check(const struct nm_node *n, int rc, const char *msg)
{
	if (rc != VF_EUNAVAIL && rc != VF_EUNCERTAIN && rc != VF_ETIMEDOUT && rc != NM_NOANSWER)
		return;
	pthread_mutex_lock(&nm.mu);
	for (int i = 0; i < nm.nep; i++) {
		if (n->sent_ms < nm.ep[i].start + nm.grace_ms ||
		    (nm.ep[i].end && n->sent_ms >= nm.ep[i].end))
			continue;
		nm.failover_fails++;
		if (!nm.ep[i].reported && nm.nviol < NM_MAX_VIOL) {
			char line[512];

			nm.ep[i].reported = 1;
			snprintf(line, sizeof(line),
			         "%s %s %s sent %.1f s into a %s of store member %d (the other two "
			         "held quorum) failed: %d %.200s",
			         n->name, nm_opname[n->op],
			         n->op == OP_MOUNTS ? "" : nm.vols[n->vol],
			         (double)(n->sent_ms - nm.ep[i].start) / 1000.0,
			         nm_fname[nm.ep[i].f], nm.ep[i].m, rc, msg);
			memcpy(nm.viol[nm.nviol++], line, sizeof(line));
		}
		break;
	}
	pthread_mutex_unlock(&nm.mu);
}

static void nm_answer(struct nm_node *n, int rc, const char *msg)
{
	unsigned bit = 1u << n->k;
	int v = n->vol;

	nm_failover_check(n, rc, msg);
	if (n->hl_op) {
		n->hl_op = 0;
		pthread_mutex_lock(&nm.mu);
		nm.hl_answered = 1;
		pthread_mutex_unlock(&nm.mu);
	}

	nm.ops++;
	if (rc == VF_OK)
		nm.ops_ok++;
	else if (rc == NM_NOANSWER)
		nm.noanswer++;
	else if (rc < 0 && -rc < 16)
		nm.fails[-rc]++;
	nm_log("%s %s %s %d -> %d %s", n->name, nm_opname[n->op], nm.vols[v], n->k, rc,
	       rc ? msg : "");
	switch (n->op) {
	case OP_MOUNT:
		if (rc == VF_OK) {
			n->believed[v] |= bit;
			n->failed_mo[v] &= ~bit;
			n->failed_un[v] &= ~bit;
			n->pend_un[v] &= ~bit;
		} else {
			n->failed_mo[v] |= bit;
		}
		break;
	case OP_UNMOUNT:
		pthread_mutex_lock(&nm.mu);
		nm.unmounts_in_flight--;
		pthread_mutex_unlock(&nm.mu);
		/* Docker forgets the mount whatever the answer and never retries */
		n->believed[v] &= ~bit;
		if (rc != VF_OK)
			n->failed_un[v] |= bit;
		else
			n->failed_un[v] &= ~bit;
		if (rc == VF_OK && strcmp(msg, "pending") == 0)
			n->pend_un[v] |= bit;
		else
			n->pend_un[v] &= ~bit;
		break;
	case OP_REMOVE: {
		int h, k;

		if (rc == VF_OK && nm_any_mounted(v, &h, &k))
			nm_violation("remove %s answered ok while %s still had mount %s-%d "
			             "(acknowledged, not unmounted)",
			             nm.vols[v], nm.node[h].name, nm.node[h].name, k);
		break;
	}
	default:
		break;
	}
	n->op = OP_NONE;
}

/* Pick and send the next op of idle host n. */
static void nm_next_op(struct nm_node *n, unsigned *st)
{
	int v = (int)nm_rand(st, (unsigned)nm.nvols), r = (int)nm_rand(st, 100), k;
	int unmount_only;

	pthread_mutex_lock(&nm.mu);
	unmount_only = nm.unmount_only;
	pthread_mutex_unlock(&nm.mu);
	/* outage window: only unmounts (of whatever the host has) */
	if (unmount_only) {
		for (int t = 0; t < nm.nvols; t++) {
			int vv = (v + t) % nm.nvols;

			for (k = 0; k < NM_IDS; k++)
				if (n->believed[vv] & (1u << k)) {
					pthread_mutex_lock(&nm.mu);
					nm.unmounts_in_flight++;
					pthread_mutex_unlock(&nm.mu);
					nm_send(n, OP_UNMOUNT, vv, k);
					return;
				}
		}
		return;
	}
	/* 92%: a random mount id of a random volume flips (mounted: unmount, else
	 * mount), so about half the ids are mounted at any time; else create/remove */
	if (r < 92) {
		k = (int)nm_rand(st, NM_IDS);
		/* an id whose unmount failed is retired, as Docker's ids are (a new
		 * container, a new id): mounting it again would hide the record the
		 * failed unmount left */
		if (!(n->believed[v] & (1u << k)) && (n->failed_un[v] & (1u << k))) {
			nm_send(n, OP_CREATE, v, 0);
			return;
		}
		if (n->believed[v] & (1u << k)) {
			pthread_mutex_lock(&nm.mu);
			nm.unmounts_in_flight++;
			pthread_mutex_unlock(&nm.mu);
			nm_send(n, OP_UNMOUNT, v, k);
		} else {
			nm_send(n, OP_MOUNT, v, k);
		}
		return;
	}
	nm_send(n, r < 96 ? OP_CREATE : OP_REMOVE, v, 0);
}

/* ---- the nemesis ---- */

static void nm_nap(int ms)
{
	vf_test_sleep_ms(ms);
}

static int nm_compact(char *why, size_t size)
{
	struct vf_kv_list l = {0};
	struct vf_err e = {0};
	int rc = ig.kv->ops->list(ig.kv, nm.prefix, &l, &e);

	if (rc == VF_OK && l.revision > 0)
		rc = ig.kv->ops->compact(ig.kv, l.revision, &e);
	vf_kv_list_clear(&l);
	if (rc != VF_OK)
		snprintf(why, size, "%s", e.msg);
	return rc;
}

/* The faults of this backend, one deck: every pass plays each once, in an order
 * shuffled from the seed (node-kill twice: a host, then a manager). */
static int nm_deck(int *deck, unsigned *st)
{
	static const int etcd[] = {F_CUT,      F_HOLE,     F_PART,   F_KILL,     F_COMPACT,
	                           F_NODEKILL, F_NODEKILL, F_OUTAGE, F_HOSTLINK, F_HOSTLINK};
	static const int consul[] = {F_CUT,      F_HOLE,   F_LEADER,   F_RESTART, F_NODEKILL,
	                             F_NODEKILL, F_OUTAGE, F_HOSTLINK, F_HOSTLINK};
	const int *src = ig.kind == VF_SRV_ETCD ? etcd : consul;
	/* Consul's quick run plays host-link once (there it lasts ~1 min) */
	int n = ig.kind == VF_SRV_ETCD ? 10 : nm.full ? 9 : 8;

	memcpy(deck, src, sizeof(int) * (size_t)n);
	for (int i = n - 1; i > 0; i--) {
		int j = (int)nm_rand(st, (unsigned)i + 1), t = deck[i];

		deck[i] = deck[j];
		deck[j] = t;
	}
	return n;
}

static void *nm_nemesis(void *arg)
{
	unsigned st = nm.seed ^ 0x9e3779b9u;
	int deck[16], ndeck = 0, pos = 0;
	char why[512];

	(void)arg;
	for (;;) {
		int f, m, d, stop, e;

		nm_nap(1000 + (int)nm_rand(&st, 2000));
		pthread_mutex_lock(&nm.mu);
		stop = nm.stop_faults;
		pthread_mutex_unlock(&nm.mu);
		if (stop)
			break;
		if (pos == ndeck) {
			if (ndeck) {
				pthread_mutex_lock(&nm.mu);
				nm.decks_played++;
				pthread_mutex_unlock(&nm.mu);
			}
			ndeck = nm_deck(deck, &st);
			pos = 0;
			if (ndeck && nm.decks_played_seen++ > 0)
				continue; /* a pass is over: the driver may end the op phase */
		}
		f = deck[pos++];
		/* the first endpoint is the one every node talks to first: cut off half
		 * the time */
		m = nm_rand(&st, 2) ? 0 : (int)nm_rand(&st, NM_MEMBERS);
		d = 2000 + (int)nm_rand(&st, 4000);
		if (f == F_OUTAGE) /* past the lease TTL, up to past one op timeout */
			d = 2 * nm.ttl_s * 1000 +
			    (int)nm_rand(&st,
			                 (unsigned)(nm.op_timeout_ms + 2000 - 2 * nm.ttl_s * 1000));
		why[0] = '\0';
		switch (f) {
		case F_CUT:
			nm_px(m, PX_CUT);
			nm_nap(200 + d / 4);
			nm_px(m, PX_RESTORE);
			break;
		case F_HOLE:
			/* long enough to outlast the failover grace */
			d = (int)nm.grace_ms + 2000 + (int)nm_rand(&st, 4000);
			e = nm_episode_begin(f, m);
			nm_px(m, PX_HOLE);
			nm_nap(d);
			nm_px(m, PX_RESTORE);
			nm_episode_end(e);
			break;
		case F_PART:
			d = (int)nm.grace_ms + 2000 + (int)nm_rand(&st, 4000);
			if (vf_srv_partition(ig.srv, m, 1, why, sizeof(why)) != 0)
				break;
			e = nm_episode_begin(f, m);
			nm_nap(d);
			vf_srv_partition(ig.srv, m, 0, why, sizeof(why));
			nm_episode_end(e);
			break;
		case F_KILL:
		case F_LEADER:
			if (f == F_LEADER && (m = vf_srv_leader(ig.srv)) < 0)
				m = 0;
			e = nm_episode_begin(f, m);
			vf_srv_member_kill(ig.srv, m);
			nm_nap(d);
			if (vf_srv_member_restart(ig.srv, m, why, sizeof(why)) != 0)
				nm_violation("store member %d did not come back: %s", m, why);
			nm_episode_end(e);
			break;
		case F_RESTART:
			e = nm_episode_begin(f, m);
			if (vf_srv_member_restart(ig.srv, m, why, sizeof(why)) != 0)
				nm_violation("store member %d did not come back: %s", m, why);
			nm_episode_end(e);
			break;
		case F_COMPACT:
			if (nm_compact(why, sizeof(why)) != VF_OK)
				nm_log("compact: %s", why);
			break;
		case F_NODEKILL: {
			/* a host first, then a manager; never restarted */
			int want = -1;

			pthread_mutex_lock(&nm.mu);
			if (!nm.killed_host)
				want = (int)nm_rand(&st, (unsigned)nm.nhosts);
			else if (!nm.killed_mgr && nm.nmgrs > 1)
				want = nm.nhosts + (int)nm_rand(&st, (unsigned)nm.nmgrs);
			if (want >= 0) {
				nm.kill_req = want;
				if (want < nm.nhosts)
					nm.killed_host = 1;
				else
					nm.killed_mgr = 1;
			}
			pthread_mutex_unlock(&nm.mu);
			if (want < 0)
				f = F_CUT, nm_px(m, PX_CUT), nm_nap(300), nm_px(m, PX_RESTORE);
			break;
		}
		case F_OUTAGE: {
			int64_t end = vf_now_ms() + 3000;
			int hole = (int)nm_rand(&st, 2);

			pthread_mutex_lock(&nm.mu);
			nm.unmount_only = 1;
			pthread_mutex_unlock(&nm.mu);
			/* until an unmount is in flight (bounded: a host may have none) */
			for (;;) {
				int n;

				pthread_mutex_lock(&nm.mu);
				n = nm.unmounts_in_flight;
				pthread_mutex_unlock(&nm.mu);
				if (n > 0 || vf_now_ms() > end)
					break;
				nm_nap(2);
			}
			/* somewhere inside the unmount: lock, local unmount, txn, trigger */
			nm_nap((int)nm_rand(&st, 60));
			for (int i = 0; i < NM_MEMBERS; i++)
				nm_px(i, hole ? PX_HOLE : PX_CUT);
			nm_nap(d);
			for (int i = 0; i < NM_MEMBERS; i++)
				nm_px(i, PX_RESTORE);
			pthread_mutex_lock(&nm.mu);
			nm.unmount_only = 0;
			pthread_mutex_unlock(&nm.mu);
			break;
		}
		case F_HOSTLINK: {
			/* one host's links die in the middle of an unmount: n requests of it
			 * pass (the lock, ...), the next is swallowed; down past the lease TTL */
			int64_t end = vf_now_ms() + 5000;
			int h = -1, answered = 0;

			pthread_mutex_lock(&nm.mu);
			nm.hl_req = 1 + (int)nm_rand(&st, 3); /* 1-3: requests 0-2 pass */
			nm.hl_answered = 0;
			while (nm.hl_host < 0 && vf_now_ms() < end) {
				pthread_mutex_unlock(&nm.mu);
				nm_nap(10);
				pthread_mutex_lock(&nm.mu);
			}
			h = nm.hl_host;
			nm.hl_req = 0;
			pthread_mutex_unlock(&nm.mu);
			if (h < 0)
				break;
			m = h;
			for (end = vf_now_ms() + (int64_t)(nm.op_timeout_ms + 5000) * ig.slow;
			     !answered && vf_now_ms() < end;) {
				int holed = 0;

				/* one link swallowed a request: the host's other links die with
				 * it (its retry on another member must not get through) */
				for (int i = 0; i < NM_MEMBERS; i++)
					holed |= vf_proxy_holed(nm.node[h].px[i]);
				for (int i = 0; holed && i < NM_MEMBERS; i++)
					vf_proxy_blackhole(nm.node[h].px[i]);
				nm_nap(2);
				pthread_mutex_lock(&nm.mu);
				answered = nm.hl_answered;
				pthread_mutex_unlock(&nm.mu);
			}
			nm_nap(2 * nm.ttl_s * 1000 + (int)nm_rand(&st, 2000));
			for (int i = 0; i < NM_MEMBERS; i++)
				vf_proxy_restore(nm.node[h].px[i]);
			pthread_mutex_lock(&nm.mu);
			nm.hl_host = -1;
			pthread_mutex_unlock(&nm.mu);
			break;
		}
		}
		pthread_mutex_lock(&nm.mu);
		nm.nfault[f]++;
		pthread_mutex_unlock(&nm.mu);
		nm_log("fault %s member %d %d ms %s", nm_fname[f], m, d, why);
	}
	/* Store members this thread restarted die with it (PR_SET_PDEATHSIG, see
	 * harness.h): stay until the run is over. */
	pthread_mutex_lock(&nm.mu);
	nm.healed = 1;
	while (!nm.nemesis_exit)
		pthread_cond_wait(&nm.cv, &nm.mu);
	pthread_mutex_unlock(&nm.mu);
	return NULL;
}

/* Never two live file servers for one volume longer than one lease TTL. */
static void *nm_sampler(void *arg)
{
	int64_t since[NM_MAX_VOLS] = {0};
	int reported[NM_MAX_VOLS] = {0};

	(void)arg;
	for (;;) {
		int stop;

		pthread_mutex_lock(&nm.mu);
		stop = nm.sampler_stop;
		pthread_mutex_unlock(&nm.mu);
		if (stop)
			break;
		for (int v = 0; v < nm.nvols; v++) {
			int64_t now = vf_now_ms();

			if (ig_dirfs_servers(nm.dir, nm.vols[v]) < 2) {
				since[v] = 0;
				reported[v] = 0;
				continue;
			}
			if (since[v] == 0)
				since[v] = now;
			pthread_mutex_lock(&nm.mu);
			if (now - since[v] > nm.overlap_max_ms)
				nm.overlap_max_ms = now - since[v];
			pthread_mutex_unlock(&nm.mu);
			if (!reported[v] && now - since[v] > (int64_t)nm.ttl_s * 1000) {
				reported[v] = 1;
				nm_violation(
				        "%s served by two live servers for more than one lease "
				        "TTL (%d s)",
				        nm.vols[v], nm.ttl_s);
			}
		}
		vf_test_sleep_ms(100);
	}
	return NULL;
}

/* ---- the driver ---- */

static void nm_drive(void)
{
	unsigned st = nm.seed;
	int64_t end = vf_now_ms() + (int64_t)nm.op_phase_s * 1000 * ig.slow;
	int sent = 0;

	for (;;) {
		struct pollfd pf[NM_MAX_NODES];
		int who[NM_MAX_NODES], np = 0, busy = 0, kill_req, hl_req;
		int more, decks;

		pthread_mutex_lock(&nm.mu);
		decks = nm.decks_played;
		pthread_mutex_unlock(&nm.mu);
		/* until the op count and one full pass of the faults, within the cap */
		more = (sent < nm.target_ops || decks < 1) && vf_now_ms() < end;

		pthread_mutex_lock(&nm.mu);
		kill_req = nm.kill_req;
		nm.kill_req = -1;
		pthread_mutex_unlock(&nm.mu);
		if (kill_req >= 0 && nm.node[kill_req].alive) {
			struct nm_node *n = &nm.node[kill_req];

			if (n->op == OP_MOUNT || n->op == OP_UNMOUNT)
				n->maybe[n->vol] |= 1u << n->k;
			if (n->op == OP_UNMOUNT) {
				pthread_mutex_lock(&nm.mu);
				nm.unmounts_in_flight--;
				pthread_mutex_unlock(&nm.mu);
			}
			nm_log("kill -9 %s (op %s in flight)", n->name, nm_opname[n->op]);
			nm_node_kill(n);
			n->killed = 1;
			n->op = OP_NONE;
		}
		pthread_mutex_lock(&nm.mu);
		hl_req = nm.hl_req && nm.hl_host < 0 ? nm.hl_req : 0;
		pthread_mutex_unlock(&nm.mu);
		for (int i = 0; hl_req && i < nm.nnodes; i++) {
			struct nm_node *n = &nm.node[i];
			int v = 0, k = 0;

			if (!n->alive || n->manager || n->op != OP_NONE)
				continue;
			while (v < nm.nvols && !n->believed[v])
				v++;
			if (v == nm.nvols)
				continue;
			while (!(n->believed[v] & (1u << k)))
				k++;
			for (int j = 0; j < NM_MEMBERS; j++)
				vf_proxy_hole_after(n->px[j], hl_req - 1);
			pthread_mutex_lock(&nm.mu);
			nm.hl_host = i;
			nm.hl_req = 0;
			nm.unmounts_in_flight++;
			pthread_mutex_unlock(&nm.mu);
			nm_log("host-link: %s unmounts %s-%d, its links die after %d request(s)",
			       n->name, n->name, k, hl_req - 1);
			nm_send(n, OP_UNMOUNT, v, k);
			n->hl_op = 1;
			sent++;
			break;
		}
		for (int i = 0; i < nm.nnodes; i++) {
			struct nm_node *n = &nm.node[i];

			if (!n->alive || n->manager)
				continue;
			if (n->op == OP_NONE && more && vf_now_ms() >= n->next_ms) {
				nm_next_op(n, &st);
				if (n->op != OP_NONE)
					sent++;
			}
			if (n->op != OP_NONE) {
				busy++;
				/* an op past its own timeout (plus slack) has no answer */
				if (vf_now_ms() - n->sent_ms >
				    (int64_t)(2 * nm.op_timeout_ms + 10000) * ig.slow) {
					/* killed: a late answer would pass for the next op's */
					nm_violation(
					        "%s: %s %s did not answer within 2 op timeouts "
					        "(node killed)",
					        n->name, nm_opname[n->op], nm.vols[n->vol]);
					if (n->op == OP_MOUNT || n->op == OP_UNMOUNT)
						n->maybe[n->vol] |= 1u << n->k;
					nm_answer(n, NM_NOANSWER, "no answer");
					nm_node_kill(n);
					n->killed = 1;
					busy--;
					continue;
				}
				pf[np] = (struct pollfd){.fd = n->out_fd, .events = POLLIN};
				who[np++] = i;
			}
		}
		if (!more && busy == 0)
			break;
		if (np == 0) {
			vf_test_sleep_ms(20);
			continue;
		}
		if (poll(pf, (nfds_t)np, 100) <= 0)
			continue;
		for (int j = 0; j < np; j++) {
			struct nm_node *n = &nm.node[who[j]];
			char line[4096], msg[4096];
			int r;

			if (!(pf[j].revents & (POLLIN | POLLHUP)))
				continue;
			r = nm_line(n, 0, line, sizeof(line));
			if (r == 1) {
				nm_answer(n, nm_parse(line, msg, sizeof(msg)), msg);
				n->next_ms = vf_now_ms() + 50 + nm_rand(&st, 300);
			} else if (r < 0) {
				nm_violation("%s exited unasked during %s %s; see %s", n->name,
				             nm_opname[n->op], nm.vols[n->vol], n->log);
				if (n->op == OP_MOUNT || n->op == OP_UNMOUNT)
					n->maybe[n->vol] |= 1u << n->k;
				nm_node_kill(n);
				n->killed = 1;
				n->op = OP_NONE;
			}
		}
	}
}

/* ---- the checks ---- */

/* Mount ids ("<host>-<k>") in a client/<vol>/<host> value, as bits; an id of
 * another host sets *foreign_r. */
static unsigned nm_ids(const char *value, const char *host, int *foreign_r)
{
	const char *p = value ? strstr(value, "\"ids\"") : NULL;
	const char *end = p ? strchr(p, ']') : NULL;
	size_t hl = strlen(host);
	unsigned bits = 0;

	*foreign_r = 0;
	p = p ? strchr(p + 5, '"') : NULL;
	while (p && end && p < end) {
		const char *q = strchr(p + 1, '"');
		char id[64];

		if (q == NULL || q > end)
			break;
		snprintf(id, sizeof(id), "%.*s", (int)(q - p - 1), p + 1);
		if (strncmp(id, host, hl) == 0 && id[hl] == '-' && atoi(id + hl + 1) < NM_IDS)
			bits |= 1u << atoi(id + hl + 1);
		else if (!(strncmp(id, host, hl) == 0 && id[hl] == '-' &&
		           atoi(id + hl + 1) == NM_IDS)) /* <host>-NM_IDS: the probe's */
			*foreign_r = 1;
		p = strchr(q + 1, '"');
	}
	return bits;
}

/* Local mount tables of the surviving hosts (by volume bit). */
static void nm_local_mounts(unsigned local[NM_MAX_NODES])
{
	for (int h = 0; h < nm.nnodes; h++) {
		struct nm_node *n = &nm.node[h];
		char msg[4096], *save = NULL;

		local[h] = 0;
		if (n->manager || !n->alive ||
		    nm_call(n, OP_MOUNTS, 0, 0, msg, sizeof(msg)) != VF_OK)
			continue;
		for (char *t = strtok_r(msg, " ", &save); t; t = strtok_r(NULL, " ", &save))
			for (int v = 0; v < nm.nvols; v++)
				if (strcmp(t, nm.vols[v]) == 0)
					local[h] |= 1u << v;
	}
}

/* Every invariant of volume v now; 1 holds, else 0 with the first broken one in why. */
static int nm_vol_ok(int v, const unsigned local[NM_MAX_NODES], int probe_id, char *why,
                     size_t size)
{
	const char *vol = nm.vols[v];
	int64_t g = ig_num(nm.prefix, "gref", vol);
	int nc = ig_clients(nm.prefix, vol);
	int ns = ig_dirfs_servers(nm.dir, vol);
	char *state = ig_value(nm.prefix, "state", vol),
	     *server = ig_value(nm.prefix, "server", vol);
	int mounted = state && strcmp(state, "Mounted") == 0, ok = 0;

	if (g < 0)
		g = 0;
	if (nc < 0) {
		snprintf(why, size, "%s: the store cannot be read", vol);
		goto out;
	}
	if (g != nc) {
		snprintf(why, size, "%s: gref %" PRId64 " but %d client keys", vol, g, nc);
		goto out;
	}
	for (int h = 0; h < nm.nnodes; h++) {
		struct nm_node *n = &nm.node[h];
		char key[128], *val;
		unsigned have, want = n->believed[v], foreign;
		int f;

		if (n->manager)
			continue;
		snprintf(key, sizeof(key), "%s", vol);
		snprintf(key, sizeof(key), "%s/%s", vol, n->name);
		val = ig_value(nm.prefix, "client", key);
		have = nm_ids(val, n->name, &f);
		foreign = (unsigned)f;
		free(val);
		if (probe_id && h == probe_id - 1)
			continue;
		if (foreign) {
			snprintf(why, size, "%s: client/%s/%s holds ids of another host", vol, vol,
			         n->name);
			goto out;
		}
		/* a killed host cannot converge what failed before it died, nor finish
		 * a release it left to the background: those ids count as uncertain,
		 * like the op in flight when it was killed (vfilectl evict frees them) */
		if (n->killed)
			n->maybe[v] |= n->failed_un[v] | n->failed_mo[v] | n->pend_un[v];
		if ((have & ~n->maybe[v]) != (want & ~n->maybe[v])) {
			unsigned extra = have & ~want, lost = want & ~have;
			int k = 0;

			while (k < NM_IDS && !((extra | lost) & (1u << k)))
				k++;
			snprintf(why, size,
			         "%s: client/%s/%s ids 0x%x, the host's answers left 0x%x (%s "
			         "%s-%d%s)",
			         vol, vol, n->name, have, want,
			         lost & (1u << k) ? "acknowledged mount lost:" : "kept after",
			         n->name, k,
			         lost & (1u << k) ? ""
			         : n->failed_un[v] & (1u << k)
			                 ? " whose unmount failed (never retried)"
			         : n->failed_mo[v] & (1u << k) ? " whose mount failed"
			         : n->pend_un[v] & (1u << k)   ? " whose release was pending"
			         : n->killed                   ? " (host killed)"
			                                       : " answered unmounted");
			goto out;
		}
		if (n->alive && !!(local[h] & (1u << v)) != !!have) {
			snprintf(why, size,
			         "%s: host %s local mount table says %s, its client key "
			         "holds ids 0x%x",
			         vol, n->name, local[h] & (1u << v) ? "mounted" : "not mounted",
			         have);
			goto out;
		}
	}
	if (g > 0 && (!mounted || server == NULL || ns != 1)) {
		snprintf(why, size,
		         "%s: gref %" PRId64 " but state %s, server key %s, %d live servers", vol,
		         g, state ? state : "(absent)", server ? server : "(absent)", ns);
		goto out;
	}
	if (g == 0 && (mounted || ns != 0)) {
		snprintf(why, size, "%s: gref 0 but state %s, server key %s, %d live servers", vol,
		         state ? state : "(absent)", server ? server : "(absent)", ns);
		goto out;
	}
	ok = 1;
out:
	free(state);
	free(server);
	return ok;
}

/* No lock held: every node is idle, so a lock/gref/<vol> or lock/state/<vol> that
 * an observer cannot try-lock is held by a dead lease (or leaked by a live one).
 * Asked through the backend's own lock (Consul keeps released lock keys). */
static struct vf_kv_lease *nm_obs_lease;

static int nm_locks_ok(char *why, size_t size)
{
	static const char *const which[] = {"gref", "state"};
	struct vf_err e = {0};

	if (nm_obs_lease == NULL &&
	    ig.kv->ops->lease_grant(ig.kv, ig.ttl_s, 0, NULL, NULL, &nm_obs_lease, &e) != VF_OK) {
		snprintf(why, size, "observer lease: %.200s", e.msg);
		return 0;
	}
	for (int v = 0; v < nm.nvols; v++)
		for (int w = 0; w < 2; w++) {
			struct vf_kv_lock *lk = NULL;
			char name[128];
			int rc;

			snprintf(name, sizeof(name), "%slock/%s/%s", nm.prefix, which[w],
			         nm.vols[v]);
			memset(&e, 0, sizeof(e));
			rc = ig.kv->ops->lock(ig.kv, nm_obs_lease, name, 0, NULL, 0, NULL, &lk, &e);
			if (rc == VF_OK) {
				ig.kv->ops->unlock(ig.kv, &lk, &e);
				continue;
			}
			if (rc == VF_EBUSY)
				snprintf(why, size, "lock %s is held while every node is idle",
				         name);
			else
				snprintf(why, size, "try-lock %s: %d %.200s", name, rc, e.msg);
			return 0;
		}
	return 1;
}

/* Poll until every volume holds or the bound; returns ms taken or -1 (why: all broken). */
static int64_t nm_settle(int64_t bound_ms, int probe_id, char why[NM_MAX_VOLS + 1][400])
{
	int64_t t0 = vf_now_ms(), end = t0 + bound_ms * ig.slow;

	for (;;) {
		unsigned local[NM_MAX_NODES];
		int all = 1;

		nm_local_mounts(local);
		for (int v = 0; v < nm.nvols; v++) {
			why[v][0] = '\0';
			if (!nm_vol_ok(v, local, probe_id, why[v], 400))
				all = 0;
		}
		why[nm.nvols][0] = '\0';
		if (!nm_locks_ok(why[nm.nvols], 400))
			all = 0;
		if (all)
			return vf_now_ms() - t0;
		if (vf_now_ms() > end)
			return -1;
		vf_test_sleep_ms(250);
	}
}

static int nm_env(const char *name, int def)
{
	const char *v = getenv(name);

	return v && *v ? atoi(v) : def;
}

static int nm_run(void)
{
	char why[NM_MAX_VOLS + 1][400], err[512];
	pthread_t nem, smp;
	int64_t t_quiet, settle_ms, t0;
	int nh, verdict = 1, alive_host = -1;

	printf("NEMESIS seed %u (NEMESIS_SEED=%u reproduces the schedule), %s run\n", nm.seed,
	       nm.seed, nm.full ? "full" : "quick");
	/* the whole run, bounded: ops phase + drain + settle + probes */
	ig_case("nemesis", nm.op_phase_s + 600);
	ig_prefix(nm.prefix, sizeof(nm.prefix));
	snprintf(nm.dir, sizeof(nm.dir), "%s/nemesis", ig.dir);
	mkdir(nm.dir, 0755);
	{
		char hp[400];

		snprintf(hp, sizeof(hp), "%s/history", nm.dir);
		nm_hist = fopen(hp, "w+");
	}
	nm.ttl_s = ig.ttl_s;
	nm.op_timeout_ms = (ig.kind == VF_SRV_CONSUL ? 30000 : 10000) * ig.slow;
	nm.reconcile_ms = 1000;
	/* failover bound: a request timed out on the lost member and one retried on
	 * another, plus a second; Consul: plus a leader election (raft_multiplier 1) */
	nm.grace_ms =
	        (2 * ig.req_timeout_ms + 1000 + (ig.kind == VF_SRV_CONSUL ? 5000 : 0)) * ig.slow;
	nm.nmembers = ig.srv->nmembers;
	for (int v = 0; v < nm.nvols; v++)
		snprintf(nm.vols[v], sizeof(nm.vols[v]), "nv%d", v);
	for (int i = 0; i < nm.nhosts + nm.nmgrs; i++) {
		char name[16];
		int mgr = i >= nm.nhosts;

		snprintf(name, sizeof(name), mgr ? "m%d" : "h%d", mgr ? i - nm.nhosts : i);
		if (nm_spawn(&nm.node[i], name, mgr) != 0)
			return 1;
		nm.nnodes++;
	}
	/* the volumes exist before the streams start (they may be removed later) */
	for (int v = 0; v < nm.nvols; v++) {
		char msg[512];

		if (nm_call(&nm.node[0], OP_CREATE, v, 0, msg, sizeof(msg)) != VF_OK) {
			fprintf(stderr, "create %s: %s\n", nm.vols[v], msg);
			return 1;
		}
	}
	printf("NEMESIS %s: %d hosts, %d managers, %d volumes, store %d members, lease TTL %d "
	       "s, op timeout %d ms\n",
	       ig.backend, nm.nhosts, nm.nmgrs, nm.nvols, nm.nmembers, nm.ttl_s, nm.op_timeout_ms);
	t0 = vf_now_ms();
	pthread_create(&nem, NULL, nm_nemesis, NULL);
	pthread_create(&smp, NULL, nm_sampler, NULL);
	nm_drive();
	pthread_mutex_lock(&nm.mu);
	nm.stop_faults = 1;
	pthread_mutex_unlock(&nm.mu);
	/* the fault in progress heals within its length (<= op timeout + 2 s) plus a
	 * member restart (bounded by the harness's 30 s readiness wait) */
	for (int64_t end = vf_now_ms() + (int64_t)(nm.op_timeout_ms + 40000) * ig.slow;;) {
		int healed;

		pthread_mutex_lock(&nm.mu);
		healed = nm.healed;
		pthread_mutex_unlock(&nm.mu);
		if (healed)
			break;
		if (vf_now_ms() > end) {
			nm_violation("the nemesis did not heal its last fault in time");
			break;
		}
		vf_test_sleep_ms(50);
	}
	for (int i = 0; i < NM_MEMBERS; i++) {
		nm_px(i, PX_RESTORE);
		if (ig.srv->m[i].pid <= 0 &&
		    vf_srv_member_restart(ig.srv, i, err, sizeof(err)) != 0)
			nm_violation("store member %d did not come back: %s", i, err);
	}
	if (ig.kind == VF_SRV_ETCD)
		for (int i = 0; i < NM_MEMBERS; i++)
			vf_srv_partition(ig.srv, i, 0, err, sizeof(err));
	printf("NEMESIS %s: %d ops in %.1f s; faults healed, waiting for quiescence\n", ig.backend,
	       nm.ops, (double)(vf_now_ms() - t0) / 1000.0);
	/* what the code guarantees: a dead node's lease ends within one TTL, the next
	 * reconcile passes (every reconcile_ms) finish what it left, one op may wait a
	 * full op timeout; three TTLs for lease-bound claims on top */
	settle_ms = 3 * (int64_t)nm.ttl_s * 1000 + nm.op_timeout_ms + 5 * nm.reconcile_ms;
	t_quiet = nm_settle(settle_ms, 0, why);
	if (t_quiet < 0) {
		verdict = 0;
		for (int v = 0; v <= nm.nvols; v++)
			if (why[v][0])
				nm_violation("not quiescent after %" PRId64 " ms: %s", settle_ms,
				             why[v]);
	}
	/* probe: a surviving host mounts and unmounts every volume that exists */
	for (int h = 0; h < nm.nhosts; h++)
		if (nm.node[h].alive) {
			alive_host = h;
			break;
		}
	for (int v = 0; alive_host >= 0 && v < nm.nvols; v++) {
		struct nm_node *pn = &nm.node[alive_host];
		char msg[4096], *st = ig_value(nm.prefix, "state", nm.vols[v]);
		int rc, k;

		if (st == NULL) /* removed by the stream: nothing to probe */
			continue;
		free(st);
		k = NM_IDS; /* the probe's own id, never used by the streams */
		rc = nm_call(pn, OP_MOUNT, v, k, msg, sizeof(msg));
		if (rc != VF_OK) {
			nm_violation("%s wedged: probe mount from %s: %d %s", nm.vols[v], pn->name,
			             rc, msg);
			continue;
		}
		rc = nm_call(pn, OP_UNMOUNT, v, k, msg, sizeof(msg));
		if (rc != VF_OK) {
			nm_violation("%s wedged: probe unmount from %s: %d %s", nm.vols[v],
			             pn->name, rc, msg);
		}
	}
	if (t_quiet >= 0 && nm_settle(settle_ms, 0, why) < 0)
		for (int v = 0; v <= nm.nvols; v++)
			if (why[v][0])
				nm_violation("not settled again after the probes within %" PRId64
				             " ms: %s",
				             settle_ms, why[v]);
	pthread_mutex_lock(&nm.mu);
	nm.sampler_stop = 1;
	pthread_mutex_unlock(&nm.mu);
	pthread_join(smp, NULL);
	if (nm.nviol)
		verdict = 0;
	nh = ig_file_lines(nm.dir, "violations");

	/* the one line */
	{
		char faults[300] = "", fails[300] = "";
		size_t fl = 0, el = 0;
		int total = 0;

		for (int f = 0; f < F_N; f++)
			if (nm.nfault[f]) {
				total += nm.nfault[f];
				fl += (size_t)snprintf(faults + fl, sizeof(faults) - fl, "%s%s %d",
				                       fl ? ", " : "", nm_fname[f], nm.nfault[f]);
			}
		for (int c = 1; c < 16; c++)
			if (nm.fails[c])
				el += (size_t)snprintf(fails + el, sizeof(fails) - el, "%s%s %d",
				                       el ? ", " : "", vf_strerror(-c),
				                       nm.fails[c]);
		if (nm.failover_fails)
			el += (size_t)snprintf(fails + el, sizeof(fails) - el,
			                       "%sof which failed past the failover grace %d",
			                       el ? "; " : "", nm.failover_fails);
		if (nm.noanswer)
			el += (size_t)snprintf(fails + el, sizeof(fails) - el, "%sno answer %d",
			                       el ? ", " : "", nm.noanswer);
		printf("NEMESIS %s seed=%u %s: ops %d (ok %d), faults %d [%s], failures [%s], "
		       "quiescence %s%" PRId64 " ms, overlapping servers max %" PRId64
		       " ms (%d starts over a live server), verdict %s (%d violations)\n",
		       ig.backend, nm.seed, nm.full ? "full" : "quick", nm.ops, nm.ops_ok, total,
		       faults, fails[0] ? fails : "none", t_quiet < 0 ? "NOT REACHED in " : "",
		       t_quiet < 0 ? settle_ms : t_quiet, nm.overlap_max_ms, nh,
		       verdict ? "PASS" : "FAIL", nm.nviol);
		for (int i = 0; i < nm.nviol; i++)
			printf("NEMESIS %s VIOLATION %s\n", ig.backend, nm.viol[i]);
		if (!verdict && nm_hist) {
			char hl[2048];

			printf("NEMESIS %s: the run's history:\n", ig.backend);
			fflush(nm_hist);
			rewind(nm_hist);
			while (fgets(hl, sizeof(hl), nm_hist))
				fputs(hl, stdout);
		}
		if (!verdict)
			printf("NEMESIS %s: node logs in %s (VFILE_INTEG_KEEP=1 keeps them)\n",
			       ig.backend, nm.dir);
	}
	for (int i = 0; i < nm.nnodes; i++)
		if (nm.node[i].alive && write(nm.node[i].in_fd, "quit\n", 5) == 5)
			nm_line(&nm.node[i], 15000, err, sizeof(err));
	for (int i = 0; i < nm.nnodes; i++)
		nm_node_kill(&nm.node[i]);
	for (int i = 0; i < nm.nnodes; i++)
		for (int j = 0; j < NM_MEMBERS; j++)
			vf_proxy_stop(&nm.node[i].px[j]);
	if (nm_obs_lease)
		ig.kv->ops->lease_revoke(ig.kv, &nm_obs_lease, NULL);
	pthread_mutex_lock(&nm.mu);
	nm.nemesis_exit = 1;
	pthread_cond_broadcast(&nm.cv);
	pthread_mutex_unlock(&nm.mu);
	pthread_join(nem, NULL);
	ig_case("nemesis", 0);
	if (nm_hist)
		fclose(nm_hist);
	nm_hist = NULL;
	return verdict ? 0 : 1;
}

static void test_nemesis(void)
{
	CU_ASSERT_EQUAL(nm_run(), 0);
}

void vf_test_register(void)
{
	static struct vf_srv_opts so = {.peer_proxies = 1};
	CU_pSuite s;
	char name[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&nm.mu, NULL);
	pthread_cond_init(&nm.cv, NULL);
	nm.kill_req = -1;
	nm.hl_host = -1;
	nm.full = nm_env("NEMESIS_FULL", 0);
	nm.seed = (unsigned)nm_env("NEMESIS_SEED", (int)(time(NULL) ^ getpid()));
	nm.nhosts = nm.full ? 4 : 3;
	nm.nmgrs = nm.full ? 3 : 2;
	nm.nvols = nm.full ? 6 : 4;
	nm.op_phase_s = nm_env("NEMESIS_SECONDS", nm.full ? 900 : 150);
	ig.srv_opts = &so;
	ig_setup("integ_nemesis", NM_MEMBERS);
	/* quick: fewer on Consul, whose ops are slower (the run stays near 3 min) */
	nm.target_ops = nm_env("NEMESIS_OPS", nm.full                    ? 1200
	                                      : ig.kind == VF_SRV_CONSUL ? 200
	                                                                 : 300);
	atexit(nm_kill_all);
	snprintf(name, sizeof(name), "nemesis-%s", ig.backend);
	s = CU_add_suite(name, NULL, NULL);
	if (s == NULL || CU_add_test(s, "test_nemesis", test_nemesis) == NULL)
		vf_test_abort(name);
}
