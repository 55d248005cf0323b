// Parser, decoder and session-state tests over golden captures from real clients.
#include "userspace/protocol/postgres/parse.h"

#include <map>

#include <gtest/gtest.h>

#include "tests/protocol/golden.h"
#include "userspace/protocol/postgres/decoder.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/session.h"

namespace dbw::pg {
namespace {

using testing::AllVectors;
using testing::Capture;
using testing::LoadCapture;

// Records every message the decoder hands over and forwards it unchanged.
class Recorder : public DecoderHandler {
 public:
  MessageAction OnMessage(Direction dir, const Frame& frame, Bytes* out,
                          std::string* reason) override {
    if (!ValidateMessage(dir, frame, reason)) return MessageAction::kReject;
    types.push_back(frame.type);
    return MessageAction::kForward;
  }
  void OnStreamedMessage(Direction, uint8_t type, uint32_t) override {
    types.push_back(type);
    ++streamed;
  }
  std::vector<uint8_t> types;
  int streamed = 0;
};

// Feeds `data` in pieces cut at `cuts`, as a relay reading a socket would.
std::pair<Bytes, std::vector<uint8_t>> DecodeInPieces(Direction dir,
                                                      std::span<const std::byte> data,
                                                      const std::vector<size_t>& cuts,
                                                      size_t threshold = 1 << 20) {
  Recorder rec;
  StreamDecoder decoder(dir, &rec, threshold);
  Bytes pending, out;
  size_t prev = 0;
  std::vector<size_t> all = cuts;
  all.push_back(data.size());
  for (size_t cut : all) {
    pending.insert(pending.end(), data.begin() + prev, data.begin() + cut);
    prev = cut;
    DecodeResult r = decoder.Decode(pending, &out);
    EXPECT_FALSE(r.error) << r.reason;
    pending.erase(pending.begin(), pending.begin() + r.consumed);
  }
  EXPECT_TRUE(pending.empty()) << "undecoded tail of " << pending.size() << " bytes";
  return {out, rec.types};
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, EveryFrameValidatesAndConsumesTheStreamExactly) {
  Capture c = LoadCapture(GetParam());
  ASSERT_FALSE(c.fe.empty());
  for (auto [dir, data, offset] :
       {std::tuple{Direction::kFrontend, std::span<const std::byte>(c.fe), c.fe_typed_offset},
        std::tuple{Direction::kBackend, std::span<const std::byte>(c.be), c.be_typed_offset}}) {
    std::span<const std::byte> in = data.subspan(offset);
    if (dir == Direction::kFrontend && c.has_startup) {
      // fe_typed_offset stops before the StartupMessage; skip it.
      Frame f;
      std::string error;
      ASSERT_EQ(ParseFrame(dir, true, &in, &f, &error), ParseState::kOk) << error;
    }
    size_t frames = 0;
    while (!in.empty()) {
      Frame f;
      std::string error;
      ASSERT_EQ(ParseFrame(dir, false, &in, &f, &error), ParseState::kOk)
          << GetParam() << " frame " << frames << ": " << error;
      ASSERT_TRUE(ValidateMessage(dir, f, &error))
          << GetParam() << " " << MessageName(dir, f.type) << ": " << error;
      ++frames;
    }
    if (!data.empty() && GetParam() != "cancel_request") {
      EXPECT_GT(frames, 0u);
    }
  }
}

size_t TypedStart(const Capture& c, Direction dir) {
  if (dir == Direction::kBackend) return c.be_typed_offset;
  std::span<const std::byte> in = std::span<const std::byte>(c.fe).subspan(c.fe_typed_offset);
  Frame f;
  std::string error;
  if (c.has_startup) ParseFrame(dir, true, &in, &f, &error);
  return c.fe.size() - in.size();
}

TEST_P(GoldenTest, DecoderOutputIsIdenticalWhenSplitAtEveryOffset) {
  Capture c = LoadCapture(GetParam());
  for (Direction dir : {Direction::kFrontend, Direction::kBackend}) {
    const auto& all = dir == Direction::kFrontend ? c.fe : c.be;
    std::span<const std::byte> data = std::span<const std::byte>(all).subspan(TypedStart(c, dir));
    auto [whole_out, whole_types] = DecodeInPieces(dir, data, {});
    ASSERT_EQ(whole_out.size(), data.size());
    EXPECT_TRUE(std::equal(whole_out.begin(), whole_out.end(), data.begin()));
    for (size_t cut = 1; cut < data.size(); ++cut) {
      auto [out, types] = DecodeInPieces(dir, data, {cut});
      ASSERT_EQ(out, whole_out) << GetParam() << " split at " << cut;
      ASSERT_EQ(types, whole_types) << GetParam() << " split at " << cut;
    }
    // Twice back to back: the decoder keeps no state between messages that would break.
    Bytes twice(data.begin(), data.end());
    twice.insert(twice.end(), data.begin(), data.end());
    auto [out2, types2] = DecodeInPieces(dir, twice, {data.size() / 2, data.size() + 3});
    EXPECT_EQ(out2, twice);
    EXPECT_EQ(types2.size(), whole_types.size() * 2);
  }
}

TEST_P(GoldenTest, ByteAtATimeAndTinyStreamThresholdStillForwardEverything) {
  Capture c = LoadCapture(GetParam());
  std::span<const std::byte> data =
      std::span<const std::byte>(c.be).subspan(TypedStart(c, Direction::kBackend));
  std::vector<size_t> cuts;
  for (size_t i = 1; i < data.size(); ++i) cuts.push_back(i);
  // A 16-byte threshold makes every larger DataRow/CopyData stream through.
  auto [out, types] = DecodeInPieces(Direction::kBackend, data, cuts, 16);
  ASSERT_EQ(out.size(), data.size());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin()));
}

