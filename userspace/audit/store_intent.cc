// AuditStore: the producers' intent logs (intent_log.h): one per producer thread, replayed at
// the next start when the agent stopped before committing what they hold.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include <rocksdb/write_batch.h>

#include "userspace/audit/store_impl.h"
#include "userspace/common/logging.h"

namespace dbw::audit {
namespace {

namespace fs = std::filesystem;

// Threads with a log of their own: the relay's workers. Any further thread waits for the writer.
constexpr size_t kMaxIntentLogs = 64;

std::atomic<uint64_t> g_next_store_id{1};

}  // namespace

IntentLog* AuditStore::Impl::ThreadIntentLog() {
  if (options.intent_log_bytes == 0 || intent_dir.empty()) return nullptr;
  // (store id, log) of every store this thread submitted to; ids are never reused, so an entry
  // of a closed store is never found again.
  thread_local std::vector<std::pair<uint64_t, IntentLog*>> mine;
  for (const auto& [id, log] : mine)
    if (id == store_id) return log;
  IntentLog* log = nullptr;
  {
    std::lock_guard<std::mutex> lock(intent_mu);
    if (intent_logs.size() < kMaxIntentLogs) {
      const std::string path =
          intent_dir + "/" + intent_run + "-" + std::to_string(intent_logs.size()) + ".log";
      auto created = IntentLog::Create(path, options.intent_log_bytes);
      if (created.ok()) {
        log = created->get();
        intent_logs.push_back(std::move(*created));
      } else {
        DBW_LOG(kWarning) << "audit store: " << created.status().message()
                          << "; this thread's audit-before-forward waits for the writer";
      }
    }
  }
  mine.emplace_back(store_id, log);
  return log;
}

void AuditStore::Impl::RecoverIntents() {
  store_id = g_next_store_id.fetch_add(1);
  intent_dir = options.dir + "/intent";
  intent_run = std::to_string(NowMicros());
  std::error_code ec;
  fs::create_directories(intent_dir, ec);
  if (ec) {
    DBW_LOG(kError) << "audit store: cannot create " << intent_dir << ": " << ec.message()
                    << "; audit-before-forward waits for the writer";
    intent_dir.clear();
    return;
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(intent_dir, ec))
    if (entry.path().extension() == ".log") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  std::vector<std::string> kept;  // logs that still hold what could not be written
  for (const fs::path& file : files) {
    const std::string name = file.stem().string();
    uint64_t mark = 0;
    std::string v;
    if (db->Get(rocksdb::ReadOptions(), meta, std::string(kMetaIntentPrefix) + name, &v).ok() &&
        v.size() == 8)
      mark = store::GetBigEndian64(v.data());
    auto entries = IntentLog::Recover(file.string());
    if (!entries.ok()) {
      DBW_LOG(kError) << "audit store: " << entries.status().message() << "; left in place";
      kept.push_back(name);
      continue;
    }
    Batch batch;
    size_t invalid = 0;
    for (IntentLog::Entry& e : *entries) {
      if (e.seq <= mark) continue;
      // Checked here, not at commit: an entry that cannot become a record (only a file written
      // by something other than the agent has one) is reported and skipped instead of failing
      // its batch again and again.
      store::Terms terms;
      std::string_view json =
          std::string_view(e.payload).substr(std::min(e.payload.size(), sizeof(int64_t)));
      if (e.payload.size() < sizeof(int64_t) || json.rfind(R"({"seq":0,)", 0) != 0 ||
          !store::ExtractTerms(json, &terms).ok()) {
        ++invalid;
        continue;
      }
      QueuedEvent q;
      std::memcpy(&q.event.ts_us, e.payload.data(), sizeof(int64_t));
      q.rendered = std::move(e.payload);
      q.recovered = true;
      q.intent_name = &name;
      q.intent_seq = e.seq;
      batch.push_back(std::move(q));
    }
    if (invalid > 0) {
      DBW_LOG(kError) << "audit store: " << invalid << " entries of " << file.string()
                      << " are not audit records of this agent; skipped";
    }
    const size_t count = batch.size();
    if (count > 0) CommitQueued(&batch, 0, 0, "");
    if (!retry.empty()) {
      DBW_LOG(kError) << "audit store: could not replay " << retry.size() << " of " << count
                      << " audit records from " << file.string()
                      << "; left in place for the next start";
      retry.clear();  // their log keeps them; nothing later from it was committed
      kept.push_back(name);
      continue;
    }
    if (count > 0) {
      m_intent_replayed->Add(count);
      DBW_LOG(kWarning) << "audit store: replayed " << count << " audit records from "
                        << file.string() << " (the agent stopped before committing them)";
    }
    fs::remove(file, ec);
  }
  // Marks of logs that are gone (replayed above, or removed at a clean stop).
  rocksdb::WriteBatch wb;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), meta));
  for (it->Seek(kMetaIntentPrefix); it->Valid() && it->key().starts_with(kMetaIntentPrefix);
       it->Next()) {
    std::string name = it->key().ToString().substr(std::strlen(kMetaIntentPrefix));
    if (std::find(kept.begin(), kept.end(), name) == kept.end())
      wb.Delete(meta, it->key()).PermitUncheckedError();
  }
  if (wb.Count() > 0) db->Write(rocksdb::WriteOptions(), &wb).PermitUncheckedError();
  intent_ok.store(true);
}

void AuditStore::Impl::CloseIntentLogs() {
  std::lock_guard<std::mutex> lock(intent_mu);
  if (!retry.empty()) return;  // the next start replays them
  std::error_code ec;
  for (const auto& log : intent_logs) fs::remove(log->path(), ec);
  intent_logs.clear();
}

}  // namespace dbw::audit
