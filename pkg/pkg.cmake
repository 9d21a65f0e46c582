# pkg/pkg.cmake: what `cmake --install` installs, and the Debian package
# CPack makes of the same install. Included from the top-level
# CMakeLists.txt.
#
#   <sbindir>/warren                     the broker
#   <sbindir>/warrenctl                  cli/warrenctl
#   <sysconfdir>/warren/warren.conf      conf/warren.conf, data_dir set to
#                                        /var/lib/warren, the log to
#                                        /var/log/warren/warren.log
#   <sysconfdir>/logrotate.d/warren      pkg/logrotate
#   <mandir>/man8/warren.8.gz            docs/man/warren.8
#   <mandir>/man8/warrenctl.8.gz         docs/man/warrenctl.8
#   <unitdir>/warren.service             conf/warren.service.in
#   <docdir>/copyright                   LICENSE
#
# Directories are GNUInstallDirs': configure with
# -DCMAKE_INSTALL_PREFIX=/usr, as Debian packages are built (and as
# .ci/run does), for /usr/sbin, /etc/warren and /lib/systemd/system; the
# default prefix /usr/local gives /usr/local/sbin, /usr/local/etc/warren
# and /usr/local/lib/systemd/system. Daemons and admin tools go to sbin
# as in Debian's rabbitmq-server (rabbitmqctl is in /usr/sbin), hence
# section 8 for both man pages. The data directory is /var/lib/warren
# and the log directory /var/log/warren whatever the prefix: the unit's
# StateDirectory=warren and LogsDirectory=warren are those directories.
# The web UI's files (server/mgmt/www) are compiled into the binary, so
# they install with it and always match it.
#
# The package: `cpack -G DEB` in the build tree writes
# warren_<version>_<arch>.deb. Depends: what dpkg-shlibdeps finds for the
# binary (when dpkg-dev is installed) plus python3 (warrenctl) and passwd
# (useradd in postinst). Conffiles: the config. Maintainer scripts:
# pkg/postinst (user and group warren, /var/lib/warren, enable and start
# the unit), pkg/prerm (stop), pkg/postrm (purge: data, logs, unit
# state).
#
# Logs: the packaged config writes /var/log/warren/warren.log (where
# RabbitMQ's package writes its log, and what /etc/logrotate.d/warren
# rotates), and sends warnings and errors to the console too, so that
# `systemctl status warren` and journald show why a broker failed.
# test/pkg/test_deb.py builds it, installs it into a scratch root with
# dpkg and checks the result.

