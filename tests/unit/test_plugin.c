/* Unit tests of the plugin protocol: the pure decoder, then the server on a
 * temporary unix socket with a stub handler (no store, no volume manager). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_int.h"
#include "common_int.h"
#include "plugin_int.h"

static const char *const test_known_opts[] = {"size", "mode", NULL};

static const char *const test_named_eps[] = {
        "/VolumeDriver.Create",
        "/VolumeDriver.Remove",
        "/VolumeDriver.Mount",
        "/VolumeDriver.Unmount",
        "/VolumeDriver.Path",
        "/VolumeDriver.Get",
        NULL,
};

static int dec(const char *path, const char *body, struct vf_plugin_req *req, struct vf_err *err)
{
	return vf_plugin_decode(path, body, body ? strlen(body) : 0, test_known_opts, req, err);
}

static void test_decode_good(void)
{
	struct vf_plugin_req r;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL_FATAL(
	        dec("/VolumeDriver.Create",
	            "{\"Name\":\"vol-1.a_b\",\"Opts\":{\"size\":\"1G\",\"mode\":\"rw\"}}", &r,
	            &err),
	        VF_OK);
	CU_ASSERT_EQUAL(r.ep, VF_EP_CREATE);
	CU_ASSERT_STRING_EQUAL(r.name, "vol-1.a_b");
	CU_ASSERT_EQUAL_FATAL(r.nopts, 2);
	CU_ASSERT_STRING_EQUAL(r.opts[0].key, "size");
	CU_ASSERT_STRING_EQUAL(r.opts[0].value, "1G");
	CU_ASSERT_STRING_EQUAL(r.opts[1].key, "mode");
	vf_plugin_req_clear(&r);
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":null}", &r, &err),
	                VF_OK);
	CU_ASSERT_EQUAL(r.nopts, 0);
	vf_plugin_req_clear(&r);

	CU_ASSERT_EQUAL_FATAL(
	        dec("/VolumeDriver.Mount", "{\"Name\":\"v\",\"ID\":\"abc123\"}", &r, &err), VF_OK);
	CU_ASSERT_EQUAL(r.ep, VF_EP_MOUNT);
	CU_ASSERT_STRING_EQUAL(r.id, "abc123");
	vf_plugin_req_clear(&r);
	CU_ASSERT_EQUAL_FATAL(
	        dec("/VolumeDriver.Unmount", "{\"Name\":\"v\",\"ID\":\"abc123\"}", &r, &err),
	        VF_OK);
	CU_ASSERT_EQUAL(r.ep, VF_EP_UNMOUNT);
	vf_plugin_req_clear(&r);
	const char *named[] = {"/VolumeDriver.Remove", "/VolumeDriver.Path", "/VolumeDriver.Get"};
	for (size_t i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(dec(named[i], " {\"Name\": \"x9\"}\n", &r, &err), VF_OK);
		CU_ASSERT_STRING_EQUAL(r.name, "x9");
		CU_ASSERT_PTR_NULL(r.id);
		vf_plugin_req_clear(&r);
	}
	/* Endpoints without fields take an empty body, null or {}. */
	const char *bare[] = {"/Plugin.Activate", "/VolumeDriver.List",
	                      "/VolumeDriver.Capabilities", "/VFile.Status", "/VFile.KVDump"};
	for (size_t i = 0; i < 5; i++) {
		CU_ASSERT_EQUAL(dec(bare[i], "", &r, &err), VF_OK);
		CU_ASSERT_EQUAL(r.ep, vf_plugin_ep_from_path(bare[i]));
		vf_plugin_req_clear(&r);
		CU_ASSERT_EQUAL(dec(bare[i], "null\n", &r, &err), VF_OK);
		CU_ASSERT_EQUAL(dec(bare[i], "{}", &r, &err), VF_OK);
		CU_ASSERT_EQUAL(vf_plugin_decode(bare[i], NULL, 0, NULL, &r, &err), VF_OK);
	}
}

static void test_decode_malformed(void)
{
	const char *bad[] = {"{",    "{\"Name\":",       "nope", "{\"Name\":\"v\"} trailing",
	                     "[1,2", "{\"Name\":\"v\",}"};
	struct vf_plugin_req r;
	struct vf_err err = {0};

	for (size_t e = 0; test_named_eps[e]; e++)
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			CU_ASSERT_EQUAL(dec(test_named_eps[e], bad[i], &r, &err), VF_EINVAL);
			CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "malformed JSON"));
			CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, test_named_eps[e]));
			CU_ASSERT_PTR_NULL(r.name);
		}
	const char *bare[] = {"/Plugin.Activate", "/VolumeDriver.List",
	                      "/VolumeDriver.Capabilities", "/VFile.Status", "/VFile.KVDump"};
	for (size_t i = 0; i < 5; i++) {
		CU_ASSERT_EQUAL(dec(bare[i], "{\"x\":", &r, &err), VF_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "malformed JSON"));
		CU_ASSERT_EQUAL(dec(bare[i], "[1]", &r, &err), VF_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "must be a JSON object"));
	}
	/* A NUL byte inside the body, deep nesting. */
	CU_ASSERT_EQUAL(
	        vf_plugin_decode("/VolumeDriver.Get", "{}\0{\"Name\":\"v\"}", 16, NULL, &r, &err),
	        VF_EINVAL);
	char deep[200];
	memset(deep, '[', sizeof(deep));
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.List", deep, sizeof(deep), NULL, &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nested too deeply"));
}

