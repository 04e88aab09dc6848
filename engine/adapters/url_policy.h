// Which hosts an adapter download may reach. A client names the URL, so without a
// policy the server fetches loopback services, private ranges or the cloud
// metadata address for anyone who can send a request (SSRF).
//   - a host the operator named: an --adapter-url-allow entry (HOST, HOST:PORT or a
//     CIDR), or the host of --hub-endpoint / --s3-endpoint;
//   - otherwise only hosts whose every resolved address is public (not loopback,
//     private, link-local, CGNAT, multicast or reserved).
// The check runs before each request, redirects included (see adapter_source.cpp).
// Addresses are resolved once here and again by the HTTP client: a DNS answer that
// changes in between (rebinding) is not caught; name hosts by allow entry to be safe.
#pragma once
#include <string>
#include <vector>

namespace lorax {

struct UrlPolicy {
  std::vector<std::string> allow;  // HOST, HOST:PORT, A.B.C.D/N, IPV6/N
};

// Host, port and scheme of an http(s) URL; throws AdapterError when it is none.
struct UrlTarget {
  std::string scheme, host;
  int port = 0;
};
UrlTarget parse_url_target(const std::string& url);

// True when `url` names an allowed host, or one whose addresses are all public.
// Throws AdapterForbidden naming the host (never the resolved addresses' services).
void check_url_allowed(const std::string& url, const UrlPolicy& policy, const std::string& id);

// An --adapter-url-allow value: a CIDR that parses, or a host[:port].
bool valid_allow_entry(const std::string& entry);

// True for an allow entry that names `target` by host (and port when given).
bool allow_entry_names(const std::string& entry, const UrlTarget& target);

}  // namespace lorax
