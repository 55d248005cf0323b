// SCRAM-SHA-256 client with OpenSSL's PBKDF2, HMAC and SHA-256.
#include "userspace/relay/scram.h"

#include <charconv>
#include <cstring>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "userspace/protocol/postgres/encoder.h"

namespace dbw::relay {
namespace {

std::string Base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool Unbase64(std::string_view in, std::string* out) {
  if (in.size() % 4 != 0) return false;
  out->assign(3 * in.size() / 4 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out->data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return false;
  size_t pad = 0;
  if (!in.empty() && in.back() == '=') ++pad;
  if (in.size() > 1 && in[in.size() - 2] == '=') ++pad;
  out->resize(static_cast<size_t>(n) - pad);
  return true;
}

std::string Hmac(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string Sha256(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return std::string(reinterpret_cast<char*>(md), sizeof(md));
}

// "k=value" attribute from a comma-separated SCRAM message.
bool Attribute(std::string_view msg, char key, std::string_view* out) {
  size_t pos = 0;
  while (pos <= msg.size()) {
    size_t end = msg.find(',', pos);
    if (end == std::string_view::npos) end = msg.size();
    std::string_view part = msg.substr(pos, end - pos);
    if (part.size() >= 2 && part[0] == key && part[1] == '=') {
      *out = part.substr(2);
      return true;
    }
    pos = end + 1;
  }
  return false;
}

}  // namespace

ScramClient::ScramClient(std::string password) : password_(std::move(password)) {}

std::string ScramClient::ClientFirst() {
  unsigned char raw[18];
  if (RAND_bytes(raw, sizeof(raw)) != 1) std::memset(raw, 0x5a, sizeof(raw));
  client_nonce_ = Base64(std::string_view(reinterpret_cast<char*>(raw), sizeof(raw)));
  // PostgreSQL takes the user from the startup packet and ignores n=.
  client_first_bare_ = "n=,r=" + client_nonce_;
  return "n,," + client_first_bare_;
}

StatusOr<std::string> ScramClient::ClientFinal(std::string_view server_first) {
  std::string_view nonce, salt_b64, iter_text;
  if (!Attribute(server_first, 'r', &nonce) || !Attribute(server_first, 's', &salt_b64) ||
      !Attribute(server_first, 'i', &iter_text))
    return InvalidArgument("malformed SCRAM server-first-message");
  if (!nonce.starts_with(client_nonce_) || nonce.size() == client_nonce_.size())
    return InvalidArgument("SCRAM server nonce does not extend the client nonce");
  std::string salt;
  if (!Unbase64(salt_b64, &salt) || salt.empty()) return InvalidArgument("malformed SCRAM salt");
  int iterations = 0;
  auto [ptr, ec] =
      std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), iterations);
  if (ec != std::errc() || ptr != iter_text.data() + iter_text.size() || iterations < 1 ||
      iterations > 10'000'000)
    return InvalidArgument("malformed SCRAM iteration count");

  salted_password_.resize(SHA256_DIGEST_LENGTH);
  if (PKCS5_PBKDF2_HMAC(password_.data(), static_cast<int>(password_.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(),
                        SHA256_DIGEST_LENGTH,
                        reinterpret_cast<unsigned char*>(salted_password_.data())) != 1)
    return Internal("PBKDF2 failed");
  std::string client_key = Hmac(salted_password_, "Client Key");
  std::string stored_key = Sha256(client_key);
  std::string without_proof = "c=biws,r=" + std::string(nonce);  // biws = base64("n,,")
  auth_message_ = client_first_bare_ + "," + std::string(server_first) + "," + without_proof;
  std::string signature = Hmac(stored_key, auth_message_);
  std::string proof(client_key.size(), '\0');
  for (size_t i = 0; i < proof.size(); ++i)
    proof[i] = static_cast<char>(client_key[i] ^ signature[i]);
  return without_proof + ",p=" + Base64(proof);
}

Status ScramClient::VerifyServerFinal(std::string_view server_final) const {
  std::string_view v;
  if (!Attribute(server_final, 'v', &v))
    return InvalidArgument("malformed SCRAM server-final-message");
  std::string got;
  if (!Unbase64(v, &got)) return InvalidArgument("malformed SCRAM server signature");
  std::string server_key = Hmac(salted_password_, "Server Key");
  std::string expected = Hmac(server_key, auth_message_);
  if (got.size() != expected.size() || CRYPTO_memcmp(got.data(), expected.data(), got.size()) != 0)
    return InvalidArgument("the upstream server's SCRAM signature is wrong");
  return Status::Ok();
}

namespace {

std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

}  // namespace

Status PasswordLogin::Answer(const pg::AuthenticationMessage& a, pg::Bytes* out) {
  std::string_view data(reinterpret_cast<const char*>(a.data.data()), a.data.size());
  switch (a.code) {
    case pg::AuthCode::kOk:
      done_ = true;
      password_.clear();
      scram_.reset();
      return Status::Ok();
    case pg::AuthCode::kCleartextPassword:
      pg::AppendPasswordMessage(out, password_);
      return Status::Ok();
    case pg::AuthCode::kMd5Password: {
      if (data.size() != 4) return DataLoss("bad md5 salt");
      std::string inner = Md5Hex(password_ + user_);
      pg::AppendPasswordMessage(out, "md5" + Md5Hex(inner + std::string(data)));
      return Status::Ok();
    }
    case pg::AuthCode::kSasl:
      // SCRAM-SHA-256 without channel binding ("n,,"): offered by every server that offers
      // the -PLUS variant, and not a downgrade since the relay says it does not support it.
      scram_ = std::make_unique<ScramClient>(password_);
      pg::AppendSaslInitialResponse(out, ScramClient::kMechanism, scram_->ClientFirst());
      return Status::Ok();
    case pg::AuthCode::kSaslContinue: {
      if (!scram_) return DataLoss("SASL continue without SASL");
      auto final_msg = scram_->ClientFinal(data);
      if (!final_msg.ok()) return final_msg.status();
      pg::AppendSaslResponse(out, *final_msg);
      return Status::Ok();
    }
    case pg::AuthCode::kSaslFinal:
      return scram_ ? scram_->VerifyServerFinal(data) : DataLoss("unexpected SASL final");
    default:
      return Unavailable(
          "the server asks for an authentication method dbwarden cannot answer "
          "with a password (code " +
          std::to_string(static_cast<uint32_t>(a.code)) + ")");
  }
}

}  // namespace dbw::relay
