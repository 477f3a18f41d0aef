// originalDst(fd) -> { address, port, family } | null
//
// Reads where a connection redirected by iptables `-j REDIRECT` (nat OUTPUT) was really going: the kernel's
// conntrack entry keeps the pre-NAT destination, and getsockopt(SO_ORIGINAL_DST) on the accepted socket
// returns it (IP6T_SO_ORIGINAL_DST for IPv6). Node has no API for this; the proxy calls it once per captured
// connection. Returns null when the socket was not redirected (ENOENT: no conntrack entry, e.g. a direct
// connection to the capture port), throws on any other error. Plain C against node_api.h (ABI-stable N-API:
// one build serves every Node version from 18 on).
#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/netfilter_ipv4.h>
#include <node_api.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80 // linux/netfilter_ipv6/ip6_tables.h; not always installed with the libc headers
#endif

static napi_value fail(napi_env env, const char* what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static napi_value result(napi_env env, const char* address, unsigned port, int family) {
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "address", v);
  napi_create_uint32(env, port, &v);
  napi_set_named_property(env, obj, "port", v);
  napi_create_uint32(env, (uint32_t)family, &v);
  napi_set_named_property(env, obj, "family", v);
  return obj;
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "originalDst(fd): fd must be a non-negative integer");
    return NULL;
  }
  // The accepted socket's own family says which option applies (a dual-stack listener is not used: the proxy
  // binds 127.0.0.1 and ::1 separately).
  struct sockaddr_storage local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr*)&local, &len) != 0) return fail(env, "getsockname", errno);

  struct sockaddr_storage dst;
  memset(&dst, 0, sizeof dst);
  len = sizeof dst;
  int rc = local.ss_family == AF_INET6 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len)
                                       : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len);
  if (rc != 0) {
    napi_value nul;
    if (errno == ENOENT) {
      napi_get_null(env, &nul);
      return nul;
    }
    return fail(env, "getsockopt(SO_ORIGINAL_DST)", errno);
  }
  char text[INET6_ADDRSTRLEN];
  if (dst.ss_family == AF_INET) {
    struct sockaddr_in* a = (struct sockaddr_in*)&dst;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    return result(env, text, ntohs(a->sin_port), 4);
  }
  if (dst.ss_family == AF_INET6) {
    struct sockaddr_in6* a = (struct sockaddr_in6*)&dst;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    return result(env, text, ntohs(a->sin6_port), 6);
  }
  return fail(env, "getsockopt(SO_ORIGINAL_DST): unexpected address family", EAFNOSUPPORT);
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "originalDst", fn);
  return exports;
}
