/* vfilectl: the admin CLI. Talks to the local vfiled over its plugin socket (the
 * Docker volume plugin endpoints plus /VFile.Status and /VFile.KVDump), prints
 * tables for people and the daemon's JSON (pretty) with --json. migrate talks to
 * the stores directly (src/ctl/migrate.c). */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <yajl/yajl_gen.h>

#include "cluster_int.h"
#include "common_int.h"
#include "config_int.h"
#include "ctl_int.h"
#include "vfile/vfile.h"

struct ctl_cmd_info {
	enum ctl_cmd cmd;
	const char *name;
	const char *alias;
	int takes_name;
	const char *endpoint;
	long timeout_s; /* default bound on the request */
	const char *usage;
};

static const struct ctl_cmd_info ctl_cmds[] = {
        {CTL_CREATE, "create", NULL, 1, "/VolumeDriver.Create", 120,
         "create NAME [-o KEY=VALUE]...\n"
         "  Create a volume. Options: size, mode, uid, gid, fileserver (see the docs).\n"
         "  -o, --opt KEY=VALUE   a create option (repeatable)\n"},
        {CTL_RM, "rm", "remove", 1, "/VolumeDriver.Remove", 120,
         "rm NAME\n"
         "  Remove a volume. Refused while any host has it mounted (the hosts are named).\n"},
        {CTL_LS, "ls", "list", 0, "/VolumeDriver.List", 60,
         "ls\n"
         "  List the volumes: state, hosts counted, where each is mounted on this host.\n"},
        {CTL_INSPECT, "inspect", NULL, 1, "/VolumeDriver.Get", 60,
         "inspect NAME\n"
         "  Show a volume: state, refcount, hosts, file server, options.\n"},
        {CTL_MOUNT, "mount", NULL, 1, "/VolumeDriver.Mount", 300,
         "mount NAME [--id ID]\n"
         "  Mount a volume on this host (for hosts without Docker); prints the mountpoint.\n"
         "  --id ID   the mount's owner (default \"" CTL_DEFAULT_ID "\"); each id counts once\n"},
        {CTL_UNMOUNT, "unmount", "umount", 1, "/VolumeDriver.Unmount", 300,
         "unmount NAME [--id ID]\n"
         "  Drop this host's mount of NAME for ID; the last id unmounts it.\n"
         "  --id ID   the mount's owner (default \"" CTL_DEFAULT_ID "\")\n"},
        {CTL_STATUS, "status", NULL, 0, "/VFile.Status", 60,
         "status\n"
         "  Show the daemon: node, role, backend, lease, watchers, served volumes.\n"},
        {CTL_KVDUMP, "kv-dump", NULL, 0, "/VFile.KVDump", 60,
         "kv-dump\n"
         "  Print every key under the configured prefix with its value and version.\n"},
        {CTL_NODES, "nodes", NULL, 0, "/VFile.Nodes", 60,
         "nodes\n"
         "  List the hosts: role, whether their lease is alive, the volumes each holds.\n"},
        {CTL_EVICT, "evict", NULL, 0, "/VFile.Evict", 300,
         "evict NODE [VOLUME] [--force]\n"
         "  Release the mounts a dead host holds (of VOLUME, or of every volume): its\n"
         "  mount ids and global references, each volume in one transaction under the\n"
         "  volume's lock. Refused while NODE's lease is alive (its vfiled runs).\n"
         "  --force   evict a host whose lease is alive (its mounts lose their record)\n"},
        {CTL_PROXY, "proxy", NULL, 1, NULL, 0,
         "proxy NAME [--wait-ms MS] [--check-ms MS]\n"
         "  Relay stdin/stdout to the live file server of NAME, as named by vfiled (the\n"
         "  ssh ProxyCommand of the sftp driver's mounts; see vfilectl(8)). Waits up to\n"
         "  --wait-ms (default 60000) for a live server that accepts; cuts the\n"
         "  connection when vfiled names another server or none (asked every\n"
         "  --check-ms, default 1000).\n"},
        {CTL_MIGRATE, "migrate", NULL, 0, NULL, 0,
         "migrate --to OTHER.conf [--force] [--overwrite]\n"
         "  Copy every volume from the store of the config (-c, default\n"
         "  " VF_CONF_DEFAULT_FILE ") to the store of OTHER.conf, then verify the\n"
         "  copy. Talks to both stores directly (no daemon). Lock keys and keys bound\n"
         "  to a daemon's lease (server/, live claims) are not copied.\n"
         "  --to FILE     the target configuration (its backend and prefix)\n"
         "  --force       copy even while volumes are Mounted (refused otherwise)\n"
         "  --overwrite   replace volumes that already exist on the target\n"},
        {CTL_INIT, "init", NULL, 0, NULL, 0,
         "init\n"
         "  Mark fileserver.export_root of the config (-c, default\n"
         "  " VF_CONF_DEFAULT_FILE ") as the cluster's shared storage: write\n"
         "  <export_root>/" VF_CLUSTER_MARKER " with the cluster id of the store (key\n"
         "  <prefix>" VF_CLUSTER_KEY "), creating the id if the store has none. Managers\n"
         "  refuse to start on an export_root without the marker (the first manager\n"
         "  writes it itself). Refused if the export_root holds another cluster's.\n"
         "  Talks to the store directly (no daemon).\n"},
};
#define CTL_NCMDS (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static const struct ctl_cmd_info *ctl_info(enum ctl_cmd cmd)
{
	for (size_t i = 0; i < CTL_NCMDS; i++)
		if (ctl_cmds[i].cmd == cmd)
			return &ctl_cmds[i];
	return NULL;
}

const char *ctl_cmd_name(enum ctl_cmd cmd)
{
	const struct ctl_cmd_info *ci = ctl_info(cmd);

	return ci ? ci->name : "";
}

