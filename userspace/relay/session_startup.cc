// Session: the startup — SSL negotiation, the startup packet and its settings judged, cancel
// requests, the upstream connection and its TLS — and authentication, including the SCRAM
// exchange the relay runs in the client's place when both legs are TLS.
#include <cstring>

#include "userspace/common/logging.h"
#include "userspace/gate/coverage.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/relay/session.h"
#include "userspace/relay/session_internal.h"
#include "userspace/relay/tls.h"

namespace dbw::relay {

void Session::ReadStartup() {
  ReadClientThen(&Session::OnStartupData, "client closed during startup");
}

void Session::ReadClientThen(void (Session::*next)(), const char* closed) {
  auto self = shared_from_this();
  auto& buf = client_.in;
  client_.transport.AsyncReadSome(
      asio::buffer(buf.data() + client_.in_len, buf.size() - client_.in_len),
      [this, self, next, closed](const boost::system::error_code& ec, size_t n) {
        if (ec || closing_) {
          Close(ec ? closed : "closing");
          return;
        }
        client_.in_len += n;
        (this->*next)();
      });
}

void Session::OnStartupData() {
  std::span<const std::byte> in(client_.in.data(), client_.in_len);
  pg::Frame frame;
  std::string error;
  pg::ParseState st = pg::ParseFrame(pg::Direction::kFrontend, true, &in, &frame, &error);
  if (st == pg::ParseState::kNeedMoreData) {
    ReadStartup();
    return;
  }
  if (st == pg::ParseState::kInvalid) {
    Fail(audit::EventKind::kProtocolViolation, "08P01", "invalid startup packet: " + error);
    return;
  }
  pg::StartupPacket packet;
  if (!pg::ParseStartupPacket(frame.body, &packet, &error)) {
    Fail(audit::EventKind::kProtocolViolation, "08P01", "invalid startup packet: " + error);
    return;
  }
  size_t used = frame.WireSize();
  auto consume = [this, used] {
    std::memmove(client_.in.data(), client_.in.data() + used, client_.in_len - used);
    client_.in_len -= used;
  };
  switch (packet.kind) {
    case pg::StartupKind::kSslRequest:
    case pg::StartupKind::kGssEncRequest: {
      consume();
      bool accept = packet.kind == pg::StartupKind::kSslRequest && target_->server_tls &&
                    !client_.transport.tls();
      if (client_.in_len != 0) {
        // Bytes after an SSLRequest would be read as plaintext before the handshake.
        Fail(audit::EventKind::kProtocolViolation, "08P01",
             "unexpected data after encryption request");
        return;
      }
      auto self = shared_from_this();
      client_.out.assign(1, static_cast<std::byte>(accept ? 'S' : 'N'));
      client_.transport.AsyncWrite(
          asio::buffer(client_.out),
          [this, self, accept](const boost::system::error_code& ec, size_t) {
            if (ec) {
              Close("client closed during SSL negotiation");
            } else if (accept) {
              StartClientTls();
            } else {
              ReadStartup();
            }
          });
      return;
    }
    case pg::StartupKind::kCancel:
      HandleCancel(packet.cancel);
      return;
    case pg::StartupKind::kStartup:
      break;
  }
  state_.OnStartup(packet.startup);
  principal_.db_user = state_.user();
  principal_.database = state_.database();
  principal_.application_name = state_.application_name();
  startup_bytes_.assign(client_.in.begin(), client_.in.begin() + static_cast<ptrdiff_t>(used));
  consume();
  if (target_->options.tls_required && !client_.transport.tls()) {
    deps_.metrics->login_failures->Add();
    Fail(audit::EventKind::kLoginFailed, "28000",
         "dbwarden: target \"" + target_->options.name +
             "\" requires TLS; connect with sslmode=require (or verify-ca, verify-full)");
    return;
  }
  if (target_->options.auth) {
    StartLogin();  // the relay verifies the client, then connects upstream
    return;
  }
  ConnectUpstream();
}

void Session::StartClientTls() {
  client_.transport.EnableTls(*target_->server_tls);
  auto self = shared_from_this();
  timer_.expires_after(deps_.options->connect_timeout);
  timer_.async_wait([this, self](const boost::system::error_code& ec) {
    if (!ec && !closed_ && !upstream_) Close("client TLS handshake timed out");
  });
  client_.transport.tls_stream()->async_handshake(
      asio::ssl::stream_base::server, [this, self](const boost::system::error_code& ec) {
        timer_.cancel();
        if (ec) {
          DBW_LOG(kInfo) << "session " << id_ << ": client TLS handshake failed: " << ec.message();
          // A certificate the client CA does not vouch for is refused here: a failed login.
          deps_.metrics->login_failures->Add();
          audit::Event e = NewEvent(audit::EventKind::kLoginFailed);
          e.error_sqlstate = "28000";
          e.error_message = "dbwarden: client TLS handshake failed: " + ec.message();
          deps_.sink->Submit(std::move(e));
          Close("client TLS handshake failed");
          return;
        }
        info_.reset();
        PeerCertificate peer =
            PeerCertificateIdentity(client_.transport.tls_stream()->native_handle());
        principal_.cert_subject = std::move(peer.subject);
        principal_.cert_san = std::move(peer.uri_san);
        principal_.cert_issuer = std::move(peer.issuer);
        ReadStartup();
      });
}

void Session::HandleCancel(const pg::CancelRequest& request) {
  auto upstream = deps_.cancels->Find(request);
  if (!upstream) {
    // As PostgreSQL does: no answer either way, so a guesser learns nothing.
    DBW_LOG(kInfo) << "session " << id_ << ": cancel request with unknown key ignored";
    Close("cancel request (unknown key)");
    return;
  }
  if (upstream->on_cancel) {
    // The statement is held by the relay for approval; nothing runs on the server.
    upstream->on_cancel();
    Close("cancel request (held statement withdrawn)");
    return;
  }
  const TargetRuntime* target = nullptr;
  for (const auto& t : *deps_.targets)
    if (t->options.name == upstream->target) target = t.get();
  if (target == nullptr) {
    Close("cancel request for a removed target");
    return;
  }
  // The cancel goes over its own plain connection; the server answers nothing and closes.
  upstream_ = std::make_unique<Leg>(worker_->context);
  pg::AppendCancelRequest(&upstream_->out, pg::CancelRequest{upstream->key.pid, upstream->key.key});
  auto self = shared_from_this();
  upstream_->transport.socket().async_connect(
      target->upstream, [this, self](const boost::system::error_code& ec) {
        if (ec) {
          Close("cancel: upstream unreachable");
          return;
        }
        upstream_->transport.AsyncWrite(asio::buffer(upstream_->out),
                                        [this, self](const boost::system::error_code&, size_t) {
                                          deps_.metrics->cancels_forwarded->Add();
                                          Close("cancel request forwarded");
                                        });
      });
}

void Session::ConnectUpstream() {
  upstream_ = std::make_unique<Leg>(worker_->context);
  upstream_->in.resize(kInitialBuffer);
  auto self = shared_from_this();
  timer_.expires_after(deps_.options->connect_timeout);
  timer_.async_wait([this, self](const boost::system::error_code& ec) {
    if (!ec && !upstream_ready_ && !closed_) {
      boost::system::error_code ignored;
      upstream_->transport.socket().close(ignored);  // fails the pending connect/handshake
    }
  });
  upstream_->transport.socket().async_connect(
      target_->upstream, [this, self](const boost::system::error_code& ec) {
        if (closing_) return;
        if (ec) {
          timer_.cancel();
          Fail(audit::EventKind::kUpstreamError, "08006",
               "dbwarden: could not connect to upstream server of target \"" +
                   target_->options.name + "\": " + ec.message());
          return;
        }
        OnUpstreamConnected();
      });
}

void Session::OnUpstreamConnected() {
  boost::system::error_code ec;
  if (!target_->upstream_is_unix) upstream_->transport.socket().set_option(tcp::no_delay(true), ec);
  WitnessUpstream();
  if (target_->client_tls) {
    NegotiateUpstreamTls();
  } else {
    SendStartupUpstream();
  }
}

void Session::WitnessUpstream() {
  // Over TLS the server's side is ciphertext: nothing the tap could count.
  if (deps_.witness == nullptr || target_->client_tls) return;
  witness_key_ = WitnessKey(upstream_->transport.socket(), target_->upstream_is_unix);
  if (witness_key_.empty()) return;
  upstream_->transport.Tally(&wire_sent_, &wire_received_);
  deps_.witness->RelayOpened(witness_key_, info_);
}

void Session::NegotiateUpstreamTls() {
  auto self = shared_from_this();
  upstream_->out.clear();
  pg::AppendSslRequest(&upstream_->out);
  upstream_->transport.AsyncWrite(
      asio::buffer(upstream_->out), [this, self](const boost::system::error_code& ec, size_t) {
        if (ec || closing_) {
          if (!closing_)
            Fail(audit::EventKind::kUpstreamError, "08006",
                 "dbwarden: upstream closed during SSL negotiation");
          return;
        }
        asio::async_read(
            upstream_->transport.socket(), asio::buffer(upstream_->in.data(), 1),
            [this, self](const boost::system::error_code& ec, size_t) {
              if (closing_) return;
              if (ec || upstream_->in[0] != static_cast<std::byte>('S')) {
                Fail(audit::EventKind::kUpstreamError, "08006",
                     "dbwarden: upstream server of target \"" + target_->options.name +
                         "\" does not accept TLS");
                return;
              }
              // A client certificate only for the client that proved that identity here.
              asio::ssl::context* tls = target_->client_tls.get();
              for (const auto& [who, ctx] : target_->client_tls_by_identity)
                if (who.Matches(principal_.cert_subject, principal_.cert_san,
                                principal_.cert_issuer)) {
                  tls = ctx.get();
                  break;
                }
              upstream_->transport.EnableTls(*tls);
              auto* stream = upstream_->transport.tls_stream();
              const auto& o = *target_->options.upstream_tls;
              if (!o.server_name.empty()) {
                SSL_set_tlsext_host_name(stream->native_handle(), o.server_name.c_str());
                stream->set_verify_callback(asio::ssl::host_name_verification(o.server_name));
              }
              stream->async_handshake(
                  asio::ssl::stream_base::client,
                  [this, self](const boost::system::error_code& ec) {
                    if (closing_) return;
                    if (ec) {
                      Fail(audit::EventKind::kUpstreamError, "08006",
                           "dbwarden: TLS handshake with upstream server of target \"" +
                               target_->options.name + "\" failed: " + ec.message());
                      return;
                    }
                    SendStartupUpstream();
                  });
            });
      });
}

bool Session::ParseHeldStartup(pg::StartupPacket* packet) {
  std::span<const std::byte> in(startup_bytes_);
  pg::Frame frame;
  std::string error;
  if (pg::ParseFrame(pg::Direction::kFrontend, true, &in, &frame, &error) != pg::ParseState::kOk ||
      !pg::ParseStartupPacket(frame.body, packet, &error)) {
    Fail(audit::EventKind::kProtocolViolation, "08P01", "invalid startup packet: " + error);
    return false;
  }
  return true;
}

bool Session::JudgeStartup() {
  pg::StartupPacket packet;
  if (!ParseHeldStartup(&packet)) return false;
  StatusOr<gate::StartupRequest> request = gate::ReadStartup(packet.startup);
  if (!request.ok()) {
    deps_.metrics->protocol_violations->Add();
    Fail(audit::EventKind::kProtocolViolation, "08P01", "dbwarden: " + request.status().message());
    return false;
  }
  std::shared_ptr<const policy::CompiledPolicy> policy = deps_.policy->Get();
  UpdateMasking(policy);
  for (const gate::StartupSetting& setting : request->settings) {
    std::string what = setting.from_options ? "startup option -c " + setting.name
                                            : "startup parameter \"" + setting.name + "\"";
    if (!JudgeStartupStatement(gate_.Facts(gate::SetStatementFor(setting)), what, policy))
      return false;
  }
  if (request->replication_requested) {
    auto facts = std::make_shared<sql::QueryFacts>();
    sql::StatementFacts& s = facts->statements.emplace_back();
    s.command = sql::Command::kReplication;
    s.object_kind = request->replication == "database" ? "DATABASE" : "PHYSICAL";
    s.normalized = "REPLICATION " + s.object_kind;
    if (!JudgeStartupStatement(std::move(facts), "replication connection", policy)) return false;
  }
  return true;
}

bool Session::JudgeStartupStatement(std::shared_ptr<const sql::QueryFacts> facts,
                                    const std::string& what,
                                    const std::shared_ptr<const policy::CompiledPolicy>& policy) {
  auto note = std::make_shared<DecisionNote>();
  note->facts = std::move(facts);
  Judge(note.get(), policy);
  const policy::Decision& d = note->decision;
  if (d.action == policy::Action::kAllow && d.rules.empty()) return true;
  audit::Event e = NewEvent(audit::EventKind::kDecision);
  e.statement = audit::StatementInfo{note->facts, "startup", ""};
  e.decision = audit::DecisionInfo{std::shared_ptr<const policy::Decision>(note, &note->decision),
                                   note->enforced, ""};
  deps_.sink->Submit(std::move(e));
  if (!note->enforced) return true;
  // A connection cannot wait for an approval: `approve` refuses it too.
  EndWithFatal(d.sqlstate.empty() ? std::string_view("42501") : std::string_view(d.sqlstate),
               "dbwarden: " + what + " refused: " + d.reason);
  return false;
}

void Session::SendStartupUpstream() {
  if (!peer_resolved_) {  // the startup is judged with the client's process known
    startup_waiting_peer_ = true;
    return;
  }
  if (closing_) return;
  if (target_->options.auth && !credential_ && (!CheckWorkloadBinding() || !InjectCredential()))
    return;
  if (!JudgeStartup()) return;
  auto self = shared_from_this();
  upstream_->out = std::move(startup_bytes_);
  upstream_->writing = true;
  upstream_->transport.AsyncWrite(asio::buffer(upstream_->out),
                                  [this, self](const boost::system::error_code& ec, size_t) {
                                    upstream_->writing = false;
                                    timer_.cancel();
                                    if (closing_) {
                                      FlushFatalThenClose();
                                      return;
                                    }
                                    if (ec) {
                                      Fail(audit::EventKind::kUpstreamError, "08006",
                                           "dbwarden: upstream closed during startup");
                                      return;
                                    }
                                    upstream_ready_ = true;
                                    server_owes_ = true;  // the answer to the startup
                                    upstream_decoder_.set_startup(false);
                                    Read(Side::kUpstream);
                                    MaybeStartClientPump();
                                  });
}

void Session::MaybeStartClientPump() {
  // The client's first message waits for the peer lookup, so every statement event carries
  // the client's process.
  if (client_pumping_ || !upstream_ready_ || !peer_resolved_ || closing_) return;
  client_pumping_ = true;
  if (client_.in_len > 0) {
    OnRead(Side::kClient, {}, 0);  // bytes that arrived with the startup packet
  } else {
    Read(Side::kClient);
  }
}

pg::MessageAction Session::OnAuthentication(const pg::Frame& frame, pg::Bytes* out,
                                            std::string* reason) {
  if (injected_login_) return OnInjectedAuthentication(frame, reason);
  if (auth_proxy_ != AuthProxy::kOff) return OnProxiedAuthentication(frame, reason);
  if (state_.last_auth_request() != pg::AuthCode::kSasl) return pg::MessageAction::kForward;
  pg::AuthenticationMessage auth;
  std::vector<std::string_view> mechs;
  if (!pg::ParseAuthentication(frame.body, &auth, reason) ||
      !pg::ParseSaslMechanisms(auth.data, &mechs, reason))
    return pg::MessageAction::kReject;
  bool plus_offered = std::any_of(mechs.begin(), mechs.end(),
                                  [](std::string_view m) { return m.ends_with("-PLUS"); });
  bool scram_offered =
      std::find(mechs.begin(), mechs.end(), ScramClient::kMechanism) != mechs.end();
  if (plus_offered && scram_offered && upstream_->transport.tls() && client_.transport.tls()) {
    // A TLS client that is not offered -PLUS says so in its SCRAM header ("y"), and a server
    // that supports channel binding refuses that as a downgrade. The relay authenticates in
    // the client's place instead, with the password sent over the client's TLS leg.
    auth_proxy_ = AuthProxy::kAwaitPassword;
    pg::AppendAuthenticationRequest(out, pg::AuthCode::kCleartextPassword);
    return pg::MessageAction::kHandled;
  }
  // Channel binding would bind to the relay's certificate, which the server never sees; a
  // client that is not on TLS has no channel to bind at all.
  if (!plus_offered) return pg::MessageAction::kForward;
  std::erase_if(mechs, [](std::string_view m) { return m.ends_with("-PLUS"); });
  pg::AppendAuthenticationSasl(out, mechs);
  return pg::MessageAction::kHandled;
}

pg::MessageAction Session::OnClientPassword(const pg::Frame& frame, pg::Bytes* out,
                                            std::string* reason) {
  if (auth_proxy_ != AuthProxy::kAwaitPassword || frame.type != pg::fe::kPassword) {
    *reason = "message sent while authentication was in progress";
    return pg::MessageAction::kReject;
  }
  std::string_view password;
  if (!pg::ParsePasswordMessage(frame.body, &password, reason)) return pg::MessageAction::kReject;
  scram_ = std::make_unique<ScramClient>(std::string(password));
  pg::AppendSaslInitialResponse(out, ScramClient::kMechanism, scram_->ClientFirst());
  auth_proxy_ = AuthProxy::kAwaitContinue;
  return pg::MessageAction::kHandled;
}

pg::MessageAction Session::OnProxiedAuthentication(const pg::Frame& frame, std::string* reason) {
  pg::AuthenticationMessage auth;
  if (!pg::ParseAuthentication(frame.body, &auth, reason)) return pg::MessageAction::kReject;
  std::string_view data(reinterpret_cast<const char*>(auth.data.data()), auth.data.size());
  if (auth_proxy_ == AuthProxy::kAwaitContinue && auth.code == pg::AuthCode::kSaslContinue) {
    auto final_message = scram_->ClientFinal(data);
    if (!final_message.ok()) {
      *reason = final_message.status().message();
      return pg::MessageAction::kReject;
    }
    pg::Bytes response;
    pg::AppendSaslResponse(&response, *final_message);
    WriteUpstreamOutOfBand(std::move(response));
    auth_proxy_ = AuthProxy::kAwaitFinal;
    return pg::MessageAction::kHandled;
  }
  if (auth_proxy_ == AuthProxy::kAwaitFinal && auth.code == pg::AuthCode::kSaslFinal) {
    if (Status st = scram_->VerifyServerFinal(data); !st.ok()) {
      *reason = st.message();
      return pg::MessageAction::kReject;
    }
    auth_proxy_ = AuthProxy::kAwaitOk;
    return pg::MessageAction::kHandled;
  }
  if (auth_proxy_ == AuthProxy::kAwaitOk && auth.code == pg::AuthCode::kOk) {
    auth_proxy_ = AuthProxy::kOff;
    scram_.reset();  // drops the password
    return pg::MessageAction::kForward;
  }
  *reason = "unexpected authentication message during SCRAM exchange";
  return pg::MessageAction::kReject;
}

void Session::NoteLoginFailure(const pg::Frame& error) {
  pg::ErrorMessage m;
  std::string ignored;
  if (!pg::ParseErrorOrNotice(error.body, &m, &ignored)) return;
  deps_.metrics->login_failures->Add();
  audit::Event e = NewEvent(audit::EventKind::kLoginFailed);
  e.error_sqlstate = std::string(m.Field('C'));
  e.error_message = std::string(m.Field('M'));
  DBW_LOG(kInfo) << "session " << id_ << " (" << principal_.client_addr
                 << "): login refused by the server: " << e.error_sqlstate << " "
                 << e.error_message;
  deps_.sink->Submit(std::move(e));
}

void Session::WriteUpstreamOutOfBand(pg::Bytes bytes) {
  if (upstream_->writing || closing_) return;  // the exchange is strictly request/response
  oob_out_ = std::move(bytes);
  server_owes_ = true;
  upstream_->writing = true;
  auto self = shared_from_this();
  upstream_->transport.AsyncWrite(asio::buffer(oob_out_),
                                  [this, self](const boost::system::error_code& ec, size_t) {
                                    upstream_->writing = false;
                                    if (closing_) {
                                      FlushFatalThenClose();
                                    } else if (ec) {
                                      Close("upstream write failed during authentication");
                                    }
                                  });
}

}  // namespace dbw::relay
