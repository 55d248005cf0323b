// ApprovalService: the request life cycle, its store and its audit events.
#include "userspace/approvals/service.h"

#include <algorithm>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>

#include "userspace/audit/event_json.h"
#include "userspace/common/logging.h"
#include "userspace/common/random_id.h"
#include "userspace/common/thread_name.h"

namespace dbw::approvals {
namespace {

namespace asio = boost::asio;

std::string Duration(int64_t seconds) {
  if (seconds % 3600 == 0 && seconds >= 3600) return std::to_string(seconds / 3600) + "h";
  if (seconds % 60 == 0 && seconds >= 60) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

std::string Joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

ApprovalService::ApprovalService(ServiceOptions options, audit::EventSink* sink)
    : options_(std::move(options)), sink_(sink) {
  auto& m = MetricsRegistry::Global();
  requested_ = m.GetCounter("dbwarden_approval_requests_total", "Approval requests created");
  const char* ends[3] = {"approved", "denied", "expired"};
  for (int i = 0; i < 3; ++i)
    decided_[i] =
        m.GetCounter("dbwarden_approval_decisions_total", "Approval requests decided, by outcome",
                     std::string("outcome=\"") + ends[i] + "\"");
  executed_ = m.GetCounter("dbwarden_approval_executions_total",
                           "Approved statements forwarded to the server");
  store_failures_ = m.GetCounter("dbwarden_approval_store_failures_total",
                                 "Approval store reads or writes that failed");
  pending_ = m.GetGauge("dbwarden_approval_pending", "Approval requests waiting for a decision");
  webhooks_ = std::make_unique<WebhookNotifier>(
      context_, options_.webhooks,
      WebhookPolicy{options_.webhook_attempts, options_.webhook_backoff, options_.webhook_timeout},
      [this](const std::string& id, const std::string& url, const std::string& error,
             int attempts) {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = requests_.find(id);
        if (it == requests_.end()) return;
        Emit(it->second, "webhook_failed", "agent",
             url + ": " + error + " (" + std::to_string(attempts) + " attempts)");
      });
}

StatusOr<std::unique_ptr<ApprovalService>> ApprovalService::Open(ServiceOptions options,
                                                                 audit::EventSink* sink) {
  std::unique_ptr<ApprovalService> s(new ApprovalService(std::move(options), sink));
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.keep_log_file_num = 4;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status st = rocksdb::DB::Open(db_options, s->options_.dir, &raw);
  if (!st.ok()) return Unavailable("approvals store " + s->options_.dir + ": " + st.ToString());
  s->db_.reset(raw);
  std::unique_ptr<rocksdb::Iterator> it(s->db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto r = ParseRequestJson(it->value().ToStringView());
    if (!r.ok()) {
      // Kept in the store for inspection; a request that cannot be read is never granted.
      s->store_failures_->Add();
      DBW_LOG(kError) << "approvals store: skipping record " << it->key().ToString() << ": "
                      << r.status().message();
      continue;
    }
    s->requests_[r->id] = std::move(*r);
  }
  if (!it->status().ok())
    return DataLoss("approvals store " + s->options_.dir + ": " + it->status().ToString());
  int64_t pending = 0;
  for (const auto& [id, r] : s->requests_) pending += r.state == State::kPending ? 1 : 0;
  s->pending_->Set(pending);
  return s;
}

ApprovalService::~ApprovalService() {
  Stop();
}

void ApprovalService::Start() {
  if (thread_.joinable()) return;
  work_.emplace(context_.get_executor());
  ScheduleSweep();
  thread_ = std::thread([this] {
    SetThreadName("dbw-approvals");
    context_.run();
  });
}

void ApprovalService::Stop() {
  if (!thread_.joinable()) return;
  asio::post(context_, [this] { sweep_timer_.cancel(); });
  work_.reset();
  context_.stop();
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  waiters_.clear();  // held statements stay pending in the store
}

void ApprovalService::ScheduleSweep() {
  sweep_timer_.expires_after(options_.sweep_interval);
  sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    SweepNow();
    ScheduleSweep();
  });
}

Status ApprovalService::Persist(const Request& r) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status st = db_->Put(wo, r.id, RequestJson(r, true));
  if (st.ok()) return Status::Ok();
  store_failures_->Add();
  DBW_LOG(kError) << "approvals store: cannot write request " << r.id << ": " << st.ToString();
  return Unavailable("the approvals store cannot record request " + r.id + ": " + st.ToString());
}

