// Loading the agent's YAML configuration with precise, line-numbered errors.
#include "agent/config.h"

#include <netdb.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

#include <yaml-cpp/yaml.h>

#include "userspace/common/logging.h"
#include "userspace/common/url.h"
#include "userspace/export/transport.h"

namespace dbw::agent {
namespace {

// Thrown only while loading, caught in LoadConfig: it carries the node's position.
struct ConfigError {
  int line;
  std::string reason;
};

[[noreturn]] void Throw(const YAML::Node& node, std::string reason) {
  throw ConfigError{node.Mark().line + 1, std::move(reason)};
}

void CheckKeys(const YAML::Node& map, const char* where, std::set<std::string> allowed) {
  if (!map.IsMap()) Throw(map, std::string(where) + " must be a mapping");
  for (const auto& kv : map) {
    std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) Throw(kv.first, "unknown key \"" + key + "\" in " + where);
  }
}

std::string Scalar(const YAML::Node& node, const std::string& what) {
  if (!node.IsScalar()) Throw(node, what + " must be a string");
  return node.as<std::string>();
}

std::string RequiredScalar(const YAML::Node& map, const char* key, const std::string& where) {
  YAML::Node n = map[key];
  if (!n) Throw(map, where + ": missing required key \"" + key + "\"");
  std::string v = Scalar(n, std::string(key));
  if (v.empty()) Throw(n, where + ": \"" + key + "\" must not be empty");
  return v;
}

// "250ms", "5s", "2m", "1h".
std::chrono::milliseconds Duration(const YAML::Node& node, const std::string& what) {
  std::string text = Scalar(node, what);
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  std::string unit(ptr, static_cast<size_t>(text.data() + text.size() - ptr));
  if (ec != std::errc() || ptr == text.data()) Throw(node, what + ": expected a duration like 30s");
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit == "s") return std::chrono::seconds(n);
  if (unit == "m") return std::chrono::minutes(n);
  if (unit == "h") return std::chrono::hours(n);
  if (unit == "d") return std::chrono::hours(24 * n);
  Throw(node, what + ": unknown duration unit \"" + unit + "\" (use ms, s, m, h or d)");
}

// "host:port" or "[v6]:port"; numeric host, or a name resolved now (never on a worker).
void HostPort(const YAML::Node& node, const std::string& what, bool resolve, std::string* host,
              uint16_t* port) {
  std::string text = Scalar(node, what);
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size())
    Throw(node, what + ": expected host:port, got \"" + text + "\"");
  std::string h = text.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string p = text.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || ptr != p.data() + p.size() || value == 0 || value > 65535)
    Throw(node, what + ": invalid port \"" + p + "\"");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = resolve ? 0 : AI_NUMERICHOST;
  addrinfo* res = nullptr;
  if (h.empty() || ::getaddrinfo(h.c_str(), nullptr, &hints, &res) != 0 || res == nullptr)
    Throw(node, what + ": " + (resolve ? "cannot resolve host \"" : "not a numeric IP address \"") +
                    h + "\"");
  char buf[NI_MAXHOST];
  ::getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof(buf), nullptr, 0, NI_NUMERICHOST);
  ::freeaddrinfo(res);
  *host = buf;
  *port = static_cast<uint16_t>(value);
}

// upstream: unix:/dir/.s.PGSQL.<port> — the server's unix socket, named as PostgreSQL names it
// (the port in the name is what the tap finds the server by).
void UnixUpstream(const YAML::Node& node, const std::string& what, std::string* path,
                  uint16_t* port) {
  std::string p = Scalar(node, what).substr(5);
  if (p.empty() || p.front() != '/')
    Throw(node, what + ": a unix socket must be an absolute path (unix:/dir/.s.PGSQL.5432)");
  if (p.size() >= sizeof(sockaddr_un::sun_path))
    Throw(node, what + ": the socket path is longer than " +
                    std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  const std::string name = p.substr(p.rfind('/') + 1);
  const std::string prefix = ".s.PGSQL.";
  unsigned value = 0;
  const char* digits = name.data() + prefix.size();
  auto [ptr, ec] = std::from_chars(digits, name.data() + name.size(), value);
  if (name.rfind(prefix, 0) != 0 || ec != std::errc() || ptr != name.data() + name.size() ||
      value == 0 || value > 65535)
    Throw(node, what + ": expected the server's socket file, named .s.PGSQL.<port>, got \"" + name +
                    "\"");
  *path = p;
  *port = static_cast<uint16_t>(value);
}

void CheckReadable(const YAML::Node& node, const std::string& what, const std::string& file) {
  std::ifstream f(file);
  if (!f) Throw(node, what + ": cannot read \"" + file + "\"");
}

// A whole number from 0 to `max` (connection limits: 0 is unlimited).
size_t Count(const YAML::Node& node, const std::string& what, size_t max,
             const char* zero = "unlimited") {
  std::string v = Scalar(node, what);
  size_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr != v.data() + v.size() || n > max)
    Throw(node, what + " must be a number from 0 to " + std::to_string(max) + " (0: " + zero + ")");
  return n;
}

// A string or a list of strings, as globs (`*` and `?`).
std::vector<policy::Glob> Globs(const YAML::Node& node, const std::string& what) {
  std::vector<policy::Glob> out;
  auto add = [&](const YAML::Node& n) {
    policy::Glob g;
    std::string error;
    if (!policy::Glob::Compile(Scalar(n, what), false, &g, &error)) Throw(n, what + ": " + error);
    out.push_back(std::move(g));
  };
  if (node.IsSequence()) {
    for (const YAML::Node& n : node) add(n);
  } else {
    add(node);
  }
  if (out.empty()) Throw(node, what + " must not be empty");
  return out;
}

// A secret: the file's contents without a trailing newline. `credential` names a systemd
// credential (LoadCredential= in the unit), read from $CREDENTIALS_DIRECTORY.
std::string ReadSecret(const YAML::Node& m, const std::string& what, std::string* source) {
  std::string file;
  if (m["password_file"] && m["credential"])
    Throw(m, what + ": give password_file or credential, not both");
  if (YAML::Node f = m["password_file"]) {
    file = Scalar(f, what + ".password_file");
    *source = "password_file " + file;
  } else if (YAML::Node c = m["credential"]) {
    std::string name = Scalar(c, what + ".credential");
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      Throw(c, what + ".credential must be a credential name (LoadCredential=NAME:...)");
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0')
      Throw(c, what + ".credential \"" + name +
                   "\": $CREDENTIALS_DIRECTORY is not set; run under systemd with "
                   "LoadCredential=" +
                   name + ":/path/to/secret");
    file = std::string(dir) + "/" + name;
    *source = "credential " + name;
  } else {
    return {};
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) Throw(m, what + ": cannot read \"" + file + "\"");
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) Throw(m, what + ": \"" + file + "\" is empty");
  return secret;
}

