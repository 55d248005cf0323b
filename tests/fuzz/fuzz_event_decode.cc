// libFuzzer target: arbitrary bytes as a stored audit record (and as a checkpoint, a posting
// block and a query cursor). Decoding must never crash; a record that decodes must yield terms
// and served JSON; a block that decodes must re-encode to the same bytes.
#include <cstdint>
#include <string_view>
#include <vector>

#include "userspace/audit/store_codec.h"
#include "userspace/audit/store_signing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dbw::audit::store;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Record rec;
  if (DecodeRecord(7, bytes, &rec).ok()) {
    Terms terms;
    if (ExtractTerms(rec.canonical, &terms).ok()) {
      for (const auto& [index, value] : terms.values) {
        std::string key = IndexKey(index, value, rec.ts_us, rec.seq);
        int64_t ts = 0;
        uint64_t seq = 0;
        if (!ParseIndexKeyTail(key, &ts, &seq) || ts != rec.ts_us || seq != rec.seq)
          __builtin_trap();
      }
    }
    std::string served = ServedJson(rec);
    if (served.size() < rec.canonical.size()) __builtin_trap();
  }
  std::vector<Posting> postings;
  if (DecodeBlock(bytes, &postings).ok()) {
    std::string again;
    EncodeBlock(postings, &again);
    if (again != bytes) __builtin_trap();
  }
  Checkpoint cp;
  DecodeCheckpoint(bytes, &cp).IgnoreError();
  int64_t ts = 0;
  uint64_t seq = 0;
  DecodeCursor(bytes, 0, &ts, &seq).IgnoreError();
  return 0;
}
