// A Kafka receiver for tests/integration/test_exporters.py: librdkafka's mock cluster (no Kafka
// broker is packaged for Debian) with a consumer that prints every message it reads.
//
//   kafka_mock_receiver TOPIC PARTITIONS
//
// First line on stdout: "bootstrap <servers>". Then one JSON line per message read:
// {"partition":P,"offset":O,"key":"...","seq":"...","value":"..."}. Commands on stdin, one per
// line: "down" takes every broker down (connections are closed and refused, as when a broker
// restarts), "up" brings them back; each is answered "ok down" / "ok up".
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

namespace {

constexpr int kBrokers = 3;

std::string Quote(const char* data, size_t size) {
  std::string out = "\"";
  for (size_t i = 0; i < size; ++i) {
    auto c = static_cast<unsigned char>(data[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

rd_kafka_t* NewClient(rd_kafka_type_t type, const char* const* props) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const char* const* p = props; p[0] != nullptr; p += 2) {
    if (rd_kafka_conf_set(conf, p[0], p[1], err, sizeof err) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "%s: %s\n", p[0], err);
      std::exit(2);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) {
    std::fprintf(stderr, "rd_kafka_new: %s\n", err);
    std::exit(2);
  }
  return rk;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s TOPIC PARTITIONS\n", argv[0]);
    return 2;
  }
  const char* topic = argv[1];
  const int partitions = std::atoi(argv[2]);
  setvbuf(stdout, nullptr, _IOLBF, 0);

  const char* host_props[] = {"log_level", "3", nullptr};
  rd_kafka_t* host = NewClient(RD_KAFKA_PRODUCER, host_props);
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(host, kBrokers);
  if (cluster == nullptr) {
    std::fprintf(stderr, "cannot create the mock cluster\n");
    return 2;
  }
  if (rd_kafka_mock_topic_create(cluster, topic, partitions, 1) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::fprintf(stderr, "cannot create topic %s\n", topic);
    return 2;
  }
  const std::string bootstrap = rd_kafka_mock_cluster_bootstraps(cluster);
  std::printf("bootstrap %s\n", bootstrap.c_str());

  const char* consumer_props[] = {"bootstrap.servers",
                                  bootstrap.c_str(),
                                  "group.id",
                                  "test-receiver",
                                  "enable.auto.commit",
                                  "false",
                                  "log_level",
                                  "3",
                                  nullptr};
  rd_kafka_t* consumer = NewClient(RD_KAFKA_CONSUMER, consumer_props);
  rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(assignment, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(consumer, assignment);
  rd_kafka_topic_partition_list_destroy(assignment);

  std::string command;
  bool input_open = true;
  while (input_open) {
    pollfd in{0, POLLIN, 0};
    if (::poll(&in, 1, 0) > 0) {
      char buf[256];
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n <= 0) input_open = false;
      if (n > 0) command.append(buf, static_cast<size_t>(n));
      size_t nl;
      while ((nl = command.find('\n')) != std::string::npos) {
        std::string line = command.substr(0, nl);
        command.erase(0, nl + 1);
        for (int b = 1; b <= kBrokers; ++b) {
          if (line == "down") rd_kafka_mock_broker_set_down(cluster, b);
          if (line == "up") rd_kafka_mock_broker_set_up(cluster, b);
        }
        std::printf("ok %s\n", line.c_str());
      }
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer, 100);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::string seq;
      rd_kafka_headers_t* headers = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(headers, "dbwarden.seq", &value, &size) ==
              RD_KAFKA_RESP_ERR_NO_ERROR)
        seq.assign(static_cast<const char*>(value), size);
      std::printf("{\"partition\":%d,\"offset\":%lld,\"key\":%s,\"seq\":%s,\"value\":%s}\n",
                  m->partition, static_cast<long long>(m->offset),
                  Quote(static_cast<const char*>(m->key), m->key_len).c_str(),
                  Quote(seq.data(), seq.size()).c_str(),
                  Quote(static_cast<const char*>(m->payload), m->len).c_str());
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(host);
  return 0;
}
