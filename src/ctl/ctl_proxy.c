/* vfilectl proxy VOL: the path a host's sshfs mount takes to the volume's current
 * file server (ssh's ProxyCommand, see doc/fileserver.md "Failover").
 *
 * Asks the local vfiled (VolumeDriver.Get, which reads the store) which server is
 * live for VOL, connects to it and relays stdin/stdout to the connection. Without a
 * live server, or when it does not accept, it asks again every CTL_PROXY_POLL_MS
 * until one does, for at most --wait-ms (fileserver.failover_wait_ms): a mount
 * whose server died waits here, inside sshfs' reconnect, for the manager that takes
 * the volume over. While relaying it asks again every --check-ms, and cuts the
 * connection as soon as vfiled answers that another server, or none, is live: a
 * server whose lease is gone is not used any more, and the reconnect that follows
 * reaches the new one. An unanswered question (vfiled restarting) cuts nothing.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common_int.h"
#include "ctl_int.h"

#define CTL_PROXY_POLL_MS 250
#define CTL_PROXY_CONNECT_MS 3000
#define CTL_PROXY_BUF (64 * 1024)

struct ctl_srv {
	char addr[256];
	int port;
	char id[600]; /* "node addr:port lease": another id is another server */
};

/* Ask vfiled for vol's live server. 1 found (*s filled), 0 vfiled answered that
 * none is live (or the volume is gone), -1 no answer. */
static int proxy_lookup(const char *sock, const char *vol, struct ctl_srv *s, FILE *quiet)
{
	char body[300];
	yajl_val resp = NULL, srv;
	const char *addr, *node, *lease, *e;
	int64_t port = 0;
	int r = -1;

	snprintf(body, sizeof(body), "{\"Name\":\"%s\"}", vol); /* name validated: no quoting */
	if (ctl_call(sock, "/VolumeDriver.Get", body, 5, &resp, quiet) != CTL_EXIT_OK)
		return -1;
	e = vf_json_str(vf_json_get(resp, "Err", NULL));
	if (e && e[0]) {
		/* "does not exist" is an answer; a store error is not */
		r = strstr(e, "does not exist") ? 0 : -1;
		goto out;
	}
	srv = vf_json_get(resp, "Volume", "Status", "server", NULL);
	addr = vf_json_str(vf_json_get(srv, "addr", NULL));
	node = vf_json_str(vf_json_get(srv, "node", NULL));
	lease = vf_json_str(vf_json_get(srv, "lease", NULL));
	if (vf_json_get(resp, "Volume", "Status", NULL) == NULL) {
		r = -1;
		goto out;
	}
	if (!YAJL_IS_OBJECT(srv) || addr == NULL || addr[0] == '\0' ||
	    vf_json_int64(vf_json_get(srv, "port", NULL), &port) != VF_OK || port <= 0 ||
	    port > 65535) {
		r = 0;
		goto out;
	}
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	s->port = (int)port;
	snprintf(s->id, sizeof(s->id), "%s %s:%d %s", node ? node : "?", addr, s->port,
	         lease ? lease : "?");
	r = 1;
out:
	yajl_tree_free(resp);
	return r;
}

