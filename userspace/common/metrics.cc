// Metric registry and Prometheus text rendering.
#include "userspace/common/metrics.h"

#include <bit>
#include <iomanip>
#include <sstream>

namespace dbw {

void Histogram::ObserveMicros(uint64_t us) {
  size_t i = us <= 1 ? 0 : static_cast<size_t>(std::bit_width(us - 1));
  if (i >= kBuckets) i = kBuckets - 1;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(us, std::memory_order_relaxed);
}

MetricsRegistry& MetricsRegistry::Global() {
  static MetricsRegistry* registry = new MetricsRegistry();
  return *registry;
}

MetricsRegistry::Family& MetricsRegistry::FamilyFor(const std::string& name,
                                                    const std::string& help, const char* type) {
  Family& f = families_[name];
  if (f.type.empty()) {
    f.help = help;
    f.type = type;
  }
  return f;
}

Counter* MetricsRegistry::GetCounter(const std::string& name, const std::string& help,
                                     const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = FamilyFor(name, help, "counter").counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Counter* MetricsRegistry::GetScaledCounter(const std::string& name, const std::string& help,
                                           double scale, const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, help, "counter");
  f.scale = scale;
  auto& slot = f.counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Gauge* MetricsRegistry::GetGauge(const std::string& name, const std::string& help,
                                 const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = FamilyFor(name, help, "gauge").gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return slot.get();
}

Histogram* MetricsRegistry::GetHistogram(const std::string& name, const std::string& help,
                                         const std::string& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = FamilyFor(name, help, "histogram").histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>();
  return slot.get();
}

namespace {
std::string WithLabels(const std::string& name, const std::string& labels,
                       const std::string& extra = "") {
  std::string all = labels;
  if (!extra.empty()) all = all.empty() ? extra : all + "," + extra;
  return all.empty() ? name : name + "{" + all + "}";
}
}  // namespace

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream out;
  for (const auto& [name, f] : families_) {
    out << "# HELP " << name << ' ' << f.help << "\n# TYPE " << name << ' ' << f.type << '\n';
    for (const auto& [labels, c] : f.counters) {
      out << WithLabels(name, labels) << ' ';
      if (f.scale == 1) {
        out << c->value() << '\n';
      } else {
        out << std::fixed << std::setprecision(9) << static_cast<double>(c->value()) * f.scale
            << std::defaultfloat << '\n';
      }
    }
    for (const auto& [labels, g] : f.gauges)
      out << WithLabels(name, labels) << ' ' << g->value() << '\n';
    for (const auto& [labels, h] : f.histograms) {
      // Exported in seconds, as Prometheus expects.
      uint64_t cumulative = 0;
      for (size_t i = 0; i < Histogram::kBuckets; ++i) {
        cumulative += h->bucket(i);
        std::ostringstream le;
        le << "le=\"" << static_cast<double>(Histogram::BucketBound(i)) / 1e6 << '"';
        out << WithLabels(name + "_bucket", labels, le.str()) << ' ' << cumulative << '\n';
      }
      out << WithLabels(name + "_bucket", labels, "le=\"+Inf\"") << ' ' << h->count() << '\n';
      out << WithLabels(name + "_sum", labels) << ' ' << static_cast<double>(h->sum()) / 1e6
          << '\n';
      out << WithLabels(name + "_count", labels) << ' ' << h->count() << '\n';
    }
  }
  return out.str();
}

}  // namespace dbw
