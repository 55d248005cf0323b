// PolicyReloader: SIGHUP and file-change reloads with keep-the-old-one-on-error semantics.
#include "agent/policy_reloader.h"

#include <glob.h>
#include <sys/stat.h>

#include "userspace/common/logging.h"
#include "userspace/common/thread_name.h"

namespace dbw::agent {

PolicyReloader::PolicyReloader(std::vector<std::string> files, policy::Mode mode,
                               policy::PolicyStore* store, audit::EventSink* sink)
    : files_(std::move(files)), mode_(mode), store_(store), sink_(sink) {
  last_state_ = FilesState();
}

PolicyReloader::~PolicyReloader() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PolicyReloader::Start(std::chrono::milliseconds interval) {
  if (files_.empty()) return;  // the built-in pack never changes
  thread_ = std::thread([this, interval] { Run(interval); });
}

std::string PolicyReloader::FilesState() const {
  std::string state;
  for (const auto& pattern : files_) {
    glob_t g{};
    if (::glob(pattern.c_str(), 0, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) {
        struct stat st {};
        if (::stat(g.gl_pathv[i], &st) != 0) continue;
        state += g.gl_pathv[i];
        state += ' ' + std::to_string(st.st_size) + ' ' + std::to_string(st.st_mtim.tv_sec) + '.' +
                 std::to_string(st.st_mtim.tv_nsec) + ' ' + std::to_string(st.st_ino) + '\n';
      }
    }
    ::globfree(&g);
    state += "|\n";
  }
  return state;
}

bool PolicyReloader::Reload(const std::string& why) {
  std::lock_guard<std::mutex> lock(reload_mu_);
  last_state_ = FilesState();
  auto loaded = policy::LoadPolicy(files_, mode_);
  audit::Event e;
  e.kind = audit::EventKind::kPolicyLoad;
  e.source = "agent";
  if (!loaded.ok()) {
    DBW_LOG(kError) << "policy reload (" << why
                    << ") rejected, keeping the running policy: " << loaded.status().message();
    e.error_message = loaded.status().message();
    e.detail = "reload (" + why + ") rejected; the running policy stays";
    sink_->Submit(std::move(e));
    return false;
  }
  const auto& p = *loaded;
  DBW_LOG(kInfo) << "policy reloaded (" << why << "): " << p->rule_count() << " rules from "
                 << p->source();
  e.detail = "reloaded (" + why + "): " + std::to_string(p->rule_count()) + " rules from " +
             p->source() + (mode_ == policy::Mode::kMonitor ? ", monitor mode" : ", enforce mode");
  store_->Set(std::move(*loaded));
  sink_->Submit(std::move(e));
  return true;
}

void PolicyReloader::Run(std::chrono::milliseconds interval) {
  SetThreadName("dbw-policy");
  std::unique_lock<std::mutex> lock(stop_mu_);
  while (!stop_cv_.wait_for(lock, interval, [this] { return stop_; })) {
    std::string state = FilesState();
    bool changed;
    {
      std::lock_guard<std::mutex> reload_lock(reload_mu_);
      changed = state != last_state_;
    }
    if (changed) {
      lock.unlock();
      Reload("file change");
      lock.lock();
    }
  }
}

StatusOr<std::shared_ptr<const policy::CompiledPolicy>> LoadInitialPolicy(
    const std::vector<std::string>& files, policy::Mode mode) {
  return policy::LoadPolicy(files, mode);
}

}  // namespace dbw::agent
