/* Unit tests of the plugin protocol: the pure decoder, then the server on a
 * temporary unix socket with a stub handler (no store, no volume manager). */
#include <config.h>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "test_int.h"
#include "common_int.h"
#include "plugin_int.h"
#include "config_int.h"

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

/* /VFile.Evict: Node required and checked, Name optional, Force a boolean. */
static void test_decode_evict(void)
{
	struct vf_plugin_req r;
	struct vf_err err = {0};

	CU_ASSERT_EQUAL_FATAL(dec("/VFile.Evict", "{\"Node\":\"h1\"}", &r, &err), VF_OK);
	CU_ASSERT_EQUAL(r.ep, VF_EP_EVICT);
	CU_ASSERT_STRING_EQUAL(r.node, "h1");
	CU_ASSERT_PTR_NULL(r.name);
	CU_ASSERT_EQUAL(r.force, 0);
	vf_plugin_req_clear(&r);
	CU_ASSERT_EQUAL_FATAL(
	        dec("/VFile.Evict", "{\"Node\":\"h1.x\",\"Name\":\"v\",\"Force\":true}", &r, &err),
	        VF_OK);
	CU_ASSERT_STRING_EQUAL(r.name, "v");
	CU_ASSERT_EQUAL(r.force, 1);
	vf_plugin_req_clear(&r);
	CU_ASSERT_EQUAL(dec("/VFile.Evict", "{}", &r, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "missing Node"));
	CU_ASSERT_EQUAL(dec("/VFile.Evict", "{\"Node\":\"a/b\"}", &r, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "invalid Node"));
	CU_ASSERT_EQUAL(dec("/VFile.Evict", "{\"Node\":\"\"}", &r, &err), VF_EINVAL);
	CU_ASSERT_EQUAL(dec("/VFile.Evict", "{\"Node\":7}", &r, &err), VF_EINVAL);
	CU_ASSERT_EQUAL(dec("/VFile.Evict", "{\"Node\":\"h1\",\"Force\":\"yes\"}", &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "Force"));
	CU_ASSERT_EQUAL(dec("/VFile.Evict", "{\"Node\":\"h1\",\"Name\":\"../x\"}", &r, &err),
	                VF_EINVAL);
	CU_ASSERT_EQUAL_FATAL(dec("/VFile.Nodes", "", &r, &err), VF_OK);
	CU_ASSERT_EQUAL(r.ep, VF_EP_NODES);
	vf_plugin_req_clear(&r);
}

/* Any byte outside printable ASCII in an error message (what reaches the log and Err). */
static int test_msg_raw(const char *msg)
{
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return 1;
	return 0;
}

/* #19.1: a comment hid brackets from the depth pre-check; yajl's tree parser took the
 * comment and built a 32,000-level tree. Comments are refused, nesting is bounded by
 * the parser itself. */
static void test_decode_comments_and_depth(void)
{
	size_t n = 32000;
	char *deep = malloc(2 * n + 16);
	struct vf_plugin_req r;
	struct vf_err err = {0};

	CU_ASSERT_PTR_NOT_NULL_FATAL(deep);
	memcpy(deep, "/*\"*/", 5);
	memset(deep + 5, '[', n);
	memset(deep + 5 + n, ']', n);
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.Get", deep, 5 + 2 * n, NULL, &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "malformed JSON"));
	CU_ASSERT_FALSE(test_msg_raw(err.msg));
	/* the same without the comment */
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.Get", deep + 5, 2 * n, NULL, &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nested too deeply"));
	/* a quote inside a string does not hide brackets either */
	snprintf(deep, 2 * n, "{\"a\\\"\":");
	size_t k = strlen(deep);
	memset(deep + k, '[', 40);
	memset(deep + k + 40, ']', 40);
	deep[k + 80] = '}';
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.List", deep, k + 81, NULL, &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nested too deeply"));
	free(deep);
	/* //" then a real request: it created volume x */
	const char *c1 = "//\"\n{\"Name\":\"x\",\"x\":[[1]]}";
	const char *c2 = "{\"Name\":\"x\" /* c */}";
	const char *c3 = "{\"Name\":\"x\"}//";
	const char *cs[] = {c1, c2, c3};
	for (size_t i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(dec("/VolumeDriver.Create", cs[i], &r, &err), VF_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "malformed JSON"));
		CU_ASSERT_PTR_NULL(r.name);
	}
	/* 32 levels are still fine, 33 are not */
	char lvl[80];
	memset(lvl, '[', 32);
	memset(lvl + 32, ']', 32);
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.List", lvl, 64, NULL, &r, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "must be a JSON object"));
	memset(lvl, '[', 33);
	memset(lvl + 33, ']', 33);
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.List", lvl, 66, NULL, &r, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "nested too deeply"));
}

