/* Errors, buffers, base64 (RFC 4648, padded; no libcrypto) and time: small
 * helpers shared across libvfile. */
#include <config.h>

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common_int.h"

static void err_oneline(char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\r')
			*s = ' ';
}

int vf_err_set(struct vf_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err_oneline(err->msg);
	return code;
}

int vf_err_prefix(struct vf_err *err, const char *fmt, ...)
{
	char pre[sizeof(err->msg)], old[sizeof(err->msg)];
	va_list ap;

	if (err == NULL)
		return VF_EINVAL;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Both parts fit most of the time; when not, the tail of old is cut. */
	size_t n = strnlen(pre, sizeof(err->msg) - 1);
	memcpy(err->msg, pre, n);
	size_t room = sizeof(err->msg) - n - 1, m = strlen(old);
	if (room >= 2) {
		memcpy(err->msg + n, ": ", 2);
		n += 2;
		room -= 2;
		if (m > room)
			m = room;
		memcpy(err->msg + n, old, m);
		n += m;
	}
	err->msg[n] = '\0';
	err_oneline(err->msg);
	return err->code;
}

const char *vf_strerror(int code)
{
	switch (code) {
	case VF_OK:
		return "success";
	case VF_ENOTFOUND:
		return "not found";
	case VF_ECONFLICT:
		return "compare failed";
	case VF_EUNCERTAIN:
		return "outcome uncertain";
	case VF_EUNAVAIL:
		return "store unreachable";
	case VF_EPROTO:
		return "protocol error";
	case VF_ENOMEM:
		return "out of memory";
	case VF_ENOTSUP:
		return "not supported";
	case VF_EABI:
		return "backend ABI mismatch";
	case VF_EAUTH:
		return "authentication failed";
	case VF_ELIMIT:
		return "limit exceeded";
	case VF_EBUSY:
		return "busy";
	case VF_ETIMEDOUT:
		return "timed out";
	case VF_EINVAL:
		return "invalid argument";
	case VF_ELEASE:
		return "lease lost";
	}
	return "unknown error";
}

int vf_buf_add(struct vf_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (d == NULL)
			return VF_ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return VF_OK;
}

int vf_buf_printf(struct vf_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return VF_EINVAL;
	if ((size_t)n < sizeof(small))
		return vf_buf_add(b, small, n);
	char *big = malloc(n + 1);
	if (big == NULL)
		return VF_ENOMEM;
	va_start(ap, fmt);
	vsnprintf(big, n + 1, fmt, ap);
	va_end(ap);
	rc = vf_buf_add(b, big, n);
	free(big);
	return rc;
}

