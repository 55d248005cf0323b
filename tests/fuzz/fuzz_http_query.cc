// libFuzzer target: arbitrary bytes as an HTTP request target, through the API's pure parsers
// (target split, query string, events and stream filters, times, durations, cursors) and as a
// policy-evaluate body. Nothing may crash; a cursor that decodes must re-encode to itself.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "policy/policy.h"
#include "userspace/api/api.h"
#include "userspace/api/query.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto target = dbw::api::SplitTarget(in);
  std::string_view query = target.ok() ? std::string_view(target->query) : in;
  auto params = dbw::api::ParseQueryString(query);
  if (params.ok()) {
    auto events = dbw::api::ParseEventsQuery(*params, 1'700'000'000'000'000);
    if (events.ok() && (events->limit == 0 || events->limit > dbw::api::kMaxEventsLimit)) abort();
    auto stream = dbw::api::ParseStreamQuery(*params);
    if (stream.ok() && stream->wait > dbw::api::kMaxStreamWait) abort();
    for (const auto& [k, v] : params->items()) {
      dbw::api::ParseTime(v, 0).status().IgnoreError();
      dbw::api::ParseDuration(v).status().IgnoreError();
      dbw::api::ParseSeq(k, v).status().IgnoreError();
    }
  }
  auto seq = dbw::api::DecodeStreamCursor(in);
  if (seq.ok() && dbw::api::EncodeStreamCursor(*seq) != in) abort();
  auto decoded = dbw::api::PercentDecode(in);
  if (decoded.ok() && *dbw::api::PercentDecode(dbw::api::PercentEncode(*decoded)) != *decoded) {
    abort();
  }
  // The body of POST /v1/policy/evaluate (sql, principal, params ...) through the default pack.
  static auto policy = *dbw::policy::LoadPolicy({}, dbw::policy::Mode::kEnforce);
  dbw::api::EvaluateJson(in, *policy).status().IgnoreError();
  return 0;
}
