// Row masker tests: DataRow bodies in text and binary formats (rules, detectors, NULLs, jsonb,
// malformed bodies, withheld values), COPY text rows with escapes, error texts, and DataRow
// rewriting through the stream decoder split at every offset.
#include "userspace/masking/row_masker.h"

#include <optional>

#include <gtest/gtest.h>

#include "userspace/common/byte_reader.h"
#include "userspace/protocol/postgres/decoder.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"

namespace dbw::masking {
namespace {

using Value = std::optional<std::string>;
using Row = std::vector<Value>;

constexpr uint32_t kText = 25, kVarchar = 1043, kInt4 = 23, kBytea = 17, kJson = 114, kJsonb = 3802;

std::array<uint8_t, 32> FakeHmac(std::string_view v) {
  std::array<uint8_t, 32> out{};
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < out.size(); ++i) {
    for (char c : v) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
    out[i] = static_cast<uint8_t>(h >> 7);
  }
  return out;
}

std::string Body(const Row& row) {
  std::string b;
  auto put32 = [&](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>(v >> s));
  };
  b.push_back(static_cast<char>(row.size() >> 8));
  b.push_back(static_cast<char>(row.size()));
  for (const Value& v : row) {
    if (!v) {
      put32(0xffffffffu);
      continue;
    }
    put32(static_cast<uint32_t>(v->size()));
    b += *v;
  }
  return b;
}

// Re-parses a body with the protocol module's own parser.
Row Parse(std::string_view body) {
  pg::DataRowMessage m;
  std::string error;
  EXPECT_TRUE(pg::ParseDataRow(AsBytes(body), &m, &error)) << error;
  Row row;
  for (const auto& v : m.values) row.push_back(v ? Value(std::string(AsStringView(*v))) : Value());
  return row;
}

MaskSpec Spec(Function f, int keep_last = 4) {
  MaskSpec s;
  s.function = f;
  s.keep_last = keep_last;
  s.rule_id = "test";
  return s;
}

ColumnPlan Col(uint32_t oid, int16_t format = 0, std::optional<MaskSpec> rule = std::nullopt) {
  ColumnPlan c;
  c.type_oid = oid;
  c.format = format;
  c.rule = std::move(rule);
  return c;
}

std::shared_ptr<const DetectorSet> Detectors(Function f = Function::kRedact,
                                             std::vector<Detector> which = {
                                                 Detector::kEmail, Detector::kPaymentCard,
                                                 Detector::kUsSsn, Detector::kAwsAccessKeyId}) {
  std::vector<DetectorRule> rules;
  for (Detector d : which) {
    DetectorRule r;
    r.detector = d;
    r.mask = Spec(f);
    rules.push_back(r);
  }
  auto set = DetectorSet::Compile(std::move(rules));
  EXPECT_TRUE(set.ok()) << set.status().ToString();
  return *set;
}

struct Result {
  Status status;
  Row row;
  std::string body;
  MaskStats stats;
};

Result MaskRow(const ResultPlan& plan, const Row& row) {
  Result r;
  std::string in = Body(row);
  r.status = MaskDataRow(plan, AsBytes(in), &r.body, &r.stats);
  if (r.status.ok()) r.row = Parse(r.body);
  return r;
}

std::string Bin(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

TEST(RowMaskerTest, IsTextLike) {
  for (uint32_t oid : {25u, 1043u, 1042u, 19u, 18u, 114u, 142u, 705u, 3802u})
    EXPECT_TRUE(IsTextLike(oid)) << oid;
  for (uint32_t oid : {16u, 17u, 20u, 21u, 23u, 700u, 701u, 1082u, 1114u, 2950u})
    EXPECT_FALSE(IsTextLike(oid)) << oid;
}

TEST(RowMaskerTest, PlanActivity) {
  ResultPlan plan;
  plan.columns = {Col(kText), Col(kInt4)};
  EXPECT_FALSE(plan.active());
  auto empty = DetectorSet::Compile({});
  plan.detectors = empty->get();
  EXPECT_FALSE(plan.active());
  plan.columns[1].rule = Spec(Function::kRedact);
  EXPECT_TRUE(plan.active());
  plan.columns[1].rule.reset();
  auto set = Detectors();
  plan.detectors = set.get();
  EXPECT_TRUE(plan.active());
}

TEST(RowMaskerTest, InactivePlanCopiesTheBody) {
  ResultPlan plan;
  plan.columns = {Col(kText), Col(kInt4, 1), Col(kText)};
  Row row = {"alice@example.com", Bin({0, 0, 0, 7}), std::nullopt};
  Result r = MaskRow(plan, row);
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.body, Body(row));
}