void ctl_usage(FILE *f, enum ctl_cmd cmd)
{
	const struct ctl_cmd_info *ci = ctl_info(cmd);

	if (ci) {
		fprintf(f, "Usage: vfilectl [GLOBAL OPTIONS] %s", ci->usage);
		return;
	}
	fprintf(f, "Usage: vfilectl [-s SOCKET | -c CONFIG] [--json] COMMAND [ARGS]\n"
	           "\n"
	           "Administer vfile volumes through the local vfiled.\n"
	           "\n"
	           "Commands:\n");
	for (size_t i = 0; i < CTL_NCMDS; i++) {
		const char *u = ctl_cmds[i].usage, *nl = strchr(u, '\n');

		fprintf(f, "  %.*s\n", (int)(nl - u), u);
	}
	fprintf(f,
	        "\n"
	        "Global options:\n"
	        "  -s, --socket PATH   vfiled's socket (default: plugin_socket of the config,\n"
	        "                      else " CTL_DEFAULT_SOCKET ")\n"
	        "  -c, --config FILE   read plugin_socket from FILE (default " VF_CONF_DEFAULT_FILE
	        ")\n"
	        "  -j, --json          print the daemon's JSON answer (for scripts)\n"
	        "  -t, --timeout SEC   bound on the request (default: 60, mount/unmount 300)\n"
	        "  -h, --help          this help; COMMAND --help for a command's\n"
	        "      --version       print the version and exit\n"
	        "\n"
	        "Exit status: 0 success, 1 the operation failed, 2 usage error.\n");
}

/* ---- parsing (pure) ---- */

static int ctl_bad(char *msg, size_t size, const char *fmt, ...) VF_PRINTF(3, 4);
static int ctl_bad(char *msg, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, size, fmt, ap);
	va_end(ap);
	return CTL_EXIT_USAGE;
}

/* "-x VALUE", "--long VALUE" or "--long=VALUE": 1 matched (value in *val_r), 0 not
 * this option, -1 value missing. */
static int ctl_opt_value(int argc, char *const *argv, int *i, const char *s, const char *l,
                         const char **val_r)
{
	const char *arg = argv[*i];
	size_t ln = strlen(l);

	if ((s && strcmp(arg, s) == 0) || strcmp(arg, l) == 0) {
		if (*i + 1 >= argc)
			return -1;
		*val_r = argv[++*i];
		return 1;
	}
	if (strncmp(arg, l, ln) == 0 && arg[ln] == '=') {
		*val_r = arg + ln + 1;
		return 1;
	}
	return 0;
}

static int ctl_check_opt(const struct ctl_args *a, const char *kv, char *msg, size_t size)
{
	const char *eq = strchr(kv, '=');
	const char *const *known = vf_volume_known_opts();
	size_t kn;
	int ok = 0;

	if (eq == NULL || eq == kv)
		return ctl_bad(msg, size, "invalid -o '%s': expected KEY=VALUE", kv);
	kn = (size_t)(eq - kv);
	for (size_t i = 0; i < kn; i++)
		if (!(kv[i] == '_' || kv[i] == '-' || kv[i] == '.' ||
		      (kv[i] >= 'a' && kv[i] <= 'z') || (kv[i] >= 'A' && kv[i] <= 'Z') ||
		      (kv[i] >= '0' && kv[i] <= '9')))
			return ctl_bad(msg, size, "invalid -o '%s': bad character in KEY", kv);
	for (const char *const *k = known; k && *k && !ok; k++)
		ok = strlen(*k) == kn && strncmp(*k, kv, kn) == 0;
	if (!ok) {
		char list[256] = "";

		for (const char *const *k = known; k && *k; k++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			         k == known ? "" : ", ", *k);
		return ctl_bad(msg, size, "invalid -o '%s': unknown option '%.*s' (known: %s)", kv,
		               (int)kn, kv, list);
	}
	for (size_t i = 0; i < a->nopts; i++)
		if (strncmp(a->opts[i], kv, kn + 1) == 0)
			return ctl_bad(msg, size, "invalid -o '%s': option '%.*s' given twice", kv,
			               (int)kn, kv);
	if (a->nopts >= CTL_MAX_OPTS)
		return ctl_bad(msg, size, "too many -o options (at most %d)", CTL_MAX_OPTS);
	return CTL_EXIT_OK;
}

/* What an option step returns for an argument it does not know. */
#define CTL_OPT_NOT_MINE (-1)

/* A global option (-h, --version, -j, -s, -c, -t) at argv[*i]: CTL_EXIT_OK,
 * CTL_EXIT_USAGE with the reason in msg, or CTL_OPT_NOT_MINE. */
static int ctl_global_opt(int argc, char *const *argv, int *i, struct ctl_args *a, char *msg,
                          size_t msgsize)
{
	const char *arg = argv[*i], *val = NULL;
	int rc;

	if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
		a->help = 1;
		return CTL_EXIT_OK;
	}
	if (strcmp(arg, "--version") == 0) {
		a->version = 1;
		return CTL_EXIT_OK;
	}
	if (strcmp(arg, "-j") == 0 || strcmp(arg, "--json") == 0) {
		a->json = 1;
		return CTL_EXIT_OK;
	}
	if ((rc = ctl_opt_value(argc, argv, i, "-s", "--socket", &val)) != 0) {
		if (rc < 0 || val[0] == '\0')
			return ctl_bad(msg, msgsize, "%s needs a socket path", arg);
		a->socket = val;
		return CTL_EXIT_OK;
	}
	if ((rc = ctl_opt_value(argc, argv, i, "-c", "--config", &val)) != 0) {
		if (rc < 0 || val[0] == '\0')
			return ctl_bad(msg, msgsize, "%s needs a config file", arg);
		a->config = val;
		return CTL_EXIT_OK;
	}
	if ((rc = ctl_opt_value(argc, argv, i, "-t", "--timeout", &val)) != 0) {
		char *end;

		if (rc < 0)
			return ctl_bad(msg, msgsize, "%s needs a number of seconds", arg);
		a->timeout_s = strtol(val, &end, 10);
		if (*end || a->timeout_s <= 0 || a->timeout_s > 86400)
			return ctl_bad(msg, msgsize, "invalid --timeout '%s': seconds, 1-86400",
			               val);
		return CTL_EXIT_OK;
	}
	return CTL_OPT_NOT_MINE;
}

