/* File-server drivers without servers: config validation, the none driver, the
 * hooks driver (arguments, environment, output, errors, timeout) and the sample
 * "local directory" hook script. */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "test_int.h"
#include "common_int.h"
#include "fs_int.h"
#include "config_int.h"

static char fs_tmp[PATH_MAX];

static void fs_write(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static char *fs_slurp(const char *path)
{
	char *data = NULL;

	if (vf_fs_read_file(path, &data, NULL, NULL) != VF_OK)
		return NULL;
	return data;
}

/* Write text as a config file and open the driver from its fileserver group. */
static int fs_open_text(const char *text, config_t *cfg, const struct vf_fs_ops **ops_r,
                        void **arg_r, struct vf_err *err)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/test.conf", fs_tmp);
	fs_write(path, text, 0644);
	config_init(cfg);
	if (config_read_file(cfg, path) != CONFIG_TRUE) {
		fprintf(stderr, "config: %s:%d: %s\n", path, config_error_line(cfg),
		        config_error_text(cfg));
		return -100;
	}
	return vf_fs_open(config_lookup(cfg, "fileserver"), fs_tmp, ops_r, arg_r, err);
}

/* Expect a config error whose message contains each of the given strings. */
static void fs_expect_bad(const char *text, const char *want1, const char *want2)
{
	const struct vf_fs_ops *ops = NULL;
	struct vf_err err = {0};
	void *arg = NULL;
	config_t cfg;
	int rc = fs_open_text(text, &cfg, &ops, &arg, &err);

	CU_ASSERT_EQUAL(rc, VF_EINVAL);
	CU_ASSERT_PTR_NULL(ops);
	CU_ASSERT_PTR_NULL(arg);
	if (strstr(err.msg, want1) == NULL || (want2 && strstr(err.msg, want2) == NULL)) {
		fprintf(stderr, "\n  message '%s' lacks '%s'/'%s'\n", err.msg, want1,
		        want2 ? want2 : "");
		CU_FAIL("error message");
	}
	CU_ASSERT(strstr(err.msg, "test.conf:") != NULL);
	vf_fs_close(arg);
	config_destroy(&cfg);
}

static void test_cfg_defaults(void)
{
	const struct vf_fs_ops *ops = NULL;
	struct vf_err err = {0};
	void *arg = NULL;

	/* NULL group: the sftp driver with its defaults */
	CU_ASSERT_EQUAL_FATAL(vf_fs_open(NULL, fs_tmp, &ops, &arg, &err), VF_OK);
	CU_ASSERT_PTR_NOT_NULL(ops);
	CU_ASSERT_PTR_NOT_NULL(ops->start);
	CU_ASSERT_PTR_NOT_NULL(ops->mount);
	CU_ASSERT_EQUAL(ops->running(arg, "never-started"), 0);
	/* stopping a volume that is not served is fine */
	CU_ASSERT_EQUAL(ops->stop(arg, "never-started", NULL, &err), VF_OK);
	vf_fs_close(arg);
	/* a relative state_dir is refused */
	CU_ASSERT_EQUAL(vf_fs_open(NULL, "relative", &ops, &arg, &err), VF_EINVAL);
	CU_ASSERT_PTR_NULL(arg);
	vf_fs_close(NULL);
}