/* #19.5: strings must be UTF-8: surrogates, > U+10FFFF, overlong forms are refused, in
 * raw bytes and in \u escapes; valid text passes. */
static void test_decode_utf8(void)
{
	const char *bad[] = {
	        "\xed\xa0\x80",     /* U+D800 as UTF-8 */
	        "\xf4\x90\x80\x80", /* U+110000 */
	        "\xc0\xaf",         /* overlong '/' */
	        "\xe0\x80\xaf",     /* overlong '/' */
	        "\xf8\x88\x80\x80\x80",
	        "\x80",
	        "\xc3",
	        "\\udc00",        /* lone low surrogate */
	        "\\ud800",        /* lone high surrogate */
	        "\\ud800\\u0041", /* high surrogate + not a low one */
	        "\\ud800x",
	};
	const char *good[] = {"caf\xc3\xa9",      "\\u00e9",          "\\ud83d\\ude00",
	                      "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xef\xbf\xbd"};
	struct vf_plugin_req r;
	struct vf_err err = {0};
	char body[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "{\"Name\":\"v\",\"Opts\":{\"note\":\"a%sb\"}}",
		         bad[i]);
		CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.Create", body, strlen(body), NULL,
		                                 &r, &err),
		                VF_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "UTF-8"));
		CU_ASSERT_FALSE(test_msg_raw(err.msg));
		CU_ASSERT_PTR_NULL(r.opts);
		/* in a key too */
		snprintf(body, sizeof(body), "{\"Name\":\"v\",\"k%s\":1}", bad[i]);
		CU_ASSERT_EQUAL(dec("/VolumeDriver.Get", body, &r, &err), VF_EINVAL);
		CU_ASSERT_FALSE(test_msg_raw(err.msg));
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(body, sizeof(body), "{\"Name\":\"v\",\"Opts\":{\"note\":\"a%sb\"}}",
		         good[i]);
		CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.Create", body, strlen(body), NULL,
		                                 &r, &err),
		                VF_OK);
		vf_plugin_req_clear(&r);
	}
	/* a parse error does not echo the raw bytes */
	const char *pe = "{\"Name\":\"\x1b[2K\rFAKE\xff\" oops}";
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Get", pe, &r, &err), VF_EINVAL);
	CU_ASSERT_FALSE(test_msg_raw(err.msg));
}

/* #19.6: every byte outside printable ASCII is escaped in messages. */
static void test_decode_escapes_messages(void)
{
	struct vf_plugin_req r;
	struct vf_err err = {0};

	const char *b1 = "{\"Name\":\"\\u001b[2K\\rFAKE \\u0007\\b\\u000b error:\"}";
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Get", b1, &r, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "invalid volume name"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "\\x1b[2K\\x0dFAKE \\x07\\x08\\x0b error:"));
	CU_ASSERT_FALSE(test_msg_raw(err.msg));
	const char *b2 = "{\"Name\":\"v\",\"Opts\":{\"col\\u001bour\\u00e9\":\"x\"}}";
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Create", b2, &r, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown option 'col\\x1bour\\xc3\\xa9'"));
	CU_ASSERT_FALSE(test_msg_raw(err.msg));
	CU_ASSERT_EQUAL(dec("/VolumeDriver.\x1b[2K\x7f", "{}", &r, &err), VF_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'/VolumeDriver.\\x1b[2K\\x7f'"));
	CU_ASSERT_FALSE(test_msg_raw(err.msg));
	char out[64];
	vf_plugin_escape(out, sizeof(out), "a\\b\"c\n\x01\xff", SIZE_MAX);
	CU_ASSERT_STRING_EQUAL(out, "a\\\\b\"c\\x0a\\x01\\xff");
	/* truncated on a whole escape, marked */
	vf_plugin_escape(out, 12, "abc\x1b\x1b\x1b\x1b", SIZE_MAX);
	CU_ASSERT_FALSE(test_msg_raw(out));
	CU_ASSERT_STRING_EQUAL(out, "abc\\x1b...");
	vf_plugin_escape(out, sizeof(out), "abcdef", 3);
	CU_ASSERT_STRING_EQUAL(out, "abc...");
}

