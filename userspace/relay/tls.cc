// OpenSSL contexts for both legs of the relay.
#include "userspace/relay/tls.h"

#include <openssl/bio.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace dbw::relay {

namespace ssl = boost::asio::ssl;

StatusOr<std::unique_ptr<ssl::context>> MakeServerContext(const TlsServerOptions& o) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  ctx->use_certificate_chain_file(o.cert, ec);
  if (ec) return InvalidArgument("tls.cert " + o.cert + ": " + ec.message());
  ctx->use_private_key_file(o.key, ssl::context::pem, ec);
  if (ec) return InvalidArgument("tls.key " + o.key + ": " + ec.message());
  if (!o.client_ca.empty()) {
    ctx->load_verify_file(o.client_ca, ec);
    if (ec) return InvalidArgument("tls.client_ca " + o.client_ca + ": " + ec.message());
    // Client certificates are optional; when one is presented it must verify.
    ctx->set_verify_mode(ssl::verify_peer, ec);
  }
  return ctx;
}

StatusOr<std::unique_ptr<ssl::context>> MakeClientContext(const TlsClientOptions& o,
                                                          const UpstreamClientCert* cert) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (o.ca.empty()) return InvalidArgument("upstream_tls.ca is required");
  ctx->load_verify_file(o.ca, ec);
  if (ec) return InvalidArgument("upstream_tls.ca " + o.ca + ": " + ec.message());
  ctx->set_verify_mode(ssl::verify_peer, ec);
  if (cert != nullptr) {
    ctx->use_certificate_chain_file(cert->cert, ec);
    if (ec)
      return InvalidArgument("upstream_tls.client_certs cert " + cert->cert + ": " + ec.message());
    ctx->use_private_key_file(cert->key, ssl::context::pem, ec);
    if (ec)
      return InvalidArgument("upstream_tls.client_certs key " + cert->key + ": " + ec.message());
  }
  return ctx;
}

namespace {

std::string NameText(const X509_NAME* name) {
  std::string out;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio != nullptr) {
    X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    if (len > 0) out.assign(data, static_cast<size_t>(len));
    BIO_free(bio);
  }
  return out;
}

}  // namespace

PeerCertificate PeerCertificateIdentity(SSL* ssl) {
  PeerCertificate out;
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return out;
  out.subject = NameText(X509_get_subject_name(cert));
  out.issuer = NameText(X509_get_issuer_name(cert));
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && out.uri_san.empty(); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      if (n->type != GEN_URI) continue;
      const ASN1_IA5STRING* uri = n->d.uniformResourceIdentifier;
      out.uri_san.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                         static_cast<size_t>(ASN1_STRING_length(uri)));
    }
    GENERAL_NAMES_free(names);
  }
  X509_free(cert);
  return out;
}

}  // namespace dbw::relay
