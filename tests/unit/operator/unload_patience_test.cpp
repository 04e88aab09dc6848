// The Adapter finalizer's patience with pods that keep refusing to unload
// (controllers/context.h): retried until the patience runs out, per Adapter,
// then released once and forgotten.
#include <gtest/gtest.h>

#include <thread>

#include "controllers/context.h"

namespace lorax::op {
namespace {

TEST(UnloadPatience, GivesUpOncePerAdapterAfterThePatience) {
  UnloadPatience p(std::chrono::milliseconds(50));
  EXPECT_FALSE(p.exhausted("a"));  // the first failure starts the clock
  EXPECT_FALSE(p.exhausted("a"));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_FALSE(p.exhausted("b"));  // another Adapter has its own clock
  EXPECT_TRUE(p.exhausted("a"));
  EXPECT_FALSE(p.exhausted("a"));  // forgotten: a new deletion starts again
}

}  // namespace
}  // namespace lorax::op
