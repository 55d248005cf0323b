// Anchor files (audit verify --anchors, the agent's start-up check): any bytes parse or are
// rejected with a line number; what parses formats back to lines that parse to the same anchors.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "userspace/audit/store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto anchors = dbw::audit::ParseAnchors(text, "fuzz");
  if (!anchors.ok()) {
    if (anchors.status().message().rfind("fuzz:", 0) != 0) std::abort();  // names the line
    return 0;
  }
  std::string again;
  for (const auto& a : *anchors) again += dbw::audit::FormatAnchor(a) + "\n";
  auto reparsed = dbw::audit::ParseAnchors(again, "again");
  if (!reparsed.ok() || reparsed->size() != anchors->size()) std::abort();
  for (size_t i = 0; i < anchors->size(); ++i) {
    const auto& x = (*anchors)[i];
    const auto& y = (*reparsed)[i];
    if (x.seq != y.seq || x.hash != y.hash || x.ts_us != y.ts_us || x.public_key != y.public_key ||
        x.signature != y.signature)
      std::abort();
  }
  return 0;
}
