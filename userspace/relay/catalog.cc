// CatalogCache and the loader behind it: a short-lived PostgreSQL client connection of the
// relay's own (startup, trust/cleartext/md5/SCRAM, one catalog query, Terminate).
#include "userspace/relay/catalog.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <span>

#include "userspace/common/logging.h"
#include "userspace/protocol/postgres/encoder.h"
#include "userspace/protocol/postgres/parse.h"
#include "userspace/relay/scram.h"
#include "userspace/relay/server.h"
#include "userspace/relay/transport.h"

namespace dbw::relay {
namespace {

namespace pg = dbw::pg;

constexpr std::chrono::seconds kLoadTimeout{10};
constexpr size_t kMaxCatalogBytes = 256u << 20;

// Every user relation's live columns (system ones, OID < 16384, are never masked by column),
// with its kind, estimated row count and each column's base type; every function, with the
// language and body of user-defined ones; the planner's estimate of distinct values per column
// (pg_stats, readable for the columns the login may read); view definitions; inheritance. Rows
// are tagged by their first value; then the names of system relations (pg_catalog,
// information_schema). The login pins search_path to pg_catalog, so no name here
// (operators included) resolves to a user's object.
constexpr std::string_view kCatalogQuery =
    "SELECT 'r', c.oid, n.nspname, c.relname, a.attnum, a.attname, c.relkind, c.reltuples, "
    "bn.nspname, b.typname, CASE WHEN b.oid IN (114, 3802) THEN 'J' ELSE b.typcategory END "
    "FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
    "JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype "
    "ELSE t.oid END "
    "JOIN pg_catalog.pg_namespace bn ON bn.oid = b.typnamespace "
    "WHERE a.attnum > 0 AND NOT a.attisdropped AND c.oid >= 16384 "
    "AND c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S'); "
    "SELECT 'f', p.oid, n.nspname, p.proname, p.provolatile, p.prosecdef, p.prokind, l.lanname, "
    "CASE WHEN p.oid < 16384 THEN '' WHEN p.prosqlbody IS NOT NULL "
    "THEN pg_catalog.pg_get_function_sqlbody(p.oid) ELSE p.prosrc END, "
    "EXISTS (SELECT FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::"
    "pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'e'), "
    // What expanding a call through a SQL function's body needs (user functions only).
    "u.* FROM pg_catalog.pg_proc p "
    "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
    "JOIN pg_catalog.pg_language l ON l.oid = p.prolang "
    "LEFT JOIN LATERAL (SELECT p.proisstrict, p.proretset, "
    "p.prorettype::pg_catalog.regtype::pg_catalog.text, rt.typtype, rt.typrelid, "
    "pg_catalog.array_to_string(ARRAY(SELECT COALESCE(a.m::pg_catalog.text, 'i') || "
    "a.t::pg_catalog.regtype::pg_catalog.text || E'\\x02' || COALESCE(a.n, '') "
    "FROM ROWS FROM (pg_catalog.unnest(COALESCE(p.proallargtypes, "
    "p.proargtypes::pg_catalog.oid[])), pg_catalog.unnest(p.proargmodes), "
    "pg_catalog.unnest(p.proargnames)) WITH ORDINALITY AS a(t, m, n, o) ORDER BY a.o), "
    "E'\\x01'), "
    "(SELECT pg_catalog.substr(c, 13) FROM pg_catalog.unnest(p.proconfig) c "
    "WHERE c LIKE 'search\\_path=%' LIMIT 1), p.proconfig IS NOT NULL, p.pronargdefaults, "
    "p.prosqlbody IS NOT NULL "
    "FROM pg_catalog.pg_type rt WHERE rt.oid = p.prorettype AND p.oid >= 16384) u ON true; "
    "SELECT 's', c.oid, a.attnum, s.n_distinct "
    "FROM pg_catalog.pg_stats s "
    "JOIN pg_catalog.pg_namespace n ON n.nspname = s.schemaname "
    "JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = s.attname "
    "WHERE c.oid >= 16384 AND NOT s.inherited AND s.n_distinct IS NOT NULL; "
    "SELECT 'v', c.oid, pg_catalog.pg_get_viewdef(c.oid) FROM pg_catalog.pg_class c "
    "WHERE c.oid >= 16384 AND c.relkind IN ('v', 'm'); "
    "SELECT 'i', i.inhrelid, i.inhparent FROM pg_catalog.pg_inherits i; "
    "SELECT 'n', c.relname FROM pg_catalog.pg_class c "
    "WHERE c.oid < 16384 AND c.relkind IN ('r', 'v', 'm', 'f', 'p')";

std::string_view Text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// One load: connect, log in, query, collect, hand the snapshot to `done`.
class CatalogLoader : public std::enable_shared_from_this<CatalogLoader> {
 public:
  using Done = std::function<void(std::shared_ptr<const CatalogSnapshot>, const Status&)>;