/* A TCP connection to s within timeout_ms, or -1. */
static int proxy_connect(const struct ctl_srv *s, int timeout_ms)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char ps[16];
	int fd = -1;

	snprintf(ps, sizeof(ps), "%d", s->port);
	if (getaddrinfo(s->addr, ps, &hints, &ai) != 0)
		return -1;
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
		struct pollfd p;
		int soerr = 0, one = 1;
		socklen_t sl = sizeof(soerr);

		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS)
			goto bad;
		p = (struct pollfd){.fd = fd, .events = POLLOUT};
		if (poll(&p, 1, timeout_ms) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
			goto bad;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		continue;
	bad:
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

struct proxy_buf {
	char d[CTL_PROXY_BUF];
	size_t off, len;
};

/* Read what from is ready to give into b (empty). 0 ok, 1 EOF, -1 error. */
static int proxy_fill(int from, struct proxy_buf *b)
{
	ssize_t n = read(from, b->d, sizeof(b->d));

	if (n > 0) {
		b->off = 0;
		b->len = (size_t)n;
		return 0;
	}
	if (n == 0)
		return 1;
	return errno == EAGAIN || errno == EINTR ? 0 : -1;
}

/* Write what to can take of b. 0 ok, -1 error. */
static int proxy_drain(int to, struct proxy_buf *b)
{
	ssize_t n = write(to, b->d + b->off, b->len - b->off);

	if (n > 0) {
		b->off += (size_t)n;
		if (b->off == b->len)
			b->off = b->len = 0;
		return 0;
	}
	return n < 0 && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
}

/* Relay stdin -> fd and fd -> stdout until either side ends, or vfiled names
 * another server (or none) for vol. Returns the exit code. */
static int proxy_relay(const char *sock, const char *vol, int fd, const struct ctl_srv *cur,
                       long check_ms, FILE *quiet, FILE *errf)
{
	static struct proxy_buf up, down; /* stdin -> server, server -> stdout */
	int in_eof = 0, srv_eof = 0, rc = CTL_EXIT_OK;
	int64_t next_check = vf_now_ms() + check_ms;

	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
	for (;;) {
		struct pollfd p[3] = {{.fd = !in_eof && up.len == 0 ? 0 : -1, .events = POLLIN},
		                      {.fd = fd,
		                       .events = (short)((!srv_eof && down.len == 0 ? POLLIN : 0) |
		                                         (up.len ? POLLOUT : 0))},
		                      {.fd = down.len ? 1 : -1, .events = POLLOUT}};
		int64_t left = next_check - vf_now_ms();

		if (srv_eof && down.len == 0)
			break; /* the server closed and all it sent is delivered */
		if (in_eof && up.len == 0 && srv_eof)
			break;
		if (p[1].events == 0)
			p[1].fd = -1;
		if (poll(p, 3, left < 0 ? 0 : (int)left) < 0 && errno != EINTR) {
			rc = CTL_EXIT_FAIL;
			break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int r = proxy_fill(0, &up);

			if (r != 0) { /* ssh is done sending: pass the end on */
				in_eof = 1;
				shutdown(fd, SHUT_WR);
			}
		}
		if (p[1].revents & POLLOUT && proxy_drain(fd, &up) != 0) {
			rc = CTL_EXIT_FAIL;
			break;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR) && down.len == 0) {
			int r = proxy_fill(fd, &down), one = 1;

			/* ACK at once (the kernel drops quick-ack mode on its own, so
			 * after every read): sshd's socket has Nagle on for sftp, so a
			 * reply it writes in two parts waits for our ACK of the first,
			 * which the delayed-ACK timer holds 40 ms (measured: 40 ms of
			 * every ssh login, between the server's host-key notice and
			 * the session's answer) */
			setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));

			if (r < 0) {
				fprintf(errf, "vfilectl proxy %s: connection to %s lost: %s\n", vol,
				        cur->id, strerror(errno));
				rc = CTL_EXIT_FAIL;
				break;
			}
			srv_eof = r == 1;
		}
		if (p[2].revents & (POLLOUT | POLLERR | POLLHUP) && proxy_drain(1, &down) != 0) {
			rc = CTL_EXIT_FAIL; /* ssh went away */
			break;
		}
		if (vf_now_ms() >= next_check) {
			struct ctl_srv now;
			int r = proxy_lookup(sock, vol, &now, quiet);

			if (r == 0 || (r == 1 && strcmp(now.id, cur->id) != 0)) {
				fprintf(errf,
				        "vfilectl proxy %s: the store names %s%s, not %s: cutting "
				        "the connection\n",
				        vol, r ? "the server " : "no live server", r ? now.id : "",
				        cur->id);
				rc = CTL_EXIT_FAIL;
				break;
			}
			next_check = vf_now_ms() + check_ms;
		}
	}
	close(fd);
	return rc;
}

int ctl_proxy(const char *sock, const char *vol, long wait_ms, long check_ms, FILE *errf)
{
	int64_t deadline = vf_now_ms() + wait_ms;
	struct ctl_srv s = {.port = 0};
	FILE *quiet = fopen("/dev/null", "we");
	int fd = -1, r = -1, rc;

	if (quiet == NULL)
		quiet = errf;
	for (;;) {
		r = proxy_lookup(sock, vol, &s, quiet);
		if (r == 1 && (fd = proxy_connect(&s, CTL_PROXY_CONNECT_MS)) >= 0)
			break;
		if (vf_now_ms() >= deadline) {
			fprintf(errf,
			        "vfilectl proxy %s: no live file server accepted within %ld ms "
			        "(%s)\n",
			        vol, wait_ms,
			        r == 1   ? "the named server does not accept connections"
			        : r == 0 ? "the store names none"
			                 : "vfiled does not answer");
			rc = CTL_EXIT_FAIL;
			goto out;
		}
		struct timespec ts = {0, CTL_PROXY_POLL_MS * 1000000L};
		nanosleep(&ts, NULL); /* bounded poll of the store, until the deadline */
	}
	rc = proxy_relay(sock, vol, fd, &s, check_ms, quiet, errf);
out:
	if (quiet != errf)
		fclose(quiet);
	return rc;
}
