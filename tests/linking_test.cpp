// How the executables are linked: official LibTorch 2.x binaries export their own copy of
// libstdc++'s std::filesystem, which crashed when our code was bound to it (CMakeLists.txt).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <string>

namespace p2l::test {
namespace {

TEST(Linking, StdFilesystemIsTheSystemLibstdcxx) {
#if defined(__GLIBCXX__) && defined(__linux__) && _GLIBCXX_USE_CXX11_ABI
  // The global lookup the dynamic linker does for our own calls of std::filesystem::remove_all.
  void* symbol = dlsym(RTLD_DEFAULT, "_ZNSt10filesystem10remove_allERKNS_7__cxx114pathE");
  ASSERT_NE(symbol, nullptr);
  Dl_info info{};
  ASSERT_NE(dladdr(symbol, &info), 0);
  ASSERT_NE(info.dli_fname, nullptr);
  EXPECT_NE(std::string(info.dli_fname).find("libstdc++"), std::string::npos)
      << "std::filesystem::remove_all is bound to " << info.dli_fname;
#else
  GTEST_SKIP() << "only GNU libstdc++ on Linux is linked this way";
#endif
}

}  // namespace
}  // namespace p2l::test
