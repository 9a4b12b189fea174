#include "p2l/metrics/inception.h"

#include "p2l/error.h"
#include "p2l/io/safetensors.h"
#include "p2l/metrics/frozen_weights.h"

namespace p2l::metrics {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

// The TensorFlow graph's batch-norm epsilon, kept by torchvision and pytorch-fid.
constexpr double kBatchNormEps = 1e-3;

// The pool branch of the A, C and first E blocks: pytorch-fid's FID blocks exclude the padding
// from the average (TensorFlow's behaviour), torchvision's blocks include it.
torch::Tensor average_pool_3x3(const torch::Tensor& x) {
  return F::avg_pool2d(x, F::AvgPool2dFuncOptions(3).stride(1).padding(1).count_include_pad(false));
}

torch::Tensor max_pool_3x3_stride2(const torch::Tensor& x) {
  return F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2));
}

}  // namespace

InceptionConvImpl::InceptionConvImpl(int64_t in, int64_t out, std::array<int64_t, 2> kernel,
                                     int64_t stride, std::array<int64_t, 2> padding) {
  conv_ = register_module("conv", nn::Conv2d(nn::Conv2dOptions(in, out, {kernel[0], kernel[1]})
                                                 .stride(stride)
                                                 .padding({padding[0], padding[1]})
                                                 .bias(false)));
  bn_ = register_module("bn", nn::BatchNorm2d(nn::BatchNorm2dOptions(out).eps(kBatchNormEps)));
}

torch::Tensor InceptionConvImpl::forward(const torch::Tensor& x) {
  return torch::relu(bn_(conv_(x)));
}

namespace {
// Square kernels and paddings, the common case.
InceptionConv unit(int64_t in, int64_t out, int64_t k, int64_t stride = 1, int64_t pad = 0) {
  return InceptionConv(in, out, std::array<int64_t, 2>{k, k}, stride,
                       std::array<int64_t, 2>{pad, pad});
}
// 1×7 / 7×1 (and 1×3 / 3×1) factorised kernels with "same" padding.
InceptionConv row(int64_t in, int64_t out, int64_t k) {
  return InceptionConv(in, out, std::array<int64_t, 2>{1, k}, 1, std::array<int64_t, 2>{0, k / 2});
}
InceptionConv column(int64_t in, int64_t out, int64_t k) {
  return InceptionConv(in, out, std::array<int64_t, 2>{k, 1}, 1, std::array<int64_t, 2>{k / 2, 0});
}
}  // namespace

InceptionBlockAImpl::InceptionBlockAImpl(int64_t in, int64_t pool_features) {
  branch1x1_ = register_module("branch1x1", unit(in, 64, 1));
  branch5x5_1_ = register_module("branch5x5_1", unit(in, 48, 1));
  branch5x5_2_ = register_module("branch5x5_2", unit(48, 64, 5, 1, 2));
  branch3x3dbl_1_ = register_module("branch3x3dbl_1", unit(in, 64, 1));
  branch3x3dbl_2_ = register_module("branch3x3dbl_2", unit(64, 96, 3, 1, 1));
  branch3x3dbl_3_ = register_module("branch3x3dbl_3", unit(96, 96, 3, 1, 1));
  branch_pool_ = register_module("branch_pool", unit(in, pool_features, 1));
}

torch::Tensor InceptionBlockAImpl::forward(const torch::Tensor& x) {
  return torch::cat(
      {branch1x1_(x), branch5x5_2_(branch5x5_1_(x)),
       branch3x3dbl_3_(branch3x3dbl_2_(branch3x3dbl_1_(x))), branch_pool_(average_pool_3x3(x))},
      1);
}

InceptionBlockBImpl::InceptionBlockBImpl(int64_t in) {
  branch3x3_ = register_module("branch3x3", unit(in, 384, 3, 2));
  branch3x3dbl_1_ = register_module("branch3x3dbl_1", unit(in, 64, 1));
  branch3x3dbl_2_ = register_module("branch3x3dbl_2", unit(64, 96, 3, 1, 1));
  branch3x3dbl_3_ = register_module("branch3x3dbl_3", unit(96, 96, 3, 2));
}

