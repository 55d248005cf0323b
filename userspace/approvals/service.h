// ApprovalService: approval requests, their durable store (RocksDB beside the audit log), the
// votes of approvers, expiry, the audit event of every step, and webhook notification.
//
// Threads: the relay calls Submit/Withdraw/Detach from its workers and gets answers on the
// service's own thread; the API calls Vote/List/Get from its workers. One mutex guards the
// requests; RocksDB writes are synchronous (a decision is never forgotten by a crash).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>

#include "userspace/approvals/request.h"
#include "userspace/approvals/webhook.h"
#include "userspace/audit/event.h"
#include "userspace/audit/sink.h"
#include "userspace/common/metrics.h"
#include "userspace/common/status.h"

namespace rocksdb {
class DB;
}

namespace dbw::approvals {

struct WebhookOptions {
  std::string url;  // http:// or https://
  std::vector<std::pair<std::string, std::string>> headers;
};

struct ServiceOptions {
  std::string dir;                                 // the RocksDB directory
  std::chrono::seconds retention{30 * 24 * 3600};  // finished requests are kept this long
  std::vector<WebhookOptions> webhooks;
  int webhook_attempts = 5;                                 // per webhook and request
  std::chrono::milliseconds webhook_backoff{1000};          // doubled after each failure, ≤ 60 s
  std::chrono::milliseconds webhook_timeout{5000};          // one attempt, connect to response
  std::string approve_hint = "dbwarden approvals approve";  // the command shown to people
  std::string api_url;  // the agent's API base URL, for links in notices and webhooks
  std::chrono::milliseconds sweep_interval{1000};  // how often expiry is checked
};

// Who votes: an API token's name and groups.
struct Approver {
  std::string name;
  std::vector<std::string> groups;
};

// What the relay does with a statement that needs approval.
struct Outcome {
  enum class Kind : uint8_t {
    kRun,     // forward it: an approval was granted for exactly this statement
    kHeld,    // hold mode: the statement waits; a second outcome follows
    kRefuse,  // answer with an ErrorResponse built from the fields below
  };
  Kind kind = Kind::kRefuse;
  std::string id;
  std::string sqlstate;
  std::string message;  // kHeld: the notice text
  std::string detail;
  std::string hint;
};

class ApprovalService {
 public:
  using OutcomeCallback = std::function<void(const Outcome&)>;

  // Opens (or creates) the store and loads every request; fails on a store it cannot read.
  static StatusOr<std::unique_ptr<ApprovalService>> Open(ServiceOptions options,
                                                         audit::EventSink* sink);
  ~ApprovalService();
  ApprovalService(const ApprovalService&) = delete;
  ApprovalService& operator=(const ApprovalService&) = delete;

  // Starts the service thread (expiry sweeps, webhooks, Submit). Stop joins it; a hold that is
  // still waiting is detached, and stays pending in the store.
  void Start();
  void Stop();

  // A statement whose decision is `approve`. `draft` carries the statement, the principal and
  // the rule's settings (mode, timeout, grant TTL, approvers); `session` is the requesting
  // session's audit snapshot. `done` runs on the service thread: once with kRun, kRefuse or
  // kHeld, and after kHeld once more with kRun or kRefuse. A grant for the same statement
  // (match key) from an approved request is used first, whatever the mode.
  void Submit(Request draft, std::shared_ptr<const audit::SessionInfo> session,
              OutcomeCallback done);
  // The client cancelled a held statement: the request ends withdrawn and its waiter is told.
  void Withdraw(const std::string& id, const std::string& why);
  // The held statement's session ended: the request stays pending; once approved, the same
  // statement may be re-run once within the grant TTL.
  void Detach(const std::string& id);
  // A held statement that was approved (its request marked executed) did not run after all:
  // its client hung up before the approval reached it, or its decision could not be audited.
  // The request goes back to approved, a grant the same statement may use within the TTL, and
  // a `not_executed` step records why.
  void Unexecute(const std::string& id, const std::string& why);

  // A vote. Errors: kNotFound, kFailedPrecondition (not pending, or a second vote by the same
  // approver), kPermissionDenied (own request, or not in the rule's approver groups).
  StatusOr<Request> Vote(const std::string& id, const Approver& who, bool approve,
                         const std::string& comment);
  // Newest first; `state` empty: every state.
  std::vector<Request> List(std::optional<State> state, size_t limit) const;
  std::optional<Request> Get(const std::string& id) const;
  // Whether a held statement's session is waiting on the request right now.
  bool Waiting(const std::string& id) const;

  // Runs one expiry and retention sweep now (the service thread does this periodically).
  void SweepNow();

 private:
  ApprovalService(ServiceOptions options, audit::EventSink* sink);

  void SubmitOnThread(Request draft, std::shared_ptr<const audit::SessionInfo> session,
                      OutcomeCallback done);
  Status Persist(const Request& r);  // under mu_
  void Emit(const Request& r, const char* step, const std::string& actor,
            const std::string& comment);  // under mu_ is fine: Submit never blocks
  std::shared_ptr<const audit::SessionInfo> SessionFor(const Request& r) const;
  Outcome RefusalFor(const Request& r) const;
  std::string HowToApprove(const std::string& id) const;
  void ScheduleSweep();
  void Notify(const Request& r);
  StatusOr<Request> VoteLocked(const std::string& id, const Approver& who, bool approve,
                               const std::string& comment, OutcomeCallback* waiter,
                               Outcome* outcome);
  // Ends a request (under mu_): sets state and detail, persists, emits; returns its waiter.
  OutcomeCallback EndLocked(Request* r, State state, const std::string& detail,
                            const std::string& actor, const std::string& comment);

  ServiceOptions options_;
  audit::EventSink* sink_;
  std::unique_ptr<rocksdb::DB> db_;

  mutable std::mutex mu_;  // guards requests_, waiters_, sessions_
  std::map<std::string, Request> requests_;
  std::map<std::string, OutcomeCallback> waiters_;  // held statements waiting, by request id
  std::map<std::string, std::shared_ptr<const audit::SessionInfo>> sessions_;

  boost::asio::io_context context_{1};
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  boost::asio::steady_timer sweep_timer_{context_};
  std::unique_ptr<WebhookNotifier> webhooks_;
  std::thread thread_;

  Counter* requested_;
  Counter* decided_[3];  // approved, denied, expired
  Counter* executed_;
  Counter* store_failures_;
  Gauge* pending_;
};

}  // namespace dbw::approvals
