/*
 * Test server harness: starts real etcd / Consul servers for the tests on free
 * loopback ports, with temporary data dirs, and always stops them.
 *
 *  - Ports are picked by binding 127.0.0.1:0; readiness is polled with a deadline
 *    (etcd: a leader in /v3/maintenance/status and /health true; Consul: a leader
 *    and the node registered in the catalog). No fixed sleeps.
 *  - Each server process runs in its own process group with its output in
 *    <data dir>/<member>.log. Live servers are killed (whole process group) and
 *    their data dirs removed at exit, on SIGINT/SIGTERM/SIGABRT/SIGSEGV, and, by
 *    PR_SET_PDEATHSIG, when the thread that started them dies: call vf_srv_start
 *    from a thread that lives as long as the server (normally the main thread).
 *  - Server binaries: $ETCD / $CONSUL, else PATH, else /usr/local/bin.
 *
 * Not thread-safe per server: drive one struct vf_srv from one thread at a time.
 */
#ifndef VFILE_TEST_HARNESS_H
#define VFILE_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

enum { VF_SRV_ETCD = 1, VF_SRV_CONSUL = 2 };

#define VF_SRV_MAX_MEMBERS 5

struct vf_srv_opts {
	int auth;             /* 1: start with authentication / ACLs enabled */
	const char *password; /* etcd: password of user "vfile" (NULL: generated) */
	int members;          /* etcd: cluster size (0/1: single member; up to 5) */
	int timeout_ms;       /* timeout_ms written into the config snippet (0: 2000) */
	int ready_timeout_ms; /* bound on start/restart readiness (0: 30000) */
	/* TLS (PEM file paths, copied): etcd serves its client URLs over https only (the
	 * harness polls readiness on a plain --listen-metrics-urls /health); Consul adds
	 * an HTTPS port next to its HTTP one. vf_srv_config then names the https
	 * endpoints (the test adds cacert/cert/key). etcd: not combined with auth. */
	const char *tls_cert, *tls_key; /* server certificate (SAN 127.0.0.1) and key */
	const char *tls_ca;             /* CA that client certificates must chain to */
	int tls_client_auth;            /* 1: clients must present a certificate (etcd
	                                   --client-cert-auth, Consul verify_incoming_https) */
	/* With auth: the vfile user (etcd role) / token (Consul policy: key_prefix write,
	 * session_prefix write, node_prefix read, node "vfile-sessions" write: the node
	 * the Consul driver binds sessions to) is limited to keys under this prefix
	 * (NULL: every key). */
	const char *acl_prefix;
	/* etcd with members > 1: every member's peer URL is a vf_proxy the harness owns
	 * (the member listens on its own peer port, the cluster reaches it through the
	 * proxy), so that vf_srv_partition can cut one member off its peers. */
	int peer_proxies;
};

/* One server process (an etcd member, or the Consul agent). */
struct vf_srv_member {
	char name[16];                    /* "n0", "n1", ... */
	pid_t pid;                        /* 0 when not running; also the process group id */
	int stopped;                      /* SIGSTOPped */
	int client_port;                  /* etcd client URL port / Consul HTTP port */
	int peer_port;                    /* etcd peer port / Consul server RPC port */
	int serf_lan_port, serf_wan_port; /* Consul only */
	int https_port;                   /* Consul with TLS: the HTTPS API port */
	int metrics_port;                 /* etcd with TLS: plain-http /health */
};

struct vf_srv {
	int kind; /* VF_SRV_ETCD or VF_SRV_CONSUL */
	struct vf_srv_opts opts;
	char bin[4096];
	char dir[4096]; /* temp root: per-member data dirs, logs and config files */
	int nmembers;
	struct vf_srv_member m[VF_SRV_MAX_MEMBERS];
	char user_secret[80];  /* etcd password of "vfile" / Consul token with KV rights */
	char admin_secret[80]; /* etcd root password / Consul master token */
	char *config;          /* snippet without credentials */
	char *auth_config[2];  /* [0]: wrong credentials, [1]: right ones */
	struct vf_srv *next;   /* live-server registry */
	char *tls_cert, *tls_key, *tls_ca, *acl_prefix;  /* copies of the opts strings */
	struct vf_proxy *peer_proxy[VF_SRV_MAX_MEMBERS]; /* opts.peer_proxies */
	char member_id[VF_SRV_MAX_MEMBERS][24];          /* etcd member ids (hex), cached */
};

/* Start a server (or cluster). On failure returns -1 with a one-line reason in why. */
int vf_srv_start(int kind, const struct vf_srv_opts *opts, struct vf_srv **srv_r, char *why,
                 size_t whylen);
/* Stop (SIGTERM, SIGKILL after 5 s), reap, remove the data dir, free, clear *srv. */
void vf_srv_stop(struct vf_srv **srv);

/* Freeze / thaw every member (SIGSTOP / SIGCONT of the process groups). */
int vf_srv_pause(struct vf_srv *srv);
int vf_srv_resume(struct vf_srv *srv);
/* SIGKILL every member, keep the data. */
int vf_srv_kill(struct vf_srv *srv);
/* Stop (if running) and start again with the same ports and data, wait until ready. */
int vf_srv_restart(struct vf_srv *srv, char *why, size_t whylen);

/* Cluster members (etcd, opts.members > 1; also valid with one member). Consul with
 * opts.members > 1 runs that many server agents (bootstrap_expect = members, joined
 * over their loopback serf ports, node names n0, n1, ...); one member keeps the
 * single-server setup. */