torch::Tensor InceptionBlockBImpl::forward(const torch::Tensor& x) {
  return torch::cat({branch3x3_(x), branch3x3dbl_3_(branch3x3dbl_2_(branch3x3dbl_1_(x))),
                     max_pool_3x3_stride2(x)},
                    1);
}

InceptionBlockCImpl::InceptionBlockCImpl(int64_t in, int64_t c7) {
  branch1x1_ = register_module("branch1x1", unit(in, 192, 1));
  branch7x7_1_ = register_module("branch7x7_1", unit(in, c7, 1));
  branch7x7_2_ = register_module("branch7x7_2", row(c7, c7, 7));
  branch7x7_3_ = register_module("branch7x7_3", column(c7, 192, 7));
  branch7x7dbl_1_ = register_module("branch7x7dbl_1", unit(in, c7, 1));
  branch7x7dbl_2_ = register_module("branch7x7dbl_2", column(c7, c7, 7));
  branch7x7dbl_3_ = register_module("branch7x7dbl_3", row(c7, c7, 7));
  branch7x7dbl_4_ = register_module("branch7x7dbl_4", column(c7, c7, 7));
  branch7x7dbl_5_ = register_module("branch7x7dbl_5", row(c7, 192, 7));
  branch_pool_ = register_module("branch_pool", unit(in, 192, 1));
}

torch::Tensor InceptionBlockCImpl::forward(const torch::Tensor& x) {
  auto dbl = branch7x7dbl_3_(branch7x7dbl_2_(branch7x7dbl_1_(x)));
  return torch::cat({branch1x1_(x), branch7x7_3_(branch7x7_2_(branch7x7_1_(x))),
                     branch7x7dbl_5_(branch7x7dbl_4_(dbl)), branch_pool_(average_pool_3x3(x))},
                    1);
}

InceptionBlockDImpl::InceptionBlockDImpl(int64_t in) {
  branch3x3_1_ = register_module("branch3x3_1", unit(in, 192, 1));
  branch3x3_2_ = register_module("branch3x3_2", unit(192, 320, 3, 2));
  branch7x7x3_1_ = register_module("branch7x7x3_1", unit(in, 192, 1));
  branch7x7x3_2_ = register_module("branch7x7x3_2", row(192, 192, 7));
  branch7x7x3_3_ = register_module("branch7x7x3_3", column(192, 192, 7));
  branch7x7x3_4_ = register_module("branch7x7x3_4", unit(192, 192, 3, 2));
}

torch::Tensor InceptionBlockDImpl::forward(const torch::Tensor& x) {
  auto b7 = branch7x7x3_4_(branch7x7x3_3_(branch7x7x3_2_(branch7x7x3_1_(x))));
  return torch::cat({branch3x3_2_(branch3x3_1_(x)), b7, max_pool_3x3_stride2(x)}, 1);
}

InceptionBlockEImpl::InceptionBlockEImpl(int64_t in, InceptionPool pool) : pool_(pool) {
  branch1x1_ = register_module("branch1x1", unit(in, 320, 1));
  branch3x3_1_ = register_module("branch3x3_1", unit(in, 384, 1));
  branch3x3_2a_ = register_module("branch3x3_2a", row(384, 384, 3));
  branch3x3_2b_ = register_module("branch3x3_2b", column(384, 384, 3));
  branch3x3dbl_1_ = register_module("branch3x3dbl_1", unit(in, 448, 1));
  branch3x3dbl_2_ = register_module("branch3x3dbl_2", unit(448, 384, 3, 1, 1));
  branch3x3dbl_3a_ = register_module("branch3x3dbl_3a", row(384, 384, 3));
  branch3x3dbl_3b_ = register_module("branch3x3dbl_3b", column(384, 384, 3));
  branch_pool_ = register_module("branch_pool", unit(in, 192, 1));
}