static void test_decode_missing_name(void)
{
	const char *bodies[] = {"{}", "", "null", "{\"name\":\"v\",\"ID\":\"i\"}",
	                        "{\"Name\":null}"};
	struct vf_plugin_req r;
	struct vf_err err = {0};

	for (size_t e = 0; test_named_eps[e]; e++)
		for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
			CU_ASSERT_EQUAL(dec(test_named_eps[e], bodies[i], &r, &err), VF_EINVAL);
			CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "missing Name"));
		}
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Get", "{\"Name\":7}", &r, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "Name must be a string"));
	/* Mount and Unmount also need the ID. */
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Mount", "{\"Name\":\"v\"}", &r, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "missing ID"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "volume v"));
	CU_ASSERT_PTR_NULL(r.name);
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Unmount", "{\"Name\":\"v\",\"ID\":\"a/b\"}", &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "invalid ID"));
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Unmount", "{\"Name\":\"v\",\"ID\":\"\"}", &r, &err),
	                VF_EINVAL);
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Unmount", "{\"Name\":\"v\",\"ID\":5}", &r, &err),
	                VF_EINVAL);
}

static void test_decode_invalid_names(void)
{
	char longname[VF_VOLUME_NAME_MAX + 2], body[512];
	const char *names[] = {"",       "-lead",     ".hidden",    "a/b", "../etc",
	                       "sp ace", "a\\u0001b", "uni\\u00e9", "a*b", longname};
	struct vf_plugin_req r;
	struct vf_err err = {0};

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	for (size_t e = 0; test_named_eps[e]; e++)
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			snprintf(body, sizeof(body), "{\"Name\":\"%s\",\"ID\":\"x\"}", names[i]);
			CU_ASSERT_EQUAL(dec(test_named_eps[e], body, &r, &err), VF_EINVAL);
			CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "invalid volume name"));
		}
	/* \u0000 would cut "a\0/../b" to "a": refused outright. */
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Get", "{\"Name\":\"a\\u0000/../b\"}", &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "NUL"));
	CU_ASSERT(vf_plugin_name_valid("a"));
	longname[VF_VOLUME_NAME_MAX] = '\0';
	CU_ASSERT(vf_plugin_name_valid(longname));
	CU_ASSERT_FALSE(vf_plugin_name_valid(NULL));
}

static void test_decode_opts(void)
{
	struct vf_plugin_req r;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL(dec("/VolumeDriver.Create",
	                    "{\"Name\":\"v\",\"Opts\":{\"colour\":\"red\"}}", &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown option 'colour'"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "known: size, mode"));
	CU_ASSERT_PTR_NULL(r.opts);
	CU_ASSERT_EQUAL(
	        dec("/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":{\"size\":5}}", &r, &err),
	        VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "option 'size' must be a string"));
	CU_ASSERT_EQUAL(
	        dec("/VolumeDriver.Create", "{\"Name\":\"v\",\"Opts\":[\"size\"]}", &r, &err),
	        VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "Opts must be an object"));
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Create",
	                    "{\"Name\":\"v\",\"Opts\":{\"size\":\"1\",\"size\":\"2\"}}", &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "given twice"));
	/* known NULL: any option passes. */
	const char *cb = "{\"Name\":\"v\",\"Opts\":{\"colour\":\"red\"}}";
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.Create", cb, strlen(cb), NULL, &r, &err),
	                VF_OK);
	CU_ASSERT_EQUAL(r.nopts, 1);
	vf_plugin_req_clear(&r);
}

static void test_decode_oversized_and_unknown(void)
{
	size_t n = VF_PLUGIN_MAX_BODY + 1;
	char *big = malloc(n);
	struct vf_plugin_req r;
	struct vf_err err = {0};

	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	for (size_t e = 0; test_named_eps[e]; e++) {
		CU_ASSERT_EQUAL(vf_plugin_decode(test_named_eps[e], big, n, NULL, &r, &err),
		                VF_ELIMIT);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "too large"));
	}
	/* exactly the limit is fine */
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.List", big, n - 1, NULL, &r, &err),
	                VF_EINVAL);
	free(big);
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Frobnicate", "{}", &r, &err), VF_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown endpoint '/VolumeDriver.Frobnicate'"));
	CU_ASSERT_EQUAL(dec("/", "", &r, &err), VF_ENOTFOUND);
	CU_ASSERT_EQUAL(vf_plugin_decode(NULL, NULL, 0, NULL, &r, &err), VF_ENOTFOUND);
	CU_ASSERT_STRING_EQUAL(vf_plugin_ep_path(VF_EP_KVDUMP), "/VFile.KVDump");
}

