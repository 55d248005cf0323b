// MessageStream tests: framing of captured chunks (whole, split at every offset, byte by byte),
// gaps inside and across messages, resynchronisation, overlaps, and bounded memory.
#include "userspace/tap/stream.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "tests/protocol/golden.h"
#include "userspace/protocol/postgres/parse.h"

namespace dbw::tap {
namespace {

using Bytes = std::vector<std::byte>;
using Events = std::vector<std::string>;
using pg::Direction;

// ---- Building wire bytes ----

void PutU32(Bytes* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<std::byte>(v >> shift));
}
void PutU16(Bytes* out, uint16_t v) {
  out->push_back(static_cast<std::byte>(v >> 8));
  out->push_back(static_cast<std::byte>(v));
}
void PutStr(Bytes* out, std::string_view s) {
  for (char c : s) out->push_back(static_cast<std::byte>(c));
}
void PutCStr(Bytes* out, std::string_view s) {
  PutStr(out, s);
  out->push_back(std::byte{0});
}
Bytes B(std::string_view s) {
  Bytes out;
  PutStr(&out, s);
  return out;
}
Bytes Cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes Slice(const Bytes& b, size_t from, size_t to) {
  return Bytes(b.begin() + static_cast<ptrdiff_t>(from), b.begin() + static_cast<ptrdiff_t>(to));
}

Bytes Msg(char type, const Bytes& body) {
  Bytes out;
  out.push_back(static_cast<std::byte>(type));
  PutU32(&out, static_cast<uint32_t>(body.size() + 4));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}
Bytes CStrBody(std::string_view s) {
  Bytes out;
  PutCStr(&out, s);
  return out;
}
Bytes Query(std::string_view sql) {
  return Msg('Q', CStrBody(sql));
}
Bytes CommandComplete(std::string_view tag) {
  return Msg('C', CStrBody(tag));
}
Bytes ReadyForQuery(char status) {
  return Msg('Z', B(std::string(1, status)));
}
Bytes ParameterStatus(std::string_view k, std::string_view v) {
  Bytes body;
  PutCStr(&body, k);
  PutCStr(&body, v);
  return Msg('S', body);
}
Bytes Auth(uint32_t code, const Bytes& data = {}) {
  Bytes body;
  PutU32(&body, code);
  body.insert(body.end(), data.begin(), data.end());
  return Msg('R', body);
}
Bytes KeyData(uint32_t pid, uint32_t key) {
  Bytes body;
  PutU32(&body, pid);
  PutU32(&body, key);
  return Msg('K', body);
}
Bytes RowDescription(std::initializer_list<std::string_view> names) {
  Bytes body;
  PutU16(&body, static_cast<uint16_t>(names.size()));
  int16_t col = 1;
  for (auto name : names) {
    PutCStr(&body, name);
    PutU32(&body, 16384);  // table oid
    PutU16(&body, static_cast<uint16_t>(col++));
    PutU32(&body, 25);  // text
    PutU16(&body, 0xffff);
    PutU32(&body, 0xffffffff);
    PutU16(&body, 0);
  }
  return Msg('T', body);
}
Bytes DataRow(std::initializer_list<std::string_view> values) {
  Bytes body;
  PutU16(&body, static_cast<uint16_t>(values.size()));
  for (auto v : values) {
    PutU32(&body, static_cast<uint32_t>(v.size()));
    PutStr(&body, v);
  }
  return Msg('D', body);
}
// A DataRow with one column of `n` bytes of `fill`.
Bytes BigDataRow(size_t n, char fill = 'x') {
  return DataRow({std::string(n, fill)});
}
Bytes Startup(std::initializer_list<std::pair<std::string_view, std::string_view>> params) {
  Bytes body;
  PutU32(&body, pg::kProtocolV3);
  for (auto [k, v] : params) {
    PutCStr(&body, k);
    PutCStr(&body, v);
  }
  body.push_back(std::byte{0});
  Bytes out;
  PutU32(&out, static_cast<uint32_t>(body.size() + 4));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}
Bytes CodePacket(uint32_t code, std::initializer_list<uint32_t> extra = {}) {
  Bytes out;
  PutU32(&out, static_cast<uint32_t>(8 + 4 * extra.size()));
  PutU32(&out, code);
  for (uint32_t v : extra) PutU32(&out, v);
  return out;
}

// ---- Recording ----

std::string Str(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// Records every callback as one string: P:<packet> E:<answer> M:<type>:<body>
// S:<type>:<length>:<complete> G:<bytes> R:<skipped>.
class Recorder : public MessageSink {
 public:
  void OnStartupPacket(std::span<const std::byte> packet) override {
    events.push_back("P:" + Str(packet));
  }
  void OnEncryptionResponse(uint8_t answer) override {
    events.push_back(std::string("E:") + static_cast<char>(answer));
  }
  void OnMessage(const pg::Frame& frame) override {
    EXPECT_EQ(frame.body.size() + 4, frame.length);
    events.push_back(std::string("M:") + static_cast<char>(frame.type) + ":" + Str(frame.body));
    bodies.push_back(frame.body);
  }
  void OnSkippedMessage(uint8_t type, uint32_t length, bool complete) override {
    events.push_back(std::string("S:") + static_cast<char>(type) + ":" + std::to_string(length) +
                     ":" + (complete ? "1" : "0"));
  }
  void OnGap(uint64_t bytes) override { events.push_back("G:" + std::to_string(bytes)); }
  void OnResync(uint64_t skipped) override { events.push_back("R:" + std::to_string(skipped)); }

  Events events;
  std::vector<std::span<const std::byte>> bodies;
};

// The events a correct stream reports for whole typed messages.
Events Expect(const std::vector<Bytes>& messages, std::string_view skip = {}) {
  Events out;
  for (const auto& m : messages) {
    const char type = static_cast<char>(m[0]);
    if (skip.find(type) != std::string_view::npos) {
      out.push_back(std::string("S:") + type + ":" + std::to_string(m.size() - 1) + ":1");
    } else {
      out.push_back(std::string("M:") + type + ":" + Str(std::span(m).subspan(5)));
    }
  }
  return out;
}
Events Join(std::initializer_list<Events> parts) {
  Events out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes Concat(const std::vector<Bytes>& messages) {
  Bytes out;
  for (const auto& m : messages) out.insert(out.end(), m.begin(), m.end());
  return out;
}

// Feeds `data` starting at stream position `pos`, cut at the given offsets.
void Feed(MessageStream* s, const Bytes& data, const std::vector<size_t>& cuts, uint64_t pos = 0) {
  size_t prev = 0;
  std::vector<size_t> all = cuts;
  all.push_back(data.size());
  for (size_t cut : all) {
    s->Add(pos + prev, std::span(data).subspan(prev, cut - prev));
    prev = cut;
  }
}
std::vector<size_t> EveryByte(size_t n) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < n; ++i) cuts.push_back(i);
  return cuts;
}

// ---- A psql-like session ----

struct Session {
  Bytes ssl = CodePacket(pg::kSslRequestCode);
  Bytes startup = Startup({{"user", "alice"},
                           {"database", "shop"},
                           {"application_name", "psql"},
                           {"client_encoding", "UTF8"}});
  std::vector<Bytes> fe_typed = {
      Msg('p', CStrBody("md5a3b1c9e0f2d4c6b8a0e1f3d5c7b9a1e3")),
      Query("SELECT id, name FROM t ORDER BY id;"),
      Query("BEGIN;"),
      Query("INSERT INTO t VALUES (4, 'dave');"),
      Query("COMMIT;"),
      Query("SELECT 1/0;"),
      Msg('X', {}),
  };
  std::vector<Bytes> be_typed = {
      Auth(5, B("salt")),
      Auth(0),
      ParameterStatus("server_version", "15.8"),
      ParameterStatus("client_encoding", "UTF8"),
      ParameterStatus("DateStyle", "ISO, MDY"),
      KeyData(4242, 0x5eed1234),
      ReadyForQuery('I'),
      RowDescription({"id", "name"}),
      DataRow({"1", "alice"}),
      DataRow({"2", "bob"}),
      DataRow({"3", "carol"}),
      CommandComplete("SELECT 3"),
      ReadyForQuery('I'),
      CommandComplete("BEGIN"),
      ReadyForQuery('T'),
      CommandComplete("INSERT 0 1"),
      ReadyForQuery('T'),
      CommandComplete("COMMIT"),
      ReadyForQuery('I'),
      Msg('E', Cat({B("SERROR"), B(std::string(1, '\0')), B("C22012"), B(std::string(1, '\0')),
                    B("Mdivision by zero"), B(std::string(2, '\0'))})),
      ReadyForQuery('I'),
  };

