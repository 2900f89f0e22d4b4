// `hone init` / `hone info`.
#include "cmd_model.h"

#include <cstdio>
#include <memory>

#include "hone/tokenizer.h"
#include "model/transformer.h"

namespace hone::cli {

namespace {

struct InitOptions {
  std::string family = "llama";
  std::int64_t vocab = 32000, hidden = 256, intermediate = 0, layers = 4, heads = 8, kv_heads = 0;
  std::int64_t max_positions = 2048;
  double rope_theta = 10000.0;
  bool tied = false;
  std::string dtype = "f32";
  std::uint64_t seed = 0;
  std::string out;
  std::vector<std::int64_t> probe_ids;  // also write the logits for these ids (probe.safetensors)
  std::string tokenizer;                // "" or "byte-level"
};

model::TransformerConfig make_config(const InitOptions& o) {
  std::string json = "{\"model_type\": \"" + o.family + "\", \"vocab_size\": " + std::to_string(o.vocab);
  const std::int64_t inter = o.intermediate > 0 ? o.intermediate : (o.family == "gpt2" ? 4 * o.hidden : (8 * o.hidden / 3 + 63) / 64 * 64);
  if (o.family == "gpt2") {
    json += ", \"n_embd\": " + std::to_string(o.hidden) + ", \"n_layer\": " + std::to_string(o.layers) +
            ", \"n_head\": " + std::to_string(o.heads) + ", \"n_inner\": " + std::to_string(inter) +
            ", \"n_positions\": " + std::to_string(o.max_positions);
  } else {
    json += ", \"hidden_size\": " + std::to_string(o.hidden) + ", \"intermediate_size\": " + std::to_string(inter) +
            ", \"num_hidden_layers\": " + std::to_string(o.layers) + ", \"num_attention_heads\": " +
            std::to_string(o.heads) + ", \"num_key_value_heads\": " + std::to_string(o.kv_heads > 0 ? o.kv_heads : o.heads) +
            ", \"max_position_embeddings\": " + std::to_string(o.max_positions) + ", \"rope_theta\": " +
            std::to_string(o.rope_theta) + ", \"tie_word_embeddings\": " + (o.tied ? "true" : "false");
  }
  json += ", \"torch_dtype\": \"" + std::string(o.dtype == "bf16" ? "bfloat16" : "float32") + "\"}";
  return model::TransformerConfig::from_json_text(json, "hone init options");
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", b, units[u]);
  return buf;
}

int run_info(const std::string& dir) {
  const model::TransformerConfig c = model::TransformerConfig::from_file(dir + "/config.json");
  const model::Transformer m(c, DType::f32);
  const double P = static_cast<double>(m.params().numel());
  // Trainable parameters of LoRA (rank 16 on every linear layer of every block).
  const double r = 16, D = static_cast<double>(c.hidden_size), F = static_cast<double>(c.intermediate_size);
  const double q = static_cast<double>(c.q_dim()), kv = static_cast<double>(c.kv_dim());
  const double mlp = c.family == model::Family::gpt2 ? r * (D + F) * 2 : r * (D + F) * 3;
  const double lora = static_cast<double>(c.num_layers) * (r * (D + q) * 2 + r * (D + kv) * 2 + mlp);
  const double prompt = 20 * D;
  const double kv_per_token = 2.0 * static_cast<double>(c.num_layers) * kv * 2;  // bf16 K and V
  std::printf("model           %s (%s)\n", dir.c_str(), model::family_name(c.family));
  std::printf("layers          %lld, hidden %lld, intermediate %lld\n", static_cast<long long>(c.num_layers),
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.intermediate_size));
  std::printf("attention       %lld heads, %lld kv heads, head dim %lld\n", static_cast<long long>(c.num_heads),
              static_cast<long long>(c.num_kv_heads), static_cast<long long>(c.head_dim));
  std::printf("vocabulary      %lld (%s embeddings)\n", static_cast<long long>(c.vocab_size),
              c.tie_word_embeddings ? "tied" : "separate");
  std::printf("parameters      %.0f\n\n", P);
  // On CUDA a trained parameter costs 18 bytes: bf16 weight, f32 gradient, fp32 master weight and
  // two f32 AdamW moments; on the CPU 16 (f32 weight, gradient and moments).
  std::printf("memory for weights and optimizer state (activations not included), on --backend cuda:\n");
  std::printf("  prompting (bf16 weights)                 %10s  + KV cache %s per token\n",
              human_bytes(2 * P).c_str(), human_bytes(kv_per_token).c_str());
  std::printf("  prompt tuning (20 virtual tokens)        %10s  (%.0f trainable)\n",
              human_bytes(2 * P + 18 * prompt).c_str(), prompt);
  std::printf("  LoRA r=16, all linear layers             %10s  (%.0f trainable)\n",
              human_bytes(2 * P + 18 * lora).c_str(), lora);
  std::printf("  full fine-tuning (AdamW, fp32 master)    %10s  (18 bytes per parameter)\n",
              human_bytes(18 * P).c_str());
  std::printf("  full fine-tuning on the CPU (f32)        %10s  (16 bytes per parameter)\n",
              human_bytes(16 * P).c_str());
  return 0;
}

}  // namespace