/* #19.3: Create options are bounded one by one and as a whole, and checked against
 * what each means. */
static void test_decode_opt_bounds(void)
{
	static const char *const all[] = {"size", "mode", "uid", "gid", "fileserver", NULL};
	struct vf_plugin_req r;
	struct vf_err err = {0};
	size_t n = 60000;
	char *body = malloc(n + 100), *big = malloc(n + 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, '1', n);
	big[n] = '\0';
	/* the two that took ~64 KB */
	const char *keys[] = {"fileserver", "size"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(body, n + 100, "{\"Name\":\"v\",\"Opts\":{\"%s\":\"%s\"}}", keys[i], big);
		CU_ASSERT_EQUAL(
		        vf_plugin_decode("/VolumeDriver.Create", body, strlen(body), all, &r, &err),
		        VF_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, keys[i]));
		CU_ASSERT(strlen(err.msg) < 300);
		CU_ASSERT_PTR_NULL(r.opts);
		/* any option, known list or not */
		snprintf(body, n + 100, "{\"Name\":\"v\",\"Opts\":{\"x\":\"%s\"}}", big);
		CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.Create", body, strlen(body), NULL,
		                                 &r, &err),
		                VF_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "too long"));
	}
	const char *bad[] = {
	        "{\"size\":\"18446744073709551616\"}", /* 2^64 */
	        "{\"size\":\"9007199254740993T\"}",    /* overflows with its suffix */
	        "{\"size\":\"1X\"}",
	        "{\"size\":\"\"}",
	        "{\"size\":\"-1\"}",
	        "{\"uid\":\"4294967295\"}",
	        "{\"gid\":\"99999999999\"}",
	        "{\"uid\":\"1a\"}",
	        "{\"mode\":\"rwx\"}",
	        "{\"fileserver\":\"\"}",
	        "{\"fileserver\":\"a b\"}",
	        "{\"fileserver\":\"a/b\"}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, n + 100, "{\"Name\":\"v\",\"Opts\":%s}", bad[i]);
		CU_ASSERT_EQUAL(
		        vf_plugin_decode("/VolumeDriver.Create", body, strlen(body), all, &r, &err),
		        VF_EINVAL);
		CU_ASSERT_PTR_NULL(r.opts);
	}
	const char *good[] = {
	        "{\"size\":\"10G\",\"mode\":\"ro\",\"uid\":\"0\",\"gid\":\"4294967294\"}",
	        "{\"size\":\"9223372036854775807\"}",
	        "{\"fileserver\":\"host-1.example.com\"}",
	        "{\"fileserver\":\"10.0.0.1:2222\"}",
	        "{\"fileserver\":\"[fe80::1]:22\"}",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(body, n + 100, "{\"Name\":\"v\",\"Opts\":%s}", good[i]);
		CU_ASSERT_EQUAL(
		        vf_plugin_decode("/VolumeDriver.Create", body, strlen(body), all, &r, &err),
		        VF_OK);
		vf_plugin_req_clear(&r);
	}
	/* the fileserver bound itself */
	memset(big, 'a', VF_PLUGIN_OPT_VALUE_MAX + 1);
	big[VF_PLUGIN_OPT_VALUE_MAX] = '\0';
	snprintf(body, n + 100, "{\"Name\":\"v\",\"Opts\":{\"fileserver\":\"%s\"}}", big);
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.Create", body, strlen(body), all, &r, &err),
	                VF_OK);
	vf_plugin_req_clear(&r);
	big[VF_PLUGIN_OPT_VALUE_MAX] = 'a';
	big[VF_PLUGIN_OPT_VALUE_MAX + 1] = '\0';
	snprintf(body, n + 100, "{\"Name\":\"v\",\"Opts\":{\"fileserver\":\"%s\"}}", big);
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.Create", body, strlen(body), all, &r, &err),
	                VF_EINVAL);
	/* unknown list: many options, the whole set is bounded */
	struct vf_buf b = {0};
	vf_buf_printf(&b, "{\"Name\":\"v\",\"Opts\":{");
	for (int i = 0; i < 40; i++)
		vf_buf_printf(&b, "%s\"k%d\":\"%0100d\"", i ? "," : "", i, i);
	vf_buf_printf(&b, "}}");
	CU_ASSERT_EQUAL(vf_plugin_decode("/VolumeDriver.Create", b.data, b.len, NULL, &r, &err),
	                VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "options"));
	vf_buf_free(&b);
	free(body);
	free(big);
}

