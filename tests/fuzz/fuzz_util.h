// Helpers of the fuzz targets: scratch files for APIs that only take a path, and
// the report that turns an exception the code should not let escape into a
// libFuzzer crash (abort, so the input is saved as a crash-* artifact).
#pragma once
#include <cxxabi.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

namespace lorax_fuzz {

// A directory of this process's own, under $LORAX_FUZZ_SCRATCH (scripts/fuzz sets it and removes it
// afterwards), else /dev/shm or the temp directory; removed again at a normal exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const char* env = std::getenv("LORAX_FUZZ_SCRATCH");
    fs::path base = env && *env ? fs::path(env) : fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("lorax-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d.string();
  }();
  static const bool cleanup = [] {
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    });
    return true;
  }();
  (void)cleanup;
  return dir;
}

// Writes `data` to scratch_dir()/name and returns the path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

// Call from a catch (...) block: prints the escaping exception's type and message, then aborts.
[[noreturn]] inline void unexpected(const char* where) {
  try {
    throw;
  } catch (const std::exception& e) {
    int status = 0;
    char* name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
    std::fprintf(stderr, "FINDING: %s let %s escape: %s\n", where, name ? name : typeid(e).name(), e.what());
    std::free(name);
  } catch (...) {
    std::fprintf(stderr, "FINDING: %s let a non-std exception escape\n", where);
  }
  std::abort();
}

// A broken invariant (not a crash by itself): report and abort.
[[noreturn]] inline void broken(const char* where, const std::string& what) {
  std::fprintf(stderr, "FINDING: %s: %s\n", where, what.c_str());
  std::abort();
}

}  // namespace lorax_fuzz