/* proxy's --wait-ms and --check-ms: as ctl_global_opt. */
static int ctl_proxy_opt(int argc, char *const *argv, int *i, struct ctl_args *a, char *msg,
                         size_t msgsize)
{
	static const char *const names[] = {"--wait-ms", "--check-ms"};
	long *dst[] = {&a->wait_ms, &a->check_ms};
	const char *arg = argv[*i], *val = NULL;
	char *end;
	int k = -1, rc = 0;

	for (int j = 0; j < 2 && k < 0; j++)
		if ((rc = ctl_opt_value(argc, argv, i, NULL, names[j], &val)) != 0)
			k = j;
	if (k < 0)
		return CTL_OPT_NOT_MINE;
	if (rc < 0)
		return ctl_bad(msg, msgsize, "%s needs milliseconds", arg);
	*dst[k] = strtol(val, &end, 10);
	if (*end || end == val || *dst[k] <= 0 || *dst[k] > 86400000L)
		return ctl_bad(msg, msgsize, "invalid %s '%s': milliseconds, 1-86400000", names[k],
		               val);
	return CTL_EXIT_OK;
}

/* An option of command ci (create -o, migrate --to/--force/--overwrite, evict
 * --force, proxy's, mount/unmount --id): as ctl_global_opt. */
static int ctl_cmd_opt(int argc, char *const *argv, int *i, const struct ctl_cmd_info *ci,
                       struct ctl_args *a, char *msg, size_t msgsize)
{
	const char *arg = argv[*i], *val = NULL;
	int rc;

	if (ci->cmd == CTL_CREATE &&
	    (rc = ctl_opt_value(argc, argv, i, "-o", "--opt", &val)) != 0) {
		if (rc < 0)
			return ctl_bad(msg, msgsize, "%s needs KEY=VALUE", arg);
		if ((rc = ctl_check_opt(a, val, msg, msgsize)) != CTL_EXIT_OK)
			return rc;
		a->opts[a->nopts++] = val;
		return CTL_EXIT_OK;
	}
	if (ci->cmd == CTL_MIGRATE &&
	    (rc = ctl_opt_value(argc, argv, i, NULL, "--to", &val)) != 0) {
		if (rc < 0 || val[0] == '\0')
			return ctl_bad(msg, msgsize, "--to needs a config file");
		a->to = val;
		return CTL_EXIT_OK;
	}
	if (ci->cmd == CTL_MIGRATE && strcmp(arg, "--force") == 0) {
		a->force = 1;
		return CTL_EXIT_OK;
	}
	if (ci->cmd == CTL_MIGRATE && strcmp(arg, "--overwrite") == 0) {
		a->overwrite = 1;
		return CTL_EXIT_OK;
	}
	if (ci->cmd == CTL_EVICT && strcmp(arg, "--force") == 0) {
		a->evict_force = 1;
		return CTL_EXIT_OK;
	}
	if (ci->cmd == CTL_PROXY &&
	    (rc = ctl_proxy_opt(argc, argv, i, a, msg, msgsize)) != CTL_OPT_NOT_MINE)
		return rc;
	if ((ci->cmd == CTL_MOUNT || ci->cmd == CTL_UNMOUNT) &&
	    (rc = ctl_opt_value(argc, argv, i, NULL, "--id", &val)) != 0) {
		if (rc < 0 || val[0] == '\0')
			return ctl_bad(msg, msgsize, "--id needs a value");
		a->id = val;
		return CTL_EXIT_OK;
	}
	return CTL_OPT_NOT_MINE;
}

/* The option at argv[*i] (ci: the command so far, NULL before it). */
static int ctl_option(int argc, char *const *argv, int *i, const struct ctl_cmd_info *ci,
                      struct ctl_args *a, char *msg, size_t msgsize)
{
	const char *arg = argv[*i];
	int rc;

	if ((rc = ctl_global_opt(argc, argv, i, a, msg, msgsize)) != CTL_OPT_NOT_MINE)
		return rc;
	if (ci && (rc = ctl_cmd_opt(argc, argv, i, ci, a, msg, msgsize)) != CTL_OPT_NOT_MINE)
		return rc;
	if (ci)
		return ctl_bad(msg, msgsize, "unknown option '%s' for %s", arg, ci->name);
	return ctl_bad(msg, msgsize, "unknown option '%s'", arg);
}

/* A word that is not an option: the command (or "help") first, then its
 * arguments (evict's NODE, a volume NAME). */
static int ctl_word(const char *arg, const struct ctl_cmd_info **ci_r, struct ctl_args *a,
                    char *msg, size_t msgsize)
{
	const struct ctl_cmd_info *ci = *ci_r;

	if (ci == NULL) {
		if (strcmp(arg, "help") == 0) {
			a->help = 1;
			return CTL_EXIT_OK;
		}
		for (size_t k = 0; k < CTL_NCMDS && ci == NULL; k++)
			if (strcmp(arg, ctl_cmds[k].name) == 0 ||
			    (ctl_cmds[k].alias && strcmp(arg, ctl_cmds[k].alias) == 0))
				ci = &ctl_cmds[k];
		if (ci == NULL)
			return ctl_bad(msg, msgsize, "unknown command '%s'", arg);
		a->cmd = ci->cmd;
		*ci_r = ci;
		return CTL_EXIT_OK;
	}
	if (ci->cmd == CTL_EVICT && a->node == NULL) {
		a->node = arg;
		return CTL_EXIT_OK;
	}
	if ((!ci->takes_name && ci->cmd != CTL_EVICT) || a->name)
		return ctl_bad(msg, msgsize, "%s: unexpected argument '%s'", ci->name, arg);
	a->name = arg;
	return CTL_EXIT_OK;
}

