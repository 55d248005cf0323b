// libFuzzer target: the result masker. One input is a plan (column types, formats, rules,
// detectors on or off) followed by a DataRow body, a well-formed body built from length-
// prefixed values, a COPY text row, or free text. Masking must never crash, and what it writes
// must still frame: a DataRow body with the plan's column count, a COPY row with as many fields.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "userspace/common/byte_reader.h"
#include "userspace/masking/row_masker.h"
#include "userspace/protocol/postgres/parse.h"

namespace {

using dbw::masking::Detector;
using dbw::masking::DetectorRule;
using dbw::masking::DetectorSet;
using dbw::masking::Function;

// Input layout (see tests/masking/make_fuzz_seeds.py, which writes the seeds):
//   byte 0: mode. bits 0-1: 0 raw DataRow body, 1 built DataRow body, 2 COPY row, 3 free text;
//           bit 2: detectors on; bit 3: a plan with one column too many.
//   byte 1: column count (0-63)
//   per column 2 bytes: type selector, then flags (bit 0 binary, bits 1-3 rule, bits 4-7
//           keep_last)
//   the rest: payload. Built bodies read per column a length byte (0xff: NULL) and the bytes.
// Text types, scalars, bytea, and the arrays and records whose binary form is decoded.
constexpr uint32_t kOids[] = {25, 1043, 1042, 19,  18,   114,  142,  705,  3802, 23,
                              20, 17,   16,   701, 1009, 2249, 2287, 1007, 3807};

const DetectorSet* AllDetectors() {
  static std::shared_ptr<const DetectorSet> set = [] {
    std::vector<DetectorRule> rules;
    for (size_t i = 0; i < dbw::masking::kBuiltinDetectorCount; ++i) {
      DetectorRule r;
      r.detector = static_cast<Detector>(i);
      r.mask.function = static_cast<Function>(i % 4);
      rules.push_back(r);
    }
    DetectorRule custom;
    custom.detector = Detector::kCustom;
    custom.name = "employee_id";
    custom.regex = "EMP-[0-9]{3,6}|x[^y]{0,8}z";  // the second one can span value separators
    custom.mask.function = Function::kHash;
    rules.push_back(custom);
    auto compiled = DetectorSet::Compile(std::move(rules));
    if (!compiled.ok()) std::abort();
    return *compiled;
  }();
  return set.get();
}

std::array<uint8_t, 32> FakeHmac(std::string_view v) {
  std::array<uint8_t, 32> out{};
  for (size_t i = 0; i < v.size(); ++i) out[i % 32] ^= static_cast<uint8_t>(v[i] + i);
  return out;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

size_t CountTabs(std::string_view s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\t'));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dbw::masking;
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const size_t ncols = data[1] & 63;
  size_t pos = 2;
  if (size - pos < 2 * ncols) return 0;

  ResultPlan plan;
  for (size_t i = 0; i < ncols; ++i, pos += 2) {
    ColumnPlan c;
    c.type_oid = kOids[data[pos] % std::size(kOids)];
    uint8_t flags = data[pos + 1];
    c.format = flags & 1;
    int rule = (flags >> 1) & 7;
    if (rule >= 1 && rule <= 4) {
      MaskSpec spec;
      spec.function = static_cast<Function>(rule - 1);
      spec.keep_last = flags >> 4;
      c.rule = spec;
    }
    plan.columns.push_back(std::move(c));
  }
  if (mode & 4) plan.detectors = AllDetectors();
  plan.hmac = FakeHmac;
  std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(data) + pos, size - pos);

  std::string body;
  switch (mode & 3) {
    case 0:
      body.assign(dbw::AsStringView(payload));
      break;
    case 1: {
      // A well-formed body, so the masking logic (not just the framing checks) gets exercised.
      body.push_back(static_cast<char>(ncols >> 8));
      body.push_back(static_cast<char>(ncols));
      dbw::ByteReader r(payload);
      for (size_t i = 0; i < ncols; ++i) {
        uint8_t len = 0;
        std::span<const std::byte> v;
        if (!r.ReadU8(&len) || len == 0xff ||
            !r.ReadBytes(std::min<size_t>(len, r.remaining()), &v)) {
          body.append("\xff\xff\xff\xff", 4);
          continue;
        }
        uint32_t n = static_cast<uint32_t>(v.size());
        for (int s = 24; s >= 0; s -= 8) body.push_back(static_cast<char>(n >> s));
        body.append(dbw::AsStringView(v));
      }
      break;
    }
    case 2: {
      std::string_view line = dbw::AsStringView(payload);
      std::string out = "prefix";
      MaskStats stats;
      dbw::Status st = MaskCopyTextRow(plan, line, &out, &stats);
      if (!st.ok()) {
        Check(out == "prefix");
        return 0;
      }
      std::string_view masked = std::string_view(out).substr(6);
      Check(CountTabs(masked) == CountTabs(line));
      Check((!line.empty() && line.back() == '\n') == (!masked.empty() && masked.back() == '\n'));
      return 0;
    }
    case 3: {
      if (plan.detectors == nullptr) return 0;
      std::string text(dbw::AsStringView(payload));
      MaskStats stats;
      MaskFreeText(*plan.detectors, plan.hmac, &text, &stats);
      return 0;
    }
  }

  if (mode & 8) plan.columns.emplace_back();  // the body no longer matches the plan
  std::string out = "prefix";
  MaskStats stats;
  dbw::Status st = MaskDataRow(plan, dbw::AsBytes(body), &out, &stats);
  if (!st.ok()) {
    Check(out == "prefix");
    return 0;
  }
  dbw::pg::DataRowMessage row;
  std::string error;
  Check(dbw::pg::ParseDataRow(dbw::AsBytes(std::string_view(out).substr(6)), &row, &error));
  Check(row.values.size() == plan.columns.size());
  return 0;
}