TEST(RowMaskerTest, TextColumnRules) {
  ResultPlan plan;
  plan.hmac = FakeHmac;
  plan.columns = {
      Col(kText, 0, Spec(Function::kRedact)),     Col(kText),
      Col(kVarchar, 0, Spec(Function::kPartial)), Col(kText, 0, Spec(Function::kNull)),
      Col(kText, 0, Spec(Function::kHash)),       Col(kText, 0, Spec(Function::kPartial))};
  Result r = MaskRow(plan, {"4111111111111111", "kept as is", "alice@example.com", "gone", "x",
                            "4111 1111 1111 1234"});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.row.size(), 6u);
  EXPECT_EQ(r.row[0], "[redacted]");
  EXPECT_EQ(r.row[1], "kept as is");
  EXPECT_EQ(r.row[2], "****@example.com");  // an address keeps its domain under partial
  EXPECT_EQ(r.row[3], std::nullopt);
  ASSERT_TRUE(r.row[4]);
  EXPECT_EQ(r.row[4]->substr(0, 2), "h:");
  EXPECT_EQ(r.row[4]->size(), 26u);
  EXPECT_EQ(r.row[5], "****1234");
  EXPECT_EQ(r.stats.column_masked, (std::vector<uint64_t>{1, 0, 1, 1, 1, 1}));
}

TEST(RowMaskerTest, NullsArePreserved) {
  auto set = Detectors();
  ResultPlan plan;
  plan.detectors = set.get();
  plan.columns = {Col(kText, 0, Spec(Function::kRedact)), Col(kText),
                  Col(kInt4, 1, Spec(Function::kRedact)), Col(kText)};
  Result r = MaskRow(plan, {std::nullopt, std::nullopt, std::nullopt, "bob@example.com"});
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.row, (Row{std::nullopt, std::nullopt, std::nullopt, "[redacted]"}));
  EXPECT_EQ(r.stats.column_masked, (std::vector<uint64_t>{0, 0, 0, 0}));
}

TEST(RowMaskerTest, BinaryColumns) {
  ResultPlan plan;
  plan.columns = {Col(kInt4, 1, Spec(Function::kPartial)),  // not text-like: NULL
                  Col(kText, 1, Spec(Function::kRedact)),   // binary text is the text
                  Col(kJsonb, 1, Spec(Function::kRedact)),  // version byte kept
                  Col(kInt4, 1), Col(kJsonb, 1, Spec(Function::kRedact))};
  Result r =
      MaskRow(plan, {Bin({0, 0, 0, 42}), "secret", "\x01{\"a\": 1}", Bin({0, 0, 1, 0}), "\x02{}"});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.row, (Row{std::nullopt, "[redacted]", "\x01\"[redacted]\"", Bin({0, 0, 1, 0}),
                        std::nullopt}));
}

TEST(RowMaskerTest, DetectorsScanTextAndTextLikeBinaryColumns) {
  auto set = Detectors(Function::kPartial);
  ResultPlan plan;
  plan.detectors = set.get();
  plan.columns = {Col(kText),     Col(kText, 1), Col(kBytea, 1),
                  Col(kJsonb, 1), Col(kInt4, 0), Col(kText, 0, Spec(Function::kHash))};
  const std::string email = "alice@example.com";
  Result r = MaskRow(plan, {"mail " + email + " or card 4111111111111111", email, email,
                            "\x01{\"email\": \"" + email + "\"}", "4111111111111111", email});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.row[0], "mail ****@example.com or card ****1111");
  EXPECT_EQ(r.row[1], "****@example.com");
  // bytea (like arrays, records, tsvector) in binary can carry text the detectors cannot see:
  // withheld. Numbers, dates and booleans in binary cannot, and pass.
  EXPECT_EQ(r.row[2], std::nullopt);
  EXPECT_EQ(r.stats.withheld, 1u);
  EXPECT_EQ(r.row[3], "\x01{\"email\": \"****@example.com\"}");
  EXPECT_EQ(r.row[4], "****1111");                  // text format: scanned whatever the type
  EXPECT_EQ(r.row[5], std::string(kRedactMarker));  // the column rule (no key: hash fails closed)
  EXPECT_EQ(r.stats.detector_hits, (std::vector<uint64_t>{3, 2, 0, 0}));
  EXPECT_EQ(r.stats.column_masked, (std::vector<uint64_t>{0, 0, 0, 0, 0, 1}));
}