int vf_srv_member_kill(struct vf_srv *srv, int i);
int vf_srv_member_restart(struct vf_srv *srv, int i, char *why, size_t whylen);
/* Index of the current leader among running members, -1 if none answers. */
int vf_srv_leader(struct vf_srv *srv);
/* etcd with opts.peer_proxies: on = 1 cuts member i off its peers (every connection
 * into its peer port, and every connection it opens to another member, recognised
 * by etcd's X-Server-From header, is dropped), so it loses quorum while its client
 * port still answers; on = 0 heals. -1 with why if not possible. */
int vf_srv_partition(struct vf_srv *srv, int i, int on, char *why, size_t whylen);

/* libconfig settings for the backend group, e.g.
 * endpoints = ["http://127.0.0.1:P"]; timeout_ms = 2000; */
const char *vf_srv_config(const struct vf_srv *srv);
/* The same with credentials: good = 1 right ones, 0 wrong ones (etcd: username /
 * password; Consul: token). NULL if the server was started without auth. */
const char *vf_srv_auth_config(const struct vf_srv *srv, int good);
/* "etcd" / "consul": the backend module and config group name. */
const char *vf_srv_backend_name(const struct vf_srv *srv);
/* The secret the good config carries (tests check it never shows in messages). */
const char *vf_srv_secret(const struct vf_srv *srv);
/* Path of member i's log file (for failure messages). */
const char *vf_srv_log(const struct vf_srv *srv, int i, char *buf, size_t size);

/* Every secret the harness generates (passwords, tokens) is also appended, one a
 * line, to $VFILE_SECRETS_LIST if set, else to $top_builddir/tests/harness/secrets.list
 * when that directory exists: tests/security/secrets.test greps the logs for them. */

/* Kill every live server now (async-signal-safe part of the cleanup). */
void vf_srv_kill_all(void);

/*
 * A loopback TCP proxy in front of a server port, to cut client streams while the
 * server stays up: vf_proxy_cut drops every open connection and, while cut, closes
 * new ones at once (the client sees a reset); vf_proxy_restore lets them through.
 * Runs one thread; every call is bounded.
 */
struct vf_proxy;
int vf_proxy_start(int target_port, struct vf_proxy **p_r, char *why, size_t whylen);
int vf_proxy_port(const struct vf_proxy *p);
/* Snippet like vf_srv_config, with the proxy as the only endpoint. */
const char *vf_proxy_config(const struct vf_proxy *p);
void vf_proxy_cut(struct vf_proxy *p);
void vf_proxy_restore(struct vf_proxy *p);
/* Black hole: new connections are accepted and never answered, open ones are no
 * longer forwarded (the client sees silence, not a reset). vf_proxy_restore ends it:
 * the parked connections are reset, the open ones flow again (after a hole set by
 * vf_proxy_hole_after they are reset too: a request was swallowed). */
void vf_proxy_blackhole(struct vf_proxy *p);
/* Let n more HTTP requests through (counted at their first bytes, on every
 * connection), then turn into a black hole, the (n+1)th request included. */
void vf_proxy_hole_after(struct vf_proxy *p, int n);
/* Is p a black hole now? */
int vf_proxy_holed(struct vf_proxy *p);
/* Drop every connection whose client sent an "X-Server-From: <from>" header (etcd
 * peer traffic from member <from>), now and from now on; NULL clears the list. */
void vf_proxy_block_from(struct vf_proxy *p, const char *from);
/* Connections accepted so far (including those closed while cut). */
int vf_proxy_accepted(struct vf_proxy *p);
void vf_proxy_stop(struct vf_proxy **p);

/* A loopback port no other test on this machine is given while this process runs
 * (a registry shared with tests/e2e/lib.sh, below the ephemeral range; free over
 * TCP and UDP now), or -1. vf_srv_free_ports: the first of n consecutive ones. */
int vf_srv_free_port(void);
int vf_srv_free_ports(int n);

/* Pause (SIGSTOP, waiting until every thread stopped) / resume one member. */
int vf_srv_member_pause(struct vf_srv *srv, int i);
int vf_srv_member_resume(struct vf_srv *srv, int i);

/*
 * A scripted HTTP/1.1 server on a free loopback port, to play a store member that
 * misbehaves: each request is answered by the first route whose path is a prefix
 * of the request's path (NULL or "": any), then the connection is closed.
 *   VF_FAKE_REPLY  status and body (Content-Length) after delay_ms
 *   VF_FAKE_DROP   read the request, then close without a word
 *   VF_FAKE_HANG   read the request, never answer (until vf_fake_stop)
 *   VF_FAKE_CLOSE  close right after accept, before reading anything
 *   VF_FAKE_TRUNCATE  like REPLY, but announce 100 bytes more than the body and
 *                  close after it (a stream that dies mid-way)
 * Routes are copied; vf_fake_set changes a route's mode while it runs.
 */
enum { VF_FAKE_REPLY = 1, VF_FAKE_DROP, VF_FAKE_HANG, VF_FAKE_CLOSE, VF_FAKE_TRUNCATE };
struct vf_fake_route {
	const char *path;
	int mode;
	int delay_ms;
	int status;
	const char *body;
};
struct vf_fake;
int vf_fake_start(const struct vf_fake_route *routes, size_t n, struct vf_fake **f_r, char *why,
                  size_t whylen);
int vf_fake_port(const struct vf_fake *f);
void vf_fake_set(struct vf_fake *f, size_t route, int mode);
/* Requests read so far, and how many of them contained needle (headers or body). */
int vf_fake_requests(struct vf_fake *f);
int vf_fake_saw(struct vf_fake *f, const char *needle);
void vf_fake_stop(struct vf_fake **f);

#endif /* VFILE_TEST_HARNESS_H */