std::string Kind(const YAML::Node& node, const std::string& what) {
  std::string v = Scalar(node, what);
  if (v != "agent" && v != "human") Throw(node, what + " must be agent or human");
  return v;
}

relay::TokenIssuerOptions ParseIssuer(const YAML::Node& m, const std::string& what) {
  CheckKeys(m, what.c_str(),
            {"issuer", "audiences", "audience", "jwks_file", "jwks_url", "jwks_ca", "jwks_refresh",
             "subject_claim", "groups_claim", "kind", "kind_claim"});
  relay::TokenIssuerOptions o;
  o.issuer = RequiredScalar(m, "issuer", what);
  if (m["audience"] && m["audiences"]) Throw(m, what + ": give audience or audiences, not both");
  YAML::Node aud = m["audiences"] ? m["audiences"] : m["audience"];
  if (!aud)
    Throw(m, what +
                 ": missing required key \"audiences\" (the aud a token must carry for "
                 "this relay; without it a token minted for any service would do)");
  if (aud.IsSequence()) {
    for (const YAML::Node& a : aud) o.audiences.push_back(Scalar(a, what + ".audiences[]"));
  } else {
    o.audiences.push_back(Scalar(aud, what + ".audience"));
  }
  for (const std::string& a : o.audiences)
    if (a.empty()) Throw(aud, what + ": an audience must not be empty");
  if (o.audiences.empty()) Throw(aud, what + ".audiences must not be empty");
  if (m["jwks_file"].IsDefined() == m["jwks_url"].IsDefined())
    Throw(m, what + ": give jwks_file or jwks_url (where the issuer's keys are)");
  if (YAML::Node f = m["jwks_file"]) {
    o.jwks_file = Scalar(f, what + ".jwks_file");
    CheckReadable(f, what + ".jwks_file", o.jwks_file);
  }
  if (YAML::Node u = m["jwks_url"]) {
    o.jwks_url = Scalar(u, what + ".jwks_url");
    if (!o.jwks_url.starts_with("https://"))
      Throw(u, what +
                   ".jwks_url must be an https:// URL (keys fetched in the clear could be "
                   "replaced by anyone on the path)");
  }
  if (YAML::Node ca = m["jwks_ca"]) {
    if (o.jwks_url.empty()) Throw(ca, what + ".jwks_ca is for jwks_url");
    o.jwks_ca = Scalar(ca, what + ".jwks_ca");
    CheckReadable(ca, what + ".jwks_ca", o.jwks_ca);
  }
  if (YAML::Node r = m["jwks_refresh"]) {
    o.jwks_refresh =
        std::chrono::duration_cast<std::chrono::seconds>(Duration(r, what + ".jwks_refresh"));
    if (o.jwks_refresh < std::chrono::seconds(1))
      Throw(r, what + ".jwks_refresh must be at least 1s");
  }
  if (m["subject_claim"]) o.subject_claim = RequiredScalar(m, "subject_claim", what);
  if (m["groups_claim"]) o.groups_claim = RequiredScalar(m, "groups_claim", what);
  if (m["kind"]) o.kind = Kind(m["kind"], what + ".kind");
  if (m["kind_claim"]) o.kind_claim = RequiredScalar(m, "kind_claim", what);
  return o;
}

relay::AuthOptions ParseAuth(const YAML::Node& a, const relay::TargetOptions& t,
                             const std::string& where) {
  CheckKeys(a, "auth", {"token", "credentials", "bind"});
  relay::AuthOptions o;
  if (YAML::Node tok = a["token"]) {
    CheckKeys(tok, "auth.token", {"issuers", "clock_skew", "on_expiry"});
    relay::TokenLoginOptions lo;
    YAML::Node issuers = tok["issuers"];
    if (!issuers || !issuers.IsSequence() || issuers.size() == 0)
      Throw(issuers ? issuers : tok, "auth.token.issuers must be a non-empty list");
    for (size_t i = 0; i < issuers.size(); ++i) {
      relay::TokenIssuerOptions io =
          ParseIssuer(issuers[i], "auth.token.issuers[" + std::to_string(i) + "]");
      for (const relay::TokenIssuerOptions& other : lo.issuers)
        if (other.issuer == io.issuer)
          Throw(issuers[i], "auth.token.issuers: \"" + io.issuer + "\" is listed twice");
      lo.issuers.push_back(std::move(io));
    }
    if (YAML::Node skew = tok["clock_skew"]) {
      auto d = Duration(skew, "auth.token.clock_skew");
      if (d > std::chrono::minutes(10))
        Throw(skew, "auth.token.clock_skew must be at most 10m (it extends every token's life)");
      lo.clock_skew = std::chrono::duration_cast<std::chrono::seconds>(d);
    }
    if (YAML::Node e = tok["on_expiry"]) {
      std::string v = Scalar(e, "auth.token.on_expiry");
      if (v != "terminate" && v != "continue")
        Throw(e, "auth.token.on_expiry must be terminate or continue");
      lo.end_at_expiry = v == "terminate";
    }
    if (!t.tls)
      Throw(tok, where +
                     ": auth.token needs tls.cert and tls.key: a token is a bearer "
                     "credential and is only accepted over TLS");
    o.token = std::move(lo);
  }
  YAML::Node creds = a["credentials"];
  if (!creds || !creds.IsSequence() || creds.size() == 0)
    Throw(creds ? creds : a,
          "auth.credentials must be a non-empty list of {match, role, password_file | "
          "credential}: the relay logs in for the client, which never holds the database "
          "password");
  for (size_t i = 0; i < creds.size(); ++i) {
    const YAML::Node& m = creds[i];
    std::string what = "auth.credentials[" + std::to_string(i) + "]";
    CheckKeys(m, what.c_str(), {"match", "role", "users", "password_file", "credential"});
    relay::CredentialMapping c;
    c.role = RequiredScalar(m, "role", what);
    YAML::Node match = m["match"];
    if (!match)
      Throw(m, what + ": missing required key \"match\" (which principals get " + c.role +
                   "; use {subject: \"*\"} for every verified principal)");
    CheckKeys(match, (what + ".match").c_str(),
              {"subject", "issuer", "groups", "cert_san", "kind"});
    if (match.size() == 0) Throw(match, what + ".match must name at least one key");
    if (match["subject"]) c.subject = Globs(match["subject"], what + ".match.subject");
    if (match["issuer"]) c.issuer = Globs(match["issuer"], what + ".match.issuer");
    if (match["groups"]) c.groups = Globs(match["groups"], what + ".match.groups");
    if (match["cert_san"]) c.cert_san = Globs(match["cert_san"], what + ".match.cert_san");
    if (match["kind"]) c.kind = Kind(match["kind"], what + ".match.kind");
    if (m["users"]) {
      c.users = Globs(m["users"], what + ".users");
    } else {
      policy::Glob g;
      std::string ignored;
      policy::Glob::Compile(c.role, false, &g, &ignored);  // a role name has no `\\`, `[` or `]`
      c.users.push_back(std::move(g));
    }
    c.password = ReadSecret(m, what, &c.secret_source);
    o.credentials.push_back(std::move(c));
  }
  if (!o.token && (!t.tls || t.tls->client_ca.empty()))
    Throw(a, where +
                 ": auth without auth.token verifies principals by client certificate, "
                 "which needs tls.client_ca");
  if (YAML::Node bind = a["bind"]) {
    if (!o.token) Throw(bind, "auth.bind binds token subjects to workloads; it needs auth.token");
    if (!bind.IsSequence()) Throw(bind, "auth.bind must be a list of {subject, unit|exe|cgroup}");
    for (size_t i = 0; i < bind.size(); ++i) {
      const YAML::Node& b = bind[i];
      std::string what = "auth.bind[" + std::to_string(i) + "]";
      CheckKeys(b, what.c_str(), {"subject", "unit", "exe", "cgroup"});
      relay::WorkloadBinding w;
      if (!b["subject"]) Throw(b, what + ": missing required key \"subject\"");
      w.subject = Globs(b["subject"], what + ".subject");
      if (b["unit"]) w.unit = Globs(b["unit"], what + ".unit");
      if (b["exe"]) w.exe = Globs(b["exe"], what + ".exe");
      if (b["cgroup"]) w.cgroup = Globs(b["cgroup"], what + ".cgroup");
      if (w.unit.empty() && w.exe.empty() && w.cgroup.empty())
        Throw(b, what + ": name the workload with unit, exe or cgroup");
      o.bind.push_back(std::move(w));
    }
  }
  return o;
}

