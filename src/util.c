/* Errors, buffers, base64 and time: small helpers shared across libvfile. */
#include <config.h>

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>

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

char *vf_b64_encode(const void *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

int vf_b64_decode(const char *in, char **out_r, size_t *len_r)
{
	size_t n = strlen(in), pad = 0;
	char *out;
	int m;

	*out_r = NULL;
	*len_r = 0;
	if (n % 4 != 0)
		return VF_EPROTO;
	out = malloc(3 * (n / 4) + 1);
	if (out == NULL)
		return VF_ENOMEM;
	m = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n) : 0;
	if (m < 0) {
		free(out);
		return VF_EPROTO;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes: take them off. */
	if (n >= 1 && in[n - 1] == '=')
		pad++;
	if (n >= 2 && in[n - 2] == '=')
		pad++;
	m -= (int)pad;
	out[m] = '\0';
	*out_r = out;
	*len_r = (size_t)m;
	return VF_OK;
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

void vf_malloc_tune(void)
{
	if (getenv("MALLOC_ARENA_MAX") == NULL)
		mallopt(M_ARENA_MAX, 2);
}
