#include "dcs/base64.hpp"

#include <catch2/catch.hpp>

#include <string>

using pgwarden::dcs::base64_decode;
using pgwarden::dcs::base64_encode;

TEST_CASE("base64: RFC 4648 test vectors, both ways", "[dcs][base64]") {
    const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                           {"f", "Zg=="},
                                                           {"fo", "Zm8="},
                                                           {"foo", "Zm9v"},
                                                           {"foob", "Zm9vYg=="},
                                                           {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, encoded] : vectors) {
        CHECK(base64_encode(plain) == encoded);
        auto decoded = base64_decode(encoded);
        REQUIRE(decoded.has_value());
        CHECK(*decoded == plain);
    }
}

TEST_CASE("base64: etcd keys and binary values round-trip", "[dcs][base64]") {
    CHECK(base64_encode("/service/demo/") == "L3NlcnZpY2UvZGVtby8=");
    CHECK(base64_decode("L3NlcnZpY2UvZGVtby9jb25maWc=") == std::string("/service/demo/config"));
    std::string binary;
    for (int c = 0; c < 256; ++c) {
        binary.push_back(static_cast<char>(c));
    }
    binary.push_back('\0');
    CHECK(base64_decode(base64_encode(binary)) == binary);
}

TEST_CASE("base64: malformed input is rejected, not truncated", "[dcs][base64]") {
    CHECK_FALSE(base64_decode("Zm9").has_value());       // not a multiple of 4
    CHECK_FALSE(base64_decode("Zm9v!A==").has_value());  // outside the alphabet
    CHECK_FALSE(base64_decode("Zg=a").has_value());      // '=' inside
    CHECK_FALSE(base64_decode("=Zm9").has_value());
    CHECK_FALSE(base64_decode("Z===").has_value());   // three '='
    CHECK_FALSE(base64_decode(" Zg==").has_value());  // whitespace
    CHECK_FALSE(base64_decode("Zg==\n").has_value());
    CHECK_FALSE(base64_decode("Zm9v_-==").has_value());  // URL-safe alphabet
}
