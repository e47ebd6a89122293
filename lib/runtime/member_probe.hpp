// GET <api_url> of other members (Patroni's fetch_nodes_statuses): 2 s deadline, no retry,
// all members at once. An unreachable or unusable answer is a probe with reachable = false.
#pragma once

#include "core/cluster.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace pgwarden::runtime {

// Parses a /patroni body as Patroni's _MemberStatus.from_api_response does.
core::MemberProbe parse_member_probe(const std::string& name, const std::string& body);

boost::asio::awaitable<core::MemberProbe> probe_member(boost::asio::any_io_executor ex,
                                                       core::Member member,
                                                       std::chrono::milliseconds timeout);

// Probes all `members` concurrently; the result has one entry per member, in order.
boost::asio::awaitable<std::vector<core::MemberProbe>> probe_members(
    boost::asio::any_io_executor ex,
    std::vector<core::Member> members,
    std::chrono::milliseconds timeout);

}  // namespace pgwarden::runtime
