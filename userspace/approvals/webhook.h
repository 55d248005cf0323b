// WebhookNotifier: POSTs a JSON payload to each configured URL (http or https) on the service's
// io_context, retrying failed attempts with exponential backoff. It never blocks its caller, and
// every failed attempt and every delivery given up is counted.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "userspace/common/metrics.h"
#include "userspace/common/url.h"

namespace dbw::approvals {

struct WebhookOptions;

struct WebhookPolicy {
  int attempts = 5;
  std::chrono::milliseconds backoff{1000};  // before the second attempt; doubled, capped at 60 s
  std::chrono::milliseconds timeout{5000};  // one attempt, connect to response
};

class WebhookNotifier {
 public:
  // `give_up` runs on the io_context's thread when a delivery has failed every attempt.
  using GiveUpCallback = std::function<void(const std::string& id, const std::string& url,
                                            const std::string& error, int attempts)>;

  WebhookNotifier(boost::asio::io_context& context, const std::vector<WebhookOptions>& hooks,
                  WebhookPolicy policy, GiveUpCallback give_up);
  ~WebhookNotifier();

  // Queues one delivery per webhook of `payload` (a JSON document) for request `id`; returns
  // at once, from any thread.
  void Send(const std::string& id, std::string payload);

  struct Hook {
    std::string url;
    HttpUrl parsed;
    std::vector<std::pair<std::string, std::string>> headers;
  };

 private:
  class Delivery;

  boost::asio::io_context& context_;
  std::vector<Hook> hooks_;
  WebhookPolicy policy_;
  GiveUpCallback give_up_;
  boost::asio::ssl::context tls_{boost::asio::ssl::context::tls_client};
  Counter* sent_;
  Counter* failed_attempts_;
  Counter* given_up_;
};

// Validates a webhook URL (http:// or https://host[:port][/path]).
bool ValidWebhookUrl(const std::string& url, std::string* error);

}  // namespace dbw::approvals
