// Tokenizer benchmark: load time of each real tokenizer in tests/data/tokenizers, then encode
// throughput (MB/s, tokens/s) on a few MB of mixed text built from the golden texts repeated and
// shuffled: one thread with a cold word cache, one thread warm, and a batch over all cores.
// When the Python interpreter has PyPI's tokenizers (the Rust reference), the same documents
// and tokenizer.json are handed to bench_tokenizer_rust.py, which times its single-threaded
// encode in the same run; the JSON then has Rust's MB/s and hone's ratio to it (else the
// reason it is absent). Writes JSON.
//   bench_tokenizer [--quick] [--mb N] [--data DIR] [--json FILE] [--python EXE | --no-rust]
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "hone/tokenizer.h"
#include "support/files.h"

namespace {

using hone::test::read_file;
using hone::test::read_xz;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The Rust reference through its Python package: runs the script on files in `dir` and
// returns its JSON object, or {"error": why} when it cannot run (77: package not installed).
nlohmann::json run_rust(const std::string& python, const std::string& tokenizer_json_path,
                        const std::string& docs_path) {
  const std::string cmd = "TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 '" + python + "' '" +
                          HONE_BENCH_DIR "/bench_tokenizer_rust.py' '" + tokenizer_json_path + "' '" +
                          docs_path + "' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {{"error", "cannot start " + python}};
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 127) return {{"error", python + " not found"}};
  const std::size_t last = out.find_last_of('{');
  nlohmann::json j = nlohmann::json::parse(last == std::string::npos ? "" : out.substr(last), nullptr, false);
  if (code != 0 || j.is_discarded() || !j.is_object()) {
    if (j.is_object() && j.contains("error")) return j;
    return {{"error", "the script failed (exit " + std::to_string(code) + "): " + out.substr(0, 300)}};
  }
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  double mb = 4.0;
  std::string data = HONE_TOKENIZER_DATA_DIR, json_path, python = "python3";
  bool rust = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--mb") && i + 1 < argc) mb = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else if (!std::strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
    else if (!std::strcmp(argv[i], "--no-rust")) rust = false;
    else {
      std::fprintf(stderr, "usage: bench_tokenizer [--quick] [--mb N] [--data DIR] [--json FILE] "
                           "[--python EXE | --no-rust]\n");
      return 2;
    }
  }
  if (quick) mb = 0.25;
  const std::vector<std::string> names = {"llama3", "qwen3", "sp-bpe-32k"};
  try {
    // Mixed text: all golden lines, shuffled and repeated, cut into ~4 KB documents.
    std::vector<std::string> lines;
    for (const auto& n : names) {
      std::istringstream in(read_file(data + "/" + n + "/golden.jsonl"));
      std::string l;
      while (std::getline(in, l))
        if (!l.empty()) lines.push_back(nlohmann::json::parse(l)["text"].get<std::string>());
    }
    std::mt19937_64 rng(42);
    std::vector<std::string> docs;
    std::size_t total = 0;
    std::string doc;
    const auto target = static_cast<std::size_t>(mb * 1e6);
    while (total < target) {
      std::shuffle(lines.begin(), lines.end(), rng);
      for (const auto& l : lines) {
        doc += l;
        doc += '\n';
        if (doc.size() >= 4096) {
          total += doc.size();
          docs.push_back(std::move(doc));
          doc.clear();
          if (total >= target) break;
        }
      }
    }
    const double mbytes = static_cast<double>(total) / 1e6;
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());

    // The Rust reference reads the same documents (one JSON string a line) and tokenizer.json.
    std::filesystem::path tmp;
    nlohmann::json rust_status = {{"available", rust}};
    if (rust) {
      tmp = std::filesystem::temp_directory_path() / ("hone_bench_tokenizer_" + std::to_string(getpid()));
      std::filesystem::create_directories(tmp);
      std::ofstream f(tmp / "docs.jsonl", std::ios::binary);
      for (const auto& d : docs) f << nlohmann::json(d).dump() << '\n';
    } else {
      rust_status["reason"] = "--no-rust";
    }

    std::string rows;
    for (std::size_t k = 0; k < names.size(); ++k) {
      const std::string& n = names[k];
      const std::string tj = read_xz(data + "/" + n + "/tokenizer.json.xz");
      const std::string cfg = read_file(data + "/" + n + "/tokenizer_config.json");
      auto t0 = std::chrono::steady_clock::now();
      const hone::Tokenizer tok = hone::Tokenizer::from_json(tj, cfg, "", n + "/tokenizer.json");
      const double load_s = seconds_since(t0);

      std::size_t tokens = 0;
      t0 = std::chrono::steady_clock::now();
      for (const auto& d : docs) tokens += tok.encode(d, false).size();
      const double cold_s = seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
      for (const auto& d : docs) tok.encode(d, false);
      const double warm_s = seconds_since(t0);
      t0 = std::chrono::steady_clock::now();
      const auto batch = tok.encode_batch(docs, false, static_cast<int>(threads));
      const double batch_s = seconds_since(t0);
      std::size_t batch_tokens = 0;
      for (const auto& b : batch) batch_tokens += b.size();
      if (batch_tokens != tokens) throw std::runtime_error(n + ": batch encode disagrees with single encode");

      std::string rust_row;
      if (rust_status["available"].get<bool>()) {
        const std::string tj_path = (tmp / "tokenizer.json").string();
        std::ofstream(tj_path, std::ios::binary) << tj;
        const nlohmann::json r = run_rust(python, tj_path, (tmp / "docs.jsonl").string());
        if (r.contains("error")) {
          // Not installed (or no interpreter): absent for every tokenizer; other failures are
          // reported for this one.
          const std::string why = r["error"].get<std::string>();
          if (why.find("not installed") != std::string::npos || why.find("not found") != std::string::npos) {
            rust_status = {{"available", false}, {"reason", why}};
          } else {
            rust_row = ", \"rust_error\": " + nlohmann::json(why).dump();
          }
        } else {
          rust_status["version"] = r["version"];
          rust_status["threads"] = 1;
          const double rc = r["cold_s"].get<double>(), rw = r["warm_s"].get<double>();
          const auto rt = r["tokens"].get<std::size_t>();
          char buf[512];
          std::snprintf(buf, sizeof buf,
                        ", \"rust_tokens\": %zu, \"tokens_agree\": %s, \"rust_single_cold_mb_per_s\": %.2f, "
                        "\"rust_single_warm_mb_per_s\": %.2f, \"ratio_cold\": %.2f, \"ratio_warm\": %.2f",
                        rt, rt == tokens ? "true" : "false", mbytes / rc, mbytes / rw, rc / cold_s, rw / warm_s);
          rust_row = buf;
        }
      }

      char row[768];
      std::snprintf(row, sizeof row,
                    "  {\"tokenizer\": \"%s\", \"load_s\": %.3f, \"tokens\": %zu, "
                    "\"single_cold_mb_per_s\": %.2f, \"single_cold_tokens_per_s\": %.0f, "
                    "\"single_warm_mb_per_s\": %.2f, \"single_warm_tokens_per_s\": %.0f, "
                    "\"batch_mb_per_s\": %.2f, \"batch_tokens_per_s\": %.0f, \"batch_speedup\": %.2f",
                    n.c_str(), load_s, tokens, mbytes / cold_s, tokens / cold_s, mbytes / warm_s,
                    tokens / warm_s, mbytes / batch_s, tokens / batch_s, warm_s / batch_s);
      rows += row + rust_row + (k + 1 < names.size() ? "},\n" : "}\n");
    }
    if (!tmp.empty()) std::filesystem::remove_all(tmp);
    // ratio_* = hone's MB/s over Rust's on the same documents (above 1: hone is faster).
    const std::string json = "{\"benchmark\": \"tokenizer\", \"text_mb\": " + std::to_string(mbytes) +
                             ", \"documents\": " + std::to_string(docs.size()) +
                             ", \"batch_threads\": " + std::to_string(threads) +
                             ", \"rust_tokenizers\": " + rust_status.dump() + ", \"results\": [\n" + rows + "]}\n";
    if (!json_path.empty()) std::ofstream(json_path) << json;
    std::fputs(json.c_str(), stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
