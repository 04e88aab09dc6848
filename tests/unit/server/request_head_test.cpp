// request_head_problem against the rules of RFC 9112 §5 (field syntax) and §6.3 (message
// body length), case by case; the e2e tests (tests/e2e/test_http_framing.py) check the
// same refusals through the running server.
#include <gtest/gtest.h>

#include "server/api/request_head.h"

namespace lorax {
namespace {

constexpr size_t kMaxBody = 1000;

std::optional<HeadProblem> check(const std::string& headers) {
  return request_head_problem("POST /generate HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n", kMaxBody);
}

TEST(RequestHead, EndIsFoundOnlyAfterTheBlankLine) {
  EXPECT_EQ(request_head_end("GET / HTTP/1.1\r\nHost: x\r\n"), std::string::npos);
  EXPECT_EQ(request_head_end("GET / HTTP/1.1\r\nHost: x\r\n\r\n{}"), 27u);
  EXPECT_EQ(request_head_end("GET / HTTP/1.1\r\n\r"), std::string::npos);
}

TEST(RequestHead, OrdinaryRequestsPass) {
  EXPECT_FALSE(check(""));
  EXPECT_FALSE(check("Content-Length: 17\r\n"));
  EXPECT_FALSE(check("content-length:\t1000 \r\n"));  // OWS around the value, any case of the name
  EXPECT_FALSE(check("Content-Length: 0000\r\n"));
  EXPECT_FALSE(check("Transfer-Encoding: chunked\r\n"));
  EXPECT_FALSE(check("Authorization: Bearer k\r\nX-Authorization: a\r\n"));
  EXPECT_FALSE(request_head_problem("GET / HTTP/1.1\r\n\r\n", kMaxBody));
}

TEST(RequestHead, ContentLengthMustBeOneDecimalNumber) {
  for (const char* bad : {"-1", "", "12abc", "0x10", "1 2", "+5", "1,1"}) {
    auto p = check(std::string("Content-Length: ") + bad + "\r\n");
    ASSERT_TRUE(p) << bad;
    EXPECT_EQ(p->status, 400) << bad;
    EXPECT_NE(p->message.find("decimal number"), std::string::npos);
    EXPECT_EQ(p->message.find(bad[0] ? bad : "\x01"), std::string::npos) << "the value is echoed";
  }
  auto p = check("Content-Length: 5\r\nContent-Length: 5\r\n");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 400);
}

TEST(RequestHead, DeclaredBodiesOverTheLimitAre413) {
  EXPECT_FALSE(check("Content-Length: 1000\r\n"));
  for (const char* big : {"1001", "99999999999999999999", "18446744073709551616", "000000000000000000001001"}) {
    auto p = check(std::string("Content-Length: ") + big + "\r\n");
    ASSERT_TRUE(p) << big;
    EXPECT_EQ(p->status, 413) << big;
  }
}

TEST(RequestHead, AmbiguousFramingIsRefused) {
  auto p = check("Content-Length: 2\r\nTransfer-Encoding: chunked\r\n");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 400);
  EXPECT_TRUE(check("Content-Length : 2\r\n"));  // whitespace before the colon (§5.1)
  EXPECT_TRUE(check("Content-Length: 2\r\n folded\r\n"));  // obs-fold (§5.2)
  EXPECT_TRUE(check("no colon\r\n"));
  EXPECT_TRUE(check("X-A: 1\nAuthorization: Bearer k\r\n"));  // a lone LF ends a line for some parsers only
  EXPECT_TRUE(check("X-A: 1\rContent-Length: 2\r\n"));
  EXPECT_TRUE(request_head_problem("GET / HTTP/1.1\nX: y\r\n\r\n", kMaxBody));
}

TEST(RequestHead, OneAuthorizationHeaderAtMost) {
  auto p = check("Authorization: Bearer right\r\nauthorization: Bearer wrong\r\n");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 400);
  EXPECT_EQ(p->message, "more than one Authorization header");
}

TEST(RequestHead, HugeBlocksAre431) {
  auto p = check("X-Filler: " + std::string(kMaxRequestHeadBytes, 'a') + "\r\n");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->status, 431);
}

}  // namespace
}  // namespace lorax