relay::TargetOptions ParseTarget(const YAML::Node& t, size_t index) {
  std::string where = "targets[" + std::to_string(index) + "]";
  CheckKeys(t, where.c_str(),
            {"name", "env", "listen", "listen_unix", "upstream", "tls", "upstream_tls",
             "audit_before_forward", "catalog", "relay_only", "auth"});
  relay::TargetOptions o;
  o.name = RequiredScalar(t, "name", where);
  where = "target \"" + o.name + "\"";
  o.env = t["env"] ? Scalar(t["env"], "env") : "prod";
  o.audit_before_forward = o.env == "prod";
  if (YAML::Node abf = t["audit_before_forward"]) {
    std::string v = Scalar(abf, "audit_before_forward");
    if (v != "true" && v != "false") Throw(abf, "audit_before_forward must be true or false");
    o.audit_before_forward = v == "true";
  }
  if (YAML::Node ro = t["relay_only"]) {
    std::string v = Scalar(ro, "relay_only");
    if (v != "true" && v != "false" && v != "enforce" && v != "refuse")
      Throw(ro, "relay_only must be true, false, enforce or refuse");
    o.relay_only = v != "false";
    o.route = v == "enforce"  ? relay::TargetOptions::Route::kEnforce
              : v == "refuse" ? relay::TargetOptions::Route::kRefuse
                              : relay::TargetOptions::Route::kNone;
  }
  if (!t["listen"]) Throw(t, where + ": missing required key \"listen\"");
  HostPort(t["listen"], where + " listen", false, &o.listen_host, &o.listen_port);
  if (YAML::Node lu = t["listen_unix"]) {
    o.listen_unix = Scalar(lu, where + " listen_unix");
    if (o.listen_unix.empty() || o.listen_unix[0] != '/' ||
        o.listen_unix.size() >= sizeof(sockaddr_un::sun_path))
      Throw(lu, where + " listen_unix must be an absolute path of at most " +
                    std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  }
  if (!t["upstream"]) Throw(t, where + ": missing required key \"upstream\"");
  if (Scalar(t["upstream"], where + " upstream").rfind("unix:", 0) == 0) {
    UnixUpstream(t["upstream"], where + " upstream", &o.upstream_unix, &o.upstream_port);
    if (t["upstream_tls"])
      Throw(t["upstream_tls"],
            "upstream_tls with a unix-socket upstream: PostgreSQL offers no TLS on its unix "
            "socket");
  } else {
    HostPort(t["upstream"], where + " upstream", true, &o.upstream_host, &o.upstream_port);
  }
  std::optional<bool> require;
  if (YAML::Node tls = t["tls"]) {
    CheckKeys(tls, "tls", {"cert", "key", "client_ca", "require", "client_identity"});
    if (YAML::Node ci = tls["client_identity"]) {
      std::string v = Scalar(ci, "tls.client_identity");
      if (v != "subject" && v != "uri_san")
        Throw(ci, "tls.client_identity must be subject or uri_san");
      if (!tls["client_ca"])
        Throw(ci, "tls.client_identity needs tls.client_ca (client certificates verified)");
      o.identity_from_uri_san = v == "uri_san";
    }
    if (YAML::Node r = tls["require"]) {
      std::string v = Scalar(r, "tls.require");
      if (v != "true" && v != "false") Throw(r, "tls.require must be true or false");
      require = v == "true";
    }
    // `tls: {require: false}` alone: no client TLS, and none required.
    if (tls["cert"] || tls["key"] || tls["client_ca"] || !require.has_value()) {
      relay::TlsServerOptions s;
      s.cert = RequiredScalar(tls, "cert", where + " tls");
      s.key = RequiredScalar(tls, "key", where + " tls");
      CheckReadable(tls["cert"], "tls.cert", s.cert);
      CheckReadable(tls["key"], "tls.key", s.key);
      if (tls["client_ca"]) {
        s.client_ca = Scalar(tls["client_ca"], "tls.client_ca");
        CheckReadable(tls["client_ca"], "tls.client_ca", s.client_ca);
      }
      o.tls = s;
    }
  }
  if (YAML::Node tls = t["upstream_tls"]) {
    CheckKeys(tls, "upstream_tls", {"ca", "cert", "key", "server_name", "client_certs"});
    if (tls["cert"] || tls["key"])
      Throw(tls["cert"] ? tls["cert"] : tls["key"],
            "upstream_tls.cert would log every client that reaches the relay in with one "
            "certificate (and so as its role); map verified client certificates to upstream "
            "ones with upstream_tls.client_certs: [{subject, cert, key}]");
    relay::TlsClientOptions c;
    c.ca = RequiredScalar(tls, "ca", where + " upstream_tls");
    CheckReadable(tls["ca"], "upstream_tls.ca", c.ca);
    if (tls["server_name"]) c.server_name = Scalar(tls["server_name"], "upstream_tls.server_name");
    if (YAML::Node certs = tls["client_certs"]) {
      if (!certs.IsSequence())
        Throw(certs, "upstream_tls.client_certs must be a list of {subject, cert, key}");
      if (!o.tls || o.tls->client_ca.empty())
        Throw(certs,
              "upstream_tls.client_certs needs tls.client_ca: a client certificate is presented "
              "upstream only for a client whose own certificate the relay verified");
      for (const YAML::Node& m : certs) {
        CheckKeys(m, "upstream_tls.client_certs[]",
                  {"subject", "uri_san", "issuer", "cert", "key"});
        relay::UpstreamClientCert uc;
        if (m["subject"].IsDefined() == m["uri_san"].IsDefined())
          Throw(m,
                "upstream_tls.client_certs[]: give either subject or uri_san (the verified "
                "client certificate's) for each mapped certificate");
        if (m["subject"]) uc.subject = Scalar(m["subject"], "upstream_tls.client_certs[].subject");
        if (m["uri_san"]) uc.uri_san = Scalar(m["uri_san"], "upstream_tls.client_certs[].uri_san");
        if (m["issuer"]) uc.issuer = Scalar(m["issuer"], "upstream_tls.client_certs[].issuer");
        uc.cert = RequiredScalar(m, "cert", where + " upstream_tls.client_certs[]");
        uc.key = RequiredScalar(m, "key", where + " upstream_tls.client_certs[]");
        CheckReadable(m["cert"], "upstream_tls.client_certs[].cert", uc.cert);
        CheckReadable(m["key"], "upstream_tls.client_certs[].key", uc.key);
        for (const relay::UpstreamClientCert& other : c.client_certs)
          if (other.subject == uc.subject && other.uri_san == uc.uri_san &&
              other.issuer == uc.issuer)
            Throw(m,
                  "upstream_tls.client_certs: \"" + uc.subject + uc.uri_san + "\" is mapped twice");
        c.client_certs.push_back(std::move(uc));
      }
    }
    o.upstream_tls = c;
  }
  o.tls_required = require.value_or(o.upstream_tls.has_value());
  if (o.tls_required && !o.tls)
    Throw(t["tls"] ? t["tls"] : t,
          where + ": clients must use TLS (tls.require" +
              (require ? ""
                       : ", on by default with upstream_tls: a plaintext client would "
                         "otherwise pass the server's hostssl rules through the relay's "
                         "TLS leg") +
              "), but tls.cert and tls.key are not set; configure them, or set tls.require: "
              "false");
  if (YAML::Node auth = t["auth"]) {
    o.auth = ParseAuth(auth, o, where);
    if (o.auth->token) {
      if (require == false)
        Throw(t["tls"]["require"],
              "tls.require: false with auth.token: a token is a bearer "
              "credential, accepted only over TLS");
      o.tls_required = true;
    }
  }
  if (YAML::Node cat = t["catalog"]) {
    // The login masking uses to read table and column names (default: the session's user).
    CheckKeys(cat, "catalog", {"user", "password_file"});
    if (cat["user"]) o.catalog_login.user = Scalar(cat["user"], "catalog.user");
    if (cat["password_file"]) {
      std::string file = Scalar(cat["password_file"], "catalog.password_file");
      CheckReadable(cat["password_file"], "catalog.password_file", file);
      std::ifstream in(file);
      std::getline(in, o.catalog_login.password);
    }
  }
  return o;
}

void ParseAudit(const YAML::Node& a, AgentConfig* c) {
  CheckKeys(a, "audit", {"durability", "retention", "signing_key", "anchor_file", "intent_log_mb"});
  if (a["intent_log_mb"])
    c->audit_intent_log_mb = Count(a["intent_log_mb"], "audit.intent_log_mb", 1024, "off");
  if (a["anchor_file"]) c->audit_anchor_file = Scalar(a["anchor_file"], "audit.anchor_file");
  if (a["durability"]) {
    c->audit_durability = Scalar(a["durability"], "audit.durability");
    if (c->audit_durability != "auto" && c->audit_durability != "sync" &&
        c->audit_durability != "async")
      Throw(a["durability"], "audit.durability must be auto, sync or async");
  }
  if (a["retention"]) {
    c->audit_retention = std::chrono::duration_cast<std::chrono::seconds>(
        Duration(a["retention"], "audit.retention"));
  }
  if (a["signing_key"]) c->audit_signing_key = Scalar(a["signing_key"], "audit.signing_key");
}

void ParseApi(const YAML::Node& a, AgentConfig* c) {
  CheckKeys(
      a, "api",
      {"enabled", "listen", "tls", "tokens", "max_connections", "max_connections_per_source"});
  if (a["max_connections"])
    c->api.max_connections = Count(a["max_connections"], "api.max_connections", 1000000);
  if (a["max_connections_per_source"])
    c->api.max_connections_per_source =
        Count(a["max_connections_per_source"], "api.max_connections_per_source", 1000000);
  if (a["enabled"]) {
    std::string v = Scalar(a["enabled"], "api.enabled");
    if (v != "true" && v != "false") Throw(a["enabled"], "api.enabled must be true or false");
    c->api_enabled = v == "true";
  }
  if (a["listen"]) {
    std::string host;
    uint16_t port = 0;
    HostPort(a["listen"], "api.listen", false, &host, &port);
    c->api.listen = Scalar(a["listen"], "api.listen");
  }
  if (YAML::Node tls = a["tls"]) {
    CheckKeys(tls, "api.tls", {"cert", "key", "client_ca"});
    c->api.tls.cert = RequiredScalar(tls, "cert", "api.tls");
    c->api.tls.key = RequiredScalar(tls, "key", "api.tls");
    CheckReadable(tls["cert"], "api.tls.cert", c->api.tls.cert);
    CheckReadable(tls["key"], "api.tls.key", c->api.tls.key);
    if (tls["client_ca"]) {
      c->api.tls.client_ca = Scalar(tls["client_ca"], "api.tls.client_ca");
      CheckReadable(tls["client_ca"], "api.tls.client_ca", c->api.tls.client_ca);
    }
  }
  if (YAML::Node tokens = a["tokens"]) {
    if (!tokens.IsSequence()) Throw(tokens, "api.tokens must be a list");
    std::set<std::string> names;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const YAML::Node& t = tokens[i];
      std::string where = "api.tokens[" + std::to_string(i) + "]";
      CheckKeys(t, where.c_str(), {"name", "role", "sha256", "groups"});
      api::TokenConfig tc;
      tc.name = RequiredScalar(t, "name", where);
      if (!names.insert(tc.name).second)
        Throw(t["name"], "duplicate token name \"" + tc.name + "\"");
      std::string role = RequiredScalar(t, "role", where);
      if (role == "viewer") {
        tc.role = api::Role::kViewer;
      } else if (role == "approver") {
        tc.role = api::Role::kApprover;
      } else if (role == "admin") {
        tc.role = api::Role::kAdmin;
      } else {
        Throw(t["role"], where + ": role must be viewer, approver or admin");
      }
      tc.sha256 = RequiredScalar(t, "sha256", where);
      bool hex = tc.sha256.size() == 64;
      for (char ch : tc.sha256) hex = hex && std::isxdigit(static_cast<unsigned char>(ch));
      if (!hex)
        Throw(t["sha256"], where + ": sha256 must be 64 hex digits (sha256sum of the token)");
      if (YAML::Node groups = t["groups"]) {
        if (!groups.IsSequence()) Throw(groups, where + ": groups must be a list of names");
        for (const auto& g : groups) tc.groups.push_back(Scalar(g, where + ".groups entry"));
      }
      c->api.tokens.push_back(std::move(tc));
    }
  }
}

