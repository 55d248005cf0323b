// Published anchors: the anchor-file format, its publisher (the writer thread appends each
// signed checkpoint) and the check at Open that the store was not rolled back.
#include <fcntl.h>
#include <simdjson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "userspace/audit/event_json.h"
#include "userspace/audit/store.h"
#include "userspace/audit/store_impl.h"
#include "userspace/common/logging.h"

namespace dbw::audit {
namespace {

constexpr std::string_view kAnchorType = "dbwarden-audit-anchor";
constexpr std::string_view kRetentionType = "dbwarden-audit-retention";

Status LineError(const std::string& origin, size_t line, const std::string& why) {
  return InvalidArgument(origin + ":" + std::to_string(line) + ": " + why);
}

bool HexField(simdjson::dom::object& obj, const char* key, size_t bytes, std::string* out) {
  std::string_view hex;
  if (obj[key].get_string().get(hex) != simdjson::SUCCESS) return false;
  return store::ParseHex(hex, out) && out->size() == bytes;
}

}  // namespace

std::string FormatAnchor(const Anchor& a) {
  auto hex = [](const std::string& raw) {
    return store::Hex(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
  };
  std::string out = "{\"type\":\"";
  out += a.retention ? kRetentionType : kAnchorType;
  out += "\",\"seq\":" + std::to_string(a.seq) + ",\"hash\":\"" + hex(a.hash) + "\",\"ts\":\"" +
         FormatTimestamp(a.ts_us) + "\",\"ts_us\":" + std::to_string(a.ts_us) +
         ",\"public_key\":\"" + hex(a.public_key) + "\",\"signature\":\"" + hex(a.signature) +
         "\"}";
  return out;
}

StatusOr<std::vector<Anchor>> ParseAnchors(std::string_view text, const std::string& origin,
                                           bool torn_tail_ok) {
  std::vector<Anchor> out;
  simdjson::dom::parser parser;
  size_t line = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    ++line;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      if (torn_tail_ok) break;  // a last line cut short by a crash
      end = text.size();
    }
    std::string_view body = text.substr(pos, end - pos);
    pos = end + 1;
    if (body.empty()) continue;
    simdjson::dom::object obj;
    if (parser.parse(body.data(), body.size()).get_object().get(obj) != simdjson::SUCCESS)
      return LineError(origin, line, "not a JSON object");
    std::string_view type;
    if (obj["type"].get_string().get(type) != simdjson::SUCCESS ||
        (type != kAnchorType && type != kRetentionType))
      return LineError(origin, line,
                       "\"type\" is not \"dbwarden-audit-anchor\" or \"dbwarden-audit-retention\"");
    Anchor a;
    a.line = line;
    a.retention = type == kRetentionType;
    int64_t ts = 0;
    if (obj["seq"].get_uint64().get(a.seq) != simdjson::SUCCESS || a.seq == 0)
      return LineError(origin, line, "\"seq\" must be a positive integer");
    if (obj["ts_us"].get_int64().get(ts) != simdjson::SUCCESS)
      return LineError(origin, line, "\"ts_us\" must be an integer");
    a.ts_us = ts;
    if (!HexField(obj, "hash", 32, &a.hash))
      return LineError(origin, line, "\"hash\" must be 64 hex digits");
    if (!HexField(obj, "public_key", 32, &a.public_key))
      return LineError(origin, line, "\"public_key\" must be 64 hex digits");
    if (!HexField(obj, "signature", 64, &a.signature))
      return LineError(origin, line, "\"signature\" must be 128 hex digits");
    out.push_back(std::move(a));
  }
  return out;
}

Status AuditStore::Impl::OpenAnchorFile() {
  if (options.anchor_file.empty()) return Status::Ok();
  int fd = ::open(options.anchor_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0)
    return Unavailable("cannot open audit.anchor_file " + options.anchor_file + ": " +
                       std::strerror(errno));
  // O_APPEND: the file may carry the append-only attribute (chattr +a, recommended in
  // docs/audit-store.md), under which only appending is allowed.
  anchor_fd = fd;
  // A line cut short by a crash would swallow the next one: start on a new line.
  struct stat st {};
  char last = '\n';
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    int rd = ::open(options.anchor_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (rd >= 0) {
      if (::pread(rd, &last, 1, st.st_size - 1) != 1) last = '\n';
      ::close(rd);
    }
  }
  if (last != '\n') anchor_torn = true;
  return Status::Ok();
}

void AuditStore::Impl::PublishAnchor(const store::Checkpoint& cp, bool retention) {
  if (anchor_fd < 0) return;
  Anchor a;
  a.retention = retention;
  a.seq = cp.seq;
  a.hash.assign(reinterpret_cast<const char*>(cp.hash.data()), cp.hash.size());
  a.ts_us = cp.ts_us;
  a.public_key = cp.public_raw;
  a.signature = cp.signature;
  // After a write cut short, start on a new line (the parser skips the empty one).
  std::string line = (anchor_torn ? "\n" : "") + FormatAnchor(a) + "\n";
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(anchor_fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
  anchor_torn = left != 0 && left != line.size();
  if (left == 0 && ::fdatasync(anchor_fd) == 0) {
    if (!retention) m_anchor_seq->Set(static_cast<int64_t>(cp.seq));
    return;
  }
  // Not published: counted and logged. The next checkpoint's anchor covers this one (it
  // vouches for everything before it), so nothing is retried.
  m_anchor_failures->Add();
  DBW_LOG(kError) << "audit: cannot publish the checkpoint at seq " << cp.seq << " to "
                  << options.anchor_file << ": " << std::strerror(errno);
}

void AuditStore::Impl::CheckIntegrityAtOpen() {
  // Without anchors: the chain from the last signed checkpoint to the head (a tail edited after
  // the last checkpoint without recomputing hashes). With them: the newest published anchor
  // must be in the store with its hash, and the chain from it to the head must hold.
  std::optional<Anchor> newest;
  std::string problem;
  if (!options.anchor_file.empty()) {
    std::ifstream in(options.anchor_file, std::ios::binary);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      auto anchors = ParseAnchors(text.str(), options.anchor_file, /*torn_tail_ok=*/true);
      if (!anchors.ok()) {
        problem = "the anchor file does not parse: " + anchors.status().message();
      } else if (!anchors->empty()) {
        for (const Anchor& a : *anchors)
          if (!a.retention && (!newest || a.seq > newest->seq)) newest = a;
      }
    }
  }
  if (newest) m_anchor_seq->Set(static_cast<int64_t>(newest->seq));
  VerifyReport r;
  if (problem.empty() && newest) {
    std::vector<Anchor> one{*newest};
    r = VerifyChain(*this, newest->seq, std::nullopt, &one);
  } else if (problem.empty()) {
    r = VerifyChain(
        *this,
        last_checkpoint_seq > 0 ? std::optional<uint64_t>(last_checkpoint_seq) : std::nullopt,
        std::nullopt, nullptr);
  }
  if (problem.empty() && !r.ok)
    problem = "seq " + std::to_string(r.first_bad_seq.value_or(0)) + ": " + r.problem;
  if (problem.empty()) {
    if (newest) {
      DBW_LOG(kInfo) << "audit: the store matches its last published anchor (seq " << newest->seq
                     << ") and its chain holds to the head (seq " << head_seq.load() << ")";
    }
    m_tamper->Set(0);
    return;
  }
  integrity_problem = "the audit store failed its start-up check: " + problem;
  m_tamper->Set(1);
  DBW_LOG(kError) << integrity_problem
                  << "; not ready until this is investigated (the agent keeps recording)";
}

}  // namespace dbw::audit