void vf_buf_free(struct vf_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static const char b64_abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *vf_b64_encode(const void *data, size_t len)
{
	const unsigned char *p = data;
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		*o++ = b64_abc[(v >> 18) & 63];
		*o++ = b64_abc[(v >> 12) & 63];
		*o++ = left > 1 ? b64_abc[(v >> 6) & 63] : '=';
		*o++ = left > 2 ? b64_abc[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* The value of base64 digit c, or -1. */
static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int vf_b64_decode(const char *in, char **out_r, size_t *len_r)
{
	size_t n = strlen(in), m = 0;
	char *out;

	*out_r = NULL;
	*len_r = 0;
	if (n % 4 != 0)
		return VF_EPROTO;
	out = malloc(3 * (n / 4) + 1);
	if (out == NULL)
		return VF_ENOMEM;
	for (size_t i = 0; i < n; i += 4) {
		int last = i + 4 == n, d[4];
		uint32_t v = 0;

		/* padding only at the end: "xx==" or "xxx=" */
		for (int k = 0; k < 4; k++) {
			d[k] = b64_val((unsigned char)in[i + k]);
			if (d[k] < 0 &&
			    !(last && in[i + k] == '=' && k >= 2 && (k == 3 || in[i + 3] == '=')))
				goto bad;
		}
		for (int k = 0; k < 4; k++)
			v = (v << 6) | (uint32_t)(d[k] < 0 ? 0 : d[k]);
		out[m++] = (char)(v >> 16);
		if (d[2] >= 0)
			out[m++] = (char)(v >> 8);
		if (d[3] >= 0)
			out[m++] = (char)v;
	}
	out[m] = '\0';
	*out_r = out;
	*len_r = m;
	return VF_OK;
bad:
	free(out);
	return VF_EPROTO;
}

void vf_strv_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int64_t vf_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Binary search of a listing (sorted by key, as kv.h requires of list). */
const struct vf_kv_pair *vf_kv_list_find(const struct vf_kv_list *l, const char *key)
{
	size_t lo = 0, hi = l->count;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(l->items[mid].key, key);

		if (c == 0)
			return &l->items[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void vf_cond_init(pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

void vf_deadline_ts(int64_t deadline_ms, struct timespec *ts)
{
	if (deadline_ms < 0)
		deadline_ms = 0;
	ts->tv_sec = (time_t)(deadline_ms / 1000);
	ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

int vf_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_ms)
{
	struct timespec ts;

	vf_deadline_ts(deadline_ms, &ts);
	return pthread_cond_timedwait(cv, mu, &ts);
}

int vf_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
	if (ms <= 0)
		return ETIMEDOUT;
	return vf_cond_wait_until(cv, mu, vf_now_ms() + ms);
}

void vf_malloc_tune(void)
{
	if (getenv("MALLOC_ARENA_MAX") == NULL)
		mallopt(M_ARENA_MAX, 2);
}

/* ---- KV keys ---- */

/* The length of the UTF-8 sequence at s (at most n bytes), or 0 if it is not
 * valid UTF-8 (overlong forms, surrogates and code points above U+10FFFF are
 * not); *cp_r = the code point. */
static size_t key_utf8(const unsigned char *s, size_t n, uint32_t *cp_r)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return len;
}

/* key as a C string literal body: printable ASCII as is ('"' and '\\'
 * escaped), every other byte as \xNN; cut with "..." to fit out. */
static void key_escape(const char *key, char *out, size_t size)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		char tmp[5];
		size_t k;

		if (*p == '"' || *p == '\\')
			k = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", *p);
		else if (*p >= 0x20 && *p < 0x7f)
			k = (size_t)snprintf(tmp, sizeof(tmp), "%c", *p);
		else
			k = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", *p);
		if (o + k + 4 >= size) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(out + o, tmp, k);
		o += k;
	}
	out[o] = '\0';
}

int vf_kv_key_check(const char *key, enum vf_key_kind kind, const char *what, struct vf_err *err)
{
	const char *label = kind == VF_KEY_PREFIX ? "prefix"
	                    : kind == VF_KEY_LOCK ? "lock name"
	                                          : "key";
	const unsigned char *s = (const unsigned char *)key;
	const char *why = NULL;
	char esc[120];
	size_t n, seg = 0; /* seg: bytes of the current segment so far */

	if (key == NULL)
		return vf_err_set(err, VF_EINVAL, "%s: no %s given", what, label);
	n = strlen(key);
	if (n == 0 && kind != VF_KEY_PREFIX)
		return vf_err_set(err, VF_EINVAL, "%s: the %s is empty", what, label);
	if (n > VF_KV_KEY_MAX)
		return vf_err_set(err, VF_EINVAL, "%s: %s of %zu bytes is longer than %d bytes",
		                  what, label, n, VF_KV_KEY_MAX);
	for (size_t i = 0; i < n && why == NULL;) {
		uint32_t cp = 0;
		size_t len = key_utf8(s + i, n - i, &cp);

		if (len == 0)
			why = "is not valid UTF-8";
		else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			why = "contains a control character";
		else if (cp == '/' && i == 0)
			why = "begins with '/'";
		else if (cp == '/' && seg == 0)
			why = "has an empty segment ('//')";
		else if (cp == '.' && seg == 0)
			why = "has a segment beginning with '.' (reserved for the drivers)";
		seg = cp == '/' ? 0 : seg + 1;
		i += len;
	}
	if (why == NULL && n > 0 && seg == 0 && kind != VF_KEY_PREFIX)
		why = "ends with '/' (an empty segment)";
	if (why == NULL)
		return VF_OK;
	key_escape(key, esc, sizeof(esc));
	return vf_err_set(err, VF_EINVAL, "%s: %s \"%s\" %s", what, label, esc, why);
}

int vf_kv_txn_keys_check(const struct vf_kv_cmp *cmps, size_t ncmp, const struct vf_kv_op *ops,
                         size_t nops, struct vf_err *err)
{
	int rc = VF_OK;

	for (size_t i = 0; i < ncmp && rc == VF_OK; i++)
		if (cmps[i].kind == VF_CMP_LOCK_FREE)
			rc = vf_kv_key_check(cmps[i].key, VF_KEY_LOCK, "txn compare", err);
		else if (cmps[i].kind != VF_CMP_LOCK_HELD)
			rc = vf_kv_key_check(cmps[i].key, VF_KEY, "txn compare", err);
	for (size_t i = 0; i < nops && rc == VF_OK; i++)
		if (ops[i].kind != VF_OP_UNLOCK)
			rc = vf_kv_key_check(ops[i].key, VF_KEY, "txn op", err);
	/* kv.h: one txn writes a key at most once (etcd refuses it, Consul would
	 * apply both in order): refused the same way by every backend. */
	for (size_t i = 0; i < nops && rc == VF_OK; i++) {
		if (ops[i].kind != VF_OP_PUT && ops[i].kind != VF_OP_DELETE)
			continue;
		for (size_t j = i + 1; j < nops && rc == VF_OK; j++)
			if ((ops[j].kind == VF_OP_PUT || ops[j].kind == VF_OP_DELETE) &&
			    strcmp(ops[i].key, ops[j].key) == 0)
				rc = vf_err_set(err, VF_EINVAL,
				                "txn writes key '%s' twice (ops %zu and %zu)",
				                ops[i].key, i, j);
	}
	return rc;
}