/* After the last argument: what is missing or conflicts, and the defaults. */
static int ctl_finish(const struct ctl_cmd_info *ci, struct ctl_args *a, char *msg, size_t msgsize)
{
	if (a->socket && a->config)
		return ctl_bad(msg, msgsize, "give -s SOCKET or -c CONFIG, not both");
	if (a->help || a->version)
		return CTL_EXIT_OK;
	if (ci == NULL)
		return ctl_bad(msg, msgsize, "no command given");
	if (ci->takes_name && a->name == NULL)
		return ctl_bad(msg, msgsize, "%s: missing volume NAME", ci->name);
	if (a->name && !vf_volume_name_valid(a->name))
		return ctl_bad(msg, msgsize,
		               "invalid volume name '%s': a letter or digit, then up to %d of "
		               "letters, digits, '_', '.', '-'",
		               a->name, VF_VOLUME_NAME_MAX - 1);
	if (ci->cmd == CTL_EVICT && (a->node == NULL || a->node[0] == '\0'))
		return ctl_bad(msg, msgsize, "evict: missing NODE");
	if (ci->cmd == CTL_MIGRATE && a->to == NULL)
		return ctl_bad(msg, msgsize, "migrate: missing --to OTHER.conf");
	if (ci->cmd == CTL_MIGRATE && a->socket)
		return ctl_bad(msg, msgsize, "migrate talks to the stores: give -c CONFIG, not -s");
	if (ci->cmd == CTL_INIT && a->socket)
		return ctl_bad(msg, msgsize, "init talks to the store: give -c CONFIG, not -s");
	if ((ci->cmd == CTL_MOUNT || ci->cmd == CTL_UNMOUNT) && a->id == NULL)
		a->id = CTL_DEFAULT_ID;
	if (ci->cmd == CTL_PROXY && a->wait_ms == 0)
		a->wait_ms = CTL_PROXY_WAIT_MS;
	if (ci->cmd == CTL_PROXY && a->check_ms == 0)
		a->check_ms = CTL_PROXY_CHECK_MS;
	return CTL_EXIT_OK;
}

int ctl_parse(int argc, char *const *argv, struct ctl_args *a, char *msg, size_t msgsize)
{
	const struct ctl_cmd_info *ci = NULL;
	int only_args = 0, rc;

	memset(a, 0, sizeof(*a));
	msg[0] = '\0';
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!only_args && strcmp(arg, "--") == 0) {
			only_args = 1;
			continue;
		}
		if (!only_args && arg[0] == '-' && arg[1] != '\0')
			rc = ctl_option(argc, argv, &i, ci, a, msg, msgsize);
		else
			rc = ctl_word(arg, &ci, a, msg, msgsize);
		if (rc != CTL_EXIT_OK)
			return rc;
	}
	return ctl_finish(ci, a, msg, msgsize);
}

/* ---- talking to vfiled ---- */

static size_t ctl_on_data(char *p, size_t size, size_t n, void *arg)
{
	struct vf_buf *b = arg;

	return vf_buf_add(b, p, size * n) == VF_OK ? size * n : 0;
}

int ctl_call(const char *sock, const char *endpoint, const char *body, long timeout_s,
             yajl_val *resp_r, FILE *errf)
{
	char url[256], cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct vf_buf b = {0};
	struct vf_err err = {0};
	struct stat st;
	long status = 0, oserr = 0;
	CURL *c = curl_easy_init();
	CURLcode cc;
	int rc = CTL_EXIT_FAIL;

	*resp_r = NULL;
	if (c == NULL) {
		fprintf(errf, "vfilectl: cannot initialise libcurl\n");
		return CTL_EXIT_FAIL;
	}
	snprintf(url, sizeof(url), "http://localhost%s", endpoint);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: application/vnd.docker.plugins.v1.2+json");
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ctl_on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
	if (cc == CURLE_COULDNT_CONNECT) {
		if (stat(sock, &st) != 0 && errno == ENOENT)
			fprintf(errf, "vfilectl: vfiled is not running (no socket at %s)\n", sock);
		else if (oserr == EACCES)
			fprintf(errf,
			        "vfilectl: permission denied on %s (run as root or as a member of "
			        "the socket's group)\n",
			        sock);
		else if (oserr == ECONNREFUSED)
			fprintf(errf, "vfilectl: vfiled is not running (nothing listens on %s)\n",
			        sock);
		else
			fprintf(errf, "vfilectl: cannot connect to vfiled at %s: %s\n", sock,
			        cerr[0] ? cerr : curl_easy_strerror(cc));
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		fprintf(errf, "vfilectl: no answer from vfiled at %s within %ld s (%s)\n", sock,
		        timeout_s, endpoint);
	} else if (cc != CURLE_OK) {
		fprintf(errf, "vfilectl: talking to vfiled at %s: %s\n", sock,
		        cerr[0] ? cerr : curl_easy_strerror(cc));
	} else if (status != 200) {
		fprintf(errf, "vfilectl: vfiled answered HTTP %ld to %s\n", status, endpoint);
	} else if (vf_json_parse(b.data ? b.data : "", b.len, resp_r, &err) != VF_OK ||
	           !YAJL_IS_OBJECT(*resp_r)) {
		fprintf(errf, "vfilectl: vfiled sent an unexpected answer to %s: %s\n", endpoint,
		        err.msg[0] ? err.msg : "not a JSON object");
		yajl_tree_free(*resp_r);
		*resp_r = NULL;
	} else {
		rc = CTL_EXIT_OK;
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	vf_buf_free(&b);
	return rc;
}

/* The request body of a command. */
static int ctl_body(const struct ctl_args *a, char **body_r)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	size_t len;
	int rc;

	if (g == NULL)
		return VF_ENOMEM;
	yajl_gen_map_open(g);
	if (a->name) {
		vf_jgen_str(g, "Name");
		vf_jgen_str(g, a->name);
	}
	if (a->cmd == CTL_MOUNT || a->cmd == CTL_UNMOUNT) {
		vf_jgen_str(g, "ID");
		vf_jgen_str(g, a->id);
	}
	if (a->cmd == CTL_EVICT) {
		vf_jgen_str(g, "Node");
		vf_jgen_str(g, a->node);
		vf_jgen_str(g, "Force");
		yajl_gen_bool(g, a->evict_force);
	}
	if (a->cmd == CTL_CREATE) {
		vf_jgen_str(g, "Opts");
		yajl_gen_map_open(g);
		for (size_t i = 0; i < a->nopts; i++) {
			const char *eq = strchr(a->opts[i], '=');

			vf_jgen_strn(g, a->opts[i], (size_t)(eq - a->opts[i]));
			vf_jgen_str(g, eq + 1);
		}
		yajl_gen_map_close(g);
	}
	yajl_gen_map_close(g);
	rc = vf_jgen_finish(g, body_r, &len, NULL);
	yajl_gen_free(g);
	return rc;
}

