// The policy engine's public interface: principals, decisions, and the compiled policy that
// judges a query's facts for a principal on a target. Pure: no sockets, no Asio.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "userspace/common/status.h"
#include "userspace/sql/facts.h"

namespace dbw::policy {

enum class PrincipalKind : uint8_t { kHuman, kAgent };

// Who is asking. Filled by the relay (or tap) from the startup packet, TLS and the peer process.
struct Principal {
  PrincipalKind kind = PrincipalKind::kHuman;  // set by CompiledPolicy::Classify
  std::string subject;  // verified identity: cert subject/JWT subject, else the db user
  std::vector<std::string> groups;
  std::string db_user;
  std::string database;
  std::string application_name;
  std::string client_addr;
  std::string cert_subject;  // verified client certificate: subject (RFC 2253),
  std::string cert_san;      // its URI SAN (a SPIFFE ID: spiffe://trust-domain/path),
  std::string cert_issuer;   // and its issuer's subject
  // A verified token (targets[].auth.token): its issuer, its claims (every value as text), and
  // the kind its issuer or a claim asserts. Agent matchers may still classify a human an agent.
  std::string issuer;
  std::vector<std::pair<std::string, std::vector<std::string>>> claims;
  std::optional<PrincipalKind> asserted_kind;
  std::string exe;        // peer process executable, when known
  std::string unit;       // systemd unit, when known
  std::string container;  // container id, when known
};

struct Target {
  std::string name;
  std::string env;
};

// Ordered by strictness: a multi-statement query takes its strictest statement's decision.
enum class Action : uint8_t { kAllow = 0, kLog = 1, kApprove = 2, kDeny = 3 };
std::string_view ActionName(Action action);

enum class Mode : uint8_t { kEnforce, kMonitor };

enum class ApprovalMode : uint8_t { kHold, kTicket };
struct ApprovalSpec {
  ApprovalMode mode = ApprovalMode::kHold;
  std::chrono::seconds timeout{600};     // hold: how long the statement waits
  std::chrono::seconds grant_ttl{3600};  // ticket: how long an approval stays usable
  int approvers = 1;                     // distinct approvers required
  std::vector<std::string> approver_groups;
};

// Runtime effect limits (rules with `action: limit`): what an allowed statement may actually do,
// enforced by the relay while it runs. 0 = no limit on that dimension.
struct EffectLimits {
  uint64_t max_rows = 0;        // rows inserted, updated or deleted (every table, triggers too)
  uint64_t max_read_rows = 0;   // result rows sent to the client
  uint64_t max_read_bytes = 0;  // result bytes sent to the client
  // The rule each limit comes from (named in the error the client gets).
  std::string write_rule, read_rows_rule, read_bytes_rule;
  bool any() const { return max_rows != 0 || max_read_rows != 0 || max_read_bytes != 0; }
};

struct Decision {
  Action action = Action::kAllow;
  std::vector<std::string> rules;        // ids of the rules that produced the action
  std::string reason;                    // human-readable, names the rule(s)
  std::string sqlstate;                  // for deny: the rule's SQLSTATE (default 42501)
  std::optional<ApprovalSpec> approval;  // for approve
  // allow/log only: the tightest limits of every matching `limit` rule. An approved statement
  // runs as a human approved it; a refused one does not run.
  std::optional<EffectLimits> limits;
  // In monitor mode `action` is what enforcement would have done; the relay lets it run.
  bool monitor = false;
};

class MaskingProfile;  // policy/masking.h

class CompiledPolicy {
 public:
  virtual ~CompiledPolicy() = default;
  // Sets principal->kind from the policy's `principals.agents` matchers, and adds the groups of
  // `principals.groups` whose matchers it satisfies to principal->groups.
  virtual void Classify(Principal* principal) const = 0;
  // The masking that applies to this principal on this target (exemptions resolved), or null
  // when nothing is masked. Profiles are built once per distinct set of applicable rules and
  // shared; call it when a session starts or its principal changes, not per row.
  virtual std::shared_ptr<const MaskingProfile> Masking(const Target& target,
                                                        const Principal& principal) const = 0;
  // Judges every statement of `facts`; the strictest decision wins and names its rules.
  virtual Decision Evaluate(const Target& target, const Principal& principal,
                            const sql::QueryFacts& facts,
                            std::chrono::system_clock::time_point now) const = 0;
  virtual Mode mode() const = 0;
  virtual size_t rule_count() const = 0;
  // Where the policy came from, for logs and audit ("default pack", file list).
  virtual const std::string& source() const = 0;
};

// Loads policy files (paths or globs; empty = the built-in default pack
// policy/packs/guardrails.yaml compiled into the binary). Errors read "FILE:LINE: reason".
StatusOr<std::shared_ptr<const CompiledPolicy>> LoadPolicy(const std::vector<std::string>& files,
                                                           Mode mode);

// The running policy, swapped atomically on reload; readers never block.
class PolicyStore {
 public:
  explicit PolicyStore(std::shared_ptr<const CompiledPolicy> initial)
      : current_(std::move(initial)) {}
  std::shared_ptr<const CompiledPolicy> Get() const { return std::atomic_load(&current_); }
  void Set(std::shared_ptr<const CompiledPolicy> next) {
    std::atomic_store(&current_, std::move(next));
  }

 private:
  std::shared_ptr<const CompiledPolicy> current_;
};

}  // namespace dbw::policy
