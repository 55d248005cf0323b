// PolicyReloader: reloads the policy on SIGHUP and when a policy file changes; a file that
// fails to load is reported (log line and audit event) and the running policy stays.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "policy/policy.h"
#include "userspace/audit/sink.h"

namespace dbw::agent {

class PolicyReloader {
 public:
  PolicyReloader(std::vector<std::string> files, policy::Mode mode, policy::PolicyStore* store,
                 audit::EventSink* sink);
  ~PolicyReloader();
  PolicyReloader(const PolicyReloader&) = delete;
  PolicyReloader& operator=(const PolicyReloader&) = delete;

  // Starts the thread that checks the files (and what their globs match) every `interval`.
  void Start(std::chrono::milliseconds interval);
  // Reloads now; returns whether the new policy was installed.
  bool Reload(const std::string& why);

 private:
  std::string FilesState() const;  // paths, sizes and mtimes of what the globs match now
  void Run(std::chrono::milliseconds interval);

  const std::vector<std::string> files_;
  const policy::Mode mode_;
  policy::PolicyStore* store_;
  audit::EventSink* sink_;
  std::mutex reload_mu_;    // serialises Reload between the signal thread and the watcher
  std::string last_state_;  // guarded by reload_mu_
  std::mutex stop_mu_;      // guards stop_
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Loads the policy once at startup: the error (file:line: reason) or the compiled policy.
StatusOr<std::shared_ptr<const policy::CompiledPolicy>> LoadInitialPolicy(
    const std::vector<std::string>& files, policy::Mode mode);

}  // namespace dbw::agent