  Bytes Frontend() const { return Cat({ssl, startup, Concat(fe_typed)}); }
  Bytes Backend() const { return Cat({B("N"), Concat(be_typed)}); }
  Events FrontendEvents() const {
    return Join({{"P:" + Str(ssl), "P:" + Str(startup)}, Expect(fe_typed)});
  }
  Events BackendEvents(std::string_view skip = {}) const {
    return Join({{"E:N"}, Expect(be_typed, skip)});
  }
};

Events RunFrontend(const Bytes& data, const std::vector<size_t>& cuts) {
  Recorder rec;
  MessageStream s({.direction = Direction::kFrontend}, &rec);
  s.ExpectStartup();
  Feed(&s, data, cuts);
  EXPECT_FALSE(s.lost());
  EXPECT_EQ(s.expected_pos(), data.size());
  return rec.events;
}

Events RunBackend(const Bytes& data, const std::vector<size_t>& cuts, std::string_view skip = {}) {
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend, .skip_bodies = skip}, &rec);
  s.ExpectStartup();
  s.ExpectEncryptionResponse();
  Feed(&s, data, cuts);
  EXPECT_FALSE(s.lost());
  return rec.events;
}

TEST(MessageStreamTest, FrontendSessionWholeSplitAndByteByByte) {
  Session session;
  const Bytes data = session.Frontend();
  const Events want = session.FrontendEvents();
  EXPECT_EQ(RunFrontend(data, {}), want);
  for (size_t cut = 1; cut < data.size(); ++cut)
    ASSERT_EQ(RunFrontend(data, {cut}), want) << "split at " << cut;
  EXPECT_EQ(RunFrontend(data, EveryByte(data.size())), want);
}

TEST(MessageStreamTest, BackendSessionWholeSplitAndByteByByte) {
  Session session;
  const Bytes data = session.Backend();
  for (std::string_view skip : {"", "D", "DZCS"}) {
    const Events want = session.BackendEvents(skip);
    EXPECT_EQ(RunBackend(data, {}, skip), want);
    for (size_t cut = 1; cut < data.size(); ++cut)
      ASSERT_EQ(RunBackend(data, {cut}, skip), want) << "split at " << cut << " skip " << skip;
    EXPECT_EQ(RunBackend(data, EveryByte(data.size()), skip), want);
  }
}

