// Beast plumbing of the HTTP API: listener, plain and TLS sessions, limits, timeouts, worker
// hand-off and stream long-polls. Routing and bodies are in api.cc.
#include "userspace/api/server.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <optional>
#include <thread>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs it with g++ 12
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "userspace/common/conn_limiter.h"
#include "userspace/common/logging.h"
#include "userspace/common/metrics.h"

namespace dbw::api {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

StatusOr<tcp::endpoint> ParseListen(const std::string& listen) {
  std::string host;
  std::string port;
  if (!listen.empty() && listen[0] == '[') {
    size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return InvalidArgument("api.listen \"" + listen + "\": expected [v6addr]:port");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    size_t colon = listen.rfind(':');
    if (colon == std::string::npos || listen.find(':') != colon) {
      return InvalidArgument("api.listen \"" + listen + "\": expected host:port or [v6addr]:port");
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (host == "localhost") host = "127.0.0.1";
  error_code ec;
  net::ip::address addr = net::ip::make_address(host, ec);
  if (ec) return InvalidArgument("api.listen \"" + listen + "\": bad address " + host);
  auto p = ParseSeq("port", port);
  if (!p.ok() || *p > 65535) return InvalidArgument("api.listen \"" + listen + "\": bad port");
  return tcp::endpoint(addr, static_cast<uint16_t>(*p));
}

// What every connection shares; owned by shared_ptr so it outlives the last session.
struct Shared {
  ServerOptions options;
  Api api;
  std::optional<ssl::context> tls;
  net::thread_pool* workers = nullptr;
  std::shared_ptr<ConnectionLimiter> limiter;
  Counter* requests_2xx;
  Counter* requests_4xx;
  Counter* requests_5xx;
  Gauge* open_connections;
  Counter* evicted;
  Counter* accept_errors;
  Counter* refused_total;
  Counter* refused_per_source;

  Shared(ServerOptions o, Api a)
      : options(std::move(o)),
        api(std::move(a)),
        limiter(ConnectionLimiter::Create(
            {options.max_connections, options.max_connections_per_source})) {
    auto& m = MetricsRegistry::Global();
    const char* help = "HTTP API requests answered, by status class";
    requests_2xx = m.GetCounter("dbwarden_api_requests_total", help, "code=\"2xx\"");
    requests_4xx = m.GetCounter("dbwarden_api_requests_total", help, "code=\"4xx\"");
    requests_5xx = m.GetCounter("dbwarden_api_requests_total", help, "code=\"5xx\"");
    open_connections = m.GetGauge("dbwarden_api_connections", "HTTP API connections open");
    accept_errors = m.GetCounter(
        "dbwarden_api_accept_errors_total",
        "Failed accepts on the HTTP API's listener (out of file descriptors: backed off)");
    evicted = m.GetCounter("dbwarden_api_connections_evicted_total",
                           "Idle HTTP API connections closed to make room for a new one "
                           "(api.max_connections or api.max_connections_per_source reached)");
    const char* refused_help =
        "HTTP API connections refused because a limit was reached and no connection was idle";
    refused_total =
        m.GetCounter("dbwarden_api_connections_refused_total", refused_help, "limit=\"total\"");
    refused_per_source = m.GetCounter("dbwarden_api_connections_refused_total", refused_help,
                                      "limit=\"per_source\"");
    const char* limit_help = "Configured connection limits of the HTTP API (0: unlimited)";
    m.GetGauge("dbwarden_api_connection_limit", limit_help, "scope=\"total\"")
        ->Set(static_cast<int64_t>(options.max_connections));
    m.GetGauge("dbwarden_api_connection_limit", limit_help, "scope=\"per_source\"")
        ->Set(static_cast<int64_t>(options.max_connections_per_source));
  }
};

bool IsHttpParseError(const error_code& ec) {
  return &ec.category() == &http::make_error_code(http::error::bad_target).category();
}

// One connection; Derived provides stream() and the plain/TLS specifics (Beast's "flex" shape).
template <class Derived>
class HttpSession {
 public:
  explicit HttpSession(std::shared_ptr<Shared> shared, const net::any_io_executor& ex)
      : shared_(std::move(shared)), poll_timer_(ex) {
    shared_->open_connections->Add(1);
  }
  ~HttpSession() { shared_->open_connections->Add(-1); }

  // A new connection is idle (evictable) until its first request has arrived, TLS handshake
  // included.
  void SetLease(std::unique_ptr<ConnectionLimiter::Lease> lease) {
    lease_ = std::move(lease);
    lease_->SetIdle(true);
  }
  // Closes an idle connection evicted by the limiter (any thread).
  void Evict() {
    net::post(stream_executor(), [self = derived().shared_from_this()] {
      self->shared_->evicted->Add();
      beast::get_lowest_layer(self->derived().stream()).close();
    });
  }

 protected:
  void DoRead() {
    // Waiting for a request (the first, or the next on a keep-alive connection): evictable.
    lease_->SetIdle(true);
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(shared_->options.header_limit));
    parser_->body_limit(shared_->options.body_limit);
    beast::get_lowest_layer(derived().stream()).expires_after(shared_->options.read_timeout);
    http::async_read(derived().stream(), buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::OnRead, derived().shared_from_this()));
  }

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }

  void OnRead(error_code ec, size_t) {
    // Evicted while the request arrived: its close is on the way; start nothing.
    if (!lease_->SetIdle(false)) return;
    if (ec == http::error::end_of_stream) return derived().DoEof();
    if (ec == http::error::body_limit) {
      return Send(JsonError(413, "request body larger than " +
                                     std::to_string(shared_->options.body_limit) + " bytes"),
                  false, 11, false);
    }
    if (ec == http::error::header_limit) {
      return Send(JsonError(431, "request header larger than " +
                                     std::to_string(shared_->options.header_limit) + " bytes"),
                  false, 11, false);
    }
    if (ec && IsHttpParseError(ec)) {
      return Send(JsonError(400, "malformed HTTP request: " + ec.message()), false, 11, false);
    }
    if (ec) return;  // timeout, reset, TLS failure: nothing to answer
    const auto& req = parser_->get();
    version_ = req.version();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    Request r;
    auto sv = [](beast::string_view v) { return std::string_view(v.data(), v.size()); };
    r.method = sv(req.method_string());
    r.target = sv(req.target());
    r.body = req.body();
    if (auto it = req.find(http::field::authorization); it != req.end())
      r.authorization = sv(it->value());
    Dispatch d = shared_->api.Route(r);
    who_ = std::move(d.who);
    target_ = std::string(req.target());
    if (d.now) return Send(std::move(*d.now), keep_alive_, version_, head_);
    if (d.stream) {
      stream_query_ = *d.stream;
      deadline_ = std::chrono::steady_clock::now() + stream_query_.wait;
      return PollStream();
    }
    RunOnWorker(std::move(d.work));
  }

  void RunOnWorker(std::function<Response()> work) {
    auto self = derived().shared_from_this();
    net::post(*shared_->workers, [self, work = std::move(work)]() mutable {
      Response r = work();
      auto ex = self->stream_executor();
      net::post(ex, [self, r = std::move(r)]() mutable {
        self->Send(std::move(r), self->keep_alive_, self->version_, self->head_);
      });
    });
  }

  net::any_io_executor stream_executor() {
    return beast::get_lowest_layer(derived().stream()).get_executor();
  }

  // Checks for new events every stream_poll until the deadline; reading happens on a worker.
  void PollStream() {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline_ || shared_->api.HasNewer(stream_query_.after_seq)) {
      StreamQuery q = stream_query_;
      return RunOnWorker([this, q] { return shared_->api.StreamBatch(q); });
    }
    auto step = std::min<std::chrono::steady_clock::duration>(shared_->options.stream_poll,
                                                              deadline_ - now);
    poll_timer_.expires_after(step);
    poll_timer_.async_wait([self = derived().shared_from_this()](error_code ec) {
      if (!ec) self->PollStream();
    });
  }

  void Send(Response r, bool keep_alive, unsigned version, bool head) {
    if (r.status < 400)
      shared_->requests_2xx->Add();
    else if (r.status < 500)
      shared_->requests_4xx->Add();
    else
      shared_->requests_5xx->Add();
    DBW_LOG(kDebug) << "api: " << (who_.empty() ? "-" : who_) << " " << target_ << " -> "
                    << r.status;
    res_ = {};
    res_.version(version);
    res_.result(r.status);
    res_.set(http::field::server, "dbwarden");
    res_.set(http::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res_.set(k, v);
    res_.keep_alive(keep_alive);
    res_.body() = std::move(r.body);
    res_.prepare_payload();
    if (head) res_.body().clear();  // Content-Length stays that of the GET
    beast::get_lowest_layer(derived().stream()).expires_after(shared_->options.write_timeout);
    http::async_write(derived().stream(), res_,
                      [self = derived().shared_from_this(), keep_alive](error_code ec, size_t) {
                        if (ec) return;
                        if (!keep_alive) return self->DoEof();
                        self->DoRead();
                      });
  }

  std::shared_ptr<Shared> shared_;
  std::unique_ptr<ConnectionLimiter::Lease> lease_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  net::steady_timer poll_timer_;
  StreamQuery stream_query_;
  std::chrono::steady_clock::time_point deadline_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  std::string who_;
  std::string target_;

 protected:
  beast::flat_buffer& buffer() { return buffer_; }
  const std::shared_ptr<Shared>& shared() const { return shared_; }
};

