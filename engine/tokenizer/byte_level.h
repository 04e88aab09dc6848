// GPT-2's reversible byte <-> printable-character alphabet used by ByteLevel.
#pragma once
#include <string>
#include <string_view>

namespace lorax::tok {

std::string bytes_to_byte_level(std::string_view bytes);
// Returns false when some character is outside the alphabet (the caller keeps the raw text).
bool byte_level_to_bytes(std::string_view text, std::string& out);

}  // namespace lorax::tok