  CatalogLoader(asio::io_context& context, const TargetRuntime& target, CatalogLogin login,
                std::string database, witness::Witness* witness, Done done)
      : target_(target),
        witness_(witness),
        login_(std::move(login)),
        password_login_(login_.user, login_.password),
        database_(std::move(database)),
        done_(std::move(done)),
        transport_(context),
        timer_(context),
        snapshot_(std::make_shared<CatalogSnapshot>()) {}

  void Start() {
    auto self = shared_from_this();
    timer_.expires_after(kLoadTimeout);
    timer_.async_wait([this, self](const boost::system::error_code& ec) {
      if (!ec) Finish(Unavailable("catalog load timed out"));
    });
    transport_.socket().async_connect(
        target_.upstream, [this, self](const boost::system::error_code& ec) {
          if (ec) return Finish(Unavailable("cannot connect to upstream: " + ec.message()));
          if (target_.client_tls) return StartTls();
          if (witness_ != nullptr) {
            std::string key = WitnessKey(transport_.socket(), target_.upstream_is_unix);
            if (!key.empty()) witness_->RelayInternal(key);
          }
          SendStartup();
        });
  }

 private:
  void StartTls() {
    auto self = shared_from_this();
    out_.clear();
    pg::AppendSslRequest(&out_);
    transport_.AsyncWrite(
        asio::buffer(out_), [this, self](const boost::system::error_code& ec, size_t) {
          if (ec) return Finish(Unavailable("upstream closed during SSL negotiation"));
          asio::async_read(transport_.socket(), asio::buffer(tls_answer_, 1),
                           [this, self](const boost::system::error_code& ec, size_t) {
                             if (ec || tls_answer_[0] != 'S')
                               return Finish(Unavailable("upstream refused TLS"));
                             transport_.EnableTls(*target_.client_tls);
                             const std::string& name = target_.options.upstream_tls->server_name;
                             if (!name.empty()) {  // as the sessions' upstream legs do
                               auto* stream = transport_.tls_stream();
                               SSL_set_tlsext_host_name(stream->native_handle(), name.c_str());
                               stream->set_verify_callback(asio::ssl::host_name_verification(name));
                             }
                             transport_.tls_stream()->async_handshake(
                                 asio::ssl::stream_base::client,
                                 [this, self](const boost::system::error_code& ec) {
                                   if (ec)
                                     return Finish(Unavailable("TLS handshake: " + ec.message()));
                                   SendStartup();
                                 });
                           });
        });
  }

  void SendStartup() {
    pg::StartupMessage m;
    m.protocol = pg::kProtocolV3;
    m.params = {{"user", login_.user},
                {"database", database_},
                {"application_name", "dbwarden-catalog"},
                {"search_path", "pg_catalog"}};
    out_.clear();
    pg::AppendStartupMessage(&out_, m);
    Write();
    Read();
  }

  void Write() {
    auto self = shared_from_this();
    pending_ = std::move(out_);
    out_.clear();
    transport_.AsyncWrite(
        asio::buffer(pending_), [this, self](const boost::system::error_code& ec, size_t) {
          if (ec) Finish(Unavailable("catalog connection write failed: " + ec.message()));
        });
  }

