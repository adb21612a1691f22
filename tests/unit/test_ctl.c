/* vfilectl: argument parsing (usage errors exit 2), help, and whole commands
 * against a fake vfiled on a unix socket (tables, --json, the daemon's Err -> 1,
 * no daemon -> 1 with a clear message). */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "test_int.h"
#include "common_int.h"
#include "ctl_int.h"
#include "vfile/vfile.h"

void vf_test_register_fs(void);

#define ARGV(...) ((char *[]){"vfilectl", __VA_ARGS__, NULL})
/* argc of a NULL-terminated vector */
static int vlen(char **v)
{
	int n = 0;

	while (v[n])
		n++;
	return n;
}

static int parse(int argc, char **argv, struct ctl_args *a, char *msg)
{
	return ctl_parse(argc, argv, a, msg, 256);
}

static void test_parse_ok(void)
{
	struct ctl_args a;
	char msg[256];
	char **v;

	v = ARGV("create", "vol-1", "-o", "size=1G", "--opt=mode=0770");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_CREATE);
	CU_ASSERT_STRING_EQUAL(a.name, "vol-1");
	CU_ASSERT_EQUAL(a.nopts, 2);
	CU_ASSERT_STRING_EQUAL(a.opts[0], "size=1G");
	CU_ASSERT_STRING_EQUAL(a.opts[1], "mode=0770");
	CU_ASSERT_EQUAL(a.json, 0);
	CU_ASSERT_PTR_NULL(a.socket);

	/* global options before or after the command */
	v = ARGV("-s", "/tmp/s.sock", "ls", "--json");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_LS);
	CU_ASSERT_EQUAL(a.json, 1);
	CU_ASSERT_STRING_EQUAL(a.socket, "/tmp/s.sock");
	CU_ASSERT_PTR_NULL(a.name);

	v = ARGV("--config=/etc/x.conf", "mount", "v1");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_MOUNT);
	CU_ASSERT_STRING_EQUAL(a.config, "/etc/x.conf");
	CU_ASSERT_STRING_EQUAL(a.id, CTL_DEFAULT_ID); /* default id */

	v = ARGV("umount", "v1", "--id", "c0ffee", "-t", "5");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_UNMOUNT);
	CU_ASSERT_STRING_EQUAL(a.id, "c0ffee");
	CU_ASSERT_EQUAL(a.timeout_s, 5);

	v = ARGV("remove", "--", "v1");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_RM);
	CU_ASSERT_STRING_EQUAL(a.name, "v1");

	v = ARGV("kv-dump");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_KVDUMP);
	v = ARGV("status", "-j");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_STATUS);
	CU_ASSERT_EQUAL(a.json, 1);
	v = ARGV("inspect", "A.b_c-9");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_INSPECT);
}

static void test_parse_help(void)
{
	struct ctl_args a;
	char msg[256];
	char **v;

	v = ARGV("--help");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.help, 1);
	CU_ASSERT_EQUAL(a.cmd, CTL_NONE);
	v = ARGV("create", "--help"); /* help needs no NAME */
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.help, 1);
	CU_ASSERT_EQUAL(a.cmd, CTL_CREATE);
	v = ARGV("help", "status");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.help, 1);
	CU_ASSERT_EQUAL(a.cmd, CTL_STATUS);
}

static void test_parse_migrate(void)
{
	struct ctl_args a;
	char msg[256];
	char **v;

	v = ARGV("-c", "/etc/a.conf", "migrate", "--to", "b.conf", "--force", "--overwrite");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_MIGRATE);
	CU_ASSERT_STRING_EQUAL(a.config, "/etc/a.conf");
	CU_ASSERT_STRING_EQUAL(a.to, "b.conf");
	CU_ASSERT_EQUAL(a.force, 1);
	CU_ASSERT_EQUAL(a.overwrite, 1);
	v = ARGV("migrate", "--to=c.conf");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(a.to, "c.conf");
	CU_ASSERT_EQUAL(a.force, 0);
	CU_ASSERT_EQUAL(a.overwrite, 0);
}

