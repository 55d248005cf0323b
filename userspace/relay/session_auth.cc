// Session: identity-aware access (targets[].auth). The relay verifies who the client is — a
// token (JWT) sent as its password, or its client certificate — binds a token to the workload
// it may be used from, picks the database role and the secret it logs in with, and answers the
// server's authentication itself. The client never holds the database password, and the token
// never reaches the server or the audit log.
#include <algorithm>
#include <cstring>
#include <ctime>

#include <openssl/crypto.h>

#include "userspace/common/logging.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/relay/session.h"
#include "userspace/relay/session_internal.h"

namespace dbw::relay {
namespace {

// A token is a few hundred bytes to a few KiB; larger is refused before it is parsed.
constexpr size_t kMaxTokenMessage = 16 * 1024 + 5;

bool AnyGlob(const std::vector<policy::Glob>& globs, std::string_view value) {
  return std::any_of(globs.begin(), globs.end(),
                     [value](const policy::Glob& g) { return g.Match(value); });
}
// An empty list does not constrain.
bool ListMatches(const std::vector<policy::Glob>& globs, std::string_view value) {
  return globs.empty() || AnyGlob(globs, value);
}

std::string Patterns(const std::vector<policy::Glob>& globs) {
  std::string out;
  for (const policy::Glob& g : globs) out += (out.empty() ? "" : ", ") + g.pattern();
  return out;
}

// A value a client chose, quoted in a message: bounded and printable.
std::string Quoted(std::string_view v) {
  std::string out = "\"";
  for (char c : v.substr(0, 128)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (v.size() > 128) out += "...";
  return out + "\"";
}

}  // namespace

void Session::StartLogin() {
  const AuthOptions& auth = *target_->options.auth;
  if (!auth.token) {
    if (principal_.cert_subject.empty()) {
      RefuseLogin("dbwarden: target \"" + target_->options.name +
                      "\" admits verified principals only: connect with a client certificate "
                      "issued by its CA",
                  "certificate");
      return;
    }
    principal_.auth = "certificate";
    principal_.subject = target_->options.identity_from_uri_san && !principal_.cert_san.empty()
                             ? principal_.cert_san
                             : principal_.cert_subject;
    ConnectUpstream();
    return;
  }
  if (!client_.transport.tls()) {  // tls.require is forced on with auth.token; kept for safety
    RefuseLogin("dbwarden: target \"" + target_->options.name +
                    "\" accepts tokens over TLS only; connect with sslmode=require",
                "token");
    return;
  }
  // The token comes as the password: ask for a cleartext one (over the client's TLS leg).
  auto self = shared_from_this();
  client_.out.clear();
  pg::AppendAuthenticationRequest(&client_.out, pg::AuthCode::kCleartextPassword);
  client_.transport.AsyncWrite(asio::buffer(client_.out),
                               [this, self](const boost::system::error_code& ec, size_t) {
                                 if (ec || closing_) {
                                   Close("client closed during authentication");
                                   return;
                                 }
                                 OnTokenData();
                               });
}

void Session::OnTokenData() {
  if (client_.in_len < 5) {
    ReadClientThen(&Session::OnTokenData, "client closed during authentication");
    return;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(client_.in.data());
  const uint32_t length =
      (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | p[4];
  const size_t size = size_t{length} + 1;  // the whole message, type byte included
  if (p[0] == pg::fe::kTerminate) {
    Close("client ended the connection during authentication");
    return;
  }
  if (p[0] != pg::fe::kPassword || length < 4) {
    Fail(audit::EventKind::kProtocolViolation, "08P01",
         "dbwarden: expected a password message (the token) during authentication");
    return;
  }
  if (size > kMaxTokenMessage) {
    RefuseLogin("dbwarden: token refused: longer than 16 KiB", "malformed");
    return;
  }
  if (client_.in_len < size) {
    ReadClientThen(&Session::OnTokenData, "client closed during authentication");
    return;
  }
  std::span<const std::byte> in(client_.in.data(), size);
  pg::Frame frame;
  std::string error;
  std::string_view password;
  if (pg::ParseFrame(pg::Direction::kFrontend, false, &in, &frame, &error) != pg::ParseState::kOk ||
      !pg::ParsePasswordMessage(frame.body, &password, &error)) {
    Fail(audit::EventKind::kProtocolViolation, "08P01",
         "dbwarden: invalid password message: " + error);
    return;
  }
  std::string token(password);
  // The bearer credential leaves the buffer now; only its verified claims are kept.
  OPENSSL_cleanse(client_.in.data(), size);
  std::memmove(client_.in.data(), client_.in.data() + size, client_.in_len - size);
  client_.in_len -= size;
  CheckToken(std::move(token), false);
}

void Session::CheckToken(std::string token, bool refetched) {
  if (closing_ || closed_) return;
  const TokenLoginOptions& login = *target_->options.auth->token;
  std::optional<std::string> claimed = token::UnverifiedIssuer(token);
  size_t index = login.issuers.size();
  for (size_t i = 0; claimed && i < login.issuers.size(); ++i)
    if (login.issuers[i].issuer == *claimed) index = i;
  if (index == login.issuers.size()) {
    OPENSSL_cleanse(token.data(), token.size());
    RefuseLogin(claimed ? "dbwarden: token refused: issuer " + Quoted(*claimed) +
                              " is not accepted by target \"" + target_->options.name + "\""
                        : std::string("dbwarden: token refused: not a JWT with an issuer (iss)"),
                claimed ? "issuer" : "malformed");
    return;
  }
  const TokenIssuerOptions& issuer = login.issuers[index];
  JwksSource& source = *target_->jwks[index];
  token::TokenRules rules;
  rules.issuer = issuer.issuer;
  rules.audiences = issuer.audiences;
  rules.clock_skew_seconds = login.clock_skew.count();
  std::shared_ptr<const token::KeySet> keys = source.Keys();
  std::variant<token::VerifiedToken, token::TokenFailure> result =
      keys ? token::VerifyToken(token, *keys, rules, std::time(nullptr))
           : token::TokenFailure{
                 token::TokenError::kUnknownKey,
                 "no signing keys of issuer " + Quoted(issuer.issuer) + " could be read yet"};
  if (const auto* failure = std::get_if<token::TokenFailure>(&result)) {
    if (failure->error == token::TokenError::kUnknownKey && !refetched) {
      // A key the issuer added since the last read (rotation): read the set again, then judge.
      // The startup timer keeps the session alive meanwhile; the source holds no reference.
      std::weak_ptr<Session> weak = weak_from_this();
      auto executor = worker_->context.get_executor();
      source.RefreshForUnknownKey([weak, executor, token = std::move(token)]() mutable {
        asio::post(executor, [weak, token = std::move(token)]() mutable {
          if (auto self = weak.lock()) self->CheckToken(std::move(token), true);
        });
      });
      return;
    }
    OPENSSL_cleanse(token.data(), token.size());
    RefuseLogin("dbwarden: token refused: " + failure->message,
                std::string(token::TokenErrorName(failure->error)));
    return;
  }
  OPENSSL_cleanse(token.data(), token.size());
  token::VerifiedToken& verified = std::get<token::VerifiedToken>(result);
  auto claim = [&](const std::string& name) -> const std::vector<std::string>* {
    auto it = verified.claims.find(name);
    return it == verified.claims.end() ? nullptr : &it->second;
  };
  const std::vector<std::string>* subject = claim(issuer.subject_claim);
  if (subject == nullptr || subject->size() != 1 || subject->front().empty()) {
    RefuseLogin("dbwarden: token refused: no subject claim \"" + issuer.subject_claim + "\"",
                "malformed");
    return;
  }
  principal_.auth = "token";
  principal_.subject = subject->front();
  principal_.issuer = verified.issuer;
  principal_.jti = verified.jti;
  if (const auto* groups = claim(issuer.groups_claim)) principal_.groups = *groups;
  std::string kind = issuer.kind;
  if (!issuer.kind_claim.empty())
    if (const auto* k = claim(issuer.kind_claim); k != nullptr && k->size() == 1)
      if (k->front() == "agent" || k->front() == "human") kind = k->front();
  if (!kind.empty())
    token_kind_ = kind == "agent" ? policy::PrincipalKind::kAgent : policy::PrincipalKind::kHuman;
  token_claims_.assign(verified.claims.begin(), verified.claims.end());
  if (login.end_at_expiry && verified.expires_at != 0)
    token_deadline_ = verified.expires_at + login.clock_skew.count();
  info_.reset();
  deps_.metrics->token_logins->Add();
  DBW_LOG(kInfo) << "session " << id_ << " (" << principal_.client_addr << "): token of "
                 << principal_.subject << " from " << principal_.issuer << " accepted";
  ConnectUpstream();
}

void Session::RefuseLogin(std::string message, std::string reason) {
  deps_.metrics->login_failures->Add();
  if (target_->options.auth->token) deps_.metrics->token_refusals->Add();
  audit::Event e = NewEvent(audit::EventKind::kLoginFailed);
  e.error_sqlstate = "28000";
  e.error_message = message;
  e.detail = "auth: " + reason;
  deps_.sink->Submit(std::move(e));
  EndWithFatal("28000", std::move(message));
}

bool Session::CheckWorkloadBinding() {
  if (principal_.auth != "token") return true;
  const std::vector<WorkloadBinding>& bindings = target_->options.auth->bind;
  bool bound = false;
  for (const WorkloadBinding& b : bindings) {
    if (!AnyGlob(b.subject, principal_.subject)) continue;
    bound = true;
    if (!process_) continue;
    std::string unit = identity::UnitFromCgroup(process_->cgroup);
    if (AnyGlob(b.unit, unit) || AnyGlob(b.exe, process_->exe) ||
        AnyGlob(b.cgroup, process_->cgroup))
      return true;
  }
  if (!bound) return true;
  std::string from =
      process_ ? "exe " + process_->exe + " (pid " + std::to_string(process_->pid) +
                     (process_->cgroup.empty() ? "" : ", cgroup " + process_->cgroup) + ")"
               : std::string("a process the relay cannot see (not a local connection)");
  RefuseLogin("dbwarden: token subject " + Quoted(principal_.subject) +
                  " is bound to its workload (auth.bind) and this connection comes from " + from,
              "binding");
  return false;
}

bool Session::InjectCredential() {
  const AuthOptions& auth = *target_->options.auth;
  const std::string requested = state_.user();
  const char* kind = policy::KindName(PolicyPrincipal(deps_.policy->Get()).kind);
  const CredentialMapping* chosen = nullptr;
  std::vector<const CredentialMapping*> matched;
  for (const CredentialMapping& c : auth.credentials) {
    if (!ListMatches(c.subject, principal_.subject) || !ListMatches(c.issuer, principal_.issuer) ||
        !ListMatches(c.cert_san, principal_.cert_san) || (!c.kind.empty() && c.kind != kind))
      continue;
    if (!c.groups.empty() &&
        std::none_of(principal_.groups.begin(), principal_.groups.end(),
                     [&c](const std::string& g) { return AnyGlob(c.groups, g); }))
      continue;
    matched.push_back(&c);
    if (AnyGlob(c.users, requested)) {
      chosen = &c;
      break;
    }
  }
  const std::string who =
      (principal_.auth == "token" ? "token subject " : "certificate ") + Quoted(principal_.subject);
  if (chosen == nullptr) {
    std::string message;
    if (matched.empty()) {
      message = "dbwarden: no database role is mapped for " + who + " on target \"" +
                target_->options.name + "\" (auth.credentials)";
    } else {
      std::string allowed;
      for (const CredentialMapping* c : matched)
        allowed += (allowed.empty() ? "" : ", ") + Patterns(c->users);
      message = "dbwarden: " + who + " may not log in as database user " + Quoted(requested) +
                "; it may ask for: " + allowed;
    }
    RefuseLogin(std::move(message), "unmapped");
    return false;
  }
  credential_ = chosen;
  injected_login_ = std::make_unique<PasswordLogin>(chosen->role, chosen->password);
  // The startup packet the server gets names the role; the client's choice is recorded.
  pg::StartupPacket packet;
  if (!ParseHeldStartup(&packet)) return false;
  pg::StartupMessage rewritten;
  rewritten.protocol = packet.startup.protocol;
  bool has_database = false;
  for (const auto& [name, value] : packet.startup.params) {
    if (name == "user") continue;
    has_database = has_database || name == "database";
    rewritten.params.emplace_back(name, value);
  }
  rewritten.params.emplace_back("user", chosen->role);
  // The server's default database is the user's name: the one the client asked for.
  if (!has_database) rewritten.params.emplace_back("database", requested);
  pg::Bytes bytes;
  pg::AppendStartupMessage(&bytes, rewritten);
  startup_bytes_ = std::move(bytes);
  if (!ParseHeldStartup(&packet)) return false;  // its views point into the new bytes
  state_.OnStartup(packet.startup);
  principal_.requested_user = requested;
  principal_.db_user = state_.user();
  principal_.database = state_.database();
  principal_classifier_.Reset();
  info_.reset();
  return true;
}

pg::MessageAction Session::OnInjectedAuthentication(const pg::Frame& frame, std::string* reason) {
  pg::AuthenticationMessage auth;
  if (!pg::ParseAuthentication(frame.body, &auth, reason)) return pg::MessageAction::kReject;
  pg::Bytes answer;
  if (Status st = injected_login_->Answer(auth, &answer); !st.ok()) {
    RefuseLogin("dbwarden: logging in to the server of target \"" + target_->options.name +
                    "\" as role " + Quoted(credential_->role) + " failed: " + st.message(),
                "upstream");
    return pg::MessageAction::kHandled;
  }
  // AuthenticationOk goes on to the client, which sent its token and waits for it.
  if (auth.code == pg::AuthCode::kOk) return pg::MessageAction::kForward;
  if (!answer.empty()) WriteUpstreamOutOfBand(std::move(answer));
  return pg::MessageAction::kHandled;
}

bool Session::EndIfTokenExpired() {
  if (token_deadline_ == 0 || std::time(nullptr) < token_deadline_) return false;
  token_deadline_ = 0;
  Fail(audit::EventKind::kTokenExpired, "28000",
       "dbwarden: the token this session logged in with has expired; connect again with a "
       "fresh token");
  return true;
}

}  // namespace dbw::relay
