// libFuzzer target: a frontend byte stream through the statement gate. The first byte picks the
// session's settings (standard_conforming_strings, client encoding) and whether a setting change
// is in flight; the rest is read as a client's packets: the startup packet's settings, then
// every typed message through the coverage matrix, Query/Parse text through the gate's reading
// (encodings, both string modes, names), Parse deferral and each Bind judged with its values,
// FunctionCall, Bind and Close through name tracking, and each result through the default pack.
// Nothing may crash; every decision names a rule or allows.
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "userspace/gate/coverage.h"
#include "userspace/gate/statement_gate.h"
#include "userspace/protocol/postgres/parse.h"

namespace {

constexpr const char* kEncodings[] = {"UTF8",      "SJIS",    "BIG5",          "GBK",
                                      "UHC",       "GB18030", "JOHAB",         "LATIN1",
                                      "SQL_ASCII", "EUC_JP",  "MULE_INTERNAL", "SHIFT_JIS_2004",
                                      "WIN1252",   "KOI8R",   "UTF8",          "UTF8"};

void Check(const dbw::policy::Decision& d) {
  if (d.action != dbw::policy::Action::kAllow && d.rules.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dbw;
  static auto policy = *policy::LoadPolicy({}, policy::Mode::kEnforce);
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);

  sql::Analyzer analyzer;
  gate::StatementGate gate(&analyzer);
  gate.OnParameterStatus("standard_conforming_strings", (mode & 1) ? "off" : "on");
  gate.OnParameterStatus("client_encoding", kEncodings[(mode >> 1) & 15]);
  gate.OnReadyForQuery('I');
  const bool in_flight = (mode & 0x20) != 0;
  if (in_flight) gate.OnForwarded(gate.Facts("SET client_encoding TO 'BIG5'"), true, "");

  const policy::Target target{"t", (mode & 0x40) ? "prod" : "dev"};
  policy::Principal who;
  who.kind = (mode & 0x80) ? policy::PrincipalKind::kAgent : policy::PrincipalKind::kHuman;
  who.db_user = who.subject = "fuzz";
  const auto now = std::chrono::system_clock::now();
  const bool masked = (mode & 0x10) != 0;

  std::string error;
  bool startup = true;
  struct Parsed {
    std::shared_ptr<const sql::QueryFacts> facts;
    std::vector<uint32_t> types;
  };
  std::map<std::string, Parsed> parsed;
  while (!in.empty()) {
    pg::Frame f;
    if (pg::ParseFrame(pg::Direction::kFrontend, startup, &in, &f, &error) != pg::ParseState::kOk)
      break;
    if (startup) {
      pg::StartupPacket p;
      if (!pg::ParseStartupPacket(f.body, &p, &error)) break;
      if (p.kind != pg::StartupKind::kStartup) continue;
      startup = false;
      auto request = gate::ReadStartup(p.startup);
      if (!request.ok()) continue;
      for (const auto& s : request->settings)
        Check(
            gate.Decide(*policy, target, who, *gate.Facts(gate::SetStatementFor(s)), masked, now));
      continue;
    }
    gate::DoorVerdict door = gate::FrontendDoor(pg::Phase::kReady, f.type);
    if (door.door == gate::Door::kRefuse) continue;
    std::shared_ptr<const sql::QueryFacts> facts;
    std::string name;
    if (f.type == pg::fe::kQuery) {
      pg::QueryMessage m;
      if (pg::ParseQuery(f.body, &m, &error)) facts = gate.Facts(m.sql);
    } else if (f.type == pg::fe::kParse) {
      pg::ParseMessage m;
      if (pg::ParseParse(f.body, &m, &error)) {
        facts = gate.Facts(m.sql);
        name = std::string(m.name);
        // Deferred as the relay defers it: with its text, for the Binds that follow.
        auto deferred = gate.DecideDeferred(*policy, target, who, *facts, masked, now, true, m.sql);
        if (deferred) Check(*deferred);
        if (facts->statements.size() == 1) {
          auto copy = std::make_shared<sql::QueryFacts>(*facts);
          copy->statements.front().source = std::string(m.sql);
          facts = copy;
          parsed[name] = {copy, m.param_types};
        }
      }
    } else if (f.type == pg::fe::kFunctionCall) {
      pg::FunctionCallMessage m;
      if (pg::ParseFunctionCall(f.body, &m, &error))
        facts =
            gate.FunctionCallFacts(m.function_oid, (m.function_oid & 1) ? "pg_catalog.upper" : "");
    } else if (f.type == pg::fe::kBind) {
      pg::FrontendMessage m;
      if (pg::ParseFrontend(f, &m, &error)) {
        auto it = parsed.find(std::string(m.bind.statement));
        if (it != parsed.end()) {
          // A Bind judged with its values (text and binary, by the Parse's declared types).
          auto values = gate.BindValues(m.bind.param_formats, m.bind.params, it->second.types);
          auto bound = gate.BoundFacts(it->second.facts->statements.front(), values);
          Check(gate.Decide(*policy, target, who, *bound, masked, now, true));
          gate.OnBind(m.bind.portal, bound);
        } else {
          gate.OnBind(m.bind.portal, nullptr);
        }
      }
    } else if (f.type == pg::fe::kClose) {
      pg::CloseMessage m;
      if (pg::ParseClose(f.body, &m, &error)) gate.OnClose(m.kind, m.name);
    } else if (f.type == pg::fe::kSync) {
      gate.OnSyncPoint();
      gate.OnReadyForQuery('T');
    }
    if (!facts) continue;
    Check(gate.Decide(*policy, target, who, *facts, masked, now));
    bool simple = f.type != pg::fe::kParse;
    if (simple) gate.OnSyncPoint();
    gate.OnForwarded(facts, simple, name);
    gate.OnCompleted(*facts, facts->statements.size() / 2);
    if (simple) gate.OnReadyForQuery(f.body.size() % 2 ? 'I' : 'T');
  }
  return 0;
}