/* Usage errors: exit 2 and a message naming the problem. */
static void expect_usage(char **argv, const char *want)
{
	struct ctl_args a;
	char msg[256];

	CU_ASSERT_EQUAL(parse(vlen(argv), argv, &a, msg), CTL_EXIT_USAGE);
	if (strstr(msg, want) == NULL) {
		fprintf(stderr, "\n  '%s' lacks '%s'\n", msg, want);
		CU_FAIL("usage message");
	}
}

static void test_parse_usage_errors(void)
{
	expect_usage((char *[]){"vfilectl", NULL}, "no command");
	expect_usage(ARGV("migrate"), "migrate: missing --to OTHER.conf");
	expect_usage(ARGV("migrate", "--to"), "--to needs a config file");
	expect_usage(ARGV("-s", "/x.sock", "migrate", "--to", "b.conf"), "give -c CONFIG, not -s");
	expect_usage(ARGV("migrate", "--to", "b.conf", "vol"), "unexpected argument 'vol'");
	expect_usage(ARGV("ls", "--force"), "unknown option '--force' for ls");
	expect_usage(ARGV("frobnicate"), "unknown command 'frobnicate'");
	expect_usage(ARGV("--bogus"), "unknown option '--bogus'");
	expect_usage(ARGV("ls", "--id"), "unknown option '--id' for ls");
	expect_usage(ARGV("create"), "create: missing volume NAME");
	expect_usage(ARGV("inspect"), "missing volume NAME");
	expect_usage(ARGV("rm", "a", "b"), "unexpected argument 'b'");
	expect_usage(ARGV("ls", "a"), "ls: unexpected argument 'a'");
	expect_usage(ARGV("create", "-bad"), "unknown option '-bad'");
	expect_usage(ARGV("create", "a/b"), "invalid volume name 'a/b'");
	expect_usage(ARGV("create", "_x"), "invalid volume name");
	expect_usage(ARGV("create", "v", "-o", "size"), "invalid -o 'size'");
	expect_usage(ARGV("create", "v", "-o", "=1"), "invalid -o '=1'");
	expect_usage(ARGV("create", "v", "-o", "colour=red"), "unknown option 'colour'");
	expect_usage(ARGV("create", "v", "-o", "si ze=1"), "bad character");
	expect_usage(ARGV("create", "v", "-o", "size=1", "-o", "size=2"), "given twice");
	expect_usage(ARGV("create", "v", "-o"), "-o needs KEY=VALUE");
	expect_usage(ARGV("ls", "-o", "size=1"), "unknown option '-o' for ls");
	expect_usage(ARGV("mount", "v", "--id"), "--id needs a value");
	expect_usage(ARGV("-s", "ls"), "no command given"); /* "ls" taken as the path */
	expect_usage(ARGV("-s"), "-s needs a socket path");
	expect_usage(ARGV("-s", "/a", "-c", "/b", "ls"), "not both");
	expect_usage(ARGV("-t", "0", "ls"), "invalid --timeout");
	char longname[VF_VOLUME_NAME_MAX + 2];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	expect_usage(ARGV("rm", longname), "invalid volume name");
}

/* ---- whole commands against a fake vfiled ---- */

static char sock_dir[PATH_MAX], sock_path[PATH_MAX + 16];
static int srv_fd = -1;
static pthread_t srv_thread;
static volatile int srv_stop;
static char last_path[256], last_body[1024];
static pthread_mutex_t srv_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *get_override; /* a Get answer for the proxy tests (under srv_mu) */

