// Arithmetic cost of the networks, counted analytically from their configurations and input
// size: the multiply-adds (MACs) of every convolution, linear layer and attention product
// (QKᵀ and softmax(·)V) of one forward pass. Normalisations, activations, softmax, residual
// additions, biases, up-sampling and embedding look-ups are left out: they cost a few operations
// per activation, against channels × kernel² multiply-adds per output of a convolution.
//
// Conventions: one MAC is 2 FLOPs. A backward pass with respect to the input only (what the
// solvers run: the weights are frozen) repeats each weight product once (∂/∂input) and each
// attention product twice (both operands are activations). Training's backward, which also
// forms the weight gradients, is the usual 2× the forward.
#pragma once

#include <cstdint>
#include <string>

#include "p2l/model/clip_text.h"
#include "p2l/model/unet.h"
#include "p2l/model/vae.h"

namespace p2l::model {

struct MacCount {
  int64_t weights = 0;    // convolutions and linear layers: activation × weight
  int64_t attention = 0;  // QKᵀ and softmax(QKᵀ)V: activation × activation

  int64_t total() const { return weights + attention; }
  double forward_flops() const { return 2.0 * static_cast<double>(total()); }
  // The gradient with respect to the input (frozen weights).
  double input_backward_flops() const { return 2.0 * static_cast<double>(weights + 2 * attention); }
  // Input and weight gradients (training).
  double training_backward_flops() const { return 2.0 * forward_flops(); }

  MacCount& operator+=(const MacCount& other) {
    weights += other.weights;
    attention += other.attention;
    return *this;
  }
  bool operator==(const MacCount& other) const {
    return weights == other.weights && attention == other.attention;
  }
};

// One layer. A convolution's cost is per output position: in·out·k² per pixel of the output.
int64_t conv2d_macs(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t out_height,
                    int64_t out_width);
int64_t linear_macs(int64_t in_features, int64_t out_features, int64_t rows);
// Multi-head attention of `queries` tokens of query_dim over `keys` tokens of key_dim, with
// inner_dim = heads · head size: the q/k/v/out projections (weights) and QKᵀ, AV (attention).
// The head count does not change the count.
MacCount attention_macs(int64_t query_dim, int64_t key_dim, int64_t inner_dim, int64_t queries,
                        int64_t keys);

// ε-prediction of one latent of latent_height × latent_width under `text_tokens` text states.
MacCount unet_macs(const UNetConfig& config, int64_t latent_height, int64_t latent_width,
                   int64_t text_tokens = 77);
// E: the encoder and quant_conv, for one image of image_height × image_width.
MacCount vae_encoder_macs(const VaeConfig& config, int64_t image_height, int64_t image_width);
// D: post_quant_conv and the decoder, for one latent of latent_height × latent_width.
MacCount vae_decoder_macs(const VaeConfig& config, int64_t latent_height, int64_t latent_width);
// The text encoder on one sequence of `tokens` (SD pads every prompt to 77).
MacCount clip_text_macs(const ClipTextConfig& config, int64_t tokens = 77);

// Counts the MACs of the tensor operations that actually run while it is alive, from their
// arguments' shapes as LibTorch dispatches them (convolutions; mm/addmm as weights, bmm as
// attention products): an independent check of the analytic counts above. One at a time.
class MacTracer {
 public:
  MacTracer();
  ~MacTracer();
  MacTracer(const MacTracer&) = delete;
  MacTracer& operator=(const MacTracer&) = delete;
  MacCount count() const;
};

// "1.23 G"-style rendering of a FLOP or MAC count.
std::string format_count(double value);

}  // namespace p2l::model
