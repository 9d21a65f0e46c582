# The management HTTP API (RabbitMQ's rabbitmq_management paths and JSON),
# part of warren_server: an HTTP/1.1 server on the broker's loop with
# Debian's http-parser, JSON with jansson, name filters with PCRE2.
target_sources(warren_server PRIVATE
  mgmt_http.c
  mgmt_api.c
  mgmt_api_admin.c
  mgmt_api_conns.c
  mgmt_api_list.c
  mgmt_api_node.c
  mgmt_api_objects.c
  mgmt_api_phash.c
  mgmt_api_stats.c)
target_include_directories(warren_server PRIVATE ${HTTP_PARSER_INCLUDE_DIR})
target_link_libraries(warren_server PUBLIC ${HTTP_PARSER_LIBRARY}
                      PkgConfig::JANSSON PkgConfig::PCRE2)
