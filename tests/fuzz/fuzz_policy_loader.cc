// libFuzzer target: arbitrary bytes as a policy file, through LoadPolicy (file read, YAML parse,
// validation, compilation) and, when it loads, one evaluation. It must never crash or hang.
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    return std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
  }();
  std::string path = dir + "/dbw-fuzz-policy-XXXXXX";
  int fd = ::mkstemp(path.data());
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  auto policy = dbw::policy::LoadPolicy({path}, dbw::policy::Mode::kEnforce);
  ::unlink(path.c_str());
  if (!policy.ok()) {
    // Errors must carry the file name and a line.
    if (policy.status().message().rfind(path + ":", 0) != 0) std::abort();
    return 0;
  }
  dbw::sql::QueryFacts facts;
  facts.statements.emplace_back();
  facts.statements.back().command = dbw::sql::Command::kDelete;
  facts.statements.back().risks = dbw::sql::kRiskNoWhere | dbw::sql::kRiskWrite;
  facts.statements.back().tables_written.push_back({"public", "orders"});
  dbw::policy::Principal who;
  who.db_user = "svc_ai";
  (*policy)->Classify(&who);
  dbw::policy::Decision d =
      (*policy)->Evaluate({"orders", "prod"}, who, facts, std::chrono::system_clock::time_point{});
  if (d.action != dbw::policy::Action::kAllow && d.rules.empty()) std::abort();
  return 0;
}
