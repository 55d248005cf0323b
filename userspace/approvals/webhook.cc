// WebhookNotifier: one Delivery per (request, webhook), a Beast client state machine over plain
// TCP or TLS with a deadline per attempt and a timer between attempts.
#include "userspace/approvals/webhook.h"

#include <algorithm>
#include <optional>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "userspace/approvals/service.h"
#include "userspace/common/logging.h"

namespace dbw::approvals {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr auto kMaxBackoff = std::chrono::milliseconds(60'000);

}  // namespace

bool ValidWebhookUrl(const std::string& url, std::string* error) {
  HttpUrl parsed;
  return ParseHttpUrl(url, &parsed, error);
}

class WebhookNotifier::Delivery : public std::enable_shared_from_this<Delivery> {
 public:
  Delivery(WebhookNotifier* owner, const Hook* hook, std::string id,
           std::shared_ptr<const std::string> payload)
      : owner_(owner),
        hook_(hook),
        id_(std::move(id)),
        payload_(std::move(payload)),
        resolver_(owner->context_),
        retry_(owner->context_) {}

  void Attempt() {
    ++attempt_;
    plain_.reset();
    tls_.reset();
    auto self = shared_from_this();
    resolver_.async_resolve(hook_->parsed.host, hook_->parsed.port,
                            [this, self](beast::error_code ec, tcp::resolver::results_type r) {
                              if (ec) return Failed("cannot resolve host: " + ec.message());
                              Connect(r);
                            });
  }

 private:
  beast::tcp_stream& Lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

  void Connect(const tcp::resolver::results_type& results) {
    if (hook_->parsed.tls) {
      tls_.emplace(owner_->context_, owner_->tls_);
      SSL_set_tlsext_host_name(tls_->native_handle(), hook_->parsed.host.c_str());
      tls_->set_verify_mode(ssl::verify_peer);
      tls_->set_verify_callback(ssl::host_name_verification(hook_->parsed.host));
    } else {
      plain_.emplace(owner_->context_);
    }
    Lowest().expires_after(owner_->policy_.timeout);
    auto self = shared_from_this();
    Lowest().async_connect(results, [this, self](beast::error_code ec, const tcp::endpoint&) {
      if (ec) return Failed("cannot connect: " + ec.message());
      if (!tls_) return Write();
      tls_->async_handshake(ssl::stream_base::client, [this, self](beast::error_code ec) {
        if (ec) return Failed("TLS handshake failed: " + ec.message());
        Write();
      });
    });
  }

  void Write() {
    request_ = {};
    request_.method(http::verb::post);
    request_.target(hook_->parsed.path.empty() ? "/" : hook_->parsed.path);
    request_.version(11);
    request_.set(http::field::host, hook_->parsed.host);
    request_.set(http::field::user_agent, "dbwarden");
    request_.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : hook_->headers) request_.set(name, value);
    request_.body() = *payload_;
    request_.prepare_payload();
    request_.keep_alive(false);
    auto self = shared_from_this();
    auto on_written = [this, self](beast::error_code ec, size_t) {
      if (ec) return Failed("cannot send: " + ec.message());
      Read();
    };
    if (tls_) {
      http::async_write(*tls_, request_, on_written);
    } else {
      http::async_write(*plain_, request_, on_written);
    }
  }

  void Read() {
    response_ = {};
    buffer_.clear();
    auto self = shared_from_this();
    auto on_read = [this, self](beast::error_code ec, size_t) {
      if (ec) return Failed("no response: " + ec.message());
      unsigned status = response_.result_int();
      if (status < 200 || status >= 300) return Failed("answered HTTP " + std::to_string(status));
      owner_->sent_->Add();
      Close();
    };
    if (tls_) {
      http::async_read(*tls_, buffer_, response_, on_read);
    } else {
      http::async_read(*plain_, buffer_, response_, on_read);
    }
  }

  void Close() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
    Lowest().close();
  }

  void Failed(const std::string& error) {
    owner_->failed_attempts_->Add();
    if (plain_ || tls_) Close();
    if (attempt_ >= owner_->policy_.attempts) {
      DBW_LOG(kWarning) << "approvals: webhook " << hook_->url << " for request " << id_
                        << " failed " << attempt_ << " time(s), giving up: " << error;
      owner_->given_up_->Add();
      if (owner_->give_up_) owner_->give_up_(id_, hook_->url, error, attempt_);
      return;
    }
    auto delay = owner_->policy_.backoff * (1 << std::min(attempt_ - 1, 16));
    delay = std::min<std::chrono::milliseconds>(delay, kMaxBackoff);
    DBW_LOG(kInfo) << "approvals: webhook " << hook_->url << " for request " << id_ << ": " << error
                   << "; retrying in " << delay.count() << " ms";
    retry_.expires_after(delay);
    auto self = shared_from_this();
    retry_.async_wait([this, self](beast::error_code ec) {
      if (!ec) Attempt();
    });
  }

  WebhookNotifier* owner_;
  const Hook* hook_;
  std::string id_;
  std::shared_ptr<const std::string> payload_;
  tcp::resolver resolver_;
  asio::steady_timer retry_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  beast::flat_buffer buffer_;
  int attempt_ = 0;
};

WebhookNotifier::WebhookNotifier(asio::io_context& context,
                                 const std::vector<WebhookOptions>& hooks, WebhookPolicy policy,
                                 GiveUpCallback give_up)
    : context_(context), policy_(policy), give_up_(std::move(give_up)) {
  auto& m = MetricsRegistry::Global();
  sent_ = m.GetCounter("dbwarden_approval_webhooks_sent_total",
                       "Approval webhook deliveries answered with a 2xx status");
  failed_attempts_ = m.GetCounter("dbwarden_approval_webhook_failures_total",
                                  "Approval webhook attempts that failed (each is retried)");
  given_up_ = m.GetCounter("dbwarden_approval_webhooks_given_up_total",
                           "Approval webhook deliveries that failed every attempt");
  beast::error_code ec;
  tls_.set_default_verify_paths(ec);
  if (ec) {
    DBW_LOG(kWarning) << "approvals: no default CA certificates for https webhooks";
  }
  for (const auto& h : hooks) {
    Hook hook{h.url, {}, h.headers};
    std::string error;
    if (!ParseHttpUrl(h.url, &hook.parsed, &error)) {
      DBW_LOG(kError) << "approvals: webhook ignored: " << error;  // the config loader checks
      continue;
    }
    hooks_.push_back(std::move(hook));
  }
}

WebhookNotifier::~WebhookNotifier() = default;

void WebhookNotifier::Send(const std::string& id, std::string payload) {
  auto shared = std::make_shared<const std::string>(std::move(payload));
  asio::post(context_, [this, id, shared] {
    for (const auto& hook : hooks_) std::make_shared<Delivery>(this, &hook, id, shared)->Attempt();
  });
}

}  // namespace dbw::approvals
