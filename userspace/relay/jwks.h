// JwksSource: the signing keys of one token issuer (targets[].auth.token.issuers[]), read from
// a file or fetched over HTTPS on a thread of its own. They are read again every jwks_refresh,
// and at once when a token names a key id the set does not have (at most once per
// kMinRefetch: a client cannot make the relay hammer the issuer). A read that fails keeps the
// last good keys; every failure is counted and logged.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "userspace/common/metrics.h"
#include "userspace/common/url.h"
#include "userspace/relay/options.h"
#include "userspace/token/jwt.h"

namespace dbw::relay {

class JwksSource {
 public:
  static constexpr std::chrono::seconds kMinRefetch{10};
  static constexpr std::chrono::seconds kFetchTimeout{10};
  static constexpr size_t kMaxBody = 1 << 20;

  explicit JwksSource(const TokenIssuerOptions& options);
  ~JwksSource();
  JwksSource(const JwksSource&) = delete;
  JwksSource& operator=(const JwksSource&) = delete;

  // Starts the thread: the first read now, then one every jwks_refresh.
  void Start();
  void Stop();

  // The last keys read; null until a read succeeded.
  std::shared_ptr<const token::KeySet> Keys() const;
  // A token named a key the set does not have: read again, unless such a read started less
  // than kMinRefetch ago. `done` runs on the source's thread once that read ends (at once when
  // none is due).
  void RefreshForUnknownKey(std::function<void()> done);

  const std::string& issuer() const { return options_.issuer; }

 private:
  void Schedule(std::chrono::steady_clock::duration after);
  void Refresh();  // on the thread
  void FetchUrl();
  void Finished(const std::string& body, const std::string& error);

  TokenIssuerOptions options_;
  HttpUrl url_;
  boost::asio::io_context context_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  boost::asio::steady_timer timer_;
  boost::asio::ssl::context tls_{boost::asio::ssl::context::tls_client};
  std::thread thread_;

  mutable std::mutex mu_;  // guards keys_
  std::shared_ptr<const token::KeySet> keys_;
  std::string last_body_;

  // On the thread only.
  bool fetching_ = false;
  std::chrono::steady_clock::time_point last_demand_{};  // the last read for an unknown key
  std::vector<std::function<void()>> waiters_;

  Counter* fetches_;
  Counter* failures_;
  Gauge* key_count_;
};

}  // namespace dbw::relay
