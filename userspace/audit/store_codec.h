// The audit store's on-disk formats: record encoding (version 1), index keys, the index terms
// of an event (read back from its canonical JSON), served JSON and query cursors.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "userspace/audit/store.h"
#include "userspace/common/status.h"

namespace dbw::audit::store {

using Hash = std::array<uint8_t, 32>;

constexpr uint8_t kRecordVersion = 1;
// version(1) | ts_us(8, BE) | prev_hash(32) | hash(32) | canonical JSON
constexpr size_t kRecordHeader = 1 + 8 + 32 + 32;

// One secondary index = one column family; kTime's keys carry no value prefix.
enum class Index : uint8_t {
  kTime,
  kPrincipal,
  kDbUser,
  kDatabase,
  kTable,
  kAction,
  kKind,
  kSession,
  kExe,  // process exe and systemd unit
  kFingerprint,
  kSource,
};
constexpr size_t kIndexCount = 11;
const char* IndexCfName(Index index);

struct Record {
  uint64_t seq = 0;  // from the key
  int64_t ts_us = 0;
  Hash prev_hash{};
  Hash hash{};
  std::string_view canonical;  // the bytes the hash covers (AppendEventJson output)
};

void PutBigEndian64(uint64_t v, std::string* out);
uint64_t GetBigEndian64(const char* p);
std::string SeqKey(uint64_t seq);
// Signed ts mapped to an unsigned, order-preserving 8-byte string.
void PutTimestamp(int64_t ts_us, std::string* out);
int64_t GetTimestamp(const char* p);

void EncodeRecord(int64_t ts_us, const Hash& prev, const Hash& hash, std::string_view canonical,
                  std::string* out);
// Never trusts `bytes`: a malformed record is kDataLoss, never a crash.
Status DecodeRecord(uint64_t seq, std::string_view bytes, Record* out);

// The values an event is indexed under (all indexes but kTime), read from its canonical JSON.
// Values never contain NUL (the JSON writer replaces it), so value|0x00 is an exact prefix.
struct Terms {
  uint64_t seq = 0;  // the JSON's own "seq"
  std::string ts;    // the JSON's own "ts"
  std::vector<std::pair<Index, std::string>> values;
  bool Has(Index index, std::string_view value) const;
};
Status ExtractTerms(std::string_view canonical, Terms* out);

// Index key: value | 0x00 | ts | seq (kTime: ts | seq). Newest first = reverse key order.
std::string IndexKey(Index index, std::string_view value, int64_t ts_us, uint64_t seq);
// The (ts, seq) at the end of an index key; false when the key is too short.
bool ParseIndexKeyTail(std::string_view key, int64_t* ts_us, uint64_t* seq);

// The served JSON: the canonical object with "prev_hash" and "hash" (hex) appended.
std::string ServedJson(const Record& record);
std::string Hex(const uint8_t* data, size_t n);
bool ParseHex(std::string_view hex, std::string* out);

// Cursor: hex of version | filter hash | ts | seq of the last event returned.
uint64_t FilterHash(const EventFilter& filter);
std::string EncodeCursor(uint64_t filter_hash, int64_t ts_us, uint64_t seq);
Status DecodeCursor(std::string_view cursor, uint64_t filter_hash, int64_t* ts_us, uint64_t* seq);

// The set filters as (index, value), most selective index first.
std::vector<std::pair<Index, std::string>> FilterTerms(const EventFilter& filter);

}  // namespace dbw::audit::store