TEST(MessageStreamTest, BackendSessionTwiceBackToBack) {
  Session session;
  const Bytes typed = Concat(session.be_typed);
  const Bytes twice = Cat({typed, typed});
  const Events want = Join({Expect(session.be_typed), Expect(session.be_typed)});
  for (size_t cut = 0; cut <= twice.size(); cut += 7) {
    Recorder rec;
    MessageStream s({.direction = Direction::kBackend}, &rec);
    s.ExpectStartup();
    Feed(&s, twice, cut == 0 ? std::vector<size_t>{} : std::vector<size_t>{cut});
    ASSERT_EQ(rec.events, want) << "split at " << cut;
    EXPECT_EQ(s.messages(), 2 * session.be_typed.size());
  }
}

// Whole messages inside one chunk are handed over from the caller's buffer; only messages
// that straddle chunks are copied.
TEST(MessageStreamTest, WholeMessagesAreNotCopied) {
  const Bytes q1 = Query("SELECT 1;");
  const Bytes q2 = Query("SELECT 2;");
  const Bytes data = Cat({q1, q2});
  Recorder rec;
  MessageStream s({.direction = Direction::kFrontend}, &rec);
  s.ExpectStartup();
  s.EnterTypedPhase();
  const size_t cut = q1.size() + 3;  // q2 straddles the chunks
  Feed(&s, data, {cut});
  ASSERT_EQ(rec.bodies.size(), 2u);
  EXPECT_EQ(rec.bodies[0].data(), data.data() + 5);
  const std::byte* q2_body = rec.bodies[1].data();
  EXPECT_FALSE(q2_body >= data.data() && q2_body < data.data() + data.size());
  EXPECT_EQ(rec.events, Expect({q1, q2}));
}

// The frontend's sink sees SSLRequest and tells the backend stream to expect the answer; the
// client then sends its StartupMessage in the clear and typed messages follow in the same chunk.
class SslFlowSink : public Recorder {
 public:
  void OnStartupPacket(std::span<const std::byte> packet) override {
    Recorder::OnStartupPacket(packet);
    pg::StartupPacket p;
    ASSERT_TRUE(pg::ParseStartupPacket(packet.subspan(4), &p, nullptr));
    if (p.kind == pg::StartupKind::kSslRequest) backend->ExpectEncryptionResponse();
    if (p.kind == pg::StartupKind::kStartup) {
      EXPECT_TRUE(frontend->typed_phase());  // switched before the callback
      frontend->EnterTypedPhase();           // and calling it again is harmless
    }
  }
  MessageStream* frontend = nullptr;
  MessageStream* backend = nullptr;
};

TEST(MessageStreamTest, SslRequestAnsweredNoThenStartupAndTypedMessages) {
  Session session;
  SslFlowSink fe_sink;
  Recorder be_sink;
  MessageStream fe({.direction = Direction::kFrontend}, &fe_sink);
  MessageStream be({.direction = Direction::kBackend}, &be_sink);
  fe_sink.frontend = &fe;
  fe_sink.backend = &be;
  fe.ExpectStartup();
  be.ExpectStartup();
  EXPECT_FALSE(fe.typed_phase());
  // Interleaved as the wire would have it: request, answer, then everything else.
  fe.Add(0, session.ssl);
  be.Add(0, B("N"));
  const Bytes rest = Cat({session.startup, Concat(session.fe_typed)});
  fe.Add(session.ssl.size(), rest);
  be.Add(1, Concat(session.be_typed));
  EXPECT_EQ(fe_sink.events, session.FrontendEvents());
  EXPECT_EQ(be_sink.events, session.BackendEvents());
  EXPECT_EQ(be.messages(), 1 + session.be_typed.size());
}

TEST(MessageStreamTest, EncryptionAnswerThatIsNotSNGIsDecodedAsTyped) {
  // A server without SSL support that answers with an ErrorResponse.
  const Bytes err =
      Msg('E', Cat({B("SFATAL"), B(std::string(1, '\0')), B("Mno ssl"), B(std::string(2, '\0'))}));
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  s.ExpectEncryptionResponse();  // before any data: synchronised at once
  EXPECT_FALSE(s.lost());
  s.Add(0, err);
  EXPECT_EQ(rec.events, Expect({err}));
}

TEST(MessageStreamTest, StartupPhaseKeepsGoingAfterCancelAndGssRequests) {
  const Bytes gss = CodePacket(pg::kGssEncRequestCode);
  const Bytes startup = Startup({{"user", "bob"}});
  const Bytes q = Query("SELECT 1;");
  const Bytes data = Cat({gss, startup, q});
  for (size_t cut = 1; cut < data.size(); ++cut) {
    Recorder rec;
    MessageStream s({.direction = Direction::kFrontend}, &rec);
    s.ExpectStartup();
    Feed(&s, data, {cut});
    ASSERT_EQ(rec.events, Join({{"P:" + Str(gss), "P:" + Str(startup)}, Expect({q})}))
        << "split at " << cut;
  }
  const Bytes cancel = CodePacket(pg::kCancelRequestCode, {4242, 99});
  Recorder rec;
  MessageStream s({.direction = Direction::kFrontend}, &rec);
  s.ExpectStartup();
  s.Add(0, cancel);
  EXPECT_EQ(rec.events, Events{"P:" + Str(cancel)});
  EXPECT_FALSE(s.typed_phase());
}

TEST(MessageStreamTest, MalformedStartupPacketLosesTheBoundaryThenResyncs) {
  Bytes bad;
  PutU32(&bad, 8);
  PutU32(&bad, 0x00020000);  // protocol 2.0: not spoken here
  const Bytes q = Query("SELECT 1;");
  Recorder rec;
  MessageStream s({.direction = Direction::kFrontend}, &rec);
  s.ExpectStartup();
  s.Add(0, bad);
  EXPECT_TRUE(s.lost());
  EXPECT_TRUE(rec.events.empty());
  s.Add(bad.size(), q);
  EXPECT_EQ(rec.events, Join({{"R:8"}, Expect({q})}));
  EXPECT_FALSE(s.lost());
}