/* #19.4: mount ids are bounded (Docker's are 64 hex digits). */
static void test_decode_id_bounds(void)
{
	char id[VF_PLUGIN_ID_MAX + 2], body[512];
	struct vf_plugin_req r;
	struct vf_err err = {0};

	memset(id, 'f', sizeof(id));
	id[VF_PLUGIN_ID_MAX] = '\0';
	snprintf(body, sizeof(body), "{\"Name\":\"v\",\"ID\":\"%s\"}", id);
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Mount", body, &r, &err), VF_OK);
	vf_plugin_req_clear(&r);
	id[VF_PLUGIN_ID_MAX] = 'f';
	id[VF_PLUGIN_ID_MAX + 1] = '\0';
	snprintf(body, sizeof(body), "{\"Name\":\"v\",\"ID\":\"%s\"}", id);
	CU_ASSERT_EQUAL(dec("/VolumeDriver.Mount", body, &r, &err), VF_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "invalid ID"));
	CU_ASSERT(VF_PLUGIN_ID_MAX >= 64 && VF_PLUGIN_ID_MAX <= 128);
}

/* ---- live server with a stub handler ---- */

/* The test server's idle timeout and whole-request deadline. */
#define SRV_IDLE_S 5
#define SRV_REQUEST_MS 1500

static char srv_dir[64];
static char srv_sock[100];
static struct vf_plugin_server *srv;
static int stub_calls;