// Collects the executions the session state machine reports.
class Executions : public SessionObserver {
 public:
  void OnExecutionComplete(const Execution& e) override { list.push_back(e); }
  std::vector<Execution> list;
};

// Replays a capture through SessionState in wire order, interleaving by request/response:
// frontend messages up to each Sync/Query, then backend messages up to the ReadyForQuery.
std::vector<Execution> Replay(const Capture& c, SessionState* state_out = nullptr) {
  Executions obs;
  SessionState state(&obs);
  std::span<const std::byte> fe = std::span<const std::byte>(c.fe).subspan(c.fe_typed_offset);
  std::span<const std::byte> be = std::span<const std::byte>(c.be).subspan(c.be_typed_offset);
  Frame f;
  std::string error;
  if (c.has_startup) {
    EXPECT_EQ(ParseFrame(Direction::kFrontend, true, &fe, &f, &error), ParseState::kOk);
    StartupPacket p;
    EXPECT_TRUE(ParseStartupPacket(f.body, &p, &error));
    state.OnStartup(p.startup);
  }
  uint64_t now = 1000;
  // The client sends everything it can before it must wait for a ReadyForQuery (or, during
  // authentication and COPY, for the server's next message); replaying fe fully, then be,
  // matches request/response order for these captures as PostgreSQL answers in order.
  while (!fe.empty()) {
    if (ParseFrame(Direction::kFrontend, false, &fe, &f, &error) != ParseState::kOk) break;
    EXPECT_TRUE(state.OnFrontend(f, now++, &error)) << error;
  }
  while (!be.empty()) {
    if (ParseFrame(Direction::kBackend, false, &be, &f, &error) != ParseState::kOk) break;
    EXPECT_TRUE(state.OnBackend(f, now++, &error)) << error;
  }
  return obs.list;
}

