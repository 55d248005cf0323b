// Helpers for policy tests: hand-built statement facts and policy loading from text.
#pragma once

#include <chrono>
#include <initializer_list>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "policy/loader.h"
#include "policy/policy.h"
#include "userspace/sql/facts.h"

namespace dbw::policy::testing {

inline sql::StatementFacts Stmt(sql::Command command, uint32_t risks = 0,
                                std::initializer_list<sql::TableRef> read = {},
                                std::initializer_list<sql::TableRef> written = {}) {
  sql::StatementFacts s;
  s.command = command;
  s.risks = risks;
  s.tables_read = read;
  s.tables_written = written;
  return s;
}

inline sql::QueryFacts Query(std::initializer_list<sql::StatementFacts> statements) {
  sql::QueryFacts q;
  q.statements = statements;
  return q;
}

inline Principal Agent(std::string db_user = "svc_ai") {
  Principal p;
  p.kind = PrincipalKind::kAgent;
  p.db_user = p.subject = std::move(db_user);
  return p;
}

inline Principal Human(std::string db_user = "alice") {
  Principal p;
  p.kind = PrincipalKind::kHuman;
  p.db_user = p.subject = std::move(db_user);
  return p;
}

inline Target Prod(std::string name = "orders") {
  return Target{std::move(name), "prod"};
}
inline Target Staging(std::string name = "orders") {
  return Target{std::move(name), "staging"};
}

// 2024-01-03 (a Wednesday) 12:00:00 UTC.
inline std::chrono::system_clock::time_point Noon() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(1704283200));
}

inline std::shared_ptr<const CompiledPolicy> MustLoad(const std::string& yaml,
                                                      Mode mode = Mode::kEnforce) {
  auto p = LoadPolicyText(yaml, "test.yaml", mode);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? *p : nullptr;
}

}  // namespace dbw::policy::testing