class PlainSession : public HttpSession<PlainSession>,
                     public std::enable_shared_from_this<PlainSession> {
 public:
  PlainSession(tcp::socket&& socket, std::shared_ptr<Shared> shared)
      : HttpSession(shared, socket.get_executor()), stream_(std::move(socket)) {}
  void Run() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&PlainSession::DoRead, shared_from_this()));
  }
  beast::tcp_stream& stream() { return stream_; }
  void DoEof() {
    error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

 private:
  beast::tcp_stream stream_;
};

class TlsSession : public HttpSession<TlsSession>, public std::enable_shared_from_this<TlsSession> {
 public:
  TlsSession(tcp::socket&& socket, std::shared_ptr<Shared> shared)
      : HttpSession(shared, socket.get_executor()), stream_(std::move(socket), *shared->tls) {}
  void Run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      beast::get_lowest_layer(self->stream_).expires_after(self->shared()->options.read_timeout);
      self->stream_.async_handshake(ssl::stream_base::server, [self](error_code ec) {
        if (ec) {
          DBW_LOG(kDebug) << "api: TLS handshake: " << ec.message();
          return;
        }
        self->DoRead();
      });
    });
  }
  beast::ssl_stream<beast::tcp_stream>& stream() { return stream_; }
  void DoEof() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    stream_.async_shutdown([self = shared_from_this()](error_code) {});
  }

 private:
  beast::ssl_stream<beast::tcp_stream> stream_;
};

}  // namespace

struct Server::Impl {
  net::io_context ioc;
  net::thread_pool workers;
  std::shared_ptr<Shared> shared;
  tcp::endpoint endpoint;
  std::optional<tcp::acceptor> acceptor;
  std::vector<std::thread> threads;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  bool stopped = false;

  Impl(size_t workers_n, std::shared_ptr<Shared> s, tcp::endpoint ep)
      : ioc(static_cast<int>(s->options.io_threads)),
        workers(workers_n),
        shared(std::move(s)),
        endpoint(ep) {
    shared->workers = &workers;
  }

  // Admits the connection under api.max_connections / max_connections_per_source: the oldest
  // idle connection (no request in progress) makes room when a limit is reached; with none
  // idle the new one is closed at once.
  template <class SessionT>
  void Admit(tcp::socket socket) {
    error_code ec;
    std::string source = socket.remote_endpoint(ec).address().to_string();
    if (ec) return;  // already gone
    auto session = std::make_shared<SessionT>(std::move(socket), shared);
    std::weak_ptr<SessionT> weak = session;
    ConnectionLimiter::Verdict verdict;
    auto lease = shared->limiter->Admit(
        source,
        [weak] {
          if (auto s = weak.lock()) s->Evict();
        },
        &verdict);
    if (!lease) {
      (verdict == ConnectionLimiter::Verdict::kRefusedPerSource ? shared->refused_per_source
                                                                : shared->refused_total)
          ->Add();
      return;  // the session (and its socket) goes away here
    }
    session->SetLease(std::move(lease));
    session->Run();
  }