// ---- Gaps ----

TEST(MessageStreamTest, GapInsideSkippedDataRowStaysInSync) {
  const Bytes row = BigDataRow(1000);
  const std::vector<Bytes> after = {DataRow({"7"}), CommandComplete("SELECT 2"),
                                    ReadyForQuery('I')};
  const Bytes t = RowDescription({"v"});
  const Bytes data = Cat({t, row, Concat(after)});
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend, .skip_bodies = "D"}, &rec);
  s.ExpectStartup();
  const size_t gap_from = t.size() + 100, gap_to = t.size() + 600;
  s.Add(0, Slice(data, 0, gap_from));
  s.Add(gap_to, Slice(data, gap_to, data.size()));
  EXPECT_EQ(rec.events, Join({Expect({t}),
                              {"G:500", "S:D:" + std::to_string(row.size() - 1) + ":0"},
                              Expect(after, "D")}));
  EXPECT_FALSE(s.lost());
  EXPECT_EQ(s.resyncs(), 0u);
  EXPECT_EQ(s.gap_bytes(), 500u);
  EXPECT_EQ(s.gaps(), 1u);
}

TEST(MessageStreamTest, GapInsideBufferedMessageSkipsItsRest) {
  const Bytes row = BigDataRow(300);
  const Bytes cc = CommandComplete("SELECT 1");
  const Bytes data = Cat({row, cc});
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  s.ExpectStartup();
  s.Add(0, Slice(data, 0, 50));
  s.Add(60, Slice(data, 60, 200));  // the gap, then more of the row
  EXPECT_EQ(rec.events, Events{"G:10"}) << "reported once, when its end passes";
  s.Add(200, Slice(data, 200, data.size()));
  EXPECT_EQ(rec.events,
            Join({{"G:10", "S:D:" + std::to_string(row.size() - 1) + ":0"}, Expect({cc})}));
}

TEST(MessageStreamTest, GapEndingExactlyAtMessageEndStaysInSync) {
  const Bytes row = BigDataRow(300);
  const Bytes cc = CommandComplete("SELECT 1");
  const Bytes z = ReadyForQuery('I');
  const Bytes data = Cat({row, cc, z});
  for (std::string_view skip : {"", "D"}) {
    Recorder rec;
    MessageStream s({.direction = Direction::kBackend, .skip_bodies = skip}, &rec);
    s.ExpectStartup();
    s.Add(0, Slice(data, 0, 40));
    s.Add(row.size(), Slice(data, row.size(), data.size()));
    EXPECT_EQ(rec.events, Join({{"G:" + std::to_string(row.size() - 40),
                                 "S:D:" + std::to_string(row.size() - 1) + ":0"},
                                Expect({cc, z})}));
    EXPECT_EQ(s.resyncs(), 0u);
  }
}

TEST(MessageStreamTest, GapSwallowingBoundaryResyncsOnNextChunk) {
  const Bytes a = CommandComplete("INSERT 0 1");
  const Bytes b = DataRow({"some", "row", "values"});
  const std::vector<Bytes> after = {DataRow({"x"}), CommandComplete("SELECT 2"),
                                    ReadyForQuery('T')};
  const Bytes data = Cat({a, b, Concat(after)});
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  s.ExpectStartup();
  s.Add(0, Slice(data, 0, 6));
  const size_t resume = a.size() + 9;  // inside b
  s.Add(resume, Slice(data, resume, data.size()));
  const size_t tail = b.size() - 9;
  EXPECT_EQ(rec.events,
            Join({{"G:" + std::to_string(resume - 6), "S:C:" + std::to_string(a.size() - 1) + ":0",
                   "R:" + std::to_string(tail)},
                  Expect(after)}));
  EXPECT_FALSE(s.lost());
  EXPECT_EQ(s.resync_skipped_bytes(), tail);
}

TEST(MessageStreamTest, GapAtBoundaryResyncsAtNextChunkStart) {
  const std::vector<Bytes> first = {Query("SELECT 1;"), Query("SELECT 2;")};
  const std::vector<Bytes> second = {Query("SELECT 3;"), Msg('S', {}), Query("SELECT 4;")};
  Recorder rec;
  MessageStream s({.direction = Direction::kFrontend}, &rec);
  s.ExpectStartup();
  s.EnterTypedPhase();
  const Bytes a = Concat(first);
  s.Add(0, a);
  s.Add(a.size() + 100, Concat(second));
  EXPECT_EQ(rec.events, Join({Expect(first), {"G:100", "R:0"}, Expect(second)}));
}

TEST(MessageStreamTest, FrontendSingleQueryAfterGapResyncsButBareSyncDoesNot) {
  Recorder rec;
  MessageStream s({.direction = Direction::kFrontend}, &rec);
  s.ExpectStartup();
  s.EnterTypedPhase();
  const Bytes sync = Msg('S', {});
  s.Add(50, sync);  // a 5-byte message alone is too little evidence
  EXPECT_TRUE(s.lost());
  const Bytes q = Query("SELECT now();");
  s.Add(200, q);  // a whole Query ending exactly at its chunk's end is accepted
  EXPECT_EQ(rec.events, Join({{"G:50", "G:145", "R:5"}, Expect({q})}));
  EXPECT_EQ(s.resync_skipped_bytes(), 5u) << "the Sync was discarded by the second gap";
  EXPECT_EQ(s.gap_bytes(), 195u);
}

