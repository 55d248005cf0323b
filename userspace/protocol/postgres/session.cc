// The PostgreSQL session state machine.
#include "userspace/protocol/postgres/session.h"

#include "userspace/protocol/postgres/parse.h"

namespace dbw::pg {
namespace {
const std::shared_ptr<const std::string>& UnknownStatement() {
  static const auto* unknown =
      new std::shared_ptr<const std::string>(std::make_shared<const std::string>(""));
  return *unknown;
}
}  // namespace

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kStartup:
      return "startup";
    case Phase::kAuthenticating:
      return "authenticating";
    case Phase::kInitializing:
      return "initializing";
    case Phase::kReady:
      return "ready";
    case Phase::kCopyIn:
      return "copy_in";
    case Phase::kCopyOut:
      return "copy_out";
    case Phase::kCopyBoth:
      return "copy_both";
    case Phase::kTerminated:
      return "terminated";
  }
  return "unknown";
}

void SessionState::OnStartup(const StartupMessage& message) {
  user_ = std::string(message.Param("user"));
  database_ = std::string(message.Param("database"));
  if (database_.empty()) database_ = user_;  // the server's default
  application_name_ = std::string(message.Param("application_name"));
  phase_ = Phase::kAuthenticating;
}

std::unique_ptr<Execution> SessionState::NewExecution() {
  if (spare_.empty()) return std::make_unique<Execution>();
  std::unique_ptr<Execution> e = std::move(spare_.back());
  spare_.pop_back();
  return e;
}

void SessionState::AnnotateLastRequest(std::shared_ptr<const StatementNote> note) {
  if (!annotatable_ || pending_.empty()) return;
  Pending& last = pending_.back();
  if (last.kind == Request::kQuery || last.kind == Request::kFunctionCall) {
    last.execution->note = note;
  } else if (last.kind == Request::kParse) {
    auto it = statements_.find(last_parse_name_);
    if (it != statements_.end()) it->second.note = note;
    if (last.execution) last.execution->note = note;
  } else if (last.kind == Request::kBind) {
    auto it = portals_.find(last_bind_portal_);
    if (it == portals_.end()) return;
    it->second.note = note;
    auto e = NewExecution();
    e->sql = it->second.sql;
    e->extended = true;
    e->portal = last_bind_portal_;
    auto st = portal_statement_.find(last_bind_portal_);
    if (st != portal_statement_.end()) e->statement_name = st->second;
    e->bind_only = true;
    e->start_ns = last_bind_ns_;
    e->note = note;
    last.execution = std::move(e);
  } else {
    return;
  }
  last.note = std::move(note);
}

const StatementNote* SessionState::HeadNote() const {
  if (pending_.empty()) return nullptr;
  const Pending& head = pending_.front();
  if (head.note) return head.note.get();
  if (head.execution) return head.execution->note.get();
  return nullptr;
}

const Execution* SessionState::HeadExecution() const {
  return pending_.empty() ? nullptr : pending_.front().execution.get();
}

const StatementNote* SessionState::LastNote() const {
  if (pending_.empty()) return nullptr;
  const Pending& last = pending_.back();
  if (last.note) return last.note.get();
  return last.execution ? last.execution->note.get() : nullptr;
}

size_t SessionState::pending_sync_points() const {
  size_t n = 0;
  for (const Pending& p : pending_)
    n += p.kind == Request::kQuery || p.kind == Request::kSync || p.kind == Request::kFunctionCall;
  return n;
}

bool SessionState::sync_follows_head() const {
  return pending_.size() >= 2 && pending_[1].kind == Request::kSync;
}

const StatementNote* SessionState::PortalNote(const std::string& portal) const {
  auto it = portals_.find(portal);
  return it == portals_.end() ? nullptr : it->second.note.get();
}

const StatementNote* SessionState::StatementNoteOf(const std::string& name) const {
  auto it = statements_.find(name);
  return it == statements_.end() ? nullptr : it->second.note.get();
}

void SessionState::RedefineStatement(const std::string& name,
                                     std::shared_ptr<const StatementNote> note) {
  statements_[name] = Prepared{UnknownStatement(), std::move(note), ++serial_};
}

void SessionState::DropStatement(const std::string& name) {
  statements_.erase(name);
}

void SessionState::DropAllStatements() {
  statements_.clear();
}

ResultSource SessionState::HeadResultSource() const {
  if (pending_.empty()) return {};
  const Pending& head = pending_.front();
  if (head.kind == Request::kQuery) return {ResultSource::Kind::kQuery};
  return head.source;
}