static const char *fake_answer(const char *path)
{
	if (get_override && strcmp(path, "/VolumeDriver.Get") == 0)
		return get_override;
	if (strcmp(path, "/VolumeDriver.List") == 0)
		return "{\"Volumes\":[{\"Name\":\"alpha\",\"Mountpoint\":\"/var/lib/vfile/mounts/"
		       "alpha\"},{\"Name\":\"beta-longer-name\",\"Mountpoint\":\"\"}],\"Err\":"
		       "\"\"}";
	if (strcmp(path, "/VolumeDriver.Get") == 0)
		return "{\"Volume\":{\"Name\":\"alpha\",\"Mountpoint\":\"\",\"Status\":{\"state\":"
		       "\"Mounted\",\"gref\":2,\"clients\":[\"n1\",\"n2\"],\"server\":{\"node\":"
		       "\"m1\",\"addr\":\"10.0.0.1\",\"port\":20001},\"options\":{\"size\":\"1G\"}}"
		       "},"
		       "\"Err\":\"\"}";
	if (strcmp(path, "/VolumeDriver.Remove") == 0)
		return "{\"Err\":\"volume alpha is mounted on n1, n2\"}";
	if (strcmp(path, "/VolumeDriver.Mount") == 0)
		return "{\"Mountpoint\":\"/var/lib/vfile/mounts/alpha\",\"Err\":\"\"}";
	if (strcmp(path, "/VFile.Status") == 0)
		return "{\"Node\":\"n1\",\"Role\":\"manager\",\"Backend\":\"etcd\",\"Lease\":"
		       "\"42\","
		       "\"Manager\":{\"Watchers\":1,\"Servers\":[\"alpha\",\"gamma\"],\"Empty\":[],"
		       "\"None\":{}},\"Membership\":{\"Member\":\"n1\",\"SwarmRole\":\"manager\","
		       "\"Managers\":4,\"State\":\"standby\",\"Why\":\"standby: the cluster has 3 "
		       "members\",\"Changes\":0,\"Members\":[{\"ID\":\"a\",\"Name\":\"m1\","
		       "\"ClientURL\":\"http://10.0.0.1:2379\",\"Learner\":false,\"Healthy\":true},"
		       "{\"ID\":\"b\",\"Name\":\"\",\"ClientURL\":\"\",\"Learner\":true,"
		       "\"Healthy\":false}],\"Reachable\":true},\"Err\":"
		       "\"\"}";
	if (strcmp(path, "/VFile.KVDump") == 0)
		return "{\"Keys\":[{\"Key\":\"vfile/state/alpha\",\"Value\":\"Mounted\",\"ModRev\":"
		       "7},{\"Key\":\"vfile/gref/"
		       "alpha\",\"Value\":\"2\",\"ModRev\":9}],\"Err\":\"\"}";
	if (strcmp(path, "/VolumeDriver.Unmount") == 0)
		return "not json";
	if (strcmp(path, "/VFile.Nodes") == 0)
		return "{\"Nodes\":[{\"Node\":\"h1\",\"Role\":\"\",\"Addr\":\"\",\"Started\":0,"
		       "\"Alive\":false,\"Volumes\":[\"alpha\",\"beta\"]},{\"Node\":\"m1\","
		       "\"Role\":"
		       "\"manager\",\"Addr\":\"10.0.0.1\",\"Started\":86400,\"Alive\":true,"
		       "\"Volumes\":[]}],\"Err\":\"\"}";
	if (strcmp(path, "/VFile.Evict") == 0)
		return "{\"Node\":\"h1\",\"Released\":[{\"Volume\":\"alpha\",\"Ids\":[\"c1\","
		       "\"c2\"],\"GrefBefore\":2,\"GrefAfter\":1}],\"Err\":\"\"}";
	return "{\"Err\":\"\"}";
}

static void fake_serve_one(int fd)
{
	char req[8192], resp[8192], *hdr_end = NULL, *cl;
	size_t n = 0;
	long want = -1;

	while (n < sizeof(req) - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 5000) <= 0 || (r = read(fd, req + n, sizeof(req) - 1 - n)) <= 0)
			break;
		n += (size_t)r;
		req[n] = '\0';
		if (hdr_end == NULL && (hdr_end = strstr(req, "\r\n\r\n")) != NULL) {
			cl = strcasestr(req, "Content-Length:");
			want = cl ? strtol(cl + 15, NULL, 10) : 0;
		}
		if (hdr_end && (long)(n - (size_t)(hdr_end + 4 - req)) >= want)
			break;
	}
	req[n] = '\0';
	if (hdr_end == NULL)
		return;
	pthread_mutex_lock(&srv_mu);
	sscanf(req, "POST %255s", last_path);
	snprintf(last_body, sizeof(last_body), "%s", hdr_end + 4);
	const char *ans = fake_answer(last_path);
	pthread_mutex_unlock(&srv_mu);
	int len = snprintf(resp, sizeof(resp),
	                   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                   strlen(ans), ans);
	if (write(fd, resp, (size_t)len) != len)
		fprintf(stderr, "fake vfiled: short write\n");
}

