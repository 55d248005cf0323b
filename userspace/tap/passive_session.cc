// PassiveSession: startup, statements and end of one tapped connection, as audit events.
#include "userspace/tap/passive_session.h"

#include <chrono>
#include <fstream>

#include "userspace/identity/peer_process.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/tap/metrics.h"

namespace dbw::tap {
namespace {

// DataRow and CopyData bodies are never needed: the tap counts rows, it does not read them.
constexpr std::string_view kBackendSkip = "Dd";
constexpr std::string_view kFrontendSkip = "d";

bool LooksLikeStartup(std::span<const std::byte> data) {
  if (data.size() < 8) return false;
  auto u32 = [&](size_t at) {
    return (static_cast<uint32_t>(data[at]) << 24) | (static_cast<uint32_t>(data[at + 1]) << 16) |
           (static_cast<uint32_t>(data[at + 2]) << 8) | static_cast<uint32_t>(data[at + 3]);
  };
  uint32_t len = u32(0);
  uint32_t code = u32(4);
  return len >= 8 && len <= 10000 &&
         (code == pg::kProtocolV3 || code == pg::kSslRequestCode ||
          code == pg::kGssEncRequestCode || code == pg::kCancelRequestCode);
}

}  // namespace

class PassiveSession::FrontendSink : public MessageSink {
 public:
  explicit FrontendSink(PassiveSession* s) : s_(s) {}
  void OnStartupPacket(std::span<const std::byte> packet) override { s_->OnStartupPacket(packet); }
  void OnEncryptionResponse(uint8_t) override {}
  void OnMessage(const pg::Frame& frame) override { s_->OnFrontendMessage(frame); }
  void OnSkippedMessage(uint8_t type, uint32_t length, bool) override {
    s_->state_.OnFrontendStreamed(type, length, s_->now_ns_);
  }
  void OnGap(uint64_t bytes) override { s_->ctx_.metrics->Gap(bytes); }
  void OnResync(uint64_t skipped) override { s_->ctx_.metrics->resyncs->Add(); }

 private:
  PassiveSession* s_;
};

class PassiveSession::BackendSink : public MessageSink {
 public:
  explicit BackendSink(PassiveSession* s) : s_(s) {}
  void OnStartupPacket(std::span<const std::byte>) override {}
  void OnEncryptionResponse(uint8_t answer) override {
    if (answer == 'S' || answer == 'G') {
      // TLS or GSS encryption from here on: ciphertext, nothing more to decode.
      s_->decoding_ = false;
      s_->end_note_ = answer == 'S' ? "encrypted (TLS): statements not visible to the tap"
                                    : "encrypted (GSSAPI): statements not visible to the tap";
      s_->ctx_.metrics->encrypted_sessions->Add();
      s_->Started();
    }
  }
  void OnMessage(const pg::Frame& frame) override { s_->OnBackendMessage(frame); }
  void OnSkippedMessage(uint8_t type, uint32_t length, bool) override {
    // A message whose body was lost is still counted where the state machine allows it.
    if (type == pg::be::kDataRow || type == pg::be::kCopyData)
      s_->state_.OnBackendStreamed(type, length, s_->now_ns_);
  }
  void OnGap(uint64_t bytes) override { s_->ctx_.metrics->Gap(bytes); }
  void OnResync(uint64_t skipped) override { s_->ctx_.metrics->resyncs->Add(); }

