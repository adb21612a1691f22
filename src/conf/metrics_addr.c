/* The metrics listener's address, "HOST:PORT" or "[V6]:PORT": parsed for the
 * config check (vfilectl, vfiled) and for the listener (metrics_http.c). */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common_int.h"
#include "metrics_int.h"

/* "HOST:PORT" or "[V6]:PORT" into a socket address. */
int vf_metrics_addr_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *len_r,
                         struct vf_err *err)
{
	char host[128];
	const char *colon, *h = addr;
	size_t hl;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (addr == NULL || addr[0] == '\0')
		return vf_err_set(err, VF_EINVAL, "metrics_listen: empty (want HOST:PORT)");
	colon = strrchr(addr, ':');
	if (colon == NULL)
		return vf_err_set(err, VF_EINVAL, "metrics_listen '%s': want HOST:PORT", addr);
	hl = (size_t)(colon - addr);
	if (addr[0] == '[') {
		if (hl < 2 || addr[hl - 1] != ']')
			return vf_err_set(err, VF_EINVAL, "metrics_listen '%s': want [IPV6]:PORT",
			                  addr);
		h = addr + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return vf_err_set(err, VF_EINVAL, "metrics_listen '%s': bad host", addr);
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
		return vf_err_set(err, VF_EINVAL, "metrics_listen '%s': bad port (0-65535)", addr);
	if (addr[0] != '[') {
		struct sockaddr_in *in4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
			return vf_err_set(err, VF_EINVAL,
			                  "metrics_listen '%s': '%s' is not an IPv4 address "
			                  "(write IPv6 as [::1]:PORT)",
			                  addr, host);
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len_r = sizeof(*in4);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			return vf_err_set(err, VF_EINVAL,
			                  "metrics_listen '%s': '%s' is not an IPv6 address", addr,
			                  host);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof(*in6);
	}
	return VF_OK;
}

int vf_metrics_listen_valid(const char *addr, struct vf_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len;

	return vf_metrics_addr_parse(addr, &ss, &len, err);
}