  void Read() {
    auto self = shared_from_this();
    if (in_.size() - in_len_ < 16384) in_.resize(in_.size() + 65536);
    transport_.AsyncReadSome(
        asio::buffer(in_.data() + in_len_, in_.size() - in_len_),
        [this, self](const boost::system::error_code& ec, size_t n) {
          if (finished_) return;
          if (ec) return Finish(Unavailable("upstream closed the catalog connection"));
          in_len_ += n;
          if (in_len_ > kMaxCatalogBytes) return Finish(ResourceExhausted("catalog too large"));
          Consume();
        });
  }

  void Consume() {
    std::span<const std::byte> in(in_.data(), in_len_);
    while (!finished_) {
      pg::Frame frame;
      std::string error;
      pg::ParseState st = pg::ParseFrame(pg::Direction::kBackend, false, &in, &frame, &error);
      if (st == pg::ParseState::kInvalid) return Finish(DataLoss("bad catalog reply: " + error));
      if (st == pg::ParseState::kNeedMoreData) break;
      Status s = OnMessage(frame);
      if (!s.ok()) return Finish(s);
    }
    if (finished_) return;
    size_t used = in_len_ - in.size();
    std::memmove(in_.data(), in_.data() + used, in.size());
    in_len_ = in.size();
    if (!out_.empty()) Write();
    Read();
  }

  Status OnMessage(const pg::Frame& f) {
    std::string error;
    switch (f.type) {
      case pg::be::kAuthentication: {
        pg::AuthenticationMessage a;
        if (!pg::ParseAuthentication(f.body, &a, &error)) return DataLoss(error);
        return OnAuth(a);
      }
      case pg::be::kErrorResponse: {
        pg::ErrorMessage e;
        std::string message = "catalog connection refused";
        if (pg::ParseErrorOrNotice(f.body, &e, &error))
          for (const auto& field : e.fields)
            if (field.code == 'M') message = "catalog connection: " + std::string(field.value);
        return Unavailable(message);
      }
      case pg::be::kReadyForQuery:
        if (queried_) {
          pg::AppendTerminate(&out_);
          Finish(Status::Ok());
          return Status::Ok();
        }
        queried_ = true;
        pg::AppendQuery(&out_, kCatalogQuery);
        return Status::Ok();
      case pg::be::kDataRow: {
        pg::DataRowMessage row;
        if (!pg::ParseDataRow(f.body, &row, &error)) return DataLoss(error);
        return AddRow(row);
      }
      default:
        return Status::Ok();  // ParameterStatus, BackendKeyData, RowDescription, CommandComplete
    }
  }

  Status OnAuth(const pg::AuthenticationMessage& a) { return password_login_.Answer(a, &out_); }

  Status AddRow(const pg::DataRowMessage& row) {
    // A function row's expansion columns (from the 11th) are NULL for builtins, and the
    // SET search_path one when the function has none.
    const bool function = !row.values.empty() && row.values[0] && Text(*row.values[0]) == "f";
    for (size_t i = 0; i < row.values.size(); ++i)
      if (!row.values[i] && !(function && i >= 10)) return DataLoss("NULL in catalog row");
    // values[0] is the row's tag; the rest are the query's columns.
    std::span<const std::optional<std::span<const std::byte>>> v(row.values);
    std::string_view tag = v.empty() ? std::string_view() : Text(*v[0]);
    if (tag == "r" && v.size() == 11) return AddColumn(v.subspan(1));
    if (tag == "f" && v.size() == 20) return AddFunction(v.subspan(1));
    if (tag == "s" && v.size() == 4) return AddStatistics(v.subspan(1));
    if (tag == "v" && v.size() == 3) return AddDefinition(v.subspan(1));
    if (tag == "i" && v.size() == 3) return AddInheritance(v.subspan(1));
    if (tag == "n" && v.size() == 2) {
      snapshot_->system_relations.emplace(Text(*v[1]));
      return Status::Ok();
    }
    return DataLoss("unexpected catalog row");
  }

  using Values = std::span<const std::optional<std::span<const std::byte>>>;

