/* Unit tests of the vfile.conf loader (src/conf/config.c) over tests/data/conf. */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_int.h"
#include "common_int.h"
#include "config_int.h"

static char conf_path[4096];

static const char *conf_file(const char *name)
{
	const char *dir = getenv("VFILE_TEST_DATA");

	snprintf(conf_path, sizeof(conf_path), "%s/conf/%s", dir ? dir : "tests/data", name);
	return conf_path;
}

/* Load name, expect failure whose message holds "<file>:<line>:" and every needle. */
static void conf_expect_error(const char *name, int line, const char *n1, const char *n2)
{
	struct vf_conf *c = NULL;
	struct vf_err err = {0};
	char where[4200];

	CU_ASSERT_EQUAL(vf_conf_load(conf_file(name), &c, &err), VF_EINVAL);
	CU_ASSERT_PTR_NULL(c);
	if (line > 0)
		snprintf(where, sizeof(where), "%s:%d: ", conf_path, line);
	else
		snprintf(where, sizeof(where), "%s: ", conf_path);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, where));
	if (n1)
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, n1));
	if (n2)
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, n2));
	if (strstr(err.msg, where) == NULL || (n1 && !strstr(err.msg, n1)) ||
	    (n2 && !strstr(err.msg, n2)))
		fprintf(stderr, "unexpected message for %s: %s\n", name, err.msg);
	vf_conf_free(&c);
}

