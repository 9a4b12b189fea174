// How the executables are linked: official LibTorch 2.x binaries export their own copy of
// libstdc++'s std::filesystem, which crashed when our code was bound to it (CMakeLists.txt).
// Bound to libstdc++ (or, with a toolchain that links std::filesystem statically, to the
// executable itself: seen with Ubuntu's g++ 13 and LibTorch 2.11) is right; LibTorch's is not.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace p2l::test {
namespace {

TEST(Linking, StdFilesystemIsNotLibTorchsCopy) {
#if defined(__GLIBCXX__) && defined(__linux__) && _GLIBCXX_USE_CXX11_ABI
  // The global lookup the dynamic linker does for our own calls of std::filesystem::remove_all.
  void* symbol = dlsym(RTLD_DEFAULT, "_ZNSt10filesystem10remove_allERKNS_7__cxx114pathE");
  ASSERT_NE(symbol, nullptr);
  Dl_info info{};
  ASSERT_NE(dladdr(symbol, &info), 0);
  ASSERT_NE(info.dli_fname, nullptr);
  const std::string bound = info.dli_fname;
  for (const char* torch : {"libtorch", "libc10"})
    EXPECT_EQ(bound.find(torch), std::string::npos)
        << "std::filesystem::remove_all is bound to " << bound;
  std::error_code ec;
  const bool executable = std::filesystem::equivalent(bound, "/proc/self/exe", ec);
  EXPECT_TRUE(bound.find("libstdc++") != std::string::npos || executable)
      << "std::filesystem::remove_all is bound to " << bound;
#else
  GTEST_SKIP() << "only GNU libstdc++ on Linux is linked this way";
#endif
}

}  // namespace
}  // namespace p2l::test
