// Scaled dot-product attention for the three networks, and the one compile-time switch between
// its two paths: LibTorch ≥ 2.1's fused at::scaled_dot_product_attention (flash and
// memory-efficient kernels on CUDA, a fused kernel on the CPU), or, on older LibTorch (Debian's
// 1.13), softmax(q·kᵀ)·v written out — the operations the goldens were checked with.
#pragma once

#include <torch/torch.h>
#include <torch/version.h>

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define P2L_FUSED_ATTENTION 1
#else
#define P2L_FUSED_ATTENTION 0
#endif

namespace p2l::model {

// Where the 1/√d scale is applied on the written-out path, as each reference implementation
// does it (the results differ in the last bits): on the scores (diffusers' UNet and VAE) or on
// the query before the product (transformers' CLIP).
enum class ScaleAt { kScores, kQuery };

// softmax(q·kᵀ/√d + mask)·v over the last two dimensions; q [B, H, Lq, d], k and v [B, H, Lk, d],
// `additive_mask` broadcastable to [B, H, Lq, Lk] (or undefined).
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        ScaleAt scale_at, const torch::Tensor& additive_mask = {});

// "fused (at::scaled_dot_product_attention)" or "written out (softmax(q·kᵀ)·v)".
const char* attention_path();

}  // namespace p2l::model
