/* Unit tests of secrets and environment defaults: vf_cfg_secret (inline, *_file,
 * systemd credentials, environment) and the backends' fallbacks to etcdctl's and
 * the consul CLI's environment where the config is silent (the config wins). No
 * server: the backends are opened, and a read against a closed port shows which
 * endpoint they use. No message may hold a secret. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common_int.h"
#include "test_int.h"
#include "vfile/vfile.h"

static char sec_dir[256];
static char sec_value[64]; /* a distinctive secret: must never show in a message */

static const char *const sec_env[] = {
        "CREDENTIALS_DIRECTORY",  "ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT",
        "ETCDCTL_CERT",           "ETCDCTL_KEY",       "ETCDCTL_USER",
        "ETCDCTL_PASSWORD",       "CONSUL_HTTP_ADDR",  "CONSUL_HTTP_TOKEN",
        "CONSUL_HTTP_TOKEN_FILE", "CONSUL_CACERT",     "CONSUL_CLIENT_CERT",
        "CONSUL_CLIENT_KEY",      "CONSUL_HTTP_SSL",   NULL,
};

static void sec_clear_env(void)
{
	for (const char *const *e = sec_env; *e; e++)
		unsetenv(*e);
}

static void sec_write(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", sec_dir, name);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static int sec_init(void)
{
	snprintf(sec_dir, sizeof(sec_dir), "/tmp/vfile-unit-secrets.XXXXXX");
	if (mkdtemp(sec_dir) == NULL)
		return 1;
	snprintf(sec_value, sizeof(sec_value), "unit-secret-%ld-%d", (long)getpid(), rand());
	/* make check-secrets look for it in every log */
	const char *top = getenv("top_builddir");
	char list[512];
	FILE *f;

	snprintf(list, sizeof(list), "%s/tests/harness/secrets.list", top ? top : ".");
	if ((f = fopen(list, "a")) != NULL) {
		fprintf(f, "%s\n", sec_value);
		fclose(f);
	}
	sec_clear_env();
	return 0;
}

static int sec_cleanup(void)
{
	char cmd[300];

	sec_clear_env();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sec_dir);
	return system(cmd) == 0 ? 0 : 1;
}

/* Parse "g = { text };" and return g (c must be destroyed by the caller). */
static config_setting_t *sec_group(config_t *c, const char *text)
{
	char buf[2048];

	config_init(c);
	snprintf(buf, sizeof(buf), "g = { %s };", text);
	CU_ASSERT_FATAL(config_read_string(c, buf) == CONFIG_TRUE);
	return config_lookup(c, "g");
}

/* vf_cfg_secret on group text; returns the code, the secret in *out_r. */
static int sec_get(const char *text, char **out_r, struct vf_err *err)
{
	config_t c;
	int rc;

	memset(err, 0, sizeof(*err));
	rc = vf_cfg_secret(sec_group(&c, text), "g", "password", "g-password", "G_PASSWORD",
	                   "G_PASSWORD_FILE", out_r, err);
	config_destroy(&c);
	if (rc != VF_OK)
		CU_ASSERT(strstr(err->msg, sec_value) == NULL); /* never the secret */
	return rc;
}