static void *fake_vfiled(void *arg)
{
	while (!srv_stop) {
		struct pollfd p = {.fd = srv_fd, .events = POLLIN};

		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(srv_fd, NULL, NULL);
		if (fd < 0)
			continue;
		fake_serve_one(fd);
		close(fd);
	}
	return NULL;
}

/* Run vfilectl with argv; captures stdout/stderr. */
static int ctl(char **out_r, char **err_r, char **argv)
{
	int argc = vlen(argv);
	size_t no, ne;
	FILE *o = open_memstream(out_r, &no), *e = open_memstream(err_r, &ne);
	int rc = ctl_main(argc, argv, o, e);

	fclose(o);
	fclose(e);
	return rc;
}

#define CTL(out, err, ...) ctl(&out, &err, ARGV(__VA_ARGS__))

static void test_run_version(void)
{
	char *out = NULL, *err = NULL;

	CU_ASSERT_EQUAL(CTL(out, err, "--version"), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(out, "vfilectl (" PACKAGE_NAME ") " PACKAGE_VERSION "\n");
	CU_ASSERT_STRING_EQUAL(err, "");
	free(out);
	free(err);
	CU_ASSERT_EQUAL(CTL(out, err, "--help"), CTL_EXIT_OK);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "--version"));
	free(out);
	free(err);
}

static void test_run_tables(void)
{
	char *out = NULL, *err = NULL;

	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "ls"), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(out, "NAME              MOUNTPOINT\n"
	                            "alpha             /var/lib/vfile/mounts/alpha\n"
	                            "beta-longer-name  -\n");
	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT_STRING_EQUAL(last_path, "/VolumeDriver.List");
	free(out);
	free(err);

	CU_ASSERT_EQUAL(CTL(out, err, "inspect", "alpha", "--socket", sock_path), CTL_EXIT_OK);
	CU_ASSERT(strstr(out, "State:       Mounted\n") != NULL);
	CU_ASSERT(strstr(out, "Refs:        2\n") != NULL);
	CU_ASSERT(strstr(out, "Hosts:       n1, n2\n") != NULL);
	CU_ASSERT(strstr(out, "Server:      10.0.0.1:20001 (on m1)\n") != NULL);
	CU_ASSERT(strstr(out, "Options:     size=1G\n") != NULL);
	CU_ASSERT_STRING_EQUAL(last_body, "{\"Name\":\"alpha\"}");
	free(out);
	free(err);

	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "status"), CTL_EXIT_OK);
	CU_ASSERT(strstr(out, "Role:        manager\n") != NULL);
	CU_ASSERT(strstr(out, "Lease:       42\n") != NULL);
	CU_ASSERT(strstr(out, "Watchers:    1\n") != NULL);
	CU_ASSERT(strstr(out, "Servers:     alpha, gamma\n") != NULL);
	/* issue 15: the embedded cluster's membership, the members as a table */
	CU_ASSERT(strstr(out, "Membership:  standby (member n1; this node a manager of 4 managers; "
	                      "0 changes)\n") != NULL);
	CU_ASSERT(strstr(out, "Reason:      standby: the cluster has 3 members\n") != NULL);
	CU_ASSERT(strstr(out,
	                 "Members:\n"
	                 "  NAME           CLIENT URL            ROLE     HEALTH\n"
	                 "  m1             http://10.0.0.1:2379  voter    healthy\n"
	                 "  (not started)  -                     learner  unhealthy\n") != NULL);
	free(out);
	free(err);

	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "kv-dump"), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(out, "KEY                MODREV  VALUE\n"
	                            "vfile/state/alpha  7       Mounted\n"
	                            "vfile/gref/alpha   9       2\n");
	free(out);
	free(err);

	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "mount", "alpha"), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(out, "/var/lib/vfile/mounts/alpha\n");
	CU_ASSERT_STRING_EQUAL(last_body, "{\"Name\":\"alpha\",\"ID\":\"vfilectl\"}");
	free(out);
	free(err);

	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "create", "alpha", "-o", "size=1G", "-o",
	                    "mode=0770"),
	                CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(out, "alpha\n");
	CU_ASSERT_STRING_EQUAL(last_body,
	                       "{\"Name\":\"alpha\",\"Opts\":{\"size\":\"1G\",\"mode\":\"0770\"}}");
	free(out);
	free(err);
}

