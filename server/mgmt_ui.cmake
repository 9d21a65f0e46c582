# The web management UI, part of warren_server: the static files in
# mgmt/www/ are embedded into the binary at build time (gen/embed_www.cmake
# writes mgmt_www.gen.inc into the build directory, mgmt_ui.c includes it
# and serves the files). Every file of the UI is listed here: a file not
# listed is not served.
set(MGMT_WWW_DIR ${CMAKE_CURRENT_SOURCE_DIR}/mgmt/www)
set(MGMT_WWW_FILES
  index.html
  favicon.svg
  css/warren.css
  js/app.js
  js/api.js
  js/dom.js
  js/chart.js
  js/table.js
  js/widgets.js
  js/forms.js
  js/pages/overview.js
  js/pages/connections.js
  js/pages/channels.js
  js/pages/exchanges.js
  js/pages/queues.js
  js/pages/queue.js
  js/pages/admin.js
  js/pages/nodes.js)
set(mgmt_www_paths ${MGMT_WWW_FILES})
list(TRANSFORM mgmt_www_paths PREPEND ${MGMT_WWW_DIR}/)
string(REPLACE ";" "," mgmt_www_list "${MGMT_WWW_FILES}")
set(mgmt_www_inc ${CMAKE_CURRENT_BINARY_DIR}/mgmt_www.gen.inc)
add_custom_command(
  OUTPUT ${mgmt_www_inc}
  COMMAND ${CMAKE_COMMAND} -DROOT=${MGMT_WWW_DIR} -DFILES=${mgmt_www_list}
          -DOUT=${mgmt_www_inc} -P ${CMAKE_CURRENT_SOURCE_DIR}/gen/embed_www.cmake
  DEPENDS gen/embed_www.cmake ${mgmt_www_paths}
  COMMENT "Embedding the web UI (server/mgmt/www)"
  VERBATIM)
target_sources(warren_server PRIVATE mgmt_ui.c ${mgmt_www_inc})
target_include_directories(warren_server PRIVATE ${CMAKE_CURRENT_BINARY_DIR})