void add_model_commands(CLI::App& app) {
  auto o = std::make_shared<InitOptions>();
  CLI::App* init = app.add_subcommand("init", "save a random-initialised model as a Hugging Face folder");
  init->add_option("--family", o->family, "llama, mistral, qwen2, qwen3 or gpt2")
      ->check(CLI::IsMember({"llama", "mistral", "qwen2", "qwen3", "gpt2"}));
  init->add_option("--vocab", o->vocab, "vocabulary size")->check(CLI::PositiveNumber);
  init->add_option("--hidden", o->hidden, "hidden size")->check(CLI::PositiveNumber);
  init->add_option("--intermediate", o->intermediate, "MLP width (default ≈ 8/3·hidden, 4·hidden for gpt2)");
  init->add_option("--layers", o->layers, "blocks")->check(CLI::PositiveNumber);
  init->add_option("--heads", o->heads, "attention heads")->check(CLI::PositiveNumber);
  init->add_option("--kv-heads", o->kv_heads, "key/value heads (default: heads)");
  init->add_option("--max-positions", o->max_positions, "maximum sequence length")->check(CLI::PositiveNumber);
  init->add_flag("--tied", o->tied, "tie the output projection to the embeddings");
  init->add_option("--dtype", o->dtype, "f32 or bf16 weights on disk")->check(CLI::IsMember({"f32", "bf16"}));
  init->add_option("--seed", o->seed, "random seed");
  init->add_option("--out", o->out, "folder to write")->required();
  init->add_option("--probe", o->probe_ids, "token ids whose logits are saved to probe.safetensors")
      ->delimiter(',');
  init->add_option("--tokenizer", o->tokenizer,
                   "also write a tokenizer: byte-level (256 bytes + 4 special tokens, ChatML template)")
      ->check(CLI::IsMember({"byte-level"}));
  init->callback([o] {
    HONE_CHECK(o->tokenizer.empty() || o->vocab >= kByteLevelTokenizerVocab, "init", "--vocab ", o->vocab,
               " is smaller than the byte-level tokenizer's ", kByteLevelTokenizerVocab, " ids");
    model::Transformer m(make_config(*o), DType::f32);
    m.init_random(o->seed);
    m.save_pretrained(o->out, o->dtype == "bf16" ? DType::bf16 : DType::f32);
    if (o->tokenizer == "byte-level") write_byte_level_tokenizer(o->out);
    if (!o->probe_ids.empty()) {
      const auto T = static_cast<std::int64_t>(o->probe_ids.size());
      const Tensor ids = Tensor::from_vector<std::int64_t>({1, T}, o->probe_ids);
      // The model as saved (bf16 rounding included), read back from disk.
      model::Transformer saved = model::Transformer::from_pretrained(o->out, DType::f32);
      save_safetensors(o->out + "/probe.safetensors", {{"input_ids", ids}, {"logits", saved.forward({ids, {}, {}})}});
    }
    std::printf("wrote %s: %s with %lld parameters\n", o->out.c_str(), model::family_name(m.config().family),
                static_cast<long long>(m.params().numel()));
  });

  auto dir = std::make_shared<std::string>();
  CLI::App* info = app.add_subcommand("info", "describe a model folder, or this build when none is given");
  info->add_option("model", *dir, "Hugging Face model folder");
  info->callback([dir, info] {
    if (!dir->empty()) run_info(*dir);
    (void)info;
  });
}

}  // namespace hone::cli