ResultSource SessionState::PortalSource(const std::string& portal) const {
  auto it = portals_.find(portal);
  if (it == portals_.end()) return {};
  return {ResultSource::Kind::kPortal, it->second.statement_serial, it->second.serial,
          it->second.result_formats};
}

void SessionState::Push(Request kind, std::unique_ptr<Execution> execution) {
  pending_.push_back(Pending{kind, std::move(execution)});
}

bool SessionState::OnFrontend(const Frame& frame, uint64_t now_ns, std::string* error) {
  // Validated even while the server skips to the next Sync: the relay fails closed on malformed
  // input.
  if (!ParseFrontend(frame, &scratch_, error)) {
    annotatable_ = false;
    return false;
  }
  return OnFrontendMessage(scratch_, now_ns, error);
}

bool SessionState::OnFrontendMessage(const FrontendMessage& message, uint64_t now_ns,
                                     std::string* error) {
  annotatable_ = false;
  if (discard_until_sync_ && message.type != fe::kSync && message.type != fe::kTerminate) {
    if (message.type == fe::kQuery || message.type == fe::kExecute ||
        message.type == fe::kFunctionCall)
      ++skipped_requests_;
    return true;
  }
  return HandleFrontendBody(message, now_ns, error);
}

bool SessionState::HandleFrontendBody(const FrontendMessage& message, uint64_t now_ns,
                                      std::string* error) {
  switch (message.type) {
    case fe::kQuery: {
      const QueryMessage& m = message.query;
      auto e = NewExecution();
      e->sql = std::make_shared<const std::string>(m.sql);
      e->start_ns = now_ns;
      ++sync_points_sent_;
      Push(Request::kQuery, std::move(e));
      annotatable_ = true;
      return true;
    }
    case fe::kParse: {
      const ParseMessage& m = message.parse;
      last_parse_name_ = std::string(m.name);
      auto sql = std::make_shared<const std::string>(m.sql);
      statements_[last_parse_name_] = Prepared{sql, nullptr, ++serial_};
      // A Parse the server rejects (a syntax error, a refusal, an aborted transaction) is a
      // statement attempt of its own: it is reported as an Execution with the error.
      auto e = NewExecution();
      e->sql = std::move(sql);
      e->extended = true;
      e->statement_name = last_parse_name_;
      e->parse_only = true;
      e->start_ns = now_ns;
      Push(Request::kParse, std::move(e));
      annotatable_ = true;
      return true;
    }
    case fe::kBind: {
      const BindMessage& m = message.bind;
      auto it = statements_.find(std::string(m.statement));
      std::string portal(m.portal);
      Prepared& p = portals_[portal];
      p = it != statements_.end() ? it->second : Prepared{UnknownStatement(), nullptr};
      // A statement this state never saw parsed (SQL PREPARE) gets a serial of its own, so
      // two of them never share what was learned about either.
      p.statement_serial = it != statements_.end() ? p.serial : ++serial_;
      p.serial = ++serial_;
      bool all_text = true;
      for (int16_t f : m.result_formats) all_text = all_text && f == 0;
      if (!all_text)
        p.result_formats = std::make_shared<const std::vector<int16_t>>(m.result_formats);
      portal_statement_[portal] = std::string(m.statement);
      p.bound_at = sync_points_sent_;
      last_bind_portal_ = std::move(portal);
      last_bind_ns_ = now_ns;
      Push(Request::kBind);
      annotatable_ = true;
      return true;
    }
    case fe::kDescribe: {
      const DescribeMessage& m = message.describe;
      Push(Request::kDescribe);
      if (m.kind == 'P') {
        pending_.back().source = PortalSource(std::string(m.name));
      } else if (auto it = statements_.find(std::string(m.name)); it != statements_.end()) {
        pending_.back().source = {ResultSource::Kind::kStatement, it->second.serial};
      }
      return true;
    }
    case fe::kClose: {
      const CloseMessage& m = message.describe;
      if (m.kind == 'S') {
        statements_.erase(std::string(m.name));
      } else {
        portals_.erase(std::string(m.name));
        portal_statement_.erase(std::string(m.name));
      }
      Push(Request::kClose);
      return true;
    }
    case fe::kExecute: {
      const ExecuteMessage& m = message.execute;
      auto e = NewExecution();
      e->extended = true;
      e->portal = std::string(m.portal);
      auto it = portals_.find(e->portal);
      if (it != portals_.end()) {
        e->sql = it->second.sql;
        e->note = it->second.note;
      } else {
        e->sql = UnknownStatement();
      }
      auto st = portal_statement_.find(e->portal);
      if (st != portal_statement_.end()) e->statement_name = st->second;
      e->start_ns = now_ns;
      Push(Request::kExecute, std::move(e));
      pending_.back().source = PortalSource(pending_.back().execution->portal);
      return true;
    }
    case fe::kSync:
      discard_until_sync_ = false;
      ++sync_points_sent_;
      Push(Request::kSync);
      return true;
    case fe::kFunctionCall: {
      const FunctionCallMessage& m = message.function_call;
      // Executed like a statement: its result and error are reported as an Execution.
      auto e = NewExecution();
      e->sql = UnknownStatement();
      e->fastpath = true;
      e->function_oid = m.function_oid;
      e->start_ns = now_ns;
      ++sync_points_sent_;
      Push(Request::kFunctionCall, std::move(e));
      annotatable_ = true;
      return true;
    }
    case fe::kCopyDone:
    case fe::kCopyFail:
      if (phase_ == Phase::kCopyIn || phase_ == Phase::kCopyBoth) phase_ = Phase::kReady;
      return true;
    case fe::kTerminate:
      phase_ = Phase::kTerminated;
      return true;
    case fe::kFlush:
    case fe::kCopyData:
    case fe::kPassword:
      return true;
    default:
      *error = "unknown frontend message type";
      return false;
  }
}