std::shared_ptr<const audit::SessionInfo> ApprovalService::SessionFor(const Request& r) const {
  auto it = sessions_.find(r.id);
  if (it != sessions_.end() && it->second) return it->second;
  // After a restart: the request's own record of the session.
  auto info = std::make_shared<audit::SessionInfo>();
  info->session_id = r.session_id;
  info->target = r.target;
  info->env = r.env;
  info->principal.kind = r.principal_kind;
  info->principal.db_user = r.db_user;
  info->principal.database = r.database;
  info->principal.application_name = r.application_name;
  info->principal.client_addr = r.client_addr;
  if (r.subject != r.db_user) info->principal.cert_subject = r.subject;
  if (r.pid != 0) {
    identity::ProcessInfo p;
    p.pid = r.pid;
    p.exe = r.exe;
    info->process = std::move(p);
  }
  return info;
}

void ApprovalService::Emit(const Request& r, const char* step, const std::string& actor,
                           const std::string& comment) {
  audit::Event e;
  e.kind = audit::EventKind::kApproval;
  e.ts_us = audit::NowMicros();
  e.session = SessionFor(r);
  audit::ApprovalInfo a;
  a.id = r.id;
  a.step = step;
  a.mode = r.mode == policy::ApprovalMode::kHold ? "hold" : "ticket";
  a.actor = actor;
  a.comment = comment;
  a.approvals = r.approvals();
  a.required = r.required;
  a.rules = r.rules;
  a.reason = r.reason;
  a.sql = r.normalized;
  a.fingerprint = r.fingerprint;
  e.approval = std::move(a);
  sink_->Submit(std::move(e));
}

std::string ApprovalService::HowToApprove(const std::string& id) const {
  std::string hint = "approve with: " + options_.approve_hint + " " + id;
  if (!options_.api_url.empty())
    hint += " (or POST " + options_.api_url + "/v1/approvals/" + id + "/approve)";
  return hint;
}

Outcome ApprovalService::RefusalFor(const Request& r) const {
  Outcome o;
  o.kind = Outcome::Kind::kRefuse;
  o.id = r.id;
  switch (r.state) {
    case State::kPending:
    case State::kApproved:  // ticket: refused now, runs when retried after approval
      o.sqlstate = r.sqlstate.empty() ? "42501" : r.sqlstate;
      o.message = "dbwarden: approval required (request " + r.id + "): " + r.reason;
      o.detail = "Policy rule(s): " + Joined(r.rules) + ". Once approved" +
                 (r.required > 1 ? " by " + std::to_string(r.required) + " approvers" : "") +
                 ", run the same statement again within " + Duration(r.grant_ttl_s) +
                 "; it runs once.";
      o.hint = HowToApprove(r.id);
      break;
    case State::kDenied: {
      std::string who = r.votes.empty() ? "an approver" : r.votes.back().who;
      o.sqlstate = "42501";
      o.message = "dbwarden: approval request " + r.id + " was denied by " + who;
      o.detail = r.end_detail.empty() ? "" : "Comment: " + r.end_detail;
      break;
    }
    case State::kExpired:
      o.sqlstate = "57014";
      o.message = "dbwarden: approval request " + r.id + " was not decided within " +
                  Duration(r.timeout_s) + "; the statement was not run";
      break;
    case State::kWithdrawn:
      o.sqlstate = "57014";
      o.message = "canceling statement due to user request";
      o.detail = "dbwarden: approval request " + r.id + " withdrawn: " + r.end_detail;
      break;
    case State::kExecuted:
      o.sqlstate = "42501";
      o.message = "dbwarden: approval request " + r.id + " was already used";
      break;
  }
  return o;
}

