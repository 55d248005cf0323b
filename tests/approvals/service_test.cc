// ApprovalService against a real RocksDB in a temp dir, with a sink that keeps the events: the
// request life cycle, who may vote, expiry, tickets, withdrawal, restart, retention, and the
// stored JSON.
#include "userspace/approvals/service.h"

#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

namespace dbw::approvals {
namespace {

class RecordingSink : public audit::EventSink {
 public:
  void Submit(audit::Event event) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
  }
  void SubmitAndWait(audit::Event event, CommitCallback done) override {
    Submit(std::move(event));
    done(Status::Ok(), 0);
  }
  // (step, actor) of every approval event of request `id`, in order.
  std::vector<std::pair<std::string, std::string>> Steps(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& e : events_)
      if (e.approval && e.approval->id == id) out.emplace_back(e.approval->step, e.approval->actor);
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<audit::Event> events_;
};

// Collects the outcomes the service sends for one Submit.
struct Outcomes {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Outcome> got;
  ApprovalService::OutcomeCallback Callback() {
    return [this](const Outcome& o) {
      std::lock_guard<std::mutex> lock(mu);
      got.push_back(o);
      cv.notify_all();
    };
  }
  Outcome Wait(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return got.size() >= n; }))
        << "outcome " << n << " never came";
    return got.size() >= n ? got[n - 1] : Outcome{};
  }
  size_t Count() {
    std::lock_guard<std::mutex> lock(mu);
    return got.size();
  }
};

