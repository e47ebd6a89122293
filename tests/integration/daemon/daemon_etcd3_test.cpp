// The pgwarden daemon against a real etcd 3.4 and a real PostgreSQL 15.
#include "harness.hpp"

#include <catch2/catch.hpp>

using namespace pgwarden::daemon_test;

TEST_CASE(
    "daemon (etcd3): one node bootstraps, leads, recovers a killed postmaster, hands over on "
    "SIGTERM, and a second empty node does not bootstrap another cluster",
    "[daemon][etcd3]") {
    EtcdBackend etcd;
    single_node_lifecycle(etcd, "it-single");
}