static void test_run_nodes_evict(void)
{
	char *out = NULL, *err = NULL;
	struct ctl_args a;
	char msg[256];
	char **v;

	v = ARGV("evict", "h1");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(a.node, "h1");
	CU_ASSERT_PTR_NULL(a.name);
	CU_ASSERT_EQUAL(a.evict_force, 0);
	v = ARGV("evict", "--force", "h1", "vol");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(a.name, "vol");
	CU_ASSERT_EQUAL(a.evict_force, 1);
	v = ARGV("evict");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_USAGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "missing NODE"));
	v = ARGV("evict", "h1", "v", "extra");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_USAGE);
	v = ARGV("evict", "h1", "bad/vol");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_USAGE);
	v = ARGV("nodes", "x");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_USAGE);
	v = ARGV("create", "v", "--force");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_USAGE);

	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "nodes"), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(out, "NODE  ROLE     LEASE  STARTED               VOLUMES\n"
	                            "h1    -        GONE   -                     alpha,beta\n"
	                            "m1    manager  alive  1970-01-02T00:00:00Z  -\n");
	CU_ASSERT_STRING_EQUAL(last_path, "/VFile.Nodes");
	free(out);
	free(err);
	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "evict", "h1", "--force"), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(out, "released alpha from h1: mount ids c1, c2; hosts 2 -> 1\n");
	CU_ASSERT_STRING_EQUAL(last_path, "/VFile.Evict");
	CU_ASSERT_STRING_EQUAL(last_body, "{\"Node\":\"h1\",\"Force\":true}");
	free(out);
	free(err);
	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "evict", "h1", "alpha"), CTL_EXIT_OK);
	CU_ASSERT_STRING_EQUAL(last_body, "{\"Name\":\"alpha\",\"Node\":\"h1\",\"Force\":false}");
	free(out);
	free(err);
}