// A whole number within [lo, hi].
uint64_t Number(const YAML::Node& node, const std::string& what, uint64_t lo, uint64_t hi) {
  std::string v = Scalar(node, what);
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr != v.data() + v.size() || n < lo || n > hi)
    Throw(node,
          what + " must be a number from " + std::to_string(lo) + " to " + std::to_string(hi));
  return n;
}

void ParseTap(const YAML::Node& a, AgentConfig* c) {
  CheckKeys(a, "tap", {"enabled", "ports", "capture_bytes", "ring_buffer_mb", "witness"});
  if (YAML::Node e = a["enabled"]) {
    std::string v = Scalar(e, "tap.enabled");
    if (v != "true" && v != "false" && v != "auto")
      Throw(e, "tap.enabled must be true, false or auto");
    c->tap_mode = v;
  }
  if (YAML::Node ports = a["ports"]) {
    if (!ports.IsSequence()) Throw(ports, "tap.ports must be a list of port numbers");
    c->tap.ports.clear();
    for (const auto& p : ports)
      c->tap.ports.push_back(static_cast<uint16_t>(Number(p, "tap.ports entry", 1, 65535)));
  }
  if (a["capture_bytes"])
    c->tap.capture_bytes =
        static_cast<uint32_t>(Number(a["capture_bytes"], "tap.capture_bytes", 64, 65536));
  if (a["ring_buffer_mb"])
    c->tap.ring_buffer_bytes = Number(a["ring_buffer_mb"], "tap.ring_buffer_mb", 1, 4096) << 20;
  if (YAML::Node w = a["witness"]) {
    std::string v = Scalar(w, "tap.witness");
    if (v != "true" && v != "false") Throw(w, "tap.witness must be true or false");
    c->tap.witness = v == "true";
  }
}

