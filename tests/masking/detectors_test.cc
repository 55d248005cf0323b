// Detector tests: each built-in finds its values (alone and inside text) and leaves look-alikes
// (Luhn-invalid numbers, UUIDs, dates, digests, ...) alone; custom patterns; one scan per row.
#include "userspace/masking/detectors.h"

#include <thread>

#include <gtest/gtest.h>

#include "userspace/masking/validators.h"

namespace dbw::masking {
namespace {

std::shared_ptr<const DetectorSet> AllBuiltins() {
  std::vector<DetectorRule> rules;
  for (size_t i = 0; i < kBuiltinDetectorCount; ++i) {
    DetectorRule r;
    r.detector = static_cast<Detector>(i);
    rules.push_back(r);
  }
  auto set = DetectorSet::Compile(std::move(rules));
  EXPECT_TRUE(set.ok()) << set.status().ToString();
  return set.ok() ? *set : nullptr;
}

const DetectorSet& All() {
  static std::shared_ptr<const DetectorSet> set = AllBuiltins();
  return *set;
}

// "detector@value:begin-end=text" for every match in a row.
std::vector<std::string> Find(const DetectorSet& set, const std::vector<std::string>& row) {
  std::vector<std::string_view> values(row.begin(), row.end());
  std::vector<Match> matches;
  Status st = set.Scan(values, &matches);
  EXPECT_TRUE(st.ok()) << st.ToString();
  std::vector<std::string> out;
  for (const Match& m : matches)
    out.push_back(set.rules()[m.rule].name + "@" + std::to_string(m.value) + ":" +
                  std::to_string(m.begin) + "-" + std::to_string(m.end) + "=" +
                  row[m.value].substr(m.begin, m.end - m.begin));
  return out;
}

// The single detection in `text`, as "detector=matched text", or "" when there is none.
std::string One(const std::string& text) {
  auto found = Find(All(), {text});
  if (found.empty()) return "";
  EXPECT_EQ(found.size(), 1u) << text;
  const std::string& f = found[0];  // "name@value:begin-end=text"; names hold no '@' or '='
  return f.substr(0, f.find('@')) + "=" + f.substr(f.find('=') + 1);
}

void ExpectWhole(const std::string& detector, const std::vector<std::string>& values) {
  for (const std::string& v : values) EXPECT_EQ(One(v), detector + "=" + v) << v;
}

void ExpectNone(const std::vector<std::string>& values) {
  for (const std::string& v : values) EXPECT_EQ(Find(All(), {v}), std::vector<std::string>{}) << v;
}

TEST(DetectorsTest, NamesRoundTrip) {
  for (size_t i = 0; i <= kBuiltinDetectorCount; ++i) {
    auto d = static_cast<Detector>(i);
    EXPECT_EQ(DetectorFromName(DetectorName(d)), d);
  }
  EXPECT_EQ(DetectorName(Detector::kPaymentCard), "payment_card");
  EXPECT_EQ(DetectorFromName("nope"), std::nullopt);
  EXPECT_FALSE(IsSecret(Detector::kEmail));
  EXPECT_FALSE(IsSecret(Detector::kIban));
  EXPECT_TRUE(IsSecret(Detector::kJwt));
  EXPECT_TRUE(IsSecret(Detector::kPemPrivateKey));
}

TEST(DetectorsTest, Email) {
  ExpectWhole("email", {"alice@example.com", "bob.smith+tag@mail.example.co.uk", "x_y@a-b.io"});
  EXPECT_EQ(One("Contact: <carol@example.org>, thanks"), "email=carol@example.org");
  EXPECT_EQ(One("Key (email)=(alice@example.com) already exists."), "email=alice@example.com");
  EXPECT_EQ(One("..dave@example.net."), "email=dave@example.net");
  EXPECT_EQ(One("mailto:eve@mail.1und1.de?subject=hi"), "email=eve@mail.1und1.de");
  EXPECT_EQ(Find(All(), {"a@b.io,c@d.org"}),
            (std::vector<std::string>{"email@0:0-6=a@b.io", "email@0:7-14=c@d.org"}));
  ExpectNone({"user@localhost", "not an email @ all", "a@b", "@example.com", "x@-bad-.com"});
}

TEST(DetectorsTest, PaymentCard) {
  ExpectWhole("payment_card",
              {"4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005",
               "3782 822463 10005", "5500 0055 5555 5559", "6011111111111117", "30569309025904",
               "3530111333300000", "4222222222222"});
  EXPECT_EQ(One("paid with 4111111111111111."), "payment_card=4111111111111111");
  // Shorter ends are tried when the longest one runs into the next number.
  EXPECT_EQ(One("card 4111 1111 1111 1111 2024"), "payment_card=4111 1111 1111 1111");
  EXPECT_EQ(One("qty 5 4111 1111 1111 1111"), "payment_card=4111 1111 1111 1111");
  EXPECT_EQ(Find(All(), {"4111111111111111,5500005555555559"}).size(), 2u);
  ExpectNone({
      "4111111111111112",      // Luhn
      "1234567812345670",      // Luhn-valid, no card prefix
      "41111111111111111111",  // 20 digits
      "x4111111111111111",     // inside a word
      "0.4111111111111111",    // a decimal
      "4111111111111111-7",    // part of a longer number
      "4111 1111-1111 1111",   // mixed separators
      "41111 1111 1111 111",   // not a printed layout
      "5105105105105101",      // Luhn (5105105105105100 is valid)
  });
}

TEST(DetectorsTest, PaymentCardLengthRules) {
  // 5105105105105100 is the canonical Mastercard test number; ...101 fails Luhn (above).
  EXPECT_EQ(One("5105105105105100"), "payment_card=5105105105105100");
  EXPECT_EQ(One("41111111111111"), "");  // Visa has 13, 16 or 19 digits
}

TEST(DetectorsTest, UsSsn) {
  ExpectWhole("us_ssn", {"123-45-6789", "078-05-1121"});
  EXPECT_EQ(One("SSN: 123-45-6789."), "us_ssn=123-45-6789");
  ExpectNone({"000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000",
              "1123-45-6789", "123-45-67890", "123-45-6789-1", "2024-01-15", "555-123-4567",
              "123456789"});
}

TEST(DetectorsTest, Iban) {
  ExpectWhole("iban",
              {"DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
               "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606", "NO9386011117947"});
  EXPECT_EQ(One("IBAN: DE89 3704 0044 0532 0130 00 EUR"), "iban=DE89 3704 0044 0532 0130 00");
  ExpectNone({"DE89370400440532013001", "DE8937040044053201300", "XX89370400440532013000",
              "DE89 37040 0440 5320 1300 0", "ABDE89370400440532013000"});
}

TEST(DetectorsTest, Phone) {
  ExpectWhole("phone", {"+1 555 123 4567", "+44 20 7946 0958", "+4915123456789",
                        "+1 (555) 123-4567", "+33.1.23.45.67.89"});
  EXPECT_EQ(One("call +44 20 7946 0958 today"), "phone=+44 20 7946 0958");
  ExpectNone({"+123", "+0123456789", "1+5551234567", "+1234567890123456",
              "2024-01-15T10:20:30+05:30", "1e+10", "555-123-4567"});
}

TEST(DetectorsTest, AwsKeys) {
  ExpectWhole("aws_access_key_id", {"AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"});
  EXPECT_EQ(One("key=AKIAIOSFODNN7EXAMPLE;"), "aws_access_key_id=AKIAIOSFODNN7EXAMPLE");
  ExpectNone(
      {"AKIAIOSFODNN7EXAMPLEX", "XAKIAIOSFODNN7EXAMPLE", "AKIA1234", "akiaiosfodnn7example"});

  const std::string key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  EXPECT_EQ(One("aws_secret_access_key = " + key), "aws_secret_key=" + key);
  EXPECT_EQ(One("AWS_SECRET_ACCESS_KEY=" + key + "\n"), "aws_secret_key=" + key);
  EXPECT_EQ(One("{\"aws\": {\"secret\": \"" + key + "\"}}"), "aws_secret_key=" + key);
  ExpectNone({
      "token " + key,                                         // no hint
      "aws" + std::string(40, ' ') + key,                     // hint too far away
      "aws commit da39a3ee5e6b4b0d3255bfef95601890afd80709",  // a SHA-1, one case only
      "aws_secret_access_key=" + key + "Z",                   // 41 characters
  });
}

TEST(DetectorsTest, Tokens) {
  const std::string ghp = "ghp_" + std::string("aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789");
  const std::string pat = "github_pat_" + std::string(22, 'A') + "_" + std::string(59, 'b');
  ExpectWhole("github_token", {ghp, pat, "gho_" + ghp.substr(4)});
  EXPECT_EQ(One("Authorization: token " + ghp), "github_token=" + ghp);
  ExpectNone({ghp.substr(0, ghp.size() - 1), "ghx_" + ghp.substr(4), ghp + "A"});

  ExpectWhole("gitlab_token", {"glpat-xxxxxxxxxxxxxxxxxxxx", "glpat-Ab_cD-eF1234567890xyz"});
  ExpectNone({"glpat-xxxxxxxxxxxxxxxxxxx"});

  ExpectWhole("slack_token", {"xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
                              "xoxp-1234-5678-abcdefabcdef"});
  ExpectNone({"xoxb-abc", "xoxz-123456789012-1234", "xoxb-abcdefghijklmnop"});
}

TEST(DetectorsTest, Jwt) {
  const std::string jwt =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwia"
      "WF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
  ExpectWhole("jwt", {jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."});
  EXPECT_EQ(One("Bearer " + jwt + " expired"), "jwt=" + jwt);
  ExpectNone({"eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",    // header without "alg"
              "eyJhbGciOiJIUzI1NiIsInR5cCI6.eyJzdWIiOiIxIn0.c2ln",  // header not JSON
              "WyJhbGciXQ.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"});          // an array
}

TEST(DetectorsTest, PemPrivateKey) {
  const std::string rsa =
      "-----BEGIN RSA PRIVATE "
      "KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
      "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA PRIVATE KEY-----";
  const std::string enc =
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: "
      "AES-128-CBC,AB12\n\n"
      "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
      "-----END ENCRYPTED PRIVATE KEY-----";
  ExpectWhole("pem_private_key", {rsa, enc});
  EXPECT_EQ(One("key:\n" + rsa + "\n"), "pem_private_key=" + rsa);
  auto two = Find(All(), {rsa + "\n" + enc});
  ASSERT_EQ(two.size(), 2u);
  EXPECT_NE(two[0].find("RSA"), std::string::npos);
  EXPECT_NE(two[1].find("ENCRYPTED"), std::string::npos);
  std::string mismatched = rsa;
  mismatched.replace(mismatched.rfind("RSA"), 3, "DSA");
  ExpectNone(
      {mismatched,
       "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----"});
}

TEST(DetectorsTest, LookAlikesAreLeftAlone) {
  ExpectNone({
      "550e8400-e29b-41d4-a716-446655440000",  // UUIDs
      "12345678-1234-1234-1234-123456789012",
      "2024-01-15",
      "2024-01-15 10:20:30.123456+00",
      "2024-01-15T10:20:30Z",  // dates, times
      "1705312800000",
      "1705312800",
      "12345",
      "9876543210",
      "-42.5",
      "3.14159265358979",
      "v1.2.3",
      "4.1.1.1111.1111.1111",
      "192.168.100.200",
      "::ffff:10.0.0.1",                                                   // versions, IPs
      "d41d8cd98f00b204e9800998ecf8427e",                                  // MD5
      "da39a3ee5e6b4b0d3255bfef95601890afd80709",                          // SHA-1
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  // SHA-256
      "f1e2d3c4b5a69788796a5b4c3d2e1f0041111111111111111a",                // digits in hex
      "order #4111111111111112 shipped",
      "user_id=1234567812345670",
      "",
      "plain text with numbers 1 2 3 and a + sign",
  });
}

TEST(DetectorsTest, OneScanFindsMatchesAcrossValues) {
  std::vector<std::string> row = {"alice@example.com", "", "plain",
                                  "card 4111111111111111 and ssn 123-45-6789",
                                  "AKIAIOSFODNN7EXAMPLE"};
  EXPECT_EQ(Find(All(), row), (std::vector<std::string>{
                                  "email@0:0-17=alice@example.com",
                                  "payment_card@3:5-21=4111111111111111",
                                  "us_ssn@3:30-41=123-45-6789",
                                  "aws_access_key_id@4:0-20=AKIAIOSFODNN7EXAMPLE",
                              }));
}

TEST(DetectorsTest, OverlapsLeftmostThenLongest) {
  // A card-looking local part: the email starts at the same byte and is longer.
  EXPECT_EQ(One("4111111111111111@example.com"), "email=4111111111111111@example.com");
  // An SSN inside an email address: the email starts first.
  EXPECT_EQ(One("123-45-6789@example.com"), "email=123-45-6789@example.com");
}

TEST(DetectorsTest, PathologicalValuesStayFast) {
  // Long runs of what detectors look for: each must take linear time (this test would take
  // minutes otherwise) and either find the valid pieces or fail closed with an error.
  std::vector<std::string> values;
  std::string emails;
  for (int i = 0; i < 20000; ++i) emails += "a@b.c";
  values.push_back(emails);
  values.push_back("x@" + std::string(100000, 'b') + ".com");
  std::string dots = "x@";
  for (int i = 0; i < 50000; ++i) dots += "b.";
  values.push_back(dots);
  values.push_back(std::string(200000, '4'));
  std::string spaced;
  for (int i = 0; i < 50000; ++i) spaced += "4111 ";
  values.push_back(spaced);
  std::string phones = "+1";
  for (int i = 0; i < 50000; ++i) phones += " 2";
  values.push_back(phones);
  values.push_back("-----BEGIN PRIVATE KEY-----" + std::string(200000, 'A'));
  std::string hints;
  for (int i = 0; i < 20000; ++i) hints += "aws " + std::string(8, 'K');
  values.push_back(hints);
  values.push_back("DE89" + std::string(200000, '0'));
  std::vector<std::string_view> views(values.begin(), values.end());
  std::vector<Match> matches;
  Status st = All().Scan(views, &matches);
  EXPECT_TRUE(st.ok() || st.code() == StatusCode::kResourceExhausted) << st.ToString();
}

TEST(DetectorsTest, CustomPattern) {
  DetectorRule emp;
  emp.detector = Detector::kCustom;
  emp.name = "employee_id";
  emp.regex = "EMP-[0-9]{6}";
  DetectorRule email;
  email.detector = Detector::kEmail;
  auto set = DetectorSet::Compile({emp, email});
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ((*set)->rules()[1].name, "email");  // built-ins get their name
  EXPECT_EQ(
      Find(**set, {"by EMP-123456 for bob@example.com", "EMP-12345"}),
      (std::vector<std::string>{"employee_id@0:3-13=EMP-123456", "email@0:18-33=bob@example.com"}));
}

TEST(DetectorsTest, CustomPatternCannotJoinValues) {
  DetectorRule r;
  r.detector = Detector::kCustom;
  r.name = "a_to_c";
  r.regex = "a[^b]*c";  // [^b] matches the separator byte too
  auto set = DetectorSet::Compile({r});
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(Find(**set, {"xa", "yc", "ac", "zz"}), (std::vector<std::string>{"a_to_c@2:0-2=ac"}));
}

TEST(DetectorsTest, InvalidCustomRegexIsAnError) {
  DetectorRule r;
  r.detector = Detector::kCustom;
  r.name = "broken";
  r.regex = "EMP-(";
  auto set = DetectorSet::Compile({r});
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(set.status().message().find("broken"), std::string::npos);

  r.regex = "(a)\\1";  // backreferences are not supported
  EXPECT_EQ(DetectorSet::Compile({r}).status().code(), StatusCode::kInvalidArgument);
  r.regex = "";
  EXPECT_EQ(DetectorSet::Compile({r}).status().code(), StatusCode::kInvalidArgument);
  r.regex = "x*";  // matches the empty string
  EXPECT_EQ(DetectorSet::Compile({r}).status().code(), StatusCode::kInvalidArgument);
}

TEST(DetectorsTest, EmptySetFindsNothing) {
  auto set = DetectorSet::Compile({});
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(Find(**set, {"alice@example.com"}).empty());
}

TEST(DetectorsTest, ThreadsAndSetsShareScratchSafely) {
  DetectorRule r;
  r.detector = Detector::kCustom;
  r.name = "big";
  r.regex = "(foo|bar)[a-z]{5,40}baz";
  auto other = DetectorSet::Compile({r});
  ASSERT_TRUE(other.ok());
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        // Alternating databases on one thread grows the thread's scratch to fit both.
        if (Find(All(), {"x", "alice@example.com"}).size() != 1) ++bad;
        if (Find(**other, {"foohelloworldbaz"}).size() != 1) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(ValidatorsTest, Checksums) {
  EXPECT_TRUE(internal::LuhnValid("79927398713"));
  EXPECT_FALSE(internal::LuhnValid("79927398710"));
  EXPECT_FALSE(internal::LuhnValid(""));
  EXPECT_TRUE(internal::IbanChecksumValid("GB82WEST12345698765432"));
  EXPECT_FALSE(internal::IbanChecksumValid("GB82WEST12345698765433"));
  EXPECT_EQ(internal::IbanLength("DE"), 22);
  EXPECT_EQ(internal::IbanLength("ZZ"), 0);
  std::string out;
  EXPECT_TRUE(internal::Base64UrlDecode("eyJhbGciOiJub25lIn0", &out));
  EXPECT_EQ(out, "{\"alg\":\"none\"}");
  EXPECT_FALSE(internal::Base64UrlDecode("a", &out));
  EXPECT_FALSE(internal::Base64UrlDecode("ab+c", &out));
}

}  // namespace
}  // namespace dbw::masking