/* ---- live server with a stub handler ---- */

static char srv_dir[64];
static char srv_sock[128];
static struct vf_plugin_server *srv;
static int stub_calls;

static int stub_handler(void *arg, const struct vf_plugin_req *req, yajl_gen g, struct vf_err *err)
{
	__atomic_add_fetch(&stub_calls, 1, __ATOMIC_SEQ_CST);
	switch (req->ep) {
	case VF_EP_MOUNT:
	case VF_EP_PATH:
		vf_jgen_str(g, "Mountpoint");
		vf_jgen_str(g, "/mnt/x");
		return VF_OK;
	case VF_EP_REMOVE:
		return vf_err_set(err, VF_EBUSY, "volume %s is mounted on hosts: h1, h2",
		                  req->name);
	default:
		return VF_OK;
	}
}

struct test_resp {
	long status;
	struct vf_buf body;
};

static size_t test_write(char *p, size_t size, size_t n, void *arg)
{
	struct test_resp *r = arg;

	vf_buf_add(&r->body, p, size * n);
	return size * n;
}

/* POST body (len bytes) to path; returns the curl code. */
static int test_post(const char *path, const char *body, size_t len, struct test_resp *resp)
{
	char url[256];
	CURL *c = curl_easy_init();
	CURLcode cc;

	memset(resp, 0, sizeof(*resp));
	snprintf(url, sizeof(url), "http://localhost%s", path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, srv_sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, test_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_cleanup(c);
	return (int)cc;
}

/* The Err string of a JSON answer (malloc'ed), or NULL. */
static char *test_err(const struct test_resp *r)
{
	yajl_val t = NULL;
	char *e = NULL;

	if (r->body.data && vf_json_parse(r->body.data, r->body.len, &t, NULL) == VF_OK) {
		const char *s = vf_json_str(vf_json_get(t, "Err", NULL));
		e = s ? strdup(s) : NULL;
	}
	yajl_tree_free(t);
	return e;
}

static int server_init(void)
{
	struct vf_plugin_server_cfg cfg = {0};
	struct vf_err err = {0};

	snprintf(srv_dir, sizeof(srv_dir), "/tmp/vfile-plugin-XXXXXX");
	if (mkdtemp(srv_dir) == NULL)
		return 1;
	snprintf(srv_sock, sizeof(srv_sock), "%s/sub/vfile.sock", srv_dir);
	cfg.socket_path = srv_sock;
	cfg.socket_mode = 0660;
	cfg.idle_timeout_s = 5;
	cfg.known_opts = test_known_opts;
	cfg.handler = stub_handler;
	if (vf_plugin_server_start(&cfg, &srv, &err) != VF_OK) {
		fprintf(stderr, "server: %s\n", err.msg);
		return 1;
	}
	return 0;
}

static int server_clean(void)
{
	char sub[160];

	vf_plugin_server_stop(&srv);
	snprintf(sub, sizeof(sub), "%s/sub", srv_dir);
	rmdir(sub);
	rmdir(srv_dir);
	return 0;
}

static void test_server_basic(void)
{
	struct test_resp r;
	struct stat st;
	char *e;

	CU_ASSERT_EQUAL_FATAL(stat(srv_sock, &st), 0);
	CU_ASSERT(S_ISSOCK(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0660);
	CU_ASSERT_EQUAL(test_post("/Plugin.Activate", "", 0, &r), CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_PTR_NOT_NULL(r.body.data &&
	                       strstr(r.body.data, "\"Implements\":[\"VolumeDriver\"]"));
	vf_buf_free(&r.body);
	CU_ASSERT_EQUAL(test_post("/VolumeDriver.Capabilities", "null", 4, &r), CURLE_OK);
	CU_ASSERT_PTR_NOT_NULL(r.body.data &&
	                       strstr(r.body.data, "{\"Capabilities\":{\"Scope\":\"global\"}"));
	vf_buf_free(&r.body);
	const char *mb = "{\"Name\":\"v\",\"ID\":\"c1\"}";
	CU_ASSERT_EQUAL(test_post("/VolumeDriver.Mount", mb, strlen(mb), &r), CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_PTR_NOT_NULL(r.body.data &&
	                       strstr(r.body.data, "{\"Mountpoint\":\"/mnt/x\",\"Err\":\"\"}"));
	vf_buf_free(&r.body);
	CU_ASSERT_EQUAL(test_post("/VolumeDriver.Remove", "{\"Name\":\"v\"}", 12, &r), CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 200);
	e = test_err(&r);
	CU_ASSERT_PTR_NOT_NULL(e);
	CU_ASSERT_PTR_NOT_NULL(e && strstr(e, "mounted on hosts: h1, h2"));
	free(e);
	vf_buf_free(&r.body);
}

static void test_server_bad_input(void)
{
	struct test_resp r;
	int before = stub_calls;
	char *e;

	/* malformed, missing name, invalid name: 200 with Err, handler not reached */
	const char *bodies[] = {"{\"Name\":", "{}", "{\"Name\":\"../x\",\"ID\":\"1\"}"};
	const char *want[] = {"malformed JSON", "missing Name", "invalid volume name"};
	for (size_t e2 = 0; test_named_eps[e2]; e2++)
		for (size_t i = 0; i < 3; i++) {
			CU_ASSERT_EQUAL(
			        test_post(test_named_eps[e2], bodies[i], strlen(bodies[i]), &r),
			        CURLE_OK);
			CU_ASSERT_EQUAL(r.status, 200);
			e = test_err(&r);
			CU_ASSERT_PTR_NOT_NULL(e && strstr(e, want[i]));
			free(e);
			vf_buf_free(&r.body);
		}
	CU_ASSERT_EQUAL(stub_calls, before);
	/* unknown path: 404 with Err */
	CU_ASSERT_EQUAL(test_post("/Nope", "{}", 2, &r), CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 404);
	e = test_err(&r);
	CU_ASSERT_PTR_NOT_NULL(e && strstr(e, "unknown endpoint"));
	free(e);
	vf_buf_free(&r.body);
}

static void test_server_oversized(void)
{
	size_t n = 1024 * 1024;
	char *big = malloc(n);
	struct test_resp r;
	char *e;
	int rc;

	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'a', n);
	rc = test_post("/VolumeDriver.Create", big, n, &r);
	/* Refused before the body is read: curl may see the answer or a reset. */
	CU_ASSERT(rc == CURLE_OK || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR);
	if (rc == CURLE_OK) {
		e = test_err(&r);
		CU_ASSERT_PTR_NOT_NULL(e && strstr(e, "too large"));
		free(e);
	}
	vf_buf_free(&r.body);
	free(big);
	/* Still serving. */
	CU_ASSERT_EQUAL(test_post("/Plugin.Activate", "", 0, &r), CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 200);
	vf_buf_free(&r.body);
	/* The refused connection is accounted for once MHD closes it: poll, bounded. */
	int64_t until = vf_now_ms() + 3000;
	while (vf_plugin_server_inflight(srv) != 0 && vf_now_ms() < until)
		usleep(10000);
	CU_ASSERT_EQUAL(vf_plugin_server_inflight(srv), 0);
}

/* A second server on a live socket is refused; a stale socket file is replaced. */
static void test_server_socket_reuse(void)
{
	struct vf_plugin_server_cfg cfg = {.socket_path = srv_sock, .handler = stub_handler};
	struct vf_plugin_server *s2 = NULL;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL(vf_plugin_server_start(&cfg, &s2, &err), VF_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "in use"));
	CU_ASSERT_PTR_NULL(s2);
}

static void test_server_drain(void)
{
	struct test_resp r;

	CU_ASSERT_EQUAL(vf_plugin_server_drain(srv, 1000), 0);
	/* no longer accepting */
	CU_ASSERT_NOT_EQUAL(test_post("/Plugin.Activate", "", 0, &r), CURLE_OK);
	vf_buf_free(&r.body);
}

void vf_test_register_config(void);
void vf_test_register(void)
{
	CU_pSuite s;

	curl_global_init(CURL_GLOBAL_ALL);
	atexit(curl_global_cleanup);
	vf_test_register_config();
	s = CU_add_suite("plugin_decode", NULL, NULL);
	if (s == NULL)
		vf_test_abort("plugin_decode suite");
	VF_ADD_TEST(s, test_decode_good);
	VF_ADD_TEST(s, test_decode_malformed);
	VF_ADD_TEST(s, test_decode_missing_name);
	VF_ADD_TEST(s, test_decode_invalid_names);
	VF_ADD_TEST(s, test_decode_opts);
	VF_ADD_TEST(s, test_decode_oversized_and_unknown);
	s = CU_add_suite("plugin_server", server_init, server_clean);
	if (s == NULL)
		vf_test_abort("plugin_server suite");
	VF_ADD_TEST(s, test_server_basic);
	VF_ADD_TEST(s, test_server_bad_input);
	VF_ADD_TEST(s, test_server_oversized);
	VF_ADD_TEST(s, test_server_socket_reuse);
	VF_ADD_TEST(s, test_server_drain);
}