static void test_cfg_errors(void)
{
	fs_expect_bad("fileserver = { driver = \"nfs\"; };", ":1:", "fileserver.driver");
	fs_expect_bad("fileserver = { driver = 7; };", "fileserver.driver", "must be a string");
	fs_expect_bad("fileserver = \"sftp\";", ":1:", "must be a group");
	fs_expect_bad("fileserver = {\n  driver = \"sftp\";\n  bogus = 1;\n};",
	              ":3:", "unknown setting 'fileserver.bogus'");
	fs_expect_bad("fileserver = {\n port_range = \"30000-20000\";\n};",
	              ":2:", "fileserver.port_range");
	fs_expect_bad("fileserver = { port_range = \"20000\"; };", "port_range", "LO-HI");
	fs_expect_bad("fileserver = { port_range = 20000; };", "port_range", "must be a string");
	fs_expect_bad("fileserver = { listen_addr = \"localhost\"; };", "fileserver.listen_addr",
	              "numeric IP");
	fs_expect_bad("fileserver = { listen_addr = \"0.0.0.0\"; };", "fileserver.advertise_addr",
	              "wildcard");
	fs_expect_bad("fileserver = { private_key = \"keys/id\"; };", "fileserver.private_key",
	              "absolute path");
	fs_expect_bad("fileserver = { host_key = \"/etc/a,b\"; };", "fileserver.host_key",
	              "commas");
	fs_expect_bad("fileserver = { chroot = \"yes\"; };", "fileserver.chroot", "boolean");
	fs_expect_bad("fileserver = { start_timeout_ms = 0; };", "start_timeout_ms", "> 0");
	fs_expect_bad("fileserver = { sshfs_options = [ 1 ]; };", "sshfs_options", "strings");
	fs_expect_bad("fileserver = { driver = \"hooks\"; };", "fileserver.hooks", "start");
	fs_expect_bad("fileserver = { driver = \"hooks\"; hooks = \"/bin/true\"; };",
	              "fileserver.hooks", "group");
	fs_expect_bad("fileserver = {\n driver = \"hooks\";\n hooks = {\n  start = \"/bin/true\";\n"
	              "  stop = \"/bin/true\";\n  unmount = \"/bin/true\";\n };\n};",
	              "fileserver.hooks.mount", "required");
	fs_expect_bad("fileserver = { driver = \"hooks\"; hooks = { start = \"true\"; stop = "
	              "\"/bin/true\"; mount = \"/bin/true\"; unmount = \"/bin/true\"; }; };",
	              "fileserver.hooks.start", "absolute");
	fs_expect_bad("fileserver = { driver = \"hooks\"; hooks = { start = \"/bin/true\"; stop = "
	              "\"/bin/true\"; mount = \"/bin/true\"; unmount = \"/bin/true\"; restart = "
	              "\"/x\"; }; };",
	              "unknown setting 'hooks.restart'", NULL);
	fs_expect_bad("fileserver = { driver = \"hooks\"; hook_timeout_ms = -1; hooks = { start = "
	              "\"/bin/true\"; stop = \"/bin/true\"; mount = \"/bin/true\"; unmount = "
	              "\"/bin/true\"; }; };",
	              "fileserver.hook_timeout_ms", "> 0");
	fs_expect_bad("fileserver = { driver = \"none\"; port_range = \"1-2\"; };",
	              "unknown setting 'fileserver.port_range'", NULL);
}

static void test_cfg_sample(void)
{
	/* conf/vfile.conf's fileserver group must be accepted as shipped */
	const char *top = getenv("top_srcdir");
	const struct vf_fs_ops *ops = NULL;
	struct vf_err err = {0};
	char path[PATH_MAX];
	void *arg = NULL;
	config_t cfg;

	snprintf(path, sizeof(path), "%s/conf/vfile.conf", top ? top : "../..");
	config_init(&cfg);
	if (config_read_file(&cfg, path) != CONFIG_TRUE)
		fprintf(stderr, "\n  %s:%d: %s\n", path, config_error_line(&cfg),
		        config_error_text(&cfg));
	CU_ASSERT_EQUAL_FATAL(config_read_file(&cfg, path), CONFIG_TRUE);
	int rc = vf_fs_open(config_lookup(&cfg, "fileserver"), fs_tmp, &ops, &arg, &err);
	CU_ASSERT_EQUAL(rc, VF_OK);
	if (rc != VF_OK)
		fprintf(stderr, "\n  %s\n", err.msg);
	vf_fs_close(arg);
	config_destroy(&cfg);
	/* and the daemon's loader accepts the whole file */
	struct vf_conf *conf = NULL;
	rc = vf_conf_load(path, &conf, &err);
	CU_ASSERT_EQUAL(rc, VF_OK);
	if (rc != VF_OK)
		fprintf(stderr, "\n  %s\n", err.msg);
	else
		CU_ASSERT_STRING_EQUAL(conf->plugin_socket, "/run/docker/plugins/vfile.sock");
	vf_conf_free(&conf);
}