void ApprovalService::Submit(Request draft, std::shared_ptr<const audit::SessionInfo> session,
                             OutcomeCallback done) {
  asio::post(context_, [this, draft = std::move(draft), session = std::move(session),
                        done = std::move(done)]() mutable {
    SubmitOnThread(std::move(draft), std::move(session), std::move(done));
  });
}

void ApprovalService::SubmitOnThread(Request draft,
                                     std::shared_ptr<const audit::SessionInfo> session,
                                     OutcomeCallback done) {
  const int64_t now = audit::NowMicros();
  draft.match_key = MatchKey(draft.target, draft.database, draft.subject, draft.sql);
  Outcome outcome;
  bool notify = false;
  Request created;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // An approval for exactly this statement, not claimed by a waiting session: use it once.
    for (auto& [id, r] : requests_) {
      if (r.state != State::kApproved || r.match_key != draft.match_key || r.expires_us <= now ||
          waiters_.count(id) != 0)
        continue;
      Request next = r;
      next.state = State::kExecuted;
      next.executed_us = now;
      if (!Persist(next).ok()) break;  // not recorded as used: not used
      r = std::move(next);
      sessions_[id] = session;
      Emit(r, "executed", r.subject, "");
      executed_->Add();
      outcome.kind = Outcome::Kind::kRun;
      outcome.id = id;
      break;
    }
    if (outcome.kind != Outcome::Kind::kRun && draft.mode == policy::ApprovalMode::kTicket) {
      // Asked again while pending: the same request, not a new one.
      for (const auto& [id, r] : requests_) {
        if (r.state == State::kPending && r.match_key == draft.match_key && r.expires_us > now) {
          outcome = RefusalFor(r);
          outcome.detail = "The request is still waiting for approval. " + outcome.detail;
          break;
        }
      }
    }
    if (outcome.id.empty()) {
      draft.id = RandomHexId(6);
      while (requests_.count(draft.id) != 0) draft.id = RandomHexId(6);
      draft.state = State::kPending;
      draft.created_us = now;
      draft.expires_us = now + draft.timeout_s * 1'000'000;
      if (Status st = Persist(draft); !st.ok()) {
        outcome.kind = Outcome::Kind::kRefuse;
        outcome.sqlstate = "58000";
        outcome.message =
            "dbwarden: this statement needs approval, and the approval request "
            "could not be stored, so it was not run";
        outcome.detail = st.message();
      } else {
        const std::string id = draft.id;
        auto& r = requests_[id] = std::move(draft);
        sessions_[id] = session;
        requested_->Add();
        pending_->Add(1);
        Emit(r, "requested", r.subject, "");
        if (r.mode == policy::ApprovalMode::kHold) {
          waiters_[id] = done;
          outcome.kind = Outcome::Kind::kHeld;
          outcome.id = id;
          outcome.sqlstate = "01000";
          outcome.message =
              "dbwarden: statement held for approval (request " + id + "): " + r.reason;
          outcome.detail = "It runs once approved" +
                           (r.required > 1 ? " by " + std::to_string(r.required) + " approvers"
                                           : std::string()) +
                           ", and is refused if not decided within " + Duration(r.timeout_s) +
                           ". Cancel (Ctrl-C) withdraws the request.";
          outcome.hint = HowToApprove(id);
        } else {
          outcome = RefusalFor(r);
        }
        notify = true;
        created = r;
      }
    }
  }
  if (notify) Notify(created);
  done(outcome);
}