TEST(MessageStreamTest, GapInStartupPhaseResyncsOnTypedMessages) {
  Session session;
  Recorder rec;
  MessageStream s({.direction = Direction::kFrontend}, &rec);
  s.ExpectStartup();
  s.Add(0, session.ssl);
  const Bytes typed = Concat(session.fe_typed);
  s.Add(session.ssl.size() + session.startup.size(), typed);  // the StartupMessage was lost
  EXPECT_EQ(rec.events,
            Join({{"P:" + Str(session.ssl), "G:" + std::to_string(session.startup.size()), "R:0"},
                  Expect(session.fe_typed)}));
  EXPECT_TRUE(s.typed_phase());
}

// ---- Resynchronisation ----

// A backend picked up in the middle of a DataRow whose text looks like a CommandComplete: the
// stream must start at the next real boundary and deliver nothing before it.
TEST(MessageStreamTest, MidStreamPickupStartsAtBoundaryWithoutGarbage) {
  // The row's second value holds "C\0\0\0\x0dSELECT 99\0" and, after it, a byte that is no type.
  Bytes decoy = Msg('C', CStrBody("SELECT 99"));
  decoy.push_back(std::byte{'#'});
  const Bytes row = DataRow({"abc", Str(decoy), "tail"});
  const std::vector<Bytes> after = {DataRow({"1", "one"}), DataRow({"2", "two"}),
                                    CommandComplete("SELECT 3"), ReadyForQuery('I')};
  const Bytes data = Cat({row, Concat(after)});
  for (size_t start = 1; start < row.size(); ++start) {
    Recorder rec;
    MessageStream s({.direction = Direction::kBackend}, &rec);
    EXPECT_TRUE(s.lost());
    s.Add(100000 + start, Slice(data, start, data.size()));  // first chunk: no gap reported
    ASSERT_EQ(rec.events, Join({{"R:" + std::to_string(row.size() - start)}, Expect(after)}))
        << "picked up at " << start;
    EXPECT_EQ(s.expected_pos(), 100000 + data.size());
    EXPECT_EQ(s.messages(), after.size());
  }
}

// The first plausible offset parses as a whole message but the next header after it is
// invalid; the resync must skip it and land on the real boundary, even when the bytes come
// one chunk at a time.
TEST(MessageStreamTest, ResyncIgnoresMisleadingOffset) {
  Bytes junk = B("xy");
  const Bytes decoy = Msg('C', CStrBody("UPDATE 1"));
  junk.insert(junk.end(), decoy.begin(), decoy.end());
  const Bytes invalid = B("\x7f\x01\x02");  // not a type, so the decoy's chain breaks
  const std::vector<Bytes> real = {CommandComplete("SELECT 1"), ReadyForQuery('I'),
                                   RowDescription({"a"})};
  const Bytes data = Cat({junk, invalid, Concat(real)});
  const size_t boundary = junk.size() + invalid.size();
  for (const auto& cuts : {std::vector<size_t>{}, std::vector<size_t>{boundary + 3},
                           std::vector<size_t>{junk.size() - 3, boundary}}) {
    Recorder rec;
    MessageStream s({.direction = Direction::kBackend}, &rec);
    Feed(&s, data, cuts);
    ASSERT_EQ(rec.events, Join({{"R:" + std::to_string(boundary)}, Expect(real)}))
        << "cuts " << cuts.size();
  }
  // Nor is the backend fooled by a chunk that ends right after the decoy: a lone message at the
  // end of a chunk is only evidence on the frontend, where writes are whole messages.
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  s.Add(0, Slice(data, 0, junk.size()));
  EXPECT_TRUE(s.lost());
  EXPECT_TRUE(rec.events.empty());
}

// Two headers that chain are not enough when a body does not parse: the decoy CommandComplete
// has no terminating NUL, so the chain from it is rejected although NoData follows it.
TEST(MessageStreamTest, ResyncChecksBodiesNotJustHeaders) {
  const Bytes decoy = Cat({Msg('C', B("abcd")), Msg('n', {}), B("\xff")});
  const std::vector<Bytes> real = {RowDescription({"a"}), DataRow({"1"}),
                                   CommandComplete("SELECT 1"), ReadyForQuery('I')};
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  s.Add(0, Cat({decoy, Concat(real)}));
  EXPECT_EQ(rec.events, Join({{"R:" + std::to_string(decoy.size())}, Expect(real)}));
}

// A decoy header near the end of a damaged chunk claims a 2000-byte DataRow, so the earliest
// candidate must wait for data. A next chunk that tiles exactly into valid messages is taken at
// once; one that does not is held until the decoy is settled, then replayed in full.
TEST(MessageStreamTest, WaitingDecoyDoesNotHoldBackNextChunk) {
  Bytes damaged = B("\xff\xff\xff");
  const Bytes decoy = {std::byte{'D'}, std::byte{0}, std::byte{0}, std::byte{0x07},
                       std::byte{0xd0}};
  damaged.insert(damaged.end(), decoy.begin(), decoy.end());
  const std::vector<Bytes> real = {CommandComplete("SELECT 1"), ReadyForQuery('I')};
  {
    Recorder rec;
    MessageStream s({.direction = Direction::kBackend}, &rec);
    s.Add(0, damaged);
    s.Add(damaged.size(), Concat(real));
    EXPECT_EQ(rec.events, Join({{"R:" + std::to_string(damaged.size())}, Expect(real)}));
  }
  std::vector<Bytes> rows;
  for (int i = 0; i < 200; ++i) rows.push_back(DataRow({"row " + std::to_string(i)}));  // > 2000 B
  const Bytes more = Cat({Concat(real), Concat(rows)});
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  s.Add(0, damaged);
  s.Add(damaged.size(), Slice(more, 0, 12));  // ends inside ReadyForQuery
  EXPECT_TRUE(rec.events.empty());
  uint64_t pos = damaged.size() + 12;
  for (size_t at = 12; at < more.size(); at += 100) {  // cut regardless of boundaries
    const size_t end = std::min(more.size(), at + 100);
    s.Add(pos, Slice(more, at, end));
    pos += end - at;
  }
  EXPECT_EQ(rec.events,
            Join({{"R:" + std::to_string(damaged.size())}, Expect(real), Expect(rows)}));
  EXPECT_FALSE(s.lost());
}

