// OpenSSL contexts for both legs of the relay, and certificate facts for identity.
#pragma once

#include <memory>
#include <string>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio/ssl.hpp>

#include "userspace/common/status.h"
#include "userspace/relay/options.h"

namespace dbw::relay {

StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeServerContext(const TlsServerOptions& o);
// `cert`: the client certificate to present upstream (null: none).
StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeClientContext(
    const TlsClientOptions& o, const UpstreamClientCert* cert);

// The verified peer certificate, as identity: empty strings when none was presented.
struct PeerCertificate {
  std::string subject;  // RFC 2253
  std::string uri_san;  // the first URI subjectAltName (a SPIFFE ID), if any
  std::string issuer;   // the issuer's subject, RFC 2253
};
PeerCertificate PeerCertificateIdentity(SSL* ssl);

}  // namespace dbw::relay