Request Draft(policy::ApprovalMode mode, std::string sql = "DELETE FROM orders",
              std::string user = "app") {
  Request r;
  r.mode = mode;
  r.target = "orders";
  r.env = "prod";
  r.subject = user;
  r.db_user = user;
  r.database = "appdb";
  r.sql = std::move(sql);
  r.normalized = "DELETE FROM orders";
  r.rules = {"rule-1"};
  r.reason = "needs approval";
  r.timeout_s = 600;
  r.grant_ttl_s = 600;
  return r;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("dbw-approvals-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    Open();
  }
  void TearDown() override {
    service_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open(std::chrono::seconds retention = std::chrono::hours(24)) {
    service_.reset();
    ServiceOptions o;
    o.dir = dir_.string();
    o.retention = retention;
    o.sweep_interval = std::chrono::hours(1);  // the tests sweep by hand
    auto s = ApprovalService::Open(o, &sink_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    service_ = std::move(*s);
    service_->Start();
  }
  Outcome Submit(Request draft, Outcomes* out) {
    service_->Submit(std::move(draft), nullptr, out->Callback());
    return out->Wait(1);
  }

  std::filesystem::path dir_;
  RecordingSink sink_;
  std::unique_ptr<ApprovalService> service_;
};

const Approver kAlice{"alice", {"dba"}};
const Approver kBob{"bob", {"dba"}};
const Approver kCarol{"carol", {}};

TEST_F(ServiceTest, HoldApprovedRunsTheWaitingStatement) {
  Outcomes out;
  Outcome held = Submit(Draft(policy::ApprovalMode::kHold), &out);
  ASSERT_EQ(held.kind, Outcome::Kind::kHeld);
  EXPECT_NE(held.message.find("request " + held.id), std::string::npos);
  EXPECT_NE(held.hint.find("dbwarden approvals approve " + held.id), std::string::npos);
  EXPECT_TRUE(service_->Waiting(held.id));
  auto voted = service_->Vote(held.id, kAlice, true, "ok");
  ASSERT_TRUE(voted.ok()) << voted.status().message();
  EXPECT_EQ(voted->state, State::kExecuted);
  Outcome run = out.Wait(2);
  EXPECT_EQ(run.kind, Outcome::Kind::kRun);
  EXPECT_EQ(run.id, held.id);
  EXPECT_EQ(sink_.Steps(held.id),
            (std::vector<std::pair<std::string, std::string>>{
                {"requested", "app"}, {"approved", "alice"}, {"executed", "app"}}));
}

TEST_F(ServiceTest, WhoMayVote) {
  Outcomes out;
  Request d = Draft(policy::ApprovalMode::kHold);
  d.required = 2;
  d.approver_groups = {"dba"};
  Outcome held = Submit(d, &out);
  auto self = service_->Vote(held.id, Approver{"app", {"dba"}}, true, "");
  EXPECT_EQ(self.status().code(), StatusCode::kPermissionDenied);
  auto outsider = service_->Vote(held.id, kCarol, true, "");
  EXPECT_EQ(outsider.status().code(), StatusCode::kPermissionDenied);
  auto first = service_->Vote(held.id, kAlice, true, "");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->state, State::kPending);
  EXPECT_EQ(first->approvals(), 1);
  EXPECT_EQ(service_->Vote(held.id, kAlice, true, "").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(out.Count(), 1u) << "one approval of two must not release the statement";
  auto second = service_->Vote(held.id, kBob, true, "");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(out.Wait(2).kind, Outcome::Kind::kRun);
  EXPECT_EQ(service_->Vote("nope", kBob, true, "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(service_->Vote(held.id, kCarol, false, "").status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(ServiceTest, DeniedExpiredAndWithdrawnRefuse) {
  Outcomes denied, expired, withdrawn;
  Outcome a = Submit(Draft(policy::ApprovalMode::kHold, "DELETE FROM a"), &denied);
  ASSERT_TRUE(service_->Vote(a.id, kBob, false, "not now").ok());
  Outcome refusal = denied.Wait(2);
  EXPECT_EQ(refusal.kind, Outcome::Kind::kRefuse);
  EXPECT_EQ(refusal.sqlstate, "42501");
  EXPECT_NE(refusal.message.find("denied by bob"), std::string::npos);
  EXPECT_NE(refusal.detail.find("not now"), std::string::npos);

  Request d = Draft(policy::ApprovalMode::kHold, "DELETE FROM b");
  d.timeout_s = 0;  // already due
  Outcome b = Submit(d, &expired);
  service_->SweepNow();
  EXPECT_EQ(expired.Wait(2).sqlstate, "57014");
  EXPECT_EQ(service_->Get(b.id)->state, State::kExpired);
  EXPECT_EQ(sink_.Steps(b.id).back(), (std::pair<std::string, std::string>{"expired", "agent"}));

  Outcome c = Submit(Draft(policy::ApprovalMode::kHold, "DELETE FROM c"), &withdrawn);
  service_->Withdraw(c.id, "cancelled by the client");
  Outcome w = withdrawn.Wait(2);
  EXPECT_EQ(w.sqlstate, "57014");
  EXPECT_NE(w.detail.find(c.id), std::string::npos);
  EXPECT_EQ(service_->Get(c.id)->state, State::kWithdrawn);
  EXPECT_EQ(service_->List(State::kPending, 10).size(), 0u);
}

TEST_F(ServiceTest, TicketGrantsOneRunOfTheSameStatement) {
  Outcomes o1, o2, o3, o4, o5, o6;
  Request d = Draft(policy::ApprovalMode::kTicket, "DELETE FROM ledger WHERE id = 1");
  d.sqlstate = "DBW01";
  Outcome first = Submit(d, &o1);
  ASSERT_EQ(first.kind, Outcome::Kind::kRefuse);
  EXPECT_EQ(first.sqlstate, "DBW01");
  EXPECT_NE(first.message.find("request " + first.id), std::string::npos);
  EXPECT_EQ(Submit(d, &o2).id, first.id) << "asked again while pending: the same request";
  ASSERT_TRUE(service_->Vote(first.id, kAlice, true, "").ok());
  EXPECT_EQ(service_->Get(first.id)->state, State::kApproved);
  // Another principal or another literal is not covered.
  EXPECT_NE(Submit(Draft(policy::ApprovalMode::kTicket, d.sql, "other"), &o3).id, first.id);
  EXPECT_EQ(
      Submit(Draft(policy::ApprovalMode::kTicket, "DELETE FROM ledger WHERE id = 2"), &o4).kind,
      Outcome::Kind::kRefuse);
  // Formatting does not matter; it runs once.
  Outcome run =
      Submit(Draft(policy::ApprovalMode::kTicket, "DELETE  FROM ledger -- ok\nWHERE id = 1"), &o5);
  EXPECT_EQ(run.kind, Outcome::Kind::kRun);
  EXPECT_EQ(run.id, first.id);
  EXPECT_EQ(service_->Get(first.id)->state, State::kExecuted);
  Outcome again = Submit(d, &o6);
  EXPECT_EQ(again.kind, Outcome::Kind::kRefuse);
  EXPECT_NE(again.id, first.id);
}

// An approved hold whose statement could not run (its client hung up as the approval arrived)
// goes back to approved with a `not_executed` step: the same statement may still run once, and
// the state survives a restart.
TEST_F(ServiceTest, UnexecutedApprovalBecomesAGrant) {
  Outcomes o1, o2, o3;
  Outcome held = Submit(Draft(policy::ApprovalMode::kHold), &o1);
  ASSERT_EQ(held.kind, Outcome::Kind::kHeld);
  ASSERT_TRUE(service_->Vote(held.id, kAlice, true, "").ok());
  ASSERT_EQ(o1.Wait(2).kind, Outcome::Kind::kRun);
  service_->Unexecute(held.id, "the client disconnected before the approved statement ran");
  EXPECT_EQ(service_->Get(held.id)->state, State::kApproved);
  EXPECT_EQ(service_->Get(held.id)->executed_us, 0);
  service_->Unexecute(held.id, "twice");  // not executed: nothing to undo
  EXPECT_EQ(sink_.Steps(held.id),
            (std::vector<std::pair<std::string, std::string>>{{"requested", "app"},
                                                              {"approved", "alice"},
                                                              {"executed", "app"},
                                                              {"not_executed", "agent"}}));
  Open();  // the store says approved, not executed
  EXPECT_EQ(service_->Get(held.id)->state, State::kApproved);
  Outcome rerun = Submit(Draft(policy::ApprovalMode::kHold), &o2);
  EXPECT_EQ(rerun.kind, Outcome::Kind::kRun);
  EXPECT_EQ(rerun.id, held.id);
  EXPECT_EQ(service_->Get(held.id)->state, State::kExecuted);
  EXPECT_EQ(Submit(Draft(policy::ApprovalMode::kHold), &o3).kind, Outcome::Kind::kHeld);
}

TEST_F(ServiceTest, PendingRequestSurvivesRestartAndBecomesAGrant) {
  Outcomes out;
  Outcome held = Submit(Draft(policy::ApprovalMode::kHold), &out);
  service_->Stop();
  Open();
  auto kept = service_->Get(held.id);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->state, State::kPending);
  EXPECT_EQ(kept->sql, "DELETE FROM orders");
  EXPECT_FALSE(service_->Waiting(held.id));
  ASSERT_EQ(service_->Vote(held.id, kAlice, true, "")->state, State::kApproved);
  Outcomes rerun;
  Outcome run = Submit(Draft(policy::ApprovalMode::kHold), &rerun);
  EXPECT_EQ(run.kind, Outcome::Kind::kRun);
  EXPECT_EQ(run.id, held.id);
  service_->Stop();
  Open();
  EXPECT_EQ(service_->Get(held.id)->state, State::kExecuted);
}

TEST_F(ServiceTest, RetentionDropsFinishedRequests) {
  Open(std::chrono::seconds(1));
  Outcomes a, b;
  Outcome ended = Submit(Draft(policy::ApprovalMode::kHold, "DELETE FROM x"), &a);
  ASSERT_TRUE(service_->Vote(ended.id, kAlice, false, "").ok());
  Outcome pending = Submit(Draft(policy::ApprovalMode::kHold, "DELETE FROM y"), &b);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  service_->SweepNow();
  EXPECT_FALSE(service_->Get(ended.id).has_value());
  EXPECT_TRUE(service_->Get(pending.id).has_value()) << "pending requests are never dropped";
  service_->Stop();
  Open(std::chrono::seconds(1));
  EXPECT_FALSE(service_->Get(ended.id).has_value()) << "deleted from the store too";
}

TEST(RequestJsonTest, RoundTrips) {
  Request r = Draft(policy::ApprovalMode::kTicket, "DELETE FROM t WHERE n = 'caf\xc3\xa9'");
  r.id = "abc123";
  r.state = State::kApproved;
  r.created_us = 1'700'000'000'000'000;
  r.expires_us = r.created_us + 5;
  r.groups = {"g1"};
  r.pid = 42;
  r.exe = "/usr/bin/psql";
  r.required = 2;
  r.approver_groups = {"dba"};
  r.votes = {{"alice", r.created_us + 1, true, "fine"}, {"bob", r.created_us + 2, false, ""}};
  r.match_key = MatchKey(r.target, r.database, r.subject, r.sql);
  auto back = ParseRequestJson(RequestJson(r, true));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(RequestJson(*back, true), RequestJson(r, true));
  EXPECT_EQ(back->sql, r.sql);
  EXPECT_EQ(back->votes.size(), 2u);
  EXPECT_FALSE(back->votes[1].approve);
  // (The literal with its é: "caf" alone may appear in the match key's hex.)
  EXPECT_EQ(RequestJson(r, false).find("caf\xc3\xa9"), std::string::npos) << "no literal text";
  EXPECT_FALSE(ParseRequestJson("{}").ok());
  EXPECT_FALSE(ParseRequestJson("not json").ok());
}

TEST(MatchKeyTest, BindsTargetDatabaseSubjectAndLiterals) {
  std::string k = MatchKey("t", "db", "app", "DELETE FROM x WHERE id = 1");
  EXPECT_EQ(k, MatchKey("t", "db", "app", "DELETE  FROM x /* c */ WHERE id = 1"));
  EXPECT_NE(k, MatchKey("t", "db", "app", "DELETE FROM x WHERE id = 2"));
  EXPECT_NE(k, MatchKey("t", "db", "bob", "DELETE FROM x WHERE id = 1"));
  EXPECT_NE(k, MatchKey("t", "db2", "app", "DELETE FROM x WHERE id = 1"));
  EXPECT_NE(k, MatchKey("t2", "db", "app", "DELETE FROM x WHERE id = 1"));
  EXPECT_NE(MatchKey("ab", "c", "", ""), MatchKey("a", "bc", "", ""));
}

}  // namespace
}  // namespace dbw::approvals
