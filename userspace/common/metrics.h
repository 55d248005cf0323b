// Process-wide metrics (counters, gauges, histograms) rendered in Prometheus text format.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace dbw {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void Set(int64_t n) { value_.store(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Fixed exponential buckets in microseconds (1us .. ~16s); lock-free observation.
class Histogram {
 public:
  static constexpr size_t kBuckets = 25;
  void ObserveMicros(uint64_t us);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t bucket(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  static uint64_t BucketBound(size_t i) { return uint64_t{1} << i; }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
};

// Metrics are registered once by name+labels and live as long as the registry; lookups
// happen at setup, and hot paths keep the returned pointer.
class MetricsRegistry {
 public:
  static MetricsRegistry& Global();

  Counter* GetCounter(const std::string& name, const std::string& help,
                      const std::string& labels = "");
  // A counter kept in integer units and exported multiplied by `scale`, so the family is in
  // base units (nanoseconds counted, seconds exported: scale 1e-9).
  Counter* GetScaledCounter(const std::string& name, const std::string& help, double scale,
                            const std::string& labels = "");
  Gauge* GetGauge(const std::string& name, const std::string& help, const std::string& labels = "");
  Histogram* GetHistogram(const std::string& name, const std::string& help,
                          const std::string& labels = "");

  std::string RenderPrometheus() const;

 private:
  struct Family {
    std::string help;
    std::string type;
    double scale = 1;  // counters: exported value = value * scale
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };
  Family& FamilyFor(const std::string& name, const std::string& help, const char* type);

  mutable std::mutex mu_;  // guards families_ (not the metric values)
  std::map<std::string, Family> families_;
};

}  // namespace dbw
