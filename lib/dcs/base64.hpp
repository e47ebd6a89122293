// Standard base64 with padding (RFC 4648 §4), as etcd's JSON gateway and Consul's KV API use for
// keys and values: the one codec of lib/dcs, over OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pgwarden::dcs {

std::string base64_encode(std::string_view in);

// nullopt unless `in` is canonical padded base64: a multiple of 4 characters from the standard
// alphabet, '=' only as the last one or two. No whitespace, no URL-safe alphabet.
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace pgwarden::dcs