TEST(SessionStateTest, PgbenchPreparedTracesExecutesToTheirParse) {
  Capture c = LoadCapture("pgbench_prepared");
  auto list = Replay(c);
  ASSERT_EQ(list.size(), 5u);  // -t 5, select-only: one statement per transaction
  for (const auto& e : list) {
    EXPECT_TRUE(e.extended);
    EXPECT_EQ(e.statement_name, "P_0");
    EXPECT_NE(e.sql->find("SELECT abalance FROM pgbench_accounts WHERE aid = $1"),
              std::string::npos)
        << *e.sql;
    ASSERT_EQ(e.command_tags.size(), 1u);
    EXPECT_EQ(e.command_tags[0], "SELECT 1");
    EXPECT_EQ(e.rows, 1u);
    EXPECT_TRUE(e.sqlstate.empty());
  }
}

TEST(SessionStateTest, PgbenchTpcbPreparedReportsEveryStatement) {
  auto list = Replay(LoadCapture("pgbench_prepared_tpcb"));
  std::map<std::string, int> tags;
  for (const auto& e : list) tags[e.command_tags.empty() ? "" : e.command_tags[0]]++;
  EXPECT_EQ(tags["BEGIN"], 5);
  EXPECT_EQ(tags["COMMIT"], 5);
  EXPECT_EQ(tags["UPDATE 1"], 15);
  EXPECT_EQ(tags["INSERT 0 1"], 5);
  EXPECT_EQ(tags["SELECT 1"], 5);
}

TEST(SessionStateTest, PsqlSimpleReportsErrorsAndCopy) {
  auto list = Replay(LoadCapture("psql_simple"));
  bool saw_div0 = false, saw_copy_out = false, saw_copy_in = false, saw_empty = false;
  for (const auto& e : list) {
    EXPECT_FALSE(e.extended);
    if (e.sql->find("1/0") != std::string::npos) {
      saw_div0 = true;
      EXPECT_EQ(e.sqlstate, "22012");
      EXPECT_EQ(e.error_message, "division by zero");
    }
    if (e.sql->find("TO STDOUT") != std::string::npos) {
      saw_copy_out = true;
      ASSERT_FALSE(e.command_tags.empty());
      EXPECT_EQ(e.command_tags.back(), "COPY 6");  // 5 rows + the INSERT before it
    }
    if (e.sql->find("FROM STDIN") != std::string::npos) {
      saw_copy_in = true;
      ASSERT_FALSE(e.command_tags.empty());
      EXPECT_TRUE(e.command_tags.back().starts_with("COPY ")) << e.command_tags.back();
    }
    if (*e.sql == ";") saw_empty = true;
  }
  EXPECT_TRUE(saw_div0);
  EXPECT_TRUE(saw_copy_out);
  EXPECT_TRUE(saw_copy_in);
  EXPECT_TRUE(saw_empty);
}

TEST(SessionStateTest, StartupParametersAndBackendKey) {
  Executions obs;
  SessionState state(&obs);
  Capture c = LoadCapture("pgbench_simple");
  std::span<const std::byte> fe = std::span<const std::byte>(c.fe).subspan(c.fe_typed_offset);
  Frame f;
  std::string error;
  ASSERT_EQ(ParseFrame(Direction::kFrontend, true, &fe, &f, &error), ParseState::kOk);
  StartupPacket p;
  ASSERT_TRUE(ParseStartupPacket(f.body, &p, &error));
  state.OnStartup(p.startup);
  EXPECT_EQ(state.user(), "dbw");
  EXPECT_EQ(state.database(), "dbw");
  EXPECT_EQ(state.application_name(), "pgbench");
  EXPECT_EQ(state.phase(), Phase::kAuthenticating);
  std::span<const std::byte> be = std::span<const std::byte>(c.be).subspan(c.be_typed_offset);
  while (!be.empty() && state.phase() != Phase::kReady) {
    ASSERT_EQ(ParseFrame(Direction::kBackend, false, &be, &f, &error), ParseState::kOk);
    ASSERT_TRUE(state.OnBackend(f, 1, &error));
  }
  EXPECT_EQ(state.phase(), Phase::kReady);
  EXPECT_NE(state.backend_key().pid, 0u);
  EXPECT_EQ(state.transaction_status(), 'I');
}

