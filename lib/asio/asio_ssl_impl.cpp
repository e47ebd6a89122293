// Compiles Asio's SSL implementation once (BOOST_ASIO_SEPARATE_COMPILATION); links OpenSSL.
#include <boost/asio/ssl/impl/src.hpp>
