#include "support/net.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace pgwarden::testing {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) {
            close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

int remaining_ms(Clock::time_point deadline) {
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    return ms < 0 ? 0 : static_cast<int>(ms);
}

bool wait_fd(int fd, short events, Clock::time_point deadline) {
    while (true) {
        pollfd p{fd, events, 0};
        int r = poll(&p, 1, remaining_ms(deadline));
        if (r > 0) {
            return true;
        }
        if (r == 0) {
            return false;
        }
        if (errno != EINTR) {
            return false;
        }
    }
}

int connect_with_deadline(const std::string& host,
                          unsigned short port,
                          Clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) {
        return -1;
    }
    int result = -1;
    for (addrinfo* ai = res; ai && result < 0; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            continue;
        }
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline)) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            r = err == 0 ? 0 : -1;
        }
        if (r == 0) {
            result = fd;
        } else {
            close(fd);
        }
    }
    freeaddrinfo(res);
    return result;
}

bool iequals(const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string trim(std::string s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
        s.pop_back();
    }
    std::size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) {
        ++i;
    }
    return s.substr(i);
}

// Decodes a complete chunked body; false when incomplete/malformed.
bool decode_chunked(const std::string& in, std::string& out) {
    std::size_t pos = 0;
    out.clear();
    while (true) {
        auto eol = in.find("\r\n", pos);
        if (eol == std::string::npos) {
            return false;
        }
        std::size_t size = 0;
        try {
            size = std::stoul(in.substr(pos, eol - pos), nullptr, 16);
        } catch (...) {
            return false;
        }
        pos = eol + 2;
        if (size == 0) {
            return true;
        }
        if (pos + size + 2 > in.size()) {
            return false;
        }
        out.append(in, pos, size);
        pos += size + 2;
    }
}

}  // namespace

unsigned short free_port() {
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        throw std::runtime_error("socket failed");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
    }
    socklen_t len = sizeof addr;
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
}

std::string HttpResult::header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
        if (iequals(k, name)) {
            return v;
        }
    }
    return {};
}

HttpResult http_request(const std::string& host,
                        unsigned short port,
                        const std::string& method,
                        const std::string& target,
                        const std::string& body,
                        const std::vector<std::pair<std::string, std::string>>& headers,
                        std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    HttpResult result;
    Fd fd(connect_with_deadline(host, port, deadline));
    if (fd.get() < 0) {
        return result;
    }
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: " + host + ":" +
                      std::to_string(port) + "\r\nConnection: close\r\n";
    bool has_content_type = false;
    for (const auto& [k, v] : headers) {
        req += k + ": " + v + "\r\n";
        has_content_type = has_content_type || iequals(k, "Content-Type");
    }
    if (!body.empty() && !has_content_type) {
        req += "Content-Type: application/json\r\n";
    }
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    std::size_t sent = 0;
    while (sent < req.size()) {
        if (!wait_fd(fd.get(), POLLOUT, deadline)) {
            return result;
        }
        ssize_t n = send(fd.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return result;
        }
        if (n > 0) {
            sent += static_cast<std::size_t>(n);
        }
    }
    std::string raw;
    char buf[8192];
    while (true) {
        if (!wait_fd(fd.get(), POLLIN, deadline)) {
            return result;  // timeout
        }
        ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            break;
        }
        raw.append(buf, static_cast<std::size_t>(n));
        // Stop early when a Content-Length / chunked body is complete.
        auto hdr_end = raw.find("\r\n\r\n");
        if (hdr_end == std::string::npos) {
            continue;
        }
        std::string head = raw.substr(0, hdr_end);
        std::string lower = head;
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) {
            return static_cast<char>(std::tolower(c));
        });
        auto cl = lower.find("\r\ncontent-length:");
        if (cl != std::string::npos) {
            auto len = std::stoul(head.substr(cl + 17, head.find("\r\n", cl + 2) - cl - 17));
            if (raw.size() >= hdr_end + 4 + len) {
                break;
            }
        } else if (lower.find("transfer-encoding: chunked") != std::string::npos) {
            std::string decoded;
            if (decode_chunked(raw.substr(hdr_end + 4), decoded)) {
                break;
            }
        }
    }
    auto hdr_end = raw.find("\r\n\r\n");
    if (hdr_end == std::string::npos || raw.compare(0, 5, "HTTP/") != 0) {
        return result;
    }
    std::string head = raw.substr(0, hdr_end);
    std::string rest = raw.substr(hdr_end + 4);
    auto first_eol = head.find("\r\n");
    std::string status_line = head.substr(0, first_eol);
    auto sp = status_line.find(' ');
    if (sp == std::string::npos) {
        return result;
    }
    int status = std::atoi(status_line.c_str() + sp + 1);
    bool chunked = false;
    std::optional<std::size_t> content_length;
    std::size_t pos = first_eol == std::string::npos ? head.size() : first_eol + 2;
    while (pos < head.size()) {
        auto eol = head.find("\r\n", pos);
        if (eol == std::string::npos) {
            eol = head.size();
        }
        std::string line = head.substr(pos, eol - pos);
        auto colon = line.find(':');
        if (colon != std::string::npos) {
            std::string name = trim(line.substr(0, colon));
            std::string value = trim(line.substr(colon + 1));
            if (iequals(name, "Transfer-Encoding") && value.find("chunked") != std::string::npos) {
                chunked = true;
            }
            if (iequals(name, "Content-Length")) {
                content_length = std::stoul(value);
            }
            result.headers.emplace_back(std::move(name), std::move(value));
        }
        pos = eol + 2;
    }
    if (chunked) {
        if (!decode_chunked(rest, result.body)) {
            result.body = rest;
        }
    } else if (content_length) {
        result.body = rest.substr(0, *content_length);
    } else {
        result.body = rest;
    }
    result.status = status;
    return result;
}

bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        if (pred()) {
            return true;
        }
        if (Clock::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(interval);
    }
}

}  // namespace pgwarden::testing
