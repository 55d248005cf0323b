// Session: statements whose decision is `approve` — submitted to the approval service, held or
// refused, and the client notice that says why a statement waits.
#include <poll.h>

#include <chrono>

#include "userspace/common/logging.h"
#include "userspace/identity/process_info.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/relay/session.h"

namespace dbw::relay {

// Why an approved statement did not run after all (the `not_executed` approval step).
constexpr char kNotRun[] = "the client disconnected before the approved statement ran";

bool Session::NeedsApproval(const DecisionNote& note) const {
  return deps_.approvals != nullptr && note.enforced &&
         note.decision.action == policy::Action::kApprove && note.audit_failure.empty() &&
         !(note.bind && note.bound_sql.empty());
}

void Session::AwaitApproval(std::shared_ptr<DecisionNote> note, const pg::Frame& frame) {
  std::string_view sql_text;
  std::string error;
  if (frame.type == pg::fe::kQuery) {
    pg::QueryMessage m;
    if (pg::ParseQuery(frame.body, &m, &error)) sql_text = m.sql;
  } else if (frame.type == pg::fe::kBind) {
    sql_text = note->bound_sql;  // the prepared statement with the values of this Bind
  } else {
    pg::ParseMessage m;
    if (pg::ParseParse(frame.body, &m, &error)) sql_text = m.sql;
  }
  const policy::Principal& p = principal_classifier_.last();  // classified by Decide
  const policy::ApprovalSpec spec = note->decision.approval.value_or(policy::ApprovalSpec{});
  approvals::Request draft;
  draft.mode = spec.mode;
  draft.target = target_->options.name;
  draft.env = target_->options.env;
  draft.session_id = id_;
  draft.subject = p.subject;
  draft.db_user = p.db_user;
  draft.database = p.database;
  draft.application_name = p.application_name;
  draft.client_addr = p.client_addr;
  draft.principal_kind = p.kind == policy::PrincipalKind::kAgent ? "agent" : "human";
  draft.groups = p.groups;
  if (process_) {
    draft.pid = process_->pid;
    draft.exe = process_->exe;
  }
  draft.sql = std::string(sql_text);
  const sql::QueryFacts& facts = *note->facts;
  for (const auto& st : facts.statements) {
    if (!draft.normalized.empty()) draft.normalized += "; ";
    draft.normalized += st.normalized;
    draft.commands.emplace_back(sql::CommandName(st.command));
    for (const auto* tables : {&st.tables_read, &st.tables_written})
      for (const auto& t : *tables) draft.tables.push_back(t.Qualified());
  }
  if (!facts.statements.empty()) draft.fingerprint = facts.statements.front().fingerprint_hex;
  for (auto r : sql::RiskNames(facts.AllRisks())) draft.risks.emplace_back(r);
  draft.rules = note->decision.rules;
  draft.reason = note->decision.reason;
  draft.required = spec.approvers;
  draft.approver_groups = spec.approver_groups;
  draft.timeout_s = spec.timeout.count();
  draft.grant_ttl_s = spec.grant_ttl.count();
  draft.sqlstate = note->decision.sqlstate;

  resume_note_ = std::move(note);
  pause_ = Pause::kWaitingApproval;
  // A cancel from now on withdraws the request — also one that arrives before the service has
  // said the statement is held (the request may already be listed as pending then).
  if (client_key_) {
    std::weak_ptr<Session> weak = weak_from_this();
    auto executor = worker_->context.get_executor();
    deps_.cancels->SetCancelHook(*client_key_, [weak, executor] {
      asio::post(executor, [weak] {
        auto self = weak.lock();
        if (!self || self->pause_ != Pause::kWaitingApproval) return;
        if (self->held_id_.empty()) {
          self->cancel_requested_ = true;  // withdrawn when the hold begins
        } else {
          self->deps_.approvals->Withdraw(self->held_id_, "cancelled by the client");
        }
      });
    });
  }
  if (!info_) PublishInfo();
  std::weak_ptr<Session> weak = weak_from_this();
  auto executor = worker_->context.get_executor();
  approvals::ApprovalService* service = deps_.approvals;
  service->Submit(std::move(draft), info_,
                  [weak, executor, service](const approvals::Outcome& outcome) {
                    asio::post(executor, [weak, outcome, service] {
                      if (auto self = weak.lock()) {
                        self->OnApprovalOutcome(outcome);
                      } else if (outcome.kind == approvals::Outcome::Kind::kRun) {
                        service->Unexecute(outcome.id, kNotRun);  // the session is gone
                      }
                    });
                  });
}

void Session::OnApprovalOutcome(const approvals::Outcome& outcome) {
  if (closed_ || pause_ != Pause::kWaitingApproval || !resume_note_) {
    // The session ended first: a held request stays pending for a re-run, and an approval that
    // arrived as the client hung up becomes a grant for one.
    if (outcome.kind == approvals::Outcome::Kind::kHeld) deps_.approvals->Detach(outcome.id);
    if (outcome.kind == approvals::Outcome::Kind::kRun)
      deps_.approvals->Unexecute(outcome.id, kNotRun);
    return;
  }
  if (outcome.kind == approvals::Outcome::Kind::kHeld) {
    held_id_ = outcome.id;
    deps_.metrics->held->Add(1);
    if (cancel_requested_) {
      // The client cancelled before the hold began: its answer (withdrawn) comes next.
      cancel_requested_ = false;
      deps_.approvals->Withdraw(held_id_, "cancelled by the client");
    }
    pg::Bytes notice;
    pg::AppendNoticeResponse(&notice, {.severity = "NOTICE",
                                       .sqlstate = outcome.sqlstate,
                                       .message = outcome.message,
                                       .detail = outcome.detail,
                                       .hint = outcome.hint});
    SendToClient(notice);
    WatchClientDuringHold();
    return;
  }
  EndHold();
  resume_note_->approval_id = outcome.id;
  if (outcome.kind == approvals::Outcome::Kind::kRun) {
    resume_note_->enforced = false;
    if (target_->options.audit_before_forward) {
      AwaitCommit(std::move(resume_note_));  // the decision, with its approval, first
      return;
    }
  } else {
    resume_note_->refusal = outcome;
  }
  pause_ = Pause::kApprovalReady;
  if (!upstream_->writing) ResumeClient();
}

void Session::EndHold() {
  cancel_requested_ = false;
  if (client_key_) deps_.cancels->SetCancelHook(*client_key_, {});
  if (held_id_.empty()) return;
  held_id_.clear();
  ++hold_generation_;
  hold_timer_.cancel();
  deps_.metrics->held->Add(-1);
}

void Session::WatchClientDuringHold() {
  // The client pump reads nothing while a statement is held, so a client that hangs up would go
  // unnoticed until the decision. The kernel says so (POLLRDHUP) even with unread bytes queued.
  hold_timer_.expires_after(std::chrono::milliseconds(250));
  auto self = shared_from_this();
  uint64_t generation = hold_generation_;
  hold_timer_.async_wait([this, self, generation](const boost::system::error_code& ec) {
    if (ec || closed_ || held_id_.empty() || generation != hold_generation_) return;
    pollfd p{client_.transport.socket().native_handle(), POLLRDHUP, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0) {
      Close("client disconnected while its statement was held for approval");
      return;
    }
    WatchClientDuringHold();
  });
}

void Session::SendToClient(const pg::Bytes& bytes) {
  client_extra_.insert(client_extra_.end(), bytes.begin(), bytes.end());
  if (!client_.writing) FlushClientExtra(false);
}

void Session::FlushClientExtra(bool then_read_upstream) {
  if (closing_ || client_extra_.empty()) return;
  client_extra_out_ = std::move(client_extra_);
  client_extra_.clear();
  client_.writing = true;
  auto self = shared_from_this();
  client_.transport.AsyncWrite(
      asio::buffer(client_extra_out_),
      [this, self, then_read_upstream](const boost::system::error_code& ec, size_t) {
        client_.writing = false;
        if (closing_) {
          FlushFatalThenClose();
          return;
        }
        if (ec) {
          Close("client write failed: " + ec.message());
          return;
        }
        if (!client_extra_.empty()) {
          FlushClientExtra(then_read_upstream);
        } else if (upstream_deferred_) {
          upstream_deferred_ = false;
          OnRead(Side::kUpstream, {}, 0);
        } else if (then_read_upstream) {
          Read(Side::kUpstream);
        }
      });
}

}  // namespace dbw::relay
