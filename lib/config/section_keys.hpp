// Internal to lib/config: the keys of patroni.yml sections that both the file loader (load_*.cpp)
// and the PATRONI_* reader (env.cpp) know, listed once.
#pragma once

#include <array>
#include <string_view>

namespace pgwarden::config::detail {

// log.<key>, each also PATRONI_LOG_<KEY>.
inline constexpr std::array<std::string_view, 13> kLogKeys = {"type",
                                                              "level",
                                                              "traceback_level",
                                                              "format",
                                                              "dateformat",
                                                              "static_fields",
                                                              "max_queue_size",
                                                              "dir",
                                                              "mode",
                                                              "file_size",
                                                              "file_num",
                                                              "loggers",
                                                              "deduplicate_heartbeat_logs"};

// restapi.<key> that can also be set as PATRONI_RESTAPI_<KEY>. The file has three more:
// authentication (PATRONI_RESTAPI_USERNAME/_PASSWORD in the environment), the legacy auth, and
// thread_pool_size.
inline constexpr std::array<std::string_view, 14> kRestapiEnvKeys = {"listen",
                                                                     "connect_address",
                                                                     "certfile",
                                                                     "keyfile",
                                                                     "keyfile_password",
                                                                     "cafile",
                                                                     "ciphers",
                                                                     "verify_client",
                                                                     "http_extra_headers",
                                                                     "https_extra_headers",
                                                                     "allowlist",
                                                                     "allowlist_include_members",
                                                                     "request_queue_size",
                                                                     "server_tokens"};

}  // namespace pgwarden::config::detail