include(GNUInstallDirs)
set(WARREN_CONF_FILE "${CMAKE_INSTALL_FULL_SYSCONFDIR}/warren/warren.conf")
set(WARREN_DATA_DIR /var/lib/warren)
set(WARREN_LOG_FILE /var/log/warren/warren.log)
if(NOT WARREN_SYSTEMD_UNIT_DIR)
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    pkg_get_variable(WARREN_SYSTEMD_UNIT_DIR systemd systemdsystemunitdir)
    if(NOT WARREN_SYSTEMD_UNIT_DIR)
      set(WARREN_SYSTEMD_UNIT_DIR /lib/systemd/system)
    endif()
  else()
    set(WARREN_SYSTEMD_UNIT_DIR "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
  endif()
endif()
if(WARREN_HAVE_SYSTEMD)
  set(WARREN_SERVICE_TYPE notify)
else()
  set(WARREN_SERVICE_TYPE exec)
endif()
set(pkg_out "${CMAKE_BINARY_DIR}/pkg")

# ---- the installed config: the repository's, with the data in
# /var/lib/warren. Each edit must find its text, so that a change to
# conf/warren.conf cannot silently leave the data in ./data.
function(pkg_conf_edit var from to)
  string(FIND "${${var}}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "conf/warren.conf no longer contains '${from}': "
                        "update the installed config's edits in "
                        "pkg/pkg.cmake")
  endif()
  string(REPLACE "${from}" "${to}" text "${${var}}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

set(conf_src "${PROJECT_SOURCE_DIR}/conf/warren.conf")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${conf_src}")
file(READ "${conf_src}" conf_text)
pkg_conf_edit(conf_text "\ndata_dir = data\n"
              "\ndata_dir = ${WARREN_DATA_DIR}\n")
pkg_conf_edit(conf_text
  "# \"data\" is ./data, which the repository's .gitignore leaves out.\n"
  "# The package's postinst creates it, owned by user warren.\n")
pkg_conf_edit(conf_text "and data goes to ./data."
              "and data goes to ${WARREN_DATA_DIR}.")
pkg_conf_edit(conf_text "\n# log.file = ${WARREN_LOG_FILE}\n"
              "\nlog.file = ${WARREN_LOG_FILE}\n")
pkg_conf_edit(conf_text "\n# log.console = true\n# log.console.level = info\n"
              "\nlog.console = true\nlog.console.level = warning\n")
file(WRITE "${pkg_out}/warren.conf"
  "# ${WARREN_CONF_FILE}: installed by Warren's package (or cmake --install)\n"
  "# from the repository's conf/warren.conf, with data_dir set to\n"
  "# ${WARREN_DATA_DIR}, the log in ${WARREN_LOG_FILE} (warnings and\n"
  "# errors also to the console: journald). The systemd unit runs\n"
  "# `warren --config` on this file as user warren; `systemctl restart\n"
  "# warren` applies changes.\n"
  "#\n"
  "${conf_text}")

configure_file("${PROJECT_SOURCE_DIR}/conf/warren.service.in"
               "${pkg_out}/warren.service" @ONLY)

# ---- man pages, compressed as Debian ships them (gzip -9n: no name or
# time stamp, so the package is reproducible).
set(man_gz "")
foreach(page warren.8 warrenctl.8)
  set(src "${PROJECT_SOURCE_DIR}/docs/man/${page}")
  add_custom_command(
    OUTPUT "${pkg_out}/${page}.gz"
    COMMAND sh -c "gzip -9n < \"$1\" > \"$2\"" sh "${src}"
            "${pkg_out}/${page}.gz"
    DEPENDS "${src}"
    COMMENT "Compressing ${page}"
    VERBATIM)
  list(APPEND man_gz "${pkg_out}/${page}.gz")
endforeach()
add_custom_target(man_pages ALL DEPENDS ${man_gz})

# ---- install rules
install(TARGETS warren RUNTIME DESTINATION "${CMAKE_INSTALL_SBINDIR}")
install(PROGRAMS "${PROJECT_SOURCE_DIR}/cli/warrenctl"
        DESTINATION "${CMAKE_INSTALL_SBINDIR}")
install(FILES "${pkg_out}/warren.conf"
        DESTINATION "${CMAKE_INSTALL_FULL_SYSCONFDIR}/warren")
install(FILES "${CMAKE_CURRENT_LIST_DIR}/logrotate"
        DESTINATION "${CMAKE_INSTALL_FULL_SYSCONFDIR}/logrotate.d"
        RENAME warren)
install(FILES ${man_gz} DESTINATION "${CMAKE_INSTALL_MANDIR}/man8")
# Debian wants the licence as /usr/share/doc/<package>/copyright.
install(FILES "${PROJECT_SOURCE_DIR}/LICENSE" DESTINATION
        "${CMAKE_INSTALL_DOCDIR}" RENAME copyright)
install(FILES "${pkg_out}/warren.service"
        DESTINATION "${WARREN_SYSTEMD_UNIT_DIR}")

# ---- the Debian package
file(WRITE "${pkg_out}/conffiles" "${WARREN_CONF_FILE}\n"
     "${CMAKE_INSTALL_FULL_SYSCONFDIR}/logrotate.d/warren\n")
foreach(script postinst prerm postrm)
  configure_file("${CMAKE_CURRENT_LIST_DIR}/${script}"
                 "${pkg_out}/${script}" COPYONLY)
endforeach()

find_program(DPKG_SHLIBDEPS dpkg-shlibdeps)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME warren)
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
if(NOT CPACK_PACKAGE_CONTACT)
  set(CPACK_PACKAGE_CONTACT "The Warren developers <warren@localhost>")
endif()
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "AMQP 0-9-1 message broker for RabbitMQ clients")
set(CPACK_PACKAGE_DESCRIPTION
    "Warren is an AMQP 0-9-1 message broker written in C. Applications\n"
    "that use a stock RabbitMQ client connect to it unchanged: the same\n"
    "methods and extensions, reply codes, x-arguments, policies and\n"
    "management HTTP API. This package holds the broker, the warrenctl\n"
    "command line tool, a systemd unit and the default configuration.")
string(JOIN "" CPACK_PACKAGE_DESCRIPTION ${CPACK_PACKAGE_DESCRIPTION})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "python3, passwd")
if(DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  message(STATUS "dpkg-shlibdeps not found (apt-get install dpkg-dev): "
                 "the package will not depend on the libraries it links")
endif()
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${pkg_out}/conffiles"
    "${pkg_out}/postinst" "${pkg_out}/prerm" "${pkg_out}/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES TRUE)
include(CPack)
