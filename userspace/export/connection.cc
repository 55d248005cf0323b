#include "userspace/export/connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace dbw::exporter {
namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  std::array<char, 256> buf{};
  ERR_error_string_n(e, buf.data(), buf.size());
  ERR_clear_error();
  return buf.data();
}

int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<int64_t>(left.count(), 0, 3'600'000));
}

bool IpLiteral(const std::string& name) {
  in6_addr addr{};
  return ::inet_pton(AF_INET, name.c_str(), &addr) == 1 ||
         ::inet_pton(AF_INET6, name.c_str(), &addr) == 1;
}

}  // namespace

std::string LocalHostName() {
  std::array<char, 256> buf{};
  if (::gethostname(buf.data(), buf.size() - 1) != 0) return {};
  return buf.data();
}

StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& host,
                                                       const std::string& port,
                                                       const TlsOptions& tls,
                                                       std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  std::unique_ptr<Connection> c(new Connection());
  c->peer_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return Unavailable("cannot resolve " + c->peer_ + ": " + ::gai_strerror(rc));
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    c->fd_ = fd;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = std::strerror(errno);
    } else if (Status st = c->Wait(POLLOUT, deadline, "connect"); !st.ok()) {
      last_error = st.message();
    } else {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) break;
      last_error = std::strerror(err);
    }
    ::close(fd);
    c->fd_ = -1;
  }
  ::freeaddrinfo(found);
  if (c->fd_ < 0) return Unavailable("cannot connect to " + c->peer_ + ": " + last_error);
  int one = 1;
  ::setsockopt(c->fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // A receiver that stops acknowledging (its host gone, a network split: no FIN, no RST) fails
  // the connection after `timeout` rather than after TCP's own ~15 minutes.
  unsigned user_timeout = static_cast<unsigned>(std::max<int64_t>(timeout.count(), 1000));
  ::setsockopt(c->fd_, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
  if (tls.enabled) {
    if (Status st = c->Handshake(tls, host, deadline); !st.ok()) return st;
  }
  return c;
}

Status Connection::Handshake(const TlsOptions& tls, const std::string& host,
                             Clock::time_point deadline) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) return Internal("TLS: " + OpenSslError());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  // A receiver that closes without close_notify ends the stream like one that sends it (the
  // exporters frame what they read themselves).
  SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  int loaded = tls.ca_file.empty()
                   ? SSL_CTX_set_default_verify_paths(ctx_)
                   : SSL_CTX_load_verify_locations(ctx_, tls.ca_file.c_str(), nullptr);
  if (loaded != 1) return FailedPrecondition("TLS CA " + tls.ca_file + ": " + OpenSslError());
  if (!tls.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, tls.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return FailedPrecondition("TLS client certificate " + tls.cert_file + ": " + OpenSslError());
  }
  ssl_ = SSL_new(ctx_);
  if (ssl_ == nullptr) return Internal("TLS: " + OpenSslError());
  const std::string& name = tls.server_name.empty() ? host : tls.server_name;
  // The receiver's certificate must name it: a DNS name (also sent as SNI), or the IP address
  // connected to (never sent as SNI: RFC 6066 section 3).
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (IpLiteral(name)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1)
      return Internal("TLS: cannot check the certificate against " + name);
  } else if (SSL_set_tlsext_host_name(ssl_, name.c_str()) != 1 ||
             X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size()) != 1) {
    return Internal("TLS: cannot check the certificate against " + name);
  }
  SSL_set_fd(ssl_, fd_);
  while (true) {
    ERR_clear_error();
    int rc = SSL_connect(ssl_);
    if (rc == 1) return Status::Ok();
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      if (Status st =
              Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, "TLS handshake");
          !st.ok())
        return st;
      continue;
    }
    long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK)
      return Unavailable("TLS handshake with " + peer_ +
                         ": certificate not trusted: " + X509_verify_cert_error_string(verify));
    return Unavailable("TLS handshake with " + peer_ + ": " + OpenSslError());
  }
}

Connection::~Connection() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

Status Connection::Wait(short events, Clock::time_point deadline, const char* what) {
  while (true) {
    pollfd p{fd_, events, 0};
    int rc = ::poll(&p, 1, MillisLeft(deadline));
    if (rc > 0) return Status::Ok();  // ready, or an error the next call reports
    if (rc == 0) {
      timed_out_ = true;
      return Unavailable(std::string(what) + " to " + peer_ + " timed out");
    }
    if (errno != EINTR) return Unavailable(std::string(what) + ": " + std::strerror(errno));
  }
}

Status Connection::WriteAll(std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      size_t written = 0;
      int rc = SSL_write_ex(ssl_, data.data(), data.size(), &written);
      if (rc == 1) {
        data.remove_prefix(written);
        continue;
      }
      int err = SSL_get_error(ssl_, rc);
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        return Unavailable(
            "TLS write to " + peer_ + ": " +
            (err == SSL_ERROR_SYSCALL ? std::string(std::strerror(errno)) : OpenSslError()));
      if (Status st = Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, "write");
          !st.ok())
        return st;
      continue;
    }
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      written_ += static_cast<uint64_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (Status st = Wait(POLLOUT, deadline, "write"); !st.ok()) return st;
    } else {
      return Unavailable("write to " + peer_ + ": " + std::strerror(errno));
    }
  }
  return Status::Ok();
}

Status Connection::ReadSome(std::string* out, Clock::time_point deadline) {
  std::array<char, 16384> buf{};
  while (true) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      size_t got = 0;
      int rc = SSL_read_ex(ssl_, buf.data(), buf.size(), &got);
      if (rc == 1) {
        out->append(buf.data(), got);
        return Status::Ok();
      }
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_ZERO_RETURN) {
        closed_ = true;
        return Unavailable(peer_ + " closed the connection");
      }
      if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        return Unavailable(
            "TLS read from " + peer_ + ": " +
            (err == SSL_ERROR_SYSCALL ? std::string("connection closed") : OpenSslError()));
      if (Status st = Wait(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, "read");
          !st.ok())
        return st;
      continue;
    }
    ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n > 0) {
      out->append(buf.data(), static_cast<size_t>(n));
      return Status::Ok();
    }
    if (n == 0) {
      closed_ = true;
      return Unavailable(peer_ + " closed the connection");
    }
    if (errno != EAGAIN && errno != EINTR)
      return Unavailable("read from " + peer_ + ": " + std::strerror(errno));
    if (Status st = Wait(POLLIN, deadline, "read"); !st.ok()) return st;
  }
}

uint64_t Connection::BytesWritten() const {
  return ssl_ != nullptr ? BIO_number_written(SSL_get_wbio(ssl_)) : written_;
}

StatusOr<int> Connection::Unacknowledged() const {
  int queued = 0;
  if (::ioctl(fd_, SIOCOUTQ, &queued) != 0)
    return Internal(std::string("SIOCOUTQ: ") + std::strerror(errno));
  return queued;
}

bool Connection::Alive() {
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return true;
  if (p.revents & POLLERR) return false;
  // Readable, or the end of the stream: a TLS receiver may send session tickets (read and
  // dropped), a syslog receiver nothing else; an end of stream sets closed().
  std::string discard;
  timed_out_ = false;
  Status st = ReadSome(&discard, Clock::now());
  return st.ok() || timed_out_;
}

}  // namespace dbw::exporter
