// Session: runtime effect limits. The row budget wraps a statement between two counts of the rows
// its transaction changed (gate::WriteBudget decides; this file does the I/O); the read budget cuts
// a result off, cancels its query and replaces its completion with an error.
#include "userspace/common/logging.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/relay/session.h"
#include "userspace/relay/session_internal.h"

namespace dbw::relay {
namespace {

bool ReadLimited(const DecisionNote* note) {
  return note != nullptr && !note->enforced && !note->decision.monitor && note->decision.limits &&
         (note->decision.limits->max_read_rows != 0 || note->decision.limits->max_read_bytes != 0);
}

bool EndsResult(uint8_t type) {
  return type == pg::be::kCommandComplete || type == pg::be::kEmptyQueryResponse ||
         type == pg::be::kErrorResponse || type == pg::be::kPortalSuspended;
}

}  // namespace

bool Session::NeedsWriteWrap(const DecisionNote* note) const {
  return note != nullptr && !note->enforced && !note->decision.monitor && note->decision.limits &&
         note->decision.limits->max_rows != 0;
}

bool Session::AwaitIdleForWrap(std::shared_ptr<DecisionNote>* note, uint8_t type) {
  if (type != pg::fe::kQuery || !NeedsWriteWrap(note->get()) || state_.pending_requests() == 0)
    return false;
  if (state_.pending_sync_points() == 0) {
    // Extended-protocol messages without a Sync ahead of it: the transaction status the Query
    // will run in cannot be known, and nothing will be answered until it is sent.
    Fail(audit::EventKind::kProtocolViolation, "08P01",
         "dbwarden: a Query under a row budget cannot follow extended-protocol messages that no "
         "Sync has ended");
    return true;
  }
  resume_note_ = std::move(*note);  // judged (and committed) already: not judged twice
  limit_wait_idle_ = true;
  pause_ = Pause::kWaitingLimit;
  return true;
}

bool Session::AwaitBatchForWrap(const pg::FrontendMessage& message) {
  // An Execute under a row budget waits until no earlier batch is unanswered: an error then
  // means the server skips the wrap with the rest of this batch, and nothing else.
  if (message.type != pg::fe::kExecute || state_.pending_sync_points() == 0 ||
      write_budget_.active())
    return false;
  const auto* note =
      static_cast<const DecisionNote*>(state_.PortalNote(std::string(message.execute.portal)));
  if (!NeedsWriteWrap(note)) return false;
  limit_wait_idle_ = true;
  pause_ = Pause::kWaitingLimit;
  return true;
}

bool Session::WrapWrite(const pg::FrontendMessage& message, const pg::Frame& frame,
                        const DecisionNote* note, pg::Bytes* out) {
  if (!NeedsWriteWrap(note) || write_budget_.active()) return false;
  const bool extended = message.type == pg::fe::kExecute;
  if (!extended && message.type != pg::fe::kQuery) return false;
  const uint8_t tx = state_.transaction_status();
  if (!extended && tx == 'E') return false;  // a failed transaction runs nothing
  pg::Bytes before, after;
  const policy::EffectLimits& l = *note->decision.limits;
  write_budget_.Begin(l.max_rows, l.write_rule, extended, tx, &before, &after);
  witness_internal_ += pg::WireTally::Requests(before) + pg::WireTally::Requests(after);
  out->insert(out->end(), before.begin(), before.end());
  pg::AppendFrame(out, frame);
  out->insert(out->end(), after.begin(), after.end());
  limit_hold_ = true;
  deps_.metrics->limit_wraps->Add();
  return true;
}

bool Session::OnBudgetBackend(const pg::Frame& frame, pg::Bytes* out, std::string* reason,
                              pg::MessageAction* action) {
  if (read_abort_pending_ && frame.type == pg::be::kErrorResponse && !bypass_budget_) {
    // The failing Parse sent after a cut-off extended result: the server now skips to Sync.
    read_abort_pending_ = false;
    MaybeEndLimitHold();
    *action = pg::MessageAction::kHandled;
    return true;
  }
  if (!write_budget_.active() || bypass_budget_) return false;
  gate::WriteBudget::Output o;
  auto route = write_budget_.OnBackend(frame, state_.pending_requests() > 1, &o);
  for (const pg::Bytes& held : o.release) {
    if (!DeliverHeld(held, out, reason)) {
      *action = pg::MessageAction::kReject;
      return true;
    }
  }
  if (o.refusal) {
    deps_.metrics->limit_rows_stops->Add();
    DBW_LOG(kInfo) << "session " << id_ << ": " << o.refusal->message;
    if (!ReplaceWithError({.severity = "ERROR",
                           .sqlstate = o.refusal->sqlstate,
                           .message = o.refusal->message,
                           .detail = o.refusal->detail},
                          out, reason)) {
      *action = pg::MessageAction::kReject;
      return true;
    }
  }
  if (!o.upstream.empty()) SendUpstream(std::move(o.upstream));
  if (o.done) {
    if (read_budget_.stopped()) read_budget_.Reset();  // the wrap's refusal ended it
    read_completed_ = true;
    limit_hold_ = false;
    MaybeEndLimitHold();
  }
  if (route == gate::WriteBudget::Route::kClient) return false;  // the ordinary path follows
  *action = pg::MessageAction::kHandled;
  return true;
}

bool Session::DeliverHeld(const pg::Bytes& bytes, pg::Bytes* out, std::string* reason) {
  std::span<const std::byte> in(bytes);
  pg::Frame frame;
  if (pg::ParseFrame(pg::Direction::kBackend, false, &in, &frame, reason) != pg::ParseState::kOk)
    return false;
  bypass_budget_ = true;
  pg::MessageAction a = OnBackendMessage(frame, out, reason);
  bypass_budget_ = false;
  if (a == pg::MessageAction::kReject) return false;
  if (a == pg::MessageAction::kForward) out->insert(out->end(), bytes.begin(), bytes.end());
  return true;
}

// The error a statement stopped by its read budget gets.
static gate::WriteBudget::Refusal ReadRefusal(const policy::EffectLimits& l,
                                              const gate::ReadBudget& b) {
  const bool by_rows = l.max_read_rows != 0 && b.rows() + 1 > l.max_read_rows;
  const std::string& rule = by_rows ? l.read_rows_rule : l.read_bytes_rule;
  return {"54000",
          "dbwarden: the result was stopped after " + std::to_string(b.rows()) + " rows (" +
              std::to_string(b.bytes()) + " bytes): rule " + rule +
              " limits a statement's result to " +
              (by_rows ? std::to_string(l.max_read_rows) + " rows"
                       : std::to_string(l.max_read_bytes) + " bytes"),
          "policy rule(s): " + rule};
}

bool Session::OnReadBudget(const pg::Frame& frame, pg::Bytes* out, std::string* reason,
                           pg::MessageAction* action) {
  const uint8_t t = frame.type;
  if (t == pg::be::kReadyForQuery) {
    read_budget_.OnReady(!frame.body.empty() && frame.body[0] == std::byte{'I'});
    return false;
  }
  const bool row = t == pg::be::kDataRow || t == pg::be::kCopyData;
  if (!row && !EndsResult(t) && t != pg::be::kCopyDone) return false;
  const auto* note = dynamic_cast<const DecisionNote*>(state_.HeadNote());
  if (!ReadLimited(note)) {
    if (!row && t != pg::be::kCopyDone) read_budget_.Reset();
    return false;
  }
  const policy::EffectLimits& l = *note->decision.limits;
  if (row) {
    const pg::ResultSource src = state_.HeadResultSource();
    const uint64_t source = src.kind == pg::ResultSource::Kind::kPortal ? src.portal_serial : 0;
    switch (read_budget_.OnRow(source, l.max_read_rows, l.max_read_bytes, frame.WireSize())) {
      case gate::ReadBudget::Verdict::kPass:
        return false;
      case gate::ReadBudget::Verdict::kExceeded:
        deps_.metrics->limit_read_stops->Add();
        read_completed_ = false;
        if (write_budget_.active()) {
          // Also under a row budget: undone whatever it changed. No cancel, which could reach
          // the relay's own count or COMMIT instead.
          const pg::Execution* x = state_.HeadExecution();
          const bool extended = x != nullptr && x->extended;
          write_budget_.ForceRefuse(extended ? std::optional(ReadRefusal(l, read_budget_))
                                             : std::nullopt);
        } else if (state_.pending_requests() == 1) {
          // Cancelled only when nothing else of the client's is queued behind it, so the
          // cancel cannot reach a later statement; the client's next message waits for it.
          limit_hold_ = true;
          SendReadCancel();
        }
        [[fallthrough]];
      case gate::ReadBudget::Verdict::kDrop:
        *action = pg::MessageAction::kHandled;  // never reaches the client
        return true;
    }
    return false;
  }
  if (!read_budget_.stopped()) {
    if (t == pg::be::kPortalSuspended) {
      read_budget_.Suspend();
    } else if (t != pg::be::kCopyDone) {
      read_budget_.Reset();
    }
    return false;
  }
  if (t == pg::be::kCopyDone) {  // the end of a cut-off COPY TO: the error takes its place
    *action = pg::MessageAction::kHandled;
    return true;
  }
  // The result ends past the budget: an error takes the completion's place.
  const gate::WriteBudget::Refusal r = ReadRefusal(l, read_budget_);
  const pg::Execution* x = state_.HeadExecution();
  const bool extended = x != nullptr && x->extended;
  const bool server_failed = t == pg::be::kErrorResponse;
  read_budget_.Reset();
  if (extended && !server_failed && !state_.sync_follows_head()) {
    // The client now expects the server to skip to its Sync, as after any error: make it so.
    // (With the Sync already next, nothing is skipped: the server's ReadyForQuery then tells
    // the client its transaction is still open, as it is.)
    if (state_.pending_requests() != 1) {
      // Other requests are queued behind it and the server would run them: fail closed.
      Fail(audit::EventKind::kProtocolViolation, "54000",
           r.message +
               "; the session is ended, as requests already queued behind it cannot "
               "be skipped");
      *action = pg::MessageAction::kHandled;
      return true;
    }
    pg::Bytes abort;
    write_budget_.AppendAbortExtended(&abort);
    read_abort_pending_ = true;
    limit_hold_ = true;
    SendUpstream(std::move(abort));
  }
  read_completed_ = true;
  MaybeEndLimitHold();
  *action = ReplaceWithError({.severity = "ERROR",
                              .sqlstate = r.sqlstate,
                              .message = r.message,
                              .detail = r.detail,
                              .hint = "add a LIMIT or a narrower WHERE"},
                             out, reason)
                ? pg::MessageAction::kHandled
                : pg::MessageAction::kReject;
  return true;
}

void Session::SendReadCancel() {
  read_cancel_pending_ = true;
  struct CancelConn {
    explicit CancelConn(asio::io_context& io) : socket(io), timer(io) {}
    StreamSocket socket;
    asio::steady_timer timer;
    pg::Bytes request;
    std::array<char, 16> sink{};
  };
  auto c = std::make_shared<CancelConn>(worker_->context);
  const pg::BackendKeyData& key = state_.backend_key();
  pg::AppendCancelRequest(&c->request, pg::CancelRequest{key.pid, key.key});
  std::weak_ptr<Session> weak = weak_from_this();
  auto done = [weak, c](const boost::system::error_code&) {
    c->timer.cancel();
    boost::system::error_code ignored;
    c->socket.close(ignored);
    auto self = weak.lock();
    if (!self || self->closed_ || !self->read_cancel_pending_) return;
    self->read_cancel_pending_ = false;
    self->MaybeEndLimitHold();
  };
  c->timer.expires_after(deps_.options->connect_timeout);
  c->timer.async_wait([c](const boost::system::error_code& ec) {
    boost::system::error_code ignored;
    if (!ec) c->socket.close(ignored);  // the callbacks below then finish with an error
  });
  c->socket.async_connect(target_->upstream, [c, done](const boost::system::error_code& ec) {
    if (ec) return done(ec);
    asio::async_write(c->socket, asio::buffer(c->request),
                      [c, done](const boost::system::error_code& ec, size_t) {
                        if (ec) return done(ec);
                        // The server signals the backend, then closes: EOF means it was sent.
                        c->socket.async_read_some(
                            asio::buffer(c->sink),
                            [c, done](const boost::system::error_code& ec, size_t) { done(ec); });
                      });
  });
}

void Session::MaybeEndLimitHold() {
  if (read_cancel_pending_ || read_abort_pending_ || write_budget_.active()) return;
  if (limit_hold_ && !read_completed_) return;  // a stopped read's completion is still due
  limit_hold_ = false;
  if (pause_ != Pause::kWaitingLimit || limit_wait_idle_) return;
  ResumeAfterLimit();
}

void Session::ResumeAfterLimit() {
  pause_ = Pause::kLimitReady;
  // Posted: this runs inside the upstream pump's decoding, which must finish first.
  std::weak_ptr<Session> weak = weak_from_this();
  asio::post(worker_->context, [weak] {
    auto self = weak.lock();
    if (!self || self->closing_ || self->pause_ != Pause::kLimitReady) return;
    if (!self->upstream_->writing) self->ResumeClient();  // else the write's completion does
  });
}

void Session::OnServerIdle() {
  // Re-presented then; its own check decides whether it still waits.
  if (!limit_wait_idle_ || state_.pending_sync_points() != 0) return;
  limit_wait_idle_ = false;
  if (pause_ == Pause::kWaitingLimit) ResumeAfterLimit();
}

void Session::SendUpstream(pg::Bytes bytes) {
  witness_internal_ += pg::WireTally::Requests(bytes);
  limit_out_.insert(limit_out_.end(), bytes.begin(), bytes.end());
  if (!upstream_->writing) FlushLimitOut();
}

void Session::FlushLimitOut() {
  limit_out_writing_ = std::move(limit_out_);
  limit_out_.clear();
  upstream_->writing = true;
  auto self = shared_from_this();
  upstream_->transport.AsyncWrite(
      asio::buffer(limit_out_writing_), [this, self](const boost::system::error_code& ec, size_t) {
        upstream_->writing = false;
        if (closing_) {
          FlushFatalThenClose();
          return;
        }
        if (ec) {
          Close("upstream write failed: " + ec.message());
          return;
        }
        if (!limit_out_.empty()) {
          FlushLimitOut();
          return;
        }
        // The client pump's own write finished before this one started:
        // carry on for it.
        if (limit_resume_client_ || pause_ == Pause::kLimitReady || pause_ == Pause::kCommitted ||
            pause_ == Pause::kCatalogReady || pause_ == Pause::kApprovalReady) {
          limit_resume_client_ = false;
          OnWritten(Side::kClient, ec);
        }
      });
}

}  // namespace dbw::relay
