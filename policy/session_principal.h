// SessionPrincipal: a session's principal as the running policy classifies it, shared by the
// relay and the tap so that both classify a session in exactly the same way.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "policy/policy.h"

namespace dbw::policy {

class SessionPrincipal {
 public:
  // The principal under `policy` for a session now called `application_name`. `identity()`
  // returns the session's identity fields (subject, db user, database, client address,
  // certificate subject, process); it is asked only when the session is classified again: for a
  // new policy or a new application_name (drivers such as pgjdbc set it with a SET after
  // connecting). Under one policy a session never goes from agent back to human: renaming itself
  // must not take an agent out of the agent rules.
  template <typename Identity>
  const Principal& Classified(const std::shared_ptr<const CompiledPolicy>& policy,
                              std::string_view application_name, Identity&& identity) {
    if (policy_ == policy && application_name_ == application_name) return principal_;
    const bool was_agent = policy_ == policy && principal_.kind == PrincipalKind::kAgent;
    Principal p = identity();
    p.application_name = std::string(application_name);
    policy->Classify(&p);
    if (was_agent) p.kind = PrincipalKind::kAgent;
    principal_ = std::move(p);
    policy_ = policy;  // held: a later policy at the same address must not pass for this one
    application_name_ = std::string(application_name);
    return principal_;
  }
  // The last classification (valid once Classified was called).
  const Principal& last() const { return principal_; }
  bool is_agent() const { return principal_.kind == PrincipalKind::kAgent; }
  // The identity changed (e.g. the process became known): classify again on the next call.
  void Reset() { policy_.reset(); }

 private:
  Principal principal_;
  std::shared_ptr<const CompiledPolicy> policy_;
  std::string application_name_;
};

// "agent" or "human", as audit records spell a principal's kind.
inline const char* KindName(PrincipalKind kind) {
  return kind == PrincipalKind::kAgent ? "agent" : "human";
}

}  // namespace dbw::policy
