// Offline audit commands over AuditStore::OpenReadOnly.
#include "agent/audit_cli.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "agent/http_cli.h"
#include "userspace/audit/store.h"

namespace dbw::agent {
namespace {

bool ParseU64(const std::string& text, uint64_t* out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

struct Args {
  std::string state_dir;
  std::string anchors;  // FILE or http(s) URL
  std::string cacert;
  std::optional<uint64_t> from, to, after;
  uint64_t limit = 0;
};

bool ParseArgs(const std::vector<std::string>& args, Args* a, bool verify) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& k = args[i];
    if (i + 1 >= args.size()) return false;
    const std::string& v = args[++i];
    uint64_t n = 0;
    if (k == "--state-dir") {
      a->state_dir = v;
    } else if (verify && k == "--anchors") {
      a->anchors = v;
    } else if (verify && k == "--cacert") {
      a->cacert = v;
    } else if (verify && k == "--from" && ParseU64(v, &n)) {
      a->from = n;
    } else if (verify && k == "--to" && ParseU64(v, &n)) {
      a->to = n;
    } else if (!verify && k == "--after" && ParseU64(v, &n)) {
      a->after = n;
    } else if (!verify && k == "--limit" && ParseU64(v, &n)) {
      a->limit = n;
    } else {
      return false;
    }
  }
  return !a->state_dir.empty();
}

std::unique_ptr<audit::AuditStore> OpenStore(const std::string& state_dir) {
  auto store = audit::AuditStore::OpenReadOnly(state_dir + "/audit");
  if (!store.ok()) {
    std::cerr << "cannot open the audit log in " << state_dir
              << "/audit: " << store.status().message() << "\n";
    return nullptr;
  }
  return std::move(*store);
}

}  // namespace

int AuditVerifyOfflineMain(const std::vector<std::string>& args) {
  Args a;
  if (!ParseArgs(args, &a, true)) {
    std::cerr << "usage: dbwarden audit verify --state-dir DIR [--anchors FILE|URL] "
                 "[--cacert FILE] [--from SEQ] [--to SEQ]\n";
    return 2;
  }
  std::optional<std::vector<audit::Anchor>> anchors;
  if (!a.anchors.empty()) {
    std::string text;
    if (a.anchors.rfind("http://", 0) == 0 || a.anchors.rfind("https://", 0) == 0) {
      if (!FetchUrl(a.anchors, a.cacert, &text, std::cerr)) return 2;
    } else {
      std::ifstream in(a.anchors, std::ios::binary);
      if (!in) {
        std::cerr << "cannot read the anchors " << a.anchors << ": " << std::strerror(errno)
                  << "\n";
        return 2;
      }
      std::stringstream s;
      s << in.rdbuf();
      text = s.str();
    }
    auto parsed = audit::ParseAnchors(text, a.anchors);
    if (!parsed.ok()) {
      std::cerr << parsed.status().message() << "\n";
      return 2;
    }
    if (parsed->empty()) {
      std::cerr << a.anchors << ": no anchors in it\n";
      return 2;
    }
    anchors = std::move(*parsed);
  }
  auto store = OpenStore(a.state_dir);
  if (!store) return 2;
  audit::VerifyReport r = store->Verify(a.from, a.to, anchors ? &*anchors : nullptr);
  if (r.ok) {
    std::cout << "audit log verified: seq " << r.first_seq << ".." << r.last_seq << ", "
              << r.checked << " events, " << r.checkpoints_verified << " signed checkpoints";
    if (anchors) {
      std::cout << ", " << r.anchors_checked << " published anchors match";
      if (r.anchors_before_retention > 0)
        std::cout << " (" << r.anchors_before_retention << " older than retention)";
    }
    std::cout << "\n";
    return 0;
  }
  std::cout << "audit log BROKEN at seq " << (r.first_bad_seq ? *r.first_bad_seq : 0) << ": "
            << r.problem << " (checked " << r.checked << " events from seq " << r.first_seq
            << ")\n";
  return 1;
}

int AuditExportMain(const std::vector<std::string>& args) {
  Args a;
  if (!ParseArgs(args, &a, false)) {
    std::cerr << "usage: dbwarden audit export --state-dir DIR [--after SEQ] [--limit N]\n";
    return 2;
  }
  auto store = OpenStore(a.state_dir);
  if (!store) return 2;
  uint64_t after = a.after.value_or(0);
  uint64_t left = a.limit == 0 ? UINT64_MAX : a.limit;
  while (left > 0) {
    auto batch = store->ReadAfter(after, std::min<uint64_t>(left, 10000));
    if (!batch.ok()) {
      std::cerr << batch.status().message() << "\n";
      return 1;
    }
    if (batch->empty()) break;
    for (const auto& e : *batch) {
      std::cout << e.json << '\n';
      after = e.seq;
    }
    left -= std::min<uint64_t>(left, batch->size());
  }
  std::cout.flush();
  return 0;
}

}  // namespace dbw::agent