  template <typename T>
  static bool Number(const std::optional<std::span<const std::byte>>& v, T* out) {
    std::string_view text = Text(*v);
    return std::from_chars(text.data(), text.data() + text.size(), *out).ec == std::errc();
  }

  Status AddColumn(Values v) {
    uint32_t oid = 0;
    int attnum = 0;
    double tuples = -1;
    if (!Number(v[0], &oid) || !Number(v[3], &attnum) || attnum < 1 || attnum > 1600 ||
        !Number(v[6], &tuples))
      return DataLoss("unexpected catalog row");
    CatalogRelation& rel = snapshot_->relations[oid];
    if (rel.name.empty()) {
      rel.schema = Text(*v[1]);
      rel.name = Text(*v[2]);
      rel.kind = Text(*v[5]).empty() ? '\0' : Text(*v[5])[0];
      rel.tuples = tuples;
      snapshot_->by_name[rel.name].push_back(oid);
    }
    if (rel.columns.size() < static_cast<size_t>(attnum)) {
      rel.columns.resize(attnum);
      rel.types.resize(attnum);
    }
    rel.columns[attnum - 1] = Text(*v[4]);
    std::string_view category = Text(*v[9]);
    rel.types[attnum - 1] = {std::string(Text(*v[7])), std::string(Text(*v[8])),
                             category.empty() ? '\0' : category[0]};
    return Status::Ok();
  }

  Status AddFunction(Values v) {
    uint32_t oid = 0;
    if (!Number(v[0], &oid)) return DataLoss("unexpected catalog row");
    snapshot_->functions[oid] = std::string(Text(*v[1])) + "." + std::string(Text(*v[2]));
    snapshot_->function_names.emplace(Text(*v[2]));
    if (oid >= kFirstNormalObjectId) {
      // Keyed in lower case: the analysis reports names folded, quoted ones included.
      std::string key(Text(*v[2]));
      for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      UserFunction f{std::string(Text(*v[1])), Text(*v[3]) == "v",       Text(*v[4]) == "t",
                     std::string(Text(*v[2])), std::string(Text(*v[6])), std::string(Text(*v[7])),
                     Text(*v[8]) == "t"};
      f.kind = Text(*v[5]).empty() ? 'f' : Text(*v[5])[0];
      if (v[9] && v[10] && v[11] && v[12] && v[13] && v[14] && v[16] && v[17] && v[18]) {
        f.strict = Text(*v[9]) == "t";
        f.returns_set = Text(*v[10]) == "t";
        f.return_type = Text(*v[11]);
        f.return_type_kind = Text(*v[12]).empty() ? 'b' : Text(*v[12])[0];
        if (!Number(v[13], &f.return_relation) || !Number(v[17], &f.defaults))
          return DataLoss("unexpected catalog row");
        // mode, type, \x02, name; \x01 between arguments.
        std::string_view args = Text(*v[14]);
        for (size_t at = 0; !args.empty() && at <= args.size();) {
          size_t end = args.find('\x01', at);
          std::string_view a = args.substr(at, end == std::string_view::npos ? end : end - at);
          size_t sep = a.find('\x02');
          if (a.empty() || sep == std::string_view::npos) return DataLoss("unexpected catalog row");
          f.args.push_back(
              {a[0], std::string(a.substr(1, sep - 1)), std::string(a.substr(sep + 1))});
          if (end == std::string_view::npos) break;
          at = end + 1;
        }
        if (v[15]) f.config_search_path = std::string(Text(*v[15]));
        f.has_config = Text(*v[16]) == "t";
        f.atomic = Text(*v[18]) == "t";
      }
      snapshot_->user_functions[key].push_back(std::move(f));
    }
    return Status::Ok();
  }

