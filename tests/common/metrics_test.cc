// MetricsRegistry's Prometheus rendering: counters, a counter kept in ns and exported in seconds.
#include "userspace/common/metrics.h"

#include <gtest/gtest.h>

namespace dbw {
namespace {

TEST(MetricsRegistry, ScaledCounterIsExportedInBaseUnits) {
  MetricsRegistry m;
  m.GetCounter("dbwarden_things_total", "Things", "kind=\"a\"")->Add(3);
  Counter* ns =
      m.GetScaledCounter("dbwarden_run_time_seconds_total", "Run time", 1e-9, "program=\"p\"");
  ns->Add(1'500'000'001);
  const std::string text = m.RenderPrometheus();
  EXPECT_NE(text.find("# HELP dbwarden_run_time_seconds_total Run time\n"
                      "# TYPE dbwarden_run_time_seconds_total counter\n"
                      "dbwarden_run_time_seconds_total{program=\"p\"} 1.500000001\n"),
            std::string::npos)
      << text;
  // Integer counters stay integers, after a scaled family too.
  EXPECT_NE(text.find("dbwarden_things_total{kind=\"a\"} 3\n"), std::string::npos) << text;
  EXPECT_EQ(
      ns, m.GetScaledCounter("dbwarden_run_time_seconds_total", "Run time", 1e-9, "program=\"p\""));
}

}  // namespace
}  // namespace dbw