// A cgroup v2 path as written in the configuration: absolute, no "..".
std::string CgroupPath(const YAML::Node& node, const std::string& what) {
  std::string v = Scalar(node, what);
  if (v.empty() || v[0] != '/' || v.find("/../") != std::string::npos || v.ends_with("/.."))
    Throw(node, what +
                    " must be a cgroup v2 path from the hierarchy's root, e.g. "
                    "/system.slice/backup.service");
  while (v.size() > 1 && v.back() == '/') v.pop_back();
  return v == "/" ? "" : v;
}

// One value or a list of them.
std::vector<YAML::Node> OneOrMany(const YAML::Node& node) {
  std::vector<YAML::Node> out;
  if (node.IsSequence())
    for (const auto& n : node) out.push_back(n);
  else
    out.push_back(node);
  return out;
}

void ParseRouting(const YAML::Node& a, AgentConfig* c) {
  CheckKeys(a, "routing", {"cgroups", "exempt", "on_agent_exit", "pin_dir"});
  route::RouterOptions& o = c->routing;
  if (YAML::Node cg = a["cgroups"]) {
    if (!cg.IsSequence() || cg.size() == 0)
      Throw(cg, "routing.cgroups must be a non-empty list of cgroup v2 paths");
    for (const auto& n : cg) o.cgroups.push_back(CgroupPath(n, "routing.cgroups entry"));
  }
  if (YAML::Node e = a["on_agent_exit"]) {
    std::string v = Scalar(e, "routing.on_agent_exit");
    if (v != "open" && v != "closed") Throw(e, "routing.on_agent_exit must be open or closed");
    o.on_agent_exit = v == "open" ? route::OnAgentExit::kOpen : route::OnAgentExit::kClosed;
  }
  if (YAML::Node p = a["pin_dir"]) {
    o.pin_dir = Scalar(p, "routing.pin_dir");
    if (!o.pin_dir.starts_with("/sys/fs/bpf/"))
      Throw(p, "routing.pin_dir must be a directory under /sys/fs/bpf/");
  }
  if (YAML::Node ex = a["exempt"]) {
    if (!ex.IsSequence()) Throw(ex, "routing.exempt must be a list of {unit|exe|uid|cgroup}");
    for (size_t i = 0; i < ex.size(); ++i) {
      const YAML::Node& e = ex[i];
      std::string what = "routing.exempt[" + std::to_string(i) + "]";
      CheckKeys(e, what.c_str(), {"unit", "exe", "uid", "cgroup"});
      if (e.size() != 1) Throw(e, what + ": one of unit, exe, uid or cgroup per entry");
      if (e["unit"]) {
        for (auto& g : Globs(e["unit"], what + ".unit")) o.exempt.units.push_back(std::move(g));
      } else if (e["exe"]) {
        for (const YAML::Node& n : OneOrMany(e["exe"])) {
          std::string path = Scalar(n, what + ".exe");
          struct stat st {};
          if (path.empty() || path[0] != '/') Throw(n, what + ".exe must be an absolute path");
          if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
            Throw(n, what + ".exe: " + path + " is not an executable file on this host");
          // The kernel compares the file it executes: for a script that is the interpreter.
          std::ifstream head(path, std::ios::binary);
          char magic[2] = {};
          if (head.read(magic, 2) && magic[0] == '#' && magic[1] == '!')
            Throw(n, what + ".exe: " + path +
                         " is a script, and what runs is its interpreter "
                         "(exempting it would exempt every script it runs): "
                         "name a binary");
          o.exempt.exes.push_back(path);
        }
      } else if (e["uid"]) {
        for (const YAML::Node& n : OneOrMany(e["uid"])) {
          std::string v = Scalar(n, what + ".uid");
          uint32_t uid = 0;
          auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), uid);
          if (ec != std::errc() || ptr != v.data() + v.size()) {
            passwd* pw = ::getpwnam(v.c_str());
            if (!pw) Throw(n, what + ".uid: no user \"" + v + "\" on this host");
            uid = pw->pw_uid;
          }
          o.exempt.uids.push_back(uid);
        }
      } else {
        for (const YAML::Node& n : OneOrMany(e["cgroup"]))
          o.exempt.cgroups.push_back(CgroupPath(n, what + ".cgroup"));
      }
    }
  }
}

