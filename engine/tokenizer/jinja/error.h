// The one exception type chat-template code throws: bad template syntax,
// unsupported constructs, runtime type errors and raise_exception() calls.
#pragma once
#include <stdexcept>

namespace lorax {

struct TemplateError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace lorax