/* ---- output ---- */

/* v as JSON text (pretty or compact); malloc'ed. */
static char *ctl_json(yajl_val v, int pretty)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	char *out = NULL;
	size_t len;
	int rc;

	if (g == NULL)
		return NULL;
	if (pretty) {
		yajl_gen_config(g, yajl_gen_beautify, 1);
		yajl_gen_config(g, yajl_gen_indent_string, "  ");
	}
	vf_jgen_tree(g, v);
	rc = vf_jgen_finish(g, &out, &len, NULL);
	yajl_gen_free(g);
	if (rc != VF_OK)
		return NULL;
	/* yajl beautifies an empty array or object as "[\n\n  ]": write "[]". No raw
	 * newline can occur inside a JSON string, so this cannot touch values. */
	size_t w = 0;
	for (size_t r = 0; r < len; r++) {
		out[w++] = out[r];
		if (out[r] != '[' && out[r] != '{')
			continue;
		size_t k = r + 1;
		int nl = 0;
		while (k < len && (out[k] == ' ' || out[k] == '\n'))
			nl |= out[k++] == '\n';
		if (nl && k < len && out[k] == (out[r] == '[' ? ']' : '}')) {
			out[w++] = out[k];
			r = k;
		}
	}
	out[w] = '\0';
	len = w;
	/* beautify ends with a newline; keep exactly one */
	while (len > 0 && out[len - 1] == '\n')
		out[--len] = '\0';
	return out;
}

/* A scalar as text for a table cell ("-" when absent or empty). */
static void ctl_cell(yajl_val v, char *buf, size_t size)
{
	char *j;

	if (v == NULL || YAJL_IS_NULL(v))
		snprintf(buf, size, "-");
	else if (YAJL_IS_STRING(v))
		snprintf(buf, size, "%s", v->u.string[0] ? v->u.string : "-");
	else if (YAJL_IS_NUMBER(v))
		snprintf(buf, size, "%s", v->u.number.r);
	else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v))
		snprintf(buf, size, "%s", YAJL_IS_TRUE(v) ? "true" : "false");
	else if (YAJL_IS_ARRAY(v)) {
		buf[0] = '\0';
		for (size_t i = 0; i < v->u.array.len; i++) {
			char item[256];

			ctl_cell(v->u.array.values[i], item, sizeof(item));
			snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", i ? ", " : "",
			         item);
		}
		if (buf[0] == '\0')
			snprintf(buf, size, "-");
	} else if ((j = ctl_json(v, 0)) != NULL) {
		snprintf(buf, size, "%s", j);
		free(j);
	} else {
		snprintf(buf, size, "?");
	}
	/* one line per cell */
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
}

struct ctl_table {
	size_t ncols, nrows;
	char **cells; /* nrows * ncols, row 0 = header */
};

static void ctl_table_add(struct ctl_table *t, const char *const *row)
{
	char **c = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));

	if (c == NULL)
		return;
	t->cells = c;
	for (size_t i = 0; i < t->ncols; i++)
		c[t->nrows * t->ncols + i] = strdup(row[i] ? row[i] : "-");
	t->nrows++;
}

