// ParseHttpUrl.
#include "userspace/common/url.h"

namespace dbw {

bool ParseHttpUrl(const std::string& url, HttpUrl* out, std::string* error) {
  HttpUrl ep;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    ep.tls = true;
    rest = url.substr(8);
  } else {
    *error = "URL must start with http:// or https://: " + url;
    return false;
  }
  size_t slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  ep.path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!ep.path.empty() && ep.path.back() == '/') ep.path.pop_back();
  ep.port = ep.tls ? "443" : "80";
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) {
      *error = "bad IPv6 address in " + url;
      return false;
    }
    ep.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':')
      ep.port = hostport.substr(close + 2);
  } else {
    size_t colon = hostport.rfind(':');
    ep.host = hostport.substr(0, colon);
    if (colon != std::string::npos) ep.port = hostport.substr(colon + 1);
  }
  if (ep.host.empty() || ep.port.empty()) {
    *error = "bad URL " + url;
    return false;
  }
  *out = std::move(ep);
  return true;
}

}  // namespace dbw
