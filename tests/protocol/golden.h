// Loads the golden wire captures in tests/testdata/postgres and splits them into frames.
#pragma once

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "userspace/protocol/postgres/parse.h"

namespace dbw::pg::testing {

inline std::vector<std::byte> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) out[i] = static_cast<std::byte>(raw[i]);
  return out;
}

inline std::string VectorPath(const std::string& name, const char* dir) {
  return std::string(DBW_TESTDATA) + "/postgres/" + name + "." + dir + ".bin";
}

struct Capture {
  std::vector<std::byte> fe;
  std::vector<std::byte> be;
  size_t fe_typed_offset = 0;  // the StartupMessage, after any SSL/GSS requests
  size_t be_typed_offset = 0;  // after the one-byte answers to SSL/GSS requests
  bool has_startup = false;
};

// Walks the untyped startup packets of a frontend capture.
inline Capture LoadCapture(const std::string& name) {
  Capture c;
  c.fe = ReadFile(VectorPath(name, "fe"));
  c.be = ReadFile(VectorPath(name, "be"));
  std::span<const std::byte> in(c.fe);
  while (!in.empty()) {
    Frame f;
    std::string error;
    std::span<const std::byte> before = in;
    if (ParseFrame(Direction::kFrontend, true, &in, &f, &error) != ParseState::kOk) break;
    StartupPacket p;
    if (!ParseStartupPacket(f.body, &p, &error)) {
      in = before;
      break;
    }
    if (p.kind == StartupKind::kSslRequest || p.kind == StartupKind::kGssEncRequest) {
      ++c.be_typed_offset;
      continue;
    }
    c.has_startup = p.kind == StartupKind::kStartup;
    if (c.has_startup) in = before;  // the offset points at the StartupMessage itself
    break;
  }
  c.fe_typed_offset = c.fe.size() - in.size();
  return c;
}

inline const std::vector<std::string>& AllVectors() {
  static const std::vector<std::string> names = {
      "psql_simple",           "pgbench_simple",   "pgbench_extended", "pgbench_prepared",
      "pgbench_prepared_tpcb", "psycopg2_session", "libpq_binary",     "cancel_session",
      "jdbc_session",          "psql_scram",       "psql_md5",         "node_session"};
  return names;
}

}  // namespace dbw::pg::testing
