// The audit store's on-disk formats: record encoding (version 1), index keys and posting
// blocks, the index terms of an event, served JSON and query cursors.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
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
// The same 8 bytes written at out.
void StoreBigEndian64(uint64_t v, char* out);
uint64_t GetBigEndian64(const char* p);
std::string SeqKey(uint64_t seq);
// Signed ts mapped to an unsigned, order-preserving 8-byte string.
void PutTimestamp(int64_t ts_us, std::string* out);
// The same 8 bytes written at out.
void StoreTimestamp(int64_t ts_us, char* out);
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
// The same terms computed from the event itself, without rendering and re-parsing its JSON
// (the writer's path). Equal to ExtractTerms(AppendEventJson(event)).values, in the same order.
void EventTerms(const Event& event, std::vector<std::pair<Index, std::string>>* out);

// Index entries are posting blocks: all events of one commit batch that share an index value
// form one key, value | 0x00 | ts | seq of the block's newest posting (kTime: ts | seq), whose
// value is the block's postings, oldest first. A block spans at most kBlockSpanUs of ts, so a
// block holding a posting at ts t has a key at most t + kBlockSpanUs: queries bound their scans
// with that. Newest first = reverse key order plus a merge of overlapping blocks.
struct Posting {
  int64_t ts_us = 0;
  uint64_t seq = 0;
  friend bool operator<(const Posting& a, const Posting& b) {
    return a.ts_us != b.ts_us ? a.ts_us < b.ts_us : a.seq < b.seq;
  }
  friend bool operator==(const Posting& a, const Posting& b) {
    return a.ts_us == b.ts_us && a.seq == b.seq;
  }
};
constexpr int64_t kBlockSpanUs = 1'000'000;
constexpr size_t kPostingSize = 16;  // ts (8, sign-flipped BE) | seq (8, BE)

// Block key: value | 0x00 | ts | seq (kTime: ts | seq).
std::string IndexKey(Index index, std::string_view value, int64_t ts_us, uint64_t seq);
// The (ts, seq) at the end of an index key; false when the key is too short.
bool ParseIndexKeyTail(std::string_view key, int64_t* ts_us, uint64_t* seq);
// `postings` sorted ascending, non-empty.
void EncodeBlock(std::span<const Posting> postings, std::string* out);
// Appends the block's postings to `out`. Never trusts `bytes`: a block that is empty, not a
// whole number of postings, or not strictly ascending is kDataLoss.
Status DecodeBlock(std::string_view bytes, std::vector<Posting>* out);
// Splits postings (sorted ascending) into blocks of at most kBlockSpanUs each and calls
// emit(begin, end) per block.
template <typename Emit>
void ForEachBlock(const std::vector<Posting>& sorted, Emit emit) {
  size_t begin = 0;
  for (size_t i = 1; i <= sorted.size(); ++i) {
    if (i == sorted.size() || sorted[i].ts_us - sorted[begin].ts_us > kBlockSpanUs) {
      emit(begin, i);
      begin = i;
    }
  }
}

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
