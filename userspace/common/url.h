// http:// and https:// URLs as the CLI and webhooks take them: host (IPv6 in brackets), port
// (default 80/443) and the path that follows.
#pragma once

#include <string>

namespace dbw {

struct HttpUrl {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;  // "" or "/..." as written, without a trailing slash
};

// False with `error` set when `url` is not http(s)://host[:port][/path].
bool ParseHttpUrl(const std::string& url, HttpUrl* out, std::string* error);

}  // namespace dbw