static void ctl_table_print(struct ctl_table *t, FILE *out)
{
	size_t w[16] = {0};

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols && i < 16; i++) {
			const char *s = t->cells[r * t->ncols + i];
			size_t n = s ? strlen(s) : 0;

			if (n > w[i])
				w[i] = n;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *s = t->cells[r * t->ncols + i];

			if (i + 1 == t->ncols)
				fprintf(out, "%s\n", s ? s : "");
			else
				fprintf(out, "%-*s  ", (int)w[i], s ? s : "");
		}
	}
	for (size_t k = 0; k < t->nrows * t->ncols; k++)
		free(t->cells[k]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

static void ctl_print_ls(yajl_val resp, FILE *out)
{
	yajl_val vols = vf_json_get(resp, "Volumes", NULL);
	int with_status = 0;
	struct ctl_table t = {.ncols = 0};

	for (size_t i = 0; YAJL_IS_ARRAY(vols) && i < vols->u.array.len; i++)
		with_status |= vf_json_get(vols->u.array.values[i], "Status", NULL) != NULL;
	if (with_status) {
		const char *h[] = {"NAME", "STATE", "REFS", "MOUNTPOINT"};
		t.ncols = 4;
		ctl_table_add(&t, h);
	} else {
		const char *h[] = {"NAME", "MOUNTPOINT"};
		t.ncols = 2;
		ctl_table_add(&t, h);
	}
	for (size_t i = 0; YAJL_IS_ARRAY(vols) && i < vols->u.array.len; i++) {
		yajl_val v = vols->u.array.values[i];
		char name[256], state[64], refs[32], mp[4096];

		ctl_cell(vf_json_get(v, "Name", NULL), name, sizeof(name));
		ctl_cell(vf_json_get(v, "Status", "state", NULL), state, sizeof(state));
		ctl_cell(vf_json_get(v, "Status", "gref", NULL), refs, sizeof(refs));
		ctl_cell(vf_json_get(v, "Mountpoint", NULL), mp, sizeof(mp));
		const char *row4[] = {name, state, refs, mp}, *row2[] = {name, mp};
		ctl_table_add(&t, with_status ? row4 : row2);
	}
	ctl_table_print(&t, out);
}

static void ctl_kv_line(FILE *out, const char *key, yajl_val v)
{
	char buf[4096];

	ctl_cell(v, buf, sizeof(buf));
	fprintf(out, "%-12s %s\n", key, buf);
}

static void ctl_print_inspect(yajl_val resp, FILE *out)
{
	yajl_val vol = vf_json_get(resp, "Volume", NULL);
	yajl_val st = vf_json_get(vol, "Status", NULL);
	yajl_val server = vf_json_get(st, "server", NULL);
	yajl_val opts = vf_json_get(st, "options", NULL);
	char buf[1024];

	ctl_kv_line(out, "Name:", vf_json_get(vol, "Name", NULL));
	ctl_kv_line(out, "State:", vf_json_get(st, "state", NULL));
	ctl_kv_line(out, "Refs:", vf_json_get(st, "gref", NULL));
	ctl_kv_line(out, "Hosts:", vf_json_get(st, "clients", NULL));
	const char *state = vf_json_str(vf_json_get(st, "state", NULL));
	/* info keeps the last server after a stop: show it only while Mounted */
	if (state && strcmp(state, "Mounted") == 0 && YAJL_IS_OBJECT(server) &&
	    vf_json_str(vf_json_get(server, "addr", NULL)) &&
	    vf_json_str(vf_json_get(server, "addr", NULL))[0]) {
		char port[32], node[256];

		ctl_cell(vf_json_get(server, "port", NULL), port, sizeof(port));
		ctl_cell(vf_json_get(server, "node", NULL), node, sizeof(node));
		snprintf(buf, sizeof(buf), "%s:%s (on %s)",
		         vf_json_str(vf_json_get(server, "addr", NULL)), port, node);
		fprintf(out, "%-12s %s\n", "Server:", buf);
	} else {
		fprintf(out, "%-12s %s\n", "Server:", "-");
	}
	buf[0] = '\0';
	for (size_t i = 0; YAJL_IS_OBJECT(opts) && i < opts->u.object.len; i++) {
		char val[256];

		ctl_cell(opts->u.object.values[i], val, sizeof(val));
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s=%s", i ? " " : "",
		         opts->u.object.keys[i], val);
	}
	fprintf(out, "%-12s %s\n", "Options:", buf[0] ? buf : "-");
	ctl_kv_line(out, "Mountpoint:", vf_json_get(vol, "Mountpoint", NULL));
	/* anything else the daemon reports */
	for (size_t i = 0; YAJL_IS_OBJECT(st) && i < st->u.object.len; i++) {
		const char *k = st->u.object.keys[i];

		if (strcmp(k, "state") && strcmp(k, "gref") && strcmp(k, "clients") &&
		    strcmp(k, "server") && strcmp(k, "options")) {
			snprintf(buf, sizeof(buf), "%s:", k);
			ctl_kv_line(out, buf, st->u.object.values[i]);
		}
	}
}

/* The embedded cluster's membership (vfiled's "Membership"): this host's part,
 * the reason of its last decision, and the member list as a table. */
static void ctl_print_membership(yajl_val m, FILE *out)
{
	yajl_val ms = vf_json_get(m, "Members", NULL);
	const char *why = vf_json_str(vf_json_get(m, "Why", NULL));
	struct ctl_table t = {.ncols = 4};
	const char *h[] = {"  NAME", "CLIENT URL", "ROLE", "HEALTH"};
	char name[256], st[64], role[64], mgr[32], ch[32], line[1024];

	ctl_cell(vf_json_get(m, "Member", NULL), name, sizeof(name));
	ctl_cell(vf_json_get(m, "State", NULL), st, sizeof(st));
	ctl_cell(vf_json_get(m, "SwarmRole", NULL), role, sizeof(role));
	ctl_cell(vf_json_get(m, "Managers", NULL), mgr, sizeof(mgr));
	ctl_cell(vf_json_get(m, "Changes", NULL), ch, sizeof(ch));
	snprintf(line, sizeof(line), "%s (member %s; this node a %s of %s managers; %s changes)",
	         st, name, role, mgr, ch);
	fprintf(out, "%-12s %s\n", "Membership:", line);
	if (why && why[0])
		fprintf(out, "%-12s %s\n", "Reason:", why);
	if (!YAJL_IS_ARRAY(ms) || ms->u.array.len == 0) {
		fprintf(out, "%-12s %s\n", "Members:", "(none read)");
		return;
	}
	fprintf(out, "Members:\n");
	ctl_table_add(&t, h);
	for (size_t i = 0; i < ms->u.array.len; i++) {
		yajl_val x = ms->u.array.values[i];
		yajl_val l = vf_json_get(x, "Learner", NULL), hl = vf_json_get(x, "Healthy", NULL);
		char n[256], url[512];
		const char *url_s = vf_json_str(vf_json_get(x, "ClientURL", NULL));

		const char *nm = vf_json_str(vf_json_get(x, "Name", NULL));

		snprintf(n, sizeof(n), "  %.250s", nm && nm[0] ? nm : "(not started)");
		snprintf(url, sizeof(url), "%s", url_s && url_s[0] ? url_s : "-");
		const char *row[] = {n, url, l && YAJL_IS_TRUE(l) ? "learner" : "voter",
		                     hl && YAJL_IS_TRUE(hl) ? "healthy" : "unhealthy"};
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, out);
}