void ParseApprovals(const YAML::Node& a, AgentConfig* c) {
  CheckKeys(a, "approvals",
            {"retention", "webhooks", "webhook_attempts", "webhook_backoff", "webhook_timeout"});
  ApprovalsConfig& o = c->approvals;
  if (a["retention"])
    o.retention = std::chrono::duration_cast<std::chrono::seconds>(
        Duration(a["retention"], "approvals.retention"));
  if (a["webhook_attempts"]) {
    std::string v = Scalar(a["webhook_attempts"], "approvals.webhook_attempts");
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), o.webhook_attempts);
    if (ec != std::errc() || ptr != v.data() + v.size() || o.webhook_attempts < 1 ||
        o.webhook_attempts > 100)
      Throw(a["webhook_attempts"], "approvals.webhook_attempts must be a number from 1 to 100");
  }
  if (a["webhook_backoff"])
    o.webhook_backoff = Duration(a["webhook_backoff"], "approvals.webhook_backoff");
  if (a["webhook_timeout"]) {
    o.webhook_timeout = Duration(a["webhook_timeout"], "approvals.webhook_timeout");
    if (o.webhook_timeout.count() == 0)
      Throw(a["webhook_timeout"], "approvals.webhook_timeout must be more than 0");
  }
  if (YAML::Node hooks = a["webhooks"]) {
    if (!hooks.IsSequence()) Throw(hooks, "approvals.webhooks must be a list");
    for (size_t i = 0; i < hooks.size(); ++i) {
      const YAML::Node& h = hooks[i];
      std::string where = "approvals.webhooks[" + std::to_string(i) + "]";
      CheckKeys(h, where.c_str(), {"url", "headers"});
      ApprovalsConfig::Webhook hook;
      hook.url = RequiredScalar(h, "url", where);
      std::string error;
      HttpUrl parsed;
      if (!ParseHttpUrl(hook.url, &parsed, &error)) Throw(h["url"], where + ": " + error);
      if (YAML::Node headers = h["headers"]) {
        if (!headers.IsMap()) Throw(headers, where + ".headers must be a mapping");
        for (const auto& kv : headers)
          hook.headers.emplace_back(kv.first.as<std::string>(),
                                    Scalar(kv.second, where + ".headers value"));
      }
      o.webhooks.push_back(std::move(hook));
    }
  }
}

// "host:port" or "[v6]:port", not resolved here: a receiver's name is looked up at each
// connect, so one that is not in DNS yet does not stop the agent.
void ReceiverAddress(const YAML::Node& node, const std::string& what, std::string* host,
                     std::string* port) {
  std::string text = Scalar(node, what);
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    Throw(node, what + ": expected host:port, got \"" + text + "\"");
  std::string h = text.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.find_first_of("[]") != std::string::npos ||
      (h.find(':') != std::string::npos && text.front() != '['))
    Throw(node, what + ": an IPv6 address goes in brackets ([::1]:6514), got \"" + text + "\"");
  std::string p = text.substr(colon + 1);
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || ptr != p.data() + p.size() || value == 0 || value > 65535)
    Throw(node, what + ": invalid port \"" + p + "\"");
  *host = h;
  *port = p;
}

exporter::TlsOptions ExportTls(const YAML::Node& t, const std::string& what) {
  exporter::TlsOptions o;
  if (t.IsScalar()) {
    std::string v = Scalar(t, what);
    if (v != "true" && v != "false") Throw(t, what + " must be true, false or a mapping");
    o.enabled = v == "true";
    return o;
  }
  CheckKeys(t, what.c_str(), {"ca_file", "cert_file", "key_file", "server_name"});
  o.enabled = true;
  if (t["ca_file"]) {
    o.ca_file = Scalar(t["ca_file"], what + ".ca_file");
    CheckReadable(t["ca_file"], what + ".ca_file", o.ca_file);
  }
  if (t["cert_file"]) {
    o.cert_file = Scalar(t["cert_file"], what + ".cert_file");
    CheckReadable(t["cert_file"], what + ".cert_file", o.cert_file);
  }
  if (t["key_file"]) {
    o.key_file = Scalar(t["key_file"], what + ".key_file");
    CheckReadable(t["key_file"], what + ".key_file", o.key_file);
  }
  if (o.cert_file.empty() != o.key_file.empty())
    Throw(t, what + ": give cert_file and key_file together");
  if (t["server_name"]) o.server_name = Scalar(t["server_name"], what + ".server_name");
  return o;
}