static int stub_handler(void *arg, const struct vf_plugin_req *req, yajl_gen g, struct vf_err *err)
{
	__atomic_add_fetch(&stub_calls, 1, __ATOMIC_SEQ_CST);
	switch (req->ep) {
	case VF_EP_PATH:
		if (strcmp(req->name, "slow") == 0) {
			/* longer than the request deadline: the handler must not be cut */
			usleep((SRV_REQUEST_MS + 500) * 1000);
			vf_jgen_str(g, "Mountpoint");
			vf_jgen_str(g, "/mnt/slow");
			return VF_OK;
		}
		/* fall through */
	case VF_EP_MOUNT:
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
	cfg.idle_timeout_s = SRV_IDLE_S;
	cfg.request_timeout_ms = SRV_REQUEST_MS;
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
	int64_t until = vf_now_ms() + 20000; /* returns once it holds */
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

/* Socket activation: the server takes a listening socket it did not make, keeps
 * it out of children (FD_CLOEXEC), answers on it, and leaves its path alone. */
static void test_server_activated(void)
{
	struct vf_plugin_server_cfg cfg = {.handler = stub_handler, .socket_mode = 0660};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vf_plugin_server *s2 = NULL;
	struct vf_err err = {0};
	struct test_resp r;
	char saved[sizeof(srv_sock)];
	struct stat st;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/act.sock", srv_dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0); /* as systemd passes it: no FD_CLOEXEC */
	CU_ASSERT_FATAL(fd >= 3);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(fd, 16), 0);
	cfg.socket_path = sa.sun_path;
	cfg.listen_fd = fd;
	CU_ASSERT_EQUAL_FATAL(vf_plugin_server_start(&cfg, &s2, &err), VF_OK);
	CU_ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	memcpy(saved, srv_sock, sizeof(saved));
	snprintf(srv_sock, sizeof(srv_sock), "%s", sa.sun_path);
	CU_ASSERT_EQUAL(test_post("/Plugin.Activate", "", 0, &r), CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_PTR_NOT_NULL(r.body.data && strstr(r.body.data, "VolumeDriver"));
	vf_buf_free(&r.body);
	memcpy(srv_sock, saved, sizeof(saved));
	CU_ASSERT_EQUAL(vf_plugin_server_drain(s2, 5000), 0);
	vf_plugin_server_stop(&s2);
	/* the unit owns the path: still there after the server stopped */
	CU_ASSERT_EQUAL(lstat(sa.sun_path, &st), 0);
	CU_ASSERT(S_ISSOCK(st.st_mode));
	unlink(sa.sun_path);
}

static void test_server_drain(void)
{
	struct test_resp r;

	CU_ASSERT_EQUAL(vf_plugin_server_drain(srv, 1000), 0);
	/* no longer accepting */
	CU_ASSERT_NOT_EQUAL(test_post("/Plugin.Activate", "", 0, &r), CURLE_OK);
	vf_buf_free(&r.body);
}

/* Send len raw bytes on a new connection to the server; read the answer until the
 * server closes or timeout_ms passes. Returns the bytes read (-1: cannot connect). */
static ssize_t test_raw(const char *req, size_t len, char *out, size_t size, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int64_t until = vf_now_ms() + timeout_ms;
	size_t got = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", srv_sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (write(fd, req, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	while (got + 1 < size) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = until - vf_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		n = read(fd, out + got, size - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memmem(out, got, "\r\n\r\n", 4) && strstr(out, "Err"))
			break;
	}
	out[got] = '\0';
	close(fd);
	return (ssize_t)got;
}

/* #19.7: a raw NUL or %00 in the path, a NUL in a header: refused, never served. */
static void test_server_nul_paths(void)
{
	static const char r1[] = "POST /VolumeDriver.Get\0/../x HTTP/1.1\r\nHost: x\r\n"
	                         "Content-Length: 12\r\n\r\n{\"Name\":\"v\"}";
	static const char r2[] = "POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n"
	                         "Content-Length: 2\r\n\r\n{}";
	static const char r4[] = "POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\n"
	                         "Content-Length: 2\r\nX-A: a\0b\r\n\r\n{}";
	static const char r3[] = "POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\n"
	                         "Content-Length: 2\r\n\r\n{}";
	int before = stub_calls;
	struct test_resp r;
	char out[2048];

	CU_ASSERT(test_raw(r1, sizeof(r1) - 1, out, sizeof(out), 10000) >= 0);
	CU_ASSERT_PTR_NULL(strstr(out, "HTTP/1.1 200"));
	CU_ASSERT_PTR_NULL(strstr(out, "\"Err\":\"\""));
	CU_ASSERT(test_raw(r2, sizeof(r2) - 1, out, sizeof(out), 10000) >= 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 400"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "NUL"));
	/* the last header too */
	CU_ASSERT(test_raw(r4, sizeof(r4) - 1, out, sizeof(out), 10000) >= 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 400"));
	CU_ASSERT_EQUAL(stub_calls, before);
	/* the same request without the NUL is served */
	CU_ASSERT(test_raw(r3, sizeof(r3) - 1, out, sizeof(out), 10000) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "HTTP/1.1 200"));
	CU_ASSERT_EQUAL(stub_calls, before + 1);
	before = stub_calls;
	CU_ASSERT_EQUAL(test_post("/VFile.KVDump%00", "{}", 2, &r), CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 404);
	vf_buf_free(&r.body);
	CU_ASSERT_EQUAL(test_post("/VolumeDriver.Get%00/../x", "{\"Name\":\"v\"}", 12, &r),
	                CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 404);
	vf_buf_free(&r.body);
	CU_ASSERT_EQUAL(test_post("/VolumeDriver%2EList", "{}", 2, &r), CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 404);
	vf_buf_free(&r.body);
	CU_ASSERT_EQUAL(stub_calls, before);
	/* the header checks pass ordinary requests on a kept-alive connection, bodies
	 * and many headers included */
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	long conns = -1;
	hl = curl_slist_append(hl, "X-One: 1");
	hl = curl_slist_append(hl, "X-Two:\ttwo  ");
	hl = curl_slist_append(hl, "Accept-Encoding: gzip");
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, srv_sock);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, test_write);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	for (int i = 0; i < 3; i++) {
		const char *b = i == 1 ? "{\"Name\":\"v\"}" : "{}";
		memset(&r, 0, sizeof(r));
		curl_easy_setopt(c, CURLOPT_URL,
		                 i == 1 ? "http://localhost/VolumeDriver.Get"
		                        : "http://localhost/VolumeDriver.List");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, b);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
		CU_ASSERT_EQUAL(curl_easy_perform(c), CURLE_OK);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
		CU_ASSERT_EQUAL(r.status, 200);
		CU_ASSERT_PTR_NOT_NULL(r.body.data && strstr(r.body.data, "\"Err\":\"\""));
		vf_buf_free(&r.body);
	}
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
	CU_ASSERT_EQUAL(conns, 0); /* the last request reused the connection */
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	CU_ASSERT_EQUAL(stub_calls, before + 3);
}