static void ctl_print_status(yajl_val resp, FILE *out)
{
	static const char *const top[] = {"Node", "Role", "Backend", "Lease", NULL};
	char key[128];

	for (const char *const *k = top; *k; k++) {
		snprintf(key, sizeof(key), "%s:", *k);
		ctl_kv_line(out, key, vf_json_get(resp, *k, NULL));
	}
	ctl_kv_line(out, "Watchers:", vf_json_get(resp, "Manager", "Watchers", NULL));
	ctl_kv_line(out, "Servers:", vf_json_get(resp, "Manager", "Servers", NULL));
	for (size_t i = 0; i < resp->u.object.len; i++) {
		const char *k = resp->u.object.keys[i];
		int known = strcmp(k, "Manager") == 0 || strcmp(k, "Err") == 0 ||
		            strcmp(k, "Membership") == 0;

		for (const char *const *t = top; *t && !known; t++)
			known = strcmp(k, *t) == 0;
		if (!known) {
			snprintf(key, sizeof(key), "%s:", k);
			ctl_kv_line(out, key, resp->u.object.values[i]);
		}
	}
	if (YAJL_IS_OBJECT(vf_json_get(resp, "Membership", NULL)))
		ctl_print_membership(vf_json_get(resp, "Membership", NULL), out);
}

static void ctl_print_nodes(yajl_val resp, FILE *out)
{
	yajl_val nodes = vf_json_get(resp, "Nodes", NULL);
	struct ctl_table t = {.ncols = 5};
	const char *h[] = {"NODE", "ROLE", "LEASE", "STARTED", "VOLUMES"};

	ctl_table_add(&t, h);
	for (size_t i = 0; YAJL_IS_ARRAY(nodes) && i < nodes->u.array.len; i++) {
		yajl_val x = nodes->u.array.values[i];
		yajl_val vols = vf_json_get(x, "Volumes", NULL);
		char name[256], role[32], started[32] = "-", vl[4096] = "";
		int64_t st = 0;
		int alive = YAJL_IS_TRUE(vf_json_get(x, "Alive", NULL));

		ctl_cell(vf_json_get(x, "Node", NULL), name, sizeof(name));
		ctl_cell(vf_json_get(x, "Role", NULL), role, sizeof(role));
		if (vf_json_int64(vf_json_get(x, "Started", NULL), &st) == VF_OK && st > 0) {
			time_t tt = (time_t)st;
			struct tm tm;

			if (gmtime_r(&tt, &tm))
				strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
		}
		for (size_t k = 0; YAJL_IS_ARRAY(vols) && k < vols->u.array.len; k++) {
			const char *v = vf_json_str(vols->u.array.values[k]);

			snprintf(vl + strlen(vl), sizeof(vl) - strlen(vl), "%s%s", k ? "," : "",
			         v ? v : "?");
		}
		const char *row[] = {name, role[0] ? role : "-", alive ? "alive" : "GONE", started,
		                     vl[0] ? vl : "-"};
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, out);
}

static void ctl_print_evict(const struct ctl_args *a, yajl_val resp, FILE *out)
{
	yajl_val rel = vf_json_get(resp, "Released", NULL);
	size_t n = YAJL_IS_ARRAY(rel) ? rel->u.array.len : 0;

	if (n == 0) {
		fprintf(out, "node %s holds no %s%s: nothing released\n", a->node,
		        a->name ? "mount of " : "volume", a->name ? a->name : "");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		yajl_val x = rel->u.array.values[i];
		char vol[256], ids[1024], gb[32], ga[32];

		ctl_cell(vf_json_get(x, "Volume", NULL), vol, sizeof(vol));
		ctl_cell(vf_json_get(x, "Ids", NULL), ids, sizeof(ids));
		ctl_cell(vf_json_get(x, "GrefBefore", NULL), gb, sizeof(gb));
		ctl_cell(vf_json_get(x, "GrefAfter", NULL), ga, sizeof(ga));
		fprintf(out, "released %s from %s: mount ids %s; hosts %s -> %s\n", vol, a->node,
		        ids[0] ? ids : "-", gb, ga);
	}
}

static void ctl_print_kvdump(yajl_val resp, FILE *out)
{
	yajl_val keys = vf_json_get(resp, "Keys", NULL);
	struct ctl_table t = {.ncols = 3};
	const char *h[] = {"KEY", "MODREV", "VALUE"};

	ctl_table_add(&t, h);
	for (size_t i = 0; YAJL_IS_ARRAY(keys) && i < keys->u.array.len; i++) {
		yajl_val kv = keys->u.array.values[i];
		char k[1024], rev[32], val[4096];

		ctl_cell(vf_json_get(kv, "Key", NULL), k, sizeof(k));
		ctl_cell(vf_json_get(kv, "ModRev", NULL), rev, sizeof(rev));
		ctl_cell(vf_json_get(kv, "Value", NULL), val, sizeof(val));
		const char *row[] = {k, rev, val};
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, out);
}

