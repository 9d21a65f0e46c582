# The broker: every server/ source.
add_library(warren_server STATIC
  alarm.c
  auth.c
  channel.c
  confirm.c
  conn.c
  listener.c
  loop.c
  m_basic.c
  m_channel.c
  m_confirm_tx.c
  m_connection.c
  m_exchange.c
  m_queue.c
  m_table.c
  notify.c
  outq.c
  publish.c
  server.c
  unacked.c)
target_include_directories(warren_server PUBLIC ${EV_INCLUDE_DIR})
target_link_libraries(warren_server PUBLIC warren_vhost warren_conf
                      warren_amqp warren_base ${EV_LIBRARY})

if(WARREN_HAVE_SYSTEMD)
  target_compile_definitions(warren_server PRIVATE WARREN_HAVE_SYSTEMD)
  target_link_libraries(warren_server PRIVATE PkgConfig::SYSTEMD)
endif()

add_executable(warren main.c)
target_link_libraries(warren PRIVATE warren_server)
