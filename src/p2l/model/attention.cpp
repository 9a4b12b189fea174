#include "p2l/model/attention.h"

#include <cmath>

namespace p2l::model {

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        ScaleAt scale_at, const torch::Tensor& additive_mask) {
#if P2L_FUSED_ATTENTION
  (void)scale_at;  // the fused kernels scale internally
  const auto mask = additive_mask.defined()
                        ? c10::optional<at::Tensor>(additive_mask.to(q.scalar_type()))
                        : c10::optional<at::Tensor>();
  return at::scaled_dot_product_attention(q, k, v, mask);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = scale_at == ScaleAt::kQuery ? torch::matmul(q * scale, k.transpose(-1, -2))
                                            : torch::matmul(q, k.transpose(-1, -2)) * scale;
  if (additive_mask.defined()) scores = scores + additive_mask;
  return torch::matmul(torch::softmax(scores, -1), v);
#endif
}

const char* attention_path() {
#if P2L_FUSED_ATTENTION
  return "fused (at::scaled_dot_product_attention)";
#else
  return "written out (softmax(q·kᵀ)·v)";
#endif
}

}  // namespace p2l::model