Execution* SessionState::CurrentExecution() {
  if (pending_.empty()) return nullptr;
  Pending& head = pending_.front();
  return head.execution.get();
}

void SessionState::Complete(Pending* p, uint64_t now_ns) {
  if (p->execution == nullptr) return;
  Execution& e = *p->execution;
  e.end_ns = now_ns;
  if (observer_ != nullptr) observer_->OnExecutionComplete(e);
  Recycle(p);
}

void SessionState::PopFront() {
  Recycle(&pending_.front());
  pending_.pop_front();
}

void SessionState::Recycle(Pending* p) {
  if (p->execution == nullptr) return;
  Execution& e = *p->execution;
  // Reset for reuse, keeping string and vector capacity.
  e.sql.reset();
  e.extended = false;
  e.statement_name.clear();
  e.portal.clear();
  e.start_ns = e.end_ns = e.rows = e.bytes_out = 0;
  e.command_tags.clear();
  e.sqlstate.clear();
  e.error_message.clear();
  e.suspended = false;
  e.parse_only = false;
  e.bind_only = false;
  e.fastpath = false;
  e.function_oid = 0;
  e.note.reset();
  if (spare_.size() < 4) spare_.push_back(std::move(p->execution));
  p->execution.reset();
}

void SessionState::OnError(std::string_view sqlstate, std::string_view message, uint64_t now_ns) {
  if (pending_.empty()) return;
  Pending& head = pending_.front();
  if (head.execution != nullptr) {
    head.execution->sqlstate = std::string(sqlstate);
    head.execution->error_message = std::string(message);
  }
  switch (head.kind) {
    case Request::kQuery:
    case Request::kFunctionCall:
    case Request::kSync:
      return;  // answered by the ReadyForQuery that follows
    default:
      break;
  }
  // Extended protocol: the server skips every message up to the next Sync.
  Complete(&head, now_ns);
  pending_.pop_front();
  while (!pending_.empty() && pending_.front().kind != Request::kSync) {
    const Request k = pending_.front().kind;
    if (k == Request::kQuery || k == Request::kExecute || k == Request::kFunctionCall)
      ++skipped_requests_;
    PopFront();
  }
  if (pending_.empty()) discard_until_sync_ = true;
}

bool SessionState::OnBackend(const Frame& frame, uint64_t now_ns, std::string* error) {
  if (Execution* e = CurrentExecution()) e->bytes_out += frame.WireSize();
  return HandleBackendBody(frame, now_ns, error);
}