ApprovalService::OutcomeCallback ApprovalService::EndLocked(Request* r, State state,
                                                            const std::string& detail,
                                                            const std::string& actor,
                                                            const std::string& comment) {
  const bool was_pending = r->state == State::kPending;
  r->state = state;
  r->end_detail = detail;
  if (r->decided_us == 0) r->decided_us = audit::NowMicros();
  (void)Persist(*r);  // counted and logged; the outcome stands (a refusal is always safe)
  if (was_pending) pending_->Add(-1);
  if (state == State::kExpired) decided_[2]->Add();
  if (state == State::kDenied) decided_[1]->Add();
  Emit(*r, std::string(StateName(state)).c_str(), actor, comment);
  OutcomeCallback waiter;
  if (auto it = waiters_.find(r->id); it != waiters_.end()) {
    waiter = std::move(it->second);
    waiters_.erase(it);
  }
  return waiter;
}

void ApprovalService::Withdraw(const std::string& id, const std::string& why) {
  OutcomeCallback waiter;
  Outcome outcome;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = requests_.find(id);
    if (it == requests_.end() || it->second.state != State::kPending) return;
    waiter = EndLocked(&it->second, State::kWithdrawn, why, it->second.subject, why);
    outcome = RefusalFor(it->second);
  }
  if (waiter) waiter(outcome);
}

void ApprovalService::Detach(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  waiters_.erase(id);
}

void ApprovalService::Unexecute(const std::string& id, const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end() || it->second.state != State::kExecuted) return;
  Request next = it->second;
  next.state = State::kApproved;
  next.executed_us = 0;
  // The audit says what happened either way; a grant that cannot be stored is simply gone.
  if (Status st = Persist(next); !st.ok())
    DBW_LOG(kError) << "approval " << id << ": cannot store the unused grant: " << st.message();
  else
    it->second = std::move(next);
  Emit(it->second, "not_executed", "agent", why);
}

StatusOr<Request> ApprovalService::Vote(const std::string& id, const Approver& who, bool approve,
                                        const std::string& comment) {
  OutcomeCallback waiter;
  Outcome outcome;
  StatusOr<Request> result = VoteLocked(id, who, approve, comment, &waiter, &outcome);
  if (waiter) waiter(outcome);  // posts to its session; never called under the lock
  return result;
}

StatusOr<Request> ApprovalService::VoteLocked(const std::string& id, const Approver& who,
                                              bool approve, const std::string& comment,
                                              OutcomeCallback* waiter, Outcome* outcome) {
  const int64_t now = audit::NowMicros();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) return NotFound("no approval request " + id);
  Request& r = it->second;
  if (r.state == State::kPending && r.expires_us <= now) {
    *waiter = EndLocked(&r, State::kExpired, "timed out", "agent", "");
    *outcome = RefusalFor(r);
  }
  if (r.state != State::kPending)
    return FailedPrecondition("approval request " + id + " is " + std::string(StateName(r.state)) +
                              ", not pending");
  if (who.name == r.subject || who.name == r.db_user)
    return Status(StatusCode::kPermissionDenied,
                  who.name + " cannot approve or deny their own request " + id);
  if (!r.approver_groups.empty() &&
      std::none_of(who.groups.begin(), who.groups.end(), [&](const std::string& g) {
        return std::find(r.approver_groups.begin(), r.approver_groups.end(), g) !=
               r.approver_groups.end();
      }))
    return Status(StatusCode::kPermissionDenied, who.name +
                                                     " is not in an approver group of request " +
                                                     id + " (" + Joined(r.approver_groups) + ")");
  for (const auto& v : r.votes)
    if (v.who == who.name)
      return FailedPrecondition(who.name + " has already voted on request " + id);
  Request next = r;
  next.votes.push_back({who.name, now, approve, comment});
  const bool approved = approve && next.approvals() >= next.required;
  if (approved) {
    next.state = State::kApproved;
    next.decided_us = now;
    next.expires_us = now + next.grant_ttl_s * 1'000'000;
  }
  // The vote is durable before anything acts on it.
  if (Status st = Persist(next); !st.ok()) return st;
  r = std::move(next);
  if (!approve) {
    *waiter = EndLocked(&r, State::kDenied, comment, who.name, comment);
    *outcome = RefusalFor(r);
    return r;
  }
  if (!approved) {
    Emit(r, "vote", who.name, comment);
    return r;
  }
  pending_->Add(-1);
  decided_[0]->Add();
  Emit(r, "approved", who.name, comment);
  if (auto w = waiters_.find(id); w != waiters_.end()) {
    // The held statement runs now: the approval is used by it.
    r.state = State::kExecuted;
    r.executed_us = now;
    (void)Persist(r);
    Emit(r, "executed", r.subject, "");
    executed_->Add();
    *waiter = std::move(w->second);
    waiters_.erase(w);
    outcome->kind = Outcome::Kind::kRun;
    outcome->id = id;
  }
  return r;
}

