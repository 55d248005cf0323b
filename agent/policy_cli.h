// `dbwarden policy check` and `dbwarden policy eval`: validate policy files, and decide
// statements offline (plain SQL or JSON lines in, one JSON decision per line out).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace dbw::agent {

// `policy check FILE...`: prints "FILE: ok (N rules)" per file, or the "FILE:LINE: reason" error.
// Exit 0 when every file (and all of them together) loads, 2 otherwise.
int PolicyCheckMain(const std::vector<std::string>& args);
int PolicyCheckMain(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// `policy eval [--policy FILE]... [--target T] [--env E] [--principal-kind agent|human] [--user U]
// [--mode enforce|monitor]`: reads stdin lines, writes one JSON decision per non-empty line.
// Exit 0 when every input was decided, 2 on bad arguments or any unusable input line.
int PolicyEvalMain(const std::vector<std::string>& args);
int PolicyEvalMain(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                   std::ostream& err);

}  // namespace dbw::agent