  void Accept() {
    acceptor->async_accept(net::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted) return;
      if (!ec) {
        backoff = kFirstBackoff;
        if (shared->tls) {
          Admit<TlsSession>(std::move(socket));
        } else {
          Admit<PlainSession>(std::move(socket));
        }
        return Accept();
      }
      shared->accept_errors->Add();
      if (ec == net::error::no_descriptors || ec.value() == ENFILE || ec.value() == ENOBUFS ||
          ec.value() == ENOMEM) {
        return BackOff(ec);  // retrying at once would spin a core and flood the log
      }
      DBW_LOG(kWarning) << "api: accept failed: " << ec.message();
      Accept();
    });
  }

  // Out of descriptors or memory: accept again after 100 ms, doubling to 1 s while it lasts;
  // one log line a second at most. Only the accept loop's thread touches this state.
  void BackOff(const error_code& ec) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_backoff_log >= std::chrono::seconds(1)) {
      DBW_LOG(kWarning) << "api: accept failed: " << ec.message() << " ("
                        << shared->accept_errors->value() << " failed accepts so far); retrying in "
                        << backoff.count() << " ms";
      last_backoff_log = now;
    }
    backoff_timer.expires_after(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    backoff_timer.async_wait([this](error_code wait_ec) {
      if (!wait_ec && acceptor->is_open()) Accept();
    });
  }
  static constexpr std::chrono::milliseconds kFirstBackoff{100};
  std::chrono::milliseconds backoff = kFirstBackoff;
  std::chrono::steady_clock::time_point last_backoff_log{};
  net::steady_timer backoff_timer{ioc};
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() {
  Stop();
}

StatusOr<std::unique_ptr<Server>> Server::Create(const ServerOptions& options, ApiDeps deps) {
  if (deps.events == nullptr) return InvalidArgument("api: no event source");
  auto ep = ParseListen(options.listen);
  if (!ep.ok()) return ep.status();
  const bool loopback = ep->address().is_loopback();
  if (options.tokens.empty() && !loopback) {
    return FailedPrecondition("api.listen " + options.listen +
                              " is not a loopback address and api.tokens is empty: configure "
                              "tokens or listen on 127.0.0.1/[::1]");
  }
  auto auth = Authenticator::Create(options.tokens);
  if (!auth.ok()) return auth.status();
  if (options.tokens.empty()) {
    DBW_LOG(kWarning) << "api: no tokens configured (api.tokens): every route on " << options.listen
                      << " but /healthz and /readyz answers 401";
  }
  auto shared = std::make_shared<Shared>(options, Api(std::move(deps), std::move(*auth)));
  if (shared->options.io_threads == 0) shared->options.io_threads = 1;
  const TlsOptions& t = options.tls;
  if (!t.cert.empty() || !t.key.empty() || !t.client_ca.empty()) {
    if (t.cert.empty() || t.key.empty()) return InvalidArgument("api.tls needs both cert and key");
    shared->tls.emplace(ssl::context::tls_server);
    ssl::context& ctx = *shared->tls;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                    ssl::context::single_dh_use);
    error_code ec;
    ctx.use_certificate_chain_file(t.cert, ec);
    if (ec) return InvalidArgument("api.tls.cert " + t.cert + ": " + ec.message());
    ctx.use_private_key_file(t.key, ssl::context::pem, ec);
    if (ec) return InvalidArgument("api.tls.key " + t.key + ": " + ec.message());
    if (!t.client_ca.empty()) {
      ctx.load_verify_file(t.client_ca, ec);
      if (ec) return InvalidArgument("api.tls.client_ca " + t.client_ca + ": " + ec.message());
      ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
  }
  size_t workers = std::max<size_t>(1, options.worker_threads);
  return std::unique_ptr<Server>(
      new Server(std::make_unique<Impl>(workers, std::move(shared), *ep)));
}

Status Server::Start() {
  Impl& s = *impl_;
  error_code ec;
  s.acceptor.emplace(s.ioc);
  s.acceptor->open(s.endpoint.protocol(), ec);
  if (!ec) s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec && s.endpoint.address().is_v6()) s.acceptor->set_option(net::ip::v6_only(true), ec);
  if (!ec) s.acceptor->bind(s.endpoint, ec);
  if (!ec) s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Unavailable("api: cannot listen on " + s.shared->options.listen + ": " + ec.message());
  }
  s.endpoint = s.acceptor->local_endpoint(ec);
  s.Accept();
  s.guard.emplace(s.ioc.get_executor());
  for (size_t i = 0; i < s.shared->options.io_threads; ++i) {
    s.threads.emplace_back([&s] { s.ioc.run(); });
  }
  DBW_LOG(kInfo) << "api: listening on " << s.endpoint << (s.shared->tls ? " (TLS)" : "");
  return Status::Ok();
}

void Server::Stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  if (s.acceptor) {
    net::post(s.ioc, [&s] {
      error_code ec;
      s.acceptor->close(ec);
    });
  }
  s.guard.reset();
  s.ioc.stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  s.workers.join();  // workers finish their request; the responses they post are discarded
}

uint16_t Server::port() const {
  return impl_->endpoint.port();
}
bool Server::tls() const {
  return impl_->shared->tls.has_value();
}

}  // namespace dbw::api