bool SessionState::HandleBackendBody(const Frame& frame, uint64_t now_ns, std::string* error) {
  auto pop_if = [this](Request kind) {
    if (!pending_.empty() && pending_.front().kind == kind) PopFront();
  };
  switch (frame.type) {
    case be::kAuthentication: {
      AuthenticationMessage m;
      if (!ParseAuthentication(frame.body, &m, error)) return false;
      last_auth_ = m.code;
      if (m.code == AuthCode::kOk) phase_ = Phase::kInitializing;
      return true;
    }
    case be::kBackendKeyData:
      return ParseBackendKeyData(frame.body, &backend_key_, error);
    case be::kParameterStatus: {
      ParameterStatusMessage m;
      if (!ParseParameterStatus(frame.body, &m, error)) return false;
      if (m.name == "application_name") application_name_ = std::string(m.value);
      return true;
    }
    case be::kReadyForQuery: {
      ReadyForQueryMessage m;
      if (!ParseReadyForQuery(frame.body, &m, error)) return false;
      tx_status_ = m.status;
      // The first ReadyForQuery answers the startup, not a request.
      bool answers_request = phase_ != Phase::kInitializing && phase_ != Phase::kAuthenticating &&
                             phase_ != Phase::kStartup;
      phase_ = Phase::kReady;
      if (answers_request && !pending_.empty()) {
        Request kind = pending_.front().kind;
        if (kind == Request::kQuery || kind == Request::kSync || kind == Request::kFunctionCall) {
          Complete(&pending_.front(), now_ns);
          pending_.pop_front();
          ++sync_points_answered_;
        }
      }
      if (tx_status_ == 'I') {
        // Unnamed and named portals do not outlive their transaction; those bound after this
        // sync point belong to the next one.
        for (auto it = portals_.begin(); it != portals_.end();) {
          if (it->second.bound_at < sync_points_answered_) {
            portal_statement_.erase(it->first);
            it = portals_.erase(it);
          } else {
            ++it;
          }
        }
      }
      return true;
    }
    case be::kParseComplete:
      pop_if(Request::kParse);
      return true;
    case be::kBindComplete:
      pop_if(Request::kBind);
      return true;
    case be::kCloseComplete:
      pop_if(Request::kClose);
      return true;
    case be::kNoData:
      pop_if(Request::kDescribe);
      return true;
    case be::kParameterDescription: {
      ParameterDescriptionMessage m;
      return ParseParameterDescription(frame.body, &m, error);
    }
    case be::kRowDescription: {
      RowDescriptionMessage m;
      if (!ParseRowDescription(frame.body, &m, error)) return false;
      pop_if(Request::kDescribe);
      return true;
    }
    case be::kDataRow:
      if (Execution* e = CurrentExecution()) ++e->rows;
      return true;
    case be::kCommandComplete:
    case be::kEmptyQueryResponse:
    case be::kPortalSuspended: {
      CommandCompleteMessage m;
      if (frame.type == be::kCommandComplete && !ParseCommandComplete(frame.body, &m, error))
        return false;
      if (phase_ == Phase::kCopyOut || phase_ == Phase::kCopyIn) phase_ = Phase::kReady;
      if (pending_.empty()) return true;
      Pending& head = pending_.front();
      if (head.execution != nullptr) {
        head.execution->command_tags.emplace_back(m.tag);
        if (auto n = RowsFromCommandTag(m.tag); n && *n > head.execution->rows)
          head.execution->rows = *n;
        head.execution->suspended = frame.type == be::kPortalSuspended;
      }
      if (head.kind == Request::kExecute) {
        Complete(&head, now_ns);
        pending_.pop_front();
      }
      return true;
    }
    case be::kErrorResponse: {
      ErrorMessage m;
      if (!ParseErrorOrNotice(frame.body, &m, error)) return false;
      if (phase_ == Phase::kCopyIn || phase_ == Phase::kCopyOut || phase_ == Phase::kCopyBoth)
        phase_ = Phase::kReady;
      OnError(m.Field('C'), m.Field('M'), now_ns);
      return true;
    }
    case be::kCopyInResponse:
    case be::kCopyOutResponse:
    case be::kCopyBothResponse: {
      CopyResponseMessage m;
      if (!ParseCopyResponse(frame.body, &m, error)) return false;
      phase_ = frame.type == be::kCopyInResponse    ? Phase::kCopyIn
               : frame.type == be::kCopyOutResponse ? Phase::kCopyOut
                                                    : Phase::kCopyBoth;
      return true;
    }
    case be::kCopyDone:
      if (phase_ == Phase::kCopyOut || phase_ == Phase::kCopyBoth) phase_ = Phase::kReady;
      return true;
    default:
      return ValidateMessage(Direction::kBackend, frame, error);
  }
}

void SessionState::OnBackendStreamed(uint8_t type, uint32_t length, uint64_t now_ns) {
  if (Execution* e = CurrentExecution()) {
    e->bytes_out += 1 + uint64_t{length};
    if (type == be::kDataRow) ++e->rows;
  }
}

void SessionState::OnFrontendStreamed(uint8_t type, uint32_t length, uint64_t now_ns) {}

void SessionState::OnClose(uint64_t now_ns, const std::string& reason) {
  for (auto& p : pending_) {
    if (p.execution == nullptr) continue;
    if (p.execution->sqlstate.empty()) {
      p.execution->sqlstate = "08006";
      p.execution->error_message = reason;
    }
    Complete(&p, now_ns);
  }
  pending_.clear();
  phase_ = Phase::kTerminated;
}

}  // namespace dbw::pg
