// Crypto of the audit store: SHA-256 chain hashing and Ed25519 checkpoint keys (OpenSSL).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "userspace/audit/store_codec.h"
#include "userspace/common/status.h"

namespace dbw::audit::store {

// Reuses one fetched digest and context; one per thread.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  // SHA-256(prev ‖ canonical): the chain link.
  Status Chain(const Hash& prev, std::string_view canonical, Hash* out);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class SigningKey {
 public:
  ~SigningKey();
  // Loads the PEM private key at `path`, or generates one there (mode 0600) when absent.
  static StatusOr<std::unique_ptr<SigningKey>> LoadOrCreate(const std::string& path);
  Status Sign(std::string_view message, std::string* signature) const;
  const std::string& public_raw() const { return public_raw_; }  // 32 bytes
  const std::string& public_pem() const { return public_pem_; }

 private:
  struct Pkey;
  explicit SigningKey(std::unique_ptr<Pkey> key);
  std::unique_ptr<Pkey> key_;
  std::string public_raw_;
  std::string public_pem_;
};

bool VerifySignature(std::string_view public_raw, std::string_view message,
                     std::string_view signature);
// PEM (SubjectPublicKeyInfo) of a raw Ed25519 public key; "" when invalid.
std::string PublicPemFromRaw(std::string_view public_raw);

// What a checkpoint or anchor signs: a domain tag, seq (BE) and the chain hash at seq.
std::string CheckpointMessage(uint64_t seq, const Hash& hash);

// Stored checkpoint/anchor: version(1) | seq(8) | hash(32) | ts_us(8) | public key(32) | sig(64)
struct Checkpoint {
  uint64_t seq = 0;
  Hash hash{};
  int64_t ts_us = 0;
  std::string public_raw;
  std::string signature;
};
std::string EncodeCheckpoint(const Checkpoint& cp);
Status DecodeCheckpoint(std::string_view bytes, Checkpoint* out);

}  // namespace dbw::audit::store