  // Statistics come after every column (the queries run in order).
  Status AddStatistics(Values v) {
    uint32_t oid = 0;
    int attnum = 0;
    double n_distinct = 0;
    if (!Number(v[0], &oid) || !Number(v[1], &attnum) || attnum < 1 || attnum > 1600 ||
        !Number(v[2], &n_distinct))
      return DataLoss("unexpected catalog row");
    auto it = snapshot_->relations.find(oid);
    if (it == snapshot_->relations.end()) return Status::Ok();  // created meanwhile
    CatalogRelation& rel = it->second;
    if (rel.n_distinct.size() < static_cast<size_t>(attnum))
      rel.n_distinct.resize(attnum, std::numeric_limits<double>::quiet_NaN());
    rel.n_distinct[attnum - 1] = n_distinct;
    return Status::Ok();
  }

  Status AddDefinition(Values v) {
    uint32_t oid = 0;
    if (!Number(v[0], &oid)) return DataLoss("unexpected catalog row");
    auto it = snapshot_->relations.find(oid);
    if (it != snapshot_->relations.end()) it->second.definition = Text(*v[1]);
    return Status::Ok();
  }

  Status AddInheritance(Values v) {
    uint32_t child = 0, parent = 0;
    if (!Number(v[0], &child) || !Number(v[1], &parent)) return DataLoss("unexpected catalog row");
    auto it = snapshot_->relations.find(child);
    if (it != snapshot_->relations.end()) it->second.parents.push_back(parent);
    return Status::Ok();
  }

  void Finish(const Status& status) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    auto done = std::move(done_);
    if (status.ok()) {
      snapshot_->loaded_at = std::chrono::steady_clock::now();
      // Let the Terminate go out, then close.
      auto self = shared_from_this();
      pending_ = std::move(out_);
      transport_.AsyncWrite(asio::buffer(pending_), [this, self](const boost::system::error_code&,
                                                                 size_t) { transport_.Close(); });
      done(snapshot_, status);
    } else {
      transport_.Close();
      done(nullptr, status);
    }
  }

  const TargetRuntime& target_;
  witness::Witness* witness_;
  CatalogLogin login_;
  PasswordLogin password_login_;
  std::string database_;
  Done done_;
  Transport transport_;
  asio::steady_timer timer_;
  std::shared_ptr<CatalogSnapshot> snapshot_;
  pg::Bytes in_;
  size_t in_len_ = 0;
  pg::Bytes out_, pending_;
  char tls_answer_[1] = {0};
  bool queried_ = false;
  bool finished_ = false;
};

}  // namespace

bool CatalogSnapshot::CallsRiskyUserFunction(std::string_view name) const {
  std::string_view schema;
  if (size_t dot = name.rfind('.'); dot != std::string_view::npos) {
    schema = name.substr(0, dot);
    name = name.substr(dot + 1);
  }
  std::string key(name);
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = user_functions.find(key);
  if (it == user_functions.end()) return false;
  for (const UserFunction& f : it->second) {
    if (!f.is_volatile && !f.security_definer) continue;
    if (schema.empty() || schema.size() != f.schema.size()) {
      if (schema.empty()) return true;
      continue;
    }
    bool same = true;
    for (size_t i = 0; i < schema.size(); ++i)
      same = same && std::tolower(static_cast<unsigned char>(schema[i])) ==
                         std::tolower(static_cast<unsigned char>(f.schema[i]));
    if (same) return true;
  }
  return false;
}

bool CatalogSnapshot::FewGroups(const std::vector<sql::GroupColumn>& columns) const {
  // Per table: an upper bound of its distinct key values (the product over its key columns).
  std::unordered_map<const CatalogRelation*, double> groups;
  for (const sql::GroupColumn& g : columns) {
    auto named = by_name.find(g.table.name);
    if (named == by_name.end()) return false;
    bool any = false;
    for (uint32_t oid : named->second) {
      const CatalogRelation& rel = relations.at(oid);
      // An unqualified name may be any schema's table: each must pass.
      if (!g.table.schema.empty() && rel.schema != g.table.schema) continue;
      any = true;
      if (rel.kind != 'r' || rel.tuples <= 0) return false;  // views, partitions, never analysed
      auto col = std::find(rel.columns.begin(), rel.columns.end(), g.column);
      if (col == rel.columns.end()) return false;  // an output name, or not this table's
      const size_t i = static_cast<size_t>(col - rel.columns.begin());
      if (i >= rel.n_distinct.size() || std::isnan(rel.n_distinct[i])) return false;
      const double nd = rel.n_distinct[i];
      const double distinct = nd > 0 ? nd : -nd * rel.tuples;  // negative: a fraction of rows
      auto [it, fresh] = groups.emplace(&rel, 1.0);
      it->second *= std::max(1.0, distinct);
    }
    if (!any) return false;
  }
  for (const auto& [rel, n] : groups)
    if (n > kMaxGroupFraction * rel->tuples) return false;
  return true;
}