// Binary array and record values, built as PostgreSQL sends them.
std::string I32(int32_t v) {
  auto u = static_cast<uint32_t>(v);
  return {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8),
          static_cast<char>(u)};
}
std::string ArrayOf(int32_t elem, const std::vector<std::optional<std::string>>& items) {
  std::string out = I32(1) + I32(0) + I32(elem) + I32(static_cast<int32_t>(items.size())) + I32(1);
  for (const auto& i : items) out += i ? I32(static_cast<int32_t>(i->size())) + *i : I32(-1);
  return out;
}
std::string RecordOf(const std::vector<std::pair<int32_t, std::string>>& fields) {
  std::string out = I32(static_cast<int32_t>(fields.size()));
  for (const auto& [oid, v] : fields) out += I32(oid) + I32(static_cast<int32_t>(v.size())) + v;
  return out;
}

TEST(RowMaskerTest, BinaryArraysAndRecordsAreDecodedAndScanned) {
  auto set = Detectors(Function::kPartial);
  ResultPlan plan;
  plan.detectors = set.get();
  const uint32_t kTextArray = 1009, kRecord = 2249, kRecordArray = 2287, kInt4Array = 1007;
  plan.columns = {Col(kTextArray, 1), Col(kRecord, 1), Col(kRecordArray, 1),
                  Col(kInt4Array, 1), Col(kBytea, 1),  Col(kTextArray, 1)};
  const std::string email = "alice@example.com";
  const std::string record = RecordOf({{23, I32(7)}, {25, "mail " + email}});
  const std::string ints = ArrayOf(23, {I32(1), I32(2)});
  Result r = MaskRow(plan, {ArrayOf(25, {email, std::nullopt, "plain"}), record,
                            ArrayOf(2249, {record}), ints, email,
                            // Malformed: an element longer than the value.
                            I32(1) + I32(0) + I32(25) + I32(1) + I32(1) + I32(99) + "x"});
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.row[0], ArrayOf(25, {"****@example.com", std::nullopt, "plain"}));
  const std::string masked_record = RecordOf({{23, I32(7)}, {25, "mail ****@example.com"}});
  EXPECT_EQ(r.row[1], masked_record);
  EXPECT_EQ(r.row[2], ArrayOf(2249, {masked_record}));
  EXPECT_EQ(r.row[3], ints);          // nothing to scan: passed as sent
  EXPECT_EQ(r.row[4], std::nullopt);  // bytea cannot be read as text
  EXPECT_EQ(r.row[5], std::nullopt);  // malformed: withheld
  EXPECT_EQ(r.stats.withheld, 2u);
}

TEST(RowMaskerTest, JsonStaysJson) {
  auto set = Detectors();
  ResultPlan plan;
  plan.detectors = set.get();
  plan.columns = {Col(kJson), Col(kJson), Col(kJson, 0, Spec(Function::kPartial)), Col(kJson)};
  Result r = MaskRow(plan, {"{\"card\": 4111111111111111, \"n\": 1}", "[\"bob@example.com\"]",
                            "{\"a\": \"b\\\"c\"}", "{\"k\": \"123-45-6789\"}"});
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.row[0], "{\"card\": \"[redacted]\", \"n\": 1}");
  EXPECT_EQ(r.row[1], "[\"[redacted]\"]");
  EXPECT_EQ(r.row[2], "\"****\\\"c\\\"}\"");  // the masked text as a JSON string
  EXPECT_EQ(r.row[3], "{\"k\": \"[redacted]\"}");
}

TEST(RowMaskerTest, JsonMatchCuttingStructureWithholdsTheDocument) {
  DetectorRule r;
  r.detector = Detector::kCustom;
  r.name = "digit_brace";
  r.regex = "[0-9]\\}";
  auto set = DetectorSet::Compile({r});
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  ResultPlan plan;
  plan.detectors = set->get();
  plan.columns = {Col(kJson), Col(kText)};
  Result res = MaskRow(plan, {"{\"a\": 1}", "{\"a\": 1}"});
  ASSERT_TRUE(res.status.ok());
  // Replacing "1}" would cut the object open: the json value becomes the marker string; text is
  // text.
  EXPECT_EQ(res.row, (Row{"\"[redacted]\"", "{\"a\": [redacted]"}));
}