static void test_run_json_and_errors(void)
{
	char *out = NULL, *err = NULL;

	/* --json: the daemon's answer, pretty */
	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "--json", "status"), CTL_EXIT_OK);
	CU_ASSERT(strncmp(out, "{\n  \"Node\": \"n1\",\n", 18) == 0);
	CU_ASSERT(strstr(out, "\n    \"Servers\": [\n      \"alpha\",\n") != NULL);
	CU_ASSERT(strstr(out, "\n    \"Empty\": [],\n    \"None\": {}\n") != NULL);
	yajl_val t = NULL;
	CU_ASSERT_EQUAL(vf_json_parse(out, strlen(out), &t, NULL), VF_OK);
	CU_ASSERT_STRING_EQUAL(vf_json_str(vf_json_get(t, "Backend", NULL)), "etcd");
	yajl_tree_free(t);
	free(out);
	free(err);

	/* the daemon's Err: exit 1, the message on stderr (and the JSON with --json) */
	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "rm", "alpha"), CTL_EXIT_FAIL);
	CU_ASSERT_STRING_EQUAL(out, "");
	CU_ASSERT_STRING_EQUAL(err, "vfilectl: rm alpha: volume alpha is mounted on n1, n2\n");
	free(out);
	free(err);
	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "-j", "rm", "alpha"), CTL_EXIT_FAIL);
	CU_ASSERT(strstr(out, "\"Err\": \"volume alpha is mounted on n1, n2\"") != NULL);
	free(out);
	free(err);

	/* a garbled answer */
	CU_ASSERT_EQUAL(CTL(out, err, "-s", sock_path, "unmount", "alpha", "--id", "c1"),
	                CTL_EXIT_FAIL);
	CU_ASSERT(strstr(err, "unexpected answer") != NULL);
	CU_ASSERT_STRING_EQUAL(last_body, "{\"Name\":\"alpha\",\"ID\":\"c1\"}");
	free(out);
	free(err);

	/* no daemon */
	char nosock[PATH_MAX + 32];
	snprintf(nosock, sizeof(nosock), "%s/missing.sock", sock_dir);
	CU_ASSERT_EQUAL(CTL(out, err, "-s", nosock, "ls"), CTL_EXIT_FAIL);
	char want[PATH_MAX + 96];
	snprintf(want, sizeof(want), "vfilectl: vfiled is not running (no socket at %s)\n", nosock);
	CU_ASSERT_STRING_EQUAL(err, want);
	free(out);
	free(err);
	/* a socket file nobody listens on */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	CU_ASSERT_FATAL(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/dead.sock", sock_dir) <
	                (int)sizeof(sa.sun_path));
	CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	CU_ASSERT_EQUAL(CTL(out, err, "-s", sa.sun_path, "status"), CTL_EXIT_FAIL);
	CU_ASSERT(strstr(err, "vfiled is not running (nothing listens on") != NULL);
	free(out);
	free(err);

	/* usage errors print the command's usage; help goes to stdout */
	CU_ASSERT_EQUAL(CTL(out, err, "create"), CTL_EXIT_USAGE);
	CU_ASSERT(strstr(err, "missing volume NAME") != NULL);
	CU_ASSERT(strstr(err, "Usage: vfilectl [GLOBAL OPTIONS] create NAME") != NULL);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(CTL(out, err, "--help"), CTL_EXIT_OK);
	CU_ASSERT(strstr(out, "Usage: vfilectl") != NULL);
	CU_ASSERT(strstr(out, "kv-dump") != NULL);
	CU_ASSERT_STRING_EQUAL(err, "");
	free(out);
	free(err);
	CU_ASSERT_EQUAL(CTL(out, err, "unmount", "--help"), CTL_EXIT_OK);
	CU_ASSERT(strstr(out, "--id ID") != NULL);
	free(out);
	free(err);

	/* -c: the socket comes from the config file; a bad file is an error naming it */
	char conf[PATH_MAX + 32], text[PATH_MAX + 128];
	snprintf(conf, sizeof(conf), "%s/ctl.conf", sock_dir);
	snprintf(text, sizeof(text), "backend = \"etcd\";\nplugin_socket = \"%s\";\n", sock_path);
	FILE *f = fopen(conf, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
	CU_ASSERT_EQUAL(CTL(out, err, "-c", conf, "ls"), CTL_EXIT_OK);
	CU_ASSERT(strstr(out, "alpha") != NULL);
	free(out);
	free(err);
	f = fopen(conf, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("backend = \"etcd\";\nplugin_socket = 5;\n", f);
	fclose(f);
	CU_ASSERT_EQUAL(CTL(out, err, "-c", conf, "ls"), CTL_EXIT_FAIL);
	CU_ASSERT(strstr(err, "ctl.conf:2") != NULL);
	CU_ASSERT(strstr(err, "plugin_socket") != NULL);
	free(out);
	free(err);
}

/* ---- vfilectl proxy against the fake vfiled and a local TCP "server" ---- */

static char get_buf[2][512];

/* The fake's Get answer: a live server 127.0.0.1:port with lease (port 0: none). */
static void set_server(int slot, int port, const char *lease)
{
	if (port)
		snprintf(get_buf[slot], sizeof(get_buf[slot]),
		         "{\"Volume\":{\"Name\":\"alpha\",\"Status\":{\"state\":\"Mounted\","
		         "\"server\":{\"node\":\"m1\",\"addr\":\"127.0.0.1\",\"port\":%d,"
		         "\"lease\":\"%s\"}}},\"Err\":\"\"}",
		         port, lease);
	else
		snprintf(get_buf[slot], sizeof(get_buf[slot]),
		         "{\"Volume\":{\"Name\":\"alpha\",\"Status\":{\"state\":\"Mounted\"}},"
		         "\"Err\":\"\"}");
	pthread_mutex_lock(&srv_mu);
	get_override = get_buf[slot];
	pthread_mutex_unlock(&srv_mu);
}

static int tcp_listen(int *port_r)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	*port_r = ntohs(sa.sin_port);
	return fd;
}

