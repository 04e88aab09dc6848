#include "adapters/url_policy.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <optional>

#include <cpprest/base_uri.h>

#include "adapters/adapter_source.h"

namespace lorax {
namespace {

// An address as 16 bytes (IPv4 as ::ffff:a.b.c.d, so one prefix test serves both).
using Address = std::array<uint8_t, 16>;

Address from_v4(const in_addr& a) {
  Address out{};
  out[10] = out[11] = 0xff;
  std::memcpy(&out[12], &a, 4);
  return out;
}

bool is_v4(const Address& a) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a.data(), prefix, 12) == 0;
}

std::optional<Address> parse_address(const std::string& text) {
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return from_v4(v4);
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    Address out;
    std::memcpy(out.data(), &v6, 16);
    return out;
  }
  return std::nullopt;
}

bool in_prefix(const Address& a, const Address& net, int bits) {
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (net[i] & mask)) return false;
  }
  return true;
}

struct Cidr {
  Address net;
  int bits;  // over the 128-bit form
};

std::optional<Cidr> parse_cidr(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos) return std::nullopt;
  auto net = parse_address(text.substr(0, slash));
  if (!net) return std::nullopt;
  int bits = 0;
  try {
    bits = std::stoi(text.substr(slash + 1));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const int max = is_v4(*net) ? 32 : 128;
  if (bits < 0 || bits > max) return std::nullopt;
  return Cidr{*net, is_v4(*net) ? bits + 96 : bits};
}

// Loopback, private, link-local (the 169.254.169.254 metadata service), CGNAT,
// multicast, reserved and unspecified ranges: nothing a client may make us reach.
bool is_public(const Address& a) {
  static const char* const blocked[] = {
      "0.0.0.0/8",   "10.0.0.0/8",     "100.64.0.0/10", "127.0.0.0/8",  "169.254.0.0/16", "172.16.0.0/12",
      "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3", "::/128",         "::1/128",
      "fc00::/7",    "fe80::/10",      "ff00::/8",      "64:ff9b::/96", "2001:db8::/32"};
  static const std::vector<Cidr> ranges = [] {
    std::vector<Cidr> out;
    for (const char* b : blocked) out.push_back(*parse_cidr(b));
    return out;
  }();
  for (const Cidr& c : ranges)
    if (in_prefix(a, c.net, c.bits)) return false;
  return true;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<Address> resolve(const std::string& host) {
  if (auto literal = parse_address(host)) return {*literal};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return {};
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  std::vector<Address> out;
  for (addrinfo* p = res; p; p = p->ai_next) {
    if (p->ai_family == AF_INET) out.push_back(from_v4(reinterpret_cast<sockaddr_in*>(p->ai_addr)->sin_addr));
    if (p->ai_family == AF_INET6) {
      Address a;
      std::memcpy(a.data(), &reinterpret_cast<sockaddr_in6*>(p->ai_addr)->sin6_addr, 16);
      out.push_back(a);
    }
  }
  return out;
}

}  // namespace

UrlTarget parse_url_target(const std::string& url) {
  UrlTarget t;
  try {
    web::uri u(url);
    t.scheme = lower(u.scheme());
    t.host = lower(u.host());
    t.port = u.port();
  } catch (const std::exception&) {
    throw AdapterError("adapter url is not a valid URL");
  }
  if (t.scheme != "http" && t.scheme != "https") throw AdapterError("adapter url must be http:// or https://");
  if (t.host.size() > 2 && t.host.front() == '[' && t.host.back() == ']') t.host = t.host.substr(1, t.host.size() - 2);
  if (t.host.empty()) throw AdapterError("adapter url has no host");
  if (t.port <= 0) t.port = t.scheme == "https" ? 443 : 80;
  return t;
}

bool allow_entry_names(const std::string& entry_text, const UrlTarget& target) {
  const std::string entry = lower(entry_text);
  if (entry.find('/') != std::string::npos) return false;  // a CIDR
  std::string host = entry;
  int port = 0;
  // HOST:PORT, [V6]:PORT; a bare IPv6 literal has several colons and no port.
  if (!entry.empty() && entry.front() == '[') {
    const auto close = entry.find(']');
    if (close == std::string::npos) return false;
    host = entry.substr(1, close - 1);
    if (close + 1 < entry.size() && entry[close + 1] == ':') port = std::atoi(entry.c_str() + close + 2);
  } else if (std::count(entry.begin(), entry.end(), ':') == 1) {
    const auto colon = entry.find(':');
    host = entry.substr(0, colon);
    port = std::atoi(entry.c_str() + colon + 1);
  }
  return host == target.host && (port == 0 || port == target.port);
}

bool valid_allow_entry(const std::string& entry) {
  if (entry.empty()) return false;
  if (entry.find('/') != std::string::npos) return parse_cidr(entry).has_value();
  return entry.find_first_of(" \t\r\n") == std::string::npos;
}

void check_url_allowed(const std::string& url, const UrlPolicy& policy, const std::string& id) {
  const UrlTarget t = parse_url_target(url);
  for (const std::string& e : policy.allow)
    if (allow_entry_names(e, t)) return;
  std::vector<Cidr> allowed_nets;
  for (const std::string& e : policy.allow)
    if (auto c = parse_cidr(e)) allowed_nets.push_back(*c);
  const std::vector<Address> addresses = resolve(t.host);
  if (addresses.empty()) throw AdapterNotFound("adapter `" + id + "`: cannot resolve host " + t.host);
  for (const Address& a : addresses) {
    bool ok = is_public(a);
    for (const Cidr& c : allowed_nets) ok = ok || in_prefix(a, c.net, c.bits);
    if (!ok)
      throw AdapterForbidden("adapter `" + id + "`: host " + t.host +
                             " is not public and not allowed by --adapter-url-allow");
  }
}

}  // namespace lorax
