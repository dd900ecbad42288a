#include "error.hpp"
#include "format/bad_reader.hpp"
#include "text/tokenizer.hpp"