TEST(RowMaskerTest, NullFunctionInsideTextIsTheMarker) {
  auto set = Detectors(Function::kNull);
  ResultPlan plan;
  plan.detectors = set.get();
  plan.columns = {Col(kText), Col(kText)};
  Result r = MaskRow(plan, {"bob@example.com", "write to bob@example.com"});
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.row, (Row{std::nullopt, "write to [redacted]"}));
}

TEST(RowMaskerTest, HashOfDetectedValuesIgnoresSeparators) {
  auto set = Detectors(Function::kHash);
  ResultPlan plan;
  plan.detectors = set.get();
  plan.hmac = FakeHmac;
  plan.columns = {Col(kText), Col(kText), Col(kText)};
  Result r = MaskRow(plan, {"4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"});
  ASSERT_TRUE(r.status.ok());
  ASSERT_TRUE(r.row[0]);
  EXPECT_EQ(r.row[0]->substr(0, 2), "h:");
  EXPECT_EQ(r.row[0], r.row[1]);
  EXPECT_EQ(r.row[0], r.row[2]);
}

TEST(RowMaskerTest, MalformedBodiesAreRejectedAndWriteNothing) {
  ResultPlan plan;
  plan.columns = {Col(kText, 0, Spec(Function::kRedact)), Col(kText)};
  std::string good = Body({"a", "b"});
  std::vector<std::string> bad = {
      "",
      "\x00",
      Body({"a"}),                                      // one column, plan says two
      Body({"a", "b", "c"}),                            // three
      good.substr(0, good.size() - 1),                  // value cut short
      good + "x",                                       // trailing byte
      std::string("\x00\x02\x00\x00\x00", 5),           // length cut short
      Bin({0, 2, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0}),  // length -2
      Bin({0, 2, 0x7f, 0xff, 0xff, 0xff}),              // length past the end
  };
  for (const std::string& b : bad) {
    std::string out = "keep";
    MaskStats stats;
    Status st = MaskDataRow(plan, AsBytes(b), &out, &stats);
    EXPECT_EQ(st.code(), StatusCode::kDataLoss) << testing::PrintToString(b);
    EXPECT_EQ(out, "keep");
  }
  std::string out = "keep";
  ASSERT_TRUE(MaskDataRow(plan, AsBytes(good), &out, nullptr).ok());
  EXPECT_EQ(out, "keep" + Body({"[redacted]", "b"}));  // appended
}

TEST(RowMaskerTest, DetectorFailureWithholdsWhatTheyWouldScan) {
  // A value so full of candidates that the scan gives up: every scanned value is withheld.
  DetectorRule r;
  r.detector = Detector::kCustom;
  r.name = "letters";
  r.regex = "[a-z]+";
  auto set = DetectorSet::Compile({r});
  ASSERT_TRUE(set.ok());
  ResultPlan plan;
  plan.detectors = set->get();
  plan.columns = {Col(kText), Col(kText, 1), Col(kJsonb, 1), Col(kInt4, 1),
                  Col(kText, 0, Spec(Function::kPartial))};
  Result res = MaskRow(
      plan, {std::string(5u << 20, 'a'), "short", "\x01{}", Bin({0, 0, 0, 1}), "rule-masked"});
  ASSERT_TRUE(res.status.ok()) << res.status.ToString();
  EXPECT_EQ(res.row,
            (Row{"[redacted]", "[redacted]", "\x01\"[redacted]\"", Bin({0, 0, 0, 1}), "****sked"}));
  EXPECT_EQ(res.stats.withheld, 3u);

  std::string text = std::string(5u << 20, 'b');
  MaskStats stats;
  EXPECT_FALSE(MaskFreeText(**set, nullptr, &text, &stats));
  EXPECT_EQ(text, kRedactMarker);
  EXPECT_EQ(stats.withheld, 1u);
}

