// Content detectors: one Hyperscan database for every enabled pattern (built-in and custom),
// scanned once per row over all of its text values, matches validated where a checksum exists.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/masking/mask.h"

namespace dbw::masking {

enum class Detector : uint8_t {
  kEmail,
  kPaymentCard,     // 13-19 digits (spaces/dashes allowed), Luhn-valid, known IIN prefix
  kUsSsn,           // AAA-GG-SSSS with valid ranges (no 000/666/9xx area, no 00 group, no 0000)
  kIban,            // country code, check digits, BBAN; ISO 7064 mod 97 == 1
  kPhone,           // E.164: + and 8-15 digits (separators allowed)
  kAwsAccessKeyId,  // AKIA/ASIA... 20 chars
  kAwsSecretKey,    // 40 chars base64-ish, only next to an aws/secret hint
  kGithubToken,     // ghp_/gho_/ghu_/ghs_/ghr_ + 36, github_pat_...
  kGitlabToken,     // glpat-...
  kSlackToken,      // xox[abposr]-...
  kJwt,             // three base64url parts, header decodes to JSON with "alg"
  kPemPrivateKey,   // -----BEGIN ... PRIVATE KEY----- ... -----END ... PRIVATE KEY-----
  kCustom,          // a pattern from policy
};
inline constexpr size_t kBuiltinDetectorCount = 12;  // every value before kCustom

// "email", "payment_card", "us_ssn", "iban", "phone", "aws_access_key_id", "aws_secret_key",
// "github_token", "gitlab_token", "slack_token", "jwt", "pem_private_key"; kCustom: "custom".
std::string_view DetectorName(Detector detector);
std::optional<Detector> DetectorFromName(std::string_view name);
// Personal data (email, card, SSN, IBAN, phone) or a secret (keys, tokens).
bool IsSecret(Detector detector);

// One enabled detector and what to do with its matches.
struct DetectorRule {
  Detector detector = Detector::kEmail;
  std::string name;   // built-ins: DetectorName; custom: the policy's name (audit, stats)
  std::string regex;  // kCustom only: a Hyperscan-compatible regular expression
  MaskSpec mask;
};

// A validated match inside values[value]: bytes [begin, end).
struct Match {
  uint32_t rule = 0;  // index into the DetectorSet's rules
  uint32_t value = 0;
  uint32_t begin = 0;
  uint32_t end = 0;
};

class DetectorSet {
 public:
  // Compiles every rule's pattern into one database. A custom regex Hyperscan rejects is
  // kInvalidArgument naming the rule and Hyperscan's message.
  static StatusOr<std::shared_ptr<const DetectorSet>> Compile(std::vector<DetectorRule> rules);
  ~DetectorSet();

  // Scans `values` (one row's text values) in one pass and appends the validated matches,
  // sorted by value then begin, without overlaps (the leftmost, then longest, wins).
  // Thread-safe: scratch space is per thread. A Hyperscan failure is kInternal (callers fail
  // closed: they withhold the values).
  Status Scan(std::span<const std::string_view> values, std::vector<Match>* out) const;

  const std::vector<DetectorRule>& rules() const { return rules_; }

  struct Impl;

 private:
  DetectorSet() = default;
  std::vector<DetectorRule> rules_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dbw::masking