static void test_secret_sources(void)
{
	struct vf_err err;
	char *s = NULL, text[600], line[200];

	sec_clear_env();
	unsetenv("G_PASSWORD");
	unsetenv("G_PASSWORD_FILE");
	/* nothing anywhere */
	CU_ASSERT_EQUAL(sec_get("a = 1;", &s, &err), VF_OK);
	CU_ASSERT_PTR_NULL(s);
	/* inline */
	CU_ASSERT_EQUAL(sec_get("password = \"inline\";", &s, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(s, "inline");
	free(s);
	/* a file: one line, its newline dropped */
	snprintf(line, sizeof(line), "%s\n", sec_value);
	sec_write("pw", line);
	snprintf(text, sizeof(text), "password_file = \"%s/pw\";", sec_dir);
	CU_ASSERT_EQUAL(sec_get(text, &s, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(s, sec_value);
	free(s);
	/* both: refused */
	snprintf(text, sizeof(text), "password = \"x\"; password_file = \"%s/pw\";", sec_dir);
	CU_ASSERT_EQUAL(sec_get(text, &s, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "exclude each other") != NULL);
	/* a missing file: named */
	snprintf(text, sizeof(text), "password_file = \"%s/missing\";", sec_dir);
	CU_ASSERT_EQUAL(sec_get(text, &s, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "g.password_file") != NULL);
	CU_ASSERT(strstr(err.msg, "/missing") != NULL);
	/* an empty file, a file of two lines: refused, the content not shown */
	sec_write("empty", "\n");
	snprintf(text, sizeof(text), "password_file = \"%s/empty\";", sec_dir);
	CU_ASSERT_EQUAL(sec_get(text, &s, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "is empty") != NULL);
	snprintf(line, sizeof(line), "%s\nsecond line\n", sec_value);
	sec_write("two", line);
	snprintf(text, sizeof(text), "password_file = \"%s/two\";", sec_dir);
	CU_ASSERT_EQUAL(sec_get(text, &s, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "more than one line") != NULL);
	/* a credential name: needs $CREDENTIALS_DIRECTORY */
	CU_ASSERT_EQUAL(sec_get("password_file = \"pw\";", &s, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "CREDENTIALS_DIRECTORY") != NULL);
	setenv("CREDENTIALS_DIRECTORY", sec_dir, 1);
	CU_ASSERT_EQUAL(sec_get("password_file = \"pw\";", &s, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(s, sec_value);
	free(s);
	/* the default credential when the config is silent, before the environment */
	sec_write("g-password", "from-credential\n");
	setenv("G_PASSWORD", "from-env", 1);
	CU_ASSERT_EQUAL(sec_get("a = 1;", &s, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(s, "from-credential");
	free(s);
	/* the config wins over the credential and the environment */
	CU_ASSERT_EQUAL(sec_get("password = \"inline\";", &s, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(s, "inline");
	free(s);
	/* no credential: the environment, then the file the environment names */
	unsetenv("CREDENTIALS_DIRECTORY");
	CU_ASSERT_EQUAL(sec_get("a = 1;", &s, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(s, "from-env");
	free(s);
	unsetenv("G_PASSWORD");
	snprintf(text, sizeof(text), "%s/pw", sec_dir);
	setenv("G_PASSWORD_FILE", text, 1);
	CU_ASSERT_EQUAL(sec_get("a = 1;", &s, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(s, sec_value);
	free(s);
	setenv("G_PASSWORD_FILE", "/nonexistent/vfile-token", 1);
	CU_ASSERT_EQUAL(sec_get("a = 1;", &s, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "$G_PASSWORD_FILE") != NULL);
	unsetenv("G_PASSWORD_FILE");
}

/* Open backend name with group text ("" for no group); VF_OK and *kv_r, or the
 * error in err. */
static int sec_open(const char *name, const char *text, struct vf_backend **be_r,
                    struct vf_kv **kv_r, struct vf_err *err)
{
	const char *dir = getenv("VFILE_BACKEND_DIR");
	config_t c;
	int rc;

	memset(err, 0, sizeof(*err));
	*kv_r = NULL;
	rc = vf_backend_load(name, dir, be_r, err);
	CU_ASSERT_EQUAL_FATAL(rc, VF_OK);
	rc = vf_backend_open(*be_r, text ? sec_group(&c, text) : NULL, kv_r, err);
	if (text)
		config_destroy(&c);
	if (rc != VF_OK) {
		CU_ASSERT(strstr(err->msg, sec_value) == NULL);
		vf_backend_unload(be_r);
	}
	return rc;
}

static void sec_close(struct vf_backend **be, struct vf_kv **kv)
{
	if (*kv)
		(*kv)->ops->close(*kv);
	*kv = NULL;
	vf_backend_unload(be);
}

/* A read through kv fails (closed port); its message names the endpoint used. */
static void sec_read_names(struct vf_kv *kv, const char *want, const char *not_want)
{
	struct vf_kv_pair p = {0};
	struct vf_err err = {0};

	CU_ASSERT_NOT_EQUAL(kv->ops->get(kv, "k", &p, &err), VF_OK);
	CU_ASSERT(strstr(err.msg, want) != NULL);
	if (not_want)
		CU_ASSERT(strstr(err.msg, not_want) == NULL);
	if (strstr(err.msg, want) == NULL)
		printf("\n    read error: %s (want %s)", err.msg, want);
}

static int sec_have(const char *name)
{
	char path[1024];
	const char *dir = getenv("VFILE_BACKEND_DIR");

	snprintf(path, sizeof(path), "%s/%s.so", dir ? dir : ".", name);
	return access(path, R_OK) == 0;
}

static void test_etcd_env(void)
{
	struct vf_backend *be = NULL;
	struct vf_kv *kv = NULL;
	struct vf_err err;
	char text[600], user[200];

	sec_clear_env();
	/* ETCDCTL_ENDPOINTS, in etcdctl's HOST:PORT form, when the config has none */
	setenv("ETCDCTL_ENDPOINTS", "127.0.0.1:1", 1);
	CU_ASSERT_EQUAL_FATAL(sec_open("etcd", "timeout_ms = 2000;", &be, &kv, &err), VF_OK);
	sec_read_names(kv, "http://127.0.0.1:1/", NULL);
	sec_close(&be, &kv);
	CU_ASSERT_EQUAL_FATAL(sec_open("etcd", NULL, &be, &kv, &err), VF_OK);
	sec_read_names(kv, "http://127.0.0.1:1/", NULL);
	sec_close(&be, &kv);
	/* the config wins */
	CU_ASSERT_EQUAL_FATAL(
	        sec_open("etcd", "endpoints = [ \"http://127.0.0.2:1\" ];", &be, &kv, &err), VF_OK);
	sec_read_names(kv, "http://127.0.0.2:1/", "127.0.0.1:1");
	sec_close(&be, &kv);
	/* ETCDCTL_CERT without ETCDCTL_KEY: taken, so refused as the config would be */
	setenv("ETCDCTL_CERT", "/nonexistent/cert.pem", 1);
	CU_ASSERT_EQUAL(sec_open("etcd", NULL, &be, &kv, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "'etcd.cert' and 'etcd.key'") != NULL);
	/* ... unless the config names both */
	CU_ASSERT_EQUAL(sec_open("etcd", "cert = \"/nonexistent/a.pem\"; key = \"/nonexistent/k\";",
	                         &be, &kv, &err),
	                VF_OK);
	sec_close(&be, &kv);
	unsetenv("ETCDCTL_CERT");
	/* a password without a user */
	setenv("ETCDCTL_PASSWORD", sec_value, 1);
	CU_ASSERT_EQUAL(sec_open("etcd", NULL, &be, &kv, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "needs 'etcd.username' or $ETCDCTL_USER") != NULL);
	/* ETCDCTL_USER gives the user (and user:password the password) */
	setenv("ETCDCTL_USER", "envuser", 1);
	CU_ASSERT_EQUAL(sec_open("etcd", NULL, &be, &kv, &err), VF_OK);
	sec_close(&be, &kv);
	unsetenv("ETCDCTL_PASSWORD");
	snprintf(user, sizeof(user), "envuser:%s", sec_value);
	setenv("ETCDCTL_USER", user, 1);
	CU_ASSERT_EQUAL(sec_open("etcd", NULL, &be, &kv, &err), VF_OK);
	sec_close(&be, &kv);
	/* password_file: a missing file is named, with the setting */
	snprintf(text, sizeof(text), "username = \"u\"; password_file = \"%s/nope\";", sec_dir);
	CU_ASSERT_EQUAL(sec_open("etcd", text, &be, &kv, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "etcd.password_file") != NULL);
	CU_ASSERT(strstr(err.msg, "/nope") != NULL);
	snprintf(text, sizeof(text), "%s\n", sec_value);
	sec_write("etcd-pw", text);
	snprintf(text, sizeof(text), "username = \"u\"; password_file = \"%s/etcd-pw\";", sec_dir);
	CU_ASSERT_EQUAL(sec_open("etcd", text, &be, &kv, &err), VF_OK);
	sec_close(&be, &kv);
	sec_clear_env();
}

static void test_consul_env(void)
{
	struct vf_backend *be = NULL;
	struct vf_kv *kv = NULL;
	struct vf_err err;
	char text[600];

	sec_clear_env();
	setenv("CONSUL_HTTP_ADDR", "127.0.0.1:1", 1);
	CU_ASSERT_EQUAL_FATAL(sec_open("consul", "timeout_ms = 2000;", &be, &kv, &err), VF_OK);
	sec_read_names(kv, "127.0.0.1:1", NULL);
	sec_close(&be, &kv);
	CU_ASSERT_EQUAL_FATAL(
	        sec_open("consul", "endpoints = [ \"http://127.0.0.2:1\" ];", &be, &kv, &err),
	        VF_OK);
	sec_read_names(kv, "127.0.0.2:1", "127.0.0.1:1");
	sec_close(&be, &kv);
	/* CONSUL_HTTP_TOKEN_FILE: read (a missing one is named), unless the config or
	 * CONSUL_HTTP_TOKEN gives the token */
	setenv("CONSUL_HTTP_TOKEN_FILE", "/nonexistent/consul-token", 1);
	CU_ASSERT_EQUAL(sec_open("consul", NULL, &be, &kv, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "$CONSUL_HTTP_TOKEN_FILE") != NULL);
	CU_ASSERT(strstr(err.msg, "/nonexistent/consul-token") != NULL);
	setenv("CONSUL_HTTP_TOKEN", sec_value, 1);
	CU_ASSERT_EQUAL(sec_open("consul", NULL, &be, &kv, &err), VF_OK);
	sec_close(&be, &kv);
	unsetenv("CONSUL_HTTP_TOKEN");
	CU_ASSERT_EQUAL(sec_open("consul", "token = \"t\";", &be, &kv, &err), VF_OK);
	sec_close(&be, &kv);
	unsetenv("CONSUL_HTTP_TOKEN_FILE");
	/* token_file and token together: refused */
	snprintf(text, sizeof(text), "token = \"t\"; token_file = \"%s/x\";", sec_dir);
	CU_ASSERT_EQUAL(sec_open("consul", text, &be, &kv, &err), VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "exclude each other") != NULL);
	/* token_file as a credential name */
	snprintf(text, sizeof(text), "%s\n", sec_value);
	sec_write("consul-tok", text);
	setenv("CREDENTIALS_DIRECTORY", sec_dir, 1);
	CU_ASSERT_EQUAL(sec_open("consul", "token_file = \"consul-tok\";", &be, &kv, &err), VF_OK);
	sec_close(&be, &kv);
	CU_ASSERT_EQUAL(sec_open("consul", "token_file = \"missing-tok\";", &be, &kv, &err),
	                VF_EINVAL);
	CU_ASSERT(strstr(err.msg, "consul.token_file") != NULL);
	CU_ASSERT(strstr(err.msg, "missing-tok") != NULL);
	sec_clear_env();
}

void vf_test_register_secrets(void);
void vf_test_register_secrets(void)
{
	CU_pSuite s = CU_add_suite("secrets", sec_init, sec_cleanup);

	VF_ADD_TEST(s, test_secret_sources);
	VF_ADD_TEST_IF(s, test_etcd_env,
	               sec_have("etcd") ? NULL : "built without the etcd backend");
	VF_ADD_TEST_IF(s, test_consul_env,
	               sec_have("consul") ? NULL : "built without the Consul backend");
}
