// A receive that tells Asio's epoll reactor when it has drained the socket.
//
// Asio's epoll reactor registers every socket edge-triggered and, before it waits for an edge,
// tries each read once ("speculatively"). It stops trying only after a read returned end of
// stream, so after every message the next read is a recvfrom that fails with EAGAIN: on the
// relay's data path two of the four recvfrom calls per round trip (issue 18's profile). A
// stream socket's short read (fewer bytes than asked for) took everything the kernel had
// queued, and any byte that arrives later raises a new edge; so this read reports a short read
// as "exhausted" to the reactor, which then waits for that edge instead of trying. The report
// is made under the descriptor's lock, as the reactor's own end-of-stream report is, so an edge
// that races with the read re-enables the speculative attempt and nothing is missed.
//
// This uses Asio's internals (the reactor operation and the socket's per-descriptor data) as
// Boost 1.74 defines them; the build is pinned to that Boost (docs/performance.md says why)
// and the checks below stop a different one from compiling.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

#include <boost/asio.hpp>
#include <boost/version.hpp>

#if BOOST_VERSION != 107400
#error "draining_read.h relies on Boost 1.74's Asio reactor internals: review it for this Boost"
#endif

namespace dbw::relay {

namespace draining_detail {

namespace ad = boost::asio::detail;
static_assert(std::is_same_v<ad::reactor, ad::epoll_reactor>,
              "the draining receive is written for Asio's epoll reactor");

template <typename Handler, typename IoExecutor>
class ReceiveOp : public ad::reactor_op {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(ReceiveOp);

  ReceiveOp(const boost::system::error_code& success_ec, ad::socket_type socket,
            boost::asio::mutable_buffer buffer, Handler& handler, const IoExecutor& io_ex)
      : reactor_op(success_ec, &ReceiveOp::DoPerform, &ReceiveOp::DoComplete),
        socket_(socket),
        buffer_(buffer),
        handler_(std::move(handler)),
        work_(handler_, io_ex) {}

  static status DoPerform(reactor_op* base) {
    auto* o = static_cast<ReceiveOp*>(base);
    if (!ad::socket_ops::non_blocking_recv1(o->socket_, o->buffer_.data(), o->buffer_.size(), 0,
                                            /*is_stream=*/true, o->ec_, o->bytes_transferred_))
      return not_done;  // EAGAIN: wait for the edge
    // End of stream (Asio's own rule) or a short read: the socket is drained.
    if (o->bytes_transferred_ == 0 || (!o->ec_ && o->bytes_transferred_ < o->buffer_.size()))
      return done_and_exhausted;
    return done;
  }

  static void DoComplete(void* owner, ad::operation* base, const boost::system::error_code&,
                         std::size_t) {
    // As reactive_socket_recv_op::do_complete: the handler is moved out and the operation's
    // memory freed before the upcall.
    auto* o = static_cast<ReceiveOp*>(base);
    ptr p = {ad::addressof(o->handler_), o, o};
    ad::handler_work<Handler, IoExecutor> w(std::move(o->work_));
    ad::binder2<Handler, boost::system::error_code, std::size_t> handler(o->handler_, o->ec_,
                                                                         o->bytes_transferred_);
    p.h = ad::addressof(handler.handler_);
    p.reset();
    if (owner) {
      ad::fenced_block b(ad::fenced_block::half);
      w.complete(handler, handler.handler_);
    }
  }

 private:
  ad::socket_type socket_;
  boost::asio::mutable_buffer buffer_;
  Handler handler_;
  ad::handler_work<Handler, IoExecutor> work_;
};

}  // namespace draining_detail

// A stream socket of any family whose AsyncReceiveDraining is async_read_some without the
// failing speculative read after a short one (see above).
class DrainingSocket : public boost::asio::generic::stream_protocol::socket {
 public:
  using Base = boost::asio::generic::stream_protocol::socket;
  using Base::Base;

  // Calls handler(error_code, bytes) once some bytes (or an error, or end of stream) arrived.
  // `buffer` must not be empty.
  template <typename Handler>
  void AsyncReceiveDraining(boost::asio::mutable_buffer buffer, Handler&& handler) {
    namespace ad = draining_detail::ad;
    using Fn = std::decay_t<Handler>;
    using Op = draining_detail::ReceiveOp<Fn, executor_type>;
    Fn fn(std::forward<Handler>(handler));
    auto& impl = impl_.get_implementation();
    const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(fn);
    typename Op::ptr p = {ad::addressof(fn), Op::ptr::allocate(fn), nullptr};
    p.p = new (p.v) Op(boost::system::error_code(), impl.socket_, buffer, fn, impl_.get_executor());
    auto& reactor = boost::asio::use_service<ad::reactor>(get_executor().context());
    // As reactive_socket_service_base::start_op for a read that may be tried at once.
    if ((impl.state_ & ad::socket_ops::non_blocking) != 0 ||
        ad::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true, p.p->ec_)) {
      reactor.start_op(ad::reactor::read_op, impl.socket_, impl.reactor_data_, p.p, is_continuation,
                       /*allow_speculative=*/true);
    } else {
      reactor.post_immediate_completion(p.p, is_continuation);
    }
    p.v = p.p = nullptr;
  }
};

}  // namespace dbw::relay