static void test_none(void)
{
	const struct vf_fs_ops *ops = NULL;
	struct vf_err err = {0};
	void *arg = NULL;
	char *addr = NULL;
	int port = -1;
	config_t cfg;

	CU_ASSERT_EQUAL_FATAL(
	        fs_open_text("fileserver = { driver = \"none\"; };", &cfg, &ops, &arg, &err),
	        VF_OK);
	CU_ASSERT_EQUAL(ops->running(arg, "v1"), 0);
	CU_ASSERT_EQUAL(ops->start(arg, "v1", "{}", &addr, &port, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(addr, "127.0.0.1");
	CU_ASSERT_EQUAL(port, 0);
	free(addr);
	CU_ASSERT_EQUAL(ops->running(arg, "v1"), 1);
	CU_ASSERT_EQUAL(ops->running(arg, "v2"), 0);
	CU_ASSERT_EQUAL(ops->mount(arg, "v1", "{}", fs_tmp, &err), VF_OK);
	CU_ASSERT_EQUAL(ops->unmount(arg, "v1", fs_tmp, &err), VF_OK);
	CU_ASSERT_EQUAL(ops->stop(arg, "v1", "{}", &err), VF_OK);
	CU_ASSERT_EQUAL(ops->running(arg, "v1"), 0);
	CU_ASSERT_EQUAL(ops->start(arg, "../x", "{}", &addr, &port, &err), VF_EINVAL);
	CU_ASSERT_PTR_NULL(addr);
	/* left started: close frees it */
	CU_ASSERT_EQUAL(ops->start(arg, "v3", "{}", &addr, &port, &err), VF_OK);
	free(addr);
	vf_fs_close(arg);
	config_destroy(&cfg);
}

static void test_info_server(void)
{
	char *addr = NULL;
	int port = 0;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL(
	        vf_fs_info_server("{\"Addr\":\"10.0.0.1\",\"Port\":2022}", &addr, &port, &err),
	        VF_OK);
	CU_ASSERT_STRING_EQUAL(addr, "10.0.0.1");
	CU_ASSERT_EQUAL(port, 2022);
	free(addr);
	CU_ASSERT_EQUAL(
	        vf_fs_info_server("{\"Opts\":{},\"Server\":{\"Addr\":\"::1\",\"Port\":\"7\"}}",
	                          &addr, &port, &err),
	        VF_OK);
	CU_ASSERT_STRING_EQUAL(addr, "::1");
	CU_ASSERT_EQUAL(port, 7);
	free(addr);
	CU_ASSERT_EQUAL(vf_fs_info_server("{\"Opts\":{}}", &addr, &port, &err), VF_EPROTO);
	CU_ASSERT_PTR_NULL(addr);
	CU_ASSERT_EQUAL(vf_fs_info_server("{\"Addr\":\"a\",\"Port\":70000}", &addr, &port, &err),
	                VF_EPROTO);
	CU_ASSERT_EQUAL(vf_fs_info_server("not json", &addr, &port, &err), VF_EPROTO);
	CU_ASSERT_EQUAL(vf_fs_info_server(NULL, &addr, &port, &err), VF_EPROTO);
}

/* ---- hooks driver with a recording script ---- */

static const char *const rec_script =
        "#!/bin/sh\n"
        "# records each call; behaviour chosen by the volume name\n"
        "log=\"$(dirname \"$0\")/calls.log\"\n"
        "echo \"argv=$*|vol=$VFILE_VOLUME|hook=$VFILE_HOOK|mp=${VFILE_MOUNTPOINT-unset}|"
        "root=$VFILE_EXPORT_ROOT|state=$VFILE_STATE_DIR|info=$VFILE_INFO|"
        "addr=${VFILE_ADDR-unset}|port=${VFILE_PORT-unset}|keep=$KEEP_ME\" >> \"$log\"\n"
        "case \"$2\" in\n"
        "fail) echo 'first line' >&2; echo 'boom: disk on fire' >&2; exit 3 ;;\n"
        "slow) sleep 30 & echo $! > \"$(dirname \"$0\")/bg.pid\"; sleep 30 ;;\n"
        "mute) exit 0 ;;\n"
        "esac\n"
        "case \"$1\" in\n"
        "start) echo '10.0.0.5 2049'; echo 'extra ignored' ;;\n"
        "status) test -e \"$(dirname \"$0\")/up.$2\"; exit $? ;;\n"
        "esac\n"
        "exit 0\n";

static int hooks_open_rec(config_t *cfg, const struct vf_fs_ops **ops, void **arg, int with_status,
                          int timeout_ms)
{
	char script[PATH_MAX + 16], text[4 * PATH_MAX + 512];
	struct vf_err err = {0};
	int rc;

	snprintf(script, sizeof(script), "%s/rec.sh", fs_tmp);
	fs_write(script, rec_script, 0755);
	if (snprintf(text, sizeof(text),
	             "fileserver = {\n driver = \"hooks\";\n export_root = \"%s/export\";\n"
	             " hook_timeout_ms = %d;\n hooks = {\n  start = \"%s\";\n  stop = [\"%s\"];\n"
	             "  mount = \"%s\";\n  unmount = \"%s\";\n%s%s%s };\n};\n",
	             fs_tmp, timeout_ms, script, script, script, script,
	             with_status ? "  status = \"" : "", with_status ? script : "",
	             with_status ? "\";\n" : "") >= (int)sizeof(text))
		return -100;
	rc = fs_open_text(text, cfg, ops, arg, &err);
	if (rc != VF_OK)
		fprintf(stderr, "\n  %s\n", err.msg);
	return rc;
}

static char *hooks_log(void)
{
	char path[PATH_MAX + 16];
	char *text;

	snprintf(path, sizeof(path), "%s/calls.log", fs_tmp);
	text = fs_slurp(path);
	unlink(path);
	return text;
}

static void test_hooks_calls(void)
{
	const struct vf_fs_ops *ops = NULL;
	struct vf_err err = {0};
	void *arg = NULL;
	char *addr = NULL, *log, want[3 * PATH_MAX];
	int port = 0;
	config_t cfg;

	CU_ASSERT_EQUAL_FATAL(hooks_open_rec(&cfg, &ops, &arg, 0, 10000), VF_OK);
	free(hooks_log());
	setenv("KEEP_ME", "kept", 1);
	setenv("VFILE_MOUNTPOINT", "/stale/from/parent", 1); /* must not leak into hooks */

	CU_ASSERT_EQUAL(ops->running(arg, "vol1"), 0);
	CU_ASSERT_EQUAL(ops->start(arg, "vol1", "{\"Opts\":{\"size\":\"1G\"}}", &addr, &port, &err),
	                VF_OK);
	CU_ASSERT_STRING_EQUAL(addr, "10.0.0.5");
	CU_ASSERT_EQUAL(port, 2049);
	free(addr);
	CU_ASSERT_EQUAL(ops->running(arg, "vol1"), 1); /* no status hook: remembered */
	log = hooks_log();
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	snprintf(want, sizeof(want),
	         "argv=start vol1|vol=vol1|hook=start|mp=unset|root=%s/export|state=%s|"
	         "info={\"Opts\":{\"size\":\"1G\"}}|addr=unset|port=unset|keep=kept\n",
	         fs_tmp, fs_tmp);
	CU_ASSERT_STRING_EQUAL(log, want);
	free(log);

	CU_ASSERT_EQUAL(ops->mount(arg, "vol1",
	                           "{\"Server\":{\"Addr\":\"10.0.0.5\",\"Port\":2049}}",
	                           "/mnt/point one", &err),
	                VF_OK);
	log = hooks_log();
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	snprintf(want, sizeof(want),
	         "argv=mount vol1 /mnt/point one|vol=vol1|hook=mount|mp=/mnt/point one|"
	         "root=%s/export|state=%s|info={\"Server\":{\"Addr\":\"10.0.0.5\",\"Port\":2049}}|"
	         "addr=10.0.0.5|port=2049|keep=kept\n",
	         fs_tmp, fs_tmp);
	CU_ASSERT_STRING_EQUAL(log, want);
	free(log);

	CU_ASSERT_EQUAL(ops->unmount(arg, "vol1", "/mnt/p", &err), VF_OK);
	log = hooks_log();
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT(strncmp(log, "argv=unmount vol1 /mnt/p|vol=vol1|hook=unmount|mp=/mnt/p|", 57) ==
	          0);
	free(log);

	CU_ASSERT_EQUAL(ops->stop(arg, "vol1", "{}", &err), VF_OK);
	CU_ASSERT_EQUAL(ops->running(arg, "vol1"), 0);
	log = hooks_log();
	CU_ASSERT_PTR_NOT_NULL_FATAL(log);
	CU_ASSERT(strncmp(log, "argv=stop vol1|vol=vol1|hook=stop|mp=unset|", 43) == 0);
	free(log);

	unsetenv("VFILE_MOUNTPOINT");
	vf_fs_close(arg);
	config_destroy(&cfg);
}

static void test_hooks_errors(void)
{
	const struct vf_fs_ops *ops = NULL;
	struct vf_err err = {0};
	void *arg = NULL;
	char *addr = NULL;
	int port = 0;
	config_t cfg;

	CU_ASSERT_EQUAL_FATAL(hooks_open_rec(&cfg, &ops, &arg, 1, 10000), VF_OK);
	/* a failing hook: its exit code and last stderr line */
	CU_ASSERT_EQUAL(ops->start(arg, "fail", "{}", &addr, &port, &err), VF_EINVAL);
	CU_ASSERT_PTR_NULL(addr);
	CU_ASSERT(strstr(err.msg, "volume fail: start hook") != NULL);
	CU_ASSERT(strstr(err.msg, "exited with 3: boom: disk on fire") != NULL);
	CU_ASSERT_EQUAL(ops->running(arg, "fail"), 0);
	CU_ASSERT_EQUAL(ops->mount(arg, "fail", "{}", "/mnt/x", &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "mount hook") != NULL);
	/* start printing nothing: a protocol error */
	CU_ASSERT_EQUAL(ops->start(arg, "mute", "{}", &addr, &port, &err), VF_EPROTO);
	CU_ASSERT(strstr(err.msg, "ADDR PORT") != NULL);
	CU_ASSERT_PTR_NULL(addr);
	/* the status hook decides running() */
	char up[PATH_MAX + 16];
	snprintf(up, sizeof(up), "%s/up.vs", fs_tmp);
	CU_ASSERT_EQUAL(ops->running(arg, "vs"), 0);
	fs_write(up, "", 0644);
	CU_ASSERT_EQUAL(ops->running(arg, "vs"), 1);
	unlink(up);
	CU_ASSERT_EQUAL(ops->running(arg, "vs"), 0);
	free(hooks_log());
	vf_fs_close(arg);
	config_destroy(&cfg);
}

static void test_hooks_timeout(void)
{
	const struct vf_fs_ops *ops = NULL;
	struct vf_err err = {0};
	void *arg = NULL;
	char *addr = NULL, pidf[PATH_MAX + 16], *pidtxt;
	int port = 0;
	int64_t t0;
	config_t cfg;

	/*
	 * The hook is killed once its timeout passes, wherever it is: on a busy
	 * machine the shell may not yet have started its background child (and
	 * written bg.pid) 300 ms in. Then the timeout is checked again with a longer
	 * one, until the child exists, so the process-group kill below is always
	 * exercised; the bounds are the timeout and the kill's own grace.
	 */
	static const int timeouts[] = {300, 3000, 30000};
	char want[32];

	snprintf(pidf, sizeof(pidf), "%s/bg.pid", fs_tmp);
	pidtxt = NULL;
	for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]) && !pidtxt; i++) {
		unlink(pidf);
		CU_ASSERT_EQUAL_FATAL(hooks_open_rec(&cfg, &ops, &arg, 0, timeouts[i]), VF_OK);
		t0 = vf_now_ms();
		CU_ASSERT_EQUAL(ops->start(arg, "slow", "{}", &addr, &port, &err), VF_ETIMEDOUT);
		CU_ASSERT(vf_now_ms() - t0 >= timeouts[i]);
		CU_ASSERT(vf_now_ms() - t0 < timeouts[i] + 10000);
		CU_ASSERT(strstr(err.msg, "volume slow: start hook") != NULL);
		snprintf(want, sizeof(want), "%d ms", timeouts[i]);
		CU_ASSERT(strstr(err.msg, want) != NULL);
		CU_ASSERT_PTR_NULL(addr);
		pidtxt = fs_slurp(pidf);
		if (!pidtxt) {
			free(hooks_log());
			vf_fs_close(arg);
			config_destroy(&cfg);
		}
	}
	/* the hook's background child died with its process group */
	CU_ASSERT_PTR_NOT_NULL_FATAL(pidtxt);
	pid_t bg = (pid_t)atoi(pidtxt);
	free(pidtxt);
	int64_t deadline = vf_now_ms() + 20000; /* returns once it holds */
	while (bg > 0 && kill(bg, 0) == 0 && vf_now_ms() < deadline) {
		char path[64], *st = NULL;

		/* a zombie re-parented to init counts as dead */
		snprintf(path, sizeof(path), "/proc/%ld/stat", (long)bg);
		if (vf_fs_read_file(path, &st, NULL, NULL) == VF_OK && strstr(st, ") Z ")) {
			free(st);
			break;
		}
		free(st);
		usleep(20000);
	}
	char path[64], *st = NULL;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)bg);
	CU_ASSERT(vf_fs_read_file(path, &st, NULL, NULL) != VF_OK || strstr(st, ") Z ") != NULL);
	free(st);
	unlink(pidf);
	free(hooks_log());
	vf_fs_close(arg);
	config_destroy(&cfg);
}