 private:
  PassiveSession* s_;
};

PassiveSession::PassiveSession(SessionContext ctx, SessionIdentity identity, uint32_t max_body)
    : ctx_(ctx),
      identity_(std::move(identity)),
      state_(this),
      gate_(ctx.analyzer),
      max_body_(max_body) {
  fe_sink_ = std::make_unique<FrontendSink>(this);
  be_sink_ = std::make_unique<BackendSink>(this);
  NewStreams();
  principal_.client_addr = identity_.client_addr;
  ctx_.metrics->sessions_total->Add();
  ctx_.metrics->sessions_active->Add(1);
}

void PassiveSession::NewStreams() {
  fe_ = std::make_unique<MessageStream>(
      StreamOptions{pg::Direction::kFrontend, max_body_, kFrontendSkip}, fe_sink_.get());
  be_ = std::make_unique<MessageStream>(
      StreamOptions{pg::Direction::kBackend, max_body_, kBackendSkip}, be_sink_.get());
}

void PassiveSession::Rebase() {
  if (closed_ || !decoding_) return;
  NewStreams();
  seen_frontend_ = seen_backend_ = true;
  ctx_.metrics->resyncs->Add();
}

PassiveSession::~PassiveSession() {
  if (!closed_) ctx_.metrics->sessions_active->Add(-1);
}

void PassiveSession::Add(bool frontend, uint64_t pos, std::span<const std::byte> data,
                         uint64_t now_ns) {
  now_ns_ = now_ns;
  if (!decoding_ || closed_) return;
  if (frontend && !seen_frontend_) {
    // A startup packet's length and code (8 bytes) tell a new connection from one picked up
    // mid-way; a first chunk shorter than that (never seen from real clients) waits for more.
    if (pos == head_.size() && head_.size() + data.size() < 8) {
      head_.insert(head_.end(), data.begin(), data.end());
      return;
    }
    seen_frontend_ = true;
    if (pos == 0 && head_.empty() && !data.empty() && data[0] == std::byte{0x16}) {
      // A TLS ClientHello first (PostgreSQL 17's sslnegotiation=direct): ciphertext.
      decoding_ = false;
      end_note_ = "encrypted (direct TLS): statements not visible to the tap";
      ctx_.metrics->encrypted_sessions->Add();
      Started();
      return;
    }
    if (!head_.empty()) {
      std::vector<std::byte> joined = std::move(head_);
      head_.clear();
      if (pos == joined.size()) {
        joined.insert(joined.end(), data.begin(), data.end());
        pos = 0;
      }
      Begin(pos == 0 && LooksLikeStartup(joined));
      if (pos != 0) fe_->Add(0, joined);
      fe_->Add(pos, pos == 0 ? std::span<const std::byte>(joined) : data);
      return;
    }
    Begin(pos == 0 && LooksLikeStartup(data));
  }
  if (!frontend && !seen_frontend_ && !seen_backend_) {
    // Server bytes before any client bytes: an old connection.
    seen_frontend_ = true;
    Begin(false);
  }
  if (!frontend) seen_backend_ = true;
  (frontend ? fe_ : be_)->Add(pos, data);
}

// Fresh: seen from the client's first byte. Otherwise picked up mid-way: the startup happened
// before the capture began, and both streams start lost and resynchronise on a whole message.
void PassiveSession::Begin(bool fresh) {
  if (fresh) {
    fe_->ExpectStartup();
    be_->ExpectStartup();
    return;
  }
  picked_up_ = true;
  state_.AssumeReady();
  // Its startup settings went by unseen: read its text with the defaults from here on.
  gate_.OnReadyForQuery('I');
  FillFromBackendTitle();
}

void PassiveSession::OnStartupPacket(std::span<const std::byte> packet) {
  pg::StartupPacket p;
  std::string error;
  if (packet.size() < 4 || !pg::ParseStartupPacket(packet.subspan(4), &p, &error)) {
    ctx_.metrics->decode_errors->Add();
    return;
  }
  switch (p.kind) {
    case pg::StartupKind::kSslRequest:
    case pg::StartupKind::kGssEncRequest:
      be_->ExpectEncryptionResponse();
      return;
    case pg::StartupKind::kCancel:
      decoding_ = false;  // a cancel connection carries no session
      end_note_ = "cancel request";
      return;
    case pg::StartupKind::kStartup:
      state_.OnStartup(p.startup);
      principal_.db_user = state_.user();
      principal_.database = state_.database();
      principal_.application_name = state_.application_name();
      fe_->EnterTypedPhase();
      return;
  }
}

void PassiveSession::OnFrontendMessage(const pg::Frame& frame) {
  std::string error;
  if (!state_.OnFrontend(frame, now_ns_, &error)) ctx_.metrics->decode_errors->Add();
}

void PassiveSession::OnBackendMessage(const pg::Frame& frame) {
  std::string error;
  if (!state_.OnBackend(frame, now_ns_, &error)) ctx_.metrics->decode_errors->Add();
  if (frame.type == pg::be::kParameterStatus) {
    pg::ParameterStatusMessage m;
    if (pg::ParseParameterStatus(frame.body, &m, &error)) gate_.OnParameterStatus(m.name, m.value);
  } else if (frame.type == pg::be::kReadyForQuery) {
    gate_.OnReadyForQuery(state_.transaction_status());
  }
  if (frame.type == pg::be::kReadyForQuery && !started_) Started();
}

// A backend's process title reads "postgres: USER DATABASE HOST(PORT) STATE": for a session
// whose startup the tap did not see, that is where its user and database come from.
void PassiveSession::FillFromBackendTitle() {
  if (identity_.server_pid <= 0 || !principal_.db_user.empty()) return;
  std::ifstream in("/proc/" + std::to_string(identity_.server_pid) + "/cmdline");
  std::string title;
  std::getline(in, title, '\0');
  constexpr std::string_view kPrefix = "postgres: ";
  if (title.rfind(kPrefix, 0) != 0) return;
  std::vector<std::string> words;
  size_t at = kPrefix.size();
  while (at < title.size() && words.size() < 4) {
    size_t end = title.find(' ', at);
    if (end == std::string::npos) end = title.size();
    if (end > at) words.push_back(title.substr(at, end - at));
    at = end + 1;
  }
  // With cluster_name set (Debian: "15/main") the title reads "postgres: 15/main: USER DB ...".
  if (!words.empty() && words.front().back() == ':') words.erase(words.begin());
  if (words.size() < 3) return;  // not a client backend's title: do not guess
  principal_.db_user = words[0];
  principal_.database = words[1];
}

void PassiveSession::PublishInfo() {
  auto info = std::make_shared<audit::SessionInfo>();
  info->session_id = identity_.session_id;
  info->target = identity_.target;
  info->env = identity_.env;
  info->principal = principal_;
  info->process = identity_.client;
  info_ = std::move(info);
}

audit::Event PassiveSession::NewEvent(audit::EventKind kind) {
  if (!info_) PublishInfo();
  audit::Event e;
  e.kind = kind;
  e.source = "tap";
  e.ts_us = audit::NowMicros();
  e.session = info_;
  return e;
}

void PassiveSession::Started() {
  if (started_) return;
  started_ = true;
  if (principal_.application_name.empty()) principal_.application_name = state_.application_name();
  if (auto policy = ctx_.policy->Get()) PolicyPrincipal(policy);
  PublishInfo();
  audit::Event start = NewEvent(audit::EventKind::kSessionStart);
  std::string how = identity_.transport + (picked_up_ ? ", picked up mid-session" : "");
  if (identity_.server_pid > 0) how += ", backend pid " + std::to_string(identity_.server_pid);
  if (!end_note_.empty()) how += ", " + end_note_;
  start.detail = how;
  ctx_.sink->Submit(std::move(start));
  if (identity_.relay_only) {
    bypass_ = true;
    ctx_.metrics->bypasses->Add();
    audit::Event b = NewEvent(audit::EventKind::kBypass);
    std::string who = identity_.client ? identity_.client->exe + " (pid " +
                                             std::to_string(identity_.client->pid) + ")"
                                       : "a client at " + identity_.client_addr;
    b.detail = "session on relay_only target " + identity_.target + " did not come through " +
               "the relay: " + who + " over " + identity_.transport + " as " + principal_.db_user;
    ctx_.sink->Submit(std::move(b));
  }
}

const policy::Principal& PassiveSession::PolicyPrincipal(
    const std::shared_ptr<const policy::CompiledPolicy>& policy) {
  std::string_view app =
      state_.application_name().empty() ? principal_.application_name : state_.application_name();
  const policy::Principal& p = principal_classifier_.Classified(policy, app, [this] {
    policy::Principal id;
    id.db_user = id.subject = principal_.db_user;
    id.database = principal_.database;
    id.client_addr = principal_.client_addr;
    if (identity_.client) {
      id.exe = identity_.client->exe;
      id.unit = identity::UnitFromCgroup(identity_.client->cgroup);
      id.container = identity::ContainerFromCgroup(identity_.client->cgroup);
    }
    return id;
  });
  if (principal_.kind != policy::KindName(p.kind) ||
      principal_.application_name != p.application_name) {
    principal_.kind = policy::KindName(p.kind);
    principal_.application_name = p.application_name;
    info_.reset();
  }
  return p;
}

void PassiveSession::OnExecutionComplete(const pg::Execution& x) {
  if (!started_) Started();
  ctx_.metrics->statements->Add();
  // Read after the server ran it, in the server's order: names defined by earlier statements are
  // known, and the settings are those the server reported.
  std::shared_ptr<const sql::QueryFacts> facts =
      x.fastpath ? gate_.FunctionCallFacts(x.function_oid, "") : gate_.Facts(*x.sql);
  if (!x.fastpath && !x.parse_only) gate_.OnCompleted(*facts, x.command_tags.size());
  std::shared_ptr<const policy::Decision> decision;
  if (auto policy = ctx_.policy->Get()) {
    // Shadow mode: what the policy would have done; the tap never stops anything.
    auto d = std::make_shared<policy::Decision>(policy->Evaluate({identity_.target, identity_.env},
                                                                 PolicyPrincipal(policy), *facts,
                                                                 std::chrono::system_clock::now()));
    d->monitor = true;
    if (d->action == policy::Action::kDeny || d->action == policy::Action::kApprove)
      ctx_.metrics->would_refuse->Add();
    decision = std::move(d);
  }
  audit::Event e = NewEvent(audit::EventKind::kStatement);
  e.statement = audit::StatementInfo{std::move(facts),
                                     x.fastpath   ? "fastpath"
                                     : x.extended ? "extended"
                                                  : "simple",
                                     x.statement_name};
  if (decision) e.decision = audit::DecisionInfo{std::move(decision), false, ""};
  audit::ResultInfo r;
  if (!x.command_tags.empty()) r.command_tag = x.command_tags.back();
  r.sqlstate = x.sqlstate;
  r.message = x.error_message;
  r.duration_us = x.end_ns > x.start_ns ? (x.end_ns - x.start_ns) / 1000 : 0;
  r.rows = x.rows;
  r.bytes = x.bytes_out;
  e.result = std::move(r);
  ctx_.sink->Submit(std::move(e));
}

void PassiveSession::Close(uint64_t now_ns, const std::string& reason) {
  if (closed_) return;
  if (decoding_) state_.OnClose(now_ns, reason);
  closed_ = true;
  ctx_.metrics->sessions_active->Add(-1);
  if (!started_) {
    // Nothing but a startup attempt (or a cancel request): not worth a session in the log
    // unless it reached a relay_only target, which is a bypass attempt all the same.
    if (!identity_.relay_only || !end_note_.empty()) return;
    Started();
  }
  audit::Event e = NewEvent(audit::EventKind::kSessionEnd);
  e.detail = reason;
  ctx_.sink->Submit(std::move(e));
}

}  // namespace dbw::tap