TEST(MessageStreamTest, ReadyForQueryAloneIsEnoughToResync) {
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  const Bytes z = ReadyForQuery('E');
  const Bytes data = Cat({B("\x01\x02garbage"), z, B("Z")});  // a partial header follows
  s.Add(0, data);
  EXPECT_EQ(rec.events, Join({{"R:9"}, Expect({z})}));
  EXPECT_FALSE(s.lost());
  EXPECT_EQ(s.expected_pos(), data.size());
}

TEST(MessageStreamTest, InvalidHeaderWhileSynchronisedGoesLostAndResyncs) {
  const std::vector<Bytes> before = {CommandComplete("SELECT 1"), ReadyForQuery('I')};
  const std::vector<Bytes> after = {RowDescription({"a"}), DataRow({"1"}),
                                    CommandComplete("SELECT 1"), ReadyForQuery('I')};
  const Bytes noise = B("\xff\xfe\xfd\xfc\xfb\xfa");
  const Bytes data = Cat({Concat(before), noise, Concat(after)});
  for (size_t cut = 1; cut < data.size(); ++cut) {
    Recorder rec;
    MessageStream s({.direction = Direction::kBackend}, &rec);
    s.ExpectStartup();
    Feed(&s, data, {cut});
    ASSERT_EQ(rec.events, Join({Expect(before), {"R:6"}, Expect(after)})) << "split at " << cut;
    EXPECT_EQ(s.resyncs(), 1u);
  }
}

TEST(MessageStreamTest, LostWindowIsBoundedAndSkippedBytesCounted) {
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  // 1 MiB that never frames: 0xff is no message type, and "D\0\0\x10\0" claims 4 KiB DataRows
  // that never parse, keeping candidates pending until their data arrives.
  Bytes junk(4096, std::byte{0xff});
  const Bytes pending_bait = B(std::string("D\0\0\x10\0", 5));
  for (size_t i = 0; i + pending_bait.size() <= 2048; i += 97)
    std::copy(pending_bait.begin(), pending_bait.end(), junk.begin() + static_cast<ptrdiff_t>(i));
  uint64_t pos = 0;
  size_t peak = 0;
  for (int i = 0; i < 256; ++i) {
    s.Add(pos, junk);
    pos += junk.size();
    peak = std::max(peak, s.buffered_bytes());
    ASSERT_TRUE(s.lost()) << "after chunk " << i << ": " << ::testing::PrintToString(rec.events);
  }
  EXPECT_LE(peak, MessageStream::kLostWindow + 64);
  const std::vector<Bytes> real = {CommandComplete("SELECT 1"), ReadyForQuery('I')};
  s.Add(pos, Concat(real));
  EXPECT_EQ(rec.events, Join({{"R:" + std::to_string(pos)}, Expect(real)}));
  EXPECT_EQ(s.resync_skipped_bytes(), pos);
  EXPECT_EQ(s.buffered_bytes(), 0u) << "the window is released after a resync";
}

TEST(MessageStreamTest, GapWhileLostDiscardsTheWindow) {
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  // A candidate that would complete with the next bytes, had they not been lost.
  const Bytes cc = CommandComplete("SELECT 12345");
  s.Add(0, Cat({B("\xff\xff"), Slice(cc, 0, 8)}));
  EXPECT_TRUE(s.lost());
  const std::vector<Bytes> real = {DataRow({"1"}), ReadyForQuery('I')};
  s.Add(100, Concat(real));
  EXPECT_EQ(rec.events, Join({{"G:90", "R:10"}, Expect(real)}));
}

// ---- Overlaps ----

TEST(MessageStreamTest, OverlappingChunksAreTrimmed) {
  Session session;
  const Bytes data = Concat(session.be_typed);
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend}, &rec);
  s.ExpectStartup();
  s.Add(0, Slice(data, 0, 40));
  s.Add(30, Slice(data, 30, 100));  // 10 bytes repeated
  s.Add(50, Slice(data, 50, 90));   // wholly repeated
  s.Add(100, Slice(data, 100, 100));
  s.Add(60, Slice(data, 60, data.size()));  // 40 bytes repeated
  EXPECT_EQ(rec.events, Expect(session.be_typed));
  EXPECT_EQ(s.overlap_bytes(), 10u + 40u + 40u);
  EXPECT_EQ(s.gap_bytes(), 0u);
  EXPECT_EQ(s.expected_pos(), data.size());
}

// ---- Large messages and memory ----

// A 50 MB DataRow streamed in 64 KiB chunks costs no buffer, whether skipped by type or by size.
TEST(MessageStreamTest, FiftyMegabyteDataRowStreamsWithBoundedMemory) {
  constexpr uint32_t kValue = 50u << 20;
  Bytes header = {std::byte{'D'}};
  PutU32(&header, 4 + 2 + 4 + kValue);
  PutU16(&header, 1);
  PutU32(&header, kValue);
  const Bytes tail = Cat({CommandComplete("SELECT 1"), ReadyForQuery('I')});
  const Bytes fill(64 * 1024, std::byte{'x'});
  for (std::string_view skip : {"D", ""}) {
    Recorder rec;
    MessageStream s({.direction = Direction::kBackend, .max_body = 1 << 20, .skip_bodies = skip},
                    &rec);
    s.ExpectStartup();
    uint64_t pos = 0;
    size_t peak = 0;
    // The header straddles the first two chunks.
    s.Add(pos, Slice(header, 0, 3));
    s.Add(3, Slice(header, 3, header.size()));
    pos = header.size();
    uint64_t left = kValue;
    while (left > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left, fill.size()));
      s.Add(pos, std::span(fill).first(n));
      pos += n;
      left -= n;
      peak = std::max(peak, s.buffered_bytes());
    }
    s.Add(pos, tail);
    EXPECT_EQ(rec.events, Join({{"S:D:" + std::to_string(header.size() - 1 + kValue) + ":1"},
                                Expect({CommandComplete("SELECT 1"), ReadyForQuery('I')})}));
    EXPECT_LE(peak, 64u) << "skip_bodies=" << skip;
    EXPECT_EQ(s.skipped_messages(), 1u);
  }
}