/* ---- the sample "local directory" hook ---- */

static void test_hooks_sample(void)
{
	const char *top = getenv("top_srcdir");
	const struct vf_fs_ops *ops = NULL;
	struct vf_err err = {0};
	void *arg = NULL;
	char script[PATH_MAX], text[4 * PATH_MAX + 256], mp[PATH_MAX + 8], file[PATH_MAX + 32];
	char *addr = NULL, *data;
	int port = -1;
	config_t cfg;

	snprintf(script, sizeof(script), "%s/conf/hooks/vfile-local-hook", top ? top : "../..");
	CU_ASSERT_EQUAL_FATAL(access(script, X_OK), 0);
	if (snprintf(text, sizeof(text),
	             "fileserver = { driver = \"hooks\"; export_root = \"%s/lexport\"; hooks = { "
	             "start = \"%s\"; stop = \"%s\"; mount = \"%s\"; unmount = \"%s\"; status = "
	             "\"%s\"; "
	             "}; };",
	             fs_tmp, script, script, script, script, script) >= (int)sizeof(text))
		CU_FAIL_FATAL("config text too long");
	CU_ASSERT_EQUAL_FATAL(fs_open_text(text, &cfg, &ops, &arg, &err), VF_OK);
	CU_ASSERT_EQUAL(ops->running(arg, "loc"), 0);
	CU_ASSERT_EQUAL(ops->start(arg, "loc", "{}", &addr, &port, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(addr, "127.0.0.1");
	CU_ASSERT_EQUAL(port, 0);
	free(addr);
	CU_ASSERT_EQUAL(ops->running(arg, "loc"), 1);
	snprintf(file, sizeof(file), "%s/lexport/loc", fs_tmp);
	struct stat st;
	CU_ASSERT(stat(file, &st) == 0 && S_ISDIR(st.st_mode));

	/* mount: a bind mount, which needs root (and a mount namespace that allows it) */
	snprintf(mp, sizeof(mp), "%s/mnt", fs_tmp);
	mkdir(mp, 0755);
	if (geteuid() != 0 || mount(file, mp, "none", MS_BIND, NULL) != 0) {
		fprintf(stderr, "\n  (bind mounts unavailable: %s; sample mount not run) ",
		        strerror(errno));
	} else {
		umount(mp);
		CU_ASSERT_EQUAL(
		        ops->mount(arg, "loc", "{\"Addr\":\"127.0.0.1\",\"Port\":0}", mp, &err),
		        VF_OK);
		CU_ASSERT_EQUAL(vf_fs_is_mounted(mp), 1);
		snprintf(file, sizeof(file), "%s/hello", mp);
		fs_write(file, "through the mount\n", 0644);
		snprintf(file, sizeof(file), "%s/lexport/loc/hello", fs_tmp);
		data = fs_slurp(file);
		CU_ASSERT_PTR_NOT_NULL(data);
		if (data)
			CU_ASSERT_STRING_EQUAL(data, "through the mount\n");
		free(data);
		/* mount twice is fine; unmount, then unmount again is fine */
		CU_ASSERT_EQUAL(ops->mount(arg, "loc", "{}", mp, &err), VF_OK);
		CU_ASSERT_EQUAL(ops->unmount(arg, "loc", mp, &err), VF_OK);
		CU_ASSERT_EQUAL(vf_fs_is_mounted(mp), 0);
		CU_ASSERT_EQUAL(ops->unmount(arg, "loc", mp, &err), VF_OK);
		umount(mp); /* in case an assertion above failed */
	}
	CU_ASSERT_EQUAL(ops->stop(arg, "loc", "{}", &err), VF_OK);
	vf_fs_close(arg);
	config_destroy(&cfg);
}

static int fs_suite_init(void)
{
	snprintf(fs_tmp, sizeof(fs_tmp), "/tmp/vfile-test-fs.XXXXXX");
	return mkdtemp(fs_tmp) ? 0 : -1;
}

static int fs_suite_clean(void)
{
	const char *argv[] = {"rm", "-rf", fs_tmp, NULL};
	int status;

	if (fs_tmp[0])
		vf_fs_run(argv, NULL, 10000, &status, NULL, NULL, NULL);
	return 0;
}

void vf_test_register_fs(void);
void vf_test_register_fs(void)
{
	CU_pSuite s = CU_add_suite("fs", fs_suite_init, fs_suite_clean);

	if (s == NULL)
		vf_test_abort("suite fs");
	VF_ADD_TEST(s, test_cfg_defaults);
	VF_ADD_TEST(s, test_cfg_errors);
	VF_ADD_TEST(s, test_cfg_sample);
	VF_ADD_TEST(s, test_none);
	VF_ADD_TEST(s, test_info_server);
	VF_ADD_TEST(s, test_hooks_calls);
	VF_ADD_TEST(s, test_hooks_errors);
	VF_ADD_TEST(s, test_hooks_timeout);
	VF_ADD_TEST(s, test_hooks_sample);
}