torch::Tensor InceptionBlockEImpl::forward(const torch::Tensor& x) {
  auto b3 = branch3x3_1_(x);
  auto dbl = branch3x3dbl_2_(branch3x3dbl_1_(x));
  // pytorch-fid keeps the TF graph's max pool in Mixed_7c (its comment calls it a likely bug of
  // that graph); FID values are only comparable with it.
  auto pooled = pool_ == InceptionPool::Average
                    ? average_pool_3x3(x)
                    : F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(1).padding(1));
  return torch::cat({branch1x1_(x), branch3x3_2a_(b3), branch3x3_2b_(b3), branch3x3dbl_3a_(dbl),
                     branch3x3dbl_3b_(dbl), branch_pool_(pooled)},
                    1);
}

FidInceptionImpl::FidInceptionImpl() {
  conv1a_ = register_module("Conv2d_1a_3x3", unit(3, 32, 3, 2));
  conv2a_ = register_module("Conv2d_2a_3x3", unit(32, 32, 3));
  conv2b_ = register_module("Conv2d_2b_3x3", unit(32, 64, 3, 1, 1));
  conv3b_ = register_module("Conv2d_3b_1x1", unit(64, 80, 1));
  conv4a_ = register_module("Conv2d_4a_3x3", unit(80, 192, 3));
  mixed5b_ = register_module("Mixed_5b", InceptionBlockA(192, 32));
  mixed5c_ = register_module("Mixed_5c", InceptionBlockA(256, 64));
  mixed5d_ = register_module("Mixed_5d", InceptionBlockA(288, 64));
  mixed6a_ = register_module("Mixed_6a", InceptionBlockB(288));
  mixed6b_ = register_module("Mixed_6b", InceptionBlockC(768, 128));
  mixed6c_ = register_module("Mixed_6c", InceptionBlockC(768, 160));
  mixed6d_ = register_module("Mixed_6d", InceptionBlockC(768, 160));
  mixed6e_ = register_module("Mixed_6e", InceptionBlockC(768, 192));
  mixed7a_ = register_module("Mixed_7a", InceptionBlockD(768));
  mixed7b_ = register_module("Mixed_7b", InceptionBlockE(1280, InceptionPool::Average));
  mixed7c_ = register_module("Mixed_7c", InceptionBlockE(2048, InceptionPool::Max));
}

torch::Tensor FidInceptionImpl::features(const torch::Tensor& images) {
  auto x = images.dim() == 3 ? images.unsqueeze(0) : images;
  if (x.dim() != 4 || x.size(1) != 3)
    throw Error("Inception: expected [N, 3, H, W] images, got " + c10::str(images.sizes()));
  const auto weight = parameters().front();  // Conv2d_1a_3x3.conv.weight
  x = x.to(weight.device(), weight.scalar_type());
  // pytorch-fid resizes images in [0, 1] and then maps them to [-1, 1]; both steps are affine per
  // pixel, so resizing p2l's [-1, 1] images directly gives the same input.
  x = F::interpolate(x, F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{kInputSize, kInputSize})
                            .mode(torch::kBilinear)
                            .align_corners(false));
  x = conv2b_(conv2a_(conv1a_(x)));
  x = max_pool_3x3_stride2(x);
  x = conv4a_(conv3b_(x));
  x = max_pool_3x3_stride2(x);
  x = mixed5d_(mixed5c_(mixed5b_(x)));
  x = mixed6e_(mixed6d_(mixed6c_(mixed6b_(mixed6a_(x)))));
  x = mixed7c_(mixed7b_(mixed7a_(x)));
  return x.mean({2, 3});  // adaptive average pooling to 1×1
}

FidInception load_fid_inception(const std::string& path, torch::Device device) {
  const io::SafeTensorsFile file(path);
  FidInception inception;
  load_frozen(*inception, file, device, "the FID Inception (fc, num_batches_tracked, ...)",
              Buffers::kLoad);
  return inception;
}

}  // namespace p2l::metrics