/* #19.2: one byte a second restarted the idle timer forever; the whole request must
 * now arrive within request_timeout_ms, while a handler that runs longer than that
 * is not cut. */
static void test_server_slow_request(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *head = "POST /VolumeDriver.List HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int64_t t0, closed_at = -1, stop;
	struct test_resp r;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", srv_sock);
	CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	t0 = vf_now_ms();
	CU_ASSERT_EQUAL(write(fd, head, strlen(head)), (ssize_t)strlen(head));
	/* trickle one byte per 200 ms (well inside the idle timeout) until closed; give up
	 * at the idle timeout plus the request timeout, which the old code never hit */
	stop = t0 + SRV_IDLE_S * 1000 + SRV_REQUEST_MS;
	while (vf_now_ms() < stop) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char c;

		if (poll(&p, 1, 200) > 0 && read(fd, &c, 1) <= 0) {
			closed_at = vf_now_ms();
			break;
		}
		if (send(fd, "a", 1, MSG_NOSIGNAL) != 1) {
			closed_at = vf_now_ms();
			break;
		}
	}
	close(fd);
	CU_ASSERT(closed_at >= 0);
	CU_ASSERT(closed_at < 0 || closed_at - t0 >= SRV_REQUEST_MS - 50);
	/* a handler slower than the request timeout still answers */
	const char *slow = "{\"Name\":\"slow\"}";
	CU_ASSERT_EQUAL(test_post("/VolumeDriver.Path", slow, strlen(slow), &r), CURLE_OK);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_PTR_NOT_NULL(r.body.data && strstr(r.body.data, "/mnt/slow"));
	vf_buf_free(&r.body);
}

/* #19.8: the socket's mode and group were set by path after bind, following a symlink
 * put in its place. The hook swaps the socket for a symlink to a victim file right
 * after bind; the victim's mode must not change. */
static char test_victim[160];
static void test_swap_after_bind(const char *path)
{
	unlink(path);
	if (symlink(test_victim, path) != 0)
		perror("symlink");
}