TEST(RowMaskerTest, CopyTextRows) {
  auto set = Detectors();
  ResultPlan plan;
  plan.detectors = set.get();
  plan.columns = {Col(kInt4), Col(kText, 0, Spec(Function::kPartial)), Col(kText), Col(kText)};
  MaskStats stats;
  auto mask = [&](std::string_view line) {
    std::string out;
    Status st = MaskCopyTextRow(plan, line, &out, &stats);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  };
  EXPECT_EQ(mask("1\talice@example.com\t\\N\tline1\\nline2 4111111111111111\n"),
            "1\t****@example.com\t\\N\tline1\\nline2 [redacted]\n");
  // Untouched fields keep their escapes byte for byte; changed ones are re-escaped.
  EXPECT_EQ(mask("2\ta\\\\b\tc:\\\\d\\te\tmail\\tbob@example.com\n"),
            "2\t****\tc:\\\\d\\te\tmail\\t[redacted]\n");
  // Octal and hex escapes are decoded before the detectors look.
  EXPECT_EQ(mask("3\t\\N\talice\\100example.com\tbob\\x40example.com\n"),
            "3\t\\N\t[redacted]\t[redacted]\n");
  // Columns beyond the plan: detectors only. No trailing newline: none added.
  EXPECT_EQ(mask("4\tx\ty\tz\t123-45-6789\textra"), "4\t****\ty\tz\t[redacted]\textra");
  EXPECT_EQ(mask("\\.\n"), "\\.\n");
  EXPECT_EQ(stats.detector_hits[0], 3u);
  EXPECT_EQ(stats.column_masked[1], 3u);

  std::string out = "keep";
  EXPECT_EQ(MaskCopyTextRow(plan, "1\tabc\\\n", &out, &stats).code(), StatusCode::kDataLoss);
  EXPECT_EQ(out, "keep");
}

TEST(RowMaskerTest, CopyNullRuleAndWholeValueNull) {
  auto set = Detectors(Function::kNull);
  ResultPlan plan;
  plan.detectors = set.get();
  plan.columns = {Col(kText, 0, Spec(Function::kNull)), Col(kText)};
  std::string out;
  ASSERT_TRUE(MaskCopyTextRow(plan, "x\tbob@example.com\n", &out, nullptr).ok());
  EXPECT_EQ(out, "\\N\t\\N\n");
}

TEST(RowMaskerTest, FreeText) {
  auto set = Detectors();
  MaskStats stats;
  std::string detail = "Key (email)=(alice@example.com) already exists.";
  EXPECT_TRUE(MaskFreeText(*set, nullptr, &detail, &stats));
  EXPECT_EQ(detail, "Key (email)=([redacted]) already exists.");
  EXPECT_EQ(stats.detector_hits[0], 1u);
  std::string plain = "duplicate key value violates unique constraint \"users_email_key\"";
  EXPECT_TRUE(MaskFreeText(*set, nullptr, &plain, &stats));
  EXPECT_EQ(plain, "duplicate key value violates unique constraint \"users_email_key\"");

  auto nulls = Detectors(Function::kNull);
  std::string whole = "bob@example.com";
  EXPECT_TRUE(MaskFreeText(*nulls, nullptr, &whole, nullptr));
  EXPECT_EQ(whole, kRedactMarker);  // free text cannot be NULL
}

// ---- DataRow rewriting through the stream decoder, split at every offset. ----

class MaskingHandler : public pg::DecoderHandler {
 public:
  explicit MaskingHandler(const ResultPlan& plan) : plan_(plan) {}
  pg::MessageAction OnMessage(pg::Direction, const pg::Frame& frame, pg::Bytes* out,
                              std::string* reason) override {
    if (frame.type != pg::be::kDataRow) return pg::MessageAction::kForward;
    body_.clear();
    Status st = MaskDataRow(plan_, frame.body, &body_, &stats);
    if (!st.ok()) {
      *reason = st.message();
      return pg::MessageAction::kReject;
    }
    auto len = static_cast<uint32_t>(body_.size() + 4);
    out->push_back(static_cast<std::byte>(pg::be::kDataRow));
    for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<std::byte>(len >> s));
    auto bytes = AsBytes(body_);
    out->insert(out->end(), bytes.begin(), bytes.end());
    return pg::MessageAction::kHandled;
  }
  void OnStreamedMessage(pg::Direction, uint8_t, uint32_t) override { ++streamed; }
  MaskStats stats;
  int streamed = 0;

 private:
  const ResultPlan& plan_;
  std::string body_;
};

