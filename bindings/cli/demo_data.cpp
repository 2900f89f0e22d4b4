// Corpus and task of `hone demo` (see demo_data.h).
#include "demo_data.h"

#include <nlohmann/json.hpp>

#include "hone/random.h"

namespace hone::demo {

namespace {

const std::vector<std::string> kVerses = {
    "the lamp is lit and the bench is clean.\nthe file is sharp and the saw is keen.\n"
    "we cut the oak and we plane the pine,\nwe fit the joint along the line.\n",
    "the tide comes in and the tide goes out,\nthe gulls go round and round about.\n"
    "the boat is tied and the net is dry,\nthe clouds are low across the sky.\n",
    "one stone, two stones, three stones high,\nfour stones, five stones, wall is dry.\n"
    "six stones, seven stones, eight in a row,\nnine stones, ten stones, off we go.\n",
    "the bread is baked and the soup is hot,\nthe kettle sings upon the pot.\n"
    "we set the cups and we pour the tea,\nand count the ships upon the sea.\n",
};
const std::vector<std::string> kPeople = {"the baker", "my friend", "the old man", "our teacher", "a child",
                                          "the sailor", "my sister", "the farmer"};
const std::vector<std::string> kActs = {"walked to the market", "read a long book", "cooked a meal",
                                        "mended the net", "sang a song", "planted a tree", "painted the door",
                                        "fed the cat", "wrote a letter", "crossed the river"};
const std::vector<std::string> kTimes = {"in the morning", "at night", "after the rain", "on sunday",
                                         "before dinner", "by the sea"};
const std::vector<std::string> kNouns = {"film", "meal", "book", "hotel", "concert", "game",
                                         "trip", "show", "soup", "song", "room", "cake"};
const std::vector<std::string> kGood = {"great", "lovely", "wonderful", "excellent", "superb", "pleasant",
                                        "charming", "brilliant"};
const std::vector<std::string> kBad = {"awful", "terrible", "dreadful", "boring", "horrible", "dull",
                                       "nasty", "bland"};

struct Draw {
  std::uint64_t seed, counter = 0;
  std::uint32_t next() { return philox_block(seed, counter++).x[0]; }
  const std::string& pick(const std::vector<std::string>& v) { return v[next() % v.size()]; }
};

}  // namespace

std::vector<std::string> corpus_lines(std::uint64_t seed, int sentences) {
  std::vector<std::string> texts = kVerses;
  Draw d{seed};
  for (int i = 0; i < sentences; ++i) {
    std::string s;
    switch (d.next() % 4) {
      case 0: s = d.pick(kPeople) + " " + d.pick(kActs) + " " + d.pick(kTimes) + "."; break;
      case 1: s = d.pick(kPeople) + " " + d.pick(kActs) + " and " + d.pick(kActs) + "."; break;
      case 2: s = "the " + d.pick(kNouns) + " was " + d.pick(d.next() % 2 ? kGood : kBad) + "."; break;
      default: s = d.pick(kPeople) + " said the " + d.pick(kNouns) + " was " + d.pick(d.next() % 2 ? kGood : kBad) + "."; break;
    }
    texts.push_back(s);
  }
  std::vector<std::string> lines;
  for (const std::string& t : texts) lines.push_back(nlohmann::json{{"text", t}}.dump());
  return lines;
}

std::vector<TaskExample> task_examples(bool held_out) {
  std::vector<TaskExample> out;
  const std::vector<std::string> forms = {"the %n was %a", "a %a %n", "what a %a %n", "i found the %n %a"};
  for (std::size_t n = 0; n < kNouns.size(); ++n)
    for (int good = 0; good < 2; ++good) {
      const std::vector<std::string>& adjectives = good ? kGood : kBad;
      for (std::size_t a = 0; a < adjectives.size(); ++a) {
        if (((n + a) % 4 == 0) != held_out) continue;  // a quarter of the pairs are held out
        std::string review = forms[(n * 3 + a) % forms.size()];
        review.replace(review.find("%n"), 2, kNouns[n]);
        review.replace(review.find("%a"), 2, adjectives[a]);
        out.push_back({"review: " + review + "\nsentiment:", good ? " positive" : " negative"});
      }
    }
  return out;
}

std::string to_jsonl_line(const TaskExample& e) {
  return nlohmann::json{{"prompt", e.prompt}, {"completion", e.completion}}.dump();
}

}  // namespace hone::demo