static void test_server_socket_symlink(void)
{
	struct vf_plugin_server_cfg cfg = {0};
	struct vf_plugin_server *s2 = NULL;
	struct vf_err err = {0};
	char path[160];
	struct stat st;
	int fd;

	snprintf(test_victim, sizeof(test_victim), "%s/victim", srv_dir);
	snprintf(path, sizeof(path), "%s/s2.sock", srv_dir);
	fd = open(test_victim, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	close(fd);
	CU_ASSERT_EQUAL(chmod(test_victim, 0600), 0);
	cfg.socket_path = path;
	cfg.socket_mode = 0666;
	cfg.handler = stub_handler;
	struct group *gr = getgrgid(getgid());
	cfg.socket_group = gr ? gr->gr_name : NULL;
	vf_plugin_test_after_bind = test_swap_after_bind;
	CU_ASSERT_EQUAL(vf_plugin_server_start(&cfg, &s2, &err), VF_EBUSY);
	vf_plugin_test_after_bind = NULL;
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot put the socket in place"));
	CU_ASSERT_EQUAL(stat(test_victim, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT_EQUAL(lstat(path, &st), 0); /* the symlink is left alone */
	CU_ASSERT(S_ISLNK(st.st_mode));
	/* no private directory is left behind */
	char pattern[200];
	snprintf(pattern, sizeof(pattern), "ls -a %s | grep -q '^\\.vf'", srv_dir);
	CU_ASSERT_NOT_EQUAL(system(pattern), 0);
	vf_plugin_server_stop(&s2);
	unlink(path);
	/* without the swap: the mode asked for, exactly */
	cfg.socket_mode = 0640;
	CU_ASSERT_EQUAL_FATAL(vf_plugin_server_start(&cfg, &s2, &err), VF_OK);
	CU_ASSERT_EQUAL(lstat(path, &st), 0);
	CU_ASSERT(S_ISSOCK(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0640);
	vf_plugin_server_stop(&s2);
	unlink(test_victim);
}

/* #19.8: socket_mode = 0 became 0660 silently, an integer was taken as decimal, and
 * "0666" passed without a word. Integers are refused like other wrong types; a
 * world-writable mode loads with a warning (checked in tests/e2e/bad_input.test). */
static void test_socket_mode_config(void)
{
	const char *bad[] = {"0",         "432",       "0660",      "\"0999\"",
	                     "\"\"",      "\"-660\"",  "\" 660\"",  "\"+660\"",
	                     "\"01777\"", "\"0o660\"", "[\"0660\"]"};
	const char *good[] = {"\"0660\"", "\"660\"", "\"0600\"", "\"0\"", "\"0666\""};
	const int want[] = {0660, 0660, 0600, 0, 0666};
	struct vf_conf *c = NULL;
	struct vf_err err = {0};
	char text[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "backend = \"etcd\";\nsocket_mode = %s;\n", bad[i]);
		CU_ASSERT_EQUAL(vf_conf_load_string(text, "t.conf", &c, &err), VF_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "socket_mode"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "t.conf:2:"));
		vf_conf_free(&c);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "backend = \"etcd\";\nsocket_mode = %s;\n", good[i]);
		CU_ASSERT_EQUAL_FATAL(vf_conf_load_string(text, "t.conf", &c, &err), VF_OK);
		CU_ASSERT_EQUAL(c->socket_mode, want[i]);
		vf_conf_free(&c);
	}
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
	VF_ADD_TEST(s, test_decode_evict);
	VF_ADD_TEST(s, test_decode_malformed);
	VF_ADD_TEST(s, test_decode_missing_name);
	VF_ADD_TEST(s, test_decode_invalid_names);
	VF_ADD_TEST(s, test_decode_opts);
	VF_ADD_TEST(s, test_decode_oversized_and_unknown);
	VF_ADD_TEST(s, test_decode_comments_and_depth);
	VF_ADD_TEST(s, test_decode_utf8);
	VF_ADD_TEST(s, test_decode_escapes_messages);
	VF_ADD_TEST(s, test_decode_opt_bounds);
	VF_ADD_TEST(s, test_decode_id_bounds);
	VF_ADD_TEST(s, test_socket_mode_config);
	s = CU_add_suite("plugin_server", server_init, server_clean);
	if (s == NULL)
		vf_test_abort("plugin_server suite");
	VF_ADD_TEST(s, test_server_basic);
	VF_ADD_TEST(s, test_server_bad_input);
	VF_ADD_TEST(s, test_server_oversized);
	VF_ADD_TEST(s, test_server_socket_reuse);
	VF_ADD_TEST(s, test_server_activated);
	VF_ADD_TEST(s, test_server_nul_paths);
	VF_ADD_TEST(s, test_server_slow_request);
	VF_ADD_TEST(s, test_server_socket_symlink);
	VF_ADD_TEST(s, test_server_drain);
}
