// SHA-256 and Ed25519 over OpenSSL 3 EVP, every handle owned by a unique_ptr.
#include "userspace/audit/store_signing.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <openssl/evp.h>
#include <openssl/pem.h>

namespace dbw::audit::store {
namespace {

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct MdFree {
  void operator()(EVP_MD* m) const { EVP_MD_free(m); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct FileClose {
  void operator()(FILE* f) const { std::fclose(f); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string PemOfPublic(EVP_PKEY* key) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return {};
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

}  // namespace

struct Sha256::State {
  std::unique_ptr<EVP_MD, MdFree> md{EVP_MD_fetch(nullptr, "SHA256", nullptr)};
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx{EVP_MD_CTX_new()};
};

Sha256::Sha256() : state_(std::make_unique<State>()) {}
Sha256::~Sha256() = default;

Status Sha256::Chain(const Hash& prev, std::string_view canonical, Hash* out) {
  unsigned int n = 0;
  if (!state_->md || !state_->ctx ||
      EVP_DigestInit_ex(state_->ctx.get(), state_->md.get(), nullptr) != 1 ||
      EVP_DigestUpdate(state_->ctx.get(), prev.data(), prev.size()) != 1 ||
      EVP_DigestUpdate(state_->ctx.get(), canonical.data(), canonical.size()) != 1 ||
      EVP_DigestFinal_ex(state_->ctx.get(), out->data(), &n) != 1 || n != out->size())
    return Internal("SHA-256 failed");
  return Status::Ok();
}

struct SigningKey::Pkey {
  PkeyPtr key;
};

SigningKey::SigningKey(std::unique_ptr<Pkey> key) : key_(std::move(key)) {
  size_t len = 32;
  public_raw_.assign(32, '\0');
  if (EVP_PKEY_get_raw_public_key(
          key_->key.get(), reinterpret_cast<unsigned char*>(public_raw_.data()), &len) != 1 ||
      len != 32)
    public_raw_.clear();
  public_pem_ = PemOfPublic(key_->key.get());
}
SigningKey::~SigningKey() = default;

StatusOr<std::unique_ptr<SigningKey>> SigningKey::LoadOrCreate(const std::string& path) {
  auto pkey = std::make_unique<Pkey>();
  std::unique_ptr<FILE, FileClose> in(std::fopen(path.c_str(), "re"));
  if (in) {
    pkey->key.reset(PEM_read_PrivateKey(in.get(), nullptr, nullptr, nullptr));
    if (!pkey->key || EVP_PKEY_get_id(pkey->key.get()) != EVP_PKEY_ED25519)
      return InvalidArgument("signing key " + path + " is not an Ed25519 PEM private key");
  } else if (errno != ENOENT) {
    return Unavailable("cannot read signing key " + path + ": " + std::strerror(errno));
  } else {
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1)
      return Internal("Ed25519 key generation failed");
    pkey->key.reset(raw);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
      return Unavailable("cannot create signing key " + path + ": " + std::strerror(errno));
    std::unique_ptr<FILE, FileClose> out(::fdopen(fd, "w"));
    if (!out) {
      ::close(fd);
      return Unavailable("cannot open signing key " + path);
    }
    if (PEM_write_PrivateKey(out.get(), pkey->key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
            1 ||
        std::fflush(out.get()) != 0 || ::fsync(::fileno(out.get())) != 0)
      return Unavailable("cannot write signing key " + path);
  }
  std::unique_ptr<SigningKey> key(new SigningKey(std::move(pkey)));
  if (key->public_raw_.size() != 32 || key->public_pem_.empty())
    return Internal("cannot read the public half of " + path);
  return key;
}

Status SigningKey::Sign(std::string_view message, std::string* signature) const {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t len = 64;
  signature->assign(64, '\0');
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature->data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      len != 64)
    return Internal("Ed25519 signing failed");
  return Status::Ok();
}

bool VerifySignature(std::string_view public_raw, std::string_view message,
                     std::string_view signature) {
  if (public_raw.size() != 32 || signature.size() != 64) return false;
  PkeyPtr key(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_raw.data()), 32));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  return key && ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

std::string PublicPemFromRaw(std::string_view public_raw) {
  if (public_raw.size() != 32) return {};
  PkeyPtr key(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_raw.data()), 32));
  return key ? PemOfPublic(key.get()) : std::string();
}

std::string CheckpointMessage(uint64_t seq, const Hash& hash) {
  std::string m = "dbwarden-audit-checkpoint-v1";
  PutBigEndian64(seq, &m);
  m.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  return m;
}

constexpr uint8_t kCheckpointVersion = 1;
constexpr size_t kCheckpointSize = 1 + 8 + 32 + 8 + 32 + 64;

std::string EncodeCheckpoint(const Checkpoint& cp) {
  std::string out(1, static_cast<char>(kCheckpointVersion));
  PutBigEndian64(cp.seq, &out);
  out.append(reinterpret_cast<const char*>(cp.hash.data()), cp.hash.size());
  PutTimestamp(cp.ts_us, &out);
  out.append(cp.public_raw);
  out.append(cp.signature);
  return out;
}

Status DecodeCheckpoint(std::string_view b, Checkpoint* out) {
  if (b.size() != kCheckpointSize || static_cast<uint8_t>(b[0]) != kCheckpointVersion)
    return DataLoss("malformed checkpoint record");
  out->seq = GetBigEndian64(b.data() + 1);
  std::memcpy(out->hash.data(), b.data() + 9, 32);
  out->ts_us = GetTimestamp(b.data() + 41);
  out->public_raw.assign(b.substr(49, 32));
  out->signature.assign(b.substr(81, 64));
  return Status::Ok();
}

}  // namespace dbw::audit::store