/* The socket: -s, else the config's plugin_socket, else the default. */
static int ctl_socket(const struct ctl_args *a, char **sock_r, FILE *errf)
{
	const char *file = a->config ? a->config : VF_CONF_DEFAULT_FILE;
	struct vf_conf *conf = NULL;
	struct vf_err err = {0};

	*sock_r = NULL;
	if (a->socket) {
		*sock_r = strdup(a->socket);
		return *sock_r ? CTL_EXIT_OK : CTL_EXIT_FAIL;
	}
	/* the default config file is optional (and may be readable by root only) */
	if (a->config == NULL && access(file, R_OK) != 0) {
		*sock_r = strdup(CTL_DEFAULT_SOCKET);
		return *sock_r ? CTL_EXIT_OK : CTL_EXIT_FAIL;
	}
	if (vf_conf_load(file, &conf, &err) != VF_OK) {
		fprintf(errf, "vfilectl: %s\n", err.msg);
		return CTL_EXIT_FAIL;
	}
	*sock_r = strdup(conf->plugin_socket ? conf->plugin_socket : CTL_DEFAULT_SOCKET);
	vf_conf_free(&conf);
	return *sock_r ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

static int ctl_run(const struct ctl_args *a, FILE *out, FILE *errf)
{
	const struct ctl_cmd_info *ci = ctl_info(a->cmd);
	char *sock = NULL, *body = NULL, *text;
	yajl_val resp = NULL;
	const char *e;
	int rc;

	if (a->cmd == CTL_MIGRATE) {
		struct ctl_migrate_opts mo = {a->force, a->overwrite, a->json};

		return ctl_migrate(a->config ? a->config : VF_CONF_DEFAULT_FILE, a->to, &mo, out,
		                   errf);
	}
	if (a->cmd == CTL_INIT)
		return ctl_init(a->config ? a->config : VF_CONF_DEFAULT_FILE, a->json, out, errf);
	if ((rc = ctl_socket(a, &sock, errf)) != CTL_EXIT_OK)
		goto out;
	if (a->cmd == CTL_PROXY) {
		rc = ctl_proxy(sock, a->name, a->wait_ms, a->check_ms, errf);
		goto out;
	}
	if (ctl_body(a, &body) != VF_OK) {
		fprintf(errf, "vfilectl: out of memory\n");
		rc = CTL_EXIT_FAIL;
		goto out;
	}
	rc = ctl_call(sock, ci->endpoint, body, a->timeout_s ? a->timeout_s : ci->timeout_s, &resp,
	              errf);
	if (rc != CTL_EXIT_OK)
		goto out;
	e = vf_json_str(vf_json_get(resp, "Err", NULL));
	if (a->json) {
		text = ctl_json(resp, 1);
		fprintf(out, "%s\n", text ? text : "{}");
		free(text);
	}
	if (e && e[0]) {
		if (a->name)
			fprintf(errf, "vfilectl: %s %s: %s\n", ci->name, a->name, e);
		else
			fprintf(errf, "vfilectl: %s: %s\n", ci->name, e);
		rc = CTL_EXIT_FAIL;
		goto out;
	}
	if (a->json)
		goto out;
	switch (a->cmd) {
	case CTL_CREATE:
	case CTL_RM:
	case CTL_UNMOUNT:
		fprintf(out, "%s\n", a->name);
		break;
	case CTL_MOUNT: {
		const char *mp = vf_json_str(vf_json_get(resp, "Mountpoint", NULL));

		fprintf(out, "%s\n", mp ? mp : "");
		break;
	}
	case CTL_LS:
		ctl_print_ls(resp, out);
		break;
	case CTL_INSPECT:
		ctl_print_inspect(resp, out);
		break;
	case CTL_STATUS:
		ctl_print_status(resp, out);
		break;
	case CTL_KVDUMP:
		ctl_print_kvdump(resp, out);
		break;
	case CTL_NODES:
		ctl_print_nodes(resp, out);
		break;
	case CTL_EVICT:
		ctl_print_evict(a, resp, out);
		break;
	case CTL_MIGRATE:
	case CTL_PROXY:
	case CTL_INIT:
	case CTL_NONE:
		break;
	}
out:
	yajl_tree_free(resp);
	free(body);
	free(sock);
	return rc;
}

int ctl_init(const char *file, int json, FILE *out, FILE *errf)
{
	struct vf_conf *conf = NULL;
	struct vf_backend *be = NULL;
	struct vf_kv *kv = NULL;
	struct vf_err err = {0};
	char root[4096], *id = NULL;
	const char *what = NULL;
	int keeps, rc;

	rc = vf_conf_load(file, &conf, &err);
	if (rc == VF_OK &&
	    !vf_cluster_export_root(conf->fileserver_group, root, sizeof(root), &keeps))
		rc = vf_err_set(&err, VF_EINVAL, "%s: fileserver.export_root is too long", file);
	if (rc == VF_OK)
		rc = vf_backend_load(conf->backend, conf->backend_dir, &be, &err);
	if (rc == VF_OK)
		rc = vf_backend_open(be, conf->backend_group, &kv, &err);
	if (rc == VF_OK)
		rc = vf_cluster_check(kv, conf->prefix, root, VF_CLUSTER_INIT, &id, &what, &err);
	if (rc != VF_OK) {
		fprintf(errf, "vfilectl: init: %s\n", err.msg);
	} else if (json) {
		yajl_gen g = yajl_gen_alloc(NULL);
		char marker[4200], *text = NULL;
		size_t len;

		snprintf(marker, sizeof(marker), "%s/%s", root, VF_CLUSTER_MARKER);
		if (g == NULL) {
			fprintf(errf, "vfilectl: out of memory\n");
			rc = VF_ENOMEM;
			goto out;
		}
		yajl_gen_map_open(g);
		vf_jgen_str(g, "Cluster");
		vf_jgen_str(g, id);
		vf_jgen_str(g, "Marker");
		vf_jgen_str(g, marker);
		vf_jgen_str(g, "Done");
		vf_jgen_str(g, what);
		yajl_gen_map_close(g);
		if (vf_jgen_finish(g, &text, &len, &err) == VF_OK)
			fprintf(out, "%s\n", text);
		yajl_gen_free(g);
		free(text);
	} else {
		fprintf(out, "cluster %s: %s/%s %s%s\n", id, root, VF_CLUSTER_MARKER,
		        strcmp(what, "matches") == 0 ? "already marked" : what,
		        keeps ? "" : " (fileserver.driver \"none\" keeps no data there)");
	}
out:
	free(id);
	if (kv)
		kv->ops->close(kv);
	vf_backend_unload(&be);
	vf_conf_free(&conf);
	return rc == VF_OK ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

int ctl_main(int argc, char **argv, FILE *out, FILE *errf)
{
	struct ctl_args a;
	char msg[512];
	int rc = ctl_parse(argc, argv, &a, msg, sizeof(msg));

	if (rc != CTL_EXIT_OK) {
		fprintf(errf, "vfilectl: %s\n", msg);
		if (a.cmd != CTL_NONE)
			ctl_usage(errf, a.cmd);
		else
			fprintf(errf, "Try 'vfilectl --help'.\n");
		return rc;
	}
	if (a.version) {
		fprintf(out, "vfilectl (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
		return CTL_EXIT_OK;
	}
	if (a.help) {
		ctl_usage(out, a.cmd);
		return CTL_EXIT_OK;
	}
	return ctl_run(&a, out, errf);
}
