// Atomic checkpoint folders, their rotation, and resuming from one.
#include "train/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "hone/error.h"
#include "hone/peft.h"
#include "hone/safetensors.h"
#include "hone/trainer.h"

namespace hone {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPrefix = "checkpoint-";

// The step of a folder named checkpoint-<digits>, else -1.
std::int64_t checkpoint_step(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.rfind(kPrefix, 0) != 0) return -1;
  const std::string digits = name.substr(std::string(kPrefix).size());
  if (digits.empty() || !std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    return -1;
  return std::stoll(digits);
}

std::vector<std::pair<std::int64_t, fs::path>> checkpoints(const std::string& output_dir) {
  std::vector<std::pair<std::int64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return out;
  for (const fs::directory_entry& e : fs::directory_iterator(output_dir)) {
    const std::int64_t step = checkpoint_step(e.path());
    if (step >= 0 && e.is_directory() && fs::exists(e.path() / "trainer_state.json")) out.emplace_back(step, e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  HONE_CHECK(in.good(), "resume", "cannot read ", p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
  out.close();
  HONE_CHECK(out.good(), "checkpoint", "cannot write ", p.string());
}

}  // namespace

std::string latest_checkpoint(const std::string& output_dir) {
  const auto all = checkpoints(output_dir);
  return all.empty() ? std::string() : all.back().second.string();
}

namespace train {

std::string write_checkpoint(const std::string& output_dir, const Model& model, const Tensor& m,
                             const Tensor& v, const Tensor& master, const SavedState& state,
                             std::int64_t keep_last, const std::function<void(std::string_view)>& hook) {
  auto stage = [&](std::string_view name) {
    if (hook) hook(name);
  };
  fs::create_directories(output_dir);
  const fs::path final_dir = fs::path(output_dir) / cat(kPrefix, state.step);
  const fs::path tmp = fs::path(output_dir) / cat(".", kPrefix, state.step, ".tmp-", ::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const model::Transformer& t = model.transformer();
  if (t.adapter())
    save_adapter(model, tmp.string(), "", t.dtype());  // exact values: the resume is bitwise
  else
    t.save_pretrained(tmp.string(), t.dtype());
  stage("weights");
  std::vector<std::pair<std::string, Tensor>> optimizer = {{"exp_avg", m.host()}, {"exp_avg_sq", v.host()}};
  if (master.defined()) optimizer.emplace_back("master", master.host());
  save_safetensors((tmp / "optimizer.safetensors").string(), optimizer,
                   {{"optimizer", "adamw"}, {"step", std::to_string(state.step)}});
  stage("optimizer");
  write_text(tmp / "trainer_state.json", state_to_json(state));
  stage("state");
  fs::remove_all(final_dir);  // an older run's folder of the same step
  stage("rename");
  fs::rename(tmp, final_dir);
  auto all = checkpoints(output_dir);
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep_last) < all.size(); ++i) fs::remove_all(all[i].second);
  // Temporary folders of crashed writes.
  for (const fs::directory_entry& e : fs::directory_iterator(output_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(std::string(".") + kPrefix, 0) == 0 && name.find(".tmp-") != std::string::npos) fs::remove_all(e.path());
  }
  return final_dir.string();
}

SavedState read_checkpoint(const std::string& dir, Model& model, const Tensor& m, const Tensor& v,
                           const Tensor& master) {
  const fs::path d(dir);
  HONE_CHECK(fs::is_directory(d), "resume", "checkpoint folder ", dir, " does not exist");
  const SavedState st = state_from_json(read_text(d / "trainer_state.json"), (d / "trainer_state.json").string());
  model::Transformer& t = model.transformer();
  if (const model::Adapter* adapter = t.adapter()) {
    // The adapter attached now (same method and options) takes the checkpoint's values.
    const fs::path file = d / "adapter_model.safetensors";
    HONE_CHECK(fs::is_regular_file(file), "resume", dir, " has no adapter_model.safetensors: is it a checkpoint of ",
               "full fine-tuning? (the model has an adapter attached)");
    const SafetensorsFile f = SafetensorsFile::open(file.string());
    HONE_CHECK(f.entries().size() == adapter->named_params().size(), "resume", file.string(), " has ",
               f.entries().size(), " tensors; the attached adapter has ", adapter->named_params().size());
    for (const model::Param& p : adapter->named_params()) {
      HONE_CHECK(f.find(p.name) != nullptr, "resume", file.string(), " has no tensor '", p.name, "'");
      const Tensor value = f.load(p.name, p.value.dtype());
      HONE_CHECK(value.shape() == p.value.shape(), "resume", file.string(), ": tensor '", p.name, "' has shape ",
                 shape_str(value.shape()), "; the attached adapter needs ", shape_str(p.value.shape()));
      p.value.copy_from(value);
    }
  } else {
    HONE_CHECK(fs::exists(d / "model.safetensors") || fs::exists(d / "model.safetensors.index.json"), "resume", dir,
               " has no model weights", fs::exists(d / "adapter_model.safetensors") ? " (it holds an adapter: attach one to resume it)" : "");
    const auto unused = t.load(SafetensorsCheckpoint::open(dir));
    HONE_CHECK(unused.empty(), "resume", dir, "/model.safetensors has tensors this model does not use, e.g. ",
               unused.empty() ? "" : unused.front(), ": is it a checkpoint of another model?");
  }
  const SafetensorsFile opt = SafetensorsFile::open((d / "optimizer.safetensors").string());
  std::vector<std::pair<const char*, Tensor>> wanted = {{"exp_avg", m}, {"exp_avg_sq", v}};
  const bool saved_master = opt.find("master") != nullptr;
  if (master.defined() && saved_master) {
    wanted.emplace_back("master", master);
  } else if (master.defined()) {
    // A checkpoint of a run without master weights (f32 on the CPU): they start from its weights.
    master.copy_from(t.trainable_params().host().to(DType::f32).to(master.device()));
  } else if (saved_master) {
    // A device run's checkpoint resumed in f32/f64: its fp32 master weights are the exact values
    // (the saved weights are their bf16 rounding).
    wanted.emplace_back("master", t.trainable_params());
  }
  for (const auto& [name, dst] : wanted) {
    const Tensor t = opt.load(name, dst.dtype());
    HONE_CHECK(t.shape() == dst.shape(), "resume", (d / "optimizer.safetensors").string(), ": tensor '", name,
               "' has shape ", shape_str(t.shape()), "; this model needs ", shape_str(dst.shape()));
    dst.copy_from(t);
  }
  return st;
}

void prepare_metrics_file(const std::string& path, std::int64_t step) {
  const fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  if (!fs::exists(p)) return;
  std::ifstream in(p);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      const auto j = nlohmann::json::parse(line);
      if (j.value("step", std::int64_t{0}) <= step) kept += line + "\n";
    } catch (const nlohmann::json::exception&) {
      // a torn last line of an interrupted run: dropped
    }
  }
  in.close();
  const fs::path tmp = p.string() + ".tmp";
  write_text(tmp, kept);
  fs::rename(tmp, p);
}

}  // namespace train
}  // namespace hone