TEST(MessageStreamTest, BodyLargerThanMaxBodyIsSkippedNotBuffered) {
  const Bytes big = Query(std::string(5000, 'q'));
  const Bytes small = Query("SELECT 1;");
  const Bytes data = Cat({big, small});
  for (size_t cut = 1; cut < data.size(); cut += 13) {
    Recorder rec;
    MessageStream s({.direction = Direction::kFrontend, .max_body = 4096}, &rec);
    s.ExpectStartup();
    s.EnterTypedPhase();
    Feed(&s, data, {cut});
    ASSERT_EQ(rec.events, Join({{"S:Q:5005:1"}, Expect({small})})) << "split at " << cut;
    EXPECT_LT(s.buffered_bytes(), 4096u);
  }
}

// ---- Counters and misuse ----

TEST(MessageStreamTest, CountersAddUp) {
  const std::vector<Bytes> a = {RowDescription({"a"}), DataRow({"1"}), DataRow({"2"})};
  const Bytes row = BigDataRow(500);
  const std::vector<Bytes> b = {CommandComplete("SELECT 3"), ReadyForQuery('I')};
  const Bytes data = Cat({Concat(a), row, Concat(b)});
  const size_t row_at = Concat(a).size();
  Recorder rec;
  MessageStream s({.direction = Direction::kBackend, .skip_bodies = "D"}, &rec);
  s.ExpectStartup();
  s.Add(0, Slice(data, 0, row_at + 20));
  s.Add(row_at + 10, Slice(data, row_at + 10, row_at + 100));   // 10 bytes repeated
  s.Add(row_at + 300, Slice(data, row_at + 300, data.size()));  // 200 bytes lost
  s.Add(data.size() + 7, Concat(b));                            // 7 lost at a boundary
  EXPECT_EQ(s.gaps(), 2u);
  EXPECT_EQ(s.gap_bytes(), 207u);
  EXPECT_EQ(s.overlap_bytes(), 10u);
  EXPECT_EQ(s.resyncs(), 1u);
  EXPECT_EQ(s.resync_skipped_bytes(), 0u);
  // T, D, D, the damaged row, C, Z, then C, Z again.
  EXPECT_EQ(s.messages(), 8u);
  EXPECT_EQ(s.skipped_messages(), 3u);
  EXPECT_EQ(rec.events.size(), 8u + 2u + 1u);
}

class ReentrantSink : public Recorder {
 public:
  void OnMessage(const pg::Frame& frame) override {
    Recorder::OnMessage(frame);
    stream->Add(stream->expected_pos(), data);  // not allowed: ignored
  }
  MessageStream* stream = nullptr;
  Bytes data = Query("SELECT 'injected';");
};

TEST(MessageStreamTest, ReentrantAddIsIgnored) {
  ReentrantSink rec;
  MessageStream s({.direction = Direction::kFrontend}, &rec);
  rec.stream = &s;
  s.ExpectStartup();
  s.EnterTypedPhase();
  const Bytes q = Cat({Query("SELECT 1;"), Query("SELECT 2;")});
  s.Add(0, q);
  EXPECT_EQ(rec.events, Expect({Query("SELECT 1;"), Query("SELECT 2;")}));
  EXPECT_EQ(s.expected_pos(), q.size());
}

// ---- Golden captures from real clients ----

struct Reference {
  Events events;
  std::vector<size_t> offsets;    // where each typed message starts, relative to the typed part
  std::vector<pg::Frame> frames;  // the typed messages, pointing into the framed buffer
};

// Frames a capture with the protocol module's own parser.
Reference ReferenceFraming(const Bytes& data, size_t typed_offset, Direction dir, size_t answers) {
  Reference ref;
  std::span<const std::byte> in(data);
  for (size_t i = 0; i < answers; ++i) {
    ref.events.push_back(std::string("E:") + static_cast<char>(in[0]));
    in = in.subspan(1);
  }
  while (data.size() - in.size() < typed_offset) {
    pg::Frame f;
    EXPECT_EQ(pg::ParseFrame(dir, true, &in, &f, nullptr), pg::ParseState::kOk);
    ref.events.push_back(
        "P:" + Str(std::span(data).subspan(data.size() - in.size() - f.length, f.length)));
  }
  while (!in.empty()) {
    ref.offsets.push_back(data.size() - in.size() - typed_offset);
    pg::Frame f;
    const pg::ParseState st = pg::ParseFrame(dir, false, &in, &f, nullptr);
    EXPECT_EQ(st, pg::ParseState::kOk);
    if (st != pg::ParseState::kOk) break;
    ref.frames.push_back(f);
    ref.events.push_back(std::string("M:") + static_cast<char>(f.type) + ":" + Str(f.body));
  }
  return ref;
}

