// Inception-v3 as pytorch-fid uses it for FID: the graph ported from TensorFlow's 2015-12-05
// Inception (the FID reference), which differs from torchvision's Inception3 only in pooling:
// the A, C and first E blocks average without counting the padding, and the last E block
// (Mixed_7c) max-pools its pool branch. Features are the 2048-d global average of Mixed_7c
// ("pool3").
//
// Weights come from one safetensors file under torchvision's names (docs/metrics.md shows how to
// make it from pytorch-fid's weights): for every convolution unit U (Conv2d_1a_3x3, …,
// Mixed_5b.branch1x1, …, Mixed_7c.branch_pool)
//   U.conv.weight, U.bn.weight, U.bn.bias, U.bn.running_mean, U.bn.running_var
// Other tensors (fc.*, num_batches_tracked) are ignored.
#pragma once

#include <torch/torch.h>

#include <array>
#include <string>

namespace p2l::metrics {

// torchvision's BasicConv2d: convolution without bias, batch norm (eps 0.001), ReLU.
class InceptionConvImpl : public torch::nn::Module {
 public:
  InceptionConvImpl(int64_t in, int64_t out, std::array<int64_t, 2> kernel, int64_t stride = 1,
                    std::array<int64_t, 2> padding = {0, 0});
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(InceptionConv);

// FIDInceptionA (Mixed_5b/c/d): 1×1, 5×5, double 3×3 and average-pool branches.
class InceptionBlockAImpl : public torch::nn::Module {
 public:
  InceptionBlockAImpl(int64_t in, int64_t pool_features);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  InceptionConv branch1x1_{nullptr}, branch5x5_1_{nullptr}, branch5x5_2_{nullptr},
      branch3x3dbl_1_{nullptr}, branch3x3dbl_2_{nullptr}, branch3x3dbl_3_{nullptr},
      branch_pool_{nullptr};
};
TORCH_MODULE(InceptionBlockA);

// InceptionB (Mixed_6a): grid reduction 35 → 17.
class InceptionBlockBImpl : public torch::nn::Module {
 public:
  explicit InceptionBlockBImpl(int64_t in);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  InceptionConv branch3x3_{nullptr}, branch3x3dbl_1_{nullptr}, branch3x3dbl_2_{nullptr},
      branch3x3dbl_3_{nullptr};
};
TORCH_MODULE(InceptionBlockB);

// FIDInceptionC (Mixed_6b–e): factorised 7×7 branches.
class InceptionBlockCImpl : public torch::nn::Module {
 public:
  InceptionBlockCImpl(int64_t in, int64_t channels_7x7);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  InceptionConv branch1x1_{nullptr}, branch7x7_1_{nullptr}, branch7x7_2_{nullptr},
      branch7x7_3_{nullptr}, branch7x7dbl_1_{nullptr}, branch7x7dbl_2_{nullptr},
      branch7x7dbl_3_{nullptr}, branch7x7dbl_4_{nullptr}, branch7x7dbl_5_{nullptr},
      branch_pool_{nullptr};
};
TORCH_MODULE(InceptionBlockC);

// InceptionD (Mixed_7a): grid reduction 17 → 8.
class InceptionBlockDImpl : public torch::nn::Module {
 public:
  explicit InceptionBlockDImpl(int64_t in);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  InceptionConv branch3x3_1_{nullptr}, branch3x3_2_{nullptr}, branch7x7x3_1_{nullptr},
      branch7x7x3_2_{nullptr}, branch7x7x3_3_{nullptr}, branch7x7x3_4_{nullptr};
};
TORCH_MODULE(InceptionBlockD);

// FIDInceptionE_1 (Mixed_7b, average pool) and FIDInceptionE_2 (Mixed_7c, max pool).
enum class InceptionPool { Average, Max };
class InceptionBlockEImpl : public torch::nn::Module {
 public:
  InceptionBlockEImpl(int64_t in, InceptionPool pool);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  InceptionPool pool_;
  InceptionConv branch1x1_{nullptr}, branch3x3_1_{nullptr}, branch3x3_2a_{nullptr},
      branch3x3_2b_{nullptr}, branch3x3dbl_1_{nullptr}, branch3x3dbl_2_{nullptr},
      branch3x3dbl_3a_{nullptr}, branch3x3dbl_3b_{nullptr}, branch_pool_{nullptr};
};
TORCH_MODULE(InceptionBlockE);

class FidInceptionImpl : public torch::nn::Module {
 public:
  // pytorch-fid resizes every input to 299×299 (bilinear, align_corners = false).
  static constexpr int64_t kInputSize = 299;
  static constexpr int64_t kFeatures = 2048;

  FidInceptionImpl();

  // Pool3 features [N, 2048] of images [N, 3, H, W] (or [3, H, W]) in [-1, 1], any size.
  torch::Tensor features(const torch::Tensor& images);

 private:
  InceptionConv conv1a_{nullptr}, conv2a_{nullptr}, conv2b_{nullptr}, conv3b_{nullptr},
      conv4a_{nullptr};
  InceptionBlockA mixed5b_{nullptr}, mixed5c_{nullptr}, mixed5d_{nullptr};
  InceptionBlockB mixed6a_{nullptr};
  InceptionBlockC mixed6b_{nullptr}, mixed6c_{nullptr}, mixed6d_{nullptr}, mixed6e_{nullptr};
  InceptionBlockD mixed7a_{nullptr};
  InceptionBlockE mixed7b_{nullptr}, mixed7c_{nullptr};
};
TORCH_MODULE(FidInception);

// Builds the network and loads `path` (parameters and batch-norm statistics), in evaluation
// mode with gradients off. Throws p2l::Error naming the file and the first missing or
// mis-shaped tensor.
FidInception load_fid_inception(const std::string& path, torch::Device device = torch::kCPU);

}  // namespace p2l::metrics
