// DetectorSet: one Hyperscan block-mode database for all enabled rules, per-thread scratch, and
// the pass that turns Hyperscan's reports into validated, disjoint matches.
#include "userspace/masking/detectors.h"

#include <algorithm>
#include <atomic>
#include <limits>

#include <hs/hs.h>

#include "userspace/masking/validators.h"

namespace dbw::masking {
namespace {

struct DatabaseDeleter {
  void operator()(hs_database_t* db) const { hs_free_database(db); }
};
struct ScratchDeleter {
  void operator()(hs_scratch_t* s) const { hs_free_scratch(s); }
};
struct CompileErrorDeleter {
  void operator()(hs_compile_error_t* e) const { hs_free_compile_error(e); }
};
using DatabasePtr = std::unique_ptr<hs_database_t, DatabaseDeleter>;
using ScratchPtr = std::unique_ptr<hs_scratch_t, ScratchDeleter>;
using CompileErrorPtr = std::unique_ptr<hs_compile_error_t, CompileErrorDeleter>;

constexpr std::string_view kNames[] = {
    "email",          "payment_card", "us_ssn",       "iban",        "phone", "aws_access_key_id",
    "aws_secret_key", "github_token", "gitlab_token", "slack_token", "jwt",   "pem_private_key",
    "custom",
};
static_assert(std::size(kNames) == kBuiltinDetectorCount + 1);

// A pathological value (megabytes of digits) must not grow the report list without bound; past
// this many reports the scan fails and the caller withholds the row.
constexpr size_t kMaxReports = 1 << 22;
// Per-thread buffers larger than this after a scan are released, so one huge row does not pin
// its memory for the life of the thread.
constexpr size_t kKeepBytes = 1 << 20;
// Shorter ends tried per start when the longest fails validation.
constexpr size_t kMaxShorterTries = 64;

struct Report {
  uint32_t id = 0;
  uint32_t value = 0;  // filled after the scan
  uint32_t from = 0;
  uint32_t to = 0;
};

struct ScanContext {
  std::vector<Report>* reports = nullptr;
  uint32_t value = 0;  // the value a per-value rescan covers
  bool overflow = false;
};

int OnMatch(unsigned int id, unsigned long long from, unsigned long long to, unsigned int,
            void* ctx) {
  auto* c = static_cast<ScanContext*>(ctx);
  if (c->reports->size() >= kMaxReports) {
    c->overflow = true;
    return 1;  // stop scanning
  }
  c->reports->push_back(
      Report{id, c->value, static_cast<uint32_t>(from), static_cast<uint32_t>(to)});
  return 0;
}

// Per-thread state. One scratch serves every database this thread scans: hs_alloc_scratch grows
// it to fit each new one, and `fitted` remembers the last database it was checked against.
// The buffers are reused so a scan allocates nothing in steady state.
struct ThreadState {
  ScratchPtr scratch;
  uint64_t fitted = 0;
  std::string joined;
  std::vector<uint32_t> starts;
  std::vector<Report> reports;
  std::vector<uint8_t> rescan;
  std::vector<Match> candidates;
};
thread_local ThreadState t_state;

// Releases oversized buffers when a scan returns, whichever way it returns.
struct TrimOnExit {
  ThreadState& ts;
  ~TrimOnExit() {
    if (ts.joined.capacity() > kKeepBytes) std::string().swap(ts.joined);
    if (ts.reports.capacity() * sizeof(Report) > kKeepBytes) std::vector<Report>().swap(ts.reports);
    if (ts.candidates.capacity() * sizeof(Match) > kKeepBytes)
      std::vector<Match>().swap(ts.candidates);
  }
};

std::atomic<uint64_t> g_next_serial{1};

}  // namespace

struct DetectorSet::Impl {
  DatabasePtr db;
  ScratchPtr prototype;  // cloned by threads that have no scratch yet
  uint64_t serial = 0;
  std::vector<uint8_t> som;  // per rule: compiled with HS_FLAG_SOM_LEFTMOST
};

std::string_view DetectorName(Detector detector) {
  auto i = static_cast<size_t>(detector);
  return i < std::size(kNames) ? kNames[i] : std::string_view("unknown");
}

std::optional<Detector> DetectorFromName(std::string_view name) {
  for (size_t i = 0; i < std::size(kNames); ++i)
    if (kNames[i] == name) return static_cast<Detector>(i);
  return std::nullopt;
}

bool IsSecret(Detector detector) {
  switch (detector) {
    case Detector::kAwsAccessKeyId:
    case Detector::kAwsSecretKey:
    case Detector::kGithubToken:
    case Detector::kGitlabToken:
    case Detector::kSlackToken:
    case Detector::kJwt:
    case Detector::kPemPrivateKey:
      return true;
    default:
      return false;
  }
}

DetectorSet::~DetectorSet() = default;

StatusOr<std::shared_ptr<const DetectorSet>> DetectorSet::Compile(std::vector<DetectorRule> rules) {
  if (rules.size() > std::numeric_limits<uint32_t>::max() / 2)
    return InvalidArgument("too many detector rules");
  std::vector<const char*> expressions;
  std::vector<unsigned int> flags, ids;
  for (size_t i = 0; i < rules.size(); ++i) {
    DetectorRule& r = rules[i];
    if (static_cast<size_t>(r.detector) > kBuiltinDetectorCount)
      return InvalidArgument("detector rule " + std::to_string(i) + ": unknown detector");
    if (r.name.empty()) r.name = std::string(DetectorName(r.detector));
    const char* pattern = internal::BuiltinPattern(r.detector);
    if (r.detector == Detector::kCustom) {
      if (r.regex.empty()) return InvalidArgument("detector \"" + r.name + "\": empty pattern");
      if (r.regex.find('\0') != std::string::npos)
        return InvalidArgument("detector \"" + r.name + "\": NUL byte in pattern");
      pattern = r.regex.c_str();
    }
    expressions.push_back(pattern);
    // Custom patterns always track their start: nothing else could find it.
    bool som = r.detector == Detector::kCustom || internal::UsesStartOfMatch(r.detector);
    flags.push_back(som ? HS_FLAG_SOM_LEFTMOST : 0);
    ids.push_back(static_cast<unsigned int>(i));
  }
  std::vector<uint8_t> som_flags;
  for (unsigned int f : flags) som_flags.push_back((f & HS_FLAG_SOM_LEFTMOST) != 0);

  std::shared_ptr<DetectorSet> set(new DetectorSet());
  set->impl_ = std::make_unique<Impl>();
  set->impl_->serial = g_next_serial.fetch_add(1, std::memory_order_relaxed);
  set->impl_->som = std::move(som_flags);
  if (!rules.empty()) {
    hs_database_t* db = nullptr;
    hs_compile_error_t* error = nullptr;
    hs_error_t rc = hs_compile_multi(expressions.data(), flags.data(), ids.data(),
                                     static_cast<unsigned int>(expressions.size()), HS_MODE_BLOCK,
                                     nullptr, &db, &error);
    CompileErrorPtr error_guard(error);
    set->impl_->db.reset(db);
    if (rc != HS_SUCCESS) {
      std::string message = error != nullptr ? error->message : "unknown error";
      int at = error != nullptr ? error->expression : -1;
      if (at >= 0 && static_cast<size_t>(at) < rules.size()) {
        const DetectorRule& r = rules[at];
        Status st(
            r.detector == Detector::kCustom ? StatusCode::kInvalidArgument : StatusCode::kInternal,
            "detector \"" + r.name + "\": pattern rejected by Hyperscan: " + message);
        return st;
      }
      return Internal("Hyperscan compile failed: " + message);
    }
    // Allocated now so a database that cannot get scratch fails at load, not on a row.
    hs_scratch_t* proto = nullptr;
    if (hs_alloc_scratch(db, &proto) != HS_SUCCESS) {
      if (proto != nullptr) hs_free_scratch(proto);
      return Internal("Hyperscan scratch allocation failed");
    }
    set->impl_->prototype.reset(proto);
  }
  set->rules_ = std::move(rules);
  return std::shared_ptr<const DetectorSet>(std::move(set));
}

Status DetectorSet::Scan(std::span<const std::string_view> values, std::vector<Match>* out) const {
  if (!impl_ || !impl_->db || values.empty()) return Status::Ok();
  ThreadState& ts = t_state;
  TrimOnExit trim{ts};

  if (ts.fitted != impl_->serial) {
    if (!ts.scratch) {
      hs_scratch_t* s = nullptr;
      if (hs_clone_scratch(impl_->prototype.get(), &s) != HS_SUCCESS) {
        if (s != nullptr) hs_free_scratch(s);
        return Internal("Hyperscan scratch clone failed");
      }
      ts.scratch.reset(s);
    } else {
      // Grows the scratch to fit this database too; on failure Hyperscan has freed it and left
      // null behind, which reset() takes as it is.
      hs_scratch_t* s = ts.scratch.release();
      hs_error_t rc = hs_alloc_scratch(impl_->db.get(), &s);
      ts.scratch.reset(s);
      if (rc != HS_SUCCESS) {
        ts.fitted = 0;
        return Internal("Hyperscan scratch allocation failed");
      }
    }
    ts.fitted = impl_->serial;
  }

  // One buffer, values separated by 0x00: no built-in pattern matches 0x00, so a report that
  // spans a separator can only come from a custom pattern; those values are rescanned alone.
  std::string_view data;
  ts.starts.clear();
  size_t total = 0;
  for (std::string_view v : values) total += v.size() + 1;
  if (total > std::numeric_limits<uint32_t>::max() / 2) return Internal("row too large to scan");
  if (values.size() == 1) {
    data = values[0];
    ts.starts.push_back(0);
  } else {
    ts.joined.clear();
    ts.joined.reserve(total);
    for (std::string_view v : values) {
      ts.starts.push_back(static_cast<uint32_t>(ts.joined.size()));
      ts.joined.append(v);
      ts.joined.push_back('\0');
    }
    data = ts.joined;
  }

  ts.reports.clear();
  ScanContext ctx{&ts.reports, 0, false};
  hs_error_t rc = hs_scan(impl_->db.get(), data.data(), static_cast<unsigned int>(data.size()), 0,
                          ts.scratch.get(), OnMatch, &ctx);
  if (ctx.overflow) return ResourceExhausted("too many detector candidates in one row");
  if (rc != HS_SUCCESS) return Internal("Hyperscan scan failed (" + std::to_string(rc) + ")");

  // Map reports to values. Reports without a start are placed by their last byte (built-in
  // patterns never match the separator); a report with a start that crosses a separator marks
  // the values it touches.
  const std::vector<uint8_t>& som = impl_->som;
  auto value_of = [&](uint32_t offset) {
    return static_cast<uint32_t>(std::upper_bound(ts.starts.begin(), ts.starts.end(), offset) -
                                 ts.starts.begin() - 1);
  };
  bool any_rescan = false;
  if (values.size() > 1) {
    for (Report& r : ts.reports) {
      uint32_t v = value_of(som[r.id] ? r.from : r.to - 1);
      if (som[r.id] && r.to > ts.starts[v] + values[v].size()) {
        if (!any_rescan) ts.rescan.assign(values.size(), 0);
        any_rescan = true;
        for (uint32_t k = v, last = value_of(r.to - 1); k <= last; ++k) ts.rescan[k] = 1;
      }
      r.value = v;
      r.from = som[r.id] ? r.from - ts.starts[v] : 0;
      r.to -= ts.starts[v];
    }
  }
  if (any_rescan) {
    // For each end offset Hyperscan reports only the leftmost start, so a crossing report may
    // hide a match wholly inside a later value: scan those values on their own.
    std::erase_if(ts.reports, [&](const Report& r) { return ts.rescan[r.value] != 0; });
    for (uint32_t v = 0; v < values.size(); ++v) {
      if (ts.rescan[v] == 0 || values[v].empty()) continue;
      ScanContext one{&ts.reports, v, false};
      rc = hs_scan(impl_->db.get(), values[v].data(), static_cast<unsigned int>(values[v].size()),
                   0, ts.scratch.get(), OnMatch, &one);
      if (one.overflow) return ResourceExhausted("too many detector candidates in one row");
      if (rc != HS_SUCCESS) return Internal("Hyperscan scan failed (" + std::to_string(rc) + ")");
    }
  }
  if (ts.reports.empty()) return Status::Ok();

  // End-only reports: each is a candidate of its own, found around its end. Reports with a
  // start move to the front for grouping.
  ts.candidates.clear();
  size_t with_start = 0;
  for (const Report& r : ts.reports) {
    if (som[r.id]) {
      ts.reports[with_start++] = r;
      continue;
    }
    internal::Span span;
    if (internal::ExtractAt(rules_[r.id].detector, values[r.value], r.to, &span))
      ts.candidates.push_back(
          Match{r.id, r.value, static_cast<uint32_t>(span.begin), static_cast<uint32_t>(span.end)});
  }
  ts.reports.resize(with_start);

  // Reports with a start: group by (value, rule, start) and validate the longest end first,
  // then shorter ones (a match may run on into neighbouring text).
  std::sort(ts.reports.begin(), ts.reports.end(), [](const Report& a, const Report& b) {
    if (a.value != b.value) return a.value < b.value;
    if (a.id != b.id) return a.id < b.id;
    if (a.from != b.from) return a.from < b.from;
    return a.to > b.to;
  });
  for (size_t i = 0; i < ts.reports.size();) {
    size_t j = i;
    while (j < ts.reports.size() && ts.reports[j].value == ts.reports[i].value &&
           ts.reports[j].id == ts.reports[i].id && ts.reports[j].from == ts.reports[i].from)
      ++j;
    const Report& head = ts.reports[i];
    Detector d = rules_[head.id].detector;
    bool every = internal::EveryEndIsACandidate(d);
    size_t tries = every ? j - i : kMaxShorterTries;
    for (size_t k = i; k < j && k - i < tries; ++k) {
      if (k > i && ts.reports[k].to == ts.reports[k - 1].to) continue;  // duplicate report
      internal::Span span{ts.reports[k].from, ts.reports[k].to};
      if (!internal::Validate(d, values[head.value], &span)) continue;
      ts.candidates.push_back(Match{head.id, head.value, static_cast<uint32_t>(span.begin),
                                    static_cast<uint32_t>(span.end)});
      if (!every) break;
    }
    i = j;
  }

  // Overlaps: leftmost, then longest, then the first rule wins.
  std::sort(ts.candidates.begin(), ts.candidates.end(), [](const Match& a, const Match& b) {
    if (a.value != b.value) return a.value < b.value;
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end > b.end;
    return a.rule < b.rule;
  });
  uint32_t value = std::numeric_limits<uint32_t>::max(), end = 0;
  for (const Match& m : ts.candidates) {
    if (m.value != value) {
      value = m.value;
      end = 0;
    }
    if (m.begin < end) continue;
    out->push_back(m);
    end = m.end;
  }
  return Status::Ok();
}

}  // namespace dbw::masking
