// Masking function tests: every function, the email and UTF-8 cases of partial, the hash's
// fixed format and its fail-closed fallback, and output lengths that ignore the input's length.
#include "userspace/masking/mask.h"

#include <optional>
#include <set>

#include <gtest/gtest.h>

namespace dbw::masking {
namespace {

// A stand-in for HMAC-SHA256: deterministic, depends on every byte.
std::array<uint8_t, 32> FakeHmac(std::string_view v) {
  std::array<uint8_t, 32> out{};
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < out.size(); ++i) {
    for (char c : v) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    h = (h ^ static_cast<uint32_t>(i)) * 16777619u;
    out[i] = static_cast<uint8_t>(h >> 13);
  }
  return out;
}

std::optional<std::string> Mask(Function f, std::string_view value, bool email = false,
                                int keep_last = 4, KeyedHash hmac = FakeHmac) {
  MaskSpec spec;
  spec.function = f;
  spec.keep_last = keep_last;
  std::string out;
  if (!MaskValue(spec, value, email, hmac, &out)) {
    EXPECT_TRUE(out.empty());
    return std::nullopt;
  }
  return out;
}

TEST(MaskTest, FunctionNames) {
  EXPECT_EQ(FunctionName(Function::kRedact), "redact");
  EXPECT_EQ(FunctionName(Function::kPartial), "partial");
  EXPECT_EQ(FunctionName(Function::kHash), "hash");
  EXPECT_EQ(FunctionName(Function::kNull), "null");
}

TEST(MaskTest, Redact) {
  EXPECT_EQ(Mask(Function::kRedact, "4111111111111111"), std::string(kRedactMarker));
  EXPECT_EQ(Mask(Function::kRedact, ""), std::string(kRedactMarker));
}

TEST(MaskTest, Null) {
  EXPECT_EQ(Mask(Function::kNull, "secret"), std::nullopt);
}

TEST(MaskTest, PartialKeepsTheTail) {
  EXPECT_EQ(Mask(Function::kPartial, "4111111111111111"), "****1111");
  EXPECT_EQ(Mask(Function::kPartial, "4111 1111 1111 1234"), "****1234");
  EXPECT_EQ(Mask(Function::kPartial, "123-45-6789", false, 2), "****89");
  EXPECT_EQ(Mask(Function::kPartial, "abcdef", false, 0), "****");
  // Too short to keep a tail without showing most of the value.
  EXPECT_EQ(Mask(Function::kPartial, "1234567"), "****");
  EXPECT_EQ(Mask(Function::kPartial, ""), "****");
  EXPECT_EQ(Mask(Function::kPartial, "abcdefgh", false, -3), "****");
}

TEST(MaskTest, PartialEmailKeepsTheDomain) {
  EXPECT_EQ(Mask(Function::kPartial, "alice@example.com", true), "****@example.com");
  EXPECT_EQ(Mask(Function::kPartial, "a.very.long.name@example.com", true), "****@example.com");
  // Not an address after all: the tail rule.
  EXPECT_EQ(Mask(Function::kPartial, "no-at-sign-here", true), "****here");
}

TEST(MaskTest, PartialNeverSplitsUtf8) {
  // "Zoë Åström" has multi-byte characters; the last four characters are "tröm".
  EXPECT_EQ(Mask(Function::kPartial, "Zo\xc3\xab \xc3\x85str\xc3\xb6m"), "****tr\xc3\xb6m");
  EXPECT_EQ(Mask(Function::kPartial,
                 "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae"
                 "\xe6\x96\x87\xe5\xad\x97\xe5\x88\x97\xe3\x81\xa7",
                 false, 2),
            "****\xe5\x88\x97\xe3\x81\xa7");
}

TEST(MaskTest, HashIsStableKeyedAndFixedLength) {
  auto a = Mask(Function::kHash, "alice@example.com");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->size(), 2u + 24u);
  EXPECT_EQ(a->substr(0, 2), "h:");
  EXPECT_EQ(a->find_first_not_of("0123456789abcdef", 2), std::string::npos);
  EXPECT_EQ(Mask(Function::kHash, "alice@example.com"), a);
  EXPECT_NE(Mask(Function::kHash, "bob@example.com"), a);
  // Another key, another hash.
  KeyedHash other = [](std::string_view v) {
    auto h = FakeHmac(v);
    h[0] ^= 0xff;
    return h;
  };
  EXPECT_NE(Mask(Function::kHash, "alice@example.com", false, 4, other), a);
}

TEST(MaskTest, HashWithoutKeyFailsClosed) {
  EXPECT_EQ(Mask(Function::kHash, "alice@example.com", false, 4, KeyedHash()),
            std::string(kRedactMarker));
}

TEST(MaskTest, OutputLengthIgnoresTheMaskedLength) {
  for (Function f : {Function::kRedact, Function::kHash, Function::kPartial}) {
    std::set<size_t> lengths;
    for (size_t n : {8, 9, 16, 100, 5000}) lengths.insert(Mask(f, std::string(n, 'x'))->size());
    EXPECT_EQ(lengths.size(), 1u) << FunctionName(f);
  }
  std::set<size_t> emails;
  for (size_t n : {1, 5, 60})
    emails.insert(Mask(Function::kPartial, std::string(n, 'a') + "@example.com", true)->size());
  EXPECT_EQ(emails.size(), 1u);
}

TEST(MaskTest, MaskValueAppends) {
  MaskSpec spec;
  std::string out = "x=";
  EXPECT_TRUE(MaskValue(spec, "v", false, nullptr, &out));
  EXPECT_EQ(out, "x=[redacted]");
}

}  // namespace
}  // namespace dbw::masking
