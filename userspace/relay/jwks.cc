// JwksSource: a timer and a Beast HTTPS GET on the source's own io_context.
#include "userspace/relay/jwks.h"

#include <fstream>
#include <iterator>
#include <optional>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "userspace/common/logging.h"

namespace dbw::relay {
namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// A Prometheus label value: backslash, quote and newline escaped.
std::string Label(std::string_view name, std::string_view value) {
  std::string out(name);
  out += "=\"";
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? 'n' : c;
  }
  return out + "\"";
}

// One GET of the key set: resolve, connect, TLS (the server's certificate checked against
// jwks_ca or the system's CAs, and its name), request, response of at most kMaxBody bytes.
class Fetch : public std::enable_shared_from_this<Fetch> {
 public:
  using Done = std::function<void(const std::string& body, const std::string& error)>;
  Fetch(boost::asio::io_context& context, ssl::context& tls, const HttpUrl& url, Done done)
      : url_(url), resolver_(context), stream_(context, tls), done_(std::move(done)) {}

  void Start() {
    auto self = shared_from_this();
    beast::get_lowest_layer(stream_).expires_after(JwksSource::kFetchTimeout);
    resolver_.async_resolve(url_.host, url_.port,
                            [this, self](beast::error_code ec, tcp::resolver::results_type r) {
                              if (ec) return Fail("cannot resolve host: " + ec.message());
                              Connect(r);
                            });
  }

 private:
  void Connect(const tcp::resolver::results_type& results) {
    SSL_set_tlsext_host_name(stream_.native_handle(), url_.host.c_str());
    stream_.set_verify_mode(ssl::verify_peer);
    stream_.set_verify_callback(ssl::host_name_verification(url_.host));
    auto self = shared_from_this();
    beast::get_lowest_layer(stream_).async_connect(
        results, [this, self](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return Fail("cannot connect: " + ec.message());
          stream_.async_handshake(ssl::stream_base::client, [this, self](beast::error_code ec) {
            if (ec) return Fail("TLS handshake failed: " + ec.message());
            Write();
          });
        });
  }

  void Write() {
    request_.method(http::verb::get);
    request_.target(url_.path.empty() ? "/" : url_.path);
    request_.version(11);
    request_.set(http::field::host, url_.host);
    request_.set(http::field::user_agent, "dbwarden");
    request_.set(http::field::accept, "application/json");
    request_.keep_alive(false);
    auto self = shared_from_this();
    http::async_write(stream_, request_, [this, self](beast::error_code ec, size_t) {
      if (ec) return Fail("cannot send: " + ec.message());
      parser_.body_limit(JwksSource::kMaxBody);
      http::async_read(stream_, buffer_, parser_, [this, self](beast::error_code ec, size_t) {
        if (ec) return Fail("no response: " + ec.message());
        unsigned status = parser_.get().result_int();
        if (status != 200) return Fail("answered HTTP " + std::to_string(status));
        std::string body = std::move(parser_.get().body());
        Close();
        done_(body, {});
      });
    });
  }

  void Close() {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(stream_).close();
  }

  void Fail(const std::string& error) {
    Close();
    done_({}, error);
  }

  HttpUrl url_;
  tcp::resolver resolver_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  http::request<http::empty_body> request_;
  http::response_parser<http::string_body> parser_;
  beast::flat_buffer buffer_;
  Done done_;
};

}  // namespace

JwksSource::JwksSource(const TokenIssuerOptions& options)
    : options_(options), work_(context_.get_executor()), timer_(context_) {
  auto& m = MetricsRegistry::Global();
  std::string label = Label("issuer", options_.issuer);
  fetches_ = m.GetCounter("dbwarden_jwks_reads_total",
                          "Reads of a token issuer's key set (file or HTTPS), by issuer", label);
  failures_ = m.GetCounter("dbwarden_jwks_read_failures_total",
                           "Reads of a token issuer's key set that failed (the last good keys "
                           "stay in use), by issuer",
                           label);
  key_count_ = m.GetGauge("dbwarden_jwks_keys", "Signing keys in use for a token issuer", label);
  if (!options_.jwks_url.empty()) {
    std::string error;
    if (!ParseHttpUrl(options_.jwks_url, &url_, &error)) {
      DBW_LOG(kError) << "token issuer " << options_.issuer << ": jwks_url: " << error;
    }
    boost::system::error_code ec;
    if (options_.jwks_ca.empty()) {
      tls_.set_default_verify_paths(ec);
    } else {
      tls_.load_verify_file(options_.jwks_ca, ec);
    }
    if (ec) {
      DBW_LOG(kError) << "token issuer " << options_.issuer
                      << ": no CA certificates for jwks_url: " << ec.message();
    }
  }
}

