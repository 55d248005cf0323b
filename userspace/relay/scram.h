// SCRAM-SHA-256 client (RFC 5802/7677), used when the relay must authenticate to the upstream
// on the client's behalf: with TLS terminated on both legs, a client's channel-binding flag
// would be refused by the server, so the relay takes the password over the client's TLS leg.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "userspace/common/status.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/types.h"

namespace dbw::relay {

class ScramClient {
 public:
  // `password` as the client sent it. ASCII passwords are used as-is (SASLprep leaves them
  // unchanged); others are used byte for byte, as libpq does when SASLprep rejects them.
  explicit ScramClient(std::string password);

  // The SASLInitialResponse data: "n,,n=,r=<nonce>" (no channel binding: the relay verifies
  // the server's certificate against the configured CA instead).
  std::string ClientFirst();
  // Consumes server-first ("r=...,s=...,i=..."), returns client-final with the proof.
  StatusOr<std::string> ClientFinal(std::string_view server_first);
  // Checks server-final ("v=..."): the server proved it knows the verifier too.
  Status VerifyServerFinal(std::string_view server_final) const;

  static constexpr std::string_view kMechanism = "SCRAM-SHA-256";

 private:
  std::string password_;
  std::string client_nonce_;
  std::string client_first_bare_;
  std::string auth_message_;
  std::string salted_password_;
};

// Answers a server's authentication requests with a password the relay holds (the catalog
// login, injected credentials): cleartext, md5 or SCRAM-SHA-256, whichever the server asks.
class PasswordLogin {
 public:
  PasswordLogin(std::string user, std::string password)
      : user_(std::move(user)), password_(std::move(password)) {}
  // Appends the answer to `request` to *out (nothing for AuthenticationOk or a verified SASL
  // final); an error for a method it cannot answer or a server that fails SCRAM's proof.
  Status Answer(const pg::AuthenticationMessage& request, pg::Bytes* out);
  bool done() const { return done_; }  // AuthenticationOk seen

 private:
  std::string user_;
  std::string password_;
  std::unique_ptr<ScramClient> scram_;
  bool done_ = false;
};

}  // namespace dbw::relay
