// Shared by the gate's unit tests: the default pack, the principals and targets they judge for.
#pragma once

#include <memory>

#include <gtest/gtest.h>

#include "policy/loader.h"
#include "policy/policy.h"
#include "userspace/gate/statement_gate.h"

namespace dbw::gate::testing {

inline std::shared_ptr<const policy::CompiledPolicy> Pack(
    policy::Mode mode = policy::Mode::kEnforce) {
  auto p = policy::LoadPolicy({}, mode);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return *p;
}

inline policy::Principal Agent() {
  policy::Principal p;
  p.kind = policy::PrincipalKind::kAgent;
  p.db_user = p.subject = "svc_ai";
  return p;
}

inline policy::Principal Human() {
  policy::Principal p;
  p.db_user = p.subject = "alice";
  return p;
}

// The startup: the server reports its settings, then the first ReadyForQuery.
inline void Start(StatementGate* gate) {
  gate->OnParameterStatus("client_encoding", "UTF8");
  gate->OnParameterStatus("standard_conforming_strings", "on");
  gate->OnReadyForQuery('I');
}

inline const policy::Target kProd{"main", "prod"};
inline const policy::Target kDev{"dev", "dev"};

}  // namespace dbw::gate::testing