// export: a list of exporters (docs/export.md#exporters).
void ParseExport(const YAML::Node& list, AgentConfig* c) {
  if (!list.IsSequence()) Throw(list, "export must be a list of exporters");
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    const YAML::Node& e = list[i];
    std::string what = "export[" + std::to_string(i) + "]";
    if (!e.IsMap()) Throw(e, what + " must be a mapping");
    exporter::ExporterOptions o;
    o.name = RequiredScalar(e, "name", what);
    for (char ch : o.name)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_')
        Throw(e["name"], what +
                             ".name may hold letters, digits, - and _ (it names the cursor "
                             "file), got \"" +
                             o.name + "\"");
    if (!names.insert(o.name).second)
      Throw(e["name"], what + ": the name \"" + o.name + "\" is used twice");
    what = "export " + o.name;
    std::string type = RequiredScalar(e, "type", what);
    std::set<std::string> keys = {"name",  "type",    "format",  "start",
                                  "batch", "timeout", "backoff", "max_backoff"};
    if (type == "syslog") {
      o.kind = exporter::Kind::kSyslog;
      keys.insert({"address", "tls", "facility", "app_name", "confirm_after"});
    } else if (type == "kafka") {
      o.kind = exporter::Kind::kKafka;
      keys.insert({"brokers", "topic", "properties"});
    } else if (type == "otlp") {
      o.kind = exporter::Kind::kOtlp;
      keys.insert({"url", "headers", "tls"});
    } else {
      Throw(e["type"], what + ".type must be syslog, kafka or otlp, got \"" + type + "\"");
    }
    CheckKeys(e, what.c_str(), keys);
    if (e["format"]) {
      auto f = audit::ParseEventFormat(Scalar(e["format"], what + ".format"));
      if (!f.ok()) Throw(e["format"], what + ".format: " + f.status().message());
      o.format = *f;
    }
    if (e["start"]) {
      std::string v = Scalar(e["start"], what + ".start");
      if (v != "beginning" && v != "end")
        Throw(e["start"], what + ".start must be beginning or end");
      o.start = v == "end" ? exporter::Start::kEnd : exporter::Start::kBeginning;
    }
    if (e["batch"]) {
      std::string v = Scalar(e["batch"], what + ".batch");
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), o.batch);
      if (ec != std::errc() || ptr != v.data() + v.size() || o.batch == 0 || o.batch > 10000)
        Throw(e["batch"], what + ".batch must be a number from 1 to 10000");
    }
    // Bounded, so a stopping agent never waits on an exporter for long.
    auto bounded = [&](const char* key, std::chrono::milliseconds max, const char* max_text,
                       std::chrono::milliseconds* out) {
      if (!e[key]) return;
      *out = Duration(e[key], what + "." + key);
      if (out->count() == 0 || *out > max)
        Throw(e[key], what + "." + key + " must be more than 0 and at most " + max_text);
    };
    bounded("timeout", std::chrono::minutes(5), "5m", &o.timeout);
    bounded("backoff", std::chrono::hours(1), "1h", &o.backoff);
    bounded("max_backoff", std::chrono::hours(1), "1h", &o.max_backoff);
    if (o.max_backoff < o.backoff) Throw(e, what + ": max_backoff must not be less than backoff");
    if (e["tls"]) o.tls = ExportTls(e["tls"], what + ".tls");
    switch (o.kind) {
      case exporter::Kind::kSyslog: {
        if (!e["address"]) Throw(e, what + ": missing required key \"address\" (host:port)");
        ReceiverAddress(e["address"], what + ".address", &o.host, &o.port);
        if (e["facility"]) {
          size_t f = Count(e["facility"], what + ".facility", 23, "kernel");
          o.syslog_facility = static_cast<int>(f);
        }
        if (e["app_name"]) {
          o.syslog_app_name = Scalar(e["app_name"], what + ".app_name");
          for (char ch : o.syslog_app_name)
            if (ch < 33 || ch > 126 || o.syslog_app_name.size() > 48)
              Throw(e["app_name"], what + ".app_name must be 1 to 48 printable ASCII characters");
        }
        // 0 is allowed: confirmed once the receiver's TCP acknowledged it.
        if (e["confirm_after"]) {
          o.syslog_confirm_after = Duration(e["confirm_after"], what + ".confirm_after");
          if (o.syslog_confirm_after > std::chrono::minutes(1))
            Throw(e["confirm_after"], what + ".confirm_after must be at most 1m");
        }
        break;
      }
      case exporter::Kind::kKafka: {
        o.brokers = RequiredScalar(e, "brokers", what);
        o.topic = RequiredScalar(e, "topic", what);
        if (YAML::Node props = e["properties"]) {
          if (!props.IsMap()) Throw(props, what + ".properties must be a mapping");
          // With their librdkafka aliases.
          static const std::set<std::string> kFixed = {
              "enable.idempotence",    "acks",
              "request.required.acks", "message.timeout.ms",
              "delivery.timeout.ms",   "bootstrap.servers",
              "metadata.broker.list"};
          for (const auto& kv : props) {
            std::string k = kv.first.as<std::string>();
            if (kFixed.count(k))
              Throw(kv.first, what + ".properties: " + k +
                                  " is set by dbwarden (idempotent, acks=all, no timeout; "
                                  "brokers: the brokers key)");
            std::string v = Scalar(kv.second, what + ".properties." + k);
            if (Status st = exporter::CheckKafkaProperty(k, v); !st.ok())
              Throw(kv.first, what + ".properties: " + st.message());
            o.kafka_properties.emplace_back(k, v);
          }
        }
        break;
      }
      case exporter::Kind::kOtlp: {
        std::string url = RequiredScalar(e, "url", what);
        HttpUrl parsed;
        std::string error;
        if (!ParseHttpUrl(url, &parsed, &error)) Throw(e["url"], what + ".url: " + error);
        // Into the request line and Host header as they are: no spaces or control bytes.
        auto clean = [](const std::string& v) {
          return std::all_of(v.begin(), v.end(), [](char ch) {
            return static_cast<unsigned char>(ch) > 0x20 && static_cast<unsigned char>(ch) < 0x7f;
          });
        };
        if (!clean(url) || parsed.host.empty())
          Throw(e["url"], what + ".url must be a URL without spaces or control characters");
        unsigned port = 0;
        auto [pend, pec] =
            std::from_chars(parsed.port.data(), parsed.port.data() + parsed.port.size(), port);
        if (pec != std::errc() || pend != parsed.port.data() + parsed.port.size() || port == 0 ||
            port > 65535)
          Throw(e["url"], what + ".url: invalid port \"" + parsed.port + "\"");
        o.host = parsed.host;
        o.port = parsed.port;
        o.otlp_path = parsed.path.empty() ? "/v1/logs" : parsed.path;
        if (parsed.tls) {
          o.tls.enabled = true;
        } else if (o.tls.enabled) {
          Throw(e["tls"], what + ".tls needs an https:// url");
        }
        if (YAML::Node headers = e["headers"]) {
          if (!headers.IsMap()) Throw(headers, what + ".headers must be a mapping");
          for (const auto& kv : headers) {
            std::string k = kv.first.as<std::string>();
            std::string v = Scalar(kv.second, what + ".headers." + k);
            // A token (RFC 9110 section 5.6.2) and a value without control bytes; the headers
            // that frame the request are dbwarden's.
            static const std::string kTokenChars = "!#$%&'*+-.^_`|~";
            bool token = !k.empty() && std::all_of(k.begin(), k.end(), [](char ch) {
              return std::isalnum(static_cast<unsigned char>(ch)) ||
                     kTokenChars.find(ch) != std::string::npos;
            });
            bool value = std::none_of(v.begin(), v.end(), [](char ch) {
              return (static_cast<unsigned char>(ch) < 0x20 && ch != '\t') || ch == 0x7f;
            });
            if (!token || !value)
              Throw(kv.first, what + ".headers: \"" + k +
                                  "\" is not a header name, or its value holds control bytes");
            std::string lower = k;
            for (char& ch : lower)
              ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (lower == "host" || lower == "content-length" || lower == "content-type" ||
                lower == "transfer-encoding" || lower == "connection")
              Throw(kv.first, what + ".headers: " + k + " is set by dbwarden");
            o.headers.emplace_back(k, v);
          }
        }
        break;
      }
    }
    c->exporters.push_back(std::move(o));
  }
}

