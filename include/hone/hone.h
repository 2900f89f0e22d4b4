// The hone public API in one include.
#pragma once
#include "hone/chat_template.h"
#include "hone/communicator.h"
#include "hone/dataset.h"
#include "hone/device.h"
#include "hone/dtype.h"
#include "hone/error.h"
#include "hone/evaluate.h"
#include "hone/generator.h"
#include "hone/log.h"
#include "hone/model.h"
#include "hone/peft.h"
#include "hone/random.h"
#include "hone/safetensors.h"
#include "hone/tensor.h"
#include "hone/tokenizer.h"
#include "hone/tokenizer_encoder.h"
#include "hone/trainer.h"

namespace hone {
const char* version();  // "0.1.0"
}