/* Run "vfilectl -s SOCK proxy alpha ARGS..." in a child with stdin/stdout on pipes. */
static pid_t proxy_start(int *to_r, int *from_r, const char *wait_ms)
{
	int in[2], out[2];
	pid_t pid;

	if (pipe(in) != 0 || pipe(out) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		char *argv[] = {"vfilectl", "-s",        sock_path,       "proxy",
		                "alpha",    "--wait-ms", (char *)wait_ms, "--check-ms",
		                "100",      NULL};
		FILE *e = fopen("/dev/null", "w");

		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		_exit(ctl_main(9, argv, stdout, e ? e : stderr));
	}
	close(in[0]);
	close(out[1]);
	*to_r = in[1];
	*from_r = out[0];
	return pid;
}

/* Read exactly n bytes within 10 s. */
static int read_n(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, 10000) <= 0 || (r = read(fd, buf + got, n - got)) <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int wait_exit(pid_t pid, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		poll(NULL, 0, 10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static void test_proxy(void)
{
	int port = 0, lfd = tcp_listen(&port), to = -1, from = -1, conn;
	char buf[16];
	pid_t pid;

	CU_ASSERT_FATAL(lfd >= 0);
	/* relays both ways to the server vfiled names */
	set_server(0, port, "L1");
	pid = proxy_start(&to, &from, "5000");
	CU_ASSERT_FATAL(pid > 0);
	struct pollfd p = {.fd = lfd, .events = POLLIN};
	CU_ASSERT_FATAL(poll(&p, 1, 10000) == 1);
	conn = accept(lfd, NULL, NULL);
	CU_ASSERT_FATAL(conn >= 0);
	CU_ASSERT_EQUAL(write(to, "hello", 5), 5);
	CU_ASSERT_EQUAL(read_n(conn, buf, 5), 0);
	CU_ASSERT_EQUAL(memcmp(buf, "hello", 5), 0);
	CU_ASSERT_EQUAL(write(conn, "world", 5), 5);
	CU_ASSERT_EQUAL(read_n(from, buf, 5), 0);
	CU_ASSERT_EQUAL(memcmp(buf, "world", 5), 0);
	/* the store names another server (a new lease): the connection is cut */
	set_server(1, port, "L2");
	CU_ASSERT_EQUAL(wait_exit(pid, 5000), CTL_EXIT_FAIL);
	CU_ASSERT_EQUAL(read(conn, buf, 1), 0); /* EOF at the server */
	close(conn);
	close(to);
	close(from);

	/* no live server: waits --wait-ms, then fails */
	set_server(0, 0, NULL);
	int64_t t0 = vf_now_ms();
	pid = proxy_start(&to, &from, "400");
	CU_ASSERT_EQUAL(wait_exit(pid, 5000), CTL_EXIT_FAIL);
	CU_ASSERT(vf_now_ms() - t0 >= 400);
	close(to);
	close(from);

	/* none at first, one after 300 ms: it waits for it and connects */
	pid = proxy_start(&to, &from, "5000");
	poll(NULL, 0, 300); /* the proxy is polling meanwhile: this is the gap it must span */
	set_server(0, port, "L3");
	CU_ASSERT_FATAL(poll(&p, 1, 10000) == 1);
	conn = accept(lfd, NULL, NULL);
	CU_ASSERT(conn >= 0);
	/* the proxy's stdin ends: it passes the end on, the server closes, it exits 0 */
	close(to);
	CU_ASSERT_EQUAL(read(conn, buf, 1), 0);
	close(conn);
	CU_ASSERT_EQUAL(wait_exit(pid, 5000), CTL_EXIT_OK);
	close(from);
	close(lfd);
	pthread_mutex_lock(&srv_mu);
	get_override = NULL;
	pthread_mutex_unlock(&srv_mu);
}

static void test_parse_proxy(void)
{
	struct ctl_args a;
	char msg[256];
	char **v = ARGV("-s", "/run/v.sock", "proxy", "vol1", "--wait-ms", "2500");

	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.cmd, CTL_PROXY);
	CU_ASSERT_STRING_EQUAL(a.name, "vol1");
	CU_ASSERT_EQUAL(a.wait_ms, 2500);
	CU_ASSERT_EQUAL(a.check_ms, CTL_PROXY_CHECK_MS);
	v = ARGV("proxy", "vol1", "--check-ms=200");
	CU_ASSERT_EQUAL(parse(vlen(v), v, &a, msg), CTL_EXIT_OK);
	CU_ASSERT_EQUAL(a.wait_ms, CTL_PROXY_WAIT_MS);
	CU_ASSERT_EQUAL(a.check_ms, 200);
	expect_usage(ARGV("proxy"), "proxy: missing volume NAME");
	expect_usage(ARGV("proxy", "v", "--wait-ms", "0"), "invalid --wait-ms '0'");
	expect_usage(ARGV("proxy", "v", "--wait-ms"), "--wait-ms needs milliseconds");
	expect_usage(ARGV("proxy", "v", "--check-ms", "x"), "invalid --check-ms 'x'");
	expect_usage(ARGV("ls", "--wait-ms", "5"), "unknown option '--wait-ms' for ls");
}

static int ctl_suite_init(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sock_dir, sizeof(sock_dir), "/tmp/vfile-test-ctl.XXXXXX");
	if (mkdtemp(sock_dir) == NULL)
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/vfile.sock", sock_dir);
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path) >= (int)sizeof(sa.sun_path))
		return -1;
	srv_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv_fd < 0 || bind(srv_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(srv_fd, 8) != 0)
		return -1;
	return pthread_create(&srv_thread, NULL, fake_vfiled, NULL) == 0 ? 0 : -1;
}

