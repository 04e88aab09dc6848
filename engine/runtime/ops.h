// Kinds of elementwise ops shared by the model description and the backends.
#pragma once

namespace lorax {

enum class NormKind { LayerNorm, RmsNorm };
enum class Activation { Gelu, GeluTanh, Silu, Relu };

}  // namespace lorax