JwksSource::~JwksSource() {
  Stop();
}

void JwksSource::Start() {
  if (thread_.joinable()) return;
  boost::asio::post(context_, [this] { Refresh(); });
  thread_ = std::thread([this] { context_.run(); });
}

void JwksSource::Stop() {
  if (!thread_.joinable()) return;
  boost::asio::post(context_, [this] {
    timer_.cancel();
    work_.reset();
  });
  context_.stop();
  thread_.join();
}

std::shared_ptr<const token::KeySet> JwksSource::Keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_;
}

void JwksSource::RefreshForUnknownKey(std::function<void()> done) {
  boost::asio::post(context_, [this, done = std::move(done)]() mutable {
    if (fetching_) {
      waiters_.push_back(std::move(done));
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (last_demand_.time_since_epoch().count() != 0 && now - last_demand_ < kMinRefetch) {
      done();
      return;
    }
    last_demand_ = now;
    waiters_.push_back(std::move(done));
    Refresh();
  });
}

void JwksSource::Schedule(std::chrono::steady_clock::duration after) {
  timer_.expires_after(after);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !fetching_) Refresh();
  });
}

void JwksSource::Refresh() {
  fetching_ = true;
  fetches_->Add();
  if (!options_.jwks_url.empty()) {
    FetchUrl();
    return;
  }
  std::ifstream in(options_.jwks_file, std::ios::binary);
  if (!in) {
    Finished({}, "cannot read " + options_.jwks_file);
    return;
  }
  std::string body;
  body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (body.size() > kMaxBody) {
    Finished({}, options_.jwks_file + " is larger than 1 MiB");
    return;
  }
  Finished(body, {});
}

void JwksSource::FetchUrl() {
  std::make_shared<Fetch>(context_, tls_, url_,
                          [this](const std::string& body, const std::string& error) {
                            Finished(body,
                                     error.empty() ? error : options_.jwks_url + ": " + error);
                          })
      ->Start();
}

void JwksSource::Finished(const std::string& body, const std::string& error) {
  fetching_ = false;
  std::string problem = error;
  if (problem.empty() && body != last_body_) {
    auto parsed = token::KeySet::Parse(body);
    if (parsed.ok()) {
      DBW_LOG(kInfo) << "token issuer " << options_.issuer << ": " << (*parsed)->size()
                     << " signing key(s) loaded" << ((*parsed)->skipped() ? " (" : "")
                     << ((*parsed)->skipped() ? std::to_string((*parsed)->skipped()) +
                                                    " of a kind dbwarden does not use skipped)"
                                              : "");
      key_count_->Set(static_cast<int64_t>((*parsed)->size()));
      std::lock_guard<std::mutex> lock(mu_);
      keys_ = std::move(*parsed);
      last_body_ = body;
    } else {
      problem = "key set not usable: " + parsed.status().message();
    }
  }
  if (!problem.empty()) {
    failures_->Add();
    DBW_LOG(kWarning) << "token issuer " << options_.issuer << ": " << problem
                      << (Keys() ? "; the last good keys stay in use" : "; no keys yet");
  }
  // A failed read is tried again sooner (a tenth of the interval, at least kMinRefetch).
  auto next =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(options_.jwks_refresh);
  if (!problem.empty())
    next = std::max<std::chrono::steady_clock::duration>(next / 10, kMinRefetch);
  Schedule(next);
  std::vector<std::function<void()>> waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& w : waiters) w();
}

}  // namespace dbw::relay