static int ctl_suite_clean(void)
{
	char path[PATH_MAX + 32];

	srv_stop = 1;
	pthread_join(srv_thread, NULL);
	close(srv_fd);
	unlink(sock_path);
	snprintf(path, sizeof(path), "%s/dead.sock", sock_dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ctl.conf", sock_dir);
	unlink(path);
	rmdir(sock_dir);
	return 0;
}

void vf_test_register_migrate(void);
void vf_test_register_cluster(void);
void vf_test_register(void)
{
	CU_pSuite s = CU_add_suite("ctl_parse", NULL, NULL);

	vf_test_register_migrate();
	vf_test_register_cluster();

	if (s == NULL)
		vf_test_abort("suite ctl_parse");
	VF_ADD_TEST(s, test_parse_ok);
	VF_ADD_TEST(s, test_parse_help);
	VF_ADD_TEST(s, test_parse_migrate);
	VF_ADD_TEST(s, test_parse_usage_errors);
	s = CU_add_suite("ctl_run", ctl_suite_init, ctl_suite_clean);
	if (s == NULL)
		vf_test_abort("suite ctl_run");
	VF_ADD_TEST(s, test_run_version);
	VF_ADD_TEST(s, test_run_tables);
	VF_ADD_TEST(s, test_run_nodes_evict);
	VF_ADD_TEST(s, test_run_json_and_errors);
	VF_ADD_TEST(s, test_parse_proxy);
	VF_ADD_TEST(s, test_proxy);
	vf_test_register_fs();
}
