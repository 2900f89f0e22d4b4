// The encoder moved to the public header hone/tokenizer_encoder.h.
#pragma once
#include "hone/tokenizer_encoder.h"
