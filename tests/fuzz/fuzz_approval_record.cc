// libFuzzer target: arbitrary bytes as a stored approval request. Parsing must never crash; a
// record that parses must render to JSON that parses back to the same rendering.
#include <cstdint>
#include <string_view>

#include "userspace/approvals/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto r = dbw::approvals::ParseRequestJson(bytes);
  if (!r.ok()) return 0;
  std::string json = dbw::approvals::RequestJson(*r, true);
  auto again = dbw::approvals::ParseRequestJson(json);
  if (!again.ok() || dbw::approvals::RequestJson(*again, true) != json) __builtin_trap();
  (void)dbw::approvals::RequestJson(*r, false);
  return 0;
}