// Where the typed messages of a frontend capture begin: after its StartupMessage.
size_t FrontendTypedStart(const pg::testing::Capture& c) {
  if (!c.has_startup) return c.fe.size();
  uint32_t length = 0;
  for (size_t i = 0; i < 4; ++i)
    length = (length << 8) | static_cast<uint8_t>(c.fe[c.fe_typed_offset + i]);
  return c.fe_typed_offset + length;
}

class GoldenStreamTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenStreamTest, FramesLikeTheParserWholeSplitAndByteByByte) {
  const pg::testing::Capture c = pg::testing::LoadCapture(GetParam());
  ASSERT_FALSE(c.fe.empty());
  const size_t fe_typed = FrontendTypedStart(c);
  const Reference fe_ref = ReferenceFraming(c.fe, fe_typed, Direction::kFrontend, 0);
  const Reference be_ref =
      ReferenceFraming(c.be, c.be_typed_offset, Direction::kBackend, c.be_typed_offset);
  ASSERT_FALSE(HasFailure());
  auto run = [&](const Bytes& data, Direction dir, const std::vector<size_t>& cuts) {
    Recorder rec;
    MessageStream s({.direction = dir}, &rec);
    s.ExpectStartup();
    if (dir == Direction::kBackend && c.be_typed_offset > 0) s.ExpectEncryptionResponse();
    Feed(&s, data, cuts);
    EXPECT_FALSE(s.lost());
    EXPECT_EQ(s.resyncs(), 0u);
    return rec.events;
  };
  for (auto [data, dir, ref] : {std::tuple{&c.fe, Direction::kFrontend, &fe_ref},
                                std::tuple{&c.be, Direction::kBackend, &be_ref}}) {
    EXPECT_EQ(run(*data, dir, {}), ref->events);
    for (size_t cut = 1; cut < data->size(); ++cut)
      ASSERT_EQ(run(*data, dir, {cut}), ref->events) << "split at " << cut;
    EXPECT_EQ(run(*data, dir, EveryByte(data->size())), ref->events);
  }
}

// Compares what a stream delivers with the reference frames as it goes (the pickup test runs
// tens of thousands of streams; recording strings would dominate its time).
class FrameChecker : public MessageSink {
 public:
  explicit FrameChecker(const std::vector<pg::Frame>* ref) : ref_(ref) {}
  void OnStartupPacket(std::span<const std::byte>) override { Fail("startup packet"); }
  void OnEncryptionResponse(uint8_t) override { Fail("encryption response"); }
  void OnMessage(const pg::Frame& frame) override {
    if (resyncs == 0) return Fail("message before resync");
    if (next >= ref_->size()) return Fail("message past the end");
    const pg::Frame& want = (*ref_)[next++];
    if (frame.type != want.type || frame.length != want.length ||
        !std::equal(frame.body.begin(), frame.body.end(), want.body.begin(), want.body.end()))
      Fail("message " + std::to_string(next - 1) + " differs");
  }
  void OnSkippedMessage(uint8_t, uint32_t, bool) override { Fail("skipped message"); }
  void OnGap(uint64_t) override { Fail("gap"); }
  void OnResync(uint64_t skipped_bytes) override {
    if (resyncs++ > 0) Fail("second resync");
    skipped = skipped_bytes;
  }
  void Fail(const std::string& what) {
    if (error.empty()) error = what;
  }

  size_t next = 0;  // set to the index of the first expected message
  int resyncs = 0;
  uint64_t skipped = 0;
  std::string error;

 private:
  const std::vector<pg::Frame>* ref_;
};

// Picked up at every offset of the typed part (followed by a little more traffic), a stream resyncs
// exactly at the first real boundary and then reports exactly the parser's messages from there on:
// nothing garbled, nothing invented. Chunks: the whole rest at once, or 1000-byte pieces cut
// regardless of message boundaries.
TEST_P(GoldenStreamTest, PickupAtEveryOffsetResumesAtNextBoundary) {
  const pg::testing::Capture c = pg::testing::LoadCapture(GetParam());
  const size_t fe_typed = FrontendTypedStart(c);
  for (auto [data, typed, dir] : {std::tuple{&c.fe, fe_typed, Direction::kFrontend},
                                  std::tuple{&c.be, c.be_typed_offset, Direction::kBackend}}) {
    if (typed >= data->size()) continue;
    const Bytes filler =
        dir == Direction::kFrontend ? Query("SELECT 'filler';") : DataRow({"filler row"});
    Bytes body = Slice(*data, typed, data->size());
    const size_t captured = body.size();
    while (body.size() < captured + 256)  // the last message is not alone at the end
      body.insert(body.end(), filler.begin(), filler.end());
    const Reference ref = ReferenceFraming(body, 0, dir, 0);
    ASSERT_FALSE(HasFailure());
    for (size_t chunk : {body.size(), size_t{1000}}) {
      for (size_t start = 0; start < captured; ++start) {
        const auto next = std::lower_bound(ref.offsets.begin(), ref.offsets.end(), start);
        FrameChecker check(&ref.frames);
        check.next = static_cast<size_t>(next - ref.offsets.begin());
        MessageStream s({.direction = dir}, &check);
        for (size_t at = start; at < body.size(); at += chunk)
          s.Add(at, std::span(body).subspan(at, std::min(chunk, body.size() - at)));
        SCOPED_TRACE(GetParam() + " picked up at " + std::to_string(start) + ", chunks of " +
                     std::to_string(chunk));
        ASSERT_EQ(check.error, "");
        ASSERT_EQ(check.resyncs, 1);
        ASSERT_EQ(check.skipped, *next - start);
        ASSERT_EQ(check.next, ref.frames.size());
        ASSERT_FALSE(s.lost());
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Captures, GoldenStreamTest, ::testing::ValuesIn(pg::testing::AllVectors()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace dbw::tap
