// The embedded training text of `hone demo`: short, regular verses, so a small model learns
// visible structure within a few hundred steps.
#include "demo_model.h"

namespace hone::demo {

const std::string& demo_text() {
  static const std::string text =
      "the lamp is lit and the bench is clean.\n"
      "the file is sharp and the saw is keen.\n"
      "we cut the oak and we plane the pine,\n"
      "we fit the joint along the line.\n"
      "the glue is warm and the clamp is tight,\n"
      "we leave the frame to set by night.\n"
      "\n"
      "the tide comes in and the tide goes out,\n"
      "the gulls go round and round about.\n"
      "the boat is tied and the net is dry,\n"
      "the clouds are low across the sky.\n"
      "the rope is wet and the sail is torn,\n"
      "we mend it all before the morn.\n"
      "\n"
      "one stone, two stones, three stones high,\n"
      "four stones, five stones, wall is dry.\n"
      "six stones, seven stones, eight in a row,\n"
      "nine stones, ten stones, off we go.\n"
      "\n"
      "the bread is baked and the soup is hot,\n"
      "the kettle sings upon the pot.\n"
      "we set the cups and we pour the tea,\n"
      "and count the ships upon the sea.\n"
      "the fire is low and the night is long,\n"
      "we close the book and we end the song.\n";
  return text;
}

}  // namespace hone::demo