AgentConfig Parse(const YAML::Node& root, const std::string& path) {
  AgentConfig c;
  c.path = path;
  if (!root.IsMap()) Throw(root, "the configuration must be a mapping");
  CheckKeys(root, "the configuration",
            {"state_dir", "log_level", "relay", "targets", "policy", "audit", "api", "masking",
             "approvals", "tap", "routing", "export"});
  if (YAML::Node m = root["masking"]) {
    CheckKeys(m, "masking", {"hash_key_file"});
    if (m["hash_key_file"])
      c.masking_hash_key = Scalar(m["hash_key_file"], "masking.hash_key_file");
  }
  if (YAML::Node a = root["audit"]) ParseAudit(a, &c);
  if (YAML::Node a = root["api"]) ParseApi(a, &c);
  if (YAML::Node a = root["approvals"]) ParseApprovals(a, &c);
  if (YAML::Node a = root["tap"]) ParseTap(a, &c);
  if (YAML::Node a = root["routing"]) ParseRouting(a, &c);
  if (YAML::Node a = root["export"]) ParseExport(a, &c);
  if (YAML::Node p = root["policy"]) {
    CheckKeys(p, "policy", {"files", "mode"});
    if (YAML::Node files = p["files"]) {
      if (!files.IsSequence()) Throw(files, "policy.files must be a list of paths or globs");
      for (const auto& f : files) c.policy_files.push_back(Scalar(f, "policy.files entry"));
    }
    if (YAML::Node mode = p["mode"]) {
      std::string m = Scalar(mode, "policy.mode");
      if (m == "enforce") {
        c.policy_mode = policy::Mode::kEnforce;
      } else if (m == "monitor") {
        c.policy_mode = policy::Mode::kMonitor;
      } else {
        Throw(mode, "policy.mode must be enforce or monitor");
      }
    }
  }
  if (root["state_dir"]) c.state_dir = Scalar(root["state_dir"], "state_dir");
  if (root["log_level"]) {
    c.log_level = Scalar(root["log_level"], "log_level");
    LogLevel ignored;
    if (!ParseLogLevel(c.log_level, &ignored))
      Throw(root["log_level"], "log_level must be debug, info, warning or error");
  }
  if (YAML::Node r = root["relay"]) {
    CheckKeys(r, "relay",
              {"workers", "shutdown_grace", "connect_timeout", "authentication_timeout",
               "max_connections", "max_connections_per_source"});
    if (r["max_connections"])
      c.relay.max_connections = Count(r["max_connections"], "relay.max_connections", 1000000);
    if (r["max_connections_per_source"])
      c.relay.max_connections_per_source =
          Count(r["max_connections_per_source"], "relay.max_connections_per_source", 1000000);
    if (r["workers"]) {
      std::string w = Scalar(r["workers"], "relay.workers");
      int n = 0;
      auto [ptr, ec] = std::from_chars(w.data(), w.data() + w.size(), n);
      if (ec != std::errc() || ptr != w.data() + w.size() || n < 0 || n > 256)
        Throw(r["workers"], "relay.workers must be a number from 0 to 256");
      c.relay.workers = n;
    }
    if (r["shutdown_grace"])
      c.relay.shutdown_grace = Duration(r["shutdown_grace"], "relay.shutdown_grace");
    if (r["connect_timeout"])
      c.relay.connect_timeout = Duration(r["connect_timeout"], "relay.connect_timeout");
    if (r["authentication_timeout"])
      c.relay.authentication_timeout =
          Duration(r["authentication_timeout"], "relay.authentication_timeout");
  }
  YAML::Node targets = root["targets"];
  if (!targets) Throw(root, "missing required key \"targets\"");
  if (!targets.IsSequence() || targets.size() == 0)
    Throw(targets, "targets must be a non-empty list");
  std::set<std::string> names;
  std::set<std::pair<std::string, uint16_t>> listens;
  for (size_t i = 0; i < targets.size(); ++i) {
    relay::TargetOptions t = ParseTarget(targets[i], i);
    if (!names.insert(t.name).second)
      Throw(targets[i]["name"], "duplicate target name \"" + t.name + "\"");
    if (!listens.insert({t.listen_host, t.listen_port}).second)
      Throw(targets[i]["listen"], "two targets listen on the same address");
    c.relay.targets.push_back(std::move(t));
  }
  return c;
}

}  // namespace

StatusOr<AgentConfig> LoadConfig(const std::string& path) {
  std::ifstream probe(path);
  if (!probe) return InvalidArgument(path + ":0: cannot open file");
  try {
    YAML::Node root = YAML::LoadFile(path);
    return Parse(root, path);
  } catch (const ConfigError& e) {
    return InvalidArgument(path + ":" + std::to_string(e.line) + ": " + e.reason);
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

}  // namespace dbw::agent
