// Shared by the export formats (event_formats*.cc): the native event behind an accessor that
// tracks the fields a format carried, what every format derives the same way, and the JSON and
// address helpers. Not part of the module's interface.
#pragma once

#include <simdjson.h>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "userspace/common/status.h"

#ifndef DBWARDEN_VERSION
#define DBWARDEN_VERSION "0.0.0"
#endif

namespace dbw::audit::formats {

using simdjson::dom::element;
using simdjson::dom::element_type;
using Alloc = rapidjson::Document::AllocatorType;

// Hashes std::string and std::string_view alike, so sets of paths are searched without copies.
struct PathHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

rapidjson::Value JsonStr(std::string_view s, Alloc& a);

// A copy of a parsed value as a RapidJSON value.
rapidjson::Value Copy(element e, Alloc& a);

// The native event. Peek reads a field; Take reads one a format carries exactly, so Rest()
// leaves it out. Paths are dotted ("principal.db_user"): native keys at the levels formats map
// never contain dots, and a key that does is never treated as taken.
class Native {
 public:
  Status Parse(std::string_view json);

  uint64_t Seq() const { return seq_; }

  std::optional<element> At(std::string_view path) const;
  std::string_view Str(std::string_view path) const;
  std::optional<uint64_t> Uint(std::string_view path) const;
  bool True(std::string_view path) const;
  std::vector<std::string_view> Strings(std::string_view path) const;

  void Take(std::string_view path);
  std::string_view TakeStr(std::string_view path);
  std::optional<uint64_t> TakeUint(std::string_view path);

  // Every field not taken, nested as in the native event; objects left empty are dropped.
  rapidjson::Value Rest(Alloc& a) const;

 private:
  bool Taken(std::string_view path) const;
  bool TakenBelow(std::string_view path) const;
  rapidjson::Value RestOf(simdjson::dom::object obj, std::string* path, Alloc& a) const;

  element root_;
  uint64_t seq_ = 0;
  // Paths taken, and every proper prefix of one (objects that hold a taken field).
  std::unordered_set<std::string, PathHash, std::equal_to<>> taken_, below_;
};

// ---- What every format derives the same way ----

enum class Outcome : uint8_t { kUnknown, kSuccess, kFailure };
const char* OutcomeName(Outcome o);

// OCSF 1.8 datastore_activity activity_id (events/application/datastore_activity.json).
struct Activity {
  int id;
  const char* caption;
  int rank;  // of several statements in one query, the highest rank names the activity
};
inline constexpr Activity kActUnknown{0, "Unknown", 0}, kActQuery{4, "Query", 1},
    kActRead{1, "Read", 2}, kActWrite{5, "Write", 3}, kActUpdate{2, "Update", 4},
    kActCreate{6, "Create", 5}, kActDelete{7, "Delete", 6}, kActConnect{3, "Connect", 0},
    kActOther{99, "Other", 0};

// OCSF disposition_id (dictionary.json) and security_control action_id, with the verb the
// event's name uses.
struct Disposition {
  int id;
  const char* caption;
  int action_id;
  const char* action;
  const char* verb;
};
inline constexpr Disposition kAllowed{1, "Allowed", 1, "Allowed", "allowed"},
    kBlocked{2, "Blocked", 2, "Denied", "blocked"},
    kApproved{8, "Approved", 1, "Allowed", "approved"},
    kDetected{15, "Detected", 3, "Observed", "flagged (monitor mode)"},
    kLogged{17, "Logged", 3, "Observed", "logged"};

inline constexpr std::array<const char*, 6> kSeverityCaption = {
    "Unknown", "Informational", "Low", "Medium", "High", "Critical"};
inline constexpr std::array<int, 6> kCefSeverity = {0, 1, 3, 5, 8, 10};

struct Facts {
  std::string_view kind;
  std::optional<int64_t> ts_us;
  std::string_view primary;  // the command that named the activity ("" when none)
  Activity activity = kActOther;
  Outcome outcome = Outcome::kUnknown;
  int severity = 1;  // OCSF severity_id, 1 (Informational) to 5 (Critical)
  std::optional<Disposition> disposition;
  std::string other_action;  // a decision action this version does not know
  std::string name;          // "DROP blocked", "session_start"
  std::string signature;     // "statement:DROP", "approval:requested", "bypass"
  std::string message;       // name, and the reason or error when there is one
};

bool StatementLike(std::string_view kind);

Facts Derive(const Native& ev);

// "127.0.0.1:54321" or "[::1]:5432": an address and port; anything else ("[local]") is not.
struct HostPort {
  std::string_view ip;
  uint64_t port = 0;
};
std::optional<HostPort> SplitAddr(std::string_view addr);

// A JSON document written by JSON-Pointer paths, members in the order they were first set.
class Doc {
 public:
  Doc() { d_.SetObject(); }
  Alloc& Allocator() { return d_.GetAllocator(); }
  void Set(const char* pointer, rapidjson::Value v) { Parsed(pointer).Set(d_, v); }
  void Str(const char* pointer, std::string_view s) { Set(pointer, JsonStr(s, Allocator())); }
  void StrIf(const char* pointer, std::string_view s) {
    if (!s.empty()) Str(pointer, s);
  }
  template <typename T>
  void Num(const char* pointer, T v) {
    Set(pointer, rapidjson::Value(v));
  }
  rapidjson::Value Strings(const std::vector<std::string_view>& items) {
    rapidjson::Value out(rapidjson::kArrayType);
    for (auto s : items) out.PushBack(JsonStr(s, Allocator()), Allocator());
    return out;
  }
  std::string Finish() {
    rapidjson::StringBuffer buf;
    rapidjson::Writer<rapidjson::StringBuffer> w(buf);
    d_.Accept(w);
    return {buf.GetString(), buf.GetSize()};
  }

 private:
  // A path parsed once per thread (parsing it took a sixth of a rendering).
  static const rapidjson::Pointer& Parsed(std::string_view pointer) {
    thread_local std::unordered_map<std::string, rapidjson::Pointer, PathHash, std::equal_to<>>
        cache;
    auto it = cache.find(pointer);
    if (it == cache.end())
      it = cache.emplace(std::string(pointer), rapidjson::Pointer(pointer.data(), pointer.size()))
               .first;
    return it->second;
  }

  rapidjson::Document d_;
};

// The first table the statement wrote, else the first it read.
std::string_view FirstTable(const Native& ev);

// One event in each format, from the parsed event and the facts derived from it. OCSF and ECS
// take the fields they carry, so what is left goes to their catch-all.
std::string RenderOcsf(Native& ev, const Facts& f);
std::string RenderEcs(Native& ev, const Facts& f);
std::string RenderCef(const Native& ev, const Facts& f);

}  // namespace dbw::audit::formats