std::optional<std::pair<const CatalogRelation*, const std::string*>> CatalogSnapshot::Find(
    uint32_t oid, int16_t attnum) const {
  auto it = relations.find(oid);
  if (it == relations.end() || attnum < 1 ||
      static_cast<size_t>(attnum) > it->second.columns.size())
    return std::nullopt;
  const std::string& column = it->second.columns[attnum - 1];
  if (column.empty()) return std::nullopt;
  return std::make_pair(&it->second, &column);
}

void CatalogCache::Get(const TargetRuntime& target, const CatalogLogin& session,
                       const std::string& database, Ready ready) {
  std::string key = target.options.name + '\0' + database;
  Entry& e = entries_[key];
  // DDL through another worker's sessions bumps the generation; DDL by clients that bypass the
  // relay is caught by age (and by names the catalog does not know).
  const uint64_t generation = Generation().load(std::memory_order_acquire);
  if (e.generation != generation) e.stale = true;
  if (e.snapshot && !e.stale &&
      std::chrono::steady_clock::now() - e.snapshot->loaded_at < kMaxAge) {
    ready(e.snapshot, Status::Ok());
    return;
  }
  if (!e.loading && !e.last_error.ok() &&
      std::chrono::steady_clock::now() - e.failed_at < kRetryAfter) {
    ready(e.snapshot, e.last_error);
    return;
  }
  e.waiters.push_back(std::move(ready));
  if (e.loading) return;
  e.loading = true;
  CatalogLogin login = target.options.catalog_login;
  if (login.user.empty()) {
    login.user = session.user;
    if (!session.password.empty()) login.password = session.password;
  }
  auto loader = std::make_shared<CatalogLoader>(
      context_, target, std::move(login), database, witness_,
      [this, key, generation](std::shared_ptr<const CatalogSnapshot> snapshot,
                              const Status& status) {
        Finished(key, std::move(snapshot), status, generation);
      });
  loader->Start();
}

std::atomic<uint64_t>& CatalogCache::Generation() {
  static std::atomic<uint64_t> generation{0};
  return generation;
}

void CatalogCache::Finished(const std::string& key, std::shared_ptr<const CatalogSnapshot> snapshot,
                            const Status& status, uint64_t generation) {
  Entry& e = entries_[key];
  e.loading = false;
  e.last_error = status;
  if (status.ok()) {
    e.snapshot = std::move(snapshot);
    e.stale = false;
    e.generation = generation;  // an invalidation during the load leaves it stale
  } else {
    e.failed_at = std::chrono::steady_clock::now();
    DBW_LOG(kWarning) << "masking catalog for " << key.substr(0, key.find('\0')) << "/"
                      << key.substr(key.find('\0') + 1) << " not loaded: " << status.message();
  }
  auto waiters = std::move(e.waiters);
  e.waiters.clear();
  for (auto& w : waiters) w(e.snapshot, status);
}

std::shared_ptr<const CatalogSnapshot> CatalogCache::Peek(const std::string& target,
                                                          const std::string& database) const {
  auto it = entries_.find(target + '\0' + database);
  return it == entries_.end() ? nullptr : it->second.snapshot;
}

void CatalogCache::Invalidate(const std::string& target, const std::string& database) {
  auto it = entries_.find(target + '\0' + database);
  if (it != entries_.end()) it->second.stale = true;
  InvalidateEverywhere();
}

}  // namespace dbw::relay