void ApprovalService::SweepNow() {
  const int64_t now = audit::NowMicros();
  const int64_t keep_us = static_cast<int64_t>(options_.retention.count()) * 1'000'000;
  std::vector<std::pair<OutcomeCallback, Outcome>> calls;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = requests_.begin(); it != requests_.end();) {
      Request& r = it->second;
      if (r.state == State::kPending && r.expires_us <= now) {
        OutcomeCallback w = EndLocked(&r, State::kExpired, "timed out", "agent", "");
        if (w) calls.emplace_back(std::move(w), RefusalFor(r));
      } else if (r.state == State::kApproved && r.expires_us <= now) {
        EndLocked(&r, State::kExpired, "approved, but not run within the grant TTL", "agent", "");
      }
      int64_t ended = std::max({r.created_us, r.decided_us, r.executed_us});
      if (IsFinished(r.state) && keep_us > 0 && ended + keep_us <= now) {
        rocksdb::WriteOptions wo;
        if (!db_->Delete(wo, r.id).ok()) store_failures_->Add();
        sessions_.erase(r.id);
        it = requests_.erase(it);
        continue;
      }
      if (IsFinished(r.state)) sessions_.erase(r.id);
      ++it;
    }
  }
  for (auto& [w, o] : calls) w(o);
}

std::vector<Request> ApprovalService::List(std::optional<State> state, size_t limit) const {
  std::vector<Request> out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, r] : requests_)
      if (!state || r.state == *state) out.push_back(r);
  }
  std::sort(out.begin(), out.end(), [](const Request& a, const Request& b) {
    return a.created_us != b.created_us ? a.created_us > b.created_us : a.id < b.id;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

std::optional<Request> ApprovalService::Get(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(id);
  if (it == requests_.end()) return std::nullopt;
  return it->second;
}

bool ApprovalService::Waiting(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiters_.count(id) != 0;
}

void ApprovalService::Notify(const Request& r) {
  if (options_.webhooks.empty()) return;
  // Literal values stay out: the payload may land in a chat channel.
  std::string who = r.subject + (r.exe.empty() ? "" : " (" + r.exe + ")");
  std::string text = "dbwarden: approval needed for request " + r.id + " on " + r.target +
                     (r.env.empty() ? "" : " (" + r.env + ")") + ": " + who + " wants to run `" +
                     r.normalized + "`. " + r.reason + ". " + HowToApprove(r.id);
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto str = [&w](const char* key, const std::string& v) {
    w.Key(key);
    std::string clean = audit::JsonText(v);
    w.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
  };
  w.StartObject();
  str("text", text);
  str("event", "approval_requested");
  w.Key("request");
  std::string body = RequestJson(r, false);
  w.RawValue(body.data(), body.size(), rapidjson::kObjectType);
  if (!options_.api_url.empty()) str("url", options_.api_url + "/v1/approvals/" + r.id);
  w.EndObject();
  webhooks_->Send(r.id, std::string(buf.GetString(), buf.GetSize()));
}

}  // namespace dbw::approvals