static void test_conf_good(void)
{
	struct vf_conf *c = NULL;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL_FATAL(vf_conf_load(conf_file("good.conf"), &c, &err), VF_OK);
	CU_ASSERT_STRING_EQUAL(c->node_id, "host-a");
	CU_ASSERT(c->node_id_set);
	CU_ASSERT_EQUAL(c->role, VF_ROLE_MANAGER);
	CU_ASSERT_STRING_EQUAL(c->backend, "etcd");
	CU_ASSERT_STRING_EQUAL(c->backend_name, "etcd");
	CU_ASSERT_STRING_EQUAL(c->backend_dir, "/usr/lib/vfile/backends");
	CU_ASSERT_STRING_EQUAL(c->plugin_socket, "/run/docker/plugins/vfile.sock");
	CU_ASSERT_STRING_EQUAL(c->socket_group, "docker");
	CU_ASSERT_EQUAL(c->socket_mode, 0660);
	CU_ASSERT_EQUAL(c->lease_ttl_s, 15);
	CU_ASSERT_EQUAL(c->op_timeout_ms, 20000);
	CU_ASSERT_EQUAL(c->reconcile_ms, 3000);
	CU_ASSERT_EQUAL(c->request_timeout_ms, 4000);
	CU_ASSERT_EQUAL(c->log_level, VF_LOG_DEBUG);
	CU_ASSERT_STRING_EQUAL(c->log_target, "syslog");
	CU_ASSERT_FALSE(c->has_secret);
	CU_ASSERT(c->embedded.enabled);
	CU_ASSERT_STRING_EQUAL(c->embedded.data_dir, "/var/lib/vfile/etcd-data");
	CU_ASSERT_STRING_EQUAL(c->embedded.client_url, "http://127.0.0.1:12379");
	CU_ASSERT_STRING_EQUAL(c->embedded.peer_url, "http://127.0.0.1:12380");
	/* The driver's group keeps its own settings and loses vfiled's. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->backend_group);
	CU_ASSERT_PTR_NOT_NULL(config_setting_get_member(c->backend_group, "endpoints"));
	CU_ASSERT_PTR_NULL(config_setting_get_member(c->backend_group, "embedded"));
	CU_ASSERT_PTR_NULL(config_setting_get_member(c->backend_group, "embedded_client_url"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->fileserver_group);
	CU_ASSERT_STRING_EQUAL(
	        config_setting_get_string(config_setting_get_member(c->fileserver_group, "driver")),
	        "sftp");
	vf_conf_free(&c);
	CU_ASSERT_PTR_NULL(c);
}

static void test_conf_defaults(void)
{
	struct vf_conf *c = NULL;
	struct vf_err err = {0};
	char host[256] = "";

	CU_ASSERT_EQUAL_FATAL(vf_conf_load(conf_file("minimal.conf"), &c, &err), VF_OK);
	gethostname(host, sizeof(host) - 1);
	CU_ASSERT_STRING_EQUAL(c->node_id, host);
	CU_ASSERT_FALSE(c->node_id_set);
	CU_ASSERT_EQUAL(c->role, VF_ROLE_WORKER);
	CU_ASSERT_STRING_EQUAL(c->backend_name, "consul");
	CU_ASSERT_PTR_NULL(c->backend_dir);
	CU_ASSERT_STRING_EQUAL(c->prefix, "vfile/");
	CU_ASSERT_STRING_EQUAL(c->plugin_socket, "/run/docker/plugins/vfile.sock");
	CU_ASSERT_STRING_EQUAL(c->mount_root, "/var/lib/vfile/mounts");
	CU_ASSERT_STRING_EQUAL(c->state_dir, "/var/lib/vfile");
	CU_ASSERT_STRING_EQUAL(c->docker_socket, "/var/run/docker.sock");
	CU_ASSERT_PTR_NULL(c->socket_group);
	CU_ASSERT_EQUAL(c->socket_mode, 0660);
	CU_ASSERT_EQUAL(c->lease_ttl_s, 10);
	CU_ASSERT_EQUAL(c->op_timeout_ms, 30000);
	CU_ASSERT_EQUAL(c->docker_wait_s, 300);
	CU_ASSERT_EQUAL(c->log_level, VF_LOG_INFO);
	CU_ASSERT_STRING_EQUAL(c->log_target, "stderr");
	CU_ASSERT_FALSE(c->embedded.enabled);
	CU_ASSERT_PTR_NULL(c->backend_group);
	CU_ASSERT_PTR_NULL(c->fileserver_group);
	vf_conf_free(&c);
}

/* The shipped sample (conf/vfile.conf, /etc/vfile/vfile.conf of the .deb): a
 * worker, every setting commented (its groups empty) but the required backend. */
static void test_conf_sample(void)
{
	const char *top = getenv("top_srcdir");
	struct vf_conf *c = NULL;
	struct vf_err err = {0};
	char path[4096];

	snprintf(path, sizeof(path), "%s/conf/vfile.conf", top ? top : ".");
	CU_ASSERT_EQUAL_FATAL(vf_conf_load(path, &c, &err), VF_OK);
	CU_ASSERT_EQUAL(c->role, VF_ROLE_WORKER);
	CU_ASSERT_FALSE(c->has_secret);
	config_setting_t *root = config_root_setting(&c->cfg);
	for (int i = 0; i < config_setting_length(root); i++) {
		config_setting_t *m = config_setting_get_elem(root, (unsigned int)i);
		const char *name = config_setting_name(m);

		if (config_setting_type(m) == CONFIG_TYPE_GROUP) {
			CU_ASSERT_EQUAL(config_setting_length(m), 0);
			if (config_setting_length(m) != 0)
				printf("\n    group %s has an uncommented setting", name);
		} else {
			CU_ASSERT_STRING_EQUAL(name, "backend");
		}
	}
	vf_conf_free(&c);
}

static void test_conf_wrong_types(void)
{
	conf_expect_error("wrong_type_int.conf", 3, "'lease_ttl_s'", "must be an integer");
	conf_expect_error("wrong_type_str.conf", 3, "'mount_root'", "must be a string");
	conf_expect_error("wrong_type_bool.conf", 3, "'etcd.embedded'", "must be a boolean");
	conf_expect_error("wrong_type_group.conf", 2, "'fileserver'", "must be a group");
	conf_expect_error("bad_mode.conf", 2, "'socket_mode'", "octal");
	conf_expect_error("negative_timeout.conf", 2, "'op_timeout_ms'", "positive");
	conf_expect_error("bad_role.conf", 2, "'role'", "manager, worker, auto");
}

static void test_conf_unknown_setting(void)
{
	conf_expect_error("unknown_setting.conf", 3, "unknown setting", "plugin_sock");
}

static void test_conf_missing_required(void)
{
	conf_expect_error("missing_backend.conf", 0, "missing required setting 'backend'", NULL);
}

static void test_conf_syntax_and_io(void)
{
	struct vf_conf *c = NULL;
	struct vf_err err = {0};

	conf_expect_error("bad_syntax.conf", 2, "syntax error", NULL);
	CU_ASSERT_EQUAL(vf_conf_load(conf_file("does-not-exist.conf"), &c, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "does-not-exist.conf"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot read"));
	CU_ASSERT_PTR_NULL(c);
}

static void test_conf_string_and_module_path(void)
{
	struct vf_conf *c = NULL;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL_FATAL(vf_conf_load_string("backend = \"/opt/x/libmykv.so\";\n"
	                                          "mykv = { url = \"u\"; };\n",
	                                          "inline", &c, &err),
	                      VF_EINVAL); /* mykv is not a known top-level group */
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown setting 'mykv'"));
	CU_ASSERT_EQUAL_FATAL(vf_conf_load_string("backend = \"/opt/x/etcd.so\";\n"
	                                          "etcd = { endpoints = \"http://h:1\"; };\n",
	                                          "inline", &c, &err),
	                      VF_OK);
	CU_ASSERT_STRING_EQUAL(c->backend_name, "etcd");
	CU_ASSERT_PTR_NOT_NULL(c->backend_group);
	vf_conf_free(&c);
	CU_ASSERT_EQUAL(
	        vf_conf_load_string("backend = \"etcd\";\nprefix = \"\";\n", "inline", &c, &err),
	        VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "inline:2: setting 'prefix' must not be empty"));
}

static void test_conf_evict_after(void)
{
	struct vf_conf *c = NULL;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL_FATAL(vf_conf_load_string("backend = \"etcd\";\n", "inline", &c, &err),
	                      VF_OK);
	CU_ASSERT_EQUAL(c->evict_after_s, 0); /* off by default */
	vf_conf_free(&c);
	CU_ASSERT_EQUAL_FATAL(vf_conf_load_string("backend = \"etcd\";\nlease_ttl_s = 10;\n"
	                                          "evict_after_s = 600;\n",
	                                          "inline", &c, &err),
	                      VF_OK);
	CU_ASSERT_EQUAL(c->evict_after_s, 600);
	vf_conf_free(&c);
	CU_ASSERT_EQUAL(vf_conf_load_string("backend = \"etcd\";\nlease_ttl_s = 10;\n"
	                                    "evict_after_s = 15;\n",
	                                    "inline", &c, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "inline:3: setting 'evict_after_s'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "twice lease_ttl_s"));
	CU_ASSERT_EQUAL(vf_conf_load_string("backend = \"etcd\";\nevict_after_s = -1;\n", "inline",
	                                    &c, &err),
	                VF_EINVAL);
}

static void test_conf_secret_perms(void)
{
	char path[] = "/tmp/vfile-conf-XXXXXX";
	struct vf_conf *c = NULL;
	struct vf_err err = {0};
	FILE *in, *out;
	char buf[512];
	size_t n;
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	in = fopen(conf_file("secret.conf"), "r");
	out = fdopen(fd, "w");
	CU_ASSERT_FATAL(in != NULL && out != NULL);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, n, out);
	fclose(in);
	fclose(out);
	chmod(path, 0644);
	CU_ASSERT_EQUAL_FATAL(vf_conf_load(path, &c, &err), VF_OK);
	CU_ASSERT(c->has_secret);
	CU_ASSERT_EQUAL(vf_conf_check_perms(c, &err), VF_EAUTH);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "readable by others"));
	CU_ASSERT_PTR_NULL(strstr(err.msg, "s3cret")); /* never the secret itself */
	chmod(path, 0640);
	CU_ASSERT_EQUAL(vf_conf_check_perms(c, &err), VF_OK);
	vf_conf_free(&c);
	unlink(path);
	/* No secret: any mode is fine. */
	CU_ASSERT_EQUAL_FATAL(vf_conf_load(conf_file("minimal.conf"), &c, &err), VF_OK);
	CU_ASSERT_FALSE(c->has_secret);
	CU_ASSERT_EQUAL(vf_conf_check_perms(c, &err), VF_OK);
	vf_conf_free(&c);
}

/* Issue 15: the embedded cluster's settings, read by vfiled and kept from the driver. */
static void test_conf_embedded_cluster(void)
{
	struct vf_conf *c = NULL;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL_FATAL(
	        vf_conf_load_string(
	                "backend = \"etcd\";\nnode_id = \"n1\";\netcd = { embedded = "
	                "true;\n embedded_seeds = [ \"http://10.0.0.1:2379\", "
	                "\"https://10.0.0.2:2379\" ];\n embedded_max_members = 3;\n "
	                "cacert = \"/ca.pem\"; cert = \"/c.pem\"; key = \"/k.pem\"; };\n",
	                "e.conf", &c, &err),
	        VF_OK);
	CU_ASSERT_EQUAL(c->embedded.nseeds, 2);
	CU_ASSERT_STRING_EQUAL(c->embedded.seeds[1], "https://10.0.0.2:2379");
	CU_ASSERT_EQUAL(c->embedded.max_members, 3);
	CU_ASSERT_PTR_NULL(c->embedded.name); /* vfiled uses the node id */
	CU_ASSERT_FALSE(c->embedded.client_url_set);
	CU_ASSERT_STRING_EQUAL(c->embedded.cacert, "/ca.pem");
	CU_ASSERT_STRING_EQUAL(c->embedded.key, "/k.pem");
	CU_ASSERT_PTR_NULL(config_setting_get_member(c->backend_group, "embedded_seeds"));
	CU_ASSERT_PTR_NULL(config_setting_get_member(c->backend_group, "embedded_max_members"));
	/* the TLS files stay the driver's too */
	CU_ASSERT_PTR_NOT_NULL(config_setting_get_member(c->backend_group, "cacert"));
	vf_conf_free(&c);
	CU_ASSERT_EQUAL(vf_conf_load_string("backend = \"etcd\";\netcd = { embedded = true;\n "
	                                    "embedded_seeds = [ \"10.0.0.1:2379\" ]; };\n",
	                                    "e.conf", &c, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "e.conf:3: setting 'etcd.embedded_seeds'"));
	CU_ASSERT_EQUAL(vf_conf_load_string("backend = \"etcd\";\netcd = { embedded = true;\n "
	                                    "embedded_max_members = 0; };\n",
	                                    "e.conf", &c, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "embedded_max_members"));
	CU_ASSERT_EQUAL(vf_conf_load_string("backend = \"etcd\";\netcd = { embedded_name = 5; };\n",
	                                    "e.conf", &c, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "embedded_name"));
}

void vf_test_register_config(void);
void vf_test_register_metrics(void);
void vf_test_register_config(void)
{
	CU_pSuite s = CU_add_suite("config", NULL, NULL);

	vf_test_register_metrics();

	if (s == NULL)
		vf_test_abort("config suite");
	VF_ADD_TEST(s, test_conf_good);
	VF_ADD_TEST(s, test_conf_defaults);
	VF_ADD_TEST(s, test_conf_sample);
	VF_ADD_TEST(s, test_conf_wrong_types);
	VF_ADD_TEST(s, test_conf_unknown_setting);
	VF_ADD_TEST(s, test_conf_missing_required);
	VF_ADD_TEST(s, test_conf_syntax_and_io);
	VF_ADD_TEST(s, test_conf_string_and_module_path);
	VF_ADD_TEST(s, test_conf_evict_after);
	VF_ADD_TEST(s, test_conf_secret_perms);
	VF_ADD_TEST(s, test_conf_embedded_cluster);
}