TEST(SessionStateTest, ExtendedErrorSkipsToSync) {
  Executions obs;
  SessionState state(&obs);
  state.AssumeReady();
  auto frame = [](uint8_t type, std::initializer_list<uint8_t> body) {
    Bytes b;
    b.push_back(std::byte{type});
    uint32_t len = static_cast<uint32_t>(body.size() + 4);
    for (int i = 3; i >= 0; --i) b.push_back(static_cast<std::byte>(len >> (8 * i)));
    for (uint8_t x : body) b.push_back(std::byte{x});
    return b;
  };
  // Parse "" "SELECT 1/0" ; Bind ; Execute ; Execute ; Sync
  auto parse = frame('P', {0, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', '/', '0', 0, 0, 0});
  auto bind = frame('B', {0, 0, 0, 0, 0, 0, 0, 0});
  auto exec = frame('E', {0, 0, 0, 0, 0});
  auto sync = frame('S', {});
  std::string error;
  for (auto* m : {&parse, &bind, &exec, &exec, &sync}) {
    std::span<const std::byte> in(*m);
    Frame f;
    ASSERT_EQ(ParseFrame(Direction::kFrontend, false, &in, &f, &error), ParseState::kOk);
    ASSERT_TRUE(state.OnFrontend(f, 1, &error)) << error;
  }
  EXPECT_EQ(state.pending_requests(), 5u);
  Bytes be;
  AppendErrorResponse(&be, {.sqlstate = "22012", .message = "division by zero"});
  AppendReadyForQuery(&be, 'I');
  // ParseComplete and BindComplete first.
  Bytes acks = frame('1', {});
  auto bc = frame('2', {});
  acks.insert(acks.end(), bc.begin(), bc.end());
  acks.insert(acks.end(), be.begin(), be.end());
  std::span<const std::byte> in(acks);
  while (!in.empty()) {
    Frame f;
    ASSERT_EQ(ParseFrame(Direction::kBackend, false, &in, &f, &error), ParseState::kOk);
    ASSERT_TRUE(state.OnBackend(f, 2, &error)) << error;
  }
  ASSERT_EQ(obs.list.size(), 1u);  // the second Execute was skipped by the server
  EXPECT_EQ(obs.list[0].sqlstate, "22012");
  EXPECT_EQ(*obs.list[0].sql, "SELECT 1/0");
  EXPECT_EQ(state.pending_requests(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Vectors, GoldenTest, ::testing::ValuesIn(AllVectors()));

// ---- Malformed input ----

Bytes Raw(std::initializer_list<uint8_t> bytes) {
  Bytes b;
  for (uint8_t x : bytes) b.push_back(std::byte{x});
  return b;
}

TEST(ParseFrameTest, RejectsUnknownTypesAndBadLengths) {
  std::string error;
  Frame f;
  for (const Bytes& bad : {Raw({0x01, 0, 0, 0, 8, 1, 2, 3, 4}),    // unknown type
                           Raw({'Q', 0, 0, 0, 2}),                 // length < 4
                           Raw({'S', 0, 0, 0, 5, 0}),              // Sync must be 4
                           Raw({'D', 0, 0, 0x40, 0, 0}),           // Describe > small limit
                           Raw({'Q', 0x7f, 0xff, 0xff, 0xff})}) {  // > 1 GiB
    std::span<const std::byte> in(bad);
    EXPECT_EQ(ParseFrame(Direction::kFrontend, false, &in, &f, &error), ParseState::kInvalid);
    EXPECT_EQ(in.size(), bad.size()) << "input must not be consumed on error";
    EXPECT_FALSE(error.empty());
  }
}

TEST(ParseFrameTest, NeedMoreDataNeverConsumes) {
  Bytes q = Raw({'Q', 0, 0, 0, 9, 'S', 'E', 'L', 0});
  for (size_t n = 0; n < q.size(); ++n) {
    std::span<const std::byte> in(q.data(), n);
    Frame f;
    std::string error;
    EXPECT_EQ(ParseFrame(Direction::kFrontend, false, &in, &f, &error), ParseState::kNeedMoreData);
    EXPECT_EQ(in.size(), n);
  }
}

TEST(ParseBodyTest, RejectsTruncatedAndTrailingFields) {
  std::string error;
  QueryMessage q;
  EXPECT_FALSE(ParseQuery(Raw({'a', 'b'}), &q, &error));     // no NUL
  EXPECT_FALSE(ParseQuery(Raw({'a', 0, 'b'}), &q, &error));  // trailing
  BindMessage b;
  EXPECT_FALSE(ParseBind(Raw({0, 0, 0, 0, 0, 1, 0, 0, 0, 9}), &b, &error));  // value past end
  EXPECT_FALSE(ParseBind(Raw({0, 0, 0, 1, 0, 7, 0, 0, 0, 0}), &b, &error));  // format 7
  DataRowMessage d;
  EXPECT_FALSE(ParseDataRow(Raw({0xff, 0xff}), &d, &error));  // 65535 columns, no bytes
  EXPECT_TRUE(ParseDataRow(Raw({0, 1, 0xff, 0xff, 0xff, 0xff}), &d, &error));  // one NULL
  ASSERT_EQ(d.values.size(), 1u);
  EXPECT_FALSE(d.values[0].has_value());
  ReadyForQueryMessage z;
  EXPECT_FALSE(ParseReadyForQuery(Raw({'X'}), &z, &error));
}

// The messages no golden capture contains: each parses to its fields, and a truncated or
// overlong body is rejected.
TEST(ParseBodyTest, LessCommonMessages) {
  std::string error;
  FunctionCallMessage fc;
  // oid 1598, one format code (text), two args ("ab", NULL), result format binary.
  const Bytes b1 =
      Raw({0, 0, 0x06, 0x3e, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 'a', 'b', 0xff, 0xff, 0xff, 0xff, 0, 1});
  ASSERT_TRUE(ParseFunctionCall(b1, &fc, &error)) << error;
  EXPECT_EQ(fc.function_oid, 1598u);
  ASSERT_EQ(fc.arg_formats.size(), 1u);
  ASSERT_EQ(fc.args.size(), 2u);
  ASSERT_TRUE(fc.args[0].has_value());
  EXPECT_EQ(fc.args[0]->size(), 2u);
  EXPECT_FALSE(fc.args[1].has_value());
  EXPECT_EQ(fc.result_format, 1);
  EXPECT_FALSE(ParseFunctionCall(Raw({0, 0, 0x06, 0x3e, 0, 0, 0, 1, 0, 0, 0, 9}), &fc, &error));

  FunctionCallResponseMessage fr;
  const Bytes b2 = Raw({0, 0, 0, 1, 'x'});
  ASSERT_TRUE(ParseFunctionCallResponse(b2, &fr, &error)) << error;
  ASSERT_TRUE(fr.value.has_value());
  EXPECT_EQ(fr.value->size(), 1u);
  const Bytes b3 = Raw({0xff, 0xff, 0xff, 0xff});
  ASSERT_TRUE(ParseFunctionCallResponse(b3, &fr, &error));
  EXPECT_FALSE(fr.value.has_value());
  EXPECT_FALSE(ParseFunctionCallResponse(Raw({0, 0, 0, 2, 'x'}), &fr, &error));

  CloseMessage close;
  const Bytes b4 = Raw({'P', 'c', '1', 0});
  ASSERT_TRUE(ParseClose(b4, &close, &error)) << error;
  EXPECT_EQ(close.name, "c1");
  EXPECT_FALSE(ParseClose(Raw({'X', 'c', 0}), &close, &error));  // neither S nor P
  EXPECT_FALSE(ParseClose(Raw({'S', 'c'}), &close, &error));     // no NUL

  CopyFailMessage cf;
  const Bytes b5 = Raw({'n', 'o', 0});
  ASSERT_TRUE(ParseCopyFail(b5, &cf, &error)) << error;
  EXPECT_EQ(cf.message, "no");

  CopyResponseMessage both;
  const Bytes b6 = Raw({0, 0, 2, 0, 0, 0, 0});
  ASSERT_TRUE(ParseCopyResponse(b6, &both, &error)) << error;
  EXPECT_EQ(both.format, 0);
  EXPECT_EQ(both.column_formats.size(), 2u);
  EXPECT_FALSE(ParseCopyResponse(Raw({0, 0, 2, 0, 0}), &both, &error));  // one format missing

  NegotiateProtocolVersionMessage nv;
  const Bytes b7 = Raw({0, 0, 0, 0, 0, 0, 0, 1, '_', 'p', 'q', '_', '.', 'x', 0});
  ASSERT_TRUE(ParseNegotiateProtocolVersion(b7, &nv, &error)) << error;
  EXPECT_EQ(nv.newest_minor, 0u);
  ASSERT_EQ(nv.unrecognized.size(), 1u);
  EXPECT_EQ(nv.unrecognized[0], "_pq_.x");
  EXPECT_FALSE(ParseNegotiateProtocolVersion(Raw({0, 0, 0, 0, 0, 0, 0, 2, 'a', 0}), &nv, &error));

  StartupPacket sp;
  const Bytes b8 = Raw({0x04, 0xd2, 0x16, 0x30});
  ASSERT_TRUE(ParseStartupPacket(b8, &sp, &error)) << error;
  EXPECT_EQ(sp.kind, StartupKind::kGssEncRequest);
  EXPECT_FALSE(ParseStartupPacket(Raw({0x04, 0xd2, 0x16, 0x30, 0}), &sp, &error));

  // Flush, PortalSuspended and CloseComplete are frames with empty bodies in both directions.
  for (auto [dir, type] : {std::pair{Direction::kFrontend, fe::kFlush},
                           std::pair{Direction::kBackend, be::kPortalSuspended},
                           std::pair{Direction::kBackend, be::kCloseComplete},
                           std::pair{Direction::kBackend, be::kCopyBothResponse}}) {
    Bytes b = Raw({type, 0, 0, 0, 4});
    if (type == be::kCopyBothResponse) b = Raw({type, 0, 0, 0, 7, 0, 0, 0});
    std::span<const std::byte> in(b);
    Frame f;
    EXPECT_EQ(ParseFrame(dir, false, &in, &f, &error), ParseState::kOk)
        << static_cast<char>(type) << ": " << error;
    EXPECT_EQ(f.type, type);
    EXPECT_TRUE(in.empty());
  }
}

TEST(ParseBodyTest, RowsFromCommandTag) {
  EXPECT_EQ(RowsFromCommandTag("SELECT 42"), 42u);
  EXPECT_EQ(RowsFromCommandTag("INSERT 0 7"), 7u);
  EXPECT_EQ(RowsFromCommandTag("COPY 5"), 5u);
  EXPECT_FALSE(RowsFromCommandTag("CREATE TABLE").has_value());
  EXPECT_FALSE(RowsFromCommandTag("SELECT x").has_value());
}

// ---- Encoder round trips ----

TEST(EncoderTest, ErrorResponseRoundTrips) {
  Bytes out;
  AppendErrorResponse(&out,
                      {.severity = "FATAL", .sqlstate = "08P01", .message = "bad", .detail = "d"});
  std::span<const std::byte> in(out);
  Frame f;
  std::string error;
  ASSERT_EQ(ParseFrame(Direction::kBackend, false, &in, &f, &error), ParseState::kOk);
  EXPECT_TRUE(in.empty());
  ErrorMessage m;
  ASSERT_TRUE(ParseErrorOrNotice(f.body, &m, &error)) << error;
  EXPECT_EQ(m.Field('S'), "FATAL");
  EXPECT_EQ(m.Field('V'), "FATAL");
  EXPECT_EQ(m.Field('C'), "08P01");
  EXPECT_EQ(m.Field('M'), "bad");
  EXPECT_EQ(m.Field('D'), "d");
}

TEST(EncoderTest, SaslMechanismsAndRowsRoundTrip) {
  Bytes out;
  std::vector<std::string_view> mechs = {"SCRAM-SHA-256"};
  AppendAuthenticationSasl(&out, mechs);
  std::vector<FieldDescription> fields(2);
  fields[0].name = "id";
  fields[0].type_oid = 23;
  fields[1].name = "email";
  fields[1].type_oid = 25;
  AppendRowDescription(&out, fields);
  std::vector<std::optional<std::span<const std::byte>>> values = {
      std::span<const std::byte>(Raw({'4', '2'})), std::nullopt};
  Bytes v0 = Raw({'4', '2'});
  values[0] = std::span<const std::byte>(v0);
  AppendDataRow(&out, values);
  AppendCommandComplete(&out, "SELECT 1");
  AppendReadyForQuery(&out, 'T');
  std::span<const std::byte> in(out);
  std::string error;
  Frame f;
  std::vector<uint8_t> types;
  while (!in.empty()) {
    ASSERT_EQ(ParseFrame(Direction::kBackend, false, &in, &f, &error), ParseState::kOk);
    ASSERT_TRUE(ValidateMessage(Direction::kBackend, f, &error)) << error;
    types.push_back(f.type);
    if (f.type == be::kAuthentication) {
      AuthenticationMessage a;
      ASSERT_TRUE(ParseAuthentication(f.body, &a, &error));
      std::vector<std::string_view> got;
      ASSERT_TRUE(ParseSaslMechanisms(a.data, &got, &error));
      EXPECT_EQ(got, mechs);
    }
    if (f.type == be::kDataRow) {
      DataRowMessage d;
      ASSERT_TRUE(ParseDataRow(f.body, &d, &error));
      ASSERT_EQ(d.values.size(), 2u);
      EXPECT_EQ(d.values[0]->size(), 2u);
      EXPECT_FALSE(d.values[1].has_value());
    }
  }
  EXPECT_EQ(types, (std::vector<uint8_t>{'R', 'T', 'D', 'C', 'Z'}));
}

TEST(EncoderTest, StartupAndCancelRoundTrip) {
  StartupMessage m;
  m.protocol = kProtocolV3;
  m.params = {{"user", "alice"}, {"database", "orders"}};
  Bytes out;
  AppendStartupMessage(&out, m);
  AppendCancelRequest(&out, {1234, 0xdeadbeef});
  std::span<const std::byte> in(out);
  Frame f;
  std::string error;
  ASSERT_EQ(ParseFrame(Direction::kFrontend, true, &in, &f, &error), ParseState::kOk);
  StartupPacket p;
  ASSERT_TRUE(ParseStartupPacket(f.body, &p, &error));
  EXPECT_EQ(p.kind, StartupKind::kStartup);
  EXPECT_EQ(p.startup.Param("user"), "alice");
  EXPECT_EQ(p.startup.Param("database"), "orders");
  ASSERT_EQ(ParseFrame(Direction::kFrontend, true, &in, &f, &error), ParseState::kOk);
  ASSERT_TRUE(ParseStartupPacket(f.body, &p, &error));
  EXPECT_EQ(p.kind, StartupKind::kCancel);
  EXPECT_EQ(p.cancel.pid, 1234u);
  EXPECT_EQ(p.cancel.key, 0xdeadbeefu);
}

TEST(DecoderTest, StreamsLargeDataRowsWithoutBuffering) {
  // A 3 MB DataRow: the decoder must start forwarding before the whole row has arrived.
  Bytes big(3 << 20, std::byte{'x'});
  std::vector<std::optional<std::span<const std::byte>>> values = {std::span<const std::byte>(big)};
  Bytes row;
  AppendDataRow(&row, values);
  Recorder rec;
  StreamDecoder decoder(Direction::kBackend, &rec, 1 << 20);
  Bytes out;
  DecodeResult r = decoder.Decode(std::span<const std::byte>(row).first(64 * 1024), &out);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.consumed, 64u * 1024);
  EXPECT_EQ(out.size(), 64u * 1024);
  EXPECT_TRUE(decoder.streaming());
  EXPECT_EQ(rec.streamed, 1);
  r = decoder.Decode(std::span<const std::byte>(row).subspan(64 * 1024), &out);
  EXPECT_EQ(out, row);
  EXPECT_FALSE(decoder.streaming());
}

TEST(DecoderTest, AskForTheWholeMessageWhenItMustBeBuffered) {
  Bytes q;
  std::string sql(200000, 'a');
  AppendQuery(&q, sql);
  Recorder rec;
  StreamDecoder decoder(Direction::kFrontend, &rec, 1 << 20);
  Bytes out;
  DecodeResult r = decoder.Decode(std::span<const std::byte>(q).first(100), &out);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(r.need, q.size());
  EXPECT_TRUE(out.empty());
}

// Decoded once: every typed frontend message of every vector into one reused value, which
// agrees with the per-type parsers; unknown types and malformed bodies are refused.
TEST(ParseFrontendTest, EveryVectorMessageDecodesIntoItsMember) {
  FrontendMessage m;
  std::string error;
  size_t typed = 0;
  for (const auto& name : AllVectors()) {
    testing::Capture c = testing::LoadCapture(name);
    if (!c.has_startup) continue;  // a CancelRequest alone
    std::span<const std::byte> in(c.fe);
    in = in.subspan(c.fe_typed_offset);
    Frame f;
    ASSERT_EQ(ParseFrame(Direction::kFrontend, true, &in, &f, &error), ParseState::kOk);
    while (ParseFrame(Direction::kFrontend, false, &in, &f, &error) == ParseState::kOk) {
      ASSERT_TRUE(ParseFrontend(f, &m, &error)) << name << ": " << error;
      ++typed;
      EXPECT_EQ(m.type, f.type);
      if (f.type == fe::kQuery) {
        QueryMessage q;
        ASSERT_TRUE(ParseQuery(f.body, &q, &error));
        EXPECT_EQ(m.query.sql, q.sql);
      } else if (f.type == fe::kBind) {
        BindMessage b;
        ASSERT_TRUE(ParseBind(f.body, &b, &error));
        EXPECT_EQ(m.bind.statement, b.statement);
        EXPECT_EQ(m.bind.params.size(), b.params.size());
      } else if (f.type == fe::kParse) {
        ParseMessage p;
        ASSERT_TRUE(ParseParse(f.body, &p, &error));
        EXPECT_EQ(m.parse.name, p.name);
        EXPECT_EQ(m.parse.sql, p.sql);
      }
    }
  }
  EXPECT_GT(typed, 100u);
  Frame f{'z', 4, {}};
  EXPECT_FALSE(ParseFrontend(f, &m, &error));
  Bytes bad = Raw({'E', 0, 0, 0, 5, 'x'});  // Execute without its row limit
  std::span<const std::byte> in(bad);
  ASSERT_EQ(ParseFrame(Direction::kFrontend, false, &in, &f, &error), ParseState::kOk);
  EXPECT_FALSE(ParseFrontend(f, &m, &error));
}

}  // namespace
}  // namespace dbw::pg
