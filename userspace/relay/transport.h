// Transport: one stream connection (TCP, or a unix socket upstream), plain or TLS, with the same
// async read/write calls.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include "userspace/protocol/postgres/wire_tally.h"
#include "userspace/relay/draining_read.h"

namespace dbw::relay {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
// A socket of any stream family: client legs are TCP, upstream legs TCP or unix. Its plain reads
// skip the recvfrom that would fail with EAGAIN after a short read (draining_read.h).
using StreamSocket = DrainingSocket;
using StreamEndpoint = asio::generic::stream_protocol::endpoint;

// A TCP endpoint from a stream socket's address (a default one when it is not AF_INET/6).
inline tcp::endpoint TcpEndpoint(const StreamEndpoint& e) {
  tcp::endpoint out;
  const int family = e.data()->sa_family;
  if ((family == AF_INET || family == AF_INET6) && e.size() <= out.capacity()) {
    std::memcpy(out.data(), e.data(), e.size());
    out.resize(e.size());
  }
  return out;
}

class Transport {
 public:
  explicit Transport(asio::io_context& context) : socket_(context) {}  // not yet connected
  // An accepted connection (TCP, or a unix socket), taken over with its descriptor (a closed
  // socket when the connection is already gone: the first use then fails as it would have).
  template <typename Protocol>
  explicit Transport(asio::basic_stream_socket<Protocol> socket) : socket_(socket.get_executor()) {
    boost::system::error_code ec;
    const typename Protocol::endpoint local = socket.local_endpoint(ec);
    if (ec) return;
    const Protocol protocol = local.protocol();
    const int fd = socket.release(ec);
    if (ec) return;
    socket_.assign(asio::generic::stream_protocol(protocol.family(), protocol.protocol()), fd, ec);
    if (ec) ::close(fd);
  }
  Transport(Transport&&) = default;
  // A unix-socket connection (the relay's listen_unix), not TCP.
  bool is_unix() {
    boost::system::error_code ec;
    return socket_.local_endpoint(ec).data()->sa_family == AF_UNIX && !ec;
  }
  StreamSocket& socket() { return socket_; }
  bool tls() const { return tls_ != nullptr; }
  asio::ssl::stream<StreamSocket&>* tls_stream() { return tls_.get(); }

  // Counts every plain byte written into `sent` and every byte read into `received` from here on
  // (the second witness); both outlive the transport's pending operations.
  void Tally(pg::WireTally* sent, pg::WireTally* received) {
    sent_ = sent;
    received_ = received;
  }

  // Wraps the socket in TLS; the caller then runs AsyncHandshake.
  void EnableTls(asio::ssl::context& ctx) {
    tls_ = std::make_unique<asio::ssl::stream<StreamSocket&>>(socket_, ctx);
  }

  template <typename Buffer, typename Handler>
  void AsyncReadSome(const Buffer& buffer, Handler&& handler) {
    if (tls_) {
      tls_->async_read_some(buffer, std::forward<Handler>(handler));
    } else if (received_ != nullptr) {
      const auto* at = static_cast<const std::byte*>(asio::buffer_sequence_begin(buffer)->data());
      socket_.AsyncReceiveDraining(buffer,
                                   [tally = received_, at, h = std::forward<Handler>(handler)](
                                       const boost::system::error_code& ec, size_t n) mutable {
                                     tally->Feed({at, n});
                                     h(ec, n);
                                   });
    } else {
      socket_.AsyncReceiveDraining(buffer, std::forward<Handler>(handler));
    }
  }

  template <typename Buffer, typename Handler>
  void AsyncWrite(const Buffer& buffer, Handler&& handler) {
    if (tls_) {
      asio::async_write(*tls_, buffer, std::forward<Handler>(handler));
      return;
    }
    if (sent_ != nullptr) {
      // Counted as handed over: a write that fails ends the session, and the server's count
      // can then only be lower.
      for (auto b = asio::buffer_sequence_begin(buffer); b != asio::buffer_sequence_end(buffer);
           ++b)
        sent_->Feed({static_cast<const std::byte*>(b->data()), b->size()});
    }
    asio::async_write(socket_, buffer, std::forward<Handler>(handler));
  }

  void Close() {
    boost::system::error_code ec;
    socket_.shutdown(StreamSocket::shutdown_both, ec);
    socket_.close(ec);
  }

 private:
  StreamSocket socket_;
  std::unique_ptr<asio::ssl::stream<StreamSocket&>> tls_;
  pg::WireTally* sent_ = nullptr;
  pg::WireTally* received_ = nullptr;
};

}  // namespace dbw::relay
