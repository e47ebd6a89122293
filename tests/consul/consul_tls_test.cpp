// §13.50: the optional HTTPS listener (--https-listen, --tls-cert, --tls-key, --tls-ca,
// --tls-verify-incoming). Certificates are made at test time with the openssl CLI; the TLS
// client is curl (fork/exec, bounded).
#include "support/test_certs.hpp"
#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

using pgwarden::consul_test::testing::ConsulServerProcess;
using pgwarden::testing::make_test_certs;
using pgwarden::testing::run_command;
using pgwarden::testing::TestCerts;

namespace {

// A temporary directory removed on destruction.
class ScratchDir {
public:
    ScratchDir() {
        std::string tmpl = "/tmp/pgw-consul-tls-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = tmpl;
    }
    ~ScratchDir() { run_command({"rm", "-rf", path_}); }
    ScratchDir(const ScratchDir&) = delete;
    ScratchDir& operator=(const ScratchDir&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

unsigned read_port(const std::string& file) {
    std::ifstream in(file);
    unsigned p = 0;
    in >> p;
    return p;
}

// curl over HTTPS; the answer's body followed by "\n<status>" (curl -w), or curl's error.
pgwarden::testing::CommandResult curl(const std::string& method,
                                      const std::string& url,
                                      const std::vector<std::string>& tls_args,
                                      const std::string& body = {}) {
    std::vector<std::string> argv{
        "curl", "-sS", "--max-time", "10", "-X", method, "-w", "\n%{http_code}"};
    argv.insert(argv.end(), tls_args.begin(), tls_args.end());
    if (!body.empty()) {
        argv.insert(argv.end(), {"--data-binary", body});
    }
    argv.push_back(url);
    return run_command(argv, std::chrono::seconds(20));
}

}  // namespace

TEST_CASE("consul §13.50: the HTTPS listener serves the same API over TLS",
          "[consul][integration][tls]") {
    ScratchDir dir;
    const TestCerts certs = make_test_certs(dir.path());
    const std::string port_file = dir.path() + "/https-port";
    ConsulServerProcess server({"--https-listen",
                                "127.0.0.1:0",
                                "--https-port-file",
                                port_file,
                                "--tls-cert",
                                certs.server_cert,
                                "--tls-key",
                                certs.server_key});
    const unsigned https = read_port(port_file);
    REQUIRE(https > 0);
    const std::string base = "https://127.0.0.1:" + std::to_string(https);

    auto put = curl("PUT", base + "/v1/kv/tls/key", {"--cacert", certs.ca}, "over-tls");
    INFO(put.output);
    REQUIRE(put.exit_code == 0);
    CHECK(put.output == "true\n200");

    auto get = curl("GET", base + "/v1/kv/tls/key?raw", {"--cacert", certs.ca});
    INFO(get.output);
    REQUIRE(get.exit_code == 0);
    CHECK(get.output == "over-tls\n200");

    // The host name "localhost" is in the certificate too.
    auto by_name = curl("GET",
                        "https://localhost:" + std::to_string(https) + "/v1/kv/tls/key?raw",
                        {"--cacert", certs.ca});
    INFO(by_name.output);
    CHECK(by_name.exit_code == 0);

    // A client trusting another CA refuses the server.
    auto wrong = curl("GET", base + "/v1/kv/tls/key?raw", {"--cacert", certs.wrong_ca});
    CHECK(wrong.exit_code != 0);

    // Plain HTTP keeps working and sees the same data.
    auto plain = server.get("/v1/kv/tls/key?raw");
    CHECK(plain.status == 200);
    CHECK(plain.body == "over-tls");
}

TEST_CASE("consul §13.50: --tls-verify-incoming requires a client certificate from the CA",
          "[consul][integration][tls]") {
    ScratchDir dir;
    const TestCerts certs = make_test_certs(dir.path());
    const std::string port_file = dir.path() + "/https-port";
    ConsulServerProcess server({"--https-listen",
                                "127.0.0.1:0",
                                "--https-port-file",
                                port_file,
                                "--tls-cert",
                                certs.server_cert,
                                "--tls-key",
                                certs.server_key,
                                "--tls-ca",
                                certs.ca,
                                "--tls-verify-incoming"});
    const unsigned https = read_port(port_file);
    REQUIRE(https > 0);
    const std::string url = "https://127.0.0.1:" + std::to_string(https) + "/v1/status/leader";

    auto anonymous = curl("GET", url, {"--cacert", certs.ca});
    INFO(anonymous.output);
    CHECK(anonymous.exit_code != 0);

    auto with_cert = curl(
        "GET", url, {"--cacert", certs.ca, "--cert", certs.client_cert, "--key", certs.client_key});
    INFO(with_cert.output);
    REQUIRE(with_cert.exit_code == 0);
    CHECK(with_cert.output == "\"127.0.0.1:8300\"\n200");
}