pg::Bytes BackendStream() {
  pg::Bytes out;
  std::vector<pg::FieldDescription> fields(4);
  const char* names[] = {"id", "email", "notes", "card"};
  uint32_t oids[] = {kInt4, kText, kText, kVarchar};
  int16_t formats[] = {1, 0, 0, 1};
  for (size_t i = 0; i < fields.size(); ++i) {
    fields[i].name = names[i];
    fields[i].type_oid = oids[i];
    fields[i].format = formats[i];
    fields[i].column = static_cast<int16_t>(i + 1);
    fields[i].type_size = -1;
    fields[i].type_modifier = -1;
  }
  pg::AppendRowDescription(&out, fields);
  const std::vector<Row> rows = {
      {Bin({0, 0, 0, 1}), "alice@example.com", "call +1 555 123 4567", "4111111111111111"},
      {Bin({0, 0, 0, 2}), std::nullopt, "ssn 123-45-6789, key AKIAIOSFODNN7EXAMPLE", std::nullopt},
      {Bin({0, 0, 0, 3}), "carol@example.org", "", "5500 0055 5555 5559"},
      {Bin({0, 0, 0, 4}), "no email here", "nothing to see", "not a card"},
  };
  for (const Row& row : rows) {
    std::vector<std::optional<std::span<const std::byte>>> values;
    for (const Value& v : row)
      values.push_back(v ? std::optional<std::span<const std::byte>>(AsBytes(*v)) : std::nullopt);
    pg::AppendDataRow(&out, values);
  }
  pg::AppendCommandComplete(&out, "SELECT 4");
  pg::AppendReadyForQuery(&out, 'I');
  return out;
}

TEST(RowMaskerTest, DataRowRewritingSplitAtEveryOffset) {
  auto set = DetectorSet::Compile([] {
    std::vector<DetectorRule> rules;
    for (Detector d : {Detector::kEmail, Detector::kPhone, Detector::kUsSsn,
                       Detector::kAwsAccessKeyId, Detector::kPaymentCard}) {
      DetectorRule r;
      r.detector = d;
      r.mask = Spec(Function::kPartial);
      rules.push_back(r);
    }
    return rules;
  }());
  ASSERT_TRUE(set.ok());
  ResultPlan plan;
  plan.detectors = set->get();
  plan.columns = {Col(kInt4, 1), Col(kText), Col(kText), Col(kVarchar, 1, Spec(Function::kRedact))};

  pg::Bytes once = BackendStream();
  pg::Bytes stream = once;
  stream.insert(stream.end(), once.begin(), once.end());  // twice back to back

  auto decode = [&](size_t cut) {
    MaskingHandler handler(plan);
    pg::StreamDecoder decoder(pg::Direction::kBackend, &handler, 1 << 20);
    pg::Bytes pending, out;
    for (auto piece : {std::span<const std::byte>(stream).first(cut),
                       std::span<const std::byte>(stream).subspan(cut)}) {
      pending.insert(pending.end(), piece.begin(), piece.end());
      pg::DecodeResult r = decoder.Decode(pending, &out);
      EXPECT_FALSE(r.error) << r.reason;
      pending.erase(pending.begin(), pending.begin() + static_cast<ptrdiff_t>(r.consumed));
    }
    EXPECT_TRUE(pending.empty());
    return out;
  };

  pg::Bytes whole = decode(stream.size());
  // The masked stream still frames, and its rows say what they should.
  std::span<const std::byte> in(whole);
  std::vector<Row> rows;
  while (!in.empty()) {
    pg::Frame f;
    std::string error;
    ASSERT_EQ(pg::ParseFrame(pg::Direction::kBackend, false, &in, &f, &error), pg::ParseState::kOk)
        << error;
    ASSERT_TRUE(pg::ValidateMessage(pg::Direction::kBackend, f, &error)) << error;
    if (f.type == pg::be::kDataRow) rows.push_back(Parse(AsStringView(f.body)));
  }
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(rows[0], (Row{Bin({0, 0, 0, 1}), "****@example.com", "call ****4567", "[redacted]"}));
  EXPECT_EQ(rows[1],
            (Row{Bin({0, 0, 0, 2}), std::nullopt, "ssn ****6789, key ****MPLE", std::nullopt}));
  EXPECT_EQ(rows[2], (Row{Bin({0, 0, 0, 3}), "****@example.org", "", "[redacted]"}));
  EXPECT_EQ(rows[3], (Row{Bin({0, 0, 0, 4}), "no email here", "nothing to see", "[redacted]"}));
  EXPECT_EQ(rows[4], rows[0]);

  for (size_t cut = 0; cut <= stream.size(); ++cut)
    ASSERT_EQ(decode(cut), whole) << "split at " << cut;
}

}  // namespace
}  // namespace dbw::masking
