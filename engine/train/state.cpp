// trainer_state.json of a checkpoint, step metrics as JSON lines, and the process's peak memory.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "hone/error.h"
#include "train/internal.h"

namespace hone {

namespace {
constexpr const char* kFormat = "hone-trainer-state-1";
}

std::string StepMetrics::to_json() const {
  nlohmann::json j;
  j["step"] = step;
  j["loss"] = loss;
  j["lr"] = lr;
  j["grad_norm"] = grad_norm;
  j["tokens"] = tokens;
  j["loss_tokens"] = loss_tokens;
  j["seconds"] = seconds;
  j["tokens_per_second"] = tokens_per_second;
  j["peak_rss_bytes"] = peak_rss_bytes;
  if (peak_device_bytes > 0) j["peak_device_bytes"] = peak_device_bytes;
  if (eval_loss) j["eval_loss"] = *eval_loss;
  j["epoch"] = data.epoch;
  j["example"] = data.index;
  return j.dump();
}

namespace train {

std::string state_to_json(const SavedState& s) {
  nlohmann::json j;
  j["format"] = kFormat;
  j["step"] = s.step;
  j["seed"] = s.seed;
  j["data"] = {{"epoch", s.data.epoch}, {"index", s.data.index}};
  nlohmann::json pending = nlohmann::json::array();
  for (const data::TokenizedExample& ex : s.pending)
    pending.push_back({{"ids", ex.ids}, {"labels", ex.labels}, {"line", ex.line}, {"truncated", ex.truncated}});
  j["pending"] = pending;
  return j.dump(1);
}

SavedState state_from_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("resume", cat(source, ": not valid JSON (", e.what(), ")"));
  }
  try {
    HONE_CHECK(j.value("format", std::string()) == kFormat, "resume", source, ": field 'format' is ",
               j.contains("format") ? j["format"].dump() : "missing", "; expected \"", kFormat, "\"");
    SavedState s;
    s.step = j.at("step").get<std::int64_t>();
    s.seed = j.at("seed").get<std::uint64_t>();
    s.data.epoch = j.at("data").at("epoch").get<std::int64_t>();
    s.data.index = j.at("data").at("index").get<std::int64_t>();
    for (const auto& p : j.at("pending")) {
      data::TokenizedExample ex;
      ex.ids = p.at("ids").get<std::vector<std::int32_t>>();
      ex.labels = p.at("labels").get<std::vector<std::int64_t>>();
      ex.line = p.at("line").get<std::int64_t>();
      ex.truncated = p.at("truncated").get<bool>();
      HONE_CHECK(ex.ids.size() == ex.labels.size(), "resume", source, ": a pending example has ",
                 ex.ids.size(), " ids and ", ex.labels.size(), " labels");
      s.pending.push_back(std::move(ex));
    }
    HONE_CHECK(s.step >= 0, "resume", source, ": field 'step' is ", s.step);
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("resume", cat(source, ": ", e.what()));
  }
}

std::int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream in(line.substr(6));
      std::int64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
  return 0;
}

}  // namespace train
}  // namespace hone
